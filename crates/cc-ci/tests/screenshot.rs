//! `cc_ci::run::screenshot` against Debian's REAL headless Chromium and pages
//! served by a tiny HTTP(S) server in this process on 127.0.0.1 (HTTPS with
//! the TEST wildcard certificate, its key decrypted from
//! tests/keys/wildcard.sops.yaml with cc_ci::host::sops). The page URLs name
//! `*.ci.test` hosts that only `--host-resolver-rules` sends to the server.
//!
//! Chromium is `$CCCI_CHROMIUM` or /usr/bin/chromium; without it these tests
//! fail, unless `CCCI_ALLOW_SKIP` allows skipping it. The tests run one at a
//! time (a lock) so the timings they print are those of one browser.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cc_ci::host::sops::{decrypt_file, AgeIdentities};
use cc_ci::run::screenshot::{prelaunch, spki_pins, take, take_with, Ahead, Shot, ShotError, ShotSpec, Trust};
use test_support::{chromium, processes_mentioning, test_keys as keys};

/// One browser at a time, and a runtime to drive it.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

// ---------------------------------------------------------------- pages

const STATIC_PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>cc-ci static</title></head>
<body style="margin:0;background:#ffffff">
<h1 style="font:48px sans-serif;margin:40px">A static page</h1>
<div style="width:400px;height:200px;margin:40px;background:#1e6fd9"></div>
</body></html>"#;

/// Empty until its script, 1.5 s after load, fetches /api/data and renders it.
const SPA_PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>cc-ci spa</title></head>
<body style="margin:0;background:#ffffff"><div id="root"></div>
<script>
setTimeout(function () {
  fetch('/api/data').then(function (r) { return r.json(); }).then(function (d) {
    document.getElementById('root').innerHTML =
      '<h1 style="font:48px sans-serif;margin:40px">' + d.title + '</h1>' +
      '<div style="width:600px;height:300px;margin:40px;background:' + d.colour + '"></div>';
  });
}, 1500);
</script></body></html>"#;

/// Shows "Loading…" at once and fetches /api/slow at once; the server answers
/// after 1.5 s, then the page renders the data.
const LOADING_PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>cc-ci loading</title></head>
<body style="margin:0;background:#ffffff"><div id="root"><p style="font:20px sans-serif">Loading…</p></div>
<script>
fetch('/api/slow').then(function (r) { return r.json(); }).then(function (d) {
  document.getElementById('root').innerHTML =
    '<h1 style="font:48px sans-serif;margin:40px">' + d.title + '</h1>' +
    '<div style="width:600px;height:300px;margin:40px;background:' + d.colour + '"></div>';
});
</script></body></html>"#;

/// A single-page app whose bundle is missing: it never renders anything.
const BLANK_PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>cc-ci blank</title></head>
<body style="margin:0"><div id="root" style="min-height:100vh"></div><script src="/bundle.js"></script></body></html>"#;

const API_DATA: &str = r##"{"title":"Rendered by JavaScript","colour":"#d92e1e"}"##;

// ---------------------------------------------------------------- server

/// A tiny HTTP/1.1 server (HTTPS if given a rustls config) on a free
/// 127.0.0.1 port, one thread per connection, counting requests per path.
struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let tls = tls.clone();
                let h = h.clone();
                std::thread::spawn(move || match tls {
                    None => serve(conn, &h),
                    Some(cfg) => {
                        let Ok(sc) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(sc, conn), &h)
                    }
                });
            }
        });
        Server { addr, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(mut conn: impl Read + Write, hits: &Mutex<HashMap<String, usize>>) {
    // Keep-alive: answer requests until the client closes.
    loop {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => buf.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let (status, ctype, body) = match path.as_str() {
            "/" | "/static" => ("200 OK", "text/html; charset=utf-8", STATIC_PAGE),
            "/spa" => ("200 OK", "text/html; charset=utf-8", SPA_PAGE),
            "/loading" => ("200 OK", "text/html; charset=utf-8", LOADING_PAGE),
            "/blank" => ("200 OK", "text/html; charset=utf-8", BLANK_PAGE),
            "/api/data" => ("200 OK", "application/json", API_DATA),
            "/api/slow" => {
                std::thread::sleep(Duration::from_millis(1500));
                ("200 OK", "application/json", API_DATA)
            }
            _ => ("404 Not Found", "text/plain", "not found"),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).and_then(|_| conn.flush()).is_err() {
            return;
        }
    }
}

/// rustls server config presenting the TEST wildcard certificate.
fn wildcard_tls() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ids = AgeIdentities::from_file(keys().join("age.key")).unwrap();
    let dec = decrypt_file(keys().join("wildcard.sops.yaml"), &ids).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(dec.get_str("cert").unwrap().as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(dec.get_str("key").unwrap().as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(cfg)
}

// ---------------------------------------------------------------- checks

/// A scratch directory (Chromium's profile parent) and an output directory.
struct Dirs {
    _tmp: tempfile::TempDir,
    scratch: PathBuf,
    out: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let out = tmp.path().join("out");
    Dirs {
        scratch,
        out,
        _tmp: tmp,
    }
}

fn spec(chromium: &Path, d: &Dirs, url: &str, to: SocketAddr, trust: Trust, name: &str) -> ShotSpec {
    let mut s = ShotSpec::new(url, to, trust, d.out.join(name));
    s.chromium = chromium.into();
    s.scratch_dir = d.scratch.clone();
    s
}

/// Chromium is gone and its profile removed: the scratch directory is empty
/// and no process mentions it on its command line.
fn assert_cleaned_up(d: &Dirs) {
    let left: Vec<_> = std::fs::read_dir(&d.scratch)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "profile directory left behind: {left:?}");
    let needle = d.scratch.to_string_lossy().into_owned();
    // Killed processes may take a moment to be reaped by init.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive = processes_mentioning(&needle);
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "chromium processes left running: {alive:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pixels of a PNG as RGB triples, with its size.
fn pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// Pixels close to `rgb` (each channel within 12).
fn count_near(px: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    px.iter()
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12))
        .count()
}

/// Pixels that are neither white nor near `rgb`: text, mostly.
fn count_other(px: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    px.len() - count_near(px, [255, 255, 255]) - count_near(px, rgb)
}

/// Prints the outcome; with $CCCI_KEEP_SCREENSHOTS=DIR also copies the PNG
/// there to look at.
fn show(what: &str, r: &Result<Shot, ShotError>, took: Duration) {
    match r {
        Ok(s) => {
            eprintln!("[{what}] {s} (measured {} ms)", took.as_millis());
            if let Some(dir) = std::env::var_os("CCCI_KEEP_SCREENSHOTS") {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(&s.path, Path::new(&dir).join(s.path.file_name().unwrap())).unwrap();
            }
        }
        Err(e) => eprintln!("[{what}] error after {} ms: {e}", took.as_millis()),
    }
}

const BLUE: [u8; 3] = [0x1e, 0x6f, 0xd9];
const RED: [u8; 3] = [0xd9, 0x2e, 0x1e];

// ---------------------------------------------------------------- tests

#[test]
fn static_page_over_https_trusting_the_test_ca() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    let s = spec(
        &chromium,
        &d,
        "https://static-app.ci.test/",
        server.addr,
        Trust::CaFile(keys().join("ca.crt")),
        "static.png",
    );
    let t = Instant::now();
    let r = block_on(take(&s));
    show("static https", &r, t.elapsed());
    let shot = r.unwrap();
    assert_cleaned_up(&d);
    assert_eq!((shot.width, shot.height), (1280, 800));
    assert_eq!(shot.http_status, Some(200));
    assert_eq!(shot.title, "cc-ci static");
    assert!(shot.network_idle);
    let (w, h, px) = pixels(&d.out.join("static.png"));
    assert_eq!((w, h), (1280, 800));
    // Not one colour: the blue box (400x200 CSS px at scale 1) and the heading's text.
    let blue = count_near(&px, BLUE);
    assert!(
        (400 * 200 * 9 / 10..=400 * 200 * 11 / 10).contains(&blue),
        "blue box pixels: {blue}"
    );
    assert!(
        count_other(&px, BLUE) > 500,
        "no text pixels: {}",
        count_other(&px, BLUE)
    );
    // Only the final file, no temporary left beside it.
    let names: Vec<_> = std::fs::read_dir(&d.out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("static.png")]);
}

#[test]
fn single_page_app_is_shot_after_its_javascript_rendered() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(None);
    let d = dirs();
    let s = spec(
        &chromium,
        &d,
        "http://spa.ci.test/spa",
        server.addr,
        Trust::System,
        "spa.png",
    );
    let t = Instant::now();
    let r = block_on(take(&s));
    show("spa (render after 1.5 s timer)", &r, t.elapsed());
    let shot = r.unwrap();
    assert_cleaned_up(&d);
    assert_eq!(server.hits("/api/data"), 1, "the page's script fetched its data");
    assert!(
        shot.render >= Duration::from_millis(1500),
        "shot before the app rendered: {shot}"
    );
    let (_, _, px) = pixels(&shot.path);
    let red = count_near(&px, RED);
    assert!(
        red >= 600 * 300 * 9 / 10,
        "the rendered block is missing (blank shot?): {red} red pixels"
    );
    assert!(count_other(&px, RED) > 500, "the rendered heading is missing");
}

#[test]
fn loading_placeholder_is_not_shot_while_the_data_request_is_in_flight() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(None);
    let d = dirs();
    let s = spec(
        &chromium,
        &d,
        "http://loading.ci.test/loading",
        server.addr,
        Trust::System,
        "loading.png",
    );
    let t = Instant::now();
    let r = block_on(take(&s));
    show("spa (slow API, Loading… placeholder)", &r, t.elapsed());
    let shot = r.unwrap();
    assert_cleaned_up(&d);
    assert_eq!(server.hits("/api/slow"), 1);
    assert!(shot.network_idle);
    let (_, _, px) = pixels(&shot.path);
    let red = count_near(&px, RED);
    assert!(
        red >= 600 * 300 * 9 / 10,
        "shot the placeholder, not the data: {red} red pixels"
    );
}

#[test]
fn a_page_that_stays_blank_is_a_typed_error_within_the_budget() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(None);
    let d = dirs();
    let mut s = spec(
        &chromium,
        &d,
        "http://blank.ci.test/blank",
        server.addr,
        Trust::System,
        "blank.png",
    );
    // Room for Chromium's start on a loaded machine (CI runs test binaries
    // side by side): the page must still be watched blank for 3 s.
    s.budget = Duration::from_secs(10);
    let t = Instant::now();
    let r = block_on(take(&s));
    let took = t.elapsed();
    show("blank page, 10 s budget", &r, took);
    assert_cleaned_up(&d);
    let Err(ShotError::StayedBlank {
        waited,
        http_status,
        in_flight,
        ..
    }) = &r
    else {
        panic!("expected StayedBlank, got {r:?}")
    };
    assert_eq!(*http_status, Some(200));
    assert!(in_flight.is_empty(), "{in_flight:?}");
    assert!(*waited >= Duration::from_secs(3), "gave up too early: {waited:?}");
    assert!(took <= s.budget + Duration::from_millis(500), "over budget: {took:?}");
    assert!(server.hits("/bundle.js") >= 1, "the page was really loaded");
    assert!(!s.out.exists(), "no picture for a blank page");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("stayed blank") && msg.contains("HTTP 200"), "{msg}");
}

#[test]
fn nothing_listening_is_a_navigation_error_fast() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let d = dirs();
    let s = spec(&chromium, &d, "http://gone.ci.test/", addr, Trust::System, "gone.png");
    let t = Instant::now();
    let r = block_on(take(&s));
    let took = t.elapsed();
    show("nothing listening", &r, took);
    assert_cleaned_up(&d);
    let Err(ShotError::Navigation { error, .. }) = &r else {
        panic!("expected a navigation error, got {r:?}")
    };
    assert!(error.contains("ERR_CONNECTION_REFUSED"), "{error}");
    assert!(took < Duration::from_secs(8), "not fast: {took:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("gone.ci.test") && msg.contains(&addr.to_string()), "{msg}");
}

#[test]
fn chromium_itself_refuses_certificates_it_was_not_told_to_trust() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    // Chromium's own trust store: the test CA is not in it.
    let s = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::System,
        "a.png",
    );
    let t = Instant::now();
    let r = block_on(take(&s));
    show("https, system trust", &r, t.elapsed());
    assert_cleaned_up(&d);
    match &r {
        Err(ShotError::Navigation { error, .. }) => assert!(error.contains("ERR_CERT"), "{error}"),
        other => panic!("expected a certificate error from chromium, got {other:?}"),
    }
    // A pin of another key (the renewed wildcard certificate's): refused too.
    let renewed = spki_pins(&std::fs::read(keys().join("wildcard-renewed.crt")).unwrap()).unwrap();
    let s = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::SpkiSha256(renewed),
        "b.png",
    );
    let r = block_on(take(&s));
    assert_cleaned_up(&d);
    match &r {
        Err(ShotError::Navigation { error, .. }) => assert!(error.contains("ERR_CERT"), "{error}"),
        other => panic!("expected a certificate error from chromium, got {other:?}"),
    }
    // The pin of the presented key: accepted. The pin made the difference.
    let right = spki_pins(&std::fs::read(keys().join("wildcard.crt")).unwrap()).unwrap();
    let s = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::SpkiSha256(right),
        "c.png",
    );
    let r = block_on(take(&s));
    assert_cleaned_up(&d);
    assert!(r.is_ok(), "{r:?}");
    assert!(!d.out.join("a.png").exists() && !d.out.join("b.png").exists());
}

#[test]
fn a_certificate_from_another_ca_is_refused_before_chromium_sees_it() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "some other CA");
    let other_ca = d.out.with_file_name("other-ca.pem");
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let s = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::CaFile(other_ca),
        "x.png",
    );
    let r = block_on(take(&s));
    assert_cleaned_up(&d);
    match &r {
        Err(e @ ShotError::Certificate { detail, .. }) => {
            assert!(
                detail.contains("UnknownIssuer") || detail.contains("unknown issuer"),
                "{e}"
            )
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
    // A name the wildcard does not cover, with the right CA.
    let s = spec(
        &chromium,
        &d,
        "https://app.example.org/",
        server.addr,
        Trust::CaFile(keys().join("ca.crt")),
        "y.png",
    );
    let r = block_on(take(&s));
    assert!(matches!(&r, Err(ShotError::Certificate { .. })), "{r:?}");
}

#[test]
fn a_missing_chromium_is_named() {
    let d = dirs();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let s = spec(
        Path::new("/nonexistent/chromium"),
        &d,
        "https://app.ci.test/",
        addr,
        Trust::System,
        "n.png",
    );
    let r = block_on(take(&s));
    let Err(e @ ShotError::ChromiumMissing { .. }) = &r else {
        panic!("expected ChromiumMissing, got {r:?}")
    };
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/chromium") && msg.contains("CCCI_CHROMIUM"),
        "{msg}"
    );
    assert!(std::fs::read_dir(&d.scratch).unwrap().next().is_none());
}

#[test]
fn a_browser_started_ahead_shoots_without_starting_again() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    let s = spec(
        &chromium,
        &d,
        "https://ahead-app.ci.test/",
        server.addr,
        Trust::CaFile(keys().join("ca.crt")),
        "ahead.png",
    );
    let t = Instant::now();
    let r = block_on(async {
        let ahead = prelaunch(&s);
        // What the lifecycle does meanwhile: wait on a deploy.
        tokio::time::sleep(Duration::from_secs(3)).await;
        take_with(&s, Some(ahead)).await
    });
    show("https, browser started ahead", &r, t.elapsed());
    let shot = r.unwrap();
    assert_cleaned_up(&d);
    assert_eq!(shot.ahead, Ahead::Used, "{shot}");
    assert!(shot.to_string().contains("browser started ahead"), "{shot}");
    assert_eq!((shot.http_status, shot.title.as_str()), (Some(200), "cc-ci static"));
    let (_, _, px) = pixels(&d.out.join("ahead.png"));
    let blue = count_near(&px, BLUE);
    assert!(
        (400 * 200 * 9 / 10..=400 * 200 * 11 / 10).contains(&blue),
        "blue box pixels: {blue}"
    );
}

#[test]
fn a_browser_started_ahead_for_something_else_is_not_used_and_the_shot_still_is_taken() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    let wanted = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::SpkiSha256(spki_pins(&std::fs::read(keys().join("wildcard.crt")).unwrap()).unwrap()),
        "wanted.png",
    );
    // Started to accept another key (the renewed certificate's).
    let mut other_key = wanted.clone();
    other_key.trust =
        Trust::SpkiSha256(spki_pins(&std::fs::read(keys().join("wildcard-renewed.crt")).unwrap()).unwrap());
    // Started for another app.
    let mut other_host = wanted.clone();
    other_host.url = "https://another-app.ci.test/".into();
    // Could not start: its certificate check fails (a CA that vouches for nothing here).
    let mut failed = wanted.clone();
    failed.trust = Trust::CaFile(keys().join("wildcard-renewed.crt"));
    for (ahead_spec, why) in [
        (
            &other_key,
            "the certificate presented now is not the one it was started to accept",
        ),
        (&other_host, "it was started for another host or address"),
        (&failed, "it did not start: the certificate at"),
    ] {
        let r = block_on(async { take_with(&wanted, Some(prelaunch(ahead_spec))).await });
        show("https, browser started ahead for something else", &r, Duration::ZERO);
        let shot = r.unwrap();
        match &shot.ahead {
            Ahead::Unused(w) => assert!(w.starts_with(why), "{w}"),
            other => panic!("expected the browser started ahead to be left unused ({why}), got {other:?}"),
        }
        assert!(
            shot.to_string().contains("the one started ahead was not used"),
            "{shot}"
        );
        assert_eq!(shot.title, "cc-ci static");
        assert_cleaned_up(&d);
    }
}

#[test]
fn a_browser_started_ahead_and_dropped_is_killed_and_its_profile_removed() {
    let Some(chromium) = chromium() else { return };
    let _g = serial();
    let server = Server::start(Some(wildcard_tls()));
    let d = dirs();
    let s = spec(
        &chromium,
        &d,
        "https://app.ci.test/",
        server.addr,
        Trust::CaFile(keys().join("ca.crt")),
        "never.png",
    );
    let started = block_on(async {
        let ahead = prelaunch(&s);
        // Until Chromium runs with this profile (or 10 s), then drop it unused.
        let needle = d.scratch.to_string_lossy().into_owned();
        let t = Instant::now();
        let mut seen = false;
        while !seen && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen = !processes_mentioning(&needle).is_empty();
        }
        drop(ahead);
        seen
    });
    assert!(
        started,
        "chromium never ran with the profile under {}",
        d.scratch.display()
    );
    assert_cleaned_up(&d);
    assert!(!d.out.join("never.png").exists());
}

/// Not a test: the body of a process that starts Chromium ahead and then
/// waits, for [`a_browser_started_ahead_dies_with_a_killed_run`] to SIGKILL.
/// Does nothing unless `CCCI_SHOT_HELPER_SCRATCH` names its scratch folder.
#[test]
#[ignore = "the body of a process another test starts and kills"]
fn helper_starts_a_browser_ahead_and_waits() {
    let Some(scratch) = std::env::var_os("CCCI_SHOT_HELPER_SCRATCH") else {
        return;
    };
    let Some(chromium) = chromium() else { return };
    let server = Server::start(Some(wildcard_tls()));
    let mut s = ShotSpec::new(
        "https://killed-run.ci.test/",
        server.addr,
        Trust::CaFile(keys().join("ca.crt")),
        Path::new(&scratch).join("never.png"),
    );
    s.chromium = chromium;
    s.scratch_dir = scratch.into();
    block_on(async {
        let _ahead = prelaunch(&s);
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn a_browser_started_ahead_dies_with_a_killed_run() {
    let Some(_) = chromium() else { return };
    let _g = serial();
    let d = dirs();
    // A run SIGKILLed while its browser waits for the deploy to converge
    // (the chaos test's kill points): nothing can drop the browser then.
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_a_browser_ahead_and_waits",
            "--ignored",
            "--nocapture",
        ])
        .env("CCCI_SHOT_HELPER_SCRATCH", &d.scratch)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let needle = d.scratch.to_string_lossy().into_owned();
    let running = || processes_mentioning(&needle).len();
    let t = Instant::now();
    while running() == 0 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running() > 0, "the helper never started chromium");
    // Let it finish starting (its renderer and zygotes up).
    std::thread::sleep(Duration::from_secs(2));
    helper.kill().unwrap();
    helper.wait().unwrap();
    let t = Instant::now();
    while running() > 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = running();
    if left > 0 {
        // Clean up before failing, so the leak does not outlive the test.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", &needle])
            .status();
    }
    assert_eq!(
        left, 0,
        "chromium processes outlived the SIGKILLed run that started them"
    );
}
