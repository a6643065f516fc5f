//! `traefik-deploy`: the converge-on-boot oneshot that brings the Traefik
//! recipe up in wildcard mode (a thin CLI over [`cc_ci::host::traefik`]),
//! and `traefik-deploy routes`, Traefik's routes to the services that run on
//! the host itself (over [`cc_ci::host::routes`]). See those modules for the
//! behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use cc_ci::deploy::ipvs;
use cc_ci::deploy::native::{default_cli, Native, ResolveImage};
use cc_ci::host::routes::{self, Change, Gateway, Route, RoutesOptions};
use cc_ci::host::traefik::{self, TraefikOptions};
use clap::{Parser, Subcommand};

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
///
/// `traefik-deploy routes ...` instead routes host names to services that
/// run on the host itself (see `traefik-deploy routes --help`).
#[derive(Parser, Debug)]
#[command(
    about,
    long_about,
    disable_version_flag = true,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The Traefik recipe: a git URL (production: coop-cloud/traefik) or a
    /// local checkout (the fixture recipe in tests).
    #[arg(long, required = true)]
    recipe_source: Option<String>,
    /// The release (git tag) to deploy.
    #[arg(long, required = true)]
    version: Option<String>,
    /// Traefik's app domain, e.g. `traefik.ci.example.org` (the same
    /// `--domain` cert-install was given).
    #[arg(long, required = true)]
    domain: Option<String>,
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

#[derive(Subcommand, Debug)]
enum Command {
    /// Route host names (and path prefixes) on Traefik's web-secure entrypoint
    /// to services that run on this host outside the swarm, with the wildcard
    /// certificate (Traefik's default certificate in wildcard mode).
    ///
    /// The routes are the deploy labels of one swarm stack (one service, one
    /// task of the helper image sleeping, on the `proxy` network; Traefik's
    /// swarm provider reads labels only from services with a running task),
    /// each router sending to http://<gateway>:<port>, the host as seen from
    /// docker_gwbridge. The host service must listen there (or on 0.0.0.0) and
    /// the firewall must let docker_gwbridge in.
    ///
    /// Idempotent: the same routes again deploy nothing; routes left out are
    /// removed; no --route at all removes the stack. The helper image is never
    /// pulled. Then waits until every route answers through --addr with a
    /// certificate the --ca-cert CA vouches for and an answer of the host
    /// service (any status; not Traefik's own 404 or 502/504). Exit status 1
    /// with the route, the reason and the fix on any failure.
    #[command(long_about)]
    Routes(RoutesArgs),
}

/// The arguments of `traefik-deploy routes`.
#[derive(clap::Args, Debug)]
struct RoutesArgs {
    /// A route, `<host>[/<path-prefix>]=<port>`, e.g.
    /// `builds.ci.example.org=8010` or `hooks.ci.example.org/hook=8081`.
    /// Repeat for more; none removes the stack.
    #[arg(long = "route", value_name = "HOST[/PREFIX]=PORT")]
    routes: Vec<Route>,
    /// The stack carrying the routes.
    #[arg(long, default_value = routes::DEFAULT_STACK)]
    stack: String,
    /// The helper image: must be on the host (never pulled) and have `sh`
    /// and `sleep` (busybox).
    #[arg(long, env = "CCCI_HELPER_IMAGE")]
    image: Option<String>,
    /// The host's address as Traefik's task reaches it: `auto` (the IPAM
    /// gateway of docker_gwbridge) or an IP address.
    #[arg(long, default_value = "auto")]
    gateway: Gateway,
    /// Where Traefik's web-secure entrypoint answers.
    #[arg(long, default_value = "127.0.0.1:443")]
    addr: SocketAddr,
    /// PEM file of the CA that issued the wildcard certificate (the only
    /// one trusted).
    #[arg(long, env = "CCCI_CA_CERT", default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_cert: PathBuf,
    /// Seconds to wait for the helper task, then for every route to serve.
    #[arg(long, default_value_t = 120)]
    wait: u64,
    /// The docker CLI that runs `docker stack deploy`.
    #[arg(long, env = "CCCI_DOCKER_CLI")]
    docker_cli: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let mut cli = Cli::parse();
    let result = match cli.command.take() {
        Some(Command::Routes(args)) => run_routes(args).await,
        None => run(cli).await,
    };
    if let Err(e) = result {
        eprintln!("traefik-deploy: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run_routes(args: RoutesArgs) -> Result<()> {
    let image = match args.image {
        Some(i) => i,
        None if args.routes.is_empty() => String::new(),
        None => anyhow::bail!(
            "no helper image: pass --image <image on this host with sh and sleep> (or set CCCI_HELPER_IMAGE), e.g. --image busybox:1.36"
        ),
    };
    let docker = cc_ci::host::swarm::connect()
        .await
        .context("cannot set up a Docker Engine API client")?;
    let opts = RoutesOptions {
        stack: args.stack,
        image,
        routes: args.routes,
        gateway: args.gateway,
        addr: args.addr,
        ca_cert: args.ca_cert,
        wait: Duration::from_secs(args.wait),
        docker_cli: args.docker_cli.unwrap_or_else(default_cli),
    };
    let r = routes::apply(&docker, &opts).await?;
    let stack = &opts.stack;
    match r.change {
        Change::Removed if r.removed.is_empty() => {
            println!("traefik-deploy routes: no routes, and no stack {stack}: nothing to do")
        }
        Change::Removed => println!(
            "traefik-deploy routes: no routes: removed stack {stack} ({})",
            r.removed.join(", ")
        ),
        Change::Unchanged => println!("traefik-deploy routes: nothing to do: {stack} already carries these routes"),
        Change::Deployed => println!("traefik-deploy routes: deployed {stack} in {:.1} s", r.deploy_s),
    }
    for s in &r.served {
        println!(
            "traefik-deploy routes: {} -> {} serves ({}) after {:.1} s",
            s.route.public_url(),
            s.backend,
            s.status,
            s.waited_s
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let (Some(recipe_source), Some(version), Some(domain)) = (cli.recipe_source, cli.version, cli.domain) else {
        anyhow::bail!("--recipe-source, --version and --domain are required (clap checks this)");
    };
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
        recipe_source,
        version: version.clone(),
        domain,
        abra_dir: cli.abra_dir,
        addr: cli.addr,
        ca_cert: cli.ca_cert,
        wait: Duration::from_secs(cli.wait),
    };
    let r = traefik::deploy(&native, &opts).await?;
    if r.deployed {
        println!(
            "traefik-deploy: deployed {} with wildcard certificate {}",
            version, r.cert_version
        );
    } else {
        println!(
            "traefik-deploy: nothing to do: {} already runs with wildcard certificate {}",
            version, r.cert_version
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

    fn parse(args: &[&str]) -> Result<super::Cli, clap::Error> {
        use clap::Parser;
        super::Cli::try_parse_from(std::iter::once("traefik-deploy").chain(args.iter().copied()))
    }

    #[test]
    fn routes_is_a_subcommand_and_the_deploy_flags_stay_required() {
        let cli = parse(&[
            "routes",
            "--route",
            "builds.ci.example.org=8010",
            "--route",
            "hooks.ci.example.org/hook=8081",
            "--image",
            "busybox:1.36",
            "--gateway",
            "172.18.0.1",
        ])
        .unwrap();
        let Some(super::Command::Routes(r)) = cli.command else {
            panic!("routes parsed as a subcommand")
        };
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].path_prefix.as_deref(), Some("/hook"));
        assert_eq!(r.stack, "cc-ci-routes");
        assert_eq!(r.addr.to_string(), "127.0.0.1:443");
        // No --route at all is allowed (it removes the stack).
        assert!(parse(&["routes"]).is_ok());
        // The Traefik deploy itself still needs its flags.
        let e = parse(&["--version", "1.0.0"]).unwrap_err().to_string();
        assert!(e.contains("--recipe-source") && e.contains("--domain"), "{e}");
        assert!(parse(&["--recipe-source", "r", "--version", "v", "--domain", "d"]).is_ok());
        // ... and its flags do not mix with routes.
        assert!(parse(&["--version", "1.0.0", "routes"]).is_err());
    }

    #[test]
    fn a_bad_route_names_the_argument_and_the_fix() {
        let e = parse(&["routes", "--route", "builds.ci.example.org:8010"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--route \"builds.ci.example.org:8010\": no `=<port>`"),
            "{e}"
        );
        assert!(e.contains("write it as <host>[/<path-prefix>]=<port>"), "{e}");
        let e = parse(&["routes", "--gateway", "docker0"]).unwrap_err().to_string();
        assert!(e.contains("neither `auto` nor an IP address"), "{e}");
    }
}
