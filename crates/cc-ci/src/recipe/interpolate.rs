//! Compose-style variable interpolation, as docker/cli's compose loader does
//! it (`cli/compose/template`): `$VAR`, `${VAR}`, `${VAR:-default}` (unset or
//! empty), `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}`
//! (required), and `$$` for a literal `$`. cc-ci uses it to read values out
//! of compose files (the timeout label, secret and config names) with the
//! app env; the deploy itself leaves interpolation to `docker stack deploy`.
//! Also `${VAR:+alt}` / `${VAR+alt}` (alternative when set).

use std::collections::BTreeMap;

/// How deep `${...}` may nest in defaults and alternatives
/// (`${A:-${B:-x}}` is 2). Recipes nest one or two levels; a limit keeps a
/// label nesting thousands deep from overflowing the stack (docker/cli has
/// none: Go's stacks grow).
pub const MAX_NESTING: usize = 32;

/// A required variable (`${VAR:?msg}`) is unset, a `${` is not closed, or
/// `${...}` nests too deep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR:?message}` or `${VAR?message}` with VAR missing.
    #[error("required variable {var} is missing a value: {message}")]
    Required {
        /// The variable.
        var: String,
        /// The message the template gives.
        message: String,
    },
    /// A `${` without its `}`.
    #[error("invalid interpolation format in {text:?}: a `${{` is not closed")]
    Unclosed {
        /// The text.
        text: String,
    },
    /// `${...}` nested deeper than [`MAX_NESTING`].
    #[error("{text:?} nests `${{...}}` deeper than {MAX_NESTING} levels; nest fewer defaults")]
    TooDeep {
        /// The text, cut to its first 100 characters.
        text: String,
    },
}

/// Interpolates `text` with `env` (a missing variable becomes empty, as
/// docker/cli does, with a warning there).
///
/// # Errors
/// [`InterpolateError`] for a missing required variable, a `${` without
/// `}`, or nesting deeper than [`MAX_NESTING`].
pub fn interpolate(text: &str, env: &BTreeMap<String, String>) -> Result<String, InterpolateError> {
    interp(text, env, true, 0)
}

fn interp(text: &str, env: &BTreeMap<String, String>, strict: bool, depth: usize) -> Result<String, InterpolateError> {
    if depth > MAX_NESTING {
        return Err(InterpolateError::TooDeep {
            text: text.chars().take(100).collect(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = closing_brace(inner).ok_or_else(|| InterpolateError::Unclosed { text: text.into() })?;
            out.push_str(&braced(&inner[..end], env, strict, depth)?);
            rest = &inner[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&after[..end]).map_or("", String::as_str));
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, nested `${...}` skipped.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn braced(expr: &str, env: &BTreeMap<String, String>, strict: bool, depth: usize) -> Result<String, InterpolateError> {
    let name_end = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_end);
    let value = env.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let pick = |cond: bool, alt: &str| -> Result<String, InterpolateError> {
        Ok(if cond {
            value.cloned().unwrap_or_default()
        } else {
            interp(alt, env, strict, depth + 1)?
        })
    };
    let required = |cond: bool, msg: &str| {
        if cond || !strict {
            Ok(value.cloned().unwrap_or_default())
        } else {
            Err(InterpolateError::Required {
                var: name.into(),
                message: msg.into(),
            })
        }
    };
    let alt = |cond: bool, word: &str| -> Result<String, InterpolateError> {
        if cond {
            interp(word, env, strict, depth + 1)
        } else {
            Ok(String::new())
        }
    };
    if let Some(d) = op.strip_prefix(":-") {
        pick(set_nonempty, d)
    } else if let Some(w) = op.strip_prefix(":+") {
        alt(set_nonempty, w)
    } else if let Some(w) = op.strip_prefix('+') {
        alt(value.is_some(), w)
    } else if let Some(d) = op.strip_prefix('-') {
        pick(value.is_some(), d)
    } else if let Some(m) = op.strip_prefix(":?") {
        required(set_nonempty, m)
    } else if let Some(m) = op.strip_prefix('?') {
        required(value.is_some(), m)
    } else {
        Ok(value.cloned().unwrap_or_default())
    }
}

/// [`interpolate`] for reading, never failing: a missing required variable
/// gives its (empty) value, and text with an unclosed `${` or nested too
/// deep is kept as written (lint reads recipes that need not deploy).
pub fn interpolate_lenient(text: &str, env: &BTreeMap<String, String>) -> String {
    interp(text, env, false, 0).unwrap_or_else(|_| text.to_string())
}

/// `text` with every `$` doubled, so that compose interpolation gives the
/// text back unchanged (for values cc-ci writes into a compose file).
pub fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("STACK_NAME", "a_ci_test"), ("V", "v2"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let e = env();
        let i = |t: &str| interpolate(t, &e).unwrap();
        assert_eq!(i("${STACK_NAME}_db_password_${V}"), "a_ci_test_db_password_v2");
        assert_eq!(i("$STACK_NAME.x"), "a_ci_test.x");
        assert_eq!(i("${MISSING}"), "");
        assert_eq!(i("${MISSING:-120}"), "120");
        assert_eq!(i("${EMPTY:-d}"), "d");
        assert_eq!(i("${EMPTY-d}"), "");
        assert_eq!(i("${MISSING-${V}}"), "v2");
        assert_eq!(i("cost $$5 and $"), "cost $5 and $");
        assert!(matches!(
            interpolate("${MISSING:?set it}", &e),
            Err(InterpolateError::Required { .. })
        ));
        assert!(matches!(interpolate("${V", &e), Err(InterpolateError::Unclosed { .. })));
        assert_eq!(interpolate(&escape("p$ss${x}"), &e).unwrap(), "p$ss${x}");
        assert_eq!(i("${V:+set}"), "set");
        assert_eq!(i("${EMPTY:+set}"), "");
        assert_eq!(i("${EMPTY+set}"), "set");
        assert_eq!(i("${MISSING+set}"), "");
        assert_eq!(i("a$"), "a$");
        assert_eq!(interpolate_lenient("${MISSING:?no}x", &e), "x");
        assert_eq!(interpolate_lenient("${V", &e), "${V");
    }

    /// A recipe's label nesting defaults thousands deep is refused, not a
    /// stack overflow that kills the run (5000 levels, 30 KB, overflowed a
    /// 2 MiB thread stack before the limit).
    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let e = env();
        let nested = |n: usize| format!("{}x{}", "${MISSING:-".repeat(n), "}".repeat(n));
        assert_eq!(interpolate(&nested(MAX_NESTING), &e).unwrap(), "x");
        for n in [MAX_NESTING + 1, 5000] {
            let t = nested(n);
            let err = interpolate(&t, &e).unwrap_err();
            assert!(matches!(err, InterpolateError::TooDeep { .. }), "{n}: {err}");
            assert!(
                err.to_string().contains("nests `${...}` deeper than 32 levels"),
                "{err}"
            );
            assert_eq!(interpolate_lenient(&t, &e), t, "lenient: kept as written");
        }
    }
}
