//! `cc_ci::run::backup` against the real Docker engine in swarm mode, real
//! restic (`ccci/restic:0.14.0`) and the fixture images (`ccci/nginx:1.22.1`,
//! `ccci/postgres:15`, `ccci/debian:bookworm`), all built locally by
//! `scripts/images` (no registry).
//!
//! Each test deploys its own stack `b<random>_ci_test` with
//! `/usr/bin/docker stack deploy --resolve-image never`, waits with
//! `wait_converged`, and a guard tears it down with
//! `cc_ci::deploy::stack::teardown` (which also takes the round trip's
//! one-off containers, labelled with the stack) even when the test fails. No
//! engine or a missing image is a test failure naming the fix (test_support's policy).
//!
//! The round trips print their timings (`--nocapture` shows them).

mod test_stack;

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use cc_ci::deploy::exec::{exec, running_container};
use cc_ci::deploy::stack;
use cc_ci::run::backup::{
    plan, round_trip, Fault, RoundTrip, RoundTripOptions, RoundTripStatus, TargetKind, NOT_APPLICABLE,
};
use cc_ci::run::witness::WitnessState;
use test_stack::TestStack;
use test_support::Component;

/// A fresh repository folder under the stack's folder.
fn repo(s: &TestStack, n: &str) -> PathBuf {
    s.dir.join("backup").join(n)
}

fn report(what: &str, rt: &RoundTrip) {
    eprintln!("=== {what}: {:?} in {:.2} s", rt.status, rt.seconds);
    for s in &rt.steps {
        eprintln!("    {:<48} {:6.2} s", s.step, s.seconds);
    }
    eprintln!("--- log:\n{}", rt.log);
}

async fn sh(d: &Docker, stack: &str, service: &str, script: &str) -> cc_ci::deploy::exec::ExecOutput {
    let c = running_container(d, stack, service).await.expect("a running container");
    exec(
        d,
        &c,
        &["sh".to_string(), "-c".to_string(), script.to_string()],
        Duration::from_secs(60),
    )
    .await
    .expect("exec")
}

/// The static-site fixture's shape: nginx serving a named volume, with the
/// legacy path label on the volume's mount point.
const STATIC_SITE: &str = r#"
version: "3.8"
services:
  app:
    image: ccci/nginx:1.22.1
    volumes:
      - content:/usr/share/nginx/html
    deploy:
      endpoint_mode: dnsrr
      labels:
        - "backupbot.backup=true"
        - "backupbot.backup.path=/usr/share/nginx/html"
volumes:
  content:
"#;

#[tokio::test(flavor = "multi_thread")]
async fn static_site_round_trip_passes() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    s.deploy_converged(&d, STATIC_SITE).await;

    let p = plan(&d, &s.name).await.expect("plan").expect("labelled");
    assert_eq!(p.services.len(), 1);
    assert_eq!(p.services[0].service, "app");
    let t = &p.services[0].targets;
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].volume, format!("{}_content", s.name));
    assert_eq!(
        t[0].rel, "",
        "the legacy path is the volume's mount point: the whole volume"
    );

    let repo = repo(&s, "restic");
    let rt = round_trip(&d, &s.name, &repo, &RoundTripOptions::default()).await;
    report("static site", &rt);
    assert_eq!(rt.status, RoundTripStatus::Pass);
    assert_eq!(rt.checks.len(), 1);
    assert_eq!(rt.checks[0].kind, TargetKind::Directory);
    assert_eq!(rt.checks[0].state, Some(WitnessState::Intact));
    assert!(rt.log.contains("destroyed and checked gone"), "{}", rt.log);
    assert_eq!(rt.snapshots.len(), 1);
    // A real restic repository with one snapshot, in the folder given.
    assert_eq!(std::fs::read_dir(repo.join("snapshots")).unwrap().count(), 1);
    // The app itself sees the restored witness (and its own page).
    let out = sh(
        &d,
        &s.name,
        "app",
        "cat /usr/share/nginx/html/.ccci-witness-backup-app; ls /usr/share/nginx/html",
    )
    .await;
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.stdout.starts_with("cc-ci witness backup-app "), "{}", out.stdout);
    assert!(out.stdout.contains("index.html"), "{}", out.stdout);
    // The password is nowhere in what the caller gets.
    assert!(!rt.log.to_lowercase().contains("restic_password="), "{}", rt.log);
    // No one-off container is left behind.
    let left = stack::list_objects(&d, &s.name).await.unwrap().containers;
    assert_eq!(left.len(), 1, "only the app's task container: {left:?}");
}

/// The same stack, with the witness kept out of the snapshot, and with the
/// repository's data corrupted: neither may pass, so a pass above means the
/// witness really came back from restic.
#[tokio::test(flavor = "multi_thread")]
async fn static_site_round_trip_fails_without_the_witness_in_the_snapshot() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    s.deploy_converged(&d, STATIC_SITE).await;

    let opts = RoundTripOptions {
        fault: Some(Fault::ExcludeWitnesses),
        ..Default::default()
    };
    let rt = round_trip(&d, &s.name, &repo(&s, "excluded"), &opts).await;
    report("static site, witness excluded from the snapshot", &rt);
    match &rt.status {
        RoundTripStatus::Fail(m) => {
            assert!(m.contains("did not bring the data back"), "{m}");
            assert!(m.contains("/usr/share/nginx/html: missing"), "{m}");
        }
        other => panic!("expected Fail, got {other:?}"),
    }
    assert_eq!(rt.checks[0].state, Some(WitnessState::Missing));

    let opts = RoundTripOptions {
        fault: Some(Fault::CorruptRepositoryData),
        ..Default::default()
    };
    let rt = round_trip(&d, &s.name, &repo(&s, "corrupted"), &opts).await;
    report("static site, repository data corrupted", &rt);
    // restic failing on the repository is the infrastructure's fault.
    match &rt.status {
        RoundTripStatus::Error(m) => assert!(m.contains("restic restore"), "{m}"),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(
        !rt.checks.iter().any(|c| c.state == Some(WitnessState::Intact)),
        "{:?}",
        rt.checks
    );

    // A repository folder that is not empty is refused (its password is gone).
    let rt = round_trip(&d, &s.name, &repo(&s, "excluded"), &RoundTripOptions::default()).await;
    match &rt.status {
        RoundTripStatus::Error(m) => assert!(m.contains("is not empty"), "{m}"),
        other => panic!("expected Error, got {other:?}"),
    }
}

/// (e) A restore that brings back a truncated file: the witness is halved
/// between `restic restore` and the check (what a restic or disk fault, or
/// a restore cut short, would leave).
#[tokio::test(flavor = "multi_thread")]
async fn truncated_restore_fails_with_differs() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    s.deploy_converged(&d, STATIC_SITE).await;
    let opts = RoundTripOptions {
        fault: Some(Fault::TruncateAfterRestore),
        ..Default::default()
    };
    let rt = round_trip(&d, &s.name, &repo(&s, "restic"), &opts).await;
    report("static site, truncated after restore", &rt);
    let len = rt.checks[0].witness_len as usize;
    match &rt.status {
        RoundTripStatus::Fail(m) => {
            assert!(
                m.contains(&format!("differs (found {} bytes, expected {len})", len / 2)),
                "{m}"
            )
        }
        other => panic!("expected Fail, got {other:?}"),
    }
}

fn postgres_stack(password: &str) -> String {
    // The labels are webapp-pg 1.1.0's (tests/fixtures/recipes/webapp-pg/
    // releases/1.1.0+1.1.0/compose.yml), plus a restore pre-hook that
    // changes the data after the backup: it deletes a row the backup holds
    // and adds one it does not.
    format!(
        r#"
version: "3.8"
services:
  db:
    image: ccci/postgres:15
    environment:
      - POSTGRES_DB=webapp
      - POSTGRES_USER=webapp
      - POSTGRES_PASSWORD={password}
    volumes:
      - postgres:/var/lib/postgresql/data
    deploy:
      endpoint_mode: dnsrr
      labels:
        backupbot.backup: "true"
        backupbot.backup.pre-hook: "bash -c 'pg_dump --clean --if-exists -U \"$${{POSTGRES_USER}}\" \"$${{POSTGRES_DB}}\" > /var/lib/postgresql/data/backup.sql'"
        backupbot.backup.post-hook: "rm -f /var/lib/postgresql/data/backup.sql"
        backupbot.backup.path: "/var/lib/postgresql/data/backup.sql"
        backupbot.restore.post-hook: "bash -c 'psql -v ON_ERROR_STOP=1 -U \"$${{POSTGRES_USER}}\" -d \"$${{POSTGRES_DB}}\" < /var/lib/postgresql/data/backup.sql && rm -f /var/lib/postgresql/data/backup.sql'"
        backupbot.restore.pre-hook: "psql -v ON_ERROR_STOP=1 -U webapp -d webapp -c \"DELETE FROM t WHERE x = 'deleted-after-backup'; INSERT INTO t VALUES ('added-after-backup')\""
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U \"$${{POSTGRES_USER}}\" -d \"$${{POSTGRES_DB}}\""]
      interval: 2s
      timeout: 5s
      retries: 30
      start_period: 60s
volumes:
  postgres:
"#
    )
}

async fn rows(d: &Docker, stack: &str) -> String {
    let out = sh(
        d,
        stack,
        "db",
        "psql -v ON_ERROR_STOP=1 -U webapp -d webapp -At -c 'SELECT x FROM t ORDER BY x'",
    )
    .await;
    assert_eq!(out.exit_code, 0, "{out:?}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_round_trip_brings_a_deleted_row_back() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    let password = uuid::Uuid::new_v4().simple().to_string();
    s.deploy_converged(&d, &postgres_stack(&password)).await;

    let out = sh(
        &d,
        &s.name,
        "db",
        "psql -v ON_ERROR_STOP=1 -U webapp -d webapp -c \"CREATE TABLE t (x text); INSERT INTO t VALUES ('kept'), ('deleted-after-backup')\"",
    )
    .await;
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(rows(&d, &s.name).await, "deleted-after-backup\nkept\n");

    let rt = round_trip(&d, &s.name, &repo(&s, "restic"), &RoundTripOptions::default()).await;
    report("postgres", &rt);
    assert_eq!(rt.status, RoundTripStatus::Pass);
    assert_eq!(rt.checks.len(), 1);
    assert_eq!(rt.checks[0].kind, TargetKind::File);
    assert_eq!(rt.checks[0].target.rel, "backup.sql");
    assert_eq!(rt.checks[0].state, Some(WitnessState::Intact));
    assert!(rt.checks[0].witness_len > 100, "a real dump: {:?}", rt.checks[0]);
    // The restore pre-hook ran between backup and restore (the row was gone
    // and another added), and the restore undid both.
    assert!(rt.log.contains("DELETE 1"), "{}", rt.log);
    assert_eq!(rows(&d, &s.name).await, "deleted-after-backup\nkept\n");
    // The restore post-hook consumed the dump.
    let out = sh(&d, &s.name, "db", "test ! -e /var/lib/postgresql/data/backup.sql").await;
    assert_eq!(out.exit_code, 0, "backup.sql is left behind");

    // A truncated dump after the restore: fail, and the post-hook is not
    // fed the damaged dump.
    let opts = RoundTripOptions {
        fault: Some(Fault::TruncateAfterRestore),
        ..Default::default()
    };
    let rt = round_trip(&d, &s.name, &repo(&s, "truncated"), &opts).await;
    report("postgres, dump truncated after restore", &rt);
    match &rt.status {
        RoundTripStatus::Fail(m) => {
            assert!(m.contains("/var/lib/postgresql/data/backup.sql: differs"), "{m}")
        }
        other => panic!("expected Fail, got {other:?}"),
    }
    assert!(rt.log.contains("backupbot.restore.post-hook skipped"), "{}", rt.log);
}

/// A sleeper with a named volume and the given extra labels.
fn sleeper(labels: &[&str]) -> String {
    let labels: String = labels.iter().map(|l| format!("        - {l:?}\n")).collect();
    format!(
        r#"
version: "3.8"
services:
  box:
    image: ccci/debian:bookworm
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    volumes:
      - data:/data
    deploy:
      endpoint_mode: dnsrr
      labels:
        - "x.unrelated=1"
{labels}volumes:
  data:
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_pre_hook_fails_naming_hook_and_exit_code() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    s.deploy_converged(
        &d,
        &sleeper(&[
            "backupbot.backup=true",
            "backupbot.backup.pre-hook=echo cannot dump >&2; exit 7",
        ]),
    )
    .await;
    let rt = round_trip(&d, &s.name, &repo(&s, "restic"), &RoundTripOptions::default()).await;
    report("pre-hook exit 7", &rt);
    match &rt.status {
        RoundTripStatus::Fail(m) => {
            assert!(
                m.starts_with("backupbot.backup.pre-hook of service box exited 7"),
                "{m}"
            );
            assert!(m.contains("cannot dump"), "{m}");
        }
        other => panic!("expected Fail, got {other:?}"),
    }
    assert!(rt.snapshots.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_labels_is_not_applicable_and_a_path_outside_volumes_fails() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let s = TestStack::new("b");
    s.deploy(&sleeper(&[]));
    assert_eq!(plan(&d, &s.name).await.expect("plan"), None);
    let rt = round_trip(&d, &s.name, &repo(&s, "restic"), &RoundTripOptions::default()).await;
    assert_eq!(rt.status, RoundTripStatus::NotApplicable(NOT_APPLICABLE.into()));
    assert!(!repo(&s, "restic").exists(), "nothing is made for an n/a rung");

    let s2 = TestStack::new("b");
    s2.deploy(&sleeper(&["backupbot.backup=true", "backupbot.backup.path=/etc/app"]));
    let rt = round_trip(&d, &s2.name, &repo(&s2, "restic"), &RoundTripOptions::default()).await;
    assert_eq!(
        rt.status,
        RoundTripStatus::Fail(
            "backupbot.backup.path /etc/app is not in a named volume of service box: it cannot be backed up; mount a named volume at (a parent of) that path, or fix the label".into()
        )
    );
}
