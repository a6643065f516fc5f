//! Every rendering of one run, behind one switch: what `ccci report
//! --format`, the bridge and the dashboard ask for. All of them read
//! results.json (and files beside it) only, never live state.

use std::path::Path;

use super::comment::{self, CommentContext};
use super::{badge, card, junit, RunResults};

/// A rendering of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal summary table ([`RunResults::summary`]).
    Text,
    /// The PR comment, Gitea-flavoured Markdown ([`comment::render`]).
    Markdown,
    /// The level badge, SVG ([`badge::svg`]).
    Badge,
    /// The summary card, PNG 1200 x 630 ([`card::png`]).
    Card,
    /// JUnit XML, a test case per rung ([`junit::xml`]).
    Junit,
    /// results.json itself, pretty-printed.
    Json,
}

impl Format {
    /// Every format, for `--help` and tests.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Markdown,
        Format::Badge,
        Format::Card,
        Format::Junit,
        Format::Json,
    ];

    /// Its name on the command line: text, markdown, badge, card, junit, json.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Badge => "badge",
            Format::Card => "card",
            Format::Junit => "junit",
            Format::Json => "json",
        }
    }

    /// The HTTP media type of the rendering.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Badge => "image/svg+xml",
            Format::Card => "image/png",
            Format::Junit => "application/xml",
            Format::Json => "application/json",
        }
    }

    /// Whether the rendering is binary (not for a terminal).
    pub fn is_binary(self) -> bool {
        self == Format::Card
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {s:?}: one of {}", names.join(", "))
        })
    }
}

/// Renders `r` (read from the run folder `results_dir`) as `format`; the
/// comment needs `ctx` (where the run came from), the others ignore it.
///
/// # Errors
/// Only the card can fail: [`card::CardError`] (no fonts).
pub fn render(
    format: Format,
    r: &RunResults,
    results_dir: &Path,
    ctx: &CommentContext,
) -> Result<Vec<u8>, card::CardError> {
    Ok(match format {
        Format::Text => r.summary().into_bytes(),
        Format::Markdown => comment::render(r, ctx).into_bytes(),
        Format::Badge => badge::for_run(r).into_bytes(),
        Format::Card => card::png(r, results_dir)?,
        Format::Junit => junit::xml(r).into_bytes(),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(r).expect("results serialise (they were read)");
            s.push('\n');
            s.into_bytes()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_choices() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        let e = "html".parse::<Format>().unwrap_err();
        assert!(e.contains("text, markdown, badge, card, junit, json"), "{e}");
    }
}
