//! abra's lint rules R001-R015 (refs, texts and severities as abra has
//! them) and the check of each against a [`Checkout`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::checkout::Checkout;
use super::{Finding, LintError, Rule, Severity};

pub(super) const fn rule(
    reference: &'static str,
    severity: Severity,
    description: &'static str,
    how_to_fix: &'static str,
) -> Rule {
    Rule {
        reference,
        severity,
        description,
        how_to_fix,
    }
}

// R001 and the start of R002 are verbatim from pkg.go.dev (see the module
// doc); the rest is a recollection of abra's `LintRules`, unverified
// (docs/abra.md, "Lint rules"). The typos ("servce", "config version are") are
// abra's as recalled.
pub(super) const R001: Rule = rule(
    "R001",
    Severity::Warn,
    "compose config has expected version",
    "ensure 'version: \"3.8\"' in compose configs",
);
pub(super) const R002: Rule = rule(
    "R002",
    Severity::Warn,
    "healthcheck enabled for all services",
    "wire up healthchecks",
);
pub(super) const R003: Rule = rule(
    "R003",
    Severity::Warn,
    "all images use a tag",
    "use a tag for all images",
);
pub(super) const R004: Rule = rule(
    "R004",
    Severity::Warn,
    "no unstable tags",
    "tag all images with stable tags",
);
pub(super) const R005: Rule = rule(
    "R005",
    Severity::Warn,
    "tags use semver-like format",
    "use semver-like tags",
);
pub(super) const R006: Rule = rule(
    "R006",
    Severity::Warn,
    "has published catalogue version",
    "publish a recipe version to the catalogue",
);
pub(super) const R007: Rule = rule(
    "R007",
    Severity::Warn,
    "README.md metadata filled in",
    "fill out all the metadata",
);
pub(super) const R008: Rule = rule(
    "R008",
    Severity::Error,
    ".env.sample provided",
    "create an example .env.sample",
);
pub(super) const R009: Rule = rule(
    "R009",
    Severity::Error,
    "one service named 'app'",
    "name a servce 'app'",
);
pub(super) const R010: Rule = rule(
    "R010",
    Severity::Error,
    "traefik routing enabled",
    "include \"traefik.enable=true\" deploy label",
);
pub(super) const R011: Rule = rule(
    "R011",
    Severity::Error,
    "all services have images",
    "ensure \"image: ...\" set on all services",
);
pub(super) const R012: Rule = rule(
    "R012",
    Severity::Error,
    "config version are vendored",
    "vendor config versions in an abra.sh",
);
pub(super) const R013: Rule = rule(
    "R013",
    Severity::Warn,
    "git.coopcloud.tech repo exists",
    "upload your recipe to git.coopcloud.tech/coop-cloud/...",
);
pub(super) const R014: Rule = rule(
    "R014",
    Severity::Error,
    "only annotated tags used for recipe version",
    "replace lightweight tag with annotated tag",
);
pub(super) const R015: Rule = rule(
    "R015",
    Severity::Warn,
    "long secret names",
    "reduce length of secret names to 12 chars",
);

/// The rules, in ref order (R016 is unknown and left out; see the module doc).
pub const RULES: [Rule; 15] = [
    R001, R002, R003, R004, R005, R006, R007, R008, R009, R010, R011, R012, R013, R014, R015,
];

/// The longest secret name R015 accepts: "reduce length of secret names to
/// 12 chars" (recollection of abra's `LintSecretLengths`, docs/abra.md,
/// "Lint rules").
pub const MAX_SECRET_NAME_LENGTH: usize = 12;

/// Why R006 and R013 are never checked here.
pub(super) const NETWORK_SKIP: &str =
    "needs the network (recipes.coopcloud.tech / git.coopcloud.tech), which cc-ci's runs do not reach";

/// Names of `_VERSION` variables that `text` references (`$X_VERSION`,
/// `${X_VERSION}`, `${X_VERSION:-v1}` …).
pub(super) fn version_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let after = after.strip_prefix('{').unwrap_or(after);
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        if name.ends_with("_VERSION") {
            out.insert(name.to_string());
        }
        rest = &after[end..];
    }
    out
}

// ---------------------------------------------------------------------------
// Image references (docker/distribution's `reference`, as far as R003–R005 need)

/// An image reference, split as `reference.ParseNormalizedNamed` would.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ImageRef {
    tag: Option<String>,
    digest: bool,
}

pub(super) fn parse_image(image: &str) -> Result<ImageRef, String> {
    if image.is_empty() {
        return Err("no image".into());
    }
    if image.chars().any(char::is_whitespace) {
        return Err(format!("{image:?} is not a valid reference"));
    }
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => {
            if !d.contains(':') {
                return Err(format!("{image:?}: invalid digest"));
            }
            (n, true)
        }
        None => (image, false),
    };
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match named[last_slash..].rfind(':') {
        Some(c) => (&named[..last_slash + c], Some(&named[last_slash + c + 1..])),
        None => (named, None),
    };
    if name.is_empty() {
        return Err(format!("{image:?}: no repository name"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with a dot or a port, or `localhost`, is a registry.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
        components.remove(0);
    }
    let path_ok = components.iter().all(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    });
    if !path_ok {
        return Err(format!(
            "{image:?}: repository name must be lowercase letters, digits and . _ -"
        ));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
        if !ok {
            return Err(format!("{image:?}: invalid tag"));
        }
    }
    Ok(ImageRef {
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Runs `check` on every service's image (merged config); a service whose
/// image does not parse fails the rule, as abra returns the parse error.
pub(super) fn per_image(c: &Checkout, rule: &'static Rule, check: impl Fn(&ImageRef) -> Option<String>) -> Finding {
    let problems = c
        .services
        .iter()
        .filter_map(|(name, s)| {
            let image = s.image.as_deref().unwrap_or("");
            match parse_image(image) {
                Ok(r) => check(&r).map(|why| format!("service {name}: {image} {why}")),
                Err(e) => Some(format!("service {name}: {e}")),
            }
        })
        .collect();
    Finding::from_problems(rule, problems)
}

// ---------------------------------------------------------------------------
// The rules

/// R001: every compose file says `version: "3.8"`. abra's
/// `LintComposeVersion` compares the loaded config's version with "3.8"
/// (recollection: recent abra may return true either way; unverified).
pub(super) fn r001(c: &Checkout) -> Finding {
    let problems = c
        .compose
        .iter()
        .filter(|(_, d)| d.version.as_deref() != Some("3.8"))
        .map(|(f, d)| match &d.version {
            Some(v) => format!("{f}: version {v:?}"),
            None => format!("{f}: no version"),
        })
        .collect();
    Finding::from_problems(&R001, problems)
}

/// R002: every service has a healthcheck enabled. abra checks
/// `HealthCheck != nil`, so `disable: true` would pass there; cc-ci takes
/// the rule at its word ("healthcheck enabled for all services"): a
/// disabled healthcheck (`disable: true`, or `test: ["NONE"]`, Docker's
/// spelling of the same) is none, and keeps the recipe from exemplary.
pub(super) fn r002(c: &Checkout) -> Finding {
    let problems = c
        .services
        .iter()
        .filter_map(|(n, s)| match s.healthcheck {
            Some(true) => None,
            Some(false) => Some(format!(
                "service {n} has its healthcheck disabled (disable: true or test NONE)"
            )),
            None => Some(format!("service {n} has no healthcheck")),
        })
        .collect();
    Finding::from_problems(&R002, problems)
}

/// R003: every image has a tag or digest (abra: not `reference.IsNameOnly`).
pub(super) fn r003(c: &Checkout) -> Finding {
    per_image(c, &R003, |r| {
        (r.tag.is_none() && !r.digest).then(|| "has no tag".into())
    })
}

/// R004: every image is tagged, and not `latest` (recollection of
/// `LintNoUnstableTags`: a reference that is not `NamedTagged` fails too).
pub(super) fn r004(c: &Checkout) -> Finding {
    per_image(c, &R004, |r| match r.tag.as_deref() {
        None => Some("has no tag".into()),
        Some("latest") => Some("uses the unstable tag latest".into()),
        Some(_) => None,
    })
}

/// R005: every tag is semver-like, which abra takes to mean it contains a
/// `.` (recollection of `LintSemverLikeTags`).
pub(super) fn r005(c: &Checkout) -> Finding {
    per_image(c, &R005, |r| match r.tag.as_deref() {
        None => Some("has no tag".into()),
        Some(t) if !t.contains('.') => Some("has a tag without a dot".into()),
        Some(_) => None,
    })
}

/// R007: README.md's metadata block is filled in. As recalled from abra's
/// `GetRecipeFeaturesAndCategory` + `LintMetadataFilledIn`: the text
/// between `<!-- metadata -->` and `<!-- endmetadata -->`; on each line
/// holding `**Key**`, the value is the line without `* **Key**:`; Category,
/// Backups, Email, Healthcheck and SSO must be non-empty and the Image row
/// must have three comma-separated parts with an image name first. Status
/// and Tests are not checked, and a `?` counts as filled in.
pub(super) fn r007(c: &Checkout) -> Finding {
    let Some(readme) = &c.readme else {
        return Finding::from_problems(&R007, vec!["README.md is missing".into()]);
    };
    let block = readme
        .find("<!-- metadata -->")
        .map(|i| &readme[i + "<!-- metadata -->".len()..])
        .and_then(|rest| rest.find("<!-- endmetadata -->").map(|j| &rest[..j]));
    let Some(block) = block else {
        return Finding::from_problems(
            &R007,
            vec!["README.md has no <!-- metadata --> ... <!-- endmetadata --> block".into()],
        );
    };
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for line in block.lines() {
        for key in ["Category", "Backups", "Email", "Healthcheck", "SSO", "Image"] {
            let marker = format!("**{key}**");
            if line.contains(&marker) {
                let prefix = format!("* {marker}:");
                values.insert(key, line.strip_prefix(&prefix).unwrap_or(line).trim().to_string());
            }
        }
    }
    let mut problems = Vec::new();
    for key in ["Category", "Backups", "Email", "Healthcheck", "SSO"] {
        if values.get(key).is_none_or(String::is_empty) {
            problems.push(format!("{key} is not filled in"));
        }
    }
    if metadata_image(values.get("Image").map_or("", String::as_str)).is_none() {
        problems.push("Image is not filled in as [`image`](url), rating, source".into());
    }
    Finding::from_problems(&R007, problems)
}

/// The image name of a metadata Image row ``[`nginx`](url), 4, upstream``,
/// or `None` when the row has fewer than three comma-separated parts or no name.
pub(super) fn metadata_image(row: &str) -> Option<String> {
    let parts: Vec<&str> = row.split(',').collect();
    if parts.len() < 3 {
        return None;
    }
    let first = parts[0].trim();
    let name = first.split("](").next().unwrap_or(first);
    let name = name.trim_matches(|c| c == '[' || c == ']' || c == '`').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// R008: `.env.sample` exists. abra stops before its table instead
/// ("unable to validate recipe: .env.sample…", observed by the earlier
/// cc-ci); cc-ci reports the rule as failed.
pub(super) fn r008(c: &Checkout) -> Finding {
    let problems = match c.env_sample {
        Some(_) => vec![],
        None => vec![".env.sample is missing (abra stops with \"unable to validate recipe\")".into()],
    };
    Finding::from_problems(&R008, problems)
}

/// R009: some service is named `app`.
pub(super) fn r009(c: &Checkout) -> Finding {
    let problems = if c.services.contains_key("app") {
        vec![]
    } else {
        let names: Vec<&str> = c.services.keys().map(String::as_str).collect();
        vec![format!("no service named app (services: {})", names.join(", "))]
    };
    Finding::from_problems(&R009, problems)
}

/// R010: some service has the deploy label `traefik.enable=true`; skipped
/// when `.env.sample` has no `DOMAIN` (abra's
/// `LintTraefikEnabledSkipCondition`: no domain, no routing).
pub(super) fn r010(c: &Checkout) -> Finding {
    let Some(env) = &c.env_sample else {
        return Finding::skipped(
            &R010,
            ".env.sample is missing (R008), so whether DOMAIN is set is unknown",
        );
    };
    if env.get("DOMAIN").is_none() {
        return Finding::skipped(&R010, ".env.sample has no DOMAIN: the recipe needs no routing");
    }
    let enabled = c
        .services
        .values()
        .any(|s| s.labels.get("traefik.enable").is_some_and(|v| v.trim() == "true"));
    let problems = if enabled {
        vec![]
    } else {
        vec!["no service has the deploy label traefik.enable=true".into()]
    };
    Finding::from_problems(&R010, problems)
}

/// R011: every service (merged over all compose files) has an image.
pub(super) fn r011(c: &Checkout) -> Finding {
    let problems = c
        .services
        .iter()
        .filter(|(_, s)| s.image.as_deref().is_none_or(str::is_empty))
        .map(|(n, _)| format!("service {n} has no image"))
        .collect();
    Finding::from_problems(&R011, problems)
}

/// R012: config versions are vendored in `abra.sh`. abra (recollection):
/// `abra.sh` must exist when a service uses configs. cc-ci also requires
/// each `${…_VERSION}` that a config's `name:` uses to be exported there.
pub(super) fn r012(c: &Checkout) -> Finding {
    let mut problems = Vec::new();
    if c.abra_sh.is_none() && c.services.values().any(|s| s.uses_configs) {
        problems.push("services use configs but abra.sh is missing".to_string());
    }
    let empty = BTreeMap::new();
    let exports = c.abra_sh.as_ref().map_or(&empty, |sh| &sh.exports);
    for (f, doc) in &c.compose {
        for (id, top) in &doc.configs {
            for var in version_vars(top.name.as_deref().unwrap_or("")) {
                if !exports.contains_key(&var) {
                    problems.push(format!(
                        "{f}: config {id} is named with ${{{var}}}, which abra.sh does not export"
                    ));
                }
            }
        }
    }
    Finding::from_problems(&R012, problems)
}

/// R014: every git tag is annotated (abra's `LintValidTags` fails on any
/// lightweight tag, release-named or not). Skipped when the folder is not
/// the top of a git checkout (a plain release tree, or a folder inside
/// some other repository whose tags are not the recipe's).
pub(super) fn r014(dir: &Path) -> Result<Finding, LintError> {
    let git_err = |detail: String| LintError::Git {
        dir: dir.to_path_buf(),
        detail,
    };
    let run = |args: &[&str]| crate::recipe::git::run(dir, args).map_err(|e| git_err(e.detail()));
    let not_a_checkout = || {
        Ok(Finding::skipped(
            &R014,
            "not a git checkout (no repository at the recipe folder's top), so there are no tags to check",
        ))
    };
    // With a `.git` of its own the folder is a checkout: git failing on it
    // (not installed, "dubious ownership" …) must not pass for "no tags".
    let own_git = dir.join(".git").exists();
    let top = match run(&["rev-parse", "--show-toplevel"]) {
        Ok(top) => top,
        Err(_) if !own_git => return not_a_checkout(),
        Err(e) => return Err(e),
    };
    let top_dir = PathBuf::from(top.trim());
    let same = match (top_dir.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return not_a_checkout();
    }
    let out = run(&["for-each-ref", "refs/tags", "--format=%(refname:short)%09%(objecttype)"])?;
    let lightweight: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, kind)| *kind != "tag")
        .map(|(name, _)| name.to_string())
        .collect();
    let problems = if lightweight.is_empty() {
        vec![]
    } else {
        vec![format!("lightweight tags: {}", lightweight.join(", "))]
    };
    Ok(Finding::from_problems(&R014, problems))
}

/// R015: every secret name (the key under a compose file's top-level
/// `secrets:`, not its `name:`) is at most [`MAX_SECRET_NAME_LENGTH`]
/// characters (recollection of `LintSecretLengths`: `len(name) > 12` fails).
pub(super) fn r015(c: &Checkout) -> Finding {
    let mut long: BTreeSet<&str> = BTreeSet::new();
    for (_, doc) in &c.compose {
        long.extend(
            doc.secrets
                .keys()
                .filter(|s| s.chars().count() > MAX_SECRET_NAME_LENGTH)
                .map(String::as_str),
        );
    }
    let problems = long
        .into_iter()
        .map(|s| format!("secret {s} is {} characters long", s.chars().count()))
        .collect();
    Finding::from_problems(&R015, problems)
}
