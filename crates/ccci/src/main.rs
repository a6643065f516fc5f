//! `ccci`: cc-ci's main job. A thin CLI over [`cc_ci::run::plan`] and
//! [`cc_ci::run::lifecycle`]; `ccci report` renders a results file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use cc_ci::results::level::Status;
use cc_ci::results::{RunResults, RungResult};
use cc_ci::run::lifecycle::{self, Infra, Progress};
use cc_ci::run::plan::{RunEnv, RunPlan};
use cc_ci::run::settings::Settings;
use clap::{Parser, Subcommand};

/// cc-ci's main job: take a Co-op Cloud recipe through its lifecycle on this
/// host's swarm (install, serve, upgrade, backup/restore), give it a level,
/// and write results.json.
///
/// Exit status of `ccci test`: 0 when no rung failed or errored, 1 when a
/// rung failed (a recipe problem), 3 when a rung errored (an infrastructure
/// problem: Docker down, abra missing, disk full), 2 when RECIPE was refused
/// before anything deployed (not a recipe: the message names the file).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the lifecycle suite on a recipe checkout and write results.json.
    Test {
        /// A recipe checkout (a git repository with compose.yml and
        /// .env.sample), or the name of one under $CCCI_RECIPES_DIR.
        recipe: String,
        /// The wildcard domain Traefik serves; apps get `<recipe>-<6 hex>.<domain>`.
        #[arg(long, env = "CCCI_DOMAIN", default_value = "ci.test")]
        domain: String,
        /// Per-run state (each run's ABRA_DIR goes under `<dir>/runs/<run id>/`).
        #[arg(long, env = "CCCI_STATE_DIR", default_value = "/var/lib/cc-ci")]
        state_dir: PathBuf,
        /// Results root: `<dir>/<recipe>/<run id>/results.json`.
        #[arg(long, env = "CCCI_RESULTS_DIR", default_value = "/var/lib/cc-ci/results")]
        results_dir: PathBuf,
        /// Where named recipes are looked up.
        #[arg(long, env = "CCCI_RECIPES_DIR", default_value = "/var/lib/cc-ci/recipes")]
        recipes_dir: PathBuf,
        /// The abra binary (default: `abra` on PATH).
        #[arg(long, env = "CCCI_ABRA")]
        abra: Option<PathBuf>,
        /// Per-recipe settings: `<dir>/<recipe>/ccci.toml` and executables
        /// (format: tests/recipes/README.md). A recipe without a folder runs
        /// with zero config.
        #[arg(long, env = "CCCI_SETTINGS_DIR", default_value = "tests/recipes")]
        settings_dir: PathBuf,
    },
    /// Print the summary table of a results.json.
    Report {
        /// A results.json written by `ccci test`.
        results: PathBuf,
    },
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
        self.say(&format!("   rung {} {:?}: {status}{reason}", r.rung.level(), r.rung));
    }
}

fn resolve(recipe: &str, recipes_dir: &Path) -> PathBuf {
    let p = PathBuf::from(recipe);
    if p.exists() || recipe.contains('/') {
        p
    } else {
        recipes_dir.join(recipe)
    }
}

fn docker_problem() -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        match cc_ci::host::swarm::connect().await {
            Err(e) => Some(e.to_string()),
            Ok(d) => d.ping().await.err().map(|e| e.to_string()),
        }
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Report { results } => {
            let r = RunResults::read(&results)?;
            print!("{}", r.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            recipe,
            domain,
            state_dir,
            results_dir,
            recipes_dir,
            abra,
            settings_dir,
        } => {
            let dir = resolve(&recipe, &recipes_dir);
            let env = RunEnv {
                domain,
                state_dir,
                results_dir,
            };
            let plan = RunPlan::new(&dir, &env).context("refused before anything was deployed")?;
            let mut settings = Settings::load(&settings_dir, &plan.recipe.name)
                .context("refused before anything was deployed: fix the recipe's cc-ci settings")?;
            settings
                .repo_local(&plan.recipe.dir)
                .context("refused before anything was deployed")?;
            eprint!("{}", settings.describe());
            let infra = Infra {
                abra: lifecycle::find_abra(abra.as_deref()),
                docker_problem: docker_problem(),
            };
            let mut progress = Lines {
                t0: Instant::now(),
                tty: std::io::stderr().is_terminal(),
            };
            let mut results = lifecycle::run(&plan, &infra, &mut progress);
            results.settings = settings.manifest();
            std::fs::create_dir_all(&plan.results_dir)
                .with_context(|| format!("cannot create {}", plan.results_dir.display()))?;
            let file = plan.results_dir.join("results.json");
            results.write(&file)?;
            print!("{}", results.summary());
            println!("results: {}", file.display());
            let any = |s| results.rungs.iter().any(|r| r.status == s);
            Ok(if any(Status::Fail) {
                ExitCode::from(1)
            } else if any(Status::Error) {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
