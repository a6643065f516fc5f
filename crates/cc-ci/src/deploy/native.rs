//! The native deployer: abra's `app new` and `app deploy` pipeline
//! (`docs/abra.md`, "Making an app" and "Deploying") done by cc-ci on
//! Docker's own `docker stack deploy` and the Engine API.
//!
//! A deploy, in abra's order:
//! 1. check out the version in the app's recipe checkout (a release tag, or
//!    the tested commit under chaos);
//! 2. unless chaos, abra's lint gate: every error-level lint rule must pass
//!    (docs/abra.md, "Deploying", step 4; `lint.LintForErrors`);
//! 3. the app env: the env file, abra.sh `export`s over it (read, never
//!    run), `STACK_NAME`;
//! 4. `COMPOSE_FILE` split on `:` (default `compose.yml`), each file read;
//!    a test app's (with [`Native::allow`] set): the recipe's confinement
//!    checked again on exactly what is deployed ([`crate::recipe::confine`];
//!    `ccci test` checked both versions before anything deployed, this is
//!    the backstop), a violation failing the deploy before anything of it
//!    exists;
//! 5. every service's image on the host before anything of the stack
//!    exists ([`super::images`]): looked up through the Engine API, pulled
//!    when absent unless `--resolve-image never`; an image that cannot be
//!    had fails the deploy naming the service, the image and the fix
//!    (the recipe's fault when the image does not exist or the host pulls
//!    none, the infrastructure's when a pull broke);
//! 6. secrets the compose files use, generated where the swarm lacks them
//!    (abra's `app secret generate --all` on `app new`; also before an
//!    upgrade that brings a new secret, as an operator would);
//! 7. the convergence timeout: the `coop-cloud.${STACK_NAME}.timeout` label
//!    on `app` (integer seconds, [D S6/S10]), else the run's default;
//! 8. the override of labels, env and adaptations ([`super::overrides`]),
//!    and for a test app ([`Native::limits`] set) the resource limits of
//!    every service ([`super::limits`]);
//! 9. `docker stack deploy --resolve-image <mode> -c <each file> -c
//!    <override> <stack>`, in the checkout, with the app env (and nothing of
//!    cc-ci's own environment) as the interpolation environment;
//! 10. convergence, event-driven ([`super::converge`]);
//! 11. `POST_DEPLOY_CMDS` (install) or `POST_UPGRADE_CMDS` (upgrade):
//!     `"<service> <fn> [args]|..."`, each `<fn>` a function of abra.sh,
//!     copied into a running container of the service as `/tmp/abra.sh` and
//!     run as `bash -c "source /tmp/abra.sh; <fn> <args>"`, `sh` when the
//!     image has no bash (asked first with `bash -c :`; docs/abra.md,
//!     "Deploying", step 16, [I-src]); an entry that is not
//!     `<service> <fn> [args]` and any
//!     failure fail the deploy;
//! 12. `TYPE=<recipe>:<version>` written to the env file (chaos: the short
//!     SHA abra labels the deploy with).
//!
//! Which docker CLI: the one configured (`CCCI_DOCKER_CLI`, default
//! `docker` on PATH). Its compose loader decides which files load: the
//! 20.10 CLI wants a `version:` in every file, newer ones default a missing
//! one and refuse files of differing versions (the override therefore
//! carries the first file's version, or none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;

use super::app::App;
use super::converge::{wait_converged_with, ConvergeOptions};
use super::exec;
use super::limits::{self, ResourceLimits};
use super::overrides::{self, Version, APP_SERVICE};
use super::secret;
use super::{DeployError, DeployRequest, Deployed, Deployer, Kind, NewApp, PostCmd, Step};
use crate::deploy::ipvs::VipSupport;
use crate::recipe::compose::ComposeSet;
use crate::recipe::confine::{self, Allowances, Scope};
use crate::recipe::interpolate::interpolate;
use crate::recipe::version::RecipeVersion;

/// `docker stack deploy --resolve-image`: whether image tags are resolved
/// to digests through a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveImage {
    /// Always query the registry (abra's choice, docs/abra.md,
    /// "Deploying", step 14).
    Always,
    /// Only when the image changed.
    Changed,
    /// Never: for hosts without a registry (images must be present locally).
    Never,
}

impl ResolveImage {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveImage::Always => "always",
            ResolveImage::Changed => "changed",
            ResolveImage::Never => "never",
        }
    }
}

impl std::str::FromStr for ResolveImage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(ResolveImage::Always),
            "changed" => Ok(ResolveImage::Changed),
            "never" => Ok(ResolveImage::Never),
            o => Err(format!("--resolve-image must be always, changed or never, not {o:?}")),
        }
    }
}

/// The native deployer's configuration.
#[derive(Debug, Clone)]
pub struct Native {
    /// The Engine API connection.
    pub docker: Docker,
    /// The docker CLI that runs `docker stack deploy`.
    pub cli: PathBuf,
    /// `--resolve-image`.
    pub resolve_image: ResolveImage,
    /// Whether swarm virtual IPs route here (else services without
    /// published ports get `endpoint_mode: dnsrr`).
    pub vip: VipSupport,
    /// Run abra's lint gate before release deploys.
    pub lint_gate: bool,
    /// How long a post-deploy command may run.
    pub post_cmd_timeout: Duration,
    /// The state dir that owns the apps this deployer makes: its labels go
    /// on every service, so that only its own janitor reaps them
    /// ([`crate::state::owner`]). None for apps no janitor manages (Traefik).
    pub owner: Option<crate::state::owner::Owner>,
    /// A test app's confinement: what the settings allow the recipe beyond
    /// its app. `Some`: each deploy is checked ([`crate::recipe::confine`])
    /// and refused on a violation; `None`: unchecked (the host's own stacks,
    /// Traefik).
    pub allow: Option<Allowances>,
    /// A test app's resource caps, per service. `Some`: written into the
    /// override ([`super::limits`]); `None`: none (the host's own stacks).
    pub limits: Option<ResourceLimits>,
}

/// The default docker CLI: `$CCCI_DOCKER_CLI`, else `docker` on PATH.
pub fn default_cli() -> PathBuf {
    std::env::var_os("CCCI_DOCKER_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker"))
}

/// The timeout label of the `app` service, if any: (key as written, value
/// interpolated, seconds).
fn timeout_label(compose: &ComposeSet, env: &BTreeMap<String, String>) -> Option<Result<u64, String>> {
    let app = compose.services.get(APP_SERVICE)?;
    let (key, raw) = app
        .deploy_labels
        .iter()
        .find(|(k, _)| k.starts_with("coop-cloud.") && k.ends_with(".timeout"))?;
    Some(match interpolate(raw, env) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("label {key}={raw} is {v:?}, not a whole number of seconds")),
        Err(e) => Err(format!("label {key}={raw}: {e}")),
    })
}

/// One command of `POST_DEPLOY_CMDS` / `POST_UPGRADE_CMDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCmdSpec {
    /// The compose service whose running container runs it.
    pub service: String,
    /// The abra.sh function.
    pub function: String,
    /// Its arguments (words, as written).
    pub args: Vec<String>,
}

/// A `POST_DEPLOY_CMDS`-style value with an entry that is not
/// `<service> <function> [args]` (abra refuses it too: "not enough
/// arguments", [I-src]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{var}: entry {entry} ({text:?}) is not `<service> <function> [args]`; fix {var} in the recipe's .env.sample (commands are separated by `|`)"
)]
pub struct PostCmdsError {
    /// The variable.
    pub var: String,
    /// The entry, 1-based, counted by `|`.
    pub entry: usize,
    /// The entry as written.
    pub text: String,
}

/// Parses `POST_DEPLOY_CMDS`-style text (the value of `var`):
/// `"<service> <fn> [args]|..."`, words separated by blanks. A blank value
/// has no command.
///
/// # Errors
/// [`PostCmdsError`] naming `var` and the first entry with fewer than two
/// words (an empty one included: a stray `|` drops no command silently).
pub fn parse_post_cmds(var: &str, text: &str) -> Result<Vec<PostCmdSpec>, PostCmdsError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split('|')
        .enumerate()
        .map(|(i, c)| {
            let mut w = c.split_whitespace().map(str::to_string);
            match (w.next(), w.next()) {
                (Some(service), Some(function)) => Ok(PostCmdSpec {
                    service,
                    function,
                    args: w.collect(),
                }),
                _ => Err(PostCmdsError {
                    var: var.to_string(),
                    entry: i + 1,
                    text: c.to_string(),
                }),
            }
        })
        .collect()
}

/// The short SHA abra labels a chaos deploy with (`formatter.SmallSHA`: the
/// first 8 hex digits, [I-src], as recalled).
pub fn small_sha(commit: &str) -> String {
    commit.chars().take(8).collect()
}

impl Native {
    fn converge_err(&self, e: super::converge::ConvergeError) -> DeployError {
        let text = e.to_string();
        if self.resolve_image == ResolveImage::Never && text.contains("No such image") {
            // The engine tried to pull and could not: this host pulls
            // nothing, so an image it lacks says nothing about the recipe.
            return DeployError::infra(
                Step::Converge,
                format!(
                    "{text}; this host pulls no images (--resolve-image never, no registry): \
                     the image must be loaded on the host first (scripts/images builds the fixtures')"
                ),
            );
        }
        if e.is_recipe_failure() {
            DeployError::recipe(Step::Converge, e.to_string())
        } else {
            DeployError::infra(Step::Converge, e.to_string())
        }
    }

    /// Runs the stack deploy command; returns its output.
    async fn stack_deploy(
        &self,
        app: &App,
        files: &[String],
        override_file: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<String, DeployError> {
        let mut cmd = tokio::process::Command::new(&self.cli);
        cmd.current_dir(app.checkout())
            .args(["stack", "deploy", "--resolve-image", self.resolve_image.as_str()]);
        for f in files {
            cmd.arg("-c").arg(f);
        }
        cmd.arg("-c").arg(override_file).arg(&app.stack);
        // abra interpolates with the app env only: nothing of ours leaks in.
        cmd.env_clear().envs(env);
        for k in [
            "PATH",
            "DOCKER_HOST",
            "DOCKER_CERT_PATH",
            "DOCKER_TLS_VERIFY",
            "DOCKER_API_VERSION",
        ] {
            if let Some(v) = std::env::var_os(k) {
                if !env.contains_key(k) {
                    cmd.env(k, v);
                }
            }
        }
        cmd.env("DOCKER_CONFIG", app.abra_dir.join("cc-ci").join("docker-config"));
        cmd.kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| {
            DeployError::infra(
                Step::StackDeploy,
                format!(
                    "cannot run {} ({e}); set CCCI_DOCKER_CLI to a docker CLI with the `stack` command",
                    self.cli.display()
                ),
            )
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            return Ok(text);
        }
        let t = text.trim();
        // The compose files are the recipe's: a loader refusal is its fault
        // (a missing or differing `version:` never reaches the CLI:
        // compose_version gives every file one).
        let infra = t.contains("Cannot connect to the Docker daemon")
            || t.contains("connection refused")
            || t.contains("not a swarm manager")
            || t.contains("is not a docker command");
        let detail = format!("docker stack deploy failed: {t}");
        Err(if infra {
            DeployError::infra(Step::StackDeploy, detail)
        } else {
            DeployError::recipe(Step::StackDeploy, detail)
        })
    }

    /// Runs each post-deploy command of `text` (abra's format).
    async fn post_cmds(
        &self,
        app: &App,
        var: &str,
        text: &str,
        abra_sh: &crate::recipe::abra_sh::AbraSh,
    ) -> Result<Vec<PostCmd>, DeployError> {
        let mut done = Vec::new();
        let cmds = parse_post_cmds(var, text).map_err(|e| DeployError::recipe(Step::PostDeploy, e.to_string()))?;
        for PostCmdSpec {
            service,
            function,
            args,
        } in cmds
        {
            if !abra_sh.functions.iter().any(|f| f == &function) {
                return Err(DeployError::recipe(
                    Step::PostDeploy,
                    format!(
                        "{var}: `{function}` is not a function of the recipe's abra.sh (it has: {}); \
                         define it there or fix {var}",
                        if abra_sh.functions.is_empty() {
                            "none".to_string()
                        } else {
                            abra_sh.functions.join(", ")
                        }
                    ),
                ));
            }
            let e2d = |e: exec::ExecError| {
                if e.is_recipe_failure() {
                    DeployError::recipe(Step::PostDeploy, format!("{var} `{service} {function}`: {e}"))
                } else {
                    DeployError::infra(Step::PostDeploy, format!("{var} `{service} {function}`: {e}"))
                }
            };
            let container = exec::running_container(&self.docker, &app.stack, &service)
                .await
                .map_err(e2d)?;
            exec::copy_file_into(
                &self.docker,
                &container,
                "/tmp",
                "abra.sh",
                abra_sh.text.as_bytes(),
                0o644,
            )
            .await
            .map_err(e2d)?;
            let call = std::iter::once(function.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            // abra runs the function under bash, under sh in an image
            // without bash. Which is asked of the container first (`:` is a
            // bash builtin), never read from the function's exit status: a
            // function that exits 126 or 127 itself must run only once.
            let bash = exec::exec(
                &self.docker,
                &container,
                &["bash".into(), "-c".into(), ":".into()],
                self.post_cmd_timeout,
            )
            .await
            .map_err(e2d)?
            .exit_code
                == 0;
            let argv = if bash {
                ["bash".into(), "-c".into(), format!("source /tmp/abra.sh; {call}")]
            } else {
                ["sh".into(), "-c".into(), format!(". /tmp/abra.sh; {call}")]
            };
            let out = exec::exec(&self.docker, &container, &argv, self.post_cmd_timeout)
                .await
                .map_err(e2d)?;
            let cmd = PostCmd {
                service: service.clone(),
                command: call.clone(),
                exit_code: out.exit_code,
                output: format!("{}{}", out.stdout, out.stderr),
            };
            if out.exit_code != 0 {
                return Err(DeployError::recipe(
                    Step::PostDeploy,
                    format!(
                        "{var} `{service} {call}` exited {}: {}",
                        out.exit_code,
                        out.stderr_tail(10)
                    ),
                ));
            }
            done.push(cmd);
        }
        Ok(done)
    }
}

#[async_trait::async_trait]
impl Deployer for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    async fn new_app(
        &self,
        app: &App,
        source: &Path,
        at: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<NewApp, DeployError> {
        app.clone_recipe(source)
            .map_err(|e| DeployError::infra(Step::NewApp, e.to_string()))?;
        app.checkout_ref(at)
            .map_err(|e| DeployError::infra(Step::NewApp, format!("cannot check out {at}: {e}")))?;
        let sample_path = app.checkout().join(".env.sample");
        let sample = std::fs::read_to_string(&sample_path).map_err(|e| {
            DeployError::recipe(
                Step::NewApp,
                format!(
                    "{}: cannot read ({e}); a recipe needs an .env.sample",
                    sample_path.display()
                ),
            )
        })?;
        app.write_env(&sample, env)
            .map_err(|e| DeployError::infra(Step::NewApp, e.to_string()))?;
        Ok(NewApp {
            env_file: app.env_path(),
            checkout: app.checkout(),
        })
    }

    async fn deploy(
        &self,
        app: &App,
        req: &DeployRequest,
        given: &BTreeMap<String, String>,
    ) -> Result<Deployed, DeployError> {
        let mut log = Vec::new();
        // 1. the version.
        let commit = app
            .checkout_ref(&req.reference)
            .map_err(|e| DeployError::infra(Step::Checkout, format!("cannot check out {}: {e}", req.reference)))?;
        log.push(format!("checked out {} ({commit})", req.reference));
        // The version's files, read once: everything below reads them here.
        let version = RecipeVersion::read(&app.checkout())
            .map_err(|e| DeployError::recipe(Step::Compose, format!("the recipe at {}: {e}", req.reference)))?;
        // 2. abra's lint gate (release deploys only).
        if self.lint_gate && matches!(req.version, Version::Release(_)) {
            let report = crate::recipe::lint::lint_version(&version).map_err(|e| {
                DeployError::recipe(Step::Lint, format!("abra's lint gate cannot lint the recipe: {e}"))
            })?;
            if !report.passed() {
                let failed: Vec<String> = report
                    .errors()
                    .iter()
                    .map(|f| format!("{} {}", f.rule.reference, f.rule.description))
                    .collect();
                return Err(DeployError::recipe(
                    Step::Lint,
                    format!(
                        "abra refuses to deploy release {}: lint errors: {} (abra app deploy runs lint.LintForErrors; only --chaos skips it)",
                        req.reference,
                        failed.join("; ")
                    ),
                ));
            }
        }
        // 3. the app env.
        let app_env = app
            .deploy_env(&version)
            .map_err(|e| DeployError::recipe(Step::Compose, e.to_string()))?;
        let env = &app_env.values;
        let abra_sh = &app_env.abra_sh;
        // abra's CheckEnv: keys of this version's .env.sample missing from
        // the app env are warned about, not refused (docs/abra.md,
        // "Deploying", step 11).
        if let Some(sample) = &version.env_sample {
            for e in &sample.entries {
                if !env.contains_key(&e.key) {
                    log.push(format!("WARN {} missing from {}.env", e.key, app.domain));
                }
            }
        }
        // 4. the compose files; 5. the secrets they use.
        let (files, compose, plans) = super::read_version(&version, &app_env, &req.reference)?;
        if let Some(allow) = &self.allow {
            let scope = Scope {
                domain: &app.domain,
                stack: &app.stack,
            };
            let r = confine::check(&version, &files, env, &scope, allow);
            for (v, why) in &r.allowed {
                log.push(format!("confinement: allowed by the settings: {v} ({why})"));
            }
            if !r.refused.is_empty() {
                return Err(DeployError::recipe(
                    Step::Compose,
                    format!(
                        "the recipe at {} leaves its test app, so it was not deployed: {}; change the recipe, or allow each by name with a reason in the recipe's cc-ci settings (ccci.toml [allow], tests/recipes/README.md)",
                        req.reference,
                        r.refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                ));
            }
        }
        // The images, before anything of the stack exists.
        let images = super::images::ensure(&self.docker, &compose, env, self.resolve_image)
            .await
            .map_err(|e| {
                if e.is_recipe_failure() {
                    DeployError::recipe(Step::Images, e.to_string())
                } else {
                    DeployError::infra(Step::Images, e.to_string())
                }
            })?;
        for i in images.iter().filter(|i| i.pulled) {
            log.push(format!("pulled image {} for service {}", i.image, i.service));
        }
        let ensured = secret::ensure(&self.docker, &plans, given).await.map_err(|e| {
            if e.is_recipe_failure() {
                DeployError::recipe(Step::Secrets, e.to_string())
            } else {
                DeployError::infra(Step::Secrets, e.to_string())
            }
        })?;
        if !ensured.created.is_empty() {
            log.push(format!("secrets generated: {}", ensured.created.join(", ")));
        }
        // 6. the timeout.
        let timeout = match (req.forced_timeout, timeout_label(&compose, env)) {
            (Some(t), _) => (t, "the run's settings (timeouts.deploy)"),
            (None, Some(Ok(s))) => (
                Duration::from_secs(s),
                "the recipe's coop-cloud.${STACK_NAME}.timeout label",
            ),
            (None, Some(Err(e))) => return Err(DeployError::recipe(Step::Compose, e)),
            (None, None) => (req.default_timeout, "cc-ci's default (no timeout label on app)"),
        };
        // 7. the override.
        let dnsrr = !self.vip.routes();
        let mut ov = overrides::compute(&compose, &app.stack, &app.recipe, &req.version, env, dnsrr);
        if let Some(o) = &self.owner {
            ov.all_labels.extend(o.labels());
        }
        if let Some(caps) = &self.limits {
            ov.limits = limits::per_service(&compose, env, caps);
            log.push(format!(
                "resource limits (at most {} per service): {}",
                caps.describe(),
                ov.limits
                    .iter()
                    .map(|(s, l)| format!(
                        "{s} {} CPU {}",
                        limits::format_cpus(l.nano_cpus),
                        limits::format_bytes(l.memory_bytes)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // One version in every file the CLI reads (the 20.10 CLI refuses a
        // file without one and files that differ): copies when they do not
        // agree, removed when `deploy_files` drops after the deploy.
        let declared: Vec<Option<String>> = compose.files.iter().map(|f| f.version.clone()).collect();
        let deploy_files = super::compose_version::prepare(&version, &files, &declared)
            .map_err(|e| DeployError::infra(Step::StackDeploy, e))?;
        if deploy_files.copied {
            log.push(format!(
                "compose files given one version ({}) for the docker CLI: {}",
                deploy_files.version,
                files.join(", ")
            ));
        }
        let text = ov.render(&app.domain).replacen(
            "version: \"3.8\"\n",
            &format!("version: {}\n", serde_json::json!(deploy_files.version)),
            1,
        );
        let dir = app.abra_dir.join("cc-ci");
        std::fs::create_dir_all(&dir)
            .map_err(|e| DeployError::infra(Step::StackDeploy, format!("{}: {e}", dir.display())))?;
        let override_file = dir.join(format!("{}.override.yml", app.domain));
        crate::deploy::app::write_atomically(&override_file, text.as_bytes())
            .map_err(|e| DeployError::infra(Step::StackDeploy, format!("{}: {e}", override_file.display())))?;
        // 8. the stack deploy.
        let t = Instant::now();
        let out = self.stack_deploy(app, &deploy_files.files, &override_file, env).await;
        drop(deploy_files);
        let out = out?;
        let command_time = t.elapsed();
        log.extend(out.lines().map(|l| format!("docker stack deploy: {l}")));
        // 9. convergence.
        let convergence = wait_converged_with(&self.docker, &app.stack, &ConvergeOptions::new(timeout.0))
            .await
            .map_err(|e| self.converge_err(e))?;
        // 10. post-deploy commands.
        let var = match req.kind {
            Kind::Install => "POST_DEPLOY_CMDS",
            Kind::Upgrade => "POST_UPGRADE_CMDS",
        };
        let post_cmds = match env.get(var).filter(|v| !v.trim().is_empty()) {
            Some(text) => self.post_cmds(app, var, text, abra_sh).await?,
            None => Vec::new(),
        };
        // 11. TYPE.
        let version = match &req.version {
            Version::Release(tag) => tag.clone(),
            Version::Chaos(sha) => sha.clone(),
        };
        app.set("TYPE", &format!("{}:{version}", app.recipe))
            .map_err(|e| DeployError::infra(Step::PostDeploy, e.to_string()))?;
        Ok(Deployed {
            commit,
            timeout,
            command_time,
            convergence,
            post_cmds,
            secrets_created: ensured.created,
            dnsrr: ov.dnsrr,
            override_file: Some(override_file),
            log,
        })
    }

    async fn remove(&self, app: &App) -> Result<super::stack::TeardownReport, DeployError> {
        super::stack::teardown(&self.docker, &app.stack, super::stack::DEFAULT_TEARDOWN_TIMEOUT)
            .await
            .map_err(|e| DeployError::infra(Step::Remove, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_cmds_and_labels_parse_as_abra_writes_them() {
        let cmd = |s: &str, f: &str, a: &[&str]| PostCmdSpec {
            service: s.into(),
            function: f.into(),
            args: a.iter().map(|x| x.to_string()).collect(),
        };
        assert_eq!(
            parse_post_cmds("X", "app set_admin alice|db  migrate --all "),
            Ok(vec![
                cmd("app", "set_admin", &["alice"]),
                cmd("db", "migrate", &["--all"])
            ])
        );
        assert_eq!(parse_post_cmds("X", "  "), Ok(vec![]));
        // An entry that is not a command is refused, never dropped.
        for (text, entry) in [("app set_admin alice|db migrate| |app", 3), ("app", 1), ("app f|", 2)] {
            let e = parse_post_cmds("POST_DEPLOY_CMDS", text).unwrap_err();
            assert_eq!(e.entry, entry, "{text}");
            assert!(
                e.to_string().starts_with("POST_DEPLOY_CMDS: entry ")
                    && e.to_string().contains("is not `<service> <function> [args]`"),
                "{e}"
            );
        }
        assert_eq!(small_sha("0123456789abcdef"), "01234567");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("compose.yml"),
            "services:\n  app:\n    image: a\n    deploy:\n      labels:\n        - \"coop-cloud.${STACK_NAME}.timeout=${TIMEOUT:-120}\"\n",
        )
        .unwrap();
        let c = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap();
        let mut env = BTreeMap::new();
        assert_eq!(timeout_label(&c, &env), Some(Ok(120)));
        env.insert("TIMEOUT".into(), "soon".into());
        assert!(timeout_label(&c, &env)
            .unwrap()
            .unwrap_err()
            .contains("not a whole number"));
        assert_eq!("never".parse::<ResolveImage>(), Ok(ResolveImage::Never));
    }
}
