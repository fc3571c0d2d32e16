//! `seal reencrypt`: the controller opens each SealedSecret and seals it again to its current
//! keys (after a rotation); only the lines of the items that changed are rewritten in place.
//! Folders are walked as `seal check` walks them; `--dry-run` lists what would change.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use http::StatusCode;
use indicatif::{ProgressBar, ProgressStyle};
use sealant_core::SealedSecret;
use sealant_core::convert::check_reencrypt_reply;
use sealant_core::manifest::Located;

use sealant_core::check::chart_of_template;
use sealant_core::manifest::Manifest;
use sealant_core::rewrite::rewrite_items;

use super::{parse_objects, plural, sealed_label, wrong_kind};
use crate::cli::ReencryptArgs;
use crate::cluster::Cluster;
use crate::failure::{Failure, Result, display_path, is_stdin};
use crate::files::{find_config, read_input, write_atomically};
use crate::walk::manifest_files;

/// Above this many files, a terminal gets a progress bar.
const PROGRESS_ABOVE: usize = 10;

/// Why a file was not rewritten.
enum Problem {
    /// This file only: the others are still done.
    File(Failure),
    /// No answer from the controller: the others would fail the same way.
    Stop(Failure),
}

/// What `--dry-run` found: whether any file would change (exit 1).
pub fn run(args: &ReencryptArgs) -> Result<bool> {
    if let Some(stdin) = args.paths.iter().find(|f| is_stdin(f)) {
        return Err(Failure::usage(format!(
            "{}: reencrypt rewrites files in place: name them",
            display_path(stdin)
        )));
    }
    let files = files_to_reencrypt(args).map_err(|e| usage(args, e))?;
    let cluster = Cluster::connect(&args.cluster).map_err(|e| usage(args, e))?;
    // What an answer may add a stanza for: asked once, when the first answer comes.
    let mut published = None;
    let progress = Progress::new(files.len());
    let mut tally = Tally::default();
    for file in &files {
        progress.on(file);
        // A file found in a folder is only looked at if it holds SealedSecrets; a named one must.
        let named = args.paths.contains(file);
        match reencrypt_file(&cluster, &mut published, file, named, args.dry_run) {
            Ok(None) => {}
            Ok(Some(changes)) => tally.done_with(&changes),
            Err(Problem::File(failure)) => {
                progress.report(&format!("seal: {failure}"));
                tally.failed += 1;
            }
            Err(Problem::Stop(failure)) => {
                progress.finish();
                return Err(stopped(args, failure, tally.done));
            }
        }
        progress.inc();
    }
    progress.finish();
    tally.conclude(args)
}

/// A progress bar on a terminal, for more than [`PROGRESS_ABOVE`] files; else nothing.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(total: usize) -> Self {
        Progress(
            (total > PROGRESS_ABOVE && std::io::stderr().is_terminal()).then(|| {
                let style = ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                ProgressBar::new(total as u64).with_style(style)
            }),
        )
    }

    fn on(&self, file: &Path) {
        if let Some(bar) = &self.0 {
            bar.set_message(display_path(file));
        }
    }

    /// A line on stderr, above the bar.
    fn report(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// What became of the files so far.
#[derive(Default)]
struct Tally {
    failed: usize,
    /// Files re-sealed (or, with --dry-run, checked).
    done: usize,
    /// Files with at least one item that changes.
    changed: usize,
    /// Printed at the end, and only if every file could be checked: no partial output.
    would_change: String,
}

impl Tally {
    fn done_with(&mut self, changes: &[String]) {
        self.done += 1;
        if !changes.is_empty() {
            self.changed += 1;
        }
        self.would_change
            .extend(changes.iter().map(|c| format!("{c}\n")));
    }

    /// The run's outcome once every file was looked at: whether a dry run found changes.
    fn conclude(self, args: &ReencryptArgs) -> Result<bool> {
        let Tally {
            failed,
            done,
            changed,
            would_change,
        } = self;
        let looked_at = done + failed;
        if failed > 0 {
            let verb = if args.dry_run {
                "could not be checked"
            } else if failed == 1 {
                "left as it was"
            } else {
                "left as they were"
            };
            return Err(usage(
                args,
                Failure::new(format!(
                    "{failed} of {looked_at} file{} {verb}; {} {done}",
                    plural(looked_at),
                    if args.dry_run {
                        "checked"
                    } else {
                        "reencrypted"
                    }
                )),
            ));
        }
        if args.dry_run {
            print!("{would_change}");
            eprintln!(
                "seal reencrypt: {changed} of {done} file{} would change (dry run: nothing written)",
                plural(done)
            );
            return Ok(changed > 0);
        }
        eprintln!("seal reencrypt: reencrypted {done} file{}", plural(done));
        Ok(false)
    }
}

/// The run's failure when the controller stopped answering after `done` files.
fn stopped(args: &ReencryptArgs, failure: Failure, done: usize) -> Failure {
    if done == 0 || args.dry_run {
        return usage(args, failure);
    }
    Failure::new(format!(
        "{failure} (stopped; {done} file{} reencrypted before)",
        plural(done)
    ))
}

/// The files named, and the manifests in the folders named (walked as `seal check` walks
/// them). A missing file stays in the list: it is that file's failure (the others are still
/// done), not the walk's.
fn files_to_reencrypt(args: &ReencryptArgs) -> Result<Vec<PathBuf>> {
    let config = find_config(args.config.as_deref())?;
    let mut files = Vec::new();
    for path in &args.paths {
        if path.exists() {
            let root = std::slice::from_ref(path);
            files.extend(manifest_files(root, &args.exclude, config.as_ref())?.files);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// With --dry-run, a failure is exit 2: exit 1 says that files would change.
fn usage(args: &ReencryptArgs, mut failure: Failure) -> Failure {
    if args.dry_run {
        failure.exit_code = 2;
    }
    failure
}

/// Re-seals every SealedSecret of `path`, then rewrites the lines of their items (unless
/// `dry_run`), only if all of them were and each answer is that SealedSecret re-wrapped
/// (`check_reencrypt_reply`). Returns None for a file without SealedSecrets that was not
/// `named`, else what changed (`file:line: SealedSecret 'name': items a, b`).
fn reencrypt_file(
    cluster: &Cluster,
    published: &mut Option<Vec<String>>,
    path: &Path,
    named: bool,
    dry_run: bool,
) -> std::result::Result<Option<Vec<String>>, Problem> {
    if !named && chart_of_template(path, Path::is_file).is_some() {
        return Ok(None);
    }
    let original = read_input(path).map_err(Problem::File)?;
    if !named && !original.contains("SealedSecret") {
        return Ok(None);
    }
    let objects = parse_objects(path, &original).map_err(Problem::File)?;
    if !objects
        .iter()
        .any(|o| matches!(o.value, Manifest::SealedSecret(_)))
    {
        if !named {
            return Ok(None);
        }
        let first = &objects[0];
        return Err(Problem::File(wrong_kind(
            path,
            first.line,
            &first.value,
            "SealedSecret",
        )));
    }
    let mut resealed = Vec::new();
    let mut changes = Vec::new();
    for (index, Located { line, value }) in objects.into_iter().enumerate() {
        let Manifest::SealedSecret(sealed) = value else {
            continue;
        };
        let label = sealed_label(&sealed);
        let fail = |message: String| Failure::at_line(path, line, format!("{label}: {message}"));
        let new = reseal(cluster, published, &sealed, fail)?;
        // Only the values and their records come from the answer; the rest is the file's.
        let items = changed_items(&sealed, &new);
        if !items.is_empty() {
            changes.push(format!(
                "{}:{line}: {label}: item{} {}",
                display_path(path),
                plural(items.len()),
                items.join(", ")
            ));
        }
        resealed.push((index, new.spec));
    }
    let wanted: Vec<_> = resealed.iter().map(|(i, spec)| (*i, spec)).collect();
    let text = rewrite_items(&original, &wanted)
        .map_err(|e| Problem::File(Failure::at_line(path, e.line(), e)))?;
    if text != original && !dry_run {
        write_atomically(path, &text).map_err(Problem::File)?;
    }
    Ok(Some(changes))
}

/// Asks the controller to re-seal one SealedSecret and checks that the answer is that
/// SealedSecret re-wrapped. `fail` places a message at the SealedSecret.
fn reseal(
    cluster: &Cluster,
    published: &mut Option<Vec<String>>,
    sealed: &SealedSecret,
    fail: impl Fn(String) -> Failure,
) -> std::result::Result<SealedSecret, Problem> {
    let body = serde_json::to_vec(sealed).map_err(|e| Problem::File(fail(e.to_string())))?;
    let reply = cluster
        .post_patiently("/v1/reencrypt", body)
        .map_err(|e| Problem::Stop(fail(e.to_string())))?;
    match reply.status {
        StatusCode::OK => {}
        StatusCode::CONFLICT => {
            let reason = reply
                .detail()
                .unwrap_or_else(|| "the controller cannot re-seal it".into());
            return Err(Problem::File(fail(reason)));
        }
        _ => return Err(Problem::File(fail(cluster.controller_failure(&reply)))),
    }
    let new: SealedSecret = serde_json::from_slice(&reply.body).map_err(|e| {
        Problem::File(fail(format!(
            "the controller did not answer with a SealedSecret: {e}"
        )))
    })?;
    let published = match published {
        Some(published) => published,
        None => published.insert(published_recipients(cluster).map_err(Problem::Stop)?),
    };
    check_reencrypt_reply(sealed, &new, published)
        .map_err(|e| Problem::File(fail(e.to_string())))?;
    Ok(new)
}

/// The items whose value or record the answer changes.
fn changed_items<'a>(sealed: &SealedSecret, new: &'a SealedSecret) -> Vec<&'a str> {
    new.spec
        .encrypted_data
        .iter()
        .filter(|(k, v)| {
            sealed.spec.encrypted_data.get(*k) != Some(*v)
                || sealed.spec.recipients.get(*k) != new.spec.recipients.get(*k)
        })
        .map(|(k, _)| k.as_str())
        .collect()
}

/// The cluster's recipients, which an answer may add stanzas for: the ConfigMap through the
/// API server (or, with --controller-url, the controller's `/v1/recipients`).
fn published_recipients(cluster: &Cluster) -> Result<Vec<String>> {
    Ok(cluster
        .recipients()?
        .iter()
        .map(ToString::to_string)
        .collect())
}
