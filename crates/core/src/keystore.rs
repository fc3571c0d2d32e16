//! How a cluster keeps its keys: one Secret per age identity in the controller's namespace,
//! labelled so the controller finds them, and a ConfigMap publishing the sealing recipients.
//! Pure conversions; the controller does the I/O.
//!
//! A key Secret:
//! ```yaml
//! metadata:
//!   generateName: sealant-key-
//!   labels:
//!     sealant.dev/key: "true"
//!     sealant.dev/key-state: active      # active | retired | compromised (missing: active)
//!   annotations:
//!     sealant.dev/created-at: "2026-11-22T02:06:56Z"   # else metadata.creationTimestamp
//! type: Opaque
//! data:
//!   key.txt: <an age-keygen identity file>
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::keys::{Identity, KeyError, KeyRing, created_stamp, generate_key, parse_identity_file};

pub const KEY_LABEL: &str = "sealant.dev/key";
pub const STATE_LABEL: &str = "sealant.dev/key-state";
pub const CREATED_ANNOTATION: &str = "sealant.dev/created-at";
pub const KEY_DATA: &str = "key.txt";
pub const KEY_NAME_PREFIX: &str = "sealant-key-";
/// The ConfigMap any authenticated user may read to seal for this cluster.
pub const RECIPIENTS_CONFIGMAP: &str = "sealant-recipients";
pub const RECIPIENTS_DATA: &str = "recipients.txt";
pub const DEFAULT_NAMESPACE: &str = "sealant-system";

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Opens; the newest active key seals.
    Active,
    /// Opens only.
    Retired,
    /// Opens nothing: values that need it are reported.
    Compromised,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Compromised => "compromised",
        }
    }

    fn parse(s: Option<&str>) -> Result<KeyState, KeyStoreError> {
        match s {
            None | Some("") | Some("active") => Ok(KeyState::Active),
            Some("retired") => Ok(KeyState::Retired),
            Some("compromised") => Ok(KeyState::Compromised),
            Some(other) => Err(KeyStoreError::BadState(other.chars().take(40).collect())),
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyStoreError {
    #[error("has no data.{KEY_DATA} holding an age identity")]
    NoKeyData,
    #[error("data.{KEY_DATA} is not an age identity file: {0}")]
    BadKey(KeyError),
    #[error("label {STATE_LABEL}='{0}' is not active, retired or compromised")]
    BadState(String),
    #[error("has no creation time")]
    NoCreationTime,
}

/// One key as read from its Secret.
#[derive(Clone)]
pub struct StoredKey {
    /// The Secret's name.
    pub name: String,
    pub recipient: String,
    pub identity: Identity,
    pub state: KeyState,
    pub created: Timestamp,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("name", &self.name)
            .field("recipient", &self.recipient)
            .field("state", &self.state)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Reads a labelled key Secret (ours, or an adopted age-keygen identity).
pub fn parse_key_secret(secret: &Secret) -> Result<StoredKey, KeyStoreError> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_DATA))
        .ok_or(KeyStoreError::NoKeyData)?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes.0).into_owned());
    let identity = parse_identity_file(&text)
        .map_err(KeyStoreError::BadKey)?
        .remove(0);
    let labels = secret.metadata.labels.as_ref();
    let state = KeyState::parse(labels.and_then(|l| l.get(STATE_LABEL)).map(String::as_str))?;
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION))
        .and_then(|t| t.parse::<Timestamp>().ok());
    let created = annotated
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .ok_or(KeyStoreError::NoCreationTime)?;
    Ok(StoredKey {
        name: secret.metadata.name.clone().unwrap_or_default(),
        recipient: identity.to_public().to_string(),
        identity,
        state,
        created,
    })
}

/// A new active key as a Secret to create (the API server names it from `generateName`).
pub fn new_key_secret(namespace: &str, now: Timestamp) -> (Secret, String) {
    let created = created_stamp(now);
    let key = generate_key(&created);
    let secret = Secret {
        metadata: ObjectMeta {
            generate_name: Some(KEY_NAME_PREFIX.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                (KEY_LABEL.into(), "true".into()),
                (STATE_LABEL.into(), KeyState::Active.as_str().into()),
            ])),
            annotations: Some(BTreeMap::from([(CREATED_ANNOTATION.into(), created)])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY_DATA.into(),
            ByteString(key.file_text.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    (secret, key.recipient.to_string())
}

/// The name of the key that renewal (or `rotate`) makes next after `set`: derived from the
/// names of every key in it, so two replicas (or two `rotate` runs) that read the same keys
/// and race to renew both try to create the same Secret, and the API server lets only the
/// first create succeed (409 AlreadyExists for the other). Any key made changes the set, so
/// the next renewal gets a new name.
pub fn successor_name(set: &KeySet) -> String {
    use sha2::{Digest, Sha256};
    let mut names: Vec<&str> = set.keys.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    let mut hash = Sha256::new();
    for name in names {
        hash.update(name.as_bytes());
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_NAME_PREFIX}{hex}")
}

/// The keys a controller holds, with what each may do.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<StoredKey>,
}

impl KeySet {
    pub fn new(mut keys: Vec<StoredKey>) -> KeySet {
        // Newest first; ties by name, so every replica agrees.
        keys.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
        KeySet { keys }
    }

    pub fn keys(&self) -> &[StoredKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identities that may open: active and retired keys.
    pub fn ring(&self) -> KeyRing {
        KeyRing::from_identities(
            self.keys
                .iter()
                .filter(|k| k.state != KeyState::Compromised)
                .map(|k| k.identity.clone()),
        )
    }

    /// Recipients of compromised keys.
    pub fn compromised(&self) -> BTreeSet<String> {
        self.recipients_in(KeyState::Compromised)
    }

    /// The newest active key: the one that seals.
    pub fn sealing_key(&self) -> Option<&StoredKey> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }

    /// Active recipients, newest first: what `seal` seals to by default.
    pub fn active_recipients(&self) -> Vec<String> {
        self.recipients_in(KeyState::Active)
    }

    /// The recipients of the keys in `state`, in the set's order (newest first).
    fn recipients_in<C: FromIterator<String>>(&self, state: KeyState) -> C {
        self.keys
            .iter()
            .filter(|k| k.state == state)
            .map(|k| k.recipient.clone())
            .collect()
    }

    pub fn count(&self, state: KeyState) -> usize {
        self.keys.iter().filter(|k| k.state == state).count()
    }

    /// When the next key is due: `period` after the newest active key (now if there is none,
    /// or if it is older than `cutoff`). `None` when renewal is off (period zero) and a key exists.
    pub fn renewal_due(
        &self,
        now: Timestamp,
        period: std::time::Duration,
        cutoff: Option<Timestamp>,
    ) -> Option<Timestamp> {
        let Some(newest) = self.sealing_key() else {
            return Some(now);
        };
        if cutoff.is_some_and(|c| newest.created < c) {
            return Some(now);
        }
        if period.is_zero() {
            return None;
        }
        let span = k8s_openapi::jiff::SignedDuration::try_from(period).ok()?;
        Some(newest.created.checked_add(span).unwrap_or(Timestamp::MAX))
    }
}

/// The recipients as the cluster publishes them (the ConfigMap, the controller's
/// `/v1/recipients`): a comment line, then one recipient per line, as a recipients file.
pub fn recipients_text(recipients: &[String]) -> String {
    let mut text =
        String::from("# age recipients of this cluster's active Sealant keys; seal to these\n");
    for r in recipients {
        text.push_str(r);
        text.push('\n');
    }
    text
}

/// The ConfigMap publishing the active recipients, one per line.
pub fn recipients_configmap(namespace: &str, recipients: &[String]) -> ConfigMap {
    let text = recipients_text(recipients);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(RECIPIENTS_CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(RECIPIENTS_DATA.into(), text)])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(secret: &mut Secret, name: &str) -> StoredKey {
        secret.metadata.name = Some(name.into());
        parse_key_secret(secret).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn successors_are_named_by_the_keys_they_follow() {
        let empty = successor_name(&KeySet::default());
        assert!(empty.starts_with(KEY_NAME_PREFIX), "{empty}");
        assert_eq!(empty.len(), KEY_NAME_PREFIX.len() + 16);
        let (mut a, _) = new_key_secret("ns", at("2026-01-01T00:00:00Z"));
        let (mut b, _) = new_key_secret("ns", at("2026-02-01T00:00:00Z"));
        let ka = stored(&mut a, "sealant-key-a");
        let kb = stored(&mut b, "sealant-key-b");
        let one = KeySet::new(vec![ka.clone()]);
        // Two replicas reading the same keys name the same successor: only one create wins.
        assert_eq!(
            successor_name(&one),
            successor_name(&KeySet::new(vec![ka.clone()]))
        );
        assert_ne!(successor_name(&one), empty);
        // Order does not matter; any key added changes the name.
        let two = successor_name(&KeySet::new(vec![ka.clone(), kb.clone()]));
        assert_eq!(two, successor_name(&KeySet::new(vec![kb, ka])));
        assert_ne!(two, successor_name(&one));
    }

    #[test]
    fn new_key_secrets_parse_back() {
        let (mut secret, recipient) = new_key_secret("sealant-system", at("2026-01-01T00:00:00Z"));
        let key = stored(&mut secret, "sealant-key-a");
        assert_eq!(key.recipient, recipient);
        assert_eq!(key.state, KeyState::Active);
        assert_eq!(key.created, at("2026-01-01T00:00:00Z"));
        assert!(!format!("{key:?}").contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn adopted_age_keygen_secrets_use_their_creation_timestamp() {
        let file = crate::keys::generate_key("x").file_text;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("byo".into()),
                labels: Some(BTreeMap::from([(KEY_LABEL.into(), "true".into())])),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
                    "2025-05-05T00:00:00Z",
                ))),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                KEY_DATA.into(),
                ByteString(file.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        let key = parse_key_secret(&secret).unwrap();
        assert_eq!(key.state, KeyState::Active);
        assert_eq!(key.created, at("2025-05-05T00:00:00Z"));
        let mut bad = secret.clone();
        bad.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(STATE_LABEL.into(), "lost".into());
        assert_eq!(
            parse_key_secret(&bad).err(),
            Some(KeyStoreError::BadState("lost".into()))
        );
        let mut empty = secret;
        empty.data = None;
        assert_eq!(
            parse_key_secret(&empty).err(),
            Some(KeyStoreError::NoKeyData)
        );
    }

    #[test]
    fn states_decide_what_opens_and_what_seals() {
        let mk = |name: &str, when: &str, state: KeyState| {
            let (mut s, _) = new_key_secret("ns", at(when));
            s.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert(STATE_LABEL.into(), state.as_str().into());
            stored(&mut s, name)
        };
        let old = mk("a", "2026-01-01T00:00:00Z", KeyState::Retired);
        let new = mk("b", "2026-02-01T00:00:00Z", KeyState::Active);
        let bad = mk("c", "2026-03-01T00:00:00Z", KeyState::Compromised);
        let set = KeySet::new(vec![old.clone(), bad.clone(), new.clone()]);
        assert_eq!(set.sealing_key().unwrap().name, "b");
        assert_eq!(
            set.active_recipients(),
            std::slice::from_ref(&new.recipient)
        );
        let ring = set.ring();
        assert!(ring.contains(&old.recipient) && ring.contains(&new.recipient));
        assert!(!ring.contains(&bad.recipient));
        assert_eq!(set.compromised(), BTreeSet::from([bad.recipient.clone()]));
        // What the controller's key gauges and log lines report.
        let another = mk("d", "2026-04-01T00:00:00Z", KeyState::Retired);
        let set = KeySet::new(vec![old, another, bad, new]);
        assert_eq!(
            [
                set.count(KeyState::Active),
                set.count(KeyState::Retired),
                set.count(KeyState::Compromised)
            ],
            [1, 2, 1]
        );
    }

    #[test]
    fn renewal_schedule() {
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(
            KeySet::default().renewal_due(at("2026-01-10T00:00:00Z"), day, None),
            Some(at("2026-01-10T00:00:00Z"))
        );
        let (mut s, _) = new_key_secret("ns", at("2026-01-01T00:00:00Z"));
        let set = KeySet::new(vec![stored(&mut s, "k")]);
        assert_eq!(
            set.renewal_due(at("2026-01-01T12:00:00Z"), day * 30, None),
            Some(at("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            set.renewal_due(at("2026-01-02T00:00:00Z"), std::time::Duration::ZERO, None),
            None
        );
        let cutoff = Some(at("2026-01-05T00:00:00Z"));
        assert_eq!(
            set.renewal_due(
                at("2026-01-06T00:00:00Z"),
                std::time::Duration::ZERO,
                cutoff
            ),
            Some(at("2026-01-06T00:00:00Z"))
        );
        // A key made exactly at the cutoff is not older than it: no renewal forced.
        assert_eq!(
            set.renewal_due(
                at("2026-01-06T00:00:00Z"),
                day * 30,
                Some(at("2026-01-01T00:00:00Z"))
            ),
            Some(at("2026-01-31T00:00:00Z"))
        );
    }

    #[test]
    fn recipients_are_published_one_per_line() {
        let cm = recipients_configmap("sealant-system", &["age1a".into(), "age1b".into()]);
        let text = &cm.data.as_ref().unwrap()[RECIPIENTS_DATA];
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["age1a", "age1b"]);
        // Where `seal fetch-keys` reads it.
        assert_eq!(
            (
                cm.metadata.name.as_deref(),
                cm.metadata.namespace.as_deref()
            ),
            (Some("sealant-recipients"), Some("sealant-system"))
        );
    }

    #[test]
    fn new_key_secrets_are_opaque_labelled_and_named_by_the_server() {
        let (secret, _) = new_key_secret("sealant-system", at("2026-01-01T00:00:00Z"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("sealant-system"));
        assert_eq!(secret.metadata.name, None);
        assert_eq!(
            secret.metadata.generate_name.as_deref(),
            Some(KEY_NAME_PREFIX)
        );
    }

    #[test]
    fn states_and_stored_keys_display_without_the_identity() {
        assert_eq!(KeyState::Active.to_string(), "active");
        assert_eq!(KeyState::Retired.to_string(), "retired");
        assert_eq!(KeyState::Compromised.to_string(), "compromised");
        let (mut secret, recipient) = new_key_secret("ns", at("2026-01-01T00:00:00Z"));
        let key = stored(&mut secret, "sealant-key-a");
        assert_eq!(
            format!("{key:?}"),
            format!(
                "StoredKey {{ name: \"sealant-key-a\", recipient: \"{recipient}\", state: Active, created: 2026-01-01T00:00:00Z, .. }}"
            )
        );
    }

    #[test]
    fn a_key_set_holds_its_keys_newest_first() {
        assert!(KeySet::default().is_empty());
        assert!(KeySet::default().keys().is_empty());
        let (mut a, _) = new_key_secret("ns", at("2026-01-01T00:00:00Z"));
        let (mut b, _) = new_key_secret("ns", at("2026-02-01T00:00:00Z"));
        let set = KeySet::new(vec![stored(&mut a, "old"), stored(&mut b, "new")]);
        assert!(!set.is_empty());
        let names: Vec<&str> = set.keys().iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["new", "old"]);
    }
}
