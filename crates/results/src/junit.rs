//! JUnit XML of one run, for tools that read it (GitLab, Jenkins, IDEs):
//! one test suite named after the recipe, one test case per rung
//! (`1 install` ... `8 maintained`) with its duration. Written with
//! quick-junit (nextest's JUnit writer).
//!
//! Mapping: pass is a success; fail a `<failure>`; error an `<error>`;
//! unverified, skipped and n/a are `<skipped>` with the status and reason as
//! the message, so none of them counts as passed. The suite carries the
//! level and the verdict as properties.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::level::Status;
use super::RunResults;

/// The run as a JUnit XML document.
pub fn xml(r: &RunResults) -> String {
    let mut suite = TestSuite::new(r.recipe.as_str());
    let v = r.verdict();
    suite.add_properties([
        Property::new("level", r.level.to_string()),
        Property::new("level_name", r.level_name.as_str()),
        Property::new("verdict", v.state.as_str()),
        Property::new("verdict_description", v.description.as_str()),
        Property::new("tested_ref", r.tested_ref.as_str()),
        Property::new("tested_version", r.tested_version.as_deref().unwrap_or("")),
        Property::new("base_version", r.base_version.as_deref().unwrap_or("")),
    ]);
    let mut total = 0.0;
    for x in &r.rungs {
        let reason = x.reason.clone().unwrap_or_default();
        let mut status = match x.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
            Status::Unverified | Status::Skipped | Status::NotApplicable => TestCaseStatus::skipped(),
        };
        if x.status != Status::Pass {
            status.set_message(format!("{}: {reason}", x.status.word()));
            status.set_type(x.status.word());
        }
        let mut case = TestCase::new(format!("{} {}", x.rung.level(), x.rung.word()), status);
        case.set_classname(format!("cc-ci.{}", r.recipe));
        let secs = if x.duration_s.is_finite() && x.duration_s > 0.0 {
            x.duration_s
        } else {
            0.0
        };
        total += secs;
        case.set_time(Duration::from_secs_f64(secs));
        if let Some(log) = &x.log {
            case.set_system_out(format!("log: {log}"));
        }
        suite.add_test_case(case);
    }
    suite.set_time(Duration::from_secs_f64(total));
    let mut report = Report::new("cc-ci");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| panic!("JUnit of an in-memory report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Rung;
    use crate::RungResult;

    #[test]
    fn one_case_per_rung_and_nothing_but_a_pass_passes() {
        let rung = |rung, status, reason: Option<&str>| RungResult {
            rung,
            status,
            reason: reason.map(str::to_string),
            duration_s: 2.0,
            log: None,
            attempts: 1,
        };
        let mut r = RunResults {
            recipe: "static-site".into(),
            tested_ref: "710e8125d41ba311f6e379209c4e6a20563a5e99".into(),
            rungs: vec![
                rung(Rung::Install, Status::Pass, None),
                rung(Rung::Serve, Status::Pass, None),
                rung(Rung::Upgrade, Status::Unverified, Some("base equals head")),
                rung(Rung::Restore, Status::Fail, Some("witness <truncated>")),
                rung(Rung::Lint, Status::Error, Some("docker down")),
            ],
            ..RunResults::empty()
        };
        r.finish();
        let x = xml(&r);
        assert_eq!(x.matches("<testcase ").count(), 5, "{x}");
        assert!(x.contains(r#"name="3 upgrade""#), "{x}");
        assert!(x.contains(r#"<skipped message="unverified: base equals head""#), "{x}");
        assert!(
            x.contains(r#"<failure message="fail: witness &lt;truncated&gt;""#),
            "{x}"
        );
        assert!(x.contains(r#"<error message="error: docker down""#), "{x}");
        assert!(x.contains(r#"tests="5""#) && x.contains(r#"failures="1""#), "{x}");
        assert!(x.contains(r#"<property name="level" value="2"/>"#), "{x}");
    }
}
