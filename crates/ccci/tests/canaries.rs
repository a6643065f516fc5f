//! Regression canaries: fixture recipes built to trip each guard of the
//! ladder, each with the exact rung and status it must get, run side by side
//! with the good fixtures (which must stay green alongside them) on the real
//! swarm behind the real Traefik. Every defect the earlier Python cc-ci
//! shipped (docs/recipes.md, "The earlier Python cc-ci") has a canary here.
//!
//! The suite prints a table, canary -> expected -> got, straight to stderr
//! (the harness does not capture it), then fails if any row differs. Each
//! row also proves that nothing of its app is left (the stack module's
//! clean-up proof) and that teardown said so.
//!
//! A confinement canary (a recipe that would leave its test app) must be
//! refused before anything deploys: exit status 2, a message naming the
//! version, file and compose key, no results folder (a refused run claims
//! no level), nothing of its run's state, and no object of its stack (the
//! row runs under a known `--run-id`, so its stack is known).
//!
//! `CCCI_CANARY_PARALLEL` (default 3) runs that many at once; each run has
//! its own state, results and settings folders, domain and stack.
//! `CCCI_CANARY_ONLY=lint,certificate` runs only the rows whose names hold
//! one of those fragments (for reruns by hand; CI runs them all); a filter
//! that matches no row fails.

mod ccci_run;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ccci_run::{each_release, edit, leftovers, Ccci};
use test_support::Component;

/// The settings a canary runs with.
enum Settings {
    /// This repository's tests/recipes (the good fixtures' own settings).
    Repo,
    /// None at all.
    Zero,
    /// An empty settings folder that the function fills (given `<settings>/<recipe>`).
    Own(fn(&Path)),
}

/// What a canary must get.
struct Expect {
    /// Refused before anything deployed (exit 2), the message holding each
    /// of these; the other fields are then unused.
    refused: Option<&'static [&'static str]>,
    rung: &'static str,
    status: &'static str,
    /// The level, exactly.
    level: u8,
    /// The verdict (results.json `verdict.state`), which the exit status
    /// must follow: success 0, failure 1, error 3.
    verdict: &'static str,
    /// The rung's reason contains this.
    reason: Option<&'static str>,
    /// The rung took less than this, seconds (a budget, not the whole timeout).
    under_s: Option<f64>,
}

struct Canary {
    name: &'static str,
    recipe: &'static str,
    /// Edits the releases of a copy of the fixture; None: the fixture as it is.
    variant: Option<fn(&Path)>,
    settings: Settings,
    expect: Expect,
}

const fn expect(rung: &'static str, status: &'static str, level: u8, verdict: &'static str) -> Expect {
    Expect {
        refused: None,
        rung,
        status,
        level,
        verdict,
        reason: None,
        under_s: None,
    }
}

/// Refused before anything deployed, the message holding each of `message`.
const fn refused(message: &'static [&'static str]) -> Expect {
    Expect {
        refused: Some(message),
        ..expect("", "", 0, "")
    }
}

/// What one run got, as the table shows it.
struct Got {
    row: String,
    ok: bool,
    detail: String,
}

fn release(releases: &Path, tag: &str) -> std::path::PathBuf {
    releases.join(tag)
}

// ---- the variants -----------------------------------------------------------

/// tmpl-site: the healthcheck never passes; the deploy budget is 30 s.
fn never_converges(releases: &Path) {
    each_release(releases, |rel| {
        let compose = rel.join("compose.yml");
        edit(
            &compose,
            "test: [\"CMD\", \"curl\", \"-fsS\", \"-o\", \"/dev/null\", \"http://localhost/healthz\"]",
            "test: [\"CMD\", \"sh\", \"-c\", \"echo not ready; exit 1\"]",
        );
        edit(&compose, "interval: 5s", "interval: 1s");
        edit(&compose, "start_period: 10s", "start_period: 1s");
        edit(&rel.join(".env.sample"), "#TIMEOUT=120", "TIMEOUT=30");
    });
}

/// tmpl-site: the app's process exits at once, every time (abra's default
/// 120 s deploy budget stays).
fn crash_loop(releases: &Path) {
    each_release(releases, |rel| {
        edit(
            &rel.join("compose.yml"),
            "    image: ccci/nginx:1.22.1\n",
            "    image: ccci/nginx:1.22.1\n    entrypoint: [\"sh\", \"-c\", \"echo boom: the config is wrong; exit 1\"]\n",
        );
    });
}

/// tmpl-site: the router matches another host, so the app's domain gets
/// Traefik's own 404.
fn traefik_404(releases: &Path) {
    each_release(releases, |rel| {
        edit(
            &rel.join("compose.yml"),
            "rule=Host(`${DOMAIN}`)",
            "rule=Host(`nobody.${DOMAIN}`)",
        );
    });
}

/// tmpl-site: the router names a middleware of Traefik 2's `docker`
/// provider, which Traefik 3 does not have (swarm services' objects are
/// `@swarm`): Traefik disables the router and the domain meets its 404.
fn middleware_at_docker(releases: &Path) {
    each_release(releases, |rel| {
        edit(
            &rel.join("compose.yml"),
            "        - \"traefik.http.routers.${STACK_NAME}.entrypoints=web-secure\"\n",
            concat!(
                "        - \"traefik.http.routers.${STACK_NAME}.entrypoints=web-secure\"\n",
                "        - \"traefik.http.routers.${STACK_NAME}.middlewares=ccci-missing@docker\"\n",
            ),
        );
    });
}

/// tmpl-site: the app's image exists nowhere (not on this host, which pulls
/// no images).
fn image_that_cannot_be_had(releases: &Path) {
    each_release(releases, |rel| {
        edit(
            &rel.join("compose.yml"),
            "image: ccci/nginx:1.22.1",
            "image: ccci/no-such-image:0.0.0",
        );
    });
}

/// tmpl-site: the new release's healthcheck never passes, so Swarm rolls
/// the update back (`failure_action: rollback`) while the old task, started
/// first and never stopped, keeps serving.
fn rolled_back(releases: &Path) {
    let compose = release(releases, "1.1.0+1.22.1").join("compose.yml");
    edit(
        &compose,
        "test: [\"CMD\", \"curl\", \"-fsS\", \"-o\", \"/dev/null\", \"http://localhost/healthz\"]",
        "test: [\"CMD\", \"sh\", \"-c\", \"echo the new release is broken; exit 1\"]",
    );
    edit(&compose, "interval: 5s", "interval: 1s");
    edit(&compose, "retries: 10", "retries: 2");
    edit(&compose, "start_period: 10s", "start_period: 1s");
}

/// tmpl-site: a second service, a Traefik of the app's own that serves only
/// its self-generated default certificate, takes the app's domain through a
/// TLS-passthrough TCP router; the app's own router matches another host,
/// so nothing else serves that name (Traefik's swarm provider polls, every
/// 15 s by default, and may see the app before the second service). What
/// reaches the client is exactly what Traefik sends when no certificate
/// matches: `CN=TRAEFIK DEFAULT CERT`.
fn traefik_default_cert(releases: &Path) {
    each_release(releases, |rel| {
        edit(
            &rel.join("compose.yml"),
            "rule=Host(`${DOMAIN}`)",
            "rule=Host(`nobody.${DOMAIN}`)",
        );
        edit(
            &rel.join("compose.yml"),
            "\nnetworks:\n",
            concat!(
                "  tls:\n",
                "    image: ccci/traefik:v3.7.15\n",
                "    command: [\"--entrypoints.websecure.address=:443\", \"--entrypoints.websecure.http.tls=true\", \"--log.level=INFO\"]\n",
                "    networks:\n",
                "      - proxy\n",
                "    deploy:\n",
                "      labels:\n",
                "        - \"traefik.enable=true\"\n",
                "        - \"traefik.tcp.routers.${STACK_NAME}_tls.rule=HostSNI(`${DOMAIN}`)\"\n",
                "        - \"traefik.tcp.routers.${STACK_NAME}_tls.entrypoints=web-secure\"\n",
                "        - \"traefik.tcp.routers.${STACK_NAME}_tls.tls.passthrough=true\"\n",
                "        - \"traefik.tcp.services.${STACK_NAME}_tls.loadbalancer.server.port=443\"\n",
                "\nnetworks:\n",
            ),
        );
    });
}

/// tmpl-site: the tested release adds a config named with a version that
/// abra.sh does not vendor (`${MOTD_VERSION:-v1}`): abra's R012, an error.
/// The default keeps the deploy itself working, so only lint fails.
fn unvendored_config_version(releases: &Path) {
    let rel = release(releases, "1.1.0+1.22.1");
    let compose = rel.join("compose.yml");
    edit(
        &compose,
        "        target: /etc/nginx/conf.d/default.conf\n",
        "        target: /etc/nginx/conf.d/default.conf\n      - source: motd\n        target: /etc/motd\n",
    );
    edit(
        &compose,
        "    template_driver: golang\n",
        "    template_driver: golang\n  motd:\n    name: ${STACK_NAME}_motd_${MOTD_VERSION:-v1}\n    file: motd.txt\n",
    );
    std::fs::write(rel.join("motd.txt"), "welcome\n").unwrap();
}

/// The backupbot labels of static-site's tested release, replaced.
fn backup_labels(releases: &Path, labels: &str) {
    edit(
        &release(releases, "1.1.0+1.22.1").join("compose.yml"),
        "        - \"backupbot.backup.path=/usr/share/nginx/html\"\n",
        labels,
    );
}

/// static-site: the backup target is a dump the pre-hook writes; something
/// in the app cuts the dump to 1000 bytes whenever it is longer (every
/// 20 ms, for 2 minutes from the restore pre-hook), so the restore
/// "succeeds" with 1000 of its 200000 bytes. One cut, as soon as the file
/// was non-empty, could come before restic's last write to the file: the
/// restore then passed (once, on a loaded machine).
fn truncated_restore(releases: &Path) {
    backup_labels(
        releases,
        concat!(
            "        - \"backupbot.backup.pre-hook=sh -c 'head -c 200000 /dev/urandom > /usr/share/nginx/html/dump.bin'\"\n",
            "        - \"backupbot.backup.path=/usr/share/nginx/html/dump.bin\"\n",
            "        - \"backupbot.restore.pre-hook=sh -c 'setsid timeout 120 sh -c \\\"while :; do find /usr/share/nginx/html/dump.bin -size +1000c -exec truncate -s 1000 {} + 2>/dev/null; sleep 0.02; done\\\" </dev/null >/dev/null 2>&1 &'\"\n",
        ),
    );
}

/// static-site: the backup pre-hook (a database dump, say) exits 3.
fn failing_pre_hook(releases: &Path) {
    backup_labels(
        releases,
        concat!(
            "        - \"backupbot.backup.path=/usr/share/nginx/html\"\n",
            "        - \"backupbot.backup.pre-hook=sh -c 'echo pg_dump: connection refused >&2; exit 3'\"\n",
        ),
    );
}

/// tmpl-site: the tested release mounts the Docker socket into the app.
fn docker_socket(releases: &Path) {
    edit(
        &release(releases, "1.1.0+1.22.1").join("compose.yml"),
        "      - content:/usr/share/nginx/html\n",
        "      - content:/usr/share/nginx/html\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n",
    );
}

/// tmpl-site: the tested release's router also takes another app's host
/// (not a sub-domain of the run's domain).
fn rule_for_another_host(releases: &Path) {
    edit(
        &release(releases, "1.1.0+1.22.1").join("compose.yml"),
        "rule=Host(`${DOMAIN}`)",
        "rule=Host(`${DOMAIN}`) || Host(`dashboard.ci.test`)",
    );
}

/// tmpl-site: the upgrade base (the release deployed first) is privileged.
fn privileged_base(releases: &Path) {
    edit(
        &release(releases, "1.0.0+1.22.1").join("compose.yml"),
        "    image: ccci/nginx:1.22.1\n",
        "    image: ccci/nginx:1.22.1\n    privileged: true\n",
    );
}

/// tmpl-site: the tested release's config file is a symlink to /etc/passwd.
fn config_symlink_to_etc(releases: &Path) {
    let conf = release(releases, "1.1.0+1.22.1").join("nginx.conf.tmpl");
    std::fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &conf).unwrap();
}

/// static-site: the tested release disables the app's healthcheck.
fn healthcheck_disabled(releases: &Path) {
    edit(
        &release(releases, "1.1.0+1.22.1").join("compose.yml"),
        "      test: [\"CMD\", \"curl\", \"-fsS\", \"-o\", \"/dev/null\", \"http://localhost/healthz\"]\n      interval: 10s\n      timeout: 5s\n      retries: 5\n      start_period: 10s\n",
        "      disable: true\n",
    );
}

/// static-site: the tested release ships no release notes of its own.
fn no_release_notes(releases: &Path) {
    std::fs::remove_file(release(releases, "1.1.0+1.22.1").join("release/1.1.0+1.22.1")).unwrap();
}

/// static-site: the tested release renames its volume (`content` ->
/// `site`): the app now serves a new, empty volume while the witness sits
/// intact in the old one.
fn volume_renamed(releases: &Path) {
    let compose = release(releases, "1.1.0+1.22.1").join("compose.yml");
    edit(
        &compose,
        "      - content:/usr/share/nginx/html\n",
        "      - site:/usr/share/nginx/html\n",
    );
    edit(&compose, "volumes:\n  content:\n", "volumes:\n  site:\n");
}

/// static-site: the backup pre-hook "dumps" nothing: the file it backs up
/// is empty, so the restore would bring back nothing and pass.
fn empty_dump(releases: &Path) {
    backup_labels(
        releases,
        concat!(
            "        - \"backupbot.backup.pre-hook=sh -c ': > /usr/share/nginx/html/dump.bin'\"\n",
            "        - \"backupbot.backup.path=/usr/share/nginx/html/dump.bin\"\n",
        ),
    );
}

/// webapp-pg: the restore post-hook forgets to load the dump back into the
/// database. The dump file itself comes back byte for byte (the old
/// "truncated database restored successfully" class of false green); only
/// the data witness read through the database tells.
fn restore_skips_the_database(releases: &Path) {
    let compose = release(releases, "1.1.0+1.1.0").join("compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let mut hit = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("backupbot.restore.post-hook:") {
                hit = true;
                "        backupbot.restore.post-hook: \"rm -f /var/lib/postgresql/data/backup.sql\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(hit, "no restore post-hook in {}", compose.display());
    std::fs::write(&compose, out.join("\n") + "\n").unwrap();
}

// ---- the settings -----------------------------------------------------------

/// Copies this repository's settings of `recipe` into `dir` (then the
/// canary changes them).
fn repo_settings(recipe: &str, dir: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
    copy(&test_support::workspace().join("tests/recipes").join(recipe), dir);
}

/// This repository's settings of tmpl-site, and `privileged` allowed with a reason.
fn allow_privileged(dir: &Path) {
    repo_settings("tmpl-site", dir);
    let toml = dir.join("ccci.toml");
    let mut t = std::fs::read_to_string(&toml).unwrap();
    t.push_str("\n[allow]\nprivileged = \"a canary: swarm ignores it, the allowance is what is tested\"\n");
    std::fs::write(toml, t).unwrap();
}

/// tmpl-site's own settings without `[volumes.ephemeral]`: its `content`
/// volume is then protected by nothing.
fn tmpl_site_volume_not_declared(dir: &Path) {
    repo_settings("tmpl-site", dir);
    let f = dir.join("ccci.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    let start = text
        .find("[volumes.ephemeral]")
        .expect("tmpl-site declares its volume ephemeral");
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    std::fs::write(&f, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

/// tmpl-site's own settings with a flaky custom test (it fails its first
/// try) and `[tested] retries = 1`.
fn flaky_check_retried(dir: &Path) {
    repo_settings("tmpl-site", dir);
    let f = dir.join("ccci.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{text}\n[tested]\nretries = 1\n")).unwrap();
    let t = dir.join("custom/flaky");
    test_support::write_executable(
        &t,
        "#!/bin/sh\nm=\"$CCCI_RESULTS_DIR/flaky-tried\"\n[ -e \"$m\" ] && exit 0\n: > \"$m\"\necho 'first try fails (a flaky check)' >&2\nexit 1\n",
    );
}

/// static-site's own settings held to level 8, which a first run cannot
/// reach (rung 8 needs history).
fn bar_above_reach(dir: &Path) {
    repo_settings("static-site", dir);
    let f = dir.join("ccci.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("min_level = 8\n{text}")).unwrap();
}

/// The upgrade base pinned to the tested release itself.
fn pinned_to_itself(dir: &Path) {
    std::fs::write(dir.join("ccci.toml"), "[upgrade]\nbase = \"1.1.0+1.22.1\"\n").unwrap();
}

/// One custom test, which skips itself (exit 77: its SSO provider is absent).
fn skipping_check(dir: &Path) {
    let custom = dir.join("custom");
    std::fs::create_dir_all(&custom).unwrap();
    let t = custom.join("sso-login");
    test_support::write_executable(&t, "#!/bin/sh\necho 'no SSO provider here: skipping' >&2\nexit 77\n");
}

fn canaries() -> Vec<Canary> {
    vec![
        Canary {
            name: "good: static-site",
            recipe: "static-site",
            variant: None,
            settings: Settings::Repo,
            expect: expect("exemplary", "pass", 7, "success"),
        },
        Canary {
            name: "good: tmpl-site",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Repo,
            expect: expect("exemplary", "pass", 7, "success"),
        },
        Canary {
            name: "good: webapp-pg",
            recipe: "webapp-pg",
            variant: None,
            settings: Settings::Repo,
            expect: expect("exemplary", "pass", 7, "success"),
        },
        Canary {
            name: "install never converges",
            recipe: "tmpl-site",
            variant: Some(never_converges),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("not ready"),
                under_s: Some(60.0),
                ..expect("install", "fail", 0, "failure")
            },
        },
        Canary {
            name: "crash-looping service",
            recipe: "tmpl-site",
            variant: Some(crash_loop),
            settings: Settings::Zero,
            // No time budget: the reason can only come from the crash-loop
            // check after its 5th failed task (a timeout reads "did not
            // converge within"); how long 5 restarts take is the engine's
            // (26-32 s in local runs, 113 s once on a loaded CI machine), and the
            // table shows it.
            expect: Expect {
                reason: Some("5 tasks in a row ended `failed`"),
                ..expect("install", "fail", 0, "failure")
            },
        },
        Canary {
            name: "install: image that cannot be had",
            recipe: "tmpl-site",
            variant: Some(image_that_cannot_be_had),
            settings: Settings::Zero,
            // Named before anything deploys; the table shows how soon.
            expect: Expect {
                reason: Some("service app: image ccci/no-such-image:0.0.0 is not on this host"),
                ..expect("install", "fail", 0, "failure")
            },
        },
        Canary {
            name: "serves Traefik's 404",
            recipe: "tmpl-site",
            variant: Some(traefik_404),
            settings: Settings::Zero,
            // Traefik's own view of the app's router, once it has read the
            // deploy; no longer the whole readiness budget (60 s).
            expect: Expect {
                reason: Some("Traefik's API lists the app's routers"),
                under_s: Some(40.0),
                ..expect("serve", "fail", 1, "failure")
            },
        },
        Canary {
            name: "router middleware @docker",
            recipe: "tmpl-site",
            variant: Some(middleware_at_docker),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("middleware \"ccci-missing@docker\" does not exist"),
                under_s: Some(40.0),
                ..expect("serve", "fail", 1, "failure")
            },
        },
        Canary {
            name: "serves Traefik's default certificate",
            recipe: "tmpl-site",
            variant: Some(traefik_default_cert),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("own default certificate"),
                ..expect("serve", "fail", 1, "failure")
            },
        },
        Canary {
            name: "upgrade rolled back, old task serving",
            recipe: "tmpl-site",
            variant: Some(rolled_back),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("roll"),
                ..expect("upgrade", "fail", 2, "failure")
            },
        },
        Canary {
            name: "upgrade from a version to itself",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Own(pinned_to_itself),
            expect: Expect {
                reason: Some("itself"),
                ..expect("upgrade", "unverified", 2, "success")
            },
        },
        Canary {
            name: "restore brings back a truncated file",
            recipe: "static-site",
            variant: Some(truncated_restore),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("dump.bin"),
                ..expect("restore", "fail", 3, "failure")
            },
        },
        Canary {
            name: "backup pre-hook exits non-zero",
            recipe: "static-site",
            variant: Some(failing_pre_hook),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("pre-hook"),
                ..expect("restore", "fail", 3, "failure")
            },
        },
        Canary {
            name: "no backup labels",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Zero,
            // Climbed past to lint; rung 6 stops it (zero config has no
            // checks: unverified), and level 5 clears the default bar 2.
            expect: Expect {
                reason: Some("no backup covers"),
                ..expect("restore", "n/a", 5, "success")
            },
        },
        Canary {
            name: "lint error (R012)",
            recipe: "tmpl-site",
            variant: Some(unvendored_config_version),
            // The repo's settings give tmpl-site its checks, so only lint stops it.
            settings: Settings::Repo,
            expect: Expect {
                reason: Some("R012"),
                ..expect("lint", "fail", 4, "failure")
            },
        },
        Canary {
            name: "confinement: Docker socket mount",
            recipe: "tmpl-site",
            variant: Some(docker_socket),
            settings: Settings::Zero,
            expect: refused(&[
                "(the tested commit): compose.yml: services.app.volumes[1]: bind mount of the host path /var/run/docker.sock",
                "\"/var/run/docker.sock\" = \"<why",
            ]),
        },
        Canary {
            name: "confinement: rule for another host",
            recipe: "tmpl-site",
            variant: Some(rule_for_another_host),
            settings: Settings::Zero,
            expect: refused(&[
                "(the tested commit): compose.yml: services.app.deploy.labels[2]: the router rule",
                "names the host dashboard.ci.test",
            ]),
        },
        Canary {
            name: "confinement: privileged",
            recipe: "tmpl-site",
            variant: Some(privileged_base),
            settings: Settings::Zero,
            expect: refused(&[
                "1.0.0+1.22.1 (the upgrade base): compose.yml: services.app.privileged",
                "[allow]\n  privileged = ",
            ]),
        },
        Canary {
            name: "confinement: config file symlink to /etc",
            recipe: "tmpl-site",
            variant: Some(config_symlink_to_etc),
            settings: Settings::Zero,
            expect: refused(&[
                "(the tested commit): compose.yml: configs.nginx_conf.file: the config file nginx.conf.tmpl resolves outside the recipe (/etc/passwd)",
                "nginx.conf.tmpl: a symlink to /etc/passwd",
            ]),
        },
        Canary {
            name: "confinement: privileged, allowed",
            recipe: "tmpl-site",
            variant: Some(privileged_base),
            settings: Settings::Own(allow_privileged),
            expect: expect("exemplary", "pass", 7, "success"),
        },
        Canary {
            name: "required custom check skipped",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Own(skipping_check),
            expect: Expect {
                reason: Some("sso-login"),
                ..expect("tested", "skipped", 5, "failure")
            },
        },
        Canary {
            name: "exemplary: healthcheck disabled",
            recipe: "static-site",
            variant: Some(healthcheck_disabled),
            settings: Settings::Repo,
            expect: Expect {
                reason: Some("healthcheck disabled"),
                ..expect("exemplary", "fail", 6, "success")
            },
        },
        Canary {
            name: "exemplary: no release notes",
            recipe: "static-site",
            variant: Some(no_release_notes),
            settings: Settings::Repo,
            expect: Expect {
                reason: Some("no release notes for 1.1.0+1.22.1"),
                ..expect("exemplary", "fail", 6, "success")
            },
        },
        Canary {
            name: "exemplary: check passed on a retry",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Own(flaky_check_retried),
            expect: Expect {
                reason: Some("tested passed only on try 2"),
                ..expect("exemplary", "fail", 6, "success")
            },
        },
        Canary {
            name: "exemplary: volume no backup covers",
            recipe: "tmpl-site",
            variant: None,
            settings: Settings::Own(tmpl_site_volume_not_declared),
            expect: Expect {
                reason: Some("content hold data no backup covers"),
                ..expect("exemplary", "fail", 6, "success")
            },
        },
        Canary {
            name: "upgrade renames the data volume",
            recipe: "static-site",
            variant: Some(volume_renamed),
            settings: Settings::Repo,
            expect: Expect {
                reason: Some("no longer mounts volume"),
                ..expect("upgrade", "fail", 2, "failure")
            },
        },
        Canary {
            name: "backup of an empty dump",
            recipe: "static-site",
            variant: Some(empty_dump),
            settings: Settings::Zero,
            expect: Expect {
                reason: Some("empty in the snapshot"),
                ..expect("restore", "fail", 3, "failure")
            },
        },
        Canary {
            name: "restore leaves the database empty",
            recipe: "webapp-pg",
            variant: Some(restore_skips_the_database),
            settings: Settings::Repo,
            expect: Expect {
                reason: Some("did not bring the app's data back"),
                ..expect("restore", "fail", 3, "failure")
            },
        },
        Canary {
            name: "level 7 below min_level 8",
            recipe: "static-site",
            variant: None,
            settings: Settings::Own(bar_above_reach),
            expect: expect("maintained", "unverified", 7, "failure"),
        },
    ]
}

fn run(c: &Canary) -> Got {
    let variant = c.variant.map(|f| test_support::fixture_variant(c.recipe, f));
    let recipes = match &variant {
        Some(v) => v.recipes.clone(),
        None => test_support::fixture_recipes(),
    };
    let ccci = match &c.settings {
        Settings::Repo => Ccci::new(&recipes),
        Settings::Zero => Ccci::zero_config(&recipes),
        Settings::Own(fill) => {
            let cc = Ccci::zero_config(&recipes);
            let dir = cc.settings.join(c.recipe);
            std::fs::create_dir_all(&dir).unwrap();
            fill(&dir);
            cc
        }
    };
    let e = &c.expect;
    if let Some(fragments) = e.refused {
        return run_refused(c, &ccci, fragments);
    }
    let out = ccci.test(c.recipe, &[]);
    let mut want = format!("{} {}, level {}, {}", e.rung, e.status, e.level, e.verdict);
    if let Some(s) = e.under_s {
        want.push_str(&format!(", < {s:.0} s"));
    }
    let results = std::fs::read_dir(ccci.results.path().join(c.recipe))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|d| std::fs::read_to_string(d.ok()?.path().join("results.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let Some(r) = results else {
        return Got {
            row: format!("{:<40} {:<46} no results.json", c.name, want),
            ok: false,
            detail: test_support::output_text(&out),
        };
    };
    let rung = r["rungs"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["rung"] == e.rung))
        .cloned()
        .unwrap_or_default();
    let status = rung["status"].as_str().unwrap_or("absent");
    let reason = rung["reason"].as_str().unwrap_or("");
    let took = rung["duration_s"].as_f64().unwrap_or(f64::NAN);
    let level = r["level"].as_u64().unwrap_or(99);
    let verdict = r["verdict"]["state"].as_str().unwrap_or("none");
    let exit = out.status.code();
    let stack = r["app"]["stack"].as_str().unwrap_or("");
    let left = leftovers(stack);
    let mut problems = Vec::new();
    if status != e.status {
        problems.push(format!("{} is {status}", e.rung));
    }
    if level != u64::from(e.level) {
        problems.push(format!("level {level}"));
    }
    if verdict != e.verdict {
        problems.push(format!("verdict {verdict}"));
    }
    let want_exit = match e.verdict {
        "success" => 0,
        "failure" => 1,
        _ => 3,
    };
    if exit != Some(want_exit) {
        problems.push(format!("exit status {exit:?}, the verdict says {want_exit}"));
    }
    if let Some(want) = e.reason {
        if !reason.contains(want) {
            problems.push(format!("reason lacks {want:?}"));
        }
    }
    if let Some(max) = e.under_s {
        if took.is_nan() || took >= max {
            problems.push(format!("took {took:.1} s"));
        }
    }
    if !left.is_empty() {
        problems.push(format!("left behind: {}", left.join(", ")));
    }
    if r["clean_teardown"] != true {
        problems.push(format!("clean_teardown {}", r["clean_teardown"]));
    }
    let got = format!("{} {status} ({took:.1} s), level {level}, {verdict}", e.rung);
    let ok = problems.is_empty();
    Got {
        row: format!(
            "{:<40} {:<46} {:<46} {}",
            c.name,
            want,
            got,
            if ok {
                "ok".to_string()
            } else {
                format!("MISMATCH: {}", problems.join("; "))
            }
        ),
        ok,
        detail: if ok {
            format!("{}: {}", c.name, short(reason))
        } else {
            format!(
                "{}: reason: {reason}\nrungs: {}\n{}",
                c.name,
                r["rungs"],
                test_support::output_text(&out)
            )
        },
    }
}

/// A row that must be refused before anything deploys.
fn run_refused(c: &Canary, ccci: &Ccci, fragments: &[&str]) -> Got {
    let token = test_support::token();
    let id: String = token[..6]
        .chars()
        .map(|ch| {
            if ch.is_ascii_hexdigit() {
                ch.to_ascii_lowercase()
            } else {
                'a'
            }
        })
        .collect();
    let stack = format!("{}-{id}_ci_test", c.recipe);
    let out = ccci.test(c.recipe, &["--run-id", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code();
    let mut problems = Vec::new();
    if code != Some(2) {
        problems.push(format!("exit {code:?}"));
    }
    if !stderr.contains("refused before anything was deployed") {
        problems.push("no `refused before anything was deployed`".into());
    }
    for f in fragments {
        if !stderr.contains(f) {
            problems.push(format!("message lacks {f:?}"));
        }
    }
    let results = ccci.results.path().join(c.recipe);
    if results.exists() {
        problems.push(format!("results written: {}", results.display()));
    }
    let run_state = ccci.state_dir.join("runs").join(&id);
    if run_state.exists() {
        problems.push(format!("run state made: {}", run_state.display()));
    }
    let left = leftovers(&stack);
    if !left.is_empty() {
        problems.push(format!("deployed: {}", left.join(", ")));
    }
    let ok = problems.is_empty();
    let got = match code {
        Some(2) => "refused (exit 2)".to_string(),
        other => format!("exit {other:?}"),
    };
    // The violations, one a line between the header and the fix.
    let message = stderr
        .lines()
        .skip_while(|l| !l.contains("refused before anything was deployed"))
        .skip(1)
        .take_while(|l| !l.starts_with("fix:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ");
    Got {
        row: format!(
            "{:<40} {:<46} {:<46} {}",
            c.name,
            "refused (exit 2), nothing deployed",
            got,
            if ok {
                "ok".to_string()
            } else {
                format!("MISMATCH: {}", problems.join("; "))
            }
        ),
        ok,
        detail: if ok {
            format!("{}: {}", c.name, short(&message))
        } else {
            format!("{}: {}", c.name, test_support::output_text(&out))
        },
    }
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// The rows `only` (CCCI_CANARY_ONLY's comma-separated fragments) selects:
/// all when empty; a filter that selects nothing is an error (a rerun by
/// hand that tests nothing must not pass).
fn selected(only: &str) -> Result<Vec<Canary>, String> {
    let only: Vec<&str> = only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let all: Vec<Canary> = canaries()
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| c.name.contains(o)))
        .collect();
    if all.is_empty() {
        return Err(format!(
            "CCCI_CANARY_ONLY={} matches no canary; the names are:\n  {}",
            only.join(","),
            canaries().iter().map(|c| c.name).collect::<Vec<_>>().join("\n  ")
        ));
    }
    Ok(all)
}

#[test]
fn a_canary_filter_that_matches_nothing_fails() {
    let e = selected("no such canary").err().expect("an empty selection is refused");
    assert!(
        e.contains("matches no canary") && e.contains("good: static-site"),
        "{e}"
    );
    assert_eq!(selected("").unwrap().len(), canaries().len());
    assert_eq!(selected(" confinement: priv ,nothing").unwrap().len(), 2);
}

#[test]
fn every_canary_gets_its_rung_and_status_and_the_good_fixtures_stay_green() {
    // CCCI_CANARY_ONLY: a comma-separated list of name fragments, to rerun a few by hand.
    let all = selected(&std::env::var("CCCI_CANARY_ONLY").unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    if !test_support::need(Component::Swarm)
        || !test_support::need(Component::FixtureImages)
        || !test_support::need(Component::TraefikStack)
        || !test_support::need(Component::Chromium)
    {
        return;
    }
    let parallel: usize = std::env::var("CCCI_CANARY_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    // The fixture repositories, made once before the threads share them.
    test_support::fixture_recipes();
    let next = AtomicUsize::new(0);
    let got: Mutex<Vec<Option<Got>>> = Mutex::new((0..all.len()).map(|_| None).collect());
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..parallel.min(all.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(c) = all.get(i) else { break };
                let g = run(c);
                got.lock().unwrap()[i] = Some(g);
            });
        }
    });
    let got: Vec<Got> = got.into_inner().unwrap().into_iter().map(Option::unwrap).collect();
    let mut table = format!(
        "\n== regression canaries ({} runs, {parallel} at once, {:.0} s)\n{:<40} {:<46} {:<46} {}\n",
        all.len(),
        start.elapsed().as_secs_f64(),
        "canary",
        "expected",
        "got",
        "verdict"
    );
    for g in &got {
        table.push_str(&g.row);
        table.push('\n');
    }
    table.push_str("reasons:\n");
    for g in &got {
        table.push_str(&format!("  {}\n", g.detail));
    }
    // Straight to stderr: the harness captures only the print macros.
    let _ = std::io::stderr().write_all(table.as_bytes());
    let bad: Vec<&str> = got.iter().filter(|g| !g.ok).map(|g| g.row.as_str()).collect();
    assert!(bad.is_empty(), "{} canaries differ:\n{}", bad.len(), bad.join("\n"));
}
