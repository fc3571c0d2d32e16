//! The leak check shared by the HTTP body property tests (tests/http_body_properties.rs) and
//! the http_body fuzz target (fuzz/src/lib.rs includes this file by path). Standard library
//! only.

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
