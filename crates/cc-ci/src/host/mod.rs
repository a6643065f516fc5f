//! The host a run needs, brought to its state by idempotent oneshots: the
//! swarm and the `proxy` network ([`swarm`]), the wildcard certificate
//! decrypted from sops ([`sops`], [`cert`]), and the bookkeeping that keeps
//! concurrent runs apart ([`lease`], [`janitor`]), and what the kernel
//! offers swarm networking ([`ipvs`]); Traefik ([`traefik`]) and its routes
//! to the services that run on the host itself ([`routes`]).

pub mod cert;
pub mod ipvs;
pub mod janitor;
pub mod lease;
pub mod owner;
pub mod routes;
pub mod sops;
pub mod swarm;
pub mod traefik;
