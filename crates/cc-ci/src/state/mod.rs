//! The state dir (`--state-dir`, `/var/lib/cc-ci` on a host): the plain
//! files through which runs, the janitor and the oneshots keep out of each
//! other's way. A run's lease ([`lease`]), the warm record of an app kept
//! for `--quick` ([`warm`]) and the id that marks this state dir's apps
//! ([`owner`]). Ground types: no Docker, no network; `host` and `run` both
//! build on them, and they import neither.

pub mod lease;
pub mod owner;
pub mod warm;
