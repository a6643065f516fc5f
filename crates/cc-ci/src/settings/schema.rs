//! The schema of `ccci.toml` as serde reads it: every table with
//! `deny_unknown_fields`, so a misspelt key is an error naming the file and
//! line, never a setting silently ignored. [`super::Settings::load`] checks
//! the values and turns them into [`super::Settings`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    #[serde(default)]
    pub(super) timeouts: RawTimeouts,
    #[serde(default)]
    pub(super) env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) upgrade: RawUpgrade,
    #[serde(default)]
    pub(super) serve: RawServe,
    #[serde(default)]
    pub(super) checks: BTreeMap<Spanned<String>, Vec<Spanned<RawCheck>>>,
    pub(super) backup: Option<Spanned<RawBackup>>,
    #[serde(default)]
    pub(super) expect_na: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) overlay: Option<Spanned<RawOverlay>>,
    pub(super) min_level: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) volumes: RawVolumes,
    pub(super) data: Option<Spanned<RawData>>,
    #[serde(default)]
    pub(super) tested: RawTested,
    #[serde(default)]
    pub(super) allow: RawAllow,
    pub(super) limits: Option<Spanned<RawLimits>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVolumes {
    #[serde(default)]
    pub(super) ephemeral: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `[allow]`: one flag and tables of subject = reason, each named by its
/// [`Kind::key`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub(super) privileged: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) bind_mounts: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) cap_add: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) devices: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) host_modes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) security_opt: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) ports: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) names: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) files: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) traefik_hosts: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) traefik_names: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) service: Spanned<String>,
    pub(super) write: Spanned<String>,
    pub(super) read: Spanned<String>,
    pub(super) destroy: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTested {
    pub(super) retries: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) cpus: Option<Spanned<f64>>,
    pub(super) memory: Option<Spanned<String>>,
    pub(super) reason: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub(super) deploy: Option<Spanned<f64>>,
    pub(super) http: Option<Spanned<f64>>,
    pub(super) scripts: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpgrade {
    pub(super) base: Option<Spanned<String>>,
    pub(super) skip: Option<Spanned<String>>,
    pub(super) env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServe {
    pub(super) checks: Option<Spanned<Vec<Spanned<RawCheck>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) path: Option<Spanned<String>>,
    pub(super) status: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) content: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub(super) capable: Spanned<bool>,
    pub(super) reason: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverlay {
    pub(super) reason: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproved {
    pub(super) approved: Vec<Spanned<String>>,
}
