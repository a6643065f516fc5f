//! The orchestrator's own agent session: one conversation, kept.
//!
//! `[orchestrator]` in the configuration names its prompt and working
//! folder. `loops orchestrator start` runs it in its tmux session (default
//! `orchestrator`) with a new conversation whose id is saved in the state
//! database (`<workspace>/state.sqlite`, row `@orchestrator` of `agents`);
//! `resume` continues that conversation by its id (Claude `--resume <uuid>`,
//! opencode `--session <ses_id>`); `status` shows it; `stop` stops it.
//!
//! Once started, it is *wanted* (a flag in the state) until `stop`: while
//! wanted, the watchdog's heavy check resumes it when its session is missing
//! or its agent exited, and heals a pane showing a fatal error or a
//! usage-limit message; `loops start` and `loops boot` resume it too (after a
//! reboot). It is never restarted for being idle: an orchestrator waits for
//! its operator. `loops stop` leaves it running (it may be the one asking),
//! and the watchdog keeps watching it after the last phase is done.

use serde::Serialize;

use crate::backend::{argv, Run};
use crate::config::Orchestrator;
use crate::error::{Error, Result};
use crate::markers::find_pattern;
use crate::state::{now_ms, AgentState};
use crate::supervisor::Loops;
use crate::tmux::{Launch, PaneState};

/// Its row in the state's `agents` table (agent names cannot contain `@`).
pub const STATE_NAME: &str = "@orchestrator";

/// The state's meta key saying whether it is wanted (`1`) or stopped (`0`).
const WANTED_KEY: &str = "orchestrator_wanted";

/// `loops orchestrator status` (`--json` prints it as is; also part of `loops status`).
#[derive(Debug, Serialize)]
pub struct OrchestratorStatus {
    /// tmux session.
    pub session: String,
    /// `alive`, `dead` or `missing`.
    pub state: String,
    /// The agent's process id, when alive.
    pub pid: Option<u32>,
    /// The saved conversation (session) id it resumes.
    pub conversation: Option<String>,
    /// Whether the watchdog keeps it running (from `start`/`resume` until `stop`).
    pub wanted: bool,
    /// Restarts by the watchdog, `start`, `boot` or `resume`.
    pub restarts: u32,
    /// `claude` or `opencode`.
    pub backend: String,
    /// Its working folder.
    pub dir: String,
}

impl Loops {
    fn orchestrator_config(&self) -> Result<&Orchestrator> {
        self.cfg.orchestrator.as_ref().ok_or_else(|| {
            Error::Request(format!(
                "{} has no [orchestrator] table: add one with `prompt` and `dir` (see {})",
                self.cfg.file.display(),
                crate::config::CONFIG_DOC
            ))
        })
    }

    /// Serializes the orchestrator's transitions across processes (`start`,
    /// `resume`, `stop` and the watchdog's heal): an exclusive lock on
    /// `<workspace>/orchestrator.lock`, held until the returned file drops.
    /// Without it, a heal that read "wanted" just before a `stop` found the
    /// session the stop killed missing and started it again.
    ///
    /// # Errors
    /// The lock file cannot be opened or locked.
    fn orchestrator_lock(&self) -> Result<OrchestratorLock> {
        let path = self.cfg.workspace.join("orchestrator.lock");
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        fs2::FileExt::lock_exclusive(&f).map_err(|e| Error::io("lock", &path, e))?;
        Ok(OrchestratorLock(f))
    }

    /// Whether the orchestrator is configured and wanted (started and not stopped).
    ///
    /// # Errors
    /// State failure.
    pub fn orchestrator_wanted(&self) -> Result<bool> {
        Ok(self.cfg.orchestrator.is_some() && self.state.get(WANTED_KEY)?.as_deref() == Some("1"))
    }

    fn set_wanted(&self, wanted: bool) -> Result<()> {
        Ok(self.state.set(WANTED_KEY, if wanted { "1" } else { "0" })?)
    }

    /// Starts the orchestrator with a new conversation, unless it runs. A
    /// saved conversation is never dropped by accident: without `new`, that
    /// is an error pointing at `resume`. Then it is wanted, and the watchdog
    /// is started unless alive.
    ///
    /// # Errors
    /// No `[orchestrator]` table; a saved conversation without `new`;
    /// `new` while it runs; tmux or state failure.
    pub fn orchestrator_start(&self, new: bool) -> Result<Vec<String>> {
        let o = self.orchestrator_config()?;
        let _lock = self.orchestrator_lock()?;
        let st = self.state.agent(STATE_NAME)?;
        let mut report = Vec::new();
        match self.tmux.pane_state(&o.session)? {
            PaneState::Alive(pid) if new => {
                return Err(Error::Request(format!(
                    "the orchestrator runs (pid {pid}); `loops orchestrator stop` it before starting a new conversation"
                )))
            }
            PaneState::Alive(pid) => report.push(format!(
                "orchestrator: already running (pid {pid}, conversation {})",
                st.conversation.as_deref().unwrap_or("unknown")
            )),
            _ => match (&st.conversation, new) {
                (Some(c), false) => {
                    return Err(Error::Request(format!(
                        "the orchestrator has a saved conversation {c}: `loops orchestrator resume` continues it; \
                         `loops orchestrator start --new` begins another (the old one stays in the agent's history)"
                    )))
                }
                _ => {
                    let (how, id) = self.launch_orchestrator(false, "start")?;
                    report.push(format!("orchestrator: started ({how}, conversation {id})"));
                }
            },
        }
        self.set_wanted(true)?;
        report.push(self.ensure_watchdog()?);
        Ok(report)
    }

    /// Continues the orchestrator's saved conversation unless it runs; then
    /// it is wanted, and the watchdog is started unless alive.
    ///
    /// # Errors
    /// No `[orchestrator]` table; no saved conversation; tmux or state failure.
    pub fn orchestrator_resume(&self) -> Result<Vec<String>> {
        let o = self.orchestrator_config()?;
        let _lock = self.orchestrator_lock()?;
        let st = self.state.agent(STATE_NAME)?;
        let mut report = Vec::new();
        match self.tmux.pane_state(&o.session)? {
            PaneState::Alive(pid) => report.push(format!(
                "orchestrator: already running (pid {pid}, conversation {})",
                st.conversation.as_deref().unwrap_or("unknown")
            )),
            _ => {
                if st.conversation.is_none() {
                    return Err(Error::Request(
                        "the orchestrator has no saved conversation yet: `loops orchestrator start` begins one".into(),
                    ));
                }
                let (how, id) = self.launch_orchestrator(true, "resume")?;
                report.push(format!("orchestrator: {how} (conversation {id})"));
            }
        }
        self.set_wanted(true)?;
        report.push(self.ensure_watchdog()?);
        Ok(report)
    }

    /// Stops the orchestrator's session; the watchdog no longer restarts it.
    /// Its conversation stays saved for `resume`.
    ///
    /// # Errors
    /// No `[orchestrator]` table; tmux or state failure.
    pub fn orchestrator_stop(&self) -> Result<Vec<String>> {
        let o = self.orchestrator_config()?;
        let _lock = self.orchestrator_lock()?;
        self.set_wanted(false)?;
        self.tmux.kill(&o.session)?;
        self.state.event("stop", STATE_NAME, "")?;
        Ok(vec![
            "orchestrator: stopped (its conversation is kept: `loops orchestrator resume`)".into(),
        ])
    }

    /// The orchestrator's state, when `[orchestrator]` is configured.
    ///
    /// # Errors
    /// tmux or state failure.
    pub fn orchestrator_status(&self) -> Result<Option<OrchestratorStatus>> {
        let Some(o) = &self.cfg.orchestrator else {
            return Ok(None);
        };
        let st = self.state.agent(STATE_NAME)?;
        let (state, pid) = match self.tmux.pane_state(&o.session)? {
            PaneState::Missing => ("missing", None),
            PaneState::Dead(_) => ("dead", None),
            PaneState::Alive(pid) => ("alive", Some(pid)),
        };
        Ok(Some(OrchestratorStatus {
            session: o.session.clone(),
            state: state.into(),
            pid,
            conversation: st.conversation,
            wanted: self.orchestrator_wanted()?,
            restarts: st.restarts,
            backend: match o.backend {
                crate::config::BackendKind::Claude => "claude".into(),
                crate::config::BackendKind::Opencode => "opencode".into(),
            },
            dir: o.dir.display().to_string(),
        }))
    }

    /// The watchdog's part: when the orchestrator is wanted, resumes it when
    /// its session is missing or its agent exited, and heals a pane showing
    /// a fatal error or usage-limit message. Returns what it did, if anything.
    ///
    /// # Errors
    /// tmux or state failure; an unreadable prompt (when it must start fresh).
    pub fn heal_orchestrator(&self) -> Result<Option<String>> {
        if !self.orchestrator_wanted()? {
            return Ok(None);
        }
        // Under the lock, "wanted" is read again: a stop that came in
        // between killed the session on purpose.
        let _lock = self.orchestrator_lock()?;
        if !self.orchestrator_wanted()? {
            return Ok(None);
        }
        let o = self.orchestrator_config()?;
        let why = match self.tmux.pane_state(&o.session)? {
            PaneState::Missing => "session was missing".to_string(),
            PaneState::Dead(code) => format!(
                "agent exited (status {})",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
            PaneState::Alive(_) => {
                let pane = self.tmux.capture(&o.session).unwrap_or_default();
                if let Some(p) = find_pattern(&pane, &self.cfg.patterns.fatal) {
                    format!("healing fatal error {p:?}")
                } else if let Some(p) = find_pattern(&pane, &self.cfg.patterns.usage_limit) {
                    format!("healing usage limit {p:?}")
                } else {
                    return Ok(None);
                }
            }
        };
        let (how, id) = self.launch_orchestrator(true, &why)?;
        Ok(Some(format!("orchestrator: {how} (conversation {id}): {why}")))
    }

    /// Runs the orchestrator in its session, resuming its saved conversation
    /// when `resume` and there is one; saves the conversation id it runs.
    /// Returns `fresh` or `resumed`, and that id.
    fn launch_orchestrator(&self, resume: bool, why: &str) -> Result<(&'static str, String)> {
        let o = self.orchestrator_config()?;
        let mut st: AgentState = self.state.agent(STATE_NAME)?;
        let backend = self.cfg.backend(o.backend);
        let run = Run::plan(
            o.backend,
            backend,
            &o.dir,
            "orchestrator",
            st.conversation.as_deref(),
            resume,
            || std::fs::read_to_string(&o.prompt).map_err(|e| Error::io("read prompt", &o.prompt, e)),
        )?;
        let how = run.how();
        let argv = argv(o.backend, backend, o.model.as_deref(), "orchestrator", &run);
        let env = vec![
            "LOOPS_AGENT=orchestrator".to_string(),
            format!("LOOPS_CONFIG={}", self.cfg.file.display()),
            format!("LOOPS_WORKSPACE={}", self.cfg.workspace.display()),
        ];
        let log = self.log_path(&o.session);
        self.tmux.launch(
            &o.session,
            &Launch {
                cwd: &o.dir,
                env,
                argv,
                log: &log,
            },
        )?;
        let id = run.conversation().to_string();
        st.conversation = Some(id.clone());
        st.pane_hash = None;
        st.pane_changed_ms = now_ms();
        if why != "start" {
            st.restarts += 1;
        }
        self.state.put_agent(STATE_NAME, &st)?;
        self.state.event(
            if why == "start" { "start" } else { "restart" },
            STATE_NAME,
            &format!("{how} {id}: {why}"),
        )?;
        tracing::info!(how, why, conversation = %id, "launched the orchestrator");
        Ok((how, id))
    }
}

/// The held `orchestrator.lock` ([`Loops::orchestrator_lock`]), unlocked
/// explicitly when dropped rather than when the file closes: a child forked
/// meanwhile (tmux) shares the open file description, and with it the
/// flock, until it execs.
struct OrchestratorLock(std::fs::File);

impl Drop for OrchestratorLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.0);
    }
}
