//! The level badge: a small SVG, "cc-ci | level N", in the shape of the
//! shields.io badges READMEs already carry, one colour per level 0-8 and
//! grey "unknown" when there is no result. Rendered from results.json alone
//! (or from nothing, for a recipe without runs).
//!
//! Every colour carries white 11 px text at a WCAG AA contrast ratio of at
//! least 4.5:1 (pinned by a test).

use serde::Serialize;

use super::level::level_name;
use super::templates;
use super::RunResults;

/// The badge colour of level 0-8 (index), as `#rrggbb`: red for broken,
/// through oranges and greens, to blue for maintained.
pub const LEVEL_COLOURS: [&str; 9] = [
    "#c62828", // 0 broken
    "#b83d0c", // 1 installs
    "#a04e00", // 2 serves
    "#7a5c00", // 3 upgrades
    "#5a6b00", // 4 restores
    "#33691e", // 5 lint-clean
    "#2e7d32", // 6 tested
    "#00695c", // 7 exemplary
    "#1565c0", // 8 maintained
];

/// The colour of a badge without a result.
pub const UNKNOWN_COLOUR: &str = "#5f6368";

/// The colour of level `n` (grey beyond 8).
pub fn colour(level: Option<u8>) -> &'static str {
    level
        .and_then(|n| LEVEL_COLOURS.get(usize::from(n)).copied())
        .unwrap_or(UNKNOWN_COLOUR)
}

/// Approximate width in pixels of `text` in an 11 px sans-serif (DejaVu
/// Sans / Verdana metrics, rounded per class of character); the SVG pins
/// the text to it with `textLength`, so renderers agree.
fn text_width(text: &str) -> u32 {
    let tenths: u32 = text
        .chars()
        .map(|c| match c {
            ' ' => 35,
            'i' | 'l' | 'j' | '|' | '.' | ':' | '\'' => 30,
            'f' | 't' | 'r' | '-' | '(' | ')' => 45,
            'm' | 'w' => 95,
            'A'..='Z' => 75,
            _ => 68,
        })
        .sum();
    tenths.div_ceil(10)
}

#[derive(Serialize)]
struct BadgeView<'a> {
    label: &'a str,
    value: &'a str,
    title: String,
    colour: &'a str,
    label_width: u32,
    value_width: u32,
    width: u32,
    label_text_width: u32,
    value_text_width: u32,
}

/// The badge for `level` (None: "unknown" in grey): an SVG document,
/// about 90 x 20 px, with a `<title>` and `aria-label` for screen readers
/// ("cc-ci: level 7 (exemplary)").
pub fn svg(level: Option<u8>) -> String {
    let value = match level {
        Some(n) => format!("level {n}"),
        None => "unknown".to_string(),
    };
    let title = match level {
        Some(n) => format!("cc-ci: level {n} ({})", level_name(n)),
        None => "cc-ci: no result yet".to_string(),
    };
    let label = "cc-ci";
    let (label_text_width, value_text_width) = (text_width(label), text_width(&value));
    let (label_width, value_width) = (label_text_width + 12, value_text_width + 12);
    let view = BadgeView {
        label,
        value: &value,
        title,
        colour: colour(level),
        label_width,
        value_width,
        width: label_width + value_width,
        label_text_width,
        value_text_width,
    };
    templates::render("badge.svg", &view)
}

/// The badge of one run (its level).
pub fn for_run(r: &RunResults) -> String {
    svg(Some(r.level))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let v = u32::from_str_radix(&hex[1..], 16).unwrap();
        let channel = |shift: u32| {
            let c = f64::from((v >> shift) & 0xff) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(16) + 0.7152 * channel(8) + 0.0722 * channel(0)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_colour_is_distinct_and_carries_white_text_at_aa_contrast() {
        let mut all: Vec<&str> = LEVEL_COLOURS.to_vec();
        all.push(UNKNOWN_COLOUR);
        all.push("#444444");
        for c in &all {
            let ratio = contrast(c, "#ffffff");
            assert!(ratio >= 4.5, "{c} on white text: {ratio:.2} < 4.5");
        }
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len(), "one colour per level");
    }

    #[test]
    fn the_badge_says_the_level_and_is_well_formed_svg() {
        let s = svg(Some(7));
        assert!(s.contains(">level 7</text>"), "{s}");
        assert!(s.contains("cc-ci: level 7 (exemplary)"), "{s}");
        assert!(s.contains(LEVEL_COLOURS[7]), "{s}");
        let tree = resvg::usvg::Tree::from_str(&s, &resvg::usvg::Options::default()).unwrap();
        assert_eq!(tree.size().height(), 20.0);
        assert!(
            tree.size().width() > 60.0 && tree.size().width() < 120.0,
            "{:?}",
            tree.size()
        );
        let u = svg(None);
        assert!(u.contains(">unknown</text>") && u.contains(UNKNOWN_COLOUR), "{u}");
        assert_ne!(svg(Some(0)), svg(Some(1)));
    }
}
