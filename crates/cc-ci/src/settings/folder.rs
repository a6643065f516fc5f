//! The settings folder `tests/recipes/<recipe>/` on disk: its executables
//! (install steps, `hooks/pre-<rung>`, `custom/<test>`), each checked to be
//! an executable file, and the approved list.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::schema::RawApproved;
use super::{file_err, line_of, names, rung_in, valid_recipe_name, SettingsError, HOOK_RUNGS, INSTALL_STEPS};
use crate::results::level::Rung;

pub(super) fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// Checks that `path` is an executable file (following symlinks).
pub(super) fn require_executable(path: &Path, what: &str) -> Result<(), SettingsError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        file_err(
            path,
            format!("{what}: cannot read it ({e}); if it is a dangling symlink, point it at a real file or remove it"),
        )
    })?;
    if !meta.is_file() {
        return Err(file_err(path, format!("{what} must be a file, not a folder")));
    }
    if !is_executable(&meta) {
        return Err(file_err(
            path,
            format!(
                "{what} is not executable; run `chmod +x {}` (and start it with a #! line)",
                path.display()
            ),
        ));
    }
    Ok(())
}

pub(super) fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, SettingsError> {
    let rd = std::fs::read_dir(dir).map_err(|e| file_err(dir, format!("cannot list the folder: {e}")))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| file_err(dir, format!("cannot list the folder: {e}")))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        v.push((name, e.path()));
    }
    v.sort();
    Ok(v)
}

/// Custom tests in `dir`: every file (not dot-file, not folder), each executable.
pub(super) fn scan_custom(dir: &Path) -> Result<Vec<PathBuf>, SettingsError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (_, path) in sorted_entries(dir)? {
        if path.is_dir() {
            continue; // helpers and data
        }
        require_executable(
            &path,
            "custom test (every file directly in custom/ is a test; helpers go in a subfolder)",
        )?;
        out.push(path);
    }
    Ok(out)
}

/// Hooks in `dir`: `pre-<rung>` executables.
pub(super) fn scan_hooks(dir: &Path) -> Result<BTreeMap<Rung, PathBuf>, SettingsError> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for (name, path) in sorted_entries(dir)? {
        let rung = name.strip_prefix("pre-").and_then(|r| rung_in(r, HOOK_RUNGS));
        let Some(rung) = rung else {
            let hint = if name == "pre-install" {
                format!(" (steps before the first deploy go in {INSTALL_STEPS}, next to ccci.toml)")
            } else {
                String::new()
            };
            return Err(file_err(
                &path,
                format!(
                    "unknown hook {name:?}: a hook is named pre-<rung> with no extension, rung one of {}; rename or remove it{hint}",
                    names(HOOK_RUNGS)
                ),
            ));
        };
        require_executable(&path, &format!("hook pre-{}", rung.word()))?;
        out.insert(rung, path);
    }
    Ok(out)
}

/// Reads the approved list at `file`; an absent file approves nobody.
pub(super) fn load_approved(file: &Path) -> Result<Vec<String>, SettingsError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_err(file, format!("cannot read the approved list: {e}"))),
    };
    let err = |span: Option<std::ops::Range<usize>>, message: String| SettingsError {
        file: file.to_path_buf(),
        line: span.map(|s| line_of(&text, s.start)),
        message,
    };
    let raw: RawApproved = toml::from_str(&text).map_err(|e| {
        err(
            e.span(),
            format!(
                "{} (the file holds one key: approved = [\"recipe\", ...])",
                e.message().trim()
            ),
        )
    })?;
    let mut out: Vec<String> = Vec::new();
    for r in raw.approved {
        if !valid_recipe_name(r.get_ref()) {
            return Err(err(
                Some(r.span()),
                format!("{:?} is not a recipe name (letters, digits, - _ .)", r.get_ref()),
            ));
        }
        if out.contains(r.get_ref()) {
            return Err(err(
                Some(r.span()),
                format!("{:?} is listed twice; remove one", r.get_ref()),
            ));
        }
        out.push(r.into_inner());
    }
    Ok(out)
}
