#![allow(dead_code)] // Each test binary that includes this uses part of it.
//! What the controller's tests share: the leak check of the HTTP body property tests
//! (tests/http_body_properties.rs) and the http_body fuzz target (fuzz/src/lib.rs includes this
//! file by path), the reader check of the attack tests, and the stored keys and sealed objects
//! the tests start from. The standard library, `age`, `base64`, `sealant-core` and `k8s-openapi`
//! only (the fuzz crate has those too).

/// No secret key and no `plaintexts` in `response` that `request` did not carry itself (an
/// error message may quote the request, which is no leak).
pub fn assert_no_leak(request: &[u8], response: &[u8], plaintexts: &[&str]) {
    let prefix = b"age-secret-key-";
    if !contains(&request.to_ascii_lowercase(), prefix) {
        assert!(
            !contains(&response.to_ascii_lowercase(), prefix),
            "response carries a secret key: {}",
            String::from_utf8_lossy(response)
        );
    }
    for plaintext in plaintexts {
        if !contains(request, plaintext.as_bytes()) {
            assert!(
                !contains(response, plaintext.as_bytes()),
                "response carries the plaintext {plaintext:?}: {}",
                String::from_utf8_lossy(response)
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The names of the `keys` that open a sealed value (base64 of an age file), asked of the
/// `age` crate itself: who can really read it, whatever `spec.recipients` claims.
pub fn readers<'a>(ciphertext: &str, keys: &'a [(&'a str, age::x25519::Identity)]) -> Vec<&'a str> {
    use base64::Engine;
    let Ok(file) = base64::engine::general_purpose::STANDARD.decode(ciphertext.trim()) else {
        return Vec::new();
    };
    keys.iter()
        .filter(|(_, identity)| {
            age::Decryptor::new_buffered(&file[..])
                .and_then(|d| d.decrypt(std::iter::once(identity as &dyn age::Identity)))
                .is_ok()
        })
        .map(|(name, _)| *name)
        .collect()
}

/// The re-encrypt invariant: every key in `keys` that opens an item of `reply` is one of the
/// `active` names or already opened that item of `original` (items: `spec.encryptedData`).
pub fn assert_no_new_reader(
    original: &std::collections::BTreeMap<String, String>,
    reply: &std::collections::BTreeMap<String, String>,
    active: &[&str],
    keys: &[(&str, age::x25519::Identity)],
) {
    for (item, value) in reply {
        let before = original
            .get(item)
            .map(|v| readers(v, keys))
            .unwrap_or_default();
        for reader in readers(value, keys) {
            assert!(
                active.contains(&reader) || before.contains(&reader),
                "item {item}: the reply opens for {reader}, which could not open the original"
            );
        }
    }
}

/// A key as the controller stores it: the Secret `name`, created at `created` (RFC 3339),
/// labelled `state`.
pub fn stored_key(
    name: &str,
    created: &str,
    state: sealant_core::keystore::KeyState,
) -> sealant_core::keystore::StoredKey {
    use sealant_core::keystore::{STATE_LABEL, new_key_secret, parse_key_secret};
    let created = created.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
    let (mut secret, _) = new_key_secret("sealant-system", created);
    secret.metadata.name = Some(name.into());
    secret
        .metadata
        .labels
        .get_or_insert_default()
        .insert(STATE_LABEL.into(), state.as_str().into());
    parse_key_secret(&secret).unwrap()
}

/// The one Secret in `yaml`, sealed in strict scope to `recipients`, as `seal` would.
pub fn seal_strict(
    yaml: &str,
    recipients: &[sealant_core::keys::Recipient],
) -> sealant_core::SealedSecret {
    use sealant_core::convert::{SealOptions, seal_secret};
    use sealant_core::manifest::{Manifest, read_manifests};
    let Manifest::Secret(secret) = read_manifests(yaml).unwrap().remove(0).value else {
        panic!("fixture is not a Secret")
    };
    let opts = SealOptions {
        scope: sealant_core::Scope::Strict,
        recipients,
        namespace: None,
        allow_empty: false,
    };
    seal_secret(&secret, &opts).unwrap()
}

/// Adds two items of 600 KiB each to `sealed` (prod/db), sealed by hand past `seal`'s own
/// check (anyone can seal to the public key): 1.2 MiB in all, where a Secret holds 1 MiB.
pub fn add_more_than_a_secret_holds(
    sealed: &mut sealant_core::SealedSecret,
    recipient: &sealant_core::keys::Recipient,
) {
    let binding = sealant_core::scope::Binding::new(
        sealant_core::Scope::Strict,
        &sealant_core::Target::new("prod", "db"),
    )
    .unwrap();
    for item in ["a", "b"] {
        let value = sealant_core::value::seal_value(
            &vec![b'x'; 600 * 1024],
            &binding,
            std::slice::from_ref(recipient),
        )
        .unwrap();
        sealed
            .spec
            .encrypted_data
            .insert(item.into(), value.ciphertext);
        sealed.spec.recipients.insert(item.into(), value.recipients);
    }
}
