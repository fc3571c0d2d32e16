//! The manifest readers, on arbitrary text: `read_manifests` (YAML streams, JSON, v1 Lists:
//! what every `seal` command and the controller's HTTP endpoints read), `seal check`'s
//! `check_text`, and the JSON reply parser `seal reencrypt` applies to the controller's answer
//! (`serde_json` into a SealedSecret).
//!
//! Asserts no panic, lines that point into the text, and that every SealedSecret read is
//! written back (as `seal` writes: JSON and YAML) into text that reads as the same object.

#![no_main]

#[path = "../../crates/core/tests/support/mod.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use sealant_core::SealedSecret;
use sealant_core::check::check_text;
use sealant_core::convert::{secret_items, target_of, target_of_sealed};
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::output::{to_json, to_yaml};

fn reads_back(sealed: &SealedSecret, text: &str, how: &str) {
    let again = read_manifests(text)
        .unwrap_or_else(|e| panic!("{how} output does not read back: {e}\n{text}"));
    assert_eq!(
        again.len(),
        1,
        "{how} output holds {} objects\n{text}",
        again.len()
    );
    match &again[0].value {
        Manifest::SealedSecret(back) => {
            assert_eq!(
                **back, *sealed,
                "{how} output reads back differently\n{text}"
            )
        }
        other => panic!("{how} output reads back as {other:?}\n{text}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // `seal reencrypt` parses the controller's reply as bytes.
    let _ = serde_json::from_slice::<SealedSecret>(data);
    // Everything else reads files as UTF-8 text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = support::yaml_lines(text);
    let read = read_manifests(text);
    let findings = check_text(text, None, None);
    match read {
        Err(e) => {
            assert_eq!(findings.len(), 1, "an unreadable file gives one finding");
            assert!(
                e.line >= 1 && e.line <= lines,
                "error line {} of {lines}",
                e.line
            );
            assert!(e.column >= 1);
        }
        Ok(objects) => {
            for object in objects {
                assert!(
                    object.line >= 1 && object.line <= lines,
                    "object line {} of {lines}",
                    object.line
                );
                match object.value {
                    Manifest::Secret(secret) => {
                        let _ = target_of(&secret, Some("default"));
                        let _ = secret_items(&secret);
                    }
                    Manifest::SealedSecret(sealed) => {
                        let _ = target_of_sealed(&sealed);
                        if let Ok(json) = to_json(std::slice::from_ref(&*sealed)) {
                            reads_back(&sealed, &json, "JSON");
                        }
                        if let Ok(yaml) = to_yaml(&*sealed) {
                            reads_back(&sealed, &yaml, "YAML");
                        }
                    }
                    Manifest::Other(_) => {}
                }
            }
        }
    }
});
