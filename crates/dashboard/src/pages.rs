//! The HTML pages (minijinja templates from `templates/`, every value
//! escaped) and the JSON of the same data. Pages need no JavaScript.

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use serde_json::{json, Value};

use cc_ci_results::card::{self, key_screenshot, screenshots};
use cc_ci_results::comment::checkout_commands;
use cc_ci_results::level::{level_name, Rung, Status};
use cc_ci_results::verdict::State;
use cc_ci_results::{RefKind, RunResults, SCHEMA};

use crate::catalog::{Recipe, Run, Snapshot};
use crate::chart;
use crate::diff;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("grid.html", include_str!("templates/grid.html")),
            ("recipe.html", include_str!("templates/recipe.html")),
            ("run.html", include_str!("templates/run.html")),
            ("queue.html", include_str!("templates/queue.html")),
            ("error.html", include_str!("templates/error.html")),
        ] {
            env.add_template(name, text).expect("templates parse (pinned by tests)");
        }
        env
    })
}

/// Renders template `name` with `ctx` (plus the results schema).
///
/// # Panics
/// On a template error: a programming error pinned by the page tests.
pub fn render(name: &str, ctx: &Value) -> String {
    let mut ctx = ctx.clone();
    ctx["schema"] = json!(SCHEMA);
    env()
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        .unwrap_or_else(|e| panic!("template {name}: {e:#}"))
}

/// An error page's context.
pub fn error_page(title: &str, detail: &str) -> String {
    render("error.html", &json!({ "title": title, "detail": detail }))
}

/// `2026-12-07T05:24:15Z` as `2026-12-07 05:24 UTC`.
fn when(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

fn verdict_class(s: State) -> &'static str {
    match s {
        State::Success => "pass",
        State::Failure => "fail",
        State::Error => "error",
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Unverified => "unverified",
        Status::Skipped => "skipped",
        Status::NotApplicable => "na",
    }
}

fn kind(r: &RunResults) -> String {
    let base = match &r.ref_kind {
        Some(RefKind::Release { tag }) => format!("release {tag}"),
        Some(RefKind::DefaultBranch { branch }) => format!("default branch {branch}"),
        Some(RefKind::Change) => "a change (pull request)".into(),
        None => "unknown".into(),
    };
    if r.quick {
        format!("{base}, --quick")
    } else {
        base
    }
}

fn badge_alt(level: Option<u8>) -> String {
    match level {
        Some(n) => format!("cc-ci level {n} ({})", level_name(n)),
        None => "cc-ci: no result yet".into(),
    }
}

/// How the grid is filtered and sorted (`?level=N&sort=name|level|time`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GridQuery {
    /// Only recipes at this level or above.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub level: Option<u8>,
    /// `name` (default), `level` (highest first) or `time` (newest first).
    #[serde(default)]
    pub sort: Option<String>,
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(x) => x.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// One recipe's row on the grid (also the JSON API's).
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    /// Recipe.
    pub name: String,
    /// Level of its newest counted run.
    pub level: Option<u8>,
    /// `up`, `down`, `same`, or `new` (no counted run before).
    pub trend: &'static str,
    /// The counted run before's level.
    pub previous: Option<u8>,
    /// The current run.
    pub current_id: Option<String>,
    /// When it started.
    pub current_at: Option<String>,
    /// The newest finished run of any kind.
    pub latest_id: Option<String>,
    /// Its level.
    pub latest_level: Option<u8>,
    /// Its verdict.
    pub latest_verdict: Option<&'static str>,
    /// When it started.
    pub latest_at: Option<String>,
    /// The badge's alternative text.
    pub badge_alt: String,
}

/// The grid's rows, filtered and sorted.
pub fn grid_rows(snap: &Snapshot, q: &GridQuery) -> Vec<GridRow> {
    let mut rows: Vec<GridRow> = snap
        .recipes
        .values()
        .map(|r| {
            let cur = r.current();
            let level = cur.and_then(|c| c.level());
            let previous = r.previous().and_then(|p| p.level());
            let trend = match (level, previous) {
                (Some(a), Some(b)) if a > b => "up",
                (Some(a), Some(b)) if a < b => "down",
                (Some(_), Some(_)) => "same",
                _ => "new",
            };
            let latest = r.latest();
            GridRow {
                name: r.name.clone(),
                level,
                trend,
                previous,
                current_id: cur.map(|c| c.id.clone()),
                current_at: cur.map(|c| when(c.started_at())),
                latest_id: latest.map(|c| c.id.clone()),
                latest_level: latest.and_then(|c| c.level()),
                latest_verdict: latest
                    .and_then(|c| c.results.as_ref())
                    .map(|x| x.verdict().state.as_str()),
                latest_at: latest.map(|c| when(c.started_at())),
                badge_alt: badge_alt(level),
            }
        })
        .filter(|row| q.level.is_none_or(|min| row.level.is_some_and(|l| l >= min)))
        .collect();
    match q.sort.as_deref() {
        Some("level") => rows.sort_by(|a, b| b.level.cmp(&a.level).then(a.name.cmp(&b.name))),
        Some("time") => rows.sort_by(|a, b| b.latest_at.cmp(&a.latest_at).then(a.name.cmp(&b.name))),
        _ => {}
    }
    rows
}

/// The recipe grid.
pub fn grid(snap: &Snapshot, q: &GridQuery) -> String {
    let rows = grid_rows(snap, q);
    let running = snap.runs().filter(|r| r.results.is_none()).count();
    render(
        "grid.html",
        &json!({
            "recipes": rows,
            "total": snap.recipes.len(),
            "running": running,
            "level": q.level,
            "sort": q.sort.as_deref().unwrap_or("name"),
            "unreadable": snap.unreadable,
        }),
    )
}

/// A run's line on the recipe page (also the JSON API's).
fn run_row(r: &Run) -> Value {
    match &r.results {
        Some(x) => {
            let v = x.verdict();
            json!({
                "id": r.id,
                "started_at": when(&x.started_at),
                "version": x.tested_version.as_deref().unwrap_or("?"),
                "kind": kind(x),
                "counts": r.counts(),
                "level": x.level,
                "verdict": v.state.as_str(),
                "verdict_class": verdict_class(v.state),
                "wall": x.time_split.as_ref().map(|t| format!("{:.0} s", t.wall_s)).unwrap_or_default(),
            })
        }
        None => json!({
            "id": r.id,
            "started_at": when(r.started_at()),
            "version": "",
            "kind": "not finished",
            "counts": false,
            "level": "",
            "verdict": "not finished",
            "verdict_class": "na",
            "wall": "",
        }),
    }
}

/// What the recipe page says about level 8.
fn maintained(recipe: &Recipe) -> String {
    let Some(cur) = recipe.current().and_then(|c| c.results.clone()) else {
        return "No release or default-branch run yet: maintained needs level 7 or more on each of the last runs over a sustained period.".into();
    };
    match cur.rungs.iter().find(|r| r.rung == Rung::Maintained) {
        Some(m) if m.status == Status::Pass => {
            format!(
                "Maintained: {}",
                m.reason
                    .as_deref()
                    .unwrap_or("level 7 or more on each of the last runs over a sustained period")
            )
        }
        Some(m) => format!(
            "Not maintained ({}): {}",
            m.status.word(),
            m.reason.as_deref().unwrap_or("")
        ),
        None => format!(
            "Not judged: the newest counted run (level {}) stopped before rung 8.",
            cur.level
        ),
    }
}

/// The recipe page (None: no such recipe).
pub fn recipe(snap: &Snapshot, name: &str, public_url: &str) -> Option<String> {
    let recipe = snap.recipes.get(name)?;
    let finished: Vec<&Run> = recipe
        .runs
        .iter()
        .rev()
        .filter(|r| r.results.is_some())
        .map(|r| r.as_ref())
        .collect();
    let points: Vec<chart::Point> = finished
        .iter()
        .map(|r| chart::Point {
            label: r.started_at().get(5..10).unwrap_or("").to_string(),
            level: r.level().unwrap_or(0),
            counts: r.counts(),
        })
        .collect();
    let chart_alt = match (points.first(), points.last()) {
        (Some(a), Some(b)) => format!(
            "Level of {} finished run(s), from {} (level {}) to {} (level {}); lowest {}, highest {}.",
            points.len(),
            finished[0].started_at().get(..10).unwrap_or(""),
            a.level,
            finished[finished.len() - 1].started_at().get(..10).unwrap_or(""),
            b.level,
            points.iter().map(|p| p.level).min().unwrap_or(0),
            points.iter().map(|p| p.level).max().unwrap_or(0),
        ),
        _ => "No finished runs yet.".into(),
    };
    let level = recipe.current().and_then(|c| c.level());
    Some(render(
        "recipe.html",
        &json!({
            "name": name,
            "public_url": public_url,
            "badge_alt": badge_alt(level),
            "chart": chart::levels(&points, 720, 260),
            "chart_alt": chart_alt,
            "maintained": maintained(recipe),
            "runs": recipe.runs.iter().map(|r| run_row(r)).collect::<Vec<_>>(),
        }),
    ))
}

/// The recipe's data for the JSON API.
pub fn recipe_json(snap: &Snapshot, name: &str) -> Option<Value> {
    let recipe = snap.recipes.get(name)?;
    let row = grid_rows(snap, &GridQuery::default())
        .into_iter()
        .find(|r| r.name == name);
    Some(json!({
        "recipe": name,
        "current": row,
        "maintained": maintained(recipe),
        "runs": recipe.runs.iter().map(|r| run_row(r)).collect::<Vec<_>>(),
    }))
}

/// Files of the run worth linking: its artifacts, then rung logs.
fn files(r: &RunResults) -> Vec<Value> {
    let mut out: Vec<Value> = r
        .artifacts
        .iter()
        .map(|(name, path)| json!({"name": format!("{name} ({path})"), "path": path}))
        .collect();
    for x in &r.rungs {
        if let Some(l) = &x.log {
            out.push(json!({"name": format!("{} log ({l})", x.rung.word()), "path": l}));
        }
    }
    out
}

/// The run page (None: no such run).
pub fn run(snap: &Snapshot, recipe: &str, id: &str, clone_url: &str) -> Option<String> {
    Some(render("run.html", &run_context(snap, recipe, id, clone_url)?))
}

/// The run page's data (also the JSON API's `page`).
pub fn run_context(snap: &Snapshot, recipe: &str, id: &str, clone_url: &str) -> Option<Value> {
    let rec = snap.recipes.get(recipe)?;
    let run = rec.run(id)?;
    let Some(r) = &run.results else {
        let s = run.started.as_ref();
        return Some(json!({
            "recipe": recipe, "id": id, "finished": false,
            "started_at": s.map(|s| when(&s.started_at)).unwrap_or_default(),
            "tested_ref": s.map(|s| s.tested_ref.clone()).unwrap_or_default(),
        }));
    };
    let v = r.verdict();
    let rungs: Vec<Value> = r
        .rungs
        .iter()
        .map(|x| {
            json!({
                "label": format!("{} {}", x.rung.level(), x.rung.word()),
                "status": x.status.word(),
                "class": status_class(x.status),
                "mark": card::mark(x.status).0,
                "duration": format!("{:.1} s", x.duration_s),
                "reason": x.reason.clone().unwrap_or_default(),
                "log": x.log,
                "attempts": x.attempts,
            })
        })
        .collect();
    let key = key_screenshot(r);
    let shots: Vec<Value> = screenshots(r)
        .into_iter()
        .map(|s| json!({"path": s.path, "artifact": s.artifact, "caption": s.caption, "key": key.as_ref().is_some_and(|k| k.artifact == s.artifact)}))
        .collect();
    let no_shots = r
        .missing_artifacts
        .iter()
        .filter(|(k, _)| k.starts_with("screenshot"))
        .map(|(k, why)| format!("{k}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    let phases: Vec<Value> = r
        .phases
        .iter()
        .map(|p| json!({"phase": p.phase, "wall": format!("{:.1}", p.wall_s), "waiting": format!("{:.1}", p.waiting_s), "own": format!("{:.1}", (p.wall_s - p.waiting_s).max(0.0))}))
        .collect();
    let split = r.time_split.as_ref().map(|t| {
        json!({"wall": format!("{:.1}", t.wall_s), "waiting": format!("{:.1}", t.waiting_s), "own": format!("{:.1}", t.own_s)})
    });
    let diff = diff::last_green_before(rec, run).and_then(|g| Some(diff::diff(&g.id, g.results.as_ref()?, r)));
    let logs: Vec<Value> = r
        .service_logs
        .iter()
        .map(|l| json!({"service": l.service, "text": l.lines.join("\n")}))
        .collect();
    let reproduce = format!(
        "{}ccci test ./{}",
        checkout_commands(&clone_url.replace("{recipe}", recipe), "", recipe, &r.tested_ref),
        recipe
    );
    Some(json!({
        "recipe": recipe,
        "id": id,
        "finished": true,
        "version": r.tested_version.as_deref().unwrap_or("(no version)"),
        "level": r.level,
        "level_name": r.level_name,
        "badge_alt": badge_alt(Some(r.level)),
        "verdict": v.state.as_str(),
        "verdict_class": verdict_class(v.state),
        "description": v.description,
        "bar": v.bar.describe(),
        "why": v.why,
        "tested_ref": r.tested_ref,
        "kind": kind(r),
        "base": r.base_version.clone().unwrap_or_else(|| "nothing (no upgrade base)".into()),
        "started_at": when(&r.started_at),
        "finished_at": when(&r.finished_at),
        "rungs": rungs,
        "card_alt": format!("Summary card: {} {} level {} ({}), {}", recipe, r.tested_version.as_deref().unwrap_or(""), r.level, r.level_name, v.state.as_str()),
        "shots": shots,
        "no_shots": if no_shots.is_empty() { "the run took none".to_string() } else { no_shots },
        "domain": r.app.as_ref().map(|a| a.domain.clone()).unwrap_or_default(),
        "split": split,
        "phases": phases,
        "diff": diff,
        "lint": r.lint,
        "logs": logs,
        "deploys": r.deploys,
        "deployer": r.deployer.as_ref().and_then(|d| d["name"].as_str().map(str::to_string)),
        "adaptations": r.adaptations,
        "images": r.images,
        "reproduce": reproduce,
        "settings": serde_json::to_string_pretty(&r.settings).unwrap_or_default(),
        "files": files(r),
    }))
}

/// The queue page from Buildbot's answers (or why there are none).
pub fn queue(q: &Result<crate::queue::Queue, String>) -> String {
    match q {
        Ok(q) => render(
            "queue.html",
            &json!({"running": q.running, "waiting": q.waiting, "source": q.source}),
        ),
        Err(e) => render("queue.html", &json!({"error": e})),
    }
}
