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

use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NO_PAD};

use crate::header::{
    MAC_TAG, RawStanza, SplitFile, VERSION_LINE, header_mac, is_x25519, split, write_stanza,
};
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
///
/// Also returns the size of the plaintext it holds: the caller adds the sizes of a
/// SealedSecret's values up against a Secret's limit, as opening does.
pub fn rewrap_value(
    ciphertext: &str,
    recorded: &[String],
    scope: Scope,
    target: &Target,
    keys: &ClusterKeys<'_>,
) -> Result<(SealedValue, usize), OpenError> {
    let file = decode_file(ciphertext)?;
    let split = split(&file).ok_or(OpenError::NotAgeFile)?;
    // Counted before any key is tried: each stanza costs an X25519 operation per held key.
    if split.stanzas.len() > MAX_STANZAS {
        return Err(OpenError::TooManyStanzas(split.stanzas.len()));
    }
    let (opened, file_key) = open_file(&file, recorded, scope, target, keys.usable)?;
    let plaintext_bytes = opened.plaintext.len();
    // The plaintext is not needed past its size: zeroized now, not at the end.
    drop(opened);
    let x25519 = split.x25519_count();
    if x25519 != recorded.len() {
        return Err(OpenError::RecordMismatch {
            recorded: recorded.len(),
            stanzas: x25519,
        });
    }

    let sorted = Sorted::new(&split.stanzas, recorded, keys.held);
    let active: Vec<String> = keys.active.iter().map(|r| r.to_string()).collect();
    if sorted.ours == active {
        let unchanged = SealedValue {
            ciphertext: ciphertext.trim().to_owned(),
            recipients: recorded.to_vec(),
        };
        return Ok((unchanged, plaintext_bytes));
    }

    let out = rewrapped_file(&file_key, keys.active, &sorted.kept, split.payload);
    let mut record = active;
    record.extend(sorted.kept_record);
    let moved = SealedValue {
        ciphertext: BASE64.encode(&out),
        recipients: record,
    };
    Ok((moved, plaintext_bytes))
}

/// A value's stanzas sorted into this cluster's (found by unwrapping them, whatever the
/// record says) and the others, with each kept X25519 stanza's record entry.
struct Sorted<'f, 's> {
    /// The recipients of the held keys that unwrap a stanza, in stanza order.
    ours: Vec<String>,
    kept: Vec<&'s RawStanza<'f>>,
    kept_record: Vec<String>,
}

impl<'f, 's> Sorted<'f, 's> {
    fn new(stanzas: &'s [RawStanza<'f>], recorded: &[String], held: &KeyRing) -> Self {
        let mut sorted = Sorted {
            ours: Vec::new(),
            kept: Vec::new(),
            kept_record: Vec::new(),
        };
        let mut x25519_index = 0;
        for raw in stanzas {
            if !is_x25519(&raw.stanza) {
                sorted.kept.push(raw);
                continue;
            }
            match held_key_for(&raw.stanza, held) {
                Some(recipient) => sorted.ours.push(recipient),
                None => {
                    sorted.kept.push(raw);
                    sorted.kept_record.push(recorded[x25519_index].clone());
                }
            }
            x25519_index += 1;
        }
        sorted
    }
}

/// The age file holding `file_key` wrapped for each active key, then the kept stanzas byte
/// for byte, a new header MAC, and the payload unchanged.
fn rewrapped_file(
    file_key: &[u8; FILE_KEY_BYTES],
    active: &[Recipient],
    kept: &[&RawStanza<'_>],
    payload: &[u8],
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(VERSION_LINE.len() + payload.len() + 100 * (active.len() + kept.len()));
    out.extend_from_slice(VERSION_LINE);
    for recipient in active {
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
    let mac = header_mac(file_key, &out);
    out.push(b' ');
    out.extend_from_slice(BASE64_NO_PAD.encode(mac).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// Why a value offered as the re-wrapping of another cannot be one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewrapCheck {
    #[error("is not an age v1 file")]
    NotAgeFile,
    #[error("has another payload: it is not this value re-wrapped but another value")]
    PayloadChanged,
    #[error("records {recorded} recipients but holds {stanzas} X25519 stanzas")]
    RecordMismatch { recorded: usize, stanzas: usize },
    #[error(
        "has a new stanza recorded as {0}, which is not one of the cluster's published recipients"
    )]
    UnpublishedRecipient(String),
    #[error("keeps the stanza of {before} but records it as {now}")]
    RecordChanged { before: String, now: String },
    #[error("has a stanza of another type that the value did not have")]
    NewForeignStanza,
}

/// Checks, without any key, that `reply` can only be `original` re-wrapped by a holder of
/// its file key: the payload is the same bytes (so the same value, scope and names), every
/// stanza is either one of the original's, byte for byte and recorded as before, or a new
/// X25519 stanza recorded as one of `published` (the cluster's recipients).
///
/// A party without the file key (a wrong `--controller-url`, a proxy in the middle) cannot
/// make a new stanza that opens, nor a header MAC that verifies: it could only answer another
/// value, which changes the payload. What a new stanza is really for cannot be checked
/// without the matching private key: that part is the controller's word.
pub fn check_rewrapped(
    original: &str,
    original_record: &[String],
    reply: &str,
    reply_record: &[String],
    published: &[String],
) -> Result<(), RewrapCheck> {
    let before = decode_file(original).map_err(|_| RewrapCheck::NotAgeFile)?;
    let after = decode_file(reply).map_err(|_| RewrapCheck::NotAgeFile)?;
    let before = split(&before).ok_or(RewrapCheck::NotAgeFile)?;
    let after = split(&after).ok_or(RewrapCheck::NotAgeFile)?;
    if before.payload != after.payload {
        return Err(RewrapCheck::PayloadChanged);
    }
    let stanzas = after.x25519_count();
    if stanzas != reply_record.len() {
        return Err(RewrapCheck::RecordMismatch {
            recorded: reply_record.len(),
            stanzas,
        });
    }
    let known = known_stanzas(&before, original_record);
    let mut records = reply_record.iter();
    for raw in &after.stanzas {
        let kept = known.iter().find(|(bytes, _)| *bytes == raw.bytes);
        if !is_x25519(&raw.stanza) {
            if kept.is_none() {
                return Err(RewrapCheck::NewForeignStanza);
            }
            continue;
        }
        let now = records.next().expect("as many entries as X25519 stanzas");
        match kept {
            Some((_, Some(before))) if *before != now => {
                return Err(RewrapCheck::RecordChanged {
                    before: (*before).clone(),
                    now: now.clone(),
                });
            }
            Some(_) => {}
            None if published.contains(now) => {}
            None => return Err(RewrapCheck::UnpublishedRecipient(now.clone())),
        }
    }
    Ok(())
}

/// The original's stanzas with their record entries (by X25519 position; none for others).
fn known_stanzas<'f, 'r>(
    before: &SplitFile<'f>,
    original_record: &'r [String],
) -> Vec<(&'f [u8], Option<&'r String>)> {
    let mut x25519_index = 0;
    before
        .stanzas
        .iter()
        .map(|raw| {
            let entry = is_x25519(&raw.stanza).then(|| {
                x25519_index += 1;
                original_record.get(x25519_index - 1)
            });
            (raw.bytes, entry.flatten())
        })
        .collect()
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
    use crate::value::seal_value;

    /// Re-wraps with strict scope for a cluster that holds only its usable keys.
    fn rewrap_strict(
        sealed: &SealedValue,
        target: &Target,
        usable: &KeyRing,
        active: &Recipient,
    ) -> Result<(SealedValue, usize), OpenError> {
        let keys = ClusterKeys {
            usable,
            held: usable,
            active: std::slice::from_ref(active),
        };
        rewrap_value(
            &sealed.ciphertext,
            &sealed.recipients,
            Scope::Strict,
            target,
            &keys,
        )
    }

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
        let (moved, plaintext_bytes) =
            rewrap_strict(&sealed, &target, &usable, &key.recipient).unwrap();
        assert_eq!(plaintext_bytes, 1);
        assert_eq!(moved.recipients, vec![key.recipient.to_string()]);
        let only_new = KeyRing::from_identities([key.identity]);
        let opened = moved.open_strict(&target, &only_new).unwrap();
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
        let refused = rewrap_strict(&sealed, &target, &usable, &key.recipient);
        // age may add a grease stanza of its own: at least one more than allowed.
        let err = refused.unwrap_err();
        assert!(
            matches!(err, OpenError::TooManyStanzas(n) if n > MAX_STANZAS),
            "{err}"
        );

        // Exactly the limit is accepted: as many recipients as leave room for age's own
        // extra stanzas.
        let stanzas = |ciphertext: &str| {
            split(&decode_file(ciphertext).unwrap())
                .unwrap()
                .stanzas
                .len()
        };
        let extra = stanzas(&sealed.ciphertext) - recipients.len();
        let fit = &recipients[..MAX_STANZAS - extra];
        let sealed = seal_value(b"v", &binding, fit).unwrap();
        assert_eq!(stanzas(&sealed.ciphertext), MAX_STANZAS);
        let moved = rewrap_strict(&sealed, &target, &usable, &key.recipient);
        assert!(moved.is_ok(), "{:?}", moved.err());
    }

    #[test]
    fn a_rewrapped_value_passes_the_keyless_check_and_forgeries_do_not() {
        let target = Target::new("a", "b");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let [old, new, glass, attacker] = std::array::from_fn(|_| generate_key("t"));
        let seal_to = |a: &Recipient, b: &Recipient| {
            seal_value(b"v", &binding, &[a.clone(), b.clone()]).unwrap()
        };
        let sealed = seal_to(&old.recipient, &glass.recipient);
        let usable = KeyRing::from_identities([old.identity.clone()]);
        let moved = rewrap_strict(&sealed, &target, &usable, &new.recipient)
            .unwrap()
            .0;
        let published = [new.recipient.to_string()];
        let check = |ciphertext: &str, record: &[String]| {
            check_rewrapped(
                &sealed.ciphertext,
                &sealed.recipients,
                ciphertext,
                record,
                &published,
            )
        };
        assert_eq!(check(&moved.ciphertext, &moved.recipients), Ok(()));
        assert_eq!(check(&sealed.ciphertext, &sealed.recipients), Ok(()));

        // Another value, even to the same readers: its payload differs.
        let other = seal_to(&new.recipient, &glass.recipient);
        assert_eq!(
            check(&other.ciphertext, &other.recipients),
            Err(RewrapCheck::PayloadChanged)
        );
        // A new stanza recorded as an unpublished recipient.
        let mut extra = moved.recipients.clone();
        extra[0] = attacker.recipient.to_string();
        assert_eq!(
            check(&moved.ciphertext, &extra),
            Err(RewrapCheck::UnpublishedRecipient(
                attacker.recipient.to_string()
            ))
        );
        // A kept stanza recorded as someone else.
        let mut relabelled = moved.recipients.clone();
        relabelled[1] = new.recipient.to_string();
        assert!(matches!(
            check(&moved.ciphertext, &relabelled),
            Err(RewrapCheck::RecordChanged { .. })
        ));
        // An entry more than there are stanzas.
        let mut longer = moved.recipients.clone();
        longer.push(new.recipient.to_string());
        assert_eq!(
            check(&moved.ciphertext, &longer),
            Err(RewrapCheck::RecordMismatch {
                recorded: 3,
                stanzas: 2
            })
        );
        assert_eq!(check("bm90IGFnZQ==", &[]), Err(RewrapCheck::NotAgeFile));
    }
}
