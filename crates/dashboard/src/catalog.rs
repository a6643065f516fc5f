//! What the results root holds: every recipe and its runs, read from
//! `<results>/<recipe>/<run id>/results.json` (finished runs) and
//! `started.json` (runs that started and have not finished, or never
//! will). Never live state: the dashboard does not ask Docker anything.
//!
//! Reading 1,000 results files on every request would not fit in the
//! render budget, so [`Catalog`] keeps what it parsed, keyed by the file's
//! modification time and size, and looks at the folders again at most
//! every [`RESCAN`]: a page costs a few `stat`s, not a parse.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cc_ci_results::history::Started;
use cc_ci_results::RunResults;

/// How often the results root is looked at again, at most.
pub const RESCAN: Duration = Duration::from_secs(2);

/// One run's folder.
#[derive(Debug, Clone)]
pub struct Run {
    /// The recipe.
    pub recipe: String,
    /// The run id (the folder's name, six hex digits).
    pub id: String,
    /// The folder.
    pub dir: PathBuf,
    /// What it found, when it finished.
    pub results: Option<Arc<RunResults>>,
    /// What it recorded at its start, when it has not finished.
    pub started: Option<Started>,
}

impl Run {
    /// When it started, RFC 3339 UTC ("" when neither file says).
    pub fn started_at(&self) -> &str {
        self.results
            .as_ref()
            .map(|r| r.started_at.as_str())
            .or(self.started.as_ref().map(|s| s.started_at.as_str()))
            .unwrap_or("")
    }

    /// Whether the run speaks for the recipe as published: a release or
    /// the default branch, not `--quick` (as rung 8 counts them).
    pub fn counts(&self) -> bool {
        self.results.as_ref().is_some_and(|r| {
            !r.quick && !r.kept_warm && r.warm.is_none() && r.ref_kind.as_ref().is_some_and(|k| k.counts())
        })
    }

    /// Its level, when it finished.
    pub fn level(&self) -> Option<u8> {
        self.results.as_ref().map(|r| r.level)
    }
}

/// A recipe and its runs, newest first.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe's name (its folder).
    pub name: String,
    /// Its runs, newest first (by start time, then id).
    pub runs: Vec<Arc<Run>>,
}

impl Recipe {
    /// The run the recipe's badge shows: its newest finished run that
    /// counts (a release or the default branch, not `--quick`). Pull
    /// request runs never set a recipe's badge.
    pub fn current(&self) -> Option<&Arc<Run>> {
        self.runs.iter().find(|r| r.counts())
    }

    /// The counted run before [`Recipe::current`], for the trend.
    pub fn previous(&self) -> Option<&Arc<Run>> {
        self.runs.iter().filter(|r| r.counts()).nth(1)
    }

    /// The newest finished run of any kind.
    pub fn latest(&self) -> Option<&Arc<Run>> {
        self.runs.iter().find(|r| r.results.is_some())
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Option<&Arc<Run>> {
        self.runs.iter().find(|r| r.id == id)
    }
}

/// The results root at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Recipes by name.
    pub recipes: BTreeMap<String, Recipe>,
    /// Files that are not results of this schema, with why (shown to the
    /// operator on the grid, never fatal).
    pub unreadable: Vec<String>,
}

impl Snapshot {
    /// A run by recipe and id.
    pub fn run(&self, recipe: &str, id: &str) -> Option<&Arc<Run>> {
        self.recipes.get(recipe)?.run(id)
    }

    /// Every run, of every recipe.
    pub fn runs(&self) -> impl Iterator<Item = &Arc<Run>> {
        self.recipes.values().flat_map(|r| r.runs.iter())
    }
}

/// Whether `name` can be a recipe folder (what abra allows in a recipe
/// name: lowercase letters, digits, `-`, `_`, `.`; not hidden).
pub fn is_recipe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

pub use cc_ci_results::layout::is_run_id;

type Parsed = HashMap<PathBuf, (SystemTime, u64, Arc<RunResults>)>;

/// The results root, read lazily and cached (see the module doc).
pub struct Catalog {
    root: PathBuf,
    parsed: Mutex<Parsed>,
    current: Mutex<(Instant, Arc<Snapshot>)>,
}

impl Catalog {
    /// A catalog of `root` (read at the first [`Catalog::snapshot`]).
    pub fn new(root: &Path) -> Catalog {
        let long_ago = Instant::now().checked_sub(RESCAN * 2).unwrap_or_else(Instant::now);
        Catalog {
            root: root.to_path_buf(),
            parsed: Mutex::new(HashMap::new()),
            current: Mutex::new((long_ago, Arc::new(Snapshot::default()))),
        }
    }

    /// The results root as it is now, or as it was at most [`RESCAN`] ago.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let mut cur = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.0.elapsed() >= RESCAN {
            *cur = (Instant::now(), Arc::new(self.scan()));
        }
        cur.1.clone()
    }

    /// Reads the results root now (only files that changed are parsed).
    pub fn scan(&self) -> Snapshot {
        let mut parsed = self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = HashSet::new();
        let mut snap = Snapshot::default();
        let Ok(recipes) = std::fs::read_dir(&self.root) else {
            snap.unreadable.push(format!("{}: cannot be read", self.root.display()));
            return snap;
        };
        for recipe in recipes.flatten() {
            let name = recipe.file_name().to_string_lossy().into_owned();
            if !is_recipe_name(&name) || !recipe.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(runs) = std::fs::read_dir(recipe.path()) else {
                continue;
            };
            let mut list = Vec::new();
            for run in runs.flatten() {
                let id = run.file_name().to_string_lossy().into_owned();
                if !is_run_id(&id) || !run.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let dir = run.path();
                let file = dir.join(cc_ci_results::layout::RESULTS_FILE);
                let results = match std::fs::metadata(&file) {
                    Ok(m) => {
                        let key = (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len());
                        seen.insert(file.clone());
                        match parsed.get(&file) {
                            Some((t, n, r)) if (*t, *n) == key => Some(r.clone()),
                            _ => match RunResults::read(&file) {
                                Ok(r) => {
                                    let r = Arc::new(r);
                                    parsed.insert(file.clone(), (key.0, key.1, r.clone()));
                                    Some(r)
                                }
                                Err(e) => {
                                    snap.unreadable.push(e.to_string());
                                    None
                                }
                            },
                        }
                    }
                    Err(_) => None,
                };
                let started = if results.is_none() { Started::read(&dir) } else { None };
                if results.is_none() && started.is_none() {
                    continue;
                }
                list.push(Arc::new(Run {
                    recipe: name.clone(),
                    id,
                    dir,
                    results,
                    started,
                }));
            }
            list.sort_by(|a, b| (b.started_at(), &b.id).cmp(&(a.started_at(), &a.id)));
            if !list.is_empty() {
                snap.recipes.insert(name.clone(), Recipe { name, runs: list });
            }
        }
        parsed.retain(|k, _| seen.contains(k));
        snap.unreadable.sort();
        snap
    }
}
