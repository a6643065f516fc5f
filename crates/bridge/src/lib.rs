//! `bridge`: cc-ci between Gitea and Buildbot. A maintainer writes
//! `!testme` on a recipe's pull request; the bridge sees it (polling first,
//! the webhook optionally: [`trigger`]), checks that the author is a member
//! of the organisation, forces a Buildbot build of `ccci test` at the PR's
//! head ([`build`]), follows it, and posts the commit status and the one PR
//! comment rendered from the run's results.json ([`report`]). A weekly
//! [`sweep`] tests each recipe's newest release. Everything it has decided
//! is in SQLite ([`state`]), so a restart loses nothing and posts nothing
//! twice.
//!
//! The binary (`src/main.rs`) is a thin CLI over [`bridge::Bridge`].

pub mod bridge;
pub mod build;
pub mod buildbot;
pub mod config;
pub mod gitea;
pub mod http;
pub mod report;
pub mod retry;
pub mod server;
pub mod state;
pub mod sweep;
pub mod trigger;
