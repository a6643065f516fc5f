//! The last log lines of a stack's services, taken when a rung that uses the
//! app fails, before teardown removes them: what a maintainer reads first
//! (results.json `service_logs`, the PR comment, `service-logs.txt`).
//!
//! Read through the Engine API's `GET /services/{id}/logs` (stdout and
//! stderr, `tail=N`), which swarm serves for every task of the service.

use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use crate::deploy::stack::StackError;
use crate::results::ServiceLog;

/// How long reading one service's logs may take before what arrived is kept.
pub const READ_BUDGET: Duration = Duration::from_secs(10);

/// The last `lines` lines (at most) of each service of `stack`, services in
/// name order, lines oldest first, each cut to 500 characters. A service
/// whose logs cannot be read gets one line saying why.
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
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = docker.service_logs(&id, Some(opts));
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
        let mut got: Vec<String> = text.lines().map(|l| l.chars().take(500).collect::<String>()).collect();
        match read {
            Ok(Ok(())) => {}
            Ok(Err(e)) => got.push(format!("(cc-ci: the logs could not be read: {e})")),
            Err(_) => got.push(format!(
                "(cc-ci: reading the logs took over {} s; this is what arrived)",
                READ_BUDGET.as_secs()
            )),
        }
        let keep = got.len().saturating_sub(lines);
        out.push(ServiceLog {
            service: name,
            lines: got.split_off(keep),
        });
    }
    Ok(out)
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
