//! Sealing and opening one value: a standard age v1 file (X25519 recipients) whose payload is
//! the framed value, base64-encoded for `spec.encryptedData`.

use std::cell::RefCell;
use std::io::{Read, Write};

use age::{Decryptor, Encryptor};
use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::{aead_decrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NO_PAD};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{KeyRing, Recipient, RingKey};
use crate::payload::{self, PayloadError};
use crate::scope::{Binding, BindingError, Scope, Target};

/// A sealed value and the recipients it was sealed to, in stanza order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedValue {
    /// Base64 of the age file.
    pub ciphertext: String,
    pub recipients: Vec<String>,
}

/// A value opened by [`open_value`].
pub struct Opened {
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The recipient whose identity opened it.
    pub opened_with: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_opened(f, "Opened", &self.plaintext, &self.opened_with)
    }
}

/// Debug for an opened value (age or Bitnami): the plaintext's size, never its bytes.
pub(crate) fn debug_opened(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    plaintext: &[u8],
    opened_with: &str,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field("plaintext", &format_args!("<{} bytes>", plaintext.len()))
        .field("opened_with", &opened_with)
        .finish()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "no recipients to seal to: pass -r age1…, -R FILE, or list recipients in .sealant.yaml"
    )]
    NoRecipients,
    #[error(transparent)]
    Binding(#[from] BindingError),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("is not valid base64")]
    NotBase64,
    #[error("is not an age v1 file (its header is damaged or truncated)")]
    NotAgeFile,
    #[error("records no recipients in spec.recipients: re-seal it with `seal` or `seal merge`")]
    NoRecordedRecipients,
    #[error("was sealed to {}; none of those keys is held here (wrong identity or cluster?)", .0.join(", "))]
    NoKeyHeld(Vec<String>),
    #[error(
        "does not open with the key for {0}, although spec.recipients lists it: the value or its recipients list was altered"
    )]
    KeyMismatch(String),
    #[error("failed authentication: its header was tampered with")]
    HeaderTampered,
    #[error("failed authentication: the ciphertext is damaged, truncated or tampered with")]
    PayloadTampered,
    #[error("opens to {0} bytes; a Secret value is at most 1 MiB (1048576 bytes)")]
    TooLarge(usize),
    #[error(
        "records {recorded} recipients in spec.recipients but its header holds {stanzas} X25519 stanzas: the record was altered; re-seal it with `seal`"
    )]
    RecordMismatch { recorded: usize, stanzas: usize },
    #[error(
        "holds {0} recipient stanzas; re-sealing accepts at most {max}",
        max = crate::rewrap::MAX_STANZAS
    )]
    TooManyStanzas(usize),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Binding(#[from] BindingError),
}

/// Seals `value` for `binding` to every recipient (each alone opens it).
pub fn seal_value(
    value: &[u8],
    binding: &Binding,
    recipients: &[Recipient],
) -> Result<SealedValue, SealError> {
    binding.validate()?;
    let mut unique: Vec<&Recipient> = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    let encryptor = Encryptor::with_recipients(unique.iter().map(|r| *r as &dyn age::Recipient))
        .map_err(|_| SealError::NoRecipients)?;
    let framed = payload::frame(binding, value);
    let mut file = Vec::with_capacity(framed.len() + 200 + 80 * unique.len());
    // Writing to a Vec cannot fail.
    let mut writer = encryptor.wrap_output(&mut file).expect("write to Vec");
    writer.write_all(&framed).expect("write to Vec");
    writer.finish().expect("write to Vec");
    Ok(SealedValue {
        ciphertext: BASE64.encode(&file),
        recipients: unique.iter().map(|r| r.to_string()).collect(),
    })
}

/// Opens a sealed value for the SealedSecret at `target` declared with `scope`.
///
/// `recorded` is the value's `spec.recipients` entry. Only held identities for recorded
/// recipients are tried, each first against the stanza at its recorded position, so the
/// usual cost is a single X25519 operation whatever the size of the key ring.
pub fn open_value(
    ciphertext: &str,
    recorded: &[String],
    scope: Scope,
    target: &Target,
    keys: &KeyRing,
) -> Result<Opened, OpenError> {
    let file = decode_file(ciphertext)?;
    open_file(&file, recorded, scope, target, keys).map(|(opened, _)| opened)
}

/// The age file inside a sealed value's base64.
pub(crate) fn decode_file(ciphertext: &str) -> Result<Vec<u8>, OpenError> {
    BASE64
        .decode(ciphertext.trim())
        .map_err(|_| OpenError::NotBase64)
}

/// [`open_value`] on the decoded age file; also returns the file key that opened it, which
/// re-wrapping needs (`rewrap.rs`).
pub(crate) fn open_file(
    file: &[u8],
    recorded: &[String],
    scope: Scope,
    target: &Target,
    keys: &KeyRing,
) -> Result<(Opened, Zeroizing<[u8; FILE_KEY_BYTES]>), OpenError> {
    let decryptor = Decryptor::new_buffered(file).map_err(|_| OpenError::NotAgeFile)?;
    if recorded.is_empty() {
        return Err(OpenError::NoRecordedRecipients);
    }
    let candidates: Vec<StanzaAt<'_>> = recorded
        .iter()
        .enumerate()
        .filter_map(|(index, recipient)| {
            keys.ring_key(recipient).map(|key| StanzaAt {
                key,
                index,
                file_key: RefCell::new(None),
            })
        })
        .collect();
    let Some(first) = candidates.first() else {
        return Err(OpenError::NoKeyHeld(recorded.to_vec()));
    };
    let first_recipient = recorded[first.index].clone();
    let mut reader = decryptor
        .decrypt(candidates.iter().map(|c| c as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::InvalidMac => OpenError::HeaderTampered,
            age::DecryptError::NoMatchingKeys => OpenError::KeyMismatch(first_recipient),
            _ => OpenError::PayloadTampered,
        })?;
    let mut payload = Zeroizing::new(Vec::with_capacity(file.len()));
    reader
        .read_to_end(&mut payload)
        .map_err(|_| OpenError::PayloadTampered)?;
    let (binding, value) = payload::unframe(&payload)?;
    binding.check(scope, target)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(OpenError::TooLarge(value.len()));
    }
    // age stops at the first identity that unwraps a stanza and checks the header MAC with
    // that file key, so the first candidate holding one is the one that opened the file.
    let (opener, file_key) = candidates
        .iter()
        .find_map(|c| c.file_key.take().map(|k| (c, k)))
        .expect("a file that decrypted was unwrapped by one of the candidates");
    Ok((
        Opened {
            plaintext: Zeroizing::new(value.to_vec()),
            opened_with: recorded[opener.index].clone(),
        },
        file_key,
    ))
}

/// Parses a sealed value's age header without opening it (for `seal check`); returns how
/// many X25519 stanzas it holds, which its `spec.recipients` entry must list.
pub fn inspect_value(ciphertext: &str) -> Result<usize, OpenError> {
    let file = decode_file(ciphertext)?;
    Decryptor::new_buffered(&file[..]).map_err(|_| OpenError::NotAgeFile)?;
    let split = crate::header::split(&file).ok_or(OpenError::NotAgeFile)?;
    Ok(split.x25519_count())
}

/// An identity that tries the stanza at its recipient's recorded position first, then the
/// file's other stanzas (in case the record was reordered by hand).
struct StanzaAt<'a> {
    key: &'a RingKey,
    index: usize,
    /// A copy of the file key this identity unwrapped, if it did.
    file_key: RefCell<Option<Zeroizing<[u8; FILE_KEY_BYTES]>>>,
}

impl age::Identity for StanzaAt<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        unwrap_x25519(self.key, stanza)
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let positioned = stanzas.get(self.index).into_iter();
        let others = stanzas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.index)
            .map(|(_, s)| s);
        let result = positioned
            .chain(others)
            .find_map(|stanza| self.unwrap_stanza(stanza));
        if let Some(Ok(file_key)) = &result {
            *self.file_key.borrow_mut() = Some(Zeroizing::new(*file_key.expose_secret()));
        }
        result
    }
}

// The X25519 recipient stanza, named as the `age` crate names it (age/src/native/x25519.rs).
// Spec: https://c2sp.org/age#x25519-recipient-stanza
pub(crate) const X25519_RECIPIENT_TAG: &str = "X25519";
const X25519_RECIPIENT_KEY_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
/// The ephemeral share: a 32-byte X25519 public key, …
const EPK_LEN_BYTES: usize = 32;
/// … written as canonical unpadded base64: ⌈32 × 4 / 3⌉ = 43 characters.
const ENCODED_EPK_LENGTH: usize = 43;
/// ChaCha20-Poly1305's authentication tag.
const TAG_BYTES: usize = 16;
/// The stanza body: the 16-byte file key sealed with ChaCha20-Poly1305.
const ENCRYPTED_FILE_KEY_BYTES: usize = FILE_KEY_BYTES + TAG_BYTES;

/// The largest value a Secret can hold; a larger one was not sealed by `seal` and is refused
/// when opened, so it never reaches memory twice or the API server.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The X25519 recipient stanza unwrap of the age spec (c2sp.org/age), with the identity's
/// public key precomputed: exactly one scalar multiplication per stanza tried.
pub(crate) fn unwrap_x25519(
    key: &RingKey,
    stanza: &Stanza,
) -> Option<Result<FileKey, age::DecryptError>> {
    if stanza.tag != X25519_RECIPIENT_TAG {
        return None;
    }
    let invalid = || Some(Err(age::DecryptError::InvalidHeader));
    // The share must be canonical unpadded base64 of a public key; the body an encrypted file key.
    let [share] = &stanza.args[..] else {
        return invalid();
    };
    let Ok(Ok(epk)) = BASE64_NO_PAD
        .decode(share)
        .map(<[u8; EPK_LEN_BYTES]>::try_from)
    else {
        return invalid();
    };
    if share.len() != ENCODED_EPK_LENGTH || stanza.body.len() != ENCRYPTED_FILE_KEY_BYTES {
        return invalid();
    }
    let shared = key
        .secret
        .diffie_hellman(&x25519_dalek::PublicKey::from(epk));
    if !shared.was_contributory() {
        return invalid();
    }
    let mut salt = [0u8; 2 * EPK_LEN_BYTES];
    salt[..EPK_LEN_BYTES].copy_from_slice(&epk);
    salt[EPK_LEN_BYTES..].copy_from_slice(&key.public);
    let wrap_key = Zeroizing::new(hkdf(&salt, X25519_RECIPIENT_KEY_LABEL, shared.as_bytes()));
    // Not ours (or not this stanza): the caller tries the next one.
    let mut file_key = aead_decrypt(&wrap_key, FILE_KEY_BYTES, &stanza.body).ok()?;
    Some(Ok(FileKey::init_with_mut(|out| {
        out.copy_from_slice(&file_key);
        file_key.zeroize();
    })))
}

#[cfg(test)]
impl SealedValue {
    /// [`open_value`] with strict scope: what most tests open with.
    pub(crate) fn open_strict(&self, target: &Target, ring: &KeyRing) -> Result<Opened, OpenError> {
        open_value(
            &self.ciphertext,
            &self.recipients,
            Scope::Strict,
            target,
            ring,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;

    fn ring_and_recipients(n: usize) -> (KeyRing, Vec<Recipient>) {
        let keys: Vec<_> = (0..n).map(|_| generate_key("t")).collect();
        let recipients = keys.iter().map(|k| k.recipient.clone()).collect();
        (
            KeyRing::from_identities(keys.into_iter().map(|k| k.identity)),
            recipients,
        )
    }

    #[test]
    fn each_recipient_alone_opens_the_value() {
        let keys: Vec<_> = (0..3).map(|_| generate_key("t")).collect();
        let recipients: Vec<_> = keys.iter().map(|k| k.recipient.clone()).collect();
        let target = Target::new("prod", "db");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let sealed = seal_value(b"hunter2", &binding, &recipients).unwrap();
        assert_eq!(sealed.recipients.len(), 3);
        for key in keys {
            let expect = key.recipient.to_string();
            let ring = KeyRing::from_identities([key.identity]);
            let opened = sealed.open_strict(&target, &ring).unwrap();
            assert_eq!(&opened.plaintext[..], b"hunter2");
            assert_eq!(opened.opened_with, expect);
        }
    }

    #[test]
    fn wrong_key_and_missing_record_fail_clearly() {
        let (ring, recipients) = ring_and_recipients(1);
        let (other_ring, _) = ring_and_recipients(1);
        let target = Target::new("prod", "db");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let sealed = seal_value(b"v", &binding, &recipients).unwrap();
        let err = sealed.open_strict(&target, &other_ring).unwrap_err();
        assert!(matches!(err, OpenError::NoKeyHeld(_)));
        let err = open_value(&sealed.ciphertext, &[], Scope::Strict, &target, &ring).unwrap_err();
        assert_eq!(err, OpenError::NoRecordedRecipients);
        // A recipients list that names the held key for a file sealed to another.
        let (ring2, recipients2) = ring_and_recipients(1);
        let err = open_value(
            &sealed.ciphertext,
            &[recipients2[0].to_string()],
            Scope::Strict,
            &target,
            &ring2,
        )
        .unwrap_err();
        assert!(matches!(err, OpenError::KeyMismatch(_)));
    }

    #[test]
    fn reordered_records_still_open() {
        let (ring, recipients) = ring_and_recipients(3);
        let target = Target::new("a", "b");
        let binding = Binding::new(Scope::ClusterWide, &target).unwrap();
        let mut sealed = seal_value(b"v", &binding, &recipients).unwrap();
        sealed.recipients.reverse();
        let mut one = KeyRing::new();
        one.insert(ring.get(&recipients[0].to_string()).unwrap().clone());
        let opened = open_value(
            &sealed.ciphertext,
            &sealed.recipients,
            Scope::ClusterWide,
            &target,
            &one,
        )
        .unwrap();
        assert_eq!(&opened.plaintext[..], b"v");
    }

    #[test]
    fn our_stanza_unwrap_agrees_with_age() {
        use age::secrecy::ExposeSecret;
        let key = generate_key("t");
        let foreign = generate_key("t");
        let ring = KeyRing::from_identities([key.identity.clone(), foreign.identity.clone()]);
        let file_key = FileKey::new(Box::new([7u8; FILE_KEY_BYTES]));
        let (stanzas, _) = age::Recipient::wrap_file_key(&key.recipient, &file_key).unwrap();
        let ours = |k: &crate::keys::Recipient, s: &Stanza| {
            unwrap_x25519(ring.ring_key(&k.to_string()).unwrap(), s)
        };
        let opened = ours(&key.recipient, &stanzas[0]).unwrap().unwrap();
        assert_eq!(opened.expose_secret(), file_key.expose_secret());
        let theirs = age::Identity::unwrap_stanza(&key.identity, &stanzas[0])
            .unwrap()
            .unwrap();
        assert_eq!(theirs.expose_secret(), file_key.expose_secret());
        // Another key's stanza is simply not ours, for both.
        assert!(ours(&foreign.recipient, &stanzas[0]).is_none());
        assert!(age::Identity::unwrap_stanza(&foreign.identity, &stanzas[0]).is_none());
        // Both refuse a stanza as a malformed header, not as someone else's.
        let malformed_for_both = |s: &Stanza| {
            assert!(matches!(
                ours(&key.recipient, s),
                Some(Err(age::DecryptError::InvalidHeader))
            ));
            assert!(matches!(
                age::Identity::unwrap_stanza(&key.identity, s),
                Some(Err(age::DecryptError::InvalidHeader))
            ));
        };
        // A non-canonical share is a malformed header, for both.
        let mut args = stanzas[0].args.clone();
        args[0].push('A');
        malformed_for_both(&Stanza {
            tag: stanzas[0].tag.clone(),
            args,
            body: stanzas[0].body.clone(),
        });
        // So is a body that is not a wrapped 16-byte key (a byte short), for both.
        let mut body = stanzas[0].body.clone();
        body.pop();
        malformed_for_both(&Stanza {
            tag: stanzas[0].tag.clone(),
            args: stanzas[0].args.clone(),
            body,
        });
    }

    #[test]
    fn debug_never_shows_plaintext() {
        let opened = Opened {
            plaintext: Zeroizing::new(b"hunter2".to_vec()),
            opened_with: "age1x".into(),
        };
        assert_eq!(
            format!("{opened:?}"),
            r#"Opened { plaintext: <7 bytes>, opened_with: "age1x" }"#
        );
    }

    #[test]
    fn a_value_over_a_mebibyte_is_not_opened() {
        let key = generate_key("t");
        let target = Target::new("prod", "db");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let ring = KeyRing::from_identities([key.identity.clone()]);
        let recipients = std::slice::from_ref(&key.recipient);
        for (len, opens) in [(MAX_VALUE_BYTES, true), (MAX_VALUE_BYTES + 1, false)] {
            let sealed = seal_value(&vec![b'x'; len], &binding, recipients).unwrap();
            let opened = sealed.open_strict(&target, &ring);
            match opened {
                Ok(_) => assert!(opens, "{len} bytes opened"),
                Err(e) => assert_eq!((opens, e), (false, OpenError::TooLarge(len))),
            }
        }
    }
}
