//! Re-wrapping a sealed value for a new cluster key without re-encrypting it, and without
//! trusting the recipients a request names.
//!
//! An age file is a header of recipient stanzas, each wrapping the same 16-byte file key,
//! closed by an HMAC of the header under a key derived from the file key, then the payload,
//! encrypted under a key derived from the file key and the payload's own nonce
//! (c2sp.org/age, "Header" and "Payload"). The payload does not depend on the header, so a
//! holder of the file key can swap stanzas and recompute the MAC: the readers of the result
//! are exactly the readers of the kept stanzas plus the new ones, whatever `spec.recipients`
//! says. That is what `/v1/reencrypt` needs: this cluster's stanzas (found by unwrapping, not
//! read from the record) make way for one per active key; every other stanza (a break-glass
//! key, another cluster) and the payload are kept byte for byte.

use age_core::format::{FileKey, Stanza};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NO_PAD};

use crate::header::{MAC_TAG, RawStanza, VERSION_LINE, header_mac, is_x25519, split, write_stanza};
use crate::keys::{KeyRing, Recipient};
use crate::scope::{Scope, Target};
use crate::value::{OpenError, SealedValue, decode_file, open_file, unwrap_x25519};

/// Re-wrapping unwraps every stanza with every held key: this bounds its cost per value.
pub const MAX_STANZAS: usize = 128;

/// What the cluster holds for re-wrapping a value.
pub struct ClusterKeys<'a> {
    /// Keys that may open (active and retired).
    pub usable: &'a KeyRing,
    /// Every key the cluster holds, compromised ones included: their stanzas are replaced too.
    pub held: &'a KeyRing,
    /// The keys to wrap for; at least one.
    pub active: &'a [Recipient],
}

/// Opens the value (with every check [`crate::value::open_value`] makes) and re-wraps its
/// file key: this cluster's stanzas are replaced by one per active key, placed first; every
/// other stanza and the payload are kept byte for byte. The record is rebuilt by position:
/// the active keys, then the entries of the kept X25519 stanzas (hints this code cannot check).
///
/// A value already wrapped for exactly the active keys is returned unchanged.
pub fn rewrap_value(
    ciphertext: &str,
    recorded: &[String],
    scope: Scope,
    target: &Target,
    keys: &ClusterKeys<'_>,
) -> Result<SealedValue, OpenError> {
    let file = decode_file(ciphertext)?;
    let split = split(&file).ok_or(OpenError::NotAgeFile)?;
    // Counted before any key is tried: each stanza costs an X25519 operation per held key.
    if split.stanzas.len() > MAX_STANZAS {
        return Err(OpenError::TooManyStanzas(split.stanzas.len()));
    }
    let (_, file_key) = open_file(&file, recorded, scope, target, keys.usable)?;
    let x25519 = split
        .stanzas
        .iter()
        .filter(|s| is_x25519(&s.stanza))
        .count();
    if x25519 != recorded.len() {
        return Err(OpenError::RecordMismatch {
            recorded: recorded.len(),
            stanzas: x25519,
        });
    }

    // Sort the stanzas into this cluster's (by unwrapping them, whatever the record says)
    // and the others, keeping each kept X25519 stanza's record entry.
    let mut ours = Vec::new();
    let mut kept: Vec<&RawStanza<'_>> = Vec::new();
    let mut kept_record = Vec::new();
    let mut x25519_index = 0;
    for raw in &split.stanzas {
        if !is_x25519(&raw.stanza) {
            kept.push(raw);
            continue;
        }
        match held_key_for(&raw.stanza, keys.held) {
            Some(recipient) => ours.push(recipient),
            None => {
                kept.push(raw);
                kept_record.push(recorded[x25519_index].clone());
            }
        }
        x25519_index += 1;
    }
    let active: Vec<String> = keys.active.iter().map(|r| r.to_string()).collect();
    if ours == active {
        return Ok(SealedValue {
            ciphertext: ciphertext.trim().to_owned(),
            recipients: recorded.to_vec(),
        });
    }

    let mut out = Vec::with_capacity(file.len() + 100 * active.len());
    out.extend_from_slice(VERSION_LINE);
    for recipient in keys.active {
        let wrapped = FileKey::init_with_mut(|k| k.copy_from_slice(&file_key[..]));
        // age's own X25519 recipient makes the stanza; wrapping a file key cannot fail.
        let (stanzas, _) = age::Recipient::wrap_file_key(recipient, &wrapped)
            .expect("X25519 wrapping is infallible");
        for stanza in &stanzas {
            write_stanza(&mut out, stanza);
        }
    }
    for raw in kept {
        out.extend_from_slice(raw.bytes);
    }
    out.extend_from_slice(MAC_TAG);
    let mac = header_mac(&file_key, &out);
    out.push(b' ');
    out.extend_from_slice(BASE64_NO_PAD.encode(mac).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(split.payload);

    let mut record = active;
    record.extend(kept_record);
    Ok(SealedValue {
        ciphertext: BASE64.encode(&out),
        recipients: record,
    })
}

/// The recipient of the held key that unwraps this stanza, if any.
fn held_key_for(stanza: &Stanza, held: &KeyRing) -> Option<String> {
    held.recipients().into_iter().find(|recipient| {
        let key = held.ring_key(recipient).expect("listed by the ring");
        matches!(unwrap_x25519(key, stanza), Some(Ok(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;
    use crate::scope::Binding;
    use crate::value::{open_value, seal_value};

    #[test]
    fn the_mac_is_the_one_age_checks() {
        // A file sealed by age, re-wrapped for the same key, opens with age: the recomputed
        // MAC matches age's own check (the differential tests in tests/ go further).
        let key = generate_key("t");
        let target = Target::new("a", "b");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let old = generate_key("t");
        let sealed = seal_value(b"v", &binding, std::slice::from_ref(&old.recipient)).unwrap();
        let usable = KeyRing::from_identities([old.identity.clone(), key.identity.clone()]);
        let keys = ClusterKeys {
            usable: &usable,
            held: &usable,
            active: std::slice::from_ref(&key.recipient),
        };
        let moved = rewrap_value(
            &sealed.ciphertext,
            &sealed.recipients,
            Scope::Strict,
            &target,
            &keys,
        )
        .unwrap();
        assert_eq!(moved.recipients, vec![key.recipient.to_string()]);
        let only_new = KeyRing::from_identities([key.identity]);
        let opened = open_value(
            &moved.ciphertext,
            &moved.recipients,
            Scope::Strict,
            &target,
            &only_new,
        )
        .unwrap();
        assert_eq!(&opened.plaintext[..], b"v");
    }

    #[test]
    fn a_value_with_too_many_stanzas_is_refused_before_any_key_is_tried() {
        let target = Target::new("a", "b");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let many: Vec<_> = (0..=MAX_STANZAS).map(|_| generate_key("t")).collect();
        let recipients: Vec<Recipient> = many.iter().map(|k| k.recipient.clone()).collect();
        let sealed = seal_value(b"v", &binding, &recipients).unwrap();
        let key = generate_key("t");
        let usable = KeyRing::from_identities([many[0].identity.clone()]);
        let keys = ClusterKeys {
            usable: &usable,
            held: &usable,
            active: std::slice::from_ref(&key.recipient),
        };
        let refused = rewrap_value(
            &sealed.ciphertext,
            &sealed.recipients,
            Scope::Strict,
            &target,
            &keys,
        );
        // age may add a grease stanza of its own: at least one more than allowed.
        let err = refused.unwrap_err();
        assert!(
            matches!(err, OpenError::TooManyStanzas(n) if n > MAX_STANZAS),
            "{err}"
        );
    }
}
