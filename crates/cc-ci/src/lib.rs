//! cc-ci: a CI server for Co-op Cloud recipes.
//!
//! This crate holds the CI domain; the binaries under `crates/` are thin
//! command-line shells over it. One folder per subsystem, so the tree reads
//! like the architecture (`ARCHITECTURE.md` at the repository root maps it):
//!
//! - [`host`]: the machine a run needs (swarm, the wildcard certificate from
//!   sops, Traefik, leases, the janitor);
//! - [`recipe`]: a recipe checkout read and validated before anything deploys;
//! - [`deploy`]: deploying an app the way abra does (the [`deploy::Deployer`]
//!   trait, its `native` and `abra` implementations, stacks, convergence);
//! - [`run`]: one `ccci test` run, its plan and its rungs;
//! - [`results`]: `results.json`, the level, and what is rendered from them.

pub mod deploy;
pub mod host;
pub mod recipe;
pub mod results;
pub mod run;
