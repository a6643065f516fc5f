//! The bridge's HTTP side: `POST /hook` (Gitea's webhook, when a secret is
//! set) and `GET /status` (what the bridge sees: enrolled repositories and
//! their errors, Gitea's and Buildbot's last problems, builds in flight,
//! items being retried and items given up: `dead_letters`, each with its
//! reason).
//!
//! `/hook` answers 401 to a missing or wrong `X-Gitea-Signature` (or
//! `X-Forgejo-Signature`) and does nothing else; 404 when no webhook secret
//! is set; 400 to a signed payload that is not one; 202 with what became of
//! the comment otherwise.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::bridge::Bridge;
use crate::state::Phase;
use crate::trigger::webhook::{self, Delivery};

/// Bodies larger than this are refused (Gitea's comment payloads are a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// The routes.
pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route("/hook", post(hook))
        .route("/status", get(status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(bridge)
}

fn header<'a>(h: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
}

async fn hook(AxState(b): AxState<Arc<Bridge>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let Some(secret) = &b.webhook_secret else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "the webhook is off: no webhook_secret_file is set"})),
        );
    };
    let Some(sig) = header(&headers, &["x-gitea-signature", "x-forgejo-signature"]) else {
        tracing::warn!("webhook: a delivery without a signature, refused");
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no X-Gitea-Signature"})));
    };
    if !webhook::verify(secret.expose().as_bytes(), &body, sig) {
        tracing::warn!("webhook: a delivery with a bad signature, refused");
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad signature"})));
    }
    let event = header(&headers, &["x-gitea-event", "x-forgejo-event"]).unwrap_or("");
    match webhook::parse(event, &body) {
        Err(why) => (StatusCode::BAD_REQUEST, Json(json!({"error": why}))),
        Ok(Delivery::Ignored(why)) => (StatusCode::ACCEPTED, Json(json!({"handled": "ignored", "detail": why}))),
        Ok(Delivery::Comment(ev)) => {
            let handled = b.on_comment(ev).await;
            (StatusCode::ACCEPTED, Json(json!(handled)))
        }
    }
}

async fn status(AxState(b): AxState<Arc<Bridge>>) -> impl IntoResponse {
    let h = b.health();
    let mut errors: Vec<String> = h.repos.values().filter_map(|r| r.error.clone()).collect();
    errors.extend(h.gitea_error.iter().map(|e| format!("Gitea: {e}")));
    errors.extend(h.buildbot_error.iter().map(|e| format!("Buildbot: {e}")));
    let in_flight: Vec<_> = b
        .state
        .builds_in(&[Phase::Starting, Phase::Queued, Phase::Running, Phase::Reporting])
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "repo": r.repo.to_string(), "pr": r.pr, "head_sha": r.head_sha,
                "phase": format!("{:?}", r.phase).to_lowercase(), "run_id": r.run_id,
                "trigger": r.trigger.as_str(), "superseded_by": r.superseded_by,
                "buildbot_build": r.buildid, "last_error": r.last_error,
            })
        })
        .collect();
    // Items failing now, and those given up (dead letters), each with its
    // reason: one stuck build never hides behind the others.
    let (dead, retrying): (Vec<_>, Vec<_>) = b.state.retries().unwrap_or_default().into_iter().partition(|r| r.dead);
    let code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "ok": errors.is_empty(), "errors": errors, "health": h, "in_flight": in_flight,
            "retrying": retrying, "dead_letters": dead,
        })),
    )
}
