//! The serve rung's screenshot: a PNG of the app's front page, taken with
//! Debian's headless Chromium once the page has actually rendered.
//!
//! The earlier Python cc-ci shot single-page apps before their JavaScript had
//! drawn anything, so the pictures came out blank. [`take`] therefore waits
//! for BOTH of these, polled every [`POLL`]:
//!
//! - **network idle**: no request of the page in flight for [`NETWORK_QUIET`]
//!   (tracked from the DevTools `Network` events, like Puppeteer's
//!   `networkidle0`), and the navigation itself finished (load event);
//! - **something to see**: `document.body` has visible text (`innerText`) or
//!   a visible element of non-zero size that draws something by itself (an
//!   image, SVG, canvas, video, iframe, form control, or an element with a
//!   background image or colour). An empty `<div id="root">` does not count.
//!
//! A page that has something to see but never goes idle (long polling,
//! a hung image) is shot anyway at the end of the wait, flagged in
//! [`Shot::network_idle`]. A page that stays empty is an error
//! ([`ShotError::StayedBlank`]); no picture is written then.
//!
//! How the browser reaches the app: exactly like the serve check
//! (`crate::probe::serve`), without DNS. `--host-resolver-rules="MAP <domain>
//! <addr>"` sends the URL's host to [`ShotSpec::resolve_to`] (Traefik's
//! address), so SNI and `Host` are the app's domain.
//!
//! How the browser trusts the certificate ([`Trust`]): Chromium on Linux has
//! no per-profile way to add a CA (its NSS database lives under `$HOME` and
//! needs `certutil`), and `--ignore-certificate-errors` would accept anything,
//! Traefik's default certificate included. Chromium's
//! `--ignore-certificate-errors-spki-list` (honoured only with a
//! `--user-data-dir`, which we always pass) accepts a chain in which some
//! certificate's public key has one of the given SHA-256 hashes, and then
//! skips every other check (name, dates, issuer) for it. So with
//! [`Trust::CaFile`] we first make one TLS handshake ourselves (rustls, to the
//! same address with the same SNI), verify the presented chain against that
//! CA only (webpki: issuer, name, validity), and pin the public key of the
//! leaf we verified. Chromium then accepts exactly that key; any other
//! certificate (a different key, Traefik's default) fails its own checks and
//! surfaces as [`ShotError::Navigation`] with `net::ERR_CERT_...`.
//!
//! Process hygiene: Chromium runs in its own process group with a fresh
//! `--user-data-dir` under [`ShotSpec::scratch_dir`]; the whole group is
//! killed (SIGKILL) and the directory removed whatever happens, on success,
//! error, timeout, or when the future is dropped. It is started through
//! util-linux's `setpriv --pdeathsig KILL`, so it also dies when the
//! process that started it is killed outright (then only its profile
//! directory is left, in the scratch folder).
//!
//! Best effort: the caller records the screenshot or the error's reason next
//! to the rung and never changes the rung's status because of it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, NavigateParams};
use chromiumoxide::error::CdpError;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// Where Debian's `chromium` package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Environment variable naming another Chromium binary.
pub const CHROMIUM_ENV: &str = "CCCI_CHROMIUM";
/// Width of the screenshot in CSS pixels (device scale factor 1).
pub const WIDTH: u32 = 1280;
/// Height of the screenshot in CSS pixels.
pub const HEIGHT: u32 = 800;
/// Default time for the whole screenshot, browser start to file written.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
/// How long no request may be in flight before the network counts as idle.
pub const NETWORK_QUIET: Duration = Duration::from_millis(500);
/// How often the page is probed while waiting.
pub const POLL: Duration = Duration::from_millis(100);
/// Time kept back from the budget for the capture and the file write.
const CAPTURE_RESERVE: Duration = Duration::from_secs(3);
/// Lines of Chromium's stderr kept for error messages.
const STDERR_TAIL: usize = 15;

/// The flags every run gets (see the module docs and docs/design.md): headless,
/// no sandbox (we run as root / in a CI agent), no GPU, and nothing that
/// talks to Google's services on its own.
const BASE_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    "--password-store=basic",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// What the page is probed with: where it is, and whether it shows anything.
const PROBE_JS: &str = r#"(() => {
  const out = { href: String(location.href), title: String(document.title || ''), text: 0, boxes: 0 };
  const b = document.body;
  if (!b) return out;
  out.text = (b.innerText || '').trim().length;
  const drawn = 'img,svg,canvas,video,iframe,object,embed,input,button,select,textarea,progress,meter';
  let seen = 0;
  for (const el of b.querySelectorAll('*')) {
    if (++seen > 5000 || out.boxes > 0) break;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || s.display === 'none' || Number(s.opacity) === 0) continue;
    const bg = s.backgroundColor;
    const painted = bg && bg !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(bg);
    if (el.matches(drawn) || s.backgroundImage !== 'none' || painted) out.boxes++;
  }
  return out;
})()"#;

/// Which certificates Chromium accepts for an `https://` URL (ignored for
/// `http://`). See the module docs for why pinning is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Verify the server's chain against the CA certificate(s) in this PEM
    /// file (nothing else trusted), then let Chromium accept only the public
    /// key of the leaf that was verified. What cc-ci uses with its wildcard CA.
    CaFile(PathBuf),
    /// Accept chains containing a certificate whose SubjectPublicKeyInfo has
    /// one of these SHA-256 hashes (base64, as [`spki_pins`] computes them).
    /// Chromium skips ALL other checks for such a chain.
    SpkiSha256(Vec<String>),
    /// Chromium's own trust store (a publicly trusted certificate).
    System,
}

/// What to shoot. Build with [`ShotSpec::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct ShotSpec {
    /// The page, e.g. `https://abc123.ci.example.org/`.
    pub url: String,
    /// Where the URL's host is sent instead of asking DNS (Traefik's address,
    /// e.g. `crate::probe::serve::DEFAULT_TRAEFIK_ADDR`); its port replaces the URL's.
    pub resolve_to: SocketAddr,
    /// Which certificates to accept.
    pub trust: Trust,
    /// The PNG to write (through a temporary file in the same directory and a
    /// rename; the directory is created if missing).
    pub out: PathBuf,
    /// Viewport width. Default [`WIDTH`].
    pub width: u32,
    /// Viewport height. Default [`HEIGHT`].
    pub height: u32,
    /// Time for everything, browser start to file written. Default [`DEFAULT_BUDGET`].
    pub budget: Duration,
    /// The Chromium binary. Default: `$CCCI_CHROMIUM`, else [`DEFAULT_CHROMIUM`].
    pub chromium: PathBuf,
    /// Where the throw-away `--user-data-dir` is made. Default: the system
    /// temporary directory.
    pub scratch_dir: PathBuf,
}

impl ShotSpec {
    /// A 1280x800 shot of `url` with `url`'s host resolved to `resolve_to`,
    /// written to `out`, with the defaults documented on each field.
    pub fn new(url: impl Into<String>, resolve_to: SocketAddr, trust: Trust, out: impl Into<PathBuf>) -> ShotSpec {
        ShotSpec {
            url: url.into(),
            resolve_to,
            trust,
            out: out.into(),
            width: WIDTH,
            height: HEIGHT,
            budget: DEFAULT_BUDGET,
            chromium: chromium_from_env(),
            scratch_dir: std::env::temp_dir(),
        }
    }
}

/// `$CCCI_CHROMIUM` if set and not empty, else [`DEFAULT_CHROMIUM`].
pub fn chromium_from_env() -> PathBuf {
    std::env::var_os(CHROMIUM_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM))
}

/// A screenshot written to disk.
#[derive(Debug, Clone)]
pub struct Shot {
    /// The PNG file ([`ShotSpec::out`]).
    pub path: PathBuf,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// The HTTP status of the page's main document, if one was seen.
    pub http_status: Option<u16>,
    /// The page's title when it was shot.
    pub title: String,
    /// Whether the network was idle when shot; `false` means the wait ran
    /// out while requests were still in flight (the page showed content).
    pub network_idle: bool,
    /// How long the shot waited for the browser: its start until DevTools
    /// answered, or, with a Chromium started ahead ([`take_with`]), what was
    /// left of that (zero when it was ready).
    pub launch: Duration,
    /// Navigation start until the page counted as rendered.
    pub render: Duration,
    /// Everything, the call to file written.
    pub elapsed: Duration,
    /// Whether a Chromium started ahead was used.
    pub ahead: Ahead,
}

impl fmt::Display for Shot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}x{}", self.path.display(), self.width, self.height)?;
        if let Some(s) = self.http_status {
            write!(f, ", HTTP {s}")?;
        }
        if !self.title.is_empty() {
            write!(f, ", title `{}`", self.title)?;
        }
        if !self.network_idle {
            f.write_str(", network still busy")?;
        }
        write!(f, ") in {} (", secs(self.elapsed))?;
        match &self.ahead {
            Ahead::NotStarted => write!(f, "browser {}", secs(self.launch))?,
            Ahead::Used => write!(f, "browser started ahead, waited {}", secs(self.launch))?,
            Ahead::Unused(why) => write!(
                f,
                "browser {}; the one started ahead was not used: {why}",
                secs(self.launch)
            )?,
        }
        write!(f, ", render {})", secs(self.render))
    }
}

/// Why no screenshot was taken. Every message says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum ShotError {
    /// The URL cannot be used.
    #[error("screenshot URL `{url}`: {problem}; pass an absolute http(s) URL such as `https://<app domain>/`")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// No usable Chromium binary.
    #[error("chromium not found at {}: {problem}; install Debian's `chromium` package (scripts/ensure-packages) or point {CHROMIUM_ENV} at a Chromium binary", path.display())]
    ChromiumMissing {
        /// The path tried.
        path: PathBuf,
        /// Missing, not a file, not executable.
        problem: String,
    },
    /// The CA file could not be used.
    #[error("CA certificate file {}: {problem}; pass the PEM certificate of the CA that issued the wildcard certificate", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Our own TLS check of the server's certificate (for [`Trust::CaFile`]) failed.
    #[error("the certificate at {addr} for `{domain}` is not one the CA vouches for, or the TLS handshake failed: {detail}; the serve check says more")]
    Certificate {
        /// The app's domain (SNI).
        domain: String,
        /// Where we connected.
        addr: SocketAddr,
        /// What rustls or the connection said.
        detail: String,
    },
    /// Chromium could not be started or died before DevTools answered.
    #[error("chromium {} did not start: {problem}{}", path.display(), tail(stderr))]
    Launch {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        problem: String,
        /// Chromium's last stderr lines.
        stderr: Vec<String>,
    },
    /// The DevTools protocol failed (Chromium crashed, protocol error).
    #[error("talking to chromium over DevTools failed while {stage}: {detail}{}", tail(stderr))]
    Devtools {
        /// What was being done.
        stage: &'static str,
        /// The error.
        detail: String,
        /// Chromium's last stderr lines.
        stderr: Vec<String>,
    },
    /// Chromium could not load the page (connection refused, certificate
    /// rejected, DNS, ...): `net::ERR_*` as Chromium names it.
    #[error("chromium could not load {url} (sent to {addr}): {error}{}", hint(error))]
    Navigation {
        /// The URL.
        url: String,
        /// Where the host was resolved to.
        addr: SocketAddr,
        /// Chromium's error, e.g. `net::ERR_CONNECTION_REFUSED`.
        error: String,
    },
    /// The page loaded but showed nothing (no visible text, no drawn
    /// element) for the whole wait.
    #[error("the page {url} stayed blank for {} (HTTP {}, {}): no visible text or drawn element in document.body; does the app's JavaScript fail to load or to start?", secs(*waited), status(*http_status), busy(in_flight))]
    StayedBlank {
        /// The URL.
        url: String,
        /// How long it was watched after navigation started.
        waited: Duration,
        /// HTTP status of the main document.
        http_status: Option<u16>,
        /// Requests still in flight at the end (URLs, at most a few).
        in_flight: Vec<String>,
    },
    /// A stage did not finish within the budget.
    #[error("screenshot budget of {} spent while {stage}{}", secs(*budget), if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Timeout {
        /// What was being done.
        stage: &'static str,
        /// The budget.
        budget: Duration,
        /// What was still pending.
        detail: String,
    },
    /// The picture Chromium returned is not what was asked for.
    #[error("chromium returned an unusable screenshot: {0}")]
    Capture(String),
    /// The PNG could not be written.
    #[error("cannot write the screenshot {}: {source}; is the results directory writable?", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The throw-away profile directory could not be made.
    #[error("cannot create chromium's profile directory under {}: {source}; is the temporary directory writable?", dir.display())]
    Scratch {
        /// The parent directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; chromium's last stderr lines:\n  {}", lines.join("\n  "))
    }
}

fn hint(error: &str) -> &'static str {
    if error.contains("ERR_CERT") {
        "; chromium does not trust the certificate presented (not the pinned key, or not in its store with Trust::System)"
    } else if error.contains("ERR_CONNECTION_REFUSED") {
        "; nothing listens there: is Traefik running?"
    } else {
        ""
    }
}

fn status(s: Option<u16>) -> String {
    s.map_or_else(|| "status unknown".into(), |s| s.to_string())
}

fn busy(in_flight: &[String]) -> String {
    if in_flight.is_empty() {
        "network idle".into()
    } else {
        format!("still loading {}", in_flight.join(", "))
    }
}

/// The base64 SHA-256 hashes of the SubjectPublicKeyInfo of every
/// certificate in a PEM text, as `--ignore-certificate-errors-spki-list`
/// wants them (`openssl x509 -pubkey | openssl pkey -pubin -outform der |
/// openssl dgst -sha256 -binary | base64`).
pub fn spki_pins(pem: &[u8]) -> Result<Vec<String>, String> {
    let mut pins = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem) {
        let der = der.map_err(|e| format!("bad PEM ({e})"))?;
        pins.push(spki_pin(&der)?);
    }
    if pins.is_empty() {
        return Err("no PEM `CERTIFICATE` block".into());
    }
    Ok(pins)
}

fn spki_pin(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate ({e})"))?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Takes the screenshot described by `spec` (see the module docs): starts
/// Chromium, loads the page, waits until it has rendered, writes the PNG.
/// Chromium is killed and its profile removed before this returns.
pub async fn take(spec: &ShotSpec) -> Result<Shot, ShotError> {
    take_with(spec, None).await
}

/// As [`take`], with a Chromium started ahead by [`prelaunch`]: it is used
/// when it started and was started for the same host, address, Chromium,
/// viewport and certificate pin that `spec` gives now (the certificate is
/// checked again here, exactly as [`take`] checks it); otherwise it is
/// killed, a fresh Chromium is started as [`take`] does, and
/// [`Shot::ahead`] says why. A Chromium started ahead shoots one page only.
pub async fn take_with(spec: &ShotSpec, ahead: Option<Prelaunched>) -> Result<Shot, ShotError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + spec.budget;
    let target = Target::parse(&spec.url)?;
    check_chromium(&spec.chromium)?;
    let pins = pins_for(spec, &target, deadline).await?;
    let (ready, ahead) = match ahead {
        None => (None, Ahead::NotStarted),
        Some(a) => match a.ready(spec, &target, &pins, deadline).await {
            Ok(session) => (Some(session), Ahead::Used),
            Err(why) => (None, Ahead::Unused(why)),
        },
    };
    let mut session = match ready {
        Some(session) => session,
        None => {
            let mut session = Session::start(spec, &target, &pins)?;
            session.connect(spec, deadline).await?;
            session
        }
    };
    let launch = start.elapsed();
    let mut result = session.shoot(spec, start, launch, deadline).await;
    // Chromium aborts a load when the host's network changes under it
    // (`net::ERR_NETWORK_CHANGED`: an interface or address came or went,
    // as Docker's veths do while other apps deploy). Nothing is wrong with
    // the app then: the page is loaded again in a new tab, at most twice,
    // within the budget.
    for _ in 0..2 {
        match &result {
            Err(ShotError::Navigation { error, .. })
                if error.contains("ERR_NETWORK_CHANGED") && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(url = %spec.url, "the network changed during the load; loading again");
                result = session.shoot(spec, start, launch, deadline).await;
            }
            _ => break,
        }
    }
    drop(session);
    let mut shot = result?;
    shot.ahead = ahead;
    shot.elapsed = start.elapsed();
    tracing::info!(url = %spec.url, shot = %shot, "screenshot taken");
    Ok(shot)
}

/// The SPKI pins Chromium gets for `target` under `spec.trust` (see
/// [`Trust`]): for [`Trust::CaFile`], the leaf presented at
/// `spec.resolve_to`, verified against that CA first.
async fn pins_for(spec: &ShotSpec, target: &Target, deadline: tokio::time::Instant) -> Result<Vec<String>, ShotError> {
    match (&target.https, &spec.trust) {
        (false, _) | (true, Trust::System) => Ok(Vec::new()),
        (true, Trust::SpkiSha256(p)) => Ok(p.clone()),
        (true, Trust::CaFile(ca)) => {
            within(deadline, spec.budget, "checking the server's certificate", async {
                verified_leaf_pin(ca, &target.host, spec.resolve_to).await
            })
            .await?
        }
    }
}

/// A Chromium being started ahead of a screenshot ([`prelaunch`]), so that
/// its start (about a second on a 2-core host) overlaps a wait on Docker
/// instead of lengthening the rung. Dropping it kills that Chromium and
/// removes its profile, whether or not it has finished starting.
pub struct Prelaunched {
    task: JoinHandle<Result<Launched, ShotError>>,
}

/// What [`prelaunch`] started, and for what.
struct Launched {
    session: Session,
    host: String,
    resolve_to: SocketAddr,
    chromium: PathBuf,
    size: (u32, u32),
    pins: Vec<String>,
}

/// Whether a shot used a Chromium started ahead ([`take_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ahead {
    /// None was started ahead: the shot started its own.
    NotStarted,
    /// The shot used the one started ahead.
    Used,
    /// One was started ahead but not used, for this reason; the shot
    /// started its own.
    Unused(String),
}

/// Starts Chromium for a later shot of `spec` in the background: checks the
/// certificate as [`take`] does (for [`Trust::CaFile`], the leaf Traefik
/// presents for the URL's host, which for an app not routed yet is the
/// default certificate: the wildcard one on a cc-ci host), then starts the
/// browser with that pin and connects DevTools. Hand the result to
/// [`take_with`]. Needs a Tokio runtime. Never fails here: a failure to
/// start is what [`take_with`] finds, and it then starts a fresh one.
pub fn prelaunch(spec: &ShotSpec) -> Prelaunched {
    let spec = spec.clone();
    Prelaunched {
        task: tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + spec.budget;
            let target = Target::parse(&spec.url)?;
            check_chromium(&spec.chromium)?;
            let pins = pins_for(&spec, &target, deadline).await?;
            let mut session = Session::start(&spec, &target, &pins)?;
            session.connect(&spec, deadline).await?;
            Ok(Launched {
                session,
                host: target.host,
                resolve_to: spec.resolve_to,
                chromium: spec.chromium.clone(),
                size: (spec.width, spec.height),
                pins,
            })
        }),
    }
}

impl Prelaunched {
    /// The started browser, when it is fit to shoot `spec` (waiting for its
    /// start until `deadline`); else why not.
    async fn ready(
        mut self,
        spec: &ShotSpec,
        target: &Target,
        pins: &[String],
        deadline: tokio::time::Instant,
    ) -> Result<Session, String> {
        let launched = match tokio::time::timeout_at(deadline, &mut self.task).await {
            Err(_) => return Err("it had not started within the screenshot's budget".into()),
            Ok(Err(e)) => return Err(format!("its start was interrupted ({e})")),
            Ok(Ok(Err(e))) => return Err(format!("it did not start: {e}")),
            Ok(Ok(Ok(l))) => l,
        };
        let mismatch = if launched.host != target.host || launched.resolve_to != spec.resolve_to {
            Some("it was started for another host or address")
        } else if launched.chromium != spec.chromium || launched.size != (spec.width, spec.height) {
            Some("it was started with another binary or viewport")
        } else if launched.pins != pins {
            Some("the certificate presented now is not the one it was started to accept")
        } else {
            None
        };
        match mismatch {
            Some(why) => Err(why.into()),
            None => Ok(launched.session),
        }
    }
}

impl Drop for Prelaunched {
    fn drop(&mut self) {
        // A finished task's output (the Session) is dropped with the handle;
        // a running one is cancelled, dropping the Session it holds.
        self.task.abort();
    }
}

/// util-linux's `setpriv` (Debian's `util-linux`, essential; NixOS's
/// `util-linux`): on `PATH`, else `/usr/bin/setpriv`. `None` when neither
/// exists; Chromium then starts without a parent-death signal, and a
/// SIGKILLed run can leave its browser behind (logged once).
fn setpriv() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let on_path = std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("setpriv"))
                    .find(|c| c.is_file())
            });
            let found = on_path.or_else(|| Some(PathBuf::from("/usr/bin/setpriv")).filter(|p| p.is_file()));
            if found.is_none() {
                tracing::warn!("no setpriv (util-linux) found: Chromium runs without a parent-death signal");
            }
            found
        })
        .clone()
}

/// The parts of the URL that matter here.
struct Target {
    host: String,
    https: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ShotError> {
        let bad = |problem: &str| ShotError::Url {
            url: url.into(),
            problem: problem.into(),
        };
        let uri: http::Uri = url.parse().map_err(|e| bad(&format!("does not parse ({e})")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?;
        if host.contains([',', ' ']) {
            return Err(bad("the host contains a comma or space"));
        }
        Ok(Target {
            host: host.to_string(),
            https,
        })
    }
}

fn check_chromium(path: &Path) -> Result<(), ShotError> {
    let missing = |problem: String| ShotError::ChromiumMissing {
        path: path.into(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| missing(e.to_string()))?;
    if !meta.is_file() {
        return Err(missing("not a file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(missing("not executable".into()));
    }
    Ok(())
}

/// Runs `fut` until `deadline`, naming `stage` if it runs out.
async fn within<T>(
    deadline: tokio::time::Instant,
    budget: Duration,
    stage: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, ShotError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| ShotError::Timeout {
            stage,
            budget,
            detail: String::new(),
        })
}

/// One TLS handshake to `addr` with SNI `host`, verified against the CA in
/// `ca` only; returns the pin of the leaf that passed.
async fn verified_leaf_pin(ca: &Path, host: &str, addr: SocketAddr) -> Result<Vec<String>, ShotError> {
    let ca_err = |problem: String| ShotError::CaFile {
        path: ca.into(),
        problem,
    };
    let roots = crate::probe::serve::ca_roots(ca).map_err(ca_err)?;
    let cert_err = |detail: String| ShotError::Certificate {
        domain: host.into(),
        addr,
        detail,
    };
    let name = ServerName::try_from(host.to_string()).map_err(|e| cert_err(format!("bad server name ({e})")))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            // Let Chromium report it the way it reports everything else.
            return ShotError::Navigation {
                url: format!("https://{host}/"),
                addr,
                error: format!("net::ERR_CONNECTION_REFUSED ({e})"),
            };
        }
        cert_err(format!("cannot connect ({e})"))
    })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| cert_err(e.to_string()))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| cert_err("the server sent no certificate".into()))?;
    Ok(vec![spki_pin(leaf).map_err(cert_err)?])
}

/// What the page's network activity looks like, fed by DevTools events.
#[derive(Debug)]
struct Net {
    in_flight: HashMap<String, String>,
    /// Requests that finished, so a late `requestWillBeSent` (events of
    /// different kinds arrive through different channels) is not counted.
    done: HashSet<String>,
    last_change: Instant,
    /// HTTP status per request id of document responses.
    documents: HashMap<String, u16>,
}

impl Net {
    fn sent(&mut self, id: &str, url: &str) {
        if !self.done.contains(id) {
            self.in_flight.insert(id.into(), url.into());
        }
        self.last_change = Instant::now();
    }

    fn finished(&mut self, id: &str) {
        self.in_flight.remove(id);
        self.done.insert(id.into());
        self.last_change = Instant::now();
    }

    fn pending(&self) -> Vec<String> {
        let mut v: Vec<String> = self.in_flight.values().take(3).cloned().collect();
        if self.in_flight.len() > 3 {
            v.push(format!("and {} more", self.in_flight.len() - 3));
        }
        v
    }
}

/// What [`PROBE_JS`] returns.
#[derive(Debug, Default, serde::Deserialize)]
struct Probe {
    href: String,
    title: String,
    text: u64,
    boxes: u64,
}

impl Probe {
    fn shows_something(&self) -> bool {
        self.text > 0 || self.boxes > 0
    }
}

/// A running Chromium: its process group, profile directory, DevTools
/// connection. Dropping it kills the group and removes the directory.
struct Session {
    child: Option<Child>,
    profile: PathBuf,
    stderr: Arc<Mutex<VecDeque<String>>>,
    ws: Option<tokio::sync::oneshot::Receiver<String>>,
    tasks: Vec<JoinHandle<()>>,
    browser: Option<Browser>,
}

impl Session {
    fn start(spec: &ShotSpec, target: &Target, pins: &[String]) -> Result<Session, ShotError> {
        let profile = spec
            .scratch_dir
            .join(format!("cc-ci-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&spec.scratch_dir)
            .and_then(|_| std::fs::create_dir(&profile))
            .and_then(|_| std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| ShotError::Scratch {
                dir: spec.scratch_dir.clone(),
                source,
            })?;
        let mut session = Session {
            child: None,
            profile,
            stderr: Arc::new(Mutex::new(VecDeque::new())),
            ws: None,
            tasks: Vec::new(),
            browser: None,
        };
        // Chromium dies with us even when nothing can drop the session (the
        // run SIGKILLed while a browser started ahead waits): setpriv sets
        // the parent-death signal, then execs Chromium (same pid, same
        // process group). The parent is the spawning thread: a Tokio
        // worker here, which lives as long as the runtime.
        let mut cmd = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&spec.chromium);
                c
            }
            None => Command::new(&spec.chromium),
        };
        cmd.args(BASE_FLAGS)
            .arg(format!("--user-data-dir={}", session.profile.display()))
            .arg(format!("--window-size={},{}", spec.width, spec.height))
            .arg(format!("--host-resolver-rules=MAP {} {}", target.host, spec.resolve_to));
        if !pins.is_empty() {
            cmd.arg(format!("--ignore-certificate-errors-spki-list={}", pins.join(",")));
        }
        cmd.arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| ShotError::Launch {
            path: spec.chromium.clone(),
            problem: format!("cannot execute it ({e})"),
            stderr: Vec::new(),
        })?;
        let stderr = child.stderr.take();
        session.child = Some(child);
        let (tx, rx) = tokio::sync::oneshot::channel();
        session.ws = Some(rx);
        let lines = session.stderr.clone();
        if let Some(stderr) = stderr {
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.strip_prefix("DevTools listening on ") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(url.trim().to_string());
                        }
                        continue;
                    }
                    let mut l = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if l.len() == STDERR_TAIL {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
        Ok(session)
    }

    fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn devtools(&self, stage: &'static str, e: CdpError) -> ShotError {
        ShotError::Devtools {
            stage,
            detail: e.to_string(),
            stderr: self.stderr_tail(),
        }
    }

    /// Waits for DevTools' address on stderr and connects to it.
    async fn connect(&mut self, spec: &ShotSpec, deadline: tokio::time::Instant) -> Result<(), ShotError> {
        // 1. DevTools address from stderr.
        let rx = self.ws.take().expect("started");
        let ws = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(_)) => {
                let status = self.child.as_mut().and_then(|c| c.wait().ok());
                return Err(ShotError::Launch {
                    path: spec.chromium.clone(),
                    problem: match status {
                        Some(s) => format!("it exited ({s}) before DevTools listened"),
                        None => "its stderr closed before DevTools listened".into(),
                    },
                    stderr: self.stderr_tail(),
                });
            }
            Err(_) => {
                return Err(ShotError::Timeout {
                    stage: "starting chromium",
                    budget: spec.budget,
                    detail: tail(&self.stderr_tail()),
                })
            }
        };
        let config = HandlerConfig {
            ignore_https_errors: false,
            viewport: Some(Viewport {
                width: spec.width,
                height: spec.height,
                device_scale_factor: Some(1.0),
                ..Viewport::default()
            }),
            request_timeout: spec.budget,
            ..HandlerConfig::default()
        };
        let (browser, mut handler) = within(
            deadline,
            spec.budget,
            "connecting to chromium's DevTools",
            Browser::connect_with_config(ws, config),
        )
        .await?
        .map_err(|e| self.devtools("connecting", e))?;
        self.browser = Some(browser);
        self.tasks
            .push(tokio::spawn(async move { while handler.next().await.is_some() {} }));
        Ok(())
    }

    /// Shoots `spec.url` in a new tab of the connected browser; `launch` is
    /// the time the shot waited for the browser.
    async fn shoot(
        &mut self,
        spec: &ShotSpec,
        start: Instant,
        launch: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<Shot, ShotError> {
        // 2. A page, its viewport, and the network watchers.
        let browser = self.browser.as_ref().expect("set above");
        let page = within(deadline, spec.budget, "opening a tab", browser.new_page("about:blank"))
            .await?
            .map_err(|e| self.devtools("opening a tab", e))?;
        let metrics = SetDeviceMetricsOverrideParams::new(spec.width as i64, spec.height as i64, 1.0, false);
        within(deadline, spec.budget, "setting the viewport", page.execute(metrics))
            .await?
            .map_err(|e| self.devtools("setting the viewport", e))?;
        let net = Arc::new(Mutex::new(Net {
            in_flight: HashMap::new(),
            done: HashSet::new(),
            last_change: Instant::now(),
            documents: HashMap::new(),
        }));
        self.watch_network(&page, &net, deadline, spec.budget).await?;

        // 3. Navigate (in the background: chromiumoxide answers after `load`)
        //    and probe until rendered.
        let render_start = Instant::now();
        let nav_page = page.clone();
        let url = spec.url.clone();
        let mut nav = Some(tokio::spawn(
            async move { nav_page.execute(NavigateParams::new(url)).await },
        ));
        let wait_until = deadline
            .checked_sub(CAPTURE_RESERVE.min(spec.budget / 5))
            .unwrap_or(deadline);
        let mut loader: Option<String> = None;
        let mut navigated = false;
        let (probe, idle) = loop {
            if nav.as_ref().is_some_and(|n| n.is_finished()) {
                let joined = nav.take().expect("checked").await;
                match joined {
                    Ok(Ok(resp)) => {
                        if let Some(error) = resp.result.error_text.clone() {
                            return Err(ShotError::Navigation {
                                url: spec.url.clone(),
                                addr: spec.resolve_to,
                                error,
                            });
                        }
                        loader = resp.result.loader_id.as_ref().map(|l| l.inner().clone());
                        navigated = true;
                    }
                    // No `load` event within chromiumoxide's request timeout:
                    // not fatal, the probe decides.
                    Ok(Err(CdpError::Timeout)) => navigated = true,
                    Ok(Err(e)) => return Err(self.devtools("navigating", e)),
                    Err(e) => {
                        return Err(ShotError::Devtools {
                            stage: "navigating",
                            detail: e.to_string(),
                            stderr: self.stderr_tail(),
                        })
                    }
                }
            }
            let probe = self.probe(&page, wait_until).await;
            if probe.href.starts_with("chrome-error:") {
                // Chromium's own error page; the navigation result names the
                // error, give it a moment to arrive.
                if let Some(n) = nav.take() {
                    if let Ok(Ok(Ok(resp))) = tokio::time::timeout(Duration::from_secs(2), n).await {
                        if let Some(error) = resp.result.error_text {
                            return Err(ShotError::Navigation {
                                url: spec.url.clone(),
                                addr: spec.resolve_to,
                                error,
                            });
                        }
                    }
                }
                return Err(ShotError::Navigation {
                    url: spec.url.clone(),
                    addr: spec.resolve_to,
                    error: format!("chromium showed its error page `{}`", probe.title),
                });
            }
            let (idle, in_flight) = {
                let n = net.lock().unwrap_or_else(|p| p.into_inner());
                (
                    n.in_flight.is_empty() && n.last_change.elapsed() >= NETWORK_QUIET,
                    n.pending(),
                )
            };
            if navigated && idle && probe.shows_something() {
                break (probe, true);
            }
            if tokio::time::Instant::now() >= wait_until {
                if probe.shows_something() && probe.href != "about:blank" {
                    break (probe, false);
                }
                let http_status = self.document_status(&net, loader.as_deref());
                if !navigated && http_status.is_none() {
                    return Err(ShotError::Timeout {
                        stage: "loading the page",
                        budget: spec.budget,
                        detail: format!("no answer to the page request yet ({})", busy(&in_flight)),
                    });
                }
                return Err(ShotError::StayedBlank {
                    url: spec.url.clone(),
                    waited: render_start.elapsed(),
                    http_status,
                    in_flight,
                });
            }
            tokio::time::sleep(POLL).await;
        };
        let render = render_start.elapsed();
        if let Some(n) = nav.take() {
            n.abort();
        }
        let http_status = self.document_status(&net, loader.as_deref());

        // 4. Capture and write.
        let params = ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .full_page(false)
            .build();
        let png = within(
            deadline,
            spec.budget,
            "capturing the screenshot",
            page.screenshot(params),
        )
        .await?
        .map_err(|e| self.devtools("capturing the screenshot", e))?;
        let (width, height) = png_size(&png).ok_or_else(|| ShotError::Capture("not a PNG".into()))?;
        if (width, height) != (spec.width, spec.height) {
            return Err(ShotError::Capture(format!(
                "{width}x{height} pixels instead of {}x{}",
                spec.width, spec.height
            )));
        }
        write_atomically(&spec.out, &png)?;
        Ok(Shot {
            path: spec.out.clone(),
            width,
            height,
            http_status,
            title: probe.title,
            network_idle: idle,
            launch,
            render,
            elapsed: start.elapsed(),
            ahead: Ahead::NotStarted,
        })
    }

    /// Subscribes to the page's network events, feeding `net`.
    async fn watch_network(
        &mut self,
        page: &Page,
        net: &Arc<Mutex<Net>>,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<(), ShotError> {
        let stage = "subscribing to network events";
        let mut sent = within(deadline, budget, stage, page.event_listener::<EventRequestWillBeSent>())
            .await?
            .map_err(|e| self.devtools(stage, e))?;
        let mut finished = within(deadline, budget, stage, page.event_listener::<EventLoadingFinished>())
            .await?
            .map_err(|e| self.devtools(stage, e))?;
        let mut failed = within(deadline, budget, stage, page.event_listener::<EventLoadingFailed>())
            .await?
            .map_err(|e| self.devtools(stage, e))?;
        let mut responses = within(deadline, budget, stage, page.event_listener::<EventResponseReceived>())
            .await?
            .map_err(|e| self.devtools(stage, e))?;
        let n = net.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = sent.next().await {
                n.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sent(ev.request_id.inner(), &ev.request.url);
            }
        }));
        let n = net.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = finished.next().await {
                n.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .finished(ev.request_id.inner());
            }
        }));
        let n = net.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = failed.next().await {
                n.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .finished(ev.request_id.inner());
            }
        }));
        let n = net.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = responses.next().await {
                if ev.r#type == ResourceType::Document {
                    let status = u16::try_from(ev.response.status).unwrap_or(0);
                    n.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .documents
                        .insert(ev.request_id.inner().clone(), status);
                }
            }
        }));
        Ok(())
    }

    /// The main document's status: the response for the navigation's loader
    /// (its request id), else the only document seen.
    fn document_status(&self, net: &Arc<Mutex<Net>>, loader: Option<&str>) -> Option<u16> {
        let n = net.lock().unwrap_or_else(|p| p.into_inner());
        match loader {
            Some(l) => n.documents.get(l).copied(),
            None if n.documents.len() == 1 => n.documents.values().next().copied(),
            None => None,
        }
    }

    /// Probes the page; a failed probe (navigation in progress, context
    /// destroyed) counts as "nothing to see yet".
    /// Waits at most 1 s, and not past `until` (plus a little, so a probe
    /// at the very end still runs).
    async fn probe(&self, page: &Page, until: tokio::time::Instant) -> Probe {
        let limit = until
            .saturating_duration_since(tokio::time::Instant::now())
            .clamp(Duration::from_millis(200), Duration::from_secs(1));
        match tokio::time::timeout(limit, page.evaluate_expression(PROBE_JS)).await {
            Ok(Ok(r)) => r.into_value::<Probe>().unwrap_or_default(),
            _ => Probe::default(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.browser = None;
        if let Some(mut child) = self.child.take() {
            // The whole group: the browser and its zygote, renderer, utility
            // processes. Then reap the browser itself.
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        // Processes of the group may still be exiting and writing; retry briefly.
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.profile) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => std::thread::sleep(Duration::from_millis(50)),
                _ => break,
            }
        }
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`, so readers see the old file or the whole new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ShotError> {
    let err = |source| ShotError::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(err)?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(err)?;
    tmp.persist(path).map(drop).map_err(|e| err(e.error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(Target::parse("https://abc.ci.test/").unwrap().https);
        assert!(!Target::parse("http://abc.ci.test:8080/x").unwrap().https);
        assert_eq!(Target::parse("https://abc.ci.test/").unwrap().host, "abc.ci.test");
        for bad in ["ftp://abc.ci.test/", "/relative", "abc.ci.test", "https:///"] {
            assert!(matches!(Target::parse(bad), Err(ShotError::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn png_size_reads_ihdr() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&800u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 800)));
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn messages_name_the_fix() {
        let e = ShotError::ChromiumMissing {
            path: "/nowhere/chromium".into(),
            problem: "No such file or directory".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("/nowhere/chromium") && m.contains("CCCI_CHROMIUM") && m.contains("chromium"),
            "{m}"
        );
        let e = ShotError::StayedBlank {
            url: "https://a.ci.test/".into(),
            waited: Duration::from_millis(4200),
            http_status: Some(200),
            in_flight: vec![],
        };
        let m = e.to_string();
        assert!(m.contains("stayed blank for 4.2 s") && m.contains("HTTP 200"), "{m}");
    }
}
