//! The supervisor: starts the phase's agent loops in tmux, and as the
//! watchdog keeps them alive, pings them on handoffs, restarts stalled ones and
//! moves on when the phase's STATUS file says `## DONE`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::{argv, Run};
use crate::config::{Agent, Config};
use crate::error::{Error, Result};
use crate::markers::{find_pattern, has_real_done, last_line, waiting_until};
use crate::origin::Mirror;
use crate::state::{now_ms, AgentState, State};
use crate::tmux::{Launch, PaneState, Tmux};

/// tmux session name of the watchdog.
pub const WATCHDOG_SESSION: &str = "loops-watchdog";

/// Commit-subject prefix that pings the claim addressee (the Adversary).
pub const CLAIM_PREFIX: &str = "claim(";
/// Commit-subject prefix that pings the review addressee (the Builder).
pub const REVIEW_PREFIX: &str = "review(";

/// The supervisor over one configuration.
pub struct Loops {
    /// The configuration.
    pub cfg: Config,
    /// The tmux server.
    pub tmux: Tmux,
    /// The state database.
    pub state: State,
    /// The mirror of origin.
    pub mirror: Mirror,
    /// The `loops` program, run by the watchdog sessions.
    pub exe: PathBuf,
}

/// What a heavy check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep watching.
    Continue,
    /// The last phase is done: the loops are stopped.
    Finished,
}

/// A snapshot for `loops status` (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Status {
    /// Index of the current phase (equal to `phases_total` when all are done).
    pub phase_index: usize,
    /// Name of the current phase, if any is left.
    pub phase: Option<String>,
    /// Number of phases.
    pub phases_total: usize,
    /// Whether the current phase's STATUS file on origin (as last fetched) has a real DONE.
    pub phase_done: Option<bool>,
    /// Each agent's state.
    pub agents: Vec<AgentStatus>,
    /// Whether a watchdog holds the lock.
    pub watchdog_alive: bool,
    /// Boots recorded in REBOOTS.md.
    pub reboots: usize,
    /// One-shot jobs.
    pub jobs: Vec<crate::job::JobStatus>,
    /// Heavy checks done so far.
    pub heavy_checks: i64,
    /// Fast ticks done so far.
    pub fast_ticks: i64,
    /// The origin SHA handoffs were last computed at.
    pub last_sha: Option<String>,
    /// The orchestrator's own session, when `[orchestrator]` is configured.
    pub orchestrator: Option<crate::orchestrator::OrchestratorStatus>,
}

/// One agent in [`Status`].
#[derive(Debug, Serialize)]
pub struct AgentStatus {
    /// Agent name.
    pub name: String,
    /// tmux session.
    pub session: String,
    /// `alive`, `dead`, `missing`, `stalled` or `waiting`.
    pub state: String,
    /// The marker time when `waiting`.
    pub waiting_until: Option<String>,
    /// Seconds since the pane last changed (as the watchdog last saw it).
    pub idle_seconds: Option<f64>,
    /// Restarts by the watchdog.
    pub restarts: u32,
}

/// Whether some process holds an exclusive lock on `path` (tried without blocking).
pub fn lock_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => match f.try_lock_exclusive() {
            Ok(()) => {
                let _ = FileExt::unlock(&f);
                false
            }
            Err(_) => true,
        },
        Err(_) => false,
    }
}

/// Takes the exclusive lock on `path` (created if needed) or returns `None` when held.
///
/// # Errors
/// When the file cannot be created.
pub fn try_lock(path: &Path) -> Result<Option<File>> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open lock file", path, e))?;
    Ok(f.try_lock_exclusive().ok().map(|()| f))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Loops {
    /// Opens the supervisor for `cfg`: creates the workspace folders and opens state.
    ///
    /// # Errors
    /// When the workspace cannot be created or the state cannot be opened.
    pub fn open(cfg: Config, exe: PathBuf) -> Result<Loops> {
        for d in ["logs", "jobs"] {
            let dir = cfg.workspace.join(d);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        }
        let state = State::open(&cfg.workspace.join("state.sqlite"))?;
        let mirror = Mirror::new(cfg.workspace.join("origin.git"), &cfg.origin, &cfg.branch);
        let tmux = Tmux::new(cfg.tmux_socket.clone(), cfg.tmux_server_unit.clone());
        Ok(Loops {
            cfg,
            tmux,
            state,
            mirror,
            exe,
        })
    }

    /// `<workspace>/logs/<name>.log`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.cfg.workspace.join("logs").join(format!("{name}.log"))
    }

    fn watchdog_lock(&self) -> PathBuf {
        self.cfg.workspace.join("watchdog.lock")
    }

    /// Whether a watchdog process is running (it holds `<workspace>/watchdog.lock`).
    pub fn watchdog_alive(&self) -> bool {
        lock_held(&self.watchdog_lock())
    }

    fn config_arg(&self) -> String {
        self.cfg.file.display().to_string()
    }

    /// Starts the current phase's agents that are not running and the watchdog.
    /// A live session is never duplicated. With `resume`, dead agents continue
    /// their saved conversations; otherwise they start fresh ones. `phase`
    /// (a phase name) moves to that phase first. A wanted orchestrator that is
    /// not running continues its conversation either way.
    ///
    /// # Errors
    /// Unknown phase, origin unreachable, tmux failure.
    pub fn start(&self, resume: bool, phase: Option<&str>) -> Result<Vec<String>> {
        let mut report = Vec::new();
        if let Some(name) = phase {
            let Some(i) = self.cfg.phases.iter().position(|p| p.name == name) else {
                let names: Vec<_> = self.cfg.phases.iter().map(|p| p.name.as_str()).collect();
                return Err(Error::Request(format!(
                    "no phase named {name:?}; the phases are: {}",
                    names.join(", ")
                )));
            };
            if i != self.state.phase()? {
                self.state.set("phase", &i.to_string())?;
                self.state.event("phase", name, "set by start --phase")?;
            }
        }
        let idx = self.state.phase()?;
        let Some(ph) = self.cfg.phases.get(idx) else {
            report.push(format!(
                "all {} phases are done; nothing to start (use --phase NAME to run one again)",
                idx
            ));
            if self.orchestrator_wanted()? {
                report.extend(self.heal_orchestrator()?);
                report.push(self.ensure_watchdog()?);
            }
            return Ok(report);
        };
        let head = self.mirror.fetch()?;
        if self.state.get("last_sha")?.is_none() {
            self.state.set("last_sha", &head)?;
        }
        for agent in &self.cfg.agents {
            match self.tmux.pane_state(&agent.session)? {
                PaneState::Alive(pid) => report.push(format!("{}: already running (pid {pid})", agent.name)),
                _ => {
                    let how = self.launch_agent(agent, resume, "start")?;
                    report.push(format!("{}: started in phase {:?} ({how})", agent.name, ph.name));
                }
            }
        }
        // A wanted orchestrator always continues its conversation.
        report.extend(self.heal_orchestrator()?);
        report.push(self.ensure_watchdog()?);
        Ok(report)
    }

    /// Starts the watchdog session unless a watchdog is alive.
    ///
    /// # Errors
    /// tmux failure.
    pub fn ensure_watchdog(&self) -> Result<String> {
        if self.watchdog_alive() {
            return Ok("watchdog: already running".into());
        }
        let argv = vec![
            self.exe.display().to_string(),
            "--config".into(),
            self.config_arg(),
            "watchdog".into(),
        ];
        let log = self.log_path("watchdog");
        self.tmux.launch(
            WATCHDOG_SESSION,
            &Launch {
                cwd: &self.cfg.workspace,
                env: vec![],
                argv,
                log: &log,
            },
        )?;
        // Wait (bounded) until it holds its lock, so a second start does not launch another.
        let t0 = Instant::now();
        while !self.watchdog_alive() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok("watchdog: started".into())
    }

    /// Runs `agent` in its session: resuming its saved conversation when
    /// `resume` and one exists, else a fresh conversation with the phase's prompt.
    /// Returns `fresh` or `resumed`.
    fn launch_agent(&self, agent: &Agent, resume: bool, why: &str) -> Result<&'static str> {
        let idx = self.state.phase()?;
        let phase = &self.cfg.phases[idx.min(self.cfg.phases.len() - 1)];
        let mut st = self.state.agent(&agent.name)?;
        let backend = self.cfg.backend(agent.backend);
        let prompt_file = self.cfg.prompt_for(agent, phase);
        let run = Run::plan(
            agent.backend,
            backend,
            &agent.clone,
            &agent.name,
            st.conversation.as_deref(),
            resume,
            || std::fs::read_to_string(&prompt_file).map_err(|e| Error::io("read prompt", &prompt_file, e)),
        )?;
        let how = run.how();
        let argv = argv(agent.backend, backend, agent.model.as_deref(), &agent.name, &run);
        let env = vec![
            format!("LOOPS_AGENT={}", agent.name),
            format!("LOOPS_PHASE={}", phase.name),
            format!("LOOPS_WORKSPACE={}", self.cfg.workspace.display()),
        ];
        let log = self.log_path(&agent.session);
        self.tmux.launch(
            &agent.session,
            &Launch {
                cwd: &agent.clone,
                env,
                argv,
                log: &log,
            },
        )?;
        st.conversation = Some(run.conversation().to_string());
        st.pane_hash = None;
        st.pane_changed_ms = now_ms();
        if why != "start" {
            st.restarts += 1;
        }
        self.state.put_agent(&agent.name, &st)?;
        self.state.event(
            if why == "start" { "start" } else { "restart" },
            &agent.name,
            &format!("{how}: {why}"),
        )?;
        tracing::info!(agent = %agent.name, how, why, "launched agent");
        Ok(how)
    }

    /// Stops the watchdog, then every agent session. Jobs are left alone.
    ///
    /// # Errors
    /// tmux failure.
    pub fn stop(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        self.tmux.kill(WATCHDOG_SESSION)?;
        report.push("watchdog: stopped".to_string());
        for a in &self.cfg.agents {
            self.tmux.kill(&a.session)?;
            report.push(format!("{}: stopped", a.name));
        }
        if let Some(o) = &self.cfg.orchestrator {
            if matches!(self.tmux.pane_state(&o.session)?, PaneState::Alive(_)) {
                report.push(
                    "orchestrator: left running, unwatched until the next `loops start` (`loops orchestrator stop` stops it)"
                        .into(),
                );
            }
        }
        self.state.event("stop", "loops", "")?;
        Ok(report)
    }

    /// The heavy check: restarts dead sessions, heals panes showing a fatal
    /// error or usage-limit message (of the loops and of a wanted
    /// orchestrator), advances the phase on a real `## DONE` on origin, and
    /// looks after one-shot jobs.
    ///
    /// # Errors
    /// Origin unreachable, tmux or state failure.
    pub fn heavy_check(&self) -> Result<Outcome> {
        // The orchestrator's trouble must not keep the loops from being looked after.
        match self.heal_orchestrator() {
            Ok(Some(what)) => tracing::info!("{what}"),
            Ok(None) => {}
            Err(e) => tracing::error!("cannot heal the orchestrator: {e}"),
        }
        let idx = self.state.phase()?;
        if idx >= self.cfg.phases.len() {
            return Ok(Outcome::Finished);
        }
        for agent in &self.cfg.agents {
            match self.tmux.pane_state(&agent.session)? {
                PaneState::Missing => {
                    self.launch_agent(agent, true, "session was missing")?;
                }
                PaneState::Dead(code) => {
                    let why = format!(
                        "agent exited (status {})",
                        code.map_or("unknown".into(), |c| c.to_string())
                    );
                    self.launch_agent(agent, true, &why)?;
                }
                PaneState::Alive(_) => {
                    let pane = self.tmux.capture(&agent.session).unwrap_or_default();
                    if let Some(p) = find_pattern(&pane, &self.cfg.patterns.fatal) {
                        self.launch_agent(agent, true, &format!("healing fatal error {p:?}"))?;
                    } else if let Some(p) = find_pattern(&pane, &self.cfg.patterns.usage_limit) {
                        self.launch_agent(agent, true, &format!("healing usage limit {p:?}"))?;
                    }
                }
            }
        }
        crate::job::supervise_jobs(self)?;
        self.mirror.fetch()?;
        let phase = &self.cfg.phases[idx];
        let done = self.mirror.read(&phase.status)?.is_some_and(|t| has_real_done(&t));
        self.state.bump("heavy_checks", 1)?;
        if !done {
            return Ok(Outcome::Continue);
        }
        self.state
            .event("done", &phase.name, &format!("{} has a real ## DONE", phase.status))?;
        for a in &self.cfg.agents {
            self.tmux.kill(&a.session)?;
        }
        let next = idx + 1;
        self.state.set("phase", &next.to_string())?;
        let Some(np) = self.cfg.phases.get(next) else {
            self.state.event("finished", "loops", "last phase done")?;
            tracing::info!("last phase {:?} is done; loops stopped", phase.name);
            return Ok(Outcome::Finished);
        };
        self.state.event("phase", &np.name, &format!("after {}", phase.name))?;
        tracing::info!("phase {:?} is done; starting phase {:?}", phase.name, np.name);
        for a in &self.cfg.agents {
            self.launch_agent(a, false, "start")?;
        }
        Ok(Outcome::Continue)
    }

    /// The fast tick: pings on new `claim(`/`review(` commits and INBOX
    /// changes on origin (edge-triggered on the origin SHA, persisted), and
    /// restarts loops stalled for `stall_idle` without a live `WAITING-UNTIL`.
    ///
    /// # Errors
    /// Origin unreachable, tmux or state failure.
    pub fn fast_tick(&self) -> Result<()> {
        if self.state.phase()? >= self.cfg.phases.len() {
            return Ok(());
        }
        // An unreachable origin must not stop the stall check: run both, report the first error.
        let handoffs = self.handoffs();
        let stalls = self.stall_check();
        self.state.bump("fast_ticks", 1)?;
        handoffs.and(stalls)
    }

    /// Pings for new `claim(`/`review(` commits and INBOX changes since the last origin SHA seen.
    fn handoffs(&self) -> Result<()> {
        let head = self.mirror.fetch()?;
        match self.state.get("last_sha")? {
            None => self.state.set("last_sha", &head)?,
            Some(last) if last != head => {
                for c in self.mirror.commits_between(&last, &head)? {
                    let to = if c.subject.starts_with(CLAIM_PREFIX) {
                        self.cfg.claim_to.as_deref()
                    } else if c.subject.starts_with(REVIEW_PREFIX) {
                        self.cfg.review_to.as_deref()
                    } else {
                        None
                    };
                    if let Some(to) = to {
                        let short = &c.sha[..c.sha.len().min(10)];
                        self.ping(
                            to,
                            &format!("[loops] new on origin/{}: {} ({short})", self.cfg.branch, c.subject),
                            &c.sha,
                        )?;
                    }
                }
                let changed = self.mirror.changed_paths(&last, &head)?;
                for a in &self.cfg.agents {
                    if changed.iter().any(|p| p == &a.inbox) {
                        self.ping(
                            &a.name,
                            &format!("[loops] {} changed on origin/{}: read it", a.inbox, self.cfg.branch),
                            &head,
                        )?;
                    }
                }
                self.state.set("last_sha", &head)?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Restarts loops whose pane has not changed for `stall_idle`, unless a
    /// live `WAITING-UNTIL` marker ends it.
    fn stall_check(&self) -> Result<()> {
        let now = now_ms();
        for agent in &self.cfg.agents {
            if !matches!(self.tmux.pane_state(&agent.session)?, PaneState::Alive(_)) {
                continue; // the heavy check restarts dead sessions
            }
            let pane = self.tmux.capture(&agent.session).unwrap_or_default();
            let hash = sha256_hex(&pane);
            let mut st = self.state.agent(&agent.name)?;
            if st.pane_hash.as_deref() != Some(&hash) {
                st.pane_hash = Some(hash);
                st.pane_changed_ms = now;
                self.state.put_agent(&agent.name, &st)?;
                continue;
            }
            let idle = Duration::from_millis((now - st.pane_changed_ms).max(0) as u64);
            if idle < self.cfg.pacing.stall_idle {
                continue;
            }
            let marker = last_line(&pane).and_then(waiting_until);
            match marker {
                Some(t) if t.timestamp_millis() > now => {} // a healthy, paced wait
                Some(t) => {
                    self.launch_agent(agent, true, &format!("WAITING-UNTIL {} has passed", t.to_rfc3339()))?;
                }
                None => {
                    self.launch_agent(agent, true, &format!("stalled: pane unchanged for {}s", idle.as_secs()))?;
                }
            }
        }
        Ok(())
    }

    fn ping(&self, agent: &str, text: &str, sha: &str) -> Result<()> {
        let Some(a) = self.cfg.agent(agent) else { return Ok(()) };
        match self.tmux.type_line(&a.session, text) {
            Ok(()) => self.state.event("ping", agent, sha)?,
            Err(e) => {
                tracing::warn!(agent, error = %e, "could not ping");
                self.state.event("ping-missed", agent, &format!("{sha}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The watchdog: heavy check at once and every `heavy_check`, fast tick
    /// every `fast_tick`, until the last phase is done and no orchestrator is
    /// wanted. Only one runs per workspace (`watchdog.lock`); a second
    /// returns at once. Before each heavy check it rereads the configuration
    /// file: a changed, valid one makes it replace itself (`exec`, same
    /// pane) with a watchdog on the new configuration (a NixOS rebuild
    /// points `/etc/cc-ci/loops.toml` at a new file).
    ///
    /// # Errors
    /// When the lock file cannot be created, or the new watchdog cannot be
    /// run. Errors inside a check are logged and the watch goes on.
    pub fn watchdog(&self) -> Result<()> {
        let Some(_lock) = try_lock(&self.watchdog_lock())? else {
            println!("a watchdog is already running for {}", self.cfg.workspace.display());
            return Ok(());
        };
        tracing::info!(
            heavy_s = self.cfg.pacing.heavy_check.as_secs_f64(),
            fast_s = self.cfg.pacing.fast_tick.as_secs_f64(),
            stall_s = self.cfg.pacing.stall_idle.as_secs_f64(),
            "watchdog started"
        );
        let mut next_heavy = Instant::now();
        let mut refused: Option<String> = None;
        loop {
            if Instant::now() >= next_heavy {
                if let Some(new) = self.changed_config(&mut refused) {
                    tracing::info!(
                        file = %self.cfg.file.display(),
                        "the configuration changed; the watchdog restarts itself with it"
                    );
                    self.state.event("reload", "watchdog", &new)?;
                    // The lock's file closes on exec (close-on-exec); the new watchdog takes it again.
                    return Err(self.reexec());
                }
                match self.heavy_check() {
                    Ok(Outcome::Finished) if !self.orchestrator_wanted()? => {
                        tracing::info!("all phases done; watchdog exits");
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!("heavy check failed: {e}"),
                }
                next_heavy = Instant::now() + self.cfg.pacing.heavy_check;
            }
            if let Err(e) = self.fast_tick() {
                tracing::error!("fast tick failed: {e}");
            }
            let until_heavy = next_heavy.saturating_duration_since(Instant::now());
            std::thread::sleep(
                self.cfg
                    .pacing
                    .fast_tick
                    .min(until_heavy)
                    .max(Duration::from_millis(20)),
            );
        }
    }

    /// When the configuration file's text differs from what this process
    /// loaded and is a valid configuration, its sha256; an invalid new text is
    /// logged once (in `refused`) and the old configuration kept.
    fn changed_config(&self, refused: &mut Option<String>) -> Option<String> {
        let text = std::fs::read_to_string(&self.cfg.file).ok()?;
        if text == self.cfg.source {
            return None;
        }
        let hash = sha256_hex(&text);
        match Config::parse(&self.cfg.file, &text) {
            Ok(_) => Some(hash),
            Err(e) => {
                if refused.as_deref() != Some(hash.as_str()) {
                    tracing::error!("the configuration changed but is invalid; keeping the old one: {e}");
                    *refused = Some(hash);
                }
                None
            }
        }
    }

    /// Replaces this process with a new watchdog (same program, same
    /// configuration path), keeping its tmux pane; returns only on failure.
    fn reexec(&self) -> Error {
        use std::os::unix::process::CommandExt as _;
        let e = std::process::Command::new(&self.exe)
            .arg("--config")
            .arg(&self.cfg.file)
            .arg("watchdog")
            .exec();
        Error::io("run", &self.exe, e)
    }

    /// A snapshot of phase, sessions, watchdog, reboots and jobs.
    ///
    /// # Errors
    /// tmux or state failure.
    pub fn status(&self) -> Result<Status> {
        let idx = self.state.phase()?;
        let phase = self.cfg.phases.get(idx);
        let phase_done = match phase {
            Some(p) if self.mirror.head().is_ok() => {
                Some(self.mirror.read(&p.status)?.is_some_and(|t| has_real_done(&t)))
            }
            _ => None,
        };
        let now = now_ms();
        let mut agents = Vec::new();
        for a in &self.cfg.agents {
            let st: AgentState = self.state.agent(&a.name)?;
            let pane_state = self.tmux.pane_state(&a.session)?;
            let idle = (st.pane_changed_ms > 0).then(|| (now - st.pane_changed_ms).max(0) as f64 / 1000.0);
            let (state, until) = match pane_state {
                PaneState::Missing => ("missing".to_string(), None),
                PaneState::Dead(_) => ("dead".to_string(), None),
                PaneState::Alive(_) => {
                    let pane = self.tmux.capture(&a.session).unwrap_or_default();
                    match last_line(&pane).and_then(waiting_until) {
                        Some(t) if t.timestamp_millis() > now => ("waiting".to_string(), Some(t.to_rfc3339())),
                        _ if idle.is_some_and(|i| i >= self.cfg.pacing.stall_idle.as_secs_f64()) => {
                            ("stalled".to_string(), None)
                        }
                        _ => ("alive".to_string(), None),
                    }
                }
            };
            agents.push(AgentStatus {
                name: a.name.clone(),
                session: a.session.clone(),
                state,
                waiting_until: until,
                idle_seconds: idle,
                restarts: st.restarts,
            });
        }
        Ok(Status {
            phase_index: idx,
            phase: phase.map(|p| p.name.clone()),
            phases_total: self.cfg.phases.len(),
            phase_done,
            agents,
            watchdog_alive: self.watchdog_alive(),
            reboots: crate::boot::count(&self.cfg.workspace),
            jobs: crate::job::statuses(self)?,
            heavy_checks: self
                .state
                .get("heavy_checks")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            fast_ticks: self.state.get("fast_ticks")?.and_then(|v| v.parse().ok()).unwrap_or(0),
            last_sha: self.state.get("last_sha")?,
            orchestrator: self.orchestrator_status()?,
        })
    }
}
