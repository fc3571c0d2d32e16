#![allow(dead_code)] // Each test binary that includes this uses part of it.
//! The leak check shared by the HTTP body property tests (tests/http_body_properties.rs) and
//! the http_body fuzz target (fuzz/src/lib.rs includes this file by path), and the reader
//! check the attack tests use. Standard library, `age` and `base64` only.

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
