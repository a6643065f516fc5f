//! Warm records: `<state_dir>/warm/<stack>.json`, the note a green
//! `ccci test --quick` run leaves beside the app it kept deployed
//! ([`crate::run::warm`] claims it; the janitor leaves a fresh one's app and
//! reaps a stale one's). Plain files: no Docker here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The folder under the state dir holding warm records.
pub const WARM_DIR: &str = "warm";

/// The schema of a warm record.
pub const WARM_SCHEMA: &str = "cc-ci/warm/v1";

/// How long a warm app is kept: older records are reaped by the janitor
/// and never adopted.
pub const WARM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A kept-warm app, as `<state_dir>/warm/<stack>.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmRecord {
    /// Always [`WARM_SCHEMA`].
    pub schema: String,
    /// The recipe.
    pub recipe: String,
    /// The id of the run that installed the app (its folder is
    /// `<state_dir>/runs/<id>/`).
    pub app_run_id: String,
    /// The app's domain.
    pub domain: String,
    /// The app's stack.
    pub stack: String,
    /// The app's ABRA_DIR.
    pub abra_dir: PathBuf,
    /// The commit the app runs (40 hex).
    pub deployed_ref: String,
    /// The value of the `app` service's `coop-cloud.<stack>.chaos-version`
    /// (a chaos deploy) or `.version` label (a release deploy) that proves it.
    pub deployed_label: String,
    /// `chaos-version` or `version`: which label `deployed_label` is.
    pub label_key: String,
    /// The run that kept it warm last.
    pub kept_by_run: String,
    /// When it was kept, RFC 3339 UTC.
    pub kept_at: chrono::DateTime<chrono::Utc>,
}

/// A warm record that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("warm record {path}: {detail}")]
pub struct WarmError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and the fix.
    pub detail: String,
}

/// `<state_dir>/warm`.
pub fn warm_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(WARM_DIR)
}

/// The record file of `stack`.
pub fn record_path(state_dir: &Path, stack: &str) -> PathBuf {
    warm_dir(state_dir).join(format!("{stack}.json"))
}

impl WarmRecord {
    /// Whether the record is younger than [`WARM_MAX_AGE`] at `now`.
    pub fn fresh(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        now.signed_duration_since(self.kept_at)
            .to_std()
            .map(|age| age < WARM_MAX_AGE)
            .unwrap_or(true)
    }

    /// [`WarmRecord::kept_at`] as results and progress show it (RFC 3339, seconds, `Z`).
    pub fn kept_at_text(&self) -> String {
        self.kept_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Writes the record atomically (a temp file in the same folder, renamed).
    ///
    /// # Errors
    /// [`WarmError`] naming the file when the folder or file cannot be written.
    pub fn write(&self, state_dir: &Path) -> Result<PathBuf, WarmError> {
        use std::io::Write;
        let path = record_path(state_dir, &self.stack);
        let err = |detail: String| WarmError {
            path: path.clone(),
            detail,
        };
        let dir = warm_dir(state_dir);
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| err(format!("cannot write: {e}")))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        tmp.persist(&path)
            .map_err(|e| err(format!("cannot rename into place: {e}")))?;
        Ok(path)
    }

    /// Reads a record file.
    ///
    /// # Errors
    /// [`WarmError`] naming the file when it cannot be read, is not JSON of
    /// this shape, or has another schema.
    pub fn read(path: &Path) -> Result<WarmRecord, WarmError> {
        let err = |detail: String| WarmError {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let r: WarmRecord = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "not a warm record ({e}); remove the file (the janitor then reaps its app)"
            ))
        })?;
        if r.schema != WARM_SCHEMA {
            return Err(err(format!("schema {:?}, expected {WARM_SCHEMA:?}", r.schema)));
        }
        if record_path(path.parent().and_then(Path::parent).unwrap_or(Path::new("")), &r.stack) != path {
            return Err(err(format!(
                "names stack {} but is not {}.json; remove the file",
                r.stack, r.stack
            )));
        }
        Ok(r)
    }
}

/// Every record under `state_dir`, each read (or why not), by file.
pub fn list(state_dir: &Path) -> Vec<(PathBuf, Result<WarmRecord, WarmError>)> {
    let Ok(entries) = std::fs::read_dir(warm_dir(state_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let r = WarmRecord::read(&p);
            (p, r)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The fresh record of `stack`, if there is one (the janitor's test).
pub fn fresh_record(state_dir: &Path, stack: &str) -> Option<WarmRecord> {
    WarmRecord::read(&record_path(state_dir, stack))
        .ok()
        .filter(|r| r.fresh(chrono::Utc::now()))
}

/// Removes the record of `stack`; true when one was there.
pub fn remove(state_dir: &Path, stack: &str) -> bool {
    std::fs::remove_file(record_path(state_dir, stack)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stack: &str, kept_at: chrono::DateTime<chrono::Utc>) -> WarmRecord {
        WarmRecord {
            schema: WARM_SCHEMA.into(),
            recipe: "tmpl-site".into(),
            app_run_id: "3fa9c2".into(),
            domain: "tmpl-site-3fa9c2.ci.test".into(),
            stack: stack.into(),
            abra_dir: "/nowhere/runs/3fa9c2/abra".into(),
            deployed_ref: "a".repeat(40),
            deployed_label: "aaaaaaaa".into(),
            label_key: "chaos-version".into(),
            kept_by_run: "3fa9c2".into(),
            kept_at,
        }
    }

    #[test]
    fn a_record_round_trips_and_ages() {
        let d = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let r = record("tmpl-site-3fa9c2_ci_test", now);
        let path = r.write(d.path()).unwrap();
        assert_eq!(path, record_path(d.path(), &r.stack));
        assert_eq!(WarmRecord::read(&path).unwrap(), r);
        assert!(r.fresh(now));
        assert!(!r.fresh(now + chrono::Duration::hours(25)));
        assert_eq!(fresh_record(d.path(), &r.stack), Some(r.clone()));
        let old = record("tmpl-site-000000_ci_test", now - chrono::Duration::hours(30));
        old.write(d.path()).unwrap();
        assert_eq!(fresh_record(d.path(), &old.stack), None, "stale");
        assert_eq!(list(d.path()).len(), 2);
        assert!(remove(d.path(), &r.stack));
        assert!(!remove(d.path(), &r.stack));
    }

    #[test]
    fn a_broken_record_is_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(warm_dir(d.path())).unwrap();
        let p = record_path(d.path(), "x-3fa9c2_ci_test");
        std::fs::write(&p, "{ not json").unwrap();
        let e = WarmRecord::read(&p).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("not a warm record"),
            "{e}"
        );
        let mut r = record("other-3fa9c2_ci_test", chrono::Utc::now());
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        let e = WarmRecord::read(&p).unwrap_err().to_string();
        assert!(e.contains("names stack other-3fa9c2_ci_test"), "{e}");
        r.stack = "x-3fa9c2_ci_test".into();
        r.schema = "cc-ci/warm/v0".into();
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        assert!(WarmRecord::read(&p).unwrap_err().to_string().contains("schema"));
        assert_eq!(fresh_record(d.path(), "x-3fa9c2_ci_test"), None);
    }
}
