//! Every image a deploy needs, present before anything of it is deployed.
//!
//! Without this check an image the host lacks shows only after `docker
//! stack deploy`: Swarm rejects task after task ("No such image") until
//! convergence calls it a crash loop, 18 s on a real recipe, and by then
//! the stack's networks, secrets and services exist. Here each service's
//! `image:` (interpolated with the app env) is looked up through the Engine
//! API (`GET /images/{name}/json`) first; an absent one is pulled
//! (`POST /images/create`) unless the host pulls nothing
//! ([`ResolveImage::Never`]).
//!
//! Whose fault a missing image is, decided here and documented in
//! `docs/diagnosis.md`:
//!
//! - **the recipe's** ([`ImageError::is_recipe_failure`]) when the recipe
//!   names an image that cannot be had: the registry answered that it does
//!   not exist (Docker's `404`, `manifest unknown`, `repository does not
//!   exist`), the reference does not parse, or the host pulls no images
//!   (`--resolve-image never`) and lacks it. A host without a registry
//!   declares its own image store the set of images it serves, just as a
//!   registry does: an image outside it is a reference the recipe must
//!   change (or, if it is right, one the operator must load; the reason
//!   names both). Running the same recipe again cannot pass, so the rung
//!   `fail`s rather than claiming an infrastructure `error`;
//! - **the infrastructure's** when the pull itself broke (registry
//!   unreachable, DNS, TLS, rate limits, a 5xx) or the engine did not
//!   answer: the recipe may be fine.

use std::collections::BTreeMap;

use bollard::Docker;
use futures_util::StreamExt;

use super::native::ResolveImage;
use crate::recipe::compose::ComposeSet;
use crate::recipe::interpolate::interpolate;

/// What became of one service's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFound {
    /// The compose service.
    pub service: String,
    /// The image reference, interpolated.
    pub image: String,
    /// True when it was pulled now (false: already on the host).
    pub pulled: bool,
}

/// Why an image cannot be had; every message names the service, the image
/// and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The host pulls nothing and does not have the image.
    #[error(
        "service {service}: image {image} is not on this host, and this host pulls no images \
         (--resolve-image never, no registry), so the stack was not deployed; fix the image \
         reference in the recipe's compose file, or, if it is right, load the image onto the \
         host first (on cc-ci's test hosts scripts/images builds the fixtures' images)"
    )]
    NotOnHost {
        /// The compose service.
        service: String,
        /// The image reference.
        image: String,
    },
    /// The registry says the image does not exist (or the reference is invalid).
    #[error(
        "service {service}: image {image} cannot be pulled: {detail}; the stack was not \
         deployed; fix the image name or tag in the recipe's compose file (is the tag published?)"
    )]
    DoesNotExist {
        /// The compose service.
        service: String,
        /// The image reference.
        image: String,
        /// What the engine said.
        detail: String,
    },
    /// The pull broke for a reason that says nothing of the recipe.
    #[error(
        "service {service}: pulling image {image} failed: {detail}; the stack was not deployed; \
         is the registry reachable from this host (network, DNS, rate limits)?"
    )]
    PullFailed {
        /// The compose service.
        service: String,
        /// The image reference.
        image: String,
        /// What the engine said.
        detail: String,
    },
    /// The `image:` value does not interpolate.
    #[error("service {service}: image `{raw}` does not interpolate: {detail}; fix it in the recipe's compose file")]
    Interpolation {
        /// The compose service.
        service: String,
        /// The value as written.
        raw: String,
        /// Why.
        detail: String,
    },
    /// The engine did not answer the look-up.
    #[error("service {service}: cannot look up image {image} in the Docker engine: {detail}; is dockerd running?")]
    Docker {
        /// The compose service.
        service: String,
        /// The image reference.
        image: String,
        /// What bollard said.
        detail: String,
    },
}

impl ImageError {
    /// Whether the recipe is at fault (see the module doc): the image does
    /// not exist, cannot be referenced, or is not on a host that pulls none.
    pub fn is_recipe_failure(&self) -> bool {
        matches!(
            self,
            ImageError::NotOnHost { .. } | ImageError::DoesNotExist { .. } | ImageError::Interpolation { .. }
        )
    }
}

/// `(repository, tag or digest)` of an image reference, as `POST
/// /images/create` wants them (`fromImage`, `tag`): `nginx:1.2` ->
/// (`nginx`, `1.2`), `reg:5000/a/b` -> (`reg:5000/a/b`, `latest`),
/// `a@sha256:..` -> (`a`, `sha256:..`). A port in the registry part is not
/// a tag (the tag follows the last `/`).
pub fn split_reference(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (
            image[..name_start + i].to_string(),
            image[name_start + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Whether an engine's pull error says the image does not exist (or cannot
/// be named) rather than that the pull broke. Docker answers a missing
/// repository or tag with HTTP 404 (`pull access denied for x, repository
/// does not exist or may require 'docker login'`, `manifest for x:y not
/// found: manifest unknown`) and a malformed reference with 400 (`invalid
/// reference format`); transport failures come as 500 (`dial tcp: lookup
/// registry-1.docker.io: no such host`, `Client.Timeout exceeded`, `toomanyrequests`).
pub fn pull_error_is_nonexistence(status: Option<u16>, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    let transport = [
        "no such host",
        "dial tcp",
        "timeout",
        "connection refused",
        "toomanyrequests",
        "tls:",
        "i/o timeout",
        "network is unreachable",
    ]
    .iter()
    .any(|t| m.contains(t));
    if transport {
        return false;
    }
    matches!(status, Some(404) | Some(400))
        || m.contains("manifest unknown")
        || m.contains("repository does not exist")
        || m.contains("invalid reference format")
        || (m.contains("manifest for") && m.contains("not found"))
}

/// Each service's image of `compose`, interpolated with `env`, present on
/// the host: looked up, and pulled when absent unless `mode` is
/// [`ResolveImage::Never`]. Services without `image:` are left to the
/// stack deploy (which refuses them). Services are checked in name order;
/// the first that cannot be had stops the check.
///
/// # Errors
/// [`ImageError`], naming the service, the image and the fix; see the
/// module doc for which are the recipe's fault.
pub async fn ensure(
    docker: &Docker,
    compose: &ComposeSet,
    env: &BTreeMap<String, String>,
    mode: ResolveImage,
) -> Result<Vec<ImageFound>, ImageError> {
    let mut found = Vec::new();
    for (service, s) in &compose.services {
        let Some(raw) = &s.image else { continue };
        let image = interpolate(raw, env).map_err(|e| ImageError::Interpolation {
            service: service.clone(),
            raw: raw.clone(),
            detail: e.to_string(),
        })?;
        let image = image.trim().to_string();
        match docker.inspect_image(&image).await {
            Ok(_) => {
                found.push(ImageFound {
                    service: service.clone(),
                    image,
                    pulled: false,
                });
                continue;
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400,
                message,
            }) => {
                return Err(ImageError::DoesNotExist {
                    service: service.clone(),
                    image,
                    detail: message,
                })
            }
            Err(e) => {
                return Err(ImageError::Docker {
                    service: service.clone(),
                    image,
                    detail: e.to_string(),
                })
            }
        }
        if mode == ResolveImage::Never {
            return Err(ImageError::NotOnHost {
                service: service.clone(),
                image,
            });
        }
        pull(docker, service, &image).await?;
        found.push(ImageFound {
            service: service.clone(),
            image,
            pulled: true,
        });
    }
    Ok(found)
}

/// Pulls `image`, classifying a failure (see [`pull_error_is_nonexistence`]).
async fn pull(docker: &Docker, service: &str, image: &str) -> Result<(), ImageError> {
    let (repo, tag) = split_reference(image);
    let opts = bollard::query_parameters::CreateImageOptions {
        from_image: Some(repo),
        tag: Some(tag),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), None, None);
    while let Some(item) = stream.next().await {
        let (status, message) = match item {
            Ok(info) => match info.error_detail.and_then(|d| d.message) {
                Some(m) => (None, m),
                None => continue,
            },
            Err(bollard::errors::Error::DockerResponseServerError { status_code, message }) => {
                (Some(status_code), message)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => (None, error),
            Err(e) => (None, e.to_string()),
        };
        let (service, image) = (service.to_string(), image.to_string());
        return Err(if pull_error_is_nonexistence(status, &message) {
            ImageError::DoesNotExist {
                service,
                image,
                detail: message,
            }
        } else {
            ImageError::PullFailed {
                service,
                image,
                detail: message,
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_the_engine_wants_them() {
        let s = |i: &str| {
            let (a, b) = split_reference(i);
            (a, b)
        };
        assert_eq!(s("nginx"), ("nginx".into(), "latest".into()));
        assert_eq!(s("ccci/nginx:1.22.1"), ("ccci/nginx".into(), "1.22.1".into()));
        assert_eq!(s("reg:5000/a/b"), ("reg:5000/a/b".into(), "latest".into()));
        assert_eq!(s("reg:5000/a/b:2"), ("reg:5000/a/b".into(), "2".into()));
        assert_eq!(s("a/b@sha256:00ff"), ("a/b".into(), "sha256:00ff".into()));
    }

    #[test]
    fn a_missing_image_is_told_from_a_broken_pull() {
        // Docker's answers (moby's distribution errors, as the CLI shows them).
        assert!(pull_error_is_nonexistence(
            Some(404),
            "pull access denied for ccci/nope, repository does not exist or may require 'docker login'"
        ));
        assert!(pull_error_is_nonexistence(
            None,
            "manifest for nginx:9.9.9 not found: manifest unknown: manifest unknown"
        ));
        assert!(pull_error_is_nonexistence(Some(400), "invalid reference format"));
        assert!(!pull_error_is_nonexistence(
            Some(500),
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"
        ));
        assert!(!pull_error_is_nonexistence(
            Some(500),
            "toomanyrequests: You have reached your pull rate limit"
        ));
        assert!(!pull_error_is_nonexistence(Some(500), "unexpected EOF"));
    }

    #[test]
    fn the_recipe_is_at_fault_only_for_an_image_that_cannot_be_had() {
        let (service, image) = ("app".to_string(), "x/y:1".to_string());
        let missing = ImageError::NotOnHost {
            service: service.clone(),
            image: image.clone(),
        };
        assert!(missing.is_recipe_failure());
        let text = missing.to_string();
        assert!(
            text.contains("service app") && text.contains("x/y:1") && text.contains("fix the image reference"),
            "{text}"
        );
        assert!(!ImageError::PullFailed {
            service,
            image,
            detail: "dial tcp: i/o timeout".into()
        }
        .is_recipe_failure());
    }
}
