//! The forge and CI engine of the bridge's end-to-end tests, real and
//! throwaway: a Gitea started by `scripts/gitea` (the binary built from its
//! Go module) and seeded over its API, a Buildbot master and workers started
//! by `scripts/buildbot` from cc-ci's own `pkgs/buildbot/master.cfg`, and
//! the bridge binary as a child process. Each lives in a folder of the test
//! and is stopped when dropped; a Buildbot is first asked to stop its
//! running builds (so `ccci test` tears its app down) and waited for.
//!
//! Every call here panics on failure: the parts are present (the caller
//! asked [`crate::need`] first), so a failure is a fault to see.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::workspace;

/// A free TCP port on 127.0.0.1 (bound and released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `f` every 200 ms until it gives `Some`, or panics after `timeout`
/// saying `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http() -> reqwest::blocking::Client {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

fn script(name: &str) -> PathBuf {
    workspace().join("scripts").join(name)
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = crate::output_text(&out);
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

/// A user of the test Gitea and their API token.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub login: String,
    /// API token (scope `all`).
    pub token: String,
}

/// A pull request made by [`Gitea::push_pr`].
#[derive(Debug, Clone)]
pub struct Pr {
    /// `owner/name`.
    pub repo: String,
    /// Its number.
    pub number: u64,
    /// Its head commit.
    pub head_sha: String,
    /// Its head branch.
    pub branch: String,
    /// The local clone it was pushed from (push more commits from here).
    pub clone: PathBuf,
}

/// A throwaway Gitea (see the module doc).
pub struct Gitea {
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The site administrator: the bot the bridge acts as.
    pub admin: User,
    http: reqwest::blocking::Client,
}

impl Gitea {
    /// Starts a fresh Gitea in `dir` (created; must be empty) and gives its
    /// administrator a token.
    pub fn start(dir: &Path) -> Gitea {
        run(
            Command::new(script("gitea")).arg("start").arg(dir),
            "scripts/gitea start",
        );
        let env = std::fs::read_to_string(dir.join("gitea.env")).expect("gitea.env");
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing from gitea.env"))
                .to_string()
        };
        let url = get("GITEA_URL");
        let login = get("GITEA_ADMIN");
        let password = std::fs::read_to_string(get("GITEA_ADMIN_PASSWORD_FILE"))
            .expect("admin password")
            .trim()
            .to_string();
        let mut g = Gitea {
            dir: dir.into(),
            url,
            admin: User {
                login: login.clone(),
                token: String::new(),
            },
            http: http(),
        };
        g.admin.token = g.token_for(&login, &password);
        g
    }

    fn token_for(&self, login: &str, password: &str) -> String {
        self.token_with(login, password, &json!({"name": crate::unique("t"), "scopes": ["all"]}))
    }

    /// A token made by `login` itself (basic auth, as Gitea requires) with
    /// `request`, the body of `POST /users/{login}/tokens` (`name`,
    /// `scopes`).
    fn token_with(&self, login: &str, password: &str, request: &Value) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/users/{login}/tokens", self.url))
            .basic_auth(login, Some(password))
            .json(request)
            .send()
            .expect("token");
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "token for {login}: {status} {v}");
        v["sha1"].as_str().expect("sha1").to_string()
    }

    /// Calls the API as `user`: (status, JSON body or Null).
    pub fn api(&self, user: &User, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/api/v1{path}", self.url);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self
            .http
            .request(m, &url)
            .header("Authorization", format!("token {}", user.token));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, user: &User, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.api(user, method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    /// A new user (made by the administrator) whose token is the one
    /// `token_request` asks for: the body of `POST /users/{login}/tokens`,
    /// e.g. `{"name": "bridge", "scopes": ["read:user", "write:issue"]}`
    /// (panics when Gitea refuses it).
    pub fn user_with_token(&self, login: &str, token_request: &Value) -> User {
        let password = self.new_user(login);
        User {
            login: login.into(),
            token: self.token_with(login, &password, token_request),
        }
    }

    /// A new user (made by the administrator) with a token.
    pub fn user(&self, login: &str) -> User {
        let password = self.new_user(login);
        User {
            login: login.into(),
            token: self.token_for(login, &password),
        }
    }

    /// Makes user `login` (as the administrator) with a fresh password,
    /// which it returns.
    fn new_user(&self, login: &str) -> String {
        let password = format!("pw-{}", crate::token());
        self.ok(
            &self.admin,
            "POST",
            "/admin/users",
            Some(
                json!({"username": login, "email": format!("{login}@ci.test"), "password": password,
                        "must_change_password": false}),
            ),
        );
        password
    }

    /// An organisation owned by the administrator (who is thus a member).
    pub fn org(&self, name: &str) {
        self.ok(
            &self.admin,
            "POST",
            "/orgs",
            Some(json!({"username": name, "visibility": "public"})),
        );
    }

    /// Makes `login` a member of `org` (its Owners team).
    pub fn add_member(&self, org: &str, login: &str) {
        let teams = self.ok(&self.admin, "GET", &format!("/orgs/{org}/teams"), None);
        let id = teams[0]["id"].as_i64().expect("a team");
        self.ok(&self.admin, "PUT", &format!("/teams/{id}/members/{login}"), None);
    }

    /// A repository `org/name` holding the fixture recipe repository at
    /// `fixture` (its tags pushed too): `main` at `base` (a revision), and a
    /// pull request from branch `branch` at `head` into `main`.
    pub fn push_pr(&self, org: &str, name: &str, fixture: &Path, base: &str, head: &str, branch: &str) -> Pr {
        let (s, _) = self.api(&self.admin, "GET", &format!("/repos/{org}/{name}"), None);
        if s == 404 {
            self.ok(
                &self.admin,
                "POST",
                &format!("/orgs/{org}/repos"),
                Some(json!({"name": name, "default_branch": "main"})),
            );
        }
        let clone = self.dir.join(format!("clones/{name}-{branch}"));
        let _ = std::fs::remove_dir_all(&clone);
        std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
        run(
            Command::new("git").args(["clone", "-q"]).arg(fixture).arg(&clone),
            "git clone the fixture",
        );
        let remote = self.push_url(org, name);
        let git = |args: &[&str]| {
            run(
                Command::new("git")
                    .arg("-C")
                    .arg(&clone)
                    .args(["-c", "user.name=cc-ci test", "-c", "user.email=test@ci.test"])
                    .args(args),
                &format!("git {args:?}"),
            )
        };
        git(&["checkout", "-q", "-B", branch, head]);
        git(&[
            "push",
            "-q",
            "-f",
            &remote,
            &format!("{base}:refs/heads/main"),
            &format!("{branch}:refs/heads/{branch}"),
        ]);
        // The tags one push each, newest version first: one push updates
        // its refs one after another in name order, so a bridge sweeping
        // meanwhile could see 1.0.0 without 1.1.0 and take the older one
        // for the newest release (it did once, under load).
        for tag in git(&["tag", "--sort=-v:refname"]).lines() {
            git(&["push", "-q", "-f", &remote, &format!("refs/tags/{tag}:refs/tags/{tag}")]);
        }
        let head_sha = git(&["rev-parse", "HEAD"]).trim().to_string();
        // Gitea indexes pushed branches asynchronously: retry until it knows it.
        let pr = wait_for("Gitea to take the pull request", Duration::from_secs(30), || {
            let (s, v) = self.api(
                &self.admin,
                "POST",
                &format!("/repos/{org}/{name}/pulls"),
                Some(json!({"head": branch, "base": "main", "title": format!("Test {branch}")})),
            );
            (s == 201).then(|| v["number"].as_u64().expect("number"))
        });
        Pr {
            repo: format!("{org}/{name}"),
            number: pr,
            head_sha,
            branch: branch.into(),
            clone,
        }
    }

    fn push_url(&self, org: &str, name: &str) -> String {
        let hostport = self.url.trim_start_matches("http://");
        format!(
            "http://{}:{}@{hostport}/{org}/{name}.git",
            self.admin.login, self.admin.token
        )
    }

    /// Adds a commit to the PR's branch (a README line) and pushes it;
    /// returns the new head.
    pub fn push_commit(&self, pr: &mut Pr, message: &str) -> String {
        self.push_edit(pr, message, |clone| {
            let readme = clone.join("README.md");
            let mut text = std::fs::read_to_string(&readme).unwrap_or_default();
            text.push_str(&format!("\n{message}\n"));
            std::fs::write(&readme, text).unwrap();
        })
    }

    /// Lets `edit` change the PR's clone (new files included), commits
    /// everything as `message` and pushes it to the PR's branch; returns
    /// the new head once Gitea shows it as the PR's.
    pub fn push_edit(&self, pr: &mut Pr, message: &str, edit: impl FnOnce(&Path)) -> String {
        edit(&pr.clone);
        let (org, name) = pr.repo.split_once('/').unwrap();
        let remote = self.push_url(org, name);
        let git = |args: &[&str]| {
            run(
                Command::new("git")
                    .arg("-C")
                    .arg(&pr.clone)
                    .args(["-c", "user.name=cc-ci test", "-c", "user.email=test@ci.test"])
                    .args(args),
                &format!("git {args:?}"),
            )
        };
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", message]);
        git(&["push", "-q", &remote, &format!("{0}:refs/heads/{0}", pr.branch)]);
        let sha = git(&["rev-parse", "HEAD"]).trim().to_string();
        let path = format!("/repos/{}/pulls/{}", pr.repo, pr.number);
        wait_for("Gitea to move the PR's head", Duration::from_secs(30), || {
            let v = self.ok(&self.admin, "GET", &path, None);
            (v["head"]["sha"].as_str() == Some(sha.as_str())).then_some(())
        });
        pr.head_sha = sha.clone();
        sha
    }

    /// Comments on a PR as `user`; returns the comment.
    pub fn comment(&self, user: &User, pr: &Pr, body: &str) -> Value {
        self.ok(
            user,
            "POST",
            &format!("/repos/{}/issues/{}/comments", pr.repo, pr.number),
            Some(json!({ "body": body })),
        )
    }

    /// The PR's comments.
    pub fn comments(&self, pr: &Pr) -> Vec<Value> {
        let v = self.ok(
            &self.admin,
            "GET",
            &format!("/repos/{}/issues/{}/comments", pr.repo, pr.number),
            None,
        );
        v.as_array().cloned().unwrap_or_default()
    }

    /// The PR's comments made by the bot.
    pub fn bot_comments(&self, pr: &Pr) -> Vec<Value> {
        self.comments(pr)
            .into_iter()
            .filter(|c| c["user"]["login"].as_str() == Some(self.admin.login.as_str()))
            .collect()
    }

    /// A commit's statuses, newest first.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        let v = self.ok(
            &self.admin,
            "GET",
            &format!("/repos/{repo}/commits/{sha}/statuses"),
            None,
        );
        v.as_array().cloned().unwrap_or_default()
    }

    /// The newest status of `context` on a commit, if any.
    pub fn status(&self, repo: &str, sha: &str, context: &str) -> Option<Value> {
        self.statuses(repo, sha)
            .into_iter()
            .filter(|s| s["context"].as_str() == Some(context))
            .max_by_key(|s| s["id"].as_i64().unwrap_or(0))
    }

    /// A Gitea webhook on `repo` for comment events, to `url`, signed with
    /// `secret`. Gitea 1.26 delivers comments on pull requests only for the
    /// hook event `pull_request_comment` (with `X-Gitea-Event: issue_comment`
    /// and `X-Gitea-Event-Type: pull_request_comment`), measured here.
    pub fn add_webhook(&self, repo: &str, url: &str, secret: &str) {
        self.ok(
            &self.admin,
            "POST",
            &format!("/repos/{repo}/hooks"),
            Some(
                json!({"type": "gitea", "active": true, "events": ["issue_comment", "pull_request_comment"],
                        "config": {"url": url, "content_type": "json", "secret": secret}}),
            ),
        );
    }

    /// Starts the stopped server again (same data, port and users).
    pub fn restart(&self) {
        run(
            Command::new(script("gitea")).arg("restart").arg(&self.dir),
            "scripts/gitea restart",
        );
    }

    /// Stops the server (also on drop).
    pub fn stop(&self) {
        let _ = Command::new(script("gitea")).arg("stop").arg(&self.dir).output();
    }
}

impl Drop for Gitea {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway Buildbot master and its workers (see the module doc).
pub struct Buildbot {
    dir: PathBuf,
    /// `http://127.0.0.1:<port>/`.
    pub url: String,
    /// The bridge user's password file.
    pub bridge_password_file: PathBuf,
    /// The master's results root.
    pub results_dir: PathBuf,
    /// Where `ccci test` writes on the workers.
    pub worker_results_dir: PathBuf,
    /// The per-recipe settings the workers' `ccci test` reads (`CCCI_SETTINGS_DIR`).
    settings_dir: PathBuf,
    http: reqwest::blocking::Client,
}

fn secret_file(path: &Path) {
    std::fs::write(path, format!("{}{}\n", crate::token(), crate::token())).unwrap();
}

impl Buildbot {
    /// A master with `slots` workers in `dir`, running `ccci` (a path) with
    /// the test host's settings (`scripts/host.env`) and the repository's
    /// `tests/recipes` as settings.
    pub fn start(dir: &Path, slots: usize, ccci: &Path) -> Buildbot {
        Buildbot::start_with_settings(dir, slots, ccci, &workspace().join("tests/recipes"))
    }

    /// As [`Buildbot::start`], the workers reading their per-recipe
    /// settings from `settings_dir` (a folder laid out as `tests/recipes`).
    pub fn start_with_settings(dir: &Path, slots: usize, ccci: &Path, settings_dir: &Path) -> Buildbot {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let www = free_port();
        let pb = free_port();
        let url = format!("http://127.0.0.1:{www}/");
        let bridge_password_file = dir.join("bridge.password");
        secret_file(&bridge_password_file);
        let workers: Vec<Value> = (1..=slots)
            .map(|i| {
                let f = dir.join(format!("worker-{i}.password"));
                secret_file(&f);
                json!({"name": format!("slot-{i}"), "password_file": f})
            })
            .collect();
        let results_dir = dir.join("results");
        let worker_results_dir = dir.join("worker-results");
        let master = json!({
            "title": "cc-ci (test)", "buildbot_url": url,
            "www_port": format!("tcp:{www}:interface=127.0.0.1"),
            "pb_port": format!("tcp:{pb}:interface=127.0.0.1"),
            "workers": workers, "bridge_user": "bridge", "bridge_password_file": bridge_password_file,
            "results_dir": results_dir, "worker_results_dir": worker_results_dir,
            "ccci": ccci, "max_time_s": 1200, "no_output_timeout_s": 600, "teardown_grace_s": 150,
        });
        std::fs::write(
            dir.join("ccci-master.json"),
            serde_json::to_string_pretty(&master).unwrap(),
        )
        .unwrap();
        let w = json!({"master_host": "127.0.0.1", "master_port": pb, "basedir": dir.join("workers"),
                       "workers": workers, "buffer_timeout_s": 0.5});
        std::fs::write(dir.join("ccci-workers.json"), serde_json::to_string_pretty(&w).unwrap()).unwrap();
        let b = Buildbot {
            dir,
            url,
            bridge_password_file,
            results_dir,
            worker_results_dir,
            settings_dir: settings_dir.into(),
            http: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        b.start_master();
        b.start_workers();
        b
    }

    /// Starts the master (again).
    pub fn start_master(&self) {
        run(
            Command::new(script("buildbot")).arg("start-master").arg(&self.dir),
            "scripts/buildbot start-master",
        );
    }

    /// Starts the workers (again, after [`Buildbot::kill_workers`]), with
    /// the test host's settings in their environment.
    pub fn start_workers(&self) {
        let settings = &self.settings_dir;
        run(
            Command::new("bash")
                .arg("-c")
                .arg(r#"source "$1/scripts/host.env" && exec "$1/scripts/buildbot" start-workers "$2""#)
                .arg("start-workers")
                .arg(workspace())
                .arg(&self.dir)
                .env("CCCI_SETTINGS_DIR", settings),
            "scripts/buildbot start-workers",
        );
    }

    /// Stops the master alone (the workers keep trying to reconnect).
    pub fn stop_master(&self) {
        run(
            Command::new(script("buildbot")).arg("stop-master").arg(&self.dir),
            "scripts/buildbot stop-master",
        );
    }

    /// SIGKILLs the workers' process, as a crashed worker host: the master
    /// loses them mid-build, ends their builds RETRY and queues the
    /// requests again. Their `ccci test` children are not killed here.
    pub fn kill_workers(&self) {
        let pidfile = self.dir.join("workers/twistd.pid");
        let Ok(pid) = std::fs::read_to_string(&pidfile) else {
            return;
        };
        let pid = pid.trim();
        let _ = Command::new("kill").args(["-KILL", pid]).output();
        wait_for("the killed workers to exit", Duration::from_secs(10), || {
            let alive = Command::new("kill")
                .args(["-0", pid])
                .output()
                .is_ok_and(|o| o.status.success());
            (!alive).then_some(())
        });
        let _ = std::fs::remove_file(&pidfile);
    }

    /// `GET /api/v2/<path>` (anonymous reads are allowed). A busy master
    /// (two cores, deploys running beside it) sometimes answers with a
    /// truncated or non-JSON body, or not within the client's 30 s (reqwest
    /// then says "error decoding response body"); such an answer is asked
    /// again, every 500 ms for up to 120 s, before the test panics with the
    /// status and the start of the last body.
    pub fn get(&self, path: &str) -> Value {
        let url = format!("{}api/v2/{path}", self.url);
        let start = Instant::now();
        loop {
            let answer = self.http.get(&url).send().and_then(|r| {
                let status = r.status();
                r.text().map(|body| (status, body))
            });
            let problem = match answer {
                Ok((status, body)) if status.is_success() => match serde_json::from_str::<Value>(&body) {
                    Ok(v) => return v,
                    Err(e) => format!(
                        "{status}, body not JSON ({e}): {}",
                        body.chars().take(200).collect::<String>()
                    ),
                },
                Ok((status, body)) => {
                    format!("{status}: {}", body.chars().take(200).collect::<String>())
                }
                Err(e) => e.to_string(),
            };
            if start.elapsed() > Duration::from_secs(120) {
                panic!("GET {url}: {problem} (asked for 120 s)");
            }
            eprintln!("GET {url}: {problem}; asking again");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A JSON-RPC control call `method` on `/api/v2/<path>` as the bridge's
    /// Buildbot user (logged in with its password, session cookie kept):
    /// the HTTP status Buildbot answers.
    pub fn control_as_bridge(&self, path: &str, method: &str, params: Value) -> u16 {
        let password = std::fs::read_to_string(&self.bridge_password_file).unwrap();
        let c = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let login = c
            .get(format!("{}auth/login", self.url))
            .basic_auth("bridge", Some(password.trim()))
            .send()
            .unwrap();
        assert!(
            login.status().is_redirection() || login.status().is_success(),
            "the bridge user logs in: {}",
            login.status()
        );
        c.post(format!("{}api/v2/{path}", self.url))
            .json(&json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Every build request.
    pub fn buildrequests(&self) -> Vec<Value> {
        self.get("buildrequests")["buildrequests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every build.
    pub fn builds(&self) -> Vec<Value> {
        self.get("builds")["builds"].as_array().cloned().unwrap_or_default()
    }

    /// A build's steps, in order, as Buildbot's `/api/v2/builds/<id>/steps`
    /// gives them (`name`, `started_at`, `complete`, `results`, ...).
    pub fn steps(&self, buildid: i64) -> Vec<Value> {
        self.get(&format!("builds/{buildid}/steps"))["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A build's properties, name to value.
    pub fn properties(&self, buildid: i64) -> serde_json::Map<String, Value> {
        let v = self.get(&format!("builds/{buildid}/properties"));
        v["properties"][0]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v[0].clone()))
            .collect()
    }

    fn login(&self) -> bool {
        let pw = std::fs::read_to_string(&self.bridge_password_file).unwrap_or_default();
        self.http
            .get(format!("{}auth/login", self.url))
            .basic_auth("bridge", Some(pw.trim()))
            .send()
            .is_ok()
    }

    /// Stops every running build and cancels every waiting request, then
    /// waits (up to `timeout`) until none is left.
    pub fn quiesce(&self, timeout: Duration) {
        if !self.login() {
            return;
        }
        let rpc = |path: String, method: &str| {
            let _ = self
                .http
                .post(format!("{}api/v2/{path}", self.url))
                .json(&json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": {"reason": "test over"}}))
                .send();
        };
        let start = Instant::now();
        loop {
            let Ok(r) = self
                .http
                .get(format!("{}api/v2/buildrequests?complete=false", self.url))
                .send()
            else {
                return;
            };
            let open: Vec<Value> = r
                .json::<Value>()
                .ok()
                .and_then(|v| v["buildrequests"].as_array().cloned())
                .unwrap_or_default();
            if open.is_empty() || start.elapsed() > timeout {
                return;
            }
            for br in &open {
                let id = br["buildrequestid"].as_i64().unwrap_or(0);
                if br["claimed"].as_bool() == Some(true) {
                    let builds = self.get(&format!("buildrequests/{id}/builds"));
                    for b in builds["builds"].as_array().cloned().unwrap_or_default() {
                        if b["complete"].as_bool() != Some(true) {
                            rpc(format!("builds/{}", b["buildid"]), "stop");
                        }
                    }
                } else {
                    rpc(format!("buildrequests/{id}"), "cancel");
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Buildbot {
    fn drop(&mut self) {
        // ccci tears its app down on SIGTERM: let it, before the workers go.
        self.quiesce(Duration::from_secs(180));
        let _ = Command::new(script("buildbot")).arg("stop").arg(&self.dir).output();
    }
}

/// The bridge binary running as a child process, its log in a file.
pub struct Bridge {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// `http://<listen>`.
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Bridge {
    /// Starts `bin serve --config <config>` (the settings' `listen` is `listen`),
    /// and waits until `/status` answers.
    pub fn start(bin: &Path, config: &Path, listen: std::net::SocketAddr) -> Bridge {
        let mut b = Bridge {
            bin: bin.into(),
            config: config.into(),
            log: config.with_extension("log"),
            child: None,
            url: format!("http://{listen}"),
            http: http(),
        };
        b.restart();
        b
    }

    /// Starts it again (after [`Bridge::kill`]).
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["serve", "--config"])
            .arg(&self.config)
            // Debug everywhere (reqwest, hyper, the bridge): the tests grep
            // this log for secrets, which must not show even there.
            .env("CCCI_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the bridge starts");
        self.child = Some(child);
        let url = format!("{}/status", self.url);
        wait_for("the bridge's /status", Duration::from_secs(30), || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("the bridge exited at start ({st}):\n{}", self.log_text());
                }
            }
            self.http.get(&url).send().ok().map(drop)
        });
    }

    /// SIGKILLs it (no clean-up of any kind).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /status`: (HTTP status, JSON).
    pub fn status(&self) -> (u16, Value) {
        let r = self.http.get(format!("{}/status", self.url)).send().expect("/status");
        let s = r.status().as_u16();
        (s, r.json().unwrap_or(Value::Null))
    }

    /// How many polls it has done.
    pub fn polls(&self) -> u64 {
        self.status().1["health"]["polls"].as_u64().unwrap_or(0)
    }

    /// Waits until it has polled `n` more times.
    pub fn wait_polls(&self, n: u64) {
        let target = self.polls() + n;
        wait_for("the bridge's polls", Duration::from_secs(60), || {
            (self.polls() >= target).then_some(())
        });
    }

    /// `POST /hook` with `body`, event `issue_comment` and `signature` (if any).
    pub fn hook(&self, body: &str, signature: Option<&str>) -> (u16, Value) {
        let mut rb = self
            .http
            .post(format!("{}/hook", self.url))
            .header("X-Gitea-Event", "issue_comment")
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            rb = rb.header("X-Gitea-Signature", s);
        }
        let r = rb.send().expect("/hook");
        let s = r.status().as_u16();
        (s, r.json().unwrap_or(Value::Null))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The org of a [`World`].
pub const ORG: &str = "recipes";
/// The bridge's commit status context.
pub const CONTEXT: &str = "cc-ci/testme";
/// A whole `ccci test` of a fixture takes about a minute here; queued
/// behind another, two.
pub const RUN: Duration = Duration::from_secs(420);

/// How a [`World`] is set up.
pub struct Options {
    /// The bridge's poll interval, seconds.
    pub poll_s: f64,
    /// Whether the bridge's webhook is on.
    pub webhook: bool,
    /// Buildbot worker slots.
    pub slots: usize,
    /// The bridge's sweep interval, seconds (0: none).
    pub sweep_s: f64,
    /// Enrolled repositories.
    pub repos: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            poll_s: 1.0,
            webhook: false,
            slots: 1,
            sweep_s: 0.0,
            repos: vec![format!("{ORG}/static-site")],
        }
    }
}

/// One test's forge (org `recipes`, a member `maintainer`, a non-member
/// `outsider`), CI engine and bridge.
pub struct World {
    // Dropped in this order: the bridge, then Buildbot (its builds stopped
    // and torn down), then Gitea, then the folder.
    /// The bridge.
    pub bridge: Bridge,
    /// Buildbot.
    pub buildbot: Buildbot,
    /// Gitea.
    pub gitea: Gitea,
    /// A member of the org.
    pub maintainer: User,
    /// Not a member.
    pub outsider: User,
    /// The webhook's secret (on when [`Options::webhook`]).
    pub webhook_secret: String,
    _dir: crate::TempDir,
}

impl World {
    /// Starts Gitea (seeded), Buildbot running `ccci`, and the bridge binary `bin`.
    pub fn new(bin: &Path, ccci: &Path, o: Options) -> World {
        let dir = crate::TempDir::new();
        let gitea = Gitea::start(&dir.path().join("gitea"));
        gitea.org(ORG);
        let maintainer = gitea.user("maintainer");
        gitea.add_member(ORG, "maintainer");
        let outsider = gitea.user("outsider");
        let buildbot = Buildbot::start(&dir.path().join("buildbot"), o.slots, ccci);
        let webhook_secret = format!("hook-{}", crate::token());
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("gitea-token"), format!("{}\n", gitea.admin.token)).unwrap();
        std::fs::write(secrets.join("webhook"), &webhook_secret).unwrap();
        let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let repos: Vec<String> = o.repos.iter().map(|r| format!("{r:?}")).collect();
        let mut config = format!(
            "gitea_url = {:?}\ngitea_token_file = {:?}\norg = {ORG:?}\nrepos = [{}]\n\
             buildbot_url = {:?}\nbuildbot_password_file = {:?}\nresults_dir = {:?}\nstate_db = {:?}\n\
             listen = \"{listen}\"\npoll_interval_s = {}\nfollow_interval_s = 0.5\nsweep_interval_s = {}\n",
            gitea.url,
            secrets.join("gitea-token"),
            repos.join(", "),
            buildbot.url,
            buildbot.bridge_password_file,
            buildbot.results_dir,
            dir.path().join("bridge/state.sqlite"),
            o.poll_s,
            o.sweep_s,
        );
        if o.webhook {
            config.push_str(&format!("webhook_secret_file = {:?}\n", secrets.join("webhook")));
        }
        let config_path = dir.path().join("bridge.toml");
        std::fs::write(&config_path, config).unwrap();
        let bridge = Bridge::start(bin, &config_path, listen);
        World {
            bridge,
            buildbot,
            gitea,
            maintainer,
            outsider,
            webhook_secret,
            _dir: dir,
        }
    }

    /// The values of every secret the bridge holds (the bot's Gitea token,
    /// the Buildbot password, the webhook secret), for tests that check
    /// none of them reaches a log or a comment.
    pub fn secrets(&self) -> Vec<String> {
        let password = std::fs::read_to_string(&self.buildbot.bridge_password_file).unwrap();
        vec![
            self.gitea.admin.token.clone(),
            password.trim().to_string(),
            self.webhook_secret.clone(),
        ]
    }

    /// A PR on `recipes/<fixture>`: main at the fixture's older release
    /// (1.0.0+1.22.1), the head at its newest (1.1.0+1.22.1).
    pub fn pr(&self, fixture: &str, branch: &str) -> Pr {
        let repo = crate::fixture_recipes().join(fixture);
        self.gitea.push_pr(
            ORG,
            fixture,
            &repo,
            "1.0.0+1.22.1^{commit}",
            "1.1.0+1.22.1^{commit}",
            branch,
        )
    }

    /// The newest `cc-ci/testme` status of the PR's head.
    pub fn status(&self, pr: &Pr) -> Option<Value> {
        self.gitea.status(&pr.repo, &pr.head_sha, CONTEXT)
    }

    /// Waits for the final (not pending, not retrying) status of the PR's head.
    pub fn final_status(&self, pr: &Pr, timeout: Duration) -> Value {
        wait_for("the final commit status", timeout, || {
            self.status(pr)
                .filter(|s| s["status"] != "pending" && !self.retrying(s))
        })
    }

    /// Whether a status says the bridge retries.
    pub fn retrying(&self, s: &Value) -> bool {
        s["description"].as_str().is_some_and(|d| d.contains("retrying"))
    }

    /// Waits until no build request of Buildbot is open and the bridge has
    /// nothing in flight.
    pub fn settle(&self, timeout: Duration) {
        wait_for("Buildbot and the bridge to be idle", timeout, || {
            let open = self.buildbot.buildrequests().iter().any(|b| b["complete"] != true);
            let flying = self.bridge.status().1["in_flight"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            (!open && !flying).then_some(())
        });
    }

    /// The bridge's log.
    pub fn log(&self) -> String {
        self.bridge.log_text()
    }
}
