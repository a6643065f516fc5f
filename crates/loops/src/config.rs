//! The supervisor's configuration: one TOML file in the orchestrator's workspace.
//!
//! ```toml
//! workspace = "."                  # state, logs and REBOOTS.md; relative to this file
//! origin = "/srv/git/cc-ci.git"    # the repo the agents push to (URL or path)
//! branch = "main"                  # the branch whose STATUS files and commits count
//! backend = "claude"               # default backend: "claude" or "opencode"
//! model = "opus"                   # default model (optional)
//! tmux_socket = "loops"            # optional `tmux -L` socket; default: tmux's own
//! tmux_server_unit = "cc-ci-loops-tmux.service"  # optional: a unit owns the tmux server
//!
//! [watchdog]
//! heavy_check = 300                # seconds between heavy checks
//! fast_tick = 30                   # seconds between fast ticks
//! stall_idle = 300                 # seconds a pane may stay unchanged
//! max_resumes = 20                 # resumes of a one-shot job before it hands off
//! max_takeovers = 1                # fresh restarts the supervisor gives a job that gave up
//!
//! [backends.claude]
//! command = "claude"
//! args = ["--permission-mode", "acceptEdits"]
//! remote_control = "cc-ci"         # optional
//!
//! [backends.opencode]
//! command = "opencode"
//! attach = "http://127.0.0.1:4096"
//!
//! [agents.builder]
//! prompt = "prompts/builder.md"    # default prompt; a phase may override it
//! clone = "/srv/loops/builder"     # the agent's working clone
//! session = "builder"              # tmux session name (default: the agent's name)
//! inbox = "INBOX/builder.md"       # file on origin whose change pings this agent
//!
//! [agents.adversary]
//! prompt = "prompts/adversary.md"
//! clone = "/srv/loops/adversary"
//!
//! [handoff]
//! claim = "adversary"              # pinged on commits whose subject starts `claim(`
//! review = "builder"               # pinged on commits whose subject starts `review(`
//!
//! [[phases]]
//! name = "build"
//! status = "STATUS.md"             # a real `## DONE` heading here on origin ends the phase
//! prompts = { builder = "prompts/build-builder.md" }
//!
//! [orchestrator]                   # optional: the orchestrator's own agent session
//! prompt = "prompts/orchestrator.md"
//! dir = "/srv/loops/orchestrator"  # its working folder (Claude keeps conversations per folder)
//! session = "orchestrator"         # tmux session name (the default)
//! backend = "claude"               # default: the global backend
//! model = "opus"                   # default: the global model
//! ```
//!
//! With `tmux_server_unit` set, `loops` never starts a tmux server itself: the
//! named unit runs it (on `tmux_socket`), and when none answers, `loops`
//! fails naming that unit. So no tmux server, and no agent, ever lives in the
//! cgroup of a short-lived unit that merely ran `loops start`.
//!
//! Unknown keys, wrong types and bad values are [`ConfigError`]s that name the
//! file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A configuration error: the file, the 1-based line (when one is to blame)
/// and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// The 1-based line of the offending key or value, if known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Which agent command-line interface runs an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Claude Code's interactive CLI: the prompt is the positional argument,
    /// never piped; a session is pinned with `--session-id <uuid>` and resumed
    /// with `--resume <uuid>`.
    Claude,
    /// opencode: `opencode run --attach <url> --title <title> <prompt>`,
    /// resumed with `--session <id>` when one is known, else `--continue`.
    Opencode,
}

/// Settings of one backend.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// Program to run (a name on PATH or a path). Default: `claude` / `opencode`.
    pub command: PathBuf,
    /// Extra arguments placed before the backend's own ones.
    pub args: Vec<String>,
    /// Claude only: a remote-control name, passed as `--remote-control <name>`.
    pub remote_control: Option<String>,
    /// opencode only: the server URL for `--attach`.
    pub attach: Option<String>,
}

/// One long-lived agent loop.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The agent's name (its key under `[agents]`).
    pub name: String,
    /// Default prompt file.
    pub prompt: PathBuf,
    /// The agent's working clone of the repository.
    pub clone: PathBuf,
    /// tmux session name.
    pub session: String,
    /// Backend that runs it.
    pub backend: BackendKind,
    /// Model, if one is set for it or globally.
    pub model: Option<String>,
    /// Path, inside the repository, of the file whose change on origin pings it.
    pub inbox: String,
}

/// One phase of the work: its own prompts and its own STATUS file.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Name shown in `status`.
    pub name: String,
    /// Path inside the repository of the STATUS file whose real `## DONE`
    /// heading on origin ends the phase.
    pub status: String,
    /// Prompt file per agent name; agents not named use their default prompt.
    pub prompts: BTreeMap<String, PathBuf>,
}

/// The watchdog's pacing.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Time between heavy checks (dead sessions, fatal panes, DONE). Default 300 s.
    pub heavy_check: Duration,
    /// Time between fast ticks (handoff pings, stall check). Default 30 s.
    pub fast_tick: Duration,
    /// How long a pane may stay unchanged before its loop counts as stalled. Default 300 s.
    pub stall_idle: Duration,
    /// Resumes a one-shot job gets before it hands off. Default 20.
    pub max_resumes: u32,
    /// Fresh restarts the supervisor gives a job after its watchdog gave up. Default 1.
    pub max_takeovers: u32,
}

/// Substrings (case-insensitive) that mark a pane as needing healing when they
/// appear in its last lines.
#[derive(Debug, Clone)]
pub struct Patterns {
    /// Fatal errors of the agent CLI or its service.
    pub fatal: Vec<String>,
    /// Usage-limit messages.
    pub usage_limit: Vec<String>,
}

/// The orchestrator's own agent session: one conversation kept across
/// restarts and reboots (`loops orchestrator start|resume|status|stop`).
#[derive(Debug, Clone)]
pub struct Orchestrator {
    /// Prompt file of a fresh conversation.
    pub prompt: PathBuf,
    /// Its working folder: every run of it starts there, so that Claude finds
    /// the conversation again (it keeps them per folder).
    pub dir: PathBuf,
    /// tmux session name (default `orchestrator`).
    pub session: String,
    /// Backend that runs it (default: the global `backend`).
    pub backend: BackendKind,
    /// Model (default: the global `model`).
    pub model: Option<String>,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file itself.
    pub file: PathBuf,
    /// The text it was parsed from (the watchdog restarts itself when the
    /// file's text changes to another valid configuration).
    pub source: String,
    /// Folder for state, logs and REBOOTS.md.
    pub workspace: PathBuf,
    /// The repository the agents push to.
    pub origin: String,
    /// The branch that counts (default `main`).
    pub branch: String,
    /// `tmux -L` socket name, if any.
    pub tmux_socket: Option<String>,
    /// The systemd unit that runs the tmux server, if one does: `loops` then
    /// never starts a server itself.
    pub tmux_server_unit: Option<String>,
    /// Watchdog pacing.
    pub pacing: Pacing,
    /// Backend settings by kind.
    pub backends: BTreeMap<&'static str, Backend>,
    /// Agents by name, in name order.
    pub agents: Vec<Agent>,
    /// Agent pinged on `claim(` commits.
    pub claim_to: Option<String>,
    /// Agent pinged on `review(` commits.
    pub review_to: Option<String>,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Heal patterns.
    pub patterns: Patterns,
    /// Default backend (for one-shot jobs).
    pub default_backend: BackendKind,
    /// Default model (for one-shot jobs).
    pub default_model: Option<String>,
    /// The orchestrator's own session, if `[orchestrator]` is given.
    pub orchestrator: Option<Orchestrator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    workspace: Option<Spanned<PathBuf>>,
    origin: Spanned<String>,
    branch: Option<String>,
    backend: Option<BackendKind>,
    model: Option<String>,
    tmux_socket: Option<String>,
    tmux_server_unit: Option<String>,
    #[serde(default)]
    watchdog: RawWatchdog,
    #[serde(default)]
    backends: RawBackends,
    agents: BTreeMap<String, Spanned<RawAgent>>,
    #[serde(default)]
    handoff: RawHandoff,
    phases: Spanned<Vec<RawPhase>>,
    #[serde(default)]
    patterns: RawPatterns,
    orchestrator: Option<Spanned<RawOrchestrator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrchestrator {
    prompt: Spanned<PathBuf>,
    dir: Spanned<PathBuf>,
    session: Option<String>,
    backend: Option<BackendKind>,
    model: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    heavy_check: Option<Spanned<f64>>,
    fast_tick: Option<Spanned<f64>>,
    stall_idle: Option<Spanned<f64>>,
    max_resumes: Option<Spanned<i64>>,
    max_takeovers: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackends {
    claude: Option<RawBackend>,
    opencode: Option<RawBackend>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    command: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    remote_control: Option<String>,
    attach: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    prompt: Spanned<PathBuf>,
    clone: Spanned<PathBuf>,
    session: Option<String>,
    backend: Option<BackendKind>,
    model: Option<String>,
    inbox: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHandoff {
    claim: Option<Spanned<String>>,
    review: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: Spanned<String>,
    status: String,
    #[serde(default)]
    prompts: BTreeMap<Spanned<String>, Spanned<PathBuf>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPatterns {
    fatal: Option<Vec<String>>,
    usage_limit: Option<Vec<String>>,
}

/// Where every key of the configuration is documented (this file's header),
/// relative to the repository root; error messages point there.
pub const CONFIG_DOC: &str = "crates/loops/src/config.rs";

/// Default fatal-error substrings (matched case-insensitively on a pane's last lines).
pub const DEFAULT_FATAL: &[&str] = &[
    "API Error: 5",
    "Internal server error",
    "overloaded_error",
    "fatal error:",
    "panicked at",
];

/// Default usage-limit substrings (matched case-insensitively on a pane's last lines).
pub const DEFAULT_USAGE_LIMIT: &[&str] = &[
    "usage limit reached",
    "limit will reset",
    "rate_limit_error",
    "out of extra usage",
];

impl Config {
    /// Reads and validates the configuration file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and line for unreadable files, TOML
    /// syntax errors, unknown keys, wrong types, non-positive intervals,
    /// references to unknown agents and prompt files or clones that do not exist.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read the loops configuration: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates configuration `text` that was read from `path`
    /// (relative paths in it resolve against `path`'s folder).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            file: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            err(
                e.span(),
                format!("{} (see the example at the top of {CONFIG_DOC})", e.message().trim()),
            )
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };

        let seconds = |v: &Option<Spanned<f64>>, key: &str, default: f64| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(Duration::from_secs_f64(default)),
                Some(s) if s.get_ref().is_finite() && *s.get_ref() > 0.0 && *s.get_ref() < 1e9 => {
                    Ok(Duration::from_secs_f64(*s.get_ref()))
                }
                Some(s) => Err(err(
                    Some(s.span()),
                    format!(
                        "watchdog.{key} must be a positive number of seconds, not {}",
                        s.get_ref()
                    ),
                )),
            }
        };
        let count = |v: &Option<Spanned<i64>>, key: &str, default: u32| -> Result<u32, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => u32::try_from(*s.get_ref()).map_err(|_| {
                    err(
                        Some(s.span()),
                        format!("watchdog.{key} must be a count of 0 or more, not {}", s.get_ref()),
                    )
                }),
            }
        };
        let pacing = Pacing {
            heavy_check: seconds(&raw.watchdog.heavy_check, "heavy_check", 300.0)?,
            fast_tick: seconds(&raw.watchdog.fast_tick, "fast_tick", 30.0)?,
            stall_idle: seconds(&raw.watchdog.stall_idle, "stall_idle", 300.0)?,
            max_resumes: count(&raw.watchdog.max_resumes, "max_resumes", 20)?,
            max_takeovers: count(&raw.watchdog.max_takeovers, "max_takeovers", 1)?,
        };

        let mut backends = BTreeMap::new();
        for (name, raw_backend, default_cmd) in [
            ("claude", raw.backends.claude, "claude"),
            ("opencode", raw.backends.opencode, "opencode"),
        ] {
            let b = raw_backend.unwrap_or_default();
            backends.insert(
                name,
                Backend {
                    command: b.command.unwrap_or_else(|| PathBuf::from(default_cmd)),
                    args: b.args,
                    remote_control: b.remote_control,
                    attach: b.attach,
                },
            );
        }
        let default_backend = raw.backend.unwrap_or(BackendKind::Claude);

        if raw.agents.is_empty() {
            return Err(err(None, "no [agents.<name>] table: name at least one agent".into()));
        }
        let mut agents = Vec::new();
        let mut sessions = BTreeMap::new();
        for (name, spanned) in &raw.agents {
            let a = spanned.get_ref();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(err(
                    Some(spanned.span()),
                    format!("agent name {name:?} must be letters, digits, '-' or '_'"),
                ));
            }
            let prompt = resolve(a.prompt.get_ref());
            if !prompt.is_file() {
                return Err(err(
                    Some(a.prompt.span()),
                    format!("agents.{name}.prompt: no such file {}", prompt.display()),
                ));
            }
            let clone = resolve(a.clone.get_ref());
            if !clone.join(".git").exists() {
                return Err(err(
                    Some(a.clone.span()),
                    format!(
                        "agents.{name}.clone: {} is not a git clone; clone the origin there first",
                        clone.display()
                    ),
                ));
            }
            let session = a.session.clone().unwrap_or_else(|| name.clone());
            if let Some(other) = sessions.insert(session.clone(), name.clone()) {
                return Err(err(
                    Some(spanned.span()),
                    format!("agents {other} and {name} share tmux session {session:?}; give each its own"),
                ));
            }
            agents.push(Agent {
                name: name.clone(),
                prompt,
                clone,
                session,
                backend: a.backend.unwrap_or(default_backend),
                model: a.model.clone().or_else(|| raw.model.clone()),
                inbox: a.inbox.clone().unwrap_or_else(|| format!("INBOX/{name}.md")),
            });
        }
        let agent_ref =
            |v: &Option<Spanned<String>>, key: &str, default: &str| -> Result<Option<String>, ConfigError> {
                match v {
                    Some(s) if raw.agents.contains_key(s.get_ref()) => Ok(Some(s.get_ref().clone())),
                    Some(s) => Err(err(
                        Some(s.span()),
                        format!(
                            "handoff.{key} names agent {:?}, which is not under [agents]",
                            s.get_ref()
                        ),
                    )),
                    None => Ok(raw.agents.contains_key(default).then(|| default.to_string())),
                }
            };
        let claim_to = agent_ref(&raw.handoff.claim, "claim", "adversary")?;
        let review_to = agent_ref(&raw.handoff.review, "review", "builder")?;

        if raw.phases.get_ref().is_empty() {
            return Err(err(
                Some(raw.phases.span()),
                "phases is empty: give at least one [[phases]]".into(),
            ));
        }
        let mut phases = Vec::new();
        for p in raw.phases.get_ref() {
            let mut prompts = BTreeMap::new();
            for (agent, file) in &p.prompts {
                if !raw.agents.contains_key(agent.get_ref()) {
                    return Err(err(
                        Some(agent.span()),
                        format!(
                            "phase {:?} has a prompt for agent {:?}, which is not under [agents]",
                            p.name.get_ref(),
                            agent.get_ref()
                        ),
                    ));
                }
                let f = resolve(file.get_ref());
                if !f.is_file() {
                    return Err(err(Some(file.span()), format!("no such prompt file {}", f.display())));
                }
                prompts.insert(agent.get_ref().clone(), f);
            }
            if p.name.get_ref().trim().is_empty() {
                return Err(err(Some(p.name.span()), "a phase needs a non-empty name".into()));
            }
            phases.push(Phase {
                name: p.name.get_ref().clone(),
                status: p.status.clone(),
                prompts,
            });
        }

        let orchestrator = match &raw.orchestrator {
            None => None,
            Some(spanned) => {
                let o = spanned.get_ref();
                let prompt = resolve(o.prompt.get_ref());
                if !prompt.is_file() {
                    return Err(err(
                        Some(o.prompt.span()),
                        format!("orchestrator.prompt: no such file {}", prompt.display()),
                    ));
                }
                let dir = resolve(o.dir.get_ref());
                if !dir.is_dir() {
                    return Err(err(
                        Some(o.dir.span()),
                        format!(
                            "orchestrator.dir: no such folder {}; create it (or clone the repository there) first",
                            dir.display()
                        ),
                    ));
                }
                let session = o.session.clone().unwrap_or_else(|| "orchestrator".into());
                let taken = if let Some(agent) = sessions.get(&session) {
                    Some(format!("agent {agent}'s"))
                } else if session == crate::supervisor::WATCHDOG_SESSION {
                    Some("the watchdog's".into())
                } else if session.starts_with("job-") {
                    Some("a one-shot job's (job-*)".into())
                } else {
                    None
                };
                if let Some(whose) = taken {
                    return Err(err(
                        Some(spanned.span()),
                        format!("orchestrator.session {session:?} is {whose} tmux session; give it its own"),
                    ));
                }
                Some(Orchestrator {
                    prompt,
                    dir,
                    session,
                    backend: o.backend.unwrap_or(default_backend),
                    model: o.model.clone().or_else(|| raw.model.clone()),
                })
            }
        };

        let workspace = raw
            .workspace
            .as_ref()
            .map(|w| resolve(w.get_ref()))
            .unwrap_or_else(|| base.clone());
        let origin_raw = raw.origin.get_ref();
        if origin_raw.trim().is_empty() {
            return Err(err(
                Some(raw.origin.span()),
                "origin is empty: give the repository URL or path".into(),
            ));
        }
        // A relative local path resolves against the config file's folder.
        let origin = if !origin_raw.contains(':') && !Path::new(origin_raw).is_absolute() {
            resolve(Path::new(origin_raw)).display().to_string()
        } else {
            origin_raw.clone()
        };
        let own = |v: Option<Vec<String>>, d: &[&str]| v.unwrap_or_else(|| d.iter().map(|s| s.to_string()).collect());
        Ok(Config {
            file: path.to_path_buf(),
            source: text.to_string(),
            workspace,
            origin,
            branch: raw.branch.unwrap_or_else(|| "main".into()),
            tmux_socket: raw.tmux_socket,
            tmux_server_unit: raw.tmux_server_unit,
            pacing,
            backends,
            agents,
            claim_to,
            review_to,
            phases,
            patterns: Patterns {
                fatal: own(raw.patterns.fatal, DEFAULT_FATAL),
                usage_limit: own(raw.patterns.usage_limit, DEFAULT_USAGE_LIMIT),
            },
            default_backend,
            default_model: raw.model,
            orchestrator,
        })
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The prompt file `agent` uses in `phase`.
    pub fn prompt_for(&self, agent: &Agent, phase: &Phase) -> PathBuf {
        phase
            .prompts
            .get(&agent.name)
            .cloned()
            .unwrap_or_else(|| agent.prompt.clone())
    }

    /// The settings of backend `kind`.
    pub fn backend(&self, kind: BackendKind) -> &Backend {
        &self.backends[match kind {
            BackendKind::Claude => "claude",
            BackendKind::Opencode => "opencode",
        }]
    }
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.md"), "build").unwrap();
        std::fs::write(d.path().join("a.md"), "adv").unwrap();
        for c in ["cb", "ca"] {
            std::fs::create_dir_all(d.path().join(c).join(".git")).unwrap();
        }
        let p = d.path().join("loops.toml");
        (d, p)
    }

    const GOOD: &str = r#"origin = "origin.git"
[watchdog]
fast_tick = 0.5
[agents.builder]
prompt = "b.md"
clone = "cb"
[agents.adversary]
prompt = "a.md"
clone = "ca"
backend = "opencode"
[[phases]]
name = "one"
status = "STATUS.md"
prompts = { adversary = "b.md" }
"#;

    #[test]
    fn good_config_resolves_defaults_and_paths() {
        let (d, p) = fixture();
        let c = Config::parse(&p, GOOD).unwrap();
        assert_eq!(c.pacing.heavy_check, Duration::from_secs(300));
        assert_eq!(c.pacing.fast_tick, Duration::from_millis(500));
        assert_eq!(c.pacing.stall_idle, Duration::from_secs(300));
        assert_eq!(c.pacing.max_resumes, 20);
        assert_eq!(c.claim_to.as_deref(), Some("adversary"));
        assert_eq!(c.review_to.as_deref(), Some("builder"));
        assert_eq!(c.origin, d.path().join("origin.git").display().to_string());
        let adv = c.agent("adversary").unwrap();
        assert_eq!(adv.backend, BackendKind::Opencode);
        assert_eq!(adv.inbox, "INBOX/adversary.md");
        assert_eq!(c.prompt_for(adv, &c.phases[0]), d.path().join("b.md"));
        let b = c.agent("builder").unwrap();
        assert_eq!(c.prompt_for(b, &c.phases[0]), d.path().join("b.md"));
        assert_eq!(b.session, "builder");
    }

    fn error_of(text: &str) -> ConfigError {
        let (_d, p) = fixture();
        Config::parse(&p, text).unwrap_err()
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = error_of(&GOOD.replace("fast_tick = 0.5", "fast_tick = 0.5\nstal_idle = 3"));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("stal_idle"), "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let e = error_of(&GOOD.replace("fast_tick = 0.5", "fast_tick = -1"));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("positive"), "{e}");
        let e = error_of(&GOOD.replace("fast_tick = 0.5", "fast_tick = \"fast\""));
        assert_eq!(e.line, Some(3), "{e}");
        let e = error_of(&GOOD.replace("fast_tick = 0.5", "max_resumes = -2"));
        assert_eq!(e.line, Some(3), "{e}");
        let e = error_of(&GOOD.replace("backend = \"opencode\"", "backend = \"codex\""));
        assert_eq!(e.line, Some(10), "{e}");
    }

    #[test]
    fn references_and_files_are_checked() {
        let e = error_of(&format!("{GOOD}[handoff]\nclaim = \"nobody\"\n"));
        assert_eq!(e.line, Some(16), "{e}");
        let e = error_of(&GOOD.replace("prompts = { adversary", "prompts = { ghost"));
        assert_eq!(e.line, Some(14), "{e}");
        let e = error_of(&GOOD.replace("prompt = \"b.md\"", "prompt = \"missing.md\""));
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("missing.md"));
        let e = error_of(&GOOD.replace("clone = \"cb\"", "clone = \"nope\""));
        assert_eq!(e.line, Some(6), "{e}");
    }

    #[test]
    fn syntax_errors_point_at_the_documented_example() {
        let e = error_of(&GOOD.replace("fast_tick = 0.5", "fast_tick = = 0.5"));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains(CONFIG_DOC), "{e}");
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(CONFIG_DOC);
        assert!(
            doc.is_file(),
            "the error points at {}, which does not exist",
            doc.display()
        );
    }

    #[test]
    fn orchestrator_table_is_optional_and_checked() {
        let (d, p) = fixture();
        assert!(Config::parse(&p, GOOD).unwrap().orchestrator.is_none());
        std::fs::create_dir(d.path().join("od")).unwrap();
        let with = format!("model = \"opus\"\n{GOOD}[orchestrator]\nprompt = \"a.md\"\ndir = \"od\"\n");
        let c = Config::parse(&p, &with).unwrap();
        let o = c.orchestrator.unwrap();
        assert_eq!(o.session, "orchestrator");
        assert_eq!(o.dir, d.path().join("od"));
        assert_eq!(o.prompt, d.path().join("a.md"));
        assert_eq!(o.backend, BackendKind::Claude);
        assert_eq!(o.model.as_deref(), Some("opus"));

        let bad_dir = Config::parse(&p, &with.replace("dir = \"od\"", "dir = \"nowhere\"")).unwrap_err();
        assert_eq!(bad_dir.line, Some(18), "{bad_dir}");
        assert!(bad_dir.message.contains("orchestrator.dir"), "{bad_dir}");
        let clash = Config::parse(&p, &format!("{with}session = \"builder\"\n")).unwrap_err();
        assert!(clash.message.contains("agent builder's"), "{clash}");
        let clash = Config::parse(&p, &format!("{with}session = \"loops-watchdog\"\n")).unwrap_err();
        assert!(clash.message.contains("watchdog"), "{clash}");
        let unknown = Config::parse(&p, &format!("{with}promt = \"x\"\n")).unwrap_err();
        assert!(unknown.message.contains("promt"), "{unknown}");
    }
}
