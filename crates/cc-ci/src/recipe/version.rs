//! One version of a recipe, as its checkout holds it, read once: the model
//! that lint, the confinement check and both deployers read instead of the
//! files.
//!
//! [`RecipeVersion::read`] reads, from the checkout's top folder, every
//! file a version is judged or deployed by:
//!
//! - every `compose*yml` (abra's lint globs `compose**yml` there) and every
//!   file `.env.sample`'s `COMPOSE_FILE` names: each one's text and its YAML
//!   document ([`ComposeSource`]); a file that does not parse is kept with
//!   its error, for whoever reads it to report (the checkout is still a
//!   version; its deploy fails, naming the file and line);
//! - `.env.sample` ([`EnvFile`]), `abra.sh` ([`AbraSh`]) and `README.md`.
//!
//! Nothing is read again: the run's plan and its lint rung share the tested
//! version's model, and each deploy reads the version it checked out once,
//! for abra's lint gate, the app env's `abra.sh` exports, abra's env check,
//! the compose files and their secrets, the confinement check and the files
//! `docker stack deploy` is given (copies written from the texts read here
//! when their `version:` must change). The one exception is a compose file
//! only the app env's `COMPOSE_FILE` names (not `.env.sample`, not the top
//! folder's glob): it is read when asked for ([`RecipeVersion::source`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::Yaml;

use super::abra_sh::{AbraSh, ABRA_SH};
use super::compose::{parse_doc, ComposeError, ComposeFile, ComposeSet};
use super::env_file::{EnvFile, EnvFileError};

/// The sample app env every recipe has (`abra app new` copies it).
pub const ENV_SAMPLE: &str = ".env.sample";
/// The recipe's README (lint rule R015 reads it).
pub const README: &str = "README.md";

/// Why a checkout cannot be read as a recipe version.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The path is not a folder.
    #[error("{path}: no such folder; give the path of a recipe checkout")]
    NoFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A file or the folder exists but cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `.env.sample` has a malformed line.
    #[error(transparent)]
    EnvSample(#[from] EnvFileError),
}

/// One compose file of a version: where it is, its text, its YAML.
#[derive(Debug, Clone)]
pub struct ComposeSource {
    /// The file.
    pub path: PathBuf,
    /// Its text, as read.
    pub text: String,
    /// Its first YAML document as written ([`parse_doc`]), or why it has none.
    pub doc: Result<Yaml, ComposeError>,
}

impl ComposeSource {
    /// Reads the compose file at `path`.
    ///
    /// # Errors
    /// [`ComposeError`] naming the file when it cannot be read (a missing
    /// one included); a text that does not parse is not an error here: it
    /// is kept in [`ComposeSource::doc`].
    pub fn read(path: &Path) -> Result<ComposeSource, ComposeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ComposeError {
            file: path.to_path_buf(),
            line: 0,
            detail: format!("cannot read: {e}"),
        })?;
        Ok(ComposeSource::new(path, text))
    }

    /// The compose file `path` with the text `text`, parsed.
    pub fn new(path: &Path, text: String) -> ComposeSource {
        let doc = parse_doc(path, &text);
        ComposeSource {
            path: path.to_path_buf(),
            text,
            doc,
        }
    }

    /// What the file says as a compose file; `needs_services` makes a
    /// missing `services:` mapping an error (the first file of a set must
    /// have one, an overlay need not).
    ///
    /// # Errors
    /// [`ComposeError`] naming the file and line.
    pub fn compose(&self, needs_services: bool) -> Result<ComposeFile, ComposeError> {
        let doc = self.doc.as_ref().map_err(Clone::clone)?;
        ComposeFile::from_doc(&self.path, doc, needs_services)
    }
}

/// One version of a recipe: the files of its checkout that lint, the
/// confinement check and the deployers read (see the module docs).
#[derive(Debug, Clone)]
pub struct RecipeVersion {
    /// The checkout.
    pub dir: PathBuf,
    /// Compose files by name relative to [`RecipeVersion::dir`] (as
    /// `COMPOSE_FILE` names them): the top folder's `compose*yml` and the
    /// ones `.env.sample` names that exist inside the folder.
    pub compose: BTreeMap<String, ComposeSource>,
    /// `.env.sample`, parsed; `None` when the checkout has none.
    pub env_sample: Option<EnvFile>,
    /// `abra.sh`, parsed; `None` when the checkout has none.
    pub abra_sh: Option<AbraSh>,
    /// `README.md`'s text; `None` when the checkout has none.
    pub readme: Option<String>,
}

impl RecipeVersion {
    /// Reads the checkout at `dir` (see the module docs).
    ///
    /// # Errors
    /// [`VersionError`] when `dir` is not a folder, it or a file of it
    /// cannot be read, or `.env.sample` has a malformed line. Compose files
    /// that do not parse are kept with their error.
    pub fn read(dir: &Path) -> Result<RecipeVersion, VersionError> {
        if !dir.is_dir() {
            return Err(VersionError::NoFolder {
                path: dir.to_path_buf(),
            });
        }
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VersionError::Read { path, source }
        };
        let optional = |name: &str| -> Result<Option<String>, VersionError> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            std::fs::read_to_string(&path).map(Some).map_err(read_err(&path))
        };
        let env_sample = match optional(ENV_SAMPLE)? {
            Some(text) => Some(EnvFile::parse(&dir.join(ENV_SAMPLE), &text)?),
            None => None,
        };
        let abra_sh = optional(ABRA_SH)?.map(|t| AbraSh::parse(&t));
        let readme = optional(README)?;

        // Go's filepath.Glob("compose**yml") in the top folder, then the
        // files .env.sample names (inside the folder, existing).
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let entry = entry.map_err(read_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("compose") && name.ends_with("yml") && entry.path().is_file() {
                names.push(name);
            }
        }
        let sampled = super::compose_files(env_sample.as_ref().and_then(|e| e.get("COMPOSE_FILE")));
        for name in sampled {
            if let Ok(path) = ComposeSet::confined(dir, &name) {
                if path.is_file() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let mut compose = BTreeMap::new();
        for name in names {
            // A symlink leading out of the folder is not followed: the
            // file is kept with that error, for lint or the deploy to name.
            let source = match ComposeSet::confined(dir, &name) {
                Err(e) => ComposeSource {
                    path: dir.join(&name),
                    text: String::new(),
                    doc: Err(e),
                },
                Ok(path) => {
                    let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
                    ComposeSource::new(&path, text)
                }
            };
            compose.insert(name, source);
        }
        Ok(RecipeVersion {
            dir: dir.to_path_buf(),
            compose,
            env_sample,
            abra_sh,
            readme,
        })
    }

    /// The compose file `name` (as `COMPOSE_FILE` names it): the one read
    /// with the version, else read now (a file only the app env names).
    ///
    /// # Errors
    /// [`ComposeError`] when `name` leads outside the checkout
    /// ([`ComposeSet::confined`]) or the file cannot be read.
    pub fn source(&self, name: &str) -> Result<Cow<'_, ComposeSource>, ComposeError> {
        let path = ComposeSet::confined(&self.dir, name)?;
        match self.compose.get(name) {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => ComposeSource::read(&path).map(Cow::Owned),
        }
    }

    /// Whether the version has the compose file `name`.
    pub fn has_compose_file(&self, name: &str) -> bool {
        self.compose.contains_key(name) || ComposeSet::confined(&self.dir, name).is_ok_and(|p| p.is_file())
    }

    /// The compose files `files` (in `COMPOSE_FILE` order), merged.
    ///
    /// # Errors
    /// [`ComposeError`] for the first file that is outside the checkout
    /// (every name is checked before any is used), cannot be read, does not
    /// parse, or (the first one) has no `services:` mapping.
    pub fn compose_set(&self, files: &[String]) -> Result<ComposeSet, ComposeError> {
        for f in files {
            ComposeSet::confined(&self.dir, f)?;
        }
        let mut read = Vec::new();
        for (i, f) in files.iter().enumerate() {
            read.push(self.source(f)?.compose(i == 0)?);
        }
        Ok(ComposeSet::merged(read))
    }

    /// The values `abra.sh` exports (empty without one).
    pub fn exports(&self) -> BTreeMap<String, String> {
        self.abra_sh.as_ref().map(|a| a.exports.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const COMPOSE: &str = "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1.22.1\n";

    #[test]
    fn every_file_is_read_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "compose.yml", COMPOSE);
        write(
            d.path(),
            "compose.smtp.yml",
            "services:\n  app:\n    environment:\n      - SMTP=1\n",
        );
        write(d.path(), "extra/compose.x.yml", "services: {}\n");
        write(d.path(), "notcompose.yml", "x: 1\n");
        write(
            d.path(),
            ".env.sample",
            "TYPE=demo\nCOMPOSE_FILE=\"compose.yml:extra/compose.x.yml:compose.gone.yml\"\n",
        );
        write(d.path(), "abra.sh", "export NGINX_CONF_VERSION=v2\n");
        write(d.path(), "README.md", "# demo\n");
        let v = RecipeVersion::read(d.path()).unwrap();
        assert_eq!(
            v.compose.keys().collect::<Vec<_>>(),
            ["compose.smtp.yml", "compose.yml", "extra/compose.x.yml"]
        );
        assert_eq!(v.compose["compose.yml"].text, COMPOSE);
        assert_eq!(v.env_sample.as_ref().unwrap().get("TYPE"), Some("demo"));
        assert_eq!(v.exports()["NGINX_CONF_VERSION"], "v2");
        assert_eq!(v.readme.as_deref(), Some("# demo\n"));
        // The model, not the disk, is what is read afterwards.
        std::fs::remove_file(d.path().join("compose.yml")).unwrap();
        let set = v
            .compose_set(&["compose.yml".into(), "compose.smtp.yml".into()])
            .unwrap();
        assert_eq!(set.services["app"].image.as_deref(), Some("nginx:1.22.1"));
        assert!(set.services["app"].environment.contains("SMTP"));
        assert!(v.has_compose_file("compose.yml"));
        assert!(!v.has_compose_file("compose.gone.yml"));
    }

    #[test]
    fn a_broken_compose_file_is_kept_with_its_error_and_reported_when_used() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "compose.yml", "services:\n  app: [unclosed\n");
        write(d.path(), "compose.ok.yml", "services:\n  app:\n    image: x\n");
        let v = RecipeVersion::read(d.path()).unwrap();
        assert!(v.env_sample.is_none() && v.abra_sh.is_none() && v.readme.is_none());
        let e = v.compose_set(&["compose.yml".into()]).unwrap_err();
        assert!(e.file.ends_with("compose.yml") && e.line >= 2, "{e}");
        // An overlay without services is fine, a base without is not.
        write(d.path(), "compose.empty.yml", "version: \"3.8\"\n");
        let v = RecipeVersion::read(d.path()).unwrap();
        assert!(v
            .compose_set(&["compose.ok.yml".into(), "compose.empty.yml".into()])
            .is_ok());
        let e = v.compose_set(&["compose.empty.yml".into()]).unwrap_err();
        assert!(e.detail.contains("no `services:` mapping"), "{e}");
    }

    #[test]
    fn a_file_only_the_app_env_names_is_read_when_asked_and_nothing_outside_the_folder() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "compose.yml", COMPOSE);
        write(d.path(), "overlays/x.yml", "services:\n  app:\n    image: y\n");
        let v = RecipeVersion::read(d.path()).unwrap();
        assert!(!v.compose.contains_key("overlays/x.yml"));
        let set = v.compose_set(&["compose.yml".into(), "overlays/x.yml".into()]).unwrap();
        assert_eq!(set.services["app"].image.as_deref(), Some("y"));
        let e = v.compose_set(&["compose.yml".into(), "../x.yml".into()]).unwrap_err();
        assert!(e.detail.contains("outside the recipe folder"), "{e}");
        let e = v.compose_set(&["compose.missing.yml".into()]).unwrap_err();
        assert!(e.detail.contains("cannot read"), "{e}");
    }

    #[test]
    fn a_compose_file_that_is_a_symlink_out_of_the_folder_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(
            outside.path(),
            "secret.yml",
            "services:\n  app:\n    image: host-secret\n",
        );
        write(d.path(), "compose.yml", COMPOSE);
        std::os::unix::fs::symlink(outside.path().join("secret.yml"), d.path().join("compose.evil.yml")).unwrap();
        let v = RecipeVersion::read(d.path()).unwrap();
        let evil = &v.compose["compose.evil.yml"];
        assert!(evil.text.is_empty(), "read through the symlink: {}", evil.text);
        let e = evil.doc.as_ref().unwrap_err();
        assert!(e.detail.contains("outside the recipe folder"), "{e}");
        let e = v
            .compose_set(&["compose.yml".into(), "compose.evil.yml".into()])
            .unwrap_err();
        assert!(e.detail.contains("outside the recipe folder"), "{e}");
    }

    #[test]
    fn what_is_not_a_version_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = RecipeVersion::read(&d.path().join("nope")).unwrap_err();
        assert!(matches!(e, VersionError::NoFolder { .. }), "{e}");
        write(d.path(), ".env.sample", "this is not an assignment\n");
        let e = RecipeVersion::read(d.path()).unwrap_err();
        assert!(e.to_string().contains(".env.sample:1"), "{e}");
    }
}
