//! The abra deployer: the same steps as [`super::native`] through the real
//! abra CLI, for hosts that have it (NixOS installs it from nixpkgs). abra
//! cannot be had on our build machines (the Go module proxy refuses
//! `coopcloud.tech/abra`), so only the command lines are tested here; CI
//! prints that the live test was skipped and why.
//!
//! Every command runs non-interactively with `ABRA_DIR` set to the run's
//! folder (`docs/abra.md` for the flags; check them against
//! the installed abra's `--help` when it arrives):
//!
//! | step | command |
//! |---|---|
//! | once | `abra server add --local` (the server `default`) |
//! | new app | `abra app new <recipe> --server default --domain <domain> --no-input --offline` (the recipe is cloned into `$ABRA_DIR/recipes/<recipe>` first, so `--offline` finds it) |
//! | env | cc-ci edits the env file as the native deployer does |
//! | secrets | `abra app secret insert <domain> <id> <version> <file> --file --no-input` for `generate=false` ones (value in a 0600 file, never in argv), then `abra app secret generate <domain> --all --no-input --offline` |
//! | install | `abra app deploy <domain> <tag> --no-input --no-domain-checks --offline` |
//! | upgrade | `abra app deploy <domain> --chaos --force --no-input --no-domain-checks --offline` (chaos: the checked-out commit; abra runs `POST_DEPLOY_CMDS` for a deploy, where the native deployer runs `POST_UPGRADE_CMDS`: a difference to check against a real abra) |
//! | remove | `abra app undeploy <domain> --no-input`, then `abra app remove <domain> --force --no-input`, then cc-ci's own teardown proves nothing is left |
//!
//! abra waits for convergence itself; cc-ci then runs its own
//! event-driven wait too, for the timings and the rollback check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;

use super::app::{App, LOCAL_SERVER};
use super::converge::{wait_converged_with, ConvergeOptions};
use super::overrides::Version;
use super::secret;
use super::{DeployError, DeployRequest, Deployed, Deployer, NewApp, Step};
use crate::recipe::version::RecipeVersion;

/// The abra deployer.
#[derive(Debug, Clone)]
pub struct Abra {
    /// The abra binary.
    pub abra: PathBuf,
    /// The Engine API connection (convergence, teardown proof).
    pub docker: Docker,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// `abra server add --local`.
pub fn server_add_argv() -> Vec<String> {
    s(&["server", "add", "--local"])
}

/// `abra app new`.
pub fn new_app_argv(recipe: &str, domain: &str) -> Vec<String> {
    s(&[
        "app",
        "new",
        recipe,
        "--server",
        LOCAL_SERVER,
        "--domain",
        domain,
        "--no-input",
        "--offline",
    ])
}

/// `abra app secret generate --all`.
pub fn secret_generate_argv(domain: &str) -> Vec<String> {
    s(&["app", "secret", "generate", domain, "--all", "--no-input", "--offline"])
}

/// `abra app secret insert` from a file (the value never in argv).
pub fn secret_insert_argv(domain: &str, id: &str, version: &str, file: &Path) -> Vec<String> {
    let file = file.display().to_string();
    s(&[
        "app",
        "secret",
        "insert",
        domain,
        id,
        version,
        &file,
        "--file",
        "--no-input",
    ])
}

/// `abra app deploy` of a release, or with `--chaos --force` over a running app.
pub fn deploy_argv(domain: &str, version: &Version) -> Vec<String> {
    match version {
        Version::Release(tag) => s(&[
            "app",
            "deploy",
            domain,
            tag,
            "--no-input",
            "--no-domain-checks",
            "--offline",
        ]),
        Version::Chaos(_) => s(&[
            "app",
            "deploy",
            domain,
            "--chaos",
            "--force",
            "--no-input",
            "--no-domain-checks",
            "--offline",
        ]),
    }
}

/// `abra app undeploy`.
pub fn undeploy_argv(domain: &str) -> Vec<String> {
    s(&["app", "undeploy", domain, "--no-input"])
}

/// `abra app remove` (volumes and secrets too).
pub fn remove_argv(domain: &str) -> Vec<String> {
    s(&["app", "remove", domain, "--force", "--no-input"])
}

impl Abra {
    /// Runs abra with `args` and `ABRA_DIR`; its output, or a
    /// [`DeployError`] of `step` (abra's own refusals are the recipe's
    /// fault, a missing binary the infrastructure's).
    async fn run(&self, app: &App, step: Step, args: &[String]) -> Result<String, DeployError> {
        let out = tokio::process::Command::new(&self.abra)
            .args(args)
            .env("ABRA_DIR", &app.abra_dir)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                DeployError::infra(
                    step,
                    format!(
                        "cannot run abra ({}): {e}; install abra (the NixOS host has it from nixpkgs) \
                         or use --deployer native",
                        self.abra.display()
                    ),
                )
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(DeployError::recipe(
                step,
                format!("abra {} failed: {}", args.join(" "), text.trim()),
            ))
        }
    }
}

#[async_trait::async_trait]
impl Deployer for Abra {
    fn name(&self) -> &'static str {
        "abra"
    }

    async fn new_app(
        &self,
        app: &App,
        source: &Path,
        at: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<NewApp, DeployError> {
        if !app.abra_dir.join("servers").join(LOCAL_SERVER).is_dir() {
            self.run(app, Step::NewApp, &server_add_argv()).await?;
        }
        app.clone_recipe(source)
            .map_err(|e| DeployError::infra(Step::NewApp, e.to_string()))?;
        app.checkout_ref(at)
            .map_err(|e| DeployError::infra(Step::NewApp, e.to_string()))?;
        self.run(app, Step::NewApp, &new_app_argv(&app.recipe, &app.domain))
            .await?;
        let pairs = [("DOMAIN", app.domain.as_str()), ("LETS_ENCRYPT_ENV", "")]
            .into_iter()
            .chain(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        app.set_all(pairs)
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
        let commit = app
            .checkout_ref(&req.reference)
            .map_err(|e| DeployError::infra(Step::Checkout, e.to_string()))?;
        // Secrets abra cannot generate come from the settings, through a file.
        let version = RecipeVersion::read(&app.checkout())
            .map_err(|e| DeployError::recipe(Step::Compose, format!("the recipe at {}: {e}", req.reference)))?;
        let env = app
            .deploy_env(&version)
            .map_err(|e| DeployError::recipe(Step::Compose, e.to_string()))?;
        let (_, _, plans) = super::read_version(&version, &env, &req.reference)?;
        for p in plans.iter().filter(|p| p.generation == secret::Generation::Given) {
            if secret::exists(&self.docker, &p.remote_name)
                .await
                .map_err(|e| DeployError::infra(Step::Secrets, e.to_string()))?
            {
                continue;
            }
            let value = secret::generate(p, given).map_err(|e| DeployError::recipe(Step::Secrets, e.to_string()))?;
            let mut f = tempfile::NamedTempFile::new().map_err(|e| DeployError::infra(Step::Secrets, e.to_string()))?;
            std::io::Write::write_all(&mut f, value.expose().as_bytes())
                .map_err(|e| DeployError::infra(Step::Secrets, e.to_string()))?;
            self.run(
                app,
                Step::Secrets,
                &secret_insert_argv(&app.domain, &p.id, &p.version, f.path()),
            )
            .await?;
        }
        self.run(app, Step::Secrets, &secret_generate_argv(&app.domain)).await?;
        let t = Instant::now();
        let out = self
            .run(app, Step::StackDeploy, &deploy_argv(&app.domain, &req.version))
            .await?;
        let command_time = t.elapsed();
        let timeout = req.forced_timeout.unwrap_or(req.default_timeout);
        let convergence = wait_converged_with(&self.docker, &app.stack, &ConvergeOptions::new(timeout))
            .await
            .map_err(|e| {
                if e.is_recipe_failure() {
                    DeployError::recipe(Step::Converge, e.to_string())
                } else {
                    DeployError::infra(Step::Converge, e.to_string())
                }
            })?;
        Ok(Deployed {
            commit,
            timeout: (timeout, "abra's own wait, then cc-ci's with the run's timeout"),
            command_time,
            convergence,
            post_cmds: Vec::new(),
            secrets_created: Vec::new(),
            dnsrr: Vec::new(),
            override_file: None,
            log: out.lines().map(|l| format!("abra: {l}")).collect(),
        })
    }

    async fn remove(&self, app: &App) -> Result<super::stack::TeardownReport, DeployError> {
        // abra's own removal first; whatever it leaves, cc-ci's teardown takes.
        let _ = self.run(app, Step::Remove, &undeploy_argv(&app.domain)).await;
        let _ = self.run(app, Step::Remove, &remove_argv(&app.domain)).await;
        super::stack::teardown(&self.docker, &app.stack, Duration::from_secs(120))
            .await
            .map_err(|e| DeployError::infra(Step::Remove, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_non_interactive_and_carry_no_secret() {
        let d = "app-1a2b3c.ci.test";
        assert_eq!(
            new_app_argv("webapp-pg", d).join(" "),
            "app new webapp-pg --server default --domain app-1a2b3c.ci.test --no-input --offline"
        );
        assert_eq!(
            deploy_argv(d, &Version::Release("1.0.0+1.0.0".into())).join(" "),
            "app deploy app-1a2b3c.ci.test 1.0.0+1.0.0 --no-input --no-domain-checks --offline"
        );
        assert_eq!(
            deploy_argv(d, &Version::Chaos("0123abcd".into())).join(" "),
            "app deploy app-1a2b3c.ci.test --chaos --force --no-input --no-domain-checks --offline"
        );
        assert_eq!(
            secret_insert_argv(d, "smtp", "v1", Path::new("/tmp/x")).join(" "),
            "app secret insert app-1a2b3c.ci.test smtp v1 /tmp/x --file --no-input"
        );
        assert_eq!(
            secret_generate_argv(d).join(" "),
            "app secret generate app-1a2b3c.ci.test --all --no-input --offline"
        );
        assert_eq!(undeploy_argv(d).join(" "), "app undeploy app-1a2b3c.ci.test --no-input");
        assert_eq!(
            remove_argv(d).join(" "),
            "app remove app-1a2b3c.ci.test --force --no-input"
        );
        for argv in [
            new_app_argv("r", d),
            deploy_argv(d, &Version::Chaos("x".into())),
            undeploy_argv(d),
            remove_argv(d),
        ] {
            assert!(argv.iter().any(|a| a == "--no-input"), "{argv:?}");
        }
    }
}
