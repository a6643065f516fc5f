//! `swarm-init`: make the local Docker engine a single-node swarm manager and
//! make sure the attachable overlay network `proxy` exists. A thin CLI over
//! [`cc_ci::host::swarm`]; see that module for the behaviour.

use anyhow::{Context, Result};
use cc_ci::host::swarm;
use clap::Parser;

/// Make this host's Docker engine ready for Co-op Cloud apps: a swarm manager
/// (initialised with `--advertise-addr` if it is not in a swarm)
/// with the attachable overlay network that apps and Traefik share.
///
/// Idempotent: when both already hold it prints "nothing to do" and exits 0.
/// It never leaves or re-creates a swarm and never removes a network; when the
/// state is one it will not repair (a worker node, a locked swarm, a
/// non-overlay network called `proxy`) it says what to do and exits 1.
///
/// Talks to the engine on DOCKER_HOST or /var/run/docker.sock
/// (`scripts/dockerd` starts one on a development machine).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The overlay network to ensure (Co-op Cloud apps expect `proxy`).
    #[arg(long, default_value = swarm::PROXY_NETWORK)]
    network: String,
    /// The address the swarm advertises when this run initialises it
    /// (`docker swarm init --advertise-addr`); an active swarm is left alone.
    #[arg(long, default_value = swarm::DEFAULT_ADVERTISE_ADDR)]
    advertise_addr: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("swarm-init: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let docker = swarm::connect()
        .await
        .context("cannot reach the Docker engine (is dockerd running? scripts/dockerd starts it)")?;
    let report = swarm::ensure_swarm(&docker, &cli.network, &cli.advertise_addr).await?;
    if report.swarm_initialised {
        println!(
            "swarm: initialised this node as manager (advertise address {})",
            cli.advertise_addr
        );
    } else {
        println!("swarm: already active, this node is a manager");
    }
    if report.network_created {
        println!(
            "network {}: created (overlay, attachable, id {})",
            cli.network, report.network_id
        );
    } else {
        println!("network {}: present (id {})", cli.network, report.network_id);
    }
    if report.nothing_changed() {
        println!("nothing to do");
    }
    Ok(())
}
