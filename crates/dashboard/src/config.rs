//! The dashboard's settings: a TOML file (the NixOS module writes it).
//!
//! ```toml
//! results_dir = "/var/lib/cc-ci/results"   # required: <dir>/<recipe>/<run id>/results.json
//! public_url = "https://dashboard.ci.example.org"   # required: links in the feed and API
//! listen = "127.0.0.1:8082"                # default
//! clone_url = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"   # default
//! buildbot_url = "http://127.0.0.1:8010"   # optional: the queue page reads its API
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The dashboard's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The results root: `<dir>/<recipe>/<run id>/results.json` and the
    /// run's files beside it. Read only.
    pub results_dir: PathBuf,
    /// The dashboard's public URL, without a trailing slash (absolute links
    /// in the Atom feed and the JSON API).
    pub public_url: String,
    /// Where to listen (default `127.0.0.1:8082`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A recipe's clone URL, `{recipe}` replaced (the reproduce commands).
    #[serde(default = "default_clone_url")]
    pub clone_url: String,
    /// Buildbot's base URL, for the queue page (`GET /api/v2/buildrequests`,
    /// `GET /api/v2/builds`); without it the page says there is none.
    #[serde(default)]
    pub buildbot_url: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8082))
}

fn default_clone_url() -> String {
    "https://git.coopcloud.tech/coop-cloud/{recipe}.git".into()
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("dashboard settings {path}: {detail}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong and what to do.
    pub detail: String,
}

impl Config {
    /// Reads and checks the settings file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the key: unreadable, not TOML,
    /// an unknown key, a `public_url` that is not http(s).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let err = |detail: String| ConfigError {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut c: Config = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if !(c.public_url.starts_with("https://") || c.public_url.starts_with("http://")) {
            return Err(err(format!(
                "public_url {:?} must start with https:// or http://",
                c.public_url
            )));
        }
        c.public_url = c.public_url.trim_end_matches('/').to_string();
        if let Some(b) = &mut c.buildbot_url {
            *b = b.trim_end_matches('/').to_string();
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_reads_with_defaults_and_a_bad_one_names_file_and_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dashboard.toml");
        std::fs::write(&p, "results_dir = \"/r\"\npublic_url = \"https://d.example/\"\n").unwrap();
        let c = Config::read(&p).unwrap();
        assert_eq!(c.public_url, "https://d.example");
        assert_eq!(c.listen, default_listen());
        std::fs::write(&p, "results_dir = \"/r\"\npublic_url = \"d.example\"\n").unwrap();
        let e = Config::read(&p).unwrap_err().to_string();
        assert!(e.contains("dashboard.toml") && e.contains("public_url"), "{e}");
        std::fs::write(
            &p,
            "results_dir = \"/r\"\npublic_url = \"https://d\"\nlisten_port = 1\n",
        )
        .unwrap();
        let e = Config::read(&p).unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
    }
}
