//! `seal check`: for CI and pre-commit hooks.

use std::path::{Path, PathBuf};

use sealant_core::check::{Policy, check_text};
use sealant_core::keys::parse_recipient;

use crate::cli::CheckArgs;
use crate::failure::{Failure, Result, display_path};
use crate::files::find_config;

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Returns the number of problems found (printed as `file:line: reason`).
pub fn run(args: &CheckArgs) -> Result<usize> {
    let config = find_config(args.config.as_deref())?;
    for r in &args.compromised {
        parse_recipient(r).map_err(|e| Failure::usage(format!("--compromised: {e}")))?;
    }
    let policy = Policy {
        config: config.as_ref().map(|c| &c.config),
        compromised: &args.compromised,
    };
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    for root in &roots {
        collect(root, true, &mut files)?;
    }
    let mut problems = 0;
    for file in &files {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    println!(
                        "{}:1: is not UTF-8 text, so it cannot be checked",
                        display_path(file)
                    );
                    problems += 1;
                    continue;
                }
            },
            Err(e) => return Err(Failure::in_file(file, format!("cannot read: {e}"))),
        };
        let rel = config.as_ref().and_then(|c| c.relative(file));
        for finding in check_text(&text, rel.as_deref(), policy) {
            println!("{}:{finding}", display_path(file));
            problems += 1;
        }
    }
    let s = |n: usize| if n == 1 { "" } else { "s" };
    eprintln!(
        "seal check: {} file{} checked, {problems} problem{}",
        files.len(),
        s(files.len()),
        s(problems)
    );
    Ok(problems)
}

/// Files named on the command line are checked whatever their extension; directories are
/// searched for manifests, skipping hidden directories such as .git.
fn collect(path: &Path, named: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::metadata(path).map_err(|_| Failure::in_file(path, "no such file or directory"))?;
    if meta.is_file() {
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if named || wanted {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n != "." && n != "..");
    if hidden && !named {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Failure::in_file(path, format!("cannot read directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        collect(&entry, false, out)?;
    }
    Ok(())
}
