//! Teardown, after the body whatever happened: the app undeployed and
//! proven gone (or kept warm for `--quick`), the deploy log written, the
//! run's folder and lease released.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Run, TEARDOWN_DOCKER_WAIT};

impl Run<'_> {
    /// Undeploys and removes the app and everything it made, then the run's
    /// folder, then the lease. Runs after the body, whatever happened.
    pub async fn teardown(&mut self) {
        self.progress.phase("teardown");
        // A browser started ahead and never used is killed now.
        self.shot_ahead = None;
        let t = Instant::now();
        let w0 = self.waiting;
        if self.keep_warm && self.deployed && self.green_so_far() {
            match self.keep_app_warm() {
                Ok(path) => {
                    self.progress.note(&format!(
                        "kept warm for the next --quick run: {} ({})",
                        self.plan.domain,
                        path.display()
                    ));
                    self.results.kept_warm = true;
                    if !self.deploy_log.is_empty() {
                        let text = self.deploy_log.join("\n") + "\n";
                        self.write_artifact("deploy-log", "deploy.log", &text);
                    }
                    self.lease = None;
                    self.phase_done("teardown", t, w0);
                    return;
                }
                Err(e) => self
                    .progress
                    .note(&format!("cannot keep the app warm ({e}): tearing it down")),
            }
        }
        if self.deployed || self.lease.is_some() {
            // Docker may be away (stopped, restarting): the app must still go.
            if self.infra.docker.ping().await.is_err() {
                self.progress.note(&format!(
                    "the Docker engine does not answer; waiting up to {} s to tear the app down",
                    TEARDOWN_DOCKER_WAIT.as_secs()
                ));
                let start = Instant::now();
                while self.infra.docker.ping().await.is_err() && start.elapsed() < TEARDOWN_DOCKER_WAIT {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                self.waiting += start.elapsed();
            }
            let app = self.app.clone();
            let deployer = &self.infra.deployer;
            let removed = self.wait(deployer.remove(&app)).await;
            let left = self
                .wait(crate::deploy::stack::verify_clean(&self.infra.docker, &self.plan.stack))
                .await;
            let clean = match (&removed, &left) {
                (Ok(r), Ok(l)) if r.is_clean() && l.is_empty() => {
                    self.progress
                        .note(&format!("removed {} object(s); nothing left", r.removed.len()));
                    true
                }
                (Ok(_), Ok(l)) => {
                    self.progress.note(&format!(
                        "teardown left: {}",
                        l.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    false
                }
                (Err(e), _) => {
                    self.progress.note(&format!("teardown failed: {e}"));
                    false
                }
                (_, Err(e)) => {
                    self.progress.note(&format!("cannot verify the teardown: {e}"));
                    false
                }
            };
            self.results.clean_teardown = Some(clean);
        }
        if !self.deploy_log.is_empty() {
            let text = self.deploy_log.join("\n") + "\n";
            self.write_artifact("deploy-log", "deploy.log", &text);
        }
        // The app's run folder (a warm app's is the run that installed it).
        let run_dir = self
            .plan
            .abra_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.infra_state_dir().join("runs").join(&self.plan.run_id));
        if self.results.clean_teardown == Some(false) {
            // What is left of the app is found again through its run folder
            // (its env file names the app): the janitor reaps it later.
            self.progress.note(&format!(
                "kept the run folder {} for the janitor, which reaps what the teardown left",
                run_dir.display()
            ));
        } else if run_dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&run_dir) {
                self.progress
                    .note(&format!("cannot remove {}: {e} (the janitor will)", run_dir.display()));
            }
        }
        self.lease = None;
        self.phase_done("teardown", t, w0);
    }
}
