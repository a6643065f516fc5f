//! The layering of `cc_ci`, as `ARCHITECTURE.md` ("Invariants") states it,
//! held: every source file of a subsystem is read, its comments and its
//! `#[cfg(test)]` module dropped, and each `crate::<subsystem>` path and
//! each outside crate it names is checked against the rules below. A rule
//! broken fails with the file, the line and the rule.
//!
//! The order, bottom up: `results`, `state` and `recipe` (ground: plain
//! data and files, no Docker, no network), then `deploy`, `probe`,
//! `settings`, `host`, `run`. A subsystem imports only those below it.

use std::path::{Path, PathBuf};

/// A subsystem, what it may import of the others, and the outside crates
/// (or `std` paths) it must not name.
struct Rule {
    layer: &'static str,
    may_import: &'static [&'static str],
    forbidden: &'static [&'static str],
}

/// Talking to Docker, the network, a browser or a child process.
const EFFECTS: &[&str] = &[
    "bollard",
    "tokio",
    "hyper",
    "hyper_util",
    "reqwest",
    "chromiumoxide",
    "std::process::Command",
];

/// Docker and the network (a recipe is read with git, so processes are allowed there).
const DOCKER_NET: &[&str] = &["bollard", "tokio", "hyper", "hyper_util", "reqwest", "chromiumoxide"];

const RULES: &[Rule] = &[
    Rule {
        layer: "results",
        may_import: &[],
        forbidden: EFFECTS,
    },
    Rule {
        layer: "state",
        may_import: &[],
        forbidden: EFFECTS,
    },
    Rule {
        layer: "recipe",
        may_import: &[],
        forbidden: DOCKER_NET,
    },
    Rule {
        layer: "deploy",
        may_import: &["recipe", "state", "results"],
        forbidden: &["chromiumoxide"],
    },
    Rule {
        layer: "probe",
        may_import: &["deploy", "recipe", "state", "results"],
        forbidden: &["chromiumoxide"],
    },
    Rule {
        layer: "settings",
        may_import: &["deploy", "probe", "recipe", "state", "results"],
        forbidden: &["bollard", "tokio", "hyper", "hyper_util", "reqwest", "chromiumoxide"],
    },
    Rule {
        layer: "host",
        may_import: &["deploy", "probe", "recipe", "state", "results"],
        forbidden: &["chromiumoxide"],
    },
    Rule {
        layer: "run",
        may_import: &["deploy", "probe", "settings", "host", "recipe", "state", "results"],
        forbidden: &[],
    },
];

/// The code of a file without comments and without its `#[cfg(test)]`
/// module (tests may reach anywhere), as (line number, line) pairs.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block_comment = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if in_block_comment {
            if let Some(end) = line.find("*/") {
                in_block_comment = false;
                out.push((i + 1, line[end + 2..].to_string()));
            }
            continue;
        }
        if let Some(start) = line.find("/*") {
            if !line[start..].contains("*/") {
                in_block_comment = true;
            }
            out.push((i + 1, line[..start].to_string()));
            continue;
        }
        let code = match line.find("//") {
            Some(c) => &line[..c],
            None => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// Whether `line` names the path or crate `name` as a whole word (`name::`
/// or `use name` or `name;`), not as part of a longer identifier.
fn names(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let word_end = matches!(after, Some(':') | Some(';') | Some(' ') | Some(',') | Some('}') | None);
        word_start && word_end
    })
}

/// The rules `text` (a file of `rule.layer`) breaks: (line, what).
fn violations(rule: &Rule, text: &str) -> Vec<(usize, String)> {
    let all = [
        "results", "state", "recipe", "deploy", "probe", "settings", "host", "run",
    ];
    let mut out = Vec::new();
    for (n, line) in code_lines(text) {
        for other in all {
            if other == rule.layer || rule.may_import.contains(&other) {
                continue;
            }
            if line.contains(&format!("crate::{other}::")) || line.contains(&format!("crate::{other};")) {
                out.push((n, format!("imports `{other}`, which `{}` may not", rule.layer)));
            }
        }
        if line.contains("super::super::") {
            out.push((
                n,
                "climbs out of its subsystem with super::super (name the path from crate::)".into(),
            ));
        }
        for f in rule.forbidden {
            if names(&line, f) {
                out.push((n, format!("names `{f}`, which `{}` must not use", rule.layer)));
            }
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_subsystem_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut files = 0;
    for rule in RULES {
        // `results` is its own crate (cc-ci-results, re-exported as `cc_ci::results`).
        let dir = match rule.layer {
            "results" => src.join("../../results/src"),
            layer => src.join(layer),
        };
        for file in rust_files(&dir) {
            files += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, what) in violations(rule, &text) {
                let shown = file.strip_prefix(&src).unwrap_or(&file).display().to_string();
                broken.push(format!("{shown}:{line}: {what}"));
            }
        }
    }
    // Every folder of src/ is a subsystem with a rule: a new one gets its place in the order.
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                RULES.iter().any(|r| r.layer == name),
                "src/{name}/ has no place in the layering: add it to RULES here and to ARCHITECTURE.md's invariants"
            );
        }
    }
    assert!(files > 50, "only {files} files read: is src/ where this test looks?");
    assert!(
        broken.is_empty(),
        "layering broken (ARCHITECTURE.md, Invariants):\n{}",
        broken.join("\n")
    );
}

/// The bridge and the dashboard read results and nothing else of cc-ci:
/// they depend on the small `cc-ci-results` crate, not on the library with
/// Docker and Chromium in it.
#[test]
fn the_bridge_and_the_dashboard_depend_on_results_alone() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["bridge", "dashboard"] {
        let path = crates.join(name).join("Cargo.toml");
        let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let deps = manifest["dependencies"].as_table().unwrap();
        assert!(
            !deps.contains_key("cc-ci"),
            "{}: depends on cc-ci; depend on cc-ci-results (the results are all it reads)",
            path.display()
        );
        assert!(deps.contains_key("cc-ci-results"), "{}: cc-ci-results", path.display());
    }
}

#[test]
fn the_check_catches_what_it_is_for() {
    let rule = |layer: &str| RULES.iter().find(|r| r.layer == layer).unwrap();
    let bad_host = "use crate::run::plan::RunPlan;\nfn f() { crate::deploy::x(); }\n";
    assert_eq!(violations(rule("host"), bad_host).len(), 1, "host importing run");
    let bad_recipe = "use bollard::Docker;\nuse tokio::fs;\n";
    assert_eq!(
        violations(rule("recipe"), bad_recipe).len(),
        2,
        "recipe touching Docker"
    );
    let bad_results = "fn f() { std::process::Command::new(\"git\"); }\nfn g() -> u32 { std::process::id() }\n";
    assert_eq!(
        violations(rule("results"), bad_results).len(),
        1,
        "results running a process"
    );
    let climbing = "use super::super::run::x;\n";
    assert_eq!(violations(rule("deploy"), climbing).len(), 1);
    // Comments, doc links and the test module are not imports.
    let fine = "//! see [`crate::run::plan`]\n/* crate::run::x */\nfn f() {} // crate::run::y\n#[cfg(test)]\nmod tests { use crate::run::plan; }\n";
    assert!(
        violations(rule("host"), fine).is_empty(),
        "{:?}",
        violations(rule("host"), fine)
    );
    // A longer identifier is not the crate: `tokio_rustls` is not `tokio`.
    assert!(!names("use tokio_rustls::x;", "tokio") && names("use tokio::time;", "tokio"));
}
