//! The tmux server the loops live in, driven through the `tmux` CLI (Debian's
//! tmux 3.3 or newer: commands given as argv, `-e` environment, `;` sequences).

use std::path::Path;
use std::process::{Command, Output};

/// A tmux error: the command and what tmux said.
#[derive(Debug, thiserror::Error)]
#[error("tmux {args}: {message}")]
pub struct TmuxError {
    /// The arguments given to tmux.
    pub args: String,
    /// tmux's stderr, or why it could not run (install Debian's `tmux`).
    pub message: String,
}

/// What a session's first pane is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneState {
    /// No such session.
    Missing,
    /// The session is there but its program exited (kept by `remain-on-exit`),
    /// with its exit status when tmux knows it.
    Dead(Option<i32>),
    /// The program is running, with this process id.
    Alive(u32),
}

/// A handle on one tmux server (`tmux -L <socket>`, or the default one).
#[derive(Debug, Clone)]
pub struct Tmux {
    socket: Option<String>,
    server_unit: Option<String>,
}

/// How to start a program in a pane.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// Working directory.
    pub cwd: &'a Path,
    /// Extra environment, as `NAME=value`.
    pub env: Vec<String>,
    /// The program and its arguments (run directly, no shell).
    pub argv: Vec<String>,
    /// A file the pane's output is appended to.
    pub log: &'a Path,
}

impl Tmux {
    /// A handle on the server at socket `socket` (`tmux -L`), or tmux's
    /// default server. With `server_unit` (a systemd unit that runs the
    /// server), it never starts a server: creating a session when none
    /// answers is an error naming that unit.
    pub fn new(socket: Option<String>, server_unit: Option<String>) -> Self {
        Tmux { socket, server_unit }
    }

    /// Whether a tmux server answers on the socket (`list-sessions` succeeds,
    /// also when it has no sessions).
    pub fn server_running(&self) -> bool {
        self.run(&["list-sessions"]).is_ok_and(|o| o.status.success())
    }

    fn run(&self, args: &[&str]) -> Result<Output, TmuxError> {
        let mut cmd = Command::new("tmux");
        if let Some(s) = &self.socket {
            cmd.args(["-L", s]);
        }
        cmd.args(args);
        cmd.output().map_err(|e| TmuxError {
            args: args.join(" "),
            message: format!("cannot run tmux ({e}); install Debian's tmux package"),
        })
    }

    fn ok(&self, args: &[&str]) -> Result<String, TmuxError> {
        let out = self.run(args)?;
        if !out.status.success() {
            return Err(TmuxError {
                args: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The state of session `name`'s active pane.
    ///
    /// # Errors
    /// When tmux cannot run.
    pub fn pane_state(&self, name: &str) -> Result<PaneState, TmuxError> {
        // display-message exits 0 even for a missing target, so ask has-session first.
        if !self.run(&["has-session", "-t", &format!("={name}")])?.status.success() {
            return Ok(PaneState::Missing);
        }
        let target = exact(name);
        let out = self.run(&[
            "display-message",
            "-p",
            "-t",
            &target,
            "#{pane_dead}|#{pane_pid}|#{pane_dead_status}",
        ])?;
        if !out.status.success() || out.stdout.starts_with(b"|") {
            return Ok(PaneState::Missing);
        }
        let s = String::from_utf8_lossy(&out.stdout);
        let mut parts = s.trim().split('|');
        let dead = parts.next() == Some("1");
        let pid = parts.next().and_then(|p| p.parse().ok());
        let status = parts.next().and_then(|p| p.parse().ok());
        Ok(match (dead, pid) {
            (false, Some(pid)) => PaneState::Alive(pid),
            _ => PaneState::Dead(status),
        })
    }

    /// Starts session `name` running `launch` (detached), keeping the pane after
    /// the program exits so its end can be seen, and piping its output to the log.
    ///
    /// # Errors
    /// When the session exists already or tmux fails; when a server unit is
    /// set and no server answers (the session is not created, and no server
    /// started).
    pub fn start(&self, name: &str, launch: &Launch<'_>) -> Result<(), TmuxError> {
        if let Some(unit) = &self.server_unit {
            if !self.server_running() {
                return Err(TmuxError {
                    args: format!("new-session -s {name}"),
                    message: format!(
                        "no tmux server answers on socket {}; {unit} runs it (tmux_server_unit), and loops never \
                         starts one itself: `systemctl start {unit}`, then try again",
                        self.socket.as_deref().unwrap_or("default")
                    ),
                });
            }
        }
        let cwd = launch.cwd.display().to_string();
        let pipe = format!("cat >> {}", shell_quote(&launch.log.display().to_string()));
        let target = exact(name);
        let mut args: Vec<&str> = vec!["new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-c", &cwd];
        for e in &launch.env {
            args.extend(["-e", e]);
        }
        args.push("--");
        args.extend(launch.argv.iter().map(String::as_str));
        args.extend([";", "set-option", "-t", &target, "remain-on-exit", "on"]);
        args.extend([";", "pipe-pane", "-o", "-t", &target, &pipe]);
        self.ok(&args).map(drop)
    }

    /// Replaces the program in session `name`'s pane with `launch` (killing a
    /// live one), keeping the session.
    ///
    /// # Errors
    /// When the session is missing or tmux fails.
    pub fn respawn(&self, name: &str, launch: &Launch<'_>) -> Result<(), TmuxError> {
        let cwd = launch.cwd.display().to_string();
        let pipe = format!("cat >> {}", shell_quote(&launch.log.display().to_string()));
        let target = exact(name);
        let mut args: Vec<&str> = vec!["respawn-pane", "-k", "-t", &target, "-c", &cwd];
        for e in &launch.env {
            args.extend(["-e", e]);
        }
        args.push("--");
        args.extend(launch.argv.iter().map(String::as_str));
        args.extend([";", "pipe-pane", "-o", "-t", &target, &pipe]);
        self.ok(&args).map(drop)
    }

    /// Starts `launch` in session `name`: a fresh session when it is missing,
    /// a respawned pane when the session is there.
    ///
    /// # Errors
    /// As [`Tmux::start`] and [`Tmux::respawn`].
    pub fn launch(&self, name: &str, launch: &Launch<'_>) -> Result<(), TmuxError> {
        match self.pane_state(name)? {
            PaneState::Missing => self.start(name, launch),
            _ => self.respawn(name, launch),
        }
    }

    /// Kills session `name`; a missing session is not an error.
    ///
    /// # Errors
    /// When tmux cannot run.
    pub fn kill(&self, name: &str) -> Result<(), TmuxError> {
        self.run(&["kill-session", "-t", &exact(name)]).map(drop)
    }

    /// The visible text of session `name`'s pane.
    ///
    /// # Errors
    /// When the session is missing or tmux fails.
    pub fn capture(&self, name: &str) -> Result<String, TmuxError> {
        self.ok(&["capture-pane", "-p", "-t", &exact(name)])
    }

    /// Types `text` into session `name`'s pane, then Enter.
    ///
    /// # Errors
    /// When the session is missing or tmux fails.
    pub fn type_line(&self, name: &str, text: &str) -> Result<(), TmuxError> {
        let target = exact(name);
        self.ok(&["send-keys", "-t", &target, "-l", text])?;
        self.ok(&["send-keys", "-t", &target, "Enter"]).map(drop)
    }
}

/// A target naming exactly session `name` (no prefix matching).
fn exact(name: &str) -> String {
    format!("={name}:")
}

/// `s` quoted for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
