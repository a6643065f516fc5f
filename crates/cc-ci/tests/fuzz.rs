//! Property tests (proptest) of every parser that takes outside input: env
//! files and `.env.sample` (read, and values written into them), compose
//! files and overlays, compose interpolation, lint's reading of a recipe
//! (its compose YAML and README metadata), `abra.sh` exports,
//! `POST_DEPLOY_CMDS`, backupbot labels, the serve rung's judge of an HTTP
//! answer, per-recipe `ccci.toml`, results.json read back, and sops files
//! (the committed test files under tests/keys/, mutated).
//!
//! Two properties everywhere: no input panics, and every refusal names the
//! file, label or key it refuses. Where a parser accepts, a property of what
//! it accepted is checked as well (keys are keys, a results file and an env
//! value round-trip, a tampered sops file never decrypts to other plaintext,
//! a pass is only ever given to an answer that meets the spec ...).
//!
//! Inputs are drawn from the parsers' own alphabets (quotes, `=`, `#`, `$`,
//! `{`, `:`, `-`, newlines, indentation ...) mixed with arbitrary Unicode, or
//! are byte-level mutations of a valid file, so most cases reach deep into
//! the parser instead of failing on the first byte.
//!
//! Case count: `PROPTEST_CASES` (default 256 per property). A count that
//! would let the properties pass without testing fails every one of them:
//! `0`, anything that is not a number, and fewer than 16 unless
//! `CCCI_FUZZ_FEW_CASES=1` asks for so few on purpose (a quick loop by hand).
//!
//! Counterexamples are kept: proptest writes the seed of every failure it
//! finds into `fuzz.proptest-regressions` beside this file (committed; add
//! the line it prints when a failure shows up in CI), and replays every seed
//! there before the random cases, on every run. The known counterexamples
//! are also named tests (`known_*`), which hold whatever the strategies
//! become.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cc_ci::deploy::native::parse_post_cmds;
use cc_ci::host::sops::{decrypt_file, AgeIdentities};
use cc_ci::probe::serve::{
    html_title, judge, Answer, CertSummary, ExpectStatus, Failure, ServeSpec, Verdict, TRAEFIK_NOT_FOUND_BODY,
};
use cc_ci::recipe::abra_sh::AbraSh;
use cc_ci::recipe::compose::ComposeFile;
use cc_ci::recipe::env_file::{set_in_text, EnvFile};
use cc_ci::recipe::interpolate::{escape, interpolate, interpolate_lenient, InterpolateError, MAX_NESTING};
use cc_ci::recipe::lint::{lint, LintError, Outcome};
use cc_ci::recipe::Recipe;
use cc_ci::results::RunResults;
use cc_ci::run::backup::{contract, service_plan, VolumeMount};
use cc_ci::settings::Settings;
use proptest::prelude::*;
use proptest::test_runner::{FailurePersistence, FileFailurePersistence};

/// The fewest cases a run may have without `CCCI_FUZZ_FEW_CASES=1`.
const MIN_CASES: u32 = 16;

/// The case count of every property, from `PROPTEST_CASES` (see the module
/// docs); `Err` says why the count is refused.
fn cases(var: Option<&str>, few_ok: bool) -> Result<u32, String> {
    let Some(text) = var else { return Ok(256) };
    match text.trim().parse::<u32>() {
        Err(_) => Err(format!(
            "PROPTEST_CASES={text:?} is not a number of cases; unset it (256 cases) or give one >= {MIN_CASES}"
        )),
        Ok(0) => Err(format!(
            "PROPTEST_CASES=0 runs no case: every property would pass without testing anything; \
             unset it (256 cases) or give one >= {MIN_CASES}"
        )),
        Ok(n) if n < MIN_CASES && !few_ok => Err(format!(
            "PROPTEST_CASES={n} is too few cases to mean anything (fewer than {MIN_CASES}); give \
             >= {MIN_CASES}, or set CCCI_FUZZ_FEW_CASES=1 to run so few on purpose"
        )),
        Ok(n) => Ok(n),
    }
}

/// Where proptest keeps the seeds of the failures it found: beside this
/// file, `fuzz.proptest-regressions` (committed, read on every run).
const REGRESSIONS: FileFailurePersistence = FileFailurePersistence::WithSource("proptest-regressions");

fn config() -> ProptestConfig {
    let var = std::env::var("PROPTEST_CASES").ok();
    let few_ok = std::env::var("CCCI_FUZZ_FEW_CASES").as_deref() == Ok("1");
    let cases = cases(var.as_deref(), few_ok).unwrap_or_else(|why| panic!("{why}"));
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(REGRESSIONS)),
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
        match cc_ci::recipe::version::RecipeVersion::read(dir.path()).unwrap().compose_set(&files) {
            Ok(set) => prop_assert!(set.services.contains_key("app")),
            Err(e) => prop_assert!(names(&e.to_string(), &over), "{e}"),
        }
    }

    /// COMPOSE_FILE naming a file outside the recipe (absolute, climbing out
    /// with `..`, or a symlink in the recipe that leads out) where a
    /// readable, valid compose file with a sentinel service waits: the load
    /// is refused naming the recipe folder, and the sentinel shows up in
    /// nothing that is loaded (neither [`RecipeVersion::compose_set`] nor
    /// [`Recipe::open`] reads the file).
    #[test]
    fn compose_files_outside_the_recipe_are_never_read(
        how in 0u8..4,
        parts in proptest::collection::vec("[a-z]{1,6}", 1..3),
        inner in proptest::collection::vec("[a-z]{1,4}", 0..3),
        ups in 1usize..4,
    ) {
        let root = tempfile::tempdir().unwrap();
        let (dir, name) = outside_setup(root.path(), how, &parts, &inner, ups);
        let files = ["compose.yml".to_string(), name.clone()];
        let e = cc_ci::recipe::version::RecipeVersion::read(&dir).unwrap().compose_set(&files).expect_err(&name).to_string();
        prop_assert!(e.contains("outside the recipe folder"), "{e}");
        prop_assert!(names(&e, &dir), "{e}");
        prop_assert!(!e.contains(SENTINEL), "{e}");

        std::fs::write(dir.join(".env.sample"), format!("TYPE=r\nCOMPOSE_FILE=\"compose.yml:{name}\"\n")).unwrap();
        let r = Recipe::open(&dir).unwrap();
        let why = r.compose_error.clone().unwrap_or_default();
        prop_assert!(why.contains("outside the recipe folder") && names(&why, &dir), "{why}");
        prop_assert!(r.services.is_empty(), "{:?}", r.services.keys());
        prop_assert!(!format!("{r:?}").contains(SENTINEL), "the sentinel was read: {r:?}");
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

// ---------------------------------------------------------------------------
// The case count and the regressions file (the guards against a vacuous run)

/// The guard itself, run the way a caller would: this test binary again,
/// with one property and `PROPTEST_CASES` set.
fn run_one_property(cases: &str, few_ok: bool) -> std::process::Output {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["env_files", "--exact", "--test-threads=1"])
        .env("PROPTEST_CASES", cases)
        .env_remove("CCCI_FUZZ_FEW_CASES");
    if few_ok {
        c.env("CCCI_FUZZ_FEW_CASES", "1");
    }
    c.output().unwrap()
}

#[test]
fn a_case_count_that_tests_nothing_fails_the_properties() {
    for (cases, few_ok, says) in [
        ("0", false, "PROPTEST_CASES=0 runs no case"),
        ("0", true, "PROPTEST_CASES=0 runs no case"),
        ("3", false, "PROPTEST_CASES=3 is too few cases"),
        ("lots", false, "PROPTEST_CASES=\"lots\" is not a number"),
    ] {
        let o = run_one_property(cases, few_ok);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.status.success(), "PROPTEST_CASES={cases}: {text}");
        assert!(text.contains(says), "PROPTEST_CASES={cases}: {text}");
    }
    let o = run_one_property("3", true);
    assert!(o.status.success(), "asked for: {}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(cases(None, false), Ok(256));
    assert_eq!(cases(Some("16"), false), Ok(16));
}

#[test]
fn the_regressions_file_is_committed_and_read() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz.proptest-regressions");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let seeds = text.lines().filter(|l| l.starts_with("cc ")).count();
    assert!(seeds > 0, "{}: no seed", file.display());
    // What every property of this file loads before its random cases.
    let loaded = REGRESSIONS.load_persisted_failures2(Some(file!()));
    assert_eq!(loaded.len(), seeds, "{} seeds in {}", loaded.len(), file.display());
}

// ---------------------------------------------------------------------------
// Known counterexamples, named

/// The service name of the compose file outside the recipe.
const SENTINEL: &str = "sentinel_3f9c2a";

/// A recipe folder four levels deep in `root` (so that up to three `..`
/// stay in `root`), and a COMPOSE_FILE name that leads to a valid compose
/// file with the [`SENTINEL`] service outside it: `how` 0 absolute, 1
/// `<inner>/../..`, 2 a symlink in the recipe to the file, 3 a file in a
/// symlinked folder of the recipe.
fn outside_setup(root: &Path, how: u8, parts: &[String], inner: &[String], ups: usize) -> (PathBuf, String) {
    let dir = root.join("w/x/y/recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yml"), "services:\n  app:\n    image: x\n").unwrap();
    let rel = format!("{}.yml", parts.join("/"));
    let inner_path = |last: &str| {
        let mut p: Vec<&str> = inner.iter().map(String::as_str).collect();
        p.push(last);
        p.join("/")
    };
    let (name, target) = match how {
        0 => {
            let t = root.join("out").join(&rel);
            (t.display().to_string(), t)
        }
        1 => {
            let up = "../".repeat(inner.len() + ups);
            let name = inner_path(&format!("{up}{rel}"));
            let mut base = dir.clone();
            for _ in 0..ups {
                base.pop();
            }
            (name, base.join(&rel))
        }
        2 => {
            let t = root.join("out").join(&rel);
            let name = inner_path("compose.link.yml");
            std::fs::create_dir_all(dir.join(&name).parent().unwrap()).unwrap();
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&t, dir.join(&name)).unwrap();
            (name, t)
        }
        _ => {
            let out = root.join("out");
            std::fs::create_dir_all(&out).unwrap();
            let link = inner_path("linked");
            std::fs::create_dir_all(dir.join(&link).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&out, dir.join(&link)).unwrap();
            (format!("{link}/{rel}"), out.join(&rel))
        }
    };
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(
        &target,
        format!(
            "version: \"3.8\"\nservices:\n  {SENTINEL}:\n    image: {SENTINEL}:1\n    deploy:\n      labels:\n        - {SENTINEL}.label=true\n"
        ),
    )
    .unwrap();
    (dir, name)
}

/// The COMPOSE_FILE bug fixed in fa8fd33 (a name that is absolute or climbs
/// out with `..` was joined onto the recipe folder and read), and a symlink
/// that leads out: each refused, the outside file never read.
#[test]
fn known_compose_files_outside_the_recipe() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for (how, parts, inner, ups) in [
        (0, s(&["etc", "passwd"]), s(&[]), 1),
        (1, s(&["outside"]), s(&[]), 1),
        (1, s(&["outside"]), s(&["a"]), 1),
        (1, s(&["x", "compose"]), s(&["a", "b"]), 3),
        (2, s(&["outside"]), s(&[]), 1),
        (3, s(&["outside"]), s(&["sub"]), 1),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (dir, name) = outside_setup(root.path(), how, &parts, &inner, ups);
        let e = cc_ci::recipe::version::RecipeVersion::read(&dir)
            .unwrap()
            .compose_set(&["compose.yml".to_string(), name.clone()])
            .expect_err(&name)
            .to_string();
        assert!(
            e.contains("outside the recipe folder") && names(&e, &dir),
            "{name}: {e}"
        );
        assert!(!e.contains(SENTINEL), "{e}");
    }
    // A symlink that stays inside the recipe is a file of the recipe.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yml"), "services:\n  app:\n    image: x\n").unwrap();
    std::os::unix::fs::symlink("compose.yml", d.path().join("compose.same.yml")).unwrap();
    let set = cc_ci::recipe::version::RecipeVersion::read(d.path())
        .unwrap()
        .compose_set(&["compose.yml".into(), "compose.same.yml".into()])
        .unwrap();
    assert!(set.services.contains_key("app"));
}

// ---------------------------------------------------------------------------
// The parsers fuzzed since issue 16

/// abra's env-file reader, modelled to check what cc-ci writes: the parser
/// of joho/godotenv v1.5 (`parser.go`: `parseBytes`, `locateKeyName`,
/// `extractVarValue`, `expandEscapes`, `expandVariables`), which abra's
/// `envfile` package reads app env files with. Variables are looked up in
/// the file only (godotenv also falls back to the process environment).
mod godotenv {
    use std::collections::BTreeMap;

    fn is_space(c: char) -> bool {
        matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
    }

    /// The assignments of `src`, or godotenv's refusal.
    pub fn read(src: &str) -> Result<BTreeMap<String, String>, String> {
        let src = src.replace("---\n", "\n").replace("\r\n", "\n");
        let mut out = BTreeMap::new();
        let mut cut: &str = &src;
        while let Some(start) = statement_start(cut) {
            let (key, rest) = locate_key(start)?;
            let (value, rest) = extract_value(rest, &out)?;
            out.insert(key, value);
            cut = rest;
        }
        Ok(out)
    }

    fn statement_start(mut src: &str) -> Option<&str> {
        loop {
            let pos = src.find(|c: char| !c.is_whitespace())?;
            src = &src[pos..];
            if !src.starts_with('#') {
                return Some(src);
            }
            src = &src[src.find('\n')?..];
        }
    }

    fn locate_key(src: &str) -> Result<(String, &str), String> {
        let mut src = src.trim_start_matches(is_space);
        if let Some(t) = src.strip_prefix("export") {
            if t.starts_with(is_space) {
                src = t.trim_start_matches(is_space);
            }
        }
        let mut key = "";
        let mut offset = 0;
        for (i, b) in src.bytes().enumerate() {
            let c = b as char;
            if is_space(c) {
                continue;
            }
            match b {
                b'=' | b':' => {
                    key = &src[..i];
                    offset = i + 1;
                    break;
                }
                b'_' => {}
                _ if c.is_alphanumeric() || c == '.' => {}
                _ => return Err(format!("unexpected character {c:?} in variable name near {src:?}")),
            }
        }
        if src.is_empty() {
            return Err("zero length string".into());
        }
        Ok((key.trim_end().to_string(), src[offset..].trim_start_matches(is_space)))
    }

    fn extract_value<'a>(src: &'a str, vars: &BTreeMap<String, String>) -> Result<(String, &'a str), String> {
        let b = src.as_bytes();
        match b.first() {
            Some(&q @ (b'"' | b'\'')) => {
                for i in 1..b.len() {
                    if b[i] != q || b[i - 1] == b'\\' {
                        continue;
                    }
                    let v = src[..i].trim_end_matches(q as char).trim_start_matches(q as char);
                    let v = if q == b'"' {
                        expand_vars(&expand_escapes(v), vars)
                    } else {
                        v.to_string()
                    };
                    return Ok((v, &src[i + 1..]));
                }
                Err(format!("unterminated quoted value {src:?}"))
            }
            _ => {
                let eol = src.find(['\n', '\r']).unwrap_or(src.len());
                let line: Vec<char> = src[..eol].chars().collect();
                let mut end = line.len();
                for i in (1..line.len()).rev() {
                    if line[i] == '#' && is_space(line[i - 1]) {
                        end = i;
                        break;
                    }
                }
                let v: String = line[..end].iter().collect();
                Ok((expand_vars(v.trim_matches(is_space), vars), &src[eol..]))
            }
        }
    }

    fn expand_escapes(s: &str) -> String {
        let esc = regex::Regex::new(r"\\.").unwrap();
        let out = esc.replace_all(s, |c: &regex::Captures<'_>| match &c[0] {
            "\\n" => "\n".to_string(),
            "\\r" => "\r".to_string(),
            m => m.to_string(),
        });
        regex::Regex::new(r"\\([^$])")
            .unwrap()
            .replace_all(&out, "$1")
            .into_owned()
    }

    fn expand_vars(v: &str, vars: &BTreeMap<String, String>) -> String {
        let re = regex::Regex::new(r"(\\)?(\$)(\()?\{?([A-Z0-9_]+)?\}?").unwrap();
        re.replace_all(v, |c: &regex::Captures<'_>| {
            let whole = &c[0];
            if c.get(1).is_some() || c.get(3).is_some() {
                whole[1..].to_string()
            } else if let Some(name) = c.get(4) {
                vars.get(name.as_str()).cloned().unwrap_or_default()
            } else {
                whole.to_string()
            }
        })
        .into_owned()
    }
}

/// Whether [`set_in_text`] may refuse value `v`: the documented shapes no
/// quoting keeps (see `env_file::quote`); `hashy_comment`: the line it
/// replaces keeps a comment that holds a `#`.
fn unwritable(v: &str, hashy_comment: bool) -> bool {
    let needs_quotes = v.is_empty()
        || hashy_comment
        || v.ends_with("---")
        || v.contains(|c: char| c.is_whitespace() || matches!(c, '#' | '$' | '\'' | '"'));
    v.contains(['\n', '\r', '\0'])
        || (v.contains('\'') && v.contains(['"', '$', '\\']))
        || (needs_quotes && v.ends_with('\\'))
}

const VALUE_ATOMS: &[&str] = &[
    "'", "\"", "$", "${A}", "$A", "\\", "\\n", "#", " #", " ", "\t", "\n", "\r", "---", "a", "v1", "=", ":", "é",
    "\u{a0}", "`",
];

fn value_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => proptest::sample::select(VALUE_ATOMS).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// One line of `atoms` and arbitrary strings.
fn line_of(atoms: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => proptest::sample::select(atoms).prop_map(str::to_string),
        1 => any::<String>().prop_map(|s| s.replace(['\n', '\r'], "")),
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

const INTERP_ATOMS: &[&str] = &[
    "$",
    "$$",
    "${",
    "}",
    "{",
    "V",
    "EMPTY",
    "MISSING",
    ":-",
    "-",
    ":?",
    "?",
    ":+",
    "+",
    "_",
    "a",
    " ",
    "${V}",
    "$V",
    "${MISSING:-d}",
    "${V:?no}",
    "${EMPTY:+x}",
];

fn interp_env() -> BTreeMap<String, String> {
    [("V", "v2"), ("EMPTY", ""), ("STACK_NAME", "a_ci_test")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const README_KEYS: &[&str] = &[
    "Category",
    "Status",
    "Image",
    "Healthcheck",
    "Backups",
    "Email",
    "Tests",
    "SSO",
];

/// A README whose metadata block has each key left out, empty, or filled
/// in (values without `*` or line breaks), around arbitrary text; with the
/// R007 detail abra's rule gives it (`None`: satisfied).
fn readme_with_metadata() -> impl Strategy<Value = (String, Option<String>)> {
    let value = "[^*\n\r]{0,12}";
    let row = (0u8..3, value, "[a-z]{0,6}", 0u8..3);
    (
        proptest::collection::vec(row, README_KEYS.len()),
        "[^<*\r]{0,40}",
        "[^<*\r]{0,40}",
        any::<bool>(),
    )
        .prop_map(|(rows, before, after, block)| {
            let mut lines = Vec::new();
            let mut filled = BTreeMap::new();
            for (key, (how, value, image, image_how)) in README_KEYS.iter().zip(rows) {
                let value = if *key == "Image" {
                    match image_how {
                        0 => format!("[`{image}`](https://hub.docker.com/_/x), 4, upstream"),
                        1 => format!("`{image}`, built locally"),
                        _ => value,
                    }
                } else {
                    value
                };
                match how {
                    0 => {}
                    1 => lines.push(format!("* **{key}**:")),
                    _ => {
                        lines.push(format!("* **{key}**: {value}"));
                        filled.insert(*key, value);
                    }
                }
            }
            let mut problems = Vec::new();
            for key in ["Category", "Backups", "Email", "Healthcheck", "SSO"] {
                if filled.get(key).is_none_or(|v| v.trim().is_empty()) {
                    problems.push(format!("{key} is not filled in"));
                }
            }
            let image_ok = filled.get("Image").is_some_and(|v| {
                let parts: Vec<&str> = v.split(',').collect();
                let first = parts[0].trim();
                let name = first.split("](").next().unwrap_or(first);
                parts.len() >= 3
                    && !name
                        .trim_matches(|c| c == '[' || c == ']' || c == '`')
                        .trim()
                        .is_empty()
            });
            if !image_ok {
                problems.push("Image is not filled in as [`image`](url), rating, source".into());
            }
            let text = if block {
                format!(
                    "{before}\n<!-- metadata -->\n{}\n<!-- endmetadata -->\n{after}",
                    lines.join("\n")
                )
            } else {
                problems = vec!["README.md has no <!-- metadata --> ... <!-- endmetadata --> block".into()];
                format!("{before}\n{}\n{after}", lines.join("\n"))
            };
            (text, (!problems.is_empty()).then(|| problems.join("; ")))
        })
}

const PATH_ATOMS: &[&str] = &[
    "/",
    ".",
    "..",
    ",",
    " ",
    "a",
    "sub",
    "backup.sql",
    "/var/lib/app",
    "/var/lib/app/cache",
    "/usr/share/nginx/html",
    "//",
    "/data",
];

/// The mounts of a labelled service: named volumes at some of these paths.
fn backup_mounts() -> impl Strategy<Value = Vec<VolumeMount>> {
    let all = [
        ("content", "/usr/share/nginx/html"),
        ("data", "/var/lib/app"),
        ("deep", "/var/lib/app/cache"),
        ("root", "/"),
        ("other", "/data"),
    ];
    proptest::sample::subsequence(all.to_vec(), 0..=all.len()).prop_map(|v| {
        v.into_iter()
            .map(|(short, target)| VolumeMount {
                volume: format!("s_{short}"),
                short: short.into(),
                target: target.into(),
            })
            .collect()
    })
}

fn backup_labels() -> impl Strategy<Value = HashMap<String, String>> {
    let shorts = ["content", "data", "deep", "root", "other", "nowhere"];
    let switch = prop_oneof![
        Just("false".to_string()),
        Just(" False ".to_string()),
        Just("true".to_string()),
        any::<String>()
    ];
    let one = prop_oneof![
        prop_oneof![Just("true"), Just(" TRUE "), Just("1"), Just("yes"), Just("")]
            .prop_map(|v| (contract::ENABLE.to_string(), v.to_string())),
        (
            proptest::sample::select(vec![
                contract::BACKUP_PRE_HOOK,
                contract::BACKUP_POST_HOOK,
                contract::RESTORE_PRE_HOOK,
                contract::RESTORE_POST_HOOK
            ]),
            any::<String>()
        )
            .prop_map(|(k, v)| (k.to_string(), v)),
        line_of(PATH_ATOMS).prop_map(|v| (contract::LEGACY_PATH.to_string(), v)),
        (proptest::sample::select(shorts.to_vec()), switch).prop_map(|(s, v)| (contract::volume_switch(s), v)),
        (proptest::sample::select(shorts.to_vec()), line_of(PATH_ATOMS))
            .prop_map(|(s, v)| (contract::volume_paths(s), v)),
    ];
    proptest::collection::hash_map(any::<u8>(), one, 0..6).prop_map(|m| m.into_values().collect())
}

const BODIES: &[&str] = &[
    TRAEFIK_NOT_FOUND_BODY,
    "Bad Gateway",
    "Gateway Timeout",
    "no available server\n",
    "Service Unavailable\n",
    "<html><head><title>Welcome &amp; hello</title></head><body>ok</body></html>",
    "<title>\n  A   site </title>ok",
    "",
];

fn answers() -> impl Strategy<Value = Answer> {
    (
        prop_oneof![Just(404u16), Just(200u16), Just(301u16), 502u16..505, 100u16..600],
        prop_oneof![
            proptest::sample::select(BODIES).prop_map(|b| b.as_bytes().to_vec()),
            any::<String>().prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..64),
        ],
        proptest::option::of(prop_oneof![
            Just("text/plain; charset=utf-8".to_string()),
            Just("text/html".to_string())
        ]),
        any::<bool>(),
        proptest::option::of("[ -~]{0,20}"),
        any::<bool>(),
    )
        .prop_map(|(status, body, content_type, nosniff, location, truncated)| Answer {
            status,
            content_type,
            nosniff,
            location,
            body,
            truncated,
        })
}

fn specs() -> impl Strategy<Value = ServeSpec> {
    let re = proptest::option::of(prop_oneof![
        Just("ok"),
        Just("^Welcome"),
        Just("(?i)a site"),
        Just("."),
        Just("^$"),
    ]);
    (
        prop_oneof![
            Just(ExpectStatus::SuccessOrRedirect),
            proptest::collection::vec(prop_oneof![Just(404u16), Just(503u16), 100u16..600], 0..4)
                .prop_map(ExpectStatus::AnyOf),
        ],
        re.clone(),
        re,
    )
        .prop_map(|(expect, title, content)| {
            let mut s = ServeSpec::new("app-1a2b3c.ci.test", "/nonexistent/ca.crt");
            s.expect = expect;
            s.title = title.map(|t| regex::Regex::new(t).unwrap());
            s.content = content.map(|c| regex::Regex::new(c).unwrap());
            s
        })
}

fn cert() -> CertSummary {
    CertSummary {
        subject: "CN=*.ci.test".into(),
        issuer: "CN=cc-ci test CA".into(),
        dns_names: vec!["*.ci.test".into()],
        not_after: "Tue, 1 Jan 2030 00:00:00 +0000".into(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

proptest! {
    #![proptest_config(config())]

    /// A value written into an env file (settings `[env]`, secrets, `TYPE`
    /// ...) reads back equal, through cc-ci's reader and abra's
    /// (godotenv's) alike, or is refused naming the key, only for the
    /// documented shapes no quoting keeps.
    #[test]
    fn env_values_written_read_back(
        base in proptest::collection::vec(proptest::sample::select(vec![
            "# comment", "A=1", "K=v1 # length=32", "K=v2 # a # b", "COMPOSE_FILE=\"compose.yml\"",
            "COMPOSE_FILE=\"$COMPOSE_FILE:compose.x.yml\"", "export K='x'", "", "B=\"$A:b\"", "#K=old",
        ]), 0..6).prop_map(|l| l.join("\n")),
        key in prop_oneof![Just("K"), Just("A"), Just("COMPOSE_FILE"), Just("NEW_KEY")],
        value in value_text(),
    ) {
        let path = PathBuf::from("/fuzz/app.env");
        prop_assert!(EnvFile::parse(&path, &base).is_ok(), "{base:?}");
        let hashy = base.lines().rfind(|l| {
            let l = l.trim_start();
            l.strip_prefix("export ").unwrap_or(l).strip_prefix(key).is_some_and(|r| r.starts_with('='))
        }) == Some("K=v2 # a # b");
        match set_in_text(&base, key, &value) {
            Ok(text) => {
                prop_assert!(!unwritable(&value, hashy), "{value:?} should have been refused");
                let env = EnvFile::parse(&path, &text);
                prop_assert!(env.is_ok(), "{text:?}: {env:?}");
                let env = env.unwrap();
                prop_assert_eq!(env.get(key), Some(value.as_str()), "{:?}", text);
                let line = text.lines().rfind(|l| {
                    let l = l.trim_start();
                    l.strip_prefix(key).is_some_and(|r| r.starts_with('='))
                }).unwrap();
                let abra = godotenv::read(&format!("{line}\n"));
                prop_assert_eq!(abra.as_ref().ok().and_then(|m| m.get(key)), Some(&value), "abra reads {:?} as {:?}", line, abra);
            }
            Err(e) => {
                prop_assert!(unwritable(&value, hashy), "{value:?} refused: {e}");
                prop_assert_eq!(&e.key, key);
                prop_assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
            }
        }
    }

    /// Compose interpolation: no panic; the lenient reading agrees where the
    /// strict one accepts; refusals quote the text or name the variable;
    /// escaped text comes back as written; a substituted value is never
    /// interpreted again; text without `$` is left alone; nesting up to
    /// [`MAX_NESTING`] is read, deeper is refused (never a stack overflow).
    #[test]
    fn interpolation(
        text in line_of(INTERP_ATOMS),
        plain in any::<String>(),
        a in any::<String>(),
        b in any::<String>(),
        depth in 0usize..200,
    ) {
        let env = interp_env();
        // The innermost default: plain text (a `}` would close the `${`).
        let inner = a.replace(['$', '{', '}'], "");
        let nested = format!("{}{}{}", "${MISSING:-".repeat(depth), inner, "}".repeat(depth));
        match interpolate(&nested, &env) {
            Ok(v) => prop_assert!(depth <= MAX_NESTING && v == inner, "{depth}: {v:?}"),
            Err(e) => prop_assert!(depth > MAX_NESTING && matches!(e, InterpolateError::TooDeep { .. }), "{depth}: {e}"),
        }
        match interpolate(&text, &env) {
            Ok(v) => prop_assert_eq!(interpolate_lenient(&text, &env), v),
            Err(InterpolateError::Unclosed { text: t }) => prop_assert!(text.contains(&t), "{t:?} in {text:?}"),
            Err(InterpolateError::TooDeep { text: t }) => prop_assert!(text.contains(&t), "{t:?} in {text:?}"),
            Err(InterpolateError::Required { var, .. }) => {
                prop_assert!(text.contains(&format!("${{{var}")), "{var} in {text:?}");
                prop_assert!(env.get(&var).is_none_or(|v| v.is_empty()), "{var} is set");
            }
        }
        prop_assert_eq!(interpolate(&escape(&plain), &env).unwrap(), plain.clone());
        let mut with = env.clone();
        with.insert("K".into(), plain.clone());
        let t = format!("{}${{K}}{}$K", escape(&a), escape(&b));
        prop_assert_eq!(interpolate(&t, &with).unwrap(), format!("{a}{plain}{b}{plain}"));
        if !plain.contains('$') {
            prop_assert_eq!(interpolate(&plain, &env).unwrap(), plain);
        }
    }

    /// Lint's reading of a recipe (every compose*.yml, `.env.sample`,
    /// README.md): no panic; a refusal names the compose file or
    /// `.env.sample`; an accepted recipe gets one finding per rule, in ref
    /// order, all in the table.
    #[test]
    fn lint_reads(compose in text_of(YAML_ATOMS, 16), env in text_of(ENV_ATOMS, 4), readme in text_of(&[
        "<!-- metadata -->", "<!-- endmetadata -->", "* **Category**:", "* **Image**:", " Apps", "[`nginx`](u)",
        ", 4, upstream", "**SSO**", "?", "*", ",",
    ], 8)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yml"), &compose).unwrap();
        std::fs::write(dir.path().join(".env.sample"), &env).unwrap();
        std::fs::write(dir.path().join("README.md"), &readme).unwrap();
        match lint(dir.path()) {
            Ok(r) => {
                let refs: Vec<&str> = r.findings.iter().map(|f| f.rule.reference).collect();
                let want: Vec<String> = (1..=15).map(|i| format!("R{i:03}")).collect();
                prop_assert_eq!(refs, want.iter().map(String::as_str).collect::<Vec<_>>());
                let table = r.table();
                for w in &want {
                    prop_assert!(table.contains(w.as_str()), "{w} not in {table}");
                }
            }
            Err(LintError::Compose { file, .. }) => prop_assert_eq!(file, dir.path().join("compose.yml")),
            Err(LintError::Env(e)) => prop_assert!(names(&e.to_string(), &dir.path().join(".env.sample")), "{e}"),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    /// README metadata (R007): satisfied exactly when every key abra checks
    /// is filled in and the Image row has an image, a rating and a source;
    /// else the detail names each key that is not (or the missing block).
    #[test]
    fn readme_metadata((readme, problems) in readme_with_metadata()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yml"), "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1.22.1\n").unwrap();
        std::fs::write(dir.path().join("README.md"), &readme).unwrap();
        let r = lint(dir.path()).unwrap();
        let f = r.finding("R007").unwrap();
        match problems {
            None => prop_assert_eq!(&f.outcome, &Outcome::Satisfied, "{:?}\n{}", f.detail, readme),
            Some(p) => {
                prop_assert_eq!(&f.outcome, &Outcome::Failed, "{}", readme);
                prop_assert_eq!(f.detail.as_deref(), Some(p.as_str()), "{}", readme);
            }
        }
    }

    /// `POST_DEPLOY_CMDS` / `POST_UPGRADE_CMDS`: no panic; every `|` entry
    /// becomes one command of a service and a function (never dropped), or
    /// the value is refused naming the variable and the entry; what is
    /// accepted reads the same when written back.
    #[test]
    fn post_deploy_cmds(
        text in line_of(&["app", "db", " ", "  ", "|", "write_marker", "deployed", "--all", "\t", "a b", "|app"]),
        var in prop_oneof![Just("POST_DEPLOY_CMDS"), Just("POST_UPGRADE_CMDS")],
    ) {
        match parse_post_cmds(var, &text) {
            Ok(cmds) => {
                if text.trim().is_empty() {
                    prop_assert!(cmds.is_empty());
                } else {
                    prop_assert_eq!(cmds.len(), text.split('|').count(), "{:?}", text);
                }
                for c in &cmds {
                    for w in std::iter::once(&c.service).chain([&c.function]).chain(&c.args) {
                        prop_assert!(!w.is_empty() && !w.contains(char::is_whitespace), "{w:?} of {text:?}");
                    }
                }
                let again: Vec<String> = cmds.iter().map(|c| {
                    std::iter::once(c.service.as_str()).chain([c.function.as_str()]).chain(c.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
                }).collect();
                prop_assert_eq!(parse_post_cmds(var, &again.join("|")).unwrap(), cmds);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with(&format!("{var}: ")), "{msg}");
                prop_assert!(msg.contains("<service> <function> [args]"), "{msg}");
                let entry = text.split('|').nth(e.entry - 1);
                prop_assert!(entry.is_some_and(|en| en.split_whitespace().count() < 2), "{msg} for {text:?}");
            }
        }
    }

    /// backupbot labels to a plan: no panic; a refusal names the label and
    /// the service; an accepted plan backs up only volumes the service
    /// mounts, at normalised paths inside them, never an excluded volume,
    /// every volume with its own path label at least one path, and a
    /// volume no label speaks of whole; the hooks are the labels' values.
    #[test]
    fn backupbot_labels(labels in backup_labels(), mounts in backup_mounts()) {
        match service_plan("app", &labels, &mounts) {
            Ok(None) => prop_assert!(!labels.get(contract::ENABLE).is_some_and(|v| contract::enabled(v))),
            Ok(Some((plan, notes))) => {
                prop_assert!(labels.get(contract::ENABLE).is_some_and(|v| contract::enabled(v)));
                prop_assert_eq!(plan.hooks.backup_pre.as_ref(), labels.get(contract::BACKUP_PRE_HOOK));
                prop_assert_eq!(plan.hooks.restore_post.as_ref(), labels.get(contract::RESTORE_POST_HOOK));
                let mut sorted = plan.targets.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&sorted, &plan.targets);
                for t in &plan.targets {
                    let m = mounts.iter().find(|m| m.volume == t.volume);
                    prop_assert!(m.is_some_and(|m| m.short == t.short && m.target == t.mount), "{t:?}");
                    prop_assert!(!t.rel.starts_with('/') && t.rel.split('/').all(|c| !matches!(c, "." | "..")), "{t:?}");
                    prop_assert!(t.rel.is_empty() || t.rel.split('/').all(|c| !c.is_empty()), "{t:?}");
                    prop_assert!(t.container_path().starts_with(&t.mount), "{t:?}");
                }
                for m in &mounts {
                    let excluded = labels.get(&contract::volume_switch(&m.short)).is_some_and(|v| contract::excluded(v));
                    let got: Vec<_> = plan.targets.iter().filter(|t| t.volume == m.volume).collect();
                    if excluded {
                        prop_assert!(got.is_empty(), "{m:?} excluded: {got:?}");
                        prop_assert!(notes.iter().any(|n| n.contains(&contract::volume_switch(&m.short))), "{notes:?}");
                    } else if labels.contains_key(&contract::volume_paths(&m.short)) {
                        prop_assert!(!got.is_empty(), "{m:?} has a path label and nothing is backed up");
                    } else if !labels.contains_key(contract::LEGACY_PATH) {
                        prop_assert!(got.len() == 1 && got[0].rel.is_empty(), "{m:?} whole: {got:?}");
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("service app"), "{msg}");
                prop_assert!(
                    labels.keys().any(|k| k.contains("path") && msg.contains(&format!("{k} ")) || msg.contains(&format!("`{k}`"))),
                    "{msg} names no label of {:?}", labels.keys()
                );
            }
        }
    }

    /// The serve rung's judge of one HTTP answer: no panic; a pass only for
    /// an answer that meets the spec (expected status, not Traefik's own
    /// page, title and content matching); Traefik's 404 is always "not
    /// yet"; "not yet" only for Traefik's 404 or a 502-504 the spec does
    /// not accept (or Traefik's own); the judge never says "error".
    #[test]
    fn serve_judge(answer in answers(), spec in specs()) {
        let v = judge(&spec, answer.clone(), cert(), Duration::from_millis(5));
        let _ = v.to_string();
        let status = answer.status;
        let gateway = (502..=504).contains(&status);
        match &v {
            Verdict::Pass(s) => {
                prop_assert_eq!(s.status, status);
                prop_assert!(spec.expect.accepts(status));
                prop_assert!(!answer.is_traefik_not_found() && !answer.is_traefik_backend_error());
                if let Some(re) = &spec.title {
                    prop_assert!(s.title.as_deref().is_some_and(|t| re.is_match(t)), "{:?}", s.title);
                }
                if let Some(re) = &spec.content {
                    prop_assert!(re.is_match(&String::from_utf8_lossy(&answer.body)));
                }
            }
            Verdict::Fail(Failure::UnexpectedStatus { status: s, .. }) => {
                prop_assert_eq!(*s, status);
                prop_assert!(!spec.expect.accepts(status));
                prop_assert!(v.to_string().contains(&status.to_string()), "{v}");
            }
            Verdict::Fail(_) => {}
            Verdict::Error(e) => prop_assert!(false, "the judge decided an error: {e}"),
        }
        if answer.is_traefik_not_found() {
            prop_assert!(v.is_not_yet(), "{v}");
        }
        if v.is_not_yet() {
            prop_assert!(
                answer.is_traefik_not_found() || (gateway && (answer.is_traefik_backend_error() || !spec.expect.accepts(status))),
                "{v} for {answer:?}"
            );
        }
    }

    /// A page's `<title>`: no panic on any text; an escaped title decodes
    /// back to what was escaped, whitespace collapsed.
    #[test]
    fn html_titles(raw in any::<String>(), title in any::<String>()) {
        let _ = html_title(&raw);
        let page = format!("<html><head><title>{}</title></head></html>", html_escape(&title));
        let want = title.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(html_title(&page), Some(want));
    }
}
