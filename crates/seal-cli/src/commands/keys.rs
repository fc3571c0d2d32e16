//! `seal keygen`, `seal recipient` and `seal completions`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use clap::CommandFactory;
use k8s_openapi::jiff::Timestamp;
use sealant_core::keys::{created_stamp, generate_key, parse_identity_file};
use zeroize::Zeroizing;

use crate::cli::{Cli, CompletionsArgs, KeygenArgs, RecipientArgs};
use crate::failure::{Failure, Result};
use crate::files::{emit, read_input};

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let created = created_stamp(Timestamp::now());
    let key = generate_key(&created);
    let path = &args.output;
    // create_new: never overwrite a key; 0600 from the first byte.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Failure::in_file(path, "already exists; refusing to overwrite a key")
            }
            _ => Failure::in_file(path, format!("cannot create: {e}")),
        })?;
    file.write_all(key.file_text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::in_file(path, format!("cannot write: {e}")))?;
    emit(&format!("{}\n", key.recipient), None)
}

pub fn recipient(args: &RecipientArgs) -> Result<()> {
    let text = Zeroizing::new(read_input(&args.file)?);
    let identities = parse_identity_file(&text).map_err(|e| Failure::in_file(&args.file, e))?;
    let out: String = identities
        .iter()
        .map(|i| format!("{}\n", i.to_public()))
        .collect();
    emit(&out, None)
}

pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "seal", &mut out);
    emit(&String::from_utf8_lossy(&out), None)
}
