//! The verdict: what one run means for the tested commit, defined once.
//! The exit status of `ccci test`, the commit status the bridge posts and
//! the PR comment's headline all follow [`judge`]; nothing else decides
//! green.
//!
//! - **success** only when nothing was left unproven that the recipe owes:
//!   no rung of 1-6 failed, errored or was skipped (a skipped rung is a
//!   required check that did not run: a custom test or hook that exited
//!   77), and the level is at least the recipe's [`Bar`];
//! - **error** when the infrastructure failed (a rung of 1-6 errored, or
//!   the run was interrupted): it says nothing about the recipe, and wins;
//! - **failure** otherwise.
//!
//! Unverified and not-applicable rungs are not failures in themselves: an
//! unverified rung stops the climb, so it turns into a failure exactly when
//! it leaves the level below the bar. Rungs 7 and 8 are grades computed from
//! the others; they count only through the bar (a recipe whose newest
//! release was exemplary must stay exemplary).
//!
//! The bar ([`Bar`]) is the recipe's `min_level` setting; by default the
//! level of the last run of the recipe's newest release on this host (so a
//! pull request never lowers it; [`crate::history::release_bar`]);
//! with no such run, [`DEFAULT_BAR`]: it installs and serves.

use serde::{Deserialize, Serialize};

use super::level::{level_name, Rung, Status};
use super::RunResults;

/// The bar when neither the settings nor an earlier run of the newest
/// release set one: level 2, "it installs and serves".
pub const DEFAULT_BAR: u8 = 2;

/// The verdict's state; the names are Gitea's commit status states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Proven: see the module doc.
    Success,
    /// The recipe falls short: a rung failed, a required check was skipped,
    /// or the level is below the bar.
    Failure,
    /// The infrastructure failed or the run was interrupted.
    Error,
}

impl State {
    /// `success`, `failure` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
        }
    }
}

/// Where a bar comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum BarSource {
    /// The recipe's `min_level` setting (`tests/recipes/<recipe>/ccci.toml`).
    Setting,
    /// The last run of the recipe's newest release on this host.
    Release {
        /// The release's tag.
        tag: String,
        /// The run that reached it.
        run_id: String,
    },
    /// Neither: [`DEFAULT_BAR`].
    Default,
}

/// The level a run must reach to be green, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// 0-8.
    pub level: u8,
    /// Where it comes from.
    #[serde(flatten)]
    pub source: BarSource,
}

impl Bar {
    /// The default bar ([`DEFAULT_BAR`]).
    pub fn default_bar() -> Bar {
        Bar {
            level: DEFAULT_BAR,
            source: BarSource::Default,
        }
    }

    /// How the description names it: `level 7 of 1.1.0+1.22.1`,
    /// `min_level 5`, `level 2 (the default bar)`.
    pub fn describe(&self) -> String {
        match &self.source {
            BarSource::Setting => format!("min_level {}", self.level),
            BarSource::Release { tag, .. } => format!("level {} of {tag}", self.level),
            BarSource::Default => format!("level {} (the default bar)", self.level),
        }
    }
}

/// One run's verdict (results.json `verdict`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// success, failure or error.
    pub state: State,
    /// One line for a commit status: `level N (name)`, and what decided a
    /// failure or error (`below level 7 of 1.1.0+1.22.1`, `tested skipped`).
    pub description: String,
    /// The bar the run was held to.
    pub bar: Bar,
    /// Every reason the run is not green, in ladder order (empty on success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
}

/// The verdict on `r` (its rungs, level and interruption) held to `bar`;
/// see the module doc for the rule.
pub fn judge(r: &RunResults, bar: &Bar) -> Verdict {
    let mut errors = Vec::new();
    let mut failures = Vec::new();
    let mut short = Vec::new();
    if let Some(why) = &r.interrupted {
        errors.push(format!("the run was interrupted ({why})"));
        short.push(format!("interrupted: {why}"));
    }
    let mut rungs: Vec<_> = r.rungs.iter().filter(|x| x.rung <= Rung::Tested).collect();
    rungs.sort_by_key(|x| x.rung);
    for x in rungs {
        let name = x.rung.word();
        let reason = x.reason.as_deref().unwrap_or("no reason given");
        match x.status {
            Status::Error => {
                errors.push(format!("{name} errored (the CI host, not the recipe): {reason}"));
                short.push(format!("{name} errored"));
            }
            Status::Fail => {
                failures.push(format!("{name} failed: {reason}"));
                short.push(format!("{name} failed"));
            }
            // A rung left unrun after an interruption is the interruption's.
            Status::Skipped if r.interrupted.is_none() => {
                failures.push(format!(
                    "{name} was skipped, and a skipped check is never green: {reason}"
                ));
                short.push(format!("{name} skipped"));
            }
            _ => {}
        }
    }
    if r.level < bar.level {
        failures.push(format!(
            "level {} ({}) is below {}, the bar this recipe is held to",
            r.level,
            level_name(r.level),
            bar.describe()
        ));
        short.push(format!("below {}", bar.describe()));
    }
    let state = if !errors.is_empty() {
        State::Error
    } else if !failures.is_empty() {
        State::Failure
    } else {
        State::Success
    };
    let mut description = format!("level {} ({})", r.level, level_name(r.level));
    // Failures already explained by an error are left out of the short line.
    let shown: Vec<&String> = match state {
        State::Error => short
            .iter()
            .filter(|s| s.contains("errored") || s.starts_with("interrupted"))
            .collect(),
        _ => short.iter().collect(),
    };
    if !shown.is_empty() {
        description.push_str(", ");
        description.push_str(&shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
    }
    let mut why = errors;
    why.extend(failures);
    Verdict {
        state,
        description,
        bar: bar.clone(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RungResult;

    fn run(statuses: &[(Rung, Status)]) -> RunResults {
        let mut r = RunResults::empty();
        r.recipe = "x".into();
        r.rungs = statuses
            .iter()
            .map(|(rung, status)| RungResult {
                rung: *rung,
                status: *status,
                reason: Some(format!("{rung:?} was {status:?}")),
                duration_s: 1.0,
                log: None,
                attempts: 1,
            })
            .collect();
        r.finish();
        r
    }

    fn green_to(last: Rung) -> Vec<(Rung, Status)> {
        Rung::ALL
            .iter()
            .filter(|r| **r <= last)
            .map(|r| (*r, Status::Pass))
            .collect()
    }

    fn with(mut v: Vec<(Rung, Status)>, rung: Rung, s: Status) -> Vec<(Rung, Status)> {
        v.retain(|(r, _)| *r != rung);
        v.push((rung, s));
        v
    }

    fn release_bar(level: u8) -> Bar {
        Bar {
            level,
            source: BarSource::Release {
                tag: "1.1.0+1.22.1".into(),
                run_id: "abcdef".into(),
            },
        }
    }

    #[test]
    fn success_only_when_proven_up_to_the_bar() {
        let v = judge(&run(&green_to(Rung::Exemplary)), &Bar::default_bar());
        assert_eq!(v.state, State::Success);
        assert_eq!(v.description, "level 7 (exemplary)");
        assert!(v.why.is_empty());
        // Unverified and n/a are no failures by themselves...
        let s = with(green_to(Rung::Tested), Rung::Upgrade, Status::Unverified);
        assert_eq!(judge(&run(&s), &Bar::default_bar()).state, State::Success);
        let s = with(green_to(Rung::Tested), Rung::Restore, Status::NotApplicable);
        assert_eq!(judge(&run(&s), &Bar::default_bar()).state, State::Success);
        // ...but an unverified rung below the bar is.
        let s = with(green_to(Rung::Tested), Rung::Upgrade, Status::Unverified);
        let v = judge(&run(&s), &release_bar(6));
        assert_eq!(v.state, State::Failure);
        assert_eq!(v.description, "level 2 (serves), below level 6 of 1.1.0+1.22.1");
    }

    #[test]
    fn unverified_or_skipped_rungs_never_give_success_below_the_bar() {
        // The defect this pins: unverified and skipped rungs gave exit 0.
        for stop in [Status::Unverified, Status::Skipped] {
            let s = with(green_to(Rung::Tested), Rung::Serve, stop);
            let v = judge(&run(&s), &Bar::default_bar());
            assert_eq!(v.state, State::Failure, "{stop:?} at serve, bar 2: {v:?}");
        }
    }

    #[test]
    fn a_skipped_required_check_is_never_green() {
        let s = with(green_to(Rung::Tested), Rung::Tested, Status::Skipped);
        let v = judge(
            &run(&s),
            &Bar {
                level: 0,
                source: BarSource::Setting,
            },
        );
        assert_eq!(v.state, State::Failure, "{v:?}");
        assert_eq!(v.description, "level 5 (lint-clean), tested skipped");
    }

    #[test]
    fn a_failed_rung_fails_whatever_the_bar_and_an_error_wins() {
        let s = with(green_to(Rung::Tested), Rung::Lint, Status::Fail);
        let v = judge(&run(&s), &Bar::default_bar());
        assert_eq!(v.state, State::Failure);
        assert_eq!(v.description, "level 4 (restores), lint failed");
        let s = with(s, Rung::Serve, Status::Error);
        let v = judge(&run(&s), &Bar::default_bar());
        assert_eq!(v.state, State::Error);
        assert_eq!(v.description, "level 1 (installs), serve errored");
        assert_eq!(v.why.len(), 3, "{:?}", v.why);
    }

    #[test]
    fn rungs_seven_and_eight_count_only_through_the_bar() {
        let s = with(green_to(Rung::Tested), Rung::Exemplary, Status::Fail);
        assert_eq!(judge(&run(&s), &Bar::default_bar()).state, State::Success);
        let v = judge(&run(&s), &release_bar(7));
        assert_eq!(v.state, State::Failure);
        assert!(
            v.description.ends_with("below level 7 of 1.1.0+1.22.1"),
            "{}",
            v.description
        );
        let s = with(green_to(Rung::Exemplary), Rung::Maintained, Status::Unverified);
        assert_eq!(judge(&run(&s), &release_bar(7)).state, State::Success);
    }

    #[test]
    fn an_interrupted_run_is_an_error() {
        let mut r = run(&green_to(Rung::Serve));
        r.interrupted = Some("SIGTERM".into());
        let v = judge(&r, &Bar::default_bar());
        assert_eq!(v.state, State::Error);
        assert_eq!(v.description, "level 2 (serves), interrupted: SIGTERM");
    }

    #[test]
    fn the_bar_serialises_with_its_source() {
        let j = serde_json::to_value(release_bar(7)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"level": 7, "from": "release", "tag": "1.1.0+1.22.1", "run_id": "abcdef"})
        );
        let back: Bar = serde_json::from_value(j).unwrap();
        assert_eq!(back, release_bar(7));
    }
}
