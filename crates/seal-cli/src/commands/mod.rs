//! One module per command; shared reading and rendering helpers here.

pub mod check;
pub mod fetch_keys;
pub mod keys;
pub mod merge;
pub mod migrate;
pub mod reencrypt;
pub mod seal;
pub mod unseal;
pub mod validate;

use std::path::{Path, PathBuf};

use sealant_core::crd::SealedSecret;
use sealant_core::manifest::{Located, Manifest, read_manifests};
use sealant_core::output::{to_json, to_yaml_stream};
use serde::Serialize;

use crate::cli::Format;
use crate::failure::{Failure, Result, display_path};
use crate::files::read_input;

/// The files named, or stdin (`-`) when none is.
pub fn inputs_or_stdin(files: &[PathBuf]) -> Vec<PathBuf> {
    if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files.to_vec()
    }
}

/// Reads and parses every object in an input, errors pointing at `file:line:column`.
pub fn read_objects(path: &Path) -> Result<Vec<Located<Manifest>>> {
    parse_objects(path, &read_input(path)?)
}

/// [`read_objects`] for text already read.
pub fn parse_objects(path: &Path, text: &str) -> Result<Vec<Located<Manifest>>> {
    let objects =
        read_manifests(text).map_err(|e| Failure::new(format!("{}:{e}", display_path(path))))?;
    if objects.is_empty() {
        return Err(Failure::in_file(path, "holds no Kubernetes object"));
    }
    Ok(objects)
}

pub fn render<T: Serialize>(objects: &[T], format: Format) -> Result<String> {
    match format {
        Format::Yaml => to_yaml_stream(objects),
        Format::Json => to_json(objects),
    }
    .map_err(|e| Failure::new(e.to_string()))
}

/// The SealedSecrets of an input, each with its line; anything else is an error.
pub fn sealed_secrets(
    path: &Path,
    objects: Vec<Located<Manifest>>,
) -> Result<Vec<Located<SealedSecret>>> {
    objects
        .into_iter()
        .map(|Located { line, value }| match value {
            Manifest::SealedSecret(sealed) => Ok(Located {
                line,
                value: *sealed,
            }),
            other => Err(Failure::at_line(
                path,
                line,
                format!("is a {}, not a SealedSecret", kind_of(&other)),
            )),
        })
        .collect()
}

/// How a SealedSecret is named in messages.
pub fn sealed_label(sealed: &SealedSecret) -> String {
    format!(
        "SealedSecret '{}'",
        sealed.metadata.name.as_deref().unwrap_or_default()
    )
}

/// What a non-matching object is, for "is a …, not a …" messages.
pub fn kind_of(object: &Manifest) -> &str {
    match object {
        Manifest::Secret(_) => "Secret",
        Manifest::SealedSecret(_) => "SealedSecret",
        Manifest::Other(kind) if kind.is_empty() => "document without a kind",
        Manifest::Other(kind) => kind,
    }
}
