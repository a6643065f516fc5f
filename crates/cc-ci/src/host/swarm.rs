//! The Docker engine as a single-node swarm manager with the `proxy` network.
//!
//! Co-op Cloud deploys every app as a swarm stack; apps and Traefik meet on
//! an external, attachable overlay network called `proxy`. [`ensure_swarm`]
//! makes both true and reports what it changed. It talks to the Docker Engine
//! API (bollard), never to the docker CLI.
//!
//! Idempotent: with the swarm active and the network present it changes
//! nothing. Concurrency: a swarm init that races another one is recognised
//! (the engine then reports the node already in a swarm, and the re-read
//! state is active); the network check-and-create runs under an exclusive
//! host-wide file lock, because Docker allows two networks with the same name
//! and a race would leave two `proxy` networks.

use std::path::PathBuf;

use bollard::models::{NetworkCreateRequest, SwarmInitRequest};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use bollard::Docker;
use fs2::FileExt;

/// The overlay network Co-op Cloud apps and Traefik share.
pub const PROXY_NETWORK: &str = "proxy";

/// Why the engine could not be made a swarm manager with the proxy network.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The Docker Engine API did not answer or refused a request.
    #[error("Docker engine: {context}: {source}; is dockerd running and is /var/run/docker.sock reachable? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
    /// The node is in a swarm state this tool will not repair on its own.
    #[error("this node's swarm state is `{state}`; {advice}")]
    SwarmState {
        /// The engine's `LocalNodeState` (or a description).
        state: String,
        /// What the operator should do.
        advice: String,
    },
    /// A network with the wanted name exists but is unusable.
    #[error("network `{name}` exists but {problem}; remove it (`docker network rm {name}`, after removing the services on it) and run again")]
    BadNetwork {
        /// The network name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The host-wide lock file could not be taken.
    #[error("cannot lock {path}: {source}; check the directory is writable (set CCCI_LOCK_DIR to another one)")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn docker_err(context: &str) -> impl FnOnce(bollard::errors::Error) -> SwarmError + '_ {
    move |source| SwarmError::Docker {
        context: context.to_string(),
        source,
    }
}

/// What [`ensure_swarm`] found and changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmReport {
    /// This run initialised the swarm.
    pub swarm_initialised: bool,
    /// This run created the overlay network.
    pub network_created: bool,
    /// The network's id.
    pub network_id: String,
}

impl SwarmReport {
    /// True if this run changed nothing.
    pub fn nothing_changed(&self) -> bool {
        !self.swarm_initialised && !self.network_created
    }
}

/// Connects to the local engine (`DOCKER_HOST` or /var/run/docker.sock) and
/// negotiates the API version, so older engines (Debian 12's 20.10, API 1.41)
/// work.
pub async fn connect() -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_local_defaults()?.negotiate_version().await
}

/// [`connect`], or, when no engine answers, why not and a client whose every
/// request fails (so a caller can record the reason as an infrastructure
/// error instead of stopping).
pub async fn connect_or_why() -> (Docker, Option<String>) {
    match connect().await {
        Ok(d) => (d, None),
        Err(e) => {
            let nowhere = Docker::connect_with_http("tcp://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION)
                .or_else(|_| Docker::connect_with_local_defaults())
                .expect("a client for an unreachable address can always be made");
            (nowhere, Some(e.to_string()))
        }
    }
}

/// The directory for host-wide lock files: `$CCCI_LOCK_DIR`, else
/// `/run/lock/cc-ci` if `/run/lock` exists, else the temp dir.
pub fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CCCI_LOCK_DIR") {
        return PathBuf::from(d);
    }
    let run_lock = PathBuf::from("/run/lock");
    if run_lock.is_dir() {
        return run_lock.join("cc-ci");
    }
    std::env::temp_dir().join("cc-ci-locks")
}

/// Holds an exclusive `flock` on a file under [`lock_dir`] until dropped.
pub(crate) struct HostLock(std::fs::File);

impl HostLock {
    /// Blocks until the lock named `name` is held. Runs the blocking wait on
    /// tokio's blocking pool.
    pub(crate) async fn acquire(name: &str) -> Result<HostLock, SwarmError> {
        let dir = lock_dir();
        let path = dir.join(format!("{name}.lock"));
        let p = path.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(&dir)?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)?;
            f.lock_exclusive()?;
            Ok(f)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()));
        match res.and_then(|r| r) {
            Ok(f) => Ok(HostLock(f)),
            Err(source) => Err(SwarmError::Lock { path, source }),
        }
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

/// The address a single-node swarm advertises unless told otherwise.
pub const DEFAULT_ADVERTISE_ADDR: &str = "127.0.0.1";

/// Makes the engine a swarm manager (`docker swarm init --advertise-addr
/// <advertise_addr>` if inactive; an active swarm is left as it is) and makes
/// sure the attachable overlay network `network` exists.
///
/// Errors: [`SwarmError::Docker`] when the engine fails; [`SwarmError::SwarmState`]
/// when the node is a worker, locked, pending or in error (it is not
/// repaired automatically: that could destroy a real cluster);
/// [`SwarmError::BadNetwork`] when a non-overlay or non-attachable network has
/// the name.
pub async fn ensure_swarm(docker: &Docker, network: &str, advertise_addr: &str) -> Result<SwarmReport, SwarmError> {
    let swarm_initialised = ensure_manager(docker, advertise_addr).await?;
    let (network_created, network_id) = ensure_network(docker, network).await?;
    Ok(SwarmReport {
        swarm_initialised,
        network_created,
        network_id,
    })
}

async fn node_state(docker: &Docker) -> Result<(String, bool), SwarmError> {
    let info = docker.info().await.map_err(docker_err("reading engine info"))?;
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    Ok((state, swarm.control_available.unwrap_or(false)))
}

/// Returns true if this call initialised the swarm.
async fn ensure_manager(docker: &Docker, advertise_addr: &str) -> Result<bool, SwarmError> {
    let (state, manager) = node_state(docker).await?;
    match state.as_str() {
        "active" if manager => return Ok(false),
        "active" => {
            return Err(SwarmError::SwarmState {
                state: "active (worker)".into(),
                advice: "run this on a manager node, or promote this node with `docker node promote`".into(),
            })
        }
        "inactive" => {}
        other => {
            return Err(SwarmError::SwarmState {
                state: other.into(),
                advice: "inspect it with `docker info`; `locked` needs `docker swarm unlock`, \
                         `pending`/`error` may need `docker swarm leave --force` (destroys this node's swarm state)"
                    .into(),
            })
        }
    }
    let req = SwarmInitRequest {
        listen_addr: Some("0.0.0.0:2377".into()),
        advertise_addr: Some(advertise_addr.into()),
        ..Default::default()
    };
    match docker.init_swarm(req).await {
        Ok(_) => Ok(true),
        Err(e) => {
            // A concurrent run may have won the race: the engine answers
            // "already part of a swarm" (503). Re-read the state.
            let (state, manager) = node_state(docker).await?;
            if state == "active" && manager {
                Ok(false)
            } else {
                Err(SwarmError::Docker {
                    context: "initialising the swarm".into(),
                    source: e,
                })
            }
        }
    }
}

/// Returns (created, id).
async fn ensure_network(docker: &Docker, name: &str) -> Result<(bool, String), SwarmError> {
    let _lock = HostLock::acquire("swarm-network").await?;
    if let Some(id) = find_network(docker, name).await? {
        return Ok((false, id));
    }
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("overlay".into()),
        attachable: Some(true),
        ..Default::default()
    };
    match docker.create_network(req).await {
        Ok(resp) => Ok((true, resp.id)),
        Err(e) => {
            // Another host-lock-less client may have created it meanwhile.
            match find_network(docker, name).await? {
                Some(id) => Ok((false, id)),
                None => Err(SwarmError::Docker {
                    context: format!("creating overlay network `{name}`"),
                    source: e,
                }),
            }
        }
    }
}

/// The id of the usable network called exactly `name`, if one exists.
async fn find_network(docker: &Docker, name: &str) -> Result<Option<String>, SwarmError> {
    let mut filters = std::collections::HashMap::new();
    filters.insert("name".to_string(), vec![name.to_string()]);
    let nets = docker
        .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
        .await
        .map_err(docker_err("listing networks"))?;
    // The name filter matches substrings; keep exact matches.
    let exact: Vec<_> = nets.into_iter().filter(|n| n.name.as_deref() == Some(name)).collect();
    let bad = |problem: String| SwarmError::BadNetwork {
        name: name.to_string(),
        problem,
    };
    if exact.len() > 1 {
        return Err(bad(format!("{} networks have that name; keep one", exact.len())));
    }
    let Some(net) = exact.into_iter().next() else {
        return Ok(None);
    };
    let (mut driver, mut attachable) = (net.driver.clone().unwrap_or_default(), net.attachable);
    // Right after another client created a swarm network, Docker 20.10 can
    // list it with an empty driver for a moment: ask the network itself,
    // briefly, before judging it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while driver.is_empty() && std::time::Instant::now() < deadline {
        let id = net.id.clone().unwrap_or_else(|| name.to_string());
        match docker.inspect_network(&id, None::<InspectNetworkOptions>).await {
            Ok(n) => {
                driver = n.driver.unwrap_or_default();
                attachable = n.attachable;
            }
            Err(e) => return Err(docker_err("inspecting the network")(e)),
        }
        if driver.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    if driver != "overlay" {
        return Err(bad(format!("uses driver `{driver}`, not `overlay`")));
    }
    if attachable != Some(true) {
        return Err(bad("is not attachable".into()));
    }
    Ok(net.id)
}
