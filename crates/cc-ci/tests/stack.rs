//! `cc_ci::deploy::stack`, `cc_ci::deploy::converge` and `cc_ci::run::witness` against the real
//! Docker engine in swarm mode. The node must already be a swarm manager
//! (scripts/test runs swarm-init first; tests never create a swarm); a
//! missing engine or swarm fails these tests unless `CCCI_ALLOW_SKIP` allows
//! skipping it (see the test-support crate).
//!
//! In production abra deploys the stacks. abra cannot be built here, so
//! these tests create the swarm services, networks, volumes, secrets and
//! configs directly through the Docker Engine API (bollard), labelled and
//! named the way `docker stack deploy` and abra do it
//! (`com.docker.stack.namespace=<stack>`, `<stack>_<name>`). That is testing
//! our code against real Swarm (real task states, real healthchecks, real
//! rollbacks, real events), not a fake of abra: nothing here imitates abra's
//! behaviour beyond those names and labels.
//!
//! No registry is reachable, so the one image is built locally once:
//! Debian's static busybox with a few applet links, `docker import`ed
//! through the API as `ccci/busybox:test` (by test-support, when absent).
//!
//! Each test uses its own stack `t<random>_ci_test`, so tests run in
//! parallel, and a guard tears the stack down even when the test fails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, HealthConfig, Mount, MountType, MountVolumeOptions, NetworkAttachmentConfig, NetworkCreateRequest,
    SecretSpec, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState, VolumeCreateRequest,
};
use bollard::query_parameters::{InspectServiceOptions, ListTasksOptions, UpdateServiceOptions};
use bollard::Docker;
use cc_ci::deploy::converge::{self, ConvergeError, ConvergeOptions};
use cc_ci::deploy::stack::{self, ObjectKind, NAMESPACE_LABEL};
use cc_ci::run::witness::{Witness, WitnessError, WitnessState};
use test_support::{Component, BUSYBOX_IMAGE as IMAGE};

const SEC: i64 = 1_000_000_000;

/// One test's stack; torn down when dropped (also on panic).
struct TestStack {
    d: Docker,
    name: String,
}

impl TestStack {
    fn new(d: &Docker) -> TestStack {
        TestStack {
            d: d.clone(),
            name: format!("t{}_ci_test", test_support::token()),
        }
    }

    fn labels(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert(NAMESPACE_LABEL.into(), self.name.clone());
        l
    }

    fn scoped(&self, n: &str) -> String {
        format!("{}_{n}", self.name)
    }

    /// The stack's default network, as `docker stack deploy` creates it.
    async fn network(&self) -> String {
        let name = self.scoped("default");
        self.d
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("overlay".into()),
                labels: Some(self.labels(&[])),
                ..Default::default()
            })
            .await
            .unwrap();
        name
    }

    async fn secret(&self, n: &str, data: &[u8]) -> (String, String) {
        let name = self.scoped(n);
        let id = self
            .d
            .create_secret(SecretSpec {
                name: Some(name.clone()),
                labels: Some(self.labels(&[])),
                data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        (id, name)
    }

    async fn config(&self, n: &str, data: &[u8]) -> (String, String) {
        let name = self.scoped(n);
        let id = self
            .d
            .create_config(ConfigSpec {
                name: Some(name.clone()),
                labels: Some(self.labels(&[])),
                data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        (id, name)
    }

    /// A service spec like `docker stack deploy` makes for compose service
    /// `svc` running `sh -c <script>`.
    fn spec(&self, svc: &str, script: &str) -> ServiceSpec {
        ServiceSpec {
            name: Some(self.scoped(svc)),
            labels: Some(self.labels(&[("com.docker.stack.image", IMAGE)])),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(IMAGE.into()),
                    labels: Some(self.labels(&[])),
                    command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
                    stop_grace_period: Some(SEC),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(SEC),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn create(&self, spec: ServiceSpec) -> String {
        self.d.create_service(spec, None).await.unwrap().id.unwrap()
    }

    /// Replaces the service's spec (like a redeploy), returning when the
    /// engine accepted it.
    async fn update(&self, svc: &str, f: impl FnOnce(&mut ServiceSpec)) {
        let cur = self
            .d
            .inspect_service(&self.scoped(svc), None::<InspectServiceOptions>)
            .await
            .unwrap();
        let mut spec = cur.spec.unwrap();
        f(&mut spec);
        self.d
            .update_service(
                &self.scoped(svc),
                spec,
                UpdateServiceOptions {
                    version: cur.version.unwrap().index.unwrap() as i32,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
    }

    async fn running_task_ids(&self, svc: &str) -> Vec<String> {
        let tasks = self
            .d
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), vec![self.scoped(svc)])])),
            }))
            .await
            .unwrap();
        let mut v: Vec<String> = tasks
            .into_iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .filter_map(|t| t.id)
            .collect();
        v.sort();
        v
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let d = self.d.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime: tear down on a fresh one.
        let res = std::thread::spawn(move || {
            test_support::rt().block_on(stack::teardown(&d, &name, Duration::from_secs(60)))
        })
        .join();
        match res {
            Ok(Ok(r)) if r.is_clean() => {}
            other => eprintln!("!!! cleanup of stack {} incomplete: {other:?}", self.name),
        }
    }
}

/// The engine, in swarm mode, with the busybox test image.
fn docker() -> Option<Docker> {
    test_support::docker_with(&[Component::Swarm, Component::BusyboxImage])
}

fn health(cmd: &str, interval_s: i64, retries: i64) -> HealthConfig {
    HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), cmd.into()]),
        interval: Some(interval_s * SEC),
        timeout: Some(2 * SEC),
        retries: Some(retries),
        start_period: Some(0),
        ..Default::default()
    }
}

fn with_health(mut s: ServiceSpec, h: HealthConfig) -> ServiceSpec {
    s.task_template
        .as_mut()
        .unwrap()
        .container_spec
        .as_mut()
        .unwrap()
        .health_check = Some(h);
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_two_service_stack_converges_and_reports_times() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    // `app` becomes healthy only after about 3 s; `worker` has no healthcheck.
    let app = with_health(
        s.spec("app", "sleep 3; echo ok > /tmp/ready; exec sleep 100000"),
        health("test -f /tmp/ready", 1, 30),
    );
    s.create(app).await;
    s.create(s.spec("worker", "exec sleep 100000")).await;

    let t = Instant::now();
    let c = converge::wait_converged(&d, &s.name, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("should converge: {e}"));
    eprintln!("TIMING healthy 2-service stack converged in {:?}: {:?}", t.elapsed(), c);
    assert_eq!(c.services.len(), 2);
    let app = &c.services[0];
    let worker = &c.services[1];
    assert_eq!(app.service, s.scoped("app"));
    assert!(app.healthchecked, "app's healthcheck was required: {c:?}");
    assert!(!worker.healthchecked, "worker has no healthcheck: {c:?}");
    assert!(
        app.converged_after >= Duration::from_secs(3),
        "app cannot be healthy before its 3 s sleep: {c:?}"
    );
    assert!(c.total >= app.converged_after && c.total < Duration::from_secs(90));
    assert_eq!(app.replicas, 1);

    // Converged means really running and healthy right now.
    let labels = converge::running_labels(&d, &s.name).await.unwrap();
    assert_eq!(labels.len(), 2);
    assert!(labels
        .values()
        .all(|l| l.containers.len() == 1 && l.running_current_spec));
}

#[tokio::test(flavor = "multi_thread")]
async fn never_healthy_service_does_not_converge_and_names_the_health_output() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    s.create(with_health(
        s.spec("web", "exec sleep 100000"),
        health("echo probe-says-database-unreachable; exit 1", 1, 2),
    ))
    .await;
    s.create(s.spec("ok", "exec sleep 100000")).await;
    let timeout = Duration::from_secs(40);
    let t = Instant::now();
    let e = converge::wait_converged(&d, &s.name, timeout).await.unwrap_err();
    let took = t.elapsed();
    eprintln!("TIMING never-healthy detected after {took:?}: {e}");
    assert!(took < timeout + Duration::from_secs(10), "bounded by the timeout");
    assert!(e.is_recipe_failure(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&s.scoped("web")), "names the service: {msg}");
    assert!(
        !msg.contains(&format!("`{}`", s.scoped("ok"))),
        "the healthy one is not blamed: {msg}"
    );
    assert!(
        msg.contains("probe-says-database-unreachable"),
        "has the health output: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crashing_tasks_fail_fast_with_the_task_error() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    s.create(s.spec("crash", "echo boom >&2; exit 3")).await;
    let timeout = Duration::from_secs(120);
    let opts = ConvergeOptions {
        failed_tasks_limit: 3,
        ..ConvergeOptions::new(timeout)
    };
    let t = Instant::now();
    let e = converge::wait_converged_with(&d, &s.name, &opts).await.unwrap_err();
    let took = t.elapsed();
    eprintln!("TIMING crash loop detected after {took:?}: {e}");
    assert!(
        took < Duration::from_secs(40),
        "fails fast, not after {timeout:?}: {took:?}"
    );
    match &e {
        ConvergeError::TasksFailing {
            service,
            count,
            last_state,
            last_error,
            ..
        } => {
            assert_eq!(service, &s.scoped("crash"));
            assert!(*count >= 3);
            assert_eq!(last_state, "failed");
            assert!(last_error.contains("exit (3)"), "task error: {last_error}");
        }
        other => panic!("expected TasksFailing, got {other:?}"),
    }
    assert!(e.is_recipe_failure());
}

#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_update_is_a_failure_while_the_old_task_keeps_running() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    let mut spec = s.spec("app", "exec sleep 100000");
    spec.labels
        .as_mut()
        .unwrap()
        .insert("coop-cloud.x.version".into(), "1.0.0".into());
    spec.update_config = Some(ServiceSpecUpdateConfig {
        parallelism: Some(1),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor: Some(3 * SEC),
        order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
        ..Default::default()
    });
    s.create(spec).await;
    converge::wait_converged(&d, &s.name, Duration::from_secs(60))
        .await
        .unwrap();
    let before = s.running_task_ids("app").await;
    assert_eq!(before.len(), 1);

    // The "upgrade": a new version that never becomes healthy. With
    // start-first, swarm holds its task in `starting` (never `running`), so
    // the old task keeps serving throughout, then rolls the service back.
    // (A new task that reaches `running` and dies later has already made
    // swarm stop the old task; the rollback then starts a fresh task of the
    // old spec.)
    s.update("app", |sp| {
        sp.labels
            .as_mut()
            .unwrap()
            .insert("coop-cloud.x.version".into(), "2.0.0".into());
        sp.task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .health_check = Some(health("echo new-version-broken; exit 1", 1, 1));
    })
    .await;
    let timeout = Duration::from_secs(120);
    let t = Instant::now();
    let e = converge::wait_converged(&d, &s.name, timeout).await.unwrap_err();
    let took = t.elapsed();
    eprintln!("TIMING rollback detected after {took:?}: {e}");
    assert!(took < Duration::from_secs(60), "fails fast: {took:?}");
    match &e {
        ConvergeError::RolledBack { service, state, .. } => {
            assert_eq!(service, &s.scoped("app"));
            assert!(state.starts_with("rollback"), "{state}");
        }
        other => panic!("expected RolledBack, got {other:?}"),
    }
    assert!(e.is_recipe_failure());
    // The old task is the one serving, with the old labels.
    assert_eq!(s.running_task_ids("app").await, before, "old task kept running");
    let labels = converge::running_labels(&d, &s.name).await.unwrap();
    assert_eq!(labels[&s.scoped("app")].service["coop-cloud.x.version"], "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn successful_update_shows_new_labels_and_fresh_tasks() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    let mut spec = s.spec("app", "exec sleep 100000");
    spec.labels
        .as_mut()
        .unwrap()
        .insert("coop-cloud.x.version".into(), "1.0.0".into());
    s.create(spec).await;
    converge::wait_converged(&d, &s.name, Duration::from_secs(60))
        .await
        .unwrap();
    let before = s.running_task_ids("app").await;

    s.update("app", |sp| {
        sp.labels
            .as_mut()
            .unwrap()
            .insert("coop-cloud.x.version".into(), "2.0.0".into());
        sp.labels
            .as_mut()
            .unwrap()
            .insert("coop-cloud.x.chaos-version".into(), "abc1234".into());
        let c = sp.task_template.as_mut().unwrap().container_spec.as_mut().unwrap();
        c.labels.as_mut().unwrap().insert("app.build".into(), "2".into());
    })
    .await;
    let c = converge::wait_converged(&d, &s.name, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("update should converge: {e}"));
    eprintln!("TIMING update converged in {:?}", c.total);
    let after = s.running_task_ids("app").await;
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new task runs");
    let labels = converge::running_labels(&d, &s.name).await.unwrap();
    let app = &labels[&s.scoped("app")];
    assert_eq!(app.service["coop-cloud.x.version"], "2.0.0");
    assert_eq!(app.service["coop-cloud.x.chaos-version"], "abc1234");
    assert!(app.running_current_spec);
    assert_eq!(app.containers.len(), 1);
    assert_eq!(app.containers.values().next().unwrap()["app.build"], "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_stack_that_was_never_deployed_is_an_error_not_a_fail() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    let e = converge::wait_converged(&d, &s.name, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(e, ConvergeError::NoServices { .. }), "{e:?}");
    assert!(!e.is_recipe_failure());
}

#[tokio::test(flavor = "multi_thread")]
async fn witness_round_trips_and_truncation_and_deletion_are_detected() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    let vol = s.scoped("data");
    d.create_volume(VolumeCreateRequest {
        name: Some(vol.clone()),
        labels: Some(s.labels(&[])),
        ..Default::default()
    })
    .await
    .unwrap();

    let w = Witness::write(&d, &vol, IMAGE).await.unwrap();
    assert_eq!(w.content.len(), "cc-ci witness cc-ci ".len() + 128 + 1);
    assert!(w.check(&d, IMAGE).await.unwrap(), "round trip");
    let other = Witness::write_named(&d, &vol, IMAGE, "second").await.unwrap();
    assert_ne!(other.content, w.content, "random content");
    assert!(w.check(&d, IMAGE).await.unwrap() && other.check(&d, IMAGE).await.unwrap());

    w.truncate(&d, IMAGE, 20).await.unwrap();
    assert_eq!(
        w.state(&d, IMAGE).await.unwrap(),
        WitnessState::Differs {
            found_len: 20,
            expected_len: w.content.len()
        }
    );
    assert!(!w.check(&d, IMAGE).await.unwrap(), "a truncated witness is not intact");
    // Same length, one byte changed.
    let mut flipped = w.clone();
    let last = flipped.content.len() - 2;
    flipped.content[last] ^= 1;
    Witness::write_named(&d, &vol, IMAGE, "cc-ci").await.unwrap(); // rewrite the file
    assert!(!flipped.check(&d, IMAGE).await.unwrap(), "byte for byte");

    other.destroy(&d, IMAGE).await.unwrap();
    assert_eq!(other.state(&d, IMAGE).await.unwrap(), WitnessState::Missing);
    assert!(!other.check(&d, IMAGE).await.unwrap());

    let e = Witness::write(&d, &s.scoped("nope"), IMAGE).await.unwrap_err();
    assert!(matches!(e, WitnessError::NoVolume { .. }), "{e}");
    let e = Witness::write(&d, &vol, "ccci/does-not-exist:never").await.unwrap_err();
    assert!(matches!(e, WitnessError::NoImage { .. }), "{e}");

    // No helper container is left behind.
    let helpers = d
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{}={vol}", cc_ci::run::witness::HELPER_LABEL)],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(helpers.is_empty(), "{helpers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_leaves_nothing_and_a_second_teardown_is_a_no_op() {
    let Some(d) = docker() else { return };
    let s = TestStack::new(&d);
    let net = s.network().await;
    let (sec_id, sec_name) = s.secret("db_password_v1", b"hunter2").await;
    let (cfg_id, cfg_name) = s.config("nginx_conf_v1", b"listen 80;").await;
    let mut db = s.spec("db", "exec sleep 100000");
    {
        let t = db.task_template.as_mut().unwrap();
        t.networks = Some(vec![NetworkAttachmentConfig {
            target: Some(net.clone()),
            aliases: Some(vec!["db".into()]),
            ..Default::default()
        }]);
        let c = t.container_spec.as_mut().unwrap();
        c.mounts = Some(vec![Mount {
            target: Some("/data".into()),
            source: Some(s.scoped("db_data")),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(s.labels(&[])),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        c.secrets = Some(vec![TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some("db_password".into()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o400),
            }),
            secret_id: Some(sec_id),
            secret_name: Some(sec_name.clone()),
        }]);
        c.configs = Some(vec![TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some("/etc/app.conf".into()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o444),
            }),
            config_id: Some(cfg_id),
            config_name: Some(cfg_name.clone()),
            ..Default::default()
        }]);
        // A container that ignores SIGTERM for a while: teardown must wait.
        c.command = Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "trap '' TERM; while true; do sleep 1; done".into(),
        ]);
        c.stop_grace_period = Some(3 * SEC);
    }
    s.create(db).await;
    s.create(s.spec("worker", "exec sleep 100000")).await;
    converge::wait_converged(&d, &s.name, Duration::from_secs(60))
        .await
        .unwrap();
    // A volume without the label, found by its name prefix only.
    d.create_volume(VolumeCreateRequest {
        name: Some(s.scoped("unlabelled")),
        ..Default::default()
    })
    .await
    .unwrap();
    // Another stack whose name extends ours must not be touched.
    let neighbour = format!("{}_x", s.name);
    let neighbour_vol = format!("{neighbour}_data");
    d.create_volume(VolumeCreateRequest {
        name: Some(neighbour_vol.clone()),
        labels: Some(HashMap::from([(NAMESPACE_LABEL.to_string(), neighbour.clone())])),
        ..Default::default()
    })
    .await
    .unwrap();

    let objs = stack::list_objects(&d, &s.name).await.unwrap();
    assert_eq!(objs.services.len(), 2, "{objs:?}");
    assert_eq!(objs.containers.len(), 2, "{objs:?}");
    assert!(objs.volumes.iter().any(|v| v.name == s.scoped("db_data")), "{objs:?}");
    assert!(
        objs.volumes.iter().any(|v| v.name == s.scoped("unlabelled")),
        "{objs:?}"
    );
    assert!(!objs.volumes.iter().any(|v| v.name == neighbour_vol), "{objs:?}");
    assert_eq!(objs.networks.len(), 1);
    assert_eq!(objs.secrets.len(), 1);
    assert_eq!(objs.configs.len(), 1);

    let r = stack::teardown(&d, &s.name, Duration::from_secs(90)).await.unwrap();
    eprintln!("TIMING teardown took {:?}; removed {:?}", r.took, r.removed);
    assert!(r.is_clean(), "left: {:?}", r.left);
    assert!(stack::verify_clean(&d, &s.name).await.unwrap().is_empty());
    let kinds = |k: ObjectKind| r.removed.iter().filter(|o| o.kind == k).count();
    assert_eq!(kinds(ObjectKind::Service), 2);
    assert_eq!(kinds(ObjectKind::Network), 1);
    assert_eq!(kinds(ObjectKind::Volume), 2);
    assert_eq!(kinds(ObjectKind::Secret), 1);
    assert_eq!(kinds(ObjectKind::Config), 1);
    assert!(
        r.took >= Duration::from_secs(2),
        "waited for the SIGTERM-ignoring container"
    );

    let again = stack::teardown(&d, &s.name, Duration::from_secs(30)).await.unwrap();
    assert!(again.removed.is_empty() && again.is_clean(), "{again:?}");
    // The neighbour's volume survived.
    assert!(d.inspect_volume(&neighbour_vol).await.is_ok());
    d.remove_volume(&neighbour_vol, None::<bollard::query_parameters::RemoveVolumeOptions>)
        .await
        .unwrap();
}

/// Where Docker reports health, a healthy probe proves the task is up: no
/// stability window of ours is added on top of it. A service without a
/// healthcheck still waits out the window (a crash-looping container is
/// briefly `running`). The window is made 10 minutes here, so which of the
/// two converged within the 60 s timeout tells which waited it.
#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_probe_needs_no_stability_window_a_bare_container_does() {
    let Some(d) = docker() else { return };
    let opts = ConvergeOptions {
        stable_for: Duration::from_secs(600),
        ..ConvergeOptions::new(Duration::from_secs(60))
    };
    let checked = TestStack::new(&d);
    checked
        .create(with_health(
            checked.spec("app", "exec sleep 100000"),
            health("true", 1, 3),
        ))
        .await;
    let c = converge::wait_converged_with(&d, &checked.name, &opts)
        .await
        .unwrap_or_else(|e| panic!("a healthy service converges without the window: {e}"));
    assert!(c.services[0].healthchecked, "{c:?}");

    let bare = TestStack::new(&d);
    bare.create(bare.spec("app", "exec sleep 100000")).await;
    let e = converge::wait_converged_with(&d, &bare.name, &opts).await.unwrap_err();
    assert!(matches!(e, ConvergeError::Timeout { .. }), "{e}");
}
