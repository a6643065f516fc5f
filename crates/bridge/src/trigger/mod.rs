//! What starts a build: a `!testme` comment on a pull request of an
//! enrolled repository, seen by polling ([`poll`], the primary trigger) or
//! by Gitea's webhook ([`webhook`], optional). Both hand the comment to
//! [`Bridge::on_comment`], which claims it in the state first: a comment
//! seen by both starts one build.
//!
//! A claimed comment is then: authorised (org membership), answered with
//! the syntax when malformed, or turned into a build of the PR's head, which
//! cancels the PR's older build still queued or running (the same head twice
//! starts nothing new). A comment whose handling was cut short (Gitea away,
//! the bridge stopped) stays `pending` and is taken up again by the next poll.

pub mod command;
pub mod poll;
pub mod webhook;

use chrono::{DateTime, Utc};

use crate::bridge::Bridge;
use crate::config::RepoName;
use crate::retry::{CallError, Kind};
use crate::state::{Claim, Item, NewBuild, PendingComment, Trigger};
use command::Parsed;

/// How a comment reached the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A poll of the repository's comments.
    Poll,
    /// Gitea's webhook.
    Webhook,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Poll => "poll",
            Via::Webhook => "webhook",
        }
    }
}

/// A comment on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentEvent {
    /// The repository.
    pub repo: RepoName,
    /// The pull request.
    pub pr: u64,
    /// The comment's id.
    pub comment_id: u64,
    /// Its author.
    pub author: String,
    /// Its Markdown.
    pub body: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// How it came.
    pub via: Via,
}

/// What became of a comment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "handled", content = "detail", rename_all = "kebab-case")]
pub enum Handled {
    /// Not for cc-ci, or not to be read (why).
    Ignored(String),
    /// Already claimed (by the other trigger, or an earlier poll).
    Duplicate,
    /// Claimed, and what came of it (`build 4`, `not a member` ...).
    Claimed(String),
}

fn command_word(p: &Parsed) -> Option<String> {
    match p {
        Parsed::NotACommand => None,
        Parsed::TestMe(t) if t.quick => Some("!testme --quick".into()),
        Parsed::TestMe(_) => Some("!testme".into()),
        Parsed::Malformed(why) => Some(format!("malformed: {why}")),
    }
}

impl Bridge {
    /// Takes a comment from either trigger. Never fails: what cannot be
    /// done now is left `pending` and retried by the next poll.
    pub async fn on_comment(&self, ev: CommentEvent) -> Handled {
        if !self.config.enrolled(&ev.repo) {
            return Handled::Ignored(format!("{} is not an enrolled repository", ev.repo));
        }
        let since = self.enrolled_at(&ev.repo);
        if (ev.created_at.timestamp() as f64) < since.floor() {
            return Handled::Ignored(if since > self.first_start {
                format!("made before {} was enrolled", ev.repo)
            } else {
                "made before the bridge first started".into()
            });
        }
        if self.bot_login.get().map(String::as_str) == Some(ev.author.as_str()) {
            return Handled::Ignored("the bot's own comment".into());
        }
        let parsed = command::parse(&ev.body);
        let Some(word) = command_word(&parsed) else {
            return Handled::Ignored("not a command".into());
        };
        // In hand before it is claimed: a poll resuming pending comments
        // meanwhile leaves it alone (one claim, one outcome, one reply).
        let Some(_hand) = self.take_in_hand(ev.comment_id) else {
            tracing::info!(
                "{}#{}: comment {} via {}: in hand already (the other trigger handles it)",
                ev.repo,
                ev.pr,
                ev.comment_id,
                ev.via.as_str()
            );
            return Handled::Duplicate;
        };
        match self
            .state
            .claim_comment(ev.comment_id, &ev.repo, ev.pr, &ev.author, &word, ev.via.as_str())
        {
            Ok(Claim::Seen) => {
                tracing::info!(
                    "{}#{}: comment {} via {}: already claimed (one build per comment)",
                    ev.repo,
                    ev.pr,
                    ev.comment_id,
                    ev.via.as_str()
                );
                return Handled::Duplicate;
            }
            Ok(Claim::New) => {}
            Err(e) => {
                tracing::error!("{e}");
                return Handled::Ignored(format!("the state cannot be written: {e}"));
            }
        }
        tracing::info!(
            "{}#{}: comment {} by {} via {}: {word}",
            ev.repo,
            ev.pr,
            ev.comment_id,
            ev.author,
            ev.via.as_str()
        );
        let pending = PendingComment {
            id: ev.comment_id,
            repo: ev.repo,
            pr: ev.pr,
            author: ev.author,
            command: word,
        };
        match self.handle_claimed(&pending).await {
            Some(outcome) => Handled::Claimed(outcome),
            None => Handled::Claimed("pending: retried at the next poll".into()),
        }
    }

    /// Handles comments claimed earlier whose handling did not finish,
    /// each when its retry is due ([`Item::Comment`]); one the webhook
    /// holds right now is left to it.
    pub async fn resume_pending_comments(&self) {
        let pending = match self.state.pending_comments() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for c in pending {
            if !self.state.due(Item::Comment(c.id)).unwrap_or(false) {
                continue;
            }
            let Some(_hand) = self.take_in_hand(c.id) else { continue };
            // Its outcome may have been written since the list was read.
            if !matches!(self.state.comment(c.id), Ok(Some(o)) if o == "pending") {
                continue;
            }
            self.handle_claimed(&c).await;
        }
    }

    /// Handles a claimed comment; `Some(outcome)` when it is done with
    /// (recorded), `None` when it must be tried again (its retry waits; a
    /// refused one is given up after [`crate::retry::GIVE_UP_AFTER`]).
    async fn handle_claimed(&self, c: &PendingComment) -> Option<String> {
        let item = Item::Comment(c.id);
        let outcome = match self.decide(c).await {
            Ok(o) => {
                let _ = self.state.succeeded(item);
                o
            }
            Err(e) => {
                if matches!(e, CallError::Gitea(_)) && e.kind() == Kind::Transient {
                    self.health_gitea_error(Some(e.to_string()));
                }
                match self.item_failed(item, &e) {
                    Some(why) => (format!("given up: {why}"), None),
                    None => return None,
                }
            }
        };
        tracing::info!("{}#{}: comment {}: {}", c.repo, c.pr, c.id, outcome.0);
        if let Err(e) = self.state.comment_outcome(c.id, &outcome.0, outcome.1) {
            tracing::error!("{e}");
        }
        Some(outcome.0)
    }

    async fn decide(&self, c: &PendingComment) -> Result<(String, Option<i64>), CallError> {
        let member = self.gitea.is_member(&self.config.org, &c.author).await?;
        if !member {
            return Ok((
                format!("ignored: {} is not a member of {}", c.author, self.config.org),
                None,
            ));
        }
        if let Some(why) = c.command.strip_prefix("malformed: ") {
            let body = format!("@{}: {why}. {}", c.author, command::SYNTAX);
            self.gitea.create_comment(&c.repo, c.pr, &body).await?;
            return Ok((format!("replied with the syntax ({why})"), None));
        }
        let quick = c.command.contains("--quick");
        let pr = self.gitea.pull(&c.repo, c.pr).await?;
        if pr.state != "open" {
            return Ok((format!("ignored: the pull request is {}", pr.state), None));
        }
        let base_repo = pr.base.repo.as_ref().map(|r| r.clone_url.clone());
        let clone_url = match base_repo {
            Some(u) => u,
            None => self.gitea.clone_url(&c.repo).await?,
        };
        let _one_at_a_time = self.enqueue.lock().await;
        let flying = self.state.in_flight_for(&c.repo, c.pr)?;
        if let Some(same) = flying.iter().find(|b| b.head_sha == pr.head.sha) {
            return Ok((
                format!(
                    "nothing new: build {} of {} is already queued or running",
                    same.id,
                    &pr.head.sha[..12.min(pr.head.sha.len())]
                ),
                Some(same.id),
            ));
        }
        // The base repository has the PR's head at refs/pull/N/head, and the
        // release tags the upgrade base comes from. The new build and the
        // older ones it supersedes are written in one transaction.
        let new = NewBuild {
            repo: c.repo.clone(),
            pr: c.pr,
            head_sha: pr.head.sha.clone(),
            base_branch: pr.base.name.clone(),
            clone_url,
            fetch_ref: format!("refs/pull/{}/head", c.pr),
            comment_id: Some(c.id),
            requested_by: Some(c.author.clone()),
            quick,
            trigger: Trigger::TestMe,
            run_id: self.new_run_id()?,
        };
        let old: Vec<(i64, String, String)> = flying
            .iter()
            .map(|b| {
                let (description, target) = self.superseded_status(b, &pr.head.sha);
                (b.id, description, target)
            })
            .collect();
        let id = self.state.insert_build_superseding(&new, &old)?;
        for o in &flying {
            self.superseded(o, id, &pr.head.sha);
        }
        self.want_status(
            id,
            crate::gitea::StatusState::Pending,
            "queued: waiting for Buildbot",
            &self.config.buildbot_public_url,
        );
        Ok((format!("started build {id}"), Some(id)))
    }
}
