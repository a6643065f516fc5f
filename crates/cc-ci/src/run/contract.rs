//! The test contract: the environment every cc-ci executable (install
//! steps, hooks, custom tests) runs in, and what its exit status means
//! (`tests/recipes/README.md`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::results::level::Rung;
use crate::run::plan::RunPlan;
use crate::settings::Settings;

/// The environment every cc-ci executable (install steps, hooks, custom
/// tests) gets, in addition to the runner's own (`PATH`, `HOME` ...). This is
/// the contract documented in `tests/recipes/README.md`; the variables are
/// listed on [`TestEnv::vars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEnv {
    /// Recipe name.
    pub recipe: String,
    /// The app's domain, e.g. `webapp-pg-1a2b3c.ci.test`.
    pub domain: String,
    /// The app's stack name (the domain with `.` as `_`).
    pub stack: String,
    /// The run's `ABRA_DIR` (abra commands in it act on this app).
    pub abra_dir: PathBuf,
    /// The PEM CA that signed the wildcard certificate (trust only it).
    pub ca_cert: PathBuf,
    /// The run's results folder.
    pub results_dir: PathBuf,
    /// Where Traefik listens (the domain may not resolve in DNS).
    pub traefik: SocketAddr,
    /// The recipe's settings folder in this repository.
    pub settings_dir: PathBuf,
    /// The recipe checkout under test.
    pub recipe_dir: PathBuf,
}

impl TestEnv {
    /// The contract for a planned run.
    pub fn from_plan(plan: &RunPlan, ca_cert: &Path, traefik: SocketAddr, settings: &Settings) -> TestEnv {
        TestEnv {
            recipe: plan.recipe.name.clone(),
            domain: plan.domain.clone(),
            stack: plan.stack.clone(),
            abra_dir: plan.abra_dir.clone(),
            ca_cert: ca_cert.to_path_buf(),
            results_dir: plan.results_dir.clone(),
            traefik,
            settings_dir: settings.dir.clone(),
            recipe_dir: plan.recipe.dir.clone(),
        }
    }

    /// `https://<domain>/` (with `:<port>` when Traefik is not on 443).
    pub fn app_url(&self) -> String {
        match self.traefik.port() {
            443 => format!("https://{}/", self.domain),
            p => format!("https://{}:{p}/", self.domain),
        }
    }

    /// Where executable `name` of `rung` may write JUnit XML:
    /// `<results>/junit/<rung>-<name>.xml` (name with anything but
    /// letters, digits, `-`, `_`, `.` replaced by `_`).
    pub fn junit_out(&self, rung: Rung, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.results_dir
            .join("junit")
            .join(format!("{}-{safe}.xml", rung.word()))
    }

    /// The variables for executable `name` (its file name) run for `rung`
    /// (install for install steps; the coming rung for a hook; tested for a
    /// custom test):
    ///
    /// | variable | value |
    /// |---|---|
    /// | `CCCI_RECIPE` | recipe name |
    /// | `CCCI_RUNG` | `install`, `serve`, `upgrade`, `restore`, `lint` or `tested` |
    /// | `CCCI_APP_DOMAIN` | the app's domain |
    /// | `CCCI_APP_URL` | `https://<domain>/` (port added when not 443) |
    /// | `CCCI_STACK` | the stack name |
    /// | `ABRA_DIR` | the run's abra folder |
    /// | `CCCI_CA_CERT` | PEM file of the CA to trust |
    /// | `CCCI_TRAEFIK_HOST`, `CCCI_TRAEFIK_PORT` | where to connect (`curl --resolve`) |
    /// | `CCCI_RESULTS_DIR` | the run's results folder (artifacts may go in it) |
    /// | `CCCI_JUNIT_OUT` | where JUnit XML may be written ([`TestEnv::junit_out`]; its folder exists) |
    /// | `CCCI_SETTINGS_DIR` | `tests/recipes/<recipe>` (helpers in `custom/<subfolder>`) |
    /// | `CCCI_RECIPE_DIR` | the recipe checkout under test |
    /// | `CURL_CA_BUNDLE`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` | `CCCI_CA_CERT`, so curl, OpenSSL and Python requests trust the CA |
    pub fn vars(&self, rung: Rung, name: &str) -> Vec<(String, String)> {
        let p = |p: &Path| p.display().to_string();
        let ca = p(&self.ca_cert);
        [
            ("CCCI_RECIPE", self.recipe.clone()),
            ("CCCI_RUNG", rung.word().to_string()),
            ("CCCI_APP_DOMAIN", self.domain.clone()),
            ("CCCI_APP_URL", self.app_url()),
            ("CCCI_STACK", self.stack.clone()),
            ("ABRA_DIR", p(&self.abra_dir)),
            ("CCCI_CA_CERT", ca.clone()),
            ("CCCI_TRAEFIK_HOST", self.traefik.ip().to_string()),
            ("CCCI_TRAEFIK_PORT", self.traefik.port().to_string()),
            ("CCCI_RESULTS_DIR", p(&self.results_dir)),
            ("CCCI_JUNIT_OUT", p(&self.junit_out(rung, name))),
            ("CCCI_SETTINGS_DIR", p(&self.settings_dir)),
            ("CCCI_RECIPE_DIR", p(&self.recipe_dir)),
            ("CURL_CA_BUNDLE", ca.clone()),
            ("SSL_CERT_FILE", ca.clone()),
            ("REQUESTS_CA_BUNDLE", ca),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
