//! The compose override cc-ci's native deployer writes and passes last to
//! `docker stack deploy`: what abra changes in the loaded compose config
//! before it deploys (`docs/abra.md`, "Deploying", steps 9-10, and "Labels
//! and environment abra adds"), plus the
//! environment adaptation for kernels without IPVS ([`crate::deploy::ipvs`]).
//!
//! - the labels abra adds to the service named `app` only ([D S6] for the
//!   shape `coop-cloud.${STACK_NAME}.<label>`, [I-obs]/[I-src] for the set):
//!   `recipe`, `chaos`, `chaos-version` (chaos deploys only) and `version`
//!   (release deploys; under chaos the recipe's own version label is kept);
//!   abra's `autoupdate` label is left out (whether deploy still sets it is
//!   unknown, docs/abra.md, "Labels and environment abra adds");
//! - abra's `ExposeAllEnv`: every app env variable the `app` service does
//!   not set itself is added to its `environment`;
//! - `deploy.endpoint_mode: dnsrr` for services without published ports,
//!   when virtual IPs do not route here (never for a service that sets its
//!   own endpoint mode);
//! - cc-ci's own deploy labels on every service, when the deployer has any
//!   (the owning state dir, [`crate::state::owner`], for the janitor).
//! - `deploy.resources` of a test app's services: the caps of
//!   [`super::limits`], so that one recipe under test cannot starve the runs
//!   beside it (set by the native deployer after [`compute`]).
//!
//! docker/cli merges an override's labels and environment into the earlier
//! files' maps by key, and its `deploy.endpoint_mode` over theirs. Every `$`
//! of a value is doubled, so the stack deploy's interpolation gives the
//! value back as it is. The file holds no relative paths, so it can live
//! outside the recipe checkout (docker/cli resolves relative paths against
//! the first compose file's folder).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::recipe::compose::ComposeSet;
use crate::recipe::interpolate::escape;

/// The service abra puts its labels on.
pub const APP_SERVICE: &str = "app";

/// The label key `coop-cloud.<stack>.<name>` (abra's `GetLabel` shape).
pub fn label(stack: &str, name: &str) -> String {
    format!("coop-cloud.{stack}.{name}")
}

/// What one deploy changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// Labels for the `app` service's `deploy.labels`.
    pub app_labels: BTreeMap<String, String>,
    /// Env for the `app` service's `environment` (only keys it does not set).
    pub app_env: BTreeMap<String, String>,
    /// Services switched to `endpoint_mode: dnsrr`.
    pub dnsrr: Vec<String>,
    /// Every service of the compose set, by name.
    pub services: Vec<String>,
    /// Deploy labels for every service (cc-ci's own, e.g. the owner's);
    /// empty unless the caller sets them.
    pub all_labels: BTreeMap<String, String>,
    /// Resource limits by service (empty: none written).
    pub limits: BTreeMap<String, super::limits::ServiceLimits>,
}

/// Which version a deploy puts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A release tag (`abra app deploy <app> <tag>`).
    Release(String),
    /// The checked-out commit under `--chaos`: the short SHA abra labels it
    /// with (`+U` when the tree had unstaged changes).
    Chaos(String),
}

/// The overrides for deploying `compose` as `stack` of `recipe` at
/// `version`, with the app env `env`; `dnsrr` when virtual IPs do not route.
pub fn compute(
    compose: &ComposeSet,
    stack: &str,
    recipe: &str,
    version: &Version,
    env: &BTreeMap<String, String>,
    dnsrr: bool,
) -> Overrides {
    let mut app_labels = BTreeMap::new();
    let mut app_env = BTreeMap::new();
    if let Some(app) = compose.services.get(APP_SERVICE) {
        app_labels.insert(label(stack, "recipe"), recipe.to_string());
        match version {
            Version::Release(tag) => {
                app_labels.insert(label(stack, "chaos"), "false".into());
                app_labels.insert(label(stack, "version"), tag.clone());
            }
            Version::Chaos(sha) => {
                app_labels.insert(label(stack, "chaos"), "true".into());
                app_labels.insert(label(stack, "chaos-version"), sha.clone());
            }
        }
        for (k, v) in env {
            if !app.environment.contains(k) {
                app_env.insert(k.clone(), v.clone());
            }
        }
    }
    let dnsrr = if dnsrr {
        compose
            .services
            .values()
            .filter(|s| !s.publishes_ports && s.endpoint_mode.is_none())
            .map(|s| s.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    Overrides {
        app_labels,
        app_env,
        dnsrr,
        services: compose.services.keys().cloned().collect(),
        all_labels: BTreeMap::new(),
        limits: BTreeMap::new(),
    }
}

/// A YAML double-quoted scalar (JSON string syntax, which YAML accepts).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl Overrides {
    /// The override file's text (`version: "3.8"`, as docker/cli 20.10
    /// needs a version in every file); `who` goes in its header comment.
    pub fn render(&self, who: &str) -> String {
        let mut y = format!(
            "# Written by cc-ci's native deployer for {who}: what abra adds at deploy time\n\
             # (labels and env on `app`) and environment adaptations. Not part of the recipe.\n\
             version: \"3.8\"\nservices:\n"
        );
        let mut services: BTreeMap<&str, String> = BTreeMap::new();
        if !self.app_labels.is_empty() || !self.app_env.is_empty() {
            let mut s = String::new();
            if !self.app_env.is_empty() {
                s.push_str("    environment:\n");
                for (k, v) in &self.app_env {
                    let _ = writeln!(s, "      {}: {}", q(k), q(&escape(v)));
                }
            }
            services.insert(APP_SERVICE, s);
        }
        for name in &self.dnsrr {
            services.entry(name).or_default();
        }
        if !self.all_labels.is_empty() {
            for name in &self.services {
                services.entry(name).or_default();
            }
        }
        for name in self.limits.keys() {
            services.entry(name).or_default();
        }
        for (name, body) in services {
            let _ = writeln!(y, "  {}:", q(name));
            y.push_str(&body);
            let mut labels: BTreeMap<&String, &String> = self.all_labels.iter().collect();
            if name == APP_SERVICE {
                labels.extend(self.app_labels.iter());
            }
            let dnsrr = self.dnsrr.iter().any(|d| d == name);
            let limits = self.limits.get(name);
            if !labels.is_empty() || dnsrr || limits.is_some() {
                y.push_str("    deploy:\n");
                if dnsrr {
                    y.push_str("      endpoint_mode: dnsrr\n");
                }
                if let Some(l) = limits {
                    y.push_str(&l.render("      "));
                }
                if !labels.is_empty() {
                    y.push_str("      labels:\n");
                    for (k, v) in labels {
                        let _ = writeln!(y, "        {}: {}", q(k), q(&escape(v)));
                    }
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::YamlLoader;

    fn compose() -> ComposeSet {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("compose.yml"),
            "services:\n  app:\n    image: a\n    environment: [DB_HOST=db]\n  db:\n    image: b\n  \
             proxy:\n    image: c\n    ports: [\"80:80\"]\n  cache:\n    image: d\n    deploy: {endpoint_mode: vip}\n",
        )
        .unwrap();
        crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap()
    }

    #[test]
    fn labels_env_and_dnsrr_as_abra_and_the_kernel_need() {
        let env = BTreeMap::from([
            ("DB_HOST".to_string(), "ignored".to_string()),
            ("DOMAIN".to_string(), "a.ci.test".to_string()),
            ("PRICE".to_string(), "5$ #x".to_string()),
        ]);
        let o = compute(
            &compose(),
            "a_ci_test",
            "r",
            &Version::Chaos("0123abcd".into()),
            &env,
            true,
        );
        assert_eq!(o.app_labels["coop-cloud.a_ci_test.chaos"], "true");
        assert_eq!(o.app_labels["coop-cloud.a_ci_test.chaos-version"], "0123abcd");
        assert!(
            !o.app_labels.contains_key("coop-cloud.a_ci_test.version"),
            "chaos keeps the recipe's"
        );
        assert!(!o.app_env.contains_key("DB_HOST"), "the service's own value wins");
        assert_eq!(o.dnsrr, ["app", "db"], "not published, not explicit");
        let y = o.render("a.ci.test");
        let doc = &YamlLoader::load_from_str(&y).unwrap()[0];
        assert_eq!(doc["services"]["app"]["environment"]["PRICE"].as_str(), Some("5$$ #x"));
        assert_eq!(doc["services"]["db"]["deploy"]["endpoint_mode"].as_str(), Some("dnsrr"));
        assert_eq!(
            doc["services"]["app"]["deploy"]["labels"]["coop-cloud.a_ci_test.recipe"].as_str(),
            Some("r")
        );
        let r = compute(
            &compose(),
            "a_ci_test",
            "r",
            &Version::Release("1.0.0+1".into()),
            &env,
            false,
        );
        assert_eq!(r.app_labels["coop-cloud.a_ci_test.version"], "1.0.0+1");
        assert_eq!(r.app_labels["coop-cloud.a_ci_test.chaos"], "false");
        assert!(r.dnsrr.is_empty());
        assert!(!r.render("a.ci.test").contains("resources"), "no limits unless set");
    }

    #[test]
    fn resource_limits_on_every_service() {
        let c = compose();
        let mut o = compute(
            &c,
            "a_ci_test",
            "r",
            &Version::Release("1".into()),
            &BTreeMap::new(),
            true,
        );
        o.limits = crate::deploy::limits::per_service(&c, &BTreeMap::new(), &Default::default());
        let y = o.render("a.ci.test");
        let doc = &YamlLoader::load_from_str(&y).unwrap()[0];
        for s in ["app", "db", "proxy", "cache"] {
            let l = &doc["services"][s]["deploy"]["resources"]["limits"];
            assert_eq!(
                (l["cpus"].as_str(), l["memory"].as_str()),
                (Some("1"), Some("1073741824")),
                "{s}: {y}"
            );
        }
        assert_eq!(doc["services"]["db"]["deploy"]["endpoint_mode"].as_str(), Some("dnsrr"));
        assert_eq!(
            doc["services"]["app"]["deploy"]["labels"]["coop-cloud.a_ci_test.recipe"].as_str(),
            Some("r"),
            "one deploy: block per service"
        );
    }

    #[test]
    fn cc_cis_own_labels_go_on_every_service() {
        let mut o = compute(
            &compose(),
            "a_ci_test",
            "r",
            &Version::Release("1.0.0+1".into()),
            &BTreeMap::new(),
            false,
        );
        let y = o.render("a.ci.test");
        assert!(!y.contains("db"), "nothing for db without labels: {y}");
        o.all_labels.insert("cc-ci.owner".into(), "0123456789abcdef".into());
        let doc = &YamlLoader::load_from_str(&o.render("a.ci.test")).unwrap()[0];
        for s in ["app", "db", "proxy", "cache"] {
            assert_eq!(
                doc["services"][s]["deploy"]["labels"]["cc-ci.owner"].as_str(),
                Some("0123456789abcdef"),
                "{s}"
            );
        }
        assert_eq!(
            doc["services"]["app"]["deploy"]["labels"]["coop-cloud.a_ci_test.version"].as_str(),
            Some("1.0.0+1"),
            "abra's labels stay on app"
        );
    }
}
