//! cc-ci: a CI server for Co-op Cloud recipes.
//!
//! This crate holds the domain; the binaries under `crates/` are thin
//! command-line shells over it. See `ARCHITECTURE.md` at the repository root
//! for a one-page map.

pub mod cert;
pub mod converge;
pub mod env_file;
pub mod janitor;
pub mod lease;
pub mod level;
pub mod lifecycle;
pub mod loops;
pub mod recipe;
pub mod results;
pub mod run;
pub mod screenshot;
pub mod serve;
pub mod settings;
pub mod sops;
pub mod stack;
pub mod swarm;
pub mod witness;
