//! The data witness through the app: a token the app itself stores and
//! gives back, proving that an upgrade kept and a restore brought back the
//! app's data, not just bytes cc-ci put into a volume.
//!
//! The recipe's settings say how (`[data]` in `ccci.toml`, see
//! [`crate::settings::DataWitness`]): three shell commands run with
//! `sh -c` in a running container of one service (a database client in
//! the database's container, say). Each sees `CCCI_DATA_WITNESS`, a fresh
//! random token (32 hex digits) per run:
//!
//! - `write` stores it (before the upgrade; before the backup when the
//!   upgrade did not run);
//! - `read` prints what is stored: after the upgrade and after the restore
//!   its output must hold the token, and after `destroy` it must not;
//! - `destroy` damages the data before the restore, so that what `read`
//!   finds afterwards can only have come from the backup.

use std::time::Duration;

use bollard::Docker;

use crate::deploy::exec::{exec, running_container, tail_lines, ExecError};
use crate::settings::DataWitness;

/// What went wrong with a data witness command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFault {
    /// The recipe (or its settings' commands): a non-zero exit, no running
    /// container of the service.
    Recipe(String),
    /// The infrastructure: the Docker engine.
    Infra(String),
}

impl std::fmt::Display for DataFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataFault::Recipe(m) | DataFault::Infra(m) => f.write_str(m),
        }
    }
}

/// One run's data witness: the settings' commands and the run's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProbe {
    /// The service (short compose name).
    pub service: String,
    /// The settings' commands.
    pub commands: DataWitness,
    /// The token (32 lowercase hex digits).
    pub token: String,
    /// How long each command may run.
    pub timeout: Duration,
}

/// Which of the three commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Write,
    Read,
    Destroy,
}

impl Which {
    fn key(self) -> &'static str {
        match self {
            Which::Write => "data.write",
            Which::Read => "data.read",
            Which::Destroy => "data.destroy",
        }
    }
}

impl DataProbe {
    /// A probe of `commands` with a fresh random token; each command may run
    /// `timeout`.
    pub fn new(commands: &DataWitness, timeout: Duration) -> DataProbe {
        let mut random = [0u8; 16];
        // The OS random source does not fail on Linux once booted; a zero
        // token would still be unique per run with the run id in it, but
        // there is nothing better to do than use what we have.
        let _ = getrandom::getrandom(&mut random);
        DataProbe {
            service: commands.service.clone(),
            commands: commands.clone(),
            token: hex::encode(random),
            timeout,
        }
    }

    /// The shell script for one command: the token exported, then the
    /// command (the token is hex, so it needs no quoting).
    fn script(&self, which: Which) -> String {
        let cmd = match which {
            Which::Write => &self.commands.write,
            Which::Read => &self.commands.read,
            Which::Destroy => &self.commands.destroy,
        };
        format!("CCCI_DATA_WITNESS={}; export CCCI_DATA_WITNESS; {cmd}", self.token)
    }

    async fn run(&self, docker: &Docker, stack: &str, which: Which) -> Result<String, DataFault> {
        let classify = |e: ExecError| {
            let m = format!("{} in service {}: {e}", which.key(), self.service);
            if e.is_recipe_failure() {
                DataFault::Recipe(m)
            } else {
                DataFault::Infra(m)
            }
        };
        let container = running_container(docker, stack, &self.service)
            .await
            .map_err(classify)?;
        let argv = vec!["sh".to_string(), "-c".to_string(), self.script(which)];
        let out = exec(docker, &container, &argv, self.timeout).await.map_err(classify)?;
        if out.exit_code != 0 {
            return Err(DataFault::Recipe(format!(
                "{} in service {} exited {}: {}; fix the command in the recipe's cc-ci settings [data]",
                which.key(),
                self.service,
                out.exit_code,
                out.stderr_tail(5)
            )));
        }
        Ok(out.stdout)
    }

    /// Stores the token through the app (`write`).
    ///
    /// # Errors
    /// [`DataFault`]: the command failed (Recipe) or Docker did (Infra).
    pub async fn write(&self, docker: &Docker, stack: &str) -> Result<(), DataFault> {
        self.run(docker, stack, Which::Write).await.map(|_| ())
    }

    /// Whether the app gives the token back (`read`'s output holds it); on
    /// false, the output's last lines (for the reason).
    ///
    /// # Errors
    /// As [`DataProbe::write`].
    pub async fn holds(&self, docker: &Docker, stack: &str) -> Result<Result<(), String>, DataFault> {
        let out = self.run(docker, stack, Which::Read).await?;
        Ok(if out.contains(&self.token) {
            Ok(())
        } else {
            Err(match tail_lines(&out, 3) {
                t if t.trim().is_empty() => "it printed nothing".to_string(),
                t => format!("it printed: {}", t.trim()),
            })
        })
    }

    /// Damages the data (`destroy`).
    ///
    /// # Errors
    /// As [`DataProbe::write`].
    pub async fn destroy(&self, docker: &Docker, stack: &str) -> Result<(), DataFault> {
        self.run(docker, stack, Which::Destroy).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_probe_has_its_own_token_and_exports_it() {
        let w = DataWitness {
            service: "db".into(),
            write: "echo $CCCI_DATA_WITNESS > /w".into(),
            read: "cat /w".into(),
            destroy: "rm /w".into(),
        };
        let a = DataProbe::new(&w, Duration::from_secs(5));
        let b = DataProbe::new(&w, Duration::from_secs(5));
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 32);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            a.script(Which::Write),
            format!(
                "CCCI_DATA_WITNESS={}; export CCCI_DATA_WITNESS; echo $CCCI_DATA_WITNESS > /w",
                a.token
            )
        );
    }
}
