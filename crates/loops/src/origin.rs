//! The supervisor's view of origin: a bare mirror in the workspace, fetched
//! with the `git` CLI, from which it reads new commits, STATUS files and
//! INBOX changes without touching the agents' clones.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git error: the command and what git said.
#[derive(Debug, thiserror::Error)]
#[error("git {args}: {message}")]
pub struct GitError {
    /// The arguments given to git.
    pub args: String,
    /// git's stderr, or why it could not run.
    pub message: String,
}

/// One commit: full SHA and subject line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full 40-hex SHA.
    pub sha: String,
    /// Subject (first line of the message).
    pub subject: String,
}

/// A bare mirror of origin at `<workspace>/origin.git`.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
    origin: String,
    branch: String,
}

impl Mirror {
    /// The mirror of `origin`'s `branch` kept in `dir`.
    pub fn new(dir: PathBuf, origin: &str, branch: &str) -> Self {
        Mirror {
            dir,
            origin: origin.to_string(),
            branch: branch.to_string(),
        }
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| GitError {
                args: args.join(" "),
                message: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            return Err(GitError {
                args: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates the mirror if needed, then fetches origin's branch; returns its head SHA.
    ///
    /// # Errors
    /// When git fails (origin unreachable, branch missing).
    pub fn fetch(&self) -> Result<String, GitError> {
        if !self.dir.join("HEAD").exists() {
            std::fs::create_dir_all(&self.dir).map_err(|e| GitError {
                args: "init".into(),
                message: e.to_string(),
            })?;
            self.git(&["init", "--bare", "--quiet"])?;
        }
        let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = self.branch);
        self.git(&["fetch", "--quiet", "--no-tags", &self.origin, &refspec])?;
        self.head()
    }

    /// The last fetched head of origin's branch.
    ///
    /// # Errors
    /// When nothing was fetched yet.
    pub fn head(&self) -> Result<String, GitError> {
        Ok(self
            .git(&["rev-parse", &format!("refs/remotes/origin/{}", self.branch)])?
            .trim()
            .to_string())
    }

    /// Commits reachable from `new` but not from `old`, oldest first. When `old`
    /// is unknown to the mirror (history rewritten), only `new` itself.
    ///
    /// # Errors
    /// When git fails.
    pub fn commits_between(&self, old: &str, new: &str) -> Result<Vec<Commit>, GitError> {
        let range = if self.git(&["cat-file", "-e", &format!("{old}^{{commit}}")]).is_ok() {
            format!("{old}..{new}")
        } else {
            format!("{new}^!")
        };
        let out = self.git(&["log", "--reverse", "--format=%H%x1f%s", &range])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\x1f'))
            .map(|(sha, subject)| Commit {
                sha: sha.into(),
                subject: subject.into(),
            })
            .collect())
    }

    /// Paths changed between `old` and `new` (all of `new`'s files when `old` is unknown).
    ///
    /// # Errors
    /// When git fails.
    pub fn changed_paths(&self, old: &str, new: &str) -> Result<Vec<String>, GitError> {
        let out = if self.git(&["cat-file", "-e", &format!("{old}^{{commit}}")]).is_ok() {
            self.git(&["diff", "--name-only", old, new])?
        } else {
            self.git(&["ls-tree", "-r", "--name-only", new])?
        };
        Ok(out.lines().map(str::to_string).collect())
    }

    /// The text of `path` at origin's branch head, or `None` when it has no such file.
    ///
    /// # Errors
    /// When nothing was fetched yet.
    pub fn read(&self, path: &str) -> Result<Option<String>, GitError> {
        let head = self.head()?;
        Ok(self.git(&["show", &format!("{head}:{path}")]).ok())
    }

    /// The mirror's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
