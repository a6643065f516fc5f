//! Co-op Cloud env files: a recipe's `.env.sample` and an app's
//! `$ABRA_DIR/servers/<server>/<domain>.env`.
//!
//! The format is a small subset of shell: `KEY=value` lines, optional
//! `export `, single or double quotes, `# comments` (a trailing comment after a
//! value is kept: abra reads secret options such as `# length=32` from it),
//! and `$KEY` / `${KEY}` references to earlier keys, which is how
//! `COMPOSE_FILE` is built up in steps.
//!
//! Values cc-ci writes ([`set_in_text`], [`quote`]) read back as written
//! both here and in abra, whose `envfile` package reads app env files with
//! joho/godotenv's parser (v1.5 `parser.go`: a bare value is cut at ` #`
//! and trimmed, `$` expands outside single quotes, double quotes take `\`
//! escapes, a quote right after `\` does not close, and `---` before a
//! line break is dropped). A value no quoting keeps is refused
//! ([`UnwritableValue`]) rather than written changed.

use std::path::{Path, PathBuf};

/// An env file that cannot be read or has a malformed line.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {detail}")]
pub struct EnvFileError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the file cannot be read).
    pub line: usize,
    /// What is wrong and what to do.
    pub detail: String,
}

/// A value that cannot be written into an env file so that it reads back
/// as given (see [`quote`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct UnwritableValue {
    /// The key it was for.
    pub key: String,
    /// What in the value cannot be written, and the fix.
    pub why: &'static str,
}

/// One assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value, unquoted, references to earlier keys expanded.
    pub value: String,
    /// The trailing comment's text, if any (without `#`).
    pub comment: Option<String>,
}

/// A parsed env file; a key assigned twice keeps its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// Assignments in file order (a re-assigned key appears once, at its first place).
    pub entries: Vec<Entry>,
}

impl EnvFile {
    /// Reads and parses the env file at `path`.
    ///
    /// # Errors
    /// [`EnvFileError`] when the file cannot be read or a line is neither a
    /// comment nor `KEY=value`, or has an unclosed quote.
    pub fn read(path: &Path) -> Result<EnvFile, EnvFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnvFileError {
            file: path.to_path_buf(),
            line: 0,
            detail: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses env `text` read from `path` (used in error messages).
    ///
    /// # Errors
    /// As [`EnvFile::read`].
    pub fn parse(path: &Path, text: &str) -> Result<EnvFile, EnvFileError> {
        let mut env = EnvFile::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |detail: &str| EnvFileError {
                file: path.to_path_buf(),
                line: i + 1,
                detail: detail.into(),
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, rest)) = line.split_once('=') else {
                return Err(err(
                    "expected KEY=value; comment the line out with # if it is not an assignment",
                ));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err("the key must be letters, digits and _"));
            }
            let (value, comment) = split_value(rest).ok_or_else(|| err("unclosed quote in the value"))?;
            let value = if value.1 { value.0 } else { env.expand(&value.0) };
            env.set(key, &value, comment);
        }
        Ok(env)
    }

    /// The value of `key`, if assigned.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Assigns `key` (replacing the value and comment of an earlier assignment).
    pub fn set(&mut self, key: &str, value: &str, comment: Option<String>) {
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value.to_string();
                e.comment = comment;
            }
            None => self.entries.push(Entry {
                key: key.into(),
                value: value.into(),
                comment,
            }),
        }
    }

    /// Expands `$KEY` and `${KEY}` with earlier assignments (unknown keys become empty).
    fn expand(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, len) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
            } else {
                out.push_str(self.get(name).unwrap_or(""));
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The file's text: `KEY=value` lines with their comments (values
    /// quoted as [`quote`] does).
    ///
    /// # Errors
    /// [`UnwritableValue`] for the first value [`quote`] refuses.
    pub fn render(&self) -> Result<String, UnwritableValue> {
        let mut s = String::new();
        for e in &self.entries {
            s.push_str(&line_for(&e.key, &e.value, e.comment.as_deref())?);
            s.push('\n');
        }
        Ok(s)
    }
}

/// `value` as an env-file value that reads back as `value` here and in abra
/// (godotenv; see the module docs): bare when it holds no blank, `#`, `$`
/// or quote (and does not end in `---`), else single-quoted (nothing is
/// expanded or escaped inside), else, holding a `'`, double-quoted.
///
/// # Errors
/// What in the value no quoting keeps, with the fix: a line break (`\n`,
/// `\r`) or NUL; a `'` together with a `"`, `$` or `\` (inside double
/// quotes `$` expands and `\` escapes, and no quote can hold a `'` in
/// single quotes); a trailing `\` on a value that needs quotes (godotenv
/// takes the closing quote after it as escaped).
pub fn quote(value: &str) -> Result<String, &'static str> {
    if value.contains(['\n', '\r']) {
        return Err("the value holds a line break, which an env-file line cannot carry; give it on one line");
    }
    if value.contains('\0') {
        return Err("the value holds a NUL character, which no environment variable can hold; remove it");
    }
    let bare = !value.is_empty()
        && !value.ends_with("---")
        && !value.contains(|c: char| c.is_whitespace() || matches!(c, '#' | '$' | '\'' | '"'));
    if bare {
        return Ok(value.to_string());
    }
    if value.ends_with('\\') {
        return Err(TRAILING_BACKSLASH);
    }
    if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else if value.contains(['"', '$', '\\']) {
        Err(
            "the value holds a `'` together with a `\"`, `$` or `\\`, which no quoting of an env file keeps \
             as written (in double quotes `$` expands and `\\` escapes); drop one of them",
        )
    } else {
        Ok(format!("\"{value}\""))
    }
}

const TRAILING_BACKSLASH: &str = "the value needs quotes (it holds a blank, `#`, `$` or a quote, or is \
     followed by a comment holding `#`) and ends in `\\`, which abra's env-file reader takes as escaping \
     the closing quote; drop the trailing `\\`";

/// The line `KEY=<quoted value>[ # comment]`, without its line break. A
/// value followed by a comment that holds a `#` is quoted (godotenv cuts a
/// bare value at the last ` #` of the line).
fn line_for(key: &str, value: &str, comment: Option<&str>) -> Result<String, UnwritableValue> {
    let refused = |why| UnwritableValue {
        key: key.to_string(),
        why,
    };
    let mut quoted = quote(value).map_err(refused)?;
    let Some(c) = comment else {
        return Ok(format!("{key}={quoted}"));
    };
    if c.contains('#') && quoted == value {
        if value.ends_with('\\') {
            return Err(refused(TRAILING_BACKSLASH));
        }
        quoted = format!("'{value}'");
    }
    Ok(format!("{key}={quoted} # {c}"))
}

/// The key an env-file line assigns, if it is an active assignment
/// (`KEY=...` or `export KEY=...`, not a comment).
fn assigned_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("export ").unwrap_or(t);
    let (k, _) = t.split_once('=')?;
    let k = k.trim();
    (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(k)
}

/// Sets `key` to `value` in the text of an env file, keeping everything
/// else (comments, blank lines, order) as it was, as `abra app config`
/// edits leave an operator's file: the last active assignment of `key` is
/// replaced (its trailing comment, e.g. `# length=32`, kept); earlier ones
/// (a value built in steps, `COMPOSE_FILE="$COMPOSE_FILE:..."`) are
/// commented out, since the new value is complete; with none, the line is
/// appended. The value is quoted as [`quote`] does.
///
/// # Errors
/// [`UnwritableValue`] naming `key` when [`quote`] refuses the value
/// (nothing is changed).
pub fn set_in_text(text: &str, key: &str, value: &str) -> Result<String, UnwritableValue> {
    let lines: Vec<&str> = text.lines().collect();
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| assigned_key(lines[i]) == Some(key))
        .collect();
    let new_line = |old: Option<&str>| {
        let comment = old
            .and_then(|l| l.split_once('=').map(|(_, r)| r))
            .and_then(split_value)
            .and_then(|(_, c)| c);
        line_for(key, value, comment.as_deref())
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match hits.split_last() {
        None => out.push(new_line(None)?),
        Some((&last, earlier)) => {
            for &i in earlier {
                out[i] = format!("# (cc-ci: superseded below) {}", lines[i]);
            }
            out[last] = new_line(Some(lines[last]))?;
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}

/// Splits `rest` (after `=`) into ((value, single-quoted), trailing comment).
fn split_value(rest: &str) -> Option<((String, bool), Option<String>)> {
    let rest = rest.trim_start();
    let (value, single, tail) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let end = rest[1..].find(q)? + 1;
            (rest[1..end].to_string(), q == '\'', &rest[end + 1..])
        }
        _ => {
            let end = rest.find(" #").or_else(|| rest.find("\t#")).unwrap_or(rest.len());
            (rest[..end].trim_end().to_string(), false, &rest[end..])
        }
    };
    let comment = tail
        .trim()
        .strip_prefix('#')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Some(((value, single), comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<EnvFile, EnvFileError> {
        EnvFile::parse(Path::new(".env.sample"), t)
    }

    #[test]
    fn values_quotes_comments_and_expansion() {
        let e = parse(
            "# sample\nTYPE=webapp\nexport DOMAIN=\"a.example.com\"\nLETS_ENCRYPT_ENV=production\n\
             SECRET_DB_PASSWORD_VERSION=v1 # length=32 charset=hex\nCOMPOSE_FILE=\"compose.yml\"\n\
             COMPOSE_FILE=\"$COMPOSE_FILE:compose.pg.yml\"\nX=${COMPOSE_FILE}!\nQ='$NOT expanded'\nE=\n",
        )
        .unwrap();
        assert_eq!(e.get("TYPE"), Some("webapp"));
        assert_eq!(e.get("DOMAIN"), Some("a.example.com"));
        assert_eq!(e.get("COMPOSE_FILE"), Some("compose.yml:compose.pg.yml"));
        assert_eq!(e.get("X"), Some("compose.yml:compose.pg.yml!"));
        assert_eq!(e.get("Q"), Some("$NOT expanded"));
        assert_eq!(e.get("E"), Some(""));
        let s = e
            .entries
            .iter()
            .find(|x| x.key == "SECRET_DB_PASSWORD_VERSION")
            .unwrap();
        assert_eq!(
            (s.value.as_str(), s.comment.as_deref()),
            ("v1", Some("length=32 charset=hex"))
        );
        assert_eq!(e.entries.iter().filter(|x| x.key == "COMPOSE_FILE").count(), 1);
    }

    #[test]
    fn render_round_trips() {
        let e = parse("A=1\nB='two words' # note\nC=\nD=\"x#y\"\n").unwrap();
        let again = parse(&e.render().unwrap()).unwrap();
        assert_eq!(e, again);
    }

    #[test]
    fn set_in_text_keeps_the_rest_of_the_file() {
        let t = "# app\nTYPE=x\n\nSECRET_A_VERSION=v1 # length=32\nCOMPOSE_FILE=\"compose.yml\"\n\
                 #COMPOSE_FILE=\"$COMPOSE_FILE:compose.off.yml\"\nCOMPOSE_FILE=\"$COMPOSE_FILE:compose.b.yml\"\n";
        let t2 = set_in_text(t, "TYPE", "x:1.0.0+1").unwrap();
        assert!(
            t2.starts_with("# app\nTYPE=x:1.0.0+1\n\nSECRET_A_VERSION=v1 # length=32\n"),
            "{t2}"
        );
        let t3 = set_in_text(&t2, "SECRET_A_VERSION", "v2").unwrap();
        assert!(t3.contains("SECRET_A_VERSION=v2 # length=32\n"), "{t3}");
        let t4 = set_in_text(&t3, "COMPOSE_FILE", "compose.yml:compose.c.yml").unwrap();
        let e = parse(&t4).unwrap();
        assert_eq!(e.get("COMPOSE_FILE"), Some("compose.yml:compose.c.yml"), "{t4}");
        assert!(t4.contains("#COMPOSE_FILE=\"$COMPOSE_FILE:compose.off.yml\""), "{t4}");
        let t5 = set_in_text(&t4, "LETS_ENCRYPT_ENV", "").unwrap();
        assert!(t5.ends_with("LETS_ENCRYPT_ENV=''\n"), "{t5}");
        assert_eq!(parse(&t5).unwrap().get("LETS_ENCRYPT_ENV"), Some(""));
        let t6 = set_in_text(&t5, "P", "a$b #c").unwrap();
        assert_eq!(parse(&t6).unwrap().get("P"), Some("a$b #c"));
        let t7 = set_in_text(&t6, "Q", "it's").unwrap();
        assert_eq!(parse(&t7).unwrap().get("Q"), Some("it's"));
    }

    /// Values with both quote kinds, `$`, `\`, `#`, blanks or line breaks:
    /// each is written so that it reads back equal, or refused naming the
    /// key (abra's reading of each line is checked by the fuzz test).
    #[test]
    fn awkward_values_read_back_or_are_refused_by_key() {
        for v in [
            "a'b",
            "it's fine",
            "a\"b",
            "$NOT expanded",
            "a b # c",
            "C:\\dir\\",
            "back\\slash inside",
            "ends---",
            "'",
            "\"",
            "",
            "\u{a0}",
        ] {
            let t = set_in_text("K=old # length=32\n", "K", v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(parse(&t).unwrap().get("K"), Some(v), "{v:?} written as {t:?}");
            assert!(t.ends_with(" # length=32\n"), "{t:?}");
        }
        for (v, says) in [
            ("two\nlines", "line break"),
            ("cr\r", "line break"),
            ("nul\0", "NUL"),
            ("it's \"quoted\"", "together with"),
            ("it's $5", "together with"),
            ("it's \\o/", "together with"),
            ("a b\\", "ends in `\\`"),
        ] {
            let e = set_in_text("A=1\n", "SITE_TITLE", v).unwrap_err();
            assert_eq!(e.key, "SITE_TITLE");
            assert!(
                e.to_string().starts_with("SITE_TITLE: the value ") && e.to_string().contains(says),
                "{v:?}: {e}"
            );
        }
        // A comment holding `#` after a bare value: the value is quoted.
        let t = set_in_text("K=v1 # a # b\n", "K", "v2").unwrap();
        assert_eq!(t, "K='v2' # a # b\n");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let err = parse("A=1\nthis is not an assignment\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().starts_with(".env.sample:2:"), "{err}");
        assert_eq!(parse("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(parse("1-A=x\n").unwrap_err().line, 1);
    }
}
