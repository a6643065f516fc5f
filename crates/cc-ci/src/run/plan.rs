//! One test run's plan: which recipe, which ref and version, which upgrade
//! base, and the run's own identity (run id, app domain, stack, `ABRA_DIR`,
//! results folder), so concurrent runs share nothing writable.
//!
//! The app domain is `<recipe>-<6 hex>.<wildcard domain>`, as the earlier
//! Python cc-ci did (`docs/recipes.md`, "The earlier Python cc-ci"), the
//! stack its abra name.

use std::path::{Path, PathBuf};

pub use crate::deploy::app::stack_name;
use crate::deploy::app::MAX_STACK_NAME;
use crate::deploy::secret::MAX_SECRET_NAME;
use crate::recipe::{upgrade_base, Recipe, RecipeError, Release};
use crate::results::RefKind;

/// Where runs keep their state and results, and which wildcard domain apps get.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// The wildcard domain Traefik serves, e.g. `ci.test` (apps get `<x>.ci.test`).
    pub domain: String,
    /// Per-run state (each run's `ABRA_DIR` lives in `<state_dir>/runs/<run id>/`).
    pub state_dir: PathBuf,
    /// Results root: `<results_dir>/<recipe>/<run id>/results.json`.
    pub results_dir: PathBuf,
}

/// Why the upgrade rung cannot be verified, decided before anything deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseProblem {
    /// The tested ref declares no version (no `coop-cloud.${STACK_NAME}.version` label, no tag).
    NoVersion,
    /// The declared version is not a recipe version (`<semver>+<upstream>`).
    BadVersion(String),
    /// No release other than the tested commit is at or below the tested
    /// version (see [`upgrade_base`]).
    NoOlderRelease(String),
    /// The only releases at or below the tested version are tags on the
    /// very commit under test (the newest of them is named): an upgrade to
    /// itself proves nothing.
    BaseIsHead(String),
}

impl std::fmt::Display for BaseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseProblem::NoVersion => {
                write!(
                    f,
                    "the tested ref declares no version (no coop-cloud.${{STACK_NAME}}.version label)"
                )
            }
            BaseProblem::BadVersion(v) => write!(f, "the declared version {v:?} is not <semver>+<upstream>"),
            BaseProblem::NoOlderRelease(v) => write!(
                f,
                "no release tag other than the tested commit is at or below {v}: nothing to upgrade from"
            ),
            BaseProblem::BaseIsHead(t) => {
                write!(
                    f,
                    "the upgrade base {t} is the tested commit itself: an upgrade to itself proves nothing"
                )
            }
        }
    }
}

/// A planned run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The recipe.
    pub recipe: Recipe,
    /// The tested commit (40 hex).
    pub tested_ref: String,
    /// The tested version as declared, if any.
    pub tested_version: Option<String>,
    /// What the tested commit is: a release, the default branch's tip, or a
    /// change (a pull request): only the first two count for rung 8 and the bar.
    pub ref_kind: RefKind,
    /// The newest release of the recipe, if it has one (the default bar is
    /// the level of its last run on this host).
    pub newest_release: Option<String>,
    /// The upgrade base, or why there is none.
    pub base: Result<Release, BaseProblem>,
    /// Six hex digits naming the run.
    pub run_id: String,
    /// The app's domain.
    pub domain: String,
    /// The app's stack name (abra's: the domain with dots as underscores;
    /// at most [`MAX_STACK_NAME`] characters).
    pub stack: String,
    /// This run's `ABRA_DIR`.
    pub abra_dir: PathBuf,
    /// This run's results folder.
    pub results_dir: PathBuf,
}

/// A plan that cannot be made: the path is not a recipe, or not a git checkout.
pub type PlanError = RecipeError;

/// The shortest recipe label a run domain keeps, however long the
/// recipe's secret names are (a secret name that does not fit then is
/// refused at install, naming the fix).
const MIN_LABEL: usize = 3;

/// How many characters of the recipe's name a run domain may use: the stack
/// (`<label>-<6 hex>_<wildcard with _>`) stays within abra's
/// [`MAX_STACK_NAME`] (so abra's rule is dots alone, and the janitor can
/// read the run id back), and every `<stack>_<secret>_<version>` within
/// Docker's 64 characters where that is possible.
fn label_budget(recipe: &Recipe, wildcard: &str) -> usize {
    let fixed = "-123456_".len() + wildcard.len();
    let stack_room = MAX_STACK_NAME.saturating_sub(fixed);
    let longest_secret = recipe
        .secrets()
        .iter()
        .map(|(id, version, _)| id.len() + version.len() + 2)
        .max()
        .unwrap_or(0);
    let secret_room = MAX_SECRET_NAME.saturating_sub(fixed + longest_secret);
    stack_room.min(secret_room).max(MIN_LABEL)
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

impl RunPlan {
    /// The lease this run takes, now, by this process.
    pub fn lease_info(&self) -> crate::state::lease::LeaseInfo {
        use crate::state::lease::{Holder, LeaseInfo};
        LeaseInfo::new(&self.run_id, &self.domain, &self.stack, Holder::Run)
    }

    /// The plan of a `--quick` run that adopted the warm app `record`: the
    /// app (domain, stack, ABRA_DIR) is the warm one; the run id and results
    /// folder stay this run's.
    pub fn adopt_warm(&mut self, record: &crate::state::warm::WarmRecord) {
        self.domain = record.domain.clone();
        self.stack = record.stack.clone();
        self.abra_dir = record.abra_dir.clone();
    }
}

/// A run id given from outside (`ccci test --run-id`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunIdError {
    /// Not six lowercase hex digits.
    #[error("run id {0:?} is not six lowercase hex digits (e.g. 3fa9c2)")]
    Shape(String),
    /// An earlier run used it: its results or state exist.
    #[error("run id {id} is already used: {path} exists; give another (or none: one is drawn at random)")]
    Used {
        /// The id.
        id: String,
        /// What exists.
        path: PathBuf,
    },
}

/// A plan refused before anything exists: not a recipe, or a run id that
/// cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanRefusal {
    /// Not a recipe checkout.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The given run id.
    #[error(transparent)]
    RunId(#[from] RunIdError),
}

impl RunPlan {
    /// Plans a run of the recipe checkout at `dir` in `env`.
    ///
    /// # Errors
    /// [`RecipeError`] when `dir` is not a recipe (nothing is created then)
    /// or not a git checkout.
    pub fn new(dir: &Path, env: &RunEnv) -> Result<RunPlan, PlanError> {
        Self::fresh(dir, env, run_id)
    }

    /// Plans under the first id `draw` gives that no earlier run on this
    /// host used: neither `<results>/<recipe>/<id>` nor `<state>/runs/<id>`
    /// exists (a drawn id is never another run's, however many runs the
    /// host has seen).
    fn fresh(dir: &Path, env: &RunEnv, mut draw: impl FnMut() -> String) -> Result<RunPlan, PlanError> {
        loop {
            let plan = Self::plan(dir, env, draw())?;
            let state = env.state_dir.join("runs").join(&plan.run_id);
            if !plan.results_dir.exists() && !state.exists() {
                return Ok(plan);
            }
        }
    }

    /// Plans a run as [`RunPlan::new`] does, under the run id `id` when one
    /// is given (the bridge chooses it, so that it knows where the results
    /// will be), else a random one.
    ///
    /// # Errors
    /// [`PlanRefusal::RunId`] when `id` is not six lowercase hex digits, or
    /// when `<results>/<recipe>/<id>` or `<state>/runs/<id>` exists already;
    /// [`PlanRefusal::Recipe`] as [`RunPlan::new`].
    pub fn with_run_id(dir: &Path, env: &RunEnv, id: Option<&str>) -> Result<RunPlan, PlanRefusal> {
        let Some(id) = id else {
            return Ok(Self::new(dir, env)?);
        };
        if !crate::results::layout::is_run_id(id) {
            return Err(RunIdError::Shape(id.into()).into());
        }
        let plan = Self::plan(dir, env, id.to_string())?;
        let state = env.state_dir.join("runs").join(id);
        for path in [&plan.results_dir, &state] {
            if path.exists() {
                return Err(RunIdError::Used {
                    id: id.into(),
                    path: path.clone(),
                }
                .into());
            }
        }
        Ok(plan)
    }

    fn plan(dir: &Path, env: &RunEnv, run_id: String) -> Result<RunPlan, PlanError> {
        let recipe = Recipe::open(dir)?;
        let tested_ref = recipe.head()?;
        let releases = recipe.releases()?;
        let tagged = releases
            .iter()
            .rev()
            .find(|r| r.commit == tested_ref)
            .map(|r| r.tag.clone());
        let ref_kind = match (&tagged, recipe.default_branch_tip()) {
            (Some(tag), _) => RefKind::Release { tag: tag.clone() },
            (None, Some((branch, tip))) if tip == tested_ref => RefKind::DefaultBranch { branch },
            _ => RefKind::Change,
        };
        let newest_release = releases.last().map(|r| r.tag.clone());
        let tested_version = recipe.declared_version().or(tagged);
        let base = match &tested_version {
            None => Err(BaseProblem::NoVersion),
            Some(v) => match semver::Version::parse(v.trim_start_matches('v')) {
                Err(_) => Err(BaseProblem::BadVersion(v.clone())),
                Ok(tested) => match upgrade_base(&releases, &tested, &tested_ref) {
                    Some(b) => Ok(b.clone()),
                    // An older tag on the tested commit itself is no base.
                    None => match releases
                        .iter()
                        .rev()
                        .find(|r| r.commit == tested_ref && r.version < tested)
                    {
                        Some(on_head) => Err(BaseProblem::BaseIsHead(on_head.tag.clone())),
                        None => Err(BaseProblem::NoOlderRelease(v.clone())),
                    },
                },
            },
        };
        let label: String = recipe
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let budget = label_budget(&recipe, &env.domain);
        let label: String = label.trim_matches('-').chars().take(budget).collect();
        let domain = format!("{}-{run_id}.{}", label.trim_end_matches('-'), env.domain);
        Ok(RunPlan {
            stack: stack_name(&domain),
            abra_dir: env.state_dir.join("runs").join(&run_id).join("abra"),
            results_dir: crate::results::layout::run_dir(&env.results_dir, &recipe.name, &run_id),
            recipe,
            tested_ref,
            tested_version,
            ref_kind,
            newest_release,
            base,
            run_id,
            domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn release(dir: &Path, version: &str, tag: bool) {
        let compose = format!(
            "services:\n  app:\n    image: ccci/nginx:1.22.1\n    deploy:\n      labels:\n        \
             - coop-cloud.${{STACK_NAME}}.version={version}\n"
        );
        std::fs::write(dir.join("compose.yml"), compose).unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", version]);
        if tag {
            git(dir, &["tag", "-a", version, "-m", version]);
        }
    }

    fn env(d: &Path) -> RunEnv {
        RunEnv {
            domain: "ci.test".into(),
            state_dir: d.join("state"),
            results_dir: d.join("results"),
        }
    }

    #[test]
    fn plans_identity_and_base() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("My_Recipe");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=my_recipe\n").unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.0.0+1.0", true);
        release(&r, "1.1.0+1.0", true);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.tested_version.as_deref(), Some("1.1.0+1.0"));
        assert_eq!(p.base.as_ref().unwrap().tag, "1.0.0+1.0");
        assert!(
            p.domain.starts_with("my-recipe-") && p.domain.ends_with(".ci.test"),
            "{}",
            p.domain
        );
        assert_eq!(p.stack, p.domain.replace('.', "_"));
        assert!(p.abra_dir.starts_with(d.path().join("state/runs").join(&p.run_id)));
        let q = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_ne!(p.run_id, q.run_id, "each run has its own identity");
        assert_ne!(p.abra_dir, q.abra_dir);
        assert!(!d.path().join("state").exists(), "planning creates nothing");
    }

    #[test]
    fn the_ref_kind_tells_releases_the_default_branch_and_changes_apart() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("x");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=x\n").unwrap();
        git(&r, &["init", "-q", "-b", "main"]);
        release(&r, "1.0.0+1.0", true);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(
            p.ref_kind,
            RefKind::Release {
                tag: "1.0.0+1.0".into()
            }
        );
        assert_eq!(p.newest_release.as_deref(), Some("1.0.0+1.0"));
        release(&r, "1.1.0+1.0", false);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.ref_kind, RefKind::DefaultBranch { branch: "main".into() });
        git(&r, &["checkout", "-q", "-b", "feature"]);
        release(&r, "1.2.0+1.0", false);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.ref_kind, RefKind::Change, "a branch that is not the default");
        // A clone: origin/HEAD names the default branch; a detached PR head is a change.
        git(&r, &["checkout", "-q", "main"]);
        let c = d.path().join("clone");
        git(d.path(), &["clone", "-q", r.to_str().unwrap(), c.to_str().unwrap()]);
        git(&c, &["checkout", "-q", "--detach", "origin/feature"]);
        let p = RunPlan::new(&c, &env(d.path())).unwrap();
        assert_eq!(p.ref_kind, RefKind::Change);
        git(&c, &["checkout", "-q", "--detach", "origin/main"]);
        let p = RunPlan::new(&c, &env(d.path())).unwrap();
        assert_eq!(p.ref_kind, RefKind::DefaultBranch { branch: "main".into() });
    }

    #[test]
    fn long_recipe_names_are_cut_to_fit_abras_names() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("a-recipe-with-a-very-long-name-indeed");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(
            r.join(".env.sample"),
            "TYPE=a-recipe-with-a-very-long-name-indeed\nSECRET_OAUTH_CLIENT_SECRET_VERSION=v1\n",
        )
        .unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.0.0+1.0", true);
        let mut e = env(d.path());
        e.domain = "ci.coopcloud.tech".into();
        let p = RunPlan::new(&r, &e).unwrap();
        assert!(p.stack.len() <= MAX_STACK_NAME, "{}", p.stack);
        let secret = format!("{}_oauth_client_secret_v1", p.stack);
        assert!(secret.len() <= MAX_SECRET_NAME, "{secret} ({})", secret.len());
        assert!(
            p.domain.starts_with("a-recipe") && p.domain.ends_with(".ci.coopcloud.tech"),
            "{}",
            p.domain
        );
    }

    #[test]
    fn base_problems() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("x");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=x\n").unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.0.0+1.0", true);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.base.unwrap_err(), BaseProblem::NoOlderRelease("1.0.0+1.0".into()));
        // A head whose version was not bumped upgrades from the newest
        // release (the one it builds on), not from the one before it...
        release(&r, "1.1.0+1.0", true);
        std::fs::write(r.join("README.md"), "change").unwrap();
        git(&r, &["add", "."]);
        git(&r, &["commit", "-q", "-m", "unbumped"]);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.tested_version.as_deref(), Some("1.1.0+1.0"));
        assert_eq!(p.base.unwrap().tag, "1.1.0+1.0");
        // ...a release tested at its own tag upgrades from the one before...
        git(&r, &["checkout", "-q", "1.1.0+1.0"]);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.base.unwrap().tag, "1.0.0+1.0");
        // ...and an older tag on the tested commit is never the base.
        git(&r, &["checkout", "-q", "-"]);
        git(&r, &["tag", "-a", "1.0.5+1.0", "-m", "same commit"]);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.base.unwrap().tag, "1.1.0+1.0");

        // A tag on the tested commit is refused as proof: here the only
        // release at or below the tested version is on the head itself.
        let r = d.path().join("y");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=y\n").unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.1.0+1.0", false);
        git(&r, &["tag", "-a", "1.0.5+1.0", "-m", "on the head"]);
        let p = RunPlan::new(&r, &env(d.path())).unwrap();
        assert_eq!(p.base.unwrap_err(), BaseProblem::BaseIsHead("1.0.5+1.0".into()));
    }

    #[test]
    fn a_drawn_run_id_is_never_one_an_earlier_run_used() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("x");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=x\n").unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.0.0+1.0", true);
        let e = env(d.path());
        let first = RunPlan::with_run_id(&r, &e, Some("3fa9c2")).unwrap();
        std::fs::create_dir_all(&first.results_dir).unwrap();
        std::fs::create_dir_all(e.state_dir.join("runs/77aa00")).unwrap();
        let mut ids = ["3fa9c2", "77aa00", "0b0b0b"].into_iter().map(String::from);
        let p = RunPlan::fresh(&r, &e, || ids.next().unwrap()).unwrap();
        assert_eq!(p.run_id, "0b0b0b", "ids with results or state are drawn again");
    }

    #[test]
    fn a_given_run_id_is_used_once_and_only_in_its_shape() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("x");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join(".env.sample"), "TYPE=x\n").unwrap();
        git(&r, &["init", "-q"]);
        release(&r, "1.0.0+1.0", true);
        let e = env(d.path());
        let p = RunPlan::with_run_id(&r, &e, Some("3fa9c2")).unwrap();
        assert_eq!(p.run_id, "3fa9c2");
        assert!(p.domain.starts_with("x-3fa9c2."), "{}", p.domain);
        assert!(p.results_dir.ends_with("x/3fa9c2"), "{}", p.results_dir.display());
        for bad in ["3FA9C2", "3fa9c", "3fa9c2a", "3fa9g2", "../../", ""] {
            let err = RunPlan::with_run_id(&r, &e, Some(bad)).unwrap_err();
            assert!(matches!(err, PlanRefusal::RunId(RunIdError::Shape(_))), "{bad}: {err}");
        }
        std::fs::create_dir_all(&p.results_dir).unwrap();
        let err = RunPlan::with_run_id(&r, &e, Some("3fa9c2")).unwrap_err().to_string();
        assert!(err.contains("already used") && err.contains("3fa9c2"), "{err}");
        let random = RunPlan::with_run_id(&r, &e, None).unwrap();
        assert!(crate::results::layout::is_run_id(&random.run_id), "{}", random.run_id);
    }
}
