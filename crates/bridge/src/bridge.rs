//! The bridge: its clients, its state, what `/status` shows, and the loops
//! that run it (poll, start, follow, sweep) beside the HTTP server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::buildbot::Buildbot;
use crate::config::{Config, RepoName, Secret, Secrets};
use crate::gitea::{Gitea, StatusState};
use crate::retry::{CallError, Next};
use crate::state::{BuildRow, Item, State, StateError};

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
    /// Unix seconds it was enrolled (Gitea's clock): comments older are
    /// never read ([`Bridge::enrolled_at`]).
    pub enrolled_at: f64,
    /// The last poll's problem, if it had one.
    pub error: Option<String>,
    /// Unix seconds of the last poll that read it.
    pub last_polled: Option<f64>,
    /// Polls of it that failed in a row.
    pub failures: u32,
    /// Unix seconds before which it is not polled again (backing off
    /// after failures; other repositories are polled as usual).
    pub next_poll_at: Option<f64>,
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
    /// The bot's login (its own comments are never commands, and only its
    /// comments are taken as the bridge's), once Gitea told it: see
    /// [`Bridge::bot_login`].
    pub(crate) bot_login: std::sync::OnceLock<String>,
    /// Unix seconds of the first start.
    pub first_start: f64,
    /// Unix seconds each enrolled repository was enrolled ([`Bridge::enrolled_at`]).
    enrolled: BTreeMap<RepoName, f64>,
    /// Serialises the decision "which build of this PR is the live one".
    pub(crate) enqueue: tokio::sync::Mutex<()>,
    /// Wakes the start and follow loops early.
    pub(crate) wake: tokio::sync::Notify,
    health: Mutex<Health>,
    /// Comments a trigger is handling right now.
    in_hand: Mutex<std::collections::HashSet<u64>>,
}

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
        let bot_login = std::sync::OnceLock::new();
        match gitea.whoami().await {
            Ok(u) => {
                let _ = bot_login.set(u.login);
            }
            Err(e) => tracing::warn!("cannot ask Gitea who the bot is yet: {e}"),
        }
        // A first start is on Gitea's clock when Gitea answered.
        state.first_start_on_giteas_clock(gitea.now().timestamp() as f64)?;
        let first_start = state.first_start()?;
        let mut health = Health {
            started_at: crate::state::now(),
            first_start,
            ..Health::default()
        };
        // Each repository counts from its enrolment: the first start of a
        // bridge with it in `repos`, on Gitea's clock (ours when Gitea did
        // not answer). One polled before enrolments were recorded counts
        // from the first start, as it did then.
        let giteas_now = gitea.now().timestamp() as f64;
        let mut enrolled = BTreeMap::new();
        for r in &config.repos {
            let at = if state.cursor(r)?.is_some() {
                first_start
            } else {
                giteas_now.max(first_start)
            };
            let since = state.enrol(r, at)?;
            enrolled.insert(r.clone(), since);
            health.repos.insert(
                r.to_string(),
                RepoHealth {
                    enrolled_at: since,
                    ..RepoHealth::default()
                },
            );
        }
        Ok(Bridge {
            webhook_secret: secrets.webhook_secret,
            config,
            gitea,
            buildbot,
            state,
            bot_login,
            first_start,
            enrolled,
            enqueue: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            health: Mutex::new(health),
            in_hand: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Unix seconds `repo` was enrolled: the first start of a bridge that
    /// had it in `repos` (the bridge's first start for one enrolled from
    /// the beginning). Comments made before it are never read, by a poll
    /// or by the webhook, so enrolling a recipe later does not replay its
    /// older `!testme` comments. The first start for a repository that is
    /// not enrolled.
    pub fn enrolled_at(&self, repo: &RepoName) -> f64 {
        self.enrolled.get(repo).copied().unwrap_or(self.first_start)
    }

    /// The bot's login: known since start, else asked of Gitea now
    /// (`GET /user`) and kept.
    ///
    /// # Errors
    /// [`crate::gitea::GiteaError`] while Gitea cannot say.
    pub async fn bot_login(&self) -> Result<String, crate::gitea::GiteaError> {
        if let Some(l) = self.bot_login.get() {
            return Ok(l.clone());
        }
        let me = self.gitea.whoami().await?;
        Ok(self.bot_login.get_or_init(|| me.login).clone())
    }

    fn health_mut(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what `/status` shows.
    pub fn health(&self) -> Health {
        self.health_mut().clone()
    }

    /// Records a poll of `repo`: `None` when it worked, else the problem;
    /// a repository that fails backs off on its own ([`Bridge::repo_due`]):
    /// the poll interval doubled per failure in a row, at most 300 s (or
    /// the interval, if longer).
    pub(crate) fn health_repo(&self, repo: &RepoName, error: Option<String>) {
        let interval = self.config.poll_interval;
        let mut h = self.health_mut();
        let e = h.repos.entry(repo.to_string()).or_default();
        match &error {
            None => {
                e.last_polled = Some(crate::state::now());
                e.failures = 0;
                e.next_poll_at = None;
            }
            Some(_) => {
                e.failures += 1;
                let wait = backoff(interval, e.failures - 1, Duration::from_secs(300).max(interval));
                // Due at the poll tick nearest the wait's end.
                e.next_poll_at = Some(crate::state::now() + wait.as_secs_f64() - interval.as_secs_f64() / 2.0);
            }
        }
        e.error = error;
    }

    /// Whether `repo` is due for a poll (not backing off after failures).
    pub(crate) fn repo_due(&self, repo: &RepoName) -> bool {
        let h = self.health_mut();
        h.repos
            .get(&repo.to_string())
            .and_then(|r| r.next_poll_at)
            .is_none_or(|at| crate::state::now() >= at)
    }

    pub(crate) fn health_gitea_error(&self, error: Option<String>) {
        self.health_mut().gitea_error = error;
    }

    pub(crate) fn health_buildbot_error(&self, error: Option<String>) {
        self.health_mut().buildbot_error = error;
    }

    /// A Gitea call worked: Gitea's problem on `/status` is cleared.
    pub(crate) fn gitea_ok(&self) {
        self.health_gitea_error(None);
    }

    /// Records a failure of `item` ([`crate::retry`]) and logs it; the
    /// reason when the item is given up (a dead letter), else `None`.
    pub(crate) fn item_failed(&self, item: Item, e: &CallError) -> Option<String> {
        match self.state.failed(item, e.kind(), &e.to_string()) {
            Ok(Next::RetryIn(wait)) => {
                tracing::warn!(
                    "{item}: {} failure: {e}; trying again in {:.0} s",
                    e.kind().as_str(),
                    wait.as_secs_f64()
                );
                None
            }
            Ok(Next::GiveUp(why)) => {
                tracing::error!("{item}: given up, a dead letter on /status: {why}");
                Some(why)
            }
            Err(se) => {
                tracing::error!("{item}: {e}; and its failure cannot be recorded: {se}");
                None
            }
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

    /// Posts every commit status not yet posted, each as its own item
    /// ([`Item::Status`]): one Gitea refuses (an archived repository's
    /// 423) waits or is given up on its own, and the others are posted.
    pub async fn post_statuses(&self) {
        let dirty = match self.state.dirty_statuses() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for s in dirty {
            let item = Item::Status(s.build);
            if !self.state.due(item).unwrap_or(false) {
                continue;
            }
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
                    let _ = self.state.succeeded(item);
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
                Err(e) => {
                    let e = CallError::from(e);
                    if e.kind() == crate::retry::Kind::Transient {
                        self.health_gitea_error(Some(e.to_string()));
                    }
                    if self.item_failed(item, &e).is_some() {
                        let _ = self.state.status_posted(&s);
                    }
                }
            }
        }
    }

    /// Logs that `old` was replaced by build `new` (a newer `!testme` at
    /// `new_sha`; [`State::insert_build_superseding`] recorded it and its
    /// status). Its stop on Buildbot is done by the follow loop.
    pub(crate) fn superseded(&self, old: &BuildRow, new: i64, new_sha: &str) {
        tracing::info!(
            "{}#{}: build {} superseded by build {new} ({})",
            old.repo,
            old.pr,
            old.id,
            &new_sha[..12.min(new_sha.len())]
        );
        self.wake.notify_one();
    }

    /// The status a build superseded by a newer `!testme` at `new_sha`
    /// gets: (description, target).
    pub(crate) fn superseded_status(&self, old: &BuildRow, new_sha: &str) -> (String, String) {
        let target = match (old.builderid, old.number, old.brid) {
            (Some(b), Some(n), _) => self.buildbot.build_url(b, n),
            (_, _, Some(r)) => self.buildbot.request_url(r),
            _ => self.config.buildbot_public_url.clone(),
        };
        (
            format!(
                "cancelled: superseded by a newer !testme at {}",
                &new_sha[..8.min(new_sha.len())]
            ),
            target,
        )
    }

    /// A run id for `ccci test --run-id` that no build of this bridge has
    /// had and no results folder on the master (`<results_dir>/*/<id>`)
    /// holds: six random hex digits, drawn again while taken. (The worker's
    /// `check run id` step refuses one a hand-made run took there.)
    ///
    /// # Errors
    /// [`StateError`] when the state cannot be read.
    pub(crate) fn new_run_id(&self) -> Result<String, StateError> {
        self.fresh_run_id(|| uuid::Uuid::new_v4().simple().to_string()[..6].to_string())
    }

    /// The first id `draw` gives that is not taken (see [`Bridge::new_run_id`]).
    fn fresh_run_id(&self, mut draw: impl FnMut() -> String) -> Result<String, StateError> {
        loop {
            let id = draw();
            if self.state.run_id_used(&id)? {
                continue;
            }
            let on_master = std::fs::read_dir(&self.config.results_dir)
                .map(|d| d.flatten().any(|e| e.path().join(&id).exists()))
                .unwrap_or(false);
            if !on_master {
                return Ok(id);
            }
        }
    }

    /// Takes comment `id` in hand for handling, unless a trigger holds it
    /// already: `None` then. The guard lets it go.
    pub(crate) fn take_in_hand(&self, id: u64) -> Option<InHand<'_>> {
        let fresh = self.in_hand.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        // Made only when taken (a guard made and dropped here would let go
        // of the other trigger's hold).
        fresh.then(|| InHand { bridge: self, id })
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

/// A comment in hand ([`Bridge::take_in_hand`]); dropped, it is let go.
pub(crate) struct InHand<'a> {
    bridge: &'a Bridge,
    id: u64,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        let mut h = self.bridge.in_hand.lock().unwrap_or_else(|p| p.into_inner());
        h.remove(&self.id);
    }
}

/// Doubles `base` for each consecutive failure, up to `cap`.
pub fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    base.saturating_mul(2u32.saturating_pow(failures.min(16))).min(cap)
}

async fn poll_loop(b: std::sync::Arc<Bridge>) {
    loop {
        b.poll_once().await;
        tokio::time::sleep(b.config.poll_interval).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge on a settings file pointing nowhere (no call is made).
    async fn offline_bridge(dir: &std::path::Path) -> Bridge {
        std::fs::write(dir.join("token"), "t0k3n-for-tests\n").unwrap();
        std::fs::write(dir.join("pw"), "pw-for-tests\n").unwrap();
        let path = dir.join("bridge.toml");
        std::fs::write(
            &path,
            format!(
                "gitea_url = \"http://127.0.0.1:9/\"\ngitea_token_file = {:?}\norg = \"o\"\nrepos = [\"o/r\"]\n\
                 buildbot_url = \"http://127.0.0.1:9/\"\nbuildbot_password_file = {:?}\nresults_dir = {:?}\nstate_db = {:?}\n",
                dir.join("token"),
                dir.join("pw"),
                dir.join("results"),
                dir.join("state.sqlite")
            ),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let secrets = Secrets::load(&config).unwrap();
        Bridge::new(config, secrets).await.unwrap()
    }

    #[tokio::test]
    async fn a_run_id_a_build_or_the_masters_results_had_is_drawn_again() {
        let d = tempfile::tempdir().unwrap();
        let b = offline_bridge(d.path()).await;
        std::fs::create_dir_all(d.path().join("results/static-site/3fa9c2")).unwrap();
        let new = crate::state::NewBuild {
            repo: RepoName::parse("o/r").unwrap(),
            pr: 1,
            head_sha: "a".repeat(40),
            base_branch: "main".into(),
            clone_url: String::new(),
            fetch_ref: String::new(),
            comment_id: None,
            requested_by: None,
            quick: false,
            trigger: crate::state::Trigger::TestMe,
            run_id: "77aa00".into(),
        };
        b.state.insert_build(&new).unwrap();
        let mut ids = ["3fa9c2", "77aa00", "0b0b0b"].into_iter().map(String::from);
        assert_eq!(b.fresh_run_id(|| ids.next().unwrap()).unwrap(), "0b0b0b");
    }

    #[tokio::test]
    async fn a_comment_in_hand_is_refused_to_the_other_trigger_until_let_go() {
        let d = tempfile::tempdir().unwrap();
        let b = offline_bridge(d.path()).await;
        let first = b.take_in_hand(7).expect("taken");
        // The second trigger is refused, and its refusal does not let go of
        // the first's hold (nor hang).
        assert!(b.take_in_hand(7).is_none());
        assert!(b.take_in_hand(7).is_none(), "still held by the first");
        assert!(b.take_in_hand(8).is_some(), "another comment is free");
        drop(first);
        assert!(b.take_in_hand(7).is_some(), "let go");
    }
}
