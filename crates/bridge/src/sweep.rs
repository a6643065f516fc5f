//! The weekly sweep: every `sweep_interval` (a week by default) each
//! enrolled recipe's newest release tag is tested, with no PR and no
//! comment; its results stay in the master's results directory (and feed
//! the dashboard and rung 8). The last sweep of each repository is in the
//! state, so a restart neither skips nor repeats one; the first comes one
//! interval after the bridge's first start.

use crate::bridge::Bridge;
use crate::gitea::Tag;
use crate::state::{NewBuild, Trigger};

/// The newest release among `tags` by recipe version (`<semver>+<upstream>`,
/// an optional leading `v`); tags that are not versions, and pre-releases,
/// are ignored.
pub fn newest_release(tags: &[Tag]) -> Option<&Tag> {
    tags.iter()
        .filter_map(|t| {
            semver::Version::parse(t.name.trim_start_matches('v'))
                .ok()
                .map(|v| (v, t))
        })
        .filter(|(v, _)| v.pre.is_empty())
        .max_by(|a, b| a.0.cmp_precedence(&b.0).then_with(|| a.0.cmp(&b.0)))
        .map(|(_, t)| t)
}

impl Bridge {
    /// Starts the sweep builds that are due.
    pub async fn sweep_once(&self) {
        let Some(interval) = self.config.sweep_interval else {
            return;
        };
        for repo in self.config.repos.clone() {
            let last = match self.state.last_sweep(&repo) {
                Ok(l) => l.unwrap_or(self.first_start),
                Err(e) => {
                    tracing::error!("{e}");
                    continue;
                }
            };
            let now = crate::state::now();
            if now - last < interval.as_secs_f64() {
                continue;
            }
            // The last sweep's build still runs: this interval is skipped.
            match self.state.in_flight_for(&repo, 0) {
                Ok(f) if !f.is_empty() => {
                    let _ = self.state.swept(&repo, now);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("{e}");
                    continue;
                }
            }
            let tags = match self.gitea.tags(&repo).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("sweep of {repo}: {e}; retried");
                    continue;
                }
            };
            let Some(tag) = newest_release(&tags) else {
                tracing::info!("sweep of {repo}: no release tag, nothing to test");
                let _ = self.state.swept(&repo, now);
                continue;
            };
            let clone_url = match self.gitea.clone_url(&repo).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!("sweep of {repo}: {e}; retried");
                    continue;
                }
            };
            let run_id = match self.new_run_id() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("{e}");
                    continue;
                }
            };
            let new = NewBuild {
                repo: repo.clone(),
                pr: 0,
                head_sha: tag.commit.sha.clone(),
                base_branch: String::new(),
                clone_url,
                fetch_ref: String::new(),
                comment_id: None,
                requested_by: None,
                quick: false,
                trigger: Trigger::Sweep,
                run_id,
            };
            match self.state.insert_build(&new) {
                Ok(id) => {
                    tracing::info!(
                        "sweep of {repo}: build {id} tests release {} ({})",
                        tag.name,
                        tag.commit.sha
                    );
                    let _ = self.state.swept(&repo, now);
                    self.wake.notify_one();
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitea::TagCommit;

    fn tag(name: &str) -> Tag {
        Tag {
            name: name.into(),
            commit: TagCommit {
                sha: format!("{name}-sha"),
            },
        }
    }

    #[test]
    fn the_newest_release_is_by_version_not_by_order() {
        let tags = vec![
            tag("1.1.0+1.22.1"),
            tag("not-a-version"),
            tag("1.10.0+1.25"),
            tag("1.9.3+1.24"),
            tag("2.0.0-rc1+2"),
        ];
        assert_eq!(
            newest_release(&tags).unwrap().name,
            "1.10.0+1.25",
            "not the pre-release"
        );
        let tags = vec![tag("1.1.0+1.22.1"), tag("v1.10.0+1.25"), tag("1.9.3+1.24")];
        assert_eq!(newest_release(&tags).unwrap().name, "v1.10.0+1.25");
        assert!(newest_release(&[tag("latest")]).is_none());
    }
}
