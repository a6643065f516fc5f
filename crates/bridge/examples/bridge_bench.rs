//! The bridge's benchmark (not a test: it prints figures). On the real parts
//! the end-to-end tests use (a throwaway Gitea and Buildbot, the bridge
//! binary, builds running the real `ccci test` of the static-site fixture):
//!
//! 1. polling at the production default (30 s): comment → build start →
//!    final comment, over `CCCI_BENCH_POLL_RUNS` comments (default 3);
//! 2. the webhook (polling once an hour): comment → build start → final comment;
//! 3. four PRs, `!testme` on each at once, two worker slots: when each
//!    build starts and ends, and how long each waited in the queue.
//!
//! Run it through `scripts/bench-bridge` (which builds what it needs and
//! prints the machine's load beside the figures).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::forge::{wait_for, Options, Pr, World, RUN};

fn ts(s: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp() as f64)
        .unwrap_or(0.0)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn bin(name: &str) -> PathBuf {
    let p = test_support::workspace().join("target/debug").join(name);
    assert!(
        p.is_file(),
        "{} is not built (scripts/bench-bridge builds it)",
        p.display()
    );
    p
}

/// (comment → build start, comment → final comment) of one `!testme`, seconds.
fn one(w: &World, pr: &Pr) -> (f64, f64) {
    let before = w.buildbot.builds().len();
    let c = w.gitea.comment(&w.maintainer, pr, "!testme");
    let at = ts(c["created_at"].as_str().unwrap_or(""));
    let b = wait_for("the build", Duration::from_secs(120), || {
        let all = w.buildbot.builds();
        (all.len() > before).then(|| all.last().cloned()).flatten()
    });
    let started = b["started_at"].as_f64().unwrap_or(0.0);
    let edits_before = comment_stamp(w, pr);
    wait_for("the final comment", RUN, || {
        let s = comment_stamp(w, pr);
        (s.is_some() && s != edits_before).then_some(())
    });
    (started - at, now() - at)
}

/// The bot's comment's id and its last edit time (whole seconds), if there is one.
fn comment_stamp(w: &World, pr: &Pr) -> Option<(u64, String)> {
    w.gitea
        .bot_comments(pr)
        .first()
        .map(|c| {
            (
                c["id"].as_u64().unwrap_or(0),
                c["updated_at"].as_str().unwrap_or("").to_string(),
            )
        })
        .filter(|(_, u)| !u.is_empty())
        .and_then(|x| {
            // A comment with the screenshot is the finished report.
            let body = w.gitea.bot_comments(pr)[0]["body"].as_str().unwrap_or("").to_string();
            body.contains("![screenshot").then_some(x)
        })
}

fn main() {
    let bridge = bin("bridge");
    let ccci = bin("ccci");
    let runs: usize = std::env::var("CCCI_BENCH_POLL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    println!("== 1. polling every 30 s (the default): {runs} comments, one at a time");
    let w = World::new(
        &bridge,
        &ccci,
        Options {
            poll_s: 30.0,
            ..Options::default()
        },
    );
    let pr = w.pr("static-site", "poll");
    let mut starts = Vec::new();
    for i in 0..runs {
        let (start, end) = one(&w, &pr);
        println!(
            "   run {}: comment -> build start {start:.1} s, comment -> final comment {end:.1} s",
            i + 1
        );
        starts.push(start);
    }
    let mean = starts.iter().sum::<f64>() / starts.len().max(1) as f64;
    println!("   mean comment -> build start {mean:.1} s (expected about half the interval plus ~1 s)");
    drop(w);

    println!("== 2. the webhook (Gitea's own delivery; polling once an hour)");
    let w = World::new(
        &bridge,
        &ccci,
        Options {
            poll_s: 3600.0,
            webhook: true,
            ..Options::default()
        },
    );
    let pr = w.pr("static-site", "hook");
    w.gitea
        .add_webhook(&pr.repo, &format!("{}/hook", w.bridge.url), &w.webhook_secret);
    let (start, end) = one(&w, &pr);
    println!("   comment -> build start {start:.1} s, comment -> final comment {end:.1} s");
    drop(w);

    println!("== 3. four PRs at once, two worker slots (polling every 1 s)");
    let w = World::new(
        &bridge,
        &ccci,
        Options {
            slots: 2,
            ..Options::default()
        },
    );
    let prs: Vec<Pr> = (1..=4).map(|i| w.pr("static-site", &format!("queue-{i}"))).collect();
    let t0 = Instant::now();
    let at = now();
    for pr in &prs {
        w.gitea.comment(&w.maintainer, pr, "!testme");
    }
    wait_for("all four reports", RUN * 3, || {
        prs.iter().all(|p| comment_stamp(&w, p).is_some()).then_some(())
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut builds: Vec<Value> = w.buildbot.builds();
    builds.sort_by(|a, b| a["started_at"].as_f64().partial_cmp(&b["started_at"].as_f64()).unwrap());
    println!(
        "   {:<6} {:<8} {:>9} {:>9} {:>9}",
        "build", "worker", "start", "end", "waited"
    );
    for b in &builds {
        let props = w.buildbot.properties(b["buildid"].as_i64().unwrap_or(0));
        let start = b["started_at"].as_f64().unwrap_or(0.0) - at;
        let end = b["complete_at"].as_f64().unwrap_or(0.0) - at;
        let br = w.buildbot.get(&format!("buildrequests/{}", b["buildrequestid"]))["buildrequests"][0].clone();
        let waited = b["started_at"].as_f64().unwrap_or(0.0) - br["submitted_at"].as_f64().unwrap_or(0.0);
        println!(
            "   {:<6} {:<8} {:>8.1}s {:>8.1}s {:>8.1}s",
            b["number"],
            props.get("workername").and_then(Value::as_str).unwrap_or("?"),
            start,
            end,
            waited
        );
    }
    let mut max_parallel = 0;
    for b in &builds {
        let t = b["started_at"].as_f64().unwrap_or(0.0);
        let n = builds
            .iter()
            .filter(|x| {
                x["started_at"].as_f64().unwrap_or(0.0) <= t && x["complete_at"].as_f64().unwrap_or(f64::MAX) > t
            })
            .count();
        max_parallel = max_parallel.max(n);
    }
    // A slot idle while a build is queued: after each build ends, how long
    // until the next build waiting at that moment starts (its worker free).
    let submitted = |b: &Value| {
        w.buildbot.get(&format!("buildrequests/{}", b["buildrequestid"]))["buildrequests"][0]["submitted_at"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let mut idle: f64 = 0.0;
    for done in &builds {
        let c = done["complete_at"].as_f64().unwrap_or(f64::MAX);
        let next = builds
            .iter()
            .filter(|x| submitted(x) < c && x["started_at"].as_f64().unwrap_or(0.0) >= c)
            .filter_map(|x| x["started_at"].as_f64())
            .fold(f64::MAX, f64::min);
        if next < f64::MAX {
            idle = idle.max(next - c);
        }
    }
    println!(
        "   {} builds, at most {max_parallel} at once, all four reported {wall:.1} s after the comments; \
         longest a slot stayed idle while a build was queued: {idle:.1} s",
        builds.len()
    );
}
