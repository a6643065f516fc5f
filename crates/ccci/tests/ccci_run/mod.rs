//! Running the `ccci` binary in the tests of this crate: a run's own state,
//! results and settings folders, the test host's configuration (the 20.10
//! docker CLI, no registry, the TEST-ONLY CA), and the proof that nothing of
//! an app is left. (Each `tests/*.rs` that runs `ccci test` includes this
//! with `mod ccci_run;`; what other crates share is in `test_support`.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// One `ccci test` set-up: its folders live as long as the value.
pub struct Ccci {
    /// The run's own state folder (the default `--state-dir`).
    pub state: tempfile::TempDir,
    /// `--state-dir` (runs, leases): `state` unless shared with other runs.
    pub state_dir: PathBuf,
    /// `--results-dir`.
    pub results: tempfile::TempDir,
    /// `--recipes-dir`.
    pub recipes: PathBuf,
    /// `--settings-dir` (this repository's tests/recipes unless changed).
    pub settings: PathBuf,
}

impl Ccci {
    /// Runs on the recipes in `recipes` with this repository's settings.
    pub fn new(recipes: &Path) -> Ccci {
        let state = tempfile::tempdir().unwrap();
        Ccci {
            state_dir: state.path().to_path_buf(),
            state,
            results: tempfile::tempdir().unwrap(),
            recipes: recipes.to_path_buf(),
            settings: test_support::workspace().join("tests/recipes"),
        }
    }

    /// The same, with zero config (an empty settings folder).
    pub fn zero_config(recipes: &Path) -> Ccci {
        let mut c = Ccci::new(recipes);
        c.settings = c.state.path().join("no-settings");
        std::fs::create_dir_all(&c.settings).unwrap();
        c
    }

    /// The same set-up with another `--state-dir`, shared with other runs as
    /// a worker's is (each run keeps its own folder and lease in it).
    pub fn with_state_dir(mut self, dir: &Path) -> Ccci {
        self.state_dir = dir.to_path_buf();
        self
    }

    /// `ccci test <recipe> <extra>` with this set-up, not yet run.
    pub fn command(&self, recipe: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ccci"));
        c.arg("test")
            .arg(recipe)
            .args(extra)
            .env("CCCI_RECIPES_DIR", &self.recipes)
            .env("CCCI_STATE_DIR", &self.state_dir)
            .env("CCCI_RESULTS_DIR", self.results.path())
            .env("CCCI_SETTINGS_DIR", &self.settings)
            .env("CCCI_DOMAIN", "ci.test")
            .env("CCCI_DOCKER_CLI", "/usr/bin/docker")
            .env("CCCI_RESOLVE_IMAGE", "never")
            .env("CCCI_CA_CERT", test_support::test_keys().join("ca.crt"));
        c
    }

    /// Runs `ccci test`.
    pub fn test(&self, recipe: &str, extra: &[&str]) -> Output {
        self.command(recipe, extra).output().unwrap()
    }

    /// Starts `ccci test <recipe> <extra>` and reads its progress until a
    /// line contains `marker` (at most 300 s), then returns the run still
    /// going.
    pub fn start_until(&self, recipe: &str, extra: &[&str], marker: &str) -> Running {
        let mut child = self
            .command(recipe, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let start = Instant::now();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            let found = line.contains(marker);
            seen.push(line);
            if found {
                return Running { child, lines, seen };
            }
            if start.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "ccci did not print {marker:?} (it ended, or 300 s passed):\n{}",
            seen.join("\n")
        );
    }

    /// The (one) run folder of `recipe`.
    pub fn run_dir(&self, recipe: &str) -> PathBuf {
        let dir = self.results.path().join(recipe);
        let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no results in {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs.remove(0)
    }

    /// The run's results.json.
    pub fn results(&self, recipe: &str) -> serde_json::Value {
        let f = self.run_dir(recipe).join("results.json");
        serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap()
    }
}

/// Replaces `from` by `to` in the file at `path`; panics when `from` is not there.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Runs `f` on every release folder of a fixture variant's `releases/`.
pub fn each_release(releases: &Path, f: impl Fn(&Path)) {
    for e in std::fs::read_dir(releases).unwrap() {
        f(&e.unwrap().path());
    }
}

/// What the engine still has of `stack` (empty = clean), by the stack
/// module's own clean-up proof.
pub fn leftovers(stack: &str) -> Vec<String> {
    test_support::rt().block_on(async {
        let d = cc_ci::host::swarm::connect().await.unwrap();
        cc_ci::deploy::stack::verify_clean(&d, stack)
            .await
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    })
}

/// Chromium processes (pids, not zombies) started for the app of `stack`:
/// their `--host-resolver-rules=MAP <app domain> ...` names its host
/// (`<recipe>-<run id>`, the stack's first part).
pub fn browsers_of(stack: &str) -> Vec<String> {
    let host = stack.split('_').next().unwrap_or(stack);
    test_support::processes_mentioning(&format!("MAP {host}."))
}

/// A `ccci test` still running, started by [`Ccci::start_until`].
pub struct Running {
    /// The process.
    pub child: Child,
    /// The rest of its progress (stderr).
    pub lines: Lines<BufReader<ChildStderr>>,
    /// The progress read so far.
    pub seen: Vec<String>,
}

impl Running {
    /// Sends `signal` (a number, as kill(1) takes it) to the process.
    pub fn signal(&self, signal: i32) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {}", self.child.id());
    }

    /// Reads the rest of the progress and waits for the exit: the status
    /// and everything it printed on stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        self.seen.extend(self.lines.map_while(Result::ok));
        let status = self.child.wait().unwrap();
        (status, self.seen.join("\n"))
    }
}
