//! `cc_ci::run::service_logs` against the real Docker engine in swarm mode:
//! a one-service stack is upgraded (a second deploy with another command,
//! so swarm replaces the task), and the tail holds both tasks' lines merged
//! by time, the old task's first, each marked with its task; the newest
//! line is last.

mod test_stack;

use std::time::Duration;

use cc_ci::deploy::converge::wait_converged;
use test_stack::TestStack;
use test_support::Component;

fn compose(word: &str) -> String {
    format!(
        r#"
version: "3.8"
services:
  box:
    image: ccci/debian:bookworm
    command: ["sh", "-c", "for i in 1 2 3; do echo {word}-$$i; sleep 0.2; done; sleep infinity"]
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_services_lines_are_merged_by_time_and_marked_by_task() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("logs");
    s.deploy_converged(&d, &compose("old")).await;
    // The old task's lines are out before the upgrade.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.deploy(&compose("new"));
    wait_converged(&d, &s.name, Duration::from_secs(90))
        .await
        .expect("the upgrade converges");
    let mut logs = Vec::new();
    // The new task's three lines take 0.6 s to be written.
    for _ in 0..40 {
        logs = cc_ci::run::service_logs::tail(&d, &s.name, 50).await.unwrap();
        if logs.iter().any(|l| l.lines.iter().any(|x| x.ends_with("new-3"))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let app: Vec<_> = logs.iter().filter(|l| !l.proxy).collect();
    assert_eq!(app.len(), 1, "{logs:?}");
    let lines = &app[0].lines;
    let words: Vec<&str> = lines.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert_eq!(
        words,
        ["old-1", "old-2", "old-3", "new-1", "new-2", "new-3"],
        "{lines:#?}"
    );
    let mark = |l: &str| l.split(['[', ']']).nth(1).unwrap_or("").to_string();
    assert_ne!(mark(&lines[0]), mark(&lines[5]), "two tasks: {lines:#?}");
    assert!(
        mark(&lines[5]).starts_with("box.1 ") && mark(&lines[5]).ends_with(", running"),
        "{lines:#?}"
    );
    assert!(
        !mark(&lines[0]).ends_with(", running"),
        "the old task is not running: {lines:#?}"
    );
    assert!(
        lines[0].starts_with("20") && lines[0].contains("Z ["),
        "timestamped: {lines:#?}"
    );
    // Only the last N are kept: the newest.
    let two = cc_ci::run::service_logs::tail(&d, &s.name, 2).await.unwrap();
    let kept: Vec<&str> = two[0].lines.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert_eq!(kept, ["new-2", "new-3"]);
}
