//! The host a run needs, brought to its state by idempotent oneshots: the
//! swarm and the `proxy` network ([`swarm`]), the wildcard certificate
//! decrypted from sops ([`sops`], [`cert`]), and the bookkeeping that keeps
//! concurrent runs apart ([`lease`], [`janitor`]).

pub mod cert;
pub mod janitor;
pub mod lease;
pub mod sops;
pub mod swarm;
