//! A run's lease on its app: proof, to the janitor, that the run is alive.
//!
//! A run holds an exclusive `flock` on `<state_dir>/leases/<stack>.lease` for
//! its whole life. The kernel drops the lock when the process dies, however
//! it dies (SIGKILL too), so "the lock is held" means "a live process owns
//! this app" without trusting pids, timestamps or clean shutdowns.
//!
//! Taking a lease is race-free: the lease's JSON ([`LeaseInfo`]) is written
//! to a temporary file in the same folder, the file is locked, and only then
//! is it linked into place with `link(2)`, which never replaces an existing
//! file (a rename that refuses to clobber). Nobody ever sees the lease file
//! of a live run unlocked or half written. The temporary name is then
//! removed. Dropping a [`Lease`] removes the file (while still locked) and
//! then releases the lock.
//!
//! Rules for whoever else opens a lease file (the janitor): lock it without
//! blocking; after locking, check that the path still names the locked file
//! (a holder that finished may have unlinked it); remove a lease file only
//! while holding its lock. [`Lease::try_take`] does exactly that.
//!
//! A run must take its lease before it creates anything of its app (run
//! folder, env files, stack objects), and keep it until it has finished with
//! them: the janitor reaps whatever it finds without a held lease.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs2::FileExt;
use serde::{Deserialize, Serialize};

/// The folder under the state dir that holds lease files.
pub const LEASES_DIR: &str = "leases";
/// A lease file's extension.
pub const LEASE_EXT: &str = "lease";
/// A temporary lease file's extension (`.<stack>.<pid>.<random>.tmp`).
pub const TEMP_EXT: &str = "tmp";

/// Who holds a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    /// A test run (`ccci test`), for its whole life.
    #[default]
    Run,
    /// A janitor, while it reaps an app no run holds.
    Janitor,
}

/// What a lease file says: whose app it is and who took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The run's id (six hex digits), empty when unknown (a janitor's lease on
    /// a stack whose run id it could not tell).
    pub run_id: String,
    /// The app's domain, empty when unknown.
    pub domain: String,
    /// The app's stack name (also the lease file's name).
    pub stack: String,
    /// The process that took the lease.
    pub pid: u32,
    /// When it was taken.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// A run or a janitor.
    #[serde(default)]
    pub holder: Holder,
}

impl LeaseInfo {
    /// A lease for `stack` taken now by this process.
    pub fn new(run_id: &str, domain: &str, stack: &str, holder: Holder) -> LeaseInfo {
        LeaseInfo {
            run_id: run_id.into(),
            domain: domain.into(),
            stack: stack.into(),
            pid: std::process::id(),
            started_at: chrono::Utc::now(),
            holder,
        }
    }
}

impl std::fmt::Display for LeaseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.holder {
            Holder::Run => "run",
            Holder::Janitor => "janitor",
        };
        write!(f, "{who} pid {}", self.pid)?;
        if !self.run_id.is_empty() {
            write!(f, ", run {}", self.run_id)?;
        }
        write!(f, ", since {}", self.started_at.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

/// Why a lease could not be taken or read.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another live process holds the lease.
    #[error("the lease {} is held by a live process ({}); another run or a janitor owns stack `{stack}`", path.display(), holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "unreadable lease".into()))]
    Held {
        /// The lease file.
        path: PathBuf,
        /// The stack.
        stack: String,
        /// What the lease file says, if readable.
        holder: Option<Box<LeaseInfo>>,
    },
    /// A stale lease (no live holder) exists: a dead run left this app behind.
    #[error("a stale lease {} exists (left by {}): a dead run's app `{stack}` is still there; run `janitor` to reap it", path.display(), holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "an unreadable lease".into()))]
    Stale {
        /// The lease file.
        path: PathBuf,
        /// The stack.
        stack: String,
        /// What the lease file says, if readable.
        holder: Option<Box<LeaseInfo>>,
    },
    /// The stack name cannot be a lease file name.
    #[error("`{0}` is not a stack name (letters, digits, `-` and `_` only)")]
    BadStack(String),
    /// A file operation failed.
    #[error("lease {}: {source}; check that the state directory exists and is writable by this user", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LeaseError + '_ {
    move |source| LeaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A held lease. Dropping it removes the lease file and releases the lock.
#[derive(Debug)]
pub struct Lease {
    file: File,
    path: PathBuf,
    info: LeaseInfo,
    previous: Option<LeaseInfo>,
    created: bool,
}

/// What [`Lease::try_take`] found.
#[derive(Debug)]
pub enum TryTake {
    /// The lease is ours now.
    Taken(Lease),
    /// Another live process holds it (what its file says, if readable).
    Held(Option<LeaseInfo>),
}

/// The lease folder of a state dir.
pub fn leases_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(LEASES_DIR)
}

/// Names and paths of the entries of the lease folder (none when it does not exist).
fn lease_dir_entries(state_dir: &Path) -> Result<Vec<(String, PathBuf)>, LeaseError> {
    let dir = leases_dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_err(&dir))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    Ok(out)
}

/// The lease file of `stack` under `state_dir`.
pub fn lease_path(state_dir: &Path, stack: &str) -> PathBuf {
    leases_dir(state_dir).join(format!("{stack}.{LEASE_EXT}"))
}

fn valid_stack(stack: &str) -> bool {
    !stack.is_empty()
        && !stack.starts_with('.')
        && stack
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// True when `f` (open) is the file `path` names right now.
fn same_file(f: &File, path: &Path) -> io::Result<bool> {
    let a = f.metadata()?;
    match fs::metadata(path) {
        Ok(b) => Ok(a.dev() == b.dev() && a.ino() == b.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

fn parse_info(text: &str) -> Option<LeaseInfo> {
    serde_json::from_str(text).ok()
}

/// True when a process with this pid exists (Linux `/proc`). Informational
/// only: the lock, not the pid, decides whether a lease is held.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Reads a lease file's JSON; None when absent or unreadable.
pub fn read_info(path: &Path) -> Option<LeaseInfo> {
    parse_info(&fs::read_to_string(path).ok()?)
}

enum Attempt {
    Taken(Lease),
    Held(Option<LeaseInfo>),
    Stale(Option<LeaseInfo>),
}

impl Lease {
    /// Takes the lease `info` describes: creates
    /// `<state_dir>/leases/<stack>.lease`, locked, for as long as the
    /// returned [`Lease`] lives (or the process, if it is leaked). Fails if
    /// the file exists, held or not.
    ///
    /// # Errors
    /// [`LeaseError::Held`] when a live process holds this stack's lease,
    /// [`LeaseError::Stale`] when a dead run's lease is still there (a run
    /// never takes over another run's app; the janitor reaps it first),
    /// [`LeaseError::Io`] when the state dir is not writable.
    pub fn take(state_dir: &Path, info: LeaseInfo) -> Result<Lease, LeaseError> {
        let path = lease_path(state_dir, &info.stack);
        let stack = info.stack.clone();
        match Lease::attempt(state_dir, info, false)? {
            Attempt::Taken(l) => Ok(l),
            Attempt::Held(holder) => Err(LeaseError::Held {
                path,
                stack,
                holder: holder.map(Box::new),
            }),
            Attempt::Stale(holder) => Err(LeaseError::Stale {
                path,
                stack,
                holder: holder.map(Box::new),
            }),
        }
    }

    /// Takes the lease of `info.stack` without blocking, whether or not a
    /// (stale) lease file exists: a free existing file is locked, then
    /// replaced (while locked) by a new locked file with `info`, so readers
    /// see the new holder; a missing one is created with `info`.
    /// [`TryTake::Held`] when another live process holds it.
    ///
    /// This is how the janitor holds an app while it reaps it.
    ///
    /// # Errors
    /// [`LeaseError::Io`] when the lease folder cannot be read or written.
    pub fn try_take(state_dir: &Path, info: LeaseInfo) -> Result<TryTake, LeaseError> {
        Ok(match Lease::attempt(state_dir, info, true)? {
            Attempt::Taken(l) => TryTake::Taken(l),
            Attempt::Held(h) => TryTake::Held(h),
            Attempt::Stale(h) => TryTake::Held(h), // not reached with take_over = true
        })
    }

    fn attempt(state_dir: &Path, info: LeaseInfo, take_over: bool) -> Result<Attempt, LeaseError> {
        if !valid_stack(&info.stack) {
            return Err(LeaseError::BadStack(info.stack));
        }
        let dir = leases_dir(state_dir);
        let path = lease_path(state_dir, &info.stack);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Each turn either settles or saw the file change under it (removed
        // by its finishing holder, created by a concurrent taker); such
        // changes are rare and brief, so a bound only catches a broken
        // filesystem.
        for _ in 0..1000 {
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(mut f) => match f.try_lock_exclusive() {
                    Err(e) if is_contended(&e) => return Ok(Attempt::Held(read_info(&path))),
                    Err(e) => return Err(io_err(&path)(e)),
                    Ok(()) => {
                        if !same_file(&f, &path).map_err(io_err(&path))? {
                            continue; // its holder removed it; look again
                        }
                        let mut text = String::new();
                        let existing = f.read_to_string(&mut text).ok().and_then(|_| parse_info(&text));
                        if !take_over {
                            let _ = FileExt::unlock(&f);
                            return Ok(Attempt::Stale(existing));
                        }
                        // Put our own lease in its place (a new locked file
                        // renamed over it) while we hold the stale one's
                        // lock, so whoever looks sees who holds it now.
                        let mut lease =
                            Lease::create(&dir, &path, &info, true)?.expect("a rename never finds the path taken");
                        lease.previous = existing;
                        lease.created = false;
                        let _ = FileExt::unlock(&f);
                        return Ok(Attempt::Taken(lease));
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(lease) = Lease::create(&dir, &path, &info, false)? {
                        return Ok(Attempt::Taken(lease));
                    }
                }
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Err(io_err(&path)(io::Error::other(
            "the lease file kept changing while being taken",
        )))
    }

    /// Writes `info` to a temporary file, locks it, links it to `path`
    /// unless `path` exists (None when `path` appeared meanwhile); with
    /// `replace`, renames it over `path` (the caller holds the lock of the
    /// file it replaces).
    fn create(dir: &Path, path: &Path, info: &LeaseInfo, replace: bool) -> Result<Option<Lease>, LeaseError> {
        let rand = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let tmp = dir.join(format!(".{}.{}.{rand}.{TEMP_EXT}", info.stack, std::process::id()));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let cleanup = |e: io::Error| {
            let _ = fs::remove_file(&tmp);
            io_err(&tmp)(e)
        };
        // Only a janitor cleaning up a dead taker's temporary file ever locks
        // one, and it never touches a live process's young temp file.
        f.lock_exclusive().map_err(cleanup)?;
        let json = serde_json::to_vec_pretty(info).expect("lease info serialises");
        f.write_all(&json).map_err(cleanup)?;
        f.write_all(b"\n").map_err(cleanup)?;
        f.sync_data().map_err(cleanup)?;
        let linked = if replace {
            fs::rename(&tmp, path).map_err(cleanup)?;
            Ok(())
        } else {
            let linked = fs::hard_link(&tmp, path);
            let _ = fs::remove_file(&tmp);
            linked
        };
        match linked {
            Ok(()) => Ok(Some(Lease {
                file: f,
                path: path.to_path_buf(),
                info: info.clone(),
                previous: None,
                created: true,
            })),
            // Someone else's lease appeared, or a janitor removed our temp
            // file (only if it thought us dead): look again.
            Err(e) if matches!(e.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the lease file says.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// What the stale lease this one replaced said (None when there was
    /// none, or it was unreadable).
    pub fn previous(&self) -> Option<&LeaseInfo> {
        self.previous.as_ref()
    }

    /// True when no lease file existed before this one; false when it took
    /// over (replaced) a stale one.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Releases the lock but leaves the file where it is (a dry run that
    /// took over a stale lease must not remove it).
    pub fn release_keeping_file(mut self) {
        self.path = PathBuf::new(); // Drop removes nothing then
    }

    /// True when a live process holds the lease at `path` (false when the
    /// file is absent or free). Takes a shared lock for an instant, so a
    /// janitor trying the lease at that very moment sees it as held.
    pub fn is_held(path: &Path) -> bool {
        match File::open(path) {
            Ok(f) => match FileExt::try_lock_shared(&f) {
                Ok(()) => {
                    let _ = FileExt::unlock(&f);
                    false
                }
                Err(e) => is_contended(&e),
            },
            Err(_) => false,
        }
    }

    /// Every lease file under `state_dir`, sorted by stack.
    ///
    /// # Errors
    /// [`LeaseError::Io`] when the lease folder exists but cannot be read.
    pub fn list(state_dir: &Path) -> Result<Vec<LeaseFile>, LeaseError> {
        let mut out = Vec::new();
        for (name, path) in lease_dir_entries(state_dir)? {
            if name.starts_with('.') {
                continue;
            }
            let Some(stack) = name.strip_suffix(&format!(".{LEASE_EXT}")) else {
                continue;
            };
            out.push(LeaseFile {
                stack: stack.to_string(),
                info: read_info(&path),
                held: Lease::is_held(&path),
                path,
            });
        }
        out.sort_by(|a, b| a.stack.cmp(&b.stack));
        Ok(out)
    }

    /// Removes temporary lease files left by takers that died between
    /// creating and linking them: a temp file whose process is gone (or
    /// older than `min_age` whatever its pid says) and that nobody locks.
    /// Returns the removed paths.
    ///
    /// # Errors
    /// [`LeaseError::Io`] when the lease folder exists but cannot be read.
    pub fn remove_dead_temp_files(state_dir: &Path, min_age: Duration) -> Result<Vec<PathBuf>, LeaseError> {
        let mut out = Vec::new();
        for (name, path) in lease_dir_entries(state_dir)? {
            if !(name.starts_with('.') && name.ends_with(&format!(".{TEMP_EXT}"))) {
                continue;
            }
            // `.<stack>.<pid>.<random>.tmp`
            let parts: Vec<&str> = name.rsplitn(4, '.').collect();
            let pid_alive = parts
                .get(2)
                .and_then(|p| p.parse::<u32>().ok())
                .map(pid_alive)
                .unwrap_or(false);
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if pid_alive && !old {
                continue;
            }
            let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if f.try_lock_exclusive().is_err() {
                continue;
            }
            if same_file(&f, &path).unwrap_or(false) && fs::remove_file(&path).is_ok() {
                out.push(path);
            }
        }
        Ok(out)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Remove the file while still holding the lock, so nobody can lock
        // it at its path and mistake it for a free lease of a live app.
        if !self.path.as_os_str().is_empty() && same_file(&self.file, &self.path).unwrap_or(false) {
            let _ = fs::remove_file(&self.path);
        }
        // Then unlock explicitly rather than on close: a child forked by
        // another thread shares this open file description (and so the
        // flock) until it execs, and closing our descriptor would leave the
        // lock with it (flock(2): the lock goes with the last descriptor of
        // the description, or an explicit LOCK_UN).
        let _ = FileExt::unlock(&self.file);
    }
}

/// One lease file found by [`Lease::list`].
#[derive(Debug, Clone)]
pub struct LeaseFile {
    /// The stack (from the file name).
    pub stack: String,
    /// The file.
    pub path: PathBuf,
    /// Its JSON, if readable.
    pub info: Option<LeaseInfo>,
    /// True when a live process held it when listed.
    pub held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(stack: &str) -> LeaseInfo {
        LeaseInfo::new("abc123", "x-abc123.ci.test", stack, Holder::Run)
    }

    #[test]
    fn take_holds_and_drop_removes() {
        let d = tempfile::tempdir().unwrap();
        let l = Lease::take(d.path(), info("x-abc123_ci_test")).unwrap();
        let p = lease_path(d.path(), "x-abc123_ci_test");
        assert_eq!(l.path(), p);
        assert!(p.is_file() && Lease::is_held(&p));
        assert_eq!(read_info(&p).unwrap().run_id, "abc123");
        // No temp file is left next to it.
        let names: Vec<_> = fs::read_dir(leases_dir(d.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A second taker (same process, another open file description) is refused.
        match Lease::take(d.path(), info("x-abc123_ci_test")) {
            Err(LeaseError::Held { holder, .. }) => assert_eq!(holder.unwrap().pid, std::process::id()),
            other => panic!("expected Held, got {other:?}"),
        }
        assert!(matches!(
            Lease::try_take(d.path(), info("x-abc123_ci_test")).unwrap(),
            TryTake::Held(Some(_))
        ));
        let listed = Lease::list(d.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].held && listed[0].stack == "x-abc123_ci_test");
        drop(l);
        assert!(!p.exists() && !Lease::is_held(&p));
        assert!(Lease::list(d.path()).unwrap().is_empty());
    }

    #[test]
    fn stale_lease_refuses_runs_and_is_taken_over_by_try_take() {
        let d = tempfile::tempdir().unwrap();
        let p = lease_path(d.path(), "s-000000_ci_test");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, serde_json::to_string(&info("s-000000_ci_test")).unwrap()).unwrap();
        assert!(!Lease::is_held(&p));
        assert!(matches!(
            Lease::take(d.path(), info("s-000000_ci_test")),
            Err(LeaseError::Stale { holder: Some(_), .. })
        ));
        assert!(p.exists(), "a refused run leaves the stale lease alone");
        let TryTake::Taken(l) =
            Lease::try_take(d.path(), LeaseInfo::new("", "", "s-000000_ci_test", Holder::Janitor)).unwrap()
        else {
            panic!("free lease not taken")
        };
        assert!(!l.created());
        assert_eq!(l.previous().unwrap().run_id, "abc123", "what the stale lease said");
        assert_eq!(
            read_info(&p).unwrap().holder,
            Holder::Janitor,
            "the file now names its holder"
        );
        assert!(Lease::is_held(&p));
        assert_eq!(
            fs::read_dir(leases_dir(d.path())).unwrap().count(),
            1,
            "no temp file left"
        );
        l.release_keeping_file();
        assert!(p.exists() && !Lease::is_held(&p));
        let TryTake::Taken(l) = Lease::try_take(d.path(), info("s-000000_ci_test")).unwrap() else {
            panic!()
        };
        drop(l);
        assert!(!p.exists());
    }

    /// A child that holds a copy of the lease's descriptor (the same open
    /// file description, as its stdin): what a child forked by another
    /// thread holds until it execs (`O_CLOEXEC` acts only at exec). Here
    /// the copy outlives the exec (`sleep`), so the window lasts as long as
    /// the test needs.
    fn child_holding(file: &File) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .stdin(std::process::Stdio::from(file.try_clone().unwrap()))
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_released_lease_is_free_while_a_child_holds_a_copy_of_its_descriptor() {
        let d = tempfile::tempdir().unwrap();
        let stack = "c-abc123_ci_test";
        let p = lease_path(d.path(), stack);
        // Dropped: the file goes and the lock with it.
        let l = Lease::take(d.path(), info(stack)).unwrap();
        let mut child = child_holding(&l.file);
        drop(l);
        let l = Lease::take(d.path(), info(stack)).expect("a dropped lease is free");
        child.kill().unwrap();
        child.wait().unwrap();
        // Released keeping its file: the file stays, free.
        let mut child = child_holding(&l.file);
        l.release_keeping_file();
        assert!(!Lease::is_held(&p), "a released lease is held by the child's copy");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn bad_stack_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for s in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(Lease::take(d.path(), info(s)), Err(LeaseError::BadStack(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn dead_temp_files_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let dir = leases_dir(d.path());
        fs::create_dir_all(&dir).unwrap();
        // A dead pid (pid_max is below 2^22 on Linux).
        let dead = dir.join(".x-abc123_ci_test.4999999.deadbeef.tmp");
        fs::write(&dead, "{").unwrap();
        let live = dir.join(format!(".y-abc123_ci_test.{}.cafecafe.tmp", std::process::id()));
        fs::write(&live, "{").unwrap();
        let removed = Lease::remove_dead_temp_files(d.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists() && live.exists());
        // Old enough, and unlocked: removed whatever its pid.
        let removed = Lease::remove_dead_temp_files(d.path(), Duration::ZERO).unwrap();
        assert_eq!(removed, vec![live.clone()]);
    }
}
