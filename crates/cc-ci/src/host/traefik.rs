//! `traefik-deploy`, the converge-on-boot oneshot: the Traefik recipe
//! deployed by the same deployer as test apps, in wildcard mode
//! (`docs/recipes.md`, "Traefik recipe in wildcard mode"):
//! `LETS_ENCRYPT_ENV` empty, `WILDCARDS_ENABLED=1`,
//! `COMPOSE_FILE=...:compose.wildcard.yml`, and
//! `SECRET_WILDCARD_CERT_VERSION`/`SECRET_WILDCARD_KEY_VERSION` naming the
//! newest complete pair of `<stack>_ssl_cert_vN`/`<stack>_ssl_key_vN`
//! secrets that `cert-install` made. Then it waits until port 443 answers
//! with the wildcard certificate.
//!
//! Idempotent: when the live `app` service already runs this release
//! (`coop-cloud.<stack>.version`, not chaos) with those secret versions and
//! the stack has converged, nothing is deployed ("nothing to do"); only the
//! 443 check runs. A failure leaves what was running in place (the stack
//! deploy updates in place; Swarm rolls a failed update back).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;

use crate::deploy::app::App;
use crate::deploy::native::Native;
use crate::deploy::overrides::{label, Version, APP_SERVICE};
use crate::deploy::{DeployRequest, Deployer, Kind};
use crate::probe::serve::{self, Failure, ServeSpec, Verdict};

/// The recipe name (`TYPE=`) of Traefik.
pub const RECIPE: &str = "traefik";
/// The overlay that switches wildcard mode on.
pub const WILDCARD_OVERLAY: &str = "compose.wildcard.yml";

/// traefik-deploy's inputs.
#[derive(Debug, Clone)]
pub struct TraefikOptions {
    /// Where the recipe comes from (a git URL or a local checkout).
    pub recipe_source: String,
    /// The release to deploy (a tag of the recipe).
    pub version: String,
    /// Traefik's app domain (`traefik.<wildcard domain>`).
    pub domain: String,
    /// The persistent `ABRA_DIR` of the Traefik app.
    pub abra_dir: PathBuf,
    /// Traefik's web-secure address, to wait on.
    pub addr: SocketAddr,
    /// The CA that issued the wildcard certificate (PEM).
    pub ca_cert: PathBuf,
    /// How long to wait for convergence and then for 443.
    pub wait: Duration,
}

/// What traefik-deploy did.
#[derive(Debug, Clone, PartialEq)]
pub struct TraefikReport {
    /// True when a deploy was made (false: "nothing to do").
    pub deployed: bool,
    /// The secret version in force (`v1`).
    pub cert_version: String,
    /// How 443 answered.
    pub serving: String,
    /// Seconds until 443 answered with the wildcard certificate.
    pub waited_s: f64,
}

/// Why traefik-deploy failed; every message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum TraefikError {
    /// No complete pair of wildcard secrets exists.
    #[error("no wildcard certificate secrets {stack}_ssl_cert_vN / {stack}_ssl_key_vN on this swarm; run cert-install first (with --domain {domain})")]
    NoCertificate {
        /// The Traefik stack.
        stack: String,
        /// The Traefik domain.
        domain: String,
    },
    /// The recipe could not be fetched or the app made.
    #[error("the Traefik recipe: {0}")]
    Recipe(String),
    /// The deploy failed.
    #[error("deploying Traefik {version}: {detail}")]
    Deploy {
        /// The release.
        version: String,
        /// What went wrong.
        detail: String,
    },
    /// 443 did not answer with the wildcard certificate in time.
    #[error("Traefik at {addr} did not serve the wildcard certificate within {} s: {last}; see `docker service logs {stack}_app`", wait.as_secs())]
    NotServing {
        /// The address.
        addr: SocketAddr,
        /// The wait.
        wait: Duration,
        /// The last answer.
        last: String,
        /// The stack.
        stack: String,
    },
    /// The Docker engine failed.
    #[error("Docker engine: {0}; is dockerd running? (scripts/dockerd starts it)")]
    Docker(String),
}

/// The newest `vN` for which both `<stack>_ssl_cert_vN` and
/// `<stack>_ssl_key_vN` exist.
///
/// # Errors
/// [`TraefikError::Docker`].
pub async fn cert_version(docker: &Docker, stack: &str) -> Result<Option<String>, TraefikError> {
    let secrets = docker
        .list_secrets(None::<bollard::query_parameters::ListSecretsOptions>)
        .await
        .map_err(|e| TraefikError::Docker(e.to_string()))?;
    let names: Vec<String> = secrets
        .into_iter()
        .filter_map(|s| s.spec.and_then(|sp| sp.name))
        .collect();
    let version = |prefix: &str| -> Vec<u64> {
        names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix)?.strip_prefix('v')?.parse().ok())
            .collect()
    };
    let certs = version(&format!("{stack}_ssl_cert_"));
    let keys = version(&format!("{stack}_ssl_key_"));
    Ok(certs
        .into_iter()
        .filter(|v| keys.contains(v))
        .max()
        .map(|v| format!("v{v}")))
}

/// How long [`already_live`] lets a service at the right version settle
/// before judging it: after a reboot Swarm restarts the old task within
/// seconds (measured: 10 s after `dockerd` started), and judging earlier
/// would redeploy Traefik, whose recipe updates `start-first` with host-mode
/// ports: on one node the new task then waits forever for 80/443.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Whether the live Traefik app already is what `version`/`cert` ask for.
async fn already_live(docker: &Docker, stack: &str, version: &str, cert: &str) -> Result<bool, TraefikError> {
    let start = Instant::now();
    loop {
        let labels = match crate::deploy::converge::running_labels(docker, stack).await {
            Ok(l) => l,
            Err(e) => return Err(TraefikError::Docker(e.to_string())),
        };
        let Some(app) = labels.get(&format!("{stack}_{APP_SERVICE}")) else {
            return Ok(false);
        };
        let same_version = app.service.get(&label(stack, "version")).map(String::as_str) == Some(version)
            && app.service.get(&label(stack, "chaos")).map(String::as_str) != Some("true");
        if !same_version {
            return Ok(false);
        }
        if app.running_current_spec && !app.containers.is_empty() {
            break;
        }
        if start.elapsed() >= SETTLE {
            return Ok(false);
        }
        if start.elapsed() < Duration::from_secs(1) {
            tracing::info!(
                "{stack} runs {version} but no task of its current spec is running yet; \
                 waiting up to {} s for Swarm to settle",
                SETTLE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let spec = docker
        .inspect_service(&format!("{stack}_{APP_SERVICE}"), None)
        .await
        .map_err(|e| TraefikError::Docker(e.to_string()))?;
    let secret_names: Vec<String> = spec
        .spec
        .and_then(|s| s.task_template)
        .and_then(|t| t.container_spec)
        .and_then(|c| c.secrets)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.secret_name)
        .collect();
    Ok(secret_names.contains(&format!("{stack}_ssl_cert_{cert}"))
        && secret_names.contains(&format!("{stack}_ssl_key_{cert}")))
}

/// Fetches or clones the recipe into the app's checkout.
fn fetch_recipe(app: &App, source: &str) -> Result<(), TraefikError> {
    let dir = app.checkout();
    let git = |args: &[&str], cwd: &Path| -> Result<(), TraefikError> {
        crate::recipe::git::run(cwd, args)
            .map(drop)
            .map_err(|e| TraefikError::Recipe(e.to_string()))
    };
    if dir.join(".git").exists() {
        git(&["fetch", "--quiet", "--tags", "--force", source], &dir)
    } else {
        app.clone_recipe(Path::new(source))
            .map_err(|e| TraefikError::Recipe(e.to_string()))
    }
}

/// One look at 443: `Ok(description)` when Traefik answered with a
/// certificate the CA vouches for (its own 404 for an unrouted name is the
/// expected answer), `Err(description)` otherwise.
async fn serving(opts: &TraefikOptions) -> Result<String, String> {
    let wildcard = opts.domain.split_once('.').map_or(opts.domain.as_str(), |(_, w)| w);
    let probe = format!("traefik-deploy-probe.{wildcard}");
    let mut spec = ServeSpec::new(probe.clone(), opts.ca_cert.clone());
    spec.traefik = opts.addr;
    spec.readiness = Duration::ZERO;
    spec.timeout = Duration::from_secs(5);
    let r = serve::check(&spec).await;
    match r.verdict {
        Verdict::Fail(Failure::TraefikNotFound { .. }) => Ok(format!(
            "https://{probe}/ on {} answers Traefik's 404 under the wildcard certificate",
            opts.addr
        )),
        Verdict::Pass(s) => Ok(format!(
            "https://{probe}/ on {} answers {} under {}",
            opts.addr, s.status, s.certificate.subject
        )),
        other => Err(other.to_string()),
    }
}

/// Brings Traefik to `opts.version` in wildcard mode (see the module doc).
///
/// # Errors
/// [`TraefikError`]: no certificate secrets, recipe unreachable, a failed
/// deploy, or 443 not serving the wildcard certificate in time.
pub async fn deploy(native: &Native, opts: &TraefikOptions) -> Result<TraefikReport, TraefikError> {
    let app = App::new(&opts.abra_dir, RECIPE, &opts.domain);
    let cert = cert_version(&native.docker, &app.stack)
        .await?
        .ok_or_else(|| TraefikError::NoCertificate {
            stack: app.stack.clone(),
            domain: opts.domain.clone(),
        })?;
    let deployed = if already_live(&native.docker, &app.stack, &opts.version, &cert).await? {
        false
    } else {
        fetch_recipe(&app, &opts.recipe_source)?;
        if !app.env_path().exists() {
            native
                .new_app(&app, &app.checkout(), &opts.version, &BTreeMap::new())
                .await
                .map_err(|e| TraefikError::Recipe(e.to_string()))?;
        }
        let sample = crate::recipe::env_file::EnvFile::read(&app.checkout().join(".env.sample"))
            .map_err(|e| TraefikError::Recipe(e.to_string()))?;
        let mut files = crate::recipe::compose_files(sample.get("COMPOSE_FILE"));
        if !files.iter().any(|f| f == WILDCARD_OVERLAY) {
            files.push(WILDCARD_OVERLAY.to_string());
        }
        let compose_file = files.join(":");
        app.set_all([
            ("LETS_ENCRYPT_ENV", ""),
            ("WILDCARDS_ENABLED", "1"),
            ("COMPOSE_FILE", compose_file.as_str()),
            ("SECRET_WILDCARD_CERT_VERSION", cert.as_str()),
            ("SECRET_WILDCARD_KEY_VERSION", cert.as_str()),
        ])
        .map_err(|e| TraefikError::Recipe(e.to_string()))?;
        let req = DeployRequest {
            reference: opts.version.clone(),
            version: Version::Release(opts.version.clone()),
            kind: Kind::Install,
            default_timeout: opts.wait,
            forced_timeout: None,
        };
        native
            .deploy(&app, &req, &BTreeMap::new())
            .await
            .map_err(|e| TraefikError::Deploy {
                version: opts.version.clone(),
                detail: e.to_string(),
            })?;
        true
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        let last = match serving(opts).await {
            Ok(how) => {
                return Ok(TraefikReport {
                    deployed,
                    cert_version: cert,
                    serving: how,
                    waited_s: start.elapsed().as_secs_f64(),
                })
            }
            Err(e) => e,
        };
        if start.elapsed() >= opts.wait {
            return Err(TraefikError::NotServing {
                addr: opts.addr,
                wait: opts.wait,
                last,
                stack: app.stack,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
