//! The library's one error type: what went wrong, naming the file, command
//! or request to blame. The `loops` binary prints it (with its sources).

use std::path::{Path, PathBuf};

use crate::backend::BackendError;
use crate::config::ConfigError;
use crate::origin::GitError;
use crate::state::StateError;
use crate::tmux::TmuxError;

/// Everything the supervisor's operations can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is unreadable or invalid (names file and line).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tmux command failed, or no server answers where one must.
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A git command on the mirror of origin failed (origin unreachable, no branch).
    #[error(transparent)]
    Git(#[from] GitError),
    /// An agent command-line interface could not answer a question about its
    /// sessions (opencode's `session list`).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file or folder could not be read, written or created.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: `read`, `write`, `create`, `rename`, `open`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be done as asked (an unknown phase or job, a bad
    /// name, a missing `[orchestrator]` table); the text says what to do.
    #[error("{0}")]
    Request(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
