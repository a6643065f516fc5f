//! How fast the dashboard answers with a long history: builds a results
//! root of 1,000 runs (from the real run in `tests/fixtures`, levels and
//! times varied) in two shapes, one recipe with all of them and 50
//! recipes with 20 each, serves it, and prints per page type the median
//! and the slowest of 50 requests over HTTP (catalog warm), and the time of
//! the first scan. Run by `scripts/bench-dashboard`; prints figures, asserts
//! nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use cc_ci_results::level::Status;
use cc_ci_results::{RefKind, RunResults};

fn template() -> RunResults {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/static-site/ed7869/results.json");
    RunResults::read(&p).expect("the fixture run")
}

fn build(root: &Path, recipes: usize, per_recipe: usize) {
    let t = template();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    for k in 0..recipes {
        for i in 0..per_recipe {
            let mut r = t.clone();
            r.recipe = format!("recipe-{k:03}");
            let start = t0 + chrono::Duration::hours((i * 7) as i64);
            r.started_at = start.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            r.finished_at = (start + chrono::Duration::seconds(74))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            if i % 5 == 3 {
                r.ref_kind = Some(RefKind::Change);
            }
            if i % 9 == 4 {
                r.rungs[2].status = Status::Fail;
                r.rungs[2].reason = Some("the new task exited 1".into());
                r.verdict = None;
            }
            r.finish();
            let dir = root.join(&r.recipe).join(format!("{:06x}", k * per_recipe + i));
            std::fs::create_dir_all(&dir).unwrap();
            r.write(&dir.join("results.json")).unwrap();
        }
    }
}

async fn measure(client: &reqwest::Client, url: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..50 {
        let t = Instant::now();
        let r = client.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        size = r.bytes().await.unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], size)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    for (recipes, per) in [(1, 1000), (50, 20)] {
        let d = tempfile::tempdir().unwrap();
        build(d.path(), recipes, per);
        let config = dashboard::config::Config {
            results_dir: d.path().to_path_buf(),
            public_url: "https://dashboard.ci.test".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            clone_url: "https://example.org/{recipe}.git".into(),
            buildbot_url: None,
        };
        let app = dashboard::server::App::new(config);
        let t = Instant::now();
        let snap = app.catalog.scan();
        let scan = t.elapsed();
        let runs = snap.runs().count();
        let t = Instant::now();
        let _ = app.catalog.scan();
        let rescan = t.elapsed();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = dashboard::server::router(app);
        tokio::spawn(async move { axum::serve(listener, router).await });
        println!("== {runs} runs: {recipes} recipe(s) x {per}");
        println!(
            "first scan (parse every results.json): {:.1} ms",
            scan.as_secs_f64() * 1e3
        );
        println!(
            "rescan (stat only, nothing changed):  {:.1} ms (at most every 2 s)",
            rescan.as_secs_f64() * 1e3
        );
        println!("{:<28} {:>10} {:>10} {:>10}", "page", "median ms", "max ms", "bytes");
        let run = format!("/run/recipe-000/{:06x}/", per - 1);
        for (name, path) in [
            ("grid", "/".to_string()),
            ("grid, level>=7, by level", "/?level=7&sort=level".to_string()),
            ("recipe page", "/recipe/recipe-000/".to_string()),
            ("run page", run.clone()),
            ("recipe badge", "/recipe/recipe-000/badge.svg".to_string()),
            ("API: recipes", "/api/recipes".to_string()),
            ("API: recipe", "/api/recipe/recipe-000".to_string()),
            ("Atom feed", "/feed.atom".to_string()),
        ] {
            let (median, max, size) = measure(&client, &format!("{base}{path}")).await;
            println!(
                "{name:<28} {:>10.2} {:>10.2} {size:>10}",
                median.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
        }
        let t = Instant::now();
        let r = client.get(format!("{base}{run}card.png")).send().await.unwrap();
        let n = r.bytes().await.unwrap().len();
        println!(
            "card.png, first (drawn):     {:>10.2} ms ({n} bytes)",
            t.elapsed().as_secs_f64() * 1e3
        );
        let (median, _, _) = measure(&client, &format!("{base}{run}card.png")).await;
        println!("card.png, again (kept):      {:>10.2} ms", median.as_secs_f64() * 1e3);
    }
}
