//! The sealed-value opener (`open_value`, `inspect_value`) and the payload framing inside it,
//! on arbitrary input, with a fixed test identity.
//!
//! Input: one flags byte, then the value.
//! - bit 7 set: the rest is an opened payload for `payload::unframe` (and must frame back to
//!   itself when it unframes).
//! - bit 0 set: the rest is the raw age file, base64-encoded here (explores the age header and
//!   STREAM parsing); clear: the rest is the `encryptedData` text itself (explores base64).
//! - bits 1-2: scope; bit 3: opened as prod/db (clear) or staging/db (set);
//!   bits 4-5: the recorded recipients (active; none; unheld then active; active then retired).

#![no_main]

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use sealant_core::payload;
use sealant_core::scope::{Scope, Target};
use sealant_core::value::{OpenError, inspect_value, open_value};
use std::sync::LazyLock;

struct Fixture {
    ring: sealant_core::KeyRing,
    active: String,
    retired: String,
    unheld: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    ring: sealant_fuzz::opening_ring(),
    active: sealant_fuzz::active_recipient(),
    retired: sealant_fuzz::retired_recipient(),
    unheld: sealant_fuzz::compromised_recipient(),
});

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & 0x80 != 0 {
        if let Ok((binding, value)) = payload::unframe(rest) {
            assert_eq!(
                &payload::frame(&binding, value)[..],
                rest,
                "an unframed payload does not frame back to itself"
            );
        }
        return;
    }
    let f = &*FIXTURE;
    let ciphertext: Cow<'_, str> = if flags & 1 != 0 {
        Cow::Owned(BASE64.encode(rest))
    } else {
        String::from_utf8_lossy(rest)
    };
    let scope = Scope::ALL[usize::from((flags >> 1) & 3) % 3];
    let target = if flags & 8 == 0 {
        Target::new("prod", "db")
    } else {
        Target::new("staging", "db")
    };
    let recorded: Vec<String> = match (flags >> 4) & 3 {
        0 => vec![f.active.clone()],
        1 => vec![],
        2 => vec![f.unheld.clone(), f.active.clone()],
        _ => vec![f.active.clone(), f.retired.clone()],
    };
    let inspected = inspect_value(&ciphertext);
    match open_value(&ciphertext, &recorded, scope, &target, &f.ring) {
        Ok(opened) => {
            assert!(inspected.is_ok(), "opened, but inspect_value refuses it");
            assert!(
                recorded.contains(&opened.opened_with),
                "opened with {:?}, not a recorded recipient",
                opened.opened_with
            );
        }
        // The two checks inspect_value shares with open_value must agree with it.
        Err(OpenError::NotBase64) => assert_eq!(inspected, Err(OpenError::NotBase64)),
        Err(OpenError::NotAgeFile) => assert_eq!(inspected, Err(OpenError::NotAgeFile)),
        Err(_) => assert!(inspected.is_ok(), "{inspected:?}"),
    }
});
