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
//!
//! # Where it is
//!
//! This module holds the entry points and what they return; `labels` the
//! label contract and the plan read from it; `restic` the round trip
//! itself (repository, hooks, witnesses, snapshots, restores, byte
//! checks); `archive` reading a path out of a container as its tar
//! streams. The short-lived containers are one-off containers
//! ([`crate::run::oneoff`]).

mod archive;
mod labels;
mod restic;

pub use labels::{
    contract, plan, service_plan, BackupError, BackupPlan, HookKind, Hooks, ServicePlan, Target, VolumeMount,
};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;

use crate::run::data::DataProbe;
use crate::run::witness::WitnessState;

/// The rung's n/a reason when no service carries the label.
pub const NOT_APPLICABLE: &str = "no service carries the backupbot.backup label";

/// The restic image used unless the options say otherwise (built locally by
/// `scripts/images`: Debian's restic 0.14 on `ccci/debian:bookworm`).
pub const DEFAULT_RESTIC_IMAGE: &str = "ccci/restic:0.14.0";

/// The label on this module's one-off containers (value: what it does).
pub const HELPER_LABEL: &str = "cc-ci.backup-helper";

/// Where one-off containers mount the targeted volumes: `/backup/<volume>`.
const BACKUP_ROOT: &str = "/backup";

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

/// Backs up `stack`, destroys the witnesses, restores, and checks them (see
/// the module doc), with a fresh restic repository in `repo_dir` (a host
/// path, created if needed; it must be empty: each round trip has its own
/// password). Never panics or returns early: every outcome is in
/// [`RoundTrip::status`].
pub async fn round_trip(docker: &Docker, stack: &str, repo_dir: &Path, opts: &RoundTripOptions) -> RoundTrip {
    restic::Runner::new(docker, stack, repo_dir, opts).round_trip().await
}
