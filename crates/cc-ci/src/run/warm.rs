//! Warm apps for `ccci test --quick`: a maintainer iterating on a PR reuses
//! the deployment a green `--quick` run of the same recipe kept, upgrades it
//! to the tested ref and climbs the rest of the ladder, instead of
//! installing from scratch.
//!
//! A green `--quick` run does not tear its app down: it writes a *warm
//! record*, `<state_dir>/warm/<stack>.json` ([`WarmRecord`], written to a
//! temp file and renamed), and lets go of its lease. The app's run folder
//! (its ABRA_DIR and env file) stays where it was.
//!
//! The next `--quick` run of that recipe [`claim`]s the newest record: it
//! takes the app's lease (a live run or a janitor holding it makes the run
//! cold), checks the app is healthy (every service converged within
//! [`HEALTH_WAIT`], the `app` service carrying the version the record
//! names), removes the record (the app is the run's now: if the run dies,
//! the janitor reaps it as any dead run's), and adopts the app's domain,
//! stack and ABRA_DIR. A warm app that is not healthy, or older than
//! [`records::WARM_MAX_AGE`], is torn down under that lease and the run is cold.
//!
//! The janitor leaves an app whose record is fresh (`kept warm`) and reaps
//! it, record and all, once the record is stale or unreadable.

use std::path::Path;
use std::time::Duration;

use bollard::Docker;

use crate::deploy::overrides::{label, APP_SERVICE};
use crate::state::lease::{Holder, Lease, LeaseInfo};
use crate::state::warm::{self as records, WarmRecord};

/// How long [`claim`] waits for a warm app's services to be converged.
pub const HEALTH_WAIT: Duration = Duration::from_secs(30);

/// What [`claim`] found.
pub enum Claim {
    /// A healthy warm app, now this run's: its record is removed and its
    /// lease is held.
    Adopted {
        /// The record it was kept under.
        record: Box<WarmRecord>,
        /// Its lease, held for the run.
        lease: Box<Lease>,
    },
    /// No warm app can be used: the run is cold.
    Cold {
        /// Why (no record, busy, stale, not healthy and torn down).
        why: String,
    },
}

/// Claims the newest fresh warm app of `recipe` for the run `run_id` (see
/// the module doc). Never fails: anything that stops the reuse makes the
/// run cold, saying why; an app found stale or not healthy is torn down
/// (stack, run folder, record) under its lease first.
pub async fn claim(docker: &Docker, state_dir: &Path, recipe: &str, run_id: &str) -> Claim {
    let now = chrono::Utc::now();
    let mut records: Vec<WarmRecord> = records::list(state_dir)
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter(|r| r.recipe == recipe)
        .collect();
    records.sort_by_key(|r| r.kept_at);
    let Some(record) = records.pop() else {
        return Claim::Cold {
            why: format!("no app of {recipe} is kept warm here (a green --quick run keeps one)"),
        };
    };
    let info = LeaseInfo::new(run_id, &record.domain, &record.stack, Holder::Run);
    let lease = match Lease::take(state_dir, info) {
        Ok(l) => l,
        Err(e) => {
            return Claim::Cold {
                why: format!("the warm app {} is busy: {e}", record.domain),
            }
        }
    };
    let sick = if record.fresh(now) {
        health(docker, &record).await.err()
    } else {
        Some(format!(
            "kept at {}, longer ago than {} h",
            record.kept_at.to_rfc3339(),
            records::WARM_MAX_AGE.as_secs() / 3600
        ))
    };
    if let Some(why) = sick {
        let gone = match crate::deploy::stack::teardown(docker, &record.stack, Duration::from_secs(120)).await {
            Ok(td) if td.is_clean() => "torn down".to_string(),
            Ok(td) => format!("torn down, but {} object(s) are left for the janitor", td.left.len()),
            Err(e) => format!("its teardown failed ({e}); the janitor will retry"),
        };
        if let Some(dir) = record.abra_dir.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        records::remove(state_dir, &record.stack);
        drop(lease);
        return Claim::Cold {
            why: format!("the warm app {} is not healthy: {why}; {gone}", record.domain),
        };
    }
    records::remove(state_dir, &record.stack);
    Claim::Adopted {
        record: Box::new(record),
        lease: Box::new(lease),
    }
}

/// Whether the warm app is healthy: every service converged within
/// [`HEALTH_WAIT`] with at least one running task, its ABRA_DIR still
/// there, and the `app` service
/// carrying the label value the record names.
async fn health(docker: &Docker, record: &WarmRecord) -> Result<(), String> {
    if !record.abra_dir.is_dir() {
        return Err(format!("its ABRA_DIR {} is gone", record.abra_dir.display()));
    }
    crate::deploy::converge::wait_converged(docker, &record.stack, HEALTH_WAIT)
        .await
        .map_err(|e| e.to_string())?;
    let labels = crate::deploy::converge::running_labels(docker, &record.stack)
        .await
        .map_err(|e| e.to_string())?;
    if let Some((name, _)) = labels.iter().find(|(_, l)| l.containers.is_empty()) {
        return Err(format!("service {name} has no running task"));
    }
    let app = format!("{}_{APP_SERVICE}", record.stack);
    let key = label(&record.stack, &record.label_key);
    let live = labels.get(&app).and_then(|l| l.service.get(&key)).cloned();
    if live.as_deref() != Some(record.deployed_label.as_str()) {
        return Err(format!(
            "service {app} has {key}={}, the record says {}",
            live.as_deref().unwrap_or("unset"),
            record.deployed_label
        ));
    }
    if !labels.get(&app).is_some_and(|l| l.running_current_spec) {
        return Err(format!("service {app} runs tasks of an older spec"));
    }
    Ok(())
}
