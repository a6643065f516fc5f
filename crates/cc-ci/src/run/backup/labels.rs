//! The backupbot label contract ([`contract`]) read off a stack's live
//! services: which services turn backup on, their four hooks, and what each
//! backs up (its named volumes, whole or some paths of them), as a
//! [`BackupPlan`].

use std::collections::{BTreeSet, HashMap};

use bollard::models::MountType;
use bollard::Docker;

use crate::deploy::stack::{services_of, StackError};

use super::BACKUP_ROOT;

/// The backupbot label contract, and every decision taken where
/// `docs/abra.md`, "Backups: the backupbot label contract", is [I-src],
/// [I-rec] or silent. Change them here.
///
/// Decisions that are the shape of [`round_trip`](super::round_trip) rather than a value:
/// one restic snapshot per labelled service, in service name order, each
/// between that service's pre- and post-hook, and a restore per service
/// likewise (cc-ci's design; backup-bot-two's exact grouping is [I-src]).
/// App secrets, which backup-bot-two also copies into its snapshots
/// [I-src], are not backed up: the repository is a run's folder and must
/// not hold secrets. The repository is local (a bind-mounted host folder),
/// where backup-bot-two defaults to a `backups` volume; the snapshot paths
/// are `/backup/<volume>[/<path>]` (one-off container mounts) where
/// backup-bot-two's are `/var/lib/docker/volumes/<volume>/_data[/<path>]`
/// (the host's volume directory); restoring with `--target /` puts the
/// files back in the volume either way.
pub mod contract {
    /// Turns backup on for a service.
    pub const ENABLE: &str = "backupbot.backup";
    /// Run in the service's container before its volumes are snapshotted.
    pub const BACKUP_PRE_HOOK: &str = "backupbot.backup.pre-hook";
    /// Run after the snapshot.
    pub const BACKUP_POST_HOOK: &str = "backupbot.backup.post-hook";
    /// Run before the snapshot is restored.
    pub const RESTORE_PRE_HOOK: &str = "backupbot.restore.pre-hook";
    /// Run after the snapshot is restored.
    pub const RESTORE_POST_HOOK: &str = "backupbot.restore.post-hook";
    /// Legacy (v1) form: absolute container paths, comma-separated.
    pub const LEGACY_PATH: &str = "backupbot.backup.path";

    /// `backupbot.backup.volumes.<vol>`: `false` excludes the volume.
    /// `<vol>` is the short name (`<stack>_` stripped), as BK's labels use it.
    pub fn volume_switch(short: &str) -> String {
        format!("backupbot.backup.volumes.{short}")
    }

    /// `backupbot.backup.volumes.<vol>.path`: paths relative to the volume's
    /// root, comma-separated.
    pub fn volume_paths(short: &str) -> String {
        format!("backupbot.backup.volumes.{short}.path")
    }

    /// Whether a label value turns backup on: `true`, case-insensitive,
    /// surrounding blanks ignored. Decision (backup-bot-two's own test is
    /// unknown): anything else, `1` and `yes` included, is off, so a typo
    /// shows up as n/a with its reason rather than as a silent pass.
    pub fn enabled(value: &str) -> bool {
        value.trim().eq_ignore_ascii_case("true")
    }

    /// Whether `backupbot.backup.volumes.<vol>` excludes the volume: `false`,
    /// case-insensitive.
    pub fn excluded(value: &str) -> bool {
        value.trim().eq_ignore_ascii_case("false")
    }

    /// The argv a hook runs as: `sh -c '<hook>'`. Decision: backup-bot-two's
    /// exact exec form is unknown ([I-src]; its docker-py `exec_run(str)`
    /// may split the string shell-like without a shell); `sh -c` runs every
    /// hook written for that form (recipes wrap shell syntax in `bash -c
    /// '…'` themselves) and also plain shell one-liners.
    pub fn hook_argv(hook: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), hook.into()]
    }
}

/// Why a backup plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The stack's services could not be listed (infrastructure).
    #[error(transparent)]
    Stack(#[from] StackError),
    /// A legacy `backupbot.backup.path` names a path no named volume of the
    /// service holds (recipe).
    #[error("backupbot.backup.path {path} is not in a named volume of service {service}: it cannot be backed up; mount a named volume at (a parent of) that path, or fix the label")]
    PathNotInVolume {
        /// The service (short name).
        service: String,
        /// The container path.
        path: String,
    },
    /// A path label's value is not usable (recipe).
    #[error("label `{label}` of service {service}: `{path}` {detail}; fix the label")]
    BadPath {
        /// The service (short name).
        service: String,
        /// The label.
        label: String,
        /// The path as given.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl BackupError {
    /// True when the recipe is at fault (`fail`), false for the engine
    /// (`error`).
    pub fn is_recipe_failure(&self) -> bool {
        !matches!(self, BackupError::Stack(_))
    }
}

/// The four hooks of a service (label values, already interpolated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `backupbot.backup.pre-hook`.
    pub backup_pre: Option<String>,
    /// `backupbot.backup.post-hook`.
    pub backup_post: Option<String>,
    /// `backupbot.restore.pre-hook`.
    pub restore_pre: Option<String>,
    /// `backupbot.restore.post-hook`.
    pub restore_post: Option<String>,
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Before the snapshot.
    BackupPre,
    /// After the snapshot.
    BackupPost,
    /// Before the restore.
    RestorePre,
    /// After the restore (and after the witness check).
    RestorePost,
}

impl HookKind {
    /// The label the hook comes from.
    pub fn label(self) -> &'static str {
        match self {
            HookKind::BackupPre => contract::BACKUP_PRE_HOOK,
            HookKind::BackupPost => contract::BACKUP_POST_HOOK,
            HookKind::RestorePre => contract::RESTORE_PRE_HOOK,
            HookKind::RestorePost => contract::RESTORE_POST_HOOK,
        }
    }
}

impl Hooks {
    /// The command of one hook, if the service has it.
    pub fn get(&self, kind: HookKind) -> Option<&str> {
        match kind {
            HookKind::BackupPre => self.backup_pre.as_deref(),
            HookKind::BackupPost => self.backup_post.as_deref(),
            HookKind::RestorePre => self.restore_pre.as_deref(),
            HookKind::RestorePost => self.restore_post.as_deref(),
        }
    }
}

/// One thing to back up: a named volume, whole or one path in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The engine's volume name (`<stack>_<vol>`).
    pub volume: String,
    /// The name the labels use (`<vol>`).
    pub short: String,
    /// Where the service mounts the volume (container path).
    pub mount: String,
    /// The path relative to the volume's root (`a/b`, no leading `/`);
    /// empty = the whole volume.
    pub rel: String,
}

impl Target {
    /// The path restic snapshots: `/backup/<volume>[/<rel>]`.
    pub fn restic_path(&self) -> String {
        if self.rel.is_empty() {
            format!("{BACKUP_ROOT}/{}", self.volume)
        } else {
            format!("{BACKUP_ROOT}/{}/{}", self.volume, self.rel)
        }
    }

    /// The container path it is in the service: `<mount>[/<rel>]`.
    pub fn container_path(&self) -> String {
        if self.rel.is_empty() {
            self.mount.clone()
        } else {
            format!("{}/{}", self.mount.trim_end_matches('/'), self.rel)
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.rel.is_empty() {
            write!(f, "{} (volume {}, whole)", self.container_path(), self.short)
        } else {
            write!(
                f,
                "{} (volume {}, path {})",
                self.container_path(),
                self.short,
                self.rel
            )
        }
    }
}

/// One labelled service's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The compose service name (`<stack>_` stripped).
    pub service: String,
    /// Its hooks.
    pub hooks: Hooks,
    /// What it backs up, sorted, without duplicates.
    pub targets: Vec<Target>,
}

/// What a backup of the stack consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPlan {
    /// The stack.
    pub stack: String,
    /// The labelled services, by name.
    pub services: Vec<ServicePlan>,
    /// Remarks for the log (excluded volumes, dropped paths).
    pub notes: Vec<String>,
}

impl ServicePlan {
    /// The service's target volumes, without duplicates, sorted.
    pub fn volumes(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.targets.iter().map(|t| &t.volume).collect();
        set.into_iter().cloned().collect()
    }
}

impl BackupPlan {
    /// Every target volume, without duplicates, sorted.
    pub fn volumes(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .services
            .iter()
            .flat_map(|s| s.targets.iter().map(|t| &t.volume))
            .collect();
        set.into_iter().cloned().collect()
    }
}

/// Normalises an absolute container path (`/a//b/./c/` -> `/a/b/c`);
/// `..` is refused.
fn normalise_abs(p: &str) -> Result<String, &'static str> {
    if !p.starts_with('/') {
        return Err("is not an absolute path");
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("contains `..`"),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Normalises a path relative to a volume's root (`/a/./b/` -> `a/b`; a
/// leading `/` is taken as the volume's root); `..` is refused; `.` or
/// empty = the whole volume.
fn normalise_rel(p: &str) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("contains `..`: it would leave the volume"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// `path` relative to `mount` when `mount` is a path-prefix of it.
fn under(path: &str, mount: &str) -> Option<String> {
    if mount == "/" {
        return Some(path.trim_start_matches('/').to_string());
    }
    if path == mount {
        return Some(String::new());
    }
    path.strip_prefix(mount)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_string)
}

fn split_list(v: &str) -> Vec<&str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The paths of a path label: its comma-separated list, refused when it
/// lists none (an empty label would back up nothing of what it names, and
/// say nothing).
fn path_list<'v>(service: &str, label: &str, value: &'v str) -> Result<Vec<&'v str>, BackupError> {
    let list = split_list(value);
    if list.is_empty() {
        return Err(BackupError::BadPath {
            service: service.into(),
            label: label.into(),
            path: value.into(),
            detail: "lists no path (remove the label to back up the whole volume, or set \
                     backupbot.backup.volumes.<volume>=false to leave the volume out)"
                .into(),
        });
    }
    Ok(list)
}

/// A named volume a service mounts, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The engine's volume name (`<stack>_<vol>`).
    pub volume: String,
    /// The name labels use (`<vol>`: `<stack>_` stripped).
    pub short: String,
    /// Where the service mounts it: an absolute, normalised container path.
    pub target: String,
}

/// One service's part of the plan from its (interpolated) `labels` and its
/// named-volume `mounts`, and notes for the log; `None` when the service
/// does not turn backup on ([`contract::enabled`]).
///
/// # Errors
/// [`BackupError::PathNotInVolume`] and [`BackupError::BadPath`] (the
/// recipe's labels), naming the service and the label.
pub fn service_plan(
    service: &str,
    labels: &HashMap<String, String>,
    mounts: &[VolumeMount],
) -> Result<Option<(ServicePlan, Vec<String>)>, BackupError> {
    if !labels.get(contract::ENABLE).is_some_and(|v| contract::enabled(v)) {
        return Ok(None);
    }
    let (targets, notes) = targets_of(service, labels, mounts)?;
    let plan = ServicePlan {
        service: service.to_string(),
        hooks: Hooks {
            backup_pre: labels.get(contract::BACKUP_PRE_HOOK).cloned(),
            backup_post: labels.get(contract::BACKUP_POST_HOOK).cloned(),
            restore_pre: labels.get(contract::RESTORE_PRE_HOOK).cloned(),
            restore_post: labels.get(contract::RESTORE_POST_HOOK).cloned(),
        },
        targets,
    };
    Ok(Some((plan, notes)))
}

/// Plans the backup of `stack` from its live services (see the module doc
/// of [`crate::run::backup`]).
///
/// Returns None when no service carries `backupbot.backup=true` (the rung
/// is n/a: [`NOT_APPLICABLE`](super::NOT_APPLICABLE)).
///
/// Errors: [`BackupError::Stack`] (engine), [`BackupError::PathNotInVolume`]
/// and [`BackupError::BadPath`] (recipe).
pub async fn plan(docker: &Docker, stack: &str) -> Result<Option<BackupPlan>, BackupError> {
    let mut services = services_of(docker, stack).await?;
    services.sort_by_key(|s| s.spec.as_ref().and_then(|sp| sp.name.clone()));
    let prefix = format!("{stack}_");
    let mut out = BackupPlan {
        stack: stack.to_string(),
        services: Vec::new(),
        notes: Vec::new(),
    };
    for s in services {
        let Some(spec) = s.spec else { continue };
        let full = spec.name.clone().unwrap_or_default();
        let service = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
        let labels = spec.labels.clone().unwrap_or_default();
        let mounts: Vec<VolumeMount> = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.mounts.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ == Some(MountType::VOLUME))
            .filter_map(|m| {
                let source = m.source.filter(|s| !s.is_empty())?;
                let target = normalise_abs(m.target.as_deref().unwrap_or("")).ok()?;
                let short = source.strip_prefix(&prefix).unwrap_or(&source).to_string();
                Some(VolumeMount {
                    volume: source,
                    short,
                    target,
                })
            })
            .collect();
        if let Some((p, notes)) = service_plan(&service, &labels, &mounts)? {
            out.notes.extend(notes);
            out.services.push(p);
        }
    }
    Ok(if out.services.is_empty() { None } else { Some(out) })
}

/// The targets of one labelled service from its labels and its named-volume
/// mounts, plus notes.
fn targets_of(
    service: &str,
    labels: &HashMap<String, String>,
    mounts: &[VolumeMount],
) -> Result<(Vec<Target>, Vec<String>), BackupError> {
    let mut notes = Vec::new();
    // Legacy paths: each mapped to the volume mounted at its longest prefix.
    let legacy: Option<Vec<(usize, String)>> = match labels.get(contract::LEGACY_PATH) {
        None => None,
        Some(v) => {
            let mut mapped = Vec::new();
            for p in path_list(service, contract::LEGACY_PATH, v)? {
                let norm = normalise_abs(p).map_err(|d| BackupError::BadPath {
                    service: service.into(),
                    label: contract::LEGACY_PATH.into(),
                    path: p.into(),
                    detail: d.into(),
                })?;
                let best = mounts
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| under(&norm, &m.target).map(|rel| (i, rel, m.target.len())))
                    .max_by_key(|(_, _, len)| *len);
                match best {
                    Some((i, rel, _)) => mapped.push((i, rel)),
                    None => {
                        return Err(BackupError::PathNotInVolume {
                            service: service.into(),
                            path: norm,
                        })
                    }
                }
            }
            Some(mapped)
        }
    };
    let mut targets = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let short = &m.short;
        let mk = |rel: String| Target {
            volume: m.volume.clone(),
            short: short.clone(),
            mount: m.target.clone(),
            rel,
        };
        if labels
            .get(&contract::volume_switch(short))
            .is_some_and(|v| contract::excluded(v))
        {
            notes.push(format!(
                "service {service}: volume {short} excluded by {}=false",
                contract::volume_switch(short)
            ));
            if legacy.as_ref().is_some_and(|l| l.iter().any(|(j, _)| *j == i)) {
                notes.push(format!(
                    "service {service}: {} paths in the excluded volume {short} are not backed up",
                    contract::LEGACY_PATH
                ));
            }
            continue;
        }
        if let Some(v) = labels.get(&contract::volume_paths(short)) {
            for p in path_list(service, &contract::volume_paths(short), v)? {
                let rel = normalise_rel(p).map_err(|d| BackupError::BadPath {
                    service: service.into(),
                    label: contract::volume_paths(short),
                    path: p.into(),
                    detail: d.into(),
                })?;
                targets.insert(mk(rel));
            }
        } else if let Some(l) = &legacy {
            for (_, rel) in l.iter().filter(|(j, _)| *j == i) {
                targets.insert(mk(rel.clone()));
            }
        } else {
            targets.insert(mk(String::new()));
        }
    }
    Ok((targets.into_iter().collect(), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[(&str, &str)]) -> HashMap<String, String> {
        l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn mounts() -> Vec<VolumeMount> {
        [
            ("content", "/usr/share/nginx/html"),
            ("data", "/var/lib/app"),
            ("deep", "/var/lib/app/cache"),
        ]
        .into_iter()
        .map(|(short, target)| VolumeMount {
            volume: format!("s_{short}"),
            short: short.into(),
            target: target.into(),
        })
        .collect()
    }

    fn rels(t: &[Target]) -> Vec<(String, String)> {
        t.iter().map(|t| (t.short.clone(), t.rel.clone())).collect()
    }

    #[test]
    fn every_named_volume_by_default() {
        let (t, _) = targets_of("app", &labels(&[("backupbot.backup", "true")]), &mounts()).unwrap();
        assert_eq!(
            rels(&t),
            vec![
                ("content".into(), "".into()),
                ("data".into(), "".into()),
                ("deep".into(), "".into())
            ]
        );
    }

    #[test]
    fn exclusion_and_volume_paths() {
        let l = labels(&[
            ("backupbot.backup.volumes.content", "false"),
            ("backupbot.backup.volumes.data.path", "backup.sql, /sub/./dir/"),
        ]);
        let (t, notes) = targets_of("app", &l, &mounts()).unwrap();
        assert_eq!(
            rels(&t),
            vec![
                ("data".into(), "backup.sql".into()),
                ("data".into(), "sub/dir".into()),
                ("deep".into(), "".into())
            ]
        );
        assert!(notes[0].contains("content excluded"), "{notes:?}");
        let bad = labels(&[("backupbot.backup.volumes.data.path", "../etc")]);
        assert!(matches!(
            targets_of("app", &bad, &mounts()),
            Err(BackupError::BadPath { .. })
        ));
    }

    #[test]
    fn legacy_paths_map_to_the_longest_mount_prefix() {
        let l = labels(&[(
            "backupbot.backup.path",
            "/usr/share/nginx/html,/var/lib/app/cache/x,/var/lib/app/db.sql",
        )]);
        let (t, _) = targets_of("app", &l, &mounts()).unwrap();
        assert_eq!(
            rels(&t),
            vec![
                ("content".into(), "".into()),
                ("data".into(), "db.sql".into()),
                ("deep".into(), "x".into())
            ]
        );
        assert_eq!(t[1].restic_path(), "/backup/s_data/db.sql");
        assert_eq!(t[1].container_path(), "/var/lib/app/db.sql");

        let l = labels(&[("backupbot.backup.path", "/etc/app")]);
        let e = targets_of("s", &l, &mounts()).unwrap_err();
        assert!(e.is_recipe_failure());
        assert_eq!(
            e.to_string().split(':').next().unwrap(),
            "backupbot.backup.path /etc/app is not in a named volume of service s"
        );
        // `/usr/share/nginx/htmlx` is not under `/usr/share/nginx/html`.
        let l = labels(&[("backupbot.backup.path", "/usr/share/nginx/htmlx")]);
        assert!(targets_of("s", &l, &mounts()).is_err());
    }

    /// A path label that lists no path is refused naming it: it would
    /// leave its volume out of the backup without a word.
    #[test]
    fn a_path_label_listing_no_path_is_refused() {
        for (label, value) in [
            ("backupbot.backup.volumes.data.path", ""),
            ("backupbot.backup.volumes.data.path", " , "),
            ("backupbot.backup.path", ","),
        ] {
            let l = labels(&[("backupbot.backup", "true"), (label, value)]);
            let e = targets_of("app", &l, &mounts()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("label `{label}` of service app: ")) && e.contains("lists no path"),
                "{label}={value:?}: {e}"
            );
        }
    }

    #[test]
    fn the_label_switch() {
        assert!(contract::enabled("true"));
        assert!(contract::enabled(" TRUE "));
        assert!(!contract::enabled("false"));
        assert!(!contract::enabled("1"));
        assert_eq!(contract::hook_argv("exit 7"), vec!["sh", "-c", "exit 7"]);
    }
}
