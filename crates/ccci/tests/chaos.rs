//! Concurrency and chaos: N `ccci test` runs at once on this one node, as a
//! worker runs them (one `--state-dir` shared, each run with its own ABRA_DIR,
//! domain, stack, lease and results folder), some SIGKILLed at a random
//! point (during the deploy of the upgrade base, during the upgrade, during
//! backup/restore), while a janitor sweeps the same state folder over and
//! over. A round shows:
//!
//! - every live run finishes with its expected level and a clean teardown;
//! - nothing of a killed run remains once the janitor has swept after it:
//!   no stack objects (services, networks, volumes, secrets, configs, by the
//!   stack module's clean-up proof), no run folder (its ABRA_DIR and env
//!   file), no lease;
//! - the janitor never touched a live run: every sweep that saw a live run's
//!   stack left it (`live`), none removed anything of it.
//!
//! `CCCI_CHAOS_N` runs per round (default 3; the first is always live, the
//! second always killed, the rest either, at random), `CCCI_CHAOS_ROUNDS`
//! rounds (default 1; scripts/bench-chaos runs 20), `CCCI_CHAOS_SEED` the
//! seed (printed, so a failing round can be replayed). The counts go
//! straight to stderr.

mod ccci_run;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cc_ci::host::janitor::{self, AppReport};
use ccci_run::{leftovers, Ccci};
use test_support::Component;

/// Where a killed run dies: after its progress shows `marker`, within `jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KillPoint {
    Deploy,
    Upgrade,
    Backup,
}

impl KillPoint {
    fn marker(self) -> &'static str {
        match self {
            KillPoint::Deploy => "(the upgrade base)",
            KillPoint::Upgrade => "deploying the tested commit",
            KillPoint::Backup => "== backup/restore",
        }
    }

    /// The longest wait after the marker, ms (within the phase it names).
    fn jitter_ms(self) -> u64 {
        match self {
            KillPoint::Deploy | KillPoint::Upgrade => 3000,
            KillPoint::Backup => 1500,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KillPoint::Deploy => "deploy",
            KillPoint::Upgrade => "upgrade",
            KillPoint::Backup => "backup",
        }
    }
}

/// One run of a round, planned.
struct Plan {
    recipe: &'static str,
    run_id: String,
    kill: Option<(KillPoint, Duration)>,
}

impl Plan {
    fn stack(&self) -> String {
        format!("{}-{}_ci_test", self.recipe, self.run_id)
    }
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
    problems: Vec<String>,
}

/// The level a good fixture reaches with this repository's settings.
const GOOD_LEVEL: u64 = 7;

fn plan_round(rng: &mut fastrand::Rng, n: usize) -> Vec<Plan> {
    (0..n)
        .map(|i| {
            let killed = i == 1 || (i > 1 && rng.bool());
            let kill = killed.then(|| {
                let point = match rng.u8(0..3) {
                    0 => KillPoint::Deploy,
                    1 => KillPoint::Upgrade,
                    _ => KillPoint::Backup,
                };
                (point, Duration::from_millis(rng.u64(0..=point.jitter_ms())))
            });
            // tmpl-site has no backup labels: a run killed in backup is static-site.
            let recipe = match kill {
                Some((KillPoint::Backup, _)) => "static-site",
                _ if rng.bool() => "static-site",
                _ => "tmpl-site",
            };
            Plan {
                recipe,
                run_id: format!("{:06x}", rng.u32(0..0x0100_0000)),
                kill,
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
    let state = tempfile::tempdir().unwrap();
    let setups: Vec<Ccci> = plans
        .iter()
        .map(|_| Ccci::new(recipes).with_state_dir(state.path()))
        .collect();
    let done = AtomicBool::new(false);
    let reports: Mutex<Vec<janitor::SweepReport>> = Mutex::new(Vec::new());
    let outcomes: Mutex<Vec<Option<String>>> = Mutex::new(plans.iter().map(|_| None).collect());
    let mut line = format!("round seed {seed}:");
    for p in &plans {
        match p.kill {
            Some((k, after)) => line.push_str(&format!(
                " {} {} killed in {} (+{} ms);",
                p.recipe,
                p.run_id,
                k.name(),
                after.as_millis()
            )),
            None => line.push_str(&format!(" {} {} live;", p.recipe, p.run_id)),
        }
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    std::thread::scope(|s| {
        // The janitor, sweeping the shared state folder until the runs end.
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let r = sweep(state.path());
                reports.lock().unwrap().push(r);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let runs: Vec<_> = plans
            .iter()
            .zip(&setups)
            .enumerate()
            .map(|(i, (p, c))| {
                let outcomes = &outcomes;
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
    // The janitor's timer fires again: sweep until a sweep has nothing to do
    // (a killed run's `docker stack deploy` may still have been creating
    // services when the run died), at most 5 times.
    let mut reports = reports.into_inner().unwrap();
    for _ in 0..5 {
        let r = sweep(state.path());
        let idle = r.nothing_done();
        reports.push(r);
        if idle {
            break;
        }
    }
    t.sweeps += reports.len();
    t.reaped += reports
        .iter()
        .flat_map(|r| &r.apps)
        .filter(|a| removed_something(a))
        .count();
    let outcomes = outcomes.into_inner().unwrap();
    for ((p, c), text) in plans.iter().zip(&setups).zip(outcomes) {
        let text = text.unwrap_or_default();
        let stack = p.stack();
        t.runs += 1;
        let seen: Vec<&AppReport> = reports.iter().filter_map(|r| r.app(&stack)).collect();
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
                t.live_seen_left += seen.iter().filter(|a| a.live()).count();
                for a in seen.iter().filter(|a| removed_something(a)) {
                    t.live_touched += 1;
                    t.problems
                        .push(format!("seed {seed}: the janitor touched live run {stack}: {a}"));
                }
            }
            Some((k, _)) => {
                *t.killed.entry(k.name()).or_default() += 1;
                let mut left = leftovers(&stack);
                let run_dir = state.path().join("runs").join(&p.run_id);
                if run_dir.exists() {
                    left.push(format!("run folder {}", run_dir.display()));
                }
                let lease = cc_ci::host::lease::lease_path(state.path(), &stack);
                if lease.exists() {
                    left.push(format!("lease {}", lease.display()));
                }
                if left.is_empty() {
                    t.killed_clean += 1;
                } else {
                    let said: Vec<String> = seen.iter().map(ToString::to_string).collect();
                    t.problems.push(format!(
                        "seed {seed}: killed {} {} ({}) left: {}; the janitor said:\n  {}\n{text}",
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
    let rounds = env_usize("CCCI_CHAOS_ROUNDS", 1);
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
         janitor sweeps               {} (apps reaped: {})\n\
         live runs seen and left      {} times\n\
         live runs touched            {}\n",
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
        t.live_seen_left,
        t.live_touched,
    );
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(t.problems.is_empty(), "{}", t.problems.join("\n\n"));
    assert_eq!(t.live_at_level, t.live);
    assert!(
        t.reaped > 0,
        "the janitor reaped nothing: the killed runs were never seen"
    );
}
