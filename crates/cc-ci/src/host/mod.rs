//! The host a run needs, brought to its state by idempotent oneshots: the
//! swarm and the `proxy` network ([`swarm`]), the wildcard certificate
//! decrypted from sops ([`sops`], [`cert`]), Traefik ([`traefik`]) and its
//! routes to the services that run on the host itself ([`routes`]), and the
//! janitor that reaps what dead runs left ([`janitor`]).

pub mod cert;
pub mod janitor;
pub mod routes;
pub mod sops;
pub mod swarm;
pub mod traefik;
