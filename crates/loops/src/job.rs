//! One-shot jobs: an agent task run to completion with resume.
//!
//! `loops job start NAME PROMPT` runs the task in tmux session `job-NAME` and
//! a job watchdog (`loops job watch NAME`, session `job-NAME-watch`, holding
//! `<workspace>/jobs/NAME/watch.lock` so there are never two). The agent is
//! told to create `<workspace>/jobs/NAME/DONE` when finished (also given as
//! `$LOOPS_DONE_FILE`). While no agent process is alive and DONE is absent,
//! the job watchdog resumes it at its next tick (every `fast_tick`), at most
//! `max_resumes` times; then it writes `GAVE-UP` with the reason and exits 3.
//! The supervisor's heavy check defers to a live job watchdog; once it gave
//! up, the supervisor takes over with a fresh run (at most `max_takeovers`
//! times), and it restarts a job watchdog that died without giving up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::backend::{argv, Run};
use crate::error::{Error, Result};
use crate::state::{JobState, State};
use crate::supervisor::{lock_held, try_lock, Loops};
use crate::tmux::{Launch, PaneState};

/// Exit code of a job watchdog that gave up.
pub const GAVE_UP_EXIT: i32 = 3;

/// One job in `loops status`.
#[derive(Debug, Serialize)]
pub struct JobStatus {
    /// Job name.
    pub name: String,
    /// `done`, `running`, `resuming` (no agent alive, watchdog on it),
    /// `gave-up` or `orphaned` (neither agent nor watchdog alive).
    pub state: String,
    /// Resumes in the current attempt.
    pub resumes: u32,
    /// Supervisor takeovers so far.
    pub takeovers: u32,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Request(format!(
            "job name {name:?} must be letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

impl Loops {
    fn job_dir(&self, name: &str) -> PathBuf {
        self.cfg.workspace.join("jobs").join(name)
    }

    /// The file a job's agent creates when it has finished.
    pub fn job_done_file(&self, name: &str) -> PathBuf {
        self.job_dir(name).join("DONE")
    }

    /// The marker a job watchdog writes when it gives up.
    pub fn job_gave_up_file(&self, name: &str) -> PathBuf {
        self.job_dir(name).join("GAVE-UP")
    }

    fn job_session(name: &str) -> String {
        format!("job-{name}")
    }

    fn job_watch_session(name: &str) -> String {
        format!("job-{name}-watch")
    }

    fn job_watch_lock(&self, name: &str) -> PathBuf {
        self.job_dir(name).join("watch.lock")
    }

    /// Whether job `name`'s watchdog is alive.
    pub fn job_watch_alive(&self, name: &str) -> bool {
        lock_held(&self.job_watch_lock(name))
    }

    /// Starts job `name` with the prompt in file `prompt` in working folder
    /// `clone`, unless it is running or done, and its watchdog unless alive.
    ///
    /// # Errors
    /// Bad name, unreadable prompt, tmux failure.
    pub fn job_start(&self, name: &str, prompt: &std::path::Path, clone: &std::path::Path) -> Result<Vec<String>> {
        check_name(name)?;
        let mut report = Vec::new();
        if self.job_done_file(name).exists() {
            report.push(format!(
                "job {name}: already done ({})",
                self.job_done_file(name).display()
            ));
            return Ok(report);
        }
        let dir = self.job_dir(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let prompt = prompt
            .canonicalize()
            .map_err(|e| Error::io("find prompt file", prompt, e))?;
        let clone = clone
            .canonicalize()
            .map_err(|e| Error::io("find working folder", clone, e))?;
        let mut job = self.state.job(name)?.unwrap_or_default();
        let gave_up = self.job_gave_up_file(name);
        if gave_up.exists() {
            // A human restarts it: the earlier hand-off is kept beside, the budget renewed.
            let kept = gave_up.with_extension("by-hand");
            std::fs::rename(&gave_up, &kept).map_err(|e| Error::io("rename to", &kept, e))?;
            job.resumes = 0;
            report.push(format!(
                "job {name}: had given up; restarted by hand with a new resume budget"
            ));
        }
        job.prompt = prompt.display().to_string();
        job.clone = clone.display().to_string();
        self.state.put_job(name, &job)?;
        match self.tmux.pane_state(&Self::job_session(name))? {
            PaneState::Alive(pid) => report.push(format!("job {name}: already running (pid {pid})")),
            _ => {
                let how = self.launch_job(name, job.conversation.is_some())?;
                report.push(format!("job {name}: started ({how})"));
            }
        }
        report.push(self.ensure_job_watch(name)?);
        Ok(report)
    }

    fn ensure_job_watch(&self, name: &str) -> Result<String> {
        if self.job_watch_alive(name) {
            return Ok(format!("job {name} watchdog: already running"));
        }
        let argv = vec![
            self.exe.display().to_string(),
            "--config".into(),
            self.cfg.file.display().to_string(),
            "job".into(),
            "watch".into(),
            name.into(),
        ];
        let log = self.log_path(&Self::job_watch_session(name));
        let session = Self::job_watch_session(name);
        self.tmux.launch(
            &session,
            &Launch {
                cwd: &self.cfg.workspace,
                env: vec![],
                argv,
                log: &log,
            },
        )?;
        let t0 = std::time::Instant::now();
        while !self.job_watch_alive(name) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(format!("job {name} watchdog: started"))
    }

    /// Runs the job's agent: resuming its conversation when `resume`, else fresh.
    fn launch_job(&self, name: &str, resume: bool) -> Result<&'static str> {
        let mut job = self
            .state
            .job(name)?
            .ok_or_else(|| Error::Request(format!("no job named {name:?}")))?;
        let kind = self.cfg.default_backend;
        let backend = self.cfg.backend(kind);
        let done = self.job_done_file(name);
        let clone = PathBuf::from(&job.clone);
        let title = Self::job_session(name);
        let run = Run::plan(
            kind,
            backend,
            &clone,
            &title,
            job.conversation.as_deref(),
            resume,
            || {
                let body = std::fs::read_to_string(&job.prompt)
                    .map_err(|e| Error::io("read prompt", Path::new(&job.prompt), e))?;
                Ok(format!(
                "{body}\n\nWhen the task is complete, create the file {} (the loops supervisor stops resuming you once it exists).",
                done.display()
            ))
            },
        )?;
        let how = run.how();
        let argv = argv(kind, backend, self.cfg.default_model.as_deref(), &title, &run);
        let env = vec![
            format!("LOOPS_JOB={name}"),
            format!("LOOPS_DONE_FILE={}", done.display()),
        ];
        let log = self.log_path(&title);
        self.tmux.launch(
            &title,
            &Launch {
                cwd: &clone,
                env,
                argv,
                log: &log,
            },
        )?;
        job.conversation = Some(run.conversation().to_string());
        self.state.put_job(name, &job)?;
        Ok(how)
    }

    /// The job watchdog: resumes the job whenever no agent process is alive
    /// and DONE is absent, at most `max_resumes` times; returns the exit code:
    /// 0 when done or when another watchdog is watching, [`GAVE_UP_EXIT`] after
    /// writing `GAVE-UP`.
    ///
    /// # Errors
    /// Unknown job, tmux or state failure.
    pub fn job_watch(&self, name: &str) -> Result<i32> {
        check_name(name)?;
        if self.state.job(name)?.is_none() {
            return Err(Error::Request(format!(
                "no job named {name:?}; start it with `loops job start {name} PROMPT`"
            )));
        }
        let Some(_lock) = try_lock(&self.job_watch_lock(name))? else {
            println!("job {name}: another watchdog is watching it");
            return Ok(0);
        };
        tracing::info!(
            job = name,
            max_resumes = self.cfg.pacing.max_resumes,
            "job watchdog started"
        );
        loop {
            if self.job_done_file(name).exists() {
                self.state.event("job-done", name, "")?;
                tracing::info!(job = name, "job is done");
                return Ok(0);
            }
            let pane = self.tmux.pane_state(&Self::job_session(name))?;
            if !matches!(pane, PaneState::Alive(_)) {
                let mut job = self
                    .state
                    .job(name)?
                    .ok_or_else(|| Error::Request(format!("job {name:?} vanished from the state")))?;
                if job.resumes >= self.cfg.pacing.max_resumes {
                    let text = format!(
                        "job {name} GAVE UP at {}: its agent stopped {} times without creating {} \
                         (last pane state: {pane:?}). The loops supervisor takes over with a fresh run \
                         (at most {} times); to retry by hand: loops job start {name} {}\n",
                        chrono::Utc::now().to_rfc3339(),
                        job.resumes + 1,
                        self.job_done_file(name).display(),
                        self.cfg.pacing.max_takeovers,
                        job.prompt,
                    );
                    let marker = self.job_gave_up_file(name);
                    crate::write_atomically(&marker, text.as_bytes())?;
                    self.state
                        .event("job-gave-up", name, &format!("{} resumes", job.resumes))?;
                    eprintln!("{text}");
                    return Ok(GAVE_UP_EXIT);
                }
                job.resumes += 1;
                self.state.put_job(name, &job)?;
                let how = self.launch_job(name, true)?;
                self.state
                    .event("job-resume", name, &format!("{how} #{}", job.resumes))?;
                tracing::info!(job = name, resumes = job.resumes, "resumed job ({pane:?})");
            }
            std::thread::sleep(self.cfg.pacing.fast_tick);
        }
    }
}

/// The supervisor's part: defer to live job watchdogs, restart dead ones,
/// take over jobs whose watchdog gave up.
///
/// # Errors
/// tmux or state failure.
pub fn supervise_jobs(l: &Loops) -> Result<()> {
    for name in l.state.job_names()? {
        if l.job_done_file(&name).exists() || l.job_watch_alive(&name) {
            continue; // done, or its own watchdog is on it: defer
        }
        let gave_up = l.job_gave_up_file(&name);
        if gave_up.exists() {
            let mut job = l.state.job(&name)?.unwrap_or_default();
            if job.takeovers >= l.cfg.pacing.max_takeovers {
                continue; // left for a human: status shows gave-up
            }
            job.takeovers += 1;
            job.resumes = 0;
            l.state.put_job(&name, &job)?;
            let kept = gave_up.with_extension(format!("{}", job.takeovers));
            std::fs::rename(&gave_up, &kept).map_err(|e| Error::io("rename to", &kept, e))?;
            l.launch_job(&name, false)?;
            l.state
                .event("job-takeover", &name, &format!("takeover #{}", job.takeovers))?;
            tracing::info!(job = %name, "took over a job whose watchdog gave up");
        } else {
            l.state.event("job-watch-restart", &name, "its watchdog was gone")?;
        }
        l.ensure_job_watch(&name)?;
    }
    Ok(())
}

/// Every job's state.
///
/// # Errors
/// tmux or state failure.
pub fn statuses(l: &Loops) -> Result<Vec<JobStatus>> {
    let state: &State = &l.state;
    let mut out = Vec::new();
    for name in state.job_names()? {
        let job: JobState = state.job(&name)?.unwrap_or_default();
        let alive = matches!(l.tmux.pane_state(&Loops::job_session(&name))?, PaneState::Alive(_));
        let s = if l.job_done_file(&name).exists() {
            "done"
        } else if l.job_gave_up_file(&name).exists() {
            "gave-up"
        } else if alive {
            "running"
        } else if l.job_watch_alive(&name) {
            "resuming"
        } else {
            "orphaned"
        };
        out.push(JobStatus {
            name,
            state: s.into(),
            resumes: job.resumes,
            takeovers: job.takeovers,
        });
    }
    Ok(out)
}
