//! cert-install against the real Docker engine with the committed test sops
//! files. The node must already be a swarm manager (scripts/test runs
//! swarm-init first); a missing engine or swarm fails these tests unless
//! `CCCI_ALLOW_SKIP` allows skipping it. Each test uses its own Traefik
//! domain, so they run in parallel, and removes the secrets it created.

use std::path::Path;
use std::process::{Command, Output};

use bollard::query_parameters::ListSecretsOptions;
use test_support::{output_text as out, rt, test_keys as keys, Component};

/// A unique Traefik domain for one test; removes its secrets when dropped.
struct TestDomain(String);

impl TestDomain {
    fn new(test: &str) -> TestDomain {
        TestDomain(format!("{}.ci.test", test_support::unique(test)))
    }
    fn stack(&self) -> String {
        self.0.replace('.', "_")
    }
    /// (name, id, sha label) of this stack's secrets, sorted by name.
    fn secrets(&self) -> Vec<(String, String, String)> {
        let prefix = format!("{}_", self.stack());
        rt().block_on(async {
            let d = cc_ci::host::swarm::connect().await.unwrap();
            let mut f = std::collections::HashMap::new();
            f.insert("name".to_string(), vec![prefix.clone()]);
            let mut v: Vec<_> = d
                .list_secrets(Some(ListSecretsOptions { filters: Some(f) }))
                .await
                .unwrap()
                .into_iter()
                .filter_map(|s| {
                    let spec = s.spec?;
                    let name = spec.name?;
                    name.starts_with(&prefix).then(|| {
                        let sha = spec
                            .labels
                            .and_then(|mut l| l.remove(cc_ci::host::cert::SHA256_LABEL))
                            .unwrap_or_default();
                        (name, s.id.unwrap_or_default(), sha)
                    })
                })
                .collect();
            v.sort();
            v
        })
    }
    fn names(&self) -> Vec<String> {
        self.secrets().into_iter().map(|s| s.0).collect()
    }
}

impl Drop for TestDomain {
    fn drop(&mut self) {
        let names = self.names();
        if !names.is_empty() {
            let _ = Command::new("docker").arg("secret").arg("rm").args(&names).output();
        }
    }
}

fn cert_install(sops_file: &Path, domain: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cert-install"))
        .arg("--sops-file")
        .arg(sops_file)
        .arg("--domain")
        .arg(domain)
        .env("SOPS_AGE_KEY_FILE", keys().join("age.key"))
        .output()
        .unwrap()
}

#[test]
fn second_run_creates_nothing_and_a_renewed_cert_creates_v2() {
    if !test_support::need(Component::Swarm) {
        return;
    }
    let d = TestDomain::new("twice");
    let s = d.stack();
    let first = cert_install(&keys().join("wildcard.sops.yaml"), &d.0);
    assert!(first.status.success(), "{}", out(&first));
    assert!(out(&first).contains("in force: v1"), "{}", out(&first));
    assert_eq!(d.names(), [format!("{s}_ssl_cert_v1"), format!("{s}_ssl_key_v1")]);
    let before = d.secrets();

    let second = cert_install(&keys().join("wildcard.sops.yaml"), &d.0);
    assert!(second.status.success(), "{}", out(&second));
    assert!(out(&second).contains("nothing to do"), "{}", out(&second));
    assert_eq!(d.secrets(), before, "second run created or changed nothing");

    let renewed = cert_install(&keys().join("wildcard-renewed.sops.yaml"), &d.0);
    assert!(renewed.status.success(), "{}", out(&renewed));
    assert!(out(&renewed).contains("in force: v2"), "{}", out(&renewed));
    let after = d.secrets();
    assert_eq!(after.len(), 4);
    assert!(before.iter().all(|b| after.contains(b)), "v1 kept as it was");
    let v2: Vec<_> = after.iter().filter(|s| s.0.ends_with("_v2")).collect();
    assert_eq!(v2.len(), 2);
    assert!(
        v2.iter().all(|s| !before.iter().any(|b| b.2 == s.2)),
        "v2 holds new content"
    );

    // The first certificate again: v1 still holds it, nothing is created.
    let back = cert_install(&keys().join("wildcard.sops.yaml"), &d.0);
    assert!(back.status.success(), "{}", out(&back));
    assert!(out(&back).contains("nothing to do: v1"), "{}", out(&back));
    assert_eq!(d.secrets(), after);
}

#[test]
fn secrets_hold_the_sha256_of_the_committed_certificate() {
    if !test_support::need(Component::Swarm) {
        return;
    }
    let d = TestDomain::new("sha");
    let o = cert_install(&keys().join("wildcard.sops.yaml"), &d.0);
    assert!(o.status.success(), "{}", out(&o));
    let cert = std::fs::read(keys().join("wildcard.crt")).unwrap();
    let want = Command::new("sha256sum")
        .arg(keys().join("wildcard.crt"))
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&want.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(want.len(), 64, "{cert:?}");
    let secrets = d.secrets();
    let cert_secret = secrets.iter().find(|s| s.0.ends_with("_ssl_cert_v1")).unwrap();
    assert_eq!(cert_secret.2, want);
    // The output never shows key material.
    assert!(!out(&o).contains("PRIVATE KEY"));
}

#[test]
fn tampered_files_fail_and_leave_existing_secrets_untouched() {
    if !test_support::need(Component::Swarm) {
        return;
    }
    let d = TestDomain::new("tamper");
    let ok = cert_install(&keys().join("wildcard.sops.yaml"), &d.0);
    assert!(ok.status.success(), "{}", out(&ok));
    let before = d.secrets();

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(keys().join("wildcard-renewed.sops.yaml")).unwrap();
    // One ciphertext character of the key changed.
    let marker = "key: ENC[AES256_GCM,data:";
    let at = text.find(marker).unwrap() + marker.len() + 5;
    let c = if &text[at..at + 1] == "A" { "B" } else { "A" };
    let flipped = format!("{}{}{}", &text[..at], c, &text[at + 1..]);
    // A whole value removed (the MAC no longer matches).
    let cert_line = text.lines().find(|l| l.starts_with("cert: ")).unwrap();
    let removed = text.replace(&format!("{cert_line}\n"), "");
    for (name, content, expect) in [
        ("flipped.sops.yaml", flipped, "fails authentication"),
        ("removed.sops.yaml", removed, "MAC mismatch"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let o = cert_install(&p, &d.0);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", out(&o));
        let msg = out(&o);
        assert!(msg.contains(expect) && msg.contains("re-encrypt"), "{name}: {msg}");
        assert_eq!(d.secrets(), before, "{name}: secrets untouched");
    }
}

#[test]
fn wrong_age_key_fails_before_docker_with_advice() {
    let d = TestDomain::new("wrongkey");
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("other.key");
    // A valid identity that is not a recipient of the file.
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    std::fs::write(&k, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_cert-install"))
        .args(["--domain", &d.0, "--age-key-file"])
        .arg(&k)
        .arg("--sops-file")
        .arg(keys().join("wildcard.sops.yaml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let msg = out(&o);
    assert!(
        msg.contains("no identity in") && msg.contains("sops updatekeys"),
        "{msg}"
    );
    std::mem::forget(d); // nothing was created; no Docker needed to clean up
}

#[test]
fn help_teaches() {
    let o = Command::new(env!("CARGO_BIN_EXE_cert-install"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--sops-file",
        "--age-key-file",
        "SOPS_AGE_KEY_FILE",
        "--domain",
        "--cert-key",
        "--key-key",
        "nothing to do",
    ] {
        assert!(s.contains(needle), "{needle} missing from --help:\n{s}");
    }
}
