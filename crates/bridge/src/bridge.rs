//! The bridge: its clients, its state, what `/status` shows, and the loops
//! that run it (poll, start, follow, sweep) beside the HTTP server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::buildbot::Buildbot;
use crate::config::{Config, RepoName, Secret, Secrets};
use crate::gitea::{Gitea, StatusState};
use crate::state::{BuildRow, State, StateError};

/// The commit status context the bridge sets.
pub const CONTEXT: &str = "cc-ci/testme";

/// A bridge that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings or secrets.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The state database.
    #[error(transparent)]
    State(#[from] StateError),
    /// A client cannot be made.
    #[error("{0}")]
    Client(String),
}

/// What `/status` shows of one repository.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepoHealth {
    /// The last poll's problem, if it had one.
    pub error: Option<String>,
    /// Unix seconds of the last poll that read it.
    pub last_polled: Option<f64>,
}

/// What `/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Unix seconds the process started.
    pub started_at: f64,
    /// Unix seconds of the bridge's first start (older comments are never read).
    pub first_start: f64,
    /// Polls done since the process started.
    pub polls: u64,
    /// Unix seconds of the last poll.
    pub last_poll: Option<f64>,
    /// Each enrolled repository.
    pub repos: BTreeMap<String, RepoHealth>,
    /// Gitea's last problem, if any.
    pub gitea_error: Option<String>,
    /// Buildbot's last problem, if any.
    pub buildbot_error: Option<String>,
}

/// The bridge.
pub struct Bridge {
    /// Its settings.
    pub config: Config,
    /// The Gitea client (the bot).
    pub gitea: Gitea,
    /// The Buildbot client (the bridge's user).
    pub buildbot: Buildbot,
    /// Its state.
    pub state: State,
    /// The webhook's secret, when the webhook is on.
    pub webhook_secret: Option<Secret>,
    /// The bot's login (its own comments are never commands), once known.
    pub bot_login: Option<String>,
    /// Unix seconds of the first start.
    pub first_start: f64,
    /// Serialises the decision "which build of this PR is the live one".
    pub(crate) enqueue: tokio::sync::Mutex<()>,
    /// Wakes the start and follow loops early.
    pub(crate) wake: tokio::sync::Notify,
    health: Mutex<Health>,
    /// Consecutive failed Gitea writes (statuses, reports) and when to try again.
    gitea_gate: Mutex<(u32, std::time::Instant)>,
}

/// Backoff of Gitea writes while Gitea is away: 1 s doubling, at most a minute.
const GITEA_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

impl Bridge {
    /// A bridge from `config` and its `secrets`, with its state opened.
    /// The bot's login is asked of Gitea once (when Gitea answers).
    ///
    /// # Errors
    /// [`StartError`].
    pub async fn new(config: Config, secrets: Secrets) -> Result<Bridge, StartError> {
        let gitea =
            Gitea::new(&config.gitea_url, &secrets.gitea_token).map_err(|e| StartError::Client(e.to_string()))?;
        let buildbot = Buildbot::new(
            &config.buildbot_url,
            &config.buildbot_public_url,
            &config.buildbot_user,
            secrets.buildbot_password.clone(),
        )
        .map_err(|e| StartError::Client(e.to_string()))?;
        let state = State::open(&config.state_db)?;
        let first_start = state.first_start()?;
        let bot_login = match gitea.whoami().await {
            Ok(u) => Some(u.login),
            Err(e) => {
                tracing::warn!("cannot ask Gitea who the bot is: {e}");
                None
            }
        };
        let mut health = Health {
            started_at: crate::state::now(),
            first_start,
            ..Health::default()
        };
        for r in &config.repos {
            health.repos.insert(r.to_string(), RepoHealth::default());
        }
        Ok(Bridge {
            webhook_secret: secrets.webhook_secret,
            config,
            gitea,
            buildbot,
            state,
            bot_login,
            first_start,
            enqueue: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            health: Mutex::new(health),
            gitea_gate: Mutex::new((0, std::time::Instant::now())),
        })
    }

    fn health_mut(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what `/status` shows.
    pub fn health(&self) -> Health {
        self.health_mut().clone()
    }

    pub(crate) fn health_repo(&self, repo: &RepoName, error: Option<String>) {
        let mut h = self.health_mut();
        let e = h.repos.entry(repo.to_string()).or_default();
        if error.is_none() {
            e.last_polled = Some(crate::state::now());
        }
        e.error = error;
    }

    pub(crate) fn health_gitea_error(&self, error: Option<String>) {
        self.health_mut().gitea_error = error;
    }

    pub(crate) fn health_buildbot_error(&self, error: Option<String>) {
        self.health_mut().buildbot_error = error;
    }

    /// Whether Gitea writes may be tried now (not backing off).
    pub(crate) fn gitea_ready(&self) -> bool {
        let g = self.gitea_gate.lock().unwrap_or_else(|p| p.into_inner());
        std::time::Instant::now() >= g.1
    }

    /// A Gitea write failed for a reason that may pass: back off.
    pub(crate) fn gitea_failed(&self, error: &str) {
        let mut g = self.gitea_gate.lock().unwrap_or_else(|p| p.into_inner());
        let wait = backoff(GITEA_BACKOFF.0, g.0, GITEA_BACKOFF.1);
        g.0 += 1;
        g.1 = std::time::Instant::now() + wait;
        drop(g);
        tracing::warn!("Gitea: {error}; trying again in {:.0} s", wait.as_secs_f64());
        self.health_gitea_error(Some(error.to_string()));
    }

    /// A Gitea write worked: no more backing off.
    pub(crate) fn gitea_ok(&self) {
        let mut g = self.gitea_gate.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 > 0 {
            *g = (0, std::time::Instant::now());
            drop(g);
            self.health_gitea_error(None);
        }
    }

    pub(crate) fn health_polled(&self) {
        let mut h = self.health_mut();
        h.polls += 1;
        h.last_poll = Some(crate::state::now());
    }

    /// Sets the commit status build `id` should have; the work loop (woken)
    /// posts it, and keeps trying while Gitea is away.
    pub(crate) fn want_status(&self, id: i64, state: StatusState, description: &str, target: &str) {
        let description: String = description.chars().take(250).collect();
        if let Err(e) = self.state.want_status(id, state.as_str(), &description, target) {
            tracing::error!("{e}");
        }
        self.wake.notify_one();
    }

    /// Posts every commit status not yet posted (unless backing off from Gitea).
    pub(crate) async fn post_statuses(&self) {
        if !self.gitea_ready() {
            return;
        }
        let dirty = match self.state.dirty_statuses() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for s in dirty {
            let Some(state) = StatusState::parse(&s.state) else {
                continue;
            };
            let status = crate::gitea::CommitStatus {
                state,
                target_url: s.target_url.clone(),
                description: s.description.clone(),
                context: CONTEXT.into(),
            };
            match self.gitea.set_status(&s.repo, &s.sha, &status).await {
                Ok(()) => {
                    self.gitea_ok();
                    tracing::info!(
                        "{} {}: status {} \"{}\"",
                        s.repo,
                        &s.sha[..12.min(s.sha.len())],
                        s.state,
                        s.description
                    );
                    if let Err(e) = self.state.status_posted(&s) {
                        tracing::error!("{e}");
                    }
                }
                Err(e) if e.retryable() => {
                    self.gitea_failed(&format!("the status of build {} is not posted: {e}", s.build));
                    return;
                }
                Err(e) => {
                    tracing::error!("status of build {} refused by Gitea, dropped: {e}", s.build);
                    let _ = self.state.status_posted(&s);
                }
            }
        }
    }

    /// Marks `old` as replaced by build `new` (a newer `!testme` at
    /// `new_sha`): its status says so, and its stop on Buildbot is done by
    /// the follow loop.
    pub(crate) fn supersede(&self, old: &BuildRow, new: i64, new_sha: &str) -> Result<(), StateError> {
        self.state.supersede(old.id, new)?;
        tracing::info!(
            "{}#{}: build {} superseded by build {new} ({})",
            old.repo,
            old.pr,
            old.id,
            &new_sha[..12.min(new_sha.len())]
        );
        let target = match (old.builderid, old.number, old.brid) {
            (Some(b), Some(n), _) => self.buildbot.build_url(b, n),
            (_, _, Some(r)) => self.buildbot.request_url(r),
            _ => self.config.buildbot_public_url.clone(),
        };
        self.want_status(
            old.id,
            StatusState::Error,
            &format!(
                "cancelled: superseded by a newer !testme at {}",
                &new_sha[..8.min(new_sha.len())]
            ),
            &target,
        );
        Ok(())
    }

    /// Runs the loops and the HTTP server until SIGTERM or Ctrl-C.
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    pub async fn run(self: std::sync::Arc<Self>) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.listen).await?;
        tracing::info!(
            "bridge: {} repositories of {} on {}, polling every {:.1} s, webhook {}, Buildbot {}, listening on {}",
            self.config.repos.len(),
            self.config.gitea_url,
            self.config.org,
            self.config.poll_interval.as_secs_f64(),
            if self.webhook_secret.is_some() { "on" } else { "off" },
            self.config.buildbot_url,
            listener.local_addr()?
        );
        let server = axum::serve(listener, crate::server::router(self.clone()));
        let poll = tokio::spawn(poll_loop(self.clone()));
        let work = tokio::spawn(work_loop(self.clone()));
        let sweep = tokio::spawn(sweep_loop(self.clone()));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("bridge: stopping (state is kept; a restart takes up where this left off)");
        };
        let r = server.with_graceful_shutdown(stop).await;
        poll.abort();
        work.abort();
        sweep.abort();
        r
    }
}

/// Doubles `base` for each consecutive failure, up to `cap`.
pub fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    base.saturating_mul(2u32.saturating_pow(failures.min(16))).min(cap)
}

async fn poll_loop(b: std::sync::Arc<Bridge>) {
    let mut failures: u32 = 0;
    loop {
        let r = b.poll_once().await;
        failures = if r.failed.is_empty() { 0 } else { failures + 1 };
        let wait = backoff(
            b.config.poll_interval,
            failures.saturating_sub(1),
            Duration::from_secs(300).max(b.config.poll_interval),
        );
        tokio::time::sleep(wait).await;
    }
}

async fn work_loop(b: std::sync::Arc<Bridge>) {
    loop {
        b.start_builds().await;
        b.follow_builds().await;
        b.post_statuses().await;
        tokio::select! {
            _ = tokio::time::sleep(b.config.follow_interval) => {}
            _ = b.wake.notified() => {}
        }
    }
}

async fn sweep_loop(b: std::sync::Arc<Bridge>) {
    let Some(interval) = b.config.sweep_interval else {
        return;
    };
    let tick = (interval / 10).clamp(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        tokio::time::sleep(tick).await;
        b.sweep_once().await;
    }
}
