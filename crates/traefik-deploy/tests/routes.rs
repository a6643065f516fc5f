//! `traefik-deploy routes` as the NixOS module runs it, against the real
//! Traefik of this host (scripts/host-up): a route to an HTTP server of this
//! process on `0.0.0.0:<free port>` serves through 127.0.0.1:443, the same
//! command again says "nothing to do", and the command without routes removes
//! the stack. A malformed `--route` is refused naming it and the fix.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use test_support::{Component, BUSYBOX_IMAGE};

fn routes(stack: &str, args: &[String]) -> Output {
    let domain_ca = std::env::var_os("CCCI_CA_CERT")
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| test_support::test_keys().join("ca.crt"));
    Command::new(env!("CARGO_BIN_EXE_traefik-deploy"))
        .args(["routes", "--stack", stack, "--image", BUSYBOX_IMAGE, "--wait", "90"])
        .arg("--ca-cert")
        .arg(domain_ca)
        .args(args)
        .env("CCCI_DOCKER_CLI", "/usr/bin/docker")
        .output()
        .unwrap()
}

/// An HTTP server on `0.0.0.0:<free port>` answering `200 hello`.
fn start_backend() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n");
            });
        }
    });
    port
}

struct Cleanup(bollard::Docker, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = test_support::rt().block_on(cc_ci::deploy::stack::teardown(
            &self.0,
            &self.1,
            std::time::Duration::from_secs(60),
        ));
    }
}

#[test]
fn routes_deploys_then_does_nothing_then_removes_the_stack() {
    let Some(d) = test_support::docker_with(&[Component::TraefikStack, Component::BusyboxImage]) else {
        return;
    };
    let stack = test_support::unique("routes-cli");
    let _cleanup = Cleanup(d.clone(), stack.clone());
    let domain = std::env::var("CCCI_DOMAIN")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "ci.test".into());
    let host = format!("{}.{domain}", stack);
    let port = start_backend();
    let route = vec!["--route".to_string(), format!("{host}={port}")];

    let out = routes(&stack, &route);
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("deployed {stack}")), "{text}");
    assert!(text.contains(&format!("https://{host}/ -> http://")), "{text}");
    assert!(text.contains(&format!(":{port} serves (200)")), "{text}");

    let out = routes(&stack, &route);
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("nothing to do"), "{text}");
    assert!(text.contains(&format!("https://{host}/ -> http://")), "{text}");

    let out = routes(&stack, &[]);
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("removed stack {stack}")), "{text}");
    let left = test_support::rt()
        .block_on(cc_ci::deploy::stack::verify_clean(&d, &stack))
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_malformed_route_is_refused_naming_it_and_the_fix() {
    let stack = test_support::unique("routes-cli");
    let out = routes(&stack, &["--route".into(), "builds.ci.example.org:8010".into()]);
    let text = test_support::output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "--route \"builds.ci.example.org:8010\": no `=<port>`; write it as <host>[/<path-prefix>]=<port>"
        ),
        "{text}"
    );
}
