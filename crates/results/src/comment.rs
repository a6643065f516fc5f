//! The PR comment: one run's results as Gitea-flavoured Markdown, rendered
//! from results.json alone (never from live state), for the bridge to post
//! and edit in place on re-runs.
//!
//! The comment carries [`MARKER`], so that the bridge finds its own comment
//! again after a restart instead of posting a second one.
//!
//! Image-forward: the heading says for which commit and when it was last
//! updated; then the level badge and the summary card (when the bridge
//! attached it and a dashboard serves the badge), the rung table, why it is
//! not green, the failing service's last log lines, the screenshot that
//! matters (a thumbnail cropped to its content, captioned with version and
//! stage, linking to the full picture), lint findings, the files on the
//! dashboard, how to reproduce, and earlier runs on the pull request.

use super::card::key_screenshot;
use super::level::{Rung, Status};
use super::verdict::State;
use super::RunResults;

/// An HTML comment that marks cc-ci's `!testme` comment on a PR (invisible
/// when rendered).
pub const MARKER: &str = "<!-- cc-ci:testme -->";

/// What the comment needs beyond results.json: where the run came from and
/// where to look.
#[derive(Debug, Clone, Default)]
pub struct CommentContext {
    /// The recipe repository's clone URL (for the command that reproduces the run).
    pub clone_url: String,
    /// The ref that carries the tested commit when a plain clone does not
    /// (`refs/pull/<n>/head`: a pull request's head, from a fork or not,
    /// lives there in the base repository), or empty.
    pub fetch_ref: String,
    /// The Buildbot build's page (live log), if known.
    pub build_url: Option<String>,
    /// Where the screenshot that matters ([`key_screenshot`]) was
    /// uploaded, full size (a comment attachment), if it was.
    pub screenshot_url: Option<String>,
    /// Where its thumbnail (cropped to the page's content) was uploaded.
    pub thumbnail_url: Option<String>,
    /// Where the summary card PNG was uploaded.
    pub card_url: Option<String>,
    /// The dashboard's base URL (no trailing `/`), when one serves the
    /// results: the badge, the run page and its files are linked there.
    pub dashboard_url: Option<String>,
    /// When the comment is written, as people read it (`2026-12-07 15:40 UTC`).
    pub updated_at: Option<String>,
    /// Earlier runs on the same pull request, newest first.
    pub history: Vec<EarlierRun>,
    /// Who asked (`!testme` author), if anyone.
    pub requested_by: Option<String>,
    /// Flags the run was asked for (`--quick`).
    pub flags: Vec<String>,
}

/// An earlier run on the same pull request, for the comment's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierRun {
    /// The commit it tested (40 hex).
    pub commit: String,
    /// Its level, when it wrote results.
    pub level: Option<u8>,
    /// Its verdict (`success`, `failure`, `error`) or what happened instead
    /// (`superseded`, `no results`).
    pub outcome: String,
    /// When it was asked for (`2026-12-07 15:40 UTC`).
    pub when: String,
    /// Its run page or build page, if known.
    pub url: Option<String>,
}

/// The shell lines that get the tested commit into `./<name>`: clone,
/// fetch `fetch_ref` when there is one (a pull request's head is not on
/// any branch of the base repository, and a fork's commit is nowhere else
/// the reader can reach), check out the commit. One command per line, each
/// ending in a newline.
pub fn checkout_commands(clone_url: &str, fetch_ref: &str, name: &str, commit: &str) -> String {
    let mut s = format!("git clone {clone_url} {name}\n");
    if !fetch_ref.is_empty() {
        s.push_str(&format!("git -C {name} fetch origin {fetch_ref}\n"));
    }
    s.push_str(&format!("git -C {name} checkout {commit}\n"));
    s
}

fn status_cell(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅ pass",
        Status::Fail => "❌ fail",
        Status::Error => "⚠️ error",
        Status::Unverified => "❔ unverified",
        Status::Skipped => "⏭️ skipped",
        Status::NotApplicable => "➖ n/a",
    }
}

/// Text safe inside a Markdown table cell: one line, no pipes, no HTML.
pub fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one_line.chars().take(400).collect();
    let cut = if one_line.chars().count() > 400 {
        format!("{cut}…")
    } else {
        cut
    };
    cut.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

/// Text safe inside a fenced code block (no closing fence inside it).
fn fenced(text: &str) -> String {
    text.replace("```", "ˋˋˋ")
}

fn rung_label(r: Rung) -> String {
    format!("{} {}", r.level(), r.word())
}

/// The headline: the verdict's description and what it means for the
/// commit (the same verdict as the commit status and the exit status).
pub fn headline(r: &RunResults) -> String {
    let v = r.verdict();
    let meaning = match v.state {
        State::Success => "",
        State::Failure => " · not green",
        State::Error => " · the CI host failed (an error, not the recipe's fault)",
    };
    format!("{}{meaning}", v.description)
}

/// The run's page on the dashboard, if one is configured.
fn run_page(r: &RunResults, ctx: &CommentContext) -> Option<String> {
    let base = ctx.dashboard_url.as_deref()?;
    let id = r.app.as_ref()?.run_id.as_str();
    Some(format!("{base}/run/{}/{id}/", r.recipe))
}

/// The whole comment for a finished run.
pub fn render(r: &RunResults, ctx: &CommentContext) -> String {
    let sha = &r.tested_ref[..r.tested_ref.len().min(12)];
    let page = run_page(r, ctx);
    let mut s = format!("{MARKER}\n### cc-ci: {}\n\n", headline(r));
    s.push_str(&format!("For commit `{sha}`"));
    if let Some(at) = &ctx.updated_at {
        s.push_str(&format!(" · updated {at}"));
    }
    s.push_str("\n\n");
    let v = r.verdict();
    let alt = format!(
        "cc-ci: {} {} level {} ({}), {}",
        cell(&r.recipe),
        cell(r.tested_version.as_deref().unwrap_or("")),
        r.level,
        r.level_name,
        v.state.as_str()
    );
    if let Some(p) = &page {
        s.push_str(&format!("[![cc-ci level {}]({p}badge.svg)]({p})\n\n", r.level));
    }
    if let Some(card) = &ctx.card_url {
        let target = page.as_deref().unwrap_or(card);
        s.push_str(&format!("[![{alt}]({card})]({target})\n\n"));
    }
    s.push_str(&format!(
        "`{}` {} at `{sha}`, upgraded from {}",
        r.recipe,
        r.tested_version.as_deref().unwrap_or("(no version)"),
        r.base_version
            .as_deref()
            .map(|b| format!("`{b}`"))
            .unwrap_or_else(|| "nothing (no upgrade base)".into()),
    ));
    if let Some(who) = &ctx.requested_by {
        s.push_str(&format!(", asked by @{who}"));
    }
    if !ctx.flags.is_empty() {
        s.push_str(&format!(" ({})", ctx.flags.join(" ")));
    }
    s.push_str(".\n\n| rung | status | time | reason |\n|---|---|---:|---|\n");
    for x in &r.rungs {
        s.push_str(&format!(
            "| {} | {} | {:.1} s | {} |\n",
            rung_label(x.rung),
            status_cell(x.status),
            x.duration_s,
            x.reason.as_deref().map(cell).unwrap_or_default()
        ));
    }
    if !v.why.is_empty() {
        s.push_str(&format!("\n**Not green** (held to {}):\n", cell(&v.bar.describe())));
        for w in &v.why {
            s.push_str(&format!("- {}\n", cell(w)));
        }
    }
    if let Some(red) = r.first_red() {
        if matches!(red.status, Status::Fail | Status::Error) && !r.service_logs.is_empty() {
            let reason = red.reason.as_deref().unwrap_or("");
            // The services the reason names, else all of them; then
            // Traefik's lines about the app's routers.
            let app: Vec<_> = r.service_logs.iter().filter(|l| !l.proxy).collect();
            let named: Vec<_> = app.iter().copied().filter(|l| reason.contains(&l.service)).collect();
            let mut shown = if named.is_empty() { app } else { named };
            shown.extend(r.service_logs.iter().filter(|l| l.proxy));
            s.push_str(&format!(
                "\n**{} did not pass.** The last log lines, oldest first, each with its task (after an upgrade, the old one's and the new one's):\n",
                rung_label(red.rung)
            ));
            for l in shown {
                let tail: Vec<&String> = l
                    .lines
                    .iter()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                s.push_str(&format!("\n`{}`:\n```text\n", l.service));
                if tail.is_empty() {
                    s.push_str("(no output)\n");
                }
                for line in tail {
                    s.push_str(&fenced(line));
                    s.push('\n');
                }
                s.push_str("```\n");
            }
        }
    }
    if let (Some(url), Some(shot)) = (&ctx.screenshot_url, key_screenshot(r)) {
        let domain = r.app.as_ref().map(|a| a.domain.as_str()).unwrap_or("the app");
        let thumb = ctx.thumbnail_url.as_deref().unwrap_or(url);
        s.push_str(&format!(
            "\n[![screenshot of https://{domain}/: {}]({thumb})]({url})\n*{}* (select it for the full picture)\n",
            cell(&shot.caption),
            cell(&shot.caption)
        ));
    }
    if let Some(l) = &r.lint {
        if !l.errors.is_empty() || !l.warnings.is_empty() {
            s.push_str("\n**Lint** (abra's rules):\n");
            for e in &l.errors {
                s.push_str(&format!("- error: {}\n", cell(e)));
            }
            for w in &l.warnings {
                s.push_str(&format!("- warning: {}\n", cell(w)));
            }
        }
    }
    for a in &r.adaptations {
        s.push_str(&format!("\n> adapted: {} ({})\n", cell(&a.what), cell(&a.why)));
    }
    if let Some(w) = &r.warm {
        s.push_str(&format!(
            "\n> warm app: this `--quick` run reused the app run {} kept warm (installed by run {}); install was not redeployed\n",
            cell(&w.kept_by_run),
            cell(&w.app_run_id)
        ));
    }
    if let Some(p) = &page {
        let mut files: Vec<String> = r
            .artifacts
            .iter()
            .filter(|(name, _)| !name.starts_with("screenshot"))
            .map(|(name, path)| format!("[{}]({p}files/{path})", cell(name)))
            .collect();
        files.extend(
            r.rungs
                .iter()
                .filter_map(|x| x.log.as_ref().map(|l| format!("[{} log]({p}files/{l})", x.rung.word()))),
        );
        files.push(format!("[results.json]({p}results.json)"));
        s.push_str(&format!("\nFiles: {}\n", files.join(" · ")));
    }
    s.push_str(&format!(
        "\n<details><summary>Reproduce on your machine</summary>\n\n```sh\n{}ccci test ./{}\n```\n\n(a Docker swarm behind the Traefik recipe in wildcard mode: see cc-ci's README)\n</details>\n",
        checkout_commands(&ctx.clone_url, &ctx.fetch_ref, &r.recipe, &r.tested_ref),
        r.recipe,
    ));
    if !ctx.history.is_empty() {
        s.push_str(&format!(
            "\n<details><summary>Earlier runs on this pull request ({})</summary>\n\n| commit | level | outcome | asked |\n|---|---:|---|---|\n",
            ctx.history.len()
        ));
        for h in &ctx.history {
            let commit = format!("`{}`", &h.commit[..h.commit.len().min(12)]);
            let outcome = match &h.url {
                Some(u) => format!("[{}]({u})", cell(&h.outcome)),
                None => cell(&h.outcome),
            };
            s.push_str(&format!(
                "| {commit} | {} | {outcome} | {} |\n",
                h.level.map(|l| l.to_string()).unwrap_or_else(|| "–".into()),
                cell(&h.when)
            ));
        }
        s.push_str("\n</details>\n");
    }
    let mut foot = Vec::new();
    if let Some(b) = &ctx.build_url {
        foot.push(format!("[live log]({b})"));
    }
    if let Some(p) = &page {
        foot.push(format!("[run page]({p})"));
    }
    if let Some(a) = &r.app {
        foot.push(format!("run `{}`", a.run_id));
    }
    foot.push(format!("{} deploy(s)", r.deploys));
    if let Some(t) = &r.time_split {
        foot.push(format!("{:.0} s", t.wall_s));
    }
    s.push_str(&format!("\n{}\n", foot.join(" · ")));
    s
}

/// The comment when there are no results to show (the build failed before
/// `ccci test` wrote any, was cancelled, or the CI engine could not be
/// reached): the headline and why.
pub fn render_without_results(headline: &str, why: &str, ctx: &CommentContext) -> String {
    let mut s = format!("{MARKER}\n### cc-ci: {}\n\n{}\n", cell(headline), cell(why));
    if let Some(b) = &ctx.build_url {
        s.push_str(&format!("\n[live log]({b})\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LintSummary, RungResult, ServiceLog};

    fn results() -> RunResults {
        let mut r = RunResults {
            recipe: "static-site".into(),
            tested_ref: "710e8125d41ba311f6e379209c4e6a20563a5e99".into(),
            tested_version: Some("1.1.0+1.22.1".into()),
            base_version: Some("1.0.0+1.22.1".into()),
            rungs: vec![
                RungResult {
                    rung: Rung::Install,
                    status: Status::Pass,
                    reason: None,
                    duration_s: 17.8,
                    log: Some("logs/install.log".into()),
                    attempts: 1,
                },
                RungResult {
                    rung: Rung::Serve,
                    status: Status::Pass,
                    reason: None,
                    duration_s: 1.2,
                    log: None,
                    attempts: 1,
                },
                RungResult {
                    rung: Rung::Upgrade,
                    status: Status::Fail,
                    reason: Some(
                        "service static-site-1a2b3c_ci_test_app: task exited 1 | <b>bold</b>\nsecond line".into(),
                    ),
                    duration_s: 22.1,
                    log: None,
                    attempts: 1,
                },
            ],
            service_logs: vec![
                ServiceLog {
                    service: "static-site-1a2b3c_ci_test_app".into(),
                    lines: vec!["nginx: [emerg] unknown directive ```".into()],
                    proxy: false,
                },
                ServiceLog {
                    service: "static-site-1a2b3c_ci_test_db".into(),
                    lines: vec!["db ok".into()],
                    proxy: false,
                },
                ServiceLog {
                    service: "traefik_ci_test_app (Traefik, lines naming static-site-1a2b3c_ci_test)".into(),
                    lines: vec![
                        "router static-site-1a2b3c_ci_test@swarm: middleware \"x@docker\" does not exist".into(),
                    ],
                    proxy: true,
                },
            ],
            lint: Some(LintSummary {
                errors: vec![],
                warnings: vec!["R007 README.md metadata".into()],
                skipped: vec![],
            }),
            deploys: 2,
            app: Some(crate::AppIdentity {
                run_id: "1a2b3c".into(),
                domain: "static-site-1a2b3c.ci.test".into(),
                stack: "static-site-1a2b3c_ci_test".into(),
            }),
            ..RunResults::empty()
        };
        for (name, path) in [
            ("screenshot-serve", "screenshot.png"),
            ("screenshot-upgrade", "screenshot-upgrade.png"),
            ("deploy-log", "deploy.log"),
        ] {
            r.artifacts.insert(name.into(), path.into());
        }
        r.finish();
        r
    }

    /// A pull request from a fork: its head commit is only in the base
    /// repository's `refs/pull/<n>/head` (as Gitea keeps it), on no
    /// branch. The rendered commands, run for real with git, get it.
    #[test]
    fn the_reproduce_commands_get_a_forks_pull_request_head() {
        let d = tempfile::tempdir().unwrap();
        let git = |dir: &std::path::Path, args: &[&str]| {
            let o = std::process::Command::new("git")
                .current_dir(dir)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        let base = d.path().join("base.git");
        std::fs::create_dir(&base).unwrap();
        git(&base, &["init", "-q", "--bare"]);
        let fork = d.path().join("fork");
        std::fs::create_dir(&fork).unwrap();
        git(&fork, &["init", "-q"]);
        git(&fork, &["commit", "-q", "--allow-empty", "-m", "base"]);
        git(&fork, &["push", "-q", base.to_str().unwrap(), "main"]);
        git(&fork, &["commit", "-q", "--allow-empty", "-m", "the change"]);
        let head = git(&fork, &["rev-parse", "HEAD"]);
        git(&fork, &["push", "-q", base.to_str().unwrap(), "HEAD:refs/pull/7/head"]);
        let url = format!("file://{}", base.display());
        for (fetch_ref, works) in [("", false), ("refs/pull/7/head", true)] {
            let work = d.path().join(format!("w{}", fetch_ref.len()));
            std::fs::create_dir(&work).unwrap();
            let script = checkout_commands(&url, fetch_ref, "static-site", &head);
            let o = std::process::Command::new("sh")
                .current_dir(&work)
                .args(["-ec", &script])
                .output()
                .unwrap();
            assert_eq!(
                o.status.success(),
                works,
                "{script}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let ctx = CommentContext {
            clone_url: url.clone(),
            fetch_ref: "refs/pull/7/head".into(),
            ..CommentContext::default()
        };
        assert!(render(&results(), &ctx).contains("git -C static-site fetch origin refs/pull/7/head\n"));
    }

    #[test]
    fn the_comment_carries_level_rungs_logs_of_the_failing_service_lint_and_the_reproduction() {
        let ctx = CommentContext {
            clone_url: "https://git.example.org/recipes/static-site.git".into(),
            fetch_ref: String::new(),
            build_url: Some("https://ci.example.org/#/builders/1/builds/7".into()),
            screenshot_url: Some("https://git.example.org/attachments/abc".into()),
            requested_by: Some("maintainer".into()),
            ..CommentContext::default()
        };
        let c = render(&results(), &ctx);
        assert!(c.starts_with(MARKER), "{c}");
        assert!(
            c.contains("### cc-ci: level 2 (serves), upgrade failed · not green"),
            "{c}"
        );
        assert!(
            c.contains("**Not green** (held to level 2 (the default bar)):\n- upgrade failed: service"),
            "{c}"
        );
        assert!(c.contains("| 3 upgrade | ❌ fail | 22.1 s | service static-site-1a2b3c_ci_test_app: task exited 1 \\| &lt;b&gt;bold&lt;/b&gt; second line |"), "{c}");
        // Only the service the reason names, and no fence broken by its output.
        assert!(
            c.contains("`static-site-1a2b3c_ci_test_app`:\n```text\nnginx: [emerg] unknown directive ˋˋˋ\n```"),
            "{c}"
        );
        assert!(!c.contains("db ok"), "{c}");
        assert!(
            c.contains("`traefik_ci_test_app (Traefik, lines naming static-site-1a2b3c_ci_test)`:\n```text\nrouter static-site-1a2b3c_ci_test@swarm: middleware"),
            "Traefik's lines beside the app's: {c}"
        );
        assert!(c.contains("- warning: R007 README.md metadata"), "{c}");
        assert!(
            c.contains("git -C static-site checkout 710e8125d41ba311f6e379209c4e6a20563a5e99\nccci test ./static-site"),
            "{c}"
        );
        // Red at upgrade: the screenshot after the upgrade, captioned, the
        // full picture as its own thumbnail when there is no other.
        assert!(
            c.contains("[![screenshot of https://static-site-1a2b3c.ci.test/: version 1.1.0+1.22.1 after upgrade](https://git.example.org/attachments/abc)](https://git.example.org/attachments/abc)\n*version 1.1.0+1.22.1 after upgrade*"),
            "{c}"
        );
        // Without a dashboard or a card: no badge, no card, no files line.
        assert!(!c.contains("badge.svg") && !c.contains("Files:"), "{c}");
        assert!(
            c.contains("[live log](https://ci.example.org/#/builders/1/builds/7) · run `1a2b3c` · 2 deploy(s)"),
            "{c}"
        );
        assert!(c.contains("asked by @maintainer"), "{c}");
    }

    #[test]
    fn with_a_dashboard_and_attachments_the_comment_leads_with_badge_and_card_and_keeps_its_history() {
        let ctx = CommentContext {
            clone_url: "https://git.example.org/recipes/static-site.git".into(),
            screenshot_url: Some("https://git.example.org/attachments/full".into()),
            thumbnail_url: Some("https://git.example.org/attachments/thumb".into()),
            card_url: Some("https://git.example.org/attachments/card".into()),
            dashboard_url: Some("https://dash.example.org".into()),
            updated_at: Some("2026-12-07 15:40 UTC".into()),
            history: vec![EarlierRun {
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                level: Some(7),
                outcome: "success".into(),
                when: "2026-12-07 15:01 UTC".into(),
                url: Some("https://dash.example.org/run/static-site/a00001/".into()),
            }],
            ..CommentContext::default()
        };
        let c = render(&results(), &ctx);
        let page = "https://dash.example.org/run/static-site/1a2b3c/";
        let head = format!(
            "### cc-ci: level 2 (serves), upgrade failed · not green\n\nFor commit `710e8125d41b` · updated 2026-12-07 15:40 UTC\n\n\
             [![cc-ci level 2]({page}badge.svg)]({page})\n\n\
             [![cc-ci: static-site 1.1.0+1.22.1 level 2 (serves), failure](https://git.example.org/attachments/card)]({page})\n\n"
        );
        assert!(c.contains(&head), "{c}");
        assert!(c.find("badge.svg") < c.find("| rung |"), "images on top: {c}");
        assert!(
            c.contains("[![screenshot of https://static-site-1a2b3c.ci.test/: version 1.1.0+1.22.1 after upgrade](https://git.example.org/attachments/thumb)](https://git.example.org/attachments/full)"),
            "{c}"
        );
        assert!(c.contains(&format!("Files: [deploy-log]({page}files/deploy.log) · [install log]({page}files/logs/install.log) · [results.json]({page}results.json)")), "{c}");
        assert!(
            c.contains("<details><summary>Earlier runs on this pull request (1)</summary>\n\n| commit | level | outcome | asked |\n|---|---:|---|---|\n| `0123456789ab` | 7 | [success](https://dash.example.org/run/static-site/a00001/) | 2026-12-07 15:01 UTC |"),
            "{c}"
        );
        assert!(
            c.contains(&format!("\n[run page]({page}) · run `1a2b3c` · 2 deploy(s)")),
            "{c}"
        );
    }

    #[test]
    fn the_headline_follows_the_verdict_and_unverified_below_the_bar_is_not_green() {
        let mut r = results();
        assert_eq!(r.verdict().state, State::Failure);
        r.rungs[1].status = Status::Error;
        r.finish();
        assert_eq!(r.verdict().state, State::Error, "an error wins over a fail");
        assert!(headline(&r).ends_with("the CI host failed (an error, not the recipe's fault)"));
        r.rungs[1].status = Status::Pass;
        r.rungs[2].status = Status::Unverified;
        r.finish();
        // Level 2 meets the default bar: green, and the headline says the level.
        assert_eq!(r.verdict().state, State::Success);
        assert_eq!(headline(&r), "level 2 (serves)");
        // The same run held to its newest release's level 7 is not green.
        let bar = crate::verdict::Bar {
            level: 7,
            source: crate::verdict::BarSource::Release {
                tag: "1.1.0+1.22.1".into(),
                run_id: "abcdef".into(),
            },
        };
        r.verdict = Some(crate::verdict::judge(&r, &bar));
        assert_eq!(
            headline(&r),
            "level 2 (serves), below level 7 of 1.1.0+1.22.1 · not green"
        );
        // A skipped required check is never green (the old rule called it so).
        r.verdict = None;
        r.rungs[2].status = Status::Skipped;
        r.finish();
        assert_eq!(r.verdict().state, State::Failure);
    }

    #[test]
    fn without_results_the_comment_says_why() {
        let c = render_without_results(
            "error",
            "Buildbot at http://x: connection refused",
            &CommentContext::default(),
        );
        assert!(c.starts_with(MARKER) && c.contains("connection refused"), "{c}");
    }
}
