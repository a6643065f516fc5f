//! abra's `recipe lint` rules R001–R015, run natively on a recipe checkout.
//!
//! abra itself cannot be had on cc-ci's machines (`docs/abra.md`), so
//! this module reimplements its lint package (`coopcloud.tech/abra/pkg/lint`)
//! with the same refs, descriptions, severities and how-to-fix texts, and
//! prints the table abra prints; [`LintReport::table`] becomes the run
//! artifact `lint.txt`.
//!
//! Sources, per fact (with how sure each one is: `docs/abra.md`, "Lint
//! rules"):
//!
//! - <https://pkg.go.dev/coopcloud.tech/abra/pkg/lint>: the rule functions'
//!   names (`LintComposeVersion` … `LintValidTags`,
//!   `LintTraefikEnabledSkipCondition`), `var Critical = "critical"`, and
//!   the start of `LintRules`: R001 (warn, "compose config has expected
//!   version", "ensure 'version: \"3.8\"' in compose configs") and R002
//!   (warn, "healthcheck enabled fo…", cut there). The page shows no R016.
//! - The earlier Python cc-ci, which ran the real abra
//!   (<https://git.autonomic.zone/recipe-maintainers/cc-ci/src/commit/369f4f486b58b8cd253be17fe7ebcfca0ae7ac79/runner/harness/lint.py>
//!   and its `JOURNAL-lvl5.md`): lint reads every `compose*.yml` of the
//!   recipe, not only those `COMPOSE_FILE` selects; the table's columns are
//!   ref | rule | severity | satisfied | skipped | how-to-fix; an
//!   error-level failure prints `critical errors present …` and still exits
//!   0; a missing `.env.sample` makes abra stop with "unable to validate
//!   recipe: .env.sample…"; a lightweight tag fails R014.
//! - <https://docs.coopcloud.tech/recipes/>: the README metadata block
//!   between `<!-- metadata -->` and `<!-- endmetadata -->` (R007).
//! - <https://docs.cloud.autonomic.zone/maintainers/upgrade>: config
//!   versions such as `${TRAEFIK_YML_VERSION}` are exported by `abra.sh`
//!   (R012's intent).
//! - Everything else (the other descriptions and how-to-fix texts, the
//!   levels of R003–R015, what each function checks) is a recollection of
//!   abra's Go source, unverified, following the table in
//!   `docs/abra.md`, "Lint rules"; each such item says so where it is decided.
//!
//! R016 exists in current abra (the earlier cc-ci saw rows R001–R016) but
//! nothing about it could be found: it is left out.
//!
//! Where cc-ci differs from abra, on purpose:
//! - R006 and R013 need the network, which cc-ci's runs do not reach: they
//!   are always [`Outcome::Skipped`], never satisfied.
//! - A missing `.env.sample` is an R008 failure in the report instead of
//!   abra's fatal stop, so the verdict names the rule.
//! - R012 also requires every `${…_VERSION}` a compose config's `name:`
//!   uses to be exported by `abra.sh` (abra, as recalled, only checks that
//!   `abra.sh` exists when a service uses configs).
//! - R014 is skipped in a folder that is not the top of a git checkout
//!   (abra fails it); rows come in ref order (abra walks a Go map).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::recipe::abra_sh::{AbraSh, ABRA_SH};
use crate::recipe::compose::ComposeFile;
use crate::recipe::env_file::{EnvFile, EnvFileError};
use crate::recipe::interpolate::interpolate_lenient;

/// How much a failed rule matters: abra's `Level` (`"warn"` or `"error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Printed, does not fail the lint.
    Warn,
    /// A failure makes abra print `critical errors present` and refuse a
    /// non-chaos deploy (`lint.LintForErrors`).
    Error,
}

impl Severity {
    /// abra's spelling: `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipe meets the rule.
    Satisfied,
    /// The recipe does not meet the rule.
    Failed,
    /// The rule was not checked, and why.
    Skipped(String),
}

/// One of abra's lint rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// abra's `Ref`, e.g. `R001`.
    pub reference: &'static str,
    /// abra's `Level`.
    pub severity: Severity,
    /// abra's `Description` (the table's "rule" column).
    pub description: &'static str,
    /// abra's `HowToResolve` (the table's "resolve" column).
    pub how_to_fix: &'static str,
}

const fn rule(
    reference: &'static str,
    severity: Severity,
    description: &'static str,
    how_to_fix: &'static str,
) -> Rule {
    Rule {
        reference,
        severity,
        description,
        how_to_fix,
    }
}

// R001 and the start of R002 are verbatim from pkg.go.dev (see the module
// doc); the rest is a recollection of abra's `LintRules`, unverified
// (docs/abra.md, "Lint rules"). The typos ("servce", "config version are") are
// abra's as recalled.
const R001: Rule = rule(
    "R001",
    Severity::Warn,
    "compose config has expected version",
    "ensure 'version: \"3.8\"' in compose configs",
);
const R002: Rule = rule(
    "R002",
    Severity::Warn,
    "healthcheck enabled for all services",
    "wire up healthchecks",
);
const R003: Rule = rule(
    "R003",
    Severity::Warn,
    "all images use a tag",
    "use a tag for all images",
);
const R004: Rule = rule(
    "R004",
    Severity::Warn,
    "no unstable tags",
    "tag all images with stable tags",
);
const R005: Rule = rule(
    "R005",
    Severity::Warn,
    "tags use semver-like format",
    "use semver-like tags",
);
const R006: Rule = rule(
    "R006",
    Severity::Warn,
    "has published catalogue version",
    "publish a recipe version to the catalogue",
);
const R007: Rule = rule(
    "R007",
    Severity::Warn,
    "README.md metadata filled in",
    "fill out all the metadata",
);
const R008: Rule = rule(
    "R008",
    Severity::Error,
    ".env.sample provided",
    "create an example .env.sample",
);
const R009: Rule = rule(
    "R009",
    Severity::Error,
    "one service named 'app'",
    "name a servce 'app'",
);
const R010: Rule = rule(
    "R010",
    Severity::Error,
    "traefik routing enabled",
    "include \"traefik.enable=true\" deploy label",
);
const R011: Rule = rule(
    "R011",
    Severity::Error,
    "all services have images",
    "ensure \"image: ...\" set on all services",
);
const R012: Rule = rule(
    "R012",
    Severity::Error,
    "config version are vendored",
    "vendor config versions in an abra.sh",
);
const R013: Rule = rule(
    "R013",
    Severity::Warn,
    "git.coopcloud.tech repo exists",
    "upload your recipe to git.coopcloud.tech/coop-cloud/...",
);
const R014: Rule = rule(
    "R014",
    Severity::Error,
    "only annotated tags used for recipe version",
    "replace lightweight tag with annotated tag",
);
const R015: Rule = rule(
    "R015",
    Severity::Warn,
    "long secret names",
    "reduce length of secret names to 12 chars",
);

/// The rules, in ref order (R016 is unknown and left out; see the module doc).
pub const RULES: [Rule; 15] = [
    R001, R002, R003, R004, R005, R006, R007, R008, R009, R010, R011, R012, R013, R014, R015,
];

/// The longest secret name R015 accepts: "reduce length of secret names to
/// 12 chars" (recollection of abra's `LintSecretLengths`, docs/abra.md,
/// "Lint rules").
pub const MAX_SECRET_NAME_LENGTH: usize = 12;

/// Why R006 and R013 are never checked here.
const NETWORK_SKIP: &str =
    "needs the network (recipes.coopcloud.tech / git.coopcloud.tech), which cc-ci's runs do not reach";

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// What became of it.
    pub outcome: Outcome,
    /// Which files, services, images, secrets or tags failed (or a note).
    pub detail: Option<String>,
}

impl Finding {
    fn new(rule: &'static Rule, outcome: Outcome, detail: Option<String>) -> Finding {
        Finding { rule, outcome, detail }
    }

    /// Satisfied when `problems` is empty, else failed naming them.
    fn from_problems(rule: &'static Rule, problems: Vec<String>) -> Finding {
        if problems.is_empty() {
            Finding::new(rule, Outcome::Satisfied, None)
        } else {
            Finding::new(rule, Outcome::Failed, Some(problems.join("; ")))
        }
    }

    fn skipped(rule: &'static Rule, why: &str) -> Finding {
        Finding::new(rule, Outcome::Skipped(why.to_string()), None)
    }

    fn failed(&self) -> bool {
        self.outcome == Outcome::Failed
    }
}

/// The lint of one recipe checkout: one finding per rule, in ref order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    /// The recipe's name: `TYPE=` of `.env.sample`, else the folder name.
    pub recipe: String,
    /// One finding per rule of [`RULES`], in that order.
    pub findings: Vec<Finding>,
}

impl LintReport {
    /// Error-level rules that failed.
    pub fn errors(&self) -> Vec<&Finding> {
        self.failed_at(Severity::Error)
    }

    /// Warn-level rules that failed.
    pub fn warnings(&self) -> Vec<&Finding> {
        self.failed_at(Severity::Warn)
    }

    /// No error-level rule failed (abra's `LintForErrors` would let a
    /// non-chaos deploy through).
    pub fn passed(&self) -> bool {
        self.errors().is_empty()
    }

    /// The finding of the rule with ref `reference` (e.g. `"R014"`).
    pub fn finding(&self, reference: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.rule.reference == reference)
    }

    fn failed_at(&self, severity: Severity) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.rule.severity == severity && f.failed())
            .collect()
    }

    /// The table abra prints (columns ref | rule | severity | satisfied |
    /// skipped | resolve), as aligned plain text: `yes`/`no` where abra
    /// prints ✅/❌, `-` where it prints `-`. Then one line per finding that
    /// failed, was skipped or carries a detail, and, when an error-level
    /// rule failed, abra's closing warning `critical errors present in
    /// <recipe> config` (the words after "present" are a recollection,
    /// docs/abra.md, "Lint rules").
    pub fn table(&self) -> String {
        let header = ["ref", "rule", "severity", "satisfied", "skipped", "resolve"].map(String::from);
        let rows: Vec<[String; 6]> = self
            .findings
            .iter()
            .map(|f| {
                let (satisfied, skipped) = match f.outcome {
                    Outcome::Satisfied => ("yes", "-"),
                    Outcome::Failed => ("no", "-"),
                    Outcome::Skipped(_) => ("-", "yes"),
                };
                [
                    f.rule.reference.to_string(),
                    f.rule.description.to_string(),
                    f.rule.severity.to_string(),
                    satisfied.to_string(),
                    skipped.to_string(),
                    f.rule.how_to_fix.to_string(),
                ]
            })
            .collect();
        let mut widths = [0usize; 6];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 6]| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            format!("{}\n", cells.join(" | ").trim_end())
        };
        let mut out = format!("abra recipe lint {} (cc-ci's native rules)\n\n", self.recipe);
        out.push_str(&line(&header));
        let rule_line: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("{}\n", rule_line.join("-+-")));
        for row in &rows {
            out.push_str(&line(row));
        }
        let notes: Vec<String> = self
            .findings
            .iter()
            .filter_map(|f| {
                let r = f.rule.reference;
                match (&f.outcome, &f.detail) {
                    (Outcome::Skipped(why), _) => Some(format!("{r} skipped: {why}")),
                    (Outcome::Failed, Some(d)) => Some(format!("{r} failed: {d}")),
                    (Outcome::Failed, None) => Some(format!("{r} failed")),
                    (Outcome::Satisfied, Some(d)) => Some(format!("{r}: {d}")),
                    (Outcome::Satisfied, None) => None,
                }
            })
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
        }
        if !self.passed() {
            out.push_str(&format!("\ncritical errors present in {} config\n", self.recipe));
        }
        out
    }
}

/// Why a recipe cannot be linted at all (its findings would mean nothing).
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The path is not a folder.
    #[error("{path}: no such folder; give the path of a recipe checkout")]
    NoFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A file or the folder could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The folder has no `compose*.yml` at its top.
    #[error("{dir}: no compose*.yml in the recipe folder; a recipe needs at least compose.yml")]
    NoCompose {
        /// The recipe folder.
        dir: PathBuf,
    },
    /// A compose file does not parse as YAML or is not a mapping.
    #[error("{file}:{line}: {detail}; fix the compose file (abra cannot load the recipe either)")]
    Compose {
        /// The compose file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// `.env.sample` exists but has a malformed line.
    #[error(transparent)]
    Env(#[from] EnvFileError),
    /// git could not be run on the checkout, or failed on it.
    #[error("git in {dir}: {detail}")]
    Git {
        /// The recipe folder.
        dir: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Lints the recipe checkout at `recipe_dir` with rules R001–R015.
///
/// Reads every `compose*.yml` at the folder's top (abra globs
/// `compose**yml`, whatever `COMPOSE_FILE` selects), `.env.sample`,
/// `abra.sh`, `README.md` and the git tags (`git for-each-ref refs/tags`),
/// never the network and never running `abra.sh`.
///
/// # Errors
/// [`LintError`] when the folder is missing or unreadable, has no compose
/// file, a compose file does not parse (naming file and line),
/// `.env.sample` has a malformed line, or git fails on the checkout. A
/// missing `.env.sample` is not an error: R008 fails.
pub fn lint(recipe_dir: &Path) -> Result<LintReport, LintError> {
    let c = Checkout::read(recipe_dir)?;
    let findings = vec![
        r001(&c),
        r002(&c),
        r003(&c),
        r004(&c),
        r005(&c),
        Finding::skipped(&R006, NETWORK_SKIP),
        r007(&c),
        r008(&c),
        r009(&c),
        r010(&c),
        r011(&c),
        r012(&c),
        Finding::skipped(&R013, NETWORK_SKIP),
        r014(recipe_dir)?,
        r015(&c),
    ];
    Ok(LintReport {
        recipe: c.name,
        findings,
    })
}

// ---------------------------------------------------------------------------
// Reading the checkout

/// A service merged over every compose file (abra loads them all together).
#[derive(Debug, Default, Clone)]
struct Merged {
    /// Interpolated image; the last file that sets one wins.
    image: Option<String>,
    /// None: no compose file mentions one; Some(enabled): the last that does.
    healthcheck: Option<bool>,
    /// Interpolated deploy labels; later files win.
    labels: BTreeMap<String, String>,
    uses_configs: bool,
}

/// Everything lint reads from a checkout: the same models the deployers
/// read ([`ComposeFile`], [`EnvFile`], [`AbraSh`]), so lint judges what a
/// deploy would deploy.
#[derive(Debug)]
struct Checkout {
    name: String,
    /// Every `compose*yml` of the top folder, by name, with the name.
    compose: Vec<(String, ComposeFile)>,
    services: BTreeMap<String, Merged>,
    env_sample: Option<EnvFile>,
    /// `None` when there is no abra.sh.
    abra_sh: Option<AbraSh>,
    /// `README.md`'s text; `None` when missing.
    readme: Option<String>,
}

impl Checkout {
    fn read(dir: &Path) -> Result<Checkout, LintError> {
        if !dir.is_dir() {
            return Err(LintError::NoFolder {
                path: dir.to_path_buf(),
            });
        }
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LintError::Read { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let entry = entry.map_err(read_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Go's filepath.Glob("compose**yml"): top folder only.
            if name.starts_with("compose") && name.ends_with("yml") && entry.path().is_file() {
                files.push(name);
            }
        }
        if files.is_empty() {
            return Err(LintError::NoCompose { dir: dir.to_path_buf() });
        }
        files.sort();
        let mut compose = Vec::new();
        for f in files {
            let file = ComposeFile::read(&dir.join(&f), false).map_err(|e| LintError::Compose {
                file: e.file,
                line: e.line,
                detail: e.detail,
            })?;
            compose.push((f, file));
        }

        let sample_path = dir.join(".env.sample");
        let env_sample = if sample_path.is_file() {
            Some(EnvFile::read(&sample_path)?)
        } else {
            None
        };
        let abra_sh_path = dir.join(ABRA_SH);
        let abra_sh = if abra_sh_path.is_file() {
            Some(AbraSh::read(dir).map_err(|e| LintError::Read {
                path: e.file,
                source: e.source,
            })?)
        } else {
            None
        };
        let readme_path = dir.join("README.md");
        let readme = if readme_path.is_file() {
            Some(std::fs::read_to_string(&readme_path).map_err(read_err(&readme_path))?)
        } else {
            None
        };

        // abra interpolates the compose files with the sample env; abra.sh's
        // exports override it at deploy time (docs/abra.md, "Deploying",
        // step 6).
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        if let Some(env) = &env_sample {
            for e in &env.entries {
                vars.insert(e.key.clone(), e.value.clone());
            }
        }
        if let Some(sh) = &abra_sh {
            vars.extend(sh.exports.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut services: BTreeMap<String, Merged> = BTreeMap::new();
        for (_, file) in &compose {
            for s in &file.services {
                let m = services.entry(s.name.clone()).or_default();
                if let Some(image) = s.image.as_deref().filter(|i| !i.is_empty()) {
                    m.image = Some(interpolate_lenient(image, &vars));
                }
                if s.healthcheck_declared {
                    m.healthcheck = Some(s.healthcheck);
                }
                m.uses_configs |= !s.configs.is_empty();
                for (k, v) in &s.deploy_labels {
                    m.labels.insert(k.trim().to_string(), interpolate_lenient(v, &vars));
                }
            }
        }

        let name = super::recipe_name(env_sample.as_ref(), dir);
        Ok(Checkout {
            name,
            compose,
            services,
            env_sample,
            abra_sh,
            readme,
        })
    }
}

/// Names of `_VERSION` variables that `text` references (`$X_VERSION`,
/// `${X_VERSION}`, `${X_VERSION:-v1}` …).
fn version_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let after = after.strip_prefix('{').unwrap_or(after);
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        if name.ends_with("_VERSION") {
            out.insert(name.to_string());
        }
        rest = &after[end..];
    }
    out
}

// ---------------------------------------------------------------------------
// Image references (docker/distribution's `reference`, as far as R003–R005 need)

/// An image reference, split as `reference.ParseNormalizedNamed` would.
#[derive(Debug, PartialEq, Eq)]
struct ImageRef {
    tag: Option<String>,
    digest: bool,
}

fn parse_image(image: &str) -> Result<ImageRef, String> {
    if image.is_empty() {
        return Err("no image".into());
    }
    if image.chars().any(char::is_whitespace) {
        return Err(format!("{image:?} is not a valid reference"));
    }
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => {
            if !d.contains(':') {
                return Err(format!("{image:?}: invalid digest"));
            }
            (n, true)
        }
        None => (image, false),
    };
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match named[last_slash..].rfind(':') {
        Some(c) => (&named[..last_slash + c], Some(&named[last_slash + c + 1..])),
        None => (named, None),
    };
    if name.is_empty() {
        return Err(format!("{image:?}: no repository name"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with a dot or a port, or `localhost`, is a registry.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
        components.remove(0);
    }
    let path_ok = components.iter().all(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    });
    if !path_ok {
        return Err(format!(
            "{image:?}: repository name must be lowercase letters, digits and . _ -"
        ));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
        if !ok {
            return Err(format!("{image:?}: invalid tag"));
        }
    }
    Ok(ImageRef {
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Runs `check` on every service's image (merged config); a service whose
/// image does not parse fails the rule, as abra returns the parse error.
fn per_image(c: &Checkout, rule: &'static Rule, check: impl Fn(&ImageRef) -> Option<String>) -> Finding {
    let problems = c
        .services
        .iter()
        .filter_map(|(name, s)| {
            let image = s.image.as_deref().unwrap_or("");
            match parse_image(image) {
                Ok(r) => check(&r).map(|why| format!("service {name}: {image} {why}")),
                Err(e) => Some(format!("service {name}: {e}")),
            }
        })
        .collect();
    Finding::from_problems(rule, problems)
}

// ---------------------------------------------------------------------------
// The rules

/// R001: every compose file says `version: "3.8"`. abra's
/// `LintComposeVersion` compares the loaded config's version with "3.8"
/// (recollection: recent abra may return true either way; unverified).
fn r001(c: &Checkout) -> Finding {
    let problems = c
        .compose
        .iter()
        .filter(|(_, d)| d.version.as_deref() != Some("3.8"))
        .map(|(f, d)| match &d.version {
            Some(v) => format!("{f}: version {v:?}"),
            None => format!("{f}: no version"),
        })
        .collect();
    Finding::from_problems(&R001, problems)
}

/// R002: every service has a healthcheck enabled. abra checks
/// `HealthCheck != nil`, so `disable: true` would pass there; cc-ci takes
/// the rule at its word ("healthcheck enabled for all services"): a
/// disabled healthcheck (`disable: true`, or `test: ["NONE"]`, Docker's
/// spelling of the same) is none, and keeps the recipe from exemplary.
fn r002(c: &Checkout) -> Finding {
    let problems = c
        .services
        .iter()
        .filter_map(|(n, s)| match s.healthcheck {
            Some(true) => None,
            Some(false) => Some(format!(
                "service {n} has its healthcheck disabled (disable: true or test NONE)"
            )),
            None => Some(format!("service {n} has no healthcheck")),
        })
        .collect();
    Finding::from_problems(&R002, problems)
}

/// R003: every image has a tag or digest (abra: not `reference.IsNameOnly`).
fn r003(c: &Checkout) -> Finding {
    per_image(c, &R003, |r| {
        (r.tag.is_none() && !r.digest).then(|| "has no tag".into())
    })
}

/// R004: every image is tagged, and not `latest` (recollection of
/// `LintNoUnstableTags`: a reference that is not `NamedTagged` fails too).
fn r004(c: &Checkout) -> Finding {
    per_image(c, &R004, |r| match r.tag.as_deref() {
        None => Some("has no tag".into()),
        Some("latest") => Some("uses the unstable tag latest".into()),
        Some(_) => None,
    })
}

/// R005: every tag is semver-like, which abra takes to mean it contains a
/// `.` (recollection of `LintSemverLikeTags`).
fn r005(c: &Checkout) -> Finding {
    per_image(c, &R005, |r| match r.tag.as_deref() {
        None => Some("has no tag".into()),
        Some(t) if !t.contains('.') => Some("has a tag without a dot".into()),
        Some(_) => None,
    })
}

/// R007: README.md's metadata block is filled in. As recalled from abra's
/// `GetRecipeFeaturesAndCategory` + `LintMetadataFilledIn`: the text
/// between `<!-- metadata -->` and `<!-- endmetadata -->`; on each line
/// holding `**Key**`, the value is the line without `* **Key**:`; Category,
/// Backups, Email, Healthcheck and SSO must be non-empty and the Image row
/// must have three comma-separated parts with an image name first. Status
/// and Tests are not checked, and a `?` counts as filled in.
fn r007(c: &Checkout) -> Finding {
    let Some(readme) = &c.readme else {
        return Finding::from_problems(&R007, vec!["README.md is missing".into()]);
    };
    let block = readme
        .find("<!-- metadata -->")
        .map(|i| &readme[i + "<!-- metadata -->".len()..])
        .and_then(|rest| rest.find("<!-- endmetadata -->").map(|j| &rest[..j]));
    let Some(block) = block else {
        return Finding::from_problems(
            &R007,
            vec!["README.md has no <!-- metadata --> ... <!-- endmetadata --> block".into()],
        );
    };
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for line in block.lines() {
        for key in ["Category", "Backups", "Email", "Healthcheck", "SSO", "Image"] {
            let marker = format!("**{key}**");
            if line.contains(&marker) {
                let prefix = format!("* {marker}:");
                values.insert(key, line.strip_prefix(&prefix).unwrap_or(line).trim().to_string());
            }
        }
    }
    let mut problems = Vec::new();
    for key in ["Category", "Backups", "Email", "Healthcheck", "SSO"] {
        if values.get(key).is_none_or(String::is_empty) {
            problems.push(format!("{key} is not filled in"));
        }
    }
    if metadata_image(values.get("Image").map_or("", String::as_str)).is_none() {
        problems.push("Image is not filled in as [`image`](url), rating, source".into());
    }
    Finding::from_problems(&R007, problems)
}

/// The image name of a metadata Image row ``[`nginx`](url), 4, upstream``,
/// or `None` when the row has fewer than three comma-separated parts or no name.
fn metadata_image(row: &str) -> Option<String> {
    let parts: Vec<&str> = row.split(',').collect();
    if parts.len() < 3 {
        return None;
    }
    let first = parts[0].trim();
    let name = first.split("](").next().unwrap_or(first);
    let name = name.trim_matches(|c| c == '[' || c == ']' || c == '`').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// R008: `.env.sample` exists. abra stops before its table instead
/// ("unable to validate recipe: .env.sample…", observed by the earlier
/// cc-ci); cc-ci reports the rule as failed.
fn r008(c: &Checkout) -> Finding {
    let problems = match c.env_sample {
        Some(_) => vec![],
        None => vec![".env.sample is missing (abra stops with \"unable to validate recipe\")".into()],
    };
    Finding::from_problems(&R008, problems)
}

/// R009: some service is named `app`.
fn r009(c: &Checkout) -> Finding {
    let problems = if c.services.contains_key("app") {
        vec![]
    } else {
        let names: Vec<&str> = c.services.keys().map(String::as_str).collect();
        vec![format!("no service named app (services: {})", names.join(", "))]
    };
    Finding::from_problems(&R009, problems)
}

/// R010: some service has the deploy label `traefik.enable=true`; skipped
/// when `.env.sample` has no `DOMAIN` (abra's
/// `LintTraefikEnabledSkipCondition`: no domain, no routing).
fn r010(c: &Checkout) -> Finding {
    let Some(env) = &c.env_sample else {
        return Finding::skipped(
            &R010,
            ".env.sample is missing (R008), so whether DOMAIN is set is unknown",
        );
    };
    if env.get("DOMAIN").is_none() {
        return Finding::skipped(&R010, ".env.sample has no DOMAIN: the recipe needs no routing");
    }
    let enabled = c
        .services
        .values()
        .any(|s| s.labels.get("traefik.enable").is_some_and(|v| v.trim() == "true"));
    let problems = if enabled {
        vec![]
    } else {
        vec!["no service has the deploy label traefik.enable=true".into()]
    };
    Finding::from_problems(&R010, problems)
}

/// R011: every service (merged over all compose files) has an image.
fn r011(c: &Checkout) -> Finding {
    let problems = c
        .services
        .iter()
        .filter(|(_, s)| s.image.as_deref().is_none_or(str::is_empty))
        .map(|(n, _)| format!("service {n} has no image"))
        .collect();
    Finding::from_problems(&R011, problems)
}

/// R012: config versions are vendored in `abra.sh`. abra (recollection):
/// `abra.sh` must exist when a service uses configs. cc-ci also requires
/// each `${…_VERSION}` that a config's `name:` uses to be exported there.
fn r012(c: &Checkout) -> Finding {
    let mut problems = Vec::new();
    if c.abra_sh.is_none() && c.services.values().any(|s| s.uses_configs) {
        problems.push("services use configs but abra.sh is missing".to_string());
    }
    let empty = BTreeMap::new();
    let exports = c.abra_sh.as_ref().map_or(&empty, |sh| &sh.exports);
    for (f, doc) in &c.compose {
        for (id, top) in &doc.configs {
            for var in version_vars(top.name.as_deref().unwrap_or("")) {
                if !exports.contains_key(&var) {
                    problems.push(format!(
                        "{f}: config {id} is named with ${{{var}}}, which abra.sh does not export"
                    ));
                }
            }
        }
    }
    Finding::from_problems(&R012, problems)
}

/// R014: every git tag is annotated (abra's `LintValidTags` fails on any
/// lightweight tag, release-named or not). Skipped when the folder is not
/// the top of a git checkout (a plain release tree, or a folder inside
/// some other repository whose tags are not the recipe's).
fn r014(dir: &Path) -> Result<Finding, LintError> {
    let git_err = |detail: String| LintError::Git {
        dir: dir.to_path_buf(),
        detail,
    };
    let run = |args: &[&str]| crate::recipe::git::run(dir, args).map_err(|e| git_err(e.detail()));
    let not_a_checkout = || {
        Ok(Finding::skipped(
            &R014,
            "not a git checkout (no repository at the recipe folder's top), so there are no tags to check",
        ))
    };
    // With a `.git` of its own the folder is a checkout: git failing on it
    // (not installed, "dubious ownership" …) must not pass for "no tags".
    let own_git = dir.join(".git").exists();
    let top = match run(&["rev-parse", "--show-toplevel"]) {
        Ok(top) => top,
        Err(_) if !own_git => return not_a_checkout(),
        Err(e) => return Err(e),
    };
    let top_dir = PathBuf::from(top.trim());
    let same = match (top_dir.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return not_a_checkout();
    }
    let out = run(&["for-each-ref", "refs/tags", "--format=%(refname:short)%09%(objecttype)"])?;
    let lightweight: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, kind)| *kind != "tag")
        .map(|(name, _)| name.to_string())
        .collect();
    let problems = if lightweight.is_empty() {
        vec![]
    } else {
        vec![format!("lightweight tags: {}", lightweight.join(", "))]
    };
    Ok(Finding::from_problems(&R014, problems))
}

/// R015: every secret name (the key under a compose file's top-level
/// `secrets:`, not its `name:`) is at most [`MAX_SECRET_NAME_LENGTH`]
/// characters (recollection of `LintSecretLengths`: `len(name) > 12` fails).
fn r015(c: &Checkout) -> Finding {
    let mut long: BTreeSet<&str> = BTreeSet::new();
    for (_, doc) in &c.compose {
        long.extend(
            doc.secrets
                .keys()
                .filter(|s| s.chars().count() > MAX_SECRET_NAME_LENGTH)
                .map(String::as_str),
        );
    }
    let problems = long
        .into_iter()
        .map(|s| format!("secret {s} is {} characters long", s.chars().count()))
        .collect();
    Finding::from_problems(&R015, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const COMPOSE: &str = r#"---
version: "3.8"
services:
  app:
    image: nginx:1.25.3
    healthcheck:
      test: ["CMD", "true"]
    configs:
      - source: nginx_conf
        target: /etc/nginx/nginx.conf
    secrets: [db_password]
    deploy:
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.${STACK_NAME}.rule=Host(`${DOMAIN}`)"
configs:
  nginx_conf:
    name: ${STACK_NAME}_nginx_conf_${NGINX_CONF_VERSION}
    file: nginx.conf
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
"#;
    const ENV: &str = "TYPE=demo\nDOMAIN=demo.example.com\nSECRET_DB_PASSWORD_VERSION=v1 # length=32\n";
    const ABRA_SH: &str = "export NGINX_CONF_VERSION=v1\n\nfunction migrate() {\n  echo hi\n}\n";
    const README: &str = "# demo\n\n<!-- metadata -->\n* **Category**: Apps\n* **Status**: 2, beta\n\
* **Image**: [`nginx`](https://hub.docker.com/_/nginx), 4, upstream\n* **Healthcheck**: Yes\n\
* **Backups**: No\n* **Email**: N/A\n* **Tests**: No\n* **SSO**: N/A\n<!-- endmetadata -->\n";

    /// A recipe in a temporary folder: the good baseline with `files`
    /// written over it (`None` removes the file).
    fn recipe(files: &[(&str, Option<&str>)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let mut all: BTreeMap<&str, Option<&str>> = [
            ("compose.yml", Some(COMPOSE)),
            (".env.sample", Some(ENV)),
            ("abra.sh", Some(ABRA_SH)),
            ("README.md", Some(README)),
            ("nginx.conf", Some("events {}\n")),
        ]
        .into_iter()
        .collect();
        all.extend(files.iter().copied());
        for (f, text) in all {
            if let Some(t) = text {
                let p = d.path().join(f);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, t).unwrap();
            }
        }
        d
    }

    fn lint_with(files: &[(&str, Option<&str>)]) -> LintReport {
        lint(recipe(files).path()).unwrap()
    }

    fn outcome(report: &LintReport, reference: &str) -> Outcome {
        report.finding(reference).unwrap().outcome.clone()
    }

    fn detail(report: &LintReport, reference: &str) -> String {
        report.finding(reference).unwrap().detail.clone().unwrap_or_default()
    }

    fn compose_with_app(app: &str) -> String {
        format!("version: \"3.8\"\nservices:\n  app:\n{app}")
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn git_repo(d: &Path) {
        git(d, &["init", "-q"]);
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", "init"]);
    }

    #[test]
    fn rules_are_r001_to_r015_in_order_with_abras_levels() {
        let refs: Vec<&str> = RULES.iter().map(|r| r.reference).collect();
        let want: Vec<String> = (1..=15).map(|i| format!("R{i:03}")).collect();
        assert_eq!(refs, want);
        let errors: Vec<&str> = RULES
            .iter()
            .filter(|r| r.severity == Severity::Error)
            .map(|r| r.reference)
            .collect();
        assert_eq!(errors, ["R008", "R009", "R010", "R011", "R012", "R014"]);
        assert_eq!(R001.how_to_fix, "ensure 'version: \"3.8\"' in compose configs");
    }

    #[test]
    fn good_recipe_satisfies_every_offline_rule() {
        let r = lint_with(&[]);
        assert_eq!(r.recipe, "demo");
        assert_eq!(r.findings.len(), 15);
        for f in &r.findings {
            match f.rule.reference {
                "R006" | "R013" | "R014" => assert!(matches!(f.outcome, Outcome::Skipped(_)), "{f:?}"),
                _ => assert_eq!(f.outcome, Outcome::Satisfied, "{f:?}"),
            }
        }
        assert!(r.passed());
        assert!(r.errors().is_empty() && r.warnings().is_empty());
        assert!(!r.table().contains("critical errors present"));
    }

    #[test]
    fn network_rules_are_always_skipped() {
        for files in [vec![], vec![("compose.yml", Some("services:\n  web:\n    image: x\n"))]] {
            let r = lint_with(&files);
            for reference in ["R006", "R013"] {
                let Outcome::Skipped(why) = outcome(&r, reference) else {
                    panic!("{reference} not skipped");
                };
                assert!(why.contains("needs the network"), "{why}");
            }
        }
    }

    #[test]
    fn r001_wants_version_3_8_in_every_compose_file() {
        let r = lint_with(&[("compose.smtp.yml", Some("services:\n  app:\n    environment: [A=1]\n"))]);
        assert_eq!(outcome(&r, "R001"), Outcome::Failed);
        assert!(detail(&r, "R001").contains("compose.smtp.yml: no version"));
        let r = lint_with(&[("compose.smtp.yml", Some("version: 3.8\nservices: {}\n"))]);
        assert_eq!(outcome(&r, "R001"), Outcome::Satisfied);
        assert!(r.passed(), "warnings alone pass");
    }

    #[test]
    fn r002_wants_a_healthcheck_on_every_service() {
        let compose = COMPOSE.replace("    healthcheck:\n      test: [\"CMD\", \"true\"]\n", "");
        let r = lint_with(&[("compose.yml", Some(&compose))]);
        assert_eq!(outcome(&r, "R002"), Outcome::Failed);
        assert_eq!(detail(&r, "R002"), "service app has no healthcheck");
        // An overlay may add it: lint merges every compose file.
        let overlay = "version: \"3.8\"\nservices:\n  app:\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n";
        let r = lint_with(&[("compose.yml", Some(&compose)), ("compose.hc.yml", Some(overlay))]);
        assert_eq!(outcome(&r, "R002"), Outcome::Satisfied);
        // A disabled healthcheck is none, also when an overlay disables the
        // one compose.yml declares (the defect: `disable: true` counted).
        for off in [
            "    healthcheck:\n      disable: true\n",
            "    healthcheck:\n      test: [\"NONE\"]\n",
        ] {
            let overlay = format!("version: \"3.8\"\nservices:\n  app:\n{off}");
            // Lint merges the files in glob order: compose.zz.yml after compose.yml.
            let r = lint_with(&[("compose.yml", Some(COMPOSE)), ("compose.zz.yml", Some(&overlay))]);
            assert_eq!(outcome(&r, "R002"), Outcome::Failed, "{off}");
            assert_eq!(
                detail(&r, "R002"),
                "service app has its healthcheck disabled (disable: true or test NONE)"
            );
        }
    }

    #[test]
    fn r003_to_r005_judge_image_tags() {
        let with_image = |image: &str| COMPOSE.replace("nginx:1.25.3", image);
        let r = lint_with(&[("compose.yml", Some(&with_image("nginx")))]);
        assert_eq!(outcome(&r, "R003"), Outcome::Failed);
        assert_eq!(detail(&r, "R003"), "service app: nginx has no tag");
        assert_eq!(outcome(&r, "R004"), Outcome::Failed);
        assert_eq!(outcome(&r, "R005"), Outcome::Failed);

        let r = lint_with(&[("compose.yml", Some(&with_image("nginx:latest")))]);
        assert_eq!(outcome(&r, "R003"), Outcome::Satisfied);
        assert_eq!(outcome(&r, "R004"), Outcome::Failed);
        assert!(detail(&r, "R004").contains("unstable tag latest"));

        let r = lint_with(&[("compose.yml", Some(&with_image("postgres:15")))]);
        assert_eq!(outcome(&r, "R004"), Outcome::Satisfied);
        assert_eq!(outcome(&r, "R005"), Outcome::Failed);
        assert!(detail(&r, "R005").contains("postgres:15 has a tag without a dot"));

        let r = lint_with(&[("compose.yml", Some(&with_image("registry.example.com:5000/a/b:1.2.3")))]);
        for reference in ["R003", "R004", "R005"] {
            assert_eq!(outcome(&r, reference), Outcome::Satisfied, "{reference}");
        }

        // Digest only: tagged for R003, not for R004/R005 (not NamedTagged).
        let r = lint_with(&[("compose.yml", Some(&with_image("nginx@sha256:abcd")))]);
        assert_eq!(outcome(&r, "R003"), Outcome::Satisfied);
        assert_eq!(outcome(&r, "R004"), Outcome::Failed);

        // Interpolated from .env.sample, with a default.
        let r = lint_with(&[
            ("compose.yml", Some(&with_image("nginx:${NGINX_TAG:-1.0.0}"))),
            (".env.sample", Some(&format!("{ENV}NGINX_TAG=latest\n"))),
        ]);
        assert_eq!(outcome(&r, "R004"), Outcome::Failed);
        assert_eq!(outcome(&r, "R005"), Outcome::Failed);
        assert!(r.passed());
    }

    #[test]
    fn r007_wants_the_metadata_block_filled_in() {
        let r = lint_with(&[("README.md", Some("# demo\n\n* **Category**: Apps\n"))]);
        assert_eq!(outcome(&r, "R007"), Outcome::Failed);
        assert!(detail(&r, "R007").contains("no <!-- metadata -->"));

        let r = lint_with(&[("README.md", Some(&README.replace("* **Email**: N/A", "* **Email**:")))]);
        assert_eq!(outcome(&r, "R007"), Outcome::Failed);
        assert_eq!(detail(&r, "R007"), "Email is not filled in");

        let r = lint_with(&[("README.md", Some(&README.replace("* **SSO**: N/A\n", "")))]);
        assert_eq!(detail(&r, "R007"), "SSO is not filled in");

        let row = "* **Image**: `nginx`, built locally";
        let readme = README.replace(
            "* **Image**: [`nginx`](https://hub.docker.com/_/nginx), 4, upstream",
            row,
        );
        let r = lint_with(&[("README.md", Some(&readme))]);
        assert!(detail(&r, "R007").starts_with("Image is not filled in"), "{r:?}");

        let r = lint_with(&[("README.md", None)]);
        assert_eq!(detail(&r, "R007"), "README.md is missing");

        // Status and Tests are not checked; `?` counts as filled in (as abra).
        let readme = README
            .replace("* **Tests**: No\n", "")
            .replace("* **Backups**: No", "* **Backups**: ?");
        let r = lint_with(&[("README.md", Some(&readme))]);
        assert_eq!(outcome(&r, "R007"), Outcome::Satisfied);
        assert!(r.passed());
    }

    #[test]
    fn r008_missing_env_sample_fails_with_the_critical_line() {
        let d = recipe(&[(".env.sample", None)]);
        let r = lint(d.path()).unwrap();
        assert_eq!(outcome(&r, "R008"), Outcome::Failed);
        assert!(matches!(outcome(&r, "R010"), Outcome::Skipped(_)));
        assert!(!r.passed());
        assert_eq!(r.errors().len(), 1);
        let folder = d.path().file_name().unwrap().to_string_lossy();
        assert_eq!(r.recipe, folder, "the folder name stands in for TYPE");
        let table = r.table();
        let last = table.lines().last().unwrap();
        assert!(last.starts_with("critical errors present"), "{table}");
    }

    #[test]
    fn r009_wants_a_service_named_app() {
        let r = lint_with(&[("compose.yml", Some(&COMPOSE.replace("  app:\n", "  web:\n")))]);
        assert_eq!(outcome(&r, "R009"), Outcome::Failed);
        assert_eq!(detail(&r, "R009"), "no service named app (services: web)");
        assert!(!r.passed());
    }

    #[test]
    fn r010_wants_traefik_enabled_unless_there_is_no_domain() {
        let no_label = COMPOSE.replace("        - \"traefik.enable=true\"\n", "");
        let r = lint_with(&[("compose.yml", Some(&no_label))]);
        assert_eq!(outcome(&r, "R010"), Outcome::Failed);
        assert!(!r.passed());
        assert!(r.table().trim_end().ends_with("critical errors present in demo config"));

        let r = lint_with(&[("compose.yml", Some(&no_label)), (".env.sample", Some("TYPE=demo\n"))]);
        let Outcome::Skipped(why) = outcome(&r, "R010") else {
            panic!()
        };
        assert!(why.contains("no DOMAIN"), "{why}");
        assert!(r.passed());

        // Mapping form, boolean value.
        let compose = compose_with_app(
            "    image: a:1.0\n    healthcheck: {test: [\"CMD\", \"true\"]}\n    deploy:\n      \
labels:\n        traefik.enable: true\n",
        );
        let r = lint_with(&[("compose.yml", Some(&compose))]);
        assert_eq!(outcome(&r, "R010"), Outcome::Satisfied);
    }

    #[test]
    fn r011_wants_an_image_on_every_merged_service() {
        let overlay = "version: \"3.8\"\nservices:\n  app:\n    environment: [A=1]\n  worker:\n    \
healthcheck: {test: [\"CMD\", \"true\"]}\n";
        let r = lint_with(&[("compose.worker.yml", Some(overlay))]);
        assert_eq!(outcome(&r, "R011"), Outcome::Failed);
        assert_eq!(detail(&r, "R011"), "service worker has no image");
        assert!(!r.passed());
        // An overlay of `app` without an image is fine: compose.yml has it.
        let overlay = "version: \"3.8\"\nservices:\n  app:\n    environment: [A=1]\n";
        let r = lint_with(&[("compose.smtp.yml", Some(overlay))]);
        assert_eq!(outcome(&r, "R011"), Outcome::Satisfied);
    }

    #[test]
    fn r012_wants_config_versions_exported_by_abra_sh() {
        let r = lint_with(&[(
            "abra.sh",
            Some("export OTHER_VERSION=v2\n# export NGINX_CONF_VERSION=v1\n"),
        )]);
        assert_eq!(
            outcome(&r, "R012"),
            Outcome::Failed,
            "a commented-out export is not read"
        );
        assert_eq!(
            detail(&r, "R012"),
            "compose.yml: config nginx_conf is named with ${NGINX_CONF_VERSION}, which abra.sh does not export"
        );
        assert!(!r.passed());

        let r = lint_with(&[
            ("abra.sh", None),
            (".env.sample", Some(&format!("{ENV}NGINX_CONF_VERSION=v1\n"))),
        ]);
        assert_eq!(outcome(&r, "R012"), Outcome::Failed, "the version belongs in abra.sh");
        assert!(detail(&r, "R012").starts_with("services use configs but abra.sh is missing; "));

        let r = lint_with(&[("abra.sh", Some("export NGINX_CONF_VERSION=\"v3\"\n"))]);
        assert_eq!(outcome(&r, "R012"), Outcome::Satisfied);
        // Lint reads abra.sh as the deploy merges it (split on `export `):
        // an indented export inside a function counts for both.
        let r = lint_with(&[("abra.sh", Some("setup() {\n  export NGINX_CONF_VERSION=v1\n}\n"))]);
        assert_eq!(outcome(&r, "R012"), Outcome::Satisfied);

        // No configs at all: no abra.sh needed.
        let compose = compose_with_app(
            "    image: a:1.0\n    healthcheck: {test: [\"CMD\", \"true\"]}\n    deploy: {labels: [traefik.enable=true]}\n",
        );
        let r = lint_with(&[("compose.yml", Some(&compose)), ("abra.sh", None)]);
        assert_eq!(outcome(&r, "R012"), Outcome::Satisfied);
    }

    #[test]
    fn r014_fails_a_lightweight_tag_and_skips_a_plain_folder() {
        let d = recipe(&[]);
        git_repo(d.path());
        let r = lint(d.path()).unwrap();
        assert_eq!(outcome(&r, "R014"), Outcome::Satisfied, "no tags at all");
        git(d.path(), &["tag", "-a", "1.0.0+1.25.3", "-m", "release"]);
        let r = lint(d.path()).unwrap();
        assert_eq!(outcome(&r, "R014"), Outcome::Satisfied);
        assert!(r.passed());

        git(d.path(), &["tag", "1.0.1+1.25.3"]);
        git(d.path(), &["tag", "scratch"]);
        let r = lint(d.path()).unwrap();
        assert_eq!(outcome(&r, "R014"), Outcome::Failed);
        assert_eq!(detail(&r, "R014"), "lightweight tags: 1.0.1+1.25.3, scratch");
        assert!(!r.passed());
        assert!(r
            .table()
            .contains("R014 failed: lightweight tags: 1.0.1+1.25.3, scratch"));

        // A recipe folder inside another repository: that repository's tags
        // are not the recipe's.
        let outer = tempfile::tempdir().unwrap();
        let inner = outer.path().join("recipe");
        std::fs::create_dir(&inner).unwrap();
        for f in ["compose.yml", ".env.sample", "abra.sh", "README.md"] {
            std::fs::copy(d.path().join(f), inner.join(f)).unwrap();
        }
        git_repo(outer.path());
        git(outer.path(), &["tag", "light"]);
        let r = lint(&inner).unwrap();
        let Outcome::Skipped(why) = outcome(&r, "R014") else {
            panic!()
        };
        assert!(why.contains("not a git checkout"), "{why}");
    }

    #[test]
    fn r015_wants_secret_names_of_at_most_12_characters() {
        let twelve = COMPOSE.replace("db_password", "db_password1");
        let r = lint_with(&[("compose.yml", Some(&twelve))]);
        assert_eq!(outcome(&r, "R015"), Outcome::Satisfied);
        let long = COMPOSE.replace("db_password", "db_password12");
        let r = lint_with(&[("compose.yml", Some(&long))]);
        assert_eq!(outcome(&r, "R015"), Outcome::Failed);
        assert_eq!(detail(&r, "R015"), "secret db_password12 is 13 characters long");
        assert!(r.passed(), "R015 is a warning");
    }

    #[test]
    fn every_top_level_compose_file_is_read_whatever_compose_file_selects() {
        let overlay = "version: \"3.8\"\nservices:\n  extra:\n    image: busybox\n";
        let r = lint_with(&[
            (".env.sample", Some(&format!("{ENV}COMPOSE_FILE=compose.yml\n"))),
            ("compose.extra.yml", Some(overlay)),
            ("sub/compose.yml", Some("services:\n  nested:\n    image: x\n")),
            ("compose.yaml.bak", Some("not: [yaml\n")),
        ]);
        assert!(detail(&r, "R003").contains("service extra: busybox has no tag"));
        assert!(!detail(&r, "R002").contains("nested"));
        assert_eq!(detail(&r, "R002"), "service extra has no healthcheck");
    }

    #[test]
    fn unlintable_recipes_are_errors_naming_file_and_line() {
        let d = recipe(&[("compose.yml", Some("services:\n  app:\n    image: [\n"))]);
        let e = lint(d.path()).unwrap_err().to_string();
        assert!(e.contains("compose.yml:") && e.contains("fix the compose file"), "{e}");
        let d = recipe(&[("compose.yml", Some("- a\n- b\n"))]);
        let e = lint(d.path()).unwrap_err().to_string();
        assert!(e.contains("compose.yml:1: the file is not a YAML mapping"), "{e}");
        let d = recipe(&[("compose.yml", None)]);
        assert!(matches!(lint(d.path()), Err(LintError::NoCompose { .. })));
        let d = recipe(&[(".env.sample", Some("TYPE=demo\nnot an assignment\n"))]);
        let e = lint(d.path()).unwrap_err().to_string();
        assert!(e.contains(".env.sample:2:"), "{e}");
        assert!(matches!(lint(&d.path().join("nope")), Err(LintError::NoFolder { .. })));
        // A checkout of its own that git cannot read is not "no tags".
        let d = recipe(&[(".git", Some("gitdir: /nonexistent/cc-ci-lint-test\n"))]);
        let e = lint(d.path()).unwrap_err();
        assert!(matches!(e, LintError::Git { .. }), "{e}");
    }

    #[test]
    fn table_is_aligned_with_abras_columns() {
        let r = lint_with(&[("compose.yml", Some(&COMPOSE.replace("nginx:1.25.3", "nginx:latest")))]);
        let table = r.table();
        let lines: Vec<&str> = table.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("ref ")).unwrap();
        assert!(lines[header].starts_with("ref  | rule"), "{table}");
        for col in ["severity", "satisfied", "skipped", "resolve"] {
            assert!(lines[header].contains(col), "{table}");
        }
        let bar = |l: &str| {
            l.char_indices()
                .filter(|(_, c)| *c == '|')
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let bars = bar(lines[header]);
        let rows = &lines[header + 2..header + 17];
        for (i, row) in rows.iter().enumerate() {
            assert!(row.starts_with(&format!("R{:03} ", i + 1)), "{row}");
            assert_eq!(bar(row), bars, "{table}");
        }
        assert!(rows[3].contains("| warn ") && rows[3].contains("| no "), "{}", rows[3]);
        assert!(rows[5].contains("| -  ") && rows[5].contains("| yes "), "{}", rows[5]);
        assert!(table.contains("R004 failed: service app: nginx:latest uses the unstable tag latest"));
        assert!(table.contains("R006 skipped: needs the network"));
        assert!(!table.contains("critical errors present"), "warnings only");
        assert!(r.passed());
    }

    #[test]
    fn version_vars_are_found() {
        assert_eq!(
            version_vars("${STACK_NAME}_x_${X_VERSION:-v1}_$Y_VERSION"),
            ["X_VERSION".to_string(), "Y_VERSION".to_string()].into()
        );
    }

    /// The fixture recipes' newest release trees (plain folders: R014 is skipped).
    fn newest_release(recipe: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/recipes")
            .join(recipe)
            .join("releases");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .max_by_key(|p| semver::Version::parse(&p.file_name().unwrap().to_string_lossy()).unwrap())
            .unwrap()
    }

    #[test]
    fn fixture_recipes_pass() {
        for name in ["static-site", "webapp-pg", "tmpl-site", "traefik"] {
            let r = lint(&newest_release(name)).unwrap();
            assert_eq!(r.recipe, name);
            assert!(r.passed(), "{name}:\n{}", r.table());
            assert!(matches!(outcome(&r, "R014"), Outcome::Skipped(_)));
        }
    }
}
