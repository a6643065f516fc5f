//! The parts behind the reasons of `docs/diagnosis.md`, against the real
//! Docker engine and the real Traefik of the host: images looked up (and a
//! pull that cannot reach a registry told from an image that does not
//! exist), and Traefik's API found and read. End to end, through `ccci
//! test`, they are canaries (`crates/ccci/tests/canaries.rs`).

use std::collections::BTreeMap;

use cc_ci::deploy::images::{self, ImageError};
use cc_ci::deploy::native::ResolveImage;
use cc_ci::probe::routers::{self, TraefikApi};
use cc_ci::recipe::compose::ComposeSet;
use test_support::Component;

fn compose(image: &str) -> (tempfile::TempDir, ComposeSet) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("compose.yml"),
        format!("version: \"3.8\"\nservices:\n  app:\n    image: ${{IMAGE:-{image}}}\n"),
    )
    .unwrap();
    let c = cc_ci::recipe::version::RecipeVersion::read(d.path())
        .unwrap()
        .compose_set(&["compose.yml".into()])
        .unwrap();
    (d, c)
}

#[tokio::test]
async fn images_are_found_or_named_with_whose_fault_it_is() {
    if !test_support::need(Component::Docker) || !test_support::need(Component::BusyboxImage) {
        return;
    }
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let env = BTreeMap::new();
    // Present: found, not pulled, whatever the mode.
    let (_d, c) = compose("ccci/busybox:test");
    let found = images::ensure(&docker, &c, &env, ResolveImage::Never).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].image, "ccci/busybox:test");
    assert!(!found[0].pulled);
    // Absent on a host that pulls nothing: the recipe's, naming service and image.
    let (_d, c) = compose("ccci/no-such-image:0.0.0");
    let t = std::time::Instant::now();
    let e = images::ensure(&docker, &c, &env, ResolveImage::Never)
        .await
        .unwrap_err();
    eprintln!("absent image named after {:.3} s: {e}", t.elapsed().as_secs_f64());
    assert!(matches!(e, ImageError::NotOnHost { .. }), "{e}");
    assert!(e.is_recipe_failure());
    assert!(
        e.to_string().contains("service app: image ccci/no-such-image:0.0.0"),
        "{e}"
    );
    // The env interpolates the reference, as the stack deploy does.
    let env = BTreeMap::from([("IMAGE".to_string(), "ccci/busybox:test".to_string())]);
    assert!(images::ensure(&docker, &c, &env, ResolveImage::Never).await.is_ok());
    // A pull that cannot reach any registry (this host has none): the
    // infrastructure's, never the recipe's.
    let env = BTreeMap::new();
    let t = std::time::Instant::now();
    let e = images::ensure(&docker, &c, &env, ResolveImage::Always)
        .await
        .unwrap_err();
    eprintln!(
        "pull without a registry failed after {:.1} s: {e}",
        t.elapsed().as_secs_f64()
    );
    assert!(matches!(e, ImageError::PullFailed { .. }), "{e}");
    assert!(!e.is_recipe_failure());
}

#[tokio::test]
async fn traefiks_api_is_found_and_lists_its_own_router() {
    if !test_support::need(Component::TraefikStack) {
        return;
    }
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let api = TraefikApi::locate(&docker, 443).await.unwrap_or_else(|e| panic!("{e}"));
    let all = api.routers().await.unwrap_or_else(|e| panic!("{e}"));
    // The Traefik fixture's own router (traefik.ci.test, its ping).
    let own = all
        .iter()
        .find(|r| r.name == "traefik_ci_test@swarm")
        .unwrap_or_else(|| panic!("no traefik_ci_test@swarm in {all:?}"));
    assert!(own.rule.contains("`traefik.ci.test`"), "{own:?}");
    assert_eq!(own.status, "enabled");
    // As the serve rung judges it: the router the stack's labels declare, current.
    let declared = routers::declared(&docker, "traefik_ci_test").await.unwrap();
    assert!(declared.iter().any(|d| d.name == "traefik_ci_test"), "{declared:?}");
    let v = routers::judge("traefik.ci.test", &declared, &all);
    assert!(matches!(v, routers::View::Routed { .. }), "{v}");
    let v = routers::judge("elsewhere.ci.test", &declared, &all);
    assert!(
        matches!(v, routers::View::OtherHosts { .. }) && v.is_final(std::time::Duration::ZERO),
        "{v}"
    );
}
