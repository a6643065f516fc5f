//! What Traefik itself says of an app's routers, for the serve rung's
//! reason when the app's domain meets Traefik's own 404.
//!
//! Traefik's 404 only says that no router matched the Host. Why is in
//! Traefik's runtime configuration, which its API serves
//! (`GET /api/http/routers`, Traefik v3's `pkg/api/handler_http.go`): each
//! router as `{"name": "<name>@swarm", "rule", "status":
//! "enabled"|"warning"|"disabled", "error": [..], "entryPoints", "middlewares",
//! "provider", ...}`, paginated by `page`/`per_page` with the next page in
//! the `X-Next-Page` header (`1` on the last page). A router whose
//! middleware does not exist is `disabled` with the error `middleware
//! "x@docker" does not exist` (Traefik 3 names swarm services' objects
//! `@swarm`); an entrypoint Traefik lacks gives `entryPoint "x" doesn't
//! exist`.
//!
//! Where the API is: Traefik on a cc-ci host serves it on the unpublished
//! entrypoint `api`, port [`API_PORT`], allowed to the host alone (the
//! Traefik fixture recipe's `api.yml`). The host reaches it on the Traefik
//! container's address on `docker_gwbridge` (the bridge every swarm task
//! gets for traffic off the node; inter-container traffic is off there), the
//! container being the one that publishes Traefik's web-secure port. A
//! Traefik without the API leaves the serve rung's reason as it was, saying
//! the API could not be asked.
//!
//! The app's routers are those its live services declare
//! (`traefik.http.routers.<name>.*` labels, [`declared`]); [`judge`] compares
//! them with Traefik's and says whether Traefik's view is final: a router in
//! error, or routers for other hosts only, once Traefik's rules equal the
//! live labels (else Traefik has not yet read the deploy: its swarm provider
//! polls every 15 s by default, `providers.swarm.refreshSeconds`); no router
//! at all once [`ABSENT_GRACE`] has passed since the check began.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The port of Traefik's `api` entrypoint on a cc-ci host (not published).
pub const API_PORT: u16 = 8080;
/// The bridge network through which the host reaches a swarm task's
/// container (Docker's name for it).
pub const GWBRIDGE: &str = "docker_gwbridge";
/// How long after a check began a router the app declares may be missing
/// from Traefik before that is final: Traefik's swarm provider polls every
/// 15 s by default (`providers.swarm.refreshSeconds`) and applies a change
/// after `providers.providersThrottleDuration` (2 s), plus slack.
pub const ABSENT_GRACE: Duration = Duration::from_secs(20);
/// The time one API request may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Routers asked for per page (Traefik's default is 100).
const PER_PAGE: usize = 1000;
/// Pages read at most.
const MAX_PAGES: usize = 20;

/// Why Traefik's view could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RoutersError {
    /// The Docker engine did not answer.
    #[error("Docker engine: {0}")]
    Docker(String),
    /// No running container publishes Traefik's port.
    #[error("no running container publishes Traefik's port {port}; is Traefik deployed (traefik-deploy)?")]
    NoTraefik {
        /// The published port looked for.
        port: u16,
    },
    /// The Traefik container has no address on `docker_gwbridge`.
    #[error("the Traefik container {container} has no address on {GWBRIDGE}")]
    NoAddress {
        /// The container id.
        container: String,
    },
    /// The API did not answer as Traefik's does.
    #[error("Traefik's API at http://{addr}/api/http/routers: {detail}; does Traefik serve its API on port {API_PORT} to the host (the Traefik recipe's api.yml)?")]
    Api {
        /// The address asked.
        addr: SocketAddr,
        /// What went wrong.
        detail: String,
    },
}

/// One router as Traefik's API lists it (the fields read here).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Router {
    /// `<name>@<provider>`, e.g. `app_ci_test@swarm`.
    pub name: String,
    /// The rule, as configured.
    #[serde(default)]
    pub rule: String,
    /// `enabled`, `warning` or `disabled`.
    #[serde(default)]
    pub status: String,
    /// Traefik's complaints about it.
    #[serde(default)]
    pub error: Vec<String>,
    /// Its entrypoints.
    #[serde(default, rename = "entryPoints")]
    pub entry_points: Vec<String>,
    /// Its middlewares, as configured.
    #[serde(default)]
    pub middlewares: Vec<String>,
}

impl Router {
    /// The name without `@<provider>`.
    pub fn bare_name(&self) -> &str {
        self.name.split_once('@').map_or(self.name.as_str(), |(n, _)| n)
    }
}

/// Traefik's API on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraefikApi {
    /// Where it listens (the container's `docker_gwbridge` address, [`API_PORT`]).
    pub addr: SocketAddr,
}

impl TraefikApi {
    /// Finds Traefik's API: the running container publishing `web_port`
    /// (Traefik's web-secure port, 443), at its `docker_gwbridge` address.
    ///
    /// # Errors
    /// [`RoutersError::Docker`], [`RoutersError::NoTraefik`],
    /// [`RoutersError::NoAddress`].
    pub async fn locate(docker: &Docker, web_port: u16) -> Result<TraefikApi, RoutersError> {
        let filters = std::collections::HashMap::from([
            ("publish".to_string(), vec![format!("{web_port}/tcp")]),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        let containers = docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| RoutersError::Docker(e.to_string()))?;
        let id = containers
            .into_iter()
            .find_map(|c| c.id)
            .ok_or(RoutersError::NoTraefik { port: web_port })?;
        let net = docker
            .inspect_network(GWBRIDGE, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
            .map_err(|e| RoutersError::Docker(e.to_string()))?;
        let ip = net
            .containers
            .and_then(|c| c.get(&id).cloned())
            .and_then(|e| e.ipv4_address)
            .and_then(|a| a.split('/').next().and_then(|ip| ip.parse::<IpAddr>().ok()))
            .ok_or(RoutersError::NoAddress { container: id })?;
        Ok(TraefikApi {
            addr: SocketAddr::new(ip, API_PORT),
        })
    }

    /// Every HTTP router Traefik has (`GET /api/http/routers`, all pages).
    ///
    /// # Errors
    /// [`RoutersError::Api`]: no answer within [`API_TIMEOUT`], a status
    /// other than 200, or a body that is not Traefik's router list.
    pub async fn routers(&self) -> Result<Vec<Router>, RoutersError> {
        let mut all = Vec::new();
        let mut page = 1usize;
        for _ in 0..MAX_PAGES {
            let (next, body) = self
                .get(&format!("/api/http/routers?per_page={PER_PAGE}&page={page}"))
                .await?;
            let routers: Vec<Router> = serde_json::from_slice(&body).map_err(|e| RoutersError::Api {
                addr: self.addr,
                detail: format!("not a router list: {e}"),
            })?;
            all.extend(routers);
            match next.and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n > page => page = n,
                _ => break,
            }
        }
        Ok(all)
    }

    /// One GET: (`X-Next-Page`, body).
    async fn get(&self, path: &str) -> Result<(Option<String>, Vec<u8>), RoutersError> {
        let err = |detail: String| RoutersError::Api {
            addr: self.addr,
            detail,
        };
        let work = async {
            let tcp = TcpStream::connect(self.addr).await.map_err(|e| err(e.to_string()))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
                .await
                .map_err(|e| err(e.to_string()))?;
            let conn = tokio::spawn(conn);
            let request = http::Request::get(path)
                .header(http::header::HOST, self.addr.to_string())
                .header(http::header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|e| err(e.to_string()))?;
            let response = sender.send_request(request).await.map_err(|e| err(e.to_string()))?;
            let status = response.status();
            let next = response
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes()
                .to_vec();
            conn.abort();
            if status != http::StatusCode::OK {
                return Err(err(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                )));
            }
            Ok((next, body))
        };
        tokio::time::timeout(API_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(err(format!("no answer within {} s", API_TIMEOUT.as_secs()))))
    }
}

/// A router the app's live services declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The router's name (`traefik.http.routers.<name>.*`).
    pub name: String,
    /// The swarm service carrying the labels (`<stack>_<service>`).
    pub service: String,
    /// Its rule label, if any.
    pub rule: Option<String>,
    /// Whether the service carries `traefik.enable=true` (Traefik on a
    /// Co-op Cloud host exposes nothing by default).
    pub enabled: bool,
}

/// The routers the live services of `stack` declare, from their service
/// labels (the deploy labels, which Traefik's swarm provider reads), by
/// router name.
///
/// # Errors
/// [`RoutersError::Docker`].
pub async fn declared(docker: &Docker, stack: &str) -> Result<Vec<Declared>, RoutersError> {
    let services = crate::deploy::stack::services_of(docker, stack)
        .await
        .map_err(|e| RoutersError::Docker(e.to_string()))?;
    let mut out = Vec::new();
    for s in services {
        let Some(spec) = s.spec else { continue };
        let service = spec.name.unwrap_or_default();
        let labels: BTreeMap<String, String> = spec.labels.unwrap_or_default().into_iter().collect();
        out.extend(declared_in(&service, &labels));
    }
    Ok(out)
}

/// The routers one service's `labels` declare (see [`declared`]).
pub fn declared_in(service: &str, labels: &BTreeMap<String, String>) -> Vec<Declared> {
    let enabled = labels
        .get("traefik.enable")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let names: BTreeSet<&str> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("traefik.http.routers.")?.split_once('.').map(|(n, _)| n))
        .collect();
    names
        .into_iter()
        .map(|n| Declared {
            name: n.to_string(),
            service: service.to_string(),
            rule: labels.get(&format!("traefik.http.routers.{n}.rule")).cloned(),
            enabled,
        })
        .collect()
}

/// What Traefik's routers say of the app's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// The app's services declare no router Traefik would take (none, or
    /// none on a service with `traefik.enable=true`). Final.
    NoneDeclared {
        /// What they declare (routers on services without `traefik.enable`).
        declared: Vec<Declared>,
    },
    /// Traefik has the app's routers, current, and some are in error. Final.
    InError {
        /// The routers in error.
        routers: Vec<Router>,
    },
    /// Traefik has the app's routers, current and without errors, but no
    /// rule names the domain. Final.
    OtherHosts {
        /// The app's routers.
        routers: Vec<Router>,
    },
    /// Traefik lists none of the routers the app declares. Final after
    /// [`ABSENT_GRACE`].
    Absent {
        /// The routers declared.
        declared: Vec<Declared>,
        /// How many routers Traefik lists in all.
        listed: usize,
    },
    /// Traefik's rules differ from the live labels: it has not read the
    /// deploy yet. Never final.
    Stale {
        /// (router, Traefik's rule, the label's rule).
        router: String,
        /// Traefik's rule.
        traefik: String,
        /// The live label's rule.
        label: String,
    },
    /// Traefik has an enabled router for the domain (so its 404 is the
    /// app's own, or is about to go). Never final.
    Routed {
        /// The app's routers.
        routers: Vec<Router>,
    },
}

/// Whether `rule` names `domain` (as Traefik's rules quote hosts: in
/// backticks or double quotes).
fn names_domain(rule: &str, domain: &str) -> bool {
    rule.contains(&format!("`{domain}`")) || rule.contains(&format!("\"{domain}\""))
}

/// Traefik's view of `domain`, from the routers the app `declared` and
/// the routers Traefik lists (`traefik`). Pure.
pub fn judge(domain: &str, declared: &[Declared], traefik: &[Router]) -> View {
    let live: Vec<&Declared> = declared.iter().filter(|d| d.enabled).collect();
    if live.is_empty() {
        return View::NoneDeclared {
            declared: declared.to_vec(),
        };
    }
    let names: BTreeSet<&str> = live.iter().map(|d| d.name.as_str()).collect();
    let ours: Vec<Router> = traefik
        .iter()
        .filter(|r| names.contains(r.bare_name()))
        .cloned()
        .collect();
    if ours.is_empty() {
        return View::Absent {
            declared: live.into_iter().cloned().collect(),
            listed: traefik.len(),
        };
    }
    for d in &live {
        if let (Some(label), Some(r)) = (&d.rule, ours.iter().find(|r| r.bare_name() == d.name)) {
            if &r.rule != label {
                return View::Stale {
                    router: r.name.clone(),
                    traefik: r.rule.clone(),
                    label: label.clone(),
                };
            }
        }
    }
    let broken: Vec<Router> = ours
        .iter()
        .filter(|r| !r.error.is_empty() || (!r.status.is_empty() && r.status != "enabled"))
        .cloned()
        .collect();
    if !broken.is_empty() {
        return View::InError { routers: broken };
    }
    if !ours.iter().any(|r| names_domain(&r.rule, domain)) {
        return View::OtherHosts { routers: ours };
    }
    View::Routed { routers: ours }
}

impl View {
    /// Whether the view will not change by waiting, `waited` after the
    /// check began (see the variants).
    pub fn is_final(&self, waited: Duration) -> bool {
        match self {
            View::NoneDeclared { .. } | View::InError { .. } | View::OtherHosts { .. } => true,
            View::Absent { .. } => waited >= ABSENT_GRACE,
            View::Stale { .. } | View::Routed { .. } => false,
        }
    }
}

fn router_line(r: &Router) -> String {
    let mut s = format!("`{}` (rule {}", r.name, r.rule);
    if !r.entry_points.is_empty() {
        s.push_str(&format!(", entrypoints {}", r.entry_points.join(",")));
    }
    if !r.middlewares.is_empty() {
        s.push_str(&format!(", middlewares {}", r.middlewares.join(",")));
    }
    s.push_str(&format!(
        ", {})",
        if r.status.is_empty() { "no status" } else { &r.status }
    ));
    s
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            View::NoneDeclared { declared } if declared.is_empty() => write!(
                f,
                "the app's services declare no Traefik router (no `traefik.http.routers.<name>.rule` label); \
                 give the app's service `traefik.enable=true` and a router with rule Host(`<domain>`) in its deploy labels"
            ),
            View::NoneDeclared { declared } => write!(
                f,
                "the app's routers {} are on services without `traefik.enable=true`, which Traefik ignores \
                 (exposedByDefault is off); add that label to the service's deploy labels",
                declared
                    .iter()
                    .map(|d| format!("`{}` ({})", d.name, d.service))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            View::InError { routers } => {
                write!(f, "Traefik's API reports ")?;
                let parts: Vec<String> = routers
                    .iter()
                    .map(|r| {
                        let errors = if r.error.is_empty() {
                            "no error given".to_string()
                        } else {
                            r.error.join("; ")
                        };
                        format!("router {}: {errors}", router_line(r))
                    })
                    .collect();
                write!(
                    f,
                    "{}; fix the router's labels (Traefik 3 names swarm services' routers and middlewares `<name>@swarm`, not `@docker`)",
                    parts.join("; ")
                )
            }
            View::OtherHosts { routers } => write!(
                f,
                "Traefik's API lists the app's routers {}, and no rule names this domain; \
                 the router rule must be Host(`${{DOMAIN}}`)",
                routers.iter().map(router_line).collect::<Vec<_>>().join(", ")
            ),
            View::Absent { declared, listed } => write!(
                f,
                "Traefik's API lists no router of the app ({} declared: {}; Traefik lists {listed} router(s) in all, \
                 {} s after the app converged); is the service on the `proxy` network and running?",
                declared.len(),
                declared
                    .iter()
                    .map(|d| format!("`{}` on {}", d.name, d.service))
                    .collect::<Vec<_>>()
                    .join(", "),
                ABSENT_GRACE.as_secs()
            ),
            View::Stale { router, traefik, label } => write!(
                f,
                "Traefik still has router `{router}` with rule {traefik}, not the deployed {label}: it has not read the deploy yet"
            ),
            View::Routed { routers } => write!(
                f,
                "Traefik's API lists an enabled router for this domain ({}), so the 404 may be the app's own \
                 (an app written in Go answering net/http's plain 404 looks the same)",
                routers.iter().map(router_line).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// What the serve check needs to ask Traefik about a stack.
#[derive(Debug, Clone)]
pub struct RouterProbe {
    /// The Engine API.
    pub docker: Docker,
    /// The app's stack.
    pub stack: String,
    /// Traefik's published web-secure port (to find its container).
    pub web_port: u16,
}

impl RouterProbe {
    /// Traefik's view of `domain` now.
    ///
    /// # Errors
    /// [`RoutersError`]: Docker, Traefik's container or its API.
    pub async fn look(&self, domain: &str) -> Result<View, RoutersError> {
        let declared = declared(&self.docker, &self.stack).await?;
        let api = TraefikApi::locate(&self.docker, self.web_port).await?;
        let routers = api.routers().await?;
        Ok(judge(domain, &declared, &routers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(name: &str, rule: &str, status: &str, error: &[&str]) -> Router {
        Router {
            name: name.into(),
            rule: rule.into(),
            status: status.into(),
            error: error.iter().map(|e| e.to_string()).collect(),
            entry_points: vec!["web-secure".into()],
            middlewares: vec![],
        }
    }

    fn decl(name: &str, rule: &str) -> Declared {
        Declared {
            name: name.into(),
            service: "s_app".into(),
            rule: Some(rule.into()),
            enabled: true,
        }
    }

    #[test]
    fn routers_parse_as_traefik_lists_them() {
        // As Traefik v3.7.15 answers (trimmed): a router disabled for a missing middleware.
        let body = r#"[{"entryPoints":["web-secure"],"middlewares":["nope@docker"],"service":"s","rule":"Host(`a.ci.test`)","priority":20,"tls":{},"error":["middleware \"nope@docker\" does not exist"],"status":"disabled","using":["web-secure"],"name":"s@swarm","provider":"swarm"}]"#;
        let r: Vec<Router> = serde_json::from_str(body).unwrap();
        assert_eq!(r[0].bare_name(), "s");
        assert_eq!(r[0].error, vec!["middleware \"nope@docker\" does not exist"]);
        assert_eq!(r[0].status, "disabled");
    }

    #[test]
    fn labels_declare_routers_by_name() {
        let labels: BTreeMap<String, String> = [
            ("traefik.enable", "true"),
            ("traefik.http.routers.s.rule", "Host(`a`)"),
            ("traefik.http.routers.s.entrypoints", "web-secure"),
            ("traefik.http.routers.s-redirect.middlewares", "x"),
            ("traefik.http.services.s.loadbalancer.server.port", "80"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let d = declared_in("s_app", &labels);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "s");
        assert_eq!(d[0].rule.as_deref(), Some("Host(`a`)"));
        assert!(d[1].rule.is_none() && d[1].enabled);
    }

    #[test]
    fn each_view_and_when_it_is_final() {
        let d = "a.ci.test";
        let ours = [decl("s", "Host(`a.ci.test`)")];
        let bad = router(
            "s@swarm",
            "Host(`a.ci.test`)",
            "disabled",
            &["middleware \"nope@docker\" does not exist"],
        );
        let v = judge(d, &ours, std::slice::from_ref(&bad));
        assert!(matches!(v, View::InError { .. }) && v.is_final(Duration::ZERO));
        assert!(
            v.to_string().contains("middleware \"nope@docker\" does not exist"),
            "{v}"
        );
        // Traefik still has the previous rule: not final, whatever the status.
        let v = judge(
            d,
            &ours,
            &[router("s@swarm", "Host(`old.ci.test`)", "disabled", &["x"])],
        );
        assert!(matches!(v, View::Stale { .. }) && !v.is_final(Duration::from_secs(999)));
        // Current, but for another host.
        let other = [decl("s", "Host(`nobody.a.ci.test`)")];
        let v = judge(
            d,
            &other,
            &[router("s@swarm", "Host(`nobody.a.ci.test`)", "enabled", &[])],
        );
        assert!(
            matches!(v, View::OtherHosts { .. }) && v.is_final(Duration::ZERO),
            "{v}"
        );
        assert!(v.to_string().contains("nobody.a.ci.test"), "{v}");
        // Absent: final only after the grace.
        let v = judge(d, &ours, &[router("t@swarm", "Host(`b`)", "enabled", &[])]);
        assert!(matches!(v, View::Absent { listed: 1, .. }));
        assert!(!v.is_final(Duration::from_secs(1)) && v.is_final(ABSENT_GRACE));
        // Nothing declared, or only on services Traefik ignores.
        assert!(judge(d, &[], &[]).is_final(Duration::ZERO));
        let mut off = decl("s", "Host(`a.ci.test`)");
        off.enabled = false;
        let v = judge(d, &[off], &[]);
        assert!(v.to_string().contains("traefik.enable=true"), "{v}");
        // Routed: never final (the 404 is the app's own, or about to go).
        let v = judge(d, &ours, &[router("s@swarm", "Host(`a.ci.test`)", "enabled", &[])]);
        assert!(matches!(v, View::Routed { .. }) && !v.is_final(Duration::from_secs(999)));
    }
}
