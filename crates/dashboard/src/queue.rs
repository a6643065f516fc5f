//! The queue: Buildbot's running builds and waiting build requests, read
//! from its REST API (`GET /api/v2/builders`, `GET
//! /api/v2/builds?complete=false`, `GET /api/v2/buildrequests?claimed=false`;
//! Buildbot's data API, fields as documented for Buildbot 4). Anonymous
//! reads; a master that refuses them makes the page say so.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A running build.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// The build's number on its builder.
    pub number: u64,
    /// The builder's name.
    pub builder: String,
    /// When it started, UTC.
    pub started_at: String,
    /// Buildbot's state string ("building", the current step).
    pub state: String,
}

/// A build request no worker has claimed yet.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    /// The request's id.
    pub id: u64,
    /// The builder's name.
    pub builder: String,
    /// When it was submitted, UTC.
    pub submitted_at: String,
}

/// The queue at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    /// Builds running.
    pub running: Vec<Running>,
    /// Requests waiting.
    pub waiting: Vec<Waiting>,
    /// The API it was read from.
    pub source: String,
}

#[derive(Deserialize)]
struct Builders {
    builders: Vec<Builder>,
}
#[derive(Deserialize)]
struct Builder {
    builderid: u64,
    name: String,
}
#[derive(Deserialize)]
struct Builds {
    builds: Vec<Build>,
}
#[derive(Deserialize)]
struct Build {
    number: u64,
    builderid: u64,
    started_at: Option<i64>,
    #[serde(default)]
    state_string: String,
}
#[derive(Deserialize)]
struct Requests {
    buildrequests: Vec<Request>,
}
#[derive(Deserialize)]
struct Request {
    buildrequestid: u64,
    builderid: u64,
    submitted_at: Option<i64>,
}

fn utc(epoch: Option<i64>) -> String {
    epoch
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Reads the queue from Buildbot at `base` (`http://127.0.0.1:8010`).
///
/// # Errors
/// A one-line reason naming the URL: unreachable, an HTTP error, or an
/// answer of another shape.
pub async fn read(client: &reqwest::Client, base: &str) -> Result<Queue, String> {
    async fn get<T: for<'de> Deserialize<'de>>(client: &reqwest::Client, url: String) -> Result<T, String> {
        let resp = client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("Buildbot at {url} did not answer: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("Buildbot at {url} answered {status}"));
        }
        resp.json::<T>()
            .await
            .map_err(|e| format!("Buildbot at {url} answered something else than expected: {e}"))
    }
    let builders: Builders = get(client, format!("{base}/api/v2/builders")).await?;
    let names: HashMap<u64, String> = builders.builders.into_iter().map(|b| (b.builderid, b.name)).collect();
    let name = |id: u64| names.get(&id).cloned().unwrap_or_else(|| format!("builder {id}"));
    let builds: Builds = get(client, format!("{base}/api/v2/builds?complete=false")).await?;
    let requests: Requests = get(client, format!("{base}/api/v2/buildrequests?claimed=false")).await?;
    Ok(Queue {
        running: builds
            .builds
            .into_iter()
            .map(|b| Running {
                number: b.number,
                builder: name(b.builderid),
                started_at: utc(b.started_at),
                state: b.state_string,
            })
            .collect(),
        waiting: requests
            .buildrequests
            .into_iter()
            .map(|r| Waiting {
                id: r.buildrequestid,
                builder: name(r.builderid),
                submitted_at: utc(r.submitted_at),
            })
            .collect(),
        source: format!("{base}/api/v2/"),
    })
}
