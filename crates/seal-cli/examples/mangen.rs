//! Writes the man pages of `seal` and `seal-controller`, generated from their clap
//! definitions, to docs/man/: one page per command and subcommand (seal.1, seal-check.1, …).
//! tests/man_pages.rs fails when the checked-in pages are stale.
//!
//!     cargo run -p seal-cli --example mangen

// The CLI is a binary crate: its clap types are included from source.
#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

use clap::CommandFactory;

/// Where the pages are checked in, relative to the repo root.
pub const MAN_DIR: &str = "docs/man";

/// Every page: (file name, roff text).
pub fn pages() -> Vec<(String, String)> {
    let mut out = Vec::new();
    render(cli::Cli::command(), &mut out);
    render(sealant_controller::cli::Cli::command(), &mut out);
    out
}

fn render(cmd: clap::Command, out: &mut Vec<(String, String)>) {
    let mut cmd = cmd;
    cmd.build();
    add(&cmd, cmd.get_name().to_owned(), out);
}

fn add(cmd: &clap::Command, name: String, out: &mut Vec<(String, String)>) {
    // clap names are &'static str: a few leaked bytes in a one-shot generator.
    let page = cmd.clone().name(&*String::leak(name.clone()));
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .expect("rendering into memory");
    out.push((
        format!("{name}.1"),
        String::from_utf8(roff).expect("roff is UTF-8"),
    ));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        add(sub, format!("{name}-{}", sub.get_name()), out);
    }
}

#[allow(dead_code)]
fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(MAN_DIR);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{MAN_DIR}: {e}"));
    // Pages of commands that no longer exist must not linger.
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{MAN_DIR}: {e}")) {
        let path = entry.expect("listing").path();
        if path.extension().is_some_and(|e| e == "1") {
            std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    for (file, text) in pages() {
        std::fs::write(dir.join(&file), text).unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("wrote {MAN_DIR}/{file}");
    }
}
