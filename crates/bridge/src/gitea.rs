//! The Gitea (or Forgejo) API v1, as much as the bridge uses: comments,
//! pull requests, org membership, commit statuses, comment attachments,
//! tags. Paths and fields are Gitea's swagger (`/api/swagger`), measured
//! against Gitea 1.26.0 (`docs/forges.md`, "Gitea 1.26.0").
//!
//! Authentication is `Authorization: token <t>` (the header is marked
//! sensitive, so it never reaches a debug print).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::{RepoName, Secret};

/// A Gitea call that did not work.
#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    /// Gitea could not be reached or answered 5xx: worth retrying.
    #[error("Gitea at {url} is unreachable: {detail}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        detail: String,
    },
    /// Gitea answered with an error status.
    #[error("Gitea answered {status} to {method} {url}: {body}")]
    Status {
        /// The method.
        method: &'static str,
        /// What was asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer was not what the API documents.
    #[error("Gitea's answer to {url} is not what the API documents: {detail}")]
    Decode {
        /// What was asked.
        url: String,
        /// What did not parse.
        detail: String,
    },
}

impl GiteaError {
    /// Whether trying again later may work (unreachable, 5xx, 429).
    pub fn retryable(&self) -> bool {
        match self {
            GiteaError::Unreachable { .. } => true,
            GiteaError::Status { status, .. } => *status >= 500 || *status == 429,
            GiteaError::Decode { .. } => false,
        }
    }

    /// Whether Gitea said 404.
    pub fn not_found(&self) -> bool {
        matches!(self, GiteaError::Status { status: 404, .. })
    }
}

/// A user, as the API shows one.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// The login name.
    pub login: String,
}

/// A comment on an issue or pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    /// The comment id (unique on the instance).
    pub id: u64,
    /// Markdown.
    pub body: String,
    /// The author.
    pub user: User,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// `…/pulls/<n>` for a comment on a pull request, else empty.
    #[serde(default)]
    pub pull_request_url: String,
    /// `…/issues/<n>` for a comment on an issue, else empty.
    #[serde(default)]
    pub issue_url: String,
}

impl Comment {
    /// The pull request number, for a comment on a pull request.
    pub fn pull_number(&self) -> Option<u64> {
        if self.pull_request_url.is_empty() {
            return None;
        }
        self.pull_request_url.rsplit('/').next()?.parse().ok()
    }
}

/// A repository, as pull requests show it.
#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    /// HTTP(S) clone URL.
    pub clone_url: String,
}

/// One side of a pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    /// The branch name.
    #[serde(rename = "ref")]
    pub name: String,
    /// Its commit (40 hex).
    pub sha: String,
    /// The repository (absent for a deleted fork).
    #[serde(default)]
    pub repo: Option<Repository>,
}

/// A pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    /// The proposed side.
    pub head: Branch,
    /// The side it merges into.
    pub base: Branch,
}

/// A tag.
#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    /// The tag's name.
    pub name: String,
    /// The commit it points at.
    pub commit: TagCommit,
}

/// The commit of a [`Tag`].
#[derive(Debug, Clone, Deserialize)]
pub struct TagCommit {
    /// 40 hex.
    pub sha: String,
}

/// A comment attachment.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// Its id.
    pub id: u64,
    /// Its file name.
    pub name: String,
    /// Where it is served.
    pub browser_download_url: String,
}

/// A commit status's state (Gitea's `CommitStatusState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    /// Queued or running.
    Pending,
    /// Green.
    Success,
    /// The recipe failed.
    Failure,
    /// The CI failed, or the run was cancelled.
    Error,
}

impl StatusState {
    /// The API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }

    /// Parses the API's word.
    pub fn parse(s: &str) -> Option<StatusState> {
        Some(match s {
            "pending" => StatusState::Pending,
            "success" => StatusState::Success,
            "failure" => StatusState::Failure,
            "error" => StatusState::Error,
            _ => return None,
        })
    }
}

/// A commit status to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    /// The state.
    pub state: StatusState,
    /// Where to look (the build's page).
    pub target_url: String,
    /// One line (Gitea keeps 255 characters).
    pub description: String,
    /// The context, e.g. `cc-ci/testme`.
    pub context: String,
}

/// A Gitea API client acting as the bot.
#[derive(Clone)]
pub struct Gitea {
    base: String,
    http: reqwest::Client,
    /// Gitea's clock minus ours, seconds, from the `Date` of its last answer.
    skew: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// How long one API call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Gitea {
    /// A client of the Gitea at `base` (no trailing `/`) with the bot's token.
    ///
    /// # Errors
    /// When the HTTP client cannot be made (no TLS roots).
    pub fn new(base: &str, token: &Secret) -> Result<Gitea, GiteaError> {
        let mut auth = HeaderValue::from_str(&format!("token {}", token.expose())).map_err(|_| GiteaError::Decode {
            url: base.into(),
            detail: "the token holds characters a header cannot carry".into(),
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = crate::http::client_builder()
            .default_headers(headers)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| GiteaError::Unreachable {
                url: base.into(),
                detail: format!("cannot make an HTTP client: {e}"),
            })?;
        Ok(Gitea {
            base: base.trim_end_matches('/').into(),
            http,
            skew: std::sync::Arc::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send(
        &self,
        method: &'static str,
        rb: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, GiteaError> {
        let resp = rb.send().await.map_err(|e| GiteaError::Unreachable {
            url: url.into(),
            detail: crate::http::chain(&e),
        })?;
        if let Some(date) = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        {
            let skew = date.timestamp() - Utc::now().timestamp();
            self.skew.store(skew, std::sync::atomic::Ordering::Relaxed);
        }
        let status = resp.status();
        if status.is_success() || status == StatusCode::NO_CONTENT {
            return Ok(resp);
        }
        let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
        if status.is_server_error() {
            return Err(GiteaError::Unreachable {
                url: url.into(),
                detail: format!("{status}: {body}"),
            });
        }
        Err(GiteaError::Status {
            method,
            url: url.into(),
            status: status.as_u16(),
            body,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, url: &str, resp: reqwest::Response) -> Result<T, GiteaError> {
        resp.json().await.map_err(|e| GiteaError::Decode {
            url: url.into(),
            detail: e.to_string(),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, GiteaError> {
        let url = self.url(path);
        let resp = self.send("GET", self.http.get(&url), &url).await?;
        self.json(&url, resp).await
    }

    /// `GET /user`: who the token belongs to.
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn whoami(&self) -> Result<User, GiteaError> {
        self.get("/user").await
    }

    /// Gitea's clock now, in whole seconds: ours moved by the skew the
    /// `Date` header of its last answer showed (ours alone before any
    /// answer). Comments are stamped by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        let skew = self.skew.load(std::sync::atomic::Ordering::Relaxed);
        Utc::now() + chrono::Duration::seconds(skew)
    }

    /// `GET /repos/{o}/{r}`: `Ok(Some(now))` when it exists, with Gitea's
    /// clock at the answer ([`Gitea::now`]), `Ok(None)` on 404.
    ///
    /// # Errors
    /// [`GiteaError`] on anything but 200 and 404.
    pub async fn repo_exists(&self, repo: &RepoName) -> Result<Option<DateTime<Utc>>, GiteaError> {
        match self.get::<serde_json::Value>(&format!("/repos/{repo}")).await {
            Ok(_) => Ok(Some(self.now())),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every comment of the repository's issues and pull requests updated at
    /// or after `since` (`GET /repos/{o}/{r}/issues/comments?since=`, paged
    /// by 50).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn comments_since(&self, repo: &RepoName, since: DateTime<Utc>) -> Result<Vec<Comment>, GiteaError> {
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = self.url(&format!("/repos/{repo}/issues/comments"));
        let mut out = Vec::new();
        for page in 1.. {
            let query = [
                ("since", since.clone()),
                ("limit", "50".into()),
                ("page", page.to_string()),
            ];
            let resp = self.send("GET", self.http.get(&url).query(&query), &url).await?;
            let batch: Vec<Comment> = self.json(&url, resp).await?;
            let n = batch.len();
            out.extend(batch);
            if n < 50 || page >= 100 {
                break;
            }
        }
        Ok(out)
    }

    /// The comments of one pull request (`GET /repos/{o}/{r}/issues/{n}/comments`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn pr_comments(&self, repo: &RepoName, pr: u64) -> Result<Vec<Comment>, GiteaError> {
        self.get(&format!("/repos/{repo}/issues/{pr}/comments")).await
    }

    /// `GET /repos/{o}/{r}/pulls/{n}`.
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn pull(&self, repo: &RepoName, pr: u64) -> Result<PullRequest, GiteaError> {
        self.get(&format!("/repos/{repo}/pulls/{pr}")).await
    }

    /// Whether `user` is a member of `org` (`GET /orgs/{org}/members/{user}`:
    /// 204 yes, 404 no; the bot must itself be a member, or Gitea redirects
    /// to the public-members check, which is refused here as an error).
    ///
    /// # Errors
    /// [`GiteaError`] on any other answer.
    pub async fn is_member(&self, org: &str, user: &str) -> Result<bool, GiteaError> {
        let url = self.url(&format!("/orgs/{org}/members/{user}"));
        let resp = self.http.get(&url).send().await.map_err(|e| GiteaError::Unreachable {
            url: url.clone(),
            detail: crate::http::chain(&e),
        })?;
        match resp.status().as_u16() {
            204 => Ok(true),
            404 => Ok(false),
            s if s >= 500 => Err(GiteaError::Unreachable {
                url,
                detail: format!("{s}"),
            }),
            s => Err(GiteaError::Status {
                method: "GET",
                url,
                status: s,
                body: if (300..400).contains(&s) {
                    "a redirect: the bot's token must belong to a member of the organisation".into()
                } else {
                    resp.text().await.unwrap_or_default().chars().take(300).collect()
                },
            }),
        }
    }

    /// Posts a comment on issue or pull request `n`; returns it.
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn create_comment(&self, repo: &RepoName, n: u64, body: &str) -> Result<Comment, GiteaError> {
        let url = self.url(&format!("/repos/{repo}/issues/{n}/comments"));
        let resp = self
            .send(
                "POST",
                self.http.post(&url).json(&serde_json::json!({ "body": body })),
                &url,
            )
            .await?;
        self.json(&url, resp).await
    }

    /// Replaces a comment's body (`PATCH /repos/{o}/{r}/issues/comments/{id}`).
    ///
    /// # Errors
    /// [`GiteaError`] (404 when the comment was deleted).
    pub async fn edit_comment(&self, repo: &RepoName, id: u64, body: &str) -> Result<Comment, GiteaError> {
        let url = self.url(&format!("/repos/{repo}/issues/comments/{id}"));
        let resp = self
            .send(
                "PATCH",
                self.http.patch(&url).json(&serde_json::json!({ "body": body })),
                &url,
            )
            .await?;
        self.json(&url, resp).await
    }

    /// Attaches a file to a comment (`POST …/issues/comments/{id}/assets`,
    /// multipart field `attachment`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn attach(
        &self,
        repo: &RepoName,
        comment: u64,
        name: &str,
        bytes: Vec<u8>,
        mime: &str,
    ) -> Result<Attachment, GiteaError> {
        let url = self.url(&format!("/repos/{repo}/issues/comments/{comment}/assets?name={name}"));
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .map_err(|e| GiteaError::Decode {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new().part("attachment", part);
        let resp = self.send("POST", self.http.post(&url).multipart(form), &url).await?;
        self.json(&url, resp).await
    }

    /// A comment's attachments (`GET …/issues/comments/{id}/assets`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn attachments(&self, repo: &RepoName, comment: u64) -> Result<Vec<Attachment>, GiteaError> {
        self.get(&format!("/repos/{repo}/issues/comments/{comment}/assets"))
            .await
    }

    /// Deletes a comment attachment.
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn delete_attachment(&self, repo: &RepoName, comment: u64, id: u64) -> Result<(), GiteaError> {
        let url = self.url(&format!("/repos/{repo}/issues/comments/{comment}/assets/{id}"));
        self.send("DELETE", self.http.delete(&url), &url).await.map(|_| ())
    }

    /// Sets a commit status (`POST /repos/{o}/{r}/statuses/{sha}`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn set_status(&self, repo: &RepoName, sha: &str, status: &CommitStatus) -> Result<(), GiteaError> {
        let url = self.url(&format!("/repos/{repo}/statuses/{sha}"));
        self.send("POST", self.http.post(&url).json(status), &url)
            .await
            .map(|_| ())
    }

    /// The statuses of a commit, newest first (`GET …/commits/{sha}/statuses`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn statuses(&self, repo: &RepoName, sha: &str) -> Result<Vec<serde_json::Value>, GiteaError> {
        self.get(&format!("/repos/{repo}/commits/{sha}/statuses")).await
    }

    /// The repository's tags (`GET /repos/{o}/{r}/tags`, paged by 50).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<Tag>, GiteaError> {
        let mut out = Vec::new();
        for page in 1.. {
            let batch: Vec<Tag> = self.get(&format!("/repos/{repo}/tags?limit=50&page={page}")).await?;
            let n = batch.len();
            out.extend(batch);
            if n < 50 || page >= 20 {
                break;
            }
        }
        Ok(out)
    }

    /// The repository's clone URL (`GET /repos/{o}/{r}`).
    ///
    /// # Errors
    /// [`GiteaError`].
    pub async fn clone_url(&self, repo: &RepoName) -> Result<String, GiteaError> {
        let r: Repository = self.get(&format!("/repos/{repo}")).await?;
        Ok(r.clone_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_tell_pull_requests_from_issues() {
        let c: Comment = serde_json::from_str(
            r#"{"id":2,"body":"!testme","user":{"login":"a"},"created_at":"2026-12-06T03:55:02Z",
                "pull_request_url":"http://127.0.0.1:3000/recipes/static-site/pulls/12","issue_url":""}"#,
        )
        .unwrap();
        assert_eq!(c.pull_number(), Some(12));
        let i: Comment = serde_json::from_str(
            r#"{"id":3,"body":"x","user":{"login":"a"},"created_at":"2026-12-06T03:55:02Z",
                "pull_request_url":"","issue_url":"http://127.0.0.1:3000/recipes/static-site/issues/4"}"#,
        )
        .unwrap();
        assert_eq!(i.pull_number(), None);
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        let s = |status| GiteaError::Status {
            method: "GET",
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(s(503).retryable() && s(429).retryable());
        assert!(!s(404).retryable() && s(404).not_found());
        assert!(!s(403).retryable());
    }
}
