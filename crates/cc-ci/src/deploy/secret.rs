//! App secrets, made as abra makes them (`docs/abra.md`, "Secrets";
//! `abra app new --secrets` / `abra app secret generate --all`).
//!
//! Which secrets: only those some service of the app's compose files uses
//! (abra generates no others, [I-src]). Each is a top-level
//! `secrets: <id>: {external: true, name: ${STACK_NAME}_<id>_${SECRET_<ID>_VERSION}}`
//! entry; its remote (swarm) name is that `name` interpolated with the app
//! env, and its version the part after the last `_` ([I-src], as abra's
//! `secret.ReadSecretsConfig` does it as recalled). Generation options are
//! the modifiers in the trailing comment of the env line whose key the raw
//! `name` uses (`SECRET_DB_PASSWORD_VERSION=v1 # length=32`), read with
//! abra's `envfile.ReadEnvWithModifiers` rules ([D S9]):
//!
//! - `length=N`: N random characters of the alphanumeric alphabet
//!   `a-zA-Z0-9` (abra: `secret.GeneratePasswords`, library
//!   schultz-is/passgen, [I-src]);
//! - no `length`: a passphrase, four words of the EFF large word list joined
//!   by `-` (abra: `secret.GeneratePassphrases`; word count and list are
//!   recollections of passgen's defaults, docs/abra.md says "not known");
//! - `generate=false`: abra generates nothing and the operator inserts the
//!   value; cc-ci takes it from the recipe's settings (`[secrets]` in
//!   `ccci.toml`) and refuses the run, naming the key, without one;
//! - `charset=...`: known to exist in recent abra with unknown values; cc-ci
//!   accepts `charset=hex` (lower-case hex digits) and refuses any other
//!   value, naming it, rather than guess.
//!
//! Secrets are stored with a plain `SecretCreate` (name and data, no labels,
//! as abra's `client.StoreSecret` does, [I-src]); the stack's teardown finds
//! them by the `<stack>_` name prefix. A remote name over Docker's 64
//! characters is refused with the fix (abra errors out the same way).
//! Values never reach logs or results: [`Secret`]'s `Debug` hides them.

use std::collections::BTreeMap;

use base64::Engine;
use bollard::models::SecretSpec;
use bollard::Docker;

use crate::recipe::compose::ComposeSet;
use crate::recipe::env_file::EnvFile;
use crate::recipe::interpolate::interpolate;

/// Docker's limit on secret (and config) names, in characters.
pub const MAX_SECRET_NAME: usize = 64;
/// Words in a generated passphrase (passgen's default, a recollection).
pub const PASSPHRASE_WORDS: usize = 4;
/// The alphabet of `length=N` passwords.
pub const PASSWORD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A secret cannot be planned, generated or stored.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A used secret has no top-level entry, or it is not external with a name.
    #[error("secret `{id}`: {detail}; abra secrets are top-level `{id}: {{external: true, name: ${{STACK_NAME}}_{id}_${{SECRET_{upper}_VERSION}}}}`", upper = id.to_uppercase())]
    NotAbraShaped {
        /// The secret id.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// The remote name is over Docker's limit.
    #[error("secret `{id}`: its swarm name {name:?} is {len} characters, over Docker's {MAX_SECRET_NAME}; shorten the secret's name in the recipe (abra names secrets <stack>_<id>_<version>; lint rule R015 warns about long ones)")]
    TooLong {
        /// The secret id.
        id: String,
        /// The remote name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// `generate=false` and the settings give no value.
    #[error("secret `{id}` is marked `generate=false` on {key} in the app env: abra would need `abra app secret insert`; give a test value in tests/recipes/<recipe>/ccci.toml:\n[secrets]\n{id} = \"...\"")]
    NotGenerated {
        /// The secret id.
        id: String,
        /// The env key carrying the modifier.
        key: String,
    },
    /// A modifier cc-ci does not know how to honour.
    #[error("secret `{id}`: modifier {modifier:?} on {key} is not one cc-ci knows (length=N, generate=false, charset=hex); remove it or tell cc-ci's maintainers what abra does with it")]
    UnknownModifier {
        /// The secret id.
        id: String,
        /// The env key.
        key: String,
        /// The modifier as written.
        modifier: String,
    },
    /// The name does not interpolate.
    #[error("secret `{id}`: name {raw:?}: {source}")]
    Interpolate {
        /// The secret id.
        id: String,
        /// The raw name.
        raw: String,
        /// Why.
        source: crate::recipe::interpolate::InterpolateError,
    },
    /// The Docker engine failed (infrastructure).
    #[error("Docker engine: {context}: {source}; is dockerd running? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
}

impl SecretError {
    /// True when the recipe (or its settings) is at fault: everything but
    /// Docker failing.
    pub fn is_recipe_failure(&self) -> bool {
        !matches!(self, SecretError::Docker { .. })
    }
}

/// How a secret's value is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generation {
    /// `length=N` alphanumeric characters.
    Password(usize),
    /// `length=N` lower-case hex digits (`charset=hex`).
    Hex(usize),
    /// A passphrase of [`PASSPHRASE_WORDS`] words.
    Passphrase,
    /// `generate=false`: the value comes from the settings.
    Given,
}

/// One secret the app uses.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPlan {
    /// The compose id (`db_password`).
    pub id: String,
    /// The swarm name (`<stack>_db_password_v1`).
    pub remote_name: String,
    /// The version (`v1`).
    pub version: String,
    /// The env key whose comment carried the modifiers, if any.
    pub env_key: Option<String>,
    /// How the value is made.
    pub generation: Generation,
}

impl std::fmt::Debug for SecretPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.remote_name, self.generation)
    }
}

/// The secrets the app uses, in id order.
///
/// `env` is the app env used for interpolation (env file, abra.sh exports,
/// `STACK_NAME`); `env_file` the app's env file (for the modifiers).
///
/// # Errors
/// [`SecretError`] for a secret that is not abra-shaped, too long, or has
/// an unknown modifier.
pub fn plan(
    compose: &ComposeSet,
    env: &BTreeMap<String, String>,
    env_file: &EnvFile,
) -> Result<Vec<SecretPlan>, SecretError> {
    let mut out = Vec::new();
    for id in compose.used_secrets() {
        let not_shaped = |detail: &str| SecretError::NotAbraShaped {
            id: id.clone(),
            detail: detail.into(),
        };
        let top = compose
            .secrets
            .get(&id)
            .ok_or_else(|| not_shaped("a service uses it but there is no top-level `secrets:` entry"))?;
        if !top.external {
            return Err(not_shaped(
                "it is not `external: true` (abra generates and inserts app secrets itself)",
            ));
        }
        let raw = top.name.clone().ok_or_else(|| not_shaped("it has no `name:`"))?;
        let remote_name = interpolate(&raw, env).map_err(|source| SecretError::Interpolate {
            id: id.clone(),
            raw: raw.clone(),
            source,
        })?;
        if remote_name.chars().count() > MAX_SECRET_NAME {
            return Err(SecretError::TooLong {
                id,
                len: remote_name.chars().count(),
                name: remote_name,
            });
        }
        let version = remote_name.rsplit('_').next().unwrap_or_default().to_string();
        // The env line whose key the raw name uses carries the modifiers.
        let entry = env_file
            .entries
            .iter()
            .filter(|e| e.key.starts_with("SECRET_") && e.key.ends_with("_VERSION"))
            .find(|e| raw.contains(&format!("${{{}}}", e.key)) || raw.contains(&format!("${}", e.key)));
        let modifiers = entry
            .and_then(|e| e.comment.as_deref())
            .map(modifiers)
            .unwrap_or_default();
        let key = entry.map(|e| e.key.clone());
        let unknown = |m: String| SecretError::UnknownModifier {
            id: id.clone(),
            key: key.clone().unwrap_or_default(),
            modifier: m,
        };
        let length = match modifiers.get("length") {
            None => None,
            Some(v) => Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| unknown(format!("length={v}")))?,
            ),
        };
        let generation = if modifiers.get("generate").map(String::as_str) == Some("false") {
            Generation::Given
        } else {
            match (modifiers.get("charset").map(String::as_str), length) {
                (None | Some("default"), Some(n)) => Generation::Password(n),
                (None | Some("default"), None) => Generation::Passphrase,
                (Some("hex"), Some(n)) => Generation::Hex(n),
                (Some(c), _) => return Err(unknown(format!("charset={c}"))),
            }
        };
        for k in modifiers.keys() {
            if !matches!(k.as_str(), "length" | "generate" | "charset") {
                return Err(unknown(format!("{k}={}", modifiers[k])));
            }
        }
        out.push(SecretPlan {
            id,
            remote_name,
            version,
            env_key: key,
            generation,
        });
    }
    Ok(out)
}

/// `key=value` words of an env line's trailing comment (other words ignored,
/// as abra reads only `k=v` modifiers).
fn modifiers(comment: &str) -> BTreeMap<String, String> {
    comment
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A secret value (never printed: `Debug` shows its length only).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} chars>)", self.0.len())
    }
}

/// A uniformly random index below `n` (rejection sampling on OS randomness).
fn random_below(n: usize) -> usize {
    let n32 = n as u32;
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let mut b = [0u8; 4];
        getrandom::getrandom(&mut b).expect("the OS random source works");
        let v = u32::from_le_bytes(b);
        if v < zone {
            return (v % n32) as usize;
        }
    }
}

/// Makes the value of `p`; `given` holds the settings' `[secrets]` values.
///
/// # Errors
/// [`SecretError::NotGenerated`] for `generate=false` without a given value.
pub fn generate(p: &SecretPlan, given: &BTreeMap<String, String>) -> Result<Secret, SecretError> {
    let pick = |alphabet: &[u8], n: usize| -> String {
        (0..n).map(|_| alphabet[random_below(alphabet.len())] as char).collect()
    };
    Ok(Secret(match p.generation {
        Generation::Password(n) => pick(PASSWORD_ALPHABET, n),
        Generation::Hex(n) => pick(b"0123456789abcdef", n),
        Generation::Passphrase => {
            let words = eff_wordlist::large::LIST;
            (0..PASSPHRASE_WORDS)
                .map(|_| words[random_below(words.len())].1)
                .collect::<Vec<_>>()
                .join("-")
        }
        Generation::Given => given.get(&p.id).cloned().ok_or_else(|| SecretError::NotGenerated {
            id: p.id.clone(),
            key: p.env_key.clone().unwrap_or_default(),
        })?,
    }))
}

/// Whether a swarm secret named `name` exists.
///
/// # Errors
/// [`SecretError::Docker`].
pub async fn exists(docker: &Docker, name: &str) -> Result<bool, SecretError> {
    let filters = std::collections::HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let found = docker
        .list_secrets(Some(bollard::query_parameters::ListSecretsOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|source| SecretError::Docker {
            context: format!("listing secret {name}"),
            source,
        })?;
    // The name filter matches prefixes too.
    Ok(found
        .iter()
        .any(|s| s.spec.as_ref().and_then(|sp| sp.name.as_deref()) == Some(name)))
}

/// Stores `value` as the swarm secret `name` (plain `SecretCreate`, no labels).
///
/// # Errors
/// [`SecretError::Docker`] (a 409 means it exists already).
pub async fn store(docker: &Docker, name: &str, value: &Secret) -> Result<(), SecretError> {
    docker
        .create_secret(SecretSpec {
            name: Some(name.to_string()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value.expose())),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|source| SecretError::Docker {
            context: format!("creating secret {name}"),
            source,
        })
}

/// What [`ensure`] did, per secret (for the run's log: names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// Secrets created now (remote names).
    pub created: Vec<String>,
    /// Secrets that existed already (left as they are, as abra does).
    pub existing: Vec<String>,
}

/// Creates every planned secret that does not exist yet (abra's
/// `app secret generate --all`: existing secrets are not touched).
///
/// # Errors
/// [`SecretError`] from [`generate`] or Docker.
pub async fn ensure(
    docker: &Docker,
    plans: &[SecretPlan],
    given: &BTreeMap<String, String>,
) -> Result<Ensured, SecretError> {
    let mut r = Ensured {
        created: Vec::new(),
        existing: Vec::new(),
    };
    for p in plans {
        if exists(docker, &p.remote_name).await? {
            r.existing.push(p.remote_name.clone());
            continue;
        }
        let v = generate(p, given)?;
        store(docker, &p.remote_name, &v).await?;
        r.created.push(p.remote_name.clone());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn setup(compose: &str, env: &str) -> (ComposeSet, EnvFile, BTreeMap<String, String>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.yml"), compose).unwrap();
        let set = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap();
        let ef = EnvFile::parse(Path::new("app.env"), env).unwrap();
        let mut m: BTreeMap<String, String> = ef.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        m.insert("STACK_NAME".into(), "x-1a2b3c_ci_test".into());
        (set, ef, m)
    }

    const COMPOSE: &str = "services:\n  app:\n    image: a\n    secrets: [db_password, api_key, smtp, token]\n\
        secrets:\n  db_password: {external: true, name: \"${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}\"}\n\
        \x20 api_key: {external: true, name: \"${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}\"}\n\
        \x20 smtp: {external: true, name: \"${STACK_NAME}_smtp_${SECRET_SMTP_VERSION}\"}\n\
        \x20 token: {external: true, name: \"${STACK_NAME}_token_${SECRET_TOKEN_VERSION}\"}\n\
        \x20 unused: {external: true, name: \"${STACK_NAME}_unused_v1\"}\n";

    #[test]
    fn plans_follow_abras_modifiers() {
        let (set, ef, env) = setup(
            COMPOSE,
            "SECRET_DB_PASSWORD_VERSION=v1 # length=32\nSECRET_API_KEY_VERSION=v2\n\
             SECRET_SMTP_VERSION=v1 # generate=false\nSECRET_TOKEN_VERSION=v1 # length=16 charset=hex\n",
        );
        let p = plan(&set, &env, &ef).unwrap();
        let by: BTreeMap<_, _> = p.iter().map(|s| (s.id.as_str(), s)).collect();
        assert_eq!(by.len(), 4, "only used secrets: {p:?}");
        assert_eq!(by["db_password"].remote_name, "x-1a2b3c_ci_test_db_password_v1");
        assert_eq!(by["db_password"].generation, Generation::Password(32));
        assert_eq!(by["api_key"].version, "v2");
        assert_eq!(by["api_key"].generation, Generation::Passphrase);
        assert_eq!(by["smtp"].generation, Generation::Given);
        assert_eq!(by["token"].generation, Generation::Hex(16));

        let none = BTreeMap::new();
        let pw = generate(by["db_password"], &none).unwrap();
        assert_eq!(pw.expose().len(), 32);
        assert!(pw.expose().bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
        assert_ne!(pw, generate(by["db_password"], &none).unwrap(), "random");
        let pp = generate(by["api_key"], &none).unwrap();
        assert_eq!(
            pp.expose().split('-').count(),
            PASSPHRASE_WORDS,
            "{}",
            pp.expose().len()
        );
        assert!(format!("{pp:?}").starts_with("Secret(<"), "Debug hides the value");
        let hex = generate(by["token"], &none).unwrap();
        assert!(hex.expose().len() == 16 && hex.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let e = generate(by["smtp"], &none).unwrap_err().to_string();
        assert!(
            e.contains("SECRET_SMTP_VERSION") && e.contains("[secrets]\nsmtp = "),
            "{e}"
        );
        let given = BTreeMap::from([("smtp".to_string(), "test-value".to_string())]);
        assert_eq!(generate(by["smtp"], &given).unwrap().expose(), "test-value");
    }

    #[test]
    fn refusals_name_the_secret_and_the_fix() {
        let long = "a_very_long_secret_name_that_overflows_dockers_limit";
        let (set, ef, env) = setup(
            &format!(
                "services:\n  app:\n    image: a\n    secrets: [{long}]\nsecrets:\n  {long}: {{external: true, name: \"${{STACK_NAME}}_{long}_${{SECRET_X_VERSION}}\"}}\n"
            ),
            "SECRET_X_VERSION=v1\n",
        );
        let e = plan(&set, &env, &ef).unwrap_err();
        assert!(matches!(e, SecretError::TooLong { len: 72, .. }), "{e}");
        assert!(
            e.to_string().contains("over Docker's 64") && e.is_recipe_failure(),
            "{e}"
        );

        let (set, ef, env) = setup(
            "services:\n  app:\n    image: a\n    secrets: [s]\nsecrets:\n  s: {file: ./s.txt}\n",
            "",
        );
        assert!(plan(&set, &env, &ef)
            .unwrap_err()
            .to_string()
            .contains("not `external: true`"));
        let (set, ef, env) = setup(COMPOSE, "SECRET_DB_PASSWORD_VERSION=v1 # charset=special length=3\n");
        let e = plan(&set, &env, &ef).unwrap_err().to_string();
        assert!(e.contains("charset=special"), "{e}");
    }
}
