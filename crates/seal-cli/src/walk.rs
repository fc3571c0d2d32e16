//! Finding the manifest files under the paths a command is given (`seal check`,
//! `seal reencrypt`): folders are walked as ripgrep walks them, with the exclusions of
//! `--exclude` and `check.exclude` in `.sealant.yaml`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::{Walk, WalkBuilder};
use sealant_core::exclude::Excludes;

use crate::failure::{Failure, Result};
use crate::files::FoundConfig;

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Per-folder ignore files honoured besides .gitignore and .ignore.
pub const IGNORE_FILE: &str = ".sealantignore";

/// What a walk found.
pub struct Walked {
    /// Named files (whatever their extension) and the manifests found in named folders.
    pub files: Vec<PathBuf>,
    /// Files and folders left out by an exclusion, for verbose output.
    pub excluded: Vec<PathBuf>,
}

/// Both sets of exclusions: `--exclude` (relative to the current directory) and
/// `check.exclude` (relative to the config's directory).
#[derive(Clone)]
struct Exclusions(Vec<Excludes>);

impl Exclusions {
    fn new(cli: &[String], config: Option<&FoundConfig>) -> Result<Self> {
        let cwd = std::env::current_dir()
            .map_err(|e| Failure::new(format!("cannot read the current directory: {e}")))?;
        let mut all =
            vec![Excludes::new(&cwd, cli).map_err(|e| Failure::usage(format!("--exclude: {e}")))?];
        if let Some(found) = config {
            all.push(
                Excludes::new(&found.dir, &found.config.check_exclude)
                    .map_err(|e| Failure::in_file(&found.path, format!("check.exclude: {e}")))?,
            );
        }
        Ok(Exclusions(all))
    }

    fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(abs) = std::path::absolute(path) else {
            return false;
        };
        self.0.iter().any(|e| e.excludes(&abs, is_dir))
    }
}

/// The files under `roots`, in order. Files named on the command line are taken whatever their
/// extension (unless an exclusion matches them); folders are walked for .yaml, .yml and .json
/// files: .gitignore (inside a Git repo), .ignore and .sealantignore are honoured, hidden
/// folders such as .git skipped (hidden files are not), and excluded folders never entered.
pub fn manifest_files(
    roots: &[PathBuf],
    exclude: &[String],
    config: Option<&FoundConfig>,
) -> Result<Walked> {
    let exclusions = Exclusions::new(exclude, config)?;
    let mut files = Vec::new();
    let excluded = Arc::new(Mutex::new(Vec::new()));
    for root in roots {
        collect(root, &exclusions, &excluded, &mut files)?;
    }
    let excluded = excluded.lock().expect("walker finished").clone();
    Ok(Walked { files, excluded })
}

/// Remembers a path that was excluded (for `--verbose`).
fn note(excluded: &Mutex<Vec<PathBuf>>, path: &Path) {
    excluded
        .lock()
        .expect("not poisoned")
        .push(path.to_path_buf());
}

/// A walk of the folder `path` in file-name order: ignore files honoured, hidden folders
/// skipped, and what `exclusions` excludes noted in `excluded` and not entered.
fn walker(path: &Path, exclusions: Exclusions, excluded: Arc<Mutex<Vec<PathBuf>>>) -> Walk {
    WalkBuilder::new(path)
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
            if exclusions.excludes(entry.path(), is_dir) {
                note(&excluded, entry.path());
                return false;
            }
            true
        })
        .build()
}

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
            note(excluded, path);
        } else {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let walker = walker(path, exclusions.clone(), Arc::clone(excluded));
    for entry in walker {
        let entry = entry.map_err(|e| Failure::new(format!("cannot read: {e}")))?;
        // A bad line in a .gitignore/.ignore/.sealantignore: say which rule to fix rather
        // than take files the rule meant to keep out (or in).
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
