//! The summary card: one run as a 1200 x 630 PNG (the size link previews
//! use), for the PR comment and the dashboard. The recipe and version, the
//! level large in its badge colour, the verdict, each rung with a status
//! mark, its duration and, when it did not pass, its reason in one line;
//! the app's screenshot (the one that matters for the first rung that did
//! not pass, captioned with its version and stage) and the run's facts.
//!
//! Rendered from results.json and the screenshot file beside it, never from
//! live state: an SVG from `templates/card.svg` (minijinja, every value
//! escaped), drawn by resvg with the host's fonts (Debian's
//! `fonts-dejavu-core`; more font folders from [`FONT_DIRS_ENV`]).

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use resvg::usvg;
use serde::Serialize;

use super::badge;
use super::level::{Rung, Status};
use super::verdict::State;
use super::{templates, RunResults};

/// Card width, pixels.
pub const WIDTH: u32 = 1200;
/// Card height, pixels.
pub const HEIGHT: u32 = 630;

/// Environment variable with more font folders, `:`-separated (a NixOS
/// package points it at its fonts; Debian's are found without it).
pub const FONT_DIRS_ENV: &str = "CCCI_FONT_DIRS";

/// The font family the card is set in.
pub const FAMILY: &str = "DejaVu Sans";

/// Why no card could be drawn.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// No font of [`FAMILY`] on this host.
    #[error(
        "no {FAMILY} font found in the system's font folders or ${FONT_DIRS_ENV}: install Debian's \
         fonts-dejavu-core (or point ${FONT_DIRS_ENV} at a folder holding DejaVuSans.ttf)"
    )]
    NoFonts,
    /// The SVG did not parse or the picture could not be encoded (a bug).
    #[error("cannot draw the card: {0}")]
    Draw(String),
}

/// A screenshot chosen for a run, with what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Screenshot {
    /// The artifact's name (`screenshot-serve`, `screenshot-upgrade`).
    pub artifact: String,
    /// Its path relative to the results folder.
    pub path: String,
    /// What it shows: "version 1.1.0+1.22.1 after upgrade".
    pub caption: String,
}

/// Every screenshot of the run, in the order they were taken, each
/// captioned with the version it shows and the stage: the serve rung's
/// (the installed version: the upgrade base when there is one) and the
/// upgrade's (the tested version).
pub fn screenshots(r: &RunResults) -> Vec<Screenshot> {
    let installed = if r.warm.is_some() {
        None
    } else {
        r.base_version.as_deref().or(r.tested_version.as_deref())
    };
    let mut out = Vec::new();
    let mut push = |artifact: &str, version: Option<&str>, stage: &str| {
        if let Some(path) = r.artifacts.get(artifact) {
            out.push(Screenshot {
                artifact: artifact.into(),
                path: path.clone(),
                caption: format!("version {} {stage}", version.unwrap_or("?")),
            });
        }
    };
    push("screenshot-serve", installed, "after install (serve rung)");
    push("screenshot-upgrade", r.tested_version.as_deref(), "after upgrade");
    // Results written before artifacts were recorded name the serve
    // rung's screenshot only.
    if out.is_empty() {
        if let Some(path) = &r.screenshot {
            out.push(Screenshot {
                artifact: "screenshot-serve".into(),
                path: path.clone(),
                caption: format!("version {} after install (serve rung)", installed.unwrap_or("?")),
            });
        }
    }
    out
}

/// The screenshot that matters: for a run that went red at install or
/// serve, the serve rung's (what the installed app showed); otherwise the
/// newest (after the upgrade, else the serve rung's).
pub fn key_screenshot(r: &RunResults) -> Option<Screenshot> {
    let shots = screenshots(r);
    let early_red = r.first_red().is_some_and(|x| x.rung <= Rung::Serve);
    if early_red {
        if let Some(s) = shots.iter().find(|s| s.artifact == "screenshot-serve") {
            return Some(s.clone());
        }
    }
    shots.last().cloned()
}

/// `text` on one line, at most `max` characters (an ellipsis when cut).
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// The mark and colour of a status (colours at 4.5:1 or more on white).
pub fn mark(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("✓", "#2e7d32"),
        Status::Fail => ("✗", "#c62828"),
        Status::Error => ("!", "#6a1b9a"),
        Status::Unverified => ("?", "#7a5c00"),
        Status::Skipped => ("»", "#7a5c00"),
        Status::NotApplicable => ("–", "#5f6368"),
    }
}

#[derive(Serialize)]
struct RungRow {
    y: u32,
    mark: &'static str,
    colour: &'static str,
    label: String,
    status: &'static str,
    duration: String,
    reason: Option<String>,
}

#[derive(Serialize)]
struct Shot {
    href: String,
    caption: String,
    /// The region shown, in the image's pixels.
    view: CropBox,
    /// The image's own size, pixels.
    width: u32,
    height: u32,
}

/// A region of an image, in its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CropBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// Aspect ratio (width / height) of the card's screenshot box.
const THUMB_ASPECT: f64 = 1.6;

/// The part of a screenshot worth showing small: the bounding box of
/// everything that differs from the page's background (the colour of the
/// top-left corner), with 24 px of margin, widened to the card's 16:10
/// box and to at least 480 px wide (never past the image). A 1280 x 800
/// shot of a short page is mostly empty; this is the part with the text.
/// None when `png` does not decode.
pub fn content_box(png: &[u8]) -> Option<(CropBox, u32, u32)> {
    let px = resvg::tiny_skia::Pixmap::decode_png(png).ok()?;
    let (w, h) = (px.width(), px.height());
    let bg = px.pixel(0, 0)?;
    let differs = |c: resvg::tiny_skia::PremultipliedColorU8| {
        c.red().abs_diff(bg.red()) > 24 || c.green().abs_diff(bg.green()) > 24 || c.blue().abs_diff(bg.blue()) > 24
    };
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if differs(px.pixel(x, y)?) {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return Some((CropBox { x: 0, y: 0, w, h }, w, h));
    }
    let margin = 24;
    let (mut bx, mut by) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
    let (mut bw, mut bh) = ((x1 + margin).min(w) - bx, (y1 + margin).min(h) - by);
    bw = bw.max(480.min(w));
    // Widen to the box's aspect: grow the short side, then clamp.
    if f64::from(bw) / f64::from(bh) < THUMB_ASPECT {
        bw = ((f64::from(bh) * THUMB_ASPECT).round() as u32).min(w);
    } else {
        bh = ((f64::from(bw) / THUMB_ASPECT).round() as u32).min(h);
    }
    bx = bx.min(w - bw);
    by = by.min(h - bh);
    Some((
        CropBox {
            x: bx,
            y: by,
            w: bw,
            h: bh,
        },
        w,
        h,
    ))
}

#[derive(Serialize)]
struct CardView {
    title: String,
    colour: &'static str,
    when: String,
    recipe: String,
    recipe_size: u32,
    version: String,
    base: String,
    level: u8,
    level_name: String,
    verdict: String,
    verdict_colour: &'static str,
    verdict_lines: Vec<String>,
    rungs: Vec<RungRow>,
    shot: Option<Shot>,
    no_shot: String,
    facts: Vec<String>,
}

/// A relative path inside the results folder (no `..`, not absolute).
fn inside(results_dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| results_dir.join(p))
}

/// The card as an SVG document. `results_dir` is the run's results folder
/// (the screenshot is read from there and embedded as a data URL); a
/// screenshot that cannot be read leaves a grey box saying why.
pub fn svg(r: &RunResults, results_dir: &Path) -> String {
    let v = r.verdict();
    let sha = &r.tested_ref[..r.tested_ref.len().min(12)];
    let mut y = 246;
    let rungs = r
        .rungs
        .iter()
        .map(|x| {
            let (mark, colour) = mark(x.status);
            let reason = (x.status != Status::Pass)
                .then(|| x.reason.as_deref().map(|t| one_line(t, 44)))
                .flatten();
            let row = RungRow {
                y,
                mark,
                colour,
                label: format!("{} {}", x.rung.level(), x.rung.word()),
                status: x.status.word(),
                duration: format!("{:.1} s", x.duration_s),
                reason,
            };
            y += if row.reason.is_some() { 46 } else { 36 };
            row
        })
        .collect();
    let key = key_screenshot(r);
    let shot = key.as_ref().and_then(|s| {
        let bytes = std::fs::read(inside(results_dir, &s.path)?).ok()?;
        let (view, width, height) = content_box(&bytes)?;
        Some(Shot {
            href: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            ),
            caption: one_line(&s.caption, 44),
            view,
            width,
            height,
        })
    });
    let no_shot = match (
        &key,
        r.missing_artifacts.iter().find(|(k, _)| k.starts_with("screenshot")),
    ) {
        (Some(s), _) => one_line(&format!("{} could not be read", s.path), 44),
        (None, Some((_, why))) => one_line(why, 44),
        (None, None) => "the run took none".into(),
    };
    let (verdict, verdict_colour) = match v.state {
        State::Success => ("success".to_string(), "#2e7d32"),
        State::Failure => ("not green".to_string(), "#c62828"),
        State::Error => ("error: the CI host failed".to_string(), "#6a1b9a"),
    };
    let mut verdict_lines = vec![one_line(&format!("held to {}", v.bar.describe()), 30)];
    verdict_lines.extend(v.why.iter().take(3).map(|w| one_line(w, 30)));
    let mut facts = Vec::new();
    if let Some(a) = &r.app {
        facts.push(format!("run {} · {} deploy(s)", a.run_id, r.deploys));
    }
    if let Some(t) = &r.time_split {
        facts.push(format!(
            "{:.0} s, {:.0} s of it waiting for Docker",
            t.wall_s, t.waiting_s
        ));
    }
    if !r.finished_at.is_empty() {
        facts.push(format!(
            "finished {}",
            r.finished_at.replace('T', " ").replace('Z', " UTC")
        ));
    }
    if r.quick {
        facts.push("--quick (a warm app)".into());
    }
    let recipe = one_line(&r.recipe, 30);
    let view = CardView {
        title: format!(
            "cc-ci: {} {} level {} ({}), {}",
            r.recipe,
            r.tested_version.as_deref().unwrap_or(""),
            r.level,
            r.level_name,
            v.state.as_str()
        ),
        colour: badge::colour(Some(r.level)),
        when: r.started_at.get(..10).unwrap_or("").to_string(),
        recipe_size: if recipe.chars().count() > 18 { 36 } else { 52 },
        recipe,
        version: one_line(
            &format!("{} at {sha}", r.tested_version.as_deref().unwrap_or("(no version)")),
            56,
        ),
        base: match &r.base_version {
            Some(b) => one_line(&format!("upgraded from {b}"), 60),
            None => "no upgrade base".into(),
        },
        level: r.level,
        level_name: r.level_name.clone(),
        verdict,
        verdict_colour,
        verdict_lines,
        rungs,
        shot,
        no_shot,
        facts,
    };
    templates::render("card.svg", &view)
}

fn fonts() -> Result<Arc<usvg::fontdb::Database>, CardError> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let db = DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        if let Some(dirs) = std::env::var_os(FONT_DIRS_ENV) {
            for d in std::env::split_paths(&dirs) {
                db.load_fonts_dir(d);
            }
        }
        db.set_sans_serif_family(FAMILY);
        Arc::new(db)
    });
    let has = db.faces().any(|f| f.families.iter().any(|(name, _)| name == FAMILY));
    has.then(|| db.clone()).ok_or(CardError::NoFonts)
}

/// Draws an SVG document into a PNG of its own size.
///
/// # Errors
/// [`CardError::NoFonts`] without DejaVu Sans; [`CardError::Draw`] for an
/// SVG that does not parse.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, CardError> {
    let opt = usvg::Options {
        fontdb: fonts()?,
        font_family: FAMILY.into(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| CardError::Draw(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| CardError::Draw(format!("empty size {size:?}")))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| CardError::Draw(e.to_string()))
}

/// Thumbnail width, pixels (16:10, [`THUMB_HEIGHT`] high).
pub const THUMB_WIDTH: u32 = 640;
/// Thumbnail height, pixels.
pub const THUMB_HEIGHT: u32 = 400;

/// A screenshot's thumbnail: the part with something on it
/// ([`content_box`]), scaled into [`THUMB_WIDTH`] x [`THUMB_HEIGHT`] on
/// white, as a PNG. Needs no fonts.
///
/// # Errors
/// [`CardError::Draw`] when `png` is not a PNG.
pub fn thumbnail_png(png: &[u8]) -> Result<Vec<u8>, CardError> {
    let (b, w, h) = content_box(png).ok_or_else(|| CardError::Draw("the screenshot is not a PNG".into()))?;
    let href = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{THUMB_WIDTH}" height="{THUMB_HEIGHT}"><rect width="100%" height="100%" fill="#ffffff"/><svg width="{THUMB_WIDTH}" height="{THUMB_HEIGHT}" viewBox="{} {} {} {}" preserveAspectRatio="xMidYMin meet"><image width="{w}" height="{h}" xlink:href="{href}"/></svg></svg>"##,
        b.x, b.y, b.w, b.h
    );
    let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).map_err(|e| CardError::Draw(e.to_string()))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(THUMB_WIDTH, THUMB_HEIGHT)
        .ok_or_else(|| CardError::Draw("empty thumbnail".into()))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| CardError::Draw(e.to_string()))
}

/// The card as a PNG, [`WIDTH`] x [`HEIGHT`] (see [`svg`]).
///
/// # Errors
/// As [`svg_to_png`].
pub fn png(r: &RunResults, results_dir: &Path) -> Result<Vec<u8>, CardError> {
    svg_to_png(&svg(r, results_dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RungResult;

    fn run(fail_upgrade: bool) -> RunResults {
        let rung = |rung, status, reason: Option<&str>| RungResult {
            rung,
            status,
            reason: reason.map(str::to_string),
            duration_s: 1.5,
            log: None,
            attempts: 1,
        };
        let mut r = RunResults {
            recipe: "static-site".into(),
            tested_ref: "710e8125d41ba311f6e379209c4e6a20563a5e99".into(),
            tested_version: Some("1.1.0+1.22.1".into()),
            base_version: Some("1.0.0+1.22.1".into()),
            started_at: "2026-12-07T05:24:15Z".into(),
            finished_at: "2026-12-07T05:25:29Z".into(),
            rungs: vec![
                rung(Rung::Install, Status::Pass, None),
                rung(Rung::Serve, Status::Pass, None),
                if fail_upgrade {
                    rung(Rung::Upgrade, Status::Fail, Some("the <new> task & crashed: exit 1"))
                } else {
                    rung(Rung::Upgrade, Status::Pass, None)
                },
            ],
            ..RunResults::empty()
        };
        r.artifacts.insert("screenshot-serve".into(), "screenshot.png".into());
        r.artifacts
            .insert("screenshot-upgrade".into(), "screenshot-upgrade.png".into());
        r.finish();
        r
    }

    #[test]
    fn screenshots_are_captioned_with_version_and_stage_and_the_key_one_follows_the_first_red_rung() {
        let r = run(false);
        let s = screenshots(&r);
        assert_eq!(s[0].caption, "version 1.0.0+1.22.1 after install (serve rung)");
        assert_eq!(s[1].caption, "version 1.1.0+1.22.1 after upgrade");
        assert_eq!(key_screenshot(&r).unwrap().artifact, "screenshot-upgrade");
        let mut red = run(false);
        red.rungs[1].status = Status::Fail;
        red.finish();
        assert_eq!(key_screenshot(&red).unwrap().artifact, "screenshot-serve");
        red.artifacts.clear();
        assert_eq!(key_screenshot(&red), None);
    }

    /// A white 1280 x 800 page with a dark block at (100..300, 50..90).
    fn page_with_a_block() -> resvg::tiny_skia::Pixmap {
        let mut px = resvg::tiny_skia::Pixmap::new(1280, 800).unwrap();
        px.fill(resvg::tiny_skia::Color::WHITE);
        let mut paint = resvg::tiny_skia::Paint::default();
        paint.set_color_rgba8(20, 20, 20, 255);
        let rect = resvg::tiny_skia::Rect::from_xywh(100.0, 50.0, 200.0, 40.0).unwrap();
        px.fill_rect(rect, &paint, resvg::tiny_skia::Transform::identity(), None);
        px
    }

    #[test]
    fn the_thumbnail_shows_the_part_of_the_page_with_something_on_it() {
        let px = page_with_a_block();
        let (b, w, h) = content_box(&px.encode_png().unwrap()).unwrap();
        assert_eq!((w, h), (1280, 800));
        assert_eq!((b.x, b.y, b.w, b.h), (76, 26, 480, 300), "{b:?}");
        // A blank page: all of it.
        let mut blank = resvg::tiny_skia::Pixmap::new(64, 40).unwrap();
        blank.fill(resvg::tiny_skia::Color::WHITE);
        let (b, _, _) = content_box(&blank.encode_png().unwrap()).unwrap();
        assert_eq!((b.x, b.y, b.w, b.h), (0, 0, 64, 40));
        assert_eq!(content_box(b"not a png"), None);
    }

    #[test]
    fn a_thumbnail_is_the_content_scaled_up_to_640_by_400() {
        let px = page_with_a_block();
        let thumb = resvg::tiny_skia::Pixmap::decode_png(&thumbnail_png(&px.encode_png().unwrap()).unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (THUMB_WIDTH, THUMB_HEIGHT));
        // The crop (76, 26, 480 x 300) is scaled by 4/3: the block starts at
        // (32, 32) and ends at (299, 85); it was 20 px of a 1280 px page.
        let dark = |x, y| thumb.pixel(x, y).unwrap().red() < 60;
        assert!(dark(40, 40) && dark(290, 80), "the block, scaled up");
        assert!(!dark(20, 20) && !dark(320, 100), "white around it");
        assert!(matches!(thumbnail_png(b"nope"), Err(CardError::Draw(_))));
    }

    #[test]
    fn one_line_cuts_with_an_ellipsis() {
        assert_eq!(one_line("a\n b   c", 10), "a b c");
        assert_eq!(one_line("abcdefghijk", 5), "abcd…");
    }

    #[test]
    fn a_path_leaving_the_results_folder_is_not_read() {
        let d = Path::new("/r");
        assert_eq!(inside(d, "shot.png"), Some(PathBuf::from("/r/shot.png")));
        assert_eq!(inside(d, "../x.png"), None);
        assert_eq!(inside(d, "/etc/passwd"), None);
    }

    #[test]
    fn the_card_escapes_reasons_and_draws_at_its_size_with_the_screenshot() {
        let d = tempfile::tempdir().unwrap();
        // A 4x2 PNG, drawn by the same library.
        let mut px = resvg::tiny_skia::Pixmap::new(4, 2).unwrap();
        px.fill(resvg::tiny_skia::Color::from_rgba8(200, 10, 10, 255));
        std::fs::write(d.path().join("screenshot-upgrade.png"), px.encode_png().unwrap()).unwrap();
        let r = run(true);
        let s = svg(&r, d.path());
        assert!(s.contains("the &lt;new&gt; task &amp; crashed"), "{s}");
        // Red at upgrade: the upgrade's screenshot, which is there.
        assert!(s.contains("png;base64,iVBOR"), "{s}");
        assert!(s.contains("version 1.1.0+1.22.1 after upgrade"), "{s}");
        let png = match png(&r, d.path()) {
            Ok(p) => p,
            Err(CardError::NoFonts) => panic!("{}", CardError::NoFonts),
            Err(e) => panic!("{e}"),
        };
        let decoded = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (WIDTH, HEIGHT));
        // The level box is drawn in the level's colour (level 2 here).
        let at = decoded.pixel(60, 300).unwrap();
        let want = badge::LEVEL_COLOURS[2];
        let hex = format!("#{:02x}{:02x}{:02x}", at.red(), at.green(), at.blue());
        assert_eq!(hex, want);
        // And the screenshot's red fills its box.
        let shot = decoded.pixel(900, 200).unwrap();
        assert_eq!((shot.red(), shot.green(), shot.blue()), (200, 10, 10));
        // Without the file: a grey box that says why.
        std::fs::remove_file(d.path().join("screenshot-upgrade.png")).unwrap();
        let s = svg(&r, d.path());
        assert!(s.contains("no screenshot") && s.contains("could not be read"), "{s}");
    }
}
