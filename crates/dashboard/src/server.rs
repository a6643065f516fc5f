//! The HTTP side (axum): routes to pages, renderings and files; see the
//! crate doc for the URL map. Read only: every handler reads the
//! [`Catalog`]'s snapshot or a file inside a run's folder.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};

use cc_ci_results::comment::CommentContext;
use cc_ci_results::format::{self, Format};

use crate::catalog::{is_recipe_name, is_run_id, Catalog};
use crate::config::Config;
use crate::pages::{self, GridQuery};

/// Most cards kept rendered in memory.
const CARDS_KEPT: usize = 64;

/// A run's card: (recipe, run id, finished_at) to its PNG.
type Cards = HashMap<(String, String, String), Arc<Vec<u8>>>;

/// What the handlers share.
pub struct App {
    /// The settings.
    pub config: Config,
    /// The results root.
    pub catalog: Catalog,
    /// Rendered cards by (recipe, run id, finished_at).
    cards: Mutex<Cards>,
    http: reqwest::Client,
}

impl App {
    /// The app over `config.results_dir`.
    ///
    /// # Panics
    /// When no TLS client can be built (rustls' ring provider is compiled in).
    pub fn new(config: Config) -> Arc<App> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(App {
            catalog: Catalog::new(&config.results_dir),
            config,
            cards: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .user_agent("cc-ci-dashboard")
                .build()
                .expect("an HTTP client"),
        })
    }
}

/// Every route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(grid))
        .route("/recipe/{recipe}", get(|UrlPath(r): UrlPath<String>| async move { Redirect::permanent(&format!("/recipe/{r}/")) }))
        .route("/recipe/{recipe}/", get(recipe))
        .route("/recipe/{recipe}/badge.svg", get(recipe_badge))
        .route("/run/{recipe}/{id}", get(|UrlPath((r, i)): UrlPath<(String, String)>| async move { Redirect::permanent(&format!("/run/{r}/{i}/")) }))
        .route("/run/{recipe}/{id}/", get(run))
        .route("/run/{recipe}/{id}/{render}", get(run_rendering))
        .route("/run/{recipe}/{id}/files/{*path}", get(run_file))
        .route("/run/{recipe}/{id}/thumbnail/{artifact}", get(run_thumbnail))
        .route("/queue", get(queue))
        .route("/api/recipes", get(api_recipes))
        .route("/api/recipe/{recipe}", get(api_recipe))
        .route("/api/run/{recipe}/{id}", get(api_run))
        .route("/feed.atom", get(feed))
        .fallback(|| async { not_found("No such page", "The dashboard has no page at this address.") })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Pages load nothing from elsewhere and run no script.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

fn not_found(title: &str, detail: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(pages::error_page(title, detail))).into_response()
}

fn typed(media: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn grid(State(app): State<Arc<App>>, Query(q): Query<GridQuery>) -> Html<String> {
    Html(pages::grid(&app.catalog.snapshot(), &q))
}

async fn recipe(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    match pages::recipe(&app.catalog.snapshot(), &name, &app.config.public_url) {
        Some(html) => Html(html).into_response(),
        None => not_found("No such recipe", &format!("No results of a recipe named {name:?}.")),
    }
}

async fn recipe_badge(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    // A recipe without counted runs, or unknown here, is "unknown" in grey
    // (a README's badge must not break).
    let snap = app.catalog.snapshot();
    let level = snap
        .recipes
        .get(&name)
        .and_then(|r| r.current())
        .and_then(|c| c.level());
    typed("image/svg+xml", cc_ci_results::badge::svg(level))
}

async fn run(State(app): State<Arc<App>>, UrlPath((recipe, id)): UrlPath<(String, String)>) -> Response {
    match pages::run(&app.catalog.snapshot(), &recipe, &id, &app.config.clone_url) {
        Some(html) => Html(html).into_response(),
        None => not_found("No such run", &format!("No run {id:?} of a recipe named {recipe:?}.")),
    }
}

/// A drawn picture (card or thumbnail) from the in-memory keep, or drawn
/// now off the async threads by `draw` and kept (the keep is emptied when
/// it holds [`CARDS_KEPT`]).
async fn kept_png(
    app: &App,
    key: (String, String, String),
    draw: impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static,
) -> Response {
    if let Some(png) = app
        .cards
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return typed("image/png", png.as_ref().clone());
    }
    match tokio::task::spawn_blocking(draw).await {
        Ok(Ok(png)) => {
            let png = Arc::new(png);
            let mut cards = app.cards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cards.len() >= CARDS_KEPT {
                cards.clear();
            }
            cards.insert(key, png.clone());
            typed("image/png", png.as_ref().clone())
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn run_rendering(
    State(app): State<Arc<App>>,
    UrlPath((recipe, id, what)): UrlPath<(String, String, String)>,
) -> Response {
    let fmt = match what.as_str() {
        "badge.svg" => Format::Badge,
        "card.png" => Format::Card,
        "junit.xml" => Format::Junit,
        "results.json" => Format::Json,
        "summary.txt" => Format::Text,
        "comment.md" => Format::Markdown,
        _ => return not_found("No such file", &format!("A run has no {what:?}.")),
    };
    let snap = app.catalog.snapshot();
    let Some(run) = snap.run(&recipe, &id).cloned() else {
        return not_found("No such run", &format!("No run {id:?} of {recipe:?}."));
    };
    let Some(results) = run.results.clone() else {
        return not_found("Not finished", &format!("Run {id} has not written results."));
    };
    if fmt == Format::Card {
        let key = (recipe.clone(), id.clone(), results.finished_at.clone());
        let dir = run.dir.clone();
        return kept_png(&app, key, move || {
            cc_ci_results::card::png(&results, &dir).map_err(|e| e.to_string())
        })
        .await;
    }
    let ctx = CommentContext {
        clone_url: app.config.clone_url.replace("{recipe}", &recipe),
        ..CommentContext::default()
    };
    match format::render(fmt, &results, &run.dir, &ctx) {
        Ok(bytes) => typed(fmt.media_type(), bytes),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A screenshot's thumbnail (`cc_ci_results::card::thumbnail_png`: the
/// part of the page with something on it, 640 x 400), by artifact name
/// (`screenshot-serve`, `screenshot-upgrade`); kept like the cards.
async fn run_thumbnail(
    State(app): State<Arc<App>>,
    UrlPath((recipe, id, artifact)): UrlPath<(String, String, String)>,
) -> Response {
    let snap = app.catalog.snapshot();
    let Some(run) = snap.run(&recipe, &id).cloned() else {
        return not_found("No such run", &format!("No run {id:?} of {recipe:?}."));
    };
    let shot = run.results.as_ref().and_then(|r| {
        cc_ci_results::card::screenshots(r)
            .into_iter()
            .find(|s| s.artifact == artifact)
    });
    let Some(rel) = shot.and_then(|s| safe_relative(&s.path)) else {
        return not_found("No such screenshot", &format!("Run {id} has no {artifact:?}."));
    };
    let path = run.dir.join(rel);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_file() => {}
        _ => {
            return not_found(
                "No such screenshot",
                &format!("Run {id}'s {artifact} is not on this host."),
            )
        }
    }
    let key = (recipe.clone(), id.clone(), format!("thumbnail {artifact}"));
    kept_png(&app, key, move || {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        cc_ci_results::card::thumbnail_png(&bytes).map_err(|e| e.to_string())
    })
    .await
}

/// A path inside a run folder: normal components only, none hidden.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let ok = p.components().all(|c| match c {
        Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    (ok && !rel.is_empty()).then(|| p.to_path_buf())
}

fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        // Anything else as text, never as HTML or SVG (a recipe's output).
        _ => "text/plain; charset=utf-8",
    }
}

async fn run_file(
    State(app): State<Arc<App>>,
    UrlPath((recipe, id, rel)): UrlPath<(String, String, String)>,
) -> Response {
    if !is_recipe_name(&recipe) || !is_run_id(&id) {
        return not_found("No such file", "Not a recipe and run.");
    }
    let Some(rel) = safe_relative(&rel) else {
        return not_found("No such file", "Only files inside the run's folder are served.");
    };
    let path = app.config.results_dir.join(&recipe).join(&id).join(&rel);
    // No symlinks anywhere below the run folder: a file, as written.
    let mut walk = app.config.results_dir.join(&recipe).join(&id);
    for c in rel.components() {
        walk.push(c);
        match tokio::fs::symlink_metadata(&walk).await {
            Ok(m) if !m.file_type().is_symlink() => {}
            _ => return not_found("No such file", &format!("No file {} in run {id}.", rel.display())),
        }
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut r = typed(media_type(&path), bytes);
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            );
            r
        }
        Err(_) => not_found("No such file", &format!("No file {} in run {id}.", rel.display())),
    }
}

async fn queue(State(app): State<Arc<App>>) -> Html<String> {
    let q = match &app.config.buildbot_url {
        Some(base) => crate::queue::read(&app.http, base).await,
        None => Err("No Buildbot configured (buildbot_url in the dashboard's settings).".into()),
    };
    Html(pages::queue(&q))
}

async fn api_recipes(State(app): State<Arc<App>>, Query(q): Query<GridQuery>) -> Response {
    let snap = app.catalog.snapshot();
    Json(serde_json::json!({ "recipes": pages::grid_rows(&snap, &q) })).into_response()
}

async fn api_recipe(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    match pages::recipe_json(&app.catalog.snapshot(), &name) {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such recipe"})),
        )
            .into_response(),
    }
}

async fn api_run(State(app): State<Arc<App>>, UrlPath((recipe, id)): UrlPath<(String, String)>) -> Response {
    let snap = app.catalog.snapshot();
    let Some(run) = snap.run(&recipe, &id) else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such run"}))).into_response();
    };
    let page = pages::run_context(&snap, &recipe, &id, &app.config.clone_url);
    Json(serde_json::json!({
        "results": run.results.as_deref(),
        "started": run.started,
        "page": page,
    }))
    .into_response()
}

async fn feed(State(app): State<Arc<App>>) -> Response {
    typed(
        "application/atom+xml",
        crate::feed::atom(&app.catalog.snapshot(), &app.config.public_url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_inside_the_folder_are_files() {
        assert_eq!(safe_relative("logs/x.log"), Some(PathBuf::from("logs/x.log")));
        for bad in ["../x", "/etc/passwd", ".hidden", "logs/../../x", ""] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
        assert_eq!(media_type(Path::new("a.svg")), "text/plain; charset=utf-8");
        assert_eq!(media_type(Path::new("a.html")), "text/plain; charset=utf-8");
    }
}
