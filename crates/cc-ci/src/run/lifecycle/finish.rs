//! The end of a run: undecided rungs recorded as not run, rungs 7
//! (**exemplary**) and 8 (**maintained**, from the results history)
//! computed, the level, the bar and the verdict, the time split.

use std::time::Instant;

use crate::results::history;
use crate::results::level::{Rung, Status};
use crate::results::verdict::{self, Bar, BarSource};
use crate::results::{RunResults, RungResult, TimeSplit};
use crate::state::lease::Lease;

use super::{pass, Decision, Run, BODY_RUNGS};

impl Run<'_> {
    /// The results: undecided rungs 1-6 recorded as not run (with why),
    /// rungs 7 and 8 computed, the level.
    pub fn finish(mut self, interrupted: Option<String>) -> RunResults {
        let not_run = match &interrupted {
            Some(why) => format!("not run: the run was interrupted ({why})"),
            None => "not run: an earlier rung did not pass".to_string(),
        };
        for rung in BODY_RUNGS {
            if !self.decided(rung) {
                self.results.rungs.push(RungResult {
                    rung,
                    status: Status::Skipped,
                    reason: Some(not_run.clone()),
                    duration_s: 0.0,
                    log: None,
                    attempts: 1,
                });
            }
        }
        let t = Instant::now();
        self.results.finish();
        let seven = if self.results.level >= Rung::Tested.level() {
            self.exemplary()
        } else {
            (
                Status::Skipped,
                Some(format!(
                    "not judged: the run reached level {}, and exemplary needs rungs 1-6 green",
                    self.results.level
                )),
            )
        };
        self.decide(Rung::Exemplary, seven, t);
        let finished = chrono::Utc::now();
        self.results.finished_at = finished.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.results.interrupted = interrupted;
        self.results.finish();
        let state_dir = self.infra_state_dir();
        let alive = |stack: &str| Lease::is_held(&crate::state::lease::lease_path(&state_dir, stack));
        let past: Vec<history::PastRun> = history::past_runs(
            &crate::results::layout::recipe_dir(&self.infra.results_root, &self.plan.recipe.name),
            &alive,
        )
        .into_iter()
        .filter(|r| r.run_id != self.plan.run_id)
        .collect();
        let eight = if self.results.level < Rung::Exemplary.level() {
            (
                Status::Skipped,
                Some(format!(
                    "not judged: the run reached level {}, and maintained needs level 7 first",
                    self.results.level
                )),
            )
        } else {
            match history::judge(finished, self.results.level, &past) {
                history::Maintained::Yes(_) => pass(),
                history::Maintained::No(w) => (Status::Fail, Some(w)),
                history::Maintained::NotYet(w) => (Status::Unverified, Some(w)),
            }
        };
        self.decide(Rung::Maintained, eight, t);
        self.results.finish();
        let bar = self.bar(&past);
        self.results.verdict = Some(verdict::judge(&self.results, &bar));
        let wall = self.t0.elapsed().as_secs_f64();
        let waiting = self.waiting.as_secs_f64().min(wall);
        self.results.time_split = Some(TimeSplit {
            wall_s: wall,
            waiting_s: waiting,
            own_s: wall - waiting,
        });
        self.results
    }

    /// Rung 7, judged by [`crate::run::exemplary::judge`] on what the run found.
    fn exemplary(&self) -> Decision {
        let version = self.plan.tested_version.as_deref();
        let notes = version.is_some_and(|v| self.plan.recipe.dir.join("release").join(v).is_file());
        crate::run::exemplary::judge(&crate::run::exemplary::Evidence {
            lint: self.lint_report.as_ref(),
            tested_version: version,
            release_notes: notes,
            clean_teardown: self.results.clean_teardown,
            kept_warm: self.results.kept_warm,
            rungs: &self.results.rungs,
            volumes: &self.results.volumes,
        })
    }

    /// The bar this run is held to: the settings' `min_level`, else the
    /// level of the last run of the newest release on this host, else the
    /// default ([`crate::results::verdict`]).
    fn bar(&self, past: &[history::PastRun]) -> Bar {
        if let Some(level) = self.settings.min_level {
            return Bar {
                level,
                source: BarSource::Setting,
            };
        }
        self.plan
            .newest_release
            .as_deref()
            .and_then(|tag| history::release_bar(past, tag))
            .unwrap_or_else(Bar::default_bar)
    }
}
