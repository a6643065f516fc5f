//! The round trip ([`round_trip`](super::round_trip)) itself: a fresh
//! restic repository, each labelled service's hooks, witnesses and
//! snapshot, the witnesses destroyed, each service restored, and the byte
//! checks that prove the data came back; restic, `rm` and the archive
//! helper run in one-off containers of the restic image
//! ([`crate::run::oneoff`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::models::{Mount, MountType};
use bollard::Docker;
use zeroize::Zeroizing;

use crate::deploy::exec::{copy_file_into, exec, running_container, tail_lines, ExecError};
use crate::deploy::stack::{status_of, NAMESPACE_LABEL};
use crate::run::data::DataFault;
use crate::run::oneoff::{self, Digest, Output};
use crate::run::witness::{Witness, WitnessState};

use super::archive::{self, Entry, Want};
use super::{
    contract, plan, Fault, HookKind, RoundTrip, RoundTripOptions, RoundTripStatus, ServicePlan, StepTiming, Target,
    TargetCheck, TargetKind, BACKUP_ROOT, HELPER_LABEL, NOT_APPLICABLE,
};

/// Where restic containers mount the repository folder.
const REPOSITORY: &str = "/repository";
/// The password file restic containers read (copied in before start).
const PASSWORD_FILE: &str = "ccci-restic-password";

/// Why the round trip stopped early.
enum Stop {
    Fail(String),
    Error(String),
}

/// A witness, as written before the backup.
enum Proof {
    /// At a volume's root, through [`crate::run::witness`].
    Root(Witness),
    /// In a sub-directory: `<dir>/<file>` (restic paths) with these bytes.
    Sub {
        dir: String,
        file: String,
        content: Vec<u8>,
    },
    /// A file target: its bytes as the snapshot holds them.
    File(Digest),
}

pub(super) struct Runner<'a> {
    docker: &'a Docker,
    stack: &'a str,
    repo: PathBuf,
    opts: &'a RoundTripOptions,
    password: Zeroizing<String>,
    start: Instant,
    log: Vec<String>,
    steps: Vec<StepTiming>,
    checks: Vec<TargetCheck>,
    snapshots: BTreeMap<String, String>,
    /// A created, never started container of the restic image mounting every
    /// target volume read-write at `/backup/<volume>`, for archive reads and
    /// writes.
    helper: Option<String>,
}

fn data_stop(e: DataFault) -> Stop {
    match e {
        DataFault::Recipe(m) => Stop::Fail(m),
        DataFault::Infra(m) => Stop::Error(m),
    }
}

fn infra_exec(context: &str) -> impl FnOnce(ExecError) -> Stop + '_ {
    move |e| Stop::Error(format!("{context}: {e}"))
}

impl<'a> Runner<'a> {
    /// A round trip of `stack` with the repository in `repo_dir` (nothing
    /// happens yet).
    pub(super) fn new(docker: &'a Docker, stack: &'a str, repo_dir: &Path, opts: &'a RoundTripOptions) -> Runner<'a> {
        Runner {
            docker,
            stack,
            repo: repo_dir.to_path_buf(),
            opts,
            password: Zeroizing::new(String::new()),
            start: Instant::now(),
            log: Vec::new(),
            steps: Vec::new(),
            checks: Vec::new(),
            snapshots: BTreeMap::new(),
            helper: None,
        }
    }

    /// Runs the round trip (see the module doc of [`crate::run::backup`]);
    /// never panics or returns early: every outcome is in
    /// [`RoundTrip::status`].
    pub(super) async fn round_trip(mut self) -> RoundTrip {
        let status = match self.run().await {
            Ok(None) => RoundTripStatus::NotApplicable(NOT_APPLICABLE.into()),
            Ok(Some(())) => RoundTripStatus::Pass,
            Err(Stop::Fail(m)) => RoundTripStatus::Fail(m),
            Err(Stop::Error(m)) => RoundTripStatus::Error(m),
        };
        if let Some(h) = self.helper.take() {
            remove_container(self.docker, &h).await;
        }
        self.note(format!("result: {status:?}"));
        for c in &self.checks {
            self.log.push(format!("  {} {}: {}", c.service, c.target, c.describe()));
        }
        RoundTrip {
            status,
            checks: self.checks,
            snapshots: self.snapshots,
            steps: self.steps,
            seconds: self.start.elapsed().as_secs_f64(),
            log: self.log.join("\n") + "\n",
        }
    }
}

impl Runner<'_> {
    fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::debug!(stack = self.stack, "backup: {line}");
        self.log
            .push(format!("[{:7.2} s] {line}", self.start.elapsed().as_secs_f64()));
    }

    /// Tells the caller's progress (if any) and the log.
    fn say(&mut self, line: String) {
        if let Some(p) = &self.opts.progress {
            let _ = p.send(line.clone());
        }
        self.note(line);
    }

    fn step(&mut self, step: impl Into<String>, since: Instant) {
        self.steps.push(StepTiming {
            step: step.into(),
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    /// The whole round trip; Ok(None) = not applicable.
    async fn run(&mut self) -> Result<Option<()>, Stop> {
        let t = Instant::now();
        let plan = match plan(self.docker, self.stack).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.note(format!("plan: {NOT_APPLICABLE}"));
                return Ok(None);
            }
            Err(e) if e.is_recipe_failure() => return Err(Stop::Fail(e.to_string())),
            Err(e) => return Err(Stop::Error(e.to_string())),
        };
        self.step("plan", t);
        for s in &plan.services {
            let targets: Vec<String> = s.targets.iter().map(|t| t.to_string()).collect();
            let hooks: Vec<&str> = [
                HookKind::BackupPre,
                HookKind::BackupPost,
                HookKind::RestorePre,
                HookKind::RestorePost,
            ]
            .into_iter()
            .filter(|k| s.hooks.get(*k).is_some())
            .map(HookKind::label)
            .collect();
            self.note(format!(
                "plan: service {}: targets [{}]; hooks [{}]",
                s.service,
                targets.join("; "),
                hooks.join(", ")
            ));
        }
        for n in &plan.notes {
            self.note(format!("plan: {n}"));
        }
        if plan.services.iter().all(|s| s.targets.is_empty()) {
            return Err(Stop::Fail(format!(
                "services labelled {}=true ({}) mount no named volume that is backed up: there is nothing to back up or restore",
                contract::ENABLE,
                plan.services.iter().map(|s| s.service.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }

        self.prepare_repository().await?;
        let t = Instant::now();
        let helper = self.create_helper(&plan.volumes()).await?;
        self.helper = Some(helper);
        self.step("helper container", t);

        if let (Some(d), false) = (&self.opts.data, self.opts.data_written) {
            let t = Instant::now();
            d.write(self.docker, self.stack).await.map_err(data_stop)?;
            self.note(format!(
                "data witness written through service {} ([data] write)",
                d.service
            ));
            self.step("data witness: write", t);
        }

        // Backup, service by service.
        let mut proofs: Vec<(usize, Target, Proof)> = Vec::new();
        for (i, s) in plan.services.iter().enumerate() {
            if s.targets.is_empty() {
                self.note(format!("service {}: no targets, skipped", s.service));
                continue;
            }
            let t = Instant::now();
            self.say(format!("backing up service {}", s.service));
            self.hook(s, HookKind::BackupPre).await?;
            let res = self.backup_service(s, i, &mut proofs).await;
            // The post-hook runs whenever the pre-hook did (it may undo what
            // the pre-hook did, e.g. leave maintenance mode); a failure of
            // its own counts only if nothing failed before.
            let post = self.hook(s, HookKind::BackupPost).await;
            res?;
            post?;
            self.step(format!("backup {}", s.service), t);
        }

        // Destroy every witness, and make sure it is gone.
        let t = Instant::now();
        self.destroy(&proofs).await?;
        self.step("destroy witnesses", t);
        if let Some(d) = &self.opts.data {
            let t = Instant::now();
            d.destroy(self.docker, self.stack).await.map_err(data_stop)?;
            if d.holds(self.docker, self.stack).await.map_err(data_stop)?.is_ok() {
                return Err(Stop::Fail(format!(
                    "after [data] destroy, [data] read in service {} still prints the data witness: the restore could not be told from no restore; make destroy remove what write stored",
                    d.service
                )));
            }
            self.note(format!("data witness destroyed through service {} and gone", d.service));
            self.step("data witness: destroy", t);
        }

        if self.opts.fault == Some(Fault::CorruptRepositoryData) {
            self.corrupt_repository_data()?;
        }

        // Restore, service by service, checking before the post-hook.
        for (i, s) in plan.services.iter().enumerate() {
            let Some(snapshot) = self.snapshots.get(&s.service).cloned() else {
                continue;
            };
            let t = Instant::now();
            self.say(format!(
                "restoring service {} from snapshot {}",
                s.service,
                short_id(&snapshot)
            ));
            self.hook(s, HookKind::RestorePre).await?;
            self.restore_service(s, &snapshot).await?;
            if self.opts.fault == Some(Fault::TruncateAfterRestore) {
                self.truncate(&proofs, i).await?;
            }
            let ok = self.check(s, i, &proofs).await?;
            if !ok {
                self.note(format!(
                    "service {}: {} skipped: the restored data did not check out, and the hook would consume it",
                    s.service,
                    contract::RESTORE_POST_HOOK
                ));
                let bad: Vec<String> = self
                    .checks
                    .iter()
                    .filter(|c| c.service == s.service && c.state != Some(WitnessState::Intact))
                    .map(|c| format!("{}: {}", c.target.container_path(), c.describe()))
                    .collect();
                return Err(Stop::Fail(format!(
                    "restore of service {} did not bring the data back: {}",
                    s.service,
                    bad.join("; ")
                )));
            }
            self.hook(s, HookKind::RestorePost).await?;
            self.step(format!("restore {}", s.service), t);
        }
        if let Some(d) = &self.opts.data {
            let t = Instant::now();
            if let Err(out) = d.holds(self.docker, self.stack).await.map_err(data_stop)? {
                return Err(Stop::Fail(format!(
                    "the restore did not bring the app's data back: [data] read in service {} does not print the data witness written before the backup ({out})",
                    d.service
                )));
            }
            self.note(format!(
                "data witness back through service {} after the restore",
                d.service
            ));
            self.step("data witness: read", t);
        }
        Ok(Some(()))
    }

    /// Creates the repository folder (must be empty), checks the image, and
    /// runs `restic init` with a fresh password.
    async fn prepare_repository(&mut self) -> Result<(), Stop> {
        let t = Instant::now();
        std::fs::create_dir_all(&self.repo).map_err(|e| {
            Stop::Error(format!(
                "creating the restic repository folder {}: {e}; check the run directory is writable",
                self.repo.display()
            ))
        })?;
        self.repo = std::fs::canonicalize(&self.repo)
            .map_err(|e| Stop::Error(format!("resolving {}: {e}", self.repo.display())))?;
        let non_empty = std::fs::read_dir(&self.repo)
            .map_err(|e| Stop::Error(format!("reading {}: {e}", self.repo.display())))?
            .next()
            .is_some();
        if non_empty {
            return Err(Stop::Error(format!(
                "restic repository folder {} is not empty: a repository from an earlier attempt, whose password is gone; give each round trip a fresh folder",
                self.repo.display()
            )));
        }
        match self.docker.inspect_image(&self.opts.restic_image).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(Stop::Error(format!(
                    "restic image `{}` is not present on this host; build it with scripts/images (no registry is used)",
                    self.opts.restic_image
                )))
            }
            Err(e) => {
                return Err(Stop::Error(format!(
                    "Docker engine: inspecting image `{}`: {e}; is dockerd running? (scripts/dockerd starts it)",
                    self.opts.restic_image
                )))
            }
        }
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Stop::Error(format!("the OS random source failed: {e}")))?;
        self.password = Zeroizing::new(hex::encode(random));
        random.fill(0);
        let out = self.restic("restic init", args(&["init"]), &[], false, false).await?;
        self.note(format!(
            "restic init: exit {}: {}",
            out.exit_code,
            out.stdout.lines().next().unwrap_or("")
        ));
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "restic init of {} failed (exit {}): {}",
                self.repo.display(),
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        self.step("restic init", t);
        Ok(())
    }

    /// Runs one hook of `s` (if it has it) in its running container.
    async fn hook(&mut self, s: &ServicePlan, kind: HookKind) -> Result<(), Stop> {
        let Some(cmd) = s.hooks.get(kind) else {
            return Ok(());
        };
        let t = Instant::now();
        let label = kind.label();
        let classify = |e: ExecError| {
            let msg = format!("{label} of service {}: {e}", s.service);
            if e.is_recipe_failure() {
                Stop::Fail(msg)
            } else {
                Stop::Error(msg)
            }
        };
        let container = running_container(self.docker, self.stack, &s.service)
            .await
            .map_err(classify)?;
        let out = exec(
            self.docker,
            &container,
            &contract::hook_argv(cmd),
            self.opts.hook_timeout,
        )
        .await
        .map_err(classify)?;
        let short = &container[..container.len().min(12)];
        self.note(format!(
            "{label} of service {} (container {short}): sh -c {cmd:?} -> exit {} in {:.2} s",
            s.service,
            out.exit_code,
            t.elapsed().as_secs_f64()
        ));
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if !text.trim().is_empty() {
                self.log.push(format!("    {name}:"));
                self.log.extend(text.lines().map(|l| format!("      {l}")));
            }
        }
        self.step(format!("{} {}", label, s.service), t);
        if out.exit_code != 0 {
            let tail = out.stderr_tail(5);
            return Err(Stop::Fail(format!(
                "{label} of service {} exited {}{}",
                s.service,
                out.exit_code,
                if tail.is_empty() {
                    " (no stderr)".to_string()
                } else {
                    format!("; last stderr lines:\n{tail}")
                }
            )));
        }
        Ok(())
    }

    /// Witnesses and `restic backup` of one service (between its hooks).
    async fn backup_service(
        &mut self,
        s: &ServicePlan,
        idx: usize,
        proofs: &mut Vec<(usize, Target, Proof)>,
    ) -> Result<(), Stop> {
        let helper = self.helper_id()?;
        let t = Instant::now();
        let witness_name = format!("{}-{}", self.opts.witness_name, s.service);
        let mut files = Vec::new();
        for target in &s.targets {
            let kind = if target.rel.is_empty() {
                TargetKind::Directory
            } else {
                match self.entry(&helper, &target.restic_path(), Want::Kind).await? {
                    None => {
                        return Err(Stop::Fail(format!(
                            "backup target {} of service {} does not exist (after the pre-hook, if any): there is nothing to back up",
                            target.container_path(),
                            s.service
                        )))
                    }
                    Some(e) if e.kind == tar::EntryType::Directory => TargetKind::Directory,
                    Some(e) if e.kind.is_file() => TargetKind::File,
                    Some(e) => {
                        return Err(Stop::Fail(format!(
                            "backup target {} of service {} is a {:?}, neither a file nor a directory",
                            target.container_path(),
                            s.service,
                            e.kind
                        )))
                    }
                }
            };
            match kind {
                TargetKind::Directory if target.rel.is_empty() => {
                    let w = Witness::write_named(self.docker, &target.volume, &self.opts.restic_image, &witness_name)
                        .await
                        .map_err(|e| Stop::Error(format!("writing the witness into volume {}: {e}", target.volume)))?;
                    self.note(format!("witness {} written into {}", w.file, target.container_path()));
                    proofs.push((idx, target.clone(), Proof::Root(w)));
                }
                TargetKind::Directory => {
                    let mut random = [0u8; 64];
                    getrandom::getrandom(&mut random)
                        .map_err(|e| Stop::Error(format!("the OS random source failed: {e}")))?;
                    let content = format!("cc-ci witness {witness_name} {}\n", hex::encode(random)).into_bytes();
                    let file = format!(".ccci-witness-{witness_name}");
                    let dir = target.restic_path();
                    copy_file_into(self.docker, &helper, &dir, &file, &content, 0o644)
                        .await
                        .map_err(infra_exec(&format!(
                            "writing the witness into {}",
                            target.container_path()
                        )))?;
                    self.note(format!("witness {file} written into {}", target.container_path()));
                    proofs.push((idx, target.clone(), Proof::Sub { dir, file, content }));
                }
                TargetKind::File => files.push(target.clone()),
            }
        }
        self.step(format!("backup {}: witnesses", s.service), t);

        let t = Instant::now();
        let mut a = args(&["backup", "--host", "cc-ci", "--json"]);
        if self.opts.fault == Some(Fault::ExcludeWitnesses) {
            a.push("--exclude=.ccci-witness-*".into());
        }
        a.extend(s.targets.iter().map(Target::restic_path));
        let volumes = s.volumes();
        let what = format!("restic backup of service {}", s.service);
        let out = self.restic(&what, a, &volumes, true, false).await?;
        let summary = out
            .stdout
            .lines()
            .rfind(|l| l.contains("\"message_type\":\"summary\""))
            .map(str::to_string);
        self.note(format!(
            "{what}: exit {}; summary: {}",
            out.exit_code,
            summary.as_deref().unwrap_or("(none)")
        ));
        if !out.stderr.trim().is_empty() {
            self.log.extend(out.stderr.lines().map(|l| format!("    stderr: {l}")));
        }
        match out.exit_code {
            0 => {}
            // restic: "snapshot created, but some source files could not be read".
            3 => {
                return Err(Stop::Fail(format!(
                    "{what}: some files of the targets could not be read (restic exit 3): {}",
                    tail_lines(&out.stderr, 5)
                )))
            }
            c => {
                return Err(Stop::Error(format!(
                    "{what} failed (exit {c}): {}",
                    tail_lines(&out.stderr, 5)
                )))
            }
        }
        let id = summary
            .as_deref()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v.get("snapshot_id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or_else(|| Stop::Error(format!("{what}: no snapshot id in restic's JSON summary")))?;
        self.snapshots.insert(s.service.clone(), id.clone());
        self.step(format!("backup {}: restic backup", s.service), t);

        // File targets: their witness is the snapshot's bytes.
        for target in files {
            let t = Instant::now();
            let what = format!("restic dump {} {}", short_id(&id), target.restic_path());
            let out = self
                .restic(&what, args(&["dump", &id, &target.restic_path()]), &[], false, true)
                .await?;
            let Some(d) = out.digest.filter(|_| out.exit_code == 0) else {
                return Err(Stop::Error(format!(
                    "{what} failed (exit {}): {}",
                    out.exit_code,
                    tail_lines(&out.stderr, 5)
                )));
            };
            self.note(format!(
                "{what}: {} bytes, sha256 {} (the witness of file target {})",
                d.len,
                d.sha256,
                target.container_path()
            ));
            self.step(format!("backup {}: restic dump", s.service), t);
            if d.len == 0 {
                // A dump of nothing restores "successfully" and proves nothing.
                return Err(Stop::Fail(format!(
                    "file target {} of service {} is empty in the snapshot: a backup of nothing proves nothing (does the backup pre-hook write the dump there?)",
                    target.container_path(),
                    s.service
                )));
            }
            proofs.push((idx, target, Proof::File(d)));
        }
        Ok(())
    }

    /// Deletes every witness file and file target, then checks each is gone.
    async fn destroy(&mut self, proofs: &[(usize, Target, Proof)]) -> Result<(), Stop> {
        let mut paths = Vec::new();
        for (_, target, proof) in proofs {
            paths.push(match proof {
                Proof::Root(w) => format!("{}/{}", target.restic_path(), w.file),
                Proof::Sub { dir, file, .. } => format!("{dir}/{file}"),
                Proof::File(_) => target.restic_path(),
            });
        }
        if paths.is_empty() {
            return Ok(());
        }
        let volumes: Vec<String> = proofs
            .iter()
            .map(|(_, t, _)| t.volume.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut cmd = vec!["-f".to_string(), "--".to_string()];
        cmd.extend(paths.iter().cloned());
        let out = self
            .one_off("rm witnesses", &["rm"], cmd, &volumes, false, false, false)
            .await?;
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "deleting the witnesses with `rm` in image {} failed (exit {}): {}; the image needs `rm`",
                self.opts.restic_image,
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        let helper = self.helper_id()?;
        for p in &paths {
            if self.entry(&helper, p, Want::Kind).await?.is_some() {
                return Err(Stop::Error(format!(
                    "{p} is still there after `rm -f`: the witness cannot be destroyed, so its return would prove nothing"
                )));
            }
        }
        self.note(format!("destroyed and checked gone: {}", paths.join(", ")));
        Ok(())
    }

    /// `restic restore <snapshot> --target /` with the service's volumes
    /// mounted read-write.
    async fn restore_service(&mut self, s: &ServicePlan, snapshot: &str) -> Result<(), Stop> {
        let t = Instant::now();
        let volumes = s.volumes();
        let what = format!("restic restore {} of service {}", short_id(snapshot), s.service);
        let out = self
            .restic(
                &what,
                args(&["restore", snapshot, "--target", "/"]),
                &volumes,
                false,
                false,
            )
            .await?;
        self.note(format!(
            "{what}: exit {}: {}",
            out.exit_code,
            tail_lines(&out.stdout, 3)
        ));
        if !out.stderr.trim().is_empty() {
            self.log.extend(out.stderr.lines().map(|l| format!("    stderr: {l}")));
        }
        if out.exit_code != 0 {
            return Err(Stop::Error(format!(
                "{what} failed (exit {}): {}",
                out.exit_code,
                tail_lines(&out.stderr, 5)
            )));
        }
        self.step(format!("restore {}: restic restore", s.service), t);
        Ok(())
    }

    /// Checks the witnesses of service `idx`; records each; true when all
    /// are intact.
    async fn check(&mut self, s: &ServicePlan, idx: usize, proofs: &[(usize, Target, Proof)]) -> Result<bool, Stop> {
        let t = Instant::now();
        let helper = self.helper_id()?;
        let mut all = true;
        for (_, target, proof) in proofs.iter().filter(|(i, _, _)| *i == idx) {
            let (kind, witness_len, state) = match proof {
                Proof::Root(w) => {
                    let st = w
                        .state(self.docker, &self.opts.restic_image)
                        .await
                        .map_err(|e| Stop::Error(format!("reading the witness in volume {}: {e}", target.volume)))?;
                    (TargetKind::Directory, w.content.len() as u64, st)
                }
                Proof::Sub { dir, file, content } => {
                    let found = self
                        .entry(&helper, &format!("{dir}/{file}"), Want::Bytes(1 << 20))
                        .await?;
                    (
                        TargetKind::Directory,
                        content.len() as u64,
                        compare_bytes(found, content),
                    )
                }
                Proof::File(expected) => {
                    let found = self.entry(&helper, &target.restic_path(), Want::Digest).await?;
                    let st = match found {
                        None => WitnessState::Missing,
                        Some(e) if e.kind.is_file() && e.digest.as_ref() == Some(expected) => WitnessState::Intact,
                        Some(e) => WitnessState::Differs {
                            found_len: e.digest.map(|d| d.len).unwrap_or(0) as usize,
                            expected_len: expected.len as usize,
                        },
                    };
                    (TargetKind::File, expected.len, st)
                }
            };
            all &= state == WitnessState::Intact;
            let c = TargetCheck {
                service: s.service.clone(),
                target: target.clone(),
                kind,
                witness_len,
                state: Some(state),
            };
            self.note(format!(
                "check {} ({kind:?} witness, {witness_len} bytes): {}",
                target.container_path(),
                c.describe()
            ));
            self.checks.push(c);
        }
        self.step(format!("restore {}: check", s.service), t);
        Ok(all)
    }

    /// [`Fault::TruncateAfterRestore`]: halves every restored witness of
    /// service `idx`.
    async fn truncate(&mut self, proofs: &[(usize, Target, Proof)], idx: usize) -> Result<(), Stop> {
        let helper = self.helper_id()?;
        for (_, target, proof) in proofs.iter().filter(|(i, _, _)| *i == idx) {
            let path = match proof {
                Proof::Root(w) => format!("{}/{}", target.restic_path(), w.file),
                Proof::Sub { dir, file, .. } => format!("{dir}/{file}"),
                Proof::File(_) => target.restic_path(),
            };
            let Some(e) = self.entry(&helper, &path, Want::Bytes(64 << 20)).await? else {
                continue;
            };
            let bytes = e.bytes.unwrap_or_default();
            let (dir, name) = path.rsplit_once('/').unwrap_or(("/", path.as_str()));
            copy_file_into(self.docker, &helper, dir, name, &bytes[..bytes.len() / 2], e.mode)
                .await
                .map_err(infra_exec("simulated fault: truncating a restored file"))?;
            self.note(format!(
                "SIMULATED FAULT: {path} truncated from {} to {} bytes after the restore",
                bytes.len(),
                bytes.len() / 2
            ));
        }
        Ok(())
    }

    /// [`Fault::CorruptRepositoryData`]: flips every byte of the
    /// repository's pack files (same names and sizes).
    fn corrupt_repository_data(&mut self) -> Result<(), Stop> {
        let data = self.repo.join("data");
        let mut n = 0;
        let subs = std::fs::read_dir(&data)
            .map_err(|e| Stop::Error(format!("simulated fault: reading {}: {e}", data.display())))?;
        for f in subs
            .flatten()
            .flat_map(|sub| std::fs::read_dir(sub.path()).into_iter().flatten().flatten())
        {
            let corrupted = std::fs::read(f.path())
                .map(|b| b.into_iter().map(|x| !x).collect::<Vec<u8>>())
                .and_then(|b| std::fs::write(f.path(), b));
            if corrupted.is_ok() {
                n += 1;
            }
        }
        self.note(format!(
            "SIMULATED FAULT: every byte of {n} pack files in {} flipped",
            data.display()
        ));
        Ok(())
    }

    fn helper_id(&self) -> Result<String, Stop> {
        self.helper
            .clone()
            .ok_or_else(|| Stop::Error("internal: no helper container".into()))
    }

    /// A created (never started) container mounting `volumes` read-write at
    /// `/backup/<volume>`, for archive reads and writes.
    async fn create_helper(&mut self, volumes: &[String]) -> Result<String, Stop> {
        self.create(
            "archive helper",
            &[],
            vec!["/ccci-never-started".into()],
            volumes,
            false,
            false,
        )
        .await
    }

    /// Creates a one-off container of the restic image.
    async fn create(
        &self,
        what: &str,
        entrypoint: &[&str],
        cmd: Vec<String>,
        volumes: &[String],
        read_only: bool,
        repository: bool,
    ) -> Result<String, Stop> {
        let mut mounts: Vec<Mount> = volumes
            .iter()
            .map(|v| Mount {
                target: Some(format!("{BACKUP_ROOT}/{v}")),
                source: Some(v.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                ..Default::default()
            })
            .collect();
        let mut env = Vec::new();
        if repository {
            mounts.push(Mount {
                target: Some(REPOSITORY.into()),
                source: Some(self.repo.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                ..Default::default()
            });
            env.push(format!("RESTIC_REPOSITORY={REPOSITORY}"));
            env.push(format!("RESTIC_PASSWORD_FILE=/{PASSWORD_FILE}"));
        }
        let spec = oneoff::Spec {
            image: self.opts.restic_image.clone(),
            name_prefix: "ccci-backup",
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd,
            env: Some(env),
            attach: true,
            labels: HashMap::from([
                (NAMESPACE_LABEL.to_string(), self.stack.to_string()),
                (HELPER_LABEL.to_string(), what.to_string()),
            ]),
            mounts,
        };
        match oneoff::create(self.docker, spec).await {
            Ok(id) => Ok(id),
            Err(e) if status_of(&e) == Some(404) => Err(Stop::Error(format!(
                "creating the {what} container: {e}; is the restic image `{}` present (scripts/images builds it) and do the volumes exist?",
                self.opts.restic_image
            ))),
            Err(e) => Err(Stop::Error(format!(
                "Docker engine: creating the {what} container: {e}; is dockerd running? (scripts/dockerd starts it)"
            ))),
        }
    }

    /// Runs restic with `args` in a one-off container (repository mounted,
    /// password file copied in).
    async fn restic(
        &self,
        what: &str,
        args: Vec<String>,
        volumes: &[String],
        read_only: bool,
        digest_stdout: bool,
    ) -> Result<Output, Stop> {
        let mut a = vec!["--no-cache".to_string()];
        a.extend(args);
        self.one_off(what, &["restic"], a, volumes, read_only, true, digest_stdout)
            .await
    }

    /// Creates, starts, waits for and removes a one-off container; kills it
    /// at the restic timeout.
    #[allow(clippy::too_many_arguments)]
    async fn one_off(
        &self,
        what: &str,
        entrypoint: &[&str],
        cmd: Vec<String>,
        volumes: &[String],
        read_only: bool,
        repository: bool,
        digest_stdout: bool,
    ) -> Result<Output, Stop> {
        let id = self
            .create(what, entrypoint, cmd, volumes, read_only, repository)
            .await?;
        let res = self.run_container(what, &id, repository, digest_stdout).await;
        remove_container(self.docker, &id).await;
        res
    }

    async fn run_container(&self, what: &str, id: &str, password: bool, digest_stdout: bool) -> Result<Output, Stop> {
        let docker = self.docker;
        let started = Instant::now();
        if password {
            copy_file_into(docker, id, "/", PASSWORD_FILE, self.password.as_bytes(), 0o400)
                .await
                .map_err(infra_exec(&format!("{what}: copying the repository password in")))?;
        }
        oneoff::run(docker, what, id, started, self.opts.restic_timeout, digest_stdout)
            .await
            .map_err(Stop::Error)
    }

    /// [`archive::entry`] of `path` in container `helper`; a failure is the
    /// infrastructure's.
    async fn entry(&self, helper: &str, path: &str, want: Want) -> Result<Option<Entry>, Stop> {
        archive::entry(self.docker, helper, path, want)
            .await
            .map_err(Stop::Error)
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn compare_bytes(found: Option<Entry>, expected: &[u8]) -> WitnessState {
    match found {
        None => WitnessState::Missing,
        Some(e) => {
            let b = e.bytes.unwrap_or_default();
            if b == expected {
                WitnessState::Intact
            } else {
                WitnessState::Differs {
                    found_len: b.len(),
                    expected_len: expected.len(),
                }
            }
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    if let Err(e) = oneoff::remove(docker, id).await {
        tracing::warn!("could not remove backup helper container {id}: {e}; it is labelled for the stack's teardown");
    }
}
