//! The sops decryptor against files the REAL sops binary wrote: the committed
//! test files under tests/keys/, and files encrypted at test time by the
//! sops that scripts/tools builds (found via $CCCI_SOPS or the tools cache;
//! without it those tests fail unless `CCCI_ALLOW_SKIP` allows skipping it).

use std::path::{Path, PathBuf};
use std::process::Command;

use cc_ci::host::sops::{decrypt_file, AgeIdentities, SopsError, Value};
use test_support::{sops as sops_bin, test_keys as keys};

fn ids() -> AgeIdentities {
    AgeIdentities::from_file(keys().join("age.key")).unwrap()
}

fn recipient() -> String {
    std::fs::read_to_string(keys().join("age.recipient"))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs the real sops with the test identity; returns stdout, panics on failure.
fn sops(bin: &Path, args: &[&str]) -> String {
    let out = sops_status(bin, args);
    assert!(
        out.status.success(),
        "sops {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sops_status(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("SOPS_AGE_KEY_FILE", keys().join("age.key"))
        .env("SOPS_AGE_RECIPIENTS", recipient())
        .output()
        .unwrap()
}

#[test]
fn committed_yaml_gives_the_committed_certificate() {
    let dec = decrypt_file(keys().join("wildcard.sops.yaml"), &ids()).unwrap();
    let cert = std::fs::read_to_string(keys().join("wildcard.crt")).unwrap();
    assert_eq!(dec.get_str("cert"), Some(cert.as_str()));
    let key = dec.get_str("key").unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(key.ends_with("-----END PRIVATE KEY-----\n"));
    // Debug output must not leak the plaintext.
    let dbg = format!("{dec:?}");
    assert!(!dbg.contains("BEGIN"), "{dbg}");
}

#[test]
fn committed_binary_json_gives_the_committed_certificate() {
    let dec = decrypt_file(keys().join("wildcard.sops.json"), &ids()).unwrap();
    let cert = std::fs::read_to_string(keys().join("wildcard.crt")).unwrap();
    assert_eq!(dec.get_str("data"), Some(cert.as_str()));
}

#[test]
fn wrong_identity_is_refused_naming_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let other = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret;
    let p = dir.path().join("other.key");
    std::fs::write(&p, format!("{}\n", other.to_string().expose_secret())).unwrap();
    let err = decrypt_file(
        keys().join("wildcard.sops.yaml"),
        &AgeIdentities::from_file(&p).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, SopsError::NoMatchingIdentity { .. }), "{err}");
    assert!(err.to_string().contains(&recipient()), "{err}");
}

/// Replaces one base64 character inside the `data:` of the value `key` by a
/// different one, so the file still parses but one ciphertext byte changed.
fn flip_ciphertext(text: &str, key: &str) -> String {
    let marker = format!("{key}: ENC[AES256_GCM,data:");
    let at = text.find(&marker).expect("key in file") + marker.len() + 10;
    let old = text.as_bytes()[at] as char;
    let new = if old == 'A' { 'B' } else { 'A' };
    format!("{}{}{}", &text[..at], new, &text[at + 1..])
}

#[test]
fn one_changed_ciphertext_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(keys().join("wildcard.sops.yaml")).unwrap();
    let p = dir.path().join("tampered.sops.yaml");
    std::fs::write(&p, flip_ciphertext(&text, "key")).unwrap();
    let err = decrypt_file(&p, &ids()).unwrap_err();
    assert!(
        matches!(&err, SopsError::ValueAuth { key_path, .. } if key_path == "key"),
        "{err}"
    );
    assert!(err.to_string().contains("tampered.sops.yaml"), "{err}");
}

#[test]
fn a_value_moved_to_another_key_is_refused() {
    // Both values are authentic ciphertexts, but bound to their key path.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(keys().join("wildcard.sops.yaml")).unwrap();
    let cert_line = text.lines().find(|l| l.starts_with("cert: ")).unwrap();
    let key_line = text.lines().find(|l| l.starts_with("key: ")).unwrap();
    let swapped = text.replace(key_line, &format!("key: {}", &cert_line[6..]));
    let p = dir.path().join("swapped.sops.yaml");
    std::fs::write(&p, swapped).unwrap();
    let err = decrypt_file(&p, &ids()).unwrap_err();
    assert!(matches!(err, SopsError::ValueAuth { .. }), "{err}");
}

#[test]
fn a_changed_lastmodified_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(keys().join("wildcard.sops.yaml")).unwrap();
    let line = text.lines().find(|l| l.contains("lastmodified:")).unwrap();
    let changed = text.replace(line, "    lastmodified: \"2001-01-01T00:00:00Z\"");
    let p = dir.path().join("lm.sops.yaml");
    std::fs::write(&p, changed).unwrap();
    let err = decrypt_file(&p, &ids()).unwrap_err();
    assert!(matches!(err, SopsError::MacUnreadable { .. }), "{err}");
}

const PLAIN_YAML: &str = r#"zeta: last key first
alpha:
  nested:
    deep: "value with: colon"
    list:
      - one
      - 2
      - 3.5
      - true
      - nested_in_list: x
  empty: ""
  nothing: null
number: 42
negative: -7
float: 0.125
big_float: 1e21
flag: false
multi: |
  line one
  line two
unicode: "héllo ✓"
port_unencrypted: 8080
note_unencrypted: visible
"#;

/// The expected decryption of PLAIN_YAML.
fn expected_plain() -> Value {
    let s = |v: &str| Value::Str(v.into());
    let m = |items: Vec<(&str, Value)>| Value::Map(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    m(vec![
        ("zeta", s("last key first")),
        (
            "alpha",
            m(vec![
                (
                    "nested",
                    m(vec![
                        ("deep", s("value with: colon")),
                        (
                            "list",
                            Value::List(vec![
                                s("one"),
                                Value::Int(2),
                                Value::Float(3.5),
                                Value::Bool(true),
                                m(vec![("nested_in_list", s("x"))]),
                            ]),
                        ),
                    ]),
                ),
                ("empty", s("")),
                ("nothing", Value::Null),
            ]),
        ),
        ("number", Value::Int(42)),
        ("negative", Value::Int(-7)),
        ("float", Value::Float(0.125)),
        ("big_float", Value::Float(1e21)),
        ("flag", Value::Bool(false)),
        ("multi", s("line one\nline two\n")),
        ("unicode", s("héllo ✓")),
        ("port_unencrypted", Value::Int(8080)),
        ("note_unencrypted", s("visible")),
    ])
}

/// Encrypts `plain` with the real sops; returns the encrypted file's path.
fn encrypt(bin: &Path, dir: &Path, name: &str, plain: &str, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("plain-{name}"));
    std::fs::write(&src, plain).unwrap();
    // `--config` is a global flag: it goes before the subcommand.
    let mut args = Vec::new();
    let mut rest = extra;
    if let ["--config", path, tail @ ..] = extra {
        args.extend(["--config", *path]);
        rest = tail;
    }
    args.push("encrypt");
    args.extend_from_slice(rest);
    let s = src.to_str().unwrap().to_string();
    args.push(&s);
    let out = sops(bin, &args);
    let dst = dir.join(name);
    std::fs::write(&dst, out).unwrap();
    dst
}

#[test]
fn fresh_yaml_from_real_sops_round_trips_and_agrees_with_sops_decrypt() {
    let Some(bin) = sops_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let enc = encrypt(&bin, dir.path(), "fresh.sops.yaml", PLAIN_YAML, &[]);
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(text.contains("port_unencrypted: 8080"), "suffix rule kept it plain");
    assert!(!text.contains("line one"), "values are encrypted");
    let dec = decrypt_file(&enc, &ids()).unwrap();
    assert_eq!(dec.documents, vec![expected_plain()]);
    // And exactly what sops itself decrypts.
    let theirs: serde_json::Value = serde_json::from_str(&sops(
        &bin,
        &["decrypt", "--output-type", "json", enc.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(dec.documents[0].to_json(), theirs);
}

#[test]
fn fresh_json_and_binary_from_real_sops_round_trip() {
    let Some(bin) = sops_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"z": "first", "a": {"n": 1, "f": 2.5, "b": true, "l": ["x", 3]}, "s_unencrypted": "plain"}"#;
    let enc = encrypt(&bin, dir.path(), "fresh.sops.json", json, &[]);
    let dec = decrypt_file(&enc, &ids()).unwrap();
    let want: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(dec.documents[0].to_json(), want);
    let Value::Map(items) = &dec.documents[0] else { panic!() };
    assert_eq!(items[0].0, "z", "order kept");

    let payload = "arbitrary\nbinary-ish payload \u{1F600}\n";
    let enc = encrypt(
        &bin,
        dir.path(),
        "fresh.bin.sops",
        payload,
        &["--input-type", "binary", "--output-type", "json"],
    );
    let dec = decrypt_file(&enc, &ids()).unwrap();
    assert_eq!(dec.get_str("data"), Some(payload));
}

#[test]
fn fresh_file_with_encrypted_regex_and_mac_only_encrypted_round_trips() {
    let Some(bin) = sops_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plain = "public: hello\nsecret: s3cr3t\nnested:\n  secret: inner\n  other: 5\n";
    // mac_only_encrypted has no command-line flag; it is a creation rule.
    let config = dir.path().join("sops-config.yaml");
    std::fs::write(
        &config,
        format!(
            "creation_rules:\n  - encrypted_regex: '^secret$'\n    mac_only_encrypted: true\n    age: {}\n",
            recipient()
        ),
    )
    .unwrap();
    let enc = encrypt(
        &bin,
        dir.path(),
        "regex.sops.yaml",
        plain,
        &["--config", config.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(text.contains("public: hello") && text.contains("mac_only_encrypted: true"));
    let dec = decrypt_file(&enc, &ids()).unwrap();
    assert_eq!(dec.get_str("secret"), Some("s3cr3t"));
    assert_eq!(
        dec.get("nested").unwrap().get("secret"),
        Some(&Value::Str("inner".into()))
    );
    assert_eq!(dec.get("nested").unwrap().get("other"), Some(&Value::Int(5)));
    // With mac_only_encrypted, a plain value may change without a MAC error
    // (that is sops's documented semantics), and sops agrees.
    let changed = dir.path().join("regex2.sops.yaml");
    std::fs::write(&changed, text.replace("public: hello", "public: changed")).unwrap();
    assert_eq!(
        decrypt_file(&changed, &ids()).unwrap().get_str("public"),
        Some("changed")
    );
    assert!(sops_status(&bin, &["decrypt", changed.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn a_changed_plain_value_is_a_mac_mismatch_for_us_and_for_sops() {
    let Some(bin) = sops_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let enc = encrypt(&bin, dir.path(), "mac.sops.yaml", PLAIN_YAML, &[]);
    let text = std::fs::read_to_string(&enc).unwrap();
    for (name, tampered) in [
        (
            "changed",
            text.replace("port_unencrypted: 8080", "port_unencrypted: 8081"),
        ),
        ("removed", text.replace("note_unencrypted: visible\n", "")),
        ("added", text.replace("sops:\n", "extra_unencrypted: 1\nsops:\n")),
    ] {
        assert_ne!(tampered, text, "{name}: the edit applied");
        let p = dir.path().join(format!("{name}.sops.yaml"));
        std::fs::write(&p, &tampered).unwrap();
        let err = decrypt_file(&p, &ids()).unwrap_err();
        assert!(matches!(err, SopsError::MacMismatch { .. }), "{name}: {err}");
        assert!(err.to_string().starts_with("MAC mismatch in "), "{err}");
        let theirs = sops_status(&bin, &["decrypt", p.to_str().unwrap()]);
        assert!(!theirs.status.success(), "{name}: real sops accepted it too");
        assert!(
            String::from_utf8_lossy(&theirs.stderr).contains("MAC mismatch"),
            "{name}: {}",
            String::from_utf8_lossy(&theirs.stderr)
        );
    }
}
