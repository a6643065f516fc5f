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

use std::fmt;
use std::path::{Path, PathBuf};

mod checkout;
mod rules;
mod table;

use checkout::Checkout;
use rules::*;
pub use rules::{MAX_SECRET_NAME_LENGTH, RULES};

use crate::recipe::env_file::EnvFileError;
use crate::recipe::version::{RecipeVersion, VersionError};

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

impl From<VersionError> for LintError {
    fn from(e: VersionError) -> LintError {
        match e {
            VersionError::NoFolder { path } => LintError::NoFolder { path },
            VersionError::Read { path, source } => LintError::Read { path, source },
            VersionError::EnvSample(e) => LintError::Env(e),
        }
    }
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
    lint_version(&RecipeVersion::read(recipe_dir)?)
}

/// Lints the recipe version `v`, read once ([`RecipeVersion`]), with rules
/// R001–R015: as [`lint`], from the model instead of the files; only the
/// git tags are read from the checkout (R014).
///
/// # Errors
/// As [`lint`], for what the model holds.
pub fn lint_version(v: &RecipeVersion) -> Result<LintReport, LintError> {
    let recipe_dir = v.dir.as_path();
    let c = Checkout::of(v)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
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
