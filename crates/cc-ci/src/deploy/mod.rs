//! Deploying an app the way abra does (`../shared/ABRA.md`): a stack's
//! objects and their teardown ([`stack`]), and waiting until a deployed
//! stack has converged ([`converge`]).

pub mod converge;
pub mod stack;
