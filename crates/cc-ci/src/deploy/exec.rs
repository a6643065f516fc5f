//! Running commands in a service's container, the way abra's hooks do:
//! find a running task container of `<stack>_<service>` ([`running_container`]),
//! run an argv in it and collect its exit code and output ([`exec`]), and put a
//! file into it ([`copy_file_into`]).
//!
//! Everything goes through the Docker Engine API (bollard), never the docker
//! CLI: `GET /tasks` to find the container, `POST /containers/{id}/exec` +
//! `POST /exec/{id}/start` (attached, no TTY, so stdout and stderr arrive as
//! separate multiplexed frames) + `GET /exec/{id}/json` for the exit code,
//! and `PUT /containers/{id}/archive` with a tar built in memory (`tar` crate)
//! to copy a file in.
//!
//! Which container: abra (post-deploy commands, `docs/abra.md`,
//! "Deploying", step 16) and backup-bot-two ("Backups: the backupbot label
//! contract") exec into "a running container" of the service; an exec into
//! a dying or not-running task fails the operation (same section,
//! [I-obs]). So only a task whose desired state *and* current state are
//! both `running` is taken, the newest first; a service without one is
//! [`ExecError::NoRunningContainer`], never a wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::TaskState;
use bollard::query_parameters::{ListTasksOptions, UploadToContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;

use crate::deploy::converge::ToUtc;
use crate::deploy::stack::status_of;

/// How much of each output stream [`exec`] keeps: the last 64 KiB.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// Why a command could not be run in a service's container.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The Docker Engine API did not answer or refused a request
    /// (infrastructure: report `error`).
    #[error("Docker engine: {context}: {source}; is dockerd running and is /var/run/docker.sock reachable? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done (names the service or container).
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
    /// The service has no task that is both desired and actually `running`
    /// (the recipe's service is down, crashing or being replaced).
    #[error("no running container for service `{service}`: {detail}; a task whose desired and current state are both `running` is needed (see `docker service ps --no-trunc {service}`)")]
    NoRunningContainer {
        /// The service (`<stack>_<service>`).
        service: String,
        /// What was found instead.
        detail: String,
    },
    /// The engine refused the exec because the container is not running
    /// (it stopped, is restarting or paused, or was removed meanwhile).
    #[error("container `{container}` is not running: {detail}; its task is stopping, restarting or gone (see `docker ps -a --filter id={container}`)")]
    NotRunning {
        /// The container id.
        container: String,
        /// The engine's answer.
        detail: String,
    },
    /// The command did not finish in time. It is left running inside the
    /// container: the Engine API has no call that signals an exec'd process,
    /// so it ends on its own or when the container stops (at teardown).
    #[error("`{command}` in container `{container}` did not finish within {} s; it is left running in the container (the Docker API cannot signal an exec'd process) until it ends or the container stops; fix the command or raise the timeout", timeout.as_secs_f64())]
    Timeout {
        /// The container id.
        container: String,
        /// The argv, joined with spaces (for the message only).
        command: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The target directory of [`copy_file_into`] does not exist in the
    /// container.
    #[error("directory `{dir}` does not exist in container `{container}` ({detail}); copy into a directory the image has (e.g. `/tmp`) or create it first")]
    NoSuchDirectory {
        /// The container id.
        container: String,
        /// The directory.
        dir: String,
        /// The engine's answer.
        detail: String,
    },
    /// The file name given to [`copy_file_into`] is not a plain file name.
    #[error("cannot copy `{name}` into container `{container}`: {detail}; pass a plain file name (no `/`, not `.` or `..`) and the directory separately")]
    BadName {
        /// The container id.
        container: String,
        /// The name given.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl ExecError {
    /// True when the recipe is at fault (report `fail`): no running
    /// container, a container that stopped, a command that did not finish
    /// in time, a directory the image lacks. False for the engine
    /// ([`ExecError::Docker`]) and for a caller's bad argument
    /// ([`ExecError::BadName`]): report `error`.
    pub fn is_recipe_failure(&self) -> bool {
        match self {
            ExecError::NoRunningContainer { .. }
            | ExecError::NotRunning { .. }
            | ExecError::Timeout { .. }
            | ExecError::NoSuchDirectory { .. } => true,
            ExecError::Docker { .. } | ExecError::BadName { .. } => false,
        }
    }
}

fn docker_err(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ExecError {
    let context = context.into();
    move |source| ExecError::Docker { context, source }
}

/// The engine's message in an error response, else the error's text.
fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// What a command printed and how it ended.
///
/// Output is capped: each stream keeps its last [`OUTPUT_CAP`] bytes (64 KiB);
/// when more was printed, the text starts with a line
/// `[cc-ci: first N bytes cut; last 65536 kept]`. Bytes that are not UTF-8
/// are replaced (U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The process's exit code. 126 when the engine could not start the
    /// command (e.g. not on PATH; Docker 20.10 then puts its `OCI runtime
    /// exec failed: …` message in `stdout`).
    pub exit_code: i64,
    /// Standard output (last 64 KiB).
    pub stdout: String,
    /// Standard error (last 64 KiB).
    pub stderr: String,
}

impl ExecOutput {
    /// The last `n` non-empty lines of standard error, joined with `\n`
    /// (for failure messages).
    pub fn stderr_tail(&self, n: usize) -> String {
        tail_lines(&self.stderr, n)
    }
}

/// The last `n` non-empty lines of `s`, joined with `\n`.
pub(crate) fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last [`OUTPUT_CAP`] bytes of a stream, and how many were cut.
#[derive(Default)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    cut: usize,
}

impl Tail {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in batches, so pushing is amortised O(n).
        if self.buf.len() > 2 * OUTPUT_CAP {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > OUTPUT_CAP {
            let extra = self.buf.len() - OUTPUT_CAP;
            self.buf.drain(..extra);
            self.cut += extra;
        }
    }

    pub(crate) fn into_string(mut self) -> String {
        self.trim();
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        if self.cut > 0 {
            format!("[cc-ci: first {} bytes cut; last {OUTPUT_CAP} kept]\n{text}", self.cut)
        } else {
            text
        }
    }
}

/// A tar archive (in memory) of one regular file `name` with `bytes`,
/// owned by root, mode `mode`, dated now: what the archive API's
/// `PUT /containers/{id}/archive` takes to put one file in place.
///
/// # Errors
/// Only when `name` cannot be a tar path (the builder says why).
pub(crate) fn one_file_tar(name: &str, bytes: &[u8], mode: u32) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, name, bytes)?;
    b.into_inner()
}

/// The id of a container of service `<stack>_<service>` whose task is both
/// desired and actually `running`; the newest such task (by creation time)
/// when there are several.
///
/// Errors: [`ExecError::NoRunningContainer`] naming the service when it does
/// not exist or has no such task (abra's behaviour: a hook exec into a dying
/// or not-running task fails); [`ExecError::Docker`].
pub async fn running_container(docker: &Docker, stack: &str, service: &str) -> Result<String, ExecError> {
    let full = format!("{stack}_{service}");
    let svc = match docker.inspect_service(&full, None).await {
        Ok(s) => s,
        Err(e) if status_of(&e) == Some(404) => {
            return Err(ExecError::NoRunningContainer {
                service: full,
                detail: "the service does not exist".into(),
            })
        }
        Err(e) => return Err(docker_err(format!("inspecting service `{full}`"))(e)),
    };
    let id = svc.id.unwrap_or_default();
    let mut tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
        }))
        .await
        .map_err(docker_err(format!("listing the tasks of service `{full}`")))?;
    // The filter matches id prefixes too: keep exactly this service's tasks.
    tasks.retain(|t| t.service_id.as_deref() == Some(id.as_str()));
    tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at.as_ref().and_then(|d| d.to_utc())));
    let running = |s: Option<&TaskState>| s == Some(&TaskState::RUNNING);
    for t in &tasks {
        let status = t.status.as_ref();
        if running(t.desired_state.as_ref()) && running(status.and_then(|s| s.state.as_ref())) {
            if let Some(cid) = status
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone())
                .filter(|c| !c.is_empty())
            {
                return Ok(cid);
            }
        }
    }
    let detail = match tasks.first() {
        None => "it has no tasks".to_string(),
        Some(t) => {
            let st = t.status.as_ref();
            format!(
                "{} task(s), the newest desired `{}`, actually `{}`{}",
                tasks.len(),
                t.desired_state.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                st.and_then(|s| s.state)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into()),
                st.and_then(|s| s.err.clone().or_else(|| s.message.clone()))
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )
        }
    };
    Err(ExecError::NoRunningContainer { service: full, detail })
}

/// Runs `argv` (no shell: pass `["sh", "-c", script]` for one) in the running
/// container `container`, as the container's user, with its environment and
/// working directory, without a TTY or stdin, and waits at most `timeout`
/// (wall time, from the first request) for it to finish.
///
/// Returns the exit code and the last 64 KiB of stdout and of stderr (see
/// [`ExecOutput`]). A non-zero exit is not an error here: the caller decides.
///
/// On timeout the process is **not** killed: the Engine API cannot signal an
/// exec'd process, so it runs on inside the container until it ends or the
/// container stops; the call returns [`ExecError::Timeout`] at once.
///
/// Errors: [`ExecError::NotRunning`] (the engine refused: container stopped,
/// restarting, paused or gone), [`ExecError::Timeout`], [`ExecError::Docker`].
pub async fn exec(
    docker: &Docker,
    container: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || ExecError::Timeout {
        container: container.to_string(),
        command: argv.join(" "),
        timeout,
    };
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                attach_stdin: Some(false),
                tty: Some(false),
                cmd: Some(argv.to_vec()),
                ..Default::default()
            },
        )
        .await;
    let created = match created {
        Ok(c) => c,
        Err(e) if matches!(status_of(&e), Some(404) | Some(409)) => {
            return Err(ExecError::NotRunning {
                container: container.to_string(),
                detail: message_of(&e),
            })
        }
        Err(e) => return Err(docker_err(format!("creating an exec in container `{container}`"))(e)),
    };
    let started = tokio::time::timeout_at(
        deadline.into(),
        docker.start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        ),
    )
    .await
    .map_err(|_| timed_out())?;
    let mut output = match started {
        Ok(StartExecResults::Attached { output, .. }) => output,
        Ok(StartExecResults::Detached) => {
            return Err(ExecError::Docker {
                context: format!("starting an exec in container `{container}`"),
                source: bollard::errors::Error::IOError {
                    err: std::io::Error::other("the engine answered detached to an attached start"),
                },
            })
        }
        Err(e) if matches!(status_of(&e), Some(404) | Some(409)) => {
            return Err(ExecError::NotRunning {
                container: container.to_string(),
                detail: message_of(&e),
            })
        }
        Err(e) => return Err(docker_err(format!("starting an exec in container `{container}`"))(e)),
    };

    let mut stdout = Tail::default();
    let mut stderr = Tail::default();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), output.next())
            .await
            .map_err(|_| timed_out())?;
        match next {
            None => break,
            Some(Ok(bollard::container::LogOutput::StdErr { message })) => stderr.push(&message),
            Some(Ok(
                bollard::container::LogOutput::StdOut { message } | bollard::container::LogOutput::Console { message },
            )) => stdout.push(&message),
            Some(Ok(bollard::container::LogOutput::StdIn { .. })) => {}
            Some(Err(e)) => {
                return Err(docker_err(format!(
                    "reading the output of an exec in container `{container}`"
                ))(e))
            }
        }
    }
    drop(output);

    // The stream ends when the process has exited; the engine may take a
    // moment to record the exit code.
    loop {
        let inspected = docker
            .inspect_exec(&created.id)
            .await
            .map_err(docker_err(format!("inspecting an exec in container `{container}`")))?;
        if inspected.running != Some(true) {
            if let Some(code) = inspected.exit_code {
                return Ok(ExecOutput {
                    exit_code: code,
                    stdout: stdout.into_string(),
                    stderr: stderr.into_string(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Copies `bytes` into the container as `<dir>/<name>`, owned by root
/// (uid 0, gid 0) with permission bits `mode` (e.g. `0o644`), replacing a
/// file of that name. `dir` must exist in the container. Works on running
/// and stopped containers (`PUT /containers/{id}/archive`; the tar is built
/// in memory).
///
/// Errors: [`ExecError::BadName`] (`name` is not a plain file name),
/// [`ExecError::NoSuchDirectory`], [`ExecError::NotRunning`] (the container
/// is gone), [`ExecError::Docker`].
pub async fn copy_file_into(
    docker: &Docker,
    container: &str,
    dir: &str,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ExecError> {
    let bad = |detail: &str| ExecError::BadName {
        container: container.to_string(),
        name: name.to_string(),
        detail: detail.to_string(),
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(bad("not a plain file name"));
    }
    let tar = one_file_tar(name, bytes, mode).map_err(|e| bad(&e.to_string()))?;
    let res = docker
        .upload_to_container(
            container,
            Some(UploadToContainerOptions {
                path: dir.to_string(),
                ..Default::default()
            }),
            bollard::body_full(tar.into()),
        )
        .await;
    match res {
        Ok(()) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => {
            let detail = message_of(&e);
            if detail.to_ascii_lowercase().contains("no such container") {
                Err(ExecError::NotRunning {
                    container: container.to_string(),
                    detail,
                })
            } else {
                Err(ExecError::NoSuchDirectory {
                    container: container.to_string(),
                    dir: dir.to_string(),
                    detail,
                })
            }
        }
        Err(e) => Err(docker_err(format!(
            "copying `{name}` into `{dir}` of container `{container}`"
        ))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_64_kib_and_says_so() {
        let mut t = Tail::default();
        for _ in 0..5 {
            t.push(&[b'a'; OUTPUT_CAP]);
        }
        t.push(b"end");
        let s = t.into_string();
        assert!(s.starts_with(&format!("[cc-ci: first {} bytes cut;", 4 * OUTPUT_CAP + 3)));
        assert!(s.ends_with("aaend"));
        let mut short = Tail::default();
        short.push(b"hello\n");
        assert_eq!(short.into_string(), "hello\n");
    }

    #[test]
    fn tail_lines_skips_blank_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail_lines("", 3), "");
    }

    #[test]
    fn recipe_failures_are_told_apart() {
        assert!(ExecError::NoRunningContainer {
            service: "s".into(),
            detail: "d".into()
        }
        .is_recipe_failure());
        assert!(!ExecError::BadName {
            container: "c".into(),
            name: "a/b".into(),
            detail: "d".into()
        }
        .is_recipe_failure());
    }
}
