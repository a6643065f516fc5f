//! Rung 5, **lint**: abra's rules R001-R015 ([`crate::recipe::lint`]) on
//! the checkout, the table kept as `lint.txt`.

use std::time::Instant;

use crate::recipe::lint::{Outcome, Severity};
use crate::results::level::{Rung, Status};
use crate::results::LintSummary;

use super::{pass, Run};

impl Run<'_> {
    pub(super) async fn lint(&mut self) {
        self.progress.phase("lint");
        let t = Instant::now();
        let d = match self.hook(Rung::Lint).await {
            Some(h) => h,
            // The tested version as the plan read it: nothing is read again.
            None => match crate::recipe::lint::lint_version(&self.plan.recipe.version) {
                Err(e) => (Status::Fail, Some(format!("the recipe cannot be linted: {e}"))),
                Ok(report) => {
                    self.write_artifact("lint", "lint.txt", &report.table());
                    let line = |f: &crate::recipe::lint::Finding| {
                        format!(
                            "{} {}{}",
                            f.rule.reference,
                            f.rule.description,
                            f.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
                        )
                    };
                    let mut s = LintSummary::default();
                    for f in &report.findings {
                        match (&f.outcome, f.rule.severity) {
                            (Outcome::Failed, Severity::Error) => s.errors.push(line(f)),
                            (Outcome::Failed, Severity::Warn) => s.warnings.push(line(f)),
                            (Outcome::Skipped(why), _) => s.skipped.push(format!("{}: {why}", f.rule.reference)),
                            (Outcome::Satisfied, _) => {}
                        }
                    }
                    for w in &s.warnings {
                        self.progress.note(&format!("lint warning {w}"));
                    }
                    let d = if s.errors.is_empty() {
                        pass()
                    } else {
                        (
                            Status::Fail,
                            Some(format!("lint errors: {} (lint.txt)", s.errors.join("; "))),
                        )
                    };
                    self.results.lint = Some(s);
                    self.lint_report = Some(report);
                    d
                }
            },
        };
        self.decide(Rung::Lint, d, t);
        let w0 = self.waiting;
        self.phase_done("lint", t, w0);
    }
}
