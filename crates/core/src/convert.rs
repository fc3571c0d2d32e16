//! Secret ⇄ SealedSecret: sealing a Secret manifest, opening a SealedSecret into a Secret,
//! and changing items of a SealedSecret in place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::crd::{SealedSecret, SealedSecretSpec, SecretTemplate, TemplateMetadata};
use crate::keys::{KeyRing, Recipient};
use crate::manifest::{SecretManifest, non_empty};
use crate::rewrap::{ClusterKeys, rewrap_value};
use crate::scope::{Binding, BindingError, Scope, Target, printable};
use crate::value::{OpenError, SealError, open_value, seal_value};

/// Kubernetes refuses Secrets larger than this.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// Annotations that describe a previous apply, not the Secret: never carried into the template.
const DROPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    // Read as the scope (`seal`), not carried to the Secret.
    crate::bitnami::NAMESPACE_WIDE_ANNOTATION,
    crate::bitnami::CLUSTER_WIDE_ANNOTATION,
];

/// Plaintext items, zeroized when dropped.
pub type Items = BTreeMap<String, Zeroizing<Vec<u8>>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("is a {0}, not a Secret")]
    NotASecret(String),
    #[error("has apiVersion '{0}'; a Secret is apiVersion v1")]
    WrongApiVersion(String),
    #[error("has no metadata.name")]
    NoName,
    #[error("is in namespace '{found}' but -n says '{given}': drop one of them")]
    NamespaceConflict { found: String, given: String },
    #[error("data.{0} is not valid base64 (put plain text under stringData instead)")]
    BadBase64(String),
    #[error(
        "item key '{0}' is not valid: use letters, digits, '-', '_' and '.', not '.' alone or a leading '..'"
    )]
    BadItemKey(String),
    #[error("has no data or stringData: nothing to seal (pass --allow-empty to seal it anyway)")]
    Empty,
    #[error("holds {0} bytes; Kubernetes limits a Secret to 1 MiB (1048576 bytes)")]
    TooLarge(usize),
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("has no item '{0}' to remove")]
    NoSuchItem(String),
    #[error("item '{item}' {error}")]
    Open { item: String, error: OpenError },
    #[error(
        "item '{item}' needs key {recipient}, which is marked compromised: re-seal it to the current key"
    )]
    Compromised { item: String, recipient: String },
}

pub struct SealOptions<'a> {
    pub scope: Scope,
    pub recipients: &'a [Recipient],
    /// `-n`: the namespace for Secrets that name none.
    pub namespace: Option<&'a str>,
    pub allow_empty: bool,
}

/// Where a Secret manifest will live, after `-n` is applied.
pub fn target_of(secret: &SecretManifest, namespace: Option<&str>) -> Result<Target, ConvertError> {
    let name = non_empty(&secret.metadata.name)
        .ok_or(ConvertError::NoName)?
        .to_owned();
    let namespace = match (non_empty(&secret.metadata.namespace), namespace) {
        (Some(found), Some(given)) if found != given => {
            return Err(ConvertError::NamespaceConflict {
                found: found.to_owned(),
                given: given.to_owned(),
            });
        }
        (found, given) => found.or(given).map(str::to_owned),
    };
    Ok(Target { namespace, name })
}

/// The plaintext items of a Secret manifest: `data` decoded, then `stringData` over it.
pub fn secret_items(secret: &SecretManifest) -> Result<Items, ConvertError> {
    let mut items = Items::new();
    for (key, value) in secret.data.iter().flatten() {
        let decoded = BASE64
            .decode(value.expose_secret().trim())
            .map_err(|_| ConvertError::BadBase64(printable(key)))?;
        items.insert(key.clone(), Zeroizing::new(decoded));
    }
    for (key, value) in secret.string_data.iter().flatten() {
        items.insert(
            key.clone(),
            Zeroizing::new(value.expose_secret().as_bytes().to_vec()),
        );
    }
    Ok(items)
}

/// Seals a Secret manifest into a SealedSecret.
pub fn seal_secret(
    secret: &SecretManifest,
    opts: &SealOptions<'_>,
) -> Result<SealedSecret, ConvertError> {
    let kind = secret.kind.as_deref().unwrap_or_default();
    if kind != "Secret" {
        return Err(ConvertError::NotASecret(if kind.is_empty() {
            "document without a kind".into()
        } else {
            kind.into()
        }));
    }
    if let Some(v) = secret.api_version.as_deref().filter(|v| *v != "v1") {
        return Err(ConvertError::WrongApiVersion(v.into()));
    }
    let target = target_of(secret, opts.namespace)?;
    let binding = Binding::new(opts.scope, &target)?;
    let items = secret_items(secret)?;
    if items.is_empty() && !opts.allow_empty {
        return Err(ConvertError::Empty);
    }
    let mut sealed = SealedSecret::new(
        &target.name,
        SealedSecretSpec {
            scope: opts.scope,
            template: template_of(secret),
            ..Default::default()
        },
    );
    sealed.metadata.namespace = target.namespace;
    seal_items_with(&mut sealed.spec, &binding, items, opts.recipients)?;
    Ok(sealed)
}

fn template_of(secret: &SecretManifest) -> SecretTemplate {
    let mut annotations = secret.metadata.annotations.clone().unwrap_or_default();
    annotations.retain(|k, _| !DROPPED_ANNOTATIONS.contains(&k.as_str()));
    SecretTemplate {
        metadata: TemplateMetadata {
            labels: secret.metadata.labels.clone().unwrap_or_default(),
            annotations,
        },
        type_: secret.type_.clone().filter(|t| !t.is_empty()),
        immutable: secret.immutable,
    }
}

/// Seals `items` into the SealedSecret (adding or replacing them); other items keep their
/// ciphertext byte for byte.
pub fn seal_items(
    sealed: &mut SealedSecret,
    items: Items,
    recipients: &[Recipient],
) -> Result<(), ConvertError> {
    let target = target_of_sealed(sealed)?;
    let binding = Binding::new(sealed.spec.scope, &target)?;
    seal_items_with(&mut sealed.spec, &binding, items, recipients)
}

fn seal_items_with(
    spec: &mut SealedSecretSpec,
    binding: &Binding,
    items: Items,
    recipients: &[Recipient],
) -> Result<(), ConvertError> {
    for key in items.keys() {
        check_item_key(key)?;
    }
    let mut size: usize = spec
        .encrypted_data
        .keys()
        .filter(|k| !items.contains_key(*k))
        .map(|k| k.len())
        .sum();
    size += items.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > MAX_SECRET_BYTES {
        return Err(ConvertError::TooLarge(size));
    }
    if recipients.is_empty() {
        return Err(SealError::NoRecipients.into());
    }
    for (key, value) in items {
        let sealed = seal_value(&value, binding, recipients)?;
        spec.encrypted_data.insert(key.clone(), sealed.ciphertext);
        spec.recipients.insert(key, sealed.recipients);
    }
    Ok(())
}

/// Removes items from a SealedSecret.
pub fn remove_items(sealed: &mut SealedSecret, keys: &[String]) -> Result<(), ConvertError> {
    for key in keys {
        if sealed.spec.encrypted_data.remove(key).is_none() {
            return Err(ConvertError::NoSuchItem(printable(key)));
        }
        sealed.spec.recipients.remove(key);
    }
    Ok(())
}

/// Where a SealedSecret lives.
pub fn target_of_sealed(sealed: &SealedSecret) -> Result<Target, ConvertError> {
    let name = non_empty(&sealed.metadata.name)
        .ok_or(ConvertError::NoName)?
        .to_owned();
    Ok(Target {
        namespace: non_empty(&sealed.metadata.namespace).map(str::to_owned),
        name,
    })
}

/// A Secret opened from a SealedSecret. Its values are zeroized when dropped, and Debug shows
/// none of them.
pub struct UnsealedSecret {
    pub secret: Secret,
    /// The recipients whose keys opened the values, sorted.
    pub opened_with: BTreeSet<String>,
}

impl Drop for UnsealedSecret {
    fn drop(&mut self) {
        for value in self.secret.data.iter_mut().flat_map(|d| d.values_mut()) {
            value.0.zeroize();
        }
    }
}

impl fmt::Debug for UnsealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self.secret.data.iter().flat_map(|d| d.keys()).collect();
        f.debug_struct("UnsealedSecret")
            .field("name", &self.secret.metadata.name)
            .field("namespace", &self.secret.metadata.namespace)
            .field("items", &keys)
            .field("opened_with", &self.opened_with)
            .finish()
    }
}

/// Opens every item of a SealedSecret with the scope checks for where it lives.
pub fn unseal(sealed: &SealedSecret, keys: &KeyRing) -> Result<UnsealedSecret, ConvertError> {
    let target = target_of_sealed(sealed)?;
    let none = Vec::new();
    let mut data = BTreeMap::new();
    let mut opened_with = BTreeSet::new();
    let mut size = 0;
    for (item, ciphertext) in &sealed.spec.encrypted_data {
        // Item keys are not bound to values and may be renamed, but only to keys a Secret can
        // have: said here, not as a 422 from the API server when the Secret is written.
        check_item_key(item)?;
        let recorded = sealed.spec.recipients.get(item).unwrap_or(&none);
        let opened = open_value(ciphertext, recorded, sealed.spec.scope, &target, keys).map_err(
            |error| ConvertError::Open {
                item: printable(item),
                error,
            },
        )?;
        opened_with.insert(opened.opened_with.clone());
        size += item.len() + opened.plaintext.len();
        if size > MAX_SECRET_BYTES {
            // Not sealed by `seal`, which refuses this: nothing more is opened or kept.
            return Err(ConvertError::TooLarge(size));
        }
        data.insert(item.clone(), ByteString(opened.plaintext.to_vec()));
    }
    let template = &sealed.spec.template;
    let non_empty = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target.name),
            namespace: target.namespace,
            labels: non_empty(&template.metadata.labels),
            annotations: non_empty(&template.metadata.annotations),
            ..Default::default()
        },
        data: Some(data),
        type_: Some(template.type_.clone().unwrap_or_else(|| "Opaque".into())),
        immutable: template.immutable,
        ..Default::default()
    };
    Ok(UnsealedSecret {
        secret,
        opened_with,
    })
}

/// [`unseal`] as a cluster does it: `keys` holds the usable keys, and a value that only a
/// compromised key could open is reported as such.
pub fn unseal_in_cluster(
    sealed: &SealedSecret,
    keys: &KeyRing,
    compromised: &BTreeSet<String>,
) -> Result<UnsealedSecret, ConvertError> {
    unseal(sealed, keys).map_err(|e| name_compromised(e, compromised))
}

/// The compromised keys (held here, so known to be in other hands) that can open at least
/// one value of `sealed`, sorted. The values still open for the cluster; their plaintext must
/// be treated as leaked. Each key counts only if it really opens a value (stanza, header MAC
/// and payload), whatever `spec.recipients` says.
pub fn exposed_to(sealed: &SealedSecret, compromised: &KeyRing) -> BTreeSet<String> {
    let Ok(target) = target_of_sealed(sealed) else {
        return BTreeSet::new();
    };
    let mut exposed = BTreeSet::new();
    for recipient in compromised.recipients() {
        let identity = compromised.get(&recipient).expect("listed by the ring");
        let alone = KeyRing::from_identities([identity.clone()]);
        // Named as the only recorded reader, the key is tried against every stanza.
        let claimed = std::slice::from_ref(&recipient);
        let opens = sealed.spec.encrypted_data.values().any(|ciphertext| {
            open_value(ciphertext, claimed, sealed.spec.scope, &target, &alone).is_ok()
        });
        if opens {
            exposed.insert(recipient);
        }
    }
    exposed
}

/// A value no usable key opens, but a compromised one would: say so.
fn name_compromised(error: ConvertError, compromised: &BTreeSet<String>) -> ConvertError {
    match error {
        ConvertError::Open {
            item,
            error: OpenError::NoKeyHeld(recorded),
        } => match recorded.iter().find(|r| compromised.contains(*r)) {
            Some(recipient) => ConvertError::Compromised {
                item,
                recipient: recipient.clone(),
            },
            None => ConvertError::Open {
                item,
                error: OpenError::NoKeyHeld(recorded),
            },
        },
        other => other,
    }
}

/// What `seal reencrypt` asks the controller for after a key rotation: every item re-wrapped
/// for the active keys (`rewrap.rs`), with scope, names and template unchanged. Never returns
/// plaintext.
///
/// Each item keeps exactly the other readers it had (a break-glass key, another cluster):
/// their stanzas are kept byte for byte. The recipients listed in the request are never
/// sealed to: they are clear text anyone can edit.
pub fn reencrypt(
    sealed: &SealedSecret,
    keys: &ClusterKeys<'_>,
    compromised: &BTreeSet<String>,
) -> Result<SealedSecret, ConvertError> {
    let target = target_of_sealed(sealed)?;
    Binding::new(sealed.spec.scope, &target)?;
    let none = Vec::new();
    let mut resealed = sealed.clone();
    resealed.status = None;
    let mut size = 0;
    for (item, ciphertext) in &sealed.spec.encrypted_data {
        check_item_key(item)?;
        let recorded = sealed.spec.recipients.get(item).unwrap_or(&none);
        let (moved, plaintext_bytes) =
            rewrap_value(ciphertext, recorded, sealed.spec.scope, &target, keys)
                .map_err(|error| ConvertError::Open {
                    item: printable(item),
                    error,
                })
                .map_err(|e| name_compromised(e, compromised))?;
        // What could never become a Secret is not re-sealed either, as `unseal` refuses it.
        size += item.len() + plaintext_bytes;
        if size > MAX_SECRET_BYTES {
            return Err(ConvertError::TooLarge(size));
        }
        resealed
            .spec
            .encrypted_data
            .insert(item.clone(), moved.ciphertext);
        resealed
            .spec
            .recipients
            .insert(item.clone(), moved.recipients);
    }
    // Records of items that no longer exist say nothing true.
    let items = &sealed.spec.encrypted_data;
    resealed
        .spec
        .recipients
        .retain(|k, _| items.contains_key(k));
    Ok(resealed)
}

/// Why an answer of `/v1/reencrypt` is not the SealedSecret that was sent, re-wrapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplyError {
    #[error("the controller answered for {0}, not for this SealedSecret")]
    Moved(String),
    #[error("the controller changed spec.scope to {0}")]
    ScopeChanged(Scope),
    #[error("the controller changed spec.template (type, labels or annotations)")]
    TemplateChanged,
    #[error("the controller answered with items [{0}], not this SealedSecret's")]
    ItemsChanged(String),
    #[error("the controller's item '{item}' {error}")]
    Item {
        item: String,
        error: crate::rewrap::RewrapCheck,
    },
}

/// `seal reencrypt` writes an answer only if it can be nothing but `sent` re-wrapped (see
/// [`check_rewrapped`]): same names, scope, template and items, the same payload for each
/// value, and new stanzas only for the cluster's `published` recipients.
pub fn check_reencrypt_reply(
    sent: &SealedSecret,
    reply: &SealedSecret,
    published: &[String],
) -> Result<(), ReplyError> {
    let place = |s: &SealedSecret| (s.metadata.namespace.clone(), s.metadata.name.clone());
    if place(sent) != place(reply) {
        let (ns, name) = place(reply);
        return Err(ReplyError::Moved(format!(
            "{}/{}",
            ns.unwrap_or_default(),
            name.unwrap_or_default()
        )));
    }
    if sent.spec.scope != reply.spec.scope {
        return Err(ReplyError::ScopeChanged(reply.spec.scope));
    }
    if sent.spec.template != reply.spec.template {
        return Err(ReplyError::TemplateChanged);
    }
    let items = |s: &SealedSecret| s.spec.encrypted_data.keys().cloned().collect::<Vec<_>>();
    if items(sent) != items(reply) {
        let got: Vec<String> = items(reply).iter().map(|i| printable(i)).collect();
        return Err(ReplyError::ItemsChanged(got.join(", ")));
    }
    let none = Vec::new();
    for (item, before) in &sent.spec.encrypted_data {
        let after = &reply.spec.encrypted_data[item];
        let record = |s: &'_ SealedSecret| s.spec.recipients.get(item).unwrap_or(&none).clone();
        crate::rewrap::check_rewrapped(before, &record(sent), after, &record(reply), published)
            .map_err(|error| ReplyError::Item {
                item: printable(item),
                error,
            })?;
    }
    Ok(())
}

/// Kubernetes' rule for Secret item keys (apimachinery's IsConfigMapKey).
pub fn check_item_key(key: &str) -> Result<(), ConvertError> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(())
        .ok_or_else(|| ConvertError::BadItemKey(printable(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;
    use crate::manifest::{Manifest, read_manifests};

    fn secret(yaml: &str) -> SecretManifest {
        match read_manifests(yaml).unwrap().remove(0).value {
            Manifest::Secret(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    fn seal_db(scope: Scope, recipients: &[Recipient]) -> SealedSecret {
        let opts = SealOptions {
            scope,
            recipients,
            namespace: None,
            allow_empty: false,
        };
        seal_secret(&secret(DB), &opts).unwrap()
    }

    const DB: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  labels: {app: db}\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{}'\n    team: payments\ntype: kubernetes.io/basic-auth\ndata:\n  password: aHVudGVyMg==\nstringData:\n  username: admin\n";

    #[test]
    fn seals_and_unseals_a_secret() {
        let key = generate_key("t");
        let recipients = [key.recipient.clone()];
        let sealed = seal_db(Scope::Strict, &recipients);
        assert_eq!(sealed.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(
            sealed.spec.template.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(sealed.spec.template.metadata.labels["app"], "db");
        assert!(
            !sealed
                .spec
                .template
                .metadata
                .annotations
                .contains_key(DROPPED_ANNOTATIONS[0])
        );
        assert_eq!(
            sealed.spec.recipients["password"],
            vec![key.recipient.to_string()]
        );

        let ring = KeyRing::from_identities([key.identity]);
        let unsealed = unseal(&sealed, &ring).unwrap();
        let data = unsealed.secret.data.as_ref().unwrap();
        assert_eq!(data["password"].0, b"hunter2");
        assert_eq!(data["username"].0, b"admin");
        let meta = &unsealed.secret.metadata;
        assert_eq!(
            (meta.name.as_deref(), meta.namespace.as_deref()),
            (Some("db"), Some("prod"))
        );
        assert_eq!(
            unsealed.secret.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(unsealed.secret.immutable, None);
        // The template's immutability is carried; a missing type is Opaque, as in Kubernetes.
        let mut immutable = sealed.clone();
        immutable.spec.template.immutable = Some(true);
        immutable.spec.template.type_ = None;
        let opened = unseal(&immutable, &ring).unwrap();
        assert_eq!(opened.secret.immutable, Some(true));
        assert_eq!(opened.secret.type_.as_deref(), Some("Opaque"));
        // Names and who opened it, never a value.
        assert_eq!(
            format!("{unsealed:?}"),
            format!(
                "UnsealedSecret {{ name: Some(\"db\"), namespace: Some(\"prod\"), items: [\"password\", \"username\"], opened_with: {{\"{}\"}} }}",
                key.recipient
            )
        );
    }

    #[test]
    fn merged_items_count_the_items_kept_against_the_size_limit() {
        let r = [generate_key("t").recipient];
        let items = |key: &str, len: usize| {
            Items::from([(key.to_owned(), Zeroizing::new(vec![b'x'; len]))])
        };
        // The file keeps "password" and "username" (16 bytes of keys; values are not counted
        // twice), so a new item may hold 1 MiB less those and its own key.
        let room = MAX_SECRET_BYTES - "password".len() - "username".len() - "k".len();
        let mut sealed = seal_db(Scope::Strict, &r);
        assert_eq!(
            seal_items(&mut sealed, items("k", room + 1), &r).unwrap_err(),
            ConvertError::TooLarge(MAX_SECRET_BYTES + 1)
        );
        seal_items(&mut sealed, items("k", room), &r).unwrap();
        // Replacing an item does not count its old key as well.
        let mut sealed = seal_db(Scope::Strict, &r);
        let room = MAX_SECRET_BYTES - "username".len() - "password".len();
        seal_items(&mut sealed, items("password", room), &r).unwrap();
    }

    // A table of bad Secrets, then the size limit and `-n`: kept as one table of cases.
    #[test]
    fn bad_secrets_are_refused() {
        let r = [generate_key("t").recipient];
        let opts = SealOptions {
            scope: Scope::Strict,
            recipients: &r,
            namespace: None,
            allow_empty: false,
        };
        let cases = [
            (
                "kind: Secret\nmetadata: {namespace: a}\nstringData: {a: b}\n",
                ConvertError::NoName,
            ),
            (
                "kind: Secret\nmetadata: {name: a}\nstringData: {a: b}\n",
                ConvertError::Binding(BindingError::NamespaceRequired {
                    scope: Scope::Strict,
                }),
            ),
            (
                "kind: Secret\nmetadata: {name: a, namespace: b}\ndata: {k: '***'}\n",
                ConvertError::BadBase64("k".into()),
            ),
            (
                "kind: Secret\nmetadata: {name: a, namespace: b}\n",
                ConvertError::Empty,
            ),
            (
                "kind: Secret\nmetadata: {name: a, namespace: b}\nstringData: {'a b': x}\n",
                ConvertError::BadItemKey("a b".into()),
            ),
            (
                "kind: Secret\nmetadata: {name: a, namespace: b}\nstringData: {'..data': x}\n",
                ConvertError::BadItemKey("..data".into()),
            ),
            (
                "kind: Secret\nmetadata: {name: a, namespace: b}\nstringData: {'.': x}\n",
                ConvertError::BadItemKey(".".into()),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(
                seal_secret(&secret(yaml), &opts).unwrap_err(),
                expected,
                "{yaml}"
            );
        }
        // Kubernetes' limit counts keys and values: exactly 1 MiB still fits, a byte more does not.
        let at_limit = |value_len: usize| {
            format!(
                "kind: Secret\nmetadata: {{name: a, namespace: b}}\nstringData: {{k: {}}}\n",
                "x".repeat(value_len)
            )
        };
        assert!(seal_secret(&secret(&at_limit(MAX_SECRET_BYTES - 1)), &opts).is_ok());
        assert_eq!(
            seal_secret(&secret(&at_limit(MAX_SECRET_BYTES)), &opts).unwrap_err(),
            ConvertError::TooLarge(MAX_SECRET_BYTES + 1)
        );
        // `-n` naming the manifest's own namespace is no conflict.
        let same = SealOptions {
            namespace: Some("prod"),
            ..opts
        };
        assert!(seal_secret(&secret(DB), &same).is_ok());
        let conflict = SealOptions {
            namespace: Some("other"),
            ..opts
        };
        assert!(matches!(
            seal_secret(&secret(DB), &conflict),
            Err(ConvertError::NamespaceConflict { .. })
        ));
    }

    #[test]
    fn values_needing_a_compromised_key_say_so() {
        let key = generate_key("t");
        let r = [key.recipient.clone()];
        let sealed = seal_db(Scope::Strict, &r);
        let compromised = BTreeSet::from([key.recipient.to_string()]);
        let err = unseal_in_cluster(&sealed, &KeyRing::new(), &compromised).unwrap_err();
        assert!(matches!(err, ConvertError::Compromised { .. }), "{err}");
        assert!(err.to_string().contains("marked compromised"));
        let err = unseal_in_cluster(&sealed, &KeyRing::new(), &BTreeSet::new()).unwrap_err();
        assert!(matches!(
            err,
            ConvertError::Open {
                error: OpenError::NoKeyHeld(_),
                ..
            }
        ));
    }

    /// Whether every item records exactly these recipients, in this order.
    fn every_item_records(sealed: &SealedSecret, expect: &[&Recipient]) -> bool {
        let expect: Vec<String> = expect.iter().map(|r| r.to_string()).collect();
        sealed.spec.recipients.values().all(|r| r == &expect)
    }

    /// A copy whose record names only `recipient` for every item: a record claiming a key.
    fn claiming(sealed: &SealedSecret, recipient: &Recipient) -> SealedSecret {
        let mut claims = sealed.clone();
        for r in claims.spec.recipients.values_mut() {
            *r = vec![recipient.to_string()];
        }
        claims
    }

    fn cluster<'a>(usable: &'a KeyRing, active: &'a [Recipient]) -> ClusterKeys<'a> {
        ClusterKeys {
            usable,
            held: usable,
            active,
        }
    }

    #[test]
    fn reencrypt_moves_every_item_to_the_new_key() {
        let [old, new] = std::array::from_fn(|_| generate_key("t"));
        let r = [old.recipient.clone()];
        let sealed = seal_db(Scope::NamespaceWide, &r);
        let both = KeyRing::from_identities([old.identity.clone(), new.identity.clone()]);
        let active = [new.recipient.clone()];
        let moved = reencrypt(&sealed, &cluster(&both, &active), &BTreeSet::new()).unwrap();
        assert_eq!(moved.spec.scope, Scope::NamespaceWide);
        assert_eq!(moved.spec.template, sealed.spec.template);
        assert!(every_item_records(&moved, &[&new.recipient]));
        let only_new = KeyRing::from_identities([new.identity]);
        let data = unseal(&moved, &only_new)
            .unwrap()
            .secret
            .data
            .clone()
            .unwrap();
        assert_eq!(data["password"].0, b"hunter2");
        // The old key no longer has a stanza: it does not open the result.
        let only_old = KeyRing::from_identities([old.identity]);
        let claims_old = claiming(&moved, &old.recipient);
        assert!(matches!(
            unseal(&claims_old, &only_old),
            Err(ConvertError::Open {
                error: OpenError::KeyMismatch(_),
                ..
            })
        ));
        // Already on the active key: nothing changes, byte for byte.
        let again = reencrypt(&moved, &cluster(&both, &active), &BTreeSet::new()).unwrap();
        assert_eq!(again.spec, moved.spec);
    }

    #[test]
    fn reencrypt_keeps_break_glass_and_other_clusters() {
        let [old, new, glass] = std::array::from_fn(|_| generate_key("t"));
        let r = [old.recipient.clone(), glass.recipient.clone()];
        let sealed = seal_db(Scope::Strict, &r);
        let ring = KeyRing::from_identities([old.identity, new.identity]);
        let active = [new.recipient.clone()];
        let moved = reencrypt(&sealed, &cluster(&ring, &active), &BTreeSet::new()).unwrap();
        assert!(
            every_item_records(&moved, &[&new.recipient, &glass.recipient]),
            "{:?}",
            moved.spec.recipients
        );
        let glass_only = KeyRing::from_identities([glass.identity]);
        assert!(
            unseal(&moved, &glass_only).is_ok(),
            "break-glass still opens it"
        );
    }

    #[test]
    fn reencrypt_replaces_compromised_stanzas_too() {
        let [bad, good, new] = std::array::from_fn(|_| generate_key("t"));
        let sealed = seal_db(
            Scope::Strict,
            &[bad.recipient.clone(), good.recipient.clone()],
        );
        let usable = KeyRing::from_identities([good.identity, new.identity]);
        let held = KeyRing::from_identities([bad.identity.clone()]);
        let mut all = usable.clone();
        all.insert(bad.identity.clone());
        let active = [new.recipient.clone()];
        let keys = ClusterKeys {
            usable: &usable,
            held: &all,
            active: &active,
        };
        let compromised = BTreeSet::from([bad.recipient.to_string()]);
        let moved = reencrypt(&sealed, &keys, &compromised).unwrap();
        assert!(every_item_records(&moved, &[&new.recipient]));
        let claims_bad = claiming(&moved, &bad.recipient);
        assert!(
            unseal(&claims_bad, &held).is_err(),
            "the compromised key lost its stanza"
        );
    }

    #[test]
    fn exposure_names_compromised_keys_that_really_open_a_value() {
        let [bad, good, other_bad] = std::array::from_fn(|_| generate_key("t"));
        let compromised = KeyRing::from_identities([bad.identity, other_bad.identity]);
        let exposed = seal_db(
            Scope::Strict,
            &[good.recipient.clone(), bad.recipient.clone()],
        );
        assert_eq!(
            exposed_to(&exposed, &compromised),
            BTreeSet::from([bad.recipient.to_string()])
        );

        // The record is clear text: naming a compromised key there exposes nothing, and
        // dropping it from the record hides nothing.
        let mut claims = seal_db(Scope::Strict, std::slice::from_ref(&good.recipient));
        for r in claims.spec.recipients.values_mut() {
            r.push(other_bad.recipient.to_string());
        }
        assert!(exposed_to(&claims, &compromised).is_empty());
        let mut hides = exposed.clone();
        for r in hides.spec.recipients.values_mut() {
            r.retain(|r| *r == good.recipient.to_string());
        }
        assert_eq!(
            exposed_to(&hides, &compromised),
            BTreeSet::from([bad.recipient.to_string()])
        );
        assert!(exposed_to(&exposed, &KeyRing::new()).is_empty());
    }

    #[test]
    fn a_reencrypt_reply_must_be_the_same_secret_rewrapped() {
        let [old, new] = std::array::from_fn(|_| generate_key("t"));
        let sealed = seal_db(Scope::Strict, std::slice::from_ref(&old.recipient));
        let usable = KeyRing::from_identities([old.identity.clone()]);
        let keys = ClusterKeys {
            usable: &usable,
            held: &usable,
            active: std::slice::from_ref(&new.recipient),
        };
        let reply = reencrypt(&sealed, &keys, &BTreeSet::new()).unwrap();
        let published = [new.recipient.to_string()];
        assert_eq!(check_reencrypt_reply(&sealed, &reply, &published), Ok(()));

        let edited = |edit: &dyn Fn(&mut SealedSecret)| {
            let mut r = reply.clone();
            edit(&mut r);
            check_reencrypt_reply(&sealed, &r, &published).unwrap_err()
        };
        assert_eq!(
            edited(&|r| r.metadata.namespace = Some("dev".into())),
            ReplyError::Moved("dev/db".into())
        );
        assert_eq!(
            edited(&|r| r.spec.scope = Scope::ClusterWide),
            ReplyError::ScopeChanged(Scope::ClusterWide)
        );
        assert_eq!(
            edited(&|r| r.spec.template.type_ = Some("kubernetes.io/service-account-token".into())),
            ReplyError::TemplateChanged
        );
        assert_eq!(
            edited(&|r| {
                r.spec.encrypted_data.remove("username");
            }),
            ReplyError::ItemsChanged("password".into())
        );
        // Not published: the stub or proxy that answered is not this cluster's controller.
        assert!(matches!(
            check_reencrypt_reply(&sealed, &reply, &[old.recipient.to_string()]),
            Err(ReplyError::Item {
                error: crate::rewrap::RewrapCheck::UnpublishedRecipient(_),
                ..
            })
        ));
    }

    #[test]
    fn values_over_a_secrets_size_are_not_opened() {
        let key = generate_key("t");
        let target = Target::new("prod", "db");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        // Sealed by hand (any age tool can), past the check `seal` makes.
        let big = seal_value(
            &vec![b'x'; MAX_SECRET_BYTES],
            &binding,
            std::slice::from_ref(&key.recipient),
        )
        .unwrap();
        let mut sealed = seal_db(Scope::Strict, std::slice::from_ref(&key.recipient));
        sealed
            .spec
            .encrypted_data
            .insert("big".into(), big.ciphertext);
        sealed.spec.recipients.insert("big".into(), big.recipients);
        let ring = KeyRing::from_identities([key.identity]);
        let err = unseal(&sealed, &ring).unwrap_err();
        assert!(
            matches!(err, ConvertError::TooLarge(n) if n > MAX_SECRET_BYTES),
            "{err}"
        );
        // Nor is it re-sealed: `/v1/reencrypt` would hand back what no cluster can open.
        let active = [generate_key("new").recipient];
        let keys = ClusterKeys {
            usable: &ring,
            held: &ring,
            active: &active,
        };
        let err = reencrypt(&sealed, &keys, &BTreeSet::new()).unwrap_err();
        assert!(
            matches!(err, ConvertError::TooLarge(n) if n > MAX_SECRET_BYTES),
            "{err}"
        );
    }

    #[test]
    fn a_secret_of_exactly_the_size_limit_opens() {
        let key = generate_key("t");
        let binding = Binding::new(Scope::Strict, &Target::new("prod", "db")).unwrap();
        let r = std::slice::from_ref(&key.recipient);
        // Key and value together make exactly 1 MiB.
        let value = vec![b'x'; MAX_SECRET_BYTES - "password".len()];
        let sealed_value = seal_value(&value, &binding, r).unwrap();
        let mut sealed = seal_db(Scope::Strict, r);
        sealed.spec.encrypted_data = BTreeMap::from([("password".into(), sealed_value.ciphertext)]);
        sealed.spec.recipients = BTreeMap::from([("password".into(), sealed_value.recipients)]);
        let ring = KeyRing::from_identities([key.identity]);
        let opened = unseal(&sealed, &ring).unwrap();
        assert_eq!(
            opened.secret.data.as_ref().unwrap()["password"].0.len(),
            value.len()
        );
    }

    #[test]
    fn merging_keeps_untouched_ciphertext() {
        let key = generate_key("t");
        let recipients = [key.recipient.clone()];
        let mut sealed = seal_db(Scope::Strict, &recipients);
        let before = sealed.spec.encrypted_data.clone();
        let items = Items::from([("password".to_string(), Zeroizing::new(b"new".to_vec()))]);
        seal_items(&mut sealed, items, &recipients).unwrap();
        assert_eq!(sealed.spec.encrypted_data["username"], before["username"]);
        assert_ne!(sealed.spec.encrypted_data["password"], before["password"]);
        remove_items(&mut sealed, &["username".into()]).unwrap();
        assert!(!sealed.spec.recipients.contains_key("username"));
        assert_eq!(
            remove_items(&mut sealed, &["nope".into()]),
            Err(ConvertError::NoSuchItem("nope".into()))
        );
        let ring = KeyRing::from_identities([key.identity]);
        let data = unseal(&sealed, &ring).unwrap().secret.data.clone().unwrap();
        assert_eq!(data["password"].0, b"new");
    }
}
