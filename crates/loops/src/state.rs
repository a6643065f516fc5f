//! What the supervisor remembers across restarts, in SQLite at
//! `<workspace>/state.sqlite`: the phase, the last origin SHA seen, each
//! agent's conversation and pane activity, one-shot jobs, and an event log.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// A state-store error.
#[derive(Debug, thiserror::Error)]
#[error("loops state {path}: {source}")]
pub struct StateError {
    /// The database file.
    pub path: String,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
}

/// One agent's remembered state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentState {
    /// The conversation (session) id the agent's backend resumes.
    pub conversation: Option<String>,
    /// Restarts done by the watchdog.
    pub restarts: u32,
    /// sha256 hex of the pane's last captured text.
    pub pane_hash: Option<String>,
    /// When the pane last changed, Unix milliseconds.
    pub pane_changed_ms: i64,
}

/// One one-shot job's remembered state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobState {
    /// Prompt file.
    pub prompt: String,
    /// Working directory.
    pub clone: String,
    /// Conversation id.
    pub conversation: Option<String>,
    /// Resumes done for the current attempt.
    pub resumes: u32,
    /// Fresh restarts the supervisor did after the job's watchdog gave up.
    pub takeovers: u32,
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Kind: `start`, `restart`, `heal`, `stall`, `ping`, `phase`, `done`, `job-resume`, ...
    pub kind: String,
    /// Agent or job it concerns.
    pub subject: String,
    /// Free text.
    pub detail: String,
}

/// The state database.
pub struct State {
    conn: Connection,
    path: String,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl State {
    /// Opens (creating if needed) the state database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be created.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let p = path.display().to_string();
        let wrap = |source| StateError {
            path: p.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS agents (
                name TEXT PRIMARY KEY, conversation TEXT, restarts INTEGER NOT NULL DEFAULT 0,
                pane_hash TEXT, pane_changed_ms INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS jobs (
                name TEXT PRIMARY KEY, prompt TEXT NOT NULL, clone TEXT NOT NULL, conversation TEXT,
                resumes INTEGER NOT NULL DEFAULT 0, takeovers INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
                subject TEXT NOT NULL, detail TEXT NOT NULL);",
        )
        .map_err(wrap)?;
        Ok(State { conn, path: p })
    }

    fn wrap(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// A meta value.
    ///
    /// # Errors
    /// On database failure.
    pub fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Sets a meta value.
    ///
    /// # Errors
    /// On database failure.
    pub fn set(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Adds `by` to the integer meta value `key` (missing counts as 0).
    ///
    /// # Errors
    /// On database failure.
    pub fn bump(&self, key: &str, by: i64) -> Result<i64, StateError> {
        let v = self.get(key)?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + by;
        self.set(key, &v.to_string())?;
        Ok(v)
    }

    /// The index of the current phase (0 when none was saved).
    ///
    /// # Errors
    /// On database failure.
    pub fn phase(&self) -> Result<usize, StateError> {
        Ok(self.get("phase")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// An agent's state (default when never seen).
    ///
    /// # Errors
    /// On database failure.
    pub fn agent(&self, name: &str) -> Result<AgentState, StateError> {
        self.conn
            .query_row(
                "SELECT conversation, restarts, pane_hash, pane_changed_ms FROM agents WHERE name = ?1",
                [name],
                |r| {
                    Ok(AgentState {
                        conversation: r.get(0)?,
                        restarts: r.get(1)?,
                        pane_hash: r.get(2)?,
                        pane_changed_ms: r.get(3)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.wrap(e))
    }

    /// Saves an agent's state.
    ///
    /// # Errors
    /// On database failure.
    pub fn put_agent(&self, name: &str, a: &AgentState) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO agents (name, conversation, restarts, pane_hash, pane_changed_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET conversation = excluded.conversation,
                   restarts = excluded.restarts, pane_hash = excluded.pane_hash,
                   pane_changed_ms = excluded.pane_changed_ms",
                params![name, a.conversation, a.restarts, a.pane_hash, a.pane_changed_ms],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// A job's state, if the job exists.
    ///
    /// # Errors
    /// On database failure.
    pub fn job(&self, name: &str) -> Result<Option<JobState>, StateError> {
        self.conn
            .query_row(
                "SELECT prompt, clone, conversation, resumes, takeovers FROM jobs WHERE name = ?1",
                [name],
                |r| {
                    Ok(JobState {
                        prompt: r.get(0)?,
                        clone: r.get(1)?,
                        conversation: r.get(2)?,
                        resumes: r.get(3)?,
                        takeovers: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Saves a job's state.
    ///
    /// # Errors
    /// On database failure.
    pub fn put_job(&self, name: &str, j: &JobState) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO jobs (name, prompt, clone, conversation, resumes, takeovers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET prompt = excluded.prompt, clone = excluded.clone,
                   conversation = excluded.conversation, resumes = excluded.resumes,
                   takeovers = excluded.takeovers",
                params![name, j.prompt, j.clone, j.conversation, j.resumes, j.takeovers],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Names of all jobs.
    ///
    /// # Errors
    /// On database failure.
    pub fn job_names(&self) -> Result<Vec<String>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM jobs ORDER BY name")
            .map_err(|e| self.wrap(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }

    /// Logs an event.
    ///
    /// # Errors
    /// On database failure.
    pub fn event(&self, kind: &str, subject: &str, detail: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO events (at_ms, kind, subject, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms(), kind, subject, detail],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// All events, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub fn events(&self) -> Result<Vec<Event>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT at_ms, kind, subject, detail FROM events ORDER BY id")
            .map_err(|e| self.wrap(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Event {
                    at_ms: r.get(0)?,
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sqlite");
        {
            let s = State::open(&p).unwrap();
            s.set("phase", "2").unwrap();
            assert_eq!(s.bump("ticks", 3).unwrap(), 3);
            let a = AgentState {
                conversation: Some("c".into()),
                restarts: 4,
                pane_hash: None,
                pane_changed_ms: 9,
            };
            s.put_agent("builder", &a).unwrap();
            s.event("ping", "builder", "x").unwrap();
        }
        let s = State::open(&p).unwrap();
        assert_eq!(s.phase().unwrap(), 2);
        assert_eq!(s.bump("ticks", 1).unwrap(), 4);
        assert_eq!(s.agent("builder").unwrap().restarts, 4);
        assert_eq!(s.agent("nobody").unwrap(), AgentState::default());
        assert_eq!(s.events().unwrap().len(), 1);
    }
}
