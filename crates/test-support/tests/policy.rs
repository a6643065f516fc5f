//! The skip policy as a test sees it: this test binary re-executes itself
//! (`probe`, ignored in normal runs) with a component made missing
//! (`CCCI_CHROMIUM` naming no file) and the policy's variables set.

use std::path::Path;
use std::process::{Command, Output};

use test_support::Component;

const PROBE_ENV: &str = "TEST_SUPPORT_PROBE";

/// Not a test: the body of the re-executed process. Without the variable
/// it does nothing.
#[test]
#[ignore = "helper process for the policy tests, not a test"]
fn probe() {
    if std::env::var(PROBE_ENV).as_deref() != Ok("1") {
        return;
    }
    let got = test_support::chromium();
    println!("PROBE chromium {got:?}");
    if got.is_none() {
        println!("PROBE returned early");
    }
}

fn run_probe(log: &Path, allow: Option<&str>) -> Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["probe", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, "1")
        .env("CCCI_CHROMIUM", "/nonexistent/chromium")
        .env("CCCI_SKIP_LOG", log)
        .env_remove("CCCI_ALLOW_SKIP");
    if let Some(a) = allow {
        c.env("CCCI_ALLOW_SKIP", a);
    }
    c.output().unwrap()
}

#[test]
fn a_missing_component_fails_the_test_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips.log");
    for allow in [None, Some(""), Some("0"), Some("docker,tmux")] {
        let o = run_probe(&log, allow);
        let text = test_support::output_text(&o);
        assert!(!o.status.success(), "{allow:?}: {text}");
        assert!(
            text.contains("chromium missing: no chromium at /nonexistent/chromium")
                && text.contains("fix: scripts/ensure-packages installs it")
                && text.contains("CCCI_ALLOW_SKIP=chromium"),
            "{allow:?}: {text}"
        );
        assert!(!text.contains("PROBE returned early"), "{text}");
        assert!(!log.exists(), "nothing logged for a failure");
    }
}

#[test]
fn an_allowed_skip_is_loud_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deeper/skips.log");
    for allow in ["1", "chromium", "docker, Chromium", "all"] {
        let o = run_probe(&log, Some(allow));
        let text = test_support::output_text(&o);
        assert!(o.status.success(), "{allow}: {text}");
        assert!(text.contains("PROBE returned early"), "{text}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.lines().any(|l| l
                == "SKIPPED (chromium missing: no chromium at /nonexistent/chromium; \
                    scripts/ensure-packages installs it): probe"),
            "{allow}: {stderr}"
        );
    }
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines,
        "chromium\tprobe\tno chromium at /nonexistent/chromium\n".repeat(4),
        "one line per skip"
    );
}

#[test]
fn an_unknown_name_in_the_allow_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_probe(&dir.path().join("skips.log"), Some("chromuim"));
    let text = test_support::output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("unknown components [\"chromuim\"]"), "{text}");
    assert!(text.contains(Component::Chromium.name()), "{text}");
}

#[test]
fn present_components_are_found() {
    // Always on this machine: the workspace's own files.
    assert!(test_support::test_keys().join("age.key").is_file());
    assert!(test_support::workspace().join("Cargo.toml").is_file());
}
