//! Rung 2, **serve**: the HTTP checks through Traefik and a screenshot of
//! the front page; the checks and the screenshot the later rungs repeat.

use std::time::Instant;

use crate::probe::serve;
use crate::results::level::{Rung, Status};
use crate::run::screenshot;

use super::{Decision, Run};

impl Run<'_> {
    /// The HTTP checks of `rung`: the serve checks, then the rung's own.
    /// On a warm app (`--quick`) the serve rung's own checks (`checks.serve`)
    /// are left out and said so: they describe a fresh install, and a warm
    /// app has been upgraded by the run that kept it.
    pub(super) async fn http_checks(&mut self, rung: Rung) -> Decision {
        let mut checks = self.settings.serve_checks.clone();
        let own = self.settings.checks.get(&rung).cloned().unwrap_or_default();
        let mut left_out = None;
        if rung == Rung::Serve && self.warm.is_some() && !own.is_empty() {
            let why = format!(
                "--quick: {} checks.serve check(s) left out: they describe a fresh install, and the warm app was upgraded by the run that kept it",
                own.len()
            );
            self.progress.note(&why);
            left_out = Some(why);
        } else {
            checks.extend(own);
        }
        for c in checks {
            let mut spec = c.spec(&self.plan.domain, &self.infra.ca_cert, self.settings.timeouts.http);
            spec.traefik = self.infra.traefik;
            spec.routers = Some(crate::probe::routers::RouterProbe {
                docker: self.infra.docker.clone(),
                stack: self.plan.stack.clone(),
                web_port: self.infra.traefik.port(),
            });
            let report = self.wait(serve::check(&spec)).await;
            let what = format!("GET https://{}{}", self.plan.domain, c.path);
            match report.verdict {
                serve::Verdict::Pass(_) => self.progress.note(&format!("{what}: {report}")),
                serve::Verdict::Fail(f) => return (Status::Fail, Some(format!("{what}: {f}"))),
                serve::Verdict::Error(e) => return (Status::Error, Some(format!("{what}: {e}"))),
            }
        }
        (Status::Pass, left_out)
    }

    /// A screenshot of the front page into `<results>/<file>` (never gates a
    /// rung: a failure is noted and the artifact is missing).
    pub(super) async fn screenshot(&mut self, name: &str, file: &str) {
        if !self.infra.screenshots {
            self.progress.note("screenshot: skipped (no Chromium configured)");
            return;
        }
        let spec = self.shot_spec(file);
        // One retry: on a loaded 2-core host Chromium now and then fails to
        // start or render in time; a second, fresh Chromium usually works.
        // The first try uses the Chromium started ahead, if one was.
        let mut first = None;
        for attempt in 1..=2 {
            let ahead = self.shot_ahead.take();
            match self.wait(screenshot::take_with(&spec, ahead)).await {
                Ok(shot) => {
                    let again = first
                        .map(|e| format!(", after a failed first try: {e}"))
                        .unwrap_or_default();
                    self.progress.note(&format!("screenshot: {file} ({shot}){again}"));
                    self.artifact(name, file);
                    if name == "screenshot-serve" {
                        self.results.screenshot = Some(file.to_string());
                    }
                    return;
                }
                Err(e) if attempt == 1 => {
                    self.progress
                        .note(&format!("screenshot {file}: first try failed ({e}); trying once more"));
                    first = Some(e.to_string());
                }
                Err(e) => {
                    self.progress.note(&format!("screenshot {file} not taken: {e}"));
                    let reason = match &first {
                        Some(f) if *f != e.to_string() => format!("{e} (first try: {f})"),
                        _ => e.to_string(),
                    };
                    self.results.missing_artifacts.insert(name.into(), reason);
                }
            }
        }
    }

    /// What a screenshot of the app's front page into `<results>/<file>` is.
    fn shot_spec(&self, file: &str) -> screenshot::ShotSpec {
        screenshot::ShotSpec::new(
            self.env.app_url(),
            self.infra.traefik,
            screenshot::Trust::CaFile(self.infra.ca_cert.clone()),
            self.plan.results_dir.join(file),
        )
    }

    /// Starts Chromium in the background for the next screenshot
    /// ([`screenshot::prelaunch`]), so that its start overlaps the deploy
    /// the rung waits on; the next [`Run::screenshot`] uses it. A no-op
    /// without screenshots.
    pub(super) fn start_browser_ahead(&mut self) {
        if self.infra.screenshots {
            self.shot_ahead = Some(screenshot::prelaunch(&self.shot_spec("screenshot.png")));
        }
    }

    pub(super) async fn serve(&mut self) {
        self.progress.phase("serve");
        let t = Instant::now();
        let w0 = self.waiting;
        let d = if let Some(why) = self.settings.declared_na(Rung::Serve) {
            (Status::NotApplicable, Some(why))
        } else if let Some(h) = self.hook(Rung::Serve).await {
            h
        } else {
            let d = self.http_checks(Rung::Serve).await;
            if d.0 == Status::Pass {
                self.screenshot("screenshot-serve", "screenshot.png").await;
            }
            d
        };
        self.decide(Rung::Serve, d, t);
        self.phase_done("serve", t, w0);
    }
}
