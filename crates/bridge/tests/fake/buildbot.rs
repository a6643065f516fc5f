//! A fake of the Buildbot 4.3.0 API (v2) as cc-ci's master.cfg configures
//! it, as much as the bridge calls: the session login, the `testme` force
//! scheduler of builder `ccci` (its properties validated as master.cfg
//! declares them), build requests, builds and their properties, buildsets,
//! `stop` and `cancel` (only for the logged-in bridge user, as the master's
//! authz allows). Answers are the ones recorded from the real Buildbot
//! 4.3.0 (`tests/recorded/buildbot/`) patched from the fake's state.
//!
//! Nothing runs by itself: a test claims a request ([`FakeBuildbot::claim`],
//! a worker took it), ends a build ([`FakeBuildbot::finish`], with
//! results.json written to the master's results dir by
//! [`FakeBuildbot::write_results`]), loses its worker
//! ([`FakeBuildbot::lose_worker`]: RETRY, the request queued again) or
//! purges it ([`FakeBuildbot::purge_build`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::{deliver, query, recorded, unix_now, Call, Fault, Faults};

/// The endpoints of the fake Buildbot, for [`Fault`]s and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /auth/login`.
    Login,
    /// `POST /api/v2/forceschedulers/<name>` `force`.
    Force,
    /// `GET /api/v2/buildrequests/<id>`.
    BuildRequest,
    /// `GET /api/v2/buildrequests?...`.
    BuildRequests,
    /// `GET /api/v2/buildrequests/<id>/builds`.
    BuildRequestBuilds,
    /// `GET /api/v2/builds/<id>`.
    Build,
    /// `GET /api/v2/builds`.
    Builds,
    /// `GET /api/v2/builds/<id>/properties`.
    BuildProperties,
    /// `GET /api/v2/buildsets?...`.
    Buildsets,
    /// `POST /api/v2/builds/<id>` `stop`.
    Stop,
    /// `POST /api/v2/buildrequests/<id>` `cancel`.
    Cancel,
}

/// Buildbot's result codes.
pub mod results {
    /// Success.
    pub const SUCCESS: i64 = 0;
    /// Failure.
    pub const FAILURE: i64 = 2;
    /// Exception.
    pub const EXCEPTION: i64 = 4;
    /// Retry: the build is over, its request is queued again.
    pub const RETRY: i64 = 5;
    /// Cancelled (stopped, or a request cancelled).
    pub const CANCELLED: i64 = 6;
}

/// A buildset (one force).
#[derive(Debug, Clone)]
pub struct Buildset {
    /// Its id.
    pub bsid: i64,
    /// The force's reason.
    pub reason: String,
    /// The declared properties it was forced with.
    pub properties: Map<String, Value>,
    /// Unix seconds.
    pub submitted_at: i64,
    /// Over.
    pub complete: bool,
    /// Unix seconds, once over.
    pub complete_at: Option<i64>,
    /// -1 until over.
    pub results: i64,
}

/// A build request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its id.
    pub brid: i64,
    /// Its buildset.
    pub bsid: i64,
    /// A worker took it (a cancel claims it too).
    pub claimed: bool,
    /// Unix seconds, once claimed.
    pub claimed_at: Option<i64>,
    /// Over.
    pub complete: bool,
    /// Unix seconds, once over.
    pub complete_at: Option<i64>,
    /// -1 until over.
    pub results: i64,
    /// Unix seconds.
    pub submitted_at: i64,
}

/// A build.
#[derive(Debug, Clone)]
pub struct Build {
    /// Its id.
    pub buildid: i64,
    /// Its request.
    pub brid: i64,
    /// Its number on the builder.
    pub number: i64,
    /// Over.
    pub complete: bool,
    /// Unix seconds, once over.
    pub complete_at: Option<i64>,
    /// None until over.
    pub results: Option<i64>,
    /// Unix seconds.
    pub started_at: i64,
    /// What the UI shows.
    pub state_string: String,
    /// Name to `[value, source]`.
    pub properties: Map<String, Value>,
}

/// What the fake master holds.
#[derive(Debug, Default)]
pub struct Master {
    /// Buildsets, oldest first.
    pub buildsets: Vec<Buildset>,
    /// Build requests by id.
    pub requests: BTreeMap<i64, Request>,
    /// Builds by id (a purged one is gone).
    pub builds: BTreeMap<i64, Build>,
    /// `stop`s received: build id and reason.
    pub stops: Vec<(i64, String)>,
    /// `cancel`s received: request id and reason.
    pub cancels: Vec<(i64, String)>,
    sessions: HashSet<String>,
    next_build: i64,
}

struct Templates {
    base: String,
    login: super::Recorded,
    login_refused: super::Recorded,
    forbidden: Value,
    forbidden_admins: Value,
    invalid: Value,
    force: Value,
    rpc_ok: Value,
    request: Value,
    build: Value,
    properties: Map<String, Value>,
    buildset: Value,
    build_404: Value,
    request_404: Value,
}

impl Templates {
    fn load() -> Templates {
        let login = recorded("buildbot/auth_login");
        let base = login.headers["location"]
            .as_str()
            .unwrap()
            .trim_end_matches("#/")
            .to_string();
        let props = recorded("buildbot/build_properties").body["properties"][0]
            .as_object()
            .unwrap()
            .clone();
        Templates {
            base,
            login,
            login_refused: recorded("buildbot/auth_login_refused"),
            forbidden: recorded("buildbot/force_403_anonymous").body,
            forbidden_admins: recorded("buildbot/build_stop_404").body,
            invalid: recorded("buildbot/force_invalid_property").body,
            force: recorded("buildbot/force").body,
            rpc_ok: recorded("buildbot/build_stop").body,
            request: recorded("buildbot/buildrequest_claimed").body["buildrequests"][0].clone(),
            build: recorded("buildbot/build_running").body["builds"][0].clone(),
            properties: props,
            buildset: recorded("buildbot/buildsets").body["buildsets"][0].clone(),
            build_404: recorded("buildbot/build_404").body,
            request_404: recorded("buildbot/buildrequest_404").body,
        }
    }
}

/// The answer's content type: Buildbot serves its data API as text/plain.
fn data(status: u16, body: Value) -> Response {
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    (code, [("content-type", "text/plain; charset=utf-8")], body.to_string()).into_response()
}

/// A JSON-RPC answer.
fn rpc(status: u16, body: Value) -> Response {
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

/// A fake Buildbot 4.3.0 master (see the module doc), serving on 127.0.0.1.
pub struct FakeBuildbot {
    /// `http://127.0.0.1:<port>/`.
    pub url: String,
    /// The user the bridge logs in as.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The builder's id (the recorded one).
    pub builderid: i64,
    /// The master's results root.
    pub results_dir: PathBuf,
    /// Faults scripted per endpoint.
    pub faults: Faults<Endpoint>,
    state: Mutex<Master>,
    calls: Mutex<Vec<Call<Endpoint>>>,
    t: Templates,
}

impl FakeBuildbot {
    /// Starts a fake master whose results root is `results_dir`.
    pub async fn start(results_dir: PathBuf) -> Arc<FakeBuildbot> {
        let t = Templates::load();
        let builderid = t.force["result"][1]
            .as_object()
            .and_then(|m| m.keys().next())
            .and_then(|k| k.parse().ok())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let b = Arc::new(FakeBuildbot {
            url,
            user: "bridge".into(),
            password: format!("fake-password-{}", uuid::Uuid::new_v4().simple()),
            builderid,
            results_dir,
            faults: Faults::new(),
            state: Mutex::new(Master::default()),
            calls: Mutex::new(Vec::new()),
            t,
        });
        let router = router(b.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        b
    }

    /// Reads or changes the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Master) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<Call<Endpoint>> {
        self.calls.lock().unwrap().clone()
    }

    /// How many calls of `endpoint` were received.
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.endpoint == endpoint)
            .count()
    }

    /// The next `times` calls of `endpoint` meet `fault`.
    pub fn fail(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.faults.push(endpoint, fault, times);
    }

    /// Every buildset (one per force taken).
    pub fn buildsets(&self) -> Vec<Buildset> {
        self.with(|m| m.buildsets.clone())
    }

    /// A build request.
    pub fn request(&self, brid: i64) -> Option<Request> {
        self.with(|m| m.requests.get(&brid).cloned())
    }

    /// A build.
    pub fn build(&self, buildid: i64) -> Option<Build> {
        self.with(|m| m.builds.get(&buildid).cloned())
    }

    /// The build requests, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.with(|m| m.requests.values().cloned().collect())
    }

    /// A worker takes request `brid`: it is claimed and a build starts;
    /// the build's id.
    pub fn claim(&self, brid: i64) -> i64 {
        let now = unix_now();
        self.with(|m| {
            let r = m.requests.get_mut(&brid).expect("no such build request");
            assert!(!r.complete, "request {brid} is over");
            r.claimed = true;
            r.claimed_at = Some(now);
            let forced = m
                .buildsets
                .iter()
                .find(|s| s.bsid == r.bsid)
                .map(|s| s.properties.clone())
                .unwrap_or_default();
            m.next_build += 1;
            let buildid = m.next_build;
            let mut props = Map::new();
            for (k, v) in &self.t.properties {
                let source = v[1].as_str().unwrap_or("");
                let value = match (k.as_str(), source) {
                    ("results_rel", _) => continue,
                    (_, "Force Build Form") => match forced.get(k) {
                        Some(f) => f.clone(),
                        None => v[0].clone(),
                    },
                    ("buildnumber", _) => json!(buildid),
                    ("builderid", _) => json!(self.builderid),
                    _ => v[0].clone(),
                };
                props.insert(k.clone(), json!([value, source]));
            }
            m.builds.insert(
                buildid,
                Build {
                    buildid,
                    brid,
                    number: buildid,
                    complete: false,
                    complete_at: None,
                    results: None,
                    started_at: now,
                    state_string: "building".into(),
                    properties: props,
                },
            );
            buildid
        })
    }

    /// Writes `results` (and a screenshot, if given, where `results.screenshot`
    /// names it) into the master's results dir as the build's upload would:
    /// `<results_dir>/<recipe>/<run_id>/`; returns `<recipe>/<run_id>`.
    /// Results without an app identity get the build's run id in it, as
    /// `ccci test --run-id` writes it; given one, it is kept (a test of
    /// another run's results in this build's folder).
    pub fn write_results(
        &self,
        buildid: i64,
        results: &cc_ci_results::RunResults,
        screenshot: Option<&[u8]>,
    ) -> String {
        let b = self.build(buildid).expect("no such build");
        let run_id = b.properties["run_id"][0].as_str().unwrap().to_string();
        let rel = format!("{}/{run_id}", results.recipe);
        let dir = self.results_dir.join(&rel);
        std::fs::create_dir_all(&dir).unwrap();
        let mut results = results.clone();
        if results.app.is_none() {
            results.app = Some(cc_ci_results::AppIdentity {
                run_id: run_id.clone(),
                domain: format!("{}-{run_id}.ci.test", results.recipe),
                stack: format!("{}-{run_id}_ci_test", results.recipe),
            });
        }
        results.write(&dir.join("results.json")).unwrap();
        if let (Some(bytes), Some(name)) = (screenshot, &results.screenshot) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        rel
    }

    /// Build `buildid` ends with `results` (a code of [`results`]); its
    /// request and buildset end with it. `results_rel` is the property the
    /// `locate results` step sets (None: `ccci test` wrote nothing).
    pub fn finish(&self, buildid: i64, code: i64, results_rel: Option<&str>) {
        let now = unix_now();
        self.with(|m| {
            let b = m.builds.get_mut(&buildid).expect("no such build");
            b.complete = true;
            b.complete_at = Some(now);
            b.results = Some(code);
            b.state_string = match code {
                0 => "build successful".into(),
                2 => "failed ccci test".into(),
                6 => "cancelled".into(),
                _ => "exception ccci test".into(),
            };
            if let Some(rel) = results_rel {
                b.properties
                    .insert("results_rel".into(), json!([rel, "SetPropertyFromCommand Step"]));
            }
            let brid = b.brid;
            end_request(m, brid, code, now);
        });
    }

    /// Build `buildid` loses its worker: it ends RETRY (5) and its request
    /// is queued again, unclaimed (as recorded from the real master).
    pub fn lose_worker(&self, buildid: i64) {
        let now = unix_now();
        self.with(|m| {
            let b = m.builds.get_mut(&buildid).expect("no such build");
            b.complete = true;
            b.complete_at = Some(now);
            b.results = Some(results::RETRY);
            b.state_string = "retry lost connection ccci test (retry)".into();
            let r = m.requests.get_mut(&b.brid).unwrap();
            r.claimed = false;
            r.claimed_at = None;
        });
    }

    /// Build `buildid` is purged from the master's database: it is no
    /// longer found (404), its properties are empty, it cannot be stopped.
    pub fn purge_build(&self, buildid: i64) {
        self.with(|m| m.builds.remove(&buildid));
    }

    /// Request `brid` is purged, with its builds.
    pub fn purge_request(&self, brid: i64) {
        self.with(|m| {
            m.requests.remove(&brid);
            m.builds.retain(|_, b| b.brid != brid);
        });
    }

    fn rebased(&self, mut v: Value) -> Value {
        super::rebase(&mut v, &self.t.base, self.url.trim_end_matches('/'));
        v
    }

    /// A build request as the API shows one.
    pub fn request_json(&self, r: &Request) -> Value {
        let mut v = self.t.request.clone();
        v["buildrequestid"] = json!(r.brid);
        v["buildsetid"] = json!(r.bsid);
        v["builderid"] = json!(self.builderid);
        v["claimed"] = json!(r.claimed);
        v["claimed_at"] = json!(r.claimed_at);
        v["claimed_by_masterid"] = if r.claimed { json!(1) } else { Value::Null };
        v["complete"] = json!(r.complete);
        v["complete_at"] = json!(r.complete_at);
        v["results"] = json!(r.results);
        v["submitted_at"] = json!(r.submitted_at);
        v
    }

    /// A build as the API shows one.
    pub fn build_json(&self, b: &Build) -> Value {
        let mut v = self.t.build.clone();
        v["buildid"] = json!(b.buildid);
        v["buildrequestid"] = json!(b.brid);
        v["builderid"] = json!(self.builderid);
        v["number"] = json!(b.number);
        v["complete"] = json!(b.complete);
        v["complete_at"] = json!(b.complete_at);
        v["results"] = json!(b.results);
        v["started_at"] = json!(b.started_at);
        v["state_string"] = json!(b.state_string);
        v
    }

    /// A buildset as the API shows one.
    pub fn buildset_json(&self, s: &Buildset) -> Value {
        let mut v = self.t.buildset.clone();
        v["bsid"] = json!(s.bsid);
        v["reason"] = json!(s.reason);
        v["submitted_at"] = json!(s.submitted_at);
        v["complete"] = json!(s.complete);
        v["complete_at"] = json!(s.complete_at);
        v["results"] = json!(s.results);
        v
    }

    fn begin(
        &self,
        endpoint: Endpoint,
        method: &Method,
        uri: &Uri,
        body: &[u8],
    ) -> Result<Option<Fault>, Box<Response>> {
        let fault = self.faults.take(endpoint);
        self.calls.lock().unwrap().push(Call {
            endpoint,
            method: method.to_string(),
            uri: uri.to_string(),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
            fault: fault.clone(),
        });
        match fault {
            Some(Fault::Status(403)) => Err(Box::new(rpc(403, self.t.forbidden.clone()))),
            Some(Fault::Status(code)) => Err(Box::new(data(
                code,
                json!({"error": format!("fake Buildbot: scripted {code}")}),
            ))),
            f => Ok(f),
        }
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        let cookies = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("TWISTED_SESSION="))
            .map(str::to_string)
            .collect::<Vec<_>>();
        self.with(|m| cookies.iter().any(|c| m.sessions.contains(c)))
    }
}

fn end_request(m: &mut Master, brid: i64, code: i64, now: i64) {
    if let Some(r) = m.requests.get_mut(&brid) {
        r.claimed = true;
        r.claimed_at = r.claimed_at.or(Some(now));
        r.complete = true;
        r.complete_at = Some(now);
        r.results = code;
        let bsid = r.bsid;
        if let Some(s) = m.buildsets.iter_mut().find(|s| s.bsid == bsid) {
            s.complete = true;
            s.complete_at = Some(now);
            s.results = code;
        }
    }
}

type B = State<Arc<FakeBuildbot>>;

macro_rules! begin {
    ($b:expr, $ep:expr, $m:expr, $u:expr, $body:expr) => {
        match $b.begin($ep, &$m, &$u, &$body) {
            Ok(f) => f,
            Err(answer) => return *answer,
        }
    };
}

fn router(b: Arc<FakeBuildbot>) -> Router {
    Router::new()
        .route("/auth/login", get(login))
        .route("/api/v2/forceschedulers/{name}", post(force))
        .route("/api/v2/buildrequests", get(buildrequests))
        .route("/api/v2/buildrequests/{id}", get(buildrequest).post(cancel))
        .route("/api/v2/buildrequests/{id}/builds", get(buildrequest_builds))
        .route("/api/v2/builds", get(builds))
        .route("/api/v2/builds/{id}", get(build).post(stop))
        .route("/api/v2/builds/{id}/properties", get(properties))
        .route("/api/v2/buildsets", get(buildsets))
        .with_state(b)
}

async fn login(State(b): B, m: Method, u: Uri, h: HeaderMap) -> Response {
    let f = begin!(b, Endpoint::Login, m, u, []);
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.user, b.password))
    );
    let given = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let answer = if given == want {
        let session = uuid::Uuid::new_v4().simple().to_string();
        b.with(|m| m.sessions.insert(session.clone()));
        let code = axum::http::StatusCode::from_u16(b.t.login.status).unwrap();
        (
            code,
            [
                ("location", format!("{}#/", b.url)),
                ("set-cookie", format!("TWISTED_SESSION={session}; Path=/")),
                ("content-type", "text/html".into()),
            ],
        )
            .into_response()
    } else {
        let code = axum::http::StatusCode::from_u16(b.t.login_refused.status).unwrap();
        let text = b.t.login_refused.body.as_str().unwrap_or("Unauthorized").to_string();
        (code, [("content-type", "text/html")], text).into_response()
    };
    deliver(f, answer).await
}

/// Checks the force's declared properties as master.cfg does; the
/// properties kept (undeclared ones are dropped, as Buildbot drops them),
/// or the JSON-RPC `invalid params` message.
fn validate(params: &Map<String, Value>) -> Result<Map<String, Value>, Value> {
    let s = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let hex = |v: &str, n: usize| v.len() == n && v.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let mut errors = Map::new();
    let recipe = s("recipe");
    let recipe_ok = !recipe.is_empty()
        && recipe.len() <= 63
        && recipe.as_bytes()[0].is_ascii_alphanumeric()
        && recipe
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c));
    let clone = s("clone_url");
    let checks: [(&str, &str, bool, &str); 5] = [
        (
            "clone_url",
            "clone URL",
            ["http://", "https://", "file://"].iter().any(|p| clone.starts_with(p))
                && !clone.contains(char::is_whitespace),
            r"^(https?|file)://[^\s]+$",
        ),
        ("recipe", "recipe", recipe_ok, r"^[a-z0-9][a-z0-9._-]{0,62}$"),
        ("head_sha", "commit", hex(&s("head_sha"), 40), r"^[0-9a-f]{40}$"),
        ("run_id", "run id (6 hex)", hex(&s("run_id"), 6), r"^[0-9a-f]{6}$"),
        (
            "comment_id",
            "comment id",
            s("comment_id").bytes().all(|c| c.is_ascii_digit()),
            r"^[0-9]*$",
        ),
    ];
    for (key, label, ok, pattern) in checks {
        if !ok {
            errors.insert(
                key.into(),
                json!(format!("{label}:'{}' does not match pattern '{pattern}'", s(key))),
            );
        }
    }
    if !errors.is_empty() {
        return Err(Value::Object(errors));
    }
    let declared = [
        "clone_url",
        "recipe",
        "head_sha",
        "fetch_ref",
        "base_branch",
        "pr",
        "comment_id",
        "run_id",
        "trigger",
        "quick",
    ];
    Ok(params
        .iter()
        .filter(|(k, _)| declared.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

async fn force(State(b): B, Path(name): Path<String>, m: Method, u: Uri, h: HeaderMap, body: Bytes) -> Response {
    let f = begin!(b, Endpoint::Force, m, u, body);
    if !b.logged_in(&h) {
        return deliver(f, rpc(403, b.t.forbidden.clone())).await;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = req["id"].clone();
    let params = req["params"].as_object().cloned().unwrap_or_default();
    if name != "testme" || req["method"] != "force" || params.get("builderNames") != Some(&json!(["ccci"])) {
        let mut e = b.t.invalid.clone();
        e["error"]["message"] = json!(format!("no such force scheduler or builder: {name}"));
        return deliver(f, rpc(400, e)).await;
    }
    let props = match validate(&params) {
        Ok(p) => p,
        Err(message) => {
            let mut e = b.t.invalid.clone();
            e["error"]["message"] = message;
            e["id"] = id;
            return deliver(f, rpc(400, e)).await;
        }
    };
    let now = unix_now();
    let (bsid, brid) = b.with(|m| {
        let bsid = m.buildsets.len() as i64 + 1;
        let brid = m.requests.keys().next_back().copied().unwrap_or(0) + 1;
        m.buildsets.push(Buildset {
            bsid,
            reason: params.get("reason").and_then(Value::as_str).unwrap_or("").into(),
            properties: props,
            submitted_at: now,
            complete: false,
            complete_at: None,
            results: -1,
        });
        m.requests.insert(
            brid,
            Request {
                brid,
                bsid,
                claimed: false,
                claimed_at: None,
                complete: false,
                complete_at: None,
                results: -1,
                submitted_at: now,
            },
        );
        (bsid, brid)
    });
    let mut v = b.t.force.clone();
    v["id"] = id;
    v["result"] = json!([bsid, {b.builderid.to_string(): brid}]);
    deliver(f, rpc(200, v)).await
}

async fn buildrequest(State(b): B, Path(id): Path<i64>, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::BuildRequest, m, u, []);
    let a = match b.request(id) {
        Some(r) => data(200, json!({"buildrequests": [b.request_json(&r)], "meta": {}})),
        None => {
            let mut e = b.t.request_404.clone();
            let msg = e["error"].as_str().unwrap_or("not found").to_string();
            e["error"] = json!(msg.replace("999999", &id.to_string()));
            data(404, e)
        }
    };
    deliver(f, a).await
}

async fn buildrequests(State(b): B, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::BuildRequests, m, u, []);
    let q = query(&u);
    let flag = |k: &str| q.get(k).map(|v| v == "true" || v == "1");
    let list: Vec<Value> = b
        .requests()
        .iter()
        .filter(|r| q.get("buildsetid").is_none_or(|s| s.parse() == Ok(r.bsid)))
        .filter(|r| flag("complete").is_none_or(|c| c == r.complete))
        .filter(|r| flag("claimed").is_none_or(|c| c == r.claimed))
        .map(|r| b.request_json(r))
        .collect();
    let n = list.len();
    deliver(f, data(200, json!({"buildrequests": list, "meta": {"total": n}}))).await
}

async fn buildrequest_builds(State(b): B, Path(id): Path<i64>, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::BuildRequestBuilds, m, u, []);
    let list: Vec<Value> = b
        .with(|m| m.builds.values().filter(|x| x.brid == id).cloned().collect::<Vec<_>>())
        .iter()
        .map(|x| b.build_json(x))
        .collect();
    let n = list.len();
    deliver(f, data(200, json!({"builds": list, "meta": {"total": n}}))).await
}

async fn builds(State(b): B, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::Builds, m, u, []);
    let list: Vec<Value> = b
        .with(|m| m.builds.values().cloned().collect::<Vec<_>>())
        .iter()
        .map(|x| b.build_json(x))
        .collect();
    let n = list.len();
    deliver(f, data(200, json!({"builds": list, "meta": {"total": n}}))).await
}

async fn build(State(b): B, Path(id): Path<i64>, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::Build, m, u, []);
    let a = match b.build(id) {
        Some(x) => data(200, json!({"builds": [b.build_json(&x)], "meta": {}})),
        None => {
            let mut e = b.t.build_404.clone();
            let msg = e["error"].as_str().unwrap_or("not found").to_string();
            e["error"] = json!(msg.replace("999999", &id.to_string()));
            data(404, e)
        }
    };
    deliver(f, a).await
}

async fn properties(State(b): B, Path(id): Path<i64>, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::BuildProperties, m, u, []);
    // A build that is not there has no properties (200, as the real master answers).
    let props = b.build(id).map(|x| x.properties).unwrap_or_default();
    deliver(f, data(200, json!({"meta": {}, "properties": [props]}))).await
}

async fn buildsets(State(b): B, m: Method, u: Uri) -> Response {
    let f = begin!(b, Endpoint::Buildsets, m, u, []);
    let q = query(&u);
    let mut sets = b.buildsets();
    if q.get("order").map(String::as_str) == Some("-bsid") {
        sets.reverse();
    }
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX);
    let list: Vec<Value> = sets.iter().take(limit).map(|s| b.buildset_json(s)).collect();
    let n = sets.len();
    deliver(f, data(200, json!({"buildsets": list, "meta": {"total": n}}))).await
}

async fn stop(State(b): B, Path(id): Path<i64>, m: Method, u: Uri, h: HeaderMap, body: Bytes) -> Response {
    let f = begin!(b, Endpoint::Stop, m, u, body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !b.logged_in(&h) {
        return deliver(f, rpc(403, b.t.forbidden.clone())).await;
    }
    if b.build(id).is_none() {
        // No build: no builder for the authz to match, so only admins may.
        return deliver(f, rpc(403, b.t.forbidden_admins.clone())).await;
    }
    let reason = req["params"]["reason"].as_str().unwrap_or("").to_string();
    let now = unix_now();
    b.with(|m| {
        m.stops.push((id, reason.clone()));
        let x = m.builds.get_mut(&id).unwrap();
        if !x.complete {
            x.complete = true;
            x.complete_at = Some(now);
            x.results = Some(results::CANCELLED);
            x.state_string = format!("cancelled ({reason})");
            let brid = x.brid;
            end_request(m, brid, results::CANCELLED, now);
        }
    });
    let mut v = b.t.rpc_ok.clone();
    v["id"] = req["id"].clone();
    deliver(f, rpc(200, v)).await
}

async fn cancel(State(b): B, Path(id): Path<i64>, m: Method, u: Uri, h: HeaderMap, body: Bytes) -> Response {
    let f = begin!(b, Endpoint::Cancel, m, u, body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !b.logged_in(&h) {
        return deliver(f, rpc(403, b.t.forbidden.clone())).await;
    }
    if b.request(id).is_none() {
        return deliver(f, rpc(403, b.t.forbidden_admins.clone())).await;
    }
    let reason = req["params"]["reason"].as_str().unwrap_or("").to_string();
    let now = unix_now();
    b.with(|m| {
        m.cancels.push((id, reason));
        if !m.requests[&id].complete {
            end_request(m, id, results::CANCELLED, now);
        }
    });
    let mut v = b.t.rpc_ok.clone();
    v["id"] = req["id"].clone();
    deliver(f, rpc(200, v)).await
}
