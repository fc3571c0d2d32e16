//! Fixtures the fuzz targets share: fixed throwaway identities, the keys a controller holds
//! in the HTTP target, and the checks that a response leaks neither a key nor a plaintext.
//!
//! The identities are test keys published in this repository (the first is the test vector
//! of docs/format.md). They protect nothing.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use sealant_controller::state::KeysView;
use sealant_core::KeyRing;
use sealant_core::keys::{Identity, Recipient, parse_identity_file, parse_recipient};
use sealant_core::keystore::{KeySet, KeyState, StoredKey};

/// The docs/format.md test vector's identity: the active key in the HTTP target, the key
/// every opener holds elsewhere.
pub const ACTIVE_IDENTITY: &str =
    "AGE-SECRET-KEY-190L2V0D8V28MGQ54WRPPQS24NUEZ52F3P8MSP6QXVJ4D884RC9FQVA23RS";
/// A retired key: opens, never seals.
pub const RETIRED_IDENTITY: &str =
    "AGE-SECRET-KEY-1EUS07HTQAV9LLMM8Z48D5VS43J23C3FRWXY94PEM348VX85XAZYQPMVK89";
/// A compromised key: the controller holds it but must open nothing with it.
pub const COMPROMISED_IDENTITY: &str =
    "AGE-SECRET-KEY-1D7AH89AG6UJL6DAMK2F2WDF4N0MPFJ6N72Q2VM22NKLDTSAZRZXS2FGNS6";

/// The plaintexts the seeds were sealed with. A response must never carry one that the
/// request did not carry itself.
pub const PLAINTEXTS: &[&str] = &[
    "hunter2",
    "fuzz-plaintext-Qx7vZ2kP",
    "fuzz-retired-Wm3nB8sT",
    "fuzz-compromised-Lr4cY9dH",
];

pub struct Keys {
    pub active: Identity,
    pub retired: Identity,
    pub compromised: Identity,
}

impl Keys {
    pub fn recipient(identity: &Identity) -> Recipient {
        identity.to_public()
    }
}

fn identity(text: &str) -> Identity {
    parse_identity_file(text)
        .expect("fixture identity")
        .remove(0)
}

pub static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    active: identity(ACTIVE_IDENTITY),
    retired: identity(RETIRED_IDENTITY),
    compromised: identity(COMPROMISED_IDENTITY),
});

pub fn active_recipient() -> String {
    KEYS.active.to_public().to_string()
}

pub fn retired_recipient() -> String {
    KEYS.retired.to_public().to_string()
}

pub fn compromised_recipient() -> String {
    KEYS.compromised.to_public().to_string()
}

pub fn parse(recipient: &str) -> Recipient {
    parse_recipient(recipient).expect("fixture recipient")
}

/// Active and retired identities: what opens.
pub fn opening_ring() -> KeyRing {
    KeyRing::from_identities([KEYS.active.clone(), KEYS.retired.clone()])
}

fn stored(name: &str, identity: &Identity, state: KeyState, created: &str) -> StoredKey {
    StoredKey {
        name: name.into(),
        recipient: identity.to_public().to_string(),
        identity: identity.clone(),
        state,
        created: created.parse::<Timestamp>().expect("fixture time"),
    }
}

/// The controller's keys in the HTTP target: one active, one retired, one compromised.
pub fn keys_view() -> KeysView {
    KeysView::new(KeySet::new(vec![
        stored(
            "sealant-key-active",
            &KEYS.active,
            KeyState::Active,
            "2026-02-01T00:00:00Z",
        ),
        stored(
            "sealant-key-retired",
            &KEYS.retired,
            KeyState::Retired,
            "2026-01-01T00:00:00Z",
        ),
        stored(
            "sealant-key-compromised",
            &KEYS.compromised,
            KeyState::Compromised,
            "2025-12-01T00:00:00Z",
        ),
    ]))
}

/// A response's status and body bytes (the handlers' bodies are in memory: this never waits).
pub fn collect(response: Response) -> (StatusCode, Option<String>, Vec<u8>) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("in-memory body");
    (status, content_type, body.to_vec())
}

#[path = "../../crates/controller/tests/support/mod.rs"]
mod support;

/// Panics when `response` carries a secret key or a seed plaintext that `request` did not
/// carry itself (an error message may quote the request, which is no leak).
pub fn assert_no_leak(request: &[u8], response: &[u8]) {
    support::assert_no_leak(request, response, PLAINTEXTS);
}

/// An attacker's key, in no seed: it must never open a re-encrypted value.
pub const ATTACKER_IDENTITY: &str =
    "AGE-SECRET-KEY-1WXV4G044GUPNEFC8JWXQXJ75HT5XNNQVNZ6MXQUXG8NR4U9EK7QQP2LHNX";

/// Panics when a re-encrypted item opens for a key that could not open the original item,
/// other than the active key: readers(reply) ⊆ active ∪ readers(original).
pub fn assert_no_new_reader(
    original: &std::collections::BTreeMap<String, String>,
    reply: &std::collections::BTreeMap<String, String>,
) {
    let keys = [
        ("active", KEYS.active.clone()),
        ("retired", KEYS.retired.clone()),
        ("compromised", KEYS.compromised.clone()),
        ("attacker", identity(ATTACKER_IDENTITY)),
    ];
    support::assert_no_new_reader(original, reply, &["active"], &keys);
}
