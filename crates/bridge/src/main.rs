//! `bridge`: the thin CLI over the [`bridge`] library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// cc-ci's bridge between Gitea and Buildbot: `!testme` on a pull request of
/// an enrolled recipe repository, from a member of the organisation, starts a
/// Buildbot build of `ccci test` at the PR's head; its result comes back as
/// the commit status `cc-ci/testme` and one PR comment, edited in place on
/// re-runs. Polling is the primary trigger; Gitea's webhook (POST /hook,
/// HMAC-signed) is optional; GET /status shows what the bridge sees.
///
/// Settings: one TOML file (keys in crates/bridge/src/config.rs); secrets
/// come from the files it names, never from argv or the environment.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGTERM or Ctrl-C.
    Serve {
        /// The settings file.
        #[arg(long, env = "CCCI_BRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Check the settings file and the secret files it names, then exit.
    Check {
        /// The settings file.
        #[arg(long, env = "CCCI_BRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Make every retry that waits out its backoff due now (after fixing
    /// what failed: Buildbot or Gitea back, a token renewed); a running
    /// bridge takes them on its next pass. Given-up items (dead letters,
    /// GET /status) stay given up. Prints how many were waiting.
    RetryNow {
        /// The settings file (its `state_db` is the state changed).
        #[arg(long, env = "CCCI_BRIDGE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CCCI_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bridge: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let c = bridge::config::Config::load(&config)?;
            bridge::config::Secrets::load(&c)?;
            println!(
                "{}: {} repositories of {} on {}, Buildbot {}, webhook {}",
                config.display(),
                c.repos.len(),
                c.org,
                c.gitea_url,
                c.buildbot_url,
                if c.webhook_secret_file.is_some() { "on" } else { "off" }
            );
            Ok(())
        }
        Command::RetryNow { config } => {
            let c = bridge::config::Config::load(&config)?;
            let state = bridge::state::State::open(&c.state_db)?;
            let n = state.retry_now()?;
            println!(
                "{n} waiting retr{} made due now ({})",
                if n == 1 { "y" } else { "ies" },
                c.state_db.display()
            );
            Ok(())
        }
        Command::Serve { config } => {
            let c = bridge::config::Config::load(&config)?;
            let secrets = bridge::config::Secrets::load(&c)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(async {
                let b = Arc::new(bridge::bridge::Bridge::new(c, secrets).await?);
                b.run().await.context("the bridge's HTTP server")?;
                anyhow::Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
