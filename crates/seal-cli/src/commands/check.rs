//! `seal check`: for CI and pre-commit hooks. Everything is read and checked before anything
//! is printed, so a usage or I/O error (exit 2) leaves no partial output.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::WalkBuilder;
use sealant_core::check::{Finding, Policy, chart_of_template, check_file, github_annotation};
use sealant_core::exclude::Excludes;
use sealant_core::keys::parse_recipient;

use crate::cli::{CheckArgs, CheckFormat};
use crate::failure::{Failure, Result, display_path};
use crate::files::find_config;

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Per-folder ignore files honoured besides .gitignore and .ignore.
pub const IGNORE_FILE: &str = ".sealantignore";

/// Returns the number of problems found. Every error is a usage or I/O error: exit code 2.
pub fn run(args: &CheckArgs) -> Result<usize> {
    check(args).map_err(|mut failure| {
        failure.exit_code = 2;
        failure
    })
}

/// Both sets of exclusions: `--exclude` (relative to the current directory) and
/// `check.exclude` (relative to the config's directory).
#[derive(Clone)]
struct Exclusions(Vec<Excludes>);

impl Exclusions {
    fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(abs) = std::path::absolute(path) else {
            return false;
        };
        self.0.iter().any(|e| e.excludes(&abs, is_dir))
    }
}

fn check(args: &CheckArgs) -> Result<usize> {
    let config = find_config(args.config.as_deref())?;
    for r in &args.compromised {
        parse_recipient(r).map_err(|e| Failure::usage(format!("--compromised: {e}")))?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(format!("cannot read the current directory: {e}")))?;
    let mut exclusions = vec![
        Excludes::new(&cwd, &args.exclude)
            .map_err(|e| Failure::usage(format!("--exclude: {e}")))?,
    ];
    if let Some(found) = &config {
        exclusions.push(
            Excludes::new(&found.dir, &found.config.check_exclude)
                .map_err(|e| Failure::in_file(&found.path, format!("check.exclude: {e}")))?,
        );
    }
    let exclusions = Exclusions(exclusions);
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
    let excluded = Arc::new(Mutex::new(Vec::new()));
    for root in &roots {
        collect(root, &exclusions, &excluded, &mut files)?;
    }

    let mut findings: Vec<(String, Finding)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut skipped = 0usize;
    for path in excluded.lock().expect("walker finished").iter() {
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

/// The manifest files under folder `path`, found as `seal check` finds them (for `seal migrate`).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let excluded = Arc::new(Mutex::new(Vec::new()));
    collect(path, &Exclusions(Vec::new()), &excluded, &mut out)?;
    Ok(out)
}

/// Files named on the command line are checked whatever their extension (unless an exclusion
/// matches them); directories are walked for manifests as ripgrep walks them: .gitignore
/// (inside a Git repo), .ignore and .sealantignore are honoured, hidden folders such as .git
/// skipped (hidden files are checked), and excluded folders are never entered.
fn collect(
    path: &Path,
    exclusions: &Exclusions,
    excluded: &Arc<Mutex<Vec<PathBuf>>>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let meta =
        std::fs::metadata(path).map_err(|_| Failure::in_file(path, "no such file or directory"))?;
    if meta.is_file() {
        if exclusions.excludes(path, false) {
            excluded
                .lock()
                .expect("not poisoned")
                .push(path.to_path_buf());
        } else {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let filter = exclusions.clone();
    let noted = Arc::clone(excluded);
    let walker = WalkBuilder::new(path)
        .hidden(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if is_dir
                && entry.depth() > 0
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.'))
            {
                return false;
            }
            if filter.excludes(entry.path(), is_dir) {
                noted
                    .lock()
                    .expect("not poisoned")
                    .push(entry.path().to_path_buf());
                return false;
            }
            true
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| Failure::new(format!("cannot read: {e}")))?;
        // A bad line in a .gitignore/.ignore/.sealantignore: say which rule to fix rather
        // than check files the rule meant to keep out (or in).
        if let Some(e) = entry.error() {
            return Err(Failure::new(format!("{e}: fix the rule")));
        }
        let wanted = entry.file_type().is_some_and(|t| t.is_file())
            && entry
                .path()
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e));
        if wanted {
            out.push(entry.into_path());
        }
    }
    Ok(())
}
