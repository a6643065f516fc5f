//! The quality ladder (`docs/design.md`, "Levels"): rungs, their
//! outcomes, and the level a run reaches.
//!
//! The level is the last rung of an unbroken climb from rung 1. A
//! not-applicable rung (with its declared reason) is climbed past; fail,
//! error, unverified and skipped stop the climb, and so does a rung that was
//! not run at all: a required check that did not run is never green.

use serde::{Deserialize, Serialize};

/// A rung of the ladder, in climbing order; its level is [`Rung::level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rung {
    /// 1: every service converges (running; healthy where a healthcheck exists).
    Install,
    /// 2: HTTPS on the app's domain through Traefik with the wildcard cert answers as expected.
    Serve,
    /// 3: previous release to tested ref converges, serves, new tasks run, witness data survives.
    Upgrade,
    /// 4: backup, then restore, brings the witness back byte for byte.
    Restore,
    /// 5: `abra recipe lint` reports no error.
    Lint,
    /// 6: the recipe's own checks exist and all pass.
    Tested,
    /// 7: healthchecks everywhere, pinned images, release notes, clean teardown, first-try green.
    Exemplary,
    /// 8: level 7 or more on each of the last runs over a sustained period.
    Maintained,
}

impl Rung {
    /// Every rung, in order.
    pub const ALL: [Rung; 8] = [
        Rung::Install,
        Rung::Serve,
        Rung::Upgrade,
        Rung::Restore,
        Rung::Lint,
        Rung::Tested,
        Rung::Exemplary,
        Rung::Maintained,
    ];

    /// The level this rung stands for (1..=8).
    pub fn level(self) -> u8 {
        self as u8 + 1
    }

    /// The rung's name as results.json spells it: install, serve, upgrade,
    /// restore, lint, tested, exemplary, maintained.
    pub fn word(self) -> &'static str {
        match self {
            Rung::Install => "install",
            Rung::Serve => "serve",
            Rung::Upgrade => "upgrade",
            Rung::Restore => "restore",
            Rung::Lint => "lint",
            Rung::Tested => "tested",
            Rung::Exemplary => "exemplary",
            Rung::Maintained => "maintained",
        }
    }

    /// The level's name: installs, serves, upgrades, restores, lint-clean,
    /// tested, exemplary, maintained.
    pub fn level_name(self) -> &'static str {
        match self {
            Rung::Install => "installs",
            Rung::Serve => "serves",
            Rung::Upgrade => "upgrades",
            Rung::Restore => "restores",
            Rung::Lint => "lint-clean",
            Rung::Tested => "tested",
            Rung::Exemplary => "exemplary",
            Rung::Maintained => "maintained",
        }
    }
}

/// How a rung ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It holds.
    Pass,
    /// The recipe does not meet it.
    Fail,
    /// Infrastructure failed (Docker down, disk full, abra missing): says nothing about the recipe.
    Error,
    /// It could not be shown either way (e.g. an upgrade base equal to the head).
    Unverified,
    /// A required check did not run.
    Skipped,
    /// It does not apply to this recipe, for a declared reason (e.g. no backupbot labels).
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    /// The status as results.json spells it: pass, fail, error, unverified,
    /// skipped, n/a.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Unverified => "unverified",
            Status::Skipped => "skipped",
            Status::NotApplicable => "n/a",
        }
    }

    /// Whether the climb goes on past a rung with this status.
    pub fn climbs(self) -> bool {
        matches!(self, Status::Pass | Status::NotApplicable)
    }
}

/// The level reached by `outcomes` (rung and status, any order; a rung given
/// twice counts by its worst entry, so nothing can be overwritten into a pass).
/// 0 ("broken") when install did not pass.
pub fn level(outcomes: &[(Rung, Status)]) -> u8 {
    let mut reached = 0;
    for rung in Rung::ALL {
        let statuses: Vec<Status> = outcomes.iter().filter(|(r, _)| *r == rung).map(|(_, s)| *s).collect();
        if statuses.is_empty() || !statuses.iter().all(|s| s.climbs()) {
            break;
        }
        reached = rung.level();
    }
    reached
}

/// The name of level `n` (0 = broken).
pub fn level_name(n: u8) -> &'static str {
    match n {
        0 => "broken",
        n => Rung::ALL.get(usize::from(n) - 1).map_or("unknown", |r| r.level_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Rung::*;
    use Status::*;

    #[test]
    fn unbroken_climb() {
        assert_eq!(level(&[]), 0);
        assert_eq!(level(&[(Install, Fail)]), 0);
        assert_eq!(level(&[(Install, Pass)]), 1);
        assert_eq!(
            level(&[(Install, Pass), (Serve, Pass), (Upgrade, Pass), (Restore, Pass)]),
            4
        );
        assert_eq!(
            level(&[(Restore, Pass), (Upgrade, Pass), (Serve, Pass), (Install, Pass)]),
            4,
            "order free"
        );
    }

    #[test]
    fn not_applicable_is_climbed_past_and_the_rest_stop_the_climb() {
        assert_eq!(
            level(&[
                (Install, Pass),
                (Serve, Pass),
                (Upgrade, Pass),
                (Restore, NotApplicable),
                (Lint, Pass)
            ]),
            5
        );
        for stop in [Fail, Error, Unverified, Skipped] {
            let o = [(Install, Pass), (Serve, Pass), (Upgrade, stop), (Restore, Pass)];
            assert_eq!(level(&o), 2, "{stop:?} must stop the climb");
        }
        assert_eq!(
            level(&[(Install, Pass), (Upgrade, Pass)]),
            1,
            "a rung that did not run stops the climb"
        );
    }

    #[test]
    fn a_rung_given_twice_counts_by_its_worst() {
        assert_eq!(level(&[(Install, Pass), (Serve, Pass), (Serve, Fail)]), 1);
    }

    #[test]
    fn names_and_serialisation() {
        assert_eq!(level_name(0), "broken");
        assert_eq!(level_name(4), "restores");
        assert_eq!(level_name(8), "maintained");
        assert_eq!(serde_json::to_string(&NotApplicable).unwrap(), "\"n/a\"");
        assert_eq!(serde_json::to_string(&Restore).unwrap(), "\"restore\"");
    }

    #[test]
    fn words_are_the_serialised_names() {
        for r in Rung::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.word());
        }
        for s in [Pass, Fail, Error, Unverified, Skipped, NotApplicable] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.word());
        }
    }
}
