//! The orchestrator's loop supervisor, behind the `loops` binary.
//!
//! Two long-lived agent loops (a Builder and an Adversary) work on one git
//! repository and coordinate only through it. The supervisor keeps each in
//! its own tmux session, and its watchdog
//!
//! - every heavy check (default 300 s): restarts dead sessions, heals panes
//!   showing a fatal error or usage-limit message, and when the phase's
//!   STATUS file on origin has a real `## DONE`, stops the loops and moves to
//!   the next phase (or exits after the last);
//! - every fast tick (default 30 s): pings the Adversary on a new `claim(`
//!   commit and the Builder on a new `review(` commit (edge-triggered on the
//!   origin SHA, persisted), pings an agent whose INBOX file changed, and
//!   restarts a loop whose pane has not changed for `stall_idle` unless its
//!   last line is a live `WAITING-UNTIL: <ISO-8601 UTC>` marker.
//!
//! The orchestrator's own agent session ([`orchestrator`]) keeps one
//! conversation across restarts and reboots, resumed by its id and healed by
//! the same watchdog. One-shot jobs ([`job`]) run a task to completion with
//! bounded resumes; [`boot`] records reboots. Configuration: [`config`];
//! agent command lines: [`backend`]; errors: [`error`] (the binary is a thin
//! CLI over this library).

pub mod backend;
pub mod boot;
pub mod config;
pub mod error;
pub mod job;
pub mod markers;
pub mod orchestrator;
pub mod origin;
pub mod state;
pub mod supervisor;
pub mod tmux;

pub use config::Config;
pub use error::{Error, Result};
pub use supervisor::{Loops, Outcome};

/// Writes `bytes` to `path` through a temp file of its own beside it,
/// renamed into place: a reader sees the old file or the whole new one.
///
/// # Errors
/// [`Error`] naming the file when the temp file cannot be made, written or
/// renamed.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("write", path, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| Error::io("write", path, e))?;
    tmp.persist(path)
        .map(drop)
        .map_err(|e| Error::io("replace", path, e.error))
}
