//! `scripts/build-cache`, run on a copy of itself in a scratch checkout: a
//! fresh checkout gets `target/` as a link into the cache, one folder per
//! checkout path; a second run changes nothing; a checkout with its own
//! `target/`, or a caller's `CARGO_TARGET_DIR`, is left alone; a link whose
//! cache folder went gets the folder back.

use std::path::{Path, PathBuf};
use std::process::Output;

/// A scratch checkout holding `scripts/build-cache`, and a cache folder.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("checkout/scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        let text = std::fs::read_to_string(test_support::workspace().join("scripts/build-cache")).unwrap();
        test_support::write_executable(&scripts.join("build-cache"), &text);
        Scratch { dir }
    }

    fn checkout(&self) -> PathBuf {
        self.dir.path().join("checkout")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn run(&self, target_dir: Option<&Path>) -> Output {
        let mut c = std::process::Command::new(self.checkout().join("scripts/build-cache"));
        c.env("CCCI_CACHE", self.cache()).env_remove("CARGO_TARGET_DIR");
        if let Some(t) = target_dir {
            c.env("CARGO_TARGET_DIR", t);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", test_support::output_text(&o));
        o
    }
}

#[test]
fn a_fresh_checkout_builds_into_the_cache_and_others_are_left_alone() {
    let s = Scratch::new();
    let target = s.checkout().join("target");
    let o = s.run(None);
    let link = std::fs::read_link(&target).expect("target/ is a link");
    assert!(link.starts_with(s.cache().join("target")), "{link:?}");
    assert!(link.is_dir(), "the cache folder is made");
    let name = link.file_name().unwrap().to_str().unwrap();
    assert!(
        name.len() == 12 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(test_support::output_text(&o).contains(&link.display().to_string()));
    // A build's output survives the checkout: a new checkout at the same
    // path meets it again.
    std::fs::write(link.join("built"), "x").unwrap();
    std::fs::remove_file(&target).unwrap();
    s.run(None);
    assert_eq!(std::fs::read_link(&target).unwrap(), link, "same path, same folder");
    assert!(target.join("built").is_file());
    // Idempotent.
    s.run(None);
    assert_eq!(std::fs::read_link(&target).unwrap(), link);
    // The cache folder removed under the link: made again.
    std::fs::remove_dir_all(&link).unwrap();
    s.run(None);
    assert!(link.is_dir());
    // A checkout with its own target/ folder is left alone.
    std::fs::remove_file(&target).unwrap();
    std::fs::create_dir(&target).unwrap();
    let o = s.run(None);
    assert!(target.is_dir() && !target.is_symlink());
    assert!(test_support::output_text(&o).contains("left alone"));
    // So is a caller's CARGO_TARGET_DIR.
    std::fs::remove_dir(&target).unwrap();
    let o = s.run(Some(Path::new("/elsewhere")));
    assert!(!target.exists() && !target.is_symlink());
    assert!(test_support::output_text(&o).contains("CARGO_TARGET_DIR=/elsewhere"));
}
