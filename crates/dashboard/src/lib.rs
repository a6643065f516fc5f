//! cc-ci's dashboard: a read-only web service over the results root.
//!
//! - `/`: the recipe grid (each recipe's badge, last run, trend), filtered
//!   and sorted by query (`?level=5&sort=level`);
//! - `/recipe/<recipe>/`: the level over time, every run, level 8 explained;
//!   `/recipe/<recipe>/badge.svg`: the recipe's current badge (stable URL);
//! - `/run/<recipe>/<run id>/`: one run (rungs, screenshots, timings, lint,
//!   logs, settings, changes since the last green run, how to reproduce),
//!   and beside it `badge.svg`, `card.png`, `junit.xml`, `results.json`
//!   and `files/<path>` (the run's files);
//! - `/queue`: Buildbot's running and waiting builds;
//! - `/api/recipes`, `/api/recipe/<recipe>`, `/api/run/<recipe>/<id>`: JSON;
//! - `/feed.atom`: regressions.
//!
//! Everything is rendered from results files ([`catalog`]), through the
//! same renderers as `ccci report` (`cc_ci_results`), never from live
//! state; only the queue asks Buildbot.

pub mod catalog;
pub mod chart;
pub mod config;
pub mod diff;
pub mod feed;
pub mod pages;
pub mod queue;
pub mod server;
