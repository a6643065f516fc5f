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
