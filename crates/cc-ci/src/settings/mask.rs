//! Masking: values that look secret (by key or by shape) are shown as
//! [`MASK`] in every report cc-ci writes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The mask that replaces secret-looking values.
pub const MASK: &str = "***";

/// Whether a key names a secret: it contains password, secret, token, key,
/// passwd, credential or auth (any case).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "key", "passwd", "credential", "auth"]
        .iter()
        .any(|w| k.contains(w))
}

/// Whether a value looks like a secret: one of its parts (split at `/ ? & = : , ; @`
/// and whitespace) is a long high-entropy string: 20 characters or more,
/// letters and digits both, Shannon entropy at least 3.5 bits per character.
pub fn looks_secret(value: &str) -> bool {
    value
        .split(|c: char| c.is_whitespace() || "/?&=:,;@".contains(c))
        .any(|part| {
            let n = part.chars().count();
            if n < 20 || !part.chars().any(|c| c.is_ascii_digit()) || !part.chars().any(|c| c.is_alphabetic()) {
                return false;
            }
            let mut counts = BTreeMap::new();
            for c in part.chars() {
                *counts.entry(c).or_insert(0usize) += 1;
            }
            let entropy: f64 = counts
                .values()
                .map(|&k| {
                    let p = k as f64 / n as f64;
                    -p * p.log2()
                })
                .sum();
            entropy >= 3.5
        })
}

/// Masks `value` in place: every value under a secret-looking key
/// ([`is_secret_key`]) and every string that [`looks_secret`] becomes [`MASK`].
pub fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !matches!(v, Value::Null) {
                    *v = mask_all(v);
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        Value::String(s) if looks_secret(s) => *value = json!(MASK),
        _ => {}
    }
}

fn mask_all(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask_all(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(mask_all).collect()),
        _ => json!(MASK),
    }
}
