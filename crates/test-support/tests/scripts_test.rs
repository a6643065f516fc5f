//! `scripts/test`'s skip list, as the tests it runs get it: a
//! `CCCI_ALLOW_SKIP` inherited from the caller's environment is ignored;
//! only `--allow-skip LIST` allows a skip; the abra skip the script adds
//! itself stays. The script runs with `--print-allow-skip` (it prints the
//! list and runs nothing) on a PATH holding only `bash` and `dirname`, so
//! whether abra is found is up to `CCCI_ABRA` alone.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `scripts/test args` with `CCCI_ALLOW_SKIP=inherited` (if given) and
/// `CCCI_ABRA=abra` (if given) in its environment.
fn run(args: &[&str], inherited: Option<&str>, abra: Option<&str>) -> Output {
    let bin = tempfile::tempdir().unwrap();
    // From this process's PATH first: the Nix build sandbox has neither
    // /usr/bin nor /bin/bash.
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/bin"].map(PathBuf::from));
    for tool in ["bash", "dirname"] {
        let found = dirs
            .iter()
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no {tool} on PATH, in /usr/bin or in /bin"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    let mut c = Command::new(test_support::workspace().join("scripts/test"));
    c.args(args).env_clear().env("PATH", bin.path()).env("HOME", bin.path());
    if let Some(a) = inherited {
        c.env("CCCI_ALLOW_SKIP", a);
    }
    if let Some(a) = abra {
        c.env("CCCI_ABRA", a);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_inherited_allow_list_is_ignored() {
    let o = run(&["--print-allow-skip"], Some("all"), None);
    let text = test_support::output_text(&o);
    assert!(o.status.success(), "{text}");
    assert_eq!(stdout(&o), "abra\n", "only the script's own abra skip: {text}");
    assert!(
        text.contains("ignoring CCCI_ALLOW_SKIP=all from the environment") && text.contains("--allow-skip LIST"),
        "said aloud, with the way to ask: {text}"
    );
    // With abra at hand nothing at all may skip.
    let o = run(&["--print-allow-skip"], Some("docker,chromium"), Some("/opt/abra"));
    assert!(o.status.success(), "{}", test_support::output_text(&o));
    assert_eq!(stdout(&o), "\n");
}

#[test]
fn allow_skip_on_the_command_line_is_passed_on() {
    let o = run(
        &["--allow-skip", "docker,chromium", "--print-allow-skip"],
        Some("all"),
        None,
    );
    assert!(o.status.success(), "{}", test_support::output_text(&o));
    assert_eq!(stdout(&o), "docker,chromium,abra\n");
    let o = run(&["--print-allow-skip", "--allow-skip=tmux"], None, Some("/opt/abra"));
    assert_eq!(stdout(&o), "tmux\n", "{}", test_support::output_text(&o));
}

#[test]
fn a_bad_command_line_is_refused_before_anything_runs() {
    for args in [&["--allow-skip"][..], &["--allow-skip", ""], &["--allow-skips", "all"]] {
        let o = run(args, None, None);
        let text = test_support::output_text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains("usage: scripts/test [--allow-skip LIST]"), "{text}");
        assert!(!text.contains("== packages"), "nothing ran: {text}");
    }
}
