//! The bridge end to end, on real parts: a Gitea 1.26.0 built from its Go
//! module (SQLite, 127.0.0.1), a Buildbot 4.3.0 master and workers from
//! PyPI running cc-ci's own master.cfg, the bridge binary, and the builds
//! running the real `ccci test` on the real swarm behind the real Traefik.
//! Each test has its own Gitea, Buildbot and bridge (own ports, folders and
//! state); the apps they deploy share the swarm, each in its own stack.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::forge::{wait_for, Options, World, CONTEXT, RUN};
use test_support::Component;

fn ready() -> bool {
    test_support::need(Component::Gitea)
        && test_support::need(Component::Buildbot)
        && test_support::need(Component::FixtureImages)
        && test_support::need(Component::TraefikStack)
        && test_support::need(Component::Chromium)
}

fn world(o: Options) -> World {
    World::new(Path::new(env!("CARGO_BIN_EXE_bridge")), &ccci(), o)
}

fn ccci() -> PathBuf {
    let p = test_support::workspace().join("target/debug/ccci");
    assert!(p.is_file(), "{} is not built: cargo build -p ccci", p.display());
    p
}

fn comment_ts(c: &Value) -> f64 {
    chrono_ts(c["created_at"].as_str().unwrap())
}

fn chrono_ts(s: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp() as f64
}

fn level_of(results: &Value) -> String {
    format!(
        "level {} ({})",
        results["level"],
        results["level_name"].as_str().unwrap()
    )
}

/// The results.json the build uploaded to the master.
fn master_results(w: &World, buildid: i64) -> Value {
    let props = w.buildbot.properties(buildid);
    let rel = props["results_rel"].as_str().expect("results_rel");
    let text = std::fs::read_to_string(w.buildbot.results_dir.join(rel).join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Names of Docker stacks whose name holds `run_id` (a torn-down run has none).
fn stacks_of(run_id: &str) -> Vec<String> {
    let out = std::process::Command::new("/usr/bin/docker")
        .args(["stack", "ls", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(run_id))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_members_testme_runs_ccci_test_and_reports_its_level() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    let pr = w.pr("static-site", "upgrade");
    let t0 = Instant::now();
    let c = w.gitea.comment(&w.maintainer, &pr, "!testme\nplease");
    let status = w.final_status(&pr, RUN);
    let t_final = t0.elapsed();
    // Exactly one build, and it ran the real ccci test at the PR's head.
    let builds = w.buildbot.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{}", w.log());
    let b = &builds[0];
    let props = w.buildbot.properties(b["buildid"].as_i64().unwrap());
    assert_eq!(props["head_sha"], pr.head_sha);
    assert_eq!(props["pr"], pr.number);
    assert_eq!(props["comment_id"], c["id"].as_u64().unwrap().to_string());
    let results = master_results(&w, b["buildid"].as_i64().unwrap());
    assert_eq!(results["tested_ref"], pr.head_sha);
    assert_eq!(results["base_version"], "1.0.0+1.22.1");
    assert_eq!(results["deploys"], 2);
    let level = level_of(&results);
    assert!(results["level"].as_u64().unwrap() >= 6, "{results}");
    // The status carries that level and links to the build's live log.
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(status["description"], level.as_str());
    let target = status["target_url"].as_str().unwrap();
    assert!(
        target.starts_with(&w.buildbot.url) && target.ends_with(&format!("/builds/{}", b["number"])),
        "{target}"
    );
    // One bot comment: the level, the rungs, the screenshot, the reproduction, the live log.
    let mine = wait_for("the comment with its screenshot", Duration::from_secs(30), || {
        let m = w.gitea.bot_comments(&pr);
        (m.len() == 1 && m[0]["body"].as_str().unwrap().contains("![screenshot")).then_some(m)
    });
    let body = mine[0]["body"].as_str().unwrap();
    assert!(body.contains(&format!("### cc-ci: {level}")), "{body}");
    for want in [
        "| 1 install | ✅ pass",
        "| 3 upgrade | ✅ pass",
        "ccci test ./static-site",
        target,
        "asked by @maintainer",
    ] {
        assert!(body.contains(want), "{want:?} missing from:\n{body}");
    }
    // Three pictures, each a PNG Gitea serves and the comment shows: the
    // summary card (1200 x 630), the screenshot after the upgrade and its
    // thumbnail (640 x 400).
    let assets = mine[0]["assets"].as_array().unwrap();
    let mut sizes: Vec<(String, u32, u32)> = assets
        .iter()
        .map(|a| {
            let url = a["browser_download_url"].as_str().unwrap();
            assert!(body.contains(url), "{url} is not shown:\n{body}");
            let png = reqwest::blocking::get(url).unwrap().bytes().unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{a}");
            let dim = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
            let name = a["name"].as_str().unwrap();
            (name.split('-').next().unwrap().to_string(), dim(16), dim(20))
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes.len(), 3, "{assets:?}");
    assert_eq!((sizes[0].0.as_str(), sizes[0].1, sizes[0].2), ("card", 1200, 630));
    assert_eq!(sizes[1].0, "screenshot");
    assert_eq!((sizes[2].0.as_str(), sizes[2].1, sizes[2].2), ("thumbnail", 640, 400));
    assert!(body.contains("after upgrade*"), "the screenshot's caption:\n{body}");
    // The reproduce command fetches the PR's head (a fork's commit is on
    // no branch of the base repository).
    let fetch = format!("git -C static-site fetch origin refs/pull/{}/head", pr.number);
    assert!(body.contains(&fetch), "{fetch:?} missing from:\n{body}");
    // No secret in the bridge's log (at debug level everywhere) or its comment.
    let log = w.log();
    for secret in w.secrets() {
        assert!(secret.len() >= 8, "a real secret");
        assert!(!log.contains(&secret), "a secret is in the bridge's log");
        assert!(!body.contains(&secret), "a secret is in the comment");
    }
    // The bridge's Buildbot user may force, stop and cancel, and nothing
    // else: a rebuild of its own build is refused.
    let rebuild = w
        .buildbot
        .control_as_bridge(&format!("builds/{}", b["buildid"]), "rebuild", json!({}));
    assert_eq!(rebuild, 403, "the bridge's Buildbot user may not rebuild");
    assert!(stacks_of(results["app"]["run_id"].as_str().unwrap()).is_empty());
    // The figures for the closing note.
    let started: f64 = b["started_at"].as_f64().unwrap();
    eprintln!(
        "FIGURES polling (1 s): comment -> build start {:.1} s, comment -> final status {:.1} s",
        started - comment_ts(&c),
        t_final.as_secs_f64()
    );
}

#[test]
fn a_non_members_testme_starts_nothing_and_a_malformed_one_gets_the_syntax() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    let pr = w.pr("static-site", "outsider");
    w.gitea.comment(&w.outsider, &pr, "!testme");
    w.gitea.comment(&w.maintainer, &pr, "!testme --full");
    w.gitea.comment(&w.maintainer, &pr, "LGTM, but !testme later");
    w.bridge.wait_polls(3);
    assert!(w.buildbot.buildrequests().is_empty(), "nothing may start:\n{}", w.log());
    assert!(w.status(&pr).is_none(), "no status on the head");
    let mine = w.gitea.bot_comments(&pr);
    assert_eq!(mine.len(), 1, "one reply, to the malformed command: {mine:?}");
    let reply = mine[0]["body"].as_str().unwrap();
    assert!(
        reply.contains("@maintainer") && reply.contains("--full") && reply.contains("`!testme --quick`"),
        "{reply}"
    );
    assert!(w.log().contains("outsider is not a member of recipes"), "{}", w.log());
    // The bridge's own reply is not a command, and nothing is answered twice.
    w.bridge.wait_polls(2);
    assert_eq!(w.gitea.bot_comments(&pr).len(), 1);
}

#[test]
fn a_webhook_with_a_bad_signature_gets_401_and_starts_nothing() {
    if !ready() {
        return;
    }
    // Polling once an hour: only the webhook can start anything here.
    let w = world(Options {
        poll_s: 3600.0,
        webhook: true,
        ..Options::default()
    });
    let pr = w.pr("static-site", "hooked");
    let c = w.gitea.comment(&w.maintainer, &pr, "!testme");
    let payload = json!({
        "action": "created",
        "comment": {"id": c["id"], "body": "!testme", "user": {"login": "maintainer"}, "created_at": c["created_at"]},
        "issue": {"number": pr.number, "pull_request": {"merged": false}},
        "repository": {"full_name": pr.repo},
        "is_pull": true,
    })
    .to_string();
    let good = bridge::trigger::webhook::sign(w.webhook_secret.as_bytes(), payload.as_bytes());
    let wrong_key = bridge::trigger::webhook::sign(b"not the secret", payload.as_bytes());
    for (sig, why) in [
        (None, "missing"),
        (Some(wrong_key.as_str()), "wrong key"),
        (Some("zz"), "not hex"),
    ] {
        let (code, body) = w.bridge.hook(&payload, sig);
        assert_eq!(code, 401, "{why}: {body}");
    }
    // A body changed after signing.
    let tampered = payload.replace("maintainer", "outsider");
    assert_eq!(w.bridge.hook(&tampered, Some(&good)).0, 401);
    // The 401s came before anything was decided (polling is off: only the
    // webhook could have started a build): nothing is in flight and no
    // comment was claimed.
    let (_, st) = w.bridge.status();
    assert_eq!(st["in_flight"], json!([]), "{st}");
    assert!(!w.log().contains(" via webhook"), "{}", w.log());
    assert!(w.buildbot.buildrequests().is_empty(), "{}", w.log());
    assert!(w.status(&pr).is_none());
    // The same delivery, signed: one build.
    let t0 = Instant::now();
    let (code, body) = w.bridge.hook(&payload, Some(&good));
    assert_eq!(code, 202, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").starts_with("started build"),
        "{body}"
    );
    let br = wait_for("the build request", Duration::from_secs(20), || {
        w.buildbot.buildrequests().first().cloned()
    });
    let forced = t0.elapsed();
    let builds = wait_for("the build", Duration::from_secs(60), || {
        w.buildbot.builds().first().cloned()
    });
    eprintln!(
        "FIGURES webhook: delivery -> build request {:.2} s, comment -> build start {:.1} s",
        forced.as_secs_f64(),
        builds["started_at"].as_f64().unwrap() - comment_ts(&c)
    );
    assert_eq!(br["buildsetid"].as_i64(), Some(1));
    // Delivered again (Gitea retries): still one.
    assert_eq!(w.bridge.hook(&payload, Some(&good)).1["handled"], "duplicate");
    assert_eq!(w.buildbot.buildrequests().len(), 1);
}

#[test]
fn a_comment_seen_by_the_webhook_and_by_polling_starts_one_build() {
    if !ready() {
        return;
    }
    let w = world(Options {
        poll_s: 0.5,
        webhook: true,
        ..Options::default()
    });
    let pr = w.pr("static-site", "both");
    // Gitea's own webhook to the bridge, beside polling every 0.5 s.
    w.gitea
        .add_webhook(&pr.repo, &format!("{}/hook", w.bridge.url), &w.webhook_secret);
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    // Both triggers see it: the webhook's delivery arrives and several polls read it.
    wait_for("the webhook delivery", Duration::from_secs(30), || {
        w.log().contains("via webhook").then_some(())
    });
    w.bridge.wait_polls(4);
    let log = w.log();
    assert_eq!(w.buildbot.buildrequests().len(), 1, "{log}");
    let claimed = log
        .lines()
        .filter(|l| l.contains(" via ") && l.ends_with(": !testme"))
        .count();
    assert_eq!(claimed, 1, "claimed once:\n{log}");
    let status = w.final_status(&pr, RUN);
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(w.buildbot.builds().len(), 1);
    assert_eq!(w.gitea.bot_comments(&pr).len(), 1);
}

#[test]
fn a_second_testme_cancels_the_older_build_and_one_comment_reports_the_newer() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    let mut pr = w.pr("static-site", "twice");
    let first_sha = pr.head_sha.clone();
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    // The first build is running ccci test (deploying) ...
    let first = wait_for("the first build to run ccci", Duration::from_secs(120), || {
        let b = w.buildbot.builds().first().cloned()?;
        let steps = w.buildbot.get(&format!("builds/{}/steps", b["buildid"]));
        steps["steps"]
            .as_array()?
            .iter()
            .any(|s| s["name"] == "ccci test" && s["started_at"].is_number())
            .then_some(b)
    });
    let first_run = w.buildbot.properties(first["buildid"].as_i64().unwrap())["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // ... and has deployed its app (its stack exists) ...
    wait_for("the first build's app to be deployed", Duration::from_secs(120), || {
        (!stacks_of(&first_run).is_empty()).then_some(())
    });
    // ... when a new commit lands and the maintainer asks again.
    let second_sha = w.gitea.push_commit(&mut pr, "a change");
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    let cancelled = wait_for("the first build to end cancelled", Duration::from_secs(200), || {
        let b = w.buildbot.get(&format!("builds/{}", first["buildid"]))["builds"][0].clone();
        (b["complete"] == true).then_some(b)
    });
    assert_eq!(cancelled["results"], 6, "cancelled: {cancelled}");
    let old = w.gitea.status(&pr.repo, &first_sha, CONTEXT).unwrap();
    assert_eq!(old["status"], "error");
    assert!(old["description"].as_str().unwrap().contains("superseded"), "{old}");
    // The same head again while its build runs: nothing new.
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    w.bridge.wait_polls(3);
    assert_eq!(w.buildbot.buildrequests().len(), 2, "{}", w.log());
    let status = w.final_status(&pr, RUN);
    assert_eq!(status["status"], "success", "{status}");
    w.settle(Duration::from_secs(60));
    let mine = w.gitea.bot_comments(&pr);
    assert_eq!(mine.len(), 1, "one comment: {mine:?}");
    assert!(
        mine[0]["body"].as_str().unwrap().contains(&second_sha[..12]),
        "reports the newer head"
    );
    // The cancelled run tore its app down (ccci got SIGTERM, not SIGKILL).
    assert!(stacks_of(&first_run).is_empty(), "the cancelled run left its stack");
    let first_results = w
        .buildbot
        .worker_results_dir
        .join(format!("static-site/{first_run}/results.json"));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&first_results).unwrap()).unwrap();
    assert_eq!(r["interrupted"], "SIGTERM", "{r}");
    assert_eq!(r["clean_teardown"], true);
}

#[test]
fn buildbot_down_gives_an_error_status_with_the_reason_then_the_build_is_retried() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    let pr = w.pr("static-site", "down");
    w.buildbot.stop_master();
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    let err = wait_for("the error status", Duration::from_secs(60), || {
        w.status(&pr).filter(|s| s["status"] == "error")
    });
    let d = err["description"].as_str().unwrap();
    assert!(
        d.contains("retrying") && d.contains("Buildbot") && d.contains("unreachable"),
        "{d}"
    );
    let (code, st) = w.bridge.status();
    assert_eq!(code, 503, "{st}");
    assert!(st["errors"].to_string().contains("Buildbot"), "{st}");
    // The bridge keeps trying while Buildbot is away: a second attempt fails too.
    wait_for("a second failed force", Duration::from_secs(60), || {
        (w.log().matches("not started: ").count() >= 2).then_some(())
    });
    w.buildbot.start_master();
    let status = w.final_status(&pr, RUN);
    assert_eq!(status["status"], "success", "{status}\n{}", w.log());
    assert_eq!(w.buildbot.buildrequests().len(), 1, "forced once");
    assert_eq!(w.gitea.bot_comments(&pr).len(), 1);
    assert_eq!(w.bridge.status().0, 200);
}

#[test]
fn gitea_away_while_a_build_runs_gets_its_status_and_comment_once_it_is_back() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    let pr = w.pr("static-site", "gitea-away");
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    wait_for("the build to run", Duration::from_secs(120), || {
        w.status(&pr).filter(|s| s["description"] == "running ccci test")
    });
    // The build clones the recipe from Gitea first: stop Gitea only once
    // `ccci test` itself has started, or the clone fails instead.
    wait_for("the `ccci test` step to start", Duration::from_secs(120), || {
        let build = w.buildbot.builds().first().cloned()?;
        let id = build["buildid"].as_i64()?;
        w.buildbot
            .steps(id)
            .into_iter()
            .find(|s| s["name"] == "ccci test" && s["started_at"].is_number())
    });
    w.gitea.stop();
    // The build ends while Gitea is away: the bridge cannot report it.
    wait_for("the build to end", RUN, || {
        w.buildbot.builds().first().filter(|b| b["complete"] == true).cloned()
    });
    wait_for("the bridge to notice Gitea is away", Duration::from_secs(60), || {
        let (code, st) = w.bridge.status();
        (code == 503 && st["errors"].to_string().contains("Gitea")).then_some(())
    });
    // It tried to report while Gitea was away, and waits to try again.
    wait_for("a report or status retried", Duration::from_secs(60), || {
        let (_, st) = w.bridge.status();
        st["retrying"]
            .as_array()?
            .iter()
            .any(|r| r["kind"] == "transient" && r["item"].as_str().is_some_and(|i| i.contains("build")))
            .then_some(())
    });
    w.gitea.restart();
    let status = w.final_status(&pr, Duration::from_secs(120));
    assert_eq!(status["status"], "success", "{status}\n{}", w.log());
    w.settle(Duration::from_secs(90));
    assert_eq!(w.gitea.bot_comments(&pr).len(), 1, "{}", w.log());
    assert!(w.log().contains("trying again in"), "backed off: {}", w.log());
    assert!(
        w.bridge.status().1["retrying"].as_array().is_some_and(Vec::is_empty),
        "every item went through once Gitea was back"
    );
    assert_eq!(w.buildbot.buildrequests().len(), 1);
}

#[test]
fn a_bridge_killed_mid_build_is_restarted_and_posts_one_comment() {
    if !ready() {
        return;
    }
    let mut w = world(Options::default());
    let pr = w.pr("static-site", "killed");
    w.gitea.comment(&w.maintainer, &pr, "!testme");
    wait_for("the build to run", Duration::from_secs(120), || {
        w.status(&pr).filter(|s| s["description"] == "running ccci test")
    });
    w.bridge.kill();
    // The build goes on without the bridge: `ccci test` runs.
    wait_for(
        "`ccci test` to run while the bridge is down",
        Duration::from_secs(120),
        || {
            let build = w.buildbot.builds().first().cloned()?;
            w.buildbot
                .steps(build["buildid"].as_i64()?)
                .into_iter()
                .find(|s| s["name"] == "ccci test" && s["started_at"].is_number())
        },
    );
    w.bridge.restart();
    let status = w.final_status(&pr, RUN);
    assert_eq!(status["status"], "success", "{status}\n{}", w.log());
    w.settle(Duration::from_secs(60));
    // A second kill after the report, and a restart: nothing is posted again.
    w.bridge.kill();
    w.bridge.restart();
    w.bridge.wait_polls(3);
    assert_eq!(w.buildbot.buildrequests().len(), 1);
    assert_eq!(w.gitea.bot_comments(&pr).len(), 1, "{}", w.log());
}

#[test]
fn an_enrolled_repository_gitea_does_not_know_is_an_error_on_status() {
    if !ready() {
        return;
    }
    let w = world(Options {
        repos: vec![format!("recipes/static-site"), format!("recipes/no-such-recipe")],
        ..Options::default()
    });
    let _pr = w.pr("static-site", "known");
    w.bridge.wait_polls(2);
    let (code, st) = w.bridge.status();
    assert_eq!(code, 503, "{st}");
    let errors = st["errors"].to_string();
    assert!(
        errors.contains("recipes/no-such-recipe") && errors.contains("404"),
        "{errors}"
    );
    assert!(w
        .log()
        .contains("recipes/no-such-recipe is enrolled but Gitea does not know it"));
    // The known repository is still polled.
    assert!(
        st["health"]["repos"]["recipes/static-site"]["last_polled"].is_number(),
        "{st}"
    );
}

#[test]
fn the_sweep_tests_the_newest_release_without_a_comment() {
    if !ready() {
        return;
    }
    let w = world(Options {
        sweep_s: 4.0,
        ..Options::default()
    });
    let pr = w.pr("static-site", "sweep");
    let tag_sha = {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(test_support::fixture_recipes().join("static-site"))
            .args(["rev-parse", "1.1.0+1.22.1^{commit}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let b = wait_for("the sweep's build", Duration::from_secs(60), || {
        w.buildbot.builds().first().cloned()
    });
    // A build's properties appear as it sets up.
    let props = wait_for("the build's properties", Duration::from_secs(30), || {
        let p = w.buildbot.properties(b["buildid"].as_i64().unwrap());
        p.contains_key("trigger").then_some(p)
    });
    assert_eq!(props["trigger"], "sweep");
    assert_eq!(props["head_sha"], tag_sha.as_str());
    assert_eq!(props["pr"], 0);
    let done = wait_for("the sweep's build to end", RUN, || {
        let x = w.buildbot.get(&format!("builds/{}", b["buildid"]))["builds"][0].clone();
        (x["complete"] == true).then_some(x)
    });
    let results = master_results(&w, done["buildid"].as_i64().unwrap());
    assert_eq!(results["tested_ref"], tag_sha.as_str(), "results kept on the master");
    assert!(w.gitea.bot_comments(&pr).is_empty(), "a sweep comments nowhere");
    assert!(
        w.gitea.status(&pr.repo, &tag_sha, CONTEXT).is_none(),
        "nor sets a status"
    );
    // No second sweep while the first one's build ran (intervals of 4 s passed).
    let during: Vec<_> = w
        .buildbot
        .buildrequests()
        .into_iter()
        .filter(|r| r["submitted_at"].as_f64() < done["complete_at"].as_f64())
        .collect();
    assert_eq!(during.len(), 1, "{during:?}");
}

#[test]
fn a_run_id_already_used_on_the_worker_fails_the_build_before_ccci_runs() {
    if !ready() {
        return;
    }
    let w = world(Options::default());
    // A hand-made run on the worker took run id 5e5e5e earlier.
    let earlier = w.buildbot.worker_results_dir.join("static-site/5e5e5e");
    std::fs::create_dir_all(&earlier).unwrap();
    std::fs::write(earlier.join("results.json"), "{\"level\": 8}").unwrap();
    // A build forced with that id (as the bridge forces one).
    let code = w.buildbot.control_as_bridge(
        "forceschedulers/testme",
        "force",
        json!({
            "builderNames": ["ccci"], "reason": "a reused run id",
            "clone_url": "http://127.0.0.1:9/none.git", "recipe": "static-site", "head_sha": "a".repeat(40),
            "fetch_ref": "", "base_branch": "main", "pr": 0, "comment_id": "", "run_id": "5e5e5e",
            "trigger": "manual", "quick": false,
        }),
    );
    assert_eq!(code, 200, "forced");
    let build = wait_for("the build to end", Duration::from_secs(120), || {
        w.buildbot.builds().first().filter(|b| b["complete"] == true).cloned()
    });
    let id = build["buildid"].as_i64().unwrap();
    let steps = w.buildbot.steps(id);
    let check = steps
        .iter()
        .find(|s| s["name"] == "check run id")
        .expect("the step ran");
    assert_eq!(check["results"], 2, "the used run id fails the build: {steps:?}");
    let ran = |name: &str| steps.iter().any(|s| s["name"] == name && s["results"] == 0);
    assert!(!ran("ccci test") && !ran("clone"), "nothing ran after it: {steps:?}");
    let props = w.buildbot.properties(id);
    assert!(
        props.get("results_rel").is_none(),
        "the earlier run's folder is never taken: {props:?}"
    );
    assert!(
        !w.buildbot.results_dir.join("static-site/5e5e5e").exists(),
        "nor uploaded"
    );
}
