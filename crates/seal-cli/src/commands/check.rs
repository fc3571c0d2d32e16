//! `seal check`: for CI and pre-commit hooks. Everything is read and checked before anything
//! is printed, so a usage or I/O error (exit 2) leaves no partial output.

use std::path::{Path, PathBuf};

use sealant_core::check::{Finding, Policy, chart_of_template, check_file, github_annotation};
use sealant_core::keys::parse_recipient;

use super::plural;
use crate::cli::{CheckArgs, CheckFormat};
use crate::failure::{Failure, Result, display_path};
use crate::files::{FoundConfig, find_config};
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

    let mut results = Results::default();
    for path in &excluded {
        results
            .notes
            .push(format!("{}: excluded", display_path(path)));
    }
    for file in &files {
        results.check(file, config.as_ref(), policy)?;
    }

    print!("{}", render(&results.findings, args.format));
    if args.verbose {
        for note in &results.notes {
            eprintln!("{note}");
        }
    }
    let problems = results.findings.len();
    eprintln!("{}", summary(files.len(), problems, results.skipped));
    Ok(problems)
}

/// What checking the files found, kept until every file is read.
#[derive(Default)]
struct Results {
    /// Each finding with the file it is in, as shown.
    findings: Vec<(String, Finding)>,
    /// What `--verbose` prints: what was excluded or skipped, and why.
    notes: Vec<String>,
    /// How many things were skipped as not leaks.
    skipped: usize,
}

impl Results {
    /// Checks one file; an unreadable file is an error, a non-UTF-8 one a finding.
    fn check(
        &mut self,
        file: &Path,
        config: Option<&FoundConfig>,
        policy: Policy<'_>,
    ) -> Result<()> {
        let shown = display_path(file);
        if let Some(chart) = chart_of_template(file, Path::is_file) {
            self.skipped += 1;
            self.notes.push(format!(
                "{shown}:1: skipped: Helm chart template (templates/ beside {}): check the rendered output instead",
                display_path(&chart.join("Chart.yaml"))
            ));
            return Ok(());
        }
        let bytes =
            std::fs::read(file).map_err(|e| Failure::in_file(file, format!("cannot read: {e}")))?;
        let Ok(text) = String::from_utf8(bytes) else {
            self.findings.push((
                shown,
                Finding {
                    line: 1,
                    message: "is not UTF-8 text, so it cannot be checked".into(),
                    kind: sealant_core::check::FindingKind::NotText,
                },
            ));
            return Ok(());
        };
        let rel = config.and_then(|c| c.relative(file));
        let report = check_file(&text, rel.as_deref(), policy);
        for s in report.skipped {
            self.skipped += 1;
            self.notes
                .push(format!("{shown}:{}: skipped: {}", s.line, s.reason));
        }
        self.findings
            .extend(report.findings.into_iter().map(|f| (shown.clone(), f)));
        Ok(())
    }
}

/// The findings as `--format` asks, for stdout.
fn render(findings: &[(String, Finding)], format: CheckFormat) -> String {
    match format {
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
    }
}

/// The closing line on stderr: `seal check: N files checked, N problems[, N skipped …]`.
fn summary(files: usize, problems: usize, skipped: usize) -> String {
    let skipped = if skipped == 0 {
        String::new()
    } else {
        format!(", {skipped} skipped as not leaks")
    };
    format!(
        "seal check: {files} file{} checked, {problems} problem{}{skipped}",
        plural(files),
        plural(problems)
    )
}
