//! git on a recipe checkout: the one wrapper every reader of a checkout
//! (the recipe, lint, the deployers' `abra app new`, traefik-deploy) runs
//! git through. `git -C <dir>`, with `GIT_DIR` and `GIT_WORK_TREE` of the
//! calling environment removed (a hook or a Buildbot step that sets them
//! would otherwise point git at another repository).

use std::path::{Path, PathBuf};
use std::process::Command;

/// git could not be run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The git binary could not be started.
    #[error("git -C {} {args}: cannot run git: {source} (install git)", dir.display())]
    Spawn {
        /// The folder.
        dir: PathBuf,
        /// The arguments, space-separated.
        args: String,
        /// Why.
        source: std::io::Error,
    },
    /// git exited non-zero.
    #[error("git -C {} {args}: {stderr}", dir.display())]
    Failed {
        /// The folder.
        dir: PathBuf,
        /// The arguments, space-separated.
        args: String,
        /// What git printed on stderr, trimmed.
        stderr: String,
    },
}

impl GitError {
    /// What went wrong, without the command: git's own message, or why it
    /// could not be run.
    pub fn detail(&self) -> String {
        match self {
            GitError::Spawn { source, .. } => format!("cannot run git: {source}"),
            GitError::Failed { stderr, .. } => stderr.clone(),
        }
    }
}

/// Runs `git -C dir args…` and returns its stdout (lossy UTF-8).
///
/// # Errors
/// [`GitError::Spawn`] when git cannot be started, [`GitError::Failed`]
/// with git's stderr when it exits non-zero.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .map_err(|source| GitError::Spawn {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            source,
        })?;
    if !out.status.success() {
        return Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_or_an_error_naming_folder_command_and_gits_words() {
        let d = tempfile::tempdir().unwrap();
        run(d.path(), &["init", "--quiet"]).unwrap();
        assert_eq!(
            run(d.path(), &["rev-parse", "--is-inside-work-tree"]).unwrap().trim(),
            "true"
        );
        let e = run(d.path(), &["rev-parse", "--verify", "-q", "nope^{commit}"]).unwrap_err();
        assert!(matches!(e, GitError::Failed { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&d.path().display().to_string()) && text.contains("rev-parse --verify"),
            "{text}"
        );
    }
}
