//! Rung `restore`: a native runner of backup-bot-two's label contract.
//!
//! Under abra, `abra app backup create` and `abra app restore` drive
//! backup-bot-two, a separate app that reads backupbot labels off the app's
//! services, runs their hooks and snapshots their volumes with restic
//! (`docs/abra.md`, "Backups: the backupbot label contract"). cc-ci runs
//! the same contract itself, per run,
//! against the live stack, and proves it with witnesses: back up, destroy
//! the witnesses, restore, and check that every witness came back byte for
//! byte.
//!
//! # The contract (service `deploy.labels`, docs/abra.md, "Backups")
//!
//! - `backupbot.backup=true` turns backup on for the service [I-rec].
//! - `backupbot.backup.pre-hook` / `backupbot.backup.post-hook`,
//!   `backupbot.restore.pre-hook` / `backupbot.restore.post-hook`: shell
//!   commands run in a running container of the service [I-rec].
//! - Targets: every named volume the service mounts; stack volumes are named
//!   `<stack>_<vol>` and the labels use the short `<vol>` [I-rec BK].
//!   `backupbot.backup.volumes.<vol>=false` excludes one;
//!   `backupbot.backup.volumes.<vol>.path=<p>[,<p>]` limits it to those paths
//!   relative to the volume's root [I-rec BK]; the legacy
//!   `backupbot.backup.path=/abs/path[,/abs/path]` limits the service to
//!   those container paths, each mapped to the volume mounted at the longest
//!   prefix of it [I-rec template]. A legacy path under no named volume
//!   cannot be backed up: the recipe fails.
//!
//! Where docs/abra.md marks a point [I-src] or unknown, this module follows it
//! and every such decision is in [`contract`], so it is easy to correct.
//!
//! # What a round trip does ([`round_trip`])
//!
//! 1. [`plan`] from the LIVE stack: the services' spec labels (already
//!    interpolated by the deploy) and their volume mounts, not the compose
//!    files. No service labelled: n/a ([`NOT_APPLICABLE`]).
//! 2. `restic init` of a fresh per-run repository (a host folder the caller
//!    gives, bind-mounted at `/repository`) with a random password that only
//!    this process's memory holds: it reaches restic as a file copied into
//!    each restic container through the archive API
//!    (`RESTIC_PASSWORD_FILE`), never in argv, env, logs or results.
//! 3. Backup, for each labelled service in name order: pre-hook; each
//!    target must exist; a witness file is written into every directory
//!    target (at a volume's root through [`crate::run::witness`], in a
//!    sub-directory through the archive API here); `restic backup --host
//!    cc-ci --json <paths>` in a one-off container of the restic image that
//!    mounts the service's targeted volumes read-only at `/backup/<volume>`;
//!    the snapshot's bytes of every file target (`restic dump`) are the
//!    file's witness (length and SHA-256); post-hook.
//! 4. Destroy: every witness file and every file target is deleted, and
//!    checked to be gone, so what comes back can only come from restic.
//! 5. Restore, for each service: restore pre-hook; `restic restore <id>
//!    --target /` in a one-off restic container mounting the same volumes
//!    read-write at the same paths; the witnesses are checked BEFORE the
//!    restore post-hook (which may consume a file target such as a dump);
//!    restore post-hook.
//!
//! A backup post-hook runs whenever its pre-hook succeeded, also after a
//! failed snapshot (it may undo what the pre-hook did, and later rungs use
//! the same deployment); a restore post-hook runs only after a successful
//! check (it would consume data that did not check out). The first failure
//! decides the status; the rest is in the log.
//!
//! Every one-off container carries `com.docker.stack.namespace=<stack>`, so
//! the stack's teardown and the janitor remove it if a run dies; each is
//! removed after use in any case. The restic image needs `restic` and `rm`
//! on its PATH (`ccci/restic:0.14.0`, Debian's restic 0.14).
//!
//! Status: [`RoundTripStatus::Fail`] when the recipe is at fault (a hook
//! exits non-zero or cannot run, a target missing, a path not in a volume,
//! files of a target restic cannot read (restic exit 3), a witness missing
//! or differing), [`RoundTripStatus::Error`] when the
//! infrastructure is (Docker, the restic image missing, restic failing on
//! the repository).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, DownloadFromContainerOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::deploy::exec::{copy_file_into, exec, running_container, tail_lines, ExecError, Tail};
use crate::deploy::stack::{services_of, status_of, StackError, NAMESPACE_LABEL};
use crate::run::data::{DataFault, DataProbe};
use crate::run::witness::{Witness, WitnessState};

/// The rung's n/a reason when no service carries the label.
pub const NOT_APPLICABLE: &str = "no service carries the backupbot.backup label";

/// The restic image used unless the options say otherwise (built locally by
/// `scripts/images`: Debian's restic 0.14 on `ccci/debian:bookworm`).
pub const DEFAULT_RESTIC_IMAGE: &str = "ccci/restic:0.14.0";

/// The label on this module's one-off containers (value: what it does).
pub const HELPER_LABEL: &str = "cc-ci.backup-helper";

/// Where one-off containers mount the targeted volumes: `/backup/<volume>`.
const BACKUP_ROOT: &str = "/backup";
/// Where restic containers mount the repository folder.
const REPOSITORY: &str = "/repository";
/// The password file restic containers read (copied in before start).
const PASSWORD_FILE: &str = "ccci-restic-password";

/// The backupbot label contract, and every decision taken where
/// `docs/abra.md`, "Backups: the backupbot label contract", is [I-src],
/// [I-rec] or silent. Change them here.
///
/// Decisions that are the shape of [`round_trip`] rather than a value:
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

/// Plans the backup of `stack` from its live services (see the module doc).
///
/// Returns None when no service carries `backupbot.backup=true` (the rung
/// is n/a: [`NOT_APPLICABLE`]).
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

/// Simulated faults, for tests that prove the rung can fail. Never set in
/// a real run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `restic backup` gets `--exclude=.ccci-witness-*`: the snapshot lacks
    /// the directory witnesses, so they cannot come back (simulates a
    /// backup that misses data).
    ExcludeWitnesses,
    /// After the restic restore and before the check, every restored
    /// witness and file target is overwritten with its first half
    /// (simulates a restore that brings back a truncated file).
    TruncateAfterRestore,
    /// After the backup, every byte of the repository's `data/` pack files
    /// is flipped (simulates a corrupted repository: restic refuses the
    /// data, so the witnesses cannot come back).
    CorruptRepositoryData,
}

/// Knobs of [`round_trip`].
#[derive(Debug, Clone)]
pub struct RoundTripOptions {
    /// The restic image (needs `restic` and `rm` on PATH; present locally,
    /// nothing is pulled). Default [`DEFAULT_RESTIC_IMAGE`].
    pub restic_image: String,
    /// How long one hook may run (default 300 s).
    pub hook_timeout: Duration,
    /// How long one restic command may run (default 1800 s).
    pub restic_timeout: Duration,
    /// The witness name (file `.ccci-witness-<name>-<service>`); default
    /// `backup`.
    pub witness_name: String,
    /// A simulated fault (tests only).
    pub fault: Option<Fault>,
    /// The data witness through the app, if the settings give one: it is
    /// destroyed after the backup and must be back after the restore.
    pub data: Option<DataProbe>,
    /// Whether [`RoundTripOptions::data`] was already written (by the
    /// upgrade rung); if not, the round trip writes it before the backup.
    pub data_written: bool,
    /// Where to say which service is being backed up or restored, as it
    /// goes (`backing up service <s>`, `restoring service <s>`), if anywhere.
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Default for RoundTripOptions {
    fn default() -> Self {
        RoundTripOptions {
            restic_image: DEFAULT_RESTIC_IMAGE.into(),
            hook_timeout: Duration::from_secs(300),
            restic_timeout: Duration::from_secs(1800),
            witness_name: "backup".into(),
            fault: None,
            data: None,
            data_written: false,
            progress: None,
        }
    }
}

/// The rung's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundTripStatus {
    /// Every witness came back byte for byte.
    Pass,
    /// The recipe is at fault (the reason names hook, service, target).
    Fail(String),
    /// The infrastructure is at fault (Docker, restic, the repository).
    Error(String),
    /// No service carries the label ([`NOT_APPLICABLE`]).
    NotApplicable(String),
}

/// Whether a target is a directory (witness file in it) or a file (its
/// snapshot bytes are the witness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A directory (a whole volume, or a path that is a directory).
    Directory,
    /// A regular file.
    File,
}

/// One target's witness and what the check after the restore found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCheck {
    /// The service.
    pub service: String,
    /// The target.
    pub target: Target,
    /// Directory or file.
    pub kind: TargetKind,
    /// The witness's length in bytes (the witness file's, or the file
    /// target's as the snapshot holds it).
    pub witness_len: u64,
    /// Intact, missing or differs (lengths); None if the run stopped before
    /// the check.
    pub state: Option<WitnessState>,
}

impl TargetCheck {
    /// `intact`, `missing`, `differs (found N bytes, expected M)` or `not checked`.
    pub fn describe(&self) -> String {
        match &self.state {
            None => "not checked".into(),
            Some(WitnessState::Intact) => "intact".into(),
            Some(WitnessState::Missing) => "missing".into(),
            Some(WitnessState::Differs {
                found_len,
                expected_len,
            }) => format!("differs (found {found_len} bytes, expected {expected_len})"),
        }
    }
}

/// One timed step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    /// What (e.g. `backup db: restic backup`).
    pub step: String,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// What [`round_trip`] did and found.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// The verdict.
    pub status: RoundTripStatus,
    /// Per target: its witness and the check.
    pub checks: Vec<TargetCheck>,
    /// Per service: the snapshot id.
    pub snapshots: BTreeMap<String, String>,
    /// Per step timings, in order.
    pub steps: Vec<StepTiming>,
    /// Total wall time in seconds.
    pub seconds: f64,
    /// The log for `backup.log`: plan, hook outputs, restic summaries,
    /// checks (never the repository password).
    pub log: String,
}

/// Why the round trip stopped early.
enum Stop {
    Fail(String),
    Error(String),
}

/// Backs up `stack`, destroys the witnesses, restores, and checks them (see
/// the module doc), with a fresh restic repository in `repo_dir` (a host
/// path, created if needed; it must be empty: each round trip has its own
/// password). Never panics or returns early: every outcome is in
/// [`RoundTrip::status`].
pub async fn round_trip(docker: &Docker, stack: &str, repo_dir: &Path, opts: &RoundTripOptions) -> RoundTrip {
    let mut r = Runner {
        docker,
        stack,
        repo: repo_dir.to_path_buf(),
        opts,
        password: Zeroizing::new(String::new()),
        start: Instant::now(),
        log: Vec::new(),
        steps: Vec::new(),
        checks: Vec::new(),
        snapshots: BTreeMap::new(),
        helper: None,
    };
    let status = match r.run().await {
        Ok(None) => RoundTripStatus::NotApplicable(NOT_APPLICABLE.into()),
        Ok(Some(())) => RoundTripStatus::Pass,
        Err(Stop::Fail(m)) => RoundTripStatus::Fail(m),
        Err(Stop::Error(m)) => RoundTripStatus::Error(m),
    };
    if let Some(h) = r.helper.take() {
        remove_container(docker, &h).await;
    }
    r.note(format!("result: {status:?}"));
    for c in &r.checks {
        r.log.push(format!("  {} {}: {}", c.service, c.target, c.describe()));
    }
    RoundTrip {
        status,
        checks: r.checks,
        snapshots: r.snapshots,
        steps: r.steps,
        seconds: r.start.elapsed().as_secs_f64(),
        log: r.log.join("\n") + "\n",
    }
}

/// A file's length and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Digest {
    len: u64,
    sha256: String,
}

/// A witness, as written before the backup.
enum Proof {
    /// At a volume's root, through [`crate::run::witness`].
    Root(Witness),
    /// In a sub-directory: `<dir>/<file>` (restic paths) with these bytes.
    Sub {
        dir: String,
        file: String,
        content: Vec<u8>,
    },
    /// A file target: its bytes as the snapshot holds them.
    File(Digest),
}

struct Runner<'a> {
    docker: &'a Docker,
    stack: &'a str,
    repo: PathBuf,
    opts: &'a RoundTripOptions,
    password: Zeroizing<String>,
    start: Instant,
    log: Vec<String>,
    steps: Vec<StepTiming>,
    checks: Vec<TargetCheck>,
    snapshots: BTreeMap<String, String>,
    /// A created, never started container of the restic image mounting every
    /// target volume read-write at `/backup/<volume>`, for archive reads and
    /// writes.
    helper: Option<String>,
}

/// What a one-off container printed and how it ended.
struct OneOff {
    exit_code: i64,
    stdout: String,
    stderr: String,
    /// With `digest_stdout`: stdout's length and hash (stdout is then empty).
    digest: Option<Digest>,
}

fn data_stop(e: DataFault) -> Stop {
    match e {
        DataFault::Recipe(m) => Stop::Fail(m),
        DataFault::Infra(m) => Stop::Error(m),
    }
}

fn infra_exec(context: &str) -> impl FnOnce(ExecError) -> Stop + '_ {
    move |e| Stop::Error(format!("{context}: {e}"))
}

impl Runner<'_> {
    fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::debug!(stack = self.stack, "backup: {line}");
        self.log
            .push(format!("[{:7.2} s] {line}", self.start.elapsed().as_secs_f64()));
    }

    /// Tells the caller's progress (if any) and the log.
    fn say(&mut self, line: String) {
        if let Some(p) = &self.opts.progress {
            let _ = p.send(line.clone());
        }
        self.note(line);
    }

    fn step(&mut self, step: impl Into<String>, since: Instant) {
        self.steps.push(StepTiming {
            step: step.into(),
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    /// The whole round trip; Ok(None) = not applicable.
    async fn run(&mut self) -> Result<Option<()>, Stop> {
        let t = Instant::now();
        let plan = match plan(self.docker, self.stack).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.note(format!("plan: {NOT_APPLICABLE}"));
                return Ok(None);
            }
            Err(e) if e.is_recipe_failure() => return Err(Stop::Fail(e.to_string())),
            Err(e) => return Err(Stop::Error(e.to_string())),
        };
        self.step("plan", t);
        for s in &plan.services {
            let targets: Vec<String> = s.targets.iter().map(|t| t.to_string()).collect();
            let hooks: Vec<&str> = [
                HookKind::BackupPre,
                HookKind::BackupPost,
                HookKind::RestorePre,
                HookKind::RestorePost,
            ]
            .into_iter()
            .filter(|k| s.hooks.get(*k).is_some())
            .map(HookKind::label)
            .collect();
            self.note(format!(
                "plan: service {}: targets [{}]; hooks [{}]",
                s.service,
                targets.join("; "),
                hooks.join(", ")
            ));
        }
        for n in &plan.notes {
            self.note(format!("plan: {n}"));
        }
        if plan.services.iter().all(|s| s.targets.is_empty()) {
            return Err(Stop::Fail(format!(
                "services labelled {}=true ({}) mount no named volume that is backed up: there is nothing to back up or restore",
                contract::ENABLE,
                plan.services.iter().map(|s| s.service.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }

        self.prepare_repository().await?;
        let t = Instant::now();
        let helper = self.create_helper(&plan.volumes()).await?;
        self.helper = Some(helper);
        self.step("helper container", t);

        if let (Some(d), false) = (&self.opts.data, self.opts.data_written) {
            let t = Instant::now();
            d.write(self.docker, self.stack).await.map_err(data_stop)?;
            self.note(format!(
                "data witness written through service {} ([data] write)",
                d.service
            ));
            self.step("data witness: write", t);
        }

        // Backup, service by service.
        let mut proofs: Vec<(usize, Target, Proof)> = Vec::new();
        for (i, s) in plan.services.iter().enumerate() {
            if s.targets.is_empty() {
                self.note(format!("service {}: no targets, skipped", s.service));
                continue;
            }
            let t = Instant::now();
            self.say(format!("backing up service {}", s.service));
            self.hook(s, HookKind::BackupPre).await?;
            let res = self.backup_service(s, i, &mut proofs).await;
            // The post-hook runs whenever the pre-hook did (it may undo what
            // the pre-hook did, e.g. leave maintenance mode); a failure of
            // its own counts only if nothing failed before.
            let post = self.hook(s, HookKind::BackupPost).await;
            res?;
            post?;
            self.step(format!("backup {}", s.service), t);
        }

        // Destroy every witness, and make sure it is gone.
        let t = Instant::now();
        self.destroy(&proofs).await?;
        self.step("destroy witnesses", t);
        if let Some(d) = &self.opts.data {
            let t = Instant::now();
            d.destroy(self.docker, self.stack).await.map_err(data_stop)?;
            if d.holds(self.docker, self.stack).await.map_err(data_stop)?.is_ok() {
                return Err(Stop::Fail(format!(
                    "after [data] destroy, [data] read in service {} still prints the data witness: the restore could not be told from no restore; make destroy remove what write stored",
                    d.service
                )));
            }
            self.note(format!("data witness destroyed through service {} and gone", d.service));
            self.step("data witness: destroy", t);
        }

        if self.opts.fault == Some(Fault::CorruptRepositoryData) {
            self.corrupt_repository_data()?;
        }

        // Restore, service by service, checking before the post-hook.
        for (i, s) in plan.services.iter().enumerate() {
            let Some(snapshot) = self.snapshots.get(&s.service).cloned() else {
                continue;
            };
            let t = Instant::now();
            self.say(format!(
                "restoring service {} from snapshot {}",
                s.service,
                short_id(&snapshot)
            ));
            self.hook(s, HookKind::RestorePre).await?;
            self.restore_service(s, &snapshot).await?;
            if self.opts.fault == Some(Fault::TruncateAfterRestore) {
                self.truncate(&proofs, i).await?;
            }
            let ok = self.check(s, i, &proofs).await?;
            if !ok {
                self.note(format!(
                    "service {}: {} skipped: the restored data did not check out, and the hook would consume it",
                    s.service,
                    contract::RESTORE_POST_HOOK
                ));
                let bad: Vec<String> = self
                    .checks
                    .iter()
                    .filter(|c| c.service == s.service && c.state != Some(WitnessState::Intact))
                    .map(|c| format!("{}: {}", c.target.container_path(), c.describe()))
                    .collect();
                return Err(Stop::Fail(format!(
                    "restore of service {} did not bring the data back: {}",
                    s.service,
                    bad.join("; ")
                )));
            }
            self.hook(s, HookKind::RestorePost).await?;
            self.step(format!("restore {}", s.service), t);
        }
        if let Some(d) = &self.opts.data {
            let t = Instant::now();
            if let Err(out) = d.holds(self.docker, self.stack).await.map_err(data_stop)? {
                return Err(Stop::Fail(format!(
                    "the restore did not bring the app's data back: [data] read in service {} does not print the data witness written before the backup ({out})",
                    d.service
                )));
            }
            self.note(format!(
                "data witness back through service {} after the restore",
                d.service
            ));
            self.step("data witness: read", t);
        }
        Ok(Some(()))
    }

    /// Creates the repository folder (must be empty), checks the image, and
    /// runs `restic init` with a fresh password.
    async fn prepare_repository(&mut self) -> Result<(), Stop> {
        let t = Instant::now();
        std::fs::create_dir_all(&self.repo).map_err(|e| {
            Stop::Error(format!(
                "creating the restic repository folder {}: {e}; check the run directory is writable",
                self.repo.display()
            ))
        })?;
        self.repo = std::fs::canonicalize(&self.repo)
            .map_err(|e| Stop::Error(format!("resolving {}: {e}", self.repo.display())))?;
        let non_empty = std::fs::read_dir(&self.repo)
            .map_err(|e| Stop::Error(format!("reading {}: {e}", self.repo.display())))?
            .next()
            .is_some();
        if non_empty {
            return Err(Stop::Error(format!(
                "restic repository folder {} is not empty: a repository from an earlier attempt, whose password is gone; give each round trip a fresh folder",
                self.repo.display()
            )));
        }
        match self.docker.inspect_image(&self.opts.restic_image).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(Stop::Error(format!(
                    "restic image `{}` is not present on this host; build it with scripts/images (no registry is used)",
                    self.opts.restic_image
                )))
            }
            Err(e) => {
                return Err(Stop::Error(format!(
                    "Docker engine: inspecting image `{}`: {e}; is dockerd running? (scripts/dockerd starts it)",
                    self.opts.restic_image
                )))
            }
        }
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Stop::Error(format!("the OS random source failed: {e}")))?;
        self.password = Zeroizing::new(hex::encode(random));
        random.fill(0);
        let out = self.restic("restic init", args(&["init"]), &[], false, false).await?;
        self.note(format!(
            "restic init: exit {}: {}",
            out.exit_code,
            out.stdout.lines().next().unwrap_or("")
        ));
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "restic init of {} failed (exit {}): {}",
                self.repo.display(),
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        self.step("restic init", t);
        Ok(())
    }

    /// Runs one hook of `s` (if it has it) in its running container.
    async fn hook(&mut self, s: &ServicePlan, kind: HookKind) -> Result<(), Stop> {
        let Some(cmd) = s.hooks.get(kind) else {
            return Ok(());
        };
        let t = Instant::now();
        let label = kind.label();
        let classify = |e: ExecError| {
            let msg = format!("{label} of service {}: {e}", s.service);
            if e.is_recipe_failure() {
                Stop::Fail(msg)
            } else {
                Stop::Error(msg)
            }
        };
        let container = running_container(self.docker, self.stack, &s.service)
            .await
            .map_err(classify)?;
        let out = exec(
            self.docker,
            &container,
            &contract::hook_argv(cmd),
            self.opts.hook_timeout,
        )
        .await
        .map_err(classify)?;
        let short = &container[..container.len().min(12)];
        self.note(format!(
            "{label} of service {} (container {short}): sh -c {cmd:?} -> exit {} in {:.2} s",
            s.service,
            out.exit_code,
            t.elapsed().as_secs_f64()
        ));
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if !text.trim().is_empty() {
                self.log.push(format!("    {name}:"));
                self.log.extend(text.lines().map(|l| format!("      {l}")));
            }
        }
        self.step(format!("{} {}", label, s.service), t);
        if out.exit_code != 0 {
            let tail = out.stderr_tail(5);
            return Err(Stop::Fail(format!(
                "{label} of service {} exited {}{}",
                s.service,
                out.exit_code,
                if tail.is_empty() {
                    " (no stderr)".to_string()
                } else {
                    format!("; last stderr lines:\n{tail}")
                }
            )));
        }
        Ok(())
    }

    /// Witnesses and `restic backup` of one service (between its hooks).
    async fn backup_service(
        &mut self,
        s: &ServicePlan,
        idx: usize,
        proofs: &mut Vec<(usize, Target, Proof)>,
    ) -> Result<(), Stop> {
        let helper = self.helper_id()?;
        let t = Instant::now();
        let witness_name = format!("{}-{}", self.opts.witness_name, s.service);
        let mut files = Vec::new();
        for target in &s.targets {
            let kind = if target.rel.is_empty() {
                TargetKind::Directory
            } else {
                match self.entry(&helper, &target.restic_path(), Want::Kind).await? {
                    None => {
                        return Err(Stop::Fail(format!(
                            "backup target {} of service {} does not exist (after the pre-hook, if any): there is nothing to back up",
                            target.container_path(),
                            s.service
                        )))
                    }
                    Some(e) if e.kind == tar::EntryType::Directory => TargetKind::Directory,
                    Some(e) if e.kind.is_file() => TargetKind::File,
                    Some(e) => {
                        return Err(Stop::Fail(format!(
                            "backup target {} of service {} is a {:?}, neither a file nor a directory",
                            target.container_path(),
                            s.service,
                            e.kind
                        )))
                    }
                }
            };
            match kind {
                TargetKind::Directory if target.rel.is_empty() => {
                    let w = Witness::write_named(self.docker, &target.volume, &self.opts.restic_image, &witness_name)
                        .await
                        .map_err(|e| Stop::Error(format!("writing the witness into volume {}: {e}", target.volume)))?;
                    self.note(format!("witness {} written into {}", w.file, target.container_path()));
                    proofs.push((idx, target.clone(), Proof::Root(w)));
                }
                TargetKind::Directory => {
                    let mut random = [0u8; 64];
                    getrandom::getrandom(&mut random)
                        .map_err(|e| Stop::Error(format!("the OS random source failed: {e}")))?;
                    let content = format!("cc-ci witness {witness_name} {}\n", hex::encode(random)).into_bytes();
                    let file = format!(".ccci-witness-{witness_name}");
                    let dir = target.restic_path();
                    copy_file_into(self.docker, &helper, &dir, &file, &content, 0o644)
                        .await
                        .map_err(infra_exec(&format!(
                            "writing the witness into {}",
                            target.container_path()
                        )))?;
                    self.note(format!("witness {file} written into {}", target.container_path()));
                    proofs.push((idx, target.clone(), Proof::Sub { dir, file, content }));
                }
                TargetKind::File => files.push(target.clone()),
            }
        }
        self.step(format!("backup {}: witnesses", s.service), t);

        let t = Instant::now();
        let mut a = args(&["backup", "--host", "cc-ci", "--json"]);
        if self.opts.fault == Some(Fault::ExcludeWitnesses) {
            a.push("--exclude=.ccci-witness-*".into());
        }
        a.extend(s.targets.iter().map(Target::restic_path));
        let volumes = s.volumes();
        let what = format!("restic backup of service {}", s.service);
        let out = self.restic(&what, a, &volumes, true, false).await?;
        let summary = out
            .stdout
            .lines()
            .rfind(|l| l.contains("\"message_type\":\"summary\""))
            .map(str::to_string);
        self.note(format!(
            "{what}: exit {}; summary: {}",
            out.exit_code,
            summary.as_deref().unwrap_or("(none)")
        ));
        if !out.stderr.trim().is_empty() {
            self.log.extend(out.stderr.lines().map(|l| format!("    stderr: {l}")));
        }
        match out.exit_code {
            0 => {}
            // restic: "snapshot created, but some source files could not be read".
            3 => {
                return Err(Stop::Fail(format!(
                    "{what}: some files of the targets could not be read (restic exit 3): {}",
                    tail_lines(&out.stderr, 5)
                )))
            }
            c => {
                return Err(Stop::Error(format!(
                    "{what} failed (exit {c}): {}",
                    tail_lines(&out.stderr, 5)
                )))
            }
        }
        let id = summary
            .as_deref()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v.get("snapshot_id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or_else(|| Stop::Error(format!("{what}: no snapshot id in restic's JSON summary")))?;
        self.snapshots.insert(s.service.clone(), id.clone());
        self.step(format!("backup {}: restic backup", s.service), t);

        // File targets: their witness is the snapshot's bytes.
        for target in files {
            let t = Instant::now();
            let what = format!("restic dump {} {}", short_id(&id), target.restic_path());
            let out = self
                .restic(&what, args(&["dump", &id, &target.restic_path()]), &[], false, true)
                .await?;
            let Some(d) = out.digest.filter(|_| out.exit_code == 0) else {
                return Err(Stop::Error(format!(
                    "{what} failed (exit {}): {}",
                    out.exit_code,
                    tail_lines(&out.stderr, 5)
                )));
            };
            self.note(format!(
                "{what}: {} bytes, sha256 {} (the witness of file target {})",
                d.len,
                d.sha256,
                target.container_path()
            ));
            self.step(format!("backup {}: restic dump", s.service), t);
            if d.len == 0 {
                // A dump of nothing restores "successfully" and proves nothing.
                return Err(Stop::Fail(format!(
                    "file target {} of service {} is empty in the snapshot: a backup of nothing proves nothing (does the backup pre-hook write the dump there?)",
                    target.container_path(),
                    s.service
                )));
            }
            proofs.push((idx, target, Proof::File(d)));
        }
        Ok(())
    }

    /// Deletes every witness file and file target, then checks each is gone.
    async fn destroy(&mut self, proofs: &[(usize, Target, Proof)]) -> Result<(), Stop> {
        let mut paths = Vec::new();
        for (_, target, proof) in proofs {
            paths.push(match proof {
                Proof::Root(w) => format!("{}/{}", target.restic_path(), w.file),
                Proof::Sub { dir, file, .. } => format!("{dir}/{file}"),
                Proof::File(_) => target.restic_path(),
            });
        }
        if paths.is_empty() {
            return Ok(());
        }
        let volumes: Vec<String> = proofs
            .iter()
            .map(|(_, t, _)| t.volume.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut cmd = vec!["-f".to_string(), "--".to_string()];
        cmd.extend(paths.iter().cloned());
        let out = self
            .one_off("rm witnesses", &["rm"], cmd, &volumes, false, false, false)
            .await?;
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "deleting the witnesses with `rm` in image {} failed (exit {}): {}; the image needs `rm`",
                self.opts.restic_image,
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        let helper = self.helper_id()?;
        for p in &paths {
            if self.entry(&helper, p, Want::Kind).await?.is_some() {
                return Err(Stop::Error(format!(
                    "{p} is still there after `rm -f`: the witness cannot be destroyed, so its return would prove nothing"
                )));
            }
        }
        self.note(format!("destroyed and checked gone: {}", paths.join(", ")));
        Ok(())
    }

    /// `restic restore <snapshot> --target /` with the service's volumes
    /// mounted read-write.
    async fn restore_service(&mut self, s: &ServicePlan, snapshot: &str) -> Result<(), Stop> {
        let t = Instant::now();
        let volumes = s.volumes();
        let what = format!("restic restore {} of service {}", short_id(snapshot), s.service);
        let out = self
            .restic(
                &what,
                args(&["restore", snapshot, "--target", "/"]),
                &volumes,
                false,
                false,
            )
            .await?;
        self.note(format!(
            "{what}: exit {}: {}",
            out.exit_code,
            tail_lines(&out.stdout, 3)
        ));
        if !out.stderr.trim().is_empty() {
            self.log.extend(out.stderr.lines().map(|l| format!("    stderr: {l}")));
        }
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "{what} failed (exit {}): {}",
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        self.step(format!("restore {}: restic restore", s.service), t);
        Ok(())
    }

    /// Checks the witnesses of service `idx`; records each; true when all
    /// are intact.
    async fn check(&mut self, s: &ServicePlan, idx: usize, proofs: &[(usize, Target, Proof)]) -> Result<bool, Stop> {
        let t = Instant::now();
        let helper = self.helper_id()?;
        let mut all = true;
        for (_, target, proof) in proofs.iter().filter(|(i, _, _)| *i == idx) {
            let (kind, witness_len, state) = match proof {
                Proof::Root(w) => {
                    let st = w
                        .state(self.docker, &self.opts.restic_image)
                        .await
                        .map_err(|e| Stop::Error(format!("reading the witness in volume {}: {e}", target.volume)))?;
                    (TargetKind::Directory, w.content.len() as u64, st)
                }
                Proof::Sub { dir, file, content } => {
                    let found = self
                        .entry(&helper, &format!("{dir}/{file}"), Want::Bytes(1 << 20))
                        .await?;
                    (
                        TargetKind::Directory,
                        content.len() as u64,
                        compare_bytes(found, content),
                    )
                }
                Proof::File(expected) => {
                    let found = self.entry(&helper, &target.restic_path(), Want::Digest).await?;
                    let st = match found {
                        None => WitnessState::Missing,
                        Some(e) if e.kind.is_file() && e.digest.as_ref() == Some(expected) => WitnessState::Intact,
                        Some(e) => WitnessState::Differs {
                            found_len: e.digest.map(|d| d.len).unwrap_or(0) as usize,
                            expected_len: expected.len as usize,
                        },
                    };
                    (TargetKind::File, expected.len, st)
                }
            };
            all &= state == WitnessState::Intact;
            let c = TargetCheck {
                service: s.service.clone(),
                target: target.clone(),
                kind,
                witness_len,
                state: Some(state),
            };
            self.note(format!(
                "check {} ({kind:?} witness, {witness_len} bytes): {}",
                target.container_path(),
                c.describe()
            ));
            self.checks.push(c);
        }
        self.step(format!("restore {}: check", s.service), t);
        Ok(all)
    }

    /// [`Fault::TruncateAfterRestore`]: halves every restored witness of
    /// service `idx`.
    async fn truncate(&mut self, proofs: &[(usize, Target, Proof)], idx: usize) -> Result<(), Stop> {
        let helper = self.helper_id()?;
        for (_, target, proof) in proofs.iter().filter(|(i, _, _)| *i == idx) {
            let path = match proof {
                Proof::Root(w) => format!("{}/{}", target.restic_path(), w.file),
                Proof::Sub { dir, file, .. } => format!("{dir}/{file}"),
                Proof::File(_) => target.restic_path(),
            };
            let Some(e) = self.entry(&helper, &path, Want::Bytes(64 << 20)).await? else {
                continue;
            };
            let bytes = e.bytes.unwrap_or_default();
            let (dir, name) = path.rsplit_once('/').unwrap_or(("/", path.as_str()));
            copy_file_into(self.docker, &helper, dir, name, &bytes[..bytes.len() / 2], e.mode)
                .await
                .map_err(infra_exec("simulated fault: truncating a restored file"))?;
            self.note(format!(
                "SIMULATED FAULT: {path} truncated from {} to {} bytes after the restore",
                bytes.len(),
                bytes.len() / 2
            ));
        }
        Ok(())
    }

    /// [`Fault::CorruptRepositoryData`]: flips every byte of the
    /// repository's pack files (same names and sizes).
    fn corrupt_repository_data(&mut self) -> Result<(), Stop> {
        let data = self.repo.join("data");
        let mut n = 0;
        let subs = std::fs::read_dir(&data)
            .map_err(|e| Stop::Error(format!("simulated fault: reading {}: {e}", data.display())))?;
        for f in subs
            .flatten()
            .flat_map(|sub| std::fs::read_dir(sub.path()).into_iter().flatten().flatten())
        {
            let corrupted = std::fs::read(f.path())
                .map(|b| b.into_iter().map(|x| !x).collect::<Vec<u8>>())
                .and_then(|b| std::fs::write(f.path(), b));
            if corrupted.is_ok() {
                n += 1;
            }
        }
        self.note(format!(
            "SIMULATED FAULT: every byte of {n} pack files in {} flipped",
            data.display()
        ));
        Ok(())
    }

    fn helper_id(&self) -> Result<String, Stop> {
        self.helper
            .clone()
            .ok_or_else(|| Stop::Error("internal: no helper container".into()))
    }

    /// A created (never started) container mounting `volumes` read-write at
    /// `/backup/<volume>`, for archive reads and writes.
    async fn create_helper(&mut self, volumes: &[String]) -> Result<String, Stop> {
        self.create(
            "archive helper",
            &[],
            vec!["/ccci-never-started".into()],
            volumes,
            false,
            false,
        )
        .await
    }

    /// Creates a one-off container of the restic image.
    async fn create(
        &self,
        what: &str,
        entrypoint: &[&str],
        cmd: Vec<String>,
        volumes: &[String],
        read_only: bool,
        repository: bool,
    ) -> Result<String, Stop> {
        let mut mounts: Vec<Mount> = volumes
            .iter()
            .map(|v| Mount {
                target: Some(format!("{BACKUP_ROOT}/{v}")),
                source: Some(v.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                ..Default::default()
            })
            .collect();
        let mut env = Vec::new();
        if repository {
            mounts.push(Mount {
                target: Some(REPOSITORY.into()),
                source: Some(self.repo.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                ..Default::default()
            });
            env.push(format!("RESTIC_REPOSITORY={REPOSITORY}"));
            env.push(format!("RESTIC_PASSWORD_FILE=/{PASSWORD_FILE}"));
        }
        let body = ContainerCreateBody {
            image: Some(self.opts.restic_image.clone()),
            entrypoint: Some(entrypoint.iter().map(|s| s.to_string()).collect()),
            cmd: Some(cmd),
            env: Some(env),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            network_disabled: Some(true),
            labels: Some(HashMap::from([
                (NAMESPACE_LABEL.to_string(), self.stack.to_string()),
                (HELPER_LABEL.to_string(), what.to_string()),
            ])),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("ccci-backup-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        match self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
        {
            Ok(r) => Ok(r.id),
            Err(e) if status_of(&e) == Some(404) => Err(Stop::Error(format!(
                "creating the {what} container: {e}; is the restic image `{}` present (scripts/images builds it) and do the volumes exist?",
                self.opts.restic_image
            ))),
            Err(e) => Err(Stop::Error(format!(
                "Docker engine: creating the {what} container: {e}; is dockerd running? (scripts/dockerd starts it)"
            ))),
        }
    }

    /// Runs restic with `args` in a one-off container (repository mounted,
    /// password file copied in).
    async fn restic(
        &self,
        what: &str,
        args: Vec<String>,
        volumes: &[String],
        read_only: bool,
        digest_stdout: bool,
    ) -> Result<OneOff, Stop> {
        let mut a = vec!["--no-cache".to_string()];
        a.extend(args);
        self.one_off(what, &["restic"], a, volumes, read_only, true, digest_stdout)
            .await
    }

    /// Creates, starts, waits for and removes a one-off container; kills it
    /// at the restic timeout.
    #[allow(clippy::too_many_arguments)]
    async fn one_off(
        &self,
        what: &str,
        entrypoint: &[&str],
        cmd: Vec<String>,
        volumes: &[String],
        read_only: bool,
        repository: bool,
        digest_stdout: bool,
    ) -> Result<OneOff, Stop> {
        let id = self
            .create(what, entrypoint, cmd, volumes, read_only, repository)
            .await?;
        let res = self.run_container(what, &id, repository, digest_stdout).await;
        remove_container(self.docker, &id).await;
        res
    }

    async fn run_container(&self, what: &str, id: &str, password: bool, digest_stdout: bool) -> Result<OneOff, Stop> {
        let docker = self.docker;
        let deadline = Instant::now() + self.opts.restic_timeout;
        if password {
            copy_file_into(docker, id, "/", PASSWORD_FILE, self.password.as_bytes(), 0o400)
                .await
                .map_err(infra_exec(&format!("{what}: copying the repository password in")))?;
        }
        let attached = docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| Stop::Error(format!("Docker engine: attaching to the {what} container: {e}")))?;
        docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| Stop::Error(format!("Docker engine: starting the {what} container: {e}")))?;
        let mut output = attached.output;
        let mut stdout = Tail::default();
        let mut stderr = Tail::default();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let timed_out = || {
            Stop::Error(format!(
                "{what} did not finish within {} s; the container was removed",
                self.opts.restic_timeout.as_secs()
            ))
        };
        loop {
            let next = tokio::time::timeout_at(deadline.into(), output.next())
                .await
                .map_err(|_| timed_out())?;
            match next {
                None => break,
                Some(Ok(bollard::container::LogOutput::StdOut { message })) if digest_stdout => {
                    hasher.update(&message);
                    len += message.len() as u64;
                }
                Some(Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message },
                )) => stdout.push(&message),
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => stderr.push(&message),
                Some(Ok(bollard::container::LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    return Err(Stop::Error(format!(
                        "Docker engine: reading the output of the {what} container: {e}"
                    )))
                }
            }
        }
        // The attach stream ends when the process has exited.
        let exit_code = loop {
            let st = docker
                .inspect_container(id, None)
                .await
                .map_err(|e| Stop::Error(format!("Docker engine: inspecting the {what} container: {e}")))?
                .state
                .unwrap_or_default();
            if st.running != Some(true) {
                break st.exit_code.unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(OneOff {
            exit_code,
            stdout: stdout.into_string(),
            stderr: stderr.into_string(),
            digest: digest_stdout.then(|| Digest {
                len,
                sha256: hex::encode(hasher.finalize()),
            }),
        })
    }

    /// The first entry of the archive of `path` in container `helper`
    /// (None when the path does not exist), read as far as `want` needs:
    /// the tar is parsed as it streams (on the blocking pool), so a
    /// directory's content is not downloaded for [`Want::Kind`] and a large
    /// file is hashed without being held in memory for [`Want::Digest`].
    async fn entry(&self, helper: &str, path: &str, want: Want) -> Result<Option<Entry>, Stop> {
        let mut stream = self
            .docker
            .download_from_container(helper, Some(DownloadFromContainerOptions { path: path.to_string() }));
        let first = match stream.next().await {
            None => return Ok(None),
            Some(Err(e)) if status_of(&e) == Some(404) => return Ok(None),
            Some(Err(e)) => {
                return Err(Stop::Error(format!(
                    "Docker engine: reading {path} through the archive API: {e}"
                )))
            }
            Some(Ok(b)) => b.to_vec(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let reader = tokio::task::spawn_blocking(move || read_first_entry(ChannelReader::new(rx), want));
        let mut failed = None;
        if tx.send(first).await.is_ok() {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(b) => {
                        if tx.send(b.to_vec()).await.is_err() {
                            break; // the reader has what it needs
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        drop(tx);
        drop(stream);
        let parsed = reader
            .await
            .map_err(|e| Stop::Error(format!("reading the archive of {path}: {e}")))?;
        if let Some(e) = failed {
            return Err(Stop::Error(format!(
                "Docker engine: reading {path} through the archive API: {e}"
            )));
        }
        parsed
            .map(Some)
            .map_err(|e| Stop::Error(format!("reading the archive of {path}: {e}")))
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn compare_bytes(found: Option<Entry>, expected: &[u8]) -> WitnessState {
    match found {
        None => WitnessState::Missing,
        Some(e) => {
            let b = e.bytes.unwrap_or_default();
            if b == expected {
                WitnessState::Intact
            } else {
                WitnessState::Differs {
                    found_len: b.len(),
                    expected_len: expected.len(),
                }
            }
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptions {
        force: true,
        v: false,
        link: false,
    };
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        if status_of(&e) != Some(404) {
            tracing::warn!(
                "could not remove backup helper container {id}: {e}; it is labelled for the stack's teardown"
            );
        }
    }
}

/// How much of an archive entry [`Runner::entry`] reads.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Only the type and mode.
    Kind,
    /// Length and SHA-256 of the content.
    Digest,
    /// The content, up to this many bytes (more is an error).
    Bytes(u64),
}

/// The first entry of an archive.
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    digest: Option<Digest>,
    bytes: Option<Vec<u8>>,
}

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_first_entry(r: ChannelReader, want: Want) -> Result<Entry, String> {
    let mut a = tar::Archive::new(r);
    let mut entries = a.entries().map_err(|e| e.to_string())?;
    let mut e = entries
        .next()
        .ok_or_else(|| "the archive is empty".to_string())?
        .map_err(|e| e.to_string())?;
    let kind = e.header().entry_type();
    let mode = e.header().mode().unwrap_or(0o644);
    let mut out = Entry {
        kind,
        mode,
        digest: None,
        bytes: None,
    };
    if !kind.is_file() {
        return Ok(out);
    }
    match want {
        Want::Kind => {}
        Want::Digest => {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut len = 0u64;
            loop {
                let n = e.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                len += n as u64;
            }
            out.digest = Some(Digest {
                len,
                sha256: hex::encode(h.finalize()),
            });
        }
        Want::Bytes(max) => {
            if e.header().size().unwrap_or(0) > max {
                return Err(format!("the file is larger than {max} bytes"));
            }
            let mut b = Vec::new();
            e.read_to_end(&mut b).map_err(|e| e.to_string())?;
            out.bytes = Some(b);
        }
    }
    Ok(out)
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
