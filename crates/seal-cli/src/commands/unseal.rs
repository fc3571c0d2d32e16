//! `seal unseal`: recovery with a backed-up identity, with the controller's scope checks.

use sealant_core::KeyRing;
use sealant_core::convert::unseal;
use sealant_core::keys::parse_identity_file;
use sealant_core::manifest::Located;
use zeroize::Zeroizing;

use super::{as_sealed_secret, for_each_object, render};
use crate::cli::UnsealArgs;
use crate::failure::{Failure, Result};
use crate::files::{emit, read_input};

pub fn run(args: &UnsealArgs) -> Result<()> {
    let mut keys = KeyRing::new();
    for file in &args.identities {
        let text = Zeroizing::new(read_input(file)?);
        for identity in parse_identity_file(&text).map_err(|e| Failure::in_file(file, e))? {
            keys.insert(identity);
        }
    }
    let mut opened = Vec::new();
    for_each_object(&args.files, |input, object| {
        let Located {
            line,
            value: sealed,
        } = as_sealed_secret(input, object)?;
        let name = sealed.metadata.name.clone().unwrap_or_default();
        opened.push(
            unseal(&sealed, &keys).map_err(|e| {
                Failure::at_line(input, line, format!("SealedSecret '{name}': {e}"))
            })?,
        );
        Ok(())
    })?;
    let secrets: Vec<_> = opened.iter().map(|u| &u.secret).collect();
    let text = Zeroizing::new(render(&secrets, args.format)?);
    emit(&text, None)
}
