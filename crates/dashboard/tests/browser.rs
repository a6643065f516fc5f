//! The dashboard as a person sees it: Debian's headless Chromium (real,
//! through DevTools) opens every page type at 375 px (a phone) and
//! 1280 px wide and checks that the heading and text are there, every
//! image loaded and has an alternative text, and nothing makes the page
//! wider than the window. Full-page screenshots land in
//! `target/dashboard-pages/` for a person to look at.

mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig};
use futures_util::StreamExt;
use serde::Deserialize;

const PROBE: &str = r#"(() => {
  const w = window.innerWidth;
  const imgs = [...document.images].map(i => ({
    src: i.getAttribute('src') || '',
    ok: i.complete && i.naturalWidth > 0,
    alt: i.getAttribute('alt'),
  }));
  // Elements sticking out of the window, outside the tables' scroll boxes.
  const over = [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > w + 1)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))
    .slice(0, 5);
  return JSON.stringify({
    ready: document.readyState,
    scroll_width: document.documentElement.scrollWidth,
    width: w,
    imgs,
    over,
    h1: (document.querySelector('h1') || {}).innerText || '',
    text: document.body.innerText,
    lang: document.documentElement.lang,
  });
})()"#;

#[derive(Debug, Deserialize)]
struct Img {
    src: String,
    ok: bool,
    alt: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Probe {
    ready: String,
    scroll_width: u32,
    width: u32,
    imgs: Vec<Img>,
    over: Vec<String>,
    h1: String,
    text: String,
    lang: String,
}

fn shots_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-pages");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_type_reads_well_at_375_and_1280_px() {
    let Some(chromium) = test_support::chromium() else {
        return;
    };
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .no_sandbox()
        .user_data_dir(profile.path())
        .args([
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-extensions",
        ])
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let long = world::LONG_RECIPE;
    let pages: Vec<(&str, String, &str)> = vec![
        ("grid", "/".into(), "Recipes"),
        ("recipe", "/recipe/static-site/".into(), "static-site"),
        ("recipe-pr-only", format!("/recipe/{long}/"), long),
        (
            "run-failed",
            "/run/static-site/bbb002/".into(),
            "static-site 1.1.0+1.22.1: level 2 (serves)",
        ),
        (
            "run-green",
            "/run/static-site/ed7869/".into(),
            "static-site 1.1.0+1.22.1: level 7 (exemplary)",
        ),
        ("run-pr", format!("/run/{long}/ddd004/"), long),
        ("run-unfinished", "/run/static-site/ccc003/".into(), "has not finished"),
        ("queue", "/queue".into(), "Queue"),
        ("not-found", "/recipe/nope/".into(), "No such recipe"),
    ];
    let page = browser.new_page("about:blank").await.unwrap();
    let mut problems = Vec::new();
    for width in [375u32, 1280] {
        for (name, path, heading) in &pages {
            // Again for every page: a full-page screenshot resets it.
            page.execute(SetDeviceMetricsOverrideParams::new(i64::from(width), 900, 1.0, false))
                .await
                .unwrap();
            page.goto(format!("{base}{path}")).await.unwrap();
            let t0 = Instant::now();
            let probe: Probe = loop {
                let json: String = page.evaluate(PROBE).await.unwrap().into_value().unwrap();
                let p: Probe = serde_json::from_str(&json).unwrap();
                if (p.ready == "complete" && p.imgs.iter().all(|i| i.ok)) || t0.elapsed() > Duration::from_secs(20) {
                    break p;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let shot = page
                .screenshot(ScreenshotParams::builder().full_page(true).build())
                .await
                .unwrap();
            std::fs::write(shots_dir().join(format!("{name}-{width}.png")), shot).unwrap();
            let at = format!("{name} at {width} px");
            assert_eq!(probe.width, width, "{at}: the window is not as wide as asked");
            if probe.lang != "en" {
                problems.push(format!("{at}: no lang"));
            }
            if !probe.h1.contains(heading) {
                problems.push(format!("{at}: heading {:?} lacks {heading:?}", probe.h1));
            }
            if probe.text.len() < 80 {
                problems.push(format!("{at}: almost no text: {:?}", probe.text));
            }
            if probe.scroll_width > probe.width {
                problems.push(format!(
                    "{at}: the page is {} px wide in a {} px window ({:?})",
                    probe.scroll_width, probe.width, probe.over
                ));
            }
            for i in &probe.imgs {
                if !i.ok {
                    problems.push(format!("{at}: image {} did not load", i.src));
                }
                if i.alt.as_deref().is_none_or(|a| a.trim().is_empty()) {
                    problems.push(format!("{at}: image {} has no alternative text", i.src));
                }
            }
            let want_imgs = match *name {
                "grid" => 2,
                "run-failed" | "run-green" => 4, // badge, card, two screenshots
                _ => 0,
            };
            if probe.imgs.len() < want_imgs {
                problems.push(format!("{at}: {} image(s), expected {want_imgs}", probe.imgs.len()));
            }
        }
    }
    // The card itself, opened as an image.
    page.goto(format!("{base}/run/static-site/bbb002/card.png"))
        .await
        .unwrap();
    let size: String = page
        .evaluate("(() => { const i = document.images[0]; return i.naturalWidth + 'x' + i.naturalHeight })()")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(size, "1200x630");
    browser.close().await.ok();
    events.abort();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
