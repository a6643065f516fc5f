//! Rung 3, **upgrade**: witnesses into every named volume (and the
//! settings' data witness), the chaos deploy of the tested commit, the
//! `app` service's labels proving it is live, the HTTP checks and a
//! screenshot again, every volume mounted where it was and every witness
//! intact.

use std::time::Instant;

use crate::deploy::native::small_sha;
use crate::deploy::overrides::{label, APP_SERVICE};
use crate::deploy::{Kind, Version};
use crate::results::level::{Rung, Status};
use crate::run::plan::BaseProblem;
use crate::run::witness::{Witness, WitnessState};
use crate::settings::UpgradeBase;

use super::{from_data, from_deploy, pass, Decision, Run};

impl Run<'_> {
    pub(super) async fn upgrade(&mut self) {
        self.progress.phase("upgrade");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = self.upgrade_decision().await;
        self.decide(Rung::Upgrade, d, t);
        self.phase_done("upgrade", t, w0);
    }

    /// Why a pinned upgrade base proves nothing, if it does not: it is the
    /// tested commit, or it names the tested version (an upgrade from a
    /// version to itself, which the earlier cc-ci passed).
    fn pinned_to_itself(&self, tag: &str) -> Option<String> {
        let same_commit = self
            .plan
            .recipe
            .releases()
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.tag == tag))
            .is_some_and(|r| r.commit == self.plan.tested_ref);
        let bare = |v: &str| v.trim_start_matches('v').to_string();
        let same_version = self.plan.tested_version.as_deref().map(bare) == Some(bare(tag));
        (same_commit || same_version).then(|| {
            format!(
                "the pinned upgrade base {tag} is the tested {} itself: an upgrade to itself proves nothing; pin an older release in [upgrade] base",
                if same_commit { "commit" } else { "version" }
            )
        })
    }

    /// Where the app's services mount named volumes now (an error decision
    /// when Docker cannot say).
    async fn volume_mounts(&mut self) -> Result<Vec<crate::deploy::stack::VolumeMount>, Decision> {
        let docker = self.infra.docker.clone();
        self.wait(crate::deploy::stack::volume_mounts(&docker, &self.plan.stack))
            .await
            .map_err(|e| (Status::Error, Some(e.to_string())))
    }

    async fn upgrade_decision(&mut self) -> Decision {
        if let UpgradeBase::Skip(why) = &self.settings.upgrade_base {
            return (Status::NotApplicable, Some(why.clone()));
        }
        if let Some(why) = self.settings.declared_na(Rung::Upgrade) {
            return (Status::NotApplicable, Some(why));
        }
        if let Some(w) = &self.warm {
            if w.deployed_ref == self.plan.tested_ref {
                return (
                    Status::Unverified,
                    Some(format!(
                        "the warm app already runs the tested commit {}: an upgrade to itself proves nothing (push a new commit, or run without --quick)",
                        small_sha(&w.deployed_ref)
                    )),
                );
            }
        } else if let (UpgradeBase::Previous, Err(p)) = (&self.settings.upgrade_base, &self.plan.base) {
            let why = match p {
                BaseProblem::BaseIsHead(_) => format!("{p}"),
                _ => format!("{p}; the tested ref was installed directly, nothing was upgraded"),
            };
            return (Status::Unverified, Some(why));
        }
        if let (UpgradeBase::Pinned(tag), None) = (&self.settings.upgrade_base, &self.warm) {
            if let Some(why) = self.pinned_to_itself(tag) {
                return (Status::Unverified, Some(why));
            }
        }
        if let Some(why) = &self.app_unusable {
            return (Status::Skipped, Some(format!("not run: {why}")));
        }
        if let Some(h) = self.hook(Rung::Upgrade).await {
            return h;
        }
        // Witnesses in every named volume of the app.
        let volumes = match crate::deploy::stack::list_objects(&self.infra.docker, &self.plan.stack).await {
            Ok(o) => o.volumes.into_iter().map(|v| v.name).collect::<Vec<_>>(),
            Err(e) => return (Status::Error, Some(e.to_string())),
        };
        if !volumes.is_empty() {
            self.progress
                .note(&format!("writing witnesses into {} named volume(s)", volumes.len()));
        }
        for v in &volumes {
            let w = self
                .wait(Witness::write_named(
                    &self.infra.docker,
                    v,
                    &self.infra.helper_image,
                    &self.plan.run_id,
                ))
                .await;
            match w {
                Ok(w) => self.witnesses.push(w),
                Err(e) => return (Status::Error, Some(format!("witness in volume {v}: {e}"))),
            }
        }
        if !volumes.is_empty() {
            self.progress.note(&format!(
                "witnesses written in {} volume(s): {}",
                volumes.len(),
                volumes.join(", ")
            ));
        }
        // Where the services mount the witnessed volumes now: the upgraded
        // services must still mount each at the same path (a release that
        // renames a volume or stops mounting it loses the app's data, while
        // the witness sits intact in the old volume).
        let mounts_before = match self.volume_mounts().await {
            Ok(m) => m,
            Err(d) => return d,
        };
        if let Some(d) = self.data.clone() {
            if let Err(e) = self.wait(d.write(&self.infra.docker, &self.plan.stack)).await {
                return from_data(e);
            }
            self.data_written = true;
            self.progress.note(&format!(
                "data witness written through service {} ([data] write)",
                d.service
            ));
        }
        // The chaos deploy of the tested commit.
        if let Some(env) = (!self.settings.upgrade_env.is_empty()).then(|| self.settings.upgrade_env.clone()) {
            if let Err(e) = self.app.set_all(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                return (Status::Error, Some(e.to_string()));
            }
        }
        // The upgrade's browser starts while the deploy converges.
        self.start_browser_ahead();
        let sha = small_sha(&self.plan.tested_ref);
        let req = self.deploy_request(self.plan.tested_ref.clone(), Version::Chaos(sha.clone()), Kind::Upgrade);
        let given = self.settings.secrets.clone();
        let deployer = &self.infra.deployer;
        let app = self.app.clone();
        self.progress
            .note(&format!("deploying the tested commit {sha} with --chaos"));
        match self.wait(deployer.deploy(&app, &req, &given)).await {
            Ok(d) => {
                self.record_deploy(&format!("upgrade to {sha} (chaos)"), &d);
                self.live = Some((self.plan.tested_ref.clone(), "chaos-version".into(), sha.clone()));
            }
            Err(e) => {
                self.deploy_log.push(format!("== upgrade to {sha} failed: {e}"));
                if e.step == crate::deploy::Step::Converge {
                    self.app_unusable = Some("the upgrade left the app unconverged".into());
                }
                return from_deploy(&e);
            }
        }
        // The labels prove the tested commit is live.
        let labels = match self
            .wait(crate::deploy::converge::running_labels(
                &self.infra.docker,
                &self.plan.stack,
            ))
            .await
        {
            Ok(l) => l,
            Err(e) => return (Status::Error, Some(e.to_string())),
        };
        let app_service = format!("{}_{APP_SERVICE}", self.plan.stack);
        let Some(app) = labels.get(&app_service) else {
            return (
                Status::Unverified,
                Some(format!(
                    "no service `{APP_SERVICE}`: abra puts its version labels on the service named app only, so nothing proves which commit runs"
                )),
            );
        };
        let chaos = app.service.get(&label(&self.plan.stack, "chaos")).map(String::as_str);
        let live = app.service.get(&label(&self.plan.stack, "chaos-version")).cloned();
        if chaos != Some("true") || live.as_deref() != Some(sha.as_str()) || !app.running_current_spec {
            return (
                Status::Fail,
                Some(format!(
                    "the upgrade is not live: service {app_service} has chaos={} chaos-version={} (expected true / {sha}), running tasks from the current spec: {}",
                    chaos.unwrap_or("unset"),
                    live.as_deref().unwrap_or("unset"),
                    app.running_current_spec
                )),
            );
        }
        self.progress.note(&format!(
            "live: {app_service} carries chaos-version={sha}, its running tasks are from the current spec"
        ));
        let d = self.http_checks(Rung::Upgrade).await;
        if d.0 != Status::Pass {
            return d;
        }
        self.screenshot("screenshot-upgrade", "screenshot-upgrade.png").await;
        let mounts_after = match self.volume_mounts().await {
            Ok(m) => m,
            Err(d) => return d,
        };
        let witnessed: Vec<&str> = self.witnesses.iter().map(|w| w.volume.as_str()).collect();
        for m in mounts_before.iter().filter(|m| witnessed.contains(&m.volume.as_str())) {
            if mounts_after.contains(m) {
                continue;
            }
            let now: Vec<String> = mounts_after
                .iter()
                .filter(|a| a.service == m.service && a.target == m.target)
                .map(|a| format!("volume {}", a.volume))
                .collect();
            return (
                Status::Fail,
                Some(format!(
                    "after the upgrade, service {} no longer mounts volume {} at {} ({}): the release renamed or dropped the volume, so the app lost its data",
                    m.service,
                    m.volume,
                    m.target,
                    if now.is_empty() {
                        "nothing is mounted there now".to_string()
                    } else {
                        format!("it mounts {} there now", now.join(", "))
                    }
                )),
            );
        }
        for w in self.witnesses.clone() {
            match self.wait(w.state(&self.infra.docker, &self.infra.helper_image)).await {
                Ok(WitnessState::Intact) => {}
                Ok(s) => {
                    return (
                        Status::Fail,
                        Some(format!(
                            "the witness in volume {} did not survive the upgrade: {s:?}",
                            w.volume
                        )),
                    )
                }
                Err(e) => return (Status::Error, Some(format!("witness in volume {}: {e}", w.volume))),
            }
        }
        if !self.witnesses.is_empty() {
            self.progress.note(&format!(
                "{} witness(es) intact after the upgrade, each volume mounted where it was",
                self.witnesses.len()
            ));
        }
        if let Some(d) = self.data.clone() {
            match self.wait(d.holds(&self.infra.docker, &self.plan.stack)).await {
                Ok(Ok(())) => self
                    .progress
                    .note(&format!("data witness read back through service {}", d.service)),
                Ok(Err(out)) => {
                    return (
                        Status::Fail,
                        Some(format!(
                            "the app lost its data in the upgrade: [data] read in service {} does not print the data witness written before it ({out})",
                            d.service
                        )),
                    )
                }
                Err(e) => return from_data(e),
            }
        }
        pass()
    }
}
