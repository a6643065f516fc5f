//! `loops`: start, watch, hand off between and heal long-running agent loops
//! in tmux on the cc-ci orchestrator host. A thin CLI over
//! [`loops`]; see that module for the behaviour.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use loops::{boot, Config, Loops};

/// Supervise the orchestrator's agent loops (a Builder and an Adversary
/// working on one git repo) in tmux.
///
/// Typical use: `loops start` once (idempotent), then the watchdog it starts
/// keeps them going; `loops status` to look; `loops stop` to stop. On boot the
/// host runs `loops boot`, which records the boot in REBOOTS.md and resumes.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The configuration file (TOML; see `loops::config` for every key).
    #[arg(long, short, env = "LOOPS_CONFIG", default_value = "loops.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the current phase's agents that are not running, and the
    /// watchdog. A live session is never duplicated.
    Start {
        /// Dead agents continue their saved conversations (else fresh ones).
        #[arg(long)]
        resume: bool,
        /// Move to this phase (by name) first.
        #[arg(long)]
        phase: Option<String>,
    },
    /// Stop the watchdog and every agent session (one-shot jobs go on).
    Stop,
    /// Show the phase, each session (alive, dead, missing, stalled, waiting),
    /// the phase's DONE state, the watchdog, reboots and jobs.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the log of an agent (by name), of `orchestrator`, of `watchdog`,
    /// or of a job (`job-NAME`, `job-NAME-watch`).
    Logs {
        /// Agent name, `orchestrator`, `watchdog`, `job-NAME` or `job-NAME-watch`.
        name: String,
        /// Lines from the end.
        #[arg(long, short = 'n', default_value_t = 60)]
        lines: usize,
        /// Keep printing what is appended.
        #[arg(long, short)]
        follow: bool,
    },
    /// Run the supervisor in the foreground (`start` runs it in tmux session
    /// `loops-watchdog`). At most one per workspace.
    Watchdog,
    /// Record this boot in REBOOTS.md (once per kernel boot id), then `start --resume`.
    Boot {
        /// Read the boot id from this file (for tests; default the kernel's).
        #[arg(long, default_value = boot::BOOT_ID_FILE, hide = true)]
        boot_id_file: PathBuf,
    },
    /// One-shot agent jobs, run to completion with resume.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// The orchestrator's own agent session (`[orchestrator]` in the
    /// configuration): one conversation, kept across restarts and reboots,
    /// healed by the watchdog while wanted.
    Orchestrator {
        #[command(subcommand)]
        command: OrchestratorCommand,
    },
}

#[derive(Subcommand)]
enum OrchestratorCommand {
    /// Start it with a new conversation (unless it runs), and the watchdog.
    /// Refuses when a conversation is saved: `resume` continues that one.
    Start {
        /// Begin a new conversation although one is saved (the old one stays
        /// in the agent's own history).
        #[arg(long)]
        new: bool,
    },
    /// Continue its saved conversation by its id (unless it runs), and start
    /// the watchdog, which keeps it running from now on.
    Resume,
    /// Show its session, saved conversation id, restarts and whether the
    /// watchdog keeps it running.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop it; the watchdog no longer restarts it. The conversation is kept.
    Stop,
}

#[derive(Subcommand)]
enum JobCommand {
    /// Start job NAME with the prompt in file PROMPT (and its watchdog),
    /// unless it runs or is done.
    Start {
        /// Job name: letters, digits, '-' or '_'.
        name: String,
        /// Prompt file.
        prompt: PathBuf,
        /// Working folder of the agent (default: the current one).
        #[arg(long, default_value = ".")]
        clone: PathBuf,
    },
    /// The job's own watchdog (run by `job start` in tmux): resume until DONE,
    /// at most max_resumes times, then write GAVE-UP and exit 3.
    Watch {
        /// Job name.
        name: String,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LOOPS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loops: {e:#}");
            std::process::exit(1);
        }
    }
}

fn open(config: &std::path::Path) -> Result<Loops> {
    // Absolute, but symlinks kept: on NixOS the file is /etc/cc-ci/loops.toml,
    // a link that each rebuild points at a new store path. The watchdog and
    // the jobs it starts are given this path, so they read the current one.
    let path = std::path::absolute(config)
        .with_context(|| format!("no configuration file {} (give one with --config)", config.display()))?;
    if !path.is_file() {
        anyhow::bail!("no configuration file {} (give one with --config)", path.display());
    }
    let cfg = Config::load(&path)?;
    let exe = std::env::current_exe().context("cannot find the loops program itself")?;
    Ok(Loops::open(cfg, exe)?)
}

fn run(cli: Cli) -> Result<i32> {
    let loops = open(&cli.config)?;
    match cli.command {
        Command::Start { resume, phase } => {
            for line in loops.start(resume, phase.as_deref())? {
                println!("{line}");
            }
        }
        Command::Stop => {
            for line in loops.stop()? {
                println!("{line}");
            }
        }
        Command::Status { json } => {
            let s = loops.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
        }
        Command::Logs { name, lines, follow } => logs(&loops, &name, lines, follow)?,
        Command::Watchdog => loops.watchdog()?,
        Command::Boot { boot_id_file } => {
            let id = std::fs::read_to_string(&boot_id_file)
                .with_context(|| format!("cannot read the boot id from {}", boot_id_file.display()))?;
            if boot::record(&loops.cfg.workspace, &id)? {
                println!("boot {} recorded in REBOOTS.md", id.trim());
            } else {
                println!("boot {} already recorded", id.trim());
            }
            for line in loops.start(true, None)? {
                println!("{line}");
            }
        }
        Command::Job {
            command: JobCommand::Start { name, prompt, clone },
        } => {
            for line in loops.job_start(&name, &prompt, &clone)? {
                println!("{line}");
            }
        }
        Command::Job {
            command: JobCommand::Watch { name },
        } => return Ok(loops.job_watch(&name)?),
        Command::Orchestrator { command } => {
            let report = match command {
                OrchestratorCommand::Start { new } => loops.orchestrator_start(new)?,
                OrchestratorCommand::Resume => loops.orchestrator_resume()?,
                OrchestratorCommand::Stop => loops.orchestrator_stop()?,
                OrchestratorCommand::Status { json } => {
                    let Some(o) = loops.orchestrator_status()? else {
                        anyhow::bail!(
                            "{} has no [orchestrator] table: add one with `prompt` and `dir` (see {})",
                            loops.cfg.file.display(),
                            loops::config::CONFIG_DOC
                        );
                    };
                    if json {
                        println!("{}", serde_json::to_string_pretty(&o)?);
                    } else {
                        print_orchestrator(&o);
                    }
                    vec![]
                }
            };
            for line in report {
                println!("{line}");
            }
        }
    }
    Ok(0)
}

fn print_orchestrator(o: &loops::orchestrator::OrchestratorStatus) {
    println!(
        "orchestrator {} (session {}, {}{}), conversation {}, restarts {}, {}",
        o.state,
        o.session,
        o.backend,
        o.pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
        o.conversation.as_deref().unwrap_or("none yet"),
        o.restarts,
        if o.wanted {
            "kept running by the watchdog"
        } else {
            "not kept running (start or resume it)"
        }
    );
}

fn print_status(s: &loops::supervisor::Status) {
    match &s.phase {
        Some(p) => println!(
            "phase     {p} ({} of {}), DONE on origin: {}",
            s.phase_index + 1,
            s.phases_total,
            s.phase_done.map_or("unknown (not fetched yet)".into(), |d| if d {
                "yes".to_string()
            } else {
                "no".into()
            })
        ),
        None => println!("phase     all {} done", s.phases_total),
    }
    println!("watchdog  {}", if s.watchdog_alive { "alive" } else { "not running" });
    println!("reboots   {}", s.reboots);
    println!("checks    {} heavy, {} fast", s.heavy_checks, s.fast_ticks);
    for a in &s.agents {
        let extra = match (&a.waiting_until, a.idle_seconds) {
            (Some(t), _) => format!("until {t}"),
            (None, Some(i)) => format!("idle {i:.0}s"),
            _ => String::new(),
        };
        println!(
            "agent     {:<12} {:<8} {:<24} restarts {}",
            a.name, a.state, extra, a.restarts
        );
    }
    for j in &s.jobs {
        println!(
            "job       {:<12} {:<8} resumes {} takeovers {}",
            j.name, j.state, j.resumes, j.takeovers
        );
    }
    if let Some(o) = &s.orchestrator {
        print_orchestrator(o);
    }
}

fn logs(loops: &Loops, name: &str, lines: usize, follow: bool) -> Result<()> {
    let session = match (loops.cfg.agent(name), &loops.cfg.orchestrator) {
        (Some(a), _) => a.session.clone(),
        (None, Some(o)) if name == "orchestrator" => o.session.clone(),
        _ => name.to_string(),
    };
    let path = loops.log_path(&session);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no log {} (agents: {})", path.display(), agent_names(loops)))?;
    let all: Vec<&str> = text.lines().collect();
    for l in &all[all.len().saturating_sub(lines)..] {
        println!("{l}");
    }
    if !follow {
        return Ok(());
    }
    let mut seen = text.len();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = std::fs::read(&path)?;
        if now.len() > seen {
            print!("{}", String::from_utf8_lossy(&now[seen..]));
            seen = now.len();
        }
    }
}

fn agent_names(loops: &Loops) -> String {
    let mut v: Vec<_> = loops.cfg.agents.iter().map(|a| a.name.clone()).collect();
    if loops.cfg.orchestrator.is_some() {
        v.push("orchestrator".into());
    }
    v.push("watchdog".into());
    v.join(", ")
}
