//! `traefik-deploy`: the converge-on-boot oneshot that brings the Traefik
//! recipe up in wildcard mode. A thin CLI over [`cc_ci::host::traefik`];
//! see that module for the behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use cc_ci::deploy::native::{default_cli, Native, ResolveImage};
use cc_ci::host::ipvs;
use cc_ci::host::traefik::{self, TraefikOptions};
use clap::Parser;

/// Deploy the Traefik recipe at a pinned release, the way abra would, in
/// wildcard mode: no ACME (LETS_ENCRYPT_ENV empty), the file provider
/// serving the wildcard certificate that cert-install put in the swarm
/// secrets `<stack>_ssl_cert_vN` / `<stack>_ssl_key_vN` (the newest complete
/// pair is used). Then wait until 443 answers with that certificate.
///
/// Idempotent: when Traefik already runs this release with those secrets it
/// deploys nothing, says "nothing to do" and exits 0 once 443 answers. Run
/// swarm-init and cert-install first. Exit status 1 with the reason and the
/// fix on any failure.
#[derive(Parser)]
#[command(about, long_about, disable_version_flag = true)]
struct Cli {
    /// The Traefik recipe: a git URL (production: coop-cloud/traefik) or a
    /// local checkout (the fixture recipe in tests).
    #[arg(long)]
    recipe_source: String,
    /// The release (git tag) to deploy.
    #[arg(long)]
    version: String,
    /// Traefik's app domain, e.g. `traefik.ci.example.org` (the same
    /// `--domain` cert-install was given).
    #[arg(long)]
    domain: String,
    /// The Traefik app's ABRA_DIR (kept between runs).
    #[arg(long, env = "ABRA_DIR", default_value = "/var/lib/cc-ci/traefik/abra")]
    abra_dir: PathBuf,
    /// Where Traefik's web-secure entrypoint answers.
    #[arg(long, default_value = "127.0.0.1:443")]
    addr: SocketAddr,
    /// PEM file of the CA that issued the wildcard certificate.
    #[arg(long, env = "CCCI_CA_CERT", default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_cert: PathBuf,
    /// Seconds to wait for the deploy to converge, then for 443.
    #[arg(long, default_value_t = 180)]
    wait: u64,
    /// The docker CLI that runs `docker stack deploy`.
    #[arg(long, env = "CCCI_DOCKER_CLI")]
    docker_cli: Option<PathBuf>,
    /// `docker stack deploy --resolve-image` (never on hosts without a registry).
    #[arg(long, env = "CCCI_RESOLVE_IMAGE", default_value = "always")]
    resolve_image: ResolveImage,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("traefik-deploy: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let docker = cc_ci::host::swarm::connect()
        .await
        .context("cannot set up a Docker Engine API client")?;
    let native = Native {
        docker,
        cli: cli.docker_cli.unwrap_or_else(default_cli),
        resolve_image: cli.resolve_image,
        vip: ipvs::probe(),
        lint_gate: true,
        post_cmd_timeout: Duration::from_secs(300),
        owner: None,
        // The host's own Traefik: neither confined nor limited like a test app.
        allow: None,
        limits: None,
    };
    let opts = TraefikOptions {
        recipe_source: cli.recipe_source,
        version: cli.version.clone(),
        domain: cli.domain,
        abra_dir: cli.abra_dir,
        addr: cli.addr,
        ca_cert: cli.ca_cert,
        wait: Duration::from_secs(cli.wait),
    };
    let r = traefik::deploy(&native, &opts).await?;
    if r.deployed {
        println!(
            "traefik-deploy: deployed {} with wildcard certificate {}",
            cli.version, r.cert_version
        );
    } else {
        println!(
            "traefik-deploy: nothing to do: {} already runs with wildcard certificate {}",
            cli.version, r.cert_version
        );
    }
    println!("traefik-deploy: serving after {:.1} s: {}", r.waited_s, r.serving);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
