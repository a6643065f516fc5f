//! One compose `version:` for every file `docker stack deploy` reads.
//!
//! The compose spec makes `version:` optional and abra's loader (compose-go)
//! ignores it, so recipes omit it more and more. The docker CLI 20.10 (the
//! one Debian ships) does not: its loader (docker/cli
//! `cli/compose/loader`) takes a file without `version:` for version "1.0"
//! and refuses it (`unsupported Compose file version: 1.0`), and refuses
//! files whose versions differ (`version mismatched between two
//! composefiles : 3.7 and 3.8`). Newer CLIs accept both.
//!
//! When the recipe's files do not already agree on one version, the
//! deployer gives the CLI copies that do: each written beside its original
//! as `.ccci-<name>` (beside, because the CLI resolves every relative path
//! (`configs: file:`, `env_file`) against the first file's folder), with
//! `version:` set to the highest of the versions the files declare and
//! "3.8" (a file without `version:` is written to the compose spec, and may
//! use what 3.8 added, such as `template_driver`; 3.8 accepts every earlier
//! 3.x file). Nothing else of the text changes. The copies are removed when the [`DeployFiles`] is dropped,
//! right after the deploy command.

use std::path::{Path, PathBuf};

use crate::recipe::version::RecipeVersion;

/// The lowest version the copies get (what abra's recipes use, and the
/// schema that has everything a version-less file may use).
pub const DEFAULT_VERSION: &str = "3.8";
/// The prefix of the copies' file names.
pub const COPY_PREFIX: &str = ".ccci-";

/// The files to give `docker stack deploy`, relative to the recipe
/// checkout, and the version they all declare.
#[derive(Debug)]
pub struct DeployFiles {
    /// The files in `COMPOSE_FILE` order (the originals, or their copies).
    pub files: Vec<String>,
    /// The version every file declares (the override file must declare it too).
    pub version: String,
    /// True when copies were written.
    pub copied: bool,
    written: Vec<PathBuf>,
}

impl Drop for DeployFiles {
    fn drop(&mut self) {
        for p in &self.written {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Compose versions ordered as numbers ("3.10" above "3.9"); unparsable
/// parts count as 0.
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.trim().parse().unwrap_or(0)).collect()
}

/// The version all files should declare when they do not agree: the
/// highest of the declared ones and [`DEFAULT_VERSION`].
pub fn uniform_version(declared: &[Option<String>]) -> String {
    declared
        .iter()
        .flatten()
        .map(String::as_str)
        .chain([DEFAULT_VERSION])
        .max_by_key(|v| version_key(v))
        .unwrap_or(DEFAULT_VERSION)
        .to_string()
}

/// `text` with its top-level `version:` set to `version`: the existing line
/// replaced, or a line added at the top (after a leading `---` document
/// marker, so the file stays one document).
pub fn set_version(text: &str, version: &str) -> String {
    let line = format!("version: {}", serde_json::json!(version));
    let re = regex::Regex::new(r"(?m)^version[ \t]*:.*$").expect("static regex");
    if re.is_match(text) {
        return re.replacen(text, 1, regex::NoExpand(&line)).into_owned();
    }
    // Insert after leading blank and comment lines and one `---` marker.
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            at += l.len();
            continue;
        }
        if t == "---" {
            at += l.len();
        }
        break;
    }
    let (head, rest) = text.split_at(at);
    let nl = if head.is_empty() || head.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{head}{nl}{line}\n{rest}")
}

/// The files of `files` (names in `version`'s checkout, their declared
/// versions in `declared`, same order) as `docker stack deploy` of any CLI
/// accepts them: the originals when they all declare one version, else
/// copies of the texts `version` read, with the [`uniform_version`].
///
/// # Errors
/// A file that cannot be read or a copy that cannot be written (the path
/// is in the message).
pub fn prepare(version: &RecipeVersion, files: &[String], declared: &[Option<String>]) -> Result<DeployFiles, String> {
    let checkout = version.dir.as_path();
    // Files that all declare one version stay as they are, whatever it is.
    if let Some(Some(first)) = declared.first() {
        if declared.len() == files.len() && declared.iter().all(|d| d.as_ref() == Some(first)) {
            return Ok(DeployFiles {
                files: files.to_vec(),
                version: first.clone(),
                copied: false,
                written: Vec::new(),
            });
        }
    }
    let uniform = uniform_version(declared);
    let mut out = DeployFiles {
        files: Vec::new(),
        version: uniform.clone(),
        copied: true,
        written: Vec::new(),
    };
    for f in files {
        let source = version.source(f).map_err(|e| e.to_string())?;
        let text = &source.text;
        let rel = Path::new(f);
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy_rel = rel.with_file_name(format!("{COPY_PREFIX}{name}"));
        let copy = checkout.join(&copy_rel);
        crate::deploy::app::write_atomically(&copy, set_version(text, &uniform).as_bytes())
            .map_err(|e| format!("{}: {e}", copy.display()))?;
        out.written.push(copy);
        out.files.push(copy_rel.to_string_lossy().into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_declared_version_wins_and_never_below_3_8() {
        assert_eq!(uniform_version(&[None, None]), "3.8");
        assert_eq!(uniform_version(&[Some("3.7".into()), None]), "3.8");
        assert_eq!(
            uniform_version(&[Some("3.9".into()), Some("3.10".into()), Some("3.8".into())]),
            "3.10"
        );
    }

    #[test]
    fn set_version_replaces_or_adds_one_line_keeping_the_document() {
        assert_eq!(
            set_version("version: '3.7'\nservices: {}\n", "3.8"),
            "version: \"3.8\"\nservices: {}\n"
        );
        assert_eq!(set_version("services: {}\n", "3.8"), "version: \"3.8\"\nservices: {}\n");
        assert_eq!(
            set_version("# a recipe\n---\nservices: {}\n", "3.8"),
            "# a recipe\n---\nversion: \"3.8\"\nservices: {}\n"
        );
        // A nested `version:` key is not the top-level one.
        assert_eq!(
            set_version("services:\n  app:\n    labels:\n      version: x\n", "3.8"),
            "version: \"3.8\"\nservices:\n  app:\n    labels:\n      version: x\n"
        );
    }

    #[test]
    fn files_that_agree_are_given_as_they_are_and_copies_are_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yml"), "version: \"3.8\"\nservices: {}\n").unwrap();
        std::fs::write(dir.path().join("compose.x.yml"), "services: {}\n").unwrap();
        let v = RecipeVersion::read(dir.path()).unwrap();
        let same = prepare(&v, &["compose.yml".into()], &[Some("3.7".into())]).unwrap();
        assert_eq!(
            (same.files.clone(), same.copied, same.version.as_str()),
            (vec!["compose.yml".to_string()], false, "3.7")
        );
        let files = vec!["compose.yml".to_string(), "compose.x.yml".to_string()];
        let copies = prepare(&v, &files, &[Some("3.8".into()), None]).unwrap();
        assert_eq!(copies.files, vec![".ccci-compose.yml", ".ccci-compose.x.yml"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".ccci-compose.x.yml")).unwrap(),
            "version: \"3.8\"\nservices: {}\n"
        );
        drop(copies);
        assert!(!dir.path().join(".ccci-compose.yml").exists());
        assert!(!dir.path().join(".ccci-compose.x.yml").exists());
    }
}
