//! A recipe's `abra.sh`, read the way abra reads it: never executed.
//!
//! - `export KEY=VALUE` lines are merged into the app env at deploy time,
//!   over the env file (abra's `ReadAbraShEnvVars` / `deploy.MergeAbraShEnv`;
//!   the lines are split on `export ` and `=`, not run: `docs/abra.md`,
//!   "abra.sh" and "Deploying", step 6, [I-src]). Typical use: config versions
//!   (`export NGINX_CONF_VERSION=v2`).
//! - shell function names are the commands `POST_DEPLOY_CMDS` /
//!   `POST_UPGRADE_CMDS` and `abra app cmd` may call (`ReadAbraShCmdNames`,
//!   docs/abra.md, "Deploying", step 16).

use std::collections::BTreeMap;

/// The file name, at the recipe's root.
pub const ABRA_SH: &str = "abra.sh";

/// What cc-ci takes from `abra.sh`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbraSh {
    /// The file's text (copied into a container for post-deploy commands).
    pub text: String,
    /// `export KEY=VALUE` lines, in order (a later one wins), quotes removed.
    pub exports: BTreeMap<String, String>,
    /// Names of the shell functions it defines (`name() {` or `function name`).
    pub functions: Vec<String>,
}

impl AbraSh {
    /// Parses the text of an `abra.sh`.
    pub fn parse(text: &str) -> AbraSh {
        let mut out = AbraSh {
            text: text.to_string(),
            ..Default::default()
        };
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("export ") {
                if let Some((k, v)) = rest.trim().split_once('=') {
                    let k = k.trim();
                    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        out.exports.insert(k.to_string(), unquote(v));
                    }
                }
                continue;
            }
            let head = t.strip_prefix("function ").unwrap_or(t);
            let name_end = head
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(head.len());
            let (name, after) = head.split_at(name_end);
            let after = after.trim_start();
            let is_fn = !name.is_empty()
                && (after.starts_with("()")
                    || (t.starts_with("function ") && (after.is_empty() || after.starts_with('{'))));
            if is_fn && !out.functions.iter().any(|f| f == name) {
                out.functions.push(name.to_string());
            }
        }
        out
    }
}

/// A value without its surrounding quotes and trailing comment.
fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q) {
            if let Some(end) = inner.find(q) {
                return inner[..end].to_string();
            }
        }
    }
    v.split(" #").next().unwrap_or(v).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_and_functions_are_read_not_run() {
        let a = AbraSh::parse(
            "#!/bin/bash\nexport NGINX_CONF_VERSION=v2\nexport QUOTED=\"v3\" \nexport X='a b' # note\n\
             export NOTE=v1 # bump when it changes\nexport $(rm -rf /)\n\
             set_admin() {\n  echo hi\n}\nfunction migrate {\n  true\n}\nfunction seed() { :; }\n\
             # not_a_fn() {\necho not() done\n",
        );
        assert_eq!(a.exports["NGINX_CONF_VERSION"], "v2");
        assert_eq!(a.exports["QUOTED"], "v3");
        assert_eq!(a.exports["X"], "a b");
        assert_eq!(a.exports["NOTE"], "v1");
        assert_eq!(a.exports.len(), 4, "{:?}", a.exports);
        assert_eq!(a.functions, ["set_admin", "migrate", "seed"]);
    }
}
