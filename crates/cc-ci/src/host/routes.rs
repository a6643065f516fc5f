//! `traefik-deploy routes`: Traefik routes to services that run on the host
//! itself, outside the swarm (Buildbot's web UI, the bridge's `/hook`, the
//! dashboard), on the wildcard certificate.
//!
//! Traefik (the Co-op Cloud traefik recipe) is a swarm service and the only
//! thing on 443; its swarm provider makes routers only from the deploy
//! labels of swarm services with a running task. So the routes are the
//! deploy labels of one small stack (default `cc-ci-routes`) whose single
//! service, [`SERVICE`], runs one task of a helper image that only sleeps
//! (`sh` and `sleep`, as busybox has them), on the external `proxy` network.
//! Each route is a router
//!
//! ```text
//! traefik.http.routers.<name>.rule=Host(`<host>`)[ && PathPrefix(`<prefix>`)]
//! traefik.http.routers.<name>.entrypoints=web-secure
//! traefik.http.routers.<name>.tls=true
//! traefik.http.routers.<name>.service=<name>
//! traefik.http.services.<name>.loadbalancer.server.url=http://<gateway>:<port>
//! ```
//!
//! (labels of Traefik's swarm provider, `doc.traefik.io/traefik/routing/
//! providers/swarm/`: with `loadbalancer.server.url` the server is that URL,
//! not the task's address). `tls=true` without a cert resolver makes
//! Traefik pick the certificate by SNI, which in wildcard mode is its
//! default certificate, the wildcard one. `<gateway>` is the host's address
//! on `docker_gwbridge`, the bridge through which a swarm task's container
//! reaches the host (its IPAM gateway, `172.18.0.1` by default): the host
//! service must listen there (or on `0.0.0.0`) and the firewall must let
//! `docker_gwbridge` in. Measured with the real Traefik v3.7.15 on a
//! single-node swarm: such a router serves the host's page; a service with
//! `replicas: 0` gets no router at all, hence the sleeping task.
//!
//! [`apply`] is idempotent. The service carries [`SPEC_LABEL`], a digest of
//! everything deployed; when the live service carries the same digest and
//! one replica, nothing is deployed (`docker stack deploy` itself would bump
//! the service's `Version.Index` even for an unchanged file). Routes left
//! out of the arguments disappear with the next deploy (the labels are the
//! whole set); no routes at all removes the stack. The image is never
//! pulled (`--resolve-image never`; it must be on the host). Then every
//! route is asked through Traefik's address, with SNI and `Host` = the
//! route's host, trusting only the given CA ([`crate::probe::serve`]), until
//! it answers with anything from the host service (any status, 401 and 403
//! included) rather than Traefik's own 404 or 502/504.
//!
//! The stack is not a test app: its name is refused when the janitor's
//! test-app pattern (`<label>-<6 hex>_<wildcard>`) could match it
//! ([`janitor_could_take`]), and its service is labelled
//! [`ROLE_LABEL`]`=`[`ROLE`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bollard::Docker;
use sha2::{Digest, Sha256};

use crate::deploy::stack;
use crate::probe::serve::{self, ExpectStatus, Failure, ServeSpec, Verdict};

/// The service of the routes stack (`<stack>_routes`).
pub const SERVICE: &str = "routes";
/// The default stack name.
pub const DEFAULT_STACK: &str = "cc-ci-routes";
/// Traefik's TLS entrypoint in the Co-op Cloud traefik recipe.
pub const ENTRYPOINT: &str = "web-secure";
/// The overlay network Traefik watches (the recipe's external `proxy`).
pub const PROXY_NETWORK: &str = "proxy";
/// The bridge network through which a swarm task's container reaches the
/// host; its IPAM gateway is the host's address on it.
pub const GWBRIDGE: &str = "docker_gwbridge";
/// Service label holding the digest (16 hex digits of SHA-256) of the
/// deployed compose file without this label.
pub const SPEC_LABEL: &str = "cc-ci.routes.spec";
/// Service label naming what the stack is.
pub const ROLE_LABEL: &str = "cc-ci.role";
/// The value of [`ROLE_LABEL`]: the host's routes, not a test app.
pub const ROLE: &str = "host-routes";
/// The command of the helper task: sleeps forever, and exits at once on
/// SIGTERM (a bare `sleep` as PID 1 ignores it, so every update or removal
/// would wait out the stop grace period). Needs `sh` and `sleep` (busybox).
/// No `$`: `docker stack deploy` would interpolate it.
pub const SLEEP_SCRIPT: &str = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait; done";
/// CPU limit of the helper task, in CPUs (as compose writes it).
pub const CPU_LIMIT: &str = "0.05";
/// Memory limit of the helper task (compose byte notation).
pub const MEMORY_LIMIT: &str = "16M";
/// How long each attempt of the serve check may take. Traefik's own dial
/// timeout is 30 s, so a firewall dropping packets shows as no answer here
/// rather than as Traefik's 504.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "write it as <host>[/<path-prefix>]=<port>, e.g. --route builds.ci.example.org=8010 \
                     or --route hooks.ci.example.org/hook=8081";

/// Why a `--route` argument is not a route. The message names the argument
/// and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--route {arg:?}: {problem}; {USAGE}")]
pub struct RouteError {
    /// The argument as given.
    pub arg: String,
    /// What is wrong with it.
    pub problem: String,
}

/// One route: requests for `host` (and, with a prefix, paths starting with
/// it) go to the host service on `port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The DNS name, lowercase (`builds.ci.example.org`).
    pub host: String,
    /// A path prefix starting with `/` (`/hook`), or `None` for the whole host.
    pub path_prefix: Option<String>,
    /// The TCP port the host service listens on.
    pub port: u16,
}

impl FromStr for Route {
    type Err = RouteError;

    /// Parses `<host>[/<path-prefix>]=<port>`: host a DNS name of at least
    /// two labels (letters, digits, `-`; lowercased), path prefix of
    /// RFC 3986 unreserved characters and `/` (a lone `/` means none),
    /// port 1-65535.
    fn from_str(arg: &str) -> Result<Route, RouteError> {
        let err = |problem: String| RouteError {
            arg: arg.to_string(),
            problem,
        };
        let (target, port) = arg.rsplit_once('=').ok_or_else(|| err("no `=<port>`".into()))?;
        let port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| err(format!("port {port:?} is not a number from 1 to 65535")))?;
        let (host, path) = match target.find('/') {
            Some(i) => (&target[..i], Some(&target[i..])),
            None => (target, None),
        };
        let host = host.trim().to_ascii_lowercase();
        if let Some(problem) = host_problem(&host) {
            return Err(err(problem));
        }
        let path_prefix = match path {
            None | Some("/") => None,
            Some(p) => {
                if let Some(c) = p
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.' | '_' | '~')))
                {
                    return Err(err(format!(
                        "the path prefix {p:?} has {c:?}; only letters, digits, `/`, `-`, `.`, `_` and `~` may be used"
                    )));
                }
                if p.contains("//") {
                    return Err(err(format!("the path prefix {p:?} has an empty segment (`//`)")));
                }
                Some(p.to_string())
            }
        };
        Ok(Route {
            host,
            path_prefix,
            port,
        })
    }
}

fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("no host before `=`".into());
    }
    if host.len() > 253 {
        return Some(format!("the host {host:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Some(format!(
            "the host {host:?} is not a full domain name (e.g. builds.ci.example.org)"
        ));
    }
    for l in labels {
        if l.is_empty() || l.len() > 63 {
            return Some(format!("the host {host:?} has an empty or over-long (>63) label"));
        }
        if !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || l.starts_with('-') || l.ends_with('-') {
            return Some(format!(
                "the host {host:?} is not a DNS name (labels of letters, digits and inner `-`; no wildcards)"
            ));
        }
    }
    None
}

impl fmt::Display for Route {
    /// `<host>[<prefix>]=<port>`, the argument's own form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}={}",
            self.host,
            self.path_prefix.as_deref().unwrap_or(""),
            self.port
        )
    }
}

impl Route {
    /// The Traefik rule: ``Host(`h`)``, with ``&& PathPrefix(`/p`)`` when
    /// the route has a prefix.
    pub fn rule(&self) -> String {
        match &self.path_prefix {
            Some(p) => format!("Host(`{}`) && PathPrefix(`{p}`)", self.host),
            None => format!("Host(`{}`)", self.host),
        }
    }

    /// The URL the route is checked at: `https://<host><prefix or />`.
    pub fn public_url(&self) -> String {
        format!("https://{}{}", self.host, self.path_prefix.as_deref().unwrap_or("/"))
    }

    /// The host service's URL as Traefik reaches it: `http://<gateway>:<port>`
    /// (an IPv6 gateway in brackets).
    pub fn backend_url(&self, gateway: IpAddr) -> String {
        format!("http://{}", SocketAddr::new(gateway, self.port))
    }

    /// The router (and Traefik service) name: `<stack>-<host>[-<prefix>]`
    /// with every character other than ASCII letters and digits as `-`
    /// (`cc-ci-routes-hooks-ci-example-org-hook`). Unique per stack as long
    /// as the sanitised forms differ ([`labels`] checks).
    pub fn router_name(&self, stack: &str) -> String {
        let raw = format!("{stack}-{}{}", self.host, self.path_prefix.as_deref().unwrap_or(""));
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        out.trim_end_matches('-').to_string()
    }
}

/// Where Traefik's task reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// The IPAM gateway of [`GWBRIDGE`], looked up through the Engine API.
    Auto,
    /// This address.
    Ip(IpAddr),
}

impl FromStr for Gateway {
    type Err = String;
    fn from_str(s: &str) -> Result<Gateway, String> {
        if s == "auto" {
            return Ok(Gateway::Auto);
        }
        s.parse().map(Gateway::Ip).map_err(|_| {
            format!("--gateway {s:?} is neither `auto` nor an IP address; pass e.g. --gateway 172.18.0.1 or auto (the gateway of {GWBRIDGE})")
        })
    }
}

/// Why the routes could not be set up; every message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// Two routes for the same host and prefix, or with the same router name.
    #[error("--route {first} and --route {second} {why}; give each host and path prefix once")]
    Duplicate {
        /// The earlier route.
        first: Box<Route>,
        /// The later route.
        second: Box<Route>,
        /// Same route, or same router name.
        why: &'static str,
    },
    /// The stack name is unusable.
    #[error("--stack {stack:?}: {problem}")]
    Stack {
        /// The name.
        stack: String,
        /// What is wrong and the fix.
        problem: String,
    },
    /// The CA file is unusable (checked before anything is deployed).
    #[error("--ca-cert {}: {problem}; pass the PEM certificate of the CA that issued the wildcard certificate", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The gateway of docker_gwbridge could not be had.
    #[error("cannot find the host's address on {GWBRIDGE}: {detail}; is this node in a swarm (swarm-init makes it one)? Or pass --gateway <ip>")]
    Gateway {
        /// Why.
        detail: String,
    },
    /// The helper image is not on the host (and is never pulled).
    #[error("the helper image {image} is not on this host, and routes never pulls images; pull or load it first (`docker pull {image}`; on NixOS cc-ci-images.service pulls the helper image), or pass --image of one that is")]
    ImageNotOnHost {
        /// The image.
        image: String,
    },
    /// The Docker Engine API failed.
    #[error("Docker engine: {context}: {detail}; is dockerd running and is /var/run/docker.sock reachable?")]
    Docker {
        /// What was being done.
        context: String,
        /// The engine's answer.
        detail: String,
    },
    /// A file or folder could not be written.
    #[error("{context}: {source}; is $TMPDIR writable?")]
    Io {
        /// What was being written.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// `docker stack deploy` failed.
    #[error("docker stack deploy of {stack} failed: {detail}; is {cli} a docker CLI with the `stack` command (set CCCI_DOCKER_CLI or --docker-cli) and this node a swarm manager?")]
    StackDeploy {
        /// The stack.
        stack: String,
        /// The CLI.
        cli: String,
        /// Its output or why it could not run.
        detail: String,
    },
    /// The helper task did not come up.
    #[error("the routes service {stack}_{SERVICE} did not converge: {detail}; see `docker service ps --no-trunc {stack}_{SERVICE}` (the helper image needs `sh` and `sleep`, as busybox has)")]
    Converge {
        /// The stack.
        stack: String,
        /// What convergence said.
        detail: String,
    },
    /// Removing the stack left objects behind.
    #[error("removing stack {stack} left {left}; run `docker stack rm {stack}` and see what refuses")]
    Teardown {
        /// The stack.
        stack: String,
        /// What is left and why.
        left: String,
    },
    /// Some routes did not serve in time.
    #[error("{} of the routes did not serve through Traefik at {addr} within {} s:\n{}", failures.len(), wait.as_secs(), failures.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n"))]
    NotServing {
        /// Traefik's address.
        addr: SocketAddr,
        /// The wait.
        wait: Duration,
        /// Each failing route, with why.
        failures: Vec<RouteFailure>,
    },
}

/// How a route failed its serve check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Traefik has the router but could not reach the host service:
    /// Traefik's own 502 (connection failed) or 504 (timed out).
    Unreachable {
        /// 502 or 504.
        status: u16,
    },
    /// No answer within [`ATTEMPT_TIMEOUT`]: Traefik is most likely still
    /// dialling the host service (packets dropped).
    NoAnswer,
    /// Traefik's own 404: no router for the route (yet).
    NoRouter,
    /// Anything else (certificate, TLS, Traefik unreachable): the serve
    /// check's own words.
    Other(String),
}

/// A route that did not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFailure {
    /// The route.
    pub route: Route,
    /// Its backend URL (`http://<gateway>:<port>`).
    pub backend: String,
    /// The stack, for the hints.
    pub stack: String,
    /// Why.
    pub kind: FailureKind,
}

impl fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.route.public_url();
        let backend = &self.backend;
        let port = self.route.port;
        let fix = format!(
            "check that the service listens on port {port} on an address reachable from {GWBRIDGE} \
             (0.0.0.0 or the gateway address, not 127.0.0.1) and that the firewall allows {GWBRIDGE} \
             (NixOS: networking.firewall.trustedInterfaces = [ \"{GWBRIDGE}\" ])"
        );
        match &self.kind {
            FailureKind::Unreachable { status } => write!(
                f,
                "{url}: Traefik could not reach {backend} ({status} from Traefik itself); {fix}"
            ),
            FailureKind::NoAnswer => write!(
                f,
                "{url}: no answer within {} s, Traefik is still waiting on {backend}; {fix}",
                ATTEMPT_TIMEOUT.as_secs()
            ),
            FailureKind::NoRouter => write!(
                f,
                "{url}: Traefik answers its own 404, it has no router for this route; is the routes service \
                 running (`docker service ps {stack}_{SERVICE}`) on the `{PROXY_NETWORK}` network? Traefik's \
                 swarm provider sees label changes within its refresh interval (15 s by default)",
                stack = self.stack
            ),
            FailureKind::Other(why) => write!(f, "{url} (to {backend}): {why}"),
        }
    }
}

/// What [`apply`] is asked to do.
#[derive(Debug, Clone)]
pub struct RoutesOptions {
    /// The stack (default [`DEFAULT_STACK`]).
    pub stack: String,
    /// The helper image (must be on the host; never pulled).
    pub image: String,
    /// The routes; empty removes the stack.
    pub routes: Vec<Route>,
    /// Where Traefik reaches the host.
    pub gateway: Gateway,
    /// Traefik's web-secure address to check the routes through.
    pub addr: SocketAddr,
    /// PEM file of the CA that issued the wildcard certificate; nothing
    /// else is trusted.
    pub ca_cert: PathBuf,
    /// How long to wait for the helper task and then for every route.
    pub wait: Duration,
    /// The docker CLI that runs `docker stack deploy`.
    pub docker_cli: PathBuf,
}

/// What was done to the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created or updated by `docker stack deploy`.
    Deployed,
    /// The live service already carried this spec: nothing deployed.
    Unchanged,
    /// No routes: the stack was removed (or was absent).
    Removed,
}

/// A route that serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The route.
    pub route: Route,
    /// Its backend URL.
    pub backend: String,
    /// The status the host service answered with.
    pub status: u16,
    /// Seconds from the start of the wait until it served.
    pub waited_s: f64,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutesReport {
    /// What was done to the stack.
    pub change: Change,
    /// The gateway used (None when the stack was removed).
    pub gateway: Option<IpAddr>,
    /// Each route, serving.
    pub served: Vec<Served>,
    /// Objects removed (with [`Change::Removed`]), as `kind name`.
    pub removed: Vec<String>,
    /// Seconds spent deploying and converging, or removing the stack (0
    /// when unchanged).
    pub deploy_s: f64,
}

/// Whether the janitor's test-app pattern (`<label>-<6 hex>_<wildcard
/// suffix>`, [`crate::host::janitor::is_test_app`]) could match `stack`
/// for some wildcard domain: a name ending its first `_`-less part in
/// `-<6 hex>` followed by `_`.
pub fn janitor_could_take(stack: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new("^[a-z0-9-]*-[0-9a-f]{6}_").expect("valid regex"))
        .is_match(stack)
}

/// Checks a stack name: lowercase letters, digits, `-` and `_`, starting
/// with a letter or digit, at most 40 characters (the service name
/// `<stack>_routes` stays within Docker's 63), and not shaped like a test
/// app ([`janitor_could_take`]).
///
/// # Errors
/// [`RoutesError::Stack`] naming the problem and the fix.
pub fn check_stack(stack: &str) -> Result<(), RoutesError> {
    let bad = |problem: String| {
        Err(RoutesError::Stack {
            stack: stack.to_string(),
            problem,
        })
    };
    let ok_chars = stack
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if stack.is_empty() || stack.len() > 40 || !ok_chars || !stack.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad(format!(
            "a stack name is 1-40 lowercase letters, digits, `-` and `_`, starting with a letter or digit; pass e.g. --stack {DEFAULT_STACK}"
        ));
    }
    if janitor_could_take(stack) {
        return bad(format!(
            "it is shaped like a test app (`<label>-<6 hex>_...`), which the janitor reaps; pass e.g. --stack {DEFAULT_STACK}"
        ));
    }
    Ok(())
}

/// The service's deploy labels for `routes` reaching the host at
/// `gateway`: `traefik.enable=true`, [`ROLE_LABEL`], and per route the
/// router (rule, entrypoint [`ENTRYPOINT`], `tls=true`, its service) and
/// the service's `loadbalancer.server.url` (see the module doc). Without
/// [`SPEC_LABEL`], which [`compose`] adds.
///
/// # Errors
/// [`RoutesError::Duplicate`] when two routes have the same host and
/// prefix, or the same router name.
pub fn labels(stack: &str, routes: &[Route], gateway: IpAddr) -> Result<BTreeMap<String, String>, RoutesError> {
    let mut out = BTreeMap::new();
    out.insert("traefik.enable".to_string(), "true".to_string());
    out.insert(ROLE_LABEL.to_string(), ROLE.to_string());
    let mut seen: BTreeMap<String, &Route> = BTreeMap::new();
    let mut targets: BTreeMap<(&str, Option<&str>), &Route> = BTreeMap::new();
    for r in routes {
        if let Some(first) = targets.insert((&r.host, r.path_prefix.as_deref()), r) {
            return Err(RoutesError::Duplicate {
                first: Box::new(first.clone()),
                second: Box::new(r.clone()),
                why: "are for the same host and path prefix",
            });
        }
        let name = r.router_name(stack);
        if let Some(first) = seen.insert(name.clone(), r) {
            return Err(RoutesError::Duplicate {
                first: Box::new(first.clone()),
                second: Box::new(r.clone()),
                why: "give the same router name once `.`, `/` and `-` are alike",
            });
        }
        let router = format!("traefik.http.routers.{name}");
        out.insert(format!("{router}.rule"), r.rule());
        out.insert(format!("{router}.entrypoints"), ENTRYPOINT.to_string());
        out.insert(format!("{router}.tls"), "true".to_string());
        out.insert(format!("{router}.service"), name.clone());
        out.insert(
            format!("traefik.http.services.{name}.loadbalancer.server.url"),
            r.backend_url(gateway),
        );
    }
    Ok(out)
}

/// The compose file of the stack, as JSON (which the docker CLI's YAML
/// loader reads), with [`SPEC_LABEL`] set to the digest of the same file
/// without it; returns `(file, digest)`. Compose format `3.8` (the 20.10
/// CLI needs a `version:`).
pub fn compose(image: &str, labels: &BTreeMap<String, String>) -> (String, String) {
    let render = |labels: &BTreeMap<String, String>| {
        let doc = serde_json::json!({
            "version": "3.8",
            "services": {
                SERVICE: {
                    "image": image,
                    "command": ["sh", "-c", SLEEP_SCRIPT],
                    "networks": [PROXY_NETWORK],
                    "stop_grace_period": "5s",
                    "deploy": {
                        "mode": "replicated",
                        "replicas": 1,
                        "resources": {"limits": {"cpus": CPU_LIMIT, "memory": MEMORY_LIMIT}},
                        "restart_policy": {"condition": "any", "delay": "5s"},
                        "labels": labels,
                    },
                },
            },
            "networks": {PROXY_NETWORK: {"external": true}},
        });
        serde_json::to_string_pretty(&doc).expect("JSON of strings")
    };
    let digest = hex::encode(Sha256::digest(render(labels).as_bytes()))[..16].to_string();
    let mut with = labels.clone();
    with.insert(SPEC_LABEL.to_string(), digest.clone());
    (render(&with), digest)
}

/// The IPAM gateway of [`GWBRIDGE`]: the host's address as a swarm task's
/// container sees it.
///
/// # Errors
/// [`RoutesError::Gateway`] when the network is absent or has no gateway.
pub async fn gwbridge_gateway(docker: &Docker) -> Result<IpAddr, RoutesError> {
    let net = docker
        .inspect_network(GWBRIDGE, None::<bollard::query_parameters::InspectNetworkOptions>)
        .await
        .map_err(|e| RoutesError::Gateway {
            detail: match stack::status_of(&e) {
                Some(404) => format!("the network {GWBRIDGE} does not exist"),
                _ => e.to_string(),
            },
        })?;
    let gateways: Vec<String> = net
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.gateway)
        .collect();
    gateways
        .iter()
        .filter_map(|g| g.parse::<IpAddr>().ok())
        .min_by_key(|ip| ip.is_ipv6())
        .ok_or_else(|| RoutesError::Gateway {
            detail: format!("its IPAM config names no gateway address ({gateways:?})"),
        })
}

/// The live routes service's [`SPEC_LABEL`] when it runs one replica, and
/// its `Version.Index`; `None` when there is no such service.
///
/// # Errors
/// [`RoutesError::Docker`].
pub async fn live_spec(docker: &Docker, stack: &str) -> Result<Option<(Option<String>, u64)>, RoutesError> {
    let name = format!("{stack}_{SERVICE}");
    let svc = match docker.inspect_service(&name, None).await {
        Ok(s) => s,
        Err(e) if stack::status_of(&e) == Some(404) => return Ok(None),
        Err(e) => {
            return Err(RoutesError::Docker {
                context: format!("inspecting service {name}"),
                detail: e.to_string(),
            })
        }
    };
    let version = svc.version.and_then(|v| v.index).unwrap_or(0);
    let spec = svc.spec.unwrap_or_default();
    let one = spec.mode.and_then(|m| m.replicated).and_then(|r| r.replicas) == Some(1);
    let digest = spec.labels.unwrap_or_default().get(SPEC_LABEL).cloned();
    Ok(Some((digest.filter(|_| one), version)))
}

async fn image_present(docker: &Docker, image: &str) -> Result<(), RoutesError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(stack::status_of(&e), Some(404) | Some(400)) => Err(RoutesError::ImageNotOnHost {
            image: image.to_string(),
        }),
        Err(e) => Err(RoutesError::Docker {
            context: format!("inspecting image {image}"),
            detail: e.to_string(),
        }),
    }
}

/// Runs `docker stack deploy --resolve-image never -c <file> <stack>`
/// with only PATH and DOCKER_* of this environment, and an empty
/// `DOCKER_CONFIG` (no credentials are needed: nothing is pulled).
async fn stack_deploy(opts: &RoutesOptions, file_text: &str) -> Result<(), RoutesError> {
    let dir = tempfile::Builder::new()
        .prefix("cc-ci-routes-")
        .tempdir()
        .map_err(|source| RoutesError::Io {
            context: "making a temporary folder for the compose file".into(),
            source,
        })?;
    let file = dir.path().join("compose.routes.json");
    std::fs::write(&file, file_text).map_err(|source| RoutesError::Io {
        context: format!("writing {}", file.display()),
        source,
    })?;
    let mut cmd = tokio::process::Command::new(&opts.docker_cli);
    cmd.args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&file)
        .arg(&opts.stack)
        .current_dir(dir.path())
        .env_clear();
    for k in [
        "PATH",
        "DOCKER_HOST",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "DOCKER_API_VERSION",
    ] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("DOCKER_CONFIG", dir.path()).kill_on_drop(true);
    let err = |detail: String| RoutesError::StackDeploy {
        stack: opts.stack.clone(),
        cli: opts.docker_cli.display().to_string(),
        detail,
    };
    let out = cmd.output().await.map_err(|e| err(format!("cannot run it ({e})")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_string()))
    }
}

/// Asks `route` through Traefik until it serves or `deadline` passes.
async fn serve_route(
    opts: &RoutesOptions,
    route: &Route,
    gateway: IpAddr,
    start: Instant,
    deadline: Instant,
) -> Result<Served, RouteFailure> {
    let mut spec = ServeSpec::new(route.host.clone(), opts.ca_cert.clone());
    spec.traefik = opts.addr;
    spec.path = route.path_prefix.clone().unwrap_or_else(|| "/".into());
    // Any answer of the host service counts (401, 403, 405 ...); Traefik's
    // own 404 and 502/503/504 never do (serve::judge tells them apart).
    spec.expect = ExpectStatus::AnyOf((100..=599).collect());
    spec.timeout = ATTEMPT_TIMEOUT;
    let backend = route.backend_url(gateway);
    let fail = |kind| RouteFailure {
        route: route.clone(),
        backend: backend.clone(),
        stack: opts.stack.clone(),
        kind,
    };
    loop {
        spec.readiness = deadline.saturating_duration_since(Instant::now());
        let report = serve::check(&spec).await;
        let kind = match report.verdict {
            Verdict::Pass(s) => {
                return Ok(Served {
                    route: route.clone(),
                    backend,
                    status: s.status,
                    waited_s: start.elapsed().as_secs_f64(),
                })
            }
            Verdict::Fail(Failure::TraefikNotFound { .. }) => FailureKind::NoRouter,
            Verdict::Fail(Failure::NoHealthyBackend {
                status: status @ (502 | 504),
                from_traefik: true,
                ..
            }) => FailureKind::Unreachable { status },
            Verdict::Fail(Failure::Timeout { .. }) => FailureKind::NoAnswer,
            other => FailureKind::Other(other.to_string()),
        };
        // A timed-out attempt is "not yet" to serve::check, but it may
        // return early with budget left; go on until the deadline.
        if Instant::now() >= deadline || matches!(kind, FailureKind::Other(_)) {
            return Err(fail(kind));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Brings the routes stack to `opts` (see the module doc) and waits until
/// every route serves.
///
/// # Errors
/// [`RoutesError`]: a bad stack name, duplicate routes or an unusable CA
/// file (before anything is touched), no gateway, the image missing, the deploy or convergence
/// failing, removal leaving objects, or routes not serving within
/// `opts.wait` (each named, with why and the fix).
pub async fn apply(docker: &Docker, opts: &RoutesOptions) -> Result<RoutesReport, RoutesError> {
    check_stack(&opts.stack)?;
    let start = Instant::now();
    let deadline = start + opts.wait;
    if opts.routes.is_empty() {
        let r = stack::teardown(docker, &opts.stack, opts.wait)
            .await
            .map_err(|e| RoutesError::Docker {
                context: format!("removing stack {}", opts.stack),
                detail: e.to_string(),
            })?;
        if !r.is_clean() {
            return Err(RoutesError::Teardown {
                stack: opts.stack.clone(),
                left: r
                    .left
                    .iter()
                    .map(|l| format!("{:?} {} ({})", l.object.kind, l.object.name, l.reason))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        return Ok(RoutesReport {
            change: Change::Removed,
            gateway: None,
            served: Vec::new(),
            removed: r
                .removed
                .iter()
                .map(|o| format!("{:?} {}", o.kind, o.name).to_lowercase())
                .collect(),
            deploy_s: start.elapsed().as_secs_f64(),
        });
    }
    serve::ca_roots(&opts.ca_cert).map_err(|problem| RoutesError::CaCert {
        path: opts.ca_cert.clone(),
        problem,
    })?;
    let gateway = match opts.gateway {
        Gateway::Ip(ip) => ip,
        Gateway::Auto => gwbridge_gateway(docker).await?,
    };
    let labels = labels(&opts.stack, &opts.routes, gateway)?;
    let (file, digest) = compose(&opts.image, &labels);
    let live = live_spec(docker, &opts.stack).await?;
    let change = if live.as_ref().and_then(|(d, _)| d.as_deref()) == Some(digest.as_str()) {
        Change::Unchanged
    } else {
        image_present(docker, &opts.image).await?;
        stack_deploy(opts, &file).await?;
        crate::deploy::converge::wait_converged(
            docker,
            &opts.stack,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
        .map_err(|e| RoutesError::Converge {
            stack: opts.stack.clone(),
            detail: e.to_string(),
        })?;
        Change::Deployed
    };
    let deploy_s = if change == Change::Deployed {
        start.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let serve_start = Instant::now();
    let results = futures_util::future::join_all(
        opts.routes
            .iter()
            .map(|r| serve_route(opts, r, gateway, serve_start, deadline)),
    )
    .await;
    let mut served = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(s) => served.push(s),
            Err(f) => failures.push(f),
        }
    }
    if !failures.is_empty() {
        return Err(RoutesError::NotServing {
            addr: opts.addr,
            wait: opts.wait,
            failures,
        });
    }
    Ok(RoutesReport {
        change,
        gateway: Some(gateway),
        served,
        removed: Vec::new(),
        deploy_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::janitor;

    fn route(s: &str) -> Route {
        s.parse().unwrap()
    }

    #[test]
    fn routes_parse() {
        assert_eq!(
            route("builds.ci.example.org=8010"),
            Route {
                host: "builds.ci.example.org".into(),
                path_prefix: None,
                port: 8010
            }
        );
        assert_eq!(
            route("Hooks.CI.example.org/hook=8081"),
            Route {
                host: "hooks.ci.example.org".into(),
                path_prefix: Some("/hook".into()),
                port: 8081
            }
        );
        assert_eq!(route("a.b/=1").path_prefix, None, "a lone / is the whole host");
        assert_eq!(route("a.b/x/y_z.~-=65535").path_prefix.as_deref(), Some("/x/y_z.~-"));
        assert_eq!(
            route("hooks.ci.example.org/hook=8081").to_string(),
            "hooks.ci.example.org/hook=8081"
        );
    }

    #[test]
    fn bad_routes_name_the_argument_and_the_fix() {
        for (arg, problem) in [
            ("builds.ci.example.org", "no `=<port>`"),
            ("builds.ci.example.org=", "is not a number from 1 to 65535"),
            ("builds.ci.example.org=0", "is not a number from 1 to 65535"),
            ("builds.ci.example.org=65536", "is not a number from 1 to 65535"),
            ("builds.ci.example.org=http", "is not a number"),
            ("=8010", "no host"),
            ("/hook=8010", "no host"),
            ("builds=8010", "not a full domain name"),
            ("*.ci.example.org=8010", "not a DNS name"),
            ("-a.ci.example.org=8010", "not a DNS name"),
            ("a_b.ci.example.org=8010", "not a DNS name"),
            ("a..b=8010", "empty or over-long"),
            ("a.b/ho`ok=8010", "has '`'"),
            ("a.b/ho ok=8010", "has ' '"),
            ("a.b/a//b=8010", "empty segment"),
            ("a.b/$x=8010", "has '$'"),
        ] {
            let e = arg.parse::<Route>().unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with(&format!("--route {arg:?}: ")), "{text}");
            assert!(text.contains(problem), "{arg}: {text}");
            assert!(
                text.contains("write it as <host>[/<path-prefix>]=<port>, e.g. --route builds.ci.example.org=8010"),
                "{text}"
            );
        }
        let long = format!("{}.org=1", "a".repeat(64));
        assert!(long.parse::<Route>().unwrap_err().to_string().contains("over-long"));
    }

    #[test]
    fn gateways_parse() {
        assert_eq!("auto".parse(), Ok(Gateway::Auto));
        assert_eq!("172.18.0.1".parse(), Ok(Gateway::Ip("172.18.0.1".parse().unwrap())));
        let e = "gw".parse::<Gateway>().unwrap_err();
        assert!(e.contains("--gateway \"gw\"") && e.contains("docker_gwbridge"), "{e}");
        let r = route("a.b=80");
        assert_eq!(r.backend_url("172.18.0.1".parse().unwrap()), "http://172.18.0.1:80");
        assert_eq!(r.backend_url("fd00::1".parse().unwrap()), "http://[fd00::1]:80");
    }

    #[test]
    fn labels_are_traefiks_swarm_provider_labels() {
        let gw: IpAddr = "172.18.0.1".parse().unwrap();
        let routes = [
            route("builds.ci.example.org=8010"),
            route("hooks.ci.example.org/hook=8081"),
        ];
        let l = labels("cc-ci-routes", &routes, gw).unwrap();
        let expect: BTreeMap<String, String> = [
            ("traefik.enable", "true"),
            ("cc-ci.role", "host-routes"),
            (
                "traefik.http.routers.cc-ci-routes-builds-ci-example-org.rule",
                "Host(`builds.ci.example.org`)",
            ),
            (
                "traefik.http.routers.cc-ci-routes-builds-ci-example-org.entrypoints",
                "web-secure",
            ),
            ("traefik.http.routers.cc-ci-routes-builds-ci-example-org.tls", "true"),
            (
                "traefik.http.routers.cc-ci-routes-builds-ci-example-org.service",
                "cc-ci-routes-builds-ci-example-org",
            ),
            (
                "traefik.http.services.cc-ci-routes-builds-ci-example-org.loadbalancer.server.url",
                "http://172.18.0.1:8010",
            ),
            (
                "traefik.http.routers.cc-ci-routes-hooks-ci-example-org-hook.rule",
                "Host(`hooks.ci.example.org`) && PathPrefix(`/hook`)",
            ),
            (
                "traefik.http.routers.cc-ci-routes-hooks-ci-example-org-hook.entrypoints",
                "web-secure",
            ),
            (
                "traefik.http.routers.cc-ci-routes-hooks-ci-example-org-hook.tls",
                "true",
            ),
            (
                "traefik.http.routers.cc-ci-routes-hooks-ci-example-org-hook.service",
                "cc-ci-routes-hooks-ci-example-org-hook",
            ),
            (
                "traefik.http.services.cc-ci-routes-hooks-ci-example-org-hook.loadbalancer.server.url",
                "http://172.18.0.1:8081",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(l, expect);
        assert!(!l.keys().any(|k| k.contains("certresolver")), "no cert resolver");
        // Same routes, other order: same labels (so the same digest).
        let rev: Vec<Route> = routes.iter().rev().cloned().collect();
        assert_eq!(labels("cc-ci-routes", &rev, gw).unwrap(), l);
    }

    #[test]
    fn duplicates_are_refused() {
        let gw: IpAddr = "172.18.0.1".parse().unwrap();
        let e = labels("s", &[route("a.b.c=1"), route("A.b.c=2")], gw).unwrap_err();
        assert!(
            e.to_string()
                .contains("--route a.b.c=1 and --route a.b.c=2 are for the same host and path prefix"),
            "{e}"
        );
        let e = labels("s", &[route("a-b.c.d=1"), route("a.b-c.d=2")], gw).unwrap_err();
        assert!(e.to_string().contains("same router name"), "{e}");
        // Same host, different prefixes: fine.
        labels("s", &[route("a.b=1"), route("a.b/x=2")], gw).unwrap();
    }

    #[test]
    fn the_digest_follows_the_spec() {
        let gw: IpAddr = "172.18.0.1".parse().unwrap();
        let l = labels("s", &[route("a.b=1")], gw).unwrap();
        let (file, d) = compose("busybox:1.36", &l);
        assert_eq!(d.len(), 16);
        assert_eq!(compose("busybox:1.36", &l), (file.clone(), d.clone()), "deterministic");
        assert_ne!(compose("busybox:1.37", &l).1, d, "the image counts");
        let l2 = labels("s", &[route("a.b=2")], gw).unwrap();
        assert_ne!(compose("busybox:1.36", &l2).1, d, "the port counts");
        let l3 = labels("s", &[route("a.b=1")], "172.19.0.1".parse().unwrap()).unwrap();
        assert_ne!(compose("busybox:1.36", &l3).1, d, "the gateway counts");
        let v: serde_json::Value = serde_json::from_str(&file).unwrap();
        let svc = &v["services"][SERVICE];
        assert_eq!(svc["deploy"]["labels"][SPEC_LABEL], d.as_str());
        assert_eq!(svc["deploy"]["replicas"], 1);
        assert_eq!(svc["networks"][0], PROXY_NETWORK);
        assert_eq!(v["networks"][PROXY_NETWORK]["external"], true);
        assert_eq!(svc["command"][2], SLEEP_SCRIPT);
        assert!(!file.contains('$'), "nothing for docker stack deploy to interpolate");
    }

    #[test]
    fn the_stack_is_never_a_test_app() {
        assert!(check_stack(DEFAULT_STACK).is_ok());
        let suffixes = ["ci.test", "ci.example.org", "x.ci.test", "routes"].map(janitor::stack_suffix);
        for s in suffixes.iter() {
            assert!(!janitor::is_test_app(DEFAULT_STACK, s), "{s}");
        }
        // Anything check_stack accepts, no janitor of any wildcard takes ...
        for stack in [
            "cc-ci-routes",
            "routes-0a1b2c",
            "routes-0a1b2c3d4e",
            "x-0a1b2c3_ci_test",
            "a_b",
        ] {
            assert!(check_stack(stack).is_ok(), "{stack}");
            for s in suffixes.iter() {
                assert!(!janitor::is_test_app(stack, s), "{stack} {s}");
            }
        }
        // ... and the test-app shaped are refused, naming why.
        for stack in ["web-0a1b2c_ci_test", "routes-abcdef_x"] {
            let e = check_stack(stack).unwrap_err().to_string();
            assert!(e.contains("shaped like a test app"), "{e}");
        }
        assert!(janitor::is_test_app(
            "web-0a1b2c_ci_test",
            &janitor::stack_suffix("ci.test")
        ));
        for bad in ["", "Routes", "-r", "a.b", &"a".repeat(41)] {
            let e = check_stack(bad).unwrap_err().to_string();
            assert!(e.contains("--stack") && e.contains("lowercase"), "{e}");
        }
    }

    #[test]
    fn failures_name_the_route_the_backend_and_the_fix() {
        let f = RouteFailure {
            route: route("hooks.ci.example.org/hook=8081"),
            backend: "http://172.18.0.1:8081".into(),
            stack: "cc-ci-routes".into(),
            kind: FailureKind::Unreachable { status: 502 },
        };
        let t = f.to_string();
        assert!(
            t.starts_with("https://hooks.ci.example.org/hook: Traefik could not reach http://172.18.0.1:8081 (502"),
            "{t}"
        );
        assert!(
            t.contains("listens on port 8081 on an address reachable from docker_gwbridge"),
            "{t}"
        );
        assert!(t.contains("firewall allows docker_gwbridge"), "{t}");
        let t = RouteFailure {
            kind: FailureKind::NoRouter,
            ..f
        }
        .to_string();
        assert!(t.contains("docker service ps cc-ci-routes_routes"), "{t}");
    }
}
