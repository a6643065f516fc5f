//! `cc_ci::deploy::exec` against the real Docker engine in swarm mode.
//!
//! Each test deploys its own one-service stack `x<random>_ci_test` with
//! `/usr/bin/docker stack deploy --resolve-image never` (image
//! `ccci/debian:bookworm`, built locally by `scripts/images`; no registry),
//! and a guard tears it down with `cc_ci::deploy::stack::teardown` even when
//! the test fails. No engine or no image is a test failure naming the fix
//! (test_support's policy: a skip only where CCCI_ALLOW_SKIP allows it).

mod test_stack;

use std::time::{Duration, Instant};

use bollard::Docker;
use cc_ci::deploy::converge::wait_converged;
use cc_ci::deploy::exec::{copy_file_into, exec, running_container, ExecError};
use test_stack::TestStack;
use test_support::Component;

const SLEEPER: &str = r#"
version: "3.8"
services:
  box:
    image: ccci/debian:bookworm
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
"#;

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

async fn deployed_sleeper(d: &Docker) -> (TestStack, String) {
    let s = TestStack::new("x");
    s.deploy(SLEEPER);
    wait_converged(d, &s.name, Duration::from_secs(90))
        .await
        .expect("the sleeper converges");
    let c = running_container(d, &s.name, "box").await.expect("a running container");
    (s, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_separates_stdout_stderr_and_exit_code() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let (_s, c) = deployed_sleeper(&d).await;

    let t = Instant::now();
    let out = exec(
        &d,
        &c,
        &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
        Duration::from_secs(30),
    )
    .await
    .expect("exec runs");
    eprintln!("exec took {:?}", t.elapsed());
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    // A command that is not on PATH is exit 126 (the engine's message in
    // stdout), not an error.
    let out = exec(&d, &c, &argv(&["no-such-command-ccci"]), Duration::from_secs(30))
        .await
        .expect("exec of a missing command still answers");
    assert_eq!(out.exit_code, 126, "{out:?}");
    assert!(out.stdout.contains("no-such-command-ccci"), "{out:?}");

    // More than 64 KiB of output: the last 64 KiB are kept, and it says so.
    let out = exec(
        &d,
        &c,
        &argv(&["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a; echo END"]),
        Duration::from_secs(30),
    )
    .await
    .expect("exec runs");
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.starts_with("[cc-ci: first "), "{}", &out.stdout[..80]);
    assert!(out.stdout.ends_with("aaaEND\n"));
    assert!(out.stdout.len() < 64 * 1024 + 100);

    // A command that outlives its timeout is a distinct error.
    let t = Instant::now();
    let err = exec(&d, &c, &argv(&["sleep", "30"]), Duration::from_secs(2))
        .await
        .expect_err("times out");
    assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
    assert!(err.is_recipe_failure());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(err.to_string().contains("sleep 30"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_file_into_then_cat_it() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let (_s, c) = deployed_sleeper(&d).await;

    let content = b"line one\nsecond line: \xc3\xa9t\xc3\xa9\n";
    copy_file_into(&d, &c, "/tmp", "ccci-copied.txt", content, 0o640)
        .await
        .expect("copy in");
    let out = exec(
        &d,
        &c,
        &argv(&[
            "sh",
            "-c",
            "cat /tmp/ccci-copied.txt; stat -c '%a %u' /tmp/ccci-copied.txt >&2",
        ]),
        Duration::from_secs(30),
    )
    .await
    .expect("exec runs");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout.as_bytes(), content);
    assert_eq!(out.stderr.trim(), "640 0");

    // Copying again replaces the file.
    copy_file_into(&d, &c, "/tmp", "ccci-copied.txt", b"v2", 0o644)
        .await
        .expect("copy in again");
    let out = exec(&d, &c, &argv(&["cat", "/tmp/ccci-copied.txt"]), Duration::from_secs(30))
        .await
        .expect("exec runs");
    assert_eq!(out.stdout, "v2");

    let err = copy_file_into(&d, &c, "/no/such/dir", "f", b"x", 0o644)
        .await
        .expect_err("no such directory");
    assert!(matches!(err, ExecError::NoSuchDirectory { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/dir"), "{err}");

    let err = copy_file_into(&d, &c, "/tmp", "a/b", b"x", 0o644)
        .await
        .expect_err("not a plain name");
    assert!(matches!(err, ExecError::BadName { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_running_task_is_a_named_error() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("x");
    s.deploy(
        r#"
version: "3.8"
services:
  idle:
    image: ccci/debian:bookworm
    command: ["sleep", "infinity"]
    deploy:
      endpoint_mode: dnsrr
      replicas: 0
  crash:
    image: ccci/debian:bookworm
    command: ["false"]
    deploy:
      endpoint_mode: dnsrr
      restart_policy:
        condition: none
"#,
    );

    let err = running_container(&d, &s.name, "idle").await.expect_err("no task");
    assert!(matches!(err, ExecError::NoRunningContainer { .. }), "{err}");
    assert!(err.is_recipe_failure());
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}_idle", s.name)), "{msg}");
    assert!(msg.contains("no tasks"), "{msg}");

    // The crashing service: once its one task has ended, nothing runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let msg = loop {
        // `false` runs for an instant: until it has exited, its task may
        // still be `running`.
        let msg = match running_container(&d, &s.name, "crash").await {
            Ok(c) => format!("still running: {c}"),
            Err(e) => e.to_string(),
        };
        if msg.contains("actually `failed`") || Instant::now() > deadline {
            break msg;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(msg.contains(&format!("{}_crash", s.name)), "{msg}");
    assert!(msg.contains("actually `failed`"), "{msg}");

    let err = running_container(&d, &s.name, "nope").await.expect_err("no service");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.to_string().contains(&format!("{}_nope", s.name)), "{err}");
}
