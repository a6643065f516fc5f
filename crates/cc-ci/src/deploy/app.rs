//! An app in an `ABRA_DIR`, laid out as abra lays it out, so that an
//! operator who has abra can inspect a live test app with it
//! (`ABRA_DIR=<run>/abra abra app ps <domain>`):
//!
//! ```text
//! $ABRA_DIR/servers/<server>/<domain>.env   the app env (abra app new copies .env.sample here)
//! $ABRA_DIR/recipes/<recipe>/               a git checkout of the recipe
//! ```
//!
//! The env file is made the way `abra app new` makes it (`docs/abra.md`,
//! "Making an app"): `.env.sample`'s text, every `<recipe>.example.com` replaced by the
//! app's domain (commented lines too), then cc-ci's own settings:
//! `DOMAIN` = the domain, `TYPE` = the recipe, `LETS_ENCRYPT_ENV` empty (so
//! routers get no cert resolver and Traefik serves the wildcard
//! certificate), and the recipe's settings' `[env]` overrides. Edits keep the
//! rest of the file as it was ([`set_in_text`]). Every write goes through a
//! temporary file and a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::recipe::abra_sh::AbraSh;
use crate::recipe::env_file::{set_in_text, EnvFile, EnvFileError, UnwritableValue};
use crate::recipe::version::RecipeVersion;

/// The server name abra gives the local Docker (`abra server add --local`).
pub const LOCAL_SERVER: &str = "default";

/// abra's stack name for an app domain: dots become underscores
/// (`blog.example.com` -> `blog_example_com`; `docs/abra.md`,
/// "Making an app", [I-obs]); an explicit `STACK_NAME` in the env wins.
/// abra also cuts names longer than `MAX_SANITISED_APP_NAME_LENGTH`
/// ([I-src], 45 as recalled, unverified); cc-ci never relies on the cut:
/// its run domains are chosen short enough ([`MAX_STACK_NAME`]) that the
/// rule is the dots alone.
pub fn stack_name(domain: &str) -> String {
    domain.replace('.', "_")
}

/// The longest stack name cc-ci gives a test app: abra's cut-off as recalled
/// (`MAX_SANITISED_APP_NAME_LENGTH`, [I-src], unverified).
pub const MAX_STACK_NAME: usize = 45;

/// An app's files could not be made, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A file or folder operation failed.
    #[error("{path}: {detail}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// git failed on the app's recipe checkout.
    #[error("git {args} in {dir}: {detail}")]
    Git {
        /// The checkout.
        dir: PathBuf,
        /// The arguments.
        args: String,
        /// What git said.
        detail: String,
    },
    /// The env file does not parse.
    #[error(transparent)]
    Env(#[from] EnvFileError),
    /// A value cannot be written into the env file so that it reads back
    /// as given (nothing was written).
    #[error("{path}: cannot set {source}")]
    Value {
        /// The env file.
        path: PathBuf,
        /// The key and why.
        source: UnwritableValue,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |e| AppError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// One app: where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The recipe name (`TYPE=`).
    pub recipe: String,
    /// The app's domain (abra's app name).
    pub domain: String,
    /// Its stack (abra's rule, [`stack_name`]).
    pub stack: String,
    /// The `ABRA_DIR`.
    pub abra_dir: PathBuf,
    /// The server folder name ([`LOCAL_SERVER`]).
    pub server: String,
}

impl App {
    /// The app `domain` of `recipe` in `abra_dir` (nothing is created).
    pub fn new(abra_dir: &Path, recipe: &str, domain: &str) -> App {
        App {
            recipe: recipe.to_string(),
            domain: domain.to_string(),
            stack: stack_name(domain),
            abra_dir: abra_dir.to_path_buf(),
            server: LOCAL_SERVER.to_string(),
        }
    }

    /// `$ABRA_DIR/servers/<server>/<domain>.env`.
    pub fn env_path(&self) -> PathBuf {
        self.abra_dir
            .join("servers")
            .join(&self.server)
            .join(format!("{}.env", self.domain))
    }

    /// `$ABRA_DIR/recipes/<recipe>`.
    pub fn checkout(&self) -> PathBuf {
        self.abra_dir.join("recipes").join(&self.recipe)
    }

    /// Clones the recipe at `source` (a git checkout) into [`App::checkout`].
    /// An existing clone (a warm app's, `ccci test --quick`) fetches from
    /// `source` instead: its `HEAD` (which may be detached, as a CI worker
    /// checks out a PR head), branches and tags, so the tested commit is
    /// there.
    ///
    /// # Errors
    /// [`AppError::Git`] when `git clone` or `git fetch` fails.
    pub fn clone_recipe(&self, source: &Path) -> Result<(), AppError> {
        let dest = self.checkout();
        if dest.join(".git").exists() {
            let source = source.display().to_string();
            return git(
                &dest,
                &[
                    "fetch",
                    "--quiet",
                    "--force",
                    "--tags",
                    &source,
                    "HEAD",
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
            )
            .map(|_| ());
        }
        let parent = dest.parent().unwrap_or(&self.abra_dir);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        git(
            parent,
            &[
                "clone",
                "--quiet",
                "--no-hardlinks",
                &source.display().to_string(),
                &dest.display().to_string(),
            ],
        )
        .map(|_| ())
    }

    /// Checks out `reference` (a tag or commit) in the app's recipe
    /// checkout, discarding changes there (the checkout is cc-ci's own), and
    /// returns the commit (40 hex).
    ///
    /// # Errors
    /// [`AppError::Git`].
    pub fn checkout_ref(&self, reference: &str) -> Result<String, AppError> {
        let dir = self.checkout();
        git(&dir, &["checkout", "--quiet", "--force", "--detach", reference])?;
        git(&dir, &["clean", "--quiet", "-fdx"])?;
        Ok(git(&dir, &["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Writes the app's env file as `abra app new` does: `sample` (the text
    /// of `.env.sample`) with `<recipe>.example.com` replaced by the domain,
    /// then `DOMAIN`, `TYPE`, an empty `LETS_ENCRYPT_ENV`, then `overrides`.
    ///
    /// # Errors
    /// [`AppError::Io`] when the file cannot be written,
    /// [`AppError::Value`] for a value no env-file quoting keeps (nothing
    /// is written then).
    pub fn write_env(&self, sample: &str, overrides: &BTreeMap<String, String>) -> Result<(), AppError> {
        let path = self.env_path();
        let value_err = |source| AppError::Value {
            path: path.clone(),
            source,
        };
        let mut text = sample.replace(&format!("{}.example.com", self.recipe), &self.domain);
        text = set_in_text(&text, "TYPE", &self.recipe).map_err(value_err)?;
        text = set_in_text(&text, "DOMAIN", &self.domain).map_err(value_err)?;
        text = set_in_text(&text, "LETS_ENCRYPT_ENV", "").map_err(value_err)?;
        for (k, v) in overrides {
            text = set_in_text(&text, k, v).map_err(value_err)?;
        }
        self.write_env_text(&text)
    }

    /// Sets `key` in the env file, keeping the rest as it is.
    ///
    /// # Errors
    /// As [`App::set_all`].
    pub fn set(&self, key: &str, value: &str) -> Result<(), AppError> {
        self.set_all([(key, value)])
    }

    /// Sets every `(key, value)` in the env file, in order, keeping the
    /// rest as it is: one read, one atomic write (a temp file renamed).
    ///
    /// # Errors
    /// [`AppError`] when the file cannot be read or written, or a value
    /// cannot be written so that it reads back ([`AppError::Value`]); the
    /// file is then left as it was, none of the keys set.
    pub fn set_all<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), AppError> {
        let path = self.env_path();
        let mut text = std::fs::read_to_string(&path).map_err(io(&path))?;
        for (key, value) in pairs {
            text = set_in_text(&text, key, value).map_err(|source| AppError::Value {
                path: path.clone(),
                source,
            })?;
        }
        self.write_env_text(&text)
    }

    fn write_env_text(&self, text: &str) -> Result<(), AppError> {
        let path = self.env_path();
        let dir = path.parent().unwrap_or(&self.abra_dir).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        write_atomically(&path, text.as_bytes()).map_err(io(&path))
    }

    /// The env file, parsed.
    ///
    /// # Errors
    /// [`AppError::Env`].
    pub fn env_file(&self) -> Result<EnvFile, AppError> {
        Ok(EnvFile::read(&self.env_path())?)
    }

    /// The app env a deploy interpolates with (abra's), read once per
    /// deploy: the env file, then the exports of the checked-out
    /// `version`'s `abra.sh` over it, then `STACK_NAME` (unless the env
    /// sets one).
    ///
    /// # Errors
    /// [`AppError`] when the env file cannot be read.
    pub fn deploy_env(&self, version: &RecipeVersion) -> Result<AppEnv, AppError> {
        let file = self.env_file()?;
        let mut values: BTreeMap<String, String> =
            file.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let abra_sh = version.abra_sh.clone().unwrap_or_default();
        values.extend(abra_sh.exports.clone());
        values.entry("STACK_NAME".into()).or_insert_with(|| self.stack.clone());
        Ok(AppEnv { values, file, abra_sh })
    }
}

/// What one deploy reads of the app's env, once ([`App::deploy_env`]).
#[derive(Debug, Clone)]
pub struct AppEnv {
    /// The values the compose files are interpolated with: the env file,
    /// abra.sh's exports over it, `STACK_NAME`.
    pub values: BTreeMap<String, String>,
    /// The env file as written (its `# length=…` modifiers and comments,
    /// which secret generation reads).
    pub file: EnvFile,
    /// The checkout's abra.sh.
    pub abra_sh: AbraSh,
}

/// Writes `bytes` to `path` through a temp file beside it, renamed into
/// place: a reader (or a `docker stack deploy` started later) sees the old
/// file or the whole new one, never half.
///
/// # Errors
/// The I/O error of creating, writing or renaming the temp file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Runs git in `dir`; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, AppError> {
    crate::recipe::git::run(dir, args).map_err(|e| AppError::Git {
        dir: dir.to_path_buf(),
        args: args.join(" "),
        detail: e.detail(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_as_abra_app_new_makes_it() {
        let d = tempfile::tempdir().unwrap();
        let app = App::new(&d.path().join("abra"), "webapp-pg", "webapp-pg-1a2b3c.ci.test");
        assert_eq!(app.stack, "webapp-pg-1a2b3c_ci_test");
        assert!(app
            .env_path()
            .ends_with("abra/servers/default/webapp-pg-1a2b3c.ci.test.env"));
        let sample = "TYPE=webapp-pg\n\n# the domain\nDOMAIN=webapp-pg.example.com\n\
                      #EXTRA_DOMAINS=', `www.webapp-pg.example.com`'\nLETS_ENCRYPT_ENV=production\n\
                      SECRET_DB_PASSWORD_VERSION=v1  # length=32\n";
        let overrides = BTreeMap::from([("SITE_TITLE".to_string(), "cc ci".to_string())]);
        app.write_env(sample, &overrides).unwrap();
        let text = std::fs::read_to_string(app.env_path()).unwrap();
        assert!(
            text.contains("#EXTRA_DOMAINS=', `www.webapp-pg-1a2b3c.ci.test`'"),
            "{text}"
        );
        assert!(text.contains("# the domain\n"), "comments kept: {text}");
        let env = app.env_file().unwrap();
        assert_eq!(env.get("DOMAIN"), Some("webapp-pg-1a2b3c.ci.test"));
        assert_eq!(env.get("LETS_ENCRYPT_ENV"), Some(""));
        assert_eq!(env.get("SITE_TITLE"), Some("cc ci"));
        app.set("TYPE", "webapp-pg:1.0.0+1.0.0").unwrap();
        assert_eq!(app.env_file().unwrap().get("TYPE"), Some("webapp-pg:1.0.0+1.0.0"));
        // The checked-out version's abra.sh exports go over the env file.
        let checkout = tempfile::tempdir().unwrap();
        std::fs::write(checkout.path().join("abra.sh"), "export SITE_TITLE=from-abra-sh\n").unwrap();
        let m = app
            .deploy_env(&RecipeVersion::read(checkout.path()).unwrap())
            .unwrap()
            .values;
        assert_eq!(m["STACK_NAME"], "webapp-pg-1a2b3c_ci_test");
        assert_eq!(m["SECRET_DB_PASSWORD_VERSION"], "v1");
        assert_eq!(m["SITE_TITLE"], "from-abra-sh");
        // A value no quoting keeps: refused naming the file and the key,
        // the file untouched.
        let before = std::fs::read_to_string(app.env_path()).unwrap();
        let e = app.set("SITE_TITLE", "it's \"quoted\"").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: cannot set SITE_TITLE: the value holds a `'`",
                app.env_path().display()
            )),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(app.env_path()).unwrap(), before);
        let over = BTreeMap::from([("SITE_TITLE".to_string(), "two\nlines".to_string())]);
        assert!(matches!(app.write_env(sample, &over), Err(AppError::Value { .. })));
        assert_eq!(
            std::fs::read_to_string(app.env_path()).unwrap(),
            before,
            "nothing half-written"
        );
    }
}
