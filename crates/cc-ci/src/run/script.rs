//! Running a recipe's executables (install steps, pre-rung hooks, custom
//! tests) under the contract of `tests/recipes/README.md`: the
//! [`TestEnv`] variables in, the executable's own folder as working
//! directory, at most the settings' `timeouts.scripts`; exit 0 passes, 77
//! means "skipped" (never green), anything else, a crash or the timeout
//! fails. Output goes to a log file in the run's results folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::results::level::Rung;
use crate::run::contract::TestEnv;

/// The exit code that means "skipped".
pub const SKIP_EXIT: i32 = 77;

/// How an executable ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// Exit 0.
    Passed,
    /// Exit 77.
    Skipped,
    /// Another exit code, a signal, or the timeout.
    Failed(String),
    /// It could not be started at all.
    NotStarted(String),
}

/// One executable's run.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// The executable.
    pub path: PathBuf,
    /// How it ended.
    pub outcome: ScriptOutcome,
    /// Wall time.
    pub took: Duration,
    /// Its log (stdout and stderr), relative to the results folder.
    pub log: String,
    /// The last lines it printed on stderr (for reasons).
    pub stderr_tail: String,
}

/// Runs `path` for `rung` with `env`, at most `timeout`; the log goes to
/// `<results>/logs/<rung>-<name>.log`.
pub async fn run(path: &Path, rung: Rung, env: &TestEnv, timeout: Duration) -> ScriptRun {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    let rung_name = rung.word();
    let log_rel = format!("logs/{rung_name}-{name}.log");
    let log_path = env.results_dir.join(&log_rel);
    let started = Instant::now();
    let done = |outcome: ScriptOutcome, out: &[u8], err: &[u8]| {
        if let Some(dir) = log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut text = format!("$ {} (rung {rung_name})\n", path.display());
        text.push_str(&String::from_utf8_lossy(out));
        text.push_str(&String::from_utf8_lossy(err));
        text.push_str(&format!(
            "\n[{outcome:?} after {:.1} s]\n",
            started.elapsed().as_secs_f64()
        ));
        let _ = std::fs::write(&log_path, text);
        let stderr = String::from_utf8_lossy(err);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        ScriptRun {
            path: path.to_path_buf(),
            outcome,
            took: started.elapsed(),
            log: log_rel.clone(),
            stderr_tail: lines[lines.len().saturating_sub(5)..].join("\n"),
        }
    };
    // The contract promises CCCI_JUNIT_OUT's folder exists.
    if let Some(dir) = env.junit_out(rung, &name).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut cmd = tokio::process::Command::new(path);
    cmd.current_dir(path.parent().unwrap_or(Path::new(".")))
        .envs(env.vars(rung, &name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return done(
                ScriptOutcome::NotStarted(format!("cannot start {}: {e}", path.display())),
                b"",
                b"",
            )
        }
    };
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let read = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let a = async {
            if let Some(s) = so.as_mut() {
                let _ = s.read_to_end(&mut o).await;
            }
        };
        let b = async {
            if let Some(s) = se.as_mut() {
                let _ = s.read_to_end(&mut e).await;
            }
        };
        tokio::join!(a, b);
        let status = child.wait().await;
        (status, o, e)
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => done(
            ScriptOutcome::Failed(format!(
                "did not finish within {} s (timeouts.scripts); killed",
                timeout.as_secs()
            )),
            b"",
            b"",
        ),
        Ok((Err(e), o, er)) => done(ScriptOutcome::Failed(format!("wait failed: {e}")), &o, &er),
        Ok((Ok(st), o, er)) => {
            let outcome = match st.code() {
                Some(0) => ScriptOutcome::Passed,
                Some(SKIP_EXIT) => ScriptOutcome::Skipped,
                Some(c) => ScriptOutcome::Failed(format!("exited {c}")),
                None => ScriptOutcome::Failed("killed by a signal".into()),
            };
            done(outcome, &o, &er)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(d: &Path) -> TestEnv {
        TestEnv {
            recipe: "r".into(),
            domain: "r-123456.ci.test".into(),
            stack: "r-123456_ci_test".into(),
            abra_dir: d.join("abra"),
            ca_cert: d.join("ca.crt"),
            results_dir: d.join("results"),
            traefik: "127.0.0.1:443".parse().unwrap(),
            settings_dir: d.to_path_buf(),
            recipe_dir: d.to_path_buf(),
        }
    }

    fn script(d: &Path, name: &str, body: &str) -> PathBuf {
        let p = d.join(name);
        test_support::write_executable(&p, &format!("#!/bin/sh\n{body}\n"));
        p
    }

    #[tokio::test]
    async fn exit_codes_map_to_the_contract() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        let t = Duration::from_secs(10);
        let ok = run(
            &script(d.path(), "ok", "echo \"$CCCI_APP_DOMAIN $CCCI_RUNG\""),
            Rung::Tested,
            &e,
            t,
        )
        .await;
        assert_eq!(ok.outcome, ScriptOutcome::Passed);
        let log = std::fs::read_to_string(d.path().join("results").join(&ok.log)).unwrap();
        assert!(log.contains("r-123456.ci.test tested"), "{log}");
        let skip = run(&script(d.path(), "skip", "exit 77"), Rung::Tested, &e, t).await;
        assert_eq!(skip.outcome, ScriptOutcome::Skipped);
        let bad = run(&script(d.path(), "bad", "echo broken >&2; exit 3"), Rung::Tested, &e, t).await;
        assert_eq!(bad.outcome, ScriptOutcome::Failed("exited 3".into()));
        assert_eq!(bad.stderr_tail, "broken");
        let slow = run(
            &script(d.path(), "slow", "sleep 5"),
            Rung::Tested,
            &e,
            Duration::from_millis(300),
        )
        .await;
        assert!(
            matches!(slow.outcome, ScriptOutcome::Failed(ref m) if m.contains("killed")),
            "{slow:?}"
        );
        let missing = run(&d.path().join("nope"), Rung::Tested, &e, t).await;
        assert!(matches!(missing.outcome, ScriptOutcome::NotStarted(_)));
    }
}
