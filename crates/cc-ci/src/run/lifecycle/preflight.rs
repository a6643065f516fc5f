//! The preflight before rung 1: the Docker engine answers, the run's lease
//! is taken (the janitor never reaps a live run), and the run's start is on
//! record before anything deploys.

use std::time::{Duration, Instant};

use crate::deploy::ipvs::VipSupport;
use crate::results::history::{self, Started};
use crate::results::level::{Rung, Status};
use crate::state::lease::Lease;

use super::Run;

impl Run<'_> {
    /// The preflight of [`Run::body`]; false when it decided the install
    /// rung (an error) and the body stops.
    pub(super) async fn preflight(&mut self) -> bool {
        self.progress.phase("preflight");
        let t = Instant::now();
        let plan = self.plan;
        self.progress.note(&format!(
            "{} at {} ({}), app {} in stack {}, deployer {}",
            plan.recipe.name,
            &plan.tested_ref[..12.min(plan.tested_ref.len())],
            plan.tested_version.as_deref().unwrap_or("no version"),
            plan.domain,
            plan.stack,
            self.infra.deployer.name()
        ));
        let unreachable = match (&self.infra.docker_problem, self.infra.docker.ping().await) {
            (Some(p), _) => Some(p.clone()),
            (None, Err(e)) => Some(e.to_string()),
            (None, Ok(_)) => None,
        };
        if let Some(e) = unreachable {
            let d = (
                Status::Error,
                Some(format!(
                    "the Docker engine cannot be used: {e}; is dockerd running? (scripts/dockerd starts it)"
                )),
            );
            self.decide(Rung::Install, d, t);
            return false;
        }
        if let VipSupport::NoIpvs { looked_at } = &self.infra.vip {
            self.progress.note(&format!(
                "no IPVS here ({looked_at}): services without published ports get endpoint_mode dnsrr"
            ));
        }
        if self.lease.is_none() {
            match Lease::take(&self.infra_state_dir(), plan.lease_info()) {
                Ok(l) => self.lease = Some(l),
                Err(e) => {
                    let d = (Status::Error, Some(format!("cannot take the run's lease: {e}")));
                    self.decide(Rung::Install, d, t);
                    return false;
                }
            }
        }
        // The start is on record before anything deploys: a run killed from
        // here on (OOM, SIGKILL) is a start with no finish, which breaks
        // rung 8 ([`history`]).
        let started = Started {
            schema: history::STARTED_SCHEMA.into(),
            recipe: plan.recipe.name.clone(),
            run_id: plan.run_id.clone(),
            stack: plan.stack.clone(),
            tested_ref: plan.tested_ref.clone(),
            ref_kind: plan.ref_kind.clone(),
            quick: self.results.quick,
            started_at: self.results.started_at.clone(),
        };
        if let Err(e) = std::fs::create_dir_all(&plan.results_dir).and_then(|()| started.write(&plan.results_dir)) {
            let d = (
                Status::Error,
                Some(format!(
                    "cannot record the run's start in {}: {e}",
                    plan.results_dir.display()
                )),
            );
            self.decide(Rung::Install, d, t);
            return false;
        }
        self.phase_done("preflight", t, Duration::ZERO);
        true
    }
}
