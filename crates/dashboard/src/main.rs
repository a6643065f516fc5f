//! `dashboard`: serves cc-ci's results read-only (see the library's doc
//! for the pages). Thin: settings, logging, the listener, shutdown.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

/// cc-ci's dashboard: the recipe grid, each recipe's history and badge,
/// each run's page, card and files, a JSON API and an Atom feed of
/// regressions, all rendered from the results folder (read only; it never
/// talks to Docker). Run it as an unprivileged user that can read the
/// results and nothing else.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The settings file (TOML: results_dir, public_url, listen, clone_url,
    /// buildbot_url).
    #[arg(long, env = "CCCI_DASHBOARD_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CCCI_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = dashboard::config::Config::read(&cli.config)?;
    let listen = config.listen;
    let app = dashboard::server::App::new(config);
    // Read the results once before the first request (about 100 ms for
    // 1,000 runs), so no visitor waits for it.
    let warm = app.clone();
    let runs = tokio::task::spawn_blocking(move || warm.catalog.snapshot().runs().count()).await?;
    tracing::info!("dashboard: {runs} run(s) under {}", app.config.results_dir.display());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("dashboard: serving on http://{}", listener.local_addr()?);
    axum::serve(listener, dashboard::server::router(app))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
        .context("the server stopped")
}
