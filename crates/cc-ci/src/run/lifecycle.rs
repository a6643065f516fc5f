//! The lifecycle behind `ccci test`: one deployment taken through the
//! ladder (`docs/design.md`, "The main job"), teardown always.
//!
//! 1. **install**: the run's lease first (the janitor never reaps a live
//!    run), the app made in the run's `ABRA_DIR`, the settings' install
//!    steps, then the deploy of the *upgrade base* (the previous release);
//! 2. **serve**: the HTTP checks through Traefik against the wildcard CA,
//!    and a screenshot of the front page;
//! 3. **upgrade**: a witness into every named volume, the chaos deploy of the
//!    tested commit, the `app` service's labels proving it is live, the
//!    HTTP checks and a screenshot again, every witness intact;
//! 4. **restore**: the backupbot label contract, run natively
//!    ([`crate::run::backup`]); n/a with the reason when no service carries
//!    `backupbot.backup`;
//! 5. **lint**: abra's rules R001-R015 ([`crate::recipe::lint`]);
//! 6. **tested**: the recipe's own checks (settings `custom/`);
//!
//! then teardown (also after a failure and on SIGTERM/Ctrl-C: the caller
//! drops [`Run::body`] and calls [`Run::teardown`]), and the computed rungs
//! 7 (**exemplary**) and 8 (**maintained**, from the results history).
//!
//! Exactly two deploys make a full run (base, tested ref); with no upgrade
//! base there is one, and the upgrade rung says why it is unverified.
//! Every wait is on Docker or the app; [`TimeSplit`] tells it apart from
//! cc-ci's own time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;

use crate::deploy::ipvs::VipSupport;
use crate::deploy::native::small_sha;
use crate::deploy::overrides::{label, APP_SERVICE};
use crate::deploy::{App, DeployError, DeployRequest, Deployer, Fault, Kind, Version};
use crate::probe::serve;
use crate::recipe::lint::{Outcome, Severity};
use crate::results::history::{self, Started};
use crate::results::level::{Rung, Status};
use crate::results::verdict::{self, Bar, BarSource};
use crate::results::{
    Adaptation, AppIdentity, Coverage, LintSummary, PhaseTiming, RunResults, RungResult, TimeSplit, VolumeCoverage,
};
use crate::run::contract::TestEnv;
use crate::run::data::{DataFault, DataProbe};
use crate::run::plan::{BaseProblem, RunPlan};
use crate::run::script::{self, ScriptOutcome};
use crate::run::witness::{Witness, WitnessState};
use crate::run::{backup, screenshot, service_logs};
use crate::settings::{Settings, UpgradeBase};
use crate::state::lease::Lease;
use crate::state::warm::WarmRecord;

/// How many log lines of each service a run keeps when a rung fails.
pub const SERVICE_LOG_LINES: usize = 40;

/// How long teardown waits for a Docker engine that stopped answering (a
/// restart) before it gives up and leaves the app to the janitor.
pub const TEARDOWN_DOCKER_WAIT: Duration = Duration::from_secs(120);

/// Receives progress as a run goes (the CLI shows it live).
pub trait Progress {
    /// A phase starts.
    fn phase(&mut self, name: &str);
    /// A note inside the current phase.
    fn note(&mut self, text: &str);
    /// A rung is decided.
    fn rung(&mut self, result: &RungResult);
}

/// The host a run uses.
pub struct Infra {
    /// The Engine API.
    pub docker: Docker,
    /// The deployer (`native` or `abra`).
    pub deployer: Box<dyn Deployer>,
    /// How the deployer is configured, for results.json.
    pub deployer_info: serde_json::Value,
    /// Traefik's web-secure address (HTTP checks connect here).
    pub traefik: SocketAddr,
    /// The CA that issued the wildcard certificate (PEM).
    pub ca_cert: PathBuf,
    /// An image for helper containers (witnesses): present locally, with `rm`.
    pub helper_image: String,
    /// The restic image for backups: present locally.
    pub restic_image: String,
    /// Whether swarm virtual IPs route here.
    pub vip: VipSupport,
    /// Take screenshots (Chromium present).
    pub screenshots: bool,
    /// The results root (for the history of rung 8).
    pub results_root: PathBuf,
    /// Why no Docker engine answered when the client was made, if none did.
    pub docker_problem: Option<String>,
}

/// One run in progress: the plan, what has been decided, and the app.
pub struct Run<'a> {
    plan: &'a RunPlan,
    settings: &'a Settings,
    infra: &'a Infra,
    progress: &'a mut dyn Progress,
    app: App,
    env: TestEnv,
    results: RunResults,
    t0: Instant,
    waiting: Duration,
    deployed: bool,
    /// Why the app cannot be used for later rungs (an upgrade that did not
    /// converge, an infrastructure error), if so: they are skipped, saying why.
    app_unusable: Option<String>,
    witnesses: Vec<Witness>,
    deploy_log: Vec<String>,
    lease: Option<Lease>,
    lint_report: Option<crate::recipe::lint::LintReport>,
    /// The warm app this run adopted (`--quick`), if it did.
    warm: Option<WarmRecord>,
    /// Keep the app warm instead of tearing it down when rungs 1-6 are green.
    keep_warm: bool,
    /// What runs now: (commit, label key, label value) of the last deploy
    /// that converged.
    live: Option<(String, String, String)>,
    /// The data witness through the app (settings `[data]`), if any.
    data: Option<DataProbe>,
    /// Whether the upgrade rung wrote [`Run::data`] already.
    data_written: bool,
}

/// A rung's outcome before it is recorded.
type Decision = (Status, Option<String>);

/// Rungs 1-6: the ones a run decides (7 and 8 are computed from them).
const BODY_RUNGS: [Rung; 6] = [
    Rung::Install,
    Rung::Serve,
    Rung::Upgrade,
    Rung::Restore,
    Rung::Lint,
    Rung::Tested,
];

fn pass() -> Decision {
    (Status::Pass, None)
}

fn from_data(e: DataFault) -> Decision {
    match e {
        DataFault::Recipe(m) => (Status::Fail, Some(m)),
        DataFault::Infra(m) => (Status::Error, Some(m)),
    }
}

fn from_deploy(e: &DeployError) -> Decision {
    let status = match e.fault {
        Fault::Recipe => Status::Fail,
        Fault::Infrastructure => Status::Error,
    };
    (status, Some(format!("{:?}: {}", e.step, e.detail)))
}

impl<'a> Run<'a> {
    /// A run of `plan` with `settings` on `infra` (nothing happens yet).
    pub fn new(plan: &'a RunPlan, settings: &'a Settings, infra: &'a Infra, progress: &'a mut dyn Progress) -> Run<'a> {
        let app = App::new(&plan.abra_dir, &plan.recipe.name, &plan.domain);
        let env = TestEnv::from_plan(plan, &infra.ca_cert, infra.traefik, settings);
        let mut results = RunResults::empty();
        results.recipe = plan.recipe.name.clone();
        results.tested_ref = plan.tested_ref.clone();
        results.tested_version = plan.tested_version.clone();
        results.base_version = plan.base.as_ref().ok().map(|b| b.tag.clone());
        results.settings = settings.manifest();
        results.deployer = Some(infra.deployer_info.clone());
        results.ref_kind = Some(plan.ref_kind.clone());
        results.app = Some(AppIdentity {
            run_id: plan.run_id.clone(),
            domain: plan.domain.clone(),
            stack: plan.stack.clone(),
        });
        let started = chrono::Utc::now();
        results.started_at = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Run {
            plan,
            settings,
            infra,
            progress,
            app,
            env,
            results,
            t0: Instant::now(),
            waiting: Duration::ZERO,
            deployed: false,
            app_unusable: None,
            witnesses: Vec::new(),
            deploy_log: Vec::new(),
            lease: None,
            lint_report: None,
            warm: None,
            keep_warm: false,
            live: None,
            data: settings
                .data
                .as_ref()
                .map(|d| DataProbe::new(d, settings.timeouts.scripts)),
            data_written: false,
        }
    }

    /// Takes over a warm app [`crate::run::warm::claim`] adopted (the plan
    /// must already name its domain, stack and ABRA_DIR:
    /// [`RunPlan::adopt_warm`]): its lease is the run's, the install rung
    /// reuses it instead of deploying, and the upgrade starts from what it runs.
    pub fn adopt_warm(&mut self, record: WarmRecord, lease: Lease) {
        self.progress.note(&format!(
            "--quick: reusing the warm app {} (kept by run {} at {}, running {})",
            record.domain,
            record.kept_by_run,
            record.kept_at_text(),
            small_sha(&record.deployed_ref)
        ));
        self.results.warm = Some(crate::results::WarmOrigin {
            app_run_id: record.app_run_id.clone(),
            kept_by_run: record.kept_by_run.clone(),
            kept_at: record.kept_at_text(),
            deployed_ref: record.deployed_ref.clone(),
        });
        self.results.base_version = Some(format!("warm app at {}", small_sha(&record.deployed_ref)));
        self.live = Some((
            record.deployed_ref.clone(),
            record.label_key.clone(),
            record.deployed_label.clone(),
        ));
        self.lease = Some(lease);
        self.deployed = true;
        self.warm = Some(record);
    }

    /// Keeps the app warm for the next `--quick` run when rungs 1-6 end
    /// green (a warm record instead of the teardown; rung 7 is then
    /// unverified, as no teardown was proven).
    pub fn keep_warm(&mut self) {
        self.keep_warm = true;
        self.results.quick = true;
    }

    /// Records each service's image as the tested version's deploy reads
    /// it (results.json `images`; from the confinement reading).
    pub fn record_images(&mut self, images: std::collections::BTreeMap<String, String>) {
        self.results.images = images;
    }

    /// Records a way this run departs from plain abra behaviour, and why
    /// (results.json `adaptations`), and says so in the progress.
    pub fn adapt(&mut self, what: &str, why: &str) {
        self.progress.note(&format!("{what} ({why})"));
        self.results.adaptations.push(Adaptation {
            what: what.into(),
            why: why.into(),
        });
    }

    fn decided(&self, rung: Rung) -> bool {
        self.results.rungs.iter().any(|r| r.rung == rung)
    }

    fn decide(&mut self, rung: Rung, decision: Decision, started: Instant) {
        self.decide_after(rung, decision, started, 1);
    }

    /// [`Run::decide`] for a rung that took `attempts` tries.
    fn decide_after(&mut self, rung: Rung, (status, reason): Decision, started: Instant, attempts: u32) {
        if status == Status::Error && rung <= Rung::Restore && self.app_unusable.is_none() {
            // The infrastructure failed under the app: what later rungs would
            // find says nothing about the recipe.
            self.app_unusable = Some(format!("rung {} hit an infrastructure error", rung.word()));
        }
        let r = RungResult {
            rung,
            status,
            reason,
            duration_s: started.elapsed().as_secs_f64(),
            log: None,
            attempts,
        };
        self.progress.rung(&r);
        self.results.rungs.push(r);
    }

    /// Records a phase's wall and waiting time.
    fn phase_done(&mut self, phase: &str, started: Instant, waiting_before: Duration) {
        self.results.phases.push(PhaseTiming {
            phase: phase.into(),
            wall_s: started.elapsed().as_secs_f64(),
            waiting_s: (self.waiting - waiting_before).as_secs_f64(),
        });
    }

    /// Waits on `f` (Docker or the app), counting the time as waiting.
    async fn wait<T>(&mut self, f: impl std::future::Future<Output = T>) -> T {
        let t = Instant::now();
        let v = f.await;
        self.waiting += t.elapsed();
        v
    }

    fn artifact(&mut self, name: &str, rel: &str) {
        self.results.artifacts.insert(name.into(), rel.into());
    }

    fn write_artifact(&mut self, name: &str, rel: &str, text: &str) {
        let path = self.plan.results_dir.join(rel);
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        match std::fs::write(&path, text) {
            Ok(()) => self.artifact(name, rel),
            Err(e) => self.progress.note(&format!("cannot write {}: {e}", path.display())),
        }
    }

    /// Runs the hook before `rung`, if the settings have one; a decision
    /// when it did not pass.
    async fn hook(&mut self, rung: Rung) -> Option<Decision> {
        let path = self.settings.hooks.get(&rung).cloned().or_else(|| {
            self.settings
                .repo_local_decision
                .as_ref()
                .filter(|d| d.used)
                .and_then(|d| d.hooks.get(&rung).cloned())
        })?;
        self.progress
            .note(&format!("hook pre-{}: {}", rung.word(), path.display()));
        let r = script::run(&path, rung, &self.env, self.settings.timeouts.scripts).await;
        match r.outcome {
            ScriptOutcome::Passed => None,
            ScriptOutcome::Skipped => Some((
                Status::Skipped,
                Some(format!("hook pre-{} exited 77 (skipped; log {})", rung.word(), r.log)),
            )),
            ScriptOutcome::Failed(why) | ScriptOutcome::NotStarted(why) => Some((
                Status::Fail,
                Some(format!(
                    "hook pre-{} {why}: {} (log {})",
                    rung.word(),
                    r.stderr_tail,
                    r.log
                )),
            )),
        }
    }

    /// The HTTP checks of `rung`: the serve checks, then the rung's own.
    /// On a warm app (`--quick`) the serve rung's own checks (`checks.serve`)
    /// are left out and said so: they describe a fresh install, and a warm
    /// app has been upgraded by the run that kept it.
    async fn http_checks(&mut self, rung: Rung) -> Decision {
        let mut checks = self.settings.serve_checks.clone();
        let own = self.settings.checks.get(&rung).cloned().unwrap_or_default();
        let mut left_out = None;
        if rung == Rung::Serve && self.warm.is_some() && !own.is_empty() {
            let why = format!(
                "--quick: {} checks.serve check(s) left out: they describe a fresh install, and the warm app was upgraded by the run that kept it",
                own.len()
            );
            self.progress.note(&why);
            left_out = Some(why);
        } else {
            checks.extend(own);
        }
        for c in checks {
            let mut spec = c.spec(&self.plan.domain, &self.infra.ca_cert, self.settings.timeouts.http);
            spec.traefik = self.infra.traefik;
            spec.routers = Some(crate::probe::routers::RouterProbe {
                docker: self.infra.docker.clone(),
                stack: self.plan.stack.clone(),
                web_port: self.infra.traefik.port(),
            });
            let report = self.wait(serve::check(&spec)).await;
            let what = format!("GET https://{}{}", self.plan.domain, c.path);
            match report.verdict {
                serve::Verdict::Pass(_) => self.progress.note(&format!("{what}: {report}")),
                serve::Verdict::Fail(f) => return (Status::Fail, Some(format!("{what}: {f}"))),
                serve::Verdict::Error(e) => return (Status::Error, Some(format!("{what}: {e}"))),
            }
        }
        (Status::Pass, left_out)
    }

    /// A screenshot of the front page into `<results>/<file>` (never gates a
    /// rung: a failure is noted and the artifact is missing).
    async fn screenshot(&mut self, name: &str, file: &str) {
        if !self.infra.screenshots {
            self.progress.note("screenshot: skipped (no Chromium configured)");
            return;
        }
        let spec = screenshot::ShotSpec::new(
            self.env.app_url(),
            self.infra.traefik,
            screenshot::Trust::CaFile(self.infra.ca_cert.clone()),
            self.plan.results_dir.join(file),
        );
        // One retry: on a loaded 2-core host Chromium now and then fails to
        // start or render in time; a second, fresh Chromium usually works.
        let mut first = None;
        for attempt in 1..=2 {
            match self.wait(screenshot::take(&spec)).await {
                Ok(shot) => {
                    let again = first
                        .map(|e| format!(", after a failed first try: {e}"))
                        .unwrap_or_default();
                    self.progress.note(&format!("screenshot: {file} ({shot}){again}"));
                    self.artifact(name, file);
                    if name == "screenshot-serve" {
                        self.results.screenshot = Some(file.to_string());
                    }
                    return;
                }
                Err(e) if attempt == 1 => {
                    self.progress
                        .note(&format!("screenshot {file}: first try failed ({e}); trying once more"));
                    first = Some(e.to_string());
                }
                Err(e) => {
                    self.progress.note(&format!("screenshot {file} not taken: {e}"));
                    let reason = match &first {
                        Some(f) if *f != e.to_string() => format!("{e} (first try: {f})"),
                        _ => e.to_string(),
                    };
                    self.results.missing_artifacts.insert(name.into(), reason);
                }
            }
        }
    }

    /// The body of the run: preflight, lease, rungs 1-6. The caller may drop
    /// this future at any await (a signal); [`Run::teardown`] then cleans up
    /// and [`Run::finish`] records what was decided.
    pub async fn body(&mut self) {
        // Preflight.
        self.progress.phase("preflight");
        let t = Instant::now();
        let plan = self.plan;
        self.progress.note(&format!(
            "{} at {} ({}), app {} in stack {}, deployer {}",
            plan.recipe.name,
            &plan.tested_ref[..12.min(plan.tested_ref.len())],
            plan.tested_version.as_deref().unwrap_or("no version"),
            plan.domain,
            plan.stack,
            self.infra.deployer.name()
        ));
        let unreachable = match (&self.infra.docker_problem, self.infra.docker.ping().await) {
            (Some(p), _) => Some(p.clone()),
            (None, Err(e)) => Some(e.to_string()),
            (None, Ok(_)) => None,
        };
        if let Some(e) = unreachable {
            let d = (
                Status::Error,
                Some(format!(
                    "the Docker engine cannot be used: {e}; is dockerd running? (scripts/dockerd starts it)"
                )),
            );
            self.decide(Rung::Install, d, t);
            return;
        }
        if let VipSupport::NoIpvs { looked_at } = &self.infra.vip {
            self.progress.note(&format!(
                "no IPVS here ({looked_at}): services without published ports get endpoint_mode dnsrr"
            ));
        }
        if self.lease.is_none() {
            match Lease::take(&self.infra_state_dir(), plan.lease_info()) {
                Ok(l) => self.lease = Some(l),
                Err(e) => {
                    let d = (Status::Error, Some(format!("cannot take the run's lease: {e}")));
                    self.decide(Rung::Install, d, t);
                    return;
                }
            }
        }
        // The start is on record before anything deploys: a run killed from
        // here on (OOM, SIGKILL) is a start with no finish, which breaks
        // rung 8 ([`history`]).
        let started = Started {
            schema: history::STARTED_SCHEMA.into(),
            recipe: plan.recipe.name.clone(),
            run_id: plan.run_id.clone(),
            stack: plan.stack.clone(),
            tested_ref: plan.tested_ref.clone(),
            ref_kind: plan.ref_kind.clone(),
            quick: self.results.quick,
            started_at: self.results.started_at.clone(),
        };
        if let Err(e) = std::fs::create_dir_all(&plan.results_dir).and_then(|()| started.write(&plan.results_dir)) {
            let d = (
                Status::Error,
                Some(format!(
                    "cannot record the run's start in {}: {e}",
                    plan.results_dir.display()
                )),
            );
            self.decide(Rung::Install, d, t);
            return;
        }
        self.phase_done("preflight", t, Duration::ZERO);

        if self.install().await {
            self.serve().await;
            self.upgrade().await;
            self.restore().await;
        }
        self.capture_service_logs().await;
        // Lint reads the checkout alone: it runs whatever the app did.
        self.lint().await;
        if self.decided(Rung::Upgrade) {
            self.tested().await;
        }
    }

    /// When the first rung that used the app and did not climb failed or
    /// errored, keeps the last lines of every service's logs (the app is
    /// still there: teardown comes later).
    async fn capture_service_logs(&mut self) {
        let first_red = self
            .results
            .rungs
            .iter()
            .filter(|r| r.rung <= Rung::Restore && !r.status.climbs())
            .min_by_key(|r| r.rung)
            .map(|r| (r.rung, r.status));
        let Some((rung, Status::Fail | Status::Error)) = first_red else {
            return;
        };
        if !self.deployed {
            return;
        }
        let docker = self.infra.docker.clone();
        match self
            .wait(service_logs::tail(&docker, &self.plan.stack, SERVICE_LOG_LINES))
            .await
        {
            Ok(logs) if !logs.is_empty() => {
                self.progress.note(&format!(
                    "rung {} did not pass: kept the last {SERVICE_LOG_LINES} log lines of {} service(s) (service-logs.txt)",
                    rung.word(),
                    logs.len()
                ));
                self.write_artifact("service-logs", "service-logs.txt", &service_logs::render(&logs));
                self.results.service_logs = logs;
            }
            Ok(_) => {}
            Err(e) => self.progress.note(&format!("cannot read the services' logs: {e}")),
        }
    }

    fn infra_state_dir(&self) -> PathBuf {
        // <state>/runs/<id>/abra -> <state>
        self.plan
            .abra_dir
            .ancestors()
            .nth(3)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.plan.abra_dir.clone())
    }

    /// What the install deploys ([`install_target`]).
    fn install_target(&self) -> (String, Version) {
        install_target(self.plan, self.settings)
    }

    fn deploy_request(&self, reference: String, version: Version, kind: Kind) -> DeployRequest {
        let forced = (!self.settings.defaulted.contains(&"timeouts.deploy")).then_some(self.settings.timeouts.deploy);
        DeployRequest {
            reference,
            version,
            kind,
            default_timeout: self.settings.timeouts.deploy,
            forced_timeout: forced,
        }
    }

    fn record_deploy(&mut self, what: &str, d: &crate::deploy::Deployed) {
        self.results.deploys += 1;
        self.deploy_log.push(format!("== {what}"));
        self.deploy_log.extend(d.log.iter().cloned());
        self.deploy_log.push(format!(
            "converged in {:.1} s (timeout {} s from {}): {}",
            d.convergence.total.as_secs_f64(),
            d.timeout.0.as_secs(),
            d.timeout.1,
            d.convergence
                .services
                .iter()
                .map(|s| format!(
                    "{} {}x{}",
                    s.service,
                    s.replicas,
                    if s.healthchecked { " healthy" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for c in &d.post_cmds {
            self.deploy_log.push(format!(
                "post-deploy `{} {}` exit {}: {}",
                c.service,
                c.command,
                c.exit_code,
                c.output.trim()
            ));
        }
        if !d.dnsrr.is_empty() && !self.results.adaptations.iter().any(|a| a.what.contains("dnsrr")) {
            self.results
                .adaptations
                .push(dnsrr_adaptation(&d.dnsrr, &self.infra.vip));
        }
        self.progress.note(&format!(
            "{what}: deployed {} in {:.1} s, converged in {:.1} s{}",
            &d.commit[..12.min(d.commit.len())],
            d.command_time.as_secs_f64(),
            d.convergence.total.as_secs_f64(),
            if d.post_cmds.is_empty() {
                String::new()
            } else {
                format!(", {} post-deploy command(s) ran", d.post_cmds.len())
            }
        ));
    }

    async fn install(&mut self) -> bool {
        self.progress.phase("install");
        let t = Instant::now();
        let w0 = self.waiting;
        if let Some(w) = &self.warm {
            let why = format!(
                "--quick: the warm app {} kept by run {} at {} (after its green run of {}), converged and healthy; not redeployed",
                w.domain,
                w.kept_by_run,
                w.kept_at_text(),
                small_sha(&w.deployed_ref)
            );
            // The warm app's recipe clone predates the tested commit: fetch it.
            if let Err(e) = self.app.clone_recipe(&self.plan.recipe.dir) {
                let e = format!("--quick: cannot bring the warm app's recipe clone up to the tested commit: {e}");
                self.decide(Rung::Install, (Status::Error, Some(e)), t);
                self.phase_done("install", t, w0);
                return false;
            }
            self.decide(Rung::Install, (Status::Pass, Some(why)), t);
            self.phase_done("install", t, w0);
            return true;
        }
        let (reference, version) = self.install_target();
        let created = self
            .infra
            .deployer
            .new_app(&self.app, &self.plan.recipe.dir, &reference, &self.settings.env)
            .await;
        if let Err(e) = created {
            self.decide(Rung::Install, from_deploy(&e), t);
            self.phase_done("install", t, w0);
            return false;
        }
        self.deployed = true;
        if let Some(o) = self.settings.overlay.clone() {
            // The settings' compose overlay, appended last to COMPOSE_FILE.
            let checkout = self.app.checkout();
            let done = self.app.env_file().map_err(|e| e.to_string()).and_then(|mut envf| {
                self.settings
                    .apply_overlay(&checkout, &mut envf)
                    .map_err(|e| e.to_string())?;
                let cf = envf.get("COMPOSE_FILE").unwrap_or("compose.yml").to_string();
                self.app.set("COMPOSE_FILE", &cf).map_err(|e| e.to_string())
            });
            match done {
                Ok(()) => self.results.adaptations.push(Adaptation {
                    what: "the settings' compose.ccci.yml overlay is appended to COMPOSE_FILE".into(),
                    why: o.reason,
                }),
                Err(e) => {
                    self.decide(Rung::Install, (Status::Error, Some(format!("overlay: {e}"))), t);
                    return false;
                }
            }
        }
        if let Some(steps) = self.settings.install_steps.clone() {
            self.progress.note(&format!("install steps: {}", steps.display()));
            let r = script::run(&steps, Rung::Install, &self.env, self.settings.timeouts.scripts).await;
            if r.outcome != ScriptOutcome::Passed {
                let d = (
                    Status::Fail,
                    Some(format!(
                        "install-steps {:?}: {} (log {})",
                        r.outcome, r.stderr_tail, r.log
                    )),
                );
                self.decide(Rung::Install, d, t);
                self.phase_done("install", t, w0);
                return false;
            }
        }
        self.progress.note(&format!("deploying {reference} (the upgrade base)"));
        let label = match &version {
            Version::Release(tag) => ("version", tag.clone()),
            Version::Chaos(sha) => ("chaos-version", sha.clone()),
        };
        let req = self.deploy_request(reference.clone(), version, Kind::Install);
        let given = self.settings.secrets.clone();
        let deployer = &self.infra.deployer;
        let app = self.app.clone();
        let r = self.wait(deployer.deploy(&app, &req, &given)).await;
        let ok = match r {
            Ok(d) => {
                self.record_deploy(&format!("install {reference}"), &d);
                self.live = Some((d.commit.clone(), label.0.to_string(), label.1));
                self.decide(Rung::Install, pass(), t);
                true
            }
            Err(e) => {
                self.deploy_log.push(format!("== install {reference} failed: {e}"));
                self.decide(Rung::Install, from_deploy(&e), t);
                false
            }
        };
        self.phase_done("install", t, w0);
        ok
    }

    async fn serve(&mut self) {
        self.progress.phase("serve");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = if let Some(why) = self.settings.declared_na(Rung::Serve) {
            (Status::NotApplicable, Some(why))
        } else if let Some(h) = self.hook(Rung::Serve).await {
            h
        } else {
            let d = self.http_checks(Rung::Serve).await;
            if d.0 == Status::Pass {
                self.screenshot("screenshot-serve", "screenshot.png").await;
            }
            d
        };
        self.decide(Rung::Serve, d, t);
        self.phase_done("serve", t, w0);
    }

    async fn upgrade(&mut self) {
        self.progress.phase("upgrade");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = self.upgrade_decision().await;
        self.decide(Rung::Upgrade, d, t);
        self.phase_done("upgrade", t, w0);
    }

    /// Why a pinned upgrade base proves nothing, if it does not: it is the
    /// tested commit, or it names the tested version (an upgrade from a
    /// version to itself, which the earlier cc-ci passed).
    fn pinned_to_itself(&self, tag: &str) -> Option<String> {
        let same_commit = self
            .plan
            .recipe
            .releases()
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.tag == tag))
            .is_some_and(|r| r.commit == self.plan.tested_ref);
        let bare = |v: &str| v.trim_start_matches('v').to_string();
        let same_version = self.plan.tested_version.as_deref().map(bare) == Some(bare(tag));
        (same_commit || same_version).then(|| {
            format!(
                "the pinned upgrade base {tag} is the tested {} itself: an upgrade to itself proves nothing; pin an older release in [upgrade] base",
                if same_commit { "commit" } else { "version" }
            )
        })
    }

    /// Where the app's services mount named volumes now (an error decision
    /// when Docker cannot say).
    async fn volume_mounts(&mut self) -> Result<Vec<crate::deploy::stack::VolumeMount>, Decision> {
        let docker = self.infra.docker.clone();
        self.wait(crate::deploy::stack::volume_mounts(&docker, &self.plan.stack))
            .await
            .map_err(|e| (Status::Error, Some(e.to_string())))
    }

    async fn upgrade_decision(&mut self) -> Decision {
        if let UpgradeBase::Skip(why) = &self.settings.upgrade_base {
            return (Status::NotApplicable, Some(why.clone()));
        }
        if let Some(why) = self.settings.declared_na(Rung::Upgrade) {
            return (Status::NotApplicable, Some(why));
        }
        if let Some(w) = &self.warm {
            if w.deployed_ref == self.plan.tested_ref {
                return (
                    Status::Unverified,
                    Some(format!(
                        "the warm app already runs the tested commit {}: an upgrade to itself proves nothing (push a new commit, or run without --quick)",
                        small_sha(&w.deployed_ref)
                    )),
                );
            }
        } else if let (UpgradeBase::Previous, Err(p)) = (&self.settings.upgrade_base, &self.plan.base) {
            let why = match p {
                BaseProblem::BaseIsHead(_) => format!("{p}"),
                _ => format!("{p}; the tested ref was installed directly, nothing was upgraded"),
            };
            return (Status::Unverified, Some(why));
        }
        if let (UpgradeBase::Pinned(tag), None) = (&self.settings.upgrade_base, &self.warm) {
            if let Some(why) = self.pinned_to_itself(tag) {
                return (Status::Unverified, Some(why));
            }
        }
        if let Some(why) = &self.app_unusable {
            return (Status::Skipped, Some(format!("not run: {why}")));
        }
        if let Some(h) = self.hook(Rung::Upgrade).await {
            return h;
        }
        // Witnesses in every named volume of the app.
        let volumes = match crate::deploy::stack::list_objects(&self.infra.docker, &self.plan.stack).await {
            Ok(o) => o.volumes.into_iter().map(|v| v.name).collect::<Vec<_>>(),
            Err(e) => return (Status::Error, Some(e.to_string())),
        };
        if !volumes.is_empty() {
            self.progress
                .note(&format!("writing witnesses into {} named volume(s)", volumes.len()));
        }
        for v in &volumes {
            let w = self
                .wait(Witness::write_named(
                    &self.infra.docker,
                    v,
                    &self.infra.helper_image,
                    &self.plan.run_id,
                ))
                .await;
            match w {
                Ok(w) => self.witnesses.push(w),
                Err(e) => return (Status::Error, Some(format!("witness in volume {v}: {e}"))),
            }
        }
        if !volumes.is_empty() {
            self.progress.note(&format!(
                "witnesses written in {} volume(s): {}",
                volumes.len(),
                volumes.join(", ")
            ));
        }
        // Where the services mount the witnessed volumes now: the upgraded
        // services must still mount each at the same path (a release that
        // renames a volume or stops mounting it loses the app's data, while
        // the witness sits intact in the old volume).
        let mounts_before = match self.volume_mounts().await {
            Ok(m) => m,
            Err(d) => return d,
        };
        if let Some(d) = self.data.clone() {
            if let Err(e) = self.wait(d.write(&self.infra.docker, &self.plan.stack)).await {
                return from_data(e);
            }
            self.data_written = true;
            self.progress.note(&format!(
                "data witness written through service {} ([data] write)",
                d.service
            ));
        }
        // The chaos deploy of the tested commit.
        if let Some(env) = (!self.settings.upgrade_env.is_empty()).then(|| self.settings.upgrade_env.clone()) {
            if let Err(e) = self.app.set_all(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                return (Status::Error, Some(e.to_string()));
            }
        }
        let sha = small_sha(&self.plan.tested_ref);
        let req = self.deploy_request(self.plan.tested_ref.clone(), Version::Chaos(sha.clone()), Kind::Upgrade);
        let given = self.settings.secrets.clone();
        let deployer = &self.infra.deployer;
        let app = self.app.clone();
        self.progress
            .note(&format!("deploying the tested commit {sha} with --chaos"));
        match self.wait(deployer.deploy(&app, &req, &given)).await {
            Ok(d) => {
                self.record_deploy(&format!("upgrade to {sha} (chaos)"), &d);
                self.live = Some((self.plan.tested_ref.clone(), "chaos-version".into(), sha.clone()));
            }
            Err(e) => {
                self.deploy_log.push(format!("== upgrade to {sha} failed: {e}"));
                if e.step == crate::deploy::Step::Converge {
                    self.app_unusable = Some("the upgrade left the app unconverged".into());
                }
                return from_deploy(&e);
            }
        }
        // The labels prove the tested commit is live.
        let labels = match self
            .wait(crate::deploy::converge::running_labels(
                &self.infra.docker,
                &self.plan.stack,
            ))
            .await
        {
            Ok(l) => l,
            Err(e) => return (Status::Error, Some(e.to_string())),
        };
        let app_service = format!("{}_{APP_SERVICE}", self.plan.stack);
        let Some(app) = labels.get(&app_service) else {
            return (
                Status::Unverified,
                Some(format!(
                    "no service `{APP_SERVICE}`: abra puts its version labels on the service named app only, so nothing proves which commit runs"
                )),
            );
        };
        let chaos = app.service.get(&label(&self.plan.stack, "chaos")).map(String::as_str);
        let live = app.service.get(&label(&self.plan.stack, "chaos-version")).cloned();
        if chaos != Some("true") || live.as_deref() != Some(sha.as_str()) || !app.running_current_spec {
            return (
                Status::Fail,
                Some(format!(
                    "the upgrade is not live: service {app_service} has chaos={} chaos-version={} (expected true / {sha}), running tasks from the current spec: {}",
                    chaos.unwrap_or("unset"),
                    live.as_deref().unwrap_or("unset"),
                    app.running_current_spec
                )),
            );
        }
        self.progress.note(&format!(
            "live: {app_service} carries chaos-version={sha}, its running tasks are from the current spec"
        ));
        let d = self.http_checks(Rung::Upgrade).await;
        if d.0 != Status::Pass {
            return d;
        }
        self.screenshot("screenshot-upgrade", "screenshot-upgrade.png").await;
        let mounts_after = match self.volume_mounts().await {
            Ok(m) => m,
            Err(d) => return d,
        };
        let witnessed: Vec<&str> = self.witnesses.iter().map(|w| w.volume.as_str()).collect();
        for m in mounts_before.iter().filter(|m| witnessed.contains(&m.volume.as_str())) {
            if mounts_after.contains(m) {
                continue;
            }
            let now: Vec<String> = mounts_after
                .iter()
                .filter(|a| a.service == m.service && a.target == m.target)
                .map(|a| format!("volume {}", a.volume))
                .collect();
            return (
                Status::Fail,
                Some(format!(
                    "after the upgrade, service {} no longer mounts volume {} at {} ({}): the release renamed or dropped the volume, so the app lost its data",
                    m.service,
                    m.volume,
                    m.target,
                    if now.is_empty() {
                        "nothing is mounted there now".to_string()
                    } else {
                        format!("it mounts {} there now", now.join(", "))
                    }
                )),
            );
        }
        for w in self.witnesses.clone() {
            match self.wait(w.state(&self.infra.docker, &self.infra.helper_image)).await {
                Ok(WitnessState::Intact) => {}
                Ok(s) => {
                    return (
                        Status::Fail,
                        Some(format!(
                            "the witness in volume {} did not survive the upgrade: {s:?}",
                            w.volume
                        )),
                    )
                }
                Err(e) => return (Status::Error, Some(format!("witness in volume {}: {e}", w.volume))),
            }
        }
        if !self.witnesses.is_empty() {
            self.progress.note(&format!(
                "{} witness(es) intact after the upgrade, each volume mounted where it was",
                self.witnesses.len()
            ));
        }
        if let Some(d) = self.data.clone() {
            match self.wait(d.holds(&self.infra.docker, &self.plan.stack)).await {
                Ok(Ok(())) => self
                    .progress
                    .note(&format!("data witness read back through service {}", d.service)),
                Ok(Err(out)) => {
                    return (
                        Status::Fail,
                        Some(format!(
                            "the app lost its data in the upgrade: [data] read in service {} does not print the data witness written before it ({out})",
                            d.service
                        )),
                    )
                }
                Err(e) => return from_data(e),
            }
        }
        pass()
    }

    async fn restore(&mut self) {
        self.progress.phase("backup/restore");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = self.restore_decision().await;
        self.decide(Rung::Restore, d, t);
        self.phase_done("restore", t, w0);
    }

    /// Records what protects each named volume of the app
    /// (results.json `volumes`): a backupbot label of a service that mounts
    /// it, the settings (`[volumes.ephemeral]`, or a declared-n/a restore
    /// with its reason), or nothing.
    async fn cover_volumes(&mut self, declared_na: Option<&str>) -> Result<(), Decision> {
        let docker = self.infra.docker.clone();
        let objects = self
            .wait(crate::deploy::stack::list_objects(&docker, &self.plan.stack))
            .await
            .map_err(|e| (Status::Error, Some(e.to_string())))?;
        let covered = match self.wait(backup::plan(&docker, &self.plan.stack)).await {
            Ok(Some(p)) => p.volumes(),
            Ok(None) => Vec::new(),
            // The round trip fails on it, naming the label.
            Err(e) if e.is_recipe_failure() => Vec::new(),
            Err(e) => return Err((Status::Error, Some(e.to_string()))),
        };
        let prefix = format!("{}_", self.plan.stack);
        let mut out: Vec<VolumeCoverage> = objects
            .volumes
            .iter()
            .map(|v| {
                let short = v.name.strip_prefix(&prefix).unwrap_or(&v.name).to_string();
                let covered = if covered.contains(&v.name) {
                    Coverage::Backup
                } else if let Some(reason) = self.settings.ephemeral_volumes.get(&short) {
                    Coverage::Ephemeral { reason: reason.clone() }
                } else if let Some(reason) = declared_na {
                    Coverage::Ephemeral {
                        reason: format!("restore declared not applicable: {reason}"),
                    }
                } else {
                    Coverage::None
                };
                VolumeCoverage { volume: short, covered }
            })
            .collect();
        out.sort_by(|a, b| a.volume.cmp(&b.volume));
        self.results.volumes = out;
        Ok(())
    }

    /// The volumes nothing protects, as a clause for the restore rung's
    /// reason, if there are any.
    fn unprotected_note(&self) -> Option<String> {
        let names: Vec<&str> = self
            .results
            .volumes
            .iter()
            .filter(|v| v.covered == Coverage::None)
            .map(|v| v.volume.as_str())
            .collect();
        (!names.is_empty()).then(|| {
            format!(
                "named volume(s) {} hold data no backup covers, which keeps the recipe below exemplary: add backupbot labels, or declare them in [volumes.ephemeral] of tests/recipes/{}/ccci.toml with a reason",
                names.join(", "),
                self.plan.recipe.name
            )
        })
    }

    fn with_note(&self, d: Decision) -> Decision {
        match (d, self.unprotected_note()) {
            ((status, None), Some(n)) => (status, Some(n)),
            ((status, Some(r)), Some(n)) => (status, Some(format!("{r}; {n}"))),
            (d, None) => d,
        }
    }

    async fn restore_decision(&mut self) -> Decision {
        let declared = self.settings.declared_na(Rung::Restore).or_else(|| {
            self.settings
                .backup
                .as_ref()
                .filter(|b| !b.capable)
                .map(|b| b.reason.clone())
        });
        if let Some(why) = &self.app_unusable {
            return (Status::Skipped, Some(format!("not run: {why}")));
        }
        if let Err(d) = self.cover_volumes(declared.as_deref()).await {
            return d;
        }
        if let Some(why) = declared {
            return self.with_note((Status::NotApplicable, Some(why)));
        }
        if let Some(h) = self.hook(Rung::Restore).await {
            return h;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let opts = backup::RoundTripOptions {
            restic_image: self.infra.restic_image.clone(),
            witness_name: self.plan.run_id.clone(),
            data: self.data.clone(),
            data_written: self.data_written,
            progress: Some(tx),
            ..Default::default()
        };
        let repo = self
            .infra_state_dir()
            .join("runs")
            .join(&self.plan.run_id)
            .join("backup");
        // The round trip's progress is shown as it goes.
        let waited = Instant::now();
        let rt = {
            let docker = self.infra.docker.clone();
            let trip = backup::round_trip(&docker, &self.plan.stack, &repo, &opts);
            tokio::pin!(trip);
            loop {
                tokio::select! {
                    rt = &mut trip => break rt,
                    Some(line) = rx.recv() => self.progress.note(&line),
                }
            }
        };
        self.waiting += waited.elapsed();
        self.write_artifact("backup-log", "backup.log", &rt.log);
        for c in &rt.checks {
            self.progress.note(&format!(
                "{} {}: {}",
                c.service,
                c.target.container_path(),
                c.describe()
            ));
        }
        let d = match rt.status {
            backup::RoundTripStatus::Pass => pass(),
            backup::RoundTripStatus::Fail(r) => (Status::Fail, Some(r)),
            backup::RoundTripStatus::Error(r) => (Status::Error, Some(r)),
            backup::RoundTripStatus::NotApplicable(r) => return self.with_note((Status::NotApplicable, Some(r))),
        };
        if d.0 != Status::Pass {
            return d;
        }
        let d = self.http_checks(Rung::Restore).await;
        if d.0 != Status::Pass {
            return d;
        }
        self.with_note(d)
    }

    async fn lint(&mut self) {
        self.progress.phase("lint");
        let t = Instant::now();
        let d = match self.hook(Rung::Lint).await {
            Some(h) => h,
            None => match crate::recipe::lint::lint(&self.plan.recipe.dir) {
                Err(e) => (Status::Fail, Some(format!("the recipe cannot be linted: {e}"))),
                Ok(report) => {
                    self.write_artifact("lint", "lint.txt", &report.table());
                    let line = |f: &crate::recipe::lint::Finding| {
                        format!(
                            "{} {}{}",
                            f.rule.reference,
                            f.rule.description,
                            f.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
                        )
                    };
                    let mut s = LintSummary::default();
                    for f in &report.findings {
                        match (&f.outcome, f.rule.severity) {
                            (Outcome::Failed, Severity::Error) => s.errors.push(line(f)),
                            (Outcome::Failed, Severity::Warn) => s.warnings.push(line(f)),
                            (Outcome::Skipped(why), _) => s.skipped.push(format!("{}: {why}", f.rule.reference)),
                            (Outcome::Satisfied, _) => {}
                        }
                    }
                    for w in &s.warnings {
                        self.progress.note(&format!("lint warning {w}"));
                    }
                    let d = if s.errors.is_empty() {
                        pass()
                    } else {
                        (
                            Status::Fail,
                            Some(format!("lint errors: {} (lint.txt)", s.errors.join("; "))),
                        )
                    };
                    self.results.lint = Some(s);
                    self.lint_report = Some(report);
                    d
                }
            },
        };
        self.decide(Rung::Lint, d, t);
        let w0 = self.waiting;
        self.phase_done("lint", t, w0);
    }

    async fn tested(&mut self) {
        self.progress.phase("tested");
        let t = Instant::now();
        let w0 = self.waiting;
        let (d, attempts) = self.tested_decision().await;
        self.decide_after(Rung::Tested, d, t, attempts);
        self.phase_done("tested", t, w0);
    }

    /// The tested rung's decision, and the most tries one of its custom
    /// tests needed to pass (`[tested] retries`).
    async fn tested_decision(&mut self) -> (Decision, u32) {
        if let Some(why) = &self.app_unusable {
            return ((Status::Skipped, Some(format!("not run: {why}"))), 1);
        }
        if let Some(h) = self.hook(Rung::Tested).await {
            return (h, 1);
        }
        let mut tests = self.settings.custom.clone();
        if let Some(d) = self.settings.repo_local_decision.as_ref().filter(|d| d.used) {
            tests.extend(d.custom.iter().cloned());
        }
        if tests.is_empty() {
            // Nothing was checked, so nothing is proven: unverified (not a
            // skipped check: there is none). The verdict holds it against
            // the recipe only when its bar is 6 or more.
            return (
                (
                    Status::Unverified,
                    Some(format!(
                        "the recipe has no checks of its own: add executables to tests/recipes/{}/custom/ (tests/recipes/README.md)",
                        self.plan.recipe.name
                    )),
                ),
                1,
            );
        }
        let (mut failed, mut skipped, mut retried) = (Vec::new(), Vec::new(), Vec::new());
        let mut most = 1;
        for test in tests {
            let name = test
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let env = self.env.clone();
            let mut attempt = 1;
            let r = loop {
                let r = self
                    .wait(script::run(&test, Rung::Tested, &env, self.settings.timeouts.scripts))
                    .await;
                self.progress.note(&format!(
                    "custom test {name}: {:?} in {:.1} s{}",
                    r.outcome,
                    r.took.as_secs_f64(),
                    if attempt > 1 {
                        format!(" (try {attempt})")
                    } else {
                        String::new()
                    }
                ));
                let failed = matches!(r.outcome, ScriptOutcome::Failed(_) | ScriptOutcome::NotStarted(_));
                if failed && attempt <= self.settings.test_retries {
                    attempt += 1;
                    continue;
                }
                break r;
            };
            match r.outcome {
                ScriptOutcome::Passed => {
                    if attempt > 1 {
                        retried.push(format!("{name} (try {attempt})"));
                        most = most.max(attempt);
                    }
                }
                ScriptOutcome::Skipped => skipped.push(name),
                ScriptOutcome::Failed(w) | ScriptOutcome::NotStarted(w) => {
                    let tries = if attempt > 1 {
                        format!(" on each of {attempt} tries")
                    } else {
                        String::new()
                    };
                    failed.push(format!("{name} {w}{tries}: {} (log {})", r.stderr_tail, r.log))
                }
            }
        }
        let d = if !failed.is_empty() {
            (Status::Fail, Some(failed.join("; ")))
        } else if !skipped.is_empty() {
            (
                Status::Skipped,
                Some(format!("skipped by the test itself (exit 77): {}", skipped.join(", "))),
            )
        } else if !retried.is_empty() {
            (
                Status::Pass,
                Some(format!(
                    "passed only on a retry ([tested] retries): {}",
                    retried.join(", ")
                )),
            )
        } else {
            pass()
        };
        let attempts = if d.0 == Status::Pass { most } else { 1 };
        (d, attempts)
    }

    /// Undeploys and removes the app and everything it made, then the run's
    /// folder, then the lease. Runs after the body, whatever happened.
    pub async fn teardown(&mut self) {
        self.progress.phase("teardown");
        let t = Instant::now();
        let w0 = self.waiting;
        if self.keep_warm && self.deployed && self.green_so_far() {
            match self.keep_app_warm() {
                Ok(path) => {
                    self.progress.note(&format!(
                        "kept warm for the next --quick run: {} ({})",
                        self.plan.domain,
                        path.display()
                    ));
                    self.results.kept_warm = true;
                    if !self.deploy_log.is_empty() {
                        let text = self.deploy_log.join("\n") + "\n";
                        self.write_artifact("deploy-log", "deploy.log", &text);
                    }
                    self.lease = None;
                    self.phase_done("teardown", t, w0);
                    return;
                }
                Err(e) => self
                    .progress
                    .note(&format!("cannot keep the app warm ({e}): tearing it down")),
            }
        }
        if self.deployed || self.lease.is_some() {
            // Docker may be away (stopped, restarting): the app must still go.
            if self.infra.docker.ping().await.is_err() {
                self.progress.note(&format!(
                    "the Docker engine does not answer; waiting up to {} s to tear the app down",
                    TEARDOWN_DOCKER_WAIT.as_secs()
                ));
                let start = Instant::now();
                while self.infra.docker.ping().await.is_err() && start.elapsed() < TEARDOWN_DOCKER_WAIT {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                self.waiting += start.elapsed();
            }
            let app = self.app.clone();
            let deployer = &self.infra.deployer;
            let removed = self.wait(deployer.remove(&app)).await;
            let left = self
                .wait(crate::deploy::stack::verify_clean(&self.infra.docker, &self.plan.stack))
                .await;
            let clean = match (&removed, &left) {
                (Ok(r), Ok(l)) if r.is_clean() && l.is_empty() => {
                    self.progress
                        .note(&format!("removed {} object(s); nothing left", r.removed.len()));
                    true
                }
                (Ok(_), Ok(l)) => {
                    self.progress.note(&format!(
                        "teardown left: {}",
                        l.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    false
                }
                (Err(e), _) => {
                    self.progress.note(&format!("teardown failed: {e}"));
                    false
                }
                (_, Err(e)) => {
                    self.progress.note(&format!("cannot verify the teardown: {e}"));
                    false
                }
            };
            self.results.clean_teardown = Some(clean);
        }
        if !self.deploy_log.is_empty() {
            let text = self.deploy_log.join("\n") + "\n";
            self.write_artifact("deploy-log", "deploy.log", &text);
        }
        // The app's run folder (a warm app's is the run that installed it).
        let run_dir = self
            .plan
            .abra_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.infra_state_dir().join("runs").join(&self.plan.run_id));
        if self.results.clean_teardown == Some(false) {
            // What is left of the app is found again through its run folder
            // (its env file names the app): the janitor reaps it later.
            self.progress.note(&format!(
                "kept the run folder {} for the janitor, which reaps what the teardown left",
                run_dir.display()
            ));
        } else if run_dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&run_dir) {
                self.progress
                    .note(&format!("cannot remove {}: {e} (the janitor will)", run_dir.display()));
            }
        }
        self.lease = None;
        self.phase_done("teardown", t, w0);
    }

    /// Rungs 1-6 all decided, none failed or errored (the body ran to its end).
    fn green_so_far(&self) -> bool {
        BODY_RUNGS.iter().all(|rung| {
            self.results
                .rungs
                .iter()
                .any(|r| r.rung == *rung && !matches!(r.status, Status::Fail | Status::Error))
        })
    }

    /// Writes the warm record of the app as it runs now.
    fn keep_app_warm(&self) -> Result<PathBuf, String> {
        let (commit, key, value) = self.live.clone().ok_or("no deploy converged")?;
        let app_run_id = self
            .warm
            .as_ref()
            .map_or_else(|| self.plan.run_id.clone(), |w| w.app_run_id.clone());
        let record = WarmRecord {
            schema: crate::state::warm::WARM_SCHEMA.into(),
            recipe: self.plan.recipe.name.clone(),
            app_run_id,
            domain: self.plan.domain.clone(),
            stack: self.plan.stack.clone(),
            abra_dir: self.plan.abra_dir.clone(),
            deployed_ref: commit,
            deployed_label: value,
            label_key: key,
            kept_by_run: self.plan.run_id.clone(),
            kept_at: chrono::Utc::now(),
        };
        record.write(&self.infra_state_dir()).map_err(|e| e.to_string())
    }

    /// The results: undecided rungs 1-6 recorded as not run (with why),
    /// rungs 7 and 8 computed, the level.
    pub fn finish(mut self, interrupted: Option<String>) -> RunResults {
        let not_run = match &interrupted {
            Some(why) => format!("not run: the run was interrupted ({why})"),
            None => "not run: an earlier rung did not pass".to_string(),
        };
        for rung in BODY_RUNGS {
            if !self.decided(rung) {
                self.results.rungs.push(RungResult {
                    rung,
                    status: Status::Skipped,
                    reason: Some(not_run.clone()),
                    duration_s: 0.0,
                    log: None,
                    attempts: 1,
                });
            }
        }
        let t = Instant::now();
        self.results.finish();
        let seven = if self.results.level >= Rung::Tested.level() {
            self.exemplary()
        } else {
            (
                Status::Skipped,
                Some(format!(
                    "not judged: the run reached level {}, and exemplary needs rungs 1-6 green",
                    self.results.level
                )),
            )
        };
        self.decide(Rung::Exemplary, seven, t);
        let finished = chrono::Utc::now();
        self.results.finished_at = finished.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.results.interrupted = interrupted;
        self.results.finish();
        let state_dir = self.infra_state_dir();
        let alive = |stack: &str| Lease::is_held(&crate::state::lease::lease_path(&state_dir, stack));
        let past: Vec<history::PastRun> = history::past_runs(
            &crate::results::layout::recipe_dir(&self.infra.results_root, &self.plan.recipe.name),
            &alive,
        )
        .into_iter()
        .filter(|r| r.run_id != self.plan.run_id)
        .collect();
        let eight = if self.results.level < Rung::Exemplary.level() {
            (
                Status::Skipped,
                Some(format!(
                    "not judged: the run reached level {}, and maintained needs level 7 first",
                    self.results.level
                )),
            )
        } else {
            match history::judge(finished, self.results.level, &past) {
                history::Maintained::Yes(_) => pass(),
                history::Maintained::No(w) => (Status::Fail, Some(w)),
                history::Maintained::NotYet(w) => (Status::Unverified, Some(w)),
            }
        };
        self.decide(Rung::Maintained, eight, t);
        self.results.finish();
        let bar = self.bar(&past);
        self.results.verdict = Some(verdict::judge(&self.results, &bar));
        let wall = self.t0.elapsed().as_secs_f64();
        let waiting = self.waiting.as_secs_f64().min(wall);
        self.results.time_split = Some(TimeSplit {
            wall_s: wall,
            waiting_s: waiting,
            own_s: wall - waiting,
        });
        self.results
    }

    /// Rung 7, judged by [`crate::run::exemplary::judge`] on what the run found.
    fn exemplary(&self) -> Decision {
        let version = self.plan.tested_version.as_deref();
        let notes = version.is_some_and(|v| self.plan.recipe.dir.join("release").join(v).is_file());
        crate::run::exemplary::judge(&crate::run::exemplary::Evidence {
            lint: self.lint_report.as_ref(),
            tested_version: version,
            release_notes: notes,
            clean_teardown: self.results.clean_teardown,
            kept_warm: self.results.kept_warm,
            rungs: &self.results.rungs,
            volumes: &self.results.volumes,
        })
    }

    /// The bar this run is held to: the settings' `min_level`, else the
    /// level of the last run of the newest release on this host, else the
    /// default ([`crate::results::verdict`]).
    fn bar(&self, past: &[history::PastRun]) -> Bar {
        if let Some(level) = self.settings.min_level {
            return Bar {
                level,
                source: BarSource::Setting,
            };
        }
        self.plan
            .newest_release
            .as_deref()
            .and_then(|tag| history::release_bar(past, tag))
            .unwrap_or_else(Bar::default_bar)
    }
}

/// What the install of a run deploys: the upgrade base, or (with none)
/// the tested ref itself (its release tag when it has one): the ref to check
/// out and the version to deploy it as.
pub fn install_target(plan: &RunPlan, settings: &Settings) -> (String, Version) {
    let tested = || {
        let tagged = plan
            .recipe
            .releases()
            .ok()
            .and_then(|rs| rs.into_iter().rev().find(|r| r.commit == plan.tested_ref));
        match tagged {
            Some(r) => (r.tag.clone(), Version::Release(r.tag)),
            None => (plan.tested_ref.clone(), Version::Chaos(small_sha(&plan.tested_ref))),
        }
    };
    match (&settings.upgrade_base, &plan.base) {
        (UpgradeBase::Skip(_), _) => tested(),
        (UpgradeBase::Pinned(tag), _) => (tag.clone(), Version::Release(tag.clone())),
        (UpgradeBase::Previous, Ok(b)) => (b.tag.clone(), Version::Release(b.tag.clone())),
        (UpgradeBase::Previous, Err(_)) => tested(),
    }
}

/// The adaptation a run records when the deploy gives `services`
/// `deploy.endpoint_mode: dnsrr` (virtual IPs do not route on this host,
/// as `vip` found); `ccci plan` foretells the same.
pub fn dnsrr_adaptation(services: &[String], vip: &VipSupport) -> Adaptation {
    let why = match vip {
        VipSupport::NoIpvs { looked_at } => {
            format!("this kernel has no IPVS ({looked_at}): swarm virtual IPs do not route")
        }
        VipSupport::Routes { .. } => "virtual IPs route here".into(),
    };
    Adaptation {
        what: format!(
            "deploy.endpoint_mode: dnsrr for services without published ports: {}",
            services.join(", ")
        ),
        why,
    }
}

/// The adaptation a run with the native deployer records for cc-ci's
/// resource caps under `settings` (`ccci test` records it, `ccci plan`
/// foretells it).
pub fn limits_adaptation(settings: &Settings) -> Adaptation {
    Adaptation {
        what: format!(
            "every service runs under deploy.resources.limits of at most {} (cc-ci's override; a recipe's own lower limits stay)",
            settings.limits.describe()
        ),
        why: match &settings.limits_reason {
            Some(r) => format!("one test app must not starve the runs beside it; raised by the settings: {r}"),
            None => "one test app must not starve the runs beside it ([limits] in the recipe's ccci.toml raises it)".into(),
        },
    }
}

/// Collects the deploy-relevant settings in a map for results (the
/// deployer's configuration as shown in results.json).
pub fn deployer_info(name: &str, extra: &[(&str, String)]) -> serde_json::Value {
    let mut m: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    m.insert("name".into(), serde_json::json!(name));
    for (k, v) in extra {
        m.insert((*k).to_string(), serde_json::json!(v));
    }
    serde_json::json!(m)
}
