//! `ccci test --quick` on the real swarm: a cold run keeps its app warm, the
//! next run reuses it (one deploy: the upgrade from what it runs to the new
//! commit), a janitor leaves a warm app alone, and a warm app that is not
//! healthy is torn down and the run is cold.

mod ccci_run;

use std::process::Command;
use std::time::Duration;

use ccci_run::{leftovers, Ccci};
use test_support::Component;

fn ready() -> bool {
    test_support::need(Component::Swarm)
        && test_support::need(Component::FixtureImages)
        && test_support::need(Component::TraefikStack)
        && test_support::need(Component::Chromium)
}

fn results(c: &Ccci, id: &str) -> serde_json::Value {
    let f = c.results.path().join("tmpl-site").join(id).join("results.json");
    let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    serde_json::from_str(&text).unwrap()
}

fn rung<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rung"] == name)
        .unwrap()
}

fn sweep(c: &Ccci) -> cc_ci::host::janitor::SweepReport {
    test_support::rt().block_on(async {
        let d = cc_ci::host::swarm::connect().await.unwrap();
        let suffix = cc_ci::host::janitor::stack_suffix("ci.test");
        cc_ci::host::janitor::sweep(&d, &c.state_dir, &suffix, Duration::from_secs(120))
            .await
            .unwrap()
    })
}

fn docker(args: &[&str]) {
    let o = Command::new("/usr/bin/docker").args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}", test_support::output_text(&o));
}

#[test]
fn quick_reuses_a_warm_app_and_falls_back_to_cold_when_it_is_not_healthy() {
    if !ready() {
        return;
    }
    let v = test_support::fixture_variant("tmpl-site", |_| {});
    let c = Ccci::new(&v.recipes);
    let stack1 = "tmpl-site-a00001_ci_test";

    // 1. No warm app yet: cold, and kept warm.
    let out = c.test("tmpl-site", &["--quick", "--run-id", "a00001"]);
    let r1 = results(&c, "a00001");
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(r1["kept_warm"], true, "{r1}");
    assert!(r1["warm"].is_null(), "{r1}");
    assert!(
        r1["adaptations"]
            .to_string()
            .contains("no app of tmpl-site is kept warm"),
        "{r1}"
    );
    assert_eq!(r1["deploys"], 2);
    assert_eq!(r1["level"], 6, "kept warm: exemplary is unverified: {}", r1["rungs"]);
    assert_eq!(rung(&r1, "exemplary")["status"], "unverified");
    let record = cc_ci::state::warm::record_path(&c.state_dir, stack1);
    assert!(record.is_file(), "{text}");
    assert!(!leftovers(stack1).is_empty(), "the app is still deployed");

    // A janitor leaves it.
    let s = sweep(&c);
    let app = s.app(stack1).unwrap_or_else(|| panic!("{s:?}"));
    assert!(
        matches!(app.outcome, cc_ci::host::janitor::Outcome::Warm { .. }),
        "{app}"
    );

    // 2. A new commit on the PR: the warm app is upgraded to it.
    let recipe = v.recipes.join("tmpl-site");
    let g = Command::new("git")
        .args([
            "-c",
            "user.name=ccci-test",
            "-c",
            "user.email=ccci@ci.test",
            "commit",
            "--allow-empty",
            "-qm",
            "a PR commit",
        ])
        .current_dir(&recipe)
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", test_support::output_text(&g));
    let out = c.test("tmpl-site", &["--quick", "--run-id", "a00002"]);
    let r2 = results(&c, "a00002");
    assert!(out.status.success(), "{}", test_support::output_text(&out));
    assert_eq!(r2["warm"]["app_run_id"], "a00001", "{r2}");
    assert_eq!(r2["warm"]["deployed_ref"], r1["tested_ref"], "{r2}");
    assert_eq!(r2["app"]["stack"], stack1);
    assert_eq!(r2["deploys"], 1, "only the upgrade deploys: {r2}");
    assert!(rung(&r2, "install")["reason"].as_str().unwrap().contains("warm app"));
    assert!(
        rung(&r2, "serve")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("checks.serve check(s) left out")),
        "{}",
        r2["rungs"]
    );
    assert_eq!(rung(&r2, "upgrade")["status"], "pass", "{}", r2["rungs"]);
    assert_eq!(r2["level"], 6, "{}", r2["rungs"]);
    let kept = cc_ci::state::warm::WarmRecord::read(&record).unwrap();
    assert_eq!(kept.kept_by_run, "a00002");
    assert_eq!(Some(kept.deployed_ref.as_str()), r2["tested_ref"].as_str());

    // 3. The warm app sickens (its app service scaled to nothing): torn
    // down, and the run is cold, on an app of its own.
    docker(&["service", "scale", "--detach", &format!("{stack1}_app=0")]);
    let out = c.test("tmpl-site", &["--quick", "--run-id", "a00003"]);
    let r3 = results(&c, "a00003");
    assert!(out.status.success(), "{}", test_support::output_text(&out));
    assert!(r3["warm"].is_null(), "{r3}");
    let adapt = r3["adaptations"].to_string();
    assert!(
        adapt.contains("is not healthy") && adapt.contains("torn down"),
        "{adapt}"
    );
    assert_eq!(leftovers(stack1), Vec::<String>::new());
    assert!(!record.exists());
    assert!(!c.state_dir.join("runs/a00001").exists());
    assert_eq!(r3["deploys"], 2);
    let stack3 = "tmpl-site-a00003_ci_test";
    assert_eq!(r3["app"]["stack"], stack3);

    // Clean up: a stale record is reaped with its app.
    let rec3 = cc_ci::state::warm::record_path(&c.state_dir, stack3);
    let mut w = cc_ci::state::warm::WarmRecord::read(&rec3).unwrap();
    w.kept_at -= chrono::Duration::hours(25);
    w.write(&c.state_dir).unwrap();
    let s = sweep(&c);
    assert!(s.app(stack3).is_some_and(|a| a.reaped()), "{s:?}");
    assert_eq!(leftovers(stack3), Vec::<String>::new());
    assert!(!rec3.exists());
}
