//! What changed between a run and the last green run of the same recipe
//! before it (verdict success): rungs whose status flipped, the versions
//! tested and upgraded from, the tested commit, the services' images, the
//! deployer and the settings in force (key by key, as results.json recorded them, secrets
//! already masked there).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use cc_ci_results::verdict::State;
use cc_ci_results::RunResults;

use crate::catalog::{Recipe, Run};

/// One thing that differs: what, then and now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What (`rung upgrade`, `tested_version`, `settings.env.FOO`).
    pub what: String,
    /// In the green run.
    pub then: String,
    /// In this run.
    pub now: String,
}

/// A run against the last green run before it.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The green run's id.
    pub green_run: String,
    /// When it started.
    pub green_started_at: String,
    /// Rungs whose status differs, in ladder order.
    pub rungs: Vec<Change>,
    /// Versions, commit, images, deployer.
    pub versions: Vec<Change>,
    /// Settings keys that differ.
    pub settings: Vec<Change>,
}

/// The last run before `run` (older, in the recipe's order) whose verdict
/// was success, if any.
pub fn last_green_before<'a>(recipe: &'a Recipe, run: &Run) -> Option<&'a Run> {
    recipe
        .runs
        .iter()
        .skip_while(|r| r.id != run.id)
        .skip(1)
        .find(|r| r.results.as_ref().is_some_and(|x| x.verdict().state == State::Success))
        .map(|r| r.as_ref())
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn changes(then: &Value, now: &Value, prefix: &str) -> Vec<Change> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(prefix, then, &mut a);
    flatten(prefix, now, &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let absent = || "(absent)".to_string();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            what: k.clone(),
            then: a.get(k).cloned().unwrap_or_else(absent),
            now: b.get(k).cloned().unwrap_or_else(absent),
        })
        .collect()
}

/// `now` against `green`.
pub fn diff(green_id: &str, green: &RunResults, now: &RunResults) -> Diff {
    let mut rungs = Vec::new();
    for r in cc_ci_results::level::Rung::ALL {
        let status = |x: &RunResults| {
            x.rungs
                .iter()
                .find(|y| y.rung == r)
                .map_or("(not run)", |y| y.status.word())
                .to_string()
        };
        let (a, b) = (status(green), status(now));
        if a != b {
            rungs.push(Change {
                what: format!("{} {}", r.level(), r.word()),
                then: a,
                now: b,
            });
        }
    }
    let opt = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
    let mut versions = Vec::new();
    for (what, a, b) in [
        ("tested_version", opt(&green.tested_version), opt(&now.tested_version)),
        ("base_version", opt(&green.base_version), opt(&now.base_version)),
        ("tested_ref", green.tested_ref.clone(), now.tested_ref.clone()),
    ] {
        if a != b {
            versions.push(Change {
                what: what.into(),
                then: a,
                now: b,
            });
        }
    }
    let null = Value::Null;
    versions.extend(changes(
        &serde_json::to_value(&green.images).unwrap_or(Value::Null),
        &serde_json::to_value(&now.images).unwrap_or(Value::Null),
        "images",
    ));
    versions.extend(changes(
        green.deployer.as_ref().unwrap_or(&null),
        now.deployer.as_ref().unwrap_or(&null),
        "deployer",
    ));
    Diff {
        green_run: green_id.to_string(),
        green_started_at: green.started_at.clone(),
        rungs,
        versions,
        settings: changes(&green.settings, &now.settings, "settings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_ci_results::level::{Rung, Status};
    use cc_ci_results::RungResult;

    fn run(upgrade: Status, version: &str, env: &str) -> RunResults {
        let image = format!("nginx:{version}");
        let rung = |rung, status| RungResult {
            rung,
            status,
            reason: None,
            duration_s: 1.0,
            log: None,
            attempts: 1,
        };
        let mut r = RunResults {
            recipe: "r".into(),
            tested_ref: "a".repeat(40),
            tested_version: Some(version.into()),
            rungs: vec![
                rung(Rung::Install, Status::Pass),
                rung(Rung::Serve, Status::Pass),
                rung(Rung::Upgrade, upgrade),
            ],
            settings: serde_json::json!({"env": {"FOO": env}, "min_level": null}),
            images: [
                ("app".to_string(), image),
                ("db".to_string(), "postgres:15".to_string()),
            ]
            .into(),
            ..RunResults::empty()
        };
        r.finish();
        r
    }

    #[test]
    fn flipped_rungs_versions_and_settings_keys_are_listed_and_equal_ones_are_not() {
        let green = run(Status::Pass, "1.0.0", "a");
        let now = run(Status::Fail, "1.1.0", "b");
        let d = diff("abc123", &green, &now);
        assert_eq!(
            d.rungs,
            vec![Change {
                what: "3 upgrade".into(),
                then: "pass".into(),
                now: "fail".into()
            }]
        );
        assert_eq!(d.versions.len(), 2, "{:?}", d.versions);
        assert_eq!(d.versions[0].what, "tested_version");
        assert_eq!(
            d.versions[1],
            Change {
                what: "images.app".into(),
                then: "\"nginx:1.0.0\"".into(),
                now: "\"nginx:1.1.0\"".into()
            },
            "the image that changed, not the one that did not"
        );
        assert_eq!(d.settings.len(), 1, "{:?}", d.settings);
        assert_eq!(d.settings[0].what, "settings.env.FOO");
        let same = diff("abc123", &green, &green);
        assert!(same.rungs.is_empty() && same.versions.is_empty() && same.settings.is_empty());
    }
}
