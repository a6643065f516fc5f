//! `cc_ci::host::janitor` and `cc_ci::state::lease` against the real Docker engine in
//! swarm mode and real processes. The node must already be a swarm manager
//! (scripts/test runs swarm-init first; tests never create a swarm); a
//! missing engine or swarm fails these tests unless `CCCI_ALLOW_SKIP` allows
//! skipping it (see the test-support crate).
//!
//! The runs here are STAND-INS for `ccci test` runs: this test binary
//! re-executes itself (`standin_ccci_test_run`, ignored in normal runs) as a
//! separate process that plans a real run ([`RunPlan`] of a fixture recipe:
//! run id, domain `standin-<6 hex>.<test domain>`, stack, `ABRA_DIR`), takes
//! the run's [`Lease`], makes its run folder with an abra-style env file,
//! creates its app's stack objects, says READY and then keeps "working"
//! (creating and removing a secret, rewriting its env file) until told to
//! exit or killed. In production abra deploys the stacks; abra cannot be
//! built here, so the stand-in creates them through the Docker Engine API,
//! named and labelled as `docker stack deploy`/abra do
//! (`com.docker.stack.namespace=<stack>`, `<stack>_<name>`): an overlay
//! network, a named volume, a secret, a config and a service running the
//! locally imported `ccci/busybox:test` image with all four attached.
//!
//! Each test uses its own wildcard domain `j<random>.test` (stack suffix
//! `_j<random>_test`) and state dir, so the janitors here never see another
//! test's apps (nor other suites' `*_ci_test` stacks), and a guard kills its
//! stand-ins and removes every Docker object carrying its token even when the
//! test fails.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, Mount, MountType, NetworkAttachmentConfig, NetworkCreateRequest, SecretSpec, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ListConfigsOptions, ListContainersOptions, ListNetworksOptions, ListSecretsOptions, ListServicesOptions,
    ListVolumesOptions,
};
use bollard::Docker;
use cc_ci::deploy::stack::{self, ObjectKind, NAMESPACE_LABEL};
use cc_ci::host::janitor::{self, Outcome, SweepReport};
use cc_ci::run::plan::{RunEnv, RunPlan};
use cc_ci::state::lease::{self, Holder, Lease, LeaseInfo};
use test_support::{Component, BUSYBOX_IMAGE as IMAGE};

const SEC: i64 = 1_000_000_000;
const STANDIN_ENV: &str = "CCCI_JANITOR_STANDIN";
const TEARDOWN: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The engine, randomness and runtimes

fn rand_u64() -> u64 {
    (uuid::Uuid::new_v4().as_u128() >> 64) as u64
}

fn rand_below(n: u64) -> u64 {
    rand_u64() % n.max(1)
}

/// The engine, in swarm mode, with the busybox test image.
fn docker() -> Option<Docker> {
    test_support::docker_with(&[Component::Swarm, Component::BusyboxImage])
}

fn on_fresh_runtime<T: Send + 'static>(f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static) -> T {
    std::thread::spawn(move || f(&test_support::rt())).join().unwrap()
}

// ---------------------------------------------------------------------------
// The stand-in for a `ccci test` run (a separate process)

fn labels(stack: &str) -> HashMap<String, String> {
    HashMap::from([(NAMESPACE_LABEL.to_string(), stack.to_string())])
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nSTANDIN {line}").unwrap();
    out.flush().unwrap();
}

/// Not a test: the body of a stand-in run process (see the module doc). The
/// tests below run it by re-executing this binary with `--ignored` and
/// `CCCI_JANITOR_STANDIN=1`; without that variable it does nothing.
#[test]
#[ignore = "helper process for the janitor tests, not a test"]
fn standin_ccci_test_run() {
    if std::env::var(STANDIN_ENV).as_deref() != Ok("1") {
        return;
    }
    test_support::rt().block_on(standin());
}

async fn standin() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("stand-in needs {k}"));
    let state = PathBuf::from(var("STANDIN_STATE"));
    let env = RunEnv {
        domain: var("STANDIN_DOMAIN"),
        state_dir: state.clone(),
        results_dir: state.join("results"),
    };
    let plan = RunPlan::new(Path::new(&var("STANDIN_RECIPE")), &env).expect("plan");
    say(&format!("STEP plan {} {}", plan.run_id, plan.stack));
    // First the lease, then anything of the app.
    let lease = Lease::take(&state, plan.lease_info()).expect("lease");
    say("STEP lease");
    let env_dir = plan.abra_dir.join("servers").join("default");
    std::fs::create_dir_all(&env_dir).unwrap();
    let env_file = env_dir.join(format!("{}.env", plan.domain));
    std::fs::write(&env_file, format!("TYPE=standin\nDOMAIN={}\n", plan.domain)).unwrap();
    say("STEP folder");
    let d = cc_ci::host::swarm::connect().await.expect("docker");
    let s = &plan.stack;
    let net = format!("{s}_default");
    d.create_network(NetworkCreateRequest {
        name: net.clone(),
        driver: Some("overlay".into()),
        labels: Some(labels(s)),
        ..Default::default()
    })
    .await
    .unwrap();
    say("STEP network");
    let vol = format!("{s}_data");
    d.create_volume(VolumeCreateRequest {
        name: Some(vol.clone()),
        labels: Some(labels(s)),
        ..Default::default()
    })
    .await
    .unwrap();
    say("STEP volume");
    let sec_name = format!("{s}_db_password_v1");
    let sec = d
        .create_secret(SecretSpec {
            name: Some(sec_name.clone()),
            labels: Some(labels(s)),
            data: Some(b64(b"hunter2")),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    say("STEP secret");
    let cfg_name = format!("{s}_app_conf_v1");
    let cfg = d
        .create_config(ConfigSpec {
            name: Some(cfg_name.clone()),
            labels: Some(labels(s)),
            data: Some(b64(b"listen 80;")),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    say("STEP config");
    let spec = ServiceSpec {
        name: Some(format!("{s}_app")),
        labels: Some(labels(s)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(IMAGE.into()),
                labels: Some(labels(s)),
                command: Some(vec!["/bin/sh".into(), "-c".into(), "exec sleep 100000".into()]),
                stop_grace_period: Some(SEC),
                mounts: Some(vec![Mount {
                    target: Some("/data".into()),
                    source: Some(vol),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                secrets: Some(vec![TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile {
                        name: Some("db_password".into()),
                        uid: Some("0".into()),
                        gid: Some("0".into()),
                        mode: Some(0o400),
                    }),
                    secret_id: Some(sec),
                    secret_name: Some(sec_name),
                }]),
                configs: Some(vec![TaskSpecContainerSpecConfigs {
                    file: Some(TaskSpecContainerSpecFile1 {
                        name: Some("/etc/app.conf".into()),
                        uid: Some("0".into()),
                        gid: Some("0".into()),
                        mode: Some(0o444),
                    }),
                    config_id: Some(cfg),
                    config_name: Some(cfg_name),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(net),
                aliases: Some(vec!["app".into()]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        ..Default::default()
    };
    d.create_service(spec, None).await.unwrap();
    say(&format!("READY {} {} {}", plan.run_id, plan.stack, plan.domain));

    // Keep working until told to exit (a line on stdin, or stdin closed when
    // the test process is gone).
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        stop2.store(true, Ordering::SeqCst);
    });
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = d
            .create_secret(SecretSpec {
                name: Some(format!("{s}_churn_{n}")),
                labels: Some(labels(s)),
                data: Some(b64(b"x")),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        let tmp = env_dir.join(".env.tmp");
        std::fs::write(&tmp, format!("TYPE=standin\nDOMAIN={}\nN={n}\n", plan.domain)).unwrap();
        std::fs::rename(&tmp, &env_file).unwrap();
        d.delete_secret(&id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A normal end that leaves its app behind (as a run whose teardown
    // failed would): only the lease goes.
    drop(lease);
    say("EXITING");
}

/// A running stand-in, seen from the test.
struct Standin {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    run_id: String,
    stack: String,
    domain: String,
    last_step: String,
}

impl Standin {
    /// Remembers what a line says about the run's progress.
    fn note(&mut self, l: &str) {
        if let Some(rest) = l.strip_prefix("STEP ") {
            self.last_step = rest.split(' ').next().unwrap_or("").to_string();
            if let Some(p) = rest.strip_prefix("plan ") {
                let mut it = p.split(' ');
                self.run_id = it.next().unwrap_or_default().to_string();
                self.stack = it.next().unwrap_or_default().to_string();
            }
        } else if let Some(rest) = l.strip_prefix("READY ") {
            self.last_step = "ready".into();
            self.domain = rest.split(' ').nth(2).unwrap_or_default().to_string();
        }
    }

    /// Waits for `STANDIN <prefix>...`; panics after `t`.
    fn wait_for(&mut self, prefix: &str, t: Duration) -> String {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.note(&l);
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(e) => panic!("stand-in pid {} never said {prefix:?}: {e}", self.child.id()),
            }
        }
    }

    /// Takes in the lines said so far (to know the last step reached).
    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.note(&l);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join(); // everything it said before it died
        }
        self.drain();
    }

    /// Asks it to finish normally and waits for a zero exit.
    fn exit_normally(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "exit").unwrap();
        drop(stdin);
        let st = self.child.wait().unwrap();
        assert!(st.success(), "stand-in {} exited {st}", self.stack);
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// One test's world: domain, state dir, fixture recipe, cleanup guard

struct World {
    d: Docker,
    tmp: tempfile::TempDir,
    /// Unique token in every name of this test (`j<10 hex>`).
    token: String,
    domain: String,
    suffix: String,
}

impl World {
    fn new(d: &Docker) -> World {
        let token = format!("j{}", test_support::token());
        let domain = format!("{token}.test");
        let w = World {
            d: d.clone(),
            tmp: tempfile::tempdir().unwrap(),
            suffix: janitor::stack_suffix(&domain),
            token,
            domain,
        };
        w.make_recipe();
        w
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn recipe(&self) -> PathBuf {
        self.tmp.path().join("standin")
    }

    /// A minimal recipe checkout with one release, enough for [`RunPlan`].
    fn make_recipe(&self) {
        let r = self.recipe();
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=standin\n").unwrap();
        std::fs::write(
            r.join("compose.yml"),
            format!(
                "services:\n  app:\n    image: {IMAGE}\n    deploy:\n      labels:\n        \
                 - coop-cloud.${{STACK_NAME}}.version=1.0.0+1.0\n"
            ),
        )
        .unwrap();
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &["commit", "-q", "-m", "1.0.0"],
            &["tag", "-a", "1.0.0+1.0", "-m", "1.0.0"],
        ] {
            let out = Command::new("git")
                .arg("-C")
                .arg(&r)
                .args(["-c", "user.email=t@t", "-c", "user.name=t"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        }
    }

    fn spawn_standin(&self) -> Standin {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "standin_ccci_test_run",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STANDIN_ENV, "1")
            .env("STANDIN_STATE", self.state())
            .env("STANDIN_DOMAIN", &self.domain)
            .env("STANDIN_RECIPE", self.recipe())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("STANDIN ") {
                    if tx.send(line[i + "STANDIN ".len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Standin {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            reader: Some(reader),
            run_id: String::new(),
            stack: String::new(),
            domain: String::new(),
            last_step: "spawned".into(),
        }
    }

    async fn sweep(&self) -> SweepReport {
        let r = janitor::sweep(&self.d, &self.state(), &self.suffix, TEARDOWN)
            .await
            .expect("sweep");
        for a in &r.apps {
            eprintln!("  sweep: {a}");
        }
        r
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.state().join("runs").join(run_id)
    }

    fn lease_path(&self, stack: &str) -> PathBuf {
        lease::lease_path(&self.state(), stack)
    }

    /// Every Docker object whose name or namespace label carries this
    /// test's token.
    async fn leftovers(&self) -> Vec<String> {
        leftovers_with(&self.d, &self.token).await
    }

    /// Files under `<state>/leases` and `<state>/runs`.
    fn state_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["leases", "runs"] {
            if let Ok(rd) = std::fs::read_dir(self.state().join(sub)) {
                for e in rd.flatten() {
                    out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out
    }
}

async fn leftovers_with(d: &Docker, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let has = |name: &str, l: Option<&HashMap<String, String>>| {
        name.contains(token)
            || l.and_then(|l| l.get(NAMESPACE_LABEL))
                .is_some_and(|n| n.contains(token))
    };
    for s in d.list_services(None::<ListServicesOptions>).await.unwrap() {
        let sp = s.spec.unwrap_or_default();
        let n = sp.name.unwrap_or_default();
        if has(&n, sp.labels.as_ref()) {
            out.push(format!("service {n}"));
        }
    }
    let cs = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    for c in cs {
        let n = c.names.unwrap_or_default().join(",");
        if has(&n, c.labels.as_ref()) {
            out.push(format!("container {n}"));
        }
    }
    for n in d.list_networks(None::<ListNetworksOptions>).await.unwrap() {
        let name = n.name.unwrap_or_default();
        if has(&name, n.labels.as_ref()) {
            out.push(format!("network {name}"));
        }
    }
    for v in d
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
    {
        if has(&v.name, Some(&v.labels)) {
            out.push(format!("volume {}", v.name));
        }
    }
    for s in d.list_secrets(None::<ListSecretsOptions>).await.unwrap() {
        let sp = s.spec.unwrap_or_default();
        let n = sp.name.unwrap_or_default();
        if has(&n, sp.labels.as_ref()) {
            out.push(format!("secret {n}"));
        }
    }
    for c in d.list_configs(None::<ListConfigsOptions>).await.unwrap() {
        let sp = c.spec.unwrap_or_default();
        let n = sp.name.unwrap_or_default();
        if has(&n, sp.labels.as_ref()) {
            out.push(format!("config {n}"));
        }
    }
    out.sort();
    out
}

/// Tears down every stack whose namespace label carries `token`, and
/// removes unlabelled objects named with it.
async fn cleanup_token(d: &Docker, token: &str) {
    let mut stacks = std::collections::BTreeSet::new();
    for s in d.list_services(None::<ListServicesOptions>).await.unwrap_or_default() {
        if let Some(ns) = s
            .spec
            .and_then(|sp| sp.labels)
            .and_then(|l| l.get(NAMESPACE_LABEL).cloned())
        {
            stacks.insert(ns);
        }
    }
    for v in d
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default()
    {
        match v.labels.get(NAMESPACE_LABEL) {
            Some(ns) => {
                stacks.insert(ns.clone());
            }
            None if v.name.contains(token) => {
                let _ = d
                    .remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                    .await;
            }
            None => {}
        }
    }
    for s in d.list_secrets(None::<ListSecretsOptions>).await.unwrap_or_default() {
        if let Some(ns) = s
            .spec
            .and_then(|sp| sp.labels)
            .and_then(|l| l.get(NAMESPACE_LABEL).cloned())
        {
            stacks.insert(ns);
        }
    }
    for c in d.list_configs(None::<ListConfigsOptions>).await.unwrap_or_default() {
        if let Some(ns) = c
            .spec
            .and_then(|sp| sp.labels)
            .and_then(|l| l.get(NAMESPACE_LABEL).cloned())
        {
            stacks.insert(ns);
        }
    }
    for n in d.list_networks(None::<ListNetworksOptions>).await.unwrap_or_default() {
        if let Some(ns) = n.labels.and_then(|l| l.get(NAMESPACE_LABEL).cloned()) {
            stacks.insert(ns);
        }
    }
    for s in stacks.into_iter().filter(|s| s.contains(token)) {
        match stack::teardown(d, &s, TEARDOWN).await {
            Ok(r) if r.is_clean() => {}
            other => eprintln!("!!! cleanup of stack {s} incomplete: {other:?}"),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let d = self.d.clone();
        let token = self.token.clone();
        on_fresh_runtime(move |rt| rt.block_on(cleanup_token(&d, &token)));
    }
}

/// What of a stack must stay exactly as it is while its run lives.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// kind -> (name, id), without the stand-in's churn secrets and tasks.
    objects: BTreeMap<String, Vec<(String, String)>>,
    /// Running container ids.
    running: Vec<String>,
}

async fn snapshot(d: &Docker, stack: &str) -> Snapshot {
    let objs = stack::list_objects(d, stack).await.unwrap();
    let mut objects: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for o in objs.all() {
        if o.kind == ObjectKind::Task || o.kind == ObjectKind::Container || o.name.contains("_churn_") {
            continue;
        }
        objects
            .entry(o.kind.to_string())
            .or_default()
            .push((o.name.clone(), o.id.clone()));
    }
    Snapshot {
        objects,
        running: running_containers(d, stack).await,
    }
}

async fn running_containers(d: &Docker, stack: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{NAMESPACE_LABEL}={stack}")],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    v.sort();
    v
}

async fn wait_running(d: &Docker, stack: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_containers(d, stack).await.is_empty() {
        assert!(Instant::now() < deadline, "{stack}: no running container after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_snapshot_complete(s: &Snapshot, stack: &str) {
    for kind in ["service", "network", "volume", "secret", "config"] {
        assert_eq!(s.objects.get(kind).map(Vec::len), Some(1), "{stack} {kind}: {s:?}");
    }
    assert_eq!(s.running.len(), 1, "{stack}: {s:?}");
}

fn outcome<'a>(r: &'a SweepReport, stack: &str) -> Option<&'a Outcome> {
    r.app(stack).map(|a| &a.outcome)
}

fn removed_by<'a>(r: &'a SweepReport, stack: &str) -> Vec<&'a stack::StackObject> {
    match outcome(r, stack) {
        Some(Outcome::Reaped { removed, .. }) => removed.iter().collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_runs_are_never_reaped_killed_ones_are_reaped_completely() {
    let Some(d) = docker() else { return };
    let w = World::new(&d);
    let t0 = Instant::now();
    let mut runs: Vec<Standin> = (0..4).map(|_| w.spawn_standin()).collect();
    for r in &mut runs {
        r.wait_for("READY ", Duration::from_secs(90));
        assert!(
            r.stack.ends_with(&w.suffix) && !r.domain.is_empty(),
            "{} {}",
            r.stack,
            r.domain
        );
    }
    for r in &runs {
        wait_running(&d, &r.stack).await;
    }
    eprintln!("TIMING 4 stand-in runs ready and running after {:?}", t0.elapsed());
    let mut before = Vec::new();
    for r in &runs {
        let s = snapshot(&d, &r.stack).await;
        assert_snapshot_complete(&s, &r.stack);
        assert!(Lease::is_held(&w.lease_path(&r.stack)));
        before.push(s);
    }

    // 1. Four live runs: the janitor reaps nothing of theirs.
    let t = Instant::now();
    let rep = w.sweep().await;
    eprintln!("TIMING sweep over 4 live runs: {:?}", t.elapsed());
    assert_eq!(rep.apps.len(), 4, "{rep:#?}");
    for (r, b) in runs.iter().zip(&before) {
        match outcome(&rep, &r.stack) {
            Some(Outcome::Live { holder: Some(h) }) => {
                assert_eq!(h.pid, r.child.id(), "the lease names the run's process");
                assert_eq!(h.run_id, r.run_id);
                assert_eq!(h.holder, Holder::Run);
            }
            other => panic!("{}: expected live, got {other:?}", r.stack),
        }
        assert_eq!(&snapshot(&d, &r.stack).await, b, "{} untouched", r.stack);
        assert!(w.run_dir(&r.run_id).join("abra/servers/default").is_dir());
    }
    assert!(rep.nothing_done(), "{rep:#?}");

    // 2. SIGKILL two of them at random points of their work.
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by_key(|_| rand_u64());
    let (killed, live) = (vec![order[0], order[1]], vec![order[2], order[3]]);
    for &k in &killed {
        let delay = Duration::from_millis(rand_below(1500));
        std::thread::sleep(delay);
        runs[k].kill();
        eprintln!(
            "killed {} (pid {}) with SIGKILL {delay:?} into its work",
            runs[k].stack,
            runs[k].child.id()
        );
        assert!(
            w.lease_path(&runs[k].stack).exists(),
            "a SIGKILLed run leaves its lease file"
        );
        assert!(!Lease::is_held(&w.lease_path(&runs[k].stack)), "the kernel released it");
    }

    // 3. Two janitors at once, while the two survivors keep working.
    let t = Instant::now();
    let (a, b) = {
        let (d1, d2) = (d.clone(), d.clone());
        let (s1, s2) = (w.state(), w.state());
        let (x1, x2) = (w.suffix.clone(), w.suffix.clone());
        let j1 = tokio::spawn(async move { janitor::sweep(&d1, &s1, &x1, TEARDOWN).await.unwrap() });
        let j2 = tokio::spawn(async move { janitor::sweep(&d2, &s2, &x2, TEARDOWN).await.unwrap() });
        (j1.await.unwrap(), j2.await.unwrap())
    };
    eprintln!("TIMING two concurrent sweeps: {:?}", t.elapsed());
    for (n, r) in [("A", &a), ("B", &b)] {
        for app in &r.apps {
            eprintln!("  janitor {n}: {app}");
        }
        assert!(!r.has_failures(), "{r:#?}");
    }
    for &k in &killed {
        let s = &runs[k].stack;
        assert!(
            stack::verify_clean(&d, s).await.unwrap().is_empty(),
            "{s}: {:?}",
            stack::verify_clean(&d, s).await
        );
        assert!(!w.run_dir(&runs[k].run_id).exists(), "{s}: run folder left");
        assert!(!w.lease_path(s).exists(), "{s}: lease left");
        // Reaped once: one janitor removed its objects, the other removed
        // none of them (it saw the lease held by the first, or nothing left).
        let (ra, rb) = (removed_by(&a, s), removed_by(&b, s));
        assert!(
            ra.iter().all(|o| !rb.contains(o)),
            "{s}: both janitors removed the same object: {ra:?} / {rb:?}"
        );
        let total = ra.len() + rb.len();
        assert!(
            total >= 5,
            "{s}: service, network, volume, secret, config removed: {ra:?} {rb:?}"
        );
        for (o, other) in [(outcome(&a, s), outcome(&b, s)), (outcome(&b, s), outcome(&a, s))] {
            if let Some(Outcome::Live { holder }) = o {
                assert_eq!(holder.as_ref().map(|h| h.holder), Some(Holder::Janitor), "{s}: {o:?}");
                assert!(matches!(other, Some(Outcome::Reaped { .. })), "{s}: {other:?}");
            }
        }
    }
    for &l in &live {
        let r = &runs[l];
        for rep in [&a, &b] {
            assert!(
                matches!(outcome(rep, &r.stack), Some(Outcome::Live { .. })),
                "{}: {:?}",
                r.stack,
                outcome(rep, &r.stack)
            );
        }
        assert_eq!(&snapshot(&d, &r.stack).await, &before[l], "{} intact", r.stack);
        assert!(Lease::is_held(&w.lease_path(&r.stack)), "{}: lease still held", r.stack);
        let env = w
            .run_dir(&r.run_id)
            .join("abra/servers/default")
            .join(format!("{}.env", r.domain));
        assert!(env.is_file(), "{}: env file {} intact", r.stack, env.display());
    }
    // The survivors are still working (their churn goes on).
    for &l in &live {
        runs[l].drain();
        assert!(
            runs[l].child.try_wait().unwrap().is_none(),
            "{} still running",
            runs[l].stack
        );
    }

    // 4. The survivors finish normally (dropping their leases, leaving their
    // apps behind); the next sweep reaps those.
    for &l in &live {
        runs[l].exit_normally();
        assert!(
            !w.lease_path(&runs[l].stack).exists(),
            "a dropped lease removes its file"
        );
        assert!(!stack::verify_clean(&d, &runs[l].stack).await.unwrap().is_empty());
        assert!(w.run_dir(&runs[l].run_id).exists());
    }
    let t = Instant::now();
    let rep = w.sweep().await;
    eprintln!("TIMING sweep of 2 finished runs' leftovers: {:?}", t.elapsed());
    for &l in &live {
        let r = &runs[l];
        match outcome(&rep, &r.stack) {
            Some(Outcome::Reaped {
                removed,
                run_dir_removed: true,
                ..
            }) => assert!(removed.len() >= 5, "{removed:?}"),
            other => panic!("{}: expected reaped, got {other:?}", r.stack),
        }
    }
    assert!(w.leftovers().await.is_empty(), "{:?}", w.leftovers().await);
    assert!(w.state_files().is_empty(), "{:?}", w.state_files());

    // 5. A second sweep is a no-op.
    let again = w.sweep().await;
    assert!(again.apps.is_empty() && again.nothing_done(), "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_killed_at_random_points_of_their_setup_leave_nothing_after_a_sweep() {
    let Some(d) = docker() else { return };
    let w = World::new(&d);
    // Kill eight stand-ins at random moments of their start-up (a start-up
    // takes about 40 ms here once the binary is warm): before the lease,
    // between lease and folder, in the middle of creating the stack, or
    // just after.
    let mut runs = Vec::new();
    for i in 0..8u64 {
        let mut r = w.spawn_standin();
        let at = Duration::from_millis(i * 8 + rand_below(8));
        std::thread::sleep(at);
        r.kill();
        eprintln!(
            "killed stand-in {i} (pid {}) {at:?} after its start, last step: {} {}",
            r.child.id(),
            r.last_step,
            r.stack
        );
        runs.push(r);
    }
    let before_ready = runs.iter().filter(|r| r.last_step != "ready").count();
    assert!(
        before_ready >= 2,
        "only {before_ready} stand-ins were killed during their start-up"
    );
    let rep = w.sweep().await;
    assert!(!rep.has_failures(), "{rep:#?}");
    assert!(w.leftovers().await.is_empty(), "{:?}", w.leftovers().await);
    assert!(w.state_files().is_empty(), "{:?}", w.state_files());
    // Every run that got as far as a lease was a candidate and is reaped.
    for r in &runs {
        if !r.stack.is_empty() && r.last_step != "plan" {
            assert!(
                rep.app(&r.stack).is_some_and(|a| a.reaped()),
                "{} (last step {}): {rep:#?}",
                r.stack,
                r.last_step
            );
        }
    }
    let again = w.sweep().await;
    assert!(again.apps.is_empty() && again.nothing_done(), "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_apps_stacks_are_never_touched() {
    let Some(d) = docker() else { return };
    let w = World::new(&d);
    let tok = &w.token;
    // Our suffix but not a test app's shape (the Traefik of this domain); a
    // test app of another wildcard domain; one whose suffix only looks like
    // ours; one that extends one of ours.
    let traefik = format!("traefik{}", w.suffix);
    let other_domain = format!("app-abc123_other{tok}_test");
    let lookalike = format!("app-abc123_x{}", &w.suffix[1..]);
    let extends = format!("app-abc123{}_x", w.suffix);
    let foreign = [
        traefik.clone(),
        other_domain.clone(),
        lookalike.clone(),
        extends.clone(),
    ];
    for s in &foreign {
        test_support::make_stack_objects(&d, s).await;
    }
    // A lease and run folder of the other domain's app in our state dir (a
    // state dir shared with another configuration).
    let other_lease = LeaseInfo::new(
        "abc123",
        &format!("app-abc123.other{tok}.test"),
        &other_domain,
        Holder::Run,
    );
    std::fs::create_dir_all(w.state().join("leases")).unwrap();
    std::fs::write(w.lease_path(&other_domain), serde_json::to_vec(&other_lease).unwrap()).unwrap();
    std::fs::create_dir_all(w.run_dir("abc123").join("abra")).unwrap();
    // And one dead app of ours (its run folder is here), so the sweep has
    // work to do.
    let ours = format!("app-def456{}", w.suffix);
    test_support::make_stack_objects(&d, &ours).await;
    std::fs::create_dir_all(w.run_dir("def456")).unwrap();

    let mut before = BTreeMap::new();
    for s in &foreign {
        let objs = stack::verify_clean(&d, s).await.unwrap();
        assert_eq!(objs.len(), 3, "{s}: {objs:?}");
        before.insert(s.clone(), objs);
    }
    let rep = w.sweep().await;
    for s in &foreign {
        assert_eq!(stack::verify_clean(&d, s).await.unwrap(), before[s], "{s} untouched");
    }
    assert!(rep.app(&traefik).is_none() && rep.app(&lookalike).is_none() && rep.app(&extends).is_none());
    assert_eq!(outcome(&rep, &other_domain), Some(&Outcome::NotOurs));
    assert!(w.lease_path(&other_domain).is_file(), "its lease is not ours to remove");
    assert!(w.run_dir("abc123").is_dir(), "its run folder is not ours to remove");
    assert!(rep.app(&ours).is_some_and(|a| a.reaped()), "{rep:#?}");
    assert!(stack::verify_clean(&d, &ours).await.unwrap().is_empty());
    // Dry run: says, removes nothing.
    test_support::make_stack_objects(&d, &ours).await;
    std::fs::create_dir_all(w.run_dir("def456")).unwrap();
    let dry = janitor::sweep_with(
        &d,
        &janitor::SweepOptions {
            state_dir: w.state(),
            stack_suffix: w.suffix.clone(),
            timeout: TEARDOWN,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome(&dry, &ours), Some(Outcome::WouldReap { objects }) if objects.len() == 3),
        "{dry:#?}"
    );
    assert_eq!(
        stack::verify_clean(&d, &ours).await.unwrap().len(),
        3,
        "dry run removed nothing"
    );
    for s in foreign.iter().chain([&ours]) {
        let r = stack::teardown(&d, s, TEARDOWN).await.unwrap();
        assert!(r.is_clean(), "{r:?}");
    }
}

/// A service of `stack` (busybox, sleeping) with the namespace label and
/// `extra` labels, as the native deployer's owner labels would be.
async fn labelled_service(d: &Docker, stack: &str, extra: &BTreeMap<String, String>) {
    let mut l = labels(stack);
    l.extend(extra.clone());
    d.create_service(
        ServiceSpec {
            name: Some(format!("{stack}_app")),
            labels: Some(l),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(IMAGE.into()),
                    labels: Some(labels(stack)),
                    command: Some(vec!["/bin/sh".into(), "-c".into(), "exec sleep 100000".into()]),
                    stop_grace_period: Some(SEC),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_state_dirs_apps_are_left_to_their_own_janitor() {
    let Some(d) = docker() else { return };
    let w = World::new(&d);
    let other = w.tmp.path().join("state-b");
    let sweep_other = || async {
        let r = janitor::sweep(&d, &other, &w.suffix, TEARDOWN).await.expect("sweep");
        for a in &r.apps {
            eprintln!("  other state's sweep: {a}");
        }
        r
    };
    // A live run of this state dir (its lease is here, not in the other).
    let mut run = w.spawn_standin();
    run.wait_for("READY ", Duration::from_secs(90));
    wait_running(&d, &run.stack).await;
    let before = snapshot(&d, &run.stack).await;
    // An app labelled as this state dir's (no lease or run folder of it
    // anywhere), and one labelled as a state dir that no longer exists.
    let me = cc_ci::state::owner::Owner::of(&w.state()).unwrap();
    let mine = format!("app-aaa111{}", w.suffix);
    labelled_service(&d, &mine, &me.labels()).await;
    let gone_dir = w.tmp.path().join("state-gone");
    let gone = cc_ci::state::owner::Owner::of(&gone_dir).unwrap();
    let orphan = format!("app-bbb222{}", w.suffix);
    labelled_service(&d, &orphan, &gone.labels()).await;
    std::fs::remove_dir_all(&gone_dir).unwrap();

    // The other state dir's janitor: the live run and this state's app are
    // not its to reap (the defect: it took a lease in its own state dir,
    // found it free, and tore the live run down); the orphan is.
    let rep = sweep_other().await;
    assert_eq!(
        outcome(&rep, &run.stack),
        Some(&Outcome::Foreign { owner_dir: None }),
        "{rep:#?}"
    );
    assert!(
        matches!(outcome(&rep, &mine), Some(Outcome::Foreign { owner_dir: Some(dir) }) if *dir == me.dir.display().to_string()),
        "{rep:#?}"
    );
    assert!(rep.app(&orphan).is_some_and(|a| a.reaped()), "{rep:#?}");
    assert!(stack::verify_clean(&d, &orphan).await.unwrap().is_empty());
    assert_eq!(snapshot(&d, &run.stack).await, before, "the live run is intact");
    assert!(Lease::is_held(&w.lease_path(&run.stack)));
    assert!(!stack::verify_clean(&d, &mine).await.unwrap().is_empty());
    assert!(
        !other.join("leases").exists() || std::fs::read_dir(other.join("leases")).unwrap().next().is_none(),
        "no lease of another's app is left in the other state dir"
    );

    // The run dies: still not the other's to reap; its own janitor reaps
    // both its apps.
    run.kill();
    let rep = sweep_other().await;
    assert_eq!(outcome(&rep, &run.stack), Some(&Outcome::Foreign { owner_dir: None }));
    assert!(!stack::verify_clean(&d, &run.stack).await.unwrap().is_empty());
    let rep = w.sweep().await;
    assert!(rep.app(&run.stack).is_some_and(|a| a.reaped()), "{rep:#?}");
    assert!(rep.app(&mine).is_some_and(|a| a.reaped()), "{rep:#?}");
    assert!(w.leftovers().await.is_empty(), "{:?}", w.leftovers().await);
}

/// A run id no other taker of this process drew: as a real run's is
/// (`RunPlan::fresh` redraws one in use). Random ids alone can collide, and
/// a take of an id whose earlier app a janitor is reaping is rightly
/// refused, which is not what is tested.
fn fresh_run_id() -> String {
    static USED: std::sync::LazyLock<Mutex<std::collections::HashSet<u32>>> =
        std::sync::LazyLock::new(|| Mutex::new(std::collections::HashSet::new()));
    loop {
        let n = rand_below(1 << 24) as u32;
        if USED.lock().unwrap().insert(n) {
            return format!("{n:06x}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn leases_being_taken_are_never_reaped_under_a_hammer() {
    let Some(d) = docker() else { return };
    let w = Arc::new(World::new(&d));
    let run_for = Duration::from_secs(6);
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let taken = Arc::new(AtomicUsize::new(0));
    let lease_reaps = Arc::new(AtomicUsize::new(0));
    let lease_held = Arc::new(AtomicUsize::new(0));

    // Takers: take a lease as a run does, make the app's folder and a
    // volume, hold it a random while checking nothing of it vanished, then
    // drop the lease and leave the app for the janitors. The first holds
    // one lease from before the janitors start until after they stop, as
    // a long run does, so that every sweep meets a live app (the short
    // holds alone were missed by every sweep once, on a loaded machine).
    let mut tasks = Vec::new();
    let long_stop = Arc::new(AtomicBool::new(false));
    let long_ready = Arc::new(AtomicBool::new(false));
    let mut long_holder = None;
    for taker in 0..5 {
        let long = taker == 0;
        let (w, violations, taken, ready) = (w.clone(), violations.clone(), taken.clone(), long_ready.clone());
        let stop = if long { long_stop.clone() } else { stop.clone() };
        let task = tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let run_id = fresh_run_id();
                let domain = format!("h-{run_id}.{}", w.domain);
                let stack = cc_ci::run::plan::stack_name(&domain);
                let info = LeaseInfo::new(&run_id, &domain, &stack, Holder::Run);
                let lease = match Lease::take(&w.state(), info) {
                    Ok(l) => l,
                    Err(e) => {
                        violations.lock().unwrap().push(format!("take {stack}: {e}"));
                        continue;
                    }
                };
                taken.fetch_add(1, Ordering::SeqCst);
                let env_dir = w.run_dir(&run_id).join("abra/servers/default");
                std::fs::create_dir_all(&env_dir).unwrap();
                let env = env_dir.join(format!("{domain}.env"));
                std::fs::write(&env, "TYPE=h\n").unwrap();
                let vol = format!("{stack}_data");
                w.d.create_volume(VolumeCreateRequest {
                    name: Some(vol.clone()),
                    labels: Some(labels(&stack)),
                    ..Default::default()
                })
                .await
                .unwrap();
                if long {
                    ready.store(true, Ordering::SeqCst);
                }
                let hold = Instant::now() + Duration::from_millis(if long { 3_600_000 } else { rand_below(40) });
                loop {
                    let mut bad = Vec::new();
                    if !Lease::is_held(lease.path()) {
                        bad.push("lease file gone or not held");
                    }
                    if lease::read_info(lease.path()).map(|i| i.run_id) != Some(run_id.clone()) {
                        bad.push("lease file replaced");
                    }
                    if !env.is_file() {
                        bad.push("env file removed");
                    }
                    if w.d.inspect_volume(&vol).await.is_err() {
                        bad.push("volume removed");
                    }
                    if !bad.is_empty() {
                        violations.lock().unwrap().push(format!("{stack} while held: {bad:?}"));
                        break;
                    }
                    if Instant::now() >= hold || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                drop(lease);
            }
        });
        if long {
            long_holder = Some(task);
            while !long_ready.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            tasks.push(task);
        }
    }
    // Lease-only takers in tight loops, so that leases are very often in
    // the middle of being taken while the lease-level janitors below look.
    let quick_takes = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (w, stop, violations, quick_takes) = (w.clone(), stop.clone(), violations.clone(), quick_takes.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::SeqCst) {
                let run_id = fresh_run_id();
                let stack = format!("q-{run_id}{}", w.suffix);
                let lease = match Lease::take(&w.state(), LeaseInfo::new(&run_id, "", &stack, Holder::Run)) {
                    Ok(l) => l,
                    Err(e) => {
                        violations.lock().unwrap().push(format!("take {stack}: {e}"));
                        continue;
                    }
                };
                quick_takes.fetch_add(1, Ordering::SeqCst);
                for _ in 0..3 {
                    if !Lease::is_held(lease.path())
                        || lease::read_info(lease.path()).map(|i| i.run_id) != Some(run_id.clone())
                    {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{stack}: lease lost while held"));
                        break;
                    }
                }
                drop(lease);
            }
        }));
    }
    // Lease-level janitors in tight loops: what the janitor does with a
    // lease (try it, and if it is free take it and remove it), thousands of
    // times a second, to hit a lease in the middle of being taken.
    for _ in 0..2 {
        let (w, stop, lease_reaps, lease_held) = (w.clone(), stop.clone(), lease_reaps.clone(), lease_held.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::SeqCst) {
                for l in Lease::list(&w.state()).unwrap() {
                    let info = LeaseInfo::new("", "", &l.stack, Holder::Janitor);
                    match Lease::try_take(&w.state(), info).unwrap() {
                        lease::TryTake::Taken(t) => {
                            if !t.created() {
                                lease_reaps.fetch_add(1, Ordering::SeqCst);
                            }
                            drop(t);
                        }
                        lease::TryTake::Held(_) => {
                            lease_held.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                let _ = Lease::remove_dead_temp_files(&w.state(), Duration::from_secs(60));
            }
        }));
    }
    // Two full janitors.
    let sweeps = Arc::new(Mutex::new(Vec::<SweepReport>::new()));
    for _ in 0..2 {
        let (w, stop, sweeps) = (w.clone(), stop.clone(), sweeps.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let r = janitor::sweep(&w.d, &w.state(), &w.suffix, TEARDOWN).await.unwrap();
                sweeps.lock().unwrap().push(r);
            }
        }));
    }
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    long_stop.store(true, Ordering::SeqCst);
    long_holder.expect("the long holder").await.unwrap();
    let sweeps = std::mem::take(&mut *sweeps.lock().unwrap());
    let reaped: usize = sweeps
        .iter()
        .flat_map(|s| &s.apps)
        .filter(|a| matches!(&a.outcome, Outcome::Reaped { removed, .. } if !removed.is_empty()))
        .count();
    let live: usize = sweeps.iter().flat_map(|s| &s.apps).filter(|a| a.live()).count();
    let taken = taken.load(Ordering::SeqCst);
    let quick = quick_takes.load(Ordering::SeqCst);
    let held = lease_held.load(Ordering::SeqCst);
    eprintln!(
        "TIMING hammer {run_for:?}: {taken} app leases and {quick} quick leases taken, {} sweeps ({reaped} apps reaped, {live} seen live), lease-level janitors found {held} held and took over {} free leases",
        sweeps.len(),
        lease_reaps.load(Ordering::SeqCst)
    );
    let v = violations.lock().unwrap().clone();
    assert!(v.is_empty(), "{} violations: {v:#?}", v.len());
    // The hammer really hammered: many takes, sweeps that reaped and sweeps
    // that found live leases. (Floors, not speeds: ~2,100 quick takes in 6 s
    // on an idle 2-core machine, ~800 under CI load.)
    assert!(
        taken >= 20 && quick >= 200 && held >= 100,
        "only {taken} / {quick} takes, {held} seen held"
    );
    assert!(
        // Every sweep meets the long holder's app live.
        sweeps.len() >= 4 && reaped >= 5 && live >= sweeps.len(),
        "sweeps {} reaped {reaped} live {live}",
        sweeps.len()
    );
    assert!(
        sweeps.iter().all(|s| !s.has_failures()),
        "{:#?}",
        sweeps.iter().filter(|s| s.has_failures()).collect::<Vec<_>>()
    );
    // Everything left after the hammer goes in one more sweep.
    let last = w.sweep().await;
    assert!(!last.has_failures(), "{last:#?}");
    assert!(w.leftovers().await.is_empty(), "{:?}", w.leftovers().await);
    assert!(w.state_files().is_empty(), "{:?}", w.state_files());
}
