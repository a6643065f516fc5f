//! The SVG templates results are rendered with (minijinja, every value
//! escaped for XML), compiled into the binary from `templates/`.

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in [
            ("badge.svg", include_str!("templates/badge.svg")),
            ("card.svg", include_str!("templates/card.svg")),
        ] {
            env.add_template(name, text)
                .expect("a template that parses (pinned by tests)");
        }
        env
    })
}

/// Renders the embedded template `name` with `ctx`.
///
/// # Panics
/// When the template or its context does not match (a programming error,
/// pinned by each renderer's tests), never on data: every value is escaped.
pub fn render<S: Serialize>(name: &str, ctx: &S) -> String {
    env()
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(ctx)))
        .unwrap_or_else(|e| panic!("template {name}: {e:#}"))
}
