//! A valid sealed value, made once at startup, mutated as the input says: byte flips, sets,
//! inserts, deletions, truncation, reordered / duplicated / dropped / spliced header records
//! (stanzas), edits of the recorded recipients list, a moved target, edits of the base64 text.
//!
//! Asserts that the result never opens to a different plaintext, never opens unless the age
//! file is byte for byte the original, never opens somewhere its strict scope forbids, and
//! always opens when nothing that matters was changed. And never panics.
//!
//! Input: 4-byte operations `[op, a, b, c]`, at most 64 of them.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
#[path = "../../crates/core/tests/support/mod.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use sealant_core::KeyRing;
use sealant_core::scope::{Binding, Scope, Target};
use sealant_core::value::{open_value, seal_value};

const PLAINTEXT: &[u8] = b"fuzz-plaintext-Qx7vZ2kP";
const MAX_OPS: usize = 64;

struct Fixture {
    file: Vec<u8>,
    recorded: Vec<String>,
    ring: KeyRing,
    active: String,
    others: [String; 2],
}

/// Sealed to the active key (held) and the retired key (not held here), so the header has
/// two X25519 records plus age's grease record.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let target = home();
    let binding = Binding::new(Scope::Strict, &target).unwrap();
    let recipients = [
        sealant_fuzz::parse(&sealant_fuzz::active_recipient()),
        sealant_fuzz::parse(&sealant_fuzz::retired_recipient()),
    ];
    let sealed = seal_value(PLAINTEXT, &binding, &recipients).unwrap();
    Fixture {
        file: BASE64.decode(&sealed.ciphertext).unwrap(),
        recorded: sealed.recipients,
        ring: KeyRing::from_identities([sealant_fuzz::KEYS.active.clone()]),
        active: sealant_fuzz::active_recipient(),
        others: [
            sealant_fuzz::retired_recipient(),
            sealant_fuzz::compromised_recipient(),
        ],
    }
});

fn home() -> Target {
    Target::new("prod", "db")
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let mut file = f.file.clone();
    let mut recorded = f.recorded.clone();
    let mut target = home();
    let mut text_edits: Vec<(usize, u8)> = Vec::new();
    for op in data.chunks_exact(4).take(MAX_OPS) {
        let (a, b, c) = (op[1], op[2], op[3]);
        let at = |len: usize| {
            if len == 0 {
                0
            } else {
                usize::from(u16::from_le_bytes([a, b])) % len
            }
        };
        match op[0] % 16 {
            0 => {
                if !file.is_empty() {
                    let i = at(file.len());
                    file[i] ^= c.max(1);
                }
            }
            1 => file.truncate(at(file.len() + 1)),
            2 => {
                if !file.is_empty() {
                    let i = at(file.len());
                    file[i] = c;
                }
            }
            3 => {
                let i = at(file.len() + 1);
                file.insert(i, c);
            }
            4 => {
                let i = at(file.len() + 1);
                let end = (i + usize::from(c)).min(file.len());
                file.drain(i..end);
            }
            5 => {
                if let Some(new) = support::with_records(&file, |r| {
                    let (i, j) = (usize::from(a) % r.len(), usize::from(c) % r.len());
                    r.swap(i, j);
                }) {
                    file = new;
                }
            }
            6 => {
                if let Some(new) = support::with_records(&file, |r| {
                    let i = usize::from(a) % r.len();
                    let copy = r[i].clone();
                    r.insert(usize::from(c) % (r.len() + 1), copy);
                }) {
                    file = new;
                }
            }
            7 => {
                if let Some(new) = support::with_records(&file, |r| {
                    r.remove(usize::from(a) % r.len());
                }) {
                    file = new;
                }
            }
            8 => {
                // Splice: the first line (tag and args) of one record onto another's body.
                if let Some(new) = support::with_records(&file, |r| {
                    let (i, j) = (usize::from(a) % r.len(), usize::from(c) % r.len());
                    let split = |rec: &[u8]| rec.iter().position(|&b| b == b'\n').map(|p| p + 1);
                    if let (Some(si), Some(sj)) = (split(&r[i]), split(&r[j])) {
                        let mut spliced = r[i][..si].to_vec();
                        spliced.extend_from_slice(&r[j][sj..]);
                        r[i] = spliced;
                    }
                }) {
                    file = new;
                }
            }
            9 => recorded.reverse(),
            10 => {
                if !recorded.is_empty() {
                    recorded.remove(usize::from(a) % recorded.len());
                }
            }
            11 => {
                let r = match a % 3 {
                    0 => f.active.clone(),
                    1 => f.others[0].clone(),
                    _ => f.others[1].clone(),
                };
                recorded.insert(usize::from(c) % (recorded.len() + 1), r);
            }
            12 => {
                target = match a % 4 {
                    0 => home(),
                    1 => Target::new("staging", "db"),
                    2 => Target::new("prod", "db2"),
                    _ => Target {
                        namespace: None,
                        name: "db".into(),
                    },
                }
            }
            13 => text_edits.push((usize::from(u16::from_le_bytes([a, b])), c)),
            14 => {
                let n = usize::from(a % 32);
                file.extend(std::iter::repeat_n(c, n));
            }
            _ => {
                // Move a byte range (a chunk of the payload or header) elsewhere.
                let i = at(file.len() + 1);
                let end = (i + usize::from(c % 64)).min(file.len());
                let moved: Vec<u8> = file.drain(i..end).collect();
                let to = usize::from(b) % (file.len() + 1);
                file.splice(to..to, moved);
            }
        }
    }
    let mut text = BASE64.encode(&file);
    for (at, c) in text_edits {
        let i = at % (text.len() + 1);
        // Whitespace, padding and base64 letters, inserted into the text.
        let ch = b" \n\r\t=A/+"[usize::from(c) % 8] as char;
        text.insert(i, ch);
    }

    let opened = open_value(&text, &recorded, Scope::Strict, &target, &f.ring);
    let decoded = BASE64.decode(text.trim()).ok();
    let unchanged = decoded.as_deref() == Some(&f.file[..]);
    match opened {
        Ok(opened) => {
            assert_eq!(
                &opened.plaintext[..],
                PLAINTEXT,
                "opened to a different plaintext"
            );
            assert!(unchanged, "a changed age file opened");
            assert_eq!(target, home(), "a strict value opened somewhere else");
            assert_eq!(opened.opened_with, f.active);
            assert!(recorded.contains(&f.active));
        }
        Err(e) => assert!(
            !(unchanged && target == home() && recorded.contains(&f.active)),
            "the unchanged value, recorded to a held key, failed to open: {e}"
        ),
    }
});
