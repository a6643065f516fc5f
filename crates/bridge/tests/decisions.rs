//! The bridge's decisions, fast: the real [`bridge::bridge::Bridge`] against
//! in-process fakes recorded from Gitea 1.26.0 / Buildbot 4.3.0
//! (`tests/fake/`, answers from `tests/recorded/`), driven by its public
//! methods (`poll_once`, `start_builds`, `follow_builds`, `post_statuses`,
//! `health`, the webhook through `bridge::server::router`) with a
//! results.json written into the fake master's results dir. One test per
//! rule of the `!testme` feature, each well under a second; the same rules
//! end to end on the real parts are `tests/e2e.rs` (minutes each).
//!
//! Two rules the bridge broke when these tests were written (a build
//! Buildbot retried after a lost worker, a build purged from the master)
//! were pinned here first and pass since the bridge's per-item retries.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use bridge::bridge::Bridge;
use bridge::config::{Config, RepoName, Secret, Secrets};
use bridge::state::{BuildRow, Phase};
use bridge::trigger::{CommentEvent, Handled, Via};
use cc_ci_results::level::{Rung, Status};
use cc_ci_results::{RunResults, RungResult};
use fake::buildbot::{results, Endpoint as Bb, FakeBuildbot};
use fake::gitea::{Endpoint as Gt, FakeGitea};
use fake::Fault;
use serde_json::Value;

/// The PR's first head.
const SHA_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
/// A later push.
const SHA_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
/// The webhook's secret.
const HOOK_SECRET: &str = "fake-hook-secret";
/// The status context the bridge sets.
const CONTEXT: &str = bridge::bridge::CONTEXT;
/// A screenshot's bytes: a real PNG, 2 x 2 pixels (red over blue), so the
/// bridge can make its thumbnail.
const PNG: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00\x00\x00\xfd\xd4\x9a\x73\x00\x00\x00\x11\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x44\x0c\x60\xf2\x3f\x00\x1b\xf2\x03\xfd\xf3\xe7\x4b\xb1\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

/// One test's fake Gitea (org, repository, a member `maintainer`, a
/// non-member `outsider`), fake Buildbot and the bridge's folder.
struct World {
    dir: tempfile::TempDir,
    gitea: Arc<FakeGitea>,
    bb: Arc<FakeBuildbot>,
    repo: RepoName,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let gitea = FakeGitea::start().await;
        gitea.user("maintainer");
        gitea.add_member("maintainer");
        gitea.user("outsider");
        let bb = FakeBuildbot::start(dir.path().join("results")).await;
        let repo = RepoName::parse(&gitea.repo).unwrap();
        World { dir, gitea, bb, repo }
    }

    /// The bridge's settings, as the NixOS module would write them.
    fn config(&self) -> Config {
        let p = |f: &str| self.dir.path().join(f);
        let text = format!(
            "gitea_url = {:?}\ngitea_token_file = {:?}\norg = {:?}\nrepos = [{:?}]\n\
             buildbot_url = {:?}\nbuildbot_password_file = {:?}\nresults_dir = {:?}\nstate_db = {:?}\n\
             listen = \"127.0.0.1:0\"\npoll_interval_s = 1\nfollow_interval_s = 0.5\nsweep_interval_s = 0\n\
             webhook_secret_file = {:?}\n",
            self.gitea.url,
            p("gitea-token"),
            self.gitea.org,
            self.gitea.repo,
            self.bb.url,
            p("buildbot-password"),
            self.bb.results_dir,
            p("bridge/state.sqlite"),
            p("webhook-secret"),
        );
        Config::parse(&p("bridge.toml"), &text).unwrap()
    }

    /// A bridge (a process start) on this world's state database. The
    /// first one records the bridge's first start: comments made before it
    /// are never read, so a test makes its bridge before its comments.
    async fn bridge(&self) -> Bridge {
        let secrets = Secrets {
            gitea_token: Secret::new(self.gitea.bot_token.clone()),
            buildbot_password: Secret::new(self.bb.password.clone()),
            webhook_secret: Some(Secret::new(HOOK_SECRET)),
        };
        Bridge::new(self.config(), secrets).await.unwrap()
    }

    /// The build request of the bridge's build `id`.
    fn brid(&self, b: &Bridge, id: i64) -> i64 {
        row(b, id).brid.expect("not forced yet")
    }

    /// A worker takes build `id`'s request; the Buildbot build's id.
    fn claim(&self, b: &Bridge, id: i64) -> i64 {
        self.bb.claim(self.brid(b, id))
    }

    /// Buildbot build `buildid` ends after `ccci test` wrote `r` (and a screenshot).
    fn finish(&self, buildid: i64, r: &RunResults) {
        let rel = self.bb.write_results(buildid, r, Some(PNG));
        let code = if r.verdict().state == cc_ci_results::verdict::State::Success {
            results::SUCCESS
        } else {
            results::FAILURE
        };
        self.bb.finish(buildid, code, Some(&rel));
    }

    /// The commit status the bridge decided for `sha`: the newest one it
    /// still has to post (its work loop posts them: [`work_and_post`]),
    /// else the newest it posted to the fake Gitea.
    fn status(&self, b: &Bridge, sha: &str) -> Option<Decided> {
        let unposted = b
            .state
            .dirty_statuses()
            .unwrap()
            .into_iter()
            .filter(|s| s.sha == sha)
            .max_by_key(|s| s.build);
        match unposted {
            Some(s) => Some(Decided {
                state: s.state,
                description: s.description,
                posted: false,
            }),
            None => self.gitea.status(sha, CONTEXT).map(|s| Decided {
                state: s.state,
                description: s.description,
                posted: true,
            }),
        }
    }

    /// The head SHAs forced, in order.
    fn forced_shas(&self) -> Vec<String> {
        self.bb
            .buildsets()
            .iter()
            .map(|s| s.properties["head_sha"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A commit status the bridge decided.
#[derive(Debug)]
struct Decided {
    /// `pending`, `success`, `failure`, `error`.
    state: String,
    /// Its one line.
    description: String,
    /// Whether it is on Gitea yet.
    posted: bool,
}

/// The bridge's build `id`.
fn row(b: &Bridge, id: i64) -> BuildRow {
    b.state.build(id).unwrap().expect("no such build")
}

/// One turn of the bridge's loops: a poll, then the work loop's round
/// (less posting the statuses: see [`World::status`], [`work_and_post`]).
async fn turn(b: &Bridge) {
    b.poll_once().await;
    b.start_builds().await;
    b.follow_builds().await;
}

/// The work loop's round alone (less posting the statuses).
async fn work(b: &Bridge) {
    b.start_builds().await;
    b.follow_builds().await;
}

/// The id of the build comment `comment` started.
fn build_of_comment(b: &Bridge, comment: u64) -> i64 {
    let outcome = b.state.comment(comment).unwrap().expect("comment not claimed");
    outcome
        .strip_prefix("started build ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("comment {comment}: {outcome}"))
}

/// The results `ccci test` writes for `sha`: level 2 (install and serve
/// pass) when `green`, else install failed.
fn run_results(sha: &str, green: bool) -> RunResults {
    let rung = |rung, status, reason: Option<&str>| RungResult {
        rung,
        status,
        reason: reason.map(str::to_string),
        duration_s: 3.0,
        log: None,
        attempts: 1,
    };
    let mut r = RunResults {
        recipe: "static-site".into(),
        tested_ref: sha.into(),
        tested_version: Some("1.1.0+1.22.1".into()),
        base_version: Some("1.0.0+1.22.1".into()),
        started_at: "2026-12-07T11:00:00Z".into(),
        finished_at: "2026-12-07T11:01:00Z".into(),
        rungs: if green {
            vec![
                rung(Rung::Install, Status::Pass, None),
                rung(Rung::Serve, Status::Pass, None),
            ]
        } else {
            vec![rung(Rung::Install, Status::Fail, Some("app_app did not converge"))]
        },
        screenshot: Some("screenshot.png".into()),
        deploys: 2,
        ..RunResults::empty()
    };
    r.finish();
    r
}

/// Drives build `id` through Buildbot to its report: claimed, ended with
/// `r`, followed and reported. The Buildbot build's id.
async fn run_to_report(w: &World, b: &Bridge, id: i64, r: &RunResults) -> i64 {
    work(b).await;
    let buildid = w.claim(b, id);
    work(b).await;
    w.finish(buildid, r);
    work(b).await;
    assert_eq!(row(b, id).phase, Phase::Done, "build {id} reported: {:?}", row(b, id));
    buildid
}

#[tokio::test]
async fn fakes_answer_in_the_shapes_recorded_from_the_real_apis() {
    let w = World::new().await;
    let mut answers = shapes::gitea(&w).await;
    answers.extend(shapes::buildbot(&w).await);
    let mut problems = Vec::new();
    for (name, status, body) in &answers {
        let rec = fake::recorded(name);
        if *status != rec.status {
            problems.push(format!("{name}: status {status}, recorded {}", rec.status));
        }
        let mut diff = Vec::new();
        fake::shape_diff(&rec.body, body, "body", &mut diff);
        problems.extend(diff.into_iter().map(|d| format!("{name}: {d}")));
    }
    let covered: std::collections::BTreeSet<&str> = answers.iter().map(|(n, _, _)| n.as_str()).collect();
    for name in fake::all_recorded() {
        if !covered.contains(name.as_str()) {
            problems.push(format!("{name}: recorded, but no fake answer is checked against it"));
        }
    }
    assert!(
        problems.is_empty(),
        "the fakes drifted from the recorded answers:\n{}",
        problems.join("\n")
    );
}

/// The fakes' answers, one per recorded answer, made by the same calls in
/// the same situations as the recorder's (`tests/record.rs`).
mod shapes {
    use super::*;
    use serde_json::json;

    /// (recorded name, status, body).
    pub type Answer = (String, u16, Value);

    async fn call(
        http: &reqwest::Client,
        method: &str,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = http.request(m, url);
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("token {t}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let s = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (s, v)
    }

    fn client(cookies: bool) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .cookie_store(cookies)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn gitea(w: &World) -> Vec<Answer> {
        let g = &w.gitea;
        let http = client(false);
        let api = |p: &str| format!("{}/api/v1{p}", g.url);
        let bot = Some(g.bot_token.as_str());
        let outsider = g.user("outsider");
        let repo = &g.repo;
        let n = g.open_pr("record", SHA_A);
        let mut out: Vec<Answer> = Vec::new();
        macro_rules! rec {
            ($name:expr, $token:expr, $m:expr, $path:expr, $body:expr) => {{
                let path = $path;
                let (s, v) = call(&http, $m, api(AsRef::<str>::as_ref(&path)), $token, $body).await;
                out.push(($name.to_string(), s, v.clone()));
                (s, v)
            }};
        }
        let since =
            (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        rec!("gitea/version", None, "GET", "/version", None);
        rec!("gitea/user", bot, "GET", "/user", None);
        rec!("gitea/user_401_without_token", None, "GET", "/user", None);
        rec!("gitea/repo", bot, "GET", format!("/repos/{repo}"), None);
        rec!(
            "gitea/repo_404",
            bot,
            "GET",
            format!("/repos/{}/no-such-recipe", g.org),
            None
        );
        rec!(
            "gitea/tags",
            bot,
            "GET",
            format!("/repos/{repo}/tags?limit=50&page=1"),
            None
        );
        rec!("gitea/pull", bot, "GET", format!("/repos/{repo}/pulls/{n}"), None);
        g.comment(n, "maintainer", "!testme\nplease");
        rec!(
            "gitea/issue_comments_since",
            bot,
            "GET",
            format!("/repos/{repo}/issues/comments?since={since}&limit=50&page=1"),
            None
        );
        rec!(
            "gitea/pr_comments",
            bot,
            "GET",
            format!("/repos/{repo}/issues/{n}/comments"),
            None
        );
        rec!(
            "gitea/org_member_204",
            bot,
            "GET",
            format!("/orgs/{}/members/maintainer", g.org),
            None
        );
        rec!(
            "gitea/org_member_404",
            bot,
            "GET",
            format!("/orgs/{}/members/outsider", g.org),
            None
        );
        rec!(
            "gitea/org_member_asked_by_a_non_member",
            Some(outsider.as_str()),
            "GET",
            format!("/orgs/{}/members/maintainer", g.org),
            None
        );
        let (_, c) = rec!(
            "gitea/comment_create",
            bot,
            "POST",
            format!("/repos/{repo}/issues/{n}/comments"),
            Some(json!({"body": "<!-- cc-ci:testme -->\n### cc-ci: recording"}))
        );
        let cid = c["id"].as_u64().unwrap();
        rec!(
            "gitea/comment_edit",
            bot,
            "PATCH",
            format!("/repos/{repo}/issues/comments/{cid}"),
            Some(json!({"body": "<!-- cc-ci:testme -->\n### cc-ci: recording, edited"}))
        );
        {
            let part = reqwest::multipart::Part::bytes(PNG.to_vec())
                .file_name("screenshot-a00001.png")
                .mime_str("image/png")
                .unwrap();
            let r = http
                .post(api(&format!(
                    "/repos/{repo}/issues/comments/{cid}/assets?name=screenshot-a00001.png"
                )))
                .header("Authorization", format!("token {}", g.bot_token))
                .multipart(reqwest::multipart::Form::new().part("attachment", part))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            out.push(("gitea/comment_asset_create".into(), s, r.json().await.unwrap()));
        }
        let (_, assets) = rec!(
            "gitea/comment_assets",
            bot,
            "GET",
            format!("/repos/{repo}/issues/comments/{cid}/assets"),
            None
        );
        let aid = assets[0]["id"].as_u64().unwrap();
        rec!(
            "gitea/comment_asset_delete",
            bot,
            "DELETE",
            format!("/repos/{repo}/issues/comments/{cid}/assets/{aid}"),
            None
        );
        rec!(
            "gitea/pr_comments_with_the_bots",
            bot,
            "GET",
            format!("/repos/{repo}/issues/{n}/comments"),
            None
        );
        let gone = g.comment(n, &g.bot, "to be deleted");
        rec!(
            "gitea/comment_delete",
            bot,
            "DELETE",
            format!("/repos/{repo}/issues/comments/{gone}"),
            None
        );
        rec!(
            "gitea/comment_edit_404",
            bot,
            "PATCH",
            format!("/repos/{repo}/issues/comments/{gone}"),
            Some(json!({"body": "edited"}))
        );
        rec!(
            "gitea/status_create",
            bot,
            "POST",
            format!("/repos/{repo}/statuses/{SHA_A}"),
            Some(
                json!({"state": "pending", "target_url": format!("{}#/buildrequests/1", w.bb.url),
                        "description": "queued: waiting for Buildbot", "context": CONTEXT})
            )
        );
        rec!(
            "gitea/statuses",
            bot,
            "GET",
            format!("/repos/{repo}/commits/{SHA_A}/statuses"),
            None
        );
        let hooked = g.comment(n, "maintainer", "!testme --quick");
        let (_, delivery) = g.webhook_delivery(hooked);
        out.push(("webhook/issue_comment".into(), 0, delivery));
        out
    }

    pub async fn buildbot(w: &World) -> Vec<Answer> {
        let bb = &w.bb;
        let anon = client(true);
        let me = client(true);
        let mut out: Vec<Answer> = Vec::new();
        let api = |p: &str| format!("{}api/v2/{p}", bb.url);
        let rpc = |method: &str, params: Value| json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
        let force = |run_id: &str| {
            rpc(
                "force",
                json!({"builderNames": ["ccci"], "reason": format!("[cc-ci build 1 run {run_id}] recipes/static-site#1"),
                       "clone_url": "http://127.0.0.1:1/recipes/static-site.git", "recipe": "static-site",
                       "head_sha": SHA_A, "fetch_ref": "refs/pull/1/head", "base_branch": "main", "pr": 1,
                       "comment_id": "1", "run_id": run_id, "trigger": "testme", "quick": false}),
            )
        };
        macro_rules! rec {
            ($name:expr, $client:expr, $m:expr, $path:expr, $body:expr) => {{
                let path = $path;
                let (s, v) = call($client, $m, api(AsRef::<str>::as_ref(&path)), None, $body).await;
                out.push(($name.to_string(), s, v.clone()));
                v
            }};
        }
        let login = |c: &reqwest::Client, pw: &str| {
            c.get(format!("{}auth/login", bb.url))
                .basic_auth(&bb.user, Some(pw))
                .send()
        };
        let r = login(&anon, "not-the-password").await.unwrap();
        let s = r.status().as_u16();
        out.push((
            "buildbot/auth_login_refused".into(),
            s,
            Value::String(r.text().await.unwrap()),
        ));
        rec!(
            "buildbot/force_403_anonymous",
            &anon,
            "POST",
            "forceschedulers/testme",
            Some(force("b00000"))
        );
        let r = login(&me, &bb.password).await.unwrap();
        out.push(("buildbot/auth_login".into(), r.status().as_u16(), Value::Null));
        let mut bad = force("b00000");
        bad["params"]["head_sha"] = json!("not-a-sha");
        rec!(
            "buildbot/force_invalid_property",
            &me,
            "POST",
            "forceschedulers/testme",
            Some(bad)
        );
        let f1 = rec!(
            "buildbot/force",
            &me,
            "POST",
            "forceschedulers/testme",
            Some(force("b00001"))
        );
        let ids = |f: &Value| {
            (
                f["result"][0].as_i64().unwrap(),
                f["result"][1]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_i64()
                    .unwrap(),
            )
        };
        let (_, brid1) = ids(&f1);
        let build1 = bb.claim(brid1);
        rec!(
            "buildbot/buildrequest_claimed",
            &me,
            "GET",
            format!("buildrequests/{brid1}"),
            None
        );
        rec!(
            "buildbot/buildrequest_builds_running",
            &me,
            "GET",
            format!("buildrequests/{brid1}/builds"),
            None
        );
        rec!("buildbot/build_running", &me, "GET", format!("builds/{build1}"), None);
        let f2 = call(&me, "POST", api("forceschedulers/testme"), None, Some(force("b00002")))
            .await
            .1;
        let (bsid2, brid2) = ids(&f2);
        rec!(
            "buildbot/buildrequest_unclaimed",
            &me,
            "GET",
            format!("buildrequests/{brid2}"),
            None
        );
        rec!(
            "buildbot/buildrequest_builds_none",
            &me,
            "GET",
            format!("buildrequests/{brid2}/builds"),
            None
        );
        rec!(
            "buildbot/buildsets",
            &me,
            "GET",
            "buildsets?order=-bsid&limit=200",
            None
        );
        rec!(
            "buildbot/buildrequests_of_buildset",
            &me,
            "GET",
            format!("buildrequests?buildsetid={bsid2}"),
            None
        );
        let reason = |r: &str| rpc_params(r);
        rec!(
            "buildbot/cancel_403_anonymous",
            &anon,
            "POST",
            format!("buildrequests/{brid2}"),
            Some(rpc("cancel", reason("recording")))
        );
        rec!(
            "buildbot/stop_403_anonymous",
            &anon,
            "POST",
            format!("builds/{build1}"),
            Some(rpc("stop", reason("recording")))
        );
        rec!(
            "buildbot/buildrequest_cancel",
            &me,
            "POST",
            format!("buildrequests/{brid2}"),
            Some(rpc("cancel", reason("recording: cancel")))
        );
        rec!(
            "buildbot/buildrequest_cancelled",
            &me,
            "GET",
            format!("buildrequests/{brid2}"),
            None
        );
        rec!(
            "buildbot/build_stop",
            &me,
            "POST",
            format!("builds/{build1}"),
            Some(rpc("stop", reason("recording: stop")))
        );
        rec!("buildbot/build_stopped", &me, "GET", format!("builds/{build1}"), None);
        rec!(
            "buildbot/buildrequest_stopped",
            &me,
            "GET",
            format!("buildrequests/{brid1}"),
            None
        );
        rec!(
            "buildbot/build_stop_complete",
            &me,
            "POST",
            format!("builds/{build1}"),
            Some(rpc("stop", reason("recording: stop again")))
        );
        let f3 = call(&me, "POST", api("forceschedulers/testme"), None, Some(force("a00001")))
            .await
            .1;
        let (_, brid3) = ids(&f3);
        let build3 = bb.claim(brid3);
        bb.finish(build3, results::SUCCESS, Some("static-site/a00001"));
        rec!("buildbot/build_complete", &me, "GET", format!("builds/{build3}"), None);
        rec!(
            "buildbot/build_properties",
            &me,
            "GET",
            format!("builds/{build3}/properties"),
            None
        );
        rec!(
            "buildbot/buildrequest_complete",
            &me,
            "GET",
            format!("buildrequests/{brid3}"),
            None
        );
        rec!(
            "buildbot/buildrequest_builds_complete",
            &me,
            "GET",
            format!("buildrequests/{brid3}/builds"),
            None
        );
        let f4 = call(&me, "POST", api("forceschedulers/testme"), None, Some(force("b00003")))
            .await
            .1;
        let (_, brid4) = ids(&f4);
        let build4 = bb.claim(brid4);
        bb.lose_worker(build4);
        rec!("buildbot/build_retry", &me, "GET", format!("builds/{build4}"), None);
        rec!(
            "buildbot/buildrequest_requeued",
            &me,
            "GET",
            format!("buildrequests/{brid4}"),
            None
        );
        rec!(
            "buildbot/buildrequest_builds_after_retry",
            &me,
            "GET",
            format!("buildrequests/{brid4}/builds"),
            None
        );
        bb.claim(brid4);
        rec!(
            "buildbot/buildrequest_builds_retried",
            &me,
            "GET",
            format!("buildrequests/{brid4}/builds"),
            None
        );
        rec!("buildbot/build_404", &me, "GET", "builds/999999", None);
        rec!(
            "buildbot/build_properties_404",
            &me,
            "GET",
            "builds/999999/properties",
            None
        );
        rec!("buildbot/buildrequest_404", &me, "GET", "buildrequests/999999", None);
        rec!(
            "buildbot/buildrequest_builds_404",
            &me,
            "GET",
            "buildrequests/999999/builds",
            None
        );
        rec!(
            "buildbot/build_stop_404",
            &me,
            "POST",
            "builds/999999",
            Some(rpc("stop", reason("recording")))
        );
        out
    }

    fn rpc_params(reason: &str) -> Value {
        json!({ "reason": reason })
    }
}

#[tokio::test]
async fn a_malformed_testme_gets_the_syntax_reply_and_other_text_is_ignored() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("syntax", SHA_A);
    let malformed = w.gitea.comment(pr, "maintainer", "!testme --full");
    let chatter = [
        w.gitea.comment(pr, "maintainer", "LGTM, but !testme later"),
        w.gitea.comment(pr, "maintainer", "please !testme"),
        w.gitea.comment(pr, "maintainer", "LGTM\n!testme"),
    ];
    turn(&b).await;
    turn(&b).await;
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1, "one reply, to the malformed command: {mine:?}");
    let reply = &mine[0].body;
    assert!(
        reply.starts_with("@maintainer: unknown flag `--full`.") && reply.ends_with(bridge::trigger::command::SYNTAX),
        "{reply}"
    );
    assert_eq!(
        b.state.comment(malformed).unwrap().as_deref(),
        Some("replied with the syntax (unknown flag `--full`)")
    );
    for c in chatter {
        assert_eq!(b.state.comment(c).unwrap(), None, "comment {c} is not a command");
    }
    assert_eq!(w.bb.count(Bb::Force), 0, "nothing forced");
    assert!(w.status(&b, SHA_A).is_none(), "no status");
    // The bot's own reply is read by the next polls and answered by nothing.
    turn(&b).await;
    assert_eq!(w.gitea.bot_comments(pr).len(), 1);
    // The well-formed command (first line alone, free text after) runs.
    let ok = w.gitea.comment(pr, "maintainer", "!testme\nplease, after the fix");
    turn(&b).await;
    let id = build_of_comment(&b, ok);
    assert_eq!(w.forced_shas(), [SHA_A], "{:?}", row(&b, id));
}

#[tokio::test]
async fn a_non_members_testme_starts_nothing() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("outsider", SHA_A);
    let c = w.gitea.comment(pr, "outsider", "!testme");
    turn(&b).await;
    turn(&b).await;
    assert_eq!(
        b.state.comment(c).unwrap().as_deref(),
        Some(format!("ignored: outsider is not a member of {}", w.gitea.org).as_str())
    );
    let asked: Vec<_> = w
        .gitea
        .calls()
        .into_iter()
        .filter(|x| x.endpoint == Gt::OrgMember)
        .map(|x| x.uri)
        .collect();
    assert_eq!(asked, [format!("/api/v1/orgs/{}/members/outsider", w.gitea.org)]);
    assert!(b.state.all_builds().unwrap().is_empty());
    assert_eq!(w.bb.count(Bb::Force), 0, "nothing forced");
    assert!(w.status(&b, SHA_A).is_none(), "no status");
    assert!(w.gitea.bot_comments(pr).is_empty(), "no reply");
    // A member's, on the same PR, runs.
    let m = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    build_of_comment(&b, m);
    assert_eq!(w.forced_shas(), [SHA_A]);
}

#[tokio::test]
async fn a_second_testme_supersedes_the_older_running_build_and_stops_it() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("twice", SHA_A);
    let first = build_of_comment(&b, {
        let c = w.gitea.comment(pr, "maintainer", "!testme");
        turn(&b).await;
        c
    });
    let old_build = w.claim(&b, first);
    work(&b).await;
    assert_eq!(w.status(&b, SHA_A).unwrap().description, "running ccci test");
    // A new commit, and the maintainer asks again.
    w.gitea.push(pr, SHA_B);
    let c2 = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let second = build_of_comment(&b, c2);
    assert_eq!(row(&b, first).superseded_by, Some(second));
    let stops = w.bb.with(|m| m.stops.clone());
    assert_eq!(
        stops,
        [(
            old_build,
            format!("superseded by a newer !testme (cc-ci build {second})")
        )],
        "the older build is stopped on Buildbot"
    );
    let old = w.status(&b, SHA_A).unwrap();
    assert_eq!(
        (old.state.as_str(), old.description.as_str()),
        ("error", "cancelled: superseded by a newer !testme at b2b2b2b2")
    );
    assert_eq!(w.forced_shas(), [SHA_A, SHA_B]);
    // The newer build ends: it alone is reported, and the older stays superseded.
    let new_build = w.claim(&b, second);
    work(&b).await;
    w.finish(new_build, &run_results(SHA_B, true));
    work(&b).await;
    work(&b).await;
    assert_eq!(row(&b, first).phase, Phase::Done);
    let (new, old) = (w.status(&b, SHA_B).unwrap(), w.status(&b, SHA_A).unwrap());
    assert!(new.state == "success" && new.posted, "{new:?}");
    assert!(old.state == "error" && old.posted, "{old:?}");
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(
        mine[0].body.contains(&format!("at `{}`", &SHA_B[..12])),
        "{}",
        mine[0].body
    );
    assert_eq!(w.bb.with(|m| m.stops.len()), 1, "stopped once");
}

#[tokio::test]
async fn a_second_testme_cancels_the_older_request_still_queued() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("queued", SHA_A);
    w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let first = b.state.all_builds().unwrap()[0].id;
    let brid = w.brid(&b, first);
    w.gitea.push(pr, SHA_B);
    w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let cancels = w.bb.with(|m| m.cancels.clone());
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].0, brid);
    assert_eq!(w.bb.request(brid).unwrap().results, results::CANCELLED);
    assert_eq!(w.bb.count(Bb::Stop), 0, "no build to stop");
    assert_eq!(w.forced_shas(), [SHA_A, SHA_B]);
}

#[tokio::test]
async fn the_same_sha_tested_twice_is_allowed() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("again", SHA_A);
    let c1 = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    let first = build_of_comment(&b, c1);
    run_to_report(&w, &b, first, &run_results(SHA_A, true)).await;
    let s = w.status(&b, SHA_A).unwrap();
    assert!(s.state == "success" && s.posted, "{s:?}");
    // Again, on the same head (a flaky run, a changed host): a new build.
    let c2 = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let second = build_of_comment(&b, c2);
    assert_ne!(first, second);
    assert_eq!(w.forced_shas(), [SHA_A, SHA_A]);
    assert_eq!(w.status(&b, SHA_A).unwrap().state, "pending");
    // While that one is in flight, the same head once more starts nothing new.
    let c3 = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let outcome = b.state.comment(c3).unwrap().unwrap();
    assert!(
        outcome.starts_with(&format!("nothing new: build {second} of {}", &SHA_A[..12])),
        "{outcome}"
    );
    assert_eq!(w.bb.count(Bb::Force), 2);
}

#[tokio::test]
async fn the_pr_comment_is_edited_in_place_across_two_reported_runs() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("edit", SHA_A);
    let c1 = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    let first = build_of_comment(&b, c1);
    run_to_report(&w, &b, first, &run_results(SHA_A, true)).await;
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1);
    let id = mine[0].id;
    let run1 = row(&b, first).run_id;
    assert!(mine[0].body.contains("| 2 serve | ✅ pass"), "{}", mine[0].body);
    let pictures = |c: &_| -> Vec<String> {
        let c: &fake::gitea::Comment = c;
        let mut names: Vec<String> = c.assets.iter().map(|a| a.name.clone()).collect();
        names.sort();
        names
    };
    let names = |run: &str| {
        vec![
            format!("card-{run}.png"),
            format!("screenshot-{run}.png"),
            format!("thumbnail-{run}.png"),
        ]
    };
    assert_eq!(
        pictures(&mine[0]),
        names(&run1),
        "the card, the screenshot and its thumbnail"
    );
    assert!(!mine[0].body.contains("Earlier runs"), "{}", mine[0].body);
    // A second run, red this time.
    w.gitea.push(pr, SHA_B);
    let c2 = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    let second = build_of_comment(&b, c2);
    run_to_report(&w, &b, second, &run_results(SHA_B, false)).await;
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1, "one comment, edited: {mine:?}");
    assert_eq!(mine[0].id, id);
    assert_eq!(w.gitea.count(Gt::CommentCreate), 1);
    let body = &mine[0].body;
    assert!(
        body.contains("| 1 install | ❌ fail") && body.contains(&SHA_B[..12]) && !body.contains("| 2 serve"),
        "the second run's report replaced the first's:\n{body}"
    );
    let run2 = row(&b, second).run_id;
    assert_eq!(pictures(&mine[0]), names(&run2), "the earlier run's pictures go");
    for a in &mine[0].assets {
        assert!(
            body.contains(&format!("/attachments/{}", a.uuid)),
            "{} is shown: {body}",
            a.name
        );
    }
    assert!(
        body.contains(&format!(
            "<details><summary>Earlier runs on this pull request (1)</summary>\n\n| commit | level | outcome | asked |\n|---|---:|---|---|\n| `{}` | 2 | [success](",
            &SHA_A[..12]
        )),
        "{body}"
    );
    let s = w.status(&b, SHA_B).unwrap();
    assert!(s.state == "failure" && s.posted, "{s:?}");
}

#[tokio::test]
async fn the_comment_is_found_again_by_its_marker_after_a_restart() {
    let w = World::new().await;
    let pr = w.gitea.open_pr("restart", SHA_A);
    // Someone quotes the bot's marker: not the bot's comment.
    let decoy = w.gitea.comment(
        pr,
        "maintainer",
        &format!("{}\nquoting cc-ci here", cc_ci_results::comment::MARKER),
    );
    let mine = {
        let b = w.bridge().await;
        let c1 = w.gitea.comment(pr, "maintainer", "!testme");
        b.poll_once().await;
        let first = build_of_comment(&b, c1);
        run_to_report(&w, &b, first, &run_results(SHA_A, true)).await;
        let mine = w.gitea.bot_comments(pr);
        assert_eq!(mine.len(), 1);
        mine[0].id
    };
    // A new process on the same state, which lost the comment's id (the
    // bridge died between posting the comment and recording it).
    let b = w.bridge().await;
    b.state.set_pr_comment(&w.repo, pr, None).unwrap();
    w.gitea.push(pr, SHA_B);
    let c2 = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    let second = build_of_comment(&b, c2);
    run_to_report(&w, &b, second, &run_results(SHA_B, true)).await;
    assert_eq!(w.gitea.count(Gt::CommentCreate), 1, "no second comment");
    let now = w.gitea.bot_comments(pr);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].id, mine);
    assert!(now[0].body.contains(&SHA_B[..12]), "{}", now[0].body);
    assert_eq!(b.state.pr_comment(&w.repo, pr).unwrap(), Some(mine));
    let d = w.gitea.comments(pr).into_iter().find(|c| c.id == decoy).unwrap();
    assert_eq!(d.edits, 0, "the quoting comment is left alone");
}

#[tokio::test]
async fn a_force_whose_answer_was_lost_is_found_again_by_its_reason() {
    let w = World::new().await;
    let pr = w.gitea.open_pr("lost", SHA_A);
    // Buildbot takes the force but its answer never arrives: the bridge
    // is killed while it waits.
    w.bb.fail(Bb::Force, Fault::Stall(Duration::from_secs(10)), 1);
    let id = {
        let b = w.bridge().await;
        let c = w.gitea.comment(pr, "maintainer", "!testme");
        b.poll_once().await;
        let id = build_of_comment(&b, c);
        let taken = async {
            while w.bb.buildsets().is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        // The bridge dies (its future dropped) once Buildbot took the force.
        tokio::select! {
            _ = b.start_builds() => panic!("the force's answer was to be held"),
            _ = taken => {}
        }
        assert_eq!(row(&b, id).phase, Phase::Starting);
        id
    };
    let b = w.bridge().await;
    work(&b).await;
    assert_eq!(w.bb.count(Bb::Force), 1, "not forced twice");
    assert_eq!(w.bb.buildsets().len(), 1);
    let r = row(&b, id);
    assert_eq!((r.phase, r.brid), (Phase::Queued, Some(w.bb.requests()[0].brid)));
    assert_eq!(
        w.status(&b, SHA_A).unwrap().description,
        "queued: waiting for a free worker"
    );
}

#[tokio::test]
async fn a_force_answered_502_after_it_was_taken_is_not_forced_again() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("bad-gateway", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    w.bb.fail(Bb::Force, Fault::LoseAnswer, 1);
    turn(&b).await;
    let id = build_of_comment(&b, c);
    let s = w.status(&b, SHA_A).unwrap();
    assert!(
        s.state == "error" && s.description.starts_with("cannot start the build, retrying: "),
        "{s:?}"
    );
    assert_eq!(w.bb.buildsets().len(), 1, "the force was taken");
    // The backoff's wait is over (no clock to move: the state is told).
    b.state.force_failed(id, "test: the backoff is over", 0.0).unwrap();
    work(&b).await;
    assert_eq!(w.bb.count(Bb::Force), 1, "not forced twice");
    assert_eq!(w.bb.count(Bb::Buildsets), 1, "found by its reason");
    let r = row(&b, id);
    assert_eq!((r.phase, r.brid), (Phase::Queued, Some(w.bb.requests()[0].brid)));
    assert_eq!(
        w.status(&b, SHA_A).unwrap().description,
        "queued: waiting for a free worker"
    );
}

#[tokio::test]
async fn an_expired_buildbot_session_is_renewed_and_the_force_goes_through() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("session", SHA_A);
    w.gitea.comment(pr, "maintainer", "!testme");
    // The first force is refused as anonymous (the session expired).
    w.bb.fail(Bb::Force, Fault::Status(403), 1);
    turn(&b).await;
    assert_eq!(w.bb.count(Bb::Login), 2, "logged in again after the 403");
    assert_eq!(w.bb.count(Bb::Force), 2);
    assert_eq!(w.forced_shas(), [SHA_A]);
    assert_eq!(b.state.all_builds().unwrap()[0].phase, Phase::Queued);
}

#[tokio::test]
async fn a_force_buildbot_forbids_is_reported_as_an_error_and_not_retried() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("forbidden", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    // The bridge's user may not force (the master's authz): 403 with the
    // master's words, again after a new login.
    w.bb.fail(Bb::Force, Fault::Status(403), 2);
    turn(&b).await;
    let id = build_of_comment(&b, c);
    assert_eq!((w.bb.count(Bb::Login), w.bb.count(Bb::Force)), (2, 2));
    assert!(w.bb.buildsets().is_empty());
    let s = w.status(&b, SHA_A).unwrap();
    assert!(
        s.state == "error"
            && s.posted
            && s.description.starts_with("the build could not be started: ")
            && s.description.ends_with("you need to have role 'bridge'"),
        "{s:?}"
    );
    assert_eq!(row(&b, id).phase, Phase::Done);
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1);
    assert!(
        mine[0].body.contains("the build could not be started"),
        "{}",
        mine[0].body
    );
    // Refused is final: nothing is forced again.
    turn(&b).await;
    assert_eq!(w.bb.count(Bb::Force), 2);
}

#[tokio::test]
async fn a_signed_webhook_delivery_starts_one_build_and_the_poll_of_the_same_comment_none() {
    let w = World::new().await;
    let b = Arc::new(w.bridge().await);
    let url = fake::serve(bridge::server::router(b.clone())).await;
    let pr = w.gitea.open_pr("hook", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    let (headers, payload) = w.gitea.webhook_delivery(c);
    let body = payload.to_string();
    let http = reqwest::Client::new();
    let post = |sig: Option<String>, body: String| {
        let mut rb = http
            .post(format!("{url}/hook"))
            .header("content-type", "application/json")
            .header("x-gitea-event", headers["x-gitea-event"].as_str().unwrap())
            .body(body);
        if let Some(s) = sig {
            rb = rb.header("x-gitea-signature", s);
        }
        rb.send()
    };
    let wrong = bridge::trigger::webhook::sign(b"not the secret", body.as_bytes());
    assert_eq!(post(Some(wrong), body.clone()).await.unwrap().status(), 401);
    assert_eq!(post(None, body.clone()).await.unwrap().status(), 401);
    let good = bridge::trigger::webhook::sign(HOOK_SECRET.as_bytes(), body.as_bytes());
    let r = post(Some(good.clone()), body.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["detail"], "started build 1", "{v}");
    // Delivered again, and read by a poll: still one build.
    let again: Value = post(Some(good), body).await.unwrap().json().await.unwrap();
    assert_eq!(again["handled"], "duplicate");
    turn(&b).await;
    assert_eq!(w.forced_shas(), [SHA_A]);
    assert_eq!(b.state.all_builds().unwrap().len(), 1);
}

#[tokio::test]
async fn a_build_buildbot_retries_is_followed_into_its_new_build() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("retry", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let id = build_of_comment(&b, c);
    let lost = w.claim(&b, id);
    work(&b).await;
    // The worker is lost: RETRY, and the request waits for a worker again.
    w.bb.lose_worker(lost);
    work(&b).await;
    assert!(row(&b, id).phase.in_flight(), "still in flight: {:?}", row(&b, id));
    assert_ne!(w.status(&b, SHA_A).unwrap().state, "error", "no final status yet");
    assert!(w.gitea.bot_comments(pr).is_empty(), "no report yet");
    // Another worker takes it and the run is green.
    let retried = w.claim(&b, id);
    work(&b).await;
    w.finish(retried, &run_results(SHA_A, true));
    work(&b).await;
    assert_eq!(row(&b, id).buildid, Some(retried));
    assert_eq!(w.status(&b, SHA_A).unwrap().state, "success");
    assert_eq!(w.gitea.bot_comments(pr).len(), 1);
}

#[tokio::test]
async fn a_build_purged_from_buildbot_is_reported_as_an_error_once() {
    let w = World::new().await;
    let b = w.bridge().await;
    let gone_pr = w.gitea.open_pr("purged", SHA_A);
    let other_pr = w.gitea.open_pr("other", SHA_B);
    let c1 = w.gitea.comment(gone_pr, "maintainer", "!testme");
    let c2 = w.gitea.comment(other_pr, "maintainer", "!testme");
    turn(&b).await;
    let (gone, other) = (build_of_comment(&b, c1), build_of_comment(&b, c2));
    let (gone_build, other_build) = (w.claim(&b, gone), w.claim(&b, other));
    work(&b).await;
    // Both end; the first is purged from the master before the bridge looks.
    w.finish(gone_build, &run_results(SHA_A, true));
    w.finish(other_build, &run_results(SHA_B, true));
    w.bb.purge_build(gone_build);
    work(&b).await;
    let s = w.status(&b, SHA_B).unwrap();
    assert!(
        s.state == "success" && s.posted,
        "the other PR's report is not held up: {s:?}"
    );
    let s = w.status(&b, SHA_A).unwrap();
    assert_eq!(s.state, "error", "{s:?}");
    assert_eq!(row(&b, gone).phase, Phase::Done);
    assert_eq!(w.gitea.bot_comments(gone_pr).len(), 1);
    assert!(b.health().gitea_error.is_none(), "{:?}", b.health());
}

/// A repository enrolled into a bridge that ran before (the operator adds
/// it to `repos`; the bridge restarts): its comments made before that
/// start are never read, by a poll or by the webhook; those after are.
#[tokio::test]
async fn comments_made_before_a_repository_was_enrolled_are_never_read() {
    let w = World::new().await;
    let secrets = || Secrets {
        gitea_token: Secret::new(w.gitea.bot_token.clone()),
        buildbot_password: Secret::new(w.bb.password.clone()),
        webhook_secret: Some(Secret::new(HOOK_SECRET)),
    };
    // The bridge first starts, two minutes ago by Gitea's clock, with
    // another repository only.
    w.gitea.set_clock_skew(-120);
    let mut before = w.config();
    before.repos = vec![RepoName::parse(&format!("{}/another-recipe", w.gitea.org)).unwrap()];
    drop(Bridge::new(before, secrets()).await.unwrap());
    // A member's `!testme` on the recipe a minute ago: after the bridge's
    // first start, before the recipe was enrolled.
    w.gitea.set_clock_skew(-60);
    let pr = w.gitea.open_pr("early", SHA_A);
    let early = w.gitea.comment(pr, "maintainer", "!testme");
    let early_at = w.gitea.comments(pr)[0].created_at;
    w.gitea.set_clock_skew(0);
    // Enrolled now: the bridge restarts with it in `repos`.
    let b = w.bridge().await;
    turn(&b).await;
    assert_eq!(b.state.comment(early).unwrap(), None, "the earlier comment was claimed");
    assert!(w.forced_shas().is_empty(), "{:?}", w.forced_shas());
    let by_hook = b
        .on_comment(CommentEvent {
            repo: w.repo.clone(),
            pr,
            comment_id: early,
            author: "maintainer".into(),
            body: "!testme".into(),
            created_at: early_at,
            via: Via::Webhook,
        })
        .await;
    assert!(
        matches!(&by_hook, Handled::Ignored(why) if why.contains("before") && why.contains("enrolled")),
        "{by_hook:?}"
    );
    // A comment after the enrolment starts a build.
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    build_of_comment(&b, c);
    assert_eq!(w.forced_shas(), [SHA_A]);
}

#[tokio::test]
async fn an_enrolled_repository_gitea_does_not_know_is_an_error_in_health() {
    let w = World::new().await;
    let mut config = w.config();
    config
        .repos
        .push(RepoName::parse(&format!("{}/no-such-recipe", w.gitea.org)).unwrap());
    let secrets = Secrets {
        gitea_token: Secret::new(w.gitea.bot_token.clone()),
        buildbot_password: Secret::new(w.bb.password.clone()),
        webhook_secret: None,
    };
    let b = Bridge::new(config, secrets).await.unwrap();
    let report = b.poll_once().await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].contains("no-such-recipe is enrolled but Gitea does not know it (404)"));
    let h = b.health();
    assert!(
        h.repos[&format!("{}/no-such-recipe", w.gitea.org)].error.is_some(),
        "{h:?}"
    );
    assert!(
        h.repos[&w.gitea.repo].last_polled.is_some(),
        "the known one is still polled: {h:?}"
    );
}

/// The work loop's round with its statuses posted.
async fn work_and_post(b: &Bridge) {
    work(b).await;
    b.post_statuses().await;
}

#[tokio::test]
async fn results_of_another_run_in_the_builds_folder_are_an_error_naming_both_never_its_level() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("foreign", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let id = build_of_comment(&b, c);
    let buildid = w.claim(&b, id);
    work(&b).await;
    // The folder holds a green run of another run id (an earlier run that
    // drew the same id on the worker).
    let mut foreign = run_results(SHA_A, true);
    foreign.app = Some(cc_ci_results::AppIdentity {
        run_id: "0a0a0a".into(),
        domain: "static-site-0a0a0a.ci.test".into(),
        stack: "static-site-0a0a0a_ci_test".into(),
    });
    w.finish(buildid, &foreign);
    work_and_post(&b).await;
    let s = w.status(&b, SHA_A).unwrap();
    let own = row(&b, id).run_id;
    assert_eq!(s.state, "error", "{s:?}");
    assert!(
        s.description.contains("not this build's own")
            && s.description.contains("0a0a0a")
            && s.description.contains(&own),
        "{s:?}"
    );
    let body = &w.gitea.bot_comments(pr)[0].body;
    assert!(!body.contains("level 2"), "never the other run's level:\n{body}");
}

#[tokio::test]
async fn a_report_gitea_refuses_is_given_up_into_a_dead_letter_while_the_others_are_posted() {
    let w = World::new().await;
    let b = w.bridge().await;
    let archived = w.gitea.open_pr("archived", SHA_A);
    let other = w.gitea.open_pr("other", SHA_B);
    let c1 = w.gitea.comment(archived, "maintainer", "!testme");
    let c2 = w.gitea.comment(other, "maintainer", "!testme");
    turn(&b).await;
    let (first, second) = (build_of_comment(&b, c1), build_of_comment(&b, c2));
    let (b1, b2) = (w.claim(&b, first), w.claim(&b, second));
    work(&b).await;
    w.finish(b1, &run_results(SHA_A, true));
    w.finish(b2, &run_results(SHA_B, true));
    // Gitea refuses the first report's comment (423: the repository was
    // archived meanwhile) every time it is tried.
    for round in 1..=bridge::retry::GIVE_UP_AFTER {
        w.gitea.fail(Gt::CommentCreate, fake::Fault::Status(423), 1);
        work_and_post(&b).await;
        let s = w.status(&b, SHA_B).unwrap();
        assert!(
            s.state == "success" && s.posted,
            "round {round}: the other report is not held up: {s:?}"
        );
        b.state.retry_now().unwrap();
    }
    assert_eq!(row(&b, first).phase, Phase::Dead, "{:?}", row(&b, first));
    let dead: Vec<_> = b.state.retries().unwrap().into_iter().filter(|r| r.dead).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].item, format!("report build {first}"));
    assert!(dead[0].last_error.contains("423"), "{dead:?}");
    // Given up: no further tries.
    let creates = w.gitea.count(Gt::CommentCreate);
    work_and_post(&b).await;
    assert_eq!(w.gitea.count(Gt::CommentCreate), creates);
    // /status lists it, with the reason.
    let app = bridge::server::router(std::sync::Arc::new(b));
    let url = fake::serve(app).await;
    let st: Value = reqwest::get(format!("{url}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let letters = st["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{st}");
    assert!(letters[0]["last_error"].as_str().unwrap().contains("423"), "{st}");
}

#[tokio::test]
async fn a_repository_that_fails_backs_off_alone_and_the_others_are_polled_every_time() {
    let w = World::new().await;
    let mut config = w.config();
    let unknown = format!("{}/no-such-recipe", w.gitea.org);
    config.repos.push(RepoName::parse(&unknown).unwrap());
    let secrets = Secrets {
        gitea_token: Secret::new(w.gitea.bot_token.clone()),
        buildbot_password: Secret::new(w.bb.password.clone()),
        webhook_secret: None,
    };
    let b = Bridge::new(config, secrets).await.unwrap();
    let pr = w.gitea.open_pr("busy", SHA_A);
    let asked = |w: &World| w.gitea.count(Gt::Repo);
    b.poll_once().await;
    let after_first = asked(&w);
    assert_eq!(after_first, 2, "both asked once");
    let h = b.health();
    assert_eq!(h.repos[&unknown].failures, 1);
    assert!(h.repos[&unknown].next_poll_at.is_some(), "{h:?}");
    // The next polls come at once: the known repository is asked each
    // time and its comment handled; the failing one waits its turn.
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    b.poll_once().await;
    assert_eq!(asked(&w), after_first + 2, "only the known repository was asked again");
    build_of_comment(&b, c);
    assert!(b.health().repos[&w.gitea.repo].error.is_none());
}

#[tokio::test]
async fn a_claimed_comment_gitea_refuses_is_given_up_after_four_tries_and_others_go_on() {
    let w = World::new().await;
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("refused", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    // The membership check is refused (403) every time.
    w.gitea.fail(
        Gt::OrgMember,
        fake::Fault::Status(403),
        bridge::retry::GIVE_UP_AFTER as usize,
    );
    for _ in 0..bridge::retry::GIVE_UP_AFTER {
        b.poll_once().await;
        b.state.retry_now().unwrap();
    }
    let outcome = b.state.comment(c).unwrap().unwrap();
    assert!(
        outcome.starts_with("given up: ") && outcome.contains("403"),
        "{outcome}"
    );
    assert_eq!(w.gitea.count(Gt::OrgMember), bridge::retry::GIVE_UP_AFTER as usize);
    b.poll_once().await;
    assert_eq!(
        w.gitea.count(Gt::OrgMember),
        bridge::retry::GIVE_UP_AFTER as usize,
        "not tried again"
    );
    // Another comment is handled as usual.
    let pr2 = w.gitea.open_pr("fine", SHA_B);
    let c2 = w.gitea.comment(pr2, "maintainer", "!testme");
    b.poll_once().await;
    build_of_comment(&b, c2);
}

#[tokio::test]
async fn a_marker_comment_of_another_user_is_never_taken_as_the_bridges() {
    let w = World::new().await;
    // Gitea cannot say who the bot is at start, nor for a while.
    w.gitea.fail(Gt::User, fake::Fault::Status(503), 3);
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("impostor", SHA_A);
    let forged = w.gitea.comment(
        pr,
        "outsider",
        &format!("{}\nlevel 8, trust me", cc_ci_results::comment::MARKER),
    );
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    turn(&b).await;
    let id = build_of_comment(&b, c);
    let buildid = w.claim(&b, id);
    work(&b).await;
    w.finish(buildid, &run_results(SHA_A, true));
    // While the bot's login is unknown, the report waits.
    work(&b).await;
    assert_eq!(w.gitea.count(Gt::CommentCreate), 0);
    b.state.retry_now().unwrap();
    work(&b).await;
    b.state.retry_now().unwrap();
    work(&b).await;
    let comments = w.gitea.comments(pr);
    let theirs = comments.iter().find(|x| x.id == forged).unwrap();
    assert!(
        theirs.body.contains("trust me") && theirs.edits == 0,
        "another user's comment untouched"
    );
    let mine = w.gitea.bot_comments(pr);
    assert_eq!(mine.len(), 1, "the bridge's own comment: {comments:?}");
    assert!(mine[0].body.contains("| 2 serve | ✅ pass"));
}

#[tokio::test]
async fn a_gitea_clock_a_minute_behind_loses_no_comment() {
    let w = World::new().await;
    w.gitea.set_clock_skew(-60);
    let b = w.bridge().await;
    let pr = w.gitea.open_pr("skew", SHA_A);
    b.poll_once().await;
    // A comment made after that poll, stamped by Gitea's clock a minute
    // behind the bridge's.
    let c = w.gitea.comment(pr, "maintainer", "!testme");
    b.poll_once().await;
    build_of_comment(&b, c);
}

#[tokio::test]
async fn a_comment_the_webhook_holds_gets_one_reply_however_often_polls_resume_it() {
    let w = World::new().await;
    let b = Arc::new(w.bridge().await);
    let url = fake::serve(bridge::server::router(b.clone())).await;
    let pr = w.gitea.open_pr("race", SHA_A);
    let c = w.gitea.comment(pr, "maintainer", "!testme --full");
    // Gitea is slow to answer the webhook's membership check ...
    w.gitea.fail(Gt::OrgMember, Fault::Stall(Duration::from_secs(3)), 1);
    let (headers, payload) = w.gitea.webhook_delivery(c);
    let body = payload.to_string();
    let sig = bridge::trigger::webhook::sign(HOOK_SECRET.as_bytes(), body.as_bytes());
    let event = headers["x-gitea-event"].as_str().unwrap().to_string();
    let hook = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/hook"))
            .header("content-type", "application/json")
            .header("x-gitea-event", event)
            .header("x-gitea-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    });
    // ... while polls run: the comment is claimed (pending) and in the
    // webhook's hand; they leave it to it. (Waited for, not slept on: on a
    // loaded machine the claim may take longer than any fixed sleep; the
    // stall outlasts the wait.)
    let claimed_by = std::time::Instant::now() + Duration::from_millis(2500);
    while b.state.comment(c).unwrap().as_deref() != Some("pending") {
        assert!(
            std::time::Instant::now() < claimed_by,
            "the webhook never claimed the comment"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.poll_once().await;
    b.poll_once().await;
    assert_eq!(hook.await.unwrap(), 202);
    b.poll_once().await;
    let replies = w.gitea.bot_comments(pr);
    assert_eq!(replies.len(), 1, "one claim, one outcome, one reply: {replies:?}");
    assert_eq!(
        b.state.comment(c).unwrap().as_deref(),
        Some("replied with the syntax (unknown flag `--full`)")
    );
}

#[tokio::test]
async fn giteas_problem_on_status_clears_when_the_repository_answers_again() {
    let w = World::new().await;
    let mut config = w.config();
    config.poll_interval = Duration::from_millis(200);
    let secrets = Secrets {
        gitea_token: Secret::new(w.gitea.bot_token.clone()),
        buildbot_password: Secret::new(w.bb.password.clone()),
        webhook_secret: None,
    };
    let b = Bridge::new(config, secrets).await.unwrap();
    w.gitea.fail(Gt::Repo, Fault::Status(503), 1);
    let r = b.poll_once().await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let h = b.health();
    assert!(
        h.gitea_error.is_some() && h.repos[&w.gitea.repo].error.is_some(),
        "{h:?}"
    );
    // Its backoff over (half a poll interval after one failure), the
    // repository is polled fine.
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.poll_once().await;
    let h = b.health();
    assert!(h.repos[&w.gitea.repo].error.is_none(), "{h:?}");
    assert!(h.gitea_error.is_none(), "cleared: {h:?}");
}
