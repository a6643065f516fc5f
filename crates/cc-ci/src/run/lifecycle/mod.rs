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
//! Every wait is on Docker or the app; [`TimeSplit`](crate::results::TimeSplit)
//! tells it apart from cc-ci's own time.
//!
//! This module holds [`Run`] itself (its state, [`Run::body`], the helpers
//! every rung shares), [`Infra`] and [`Progress`]; each step of the ladder
//! has a module of its own: `preflight`, `install`, `serve`, `upgrade`,
//! `restore`, `lint`, `tested`, `teardown`, `finish` (rungs 7, 8, the
//! verdict), with `warm` (`--quick`) and `adaptation` beside them.

mod adaptation;
mod finish;
mod install;
mod lint;
mod preflight;
mod restore;
mod serve;
mod teardown;
mod tested;
mod upgrade;
mod warm;

pub use adaptation::{dnsrr_adaptation, limits_adaptation};
pub use install::install_target;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;

use crate::deploy::ipvs::VipSupport;
use crate::deploy::{App, DeployError, DeployRequest, Deployer, Fault, Kind, Version};
use crate::results::level::{Rung, Status};
use crate::results::{AppIdentity, PhaseTiming, RunResults, RungResult};
use crate::run::contract::TestEnv;
use crate::run::data::{DataFault, DataProbe};
use crate::run::plan::RunPlan;
use crate::run::script::{self, ScriptOutcome};
use crate::run::service_logs;
use crate::run::witness::Witness;
use crate::settings::Settings;
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
    /// A Chromium started ahead for the next screenshot, if one was.
    shot_ahead: Option<crate::run::screenshot::Prelaunched>,
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
            shot_ahead: None,
            keep_warm: false,
            live: None,
            data: settings
                .data
                .as_ref()
                .map(|d| DataProbe::new(d, settings.timeouts.scripts)),
            data_written: false,
        }
    }

    /// Records each service's image as the tested version's deploy reads
    /// it (results.json `images`; from the confinement reading).
    pub fn record_images(&mut self, images: std::collections::BTreeMap<String, String>) {
        self.results.images = images;
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

    /// The body of the run: preflight, lease, rungs 1-6. The caller may drop
    /// this future at any await (a signal); [`Run::teardown`] then cleans up
    /// and [`Run::finish`] records what was decided.
    pub async fn body(&mut self) {
        if !self.preflight().await {
            return;
        }

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
