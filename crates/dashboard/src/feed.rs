//! An Atom feed of regressions (atom_syndication): an entry for every
//! finished run whose level is below that of the recipe's run before it,
//! or whose verdict is not green after a green one, newest first, at most
//! [`ENTRIES`].

use atom_syndication::{Entry, Feed, FixedDateTime, Link, Text};

use cc_ci_results::verdict::State;

use crate::catalog::{Run, Snapshot};

/// Most entries in the feed.
pub const ENTRIES: usize = 50;

/// A regression: a run and the run before it.
#[derive(Debug, Clone)]
pub struct Regression<'a> {
    /// The run that went down.
    pub run: &'a Run,
    /// The finished run of the same recipe before it.
    pub before: &'a Run,
}

/// Every regression in the snapshot, newest first.
pub fn regressions(snap: &Snapshot) -> Vec<Regression<'_>> {
    let mut out = Vec::new();
    for recipe in snap.recipes.values() {
        let finished: Vec<&Run> = recipe
            .runs
            .iter()
            .filter(|r| r.results.is_some())
            .map(|r| r.as_ref())
            .collect();
        for pair in finished.windows(2) {
            let (now, before) = (pair[0], pair[1]);
            let (a, b) = (now.results.as_ref().unwrap(), before.results.as_ref().unwrap());
            let worse_verdict = a.verdict().state != State::Success && b.verdict().state == State::Success;
            if a.level < b.level || worse_verdict {
                out.push(Regression { run: now, before });
            }
        }
    }
    out.sort_by(|x, y| y.run.started_at().cmp(x.run.started_at()));
    out
}

fn time(s: &str) -> FixedDateTime {
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_default()
}

/// The feed, as Atom XML; links are absolute under `public_url`.
pub fn atom(snap: &Snapshot, public_url: &str) -> String {
    let regs = regressions(snap);
    let entries: Vec<Entry> = regs
        .iter()
        .take(ENTRIES)
        .map(|g| {
            let (a, b) = (g.run.results.as_ref().unwrap(), g.before.results.as_ref().unwrap());
            let url = format!("{public_url}/run/{}/{}/", g.run.recipe, g.run.id);
            let why = a
                .first_red()
                .map(|r| {
                    format!(
                        "{} {}: {}",
                        r.rung.word(),
                        r.status.word(),
                        r.reason.as_deref().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            Entry {
                id: url.clone(),
                title: Text::plain(format!(
                    "{}: level {} → {} ({})",
                    g.run.recipe,
                    b.level,
                    a.level,
                    a.tested_version.as_deref().unwrap_or("?")
                )),
                updated: time(&a.finished_at),
                links: vec![Link {
                    href: url,
                    rel: "alternate".into(),
                    mime_type: Some("text/html".into()),
                    ..Link::default()
                }],
                summary: Some(Text::plain(format!(
                    "{} (run {} was level {}). {why}",
                    a.verdict().description,
                    g.before.id,
                    b.level
                ))),
                ..Entry::default()
            }
        })
        .collect();
    let updated = entries.first().map(|e| e.updated).unwrap_or_default();
    let feed = Feed {
        id: format!("{public_url}/feed.atom"),
        title: Text::plain("cc-ci: regressions"),
        updated,
        links: vec![Link {
            href: format!("{public_url}/feed.atom"),
            rel: "self".into(),
            mime_type: Some("application/atom+xml".into()),
            ..Link::default()
        }],
        entries,
        ..Feed::default()
    };
    feed.to_string()
}
