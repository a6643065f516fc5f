//! cc-ci: a CI server for Co-op Cloud recipes.
//!
//! This crate holds the CI domain; the binaries under `crates/` are thin
//! command-line shells over it. One folder per subsystem, so the tree reads
//! like the architecture (`ARCHITECTURE.md` at the repository root maps it):
//!
//! - [`state`]: the state dir's plain files (leases, warm records, the
//!   owner id) that runs, the janitor and the oneshots share;
//! - [`host`]: the machine a run needs (swarm, the wildcard certificate from
//!   sops, Traefik and its routes, the janitor);
//! - [`recipe`]: a recipe checkout read and validated before anything deploys;
//! - [`deploy`]: deploying an app the way abra does (the [`deploy::Deployer`]
//!   trait, its `native` and `abra` implementations, stacks, convergence);
//! - [`probe`]: an app seen from outside, through Traefik (the HTTPS check,
//!   Traefik's view of its routers);
//! - [`settings`]: a recipe's reviewed CI settings (`tests/recipes/<recipe>/`);
//! - [`run`]: one `ccci test` run, its plan and its rungs;
//! - [`results`]: `results.json`, the level, and what is rendered from them
//!   (the crate `cc-ci-results`, re-exported: plain data the bridge and the
//!   dashboard use without the rest).

pub mod deploy;
pub mod host;
pub mod probe;
pub mod recipe;
pub use cc_ci_results as results;
pub mod run;
pub mod settings;
pub mod state;
