//! Every route of the dashboard, over HTTP, against a results root made
//! from a real run (`world`).

mod world;

use world::LONG_RECIPE;

async fn get(url: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let media = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, media, r.bytes().await.unwrap().to_vec())
}

/// The page with minijinja's HTML escapes undone (`/` is `&#x2f;` there).
fn unescaped(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn page(url: &str) -> String {
    let (status, media, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    assert!(media.starts_with("text/html"), "{url}: {media}");
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grid_shows_each_recipes_counted_level_and_trend_and_filters_by_level() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let html = page(&format!("{base}/")).await;
    assert!(
        html.contains(r#"<a href="/recipe/static-site/">static-site</a>"#),
        "{html}"
    );
    assert!(html.contains("▼ down from 7"), "the regression 7 -> 2 shows: {html}");
    assert!(html.contains(&format!("/recipe/{LONG_RECIPE}/")), "{html}");
    assert!(html.contains("1 run(s) started and not finished"), "{html}");
    assert!(html.contains(r#"alt="cc-ci level 2 (serves)""#), "{html}");
    // The pull-request-only recipe has no counted level: filtered out at 1+.
    let html = page(&format!("{base}/?level=1&sort=level")).await;
    assert!(!html.contains(&format!("/recipe/{LONG_RECIPE}/")), "{html}");
    assert!(html.contains("static-site"), "{html}");
    let html = page(&format!("{base}/?level=3")).await;
    assert!(
        !html.contains("/recipe/static-site/"),
        "static-site is at 2 now: {html}"
    );
    let (status, _, _) = get(&format!("{base}/?level=nine")).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn badges_are_stable_per_recipe_and_per_run_and_grey_without_a_counted_run() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let (status, media, body) = get(&format!("{base}/recipe/static-site/badge.svg")).await;
    assert_eq!((status, media.as_str()), (200, "image/svg+xml"));
    assert!(String::from_utf8(body).unwrap().contains(">level 2</text>"));
    let (_, _, body) = get(&format!("{base}/run/static-site/ed7869/badge.svg")).await;
    assert!(String::from_utf8(body).unwrap().contains(">level 7</text>"));
    for recipe in [LONG_RECIPE, "no-such-recipe"] {
        let (status, _, body) = get(&format!("{base}/recipe/{recipe}/badge.svg")).await;
        assert_eq!(status, 200);
        assert!(String::from_utf8(body).unwrap().contains(">unknown</text>"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recipe_page_charts_every_run_and_explains_level_8() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let html = page(&format!("{base}/recipe/static-site/")).await;
    assert_eq!(html.matches("<circle").count(), 3, "a point per finished run: {html}");
    assert!(html.contains("Level of 3 finished run(s)"), "{html}");
    assert!(
        html.contains("Not judged: the newest counted run (level 2) stopped before rung 8"),
        "{html}"
    );
    for id in ["aaa001", "ed7869", "bbb002", "ccc003"] {
        assert!(html.contains(&format!("/run/static-site/{id}/")), "{id}: {html}");
    }
    assert!(html.contains("not finished"), "{html}");
    let (status, _, body) = get(&format!("{base}/recipe/nope/")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8(body).unwrap().contains("No such recipe"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_page_shows_what_broke_since_when_and_how_to_reproduce() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let raw = page(&format!("{base}/run/static-site/bbb002/")).await;
    assert!(
        raw.contains("unknown directive &quot;servr&quot;"),
        "reasons are escaped: {raw}"
    );
    let html = unescaped(&raw);
    for want in [
        "level 2 (serves)",
        "Changes since the last green run",
        r#"<a href="/run/static-site/ed7869/">ed7869</a>"#,
        r#"<th scope="row">3 upgrade</th><td class="reason">pass</td><td class="reason">fail</td>"#,
        "version 1.1.0+1.22.1 after upgrade",
        "version 1.0.0+1.22.1 after install (serve rung)",
        "git clone https://git.coopcloud.tech/coop-cloud/static-site.git static-site",
        "ccci test ./static-site",
        "waiting for Docker",
        "R007",
        "the <strong>native</strong> deployer",
        "endpoint_mode: dnsrr",
        "static-site-ed7869_ci_test_app",
        // The image the tested version ran, and that it differs from the green run's.
        r#"<th scope="row">app</th><td class="reason">ccci/nginx:1.22.1-broken</td>"#,
        r#"<th scope="row">images.app</th><td class="reason">(absent)</td><td class="reason">"ccci/nginx:1.22.1-broken"</td>"#,
    ] {
        assert!(html.contains(want), "missing {want:?} in {html}");
    }
    // A green run's page has no "not green" section; an unfinished one says so.
    let green = page(&format!("{base}/run/static-site/ed7869/")).await;
    assert!(
        !green.contains("Not green because") && green.contains("Nothing recorded differs"),
        "{green}"
    );
    let running = page(&format!("{base}/run/static-site/ccc003/")).await;
    assert!(running.contains("has not finished"), "{running}");
    let (status, _, _) = get(&format!("{base}/run/static-site/ffffff/")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn renderings_beside_a_run_come_from_the_same_code_as_ccci_report() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let run = format!("{base}/run/static-site/bbb002");
    let (status, media, png) = get(&format!("{run}/card.png")).await;
    assert_eq!((status, media.as_str()), (200, "image/png"));
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1200);
    // A screenshot's thumbnail: the part with content, 640 x 400.
    let (status, media, thumb) = get(&format!("{run}/thumbnail/screenshot-upgrade")).await;
    assert_eq!((status, media.as_str()), (200, "image/png"));
    assert_eq!(u32::from_be_bytes(thumb[16..20].try_into().unwrap()), 640);
    assert_eq!(u32::from_be_bytes(thumb[20..24].try_into().unwrap()), 400);
    let (status, _, _) = get(&format!("{run}/thumbnail/deploy-log")).await;
    assert_eq!(status, 404, "only screenshots have thumbnails");
    let (_, media, junit) = get(&format!("{run}/junit.xml")).await;
    assert_eq!(media, "application/xml");
    assert!(String::from_utf8(junit)
        .unwrap()
        .contains(r#"<testcase name="3 upgrade""#));
    let (_, _, json) = get(&format!("{run}/results.json")).await;
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["level"], 2);
    let (_, _, md) = get(&format!("{run}/comment.md")).await;
    assert!(String::from_utf8(md).unwrap().contains("<!-- cc-ci:testme -->"));
    let (status, _, _) = get(&format!("{run}/secrets.env")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_files_are_served_as_inert_text_or_images_and_nothing_outside_it() {
    let root = world::results_root();
    let run = root.path().join("static-site/bbb002");
    std::fs::write(run.join("evil.svg"), "<svg onload=alert(1)></svg>").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", run.join("passwd.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", run.join("etc")).unwrap();
    let base = world::serve(root.path(), None).await;
    let files = format!("{base}/run/static-site/bbb002/files");
    let (status, media, _) = get(&format!("{files}/screenshot.png")).await;
    assert_eq!((status, media.as_str()), (200, "image/png"));
    let (status, media, body) = get(&format!("{files}/logs/tested-front-page-https.log")).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "text/plain; charset=utf-8"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let r = reqwest::get(format!("{files}/evil.svg")).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    for bad in [
        "passwd.txt",
        "etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/x",
        ".hidden",
    ] {
        let (status, _, body) = get(&format!("{files}/{bad}")).await;
        assert_eq!(status, 404, "{bad}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_and_the_feed_carry_the_same_data() {
    let root = world::results_root();
    let base = world::serve(root.path(), None).await;
    let (_, media, body) = get(&format!("{base}/api/recipes")).await;
    assert_eq!(media, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let rows = v["recipes"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let ss = rows.iter().find(|r| r["name"] == "static-site").unwrap();
    assert_eq!(
        (ss["level"].as_u64(), ss["trend"].as_str(), ss["previous"].as_u64()),
        (Some(2), Some("down"), Some(7))
    );
    let (_, _, body) = get(&format!("{base}/api/recipe/static-site")).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 4);
    let (_, _, body) = get(&format!("{base}/api/run/static-site/bbb002")).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["results"]["level"], 2);
    assert_eq!(v["page"]["diff"]["green_run"], "ed7869");
    let (status, media, body) = get(&format!("{base}/feed.atom")).await;
    assert_eq!((status, media.as_str()), (200, "application/atom+xml"));
    let feed = atom_syndication::Feed::read_from(&body[..]).unwrap();
    assert_eq!(feed.entries.len(), 1, "one regression: {feed:?}");
    let e = &feed.entries[0];
    assert_eq!(e.title.value, "static-site: level 7 → 2 (1.1.0+1.22.1)");
    assert_eq!(e.links[0].href, "https://dashboard.ci.test/run/static-site/bbb002/");
    let html = page(&format!("{base}/queue")).await;
    assert!(html.contains("No Buildbot configured"), "{html}");
}
