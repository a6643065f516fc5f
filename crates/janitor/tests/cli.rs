//! The `janitor` binary: its help, its answer when the engine is
//! unreachable, and real sweeps against the Docker engine in swarm mode (a
//! missing engine or swarm fails them unless `CCCI_ALLOW_SKIP` allows
//! skipping it). Stack objects are created through the Docker Engine API,
//! labelled as `docker stack deploy`/abra do (abra cannot be built here).
//! The live run is this test process holding a real lease; the janitors are
//! separate processes. Each test uses its own wildcard domain and state dir, and
//! tears its stacks down when it ends, on failure too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bollard::Docker;
use cc_ci::deploy::stack;
use cc_ci::state::lease::{self, Holder, Lease, LeaseInfo};
use test_support::{rt, Component};

fn janitor(state: &Path, domain: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_janitor"))
        .args(["--state-dir".as_ref(), state.as_os_str()])
        .args(["--domain", domain])
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_teaches_what_it_does_and_how() {
    let o = Command::new(env!("CARGO_BIN_EXE_janitor"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let (out, _) = text(&o);
    for want in [
        "lease",
        "SIGKILL",
        "left alone",
        "Traefik",
        "--dry-run",
        "CCCI_STATE_DIR",
        "CCCI_DOMAIN",
        "/var/lib/cc-ci",
        "Exit status",
        "second run",
    ] {
        assert!(out.contains(want), "--help lacks {want:?}:\n{out}");
    }
}

#[test]
fn unreachable_engine_exits_1_and_says_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_janitor"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("CCCI_STATE_DIR", d.path())
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("cannot reach the Docker engine"), "{err}");
    assert!(err.contains("dockerd") && err.contains("nothing was removed"), "{err}");
}

/// Stacks made by one test; torn down on drop.
struct Stacks(Vec<String>);

impl Drop for Stacks {
    fn drop(&mut self) {
        let rt = rt();
        let d = rt.block_on(cc_ci::host::swarm::connect()).unwrap();
        for s in &self.0 {
            let _ = rt.block_on(stack::teardown(&d, s, std::time::Duration::from_secs(60)));
        }
    }
}

/// A volume, a secret and a config of `stack`, and a run folder with its
/// abra env file.
fn make_app(d: &Docker, state: &Path, run_id: &str, domain: &str, stack: &str) -> PathBuf {
    rt().block_on(test_support::make_stack_objects(d, stack));
    let env_dir = state.join("runs").join(run_id).join("abra/servers/default");
    std::fs::create_dir_all(&env_dir).unwrap();
    std::fs::write(env_dir.join(format!("{domain}.env")), "TYPE=x\n").unwrap();
    state.join("runs").join(run_id)
}

fn objects(d: &Docker, stack: &str) -> usize {
    rt().block_on(stack::verify_clean(d, stack)).unwrap().len()
}

#[test]
fn sweeps_dead_apps_spares_the_live_one_and_concurrent_janitors_agree() {
    let Some(d) = test_support::docker_with(&[Component::Swarm]) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let wildcard = format!("k{}.test", test_support::token());
    let (dead_id, live_id) = ("dead00", "11ee00"); // six hex digits, as run ids are
    let dead_domain = format!("web-{dead_id}.{wildcard}");
    let live_domain = format!("web-{live_id}.{wildcard}");
    let (dead, live) = (stack::stack_name(&dead_domain), stack::stack_name(&live_domain));
    let _guard = Stacks(vec![dead.clone(), live.clone()]);

    // The live run: this process holds its lease.
    let lease = Lease::take(&state, LeaseInfo::new(live_id, &live_domain, &live, Holder::Run)).unwrap();
    let live_dir = make_app(&d, &state, live_id, &live_domain, &live);
    // The dead run: a stale lease naming a pid that is gone, and its app.
    let mut stale = LeaseInfo::new(dead_id, &dead_domain, &dead, Holder::Run);
    stale.pid = 4_999_999;
    std::fs::write(lease::lease_path(&state, &dead), serde_json::to_vec(&stale).unwrap()).unwrap();
    let dead_dir = make_app(&d, &state, dead_id, &dead_domain, &dead);

    // Dry run: says what it would do, changes nothing.
    let o = janitor(&state, &wildcard, &["--dry-run"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains(&format!("would reap {dead}")), "{out}");
    assert!(
        out.contains(&format!("left    {live}")) && out.contains("its run is alive"),
        "{out}"
    );
    assert_eq!((objects(&d, &dead), objects(&d, &live)), (3, 3));
    assert!(dead_dir.is_dir() && lease::lease_path(&state, &dead).is_file());

    // Two janitors at once.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_janitor"))
            .env("CCCI_STATE_DIR", &state)
            .env("CCCI_DOMAIN", &wildcard)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (oa, ea) = text(&a);
    let (ob, eb) = text(&b);
    assert!(a.status.success() && b.status.success(), "{oa}\n{ea}\n{ob}\n{eb}");
    let reaped_by = [&oa, &ob]
        .iter()
        .filter(|o| o.contains(&format!("reaped  {dead} (run {dead_id}): volume")))
        .count();
    assert_eq!(
        reaped_by, 1,
        "exactly one janitor removed the dead app's objects:\n{oa}\n---\n{ob}"
    );
    for o in [&oa, &ob] {
        assert!(o.contains(&format!("left    {live}")), "{o}");
    }
    assert_eq!(objects(&d, &dead), 0);
    assert!(!dead_dir.exists() && !lease::lease_path(&state, &dead).exists());
    assert_eq!(objects(&d, &live), 3, "the live app is intact");
    assert!(live_dir.is_dir() && Lease::is_held(lease.path()));

    // Again: nothing to do.
    let o = janitor(&state, &wildcard, &[]);
    let (out, _) = text(&o);
    assert!(o.status.success() && out.contains("nothing to do"), "{out}");

    // The live run ends (without tearing down): the next run reaps it.
    drop(lease);
    let o = janitor(&state, &wildcard, &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains(&format!("reaped  {live}")), "{out}");
    assert_eq!(objects(&d, &live), 0);
    assert!(!live_dir.exists());
    assert_eq!(std::fs::read_dir(state.join("leases")).unwrap().count(), 0);
}
