//! The wildcard certificate Traefik serves, installed as swarm secrets.
//!
//! cc-ci serves every test app under one pre-issued wildcard certificate
//! (`*.<wildcard domain>`), kept in a sops file. The Co-op Cloud Traefik
//! recipe in wildcard mode reads it from two swarm secrets, named the way
//! abra names secrets: `<stack>_<secret>_<version>`, where the stack is the
//! Traefik app's domain with dots turned into underscores, the secrets are
//! `ssl_cert` and `ssl_key`, and versions are `v1`, `v2`, ...
//! (see `docs/recipes.md`, "Names" and "Traefik recipe in wildcard mode").
//!
//! [`WildcardCert::from_sops_file`] decrypts and validates the pair without
//! touching Docker; [`install`] then makes a secret version hold it.
//! Secrets are content-addressed: each carries the label
//! [`SHA256_LABEL`] = hex sha256 of its content (Docker never returns secret
//! data, so the label is how a later run recognises it). Installing the pair
//! already held by a version creates nothing; a different pair creates the
//! next version and leaves the old ones for running services.
//! Secret material never appears in errors, logs or `Debug` output.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bollard::models::SecretSpec;
use bollard::query_parameters::ListSecretsOptions;
use bollard::Docker;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::host::sops::{self, AgeIdentities, SopsError};
use crate::host::swarm::{HostLock, SwarmError};

/// Label holding the hex sha256 of a secret's content.
pub const SHA256_LABEL: &str = "cc-ci.content-sha256";
/// Label marking secrets cc-ci's cert-install created.
pub const MANAGED_LABEL: &str = "cc-ci.managed-by";
/// The secret names Traefik's wildcard mode reads (before stack and version).
pub const CERT_SECRET: &str = "ssl_cert";
/// See [`CERT_SECRET`].
pub const KEY_SECRET: &str = "ssl_key";

/// Docker refuses secret names longer than this.
const MAX_SECRET_NAME: usize = 64;

/// Why the wildcard certificate could not be read or installed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The sops file could not be decrypted or verified.
    #[error(transparent)]
    Sops(#[from] SopsError),
    /// A key is missing from the decrypted file.
    #[error("{path} has no string value under `{key}`; pass the right key name (--cert-key/--key-key) or add it with `sops edit`")]
    MissingKey {
        /// The sops file.
        path: PathBuf,
        /// The YAML/JSON key looked up.
        key: String,
    },
    /// The certificate or key is not usable.
    #[error("{path}: {problem}; put a valid PEM certificate chain and its private key in the file")]
    Invalid {
        /// The sops file.
        path: PathBuf,
        /// What is wrong (never key material).
        problem: String,
    },
    /// The domain does not make valid secret names.
    #[error("domain `{domain}`: {problem}")]
    Domain {
        /// The Traefik app domain.
        domain: String,
        /// What is wrong.
        problem: String,
    },
    /// The Docker engine failed.
    #[error("Docker engine: {context}: {source}; is dockerd running and this node a swarm manager? (run swarm-init)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
    /// Existing secrets are inconsistent in a way this tool will not guess about.
    #[error("{0}")]
    Conflict(String),
    /// The host-wide lock could not be taken.
    #[error(transparent)]
    Lock(#[from] SwarmError),
}

/// A decrypted, validated wildcard certificate chain and private key (PEM).
pub struct WildcardCert {
    cert_pem: String,
    key_pem: Zeroizing<String>,
    /// DNS names of the leaf certificate (subject alternative names).
    pub dns_names: Vec<String>,
    /// The leaf's expiry, RFC 3339.
    pub not_after: String,
}

impl fmt::Debug for WildcardCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WildcardCert")
            .field("dns_names", &self.dns_names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl WildcardCert {
    /// Decrypts `sops_file` with `ids` (verifying its MAC) and reads the
    /// certificate chain under `cert_key` and the private key under
    /// `key_key`, then validates them: the certificate parses, is within its
    /// validity period and has DNS names; the key parses and matches the
    /// certificate's public key (RSA and EC keys, PKCS#8, PKCS#1 or SEC1).
    ///
    /// Touches nothing but the two files. Errors: [`CertError::Sops`],
    /// [`CertError::MissingKey`], [`CertError::Invalid`].
    pub fn from_sops_file(
        sops_file: &Path,
        ids: &AgeIdentities,
        cert_key: &str,
        key_key: &str,
    ) -> Result<WildcardCert, CertError> {
        let dec = sops::decrypt_file(sops_file, ids)?;
        let get = |key: &str| {
            dec.get_str(key)
                .map(str::to_owned)
                .ok_or_else(|| CertError::MissingKey {
                    path: sops_file.to_path_buf(),
                    key: key.to_string(),
                })
        };
        let cert_pem = get(cert_key)?;
        let key_pem = Zeroizing::new(get(key_key)?);
        Self::from_pem(cert_pem, key_pem, sops_file)
    }

    /// Validates a PEM certificate chain and private key (see
    /// [`WildcardCert::from_sops_file`]); `origin` is used in messages.
    pub fn from_pem(cert_pem: String, key_pem: Zeroizing<String>, origin: &Path) -> Result<WildcardCert, CertError> {
        let invalid = |problem: String| CertError::Invalid {
            path: origin.to_path_buf(),
            problem,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|_| invalid("the certificate is not PEM".into()))?;
        if pem.label != "CERTIFICATE" {
            return Err(invalid(format!(
                "the certificate value holds a `{}` PEM block first, not `CERTIFICATE`",
                pem.label
            )));
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| invalid(format!("the certificate does not parse ({e})")))?;
        if !cert.validity().is_valid() {
            return Err(invalid(format!(
                "the certificate is not valid now (valid {} to {})",
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    dns_names.push(d.to_string());
                }
            }
        }
        if dns_names.is_empty() {
            return Err(invalid("the certificate has no DNS subject alternative name".into()));
        }
        let not_after = cert
            .validity()
            .not_after
            .to_rfc2822()
            .unwrap_or_else(|_| cert.validity().not_after.to_string());
        check_key_matches(&key_pem, cert.public_key()).map_err(invalid)?;
        Ok(WildcardCert {
            cert_pem,
            key_pem,
            dns_names,
            not_after,
        })
    }

    fn cert_sha(&self) -> String {
        hex::encode(Sha256::digest(self.cert_pem.as_bytes()))
    }

    fn key_sha(&self) -> String {
        hex::encode(Sha256::digest(self.key_pem.as_bytes()))
    }
}

/// Checks the PEM private key matches the certificate's public key, by the
/// public parts the key encodes (RSA modulus and exponent; the EC public
/// point, which OpenSSL always writes into SEC1/PKCS#8 keys).
fn check_key_matches(key_pem: &str, spki: &x509_parser::x509::SubjectPublicKeyInfo) -> Result<(), String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(key_pem.as_bytes()).map_err(|_| "the private key is not PEM".to_string())?;
    let der = Zeroizing::new(pem.contents);
    let cert_pub: &[u8] = &spki.subject_public_key.data;
    let mismatch = || Err("the private key does not belong to the certificate".to_string());
    let rsa_matches =
        |pkcs1_der: &[u8]| -> Result<bool, String> {
            let k = pkcs1::RsaPrivateKey::<der::asn1::UintRef>::try_from(pkcs1_der)
                .map_err(|_| "the RSA private key does not parse".to_string())?;
            let p = pkcs1::RsaPublicKey::<der::asn1::UintRef>::try_from(cert_pub)
                .map_err(|_| "the certificate's RSA public key does not parse".to_string())?;
            Ok(k.modulus.as_bytes() == p.modulus.as_bytes()
                && k.public_exponent.as_bytes() == p.public_exponent.as_bytes())
        };
    let ec_matches = |sec1_der: &[u8]| -> Result<bool, String> {
        let k = sec1::EcPrivateKey::try_from(sec1_der).map_err(|_| "the EC private key does not parse".to_string())?;
        let public = k.public_key.ok_or_else(|| {
            "the EC private key omits its public key, so it cannot be matched to the certificate; \
             rewrite it with `openssl pkey`"
                .to_string()
        })?;
        Ok(public == cert_pub)
    };
    let ok = match pem.label.as_str() {
        "RSA PRIVATE KEY" => rsa_matches(&der)?,
        "EC PRIVATE KEY" => ec_matches(&der)?,
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfoRef::try_from(&der[..])
                .map_err(|_| "the PKCS#8 private key does not parse".to_string())?;
            let key = info.private_key.as_bytes();
            match info.algorithm.oid.to_string().as_str() {
                "1.2.840.113549.1.1.1" => rsa_matches(key)?,
                "1.2.840.10045.2.1" => ec_matches(key)?,
                other => {
                    return Err(format!(
                        "private keys of algorithm {other} are not supported (use RSA or ECDSA)"
                    ))
                }
            }
        }
        other => return Err(format!("the key value holds a `{other}` PEM block, not a private key")),
    };
    if ok {
        Ok(())
    } else {
        mismatch()
    }
}

/// The swarm stack name abra derives from an app domain: dots become
/// underscores (`traefik.ci.test` -> `traefik_ci_test`).
pub fn stack_name(domain: &str) -> String {
    domain.replace('.', "_")
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The stack name the secrets belong to.
    pub stack: String,
    /// The version now holding the certificate, e.g. `v2` (for
    /// `SECRET_WILDCARD_CERT_VERSION`/`SECRET_WILDCARD_KEY_VERSION`).
    pub version: String,
    /// Names of the secrets this run created (empty: nothing to do).
    pub created: Vec<String>,
}

/// One existing secret of ours: (id, content sha256 label).
type Existing = BTreeMap<u32, (String, Option<String>)>;

/// Makes a version of `<stack>_ssl_cert_vN` / `<stack>_ssl_key_vN` hold
/// `cert` (stack from `domain`, see [`stack_name`]), creating the next
/// version only if no existing version already holds this exact pair, and
/// completing a version a crashed run left half-made. Never removes or
/// changes an existing secret. Runs under a host-wide lock per stack, and
/// survives races with other hosts' creates (a name conflict is re-read).
///
/// Errors: [`CertError::Domain`] for a domain making invalid names,
/// [`CertError::Docker`] when the engine fails (e.g. not a swarm manager).
pub async fn install(docker: &Docker, domain: &str, cert: &WildcardCert) -> Result<InstallReport, CertError> {
    let stack = stack_name(domain);
    let domain_err = |problem: &str| CertError::Domain {
        domain: domain.to_string(),
        problem: problem.to_string(),
    };
    if domain.is_empty()
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(domain_err("must be a DNS name (letters, digits, dots, hyphens)"));
    }
    let longest = format!("{stack}_{CERT_SECRET}_v9999");
    if longest.len() > MAX_SECRET_NAME {
        return Err(domain_err(&format!(
            "secret names like `{longest}` exceed Docker's {MAX_SECRET_NAME} characters; use a shorter Traefik domain"
        )));
    }
    let _lock = HostLock::acquire(&format!("cert-install-{stack}")).await?;
    let want = [
        (CERT_SECRET, cert.cert_sha(), cert.cert_pem.as_bytes()),
        (KEY_SECRET, cert.key_sha(), cert.key_pem.as_bytes()),
    ];
    for _attempt in 0..5 {
        let cert_existing = list_versions(docker, &stack, CERT_SECRET).await?;
        let key_existing = list_versions(docker, &stack, KEY_SECRET).await?;
        let existing = [&cert_existing, &key_existing];

        // A version whose present members all hold our content (highest first).
        let versions: std::collections::BTreeSet<u32> =
            cert_existing.keys().chain(key_existing.keys()).copied().collect();
        let reusable = versions.iter().rev().copied().find(|v| {
            want.iter().zip(existing).all(|((_, sha, _), ex)| match ex.get(v) {
                None => true,
                Some((_, label)) => label.as_deref() == Some(sha.as_str()),
            })
        });
        let version = reusable.unwrap_or_else(|| versions.iter().max().map_or(1, |m| m + 1));
        let mut created = Vec::new();
        let mut conflict = false;
        for ((secret, sha, data), ex) in want.iter().zip(existing) {
            if ex.contains_key(&version) {
                continue;
            }
            let name = format!("{stack}_{secret}_v{version}");
            let spec = SecretSpec {
                name: Some(name.clone()),
                labels: Some(HashMap::from([
                    (SHA256_LABEL.to_string(), sha.clone()),
                    (MANAGED_LABEL.to_string(), "cert-install".to_string()),
                ])),
                data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
                ..Default::default()
            };
            match docker.create_secret(spec).await {
                Ok(_) => created.push(name),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                    // Someone else (another host) made it meanwhile: re-read.
                    conflict = true;
                    break;
                }
                Err(source) => {
                    return Err(CertError::Docker {
                        context: format!("creating secret {name}"),
                        source,
                    })
                }
            }
        }
        if conflict {
            continue;
        }
        return Ok(InstallReport {
            stack,
            version: format!("v{version}"),
            created,
        });
    }
    Err(CertError::Conflict(format!(
        "secrets of stack {stack} kept changing under cert-install (5 attempts); \
         another process is creating them: stop it and run again"
    )))
}

/// The versions of `<stack>_<secret>_vN` that exist, with id and sha label.
async fn list_versions(docker: &Docker, stack: &str, secret: &str) -> Result<Existing, CertError> {
    let prefix = format!("{stack}_{secret}_v");
    let mut filters = HashMap::new();
    filters.insert("name".to_string(), vec![prefix.clone()]);
    let secrets = docker
        .list_secrets(Some(ListSecretsOptions { filters: Some(filters) }))
        .await
        .map_err(|source| CertError::Docker {
            context: "listing secrets".into(),
            source,
        })?;
    let mut out = Existing::new();
    for s in secrets {
        let Some(spec) = s.spec else { continue };
        let Some(name) = spec.name else { continue };
        // The name filter matches prefixes; keep exact `<prefix><digits>`.
        let Some(n) = name.strip_prefix(&prefix) else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
            continue;
        }
        let Ok(v) = n.parse::<u32>() else { continue };
        let label = spec.labels.and_then(|mut l| l.remove(SHA256_LABEL));
        out.insert(v, (s.id.unwrap_or_default(), label));
    }
    Ok(out)
}
