//! One test's own stack, for cc-ci's tests that deploy a compose file
//! straight with `docker stack deploy` (each `tests/*.rs` that needs it
//! includes this with `mod test_stack;`): a unique name, a folder, the deploy
//! with Debian's docker.io CLI (no image resolution: nothing is pulled), and
//! teardown by `cc_ci::deploy::stack::teardown` when dropped, also after a
//! failed assertion.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bollard::Docker;
use cc_ci::deploy::converge::wait_converged;
use cc_ci::deploy::stack;

/// A stack `<prefix><10 hex>_ci_test` and its folder.
pub struct TestStack {
    /// The stack's name.
    pub name: String,
    /// Its folder (compose file, repositories, ...), removed when dropped.
    pub dir: PathBuf,
}

impl TestStack {
    /// A new stack name (`prefix` is one letter telling the test files apart).
    pub fn new(prefix: &str) -> TestStack {
        let name = format!("{prefix}{}_ci_test", test_support::token());
        let dir = std::env::temp_dir().join(format!("ccci-test-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        TestStack { name, dir }
    }

    /// `docker stack deploy` of `compose` (the 20.10 CLI, `--resolve-image never`).
    pub fn deploy(&self, compose: &str) {
        let file = self.dir.join("compose.yml");
        std::fs::write(&file, compose).unwrap();
        let out = Command::new("/usr/bin/docker")
            .args(["stack", "deploy", "--resolve-image", "never", "-c"])
            .arg(&file)
            .arg(&self.name)
            .output()
            .expect("running /usr/bin/docker (Debian's docker.io CLI; scripts/dockerd installs it)");
        assert!(
            out.status.success(),
            "docker stack deploy {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// [`TestStack::deploy`], then waits until it has converged (180 s at most).
    pub async fn deploy_converged(&self, d: &Docker, compose: &str) {
        self.deploy(compose);
        let c = wait_converged(d, &self.name, Duration::from_secs(180))
            .await
            .unwrap_or_else(|e| panic!("stack {} did not converge: {e}", self.name));
        eprintln!("{}: converged in {:.1} s", self.name, c.total.as_secs_f64());
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime: tear down on a fresh one,
        // on its own thread, with a fresh connection.
        let res = std::thread::spawn(move || {
            test_support::rt().block_on(async {
                let d = cc_ci::host::swarm::connect().await.map_err(|e| e.to_string())?;
                stack::teardown(&d, &name, Duration::from_secs(120))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match res {
            Ok(Ok(r)) if r.is_clean() => {}
            other => eprintln!("!!! cleanup of stack {} incomplete: {other:?}", self.name),
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
