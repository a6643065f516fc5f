//! The bridge's settings: one TOML file (the NixOS module writes it from
//! `services.cc-ci.bridge.*`; tests write their own). Secrets are never in
//! it: it names the files that hold them (systemd credentials in
//! production), read once at start by [`Secrets::load`].
//!
//! ```toml
//! gitea_url = "https://git.coopcloud.tech"
//! gitea_token_file = "/run/credentials/cc-ci-bridge.service/gitea-token"
//! org = "coop-cloud"                      # members may !testme
//! repos = ["coop-cloud/custom-html"]      # enrolled recipe repositories
//! buildbot_url = "http://127.0.0.1:8010/" # where the API is reached
//! buildbot_password_file = "/run/credentials/cc-ci-bridge.service/buildbot-password"
//! results_dir = "/var/lib/cc-ci/results"  # the master's results root
//! state_db = "/var/lib/cc-ci-bridge/state.sqlite"
//! # optional, with their defaults:
//! listen = "127.0.0.1:8081"               # /hook and /status
//! webhook_secret_file = "..."             # unset: no webhook, polling alone
//! poll_interval_s = 30
//! follow_interval_s = 2
//! sweep_interval_s = 604800               # 0: no weekly sweep
//! buildbot_public_url = "https://ci.example.org/"   # links in statuses and comments
//! dashboard_url = "https://dashboard.ci.example.org" # unset: comments link no badge, run page or files
//! buildbot_user = "bridge"
//! builder = "ccci"
//! scheduler = "testme"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A settings file that cannot be used, naming the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("bridge settings {path}: cannot read it: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// Not TOML of the expected shape.
    #[error("bridge settings {path}: {detail} (the keys are documented in crates/bridge/src/config.rs)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        detail: String,
    },
    /// A value that parses but cannot work.
    #[error("bridge settings {path}: {key}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong and the fix.
        detail: String,
    },
    /// A secret file that cannot be read or is empty.
    #[error("bridge settings {path}: {key}: {file}: {detail}")]
    Secret {
        /// The settings file.
        path: PathBuf,
        /// The key naming the secret file.
        key: &'static str,
        /// The secret file.
        file: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    gitea_url: String,
    gitea_token_file: PathBuf,
    org: String,
    repos: Vec<String>,
    buildbot_url: String,
    buildbot_password_file: PathBuf,
    results_dir: PathBuf,
    state_db: PathBuf,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    webhook_secret_file: Option<PathBuf>,
    #[serde(default = "default_poll")]
    poll_interval_s: f64,
    #[serde(default = "default_follow")]
    follow_interval_s: f64,
    #[serde(default = "default_sweep")]
    sweep_interval_s: f64,
    #[serde(default)]
    buildbot_public_url: Option<String>,
    #[serde(default)]
    dashboard_url: Option<String>,
    #[serde(default = "default_user")]
    buildbot_user: String,
    #[serde(default = "default_builder")]
    builder: String,
    #[serde(default = "default_scheduler")]
    scheduler: String,
}

fn default_listen() -> String {
    "127.0.0.1:8081".into()
}
fn default_poll() -> f64 {
    30.0
}
fn default_follow() -> f64 {
    2.0
}
fn default_sweep() -> f64 {
    7.0 * 24.0 * 3600.0
}
fn default_user() -> String {
    "bridge".into()
}
fn default_builder() -> String {
    "ccci".into()
}
fn default_scheduler() -> String {
    "testme".into()
}

/// Whether `name` is a recipe name Buildbot's force scheduler takes (the
/// `recipe` property's check in `pkgs/buildbot/master.cfg`, `RECIPE_RE`:
/// `^[a-z0-9][a-z0-9._-]{0,62}$`). The bridge sends an enrolled
/// repository's name as the recipe, so a name outside it could never be
/// built.
pub fn is_recipe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// An enrolled repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName {
    /// The owner (user or organisation).
    pub owner: String,
    /// The repository.
    pub name: String,
}

impl RepoName {
    /// Parses `owner/name` (each part non-empty, no further `/`).
    pub fn parse(s: &str) -> Option<RepoName> {
        let (owner, name) = s.split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (ok(owner) && ok(name)).then(|| RepoName {
            owner: owner.into(),
            name: name.into(),
        })
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The bridge's settings, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings file these came from.
    pub path: PathBuf,
    /// Gitea's base URL, without a trailing `/`.
    pub gitea_url: String,
    /// The file holding the bot's Gitea token.
    pub gitea_token_file: PathBuf,
    /// The organisation whose members may `!testme`.
    pub org: String,
    /// Enrolled repositories.
    pub repos: Vec<RepoName>,
    /// Buildbot's base URL (API at `<url>api/v2/`), with a trailing `/`.
    pub buildbot_url: String,
    /// Buildbot's URL as people reach it (links), with a trailing `/`.
    pub buildbot_public_url: String,
    /// The Buildbot user the bridge logs in as.
    pub buildbot_user: String,
    /// The file holding its password.
    pub buildbot_password_file: PathBuf,
    /// The dashboard's public URL, without a trailing `/`: comments show
    /// the run's badge from it and link its run page and files. `None`:
    /// no dashboard.
    pub dashboard_url: Option<String>,
    /// The builder that runs `ccci test`.
    pub builder: String,
    /// The force scheduler that starts it.
    pub scheduler: String,
    /// The master's results root (`<dir>/<recipe>/<run id>/results.json`).
    pub results_dir: PathBuf,
    /// The SQLite file of the bridge's state.
    pub state_db: PathBuf,
    /// Where `/hook` and `/status` listen.
    pub listen: SocketAddr,
    /// The file holding the webhook's HMAC secret; `None`: no webhook.
    pub webhook_secret_file: Option<PathBuf>,
    /// Between two polls of the enrolled repositories.
    pub poll_interval: Duration,
    /// Between two looks at the builds in flight.
    pub follow_interval: Duration,
    /// Between two sweeps of the newest release tags; `None`: no sweep.
    pub sweep_interval: Option<Duration>,
}

fn slash(mut url: String) -> String {
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

impl Config {
    /// Reads and checks the settings file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key and the fix.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            detail: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Checks settings given as TOML text (`path` is only for messages).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            detail: e.to_string().trim().replace('\n', " "),
        })?;
        let invalid = |key: &'static str, detail: String| ConfigError::Invalid {
            path: path.into(),
            key,
            detail,
        };
        let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if !url_ok(&raw.gitea_url) {
            return Err(invalid(
                "gitea_url",
                format!("{:?} is not an http(s) URL", raw.gitea_url),
            ));
        }
        if !url_ok(&raw.buildbot_url) {
            return Err(invalid(
                "buildbot_url",
                format!("{:?} is not an http(s) URL", raw.buildbot_url),
            ));
        }
        if raw.org.is_empty() {
            return Err(invalid(
                "org",
                "empty: name the organisation whose members may !testme".into(),
            ));
        }
        let mut repos = Vec::new();
        for r in &raw.repos {
            match RepoName::parse(r) {
                Some(n) if is_recipe_name(&n.name) => repos.push(n),
                Some(n) => {
                    return Err(invalid(
                        "repos",
                        format!(
                            "{r:?}: the repository's name is the recipe's name on Buildbot, and {:?} is not one \
                             (lower-case letters, digits, . _ -, starting with a letter or digit, at most 63): \
                             rename the repository (Co-op Cloud recipe names are lower case)",
                            n.name
                        ),
                    ))
                }
                None => return Err(invalid("repos", format!("{r:?} is not owner/name"))),
            }
        }
        if repos.is_empty() {
            return Err(invalid(
                "repos",
                "empty: enrol at least one recipe repository (owner/name)".into(),
            ));
        }
        let listen = raw
            .listen
            .parse()
            .map_err(|e| invalid("listen", format!("{:?}: {e} (e.g. 127.0.0.1:8081)", raw.listen)))?;
        let secs = |key: &'static str, v: f64, min: f64| {
            if v.is_finite() && v >= min {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(invalid(key, format!("{v} must be a number of seconds >= {min}")))
            }
        };
        let poll_interval = secs("poll_interval_s", raw.poll_interval_s, 0.2)?;
        let follow_interval = secs("follow_interval_s", raw.follow_interval_s, 0.1)?;
        let sweep_interval = if raw.sweep_interval_s == 0.0 {
            None
        } else {
            Some(secs("sweep_interval_s", raw.sweep_interval_s, 1.0)?)
        };
        let buildbot_url = slash(raw.buildbot_url);
        let dashboard_url = match raw.dashboard_url {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err(invalid(
                    "dashboard_url",
                    format!("{u:?} must start with https:// or http://"),
                ))
            }
            None => None,
        };
        Ok(Config {
            dashboard_url,
            path: path.into(),
            gitea_url: raw.gitea_url.trim_end_matches('/').into(),
            gitea_token_file: raw.gitea_token_file,
            org: raw.org,
            repos,
            buildbot_public_url: raw
                .buildbot_public_url
                .map(slash)
                .unwrap_or_else(|| buildbot_url.clone()),
            buildbot_url,
            buildbot_user: raw.buildbot_user,
            buildbot_password_file: raw.buildbot_password_file,
            builder: raw.builder,
            scheduler: raw.scheduler,
            results_dir: raw.results_dir,
            state_db: raw.state_db,
            listen,
            webhook_secret_file: raw.webhook_secret_file,
            poll_interval,
            follow_interval,
            sweep_interval,
        })
    }

    /// Whether `repo` is enrolled.
    pub fn enrolled(&self, repo: &RepoName) -> bool {
        self.repos.contains(repo)
    }
}

/// A secret read from a file: its text never reaches `Debug` or `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret from a value (tests).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secrets the settings name, read once at start.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The bot's Gitea token.
    pub gitea_token: Secret,
    /// The Buildbot user's password.
    pub buildbot_password: Secret,
    /// The webhook's HMAC secret, if the webhook is on.
    pub webhook_secret: Option<Secret>,
}

impl Secrets {
    /// Reads the secret files of `config` (the first line of each, trimmed).
    ///
    /// # Errors
    /// [`ConfigError::Secret`] naming the key and the file when one cannot be
    /// read or is empty.
    pub fn load(config: &Config) -> Result<Secrets, ConfigError> {
        let read = |key: &'static str, file: &Path| {
            let err = |detail: String| ConfigError::Secret {
                path: config.path.clone(),
                key,
                file: file.into(),
                detail,
            };
            let text = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
            let value = text.lines().next().unwrap_or("").trim().to_string();
            if value.is_empty() {
                return Err(err("the file is empty".into()));
            }
            Ok(Secret(value))
        };
        Ok(Secrets {
            gitea_token: read("gitea_token_file", &config.gitea_token_file)?,
            buildbot_password: read("buildbot_password_file", &config.buildbot_password_file)?,
            webhook_secret: match &config.webhook_secret_file {
                Some(f) => Some(read("webhook_secret_file", f)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
gitea_url = "https://git.example.org/"
gitea_token_file = "/run/token"
org = "recipes"
repos = ["recipes/static-site"]
buildbot_url = "http://127.0.0.1:8010"
buildbot_password_file = "/run/bb"
results_dir = "/var/lib/cc-ci/results"
state_db = "/var/lib/cc-ci-bridge/state.sqlite"
"#;

    #[test]
    fn defaults_fill_what_is_not_given() {
        let c = Config::parse(Path::new("bridge.toml"), MINIMAL).unwrap();
        assert_eq!(c.gitea_url, "https://git.example.org");
        assert_eq!(c.buildbot_url, "http://127.0.0.1:8010/");
        assert_eq!(c.buildbot_public_url, c.buildbot_url);
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        assert_eq!(c.sweep_interval, Some(Duration::from_secs(604_800)));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
        assert!(c.webhook_secret_file.is_none());
        assert!(c.enrolled(&RepoName::parse("recipes/static-site").unwrap()));
        assert!(!c.enrolled(&RepoName::parse("recipes/other").unwrap()));
    }

    #[test]
    fn bad_settings_name_the_file_and_the_key() {
        let cases = [
            (MINIMAL.replace("recipes/static-site", "no-slash"), "repos"),
            // Buildbot's force scheduler takes the name as the recipe
            // (master.cfg's RECIPE_RE): lower case only.
            (MINIMAL.replace("recipes/static-site", "recipes/Static-Site"), "repos"),
            (MINIMAL.replace("recipes/static-site", "recipes/.site"), "repos"),
            (
                MINIMAL.replace("recipes/static-site", &format!("recipes/{}", "a".repeat(64))),
                "repos",
            ),
            (
                MINIMAL.replace("https://git.example.org/", "git.example.org"),
                "gitea_url",
            ),
            (format!("{MINIMAL}poll_interval_s = -1\n"), "poll_interval_s"),
            (format!("{MINIMAL}listen = \"here\"\n"), "listen"),
            (format!("{MINIMAL}colour = \"blue\"\n"), "unknown field"),
            (MINIMAL.replace("org = \"recipes\"", ""), "missing field"),
            ("repos = [".to_string(), "bridge.toml"),
        ];
        for (text, want) in cases {
            let e = Config::parse(Path::new("bridge.toml"), &text).unwrap_err().to_string();
            assert!(e.contains("bridge.toml") && e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn recipe_names_are_those_buildbot_takes() {
        for ok in ["static-site", "0ad", "a.b_c-d", &"a".repeat(63)] {
            assert!(is_recipe_name(ok), "{ok}");
        }
        for bad in ["", "Static", "-x", ".x", "_x", "a b", "a/b", &"a".repeat(64)] {
            assert!(!is_recipe_name(bad), "{bad}");
        }
        let upper = MINIMAL.replace("recipes/static-site", "Recipes/static-site");
        assert!(
            Config::parse(Path::new("bridge.toml"), &upper).is_ok(),
            "the owner may be any case"
        );
    }

    #[test]
    fn secrets_are_read_from_files_and_never_shown() {
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        let bb = d.path().join("bb");
        std::fs::write(&bb, "").unwrap();
        let text = MINIMAL
            .replace("/run/token", token.to_str().unwrap())
            .replace("/run/bb", bb.to_str().unwrap());
        let c = Config::parse(Path::new("bridge.toml"), &text).unwrap();
        let e = Secrets::load(&c).unwrap_err().to_string();
        assert!(e.contains("buildbot_password_file") && e.contains("empty"), "{e}");
        std::fs::write(&bb, "pw").unwrap();
        let s = Secrets::load(&c).unwrap();
        assert_eq!(s.gitea_token.expose(), "s3cr3t-token");
        assert!(!format!("{s:?}").contains("s3cr3t"), "{s:?}");
    }
}
