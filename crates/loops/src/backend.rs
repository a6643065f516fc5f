//! The command line that starts or resumes an agent, per backend.

use crate::config::{Backend, BackendKind};

/// The message given to a resumed conversation.
pub const RESUME_MESSAGE: &str =
    "The loops supervisor restarted you. Continue where you left off; check git status and the repo's STATUS first.";

/// How to run an agent this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// A new conversation with id `conversation` (Claude pins it with
    /// `--session-id`) and the whole `prompt` text.
    Fresh {
        /// Conversation id to pin (a UUID v4).
        conversation: String,
        /// The prompt text, passed as one positional argument.
        prompt: String,
    },
    /// Continue conversation `conversation`.
    Resume {
        /// Conversation id to resume.
        conversation: String,
    },
}

impl Run {
    /// Resumes `conversation` when `resume` and there is one; otherwise a fresh
    /// conversation with a new id and the prompt `fresh_prompt` gives.
    ///
    /// # Errors
    /// Whatever `fresh_prompt` returns (an unreadable prompt file).
    pub fn choose(
        conversation: Option<&str>,
        resume: bool,
        fresh_prompt: impl FnOnce() -> anyhow::Result<String>,
    ) -> anyhow::Result<Run> {
        Ok(match conversation {
            Some(c) if resume => Run::Resume {
                conversation: c.to_string(),
            },
            _ => Run::Fresh {
                conversation: uuid::Uuid::new_v4().to_string(),
                prompt: fresh_prompt()?,
            },
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

/// The argv that runs an agent: program first. The prompt is always a
/// positional argument, never piped.
///
/// - Claude (`claude --help`): `claude [args] [--model M] [--remote-control NAME]
///   --session-id <uuid> <prompt>`; resume: `... --resume <uuid> <message>`.
/// - opencode (`opencode run --help`): `opencode run [args] [--attach URL]
///   [--model M] --title <title> <prompt>`; resume: `... --continue <message>`
///   (opencode picks its own session ids, so the last one of the clone is continued).
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
            v.extend(["--title".into(), title.into()]);
            match run {
                Run::Fresh { prompt, .. } => v.push(prompt.clone()),
                Run::Resume { .. } => v.extend(["--continue".into(), RESUME_MESSAGE.into()]),
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
    fn opencode_fresh_and_resume() {
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
            ["opencode", "run", "--attach", "http://h", "--title", "builder", "p"]
        );
        let r = argv(
            BackendKind::Opencode,
            &b,
            None,
            "builder",
            &Run::Resume {
                conversation: "u".into(),
            },
        );
        assert_eq!(
            r[..7],
            [
                "opencode",
                "run",
                "--attach",
                "http://h",
                "--title",
                "builder",
                "--continue"
            ]
        );
    }
}
