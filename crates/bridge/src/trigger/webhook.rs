//! Gitea's webhook: the signature check and the `issue_comment` payload.
//!
//! Gitea signs each delivery with `X-Gitea-Signature` = hex HMAC-SHA256 of
//! the raw body under the hook's secret (Forgejo sends the same as
//! `X-Forgejo-Signature`); the event is `X-Gitea-Event` (`issue_comment`
//! for comments). Payload fields as Gitea's `api.IssueCommentPayload`:
//! `action`, `comment{id, body, user{login}, created_at}`,
//! `issue{number, pull_request}`, `repository{full_name}`, `is_pull`.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Deserialize;

use super::{CommentEvent, Via};
use crate::config::RepoName;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Whether `signature` (hex, as Gitea sends it) is the HMAC-SHA256 of
/// `body` under `secret`. The comparison is constant-time (`hmac`'s
/// `verify_slice`); a signature that is not hex is false.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The hex signature Gitea would send for `body` (tests sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Deserialize)]
struct Payload {
    action: String,
    comment: PayloadComment,
    issue: PayloadIssue,
    repository: PayloadRepo,
    #[serde(default)]
    is_pull: bool,
}

#[derive(Deserialize)]
struct PayloadComment {
    id: u64,
    body: String,
    user: PayloadUser,
    created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct PayloadUser {
    login: String,
}

#[derive(Deserialize)]
struct PayloadIssue {
    number: u64,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct PayloadRepo {
    full_name: String,
}

/// What a delivery means to the bridge.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A new comment on a pull request.
    Comment(CommentEvent),
    /// Anything else (another event, an edit, an issue comment): why it is ignored.
    Ignored(String),
}

/// Reads a verified delivery of event `event`.
///
/// # Errors
/// A message saying what is wrong with the payload (the caller answers 400).
pub fn parse(event: &str, body: &[u8]) -> Result<Delivery, String> {
    if event != "issue_comment" {
        return Ok(Delivery::Ignored(format!("event {event:?} is not issue_comment")));
    }
    let p: Payload = serde_json::from_slice(body).map_err(|e| format!("not an issue_comment payload: {e}"))?;
    if p.action != "created" {
        return Ok(Delivery::Ignored(format!(
            "comment action {:?} (only created counts)",
            p.action
        )));
    }
    if !p.is_pull && p.issue.pull_request.as_ref().is_none_or(|v| v.is_null()) {
        return Ok(Delivery::Ignored("a comment on an issue, not a pull request".into()));
    }
    let Some(repo) = RepoName::parse(&p.repository.full_name) else {
        return Err(format!("repository {:?} is not owner/name", p.repository.full_name));
    };
    Ok(Delivery::Comment(CommentEvent {
        repo,
        pr: p.issue.number,
        comment_id: p.comment.id,
        author: p.comment.user.login,
        body: p.comment.body,
        created_at: p.comment.created_at,
        via: Via::Webhook,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"action":"created","comment":{"id":7,"body":"!testme","user":{"login":"maintainer"},"created_at":"2026-12-06T04:00:00Z"},"issue":{"number":3,"pull_request":{"merged":false}},"repository":{"full_name":"recipes/static-site"},"is_pull":true}"#;

    #[test]
    fn signatures_verify_only_for_the_exact_body_and_secret() {
        let sig = sign(b"hook-secret", BODY.as_bytes());
        assert_eq!(sig.len(), 64);
        assert!(verify(b"hook-secret", BODY.as_bytes(), &sig));
        assert!(!verify(b"other", BODY.as_bytes(), &sig));
        assert!(!verify(
            b"hook-secret",
            BODY.replace("!testme", "!testme ").as_bytes(),
            &sig
        ));
        assert!(!verify(b"hook-secret", BODY.as_bytes(), ""));
        assert!(!verify(b"hook-secret", BODY.as_bytes(), "zz"));
        assert!(!verify(b"hook-secret", BODY.as_bytes(), &sig[..62]));
    }

    #[test]
    fn comment_payloads_become_events() {
        let Delivery::Comment(c) = parse("issue_comment", BODY.as_bytes()).unwrap() else {
            panic!("not a comment")
        };
        assert_eq!((c.pr, c.comment_id, c.author.as_str()), (3, 7, "maintainer"));
        assert_eq!(c.repo.to_string(), "recipes/static-site");
        assert!(matches!(parse("push", b"{}").unwrap(), Delivery::Ignored(_)));
        let edited = BODY.replace("\"created\"", "\"edited\"");
        assert!(matches!(
            parse("issue_comment", edited.as_bytes()).unwrap(),
            Delivery::Ignored(_)
        ));
        let issue = BODY
            .replace(r#"{"merged":false}"#, "null")
            .replace("\"is_pull\":true", "\"is_pull\":false");
        assert!(matches!(
            parse("issue_comment", issue.as_bytes()).unwrap(),
            Delivery::Ignored(_)
        ));
        assert!(parse("issue_comment", b"{not json")
            .unwrap_err()
            .contains("not an issue_comment payload"));
    }
}
