//! Per-recipe settings (`cc_ci::settings`): zero config, the shipped examples
//! under `tests/recipes/`, every kind of error with its file and line,
//! masking, and the approved list for a recipe's own code.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cc_ci::probe::serve::ExpectStatus;
use cc_ci::results::level::Rung;
use cc_ci::run::contract::TestEnv;
use cc_ci::settings::mask::{mask, MASK};
use cc_ci::settings::{Settings, SettingsError, UpgradeBase};

fn repo_recipes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/recipes")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    test_support::write_executable(path, text);
}

/// A settings root with `ccci.toml` = `toml` for recipe `r`.
fn root_with(toml: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("r/ccci.toml"), toml);
    d
}

fn error_of(toml: &str) -> SettingsError {
    let d = root_with(toml);
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, d.path().join("r/ccci.toml"), "{e}");
    assert!(e.to_string().contains("ccci.toml"), "the message names the file: {e}");
    e
}

#[test]
fn zero_config_defaults() {
    let d = tempfile::tempdir().unwrap();
    for setup in [false, true] {
        if setup {
            std::fs::create_dir(d.path().join("r")).unwrap(); // a folder without ccci.toml
        }
        let s = Settings::load(d.path(), "r").unwrap();
        assert!(s.file.is_none() && s.is_zero_config());
        assert_eq!(s.timeouts.deploy, Duration::from_secs(300));
        assert_eq!(s.timeouts.http, Duration::from_secs(60));
        assert_eq!(s.timeouts.scripts, Duration::from_secs(600));
        assert_eq!(s.upgrade_base, UpgradeBase::Previous);
        assert_eq!(s.serve_checks.len(), 1);
        assert_eq!(s.serve_checks[0].path, "/");
        assert_eq!(s.serve_checks[0].status, ExpectStatus::SuccessOrRedirect);
        assert!(s.env.is_empty() && s.checks.is_empty() && s.expect_na.is_empty());
        assert!(s.install_steps.is_none() && s.hooks.is_empty() && s.custom.is_empty() && s.overlay.is_none());
        assert!(!s.approved, "no approved.toml approves nobody");
        assert!(s.backup_capable(true) && !s.backup_capable(false), "detection decides");
        assert_eq!(s.declared_na(Rung::Restore), None);
        let m = s.manifest();
        assert_eq!(m["zero_config"], true);
        assert_eq!(m["upgrade"]["base"], "previous");
        assert_eq!(m["serve_checks"][0]["status"], "2xx or 3xx");
        assert!(m["defaulted"].as_array().unwrap().contains(&"timeouts.deploy".into()));
        assert!(s.describe().contains("zero config"), "{}", s.describe());
    }
}

#[test]
fn the_shipped_examples_load() {
    let root = repo_recipes();
    let s = Settings::load(&root, "static-site").unwrap();
    assert!(s.file.is_some());
    assert_eq!(s.timeouts.deploy, Duration::from_secs(120));
    let front = &s.serve_checks[0];
    assert_eq!(front.status, ExpectStatus::AnyOf(vec![200]));
    assert!(front.title.as_ref().unwrap().is_match("Welcome to ccci/nginx"));
    assert!(!front.title.as_ref().unwrap().is_match("Welcome to nginx!"));
    // After the upgrade (1.1.0 brings default.conf): /healthz, then nginx's own 404.
    assert_eq!(s.checks[&Rung::Upgrade][0].path, "/healthz");
    assert_eq!(s.checks[&Rung::Upgrade][1].status, ExpectStatus::AnyOf(vec![404]));
    assert_eq!(s.custom, vec![root.join("static-site/custom/front-page-https")]);
    println!("{}", s.describe());

    let w = Settings::load(&root, "webapp-pg").unwrap();
    assert!(w.serve_checks[0].title.as_ref().unwrap().is_match("ccci webapp 1.1.0"));
    assert!(w.checks.contains_key(&Rung::Upgrade) && w.checks.contains_key(&Rung::Restore));
    assert_eq!(w.hooks[&Rung::Upgrade], root.join("webapp-pg/hooks/pre-upgrade"));
    assert_eq!(w.custom, vec![root.join("webapp-pg/custom/database-round-trip")]);
    assert_eq!(w.manifest()["hooks"]["upgrade"], "hooks/pre-upgrade");
    assert!(!w.approved, "the shipped approved list is empty");
    println!("{}", w.describe());
}

#[test]
fn a_full_file_resolves() {
    let d = root_with(
        r#"[timeouts]
deploy = 45.5
[env]
SITE_TITLE = "cc-ci"
[upgrade]
base = "1.0.0+1.22.1"
[upgrade.env]
NEW_FLAG = "1"
[[serve.checks]]
path = "/login?next=/"
status = [200, 302]
[[checks.restore]]
path = "/health"
[backup]
capable = false
reason = "data is rebuilt on start"
[expect_na]
serve = "no web interface"
[limits]
memory = "1536m"
reason = "a JVM"
"#,
    );
    let s = Settings::load(d.path(), "r").unwrap();
    assert_eq!(s.timeouts.deploy, Duration::from_secs_f64(45.5));
    assert_eq!(
        (s.limits.nano_cpus, s.limits.memory_bytes),
        (1_000_000_000, 1536 << 20),
        "cpus stay 1"
    );
    assert_eq!(s.upgrade_base, UpgradeBase::Pinned("1.0.0+1.22.1".into()));
    assert_eq!(s.serve_checks[0].status, ExpectStatus::AnyOf(vec![200, 302]));
    assert_eq!(s.checks[&Rung::Restore][0].status, ExpectStatus::SuccessOrRedirect);
    assert!(!s.backup_capable(true));
    assert!(s.declared_na(Rung::Restore).unwrap().contains("rebuilt"));
    assert_eq!(s.declared_na(Rung::Serve).as_deref(), Some("no web interface"));
    assert_eq!(s.env.get("SITE_TITLE").map(String::as_str), Some("cc-ci"));
    assert_eq!(s.upgrade_env.get("NEW_FLAG").map(String::as_str), Some("1"));
    let defaulted = s.manifest()["defaulted"].clone();
    assert_eq!(defaulted, serde_json::json!(["timeouts.http", "timeouts.scripts"]));

    let d = root_with("[upgrade]\nskip = \"the first release\"\n");
    let s = Settings::load(d.path(), "r").unwrap();
    assert!(s.declared_na(Rung::Upgrade).unwrap().contains("the first release"));
}

#[test]
fn typo_key_names_line_and_key() {
    let e = error_of("[timeouts]\ndeploy = 10\nhtpp = 5\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("htpp") && e.message.contains("README"), "{e}");
    let e = error_of("[serve]\n[[serve.checks]]\npath = \"/\"\ntitel = \"x\"\n");
    assert_eq!(e.line, Some(4), "{e}");
    let e = error_of("\n[backups]\ncapable = false\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn wrong_type_names_line() {
    let e = error_of("[timeouts]\ndeploy = \"5m\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[env]\nA = \"1\"\nPORT = 8080\n");
    assert_eq!(e.line, Some(3), "{e}");
    let e = error_of("[[serve.checks]]\nstatus = 200\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[backup]\ncapable = \"no\"\nreason = \"x\"\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn bad_values_name_line_and_fix() {
    let e = error_of("[[serve.checks]]\npath = \"/\"\ntitle = \"Welcome (\"\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("regex"), "{e}");
    let e = error_of("[[checks.upgrade]]\nstatus = [200,\n  700]\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("700") && e.message.contains("100-599"), "{e}");
    let e = error_of("[[serve.checks]]\nstatus = []\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[timeouts]\nhttp = 0\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[[serve.checks]]\npath = \"health\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[upgrade]\nbase = \"latest\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("previous"), "{e}");
    let e = error_of("[env]\nDOMAIN = \"x.ci.test\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("cc-ci sets it"), "{e}");
    // Values no env-file quoting keeps are refused here, naming the key,
    // before anything is written into an app's env file.
    let e = error_of("[env]\nA = \"1\"\nSITE_TITLE = \"two\\nlines\"\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(
        e.message.starts_with("[env] SITE_TITLE: the value holds a line break"),
        "{e}"
    );
    let e = error_of("[upgrade.env]\nQUOTE = \"it's \\\"x\\\"\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.message
            .starts_with("[upgrade.env] QUOTE: the value holds a `'` together with"),
        "{e}"
    );
    let e = error_of("[[checks.backup]]\npath = \"/\"\n");
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.message.contains("restore"), "{e}");
    let e = error_of("[expect_na]\ninstall = \"never\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[backup]\ncapable = false\nreason = \"\"\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn allowances_and_limits_resolve_with_their_reasons() {
    use cc_ci::recipe::confine::Kind;
    let d = root_with(
        r#"[allow]
privileged = "the image needs it until 2.0"
[allow.bind_mounts]
"/var/run/docker.sock" = "Traefik reads the services from the Docker API"
[allow.cap_add]
cap_net_admin = "it routes"
[allow.host_modes]
network_mode = "a VPN"
[allow.traefik_hosts]
"*" = "the Traefik recipe routes every host"
[limits]
cpus = 2
memory = "2g"
reason = "the search index is built at start"
"#,
    );
    let s = Settings::load(d.path(), "r").unwrap();
    assert_eq!(
        s.allow.reason(Kind::Privileged, ""),
        Some("the image needs it until 2.0")
    );
    assert!(s.allow.reason(Kind::BindMount, "/var/run/docker.sock").is_some());
    assert!(s.allow.reason(Kind::BindMount, "/etc").is_none(), "by name only");
    assert_eq!(s.allow.reason(Kind::CapAdd, "NET_ADMIN"), Some("it routes"));
    assert!(
        s.allow.reason(Kind::TraefikHost, "example.org").is_some(),
        "* covers every host"
    );
    assert_eq!((s.limits.nano_cpus, s.limits.memory_bytes), (2_000_000_000, 2 << 30));
    let m = s.manifest();
    assert_eq!(m["allow"]["privileged"], "the image needs it until 2.0");
    assert_eq!(m["allow"]["cap_add"]["NET_ADMIN"], "it routes");
    assert_eq!(m["limits"]["memory"], "2 GiB");
    assert_eq!(m["limits"]["reason"], "the search index is built at start");
    assert!(!m["defaulted"].as_array().unwrap().contains(&"limits".into()));
    let text = s.describe();
    assert!(
        text.contains("2 CPUs and 2 GiB per service: the search index")
            && text.contains("bind_mounts /var/run/docker.sock: Traefik"),
        "{text}"
    );
    // Zero config: nothing allowed, 1 CPU and 1 GiB per service.
    let z = Settings::load(d.path(), "other").unwrap();
    assert!(z.allow.is_empty());
    assert_eq!(z.limits, Default::default());
    assert_eq!(z.manifest()["limits"]["cpus"], 1.0);
    assert!(
        z.describe().contains("1 CPU and 1 GiB per service (default)"),
        "{}",
        z.describe()
    );
}

#[test]
fn allowances_and_limits_errors_name_line_and_fix() {
    let e = error_of("[allow]\nprivileged = \"\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("needs a reason"), "{e}");
    let e = error_of("[allow.bind_mounts]\n\"/etc\" = \"   \"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("allow.bind_mounts \"/etc\" needs a reason"), "{e}");
    let e = error_of("[allow]\ndocker_socket = \"x\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.message.contains("docker_socket") && e.message.contains("bind_mounts"),
        "the keys are listed: {e}"
    );
    let e = error_of("[allow]\nprivileged = true\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[allow.host_modes]\nnetwork = \"x\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("network_mode"), "{e}");
    let e = error_of("\n[limits]\ncpus = 2\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("needs a reason"), "{e}");
    let e = error_of("[limits]\ncpus = 0\nreason = \"x\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = error_of("[limits]\nmemory = \"2 gigs\"\nreason = \"x\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("\"2g\""), "{e}");
    let e = error_of("[limits]\nmemory = \"1m\"\nreason = \"x\"\n");
    assert!(e.message.contains("6 MiB"), "{e}");
}

#[test]
fn upgrade_base_and_skip_together_is_an_error() {
    let e = error_of("[upgrade]\nbase = \"previous\"\n# why\nskip = \"no older release\"\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("line 2"), "names the other line too: {e}");
    let e = error_of("[upgrade]\nskip = \"first release\"\n[expect_na]\nupgrade = \"again\"\n");
    assert_eq!(e.line, Some(4), "{e}");
    let e = error_of("[upgrade]\nskip = \"first release\"\n[upgrade.env]\nA = \"1\"\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn missing_referenced_file_and_undeclared_overlay() {
    // [overlay] declared, compose.ccci.yml missing: the line of [overlay].
    let e = error_of("[timeouts]\ndeploy = 10\n\n[overlay]\nreason = \"needs /tmp\"\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("compose.ccci.yml"), "{e}");
    // The reverse: an overlay nobody declared.
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("r/compose.ccci.yml"), "services: {}\n");
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, d.path().join("r/compose.ccci.yml"), "{e}");
    assert!(e.message.contains("[overlay]"), "{e}");
    // Declared and present: in force; applied onto COMPOSE_FILE.
    write(&d.path().join("r/ccci.toml"), "[overlay]\nreason = \"needs /tmp\"\n");
    let s = Settings::load(d.path(), "r").unwrap();
    assert_eq!(s.overlay.as_ref().unwrap().reason, "needs /tmp");
    let checkout = tempfile::tempdir().unwrap();
    let mut env = cc_ci::recipe::env_file::EnvFile::default();
    env.set("COMPOSE_FILE", "compose.yml:compose.smtp.yml", None);
    assert!(s.apply_overlay(checkout.path(), &mut env).unwrap());
    assert_eq!(
        env.get("COMPOSE_FILE"),
        Some("compose.yml:compose.smtp.yml:compose.ccci.yml")
    );
    assert!(checkout.path().join("compose.ccci.yml").is_file());
    // An overlay that is not YAML names its line.
    write(
        &d.path().join("r/compose.ccci.yml"),
        "services:\n  app:\n    image: [x\n",
    );
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, d.path().join("r/compose.ccci.yml"));
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn executables_must_be_executable_and_well_named() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("r");
    write_exec(&r.join("custom/b-smoke"), "#!/bin/sh\n");
    write_exec(&r.join("custom/a-first.py"), "#!/usr/bin/env python3\n");
    write(&r.join("custom/lib/helpers.sh"), "# helper, not a test\n");
    write(&r.join("custom/.gitkeep"), "");
    write_exec(&r.join("hooks/pre-restore"), "#!/bin/sh\n");
    write_exec(&r.join("install-steps"), "#!/bin/sh\n");
    write(&r.join("README.md"), "notes\n");
    let s = Settings::load(d.path(), "r").unwrap();
    assert_eq!(s.custom, vec![r.join("custom/a-first.py"), r.join("custom/b-smoke")]);
    assert_eq!(s.hooks[&Rung::Restore], r.join("hooks/pre-restore"));
    assert_eq!(s.install_steps, Some(r.join("install-steps")));
    assert!(!s.is_zero_config());
    assert!(
        s.describe().contains("custom/a-first.py, custom/b-smoke"),
        "{}",
        s.describe()
    );

    // A custom test without +x.
    write(&r.join("custom/c-forgot"), "#!/bin/sh\n");
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, r.join("custom/c-forgot"), "{e}");
    assert!(e.message.contains("chmod +x"), "{e}");
    std::fs::remove_file(r.join("custom/c-forgot")).unwrap();

    // install-steps without +x.
    std::fs::set_permissions(r.join("install-steps"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, r.join("install-steps"), "{e}");
    assert!(e.message.contains("chmod +x"), "{e}");
    write_exec(&r.join("install-steps"), "#!/bin/sh\n");

    // A misnamed hook, and pre-install.
    for bad in ["pre-upgrade.sh", "pre-install", "post-serve"] {
        write_exec(&r.join("hooks").join(bad), "#!/bin/sh\n");
        let e = Settings::load(d.path(), "r").unwrap_err();
        assert_eq!(e.file, r.join("hooks").join(bad), "{e}");
        assert!(e.message.contains("pre-<rung>"), "{e}");
        std::fs::remove_file(r.join("hooks").join(bad)).unwrap();
    }

    // A misnamed file next to ccci.toml.
    write_exec(&r.join("install_steps.sh"), "#!/bin/sh\n");
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.file, r.join("install_steps.sh"), "{e}");
    assert!(e.message.contains("did you mean install-steps"), "{e}");
    std::fs::remove_file(r.join("install_steps.sh")).unwrap();
    Settings::load(d.path(), "r").unwrap();
}

#[test]
fn secrets_are_masked_in_manifest_and_description() {
    const TOKEN: &str = "Zq8vN3xR7tLm2KpW9sYc4HbJ6dFg1AeU5oIi0TnQ";
    assert_eq!(TOKEN.len(), 40);
    let d = root_with(&format!(
        "[env]\nDB_PASSWORD = \"hunter2\"\nWEBHOOK = \"{TOKEN}\"\nSITE_DOMAIN = \"x.ci.test\"\n\
         [upgrade.env]\nsmtp_Auth = \"plain\"\n"
    ));
    let s = Settings::load(d.path(), "r").unwrap();
    assert_eq!(s.env["DB_PASSWORD"], "hunter2", "the settings keep the real values");
    let m = s.manifest();
    assert_eq!(m["env"]["DB_PASSWORD"], MASK);
    assert_eq!(m["env"]["WEBHOOK"], MASK);
    assert_eq!(m["env"]["SITE_DOMAIN"], "x.ci.test");
    assert_eq!(m["upgrade"]["env"]["smtp_Auth"], MASK);
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains(TOKEN) && !text.contains("plain"),
        "{text}"
    );
    let desc = s.describe();
    assert!(!desc.contains("hunter2") && !desc.contains(TOKEN), "{desc}");
    assert!(
        desc.contains("DB_PASSWORD=***") && desc.contains("SITE_DOMAIN=x.ci.test"),
        "{desc}"
    );

    let mut v = serde_json::json!({"DOMAIN": "x.ci.test", "DB_PASSWORD": "hunter2", "t": TOKEN});
    mask(&mut v);
    assert_eq!(
        v,
        serde_json::json!({"DOMAIN": "x.ci.test", "DB_PASSWORD": MASK, "t": MASK})
    );
}

#[test]
fn repo_local_code_runs_only_when_approved() {
    let d = tempfile::tempdir().unwrap();
    let checkout = tempfile::tempdir().unwrap();
    write_exec(&checkout.path().join("tests/ccci/custom/own-test"), "#!/bin/sh\n");
    write_exec(&checkout.path().join("tests/ccci/hooks/pre-serve"), "#!/bin/sh\n");

    // Not approved (no list, then a list without it): ignored, and the manifest says why.
    for list in [None, Some("approved = [\"other\"]\n")] {
        if let Some(l) = list {
            write(&d.path().join("approved.toml"), l);
        }
        let mut s = Settings::load(d.path(), "r").unwrap();
        assert!(!s.approved);
        let rl = s.repo_local(checkout.path()).unwrap();
        assert!(rl.present && !rl.used, "{rl:?}");
        assert!(rl.custom.is_empty() && rl.hooks.is_empty());
        assert!(rl.reason.contains("not on the approved list"), "{}", rl.reason);
        let m = s.manifest();
        assert_eq!(m["repo_local"]["used"], false);
        assert!(m["repo_local"]["reason"].as_str().unwrap().contains("ignored"));
        assert!(s.describe().contains("not used: ignored"), "{}", s.describe());
    }

    // Approved: used, its executables found.
    write(
        &d.path().join("approved.toml"),
        "# reviewed\napproved = [\"other\", \"r\"]\n",
    );
    let mut s = Settings::load(d.path(), "r").unwrap();
    assert!(s.approved);
    let rl = s.repo_local(checkout.path()).unwrap();
    assert!(rl.used, "{rl:?}");
    assert_eq!(rl.custom, vec![checkout.path().join("tests/ccci/custom/own-test")]);
    assert_eq!(
        rl.hooks[&Rung::Serve],
        checkout.path().join("tests/ccci/hooks/pre-serve")
    );
    let m = s.manifest();
    assert_eq!(m["repo_local"]["used"], true);
    assert_eq!(m["repo_local"]["custom_tests"][0], "custom/own-test");

    // Approved code is held to the same rules.
    write(&checkout.path().join("tests/ccci/custom/not-exec"), "#!/bin/sh\n");
    let e = s.repo_local(checkout.path()).unwrap_err();
    assert!(e.message.contains("chmod +x"), "{e}");

    // A recipe without the folder.
    let empty = tempfile::tempdir().unwrap();
    let rl = s.repo_local(empty.path()).unwrap();
    assert!(!rl.present && !rl.used && rl.reason.contains("no tests/ccci"));

    // The approved list's own errors name its line.
    write(&d.path().join("approved.toml"), "approved = [\"r\"]\napprove = []\n");
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(
        (e.file.clone(), e.line),
        (d.path().join("approved.toml"), Some(2)),
        "{e}"
    );
    write(&d.path().join("approved.toml"), "approved = [\n\"r\",\n\"r\"]\n");
    let e = Settings::load(d.path(), "r").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn every_settings_folder_in_the_repo_loads() {
    let root = repo_recipes();
    let mut n = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            let name = e.file_name().to_string_lossy().into_owned();
            Settings::load(&root, &name).unwrap_or_else(|err| panic!("{err}"));
            n += 1;
        }
    }
    assert!(n >= 2, "static-site and webapp-pg at least");
}

#[test]
fn the_shipped_approved_list_parses() {
    let root = repo_recipes();
    assert!(root.join("approved.toml").is_file());
    // Loading any recipe reads and validates approved.toml.
    Settings::load(&root, "no-such-recipe").unwrap();
}

#[test]
fn recipe_names_cannot_escape_the_root() {
    let d = tempfile::tempdir().unwrap();
    for bad in ["../etc", "a/b", "", ".hidden"] {
        assert!(Settings::load(d.path(), bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_contract_variables() {
    let d = tempfile::tempdir().unwrap();
    let env = TestEnv {
        recipe: "webapp-pg".into(),
        domain: "webapp-pg-1a2b3c.ci.test".into(),
        stack: "webapp-pg-1a2b3c_ci_test".into(),
        abra_dir: d.path().join("abra"),
        ca_cert: d.path().join("ca.crt"),
        results_dir: d.path().join("results"),
        traefik: "127.0.0.1:443".parse().unwrap(),
        settings_dir: d.path().join("settings"),
        recipe_dir: d.path().join("checkout"),
    };
    let vars = env.vars(Rung::Tested, "database round trip");
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    assert_eq!(get("CCCI_APP_DOMAIN"), "webapp-pg-1a2b3c.ci.test");
    assert_eq!(get("CCCI_APP_URL"), "https://webapp-pg-1a2b3c.ci.test/");
    assert_eq!(get("CCCI_STACK"), "webapp-pg-1a2b3c_ci_test");
    assert_eq!(get("ABRA_DIR"), d.path().join("abra").display().to_string());
    assert_eq!(get("CCCI_CA_CERT"), d.path().join("ca.crt").display().to_string());
    assert_eq!(get("CCCI_RECIPE"), "webapp-pg");
    assert_eq!(get("CCCI_RUNG"), "tested");
    assert_eq!(get("CCCI_RESULTS_DIR"), d.path().join("results").display().to_string());
    assert_eq!(
        get("CCCI_JUNIT_OUT"),
        d.path()
            .join("results/junit/tested-database_round_trip.xml")
            .display()
            .to_string()
    );
    assert_eq!(get("CCCI_TRAEFIK_HOST"), "127.0.0.1");
    assert_eq!(get("CCCI_TRAEFIK_PORT"), "443");
    let other = TestEnv {
        traefik: "127.0.0.1:8443".parse().unwrap(),
        ..env
    };
    assert_eq!(other.app_url(), "https://webapp-pg-1a2b3c.ci.test:8443/");
}
