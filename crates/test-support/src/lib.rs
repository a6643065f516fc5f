//! Support shared by cc-ci's integration tests (`crates/*/tests/*.rs`): the
//! outside components a test needs (a Docker engine, a swarm manager, the
//! pinned sops and Traefik binaries, Chromium, the fixture images, the
//! busybox test image, tmux), and the small helpers several test files need.
//!
//! # The policy: a missing part fails the test
//!
//! A test asks for what it needs first: [`need`], or a typed helper
//! ([`docker`], [`docker_with`], [`sops`], [`traefik`], [`chromium`]). When
//! the component is there, the answer is `true` / `Some`. When it is missing,
//! **the test fails**: it panics naming the component, why it is missing and
//! how to get it. A test never passes by quietly doing nothing.
//!
//! Skipping is allowed only when asked for, with `CCCI_ALLOW_SKIP=1` (every
//! component) or a list of component names (`CCCI_ALLOW_SKIP=docker,chromium`;
//! names as [`Component::name`] gives them). Then a missing component makes the
//! test print, straight to stderr (not captured by the test harness),
//!
//! ```text
//! SKIPPED (<component> missing: <why>; <fix>): <test name>
//! ```
//!
//! append one line `<component>\t<test name>\t<why>` to the skip log
//! ([`skip_log`]: `$CCCI_SKIP_LOG`, else `<workspace>/target/ccci-skips.log`)
//! and return `false` / `None`, and the test returns early. `scripts/test`
//! counts the skip log's lines in its closing `total:` line, so skips are
//! counted, never hidden among the passes. The test name is the current
//! thread's name, which the test harness sets to the test's path.
//!
//! Tests never create a swarm: [`Component::Swarm`] only checks that this
//! node is a swarm manager with the `proxy` network (`target/debug/swarm-init`
//! makes it one; `scripts/test` and `scripts/test-host` run it). The one
//! exception is swarm-init's own CLI tests, through [`swarm_init_allowed`].
//!
//! This crate does not depend on `cc-ci`, so that every crate of the
//! workspace, `cc-ci` itself included, can use it as a dev-dependency.
//!
//! Typical use:
//!
//! ```no_run
//! use test_support::Component;
//!
//! fn deploys_a_stack() {
//!     let Some(d) = test_support::docker_with(&[Component::Swarm, Component::BusyboxImage]) else {
//!         return; // skipped: only when CCCI_ALLOW_SKIP allows it
//!     };
//!     // ... use `d`, a connected `bollard::Docker`
//! #   drop(d);
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use bollard::query_parameters::{CreateImageOptions, ListNetworksOptions};
use bollard::Docker;
use futures_util::TryStreamExt;

pub mod forge;

/// The busybox test image: Debian's static busybox and a few applet links,
/// nothing else (no registry can be reached, so it is imported from
/// `/bin/busybox`; see [`Component::BusyboxImage`]).
pub const BUSYBOX_IMAGE: &str = "ccci/busybox:test";

/// The overlay network Traefik and the apps share; [`Component::Swarm`]
/// requires it.
pub const PROXY_NETWORK: &str = "proxy";

/// The label `docker stack deploy` (and abra) put on a stack's objects:
/// docker/cli's `LabelNamespace`.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// The environment variable allowing skips: `1` (every component) or a
/// comma-separated list of [`Component::name`]s.
pub const ALLOW_SKIP_ENV: &str = "CCCI_ALLOW_SKIP";

/// The environment variable naming the skip log (see [`skip_log`]).
pub const SKIP_LOG_ENV: &str = "CCCI_SKIP_LOG";

/// The environment variable that lets swarm-init's CLI tests make this node
/// a swarm manager (see [`swarm_init_allowed`]).
pub const ALLOW_SWARM_INIT_ENV: &str = "CCCI_ALLOW_SWARM_INIT";

// ---------------------------------------------------------------------------
// Components

/// An outside component a test may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// A Docker engine answering (on `/var/run/docker.sock`, or a `unix://`
    /// `$DOCKER_HOST`).
    Docker,
    /// This node is a swarm manager and the `proxy` overlay network exists.
    /// Implies [`Component::Docker`].
    Swarm,
    /// The real sops binary at the pinned version (`$CCCI_SOPS`, else the
    /// tools cache).
    Sops,
    /// The real Traefik binary at the pinned version (`$CCCI_TRAEFIK`, else
    /// the tools cache).
    Traefik,
    /// Debian's headless Chromium (`$CCCI_CHROMIUM`, else `/usr/bin/chromium`).
    Chromium,
    /// The fixture images `scripts/images` builds (it runs once per test
    /// process; cached). Implies [`Component::Docker`], and the Traefik
    /// binary in the tools cache (the `ccci/traefik` image carries it).
    FixtureImages,
    /// [`BUSYBOX_IMAGE`], imported from `/bin/busybox` when absent. Implies
    /// [`Component::Docker`].
    BusyboxImage,
    /// tmux on PATH.
    Tmux,
    /// Traefik deployed on this swarm (by `traefik-deploy`) answering on
    /// 127.0.0.1:443 with the TEST-ONLY wildcard certificate for `*.ci.test`.
    /// Implies [`Component::Swarm`].
    TraefikStack,
    /// The real abra CLI (`$CCCI_ABRA`, else `abra` on PATH).
    Abra,
    /// The real Gitea binary at the pinned version, built from its Go
    /// module by `scripts/tools` (`$CCCI_GITEA`, else the tools cache).
    Gitea,
    /// Buildbot (master, www, worker) at the pinned version in the venv
    /// `scripts/buildbot install` makes.
    Buildbot,
    /// Claude Code's CLI (`claude`) at CLAUDE_CODE_VERSION, installed from
    /// the npm registry by `scripts/agent-clis` (which the check runs).
    ClaudeCode,
    /// opencode's CLI at OPENCODE_VERSION, installed from the npm registry by
    /// `scripts/agent-clis` (which the check runs).
    Opencode,
}

impl Component {
    /// Every component, in the order of the enum.
    pub const ALL: [Component; 14] = [
        Component::Docker,
        Component::Swarm,
        Component::Sops,
        Component::Traefik,
        Component::Chromium,
        Component::FixtureImages,
        Component::BusyboxImage,
        Component::Tmux,
        Component::TraefikStack,
        Component::Abra,
        Component::Gitea,
        Component::Buildbot,
        Component::ClaudeCode,
        Component::Opencode,
    ];

    /// The component's name in `CCCI_ALLOW_SKIP`, messages and the skip log.
    pub fn name(self) -> &'static str {
        match self {
            Component::Docker => "docker",
            Component::Swarm => "swarm",
            Component::Sops => "sops",
            Component::Traefik => "traefik",
            Component::Chromium => "chromium",
            Component::FixtureImages => "fixture-images",
            Component::BusyboxImage => "busybox-image",
            Component::Tmux => "tmux",
            Component::TraefikStack => "traefik-stack",
            Component::Abra => "abra",
            Component::Gitea => "gitea",
            Component::Buildbot => "buildbot",
            Component::ClaudeCode => "claude-code",
            Component::Opencode => "opencode",
        }
    }

    /// The component of that name ([`Component::name`]), case-insensitive.
    pub fn from_name(name: &str) -> Option<Component> {
        let name = name.trim();
        Component::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// What the component is: what a test needing it needs.
    pub fn needs(self) -> &'static str {
        match self {
            Component::Docker => "a Docker engine answering on /var/run/docker.sock (or a unix:// $DOCKER_HOST)",
            Component::Swarm => "this node a swarm manager with the attachable overlay network `proxy`",
            Component::Sops => "the real sops binary at SOPS_VERSION of scripts/versions.env ($CCCI_SOPS, else the tools cache)",
            Component::Traefik => {
                "the real traefik binary at TRAEFIK_VERSION of scripts/versions.env ($CCCI_TRAEFIK, else the tools cache)"
            }
            Component::Chromium => "Debian's chromium ($CCCI_CHROMIUM, else /usr/bin/chromium)",
            Component::FixtureImages => "the fixture images (ccci/nginx, ccci/postgres, ccci/webapp, ccci/traefik, ccci/restic)",
            Component::BusyboxImage => "the image ccci/busybox:test, imported from /bin/busybox (Debian's busybox-static)",
            Component::Tmux => "tmux on PATH",
            Component::TraefikStack => {
                "the Traefik recipe deployed on this swarm, serving the TEST-ONLY wildcard certificate for *.ci.test on 127.0.0.1:443"
            }
            Component::Abra => "the real abra CLI ($CCCI_ABRA, else abra on PATH)",
            Component::Gitea => {
                "the real gitea binary at GITEA_VERSION of scripts/versions.env ($CCCI_GITEA, else the tools cache)"
            }
            Component::Buildbot => "Buildbot at BUILDBOT_VERSION of scripts/versions.env, in the venv of scripts/buildbot",
            Component::ClaudeCode => "Claude Code's CLI at CLAUDE_CODE_VERSION of scripts/versions.env (npm @anthropic-ai/claude-code)",
            Component::Opencode => "opencode's CLI at OPENCODE_VERSION of scripts/versions.env (npm opencode-ai)",
        }
    }

    /// How to get the component.
    pub fn fix(self) -> &'static str {
        match self {
            Component::Docker => "scripts/dockerd starts one",
            Component::Swarm => {
                "run target/debug/swarm-init (scripts/test and scripts/test-host do); tests never create a swarm"
            }
            Component::Sops | Component::Traefik => "scripts/tools builds it",
            Component::Chromium => "scripts/ensure-packages installs it",
            Component::FixtureImages => "scripts/images builds them (after scripts/tools)",
            Component::BusyboxImage => "scripts/ensure-packages installs busybox-static; the tests import the image",
            Component::Tmux => "scripts/ensure-packages installs it",
            Component::TraefikStack => "scripts/host-up (which scripts/test and scripts/test-host run) deploys it",
            Component::Abra => {
                "install abra (nixpkgs has it); these machines cannot: the Go module proxy refuses coopcloud.tech/abra"
            }
            Component::Gitea => "scripts/tools builds it (about 5 minutes with a cold Go cache)",
            Component::Buildbot => "scripts/buildbot install makes the venv",
            Component::ClaudeCode | Component::Opencode => {
                "scripts/agent-clis installs it from the npm registry (the check ran it; its output is above)"
            }
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component found missing, and why.
struct Missing {
    component: Component,
    why: String,
}

impl Missing {
    fn new(component: Component, why: impl Into<String>) -> Missing {
        Missing {
            component,
            why: why.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// The policy

/// True when `c` is present. When it is missing the test fails (a panic
/// naming the component, why it is missing and the fix), unless
/// `CCCI_ALLOW_SKIP` allows skipping it: then the skip is printed and logged
/// (see the crate documentation) and the answer is false.
///
/// A component that implies another ([`Component::Swarm`] implies
/// [`Component::Docker`]) reports the missing prerequisite by its own name.
/// Call it on the test's own thread (first thing in the test), so that the
/// test's name is known.
#[track_caller]
pub fn need(c: Component) -> bool {
    match check(c) {
        Ok(()) => true,
        Err(m) => missing(m),
    }
}

/// A connected Docker client, when the engine answers; else as [`need`]
/// decides (a failure, or `None` when skipping is allowed).
#[track_caller]
pub fn docker() -> Option<Docker> {
    docker_with(&[])
}

/// A connected Docker client when the engine answers AND every component of
/// `also` is present (checked in order, for example
/// `&[Component::Swarm, Component::BusyboxImage]`); else as [`need`] decides.
/// Works in synchronous and asynchronous tests alike (the checks run on a
/// helper thread with its own runtime).
#[track_caller]
pub fn docker_with(also: &[Component]) -> Option<Docker> {
    if !need(Component::Docker) {
        return None;
    }
    for c in also {
        if !need(*c) {
            return None;
        }
    }
    match block(connect()) {
        Ok(d) => Some(d),
        Err(e) => {
            missing(Missing::new(Component::Docker, format!("no engine answers: {e}")));
            None
        }
    }
}

/// The real sops binary, when present; else as [`need`] decides.
#[track_caller]
pub fn sops() -> Option<PathBuf> {
    found(Component::Sops, sops_path())
}

/// The real Traefik binary, when present; else as [`need`] decides.
#[track_caller]
pub fn traefik() -> Option<PathBuf> {
    found(Component::Traefik, traefik_path())
}

/// The Chromium binary, when present; else as [`need`] decides.
#[track_caller]
pub fn chromium() -> Option<PathBuf> {
    found(Component::Chromium, chromium_path())
}

/// For swarm-init's own CLI tests, the only tests that may make this node a
/// swarm manager: true when the engine answers and this node is already a
/// swarm manager, or `CCCI_ALLOW_SWARM_INIT=1` allows the test to make it
/// one (`scripts/test` sets it; a developer's `cargo test` does not, so it
/// never turns their Docker into a swarm by accident). Otherwise the swarm
/// counts as missing, as [`need`] decides.
#[track_caller]
pub fn swarm_init_allowed() -> bool {
    if !need(Component::Docker) {
        return false;
    }
    if std::env::var(ALLOW_SWARM_INIT_ENV).as_deref() == Ok("1") {
        return true;
    }
    match block(async { manager_state(&connect().await.map_err(|e| e.to_string())?).await }) {
        Ok(()) => true,
        Err(why) => missing(Missing::new(
            Component::Swarm,
            format!(
                "{why}, and this test would make it one: set {ALLOW_SWARM_INIT_ENV}=1 to allow that \
                 (scripts/test does), or make it a manager first"
            ),
        )),
    }
}

/// The skip log: `$CCCI_SKIP_LOG` if set and not empty, else
/// `<workspace>/target/ccci-skips.log`. One line per skipped test:
/// `<component>\t<test name>\t<why>`.
pub fn skip_log() -> PathBuf {
    std::env::var_os(SKIP_LOG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/ccci-skips.log"))
}

#[track_caller]
fn found(c: Component, r: Result<PathBuf, String>) -> Option<PathBuf> {
    match r {
        Ok(p) => Some(p),
        Err(why) => {
            missing(Missing::new(c, why));
            None
        }
    }
}

/// Applies the policy to a missing component: panics, or (when allowed)
/// prints and logs the skip and returns false.
#[track_caller]
fn missing(m: Missing) -> bool {
    let c = m.component;
    let test = test_name();
    let allowed = match skip_allowed(c) {
        Ok(a) => a,
        Err(bad) => panic!(
            "{c} missing: {}\n  {ALLOW_SKIP_ENV} names unknown components {bad:?}; known: {}",
            m.why,
            Component::ALL.map(Component::name).join(", ")
        ),
    };
    if !allowed {
        panic!(
            "{c} missing: {}\n  this test needs {}\n  fix: {}\n  (to skip instead of failing: {ALLOW_SKIP_ENV}={c}, or {ALLOW_SKIP_ENV}=1 for every component; skips are logged in {})",
            m.why,
            c.needs(),
            c.fix(),
            skip_log().display()
        );
    }
    let why = one_line(&m.why);
    let log = skip_log();
    let line = format!("{c}\t{}\t{why}\n", one_line(&test));
    let written = log.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?
            .write_all(line.as_bytes())
    });
    if let Err(e) = written {
        panic!(
            "{c} missing ({why}) and skipping is allowed, but the skip cannot be recorded in {}: {e}",
            log.display()
        );
    }
    // Straight to the process's stderr: the harness captures only print macros.
    let _ = writeln!(std::io::stderr(), "\nSKIPPED ({c} missing: {why}; {}): {test}", c.fix());
    false
}

/// Whether `CCCI_ALLOW_SKIP` allows skipping `c`; Err(unknown names).
fn skip_allowed(c: Component) -> Result<bool, Vec<String>> {
    let v = std::env::var(ALLOW_SKIP_ENV).unwrap_or_default();
    let v = v.trim();
    if v.is_empty() || v == "0" {
        return Ok(false);
    }
    if v == "1" || v.eq_ignore_ascii_case("all") {
        return Ok(true);
    }
    let mut allowed = false;
    let mut unknown = Vec::new();
    for name in v.split([',', ' ']).filter(|n| !n.trim().is_empty()) {
        match Component::from_name(name) {
            Some(x) => allowed |= x == c,
            None => unknown.push(name.trim().to_string()),
        }
    }
    if unknown.is_empty() {
        Ok(allowed)
    } else {
        Err(unknown)
    }
}

/// The running test's name: the harness names each test's thread after it.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "<unnamed test thread>".to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r', '\t'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

// ---------------------------------------------------------------------------
// The checks

fn check(c: Component) -> Result<(), Missing> {
    let m = |why: String| Missing::new(c, why);
    match c {
        Component::Docker => block(async {
            let d = connect().await?;
            d.ping().await.map(drop)
        })
        .map_err(|e| m(format!("no engine answers: {e}"))),
        Component::Swarm => {
            check(Component::Docker)?;
            block(async {
                let d = connect().await.map_err(|e| e.to_string())?;
                manager_state(&d).await?;
                proxy_network(&d).await
            })
            .map_err(m)
        }
        Component::Sops => sops_path().map(drop).map_err(m),
        Component::Traefik => traefik_path().map(drop).map_err(m),
        Component::Chromium => chromium_path().map(drop).map_err(m),
        Component::FixtureImages => {
            check(Component::Docker)?;
            // scripts/images copies the cached traefik binary into ccci/traefik.
            let t = tool_path("traefik").map_err(|why| Missing::new(Component::Traefik, why))?;
            if !t.is_file() {
                return Err(Missing::new(
                    Component::Traefik,
                    format!(
                        "scripts/images builds ccci/traefik from the traefik binary, which is not built at {}",
                        t.display()
                    ),
                ));
            }
            fixture_images().map_err(m)
        }
        Component::BusyboxImage => {
            check(Component::Docker)?;
            // One check-and-import at a time in this process.
            static IMPORT: Mutex<()> = Mutex::new(());
            let _one = IMPORT.lock().unwrap_or_else(|p| p.into_inner());
            block(async {
                let d = connect().await.map_err(|e| e.to_string())?;
                ensure_busybox(&d).await
            })
            .map_err(m)
        }
        Component::TraefikStack => {
            check(Component::Swarm)?;
            traefik_serving().map_err(m)
        }
        Component::Abra => abra().map(drop).map_err(m),
        Component::Gitea => gitea_path().map(drop).map_err(m),
        Component::Buildbot => buildbot_bin().map(drop).map_err(m),
        Component::ClaudeCode | Component::Opencode => agent_cli_path(c).map(drop).map_err(m),
        Component::Tmux => match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(m(format!("`tmux -V` failed ({}): {}", o.status, output_text(&o)))),
            Err(e) => Err(m(format!("cannot run tmux: {e}"))),
        },
    }
}

/// Runs `fut` to completion on a helper thread with its own runtime, so it
/// works from synchronous tests and from inside a test's runtime alike.
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || rt().block_on(fut))
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Connects to the local engine with the API version negotiated, as
/// `cc_ci::host::swarm::connect` does.
async fn connect() -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_local_defaults()?.negotiate_version().await
}

/// Ok when this node is a swarm manager; Err(why not).
async fn manager_state(d: &Docker) -> Result<(), String> {
    let info = d.info().await.map_err(|e| format!("`docker info` failed: {e}"))?;
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm.local_node_state.map(|s| s.to_string()).unwrap_or_default();
    if state != "active" {
        let state = if state.is_empty() { "unknown" } else { &state };
        return Err(format!("this node is not in a swarm (swarm state `{state}`)"));
    }
    if swarm.control_available != Some(true) {
        return Err("this node is in a swarm but not a manager".into());
    }
    Ok(())
}

/// Ok when the `proxy` overlay network exists; Err(why not).
async fn proxy_network(d: &Docker) -> Result<(), String> {
    let filters = std::collections::HashMap::from([("name".to_string(), vec![PROXY_NETWORK.to_string()])]);
    let nets = d
        .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
        .await
        .map_err(|e| format!("cannot list networks: {e}"))?;
    match nets.iter().find(|n| n.name.as_deref() == Some(PROXY_NETWORK)) {
        None => Err(format!("there is no `{PROXY_NETWORK}` network")),
        Some(n) if n.driver.as_deref() != Some("overlay") => Err(format!(
            "the `{PROXY_NETWORK}` network is a {} network, not overlay",
            n.driver.as_deref().unwrap_or("driverless")
        )),
        Some(_) => Ok(()),
    }
}

/// Runs `scripts/images` once per test process (later calls get the first
/// answer); its output goes to the test's captured output.
fn fixture_images() -> Result<(), String> {
    static IMAGES: OnceLock<Result<String, String>> = OnceLock::new();
    let r = IMAGES.get_or_init(|| {
        let script = workspace().join("scripts/images");
        match Command::new(&script).output() {
            Ok(o) if o.status.success() => Ok(output_text(&o)),
            Ok(o) => {
                let text = output_text(&o);
                let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                Err(format!(
                    "scripts/images failed ({}): {last}\n--- its output:\n{text}",
                    o.status
                ))
            }
            Err(e) => Err(format!("cannot run {}: {e}", script.display())),
        }
    });
    match r {
        Ok(log) => {
            eprintln!("{log}");
            Ok(())
        }
        Err(e) => Err(e.clone()),
    }
}

/// Imports [`BUSYBOX_IMAGE`] from Debian's busybox-static unless present.
/// Err only when `/bin/busybox` is missing; a failing import panics (that
/// is a fault, not a missing part).
async fn ensure_busybox(d: &Docker) -> Result<(), String> {
    if d.inspect_image(BUSYBOX_IMAGE).await.is_ok() {
        return Ok(());
    }
    let busybox = std::fs::read("/bin/busybox")
        .map_err(|e| format!("cannot read /bin/busybox (Debian package busybox-static): {e}"))?;
    let tar = busybox_tar(&busybox);
    let (repo, tag) = BUSYBOX_IMAGE.split_once(':').expect("repo:tag");
    d.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        }),
        Some(bollard::body_full(tar.into())),
        None,
    )
    .try_collect::<Vec<_>>()
    .await
    .unwrap_or_else(|e| panic!("docker import of {BUSYBOX_IMAGE}: {e}"));
    d.inspect_image(BUSYBOX_IMAGE)
        .await
        .unwrap_or_else(|e| panic!("{BUSYBOX_IMAGE} is not there after its import: {e}"));
    Ok(())
}

/// The image's root file system: busybox, its applet links, /tmp and /data.
fn busybox_tar(busybox: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode) in [("bin/", 0o755), ("tmp/", 0o1777), ("data/", 0o755)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", busybox).unwrap();
    for applet in [
        "sh", "sleep", "httpd", "true", "false", "wget", "rm", "cat", "echo", "test", "touch", "ls",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    b.into_inner().unwrap()
}

// ---------------------------------------------------------------------------
// Tool paths

/// `$<env>` when set and not empty (it must be a file), else where
/// `scripts/tools` puts `name`.
fn tool_from(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("${env} is {}, which is not a file", p.display()))
        };
    }
    let p = tool_path(name)?;
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("no {name} binary at {}", p.display()))
    }
}

/// The Gitea binary (`$CCCI_GITEA`, else the tools cache).
pub fn gitea_path() -> Result<PathBuf, String> {
    tool_from("CCCI_GITEA", "gitea")
}

/// An agent CLI's program ([`Component::ClaudeCode`], [`Component::Opencode`]),
/// installed by `scripts/agent-clis` when needed; else as [`need`] decides.
#[track_caller]
pub fn agent_cli(c: Component) -> Option<PathBuf> {
    found(c, agent_cli_path(c))
}

/// The program of agent CLI `c`: runs `scripts/agent-clis <name>` once per
/// test process (it installs the pinned npm release, or finds it cached),
/// then asks it for the path. Err carries the script's whole output (npm's
/// exact error) when the install failed.
pub fn agent_cli_path(c: Component) -> Result<PathBuf, String> {
    static RUNS: OnceLock<Mutex<std::collections::HashMap<&'static str, Result<PathBuf, String>>>> = OnceLock::new();
    let name = match c {
        Component::ClaudeCode | Component::Opencode => c.name(),
        other => return Err(format!("{other} is not an agent CLI")),
    };
    let mut runs = RUNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    runs.entry(name)
        .or_insert_with(|| {
            let script = workspace().join("scripts/agent-clis");
            let install = Command::new(&script)
                .arg(name)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if !install.status.success() {
                return Err(format!(
                    "scripts/agent-clis {name} failed ({}):\n{}",
                    install.status,
                    output_text(&install).trim()
                ));
            }
            let path = Command::new(&script)
                .args(["--print-path", name])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if !path.status.success() {
                return Err(output_text(&path).trim().to_string());
            }
            Ok(PathBuf::from(String::from_utf8_lossy(&path.stdout).trim()))
        })
        .clone()
}

/// The bin folder of the Buildbot venv `scripts/buildbot install` makes
/// (`<cache>/buildbot-<version>/venv/bin`), when it is complete.
pub fn buildbot_bin() -> Result<PathBuf, String> {
    let version = pinned_version("BUILDBOT_VERSION")?;
    let venv = cache_dir().join(format!("buildbot-{version}/venv"));
    if venv.join(".complete").is_file() && venv.join("bin/buildbot").is_file() {
        Ok(venv.join("bin"))
    } else {
        Err(format!("no complete Buildbot venv at {}", venv.display()))
    }
}

fn sops_path() -> Result<PathBuf, String> {
    tool_from("CCCI_SOPS", "sops")
}

fn traefik_path() -> Result<PathBuf, String> {
    tool_from("CCCI_TRAEFIK", "traefik")
}

fn chromium_path() -> Result<PathBuf, String> {
    let p = std::env::var_os("CCCI_CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("no chromium at {}", p.display()))
    }
}

/// Where `scripts/tools` puts tool `name` (`sops`, `traefik`, `abra`):
/// `<cache>/tools/<name>-<version>/bin/<name>` with the version pinned in
/// `scripts/versions.env` (`<NAME>_VERSION`). Err when the version cannot
/// be read.
pub fn tool_path(name: &str) -> Result<PathBuf, String> {
    let version = pinned_version(&format!("{}_VERSION", name.to_ascii_uppercase()))?;
    Ok(cache_dir().join(format!("tools/{name}-{version}/bin/{name}")))
}

/// The value of `key` in `scripts/versions.env` (the one place pinning tool
/// versions); Err naming the file when it cannot be read or lacks the key.
pub fn pinned_version(key: &str) -> Result<String, String> {
    let file = workspace().join("scripts/versions.env");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {key}= in {}", file.display()))
}

/// cc-ci's cache directory: `${CCCI_CACHE:-~/.cache/cc-ci}` (tools, images,
/// the dockerd log).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CCCI_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/cc-ci"))
}

// ---------------------------------------------------------------------------
// Small shared helpers

/// The workspace root (the directory of the top `Cargo.toml`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/keys/`: the TEST-ONLY age identity, CA, wildcard certificates and
/// sops files.
pub fn test_keys() -> PathBuf {
    workspace().join("tests/keys")
}

/// A single-threaded tokio runtime with IO and time enabled, for
/// synchronous tests and `Drop` guards.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Ten random lowercase hex digits, for names no other test (or run) uses.
pub fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// `<prefix>-<token>`: a unique name for a container, network or the like.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", token())
}

/// A process's stdout followed by its stderr, as text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `git -C <dir> <args>` with a test identity (for commits and
/// annotated tags); panics with its output on failure; returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=test@cc-ci.invalid", "-c", "user.name=cc-ci test"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        output_text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The abra binary: `$CCCI_ABRA`, else `abra` on PATH.
pub fn abra() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CCCI_ABRA").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("$CCCI_ABRA is {}, which is not a file", p.display()))
        };
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("abra"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| "no abra on PATH".to_string())
}

/// Whether Traefik answers on 127.0.0.1:443 for an unrouted `*.ci.test`
/// name with its own 404, under a certificate the TEST-ONLY CA vouches for
/// (curl verifies it).
fn traefik_serving() -> Result<(), String> {
    let probe = "test-support-probe.ci.test";
    let o = Command::new("curl")
        .args([
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(test_keys().join("ca.crt"))
        .args([
            "--resolve",
            &format!("{probe}:443:127.0.0.1"),
            &format!("https://{probe}/"),
        ])
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let code = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if code == "404" {
        Ok(())
    } else {
        Err(format!(
            "https://{probe}/ on 127.0.0.1:443 did not answer Traefik's 404 under the test CA (curl exit {}, status {code:?})",
            o.status.code().unwrap_or(-1)
        ))
    }
}

/// The fixture recipes (`tests/fixtures/recipes`) as git repositories with
/// annotated release tags, made once per test process by
/// `scripts/fixture-recipes` under `target/ccci-test-recipes/`; the folder
/// holding one repository per recipe. Panics when the script fails.
pub fn fixture_recipes() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dest = workspace().join("target/ccci-test-recipes").join(token());
        run_fixture_recipes(&dest, None);
        dest
    })
    .clone()
}

/// A variant of one fixture recipe, made for one test: its folder (removed
/// when dropped) and the recipes folder holding the variant's repository
/// under the fixture's name.
pub struct Fixture {
    /// Keeps the folder alive.
    pub dir: TempDir,
    /// The recipes folder (`--recipes-dir`).
    pub recipes: PathBuf,
}

/// A variant of fixture recipe `base`: its release trees are copied,
/// `edit` gets their `releases/` folder to change, and
/// `scripts/fixture-recipes` makes the repository (tags as for the real
/// fixtures).
pub fn fixture_variant(base: &str, edit: impl FnOnce(&Path)) -> Fixture {
    let dir = TempDir::new();
    let src = dir.path().join("src");
    let from = workspace().join("tests/fixtures/recipes").join(base);
    std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("cannot create {}: {e}", src.display()));
    let out = Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(src.join(base))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cp: {e}"));
    assert!(out.status.success(), "cp {}: {}", from.display(), output_text(&out));
    edit(&src.join(base).join("releases"));
    let recipes = dir.path().join("recipes");
    run_fixture_recipes(&recipes, Some(&src));
    Fixture { dir, recipes }
}

fn run_fixture_recipes(dest: &Path, src: Option<&Path>) {
    let mut c = Command::new(workspace().join("scripts/fixture-recipes"));
    c.arg(dest);
    if let Some(src) = src {
        c.env("CCCI_FIXTURE_RECIPES", src);
    }
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/fixture-recipes: {e}"));
    assert!(
        o.status.success(),
        "scripts/fixture-recipes {}: {}",
        dest.display(),
        output_text(&o)
    );
}

/// A temporary folder under `target/ccci-test-tmp/`, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty folder.
    pub fn new() -> TempDir {
        let p = workspace().join("target/ccci-test-tmp").join(token());
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a volume `<stack>_data`, a secret `<stack>_pw_v1` and a config
/// `<stack>_conf_v1`, labelled as `docker stack deploy` labels a stack's
/// objects: a quick app of a stack without services. Panics on failure.
pub async fn make_stack_objects(d: &Docker, stack: &str) {
    use base64::Engine as _;
    use bollard::models::{ConfigSpec, SecretSpec, VolumeCreateRequest};
    let labels = std::collections::HashMap::from([(STACK_NAMESPACE_LABEL.to_string(), stack.to_string())]);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    d.create_volume(VolumeCreateRequest {
        name: Some(format!("{stack}_data")),
        labels: Some(labels.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    d.create_secret(SecretSpec {
        name: Some(format!("{stack}_pw_v1")),
        labels: Some(labels.clone()),
        data: Some(b64(b"pw")),
        ..Default::default()
    })
    .await
    .unwrap();
    d.create_config(ConfigSpec {
        name: Some(format!("{stack}_conf_v1")),
        labels: Some(labels),
        data: Some(b64(b"conf")),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// The pids of live processes (zombies left out) whose command line
/// contains `needle`, read from `/proc`: how the tests find a Chromium by
/// its profile folder or its `--host-resolver-rules` host.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie
                && std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Writes `text` to `path` as an executable script (mode 0755), race-free
/// for a test that runs it while other test threads of the same process
/// start children.
///
/// Why not `fs::write` then `set_permissions`: a child forked by another
/// thread while this process holds the file open for writing inherits that
/// descriptor until it execs, and running the file meanwhile fails with
/// `ETXTBSY` ("Text file busy", os error 26; Linux `execve(2)`). Seen in
/// 7 of 300 runs of the loops unit tests. Here a `sh` child writes the
/// file, so this process never holds a writable descriptor to it; only a
/// pipe. Panics (a test helper) when `sh` cannot run or the write fails.
pub fn write_executable(path: &Path, text: &str) {
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run sh to write {}: {e}", path.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let status = child.wait().expect("wait for sh");
    assert!(status.success(), "writing {} failed: sh {status}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Component::ALL {
            assert_eq!(Component::from_name(c.name()), Some(c));
            assert_eq!(Component::from_name(&c.name().to_uppercase()), Some(c));
            assert!(!c.needs().is_empty() && !c.fix().is_empty());
        }
        assert_eq!(Component::from_name("dokcer"), None);
    }

    #[test]
    fn one_line_folds_tabs_and_newlines() {
        assert_eq!(one_line("a\tb\n\n c \r\n"), "a | b | c");
    }

    #[test]
    fn the_test_name_is_the_thread_name() {
        assert_eq!(test_name(), "tests::the_test_name_is_the_thread_name");
    }

    #[test]
    fn versions_are_read_from_versions_env() {
        let v = pinned_version("SOPS_VERSION").unwrap();
        assert!(v.starts_with('v'), "{v}");
        assert!(pinned_version("NO_SUCH_VERSION")
            .unwrap_err()
            .contains("NO_SUCH_VERSION="));
        assert!(tool_path("sops").unwrap().ends_with(format!("tools/sops-{v}/bin/sops")));
    }

    #[test]
    fn tokens_are_ten_hex_digits_and_differ() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 10);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(unique("x").starts_with("x-"));
    }
}
