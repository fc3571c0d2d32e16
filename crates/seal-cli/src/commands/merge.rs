//! `seal merge`: change items of a SealedSecret file in place. Untouched items keep their
//! ciphertext byte for byte, and the rest of the file (comments, order, quoting) its bytes,
//! so a Git diff shows only what changed.

use sealant_core::convert::{Items, check_item_key, remove_items, seal_items, secret_items};
use sealant_core::crd::SealedSecret;
use sealant_core::manifest::{Located, Manifest};
use sealant_core::rewrite::rewrite_items;

use super::seal::items_from_flags;
use super::{as_sealed_secret, as_secret, parse_objects, read_objects, wrong_kind};
use crate::cli::MergeArgs;
use crate::failure::{Failure, Result, display_path, is_stdin};
use crate::files::{read_input, write_atomically};
use crate::recipients::Recipients;
use std::path::Path;

pub fn run(args: &MergeArgs) -> Result<()> {
    let path = &args.sealed_file;
    if is_stdin(path) {
        return Err(Failure::usage(format!(
            "{}: merge rewrites the SealedSecret file in place: name it",
            display_path(path)
        )));
    }
    let original = read_input(path)?;
    let objects = parse_objects(path, &original)?;
    let (
        index,
        Located {
            line,
            value: mut sealed,
        },
    ) = the_sealed_secret(path, objects)?;
    let items = items_to_add(args)?;
    let name = sealed.metadata.name.clone().unwrap_or_default();
    let fail = |e| Failure::at_line(path, line, format!("SealedSecret '{name}': {e}"));
    remove_items(&mut sealed, &args.remove).map_err(fail)?;
    if !items.is_empty() {
        for key in items.keys() {
            check_item_key(key).map_err(fail)?;
        }
        // Never the recipients recorded in the file: they are clear text a pull request can
        // extend, and every later value would be sealed to whoever it added.
        let recipients = Recipients::from_args(&args.to)?.or_cluster(&args.cluster);
        let to = recipients
            .require(Some(path), sealed.metadata.namespace.as_deref())
            .map_err(|e| Failure::at_line(path, line, e))?;
        seal_items(&mut sealed, items, &to).map_err(fail)?;
    }
    // Only the lines of the items that changed: comments and layout stay (sealant_core::rewrite).
    let text = rewrite_items(&original, &[(index, &sealed.spec)])
        .map_err(|e| Failure::at_line(path, e.line(), format!("SealedSecret '{name}': {e}")))?;
    if text != original {
        write_atomically(path, &text)?;
    }
    Ok(())
}

/// The items to add: from the flags, else from a Secret on stdin; none both removed and added.
fn items_to_add(args: &MergeArgs) -> Result<Items> {
    let from_flags =
        !args.items.literals.is_empty() || !args.items.files.is_empty() || !args.remove.is_empty();
    let items = if from_flags {
        items_from_flags(&args.items)?
    } else {
        items_from_stdin()?
    };
    if let Some(both) = args.remove.iter().find(|k| items.contains_key(*k)) {
        return Err(Failure::usage(format!(
            "item '{both}' is both removed and added"
        )));
    }
    Ok(items)
}

/// The one SealedSecret of the file, and its index among the objects; other objects in the
/// stream (a ConfigMap beside it) are left alone.
fn the_sealed_secret(
    path: &Path,
    mut objects: Vec<Located<Manifest>>,
) -> Result<(usize, Located<SealedSecret>)> {
    let sealed_at: Vec<usize> = (0..objects.len())
        .filter(|i| matches!(objects[*i].value, Manifest::SealedSecret(_)))
        .collect();
    let index = match sealed_at[..] {
        [one] => one,
        [] => {
            return Err(wrong_kind(
                path,
                objects[0].line,
                &objects[0].value,
                "SealedSecret",
            ));
        }
        ref many => {
            return Err(Failure::in_file(
                path,
                format!(
                    "holds {} SealedSecrets; merge works on a file with one",
                    many.len()
                ),
            ));
        }
    };
    let sealed = as_sealed_secret(path, objects.swap_remove(index))?;
    Ok((index, sealed))
}

fn items_from_stdin() -> Result<Items> {
    let stdin = Path::new("-");
    let mut objects = read_objects(stdin)?;
    if objects.len() != 1 {
        return Err(Failure::in_file(
            stdin,
            "expected one Secret to merge (or pass --from-literal/--from-file/--remove)",
        ));
    }
    let Located {
        line,
        value: secret,
    } = as_secret(stdin, objects.remove(0))?;
    secret_items(&secret).map_err(|e| Failure::at_line(stdin, line, format!("Secret: {e}")))
}
