//! Rung 7, **exemplary**: judged from what the run found, as a pure
//! function so that each condition has a test that makes it fail.
//!
//! A run is exemplary when rungs 1-6 are green and
//! 1. every service has a healthcheck enabled (lint rule R002, which
//!    counts a disabled healthcheck as none);
//! 2. no image is unpinned: every image has a tag (R003) that is not an
//!    unstable one such as `latest` (R004);
//! 3. the tested version has release notes (`release/<version>`);
//! 4. the teardown removed everything of the app (proven, not assumed: a
//!    warm app kept for `--quick` has no proven teardown, so rung 7 is then
//!    unverified);
//! 5. every rung passed on its first try (a custom test that passed only
//!    when `[tested] retries` ran it again does not);
//! 6. every named volume's data is protected: covered by a backupbot label
//!    or declared ephemeral in the recipe's settings, with a reason.

use crate::recipe::lint::{LintReport, Outcome};
use crate::results::level::{Rung, Status};
use crate::results::{Coverage, RungResult, VolumeCoverage};

/// What rung 7 is judged on.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The lint report (None when lint did not run).
    pub lint: Option<&'a LintReport>,
    /// The tested version, if the recipe declares one.
    pub tested_version: Option<&'a str>,
    /// Whether `release/<tested version>` exists in the checkout.
    pub release_notes: bool,
    /// What the teardown proved (None: it did not run).
    pub clean_teardown: Option<bool>,
    /// The app was kept warm instead of torn down (`--quick`).
    pub kept_warm: bool,
    /// Rungs 1-6 as decided.
    pub rungs: &'a [RungResult],
    /// The app's named volumes and what protects each.
    pub volumes: &'a [VolumeCoverage],
}

/// The decision on rung 7: pass, fail with every missing condition named
/// (`; ` between them), or unverified (a kept-warm app's teardown).
pub fn judge(e: &Evidence) -> (Status, Option<String>) {
    let mut missing: Vec<String> = Vec::new();
    match e.lint {
        None => missing.push("lint did not run, so healthchecks and image tags are unknown".into()),
        Some(report) => {
            for reference in ["R002", "R003", "R004"] {
                match report.finding(reference) {
                    Some(f) if f.outcome == Outcome::Satisfied => {}
                    Some(f) => missing.push(format!(
                        "{reference} {}{}",
                        f.rule.description,
                        f.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
                    )),
                    None => missing.push(format!("{reference} was not checked")),
                }
            }
        }
    }
    match (e.tested_version, e.release_notes) {
        (Some(_), true) => {}
        (Some(v), false) => missing.push(format!("no release notes for {v} (release/{v})")),
        (None, _) => missing.push("no version, so no release notes".into()),
    }
    match e.clean_teardown {
        Some(true) => {}
        Some(false) => missing.push("the teardown left objects behind".into()),
        None if e.kept_warm => {}
        None => missing.push("no teardown ran".into()),
    }
    let body = |r: &&RungResult| r.rung < Rung::Exemplary;
    let red: Vec<&str> = e
        .rungs
        .iter()
        .filter(body)
        .filter(|x| !x.status.climbs())
        .map(|x| x.rung.word())
        .collect();
    if !red.is_empty() {
        missing.push(format!("not green: {}", red.join(", ")));
    }
    for r in e.rungs.iter().filter(body).filter(|r| r.attempts > 1) {
        missing.push(format!(
            "{} passed only on try {} (every rung must pass on its first)",
            r.rung.word(),
            r.attempts
        ));
    }
    let unprotected: Vec<&str> = e
        .volumes
        .iter()
        .filter(|v| v.covered == Coverage::None)
        .map(|v| v.volume.as_str())
        .collect();
    if !unprotected.is_empty() {
        missing.push(format!(
            "named volume(s) {} hold data no backup covers: add backupbot labels, or declare them in [volumes.ephemeral] of the recipe's cc-ci settings with a reason",
            unprotected.join(", ")
        ));
    }
    if missing.is_empty() && e.kept_warm {
        (
            Status::Unverified,
            Some(
                "the app was kept warm for --quick: its teardown is not proven (run without --quick for level 7)"
                    .into(),
            ),
        )
    } else if missing.is_empty() {
        (Status::Pass, None)
    } else {
        (Status::Fail, Some(missing.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::lint::lint;

    const COMPOSE: &str = "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1.27.2\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n    deploy:\n      labels:\n        - traefik.enable=true\n        - coop-cloud.${STACK_NAME}.version=1.0.0+1.27.2\n";

    fn report(compose: &str) -> LintReport {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.yml"), compose).unwrap();
        std::fs::write(d.path().join(".env.sample"), "TYPE=x\nDOMAIN=x.example.com\n").unwrap();
        lint(d.path()).unwrap()
    }

    fn rungs(attempts_of_tested: u32) -> Vec<RungResult> {
        [
            Rung::Install,
            Rung::Serve,
            Rung::Upgrade,
            Rung::Restore,
            Rung::Lint,
            Rung::Tested,
        ]
        .into_iter()
        .map(|rung| RungResult {
            rung,
            status: Status::Pass,
            reason: None,
            duration_s: 1.0,
            log: None,
            attempts: if rung == Rung::Tested { attempts_of_tested } else { 1 },
        })
        .collect()
    }

    struct Case {
        compose: String,
        release_notes: bool,
        clean_teardown: Option<bool>,
        attempts: u32,
        volumes: Vec<VolumeCoverage>,
    }

    fn good() -> Case {
        Case {
            compose: COMPOSE.into(),
            release_notes: true,
            clean_teardown: Some(true),
            attempts: 1,
            volumes: vec![
                VolumeCoverage {
                    volume: "data".into(),
                    covered: Coverage::Backup,
                },
                VolumeCoverage {
                    volume: "cache".into(),
                    covered: Coverage::Ephemeral {
                        reason: "rebuilt on start".into(),
                    },
                },
            ],
        }
    }

    fn judge_case(c: &Case) -> (Status, Option<String>) {
        let r = report(&c.compose);
        let rungs = rungs(c.attempts);
        judge(&Evidence {
            lint: Some(&r),
            tested_version: Some("1.0.0+1.27.2"),
            release_notes: c.release_notes,
            clean_teardown: c.clean_teardown,
            kept_warm: false,
            rungs: &rungs,
            volumes: &c.volumes,
        })
    }

    fn fails_with(c: Case, words: &str) {
        let (status, reason) = judge_case(&c);
        assert_eq!(status, Status::Fail, "{reason:?}");
        let reason = reason.unwrap();
        assert!(reason.contains(words), "{words:?} not in {reason}");
    }

    #[test]
    fn the_good_case_is_exemplary() {
        assert_eq!(judge_case(&good()), (Status::Pass, None));
    }

    #[test]
    fn a_service_without_a_healthcheck_is_not_exemplary() {
        let compose = COMPOSE.replace("    healthcheck:\n      test: [\"CMD\", \"true\"]\n", "");
        fails_with(Case { compose, ..good() }, "service app has no healthcheck");
        let compose = COMPOSE.replace("test: [\"CMD\", \"true\"]", "disable: true");
        fails_with(Case { compose, ..good() }, "healthcheck disabled");
    }

    #[test]
    fn an_unpinned_image_is_not_exemplary() {
        fails_with(
            Case {
                compose: COMPOSE.replace("nginx:1.27.2", "nginx"),
                ..good()
            },
            "R003",
        );
        fails_with(
            Case {
                compose: COMPOSE.replace("nginx:1.27.2", "nginx:latest"),
                ..good()
            },
            "R004",
        );
    }

    #[test]
    fn a_missing_release_note_is_not_exemplary() {
        fails_with(
            Case {
                release_notes: false,
                ..good()
            },
            "no release notes for 1.0.0+1.27.2",
        );
    }

    #[test]
    fn an_unclean_or_missing_teardown_is_not_exemplary() {
        fails_with(
            Case {
                clean_teardown: Some(false),
                ..good()
            },
            "left objects behind",
        );
        fails_with(
            Case {
                clean_teardown: None,
                ..good()
            },
            "no teardown ran",
        );
    }

    #[test]
    fn a_rung_that_passed_only_on_retry_is_not_exemplary() {
        fails_with(Case { attempts: 2, ..good() }, "tested passed only on try 2");
    }

    #[test]
    fn a_volume_no_backup_covers_is_not_exemplary() {
        let mut c = good();
        c.volumes.push(VolumeCoverage {
            volume: "uploads".into(),
            covered: Coverage::None,
        });
        fails_with(c, "named volume(s) uploads hold data no backup covers");
    }

    #[test]
    fn a_kept_warm_app_is_unverified_not_exemplary() {
        let r = report(COMPOSE);
        let rungs = rungs(1);
        let (status, reason) = judge(&Evidence {
            lint: Some(&r),
            tested_version: Some("1.0.0+1.27.2"),
            release_notes: true,
            clean_teardown: None,
            kept_warm: true,
            rungs: &rungs,
            volumes: &[],
        });
        assert_eq!(status, Status::Unverified);
        assert!(reason.unwrap().contains("kept warm"));
    }
}
