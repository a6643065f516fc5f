//! The native deployer against the real swarm, on the tmpl-site fixture
//! recipe, which exercises abra's conventions one by one: each convention of
//! `docs/abra.md` the deployer follows is pinned by an assertion here
//! (the env file's place and content, abra.sh exports, the golang-templated
//! config, generated secrets, the labels on `app`, `ExposeAllEnv`, the
//! timeout label, POST_DEPLOY_CMDS / POST_UPGRADE_CMDS, TYPE, the removal of
//! everything). No Traefik is needed: nothing is served here.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use cc_ci::deploy::app::App;
use cc_ci::deploy::exec::{exec, running_container};
use cc_ci::deploy::ipvs::{self, VipSupport};
use cc_ci::deploy::native::{small_sha, Native, ResolveImage};
use cc_ci::deploy::{DeployRequest, Deployer, Fault, Kind, Step, Version};
use test_support::Component;

fn native(d: &Docker) -> Native {
    Native {
        docker: d.clone(),
        cli: "/usr/bin/docker".into(),
        resolve_image: ResolveImage::Never,
        vip: ipvs::probe(),
        lint_gate: true,
        post_cmd_timeout: Duration::from_secs(60),
        owner: None,
        allow: Some(Default::default()),
        limits: Some(Default::default()),
    }
}

/// Removes the app when dropped, also after a failed assertion.
struct Cleanup(Native, App);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = test_support::rt().block_on(self.0.remove(&self.1));
    }
}

fn request(reference: &str, version: Version, kind: Kind) -> DeployRequest {
    DeployRequest {
        reference: reference.into(),
        version,
        kind,
        default_timeout: Duration::from_secs(120),
        forced_timeout: None,
    }
}

async fn sh(d: &Docker, stack: &str, cmd: &str) -> String {
    let c = running_container(d, stack, "app").await.unwrap();
    let out = exec(d, &c, &["sh".into(), "-c".into(), cmd.into()], Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{cmd}: {}", out.stderr);
    out.stdout
}

async fn service_labels(d: &Docker, stack: &str) -> std::collections::HashMap<String, String> {
    d.inspect_service(&format!("{stack}_app"), None)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.labels)
        .unwrap_or_default()
}

#[test]
fn native_deploys_and_upgrades_as_abra_would() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let recipes = test_support::fixture_recipes();
    let source = recipes.join("tmpl-site");
    let head = test_support::git(&source, &["rev-parse", "HEAD"]).trim().to_string();
    let abra_dir = tempfile::tempdir().unwrap();
    let domain = format!("tmpl-site-{}.ci.test", &test_support::token()[..6]);
    let app = App::new(abra_dir.path(), "tmpl-site", &domain);
    let n = native(&d);
    let guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        // abra app new: the layout and the env file.
        let env = BTreeMap::from([("SITE_TITLE".to_string(), "deploy test".to_string())]);
        let made = n.new_app(&app, &source, "1.0.0+1.22.1", &env).await.unwrap();
        assert_eq!(
            made.env_file,
            abra_dir.path().join(format!("servers/default/{domain}.env"))
        );
        assert!(abra_dir.path().join("recipes/tmpl-site/.git").is_dir());
        let text = std::fs::read_to_string(&made.env_file).unwrap();
        assert!(text.contains(&format!("DOMAIN={domain}\n")), "{text}");
        assert!(text.contains("LETS_ENCRYPT_ENV=''\n"), "{text}");
        assert!(
            text.contains(&format!("#EXTRA_DOMAINS=', `www.{domain}`'")),
            "every example domain replaced: {text}"
        );
        assert!(
            text.contains("SECRET_API_TOKEN_VERSION=v1 # length=24"),
            "modifiers kept: {text}"
        );
        assert!(
            text.contains("SITE_TITLE='deploy test'"),
            "settings over the sample: {text}"
        );

        // The deploy of a release.
        let done = n
            .deploy(
                &app,
                &request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert_eq!(done.timeout.0, Duration::from_secs(120), "${{TIMEOUT:-120}} on app");
        assert!(done.timeout.1.contains("timeout label"), "{}", done.timeout.1);
        let mut created = done.secrets_created.clone();
        created.sort();
        assert_eq!(
            created,
            [
                format!("{}_admin_phrase_v1", app.stack),
                format!("{}_api_token_v1", app.stack)
            ]
        );
        // Secrets as abra makes them: no labels; length=24 alphanumeric; a passphrase.
        for s in &created {
            let spec = d.inspect_secret(s).await.unwrap().spec.unwrap();
            assert!(spec.labels.unwrap_or_default().is_empty(), "plain SecretCreate: {s}");
        }
        let token = sh(&d, &app.stack, "cat /run/secrets/api_token").await;
        assert!(
            token.len() == 24 && token.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{token:?}"
        );
        let phrase = sh(&d, &app.stack, "cat /run/secrets/admin_phrase").await;
        let words: Vec<&str> = phrase.split('-').collect();
        assert!(words.len() == 4 && words.iter().all(|w| !w.is_empty()), "{phrase:?}");
        // The config: named with the version abra.sh exports, rendered by
        // swarm's golang template with the env abra exposes.
        assert!(d.inspect_config(&format!("{}_nginx_conf_v1", app.stack)).await.is_ok());
        let conf = sh(&d, &app.stack, "cat /etc/nginx/conf.d/default.conf").await;
        assert!(
            conf.contains(&format!(
                "title=deploy test domain={domain} service={}_app conf=v1",
                app.stack
            )),
            "{conf}"
        );
        // ExposeAllEnv: the env file reaches the app container.
        let env_out = sh(&d, &app.stack, "env").await;
        assert!(
            env_out.contains(&format!("DOMAIN={domain}")) && env_out.contains("TYPE=tmpl-site"),
            "{env_out}"
        );
        // The labels abra adds on `app`.
        let l = service_labels(&d, &app.stack).await;
        let key = |k: &str| format!("coop-cloud.{}.{k}", app.stack);
        assert_eq!(l.get(&key("recipe")).map(String::as_str), Some("tmpl-site"));
        assert_eq!(l.get(&key("chaos")).map(String::as_str), Some("false"));
        assert_eq!(l.get(&key("version")).map(String::as_str), Some("1.0.0+1.22.1"));
        assert!(!l.contains_key(&key("chaos-version")));
        // POST_DEPLOY_CMDS ran the abra.sh function in the container.
        assert_eq!(done.post_cmds.len(), 1, "{:?}", done.post_cmds);
        assert_eq!(done.post_cmds[0].command, "write_marker deployed");
        assert_eq!(
            sh(&d, &app.stack, "cat /usr/share/nginx/html/post-deploy.txt").await,
            "deployed token_len=24 phrase_words=4\n"
        );
        // TYPE rewritten.
        assert_eq!(app.env_file().unwrap().get("TYPE"), Some("tmpl-site:1.0.0+1.22.1"));
        // The kernel adaptation, recorded.
        let mode = d
            .inspect_service(&format!("{}_app", app.stack), None)
            .await
            .unwrap()
            .spec
            .and_then(|s| s.endpoint_spec)
            .and_then(|e| e.mode)
            .map(|m| m.to_string());
        match ipvs::probe() {
            VipSupport::NoIpvs { .. } => {
                assert_eq!(done.dnsrr, ["app"]);
                assert_eq!(mode.as_deref(), Some("dnsrr"));
            }
            VipSupport::Routes { .. } => assert!(done.dnsrr.is_empty()),
        }

        // The chaos upgrade to the tested commit.
        let sha = small_sha(&head);
        let up = n
            .deploy(
                &app,
                &request(&head, Version::Chaos(sha.clone()), Kind::Upgrade),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert_eq!(up.commit, head);
        assert!(up.secrets_created.is_empty(), "existing secrets are kept");
        let l = service_labels(&d, &app.stack).await;
        assert_eq!(l.get(&key("chaos")).map(String::as_str), Some("true"));
        assert_eq!(l.get(&key("chaos-version")), Some(&sha));
        assert_eq!(
            l.get(&key("version")).map(String::as_str),
            Some("1.1.0+1.22.1"),
            "under chaos the recipe's own version label stays"
        );
        assert!(
            d.inspect_config(&format!("{}_nginx_conf_v2", app.stack)).await.is_ok(),
            "abra.sh's v2"
        );
        assert_eq!(up.post_cmds[0].command, "write_marker upgraded", "POST_UPGRADE_CMDS");
        assert_eq!(
            app.env_file().unwrap().get("TYPE"),
            Some(format!("tmpl-site:{sha}").as_str())
        );

        // Removal of everything the app made.
        let removed = n.remove(&app).await.unwrap();
        assert!(removed.is_clean(), "{removed:?}");
        let left = cc_ci::deploy::stack::verify_clean(&d, &app.stack).await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    });
    drop(guard);
}

/// A tmpl-site variant whose releases `edit` changes.
fn variant(edit: impl Fn(&std::path::Path)) -> test_support::Fixture {
    test_support::fixture_variant("tmpl-site", |releases| {
        for e in std::fs::read_dir(releases).unwrap() {
            edit(&e.unwrap().path());
        }
    })
}

#[test]
fn refusals_name_the_key_and_the_fix() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let n = native(&d);
    // generate=false without a value in the settings: refused naming the key.
    let v = variant(|rel| {
        let p = rel.join(".env.sample");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace(
                "SECRET_ADMIN_PHRASE_VERSION=v1",
                "SECRET_ADMIN_PHRASE_VERSION=v1 # generate=false",
            ),
        )
        .unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("t{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let e = n.deploy(&app, &req, &BTreeMap::new()).await.unwrap_err();
        assert_eq!((e.step, e.fault), (Step::Secrets, Fault::Recipe), "{e}");
        assert!(
            e.detail.contains("SECRET_ADMIN_PHRASE_VERSION") && e.detail.contains("[secrets]\nadmin_phrase = "),
            "{e}"
        );
        let made = cc_ci::deploy::stack::verify_clean(&d, &app.stack).await.unwrap();
        assert!(made.is_empty(), "nothing was deployed or generated: {made:?}");
        // With the value given, the same deploy goes through.
        let given = BTreeMap::from([("admin_phrase".to_string(), "given-in-settings".to_string())]);
        n.deploy(&app, &req, &given).await.unwrap();
        assert_eq!(
            sh(&d, &app.stack, "cat /run/secrets/admin_phrase").await,
            "given-in-settings"
        );
    });
}

/// A `POST_DEPLOY_CMDS` function that exits 127 under `bash -c` is the
/// recipe's own failure, not a sign of an image without bash: it runs
/// exactly once (never again under `sh`), and the deploy fails naming it.
/// The tmpl-site image (ccci/nginx on ccci/debian:bookworm) has bash.
#[test]
fn a_post_deploy_function_exiting_127_runs_once_and_fails_the_deploy() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let n = native(&d);
    let v = variant(|rel| {
        let p = rel.join("abra.sh");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            format!("{t}\n# Counts its runs, then fails as a missing command would.\ncount_then_127() {{\n  echo \"run $1\" >> /usr/share/nginx/html/count.txt\n  exit 127\n}}\n"),
        )
        .unwrap();
        let p = rel.join(".env.sample");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace(
                "POST_DEPLOY_CMDS=\"app write_marker deployed\"",
                "POST_DEPLOY_CMDS=\"app count_then_127 first\"",
            ),
        )
        .unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("c{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let e = n.deploy(&app, &req, &BTreeMap::new()).await.unwrap_err();
        assert_eq!((e.step, e.fault), (Step::PostDeploy, Fault::Recipe), "{e}");
        assert!(
            e.detail
                .contains("POST_DEPLOY_CMDS `app count_then_127 first` exited 127"),
            "{e}"
        );
        assert_eq!(
            sh(&d, &app.stack, "cat /usr/share/nginx/html/count.txt").await,
            "run first\n",
            "the function ran exactly once"
        );
    });
}

/// ccci/nginx without bash, for the `sh` fallback (built by the test below
/// from the fixture image, locally; kept, so a second run builds nothing).
const NO_BASH_IMAGE: &str = "ccci/nginx:1.22.1-nobash";

/// In an image without bash, a `POST_DEPLOY_CMDS` function runs under `sh`
/// (abra's fallback), once, and the deploy goes through.
#[test]
fn a_post_deploy_function_runs_under_sh_where_the_image_has_no_bash() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let mut build = std::process::Command::new("/usr/bin/docker")
        .args(["build", "-q", "-t", NO_BASH_IMAGE, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut build.stdin.take().unwrap(),
        b"FROM ccci/nginx:1.22.1\nRUN rm -f /usr/bin/bash /bin/bash && ! command -v bash\n",
    )
    .unwrap();
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        test_support::output_text(&out)
    );
    let n = native(&d);
    let v = variant(|rel| {
        let p = rel.join("compose.yml");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace("image: ccci/nginx:1.22.1\n", &format!("image: {NO_BASH_IMAGE}\n")),
        )
        .unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("s{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let done = n.deploy(&app, &req, &BTreeMap::new()).await.unwrap();
        assert_eq!(
            sh(&d, &app.stack, "command -v bash || echo none").await,
            "none\n",
            "the app runs the image without bash"
        );
        assert_eq!(done.post_cmds.len(), 1, "{:?}", done.post_cmds);
        assert_eq!(done.post_cmds[0].command, "write_marker deployed");
        assert_eq!(
            sh(&d, &app.stack, "cat /usr/share/nginx/html/post-deploy.txt").await,
            "deployed token_len=24 phrase_words=4\n"
        );
    });
}

#[test]
fn a_test_apps_services_run_under_resource_limits_and_confinement() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let n = native(&d);
    // The release's app asks for 4 CPUs (capped to 1) and 256 MiB (kept:
    // lower than the cap); a second service asks for nothing (the caps).
    let v = variant(|rel| {
        let p = rel.join("compose.yml");
        let t = std::fs::read_to_string(&p).unwrap();
        let t = t.replace(
            "      update_config:\n",
            "      resources:\n        limits: {cpus: \"4\", memory: 256M}\n      update_config:\n",
        );
        let t = t.replace(
            "\nnetworks:\n",
            "  side:\n    image: ccci/nginx:1.22.1\n    deploy:\n      labels: [\"traefik.enable=false\"]\n\nnetworks:\n",
        );
        std::fs::write(&p, t).unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("l{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let done = n.deploy(&app, &req, &BTreeMap::new()).await.unwrap();
        assert!(
            done.log
                .iter()
                .any(|l| l.contains("resource limits (at most 1 CPU and 1 GiB per service)")),
            "{:?}",
            done.log
        );
        let gib = 1i64 << 30;
        for (service, cpus, memory) in [("app", 1_000_000_000i64, 256i64 << 20), ("side", 1_000_000_000, gib)] {
            // The service's spec: what swarm enforces on every task.
            let limits = d
                .inspect_service(&format!("{}_{service}", app.stack), None)
                .await
                .unwrap()
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.resources)
                .and_then(|r| r.limits)
                .unwrap_or_default();
            assert_eq!(
                (limits.nano_cpus, limits.memory_bytes),
                (Some(cpus), Some(memory)),
                "{service}"
            );
            // And the running container's cgroup settings.
            let c = running_container(&d, &app.stack, service).await.unwrap();
            let host = d.inspect_container(&c, None).await.unwrap().host_config.unwrap();
            assert_eq!((host.nano_cpus, host.memory), (Some(cpus), Some(memory)), "{service}");
        }
    });
}

#[test]
fn a_test_app_that_leaves_its_app_is_not_deployed() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let n = native(&d);
    let v = variant(|rel| {
        let p = rel.join("compose.yml");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace(
                "      - content:/usr/share/nginx/html\n",
                "      - content:/usr/share/nginx/html\n      - /var/run/docker.sock:/var/run/docker.sock\n",
            ),
        )
        .unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("c{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let e = n.deploy(&app, &req, &BTreeMap::new()).await.unwrap_err();
        assert_eq!((e.step, e.fault), (Step::Compose, Fault::Recipe), "{e}");
        assert!(
            e.detail
                .contains("compose.yml: services.app.volumes[1]: bind mount of the host path /var/run/docker.sock"),
            "{e}"
        );
        let made = cc_ci::deploy::stack::verify_clean(&d, &app.stack).await.unwrap();
        assert!(made.is_empty(), "nothing was deployed, no secret generated: {made:?}");
        // Allowed by name, with a reason: the same deploy goes through.
        let mut allowed = n.clone();
        let mut allow = cc_ci::recipe::confine::Allowances::default();
        allow.allow(
            cc_ci::recipe::confine::Kind::BindMount,
            "/var/run/docker.sock",
            "the test's reason",
        );
        allowed.allow = Some(allow);
        let done = allowed.deploy(&app, &req, &BTreeMap::new()).await.unwrap();
        assert!(
            done.log
                .iter()
                .any(|l| l.contains("allowed by the settings") && l.contains("the test's reason")),
            "{:?}",
            done.log
        );
    });
}

/// A compose file without `version:` (the compose spec allows it, abra's
/// loader accepts it, real recipes omit it more and more) deploys with the
/// 20.10 docker CLI, which refuses such a file ("unsupported Compose file
/// version: 1.0") and files of differing versions ("version mismatched
/// between two composefiles"): the deployer gives it copies with one
/// version, beside the originals, and removes them after the deploy.
#[test]
fn a_compose_file_without_version_deploys_with_the_20_10_cli() {
    let Some(d) = test_support::docker_with(&[Component::Swarm, Component::FixtureImages]) else {
        return;
    };
    let n = native(&d);
    assert_eq!(
        n.cli,
        std::path::PathBuf::from("/usr/bin/docker"),
        "the 20.10 CLI is the one under test"
    );
    let v = variant(|rel| {
        let p = rel.join("compose.yml");
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("version: \"3.8\"\n"), "the fixture declares its version");
        std::fs::write(&p, t.replace("version: \"3.8\"\n", "")).unwrap();
        // A second file declaring an older version: both must agree for 20.10.
        std::fs::write(
            rel.join("compose.extra.yml"),
            "version: \"3.7\"\nservices:\n  app:\n    environment:\n      - EXTRA_FILE=read\n",
        )
        .unwrap();
        let e = rel.join(".env.sample");
        let t = std::fs::read_to_string(&e).unwrap();
        std::fs::write(&e, format!("{t}\nCOMPOSE_FILE=\"compose.yml:compose.extra.yml\"\n")).unwrap();
    });
    let abra_dir = tempfile::tempdir().unwrap();
    let app = App::new(
        abra_dir.path(),
        "tmpl-site",
        &format!("v{}.ci.test", &test_support::token()[..6]),
    );
    let _guard = Cleanup(n.clone(), app.clone());
    test_support::rt().block_on(async {
        n.new_app(&app, &v.recipes.join("tmpl-site"), "1.0.0+1.22.1", &BTreeMap::new())
            .await
            .unwrap();
        let req = request("1.0.0+1.22.1", Version::Release("1.0.0+1.22.1".into()), Kind::Install);
        let done = n
            .deploy(&app, &req, &BTreeMap::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            done.log.iter().any(|l| l.contains("compose files given one version")),
            "{:?}",
            done.log
        );
        assert_eq!(sh(&d, &app.stack, "echo $EXTRA_FILE").await.trim(), "read");
        let left: Vec<_> = std::fs::read_dir(app.checkout())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".ccci-"))
            .collect();
        assert!(left.is_empty(), "the copies are removed after the deploy: {left:?}");
    });
}
