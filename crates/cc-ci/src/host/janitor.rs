//! The janitor: removes test apps left by dead or finished runs (their stack
//! objects, their run folder with `ABRA_DIR` and env files, their lease), and
//! never anything of a run that is still alive.
//!
//! Liveness is the run's [`Lease`](crate::state::lease): a `flock` the run holds
//! for its whole life and the kernel drops when it dies. For each app the
//! janitor tries that lease without blocking. Held: the app is left alone,
//! all of it. Free or absent: the janitor takes it (creating the file if
//! needed), and holding it tears the stack down ([`stack::teardown`]:
//! services, tasks, containers, networks, volumes, secrets, configs),
//! removes the run folder, then drops the lease (which removes its file).
//! While it holds the lease no run can take it and no other janitor can reap
//! the same app; a janitor that finds the lease held reports the app as
//! live, one that comes later finds nothing left. The earlier Python cc-ci's
//! janitor reaped apps of live runs under concurrency; this one cannot,
//! because the only proof of death it accepts is a lock it holds itself.
//!
//! Candidates, listed in this order:
//! 1. run folders `<state_dir>/runs/<run id>/` (run id = six hex digits);
//! 2. lease files `<state_dir>/leases/<stack>.lease`;
//! 3. stacks in Docker (namespace labels, else `<stack>_` name prefixes) that
//!    are shaped like a test app of this wildcard domain:
//!    `<label>-<6 hex><suffix>`, suffix `_ci_test` for `ci.test`
//!    (a run's plan names them so). Nothing else on the host is
//!    touched: not other domains' stacks, not Traefik (`traefik_ci_test`).
//!
//! A run folder belongs to the stack its run's lease names (leases are listed
//! after folders, and a run takes its lease before it makes its folder, so a
//! live run's folder is always matched to its lease), else to the stack in
//! Docker whose name carries its run id, else to the app env file in it
//! (`abra/servers/*/<domain>.env`). A folder matched to no stack at all has
//! no stack objects and no lease: its run is over (or never got further),
//! and it is removed.
//!
//! Several state dirs may share one Docker engine, and a janitor sees only
//! its own state dir's leases: a stack in Docker is its to reap only when
//! its services carry its state dir's owner label, or carry the label of a
//! state dir that no longer exists (an orphan nobody else will reap), or
//! carry none but its state dir knows the app (a lease or run folder names
//! it). Another live state dir's apps are left alone
//! ([`crate::state::owner`], [`Outcome::Foreign`]).
//!
//! An app kept warm for `ccci test --quick` (a fresh record
//! `<state_dir>/warm/<stack>.json`, [`crate::state::warm`]) is left, under the
//! janitor's own lease for the instant it looks; once its record is older
//! than [`crate::state::warm::WARM_MAX_AGE`] (or unreadable) it is reaped like
//! any other, record and all.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    ListConfigsOptions, ListContainersOptions, ListNetworksOptions, ListSecretsOptions, ListServicesOptions,
    ListVolumesOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::deploy::stack::{self, docker_err, Leftover, StackError, StackObject, NAMESPACE_LABEL};
use crate::state::lease::{Holder, Lease, LeaseError, LeaseFile, LeaseInfo, TryTake};
use crate::state::owner::{Owner, Ownership};

/// The folder under the state dir holding run folders.
pub const RUNS_DIR: &str = "runs";

/// How long a temporary lease file must be unlocked and old before the
/// janitor removes it even though a process with its pid exists.
pub const TEMP_LEASE_MAX_AGE: Duration = Duration::from_secs(600);

/// How many apps are reaped at once.
const PARALLEL: usize = 4;

/// The stack-name suffix of the test apps of wildcard domain `domain`:
/// `_ci_test` for `ci.test`.
pub fn stack_suffix(domain: &str) -> String {
    format!("_{}", stack::stack_name(domain.trim_matches('.')))
}

fn app_regex(suffix: &str, whole: bool) -> regex::Regex {
    let end = if whole { "$" } else { "_" };
    regex::Regex::new(&format!("^([a-z0-9-]*-([0-9a-f]{{6}}){}){end}", regex::escape(suffix))).expect("valid regex")
}

/// The run id of `stack` if it is a test app of the wildcard whose suffix is
/// `suffix` (`<label>-<6 hex><suffix>`), else None.
pub fn run_id_of(stack: &str, suffix: &str) -> Option<String> {
    app_regex(suffix, true)
        .captures(stack)
        .map(|c| c.get(2).expect("group").as_str().to_string())
}

/// True when `stack` is a test app of the wildcard whose suffix is `suffix`.
pub fn is_test_app(stack: &str, suffix: &str) -> bool {
    run_id_of(stack, suffix).is_some()
}

/// Why a sweep could not run at all (a single app's trouble is reported in
/// its [`AppReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum JanitorError {
    /// The engine is unreachable.
    #[error(transparent)]
    Docker(#[from] StackError),
    /// The lease folder is unusable.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The state dir is unreadable.
    #[error("{}: {source}; is --state-dir right and readable by this user?", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What a sweep does.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The state dir (`runs/`, `leases/`).
    pub state_dir: PathBuf,
    /// The test apps' stack suffix ([`stack_suffix`]).
    pub stack_suffix: String,
    /// The teardown timeout of one app.
    pub timeout: Duration,
    /// Only say what would be reaped: take no lease, remove nothing.
    pub dry_run: bool,
}

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A run folder.
    RunFolder,
    /// A lease file.
    Lease,
    /// Stack objects in Docker.
    Docker,
}

/// What became of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its lease was free: everything of it was removed (lists may be empty
    /// when another janitor got there first).
    Reaped {
        /// Stack objects removed.
        removed: Vec<StackObject>,
        /// The run folder was removed.
        run_dir_removed: bool,
        /// A lease file was removed (a stale one, or the janitor's own).
        lease_removed: bool,
    },
    /// Its lease is held by a live process: nothing of it was touched.
    Live {
        /// What the lease says (the run, or another janitor reaping it).
        holder: Option<LeaseInfo>,
    },
    /// Its lease was free, but it is kept warm for `--quick` (a fresh warm
    /// record): nothing of it was touched.
    Warm {
        /// The record.
        record: PathBuf,
        /// When it was kept, RFC 3339 UTC.
        kept_at: String,
    },
    /// Dry run: its lease is free, this would be removed.
    WouldReap {
        /// Its stack objects now.
        objects: Vec<StackObject>,
    },
    /// Teardown left objects; the run folder and lease file are kept for the
    /// next sweep.
    Incomplete {
        /// What was removed.
        removed: Vec<StackObject>,
        /// What is left and why.
        left: Vec<Leftover>,
    },
    /// Not an app of this wildcard domain (a lease for another domain's
    /// stack): left alone.
    NotOurs,
    /// An app of another state dir (its services carry that state dir's
    /// owner label, or no label and this state dir does not know it): that
    /// state dir's janitor reaps it; left alone.
    Foreign {
        /// The owning state dir, when a label names it.
        owner_dir: Option<String>,
    },
    /// Something other than the engine failed (e.g. the run folder could
    /// not be removed).
    Failed {
        /// What and why.
        error: String,
    },
}

/// One app (or a run folder of no known stack) and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReport {
    /// The stack, None for a run folder that names none.
    pub stack: Option<String>,
    /// The run id, when known.
    pub run_id: Option<String>,
    /// Its run folder, when one exists.
    pub run_dir: Option<PathBuf>,
    /// Where it was found.
    pub found_by: Vec<Source>,
    /// What happened.
    pub outcome: Outcome,
}

impl AppReport {
    /// True when the app was reaped (or there was nothing left to reap).
    pub fn reaped(&self) -> bool {
        matches!(self.outcome, Outcome::Reaped { .. })
    }

    /// True when the app was left because its run is alive.
    pub fn live(&self) -> bool {
        matches!(self.outcome, Outcome::Live { .. })
    }
}

fn names(objs: &[StackObject]) -> String {
    objs.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for AppReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (&self.stack, &self.run_id) {
            (Some(s), Some(r)) => format!("{s} (run {r})"),
            (Some(s), None) => s.clone(),
            (None, Some(r)) => format!("run folder {r} (no stack)"),
            (None, None) => "?".into(),
        };
        let dir = self
            .run_dir
            .as_ref()
            .map(|d| format!("run folder {}", d.display()))
            .unwrap_or_else(|| "no run folder".into());
        match &self.outcome {
            Outcome::Reaped {
                removed,
                run_dir_removed,
                lease_removed,
            } => {
                let mut parts = Vec::new();
                if !removed.is_empty() {
                    parts.push(names(removed));
                }
                if *run_dir_removed {
                    parts.push(dir);
                }
                if *lease_removed {
                    parts.push("stale lease".into());
                }
                if parts.is_empty() {
                    write!(f, "reaped  {what}: nothing was left (another janitor got there first)")
                } else {
                    write!(f, "reaped  {what}: {}", parts.join("; "))
                }
            }
            Outcome::Live { holder } => match holder {
                Some(h) if h.holder == Holder::Janitor => {
                    write!(f, "left    {what}: another janitor is reaping it ({h})")
                }
                Some(h) => write!(f, "left    {what}: its run is alive (lease held by {h})"),
                None => write!(f, "left    {what}: its lease is held by a live process"),
            },
            Outcome::WouldReap { objects } => {
                let objs = if objects.is_empty() {
                    "no stack objects".into()
                } else {
                    names(objects)
                };
                write!(f, "would reap {what}: {objs}; {dir}")
            }
            Outcome::Incomplete { removed, left } => {
                let left: Vec<String> = left.iter().map(|l| format!("{} ({})", l.object, l.reason)).collect();
                write!(
                    f,
                    "INCOMPLETE {what}: removed [{}], still there: {}; its run folder and lease are kept for the next sweep; see `docker stack ps` / the engine's log",
                    names(removed),
                    left.join(", ")
                )
            }
            Outcome::NotOurs => write!(f, "left    {what}: not a test app of this wildcard domain"),
            Outcome::Foreign { owner_dir: Some(d) } => {
                write!(f, "left    {what}: an app of the state dir {d} (its janitor reaps it)")
            }
            Outcome::Foreign { owner_dir: None } => write!(
                f,
                "left    {what}: no owner label and no lease or run folder here: another state dir's app"
            ),
            Outcome::Warm { record, kept_at } => write!(
                f,
                "left    {what}: kept warm for --quick since {kept_at} ({}; reaped once older than {} h)",
                record.display(),
                crate::state::warm::WARM_MAX_AGE.as_secs() / 3600
            ),
            Outcome::Failed { error } => write!(f, "FAILED  {what}: {error}"),
        }
    }
}

/// What a sweep did, app by app.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Every candidate, sorted by stack (run folders of no stack last).
    pub apps: Vec<AppReport>,
    /// Temporary lease files of dead takers that were removed.
    pub temp_files_removed: Vec<PathBuf>,
    /// Wall time.
    pub took: Duration,
    /// It was a dry run.
    pub dry_run: bool,
}

impl SweepReport {
    /// The report of `stack`, if it was a candidate.
    pub fn app(&self, stack: &str) -> Option<&AppReport> {
        self.apps.iter().find(|a| a.stack.as_deref() == Some(stack))
    }

    /// True when some app's teardown left objects or something failed.
    pub fn has_failures(&self) -> bool {
        self.apps
            .iter()
            .any(|a| matches!(a.outcome, Outcome::Incomplete { .. } | Outcome::Failed { .. }))
    }

    /// True when nothing was (or, dry, would be) removed.
    pub fn nothing_done(&self) -> bool {
        self.temp_files_removed.is_empty()
            && self.apps.iter().all(|a| match &a.outcome {
                Outcome::Reaped {
                    removed,
                    run_dir_removed,
                    lease_removed,
                } => removed.is_empty() && !run_dir_removed && !lease_removed,
                Outcome::WouldReap { .. } | Outcome::Incomplete { .. } => false,
                _ => true,
            })
    }
}

/// Sweeps once: reaps every app of the wildcard whose stack suffix is
/// `stack_suffix` that no live process holds (see the module doc), each
/// teardown bounded by `timeout`.
///
/// # Errors
/// [`JanitorError`] when the engine, the state dir or the lease folder
/// cannot be read at all; then nothing was removed.
pub async fn sweep(
    docker: &Docker,
    state_dir: &Path,
    stack_suffix: &str,
    timeout: Duration,
) -> Result<SweepReport, JanitorError> {
    sweep_with(
        docker,
        &SweepOptions {
            state_dir: state_dir.to_path_buf(),
            stack_suffix: stack_suffix.to_string(),
            timeout,
            dry_run: false,
        },
    )
    .await
}

#[derive(Debug, Default)]
struct Candidate {
    run_id: Option<String>,
    run_dir: Option<PathBuf>,
    found_by: BTreeSet<Source>,
    ours: bool,
    /// Whose it is, by its services' owner labels (Docker candidates).
    ownership: Option<Ownership>,
}

/// [`sweep`] with every option.
///
/// # Errors
/// As [`sweep`].
pub async fn sweep_with(docker: &Docker, opts: &SweepOptions) -> Result<SweepReport, JanitorError> {
    let start = Instant::now();
    let suffix = opts.stack_suffix.as_str();
    // The order matters: folders before leases (see the module doc).
    let run_dirs = list_run_dirs(&opts.state_dir)?;
    let leases = Lease::list(&opts.state_dir)?;
    let in_docker = docker_stacks(docker, suffix).await?;
    let me = Owner::existing(&opts.state_dir).map_err(|source| JanitorError::Io {
        path: opts.state_dir.join(crate::state::owner::OWNER_FILE),
        source,
    })?;

    let mut apps: BTreeMap<String, Candidate> = BTreeMap::new();
    // run id -> stack, by authority: leases, then Docker, then env files.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut unreadable_held = false;
    for l in &leases {
        let c = apps.entry(l.stack.clone()).or_default();
        c.found_by.insert(Source::Lease);
        c.ours = is_test_app(&l.stack, suffix);
        let run_id = lease_run_id(l, suffix);
        match &run_id {
            Some(r) => {
                owner.entry(r.clone()).or_insert_with(|| l.stack.clone());
            }
            None if l.held => unreadable_held = true,
            None => {}
        }
        c.run_id = run_id;
    }
    for (s, service_labels) in &in_docker {
        let c = apps.entry(s.clone()).or_default();
        c.found_by.insert(Source::Docker);
        c.ours = true;
        c.ownership = Some(Ownership::of(service_labels.iter(), me.as_ref()));
        if c.run_id.is_none() {
            c.run_id = run_id_of(s, suffix);
        }
        if let Some(r) = run_id_of(s, suffix) {
            owner.entry(r).or_insert_with(|| s.clone());
        }
    }
    let mut orphans = Vec::new();
    for (id, dir) in &run_dirs {
        let stack = owner.get(id).cloned().or_else(|| env_file_stack(dir, suffix));
        match stack {
            Some(s) => {
                let c = apps.entry(s.clone()).or_default();
                c.found_by.insert(Source::RunFolder);
                c.ours = c.ours || is_test_app(&s, suffix);
                c.run_id.get_or_insert_with(|| id.clone());
                c.run_dir = Some(dir.clone());
            }
            None => orphans.push((id.clone(), dir.clone())),
        }
    }

    let mut report = SweepReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let work: Vec<_> = apps.into_iter().collect();
    let mut results: Vec<AppReport> = futures_util::stream::iter(work)
        .map(|(stack, c)| reap_app(docker, opts, stack, c))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.sort_by(|a, b| a.stack.cmp(&b.stack));
    report.apps = results;

    for (id, dir) in orphans {
        report.apps.push(reap_orphan(opts, &id, &dir, unreadable_held));
    }
    if !opts.dry_run {
        report.temp_files_removed = Lease::remove_dead_temp_files(&opts.state_dir, TEMP_LEASE_MAX_AGE)?;
    }
    report.took = start.elapsed();
    Ok(report)
}

fn lease_run_id(l: &LeaseFile, suffix: &str) -> Option<String> {
    l.info
        .as_ref()
        .map(|i| i.run_id.clone())
        .filter(|r| !r.is_empty())
        .or_else(|| run_id_of(&l.stack, suffix))
}

async fn reap_app(docker: &Docker, opts: &SweepOptions, stack: String, c: Candidate) -> AppReport {
    let mut r = AppReport {
        stack: Some(stack.clone()),
        run_id: c.run_id.clone(),
        run_dir: c.run_dir.clone(),
        found_by: c.found_by.iter().copied().collect(),
        outcome: Outcome::NotOurs,
    };
    if !c.ours {
        return r;
    }
    // Another state dir's app is not this janitor's, whatever its name: by
    // its owner label, or (unlabelled) when nothing here knows it.
    let known = c.found_by.contains(&Source::Lease) || c.found_by.contains(&Source::RunFolder);
    match &c.ownership {
        Some(Ownership::Theirs { dir }) => {
            r.outcome = Outcome::Foreign {
                owner_dir: Some(dir.clone()),
            };
            return r;
        }
        Some(Ownership::Unlabelled) if !known => {
            r.outcome = Outcome::Foreign { owner_dir: None };
            return r;
        }
        _ => {}
    }
    let lease_path = crate::state::lease::lease_path(&opts.state_dir, &stack);
    let warm = |r: crate::state::warm::WarmRecord| Outcome::Warm {
        record: crate::state::warm::record_path(&opts.state_dir, &stack),
        kept_at: r.kept_at_text(),
    };
    if opts.dry_run && !Lease::is_held(&lease_path) {
        if let Some(w) = crate::state::warm::fresh_record(&opts.state_dir, &stack) {
            r.outcome = warm(w);
            return r;
        }
    }
    if opts.dry_run {
        r.outcome = if Lease::is_held(&lease_path) {
            Outcome::Live {
                holder: crate::state::lease::read_info(&lease_path),
            }
        } else {
            match stack::verify_clean(docker, &stack).await {
                Ok(objects) => Outcome::WouldReap { objects },
                Err(e) => Outcome::Failed { error: e.to_string() },
            }
        };
        return r;
    }
    let info = LeaseInfo::new(c.run_id.as_deref().unwrap_or(""), "", &stack, Holder::Janitor);
    let lease = match Lease::try_take(&opts.state_dir, info) {
        Ok(TryTake::Held(mut holder)) => {
            // A janitor taking over a dead run's stale lease holds the old
            // file for an instant before its own replaces it: look again
            // briefly so the report names the real holder.
            for _ in 0..20 {
                match &holder {
                    Some(h) if h.holder == Holder::Run && !crate::state::lease::pid_alive(h.pid) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        holder = crate::state::lease::read_info(&lease_path);
                    }
                    _ => break,
                }
            }
            r.outcome = Outcome::Live { holder };
            return r;
        }
        Ok(TryTake::Taken(l)) => l,
        Err(e) => {
            r.outcome = Outcome::Failed { error: e.to_string() };
            return r;
        }
    };
    // No run holds it: is it kept warm? (Under the lease, so a --quick run
    // cannot be taking it over at this instant.)
    if let Some(w) = crate::state::warm::fresh_record(&opts.state_dir, &stack) {
        release(lease);
        r.outcome = warm(w);
        return r;
    }
    // Holding the lease from here on: nobody else touches this app.
    let td = match stack::teardown(docker, &stack, opts.timeout).await {
        Ok(td) => td,
        Err(e) => {
            release(lease);
            r.outcome = Outcome::Failed { error: e.to_string() };
            return r;
        }
    };
    if !td.is_clean() {
        release(lease);
        r.outcome = Outcome::Incomplete {
            removed: td.removed,
            left: td.left,
        };
        return r;
    }
    let run_dir_removed = match &c.run_dir {
        Some(d) => match remove_dir(d) {
            Ok(removed) => removed,
            Err(e) => {
                release(lease);
                r.outcome = Outcome::Failed {
                    error: format!(
                        "stack removed, but the run folder {} could not be: {e}; remove it by hand",
                        d.display()
                    ),
                };
                return r;
            }
        },
        None => false,
    };
    let lease_removed = !lease.created();
    // A stale or unreadable warm record goes with its app.
    crate::state::warm::remove(&opts.state_dir, &stack);
    drop(lease); // removes the lease file, then unlocks
    r.outcome = Outcome::Reaped {
        removed: td.removed,
        run_dir_removed,
        lease_removed,
    };
    r
}

/// Lets go of a lease after a failure: a stale lease file stays (it marks
/// the dead app for the next sweep), one the janitor made goes.
fn release(lease: Lease) {
    if lease.created() {
        drop(lease);
    } else {
        lease.release_keeping_file();
    }
}

fn reap_orphan(opts: &SweepOptions, id: &str, dir: &Path, unreadable_held: bool) -> AppReport {
    let mut r = AppReport {
        stack: None,
        run_id: Some(id.to_string()),
        run_dir: Some(dir.to_path_buf()),
        found_by: vec![Source::RunFolder],
        outcome: Outcome::Reaped {
            removed: Vec::new(),
            run_dir_removed: false,
            lease_removed: false,
        },
    };
    if unreadable_held {
        r.outcome = Outcome::Failed {
            error: "a held lease is unreadable, so which run folder is its run's cannot be told; kept".into(),
        };
        return r;
    }
    if opts.dry_run {
        r.outcome = Outcome::WouldReap { objects: Vec::new() };
        return r;
    }
    // Re-check: a lease naming this run id now would make it a live run's.
    match Lease::list(&opts.state_dir) {
        Ok(ls) => {
            if let Some(l) = ls
                .iter()
                .find(|l| lease_run_id(l, &opts.stack_suffix).as_deref() == Some(id))
            {
                r.stack = Some(l.stack.clone());
                r.outcome = Outcome::Live { holder: l.info.clone() };
                return r;
            }
        }
        Err(e) => {
            r.outcome = Outcome::Failed { error: e.to_string() };
            return r;
        }
    }
    r.outcome = match remove_dir(dir) {
        Ok(removed) => Outcome::Reaped {
            removed: Vec::new(),
            run_dir_removed: removed,
            lease_removed: false,
        },
        Err(e) => Outcome::Failed {
            error: format!("the run folder {} could not be removed: {e}", dir.display()),
        },
    };
    r
}

/// Removes a folder; true if this call removed it, false if it was gone.
/// Tolerates a concurrent remover (entries vanishing underneath).
fn remove_dir(dir: &Path) -> io::Result<bool> {
    let mut removed = false;
    for _ in 0..10 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !dir.exists() {
                    return Ok(removed);
                }
                removed = true;
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir_all(dir).map(|()| true)
}

/// The run folders `<state_dir>/runs/<6 hex>/`, by run id.
fn list_run_dirs(state_dir: &Path) -> Result<BTreeMap<String, PathBuf>, JanitorError> {
    let runs = state_dir.join(RUNS_DIR);
    let io = |source| JanitorError::Io {
        path: runs.clone(),
        source,
    };
    let entries = match std::fs::read_dir(&runs) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = BTreeMap::new();
    for e in entries {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_id = name.len() == 6 && name.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
        if is_id && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.insert(name, e.path());
        }
    }
    Ok(out)
}

/// The stack of the app env file in a run folder
/// (`abra/servers/<server>/<domain>.env`), if it is one of ours.
fn env_file_stack(run_dir: &Path, suffix: &str) -> Option<String> {
    let servers = std::fs::read_dir(run_dir.join("abra").join("servers")).ok()?;
    for server in servers.flatten() {
        let Ok(files) = std::fs::read_dir(server.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(domain) = name.strip_suffix(".env") {
                let s = stack::stack_name(domain);
                if is_test_app(&s, suffix) {
                    return Some(s);
                }
            }
        }
    }
    None
}

/// The test-app stacks of this suffix that have any object in Docker, each
/// with its services' labels (for [`Ownership`]).
async fn docker_stacks(
    docker: &Docker,
    suffix: &str,
) -> Result<BTreeMap<String, Vec<std::collections::HashMap<String, String>>>, StackError> {
    let whole = app_regex(suffix, true);
    let prefix = app_regex(suffix, false);
    let mut out = BTreeSet::new();
    let mut service_labels: BTreeMap<String, Vec<std::collections::HashMap<String, String>>> = BTreeMap::new();
    let mut add = |name: &str, labels: Option<&std::collections::HashMap<String, String>>| match labels
        .and_then(|l| l.get(NAMESPACE_LABEL))
    {
        Some(ns) => {
            if whole.is_match(ns) {
                out.insert(ns.clone());
            }
        }
        None => {
            if let Some(c) = prefix.captures(name) {
                out.insert(c[1].to_string());
            }
        }
    };
    for s in docker
        .list_services(None::<ListServicesOptions>)
        .await
        .map_err(docker_err("listing services"))?
    {
        let spec = s.spec.unwrap_or_default();
        if let Some(ns) = spec.labels.as_ref().and_then(|l| l.get(NAMESPACE_LABEL)) {
            service_labels
                .entry(ns.clone())
                .or_default()
                .push(spec.labels.clone().unwrap_or_default());
        }
        add(&spec.name.unwrap_or_default(), spec.labels.as_ref());
    }
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([(
                "label".to_string(),
                vec![NAMESPACE_LABEL.to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(docker_err("listing containers"))?;
    for c in containers {
        add("", c.labels.as_ref());
    }
    for n in docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(docker_err("listing networks"))?
    {
        // Networks are only ever taken by label (as stack::list_objects does).
        if n.labels.as_ref().is_some_and(|l| l.contains_key(NAMESPACE_LABEL)) {
            add("", n.labels.as_ref());
        }
    }
    for v in docker
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .map_err(docker_err("listing volumes"))?
        .volumes
        .unwrap_or_default()
    {
        add(&v.name, Some(&v.labels));
    }
    for s in docker
        .list_secrets(None::<ListSecretsOptions>)
        .await
        .map_err(docker_err("listing secrets"))?
    {
        let spec = s.spec.unwrap_or_default();
        add(&spec.name.unwrap_or_default(), spec.labels.as_ref());
    }
    for c in docker
        .list_configs(None::<ListConfigsOptions>)
        .await
        .map_err(docker_err("listing configs"))?
    {
        let spec = c.spec.unwrap_or_default();
        add(&spec.name.unwrap_or_default(), spec.labels.as_ref());
    }
    Ok(out
        .into_iter()
        .map(|s| {
            let l = service_labels.remove(&s).unwrap_or_default();
            (s, l)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_apps_are_recognised_and_nothing_else() {
        let sfx = stack_suffix("ci.test");
        assert_eq!(sfx, "_ci_test");
        assert_eq!(run_id_of("my-recipe-0a1b2c_ci_test", &sfx).as_deref(), Some("0a1b2c"));
        assert_eq!(run_id_of("x-abcdef_ci_test", &sfx).as_deref(), Some("abcdef"));
        for not in [
            "traefik_ci_test",            // Traefik itself
            "my-recipe-0a1b2c_ci_test_x", // longer
            "my-recipe-0a1b2c_x_ci_test", // another wildcard under ours
            "my-recipe-0a1b2cx_ci_test",
            "my-recipe-0a1b2g_ci_test", // not hex
            "my-recipe-0a1b2c_other_test",
            "My-recipe-0a1b2c_ci_test",
            "my-recipe-0a1b2c",
        ] {
            assert!(!is_test_app(not, &sfx), "{not}");
        }
        let sub = stack_suffix("x.ci.test");
        assert!(is_test_app("a-000000_x_ci_test", &sub));
        assert!(!is_test_app("a-000000_x_ci_test", &sfx));
        // Names of objects (unlabelled) give their stack.
        let c = app_regex(&sfx, false).captures("app-123abc_ci_test_db_data").unwrap();
        assert_eq!(&c[1], "app-123abc_ci_test");
        assert!(app_regex(&sfx, false).captures("traefik_ci_test_ssl_cert_v1").is_none());
    }

    #[test]
    fn env_files_name_the_stack() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("runs/0a1b2c");
        std::fs::create_dir_all(run.join("abra/servers/default")).unwrap();
        assert_eq!(env_file_stack(&run, "_ci_test"), None);
        std::fs::write(run.join("abra/servers/default/web-0a1b2c.ci.test.env"), "TYPE=web\n").unwrap();
        assert_eq!(env_file_stack(&run, "_ci_test").as_deref(), Some("web-0a1b2c_ci_test"));
        assert_eq!(env_file_stack(&run, "_other_test"), None);
        let dirs = list_run_dirs(d.path()).unwrap();
        assert_eq!(dirs.keys().collect::<Vec<_>>(), vec!["0a1b2c"]);
        std::fs::create_dir_all(d.path().join("runs/not-a-run")).unwrap();
        assert_eq!(list_run_dirs(d.path()).unwrap().len(), 1, "only run-id folders");
    }

    #[test]
    fn remove_dir_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let x = d.path().join("x/y");
        std::fs::create_dir_all(&x).unwrap();
        std::fs::write(x.join("f"), "1").unwrap();
        assert!(remove_dir(&d.path().join("x")).unwrap());
        assert!(!remove_dir(&d.path().join("x")).unwrap());
    }
}
