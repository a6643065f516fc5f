//! The `bridge` binary's operator commands on a real state database:
//! `bridge retry-now` makes waiting retries due and leaves dead letters.

use std::path::Path;
use std::process::{Command, Output};

use bridge::retry::Kind;
use bridge::state::{Item, State};

/// Runs `bridge retry-now --config <config>`.
fn retry_now(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["retry-now", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn retry_now_makes_waiting_retries_due_and_leaves_dead_letters() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("state.sqlite");
    let config = d.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "gitea_url = \"http://127.0.0.1:9/\"\ngitea_token_file = \"/nonexistent\"\norg = \"o\"\nrepos = [\"o/r\"]\n\
             buildbot_url = \"http://127.0.0.1:9/\"\nbuildbot_password_file = \"/nonexistent\"\n\
             results_dir = {:?}\nstate_db = {db:?}\n",
            d.path().join("results"),
        ),
    )
    .unwrap();
    let state = State::open(&db).unwrap();
    // Two items failing now (waiting out their backoff) and one given up.
    state
        .failed(Item::Follow(1), Kind::Transient, "Buildbot: connection refused")
        .unwrap();
    state.failed(Item::Report(2), Kind::Transient, "Gitea: 502").unwrap();
    for _ in 0..20 {
        state.failed(Item::Cancel(3), Kind::Permanent, "Buildbot: 404").unwrap();
    }
    let before = state.retries().unwrap();
    let dead: Vec<_> = before.iter().filter(|r| r.dead).map(|r| r.item.clone()).collect();
    assert_eq!(dead.len(), 1, "one dead letter to leave alone: {before:?}");
    let now = bridge::state::now();
    assert!(
        before.iter().filter(|r| !r.dead).all(|r| r.next_at > now),
        "waiting: {before:?}"
    );

    let out = retry_now(&config);
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 waiting retries made due now"), "{text}");

    let after = state.retries().unwrap();
    let now = bridge::state::now();
    for r in &after {
        if r.dead {
            assert!(dead.contains(&r.item), "{r:?}");
        } else {
            assert!(r.next_at <= now, "due now: {r:?}");
        }
    }
    assert_eq!(after.len(), before.len());

    // A broken settings file is named, and nothing changes.
    std::fs::write(&config, "state_db = 3\n").unwrap();
    let out = retry_now(&config);
    let text = test_support::output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(&config.display().to_string()), "{text}");
}
