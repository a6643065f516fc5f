//! `loops boot`: one line per boot of the orchestrator host in
//! `<workspace>/REBOOTS.md`, gated by the kernel's boot id
//! (`/proc/sys/kernel/random/boot_id`, a UUID that changes on every boot).

use std::path::Path;

use crate::error::{Error, Result};

/// The kernel's boot id file.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

const HEADER: &str =
    "# Reboots\n\nOne line per boot of this host, written by `loops boot` (gated by the kernel boot id).\n\n";

/// Records boot `boot_id` in `<workspace>/REBOOTS.md` unless it is there
/// already; returns whether a line was written. The file is rewritten through a
/// temporary file and a rename, so it is never half-written.
///
/// # Errors
/// When the file cannot be read or written.
pub fn record(workspace: &Path, boot_id: &str) -> Result<bool> {
    let file = workspace.join("REBOOTS.md");
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(Error::io("read", &file, e)),
    };
    let boot_id = boot_id.trim();
    if old
        .lines()
        .any(|l| l.starts_with("- ") && l.contains(&format!("boot {boot_id}")))
    {
        return Ok(false);
    }
    let mut new = old;
    if !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!(
        "- {} boot {boot_id}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    ));
    crate::write_atomically(&file, new.as_bytes())?;
    Ok(true)
}

/// Boots recorded in `<workspace>/REBOOTS.md` (0 when there is no file).
pub fn count(workspace: &Path) -> usize {
    std::fs::read_to_string(workspace.join("REBOOTS.md"))
        .map(|t| {
            t.lines()
                .filter(|l| l.starts_with("- ") && l.contains(" boot "))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_boot() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(count(d.path()), 0);
        assert!(record(d.path(), "aaaa-1\n").unwrap());
        assert!(!record(d.path(), "aaaa-1").unwrap());
        assert!(record(d.path(), "bbbb-2").unwrap());
        assert_eq!(count(d.path()), 2);
        let text = std::fs::read_to_string(d.path().join("REBOOTS.md")).unwrap();
        assert!(text.starts_with("# Reboots"));
    }
}
