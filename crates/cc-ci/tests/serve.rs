//! The serve check against the REAL Traefik (v3.7, the official binary scripts/tools fetches),
//! run as a local process with a file provider: the TEST wildcard certificate
//! (key decrypted from tests/keys/wildcard.sops.yaml with cc_ci::host::sops) as the
//! default certificate, routers to tiny HTTP backends in this process.
//! Traefik is found via $CCCI_TRAEFIK or where scripts/tools puts it; without
//! it these tests fail, unless `CCCI_ALLOW_SKIP` allows skipping it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cc_ci::host::sops::{decrypt_file, AgeIdentities};
use cc_ci::probe::serve::{check, ExpectStatus, Failure, ServeError, ServeReport, ServeSpec, Verdict};
use regex::Regex;
use test_support::{test_keys as keys, traefik};

fn test_ca() -> PathBuf {
    keys().join("ca.crt")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n<title>\n  cc-ci test app &amp; friends\n</title></head>\n<body><h1>Welcome to the cc-ci test app</h1></body></html>\n";

/// A tiny HTTP/1.1 backend on a free 127.0.0.1 port: `/` is [`PAGE`],
/// `/redirect` a 302 to `/login`, anything else an HTML 404 of the app's own.
/// Lives as long as the test process.
fn start_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn));
        }
    });
    port
}

fn answer(mut conn: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, extra, body) = match path.as_str() {
        "/" => ("200 OK", "", PAGE.to_string()),
        "/redirect" => ("302 Found", "Location: /login\r\n", String::new()),
        _ => (
            "404 Not Found",
            "",
            "<html><head><title>Not here</title></head><body>The app's own 404</body></html>".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
}

/// A router `name` for `Host(host)` on web-secure with TLS, to `backend` (a URL
/// list; empty = a service without servers).
fn router(name: &str, host: &str, backends: &[String]) -> String {
    let servers = if backends.is_empty() {
        "        servers: []\n".to_string()
    } else {
        let mut s = "        servers:\n".to_string();
        for b in backends {
            s.push_str(&format!("          - url: \"{b}\"\n"));
        }
        s
    };
    format!(
        "http:\n  routers:\n    {name}:\n      rule: \"Host(`{host}`)\"\n      entryPoints: [web-secure]\n      service: {name}\n      tls: {{}}\n  services:\n    {name}:\n      loadBalancer:\n{servers}"
    )
}

/// A real Traefik process; killed (and its log printed on a failing test) on drop.
struct Traefik {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    api: SocketAddr,
}

impl Traefik {
    /// Starts Traefik with a file provider directory holding `sentinel.yml` (a
    /// router `sentinel@file`, so a test can tell when the dynamic
    /// configuration is live), and, if `default_cert`, `tls.yml` making the
    /// TEST wildcard certificate the default certificate.
    fn start(bin: &Path, default_cert: bool) -> Traefik {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = dir.path().join("dynamic");
        std::fs::create_dir(&dynamic).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let d = dir.path().display();
        let static_config = format!(
            "global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n\
             entryPoints:\n  web-secure:\n    address: \"{addr}\"\n  traefik:\n    address: \"{api}\"\n\
             api:\n  insecure: true\n  dashboard: false\n\
             providers:\n  providersThrottleDuration: 200ms\n  file:\n    directory: \"{d}/dynamic\"\n    watch: true\n\
             log:\n  level: DEBUG\n  filePath: \"{d}/traefik.log\"\n\
             accessLog:\n  filePath: \"{d}/access.log\"\n"
        );
        std::fs::write(dir.path().join("traefik.yml"), static_config).unwrap();
        if default_cert {
            let ids = AgeIdentities::from_file(keys().join("age.key")).unwrap();
            let dec = decrypt_file(keys().join("wildcard.sops.yaml"), &ids).unwrap();
            std::fs::write(dir.path().join("wildcard.crt"), dec.get_str("cert").unwrap()).unwrap();
            let mut key = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.path().join("wildcard.key"))
                .unwrap();
            key.write_all(dec.get_str("key").unwrap().as_bytes()).unwrap();
            std::fs::write(
                dynamic.join("tls.yml"),
                format!(
                    "tls:\n  stores:\n    default:\n      defaultCertificate:\n        certFile: \"{d}/wildcard.crt\"\n        keyFile: \"{d}/wildcard.key\"\n"
                ),
            )
            .unwrap();
        }
        std::fs::write(
            dynamic.join("sentinel.yml"),
            router(
                "sentinel",
                "sentinel.ci.test",
                &[format!("http://127.0.0.1:{}", free_port())],
            ),
        )
        .unwrap();
        let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--configFile={d}/traefik.yml"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut t = Traefik { child, dir, addr, api };
        t.wait_router("sentinel");
        t
    }

    /// Writes a dynamic configuration file (via a rename, so the watcher
    /// never sees half a file).
    fn write_dynamic(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("dynamic").join(name)).unwrap();
    }

    /// Waits (at most 30 s) until Traefik's API lists router `<name>@file`.
    fn wait_router(&mut self, name: &str) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("traefik exited ({status}):\n{}", self.logs());
            }
            if api_get(self.api, &format!("/api/http/routers/{name}@file"))
                .is_some_and(|r| r.starts_with("HTTP/1.0 200"))
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "router {name}@file not live after 30 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spec(&self, domain: &str) -> ServeSpec {
        let mut s = ServeSpec::new(domain, test_ca());
        s.traefik = self.addr;
        s.timeout = Duration::from_secs(10);
        s.readiness = Duration::from_secs(2);
        s
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["stdout.log", "traefik.log", "access.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- {f} (last 40 lines)\n"));
            for l in &lines[lines.len().saturating_sub(40)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("Traefik logs of the failed test:\n{}", self.logs());
        }
    }
}

/// A plain HTTP/1.0 GET to Traefik's API; the whole response, or None.
fn api_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    Some(r)
}

/// Starts Traefik with the wildcard default certificate and router
/// `app@file` for `app.ci.test` to a live backend.
fn traefik_with_app(bin: &Path) -> Traefik {
    let mut t = Traefik::start(bin, true);
    let port = start_backend();
    t.write_dynamic(
        "app.yml",
        &router("app", "app.ci.test", &[format!("http://127.0.0.1:{port}")]),
    );
    t.wait_router("app");
    t
}

fn fail_of(r: &ServeReport) -> &Failure {
    match &r.verdict {
        Verdict::Fail(f) => f,
        other => panic!("expected a fail, got {other} ({r})"),
    }
}

#[tokio::test]
async fn pass_on_the_app_with_title_and_wildcard_certificate() {
    let Some(bin) = traefik() else { return };
    let t = traefik_with_app(&bin);
    let mut spec = t.spec("app.ci.test");
    spec.title = Some(Regex::new("^cc-ci test app & friends$").unwrap());
    spec.content = Some(Regex::new("<h1>Welcome to the cc-ci test app</h1>").unwrap());
    let r = check(&spec).await;
    let Verdict::Pass(p) = &r.verdict else {
        panic!("expected pass: {r}")
    };
    assert_eq!(p.status, 200);
    assert_eq!(p.title.as_deref(), Some("cc-ci test app & friends"));
    assert_eq!(p.certificate.subject, "CN=*.ci.test");
    assert_eq!(p.certificate.issuer, "CN=cc-ci TEST-ONLY CA");
    assert_eq!(p.certificate.dns_names, ["*.ci.test", "ci.test"]);
    assert!(p.elapsed > Duration::ZERO && p.elapsed < spec.timeout, "{r}");
    assert_eq!(r.attempts, 1, "{r}");
    // The request really went through Traefik with Host = the bare domain.
    let access = std::fs::read_to_string(t.dir.path().join("access.log")).unwrap();
    assert!(access.contains("\"app@file\""), "access log: {access}");
    eprintln!("{r}");
}

#[tokio::test]
async fn a_redirect_passes_unfollowed_and_the_apps_own_404_is_not_traefiks() {
    let Some(bin) = traefik() else { return };
    let t = traefik_with_app(&bin);
    let mut spec = t.spec("app.ci.test");
    spec.path = "/redirect".into();
    let r = check(&spec).await;
    let Verdict::Pass(p) = &r.verdict else {
        panic!("expected pass: {r}")
    };
    assert_eq!((p.status, p.location.as_deref()), (302, Some("/login")), "{r}");

    spec.expect = ExpectStatus::AnyOf(vec![200]);
    let r = check(&spec).await;
    assert!(
        matches!(fail_of(&r), Failure::UnexpectedStatus { status: 302, location: Some(l), .. } if l == "/login"),
        "{r}"
    );

    // The app's own 404 through a live router: a plain unexpected status,
    // final at once (not "not yet"), not mistaken for Traefik's 404.
    spec.path = "/missing".into();
    spec.expect = ExpectStatus::SuccessOrRedirect;
    spec.readiness = Duration::from_secs(5);
    let r = check(&spec).await;
    assert!(
        matches!(fail_of(&r), Failure::UnexpectedStatus { status: 404, .. }),
        "{r}"
    );
    assert_eq!(r.attempts, 1, "{r}");
    assert!(r.to_string().contains("The app's own 404"), "{r}");
}

#[tokio::test]
async fn no_router_is_traefiks_404() {
    let Some(bin) = traefik() else { return };
    let t = traefik_with_app(&bin);
    let spec = t.spec("nope.ci.test");
    let r = check(&spec).await;
    assert!(
        matches!(fail_of(&r), Failure::TraefikNotFound { domain, .. } if domain == "nope.ci.test"),
        "{r}"
    );
    // "Not yet": retried until the readiness budget ran out.
    assert!(r.attempts >= 3, "{r}");
    assert!(r.waited >= spec.readiness, "{r}");
    assert!(r.to_string().contains("no router matches Host `nope.ci.test`"), "{r}");
    // What Traefik sends, byte for byte (the fingerprint the check relies on).
    let raw = raw_https_get(&t, "nope.ci.test");
    assert!(raw.starts_with("HTTP/1.1 404 Not Found\r\n"), "{raw}");
    assert!(raw.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"), "{raw}");
    assert!(raw.contains("\r\nX-Content-Type-Options: nosniff\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n404 page not found\n"), "{raw}");
    eprintln!("{r}\nTraefik's answer:\n{raw}");
}

/// The raw HTTP/1.1 response to `GET /` for `host` via openssl s_client.
fn raw_https_get(t: &Traefik, host: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &t.addr.to_string(),
            "-servername",
            host,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PEM certificate Traefik presents for `host` (openssl s_client).
fn presented_cert(t: &Traefik, host: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &t.addr.to_string(), "-servername", host])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &text[start..end])
}

#[tokio::test]
async fn traefiks_default_certificate_fails_even_when_trusted() {
    let Some(bin) = traefik() else { return };
    let mut t = Traefik::start(&bin, false);
    let port = start_backend();
    t.write_dynamic(
        "app.yml",
        &router("app", "app.ci.test", &[format!("http://127.0.0.1:{port}")]),
    );
    t.wait_router("app");
    let r = check(&t.spec("app.ci.test")).await;
    let Failure::TraefikDefaultCertificate { certificate, .. } = fail_of(&r) else {
        panic!("expected the default certificate: {r}")
    };
    assert_eq!(certificate.subject, "CN=TRAEFIK DEFAULT CERT");
    assert_eq!(certificate.issuer, "CN=TRAEFIK DEFAULT CERT");
    assert_eq!(certificate.dns_names.len(), 1, "{certificate:?}");
    let san = Regex::new(r"^[0-9a-f]{32}\.[0-9a-f]{32}\.traefik\.default$").unwrap();
    assert!(san.is_match(&certificate.dns_names[0]), "{certificate:?}");
    assert_eq!(r.attempts, 1, "{r}");
    assert!(
        r.to_string().contains("Traefik served its own default certificate"),
        "{r}"
    );

    // With the CA check passing (trust the default certificate itself, and
    // ask for its own name), it is still a fail: recognised by itself.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("traefik-default.pem");
    std::fs::write(&ca, presented_cert(&t, "app.ci.test")).unwrap();
    let mut spec = t.spec(&certificate.dns_names[0]);
    spec.ca_file = ca;
    let r2 = check(&spec).await;
    assert!(
        matches!(fail_of(&r2), Failure::TraefikDefaultCertificate { .. }),
        "{r2}"
    );
    eprintln!("{r}\n{r2}");
}

#[tokio::test]
async fn a_certificate_not_from_the_ca_fails() {
    let Some(bin) = traefik() else { return };
    let t = traefik_with_app(&bin);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "some other CA");
    let other_ca = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, other_ca.pem()).unwrap();
    let mut spec = t.spec("app.ci.test");
    spec.ca_file = ca;
    let r = check(&spec).await;
    let Failure::UntrustedCertificate {
        certificate, detail, ..
    } = fail_of(&r)
    else {
        panic!("expected an untrusted certificate: {r}")
    };
    assert_eq!(certificate.as_ref().unwrap().subject, "CN=*.ci.test", "{r}");
    assert!(detail.contains("unknown issuer"), "{r}");
    assert_eq!(r.attempts, 1, "{r}");
    // The same Traefik and app pass with the right CA: the CA made the difference.
    let r = check(&t.spec("app.ci.test")).await;
    assert!(matches!(r.verdict, Verdict::Pass(_)), "{r}");

    // A name the wildcard does not cover: from the CA, but the wrong name.
    let r = check(&t.spec("app.example.org")).await;
    assert!(matches!(fail_of(&r), Failure::WrongName { .. }), "{r}");
    eprintln!("{r}");
}

#[tokio::test]
async fn router_without_a_healthy_backend() {
    let Some(bin) = traefik() else { return };
    let mut t = Traefik::start(&bin, true);
    let dead = format!("http://127.0.0.1:{}", free_port());
    t.write_dynamic("down.yml", &router("down", "down.ci.test", &[dead]));
    t.write_dynamic("empty.yml", &router("empty", "empty.ci.test", &[]));
    t.wait_router("down");
    t.wait_router("empty");
    let r = check(&t.spec("down.ci.test")).await;
    assert!(
        matches!(
            fail_of(&r),
            Failure::NoHealthyBackend {
                status: 502,
                from_traefik: true,
                ..
            }
        ),
        "{r}"
    );
    assert!(r.attempts >= 3, "{r}");
    assert!(
        r.to_string()
            .contains("could not reach the app (502 Bad Gateway from Traefik)"),
        "{r}"
    );
    let r2 = check(&t.spec("empty.ci.test")).await;
    assert!(
        matches!(
            fail_of(&r2),
            Failure::NoHealthyBackend {
                status: 503,
                from_traefik: true,
                ..
            }
        ),
        "{r2}"
    );
    assert!(r2.to_string().contains("no healthy backend"), "{r2}");
    eprintln!("{r}\n{r2}");
}

#[tokio::test]
async fn title_mismatch_fails() {
    let Some(bin) = traefik() else { return };
    let t = traefik_with_app(&bin);
    let mut spec = t.spec("app.ci.test");
    spec.title = Some(Regex::new("Nextcloud").unwrap());
    let r = check(&spec).await;
    assert!(
        matches!(fail_of(&r), Failure::TitleMismatch { title: Some(t), .. } if t == "cc-ci test app & friends"),
        "{r}"
    );
    assert_eq!(r.attempts, 1, "{r}");
    spec.title = None;
    spec.content = Some(Regex::new("Log in to Nextcloud").unwrap());
    let r = check(&spec).await;
    assert!(matches!(fail_of(&r), Failure::ContentMismatch { .. }), "{r}");
}

#[tokio::test]
async fn nothing_listening_is_an_error_not_a_fail() {
    // No Traefik needed: a port nobody listens on.
    let mut spec = ServeSpec::new("app.ci.test", test_ca());
    spec.traefik = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    spec.readiness = Duration::from_millis(800);
    let r = check(&spec).await;
    assert!(
        matches!(r.verdict, Verdict::Error(ServeError::NothingListens { .. })),
        "{r}"
    );
    assert!(r.attempts >= 2, "connection refused is retried: {r}");
    assert!(
        r.to_string().starts_with("error: nothing listens on Traefik's address"),
        "{r}"
    );
}

#[tokio::test]
async fn readiness_waits_for_a_router_that_appears_later() {
    let Some(bin) = traefik() else { return };
    let t = Traefik::start(&bin, true);
    let dynamic = t.dir.path().join("dynamic");
    let tmp = t.dir.path().join(".app.yml.tmp");
    let delayed = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let port = start_backend();
        std::fs::write(
            &tmp,
            router("app", "app.ci.test", &[format!("http://127.0.0.1:{port}")]),
        )
        .unwrap();
        std::fs::rename(&tmp, dynamic.join("app.yml")).unwrap();
    });
    let mut spec = t.spec("app.ci.test");
    spec.readiness = Duration::from_secs(20);
    spec.title = Some(Regex::new("cc-ci test app").unwrap());
    let r = check(&spec).await;
    delayed.await.unwrap();
    assert!(matches!(r.verdict, Verdict::Pass(_)), "{r}");
    assert!(r.attempts >= 3, "it waited through Traefik's 404s: {r}");
    assert!(r.waited >= Duration::from_millis(1500), "{r}");
    assert!(r.waited < spec.readiness, "{r}");
    eprintln!("{r}");
}

/// Just after an upgrade, Traefik may still send a request to the address
/// of the task that was replaced, and it hangs. Such an attempt must not
/// cost the whole attempt timeout: the first attempts are short, and grow
/// toward [`ServeSpec::timeout`]. Here the first connection hangs and the
/// later ones answer; the readiness budget (8 s) is shorter than the
/// attempt timeout (20 s), so only short first attempts can pass.
#[tokio::test]
async fn a_request_hanging_on_a_replaced_task_costs_a_short_attempt_not_the_timeout() {
    let Some(bin) = traefik() else { return };
    let mut t = Traefik::start(&bin, true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (i, conn) in listener.incoming().flatten().enumerate() {
            if i == 0 {
                held.push(conn); // never answered, never closed
            } else {
                std::thread::spawn(move || answer(conn));
            }
        }
    });
    t.write_dynamic(
        "app.yml",
        &router("app", "app.ci.test", &[format!("http://127.0.0.1:{port}")]),
    );
    t.wait_router("app");
    let mut spec = t.spec("app.ci.test");
    spec.timeout = Duration::from_secs(20);
    spec.readiness = Duration::from_secs(8);
    let r = check(&spec).await;
    assert!(matches!(r.verdict, Verdict::Pass(_)), "{r}");
    assert!(r.attempts >= 2, "the first attempt hung: {r}");
    eprintln!("{r}");
}
