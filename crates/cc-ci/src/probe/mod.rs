//! An app seen from outside, through Traefik: the HTTPS check under the
//! wildcard certificate ([`serve`]) and Traefik's own view of the app's
//! routers from its API ([`routers`]). Used by the run's rungs and by the
//! oneshots that deploy Traefik and its routes; imports neither `run` nor
//! `host`.

pub mod routers;
pub mod serve;
