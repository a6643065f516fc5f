//! Scenarios of the loop supervisor with real tmux (a private socket per
//! test), real git (a local bare repository as origin) and a scripted
//! STAND-IN agent (`tests/standin-agent`), since the real agent CLIs cannot
//! run here. Each test prints the timings it measured. Without tmux the
//! tests that drive it fail, unless `CCCI_ALLOW_SKIP` allows skipping it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{git, Component};

const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standin-agent");

struct World {
    dir: tempfile::TempDir,
    socket: String,
    config: PathBuf,
}

fn clone_into(origin: &Path, to: &Path) {
    let out = Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(origin)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(to, &["config", "user.email", "test@cc-ci.invalid"]);
    git(to, &["config", "user.name", "loops test"]);
    std::fs::write(to.join(".git/info/exclude"), ".standin/\n").unwrap();
}

impl World {
    /// A workspace with origin, a seed clone, builder and adversary clones,
    /// prompts for two phases, and a config with `watchdog` settings.
    fn new(watchdog: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let origin = d.join("origin.git");
        let out = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&origin)
            .output()
            .unwrap();
        assert!(out.status.success());
        let seed = d.join("seed");
        std::fs::create_dir(&seed).unwrap();
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["config", "user.email", "test@cc-ci.invalid"]);
        git(&seed, &["config", "user.name", "loops test"]);
        std::fs::write(seed.join("STATUS.md"), "# Status\n\nIn progress.\n").unwrap();
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "init"]);
        git(&seed, &["remote", "add", "origin", origin.to_str().unwrap()]);
        git(&seed, &["push", "-q", "origin", "main"]);
        for a in ["builder", "adversary"] {
            clone_into(&origin, &d.join(a));
        }
        std::fs::create_dir(d.join("prompts")).unwrap();
        for (f, t) in [
            ("builder.md", "BUILDER PHASE-ONE prompt"),
            ("adversary.md", "ADVERSARY PHASE-ONE prompt"),
            ("builder-2.md", "BUILDER PHASE-TWO prompt"),
            ("adversary-2.md", "ADVERSARY PHASE-TWO prompt"),
            ("job.md", "JOB prompt"),
        ] {
            std::fs::write(d.join("prompts").join(f), t).unwrap();
        }
        let socket = format!("loops-test-{}", uuid_ish());
        let config = d.join("loops.toml");
        std::fs::write(
            &config,
            format!(
                r#"workspace = "ws"
origin = "origin.git"
tmux_socket = "{socket}"

[watchdog]
{watchdog}

[backends.claude]
command = "{STANDIN}"

[backends.opencode]
command = "{STANDIN}"

[agents.builder]
prompt = "prompts/builder.md"
clone = "builder"
session = "t-builder"

[agents.adversary]
prompt = "prompts/adversary.md"
clone = "adversary"
session = "t-adversary"

[[phases]]
name = "one"
status = "STATUS.md"

[[phases]]
name = "two"
status = "STATUS-2.md"
prompts = {{ builder = "prompts/builder-2.md", adversary = "prompts/adversary-2.md" }}
"#
            ),
        )
        .unwrap();
        World { dir, socket, config }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn loops(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_loops"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("LOOPS_LOG", "info")
            .output()
            .unwrap()
    }

    fn loops_ok(&self, args: &[&str]) -> String {
        let out = self.loops(args);
        assert!(
            out.status.success(),
            "loops {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.loops_ok(&["status", "--json"])).unwrap()
    }

    fn lines(&self, clone: &str, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(clone).join(".standin").join(file))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn invocations(&self, clone: &str) -> Vec<String> {
        self.lines(clone, "invocations.log")
    }

    fn cue(&self, clone: &str, cue: &str) {
        let d = self.path(clone).join(".standin");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cue.tmp"), format!("{cue}\n")).unwrap();
        std::fs::rename(d.join("cue.tmp"), d.join("cue")).unwrap();
    }

    /// Commits `files` with `subject` from the seed clone and pushes to origin.
    fn push(&self, subject: &str, files: &[(&str, &str)]) {
        let seed = self.path("seed");
        git(&seed, &["pull", "-q", "--rebase", "origin", "main"]);
        for (f, t) in files {
            let p = seed.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "--allow-empty", "-m", subject]);
        git(&seed, &["push", "-q", "origin", "main"]);
    }

    fn counter(&self, key: &str) -> i64 {
        self.status()[key].as_i64().unwrap()
    }

    /// Waits until `n` more heavy checks and fast ticks have run.
    fn wait_checks(&self, n: i64) {
        let (h, f) = (self.counter("heavy_checks"), self.counter("fast_ticks"));
        wait(&format!("{n} more checks"), 60, || {
            let s = self.status();
            s["heavy_checks"].as_i64().unwrap() >= h + n && s["fast_ticks"].as_i64().unwrap() >= f + n
        });
    }

    /// Adds `text` to the configuration file.
    fn append_config(&self, text: &str) {
        let mut all = std::fs::read_to_string(&self.config).unwrap();
        all.push_str(text);
        std::fs::write(&self.config, all).unwrap();
    }

    /// Adds an `[orchestrator]` (prompt `prompts/orchestrator.md`, working
    /// folder `orch`) run by `backend`, the stand-in either way.
    fn with_orchestrator(&self, backend: &str) {
        std::fs::write(self.path("prompts/orchestrator.md"), "ORCHESTRATOR prompt").unwrap();
        std::fs::create_dir(self.path("orch")).unwrap();
        self.append_config(&format!(
            "\n[orchestrator]\nprompt = \"prompts/orchestrator.md\"\ndir = \"orch\"\nbackend = \"{backend}\"\n"
        ));
    }

    fn orchestrator(&self) -> Value {
        serde_json::from_str(&self.loops_ok(&["orchestrator", "status", "--json"])).unwrap()
    }

    fn loops_err(&self, args: &[&str]) -> String {
        let out = self.loops(args);
        assert!(
            !out.status.success(),
            "loops {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn uuid_ish() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{}", std::process::id(), t % 1_000_000_000)
}

/// `text` without its terminal colour codes (`ESC [ ... m`; the pane is a terminal).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `cond` every 50 ms for up to `secs` seconds; returns the time it took.
fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

const FAST: &str = "heavy_check = 1\nfast_tick = 0.3\nstall_idle = 3\nmax_resumes = 2";

#[test]
fn start_is_idempotent_and_stop_stops() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    let out = w.loops_ok(&["start"]);
    assert!(out.contains("builder: started"), "{out}");
    assert!(out.contains("watchdog: started"), "{out}");
    wait("both agents running", 20, || {
        w.invocations("builder").len() == 1 && w.invocations("adversary").len() == 1
    });
    let out = w.loops_ok(&["start"]);
    assert!(out.contains("builder: already running"), "{out}");
    assert!(out.contains("adversary: already running"), "{out}");
    assert!(out.contains("watchdog: already running"), "{out}");
    w.wait_checks(2);
    assert_eq!(w.invocations("builder").len(), 1, "a live session was duplicated");
    assert_eq!(w.invocations("adversary").len(), 1);
    assert!(w.invocations("builder")[0].starts_with("fresh "));
    assert!(w.invocations("builder")[0].ends_with("BUILDER PHASE-ONE prompt"));
    let s = w.status();
    assert_eq!(s["phase"], "one");
    assert_eq!(s["agents"][0]["state"], "alive", "{s}");
    assert_eq!(s["watchdog_alive"], true);
    let sessions = String::from_utf8(w.tmux(&["list-sessions", "-F", "#{session_name}"]).stdout).unwrap();
    let mut sessions: Vec<_> = sessions.lines().collect();
    sessions.sort();
    assert_eq!(sessions, ["loops-watchdog", "t-adversary", "t-builder"]);

    w.loops_ok(&["stop"]);
    let s = w.status();
    assert_eq!(s["watchdog_alive"], false);
    assert_eq!(s["agents"][0]["state"], "missing");
    let text = w.loops_ok(&["status"]);
    assert!(text.contains("watchdog  not running"), "{text}");
}

#[test]
fn dead_or_missing_session_is_restarted_with_resume() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    w.loops_ok(&["start"]);
    wait("agents up", 20, || {
        w.invocations("builder").len() == 1 && w.invocations("adversary").len() == 1
    });
    let id = w.invocations("builder")[0].split(' ').nth(1).unwrap().to_string();

    w.cue("builder", "exit 7");
    let took = wait("builder restarted", 30, || w.invocations("builder").len() == 2);
    println!(
        "TIMING dead session -> restart: {:.2}s (heavy_check = 1 s)",
        took.as_secs_f64()
    );
    assert_eq!(w.invocations("builder")[1], format!("resume {id} The loops supervisor restarted you. Continue where you left off; check git status and the repo's STATUS first."));

    assert!(w.tmux(&["kill-session", "-t", "=t-adversary"]).status.success());
    let took = wait("adversary session recreated", 30, || {
        w.invocations("adversary").len() == 2
    });
    println!("TIMING missing session -> restart: {:.2}s", took.as_secs_f64());
    assert!(w.invocations("adversary")[1].starts_with("resume "));

    // A pane showing a fatal API error is healed (restarted) by the heavy check.
    w.cue("builder", "fatal");
    wait("fatal pane healed", 30, || w.invocations("builder").len() == 3);
    let s = w.status();
    assert_eq!(s["agents"][1]["name"], "builder");
    assert_eq!(s["agents"][1]["restarts"], 2, "{s}");
    let log = w.loops_ok(&["logs", "builder"]);
    assert!(log.contains("standin: resume"), "{log}");
}

#[test]
fn done_advances_the_phase_and_placeholders_do_not() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new("heavy_check = 0.5\nfast_tick = 0.3");
    w.loops_ok(&["start"]);
    wait("agents up", 20, || w.invocations("builder").len() == 1);

    for (i, placeholder) in [
        "# Status\n\n## DONE (placeholder)\n",
        "# Status\n\nWhen finished, write:\n\n> ## DONE\n",
        "# Status\n\n```\n## DONE\n```\n",
        "# Status\n\n## DONE <date, summary>\n",
    ]
    .iter()
    .enumerate()
    {
        w.push(&format!("status: placeholder {i}"), &[("STATUS.md", placeholder)]);
        w.wait_checks(2);
        let s = w.status();
        assert_eq!(s["phase"], "one", "placeholder {placeholder:?} ended the phase");
        assert_eq!(s["phase_done"], false);
    }
    assert_eq!(w.invocations("builder").len(), 1);

    let t0 = Instant::now();
    w.push(
        "status: done",
        &[("STATUS.md", "# Status\n\n## DONE\n\nAll shipped.\n")],
    );
    wait("phase two", 30, || w.status()["phase"] == "two");
    wait("phase-two agents", 30, || {
        w.invocations("builder").len() == 2 && w.invocations("adversary").len() == 2
    });
    println!(
        "TIMING DONE pushed -> phase two running: {:.2}s (heavy_check = 0.5 s)",
        t0.elapsed().as_secs_f64()
    );
    let b = w.invocations("builder");
    assert!(
        b[1].starts_with("fresh ") && b[1].ends_with("BUILDER PHASE-TWO prompt"),
        "{b:?}"
    );
    assert_ne!(
        b[0].split(' ').nth(1),
        b[1].split(' ').nth(1),
        "a new phase starts a new conversation"
    );

    w.push("status: two done", &[("STATUS-2.md", "## DONE — all phases\n")]);
    wait("watchdog exits after the last phase", 30, || {
        !w.status()["watchdog_alive"].as_bool().unwrap()
    });
    let s = w.status();
    assert_eq!(s["phase"], Value::Null);
    assert_eq!(s["phase_index"], 2);
    assert_eq!(s["agents"][0]["state"], "missing");
    let out = w.loops_ok(&["start"]);
    assert!(out.contains("all 2 phases are done"), "{out}");
}

#[test]
fn claim_and_review_pings_land_exactly_once() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new("heavy_check = 1\nfast_tick = 0.3");
    w.loops_ok(&["start"]);
    wait("agents up", 20, || {
        w.invocations("builder").len() == 1 && w.invocations("adversary").len() == 1
    });

    let t0 = Instant::now();
    w.push("claim(rung-2): serve passes", &[]);
    // Timed out once under a fully loaded CI machine (cause not found):
    // the watchdog's log says what it did meanwhile.
    let pinged = || {
        w.lines("adversary", "input.log")
            .iter()
            .any(|l| l.contains("claim(rung-2)"))
    };
    while !pinged() {
        if t0.elapsed() > Duration::from_secs(30) {
            let log = strip_ansi(&std::fs::read_to_string(w.path("ws/logs/watchdog.log")).unwrap_or_default());
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "timed out after 30s waiting for adversary pinged; status {}; watchdog log (last 40 lines):\n{}",
                w.status(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "TIMING claim commit -> ping typed: {:.2}s (fast_tick = 0.3 s)",
        t0.elapsed().as_secs_f64()
    );

    // The Builder itself commits a review( in its own clone (as an agent would).
    w.cue("adversary", "commit review(rung-2): confirmed");
    wait("builder pinged", 30, || {
        w.lines("builder", "input.log")
            .iter()
            .any(|l| l.contains("review(rung-2)"))
    });
    w.push("fix: unrelated", &[("src.txt", "x")]);
    w.push(
        "inbox: note for builder",
        &[("INBOX/builder.md", "please look at rung 3\n")],
    );
    wait("inbox ping", 30, || {
        w.lines("builder", "input.log")
            .iter()
            .any(|l| l.contains("INBOX/builder.md"))
    });
    w.wait_checks(4);

    // The watchdog restarts: the persisted origin SHA keeps it from pinging again.
    assert!(w.tmux(&["kill-session", "-t", "=loops-watchdog"]).status.success());
    wait("watchdog gone", 10, || !w.status()["watchdog_alive"].as_bool().unwrap());
    w.loops_ok(&["start"]);
    w.wait_checks(4);

    let adv = w.lines("adversary", "input.log");
    let bld = w.lines("builder", "input.log");
    assert_eq!(adv.iter().filter(|l| l.contains("claim(")).count(), 1, "{adv:?}");
    assert_eq!(adv.len(), 1, "the adversary got only the claim ping: {adv:?}");
    assert_eq!(bld.iter().filter(|l| l.contains("review(")).count(), 1, "{bld:?}");
    assert_eq!(
        bld.iter().filter(|l| l.contains("INBOX/builder.md")).count(),
        1,
        "{bld:?}"
    );
    assert_eq!(bld.len(), 2, "nothing else pinged the builder: {bld:?}");
}

#[test]
fn stalled_loop_is_restarted_but_a_paced_wait_is_not() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new("heavy_check = 1\nfast_tick = 0.3\nstall_idle = 2");
    w.loops_ok(&["start"]);
    wait("agents up", 20, || {
        w.invocations("builder").len() == 1 && w.invocations("adversary").len() == 1
    });

    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    w.cue("builder", &format!("wait-until {later}"));
    // An unreachable origin must not stop the stall check.
    std::fs::rename(w.path("origin.git"), w.path("origin.git.away")).unwrap();
    let t0 = Instant::now();
    w.cue("adversary", "hang");
    wait("hung adversary restarted", 30, || w.invocations("adversary").len() == 2);
    println!(
        "TIMING hung pane -> restart: {:.2}s (stall_idle = 2 s)",
        t0.elapsed().as_secs_f64()
    );
    let s = w.status();
    assert_eq!(s["agents"][1]["name"], "builder");
    assert_eq!(s["agents"][1]["state"], "waiting", "{s}");
    std::thread::sleep(Duration::from_secs(4)); // twice stall_idle
    assert_eq!(w.invocations("builder").len(), 1, "a healthy paced wait was restarted");

    let past = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    w.cue("builder", &format!("wait-until {past}"));
    wait("expired wait restarted", 30, || w.invocations("builder").len() == 2);
}

#[test]
fn job_resumes_promptly_and_hands_off_after_max_resumes() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new("heavy_check = 1\nfast_tick = 0.3\nmax_resumes = 2\nmax_takeovers = 1");
    let prompt = w.path("prompts/job.md");
    let work = w.path("jobwork");
    std::fs::create_dir(&work).unwrap();
    let out = w.loops_ok(&[
        "job",
        "start",
        "j1",
        prompt.to_str().unwrap(),
        "--clone",
        work.to_str().unwrap(),
    ]);
    assert!(out.contains("job j1: started (fresh)"), "{out}");
    assert!(out.contains("job j1 watchdog: started"), "{out}");
    wait("job agent", 20, || w.invocations("jobwork").len() == 1);
    let out = w.loops_ok(&[
        "job",
        "start",
        "j1",
        prompt.to_str().unwrap(),
        "--clone",
        work.to_str().unwrap(),
    ]);
    assert!(out.contains("already running"), "{out}");
    let out = w.loops_ok(&["job", "watch", "j1"]);
    assert!(out.contains("another watchdog"), "{out}");

    let t0 = Instant::now();
    w.cue("jobwork", "exit 1");
    wait("job resumed", 20, || w.invocations("jobwork").len() == 2);
    println!(
        "TIMING job agent death -> resume: {:.2}s (fast_tick = 0.3 s)",
        t0.elapsed().as_secs_f64()
    );
    assert!(w.invocations("jobwork")[1].starts_with("resume "));
    w.cue("jobwork", "done");
    wait("job done", 20, || w.status()["jobs"][0]["state"] == "done");
    assert!(w.path("ws/jobs/j1/DONE").exists());

    // A job whose agent always dies: 1 fresh run + max_resumes, then GAVE-UP.
    let bad = w.path("badwork");
    std::fs::create_dir_all(bad.join(".standin")).unwrap();
    std::fs::write(bad.join(".standin/always-exit"), "").unwrap();
    w.loops_ok(&[
        "job",
        "start",
        "j2",
        prompt.to_str().unwrap(),
        "--clone",
        bad.to_str().unwrap(),
    ]);
    wait("j2 gave up", 30, || w.path("ws/jobs/j2/GAVE-UP").exists());
    // tmux marks a pane dead when its terminal closes and learns the exit
    // status a moment later, when it reaps the process: wait for both.
    wait("j2 watchdog exited", 20, || {
        let dead = w.tmux(&["display-message", "-p", "-t", "=job-j2-watch:", "#{pane_dead}"]);
        String::from_utf8_lossy(&dead.stdout).trim() == "1"
    });
    assert_eq!(w.invocations("badwork").len(), 3, "{:?}", w.invocations("badwork"));
    let marker = std::fs::read_to_string(w.path("ws/jobs/j2/GAVE-UP")).unwrap();
    assert!(
        marker.contains("GAVE UP") && marker.contains("loops job start j2"),
        "{marker}"
    );
    // The hand-off's exit status, read directly: tmux marks a pane dead when
    // its terminal closes and may learn the status only later. A job watchdog
    // run now finds the budget spent, hands off again and exits 3 (were the
    // first one still alive and holding the lock, this one would exit 0).
    let again = w.loops(&["job", "watch", "j2"]);
    assert_eq!(
        again.status.code(),
        Some(3),
        "the job watchdog exits 3 on hand-off: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(w.invocations("badwork").len(), 3, "a spent budget resumes nothing");
    assert_eq!(w.status()["jobs"][1]["state"], "gave-up");

    // The supervisor takes over once (max_takeovers = 1), then leaves it for a human.
    w.loops_ok(&["start"]);
    wait("takeover ran and gave up again", 30, || {
        w.invocations("badwork").len() == 6 && w.path("ws/jobs/j2/GAVE-UP").exists()
    });
    w.wait_checks(3);
    assert_eq!(w.invocations("badwork").len(), 6, "no spinning after the last takeover");
    assert!(
        w.invocations("badwork")[3].starts_with("fresh "),
        "a takeover starts fresh"
    );
    let s = w.status();
    assert_eq!(s["jobs"][1]["state"], "gave-up");
    assert_eq!(s["jobs"][1]["takeovers"], 1);
    assert_eq!(s["jobs"][0]["state"], "done");
}

#[test]
fn boot_is_recorded_once_per_boot_and_resumes() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    let id = w.path("boot_id");
    std::fs::write(&id, "11111111-aaaa\n").unwrap();
    let out = w.loops_ok(&["boot", "--boot-id-file", id.to_str().unwrap()]);
    assert!(out.contains("recorded"), "{out}");
    wait("agents up", 20, || w.invocations("builder").len() == 1);
    let out = w.loops_ok(&["boot", "--boot-id-file", id.to_str().unwrap()]);
    assert!(
        out.contains("already recorded") && out.contains("already running"),
        "{out}"
    );
    assert_eq!(w.status()["reboots"], 1);

    // The next boot: sessions are gone (the tmux server died with the host).
    let _ = w.tmux(&["kill-server"]);
    std::fs::write(&id, "22222222-bbbb\n").unwrap();
    w.loops_ok(&["boot", "--boot-id-file", id.to_str().unwrap()]);
    wait("agents resumed", 20, || w.invocations("builder").len() == 2);
    assert!(
        w.invocations("builder")[1].starts_with("resume "),
        "boot resumes the saved conversation"
    );
    assert_eq!(w.status()["reboots"], 2);
    // The real kernel boot id: recorded once, then gated.
    w.loops_ok(&["boot"]);
    w.loops_ok(&["boot"]);
    assert_eq!(w.status()["reboots"], 3);
    let text = std::fs::read_to_string(w.path("ws/REBOOTS.md")).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("- ")).count(), 3, "{text}");
}

#[test]
fn bad_config_names_file_and_line() {
    let w = World::new(FAST);
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("fast_tick = 0.3", "fast_tick = 0.3\nstal_idle = 5");
    std::fs::write(&w.config, text).unwrap();
    let out = w.loops(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loops.toml:8"), "{err}");
    assert!(err.contains("stal_idle"), "{err}");
}

#[test]
fn orchestrator_keeps_its_conversation_through_death_heal_and_reboot() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    w.with_orchestrator("claude");
    let o = w.orchestrator();
    assert_eq!(o["state"], "missing", "{o}");
    assert_eq!(o["conversation"], Value::Null);
    assert_eq!(o["wanted"], false);
    let err = w.loops_err(&["orchestrator", "resume"]);
    assert!(
        err.contains("no saved conversation") && err.contains("orchestrator start"),
        "{err}"
    );

    let out = w.loops_ok(&["orchestrator", "start"]);
    assert!(out.contains("orchestrator: started (fresh, conversation "), "{out}");
    assert!(out.contains("watchdog: started"), "{out}");
    wait("orchestrator up", 20, || w.invocations("orch").len() == 1);
    let first = w.invocations("orch")[0].clone();
    let id = first.split(' ').nth(1).unwrap().to_string();
    assert_eq!(first, format!("fresh {id} ORCHESTRATOR prompt"));
    let o = w.orchestrator();
    assert_eq!(o["conversation"], id.as_str(), "the id it runs is saved: {o}");
    assert_eq!(o["state"], "alive");
    assert_eq!(o["wanted"], true);
    assert!(w.loops_ok(&["orchestrator", "start"]).contains("already running"));
    assert!(w.loops_ok(&["orchestrator", "resume"]).contains("already running"));
    assert!(w.loops_ok(&["status"]).contains("kept running by the watchdog"));
    let resumed = format!("resume {id} {}", loops::backend::RESUME_MESSAGE);

    // Its agent dies: the watchdog resumes the same conversation (the
    // stand-in refuses an id it did not start, as claude does).
    let t0 = Instant::now();
    w.cue("orch", "exit 3");
    wait("orchestrator healed", 30, || w.invocations("orch").len() == 2);
    println!(
        "TIMING orchestrator death -> resumed: {:.2}s (heavy_check = 1 s)",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(w.invocations("orch")[1], resumed);
    w.cue("orch", "fatal");
    wait("fatal orchestrator pane healed", 30, || {
        w.invocations("orch").len() == 3
    });
    assert_eq!(w.invocations("orch")[2], resumed);
    wait("orchestrator back", 20, || w.orchestrator()["state"] == "alive");
    assert_eq!(w.orchestrator()["restarts"], 2);

    // `loops stop` leaves it (it may be the one asking); the next start watches it again.
    let out = w.loops_ok(&["stop"]);
    assert!(out.contains("orchestrator: left running"), "{out}");
    assert_eq!(w.orchestrator()["state"], "alive");

    // A reboot: the tmux server is gone; boot resumes it with its conversation.
    let _ = w.tmux(&["kill-server"]);
    let boot_id = w.path("boot_id");
    std::fs::write(&boot_id, "33333333-cccc\n").unwrap();
    let out = w.loops_ok(&["boot", "--boot-id-file", boot_id.to_str().unwrap()]);
    assert!(
        out.contains(&format!("orchestrator: resumed (conversation {id})")),
        "{out}"
    );
    wait("orchestrator resumed after the reboot", 20, || {
        w.invocations("orch").len() == 4
    });
    assert_eq!(w.invocations("orch")[3], resumed);

    // Stopped, it is not healed; `start` will not drop the saved conversation.
    let out = w.loops_ok(&["orchestrator", "stop"]);
    assert!(out.contains("conversation is kept"), "{out}");
    w.wait_checks(3);
    assert_eq!(w.invocations("orch").len(), 4, "a stopped orchestrator was restarted");
    assert_eq!(w.orchestrator()["wanted"], false);
    let err = w.loops_err(&["orchestrator", "start"]);
    assert!(
        err.contains(&format!("saved conversation {id}"))
            && err.contains("orchestrator resume")
            && err.contains("--new"),
        "{err}"
    );
    assert!(w
        .loops_ok(&["orchestrator", "resume"])
        .contains(&format!("orchestrator: resumed (conversation {id})")));
    wait("resumed by hand", 20, || w.invocations("orch").len() == 5);
    assert!(w
        .loops_err(&["orchestrator", "start", "--new"])
        .contains("orchestrator stop"));

    // After the last phase the watchdog stays for a wanted orchestrator.
    w.push(
        "status: done",
        &[("STATUS.md", "## DONE\n"), ("STATUS-2.md", "## DONE\n")],
    );
    wait("phases done", 30, || w.status()["phase_index"] == 2);
    std::thread::sleep(Duration::from_secs(3)); // three heavy checks (the counters stop after the last phase)
    assert_eq!(
        w.status()["watchdog_alive"],
        true,
        "the watchdog left a wanted orchestrator"
    );
    w.cue("orch", "exit 1");
    wait("healed after the last phase", 30, || w.invocations("orch").len() == 6);

    // A new conversation on request, and only then.
    w.loops_ok(&["orchestrator", "stop"]);
    let out = w.loops_ok(&["orchestrator", "start", "--new"]);
    assert!(out.contains("started (fresh"), "{out}");
    wait("new conversation", 20, || w.invocations("orch").len() == 7);
    let new_id = w.invocations("orch")[6].split(' ').nth(1).unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(w.orchestrator()["conversation"], new_id.as_str());
    let log = w.loops_ok(&["logs", "orchestrator"]);
    assert!(log.contains(&format!("standin: resume {id}")), "{log}");
}

#[test]
fn opencode_orchestrator_is_resumed_by_the_session_id_opencode_gave_it() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    w.with_orchestrator("opencode");
    w.loops_ok(&["orchestrator", "start"]);
    wait("orchestrator up", 20, || w.invocations("orch").len() == 1);
    let ours = w.orchestrator()["conversation"].as_str().unwrap().to_string();
    let first = w.invocations("orch")[0].clone();
    let ses = first.split(' ').nth(1).unwrap().to_string();
    assert!(ses.starts_with("ses_"), "{first}");
    let sessions = std::fs::read_to_string(w.path("orch/.standin/sessions").join(&ses)).unwrap();
    assert!(
        sessions.contains(&format!("orchestrator {ours}")),
        "titled with our id: {sessions}"
    );

    w.cue("orch", "exit 2");
    wait("resumed", 30, || w.invocations("orch").len() == 2);
    assert!(
        w.invocations("orch")[1].starts_with(&format!("resume {ses} ")),
        "{:?}",
        w.invocations("orch")
    );
    assert_eq!(
        w.orchestrator()["conversation"],
        ses.as_str(),
        "opencode's id is saved once found"
    );
    w.cue("orch", "exit 2");
    wait("resumed again", 30, || w.invocations("orch").len() == 3);
    assert!(w.invocations("orch")[2].starts_with(&format!("resume {ses} ")));
}

#[test]
fn with_a_server_unit_loops_never_starts_a_tmux_server() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    w.append_config("");
    let text = std::fs::read_to_string(&w.config).unwrap().replace(
        "[watchdog]",
        "tmux_server_unit = \"test-loops-tmux.service\"\n\n[watchdog]",
    );
    std::fs::write(&w.config, text).unwrap();

    let err = w.loops_err(&["start"]);
    assert!(
        err.contains("test-loops-tmux.service") && err.contains("systemctl start"),
        "{err}"
    );
    assert!(
        !w.tmux(&["list-sessions"]).status.success(),
        "loops started a tmux server although a unit owns it"
    );

    // The unit's part, played by the test: a foreground server (`tmux -D`).
    let mut server = Command::new("tmux")
        .args(["-L", &w.socket, "-f", "/dev/null", "-D"])
        .spawn()
        .unwrap();
    wait("server up", 10, || w.tmux(&["list-sessions"]).status.success());
    w.loops_ok(&["start"]);
    wait("agents up", 20, || w.invocations("builder").len() == 1);
    let pid = String::from_utf8(w.tmux(&["display-message", "-p", "-t", "=t-builder:", "#{pid}"]).stdout).unwrap();
    assert_eq!(
        pid.trim(),
        server.id().to_string(),
        "the sessions live in the unit's server"
    );
    let panes = String::from_utf8(w.tmux(&["list-panes", "-a", "-F", "#{pane_pid}"]).stdout).unwrap();
    for p in panes.lines() {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        let ppid = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap();
        assert_eq!(ppid, server.id().to_string(), "pane {p} is not the server's child");
    }
    w.loops_ok(&["stop"]);
    let _ = w.tmux(&["kill-server"]);
    server.wait().unwrap();
}

#[test]
fn the_watchdog_restarts_itself_on_a_changed_configuration() {
    if !test_support::need(Component::Tmux) {
        return;
    }
    let w = World::new(FAST);
    w.loops_ok(&["start"]);
    wait("agents up", 20, || w.invocations("builder").len() == 1);
    let pid = || {
        String::from_utf8(
            w.tmux(&["display-message", "-p", "-t", "=loops-watchdog:", "#{pane_pid}"])
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string()
    };
    let before = pid();
    // Read directly: `loops logs` itself refuses the invalid configuration.
    let log = || strip_ansi(&std::fs::read_to_string(w.path("ws/logs/watchdog.log")).unwrap_or_default());

    // An invalid change is refused (said once) and the old configuration kept.
    let good = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, good.replace("stall_idle = 3", "stall_idle = -3")).unwrap();
    wait("refusal logged", 20, || {
        log().contains("is invalid; keeping the old one")
    });
    std::thread::sleep(Duration::from_secs(3)); // three heavy checks
    assert_eq!(log().matches("is invalid; keeping the old one").count(), 1, "{}", log());
    assert_eq!(pid(), before);

    // A valid change: the same pane runs a watchdog on the new configuration.
    std::fs::write(&w.config, good.replace("heavy_check = 1", "heavy_check = 0.7")).unwrap();
    let t0 = Instant::now();
    wait("the new watchdog", 20, || log().contains("heavy_s=0.7"));
    println!(
        "TIMING changed configuration -> new watchdog: {:.2}s (heavy_check = 1 s)",
        t0.elapsed().as_secs_f64()
    );
    assert!(log().contains("the configuration changed; the watchdog restarts itself"));
    assert_eq!(pid(), before, "the watchdog replaced itself in its pane");
    assert_eq!(w.status()["watchdog_alive"], true);
    w.wait_checks(2);
    assert_eq!(w.invocations("builder").len(), 1, "a reload restarted an agent");
    assert_eq!(
        log().matches("the watchdog restarts itself").count(),
        1,
        "it reloaded more than once"
    );
}
