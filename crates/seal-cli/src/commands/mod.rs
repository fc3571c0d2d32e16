//! One module per command; shared reading and rendering helpers here.

pub mod check;
pub mod keys;
pub mod merge;
pub mod seal;
pub mod unseal;

use std::path::Path;

use sealant_core::manifest::{Located, Manifest, read_manifests};
use sealant_core::output::{to_json, to_yaml_stream};
use serde::Serialize;

use crate::cli::Format;
use crate::failure::{Failure, Result, display_path};
use crate::files::read_input;

/// Reads and parses every object in an input, errors pointing at `file:line:column`.
pub fn read_objects(path: &Path) -> Result<Vec<Located<Manifest>>> {
    let text = read_input(path)?;
    let objects =
        read_manifests(&text).map_err(|e| Failure::new(format!("{}:{e}", display_path(path))))?;
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

/// What a non-matching object is, for "is a …, not a …" messages.
pub fn kind_of(object: &Manifest) -> &str {
    match object {
        Manifest::Secret(_) => "Secret",
        Manifest::SealedSecret(_) => "SealedSecret",
        Manifest::Other(kind) if kind.is_empty() => "document without a kind",
        Manifest::Other(kind) => kind,
    }
}
