//! `cc_ci::host::routes` on the real Traefik of this host (the Co-op Cloud
//! traefik recipe that scripts/host-up deployed, serving the TEST-ONLY
//! wildcard certificate for `*.<CCCI_DOMAIN>` on 127.0.0.1:443) and the real
//! `docker stack deploy`: tiny HTTP servers in this process listen on
//! `0.0.0.0:<free port>` of the host, and the routes make Traefik's task
//! reach them through docker_gwbridge. Each test uses its own stack
//! (`routes-<token>`) and host names (`<x>-<token>.<domain>`), so they can
//! run side by side and beside other suites, and removes its stack even when
//! it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use cc_ci::host::janitor::{self, SweepOptions};
use cc_ci::host::routes::{self, Change, FailureKind, Gateway, Route, RoutesError, RoutesOptions};
use cc_ci::probe::serve::{self, ExpectStatus, Failure, ServeSpec, Verdict};
use regex::Regex;
use test_support::{Component, BUSYBOX_IMAGE};

fn domain() -> String {
    std::env::var("CCCI_DOMAIN")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "ci.test".into())
}

fn ca() -> PathBuf {
    std::env::var_os("CCCI_CA_CERT")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| test_support::test_keys().join("ca.crt"))
}

fn docker_cli() -> PathBuf {
    std::env::var_os("CCCI_DOCKER_CLI")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/docker".into())
}

/// A tiny HTTP/1.1 server on `0.0.0.0:<free port>` answering every request
/// with `status` and the body `backend <tag> <path>`. Lives as long as the
/// test process.
fn start_backend(tag: &'static str, status: &'static str) -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn, tag, status));
        }
    });
    port
}

fn answer(mut conn: TcpStream, tag: &str, status: &str) {
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
    let body = format!("backend {tag} {path}\n");
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A port nothing listens on (on any address) right now.
fn closed_port() -> u16 {
    TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

fn options(stack: &str, routes: &[String], wait: u64) -> RoutesOptions {
    RoutesOptions {
        stack: stack.to_string(),
        image: BUSYBOX_IMAGE.to_string(),
        routes: routes.iter().map(|r| r.parse::<Route>().unwrap()).collect(),
        gateway: Gateway::Auto,
        addr: serve::DEFAULT_TRAEFIK_ADDR,
        ca_cert: ca(),
        wait: Duration::from_secs(wait),
        docker_cli: docker_cli(),
    }
}

/// One look at `https://<host><path>` through Traefik, trusting only the
/// test CA; with `content`, the body must match it.
async fn look(host: &str, path: &str, content: Option<&str>) -> Verdict {
    let mut spec = ServeSpec::new(host, ca());
    spec.path = path.to_string();
    spec.expect = ExpectStatus::AnyOf((100..=599).collect());
    spec.readiness = Duration::ZERO;
    spec.timeout = Duration::from_secs(10);
    spec.content = content.map(|c| Regex::new(&regex::escape(c)).unwrap());
    serve::check(&spec).await.verdict
}

/// Waits (at most 60 s: Traefik's swarm provider refreshes every 15 s) until
/// `host` `path` is Traefik's own 404.
async fn until_unrouted(host: &str, path: &str) -> Duration {
    let start = Instant::now();
    loop {
        let v = look(host, path, None).await;
        if matches!(v, Verdict::Fail(Failure::TraefikNotFound { .. })) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "https://{host}{path} is still routed after 60 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn service_version(d: &Docker, stack: &str) -> u64 {
    routes::live_spec(d, stack)
        .await
        .unwrap()
        .expect("the routes service")
        .1
}

/// Removes the test's stack when the test ends, however it ends.
struct Cleanup {
    docker: Docker,
    stack: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let r = test_support::rt().block_on(cc_ci::deploy::stack::teardown(
            &self.docker,
            &self.stack,
            Duration::from_secs(60),
        ));
        if let Ok(r) = r {
            if !r.is_clean() {
                eprintln!("cleanup of {}: left {:?}", self.stack, r.left);
            }
        }
    }
}

#[test]
fn routes_serve_host_services_change_nothing_twice_and_are_removed() {
    let Some(d) = test_support::docker_with(&[Component::TraefikStack, Component::BusyboxImage]) else {
        return;
    };
    let stack = test_support::unique("routes");
    let _cleanup = Cleanup {
        docker: d.clone(),
        stack: stack.clone(),
    };
    let tok = stack.trim_start_matches("routes-").to_string();
    let domain = domain();
    let (page, hook, private) = (
        format!("page-{tok}.{domain}"),
        format!("hook-{tok}.{domain}"),
        format!("private-{tok}.{domain}"),
    );
    let open = start_backend("open", "200 OK");
    let locked = start_backend("locked", "401 Unauthorized");
    let all = vec![
        format!("{page}={open}"),
        format!("{hook}/hook={open}"),
        format!("{private}={locked}"),
    ];
    test_support::rt().block_on(async {
        // Deploy: every route serves, through 443, under the wildcard certificate.
        let t = Instant::now();
        let r = routes::apply(&d, &options(&stack, &all, 120))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let total = t.elapsed();
        assert_eq!(r.change, Change::Deployed);
        let gw = routes::gwbridge_gateway(&d).await.unwrap();
        assert_eq!(r.gateway, Some(gw));
        assert_eq!(r.served.len(), 3, "{r:?}");
        for s in &r.served {
            eprintln!(
                "measured: {} serves {:.1} s after the stack converged ({:.1} s deploy + converge; {:.1} s in all)",
                s.route.public_url(),
                s.waited_s,
                r.deploy_s,
                total.as_secs_f64()
            );
        }
        let status = |host: &str| r.served.iter().find(|s| s.route.host == host).unwrap().status;
        assert_eq!(status(&page), 200);
        assert_eq!(status(&private), 401, "a backend's 401 counts as served");
        match look(&page, "/", Some("backend open /\n")).await {
            Verdict::Pass(s) => {
                assert_eq!(s.status, 200);
                assert!(
                    s.certificate.dns_names.contains(&format!("*.{domain}")),
                    "the wildcard certificate: {:?}",
                    s.certificate
                );
            }
            other => panic!("https://{page}/: {other}"),
        }
        // The path-prefix route routes its prefix, and only it.
        let v = look(&hook, "/hook/x", Some("backend open /hook/x\n")).await;
        assert!(matches!(v, Verdict::Pass(_)), "{v}");
        let v = look(&hook, "/", None).await;
        assert!(
            matches!(v, Verdict::Fail(Failure::TraefikNotFound { .. })),
            "outside the prefix: {v}"
        );

        // A second run changes nothing: no deploy, the same service version.
        let before = service_version(&d, &stack).await;
        let r = routes::apply(&d, &options(&stack, &all, 60)).await.unwrap();
        assert_eq!(r.change, Change::Unchanged);
        assert_eq!(r.served.len(), 3);
        assert_eq!(service_version(&d, &stack).await, before, "the service was not updated");

        // The janitor does not take the stack for a test app.
        let state = tempfile::tempdir().unwrap();
        let sweep = janitor::sweep_with(
            &d,
            &SweepOptions {
                state_dir: state.path().to_path_buf(),
                stack_suffix: janitor::stack_suffix(&domain),
                timeout: Duration::from_secs(60),
                dry_run: true,
            },
        )
        .await
        .unwrap();
        assert!(sweep.app(&stack).is_none(), "{:?}", sweep.app(&stack));

        // Routes left out disappear; the others stay.
        let r = routes::apply(&d, &options(&stack, &all[..1], 60)).await.unwrap();
        assert_eq!(r.change, Change::Deployed);
        assert!(service_version(&d, &stack).await > before);
        let gone = until_unrouted(&hook, "/hook").await;
        until_unrouted(&private, "/").await;
        eprintln!(
            "measured: a removed route was Traefik's 404 {:.1} s after the deploy",
            gone.as_secs_f64()
        );
        let v = look(&page, "/", Some("backend open /\n")).await;
        assert!(matches!(v, Verdict::Pass(_)), "{v}");

        // No routes: the stack is removed.
        let r = routes::apply(&d, &options(&stack, &[], 60)).await.unwrap();
        assert_eq!(r.change, Change::Removed);
        assert!(r.removed.iter().any(|o| o.contains(&stack)), "{:?}", r.removed);
        assert!(cc_ci::deploy::stack::verify_clean(&d, &stack).await.unwrap().is_empty());
        until_unrouted(&page, "/").await;
        // ... and removing it again is fine.
        let r = routes::apply(&d, &options(&stack, &[], 60)).await.unwrap();
        assert_eq!(r.change, Change::Removed);
        assert!(r.removed.is_empty());
    });
}

#[test]
fn a_route_to_a_port_nobody_listens_on_fails_naming_the_route_and_the_fix() {
    let Some(d) = test_support::docker_with(&[Component::TraefikStack, Component::BusyboxImage]) else {
        return;
    };
    let stack = test_support::unique("routes");
    let _cleanup = Cleanup {
        docker: d.clone(),
        stack: stack.clone(),
    };
    let tok = stack.trim_start_matches("routes-").to_string();
    let host = format!("nobody-{tok}.{}", domain());
    let port = closed_port();
    test_support::rt().block_on(async {
        let t = Instant::now();
        let e = routes::apply(&d, &options(&stack, &[format!("{host}={port}")], 45))
            .await
            .unwrap_err();
        let gw = routes::gwbridge_gateway(&d).await.unwrap();
        let RoutesError::NotServing { failures, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].kind, FailureKind::Unreachable { status: 502 }, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "https://{host}/: Traefik could not reach http://{gw}:{port} (502 from Traefik itself)"
            )),
            "{text}"
        );
        assert!(
            text.contains("reachable from docker_gwbridge") && text.contains("firewall allows docker_gwbridge"),
            "{text}"
        );
        assert!(t.elapsed() >= Duration::from_secs(45), "it waited out --wait");
    });
}

#[test]
fn a_missing_helper_image_or_ca_file_is_refused_before_anything_is_deployed() {
    let Some(d) = test_support::docker_with(&[Component::Swarm]) else {
        return;
    };
    let stack = test_support::unique("routes");
    let _cleanup = Cleanup {
        docker: d.clone(),
        stack: stack.clone(),
    };
    let mut opts = options(&stack, &[format!("x-{}.{}=1", test_support::token(), domain())], 30);
    opts.image = format!("ccci/absent-{}:none", test_support::token());
    test_support::rt().block_on(async {
        let e = routes::apply(&d, &opts).await.unwrap_err();
        assert!(matches!(e, RoutesError::ImageNotOnHost { .. }), "{e}");
        assert!(e.to_string().contains("never pulls"), "{e}");
        assert!(cc_ci::deploy::stack::verify_clean(&d, &stack).await.unwrap().is_empty());
        opts.image = BUSYBOX_IMAGE.to_string();
        opts.ca_cert = PathBuf::from("/nonexistent/ca.crt");
        let e = routes::apply(&d, &opts).await.unwrap_err();
        assert!(matches!(e, RoutesError::CaCert { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("--ca-cert /nonexistent/ca.crt: cannot read it"),
            "{e}"
        );
        assert!(cc_ci::deploy::stack::verify_clean(&d, &stack).await.unwrap().is_empty());
    });
}
