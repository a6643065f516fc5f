//! `ccci test` and `ccci report` as a user runs them: refused input, and
//! infrastructure faults that must give `error`, never `fail`. These runs
//! use `--deployer abra` on a PATH without abra, so that they end at the
//! install rung without deploying anything (the real deploys are in
//! `lifecycle.rs` and `faults.rs`).

use std::path::Path;
use std::process::{Command, Output};

use test_support::git;

/// A minimal recipe checkout with one annotated release.
fn recipe(root: &Path) -> std::path::PathBuf {
    let r = root.join("demo");
    std::fs::create_dir(&r).unwrap();
    std::fs::write(
        r.join(".env.sample"),
        "TYPE=demo\nDOMAIN=demo.example.com\nLETS_ENCRYPT_ENV=production\n",
    )
    .unwrap();
    std::fs::write(
        r.join("compose.yml"),
        "services:\n  app:\n    image: ccci/nginx:1.22.1\n    deploy:\n      labels:\n        - coop-cloud.${STACK_NAME}.version=1.0.0+1.22.1\n",
    )
    .unwrap();
    git(&r, &["init", "-q"]);
    git(&r, &["add", "."]);
    git(&r, &["commit", "-q", "-m", "one"]);
    git(&r, &["tag", "-a", "1.0.0+1.22.1", "-m", "release"]);
    r
}

fn ccci(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ccci"));
    c.args(args)
        .env("CCCI_STATE_DIR", root.join("state"))
        .env("CCCI_RESULTS_DIR", root.join("results"))
        .env("CCCI_RECIPES_DIR", root)
        .env("CCCI_SETTINGS_DIR", root.join("settings"))
        .env_remove("CCCI_ABRA")
        .env("CCCI_DEPLOYER", "abra")
        // No abra anywhere on this PATH.
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn results_of(root: &Path) -> serde_json::Value {
    let dir = root.join("results/demo");
    let run = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

#[test]
fn not_a_recipe_is_refused_before_anything_is_created() {
    let d = tempfile::tempdir().unwrap();
    let r = recipe(d.path());
    std::fs::remove_file(r.join(".env.sample")).unwrap();
    let out = ccci(d.path(), &["test", r.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".env.sample is missing") && err.contains("refused before anything was deployed"),
        "{err}"
    );

    std::fs::remove_file(r.join("compose.yml")).unwrap();
    std::fs::write(r.join(".env.sample"), "TYPE=demo\n").unwrap();
    let out = ccci(d.path(), &["test", "demo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("compose.yml is missing"), "{err}");
    assert!(
        !d.path().join("state").exists() && !d.path().join("results").exists(),
        "something was left behind"
    );
}

#[test]
fn missing_abra_is_an_error_not_a_fail() {
    let d = tempfile::tempdir().unwrap();
    recipe(d.path());
    let out = ccci(d.path(), &["test", "demo"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let r = results_of(d.path());
    assert_eq!(r["schema"], "cc-ci/results/v1");
    assert_eq!(r["rungs"][0]["rung"], "install");
    assert_eq!(r["rungs"][0]["status"], "error");
    assert_eq!(r["level"], 0);
    // Nothing that needs the app is blamed on the recipe (lint reads the
    // checkout alone, so it runs anyway).
    assert!(
        r["rungs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["rung"] != "lint")
            .all(|x| x["status"] != "fail" && x["status"] != "pass"),
        "{r}"
    );
    let reason = r["rungs"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot run abra") && reason.contains("--deployer native"),
        "{reason}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("LEVEL 0"), "{stdout}");
    let left: Vec<_> = ["state/runs", "state/leases"]
        .iter()
        .flat_map(|p| std::fs::read_dir(d.path().join(p)).into_iter().flatten())
        .collect();
    assert!(left.is_empty(), "the run folder and lease are gone: {left:?}");
    assert_eq!(r["settings"]["zero_config"], true, "{}", r["settings"]);
}

#[test]
fn recipe_settings_are_validated_before_anything_and_stored_masked() {
    let d = tempfile::tempdir().unwrap();
    recipe(d.path());
    let s = d.path().join("settings/demo");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(s.join("ccci.toml"), "[timeouts]\ndeploy = 60\ndeploi = 5\n").unwrap();
    let out = ccci(d.path(), &["test", "demo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ccci.toml") && err.contains(":3") && err.contains("deploi"),
        "{err}"
    );
    assert!(!d.path().join("results").exists());

    std::fs::write(
        s.join("ccci.toml"),
        "[env]\nADMIN_PASSWORD = \"hunter2hunter2\"\nGREETING = \"hello\"\n",
    )
    .unwrap();
    let out = ccci(d.path(), &["test", "demo"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let r = results_of(d.path());
    let text = r["settings"].to_string();
    assert!(!text.contains("hunter2"), "a secret reached results.json: {text}");
    assert!(text.contains("hello"), "{text}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
        "a secret reached the log"
    );
}

#[test]
fn unreachable_docker_is_an_error_naming_docker() {
    let d = tempfile::tempdir().unwrap();
    recipe(d.path());
    let out = ccci(
        d.path(),
        &["test", "demo"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = results_of(d.path());
    assert_eq!(r["rungs"][0]["status"], "error");
    let reason = r["rungs"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("Docker engine"), "{reason}");
}

#[test]
fn report_renders_a_results_file_and_refuses_garbage() {
    let d = tempfile::tempdir().unwrap();
    recipe(d.path());
    ccci(d.path(), &["test", "demo"], &[]);
    let dir = d.path().join("results/demo");
    let run = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let out = ccci(d.path(), &["report", run.join("results.json").to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("install    error"));
    std::fs::write(d.path().join("bad.json"), "{}").unwrap();
    let out = ccci(d.path(), &["report", d.path().join("bad.json").to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));

    // Every format, from the run folder itself.
    let folder = run.to_str().unwrap();
    let text = |format: &str| {
        let out = ccci(d.path(), &["report", "--format", format, folder], &[]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(text("markdown").contains("<!-- cc-ci:testme -->"));
    assert!(text("markdown").contains("git clone https://git.coopcloud.tech/coop-cloud/demo.git demo"));
    assert!(text("badge").contains(">level 0</text>"));
    let junit = text("junit");
    assert!(
        junit.contains(r#"<testcase name="1 install""#) && junit.contains("<error "),
        "{junit}"
    );
    let json: serde_json::Value = serde_json::from_str(&text("json")).unwrap();
    assert_eq!(json["recipe"], "demo");
    let card = d.path().join("out/card.png");
    std::fs::create_dir_all(card.parent().unwrap()).unwrap();
    let out = ccci(
        d.path(),
        &["report", "-f", "card", "-o", card.to_str().unwrap(), folder],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&card).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // 1200 x 630, from the IHDR chunk.
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1200);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 630);
    let out = ccci(d.path(), &["report", "-f", "html", folder], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junit, json"));
}
