//! Polling, the primary trigger: every `poll_interval` each enrolled
//! repository's comments since its cursor (at first the repository's
//! enrolment, [`Bridge::enrolled_at`]) are read, and those on pull requests go to
//! [`Bridge::on_comment`]. A repository Gitea does not know is an error in
//! the log and on `/status`, never silently skipped; a repository that
//! fails backs off on its own while the others are polled every interval.

use chrono::{TimeZone, Utc};

use super::{CommentEvent, Via};
use crate::bridge::Bridge;

/// How far back each poll reaches before its cursor, seconds: comments
/// are stamped in whole seconds, and one may land while a poll runs.
/// Comments read twice are claimed once. The cursor itself is Gitea's
/// clock (the `Date` of its answer), so no skew between the bridge's host
/// and Gitea's needs covering.
pub const OVERLAP_S: f64 = 5.0;

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Comments read, over all repositories.
    pub comments: usize,
    /// Repositories that could not be polled, with why.
    pub failed: Vec<String>,
}

impl Bridge {
    /// One poll of every enrolled repository (and the comments left
    /// pending by an earlier one).
    pub async fn poll_once(&self) -> PollReport {
        self.resume_pending_comments().await;
        let mut report = PollReport::default();
        for repo in self.config.repos.clone() {
            if !self.repo_due(&repo) {
                continue;
            }
            // The cursor is Gitea's clock, never the bridge's: comments are
            // stamped by Gitea, so a skew between the two hosts cannot make
            // a poll skip one.
            let gitea_now = match self.gitea.repo_exists(&repo).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    let why = format!(
                        "{repo} is enrolled but Gitea does not know it (404): fix `repos` in {}",
                        self.config.path.display()
                    );
                    tracing::error!("{why}");
                    self.health_repo(&repo, Some(why.clone()));
                    report.failed.push(why);
                    continue;
                }
                Err(e) => {
                    let why = format!("{repo}: {e}");
                    tracing::warn!("poll: {why}");
                    self.health_repo(&repo, Some(why.clone()));
                    self.health_gitea_error(Some(e.to_string()));
                    report.failed.push(why);
                    continue;
                }
            };
            let started = gitea_now.timestamp() as f64;
            let cursor = match self.state.cursor(&repo) {
                Ok(c) => c.unwrap_or_else(|| self.enrolled_at(&repo)),
                Err(e) => {
                    tracing::error!("{e}");
                    continue;
                }
            };
            let since = Utc
                .timestamp_opt((cursor - OVERLAP_S).max(0.0) as i64, 0)
                .single()
                .unwrap_or_else(Utc::now);
            let comments = match self.gitea.comments_since(&repo, since).await {
                Ok(c) => c,
                Err(e) => {
                    let why = format!("{repo}: {e}");
                    tracing::warn!("poll: {why}");
                    self.health_repo(&repo, Some(why.clone()));
                    report.failed.push(why);
                    continue;
                }
            };
            report.comments += comments.len();
            for c in comments {
                let Some(pr) = c.pull_number() else { continue };
                let ev = CommentEvent {
                    repo: repo.clone(),
                    pr,
                    comment_id: c.id,
                    author: c.user.login,
                    body: c.body,
                    created_at: c.created_at,
                    via: Via::Poll,
                };
                self.on_comment(ev).await;
            }
            if let Err(e) = self.state.set_cursor(&repo, started) {
                tracing::error!("{e}");
            }
            self.health_repo(&repo, None);
            self.gitea_ok();
        }
        if report.failed.is_empty() {
            self.health_gitea_error(None);
        }
        self.health_polled();
        report
    }
}
