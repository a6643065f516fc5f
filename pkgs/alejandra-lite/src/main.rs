//! `alejandra-lite [--check] [--quiet] [PATH...]`: formats `.nix` files with
//! the Alejandra library (pinned in Cargo.toml), in place, or with `--check`
//! only reports the files that are not formatted. Directories are walked for
//! `*.nix` files (hidden directories, `target` and `result*` are skipped); no
//! PATH means the current directory; `-` formats standard input to standard
//! output. Exit status: 0 all formatted, 1 a file could not be read or parsed,
//! 2 `--check` found files that need formatting.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: alejandra-lite [--check] [--quiet] [PATH...]   (PATH '-' = stdin to stdout)");
    ExitCode::from(1)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let p = entry.path();
            if p.is_dir() {
                if name.starts_with('.') || name == "target" || name.starts_with("result") {
                    continue;
                }
                collect(&p, out)?;
            } else if name.ends_with(".nix") {
                out.push(p);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut check = false;
    let mut quiet = false;
    let mut paths: Vec<String> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-c" | "--check" => check = true,
            "-q" | "--quiet" => quiet = true,
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("alejandra-lite {} (alejandra library 3.1.0)", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') && s != "-" => return usage(),
            _ => paths.push(arg),
        }
    }

    if paths.len() == 1 && paths[0] == "-" {
        let mut before = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut before) {
            eprintln!("alejandra-lite: stdin: {e}");
            return ExitCode::from(1);
        }
        let (status, after) = alejandra::format::in_memory("<stdin>".into(), before);
        if let alejandra::format::Status::Error(e) = status {
            eprintln!("alejandra-lite: <stdin>: {e}");
            return ExitCode::from(1);
        }
        let _ = std::io::stdout().write_all(after.as_bytes());
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() {
        paths.push(".".into());
    }

    let mut files = Vec::new();
    for p in &paths {
        if let Err(e) = collect(Path::new(p), &mut files) {
            eprintln!("alejandra-lite: {p}: {e}");
            return ExitCode::from(1);
        }
    }

    let (mut errors, mut unformatted, mut changed) = (0usize, 0usize, 0usize);
    for file in &files {
        let name = file.display().to_string();
        let before = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("alejandra-lite: {name}: {e}");
                errors += 1;
                continue;
            }
        };
        let (status, after) = alejandra::format::in_memory(name.clone(), before);
        match status {
            alejandra::format::Status::Error(e) => {
                eprintln!("alejandra-lite: {name}: parse error: {e}");
                errors += 1;
            }
            alejandra::format::Status::Changed(false) => {}
            alejandra::format::Status::Changed(true) if check => {
                println!("not formatted: {name}");
                unformatted += 1;
            }
            alejandra::format::Status::Changed(true) => match std::fs::write(file, after) {
                Ok(()) => {
                    if !quiet {
                        println!("formatted: {name}");
                    }
                    changed += 1;
                }
                Err(e) => {
                    eprintln!("alejandra-lite: {name}: {e}");
                    errors += 1;
                }
            },
        }
    }

    if !quiet {
        eprintln!(
            "alejandra-lite: {} file(s) checked, {} reformatted, {} not formatted, {} error(s)",
            files.len(),
            changed,
            unformatted,
            errors
        );
    }
    if errors > 0 {
        ExitCode::from(1)
    } else if unformatted > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
