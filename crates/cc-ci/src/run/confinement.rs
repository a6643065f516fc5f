//! The confinement check of a run, before anything deploys: both versions
//! the run deploys — what the install deploys (the upgrade base, a release;
//! [`install_target`]) and the tested commit — read by
//! [`crate::recipe::confine`] exactly as the deployer will deploy them.
//!
//! Each version is checked out in a throw-away clone of the recipe, laid out
//! as the run's app ([`App`] in a temporary `ABRA_DIR`, the same code the
//! deployer runs): the env file made as `abra app new` makes it from the
//! install version's `.env.sample` with the run's domain and the settings'
//! `[env]`, the settings' overlay appended, `[upgrade.env]` set before the
//! tested commit; the app env is then the env file with that version's
//! abra.sh exports and `STACK_NAME` ([`App::deploy_env`]), and the compose
//! files are those its `COMPOSE_FILE` names. A violation the settings do not
//! allow refuses the run ([`ConfinementError::Refused`]: `ccci test` exits 2,
//! nothing was created). The native deployer checks each deploy again
//! (`crate::deploy::native`), the backstop for what the run does later
//! (install steps, a warm app's env).
//!
//! A version that cannot be checked out or read is left out (and said so):
//! the deploy of it fails the same way before anything of it exists.
//!
//! [`read`] gives the same reading without refusing (each version's
//! services, images, secrets and limits beside its violations), for
//! `ccci plan`; [`check`] is [`read`] then the refusal.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::deploy::limits::ServiceLimits;
use crate::deploy::overrides::{self, Version};
use crate::deploy::secret::SecretPlan;
use crate::deploy::App;
use crate::recipe::confine::{self, Kind, Report, Scope, Violation};
use crate::recipe::env_file::EnvFile;
use crate::recipe::version::RecipeVersion;
use crate::run::lifecycle::install_target;
use crate::run::plan::RunPlan;
use crate::settings::{Settings, OVERLAY_FILE, SETTINGS_FILE};

/// One version checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// What it is, e.g. `1.0.0+1.22.1 (the upgrade base)`.
    pub version: String,
    /// The commit checked (40 hex).
    pub commit: String,
    /// What was found.
    pub report: Report,
    /// What the deploy of this version reads, or why it cannot (the deploy
    /// then fails on the same text, before anything of it exists).
    pub read: Result<VersionRead, String>,
}

/// What the deploy of one version reads, laid out as the run's app: the
/// reading the deployer makes before it deploys (compose files, secrets
/// planned as abra plans them), with the images, cc-ci's resource limits
/// and the services that get `endpoint_mode: dnsrr` where virtual IPs do
/// not route. Nothing is generated, pulled or deployed to make it.
#[derive(Debug, Clone)]
pub struct VersionRead {
    /// The compose files the app env's `COMPOSE_FILE` names, in order.
    pub compose_files: Vec<String>,
    /// Each service's `image:`, interpolated with the app env (as written
    /// when it does not interpolate: the deploy refuses it then).
    pub images: BTreeMap<String, String>,
    /// The secrets the services use: names and how each value would be
    /// made (length, charset, passphrase, given); never a value.
    pub secrets: Vec<SecretPlan>,
    /// Each service's limits under the settings' caps (the native
    /// deployer's override; a recipe's own lower limits kept).
    pub limits: BTreeMap<String, ServiceLimits>,
    /// The services that get `deploy.endpoint_mode: dnsrr` on a host whose
    /// virtual IPs do not route (no published port, no endpoint mode of
    /// their own).
    pub dnsrr: Vec<String>,
}

/// The versions of a run checked, all confined (or allowed by the settings).
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    /// The versions checked, in deploy order.
    pub checked: Vec<Checked>,
    /// Versions left out, with why.
    pub skipped: Vec<String>,
}

impl Confinement {
    /// Every violation the settings allow, once (a violation of both
    /// versions counts once), with the reason.
    pub fn allowed(&self) -> Vec<(Violation, String)> {
        let mut out: Vec<(Violation, String)> = Vec::new();
        for c in &self.checked {
            for a in &c.report.allowed {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// Every violation no allowance covers, with the version it is in.
    pub fn refused(&self) -> Vec<(String, Violation)> {
        self.checked
            .iter()
            .flat_map(|c| c.report.refused.iter().map(|v| (c.version.clone(), v.clone())))
            .collect()
    }

    /// The refusal [`check`] gives for this reading under `settings`, if any.
    pub fn refusal(&self, settings: &Settings) -> Option<ConfinementError> {
        let refused = self.refused();
        (!refused.is_empty()).then(|| ConfinementError::Refused {
            settings_file: settings.dir.join(SETTINGS_FILE),
            refused,
        })
    }

    /// Lines for the start of `ccci test`.
    pub fn describe(&self) -> String {
        let versions: Vec<&str> = self.checked.iter().map(|c| c.version.as_str()).collect();
        let allowed = self.allowed();
        let mut s = format!(
            "confinement: {} checked: {}\n",
            versions.join(", "),
            if allowed.is_empty() {
                "nothing leaves the test app".to_string()
            } else {
                format!(
                    "{} thing(s) beyond the test app, allowed by the settings",
                    allowed.len()
                )
            }
        );
        for (v, why) in allowed {
            s.push_str(&format!("  allowed: {v} (because: {why})\n"));
        }
        for why in &self.skipped {
            s.push_str(&format!("  not checked: {why}\n"));
        }
        s
    }
}

/// The run cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum ConfinementError {
    /// A version leaves its test app and the settings do not allow it.
    #[error("{}", refusal_text(.settings_file, .refused))]
    Refused {
        /// `tests/recipes/<recipe>/ccci.toml` (where allowances go).
        settings_file: PathBuf,
        /// Each violation, with the version it is in.
        refused: Vec<(String, Violation)>,
    },
    /// The recipe could not be copied to be checked.
    #[error("cannot check the recipe's confinement: copying {source_dir} to read its versions failed: {detail}")]
    Copy {
        /// The recipe checkout.
        source_dir: PathBuf,
        /// What failed.
        detail: String,
    },
}

fn refusal_text(settings_file: &Path, refused: &[(String, Violation)]) -> String {
    let mut s = format!(
        "the recipe leaves its test app ({} problem{}; cc-ci confines the recipes it tests):\n",
        refused.len(),
        if refused.len() == 1 { "" } else { "s" }
    );
    for (version, v) in refused {
        s.push_str(&format!("  {version}: {v}\n"));
    }
    s.push_str(&format!(
        "fix: change the recipe; or, if it truly needs this, allow each by name with a reason in cc-ci's reviewed settings {}:\n",
        settings_file.display()
    ));
    // The flags first: `[allow]` before its sub-tables reads best.
    let kinds = Kind::ALL
        .iter()
        .filter(|k| k.is_flag())
        .chain(Kind::ALL.iter().filter(|k| !k.is_flag()));
    for &kind in kinds {
        let subjects: Vec<&str> = {
            let mut v: Vec<&str> = refused
                .iter()
                .filter(|(_, x)| x.kind == kind)
                .map(|(_, x)| x.subject.as_str())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if subjects.is_empty() {
            continue;
        }
        if kind.is_flag() {
            s.push_str(&format!("  {}\n", kind.toml_lines("").replace('\n', "\n  ")));
        } else {
            s.push_str(&format!("  [allow.{}]\n", kind.key()));
            for sub in subjects {
                let line = kind.toml_lines(sub);
                s.push_str(&format!("  {}\n", line.lines().nth(1).unwrap_or_default()));
            }
        }
    }
    s.push_str("  (tests/recipes/README.md, \"Confinement\", lists what each allows)");
    s
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version)
    }
}

/// Checks every version `plan` deploys under `settings` (see the module).
///
/// # Errors
/// [`ConfinementError::Refused`] naming each violation (version, file,
/// compose key) and the lines of `ccci.toml` that would allow it;
/// [`ConfinementError::Copy`] when the recipe cannot be cloned.
pub fn check(plan: &RunPlan, settings: &Settings) -> Result<Confinement, ConfinementError> {
    let out = read(plan, settings)?;
    match out.refusal(settings) {
        Some(refused) => Err(refused),
        None => Ok(out),
    }
}

/// Reads every version `plan` deploys under `settings` as [`check`] does,
/// without refusing: each [`Checked`] carries its violations
/// ([`Report::refused`]) and what its deploy reads ([`Checked::read`]).
/// Only a temporary clone of the recipe is written (and removed).
///
/// # Errors
/// [`ConfinementError::Copy`] when the recipe cannot be cloned.
pub fn read(plan: &RunPlan, settings: &Settings) -> Result<Confinement, ConfinementError> {
    let tmp = tempfile::Builder::new()
        .prefix("ccci-confine-")
        .tempdir()
        .map_err(|e| copy_err(plan, e.to_string()))?;
    let app = App::new(tmp.path(), &plan.recipe.name, &plan.domain);
    app.clone_recipe(&plan.recipe.dir)
        .map_err(|e| copy_err(plan, e.to_string()))?;
    let scope = Scope {
        domain: &plan.domain,
        stack: &plan.stack,
    };
    let mut out = Confinement::default();

    // The install: the env file is made from this version's .env.sample.
    let (install_ref, _) = install_target(plan, settings);
    let tested_sha = &plan.tested_ref[..8.min(plan.tested_ref.len())];
    let install_is_tested = {
        let installed = app.checkout_ref(&install_ref);
        match installed {
            Err(e) => {
                out.skipped.push(format!(
                    "{install_ref} (the install): it cannot be checked out ({e}), so the install fails before anything deploys"
                ));
                false
            }
            Ok(commit) => {
                let is_tested = commit == plan.tested_ref;
                let what = if is_tested {
                    format!("{install_ref} (the tested commit, installed directly)")
                } else {
                    format!("{install_ref} (the upgrade base)")
                };
                match install_env(&app, settings) {
                    Err(e) => out
                        .skipped
                        .push(format!("{what}: {e}, so its deploy fails before anything deploys")),
                    Ok(()) => {
                        let (report, read) = version(&app, settings, &scope, &install_ref);
                        out.checked.push(Checked {
                            version: what,
                            commit,
                            report,
                            read,
                        });
                    }
                }
                is_tested
            }
        }
    };

    // The tested commit, deployed over it with [upgrade.env].
    if !install_is_tested {
        let what = format!("{tested_sha} (the tested commit)");
        match app.checkout_ref(&plan.tested_ref) {
            Err(e) => out.skipped.push(format!("{what}: cannot be checked out ({e})")),
            Ok(commit) => {
                if !app.env_path().is_file() {
                    // The install version could not be read: judge the tested
                    // commit with its own sample (stricter, never looser).
                    if let Err(e) = install_env(&app, settings) {
                        out.skipped.push(format!("{what}: {e}"));
                    }
                }
                let upgraded = app
                    .set_all(settings.upgrade_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(|e| e.to_string());
                match upgraded {
                    Err(e) => out.skipped.push(format!("{what}: cannot set [upgrade.env]: {e}")),
                    Ok(()) if app.env_path().is_file() => {
                        copy_overlay(&app, settings).map_err(|e| copy_err(plan, e))?;
                        let (report, read) = version(&app, settings, &scope, &plan.tested_ref);
                        out.checked.push(Checked {
                            version: what,
                            commit,
                            report,
                            read,
                        });
                    }
                    Ok(()) => {}
                }
            }
        }
    }
    Ok(out)
}

fn copy_err(plan: &RunPlan, detail: String) -> ConfinementError {
    ConfinementError::Copy {
        source_dir: plan.recipe.dir.clone(),
        detail,
    }
}

/// The app's env file as `abra app new` makes it from the checked-out
/// version's `.env.sample` (the deployer's [`App::write_env`]), with the
/// settings' overlay appended to `COMPOSE_FILE` as the install does.
fn install_env(app: &App, settings: &Settings) -> Result<(), String> {
    let sample_path = app.checkout().join(".env.sample");
    let sample =
        std::fs::read_to_string(&sample_path).map_err(|e| format!("{} cannot be read ({e})", sample_path.display()))?;
    app.write_env(&sample, &settings.env).map_err(|e| e.to_string())?;
    if settings.overlay.is_some() {
        let mut envf: EnvFile = app.env_file().map_err(|e| e.to_string())?;
        settings
            .apply_overlay(&app.checkout(), &mut envf)
            .map_err(|e| e.to_string())?;
        let cf = envf.get("COMPOSE_FILE").unwrap_or("compose.yml").to_string();
        app.set("COMPOSE_FILE", &cf).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The settings' overlay, copied into the checkout again (a checkout
/// removes untracked files), so that it is checked with every version.
fn copy_overlay(app: &App, settings: &Settings) -> Result<(), String> {
    if let Some(o) = &settings.overlay {
        let to = app.checkout().join(OVERLAY_FILE);
        std::fs::copy(&o.file, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    Ok(())
}

/// The checked-out version, as its deploy would read it: its confinement
/// report and what the deploy reads (`reference` names it in errors).
fn version(
    app: &App,
    settings: &Settings,
    scope: &Scope<'_>,
    reference: &str,
) -> (Report, Result<VersionRead, String>) {
    // The version's files, read once, as its deploy reads them.
    let version = match RecipeVersion::read(&app.checkout()) {
        Ok(v) => v,
        Err(e) => return (Report::default(), Err(format!("the recipe at {reference}: {e}"))),
    };
    match app.deploy_env(&version) {
        Ok(app_env) => {
            let env = &app_env.values;
            let files = crate::deploy::compose_files(env);
            let report = confine::check(&version, &files, env, scope, &settings.allow);
            let read = crate::deploy::read_version(&version, &app_env, reference)
                .map(|(compose_files, compose, secrets)| {
                    let images = compose
                        .services
                        .values()
                        .filter_map(|s| {
                            let raw = s.image.as_ref()?;
                            let image =
                                crate::recipe::interpolate::interpolate(raw, env).unwrap_or_else(|_| raw.clone());
                            Some((s.name.clone(), image))
                        })
                        .collect();
                    // The version changes labels on `app` alone; dnsrr is asked for.
                    let version = Version::Chaos(String::new());
                    let ov = overrides::compute(&compose, &app.stack, &app.recipe, &version, env, true);
                    VersionRead {
                        compose_files,
                        images,
                        secrets,
                        limits: crate::deploy::limits::per_service(&compose, env, &settings.limits),
                        dnsrr: ov.dnsrr,
                    }
                })
                .map_err(|e| e.to_string());
            (report, read)
        }
        // The deploy reads the same env and fails on it before anything
        // deploys; the files are still checked with the env it has.
        Err(e) => (
            confine::check(
                &version,
                &["compose.yml".to_string()],
                &Default::default(),
                scope,
                &settings.allow,
            ),
            Err(e.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plan::RunEnv;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.email=t@t", "-c", "user.name=t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A recipe with two releases; `edit(version, dir)` changes each tree
    /// before its commit.
    fn recipe(d: &Path, edit: impl Fn(&str, &Path)) -> PathBuf {
        let r = d.join("site");
        std::fs::create_dir_all(&r).unwrap();
        git(&r, &["init", "-q"]);
        for v in ["1.0.0+1", "1.1.0+1"] {
            std::fs::write(
                r.join(".env.sample"),
                "TYPE=site\nDOMAIN=site.example.com\n#EXTRA_DOMAINS=', `www.site.example.com`'\n",
            )
            .unwrap();
            std::fs::write(
                r.join("compose.yml"),
                format!(
                    "version: \"3.8\"\nservices:\n  app:\n    image: nginx\n    volumes: [content:/srv]\n    deploy:\n      labels:\n        \
                     - \"traefik.http.routers.${{STACK_NAME}}.rule=Host(`${{DOMAIN}}`${{EXTRA_DOMAINS}})\"\n        \
                     - \"coop-cloud.${{STACK_NAME}}.version={v}\"\nvolumes:\n  content:\n"
                ),
            )
            .unwrap();
            edit(v, &r);
            git(&r, &["add", "-A"]);
            git(&r, &["commit", "-q", "-m", v]);
            git(&r, &["tag", "-a", v, "-m", v]);
        }
        r
    }

    fn plan_of(d: &Path, r: &Path) -> RunPlan {
        RunPlan::new(
            r,
            &RunEnv {
                domain: "ci.test".into(),
                state_dir: d.join("state"),
                results_dir: d.join("results"),
            },
        )
        .unwrap()
    }

    fn settings(d: &Path, toml: &str) -> Settings {
        let root = d.join("settings");
        std::fs::create_dir_all(root.join("site")).unwrap();
        std::fs::write(root.join("site").join(SETTINGS_FILE), toml).unwrap();
        Settings::load(&root, "site").unwrap()
    }

    #[test]
    fn both_versions_are_checked_and_each_violation_named() {
        let d = tempfile::tempdir().unwrap();
        let r = recipe(d.path(), |v, dir| {
            let p = dir.join("compose.yml");
            let t = std::fs::read_to_string(&p).unwrap();
            let t = if v == "1.0.0+1" {
                t.replace("    image: nginx\n", "    image: nginx\n    privileged: true\n")
            } else {
                t.replace(
                    "[content:/srv]",
                    "[content:/srv, \"/var/run/docker.sock:/var/run/docker.sock\"]",
                )
            };
            std::fs::write(p, t).unwrap();
        });
        let plan = plan_of(d.path(), &r);
        let s = settings(d.path(), "");
        let e = check(&plan, &s).unwrap_err();
        let text = e.to_string();
        let ConfinementError::Refused { refused, .. } = &e else {
            panic!("{e}")
        };
        let got: Vec<(String, Kind, &str)> = refused
            .iter()
            .map(|(v, x)| (v.split(' ').next().unwrap().to_string(), x.kind, x.key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("1.0.0+1".to_string(), Kind::Privileged, "services.app.privileged"),
                (
                    plan.tested_ref[..8].to_string(),
                    Kind::BindMount,
                    "services.app.volumes[1]"
                ),
            ],
            "{text}"
        );
        assert!(
            text.contains("(the upgrade base): compose.yml: services.app.privileged: privileged"),
            "{text}"
        );
        assert!(
            text.contains("[allow]\n  privileged = \"<why the recipe needs it>\"\n  [allow.bind_mounts]\n  \"/var/run/docker.sock\" = \"<why the recipe needs it>\""),
            "{text}"
        );
        assert!(text.contains(&s.dir.join("ccci.toml").display().to_string()), "{text}");
        assert!(!d.path().join("state").exists(), "nothing of the run was made");

        // Allowed by name with a reason: the same recipe goes ahead, and says so.
        let s = settings(
            d.path(),
            "[allow]\nprivileged = \"the old release needed it\"\n[allow.bind_mounts]\n\"/var/run/docker.sock\" = \"it lists the services\"\n",
        );
        let ok = check(&plan, &s).unwrap();
        assert_eq!(ok.checked.len(), 2);
        let allowed = ok.allowed();
        assert_eq!(allowed.len(), 2, "{allowed:?}");
        assert!(
            ok.describe().contains("(because: it lists the services)"),
            "{}",
            ok.describe()
        );
    }

    #[test]
    fn read_refuses_nothing_and_tells_what_each_deploy_reads() {
        let d = tempfile::tempdir().unwrap();
        let r = recipe(d.path(), |v, dir| {
            let p = dir.join("compose.yml");
            let t = std::fs::read_to_string(&p).unwrap();
            let t = if v == "1.0.0+1" {
                t.replace("    image: nginx\n", "    image: nginx:${NGINX_TAG:-1.25}\n")
            } else {
                // The tested commit: a secret, and the Docker socket.
                t.replace(
                    "[content:/srv]",
                    "[content:/srv, \"/var/run/docker.sock:/var/run/docker.sock\"]\n    secrets: [db_password]",
                ) + "secrets:\n  db_password:\n    external: true\n    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}\n"
            };
            std::fs::write(p, t).unwrap();
            // The app's env file is made from the installed version's sample.
            let e = dir.join(".env.sample");
            let t = std::fs::read_to_string(&e).unwrap();
            std::fs::write(e, t + "SECRET_DB_PASSWORD_VERSION=v1 # length=24 charset=hex\n").unwrap();
        });
        let plan = plan_of(d.path(), &r);
        let s = settings(d.path(), "[limits]\nmemory = \"512m\"\nreason = \"small\"\n");
        let read = read(&plan, &s).unwrap();
        assert_eq!(read.checked.len(), 2);
        let base = read.checked[0].read.as_ref().unwrap();
        assert_eq!(base.images["app"], "nginx:1.25");
        assert!(base.secrets.is_empty());
        assert_eq!(base.limits["app"].memory_bytes, 512 << 20);
        assert_eq!(base.dnsrr, ["app"]);
        let tested = read.checked[1].read.as_ref().unwrap();
        assert_eq!(tested.compose_files, ["compose.yml"]);
        assert_eq!(tested.secrets.len(), 1, "{tested:?}");
        assert_eq!(tested.secrets[0].generation, crate::deploy::secret::Generation::Hex(24));
        assert!(tested.secrets[0].remote_name.ends_with("_db_password_v1"));
        // The refusal check() gives is in the reading, not thrown.
        let refused = read.refused();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].0.contains("the tested commit") && refused[0].1.subject == "/var/run/docker.sock");
        assert!(matches!(read.refusal(&s), Some(ConfinementError::Refused { .. })));
        assert!(check(&plan, &s).is_err());
    }

    #[test]
    fn the_env_is_the_deploys_domain_extra_domains_and_upgrade_env() {
        let d = tempfile::tempdir().unwrap();
        let r = recipe(d.path(), |v, dir| {
            // abra app new writes the app's domain over the sample's example domain.
            let p = dir.join(".env.sample");
            let t = std::fs::read_to_string(&p).unwrap();
            std::fs::write(p, t.replace("#EXTRA_DOMAINS", "EXTRA_DOMAINS")).unwrap();
            if v == "1.1.0+1" {
                let p = dir.join("compose.yml");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(p, t.replace("[content:/srv]", "[\"${DATA:-content}:/srv\"]")).unwrap();
            }
        });
        let plan = plan_of(d.path(), &r);
        // EXTRA_DOMAINS from the sample: www.<domain> is a sub-domain: allowed.
        let s = settings(d.path(), "");
        let ok = check(&plan, &s).unwrap();
        assert_eq!(ok.checked.len(), 2, "{}", ok.describe());
        assert!(ok.allowed().is_empty());
        // Another host through [env]: refused.
        let s = settings(d.path(), "[env]\nEXTRA_DOMAINS = \", `ci.test`\"\n");
        let e = check(&plan, &s).unwrap_err().to_string();
        assert!(e.contains("names the host ci.test"), "{e}");
        // [upgrade.env] reaches the tested commit only.
        let s = settings(d.path(), "[upgrade.env]\nDATA = \"/etc\"\n");
        let e = check(&plan, &s).unwrap_err();
        let ConfinementError::Refused { refused, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(refused.len(), 1, "{e}");
        assert!(
            refused[0].0.contains("the tested commit") && refused[0].1.subject == "/etc",
            "{e}"
        );
    }

    #[test]
    fn one_version_when_the_tested_commit_is_installed_directly() {
        let d = tempfile::tempdir().unwrap();
        let r = recipe(d.path(), |_, _| {});
        let plan = plan_of(d.path(), &r);
        let s = settings(d.path(), "[upgrade]\nskip = \"no upgrade\"\n");
        let ok = check(&plan, &s).unwrap();
        assert_eq!(ok.checked.len(), 1);
        assert!(
            ok.checked[0].version.contains("installed directly"),
            "{}",
            ok.describe()
        );
    }
}
