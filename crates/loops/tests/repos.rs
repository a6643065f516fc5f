//! `scripts/loops-repos`, the orchestrator host's cc-ci-loops-repos.service
//! (modules/loops.nix): with real git, it makes the origin and the clones
//! that are missing, touches nothing that exists, refuses a folder in the
//! way, and leaves nothing half-made when git fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::{git, output_text};

fn script() -> PathBuf {
    test_support::workspace().join("scripts/loops-repos")
}

/// Runs the script with a scratch HOME (no identity of ours leaks in).
fn repos(home: &Path, args: &[&Path]) -> Output {
    Command::new(script())
        .args(args)
        .env("HOME", home)
        .env_remove("GIT_CONFIG_GLOBAL")
        .output()
        .unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn makes_what_is_missing_and_touches_nothing_that_exists() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s);
    std::fs::create_dir(p("home")).unwrap();
    std::fs::create_dir_all(p("clones/empty")).unwrap();
    let (origin, a, empty) = (p("origin.git"), p("clones/a"), p("clones/empty"));
    let branch = Path::new("main");
    let none = Path::new("-");

    let out = repos(&p("home"), &[&origin, branch, none, &a, &empty]);
    assert!(out.status.success(), "{}", output_text(&out));
    let log = git(&origin, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.trim(),
        "init: the loops' origin",
        "a new origin has one empty commit"
    );
    for c in [&a, &empty] {
        assert_eq!(git(c, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
        assert_eq!(
            git(c, &["remote", "get-url", "origin"]).trim(),
            origin.to_str().unwrap()
        );
        assert!(git(c, &["remote"]).lines().all(|r| r != "upstream"));
    }

    // Work in a clone and on origin survives a second run, which says nothing.
    std::fs::write(a.join("work.txt"), "unsaved work").unwrap();
    git(&a, &["commit", "-q", "--allow-empty", "-m", "agent work"]);
    git(&a, &["push", "-q", "origin", "main"]);
    let out = repos(&p("home"), &[&origin, branch, none, &a, &empty]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "a second run did something");
    assert_eq!(std::fs::read_to_string(a.join("work.txt")).unwrap(), "unsaved work");
    assert_eq!(git(&origin, &["log", "-1", "--format=%s", "main"]).trim(), "agent work");

    // A folder in the way is an error naming it; nothing is made beside it.
    std::fs::create_dir_all(p("clones/busy")).unwrap();
    std::fs::write(p("clones/busy/notes"), "mine").unwrap();
    let out = repos(&p("home"), &[&origin, branch, none, &p("clones/busy")]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("clones/busy is not empty and no git clone"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read_to_string(p("clones/busy/notes")).unwrap(), "mine");
    assert_eq!(leftovers(&p("clones")), Vec::<String>::new());

    let out = repos(&p("home"), &[&origin]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

#[test]
fn an_origin_from_upstream_and_nothing_half_made_on_failure() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s);
    std::fs::create_dir(p("home")).unwrap();
    // The upstream: a repository with history on `trunk`.
    let up = p("upstream");
    std::fs::create_dir(&up).unwrap();
    git(&up, &["init", "-q", "-b", "trunk"]);
    std::fs::write(up.join("README.md"), "upstream\n").unwrap();
    git(&up, &["add", "."]);
    git(&up, &["commit", "-q", "-m", "upstream history"]);

    let (origin, c) = (p("srv/origin.git"), p("clones/orchestrator"));
    let out = repos(&p("home"), &[&origin, Path::new("trunk"), &up, &c]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        git(&origin, &["log", "--format=%s", "trunk"]).trim(),
        "upstream history"
    );
    assert_eq!(std::fs::read_to_string(c.join("README.md")).unwrap(), "upstream\n");
    assert_eq!(git(&c, &["remote", "get-url", "upstream"]).trim(), up.to_str().unwrap());

    // An unreachable upstream: git fails, and no origin (nor its .tmp) is left.
    let (origin2, c2) = (p("srv/other.git"), p("clones/other"));
    let out = repos(&p("home"), &[&origin2, Path::new("trunk"), &p("nowhere"), &c2]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(!origin2.exists() && !c2.exists());
    assert_eq!(
        leftovers(&p("srv")),
        Vec::<String>::new(),
        "a half-made origin was left"
    );
    // A branch origin does not have: the clone fails, and is not left half-made.
    let out = repos(&p("home"), &[&origin, Path::new("nope"), &up, &c2]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(!c2.exists());
    assert_eq!(
        leftovers(&p("clones")),
        Vec::<String>::new(),
        "a half-made clone was left"
    );
}
