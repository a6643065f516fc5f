//! The lifecycle suite behind `ccci test`: preflight, the rungs in order
//! against one deployment, teardown always, and the results.
//!
//! What runs today: planning (the recipe is validated before anything
//! deploys), the infrastructure preflight (Docker engine, abra), the results
//! file and the closing summary. The rungs themselves drive the real `abra`,
//! which cannot be had on our build machines (the Go module proxy refuses
//! `coopcloud.tech/abra`); until it can, a run ends with the install rung in
//! `error` naming that reason, never a `fail` and never a pass.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::results::level::{Rung, Status};
use crate::results::{PhaseTiming, RunResults, RungResult, SCHEMA};
use crate::run::plan::RunPlan;

/// Receives progress as a run goes (the CLI shows it live on a terminal, as
/// plain log lines otherwise).
pub trait Progress {
    /// A phase starts.
    fn phase(&mut self, name: &str);
    /// A note inside the current phase.
    fn note(&mut self, text: &str);
    /// A rung is decided.
    fn rung(&mut self, result: &RungResult);
}

/// Where the infrastructure is.
#[derive(Debug, Clone)]
pub struct Infra {
    /// The abra binary, if one was found.
    pub abra: Option<PathBuf>,
    /// Why the Docker engine cannot be used, if it cannot.
    pub docker_problem: Option<String>,
}

/// The reason every abra-driven rung reports while abra cannot be had.
pub const ABRA_UNAVAILABLE: &str = "abra is not available: the real abra drives every deploy, and this machine \
     could not build it (the Go module proxy refuses coopcloud.tech/abra: \"Go module host not permitted\")";

/// Finds `abra`: the given path, else `abra` on PATH.
pub fn find_abra(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("abra"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default()
}

fn result(rung: Rung, status: Status, reason: Option<String>, duration_s: f64) -> RungResult {
    RungResult {
        rung,
        status,
        reason,
        duration_s,
        log: None,
    }
}

/// Runs the suite for `plan` on `infra`, reporting to `progress`; returns the
/// finished results (not yet written).
pub fn run(plan: &RunPlan, infra: &Infra, progress: &mut dyn Progress) -> RunResults {
    let started = chrono::Utc::now();
    let mut phases = Vec::new();
    let mut rungs = Vec::new();
    let mut decide = |r: RungResult, progress: &mut dyn Progress| {
        progress.rung(&r);
        rungs.push(r);
    };

    progress.phase("preflight");
    let t = Instant::now();
    progress.note(&format!(
        "{} at {} ({}), app {} in stack {}",
        plan.recipe.name,
        &plan.tested_ref[..12.min(plan.tested_ref.len())],
        plan.tested_version.as_deref().unwrap_or("no version"),
        plan.domain,
        plan.stack
    ));
    match &plan.base {
        Ok(b) => progress.note(&format!("upgrade base: {}", b.tag)),
        Err(p) => progress.note(&format!("no upgrade base: {p}")),
    }
    let infra_problem = infra
        .docker_problem
        .clone()
        .map(|d| format!("the Docker engine cannot be used: {d}"))
        .or_else(|| infra.abra.is_none().then(|| ABRA_UNAVAILABLE.to_string()));
    phases.push(PhaseTiming {
        phase: "preflight".into(),
        wall_s: t.elapsed().as_secs_f64(),
        waiting_s: 0.0,
    });

    let install = match infra_problem {
        Some(p) => result(Rung::Install, Status::Error, Some(p), 0.0),
        None => result(
            Rung::Install,
            Status::Error,
            Some(format!(
                "abra found at {}, but cc-ci's abra driver is not written yet",
                infra.abra.as_ref().map_or(String::new(), |a| a.display().to_string())
            )),
            0.0,
        ),
    };
    let install_passed = install.status == Status::Pass;
    decide(install, progress);
    if !install_passed {
        for rung in [Rung::Serve, Rung::Upgrade, Rung::Restore] {
            decide(
                result(rung, Status::Skipped, Some("not run: install did not pass".into()), 0.0),
                progress,
            );
        }
    }
    let mut results = RunResults {
        schema: SCHEMA.into(),
        recipe: plan.recipe.name.clone(),
        tested_ref: plan.tested_ref.clone(),
        tested_version: plan.tested_version.clone(),
        base_version: plan.base.as_ref().ok().map(|b| b.tag.clone()),
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rungs,
        level: 0,
        level_name: String::new(),
        phases,
        settings: serde_json::json!({}),
        screenshot: None,
    };
    results.finish();
    results
}
