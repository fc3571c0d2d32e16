//! `seal check`: for CI and pre-commit hooks. Everything is read and checked before anything
//! is printed, so a usage or I/O error (exit 2) leaves no partial output.

use std::path::{Path, PathBuf};

use sealant_core::check::{Finding, Policy, chart_of_template, check_file, github_annotation};
use sealant_core::keys::parse_recipient;

use crate::cli::{CheckArgs, CheckFormat};
use crate::failure::{Failure, Result, display_path};
use crate::files::find_config;
use crate::walk::{Walked, manifest_files};

/// Returns the number of problems found. Every error is a usage or I/O error: exit code 2.
pub fn run(args: &CheckArgs) -> Result<usize> {
    check(args).map_err(|mut failure| {
        failure.exit_code = 2;
        failure
    })
}

fn check(args: &CheckArgs) -> Result<usize> {
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
    let Walked { files, excluded } = manifest_files(&roots, &args.exclude, config.as_ref())?;

    let mut findings: Vec<(String, Finding)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut skipped = 0usize;
    for path in &excluded {
        notes.push(format!("{}: excluded", display_path(path)));
    }
    for file in &files {
        let shown = display_path(file);
        if let Some(chart) = chart_of_template(file, Path::is_file) {
            skipped += 1;
            notes.push(format!(
                "{shown}:1: skipped: Helm chart template (templates/ beside {}): check the rendered output instead",
                display_path(&chart.join("Chart.yaml"))
            ));
            continue;
        }
        let bytes =
            std::fs::read(file).map_err(|e| Failure::in_file(file, format!("cannot read: {e}")))?;
        let Ok(text) = String::from_utf8(bytes) else {
            findings.push((
                shown,
                Finding {
                    line: 1,
                    message: "is not UTF-8 text, so it cannot be checked".into(),
                    kind: sealant_core::check::FindingKind::NotText,
                },
            ));
            continue;
        };
        let rel = config.as_ref().and_then(|c| c.relative(file));
        let report = check_file(&text, rel.as_deref(), policy);
        for s in report.skipped {
            skipped += 1;
            notes.push(format!("{shown}:{}: skipped: {}", s.line, s.reason));
        }
        findings.extend(report.findings.into_iter().map(|f| (shown.clone(), f)));
    }

    let out = match args.format {
        CheckFormat::Text => findings
            .iter()
            .map(|(file, f)| format!("{file}:{f}\n"))
            .collect::<String>(),
        CheckFormat::Github => findings
            .iter()
            .map(|(file, f)| github_annotation(file, f) + "\n")
            .collect(),
        CheckFormat::Json => {
            let list: Vec<serde_json::Value> = findings
                .iter()
                .map(|(file, f)| {
                    serde_json::json!({
                        "file": file,
                        "line": f.line,
                        "reason": f.message,
                        "kind": f.kind,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&list).expect("JSON values serialize") + "\n"
        }
    };
    print!("{out}");
    if args.verbose {
        for note in &notes {
            eprintln!("{note}");
        }
    }
    let s = |n: usize| if n == 1 { "" } else { "s" };
    let problems = findings.len();
    let skipped = if skipped == 0 {
        String::new()
    } else {
        format!(", {skipped} skipped as not leaks")
    };
    eprintln!(
        "seal check: {} file{} checked, {problems} problem{}{skipped}",
        files.len(),
        s(files.len()),
        s(problems)
    );
    Ok(problems)
}
