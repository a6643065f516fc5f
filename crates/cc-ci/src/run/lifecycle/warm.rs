//! `--quick`: a run that adopts a warm app ([`crate::run::warm::claim`])
//! instead of installing, and one that keeps its app warm for the next
//! run instead of tearing it down.

use std::path::PathBuf;

use crate::deploy::native::small_sha;
use crate::results::level::Status;
use crate::state::lease::Lease;
use crate::state::warm::WarmRecord;

use super::{Run, BODY_RUNGS};

impl Run<'_> {
    /// Takes over a warm app [`crate::run::warm::claim`] adopted (the plan
    /// must already name its domain, stack and ABRA_DIR:
    /// [`RunPlan::adopt_warm`](crate::run::plan::RunPlan::adopt_warm)): its lease is the run's, the install rung
    /// reuses it instead of deploying, and the upgrade starts from what it runs.
    pub fn adopt_warm(&mut self, record: WarmRecord, lease: Lease) {
        self.progress.note(&format!(
            "--quick: reusing the warm app {} (kept by run {} at {}, running {})",
            record.domain,
            record.kept_by_run,
            record.kept_at_text(),
            small_sha(&record.deployed_ref)
        ));
        self.results.warm = Some(crate::results::WarmOrigin {
            app_run_id: record.app_run_id.clone(),
            kept_by_run: record.kept_by_run.clone(),
            kept_at: record.kept_at_text(),
            deployed_ref: record.deployed_ref.clone(),
        });
        self.results.base_version = Some(format!("warm app at {}", small_sha(&record.deployed_ref)));
        self.live = Some((
            record.deployed_ref.clone(),
            record.label_key.clone(),
            record.deployed_label.clone(),
        ));
        self.lease = Some(lease);
        self.deployed = true;
        self.warm = Some(record);
    }

    /// Keeps the app warm for the next `--quick` run when rungs 1-6 end
    /// green (a warm record instead of the teardown; rung 7 is then
    /// unverified, as no teardown was proven).
    pub fn keep_warm(&mut self) {
        self.keep_warm = true;
        self.results.quick = true;
    }

    /// Rungs 1-6 all decided, none failed or errored (the body ran to its end).
    pub(super) fn green_so_far(&self) -> bool {
        BODY_RUNGS.iter().all(|rung| {
            self.results
                .rungs
                .iter()
                .any(|r| r.rung == *rung && !matches!(r.status, Status::Fail | Status::Error))
        })
    }

    /// Writes the warm record of the app as it runs now.
    pub(super) fn keep_app_warm(&self) -> Result<PathBuf, String> {
        let (commit, key, value) = self.live.clone().ok_or("no deploy converged")?;
        let app_run_id = self
            .warm
            .as_ref()
            .map_or_else(|| self.plan.run_id.clone(), |w| w.app_run_id.clone());
        let record = WarmRecord {
            schema: crate::state::warm::WARM_SCHEMA.into(),
            recipe: self.plan.recipe.name.clone(),
            app_run_id,
            domain: self.plan.domain.clone(),
            stack: self.plan.stack.clone(),
            abra_dir: self.plan.abra_dir.clone(),
            deployed_ref: commit,
            deployed_label: value,
            label_key: key,
            kept_by_run: self.plan.run_id.clone(),
            kept_at: chrono::Utc::now(),
        };
        record.write(&self.infra_state_dir()).map_err(|e| e.to_string())
    }
}
