//! A `ccci test` run from its options to its results: what the binary
//! hands over once clap has parsed the command line.
//!
//! Two steps, so that a refusal never touches Docker:
//!
//! 1. [`prepare`]: plan the run (recipe, tested ref, upgrade base, run id,
//!    domain, stack), load the recipe's settings, check that both versions
//!    the run deploys stay inside their test app, create the results
//!    folder, read the state dir's owner id. Every failure here is a
//!    [`Refused`]: nothing was deployed (`ccci` exits 2).
//! 2. [`run`]: build the infrastructure (the Docker client, the deployer,
//!    Traefik's address, the CA, the helper and restic images), claim a warm
//!    app for `--quick`, then the run's body under SIGINT and SIGTERM;
//!    whichever ends first, the teardown, then the decisions (rungs 7 and 8,
//!    the level), written to `<results root>/<recipe>/<run id>/results.json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::deploy::abra::Abra;
use crate::deploy::ipvs::VipSupport;
use crate::deploy::native::{default_cli, Native, ResolveImage};
use crate::deploy::Deployer;
use crate::results::RunResults;
use crate::run::confinement::Confinement;
use crate::run::lifecycle::{deployer_info, limits_adaptation, Infra, Progress, Run};
use crate::run::plan::{RunEnv, RunPlan};
use crate::run::warm::{self, Claim};
use crate::settings::Settings;
use crate::state::owner::Owner;

/// Which deployer makes the run's deploys.
#[derive(Debug, Clone)]
pub enum DeployerChoice {
    /// cc-ci's own, on `docker stack deploy` (`docs/abra.md`).
    Native {
        /// The docker CLI (default: [`default_cli`]).
        cli: Option<PathBuf>,
        /// `docker stack deploy --resolve-image`.
        resolve_image: ResolveImage,
    },
    /// The real abra CLI (default: `abra` on PATH; a missing one is the
    /// install rung's `error`).
    Abra {
        /// The abra binary.
        bin: Option<PathBuf>,
    },
}

/// What a run needs beyond its plan: the host's parts.
#[derive(Debug, Clone)]
pub struct HostParts {
    /// The deployer.
    pub deployer: DeployerChoice,
    /// Whether swarm virtual IPs route here.
    pub vip: VipSupport,
    /// Traefik's web-secure address.
    pub traefik: SocketAddr,
    /// The PEM file of the CA that issued the wildcard certificate.
    pub ca_cert: PathBuf,
    /// An image present on the host for helper containers.
    pub helper_image: String,
    /// The restic image backups run in.
    pub restic_image: String,
    /// Take screenshots when Chromium is there.
    pub screenshots: bool,
    /// `--quick`: adopt a warm app and keep this one warm if green.
    pub quick: bool,
}

/// A run refused before anything was deployed: what is wrong, with the
/// file and the fix (the whole chain of causes, in one line).
#[derive(Debug, thiserror::Error)]
#[error("refused before anything was deployed: {0}")]
pub struct Refused(pub String);

impl Refused {
    fn of(what: &str, e: &dyn std::error::Error) -> Refused {
        let mut text = if what.is_empty() {
            e.to_string()
        } else {
            format!("{what}: {e}")
        };
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        Refused(text)
    }
}

/// A run planned and checked, nothing deployed yet.
pub struct Prepared {
    /// The plan (a `--quick` run may still adopt a warm app's).
    pub plan: RunPlan,
    /// The recipe's settings.
    pub settings: Settings,
    /// Both versions the run deploys, as the deploy reads them, checked.
    pub confinement: Confinement,
    /// The state dir's id, labelled on the app's services.
    pub owner: Owner,
    /// The results root.
    pub results_root: PathBuf,
    /// The state dir.
    pub state_dir: PathBuf,
}

/// Plans the run of the recipe checkout `recipe_dir` and checks all that
/// can be checked without Docker (see the module doc).
///
/// `settings_dir` is made absolute (the recipe's executables run in their
/// own folder). The settings and the confinement are described on stderr
/// as they are read.
///
/// # Errors
/// [`Refused`], naming the file and the fix: not a recipe, a run id that
/// is malformed or used, broken settings, a version that is not confined to
/// its test app, a results folder or state dir that cannot be written.
pub fn prepare(
    recipe_dir: &Path,
    env: &RunEnv,
    run_id: Option<&str>,
    settings_dir: &Path,
) -> Result<Prepared, Refused> {
    let plan = RunPlan::with_run_id(recipe_dir, env, run_id).map_err(|e| Refused::of("", &e))?;
    let settings_dir = std::path::absolute(settings_dir).unwrap_or_else(|_| settings_dir.to_path_buf());
    let mut settings = Settings::load(&settings_dir, &plan.recipe.name)
        .map_err(|e| Refused::of("fix the recipe's cc-ci settings", &e))?;
    settings
        .repo_local(&plan.recipe.dir)
        .map_err(|e| Refused::of("the recipe's own settings", &e))?;
    eprint!("{}", settings.describe());
    // A recipe under test stays inside its test app unless the settings
    // allow it by name, with a reason.
    let confinement =
        crate::run::confinement::check(&plan, &settings).map_err(|e| Refused::of("the recipe is not confined", &e))?;
    eprint!("{}", confinement.describe());
    std::fs::create_dir_all(&plan.results_dir).map_err(|e| {
        Refused::of(
            &format!("cannot create the results folder {}", plan.results_dir.display()),
            &e,
        )
    })?;
    // Its janitor, and no other, reaps the app if this run dies.
    let owner = Owner::of(&env.state_dir).map_err(|e| Refused::of("the state dir's owner id", &e))?;
    Ok(Prepared {
        plan,
        settings,
        confinement,
        owner,
        results_root: env.results_dir.clone(),
        state_dir: env.state_dir.clone(),
    })
}

/// What a run ended with.
pub struct Finished {
    /// The results, written.
    pub results: RunResults,
    /// Where they were written (`<run folder>/results.json`).
    pub file: PathBuf,
    /// The signal that interrupted the run, if one did (`SIGINT (Ctrl-C)`
    /// or `SIGTERM`).
    pub interrupted: Option<&'static str>,
}

/// The run's deployer and how it is configured (for results.json).
fn deployer(
    choice: &DeployerChoice,
    docker: &bollard::Docker,
    vip: &VipSupport,
    prepared: &Prepared,
) -> (Box<dyn Deployer>, serde_json::Value) {
    let settings = &prepared.settings;
    match choice {
        DeployerChoice::Native { cli, resolve_image } => {
            let cli = cli.clone().unwrap_or_else(default_cli);
            let info = deployer_info(
                "native",
                &[
                    ("docker_cli", cli.display().to_string()),
                    ("resolve_image", resolve_image.as_str().to_string()),
                    ("vip", format!("{vip:?}")),
                    ("limits", format!("{} per service", settings.limits.describe())),
                ],
            );
            let native = Native {
                docker: docker.clone(),
                cli,
                resolve_image: *resolve_image,
                vip: vip.clone(),
                lint_gate: true,
                post_cmd_timeout: settings.timeouts.scripts,
                owner: Some(prepared.owner.clone()),
                allow: Some(settings.allow.clone()),
                limits: Some(settings.limits),
            };
            (Box::new(native), info)
        }
        DeployerChoice::Abra { bin } => {
            let bin = bin
                .clone()
                .or_else(|| on_path("abra"))
                .unwrap_or_else(|| PathBuf::from("abra"));
            let info = deployer_info(
                "abra",
                &[
                    ("abra", bin.display().to_string()),
                    ("limits", "none: abra deploys without cc-ci's override".to_string()),
                ],
            );
            let abra = Abra {
                abra: bin,
                docker: docker.clone(),
            };
            (Box::new(abra), info)
        }
    }
}

/// `name` on PATH, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs a prepared run to its end (see the module doc) and writes its
/// results. Never leaves the app deployed unless `--quick` kept it warm:
/// the teardown runs after the body or after the first SIGINT/SIGTERM.
///
/// # Errors
/// Only what leaves no results to write: the signal handlers cannot be
/// installed, or results.json cannot be written (the message names the
/// file). Everything the run meets is in the results, as a rung's status.
pub async fn run(mut prepared: Prepared, host: HostParts, progress: &mut dyn Progress) -> std::io::Result<Finished> {
    use tokio::signal::unix::{signal, SignalKind};
    // An engine that does not answer is the install rung's `error`.
    let (docker, docker_problem) = crate::host::swarm::connect_or_why().await;
    let (deployer, info) = deployer(&host.deployer, &docker, &host.vip, &prepared);
    let chromium = crate::run::screenshot::chromium_from_env();
    let infra = Infra {
        docker,
        deployer,
        deployer_info: info,
        traefik: host.traefik,
        ca_cert: host.ca_cert,
        helper_image: host.helper_image,
        restic_image: host.restic_image,
        vip: host.vip,
        screenshots: host.screenshots && chromium.is_file(),
        results_root: prepared.results_root.clone(),
        docker_problem,
    };
    let claim = if host.quick {
        let p = &prepared.plan;
        Some(warm::claim(&infra.docker, &prepared.state_dir, &p.recipe.name, &p.run_id).await)
    } else {
        None
    };
    if let Some(Claim::Adopted { record, .. }) = &claim {
        prepared.plan.adopt_warm(record);
    }
    let Prepared {
        plan,
        settings,
        confinement,
        ..
    } = prepared;
    let native = infra.deployer.name() == "native";
    let mut run = Run::new(&plan, &settings, &infra, progress);
    // The versions were read in deploy order: the tested one is last.
    if let Some(Ok(read)) = confinement.checked.last().map(|c| &c.read) {
        run.record_images(read.images.clone());
    }
    for (v, why) in confinement.allowed() {
        run.adapt(&format!("allowed beyond the test app by the settings: {v}"), &why);
    }
    if native {
        let a = limits_adaptation(&settings);
        run.adapt(&a.what, &a.why);
    }
    match claim {
        Some(Claim::Adopted { record, lease }) => {
            run.adopt_warm(*record, *lease);
            run.keep_warm();
        }
        Some(Claim::Cold { why }) => {
            run.adapt("--quick asked for a warm app; this run is cold", &why);
            run.keep_warm();
        }
        None => {}
    }
    // Both handlers are in place before the body starts: a signal that came
    // before `select!` first polled a lazily made listener would kill the
    // process with its default action, leaving the app.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let interrupted = {
        let body = run.body();
        tokio::pin!(body);
        tokio::select! {
            () = &mut body => None,
            _ = sigint.recv() => Some("SIGINT (Ctrl-C)"),
            _ = sigterm.recv() => Some("SIGTERM"),
        }
    };
    if let Some(sig) = interrupted {
        eprintln!("ccci: {sig}: tearing the app down before exiting (further signals are ignored until then)");
    }
    run.teardown().await;
    let results = run.finish(interrupted.map(str::to_string));
    let file = plan.results_dir.join(crate::results::layout::RESULTS_FILE);
    results
        .write(&file)
        .map_err(|e| std::io::Error::other(format!("cannot write {}: {e}", file.display())))?;
    Ok(Finished {
        results,
        file,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("settings {0} are broken")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn a_refusal_names_every_cause_on_one_line() {
        let e = Outer(
            "tests/recipes/x/ccci.toml",
            std::io::Error::other("line 3: unknown key `tiemouts`"),
        );
        let r = Refused::of("fix the recipe's cc-ci settings", &e).to_string();
        assert_eq!(
            r,
            "refused before anything was deployed: fix the recipe's cc-ci settings: \
             settings tests/recipes/x/ccci.toml are broken: line 3: unknown key `tiemouts`"
        );
        assert_eq!(
            Refused::of("", &e).to_string(),
            "refused before anything was deployed: settings tests/recipes/x/ccci.toml are broken: \
             line 3: unknown key `tiemouts`"
        );
    }

    /// A checkout that is not a recipe is refused before Docker is asked
    /// anything: `prepare` has no Docker client to ask.
    #[test]
    fn prepare_refuses_a_folder_that_is_not_a_recipe() {
        let d = tempfile::tempdir().unwrap();
        let env = RunEnv {
            domain: "ci.test".into(),
            state_dir: d.path().join("state"),
            results_dir: d.path().join("results"),
        };
        let Err(e) = prepare(d.path(), &env, None, &d.path().join("settings")) else {
            panic!("an empty folder is not a recipe");
        };
        let text = e.to_string();
        assert!(text.starts_with("refused before anything was deployed: "), "{text}");
        assert!(!d.path().join("results").exists(), "nothing written for a refused run");
    }
}
