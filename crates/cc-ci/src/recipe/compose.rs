//! A recipe's compose files, read as far as cc-ci needs them: services
//! (image, labels, healthcheck, named volumes, environment keys, published
//! ports, secrets and configs they use) and the top-level `secrets:` and
//! `configs:` with their raw `name:` templates.
//!
//! Values are kept as written (`${STACK_NAME}` not expanded): the deployer
//! interpolates with the app env ([`super::interpolate`]) where it needs a
//! value, and `docker stack deploy` does the real interpolation. Overlays
//! merge by service name in `COMPOSE_FILE` order, as docker/cli's loader
//! does for the fields read here (scalars: last wins; maps: union, last
//! wins per key; lists of secrets/configs/ports: union).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// A compose file that does not parse, or is not a compose file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {detail}; fix the compose file (it must be YAML with a `services:` mapping)")]
pub struct ComposeError {
    /// The compose file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// What is wrong.
    pub detail: String,
}

/// One service of the recipe's compose files (overlays merged by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    /// Service name (the key under `services:`).
    pub name: String,
    /// `image:` as written (env variables not expanded).
    pub image: Option<String>,
    /// Labels from `deploy.labels` and `labels` (map or `k=v` list form).
    pub labels: BTreeMap<String, String>,
    /// Only the `deploy.labels` (swarm service labels: where abra's
    /// `coop-cloud.${STACK_NAME}.*` and backupbot labels live).
    pub deploy_labels: BTreeMap<String, String>,
    /// Whether the service has a healthcheck enabled: one declared, not
    /// `disable: true` and not `test: ["NONE"]` (the last compose file
    /// that mentions one decides).
    pub healthcheck: bool,
    /// Whether any compose file mentions `healthcheck:` for it.
    pub healthcheck_declared: bool,
    /// Named volumes it mounts (short `name:/path` or long `source:` form),
    /// with their mount paths.
    pub volumes: BTreeMap<String, String>,
    /// Keys its `environment:` sets (list `K=V`/`K` or map form).
    pub environment: BTreeSet<String>,
    /// True when it has any `ports:` entry (published ports).
    pub publishes_ports: bool,
    /// True when every published port is in `mode: host` (no ingress).
    pub host_mode_ports_only: bool,
    /// Secrets it uses (the top-level ids; short or long `source:` form).
    pub secrets: BTreeSet<String>,
    /// Configs it uses (the top-level ids).
    pub configs: BTreeSet<String>,
    /// `deploy.endpoint_mode`, if set.
    pub endpoint_mode: Option<String>,
    /// `deploy.resources.limits`, as written.
    pub limits: Resources,
    /// `deploy.resources.reservations`, as written.
    pub reservations: Resources,
}

/// `cpus` and `memory` of a service's `deploy.resources.limits` or
/// `.reservations`, as written (e.g. `"0.5"`, `512M`; env variables not
/// expanded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpus:`, a decimal number of CPUs.
    pub cpus: Option<String>,
    /// `memory:`, bytes with an optional unit (`512M`, `1g`).
    pub memory: Option<String>,
}

/// A top-level `secrets:` or `configs:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// `name:` as written, e.g. `${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}`.
    pub name: Option<String>,
    /// `external: true`.
    pub external: bool,
    /// `file:` (relative to the first compose file's folder).
    pub file: Option<String>,
    /// `template_driver:` (`golang` renders the file in the container).
    pub template_driver: Option<String>,
}

/// One compose file, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFile {
    /// The file.
    pub path: PathBuf,
    /// Top-level `version:` as written.
    pub version: Option<String>,
    /// Services in file order.
    pub services: Vec<Service>,
    /// Top-level secrets by id.
    pub secrets: BTreeMap<String, TopLevel>,
    /// Top-level configs by id.
    pub configs: BTreeMap<String, TopLevel>,
}

/// Compose files merged in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeSet {
    /// The files, in order.
    pub files: Vec<ComposeFile>,
    /// Services merged by name.
    pub services: BTreeMap<String, Service>,
    /// Top-level secrets merged by id.
    pub secrets: BTreeMap<String, TopLevel>,
    /// Top-level configs merged by id.
    pub configs: BTreeMap<String, TopLevel>,
}

impl ComposeSet {
    /// The path of compose file `name` (as `COMPOSE_FILE` names it) in the
    /// recipe folder `dir`. abra joins the name onto the folder: one that is
    /// absolute, climbs out with `..`, or leads out through a symlink (the
    /// file's or a folder's on the way) would be read outside the recipe,
    /// and is refused before anything of it is read. A name that does not
    /// exist is left to the reader to report.
    ///
    /// # Errors
    /// [`ComposeError`] naming the recipe folder (`file`) and the name.
    pub fn confined(dir: &Path, name: &str) -> Result<PathBuf, ComposeError> {
        let outside = |how: &str| ComposeError {
            file: dir.to_path_buf(),
            line: 0,
            detail: format!(
                "COMPOSE_FILE names {name:?}, {how} outside the recipe folder; name files inside it \
                 (relative, no `..`, no symlink leading out) in .env.sample"
            ),
        };
        let p = Path::new(name);
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(outside("which is"));
        }
        let path = dir.join(p);
        if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
            if !real.starts_with(&root) {
                return Err(outside("a symlink that leads"));
            }
        }
        Ok(path)
    }

    /// `files` merged in order (the first is the base, each later one an
    /// overlay), as docker/cli's loader merges the fields read here.
    pub fn merged(files: Vec<ComposeFile>) -> ComposeSet {
        let mut set = ComposeSet::default();
        for c in files {
            for s in &c.services {
                merge(
                    set.services.entry(s.name.clone()).or_insert_with(|| Service {
                        name: s.name.clone(),
                        host_mode_ports_only: true,
                        ..Default::default()
                    }),
                    s.clone(),
                );
            }
            for (k, v) in &c.secrets {
                merge_top(set.secrets.entry(k.clone()).or_default(), v);
            }
            for (k, v) in &c.configs {
                merge_top(set.configs.entry(k.clone()).or_default(), v);
            }
            set.files.push(c);
        }
        set
    }

    /// Secret ids some service uses (abra generates only these).
    pub fn used_secrets(&self) -> BTreeSet<String> {
        self.services.values().flat_map(|s| s.secrets.iter().cloned()).collect()
    }
}

impl ComposeFile {
    /// Reads one compose file; `needs_services` makes a missing `services:`
    /// mapping an error.
    ///
    /// # Errors
    /// [`ComposeError`] naming the file and line.
    pub fn read(path: &Path, needs_services: bool) -> Result<ComposeFile, ComposeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ComposeError {
            file: path.to_path_buf(),
            line: 0,
            detail: format!("cannot read: {e}"),
        })?;
        ComposeFile::from_doc(path, &parse_doc(path, &text)?, needs_services)
    }

    /// The compose file `path` whose YAML document ([`parse_doc`]) is `doc`;
    /// `needs_services` makes a missing `services:` mapping an error.
    ///
    /// # Errors
    /// [`ComposeError`] naming the file: `doc` is not a mapping, or has no
    /// `services:` mapping when one is needed.
    pub fn from_doc(path: &Path, doc: &Yaml, needs_services: bool) -> Result<ComposeFile, ComposeError> {
        let err = |line: usize, detail: String| ComposeError {
            file: path.to_path_buf(),
            line,
            detail,
        };
        if !matches!(doc, Yaml::Hash(_)) {
            return Err(err(1, "the file is not a YAML mapping".into()));
        }
        let mut out = ComposeFile {
            path: path.to_path_buf(),
            version: scalar(&doc["version"]),
            ..Default::default()
        };
        match &doc["services"] {
            Yaml::Hash(services) => {
                for (name, body) in services {
                    if let Some(name) = scalar(name) {
                        out.services.push(service(name, body));
                    }
                }
            }
            Yaml::BadValue | Yaml::Null if !needs_services => {}
            _ => return Err(err(1, "no `services:` mapping".into())),
        }
        out.secrets = top_level(&doc["secrets"]);
        out.configs = top_level(&doc["configs"]);
        Ok(out)
    }
}

/// The first YAML document of the compose file `path`, whose text is
/// `text`, as written (merge keys unresolved, nothing interpolated).
///
/// # Errors
/// [`ComposeError`] naming the file and line: the text is not YAML, or is
/// empty.
pub fn parse_doc(path: &Path, text: &str) -> Result<Yaml, ComposeError> {
    let err = |line: usize, detail: String| ComposeError {
        file: path.to_path_buf(),
        line,
        detail,
    };
    let docs = YamlLoader::load_from_str(text).map_err(|e| err(e.marker().line(), e.to_string()))?;
    docs.into_iter()
        .next()
        .ok_or_else(|| err(1, "the file is empty".into()))
}

/// What a service's `healthcheck:` value says: None when there is none
/// (absent or null), Some(false) when it is disabled (`disable: true`, or
/// `test: ["NONE"]` / `test: NONE`, Docker's way of turning off the
/// image's healthcheck), Some(true) otherwise.
fn healthcheck_enabled(hc: &Yaml) -> Option<bool> {
    if hc.is_badvalue() || hc.is_null() {
        return None;
    }
    let none_test = match &hc["test"] {
        Yaml::String(t) => t.trim() == "NONE",
        Yaml::Array(a) => a.first().and_then(Yaml::as_str) == Some("NONE"),
        _ => false,
    };
    Some(!(matches!(hc["disable"], Yaml::Boolean(true)) || none_test))
}

fn merge(into: &mut Service, from: Service) {
    if from.image.is_some() {
        into.image = from.image;
    }
    into.labels.extend(from.labels);
    into.deploy_labels.extend(from.deploy_labels);
    if from.healthcheck_declared {
        into.healthcheck = from.healthcheck;
        into.healthcheck_declared = true;
    }
    into.volumes.extend(from.volumes);
    into.environment.extend(from.environment);
    if from.publishes_ports {
        into.publishes_ports = true;
        into.host_mode_ports_only &= from.host_mode_ports_only;
    }
    into.secrets.extend(from.secrets);
    into.configs.extend(from.configs);
    if from.endpoint_mode.is_some() {
        into.endpoint_mode = from.endpoint_mode;
    }
    for (into, from) in [
        (&mut into.limits, from.limits),
        (&mut into.reservations, from.reservations),
    ] {
        if from.cpus.is_some() {
            into.cpus = from.cpus;
        }
        if from.memory.is_some() {
            into.memory = from.memory;
        }
    }
}

fn merge_top(into: &mut TopLevel, from: &TopLevel) {
    if from.name.is_some() {
        into.name.clone_from(&from.name);
    }
    into.external |= from.external;
    if from.file.is_some() {
        into.file.clone_from(&from.file);
    }
    if from.template_driver.is_some() {
        into.template_driver.clone_from(&from.template_driver);
    }
}

/// A YAML scalar as a string (numbers and booleans as written).
pub(crate) fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Labels in map or `k=v` list form.
fn labels_of(y: &Yaml, out: &mut BTreeMap<String, String>) {
    match y {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if let Some(k) = scalar(k) {
                    out.insert(k, scalar(v).unwrap_or_default());
                }
            }
        }
        Yaml::Array(a) => {
            for item in a.iter().filter_map(scalar) {
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        _ => {}
    }
}

/// Ids of a service's `secrets:`/`configs:` list (short or long form).
fn ids_of(y: &Yaml) -> BTreeSet<String> {
    let Yaml::Array(a) = y else {
        return BTreeSet::new();
    };
    a.iter()
        .filter_map(|item| match item {
            Yaml::Hash(_) => scalar(&item["source"]),
            other => scalar(other),
        })
        .collect()
}

fn service(name: String, body: &Yaml) -> Service {
    let mut s = Service {
        name,
        host_mode_ports_only: true,
        ..Default::default()
    };
    s.image = scalar(&body["image"]);
    labels_of(&body["labels"], &mut s.labels);
    labels_of(&body["deploy"]["labels"], &mut s.deploy_labels);
    s.labels.extend(s.deploy_labels.clone());
    let hc = healthcheck_enabled(&body["healthcheck"]);
    s.healthcheck = hc == Some(true);
    s.healthcheck_declared = hc.is_some();
    if let Yaml::Array(vols) = &body["volumes"] {
        for v in vols {
            match v {
                Yaml::String(short) => {
                    let mut parts = short.splitn(3, ':');
                    if let (Some(src), Some(dst)) = (parts.next(), parts.next()) {
                        if !src.starts_with('/')
                            && !src.starts_with('.')
                            && !src.starts_with('$')
                            && !src.starts_with('~')
                        {
                            s.volumes.insert(src.to_string(), dst.to_string());
                        }
                    }
                }
                Yaml::Hash(_) if scalar(&v["type"]).as_deref().unwrap_or("volume") == "volume" => {
                    if let (Some(src), Some(dst)) = (scalar(&v["source"]), scalar(&v["target"])) {
                        s.volumes.insert(src, dst);
                    }
                }
                _ => {}
            }
        }
    }
    match &body["environment"] {
        Yaml::Hash(h) => s.environment.extend(h.keys().filter_map(scalar)),
        Yaml::Array(a) => s.environment.extend(
            a.iter()
                .filter_map(scalar)
                .map(|e| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_string())),
        ),
        _ => {}
    }
    if let Yaml::Array(ports) = &body["ports"] {
        s.publishes_ports = !ports.is_empty();
        s.host_mode_ports_only = ports
            .iter()
            .all(|p| matches!(p, Yaml::Hash(_)) && scalar(&p["mode"]).as_deref() == Some("host"));
    }
    s.secrets = ids_of(&body["secrets"]);
    s.configs = ids_of(&body["configs"]);
    s.endpoint_mode = scalar(&body["deploy"]["endpoint_mode"]);
    let resources = &body["deploy"]["resources"];
    for (into, y) in [
        (&mut s.limits, &resources["limits"]),
        (&mut s.reservations, &resources["reservations"]),
    ] {
        into.cpus = scalar(&y["cpus"]);
        into.memory = scalar(&y["memory"]);
    }
    s
}

fn top_level(y: &Yaml) -> BTreeMap<String, TopLevel> {
    let Yaml::Hash(h) = y else {
        return BTreeMap::new();
    };
    h.iter()
        .filter_map(|(k, v)| {
            let id = scalar(k)?;
            Some((
                id,
                TopLevel {
                    name: scalar(&v["name"]),
                    external: matches!(v["external"], Yaml::Boolean(true)) || matches!(v["external"], Yaml::Hash(_)),
                    file: scalar(&v["file"]),
                    template_driver: scalar(&v["template_driver"]),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_deployer_needs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("compose.yml"),
            r#"
version: "3.8"
services:
  app:
    image: x/app:1.0
    environment:
      - A=1
      - B
    secrets: [db_password, {source: api_key, target: key}]
    configs:
      - source: app_conf
        target: /etc/app.conf
    ports:
      - target: 80
        published: 80
        mode: host
    deploy:
      labels: ["coop-cloud.${STACK_NAME}.version=1.0.0+1.0"]
      resources:
        limits: {cpus: 0.5, memory: 1g}
        reservations: {memory: 64M}
  db:
    image: x/db:1
    environment: {C: "3"}
    ports: ["5432:5432"]
secrets:
  db_password: {external: true, name: "${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}"}
  api_key: {external: true, name: "${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}"}
configs:
  app_conf:
    name: ${STACK_NAME}_app_conf_${APP_CONF_VERSION}
    file: app.conf.tmpl
    template_driver: golang
"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("compose.extra.yml"),
            "services:\n  app:\n    environment: {D: x}\n    deploy: {endpoint_mode: dnsrr, resources: {limits: {memory: 2g}}}\n",
        )
        .unwrap();
        let set = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into(), "compose.extra.yml".into()])
            .unwrap();
        let app = &set.services["app"];
        assert_eq!(app.environment.iter().collect::<Vec<_>>(), ["A", "B", "D"]);
        assert!(app.publishes_ports && app.host_mode_ports_only);
        assert_eq!(app.endpoint_mode.as_deref(), Some("dnsrr"));
        assert_eq!(
            app.limits,
            Resources {
                cpus: Some("0.5".into()),
                memory: Some("2g".into())
            },
            "merged field by field, the overlay last"
        );
        assert_eq!(app.reservations.memory.as_deref(), Some("64M"));
        assert_eq!(app.secrets.iter().collect::<Vec<_>>(), ["api_key", "db_password"]);
        assert!(app.deploy_labels.contains_key("coop-cloud.${STACK_NAME}.version"));
        let db = &set.services["db"];
        assert!(
            db.publishes_ports && !db.host_mode_ports_only,
            "short syntax is ingress"
        );
        assert_eq!(set.used_secrets().len(), 2);
        assert!(set.secrets["db_password"].external);
        assert_eq!(set.configs["app_conf"].template_driver.as_deref(), Some("golang"));
        assert_eq!(set.files[0].version.as_deref(), Some("3.8"));
        assert_eq!(set.files[1].version, None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.yml"), "services:\n  app:\n    image: [\n").unwrap();
        let e = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap_err();
        assert!(e.file.ends_with("compose.yml") && e.line >= 3, "{e}");
        let e = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.gone.yml".into()])
            .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        std::fs::write(d.path().join("compose.yml"), "- a\n- b\n").unwrap();
        let e = crate::recipe::version::RecipeVersion::read(d.path())
            .unwrap()
            .compose_set(&["compose.yml".into()])
            .unwrap_err();
        assert!(e.to_string().contains("not a YAML mapping"), "{e}");
    }
}
