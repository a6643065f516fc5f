//! Waiting for a deployed stack to converge, event-driven, and proving which
//! tasks and labels are live.
//!
//! A stack has converged when every service of it (found by the
//! `com.docker.stack.namespace` label, see [`crate::deploy::stack`]) has its desired
//! number of tasks in state `running`, each created from the service's
//! current task spec, no task of an older spec still meant to run, no
//! update or rollback in progress, and, where the container has a
//! healthcheck (declared by the image or by the service), every running
//! container reports `healthy`. Swarm itself holds a task in `starting`
//! until its container's first healthy probe (moby
//! `daemon/cluster/executor/container/controller.go`, `Start`), and kills
//! it when the container turns unhealthy; the health check here is the
//! belt to that braces.
//!
//! Readiness is driven by the engine's event stream (`GET /events`,
//! filtered to `type=service` and `type=container`, then to this stack by
//! the service name prefix or the container's namespace / service-name
//! label; healthcheck `exec_*` events are ignored): each relevant event
//! triggers a re-read of services, tasks and containers, and a safety
//! re-read runs every [`ConvergeOptions::safety_poll`] (2 s) in case an
//! event is missed. No fixed sleeps.
//!
//! It fails fast, without waiting out the timeout, when a service's update
//! ended in a rollback or a pause (`UpdateStatus.State` = `rollback_completed`,
//! `rollback_paused`, `paused`), when the service's most recent tasks keep
//! failing ([`ConvergeOptions::failed_tasks_limit`] consecutive `failed` or
//! `rejected` tasks), or when no task is scheduled any more and the last one
//! failed (restart policy exhausted). Errors say whether the recipe or the
//! infrastructure is at fault ([`ConvergeError::is_recipe_failure`]), so the
//! caller can report `fail` or `error`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::models::{
    EventMessage, EventMessageTypeEnum, HealthStatusEnum, HealthcheckResult, Service, ServiceUpdateStatusStateEnum,
    Task, TaskSpec, TaskState,
};
use bollard::query_parameters::{EventsOptions, ListNodesOptions, ListTasksOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::deploy::stack::{NAMESPACE_LABEL, SERVICE_NAME_LABEL};

/// Why a stack did not converge.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    /// The Docker Engine API did not answer or refused a request
    /// (infrastructure: report `error`).
    #[error("Docker engine: {context}: {source}; is dockerd running and is /var/run/docker.sock reachable? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
    /// The stack has no services: nothing was deployed under this name
    /// (a harness problem: report `error`).
    #[error("stack `{stack}` has no services (label {NAMESPACE_LABEL}={stack}); was it deployed, under this name?")]
    NoServices {
        /// The stack.
        stack: String,
    },
    /// Swarm rolled back or paused the service's update: the new spec did
    /// not come up and the old tasks (if any) keep running (recipe: `fail`).
    #[error("service `{service}`: update ended in `{state}` ({message}); last failed task: {task_error}; the new version did not converge and Swarm kept or restored the old one")]
    RolledBack {
        /// The service.
        service: String,
        /// `UpdateStatus.State`: `rollback_completed`, `rollback_paused` or `paused`.
        state: String,
        /// `UpdateStatus.Message`.
        message: String,
        /// The newest failed task's state and error, or "none seen".
        task_error: String,
    },
    /// The service's tasks keep failing (recipe: `fail`).
    #[error("service `{service}`: {count} tasks in a row ended `{last_state}`: {last_error}{}", health_suffix(.health_output))]
    TasksFailing {
        /// The service.
        service: String,
        /// Consecutive failed/rejected tasks seen.
        count: usize,
        /// The newest such task's state.
        last_state: String,
        /// The newest such task's error (`Status.Err`, else `Status.Message`).
        last_error: String,
        /// The last healthcheck output seen for the service's containers.
        health_output: Option<String>,
    },
    /// The timeout passed with services still not converged (recipe: `fail`).
    #[error("stack `{stack}` did not converge within {}s: {}", timeout.as_secs(), pending_list(.pending))]
    Timeout {
        /// The stack.
        stack: String,
        /// The timeout.
        timeout: Duration,
        /// What each unconverged service looked like at the end.
        pending: Vec<ServiceProgress>,
    },
}

impl From<crate::deploy::stack::StackError> for ConvergeError {
    fn from(e: crate::deploy::stack::StackError) -> Self {
        let crate::deploy::stack::StackError::Docker { context, source } = e;
        ConvergeError::Docker { context, source }
    }
}

fn health_suffix(h: &Option<String>) -> String {
    h.as_ref()
        .map(|h| format!("; last healthcheck output: {h}"))
        .unwrap_or_default()
}

fn pending_list(p: &[ServiceProgress]) -> String {
    p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ConvergeError {
    /// True when the recipe is at fault (report `fail`); false for the
    /// engine or the harness (report `error`).
    pub fn is_recipe_failure(&self) -> bool {
        matches!(
            self,
            ConvergeError::RolledBack { .. } | ConvergeError::TasksFailing { .. } | ConvergeError::Timeout { .. }
        )
    }
}

fn docker_err(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ConvergeError {
    let context = context.into();
    move |source| ConvergeError::Docker { context, source }
}

/// How one service looked at the last re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProgress {
    /// The service name (`<stack>_<service>`).
    pub service: String,
    /// Tasks wanted.
    pub desired: u64,
    /// Tasks of the current spec running (and healthy where checked).
    pub ready: u64,
    /// `UpdateStatus.State`, if an update was ever started.
    pub update_state: Option<String>,
    /// The newest task's state.
    pub last_task_state: Option<String>,
    /// The newest task's error or message.
    pub last_task_error: Option<String>,
    /// The last healthcheck output seen for its containers.
    pub health_output: Option<String>,
}

impl std::fmt::Display for ServiceProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service `{}` {}/{} ready", self.service, self.ready, self.desired)?;
        if let Some(s) = &self.update_state {
            write!(f, ", update {s}")?;
        }
        if let Some(s) = &self.last_task_state {
            write!(f, ", last task {s}")?;
        }
        if let Some(e) = self.last_task_error.as_deref().filter(|e| !e.is_empty()) {
            write!(f, " ({e})")?;
        }
        if let Some(h) = &self.health_output {
            write!(f, ", last healthcheck output: {h}")?;
        }
        Ok(())
    }
}

/// One converged service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConvergence {
    /// The service name (`<stack>_<service>`).
    pub service: String,
    /// Tasks running (and healthy where checked).
    pub replicas: u64,
    /// True when its containers have a healthcheck that was required to pass.
    pub healthchecked: bool,
    /// Time from the start of the wait until it was last seen converging.
    pub converged_after: Duration,
}

/// A converged stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convergence {
    /// Each service, sorted by name.
    pub services: Vec<ServiceConvergence>,
    /// Total time waited.
    pub total: Duration,
}

/// Knobs of [`wait_converged_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvergeOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Fail fast after this many consecutive `failed`/`rejected` tasks of a
    /// service (default 5: recipes often crash a few times while a database
    /// they depend on starts).
    pub failed_tasks_limit: usize,
    /// Safety re-read interval when no event arrives (default 2 s).
    pub safety_poll: Duration,
    /// How long the same tasks must stay ready before a service without a
    /// healthcheck counts as converged (default 5 s, the docker CLI's
    /// `docker service create` stability check): a crash-looping container
    /// is briefly `running`. A service whose tasks report `healthy` needs
    /// no window: the probe is the proof.
    pub stable_for: Duration,
}

impl ConvergeOptions {
    /// Defaults with the given timeout.
    pub fn new(timeout: Duration) -> ConvergeOptions {
        ConvergeOptions {
            timeout,
            failed_tasks_limit: 5,
            safety_poll: Duration::from_secs(2),
            stable_for: Duration::from_secs(5),
        }
    }
}

/// [`wait_converged_with`] with [`ConvergeOptions::new`]`(timeout)`.
pub async fn wait_converged(docker: &Docker, stack: &str, timeout: Duration) -> Result<Convergence, ConvergeError> {
    wait_converged_with(docker, stack, &ConvergeOptions::new(timeout)).await
}

/// Waits until every service of `stack` has converged (module doc), or
/// fails fast, or times out.
///
/// Returns per-service timings and the total wait. Errors:
/// [`ConvergeError::Docker`] (engine), [`ConvergeError::NoServices`] (nothing
/// deployed; reported after the timeout's first safety poll, as services
/// may still be appearing), [`ConvergeError::RolledBack`],
/// [`ConvergeError::TasksFailing`], [`ConvergeError::Timeout`].
pub async fn wait_converged_with(
    docker: &Docker,
    stack: &str,
    opts: &ConvergeOptions,
) -> Result<Convergence, ConvergeError> {
    let start = Instant::now();
    let deadline = start + opts.timeout;
    // `since` makes the engine replay events from this second on: the
    // request only goes out on the first poll of the stream.
    let mut events = docker
        .events(Some(EventsOptions {
            since: Some((Utc::now().timestamp() - 1).to_string()),
            until: None,
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["service".to_string(), "container".to_string()],
            )])),
        }))
        .boxed();
    // Per service: the ready task ids and since when they have been ready.
    let mut ready_since: BTreeMap<String, (Vec<String>, Instant)> = BTreeMap::new();
    let mut health_seen: HashMap<String, String> = HashMap::new();
    let mut last: Vec<ServiceProgress> = Vec::new();
    let mut stream_ok = true;
    loop {
        let services = crate::deploy::stack::services_of(docker, stack).await?;
        // The earliest instant a ready service becomes stable.
        let mut next_stable: Option<Instant> = None;
        if services.is_empty() {
            if start.elapsed() >= opts.safety_poll.min(opts.timeout) {
                return Err(ConvergeError::NoServices { stack: stack.into() });
            }
        } else {
            let mut done = Vec::new();
            let mut pending = Vec::new();
            for s in &services {
                let st = service_state(docker, s, opts, &mut health_seen).await?;
                match st {
                    State::Ready(mut c, ids) => {
                        let now = Instant::now();
                        let entry = ready_since
                            .entry(c.service.clone())
                            .or_insert_with(|| (ids.clone(), now));
                        if entry.0 != ids {
                            *entry = (ids, now);
                        }
                        c.converged_after = entry.1 - start;
                        // A healthy probe already proves the tasks up (swarm
                        // holds a task in `starting` until its first one):
                        // the window is for containers nothing probes.
                        let window = if c.healthchecked {
                            Duration::ZERO
                        } else {
                            opts.stable_for
                        };
                        let stable_at = entry.1 + window;
                        if stable_at > now {
                            next_stable = Some(next_stable.map_or(stable_at, |n| n.min(stable_at)));
                        }
                        done.push(c);
                    }
                    State::Pending(p) => {
                        ready_since.remove(&p.service);
                        pending.push(p);
                    }
                }
            }
            if pending.is_empty() && next_stable.is_none() {
                done.sort_by(|a, b| a.service.cmp(&b.service));
                return Ok(Convergence {
                    services: done,
                    total: start.elapsed(),
                });
            }
            pending.sort_by(|a, b| a.service.cmp(&b.service));
            last = pending;
        }
        if Instant::now() >= deadline {
            return Err(ConvergeError::Timeout {
                stack: stack.into(),
                timeout: opts.timeout,
                pending: last,
            });
        }
        // Wait for a relevant event, the safety poll, or the deadline.
        let mut wake = deadline.min(Instant::now() + opts.safety_poll);
        if let Some(n) = next_stable {
            wake = wake.min(n);
        }
        let sleep = tokio::time::sleep_until(wake.into());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                ev = events.next(), if stream_ok => match ev {
                    Some(Ok(ev)) if relevant(stack, &ev) => break,
                    Some(Ok(_)) => continue,
                    _ => { stream_ok = false; tracing::warn!("Docker event stream ended; polling every {:?}", opts.safety_poll); }
                },
                _ = &mut sleep => break,
            }
        }
    }
}

/// True when `ev` may change the convergence of `stack`.
fn relevant(stack: &str, ev: &EventMessage) -> bool {
    let prefix = format!("{stack}_");
    let attrs = ev.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let attr = |k: &str| attrs.and_then(|a| a.get(k)).map(String::as_str);
    match ev.typ {
        Some(EventMessageTypeEnum::SERVICE) => attr("name").is_some_and(|n| n.starts_with(&prefix)),
        Some(EventMessageTypeEnum::CONTAINER) => {
            let action = ev.action.as_deref().unwrap_or("");
            !action.starts_with("exec_")
                && (attr(NAMESPACE_LABEL) == Some(stack)
                    || attr(SERVICE_NAME_LABEL).is_some_and(|n| n.starts_with(&prefix)))
        }
        _ => false,
    }
}

enum State {
    /// Converged now, with the ids of the ready tasks.
    Ready(ServiceConvergence, Vec<String>),
    Pending(ServiceProgress),
}

fn task_state_str(t: &Task) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn task_error(t: &Task) -> String {
    let st = t.status.as_ref();
    st.and_then(|s| s.err.clone())
        .filter(|e| !e.is_empty())
        .or_else(|| st.and_then(|s| s.message.clone()))
        .unwrap_or_default()
}

fn state_of(t: &Task) -> Option<TaskState> {
    t.status.as_ref().and_then(|s| s.state)
}

/// True when a task was created from the service's current task template.
///
/// Swarm copies the template into each task, but Docker 20.10 reports the
/// copy without some fields the service shows (seen: `Runtime`, and for
/// services made by `docker service create`, `RestartPolicy` and
/// `ContainerSpec.StopGracePeriod`), so those are left out of the
/// comparison; everything that makes a task (image, command, env, labels,
/// mounts, healthcheck, secrets, configs, networks, resources, placement,
/// `ForceUpdate`) is compared.
pub fn same_spec(task: Option<&TaskSpec>, template: Option<&TaskSpec>) -> bool {
    fn norm(t: Option<&TaskSpec>) -> serde_json::Value {
        let mut v = serde_json::to_value(t).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("Runtime");
            o.remove("RestartPolicy");
            if let Some(c) = o.get_mut("ContainerSpec").and_then(|c| c.as_object_mut()) {
                c.remove("StopGracePeriod");
            }
        }
        v
    }
    norm(task) == norm(template)
}

/// Tasks newest first (by creation time).
fn newest_first(mut tasks: Vec<Task>) -> Vec<Task> {
    tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at.as_ref().and_then(|d| d.to_utc())));
    tasks
}

/// Timestamps as bollard hands them over: a string without bollard's
/// `chrono`/`time` features, a chrono date with `chrono`.
pub trait ToUtc {
    /// The instant, if it parses.
    fn to_utc(&self) -> Option<DateTime<Utc>>;
}

impl ToUtc for String {
    fn to_utc(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self).ok().map(|d| d.with_timezone(&Utc))
    }
}

impl ToUtc for DateTime<Utc> {
    fn to_utc(&self) -> Option<DateTime<Utc>> {
        Some(*self)
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

async fn tasks_of(docker: &Docker, service_id: &str) -> Result<Vec<Task>, ConvergeError> {
    docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([("service".to_string(), vec![service_id.to_string()])])),
        }))
        .await
        .map_err(docker_err(format!("listing the tasks of service {service_id}")))
}

async fn desired_tasks(docker: &Docker, s: &Service) -> Result<u64, ConvergeError> {
    let mode = s.spec.as_ref().and_then(|sp| sp.mode.as_ref());
    if let Some(r) = mode.and_then(|m| m.replicated.as_ref()) {
        return Ok(r.replicas.unwrap_or(1).max(0) as u64);
    }
    if mode.is_some_and(|m| m.global.is_some()) {
        // One task per ready, active node (placement constraints aside).
        let nodes = docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(docker_err("listing swarm nodes"))?;
        let n = nodes
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.state)
                    .map(|s| s.to_string())
                    .as_deref()
                    == Some("ready")
                    && n.spec
                        .as_ref()
                        .and_then(|s| s.availability)
                        .map(|a| a.to_string())
                        .as_deref()
                        == Some("active")
            })
            .count();
        return Ok(n as u64);
    }
    Ok(1)
}

async fn service_state(
    docker: &Docker,
    s: &Service,
    opts: &ConvergeOptions,
    health_seen: &mut HashMap<String, String>,
) -> Result<State, ConvergeError> {
    let id = s.id.clone().unwrap_or_default();
    let name = s
        .spec
        .as_ref()
        .and_then(|sp| sp.name.clone())
        .unwrap_or_else(|| id.clone());
    let template = s.spec.as_ref().and_then(|sp| sp.task_template.clone());
    let desired = desired_tasks(docker, s).await?;
    let update_state = s.update_status.as_ref().and_then(|u| u.state);
    let tasks = newest_first(tasks_of(docker, &id).await?);

    let newest_failed = tasks
        .iter()
        .find(|t| matches!(state_of(t), Some(TaskState::FAILED) | Some(TaskState::REJECTED)));
    if let Some(
        st @ (ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
        | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
        | ServiceUpdateStatusStateEnum::PAUSED),
    ) = update_state
    {
        return Err(ConvergeError::RolledBack {
            service: name,
            state: st.to_string(),
            message: s
                .update_status
                .as_ref()
                .and_then(|u| u.message.clone())
                .unwrap_or_default(),
            task_error: newest_failed
                .map(|t| format!("{}: {}", task_state_str(t), task_error(t)))
                .unwrap_or_else(|| "none seen".into()),
        });
    }

    // Health of containers: running ones must be healthy; starting ones
    // give the health output to report.
    let mut ready = 0u64;
    let mut ready_ids = Vec::new();
    let mut healthchecked = false;
    let mut stale_live = false;
    for t in &tasks {
        let desired_running = t.desired_state == Some(TaskState::RUNNING);
        let current = same_spec(t.spec.as_ref(), template.as_ref());
        let st = state_of(t);
        let live = matches!(
            st,
            Some(
                TaskState::NEW
                    | TaskState::ALLOCATED
                    | TaskState::PENDING
                    | TaskState::ASSIGNED
                    | TaskState::ACCEPTED
                    | TaskState::PREPARING
                    | TaskState::READY
                    | TaskState::STARTING
                    | TaskState::RUNNING
            )
        );
        if desired_running && !current && live {
            stale_live = true;
        }
        let container = t
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone());
        let look = desired_running && current && matches!(st, Some(TaskState::RUNNING) | Some(TaskState::STARTING));
        let mut healthy = true;
        if let (true, Some(cid)) = (look, container) {
            match docker.inspect_container(&cid, None).await {
                Ok(c) => {
                    if let Some(h) = c.state.and_then(|s| s.health) {
                        // The newest probe that ran to a verdict (exit 0 or 1, with
                        // output): when swarm kills an unhealthy container, the
                        // last probes fail to exec (-1) or are killed (137).
                        let log = h.log.as_deref().unwrap_or_default();
                        let verdict = |r: &&HealthcheckResult| {
                            matches!(r.exit_code, Some(0) | Some(1))
                                && r.output.as_deref().is_some_and(|o| !o.trim().is_empty())
                        };
                        let good = log.iter().rev().find(verdict);
                        if let Some(r) = good.or(log.last()) {
                            let out = truncate(r.output.as_deref().unwrap_or(""), 400);
                            let out = match r.exit_code {
                                Some(c) => format!("exit {c}: {out}"),
                                None => out,
                            };
                            if good.is_some() || !health_seen.contains_key(&name) {
                                health_seen.insert(name.clone(), out);
                            }
                        }
                        match h.status {
                            None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => {}
                            Some(HealthStatusEnum::HEALTHY) => healthchecked = true,
                            Some(_) => {
                                healthchecked = true;
                                healthy = false;
                            }
                        }
                    }
                }
                // The container went away between the listing and now.
                Err(e) if crate::deploy::stack::status_of(&e) == Some(404) => healthy = false,
                Err(e) => return Err(docker_err(format!("inspecting container {cid}"))(e)),
            }
        }
        if desired_running && current && st == Some(TaskState::RUNNING) && healthy {
            ready += 1;
            ready_ids.push(t.id.clone().unwrap_or_default());
        }
    }

    // Fail fast: consecutive failures among the newest tasks, skipping
    // replacements not yet started (swarm creates them at once and delays
    // their start).
    let mut fails = 0usize;
    for t in &tasks {
        match state_of(t) {
            Some(TaskState::FAILED) | Some(TaskState::REJECTED) => fails += 1,
            Some(
                TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY,
            ) if fails == 0 => {}
            _ => break,
        }
    }
    let nothing_scheduled = !tasks.is_empty()
        && desired > 0
        && tasks
            .iter()
            .all(|t| !matches!(t.desired_state, Some(TaskState::RUNNING) | Some(TaskState::READY)));
    let in_update = matches!(
        update_state,
        Some(ServiceUpdateStatusStateEnum::UPDATING) | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
    );
    let rolling_back = update_state == Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED);
    if !rolling_back && (fails >= opts.failed_tasks_limit.max(1) || (nothing_scheduled && fails > 0)) {
        let t = newest_failed.expect("a failed task was counted");
        return Err(ConvergeError::TasksFailing {
            service: name.clone(),
            count: fails,
            last_state: task_state_str(t),
            last_error: task_error(t),
            health_output: health_seen.get(&name).cloned(),
        });
    }

    if ready >= desired && !stale_live && !in_update {
        ready_ids.sort();
        return Ok(State::Ready(
            ServiceConvergence {
                service: name,
                replicas: ready,
                healthchecked,
                converged_after: Duration::ZERO,
            },
            ready_ids,
        ));
    }
    let newest = tasks.first();
    Ok(State::Pending(ServiceProgress {
        health_output: health_seen.get(&name).cloned(),
        service: name,
        desired,
        ready,
        update_state: update_state.map(|u| u.to_string()),
        last_task_state: newest.map(task_state_str),
        last_task_error: newest.map(task_error),
    }))
}

/// Labels of one service: its spec's and its running containers'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceLabels {
    /// The service spec's labels (compose `deploy.labels`: where recipes put
    /// `coop-cloud.${STACK_NAME}.version` and abra its chaos labels).
    pub service: HashMap<String, String>,
    /// Each running task's container labels (compose `labels`), keyed by
    /// container id.
    pub containers: BTreeMap<String, HashMap<String, String>>,
    /// True when every running task was created from the service's current
    /// task spec (so what the spec says is what runs).
    pub running_current_spec: bool,
}

/// Labels of every service of `stack` (keyed by service name) and of its
/// running tasks' containers.
///
/// Errors: [`ConvergeError::Docker`].
pub async fn running_labels(docker: &Docker, stack: &str) -> Result<BTreeMap<String, ServiceLabels>, ConvergeError> {
    let services = crate::deploy::stack::services_of(docker, stack).await?;
    let mut out = BTreeMap::new();
    for s in services {
        let id = s.id.clone().unwrap_or_default();
        let spec = s.spec.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_else(|| id.clone());
        let mut labels = ServiceLabels {
            service: spec.labels.clone().unwrap_or_default(),
            running_current_spec: true,
            ..Default::default()
        };
        for t in tasks_of(docker, &id).await? {
            if state_of(&t) != Some(TaskState::RUNNING) || t.desired_state != Some(TaskState::RUNNING) {
                continue;
            }
            if !same_spec(t.spec.as_ref(), spec.task_template.as_ref()) {
                labels.running_current_spec = false;
            }
            let Some(cid) = t
                .status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone())
            else {
                continue;
            };
            match docker.inspect_container(&cid, None).await {
                Ok(c) => {
                    let l = c.config.and_then(|c| c.labels).unwrap_or_default();
                    labels.containers.insert(cid, l);
                }
                Err(e) if crate::deploy::stack::status_of(&e) == Some(404) => {}
                Err(e) => return Err(docker_err(format!("inspecting container {cid}"))(e)),
            }
        }
        out.insert(name, labels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn ev(typ: EventMessageTypeEnum, action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("x".into()),
                attributes: Some(attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn events_are_filtered_to_the_stack() {
        use EventMessageTypeEnum::*;
        assert!(relevant("a_b", &ev(SERVICE, "update", &[("name", "a_b_app")])));
        assert!(!relevant("a_b", &ev(SERVICE, "update", &[("name", "a_bc_app")])));
        assert!(relevant(
            "a_b",
            &ev(CONTAINER, "health_status: healthy", &[(NAMESPACE_LABEL, "a_b")])
        ));
        assert!(relevant(
            "a_b",
            &ev(CONTAINER, "die", &[(SERVICE_NAME_LABEL, "a_b_db")])
        ));
        assert!(!relevant(
            "a_b",
            &ev(CONTAINER, "exec_start: true", &[(NAMESPACE_LABEL, "a_b")])
        ));
        assert!(!relevant("a_b", &ev(CONTAINER, "die", &[(NAMESPACE_LABEL, "a_b_c")])));
        assert!(!relevant("a_b", &ev(NETWORK, "create", &[("name", "a_b_default")])));
    }

    #[test]
    fn docker_timestamps_parse() {
        let t = "2024-05-01T10:11:12.123456789Z".to_string().to_utc().unwrap();
        assert_eq!(t.timestamp(), 1714558272);
        assert!("not a date".to_string().to_utc().is_none());
    }

    #[test]
    fn only_recipe_problems_are_failures() {
        let timeout = ConvergeError::Timeout {
            stack: "s".into(),
            timeout: Duration::from_secs(3),
            pending: vec![],
        };
        assert!(timeout.is_recipe_failure());
        assert!(!ConvergeError::NoServices { stack: "s".into() }.is_recipe_failure());
    }
}
