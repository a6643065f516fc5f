//! `!testme`, parsed strictly: the whole comment, or its first line, is
//! `!testme` and known flags; the rest of the comment is free text. A first
//! line that starts with `!testme` but is anything else gets [`SYNTAX`] as
//! the one reply.

/// A `!testme` that can run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestMe {
    /// `--quick`: reuse a warm app of the recipe's last green run.
    pub quick: bool,
}

impl TestMe {
    /// The flags, as written back in comments (`--quick`).
    pub fn flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.quick {
            f.push("--quick".into());
        }
        f
    }
}

/// What a comment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not addressed to cc-ci.
    NotACommand,
    /// A well-formed `!testme`.
    TestMe(TestMe),
    /// Starts like `!testme` but is not one: why, for the reply.
    Malformed(String),
}

/// The reply to a malformed `!testme`.
pub const SYNTAX: &str = "cc-ci understands `!testme` alone on the first line of a comment, \
optionally followed by `--quick` (reuse a warm app of the recipe's last green run): \
for example `!testme` or `!testme --quick`. Only members of the organisation can start a test.";

/// Parses a comment's body.
pub fn parse(body: &str) -> Parsed {
    let first = body.trim_start().lines().next().unwrap_or("").trim();
    if !first.starts_with("!testme") {
        return Parsed::NotACommand;
    }
    let mut words = first.split_whitespace();
    let head = words.next().unwrap_or("");
    if head != "!testme" {
        return Parsed::Malformed(format!("`{head}` is not a command"));
    }
    let mut t = TestMe::default();
    for w in words {
        match w {
            "--quick" if !t.quick => t.quick = true,
            "--quick" => return Parsed::Malformed("`--quick` is given twice".into()),
            other => {
                let shown: String = other.chars().take(40).collect();
                return Parsed::Malformed(format!("unknown flag `{shown}`"));
            }
        }
    }
    Parsed::TestMe(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_forms() {
        let ok = |q| Parsed::TestMe(TestMe { quick: q });
        assert_eq!(parse("!testme"), ok(false));
        assert_eq!(parse("  !testme  \n"), ok(false));
        assert_eq!(parse("!testme --quick"), ok(true));
        assert_eq!(parse("!testme\nplease, after the fix"), ok(false));
        assert_eq!(parse("\n\n!testme --quick\r\nthanks"), ok(true));
        assert_eq!(parse("please !testme"), Parsed::NotACommand);
        assert_eq!(
            parse("LGTM\n!testme"),
            Parsed::NotACommand,
            "only the first line counts"
        );
        assert_eq!(parse(""), Parsed::NotACommand);
        assert!(matches!(parse("!testme --full"), Parsed::Malformed(w) if w.contains("--full")));
        assert!(matches!(parse("!testmeplease"), Parsed::Malformed(w) if w.contains("!testmeplease")));
        assert!(matches!(parse("!testme --quick --quick"), Parsed::Malformed(_)));
        assert!(matches!(parse("!testme now"), Parsed::Malformed(w) if w.contains("now")));
    }
}
