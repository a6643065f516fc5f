//! One-off containers: short-lived containers of a local helper image,
//! created on an app's named volumes (and, for restic, a bind-mounted
//! repository) for one job, without a network: run to the end with their
//! output collected, or created and never started, for the archive API.
//! Each is removed after use; its labels (the caller's) let the stack's
//! teardown and the janitor find one a dead run left.
//!
//! Shared by [`crate::run::witness`] (a helper container per volume) and
//! [`crate::run::backup`] (restic, `rm`, the archive helper); what a
//! container mounts, runs and is labelled with, and what a failure means,
//! stay with the caller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, Mount};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::deploy::exec::Tail;
use crate::deploy::stack::status_of;

/// What a one-off container is made of.
pub(crate) struct Spec {
    /// The image (present locally; nothing is pulled).
    pub image: String,
    /// The container's name before its random suffix (`<prefix>-<12 hex>`).
    pub name_prefix: &'static str,
    /// Its entrypoint (empty: none, the command runs as it is).
    pub entrypoint: Vec<String>,
    /// Its command.
    pub cmd: Vec<String>,
    /// Its environment, if one is set.
    pub env: Option<Vec<String>>,
    /// Whether its stdout and stderr are attached (no TTY), for [`run`].
    pub attach: bool,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// What it mounts; it has no network.
    pub mounts: Vec<Mount>,
}

/// Creates (does not start) a container of `spec`; its id.
///
/// Errors: the engine's, as it gave them (a 404 is a missing image or
/// volume: the caller names which).
pub(crate) async fn create(docker: &Docker, spec: Spec) -> Result<String, bollard::errors::Error> {
    let body = ContainerCreateBody {
        image: Some(spec.image),
        entrypoint: Some(spec.entrypoint),
        cmd: Some(spec.cmd),
        env: spec.env,
        attach_stdout: spec.attach.then_some(true),
        attach_stderr: spec.attach.then_some(true),
        tty: spec.attach.then_some(false),
        network_disabled: Some(true),
        labels: Some(spec.labels),
        host_config: Some(HostConfig {
            mounts: Some(spec.mounts),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!(
        "{}-{}",
        spec.name_prefix,
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await
        .map(|r| r.id)
}

/// Removes container `id` (forced, its volumes kept); one already gone is
/// removed.
///
/// Errors: the engine's but 404; the caller logs it (the container is
/// labelled for a janitor).
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let opts = RemoveContainerOptions {
        force: true,
        v: false,
        link: false,
    };
    match docker.remove_container(id, Some(opts)).await {
        Err(e) if status_of(&e) != Some(404) => Err(e),
        _ => Ok(()),
    }
}

/// A byte stream's length and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    /// Bytes.
    pub len: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// What a one-off container printed and how it ended.
pub(crate) struct Output {
    /// The process's exit code (-1 when the engine gives none).
    pub exit_code: i64,
    /// Its stdout (a bounded tail; empty with `digest_stdout`).
    pub stdout: String,
    /// Its stderr (a bounded tail).
    pub stderr: String,
    /// With `digest_stdout`: stdout's length and hash.
    pub digest: Option<Digest>,
}

/// Attaches to the created container `id` (made with [`Spec::attach`]),
/// starts it and collects its output until it exits, by `started +
/// timeout`; with `digest_stdout` stdout is hashed as it streams instead of
/// kept. `what` names the container in errors. The caller removes it.
///
/// Errors: the engine failing, or the deadline passing, as a message.
pub(crate) async fn run(
    docker: &Docker,
    what: &str,
    id: &str,
    started: Instant,
    timeout: Duration,
    digest_stdout: bool,
) -> Result<Output, String> {
    let deadline = started + timeout;
    let attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stdout: true,
                stderr: true,
                stream: true,
                logs: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| format!("Docker engine: attaching to the {what} container: {e}"))?;
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| format!("Docker engine: starting the {what} container: {e}"))?;
    let mut output = attached.output;
    let mut stdout = Tail::default();
    let mut stderr = Tail::default();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let timed_out = || {
        format!(
            "{what} did not finish within {} s; the container was removed",
            timeout.as_secs()
        )
    };
    loop {
        let next = tokio::time::timeout_at(deadline.into(), output.next())
            .await
            .map_err(|_| timed_out())?;
        match next {
            None => break,
            Some(Ok(bollard::container::LogOutput::StdOut { message })) if digest_stdout => {
                hasher.update(&message);
                len += message.len() as u64;
            }
            Some(Ok(
                bollard::container::LogOutput::StdOut { message } | bollard::container::LogOutput::Console { message },
            )) => stdout.push(&message),
            Some(Ok(bollard::container::LogOutput::StdErr { message })) => stderr.push(&message),
            Some(Ok(bollard::container::LogOutput::StdIn { .. })) => {}
            Some(Err(e)) => {
                return Err(format!(
                    "Docker engine: reading the output of the {what} container: {e}"
                ))
            }
        }
    }
    // The attach stream ends when the process has exited.
    let exit_code = loop {
        let st = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("Docker engine: inspecting the {what} container: {e}"))?
            .state
            .unwrap_or_default();
        if st.running != Some(true) {
            break st.exit_code.unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(Output {
        exit_code,
        stdout: stdout.into_string(),
        stderr: stderr.into_string(),
        digest: digest_stdout.then(|| Digest {
            len,
            sha256: hex::encode(hasher.finalize()),
        }),
    })
}
