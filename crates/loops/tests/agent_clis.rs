//! The flags the supervisor passes, checked against the real agent CLIs at
//! the versions `scripts/versions.env` pins (installed from the npm registry
//! by `scripts/agent-clis`, which test-support runs): each flag must be one
//! their `--help` lists, taking a value exactly when the CLI's option does;
//! then the CLIs are run with those very command lines, offline (no model can
//! be reached here): Claude must find no fault with the flags and must look
//! the resumed id up; opencode must make a session of the given title, which
//! the supervisor then finds and resumes by its id.
//!
//! Without a CLI the test fails with the install's exact error, unless
//! `CCCI_ALLOW_SKIP` names `claude-code` / `opencode` (then the skip is
//! counted).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use loops::backend::{argv, opencode_session, opencode_title, Run, RESUME_MESSAGE};
use loops::config::{Backend, BackendKind};
use test_support::{output_text, Component};

/// What an option takes, as a CLI's `--help` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A switch: no value.
    Nothing,
    /// A value that must be given (`<uuid>`, yargs `[string]`).
    Value,
    /// A value that may be given (commander `[value]`).
    OptionalValue,
}

/// The options of a commander-style help (Claude): lines such as
/// `  -r, --resume [value]   Resume a conversation ...` or
/// `  --session-id <uuid>    Use a specific session ID ...`.
fn commander_options(help: &str) -> BTreeMap<String, Takes> {
    let mut out = BTreeMap::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') || line.len() == t.len() {
            continue;
        }
        let spec = t.split("  ").next().unwrap_or_default();
        let takes = if spec.contains('<') {
            Takes::Value
        } else if spec.contains('[') {
            Takes::OptionalValue
        } else {
            Takes::Nothing
        };
        for word in spec.split([' ', ',']) {
            if word.starts_with("--") {
                out.insert(word.to_string(), takes);
            }
        }
    }
    out
}

/// The options of a yargs-style help (opencode): lines such as
/// `  -s, --session      session id to continue      [string]`.
fn yargs_options(help: &str) -> BTreeMap<String, Takes> {
    let mut out = BTreeMap::new();
    let mut last: Vec<String> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') && line.len() != t.len() {
            let spec = t.split("  ").next().unwrap_or_default();
            last = spec
                .split([' ', ','])
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect();
        }
        // The type closes the option's (possibly wrapped) description.
        for (ty, takes) in [
            ("[boolean]", Takes::Nothing),
            ("[string]", Takes::Value),
            ("[number]", Takes::Value),
            ("[array]", Takes::Value),
        ] {
            if line.contains(ty) {
                for f in last.drain(..) {
                    out.insert(f, takes);
                }
            }
        }
    }
    out
}

/// Checks that every flag of `argv` (after the program and `skip` words) is
/// an option of `options`, that a value-taking one is followed by a value
/// (not a flag), and that exactly one positional (the prompt) ends it.
fn check_flags(cli: &str, argv: &[String], skip: usize, options: &BTreeMap<String, Takes>) {
    let mut i = 1 + skip;
    let mut positionals = Vec::new();
    while i < argv.len() {
        let a = &argv[i];
        if a.starts_with("--") {
            let takes = options
                .get(a.as_str())
                .unwrap_or_else(|| panic!("{cli} --help lists no option {a} (the supervisor passes it: {argv:?})"));
            if *takes != Takes::Nothing {
                let v = argv.get(i + 1).unwrap_or_else(|| panic!("{a} needs a value: {argv:?}"));
                assert!(!v.starts_with("--"), "{a} is given no value: {argv:?}");
                i += 1;
            }
        } else {
            positionals.push(a.clone());
        }
        i += 1;
    }
    assert_eq!(positionals.len(), 1, "one positional (the prompt) expected: {argv:?}");
    assert_eq!(positionals[0], argv[argv.len() - 1], "the prompt comes last: {argv:?}");
}

/// A scratch HOME (and XDG folders) so that the CLIs touch nothing of ours.
struct Scratch {
    dir: tempfile::TempDir,
    /// Sets `IS_SANDBOX=1` (Claude, run as root).
    sandbox: bool,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "work", "xdg/data", "xdg/config", "xdg/cache", "xdg/state"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Scratch { dir, sandbox: false }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A script running `program` with the scratch HOME and XDG folders,
    /// for the supervisor's own calls (`opencode session list`).
    fn wrap(&self, program: &Path) -> PathBuf {
        let wrapper = self.dir.path().join("cli-in-scratch");
        let x = self.dir.path().join("xdg");
        test_support::write_executable(
            &wrapper,
            &format!(
                "#!/bin/sh\nHOME={home} XDG_DATA_HOME={d} XDG_CONFIG_HOME={c} XDG_CACHE_HOME={k} XDG_STATE_HOME={t} exec {p} \"$@\"\n",
                home = self.dir.path().join("home").display(),
                d = x.join("data").display(),
                c = x.join("config").display(),
                k = x.join("cache").display(),
                t = x.join("state").display(),
                p = program.display()
            ),
        );
        wrapper
    }

    /// `program args` in the scratch work folder and HOME, stdin closed, in
    /// a process group of its own (so it can be stopped with its children).
    fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut c = Command::new(program);
        let x = self.dir.path().join("xdg");
        c.args(args)
            .current_dir(self.work())
            // As tmux sets it for a pane (opencode takes its project from it).
            .env("PWD", self.work())
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_DATA_HOME", x.join("data"))
            .env("XDG_CONFIG_HOME", x.join("config"))
            .env("XDG_CACHE_HOME", x.join("cache"))
            .env("XDG_STATE_HOME", x.join("state"))
            .env_remove("ANTHROPIC_API_KEY")
            .env("DISABLE_AUTOUPDATER", "1")
            .stdin(Stdio::null())
            .process_group(0);
        if self.sandbox {
            c.env("IS_SANDBOX", "1");
        }
        c
    }

    /// Runs it to its end, killing it after `secs`.
    fn run(&self, program: &Path, args: &[String], secs: u64) -> Output {
        let child = self
            .command(program, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            stop_group(pid);
        });
        let out = child.wait_with_output().unwrap();
        drop(killer); // it only ever kills our own, finished or not, group
        out
    }
}

/// Stops process group `pgid` (a CLI this test started, with its children).
fn stop_group(pgid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).output();
}

fn stop(mut child: Child) {
    stop_group(child.id());
    let _ = child.wait();
}

/// How long opencode may take to make or continue a session: offline, on
/// two shared cores, a first start was measured at 70 s wall (39 s CPU).
const OPENCODE_WAIT: u64 = 240;

fn args_of(argv: &[String]) -> Vec<String> {
    argv[1..].to_vec()
}

#[test]
fn claude_takes_the_flags_the_supervisor_passes() {
    let Some(claude) = test_support::agent_cli(Component::ClaudeCode) else {
        return;
    };
    let mut s = Scratch::new();
    // Claude refuses to bypass permissions as root (the host's loops user is
    // not root) unless told it runs in a sandbox, which a test's scratch is.
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    s.sandbox = root.trim() == "0";
    let version = output_text(&s.run(&claude, &["--version".into()], 60));
    println!("claude --version: {}", version.trim());
    let help = output_text(&s.run(&claude, &["--help".into()], 60));
    let options = commander_options(&help);
    assert!(options.len() > 20, "no options parsed from claude --help:\n{help}");
    assert!(help.contains("[prompt]"), "claude takes no positional prompt:\n{help}");
    // The ids: --session-id must be given a value, --resume may be.
    assert_eq!(options.get("--session-id"), Some(&Takes::Value), "{help}");
    assert_eq!(options.get("--resume"), Some(&Takes::OptionalValue), "{help}");
    assert!(
        help.contains("bypassPermissions"),
        "a permission mode the host uses is gone:\n{help}"
    );

    let backend = Backend {
        command: claude.clone(),
        // What hosts/orchestrator passes.
        args: vec!["--permission-mode".into(), "bypassPermissions".into()],
        remote_control: Some("cc-ci".into()),
        attach: None,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let fresh = argv(
        BackendKind::Claude,
        &backend,
        Some("opus"),
        "orchestrator",
        &Run::Fresh {
            conversation: id.clone(),
            prompt: "PROMPT".into(),
        },
    );
    let resume = argv(
        BackendKind::Claude,
        &backend,
        Some("opus"),
        "orchestrator",
        &Run::Resume {
            conversation: id.clone(),
        },
    );
    for a in [&fresh, &resume] {
        check_flags("claude", a, 0, &options);
        let words: Vec<&str> = a.iter().map(String::as_str).collect();
        println!("checked against claude --help: {}", words[1..words.len() - 1].join(" "));
    }
    // A flag it does not know is refused: the runs below can tell.
    let bogus = output_text(&s.run(&claude, &["--print".into(), "--no-such-flag".into(), "x".into()], 60));
    assert!(bogus.contains("unknown option"), "{bogus}");

    // The very command lines, run in print mode (no model can be reached):
    // the resume looks our id up and reports it missing; the fresh one gets
    // past its flags to the login check.
    let mut r = vec!["--print".to_string()];
    r.extend(args_of(&resume));
    let t0 = Instant::now();
    let out = output_text(&s.run(&claude, &r, 60));
    println!(
        "TIMING claude --resume (print mode, offline): {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        out.contains(&format!("No conversation found with session ID: {id}")),
        "claude did not take --resume {id}: {out}"
    );
    let mut f = vec!["--print".to_string()];
    f.extend(args_of(&fresh));
    let out = output_text(&s.run(&claude, &f, 60));
    assert!(
        !out.contains("unknown option") && !out.to_lowercase().contains("invalid") && !out.contains("error: option"),
        "claude refused the fresh command line: {out}"
    );
    println!("claude, fresh command line, offline: {}", out.trim());
}

#[test]
fn opencode_takes_the_flags_and_is_resumed_by_its_own_session_id() {
    let Some(opencode) = test_support::agent_cli(Component::Opencode) else {
        return;
    };
    let s = Scratch::new();
    let version = output_text(&s.run(&opencode, &["--version".into()], 60));
    println!("opencode --version: {}", version.trim());
    let help = output_text(&s.run(&opencode, &["run".into(), "--help".into()], 60));
    let options = yargs_options(&help);
    assert!(
        options.len() > 10,
        "no options parsed from opencode run --help:\n{help}"
    );
    assert!(help.contains("message"), "opencode run takes no message:\n{help}");
    for f in ["--session", "--title", "--attach", "--model"] {
        assert_eq!(options.get(f), Some(&Takes::Value), "{f} in:\n{help}");
    }
    let list_help = output_text(&s.run(&opencode, &["session".into(), "list".into(), "--help".into()], 60));
    assert!(
        list_help.contains("--format") && list_help.contains("\"json\""),
        "{list_help}"
    );

    // The supervisor's calls, through the scratch HOME.
    let backend = Backend {
        command: s.wrap(&opencode),
        args: vec![],
        remote_control: None,
        attach: None,
    };
    let ours = uuid::Uuid::new_v4().to_string();
    let fresh = argv(
        BackendKind::Opencode,
        &backend,
        None,
        "orchestrator",
        &Run::Fresh {
            conversation: ours.clone(),
            prompt: "ORCHESTRATOR PROMPT".into(),
        },
    );
    check_flags("opencode run", &fresh, 1, &options);
    let check_with_model = argv(
        BackendKind::Opencode,
        &Backend {
            attach: Some("http://127.0.0.1:4096".into()),
            ..backend.clone()
        },
        Some("anthropic/claude-opus-4"),
        "orchestrator",
        &Run::Resume {
            conversation: "ses_x".into(),
        },
    );
    check_flags("opencode run", &check_with_model, 1, &options);
    let words: Vec<&str> = check_with_model.iter().map(String::as_str).collect();
    println!(
        "checked against opencode run --help: {} / --title",
        words[2..words.len() - 1].join(" ")
    );

    // The fresh command line, run offline: opencode makes its session (the
    // model cannot be reached) under our title; the supervisor finds its id.
    let title = opencode_title("orchestrator", &ours);
    // As the supervisor does before a first start: look for the session
    // (none yet). This also makes opencode's database, which two opencode
    // processes starting on a fresh one at once can fail to make ("Failed
    // query: CREATE TABLE `workspace`", seen once under load): the polls
    // below run beside `opencode run`.
    assert_eq!(opencode_session(&backend, &s.work(), &title).unwrap(), None);
    let t0 = Instant::now();
    let fresh_log = s.dir.path().join("fresh.log");
    let child = s
        .command(&opencode, &args_of(&fresh))
        .stdout(std::fs::File::create(&fresh_log).unwrap())
        .stderr(std::fs::File::create(s.dir.path().join("fresh.err")).unwrap())
        .spawn()
        .unwrap();
    let mut found = None;
    while found.is_none() && t0.elapsed() < Duration::from_secs(OPENCODE_WAIT) {
        std::thread::sleep(Duration::from_secs(2));
        found = opencode_session(&backend, &s.work(), &title).unwrap();
    }
    stop(child);
    let ses = found.unwrap_or_else(|| {
        panic!(
            "no opencode session titled {title:?} after {OPENCODE_WAIT} s; its output:\n{}{}\nopencode session list:\n{}",
            std::fs::read_to_string(&fresh_log).unwrap_or_default(),
            std::fs::read_to_string(s.dir.path().join("fresh.err")).unwrap_or_default(),
            output_text(&s.run(
                &backend.command,
                &["session".into(), "list".into(), "--format".into(), "json".into()],
                60
            ))
        )
    });
    println!(
        "TIMING opencode fresh run -> session {ses} listed: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(ses.starts_with(loops::backend::OPENCODE_SESSION_PREFIX), "{ses}");

    // The supervisor's plan for a resume: opencode's own id, found by title.
    let run = Run::plan(
        BackendKind::Opencode,
        &backend,
        &s.work(),
        "orchestrator",
        Some(&ours),
        true,
        || Ok("unused".into()),
    )
    .unwrap();
    assert_eq!(
        run,
        Run::Resume {
            conversation: ses.clone()
        }
    );
    let resume = argv(BackendKind::Opencode, &backend, None, "orchestrator", &run);
    check_flags("opencode run", &resume, 1, &options);
    let t0 = Instant::now();
    let child = s
        .command(&opencode, &args_of(&resume))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut continued = false;
    while !continued && t0.elapsed() < Duration::from_secs(OPENCODE_WAIT) {
        std::thread::sleep(Duration::from_secs(2));
        let export = s.run(&opencode, &["export".into(), ses.clone()], 60);
        continued = String::from_utf8_lossy(&export.stdout).contains("The loops supervisor restarted you");
    }
    stop(child);
    assert!(
        continued,
        "opencode --session {ses} did not continue that session with the resume message"
    );
    println!(
        "TIMING opencode resume -> message in session {ses}: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    let list = s.run(
        &opencode,
        &["session".into(), "list".into(), "--format".into(), "json".into()],
        60,
    );
    let sessions: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let titled: Vec<_> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["title"] == title.as_str())
        .collect();
    assert_eq!(titled.len(), 1, "the resume made another session: {sessions}");
    assert!(RESUME_MESSAGE.starts_with("The loops supervisor restarted you"));
}
