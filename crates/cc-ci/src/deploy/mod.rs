//! Deploying an app the way abra does (`docs/abra.md`), behind one
//! small trait, [`Deployer`], with two implementations:
//!
//! - [`native::Native`] (the default): abra's conventions followed by cc-ci
//!   itself — the app's env file in an `ABRA_DIR` ([`app`]), secrets
//!   generated as abra generates them ([`secret`]), abra.sh exports merged,
//!   the labels and env abra adds ([`overrides`]), then Docker's own
//!   `docker stack deploy`, waiting for convergence ([`converge`]) and
//!   running `POST_DEPLOY_CMDS`/`POST_UPGRADE_CMDS` ([`exec`]);
//! - [`abra::Abra`]: the same steps through the real abra CLI, for hosts
//!   that have it.
//!
//! A stack's objects and their removal are in [`stack`].

use std::path::PathBuf;
use std::time::Duration;

use crate::recipe::version::RecipeVersion;

pub mod abra;
pub mod app;
pub mod compose_version;
pub mod converge;
pub mod exec;
pub mod images;
pub mod ipvs;
pub mod limits;
pub mod native;
pub mod overrides;
pub mod secret;
pub mod stack;

pub use app::App;
pub use overrides::Version;

/// The step of a deploy that went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Making the app: env file, recipe checkout (`abra app new`).
    NewApp,
    /// Checking out the version to deploy.
    Checkout,
    /// abra's lint gate before a release deploy.
    Lint,
    /// Reading the compose files `COMPOSE_FILE` names.
    Compose,
    /// Generating or finding the app's secrets.
    Secrets,
    /// Every service's image on the host (looked up, pulled if allowed).
    Images,
    /// `docker stack deploy` (or `abra app deploy`).
    StackDeploy,
    /// Waiting for the services to converge.
    Converge,
    /// `POST_DEPLOY_CMDS` / `POST_UPGRADE_CMDS`.
    PostDeploy,
    /// Undeploying and removing the app.
    Remove,
}

/// Who is at fault when a deploy fails: the recipe (the rung `fail`s) or
/// the infrastructure (the rung is an `error`: says nothing of the recipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The recipe (or its settings) is at fault.
    Recipe,
    /// Docker, the host, a tool.
    Infrastructure,
}

/// A deploy step that failed: which, whose fault, and what happened (in a
/// maintainer's words, naming the file, service or secret and the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step:?}: {detail}")]
pub struct DeployError {
    /// The step.
    pub step: Step,
    /// Whose fault.
    pub fault: Fault,
    /// What happened.
    pub detail: String,
}

impl DeployError {
    /// The recipe is at fault.
    pub fn recipe(step: Step, detail: impl Into<String>) -> DeployError {
        DeployError {
            step,
            fault: Fault::Recipe,
            detail: detail.into(),
        }
    }

    /// The infrastructure is at fault.
    pub fn infra(step: Step, detail: impl Into<String>) -> DeployError {
        DeployError {
            step,
            fault: Fault::Infrastructure,
            detail: detail.into(),
        }
    }
}

/// Why a deploy happens: which post-deploy commands run after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first deploy of the app: `POST_DEPLOY_CMDS`.
    Install,
    /// A deploy over a running app: `POST_UPGRADE_CMDS`.
    Upgrade,
}

/// One deploy to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    /// The ref to check out: a release tag, or the tested commit.
    pub reference: String,
    /// Release (`abra app deploy <app> <tag>`) or chaos (`--chaos`).
    pub version: Version,
    /// Install or upgrade.
    pub kind: Kind,
    /// Convergence timeout when the recipe gives none
    /// (`coop-cloud.${STACK_NAME}.timeout` on `app`).
    pub default_timeout: Duration,
    /// A timeout that overrides the recipe's label (the run's settings said so).
    pub forced_timeout: Option<Duration>,
}

/// A post-deploy command that ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PostCmd {
    /// The service it ran in.
    pub service: String,
    /// The abra.sh function and its arguments.
    pub command: String,
    /// Its exit code.
    pub exit_code: i64,
    /// Its output (stdout then stderr, capped).
    pub output: String,
}

/// A deploy that converged.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The commit deployed (40 hex).
    pub commit: String,
    /// The convergence timeout used, and where it came from.
    pub timeout: (Duration, &'static str),
    /// Time spent in the deploy command itself.
    pub command_time: Duration,
    /// The convergence wait.
    pub convergence: converge::Convergence,
    /// Post-deploy commands that ran, in order.
    pub post_cmds: Vec<PostCmd>,
    /// Secrets created before this deploy (swarm names; never values).
    pub secrets_created: Vec<String>,
    /// Services switched to `endpoint_mode: dnsrr` (an environment adaptation).
    pub dnsrr: Vec<String>,
    /// The override file passed to the stack deploy, if one was written.
    pub override_file: Option<PathBuf>,
    /// Lines worth keeping in the run's deploy log.
    pub log: Vec<String>,
}

/// The compose files the app env's `COMPOSE_FILE` names (split on `:`,
/// default `compose.yml`: abra's `GetComposeFiles`), from `version` (the
/// app's checkout at `reference`, read once), and the secrets they use,
/// planned as abra plans them. What both deployers need before anything is
/// deployed.
///
/// # Errors
/// A recipe-fault [`DeployError`] naming the missing file, the compose
/// file and line, or the secret.
pub(crate) fn read_version(
    version: &RecipeVersion,
    app_env: &app::AppEnv,
    reference: &str,
) -> Result<(Vec<String>, crate::recipe::compose::ComposeSet, Vec<secret::SecretPlan>), DeployError> {
    let env = &app_env.values;
    let files = compose_files(env);
    if let Some(f) = files.iter().find(|f| !version.has_compose_file(f)) {
        return Err(DeployError::recipe(
            Step::Compose,
            format!(
                "COMPOSE_FILE names {f}, which the recipe at {reference} does not have; fix COMPOSE_FILE in .env.sample or add the file"
            ),
        ));
    }
    let compose = version
        .compose_set(&files)
        .map_err(|e| DeployError::recipe(Step::Compose, e.to_string()))?;
    let plans =
        secret::plan(&compose, env, &app_env.file).map_err(|e| DeployError::recipe(Step::Secrets, e.to_string()))?;
    Ok((files, compose, plans))
}

/// The compose files the app env's `COMPOSE_FILE` names, in order
/// ([`crate::recipe::compose_files`]).
pub fn compose_files(env: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    crate::recipe::compose_files(env.get("COMPOSE_FILE").map(String::as_str))
}

/// A new app: what `abra app new` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    /// The env file.
    pub env_file: PathBuf,
    /// The recipe checkout.
    pub checkout: PathBuf,
}

/// Deploys apps as abra does. Implementations: [`native::Native`],
/// [`abra::Abra`]. All methods are cancel-safe in the sense that dropping
/// the future kills any child process it started (SIGTERM on a run tears
/// down through [`Deployer::remove`]).
#[async_trait::async_trait]
pub trait Deployer: Send + Sync {
    /// `native` or `abra`.
    fn name(&self) -> &'static str;

    /// `abra app new`: clones the recipe at `source` into the app's
    /// `ABRA_DIR`, checks out `at` (the version the app starts from: its
    /// `.env.sample` is the one an operator would have copied), writes the
    /// env file (`.env.sample` with the domain, an empty `LETS_ENCRYPT_ENV`,
    /// and `env` over it).
    async fn new_app(
        &self,
        app: &App,
        source: &std::path::Path,
        at: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<NewApp, DeployError>;

    /// Deploys `req` (secrets first: each one the version uses and the swarm
    /// lacks is generated, values for `generate=false` from `given`), waits
    /// for convergence, runs the post-deploy commands and rewrites `TYPE`.
    async fn deploy(
        &self,
        app: &App,
        req: &DeployRequest,
        given: &std::collections::BTreeMap<String, String>,
    ) -> Result<Deployed, DeployError>;

    /// Undeploys the app and removes everything it made (services, networks,
    /// volumes, secrets, configs); the caller removes the `ABRA_DIR`.
    async fn remove(&self, app: &App) -> Result<stack::TeardownReport, DeployError>;
}
