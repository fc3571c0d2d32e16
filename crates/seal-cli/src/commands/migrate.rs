//! `seal migrate`: Bitnami SealedSecrets opened with a backup of Bitnami's keys and sealed
//! again as Sealant SealedSecrets, offline. Every object is done in memory first; if any
//! cannot be carried over, nothing at all is written (exit 1).

use std::path::PathBuf;

use sealant_core::bitnami::{
    BitnamiKeyRing, BitnamiObject, BitnamiSealedSecret, KeyBackupError, migrate, parse_key_backup,
    read_objects,
};
use sealant_core::crd::SealedSecret;
use sealant_core::manifest::{Located, is_json};
use zeroize::Zeroizing;

use super::{plural, render};
use crate::cli::{Format, MigrateArgs};
use crate::failure::{Failure, Result, display_path, is_stdin};
use crate::files::{emit, read_input, write_atomically};
use crate::recipients::Recipients;
use crate::walk::manifest_files;

/// A file to read, and whether it was named (a folder's files without a Bitnami
/// SealedSecret are skipped; a named one is an error).
struct Input {
    path: PathBuf,
    named: bool,
}

/// The Sealant objects made from one input file.
struct Done {
    path: PathBuf,
    format: Format,
    sealed: Vec<SealedSecret>,
}

pub fn run(args: &MigrateArgs) -> Result<()> {
    let ring = read_keys(&args.bitnami_keys)?;
    let recipients = Recipients::from_args(&args.to)?.or_cluster(&args.cluster);
    let inputs = inputs(&args.paths, args.in_place)?;
    let mut done = Vec::new();
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    let mut objects_seen = 0;
    for input in &inputs {
        match migrate_file(input, &ring, &recipients, &mut reports) {
            Ok(None) => {}
            Ok(Some(file)) => {
                objects_seen += file.sealed.len();
                done.push(file);
            }
            Err(mut failed) => problems.append(&mut failed),
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("seal: {problem}");
        }
        let n = problems.len();
        return Err(Failure::new(format!(
            "{n} problem{} above; nothing was written",
            plural(n)
        )));
    }
    if done.is_empty() {
        return Err(Failure::new(
            "found no Bitnami SealedSecret (apiVersion bitnami.com/v1alpha1) to migrate",
        ));
    }
    if args.in_place {
        for file in &done {
            write_atomically(&file.path, &render(&file.sealed, file.format)?)?;
        }
    } else {
        let all: Vec<&SealedSecret> = done.iter().flat_map(|f| &f.sealed).collect();
        emit(&render(&all, args.format)?, None)?;
    }
    for report in &reports {
        eprintln!("seal migrate: {report}");
    }
    let files = done.len();
    eprintln!(
        "seal migrate: migrated {objects_seen} SealedSecret{} from {files} file{}{}",
        plural(objects_seen),
        plural(files),
        if args.in_place { ", in place" } else { "" }
    );
    Ok(())
}

/// Every backup's keys, in order: the first key of the first backup is tried first.
fn read_keys(backups: &[PathBuf]) -> Result<BitnamiKeyRing> {
    let mut keys = Vec::new();
    for path in backups {
        let text = Zeroizing::new(read_input(path)?);
        let shown = display_path(path);
        let found = parse_key_backup(&text, &shown).map_err(|e| match e {
            KeyBackupError::NoKeys => Failure::in_file(path, e),
            // The others start with the line.
            e => Failure::new(format!("{shown}:{e}")),
        })?;
        keys.extend(found);
    }
    Ok(BitnamiKeyRing::new(keys))
}

fn inputs(paths: &[PathBuf], in_place: bool) -> Result<Vec<Input>> {
    if paths.is_empty() || paths.iter().any(|p| is_stdin(p)) {
        if in_place {
            return Err(Failure::usage(
                "<stdin>: -w rewrites files in place: name the files or folders",
            ));
        }
        if paths.len() > 1 {
            return Err(Failure::usage(
                "<stdin>: read stdin alone, or name files and folders",
            ));
        }
        return Ok(vec![Input {
            path: PathBuf::from("-"),
            named: true,
        }]);
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            out.extend(
                manifest_files(std::slice::from_ref(path), &[], None)?
                    .files
                    .into_iter()
                    .map(|path| Input { path, named: false }),
            );
        } else {
            out.push(Input {
                path: path.clone(),
                named: true,
            });
        }
    }
    Ok(out)
}

/// Migrates every Bitnami SealedSecret of one file; `Ok(None)` for a folder's file that holds
/// none. The error lists every object that could not be carried over.
fn migrate_file(
    input: &Input,
    ring: &BitnamiKeyRing,
    recipients: &Recipients,
    reports: &mut Vec<String>,
) -> std::result::Result<Option<Done>, Vec<Failure>> {
    let path = &input.path;
    let text = read_input(path).map_err(|f| vec![f])?;
    // Cheap and certain: a Bitnami object names its API group.
    if !input.named && !text.contains("bitnami.com") {
        return Ok(None);
    }
    let Some(bitnami) = bitnami_objects(input, &text).map_err(|f| vec![f])? else {
        return Ok(None);
    };
    let sealed_path = (!is_stdin(path)).then_some(path.as_path());
    let mut sealed = Vec::with_capacity(bitnami.len());
    let mut failed = Vec::new();
    for Located { line, value } in &bitnami {
        let label = format!("Bitnami SealedSecret '{}'", value.target());
        let at = |message: String| Failure::at_line(path, *line, format!("{label}: {message}"));
        let to = match recipients.require(sealed_path, value.metadata.namespace.as_deref()) {
            Ok(to) => to,
            Err(e) => {
                failed.push(at(e.to_string()));
                continue;
            }
        };
        match migrate(value, ring, &to) {
            Ok(migrated) => {
                reports.push(format!(
                    "{}:{line}: {label}: opened with {}",
                    display_path(path),
                    migrated.opened_with.join(", ")
                ));
                sealed.push(migrated.sealed);
            }
            Err(e) => failed.push(at(e.to_string())),
        }
    }
    if !failed.is_empty() {
        return Err(failed);
    }
    Ok(Some(Done {
        path: path.clone(),
        format: format_of(&text),
        sealed,
    }))
}

/// The Bitnami SealedSecrets of a file that holds only those; `Ok(None)` for a folder's file
/// that holds none.
fn bitnami_objects(input: &Input, text: &str) -> Result<Option<Vec<Located<BitnamiSealedSecret>>>> {
    let path = &input.path;
    let objects =
        read_objects(text).map_err(|e| Failure::new(format!("{}:{e}", display_path(path))))?;
    let mut bitnami: Vec<Located<BitnamiSealedSecret>> = Vec::new();
    let mut other = None;
    for Located { line, value } in objects {
        match value {
            BitnamiObject::SealedSecret(b) => bitnami.push(Located { line, value: *b }),
            BitnamiObject::Other(kind) => {
                other.get_or_insert((line, kind));
            }
        }
    }
    if bitnami.is_empty() {
        return if input.named {
            Err(Failure::in_file(
                path,
                "holds no Bitnami SealedSecret (apiVersion bitnami.com/v1alpha1)",
            ))
        } else {
            Ok(None)
        };
    }
    if let Some((line, kind)) = other {
        let kind = if kind.is_empty() {
            "document without a kind".to_owned()
        } else {
            kind
        };
        return Err(Failure::at_line(
            path,
            line,
            format!(
                "is a {kind} in a file of Bitnami SealedSecrets: move it to its own file, then migrate"
            ),
        ));
    }
    Ok(Some(bitnami))
}

/// A file is rewritten in its own format.
fn format_of(text: &str) -> Format {
    if is_json(text) {
        Format::Json
    } else {
        Format::Yaml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_format() {
        assert_eq!(format_of("  {\"kind\": 1}"), Format::Json);
        assert_eq!(format_of("# c\nkind: x"), Format::Yaml);
    }

    #[test]
    fn stdin_cannot_be_rewritten_in_place() {
        let err = inputs(&[], true).err().expect("refused");
        assert_eq!(err.exit_code, 2);
        assert!(inputs(&[PathBuf::from("-")], false).is_ok());
    }
}
