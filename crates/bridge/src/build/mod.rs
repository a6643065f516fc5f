//! A build's life on Buildbot, as the bridge drives it: forced through the
//! force scheduler ([`Bridge::start_builds`], retried with backoff while
//! Buildbot is away, never forced twice), followed by polling its build
//! request and build ([`Bridge::follow_builds`]), stopped when a newer
//! `!testme` supersedes it, and reported when it ends ([`crate::report`]).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::bridge::{backoff, Bridge};
use crate::buildbot::BuildbotError;
use crate::gitea::StatusState;
use crate::retry::{CallError, Kind};
use crate::state::{BuildRow, Item, Phase, Trigger};

/// The tag a build's Buildbot reason carries, by which a force whose answer
/// was lost is found again.
pub fn reason_tag(row: &BuildRow) -> String {
    format!("[cc-ci build {} run {}]", row.id, row.run_id)
}

fn properties(row: &BuildRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("clone_url".into(), json!(row.clone_url));
    m.insert("recipe".into(), json!(row.repo.name));
    m.insert("head_sha".into(), json!(row.head_sha));
    m.insert("fetch_ref".into(), json!(row.fetch_ref));
    m.insert("base_branch".into(), json!(row.base_branch));
    m.insert("pr".into(), json!(row.pr));
    m.insert(
        "comment_id".into(),
        json!(row.comment_id.map(|c| c.to_string()).unwrap_or_default()),
    );
    m.insert("run_id".into(), json!(row.run_id));
    m.insert("trigger".into(), json!(row.trigger.as_str()));
    m.insert("quick".into(), json!(row.quick));
    m
}

/// Backoff of forcing: 2 s doubling, at most a minute.
const FORCE_BACKOFF: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(60));

impl Bridge {
    /// Forces every build in phase `starting` whose retry time has come.
    pub async fn start_builds(&self) {
        let rows = match self.state.builds_in(&[Phase::Starting]) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let now = crate::state::now();
        for row in rows {
            if row.superseded_by.is_some() || row.next_attempt_at > now {
                continue;
            }
            self.start(&row).await;
        }
    }

    async fn start(&self, row: &BuildRow) {
        let tag = reason_tag(row);
        // A force sent before (its answer lost: Buildbot went away, or the
        // bridge stopped) may have been taken: look before forcing again.
        let found = if row.force_sent {
            self.buildbot.find_by_reason(&tag).await
        } else {
            Ok(None)
        };
        let forced = match found {
            Ok(Some(ids)) => Ok(ids),
            Ok(None) => {
                if let Err(e) = self.state.force_sent(row.id) {
                    tracing::error!("{e}");
                    return;
                }
                let reason = format!(
                    "{tag} {}{} at {} ({})",
                    row.repo,
                    if row.pr > 0 {
                        format!("#{}", row.pr)
                    } else {
                        String::new()
                    },
                    &row.head_sha[..12.min(row.head_sha.len())],
                    row.trigger.as_str()
                );
                self.buildbot
                    .force(&self.config.scheduler, &self.config.builder, &reason, &properties(row))
                    .await
            }
            Err(e) => Err(e),
        };
        match forced {
            Ok((bsid, brid)) => {
                tracing::info!(
                    "{}#{}: build {} forced on Buildbot: buildset {bsid}, request {brid} (run {})",
                    row.repo,
                    row.pr,
                    row.id,
                    row.run_id
                );
                self.health_buildbot_error(None);
                if let Err(e) = self.state.queued(row.id, bsid, brid) {
                    tracing::error!("{e}");
                }
                if row.trigger == Trigger::TestMe {
                    self.want_status(
                        row.id,
                        StatusState::Pending,
                        "queued: waiting for a free worker",
                        &self.buildbot.request_url(brid),
                    );
                }
            }
            Err(e) if e.retryable() => {
                let wait = backoff(FORCE_BACKOFF.0, row.attempts, FORCE_BACKOFF.1);
                tracing::warn!(
                    "{}#{}: build {} not started: {e}; trying again in {:.0} s",
                    row.repo,
                    row.pr,
                    row.id,
                    wait.as_secs_f64()
                );
                self.health_buildbot_error(Some(e.to_string()));
                let _ = self
                    .state
                    .force_failed(row.id, &e.to_string(), crate::state::now() + wait.as_secs_f64());
                if row.trigger == Trigger::TestMe {
                    self.want_status(
                        row.id,
                        StatusState::Error,
                        &format!("cannot start the build, retrying: {e}"),
                        &self.config.buildbot_public_url,
                    );
                }
            }
            Err(e) => {
                tracing::error!("{}#{}: build {} refused by Buildbot: {e}", row.repo, row.pr, row.id);
                let _ = self.state.note_error(row.id, &e.to_string());
                let _ = self.state.set_phase(row.id, Phase::Reporting);
            }
        }
    }

    /// One look at every build in flight: superseded ones stopped, new
    /// builds noted (status `running` with the live log), ended ones
    /// reported. Each build is its own item ([`crate::retry`]): one that
    /// fails waits for its own retry while the others go on.
    pub async fn follow_builds(&self) {
        self.cancel_superseded().await;
        let rows = match self.state.builds_in(&[Phase::Queued, Phase::Running]) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for row in rows {
            let item = Item::Follow(row.id);
            if !self.state.due(item).unwrap_or(false) {
                continue;
            }
            match self.follow(&row).await {
                Ok(()) => {
                    let _ = self.state.succeeded(item);
                }
                Err(e) => {
                    let e = CallError::from(e);
                    if e.kind() == Kind::Transient {
                        self.health_buildbot_error(Some(e.to_string()));
                    }
                    if let Some(why) = self.item_failed(item, &e) {
                        // Buildbot will not say how it ended: reported as an
                        // error, with the reason.
                        let _ = self
                            .state
                            .note_error(row.id, &format!("cannot follow it on Buildbot: {why}"));
                        let _ = self.state.set_phase(row.id, Phase::Reporting);
                    }
                }
            }
        }
        let reporting = match self.state.builds_in(&[Phase::Reporting]) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for row in reporting {
            let item = Item::Report(row.id);
            if !self.state.due(item).unwrap_or(false) {
                continue;
            }
            match self.report(&row).await {
                Ok(()) => {
                    let _ = self.state.succeeded(item);
                    let _ = self.state.set_phase(row.id, Phase::Done);
                }
                Err(e) => {
                    if let Some(why) = self.item_failed(item, &e) {
                        let _ = self
                            .state
                            .note_error(row.id, &format!("its report was given up: {why}"));
                        let _ = self.state.set_phase(row.id, Phase::Dead);
                    }
                }
            }
        }
    }

    /// Follows build `row`'s request until it is over: its *last* build may
    /// come after others that ended in RETRY (worker lost) and were queued
    /// again, so the request's own `complete` decides, never a build's.
    async fn follow(&self, row: &BuildRow) -> Result<(), BuildbotError> {
        let Some(brid) = row.brid else { return Ok(()) };
        let request = self.buildbot.buildrequest(brid).await?;
        let builds = self.buildbot.builds_of(brid).await?;
        self.health_buildbot_error(None);
        let build = builds.iter().max_by_key(|b| b.buildid);
        if let Some(b) = build {
            if row.buildid != Some(b.buildid) {
                if let Some(earlier) = row.buildid {
                    tracing::info!(
                        "{}#{}: build {}: Buildbot build {earlier} ended without finishing (retry); \
                         its request runs again as build {}",
                        row.repo,
                        row.pr,
                        row.id,
                        b.buildid
                    );
                }
                tracing::info!(
                    "{}#{}: build {} runs as Buildbot build {} ({})",
                    row.repo,
                    row.pr,
                    row.id,
                    b.buildid,
                    self.buildbot.build_url(b.builderid, b.number)
                );
                let _ = self.state.running(row.id, b.buildid, b.builderid, b.number);
                if row.trigger == Trigger::TestMe && row.superseded_by.is_none() {
                    self.want_status(
                        row.id,
                        StatusState::Pending,
                        "running ccci test",
                        &self.buildbot.build_url(b.builderid, b.number),
                    );
                }
            }
        }
        let over = request.complete && build.is_none_or(|b| b.complete);
        if over {
            let next = if row.superseded_by.is_some() {
                Phase::Done
            } else {
                Phase::Reporting
            };
            let _ = self.state.set_phase(row.id, next);
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn cancel_superseded(&self) {
        let rows = match self.state.cancels_pending() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for row in rows {
            let item = Item::Cancel(row.id);
            if !self.state.due(item).unwrap_or(false) {
                continue;
            }
            let reason = format!(
                "superseded by a newer !testme (cc-ci build {})",
                row.superseded_by.unwrap_or_default()
            );
            match self.cancel(&row, &reason).await {
                Ok(()) => {
                    tracing::info!("build {}: stopped on Buildbot ({reason})", row.id);
                    let _ = self.state.succeeded(item);
                    let _ = self.state.cancel_done(row.id);
                }
                Err(e) => {
                    let e = CallError::from(e);
                    if e.kind() == Kind::Transient {
                        self.health_buildbot_error(Some(e.to_string()));
                    }
                    if self.item_failed(item, &e).is_some() {
                        let _ = self.state.cancel_done(row.id);
                    }
                }
            }
        }
    }

    async fn cancel(&self, row: &BuildRow, reason: &str) -> Result<(), BuildbotError> {
        let brid = match row.brid {
            Some(b) => b,
            None => match self.buildbot.find_by_reason(&reason_tag(row)).await? {
                Some((bsid, brid)) => {
                    let _ = self.state.queued(row.id, bsid, brid);
                    brid
                }
                // Never taken by Buildbot: nothing to stop.
                None => {
                    let _ = self.state.set_phase(row.id, Phase::Done);
                    return Ok(());
                }
            },
        };
        let request = self.buildbot.buildrequest(brid).await?;
        if request.complete {
            return Ok(());
        }
        let builds = self.buildbot.builds_of(brid).await?;
        match builds.iter().filter(|b| !b.complete).max_by_key(|b| b.buildid) {
            Some(b) => self.buildbot.stop_build(b.buildid, reason).await,
            None if !request.claimed => self.buildbot.cancel_request(brid, reason).await,
            // Claimed but no build yet: the next look finds it.
            None => Err(BuildbotError::Unreachable {
                url: self.buildbot.url().into(),
                detail: format!("request {brid} is claimed but its build is not visible yet"),
            }),
        }
    }
}
