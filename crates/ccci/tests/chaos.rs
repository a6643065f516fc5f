//! Concurrency and chaos: N `ccci test` runs at once on this one node, as
//! workers run them, spread over TWO state dirs side by side (as two CI
//! checkouts, or a test suite beside the host, share one engine; each run
//! with its own ABRA_DIR, domain, stack, lease and results folder), some
//! SIGKILLed at a random point (during the deploy of the upgrade base, the
//! witness write, the upgrade, the backup, the restore, the teardown),
//! while each state dir's janitor sweeps its own state folder over and
//! over, and one more janitor process is SIGKILLed in the middle of its
//! sweeps. A round shows:
//!
//! - every live run finishes with its expected level and a clean teardown;
//! - nothing of a killed run remains once its janitor has swept after it:
//!   no stack objects (services, networks, volumes, secrets, configs,
//!   helper containers, by the stack module's clean-up proof), no run
//!   folder (its ABRA_DIR and env file), no lease, no Chromium started
//!   for its screenshots;
//! - no janitor touched a live run: every sweep that saw a live run's
//!   stack left it (`live`, or `foreign` for the other state dir's
//!   janitor), none removed anything of it; and no janitor reaped the other
//!   state dir's killed runs either (those are its owner's to reap).
//!
//! Each run's stack is read from what the run wrote (results.json, or
//! started.json for a killed run), never computed here.
//!
//! `CCCI_CHAOS_N` runs per round (default 3; the first is always live, the
//! second always killed, the rest either, at random), `CCCI_CHAOS_ROUNDS`
//! rounds (default 3; scripts/bench-chaos runs 20), `CCCI_CHAOS_SEED` the
//! seed (printed, so a failing round can be replayed). The counts go
//! straight to stderr.

mod ccci_run;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cc_ci::host::janitor::{self, AppReport};
use ccci_run::{browsers_of, leftovers, Ccci};
use test_support::Component;

/// Where a killed run dies: after its progress shows `marker`, within `jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KillPoint {
    Deploy,
    Witness,
    Upgrade,
    Backup,
    Restore,
    Teardown,
}

impl KillPoint {
    const ALL: [KillPoint; 6] = [
        KillPoint::Deploy,
        KillPoint::Witness,
        KillPoint::Upgrade,
        KillPoint::Backup,
        KillPoint::Restore,
        KillPoint::Teardown,
    ];

    fn marker(self) -> &'static str {
        match self {
            // The install deploy's note (both fixtures' base is 1.0.0+1.22.1); the
            // confinement line before it names "(the upgrade base)" too.
            KillPoint::Deploy => "deploying 1.0.0+1.22.1 (the upgrade base)",
            KillPoint::Witness => "writing witnesses into",
            KillPoint::Upgrade => "deploying the tested commit",
            KillPoint::Backup => "backing up service",
            KillPoint::Restore => "restoring service",
            KillPoint::Teardown => "== teardown",
        }
    }

    /// The longest wait after the marker, ms (within the phase it names).
    fn jitter_ms(self) -> u64 {
        match self {
            KillPoint::Deploy | KillPoint::Upgrade => 3000,
            KillPoint::Witness => 300,
            KillPoint::Backup | KillPoint::Restore | KillPoint::Teardown => 1500,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KillPoint::Deploy => "deploy",
            KillPoint::Witness => "witness write",
            KillPoint::Upgrade => "upgrade",
            KillPoint::Backup => "backup",
            KillPoint::Restore => "restore",
            KillPoint::Teardown => "teardown",
        }
    }
}

/// One run of a round, planned.
struct Plan {
    recipe: &'static str,
    run_id: String,
    kill: Option<(KillPoint, Duration)>,
    /// Which of the round's two state dirs it runs in.
    state: usize,
}

/// The stack a run recorded (results.json `app.stack`, else started.json's
/// `stack`), if it recorded one.
fn recorded_stack(results: &Path, recipe: &str, run_id: &str) -> Option<String> {
    let dir = results.join(recipe).join(run_id);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    read("results.json")
        .and_then(|r| r["app"]["stack"].as_str().map(str::to_string))
        .or_else(|| read("started.json").and_then(|s| s["stack"].as_str().map(str::to_string)))
}

/// Not a test: the body of a janitor process that the chaos round SIGKILLs
/// in the middle of its sweeps. The round runs it by re-executing this
/// binary with `--ignored` and `CCCI_CHAOS_JANITOR=<state dir>`; without
/// that variable it does nothing.
#[test]
#[ignore = "helper process for the chaos test, not a test"]
fn chaos_janitor_process() {
    let Ok(state) = std::env::var("CCCI_CHAOS_JANITOR") else {
        return;
    };
    loop {
        let r = sweep(Path::new(&state));
        for a in &r.apps {
            eprintln!("chaos janitor process: {a}");
        }
    }
}

/// Starts a janitor process on `state` (see [`chaos_janitor_process`]).
fn spawn_janitor(state: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "chaos_janitor_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CCCI_CHAOS_JANITOR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What one round found; the counts are summed over rounds.
#[derive(Default)]
struct Tally {
    runs: usize,
    live: usize,
    live_at_level: usize,
    killed: BTreeMap<&'static str, usize>,
    killed_clean: usize,
    sweeps: usize,
    reaped: usize,
    live_seen_left: usize,
    live_touched: usize,
    /// Apps of the other state dir that a janitor saw and left.
    foreign_left: usize,
    /// Apps of the other state dir that a janitor removed anything of.
    foreign_touched: usize,
    /// Janitor processes SIGKILLed mid-sweep.
    janitors_killed: usize,
    problems: Vec<String>,
}

/// The level a good fixture reaches with this repository's settings.
const GOOD_LEVEL: u64 = 7;

fn plan_round(rng: &mut fastrand::Rng, n: usize) -> Vec<Plan> {
    (0..n)
        .map(|i| {
            let killed = i == 1 || (i > 1 && rng.bool());
            let kill = killed.then(|| {
                let point = KillPoint::ALL[rng.usize(0..KillPoint::ALL.len())];
                (point, Duration::from_millis(rng.u64(0..=point.jitter_ms())))
            });
            // tmpl-site has no backup labels: a run killed in backup or
            // restore is static-site.
            let recipe = match kill {
                Some((KillPoint::Backup | KillPoint::Restore, _)) => "static-site",
                _ if rng.bool() => "static-site",
                _ => "tmpl-site",
            };
            Plan {
                recipe,
                run_id: format!("{:06x}", rng.u32(0..0x0100_0000)),
                kill,
                state: i % 2,
            }
        })
        .collect()
}

fn sweep(state: &Path) -> janitor::SweepReport {
    test_support::rt().block_on(async {
        let d = cc_ci::host::swarm::connect().await.unwrap();
        let suffix = janitor::stack_suffix("ci.test");
        janitor::sweep(&d, state, &suffix, Duration::from_secs(120))
            .await
            .unwrap()
    })
}

/// Whether a sweep removed anything of the app.
fn removed_something(a: &AppReport) -> bool {
    match &a.outcome {
        janitor::Outcome::Reaped {
            removed,
            run_dir_removed,
            lease_removed,
        } => !removed.is_empty() || *run_dir_removed || *lease_removed,
        janitor::Outcome::Incomplete { .. } => true,
        _ => false,
    }
}

fn round(seed: u64, n: usize, recipes: &Path, t: &mut Tally) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let plans = plan_round(&mut rng, n);
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let state_of = |p: &Plan| -> PathBuf { states[p.state].path().to_path_buf() };
    let setups: Vec<Ccci> = plans
        .iter()
        .map(|p| Ccci::new(recipes).with_state_dir(&state_of(p)))
        .collect();
    let janitor_after_ms = rng.u64(0..=800);
    let done = AtomicBool::new(false);
    // Per state dir, every report of its janitor.
    let reports: [Mutex<Vec<janitor::SweepReport>>; 2] = [Mutex::new(Vec::new()), Mutex::new(Vec::new())];
    let outcomes: Mutex<Vec<Option<String>>> = Mutex::new(plans.iter().map(|_| None).collect());
    let janitor_kills = Mutex::new(0usize);
    let mut line = format!("round seed {seed}:");
    for p in &plans {
        match p.kill {
            Some((k, after)) => line.push_str(&format!(
                " {} {} (state {}) killed in {} (+{} ms);",
                p.recipe,
                p.run_id,
                p.state,
                k.name(),
                after.as_millis()
            )),
            None => line.push_str(&format!(" {} {} (state {}) live;", p.recipe, p.run_id, p.state)),
        }
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    std::thread::scope(|s| {
        // Each state dir's janitor, sweeping its state folder until the runs end.
        for (k, st) in states.iter().enumerate() {
            let (done, reports) = (&done, &reports);
            s.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let r = sweep(st.path());
                    reports[k].lock().unwrap().push(r);
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
        let runs: Vec<_> = plans
            .iter()
            .zip(&setups)
            .enumerate()
            .map(|(i, (p, c))| {
                let (outcomes, janitor_kills, state) = (&outcomes, &janitor_kills, state_of(p));
                s.spawn(move || {
                    let extra = ["--run-id", p.run_id.as_str()];
                    let text = match p.kill {
                        None => {
                            let out = c.test(p.recipe, &extra);
                            test_support::output_text(&out)
                        }
                        Some((k, after)) => {
                            let running = c.start_until(p.recipe, &extra, k.marker());
                            std::thread::sleep(after);
                            running.signal(9);
                            let (status, text) = running.finish();
                            // The always-killed run also gets a janitor
                            // process on its state dir, SIGKILLed while it
                            // sweeps (and likely reaps this very app).
                            if i == 1 {
                                let mut j = spawn_janitor(&state);
                                std::thread::sleep(Duration::from_millis(janitor_after_ms));
                                let _ = j.kill();
                                let _ = j.wait();
                                *janitor_kills.lock().unwrap() += 1;
                            }
                            format!("{status}\n{text}")
                        }
                    };
                    outcomes.lock().unwrap()[i] = Some(text);
                })
            })
            .collect();
        for r in runs {
            r.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    t.janitors_killed += janitor_kills.into_inner().unwrap();
    // The janitors' timers fire again: sweep until a sweep has nothing to
    // do (a killed run's `docker stack deploy` may still have been creating
    // services when the run died), at most 5 times each.
    let mut reports = reports.map(|r| r.into_inner().unwrap());
    for (k, st) in states.iter().enumerate() {
        for _ in 0..5 {
            let r = sweep(st.path());
            let idle = r.nothing_done();
            reports[k].push(r);
            if idle {
                break;
            }
        }
    }
    t.sweeps += reports.iter().map(Vec::len).sum::<usize>();
    t.reaped += reports
        .iter()
        .flatten()
        .flat_map(|r| &r.apps)
        .filter(|a| removed_something(a))
        .count();
    let outcomes = outcomes.into_inner().unwrap();
    for ((p, c), text) in plans.iter().zip(&setups).zip(outcomes) {
        let text = text.unwrap_or_default();
        t.runs += 1;
        let Some(stack) = recorded_stack(c.results.path(), p.recipe, &p.run_id) else {
            t.problems.push(format!(
                "seed {seed}: {} {}: no results.json and no started.json name its stack\n{text}",
                p.recipe, p.run_id
            ));
            continue;
        };
        let own: Vec<&AppReport> = reports[p.state].iter().filter_map(|r| r.app(&stack)).collect();
        // The other state dir's janitor must leave it alone, live or killed.
        for a in reports[1 - p.state].iter().filter_map(|r| r.app(&stack)) {
            if removed_something(a) {
                t.foreign_touched += 1;
                t.problems.push(format!(
                    "seed {seed}: the janitor of the other state dir touched {stack}: {a}"
                ));
            } else if matches!(a.outcome, janitor::Outcome::Foreign { .. }) {
                t.foreign_left += 1;
            } else {
                t.problems.push(format!(
                    "seed {seed}: the janitor of the other state dir did not see {stack} as foreign: {a}"
                ));
            }
        }
        match p.kill {
            None => {
                t.live += 1;
                let r = std::fs::read_to_string(c.results.path().join(p.recipe).join(&p.run_id).join("results.json"))
                    .ok()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                    .unwrap_or_default();
                let level = r["level"].as_u64();
                if level == Some(GOOD_LEVEL) && r["clean_teardown"] == true {
                    t.live_at_level += 1;
                } else {
                    t.problems.push(format!(
                        "seed {seed}: live {} {}: level {level:?}, clean_teardown {}; rungs {}\n{text}",
                        p.recipe, p.run_id, r["clean_teardown"], r["rungs"]
                    ));
                }
                t.live_seen_left += own.iter().filter(|a| a.live()).count();
                for a in own.iter().filter(|a| removed_something(a)) {
                    t.live_touched += 1;
                    t.problems
                        .push(format!("seed {seed}: the janitor touched live run {stack}: {a}"));
                }
            }
            Some((k, _)) => {
                *t.killed.entry(k.name()).or_default() += 1;
                let mut left = leftovers(&stack);
                let run_dir = state_of(p).join("runs").join(&p.run_id);
                if run_dir.exists() {
                    left.push(format!("run folder {}", run_dir.display()));
                }
                let lease = cc_ci::state::lease::lease_path(&state_of(p), &stack);
                if lease.exists() {
                    left.push(format!("lease {}", lease.display()));
                }
                let browsers = browsers_of(&stack);
                if !browsers.is_empty() {
                    left.push(format!(
                        "chromium processes {} (started for its screenshots)",
                        browsers.join(" ")
                    ));
                }
                if left.is_empty() {
                    t.killed_clean += 1;
                } else {
                    let said: Vec<String> = own.iter().map(ToString::to_string).collect();
                    t.problems.push(format!(
                        "seed {seed}: killed {} {} ({}) left: {}; its janitor said:\n  {}\n{text}",
                        p.recipe,
                        p.run_id,
                        k.name(),
                        left.join(", "),
                        said.join("\n  ")
                    ));
                }
            }
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

#[test]
fn killed_runs_leave_nothing_and_the_janitor_never_touches_a_live_one() {
    if !test_support::need(Component::Swarm)
        || !test_support::need(Component::FixtureImages)
        || !test_support::need(Component::TraefikStack)
        || !test_support::need(Component::Chromium)
    {
        return;
    }
    let n = env_usize("CCCI_CHAOS_N", 3).max(2);
    let rounds = env_usize("CCCI_CHAOS_ROUNDS", 3);
    let seed: u64 = std::env::var("CCCI_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let recipes = test_support::fixture_recipes();
    let mut t = Tally::default();
    let start = Instant::now();
    for i in 0..rounds {
        round(seed.wrapping_add(i as u64), n, &recipes, &mut t);
    }
    let killed: Vec<String> = t.killed.iter().map(|(k, v)| format!("{v} in {k}")).collect();
    let report = format!(
        "\n== chaos ({rounds} round(s) of {n} runs at once, seed {seed}, {:.0} s)\n\
         runs                         {}\n\
         live, at level {GOOD_LEVEL}, clean       {} of {}\n\
         killed (SIGKILL)             {} ({})\n\
         killed, nothing left         {} of {}\n\
         janitor sweeps               {} over 2 state dirs (apps reaped: {})\n\
         janitor processes killed     {} (mid-sweep)\n\
         live runs seen and left      {} times\n\
         live runs touched            {}\n\
         other state dir's apps left  {} times\n\
         other state dir's touched    {}\n",
        start.elapsed().as_secs_f64(),
        t.runs,
        t.live_at_level,
        t.live,
        t.killed.values().sum::<usize>(),
        killed.join(", "),
        t.killed_clean,
        t.killed.values().sum::<usize>(),
        t.sweeps,
        t.reaped,
        t.janitors_killed,
        t.live_seen_left,
        t.live_touched,
        t.foreign_left,
        t.foreign_touched,
    );
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(t.problems.is_empty(), "{}", t.problems.join("\n\n"));
    assert_eq!(t.live_at_level, t.live);
    assert!(
        t.reaped > 0,
        "the janitor reaped nothing: the killed runs were never seen"
    );
    assert!(
        t.foreign_left > 0,
        "no janitor ever saw the other state dir's apps: the side-by-side check proved nothing"
    );
}
