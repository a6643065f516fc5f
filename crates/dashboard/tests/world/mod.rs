//! A results root for the dashboard's tests, made from a real run
//! (`tests/fixtures/static-site/ed7869`, see its README) and variations
//! of it, and a dashboard serving it on a free local port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cc_ci_results::history::{Started, STARTED_SCHEMA};
use cc_ci_results::level::{Rung, Status};
use cc_ci_results::verdict::{judge, Bar};
use cc_ci_results::{RefKind, RunResults, ServiceLog};

/// The long recipe name of the pull-request-only recipe (overflow test).
pub const LONG_RECIPE: &str = "a-recipe-with-a-long-name-that-only-pull-requests-have-tested";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/static-site/ed7869")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The real run's results.
pub fn real() -> RunResults {
    RunResults::read(&fixture().join("results.json")).unwrap()
}

/// Writes `r` as run `id` of its recipe under `root`, with the real run's
/// files beside it.
pub fn write_run(root: &Path, id: &str, r: &RunResults) {
    let dir = root.join(&r.recipe).join(id);
    copy_dir(&fixture(), &dir);
    std::fs::remove_file(dir.join("started.json")).ok();
    r.write(&dir.join("results.json")).unwrap();
}

/// `r` moved to start `minutes` after the real run.
pub fn at(mut r: RunResults, minutes: i64) -> RunResults {
    let shift = |s: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(s).unwrap() + chrono::Duration::minutes(minutes);
        t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    r.started_at = shift(&r.started_at);
    r.finished_at = shift(&r.finished_at);
    r
}

/// The real run with its upgrade failed: a long reason, service logs.
pub fn failed_upgrade() -> RunResults {
    let mut r = real();
    for x in &mut r.rungs {
        if x.rung == Rung::Upgrade {
            x.status = Status::Fail;
            x.reason = Some(format!(
                "service static-site-ed7869_ci_test_app: the new task exited 1 ({}) and Swarm rolled back",
                "nginx: [emerg] unknown directive \"servr\" in /etc/nginx/conf.d/default.conf:1 ".repeat(3)
            ));
        }
    }
    r.rungs.retain(|x| x.rung <= Rung::Upgrade);
    r.images = [("app".to_string(), "ccci/nginx:1.22.1-broken".to_string())].into();
    r.service_logs = vec![ServiceLog {
        service: "static-site-ed7869_ci_test_app".into(),
        lines: vec![
            "2026/12/07 05:30:01 [emerg] 1#1: unknown directive \"servr\" in /etc/nginx/conf.d/default.conf:1".into(),
            format!("a very long line without spaces {}", "x".repeat(300)),
        ],
        proxy: false,
    }];
    r.finish();
    let bar = r
        .verdict
        .as_ref()
        .map(|v| v.bar.clone())
        .unwrap_or_else(Bar::default_bar);
    r.verdict = Some(judge(&r, &bar));
    r
}

/// A results root: static-site with an older green release run, the real
/// run, a newer failed one (a regression 7 -> 2) and one that never
/// finished; a pull-request-only recipe with a long name.
pub fn results_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write_run(root, "aaa001", &at(real(), -60 * 24));
    copy_dir(&fixture(), &root.join("static-site/ed7869"));
    std::fs::remove_file(root.join("static-site/ed7869/started.json")).unwrap();
    write_run(root, "bbb002", &at(failed_upgrade(), 60));
    let unfinished = root.join("static-site/ccc003");
    std::fs::create_dir_all(&unfinished).unwrap();
    Started {
        schema: STARTED_SCHEMA.into(),
        recipe: "static-site".into(),
        run_id: "ccc003".into(),
        stack: "static-site-ccc003_ci_test".into(),
        tested_ref: "b".repeat(40),
        ref_kind: RefKind::Change,
        quick: false,
        started_at: "2026-12-07T07:00:00Z".into(),
    }
    .write(&unfinished)
    .unwrap();
    let mut pr = at(real(), 30);
    pr.recipe = LONG_RECIPE.into();
    pr.ref_kind = Some(RefKind::Change);
    write_run(root, "ddd004", &pr);
    d
}

/// A dashboard serving `root` on 127.0.0.1:<free port>, until the runtime ends.
pub async fn serve(root: &Path, buildbot_url: Option<String>) -> String {
    let config = dashboard::config::Config {
        results_dir: root.to_path_buf(),
        public_url: "https://dashboard.ci.test".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        clone_url: "https://git.coopcloud.tech/coop-cloud/{recipe}.git".into(),
        buildbot_url,
    };
    let app: Arc<_> = dashboard::server::App::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, dashboard::server::router(app)).await });
    format!("http://{addr}")
}
