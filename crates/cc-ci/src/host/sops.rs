//! Decrypting sops files with an age identity, the way the real `sops` does.
//!
//! cc-ci keeps the operator's secrets (the wildcard certificate and its key
//! first of all) in files encrypted by [sops](https://github.com/getsops/sops)
//! for age recipients. This module reads such a file, recovers the data key
//! with the operator's age identity, decrypts every value and verifies the
//! file's MAC, refusing the file on any mismatch. It supports the YAML format
//! and the JSON format; sops's "binary" format is JSON with a single `data`
//! key, so it is read as JSON and its payload is `get_str("data")`.
//!
//! The rules below were read from sops's own source, `github.com/getsops/sops/v3`
//! at the version pinned in `scripts/versions.env` (files `aes/cipher.go`,
//! `sops.go`, `stores/stores.go`, `stores/metadata.go`, `stores/yaml/store.go`,
//! `stores/json/store.go`, `cmd/sops/common/common.go`), and are checked by
//! the tests against files the real `sops` binary encrypted:
//!
//! - The `sops` key of the first document holds the metadata; `sops` keys of
//!   every document are removed from the data tree.
//! - The data key is 32 raw bytes, the plaintext of an ASCII-armoured age file
//!   in `sops.age[].enc` (or `sops.key_groups[].age[].enc`).
//! - A value is `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`,
//!   AES-256-GCM with a 32-byte IV, a 16-byte tag, and as additional data the
//!   value's path of mapping keys (list indices do not count) joined with `:`
//!   plus a trailing `:`. An empty string stays an empty string, unencrypted.
//! - Whether a value is encrypted follows the metadata's single crypt rule:
//!   `unencrypted_suffix` (default `_unencrypted`), `encrypted_suffix`,
//!   `unencrypted_regex` or `encrypted_regex`, matched against every key of
//!   the path.
//! - The MAC is the upper-case hex SHA-512 over the values in document order
//!   (every leaf except nulls and comments; only the encrypted ones when
//!   `mac_only_encrypted` is set, then after a fixed 32-byte prefix), each
//!   serialised like Go: strings as their bytes, ints in decimal, floats in
//!   shortest non-exponent form, booleans as `True`/`False`. It is stored
//!   encrypted in `sops.mac` with additional data `sops.lastmodified`
//!   re-formatted as RFC 3339 (whole seconds, `Z` for UTC).
//!
//! Comments in YAML files are not read: sops never feeds them into the MAC.
//! Files using `unencrypted_comment_regex`/`encrypted_comment_regex`, Shamir
//! key groups, or key types other than age are refused as unsupported.
//!
//! Everything here is synchronous and touches nothing but the two files.

use std::fmt;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine as _;
use regex::Regex;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

/// The 32 bytes sops feeds into the MAC first when `mac_only_encrypted` is
/// set (sha256 of "sops"; `MACOnlyEncryptedInitialization` in sops.go).
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b, 0x97, 0x5b,
    0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The suffix sops uses when a file declares no crypt rule.
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// Why a sops file could not be decrypted. Every variant names the file and,
/// in its message, what to do about it. No variant carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON or lacks the shape sops writes.
    #[error("{path} is not a sops {format} file: {detail}; check it was written by `sops encrypt`")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `YAML` or `JSON`.
        format: &'static str,
        /// What is wrong (never a value).
        detail: String,
    },
    /// The file parses but has no `sops` metadata block.
    #[error("{path} has no `sops` metadata: it is not encrypted; encrypt it with `sops encrypt --age <recipient>`")]
    NoMetadata {
        /// The file.
        path: PathBuf,
    },
    /// The file uses a sops feature this decryptor does not implement.
    #[error("{path} uses {what}, which cc-ci's sops reader does not support; re-encrypt it for age recipients without that option")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// The age identity file could not be used.
    #[error("age identity file {path}: {detail}; point --age-key-file/SOPS_AGE_KEY_FILE at a file from `age-keygen`")]
    IdentityFile {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// None of the file's age recipients matches the given identities.
    #[error("no identity in {key_file} can decrypt {path} (it is encrypted for: {recipients}); use the matching key file or re-encrypt the file for your key with `sops updatekeys`")]
    NoMatchingIdentity {
        /// The sops file.
        path: PathBuf,
        /// The identity file that was tried.
        key_file: PathBuf,
        /// The file's age recipients (public keys), comma separated.
        recipients: String,
    },
    /// The age envelope decrypted but did not hold a 32-byte data key.
    #[error("{path}: the age-encrypted data key is malformed ({detail}); re-encrypt the file with sops")]
    DataKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A value does not have sops's `ENC[AES256_GCM,...]` form.
    #[error("{path}: the value at `{key_path}` is not a sops-encrypted value ({detail}); the file was edited by hand: restore it or re-encrypt it with sops")]
    ValueFormat {
        /// The file.
        path: PathBuf,
        /// The value's key path, `a:b:c`.
        key_path: String,
        /// What is wrong (never the value).
        detail: String,
    },
    /// AES-GCM refused a value: ciphertext, IV, tag or key path were altered,
    /// or the value was moved from another key or file.
    #[error("{path}: the value at `{key_path}` fails authentication (AES-GCM): the file was altered after encryption; restore it from version control or re-encrypt it with sops")]
    ValueAuth {
        /// The file.
        path: PathBuf,
        /// The value's key path, `a:b:c`.
        key_path: String,
    },
    /// The MAC could not be decrypted (missing, altered, or `lastmodified` changed).
    #[error("{path}: the MAC cannot be decrypted ({detail}): the file's metadata was altered after encryption; restore it or re-encrypt it with sops")]
    MacUnreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The MAC over the decrypted values does not match the file's MAC.
    #[error("MAC mismatch in {path}: the file was altered after encryption (a value added, removed, reordered or changed); re-encrypt it with sops")]
    MacMismatch {
        /// The file.
        path: PathBuf,
    },
}

/// A decrypted value: the YAML/JSON data model, with mapping order kept.
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    /// A mapping, in file order.
    Map(Vec<(String, Value)>),
    /// A list.
    List(Vec<Value>),
    /// A string (sops type `str`, or `time` kept as its text).
    Str(String),
    /// An integer (sops type `int`).
    Int(i64),
    /// A float (sops type `float`).
    Float(f64),
    /// A boolean (sops type `bool`).
    Bool(bool),
    /// Raw bytes (sops type `bytes`).
    Bytes(Vec<u8>),
    /// A null, never encrypted by sops.
    Null,
}

impl Value {
    /// The value under `key` if `self` is a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string if `self` is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON (for comparing with `sops decrypt --output-type json`).
    /// Bytes become a string (lossy UTF-8); non-finite floats become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Map(items) => J::Object(items.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Str(s) => J::String(s.clone()),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Bool(b) => J::Bool(*b),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::Null => J::Null,
        }
    }
}

/// The decrypted, MAC-verified content of a sops file.
///
/// Holds plaintext secrets: its `Debug` output shows only the top-level keys.
pub struct Decrypted {
    /// The file it came from.
    pub path: PathBuf,
    /// One mapping per document (YAML may hold several; JSON holds one),
    /// without the `sops` metadata key.
    pub documents: Vec<Value>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<Vec<&str>> = self
            .documents
            .iter()
            .map(|d| match d {
                Value::Map(items) => items.iter().map(|(k, _)| k.as_str()).collect(),
                _ => Vec::new(),
            })
            .collect();
        f.debug_struct("Decrypted")
            .field("path", &self.path)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl Decrypted {
    /// The value under the top-level `key` of the first document.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.documents.first().and_then(|d| d.get(key))
    }

    /// The string under the top-level `key` of the first document.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// The age identities (private keys) used to decrypt sops data keys.
pub struct AgeIdentities {
    path: PathBuf,
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeIdentities")
            .field("path", &self.path)
            .field("count", &self.identities.len())
            .finish()
    }
}

impl AgeIdentities {
    /// Reads an age identity file (the `AGE-SECRET-KEY-1...` lines
    /// `age-keygen` writes, `#` comments allowed), as sops reads
    /// `SOPS_AGE_KEY_FILE`.
    ///
    /// Errors: [`SopsError::Io`] if unreadable, [`SopsError::IdentityFile`]
    /// if it holds no valid identity.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SopsError> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|source| SopsError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |detail: String| SopsError::IdentityFile {
            path: path.clone(),
            detail,
        };
        let identities = age::IdentityFile::from_buffer(BufReader::new(file))
            .map_err(|e| bad(format!("not an age identity file ({e})")))?
            .into_identities()
            .map_err(|e| bad(format!("unusable identity ({e})")))?;
        if identities.is_empty() {
            return Err(bad("it holds no identity".into()));
        }
        Ok(AgeIdentities { path, identities })
    }

    /// The file the identities came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file formats sops writes that this module reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON, including sops's binary format (`.json` and any other name).
    Json,
}

impl Format {
    /// The format sops would pick from the file name: `.yaml`/`.yml` are YAML;
    /// everything else is JSON (sops stores binary files as JSON).
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") | Some("yml") => Format::Yaml,
            _ => Format::Json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// Reads, decrypts and MAC-verifies the sops file at `path` (format from its
/// name, see [`Format::from_path`]).
///
/// Errors: any [`SopsError`]; in particular [`SopsError::ValueAuth`] and
/// [`SopsError::MacMismatch`] when the file was altered after encryption.
pub fn decrypt_file(path: impl AsRef<Path>, ids: &AgeIdentities) -> Result<Decrypted, SopsError> {
    let path = path.as_ref();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|source| SopsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    decrypt_str(&text, Format::from_path(path), path, ids)
}

/// Decrypts sops file content already in memory; `path` is only used in
/// messages. See [`decrypt_file`].
pub fn decrypt_str(text: &str, format: Format, path: &Path, ids: &AgeIdentities) -> Result<Decrypted, SopsError> {
    let parse_err = |detail: String| SopsError::Parse {
        path: path.to_path_buf(),
        format: format.name(),
        detail,
    };
    let mut documents = match format {
        Format::Yaml => parse_yaml(text).map_err(parse_err)?,
        Format::Json => vec![parse_json(text).map_err(parse_err)?],
    };
    // Metadata: the `sops` key of the first document; removed everywhere.
    let mut meta_value = None;
    for (i, doc) in documents.iter_mut().enumerate() {
        let Value::Map(items) = doc else {
            return Err(parse_err("a document is not a mapping".into()));
        };
        if let Some(pos) = items.iter().position(|(k, _)| k == "sops") {
            let (_, v) = items.remove(pos);
            if i == 0 {
                meta_value = Some(v);
            }
        }
    }
    let meta_value = meta_value.ok_or_else(|| SopsError::NoMetadata {
        path: path.to_path_buf(),
    })?;
    let meta = Metadata::from_value(&meta_value, path)?;
    let key = data_key(&meta, path, ids)?;
    let cipher = AesGcm::<Aes256, U32>::new_from_slice(&key[..]).map_err(|_| SopsError::DataKey {
        path: path.to_path_buf(),
        detail: "not 32 bytes".into(),
    })?;

    let mut walker = Walker {
        path,
        cipher: &cipher,
        rule: &meta.rule,
        mac_only_encrypted: meta.mac_only_encrypted,
        hash: Sha512::new(),
    };
    if meta.mac_only_encrypted {
        walker.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut keys = Vec::new();
    for doc in &mut documents {
        walker.walk(doc, &mut keys)?;
    }
    let computed = hex::encode_upper(walker.hash.finalize());

    // The MAC: encrypted with additional data = lastmodified as Go's
    // time.Format(time.RFC3339) prints it after parsing.
    let mac_err = |detail: &str| SopsError::MacUnreadable {
        path: path.to_path_buf(),
        detail: detail.into(),
    };
    if meta.mac.is_empty() {
        return Err(mac_err("the file has no MAC"));
    }
    let aad = go_rfc3339(&meta.lastmodified).ok_or_else(|| mac_err("`lastmodified` is not an RFC 3339 time"))?;
    let enc = EncValue::parse(&meta.mac).map_err(|_| mac_err("`mac` is not an ENC[...] value"))?;
    let plain = enc
        .open(&cipher, &aad)
        .ok_or_else(|| mac_err("AES-GCM authentication failed"))?;
    if plain.as_slice() != computed.as_bytes() {
        return Err(SopsError::MacMismatch {
            path: path.to_path_buf(),
        });
    }
    Ok(Decrypted {
        path: path.to_path_buf(),
        documents,
    })
}

/// Which values of the tree are encrypted (sops's crypt rules; at most one).
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Rule {
    fn encrypted(&self, keys: &[String]) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => !keys.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => keys.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !keys.iter().any(|k| r.is_match(k)),
            Rule::EncryptedRegex(r) => keys.iter().any(|k| r.is_match(k)),
        }
    }
}

struct Metadata {
    /// (recipient, armoured age file) pairs.
    age: Vec<(String, String)>,
    lastmodified: String,
    mac: String,
    rule: Rule,
    mac_only_encrypted: bool,
}

impl Metadata {
    fn from_value(v: &Value, path: &Path) -> Result<Metadata, SopsError> {
        let unsupported = |what: String| SopsError::Unsupported {
            path: path.to_path_buf(),
            what,
        };
        let parse_err = |detail: String| SopsError::Parse {
            path: path.to_path_buf(),
            format: "metadata",
            detail,
        };
        if !matches!(v, Value::Map(_)) {
            return Err(parse_err("`sops` is not a mapping".into()));
        }
        let string = |key: &str| -> Result<String, SopsError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::Str(s)) => Ok(s.clone()),
                Some(_) => Err(parse_err(format!("`sops.{key}` is not a string"))),
            }
        };
        let age_list = |v: Option<&Value>, at: &str| -> Result<Vec<(String, String)>, SopsError> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::List(items)) => items
                    .iter()
                    .map(|item| {
                        let enc = item.get("enc").and_then(Value::as_str);
                        let rcp = item.get("recipient").and_then(Value::as_str).unwrap_or("?");
                        enc.map(|e| (rcp.to_string(), e.to_string()))
                            .ok_or_else(|| parse_err(format!("an entry of `{at}` has no `enc`")))
                    })
                    .collect(),
                Some(_) => Err(parse_err(format!("`{at}` is not a list"))),
            }
        };
        let mut age = age_list(v.get("age"), "sops.age")?;
        if let Some(Value::List(groups)) = v.get("key_groups") {
            if groups.len() > 1 {
                return Err(unsupported(format!(
                    "Shamir secret sharing over {} key groups",
                    groups.len()
                )));
            }
            for g in groups {
                age.extend(age_list(g.get("age"), "sops.key_groups[].age")?);
            }
        }
        if age.is_empty() {
            let others: Vec<&str> = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"]
                .into_iter()
                .filter(|k| matches!(v.get(k), Some(Value::List(l)) if !l.is_empty()))
                .collect();
            return Err(unsupported(if others.is_empty() {
                "no age recipient".into()
            } else {
                format!("key types {} without an age recipient", others.join(", "))
            }));
        }
        for k in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
            if !string(k)?.is_empty() {
                return Err(unsupported(format!("`{k}`")));
            }
        }
        let regex = |key: &str, s: &str| {
            Regex::new(s).map_err(|e| parse_err(format!("`sops.{key}` is not a valid regex: {e}")))
        };
        let mut rules = Vec::new();
        let s = string("unencrypted_suffix")?;
        if !s.is_empty() {
            rules.push(Rule::UnencryptedSuffix(s));
        }
        let s = string("encrypted_suffix")?;
        if !s.is_empty() {
            rules.push(Rule::EncryptedSuffix(s));
        }
        let s = string("unencrypted_regex")?;
        if !s.is_empty() {
            rules.push(Rule::UnencryptedRegex(regex("unencrypted_regex", &s)?));
        }
        let s = string("encrypted_regex")?;
        if !s.is_empty() {
            rules.push(Rule::EncryptedRegex(regex("encrypted_regex", &s)?));
        }
        if rules.len() > 1 {
            return Err(parse_err("more than one crypt rule (suffix/regex) is set".into()));
        }
        let rule = rules
            .pop()
            .unwrap_or_else(|| Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.into()));
        let mac_only_encrypted = match v.get("mac_only_encrypted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(parse_err("`sops.mac_only_encrypted` is not a boolean".into())),
        };
        Ok(Metadata {
            age,
            lastmodified: string("lastmodified")?,
            mac: string("mac")?,
            rule,
            mac_only_encrypted,
        })
    }
}

/// Recovers the 32-byte data key from the first age entry one of `ids` opens.
fn data_key(meta: &Metadata, path: &Path, ids: &AgeIdentities) -> Result<Zeroizing<Vec<u8>>, SopsError> {
    let bad = |detail: String| SopsError::DataKey {
        path: path.to_path_buf(),
        detail,
    };
    for (_, armored) in &meta.age {
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decryptor = match age::Decryptor::new(reader) {
            Ok(d) => d,
            Err(e) => return Err(bad(format!("not an armoured age file: {e}"))),
        };
        let mut stream = match decryptor.decrypt(ids.identities.iter().map(|i| i.as_ref() as _)) {
            Ok(s) => s,
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(e) => return Err(bad(format!("age decryption failed: {e}"))),
        };
        let mut key = Zeroizing::new(Vec::with_capacity(32));
        stream
            .read_to_end(&mut key)
            .map_err(|e| bad(format!("age payload unreadable: {e}")))?;
        if key.len() != 32 {
            return Err(bad(format!("{} bytes instead of 32", key.len())));
        }
        return Ok(key);
    }
    Err(SopsError::NoMatchingIdentity {
        path: path.to_path_buf(),
        key_file: ids.path.clone(),
        recipients: meta.age.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// A parsed `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]` value.
struct EncValue {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    kind: String,
}

impl EncValue {
    /// Parses the sops value syntax (`encre` in aes/cipher.go).
    fn parse(s: &str) -> Result<EncValue, String> {
        let inner = s
            .strip_prefix("ENC[AES256_GCM,data:")
            .and_then(|r| r.strip_suffix(']'))
            .ok_or("not of the form ENC[AES256_GCM,data:...]")?;
        let (data, rest) = inner.split_once(",iv:").ok_or("no iv")?;
        let (iv, rest) = rest.split_once(",tag:").ok_or("no tag")?;
        let (tag, kind) = rest.split_once(",type:").ok_or("no type")?;
        let b64 = |what: &str, v: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| format!("{what} is not base64"))
        };
        let v = EncValue {
            data: b64("data", data)?,
            iv: b64("iv", iv)?,
            tag: b64("tag", tag)?,
            kind: kind.to_string(),
        };
        if v.iv.len() != 32 {
            return Err(format!("iv is {} bytes, sops writes 32", v.iv.len()));
        }
        if v.tag.len() != 16 {
            return Err(format!("tag is {} bytes instead of 16", v.tag.len()));
        }
        Ok(v)
    }

    /// AES-256-GCM open with the given additional data; `None` if the
    /// authentication fails.
    fn open(&self, cipher: &AesGcm<Aes256, U32>, aad: &str) -> Option<Zeroizing<Vec<u8>>> {
        let mut msg = Vec::with_capacity(self.data.len() + self.tag.len());
        msg.extend_from_slice(&self.data);
        msg.extend_from_slice(&self.tag);
        let nonce = aes_gcm::Nonce::<U32>::try_from(self.iv.as_slice()).ok()?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &msg,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

struct Walker<'a> {
    path: &'a Path,
    cipher: &'a AesGcm<Aes256, U32>,
    rule: &'a Rule,
    mac_only_encrypted: bool,
    hash: Sha512,
}

impl Walker<'_> {
    /// Decrypts `v` in place and feeds the MAC, in sops's walk order
    /// (`walkBranch`/`walkSlice` in sops.go).
    fn walk(&mut self, v: &mut Value, keys: &mut Vec<String>) -> Result<(), SopsError> {
        match v {
            Value::Map(items) => {
                for (k, child) in items.iter_mut() {
                    keys.push(k.clone());
                    let r = self.walk(child, keys);
                    keys.pop();
                    r?;
                }
                Ok(())
            }
            Value::List(items) => {
                for child in items.iter_mut() {
                    self.walk(child, keys)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            _ => self.leaf(v, keys),
        }
    }

    fn leaf(&mut self, v: &mut Value, keys: &[String]) -> Result<(), SopsError> {
        let encrypted = self.rule.encrypted(keys);
        let key_path = || keys.join(":");
        let mut is_comment = false;
        if encrypted {
            let Value::Str(s) = v else {
                return Err(SopsError::ValueFormat {
                    path: self.path.to_path_buf(),
                    key_path: key_path(),
                    detail: "an unencrypted non-string where sops writes ENC[...]".into(),
                });
            };
            if !s.is_empty() {
                let fmt_err = |detail: String| SopsError::ValueFormat {
                    path: self.path.to_path_buf(),
                    key_path: key_path(),
                    detail,
                };
                let enc = EncValue::parse(s).map_err(fmt_err)?;
                let aad = format!("{}:", keys.join(":"));
                let plain = enc.open(self.cipher, &aad).ok_or_else(|| SopsError::ValueAuth {
                    path: self.path.to_path_buf(),
                    key_path: key_path(),
                })?;
                let text = || {
                    std::str::from_utf8(&plain)
                        .map(str::to_owned)
                        .map_err(|_| fmt_err(format!("type {} but not UTF-8", enc.kind)))
                };
                *v = match enc.kind.as_str() {
                    "str" | "time" => Value::Str(text()?),
                    "int" => Value::Int(
                        text()?
                            .parse()
                            .map_err(|_| fmt_err("type int but not an integer".into()))?,
                    ),
                    "float" => Value::Float(
                        text()?
                            .parse()
                            .map_err(|_| fmt_err("type float but not a number".into()))?,
                    ),
                    "bool" => Value::Bool(
                        go_parse_bool(&text()?).ok_or_else(|| fmt_err("type bool but not a boolean".into()))?,
                    ),
                    "bytes" => Value::Bytes(plain.to_vec()),
                    "comment" => {
                        is_comment = true;
                        Value::Null
                    }
                    other => return Err(fmt_err(format!("unknown type `{other}`"))),
                };
                if enc.kind == "time" {
                    // sops hashes time.Time.MarshalText(): RFC 3339 with
                    // trailing zeros of the fraction dropped.
                    if let Value::Str(t) = v {
                        let norm = go_rfc3339_nano(t).ok_or_else(|| fmt_err("type time but not RFC 3339".into()))?;
                        if !self.mac_only_encrypted || encrypted {
                            self.hash.update(norm.as_bytes());
                        }
                        return Ok(());
                    }
                }
            }
        }
        if !is_comment && (!self.mac_only_encrypted || encrypted) {
            self.hash.update(mac_bytes(v));
        }
        Ok(())
    }
}

/// The bytes sops's `ToBytes` gives for a leaf.
fn mac_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Float(f) => go_format_float(*f).into_bytes(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Bytes(b) => b.clone(),
        Value::Map(_) | Value::List(_) | Value::Null => Vec::new(),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits,
/// never an exponent.
fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's Display is the shortest round-trip form without exponent.
        format!("{f}")
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `time.Parse(time.RFC3339, s)` then `.Format(time.RFC3339)`: whole
/// seconds, `Z` for a zero offset, else `+hh:mm`.
fn go_rfc3339(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(format!(
        "{}{}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        go_offset(t.offset().local_minus_utc())
    ))
}

/// `time.Time.MarshalText()` (RFC 3339 with nanoseconds, trailing zeros of
/// the fraction dropped).
fn go_rfc3339_nano(s: &str) -> Option<String> {
    use chrono::Timelike;
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(&go_offset(t.offset().local_minus_utc()));
    Some(out)
}

fn go_offset(secs: i32) -> String {
    if secs == 0 {
        return "Z".into();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Parses YAML (all documents) keeping mapping order. Keys must be strings,
/// as sops requires.
fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    fn conv(y: Yaml) -> Result<Value, String> {
        Ok(match y {
            Yaml::Hash(h) => {
                let mut items = Vec::with_capacity(h.len());
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) => s,
                        // sops decodes keys into interface{}; only strings work.
                        Yaml::Integer(i) => return Err(format!("non-string key {i}")),
                        _ => return Err("a non-string mapping key".into()),
                    };
                    items.push((key, conv(v)?));
                }
                Value::Map(items)
            }
            Yaml::Array(a) => Value::List(a.into_iter().map(conv).collect::<Result<_, _>>()?),
            Yaml::String(s) => Value::Str(s),
            Yaml::Integer(i) => Value::Int(i),
            Yaml::Real(r) => Value::Float(yaml_float(&r).ok_or_else(|| format!("unreadable float literal `{r}`"))?),
            Yaml::Boolean(b) => Value::Bool(b),
            Yaml::Null => Value::Null,
            Yaml::Alias(_) | Yaml::BadValue => return Err("an unresolved alias".into()),
        })
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    docs.into_iter()
        .filter(|d| !matches!(d, Yaml::Null))
        .map(conv)
        .collect()
}

fn yaml_float(r: &str) -> Option<f64> {
    match r {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => r.replace('_', "").parse().ok(),
    }
}

/// Parses JSON into [`Value`] keeping object order (serde_json's own map
/// sorts keys unless its `preserve_order` feature is on, and the MAC depends
/// on the order). Numbers follow sops: integers in the i64 range are ints,
/// everything else is a float.
fn parse_json(text: &str) -> Result<Value, String> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
            Ok(Value::Bool(b))
        }
        fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
            Ok(Value::Int(i))
        }
        fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
            Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
        }
        fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
            Ok(Value::Float(f))
        }
        fn visit_str<E>(self, s: &str) -> Result<Value, E> {
            Ok(Value::Str(s.to_owned()))
        }
        fn visit_string<E>(self, s: String) -> Result<Value, E> {
            Ok(Value::Str(s))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element::<JsonValue>()? {
                items.push(v.0);
            }
            Ok(Value::List(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut items: Vec<(String, Value)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, JsonValue>()? {
                items.push((k, v.0));
            }
            Ok(Value::Map(items))
        }
    }
    struct JsonValue(Value);
    impl<'de> Deserialize<'de> for JsonValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(V).map(JsonValue)
        }
    }
    let v: JsonValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !matches!(v.0, Value::Map(_)) {
        return Err("the top level is not an object".into());
    }
    Ok(v.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_formats() {
        assert_eq!(
            go_rfc3339("2024-05-01T10:20:30Z").as_deref(),
            Some("2024-05-01T10:20:30Z")
        );
        assert_eq!(
            go_rfc3339("2024-05-01T10:20:30.123+02:00").as_deref(),
            Some("2024-05-01T10:20:30+02:00")
        );
        assert_eq!(
            go_rfc3339("2024-05-01T10:20:30+00:00").as_deref(),
            Some("2024-05-01T10:20:30Z")
        );
        assert_eq!(
            go_rfc3339_nano("2024-05-01T10:20:30.120000Z").as_deref(),
            Some("2024-05-01T10:20:30.12Z")
        );
        assert_eq!(go_rfc3339("yesterday"), None);
    }

    #[test]
    fn go_float_format() {
        assert_eq!(go_format_float(1.0), "1");
        assert_eq!(go_format_float(0.1), "0.1");
        assert_eq!(go_format_float(1e21), "1000000000000000000000");
        assert_eq!(go_format_float(-2.5e-7), "-0.00000025");
    }

    #[test]
    fn enc_value_syntax() {
        let iv = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        let tag = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        let ok = format!("ENC[AES256_GCM,data:AAAA,iv:{iv},tag:{tag},type:str]");
        assert_eq!(EncValue::parse(&ok).unwrap().kind, "str");
        assert!(EncValue::parse("plain").is_err());
        assert!(EncValue::parse(&ok.replace("iv:", "iv:AA")).is_err());
    }

    #[test]
    fn json_keeps_key_order_and_sops_number_types() {
        let v = parse_json(r#"{"b": 1, "a": 1.0, "c": [true, null, 18446744073709551615]}"#).unwrap();
        let Value::Map(items) = &v else { panic!() };
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(v.get("a"), Some(&Value::Float(1.0)));
        assert_eq!(
            v.get("c"),
            Some(&Value::List(vec![
                Value::Bool(true),
                Value::Null,
                Value::Float(18446744073709551615.0)
            ]))
        );
    }

    #[test]
    fn yaml_keeps_key_order_and_refuses_non_string_keys() {
        let docs = parse_yaml("z: 1\na: x\n---\nq: 2.5\n").unwrap();
        let Value::Map(items) = &docs[0] else { panic!() };
        assert_eq!(items[0].0, "z");
        assert_eq!(docs[1].get("q"), Some(&Value::Float(2.5)));
        assert!(parse_yaml("1: a\n").is_err());
    }

    #[test]
    fn crypt_rules() {
        let keys = |ks: &[&str]| ks.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = Rule::UnencryptedSuffix("_unencrypted".into());
        assert!(r.encrypted(&keys(&["a", "b"])));
        assert!(!r.encrypted(&keys(&["a_unencrypted", "b"])));
        let r = Rule::EncryptedRegex(Regex::new("^(data|stringData)$").unwrap());
        assert!(r.encrypted(&keys(&["data", "x"])));
        assert!(!r.encrypted(&keys(&["meta"])));
    }
}
