//! The last log lines of a stack's services, taken when a rung that uses the
//! app fails, before teardown removes them: what a maintainer reads first
//! (results.json `service_logs`, the PR comment, `service-logs.txt`).
//!
//! Read task by task through the Engine API (`GET
//! /tasks?filters={"service":[id]}`, then `GET /tasks/{id}/logs` with
//! stdout, stderr, `tail=N` and `timestamps=1`: each line starts with the
//! engine's RFC 3339 time in nanoseconds). The lines of all of a service's
//! tasks (after an upgrade: the old task's and the new one's; a crash
//! loop's earlier tries) are merged by time, oldest first, and each is
//! marked with its task (slot, short id, image, and whether it is still
//! running), so the last lines are the newest. (`GET
//! /services/{id}/logs?details=1` would name the task on each line too,
//! but bollard's options do not carry `details`.)
//!
//! Beside them: Traefik's own lines that name the app's stack (its routers
//! are `<stack>...@swarm`, and its access log names the router), from the
//! service that publishes port 443.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::TaskState;
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, LogsOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

use crate::deploy::stack::StackError;
use crate::results::ServiceLog;

/// How long reading one service's logs may take before what arrived is kept.
pub const READ_BUDGET: Duration = Duration::from_secs(10);

/// How many of Traefik's last lines are searched for the app's stack.
pub const TRAEFIK_LINES_SEARCHED: usize = 2000;

/// One raw log line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// When the engine received it (RFC 3339 with nanoseconds; sorts as text).
    pub at: String,
    /// The task that wrote it, when the details say.
    pub task: Option<String>,
    /// The message.
    pub text: String,
}

/// Splits a line of `GET /services/{id}/logs?timestamps=1&details=1`; a
/// line without the prefix keeps all of it as its message.
pub fn parse_line(line: &str) -> RawLine {
    let (at, rest) = match line.split_once(' ') {
        Some((t, rest)) if t.len() >= 20 && t.as_bytes()[4] == b'-' && t.contains('T') => (t.to_string(), rest),
        _ => (String::new(), line),
    };
    let (task, text) = match rest.split_once(' ') {
        Some((details, text)) if details.starts_with("com.docker.swarm.") => {
            let task = details
                .split(',')
                .find_map(|kv| kv.strip_prefix("com.docker.swarm.task.id="))
                .map(str::to_string);
            (task, text)
        }
        _ if rest.starts_with("com.docker.swarm.") && !rest.contains(' ') => (None, ""),
        _ => (None, rest),
    };
    RawLine {
        at,
        task,
        text: text.to_string(),
    }
}

/// How a task is marked on its lines: `app.1 3f9a2c ccci/nginx:1.22.1, running`.
fn task_mark(service: &str, t: &bollard::models::Task) -> String {
    let short = |s: &str| s.rsplit('_').next().unwrap_or(s).to_string();
    let slot = t.slot.map(|n| format!(".{n}")).unwrap_or_default();
    let id: String = t.id.as_deref().unwrap_or("").chars().take(6).collect();
    let image = t
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.image.as_deref())
        .map(|i| i.split('@').next().unwrap_or(i).to_string())
        .unwrap_or_default();
    let state = match (
        t.desired_state.as_ref(),
        t.status.as_ref().and_then(|s| s.state.as_ref()),
    ) {
        (Some(TaskState::RUNNING), Some(TaskState::RUNNING)) => "running".to_string(),
        (_, Some(s)) => s.to_string(),
        _ => "?".into(),
    };
    format!("{}{slot} {id} {image}, {state}", short(service))
}

fn options(lines: usize) -> bollard::query_parameters::LogsOptions {
    LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .tail(&lines.to_string())
        .build()
}

/// Reads a log stream into raw lines, and what went wrong if anything.
async fn read<S>(mut stream: S) -> (Vec<RawLine>, Option<String>)
where
    S: futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Unpin,
{
    let mut text = String::new();
    let read = tokio::time::timeout(READ_BUDGET, async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => text.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    })
    .await;
    let got = text.lines().map(parse_line).collect();
    let problem = match read {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("(cc-ci: the logs could not be read: {e})")),
        Err(_) => Some(format!(
            "(cc-ci: reading the logs took over {} s; this is what arrived)",
            READ_BUDGET.as_secs()
        )),
    };
    (got, problem)
}

/// Merges raw lines by time (a stable sort: one task's order is kept) and
/// keeps the last `lines`, each `<time> [<task mark>] <message>` cut to 500
/// characters.
pub fn merge(mut raw: Vec<RawLine>, marks: &HashMap<String, String>, lines: usize) -> Vec<String> {
    raw.sort_by(|a, b| a.at.cmp(&b.at));
    let keep = raw.len().saturating_sub(lines);
    raw.split_off(keep)
        .into_iter()
        .map(|l| {
            let at = l.at.get(..19).map(|t| format!("{}Z ", t)).unwrap_or_default();
            let mark = l
                .task
                .as_ref()
                .map(|t| {
                    format!(
                        "[{}] ",
                        marks.get(t).cloned().unwrap_or_else(|| t.chars().take(6).collect())
                    )
                })
                .unwrap_or_default();
            format!("{at}{mark}{}", l.text).chars().take(500).collect()
        })
        .collect()
}

/// The last `lines` lines (at most) of each service of `stack`, services in
/// name order, each service's tasks merged by time (oldest first) and
/// marked, then Traefik's last `lines` lines that name the stack (marked
/// [`ServiceLog::proxy`]), when the service publishing port 443 has any. A
/// service whose logs cannot be read gets one line saying why.
///
/// # Errors
/// [`StackError::Docker`] when the stack's services cannot be listed.
pub async fn tail(docker: &Docker, stack: &str, lines: usize) -> Result<Vec<ServiceLog>, StackError> {
    let mut services: Vec<(String, String)> = crate::deploy::stack::services_of(docker, stack)
        .await?
        .into_iter()
        .map(|s| {
            let name = s.spec.and_then(|sp| sp.name).unwrap_or_default();
            (name, s.id.unwrap_or_default())
        })
        .collect();
    services.sort();
    let mut out = Vec::new();
    for (name, id) in services {
        let tasks = docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
            }))
            .await
            .unwrap_or_default();
        let mut marks = HashMap::new();
        let mut raw = Vec::new();
        let mut problems = Vec::new();
        // The filter matches id prefixes too: exactly this service's tasks.
        for t in tasks.iter().filter(|t| t.service_id.as_deref() == Some(id.as_str())) {
            let Some(task) = t.id.clone() else { continue };
            marks.insert(task.clone(), task_mark(&name, t));
            let (got, problem) = read(Box::pin(docker.task_logs(&task, Some(options(lines))))).await;
            raw.extend(got.into_iter().map(|l| RawLine {
                task: Some(task.clone()),
                ..l
            }));
            problems.extend(problem);
        }
        let mut got = merge(raw, &marks, lines);
        got.extend(problems);
        out.push(ServiceLog {
            service: name,
            lines: got,
            proxy: false,
        });
    }
    if let Some(traefik) = traefik_lines(docker, stack, lines).await {
        out.push(traefik);
    }
    Ok(out)
}

/// Traefik's last `lines` lines that name `stack`, from the service that
/// publishes port 443 (None: no such service, or no such line).
async fn traefik_lines(docker: &Docker, stack: &str, lines: usize) -> Option<ServiceLog> {
    let services = docker.list_services(None::<ListServicesOptions>).await.ok()?;
    let svc = services.into_iter().find(|s| {
        s.endpoint
            .as_ref()
            .and_then(|e| e.ports.as_ref())
            .is_some_and(|ports| ports.iter().any(|p| p.published_port == Some(443)))
    })?;
    let name = svc.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
    if name.starts_with(&format!("{stack}_")) {
        return None;
    }
    let (raw, _) = read(Box::pin(
        docker.service_logs(svc.id.as_deref()?, Some(options(TRAEFIK_LINES_SEARCHED))),
    ))
    .await;
    let about: Vec<RawLine> = raw
        .into_iter()
        .filter(|l| l.text.contains(stack))
        .map(|l| RawLine { task: None, ..l })
        .collect();
    if about.is_empty() {
        return None;
    }
    Some(ServiceLog {
        service: format!("{name} (Traefik, lines naming {stack})"),
        lines: merge(about, &HashMap::new(), lines),
        proxy: true,
    })
}

/// The logs as one text file: a `== <service>` header, then its lines.
pub fn render(logs: &[ServiceLog]) -> String {
    let mut s = String::new();
    for l in logs {
        s.push_str(&format!("== {}\n", l.service));
        for line in &l.lines {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_two_tasks_are_merged_by_time_and_marked() {
        let raw = "2026-12-07T15:44:44.000000002Z com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id=new111 listening\n\
                   2026-12-07T15:44:40.000000001Z com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id=old222 healthcheck 200\n\
                   2026-12-07T15:44:45.000000000Z com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id=new111 [emerg] unknown directive\n\
                   not a docker line";
        let lines: Vec<RawLine> = raw.lines().map(parse_line).collect();
        assert_eq!(lines[0].task.as_deref(), Some("new111"));
        assert_eq!(lines[0].text, "listening");
        assert_eq!(
            lines[3],
            RawLine {
                at: String::new(),
                task: None,
                text: "not a docker line".into()
            }
        );
        let marks = HashMap::from([
            (
                "new111".to_string(),
                "app.1 new111 ccci/nginx:1.22.1, running".to_string(),
            ),
            (
                "old222".to_string(),
                "app.1 old222 ccci/nginx:1.20.0, shutdown".to_string(),
            ),
        ]);
        let merged = merge(lines[..3].to_vec(), &marks, 2);
        assert_eq!(
            merged,
            [
                "2026-12-07T15:44:44Z [app.1 new111 ccci/nginx:1.22.1, running] listening",
                "2026-12-07T15:44:45Z [app.1 new111 ccci/nginx:1.22.1, running] [emerg] unknown directive",
            ],
            "the newest last, the oldest cut"
        );
    }
}
