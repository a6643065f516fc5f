//! `results.json`: everything one run of the lifecycle suite found. Every
//! report (terminal summary, JUnit, badge, PR comment, dashboard) is rendered
//! from these files, never from live state (`docs/design.md`, "Results").

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod badge;
pub mod card;
pub mod comment;
pub mod format;
pub mod history;
pub mod junit;
pub mod layout;
pub mod level;
mod templates;
pub mod verdict;

use level::{level, level_name, Rung, Status};
use verdict::{Bar, Verdict};

/// The schema identifier written into every results file; bump the number on
/// any change that is not a pure addition of optional fields.
pub const SCHEMA: &str = "cc-ci/results/v1";

/// The outcome of one rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungResult {
    /// Which rung.
    pub rung: Rung,
    /// How it ended.
    pub status: Status,
    /// Why, in a maintainer's words (required for everything but a pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time, seconds.
    pub duration_s: f64,
    /// Log file of the rung, relative to the results folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// How many tries the rung took (1: it passed or failed on its first;
    /// more: something in it was retried, e.g. a custom test under
    /// `[tested] retries`). A rung that passed only on a retry keeps the
    /// run from exemplary.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_one(n: &u32) -> bool {
    *n == 1
}

/// What kind of ref a run tested, which decides whether it counts towards
/// rung 8 ("maintained") and the bar: only releases and the default branch
/// speak for the recipe as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RefKind {
    /// The commit a release tag points at.
    Release {
        /// The tag.
        tag: String,
    },
    /// The tip of the recipe's default branch (`origin/HEAD`, else a local
    /// `main` or `master` that HEAD is on), untagged.
    DefaultBranch {
        /// The branch.
        branch: String,
    },
    /// Anything else: a pull request's head, a work in progress.
    Change,
}

impl RefKind {
    /// Whether runs of this ref count for rung 8 and the bar.
    pub fn counts(&self) -> bool {
        !matches!(self, RefKind::Change)
    }
}

/// Wall time of one phase of the run (install, serve, upgrade, backup,
/// restore, teardown ...), split into time spent waiting for Docker to
/// converge and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// Phase name.
    pub phase: String,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Of which waiting for the app (convergence, HTTP readiness), seconds.
    pub waiting_s: f64,
}

/// One run's results; see [`SCHEMA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Recipe name.
    pub recipe: String,
    /// The tested ref (commit SHA, 40 hex).
    pub tested_ref: String,
    /// The version the tested ref declares.
    pub tested_version: Option<String>,
    /// The upgrade base release (tag), if there was one.
    pub base_version: Option<String>,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// Each rung that ran or was decided, in ladder order.
    pub rungs: Vec<RungResult>,
    /// The level reached, computed from `rungs` by [`level`].
    pub level: u8,
    /// The level's name.
    pub level_name: String,
    /// Phase timings, in order.
    pub phases: Vec<PhaseTiming>,
    /// The settings in force (secret-looking values masked).
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Screenshot path relative to the results folder, if one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    /// The run's identity: id, app domain and stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppIdentity>,
    /// Which deployer ran the deploys (`native` or `abra`) and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployer: Option<serde_json::Value>,
    /// Each service's image as the tested version's deploy reads it
    /// (interpolated with the app's env), by service name: what a run
    /// page shows and what the dashboard compares with the last green run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// Deploys made (a full run makes exactly two: the upgrade base, then
    /// the tested ref).
    #[serde(default)]
    pub deploys: u32,
    /// Ways the run departed from plain abra behaviour because of this host
    /// (e.g. `endpoint_mode: dnsrr` where the kernel has no IPVS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptations: Vec<Adaptation>,
    /// Files of the run, relative to the results folder, by name
    /// (`screenshot-serve`, `screenshot-upgrade`, `lint`, `deploy-log`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, String>,
    /// Artifacts the run tried to make and could not, by name, with the
    /// reason (a screenshot Chromium did not deliver after a retry). They
    /// never gate a rung; they say why a file is missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_artifacts: BTreeMap<String, String>,
    /// The lint rung's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<LintSummary>,
    /// Whether teardown left nothing of the app (None: it did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_teardown: Option<bool>,
    /// Seconds of the run spent waiting for Docker and the app (deploy
    /// commands, convergence, HTTP readiness, containers of hooks and
    /// backups), and the rest: cc-ci's own code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_split: Option<TimeSplit>,
    /// Why the run stopped early, if it did (a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// The last log lines of each service, taken when a rung that uses the
    /// app (install, serve, upgrade, restore) failed or errored, before the
    /// teardown (also in the `service-logs` artifact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_logs: Vec<ServiceLog>,
    /// The warm app the run reused (`ccci test --quick`), if it did: then
    /// rung 1 did not deploy, and the upgrade started from what it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmOrigin>,
    /// True when the app was kept warm for the next `--quick` run instead
    /// of torn down (rung 7 is then unverified).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_warm: bool,
    /// The run was asked for `--quick` (a warm app reused or kept): it
    /// neither counts towards rung 8 nor breaks it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quick: bool,
    /// What kind of ref was tested (None in files older than this field:
    /// such runs do not count for rung 8 or the bar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_kind: Option<RefKind>,
    /// The app's named volumes and what protects their data (a backup
    /// label, a declared-ephemeral setting, or nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeCoverage>,
    /// The verdict ([`verdict::judge`]), set when the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// One named volume of the app and what protects its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeCoverage {
    /// The volume's name in the compose file (`db-data`), without the
    /// stack prefix.
    pub volume: String,
    /// How its data is protected.
    pub covered: Coverage,
}

/// What protects a volume's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum Coverage {
    /// A backupbot label of the service that mounts it.
    Backup,
    /// The recipe's settings declare it ephemeral, with this reason.
    Ephemeral {
        /// Why its data may be lost.
        reason: String,
    },
    /// Nothing: its data would be lost, and the recipe is not exemplary.
    None,
}

/// Where a reused warm app came from (results.json `warm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmOrigin {
    /// The run that installed the app.
    pub app_run_id: String,
    /// The green run that kept it warm last.
    pub kept_by_run: String,
    /// When, RFC 3339 UTC.
    pub kept_at: String,
    /// The commit it ran when this run took it (40 hex).
    pub deployed_ref: String,
}

/// The last log lines of one service of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLog {
    /// The service (`<stack>_<name>`).
    pub service: String,
    /// Its last lines, oldest first (each `<time> [<task>] <message>`
    /// where the engine said).
    pub lines: Vec<String>,
    /// True for Traefik's own lines that name the app's stack (its routers,
    /// its access log), shown beside the app's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy: bool,
}

/// A run's app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIdentity {
    /// Six hex digits naming the run.
    pub run_id: String,
    /// The app's domain.
    pub domain: String,
    /// The app's stack.
    pub stack: String,
}

/// An environment adaptation: what was changed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adaptation {
    /// What cc-ci did differently.
    pub what: String,
    /// Why this host needed it.
    pub why: String,
}

/// The lint rung's findings, by rule reference.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LintSummary {
    /// Error-level rules that failed (`R009 one service named 'app'`).
    pub errors: Vec<String>,
    /// Warn-level rules that failed.
    pub warnings: Vec<String>,
    /// Rules not checked, with why.
    pub skipped: Vec<String>,
}

/// Where a run's wall time went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSplit {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Waiting for Docker and the app, seconds.
    pub waiting_s: f64,
    /// The rest (cc-ci's own code), seconds.
    pub own_s: f64,
}

/// A results file that cannot be written or read back.
#[derive(Debug, thiserror::Error)]
#[error("results file {path}: {detail}")]
pub struct ResultsError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub detail: String,
}

impl RunResults {
    /// The run's verdict: the one results.json holds, else (a file written
    /// before verdicts were stored) [`verdict::judge`] against the default
    /// bar. The exit status, the commit status and the comment follow it.
    pub fn verdict(&self) -> Verdict {
        self.verdict
            .clone()
            .unwrap_or_else(|| verdict::judge(self, &Bar::default_bar()))
    }

    /// The first rung that did not climb (fail, error, unverified, skipped),
    /// if any.
    pub fn first_red(&self) -> Option<&RungResult> {
        self.rungs.iter().filter(|r| !r.status.climbs()).min_by_key(|r| r.rung)
    }

    /// A results value with nothing in it yet (schema set, everything else
    /// empty), to fill in field by field.
    pub fn empty() -> RunResults {
        RunResults {
            schema: SCHEMA.into(),
            recipe: String::new(),
            tested_ref: String::new(),
            tested_version: None,
            base_version: None,
            started_at: String::new(),
            finished_at: String::new(),
            rungs: Vec::new(),
            level: 0,
            level_name: level_name(0).into(),
            phases: Vec::new(),
            settings: serde_json::json!({}),
            screenshot: None,
            app: None,
            deployer: None,
            images: BTreeMap::new(),
            deploys: 0,
            adaptations: Vec::new(),
            artifacts: BTreeMap::new(),
            missing_artifacts: BTreeMap::new(),
            lint: None,
            clean_teardown: None,
            time_split: None,
            interrupted: None,
            service_logs: Vec::new(),
            warm: None,
            kept_warm: false,
            quick: false,
            ref_kind: None,
            volumes: Vec::new(),
            verdict: None,
        }
    }

    /// Sets `level` and `level_name` from `rungs` (rungs sorted into ladder order).
    pub fn finish(&mut self) {
        self.rungs.sort_by_key(|r| r.rung);
        let outcomes: Vec<(Rung, Status)> = self.rungs.iter().map(|r| (r.rung, r.status)).collect();
        self.level = level(&outcomes);
        self.level_name = level_name(self.level).to_string();
    }

    /// Writes the results as pretty JSON to `path` through a temporary file
    /// in the same folder and a rename, so a reader never sees half a file.
    ///
    /// # Errors
    /// [`ResultsError`] when the folder is not writable.
    pub fn write(&self, path: &Path) -> Result<(), ResultsError> {
        let err = |detail: String| ResultsError {
            path: path.display().to_string(),
            detail,
        };
        use std::io::Write;
        let json = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A temp file of its own beside the results (two writers never share
        // one), renamed over them: a reader sees the old file or the new.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| err(format!("cannot write into {}: {e}", dir.display())))?;
        tmp.write_all((json + "\n").as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        // Readable as the results always were (a temp file is 0600): the
        // bridge and the dashboard read them through their group.
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| err(format!("cannot set its mode: {e}")))?;
        tmp.persist(path)
            .map(drop)
            .map_err(|e| err(format!("cannot rename into place: {e}")))
    }

    /// Reads a results file, refusing another schema.
    ///
    /// # Errors
    /// [`ResultsError`] when unreadable, not JSON of this shape, or of another schema.
    pub fn read(path: &Path) -> Result<RunResults, ResultsError> {
        let err = |detail: String| ResultsError {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let r: RunResults = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if r.schema != SCHEMA {
            return Err(err(format!("schema {:?}, expected {SCHEMA:?}", r.schema)));
        }
        Ok(r)
    }

    /// The closing summary table: one line per rung, then the level.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} ({}), upgrade base {}\n",
            self.recipe,
            self.tested_version.as_deref().unwrap_or("?"),
            &self.tested_ref[..self.tested_ref.len().min(12)],
            self.base_version.as_deref().unwrap_or("none")
        );
        s.push_str(&format!(
            "{:<5} {:<10} {:<11} {:>8}  {}\n",
            "level", "rung", "status", "time", "reason"
        ));
        for r in &self.rungs {
            let status = r.status.word();
            let rung = r.rung.word();
            s.push_str(&format!(
                "{:<5} {:<10} {:<11} {:>7.1}s  {}\n",
                r.rung.level(),
                rung,
                status,
                r.duration_s,
                r.reason.as_deref().unwrap_or("")
            ));
        }
        if let Some(l) = &self.lint {
            for w in &l.warnings {
                s.push_str(&format!("lint warning: {w}\n"));
            }
        }
        for a in &self.adaptations {
            s.push_str(&format!("adapted: {} ({})\n", a.what, a.why));
        }
        if let Some(w) = &self.warm {
            s.push_str(&format!(
                "warm app: reused (--quick), installed by run {}, kept by run {} at {}, running {}\n",
                w.app_run_id,
                w.kept_by_run,
                w.kept_at,
                &w.deployed_ref[..12.min(w.deployed_ref.len())]
            ));
        }
        if self.kept_warm {
            s.push_str("kept warm: the app was not torn down; the next --quick run of this recipe reuses it\n");
        }
        if self.deploys > 0 {
            let by = self
                .deployer
                .as_ref()
                .and_then(|d| d["name"].as_str())
                .map(|n| format!(" by the {n} deployer"))
                .unwrap_or_default();
            s.push_str(&format!("deploys: {}{by}\n", self.deploys));
        }
        if let Some(t) = &self.time_split {
            s.push_str(&format!(
                "time: {:.1} s, of which {:.1} s waiting for Docker and the app, {:.1} s in cc-ci ({:.1}%)\n",
                t.wall_s,
                t.waiting_s,
                t.own_s,
                if t.wall_s > 0.0 {
                    100.0 * t.own_s / t.wall_s
                } else {
                    0.0
                }
            ));
        }
        if let Some(why) = &self.interrupted {
            s.push_str(&format!("INTERRUPTED: {why}\n"));
        }
        if let Some(v) = &self.verdict {
            s.push_str(&format!(
                "verdict: {} (held to {})\n",
                v.state.as_str(),
                v.bar.describe()
            ));
            for w in &v.why {
                s.push_str(&format!("  not green: {w}\n"));
            }
        }
        s.push_str(&format!("LEVEL {} ({})\n", self.level, self.level_name));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunResults {
        let mut r = RunResults {
            schema: SCHEMA.into(),
            recipe: "static-site".into(),
            tested_ref: "0123456789abcdef0123456789abcdef01234567".into(),
            tested_version: Some("1.1.0+1.22.1".into()),
            base_version: Some("1.0.0+1.22.1".into()),
            started_at: "2026-11-21T15:00:00Z".into(),
            finished_at: "2026-11-21T15:01:00Z".into(),
            rungs: vec![
                RungResult {
                    rung: Rung::Restore,
                    status: Status::NotApplicable,
                    reason: Some("no backupbot labels".into()),
                    duration_s: 0.0,
                    log: None,
                    attempts: 1,
                },
                RungResult {
                    rung: Rung::Install,
                    status: Status::Pass,
                    reason: None,
                    duration_s: 12.5,
                    log: Some("install.log".into()),
                    attempts: 1,
                },
                RungResult {
                    rung: Rung::Serve,
                    status: Status::Pass,
                    reason: None,
                    duration_s: 1.0,
                    log: None,
                    attempts: 1,
                },
                RungResult {
                    rung: Rung::Upgrade,
                    status: Status::Unverified,
                    reason: Some("base equals head".into()),
                    duration_s: 0.1,
                    log: None,
                    attempts: 1,
                },
            ],
            level: 99,
            level_name: String::new(),
            phases: vec![PhaseTiming {
                phase: "install".into(),
                wall_s: 12.5,
                waiting_s: 11.0,
            }],
            settings: serde_json::json!({}),
            screenshot: None,
            ..RunResults::empty()
        };
        r.finish();
        r
    }

    #[test]
    fn finish_computes_the_level_from_the_rungs() {
        let r = sample();
        assert_eq!(r.level, 2);
        assert_eq!(r.level_name, "serves");
        assert_eq!(r.rungs[0].rung, Rung::Install, "rungs in ladder order");
        let table = r.summary();
        assert!(table.contains("upgrade    unverified"), "{table}");
        assert!(table.ends_with("LEVEL 2 (serves)\n"), "{table}");
    }

    #[test]
    fn write_then_read_round_trips_and_other_schemas_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("results.json");
        let r = sample();
        r.write(&p).unwrap();
        assert_eq!(RunResults::read(&p).unwrap(), r);
        assert!(!d.path().join("results.json.tmp").exists());
        let text = std::fs::read_to_string(&p).unwrap().replace(SCHEMA, "cc-ci/results/v0");
        std::fs::write(&p, text).unwrap();
        assert!(RunResults::read(&p).unwrap_err().to_string().contains("schema"));
    }
}
