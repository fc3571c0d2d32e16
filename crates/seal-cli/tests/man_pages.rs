//! The man pages in docs/man/ are generated from the clap definitions of `seal` and
//! `seal-controller` (issue 13 §4) and must be current.

#[allow(dead_code)]
#[path = "../examples/mangen.rs"]
mod mangen;

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn checked_in_man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(mangen::MAN_DIR);
    let pages = mangen::pages();
    let names: BTreeSet<String> = pages.iter().map(|(f, _)| f.clone()).collect();
    for wanted in [
        "seal.1",
        "seal-check.1",
        "seal-controller.1",
        "seal-controller-rotate.1",
    ] {
        assert!(names.contains(wanted), "{wanted} not generated: {names:?}");
    }
    let stale =
        "docs/man is stale: run `cargo run -p seal-cli --example mangen` and commit docs/man";
    for (file, text) in &pages {
        let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(on_disk == *text, "{file}: {stale}");
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: {stale}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    assert_eq!(on_disk, names, "{stale}");
    // The pages say what the binaries do, flags included.
    let check = &pages.iter().find(|(f, _)| f == "seal-check.1").unwrap().1;
    assert!(check.contains("\\-\\-exclude"), "{check}");
}
