//! One app's swarm stack: its objects, its teardown, and the proof that
//! nothing is left.
//!
//! Which objects belong to a stack: `docker stack deploy` and abra (which
//! deploys through a copy of the docker CLI's stack code) label every
//! service, network, secret and config they create, and every service's
//! container spec and named-volume mounts, with
//! `com.docker.stack.namespace=<stack>` (docker/cli
//! `cli/compose/convert/compose.go`, `LabelNamespace`; `AddStackLabel`), and
//! name them `<stack>_<name>` (`Namespace.Scope`). Swarm copies the container
//! spec's labels onto each task's container, and the engine puts a mount's
//! `VolumeOptions.Labels` on the volume it creates for it. Listing is
//! therefore by that label, with a name-prefix fallback for volumes,
//! secrets, configs and containers (objects created by hand or by an older
//! tool without the label); the fallback never takes an object whose
//! namespace label names another stack (stack `a_b` must not take `a_b_c`'s
//! volumes).
//!
//! [`teardown`] removes services first, waits (driven by the engine's
//! container events, with a slow safety re-read, bounded by a timeout) until
//! their tasks and containers are gone, then removes networks, volumes (a
//! volume still held by a dying container is retried until the deadline),
//! secrets and configs. It is idempotent: a missing stack is a no-op.
//! [`verify_clean`] lists what is left (empty = clean).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    EventsOptions, ListConfigsOptions, ListContainersOptions, ListNetworksOptions, ListSecretsOptions,
    ListServicesOptions, ListTasksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

/// The label `docker stack deploy` and abra put on a stack's objects.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// The label swarm puts on a task's container naming its service.
pub const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";
/// The label swarm puts on a task's container with its service's id.
pub const SERVICE_ID_LABEL: &str = "com.docker.swarm.service.id";

/// abra's stack name for an app domain: dots become underscores
/// (`blog.example.com` -> `blog_example_com`). The one rule lives in
/// [`crate::deploy::app::stack_name`]; this re-export keeps stack code in one place.
pub use crate::deploy::app::stack_name;

/// Why a stack could not be listed or torn down.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The Docker Engine API did not answer or refused a request.
    #[error("Docker engine: {context}: {source}; is dockerd running and is /var/run/docker.sock reachable? (scripts/dockerd starts it)")]
    Docker {
        /// What was being done.
        context: String,
        /// The API error.
        source: bollard::errors::Error,
    },
}

pub(crate) fn docker_err(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> StackError {
    let context = context.into();
    move |source| StackError::Docker { context, source }
}

/// The HTTP status of an engine error response, if it is one.
pub(crate) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The kinds of objects a stack owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// A swarm service.
    Service,
    /// A swarm task (removed with its service).
    Task,
    /// A container (a task's, or any with the stack's label).
    Container,
    /// A network.
    Network,
    /// A named volume.
    Volume,
    /// A swarm secret.
    Secret,
    /// A swarm config.
    Config,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
            ObjectKind::Container => "container",
            ObjectKind::Network => "network",
            ObjectKind::Volume => "volume",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        })
    }
}

/// One object of a stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (for tasks: `<service>.<slot>` or the task id; for
    /// containers: the name without the leading `/`).
    pub name: String,
    /// Its engine id (volumes: the name).
    pub id: String,
}

impl std::fmt::Display for StackObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Everything of one stack the engine knows, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackObjects {
    /// Services labelled with the stack.
    pub services: Vec<StackObject>,
    /// Tasks of those services, or whose container spec carries the label.
    pub tasks: Vec<StackObject>,
    /// Containers with the stack label, or whose service name has the prefix.
    pub containers: Vec<StackObject>,
    /// Networks with the stack label.
    pub networks: Vec<StackObject>,
    /// Volumes with the stack label or the `<stack>_` prefix.
    pub volumes: Vec<StackObject>,
    /// Secrets with the stack label or the `<stack>_` prefix.
    pub secrets: Vec<StackObject>,
    /// Configs with the stack label or the `<stack>_` prefix.
    pub configs: Vec<StackObject>,
}

impl StackObjects {
    /// All objects, in the order teardown removes them.
    pub fn all(&self) -> Vec<StackObject> {
        [
            &self.services,
            &self.tasks,
            &self.containers,
            &self.networks,
            &self.volumes,
            &self.secrets,
            &self.configs,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// True when the stack owns nothing.
    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }
}

fn label_filter(stack: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{NAMESPACE_LABEL}={stack}")])])
}

/// True when an object named `name` with `labels` belongs to `stack`: the
/// namespace label says so, or it has no namespace label and its name starts
/// with `<stack>_`.
pub fn belongs(stack: &str, name: &str, labels: Option<&HashMap<String, String>>) -> bool {
    match labels.and_then(|l| l.get(NAMESPACE_LABEL)) {
        Some(ns) => ns == stack,
        None => name.starts_with(&format!("{stack}_")),
    }
}

fn obj(kind: ObjectKind, name: impl Into<String>, id: impl Into<String>) -> StackObject {
    StackObject {
        kind,
        name: name.into(),
        id: id.into(),
    }
}

/// The stack's services: `(id, name, labels)`, by the namespace label.
pub(crate) async fn services_of(docker: &Docker, stack: &str) -> Result<Vec<bollard::models::Service>, StackError> {
    docker
        .list_services(Some(ListServicesOptions {
            filters: Some(label_filter(stack)),
            status: None,
        }))
        .await
        .map_err(docker_err(format!("listing the services of stack `{stack}`")))
}

/// Where a service of the stack mounts a named volume, as its current spec
/// says (`TaskTemplate.ContainerSpec.Mounts` of type `volume`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolumeMount {
    /// The service (`<stack>_<name>`).
    pub service: String,
    /// The volume (`<stack>_<vol>` for the stack's own).
    pub volume: String,
    /// The path in the container.
    pub target: String,
}

/// Every named-volume mount of the stack's services, sorted.
///
/// Errors: [`StackError::Docker`] when the services cannot be listed.
pub async fn volume_mounts(docker: &Docker, stack: &str) -> Result<Vec<VolumeMount>, StackError> {
    let mut out = Vec::new();
    for s in services_of(docker, stack).await? {
        let Some(spec) = s.spec else { continue };
        let service = spec.name.clone().unwrap_or_default();
        let mounts = spec
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.mounts)
            .unwrap_or_default();
        for m in mounts {
            if m.typ != Some(bollard::models::MountType::VOLUME) {
                continue;
            }
            if let (Some(volume), Some(target)) = (m.source, m.target) {
                out.push(VolumeMount {
                    service: service.clone(),
                    volume,
                    target,
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Lists every object of `stack` (see the module doc for how membership is
/// decided). Tasks are listed node-wide and matched by service id or by the
/// namespace label of their container spec, so tasks of an already removed
/// service are found too.
///
/// Errors: [`StackError::Docker`] when a listing fails.
pub async fn list_objects(docker: &Docker, stack: &str) -> Result<StackObjects, StackError> {
    let mut out = StackObjects::default();
    let services = services_of(docker, stack).await?;
    let mut service_ids = HashSet::new();
    let mut service_names: HashMap<String, String> = HashMap::new();
    for s in &services {
        let id = s.id.clone().unwrap_or_default();
        let name = s.spec.as_ref().and_then(|sp| sp.name.clone()).unwrap_or_default();
        service_ids.insert(id.clone());
        service_names.insert(id.clone(), name.clone());
        out.services.push(obj(ObjectKind::Service, name, id));
    }

    let tasks = docker
        .list_tasks(None::<ListTasksOptions>)
        .await
        .map_err(docker_err("listing swarm tasks"))?;
    for t in tasks {
        let sid = t.service_id.clone().unwrap_or_default();
        let labels = t
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.labels.as_ref());
        let ours = service_ids.contains(&sid)
            || labels.and_then(|l| l.get(NAMESPACE_LABEL)).map(String::as_str) == Some(stack);
        if ours {
            let id = t.id.clone().unwrap_or_default();
            let name = match (service_names.get(&sid), t.slot) {
                (Some(n), Some(slot)) => format!("{n}.{slot}"),
                _ => id.clone(),
            };
            out.tasks.push(obj(ObjectKind::Task, name, id));
        }
    }

    // Containers with the stack label, and every swarm task container (its
    // service name decides when it has no namespace label).
    let labelled = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(stack)),
            ..Default::default()
        }))
        .await
        .map_err(docker_err("listing containers"))?;
    let svc_prefixed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![SERVICE_NAME_LABEL.to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(docker_err("listing containers"))?;
    let mut seen = HashSet::new();
    for c in labelled.into_iter().chain(svc_prefixed) {
        let id = c.id.clone().unwrap_or_default();
        if !seen.insert(id.clone()) {
            continue;
        }
        let labels = c.labels.as_ref();
        let svc = labels
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
            .unwrap_or_default();
        let svc_id = labels
            .and_then(|l| l.get(SERVICE_ID_LABEL))
            .cloned()
            .unwrap_or_default();
        if belongs(stack, &svc, labels) || service_ids.contains(&svc_id) {
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone());
            out.containers.push(obj(ObjectKind::Container, name, id));
        }
    }

    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(label_filter(stack)),
        }))
        .await
        .map_err(docker_err("listing networks"))?;
    for n in networks {
        if n.labels
            .as_ref()
            .and_then(|l| l.get(NAMESPACE_LABEL))
            .map(String::as_str)
            == Some(stack)
        {
            out.networks.push(obj(
                ObjectKind::Network,
                n.name.unwrap_or_default(),
                n.id.unwrap_or_default(),
            ));
        }
    }

    let volumes = docker
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .map_err(docker_err("listing volumes"))?;
    for v in volumes.volumes.unwrap_or_default() {
        if belongs(stack, &v.name, Some(&v.labels)) {
            out.volumes.push(obj(ObjectKind::Volume, v.name.clone(), v.name));
        }
    }

    let secrets = docker
        .list_secrets(None::<ListSecretsOptions>)
        .await
        .map_err(docker_err("listing secrets"))?;
    for s in secrets {
        let spec = s.spec.unwrap_or_default();
        let name = spec.name.unwrap_or_default();
        if belongs(stack, &name, spec.labels.as_ref()) {
            out.secrets
                .push(obj(ObjectKind::Secret, name, s.id.unwrap_or_default()));
        }
    }

    let configs = docker
        .list_configs(None::<ListConfigsOptions>)
        .await
        .map_err(docker_err("listing configs"))?;
    for c in configs {
        let spec = c.spec.unwrap_or_default();
        let name = spec.name.unwrap_or_default();
        if belongs(stack, &name, spec.labels.as_ref()) {
            out.configs
                .push(obj(ObjectKind::Config, name, c.id.unwrap_or_default()));
        }
    }

    for v in [
        &mut out.services,
        &mut out.tasks,
        &mut out.containers,
        &mut out.networks,
        &mut out.volumes,
        &mut out.secrets,
        &mut out.configs,
    ] {
        v.sort();
    }
    Ok(out)
}

/// What is left of `stack`: every object [`list_objects`] finds, flattened.
/// Empty means clean.
///
/// Errors: [`StackError::Docker`] when a listing fails.
pub async fn verify_clean(docker: &Docker, stack: &str) -> Result<Vec<StackObject>, StackError> {
    Ok(list_objects(docker, stack).await?.all())
}

/// Something teardown could not remove, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The object.
    pub object: StackObject,
    /// The engine's last answer, or "still present at the deadline".
    pub reason: String,
}

/// What [`teardown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Objects this call removed (services, leftover containers, networks,
    /// volumes, secrets, configs), in removal order. Tasks and task
    /// containers that swarm removed on its own are not listed.
    pub removed: Vec<StackObject>,
    /// What is still there after the call ([`verify_clean`] at the end,
    /// with the last error seen for each object where there was one).
    pub left: Vec<Leftover>,
    /// Wall time of the whole teardown.
    pub took: Duration,
}

impl TeardownReport {
    /// True when nothing is left.
    pub fn is_clean(&self) -> bool {
        self.left.is_empty()
    }
}

/// How long [`teardown`] waits by default for tasks and containers to go and
/// for volumes to be released: 120 s (swarm's default stop grace period is
/// 10 s per container; slow databases take longer).
pub const DEFAULT_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// The safety re-read interval while waiting for events.
const SAFETY_POLL: Duration = Duration::from_secs(2);

/// Removes everything of `stack` (see the module doc) and reports what it
/// removed and what is left; waits at most `timeout` in total for tasks,
/// containers and volumes to be released.
///
/// Idempotent: a stack that does not exist gives an empty, clean report.
/// Objects that vanish between listing and removal (404) count as removed
/// by someone else and are not reported as leftovers.
///
/// Errors: [`StackError::Docker`] only when listing fails (the engine is
/// unreachable); a removal the engine refuses is reported in
/// [`TeardownReport::left`] with its reason.
pub async fn teardown(docker: &Docker, stack: &str, timeout: Duration) -> Result<TeardownReport, StackError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut report = TeardownReport::default();
    let mut errors: BTreeMap<StackObject, String> = BTreeMap::new();

    // Subscribe before removing, so no container event is missed.
    let mut events = docker
        .events(Some(EventsOptions {
            since: None,
            until: None,
            filters: Some(HashMap::from([("type".to_string(), vec!["container".to_string()])])),
        }))
        .boxed();

    let objects = list_objects(docker, stack).await?;
    for s in &objects.services {
        match docker.delete_service(&s.id).await {
            Ok(()) => report.removed.push(s.clone()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                errors.insert(s.clone(), e.to_string());
            }
        }
    }

    // Wait until the services' tasks and containers are gone.
    loop {
        let now = list_objects(docker, stack).await?;
        if now.services.is_empty() && now.tasks.is_empty() && now.containers.is_empty() {
            break;
        }
        // Containers left without a task (stopped leftovers, or containers
        // made outside swarm with the label) are removed here; running ones
        // get until the deadline to stop on their own, then are killed.
        if now.services.is_empty() && now.tasks.is_empty() {
            for c in &now.containers {
                let running = match docker.inspect_container(&c.id, None).await {
                    Ok(i) => i.state.and_then(|s| s.running).unwrap_or(false),
                    Err(e) if status_of(&e) == Some(404) => continue,
                    Err(e) => return Err(docker_err(format!("inspecting container {}", c.name))(e)),
                };
                if running && Instant::now() < deadline {
                    continue;
                }
                let opts = RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                };
                match docker.remove_container(&c.id, Some(opts)).await {
                    Ok(()) => report.removed.push(c.clone()),
                    Err(e) if status_of(&e) == Some(404) => {}
                    Err(e) => {
                        errors.insert(c.clone(), e.to_string());
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        wait_event(&mut events, deadline, |_| true).await;
    }

    let objects = list_objects(docker, stack).await?;
    for n in &objects.networks {
        remove_retrying(docker, n, deadline, &mut events, &mut report, &mut errors).await;
    }
    for v in &objects.volumes {
        remove_retrying(docker, v, deadline, &mut events, &mut report, &mut errors).await;
    }
    for s in &objects.secrets {
        remove_retrying(docker, s, deadline, &mut events, &mut report, &mut errors).await;
    }
    for c in &objects.configs {
        remove_retrying(docker, c, deadline, &mut events, &mut report, &mut errors).await;
    }

    report.left = verify_clean(docker, stack)
        .await?
        .into_iter()
        .map(|o| Leftover {
            reason: errors
                .get(&o)
                .cloned()
                .unwrap_or_else(|| "still present at the deadline".to_string()),
            object: o,
        })
        .collect();
    report.took = start.elapsed();
    Ok(report)
}

type EventStream<'a> =
    futures_util::stream::BoxStream<'a, Result<bollard::models::EventMessage, bollard::errors::Error>>;

/// Waits for the next event `relevant` accepts, the safety poll interval, or
/// the deadline, whichever comes first. A broken event stream degrades to the
/// poll interval.
async fn wait_event(
    events: &mut EventStream<'_>,
    deadline: Instant,
    relevant: impl Fn(&bollard::models::EventMessage) -> bool,
) {
    let wake = deadline.min(Instant::now() + SAFETY_POLL);
    let sleep = tokio::time::sleep_until(wake.into());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) if relevant(&ev) => return,
                Some(Ok(_)) => continue,
                // Stream broken or ended: fall back to the poll interval.
                _ => { (&mut sleep).await; return; }
            },
            _ = &mut sleep => return,
        }
    }
}

/// Removes one network, volume, secret or config; retries "in use" (409)
/// answers on each container event (or the safety poll) until the deadline.
async fn remove_retrying(
    docker: &Docker,
    o: &StackObject,
    deadline: Instant,
    events: &mut EventStream<'_>,
    report: &mut TeardownReport,
    errors: &mut BTreeMap<StackObject, String>,
) {
    loop {
        let res = match o.kind {
            ObjectKind::Network => docker.remove_network(&o.id).await,
            ObjectKind::Volume => docker.remove_volume(&o.id, None::<RemoveVolumeOptions>).await,
            ObjectKind::Secret => docker.delete_secret(&o.id).await,
            ObjectKind::Config => docker.delete_config(&o.id).await,
            _ => return,
        };
        match res {
            Ok(()) => {
                report.removed.push(o.clone());
                errors.remove(o);
                return;
            }
            Err(e) if status_of(&e) == Some(404) => return,
            // 409: volume in use; networks answer 403 or 500 ("has active
            // endpoints") while a container is detaching.
            Err(e) if matches!(status_of(&e), Some(409) | Some(403) | Some(500)) && Instant::now() < deadline => {
                errors.insert(o.clone(), e.to_string());
                wait_event(events, deadline, |_| true).await;
            }
            Err(e) => {
                errors.insert(o.clone(), e.to_string());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_abras() {
        assert_eq!(stack_name("blog.example.com"), "blog_example_com");
        assert_eq!(stack_name("my-app.ci.test"), "my-app_ci_test");
    }

    #[test]
    fn prefix_fallback_never_takes_another_stacks_objects() {
        let other = HashMap::from([(NAMESPACE_LABEL.to_string(), "a_b_c".to_string())]);
        let ours = HashMap::from([(NAMESPACE_LABEL.to_string(), "a_b".to_string())]);
        assert!(!belongs("a_b", "a_b_c_data", Some(&other)), "labelled for a_b_c");
        assert!(belongs("a_b", "a_b_data", Some(&ours)));
        assert!(belongs("a_b", "a_b_data", None), "unlabelled, prefix matches");
        assert!(
            belongs("a_b", "a_b_c_data", None),
            "unlabelled: only the prefix can decide"
        );
        assert!(!belongs("a_b", "a_bc_data", None));
        assert!(!belongs("a_b", "proxy", None));
        assert!(belongs("a_b", "anything", Some(&ours)), "the label wins over the name");
    }
}
