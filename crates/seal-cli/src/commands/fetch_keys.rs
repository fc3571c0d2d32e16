//! `seal fetch-keys`: the recipients a cluster seals to, for `-R` or a `.sealant.yaml`.

use crate::cli::FetchKeysArgs;
use crate::cluster::fetch_recipients;
use crate::failure::Result;
use crate::files::emit;

pub fn run(args: &FetchKeysArgs) -> Result<()> {
    let out: String = fetch_recipients(&args.cluster)?
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    emit(&out, None)
}
