//! `ccci test` end to end on the real swarm behind the real Traefik (which
//! `traefik-deploy` put there: scripts/test runs it first), with the native
//! deployer, the fixture images and recipes, real restic and Chromium: the
//! good fixtures reach their levels with exactly two deploys and leave
//! nothing behind; SIGTERM and Ctrl-C tear the app down before `ccci` exits.

use std::time::Duration;

mod ccci_run;

use ccci_run::Ccci;
use test_support::Component;

fn ready() -> bool {
    test_support::need(Component::Swarm)
        && test_support::need(Component::FixtureImages)
        && test_support::need(Component::TraefikStack)
        && test_support::need(Component::Chromium)
}

/// Runs `ccci test <fixture>` and checks what every good run must show.
fn good_run(fixture: &str, min_level: u64) -> serde_json::Value {
    let c = Ccci::new(&test_support::fixture_recipes());
    let out = c.test(fixture, &[]);
    let r = c.results(fixture);
    assert!(
        r["level"].as_u64().unwrap() >= min_level,
        "{fixture} reached level {} (< {min_level}):\n{}",
        r["level"],
        test_support::output_text(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", test_support::output_text(&out));
    assert_eq!(
        r["deploys"], 2,
        "exactly two deploys: the upgrade base, then the tested ref"
    );
    assert_eq!(r["clean_teardown"], true);
    assert_eq!(r["deployer"]["name"], "native");
    for rung in ["install", "serve", "upgrade", "lint", "tested"] {
        let x = r["rungs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["rung"] == rung)
            .unwrap();
        assert_eq!(x["status"], "pass", "{rung}: {x}");
    }
    // The artifacts are there: two screenshots (real PNGs), lint.txt, deploy.log.
    let dir = c.run_dir(fixture);
    for (name, magic) in [
        ("screenshot-serve", &b"\x89PNG"[..]),
        ("screenshot-upgrade", &b"\x89PNG"[..]),
        ("lint", &b"ref"[..]),
        ("deploy-log", &b"== install"[..]),
    ] {
        let rel = r["artifacts"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no artifact {name}: {r}"));
        let bytes = std::fs::read(dir.join(rel)).unwrap();
        assert!(
            bytes.windows(magic.len()).any(|w| w == magic),
            "{name} ({rel}) is not what it should be"
        );
    }
    // Nothing of the app is left: no stack objects, no run folder, no lease.
    let stack = r["app"]["stack"].as_str().unwrap();
    assert_eq!(ccci_run::leftovers(stack), Vec::<String>::new());
    assert!(!c
        .state
        .path()
        .join("runs")
        .join(r["app"]["run_id"].as_str().unwrap())
        .exists());
    assert!(
        std::fs::read_dir(c.state.path().join("leases")).map_or(true, |mut d| d.next().is_none()),
        "a lease file was left"
    );
    r
}

#[test]
fn static_site_is_exemplary() {
    if !ready() {
        return;
    }
    let r = good_run("static-site", 7);
    let restore = &r["rungs"][3];
    assert_eq!(
        restore["status"], "pass",
        "backupbot labels: a real round trip: {restore}"
    );
    assert!(r["adaptations"].as_array().is_some());
    // The tested version's images, as its deploy read them.
    assert_eq!(r["images"]["app"], "ccci/nginx:1.22.1", "{}", r["images"]);
}

#[test]
fn webapp_pg_is_exemplary() {
    if !ready() {
        return;
    }
    let r = good_run("webapp-pg", 7);
    assert_eq!(r["rungs"][3]["status"], "pass", "the pg_dump round trip");
}

#[test]
fn tmpl_site_is_at_least_lint_clean() {
    if !ready() {
        return;
    }
    let r = good_run("tmpl-site", 5);
    assert_eq!(r["rungs"][3]["status"], "n/a", "no backupbot labels: {}", r["rungs"][3]);
    assert_eq!(r["rungs"][3]["reason"], "no service carries the backupbot.backup label");
}

/// Starts `ccci test` on `fixture`, sends `signal` once its progress shows
/// `when`, and checks the app was torn down before it exited with `code`.
fn interrupted(fixture: &str, when: &str, signal: i32, code: i32, name: &str) {
    let c = Ccci::new(&test_support::fixture_recipes());
    let running = c.start_until(fixture, &[], when);
    running.signal(signal);
    let (status, text) = running.finish();
    assert_eq!(status.code(), Some(code), "{text}");
    assert!(text.contains("tearing the app down"), "{text}");
    let r = c.results(fixture);
    assert_eq!(r["interrupted"], name, "{r}");
    assert_eq!(r["clean_teardown"], true, "{r}");
    let stack = r["app"]["stack"].as_str().unwrap();
    assert_eq!(ccci_run::leftovers(stack), Vec::<String>::new());
    let not_run: Vec<&str> = r["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["reason"].as_str().is_some_and(|s| s.contains("interrupted")))
        .map(|x| x["rung"].as_str().unwrap())
        .collect();
    assert!(!not_run.is_empty(), "{r}");
    assert!(
        r["level"].as_u64().unwrap() < 7,
        "an interrupted run is never exemplary"
    );
}

#[test]
fn sigterm_during_the_upgrade_tears_down_before_exit() {
    if !ready() {
        return;
    }
    interrupted("tmpl-site", "deploying the tested commit", 15, 143, "SIGTERM");
}

#[test]
fn ctrl_c_during_the_install_tears_down_before_exit() {
    if !ready() {
        return;
    }
    // The install deploy's note, not the confinement line that names the base earlier.
    interrupted(
        "static-site",
        "deploying 1.0.0+1.22.1 (the upgrade base)",
        2,
        130,
        "SIGINT (Ctrl-C)",
    );
}

/// The abra deployer, live: the same ladder through the real abra CLI.
/// abra cannot be had on our build machines (scripts/test allows this test
/// to skip there, and counts it); on a host with abra it must pass.
#[test]
fn abra_deployer_takes_static_site_up_the_ladder() {
    if !ready() || !test_support::need(Component::Abra) {
        return;
    }
    let c = Ccci::new(&test_support::fixture_recipes());
    let out = c.test("static-site", &["--deployer", "abra"]);
    let r = c.results("static-site");
    assert_eq!(r["deployer"]["name"], "abra");
    assert!(r["level"].as_u64().unwrap() >= 4, "{}", test_support::output_text(&out));
    assert_eq!(r["clean_teardown"], true);
    assert_eq!(
        ccci_run::leftovers(r["app"]["stack"].as_str().unwrap()),
        Vec::<String>::new()
    );
}

/// The run's lease is taken before anything deploys: a janitor sweeping
/// the same state folder in the middle of the upgrade leaves the app alone,
/// and the run still reaches its level.
#[test]
fn a_janitor_never_reaps_a_live_run() {
    if !ready() {
        return;
    }
    let c = Ccci::new(&test_support::fixture_recipes());
    let running = c.start_until("tmpl-site", &[], "deploying the tested commit");
    let report = test_support::rt().block_on(async {
        let d = cc_ci::host::swarm::connect().await.unwrap();
        let suffix = cc_ci::host::janitor::stack_suffix("ci.test");
        cc_ci::host::janitor::sweep(&d, c.state.path(), &suffix, Duration::from_secs(60))
            .await
            .unwrap()
    });
    let (status, text) = running.finish();
    let r = c.results("tmpl-site");
    let stack = r["app"]["stack"].as_str().unwrap();
    let app = report
        .app(stack)
        .unwrap_or_else(|| panic!("the janitor did not see {stack}: {report:?}"));
    assert!(app.live() && !app.reaped(), "{app:?}");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(r["level"].as_u64().unwrap() >= 6, "{r}");
}
