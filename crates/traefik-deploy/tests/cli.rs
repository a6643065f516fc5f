//! traefik-deploy against the Traefik that scripts/host-up deployed with it:
//! a second run changes nothing (same service spec version, same task) and
//! exits 0 once 443 answers with the wildcard certificate; a domain whose
//! certificate secrets do not exist is refused, naming cert-install.

use std::process::{Command, Output};

use test_support::Component;

fn traefik_deploy(domain: &str, abra_dir: &std::path::Path) -> Output {
    let recipes = test_support::fixture_recipes();
    let version = test_support::git(&recipes.join("traefik"), &["tag", "--sort=-v:refname"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    Command::new(env!("CARGO_BIN_EXE_traefik-deploy"))
        .args(["--recipe-source"])
        .arg(recipes.join("traefik"))
        .args(["--version", &version, "--domain", domain, "--wait", "60"])
        .arg("--abra-dir")
        .arg(abra_dir)
        .arg("--ca-cert")
        .arg(test_support::test_keys().join("ca.crt"))
        .env("CCCI_DOCKER_CLI", "/usr/bin/docker")
        .env("CCCI_RESOLVE_IMAGE", "never")
        .output()
        .unwrap()
}

/// The Traefik service's spec version and its running task ids.
fn state(d: &bollard::Docker) -> (u64, Vec<String>) {
    test_support::rt().block_on(async {
        let s = d.inspect_service("traefik_ci_test_app", None).await.unwrap();
        let tasks = d
            .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
                filters: Some(std::collections::HashMap::from([
                    ("service".to_string(), vec!["traefik_ci_test_app".to_string()]),
                    ("desired-state".to_string(), vec!["running".to_string()]),
                ])),
            }))
            .await
            .unwrap();
        let mut ids: Vec<String> = tasks.into_iter().filter_map(|t| t.id).collect();
        ids.sort();
        (s.version.and_then(|v| v.index).unwrap(), ids)
    })
}

#[test]
fn a_second_run_changes_nothing_and_exits_0() {
    let Some(d) = test_support::docker_with(&[Component::TraefikStack, Component::FixtureImages]) else {
        return;
    };
    let before = state(&d);
    // The host's own Traefik app folder, as scripts/host-up used it.
    let abra_dir = test_support::cache_dir().join("traefik/abra");
    let out = traefik_deploy("traefik.ci.test", &abra_dir);
    let text = test_support::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("nothing to do"), "{text}");
    assert!(text.contains("under the wildcard certificate"), "{text}");
    assert_eq!(state(&d), before, "the service and its task are the same");
}

#[test]
fn no_certificate_secrets_is_refused_naming_cert_install() {
    let Some(_d) = test_support::docker_with(&[Component::Swarm]) else {
        return;
    };
    let abra_dir = tempfile::tempdir().unwrap();
    let domain = format!("traefik.{}.invalid", test_support::token());
    let out = traefik_deploy(&domain, abra_dir.path());
    let text = test_support::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("run cert-install first"), "{text}");
    assert!(
        std::fs::read_dir(abra_dir.path()).unwrap().next().is_none(),
        "nothing made before the refusal"
    );
}

#[test]
fn the_command_line_teaches() {
    let out = Command::new(env!("CARGO_BIN_EXE_traefik-deploy"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "--recipe-source",
        "--version",
        "--domain",
        "wildcard",
        "cert-install",
        "nothing to do",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}
