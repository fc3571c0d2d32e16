//! A short version of the http_body fuzz target (fuzz/): arbitrary and mutated request bodies
//! for `/v1/verify` and `/v1/reencrypt` never panic, get only the statuses the handlers
//! define, and never carry a secret key or a sealed plaintext back. A finding of the fuzzer
//! becomes a `fuzz_regression_*` test here.

mod support;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use sealant_controller::http::{parse_sealed, reencrypt_body, verify_body};
use sealant_controller::state::KeysView;
use sealant_core::SealedSecret;
use sealant_core::convert::{SealOptions, seal_secret, unseal_in_cluster};
use sealant_core::keys::{Identity, parse_identity_file};
use sealant_core::keystore::{KeySet, KeyState, StoredKey};
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::output::{to_json, to_yaml};
use sealant_core::scope::Scope;
use serde_json::Value;

/// Throwaway test identities (the first is docs/format.md's test vector), as in fuzz/.
const ACTIVE: &str = "AGE-SECRET-KEY-190L2V0D8V28MGQ54WRPPQS24NUEZ52F3P8MSP6QXVJ4D884RC9FQVA23RS";
const RETIRED: &str = "AGE-SECRET-KEY-1EUS07HTQAV9LLMM8Z48D5VS43J23C3FRWXY94PEM348VX85XAZYQPMVK89";
const COMPROMISED: &str =
    "AGE-SECRET-KEY-1D7AH89AG6UJL6DAMK2F2WDF4N0MPFJ6N72Q2VM22NKLDTSAZRZXS2FGNS6";
/// In no body: it must never open a re-encrypted value.
const ATTACKER: &str = "AGE-SECRET-KEY-1WXV4G044GUPNEFC8JWXQXJ75HT5XNNQVNZ6MXQUXG8NR4U9EK7QQP2LHNX";
const PLAINTEXTS: [&str; 3] = [
    "fuzz-plaintext-Qx7vZ2kP",
    "fuzz-retired-Wm3nB8sT",
    "fuzz-compromised-Lr4cY9dH",
];
/// A hang guard, as the fuzz runs' per-input timeout (10 s), not a speed target: speed is
/// measured in benchmarks, and a loaded CI machine must not fail a correct input.
const SLOW: Duration = Duration::from_secs(10);

struct Fixture {
    view: KeysView,
    active: String,
    compromised: String,
    /// Valid bodies: one SealedSecret each, to the active, retired and compromised key.
    bodies: Vec<String>,
}

fn identity(text: &str) -> Identity {
    parse_identity_file(text).unwrap().remove(0)
}

fn stored(identity: &Identity, state: KeyState, created: &str) -> StoredKey {
    StoredKey {
        name: format!("sealant-key-{state}"),
        recipient: identity.to_public().to_string(),
        identity: identity.clone(),
        state,
        created: created.parse::<Timestamp>().unwrap(),
    }
}

fn sealed(name: &str, plaintext: &str, scope: Scope, to: &Identity) -> SealedSecret {
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: prod}}\nstringData:\n  password: {plaintext}\n"
    );
    let Manifest::Secret(secret) = read_manifests(&yaml).unwrap().remove(0).value else {
        panic!("not a Secret")
    };
    let recipients = [to.to_public()];
    let opts = SealOptions {
        scope,
        recipients: &recipients,
        namespace: None,
        allow_empty: false,
    };
    seal_secret(&secret, &opts).unwrap()
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let (active, retired, compromised) =
        (identity(ACTIVE), identity(RETIRED), identity(COMPROMISED));
    let bodies = vec![
        to_yaml(&sealed("db", PLAINTEXTS[0], Scope::Strict, &active)).unwrap(),
        to_json(&[sealed("old", PLAINTEXTS[1], Scope::NamespaceWide, &retired)]).unwrap(),
        to_yaml(&sealed("bad", PLAINTEXTS[2], Scope::Strict, &compromised)).unwrap(),
    ];
    Fixture {
        view: KeysView::new(KeySet::new(vec![
            stored(&active, KeyState::Active, "2026-02-01T00:00:00Z"),
            stored(&retired, KeyState::Retired, "2026-01-01T00:00:00Z"),
            stored(&compromised, KeyState::Compromised, "2025-12-01T00:00:00Z"),
        ])),
        active: active.to_public().to_string(),
        compromised: compromised.to_public().to_string(),
        bodies,
    }
});

fn collect(response: Response) -> (StatusCode, Value, Vec<u8>) {
    let status = response.status();
    assert_eq!(
        response.headers()[axum::http::header::CONTENT_TYPE],
        "application/json"
    );
    let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap()
        .to_vec();
    let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, json, body)
}

fn assert_no_leak(request: &[u8], response: &[u8]) {
    support::assert_no_leak(request, response, &PLAINTEXTS);
}

/// Both handlers on one body, with the http_body fuzz target's checks.
fn post_both(body: &[u8]) {
    let f = &*FIXTURE;
    let started = Instant::now();
    let (status, verified, raw) = collect(verify_body(body, &f.view));
    assert_no_leak(body, &raw);
    match status {
        StatusCode::OK => assert_eq!(verified["ok"], true),
        StatusCode::CONFLICT => assert_eq!(verified["ok"], false),
        StatusCode::BAD_REQUEST => assert!(parse_sealed(body).is_err()),
        other => panic!("verify answered {other}"),
    }
    let (status, reencrypted, raw) = collect(reencrypt_body(body, &f.view));
    assert_no_leak(body, &raw);
    match status {
        StatusCode::OK => {
            assert_eq!(verified["ok"], true, "re-encrypted what verify refuses");
            let resealed: SealedSecret = serde_json::from_value(reencrypted).unwrap();
            let original = parse_sealed(body).unwrap();
            let before = unseal_in_cluster(&original, &f.view.ring, &f.view.compromised).unwrap();
            let after = unseal_in_cluster(&resealed, &f.view.ring, &f.view.compromised).unwrap();
            assert_eq!(before.secret.data, after.secret.data);
            for recipients in resealed.spec.recipients.values() {
                assert!(recipients.contains(&f.active));
                assert!(!recipients.contains(&f.compromised));
            }
            // What the record says is a hint: who really opens the reply is asked of age.
            let keys = [
                ("active", identity(ACTIVE)),
                ("retired", identity(RETIRED)),
                ("compromised", identity(COMPROMISED)),
                ("attacker", identity(ATTACKER)),
            ];
            support::assert_no_new_reader(
                &original.spec.encrypted_data,
                &resealed.spec.encrypted_data,
                &["active"],
                &keys,
            );
        }
        StatusCode::BAD_REQUEST => assert!(verified["error"].is_string()),
        StatusCode::CONFLICT => assert!(reencrypted["error"].is_string()),
        other => panic!("reencrypt answered {other}"),
    }
    assert!(started.elapsed() < SLOW, "took {:?}", started.elapsed());
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn mutated(base: usize, edits: &[Edit]) -> Vec<u8> {
    let f = &*FIXTURE;
    let mut body = f.bodies[base % f.bodies.len()].as_bytes().to_vec();
    for edit in edits {
        match edit {
            Edit::Flip(i, m) if !body.is_empty() => {
                let i = i.index(body.len());
                body[i] ^= m;
            }
            Edit::Insert(i, b) => {
                let i = i.index(body.len() + 1);
                body.insert(i, *b);
            }
            Edit::Delete(i, n) => {
                let i = i.index(body.len() + 1);
                let end = (i + usize::from(*n)).min(body.len());
                body.drain(i..end);
            }
            Edit::Truncate(i) => body.truncate(i.index(body.len() + 1)),
            _ => {}
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bodies_never_panic_or_leak(body in prop::collection::vec(any::<u8>(), 0..512)) {
        post_both(&body);
    }

    /// Valid SealedSecrets with a few byte edits: the paths past parsing.
    #[test]
    fn mutated_bodies_never_panic_or_leak(
        base in 0usize..3,
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        post_both(&mutated(base, &edits));
    }
}

#[test]
fn the_fixture_bodies_answer_as_expected() {
    let f = &*FIXTURE;
    let statuses: Vec<StatusCode> = f
        .bodies
        .iter()
        .map(|b| verify_body(b.as_bytes(), &f.view).status())
        .collect();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::CONFLICT]
    );
    for body in &f.bodies {
        post_both(body.as_bytes());
    }
}
