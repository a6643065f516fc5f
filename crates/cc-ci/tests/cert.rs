//! Wildcard certificate validation with the committed test material (no Docker).

use std::path::Path;

use cc_ci::host::cert::{CertError, WildcardCert};
use cc_ci::host::sops::{decrypt_file, AgeIdentities};
use test_support::test_keys as keys;

fn ids() -> AgeIdentities {
    AgeIdentities::from_file(keys().join("age.key")).unwrap()
}

#[test]
fn the_committed_wildcard_validates() {
    let c = WildcardCert::from_sops_file(&keys().join("wildcard.sops.yaml"), &ids(), "cert", "key").unwrap();
    assert_eq!(c.dns_names, ["*.ci.test", "ci.test"]);
    assert!(!format!("{c:?}").contains("PRIVATE"));
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let a = decrypt_file(keys().join("wildcard.sops.yaml"), &ids()).unwrap();
    let b = decrypt_file(keys().join("wildcard-renewed.sops.yaml"), &ids()).unwrap();
    let err = WildcardCert::from_pem(
        a.get_str("cert").unwrap().to_string(),
        b.get_str("key").unwrap().to_string().into(),
        Path::new("mixed"),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn a_missing_key_name_says_which_flag_to_use() {
    let err = WildcardCert::from_sops_file(&keys().join("wildcard.sops.yaml"), &ids(), "crt", "key").unwrap_err();
    assert!(err.to_string().contains("--cert-key"), "{err}");
}

#[test]
fn swapped_cert_and_key_are_refused() {
    let err = WildcardCert::from_sops_file(&keys().join("wildcard.sops.yaml"), &ids(), "key", "cert").unwrap_err();
    assert!(matches!(err, CertError::Invalid { .. }), "{err}");
}
