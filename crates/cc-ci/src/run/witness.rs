//! Data witnesses: a file of random content written into a named volume,
//! read back later to prove the data survived an upgrade or came back from
//! a restore, byte for byte.
//!
//! Everything goes through the Docker archive API (`PUT`/`GET
//! /containers/{id}/archive`) on a helper container that mounts the volume
//! and is created but never started, so the helper image needs no shell or
//! tools (it only needs to exist locally; the caller passes it). The tar
//! archives are built and read in Rust (`tar` crate). The engine mounts a
//! stopped container's volumes for archive operations, so the file lands in
//! the volume itself. The helper container is removed afterwards, also on
//! error. Only [`Witness::destroy`] runs a process (`rm -f`) in the helper
//! image, because the archive API cannot delete.
//!
//! The helper containers are one-off containers ([`crate::run::oneoff`]).
//!
//! The witness is a dotfile (`.ccci-witness-<name>`) at the volume's root,
//! owned by root, mode 0644: small (130 bytes), hidden, and outside any
//! subdirectory an app scans.

use std::io::Read;

use bollard::models::{Mount, MountType};
use bollard::query_parameters::{
    DownloadFromContainerOptions, StartContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::TryStreamExt;

use crate::run::oneoff;

/// Where the helper container mounts the volume.
const MOUNT_POINT: &str = "/ccci-witness";

/// The label on helper containers (value: the volume), for janitors.
pub const HELPER_LABEL: &str = "cc-ci.witness-helper";

/// Why a witness could not be written, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The Docker Engine API did not answer or refused a request.
    #[error("Docker engine: {context}: {source}; is dockerd running and is /var/run/docker.sock reachable? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
    /// The volume does not exist (a witness is only written into a volume
    /// the app created).
    #[error("volume `{volume}` does not exist; list the stack's volumes with `docker volume ls` and pass one of them")]
    NoVolume {
        /// The volume.
        volume: String,
    },
    /// The helper image is not on this host (nothing is pulled).
    #[error("helper image `{image}` is not present locally; build or import it first (no registry is used)")]
    NoImage {
        /// The image.
        image: String,
    },
    /// The archive the engine returned is not a tar holding the file.
    #[error("reading the witness archive from volume `{volume}`: {detail}")]
    Archive {
        /// The volume.
        volume: String,
        /// What was wrong.
        detail: String,
    },
    /// `rm` in the helper image did not succeed.
    #[error("deleting the witness in volume `{volume}` with `rm` in image `{image}` failed: {detail}; the image needs an `rm` on its PATH")]
    Delete {
        /// The volume.
        volume: String,
        /// The image.
        image: String,
        /// Exit status or error.
        detail: String,
    },
}

fn docker_err(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> WitnessError {
    let context = context.into();
    move |source| WitnessError::Docker { context, source }
}

/// What a witness check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessState {
    /// The file is there with exactly the written bytes.
    Intact,
    /// The file is not there.
    Missing,
    /// The file is there with other content.
    Differs {
        /// Bytes found.
        found_len: usize,
        /// Bytes written.
        expected_len: usize,
    },
}

/// A witness written into a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The volume.
    pub volume: String,
    /// The file name at the volume's root (`.ccci-witness-<name>`).
    pub file: String,
    /// The exact bytes written: `cc-ci witness <name> <128 hex digits>\n`
    /// (64 random bytes from the OS).
    pub content: Vec<u8>,
}

impl Witness {
    /// Writes a new witness named `name` (e.g. the run id; `[A-Za-z0-9_.-]`
    /// only) into `volume`, through a helper container of `image`.
    ///
    /// Errors: [`WitnessError::NoVolume`], [`WitnessError::NoImage`],
    /// [`WitnessError::Docker`].
    pub async fn write_named(docker: &Docker, volume: &str, image: &str, name: &str) -> Result<Witness, WitnessError> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut random = [0u8; 64];
        getrandom::getrandom(&mut random).expect("the OS random source works");
        let content = format!("cc-ci witness {safe} {}\n", hex::encode(random)).into_bytes();
        let w = Witness {
            volume: volume.to_string(),
            file: format!(".ccci-witness-{safe}"),
            content,
        };
        w.put(docker, image, &w.content).await?;
        Ok(w)
    }

    /// [`Witness::write_named`] with the name `cc-ci`.
    pub async fn write(docker: &Docker, volume: &str, image: &str) -> Result<Witness, WitnessError> {
        Witness::write_named(docker, volume, image, "cc-ci").await
    }

    /// Reads the witness back and compares it byte for byte.
    ///
    /// Errors: [`WitnessError::NoVolume`] (the volume itself is gone),
    /// [`WitnessError::NoImage`], [`WitnessError::Docker`],
    /// [`WitnessError::Archive`].
    pub async fn state(&self, docker: &Docker, image: &str) -> Result<WitnessState, WitnessError> {
        let found = self.get(docker, image).await?;
        Ok(match found {
            None => WitnessState::Missing,
            Some(b) if b == self.content => WitnessState::Intact,
            Some(b) => WitnessState::Differs {
                found_len: b.len(),
                expected_len: self.content.len(),
            },
        })
    }

    /// True when the witness is intact (see [`Witness::state`]).
    pub async fn check(&self, docker: &Docker, image: &str) -> Result<bool, WitnessError> {
        Ok(self.state(docker, image).await? == WitnessState::Intact)
    }

    /// Overwrites the witness with its first `keep` bytes (for testing the
    /// restore rung: a restore that brings back a truncated file must fail).
    pub async fn truncate(&self, docker: &Docker, image: &str, keep: usize) -> Result<(), WitnessError> {
        let keep = keep.min(self.content.len());
        self.put(docker, image, &self.content[..keep]).await
    }

    /// Deletes the witness file, by running `rm -f` in a helper container
    /// of `image` (which therefore needs `rm`).
    ///
    /// Errors: [`WitnessError::Delete`] when `rm` is missing or fails, and
    /// those of [`Witness::write_named`].
    pub async fn destroy(&self, docker: &Docker, image: &str) -> Result<(), WitnessError> {
        let path = format!("{MOUNT_POINT}/{}", self.file);
        let helper = Helper::create(docker, &self.volume, image, vec!["rm".into(), "-f".into(), path]).await?;
        let res = async {
            docker
                .start_container(&helper.0, None::<StartContainerOptions>)
                .await
                .map_err(|e| WitnessError::Delete {
                    volume: self.volume.clone(),
                    image: image.to_string(),
                    detail: e.to_string(),
                })?;
            let waited = docker
                .wait_container(&helper.0, None::<WaitContainerOptions>)
                .try_collect::<Vec<_>>()
                .await;
            match waited {
                Ok(v) if v.iter().all(|r| r.status_code == 0) => Ok(()),
                Ok(v) => Err(format!("exit {:?}", v.last().map(|r| r.status_code))),
                // bollard reports a non-zero exit as an error.
                Err(e) => Err(e.to_string()),
            }
            .map_err(|detail| WitnessError::Delete {
                volume: self.volume.clone(),
                image: image.to_string(),
                detail,
            })
        }
        .await;
        helper.remove(docker).await;
        res
    }

    async fn put(&self, docker: &Docker, image: &str, bytes: &[u8]) -> Result<(), WitnessError> {
        let tar = crate::deploy::exec::one_file_tar(&self.file, bytes, 0o644)
            .expect("a witness file name is a plain tar path");

        let helper = Helper::create(docker, &self.volume, image, vec!["/ccci-never-started".into()]).await?;
        let res = docker
            .upload_to_container(
                &helper.0,
                Some(UploadToContainerOptions {
                    path: MOUNT_POINT.to_string(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(docker_err(format!("writing the witness into volume `{}`", self.volume)));
        helper.remove(docker).await;
        res
    }

    /// The file's bytes, or None if it is not there.
    async fn get(&self, docker: &Docker, image: &str) -> Result<Option<Vec<u8>>, WitnessError> {
        let helper = Helper::create(docker, &self.volume, image, vec!["/ccci-never-started".into()]).await?;
        let path = format!("{MOUNT_POINT}/{}", self.file);
        let res = docker
            .download_from_container(&helper.0, Some(DownloadFromContainerOptions { path }))
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await;
        helper.remove(docker).await;
        let tar = match res {
            Ok(t) => t,
            Err(e) if crate::deploy::stack::status_of(&e) == Some(404) => return Ok(None),
            Err(e) => {
                return Err(docker_err(format!("reading the witness from volume `{}`", self.volume))(e));
            }
        };
        let archive_err = |detail: String| WitnessError::Archive {
            volume: self.volume.clone(),
            detail,
        };
        let mut a = tar::Archive::new(&tar[..]);
        let entries = a.entries().map_err(|e| archive_err(e.to_string()))?;
        // The archive of a single file holds exactly that file.
        let Some(entry) = entries.into_iter().next() else {
            return Err(archive_err("the archive is empty".into()));
        };
        let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            return Err(archive_err(format!(
                "`{}` is not a regular file ({:?})",
                self.file,
                entry.header().entry_type()
            )));
        }
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf).map_err(|e| archive_err(e.to_string()))?;
        Ok(Some(buf))
    }
}

/// A created (not started) helper container mounting one volume.
struct Helper(String);

impl Helper {
    async fn create(docker: &Docker, volume: &str, image: &str, cmd: Vec<String>) -> Result<Helper, WitnessError> {
        let v = match docker.inspect_volume(volume).await {
            Ok(v) => v,
            Err(e) if crate::deploy::stack::status_of(&e) == Some(404) => {
                return Err(WitnessError::NoVolume { volume: volume.into() })
            }
            Err(e) => return Err(docker_err(format!("inspecting volume `{volume}`"))(e)),
        };
        // The volume's stack label goes on the helper: a run killed while
        // the helper exists leaves it to the stack's teardown and the
        // janitor, with the volume it pins.
        let mut labels: std::collections::HashMap<String, String> =
            [(HELPER_LABEL.to_string(), volume.to_string())].into();
        if let Some(ns) = v.labels.get(crate::deploy::stack::NAMESPACE_LABEL) {
            labels.insert(crate::deploy::stack::NAMESPACE_LABEL.to_string(), ns.clone());
        }
        let spec = oneoff::Spec {
            image: image.to_string(),
            name_prefix: "ccci-witness",
            entrypoint: vec![],
            cmd,
            env: None,
            attach: false,
            labels,
            mounts: vec![Mount {
                target: Some(MOUNT_POINT.to_string()),
                source: Some(volume.to_string()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }],
        };
        match oneoff::create(docker, spec).await {
            Ok(id) => Ok(Helper(id)),
            Err(e) if crate::deploy::stack::status_of(&e) == Some(404) => {
                Err(WitnessError::NoImage { image: image.into() })
            }
            Err(e) => Err(docker_err(format!(
                "creating a helper container of `{image}` on `{volume}`"
            ))(e)),
        }
    }

    /// Removes the container; a failure is logged, not returned (the
    /// container is labelled for a janitor).
    async fn remove(self, docker: &Docker) {
        if let Err(e) = oneoff::remove(docker, &self.0).await {
            tracing::warn!("could not remove witness helper container {}: {e}", self.0);
        }
    }
}
