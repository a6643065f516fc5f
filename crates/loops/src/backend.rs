//! The command line that starts or resumes an agent, per backend, and how a
//! saved conversation is found again.
//!
//! The flags are the agent CLIs' own, as their `--help` gives them (checked
//! against the installed CLIs by `tests/agent_clis.rs`, at the versions
//! `scripts/versions.env` pins):
//!
//! - Claude Code (`claude --help`): `--session-id <uuid>` ("Use a specific
//!   session ID for the conversation (must be a valid UUID)"), `-r, --resume
//!   [value]` ("Resume a conversation by session ID"), `--model <model>`,
//!   `--remote-control [name]`; the prompt is the positional `[prompt]`.
//!   Claude keeps a conversation per working folder, so a resume must run in
//!   the folder the conversation started in.
//! - opencode (`opencode run --help`): `-s, --session` ("session id to
//!   continue"), `--title` ("title for the session"), `--attach`, `-m,
//!   --model`; the message is the positional `[message..]`. opencode picks
//!   its own session ids (`ses_…`) and cannot be given one, so a fresh run is
//!   titled `<name> <loops conversation id>` and its id is looked up by that
//!   title in `opencode session list --format json` when it is first resumed.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::config::{Backend, BackendKind};
use crate::error::Result;

/// The message given to a resumed conversation.
pub const RESUME_MESSAGE: &str =
    "The loops supervisor restarted you. Continue where you left off; check git status and the repo's STATUS first.";

/// The prefix of opencode's session ids (`ses_…`); loops' own conversation
/// ids are UUIDs and never start with it.
pub const OPENCODE_SESSION_PREFIX: &str = "ses_";

/// An agent CLI could not tell its sessions.
#[derive(Debug, thiserror::Error)]
#[error("{command} (in {cwd}): {message}")]
pub struct BackendError {
    /// The command line run.
    pub command: String,
    /// Its working folder.
    pub cwd: String,
    /// Why it failed: the CLI's stderr, or what could not be parsed.
    pub message: String,
}

/// How to run an agent this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// A new conversation with id `conversation` (a UUID v4: Claude pins it
    /// with `--session-id`; opencode gets it in the session's title) and the
    /// whole `prompt` text.
    Fresh {
        /// Conversation id to pin.
        conversation: String,
        /// The prompt text, passed as one positional argument.
        prompt: String,
    },
    /// Continue conversation `conversation` (Claude: the UUID it was pinned
    /// with; opencode: its own `ses_…` id).
    Resume {
        /// Conversation id to resume.
        conversation: String,
    },
}

impl Run {
    /// How to run an agent whose saved conversation is `conversation`:
    /// resume it when `resume` and there is one, otherwise a fresh
    /// conversation with a new id (a UUID v4) and the prompt `fresh_prompt`
    /// gives. For opencode, a resume of a loops conversation id becomes a
    /// resume of opencode's own session id, found by the title the fresh run
    /// gave it ([`opencode_title`]) among the sessions of working folder
    /// `cwd`; when opencode has no such session (the agent died before it made
    /// one), the run is fresh. `title` is the agent's name (or `job-NAME`,
    /// `orchestrator`).
    ///
    /// # Errors
    /// An unreadable prompt; `opencode session list` failing.
    pub fn plan(
        kind: BackendKind,
        backend: &Backend,
        cwd: &Path,
        title: &str,
        conversation: Option<&str>,
        resume: bool,
        fresh_prompt: impl FnOnce() -> Result<String>,
    ) -> Result<Run> {
        if let Some(c) = conversation.filter(|_| resume) {
            if kind != BackendKind::Opencode || c.starts_with(OPENCODE_SESSION_PREFIX) {
                return Ok(Run::Resume {
                    conversation: c.to_string(),
                });
            }
            let wanted = opencode_title(title, c);
            if let Some(id) = opencode_session(backend, cwd, &wanted)? {
                return Ok(Run::Resume { conversation: id });
            }
            tracing::warn!(title = wanted, "opencode has no session of that title; starting fresh");
        }
        Ok(Run::Fresh {
            conversation: uuid::Uuid::new_v4().to_string(),
            prompt: fresh_prompt()?,
        })
    }

    /// The conversation id it runs.
    pub fn conversation(&self) -> &str {
        match self {
            Run::Fresh { conversation, .. } | Run::Resume { conversation } => conversation,
        }
    }

    /// `fresh` or `resumed`, for logs and reports.
    pub fn how(&self) -> &'static str {
        match self {
            Run::Fresh { .. } => "fresh",
            Run::Resume { .. } => "resumed",
        }
    }
}

/// The title a fresh opencode run gets: `<title> <conversation>`, unique per
/// conversation, so that its session can be found again.
pub fn opencode_title(title: &str, conversation: &str) -> String {
    format!("{title} {conversation}")
}

/// One entry of `opencode session list --format json` (other fields ignored).
#[derive(Debug, Deserialize)]
struct OpencodeSession {
    id: String,
    title: String,
    #[serde(default)]
    created: i64,
}

/// The id of the newest opencode session titled `title` among those
/// `opencode session list --format json` lists in working folder `cwd`
/// (opencode lists the sessions of the project `cwd` is in), if any.
///
/// # Errors
/// [`BackendError`] when the command cannot run, fails, or prints no JSON
/// list of sessions.
pub fn opencode_session(backend: &Backend, cwd: &Path, title: &str) -> Result<Option<String>, BackendError> {
    let args = ["session", "list", "--format", "json"];
    let err = |message: String| BackendError {
        command: format!("{} {}", backend.command.display(), args.join(" ")),
        cwd: cwd.display().to_string(),
        message,
    };
    let out = Command::new(&backend.command)
        .args(args)
        .current_dir(cwd)
        // opencode takes the project (whose sessions it lists) from $PWD, not
        // from the working folder; tmux sets PWD for the agents' panes.
        .env("PWD", cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // An empty list may print nothing at all.
    if text.trim().is_empty() {
        return Ok(None);
    }
    let sessions: Vec<OpencodeSession> = serde_json::from_str(text.trim())
        .map_err(|e| err(format!("not a JSON list of sessions ({e}): {}", text.trim())))?;
    Ok(sessions
        .into_iter()
        .filter(|s| s.title == title)
        .max_by_key(|s| s.created)
        .map(|s| s.id))
}

/// The argv that runs an agent: program first. The prompt is always a
/// positional argument, never piped.
///
/// - Claude: `claude [args] [--model M] [--remote-control NAME]
///   --session-id <uuid> <prompt>`; resume: `... --resume <uuid> <message>`.
/// - opencode: `opencode run [args] [--attach URL] [--model M] --title
///   "<title> <uuid>" <prompt>`; resume: `... --session <ses_id> <message>`.
pub fn argv(kind: BackendKind, b: &Backend, model: Option<&str>, title: &str, run: &Run) -> Vec<String> {
    let mut v = vec![b.command.display().to_string()];
    if kind == BackendKind::Opencode {
        v.push("run".into());
    }
    v.extend(b.args.iter().cloned());
    match kind {
        BackendKind::Claude => {
            if let Some(m) = model {
                v.extend(["--model".into(), m.into()]);
            }
            if let Some(rc) = &b.remote_control {
                v.extend(["--remote-control".into(), rc.clone()]);
            }
            match run {
                Run::Fresh { conversation, prompt } => {
                    v.extend(["--session-id".into(), conversation.clone(), prompt.clone()]);
                }
                Run::Resume { conversation } => {
                    v.extend(["--resume".into(), conversation.clone(), RESUME_MESSAGE.into()]);
                }
            }
        }
        BackendKind::Opencode => {
            if let Some(url) = &b.attach {
                v.extend(["--attach".into(), url.clone()]);
            }
            if let Some(m) = model {
                v.extend(["--model".into(), m.into()]);
            }
            match run {
                Run::Fresh { conversation, prompt } => {
                    v.extend(["--title".into(), opencode_title(title, conversation), prompt.clone()]);
                }
                Run::Resume { conversation } => {
                    v.extend(["--session".into(), conversation.clone(), RESUME_MESSAGE.into()]);
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_fresh_and_resume() {
        let b = Backend {
            command: "claude".into(),
            args: vec!["--x".into()],
            remote_control: Some("rc".into()),
            attach: None,
        };
        let f = argv(
            BackendKind::Claude,
            &b,
            Some("opus"),
            "t",
            &Run::Fresh {
                conversation: "u1".into(),
                prompt: "do it".into(),
            },
        );
        assert_eq!(
            f,
            [
                "claude",
                "--x",
                "--model",
                "opus",
                "--remote-control",
                "rc",
                "--session-id",
                "u1",
                "do it"
            ]
        );
        let r = argv(
            BackendKind::Claude,
            &b,
            None,
            "t",
            &Run::Resume {
                conversation: "u1".into(),
            },
        );
        assert_eq!(&r[..6], ["claude", "--x", "--remote-control", "rc", "--resume", "u1"]);
        assert_eq!(r[6], RESUME_MESSAGE);
    }

    #[test]
    fn opencode_fresh_is_titled_with_the_conversation_and_resume_names_the_session() {
        let b = Backend {
            command: "opencode".into(),
            args: vec![],
            remote_control: None,
            attach: Some("http://h".into()),
        };
        let f = argv(
            BackendKind::Opencode,
            &b,
            None,
            "builder",
            &Run::Fresh {
                conversation: "u".into(),
                prompt: "p".into(),
            },
        );
        assert_eq!(
            f,
            ["opencode", "run", "--attach", "http://h", "--title", "builder u", "p"]
        );
        let r = argv(
            BackendKind::Opencode,
            &b,
            Some("anthropic/claude-opus"),
            "builder",
            &Run::Resume {
                conversation: "ses_abc".into(),
            },
        );
        assert_eq!(
            r,
            [
                "opencode",
                "run",
                "--attach",
                "http://h",
                "--model",
                "anthropic/claude-opus",
                "--session",
                "ses_abc",
                RESUME_MESSAGE
            ]
        );
    }

    /// A fake `opencode` printing `list` for `session list --format json`.
    /// Like the real one (opencode 1.18 takes its project from `$PWD`, not
    /// from the process's working folder), it refuses to answer when the
    /// `PWD` it was given (read from /proc: sh itself resets `$PWD`) is not
    /// its working folder.
    fn fake_opencode(dir: &Path, list: &str) -> Backend {
        let script = dir.join("opencode");
        test_support::write_executable(
            &script,
            &format!(
                "#!/bin/sh\n[ \"$*\" = 'session list --format json' ] || {{ echo \"bad args: $*\" >&2; exit 9; }}\n\
                 tr '\\0' '\\n' </proc/$$/environ | grep -qx \"PWD=$(pwd)\" || {{ echo 'PWD is not the working folder' >&2; exit 7; }}\n\
                 cat <<'EOF'\n{list}\nEOF\n"
            ),
        );
        Backend {
            command: script,
            ..Backend::default()
        }
    }

    #[test]
    fn opencode_resume_finds_the_session_by_title_or_starts_fresh() {
        let d = tempfile::tempdir().unwrap();
        let b = fake_opencode(
            d.path(),
            r#"[{"id":"ses_old","title":"builder u1","created":1},{"id":"ses_new","title":"builder u1","created":5},{"id":"ses_x","title":"builder u2","created":9}]"#,
        );
        let plan = |conv: Option<&str>| {
            Run::plan(BackendKind::Opencode, &b, d.path(), "builder", conv, true, || {
                Ok("PROMPT".into())
            })
            .unwrap()
        };
        assert_eq!(
            plan(Some("u1")),
            Run::Resume {
                conversation: "ses_new".into()
            }
        );
        // A known opencode id is resumed as is, without asking opencode.
        assert_eq!(
            plan(Some("ses_kept")),
            Run::Resume {
                conversation: "ses_kept".into()
            }
        );
        let fresh = plan(Some("u-unknown"));
        assert!(
            matches!(&fresh, Run::Fresh { prompt, conversation } if prompt == "PROMPT" && conversation.len() == 36)
        );
        // Claude resumes its own pinned id.
        assert_eq!(
            Run::plan(BackendKind::Claude, &b, d.path(), "b", Some("u1"), true, || Ok(
                "P".into()
            ))
            .unwrap(),
            Run::Resume {
                conversation: "u1".into()
            }
        );
    }

    #[test]
    fn opencode_lookup_errors_name_the_command() {
        let d = tempfile::tempdir().unwrap();
        let b = fake_opencode(d.path(), "not json");
        let e = opencode_session(&b, d.path(), "t").unwrap_err();
        assert!(e.to_string().contains("session list --format json"), "{e}");
        assert!(e.message.contains("not a JSON list"), "{e}");
        let gone = Backend {
            command: d.path().join("no-such-opencode"),
            ..Backend::default()
        };
        let e = opencode_session(&gone, d.path(), "t").unwrap_err();
        assert!(e.message.contains("cannot run it"), "{e}");
        assert_eq!(
            opencode_session(&fake_opencode(d.path(), ""), d.path(), "t").unwrap(),
            None
        );
    }
}
