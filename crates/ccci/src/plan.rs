//! `ccci plan`: what `ccci test` would do with a recipe, from the code
//! `ccci test` runs before anything deploys: the run's plan
//! ([`RunPlan`]), the per-recipe settings ([`Settings`]), the install
//! target ([`install_target`]), both versions read as the deployer reads
//! them and checked for confinement ([`confinement::read`]), and the
//! adaptations the run would record. Touches no Docker; writes nothing but
//! the throw-away clone the confinement check reads the versions from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cc_ci::deploy::ipvs::VipSupport;
use cc_ci::deploy::limits::{format_bytes, format_cpus};
use cc_ci::deploy::secret::{Generation, SecretPlan, PASSPHRASE_WORDS};
use cc_ci::results::{Adaptation, RefKind};
use cc_ci::run::confinement::{self, Checked, Confinement};
use cc_ci::run::lifecycle::{dnsrr_adaptation, install_target, limits_adaptation};
use cc_ci::run::plan::{RunEnv, RunPlan};
use cc_ci::settings::{Settings, UpgradeBase};
use serde_json::{json, Value};

use crate::{DeployerKind, OutputFormat, Vip};

/// The examples at the end of `ccci plan --help`.
pub const EXAMPLES: &str = "Examples:
  ccci plan ~/recipes/gitea                              a checkout, this host's settings
  ccci plan --settings-dir ~/cc-ci/tests/recipes gitea   the settings a worker would use
  ccci plan --vip dnsrr .                                as on a host without IPVS
  ccci plan -f json . | jq '.versions[].deploy.secrets'  the secrets, never their values";

/// `ccci plan`'s arguments (those of `ccci test` that change what a run
/// would do).
#[derive(clap::Args)]
pub struct PlanArgs {
    /// A recipe checkout (a git repository with compose.yml and
    /// .env.sample), or the name of one under --recipes-dir.
    recipe: String,
    /// Where named recipes are looked up.
    #[arg(long, env = "CCCI_RECIPES_DIR", default_value = "/var/lib/cc-ci/recipes")]
    recipes_dir: PathBuf,
    /// Per-recipe settings: `<dir>/<recipe>/ccci.toml` and executables
    /// (format: tests/recipes/README.md). No folder means zero config.
    #[arg(long, env = "CCCI_SETTINGS_DIR", default_value = "tests/recipes")]
    settings_dir: PathBuf,
    /// The wildcard domain Traefik serves; apps get `<recipe>-<6 hex>.<domain>`.
    #[arg(long, env = "CCCI_DOMAIN", default_value = "ci.test")]
    domain: String,
    /// `ccci test`'s state folder (read only: a run id in use is not drawn).
    #[arg(long, env = "CCCI_STATE_DIR", default_value = "/var/lib/cc-ci")]
    state_dir: PathBuf,
    /// `ccci test`'s results root (read only, as --state-dir).
    #[arg(long, env = "CCCI_RESULTS_DIR", default_value = "/var/lib/cc-ci/results")]
    results_dir: PathBuf,
    /// The deployer the run would use (cc-ci's limits and dnsrr override
    /// are the native deployer's).
    #[arg(long, env = "CCCI_DEPLOYER", value_enum, default_value = "native")]
    deployer: DeployerKind,
    /// Whether swarm virtual IPs route here (auto: read from the kernel, as
    /// `ccci test` does).
    #[arg(long, env = "CCCI_VIP", value_enum, default_value = "auto")]
    vip: Vip,
    /// text or json.
    #[arg(long, short, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// Runs `ccci plan` (exit statuses: see `ccci plan --help`).
pub fn run(args: &PlanArgs) -> Result<ExitCode> {
    const REFUSED: &str = "`ccci test` would refuse this recipe before deploying anything";
    let dir = crate::resolve(&args.recipe, &args.recipes_dir);
    let env = RunEnv {
        domain: args.domain.clone(),
        state_dir: args.state_dir.clone(),
        results_dir: args.results_dir.clone(),
    };
    let plan = RunPlan::new(&dir, &env).context(REFUSED)?;
    let settings_dir = std::path::absolute(&args.settings_dir).unwrap_or_else(|_| args.settings_dir.clone());
    let mut settings = Settings::load(&settings_dir, &plan.recipe.name)
        .with_context(|| format!("{REFUSED}: fix the recipe's cc-ci settings"))?;
    settings.repo_local(&plan.recipe.dir).context(REFUSED)?;
    let read = confinement::read(&plan, &settings).context(REFUSED)?;
    let vip = args.vip.support();
    let native = args.deployer == DeployerKind::Native;
    let adaptations = adaptations(&read, &settings, &vip, native);
    match args.format {
        OutputFormat::Text => print!("{}", text(&plan, &settings, &read, &vip, native, &adaptations)),
        OutputFormat::Json => println!("{:#}", json(&plan, &settings, &read, &vip, native, &adaptations)),
    }
    match read.refusal(&settings) {
        Some(refusal) => Err(anyhow::Error::new(refusal).context(REFUSED)),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The adaptations the run would record, as `ccci test` and the deploys
/// record them: what the settings allow beyond the test app, the native
/// deployer's resource caps, dnsrr where virtual IPs do not route.
fn adaptations(read: &Confinement, settings: &Settings, vip: &VipSupport, native: bool) -> Vec<Adaptation> {
    let mut out: Vec<Adaptation> = read
        .allowed()
        .into_iter()
        .map(|(v, why)| Adaptation {
            what: format!("allowed beyond the test app by the settings: {v}"),
            why,
        })
        .collect();
    if native {
        out.push(limits_adaptation(settings));
        if !vip.routes() {
            let mut services: Vec<String> = read
                .checked
                .iter()
                .filter_map(|c| c.read.as_ref().ok())
                .flat_map(|r| r.dnsrr.iter().cloned())
                .collect();
            services.sort();
            services.dedup();
            if !services.is_empty() {
                out.push(dnsrr_adaptation(&services, vip));
            }
        }
    }
    out
}

fn short(commit: &str) -> &str {
    &commit[..12.min(commit.len())]
}

fn ref_kind(k: &RefKind) -> String {
    match k {
        RefKind::Release { tag } => format!("a release (tag {tag})"),
        RefKind::DefaultBranch { branch } => format!("the default branch's tip ({branch}), untagged"),
        RefKind::Change => "a change (neither a release nor the default branch's tip)".into(),
    }
}

/// What the upgrade would be, or why there is none.
fn upgrade(plan: &RunPlan, settings: &Settings) -> (Option<String>, String) {
    match (&settings.upgrade_base, &plan.base) {
        (UpgradeBase::Skip(r), _) => (None, format!("skipped by the settings: {r}")),
        (UpgradeBase::Pinned(tag), _) => (Some(tag.clone()), format!("from {tag} (pinned by the settings)")),
        (UpgradeBase::Previous, Ok(b)) => (
            Some(b.tag.clone()),
            format!("from {} (commit {}) to the tested commit", b.tag, short(&b.commit)),
        ),
        (UpgradeBase::Previous, Err(why)) => (
            None,
            format!("none: {why}; the tested commit is installed directly and the upgrade rung is unverified"),
        ),
    }
}

fn generation(g: &Generation) -> (&'static str, Option<usize>, String) {
    match g {
        Generation::Password(n) => ("password", Some(*n), format!("{n} alphanumeric characters")),
        Generation::Hex(n) => ("hex", Some(*n), format!("{n} hex digits")),
        Generation::Passphrase => ("passphrase", None, format!("a passphrase of {PASSPHRASE_WORDS} words")),
        Generation::Given => (
            "given",
            None,
            "not generated (generate=false): the value comes from the settings' [secrets]".into(),
        ),
    }
}

fn secret_line(s: &SecretPlan, settings: &Settings) -> String {
    let (_, _, how) = generation(&s.generation);
    let missing = if s.generation == Generation::Given && !settings.secrets.contains_key(&s.id) {
        format!(" (MISSING: the deploy fails; give [secrets] {} in ccci.toml)", s.id)
    } else {
        String::new()
    };
    format!("{} {}: {how}{missing}  [{}]", s.id, s.version, s.remote_name)
}

fn version_text(c: &Checked, settings: &Settings, native: bool, vip: &VipSupport) -> String {
    let mut out = format!("version {}, commit {}\n", c.version, short(&c.commit));
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<12} {v}\n"));
    match &c.read {
        Err(e) => line("deploy", format!("fails before anything deploys: {e}")),
        Ok(r) => {
            line("compose", r.compose_files.join(":"));
            let width = r.images.keys().map(String::len).max().unwrap_or(0);
            let iwidth = r.images.values().map(String::len).max().unwrap_or(0);
            for (i, (svc, image)) in r.images.iter().enumerate() {
                let mut extra = String::new();
                if native {
                    if let Some(l) = r.limits.get(svc) {
                        extra.push_str(&format!(
                            "  limits {} CPU, {}",
                            format_cpus(l.nano_cpus),
                            format_bytes(l.memory_bytes)
                        ));
                    }
                    if !vip.routes() && r.dnsrr.contains(svc) {
                        extra.push_str("  endpoint_mode dnsrr");
                    }
                }
                line(
                    if i == 0 { "services" } else { "" },
                    format!("{svc:<width$}  {image:<iwidth$}{extra}").trim_end().to_string(),
                );
            }
            if r.secrets.is_empty() {
                line("secrets", "none".into());
            }
            for (i, s) in r.secrets.iter().enumerate() {
                line(if i == 0 { "secrets" } else { "" }, secret_line(s, settings));
            }
        }
    }
    if c.report.refused.is_empty() && c.report.allowed.is_empty() {
        line("confinement", "nothing leaves the test app".into());
    }
    for v in &c.report.refused {
        line("REFUSED", v.to_string());
    }
    for (v, why) in &c.report.allowed {
        line("allowed", format!("{v} (because: {why})"));
    }
    out
}

fn text(
    plan: &RunPlan,
    settings: &Settings,
    read: &Confinement,
    vip: &VipSupport,
    native: bool,
    adaptations: &[Adaptation],
) -> String {
    let mut out = format!(
        "plan of `ccci test` for {} ({}): nothing deployed, nothing written\n\n",
        plan.recipe.name,
        plan.recipe.dir.display()
    );
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16} {v}\n"));
    line(
        "tested",
        format!(
            "commit {}, version {}",
            plan.tested_ref,
            plan.tested_version.as_deref().unwrap_or("none declared")
        ),
    );
    line("ref kind", ref_kind(&plan.ref_kind));
    line(
        "newest release",
        plan.newest_release.clone().unwrap_or_else(|| "none".into()),
    );
    let (_, up) = upgrade(plan, settings);
    line("upgrade", up);
    let (install, _) = install_target(plan, settings);
    line("install", install);
    line(
        "app",
        format!(
            "{} (stack {}; the run id {} is drawn anew by each run)",
            plan.domain, plan.stack, plan.run_id
        ),
    );
    line(
        "deployer",
        if native {
            "native (cc-ci's `docker stack deploy`, abra's pipeline)".into()
        } else {
            "abra (no cc-ci override: no limits, no dnsrr)".into()
        },
    );
    line(
        "virtual IPs",
        match vip {
            VipSupport::Routes { evidence } => format!("route here ({evidence})"),
            VipSupport::NoIpvs { looked_at } => format!("do not route here (no IPVS: {looked_at})"),
        },
    );
    out.push('\n');
    out.push_str(&settings.describe());
    out.push_str(&format!(
        "  {:<14} {}\n\n",
        "defaulted",
        if settings.defaulted.is_empty() {
            "nothing".to_string()
        } else {
            settings.defaulted.join(", ")
        }
    ));
    for c in &read.checked {
        out.push_str(&version_text(c, settings, native, vip));
        out.push('\n');
    }
    for why in &read.skipped {
        out.push_str(&format!("not checked: {why}\n"));
    }
    out.push_str("adaptations on this host:\n");
    if adaptations.is_empty() {
        out.push_str("  none\n");
    }
    for a in adaptations {
        out.push_str(&format!("  {} (because: {})\n", a.what, a.why));
    }
    let refused = read.refused().len();
    out.push_str(&if refused == 0 {
        "\n`ccci test` would go ahead: exit 0\n".to_string()
    } else {
        format!("\n`ccci test` would refuse the recipe ({refused} confinement problem(s)): exit 2\n")
    });
    out
}

fn json(
    plan: &RunPlan,
    settings: &Settings,
    read: &Confinement,
    vip: &VipSupport,
    native: bool,
    adaptations: &[Adaptation],
) -> Value {
    let (base, upgrade_text) = upgrade(plan, settings);
    let (install, _) = install_target(plan, settings);
    let violation = |v: &cc_ci::recipe::confine::Violation| json!({ "file": v.file, "key": v.key, "kind": v.kind.key(), "subject": v.subject, "what": v.what });
    let versions: Vec<Value> = read
        .checked
        .iter()
        .map(|c| {
            let deploy = match &c.read {
                Err(e) => json!({ "error": e }),
                Ok(r) => json!({
                    "compose_files": r.compose_files,
                    "services": r.images.iter().map(|(svc, image)| {
                        let l = r.limits.get(svc).filter(|_| native);
                        json!({
                            "name": svc,
                            "image": image,
                            "limits": l.map(|l| json!({ "cpus": format_cpus(l.nano_cpus), "memory_bytes": l.memory_bytes })),
                            "dnsrr": native && !vip.routes() && r.dnsrr.contains(svc),
                        })
                    }).collect::<Vec<_>>(),
                    "secrets": r.secrets.iter().map(|s| {
                        let (kind, length, _) = generation(&s.generation);
                        json!({ "id": s.id, "version": s.version, "name": s.remote_name, "kind": kind, "length": length })
                    }).collect::<Vec<_>>(),
                }),
            };
            json!({
                "version": c.version,
                "commit": c.commit,
                "deploy": deploy,
                "refused": c.report.refused.iter().map(violation).collect::<Vec<_>>(),
                "allowed": c.report.allowed.iter().map(|(v, why)| json!({ "violation": violation(v), "because": why })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let refusal = read.refusal(settings).map(|e| e.to_string());
    json!({
        "recipe": plan.recipe.name,
        "dir": plan.recipe.dir.display().to_string(),
        "tested": { "commit": plan.tested_ref, "version": plan.tested_version, "ref_kind": plan.ref_kind },
        "newest_release": plan.newest_release,
        "upgrade": { "base": base, "text": upgrade_text, "problem": plan.base.as_ref().err().map(ToString::to_string) },
        "install": install,
        "app": { "domain": plan.domain, "stack": plan.stack, "run_id_drawn_per_run": plan.run_id },
        "deployer": if native { "native" } else { "abra" },
        "vip": match vip {
            VipSupport::Routes { evidence } => json!({ "routes": true, "evidence": evidence }),
            VipSupport::NoIpvs { looked_at } => json!({ "routes": false, "looked_at": looked_at }),
        },
        "settings": settings.manifest(),
        "versions": versions,
        "not_checked": read.skipped,
        "adaptations": adaptations,
        "refused": refusal,
        "exit": if refusal.is_some() { 2 } else { 0 },
    })
}
