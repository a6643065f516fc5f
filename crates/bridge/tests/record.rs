//! The recorder of `tests/recorded/`: starts a real, throwaway Gitea
//! (1.26.0, built from its Go module) and a real Buildbot (4.3.0, cc-ci's
//! own master.cfg) with `test_support::forge`, makes each call the bridge
//! makes (and the refusals it must understand), and writes every answer
//! (status, a few headers, JSON body) to `tests/recorded/<forge>/<name>.json`.
//! The in-process fakes of `tests/fake/` build their answers from these
//! files, and `tests/decisions.rs` checks that the fakes keep their shape.
//!
//! Volatile values (ids, timestamps, ports, SHAs) are kept as recorded;
//! tokens, passwords and session cookies are never written (every file is
//! checked for them before it is written).
//!
//! The builds run a stand-in for `ccci test` (a shell script that writes a
//! results folder, and for run ids starting with `b` waits until stopped):
//! the answers recorded are Buildbot's, not a run's. Run it by hand, on a
//! host where `scripts/host-up` and `scripts/buildbot install` were run:
//!
//! ```text
//! source scripts/host.env
//! cargo test -p bridge --test record -- --ignored --nocapture
//! ```
//!
//! then review `git diff crates/bridge/tests/recorded` and commit it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use test_support::forge::{wait_for, Buildbot, Gitea, ORG};
use test_support::Component;

/// The stand-in for `ccci test` the recording's builds run.
const STUB_CCCI: &str = r#"#!/bin/sh
# A stand-in for `ccci test DIR --results-dir R --run-id ID [--quick]`, for
# the bridge's recorder: writes R/static-site/ID/results.json (and a
# screenshot); a run id starting with b waits until SIGTERM (Buildbot's
# stop) or until its worker is gone.
set -eu
results=$4
run_id=$6
out="$results/static-site/$run_id"
mkdir -p "$out"
cp "$(dirname "$0")/results.json" "$out/results.json"
printf '\211PNG\r\n\032\n' >"$out/screenshot.png"
echo "stand-in ccci test: run $run_id"
case "$run_id" in
  b*)
    trap 'echo "stand-in ccci test: SIGTERM"; exit 143' TERM
    i=0
    while [ "$i" -lt 1200 ] && kill -0 "$PPID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    ;;
esac
exit 0
"#;

/// Writes the recorded answers, refusing any that holds a secret.
struct Recorder {
    dir: PathBuf,
    secrets: Vec<String>,
    written: Vec<String>,
}

/// One answer as recorded.
struct Answer {
    status: u16,
    headers: Value,
    body: Value,
}

impl Recorder {
    fn new(secrets: Vec<String>) -> Recorder {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded");
        for sub in ["gitea", "buildbot", "webhook"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "json") {
                    std::fs::remove_file(p).unwrap();
                }
            }
        }
        Recorder {
            dir,
            secrets: secrets.into_iter().filter(|s| s.len() >= 8).collect(),
            written: Vec::new(),
        }
    }

    /// Writes `<forge>/<name>.json`.
    fn write(&mut self, forge: &str, name: &str, from: &str, request: Value, a: &Answer) {
        let doc = json!({
            "_recorded": format!(
                "the answer of the real {from} to the request below, recorded by \
                 crates/bridge/tests/record.rs (record_forge_answers); re-record with \
                 `source scripts/host.env && cargo test -p bridge --test record -- --ignored`"
            ),
            "request": request,
            "status": a.status,
            "headers": a.headers,
            "body": a.body,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        for s in &self.secrets {
            assert!(
                !text.contains(s.as_str()),
                "{forge}/{name}: the answer holds a secret; not written"
            );
        }
        let path = self.dir.join(forge).join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        eprintln!("recorded {forge}/{name}.json ({})", a.status);
        self.written.push(format!("{forge}/{name}"));
    }
}

fn client(cookies: bool) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The answer: status, the headers a client acts on (a cookie by name
/// only, never its value) and the body as JSON (text as a string, none as null).
fn answer(r: reqwest::blocking::Response) -> Answer {
    let status = r.status().as_u16();
    let mut headers = serde_json::Map::new();
    for h in ["content-type", "location"] {
        if let Some(v) = r.headers().get(h).and_then(|v| v.to_str().ok()) {
            headers.insert(h.into(), json!(v));
        }
    }
    let cookies: Vec<Value> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split('=').next())
        .map(|n| json!(n))
        .collect();
    if !cookies.is_empty() {
        headers.insert("set-cookie (names only)".into(), Value::Array(cookies));
    }
    let text = r.text().unwrap_or_default();
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers: Value::Object(headers),
        body,
    }
}

/// A Gitea API call with `token` (or none).
fn gitea_call(g: &Gitea, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (Value, Answer) {
    let http = client(false);
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http.request(m, format!("{}/api/v1{path}", g.url));
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("token {t}"));
    }
    let mut request = json!({"method": method, "path": format!("/api/v1{path}")});
    if let Some(b) = body {
        request["body"] = b.clone();
        rb = rb.json(&b);
    }
    (request, answer(rb.send().unwrap()))
}

/// One webhook delivery, read off a socket: its headers and JSON body.
fn receive_delivery(listener: std::net::TcpListener) -> (Value, Value) {
    loop {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut headers = serde_json::Map::new();
        let mut len = 0usize;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                // The signature is keyed by the hook's secret: not kept.
                if k.starts_with("x-gitea-") && !k.contains("signature") || k == "content-type" {
                    headers.insert(k, json!(v.trim()));
                }
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if headers.get("x-gitea-event").and_then(Value::as_str) == Some("issue_comment") {
            return (Value::Object(headers), body);
        }
    }
}

/// A Buildbot API session (cookies kept, redirects not followed).
struct Bb {
    url: String,
    http: reqwest::blocking::Client,
}

impl Bb {
    fn get(&self, path: &str) -> (Value, Answer) {
        let r = self.http.get(format!("{}api/v2/{path}", self.url)).send().unwrap();
        (json!({"method": "GET", "path": format!("/api/v2/{path}")}), answer(r))
    }

    fn rpc(&self, path: &str, method: &str, params: Value) -> (Value, Answer) {
        let body = json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
        let r = self
            .http
            .post(format!("{}api/v2/{path}", self.url))
            .json(&body)
            .send()
            .unwrap();
        (
            json!({"method": "POST", "path": format!("/api/v2/{path}"), "body": body}),
            answer(r),
        )
    }

    fn value(&self, path: &str) -> Value {
        self.get(path).1.body
    }

    /// The request's newest build once `pred` holds for it.
    fn build_of(&self, brid: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(90), || {
            let v = self.value(&format!("buildrequests/{brid}/builds"));
            v["builds"]
                .as_array()?
                .iter()
                .max_by_key(|b| b["buildid"].as_i64())
                .filter(|b| pred(b))
                .cloned()
        })
    }
}

/// The properties the bridge forces a build with (`build::properties`).
fn force_params(clone_url: &str, sha: &str, pr: u64, run_id: &str) -> Value {
    json!({
        "builderNames": ["ccci"],
        "reason": format!("[cc-ci build 1 run {run_id}] recipes/static-site#{pr} at {} (testme)", &sha[..12]),
        "clone_url": clone_url, "recipe": "static-site", "head_sha": sha,
        "fetch_ref": format!("refs/pull/{pr}/head"), "base_branch": "main", "pr": pr,
        "comment_id": "1", "run_id": run_id, "trigger": "testme", "quick": false,
    })
}

fn ids_of_force(body: &Value) -> (i64, i64) {
    let r = &body["result"];
    let bsid = r[0].as_i64().unwrap_or_else(|| panic!("force: {body}"));
    let brid = r[1]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(Value::as_i64)
        .unwrap();
    (bsid, brid)
}

#[test]
#[ignore = "records the real Gitea's and Buildbot's answers into tests/recorded (a minute); run by hand, see the module doc"]
fn record_forge_answers() {
    if !(test_support::need(Component::Gitea) && test_support::need(Component::Buildbot)) {
        return;
    }
    let dir = test_support::TempDir::new();
    let gitea = Gitea::start(&dir.path().join("gitea"));
    gitea.org(ORG);
    let maintainer = gitea.user("maintainer");
    gitea.add_member(ORG, "maintainer");
    let outsider = gitea.user("outsider");
    let pr = gitea.push_pr(
        ORG,
        "static-site",
        &test_support::fixture_recipes().join("static-site"),
        "1.0.0+1.22.1^{commit}",
        "1.1.0+1.22.1^{commit}",
        "record",
    );
    let stub = dir.path().join("stub");
    std::fs::create_dir_all(&stub).unwrap();
    let ccci = stub.join("ccci");
    std::fs::write(&ccci, STUB_CCCI).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&ccci)
        .status()
        .unwrap();
    let mut results = cc_ci_results::RunResults::empty();
    results.recipe = "static-site".into();
    results.tested_ref = pr.head_sha.clone();
    results.finish();
    results.write(&stub.join("results.json")).unwrap();
    let buildbot = Buildbot::start(&dir.path().join("buildbot"), 1, &ccci);

    let admin_password_file = dir.path().join("gitea/admin.password");
    let mut secrets = vec![
        gitea.admin.token.clone(),
        maintainer.token.clone(),
        outsider.token.clone(),
    ];
    for f in [admin_password_file, buildbot.bridge_password_file.clone()] {
        secrets.push(std::fs::read_to_string(f).unwrap_or_default().trim().to_string());
    }
    for e in std::fs::read_dir(dir.path().join("buildbot")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "password") {
            secrets.push(std::fs::read_to_string(p).unwrap().trim().to_string());
        }
    }
    let mut rec = Recorder::new(secrets);
    let version = gitea_call(&gitea, None, "GET", "/version", None).1.body["version"]
        .as_str()
        .unwrap()
        .to_string();
    let from_gitea = format!("Gitea {version}");
    let bot = Some(gitea.admin.token.as_str());
    let repo = &pr.repo;
    let n = pr.number;
    let sha = &pr.head_sha;
    let mut g = |name: &str, token: Option<&str>, method: &str, path: &str, body: Option<Value>| {
        let (req, a) = gitea_call(&gitea, token, method, path, body);
        let v = a.body.clone();
        rec.write("gitea", name, &from_gitea, req, &a);
        (a.status, v)
    };

    // Who the bot is, and the repository.
    g("version", None, "GET", "/version", None);
    g("user", bot, "GET", "/user", None);
    g("user_401_without_token", None, "GET", "/user", None);
    g("repo", bot, "GET", &format!("/repos/{repo}"), None);
    g("repo_404", bot, "GET", &format!("/repos/{ORG}/no-such-recipe"), None);
    g("tags", bot, "GET", &format!("/repos/{repo}/tags?limit=50&page=1"), None);
    g("pull", bot, "GET", &format!("/repos/{repo}/pulls/{n}"), None);
    // A maintainer's `!testme`, as polling reads it.
    let since = chrono::Utc::now() - chrono::Duration::seconds(60);
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, testme) = gitea.api(
        &maintainer,
        "POST",
        &format!("/repos/{repo}/issues/{n}/comments"),
        Some(json!({"body": "!testme\nplease"})),
    );
    assert_eq!(s, 201, "{testme}");
    g(
        "issue_comments_since",
        bot,
        "GET",
        &format!("/repos/{repo}/issues/comments?since={since}&limit=50&page=1"),
        None,
    );
    g(
        "pr_comments",
        bot,
        "GET",
        &format!("/repos/{repo}/issues/{n}/comments"),
        None,
    );
    // Membership: 204 and 404 with a member's token, a redirect with a non-member's.
    g(
        "org_member_204",
        bot,
        "GET",
        &format!("/orgs/{ORG}/members/maintainer"),
        None,
    );
    g(
        "org_member_404",
        bot,
        "GET",
        &format!("/orgs/{ORG}/members/outsider"),
        None,
    );
    g(
        "org_member_asked_by_a_non_member",
        Some(outsider.token.as_str()),
        "GET",
        &format!("/orgs/{ORG}/members/maintainer"),
        None,
    );
    // The bot's comment: made, edited, a screenshot attached, listed, removed.
    let (s, c) = g(
        "comment_create",
        bot,
        "POST",
        &format!("/repos/{repo}/issues/{n}/comments"),
        Some(json!({"body": "<!-- cc-ci:testme -->\n### cc-ci: recording"})),
    );
    assert_eq!(s, 201, "{c}");
    let cid = c["id"].as_u64().unwrap();
    g(
        "comment_edit",
        bot,
        "PATCH",
        &format!("/repos/{repo}/issues/comments/{cid}"),
        Some(json!({"body": "<!-- cc-ci:testme -->\n### cc-ci: recording, edited"})),
    );
    {
        let url = format!(
            "{}/api/v1/repos/{repo}/issues/comments/{cid}/assets?name=screenshot-a00001.png",
            gitea.url
        );
        let part = reqwest::blocking::multipart::Part::bytes(b"\x89PNG\r\n\x1a\n".to_vec())
            .file_name("screenshot-a00001.png")
            .mime_str("image/png")
            .unwrap();
        let r = client(false)
            .post(&url)
            .header("Authorization", format!("token {}", gitea.admin.token))
            .multipart(reqwest::blocking::multipart::Form::new().part("attachment", part))
            .send()
            .unwrap();
        let a = answer(r);
        let req = json!({"method": "POST", "path": format!("/api/v1/repos/{repo}/issues/comments/{cid}/assets?name=screenshot-a00001.png"),
                         "body": "multipart/form-data, field attachment: screenshot-a00001.png (image/png)"});
        assert_eq!(a.status, 201, "{}", a.body);
        rec.write("gitea", "comment_asset_create", &from_gitea, req, &a);
    }
    let mut g = |name: &str, token: Option<&str>, method: &str, path: &str, body: Option<Value>| {
        let (req, a) = gitea_call(&gitea, token, method, path, body);
        let v = a.body.clone();
        rec.write("gitea", name, &from_gitea, req, &a);
        (a.status, v)
    };
    let (_, assets) = g(
        "comment_assets",
        bot,
        "GET",
        &format!("/repos/{repo}/issues/comments/{cid}/assets"),
        None,
    );
    let aid = assets[0]["id"].as_u64().unwrap();
    g(
        "comment_asset_delete",
        bot,
        "DELETE",
        &format!("/repos/{repo}/issues/comments/{cid}/assets/{aid}"),
        None,
    );
    g(
        "pr_comments_with_the_bots",
        bot,
        "GET",
        &format!("/repos/{repo}/issues/{n}/comments"),
        None,
    );
    // A comment someone deleted: editing it is a 404.
    let (_, gone) = gitea.api(
        &gitea.admin,
        "POST",
        &format!("/repos/{repo}/issues/{n}/comments"),
        Some(json!({"body": "to be deleted"})),
    );
    let gone = gone["id"].as_u64().unwrap();
    g(
        "comment_delete",
        bot,
        "DELETE",
        &format!("/repos/{repo}/issues/comments/{gone}"),
        None,
    );
    g(
        "comment_edit_404",
        bot,
        "PATCH",
        &format!("/repos/{repo}/issues/comments/{gone}"),
        Some(json!({"body": "edited"})),
    );
    // Commit statuses.
    g(
        "status_create",
        bot,
        "POST",
        &format!("/repos/{repo}/statuses/{sha}"),
        Some(
            json!({"state": "pending", "target_url": format!("{}#/buildrequests/1", buildbot.url),
                    "description": "queued: waiting for Buildbot", "context": "cc-ci/testme"}),
        ),
    );
    g(
        "statuses",
        bot,
        "GET",
        &format!("/repos/{repo}/commits/{sha}/statuses"),
        None,
    );

    // A webhook delivery of a comment on the PR.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let delivery = std::thread::spawn(move || receive_delivery(listener));
    gitea.add_webhook(repo, &hook_url, "recording-hook-secret");
    gitea.comment(&maintainer, &pr, "!testme --quick");
    let (headers, body) = delivery.join().unwrap();
    rec.write(
        "webhook",
        "issue_comment",
        &from_gitea,
        json!({"method": "POST", "path": "/hook", "note": "Gitea's delivery to the hook (the request, not an answer); X-Gitea-Signature not kept"}),
        &Answer {
            status: 0,
            headers,
            body,
        },
    );

    // Buildbot.
    let from_bb = format!(
        "Buildbot {}",
        std::env::var("BUILDBOT_VERSION").unwrap_or_else(|_| {
            let v = std::fs::read_to_string(test_support::workspace().join("scripts/versions.env")).unwrap();
            v.lines()
                .find_map(|l| l.strip_prefix("BUILDBOT_VERSION="))
                .unwrap()
                .trim_matches('"')
                .to_string()
        })
    );
    let mut b = |name: &str, (req, a): (Value, Answer)| {
        let v = a.body.clone();
        rec.write("buildbot", name, &from_bb, req, &a);
        (a.status, v)
    };
    let password = std::fs::read_to_string(&buildbot.bridge_password_file)
        .unwrap()
        .trim()
        .to_string();
    let anon = Bb {
        url: buildbot.url.clone(),
        http: client(true),
    };
    let me = Bb {
        url: buildbot.url.clone(),
        http: client(true),
    };
    let login = |c: &Bb, pw: &str| {
        let r = c
            .http
            .get(format!("{}auth/login", c.url))
            .basic_auth("bridge", Some(pw))
            .send()
            .unwrap();
        (
            json!({"method": "GET", "path": "/auth/login", "auth": "basic, user bridge"}),
            answer(r),
        )
    };
    let clone_url = format!("{}/{repo}.git", gitea.url);
    b("auth_login_refused", login(&anon, "not-the-password"));
    b(
        "force_403_anonymous",
        anon.rpc(
            "forceschedulers/testme",
            "force",
            force_params(&clone_url, sha, n, "b00000"),
        ),
    );
    b("auth_login", login(&me, &password));
    let mut bad = force_params(&clone_url, sha, n, "b00000");
    bad["head_sha"] = json!("not-a-sha");
    b("force_invalid_property", me.rpc("forceschedulers/testme", "force", bad));
    // A build that runs until stopped ...
    let (s, forced) = b(
        "force",
        me.rpc(
            "forceschedulers/testme",
            "force",
            force_params(&clone_url, sha, n, "b00001"),
        ),
    );
    assert_eq!(s, 200, "{forced}");
    let (_, brid1) = ids_of_force(&forced);
    let run1 = me.build_of(brid1, "the first build to run", |b| b["complete"] == false);
    let build1 = run1["buildid"].as_i64().unwrap();
    b("buildrequest_claimed", me.get(&format!("buildrequests/{brid1}")));
    b(
        "buildrequest_builds_running",
        me.get(&format!("buildrequests/{brid1}/builds")),
    );
    b("build_running", me.get(&format!("builds/{build1}")));
    // ... and one queued behind it (one worker slot).
    let (_, forced2) = me.rpc(
        "forceschedulers/testme",
        "force",
        force_params(&clone_url, sha, n, "b00002"),
    );
    let (bsid2, brid2) = ids_of_force(&forced2.body);
    b("buildrequest_unclaimed", me.get(&format!("buildrequests/{brid2}")));
    b(
        "buildrequest_builds_none",
        me.get(&format!("buildrequests/{brid2}/builds")),
    );
    b("buildsets", me.get("buildsets?order=-bsid&limit=200"));
    b(
        "buildrequests_of_buildset",
        me.get(&format!("buildrequests?buildsetid={bsid2}")),
    );
    b(
        "cancel_403_anonymous",
        anon.rpc(
            &format!("buildrequests/{brid2}"),
            "cancel",
            json!({"reason": "recording"}),
        ),
    );
    b(
        "stop_403_anonymous",
        anon.rpc(&format!("builds/{build1}"), "stop", json!({"reason": "recording"})),
    );
    b(
        "buildrequest_cancel",
        me.rpc(
            &format!("buildrequests/{brid2}"),
            "cancel",
            json!({"reason": "recording: cancel"}),
        ),
    );
    wait_for("the cancelled request to complete", Duration::from_secs(30), || {
        (me.value(&format!("buildrequests/{brid2}"))["buildrequests"][0]["complete"] == true).then_some(())
    });
    b("buildrequest_cancelled", me.get(&format!("buildrequests/{brid2}")));
    b(
        "build_stop",
        me.rpc(
            &format!("builds/{build1}"),
            "stop",
            json!({"reason": "recording: stop"}),
        ),
    );
    me.build_of(brid1, "the stopped build to end", |b| b["complete"] == true);
    b("build_stopped", me.get(&format!("builds/{build1}")));
    b("buildrequest_stopped", me.get(&format!("buildrequests/{brid1}")));
    b(
        "build_stop_complete",
        me.rpc(
            &format!("builds/{build1}"),
            "stop",
            json!({"reason": "recording: stop again"}),
        ),
    );
    // A build that succeeds, with results on the master.
    let (_, forced3) = me.rpc(
        "forceschedulers/testme",
        "force",
        force_params(&clone_url, sha, n, "a00001"),
    );
    let (_, brid3) = ids_of_force(&forced3.body);
    let run3 = me.build_of(brid3, "the quick build to end", |b| b["complete"] == true);
    let build3 = run3["buildid"].as_i64().unwrap();
    b("build_complete", me.get(&format!("builds/{build3}")));
    b("build_properties", me.get(&format!("builds/{build3}/properties")));
    b("buildrequest_complete", me.get(&format!("buildrequests/{brid3}")));
    b(
        "buildrequest_builds_complete",
        me.get(&format!("buildrequests/{brid3}/builds")),
    );
    // A worker lost mid-build: the build ends RETRY, the request is queued again.
    let (_, forced4) = me.rpc(
        "forceschedulers/testme",
        "force",
        force_params(&clone_url, sha, n, "b00003"),
    );
    let (_, brid4) = ids_of_force(&forced4.body);
    let run4 = me.build_of(brid4, "the build to be lost to run", |b| b["complete"] == false);
    let build4 = run4["buildid"].as_i64().unwrap();
    // Lost once the stand-in runs (a worker lost while the build is still
    // being prepared left the build open for minutes here).
    wait_for("the stand-in ccci to run", Duration::from_secs(60), || {
        buildbot
            .steps(build4)
            .into_iter()
            .find(|s| s["name"] == "ccci test" && s["started_at"].is_number())
    });
    std::thread::sleep(Duration::from_secs(1));
    buildbot.kill_workers();
    me.build_of(brid4, "the lost build to end", |b| b["complete"] == true);
    b("build_retry", me.get(&format!("builds/{build4}")));
    b("buildrequest_requeued", me.get(&format!("buildrequests/{brid4}")));
    b(
        "buildrequest_builds_after_retry",
        me.get(&format!("buildrequests/{brid4}/builds")),
    );
    buildbot.start_workers();
    let again = me.build_of(brid4, "the retried build", |b| b["buildid"].as_i64() != Some(build4));
    b(
        "buildrequest_builds_retried",
        me.get(&format!("buildrequests/{brid4}/builds")),
    );
    me.rpc(
        &format!("builds/{}", again["buildid"]),
        "stop",
        json!({"reason": "recording over"}),
    );
    // What is not there (purged, or never was).
    b("build_404", me.get("builds/999999"));
    b("build_properties_404", me.get("builds/999999/properties"));
    b("buildrequest_404", me.get("buildrequests/999999"));
    b("buildrequest_builds_404", me.get("buildrequests/999999/builds"));
    b(
        "build_stop_404",
        me.rpc("builds/999999", "stop", json!({"reason": "recording"})),
    );
    eprintln!("recorded {} answers into {}", rec.written.len(), rec.dir.display());
}
