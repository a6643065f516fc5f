//! The bridge's state in SQLite: which comments were handled, which builds
//! are in flight and where each is in its life, the one PR comment per pull
//! request, when each repository was enrolled, the poll cursors and the
//! sweeps. Every step of a build's life
//! is written before the next one starts, so a bridge restarted at any point
//! picks up where it was and posts nothing twice.
//!
//! A build moves `starting` (to be forced on Buildbot) → `queued` (a build
//! request exists) → `running` (a build exists) → `reporting` (the build is
//! over; its status and comment are to be posted) → `done`, or `dead` when
//! its report was given up ([`crate::retry`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::config::RepoName;

mod retries;
pub use retries::{Item, Retry};

/// A state database that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bridge state {path}: {detail}")]
pub struct StateError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

/// Where a build is in its life (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// To be forced on Buildbot.
    Starting,
    /// Forced: a build request waits for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// Over: its status and comment are to be posted.
    Reporting,
    /// Nothing left to do.
    Done,
    /// Given up: its report was refused again and again (a dead letter;
    /// `/status` lists it with the reason, in `last_error`).
    Dead,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Queued => "queued",
            Phase::Running => "running",
            Phase::Reporting => "reporting",
            Phase::Done => "done",
            Phase::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "starting" => Phase::Starting,
            "queued" => Phase::Queued,
            "running" => Phase::Running,
            "reporting" => Phase::Reporting,
            "dead" => Phase::Dead,
            _ => Phase::Done,
        }
    }

    /// Queued or running on Buildbot, or about to be.
    pub fn in_flight(self) -> bool {
        matches!(self, Phase::Starting | Phase::Queued | Phase::Running)
    }
}

/// What started a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A `!testme` comment.
    TestMe,
    /// The weekly sweep of the newest release tag.
    Sweep,
}

impl Trigger {
    /// The word Buildbot's `trigger` property takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::TestMe => "testme",
            Trigger::Sweep => "sweep",
        }
    }
}

/// One build the bridge asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRow {
    /// The bridge's id of it.
    pub id: i64,
    /// The repository.
    pub repo: RepoName,
    /// The pull request (0 for a sweep).
    pub pr: u64,
    /// The commit under test.
    pub head_sha: String,
    /// The PR's base branch (empty for a sweep).
    pub base_branch: String,
    /// Where the worker clones from.
    pub clone_url: String,
    /// The ref the worker fetches for the commit (`refs/pull/N/head`), or empty.
    pub fetch_ref: String,
    /// The `!testme` comment, if any.
    pub comment_id: Option<u64>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// `--quick`.
    pub quick: bool,
    /// What started it.
    pub trigger: Trigger,
    /// The run id `ccci test` runs under.
    pub run_id: String,
    /// Where it is.
    pub phase: Phase,
    /// Whether a force was sent (perhaps unanswered).
    pub force_sent: bool,
    /// Failed attempts at forcing it.
    pub attempts: u32,
    /// Unix seconds before which no new attempt is made.
    pub next_attempt_at: f64,
    /// Buildbot's buildset id.
    pub bsid: Option<i64>,
    /// Buildbot's build request id.
    pub brid: Option<i64>,
    /// Buildbot's build id.
    pub buildid: Option<i64>,
    /// The build's builder id.
    pub builderid: Option<i64>,
    /// The build's number.
    pub number: Option<i64>,
    /// The build that replaced this one (a newer `!testme` on the PR).
    pub superseded_by: Option<i64>,
    /// Whether stopping it on Buildbot is still to be done.
    pub cancel_pending: bool,
    /// The last error met, if any.
    pub last_error: Option<String>,
    /// Unix seconds when the comment that asked for it was seen (or the
    /// sweep decided).
    pub created_at: f64,
    /// Unix seconds when Buildbot accepted it.
    pub forced_at: Option<f64>,
    /// Unix seconds when its build started.
    pub started_at: Option<f64>,
    /// Unix seconds when its report was posted.
    pub reported_at: Option<f64>,
}

/// A build to create.
#[derive(Debug, Clone)]
pub struct NewBuild {
    /// The repository.
    pub repo: RepoName,
    /// The pull request (0 for a sweep).
    pub pr: u64,
    /// The commit.
    pub head_sha: String,
    /// The base branch.
    pub base_branch: String,
    /// The clone URL.
    pub clone_url: String,
    /// The ref to fetch.
    pub fetch_ref: String,
    /// The comment.
    pub comment_id: Option<u64>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// `--quick`.
    pub quick: bool,
    /// What started it.
    pub trigger: Trigger,
    /// The run id.
    pub run_id: String,
}

/// The desired commit status of a build, and whether Gitea has it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStatus {
    /// The build.
    pub build: i64,
    /// The repository.
    pub repo: RepoName,
    /// The commit.
    pub sha: String,
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    /// One line.
    pub description: String,
    /// Where to look.
    pub target_url: String,
}

/// The state database.
pub struct State {
    path: PathBuf,
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS comments (
  id INTEGER PRIMARY KEY, repo TEXT NOT NULL, pr INTEGER NOT NULL, author TEXT NOT NULL,
  command TEXT NOT NULL, via TEXT NOT NULL, seen_at REAL NOT NULL,
  outcome TEXT NOT NULL DEFAULT 'pending', build INTEGER);
CREATE TABLE IF NOT EXISTS builds (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  repo TEXT NOT NULL, pr INTEGER NOT NULL, head_sha TEXT NOT NULL, base_branch TEXT NOT NULL,
  clone_url TEXT NOT NULL, fetch_ref TEXT NOT NULL, comment_id INTEGER, requested_by TEXT,
  quick INTEGER NOT NULL, trigger TEXT NOT NULL, run_id TEXT NOT NULL, phase TEXT NOT NULL,
  force_sent INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL DEFAULT 0,
  bsid INTEGER, brid INTEGER, buildid INTEGER, builderid INTEGER, number INTEGER,
  superseded_by INTEGER, cancel_pending INTEGER NOT NULL DEFAULT 0, last_error TEXT,
  created_at REAL NOT NULL, forced_at REAL, started_at REAL, reported_at REAL,
  status_state TEXT, status_description TEXT, status_target TEXT, status_dirty INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS builds_by_pr ON builds (repo, pr, phase);
CREATE TABLE IF NOT EXISTS pr_comments (repo TEXT NOT NULL, pr INTEGER NOT NULL, comment_id INTEGER NOT NULL,
  PRIMARY KEY (repo, pr));
CREATE TABLE IF NOT EXISTS cursors (repo TEXT PRIMARY KEY, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS enrolments (repo TEXT PRIMARY KEY, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps (repo TEXT PRIMARY KEY, last_at REAL NOT NULL);
";

const BUILD_COLUMNS: &str = "id, repo, pr, head_sha, base_branch, clone_url, fetch_ref, comment_id, requested_by, \
quick, trigger, run_id, phase, force_sent, attempts, next_attempt_at, bsid, brid, buildid, builderid, number, \
superseded_by, cancel_pending, last_error, created_at, forced_at, started_at, reported_at";

fn row_to_build(r: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRow> {
    let repo: String = r.get(1)?;
    let trigger: String = r.get(10)?;
    let phase: String = r.get(12)?;
    Ok(BuildRow {
        id: r.get(0)?,
        repo: RepoName::parse(&repo).unwrap_or(RepoName {
            owner: repo.clone(),
            name: String::new(),
        }),
        pr: r.get::<_, i64>(2)? as u64,
        head_sha: r.get(3)?,
        base_branch: r.get(4)?,
        clone_url: r.get(5)?,
        fetch_ref: r.get(6)?,
        comment_id: r.get::<_, Option<i64>>(7)?.map(|x| x as u64),
        requested_by: r.get(8)?,
        quick: r.get::<_, i64>(9)? != 0,
        trigger: if trigger == "sweep" {
            Trigger::Sweep
        } else {
            Trigger::TestMe
        },
        run_id: r.get(11)?,
        phase: Phase::parse(&phase),
        force_sent: r.get::<_, i64>(13)? != 0,
        attempts: r.get::<_, i64>(14)? as u32,
        next_attempt_at: r.get(15)?,
        bsid: r.get(16)?,
        brid: r.get(17)?,
        buildid: r.get(18)?,
        builderid: r.get(19)?,
        number: r.get(20)?,
        superseded_by: r.get(21)?,
        cancel_pending: r.get::<_, i64>(22)? != 0,
        last_error: r.get(23)?,
        created_at: r.get(24)?,
        forced_at: r.get(25)?,
        started_at: r.get(26)?,
        reported_at: r.get(27)?,
    })
}

fn insert_build(db: &Connection, b: &NewBuild) -> rusqlite::Result<i64> {
    db.execute(
        "INSERT INTO builds (repo, pr, head_sha, base_branch, clone_url, fetch_ref, comment_id, requested_by, quick, \
         trigger, run_id, phase, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'starting', ?12)",
        params![
            b.repo.to_string(),
            b.pr as i64,
            b.head_sha,
            b.base_branch,
            b.clone_url,
            b.fetch_ref,
            b.comment_id.map(|x| x as i64),
            b.requested_by,
            b.quick as i64,
            b.trigger.as_str(),
            b.run_id,
            now()
        ],
    )?;
    Ok(db.last_insert_rowid())
}

/// Marks build `?2` superseded by build `?1`: its stop on Buildbot is
/// pending if it got that far; never forced, it is done at once.
const SUPERSEDE: &str = "UPDATE builds SET superseded_by = ?1, \
     cancel_pending = CASE WHEN phase IN ('queued','running') OR force_sent = 1 THEN 1 ELSE 0 END, \
     phase = CASE WHEN phase = 'starting' AND force_sent = 0 THEN 'done' ELSE phase END WHERE id = ?2";

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What claiming a comment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First sight: this caller handles it.
    New,
    /// Seen before (by the other trigger, or an earlier poll).
    Seen,
}

/// A comment claimed but whose handling did not finish (the bridge stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingComment {
    /// The comment.
    pub id: u64,
    /// The repository.
    pub repo: RepoName,
    /// The pull request.
    pub pr: u64,
    /// The author.
    pub author: String,
    /// What the comment asked, as [`crate::trigger::command::Parsed`] kept it:
    /// `!testme`, `!testme --quick`, or `malformed: <why>`.
    pub command: String,
}

impl State {
    /// Opens (creating if needed) the database at `path`, and records the
    /// bridge's first start if this is it.
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be opened or made.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let err = |detail: String| StateError {
            path: path.into(),
            detail,
        };
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| err(format!("cannot create {}: {e}", d.display())))?;
        }
        let db = Connection::open(path).map_err(|e| err(e.to_string()))?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err(e.to_string()))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(e.to_string()))?;
        db.execute_batch(SCHEMA)
            .and_then(|()| db.execute_batch(retries::SCHEMA))
            .map_err(|e| err(format!("{e} (is this a bridge state database?)")))?;
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start', ?1)",
            params![now().to_string()],
        )
        .map_err(|e| err(e.to_string()))?;
        Ok(State {
            path: path.into(),
            db: Mutex::new(db),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StateError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&db).map_err(|e| StateError {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }

    /// Moves the first start to `at` (unix seconds, Gitea's clock) if this
    /// is the first start: the database was made within the last minute
    /// and no comment was claimed yet. Comments are stamped by Gitea's
    /// clock; a first start on a host whose clock runs ahead would
    /// otherwise ignore the comments of its first minutes.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn first_start_on_giteas_clock(&self, at: f64) -> Result<(), StateError> {
        self.with(|db| {
            db.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'first_start' AND CAST(value AS REAL) > ?2 \
                 AND NOT EXISTS (SELECT 1 FROM comments)",
                params![at.to_string(), now() - 60.0],
            )
            .map(|_| ())
        })
    }

    /// Unix seconds of the bridge's first start (comments older are never read).
    ///
    /// # Errors
    /// [`StateError`].
    pub fn first_start(&self) -> Result<f64, StateError> {
        self.with(|db| {
            let v: String = db.query_row("SELECT value FROM meta WHERE key = 'first_start'", [], |r| r.get(0))?;
            Ok(v.parse().unwrap_or(0.0))
        })
    }

    /// Claims comment `id` for handling: [`Claim::New`] exactly once, however
    /// many triggers (poll, webhook) see it.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn claim_comment(
        &self,
        id: u64,
        repo: &RepoName,
        pr: u64,
        author: &str,
        command: &str,
        via: &str,
    ) -> Result<Claim, StateError> {
        self.with(|db| {
            let n = db.execute(
                "INSERT OR IGNORE INTO comments (id, repo, pr, author, command, via, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id as i64, repo.to_string(), pr as i64, author, command, via, now()],
            )?;
            Ok(if n == 1 { Claim::New } else { Claim::Seen })
        })
    }

    /// Records how a claimed comment ended (`started build 3`, `not a member` ...).
    ///
    /// # Errors
    /// [`StateError`].
    pub fn comment_outcome(&self, id: u64, outcome: &str, build: Option<i64>) -> Result<(), StateError> {
        self.with(|db| {
            db.execute(
                "UPDATE comments SET outcome = ?2, build = ?3 WHERE id = ?1",
                params![id as i64, outcome, build],
            )
            .map(|_| ())
        })
    }

    /// A comment's outcome, if it was claimed.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn comment(&self, id: u64) -> Result<Option<String>, StateError> {
        self.with(|db| {
            db.query_row("SELECT outcome FROM comments WHERE id = ?1", params![id as i64], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// Comments claimed whose handling never finished.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn pending_comments(&self) -> Result<Vec<PendingComment>, StateError> {
        self.with(|db| {
            let mut st =
                db.prepare("SELECT id, repo, pr, author, command FROM comments WHERE outcome = 'pending' ORDER BY id")?;
            let rows = st.query_map([], |r| {
                let repo: String = r.get(1)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    repo,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, repo, pr, author, command) = row?;
                if let Some(repo) = RepoName::parse(&repo) {
                    out.push(PendingComment {
                        id: id as u64,
                        repo,
                        pr: pr as u64,
                        author,
                        command,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Inserts a build in phase `starting`; returns its id.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn insert_build(&self, b: &NewBuild) -> Result<i64, StateError> {
        self.with(|db| insert_build(db, b))
    }

    /// Inserts build `b` (phase `starting`) and marks each of `old` (id,
    /// status description, status target) superseded by it, with that
    /// `error` status to post, in one transaction: a crash leaves either
    /// all of it or none, never two live builds for one PR. Returns the
    /// new build's id.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn insert_build_superseding(&self, b: &NewBuild, old: &[(i64, String, String)]) -> Result<i64, StateError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let err = |e: rusqlite::Error| StateError {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let tx = db.transaction().map_err(err)?;
        let id = insert_build(&tx, b).map_err(err)?;
        for (o, description, target) in old {
            tx.execute(SUPERSEDE, params![id, o]).map_err(err)?;
            tx.execute(
                "UPDATE builds SET status_state = 'error', status_description = ?1, status_target = ?2, \
                 status_dirty = 1 WHERE id = ?3",
                params![description, target, o],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Whether a build of this bridge has had run id `id`.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn run_id_used(&self, id: &str) -> Result<bool, StateError> {
        self.with(|db| {
            db.query_row("SELECT 1 FROM builds WHERE run_id = ?1", params![id], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
        })
    }

    /// One build.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn build(&self, id: i64) -> Result<Option<BuildRow>, StateError> {
        self.with(|db| {
            db.query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                params![id],
                row_to_build,
            )
            .optional()
        })
    }

    fn builds_where(&self, clause: &str, p: impl rusqlite::Params) -> Result<Vec<BuildRow>, StateError> {
        self.with(|db| {
            let mut st = db.prepare(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds WHERE {clause} ORDER BY id"
            ))?;
            let rows = st.query_map(p, row_to_build)?;
            rows.collect()
        })
    }

    /// Builds in these phases, oldest first.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn builds_in(&self, phases: &[Phase]) -> Result<Vec<BuildRow>, StateError> {
        let list = phases
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        self.builds_where(&format!("phase IN ({list})"), [])
    }

    /// Every build, oldest first.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn all_builds(&self) -> Result<Vec<BuildRow>, StateError> {
        self.builds_where("1 = 1", [])
    }

    /// Every `!testme` build of a PR, newest first (the comment's history).
    ///
    /// # Errors
    /// [`StateError`].
    pub fn builds_of_pr(&self, repo: &RepoName, pr: u64) -> Result<Vec<BuildRow>, StateError> {
        let mut rows = self.builds_where(
            "repo = ?1 AND pr = ?2 AND trigger = 'testme'",
            params![repo.to_string(), pr as i64],
        )?;
        rows.sort_by_key(|b| std::cmp::Reverse(b.id));
        Ok(rows)
    }

    /// The builds of a PR still in flight (starting, queued, running) and not superseded.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn in_flight_for(&self, repo: &RepoName, pr: u64) -> Result<Vec<BuildRow>, StateError> {
        self.builds_where(
            "repo = ?1 AND pr = ?2 AND phase IN ('starting','queued','running') AND superseded_by IS NULL",
            params![repo.to_string(), pr as i64],
        )
    }

    /// Builds superseded whose stop on Buildbot is still to be done.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn cancels_pending(&self) -> Result<Vec<BuildRow>, StateError> {
        self.builds_where("cancel_pending = 1", [])
    }

    fn update(&self, id: i64, set: &str, p: &[&dyn rusqlite::ToSql]) -> Result<(), StateError> {
        let mut all: Vec<&dyn rusqlite::ToSql> = p.to_vec();
        all.push(&id);
        let n = all.len();
        self.with(|db| {
            db.execute(&format!("UPDATE builds SET {set} WHERE id = ?{n}"), all.as_slice())
                .map(|_| ())
        })
    }

    /// Notes that a force is about to be sent.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn force_sent(&self, id: i64) -> Result<(), StateError> {
        self.update(id, "force_sent = 1", &[])
    }

    /// Buildbot took the build: its buildset and build request.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn queued(&self, id: i64, bsid: i64, brid: i64) -> Result<(), StateError> {
        self.update(
            id,
            "phase = CASE WHEN phase = 'starting' THEN 'queued' ELSE phase END, bsid = ?1, brid = ?2, forced_at = ?3, last_error = NULL",
            &[&bsid, &brid, &now()],
        )
    }

    /// A force failed: try again no sooner than `retry_at`.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn force_failed(&self, id: i64, error: &str, retry_at: f64) -> Result<(), StateError> {
        self.update(
            id,
            "attempts = attempts + 1, last_error = ?1, next_attempt_at = ?2",
            &[&error, &retry_at],
        )
    }

    /// A build exists for the request.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn running(&self, id: i64, buildid: i64, builderid: i64, number: i64) -> Result<(), StateError> {
        self.update(
            id,
            "phase = CASE WHEN phase IN ('starting','queued') THEN 'running' ELSE phase END, buildid = ?1, builderid = ?2, \
             number = ?3, started_at = COALESCE(started_at, ?4)",
            &[&buildid, &builderid, &number, &now()],
        )
    }

    /// Moves a build to `phase`.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn set_phase(&self, id: i64, phase: Phase) -> Result<(), StateError> {
        let reported = (phase == Phase::Done).then(now);
        self.update(
            id,
            "phase = ?1, reported_at = COALESCE(reported_at, ?2)",
            &[&phase.as_str(), &reported],
        )
    }

    /// Records the last error met on a build.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn note_error(&self, id: i64, error: &str) -> Result<(), StateError> {
        self.update(id, "last_error = ?1", &[&error])
    }

    /// The stop of a superseded build was done.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn cancel_done(&self, id: i64) -> Result<(), StateError> {
        self.update(id, "cancel_pending = 0", &[])
    }

    /// Sets the commit status a build should have, to be posted.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn want_status(&self, id: i64, state: &str, description: &str, target: &str) -> Result<(), StateError> {
        self.update(
            id,
            "status_state = ?1, status_description = ?2, status_target = ?3, status_dirty = 1",
            &[&state, &description, &target],
        )
    }

    /// Statuses not yet posted.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn dirty_statuses(&self) -> Result<Vec<PendingStatus>, StateError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT id, repo, head_sha, status_state, status_description, status_target FROM builds WHERE status_dirty = 1 ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                let repo: String = r.get(1)?;
                Ok(PendingStatus {
                    build: r.get(0)?,
                    repo: RepoName::parse(&repo).unwrap_or(RepoName {
                        owner: repo,
                        name: String::new(),
                    }),
                    sha: r.get(2)?,
                    state: r.get(3)?,
                    description: r.get(4)?,
                    target_url: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// A status was posted; it is clean unless it changed since it was read.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn status_posted(&self, s: &PendingStatus) -> Result<(), StateError> {
        self.with(|db| {
            db.execute(
                "UPDATE builds SET status_dirty = 0 WHERE id = ?1 AND status_state = ?2 AND status_description = ?3 AND status_target = ?4",
                params![s.build, s.state, s.description, s.target_url],
            )
            .map(|_| ())
        })
    }

    /// The bridge's comment on a PR, if it made one.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn pr_comment(&self, repo: &RepoName, pr: u64) -> Result<Option<u64>, StateError> {
        self.with(|db| {
            db.query_row(
                "SELECT comment_id FROM pr_comments WHERE repo = ?1 AND pr = ?2",
                params![repo.to_string(), pr as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(|x| x as u64))
        })
    }

    /// Records (or forgets, with `None`) the bridge's comment on a PR.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn set_pr_comment(&self, repo: &RepoName, pr: u64, id: Option<u64>) -> Result<(), StateError> {
        self.with(|db| {
            match id {
                Some(id) => db.execute(
                    "INSERT INTO pr_comments (repo, pr, comment_id) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (repo, pr) DO UPDATE SET comment_id = excluded.comment_id",
                    params![repo.to_string(), pr as i64, id as i64],
                ),
                None => db.execute(
                    "DELETE FROM pr_comments WHERE repo = ?1 AND pr = ?2",
                    params![repo.to_string(), pr as i64],
                ),
            }
            .map(|_| ())
        })
    }

    /// When `repo` was enrolled (unix seconds): `at` if this is the first
    /// time it is asked (the first start of a bridge with the repository in
    /// its `repos`), else the time recorded then. Comments older than it are
    /// never read.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn enrol(&self, repo: &RepoName, at: f64) -> Result<f64, StateError> {
        self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO enrolments (repo, since) VALUES (?1, ?2)",
                params![repo.to_string(), at],
            )?;
            db.query_row(
                "SELECT since FROM enrolments WHERE repo = ?1",
                params![repo.to_string()],
                |r| r.get(0),
            )
        })
    }

    /// The poll cursor of a repository (unix seconds), if it was polled.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn cursor(&self, repo: &RepoName) -> Result<Option<f64>, StateError> {
        self.with(|db| {
            db.query_row(
                "SELECT since FROM cursors WHERE repo = ?1",
                params![repo.to_string()],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Moves a repository's poll cursor.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn set_cursor(&self, repo: &RepoName, since: f64) -> Result<(), StateError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO cursors (repo, since) VALUES (?1, ?2) ON CONFLICT (repo) DO UPDATE SET since = excluded.since",
                params![repo.to_string(), since],
            )
            .map(|_| ())
        })
    }

    /// When the repository was last swept (unix seconds).
    ///
    /// # Errors
    /// [`StateError`].
    pub fn last_sweep(&self, repo: &RepoName) -> Result<Option<f64>, StateError> {
        self.with(|db| {
            db.query_row(
                "SELECT last_at FROM sweeps WHERE repo = ?1",
                params![repo.to_string()],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records a sweep of the repository.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn swept(&self, repo: &RepoName, at: f64) -> Result<(), StateError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO sweeps (repo, last_at) VALUES (?1, ?2) ON CONFLICT (repo) DO UPDATE SET last_at = excluded.last_at",
                params![repo.to_string(), at],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> RepoName {
        RepoName::parse("recipes/static-site").unwrap()
    }

    fn new_build(sha: &str) -> NewBuild {
        NewBuild {
            repo: repo(),
            pr: 1,
            head_sha: sha.into(),
            base_branch: "main".into(),
            clone_url: "http://x/recipes/static-site.git".into(),
            fetch_ref: "refs/pull/1/head".into(),
            comment_id: Some(7),
            requested_by: Some("m".into()),
            quick: false,
            trigger: Trigger::TestMe,
            run_id: "abc123".into(),
        }
    }

    #[test]
    fn a_comment_is_claimed_once_and_survives_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s/state.sqlite");
        let s = State::open(&p).unwrap();
        let first = s.first_start().unwrap();
        assert_eq!(
            s.claim_comment(7, &repo(), 1, "m", "!testme", "poll").unwrap(),
            Claim::New
        );
        assert_eq!(
            s.claim_comment(7, &repo(), 1, "m", "!testme", "webhook").unwrap(),
            Claim::Seen
        );
        assert_eq!(s.pending_comments().unwrap().len(), 1);
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.first_start().unwrap(), first, "the first start stays the first");
        assert_eq!(
            s.claim_comment(7, &repo(), 1, "m", "!testme", "webhook").unwrap(),
            Claim::Seen
        );
        s.comment_outcome(7, "not a member", None).unwrap();
        assert!(s.pending_comments().unwrap().is_empty());
        assert_eq!(s.comment(7).unwrap().as_deref(), Some("not a member"));
    }

    #[test]
    fn a_repository_keeps_the_time_it_was_first_enrolled() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.sqlite");
        let s = State::open(&p).unwrap();
        assert_eq!(s.enrol(&repo(), 100.0).unwrap(), 100.0);
        assert_eq!(s.enrol(&repo(), 200.0).unwrap(), 100.0, "asked again");
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.enrol(&repo(), 300.0).unwrap(), 100.0, "after a restart");
    }

    #[test]
    fn a_build_goes_through_its_phases_and_a_newer_one_supersedes_it() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let a = s.insert_build(&new_build(&"a".repeat(40))).unwrap();
        assert_eq!(s.in_flight_for(&repo(), 1).unwrap().len(), 1);
        s.force_sent(a).unwrap();
        s.queued(a, 10, 11).unwrap();
        s.running(a, 12, 1, 3).unwrap();
        let row = s.build(a).unwrap().unwrap();
        assert_eq!(
            (row.phase, row.brid, row.buildid, row.number),
            (Phase::Running, Some(11), Some(12), Some(3))
        );
        let old = |id| vec![(id, "cancelled: superseded".to_string(), "http://bb/".to_string())];
        let mut nb = new_build(&"b".repeat(40));
        nb.run_id = "bbb111".into();
        let b = s.insert_build_superseding(&nb, &old(a)).unwrap();
        let row = s.build(a).unwrap().unwrap();
        assert_eq!(row.superseded_by, Some(b));
        assert!(row.cancel_pending);
        let flying: Vec<i64> = s.in_flight_for(&repo(), 1).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(flying, vec![b]);
        // Never forced: superseding it ends it at once.
        let mut nc = new_build(&"c".repeat(40));
        nc.run_id = "ccc222".into();
        s.insert_build_superseding(&nc, &old(b)).unwrap();
        let row = s.build(b).unwrap().unwrap();
        assert_eq!((row.phase, row.cancel_pending), (Phase::Done, false));
        assert_eq!(s.cancels_pending().unwrap().len(), 1);
    }

    #[test]
    fn a_new_build_and_the_older_ones_it_supersedes_are_one_transaction() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let a = s.insert_build(&new_build(&"a".repeat(40))).unwrap();
        s.force_sent(a).unwrap();
        s.queued(a, 10, 11).unwrap();
        // A failure inside the transaction (an old build's status cannot be
        // written: here a trigger refuses it) leaves neither the new build
        // nor the supersede.
        s.with(|db| {
            db.execute_batch(
                "CREATE TRIGGER refuse BEFORE UPDATE OF status_state ON builds BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
        })
        .unwrap();
        let old = vec![(a, "cancelled: superseded".to_string(), "http://bb/".to_string())];
        let mut b = new_build(&"b".repeat(40));
        b.run_id = "def456".into();
        assert!(s.insert_build_superseding(&b, &old).is_err());
        let rows = s.all_builds().unwrap();
        assert_eq!(rows.len(), 1, "no new build without its supersede");
        assert_eq!(rows[0].superseded_by, None);
        s.with(|db| db.execute_batch("DROP TRIGGER refuse")).unwrap();
        let id = s.insert_build_superseding(&b, &old).unwrap();
        let flying: Vec<i64> = s.in_flight_for(&repo(), 1).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(flying, vec![id], "one live build for the PR");
        let st = s.dirty_statuses().unwrap();
        assert!(st
            .iter()
            .any(|x| x.build == a && x.state == "error" && x.description.contains("superseded")));
        assert!(s.run_id_used("def456").unwrap() && !s.run_id_used("000000").unwrap());
    }

    #[test]
    fn statuses_stay_dirty_until_the_latest_is_posted() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let a = s.insert_build(&new_build(&"a".repeat(40))).unwrap();
        s.want_status(a, "pending", "queued", "http://bb/").unwrap();
        let got = s.dirty_statuses().unwrap();
        assert_eq!(got.len(), 1);
        s.want_status(a, "success", "level 7 (exemplary)", "http://bb/")
            .unwrap();
        s.status_posted(&got[0]).unwrap();
        let again = s.dirty_statuses().unwrap();
        assert_eq!(again[0].state, "success", "a newer status is not lost");
        s.status_posted(&again[0]).unwrap();
        assert!(s.dirty_statuses().unwrap().is_empty());
    }

    #[test]
    fn a_broken_database_names_its_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.sqlite");
        std::fs::write(
            &p,
            "this is not sqlite, it is long enough to be read as a header, really",
        )
        .unwrap();
        let e = State::open(&p).err().unwrap().to_string();
        assert!(e.contains("state.sqlite"), "{e}");
    }
}
