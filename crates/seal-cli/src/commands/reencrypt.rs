//! `seal reencrypt`: the controller opens each SealedSecret and seals it again to its current
//! keys (after a rotation); the file is rewritten in place, in its own format.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use indicatif::{ProgressBar, ProgressStyle};
use sealant_core::SealedSecret;
use sealant_core::convert::check_reencrypt_reply;
use sealant_core::manifest::Located;

use super::{parse_objects, render, sealed_label, sealed_secrets};
use crate::cli::{Format, ReencryptArgs};
use crate::cluster::{Cluster, Reply};
use crate::failure::{Failure, Result, display_path, is_stdin};
use crate::files::{read_input, write_atomically};

/// Above this many files, a terminal gets a progress bar.
const PROGRESS_ABOVE: usize = 10;
/// A rate-limited request is tried again this many times, waiting as the controller asks.
const RATE_LIMIT_RETRIES: u32 = 4;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Why a file was not rewritten.
enum Problem {
    /// This file only: the others are still done.
    File(Failure),
    /// No answer from the controller: the others would fail the same way.
    Stop(Failure),
}

pub fn run(args: &ReencryptArgs) -> Result<()> {
    if let Some(stdin) = args.files.iter().find(|f| is_stdin(f)) {
        return Err(Failure::usage(format!(
            "{}: reencrypt rewrites files in place: name them",
            display_path(stdin)
        )));
    }
    let cluster = Cluster::connect(&args.cluster)?;
    // What an answer may add a stanza for: asked once, when the first answer comes.
    let mut published = None;
    let total = args.files.len();
    let bar = (total > PROGRESS_ABOVE && std::io::stderr().is_terminal()).then(|| {
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::new(total as u64).with_style(style)
    });
    let report = |failure: &Failure| match &bar {
        Some(bar) => bar.suspend(|| eprintln!("seal: {failure}")),
        None => eprintln!("seal: {failure}"),
    };
    let mut failed = 0;
    for (done, file) in args.files.iter().enumerate() {
        if let Some(bar) = &bar {
            bar.set_message(display_path(file));
        }
        match reencrypt_file(&cluster, &mut published, file) {
            Ok(()) => {}
            Err(Problem::File(failure)) => {
                report(&failure);
                failed += 1;
            }
            Err(Problem::Stop(failure)) => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let before = done - failed;
                if before == 0 {
                    return Err(failure);
                }
                return Err(Failure::new(format!(
                    "{failure} (stopped; {before} file{} reencrypted before)",
                    plural(before)
                )));
            }
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let reencrypted = total - failed;
    if failed > 0 {
        return Err(Failure::new(format!(
            "{failed} of {total} file{} left as {}; reencrypted {reencrypted}",
            plural(total),
            if failed == 1 { "it was" } else { "they were" }
        )));
    }
    eprintln!(
        "seal reencrypt: reencrypted {reencrypted} file{}",
        plural(reencrypted)
    );
    Ok(())
}

/// Re-seals every SealedSecret of `path`, then rewrites it, only if all of them were and each
/// answer is that SealedSecret re-wrapped (`check_reencrypt_reply`).
fn reencrypt_file(
    cluster: &Cluster,
    published: &mut Option<Vec<String>>,
    path: &Path,
) -> std::result::Result<(), Problem> {
    let original = read_input(path).map_err(Problem::File)?;
    let objects = parse_objects(path, &original)
        .and_then(|objects| sealed_secrets(path, objects))
        .map_err(Problem::File)?;
    let mut resealed = Vec::with_capacity(objects.len());
    for Located {
        line,
        value: sealed,
    } in objects
    {
        let label = sealed_label(&sealed);
        let fail = |message: String| Failure::at_line(path, line, format!("{label}: {message}"));
        let body = serde_json::to_vec(&sealed).map_err(|e| Problem::File(fail(e.to_string())))?;
        let reply =
            post_patiently(cluster, body).map_err(|e| Problem::Stop(fail(e.to_string())))?;
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
        check_reencrypt_reply(&sealed, &new, published)
            .map_err(|e| Problem::File(fail(e.to_string())))?;
        // Only the values and their records come from the answer; the rest is the file's.
        let mut kept = sealed;
        kept.spec.encrypted_data = new.spec.encrypted_data;
        kept.spec.recipients = new.spec.recipients;
        kept.status = None;
        resealed.push(kept);
    }
    let format = if original.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let text = render(&resealed, format).map_err(Problem::File)?;
    if text != original {
        write_atomically(path, &text).map_err(Problem::File)?;
    }
    Ok(())
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

/// POSTs to `/v1/reencrypt`; a 429 is tried again after the wait the controller asks for
/// (`Retry-After`, else doubling from one second), a few times.
fn post_patiently(cluster: &Cluster, body: Vec<u8>) -> Result<Reply> {
    let mut wait = Duration::from_secs(1);
    let mut retries = 0;
    loop {
        let reply = cluster.post_to_controller("/v1/reencrypt", body.clone())?;
        if reply.status != StatusCode::TOO_MANY_REQUESTS || retries == RATE_LIMIT_RETRIES {
            return Ok(reply);
        }
        let asked = reply.retry_after().map(Duration::from_secs).unwrap_or(wait);
        std::thread::sleep(asked.min(MAX_RETRY_WAIT));
        wait *= 2;
        retries += 1;
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
