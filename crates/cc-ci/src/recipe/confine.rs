//! Confinement of a recipe under test: what a recipe from a pull request may
//! not do on the CI host, found in the files a deploy would deploy, before
//! anything deploys.
//!
//! A recipe from a pull request is untrusted code. Its test app shares the
//! host with cc-ci itself, Traefik and the runs beside it, so it must stay
//! inside its own stack. [`check`] reads one version of a recipe checkout
//! (every compose file `COMPOSE_FILE` names, the settings' overlay included
//! when it is named there) as `docker stack deploy` would: YAML merge keys
//! (`<<: *anchor`) resolved, every string value interpolated with the app
//! env ([`super::interpolate`]), relative paths against the first compose
//! file's folder (docker/cli's working directory). It refuses, naming the
//! file, the compose key and what to do:
//!
//! | kind ([`Kind`]) | what | allowance in `ccci.toml` |
//! |---|---|---|
//! | bind mount | a volume from a host path (short `/x:/y`, `./x:/y`, `~/x:/y`; long `type: bind`; a named volume with `driver_opts.device`), the Docker socket above all | `[allow.bind_mounts]` `"/var/run/docker.sock" = "why"` |
//! | privileged | `privileged:` not false | `[allow]` `privileged = "why"` |
//! | capability | each `cap_add` entry | `[allow.cap_add]` `NET_ADMIN = "why"` |
//! | device | each `devices` entry (by host path) | `[allow.devices]` |
//! | host mode | `network_mode`, `pid`, `ipc`, `uts`, `userns_mode` set to `host` or another container's (`container:`/`service:`); any `cgroup_parent` (it would leave the limits' cgroup) | `[allow.host_modes]` `network_mode = "why"` |
//! | security option | each `security_opt` but `no-new-privileges` (seccomp, AppArmor, SELinux unconfined, a host profile) | `[allow.security_opt]` |
//! | published port | each `ports` entry: it binds on the host, before any host service (Docker's DNAT) | `[allow.ports]` `"25" = "why"`, `"*"` any |
//! | name outside the stack | an `external` volume, network (but `proxy`), secret or config, or a `name:` that does not start with the stack name: another app's object (the wildcard certificate's key is a secret) | `[allow.names]` |
//! | file | a config's or secret's `file:`, or an `env_file`, that resolves (symlinks followed) outside the recipe; a symlink anywhere in the checkout that resolves outside it; a file over [`MAX_FILE_BYTES`] | `[allow.files]` (by path as written, or relative to the recipe) |
//! | Traefik host | a router rule (`traefik.http.routers.<r>.rule`, `traefik.tcp.routers.<r>.rule`) naming a host that is not the app's domain or a sub-domain of it; an alternative (split on `\|\|`) not limited to named hosts by a `Host`/`HostSNI` (HostRegexp, ``HostSNI(`*`)``, a wildcard, no host matcher): subject `*`; a UDP router; `tls.domains` of another host; a Traefik service pointed at an address (`server.url`, `server.address`) | `[allow.traefik_hosts]` `"example.org" = "why"`, `"*"` any |
//! | Traefik name | a router, service, middleware or transport whose name does not start with the stack name, or a router's `service=` naming one (but `noop@internal`): Traefik merges same-named routers of different apps into one broken one, and `api@internal` is Traefik's own dashboard | `[allow.traefik_names]` |
//!
//! What stays allowed: named volumes of the stack, anonymous volumes,
//! `tmpfs`; `${DOMAIN}` and its sub-domains (`www.<domain>` from
//! `EXTRA_DOMAINS`); configs and secrets from files inside the recipe;
//! external secrets and configs named in the stack (abra's
//! `${STACK_NAME}_<id>_${SECRET_<ID>_VERSION}`); the external `proxy`
//! network; `cap_drop`, `read_only`, `sysctls`, `ulimits`, resources.
//!
//! Each file is checked alone, not merged: a violation in any file the
//! deploy reads is refused even if a later file would undo it (the fix is in
//! the file named). A file that is missing or does not parse is left to the
//! deploy, which refuses it itself before anything is deployed
//! (`crate::deploy::read_version` reads it with the same YAML parser, which
//! also refuses duplicate keys).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use yaml_rust2::yaml::Hash;
use yaml_rust2::Yaml;

use super::compose::scalar;
use super::interpolate::interpolate_lenient;
use super::version::RecipeVersion;

/// The largest file a recipe checkout may hold, bytes (10 MiB): recipes are
/// configuration; anything bigger is refused unless allowed by path.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// The external network every Co-op Cloud app joins to be reached by Traefik.
pub const PROXY_NETWORK: &str = "proxy";

/// The one Traefik service outside the stack a router may name: it serves
/// nothing (redirect-only routers use it).
const NOOP_SERVICE: &str = "noop@internal";

/// What a violation is about; each kind has its table under `[allow]` in a
/// recipe's `ccci.toml` ([`Kind::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A volume from a host path.
    BindMount,
    /// `privileged:` (a flag: `[allow] privileged = "why"`).
    Privileged,
    /// A `cap_add` capability.
    CapAdd,
    /// A host device.
    Device,
    /// A host namespace or cgroup (`network_mode`, `pid`, `ipc`, `uts`,
    /// `userns_mode`, `cgroup_parent`).
    HostMode,
    /// A `security_opt` that may unconfine.
    SecurityOpt,
    /// A published port.
    Port,
    /// A volume, network, secret or config named outside the stack.
    Name,
    /// A file outside the recipe, a symlink out of it, a file over the limit.
    File,
    /// A Traefik router that may match another host.
    TraefikHost,
    /// A Traefik name outside the stack.
    TraefikName,
}

impl Kind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Kind; 11] = [
        Kind::BindMount,
        Kind::Privileged,
        Kind::CapAdd,
        Kind::Device,
        Kind::HostMode,
        Kind::SecurityOpt,
        Kind::Port,
        Kind::Name,
        Kind::File,
        Kind::TraefikHost,
        Kind::TraefikName,
    ];

    /// Its key under `[allow]` in `ccci.toml`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::BindMount => "bind_mounts",
            Kind::Privileged => "privileged",
            Kind::CapAdd => "cap_add",
            Kind::Device => "devices",
            Kind::HostMode => "host_modes",
            Kind::SecurityOpt => "security_opt",
            Kind::Port => "ports",
            Kind::Name => "names",
            Kind::File => "files",
            Kind::TraefikHost => "traefik_hosts",
            Kind::TraefikName => "traefik_names",
        }
    }

    /// Whether the kind is one flag (`privileged = "why"`) rather than a
    /// table of subjects.
    pub fn is_flag(self) -> bool {
        self == Kind::Privileged
    }

    /// Whether `"*"` in its table allows every subject (ports, Traefik hosts).
    pub fn has_wildcard(self) -> bool {
        matches!(self, Kind::Port | Kind::TraefikHost)
    }

    /// `subject` in the form allowances and violations share: capabilities
    /// upper-case without `CAP_`; hosts lower-case without a final dot; host
    /// paths lexically normalised (`//`, `.`, `..`, a trailing `/`).
    pub fn normalize(self, subject: &str) -> String {
        let s = subject.trim();
        match self {
            Kind::CapAdd => {
                let up = s.to_ascii_uppercase();
                up.strip_prefix("CAP_").unwrap_or(&up).to_string()
            }
            Kind::TraefikHost => s.to_ascii_lowercase().trim_end_matches('.').to_string(),
            Kind::BindMount | Kind::Device if s.starts_with('/') => lexical(Path::new(s)).display().to_string(),
            _ => s.to_string(),
        }
    }

    /// The lines to add to `ccci.toml` that allow `subject`.
    pub fn toml_lines(self, subject: &str) -> String {
        if self.is_flag() {
            format!("[allow]\n{} = \"<why the recipe needs it>\"", self.key())
        } else {
            format!(
                "[allow.{}]\n{} = \"<why the recipe needs it>\"",
                self.key(),
                serde_json::to_string(subject).unwrap_or_default()
            )
        }
    }
}

/// What the settings allow, each by name with a reason (`[allow]` of a
/// recipe's `ccci.toml`, read by `crate::settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowances {
    /// By kind: the allowed subject ([`Kind::normalize`]d; `""` for a flag)
    /// and why.
    pub entries: BTreeMap<Kind, BTreeMap<String, String>>,
}

impl Allowances {
    /// Allows `subject` of `kind` (normalised) for `reason`.
    pub fn allow(&mut self, kind: Kind, subject: &str, reason: &str) {
        let subject = if kind.is_flag() {
            String::new()
        } else {
            kind.normalize(subject)
        };
        self.entries
            .entry(kind)
            .or_default()
            .insert(subject, reason.to_string());
    }

    /// Why `subject` of `kind` is allowed, if it is (`"*"` covers every
    /// subject of the kinds that have a wildcard).
    pub fn reason(&self, kind: Kind, subject: &str) -> Option<&str> {
        let table = self.entries.get(&kind)?;
        let subject = if kind.is_flag() {
            String::new()
        } else {
            kind.normalize(subject)
        };
        table
            .get(&subject)
            .or_else(|| kind.has_wildcard().then(|| table.get("*")).flatten())
            .map(String::as_str)
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.values().all(BTreeMap::is_empty)
    }

    /// The allowances as JSON for `results.json` (`settings.allow`): the
    /// flag kinds as `"key": "why"`, the others as `"key": {"subject": "why"}`.
    pub fn manifest(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (kind, table) in &self.entries {
            let v = if kind.is_flag() {
                serde_json::json!(table.values().next())
            } else {
                serde_json::json!(table)
            };
            m.insert(kind.key().to_string(), v);
        }
        serde_json::Value::Object(m)
    }

    /// One line per allowance: `bind_mounts /var/run/docker.sock: why`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, table) in &self.entries {
            for (subject, why) in table {
                if kind.is_flag() {
                    out.push(format!("{}: {why}", kind.key()));
                } else {
                    out.push(format!("{} {subject}: {why}", kind.key()));
                }
            }
        }
        out
    }
}

/// One thing the recipe would do outside its test app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The file, relative to the recipe checkout (`compose.yml`).
    pub file: String,
    /// The compose key (`services.app.volumes[0]`); empty for a finding
    /// about the file itself (a symlink, its size).
    pub key: String,
    /// What kind it is (its `[allow]` table).
    pub kind: Kind,
    /// What to allow, in [`Kind::normalize`]d form (the host path, the
    /// capability, the host, the name ...; empty for a flag).
    pub subject: String,
    /// What it is and why that leaves the app, in a maintainer's words.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.what)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.what)
        }
    }
}

/// What [`check`] found in one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Violations no allowance covers: the version must not deploy.
    pub refused: Vec<Violation>,
    /// Violations the settings allow, with the reason they give.
    pub allowed: Vec<(Violation, String)>,
}

/// The app a version is checked for: its domain (router rules may name it
/// and its sub-domains) and its stack (names must start with it).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The app's domain, e.g. `tmpl-site-1a2b3c.ci.test`.
    pub domain: &'a str,
    /// The app's stack, e.g. `tmpl-site-1a2b3c_ci_test`.
    pub stack: &'a str,
}

/// Checks the recipe version `version` (its checkout read once) as a
/// deploy with `files` (`COMPOSE_FILE`, split) and the app env `env` would
/// deploy it, for the app `scope`; violations `allow` covers are reported
/// as allowed.
pub fn check(
    version: &RecipeVersion,
    files: &[String],
    env: &BTreeMap<String, String>,
    scope: &Scope<'_>,
    allow: &Allowances,
) -> Report {
    let mut report = Report::default();
    for v in findings(version, files, env, scope) {
        match allow.reason(v.kind, &v.subject) {
            Some(why) => report.allowed.push((v, why.to_string())),
            None => report.refused.push(v),
        }
    }
    report
}

/// Every violation in the recipe version `version` (see [`check`]): in its
/// checkout's files and in the compose files `files`, as the model read
/// them; sorted, each once.
pub fn findings(
    version: &RecipeVersion,
    files: &[String],
    env: &BTreeMap<String, String>,
    scope: &Scope<'_>,
) -> Vec<Violation> {
    let dir = version.dir.as_path();
    let canon_root = std::fs::canonicalize(dir).unwrap_or_else(|_| lexical(dir));
    let mut w = Walk {
        domain: scope.domain.to_ascii_lowercase().trim_end_matches('.').to_string(),
        stack: scope.stack.to_string(),
        root: lexical(dir),
        canon_root,
        work_dir: lexical(&dir.join(files.first().map_or("compose.yml", String::as_str)))
            .parent()
            .map_or_else(|| lexical(dir), Path::to_path_buf),
        file: String::new(),
        out: Vec::new(),
        udp_routers: BTreeSet::new(),
    };
    let root = w.root.clone();
    w.tree(&root);
    for f in files {
        // The deploy refuses a file that is missing or outside the folder
        // itself, and one that does not parse, read by the same model.
        let Ok(source) = version.source(f) else { continue };
        let Ok(doc) = &source.doc else { continue };
        let doc = interpolate_all(resolve_merges(doc.clone()), env);
        w.file = f.clone();
        w.udp_routers.clear();
        w.compose(&doc);
    }
    w.out.sort();
    w.out.dedup();
    w.out
}

// ---------------------------------------------------------------- YAML as docker/cli reads it

/// Resolves YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`), which Go's
/// YAML parser (docker/cli's) applies and yaml-rust2 does not: keys of the
/// mapping itself win, then the merged mappings in order.
fn resolve_merges(y: Yaml) -> Yaml {
    match y {
        Yaml::Hash(h) => {
            let mut out = Hash::new();
            let mut merged: Vec<Hash> = Vec::new();
            for (k, v) in h {
                if k.as_str() == Some("<<") {
                    match resolve_merges(v) {
                        Yaml::Hash(m) => merged.push(m),
                        Yaml::Array(a) => merged.extend(a.into_iter().filter_map(|x| match x {
                            Yaml::Hash(m) => Some(m),
                            _ => None,
                        })),
                        _ => {}
                    }
                } else {
                    out.insert(k, resolve_merges(v));
                }
            }
            for m in merged {
                for (k, v) in m {
                    if !out.contains_key(&k) {
                        out.insert(k, v);
                    }
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

/// Every string value interpolated with `env` (keys are not: docker/cli
/// interpolates values only).
fn interpolate_all(y: Yaml, env: &BTreeMap<String, String>) -> Yaml {
    match y {
        Yaml::String(s) => Yaml::String(interpolate_lenient(&s, env)),
        Yaml::Hash(h) => Yaml::Hash(h.into_iter().map(|(k, v)| (k, interpolate_all(v, env))).collect()),
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(|v| interpolate_all(v, env)).collect()),
        other => other,
    }
}

/// Whether a value docker/cli would read as a boolean is not clearly false
/// (it casts interpolated strings: `y`, `yes`, `true`, `on` are true). Read
/// conservatively: anything but a clear false counts.
fn not_false(y: &Yaml) -> bool {
    match y {
        Yaml::Boolean(b) => *b,
        Yaml::Null | Yaml::BadValue => false,
        Yaml::String(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "n" | "no" | "false" | "off"
        ),
        _ => true,
    }
}

/// `path` with `.`, `..` and repeated separators resolved lexically.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What a host path is, for a maintainer reading a refusal.
fn host_path_note(path: &str) -> &'static str {
    let p = lexical(Path::new(path));
    let s = p.to_string_lossy();
    if s.ends_with("docker.sock") {
        "the Docker socket: whoever holds it controls the host and every run on it"
    } else if s == "/" {
        "the host's whole file system"
    } else {
        "a path of the CI host: the app would read or write the host's files"
    }
}

// ---------------------------------------------------------------- the walk

struct Walk {
    domain: String,
    stack: String,
    /// The checkout, lexically normalised.
    root: PathBuf,
    /// The checkout, symlinks resolved.
    canon_root: PathBuf,
    /// docker/cli's working directory: the first compose file's folder.
    work_dir: PathBuf,
    /// The compose file being read, relative to the checkout.
    file: String,
    out: Vec<Violation>,
    udp_routers: BTreeSet<String>,
}

impl Walk {
    fn push(&mut self, key: String, kind: Kind, subject: &str, what: String) {
        let subject = if kind.is_flag() {
            String::new()
        } else {
            kind.normalize(subject)
        };
        self.out.push(Violation {
            file: self.file.clone(),
            key,
            kind,
            subject,
            what,
        });
    }

    fn in_stack(&self, name: &str) -> bool {
        name.to_ascii_lowercase().starts_with(&self.stack.to_ascii_lowercase())
    }

    fn is_ours(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        let h = h.trim_end_matches('.');
        h == self.domain || h.ends_with(&format!(".{}", self.domain))
    }

    /// Where `path` (as the compose file writes it) resolves, when that is
    /// outside the recipe.
    fn outside(&self, path: &str) -> Option<String> {
        if path.starts_with('~') {
            return Some(format!("{path} (a home folder of the host)"));
        }
        let p = Path::new(path);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.work_dir.join(p)
        };
        match std::fs::canonicalize(&p) {
            Ok(c) => (!c.starts_with(&self.canon_root)).then(|| c.display().to_string()),
            Err(_) => {
                let l = lexical(&p);
                (!l.starts_with(&self.root)).then(|| l.display().to_string())
            }
        }
    }

    // ---- the checkout's files

    fn tree(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            if path == self.root.join(".git") || lexical(&path) == self.root.join(".git") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(&self.root)
                .or_else(|_| path.strip_prefix(dir))
                .unwrap_or(&path)
                .display()
                .to_string();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                let resolved = match std::fs::canonicalize(&path) {
                    Ok(c) => (!c.starts_with(&self.canon_root)).then(|| c.display().to_string()),
                    Err(_) => {
                        let l = lexical(&path.parent().unwrap_or(dir).join(&target));
                        (!l.starts_with(&self.root)).then(|| l.display().to_string())
                    }
                };
                if let Some(to) = resolved {
                    self.file = rel.clone();
                    self.push(
                        String::new(),
                        Kind::File,
                        &rel,
                        format!(
                            "a symlink to {}, which resolves outside the recipe ({to}): whatever reads it would read the CI host's file",
                            target.display()
                        ),
                    );
                }
            } else if meta.is_dir() {
                self.tree(&path);
            } else if meta.len() > MAX_FILE_BYTES {
                self.file = rel.clone();
                self.push(
                    String::new(),
                    Kind::File,
                    &rel,
                    format!(
                        "{} bytes, over cc-ci's limit of {MAX_FILE_BYTES} bytes (10 MiB) for a file of a recipe",
                        meta.len()
                    ),
                );
            }
        }
    }

    // ---- one compose file

    fn compose(&mut self, doc: &Yaml) {
        if let Yaml::Hash(services) = &doc["services"] {
            for (name, body) in services {
                if let Some(name) = scalar(name) {
                    self.service(&name, body);
                }
            }
        }
        for (section, what) in [
            ("volumes", "volume"),
            ("networks", "network"),
            ("secrets", "secret"),
            ("configs", "config"),
        ] {
            let Yaml::Hash(h) = &doc[section] else { continue };
            for (id, body) in h {
                let Some(id) = scalar(id) else { continue };
                self.top_level(section, what, &id, body);
            }
        }
    }

    fn top_level(&mut self, section: &str, what: &str, id: &str, body: &Yaml) {
        let at = |k: &str| {
            if k.is_empty() {
                format!("{section}.{id}")
            } else {
                format!("{section}.{id}.{k}")
            }
        };
        let external = not_false(&body["external"]);
        let name = scalar(&body["name"]).or_else(|| scalar(&body["external"]["name"]));
        if external {
            let name = name.unwrap_or_else(|| id.to_string());
            let proxy = section == "networks" && name == PROXY_NETWORK;
            if !proxy && !self.in_stack(&name) {
                self.push(
                    at("external"),
                    Kind::Name,
                    &name,
                    format!(
                        "the external {what} {name:?} is not the app's (its name does not start with the stack name {}): it would be another app's or the host's{}",
                        self.stack,
                        if section == "networks" { " (only the `proxy` network is shared)" } else { "" }
                    ),
                );
            }
        } else if let Some(name) = name {
            if !self.in_stack(&name) {
                self.push(
                    at("name"),
                    Kind::Name,
                    &name,
                    format!(
                        "the {what} is named {name:?}, outside the app's stack {} (an existing {what} of that name, another app's, would be used or taken over); name it `${{STACK_NAME}}_...`",
                        self.stack
                    ),
                );
            }
        }
        if let Some(file) = scalar(&body["file"]) {
            if let Some(to) = self.outside(&file) {
                self.push(
                    at("file"),
                    Kind::File,
                    &file,
                    format!("the {what} file {file} resolves outside the recipe ({to}): the deploy would ship a file of the CI host into the app"),
                );
            }
        }
        if section == "volumes" {
            if let Some(device) = scalar(&body["driver_opts"]["device"]) {
                self.push(
                    at("driver_opts.device"),
                    Kind::BindMount,
                    &device,
                    format!(
                        "the volume is backed by the host path {device} ({})",
                        host_path_note(&device)
                    ),
                );
            }
        }
    }

    fn service(&mut self, name: &str, s: &Yaml) {
        let at = |k: &str| format!("services.{name}.{k}");
        if let Yaml::Array(vols) = &s["volumes"] {
            for (i, v) in vols.iter().enumerate() {
                self.volume(&at(&format!("volumes[{i}]")), v);
            }
        }
        if not_false(&s["privileged"]) {
            self.push(
                at("privileged"),
                Kind::Privileged,
                "",
                "privileged: every capability and device of the host, no confinement".into(),
            );
        }
        if let Yaml::Array(caps) = &s["cap_add"] {
            for (i, c) in caps.iter().enumerate() {
                let c = scalar(c).unwrap_or_default();
                self.push(
                    at(&format!("cap_add[{i}]")),
                    Kind::CapAdd,
                    &c,
                    format!("adds the capability {c}, beyond what Docker grants a container"),
                );
            }
        }
        if let Yaml::Array(devs) = &s["devices"] {
            for (i, d) in devs.iter().enumerate() {
                let spec = scalar(d).or_else(|| scalar(&d["source"])).unwrap_or_default();
                let host = spec.split(':').next().unwrap_or_default().to_string();
                self.push(
                    at(&format!("devices[{i}]")),
                    Kind::Device,
                    &host,
                    format!("gives the app the host device {host}"),
                );
            }
        }
        for key in ["network_mode", "pid", "ipc", "uts", "userns_mode"] {
            let Some(v) = scalar(&s[key]) else { continue };
            let l = v.trim().to_ascii_lowercase();
            if l == "host" || l.starts_with("container:") || l.starts_with("service:") {
                self.push(
                    at(key),
                    Kind::HostMode,
                    key,
                    format!(
                        "{key}: {v} shares a namespace of {} instead of the app's own",
                        if l == "host" { "the host" } else { "another container" }
                    ),
                );
            }
        }
        if let Some(v) = scalar(&s["cgroup_parent"]).filter(|v| !v.trim().is_empty()) {
            self.push(
                at("cgroup_parent"),
                Kind::HostMode,
                "cgroup_parent",
                format!("cgroup_parent: {v} moves the app out of its cgroup (and from under its resource limits)"),
            );
        }
        if let Yaml::Array(opts) = &s["security_opt"] {
            for (i, o) in opts.iter().enumerate() {
                let o = scalar(o).unwrap_or_default();
                let l = o.trim().to_ascii_lowercase().replace('=', ":");
                if l == "no-new-privileges" || l == "no-new-privileges:true" {
                    continue;
                }
                self.push(
                    at(&format!("security_opt[{i}]")),
                    Kind::SecurityOpt,
                    &o,
                    format!("security_opt {o} may lift the confinement Docker applies (seccomp, AppArmor, SELinux)"),
                );
            }
        }
        if let Yaml::Array(ports) = &s["ports"] {
            for (i, p) in ports.iter().enumerate() {
                let published = published_port(p);
                let subject = published.clone().unwrap_or_else(|| "*".into());
                self.push(
                    at(&format!("ports[{i}]")),
                    Kind::Port,
                    &subject,
                    format!(
                        "publishes {} on the host: it would take that port from the host's own services (Docker's rules come first)",
                        published.map_or("a port Docker picks".to_string(), |p| format!("port {p}"))
                    ),
                );
            }
        }
        let env_files: Vec<(String, String)> = match &s["env_file"] {
            Yaml::Array(a) => a
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    scalar(f)
                        .or_else(|| scalar(&f["path"]))
                        .map(|p| (at(&format!("env_file[{i}]")), p))
                })
                .collect(),
            other => scalar(other).map(|p| (at("env_file"), p)).into_iter().collect(),
        };
        for (key, f) in env_files {
            if let Some(to) = self.outside(&f) {
                self.push(
                    key,
                    Kind::File,
                    &f,
                    format!("the env file {f} resolves outside the recipe ({to}): the deploy would put a file of the CI host into the app's environment"),
                );
            }
        }
        for (section, labels) in [("labels", &s["labels"]), ("deploy.labels", &s["deploy"]["labels"])] {
            for (key, k, v) in labels_of(labels) {
                self.traefik_label(&at(&format!("{section}{key}")), &k, &v);
            }
        }
    }

    fn volume(&mut self, at: &str, v: &Yaml) {
        match v {
            Yaml::Hash(_) => {
                let ty = scalar(&v["type"])
                    .unwrap_or_else(|| "volume".into())
                    .to_ascii_lowercase();
                let source = scalar(&v["source"]).unwrap_or_default();
                match ty.as_str() {
                    "volume" | "tmpfs" => {}
                    _ => self.push(
                        at.to_string(),
                        Kind::BindMount,
                        &source,
                        format!("{ty} mount of the host path {source} ({})", host_path_note(&source)),
                    ),
                }
            }
            other => {
                let Some(spec) = scalar(other) else { return };
                let mut parts = spec.splitn(3, ':');
                let (Some(src), Some(_dst)) = (parts.next(), parts.next()) else {
                    return; // a bare target: an anonymous volume
                };
                let named =
                    !src.is_empty() && !src.starts_with(['/', '.', '~']) && !src.contains('/') && !src.contains('\\');
                if !named {
                    self.push(
                        at.to_string(),
                        Kind::BindMount,
                        src,
                        format!("bind mount of the host path {src} ({})", host_path_note(src)),
                    );
                }
            }
        }
    }

    // ---- Traefik

    fn traefik_label(&mut self, at: &str, key: &str, value: &str) {
        let lower = key.to_ascii_lowercase();
        let parts: Vec<&str> = key.split('.').collect();
        let lparts: Vec<&str> = lower.split('.').collect();
        if lparts.first() != Some(&"traefik") || lparts.len() < 4 {
            return;
        }
        let proto = lparts[1];
        if !matches!(proto, "http" | "tcp" | "udp") {
            return;
        }
        let section = lparts[2];
        let name = parts[3];
        let rest = &lparts[4..];
        if !self.in_stack(name) {
            self.push(
                at.to_string(),
                Kind::TraefikName,
                name,
                format!(
                    "the Traefik {proto} {} {name:?} is not named after the app's stack {}: a same-named one of another app would be merged with it",
                    section.trim_end_matches('s'),
                    self.stack
                ),
            );
        }
        if proto == "udp" && section == "routers" {
            if self.udp_routers.insert(name.to_string()) {
                self.push(
                    at.to_string(),
                    Kind::TraefikHost,
                    "*",
                    format!("the UDP router {name:?}: UDP has no host name to match, so it takes an entrypoint's traffic, whoever it is for"),
                );
            }
            return;
        }
        match (section, rest) {
            ("routers", ["rule"]) => self.rule(at, value),
            ("routers", ["service"]) => {
                let v = value.trim();
                if v != NOOP_SERVICE && !self.in_stack(v) {
                    self.push(
                        at.to_string(),
                        Kind::TraefikName,
                        v,
                        format!(
                            "the router sends the app's domain to the Traefik service {v:?}, which is not the app's{}",
                            if v.ends_with("@internal") {
                                " (Traefik's own)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
            ("routers", ["tls", d, field]) if d.starts_with("domains") && matches!(*field, "main" | "sans") => {
                for h in value.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                    if !self.is_ours(h) {
                        self.push(
                            at.to_string(),
                            Kind::TraefikHost,
                            h,
                            format!(
                                "asks for a certificate of {h}, which is not the app's domain {} nor a sub-domain of it",
                                self.domain
                            ),
                        );
                    }
                }
            }
            ("services", r) if r.iter().any(|p| *p == "url" || *p == "address") => {
                self.push(
                    at.to_string(),
                    Kind::TraefikHost,
                    "*",
                    format!("points the Traefik service at {value}, not at the app's containers"),
                );
            }
            _ => {}
        }
    }

    fn rule(&mut self, at: &str, rule: &str) {
        let expr = match rule::parse(rule) {
            Ok(e) => e,
            Err(e) => {
                self.push(
                    at.to_string(),
                    Kind::TraefikHost,
                    "*",
                    format!(
                        "the router rule `{rule}` does not parse ({e}), so cc-ci cannot tell which hosts it matches"
                    ),
                );
                return;
            }
        };
        let mut foreign = Vec::new();
        let restricted = expr.restricted(false, &|h| self.is_ours(h), &mut foreign);
        for h in foreign {
            self.push(
                at.to_string(),
                Kind::TraefikHost,
                &h,
                format!(
                    "the router rule `{rule}` names the host {h}, which is not the app's domain {} nor a sub-domain of it: a pull request must not capture another app's routes",
                    self.domain
                ),
            );
        }
        if !restricted {
            self.push(
                at.to_string(),
                Kind::TraefikHost,
                "*",
                format!(
                    "the router rule `{rule}` can match any host: every alternative (split on ||) needs Host(`{}`) or one of its sub-domains (HostRegexp, HostSNI(`*`), wildcards and alternatives without a host are refused)",
                    self.domain
                ),
            );
        }
    }
}

/// A service's labels in map or `k=v` list form: (the key suffix for the
/// report, `[i]` or `.<key>`; the label key; its value).
fn labels_of(y: &Yaml) -> Vec<(String, String, String)> {
    match y {
        Yaml::Hash(h) => h
            .iter()
            .filter_map(|(k, v)| {
                let k = scalar(k)?;
                Some((format!("[{k:?}]"), k, scalar(v).unwrap_or_default()))
            })
            .collect(),
        Yaml::Array(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let item = scalar(item)?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                Some((format!("[{i}]"), k.to_string(), v.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The published port of a `ports:` entry, if it names one (short
/// `[ip:]published:target[/proto]` or long `published:`).
fn published_port(p: &Yaml) -> Option<String> {
    match p {
        Yaml::Hash(_) => scalar(&p["published"]).filter(|s| !s.trim().is_empty()),
        other => {
            let s = scalar(other)?;
            let s = s.split('/').next().unwrap_or_default();
            let parts: Vec<&str> = s.rsplitn(3, ':').collect();
            // rsplitn: [target, published, ip]
            parts.get(1).map(|p| (*p).to_string()).filter(|p| !p.is_empty())
        }
    }
}

/// Traefik router rules: `Host(\`a\`) && PathPrefix(\`/x\`) || !Header(...)`,
/// parsed as Traefik's rule parser reads them (Go expressions: backquoted
/// or double-quoted strings, `&&` over `||`, `!`, parentheses; v2 matchers
/// take several arguments, matcher names in any case).
mod rule {
    /// A parsed rule.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Expr {
        Or(Box<Expr>, Box<Expr>),
        And(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
        Call(String, Vec<String>),
    }

    impl Expr {
        /// Whether every request the rule matches is for a host it names
        /// (no wildcard, no regexp, no alternative without a host); the
        /// hosts it names that `ours` refuses (outside a negation) go to
        /// `foreign`.
        pub(super) fn restricted(&self, negated: bool, ours: &dyn Fn(&str) -> bool, foreign: &mut Vec<String>) -> bool {
            match self {
                Expr::Or(a, b) => {
                    let ra = a.restricted(negated, ours, foreign);
                    let rb = b.restricted(negated, ours, foreign);
                    ra && rb
                }
                Expr::And(a, b) => {
                    let ra = a.restricted(negated, ours, foreign);
                    let rb = b.restricted(negated, ours, foreign);
                    ra || rb
                }
                Expr::Not(x) => {
                    x.restricted(!negated, ours, foreign);
                    false
                }
                Expr::Call(name, args) => match name.to_ascii_lowercase().as_str() {
                    "host" | "hostheader" | "hostsni" => {
                        let mut named = !args.is_empty();
                        for a in args {
                            if a.contains('*') || a.trim().is_empty() {
                                named = false;
                            } else if !ours(a) && !negated {
                                foreign.push(a.trim().to_string());
                            }
                        }
                        named
                    }
                    _ => false,
                },
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Tok {
        Ident(String),
        Str(String),
        Open,
        Close,
        Comma,
        Not,
        And,
        Or,
    }

    fn lex(s: &str) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        let mut it = s.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                c if c.is_whitespace() => {}
                '(' => out.push(Tok::Open),
                ')' => out.push(Tok::Close),
                ',' => out.push(Tok::Comma),
                '!' => out.push(Tok::Not),
                '&' if it.next_if_eq(&'&').is_some() => out.push(Tok::And),
                '|' if it.next_if_eq(&'|').is_some() => out.push(Tok::Or),
                '`' => {
                    let mut v = String::new();
                    loop {
                        match it.next() {
                            Some('`') => break,
                            Some(c) => v.push(c),
                            None => return Err("a ` is not closed".into()),
                        }
                    }
                    out.push(Tok::Str(v));
                }
                '"' => {
                    let mut v = String::new();
                    loop {
                        match it.next() {
                            Some('"') => break,
                            Some('\\') => match it.next() {
                                Some(c) => v.push(c),
                                None => return Err("a \" is not closed".into()),
                            },
                            Some(c) => v.push(c),
                            None => return Err("a \" is not closed".into()),
                        }
                    }
                    out.push(Tok::Str(v));
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut v = String::from(c);
                    while let Some(c) = it.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        v.push(c);
                    }
                    out.push(Tok::Ident(v));
                }
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        Ok(out)
    }

    struct P {
        toks: Vec<Tok>,
        at: usize,
    }

    impl P {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.at)
        }
        fn next(&mut self) -> Option<Tok> {
            let t = self.toks.get(self.at).cloned();
            self.at += 1;
            t
        }
        fn or(&mut self) -> Result<Expr, String> {
            let mut e = self.and()?;
            while self.peek() == Some(&Tok::Or) {
                self.at += 1;
                e = Expr::Or(Box::new(e), Box::new(self.and()?));
            }
            Ok(e)
        }
        fn and(&mut self) -> Result<Expr, String> {
            let mut e = self.unary()?;
            while self.peek() == Some(&Tok::And) {
                self.at += 1;
                e = Expr::And(Box::new(e), Box::new(self.unary()?));
            }
            Ok(e)
        }
        fn unary(&mut self) -> Result<Expr, String> {
            match self.next() {
                Some(Tok::Not) => Ok(Expr::Not(Box::new(self.unary()?))),
                Some(Tok::Open) => {
                    let e = self.or()?;
                    match self.next() {
                        Some(Tok::Close) => Ok(e),
                        _ => Err("a ( is not closed".into()),
                    }
                }
                Some(Tok::Ident(name)) => {
                    if self.next() != Some(Tok::Open) {
                        return Err(format!("{name} is not followed by ("));
                    }
                    let mut args = Vec::new();
                    if self.peek() == Some(&Tok::Close) {
                        self.at += 1;
                        return Ok(Expr::Call(name, args));
                    }
                    loop {
                        match self.next() {
                            Some(Tok::Str(s)) => args.push(s),
                            _ => return Err(format!("{name}( takes quoted strings")),
                        }
                        match self.next() {
                            Some(Tok::Comma) => {}
                            Some(Tok::Close) => break,
                            _ => return Err(format!("{name}( is not closed")),
                        }
                    }
                    Ok(Expr::Call(name, args))
                }
                Some(t) => Err(format!("unexpected {t:?}")),
                None => Err("the rule ends too early".into()),
            }
        }
    }

    /// Parses a router rule.
    pub(super) fn parse(s: &str) -> Result<Expr, String> {
        let mut p = P { toks: lex(s)?, at: 0 };
        let e = p.or()?;
        if p.at != p.toks.len() {
            return Err(format!("unexpected {:?}", p.toks[p.at]));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "tmpl-site-1a2b3c.ci.test";
    const STACK: &str = "tmpl-site-1a2b3c_ci_test";

    fn env() -> BTreeMap<String, String> {
        [
            ("DOMAIN", DOMAIN),
            ("STACK_NAME", STACK),
            ("EXTRA_DOMAINS", ", `www.tmpl-site-1a2b3c.ci.test`"),
            ("SOCK", "/var/run/docker.sock"),
            ("PRIV", "yes"),
            ("OTHER", "dashboard.ci.test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A recipe folder with `files`; returns it and the findings for
    /// `compose.yml` (plus any other compose file named in `compose`).
    fn found_in(files: &[(&str, &str)], compose: &[&str]) -> (tempfile::TempDir, Vec<Violation>) {
        let d = tempfile::tempdir().unwrap();
        for (f, t) in files {
            if f.ends_with(".yml") && !f.contains("broken") {
                assert!(
                    yaml_rust2::YamlLoader::load_from_str(t).is_ok(),
                    "the test's own {f} must parse:\n{t}"
                );
            }
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        let compose: Vec<String> = compose.iter().map(|s| s.to_string()).collect();
        let v = findings(
            &RecipeVersion::read(d.path()).unwrap(),
            &compose,
            &env(),
            &Scope {
                domain: DOMAIN,
                stack: STACK,
            },
        );
        (d, v)
    }

    fn found(compose: &str) -> Vec<Violation> {
        found_in(&[("compose.yml", compose)], &["compose.yml"]).1
    }

    fn app(body: &str) -> String {
        format!("version: \"3.8\"\nservices:\n  app:\n    image: x\n{body}")
    }

    fn one(v: &[Violation], kind: Kind) -> &Violation {
        let of: Vec<&Violation> = v.iter().filter(|x| x.kind == kind).collect();
        assert_eq!(of.len(), 1, "one {kind:?} in {v:#?}");
        of[0]
    }

    const GOOD: &str = r#"
version: "3.8"
services:
  app:
    image: ccci/nginx:1.22.1
    networks: [proxy, internal]
    volumes:
      - content:/usr/share/nginx/html
      - /cache
      - type: tmpfs
        target: /tmp
      - type: volume
        source: data
        target: /data
    secrets: [api_token]
    configs:
      - source: nginx_conf
        target: /etc/nginx/conf.d/default.conf
    cap_drop: [ALL]
    security_opt: [no-new-privileges, "no-new-privileges=true"]
    privileged: false
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 256M}
      labels:
        - "traefik.enable=true"
        - "traefik.http.services.${STACK_NAME}.loadbalancer.server.port=80"
        - "traefik.http.routers.${STACK_NAME}.rule=Host(`${DOMAIN}`${EXTRA_DOMAINS})"
        - "traefik.http.routers.${STACK_NAME}.entrypoints=web-secure"
        - "traefik.http.routers.${STACK_NAME}-www.rule=Host(`www.${DOMAIN}`) && PathPrefix(`/`) || (Host(`${DOMAIN}`) && !Header(`X`, `y`))"
        - "traefik.http.routers.${STACK_NAME}-www.middlewares=${STACK_NAME}-redirect"
        - "traefik.http.routers.${STACK_NAME}-www.service=noop@internal"
        - "traefik.http.middlewares.${STACK_NAME}-redirect.redirectregex.regex=^https://www.(.*)"
        - "traefik.http.routers.${STACK_NAME}.tls.domains[0].main=${DOMAIN}"
        - "traefik.tcp.routers.${STACK_NAME}_tls.rule=HostSNI(`${DOMAIN}`)"
        - "coop-cloud.${STACK_NAME}.version=1.0.0+1.22.1"
networks:
  proxy:
    external: true
  internal:
volumes:
  content:
  data:
    name: ${STACK_NAME}_data
secrets:
  api_token:
    external: true
    name: ${STACK_NAME}_api_token_${SECRET_API_TOKEN_VERSION}
configs:
  nginx_conf:
    name: ${STACK_NAME}_nginx_conf_v1
    file: nginx.conf.tmpl
"#;

    #[test]
    fn what_stays_allowed() {
        let (_d, v) = found_in(
            &[("compose.yml", GOOD), ("nginx.conf.tmpl", "server {}\n")],
            &["compose.yml"],
        );
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn bind_mounts_above_all_the_docker_socket() {
        let v = found(&app("    volumes:\n      - ${SOCK}:/var/run/docker.sock:ro\n"));
        let x = one(&v, Kind::BindMount);
        assert_eq!(x.subject, "/var/run/docker.sock");
        assert_eq!(x.key, "services.app.volumes[0]");
        assert_eq!(
            x.to_string(),
            "compose.yml: services.app.volumes[0]: bind mount of the host path /var/run/docker.sock (the Docker socket: whoever holds it controls the host and every run on it)"
        );
        for spec in ["./data:/x", "../../etc:/x", "~/.ssh:/x", "/:/host", "sub/dir:/x"] {
            let v = found(&app(&format!("    volumes:\n      - {spec}\n")));
            assert_eq!(one(&v, Kind::BindMount).key, "services.app.volumes[0]", "{spec}");
        }
        let v = found(&app(
            "    volumes:\n      - type: bind\n        source: /etc\n        target: /x\n",
        ));
        assert_eq!(one(&v, Kind::BindMount).subject, "/etc");
        let v = found(&format!(
            "{}    volumes: [data:/x]\nvolumes:\n  data:\n    driver: local\n    driver_opts: {{type: none, o: bind, device: /var/lib/docker}}\n",
            app("")
        ));
        let x = one(&v, Kind::BindMount);
        assert_eq!(
            (x.key.as_str(), x.subject.as_str()),
            ("volumes.data.driver_opts.device", "/var/lib/docker")
        );
    }

    #[test]
    fn privileged_capabilities_devices_host_modes_security_opts_ports() {
        let v = found(&app("    privileged: ${PRIV}\n"));
        assert_eq!(
            one(&v, Kind::Privileged).key,
            "services.app.privileged",
            "yes is true to docker/cli"
        );
        let v = found(&app("    privileged: true\n    cap_add: [cap_sys_admin, NET_ADMIN]\n"));
        assert_eq!(v.iter().filter(|x| x.kind == Kind::CapAdd).count(), 2);
        assert!(v.iter().any(|x| x.subject == "SYS_ADMIN"), "{v:#?}");
        let v = found(&app("    devices: [\"/dev/kvm:/dev/kvm\"]\n"));
        assert_eq!(one(&v, Kind::Device).subject, "/dev/kvm");
        for (k, val) in [
            ("network_mode", "host"),
            ("pid", "host"),
            ("ipc", "host"),
            ("ipc", "container:abc"),
            ("userns_mode", "host"),
            ("cgroup_parent", "/system.slice"),
        ] {
            let v = found(&app(&format!("    {k}: \"{val}\"\n")));
            let x = one(&v, Kind::HostMode);
            assert_eq!((x.subject.as_str(), x.key.clone()), (k, format!("services.app.{k}")));
        }
        assert!(found(&app("    network_mode: bridge\n")).is_empty());
        for o in [
            "seccomp:unconfined",
            "apparmor=unconfined",
            "label:disable",
            "seccomp=/etc/x.json",
        ] {
            let v = found(&app(&format!("    security_opt: [\"{o}\"]\n")));
            assert_eq!(one(&v, Kind::SecurityOpt).subject, o);
        }
        let v = found(&app(
            "    ports:\n      - \"127.0.0.1:8010:80\"\n      - \"80\"\n      - {target: 53, published: 53, protocol: udp}\n",
        ));
        let ports: Vec<&str> = v.iter().map(|x| x.subject.as_str()).collect();
        assert_eq!(ports, ["8010", "*", "53"]);
    }

    #[test]
    fn names_outside_the_stack() {
        let v = found(&format!(
            "{}networks:\n  proxy: {{external: true}}\n  host: {{external: true, name: host}}\n  backend: {{name: other_app_internal}}\n\
             secrets:\n  key: {{external: true, name: traefik_ci_test_ssl_key_v1}}\n  plain: {{external: true}}\n\
             volumes:\n  certs: {{external: true, name: traefik_letsencrypt}}\n",
            app("")
        ));
        let names: Vec<(&str, &str)> = v.iter().map(|x| (x.key.as_str(), x.subject.as_str())).collect();
        assert_eq!(
            names,
            [
                ("networks.backend.name", "other_app_internal"),
                ("networks.host.external", "host"),
                ("secrets.key.external", "traefik_ci_test_ssl_key_v1"),
                ("secrets.plain.external", "plain"),
                ("volumes.certs.external", "traefik_letsencrypt"),
            ]
        );
        assert!(v.iter().all(|x| x.kind == Kind::Name));
    }

    #[test]
    fn files_outside_the_recipe_symlinks_and_size() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("recipe");
        std::fs::create_dir_all(r.join("conf")).unwrap();
        std::fs::write(
            r.join("compose.yml"),
            format!(
                "{}    env_file: [../secrets.env, app.env]\nconfigs:\n  a: {{file: conf/passwd}}\n  b: {{file: /etc/hostname}}\n  c: {{file: conf/ok}}\n\
                 secrets:\n  s: {{file: ../../x}}\n",
                app("")
            ),
        )
        .unwrap();
        std::fs::write(r.join("conf/ok"), "fine").unwrap();
        std::fs::write(r.join("app.env"), "A=1").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("conf/passwd")).unwrap();
        std::os::unix::fs::symlink("ok", r.join("conf/inside")).unwrap();
        std::os::unix::fs::symlink("../../gone", r.join("dangling-out")).unwrap();
        std::fs::write(d.path().join("secrets.env"), "TOKEN=x").unwrap();
        let big = std::fs::File::create(r.join("big.bin")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let v = findings(
            &RecipeVersion::read(&r).unwrap(),
            &["compose.yml".into()],
            &env(),
            &Scope {
                domain: DOMAIN,
                stack: STACK,
            },
        );
        let got: Vec<(&str, &str, &str)> = v
            .iter()
            .map(|x| (x.file.as_str(), x.key.as_str(), x.subject.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("big.bin", "", "big.bin"),
                ("compose.yml", "configs.a.file", "conf/passwd"),
                ("compose.yml", "configs.b.file", "/etc/hostname"),
                ("compose.yml", "secrets.s.file", "../../x"),
                ("compose.yml", "services.app.env_file[0]", "../secrets.env"),
                ("conf/passwd", "", "conf/passwd"),
                ("dangling-out", "", "dangling-out"),
            ],
            "{v:#?}"
        );
        assert!(v.iter().all(|x| x.kind == Kind::File));
        let passwd = v.iter().find(|x| x.key == "configs.a.file").unwrap();
        assert!(passwd.what.contains("/etc/passwd"), "{passwd}");
    }

    #[test]
    fn traefik_rules_may_name_only_the_apps_domain() {
        let rule = |r: &str| {
            found(&app(&format!(
                "    deploy:\n      labels:\n        - 'traefik.http.routers.${{STACK_NAME}}.rule={r}'\n"
            )))
        };
        for ok in [
            "Host(`${DOMAIN}`)",
            "Host(`${DOMAIN}`${EXTRA_DOMAINS})",
            "Host(`WWW.${DOMAIN}.`)",
            "host(\"${DOMAIN}\") && PathPrefix(`/api`)",
            "(Host(`a.${DOMAIN}`) || Host(`b.${DOMAIN}`)) && Method(`GET`)",
            "Host(`${DOMAIN}`) && !Host(`other.example`)",
        ] {
            assert!(rule(ok).is_empty(), "{ok}: {:#?}", rule(ok));
        }
        let v = rule("Host(`${DOMAIN}`) || Host(`${OTHER}`)");
        let x = one(&v, Kind::TraefikHost);
        assert_eq!(x.subject, "dashboard.ci.test");
        assert_eq!(x.key, "services.app.deploy.labels[0]");
        assert!(x.what.contains("names the host dashboard.ci.test"), "{x}");
        for (bad, subjects) in [
            ("Host(`${DOMAIN}.evil.org`)", vec!["tmpl-site-1a2b3c.ci.test.evil.org"]),
            ("Host(`x${DOMAIN}`)", vec!["xtmpl-site-1a2b3c.ci.test"]),
            ("Host(`*.ci.test`)", vec!["*"]),
            ("HostRegexp(`.+`)", vec!["*"]),
            ("PathPrefix(`/`)", vec!["*"]),
            ("Host(`${DOMAIN}`) || PathPrefix(`/admin`)", vec!["*"]),
            ("!Host(`${DOMAIN}`)", vec!["*"]),
            ("Host(`${DOMAIN}`", vec!["*"]),
            ("Host(`ci.test`)", vec!["ci.test"]),
            ("Host(`${DOMAIN}`) || Host(`a.org`) && Path(`/x`)", vec!["a.org"]),
        ] {
            let mut got: Vec<String> = rule(bad).into_iter().map(|x| x.subject).collect();
            got.sort();
            let mut want: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{bad}");
        }
        let tcp = |r: &str| {
            found(&app(&format!(
                "    deploy:\n      labels:\n        traefik.tcp.routers.{STACK}_db.rule: \"{r}\"\n"
            )))
        };
        assert!(tcp("HostSNI(`db.${DOMAIN}`)").is_empty());
        let v = tcp("HostSNI(`*`)");
        assert_eq!(one(&v, Kind::TraefikHost).subject, "*");
        assert_eq!(
            one(&v, Kind::TraefikHost).key,
            format!("services.app.deploy.labels[\"traefik.tcp.routers.{STACK}_db.rule\"]")
        );
        let v = found(&app(&format!(
            "    deploy:\n      labels:\n        - traefik.udp.routers.{STACK}_dns.entrypoints=dns\n        - traefik.udp.routers.{STACK}_dns.service={STACK}\n"
        )));
        assert_eq!(one(&v, Kind::TraefikHost).subject, "*", "one finding per UDP router");
        let v = found(&app(&format!(
            "    deploy:\n      labels:\n        - traefik.http.services.{STACK}.loadbalancer.server.url=http://172.17.0.1:8010\n        - traefik.http.routers.{STACK}.tls.domains[0].sans=${{DOMAIN}},ci.test\n"
        )));
        let mut got: Vec<&str> = v.iter().map(|x| x.subject.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, ["*", "ci.test"]);
    }

    #[test]
    fn traefik_names_must_be_the_stacks() {
        let v = found(&app(
            "    labels:\n      - traefik.http.routers.dashboard.rule=Host(`${DOMAIN}`)\n      - traefik.http.routers.${STACK_NAME}.service=api@internal\n      - traefik.http.middlewares.auth.basicauth.users=x\n",
        ));
        let got: Vec<(&str, &str)> = v
            .iter()
            .filter(|x| x.kind == Kind::TraefikName)
            .map(|x| (x.key.as_str(), x.subject.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("services.app.labels[0]", "dashboard"),
                ("services.app.labels[1]", "api@internal"),
                ("services.app.labels[2]", "auth"),
            ]
        );
        assert!(v
            .iter()
            .find(|x| x.subject == "api@internal")
            .unwrap()
            .what
            .contains("Traefik's own"));
    }

    #[test]
    fn merge_keys_are_resolved_as_docker_reads_them() {
        let v = found(
            "x-bad: &bad\n  privileged: true\n  volumes: [\"/etc:/etc\"]\nservices:\n  app:\n    <<: *bad\n    image: x\n  db:\n    <<: [*bad]\n    image: y\n    privileged: false\n    volumes: [data:/d]\nvolumes:\n  data:\n",
        );
        let got: Vec<(&str, Kind)> = v.iter().map(|x| (x.key.as_str(), x.kind)).collect();
        assert_eq!(
            got,
            [
                ("services.app.privileged", Kind::Privileged),
                ("services.app.volumes[0]", Kind::BindMount),
            ],
            "the service's own keys win over the merged ones"
        );
    }

    #[test]
    fn every_compose_file_is_checked_alone_and_broken_ones_are_left_to_the_deploy() {
        let (_d, v) = found_in(
            &[
                ("compose.yml", GOOD),
                ("nginx.conf.tmpl", "x"),
                ("compose.extra.yml", "services:\n  app:\n    privileged: true\n"),
                ("compose.broken.yml", "services: [\n"),
                ("compose.off.yml", "services:\n  app:\n    privileged: true\n"),
            ],
            &[
                "compose.yml",
                "compose.extra.yml",
                "compose.broken.yml",
                "compose.gone.yml",
            ],
        );
        let got: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            ["compose.extra.yml: services.app.privileged: privileged: every capability and device of the host, no confinement"],
            "files COMPOSE_FILE does not name are not deployed"
        );
    }

    #[test]
    fn allowances_cover_by_name_only() {
        let (d, _) = found_in(&[], &[]);
        std::fs::write(
            d.path().join("compose.yml"),
            app("    privileged: true\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\", \"/etc:/etc\"]\n    cap_add: [CAP_NET_ADMIN]\n    ports: [\"25:25\"]\n"),
        )
        .unwrap();
        let mut allow = Allowances::default();
        allow.allow(
            Kind::BindMount,
            "/var/run//docker.sock",
            "Traefik reads the services from the Docker API",
        );
        allow.allow(Kind::Privileged, "", "needs it");
        allow.allow(Kind::CapAdd, "net_admin", "routes");
        allow.allow(Kind::Port, "*", "a mail server");
        let r = check(
            &RecipeVersion::read(d.path()).unwrap(),
            &["compose.yml".into()],
            &env(),
            &Scope {
                domain: DOMAIN,
                stack: STACK,
            },
            &allow,
        );
        let refused: Vec<&str> = r.refused.iter().map(|x| x.subject.as_str()).collect();
        assert_eq!(refused, ["/etc"], "a path is allowed exactly, not its neighbours");
        assert_eq!(r.allowed.len(), 4, "{:#?}", r.allowed);
        assert!(r
            .allowed
            .iter()
            .any(|(v, why)| v.kind == Kind::BindMount && why.starts_with("Traefik")));
        assert_eq!(
            Kind::BindMount.toml_lines("/etc"),
            "[allow.bind_mounts]\n\"/etc\" = \"<why the recipe needs it>\""
        );
        assert_eq!(
            Kind::Privileged.toml_lines(""),
            "[allow]\nprivileged = \"<why the recipe needs it>\""
        );
        let m = allow.manifest();
        assert_eq!(m["privileged"], "needs it");
        assert_eq!(m["cap_add"]["NET_ADMIN"], "routes");
        assert_eq!(
            m["bind_mounts"]["/var/run/docker.sock"],
            "Traefik reads the services from the Docker API"
        );
    }

    proptest::proptest! {
        /// Any rule text and any compose text: an answer, never a panic;
        /// a rule that does not parse is refused, never passed.
        #[test]
        fn never_panics(rule in "[ A-Za-z()`\"!&|,*.$\\{}]{0,40}", yaml in "[ a-z:\\[\\]{}/.$<*&\\-\n]{0,120}") {
            if rule::parse(&interpolate_lenient(&rule, &env())).is_err() {
                let v = found(&app(&format!("    labels:\n      - 'traefik.http.routers.{STACK}.rule={}'\n", rule.replace('\'', "''"))));
                proptest::prop_assert!(v.iter().any(|x| x.subject == "*"), "{rule}: {v:?}");
            }
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("compose.yml"), &yaml).unwrap();
            let _ = findings(&RecipeVersion::read(d.path()).unwrap(), &["compose.yml".into()], &env(), &Scope { domain: DOMAIN, stack: STACK });
        }
    }

    #[test]
    fn rule_parser() {
        use rule::{parse, Expr};
        assert_eq!(
            parse("Host(`a`, \"b\\\"c\")").unwrap(),
            Expr::Call("Host".into(), vec!["a".into(), "b\"c".into()])
        );
        assert!(
            matches!(parse("A() && B() || C()").unwrap(), Expr::Or(..)),
            "&& binds tighter"
        );
        for bad in [
            "",
            "Host",
            "Host(`a`",
            "Host(a)",
            "Host(`a`) &",
            "Host(`a`))",
            "Host(`a`) Host(`b`)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
