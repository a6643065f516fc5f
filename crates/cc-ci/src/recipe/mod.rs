//! A Co-op Cloud recipe checkout, read and validated before anything deploys.
//!
//! A recipe is a git repository with `compose.yml`, optional `compose.*.yml`
//! overlays picked by `COMPOSE_FILE` in the app env, and `.env.sample`
//! (conventions: `docs/recipes.md`, "Recipes"). Releases are git
//! tags named `<recipe semver>+<upstream version>`, e.g. `1.0.0+1.22.1`.
//! [`Recipe::open`] refuses a path that is not a recipe with a
//! [`RecipeError`] naming the file and what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod abra_sh;
pub mod compose;
pub mod confine;
pub mod env_file;
pub mod git;
pub mod interpolate;
pub mod lint;
pub mod version;

use compose::{ComposeError, ComposeSet};
use env_file::{EnvFile, EnvFileError};
use version::{RecipeVersion, VersionError};

/// Why a path is not a usable recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The path is not a folder.
    #[error("{path} is not a recipe: no such folder; give the path of a recipe checkout")]
    NoFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A file every recipe has is missing.
    #[error("{path} is not a recipe: {file} is missing ({why})")]
    Missing {
        /// The recipe folder.
        path: PathBuf,
        /// The missing file, relative to the folder.
        file: String,
        /// What the file is for.
        why: &'static str,
    },
    /// `.env.sample` could not be read.
    #[error(transparent)]
    Env(#[from] EnvFileError),
    /// A file of the checkout could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A compose file does not parse or is not a compose file.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// git failed on the recipe checkout.
    #[error("git in {path}: {detail}")]
    Git {
        /// The recipe folder.
        path: PathBuf,
        /// What git said.
        detail: String,
    },
}

pub use compose::Service;

/// A recipe checkout.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Recipe name: `TYPE=` of `.env.sample`, else the folder name.
    pub name: String,
    /// The checkout.
    pub dir: PathBuf,
    /// `.env.sample`, parsed (also in [`Recipe::version`]).
    pub env_sample: EnvFile,
    /// The checkout's files as read once ([`RecipeVersion`]): what lint
    /// reads.
    pub version: RecipeVersion,
    /// The compose files `COMPOSE_FILE` selects, relative to `dir`, in order.
    pub compose_files: Vec<String>,
    /// Services, merged over the compose files in order (empty when they
    /// cannot be read: see `compose_error`).
    pub services: BTreeMap<String, Service>,
    /// Why the compose files `COMPOSE_FILE` selects cannot be read (a file
    /// missing, or not parsing: file and line), if so. The checkout is still
    /// a recipe: the deploy of this version fails on it.
    pub compose_error: Option<String>,
}

/// A release: a git tag whose name parses as a recipe version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Tag name, e.g. `1.0.0+1.22.1`.
    pub tag: String,
    /// The version it names.
    pub version: semver::Version,
    /// The commit it points at (40 hex).
    pub commit: String,
    /// Whether the tag is annotated (Co-op Cloud lint rule R014 wants so).
    pub annotated: bool,
}

/// The label (on the main service) that carries the deployed version;
/// `${STACK_NAME}` stands in the middle: `coop-cloud.${STACK_NAME}.version`.
pub fn is_version_label(key: &str) -> bool {
    key.starts_with("coop-cloud.") && (key.ends_with(".version") && !key.ends_with(".chaos-version"))
}

impl Recipe {
    /// Reads and validates the recipe checkout at `dir`.
    ///
    /// # Errors
    /// [`RecipeError`] when `dir` is not a folder, `compose.yml` or
    /// `.env.sample` is missing, or `.env.sample` does not parse. Compose
    /// files that are missing or do not parse are recorded in
    /// [`Recipe::compose_error`] instead.
    pub fn open(dir: &Path) -> Result<Recipe, RecipeError> {
        let version = RecipeVersion::read(dir).map_err(|e| match e {
            VersionError::NoFolder { path } => RecipeError::NoFolder { path },
            VersionError::Read { path, source } => RecipeError::Read { path, source },
            VersionError::EnvSample(e) => RecipeError::Env(e),
        })?;
        let missing = |file: &str, why| RecipeError::Missing {
            path: dir.to_path_buf(),
            file: file.into(),
            why,
        };
        if !version.compose.contains_key("compose.yml") {
            return Err(missing("compose.yml", "the recipe's main compose file"));
        }
        let Some(env_sample) = version.env_sample.clone() else {
            return Err(missing(".env.sample", "the sample app env that `abra app new` copies"));
        };
        let compose_files = compose_files(env_sample.get("COMPOSE_FILE"));
        // A compose file that is outside the folder, missing or does not
        // parse does not make the checkout "not a recipe": the deploy of
        // this version fails on it, naming the file and line, at the rung
        // that deploys it. Nothing outside the folder is read.
        let outside = compose_files.iter().find_map(|f| ComposeSet::confined(dir, f).err());
        let (services, compose_error) = if let Some(e) = outside {
            (BTreeMap::new(), Some(e.to_string()))
        } else {
            match compose_files.iter().find(|f| !version.compose.contains_key(*f)) {
                Some(f) => (
                    BTreeMap::new(),
                    Some(
                        RecipeError::Missing {
                            path: dir.to_path_buf(),
                            file: f.clone(),
                            why: "named by COMPOSE_FILE in .env.sample",
                        }
                        .to_string(),
                    ),
                ),
                None => match version.compose_set(&compose_files) {
                    Ok(set) => (set.services, None),
                    Err(e) => (BTreeMap::new(), Some(e.to_string())),
                },
            }
        };
        let name = recipe_name(Some(&env_sample), dir);
        Ok(Recipe {
            name,
            dir: dir.to_path_buf(),
            env_sample,
            version,
            compose_files,
            services,
            compose_error,
        })
    }

    /// Whether the recipe can be backed up: some service carries the
    /// `backupbot.backup` label set to true (backup-bot-two's convention).
    pub fn backup_capable(&self) -> bool {
        self.services
            .values()
            .any(|s| s.labels.get("backupbot.backup").is_some_and(|v| v.trim() == "true"))
    }

    /// The version the checkout declares: the `coop-cloud.${STACK_NAME}.version`
    /// label, on whichever service carries it.
    pub fn declared_version(&self) -> Option<String> {
        self.services
            .values()
            .flat_map(|s| s.labels.iter())
            .find(|(k, _)| is_version_label(k))
            .map(|(_, v)| v.clone())
    }

    /// Secrets `.env.sample` declares (`SECRET_<NAME>_VERSION=v1`): lower-case
    /// name, version and the generation options of its trailing comment
    /// (`# length=32`, `charset=hex`).
    pub fn secrets(&self) -> Vec<(String, String, Option<String>)> {
        self.env_sample
            .entries
            .iter()
            .filter_map(|e| {
                let name = e.key.strip_prefix("SECRET_")?.strip_suffix("_VERSION")?;
                Some((name.to_lowercase(), e.value.clone(), e.comment.clone()))
            })
            .collect()
    }

    /// Releases of the checkout, oldest first (tags that do not parse as a
    /// version are left out).
    ///
    /// # Errors
    /// [`RecipeError::Git`] when the folder is not a git repository.
    pub fn releases(&self) -> Result<Vec<Release>, RecipeError> {
        let out = git(
            &self.dir,
            &[
                "for-each-ref",
                "refs/tags",
                "--format=%(refname:short)\t%(objecttype)\t%(*objectname)\t%(objectname)",
            ],
        )?;
        let mut v: Vec<Release> = out
            .lines()
            .filter_map(|l| {
                let mut p = l.split('\t');
                let tag = p.next()?.to_string();
                let annotated = p.next()? == "tag";
                let peeled = p.next()?;
                let direct = p.next()?;
                let version = semver::Version::parse(tag.trim_start_matches('v')).ok()?;
                let commit = if annotated { peeled } else { direct }.to_string();
                Some(Release {
                    tag,
                    version,
                    commit,
                    annotated,
                })
            })
            .collect();
        v.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(v)
    }

    /// The commit checked out (40 hex).
    ///
    /// # Errors
    /// [`RecipeError::Git`] when the folder is not a git repository.
    pub fn head(&self) -> Result<String, RecipeError> {
        Ok(git(&self.dir, &["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// The recipe's default branch and its tip commit (40 hex): the branch
    /// `origin/HEAD` names in a clone (what Gitea's default branch is), else,
    /// in a checkout without a remote, a `main` or `master` that HEAD is
    /// on. None when neither (a detached PR head in a clone without
    /// `origin/HEAD`, say).
    pub fn default_branch_tip(&self) -> Option<(String, String)> {
        let tip = |r: &str| {
            git(&self.dir, &["rev-parse", "--verify", "-q", &format!("{r}^{{commit}}")])
                .ok()
                .map(|s| s.trim().to_string())
        };
        if let Ok(remote) = git(
            &self.dir,
            &["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"],
        ) {
            let remote = remote.trim();
            let branch = remote.strip_prefix("origin/").unwrap_or(remote).to_string();
            return tip(remote).map(|c| (branch, c));
        }
        let head = git(&self.dir, &["symbolic-ref", "-q", "--short", "HEAD"]).ok()?;
        let head = head.trim();
        (head == "main" || head == "master")
            .then(|| tip("HEAD").map(|c| (head.to_string(), c)))
            .flatten()
    }
}

/// The compose files a `COMPOSE_FILE` value names, in order: split on `:`,
/// empty names dropped, `compose.yml` when unset or empty (abra's
/// `GetComposeFiles`). The one place the value is taken apart: the recipe,
/// both deployers and traefik-deploy read it through here.
pub fn compose_files(compose_file: Option<&str>) -> Vec<String> {
    compose_file
        .filter(|v| !v.is_empty())
        .unwrap_or("compose.yml")
        .split(':')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A recipe's name: `TYPE=` (or abra's alternative `RECIPE=`) of its
/// `.env.sample`, without a `:<version>` suffix; else the folder's name.
pub fn recipe_name(env_sample: Option<&EnvFile>, dir: &Path) -> String {
    env_sample
        .and_then(|e| e.get("TYPE").or_else(|| e.get("RECIPE")))
        .map(|t| t.split(':').next().unwrap_or(t).to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

/// The upgrade base for the tested commit `tested_commit` (40 hex), which
/// declares version `tested`: the newest release whose version is at most
/// `tested` and whose commit is not the tested commit. A pull request that
/// does not bump the version upgrades from the newest release (the one it
/// builds on, same version), a bumped one from the newest release below
/// it, and a release tested at its own tag from the release before it (a
/// tag on the tested commit is never the base: an upgrade to itself proves
/// nothing). `None` when there is no such release (the upgrade rung is
/// then unverified).
pub fn upgrade_base<'r>(releases: &'r [Release], tested: &semver::Version, tested_commit: &str) -> Option<&'r Release> {
    releases
        .iter()
        .filter(|r| r.version <= *tested && r.commit != tested_commit)
        .max_by(|a, b| a.version.cmp(&b.version))
}

fn git(dir: &Path, args: &[&str]) -> Result<String, RecipeError> {
    git::run(dir, args).map_err(|e| RecipeError::Git {
        path: dir.to_path_buf(),
        detail: e.detail(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const COMPOSE: &str = r#"---
version: "3.8"
services:
  app:
    image: ccci/webapp:1.0.0
    networks: [proxy, internal]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8080/health"]
      start_period: 10s
    volumes:
      - content:/srv/content
      - /etc/hosts:/etc/hosts:ro
    deploy:
      labels:
        - "traefik.enable=true"
        - "coop-cloud.${STACK_NAME}.version=1.0.0+1.0.0"
  db:
    image: ccci/postgres:15
    volumes:
      - type: volume
        source: postgres
        target: /var/lib/postgresql/data
    deploy:
      labels:
        backupbot.backup: "true"
        backupbot.backup.path: /var/lib/postgresql/dump
volumes:
  content:
  postgres:
"#;

    fn recipe_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, t) in files {
            std::fs::write(d.path().join(f), t).unwrap();
        }
        d
    }

    #[test]
    fn reads_services_labels_volumes_and_backup_capability() {
        let d = recipe_dir(&[
            ("compose.yml", COMPOSE),
            (
                ".env.sample",
                "TYPE=webapp-pg\nDOMAIN=x.example.com\nSECRET_DB_PASSWORD_VERSION=v1 # length=32\n",
            ),
        ]);
        let r = Recipe::open(d.path()).unwrap();
        assert_eq!(r.name, "webapp-pg");
        assert_eq!(r.compose_files, ["compose.yml"]);
        assert!(r.backup_capable());
        assert_eq!(r.declared_version().as_deref(), Some("1.0.0+1.0.0"));
        let app = &r.services["app"];
        assert!(app.healthcheck);
        assert_eq!(app.volumes.get("content").map(String::as_str), Some("/srv/content"));
        assert_eq!(app.volumes.len(), 1, "bind mounts are not named volumes");
        let db = &r.services["db"];
        assert!(!db.healthcheck);
        assert_eq!(
            db.volumes.get("postgres").map(String::as_str),
            Some("/var/lib/postgresql/data")
        );
        assert_eq!(
            r.secrets(),
            [(
                "db_password".to_string(),
                "v1".to_string(),
                Some("length=32".to_string())
            )]
        );
    }

    #[test]
    fn overlays_follow_compose_file_built_in_steps() {
        let d = recipe_dir(&[
            ("compose.yml", "services:\n  app:\n    image: a:1\n"),
            ("compose.extra.yml", "services:\n  app:\n    deploy:\n      labels: {backupbot.backup: \"true\"}\n"),
            (".env.sample", "COMPOSE_FILE=\"compose.yml\"\n#COMPOSE_FILE=\"$COMPOSE_FILE:compose.off.yml\"\nCOMPOSE_FILE=\"$COMPOSE_FILE:compose.extra.yml\"\n"),
        ]);
        let r = Recipe::open(d.path()).unwrap();
        assert_eq!(r.compose_files, ["compose.yml", "compose.extra.yml"]);
        assert!(r.backup_capable());
        assert_eq!(r.services["app"].image.as_deref(), Some("a:1"));
    }

    /// An empty `COMPOSE_FILE=` means compose.yml, for the recipe as for
    /// the deploy (abra's `GetComposeFiles`): the recipe once read no
    /// compose file at all from it while the deploy read compose.yml.
    #[test]
    fn an_empty_compose_file_means_compose_yml_everywhere() {
        let d = recipe_dir(&[
            ("compose.yml", "services:\n  app:\n    image: a:1\n"),
            (".env.sample", "TYPE=x\nCOMPOSE_FILE=\n"),
        ]);
        let r = Recipe::open(d.path()).unwrap();
        assert_eq!(r.compose_files, ["compose.yml"]);
        assert!(r.services.contains_key("app"));
        let env = std::collections::BTreeMap::from([("COMPOSE_FILE".to_string(), String::new())]);
        assert_eq!(crate::deploy::compose_files(&env), r.compose_files);
        assert_eq!(compose_files(Some("a.yml::b.yml")), ["a.yml", "b.yml"]);
        assert_eq!(compose_files(None), ["compose.yml"]);
    }

    #[test]
    fn not_a_recipe_is_refused_naming_the_file() {
        let d = recipe_dir(&[(".env.sample", "TYPE=x\n")]);
        let e = Recipe::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("compose.yml is missing"), "{e}");
        let d = recipe_dir(&[("compose.yml", "services: {a: {image: x}}\n")]);
        let e = Recipe::open(d.path()).unwrap_err().to_string();
        assert!(e.contains(".env.sample is missing"), "{e}");
        // Broken compose files are the version's problem, kept for its deploy.
        let d = recipe_dir(&[("compose.yml", "services:\n  a: [\n"), (".env.sample", "")]);
        let e = Recipe::open(d.path()).unwrap().compose_error.unwrap();
        assert!(e.contains("compose.yml:") && e.contains("fix the compose file"), "{e}");
        let d = recipe_dir(&[("compose.yml", "version: '3.8'\n"), (".env.sample", "")]);
        let e = Recipe::open(d.path()).unwrap().compose_error.unwrap();
        assert!(e.contains("no `services:` mapping"), "{e}");
        let d = recipe_dir(&[
            ("compose.yml", "services: {a: {image: x}}\n"),
            (".env.sample", "COMPOSE_FILE=compose.yml:compose.gone.yml\n"),
        ]);
        let e = Recipe::open(d.path()).unwrap().compose_error.unwrap();
        assert!(
            e.contains("compose.gone.yml is missing") && e.contains("COMPOSE_FILE"),
            "{e}"
        );
        let e = Recipe::open(&d.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("no such folder"), "{e}");
    }

    fn rel(tag: &str) -> Release {
        Release {
            tag: tag.into(),
            version: semver::Version::parse(tag).unwrap(),
            commit: tag.into(),
            annotated: true,
        }
    }

    #[test]
    fn upgrade_base_is_the_newest_release_at_or_below_the_tested_version_on_another_commit() {
        let rs = [rel("1.0.0+1.22.1"), rel("1.1.0+1.22.1"), rel("2.0.0+1.24.0")];
        let v = |s: &str| semver::Version::parse(s).unwrap();
        let base = |tested: &str, commit: &str| upgrade_base(&rs, &v(tested), commit).map(|r| r.tag.clone());
        // rel() gives each release its tag as its commit.
        let some = |t: &str| Some(t.to_string());
        assert_eq!(
            base("2.0.0+1.24.0", "2.0.0+1.24.0"),
            some("1.1.0+1.22.1"),
            "tested = newest tag"
        );
        assert_eq!(base("2.1.0+1.25.0", "head"), some("2.0.0+1.24.0"), "a bumped PR head");
        assert_eq!(
            base("2.0.0+1.24.0", "head"),
            some("2.0.0+1.24.0"),
            "a PR head that did not bump: from the release it builds on"
        );
        assert_eq!(base("1.1.0+1.22.1", "1.1.0+1.22.1"), some("1.0.0+1.22.1"));
        assert_eq!(
            base("1.5.0+1.22.1", "head"),
            some("1.1.0+1.22.1"),
            "never a newer release"
        );
        assert_eq!(base("1.0.0+1.22.1", "1.0.0+1.22.1"), None, "no other release");
        assert_eq!(base("0.9.0+1.22.1", "head"), None, "every release is newer");
        assert!(upgrade_base(&[], &v("1.0.0"), "head").is_none());
    }

    #[test]
    fn releases_come_from_git_tags_oldest_first() {
        let d = recipe_dir(&[
            ("compose.yml", "services: {a: {image: x}}\n"),
            (".env.sample", "TYPE=x\n"),
        ]);
        let g = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(d.path())
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        g(&["init", "-q"]);
        g(&[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ]);
        g(&[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "tag",
            "-a",
            "1.1.0+2",
            "-m",
            "r",
        ]);
        g(&["tag", "1.0.0+1"]);
        g(&["tag", "not-a-version"]);
        let r = Recipe::open(d.path()).unwrap();
        let rs = r.releases().unwrap();
        let tags: Vec<_> = rs.iter().map(|r| (r.tag.as_str(), r.annotated)).collect();
        assert_eq!(tags, [("1.0.0+1", false), ("1.1.0+2", true)]);
        assert_eq!(rs[0].commit, r.head().unwrap());
        assert_eq!(
            rs[1].commit,
            r.head().unwrap(),
            "an annotated tag is peeled to its commit"
        );
    }
}
