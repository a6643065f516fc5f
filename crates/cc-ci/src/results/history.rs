//! A recipe's results history, for rung 8 ("maintained": level 7 or more
//! on each of the last runs over a sustained period, `../shared/DESIGN.md`).
//!
//! cc-ci's reading of "the last runs over a sustained period": every run of
//! the recipe that finished in the last [`WINDOW_DAYS`] days (this one
//! included), at least [`MIN_RUNS`] of them, the oldest at least
//! [`MIN_SPAN_DAYS`] days before this one, and each at level 7 or more.
//! Fewer runs or a shorter span is `unverified` (not enough history yet),
//! one run below 7 in the window is a `fail` naming it.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::RunResults;

/// How far back runs count, days.
pub const WINDOW_DAYS: i64 = 30;
/// Runs needed in the window.
pub const MIN_RUNS: usize = 3;
/// Days the window's runs must span.
pub const MIN_SPAN_DAYS: i64 = 7;
/// The level every run in the window needs.
pub const MIN_LEVEL: u8 = 7;

/// One earlier run: when it finished and what it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    /// Its results folder name (the run id).
    pub run_id: String,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Its level.
    pub level: u8,
}

/// The recipe's earlier runs under `recipe_results` (`<results>/<recipe>/`),
/// read from each `<run id>/results.json`; unreadable or foreign files are
/// left out (they are not this schema's runs).
pub fn past_runs(recipe_results: &Path) -> Vec<PastRun> {
    let Ok(entries) = std::fs::read_dir(recipe_results) else {
        return Vec::new();
    };
    let mut out: Vec<PastRun> = entries
        .flatten()
        .filter_map(|e| {
            let r = RunResults::read(&e.path().join("results.json")).ok()?;
            let finished = DateTime::parse_from_rfc3339(&r.finished_at).ok()?.with_timezone(&Utc);
            Some(PastRun {
                run_id: e.file_name().to_string_lossy().into_owned(),
                finished,
                level: r.level,
            })
        })
        .collect();
    out.sort_by_key(|r| r.finished);
    out
}

/// The verdict on rung 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintained {
    /// Level 7+ on every run of the window, enough runs over enough days.
    Yes(String),
    /// A run in the window is below level 7.
    No(String),
    /// Not enough history to tell.
    NotYet(String),
}

/// Judges rung 8 for a run that finished `now` at `level`, with `past` (runs
/// of the same recipe before it; this run is not among them).
pub fn judge(now: DateTime<Utc>, level: u8, past: &[PastRun]) -> Maintained {
    let start = now - Duration::days(WINDOW_DAYS);
    let window: Vec<&PastRun> = past
        .iter()
        .filter(|r| r.finished >= start && r.finished <= now)
        .collect();
    if level < MIN_LEVEL {
        return Maintained::No(format!("this run reached level {level}, below {MIN_LEVEL}"));
    }
    if let Some(bad) = window.iter().find(|r| r.level < MIN_LEVEL) {
        return Maintained::No(format!(
            "run {} on {} reached level {} (every run of the last {WINDOW_DAYS} days needs {MIN_LEVEL}+)",
            bad.run_id,
            bad.finished.format("%Y-%m-%d"),
            bad.level
        ));
    }
    let runs = window.len() + 1;
    let span = window.first().map_or(Duration::zero(), |r| now - r.finished);
    if runs < MIN_RUNS || span < Duration::days(MIN_SPAN_DAYS) {
        return Maintained::NotYet(format!(
            "{runs} run(s) at level {MIN_LEVEL}+ over {} day(s) in the last {WINDOW_DAYS}; needs {MIN_RUNS} runs over {MIN_SPAN_DAYS} days",
            span.num_days()
        ));
    }
    Maintained::Yes(format!(
        "{runs} runs at level {MIN_LEVEL}+ over {} days",
        span.num_days()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(days_ago: i64, level: u8, now: DateTime<Utc>) -> PastRun {
        PastRun {
            run_id: format!("r{days_ago}"),
            finished: now - Duration::days(days_ago),
            level,
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
    fn past_runs_are_read_from_results_files() {
        let d = tempfile::tempdir().unwrap();
        for (id, when, level) in [
            ("aaaaaa", "2026-11-01T10:00:00Z", 7u8),
            ("bbbbbb", "2026-11-08T10:00:00Z", 4),
        ] {
            let mut r = RunResults::empty();
            r.recipe = "x".into();
            r.finished_at = when.into();
            r.level = level;
            std::fs::create_dir_all(d.path().join(id)).unwrap();
            r.write(&d.path().join(id).join("results.json")).unwrap();
        }
        std::fs::create_dir_all(d.path().join("junk")).unwrap();
        std::fs::write(d.path().join("junk/results.json"), "{").unwrap();
        let p = past_runs(d.path());
        assert_eq!(
            p.iter().map(|r| (r.run_id.as_str(), r.level)).collect::<Vec<_>>(),
            [("aaaaaa", 7), ("bbbbbb", 4)]
        );
    }
}
