//! swarm-init against the real Docker engine. These are the only tests
//! allowed to make the node a swarm manager, and only when it already is one
//! or `CCCI_ALLOW_SWARM_INIT=1` (scripts/test sets it): see
//! `test_support::swarm_init_allowed`. A missing engine fails them unless
//! `CCCI_ALLOW_SKIP` allows skipping it.

use std::process::{Command, Output};

use bollard::query_parameters::ListNetworksOptions;

fn swarm_init(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarm-init"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (count, driver, attachable) of networks named exactly `name`.
fn networks(name: &str) -> Vec<(String, bool)> {
    test_support::rt().block_on(async {
        let d = cc_ci::host::swarm::connect().await.unwrap();
        let mut f = std::collections::HashMap::new();
        f.insert("name".to_string(), vec![name.to_string()]);
        d.list_networks(Some(ListNetworksOptions { filters: Some(f) }))
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(|n| (n.driver.unwrap_or_default(), n.attachable.unwrap_or(false)))
            .collect()
    })
}

#[test]
fn second_run_changes_nothing() {
    if !test_support::swarm_init_allowed() {
        return;
    }
    let first = swarm_init(&[]);
    assert!(first.status.success(), "{first:?}");
    let second = swarm_init(&[]);
    assert!(second.status.success(), "{second:?}");
    let out = stdout(&second);
    assert!(out.contains("nothing to do"), "{out}");
    assert!(out.contains("swarm: already active"), "{out}");
    assert_eq!(networks("proxy"), vec![("overlay".to_string(), true)]);
}

#[test]
fn concurrent_runs_create_one_network() {
    if !test_support::swarm_init_allowed() {
        return;
    }
    let name = test_support::unique("ccci-test-net");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_swarm-init"))
                .args(["--network", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let nets = networks(&name);
    let _ = Command::new("docker").args(["network", "rm", &name]).output();
    for o in &outs {
        assert!(o.status.success(), "{o:?}");
    }
    let created = outs.iter().filter(|o| stdout(o).contains(": created")).count();
    assert_eq!(created, 1, "exactly one run creates it");
    assert_eq!(nets, vec![("overlay".to_string(), true)], "exactly one network");
}

#[test]
fn a_non_overlay_network_with_the_name_is_refused_with_advice() {
    if !test_support::swarm_init_allowed() {
        return;
    }
    let name = test_support::unique("ccci-test-bridge");
    let made = Command::new("docker")
        .args(["network", "create", "--driver", "bridge", &name])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let o = swarm_init(&["--network", &name]);
    let _ = Command::new("docker").args(["network", "rm", &name]).output();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not `overlay`") && err.contains("docker network rm"),
        "{err}"
    );
}

#[test]
fn help_teaches() {
    let o = swarm_init(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("Idempotent") && out.contains("--network"), "{out}");
}
