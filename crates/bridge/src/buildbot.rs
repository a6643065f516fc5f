//! Buildbot's HTTP API (v2), as much as the bridge uses: log in, force a
//! build through the force scheduler, follow its build request and build,
//! read its properties, stop it or cancel it. Measured against Buildbot
//! 4.3.0 (`docs/forges.md`, "Buildbot 4.3.0"):
//!
//! - `GET /auth/login` with basic auth sets a session cookie; the API
//!   refuses basic auth on control calls, and anonymous POSTs get 403;
//! - `POST /api/v2/forceschedulers/<name>` with JSON-RPC `force` answers
//!   `{"result": [bsid, {"<builderid>": brid}]}`;
//! - `GET /api/v2/buildrequests/<brid>` (`claimed`, `complete`, `results`),
//!   `GET /api/v2/buildrequests/<brid>/builds`, `GET /api/v2/builds/<id>/properties`;
//! - `POST /api/v2/builds/<id>` `stop`, `POST /api/v2/buildrequests/<brid>` `cancel`.
//!
//! Build results: 0 success, 1 warnings, 2 failure, 3 skipped, 4 exception,
//! 5 retry, 6 cancelled.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::Secret;

/// A Buildbot call that did not work.
#[derive(Debug, thiserror::Error)]
pub enum BuildbotError {
    /// Buildbot could not be reached or answered 5xx: worth retrying.
    #[error("Buildbot at {url} is unreachable: {detail}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why.
        detail: String,
    },
    /// Buildbot refused (4xx, or a JSON-RPC error): retrying will not help.
    #[error("Buildbot refused {what}: {detail}")]
    Refused {
        /// What was asked.
        what: String,
        /// What it said.
        detail: String,
    },
}

impl BuildbotError {
    /// Whether trying again later may work.
    pub fn retryable(&self) -> bool {
        matches!(self, BuildbotError::Unreachable { .. })
    }
}

/// A build request.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildRequest {
    /// Its id.
    pub buildrequestid: i64,
    /// The builder's id.
    pub builderid: i64,
    /// A worker took it.
    pub claimed: bool,
    /// It is over (built, cancelled).
    pub complete: bool,
    /// The result, once complete.
    #[serde(default)]
    pub results: Option<i64>,
}

/// A build.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// Its id (unique on the master).
    pub buildid: i64,
    /// Its number (per builder; the web UI's).
    pub number: i64,
    /// The builder's id.
    pub builderid: i64,
    /// It is over.
    pub complete: bool,
    /// The result, once complete.
    #[serde(default)]
    pub results: Option<i64>,
    /// What the UI shows ("build successful", "failed ccci test (timed out)").
    #[serde(default)]
    pub state_string: String,
}

/// Result code of a cancelled build or request.
pub const CANCELLED: i64 = 6;

/// What a build result code means, in words.
pub fn result_name(code: i64) -> &'static str {
    match code {
        0 => "success",
        1 => "warnings",
        2 => "failure",
        3 => "skipped",
        4 => "exception",
        5 => "retry",
        6 => "cancelled",
        _ => "unknown",
    }
}

/// A Buildbot API client logged in as the bridge's user.
pub struct Buildbot {
    base: String,
    public: String,
    user: String,
    password: Secret,
    http: reqwest::Client,
    logged_in: tokio::sync::Mutex<bool>,
}

/// How long one API call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

impl Buildbot {
    /// A client of the master at `base` (with a trailing `/`); links point
    /// at `public`.
    ///
    /// # Errors
    /// When the HTTP client cannot be made.
    pub fn new(base: &str, public: &str, user: &str, password: Secret) -> Result<Buildbot, BuildbotError> {
        let http = crate::http::client_builder()
            .cookie_store(true)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildbotError::Unreachable {
                url: base.into(),
                detail: format!("cannot make an HTTP client: {e}"),
            })?;
        Ok(Buildbot {
            base: base.into(),
            public: public.into(),
            user: user.into(),
            password,
            http,
            logged_in: tokio::sync::Mutex::new(false),
        })
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The web page of build `number` of builder `builderid` (the live log).
    pub fn build_url(&self, builderid: i64, number: i64) -> String {
        format!("{}#/builders/{builderid}/builds/{number}", self.public)
    }

    /// The web page of a build request (before its build exists).
    pub fn request_url(&self, brid: i64) -> String {
        format!("{}#/buildrequests/{brid}", self.public)
    }

    fn unreachable(&self, url: &str, e: &reqwest::Error) -> BuildbotError {
        BuildbotError::Unreachable {
            url: url.into(),
            detail: crate::http::chain(e),
        }
    }

    async fn login(&self) -> Result<(), BuildbotError> {
        let url = format!("{}auth/login", self.base);
        let resp = self
            .http
            .get(&url)
            .basic_auth(&self.user, Some(self.password.expose()))
            .send()
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        let s = resp.status();
        if s.is_server_error() {
            return Err(BuildbotError::Unreachable {
                url,
                detail: s.to_string(),
            });
        }
        // A good login redirects (302) with the session cookie set; a bad
        // one answers 401/403.
        if !(s.is_redirection() || s.is_success()) {
            return Err(BuildbotError::Refused {
                what: format!("the login of user {:?}", self.user),
                detail: format!("{s}: check the bridge's Buildbot password file"),
            });
        }
        Ok(())
    }

    async fn ensure_login(&self, again: bool) -> Result<(), BuildbotError> {
        let mut done = self.logged_in.lock().await;
        if !*done || again {
            self.login().await?;
            *done = true;
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Value, BuildbotError> {
        let url = format!("{}api/v2/{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        let s = resp.status();
        if s.is_server_error() {
            return Err(BuildbotError::Unreachable {
                url,
                detail: s.to_string(),
            });
        }
        if !s.is_success() {
            return Err(BuildbotError::Refused {
                what: format!("GET {path}"),
                detail: format!("{s}: {}", resp.text().await.unwrap_or_default()),
            });
        }
        resp.json().await.map_err(|e| self.unreachable(&url, &e))
    }

    /// A JSON-RPC control call on `path`, logged in (once more after a 403:
    /// the session may have expired).
    async fn control(&self, path: &str, method: &str, params: Value) -> Result<Value, BuildbotError> {
        let url = format!("{}api/v2/{path}", self.base);
        let body = json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
        for attempt in 0..2 {
            self.ensure_login(attempt > 0).await?;
            let resp = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| self.unreachable(&url, &e))?;
            let s = resp.status();
            if s == StatusCode::FORBIDDEN && attempt == 0 {
                continue;
            }
            let text = resp.text().await.unwrap_or_default();
            // Any 5xx is Buildbot's trouble, not a verdict on the call:
            // retried (its JSON-RPC error, if it sent one, says why).
            if s.is_server_error() {
                return Err(BuildbotError::Unreachable {
                    url,
                    detail: format!("{s}: {}", text.chars().take(300).collect::<String>()),
                });
            }
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(err) = v.get("error") {
                return Err(BuildbotError::Refused {
                    what: format!("{method} on {path}"),
                    detail: err.get("message").and_then(Value::as_str).unwrap_or(&text).to_string(),
                });
            }
            if !s.is_success() {
                return Err(BuildbotError::Refused {
                    what: format!("{method} on {path}"),
                    detail: format!("{s}: {}", text.chars().take(300).collect::<String>()),
                });
            }
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
        Err(BuildbotError::Refused {
            what: format!("{method} on {path}"),
            detail: format!(
                "403 Forbidden: user {:?} may not do this (see the authz of master.cfg)",
                self.user
            ),
        })
    }

    /// Forces a build of `builder` through the force scheduler `scheduler`
    /// with `reason` and `properties` (each must be declared by the
    /// scheduler: undeclared ones are dropped silently). Returns (buildset
    /// id, build request id).
    ///
    /// # Errors
    /// [`BuildbotError`]; `Refused` when a property does not validate.
    pub async fn force(
        &self,
        scheduler: &str,
        builder: &str,
        reason: &str,
        properties: &Map<String, Value>,
    ) -> Result<(i64, i64), BuildbotError> {
        let mut params = properties.clone();
        params.insert("builderNames".into(), json!([builder]));
        params.insert("reason".into(), json!(reason));
        let r = self
            .control(&format!("forceschedulers/{scheduler}"), "force", Value::Object(params))
            .await?;
        let bsid = r.get(0).and_then(Value::as_i64);
        let brid = r
            .get(1)
            .and_then(Value::as_object)
            .and_then(|m| m.values().next())
            .and_then(Value::as_i64);
        match (bsid, brid) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(BuildbotError::Refused {
                what: "force".into(),
                detail: format!("unexpected answer {r}"),
            }),
        }
    }

    /// A build request.
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn buildrequest(&self, brid: i64) -> Result<BuildRequest, BuildbotError> {
        let v = self.get(&format!("buildrequests/{brid}")).await?;
        first(&v, "buildrequests", &format!("build request {brid}"))
    }

    /// The builds of a build request (none while it waits).
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn builds_of(&self, brid: i64) -> Result<Vec<Build>, BuildbotError> {
        let v = self.get(&format!("buildrequests/{brid}/builds")).await?;
        serde_json::from_value(v.get("builds").cloned().unwrap_or(Value::Null)).map_err(|e| BuildbotError::Refused {
            what: format!("builds of request {brid}"),
            detail: e.to_string(),
        })
    }

    /// A build.
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn build(&self, buildid: i64) -> Result<Build, BuildbotError> {
        let v = self.get(&format!("builds/{buildid}")).await?;
        first(&v, "builds", &format!("build {buildid}"))
    }

    /// A build's properties, name to value.
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn properties(&self, buildid: i64) -> Result<Map<String, Value>, BuildbotError> {
        let v = self.get(&format!("builds/{buildid}/properties")).await?;
        let props = v
            .get("properties")
            .and_then(|p| p.get(0))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Each is [value, source].
        Ok(props
            .into_iter()
            .map(|(k, v)| (k, v.get(0).cloned().unwrap_or(Value::Null)))
            .collect())
    }

    /// The build request of the newest buildset whose reason contains
    /// `needle`, among the last 200 (to find a build forced just before the
    /// bridge died, so it is not forced twice).
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn find_by_reason(&self, needle: &str) -> Result<Option<(i64, i64)>, BuildbotError> {
        let v = self.get("buildsets?order=-bsid&limit=200").await?;
        let Some(sets) = v.get("buildsets").and_then(Value::as_array) else {
            return Ok(None);
        };
        for s in sets {
            let reason = s.get("reason").and_then(Value::as_str).unwrap_or("");
            if reason.contains(needle) {
                let Some(bsid) = s.get("bsid").and_then(Value::as_i64) else {
                    continue;
                };
                let r = self.get(&format!("buildrequests?buildsetid={bsid}")).await?;
                let brid = r
                    .get("buildrequests")
                    .and_then(|a| a.get(0))
                    .and_then(|b| b.get("buildrequestid"))
                    .and_then(Value::as_i64);
                if let Some(brid) = brid {
                    return Ok(Some((bsid, brid)));
                }
            }
        }
        Ok(None)
    }

    /// Stops a running build (its steps get SIGTERM, then SIGKILL after the
    /// master's grace).
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn stop_build(&self, buildid: i64, reason: &str) -> Result<(), BuildbotError> {
        self.control(&format!("builds/{buildid}"), "stop", json!({ "reason": reason }))
            .await
            .map(|_| ())
    }

    /// Cancels a build request that waits for a worker.
    ///
    /// # Errors
    /// [`BuildbotError`].
    pub async fn cancel_request(&self, brid: i64, reason: &str) -> Result<(), BuildbotError> {
        self.control(&format!("buildrequests/{brid}"), "cancel", json!({ "reason": reason }))
            .await
            .map(|_| ())
    }
}

fn first<T: serde::de::DeserializeOwned>(v: &Value, key: &str, what: &str) -> Result<T, BuildbotError> {
    let item = v
        .get(key)
        .and_then(|a| a.get(0))
        .cloned()
        .ok_or_else(|| BuildbotError::Refused {
            what: what.into(),
            detail: "no such object".into(),
        })?;
    serde_json::from_value(item).map_err(|e| BuildbotError::Refused {
        what: what.into(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A master that lets the user log in and answers every control call
    /// with HTTP 500 and a JSON-RPC error, as Buildbot's REST resource does
    /// when the call raised inside the master ("internal error - see logs").
    async fn failing_master() -> String {
        use axum::routing::{get, post};
        let app = axum::Router::new().route("/auth/login", get(|| async { "ok" })).route(
            "/api/v2/forceschedulers/testme",
            post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"jsonrpc": "2.0", "id": 1,
                            "error": {"code": -32000, "message": "internal error - see logs"}})),
                )
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_500_from_buildbot_is_transient_not_a_refusal() {
        let url = failing_master().await;
        let b = Buildbot::new(&url, &url, "bridge", Secret::new("pw")).unwrap();
        let e = b.force("testme", "ccci", "r", &Map::new()).await.unwrap_err();
        assert!(e.retryable(), "{e}");
        assert!(e.to_string().contains("internal error"), "{e}");
    }
}
