//! Property tests (proptest) of every parser that takes outside input: env
//! files and `.env.sample`, compose files and overlays, `abra.sh` exports,
//! per-recipe `ccci.toml`, results.json read back, and sops files (the
//! committed test files under tests/keys/, mutated).
//!
//! Two properties everywhere: no input panics, and every refusal names the
//! file it refuses (its path is in the message). Where a parser accepts, a
//! property of what it accepted is checked as well (keys are keys, a
//! results file round-trips, a tampered sops file never decrypts to other
//! plaintext).
//!
//! Inputs are drawn from the parsers' own alphabets (quotes, `=`, `#`, `$`,
//! `{`, `:`, `-`, newlines, indentation ...) mixed with arbitrary Unicode, or
//! are byte-level mutations of a valid file, so most cases reach deep into
//! the parser instead of failing on the first byte. `PROPTEST_CASES`
//! overrides the 256 cases each.

use std::path::{Path, PathBuf};

use cc_ci::host::sops::{decrypt_file, AgeIdentities};
use cc_ci::recipe::abra_sh::AbraSh;
use cc_ci::recipe::compose::{ComposeFile, ComposeSet};
use cc_ci::recipe::env_file::EnvFile;
use cc_ci::recipe::Recipe;
use cc_ci::results::RunResults;
use cc_ci::run::settings::Settings;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Shrunk failures are printed; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text of lines made from `atoms` (the parser's own tokens) and arbitrary
/// strings, up to `lines` lines.
fn text_of(atoms: &'static [&'static str], lines: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(atoms).prop_map(str::to_string),
        1 => any::<String>(),
        1 => "[ \t]{0,4}",
    ];
    let line = proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat());
    proptest::collection::vec(line, 0..lines).prop_map(|l| l.join("\n"))
}

/// A mutation of `base`: cut short, a byte range replaced, or text inserted
/// (always at a char boundary).
fn mutated(base: String) -> impl Strategy<Value = String> {
    let len = base.len();
    (0..=len, 0..=len.min(64), any::<String>(), 0u8..3).prop_map(move |(at, n, ins, how)| {
        let floor = |mut i: usize| {
            while !base.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let at = floor(at);
        match how {
            0 => base[..at].to_string(),
            1 => {
                let end = floor((at + n).min(len));
                format!("{}{}{}", &base[..at], ins, &base[end..])
            }
            _ => format!("{}{}{}", &base[..at], ins, &base[at..]),
        }
    })
}

fn names(msg: &str, path: &Path) -> bool {
    msg.contains(&path.display().to_string())
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const ENV_ATOMS: &[&str] = &[
    "KEY",
    "COMPOSE_FILE",
    "DOMAIN",
    "SECRET_DB_PASSWORD_VERSION",
    "export ",
    "=",
    "\"",
    "'",
    "#",
    " # length=32",
    "$",
    "${",
    "}",
    "$KEY",
    "${KEY}",
    "compose.yml:compose.smtp.yml",
    "\\",
    "v1",
    "a b",
];

const YAML_ATOMS: &[&str] = &[
    "version: \"3.8\"",
    "services:",
    "  app:",
    "    image: nginx:1.22.1",
    "    deploy:",
    "      labels:",
    "        - \"traefik.enable=true\"",
    "        - backupbot.backup=true",
    "    secrets:",
    "      - db_password",
    "    volumes:",
    "      - content:/srv",
    "secrets:",
    "  db_password:",
    "    external: true",
    "    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}",
    "configs:",
    "volumes:",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a",
    "*a",
    "<<: *a",
    "!!binary",
    "'",
    "\"",
    "---",
    "    ",
    "\t",
    "null",
    "~",
];

const TOML_ATOMS: &[&str] = &[
    "[timeouts]",
    "deploy = 120",
    "http = 30",
    "[env]",
    "SITE_TITLE = \"x\"",
    "[upgrade]",
    "base = \"1.0.0+1.22.1\"",
    "skip = \"why\"",
    "[serve]",
    "[[serve.checks]]",
    "path = \"/\"",
    "status = [200]",
    "status = [99]",
    "content = \"^a(\"",
    "content = \"^ok$\"",
    "[checks]",
    "[[checks.upgrade]]",
    "[backup]",
    "expect = \"n/a\"",
    "[expect_na]",
    "restore = \"no data\"",
    "[overlay]",
    "[secrets]",
    "=",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "1e999",
    "-1",
    "true",
    "\"\"\"",
];

proptest! {
    #![proptest_config(config())]

    /// env files and `.env.sample`: no panic; a refusal names the file and a
    /// line that exists; what is accepted has keys that are keys.
    #[test]
    fn env_files(text in text_of(ENV_ATOMS, 12)) {
        let path = PathBuf::from("/fuzz/recipe/.env.sample");
        match EnvFile::parse(&path, &text) {
            Ok(env) => {
                for e in &env.entries {
                    prop_assert!(is_key(&e.key), "key {:?} from {text:?}", e.key);
                }
            }
            Err(e) => {
                prop_assert!(names(&e.to_string(), &path), "{e}");
                prop_assert!(e.line >= 1 && e.line <= text.lines().count(), "line {} of {text:?}", e.line);
            }
        }
    }

    /// A recipe folder whose `.env.sample` and compose file are fuzzed:
    /// opening it never panics, a refusal names `.env.sample`, a compose
    /// problem is recorded naming the compose file (or the recipe folder,
    /// when COMPOSE_FILE points outside it), and nothing outside the folder
    /// is read.
    #[test]
    fn recipe_folders(env in text_of(ENV_ATOMS, 8), compose in text_of(YAML_ATOMS, 16)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env.sample"), &env).unwrap();
        std::fs::write(dir.path().join("compose.yml"), &compose).unwrap();
        match Recipe::open(dir.path()) {
            Ok(r) => {
                if let Some(why) = &r.compose_error {
                    prop_assert!(names(why, dir.path()), "{why}");
                }
            }
            Err(e) => prop_assert!(names(&e.to_string(), &dir.path().join(".env.sample")), "{e}"),
        }
    }

    /// Compose files: no panic, and a refusal names the file.
    #[test]
    fn compose_files(text in text_of(YAML_ATOMS, 24), needs_services in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compose.yml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = ComposeFile::read(&path, needs_services) {
            prop_assert!(names(&e.to_string(), &path), "{e}");
        }
    }

    /// An overlay over a valid base: no panic, and a refusal names the
    /// overlay (never the base, which is fine).
    #[test]
    fn compose_overlays(overlay in text_of(YAML_ATOMS, 24)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yml"),
            "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1.22.1\n",
        )
        .unwrap();
        let over = dir.path().join("compose.ccci.yml");
        std::fs::write(&over, &overlay).unwrap();
        let files = ["compose.yml".to_string(), "compose.ccci.yml".to_string()];
        match ComposeSet::load(dir.path(), &files) {
            Ok(set) => prop_assert!(set.services.contains_key("app")),
            Err(e) => prop_assert!(names(&e.to_string(), &over), "{e}"),
        }
    }

    /// COMPOSE_FILE naming a file outside the recipe (absolute or `..`) is
    /// refused before anything is read, naming the recipe folder.
    #[test]
    fn compose_files_outside_the_recipe_are_refused(
        name in prop_oneof![
            "/[a-z]{1,8}(/[a-z]{1,8}){0,3}\\.yml",
            "([a-z]{1,4}/){0,2}\\.\\./[a-z]{1,8}\\.yml",
        ]
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yml"), "services:\n  app:\n    image: x\n").unwrap();
        let files = ["compose.yml".to_string(), name.clone()];
        let e = ComposeSet::load(dir.path(), &files).expect_err(&name);
        prop_assert!(e.to_string().contains("outside the recipe folder"), "{e}");
        prop_assert!(names(&e.to_string(), dir.path()), "{e}");
    }

    /// `abra.sh`: parsing never fails or panics; every export kept has a
    /// shell-name key and every function a name.
    #[test]
    fn abra_sh(text in text_of(&[
        "export ", "KEY", "APP_ENTRYPOINT_VERSION", "=", "v1", "\"", "'", "#", "() {", "}",
        "function ", "migrate", "\n", " ", "$(", ")",
    ], 12)) {
        let a = AbraSh::parse(&text);
        for k in a.exports.keys() {
            prop_assert!(is_key(k), "export {k:?} from {text:?}");
        }
        for f in &a.functions {
            prop_assert!(!f.is_empty(), "{text:?}");
        }
    }

    /// Per-recipe `ccci.toml`: loading never panics, and a refusal names a
    /// file of the settings folder (ccci.toml, the folder, or approved.toml).
    #[test]
    fn settings_files(text in text_of(TOML_ATOMS, 16)) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("fx");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("ccci.toml"), &text).unwrap();
        if let Err(e) = Settings::load(root.path(), "fx") {
            let msg = e.to_string();
            prop_assert!(e.file.starts_with(root.path()), "{msg}");
            prop_assert!(names(&msg, &e.file), "{msg}");
            prop_assert!(!e.message.is_empty());
        }
    }

    /// results.json read back (by the bridge, the dashboard and history):
    /// a mutated file never panics; a refusal names it; what is accepted
    /// writes back and reads again as the same results.
    #[test]
    fn results_files(text in mutated(valid_results())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        std::fs::write(&path, &text).unwrap();
        match RunResults::read(&path) {
            Ok(r) => {
                let again = dir.path().join("again.json");
                r.write(&again).unwrap();
                prop_assert_eq!(RunResults::read(&again).unwrap(), r);
            }
            Err(e) => prop_assert!(names(&e.to_string(), &path), "{e}"),
        }
    }

    /// sops files (YAML and JSON, written by the real sops: tests/keys/),
    /// mutated: no panic; a refusal names the file; and a file that still
    /// decrypts gives exactly the plaintext of the untouched file (a tamper
    /// is never a different secret).
    #[test]
    fn sops_files((name, text) in prop_oneof![
        Just("wildcard.sops.yaml"),
        Just("wildcard.sops.json"),
        Just("wildcard-renewed.sops.yaml"),
    ].prop_flat_map(|n| (Just(n), mutated(std::fs::read_to_string(keys().join(n)).unwrap())))) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        match decrypt_file(&path, &ids()) {
            Ok(d) => {
                let original = decrypt_file(keys().join(name), &ids()).unwrap();
                // Compared, never printed: the values are (test-only) secrets.
                prop_assert!(d.documents == original.documents, "{name}: a mutation decrypted to other plaintext");
            }
            Err(e) => prop_assert!(names(&e.to_string(), &path), "{e}"),
        }
    }
}

/// tests/keys/: TEST-ONLY keys and sops files (see its README).
fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/keys")
}

fn ids() -> AgeIdentities {
    AgeIdentities::from_file(keys().join("age.key")).unwrap()
}

/// A results.json as a finished run writes it.
fn valid_results() -> String {
    let mut r = RunResults::empty();
    r.recipe = "static-site".into();
    r.tested_ref = "710e8125d41ba311f6e379209c4e6a20563a5e99".into();
    r.finish();
    serde_json::to_string_pretty(&r).unwrap()
}
