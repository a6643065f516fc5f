//! `ccci`: cc-ci's main job. A thin CLI over [`cc_ci::run`]: `ccci test`
//! takes a recipe through the lifecycle ([`cc_ci::run::lifecycle`]),
//! `ccci report` renders a results file; a maintainer's own tools, on the
//! same code and without Docker: `ccci lint` (abra's rules, [`lint`]) and
//! `ccci plan` (what a test run would do, [`plan`]).

mod lint;
mod plan;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use cc_ci::deploy::ipvs::{self, VipSupport};
use cc_ci::deploy::native::ResolveImage;
use cc_ci::results::level::Status;
use cc_ci::results::verdict::State;
use cc_ci::results::{RunResults, RungResult};
use cc_ci::run::lifecycle::Progress;
use cc_ci::run::plan::RunEnv;
use cc_ci::run::start;
use clap::{Parser, Subcommand, ValueEnum};

/// cc-ci's main job: take a Co-op Cloud recipe through its life on this
/// host's swarm, the way abra deploys it, behind the real Traefik: install
/// (the previous release), serve (HTTPS through Traefik, screenshot),
/// upgrade (chaos deploy of the tested commit, data witnesses), backup and
/// restore (backupbot labels), lint (abra's rules), the recipe's own
/// checks; then teardown, always (Ctrl-C and SIGTERM included), and a level
/// 0-8 in results.json.
///
/// Exit status of `ccci test` follows the run's verdict (results.json
/// `verdict`): 0 success, only when nothing the recipe owes is unproven (no
/// rung of 1-6 failed, errored or was skipped, and the level is at least
/// the recipe's bar: its `min_level` setting, else the level of the last
/// run of its newest release on this host, else 2); 1 failure (a recipe
/// problem, or a level below the bar); 3 error (an infrastructure problem:
/// Docker down, a tool missing, disk full; it wins); 2 when RECIPE was
/// refused before anything deployed (the message names the file); 130/143
/// when interrupted by Ctrl-C/SIGTERM (after the teardown).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `ccci lint` and `ccci plan` print.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// For people: aligned lines.
    Text,
    /// For programs: one JSON document.
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeployerKind {
    /// cc-ci deploys as abra does, on `docker stack deploy` (docs/abra.md).
    Native,
    /// The real abra CLI (`--abra` or `abra` on PATH).
    Abra,
}

#[derive(Clone, Copy, ValueEnum)]
enum Vip {
    /// Probe the kernel for IPVS.
    Auto,
    /// Virtual IPs route: deploy as written.
    Routes,
    /// No IPVS: services without published ports get endpoint_mode dnsrr.
    Dnsrr,
}

impl Vip {
    /// What this host offers, as `--vip` says (`auto` reads the kernel,
    /// never Docker).
    fn support(self) -> VipSupport {
        match self {
            Vip::Auto => ipvs::probe(),
            Vip::Routes => VipSupport::Routes {
                evidence: "--vip routes".into(),
            },
            Vip::Dnsrr => VipSupport::NoIpvs {
                looked_at: "--vip dnsrr".into(),
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the lifecycle on a recipe checkout and write results.json.
    ///
    /// The recipe's upgrade base (the newest release at or below the tested
    /// version whose commit is not the tested one: the release a pull
    /// request builds on, or the release before a tested release) is
    /// installed first, then the checked-out commit is deployed over it. Per-recipe settings come from SETTINGS_DIR/<recipe>/.
    Test(Box<TestArgs>),
    /// Render a run's results: the summary table, the PR comment, the level
    /// badge, the summary card, JUnit XML or the JSON itself.
    ///
    /// Everything is rendered from results.json and the files beside it
    /// (the screenshot), never from live state, by the same code the bridge
    /// and the dashboard use.
    ///
    /// Exit status: 0 when rendered; 2 when the results cannot be read (the
    /// message names the file), the card has no font, or the output cannot
    /// be written.
    #[command(after_long_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Lint a recipe checkout with abra's rules R001-R015, as the lint rung
    /// does: the same table (lint.txt of a run), without Docker.
    ///
    /// Reads compose*.yml, .env.sample, abra.sh, README.md and the git tags
    /// of the checkout; runs nothing of the recipe. R006 and R013 need the
    /// network (recipes.coopcloud.tech, git.coopcloud.tech): they are shown
    /// as not checked, never as satisfied.
    ///
    /// Exit status: 0 when no error-level rule failed (warnings may have);
    /// 1 when one did (the lint rung would fail and abra would refuse a
    /// release deploy); 2 when RECIPE is not a recipe or cannot be read
    /// (the message names the file and the fix).
    #[command(after_long_help = lint::EXAMPLES)]
    Lint(lint::LintArgs),
    /// Show what `ccci test` would do with a recipe checkout, touching
    /// neither Docker nor the state and results folders.
    ///
    /// The tested commit, its version and kind (release, default branch or
    /// change), the upgrade base or why there is none, the per-recipe
    /// settings that would apply (and which are defaults), and, for both
    /// versions the run deploys (read from a throw-away clone, laid out as
    /// the run's app): the compose files, services and images, the secrets
    /// that would be generated (names and kinds, never values), the
    /// resource limits, the confinement check; then the adaptations this
    /// host needs (IPVS: decided from the kernel, as `ccci test` does).
    ///
    /// Exit status: 0 when `ccci test` would go ahead; 2 when it would
    /// refuse the recipe before deploying anything (not a recipe, broken
    /// settings, or a version that leaves its test app; the message names
    /// the file and the fix; the plan is still printed when it could be
    /// made).
    #[command(after_long_help = plan::EXAMPLES)]
    Plan(Box<plan::PlanArgs>),
}

/// `ccci report --help`'s examples, one per line.
const REPORT_EXAMPLES: &str = "Examples:
  ccci report /var/lib/cc-ci/results/static-site/1a2b3c        the summary table
  ccci report --format card --out card.png results.json        the summary card
  ccci report --format junit results.json > junit.xml          JUnit for other tools
  ccci report --format markdown --clone-url https://git.example.org/r.git results.json";

#[derive(clap::Args)]
struct ReportArgs {
    /// A results.json written by `ccci test`, or the run folder holding it.
    results: PathBuf,
    /// text (the summary table), markdown (the PR comment), badge (SVG),
    /// card (PNG, 1200x630), junit (XML, a test case per rung), json.
    #[arg(long, short, default_value = "text")]
    format: cc_ci::results::format::Format,
    /// Write to this file (atomically: a temporary file renamed into
    /// place) instead of standard output. A card is never written to a
    /// terminal.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The recipe's clone URL, for the reproduce commands of `--format markdown`.
    #[arg(long, default_value = "https://git.coopcloud.tech/coop-cloud/<recipe>.git")]
    clone_url: String,
}

#[derive(clap::Args)]
struct TestArgs {
    /// A recipe checkout (a git repository with compose.yml and
    /// .env.sample), or the name of one under --recipes-dir.
    recipe: String,
    /// The wildcard domain Traefik serves; apps get `<recipe>-<6 hex>.<domain>`.
    #[arg(long, env = "CCCI_DOMAIN", default_value = "ci.test")]
    domain: String,
    /// Per-run state: each run's ABRA_DIR under `<dir>/runs/<run id>/`, leases under `<dir>/leases/`.
    #[arg(long, env = "CCCI_STATE_DIR", default_value = "/var/lib/cc-ci")]
    state_dir: PathBuf,
    /// Results root: `<dir>/<recipe>/<run id>/results.json` and artifacts.
    #[arg(long, env = "CCCI_RESULTS_DIR", default_value = "/var/lib/cc-ci/results")]
    results_dir: PathBuf,
    /// Where named recipes are looked up.
    #[arg(long, env = "CCCI_RECIPES_DIR", default_value = "/var/lib/cc-ci/recipes")]
    recipes_dir: PathBuf,
    /// Per-recipe settings: `<dir>/<recipe>/ccci.toml` and executables
    /// (format: tests/recipes/README.md). No folder means zero config.
    #[arg(long, env = "CCCI_SETTINGS_DIR", default_value = "tests/recipes")]
    settings_dir: PathBuf,
    /// Which deployer makes the deploys.
    #[arg(long, env = "CCCI_DEPLOYER", value_enum, default_value = "native")]
    deployer: DeployerKind,
    /// The abra binary for `--deployer abra` (default: `abra` on PATH).
    #[arg(long, env = "CCCI_ABRA")]
    abra: Option<PathBuf>,
    /// The docker CLI that runs `docker stack deploy` (native deployer).
    #[arg(long, env = "CCCI_DOCKER_CLI")]
    docker_cli: Option<PathBuf>,
    /// `docker stack deploy --resolve-image`: always (abra's), changed,
    /// or never (hosts without a registry: images must be present).
    #[arg(long, env = "CCCI_RESOLVE_IMAGE", default_value = "always")]
    resolve_image: ResolveImage,
    /// Whether swarm virtual IPs route here.
    #[arg(long, env = "CCCI_VIP", value_enum, default_value = "auto")]
    vip: Vip,
    /// Traefik's web-secure address (HTTP checks and screenshots connect here).
    #[arg(long, env = "CCCI_TRAEFIK", default_value = "127.0.0.1:443")]
    traefik: SocketAddr,
    /// PEM file of the CA that issued the wildcard certificate (the only
    /// one trusted by the checks).
    #[arg(long, env = "CCCI_CA_CERT", default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_cert: PathBuf,
    /// An image present on the host for helper containers (needs `rm`).
    #[arg(long, env = "CCCI_HELPER_IMAGE", default_value = "ccci/debian:bookworm")]
    helper_image: String,
    /// The restic image backups run in (present on the host).
    #[arg(long, env = "CCCI_RESTIC_IMAGE", default_value = cc_ci::run::backup::DEFAULT_RESTIC_IMAGE)]
    restic_image: String,
    /// Take no screenshots (otherwise Chromium from $CCCI_CHROMIUM or /usr/bin/chromium).
    #[arg(long)]
    no_screenshots: bool,
    /// The run's id, six lowercase hex digits (default: drawn at random).
    /// The bridge chooses it so that it knows where the results land:
    /// `<results-dir>/<recipe>/<run id>/`. An id already used is refused.
    #[arg(long, value_name = "HEX6")]
    run_id: Option<String>,
    /// For iterating on a PR: reuse the app the recipe's last green
    /// `--quick` run kept warm on this host (upgrade it to the tested ref,
    /// then the rest of the ladder), and keep this run's app warm if rungs
    /// 1-6 end green. With no warm app, or one that is not healthy (torn
    /// down then), the run is cold; results.json says which (`warm`,
    /// `adaptations`, `kept_warm`). A kept-warm run is never exemplary (no
    /// teardown is proven); the janitor reaps warm apps after 24 h.
    #[arg(long)]
    quick: bool,
}

/// `ccci report`: see [`Command::Report`].
fn report(args: &ReportArgs) -> Result<ExitCode> {
    use cc_ci::results::comment::CommentContext;
    use std::io::Write;
    let file = if args.results.is_dir() {
        args.results.join("results.json")
    } else {
        args.results.clone()
    };
    let r = RunResults::read(&file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let ctx = CommentContext {
        clone_url: args.clone_url.replace("<recipe>", &r.recipe),
        ..CommentContext::default()
    };
    let bytes = cc_ci::results::format::render(args.format, &r, dir, &ctx)?;
    match &args.out {
        Some(out) => {
            let folder = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(folder)
                .with_context(|| format!("cannot write into {}", folder.display()))?;
            tmp.write_all(&bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            // Readable like any file the user writes (a temporary file is 0600).
            tmp.as_file()
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .with_context(|| format!("cannot make {} readable", out.display()))?;
            tmp.persist(out)
                .with_context(|| format!("cannot rename into {}", out.display()))?;
        }
        None if args.format.is_binary() && std::io::stdout().is_terminal() => {
            anyhow::bail!(
                "--format {} is a PNG: give --out FILE, or redirect standard output",
                args.format.name()
            );
        }
        None => std::io::stdout()
            .write_all(&bytes)
            .context("cannot write to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ccci: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Plain progress lines with the time since the start; on a terminal the
/// statuses are coloured.
struct Lines {
    t0: Instant,
    tty: bool,
}

impl Lines {
    fn say(&self, text: &str) {
        eprintln!("[{:>6.1}s] {text}", self.t0.elapsed().as_secs_f64());
    }
}

impl Progress for Lines {
    fn phase(&mut self, name: &str) {
        self.say(&format!("== {name}"));
    }
    fn note(&mut self, text: &str) {
        self.say(&format!("   {text}"));
    }
    fn rung(&mut self, r: &RungResult) {
        let (status, colour) = match r.status {
            Status::Pass => ("pass", "32"),
            Status::Fail => ("FAIL", "31"),
            Status::Error => ("ERROR", "35"),
            Status::Unverified => ("unverified", "33"),
            Status::Skipped => ("skipped", "33"),
            Status::NotApplicable => ("n/a", "36"),
        };
        let status = if self.tty {
            format!("\x1b[{colour}m{status}\x1b[0m")
        } else {
            status.to_string()
        };
        let reason = r.reason.as_deref().map(|x| format!(": {x}")).unwrap_or_default();
        self.say(&format!(
            "   rung {} {}: {status}{reason} ({:.1} s)",
            r.rung.level(),
            r.rung.level_name(),
            r.duration_s
        ));
    }
}

/// RECIPE as `ccci test`, `lint` and `plan` take it: a path when it
/// exists or has a `/`, else a name under `recipes_dir`.
fn resolve(recipe: &str, recipes_dir: &Path) -> PathBuf {
    let p = PathBuf::from(recipe);
    if p.exists() || recipe.contains('/') {
        p
    } else {
        recipes_dir.join(recipe)
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let args = match cli.command {
        Command::Report(args) => return report(&args),
        Command::Lint(args) => return lint::run(&args),
        Command::Plan(args) => return plan::run(&args),
        Command::Test(args) => *args,
    };
    let env = RunEnv {
        domain: args.domain,
        state_dir: args.state_dir,
        results_dir: args.results_dir,
    };
    let dir = resolve(&args.recipe, &args.recipes_dir);
    let prepared = start::prepare(&dir, &env, args.run_id.as_deref(), &args.settings_dir)?;
    let host = start::HostParts {
        deployer: match args.deployer {
            DeployerKind::Native => start::DeployerChoice::Native {
                cli: args.docker_cli,
                resolve_image: args.resolve_image,
            },
            DeployerKind::Abra => start::DeployerChoice::Abra { bin: args.abra },
        },
        vip: args.vip.support(),
        traefik: args.traefik,
        ca_cert: args.ca_cert,
        helper_image: args.helper_image,
        restic_image: args.restic_image,
        screenshots: !args.no_screenshots,
        quick: args.quick,
    };
    let mut progress = Lines {
        t0: Instant::now(),
        tty: std::io::stderr().is_terminal(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let done = rt.block_on(start::run(prepared, host, &mut progress))?;
    print!("{}", done.results.summary());
    println!("results: {}", done.file.display());
    Ok(match (done.interrupted, done.results.verdict().state) {
        (Some(s), _) if s.starts_with("SIGINT") => ExitCode::from(130),
        (Some(_), _) => ExitCode::from(143),
        // An infrastructure error makes the whole run unreliable: it wins.
        (None, State::Error) => ExitCode::from(3),
        (None, State::Failure) => ExitCode::from(1),
        (None, State::Success) => ExitCode::SUCCESS,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
