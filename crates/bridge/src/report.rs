//! A finished build, reported: the commit status (`cc-ci/testme`: success,
//! failure or error, "level N (name)", the build's page) and the one PR
//! comment, edited in place on re-runs, with the summary card and the
//! screenshot that matters (full size and a thumbnail cropped to the page's
//! content) attached, and the PR's earlier runs listed. All
//! of it is rendered from the run's results.json on the master
//! (`<results_dir>/<results_rel>/results.json`, where the build property
//! `results_rel` says; see pkgs/buildbot/master.cfg), never from live state.
//!
//! The comment is found again after a restart by its marker
//! ([`cc_ci_results::comment::MARKER`]) among the bot's comments, so a
//! bridge that stopped between posting and recording posts no second one.

use std::path::PathBuf;

use cc_ci_results::card;
use cc_ci_results::comment::{self, CommentContext, EarlierRun, MARKER};
use cc_ci_results::verdict::State as VerdictState;
use cc_ci_results::RunResults;

use crate::bridge::Bridge;
use crate::buildbot::{result_name, CANCELLED};
use crate::gitea::StatusState;
use crate::retry::{CallError, Kind};
use crate::state::{BuildRow, Phase, Trigger};

/// What a build left.
#[derive(Debug)]
pub enum Findings {
    /// Its results.
    Results {
        /// The results.
        results: Box<RunResults>,
        /// Their folder on the master.
        dir: PathBuf,
    },
    /// No results: why.
    Nothing(String),
}

/// Whether a `results_rel` property is `<recipe>/<6 hex>` and nothing else
/// (it names a folder under the results root).
pub fn plausible_rel(rel: &str) -> bool {
    cc_ci_results::layout::is_run_rel(rel)
}

/// Why results found for a build are not that build's own: the run id,
/// the recipe (the folder's) or the tested commit differs. `None` when all
/// three agree.
pub fn mismatch(row: &BuildRow, rel: &str, results: &RunResults) -> Option<String> {
    let mut diffs = Vec::new();
    let folder_recipe = rel.split_once('/').map_or("", |(r, _)| r);
    let run_id = results.app.as_ref().map_or("(none)", |a| a.run_id.as_str());
    if run_id != row.run_id {
        diffs.push(format!("run id {run_id}, the build's is {}", row.run_id));
    }
    if results.recipe != folder_recipe {
        diffs.push(format!(
            "recipe {:?}, the results folder's is {folder_recipe:?}",
            results.recipe
        ));
    }
    if !results.tested_ref.eq_ignore_ascii_case(&row.head_sha) {
        diffs.push(format!(
            "tested commit {}, the build's is {}",
            short(&results.tested_ref),
            short(&row.head_sha)
        ));
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "the results at {rel} are not this build's own ({}): not reported",
            diffs.join("; ")
        )
    })
}

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

impl Bridge {
    /// What build `row` left on the master: its results only when they are
    /// its own ([`mismatch`]); Buildbot's refusals (a purged build) are
    /// findings too, reported as an error.
    ///
    /// # Errors
    /// [`CallError`] when Buildbot cannot be asked now (transient).
    pub async fn findings(&self, row: &BuildRow) -> Result<Findings, CallError> {
        match self.look(row).await {
            Err(e) if e.kind() == Kind::Permanent => Ok(Findings::Nothing(format!("Buildbot cannot say: {e}"))),
            other => other,
        }
    }

    async fn look(&self, row: &BuildRow) -> Result<Findings, CallError> {
        let Some(buildid) = row.buildid else {
            let why = match (&row.last_error, row.brid) {
                (Some(e), _) => format!("the build could not be started: {e}"),
                (None, Some(brid)) => {
                    let r = self.buildbot.buildrequest(brid).await?;
                    if r.results == Some(CANCELLED) {
                        "the build was cancelled before it started".into()
                    } else {
                        format!(
                            "the build request ended ({}) without a build",
                            result_name(r.results.unwrap_or(-1))
                        )
                    }
                }
                (None, None) => "the build was never started".into(),
            };
            return Ok(Findings::Nothing(why));
        };
        if let Some(e) = &row.last_error {
            return Ok(Findings::Nothing(e.clone()));
        }
        let props = self.buildbot.properties(buildid).await?;
        let build = self.buildbot.build(buildid).await?;
        let rel = props.get("results_rel").and_then(|v| v.as_str()).unwrap_or("");
        if rel.is_empty() {
            return Ok(Findings::Nothing(format!(
                "the build ended ({}: {}) before `ccci test` wrote results",
                result_name(build.results.unwrap_or(-1)),
                build.state_string
            )));
        }
        if !plausible_rel(rel) {
            return Ok(Findings::Nothing(format!(
                "the build's results_rel {rel:?} is not <recipe>/<run id>"
            )));
        }
        let dir = self.config.results_dir.join(rel);
        let file = dir.join(cc_ci_results::layout::RESULTS_FILE);
        match RunResults::read(&file) {
            Ok(r) => match mismatch(row, rel, &r) {
                Some(why) => Ok(Findings::Nothing(why)),
                None => Ok(Findings::Results {
                    results: Box::new(r),
                    dir,
                }),
            },
            Err(e) => Ok(Findings::Nothing(format!(
                "the build ended ({}) but its results cannot be read: {e}",
                build.state_string
            ))),
        }
    }

    /// Reports build `row`: its final status, then (for a `!testme`) the PR
    /// comment. Sweeps post nothing (their results stay on the master).
    ///
    /// # Errors
    /// [`CallError`] when Gitea or Buildbot is away or refuses (the report
    /// is retried as its kind says).
    pub async fn report(&self, row: &BuildRow) -> Result<(), CallError> {
        let findings = self.findings(row).await?;
        let target = match (row.builderid, row.number, row.brid) {
            (Some(b), Some(n), _) => self.buildbot.build_url(b, n),
            (_, _, Some(r)) => self.buildbot.request_url(r),
            _ => self.config.buildbot_public_url.clone(),
        };
        let (state, description) = match &findings {
            Findings::Results { results, .. } => {
                // The one verdict ccci's exit status and the comment follow.
                let v = results.verdict();
                let state = match v.state {
                    VerdictState::Error => StatusState::Error,
                    VerdictState::Failure => StatusState::Failure,
                    VerdictState::Success => StatusState::Success,
                };
                (state, v.description)
            }
            Findings::Nothing(why) => (StatusState::Error, why.clone()),
        };
        tracing::info!(
            "{}#{}: build {} ended: {} ({description})",
            row.repo,
            row.pr,
            row.id,
            state.as_str()
        );
        if row.trigger == Trigger::Sweep {
            return Ok(());
        }
        // The status is recorded first (so it is not lost) but posted after
        // the comment: a final status means the comment is there to read.
        self.want_status(row.id, state, &description, &target);
        let ctx = CommentContext {
            clone_url: row.clone_url.clone(),
            fetch_ref: row.fetch_ref.clone(),
            build_url: Some(target),
            requested_by: row.requested_by.clone(),
            flags: if row.quick { vec!["--quick".into()] } else { vec![] },
            dashboard_url: self.config.dashboard_url.clone(),
            updated_at: Some(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
            history: self.history(row)?,
            ..CommentContext::default()
        };
        let commented = self.post_comment(row, &findings, ctx).await;
        self.post_statuses().await;
        commented
    }

    /// The PR's other `!testme` builds before `row`, newest first, each with
    /// its level and verdict from its results on the master (when they are
    /// its own), or what became of it.
    ///
    /// # Errors
    /// [`CallError`] when the state database fails.
    fn history(&self, row: &BuildRow) -> Result<Vec<EarlierRun>, CallError> {
        let rows = self.state.builds_of_pr(&row.repo, row.pr)?;
        Ok(rows
            .into_iter()
            .filter(|b| b.id < row.id)
            .map(|b| {
                let rel = format!("{}/{}", row.repo.name, b.run_id);
                let dir = cc_ci_results::layout::run_dir(&self.config.results_dir, &row.repo.name, &b.run_id);
                let results = RunResults::read(&dir.join(cc_ci_results::layout::RESULTS_FILE))
                    .ok()
                    .filter(|r| mismatch(&b, &rel, r).is_none());
                let (level, outcome) = match (&results, b.phase) {
                    (Some(r), _) => (Some(r.level), r.verdict().state.as_str().to_string()),
                    (None, _) if b.superseded_by.is_some() => (None, "superseded by a newer !testme".into()),
                    (None, p) if p.in_flight() => (None, "still running".into()),
                    (None, Phase::Dead) => (None, "not reported".into()),
                    (None, _) => (None, "no results".into()),
                };
                let url = match (&results, &self.config.dashboard_url, b.builderid, b.number) {
                    (Some(_), Some(d), _, _) => Some(format!("{d}/run/{rel}/")),
                    (_, _, Some(builder), Some(n)) => Some(self.buildbot.build_url(builder, n)),
                    _ => None,
                };
                EarlierRun {
                    commit: b.head_sha.clone(),
                    level,
                    outcome,
                    when: chrono::DateTime::from_timestamp(b.created_at as i64, 0)
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default(),
                    url,
                }
            })
            .collect())
    }

    /// The id of the bridge's comment on the PR: recorded, or found by its
    /// marker among the bot's comments (then recorded).
    async fn own_comment(&self, row: &BuildRow) -> Result<Option<u64>, CallError> {
        if let Some(id) = self.state.pr_comment(&row.repo, row.pr)? {
            return Ok(Some(id));
        }
        let comments = self.gitea.pr_comments(&row.repo, row.pr).await?;
        // Only the bot's own: while its login is unknown, nothing is taken
        // (the report waits; another user's comment may carry the marker).
        let bot = self.bot_login().await?;
        let mine = comments
            .iter()
            .find(|c| c.body.starts_with(MARKER) && c.user.login == bot);
        if let Some(c) = mine {
            self.state.set_pr_comment(&row.repo, row.pr, Some(c.id))?;
            return Ok(Some(c.id));
        }
        Ok(None)
    }

    async fn post_comment(
        &self,
        row: &BuildRow,
        findings: &Findings,
        mut ctx: CommentContext,
    ) -> Result<(), CallError> {
        let render = |ctx: &CommentContext| match findings {
            Findings::Results { results, .. } => comment::render(results, ctx),
            Findings::Nothing(why) => comment::render_without_results("error", why, ctx),
        };
        let mut id = self.own_comment(row).await?;
        if let Some(existing) = id {
            // Deleted by someone: a new one is made.
            match self.gitea.edit_comment(&row.repo, existing, &render(&ctx)).await {
                Ok(_) => {}
                Err(e) if e.not_found() => {
                    self.state.set_pr_comment(&row.repo, row.pr, None)?;
                    id = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let id = match id {
            Some(i) => i,
            None => {
                let c = self.gitea.create_comment(&row.repo, row.pr, &render(&ctx)).await?;
                self.state.set_pr_comment(&row.repo, row.pr, Some(c.id))?;
                tracing::info!("{}#{}: comment {} posted", row.repo, row.pr, c.id);
                c.id
            }
        };
        // The card and the screenshot that matters (full and thumbnail),
        // attached to the comment; earlier runs' go.
        let Findings::Results { results, dir } = findings else {
            return Ok(());
        };
        let files = self.pictures(row, results, dir).await;
        if files.is_empty() {
            return Ok(());
        }
        let before = self.gitea.attachments(&row.repo, id).await?;
        let mut kept = Vec::new();
        for (slot, name, bytes) in files {
            let att = match before.iter().find(|a| a.name == name) {
                Some(a) => a.clone(),
                None => self.gitea.attach(&row.repo, id, &name, bytes, "image/png").await?,
            };
            let url = Some(att.browser_download_url.clone());
            match slot {
                Picture::Card => ctx.card_url = url,
                Picture::Screenshot => ctx.screenshot_url = url,
                Picture::Thumbnail => ctx.thumbnail_url = url,
            }
            kept.push(att.id);
        }
        for old in before.iter().filter(|a| !kept.contains(&a.id)) {
            if let Err(e) = self.gitea.delete_attachment(&row.repo, id, old.id).await {
                tracing::warn!("comment {id}: cannot delete an earlier picture: {e}");
            }
        }
        self.gitea.edit_comment(&row.repo, id, &render(&ctx)).await?;
        tracing::info!(
            "{}#{}: comment {id} carries the card and the screenshot",
            row.repo,
            row.pr
        );
        Ok(())
    }

    /// The pictures of a run for its comment, each with its attachment
    /// name (the run id in it, so a re-run's are new files): the summary
    /// card (drawn here from results.json), the screenshot that matters
    /// and its thumbnail. What cannot be had is left out with a warning
    /// (no fonts, no screenshot): the comment's text does not wait on it.
    async fn pictures(
        &self,
        row: &BuildRow,
        results: &RunResults,
        dir: &std::path::Path,
    ) -> Vec<(Picture, String, Vec<u8>)> {
        let mut out = Vec::new();
        let (r, d) = (results.clone(), dir.to_path_buf());
        match tokio::task::spawn_blocking(move || card::png(&r, &d)).await {
            Ok(Ok(png)) => out.push((Picture::Card, format!("card-{}.png", row.run_id), png)),
            Ok(Err(e)) => tracing::warn!("build {}: no card: {e}", row.id),
            Err(e) => tracing::warn!("build {}: no card: {e}", row.id),
        }
        let Some(shot) = card::key_screenshot(results) else {
            return out;
        };
        if !shot.path.split('/').all(|c| !c.is_empty() && c != "..") {
            tracing::warn!(
                "build {}: screenshot path {:?} leaves the results folder",
                row.id,
                shot.path
            );
            return out;
        }
        let Ok(bytes) = std::fs::read(dir.join(&shot.path)) else {
            tracing::warn!("build {}: screenshot {} is not on the master", row.id, shot.path);
            return out;
        };
        let full = bytes.clone();
        match tokio::task::spawn_blocking(move || card::thumbnail_png(&bytes)).await {
            Ok(Ok(png)) => out.push((Picture::Thumbnail, format!("thumbnail-{}.png", row.run_id), png)),
            Ok(Err(e)) => tracing::warn!("build {}: no thumbnail: {e}", row.id),
            Err(e) => tracing::warn!("build {}: no thumbnail: {e}", row.id),
        }
        out.push((Picture::Screenshot, format!("screenshot-{}.png", row.run_id), full));
        out
    }
}

/// Which picture of the comment an attachment is.
#[derive(Debug, Clone, Copy)]
enum Picture {
    Card,
    Screenshot,
    Thumbnail,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RepoName;
    use crate::state::Phase;

    fn row(run_id: &str, sha: &str) -> BuildRow {
        BuildRow {
            id: 1,
            repo: RepoName::parse("recipes/static-site").unwrap(),
            pr: 1,
            head_sha: sha.into(),
            base_branch: "main".into(),
            clone_url: String::new(),
            fetch_ref: String::new(),
            comment_id: None,
            requested_by: None,
            quick: false,
            trigger: Trigger::TestMe,
            run_id: run_id.into(),
            phase: Phase::Reporting,
            force_sent: true,
            attempts: 0,
            next_attempt_at: 0.0,
            bsid: None,
            brid: None,
            buildid: None,
            builderid: None,
            number: None,
            superseded_by: None,
            cancel_pending: false,
            last_error: None,
            created_at: 0.0,
            forced_at: None,
            started_at: None,
            reported_at: None,
        }
    }

    fn results(run_id: &str, recipe: &str, sha: &str) -> RunResults {
        let mut r: RunResults = serde_json::from_value(serde_json::json!({
            "schema": cc_ci_results::SCHEMA, "recipe": recipe, "tested_ref": sha, "tested_version": null,
            "base_version": null, "started_at": "", "finished_at": "", "rungs": [], "level": 0,
            "level_name": "", "phases": [], "settings": {}, "deploys": 0,
        }))
        .unwrap();
        r.app = Some(cc_ci_results::AppIdentity {
            run_id: run_id.into(),
            domain: String::new(),
            stack: String::new(),
        });
        r
    }

    #[test]
    fn results_of_another_run_recipe_or_commit_are_not_the_builds_own() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let own = row("3fa9c2", &a);
        assert_eq!(
            mismatch(&own, "static-site/3fa9c2", &results("3fa9c2", "static-site", &a)),
            None
        );
        let why = mismatch(&own, "static-site/3fa9c2", &results("77aa00", "static-site", &a)).unwrap();
        assert!(why.contains("run id 77aa00") && why.contains("3fa9c2"), "{why}");
        let why = mismatch(&own, "static-site/3fa9c2", &results("3fa9c2", "other", &a)).unwrap();
        assert!(why.contains("recipe \"other\""), "{why}");
        let why = mismatch(&own, "static-site/3fa9c2", &results("3fa9c2", "static-site", &b)).unwrap();
        assert!(why.contains("bbbbbbbbbbbb") && why.contains("aaaaaaaaaaaa"), "{why}");
    }

    #[test]
    fn results_rel_is_a_recipe_and_a_run_id() {
        use super::plausible_rel;
        assert!(plausible_rel("static-site/a1b2c3"));
        for bad in [
            "static-site",
            "../etc/a1b2c3",
            ".hidden/a1b2c3",
            "x/a1b2c3/..",
            "x/ABCDEF",
            "/a1b2c3",
            "a/b/a1b2c3",
        ] {
            assert!(!plausible_rel(bad), "{bad}");
        }
    }
}
