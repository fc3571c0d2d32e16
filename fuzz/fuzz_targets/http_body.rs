//! The request-body handlers of `/v1/verify` and `/v1/reencrypt`, on arbitrary bodies, with a
//! controller holding an active, a retired and a compromised key (fixed test identities).
//!
//! Asserts no panic; statuses only from those the handlers define for a controller that has
//! an active key (200, 400, 409: 500 and 503 would be bugs here, 413/429 come from layers
//! outside these functions); JSON bodies; no secret key and no seed plaintext in any response
//! unless the request carried it; and that a re-encrypted SealedSecret opens to exactly the
//! values the request's did, sealed to the active key and never to the compromised one.

#![no_main]

use std::sync::LazyLock;

use axum::http::StatusCode;
use libfuzzer_sys::fuzz_target;
use sealant_controller::http::{parse_sealed, reencrypt_body, verify_body};
use sealant_controller::state::KeysView;
use sealant_core::SealedSecret;
use sealant_core::convert::unseal_in_cluster;
use serde_json::Value;

struct Fixture {
    view: KeysView,
    active: String,
    retired: String,
    compromised: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    view: sealant_fuzz::keys_view(),
    active: sealant_fuzz::active_recipient(),
    retired: sealant_fuzz::retired_recipient(),
    compromised: sealant_fuzz::compromised_recipient(),
});

fn json_body(endpoint: &str, status: StatusCode, content_type: Option<&str>, body: &[u8]) -> Value {
    assert_eq!(
        content_type,
        Some("application/json"),
        "{endpoint} {status}: not JSON"
    );
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{endpoint} {status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;

    let (status, content_type, body) = sealant_fuzz::collect(verify_body(data, &f.view));
    sealant_fuzz::assert_no_leak(data, &body);
    let verified = json_body("verify", status, content_type.as_deref(), &body);
    match status {
        StatusCode::OK => {
            assert_eq!(verified["ok"], true);
            // The recipients whose keys opened the values: held keys that may open, only.
            let opened_with = verified["openedWith"]
                .as_array()
                .expect("openedWith is a list");
            for r in opened_with {
                let r = r.as_str().expect("a recipient");
                assert!(r == f.active || r == f.retired, "opened with {r}");
            }
        }
        StatusCode::CONFLICT => assert_eq!(verified["ok"], false),
        StatusCode::BAD_REQUEST => {
            assert!(verified["error"].is_string());
            assert!(parse_sealed(data).is_err(), "400, yet the body parses");
        }
        other => panic!("verify answered {other}"),
    }

    let (status, content_type, body) = sealant_fuzz::collect(reencrypt_body(data, &f.view));
    sealant_fuzz::assert_no_leak(data, &body);
    let reencrypted = json_body("reencrypt", status, content_type.as_deref(), &body);
    match status {
        StatusCode::OK => {
            assert_eq!(verified["ok"], true, "re-encrypted what verify refuses");
            let resealed: SealedSecret = serde_json::from_value(reencrypted)
                .unwrap_or_else(|e| panic!("reencrypt 200 is not a SealedSecret: {e}"));
            let original = parse_sealed(data).expect("200, yet the body does not parse");
            let before = unseal_in_cluster(&original, &f.view.ring, &f.view.compromised)
                .expect("re-encrypted, yet the original does not open");
            let after = unseal_in_cluster(&resealed, &f.view.ring, &f.view.compromised)
                .expect("the re-encrypted SealedSecret does not open");
            assert_eq!(
                before.secret.data, after.secret.data,
                "re-encrypting changed the values"
            );
            assert_eq!(resealed.metadata.name, original.metadata.name);
            assert_eq!(resealed.metadata.namespace, original.metadata.namespace);
            assert_eq!(resealed.spec.scope, original.spec.scope);
            for (item, recipients) in &resealed.spec.recipients {
                assert!(
                    recipients.contains(&f.active),
                    "item {item:?} not sealed to the active key"
                );
                assert!(
                    !recipients.contains(&f.compromised),
                    "item {item:?} sealed to the compromised key"
                );
            }
            assert_eq!(
                resealed.spec.recipients.len(),
                resealed.spec.encrypted_data.len()
            );
            sealant_fuzz::assert_no_new_reader(
                &original.spec.encrypted_data,
                &resealed.spec.encrypted_data,
            );
        }
        StatusCode::BAD_REQUEST => {
            assert!(reencrypted["error"].is_string());
            assert!(
                verified["error"].is_string(),
                "verify parsed what reencrypt refuses"
            );
        }
        StatusCode::CONFLICT => assert!(reencrypted["error"].is_string()),
        other => panic!("reencrypt answered {other}"),
    }
});
