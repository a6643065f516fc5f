//! `janitor`: remove the test apps (stacks, volumes, secrets, configs, run
//! folders with abra env files, leases) left by dead or finished `ccci test`
//! runs. A thin CLI over [`cc_ci::host::janitor`]; see that module for the rules.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use cc_ci::host::janitor::{self, SweepOptions};
use clap::Parser;

/// Remove test apps left behind by dead or finished cc-ci runs.
///
/// Every `ccci test` run holds a lock (its lease,
/// `<state-dir>/leases/<stack>.lease`) for as long as its process lives; the
/// kernel drops it when the process dies, even by SIGKILL. The janitor looks
/// at every lease file, every run folder `<state-dir>/runs/<run id>/` and
/// every stack in Docker named like a test app of the wildcard domain
/// (`<recipe>-<6 hex>.<domain>`, stack `<recipe>-<6 hex>_<domain with _>`).
/// For each app whose lease it can take, it removes the stack (services,
/// networks, volumes, secrets, configs), the run folder and the lease. An app
/// whose lease another process holds (a live run, or another janitor) is
/// left alone entirely. Stacks of other domains and Traefik are never touched.
///
/// Several state dirs may share one Docker engine: a stack whose services
/// carry another state dir's owner label (`cc-ci.owner`, from
/// `<that state-dir>/owner-id`), or carry none while nothing in this state
/// dir names it, is that state dir's, and left to its janitor; one whose
/// owner's state dir is gone is reaped by whichever janitor finds it.
///
/// Safe to run at any time, alongside runs and other janitors; a second run
/// finds nothing to do. Prints one line per app: `reaped`, `left` (and why)
/// or `INCOMPLETE`.
///
/// Exit status: 0 when every app was reaped or rightly left; 1 when the
/// engine or the state dir cannot be read (nothing was removed) or a teardown
/// left objects behind (they are named; the next run retries).
///
/// Examples:
///   janitor --dry-run                  # what would go, removes nothing
///   janitor --domain ci.example.org    # as the systemd timer runs it
#[derive(Parser)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// The state directory runs use (`runs/`, `leases/` under it).
    #[arg(long, env = "CCCI_STATE_DIR", default_value = "/var/lib/cc-ci")]
    state_dir: PathBuf,
    /// The wildcard domain test apps live under (apps are `<recipe>-<6 hex>.<domain>`).
    #[arg(long, env = "CCCI_DOMAIN", default_value = "ci.test")]
    domain: String,
    /// Only say what would be reaped and what is live; take no lease, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long one app's teardown may wait for its containers to stop and
    /// its volumes to be released, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    timeout: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("janitor: error: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
    let docker = cc_ci::host::swarm::connect().await.context(
        "cannot reach the Docker engine on DOCKER_HOST or /var/run/docker.sock; nothing was removed. \
         Is dockerd running (systemctl status docker; scripts/dockerd on a development machine) \
         and may this user use its socket?",
    )?;
    let suffix = janitor::stack_suffix(&cli.domain);
    let opts = SweepOptions {
        state_dir: cli.state_dir.clone(),
        stack_suffix: suffix.clone(),
        timeout: Duration::from_secs(cli.timeout),
        dry_run: cli.dry_run,
    };
    let report = janitor::sweep_with(&docker, &opts).await.with_context(|| {
        format!(
            "sweeping test apps of {} (stacks *{suffix}, state dir {}); nothing was removed",
            cli.domain,
            cli.state_dir.display()
        )
    })?;
    for app in &report.apps {
        println!("{app}");
    }
    for t in &report.temp_files_removed {
        println!("removed a dead taker's temporary lease file {}", t.display());
    }
    if report.nothing_done() {
        println!("nothing to do");
    }
    let live = report.apps.iter().filter(|a| a.live()).count();
    let reaped = report.apps.iter().filter(|a| a.reaped()).count();
    println!(
        "{}{reaped} reaped, {live} live, {} apps seen in {:.1?} (domain {}, state dir {})",
        if cli.dry_run { "dry run: " } else { "" },
        report.apps.len(),
        report.took,
        cli.domain,
        cli.state_dir.display()
    );
    if report.has_failures() {
        eprintln!("janitor: some apps could not be removed completely (see INCOMPLETE/FAILED above); run janitor again, and if they stay, look at `docker service ls` and the engine's log");
        return Ok(1);
    }
    Ok(0)
}
