//! The queue page against a real Buildbot (the pinned one in the venv
//! `scripts/buildbot install` makes, started by `test_support::forge`,
//! with cc-ci's own master.cfg): one build running and one request waiting
//! behind it (one worker slot), as its REST API reports them. The builds
//! run a stand-in for `ccci test` that waits until it is stopped; the
//! recipe is a local git repository (no Gitea needed).

mod world;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use test_support::forge::{wait_for, Buildbot};
use test_support::Component;

/// Waits until SIGTERM (Buildbot's stop) or until its worker is gone.
const STAND_IN: &str = r#"#!/bin/sh
trap 'exit 143' TERM
i=0
while [ "$i" -lt 1200 ] && kill -0 "$PPID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn the_queue_page_shows_what_buildbot_runs_and_what_waits() {
    if !test_support::need(Component::Buildbot) {
        return;
    }
    // test-support's HTTP client shares reqwest with the dashboard, which
    // brings its own TLS provider: install it before any client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("static-site");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("compose.yml"), "version: \"3.8\"\n").unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-qm",
            "one",
        ],
    );
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let stand_in = d.path().join("ccci");
    test_support::write_executable(&stand_in, STAND_IN);
    let bb = Buildbot::start(&d.path().join("buildbot"), 1, &stand_in);
    for run_id in ["b00001", "b00002"] {
        let params = json!({
            "builderNames": ["ccci"], "reason": format!("dashboard queue test {run_id}"),
            "clone_url": format!("file://{}", repo.display()), "recipe": "static-site", "head_sha": sha,
            "fetch_ref": "", "base_branch": "main", "pr": 1, "comment_id": "1",
            "run_id": run_id, "trigger": "manual", "quick": false,
        });
        assert_eq!(bb.control_as_bridge("forceschedulers/testme", "force", params), 200);
    }
    wait_for(
        "one build running, one request waiting",
        Duration::from_secs(120),
        || {
            let running = bb.builds().iter().filter(|b| b["complete"] == false).count();
            let waiting = bb.buildrequests().iter().filter(|r| r["claimed"] == false).count();
            (running == 1 && waiting == 1).then_some(())
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let html = rt.block_on(async {
        let root = world::results_root();
        let base = world::serve(root.path(), Some(bb.url.trim_end_matches('/').to_string())).await;
        reqwest::get(format!("{base}/queue"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        html.contains("Running builds (1)") && html.contains("Waiting (1)"),
        "{html}"
    );
    // Build 1 of builder ccci runs; request 2 waits (Buildbot's own numbers).
    assert!(html.contains("<tr><td>1</td><td>ccci</td>"), "{html}");
    assert!(html.contains("<tr><td>2</td><td>ccci</td>"), "{html}");
    // Buildbot away: the page says so, naming the URL.
    let html = rt.block_on(async {
        let root = world::results_root();
        let port = test_support::forge::free_port();
        let base = world::serve(root.path(), Some(format!("http://127.0.0.1:{port}"))).await;
        (
            reqwest::get(format!("{base}/queue"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            port,
        )
    });
    let (html, port) = html;
    assert!(
        html.contains("did not answer") && html.contains(&format!("127.0.0.1:{port}")),
        "{html}"
    );
}
