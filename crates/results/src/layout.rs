//! Where results live: `<results root>/<recipe>/<run id>/`, one folder per
//! run, holding [`RESULTS_FILE`] (written when the run ends),
//! [`STARTED_FILE`] (written before it deploys) and the run's logs and
//! screenshots. `ccci test` writes it, the Buildbot master publishes it, the
//! bridge and the dashboard read it: every one of them joins the path here.

use std::path::{Path, PathBuf};

/// The run's results, schema `cc-ci/results/v1` ([`super::RunResults`]).
pub const RESULTS_FILE: &str = "results.json";

/// What a run records before it deploys anything
/// ([`super::history::Started`]).
pub const STARTED_FILE: &str = "started.json";

/// Whether `id` has the shape of a run id: six lowercase hex digits (the
/// app's domain, its stack, the janitor and the results folder all carry
/// it).
pub fn is_run_id(id: &str) -> bool {
    id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `<root>/<recipe>`: every run of `recipe`.
pub fn recipe_dir(root: &Path, recipe: &str) -> PathBuf {
    root.join(recipe)
}

/// `<recipe>/<run id>`: a run's folder relative to the results root (what
/// a Buildbot build reports as `results_rel`).
pub fn run_rel(recipe: &str, run_id: &str) -> PathBuf {
    Path::new(recipe).join(run_id)
}

/// `<root>/<recipe>/<run id>`: one run's folder.
pub fn run_dir(root: &Path, recipe: &str, run_id: &str) -> PathBuf {
    root.join(run_rel(recipe, run_id))
}

/// Whether `rel` is `<recipe>/<run id>`: a plain recipe name (not empty,
/// not hidden, no separator) and a run id, so joining it to the root stays
/// inside the root.
pub fn is_run_rel(rel: &str) -> bool {
    let Some((recipe, id)) = rel.split_once('/') else {
        return false;
    };
    !recipe.is_empty() && !recipe.starts_with('.') && !recipe.contains(['/', '\\']) && is_run_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_is_recipe_then_run_id() {
        let root = Path::new("/r");
        assert_eq!(
            run_dir(root, "static-site", "3fa9c2"),
            Path::new("/r/static-site/3fa9c2")
        );
        assert_eq!(recipe_dir(root, "static-site"), Path::new("/r/static-site"));
        assert!(is_run_id("3fa9c2") && !is_run_id("3FA9C2") && !is_run_id("3fa9c") && !is_run_id("3fa9cg"));
        assert!(is_run_rel("static-site/3fa9c2"));
        for bad in [
            "static-site",
            "../x/3fa9c2",
            ".x/3fa9c2",
            "/3fa9c2",
            "a/b/3fa9c2",
            "a\\b/3fa9c2",
            "a/3fa9c2/",
        ] {
            assert!(!is_run_rel(bad), "{bad}");
        }
    }
}
