//! Rung 1, **install**: the app made in the run's `ABRA_DIR`, the settings'
//! overlay and install steps, then the deploy of the upgrade base (or, on
//! a warm app, the warm app taken as installed).

use std::time::Instant;

use crate::deploy::native::small_sha;
use crate::deploy::{Kind, Version};
use crate::results::level::{Rung, Status};
use crate::results::Adaptation;
use crate::run::plan::RunPlan;
use crate::run::script::{self, ScriptOutcome};
use crate::settings::{Settings, UpgradeBase};

use super::{from_deploy, pass, Run};

impl Run<'_> {
    /// What the install deploys ([`install_target`]).
    fn install_target(&self) -> (String, Version) {
        install_target(self.plan, self.settings)
    }

    pub(super) async fn install(&mut self) -> bool {
        self.progress.phase("install");
        let t = Instant::now();
        let w0 = self.waiting;
        if let Some(w) = &self.warm {
            let why = format!(
                "--quick: the warm app {} kept by run {} at {} (after its green run of {}), converged and healthy; not redeployed",
                w.domain,
                w.kept_by_run,
                w.kept_at_text(),
                small_sha(&w.deployed_ref)
            );
            // The warm app's recipe clone predates the tested commit: fetch it.
            if let Err(e) = self.app.clone_recipe(&self.plan.recipe.dir) {
                let e = format!("--quick: cannot bring the warm app's recipe clone up to the tested commit: {e}");
                self.decide(Rung::Install, (Status::Error, Some(e)), t);
                self.phase_done("install", t, w0);
                return false;
            }
            self.decide(Rung::Install, (Status::Pass, Some(why)), t);
            self.phase_done("install", t, w0);
            return true;
        }
        let (reference, version) = self.install_target();
        let created = self
            .infra
            .deployer
            .new_app(&self.app, &self.plan.recipe.dir, &reference, &self.settings.env)
            .await;
        if let Err(e) = created {
            self.decide(Rung::Install, from_deploy(&e), t);
            self.phase_done("install", t, w0);
            return false;
        }
        self.deployed = true;
        if let Some(o) = self.settings.overlay.clone() {
            // The settings' compose overlay, appended last to COMPOSE_FILE.
            let checkout = self.app.checkout();
            let done = self.app.env_file().map_err(|e| e.to_string()).and_then(|mut envf| {
                self.settings
                    .apply_overlay(&checkout, &mut envf)
                    .map_err(|e| e.to_string())?;
                let cf = envf.get("COMPOSE_FILE").unwrap_or("compose.yml").to_string();
                self.app.set("COMPOSE_FILE", &cf).map_err(|e| e.to_string())
            });
            match done {
                Ok(()) => self.results.adaptations.push(Adaptation {
                    what: "the settings' compose.ccci.yml overlay is appended to COMPOSE_FILE".into(),
                    why: o.reason,
                }),
                Err(e) => {
                    self.decide(Rung::Install, (Status::Error, Some(format!("overlay: {e}"))), t);
                    return false;
                }
            }
        }
        if let Some(steps) = self.settings.install_steps.clone() {
            self.progress.note(&format!("install steps: {}", steps.display()));
            let r = script::run(&steps, Rung::Install, &self.env, self.settings.timeouts.scripts).await;
            if r.outcome != ScriptOutcome::Passed {
                let d = (
                    Status::Fail,
                    Some(format!(
                        "install-steps {:?}: {} (log {})",
                        r.outcome, r.stderr_tail, r.log
                    )),
                );
                self.decide(Rung::Install, d, t);
                self.phase_done("install", t, w0);
                return false;
            }
        }
        self.progress.note(&format!("deploying {reference} (the upgrade base)"));
        // The serve rung's browser starts while the deploy converges.
        self.start_browser_ahead();
        let label = match &version {
            Version::Release(tag) => ("version", tag.clone()),
            Version::Chaos(sha) => ("chaos-version", sha.clone()),
        };
        let req = self.deploy_request(reference.clone(), version, Kind::Install);
        let given = self.settings.secrets.clone();
        let deployer = &self.infra.deployer;
        let app = self.app.clone();
        let r = self.wait(deployer.deploy(&app, &req, &given)).await;
        let ok = match r {
            Ok(d) => {
                self.record_deploy(&format!("install {reference}"), &d);
                self.live = Some((d.commit.clone(), label.0.to_string(), label.1));
                self.decide(Rung::Install, pass(), t);
                true
            }
            Err(e) => {
                self.deploy_log.push(format!("== install {reference} failed: {e}"));
                self.decide(Rung::Install, from_deploy(&e), t);
                false
            }
        };
        self.phase_done("install", t, w0);
        ok
    }
}

/// What the install of a run deploys: the upgrade base, or (with none)
/// the tested ref itself (its release tag when it has one): the ref to check
/// out and the version to deploy it as.
pub fn install_target(plan: &RunPlan, settings: &Settings) -> (String, Version) {
    let tested = || {
        let tagged = plan
            .recipe
            .releases()
            .ok()
            .and_then(|rs| rs.into_iter().rev().find(|r| r.commit == plan.tested_ref));
        match tagged {
            Some(r) => (r.tag.clone(), Version::Release(r.tag)),
            None => (plan.tested_ref.clone(), Version::Chaos(small_sha(&plan.tested_ref))),
        }
    };
    match (&settings.upgrade_base, &plan.base) {
        (UpgradeBase::Skip(_), _) => tested(),
        (UpgradeBase::Pinned(tag), _) => (tag.clone(), Version::Release(tag.clone())),
        (UpgradeBase::Previous, Ok(b)) => (b.tag.clone(), Version::Release(b.tag.clone())),
        (UpgradeBase::Previous, Err(_)) => tested(),
    }
}
