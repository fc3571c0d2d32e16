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
use sealant_core::manifest::{Located, Manifest, SecretManifest, read_manifests};
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

/// Calls `f` with each object of each input in turn (stdin when no file is named); each
/// input is read when its turn comes, and the first error stops the run.
pub fn for_each_object(
    files: &[PathBuf],
    mut f: impl FnMut(&Path, Located<Manifest>) -> Result<()>,
) -> Result<()> {
    for input in inputs_or_stdin(files) {
        for object in read_objects(&input)? {
            f(&input, object)?;
        }
    }
    Ok(())
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
        .map(|object| as_sealed_secret(path, object))
        .collect()
}

/// An object that must be a SealedSecret; anything else is an error at its line.
pub fn as_sealed_secret(path: &Path, object: Located<Manifest>) -> Result<Located<SealedSecret>> {
    of_kind(path, object, "SealedSecret", |value| match value {
        Manifest::SealedSecret(sealed) => Ok(*sealed),
        other => Err(other),
    })
}

/// An object that must be a Secret; anything else is an error at its line.
pub fn as_secret(path: &Path, object: Located<Manifest>) -> Result<Located<SecretManifest>> {
    of_kind(path, object, "Secret", |value| match value {
        Manifest::Secret(secret) => Ok(*secret),
        other => Err(other),
    })
}

/// The object as `pick` takes it, or an error at its line naming the `wanted` kind.
fn of_kind<T>(
    path: &Path,
    Located { line, value }: Located<Manifest>,
    wanted: &str,
    pick: impl FnOnce(Manifest) -> std::result::Result<T, Manifest>,
) -> Result<Located<T>> {
    match pick(value) {
        Ok(value) => Ok(Located { line, value }),
        Err(other) => Err(wrong_kind(path, line, &other, wanted)),
    }
}

/// `FILE:LINE: is a ConfigMap, not a Secret`.
pub fn wrong_kind(path: &Path, line: usize, object: &Manifest, wanted: &str) -> Failure {
    Failure::at_line(
        path,
        line,
        format!("is a {}, not a {wanted}", kind_of(object)),
    )
}

/// How a SealedSecret is named in messages.
pub fn sealed_label(sealed: &SealedSecret) -> String {
    format!(
        "SealedSecret '{}'",
        sealed.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The `s` of a count's noun: `1 file`, `2 files`.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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
