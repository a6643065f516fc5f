//! The retry record of each item the bridge retries (see [`crate::retry`]):
//! how many times in a row it failed, how many of those were refusals, when
//! to try again, the last error, and whether it was given up (a dead
//! letter). A success forgets the record.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, State, StateError};
use crate::retry::{self, Kind, Next};

/// A piece of work retried on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// Following build `id` on Buildbot.
    Follow(i64),
    /// Reporting build `id` (status and comment).
    Report(i64),
    /// Stopping superseded build `id` on Buildbot.
    Cancel(i64),
    /// Posting build `id`'s commit status.
    Status(i64),
    /// Handling claimed comment `id`.
    Comment(u64),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Follow(id) => write!(f, "follow build {id}"),
            Item::Report(id) => write!(f, "report build {id}"),
            Item::Cancel(id) => write!(f, "stop build {id}"),
            Item::Status(id) => write!(f, "status of build {id}"),
            Item::Comment(id) => write!(f, "comment {id}"),
        }
    }
}

/// One item's retry record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// The item (`report build 12`, `comment 9876`, ...).
    pub item: String,
    /// Failures in a row.
    pub failures: u32,
    /// Of which permanent (refusals).
    pub refusals: u32,
    /// The last failure's kind: `transient` or `permanent`.
    pub kind: String,
    /// The last error.
    pub last_error: String,
    /// Unix seconds before which it is not tried again.
    pub next_at: f64,
    /// Given up: a dead letter.
    pub dead: bool,
    /// Unix seconds of the last failure.
    pub updated_at: f64,
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retries (
  item TEXT PRIMARY KEY, failures INTEGER NOT NULL, refusals INTEGER NOT NULL, kind TEXT NOT NULL,
  last_error TEXT NOT NULL, next_at REAL NOT NULL, dead INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Retry> {
    Ok(Retry {
        item: r.get(0)?,
        failures: r.get::<_, i64>(1)? as u32,
        refusals: r.get::<_, i64>(2)? as u32,
        kind: r.get(3)?,
        last_error: r.get(4)?,
        next_at: r.get(5)?,
        dead: r.get::<_, i64>(6)? != 0,
        updated_at: r.get(7)?,
    })
}

const COLUMNS: &str = "item, failures, refusals, kind, last_error, next_at, dead, updated_at";

impl State {
    /// Whether `item` may be tried now: it has no record, or its wait is
    /// over and it was not given up.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn due(&self, item: Item) -> Result<bool, StateError> {
        Ok(self.retry(item)?.is_none_or(|r| !r.dead && r.next_at <= now()))
    }

    /// `item`'s retry record, if it failed since it last worked.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn retry(&self, item: Item) -> Result<Option<Retry>, StateError> {
        self.with(|db| {
            db.query_row(
                &format!("SELECT {COLUMNS} FROM retries WHERE item = ?1"),
                params![item.to_string()],
                row,
            )
            .optional()
        })
    }

    /// Records a failure of `item` and says what comes next
    /// ([`retry::next`]): a wait, or giving it up (then it is a dead letter
    /// and [`State::due`] is false for good).
    ///
    /// # Errors
    /// [`StateError`].
    pub fn failed(&self, item: Item, kind: Kind, error: &str) -> Result<Next, StateError> {
        let before = self.retry(item)?;
        let failures = before.as_ref().map_or(0, |r| r.failures) + 1;
        let refusals = before.as_ref().map_or(0, |r| r.refusals) + u32::from(kind == Kind::Permanent);
        let next = retry::next(kind, failures, refusals, error);
        let (next_at, dead) = match &next {
            Next::RetryIn(d) => (now() + d.as_secs_f64(), false),
            Next::GiveUp(_) => (f64::MAX, true),
        };
        self.with(|db| {
            db.execute(
                "INSERT INTO retries (item, failures, refusals, kind, last_error, next_at, dead, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (item) DO UPDATE SET failures = excluded.failures, \
                 refusals = excluded.refusals, kind = excluded.kind, last_error = excluded.last_error, \
                 next_at = excluded.next_at, dead = excluded.dead, updated_at = excluded.updated_at",
                params![
                    item.to_string(),
                    failures,
                    refusals,
                    kind.as_str(),
                    error,
                    next_at,
                    dead as i64,
                    now()
                ],
            )
            .map(|_| ())
        })?;
        Ok(next)
    }

    /// `item` worked: its record is forgotten.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn succeeded(&self, item: Item) -> Result<(), StateError> {
        self.with(|db| {
            db.execute("DELETE FROM retries WHERE item = ?1", params![item.to_string()])
                .map(|_| ())
        })
    }

    /// Makes every waiting item due now; dead letters stay given up. What
    /// an operator wants once what failed is fixed (and a test's way past
    /// the backoff). Returns how many items were waiting.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn retry_now(&self) -> Result<usize, StateError> {
        self.with(|db| db.execute("UPDATE retries SET next_at = 0 WHERE dead = 0", []))
    }

    /// Every record: items failing now (`dead` false) and dead letters.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn retries(&self) -> Result<Vec<Retry>, StateError> {
        self.with(|db| {
            let mut st = db.prepare(&format!("SELECT {COLUMNS} FROM retries ORDER BY updated_at"))?;
            let rows = st.query_map([], row)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_failures_wait_and_a_refused_one_is_given_up_while_others_go_on() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let stuck = Item::Report(1);
        let other = Item::Report(2);
        assert!(s.due(stuck).unwrap());
        let n = s.failed(stuck, Kind::Permanent, "423 Locked: archived").unwrap();
        assert!(matches!(n, Next::RetryIn(_)), "{n:?}");
        assert!(!s.due(stuck).unwrap(), "it waits after a failure");
        assert!(s.due(other).unwrap(), "another item does not wait for it");
        for _ in 1..retry::GIVE_UP_AFTER - 1 {
            s.failed(stuck, Kind::Permanent, "423 Locked: archived").unwrap();
        }
        let n = s.failed(stuck, Kind::Permanent, "423 Locked: archived").unwrap();
        assert!(matches!(&n, Next::GiveUp(w) if w.contains("423")), "{n:?}");
        let dead: Vec<_> = s.retries().unwrap().into_iter().filter(|r| r.dead).collect();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].item, "report build 1");
        assert!(!s.due(stuck).unwrap());
        s.failed(other, Kind::Transient, "503").unwrap();
        s.succeeded(other).unwrap();
        assert!(s.due(other).unwrap(), "a success forgets the failures");
    }

    #[test]
    fn transient_failures_do_not_count_towards_giving_up() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state.sqlite")).unwrap();
        let item = Item::Status(3);
        for _ in 0..20 {
            assert!(matches!(
                s.failed(item, Kind::Transient, "Gitea unreachable").unwrap(),
                Next::RetryIn(_)
            ));
        }
        let r = s.retry(item).unwrap().unwrap();
        assert_eq!((r.failures, r.refusals, r.dead), (20, 0, false));
    }
}
