//! Keys: age X25519 recipients (public) and identities (private), identity files in
//! `age-keygen` format, and the [`KeyRing`] an opener holds.

use std::collections::HashMap;
use std::fmt;

use age::secrecy::ExposeSecret;
use k8s_openapi::jiff::Timestamp;
use zeroize::Zeroizing;

pub use age::x25519::{Identity, Recipient};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("'{0}' is not an age X25519 recipient (expected age1… as printed by `seal keygen`)")]
    BadRecipient(String),
    #[error(
        "line {line}: not an age X25519 identity (expected AGE-SECRET-KEY-1… as written by `seal keygen` or age-keygen)"
    )]
    BadIdentity { line: usize },
    #[error("holds no AGE-SECRET-KEY-1… identity")]
    NoIdentity,
    #[error("holds no age1… recipient")]
    NoRecipient,
}

/// Parses one `age1…` recipient.
pub fn parse_recipient(text: &str) -> Result<Recipient, KeyError> {
    let text = text.trim();
    text.parse::<Recipient>().map_err(|_| {
        KeyError::BadRecipient(
            text.chars()
                .take(80)
                .flat_map(char::escape_default)
                .collect(),
        )
    })
}

/// Parses a recipients file: one `age1…` per line; blank lines and `#` comments ignored.
pub fn parse_recipients_file(text: &str) -> Result<Vec<Recipient>, KeyError> {
    let recipients = meaningful_lines(text)
        .map(|(_, line)| parse_recipient(line))
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() {
        return Err(KeyError::NoRecipient);
    }
    Ok(recipients)
}

/// Parses an identity file as `age-keygen` writes it. The error names the line, never its content.
pub fn parse_identity_file(text: &str) -> Result<Vec<Identity>, KeyError> {
    let identities = meaningful_lines(text)
        .map(|(line, key)| {
            key.parse::<Identity>()
                .map_err(|_| KeyError::BadIdentity { line })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if identities.is_empty() {
        return Err(KeyError::NoIdentity);
    }
    Ok(identities)
}

fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// A new identity and its file text, byte-compatible with `age-keygen` output.
pub struct GeneratedKey {
    pub identity: Identity,
    pub recipient: Recipient,
    /// `# created: …`, `# public key: …`, then the secret key line.
    pub file_text: Zeroizing<String>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("recipient", &self.recipient.to_string())
            .finish_non_exhaustive()
    }
}

pub fn generate_key(created: &str) -> GeneratedKey {
    let identity = Identity::generate();
    let recipient = identity.to_public();
    let file_text = Zeroizing::new(identity_file_text(&identity, created));
    GeneratedKey {
        identity,
        recipient,
        file_text,
    }
}

/// `now` as a key's creation time is written (the identity file's `# created:` line, the key
/// Secret's annotation): RFC 3339 in UTC to the second, as age-keygen writes it.
pub fn created_stamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The identity file text for an existing identity (for exporting a key as a backup).
pub fn identity_file_text(identity: &Identity, created: &str) -> String {
    format!(
        "# created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    )
}

/// The identities an opener holds, indexed by their recipient so that opening a value costs
/// one lookup and one X25519 operation, however many keys are held.
#[derive(Default, Clone)]
pub struct KeyRing {
    by_recipient: HashMap<String, RingKey>,
}

/// An identity with what opening needs precomputed: its raw X25519 secret and its public key
/// (age's own unwrap derives the public key again on every call, a second scalar multiplication).
#[derive(Clone)]
pub(crate) struct RingKey {
    pub identity: Identity,
    pub secret: x25519_dalek::StaticSecret,
    pub public: [u8; 32],
}

impl RingKey {
    fn new(identity: Identity) -> RingKey {
        let encoded = identity.to_string();
        let bytes: Zeroizing<Vec<u8>> = age_core::primitives::bech32_decode(
            encoded.expose_secret(),
            |_| (),
            |_| Ok(()),
            |_, data| Ok(Zeroizing::new(data.collect())),
        )
        .expect("an age identity is valid bech32");
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&bytes);
        let secret = x25519_dalek::StaticSecret::from(*raw);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        RingKey {
            identity,
            secret,
            public,
        }
    }
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_identities(identities: impl IntoIterator<Item = Identity>) -> Self {
        let mut ring = KeyRing::new();
        for identity in identities {
            ring.insert(identity);
        }
        ring
    }

    /// Adds an identity; returns its recipient.
    pub fn insert(&mut self, identity: Identity) -> String {
        let recipient = identity.to_public().to_string();
        self.by_recipient
            .insert(recipient.clone(), RingKey::new(identity));
        recipient
    }

    pub fn remove(&mut self, recipient: &str) -> bool {
        self.by_recipient.remove(recipient).is_some()
    }

    pub fn get(&self, recipient: &str) -> Option<&Identity> {
        self.by_recipient.get(recipient).map(|k| &k.identity)
    }

    pub(crate) fn ring_key(&self, recipient: &str) -> Option<&RingKey> {
        self.by_recipient.get(recipient)
    }

    pub fn contains(&self, recipient: &str) -> bool {
        self.by_recipient.contains_key(recipient)
    }

    pub fn len(&self) -> usize {
        self.by_recipient.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_recipient.is_empty()
    }

    /// The recipients of the held identities, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self.by_recipient.keys().cloned().collect();
        all.sort();
        all
    }
}

/// Shows recipients only: a key ring must never print private keys.
impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("recipients", &self.recipients())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_are_rfc3339_to_the_second_in_utc() {
        let t: Timestamp = "2026-01-31T01:02:03.456+01:00".parse().unwrap();
        assert_eq!(created_stamp(t), "2026-01-31T00:02:03Z");
    }

    #[test]
    fn generated_files_parse_back_and_name_their_recipient() {
        let key = generate_key("2026-01-01T00:00:00Z");
        let lines: Vec<&str> = key.file_text.lines().collect();
        assert_eq!(lines[0], "# created: 2026-01-01T00:00:00Z");
        assert_eq!(lines[1], format!("# public key: {}", key.recipient));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
        let parsed = parse_identity_file(&key.file_text).unwrap();
        assert_eq!(parsed[0].to_public(), key.recipient);
    }

    #[test]
    fn identity_errors_name_the_line_but_never_echo_it() {
        let text = "# comment\n\nAGE-SECRET-KEY-1NOTAKEY\n";
        let err = parse_identity_file(text).err().unwrap();
        assert_eq!(err, KeyError::BadIdentity { line: 3 });
        assert!(!err.to_string().contains("NOTAKEY"));
        assert_eq!(
            parse_identity_file("# only comments\n").err(),
            Some(KeyError::NoIdentity)
        );
    }

    #[test]
    fn recipients_files_allow_comments() {
        let a = generate_key("t").recipient.to_string();
        let b = generate_key("t").recipient.to_string();
        let text = format!("# prod\n{a}\n\n  {b}  \n");
        let parsed = parse_recipients_file(&text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(matches!(
            parse_recipient("age1nope"),
            Err(KeyError::BadRecipient(_))
        ));
        assert_eq!(
            parse_recipients_file("# none\n"),
            Err(KeyError::NoRecipient)
        );
    }

    #[test]
    fn key_ring_debug_shows_no_secret() {
        let key = generate_key("t");
        let ring = KeyRing::from_identities([key.identity]);
        let shown = format!("{ring:?}");
        assert!(shown.contains(&key.recipient.to_string()));
        assert!(!shown.contains("AGE-SECRET-KEY"));
        assert!(!format!("{:?}", generate_key("t")).contains("SECRET"));
    }

    #[test]
    fn a_key_ring_counts_and_removes_by_recipient() {
        let (a, b) = (generate_key("a"), generate_key("b"));
        let (ra, rb) = (a.recipient.to_string(), b.recipient.to_string());
        let mut ring = KeyRing::from_identities([a.identity]);
        assert_eq!((ring.len(), ring.is_empty()), (1, false));
        ring.insert(b.identity);
        assert_eq!(ring.len(), 2);
        assert!(ring.remove(&ra));
        assert!(!ring.remove(&ra), "removed twice");
        assert_eq!((ring.contains(&ra), ring.contains(&rb)), (false, true));
        assert!(ring.remove(&rb));
        assert_eq!((ring.len(), ring.is_empty()), (0, true));
    }

    #[test]
    fn a_generated_keys_debug_shows_its_recipient_only() {
        let key = generate_key("t");
        assert_eq!(
            format!("{key:?}"),
            format!("GeneratedKey {{ recipient: \"{}\", .. }}", key.recipient)
        );
    }
}
