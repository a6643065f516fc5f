//! The serve rung: is the app reachable over HTTPS through Traefik, under the
//! wildcard certificate, and does it answer like an app?
//!
//! `ccci test` runs [`check`] after install and again after upgrade. One
//! attempt opens a TCP connection to the address Traefik listens on (no DNS:
//! the app's domain is "resolved" to that address by connecting there), does
//! a TLS handshake with SNI = the app's domain that trusts ONLY the given CA
//! (never the system roots), sends `GET <path>` over HTTP/1.1 with
//! `Host: <domain>` (no port, as a browser on 443 sends it), does not follow
//! redirects, and reads at most [`MAX_BODY`] bytes of the body.
//!
//! Traefik's own answers are recognised and are failures whatever status was
//! expected. What the real Traefik v3.7.15 sends, read from its source
//! (`github.com/traefik/traefik/v3`: `pkg/tls/generate/generate.go`,
//! `pkg/server/router/router.go`, `pkg/proxy/httputil/proxy.go`,
//! `pkg/server/service/loadbalancer/wrr/wrr.go`) and checked against the
//! binary by `tests/serve.rs`:
//!
//! - **Default certificate** (no certificate in Traefik matches the SNI and no
//!   default certificate is configured): self-signed RSA-2048, subject and
//!   issuer `CN=TRAEFIK DEFAULT CERT`, one DNS SAN
//!   `<32 hex>.<32 hex>.traefik.default`, valid one year from Traefik's start,
//!   new on every start.
//! - **No router matched the Host**: Go's `http.NotFoundHandler`, i.e. `404`,
//!   `Content-Type: text/plain; charset=utf-8`,
//!   `X-Content-Type-Options: nosniff`, body `404 page not found\n` (19 bytes).
//!   Traefik adds no header of its own, so an app written in Go that answers
//!   with the same `http.NotFound` is indistinguishable from outside; such an
//!   app's front page is a 404 anyway, and the message says so.
//! - **Router but no reachable backend**: `502`, body `Bad Gateway` (no
//!   newline, no `Content-Type`) when the connection to the server fails;
//!   `504`, body `Gateway Timeout`, on a backend timeout; `503`
//!   `no available server\n` (`text/plain`, `nosniff`) when the service has
//!   no healthy server (unhealthy or starting containers, health check down).
//!
//! Readiness: the app's router appears a little after the service converges,
//! so while the answer means "not yet" (Traefik's 404, any 502/503/504,
//! connection refused) the check retries with a short backoff (100 ms,
//! doubling, at most 1 s) within [`ServeSpec::readiness`], then returns the
//! last verdict. Every other answer is final at once. With
//! [`ServeSpec::routers`] set, Traefik's 404 is explained by what Traefik's
//! API says of the app's routers ([`crate::probe::routers`]), and a view that
//! waiting cannot change (a router in error, routers for other hosts only,
//! no router at all after a grace) ends the wait at once.
//!
//! The caller maps [`Verdict::Pass`] to rung `pass`, [`Verdict::Fail`] to
//! `fail` and [`Verdict::Error`] (nothing listens on Traefik's address, the CA
//! file is unreadable, ...) to `error`: an infrastructure fault is never a
//! recipe failure.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue, WebPkiServerVerifier,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use tokio::time::timeout_at;

/// Where Traefik's `web-secure` entrypoint listens on a cc-ci server.
pub const DEFAULT_TRAEFIK_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 443));
/// Common name of the certificate Traefik generates when nothing matches the
/// SNI (`generate.DefaultDomain` in Traefik's source).
pub const TRAEFIK_DEFAULT_CERT_CN: &str = "TRAEFIK DEFAULT CERT";
/// DNS-name suffix of Traefik's generated default certificate.
pub const TRAEFIK_DEFAULT_CERT_SAN_SUFFIX: &str = ".traefik.default";
/// The body of Traefik's (Go's) 404 when no router matches.
pub const TRAEFIK_NOT_FOUND_BODY: &str = "404 page not found\n";
/// Bytes of the response body read at most (the rest is not read).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Default time one attempt may take, connection to last body byte (the
/// first attempts get less: [`attempt_limit`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// The time the first attempt may take; each next one doubles it, up to
/// [`ServeSpec::timeout`].
pub const FIRST_ATTEMPT_LIMIT: Duration = Duration::from_secs(2);
/// Default time the check keeps retrying while the answer is "not yet".
pub const DEFAULT_READINESS: Duration = Duration::from_secs(60);

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const USER_AGENT: &str = concat!("cc-ci-serve-check/", env!("CARGO_PKG_VERSION"));

/// Which HTTP statuses count as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectStatus {
    /// Any 2xx or 3xx (redirects are not followed). The default.
    SuccessOrRedirect,
    /// Exactly one of these.
    AnyOf(Vec<u16>),
}

impl ExpectStatus {
    /// Whether `status` is expected.
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            ExpectStatus::SuccessOrRedirect => (200..400).contains(&status),
            ExpectStatus::AnyOf(list) => list.contains(&status),
        }
    }
}

impl fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectStatus::SuccessOrRedirect => f.write_str("any 2xx or 3xx"),
            ExpectStatus::AnyOf(list) => {
                let l: Vec<String> = list.iter().map(u16::to_string).collect();
                write!(f, "one of {}", l.join(", "))
            }
        }
    }
}

/// What to check. Build with [`ServeSpec::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    /// The app's domain (e.g. `t1a2b3c.ci.test`): SNI and `Host` header.
    pub domain: String,
    /// Where Traefik listens; the request goes there whatever DNS says.
    /// Default [`DEFAULT_TRAEFIK_ADDR`].
    pub traefik: SocketAddr,
    /// PEM file with the CA certificate(s) to trust; nothing else is trusted.
    pub ca_file: PathBuf,
    /// Path and query to request, starting with `/`. Default `/`.
    pub path: String,
    /// Statuses that count as served. Default [`ExpectStatus::SuccessOrRedirect`].
    pub expect: ExpectStatus,
    /// Must match (search, not anchored) the page's `<title>` text, entities
    /// decoded and whitespace collapsed.
    pub title: Option<Regex>,
    /// Must match (search) the body read as UTF-8 (lossy).
    pub content: Option<Regex>,
    /// Time one attempt may take, connection to last body byte. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Time to keep retrying while the answer means "not yet". Default [`DEFAULT_READINESS`].
    pub readiness: Duration,
    /// Where to ask Traefik about the app's routers when the answer is
    /// Traefik's own 404 ([`crate::probe::routers`]): its view goes into the
    /// reason, and a final view (a router in error, routers for other
    /// hosts only, none at all after a grace) ends the wait at once.
    /// Default `None`: the 404 is retried until the readiness budget is spent.
    pub routers: Option<crate::probe::routers::RouterProbe>,
}

impl ServeSpec {
    /// A check of `https://<domain>/` via [`DEFAULT_TRAEFIK_ADDR`], trusting
    /// the CA in `ca_file`, with the defaults documented on each field.
    pub fn new(domain: impl Into<String>, ca_file: impl Into<PathBuf>) -> ServeSpec {
        ServeSpec {
            domain: domain.into(),
            traefik: DEFAULT_TRAEFIK_ADDR,
            ca_file: ca_file.into(),
            path: "/".into(),
            expect: ExpectStatus::SuccessOrRedirect,
            title: None,
            content: None,
            timeout: DEFAULT_TIMEOUT,
            readiness: DEFAULT_READINESS,
            routers: None,
        }
    }
}

/// The certificate Traefik presented (the leaf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject, RFC 4514 style (`CN=*.ci.test`).
    pub subject: String,
    /// Issuer, same style.
    pub issuer: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// End of validity, RFC 2822.
    pub not_after: String,
}

impl CertSummary {
    /// Parses a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<CertSummary> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    dns_names.push(d.to_string());
                }
            }
        }
        let not_after = cert.validity().not_after;
        Some(CertSummary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            not_after: not_after.to_rfc2822().unwrap_or_else(|_| not_after.to_string()),
        })
    }

    /// Whether this is the certificate Traefik generates for itself when
    /// nothing matches the SNI: subject `CN=TRAEFIK DEFAULT CERT`, or (in case
    /// a later version renames it) only `*.traefik.default` names. Decided
    /// from the certificate alone, independent of any CA.
    pub fn is_traefik_default(&self) -> bool {
        self.subject == format!("CN={TRAEFIK_DEFAULT_CERT_CN}")
            || (!self.dns_names.is_empty()
                && self
                    .dns_names
                    .iter()
                    .all(|n| n.ends_with(TRAEFIK_DEFAULT_CERT_SAN_SUFFIX)))
    }

    fn names(&self) -> String {
        if self.dns_names.is_empty() {
            "no DNS names".into()
        } else {
            self.dns_names.join(", ")
        }
    }
}

/// A served page.
#[derive(Debug, Clone)]
pub struct Served {
    /// The HTTP status.
    pub status: u16,
    /// The page's `<title>` (decoded, whitespace collapsed), if it has one.
    pub title: Option<String>,
    /// The `Location` header of a redirect (not followed).
    pub location: Option<String>,
    /// Duration of the passing attempt, TCP connect to last body byte.
    pub elapsed: Duration,
    /// The certificate Traefik presented.
    pub certificate: CertSummary,
}

/// Why the app is not served properly: the recipe's (or deployment's) fault.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The TLS handshake failed for a reason other than the certificate.
    Tls {
        /// The app's domain.
        domain: String,
        /// Traefik's address.
        addr: SocketAddr,
        /// What rustls or the connection said.
        detail: String,
    },
    /// Traefik presented its self-generated default certificate.
    TraefikDefaultCertificate {
        /// The app's domain.
        domain: String,
        /// The certificate.
        certificate: CertSummary,
    },
    /// The certificate is not issued by the trusted CA (or is expired, ...).
    UntrustedCertificate {
        /// The app's domain.
        domain: String,
        /// The trusted CA file.
        ca_file: PathBuf,
        /// The certificate, if it parsed.
        certificate: Option<CertSummary>,
        /// rustls's verdict.
        detail: String,
    },
    /// The certificate is from the CA but does not cover the domain.
    WrongName {
        /// The app's domain.
        domain: String,
        /// The certificate.
        certificate: Option<CertSummary>,
    },
    /// Traefik's own 404: no router matches the Host.
    TraefikNotFound {
        /// The app's domain.
        domain: String,
        /// What Traefik's API says of the app's routers (a
        /// [`crate::probe::routers::View`], or why it could not be asked);
        /// `None` when it was not asked.
        traefik_says: Option<String>,
    },
    /// 502/503/504: the router exists but no healthy backend answered.
    NoHealthyBackend {
        /// The app's domain.
        domain: String,
        /// The status.
        status: u16,
        /// Whether the body is exactly Traefik's own (else the app's own proxy answered).
        from_traefik: bool,
        /// The start of the body, whitespace collapsed.
        body: String,
    },
    /// A status outside the expected ones.
    UnexpectedStatus {
        /// The status.
        status: u16,
        /// What was expected.
        expected: ExpectStatus,
        /// `Location` of a redirect.
        location: Option<String>,
        /// The start of the body, whitespace collapsed.
        body: String,
    },
    /// The `<title>` does not match.
    TitleMismatch {
        /// The regex.
        pattern: String,
        /// The title found.
        title: Option<String>,
    },
    /// The body does not match.
    ContentMismatch {
        /// The regex.
        pattern: String,
        /// Bytes of body read.
        body_len: usize,
        /// Whether the body was cut at [`MAX_BODY`].
        truncated: bool,
    },
    /// The attempt took longer than [`ServeSpec::timeout`] after connecting.
    Timeout {
        /// What was not finished.
        phase: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The HTTP exchange failed (connection closed, malformed response).
    Http {
        /// What hyper said.
        detail: String,
    },
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Tls { domain, addr, detail } => write!(
                f,
                "TLS handshake for {domain} with Traefik at {addr} failed: {detail}; \
                 is that address Traefik's TLS entrypoint (web-secure)?"
            ),
            Failure::TraefikDefaultCertificate { domain, certificate } => write!(
                f,
                "Traefik served its own default certificate for {domain} ({}, names {}): no certificate \
                 it holds matches this name; is the wildcard certificate installed as Traefik's default \
                 certificate (wildcard mode) and does it cover {domain}?",
                certificate.subject,
                certificate.names()
            ),
            Failure::UntrustedCertificate {
                domain,
                ca_file,
                certificate,
                detail,
            } => {
                write!(f, "the certificate served for {domain} ")?;
                if let Some(c) = certificate {
                    write!(f, "({}, issuer {}, names {}) ", c.subject, c.issuer, c.names())?;
                }
                write!(
                    f,
                    "is not accepted with the CA in {}: {detail}; is Traefik serving the wildcard certificate \
                     issued by that CA?",
                    ca_file.display()
                )
            }
            Failure::WrongName { domain, certificate } => {
                write!(
                    f,
                    "the certificate served for {domain} is from the trusted CA but does not cover it"
                )?;
                if let Some(c) = certificate {
                    write!(f, " (its names: {})", c.names())?;
                }
                write!(f, "; is the app's domain under the wildcard domain?")
            }
            Failure::TraefikNotFound {
                domain,
                traefik_says: Some(says),
            } => write!(
                f,
                "Traefik answered its own 404 (`404 page not found`) for Host `{domain}`: {says}"
            ),
            Failure::TraefikNotFound {
                domain,
                traefik_says: None,
            } => write!(
                f,
                "Traefik answered its own 404 (`404 page not found`): no router matches Host `{domain}`; \
                 does the app's service carry Traefik labels with this domain, is it on the `proxy` network, \
                 and is it running? (an app written in Go answering net/http's plain 404 looks the same)"
            ),
            Failure::NoHealthyBackend {
                domain,
                status,
                from_traefik: true,
                ..
            } => match status {
                502 => write!(
                    f,
                    "Traefik has a router for {domain} but could not reach the app (502 Bad Gateway from \
                     Traefik): is the app's container running and listening on the port in its Traefik labels?"
                ),
                504 => write!(
                    f,
                    "Traefik has a router for {domain} but the app did not answer it in time (504 Gateway \
                     Timeout from Traefik)"
                ),
                _ => write!(
                    f,
                    "Traefik has a router for {domain} but no healthy backend ({status} `no available server` \
                     from Traefik): the app's containers are unhealthy, still starting, or not running"
                ),
            },
            Failure::NoHealthyBackend { status, body, .. } => write!(
                f,
                "the app answered {status} {} itself, not Traefik (its own proxy has no healthy upstream?): `{body}`",
                reason(*status)
            ),
            Failure::UnexpectedStatus {
                status,
                expected,
                location,
                body,
            } => {
                write!(f, "status {status} {}, expected {expected}", reason(*status))?;
                if let Some(l) = location {
                    write!(f, " (redirect to `{l}`, not followed)")?;
                }
                if !body.is_empty() {
                    write!(f, "; body starts `{body}`")?;
                }
                Ok(())
            }
            Failure::TitleMismatch {
                pattern,
                title: Some(t),
            } => {
                write!(f, "page title `{t}` does not match /{pattern}/")
            }
            Failure::TitleMismatch { pattern, title: None } => {
                write!(f, "the page has no <title>, expected one matching /{pattern}/")
            }
            Failure::ContentMismatch {
                pattern,
                body_len,
                truncated,
            } => write!(
                f,
                "the page body ({body_len} bytes{}) does not match /{pattern}/",
                if *truncated { ", cut at the read limit" } else { "" }
            ),
            Failure::Timeout { phase, after } => {
                write!(f, "{phase} did not finish within the {} timeout", secs(*after))
            }
            Failure::Http { detail } => write!(f, "the HTTP exchange failed: {detail}"),
        }
    }
}

/// An infrastructure fault: the rung is `error`, not `fail`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The CA file could not be used.
    #[error("CA certificate file {path}: {problem}; pass the PEM certificate of the CA that issued the wildcard certificate")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The domain is not a DNS name.
    #[error("`{domain}` is not a valid DNS name for TLS (SNI); pass the app's domain, e.g. `abc123.ci.example.org`")]
    Domain {
        /// The domain.
        domain: String,
    },
    /// The path is not an absolute request path.
    #[error("request path `{path}` is not valid: it must start with `/` and be a valid URI path and query")]
    Path {
        /// The path.
        path: String,
    },
    /// Connection refused: nothing listens on Traefik's address.
    #[error("nothing listens on Traefik's address {addr} ({source}); is Traefik deployed and publishing its web-secure entrypoint there? (run traefik-deploy)")]
    NothingListens {
        /// The address.
        addr: SocketAddr,
        /// The connect error.
        source: io::Error,
    },
    /// Another connection failure.
    #[error("cannot connect to Traefik at {addr}: {source}; is the network up and Traefik running?")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The connect error.
        source: io::Error,
    },
    /// No TCP connection within the timeout.
    #[error("no TCP connection to Traefik at {addr} within {}; is Traefik running, is a firewall dropping packets?", secs(*after))]
    ConnectTimeout {
        /// The address.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// rustls could not be set up (should not happen with the built-in provider).
    #[error("TLS client set-up failed: {0}")]
    TlsSetup(String),
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum Verdict {
    /// Served as expected.
    Pass(Served),
    /// Not served properly: rung `fail`.
    Fail(Failure),
    /// Infrastructure fault: rung `error`.
    Error(ServeError),
}

impl Verdict {
    /// Whether this answer means "not ready yet" and is worth retrying:
    /// Traefik's 404, a 502/503/504, connection refused, or no answer within
    /// the attempt's timeout. The last is what a deploy's first seconds
    /// look like: Traefik's swarm provider refreshes its view of the tasks
    /// every 15 s by default (`providers.swarm.refreshSeconds`), and until
    /// then it may send a request to the address of a task that was just
    /// replaced, which hangs. A truly hung app still fails, after the
    /// readiness budget, with the timeout as the reason.
    pub fn is_not_yet(&self) -> bool {
        matches!(
            self,
            Verdict::Fail(Failure::TraefikNotFound { .. })
                | Verdict::Fail(Failure::NoHealthyBackend { .. })
                | Verdict::Fail(Failure::Timeout { .. })
                | Verdict::Error(ServeError::NothingListens { .. })
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass(s) => {
                write!(f, "pass: {} {}", s.status, reason(s.status))?;
                if let Some(t) = &s.title {
                    write!(f, ", title `{t}`")?;
                }
                if let Some(l) = &s.location {
                    write!(f, ", redirect to `{l}` (not followed)")?;
                }
                write!(
                    f,
                    ", certificate {} ({}), {} ms",
                    s.certificate.subject,
                    s.certificate.names(),
                    s.elapsed.as_millis()
                )
            }
            Verdict::Fail(r) => write!(f, "fail: {r}"),
            Verdict::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// The check's result: the last verdict and how long readiness took.
#[derive(Debug)]
pub struct ServeReport {
    /// The last attempt's verdict.
    pub verdict: Verdict,
    /// Attempts made (0 if the spec itself was unusable).
    pub attempts: u32,
    /// Time from the start of the check to the verdict, retries and backoff included.
    pub waited: Duration,
}

impl fmt::Display for ServeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (after {} attempt{}, {})",
            self.verdict,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            secs(self.waited)
        )
    }
}

/// The time attempt number `n` (from 1) may take: [`FIRST_ATTEMPT_LIMIT`],
/// doubling with each attempt, never above `timeout`. A request Traefik
/// sends to a task that was just replaced hangs (its swarm provider learns
/// of the new task at its next refresh); short first attempts retry it in
/// seconds instead of waiting out the whole timeout, and a slow app still
/// gets the full timeout on a later attempt.
pub fn attempt_limit(timeout: Duration, n: u32) -> Duration {
    let grown = FIRST_ATTEMPT_LIMIT.saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
    grown.min(timeout)
}

/// Runs the serve check: attempts until the verdict is final or the
/// readiness budget is spent (see the module docs). Never panics on network
/// input; every problem is in the returned verdict.
pub async fn check(spec: &ServeSpec) -> ServeReport {
    let start = Instant::now();
    let prepared = match Prepared::new(spec) {
        Ok(p) => p,
        Err(e) => {
            return ServeReport {
                verdict: Verdict::Error(e),
                attempts: 0,
                waited: start.elapsed(),
            }
        }
    };
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    loop {
        attempts += 1;
        let mut verdict = prepared.attempt(spec, attempt_limit(spec.timeout, attempts)).await;
        tracing::debug!(domain = %spec.domain, attempt = attempts, %verdict, "serve check attempt");
        let mut traefik_final = false;
        if let (Verdict::Fail(Failure::TraefikNotFound { traefik_says, .. }), Some(probe)) =
            (&mut verdict, &spec.routers)
        {
            match probe.look(&spec.domain).await {
                Ok(view) => {
                    traefik_final = view.is_final(start.elapsed());
                    *traefik_says = Some(view.to_string());
                }
                Err(e) => {
                    *traefik_says = Some(format!(
                        "no router matches it, and Traefik's view of the app's routers could not be had ({e})"
                    ))
                }
            }
        }
        let remaining = spec.readiness.saturating_sub(start.elapsed());
        if !verdict.is_not_yet() || remaining.is_zero() || traefik_final {
            return ServeReport {
                verdict,
                attempts,
                waited: start.elapsed(),
            };
        }
        tokio::time::sleep(backoff.min(remaining)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What one attempt needs, made once per check.
struct Prepared {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// `https://<domain><path>`: reqwest takes the host for SNI (and the
    /// address override), the path and query for the request line.
    url: reqwest::Url,
}

impl Prepared {
    fn new(spec: &ServeSpec) -> Result<Prepared, ServeError> {
        let domain_error = || ServeError::Domain {
            domain: spec.domain.clone(),
        };
        ServerName::try_from(spec.domain.as_str())
            .ok()
            .filter(|n| matches!(n, ServerName::DnsName(_)))
            .ok_or_else(domain_error)?;
        let path_error = || ServeError::Path {
            path: spec.path.clone(),
        };
        if !spec.path.starts_with('/') || spec.path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(path_error());
        }
        let url = reqwest::Url::parse(&format!("https://{}{}", spec.domain, spec.path)).map_err(|_| path_error())?;
        if url.host_str().is_none_or(|h| !h.eq_ignore_ascii_case(&spec.domain)) {
            return Err(domain_error());
        }
        let roots = ca_roots(&spec.ca_file).map_err(|problem| ServeError::CaFile {
            path: spec.ca_file.clone(),
            problem,
        })?;
        Ok(Prepared {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            url,
        })
    }

    /// The client of one attempt: it connects to Traefik's address whatever
    /// DNS says, trusts only the CA through `verifier`, reports the
    /// handshake's progress to `progress`, speaks HTTP/1.1 only, follows no
    /// redirect, uses no proxy and retries nothing.
    fn client(
        &self,
        spec: &ServeSpec,
        verifier: Arc<Recording>,
        progress: Arc<Progress>,
    ) -> Result<reqwest::Client, ServeError> {
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::TlsSetup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Stores nothing (so nothing is resumed: every attempt is a new
        // session, as with a new config per attempt) and tells how far the
        // handshake got.
        config.resumption = Resumption::store(progress);
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .resolve(&spec.domain, spec.traefik)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .http1_only()
            .referer(false)
            .pool_max_idle_per_host(0)
            .tcp_keepalive(None);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let builder = builder.tcp_user_timeout(None);
        builder.build().map_err(|e| ServeError::TlsSetup(chain(&e)))
    }

    /// One attempt, given `limit` from connection to last body byte.
    async fn attempt(&self, spec: &ServeSpec, limit: Duration) -> Verdict {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let addr = spec.traefik;
        let timeout = |phase| Verdict::Fail(Failure::Timeout { phase, after: limit });

        let verifier = match Recording::new(self.roots.clone(), self.provider.clone()) {
            Ok(v) => Arc::new(v),
            Err(e) => return Verdict::Error(e),
        };
        let progress = Arc::new(Progress::default());
        let client = match self.client(spec, verifier.clone(), progress.clone()) {
            Ok(c) => c,
            Err(e) => return Verdict::Error(e),
        };
        let request = client
            .get(self.url.clone())
            .header(http::header::HOST, spec.domain.as_str())
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(http::header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .header(http::header::CONNECTION, "close");

        // The certificate of a completed handshake, unless it is Traefik's
        // default one: judged before anything the HTTP exchange brought.
        let presented = || -> Result<CertSummary, Box<Failure>> {
            let Some(certificate) = verifier.seen().as_deref().and_then(CertSummary::from_der) else {
                return Err(Box::new(Failure::Tls {
                    domain: spec.domain.clone(),
                    addr,
                    detail: "the server's certificate does not parse".into(),
                }));
            };
            if certificate.is_traefik_default() {
                return Err(Box::new(Failure::TraefikDefaultCertificate {
                    domain: spec.domain.clone(),
                    certificate,
                }));
            }
            Ok(certificate)
        };
        let http_fail = |e: &reqwest::Error| Verdict::Fail(Failure::Http { detail: http_detail(e) });

        let mut response = match timeout_at(deadline, request.send()).await {
            Err(_) if !progress.hello() => return Verdict::Error(ServeError::ConnectTimeout { addr, after: limit }),
            Err(_) if !progress.finished() => return timeout("the TLS handshake"),
            Err(_) => {
                if let Err(f) = presented() {
                    return Verdict::Fail(*f);
                }
                return timeout("the response headers");
            }
            // No ClientHello: the TCP connection was not made.
            Ok(Err(e)) if !progress.hello() => return Verdict::Error(connect_error(addr, &e)),
            Ok(Err(e)) if e.is_connect() => return Verdict::Fail(tls_failure(spec, &e, verifier.seen())),
            Ok(Err(e)) => {
                if let Err(f) = presented() {
                    return Verdict::Fail(*f);
                }
                return http_fail(&e);
            }
            Ok(Ok(r)) => r,
        };
        let certificate = match presented() {
            Ok(c) => c,
            Err(f) => return Verdict::Fail(*f),
        };
        let status = response.status().as_u16();
        let headers = response.headers();
        let content_type = header(headers, http::header::CONTENT_TYPE);
        let nosniff = header(headers, http::header::X_CONTENT_TYPE_OPTIONS).as_deref() == Some("nosniff");
        let location = header(headers, http::header::LOCATION);
        let mut bytes = Vec::new();
        let mut truncated = false;
        loop {
            match timeout_at(deadline, response.chunk()).await {
                Err(_) => return timeout("reading the response body"),
                Ok(Err(e)) => return http_fail(&e),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(data))) => {
                    let room = MAX_BODY - bytes.len();
                    if data.len() > room {
                        bytes.extend_from_slice(&data[..room]);
                        truncated = true;
                        break;
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
        let answer = Answer {
            status,
            content_type,
            nosniff,
            location,
            body: bytes,
            truncated,
        };
        judge(spec, answer, certificate, started.elapsed())
    }
}

/// `e` and its causes, `e` first. An `io::Error`'s wrapped error is
/// followed (its own `source()` skips it, going straight to the wrapped
/// error's source): that is where rustls's error sits.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e: &&'a (dyn StdError + 'static)| {
        match e.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

/// The innermost `io::Error` among `e`'s causes (the OS's error, or the
/// TLS stream's), the wrappers around it being plain `Other`s.
fn innermost_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    causes(e).filter_map(|c| c.downcast_ref::<io::Error>()).last()
}

/// `e` and its causes on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    causes(e).map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

/// What the HTTP layer (hyper) said of a failed exchange: the first cause
/// under reqwest's own "error sending request for url (..)" and hyper-util's
/// "client error (..)" wrappers.
fn http_detail(e: &reqwest::Error) -> String {
    causes(e)
        .skip(1)
        .map(|c| c.to_string())
        .find(|m| !m.starts_with("client error ("))
        .unwrap_or_else(|| e.to_string())
}

/// The TCP connection to Traefik could not be made.
fn connect_error(addr: SocketAddr, e: &reqwest::Error) -> ServeError {
    let source = match innermost_io(e) {
        Some(io) => match io.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(io.kind(), io.to_string()),
        },
        None => io::Error::other(chain(e)),
    };
    if source.kind() == io::ErrorKind::ConnectionRefused {
        ServeError::NothingListens { addr, source }
    } else {
        ServeError::Connect { addr, source }
    }
}

fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// An HTTP answer, as far as the check looks at it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `X-Content-Type-Options: nosniff` present.
    pub nosniff: bool,
    /// `Location`.
    pub location: Option<String>,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
    /// Whether the body was cut at [`MAX_BODY`].
    pub truncated: bool,
}

impl Answer {
    /// Exactly Traefik's answer when no router matches (see the module docs).
    pub fn is_traefik_not_found(&self) -> bool {
        self.status == 404
            && self.body == TRAEFIK_NOT_FOUND_BODY.as_bytes()
            && self.nosniff
            && self.content_type.as_deref() == Some("text/plain; charset=utf-8")
    }

    /// Exactly Traefik's own 502/503/504 page (see the module docs).
    pub fn is_traefik_backend_error(&self) -> bool {
        match self.status {
            502 => self.body == b"Bad Gateway",
            504 => self.body == b"Gateway Timeout",
            // wrr/p2c/hrw/leasttime balancers; failover's plain status text.
            503 => self.body == b"no available server\n" || self.body == b"Service Unavailable\n",
            _ => false,
        }
    }
}

/// Judges one HTTP answer against the spec. Pure; `certificate` and
/// `elapsed` are only carried into [`Served`].
pub fn judge(spec: &ServeSpec, answer: Answer, certificate: CertSummary, elapsed: Duration) -> Verdict {
    let status = answer.status;
    if answer.is_traefik_not_found() {
        return Verdict::Fail(Failure::TraefikNotFound {
            domain: spec.domain.clone(),
            traefik_says: None,
        });
    }
    let traefik_backend_error = answer.is_traefik_backend_error();
    if traefik_backend_error || (matches!(status, 502..=504) && !spec.expect.accepts(status)) {
        return Verdict::Fail(Failure::NoHealthyBackend {
            domain: spec.domain.clone(),
            status,
            from_traefik: traefik_backend_error,
            body: excerpt(&answer.body),
        });
    }
    if !spec.expect.accepts(status) {
        return Verdict::Fail(Failure::UnexpectedStatus {
            status,
            expected: spec.expect.clone(),
            location: answer.location,
            body: excerpt(&answer.body),
        });
    }
    let text = String::from_utf8_lossy(&answer.body);
    let title = html_title(&text);
    if let Some(re) = &spec.title {
        if !title.as_deref().is_some_and(|t| re.is_match(t)) {
            return Verdict::Fail(Failure::TitleMismatch {
                pattern: re.as_str().to_string(),
                title,
            });
        }
    }
    if let Some(re) = &spec.content {
        if !re.is_match(&text) {
            return Verdict::Fail(Failure::ContentMismatch {
                pattern: re.as_str().to_string(),
                body_len: answer.body.len(),
                truncated: answer.truncated,
            });
        }
    }
    Verdict::Pass(Served {
        status,
        title,
        location: answer.location,
        elapsed,
        certificate,
    })
}

/// The text of the first `<title>` element: entities `&amp; &lt; &gt;
/// &quot; &#39; &apos; &nbsp;` and numeric ones decoded, whitespace runs
/// collapsed to one space, trimmed. `None` without a `<title>`.
pub fn html_title(html: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?is)<title(?:\s[^>]*)?>(.*?)</title\s*>").expect("valid regex"));
    let raw = re.captures(html)?.get(1)?.as_str();
    Some(collapse(&decode_entities(raw)))
}

fn decode_entities(s: &str) -> String {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);").expect("valid regex"));
    re.replace_all(s, |c: &regex::Captures<'_>| {
        let e = &c[1];
        let decoded = match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            _ if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        decoded.map(String::from).unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn excerpt(body: &[u8]) -> String {
    let text = collapse(&String::from_utf8_lossy(&body[..body.len().min(1024)]));
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Classifies a failed TLS handshake, using the leaf certificate the server
/// presented (if it got that far).
fn tls_failure(spec: &ServeSpec, err: &(dyn StdError + 'static), seen: Option<CertificateDer<'static>>) -> Failure {
    let certificate = seen.as_deref().and_then(CertSummary::from_der);
    if let Some(c) = &certificate {
        if c.is_traefik_default() {
            return Failure::TraefikDefaultCertificate {
                domain: spec.domain.clone(),
                certificate: c.clone(),
            };
        }
    }
    let rustls_err = causes(err).find_map(|e| e.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => Failure::WrongName {
            domain: spec.domain.clone(),
            certificate,
        },
        Some(rustls::Error::InvalidCertificate(ce)) => Failure::UntrustedCertificate {
            domain: spec.domain.clone(),
            ca_file: spec.ca_file.clone(),
            certificate,
            detail: match ce {
                CertificateError::UnknownIssuer => "it is not issued by that CA (unknown issuer)".into(),
                CertificateError::BadSignature => "its signature does not verify with that CA".into(),
                other => format!("{other:?}"),
            },
        },
        Some(other) => Failure::Tls {
            domain: spec.domain.clone(),
            addr: spec.traefik,
            detail: other.to_string(),
        },
        None => Failure::Tls {
            domain: spec.domain.clone(),
            addr: spec.traefik,
            detail: innermost_io(err).map_or_else(|| chain(err), io::Error::to_string),
        },
    }
}

/// Verifies like rustls's WebPKI verifier (only the given roots) and keeps
/// the leaf certificate presented, so a rejected certificate can still be
/// named (Traefik's default certificate, a foreign CA's).
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl Recording {
    fn new(roots: Arc<RootCertStore>, provider: Arc<CryptoProvider>) -> Result<Recording, ServeError> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| ServeError::TlsSetup(e.to_string()))?;
        Ok(Recording {
            inner,
            seen: Mutex::new(None),
        })
    }

    fn seen(&self) -> Option<CertificateDer<'static>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.clone().into_owned());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How far the TLS handshake of one attempt got, as rustls tells its
/// session store, which keeps nothing: `hello` when rustls builds the
/// ClientHello (the TCP connection to Traefik is up: the set-up phase is
/// over), `finished` when the server's Finished is verified (TLS 1.3: the
/// key-exchange hint is saved; TLS 1.2: the session is saved, which rustls
/// does when the server gave a session id or ticket, as Go's TLS does).
#[derive(Debug, Default)]
struct Progress {
    hello: AtomicBool,
    finished: AtomicBool,
}

impl Progress {
    fn hello(&self) -> bool {
        self.hello.load(Ordering::SeqCst)
    }

    fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for Progress {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {
        self.finished.store(true, Ordering::SeqCst);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.hello.store(true, Ordering::SeqCst);
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {
        self.finished.store(true, Ordering::SeqCst);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.hello.store(true, Ordering::SeqCst);
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {}

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.hello.store(true, Ordering::SeqCst);
        None
    }
}

/// The trust anchors in PEM file `path` (the wildcard CA), and nothing else:
/// no system roots.
///
/// # Errors
/// What is wrong with the file, in words for a `CaFile` error: unreadable,
/// bad PEM, a certificate unusable as an anchor, or no `CERTIFICATE` block.
pub fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("bad PEM ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in it is not usable as a trust anchor ({e})"))?;
    }
    if roots.is_empty() {
        return Err("it holds no PEM `CERTIFICATE` block".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {

    #[test]
    fn attempts_start_short_and_grow_to_the_timeout() {
        let t = Duration::from_secs(20);
        let limits: Vec<u64> = (1..=7).map(|n| super::attempt_limit(t, n).as_secs()).collect();
        assert_eq!(limits, [2, 4, 8, 16, 20, 20, 20]);
        assert_eq!(super::attempt_limit(Duration::from_secs(1), 1), Duration::from_secs(1));
        assert_eq!(super::attempt_limit(t, u32::MAX), t);
    }

    use super::*;

    fn spec() -> ServeSpec {
        ServeSpec::new("app.ci.test", "/nonexistent/ca.crt")
    }

    fn cert() -> CertSummary {
        CertSummary {
            subject: "CN=*.ci.test".into(),
            issuer: "CN=cc-ci TEST-ONLY CA".into(),
            dns_names: vec!["*.ci.test".into()],
            not_after: String::new(),
        }
    }

    fn answer(status: u16, ct: Option<&str>, nosniff: bool, body: &str) -> Answer {
        Answer {
            status,
            content_type: ct.map(str::to_string),
            nosniff,
            location: None,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn judged(spec: &ServeSpec, a: Answer) -> Verdict {
        judge(spec, a, cert(), Duration::ZERO)
    }

    #[test]
    fn traefik_404_is_recognised_exactly() {
        let v = judged(
            &spec(),
            answer(404, Some("text/plain; charset=utf-8"), true, TRAEFIK_NOT_FOUND_BODY),
        );
        assert!(matches!(v, Verdict::Fail(Failure::TraefikNotFound { .. })), "{v}");
        assert!(v.is_not_yet());
        // Even when a 404 is expected, Traefik's own 404 is a failure.
        let mut s = spec();
        s.expect = ExpectStatus::AnyOf(vec![404]);
        let v = judged(
            &s,
            answer(404, Some("text/plain; charset=utf-8"), true, TRAEFIK_NOT_FOUND_BODY),
        );
        assert!(matches!(v, Verdict::Fail(Failure::TraefikNotFound { .. })), "{v}");
        // An app's 404 is not Traefik's: an HTML page, or the same text without nosniff.
        for a in [
            answer(404, Some("text/html"), false, "<title>Not Found</title>"),
            answer(404, Some("text/plain; charset=utf-8"), false, TRAEFIK_NOT_FOUND_BODY),
            answer(404, Some("text/plain; charset=utf-8"), true, "404 page not found"),
        ] {
            let v = judged(&spec(), a);
            assert!(
                matches!(v, Verdict::Fail(Failure::UnexpectedStatus { status: 404, .. })),
                "{v}"
            );
            assert!(!v.is_not_yet());
        }
        let v = judged(&s, answer(404, Some("text/html"), false, "<title>Not Found</title>"));
        assert!(matches!(v, Verdict::Pass(_)), "{v}");
    }

    #[test]
    fn backend_errors_name_their_source() {
        for (status, body) in [
            (502, "Bad Gateway"),
            (504, "Gateway Timeout"),
            (503, "no available server\n"),
        ] {
            let v = judged(&spec(), answer(status, None, false, body));
            assert!(
                matches!(v, Verdict::Fail(Failure::NoHealthyBackend { from_traefik: true, .. })),
                "{v}"
            );
            assert!(v.is_not_yet());
            assert!(v.to_string().contains("Traefik has a router"), "{v}");
        }
        let v = judged(
            &spec(),
            answer(502, Some("text/html"), false, "<h1>502 Bad Gateway</h1>nginx"),
        );
        assert!(
            matches!(
                v,
                Verdict::Fail(Failure::NoHealthyBackend {
                    from_traefik: false,
                    ..
                })
            ),
            "{v}"
        );
        assert!(v.to_string().contains("the app answered 502 Bad Gateway itself"), "{v}");
        // Traefik's own 503 fails even if 503 were expected; the app's own 503 then passes.
        let mut s = spec();
        s.expect = ExpectStatus::AnyOf(vec![503]);
        let v = judged(&s, answer(503, None, false, "no available server\n"));
        assert!(matches!(v, Verdict::Fail(_)), "{v}");
        let v = judged(&s, answer(503, Some("text/html"), false, "maintenance"));
        assert!(matches!(v, Verdict::Pass(_)), "{v}");
    }

    #[test]
    fn statuses_title_and_content() {
        let mut s = spec();
        let mut redirect = answer(302, None, false, "");
        redirect.location = Some("/login".into());
        let v = judged(&s, redirect.clone());
        assert!(
            matches!(&v, Verdict::Pass(p) if p.location.as_deref() == Some("/login")),
            "{v}"
        );
        let v = judged(&s, answer(500, None, false, "oops"));
        assert!(
            matches!(v, Verdict::Fail(Failure::UnexpectedStatus { status: 500, .. })),
            "{v}"
        );
        assert!(v.to_string().contains("expected any 2xx or 3xx"), "{v}");
        s.expect = ExpectStatus::AnyOf(vec![200]);
        let v = judged(&s, redirect);
        assert!(v.to_string().contains("redirect to `/login`, not followed"), "{v}");

        let page = "<html><head><TITLE lang=en>\n  Hello &amp; welcome &#8211; Wiki\n</TITLE></head><body>hi</body>";
        s.title = Some(Regex::new("^Hello & welcome – Wiki$").unwrap());
        s.content = Some(Regex::new("<body>hi").unwrap());
        let v = judged(&s, answer(200, None, false, page));
        assert!(
            matches!(&v, Verdict::Pass(p) if p.title.as_deref() == Some("Hello & welcome – Wiki")),
            "{v}"
        );
        s.title = Some(Regex::new("Nextcloud").unwrap());
        let v = judged(&s, answer(200, None, false, page));
        assert!(
            matches!(v, Verdict::Fail(Failure::TitleMismatch { title: Some(_), .. })),
            "{v}"
        );
        let v = judged(&s, answer(200, None, false, "<p>no title</p>"));
        assert!(
            matches!(v, Verdict::Fail(Failure::TitleMismatch { title: None, .. })),
            "{v}"
        );
        s.title = None;
        s.content = Some(Regex::new("welcome back").unwrap());
        let v = judged(&s, answer(200, None, false, page));
        assert!(matches!(v, Verdict::Fail(Failure::ContentMismatch { .. })), "{v}");
    }

    #[test]
    fn default_certificate_is_recognised_by_itself() {
        let traefik = CertSummary {
            subject: "CN=TRAEFIK DEFAULT CERT".into(),
            issuer: "CN=TRAEFIK DEFAULT CERT".into(),
            dns_names: vec!["0123abcd0123abcd0123abcd0123abcd.0123abcd0123abcd0123abcd0123abcd.traefik.default".into()],
            not_after: String::new(),
        };
        assert!(traefik.is_traefik_default());
        let renamed = CertSummary {
            subject: "CN=something".into(),
            ..traefik
        };
        assert!(renamed.is_traefik_default());
        assert!(!cert().is_traefik_default());
    }

    #[tokio::test]
    async fn spec_problems_are_errors_without_attempts() {
        let r = check(&spec()).await;
        assert!(matches!(r.verdict, Verdict::Error(ServeError::CaFile { .. })), "{r}");
        assert_eq!(r.attempts, 0);
        let mut s = spec();
        s.domain = "not a domain".into();
        let r = check(&s).await;
        assert!(matches!(r.verdict, Verdict::Error(ServeError::Domain { .. })), "{r}");
        let mut s = spec();
        s.path = "index.html".into();
        let r = check(&s).await;
        assert!(matches!(r.verdict, Verdict::Error(ServeError::Path { .. })), "{r}");
    }
}
