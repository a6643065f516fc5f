//! `ccci test` and `ccci report` as a user runs them: refused input, and
//! infrastructure faults that must give `error`, never `fail`. These runs
//! use `--deployer abra` on a PATH without abra, so that they end at the
//! install rung without deploying anything (the real deploys are in
//! `lifecycle.rs` and `faults.rs`). Then `ccci lint` and `ccci plan` on the
//! fixture recipes and variants of them, without Docker.

mod ccci_run;

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

// ---- ccci lint, ccci plan ---------------------------------------------------

/// `ccci <args>` with `env`, the recipes under `recipes`, this repository's
/// settings, and state and results folders under `root` that must stay absent.
fn tool(root: &Path, recipes: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ccci"));
    c.args(args)
        .env("CCCI_RECIPES_DIR", recipes)
        .env("CCCI_SETTINGS_DIR", test_support::workspace().join("tests/recipes"))
        .env("CCCI_STATE_DIR", root.join("state"))
        .env("CCCI_RESULTS_DIR", root.join("results"))
        .env_remove("CCCI_DEPLOYER")
        .env_remove("CCCI_VIP");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The cells of the lint table's row for `reference`.
fn lint_row(table: &str, reference: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{reference} ")))
        .unwrap_or_else(|| panic!("no row {reference} in:\n{table}"));
    line.split(" | ").map(|c| c.trim().to_string()).collect()
}

#[test]
fn lint_of_a_clean_recipe_exits_0_with_abras_table_and_network_rules_not_checked() {
    let d = tempfile::tempdir().unwrap();
    let recipes = test_support::fixture_recipes();
    let out = tool(d.path(), &recipes, &["lint", "webapp-pg"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("ref  | rule"), "{text}");
    for r in ["R001", "R008", "R009", "R010", "R011", "R012", "R014", "R015"] {
        assert_eq!(lint_row(&text, r)[3], "yes", "{r} is satisfied:\n{text}");
    }
    // The network rules: never satisfied, said to be not checked.
    for r in ["R006", "R013"] {
        let row = lint_row(&text, r);
        assert_eq!((row[3].as_str(), row[4].as_str()), ("-", "yes"), "{r}:\n{text}");
        assert!(text.contains(&format!("{r} skipped: needs the network")), "{text}");
    }
    assert!(
        text.contains("errors: none;") && text.contains("not checked: R006, R013"),
        "{text}"
    );
    assert!(!text.contains("critical errors"), "{text}");

    let out = tool(d.path(), &recipes, &["lint", "--format", "json", "webapp-pg"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["recipe"], "webapp-pg");
    assert_eq!(j["passed"], true);
    assert_eq!(j["not_checked"], serde_json::json!(["R006", "R013"]));
    let r006 = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ref"] == "R006")
        .unwrap();
    assert_eq!(r006["outcome"], "not-checked", "{r006}");
    assert_eq!(j["findings"].as_array().unwrap().len(), 15);
}

#[test]
fn lint_error_level_rule_exits_1_and_names_the_rule() {
    // The canary "lint error (R012)": a config named with a version that
    // abra.sh does not vendor.
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        let rel = releases.join("1.1.0+1.22.1");
        let compose = rel.join("compose.yml");
        ccci_run::edit(
            &compose,
            "        target: /etc/nginx/conf.d/default.conf\n",
            "        target: /etc/nginx/conf.d/default.conf\n      - source: motd\n        target: /etc/motd\n",
        );
        ccci_run::edit(
            &compose,
            "    template_driver: golang\n",
            "    template_driver: golang\n  motd:\n    name: ${STACK_NAME}_motd_${MOTD_VERSION:-v1}\n    file: motd.txt\n",
        );
        std::fs::write(rel.join("motd.txt"), "welcome\n").unwrap();
    });
    let d = tempfile::tempdir().unwrap();
    let out = tool(d.path(), &v.recipes, &["lint", "tmpl-site"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_eq!(lint_row(&text, "R012")[3], "no", "{text}");
    assert!(
        text.contains("R012 failed: ") && text.contains("MOTD_VERSION"),
        "{text}"
    );
    assert!(text.contains("errors: R012;") && text.contains("exit 1"), "{text}");

    let out = tool(d.path(), &v.recipes, &["lint", "-f", "json", "tmpl-site"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["errors"], serde_json::json!(["R012"]), "{j}");
}

#[test]
fn lint_and_plan_refuse_what_is_not_a_recipe_with_2() {
    let d = tempfile::tempdir().unwrap();
    let r = recipe(d.path());
    std::fs::remove_file(r.join(".env.sample")).unwrap();
    for cmd in ["lint", "plan"] {
        let out = tool(d.path(), d.path(), &[cmd, r.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(".env.sample is missing") && err.contains("demo"),
            "{cmd}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{cmd}");
    }
    let out = tool(d.path(), d.path(), &["lint", "nothing-here"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("nothing-here is not a recipe: no such folder") && err.contains("--recipes-dir"),
        "{err}"
    );
    // A folder without compose.yml.
    std::fs::write(r.join(".env.sample"), "TYPE=demo\n").unwrap();
    std::fs::remove_file(r.join("compose.yml")).unwrap();
    let out = tool(d.path(), d.path(), &["plan", "demo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("compose.yml is missing"), "{}", stderr(&out));
}

#[test]
fn plan_shows_the_base_services_and_secrets_without_values() {
    let d = tempfile::tempdir().unwrap();
    let recipes = test_support::fixture_recipes();
    // The repository's settings of webapp-pg, with a secret-looking [env] value added.
    let settings = d.path().join("settings");
    std::fs::create_dir_all(settings.join("webapp-pg")).unwrap();
    let toml = std::fs::read_to_string(test_support::workspace().join("tests/recipes/webapp-pg/ccci.toml")).unwrap();
    std::fs::write(
        settings.join("webapp-pg/ccci.toml"),
        format!("[env]\nADMIN_PASSWORD = \"hunter2hunter2\"\n\n{toml}"),
    )
    .unwrap();
    let env = [("CCCI_SETTINGS_DIR", settings.to_str().unwrap())];
    let out = tool(d.path(), &recipes, &["plan", "--vip", "dnsrr", "webapp-pg"], &env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for want in [
        "version 1.1.0+1.1.0",
        "a release (tag 1.1.0+1.1.0)",
        "upgrade          from 1.0.0+1.0.0 (commit ",
        "install          1.0.0+1.0.0",
        "version 1.0.0+1.0.0 (the upgrade base)",
        "(the tested commit)",
        "ccci/webapp:1.0.0",
        "ccci/webapp:1.1.0",
        "ccci/postgres:15",
        "db_password v1: 32 alphanumeric characters",
        "settings for webapp-pg: ",
        "webapp-pg/ccci.toml",
        "defaulted",
        "limits 1 CPU, 1 GiB",
        "deploy.endpoint_mode: dnsrr for services without published ports: app",
        "nothing leaves the test app",
        "would go ahead: exit 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("hunter2"), "a secret value was printed:\n{text}");

    let out = tool(d.path(), &recipes, &["plan", "-f", "json", "webapp-pg"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let raw = stdout(&out);
    assert!(!raw.contains("hunter2"), "a secret value was printed: {raw}");
    let j: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(j["upgrade"]["base"], "1.0.0+1.0.0");
    assert_eq!(j["tested"]["ref_kind"]["kind"], "release");
    let versions = j["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{j}");
    for v in versions {
        let secrets = v["deploy"]["secrets"].as_array().unwrap();
        assert_eq!(secrets.len(), 1, "{v}");
        assert_eq!(secrets[0]["id"], "db_password");
        assert_eq!(
            (secrets[0]["kind"].as_str(), secrets[0]["length"].as_u64()),
            (Some("password"), Some(32))
        );
        let services: Vec<&str> = v["deploy"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["app", "db"]);
    }
    assert_eq!(j["refused"], serde_json::Value::Null);
    assert!(
        !d.path().join("state").exists() && !d.path().join("results").exists(),
        "plan wrote something"
    );
}

#[test]
fn plan_refuses_a_docker_socket_mount_with_2_naming_the_file() {
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        ccci_run::edit(
            &releases.join("1.1.0+1.22.1/compose.yml"),
            "      - content:/usr/share/nginx/html\n",
            "      - content:/usr/share/nginx/html\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n",
        );
    });
    let d = tempfile::tempdir().unwrap();
    let out = tool(d.path(), &v.recipes, &["plan", "tmpl-site"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("would refuse this recipe")
            && err.contains("(the tested commit): compose.yml: services.app.volumes[1]: bind mount of the host path /var/run/docker.sock")
            && err.contains("tests/recipes/tmpl-site/ccci.toml")
            && err.contains("\"/var/run/docker.sock\" = \"<why"),
        "{err}"
    );
    // The plan is still shown: the base is confined, the tested commit is not.
    let text = stdout(&out);
    assert!(text.contains("REFUSED") && text.contains("exit 2"), "{text}");
    assert!(text.contains("nothing leaves the test app"), "the base: {text}");
    let out = tool(d.path(), &v.recipes, &["plan", "-f", "json", "tmpl-site"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["versions"][1]["refused"][0]["subject"], "/var/run/docker.sock", "{j}");
    assert_eq!(j["exit"], 2);
}

#[test]
fn lint_and_plan_never_touch_docker() {
    let d = tempfile::tempdir().unwrap();
    let recipes = test_support::fixture_recipes();
    // A docker CLI that leaves a mark, first on PATH and named by CCCI_DOCKER_CLI.
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let mark = d.path().join("docker-was-run");
    let fake = bin.join("docker");
    test_support::write_executable(&fake, &format!("#!/bin/sh\ntouch {}\nexit 1\n", mark.display()));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // An engine socket that nothing may connect to.
    let sock = d.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listening = format!("unix://{}", sock.display());
    for host in ["unix:///nonexistent/docker.sock", listening.as_str()] {
        let env = [
            ("DOCKER_HOST", host),
            ("PATH", path.as_str()),
            ("CCCI_DOCKER_CLI", fake.to_str().unwrap()),
        ];
        for args in [
            &["lint", "webapp-pg"][..],
            &["plan", "webapp-pg"],
            &["plan", "--vip", "auto", "-f", "json", "webapp-pg"],
        ] {
            let out = tool(d.path(), &recipes, args, &env);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?} with {host}: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(_) => panic!("something connected to the Docker engine socket"),
        Err(e) => panic!("{e}"),
    }
    assert!(!mark.exists(), "the docker CLI was run");
    assert!(!d.path().join("state").exists() && !d.path().join("results").exists());
}
