//! Reading what agents write: the `## DONE` heading of a STATUS file, the
//! `WAITING-UNTIL:` marker of a paced wait, and fatal or usage-limit messages
//! on a pane.

use chrono::{DateTime, Utc};

/// Words in a DONE heading's text that make it a placeholder, not a real end.
const PLACEHOLDER_WORDS: &[&str] = &[
    "placeholder",
    "tbd",
    "todo",
    "example",
    "not yet",
    "when ",
    "if ",
    "once ",
    "...",
];

/// Whether STATUS-file `text` has a real `## DONE` heading.
///
/// Real means: a level-2 ATX heading whose text starts with the word `DONE`,
/// outside fenced code blocks, HTML comments, block quotes and indented code,
/// and whose remaining text is no placeholder (no `<...>` template, no words
/// such as "placeholder", "TBD", "TODO", "example", "not yet", "when").
pub fn has_real_done(text: &str) -> bool {
    let mut fence: Option<&str> = None;
    let mut in_comment = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
            continue;
        }
        if in_comment {
            if line.contains("-->") {
                in_comment = false;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        if trimmed.starts_with("<!--") {
            in_comment = !trimmed.contains("-->");
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent >= 4 || line.starts_with('\t') {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("## ") else {
            continue;
        };
        let rest = rest.trim().trim_end_matches('#').trim();
        let Some(after) = rest.strip_prefix("DONE") else {
            continue;
        };
        if after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // DONE_SOON, DONEish: another word
        }
        let lower = after.to_lowercase();
        if after.contains('<') || after.contains('>') || PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        return true;
    }
    false
}

/// The prefix of a paced-wait marker line.
pub const WAITING_UNTIL: &str = "WAITING-UNTIL:";

/// The time of a `WAITING-UNTIL: <ISO-8601 UTC>` marker on `line`, if the line
/// is one (RFC 3339, e.g. `WAITING-UNTIL: 2026-11-21T16:00:00Z`).
pub fn waiting_until(line: &str) -> Option<DateTime<Utc>> {
    let rest = line.trim().strip_prefix(WAITING_UNTIL)?.trim();
    DateTime::parse_from_rfc3339(rest).ok().map(|t| t.with_timezone(&Utc))
}

/// The last non-blank line of a captured pane.
pub fn last_line(pane: &str) -> Option<&str> {
    pane.lines().rev().map(str::trim_end).find(|l| !l.trim().is_empty())
}

/// How many trailing non-blank lines of a pane the heal patterns look at: the
/// agent CLI shows its own state there; older output may quote errors.
pub const HEAL_WINDOW: usize = 6;

/// The first of `patterns` (case-insensitive substrings) found in the last
/// [`HEAL_WINDOW`] non-blank lines of `pane`.
pub fn find_pattern<'p>(pane: &str, patterns: &'p [String]) -> Option<&'p str> {
    let tail: Vec<String> = pane
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(HEAL_WINDOW)
        .map(str::to_lowercase)
        .collect();
    patterns
        .iter()
        .find(|p| !p.is_empty() && tail.iter().any(|l| l.contains(&p.to_lowercase())))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_done_headings() {
        assert!(has_real_done("# Status\n\n## DONE\n\nAll shipped.\n"));
        assert!(has_real_done("## DONE — 2026-11-21, all rungs green"));
        assert!(has_real_done("intro\n## DONE ##\n"));
        assert!(has_real_done("  ## DONE"));
    }

    #[test]
    fn placeholders_and_quotes_are_not_done() {
        for text in [
            "## DONE (placeholder)",
            "## DONE <date and summary>",
            "## DONE: TBD",
            "## DONE when everything passes",
            "> ## DONE",
            "```\n## DONE\n```",
            "~~~md\n## DONE\n~~~",
            "    ## DONE",
            "<!--\n## DONE\n-->",
            "<!-- ## DONE -->",
            "### DONE",
            "# DONE",
            "## Done",
            "## DONEISH",
            "Write `## DONE` when finished.",
            "## Not DONE",
        ] {
            assert!(!has_real_done(text), "{text:?} counted as DONE");
        }
        // A fence closes, and a real heading after it counts.
        assert!(has_real_done("```\n## DONE\n```\n## DONE\n"));
    }

    #[test]
    fn waiting_markers() {
        let t = waiting_until("WAITING-UNTIL: 2026-11-21T16:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T16:00:00+00:00");
        assert!(waiting_until("  WAITING-UNTIL:2026-11-21T16:00:00+01:00 ").is_some());
        assert!(waiting_until("WAITING-UNTIL: soon").is_none());
        assert!(waiting_until("waiting until 2026").is_none());
        assert_eq!(last_line("a\nb\n\n  \n"), Some("b"));
        assert_eq!(last_line("\n \n"), None);
    }

    #[test]
    fn heal_patterns_look_at_the_tail_only() {
        let pats = vec!["usage limit reached".to_string()];
        let old = format!("Claude usage limit reached\n{}", "work\n".repeat(10));
        assert_eq!(find_pattern(&old, &pats), None);
        let now = "work\nClaude USAGE LIMIT REACHED. Resets 5pm\n\n";
        assert_eq!(find_pattern(now, &pats), Some("usage limit reached"));
    }
}
