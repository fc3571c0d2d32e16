//! The age v1 header as bytes (c2sp.org/age, "Header"): split into its stanzas as they stand
//! in the file, stanzas written as age writes them, and the header MAC. The age crate parses
//! and checks headers but does not expose them; re-wrapping (`rewrap.rs`) and `seal check`
//! need the stanzas themselves.

use age_core::format::{FILE_KEY_BYTES, Stanza};
use age_core::primitives::hkdf;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::value::X25519_RECIPIENT_TAG;

/// The first line of every age v1 file ("Version line").
pub(crate) const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
/// Starts the line that closes the header; the MAC covers the header up to and including it.
pub(crate) const MAC_TAG: &[u8] = b"---";
/// HMAC-SHA-256 output, …
const MAC_BYTES: usize = 32;
/// … written as canonical unpadded base64 after `--- `.
const ENCODED_MAC_LEN: usize = 43;
/// HKDF label of the header MAC key (salt empty, input the file key).
const HEADER_KEY_LABEL: &[u8] = b"header";
/// Stanza bodies are base64 wrapped at this many columns, the last line always shorter.
const BODY_COLUMNS: usize = 64;

/// One recipient stanza as it stands in the file.
pub(crate) struct RawStanza<'a> {
    pub bytes: &'a [u8],
    pub stanza: Stanza,
}

/// An age v1 header split into its stanzas, and the payload after it.
pub(crate) struct SplitFile<'a> {
    pub stanzas: Vec<RawStanza<'a>>,
    pub payload: &'a [u8],
}

/// Splits a binary age v1 file into its stanzas and payload; `None` when it is not one. The
/// MAC is not checked here: re-wrapping splits only files that age has opened.
pub(crate) fn split(file: &[u8]) -> Option<SplitFile<'_>> {
    let mut rest = file.strip_prefix(VERSION_LINE)?;
    let mut stanzas = Vec::new();
    while !rest.starts_with(MAC_TAG) {
        let (after, stanza) = age_core::format::read::legacy_age_stanza(rest).ok()?;
        let bytes = &rest[..rest.len() - after.len()];
        stanzas.push(RawStanza {
            bytes,
            stanza: stanza.into(),
        });
        rest = after;
    }
    let mac_line_len = MAC_TAG.len() + 1 + ENCODED_MAC_LEN + 1;
    Some(SplitFile {
        stanzas,
        payload: rest.get(mac_line_len..)?,
    })
}

impl SplitFile<'_> {
    /// How many X25519 stanzas the header holds: what `spec.recipients` must list.
    pub fn x25519_count(&self) -> usize {
        self.stanzas.iter().filter(|s| is_x25519(&s.stanza)).count()
    }
}

pub(crate) fn is_x25519(stanza: &Stanza) -> bool {
    stanza.tag == X25519_RECIPIENT_TAG
}

/// Writes a stanza as the age spec lays it out: `-> tag args…`, then the body in canonical
/// unpadded base64 wrapped at 64 columns, ending with a short (possibly empty) line.
pub(crate) fn write_stanza(out: &mut Vec<u8>, stanza: &Stanza) {
    out.extend_from_slice(b"->");
    for field in std::iter::once(&stanza.tag).chain(&stanza.args) {
        out.push(b' ');
        out.extend_from_slice(field.as_bytes());
    }
    out.push(b'\n');
    let body = BASE64_NO_PAD.encode(&stanza.body);
    let mut lines = body.as_bytes().chunks(BODY_COLUMNS).peekable();
    while let Some(line) = lines.next() {
        out.extend_from_slice(line);
        out.push(b'\n');
        if lines.peek().is_none() && line.len() == BODY_COLUMNS {
            out.push(b'\n');
        }
    }
    // An empty body is one empty line.
    if body.is_empty() {
        out.push(b'\n');
    }
}

/// The header MAC: HMAC-SHA-256 keyed with HKDF-SHA-256(salt empty, ikm file key, "header")
/// over the header up to and including `---`.
pub(crate) fn header_mac(file_key: &[u8; FILE_KEY_BYTES], header: &[u8]) -> [u8; MAC_BYTES] {
    let key = zeroize::Zeroizing::new(hkdf(&[], HEADER_KEY_LABEL, file_key));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key[..]).expect("HMAC takes any key length");
    mac.update(header);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_are_written_as_age_writes_them() {
        for len in [0, 1, 32, 47, 48, 49, 96] {
            let stanza = Stanza {
                tag: "t".into(),
                args: vec!["a".into()],
                body: vec![7; len],
            };
            let mut out = Vec::new();
            write_stanza(&mut out, &stanza);
            let (rest, parsed) = age_core::format::read::age_stanza(&out).unwrap();
            assert!(
                rest.is_empty(),
                "{len}: {:?}",
                String::from_utf8_lossy(rest)
            );
            assert_eq!(Stanza::from(parsed), stanza, "{len}");
        }
    }
}
