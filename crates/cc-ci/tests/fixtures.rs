//! The fixture images (`scripts/images`) and fixture recipes
//! (`scripts/fixture-recipes`) against the real Docker engine, through the
//! Engine API (bollard): the images do what the fixture recipes rely on, and
//! the recipe repositories carry their releases as annotated tags naming only
//! images that exist locally.
//!
//! The image tests need the engine and the fixture images
//! (`test_support::Component::FixtureImages`: `scripts/images` runs once per
//! test process, cached after the first build, see the script); a missing
//! one fails them unless `CCCI_ALLOW_SKIP` allows skipping it. Each test
//! names its containers and networks uniquely and removes them when its
//! guard drops, on failure too.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use test_support::{git, output_text as out, rt, workspace as repo, Component};
use yaml_rust2::{Yaml, YamlLoader};

const NGINX: &str = "ccci/nginx:1.22.1";
const POSTGRES: &str = "ccci/postgres:15";
const WEBAPP_1_0: &str = "ccci/webapp:1.0.0";
const WEBAPP_1_1: &str = "ccci/webapp:1.1.0";
const TRAEFIK: &str = "ccci/traefik:v3.7.15";
const RESTIC: &str = "ccci/restic:0.14.0";

/// Each fixture recipe and its releases, oldest first.
const RECIPES: &[(&str, &[&str])] = &[
    ("static-site", &["1.0.0+1.22.1", "1.1.0+1.22.1"]),
    ("traefik", &["4.0.0+v3.7.15", "4.1.0+v3.7.15", "4.2.0+v3.7.15"]),
    ("tmpl-site", &["1.0.0+1.22.1", "1.1.0+1.22.1"]),
    ("webapp-pg", &["1.0.0+1.0.0", "1.1.0+1.1.0"]),
];

const SECOND: i64 = 1_000_000_000;

/// The engine and the fixture images; None = skip (only when allowed).
fn images() -> Option<Docker> {
    test_support::docker_with(&[Component::FixtureImages])
}

fn unique(what: &str) -> String {
    test_support::unique(&format!("ccci-fx-{what}"))
}

/// Containers and networks a test made, removed (containers with their
/// anonymous volumes) when dropped, whether the test passed or not.
#[derive(Default)]
struct Cleanup {
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
}

impl Cleanup {
    fn container(&self, name: &str) -> String {
        self.containers.lock().unwrap().push(name.to_string());
        name.to_string()
    }
    fn network(&self, name: &str) -> String {
        self.networks.lock().unwrap().push(name.to_string());
        name.to_string()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        let networks = std::mem::take(&mut *self.networks.lock().unwrap());
        rt().block_on(async {
            let Ok(d) = cc_ci::host::swarm::connect().await else {
                eprintln!("cleanup: no engine; left behind: {containers:?} {networks:?}");
                return;
            };
            for c in containers.iter().rev() {
                let opts = RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                match d.remove_container(c, Some(opts)).await {
                    Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                    Err(e) => eprintln!("cleanup: container {c}: {e}"),
                }
            }
            for n in networks.iter().rev() {
                match d.remove_network(n).await {
                    Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                    Err(e) => eprintln!("cleanup: network {n}: {e}"),
                }
            }
        });
    }
}

fn healthcheck(cmd: &[&str]) -> HealthConfig {
    HealthConfig {
        test: Some(
            std::iter::once("CMD")
                .chain(cmd.iter().copied())
                .map(String::from)
                .collect(),
        ),
        interval: Some(SECOND),
        timeout: Some(5 * SECOND),
        retries: Some(3),
        start_period: Some(90 * SECOND),
        start_interval: None,
    }
}

/// Creates and starts a container named `name`.
async fn run(d: &Docker, name: &str, body: ContainerCreateBody) {
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    d.create_container(Some(opts), body).await.unwrap();
    d.start_container(name, None::<StartContainerOptions>).await.unwrap();
}

async fn logs(d: &Docker, name: &str) -> String {
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut s = d.logs(name, Some(opts));
    let mut text = String::new();
    while let Some(Ok(chunk)) = s.next().await {
        text.push_str(&chunk.to_string());
    }
    text
}

/// Waits until Docker reports the container healthy; panics with its logs
/// and health log when it exits, turns unhealthy or takes longer than `limit`.
async fn wait_healthy(d: &Docker, name: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let i = d
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let state = i.state.unwrap_or_default();
        let health = state.health.clone().unwrap_or_default();
        match health.status {
            Some(HealthStatusEnum::HEALTHY) => return,
            Some(HealthStatusEnum::UNHEALTHY) => {}
            _ if state.running == Some(true) && start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            _ => {}
        }
        let checks: Vec<String> = health
            .log
            .unwrap_or_default()
            .into_iter()
            .map(|r| format!("exit {:?}: {}", r.exit_code, r.output.unwrap_or_default().trim()))
            .collect();
        panic!(
            "{name} is not healthy after {:?} (state {:?}, health {:?}, exit code {:?})\nhealth checks:\n{}\nlogs:\n{}",
            start.elapsed(),
            state.status,
            health.status,
            state.exit_code,
            checks.join("\n"),
            logs(d, name).await
        );
    }
}

/// The container's address on `network`.
async fn ip(d: &Docker, name: &str, network: &str) -> String {
    let i = d
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let nets = i.network_settings.and_then(|n| n.networks).unwrap_or_default();
    let ip = nets.get(network).and_then(|e| e.ip_address.clone()).unwrap_or_default();
    assert!(!ip.is_empty(), "{name} has no address on {network}: {nets:?}");
    ip
}

/// Runs a container to completion; (exit code, logs).
async fn run_to_end(d: &Docker, name: &str, body: ContainerCreateBody) -> (i64, String) {
    run(d, name, body).await;
    // wait_container reports a non-zero exit as an error: read the state instead.
    let mut w = d.wait_container(name, None::<bollard::query_parameters::WaitContainerOptions>);
    while w.next().await.is_some() {}
    let i = d
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let code = i.state.and_then(|s| s.exit_code).expect("exit code");
    (code, logs(d, name).await)
}

/// One plain HTTP/1.0 GET from the test process: (status, headers, body).
fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&format!("{ip}:{port}").parse().unwrap(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: fixture.ci.test\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response from {ip}:{port}{path}: {raw:?}"));
    Ok((status, head.to_string(), body.to_string()))
}

/// GET, retrying connection errors for up to 30 s (a server still binding).
fn get(ip: &str, port: u16, path: &str) -> (u16, String, String) {
    let start = Instant::now();
    loop {
        match http_get(ip, port, path) {
            Ok(r) => return r,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                eprintln!("GET {ip}:{port}{path}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("GET {ip}:{port}{path}: {e}"),
        }
    }
}

/// The text of `<span id="ID">…</span>` on a webapp page.
fn span(page: &str, id: &str) -> String {
    let open = format!("<span id=\"{id}\">");
    let rest = page
        .split_once(&open)
        .unwrap_or_else(|| panic!("no {open} in the page:\n{page}"))
        .1;
    rest.split_once("</span>").unwrap().0.to_string()
}

#[test]
fn nginx_image_serves_its_page_and_logs_to_stdout() {
    let Some(d) = images() else { return };
    let guard = Cleanup::default();
    rt().block_on(async {
        let name = guard.container(&unique("nginx"));
        let body = ContainerCreateBody {
            image: Some(NGINX.into()),
            healthcheck: Some(healthcheck(&["curl", "-fsS", "-o", "/dev/null", "http://localhost/"])),
            ..Default::default()
        };
        run(&d, &name, body).await;
        wait_healthy(&d, &name, Duration::from_secs(60)).await;
        let ip = ip(&d, &name, "bridge").await;
        let (status, head, page) = get(&ip, 80, "/");
        assert_eq!(status, 200, "{head}\n{page}");
        assert!(page.contains("<title>Welcome to ccci/nginx</title>"), "{page}");
        assert!(
            head.contains("Server: nginx/1.22.1"),
            "Debian's nginx 1.22.1 answers: {head}"
        );
        let (status, _, _) = get(&ip, 80, "/no-such-page");
        assert_eq!(status, 404);
        // The access log reaches Docker's log a moment after the response.
        let start = Instant::now();
        loop {
            let log = logs(&d, &name).await;
            if log.contains("\"GET /no-such-page HTTP/1.0\" 404") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no access log line on stdout: {log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn postgres_becomes_healthy_and_webapp_serves_its_version_and_db_values() {
    let Some(d) = images() else { return };
    let guard = Cleanup::default();
    let tmp = tempfile::tempdir().unwrap();
    let secret = |file: &str, content: &str| {
        let p = tmp.path().join(file);
        std::fs::write(&p, content).unwrap();
        // Docker secrets are 0444 root-owned files; the services run as other users.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        format!("{}:/run/secrets/db_password:ro", p.display())
    };
    let good = secret("db_password", &format!("pw-{}", unique("secret")));
    let wrong = secret("wrong_password", "not-the-password");
    rt().block_on(async {
        let net = guard.network(&unique("net"));
        d.create_network(NetworkCreateRequest {
            name: net.clone(),
            driver: Some("bridge".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let host = |binds: &str| HostConfig {
            binds: Some(vec![binds.to_string()]),
            network_mode: Some(net.clone()),
            ..Default::default()
        };

        let db = guard.container(&unique("db"));
        run(
            &d,
            &db,
            ContainerCreateBody {
                image: Some(POSTGRES.into()),
                env: Some(vec![
                    "POSTGRES_PASSWORD_FILE=/run/secrets/db_password".into(),
                    "POSTGRES_USER=webapp".into(),
                    "POSTGRES_DB=webapp".into(),
                ]),
                healthcheck: Some(healthcheck(&[
                    "pg_isready",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "webapp",
                    "-d",
                    "webapp",
                ])),
                host_config: Some(host(&good)),
                ..Default::default()
            },
        )
        .await;
        wait_healthy(&d, &db, Duration::from_secs(120)).await;

        let webapp = |image: &str| ContainerCreateBody {
            image: Some(image.into()),
            env: Some(vec![
                format!("DB_HOST={db}"),
                "DB_NAME=webapp".into(),
                "DB_USER=webapp".into(),
                "DB_PASSWORD_FILE=/run/secrets/db_password".into(),
            ]),
            healthcheck: Some(healthcheck(&[
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                "http://localhost:8080/health",
            ])),
            ..Default::default()
        };

        // 1.0.0 with the right password: healthy, its version, values from the DB.
        let v1 = guard.container(&unique("webapp-1.0.0"));
        run(
            &d,
            &v1,
            ContainerCreateBody {
                host_config: Some(host(&good)),
                ..webapp(WEBAPP_1_0)
            },
        )
        .await;
        wait_healthy(&d, &v1, Duration::from_secs(60)).await;
        let v1_ip = ip(&d, &v1, &net).await;
        let (status, _, health) = get(&v1_ip, 8080, "/health");
        assert_eq!((status, health.as_str()), (200, "ok\n"));
        let (status, _, page) = get(&v1_ip, 8080, "/");
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<title>ccci webapp 1.0.0</title>"), "{page}");
        assert!(page.contains("<h1>ccci webapp 1.0.0</h1>"), "{page}");
        assert_eq!(span(&page, "first_version"), "1.0.0");
        let visits: u64 = span(&page, "visits").parse().unwrap();
        let (_, _, page) = get(&v1_ip, 8080, "/");
        assert_eq!(
            span(&page, "visits").parse::<u64>().unwrap(),
            visits + 1,
            "the counter lives in the DB"
        );

        // The wrong password: the network path really asks for one.
        let bad = guard.container(&unique("webapp-wrong-pw"));
        run(
            &d,
            &bad,
            ContainerCreateBody {
                host_config: Some(host(&wrong)),
                ..webapp(WEBAPP_1_0)
            },
        )
        .await;
        let bad_ip = ip(&d, &bad, &net).await;
        let (status, _, why) = get(&bad_ip, 8080, "/health");
        assert_eq!(status, 503, "{why}");
        assert!(why.contains("password authentication failed"), "{why}");

        // 1.1.0 on the same database: the new version, the old data.
        let v2 = guard.container(&unique("webapp-1.1.0"));
        run(
            &d,
            &v2,
            ContainerCreateBody {
                host_config: Some(host(&good)),
                ..webapp(WEBAPP_1_1)
            },
        )
        .await;
        wait_healthy(&d, &v2, Duration::from_secs(60)).await;
        let v2_ip = ip(&d, &v2, &net).await;
        let (status, _, page) = get(&v2_ip, 8080, "/");
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<title>ccci webapp 1.1.0</title>"), "{page}");
        assert_eq!(span(&page, "first_version"), "1.0.0", "read from the DB 1.0.0 wrote");
        assert_eq!(span(&page, "last_version"), "1.1.0");
        assert_eq!(span(&page, "visits").parse::<u64>().unwrap(), visits + 2);

        // The database gone: /health says so.
        d.stop_container(
            &db,
            Some(StopContainerOptions {
                t: Some(10),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        let (status, _, why) = get(&v2_ip, 8080, "/health");
        assert_eq!(status, 503, "{why}");
    });
}

#[test]
fn traefik_image_prints_its_version() {
    let Some(d) = images() else { return };
    let guard = Cleanup::default();
    rt().block_on(async {
        let entrypoint = d
            .inspect_image(TRAEFIK)
            .await
            .unwrap()
            .config
            .and_then(|c| c.entrypoint);
        assert_eq!(entrypoint, Some(vec!["traefik".to_string()]));
        let name = guard.container(&unique("traefik"));
        let body = ContainerCreateBody {
            image: Some(TRAEFIK.into()),
            cmd: Some(vec!["version".into()]),
            ..Default::default()
        };
        let (code, text) = run_to_end(&d, &name, body).await;
        assert_eq!(code, 0, "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("Version:") && l.trim_end().ends_with("3.7.15")),
            "{text}"
        );
    });
}

#[test]
fn restic_image_runs_debians_restic() {
    let Some(d) = images() else { return };
    let guard = Cleanup::default();
    rt().block_on(async {
        let name = guard.container(&unique("restic"));
        let body = ContainerCreateBody {
            image: Some(RESTIC.into()),
            ..Default::default()
        };
        let (code, text) = run_to_end(&d, &name, body).await;
        assert_eq!(code, 0, "{text}");
        assert!(text.starts_with("restic 0.14.0 "), "{text}");
    });
}

fn fixture_recipes(dest: &Path, src: Option<&Path>) -> Output {
    let mut c = Command::new(repo().join("scripts/fixture-recipes"));
    c.arg(dest);
    if let Some(s) = src {
        c.env("CCCI_FIXTURE_RECIPES", s);
    }
    c.output().unwrap()
}

/// Every `image:` of a compose file's services.
fn images_of(compose: &str, what: &str) -> Vec<String> {
    let docs = YamlLoader::load_from_str(compose).unwrap_or_else(|e| panic!("{what} is not YAML: {e}"));
    let doc = docs.first().unwrap_or_else(|| panic!("{what} is empty"));
    let Yaml::Hash(services) = &doc["services"] else {
        panic!("{what} has no services mapping");
    };
    services
        .values()
        .filter_map(|s| s["image"].as_str().map(str::to_string))
        .collect()
}

/// Per recipe, per tag: the images its compose files name.
fn images_by_release(dest: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let mut m = BTreeMap::new();
    for (name, versions) in RECIPES {
        let dir = dest.join(name);
        for v in *versions {
            let files = git(&dir, &["ls-tree", "-r", "--name-only", v]);
            let composes: Vec<&str> = files
                .lines()
                .filter(|f| f.starts_with("compose") && f.ends_with(".yml"))
                .collect();
            assert!(composes.contains(&"compose.yml"), "{name} {v}: {files}");
            let mut images = Vec::new();
            for f in composes {
                let text = git(&dir, &["show", &format!("{v}:{f}")]);
                if f == "compose.yml" {
                    assert!(text.contains("version: \"3.8\""), "{name} {v} {f}");
                    assert!(
                        text.contains(&format!("coop-cloud.${{STACK_NAME}}.version={v}")),
                        "{name} {v}: compose.yml declares its own version"
                    );
                }
                images.extend(images_of(&text, &format!("{name} {v} {f}")));
            }
            assert!(!images.is_empty(), "{name} {v} names no image");
            m.insert((name.to_string(), v.to_string()), images);
        }
    }
    m
}

#[test]
fn fixture_repos_carry_their_releases_as_annotated_tags_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("recipes");
    let first = fixture_recipes(&dest, None);
    assert!(first.status.success(), "{}", out(&first));
    assert!(out(&first).contains("4 made, 0 up to date"), "{}", out(&first));

    let mut ids = Vec::new();
    for (name, versions) in RECIPES {
        let dir = dest.join(name);
        // Exactly these tags, all annotated.
        let tags = git(
            &dir,
            &["for-each-ref", "refs/tags", "--format=%(refname:short) %(objecttype)"],
        );
        let mut want: Vec<String> = versions.iter().map(|v| format!("{v} tag")).collect();
        let mut got: Vec<String> = tags.lines().map(str::to_string).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{name}");
        // In order: each release's commit is the child of the one before; main is the newest.
        let commits: Vec<String> = versions
            .iter()
            .map(|v| git(&dir, &["rev-parse", &format!("{v}^{{commit}}")]).trim().to_string())
            .collect();
        let parents = git(&dir, &["rev-list", "--parents", "--reverse", "main"]);
        let chain: Vec<Vec<&str>> = parents.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(chain.len(), versions.len(), "{name}: one commit per release\n{parents}");
        for (i, c) in commits.iter().enumerate() {
            assert_eq!(chain[i][0], c, "{name}: commit {i} is release {}", versions[i]);
            if i > 0 {
                assert_eq!(
                    chain[i][1],
                    commits[i - 1],
                    "{name}: {} follows {}",
                    versions[i],
                    versions[i - 1]
                );
            }
        }
        assert_eq!(
            git(&dir, &["status", "--porcelain"]),
            "",
            "{name}: the newest release checked out, clean"
        );

        // What cc-ci itself reads from the checkout.
        let r = cc_ci::recipe::Recipe::open(&dir).unwrap();
        assert_eq!(r.name, *name);
        let rel = r.releases().unwrap();
        let tags: Vec<&str> = rel.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(tags, *versions, "{name}: releases oldest first");
        assert!(rel.iter().all(|r| r.annotated), "{name}");
        assert_eq!(r.declared_version().as_deref(), versions.last().copied(), "{name}");
        assert_eq!(r.backup_capable(), !matches!(*name, "traefik" | "tmpl-site"), "{name}");
        if *name == "webapp-pg" {
            assert_eq!(
                r.secrets(),
                [(
                    "db_password".to_string(),
                    "v1".to_string(),
                    Some("length=32".to_string())
                )]
            );
        }
        ids.push(git(&dir, &["for-each-ref", "refs/tags", "--format=%(objectname)"]));
    }
    images_by_release(&dest);

    // Idempotent: a second run leaves every repository as it is.
    let again = fixture_recipes(&dest, None);
    assert!(again.status.success(), "{}", out(&again));
    assert!(out(&again).contains("0 made, 4 up to date"), "{}", out(&again));
    for ((name, _), before) in RECIPES.iter().zip(&ids) {
        let now = git(
            &dest.join(name),
            &["for-each-ref", "refs/tags", "--format=%(objectname)"],
        );
        assert_eq!(&now, before, "{name}");
    }
}

#[test]
fn fixture_recipes_rebuilds_a_changed_fixture_and_refuses_a_foreign_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(repo().join("tests/fixtures/recipes"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(cp.status.success(), "{}", out(&cp));
    let dest = tmp.path().join("dest");
    let first = fixture_recipes(&dest, Some(&src));
    assert!(first.status.success(), "{}", out(&first));
    let before = git(&dest.join("static-site"), &["rev-parse", "main"]);

    // A changed release tree: only that repository is made again.
    let readme = src.join("static-site/releases/1.1.0+1.22.1/README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    std::fs::write(&readme, format!("{text}\nChanged.\n")).unwrap();
    let second = fixture_recipes(&dest, Some(&src));
    assert!(second.status.success(), "{}", out(&second));
    let o = out(&second);
    assert!(o.contains("static-site: the fixture changed"), "{o}");
    assert!(o.contains("1 made, 3 up to date"), "{o}");
    assert_ne!(git(&dest.join("static-site"), &["rev-parse", "main"]), before);
    assert!(std::fs::read_to_string(dest.join("static-site/README.md"))
        .unwrap()
        .ends_with("Changed.\n"));

    // A repository it did not make is refused and left alone.
    let foreign = dest.join("webapp-pg");
    std::fs::remove_dir_all(&foreign).unwrap();
    git(tmp.path(), &["init", "-q", foreign.to_str().unwrap()]);
    std::fs::write(foreign.join("mine"), "keep me").unwrap();
    let third = fixture_recipes(&dest, Some(&src));
    assert!(!third.status.success(), "{}", out(&third));
    assert!(out(&third).contains("is not a fixture repository"), "{}", out(&third));
    assert_eq!(std::fs::read_to_string(foreign.join("mine")).unwrap(), "keep me");
}

#[test]
fn fixture_releases_name_only_pinned_images_that_exist_locally() {
    let Some(d) = images() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("recipes");
    let o = fixture_recipes(&dest, None);
    assert!(o.status.success(), "{}", out(&o));
    let by_release = images_by_release(&dest);
    assert_eq!(by_release.len(), 9, "{by_release:?}");
    assert_eq!(
        by_release[&("webapp-pg".into(), "1.0.0+1.0.0".into())],
        [WEBAPP_1_0, POSTGRES]
    );
    assert_eq!(
        by_release[&("webapp-pg".into(), "1.1.0+1.1.0".into())],
        [WEBAPP_1_1, POSTGRES]
    );
    rt().block_on(async {
        for ((name, v), images) in &by_release {
            for image in images {
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{name} {v}: {image} is not pinned"
                );
                if let Err(e) = d.inspect_image(image).await {
                    panic!("{name} {v}: image {image} does not exist locally: {e}");
                }
            }
        }
    });
}
