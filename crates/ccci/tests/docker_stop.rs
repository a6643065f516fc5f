//! Docker stopping mid-run: the real engine is stopped while `ccci test`
//! upgrades an app, and started again a few seconds later. The rung that
//! was running ends in `error` (the infrastructure failed, not the recipe),
//! the teardown waits for the engine and removes everything, and ccci exits
//! 3. This stops the engine that every other test uses, so it is not part of
//! `cargo test`'s default run (`test = false` in Cargo.toml); scripts/test
//! runs it on its own at the end.

mod ccci_run;

use std::process::Command;
use std::time::{Duration, Instant};

use ccci_run::{leftovers, Ccci};
use test_support::Component;

/// Stops dockerd (systemd's docker.service where there is one, else the
/// process scripts/dockerd started) and waits until it no longer answers.
fn stop_docker() {
    let systemd = std::path::Path::new("/run/systemd/system").exists()
        && Command::new("systemctl")
            .args(["cat", "docker.service"])
            .output()
            .is_ok_and(|o| o.status.success());
    let ok = if systemd {
        Command::new("systemctl")
            .args(["stop", "docker.service", "docker.socket"])
            .status()
    } else {
        Command::new("pkill").args(["-TERM", "-x", "dockerd"]).status()
    }
    .unwrap()
    .success();
    assert!(ok, "could not stop dockerd");
    let start = Instant::now();
    while Command::new("/usr/bin/docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(start.elapsed() < Duration::from_secs(60), "dockerd did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_docker() {
    let out = Command::new(test_support::workspace().join("scripts/dockerd"))
        .output()
        .unwrap();
    let ps = Command::new("ps")
        .args(["-eo", "pid,ppid,stat,etime,args"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nprocesses:\n{}",
        test_support::output_text(&out),
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| l.contains("docker") || l.contains("PID"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn docker_stopping_mid_run_is_an_error_and_nothing_is_left() {
    if !test_support::need(Component::Swarm)
        || !test_support::need(Component::FixtureImages)
        || !test_support::need(Component::TraefikStack)
    {
        return;
    }
    let c = Ccci::new(&test_support::fixture_recipes());
    let running = c.start_until("tmpl-site", &[], "deploying the tested commit");
    stop_docker();
    std::thread::sleep(Duration::from_secs(3));
    start_docker();
    let (status, text) = running.finish();
    assert_eq!(status.code(), Some(3), "{text}");
    let r = c.results("tmpl-site");
    let errored: Vec<&str> = r["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "error")
        .map(|x| x["rung"].as_str().unwrap())
        .collect();
    assert!(!errored.is_empty(), "some rung is an error: {r}");
    assert!(
        r["rungs"].as_array().unwrap().iter().all(|x| x["status"] != "fail"),
        "nothing is blamed on the recipe: {r}"
    );
    // The teardown waited for the engine and removed everything.
    let stack = r["app"]["stack"].as_str().unwrap();
    assert_eq!(leftovers(stack), Vec::<String>::new(), "{text}");
    assert_eq!(r["clean_teardown"], true, "{text}");
    traefik_back();
}

/// Leaves the host as the test found it. A Docker 20.10 restart can start
/// the Traefik task before its configs and secrets are mounted (seen here:
/// no /run/secrets, no traefik.yml, so no ping and no wildcard certificate);
/// its healthcheck would replace it after ~2 minutes, a forced update at once.
fn traefik_back() {
    let serving = || {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "--cacert",
            ])
            .arg(test_support::test_keys().join("ca.crt"))
            .args(["--resolve", "probe.ci.test:443:127.0.0.1", "https://probe.ci.test/"])
            .output()
            .is_ok_and(|o| o.stdout == b"404")
    };
    let wait = |secs: u64| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if serving() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        false
    };
    if wait(20) {
        return;
    }
    let out = Command::new("/usr/bin/docker")
        .args(["service", "update", "--force", "--detach", "traefik_ci_test_app"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", test_support::output_text(&out));
    assert!(wait(120), "Traefik did not serve again after the Docker restart");
}
