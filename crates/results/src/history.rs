//! A recipe's results history: rung 8 ("maintained": level 7 or more on
//! each of the last runs over a sustained period) and the bar a run is held
//! to ([`release_bar`], see [`super::verdict`]).
//!
//! Which runs count: only runs of a release or of the default branch
//! ([`RefKind::counts`]), never `--quick` runs (they neither count nor
//! break). A run writes [`STARTED_FILE`] into its results folder before it
//! deploys anything and `results.json` when it finishes; a folder with the
//! first and not the second is a run that never finished (killed by the
//! OOM killer, SIGKILL, a host crash). Unless the run is still alive (its
//! lease is held: the caller says), such a start counts as a break.
//!
//! cc-ci's reading of "the last runs over a sustained period": every
//! counted run of the recipe that finished (or started, if it never
//! finished) in the last [`WINDOW_DAYS`] days, this one included, at least
//! [`MIN_RUNS`] of them, the oldest at least [`MIN_SPAN_DAYS`] days before
//! this one, each at level 7 or more. Fewer runs or a shorter span is
//! `unverified` (not enough history yet); one run below 7 or one that never
//! finished in the window is a `fail` naming it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::verdict::{Bar, BarSource, State};
use super::{RefKind, RunResults};

/// How far back runs count, days.
pub const WINDOW_DAYS: i64 = 30;
/// Runs needed in the window.
pub const MIN_RUNS: usize = 3;
/// Days the window's runs must span.
pub const MIN_SPAN_DAYS: i64 = 7;
/// The level every run in the window needs.
pub const MIN_LEVEL: u8 = 7;

pub use super::layout::STARTED_FILE;
/// The schema of [`STARTED_FILE`].
pub const STARTED_SCHEMA: &str = "cc-ci/started/v1";

/// What a run records before it deploys anything ([`STARTED_FILE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Always [`STARTED_SCHEMA`].
    pub schema: String,
    /// The recipe.
    pub recipe: String,
    /// The run id.
    pub run_id: String,
    /// The app's stack (its lease is named after it).
    pub stack: String,
    /// The tested commit (40 hex).
    pub tested_ref: String,
    /// What kind of ref it is.
    pub ref_kind: RefKind,
    /// A `--quick` run.
    #[serde(default)]
    pub quick: bool,
    /// When, RFC 3339 UTC.
    pub started_at: String,
}

impl Started {
    /// Writes the record into `results_dir` (temporary file and rename).
    ///
    /// # Errors
    /// The I/O error, with the path in its message.
    pub fn write(&self, results_dir: &Path) -> std::io::Result<PathBuf> {
        let path = results_dir.join(STARTED_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(results_dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", results_dir.display())))?;
        std::io::Write::write_all(&mut tmp, &json)?;
        tmp.persist(&path)
            .map_err(|e| std::io::Error::new(e.error.kind(), format!("{}: {}", path.display(), e.error)))?;
        Ok(path)
    }

    /// Reads a record, None when absent or not of this schema.
    pub fn read(results_dir: &Path) -> Option<Started> {
        let text = std::fs::read_to_string(results_dir.join(STARTED_FILE)).ok()?;
        serde_json::from_str::<Started>(&text)
            .ok()
            .filter(|s| s.schema == STARTED_SCHEMA)
    }
}

/// One earlier run, as the history sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    /// Its results folder name (the run id).
    pub run_id: String,
    /// When it finished (or started, when it never finished).
    pub when: DateTime<Utc>,
    /// Its level; None when it started and never finished.
    pub level: Option<u8>,
    /// What it tested.
    pub ref_kind: Option<RefKind>,
    /// A `--quick` run.
    pub quick: bool,
    /// Its verdict's state, when it finished with one.
    pub verdict: Option<State>,
}

impl PastRun {
    /// Whether it counts for rung 8 and the bar: a release or default-branch
    /// run that was not `--quick`.
    pub fn counts(&self) -> bool {
        !self.quick && self.ref_kind.as_ref().is_some_and(RefKind::counts)
    }
}

/// Every earlier run of a recipe under `recipe_results`
/// (`<results>/<recipe>/<run id>/`), oldest first: finished runs from their
/// `results.json`, unfinished ones from their [`STARTED_FILE`] unless
/// `alive(stack)` says the run is still going. Unreadable or foreign files
/// are left out (they are not this schema's runs).
pub fn past_runs(recipe_results: &Path, alive: &dyn Fn(&str) -> bool) -> Vec<PastRun> {
    let Ok(entries) = std::fs::read_dir(recipe_results) else {
        return Vec::new();
    };
    let mut out: Vec<PastRun> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let run_id = e.file_name().to_string_lossy().into_owned();
            if let Ok(r) = RunResults::read(&dir.join(super::layout::RESULTS_FILE)) {
                let when = DateTime::parse_from_rfc3339(&r.finished_at).ok()?.with_timezone(&Utc);
                return Some(PastRun {
                    run_id,
                    when,
                    level: Some(r.level),
                    quick: r.quick || r.kept_warm || r.warm.is_some(),
                    ref_kind: r.ref_kind.clone(),
                    verdict: r.verdict.as_ref().map(|v| v.state),
                });
            }
            let s = Started::read(&dir)?;
            if alive(&s.stack) {
                return None;
            }
            let when = DateTime::parse_from_rfc3339(&s.started_at).ok()?.with_timezone(&Utc);
            Some(PastRun {
                run_id,
                when,
                level: None,
                quick: s.quick,
                ref_kind: Some(s.ref_kind),
                verdict: None,
            })
        })
        .collect();
    out.sort_by_key(|r| r.when);
    out
}

/// The verdict on rung 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintained {
    /// Level 7+ on every counted run of the window, enough runs over enough days.
    Yes(String),
    /// A counted run in the window is below level 7 or never finished.
    No(String),
    /// Not enough history to tell.
    NotYet(String),
}

/// Judges rung 8 for a run that finished `now` at `level`, with `past` (runs
/// of the same recipe before it; this run is not among them; those that do
/// not [count](PastRun::counts) are left out here).
pub fn judge(now: DateTime<Utc>, level: u8, past: &[PastRun]) -> Maintained {
    let start = now - Duration::days(WINDOW_DAYS);
    let window: Vec<&PastRun> = past
        .iter()
        .filter(|r| r.counts() && r.when >= start && r.when <= now)
        .collect();
    if level < MIN_LEVEL {
        return Maintained::No(format!("this run reached level {level}, below {MIN_LEVEL}"));
    }
    if let Some(bad) = window.iter().find(|r| r.level.is_none_or(|l| l < MIN_LEVEL)) {
        let day = bad.when.format("%Y-%m-%d");
        return Maintained::No(match bad.level {
            None => format!(
                "run {} started on {day} and never finished (killed?): every counted run of the last {WINDOW_DAYS} days must finish at {MIN_LEVEL}+",
                bad.run_id
            ),
            Some(l) => format!(
                "run {} on {day} reached level {l} (every run of the last {WINDOW_DAYS} days needs {MIN_LEVEL}+)",
                bad.run_id
            ),
        });
    }
    let runs = window.len() + 1;
    let span = window.first().map_or(Duration::zero(), |r| now - r.when);
    if runs < MIN_RUNS || span < Duration::days(MIN_SPAN_DAYS) {
        return Maintained::NotYet(format!(
            "{runs} counted run(s) (releases and the default branch, not --quick) at level {MIN_LEVEL}+ over {} day(s) in the last {WINDOW_DAYS}; needs {MIN_RUNS} runs over {MIN_SPAN_DAYS} days",
            span.num_days()
        ));
    }
    Maintained::Yes(format!(
        "{runs} runs at level {MIN_LEVEL}+ over {} days",
        span.num_days()
    ))
}

/// The bar of a recipe whose newest release is `newest_tag`: the level of
/// the last finished run of that release among `past` (not `--quick`, not
/// ended by an infrastructure error, which says nothing of the recipe), or
/// None when there is none.
pub fn release_bar(past: &[PastRun], newest_tag: &str) -> Option<Bar> {
    past.iter()
        .filter(|r| {
            !r.quick
                && r.verdict != Some(State::Error)
                && matches!(&r.ref_kind, Some(RefKind::Release { tag }) if tag == newest_tag)
        })
        .filter_map(|r| r.level.map(|l| (r, l)))
        .max_by_key(|(r, _)| r.when)
        .map(|(r, level)| Bar {
            level,
            source: BarSource::Release {
                tag: newest_tag.to_string(),
                run_id: r.run_id.clone(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Option<RefKind> {
        Some(RefKind::Release { tag: "1.1.0".into() })
    }

    fn run(days_ago: i64, level: u8, now: DateTime<Utc>) -> PastRun {
        PastRun {
            run_id: format!("r{days_ago}"),
            when: now - Duration::days(days_ago),
            level: Some(level),
            ref_kind: release(),
            quick: false,
            verdict: Some(State::Success),
        }
    }

    #[test]
    fn a_sustained_run_of_sevens_is_maintained() {
        let now = Utc::now();
        assert!(matches!(judge(now, 7, &[]), Maintained::NotYet(_)));
        assert!(
            matches!(judge(now, 7, &[run(1, 7, now), run(2, 8, now)]), Maintained::NotYet(_)),
            "span too short"
        );
        assert!(matches!(
            judge(now, 7, &[run(8, 7, now), run(3, 7, now)]),
            Maintained::Yes(_)
        ));
        assert!(matches!(
            judge(now, 6, &[run(8, 7, now), run(3, 7, now)]),
            Maintained::No(_)
        ));
        let m = judge(now, 7, &[run(8, 7, now), run(3, 5, now)]);
        assert!(
            matches!(&m, Maintained::No(w) if w.contains("r3") && w.contains("level 5")),
            "{m:?}"
        );
        assert!(
            matches!(
                judge(now, 7, &[run(40, 2, now), run(8, 7, now), run(3, 7, now)]),
                Maintained::Yes(_)
            ),
            "outside the window it does not count"
        );
    }

    #[test]
    fn a_run_that_never_finished_breaks_maintained() {
        let now = Utc::now();
        let mut killed = run(4, 0, now);
        killed.level = None;
        let m = judge(now, 7, &[run(9, 7, now), killed, run(2, 7, now)]);
        assert!(
            matches!(&m, Maintained::No(w) if w.contains("r4") && w.contains("never finished")),
            "{m:?}"
        );
    }

    #[test]
    fn only_releases_and_the_default_branch_count_and_quick_runs_neither_count_nor_break() {
        let now = Utc::now();
        let mut pr = run(4, 2, now);
        pr.ref_kind = Some(RefKind::Change);
        let mut quick = run(5, 6, now);
        quick.quick = true;
        let mut quick_killed = run(6, 0, now);
        quick_killed.quick = true;
        quick_killed.level = None;
        let mut unknown = run(6, 1, now);
        unknown.ref_kind = None;
        let mut main = run(3, 7, now);
        main.ref_kind = Some(RefKind::DefaultBranch { branch: "main".into() });
        let past = [run(9, 7, now), pr, quick, quick_killed, unknown, main];
        assert!(
            matches!(judge(now, 7, &past), Maintained::Yes(_)),
            "{:?}",
            judge(now, 7, &past)
        );
        // Without the counted ones, the others do not make up the numbers.
        let past = [past[1].clone(), past[2].clone(), past[4].clone()];
        assert!(matches!(judge(now, 7, &past), Maintained::NotYet(_)));
    }

    fn write_results(dir: &Path, id: &str, when: &str, level: u8, kind: Option<RefKind>, quick: bool) {
        let mut r = RunResults::empty();
        r.recipe = "x".into();
        r.finished_at = when.into();
        r.level = level;
        r.ref_kind = kind;
        r.quick = quick;
        std::fs::create_dir_all(dir.join(id)).unwrap();
        r.write(&dir.join(id).join("results.json")).unwrap();
    }

    fn started(dir: &Path, id: &str, stack: &str) {
        std::fs::create_dir_all(dir.join(id)).unwrap();
        Started {
            schema: STARTED_SCHEMA.into(),
            recipe: "x".into(),
            run_id: id.into(),
            stack: stack.into(),
            tested_ref: "0".repeat(40),
            ref_kind: RefKind::Release { tag: "1.1.0".into() },
            quick: false,
            started_at: "2026-11-05T10:00:00Z".into(),
        }
        .write(&dir.join(id))
        .unwrap();
    }

    #[test]
    fn past_runs_are_read_from_results_and_started_files() {
        let d = tempfile::tempdir().unwrap();
        write_results(d.path(), "aaaaaa", "2026-11-01T10:00:00Z", 7, release(), false);
        write_results(d.path(), "bbbbbb", "2026-11-08T10:00:00Z", 4, None, true);
        std::fs::create_dir_all(d.path().join("junk")).unwrap();
        std::fs::write(d.path().join("junk/results.json"), "{").unwrap();
        // A run killed after it started, and one still going.
        started(d.path(), "cccccc", "x-cccccc_ci_test");
        started(d.path(), "dddddd", "x-dddddd_ci_test");
        let alive = |stack: &str| stack == "x-dddddd_ci_test";
        let p = past_runs(d.path(), &alive);
        assert_eq!(
            p.iter().map(|r| (r.run_id.as_str(), r.level)).collect::<Vec<_>>(),
            [("aaaaaa", Some(7)), ("cccccc", None), ("bbbbbb", Some(4))]
        );
        assert!(p[0].counts() && p[1].counts() && !p[2].counts());
    }

    #[test]
    fn the_bar_is_the_last_finished_run_of_the_newest_release() {
        let now = Utc::now();
        let mut older_release = run(2, 3, now);
        older_release.ref_kind = Some(RefKind::Release { tag: "1.0.0".into() });
        let mut errored = run(1, 0, now);
        errored.verdict = Some(State::Error);
        let mut quick = run(1, 6, now);
        quick.quick = true;
        let mut pr = run(1, 1, now);
        pr.ref_kind = Some(RefKind::Change);
        let past = [run(9, 5, now), run(5, 7, now), older_release, errored, quick, pr];
        let bar = release_bar(&past, "1.1.0").unwrap();
        assert_eq!(bar.level, 7);
        assert_eq!(
            bar.source,
            BarSource::Release {
                tag: "1.1.0".into(),
                run_id: "r5".into()
            }
        );
        assert_eq!(release_bar(&past, "2.0.0"), None);
    }
}
