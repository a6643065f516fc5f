//! Which state dir owns a test app's stack, so that a janitor reaps only
//! its own: several state dirs may share one Docker engine (two CI
//! checkouts, a test suite's temporary state dirs beside the host's), and
//! a janitor sees only its own state dir's leases.
//!
//! Each state dir has an id, drawn once and kept in [`OWNER_FILE`]. The
//! native deployer puts it on every service of the app it deploys, as the
//! deploy labels [`OWNER_LABEL`] (the id) and [`OWNER_DIR_LABEL`] (the state
//! dir), and the janitor reads them back ([`Ownership::of`]): a stack is
//! its own when its services carry its id; another's when they carry
//! another id whose state dir still holds that id; an orphan, which any
//! janitor may reap, when that state dir is gone or holds another id (no
//! lease can be held in a state dir that no longer exists).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file in a state dir holding its id.
pub const OWNER_FILE: &str = "owner-id";
/// The deploy label naming the owning state dir's id.
pub const OWNER_LABEL: &str = "cc-ci.owner";
/// The deploy label naming the owning state dir's path.
pub const OWNER_DIR_LABEL: &str = "cc-ci.owner-dir";

/// A state dir's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// 16 lowercase hex digits.
    pub id: String,
    /// The state dir, absolute.
    pub dir: PathBuf,
}

fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Owner {
    /// The owner of `state_dir`, its id drawn and written (temporary file,
    /// then a link that never replaces an existing file, so concurrent
    /// first runs agree on one id) if it has none yet.
    ///
    /// # Errors
    /// The I/O error, with the path, when the state dir cannot be created
    /// or the file cannot be read or written, or holds no id.
    pub fn of(state_dir: &Path) -> std::io::Result<Owner> {
        let ctx = |p: &Path, e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        std::fs::create_dir_all(state_dir).map_err(|e| ctx(state_dir, e))?;
        if let Some(o) = Owner::existing(state_dir)? {
            return Ok(o);
        }
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(state_dir).map_err(|e| ctx(state_dir, e))?;
        tmp.write_all(format!("{}\n", hex::encode(random)).as_bytes())?;
        let path = state_dir.join(OWNER_FILE);
        match tmp.persist_noclobber(&path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ctx(&path, e.error)),
        }
        Owner::existing(state_dir)?
            .ok_or_else(|| std::io::Error::other(format!("{}: holds no owner id; remove it", path.display())))
    }

    /// The owner of `state_dir` if it has an id already (nothing is created).
    ///
    /// # Errors
    /// When [`OWNER_FILE`] exists and cannot be read or holds no id.
    pub fn existing(state_dir: &Path) -> std::io::Result<Option<Owner>> {
        let path = state_dir.join(OWNER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let id = text.trim();
        if !valid_id(id) {
            return Err(std::io::Error::other(format!(
                "{}: {id:?} is not an owner id (16 hex digits); remove the file and a new id is drawn",
                path.display()
            )));
        }
        let dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        Ok(Some(Owner { id: id.into(), dir }))
    }

    /// The deploy labels that mark a service as this owner's.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER_LABEL.to_string(), self.id.clone()),
            (OWNER_DIR_LABEL.to_string(), self.dir.display().to_string()),
        ])
    }
}

/// Whose a stack is, from its services' labels, as seen by the janitor of
/// state dir `me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Its services carry `me`'s id.
    Mine,
    /// They carry another owner's id, and that owner's state dir still
    /// holds it: that owner's janitor reaps it.
    Theirs {
        /// The other state dir.
        dir: String,
    },
    /// They carry another owner's id whose state dir is gone or holds
    /// another id: nobody else will reap it.
    Orphaned {
        /// The state dir it names.
        dir: String,
    },
    /// No service carries an owner label (no services left, or deployed by
    /// the abra deployer, or by a cc-ci before owner labels).
    Unlabelled,
}

impl Ownership {
    /// The ownership of a stack whose services have `labels` (one map per
    /// service), for `me` (None: this state dir has no id yet).
    pub fn of<'a>(labels: impl IntoIterator<Item = &'a HashMap<String, String>>, me: Option<&Owner>) -> Ownership {
        let mut other = None;
        for l in labels {
            let Some(id) = l.get(OWNER_LABEL) else { continue };
            if me.is_some_and(|m| &m.id == id) {
                return Ownership::Mine;
            }
            other = Some((id.clone(), l.get(OWNER_DIR_LABEL).cloned().unwrap_or_default()));
        }
        match other {
            None => Ownership::Unlabelled,
            Some((id, dir)) => {
                let alive = !dir.is_empty() && matches!(Owner::existing(Path::new(&dir)), Ok(Some(o)) if o.id == id);
                if alive {
                    Ownership::Theirs { dir }
                } else {
                    Ownership::Orphaned { dir }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_keeps_one_id() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("state");
        assert_eq!(Owner::existing(&s).unwrap(), None);
        let a = Owner::of(&s).unwrap();
        let b = Owner::of(&s).unwrap();
        assert_eq!(a, b);
        assert!(valid_id(&a.id));
        let other = Owner::of(&d.path().join("other")).unwrap();
        assert_ne!(a.id, other.id);
        std::fs::write(s.join(OWNER_FILE), "nonsense\n").unwrap();
        let e = Owner::existing(&s).unwrap_err().to_string();
        assert!(e.contains("owner-id") && e.contains("remove the file"), "{e}");
    }

    #[test]
    fn concurrent_first_runs_agree_on_the_id() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("state");
        let ids: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8).map(|_| sc.spawn(|| Owner::of(&s).unwrap().id)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    }

    #[test]
    fn ownership_tells_mine_theirs_orphaned_and_unlabelled_apart() {
        let d = tempfile::tempdir().unwrap();
        let me = Owner::of(&d.path().join("me")).unwrap();
        let them = Owner::of(&d.path().join("them")).unwrap();
        let l = |o: &Owner| o.labels().into_iter().collect::<HashMap<_, _>>();
        let plain = HashMap::from([("x".to_string(), "y".to_string())]);
        assert_eq!(Ownership::of([&plain, &l(&me)], Some(&me)), Ownership::Mine);
        assert_eq!(
            Ownership::of([&l(&them)], Some(&me)),
            Ownership::Theirs {
                dir: them.dir.display().to_string()
            }
        );
        assert_eq!(Ownership::of([&plain], Some(&me)), Ownership::Unlabelled);
        assert_eq!(
            Ownership::of([&l(&me)], None),
            Ownership::Theirs {
                dir: me.dir.display().to_string()
            }
        );
        std::fs::remove_dir_all(&them.dir).unwrap();
        assert_eq!(
            Ownership::of([&l(&them)], Some(&me)),
            Ownership::Orphaned {
                dir: them.dir.display().to_string()
            }
        );
    }
}
