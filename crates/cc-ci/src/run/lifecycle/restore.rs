//! Rung 4, **restore**: the backupbot label contract run natively
//! ([`crate::run::backup`]), its progress shown as it goes, and what
//! protects each named volume of the app (results.json `volumes`).

use std::time::Instant;

use crate::results::level::{Rung, Status};
use crate::results::{Coverage, VolumeCoverage};
use crate::run::backup;

use super::{pass, Decision, Run};

impl Run<'_> {
    pub(super) async fn restore(&mut self) {
        self.progress.phase("backup/restore");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = self.restore_decision().await;
        self.decide(Rung::Restore, d, t);
        self.phase_done("restore", t, w0);
    }

    /// Records what protects each named volume of the app
    /// (results.json `volumes`): a backupbot label of a service that mounts
    /// it, the settings (`[volumes.ephemeral]`, or a declared-n/a restore
    /// with its reason), or nothing.
    async fn cover_volumes(&mut self, declared_na: Option<&str>) -> Result<(), Decision> {
        let docker = self.infra.docker.clone();
        let objects = self
            .wait(crate::deploy::stack::list_objects(&docker, &self.plan.stack))
            .await
            .map_err(|e| (Status::Error, Some(e.to_string())))?;
        let covered = match self.wait(backup::plan(&docker, &self.plan.stack)).await {
            Ok(Some(p)) => p.volumes(),
            Ok(None) => Vec::new(),
            // The round trip fails on it, naming the label.
            Err(e) if e.is_recipe_failure() => Vec::new(),
            Err(e) => return Err((Status::Error, Some(e.to_string()))),
        };
        let prefix = format!("{}_", self.plan.stack);
        let mut out: Vec<VolumeCoverage> = objects
            .volumes
            .iter()
            .map(|v| {
                let short = v.name.strip_prefix(&prefix).unwrap_or(&v.name).to_string();
                let covered = if covered.contains(&v.name) {
                    Coverage::Backup
                } else if let Some(reason) = self.settings.ephemeral_volumes.get(&short) {
                    Coverage::Ephemeral { reason: reason.clone() }
                } else if let Some(reason) = declared_na {
                    Coverage::Ephemeral {
                        reason: format!("restore declared not applicable: {reason}"),
                    }
                } else {
                    Coverage::None
                };
                VolumeCoverage { volume: short, covered }
            })
            .collect();
        out.sort_by(|a, b| a.volume.cmp(&b.volume));
        self.results.volumes = out;
        Ok(())
    }

    /// The volumes nothing protects, as a clause for the restore rung's
    /// reason, if there are any.
    fn unprotected_note(&self) -> Option<String> {
        let names: Vec<&str> = self
            .results
            .volumes
            .iter()
            .filter(|v| v.covered == Coverage::None)
            .map(|v| v.volume.as_str())
            .collect();
        (!names.is_empty()).then(|| {
            format!(
                "named volume(s) {} hold data no backup covers, which keeps the recipe below exemplary: add backupbot labels, or declare them in [volumes.ephemeral] of tests/recipes/{}/ccci.toml with a reason",
                names.join(", "),
                self.plan.recipe.name
            )
        })
    }

    fn with_note(&self, d: Decision) -> Decision {
        match (d, self.unprotected_note()) {
            ((status, None), Some(n)) => (status, Some(n)),
            ((status, Some(r)), Some(n)) => (status, Some(format!("{r}; {n}"))),
            (d, None) => d,
        }
    }

    async fn restore_decision(&mut self) -> Decision {
        let declared = self.settings.declared_na(Rung::Restore).or_else(|| {
            self.settings
                .backup
                .as_ref()
                .filter(|b| !b.capable)
                .map(|b| b.reason.clone())
        });
        if let Some(why) = &self.app_unusable {
            return (Status::Skipped, Some(format!("not run: {why}")));
        }
        if let Err(d) = self.cover_volumes(declared.as_deref()).await {
            return d;
        }
        if let Some(why) = declared {
            return self.with_note((Status::NotApplicable, Some(why)));
        }
        if let Some(h) = self.hook(Rung::Restore).await {
            return h;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let opts = backup::RoundTripOptions {
            restic_image: self.infra.restic_image.clone(),
            witness_name: self.plan.run_id.clone(),
            data: self.data.clone(),
            data_written: self.data_written,
            progress: Some(tx),
            ..Default::default()
        };
        let repo = self
            .infra_state_dir()
            .join("runs")
            .join(&self.plan.run_id)
            .join("backup");
        // The round trip's progress is shown as it goes.
        let waited = Instant::now();
        let rt = {
            let docker = self.infra.docker.clone();
            let trip = backup::round_trip(&docker, &self.plan.stack, &repo, &opts);
            tokio::pin!(trip);
            loop {
                tokio::select! {
                    rt = &mut trip => break rt,
                    Some(line) = rx.recv() => self.progress.note(&line),
                }
            }
        };
        self.waiting += waited.elapsed();
        self.write_artifact("backup-log", "backup.log", &rt.log);
        for c in &rt.checks {
            self.progress.note(&format!(
                "{} {}: {}",
                c.service,
                c.target.container_path(),
                c.describe()
            ));
        }
        let d = match rt.status {
            backup::RoundTripStatus::Pass => pass(),
            backup::RoundTripStatus::Fail(r) => (Status::Fail, Some(r)),
            backup::RoundTripStatus::Error(r) => (Status::Error, Some(r)),
            backup::RoundTripStatus::NotApplicable(r) => return self.with_note((Status::NotApplicable, Some(r))),
        };
        if d.0 != Status::Pass {
            return d;
        }
        let d = self.http_checks(Rung::Restore).await;
        if d.0 != Status::Pass {
            return d;
        }
        self.with_note(d)
    }
}
