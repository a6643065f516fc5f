//! Rung 6, **tested**: the recipe's own checks (the settings' `custom/`
//! executables, and a used repo-local decision's), retried as
//! `[tested] retries` allows.

use std::time::Instant;

use crate::results::level::{Rung, Status};
use crate::run::script::{self, ScriptOutcome};

use super::{pass, Decision, Run};

impl Run<'_> {
    pub(super) async fn tested(&mut self) {
        self.progress.phase("tested");
        let t = Instant::now();
        let w0 = self.waiting;
        let (d, attempts) = self.tested_decision().await;
        self.decide_after(Rung::Tested, d, t, attempts);
        self.phase_done("tested", t, w0);
    }

    /// The tested rung's decision, and the most tries one of its custom
    /// tests needed to pass (`[tested] retries`).
    async fn tested_decision(&mut self) -> (Decision, u32) {
        if let Some(why) = &self.app_unusable {
            return ((Status::Skipped, Some(format!("not run: {why}"))), 1);
        }
        if let Some(h) = self.hook(Rung::Tested).await {
            return (h, 1);
        }
        let mut tests = self.settings.custom.clone();
        if let Some(d) = self.settings.repo_local_decision.as_ref().filter(|d| d.used) {
            tests.extend(d.custom.iter().cloned());
        }
        if tests.is_empty() {
            // Nothing was checked, so nothing is proven: unverified (not a
            // skipped check: there is none). The verdict holds it against
            // the recipe only when its bar is 6 or more.
            return (
                (
                    Status::Unverified,
                    Some(format!(
                        "the recipe has no checks of its own: add executables to tests/recipes/{}/custom/ (tests/recipes/README.md)",
                        self.plan.recipe.name
                    )),
                ),
                1,
            );
        }
        let (mut failed, mut skipped, mut retried) = (Vec::new(), Vec::new(), Vec::new());
        let mut most = 1;
        for test in tests {
            let name = test
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let env = self.env.clone();
            let mut attempt = 1;
            let r = loop {
                let r = self
                    .wait(script::run(&test, Rung::Tested, &env, self.settings.timeouts.scripts))
                    .await;
                self.progress.note(&format!(
                    "custom test {name}: {:?} in {:.1} s{}",
                    r.outcome,
                    r.took.as_secs_f64(),
                    if attempt > 1 {
                        format!(" (try {attempt})")
                    } else {
                        String::new()
                    }
                ));
                let failed = matches!(r.outcome, ScriptOutcome::Failed(_) | ScriptOutcome::NotStarted(_));
                if failed && attempt <= self.settings.test_retries {
                    attempt += 1;
                    continue;
                }
                break r;
            };
            match r.outcome {
                ScriptOutcome::Passed => {
                    if attempt > 1 {
                        retried.push(format!("{name} (try {attempt})"));
                        most = most.max(attempt);
                    }
                }
                ScriptOutcome::Skipped => skipped.push(name),
                ScriptOutcome::Failed(w) | ScriptOutcome::NotStarted(w) => {
                    let tries = if attempt > 1 {
                        format!(" on each of {attempt} tries")
                    } else {
                        String::new()
                    };
                    failed.push(format!("{name} {w}{tries}: {} (log {})", r.stderr_tail, r.log))
                }
            }
        }
        let d = if !failed.is_empty() {
            (Status::Fail, Some(failed.join("; ")))
        } else if !skipped.is_empty() {
            (
                Status::Skipped,
                Some(format!("skipped by the test itself (exit 77): {}", skipped.join(", "))),
            )
        } else if !retried.is_empty() {
            (
                Status::Pass,
                Some(format!(
                    "passed only on a retry ([tested] retries): {}",
                    retried.join(", ")
                )),
            )
        } else {
            pass()
        };
        let attempts = if d.0 == Status::Pass { most } else { 1 };
        (d, attempts)
    }
}
