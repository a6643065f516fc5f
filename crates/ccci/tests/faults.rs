//! Bad input and faults, each on the real swarm with a variant of the
//! tmpl-site fixture recipe made for it: each run ends on the right rung
//! with a clear reason, `fail` when the recipe is at fault and `error` when
//! the infrastructure is, and nothing of the app is left behind (the stack
//! module's clean-up proof). Docker stopping mid-run is in `docker_stop.rs`
//! (run on its own: it stops the engine); the regression canaries, one
//! fixture per guard of the ladder, are in `canaries.rs`.

mod ccci_run;

use ccci_run::{each_release, edit, leftovers, Ccci};
use test_support::Component;

fn ready() -> bool {
    test_support::need(Component::Swarm) && test_support::need(Component::FixtureImages)
}

/// Runs the variant zero-config; returns (exit code, results, rung `rung`).
fn run(v: &test_support::Fixture, rung: &str) -> (Option<i32>, serde_json::Value, serde_json::Value) {
    let c = Ccci::zero_config(&v.recipes);
    let out = c.test("tmpl-site", &[]);
    let r = c.results("tmpl-site");
    let x = r["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rung"] == rung)
        .cloned()
        .unwrap();
    let stack = r["app"]["stack"].as_str().unwrap();
    assert_eq!(
        leftovers(stack),
        Vec::<String>::new(),
        "{}",
        test_support::output_text(&out)
    );
    assert_eq!(r["clean_teardown"], true);
    (out.status.code(), r, x)
}

#[test]
fn a_compose_file_that_does_not_parse_fails_the_upgrade_naming_file_and_line() {
    if !ready() || !test_support::need(Component::TraefikStack) {
        return;
    }
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        edit(
            &releases.join("1.1.0+1.22.1/compose.yml"),
            "    networks:\n      - proxy\n",
            "    networks: [proxy\n",
        );
    });
    let (code, r, upgrade) = run(&v, "upgrade");
    assert_eq!(code, Some(1));
    assert_eq!(upgrade["status"], "fail", "{upgrade}");
    let why = upgrade["reason"].as_str().unwrap();
    assert!(
        why.contains("compose.yml:") && why.contains("fix the compose file"),
        "{why}"
    );
    assert_eq!(r["rungs"][0]["status"], "pass", "the base installs");
    assert_eq!(
        r["rungs"][4]["status"], "fail",
        "lint cannot read it either: {}",
        r["rungs"][4]
    );
    assert_eq!(r["level"], 2);
}

#[test]
fn compose_file_naming_a_missing_file_fails_the_install() {
    if !ready() {
        return;
    }
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        each_release(releases, |rel| {
            edit(
                &rel.join(".env.sample"),
                "TYPE=tmpl-site\n",
                "TYPE=tmpl-site\nCOMPOSE_FILE=\"compose.yml:compose.gone.yml\"\n",
            )
        });
    });
    let (code, r, install) = run(&v, "install");
    assert_eq!(code, Some(1));
    assert_eq!(install["status"], "fail", "{install}");
    let why = install["reason"].as_str().unwrap();
    assert!(why.contains("COMPOSE_FILE names compose.gone.yml"), "{why}");
    assert_eq!(r["level"], 0);
}

/// An image the host lacks and cannot pull (here: `--resolve-image never`,
/// no registry) is the recipe's: the install fails before anything of the
/// app exists, naming the service, the image and the fix, in seconds rather
/// than after Swarm rejected five tasks (the figure is printed, not asserted).
#[test]
fn an_image_that_cannot_be_had_fails_the_install_before_anything_deploys() {
    if !ready() {
        return;
    }
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        each_release(releases, |rel| {
            edit(
                &rel.join("compose.yml"),
                "image: ccci/nginx:1.22.1",
                "image: ccci/not-built-here:1.0.0",
            )
        });
    });
    let (code, r, install) = run(&v, "install");
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(install["status"], "fail", "{install}");
    let why = install["reason"].as_str().unwrap();
    eprintln!(
        "an image that cannot be had: install failed after {:.1} s: {why}",
        install["duration_s"].as_f64().unwrap_or(f64::NAN)
    );
    assert!(
        why.contains("service app")
            && why.contains("ccci/not-built-here:1.0.0")
            && why.contains("pulls no images")
            && why.contains("not deployed"),
        "{why}"
    );
}

#[test]
fn a_secret_name_over_64_characters_fails_the_install_naming_the_fix() {
    if !ready() {
        return;
    }
    let long = "a_secret_whose_name_is_far_too_long_for_docker_swarm_names";
    let v = test_support::fixture_variant("tmpl-site", |releases| {
        each_release(releases, |rel| {
            let compose = rel.join("compose.yml");
            edit(&compose, "      - api_token\n", &format!("      - {long}\n"));
            edit(&compose, "  api_token:\n", &format!("  {long}:\n"));
            edit(
                &compose,
                "${STACK_NAME}_api_token_${SECRET_API_TOKEN_VERSION}",
                &format!("${{STACK_NAME}}_{long}_${{SECRET_API_TOKEN_VERSION}}"),
            );
        });
    });
    let (code, _, install) = run(&v, "install");
    assert_eq!(code, Some(1));
    assert_eq!(install["status"], "fail", "{install}");
    let why = install["reason"].as_str().unwrap();
    assert!(
        why.contains(long) && why.contains("over Docker's 64") && why.contains("shorten"),
        "{why}"
    );
}
