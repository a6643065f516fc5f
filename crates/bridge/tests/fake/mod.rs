//! In-process fakes of the Gitea 1.26.0 and Buildbot 4.3.0 HTTP APIs, for
//! the bridge's fast tests: axum servers on 127.0.0.1:0 inside the test
//! process, whose answers are built from the answers RECORDED from the real
//! Gitea 1.26.0 and Buildbot 4.3.0 (`tests/recorded/`, written by
//! `tests/record.rs`): each answer is a recorded one with the fields that
//! vary (ids, bodies, SHAs, timestamps, URLs) patched from the fake's
//! in-memory state.
//!
//! The state (comments, statuses, members; buildsets, build requests,
//! builds, properties) can be read and scripted by the tests, and any
//! endpoint can be made to fail ([`Fault`]) for its next calls.
//! `fakes_answer_in_the_shapes_recorded_from_the_real_apis` (in
//! `tests/decisions.rs`) checks every fake answer against its recorded
//! counterpart, key for key, so the fakes cannot drift from the real APIs
//! silently.

#![allow(dead_code)]

pub mod buildbot;
pub mod gitea;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The folder of the recorded answers.
pub fn recorded_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded")
}

/// One answer recorded from a real forge (`tests/recorded/<name>.json`).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What was asked (method, path, body).
    pub request: Value,
    /// The HTTP status (0 for a recorded webhook delivery, which is a request).
    pub status: u16,
    /// The headers kept (content type, location, cookie names).
    pub headers: Value,
    /// The JSON body (null when there was none; a string when it was not JSON).
    pub body: Value,
}

/// The recorded answer `name` (`gitea/user`, `buildbot/force` ...); panics
/// naming the file when it is missing (re-record: see `tests/record.rs`).
pub fn recorded(name: &str) -> Recorded {
    let path = recorded_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (re-record: see crates/bridge/tests/record.rs)", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Recorded {
        request: v["request"].clone(),
        status: v["status"].as_u64().unwrap_or(0) as u16,
        headers: v["headers"].clone(),
        body: v["body"].clone(),
    }
}

/// Every recorded answer's name (`gitea/user` ...), sorted.
pub fn all_recorded() -> Vec<String> {
    let mut out = Vec::new();
    for forge in ["gitea", "buildbot", "webhook"] {
        let Ok(rd) = std::fs::read_dir(recorded_dir().join(forge)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let stem = p.file_stem().unwrap().to_string_lossy().to_string();
                out.push(format!("{forge}/{stem}"));
            }
        }
    }
    out.sort();
    out
}

/// Replaces every occurrence of `from` by `to` in the strings of `v`
/// (a recorded answer's base URL by the fake's).
pub fn rebase(v: &mut Value, from: &str, to: &str) {
    if from.is_empty() {
        return;
    }
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(a) => a.iter_mut().for_each(|x| rebase(x, from, to)),
        Value::Object(m) => m.values_mut().for_each(|x| rebase(x, from, to)),
        _ => {}
    }
}

/// What a scripted fault does to one call of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answers this status (with the forge's error body) and does nothing.
    Status(u16),
    /// Does what was asked, then answers 502 Bad Gateway: the answer is
    /// lost on its way back (a proxy whose upstream connection dropped).
    LoseAnswer,
    /// Does what was asked, then holds the answer this long: a caller that
    /// gives up (or dies) first never learns what happened.
    Stall(Duration),
}

/// Faults scripted per endpoint, each used by one call, in order.
#[derive(Debug)]
pub struct Faults<E>(Mutex<HashMap<E, VecDeque<Fault>>>);

impl<E: Eq + Hash + Copy> Faults<E> {
    /// No faults.
    pub fn new() -> Faults<E> {
        Faults(Mutex::new(HashMap::new()))
    }

    /// The next `times` calls of `endpoint` meet `fault` (after those
    /// already scripted).
    pub fn push(&self, endpoint: E, fault: Fault, times: usize) {
        let mut m = self.0.lock().unwrap();
        let q = m.entry(endpoint).or_default();
        for _ in 0..times {
            q.push_back(fault.clone());
        }
    }

    /// The fault the current call of `endpoint` meets, if any.
    pub fn take(&self, endpoint: E) -> Option<Fault> {
        self.0.lock().unwrap().get_mut(&endpoint).and_then(VecDeque::pop_front)
    }

    /// Faults scripted and not yet met.
    pub fn left(&self) -> usize {
        self.0.lock().unwrap().values().map(VecDeque::len).sum()
    }
}

/// One call a fake received.
#[derive(Debug, Clone)]
pub struct Call<E> {
    /// The endpoint.
    pub endpoint: E,
    /// `GET`, `POST` ...
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The JSON body, if there was one.
    pub body: Value,
    /// The fault it met, if any.
    pub fault: Option<Fault>,
}

/// Finishes an answer under the fault the call met: a lost answer becomes a
/// 502, a stalled one waits first.
pub async fn deliver(fault: Option<Fault>, answer: Response) -> Response {
    match fault {
        Some(Fault::LoseAnswer) => (
            axum::http::StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the upstream closed the connection",
        )
            .into_response(),
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            answer
        }
        _ => answer,
    }
}

/// A JSON answer with `status`.
pub fn json_answer(status: u16, body: Value) -> Response {
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    if body.is_null() {
        return code.into_response();
    }
    (code, axum::Json(body)).into_response()
}

/// The query parameters of `uri`, decoded.
pub fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, b[i]) {
            (Some(x), _) => {
                out.push(x);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `router` on 127.0.0.1:0 in the background; its base URL
/// (`http://127.0.0.1:<port>`).
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// How one JSON value's shape differs from a recorded one's: object keys
/// (recursively), arrays' elements (by position for a tuple, a recorded
/// array mixing kinds; else each against the recorded first), and kinds
/// where both are not null. Empty lists: `[]` against a non-empty one is a
/// difference (the scenario should reproduce the recorded one).
pub fn shape_diff(recorded: &Value, fake: &Value, at: &str, out: &mut Vec<String>) {
    use Value::*;
    match (recorded, fake) {
        (Null, _) | (_, Null) => {}
        (Object(r), Object(f)) => {
            for k in r.keys().filter(|k| !f.contains_key(*k)) {
                out.push(format!("{at}.{k}: recorded, missing from the fake"));
            }
            for k in f.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{at}.{k}: in the fake, never recorded"));
            }
            for (k, rv) in r {
                if let Some(fv) = f.get(k) {
                    shape_diff(rv, fv, &format!("{at}.{k}"), out);
                }
            }
        }
        (Array(r), Array(f)) => {
            if r.is_empty() != f.is_empty() {
                out.push(format!("{at}: {} recorded, {} in the fake", r.len(), f.len()));
                return;
            }
            // A tuple (`[bsid, {builderid: brid}]`, `[value, source]`) mixes
            // kinds: compared by position.
            let tuple = r.iter().any(|x| kind(x) != kind(&r[0]));
            if tuple && r.len() != f.len() {
                out.push(format!(
                    "{at}: a tuple of {} recorded, {} in the fake",
                    r.len(),
                    f.len()
                ));
                return;
            }
            for (i, fv) in f.iter().enumerate() {
                let rv = if tuple { &r[i] } else { &r[0] };
                shape_diff(rv, fv, &format!("{at}[{i}]"), out);
            }
        }
        (r, f) if kind(r) != kind(f) => out.push(format!("{at}: {} recorded, {} in the fake", kind(r), kind(f))),
        _ => {}
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Unix seconds now, as Buildbot stamps (whole seconds).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
