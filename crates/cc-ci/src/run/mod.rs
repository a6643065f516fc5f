//! One `ccci test` run: its plan ([`plan`]), the per-recipe settings
//! ([`settings`]), the rungs and what they use (serve checks, screenshots,
//! witnesses), and the lifecycle that takes a recipe through them
//! ([`lifecycle`]).

pub mod backup;
pub mod confinement;
pub mod contract;
pub mod data;
pub mod exemplary;
pub mod lifecycle;
pub(crate) mod oneoff;
pub mod plan;
pub mod screenshot;
pub mod script;
pub mod service_logs;
pub mod start;
pub mod warm;
pub mod witness;
