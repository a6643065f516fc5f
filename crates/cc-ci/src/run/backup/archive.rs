//! Reading one path out of a container through the Docker archive API
//! (`GET /containers/{id}/archive`): the first entry of the tar, parsed as
//! it streams, as far as the reader needs (its kind, its digest, or its
//! bytes): the round trip's byte checks read the backup's archive helper
//! with it.

use std::io::Read;

use bollard::query_parameters::DownloadFromContainerOptions;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::deploy::stack::status_of;
use crate::run::oneoff::Digest;

/// The first entry of the archive of `path` in container `helper`
/// (None when the path does not exist), read as far as `want` needs:
/// the tar is parsed as it streams (on the blocking pool), so a
/// directory's content is not downloaded for [`Want::Kind`] and a large
/// file is hashed without being held in memory for [`Want::Digest`].
pub(super) async fn entry(docker: &Docker, helper: &str, path: &str, want: Want) -> Result<Option<Entry>, String> {
    let mut stream =
        docker.download_from_container(helper, Some(DownloadFromContainerOptions { path: path.to_string() }));
    let first = match stream.next().await {
        None => return Ok(None),
        Some(Err(e)) if status_of(&e) == Some(404) => return Ok(None),
        Some(Err(e)) => return Err(format!("Docker engine: reading {path} through the archive API: {e}")),
        Some(Ok(b)) => b.to_vec(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = tokio::task::spawn_blocking(move || read_first_entry(ChannelReader::new(rx), want));
    let mut failed = None;
    if tx.send(first).await.is_ok() {
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => {
                    if tx.send(b.to_vec()).await.is_err() {
                        break; // the reader has what it needs
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    drop(tx);
    drop(stream);
    let parsed = reader
        .await
        .map_err(|e| format!("reading the archive of {path}: {e}"))?;
    if let Some(e) = failed {
        return Err(format!("Docker engine: reading {path} through the archive API: {e}"));
    }
    parsed
        .map(Some)
        .map_err(|e| format!("reading the archive of {path}: {e}"))
}

/// How much of an archive entry [`entry`] reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want {
    /// Only the type and mode.
    Kind,
    /// Length and SHA-256 of the content.
    Digest,
    /// The content, up to this many bytes (more is an error).
    Bytes(u64),
}

/// The first entry of an archive.
pub(super) struct Entry {
    /// Its type.
    pub kind: tar::EntryType,
    /// Its mode bits.
    pub mode: u32,
    /// With [`Want::Digest`], a file's length and hash.
    pub digest: Option<Digest>,
    /// With [`Want::Bytes`], a file's content.
    pub bytes: Option<Vec<u8>>,
}

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_first_entry(r: ChannelReader, want: Want) -> Result<Entry, String> {
    let mut a = tar::Archive::new(r);
    let mut entries = a.entries().map_err(|e| e.to_string())?;
    let mut e = entries
        .next()
        .ok_or_else(|| "the archive is empty".to_string())?
        .map_err(|e| e.to_string())?;
    let kind = e.header().entry_type();
    let mode = e.header().mode().unwrap_or(0o644);
    let mut out = Entry {
        kind,
        mode,
        digest: None,
        bytes: None,
    };
    if !kind.is_file() {
        return Ok(out);
    }
    match want {
        Want::Kind => {}
        Want::Digest => {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut len = 0u64;
            loop {
                let n = e.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                len += n as u64;
            }
            out.digest = Some(Digest {
                len,
                sha256: hex::encode(h.finalize()),
            });
        }
        Want::Bytes(max) => {
            if e.header().size().unwrap_or(0) > max {
                return Err(format!("the file is larger than {max} bytes"));
            }
            let mut b = Vec::new();
            e.read_to_end(&mut b).map_err(|e| e.to_string())?;
            out.bytes = Some(b);
        }
    }
    Ok(out)
}
