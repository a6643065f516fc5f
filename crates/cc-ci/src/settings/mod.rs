//! Per-recipe CI settings: `tests/recipes/<recipe>/` in this repository
//! (`docs/design.md`, "The main job"). Zero config works: a recipe
//! without a folder, or a folder without `ccci.toml`, gets the defaults.
//!
//! The folder holds one declarative file plus optional executables
//! (a maintainer's guide with a complete example: `tests/recipes/README.md`):
//!
//! ```text
//! tests/recipes/<recipe>/
//!   ccci.toml          settings (below); optional
//!   install-steps      executable: after `abra app new` and the env, before the first deploy
//!   hooks/pre-<rung>   executables: before rung serve, upgrade, restore, lint or tested
//!   custom/<test>      executables: the recipe's own tests (rung `tested`), any language;
//!                      subfolders of custom/ are ignored (helpers, data)
//!   compose.ccci.yml   compose overlay, a last resort: needs `[overlay] reason`
//!   README*, .*        ignored; anything else is an error (a misnamed file would be ignored silently)
//! ```
//!
//! ```toml
//! [timeouts]                 # seconds; defaults shown
//! deploy = 300               # each deploy's convergence
//! http = 60                  # how long an HTTP check retries while the app is "not yet" up
//! scripts = 600              # each executable (install steps, hook, custom test)
//!
//! [env]                      # extra app env (over .env.sample), strings only
//! SITE_TITLE = "cc-ci"
//!
//! [secrets]                  # values of secrets marked `# generate=false`, by id
//! smtp_password = "test-only" # (masked in every report)
//!
//! [upgrade]
//! base = "previous"          # default; or a release tag, e.g. "1.0.0+1.22.1"
//! # skip = "why"             # instead of base: the upgrade rung is n/a with this reason
//! [upgrade.env]              # extra env for the upgraded deploy only (over [env])
//! NEW_FLAG = "1"
//!
//! [[serve.checks]]           # what "serves" means; default: GET / answers 2xx or 3xx
//! path = "/"                 # default "/"
//! status = [200]             # default: any 2xx or 3xx; each 100-599
//! title = "^Welcome"         # regex searched in the <title>
//! content = "ccci"           # regex searched in the body
//!
//! [[checks.upgrade]]         # extra HTTP checks of rung serve, upgrade or restore
//! path = "/health"
//! status = [200]
//!
//! [backup]                   # overrides detection from backupbot labels
//! capable = false
//! reason = "the data is rebuilt from the upstream on start"
//!
//! [expect_na]                # rungs (serve, upgrade, restore) that do not apply, with why
//! serve = "no web interface: a mail relay"
//!
//! [overlay]                  # required exactly when compose.ccci.yml is present
//! reason = "the upstream image needs a writable /tmp under cc-ci's read-only test"
//!
//! min_level = 5              # the bar a run must reach to be green (0-8); default:
//!                            # the level of the newest release's last run here, else 2
//!
//! [volumes.ephemeral]        # named volumes whose loss is fine, each with why
//! cache = "a page cache, rebuilt on start"
//!
//! [data]                     # a data witness written and read THROUGH the app
//! service = "db"             # commands run with `sh -c` in its running container,
//! write = "psql -c \"insert into w values ('$CCCI_DATA_WITNESS')\""   # with CCCI_DATA_WITNESS set
//! read = "psql -tAc 'select v from w'"    # must print the witness after upgrade and restore
//! destroy = "psql -c 'delete from w'"     # damages the data before the restore
//!
//! [tested]
//! retries = 1                # rerun a failing custom test once (a pass on a retry is not exemplary)
//!
//! [allow]                    # what the recipe may do beyond its test app, each by name with why
//! privileged = "why"         # (crate::recipe::confine lists the kinds; refused by default)
//! [allow.bind_mounts]        # also cap_add, devices, host_modes, security_opt, ports, names,
//! "/var/run/docker.sock" = "Traefik reads the services from the Docker API"
//!                            # files, traefik_hosts, traefik_names: subject = "why"
//!
//! [limits]                   # per service of the test app; default 1 CPU and 1 GiB
//! cpus = 2.0
//! memory = "2g"              # Docker's units (k, m, g; 1024-based)
//! reason = "the search index is built at start"
//! ```
//!
//! Every problem is a [`SettingsError`] naming the file, the line (where there
//! is one) and the fix, found by [`Settings::load`] before anything deploys.
//!
//! Code from the recipe's own repository (`tests/ccci/custom/*`,
//! `tests/ccci/hooks/pre-<rung>` in the recipe checkout, see
//! [`REPO_LOCAL_DIR`]) runs only for recipes listed in
//! `tests/recipes/approved.toml` ([`Settings::repo_local`]).
//!
//! [`Settings::manifest`] is the customization in force, secret-looking values
//! masked, for `results.json`; [`Settings::describe`] the same for a terminal.
//! [`TestEnv`] is the contract of every executable: the environment it gets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Value};
use toml::Spanned;

mod folder;
pub mod mask;
mod schema;

use folder::{load_approved, require_executable, scan_custom, scan_hooks, sorted_entries};
use mask::mask;
use schema::*;

use crate::deploy::limits::{self, ResourceLimits};
use crate::probe::serve::{ExpectStatus, ServeSpec, DEFAULT_READINESS};
use crate::recipe::confine::{Allowances, Kind};
use crate::recipe::env_file::EnvFile;
use crate::results::level::Rung;

/// The settings file inside a recipe's settings folder.
pub const SETTINGS_FILE: &str = "ccci.toml";
/// The approved list, in the settings root (`tests/recipes/approved.toml`).
pub const APPROVED_FILE: &str = "approved.toml";
/// The install-steps executable.
pub const INSTALL_STEPS: &str = "install-steps";
/// The folder of pre-rung hooks.
pub const HOOKS_DIR: &str = "hooks";
/// The folder of custom tests.
pub const CUSTOM_DIR: &str = "custom";
/// The compose overlay file name (in the settings folder; copied into the
/// checkout and appended to `COMPOSE_FILE`).
pub const OVERLAY_FILE: &str = "compose.ccci.yml";
/// Where a recipe's own cc-ci code lives in its checkout (`custom/`, `hooks/`
/// as in a settings folder); used only for approved recipes.
pub const REPO_LOCAL_DIR: &str = "tests/ccci";

/// Default convergence timeout of one deploy.
pub const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time an executable may run.
pub const DEFAULT_SCRIPTS_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest timeout accepted (one day).
const MAX_TIMEOUT_S: f64 = 86_400.0;
/// Keys of `[host_modes]` under `[allow]`: the compose keys that can share a
/// host namespace or leave the app's cgroup.
const HOST_MODE_KEYS: &[&str] = &["network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup_parent"];
/// Env keys cc-ci sets itself.
const RESERVED_ENV: &[&str] = &["DOMAIN", "TYPE", "RECIPE", "LETS_ENCRYPT_ENV"];
/// Rungs a hook may precede (install has `install-steps`; 7 and 8 are computed).
const HOOK_RUNGS: &[Rung] = &[Rung::Serve, Rung::Upgrade, Rung::Restore, Rung::Lint, Rung::Tested];
/// Rungs with extra HTTP checks or a declared n/a: the ones that deploy or serve.
const HTTP_RUNGS: &[Rung] = &[Rung::Serve, Rung::Upgrade, Rung::Restore];

/// A settings problem: the file, the 1-based line (when one is to blame) and
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct SettingsError {
    /// The file (or folder) at fault.
    pub file: PathBuf,
    /// The 1-based line of the offending key or value, if known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn file_err(file: &Path, message: String) -> SettingsError {
    SettingsError {
        file: file.to_path_buf(),
        line: None,
        message,
    }
}

/// Which release the upgrade rung starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeBase {
    /// The newest release at or below the tested version whose commit is
    /// not the tested one ([`crate::recipe::upgrade_base`]; the default).
    Previous,
    /// This release tag.
    Pinned(String),
    /// No upgrade: the rung is n/a with this reason.
    Skip(String),
}

/// One HTTP check: `GET <path>` on the app's domain through Traefik.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// Path and query, starting with `/`.
    pub path: String,
    /// Statuses that pass.
    pub status: ExpectStatus,
    /// Regex searched in the page's `<title>`.
    pub title: Option<Regex>,
    /// Regex searched in the body.
    pub content: Option<Regex>,
}

impl HttpCheck {
    /// `GET /`, any 2xx or 3xx: the zero-config serve check.
    pub fn front_page() -> HttpCheck {
        HttpCheck {
            path: "/".into(),
            status: ExpectStatus::SuccessOrRedirect,
            title: None,
            content: None,
        }
    }

    /// The [`ServeSpec`] for this check on `domain`, trusting `ca_file`,
    /// retrying "not yet" answers for `readiness` (the `http` timeout).
    pub fn spec(&self, domain: &str, ca_file: &Path, readiness: Duration) -> ServeSpec {
        let mut s = ServeSpec::new(domain, ca_file);
        s.path = self.path.clone();
        s.expect = self.status.clone();
        s.title = self.title.clone();
        s.content = self.content.clone();
        s.readiness = readiness;
        s
    }

    fn manifest(&self) -> Value {
        let status = match &self.status {
            ExpectStatus::SuccessOrRedirect => json!("2xx or 3xx"),
            ExpectStatus::AnyOf(l) => json!(l),
        };
        json!({
            "path": self.path,
            "status": status,
            "title": self.title.as_ref().map(Regex::as_str),
            "content": self.content.as_ref().map(Regex::as_str),
        })
    }

    fn describe(&self) -> String {
        let mut s = format!("GET {} expects {}", self.path, self.status);
        if let Some(t) = &self.title {
            s += &format!(", title ~ /{}/", t.as_str());
        }
        if let Some(c) = &self.content {
            s += &format!(", content ~ /{}/", c.as_str());
        }
        s
    }
}

/// Timeouts in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Convergence of each deploy. Default [`DEFAULT_DEPLOY_TIMEOUT`].
    pub deploy: Duration,
    /// How long an HTTP check retries "not yet" answers. Default [`DEFAULT_READINESS`].
    pub http: Duration,
    /// Each executable's run time. Default [`DEFAULT_SCRIPTS_TIMEOUT`].
    pub scripts: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            deploy: DEFAULT_DEPLOY_TIMEOUT,
            http: DEFAULT_READINESS,
            scripts: DEFAULT_SCRIPTS_TIMEOUT,
        }
    }
}

/// A declared override of backup capability (detected from backupbot labels otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOverride {
    /// Whether the recipe can be backed up and restored.
    pub capable: bool,
    /// Why detection is overridden.
    pub reason: String,
}

/// The declared compose overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// `<settings folder>/compose.ccci.yml`.
    pub file: PathBuf,
    /// Why the recipe needs it.
    pub reason: String,
}

/// The decision on a recipe's own code (its checkout's [`REPO_LOCAL_DIR`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLocal {
    /// `<checkout>/tests/ccci`.
    pub dir: PathBuf,
    /// Whether that folder exists.
    pub present: bool,
    /// Whether its code runs.
    pub used: bool,
    /// Why (or why not), for the manifest and the results.
    pub reason: String,
    /// Its custom tests (empty unless used).
    pub custom: Vec<PathBuf>,
    /// Its pre-rung hooks (empty unless used).
    pub hooks: BTreeMap<Rung, PathBuf>,
}

impl RepoLocal {
    fn manifest(&self) -> Value {
        let rel = |p: &PathBuf| p.strip_prefix(&self.dir).unwrap_or(p).display().to_string();
        json!({
            "dir": REPO_LOCAL_DIR,
            "present": self.present,
            "used": self.used,
            "reason": self.reason,
            "custom_tests": self.custom.iter().map(rel).collect::<Vec<_>>(),
            "hooks": self.hooks.iter().map(|(r, p)| (r.word().to_string(), json!(rel(p)))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// A recipe's settings in force, defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Recipe name.
    pub recipe: String,
    /// The settings folder `<root>/<recipe>` (it may not exist: zero config).
    pub dir: PathBuf,
    /// `ccci.toml`, if present.
    pub file: Option<PathBuf>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Extra app env.
    pub env: BTreeMap<String, String>,
    /// Values of secrets the recipe marks `# generate=false` (abra would
    /// need `abra app secret insert`), by secret id (`[secrets]`; test
    /// values only: they are masked in every report).
    pub secrets: BTreeMap<String, String>,
    /// Where the upgrade starts, or why it is skipped.
    pub upgrade_base: UpgradeBase,
    /// Extra env for the upgraded deploy (over [`Settings::env`]).
    pub upgrade_env: BTreeMap<String, String>,
    /// What "serves" means (run at serve and again after upgrade and restore).
    /// Never empty: [`HttpCheck::front_page`] by default.
    pub serve_checks: Vec<HttpCheck>,
    /// Extra HTTP checks per rung (serve, upgrade, restore).
    pub checks: BTreeMap<Rung, Vec<HttpCheck>>,
    /// Backup capability override.
    pub backup: Option<BackupOverride>,
    /// Rungs declared not applicable, with reasons (`[expect_na]`).
    pub expect_na: BTreeMap<Rung, String>,
    /// The install-steps executable, if present.
    pub install_steps: Option<PathBuf>,
    /// Pre-rung hooks.
    pub hooks: BTreeMap<Rung, PathBuf>,
    /// Custom tests, in name order.
    pub custom: Vec<PathBuf>,
    /// The compose overlay, if declared.
    pub overlay: Option<Overlay>,
    /// The approved list's file.
    pub approved_file: PathBuf,
    /// Whether the recipe is on the approved list.
    pub approved: bool,
    /// Keys left at their defaults (`timeouts.deploy`, `serve.checks`, ...).
    pub defaulted: Vec<&'static str>,
    /// The repo-local decision, once [`Settings::repo_local`] made it.
    pub repo_local_decision: Option<RepoLocal>,
    /// The bar a run must reach to be green (`min_level`), if set; see
    /// [`crate::results::verdict`].
    pub min_level: Option<u8>,
    /// Named volumes declared ephemeral (`[volumes.ephemeral]`): short
    /// volume name (as in the compose file) -> why its loss is fine.
    pub ephemeral_volumes: BTreeMap<String, String>,
    /// The data witness through the app (`[data]`), if declared.
    pub data: Option<DataWitness>,
    /// How many times a failing custom test is run again (`[tested]
    /// retries`, 0-3, default 0).
    pub test_retries: u32,
    /// What the recipe may do beyond its test app (`[allow]`), each with a
    /// reason; nothing by default ([`crate::recipe::confine`]).
    pub allow: Allowances,
    /// The resource caps of each service of the test app (`[limits]`;
    /// default [`ResourceLimits::default`]).
    pub limits: ResourceLimits,
    /// Why `[limits]` changes the caps, when it does.
    pub limits_reason: Option<String>,
}

/// A data witness written and read through the app (`[data]`): each
/// command runs as `sh -c <command>` in a running container of `service`,
/// with `CCCI_DATA_WITNESS` set to a fresh random token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataWitness {
    /// The service (short compose name, e.g. `db`).
    pub service: String,
    /// Stores the token (before the upgrade, or before the backup).
    pub write: String,
    /// Prints what is stored: its output must hold the token after the
    /// upgrade and after the restore, and must not after `destroy`.
    pub read: String,
    /// Damages the data before the restore (deletes the token).
    pub destroy: String,
}

/// Most retries `[tested] retries` allows.
pub const MAX_TEST_RETRIES: u32 = 3;

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn rung_in(name: &str, allowed: &[Rung]) -> Option<Rung> {
    allowed.iter().copied().find(|r| r.word() == name)
}

fn names(rungs: &[Rung]) -> String {
    rungs.iter().map(|r| r.word()).collect::<Vec<_>>().join(", ")
}

fn suggestion(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.contains("install") {
        "did you mean install-steps (no extension)?"
    } else if n.ends_with(".toml") || n.contains("ccci") && !n.contains("compose") {
        "did you mean ccci.toml?"
    } else if n.contains("compose") {
        "did you mean compose.ccci.yml?"
    } else if n.contains("hook") {
        "did you mean the hooks/ folder?"
    } else if n.contains("test") || n.contains("custom") {
        "did you mean the custom/ folder?"
    } else {
        "move helper files into a subfolder of custom/"
    }
}

fn valid_env_key(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` names a recipe (no path tricks).
fn valid_recipe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl Settings {
    /// The zero-config settings of `recipe` (nothing read).
    fn defaults(recipe: &str, dir: PathBuf, approved_file: PathBuf) -> Settings {
        Settings {
            recipe: recipe.into(),
            dir,
            file: None,
            timeouts: Timeouts::default(),
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            upgrade_base: UpgradeBase::Previous,
            upgrade_env: BTreeMap::new(),
            serve_checks: vec![HttpCheck::front_page()],
            checks: BTreeMap::new(),
            backup: None,
            expect_na: BTreeMap::new(),
            install_steps: None,
            hooks: BTreeMap::new(),
            custom: Vec::new(),
            overlay: None,
            approved_file,
            approved: false,
            defaulted: vec![
                "timeouts.deploy",
                "timeouts.http",
                "timeouts.scripts",
                "upgrade.base",
                "serve.checks",
                "backup",
                "limits",
            ],
            repo_local_decision: None,
            min_level: None,
            ephemeral_volumes: BTreeMap::new(),
            data: None,
            test_retries: 0,
            allow: Allowances::default(),
            limits: ResourceLimits::default(),
            limits_reason: None,
        }
    }

    /// Loads the settings of `recipe` from `<settings_root>/<recipe>/`
    /// (`settings_root` is this repository's `tests/recipes`), and whether
    /// the recipe is on `<settings_root>/approved.toml`.
    ///
    /// A missing folder or `ccci.toml` means the defaults (zero config).
    ///
    /// # Errors
    /// [`SettingsError`] naming the file, line and fix for: TOML syntax,
    /// unknown keys, wrong types, bad values (timeouts, statuses outside
    /// 100-599, regexes, env keys, rung names, `upgrade.base` with
    /// `upgrade.skip`, contradictions), a non-executable or misnamed
    /// executable, an unexpected file in the folder, `compose.ccci.yml`
    /// without `[overlay]` or the reverse, an overlay that is not YAML.
    pub fn load(settings_root: &Path, recipe: &str) -> Result<Settings, SettingsError> {
        let approved_file = settings_root.join(APPROVED_FILE);
        if !valid_recipe_name(recipe) {
            return Err(file_err(
                settings_root,
                format!("{recipe:?} is not a recipe name (letters, digits, - _ .)"),
            ));
        }
        let approved = load_approved(&approved_file)?.iter().any(|r| r == recipe);
        let dir = settings_root.join(recipe);
        let mut s = Settings::defaults(recipe, dir.clone(), approved_file);
        s.approved = approved;
        if !dir.exists() {
            return Ok(s);
        }
        if !dir.is_dir() {
            return Err(file_err(
                &dir,
                "must be a folder of settings (tests/recipes/<recipe>/ccci.toml ...), not a file".into(),
            ));
        }
        // Every entry must be one cc-ci reads: a misnamed file would otherwise be ignored.
        let mut overlay_present = false;
        for (name, path) in sorted_entries(&dir)? {
            match name.as_str() {
                SETTINGS_FILE | HOOKS_DIR | CUSTOM_DIR => {}
                INSTALL_STEPS => {
                    require_executable(&path, "install-steps")?;
                    s.install_steps = Some(path);
                }
                OVERLAY_FILE => overlay_present = true,
                n if n.starts_with("README") => {}
                _ => {
                    return Err(file_err(
                        &path,
                        format!(
                            "unexpected file: cc-ci reads only ccci.toml, install-steps, hooks/, custom/ and \
                             compose.ccci.yml here (README* and dot-files are ignored); {}",
                            suggestion(&name)
                        ),
                    ))
                }
            }
        }
        for (sub, what) in [(HOOKS_DIR, "hooks"), (CUSTOM_DIR, "custom")] {
            let p = dir.join(sub);
            if p.exists() && !p.is_dir() {
                return Err(file_err(
                    &p,
                    format!("{what} must be a folder of executables, not a file"),
                ));
            }
        }
        s.hooks = scan_hooks(&dir.join(HOOKS_DIR))?;
        s.custom = scan_custom(&dir.join(CUSTOM_DIR))?;

        let file = dir.join(SETTINGS_FILE);
        let mut overlay_decl = None;
        if file.exists() {
            let text = std::fs::read_to_string(&file).map_err(|e| file_err(&file, format!("cannot read: {e}")))?;
            overlay_decl = s.apply_toml(&file, &text)?;
            s.file = Some(file.clone());
        }
        let overlay_path = dir.join(OVERLAY_FILE);
        match (overlay_present, overlay_decl) {
            (false, None) => {}
            (true, None) => {
                return Err(file_err(
                    &overlay_path,
                    format!(
                        "an overlay is a last resort and must say why: add to {} a table\n[overlay]\nreason = \"...\"\n\
                         or remove {OVERLAY_FILE}",
                        file.display()
                    ),
                ))
            }
            (false, Some((line, _))) => {
                return Err(SettingsError {
                    file: file.clone(),
                    line: Some(line),
                    message: format!(
                        "[overlay] is declared but {} does not exist: add the overlay there or remove [overlay]",
                        overlay_path.display()
                    ),
                })
            }
            (true, Some((_, reason))) => {
                check_overlay_yaml(&overlay_path)?;
                s.overlay = Some(Overlay {
                    file: overlay_path,
                    reason,
                });
            }
        }
        Ok(s)
    }

    /// Applies `ccci.toml` (`text`, read from `file`); returns the
    /// `[overlay]` declaration (line, reason) if any.
    fn apply_toml(&mut self, file: &Path, text: &str) -> Result<Option<(usize, String)>, SettingsError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| SettingsError {
            file: file.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawSettings = toml::from_str(text).map_err(|e| {
            err(
                e.span(),
                format!("{} (see the keys in tests/recipes/README.md)", e.message().trim()),
            )
        })?;
        let mut defaulted: Vec<&'static str> = Vec::new();

        let seconds =
            |v: &Option<Spanned<f64>>, key: &'static str, default: Duration, defaulted: &mut Vec<&'static str>| match v
            {
                None => {
                    defaulted.push(key);
                    Ok(default)
                }
                Some(s) if s.get_ref().is_finite() && *s.get_ref() > 0.0 && *s.get_ref() <= MAX_TIMEOUT_S => {
                    Ok(Duration::from_secs_f64(*s.get_ref()))
                }
                Some(s) => Err(err(
                    Some(s.span()),
                    format!(
                        "{key} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S}, not {}",
                        s.get_ref()
                    ),
                )),
            };
        self.timeouts = Timeouts {
            deploy: seconds(
                &raw.timeouts.deploy,
                "timeouts.deploy",
                DEFAULT_DEPLOY_TIMEOUT,
                &mut defaulted,
            )?,
            http: seconds(&raw.timeouts.http, "timeouts.http", DEFAULT_READINESS, &mut defaulted)?,
            scripts: seconds(
                &raw.timeouts.scripts,
                "timeouts.scripts",
                DEFAULT_SCRIPTS_TIMEOUT,
                &mut defaulted,
            )?,
        };

        let env_map = |m: &BTreeMap<Spanned<String>, Spanned<String>>, table: &str| {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let key = k.get_ref();
                if !valid_env_key(key) {
                    return Err(err(
                        Some(k.span()),
                        format!("[{table}] key {key:?} is not an env variable name (letters, digits, _; not starting with a digit)"),
                    ));
                }
                if RESERVED_ENV.contains(&key.as_str()) {
                    return Err(err(
                        Some(k.span()),
                        format!(
                            "[{table}] cannot set {key}: cc-ci sets it itself ({}); remove the line",
                            RESERVED_ENV.join(", ")
                        ),
                    ));
                }
                // Written into the app's env file: refused here, naming this
                // file, if no env-file quoting keeps it as given.
                if let Err(why) = crate::recipe::env_file::quote(v.get_ref()) {
                    return Err(err(Some(v.span()), format!("[{table}] {key}: {why}")));
                }
                out.insert(key.clone(), v.get_ref().clone());
            }
            Ok(out)
        };
        self.env = env_map(&raw.env, "env")?;
        for (k, v) in &raw.secrets {
            let id = k.get_ref();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(err(
                    Some(k.span()),
                    format!(
                        "[secrets] key {id:?} is not a secret id (the recipe's compose `secrets:` key: a-z, 0-9, _)"
                    ),
                ));
            }
            if v.get_ref().is_empty() {
                return Err(err(
                    Some(v.span()),
                    format!("[secrets] {id} is empty; give the test value to insert"),
                ));
            }
            self.secrets.insert(id.clone(), v.get_ref().clone());
        }

        // Upgrade.
        self.upgrade_base = match (&raw.upgrade.base, &raw.upgrade.skip) {
            (Some(b), Some(s)) => {
                return Err(err(
                    Some(s.span()),
                    format!(
                        "upgrade.skip and upgrade.base (line {}) are both set: keep upgrade.base to upgrade from it, \
                         or upgrade.skip to declare the rung n/a",
                        line_of(text, b.span().start)
                    ),
                ))
            }
            (None, Some(s)) => {
                if s.get_ref().trim().is_empty() {
                    return Err(err(
                        Some(s.span()),
                        "upgrade.skip needs a reason: say why the upgrade cannot be tested".into(),
                    ));
                }
                if let Some(e) = &raw.upgrade.env {
                    return Err(err(
                        Some(e.span()),
                        "[upgrade.env] has no effect when upgrade.skip is set; remove one of them".into(),
                    ));
                }
                UpgradeBase::Skip(s.get_ref().trim().to_string())
            }
            (Some(b), None) if b.get_ref() == "previous" => UpgradeBase::Previous,
            (Some(b), None) => {
                let v = b.get_ref();
                if semver::Version::parse(v.trim_start_matches('v')).is_err() {
                    return Err(err(
                        Some(b.span()),
                        format!(
                            "upgrade.base must be \"previous\" or a release tag such as \"1.0.0+1.22.1\", not {v:?}"
                        ),
                    ));
                }
                UpgradeBase::Pinned(v.clone())
            }
            (None, None) => {
                defaulted.push("upgrade.base");
                UpgradeBase::Previous
            }
        };
        if let Some(e) = &raw.upgrade.env {
            self.upgrade_env = env_map(e.get_ref(), "upgrade.env")?;
        }

        // HTTP checks.
        let check = |c: &Spanned<RawCheck>, what: &str| -> Result<HttpCheck, SettingsError> {
            let r = c.get_ref();
            let path = match &r.path {
                None => "/".to_string(),
                Some(p) => {
                    let v = p.get_ref();
                    if !v.starts_with('/') || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        return Err(err(
                            Some(p.span()),
                            format!("{what}: path must start with / and hold no spaces, not {v:?}"),
                        ));
                    }
                    v.clone()
                }
            };
            let status = match &r.status {
                None => ExpectStatus::SuccessOrRedirect,
                Some(list) => {
                    if list.get_ref().is_empty() {
                        return Err(err(
                            Some(list.span()),
                            format!("{what}: status is empty; list the statuses that pass, e.g. [200], or leave it out for any 2xx or 3xx"),
                        ));
                    }
                    let mut out = Vec::new();
                    for s in list.get_ref() {
                        let v = *s.get_ref();
                        if !(100..=599).contains(&v) {
                            return Err(err(
                                Some(s.span()),
                                format!("{what}: status {v} is not an HTTP status; use 100-599"),
                            ));
                        }
                        out.push(v as u16);
                    }
                    ExpectStatus::AnyOf(out)
                }
            };
            let regex = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<Regex>, SettingsError> {
                match v {
                    None => Ok(None),
                    Some(p) => Regex::new(p.get_ref()).map(Some).map_err(|e| {
                        err(
                            Some(p.span()),
                            format!(
                                "{what}: {key} is not a valid regex ({}); escape special characters such as . ( [ with \\\\ in TOML",
                                e.to_string().lines().last().unwrap_or("").trim()
                            ),
                        )
                    }),
                }
            };
            Ok(HttpCheck {
                path,
                status,
                title: regex(&r.title, "title")?,
                content: regex(&r.content, "content")?,
            })
        };
        match &raw.serve.checks {
            None => defaulted.push("serve.checks"),
            Some(list) if list.get_ref().is_empty() => {
                return Err(err(
                    Some(list.span()),
                    "serve.checks is empty: give at least one check, or leave it out for GET / answering 2xx or 3xx"
                        .into(),
                ))
            }
            Some(list) => {
                self.serve_checks = list
                    .get_ref()
                    .iter()
                    .map(|c| check(c, "serve.checks"))
                    .collect::<Result<_, _>>()?;
            }
        }
        for (name, list) in &raw.checks {
            let Some(rung) = rung_in(name.get_ref(), HTTP_RUNGS) else {
                return Err(err(
                    Some(name.span()),
                    format!(
                        "checks.{}: no such rung with HTTP checks; use one of {} (backup and restore are rung restore)",
                        name.get_ref(),
                        names(HTTP_RUNGS)
                    ),
                ));
            };
            let what = format!("checks.{}", rung.word());
            let v = list.iter().map(|c| check(c, &what)).collect::<Result<Vec<_>, _>>()?;
            self.checks.insert(rung, v);
        }

        // Backup.
        match &raw.backup {
            None => defaulted.push("backup"),
            Some(b) => {
                let b = b.get_ref();
                if b.reason.get_ref().trim().is_empty() {
                    return Err(err(
                        Some(b.reason.span()),
                        "backup.reason is empty: say why detection from backupbot labels is overridden".into(),
                    ));
                }
                self.backup = Some(BackupOverride {
                    capable: *b.capable.get_ref(),
                    reason: b.reason.get_ref().trim().to_string(),
                });
            }
        }

        // Expected n/a.
        for (name, reason) in &raw.expect_na {
            let Some(rung) = rung_in(name.get_ref(), HTTP_RUNGS) else {
                return Err(err(
                    Some(name.span()),
                    format!(
                        "expect_na.{}: only {} can be declared not applicable (backup and restore are rung restore)",
                        name.get_ref(),
                        names(HTTP_RUNGS)
                    ),
                ));
            };
            if reason.get_ref().trim().is_empty() {
                return Err(err(
                    Some(reason.span()),
                    format!("expect_na.{} needs a reason: say why it does not apply", name.get_ref()),
                ));
            }
            if rung == Rung::Upgrade && raw.upgrade.base.is_some() {
                return Err(err(
                    Some(name.span()),
                    "expect_na.upgrade contradicts upgrade.base; remove one".into(),
                ));
            }
            if rung == Rung::Upgrade && raw.upgrade.skip.is_some() {
                return Err(err(
                    Some(name.span()),
                    "expect_na.upgrade repeats upgrade.skip; keep upgrade.skip and remove this line".into(),
                ));
            }
            if rung == Rung::Restore && self.backup.is_some() {
                return Err(err(
                    Some(name.span()),
                    "expect_na.restore and [backup] both decide the restore rung; keep [backup] (capable = false, reason) \
                     and remove this line"
                        .into(),
                ));
            }
            self.expect_na.insert(rung, reason.get_ref().trim().to_string());
        }

        // The bar.
        if let Some(m) = &raw.min_level {
            let v = *m.get_ref();
            if !(0..=8).contains(&v) {
                return Err(err(
                    Some(m.span()),
                    format!("min_level must be a level from 0 to 8, not {v}"),
                ));
            }
            self.min_level = Some(v as u8);
        }

        // Ephemeral volumes.
        for (name, reason) in &raw.volumes.ephemeral {
            let n = name.get_ref();
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(err(
                    Some(name.span()),
                    format!("volumes.ephemeral: {n:?} is not a volume name as the recipe's compose file names it (letters, digits, - _ .)"),
                ));
            }
            if reason.get_ref().trim().is_empty() {
                return Err(err(
                    Some(reason.span()),
                    format!("volumes.ephemeral.{n} needs a reason: say why losing its data is fine"),
                ));
            }
            self.ephemeral_volumes
                .insert(n.clone(), reason.get_ref().trim().to_string());
        }

        // The data witness.
        if let Some(d) = &raw.data {
            let d = d.get_ref();
            for (key, v) in [
                ("service", &d.service),
                ("write", &d.write),
                ("read", &d.read),
                ("destroy", &d.destroy),
            ] {
                if v.get_ref().trim().is_empty() {
                    return Err(err(
                        Some(v.span()),
                        format!("data.{key} is empty; [data] needs service, write, read and destroy (tests/recipes/README.md)"),
                    ));
                }
            }
            if !d.write.get_ref().contains("CCCI_DATA_WITNESS") {
                return Err(err(
                    Some(d.write.span()),
                    "data.write must store $CCCI_DATA_WITNESS (the token cc-ci reads back); it does not mention it"
                        .into(),
                ));
            }
            self.data = Some(DataWitness {
                service: d.service.get_ref().trim().to_string(),
                write: d.write.get_ref().clone(),
                read: d.read.get_ref().clone(),
                destroy: d.destroy.get_ref().clone(),
            });
        }

        // Retries of custom tests.
        if let Some(r) = &raw.tested.retries {
            let v = *r.get_ref();
            if !(0..=i64::from(MAX_TEST_RETRIES)).contains(&v) {
                return Err(err(
                    Some(r.span()),
                    format!("tested.retries must be 0 to {MAX_TEST_RETRIES}, not {v}"),
                ));
            }
            self.test_retries = v as u32;
        }

        let overlay = match &raw.overlay {
            None => None,
            Some(o) => {
                let r = &o.get_ref().reason;
                if r.get_ref().trim().is_empty() {
                    return Err(err(
                        Some(r.span()),
                        "overlay.reason is empty: say why the recipe cannot be tested without compose.ccci.yml".into(),
                    ));
                }
                Some((line_of(text, o.span().start), r.get_ref().trim().to_string()))
            }
        };
        self.apply_confinement(file, text, raw.allow, raw.limits, &mut defaulted)?;
        self.defaulted = defaulted;
        Ok(overlay)
    }

    /// Applies `[allow]` and `[limits]` of `ccci.toml` (`text`, read from `file`).
    fn apply_confinement(
        &mut self,
        file: &Path,
        text: &str,
        allow: RawAllow,
        limits: Option<Spanned<RawLimits>>,
        defaulted: &mut Vec<&'static str>,
    ) -> Result<(), SettingsError> {
        let err = |span: std::ops::Range<usize>, message: String| SettingsError {
            file: file.to_path_buf(),
            line: Some(line_of(text, span.start)),
            message,
        };
        let reason = |kind: Kind, subject: &str, r: &Spanned<String>| {
            if r.get_ref().trim().is_empty() {
                let what = if kind.is_flag() {
                    format!("allow.{}", kind.key())
                } else {
                    format!("allow.{} {subject:?}", kind.key())
                };
                return Err(err(
                    r.span(),
                    format!("{what} needs a reason: say why the recipe needs this beyond its test app"),
                ));
            }
            Ok(r.get_ref().trim().to_string())
        };
        if let Some(r) = &allow.privileged {
            let why = reason(Kind::Privileged, "", r)?;
            self.allow.allow(Kind::Privileged, "", &why);
        }
        for (kind, table) in [
            (Kind::BindMount, &allow.bind_mounts),
            (Kind::CapAdd, &allow.cap_add),
            (Kind::Device, &allow.devices),
            (Kind::HostMode, &allow.host_modes),
            (Kind::SecurityOpt, &allow.security_opt),
            (Kind::Port, &allow.ports),
            (Kind::Name, &allow.names),
            (Kind::File, &allow.files),
            (Kind::TraefikHost, &allow.traefik_hosts),
            (Kind::TraefikName, &allow.traefik_names),
        ] {
            for (subject, r) in table {
                let sub = subject.get_ref().trim();
                if sub.is_empty() {
                    return Err(err(
                        subject.span(),
                        format!("[allow.{}] has an empty key: name what is allowed", kind.key()),
                    ));
                }
                if kind == Kind::HostMode && !HOST_MODE_KEYS.contains(&sub) {
                    return Err(err(
                        subject.span(),
                        format!(
                            "[allow.host_modes] key {sub:?} is not one of {}",
                            HOST_MODE_KEYS.join(", ")
                        ),
                    ));
                }
                let why = reason(kind, sub, r)?;
                self.allow.allow(kind, sub, &why);
            }
        }
        let Some(l) = limits else {
            defaulted.push("limits");
            return Ok(());
        };
        let span = l.span();
        let l = l.into_inner();
        let Some(r) = l.reason.filter(|r| !r.get_ref().trim().is_empty()) else {
            return Err(err(
                span,
                "[limits] needs a reason: say why this recipe's services need other caps than 1 CPU and 1 GiB each"
                    .into(),
            ));
        };
        if let Some(c) = &l.cpus {
            let v = *c.get_ref();
            if !(v.is_finite() && v > 0.0 && v <= 1024.0) {
                return Err(err(
                    c.span(),
                    format!("limits.cpus must be a number of CPUs above 0 and at most 1024, not {v}"),
                ));
            }
            self.limits.nano_cpus = (v * limits::NANO as f64).round() as u64;
        }
        if let Some(m) = &l.memory {
            match limits::parse_memory(m.get_ref()) {
                Some(b) if b >= limits::MIN_MEMORY_BYTES => self.limits.memory_bytes = b,
                _ => {
                    return Err(err(
                        m.span(),
                        format!(
                            "limits.memory {:?} is not an amount of memory of at least 6 MiB in Docker's units, e.g. \"2g\" or \"512m\"",
                            m.get_ref()
                        ),
                    ))
                }
            }
        }
        self.limits_reason = Some(r.get_ref().trim().to_string());
        Ok(())
    }

    /// Why `rung` is declared not applicable, if it is: `[expect_na]`,
    /// `upgrade.skip` for upgrade, `backup.capable = false` for restore.
    pub fn declared_na(&self, rung: Rung) -> Option<String> {
        if let Some(r) = self.expect_na.get(&rung) {
            return Some(r.clone());
        }
        match (rung, &self.upgrade_base, &self.backup) {
            (Rung::Upgrade, UpgradeBase::Skip(r), _) => Some(format!("upgrade skipped by cc-ci settings: {r}")),
            (Rung::Restore, _, Some(b)) if !b.capable => {
                Some(format!("not backup-capable (cc-ci settings): {}", b.reason))
            }
            _ => None,
        }
    }

    /// Whether the recipe is backup-capable: the override if declared, else `detected`
    /// (from backupbot labels, [`crate::recipe::Recipe::backup_capable`]).
    pub fn backup_capable(&self, detected: bool) -> bool {
        self.backup.as_ref().map_or(detected, |b| b.capable)
    }

    /// With an overlay declared: copies it into the recipe `checkout` as
    /// `compose.ccci.yml` and appends it to the env's `COMPOSE_FILE`
    /// (`compose.yml` when unset), so it applies last. Returns whether it did.
    ///
    /// # Errors
    /// The copy failed.
    pub fn apply_overlay(&self, checkout: &Path, env: &mut EnvFile) -> std::io::Result<bool> {
        let Some(o) = &self.overlay else {
            return Ok(false);
        };
        std::fs::copy(&o.file, checkout.join(OVERLAY_FILE))?;
        let base = env
            .get("COMPOSE_FILE")
            .filter(|v| !v.is_empty())
            .unwrap_or("compose.yml");
        let value = format!("{base}:{OVERLAY_FILE}");
        env.set("COMPOSE_FILE", &value, None);
        Ok(true)
    }

    /// Decides on the recipe's own code in `<recipe_checkout>/tests/ccci`
    /// and remembers the decision for [`Settings::manifest`]: used only when
    /// the recipe is on the approved list, else ignored with the reason.
    ///
    /// # Errors
    /// For an approved recipe, the same checks as the settings folder's
    /// `custom/` and `hooks/` (a non-executable test, a misnamed hook, an
    /// unexpected file).
    pub fn repo_local(&mut self, recipe_checkout: &Path) -> Result<RepoLocal, SettingsError> {
        let dir = recipe_checkout.join(REPO_LOCAL_DIR);
        let present = dir.is_dir();
        let mut d = RepoLocal {
            dir: dir.clone(),
            present,
            used: false,
            reason: String::new(),
            custom: Vec::new(),
            hooks: BTreeMap::new(),
        };
        if !present {
            d.reason = format!("the recipe has no {REPO_LOCAL_DIR} folder");
        } else if !self.approved {
            d.reason = format!(
                "ignored: {} is not on the approved list {}, so the recipe's own code in {REPO_LOCAL_DIR} does not run \
                 (an operator who reviewed it adds the recipe there)",
                self.recipe,
                self.approved_file.display()
            );
        } else {
            for (name, path) in sorted_entries(&dir)? {
                if !(name == HOOKS_DIR || name == CUSTOM_DIR || name.starts_with("README")) {
                    return Err(file_err(
                        &path,
                        format!(
                            "unexpected file: cc-ci reads only hooks/ and custom/ in a recipe's {REPO_LOCAL_DIR} \
                             (README* and dot-files are ignored); {}",
                            suggestion(&name)
                        ),
                    ));
                }
            }
            d.custom = scan_custom(&dir.join(CUSTOM_DIR))?;
            d.hooks = scan_hooks(&dir.join(HOOKS_DIR))?;
            d.used = true;
            d.reason = format!(
                "{} is on the approved list {}: the recipe's own {REPO_LOCAL_DIR} runs",
                self.recipe,
                self.approved_file.display()
            );
        }
        self.repo_local_decision = Some(d.clone());
        Ok(d)
    }

    /// The customization in force, defaults included, for `results.json`
    /// (field `settings`), with secret-looking values masked by [`mask`].
    pub fn manifest(&self) -> Value {
        let rel = |p: &PathBuf| p.strip_prefix(&self.dir).unwrap_or(p).display().to_string();
        let checks: serde_json::Map<String, Value> = self
            .checks
            .iter()
            .map(|(r, l)| (r.word().to_string(), l.iter().map(HttpCheck::manifest).collect()))
            .collect();
        let (base, skip) = match &self.upgrade_base {
            UpgradeBase::Previous => (json!("previous"), Value::Null),
            UpgradeBase::Pinned(v) => (json!(v), Value::Null),
            UpgradeBase::Skip(r) => (Value::Null, json!(r)),
        };
        let mut v = json!({
            "recipe": self.recipe,
            "dir": self.dir.display().to_string(),
            "file": self.file.as_ref().map(|f| f.display().to_string()),
            "zero_config": self.is_zero_config(),
            "defaulted": self.defaulted,
            "timeouts": {
                "deploy_s": self.timeouts.deploy.as_secs_f64(),
                "http_s": self.timeouts.http.as_secs_f64(),
                "scripts_s": self.timeouts.scripts.as_secs_f64(),
            },
            "env": self.env,
            "secrets": self.secrets.keys().map(|k| (k.clone(), json!("***"))).collect::<serde_json::Map<_, _>>(),
            "upgrade": { "base": base, "skip": skip, "env": self.upgrade_env },
            "serve_checks": self.serve_checks.iter().map(HttpCheck::manifest).collect::<Vec<_>>(),
            "checks": checks,
            "backup": match &self.backup {
                None => json!({ "capable": "detected from backupbot labels" }),
                Some(b) => json!({ "capable": b.capable, "reason": b.reason }),
            },
            "expect_na": self.expect_na.iter().map(|(r, w)| (r.word().to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "install_steps": self.install_steps.as_ref().map(rel),
            "hooks": self.hooks.iter().map(|(r, p)| (r.word().to_string(), json!(rel(p)))).collect::<serde_json::Map<_, _>>(),
            "custom_tests": self.custom.iter().map(rel).collect::<Vec<_>>(),
            "overlay": self.overlay.as_ref().map(|o| json!({ "file": rel(&o.file), "reason": o.reason })),
            "allow": self.allow.manifest(),
            "limits": {
                "cpus": self.limits.nano_cpus as f64 / limits::NANO as f64,
                "memory_bytes": self.limits.memory_bytes,
                "memory": limits::format_bytes(self.limits.memory_bytes),
                "per": "service",
                "reason": self.limits_reason,
            },
            "approved": self.approved,
            "min_level": self.min_level,
            "volumes": { "ephemeral": self.ephemeral_volumes },
            "data": self.data.as_ref().map(|d| json!({ "service": d.service, "write": d.write, "read": d.read, "destroy": d.destroy })),
            "tested": { "retries": self.test_retries },
            "repo_local": match &self.repo_local_decision {
                Some(d) => d.manifest(),
                None => json!({ "used": false, "reason": "not decided: no recipe checkout was examined" }),
            },
        });
        mask(&mut v);
        v
    }

    /// Whether nothing was customized (no folder content at all).
    pub fn is_zero_config(&self) -> bool {
        self.file.is_none()
            && self.install_steps.is_none()
            && self.hooks.is_empty()
            && self.custom.is_empty()
            && self.overlay.is_none()
    }

    /// The customization in force as lines for the start of `ccci test`,
    /// secret-looking values masked (it is rendered from [`Settings::manifest`]).
    pub fn describe(&self) -> String {
        let m = self.manifest();
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<14} {v}\n"));
        let source = match &self.file {
            Some(f) => f.display().to_string(),
            None if self.is_zero_config() => format!("zero config (no {}/{SETTINGS_FILE})", self.dir.display()),
            None => format!("defaults (no {SETTINGS_FILE}) + executables in {}", self.dir.display()),
        };
        let head = format!("settings for {}: {source}\n", self.recipe);
        let d = |key: &str| {
            if self.defaulted.contains(&key) {
                " (default)"
            } else {
                ""
            }
        };
        let t = &self.timeouts;
        line(
            "timeouts",
            format!(
                "deploy {} s{}, http {} s{}, scripts {} s{}",
                t.deploy.as_secs_f64(),
                d("timeouts.deploy"),
                t.http.as_secs_f64(),
                d("timeouts.http"),
                t.scripts.as_secs_f64(),
                d("timeouts.scripts")
            ),
        );
        let env = |v: &Value| -> String {
            match v.as_object() {
                Some(o) if !o.is_empty() => o
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => "none".into(),
            }
        };
        line("env", env(&m["env"]));
        let up = match &self.upgrade_base {
            UpgradeBase::Previous => format!("from the previous release{}", d("upgrade.base")),
            UpgradeBase::Pinned(v) => format!("from {v} (pinned)"),
            UpgradeBase::Skip(r) => format!("skipped: {r}"),
        };
        line("upgrade", up);
        line("upgrade env", env(&m["upgrade"]["env"]));
        for (i, c) in self.serve_checks.iter().enumerate() {
            line(
                if i == 0 { "serve" } else { "" },
                format!("{}{}", c.describe(), d("serve.checks")),
            );
        }
        for (r, l) in &self.checks {
            for c in l {
                line(&format!("checks.{}", r.word()), c.describe());
            }
        }
        line(
            "backup",
            match &self.backup {
                None => "detected from backupbot labels (default)".into(),
                Some(b) => format!("capable = {}: {}", b.capable, b.reason),
            },
        );
        for (r, w) in &self.expect_na {
            line(&format!("n/a {}", r.word()), w.clone());
        }
        let s = |v: &Value| -> String {
            match v {
                Value::Null => "none".into(),
                Value::String(s) => s.clone(),
                Value::Array(a) if a.is_empty() => "none".into(),
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                Value::Object(o) if o.is_empty() => "none".into(),
                Value::Object(o) => o.values().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                other => other.to_string(),
            }
        };
        line("install steps", s(&m["install_steps"]));
        line("hooks", s(&m["hooks"]));
        line("custom tests", s(&m["custom_tests"]));
        line(
            "overlay",
            match &self.overlay {
                None => "none".into(),
                Some(o) => format!("{OVERLAY_FILE}: {}", o.reason),
            },
        );
        line(
            "bar",
            match self.min_level {
                Some(l) => format!("min_level {l}"),
                None => "the level of the newest release's last run on this host, else 2 (default)".into(),
            },
        );
        for (v, why) in &self.ephemeral_volumes {
            line("ephemeral", format!("volume {v}: {why}"));
        }
        if let Some(d) = &self.data {
            line(
                "data witness",
                format!("through service {}: write, read, destroy", d.service),
            );
        }
        if self.test_retries > 0 {
            line(
                "retries",
                format!("a failing custom test runs up to {} more time(s)", self.test_retries),
            );
        }
        line(
            "limits",
            format!(
                "{} per service{}",
                self.limits.describe(),
                self.limits_reason
                    .as_ref()
                    .map_or_else(|| " (default)".to_string(), |r| format!(": {r}"))
            ),
        );
        let allowed = self.allow.describe();
        if allowed.is_empty() {
            line("allow", "nothing beyond the test app (default)".into());
        }
        for (i, a) in allowed.into_iter().enumerate() {
            line(if i == 0 { "allow" } else { "" }, a);
        }
        let rl = &m["repo_local"];
        line(
            "repo-local",
            format!(
                "{}: {}",
                if rl["used"] == json!(true) { "used" } else { "not used" },
                rl["reason"].as_str().unwrap_or("")
            ),
        );
        head + &out
    }
}

/// Checks that the overlay parses as YAML with a mapping at the top.
fn check_overlay_yaml(path: &Path) -> Result<(), SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).map_err(|e| SettingsError {
        file: path.to_path_buf(),
        line: Some(e.marker().line()),
        message: format!("not valid YAML: {e}; fix the compose overlay"),
    })?;
    match docs.first() {
        Some(yaml_rust2::Yaml::Hash(_)) => Ok(()),
        _ => Err(file_err(
            path,
            "a compose overlay must be a YAML mapping (services:, volumes: ...); fix or remove it".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::mask::{is_secret_key, looks_secret, MASK};
    use super::*;

    #[test]
    fn masking_rules() {
        assert!(is_secret_key("DB_PASSWORD") && is_secret_key("api_Token") && is_secret_key("SSH_KEY"));
        assert!(!is_secret_key("DOMAIN") && !is_secret_key("SITE_TITLE"));
        assert!(looks_secret("Zq8vN3xR7tLm2KpW9sYc4HbJ6dFg1AeU5oIi0TnQ"));
        assert!(looks_secret("/api?token=Zq8vN3xR7tLm2KpW9sYc4HbJ6dFg1AeU"));
        for plain in [
            "x.ci.test",
            "1.0.0+1.22.1",
            "/usr/share/nginx/html",
            "Welcome to ccci/nginx",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
        ] {
            assert!(!looks_secret(plain), "{plain}");
        }
        let mut v = json!({"env": {"DB_PASSWORD": "hunter2", "DOMAIN": "x.ci.test", "T": "Zq8vN3xR7tLm2KpW9sYc4HbJ6dFg1AeU5oIi0TnQ"}, "auth": {"a": 1}});
        mask(&mut v);
        assert_eq!(v["env"]["DB_PASSWORD"], MASK);
        assert_eq!(v["env"]["T"], MASK);
        assert_eq!(v["env"]["DOMAIN"], "x.ci.test");
        assert_eq!(v["auth"]["a"], MASK);
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
