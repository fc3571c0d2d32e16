//! Bitnami Sealed Secrets (`bitnami.com/v1alpha1`): their SealedSecrets, their key backups,
//! and opening their values, so a repository sealed for Bitnami's controller can move to
//! Sealant without unsealing anything to disk (`seal migrate`).
//!
//! A Bitnami value (base64 in `spec.encryptedData`) is
//! `u16 BE length of the RSA ciphertext ‖ RSA-OAEP(SHA-256, MGF1-SHA-256, label) of a random
//! 32-byte AES key ‖ AES-256-GCM(key, 12 zero bytes nonce) of the value` (sealed-secrets
//! `pkg/crypto/crypto.go`, `HybridEncrypt`). The OAEP label binds the scope: `namespace/name`
//! (strict), `namespace` (namespace-wide), empty (cluster-wide). No key id is recorded, so
//! every held key may have to be tried: [`BitnamiKeyRing`] tries the one that worked last
//! first. RSA runs in OpenSSL, whose OAEP decryption is constant-time (docs/security.md).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use openssl::md::Md;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, decrypt_aead};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_saphyr::Spanned;
use zeroize::Zeroizing;

use crate::convert::{ConvertError, Items, seal_items};
use crate::crd::{SealedSecret, SealedSecretSpec, SecretTemplate, TemplateMetadata};
use crate::keys::Recipient;
use crate::manifest::{
    Document, Head, ListItems, Located, ParseError, non_empty, parse_document, split_documents,
};
use crate::scope::{Binding, BindingError, Scope, Target};

/// The API group of Bitnami's SealedSecret resource.
pub const API_GROUP: &str = "bitnami.com";
/// `"true"` on a SealedSecret (or, for `seal`, on an input Secret): namespace-wide scope.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// `"true"` on a SealedSecret (or an input Secret): cluster-wide scope; wins over namespace-wide.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// The label Bitnami's controller puts on its key Secrets.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";

/// Bytes of the big-endian length that prefixes the RSA ciphertext.
const LENGTH_PREFIX_BYTES: usize = 2;
/// AES-256: the session key the RSA part wraps.
const SESSION_KEY_BYTES: usize = 32;
/// Every value has its own session key, so the nonce is fixed at 12 zero bytes.
const NONCE: [u8; 12] = [0; 12];
const GCM_TAG_BYTES: usize = 16;
/// Annotations of a Bitnami object that mean nothing on a Sealant one.
const DROPPED_ANNOTATIONS: &[&str] = &[
    NAMESPACE_WIDE_ANNOTATION,
    CLUSTER_WIDE_ANNOTATION,
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// A Bitnami SealedSecret, as kubeseal writes it. Unknown fields are ignored.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct BitnamiSealedSecret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BitnamiSpec,
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct BitnamiSpec {
    /// Item key → base64 of a sealed value.
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, String>,
    #[serde(default)]
    pub template: BitnamiTemplate,
    /// The pre-v0.7 format: the whole Secret sealed as one blob.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct BitnamiTemplate {
    #[serde(default)]
    pub metadata: Option<ObjectMeta>,
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub immutable: Option<bool>,
    /// Go templates over the opened items; Sealant has no equivalent yet.
    #[serde(default)]
    pub data: Option<BTreeMap<String, serde_json::Value>>,
}

impl BitnamiSealedSecret {
    /// The scope its annotations declare (strict when neither says `"true"`).
    pub fn scope(&self) -> Scope {
        self.metadata
            .annotations
            .as_ref()
            .and_then(scope_from_annotations)
            .unwrap_or_default()
    }

    /// Where it lives, for messages and labels.
    pub fn target(&self) -> Target {
        Target {
            namespace: self.metadata.namespace.clone(),
            name: self.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// The scope Bitnami's annotations give an object, if they give one: cluster-wide wins, as in
/// Bitnami's controller; only the exact value `"true"` counts.
pub fn scope_from_annotations(annotations: &BTreeMap<String, String>) -> Option<Scope> {
    let set = |key: &str| annotations.get(key).is_some_and(|v| v == "true");
    if set(CLUSTER_WIDE_ANNOTATION) {
        Some(Scope::ClusterWide)
    } else if set(NAMESPACE_WIDE_ANNOTATION) {
        Some(Scope::NamespaceWide)
    } else {
        None
    }
}

/// The scope to seal an input Secret with: `--scope` if given, else the one its Bitnami
/// annotations give (so Secrets written for kubeseal keep their scope), else strict.
pub fn resolve_scope(
    explicit: Option<Scope>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Scope, ScopeConflict> {
    let annotated = annotations.and_then(scope_from_annotations);
    match (explicit, annotated) {
        (Some(given), Some(annotated)) if given != annotated => {
            Err(ScopeConflict { given, annotated })
        }
        (Some(scope), _) | (None, Some(scope)) => Ok(scope),
        (None, None) => Ok(Scope::Strict),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--scope {given}, but its annotation {} says {annotated}: drop one",
    annotation_for(*.annotated)
)]
pub struct ScopeConflict {
    pub given: Scope,
    pub annotated: Scope,
}

fn annotation_for(scope: Scope) -> &'static str {
    match scope {
        Scope::ClusterWide => CLUSTER_WIDE_ANNOTATION,
        _ => NAMESPACE_WIDE_ANNOTATION,
    }
}

/// The OAEP label a value sealed with `scope` for `target` carries.
pub fn oaep_label(scope: Scope, target: &Target) -> Vec<u8> {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    match scope {
        Scope::Strict => format!("{namespace}/{}", target.name).into_bytes(),
        Scope::NamespaceWide => namespace.as_bytes().to_vec(),
        Scope::ClusterWide => Vec::new(),
    }
}

/// Is this `apiVersion`/`kind` a Bitnami SealedSecret?
pub fn is_bitnami_sealed_secret(api_version: Option<&str>, kind: &str) -> bool {
    kind == "SealedSecret" && api_version.is_some_and(|v| v.split('/').next() == Some(API_GROUP))
}

/// One object of a file: a Bitnami SealedSecret, or any other kind (named by its `kind`).
#[derive(Debug)]
pub enum BitnamiObject {
    SealedSecret(Box<BitnamiSealedSecret>),
    Other(String),
}

/// Reads every object of a YAML stream, JSON document or v1 List, each with its line.
pub fn read_objects(text: &str) -> Result<Vec<Located<BitnamiObject>>, ParseError> {
    let mut out = Vec::new();
    for doc in split_documents(text) {
        let head: Head = parse_document(&doc)?;
        let kind = head.kind.unwrap_or_default();
        if head.api_version.as_deref() == Some("v1") && kind.ends_with("List") {
            let list: ListItems = parse_document(&doc)?;
            for item in list.items {
                let line = doc.first_line + item.referenced.line() as usize - 1;
                let value = object_from_value(item.value).map_err(|message| ParseError {
                    line,
                    column: 1,
                    message,
                })?;
                out.push(Located { line, value });
            }
            continue;
        }
        let value = if is_bitnami_sealed_secret(head.api_version.as_deref(), &kind) {
            BitnamiObject::SealedSecret(Box::new(parse_document(&doc)?))
        } else {
            BitnamiObject::Other(kind)
        };
        out.push(Located {
            line: doc.content_line,
            value,
        });
    }
    Ok(out)
}

fn object_from_value(value: serde_json::Value) -> Result<BitnamiObject, String> {
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    if is_bitnami_sealed_secret(api_version, &kind) {
        Ok(BitnamiObject::SealedSecret(Box::new(
            serde_json::from_value(value).map_err(|e| e.to_string())?,
        )))
    } else {
        Ok(BitnamiObject::Other(kind))
    }
}

/// One of Bitnami's RSA private keys, named for messages (its Secret's name, or its file).
/// Imported keys only open; Sealant never seals with them.
#[derive(Clone)]
pub struct BitnamiKey {
    name: String,
    key: PKey<Private>,
}

impl BitnamiKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The RSA modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.key.bits()
    }

    /// The public half in PEM (SubjectPublicKeyInfo), e.g. for a test or benchmark to seal with.
    pub fn public_key_pem(&self) -> Vec<u8> {
        self.key
            .public_key_to_pem()
            .expect("an RSA key's public half encodes")
    }

    /// The private key in PKCS#8 PEM, to store it in the cluster (`import-bitnami-keys`).
    pub fn private_key_pem(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            self.key
                .private_key_to_pem_pkcs8()
                .expect("an RSA private key encodes"),
        )
    }

    /// The SHA-256 of the public key (DER SubjectPublicKeyInfo), in hex: names the key
    /// the same way wherever it came from.
    pub fn fingerprint(&self) -> String {
        let der = self
            .key
            .public_key_to_der()
            .expect("an RSA key's public half encodes");
        openssl::sha::sha256(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for BitnamiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitnamiKey")
            .field("name", &self.name)
            .field("bits", &self.key.bits())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyBackupError {
    #[error(
        "holds no Sealed Secrets key: expected the YAML of `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`, or PEM RSA private keys"
    )]
    NoKeys,
    #[error("{line}: is a {kind}, not a key Secret or a List of them")]
    NotASecret { line: usize, kind: String },
    #[error("{line}: Secret '{name}' has no data.tls.key: is it a Sealed Secrets key Secret?")]
    NoTlsKey { line: usize, name: String },
    #[error("{line}: Secret '{name}': data.tls.key is not valid base64")]
    NotBase64 { line: usize, name: String },
    #[error(
        "{line}: {what}is an encrypted private key: decrypt it first (`openssl pkey -in KEY -out plain.pem`)"
    )]
    Encrypted { line: usize, what: String },
    #[error("{line}: {what}is not an RSA private key in PEM (PKCS#1 or PKCS#8)")]
    BadPem { line: usize, what: String },
    #[error("{line}: {what}is not an RSA key; Bitnami Sealed Secrets keys are RSA")]
    NotRsa { line: usize, what: String },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

#[derive(Deserialize, Default)]
struct KeySecret {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    data: BTreeMap<String, SecretString>,
    #[serde(default)]
    items: Vec<Spanned<KeySecret>>,
}

/// Reads a key backup: kubectl's YAML (or JSON) of the key Secrets, one or a List of them,
/// or PEM text holding RSA private keys (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`;
/// certificates beside them are skipped). `source` names PEM keys in messages.
pub fn parse_key_backup(text: &str, source: &str) -> Result<Vec<BitnamiKey>, KeyBackupError> {
    let keys = if text.trim_start().starts_with("-----BEGIN") {
        let keys = keys_from_pem(text.as_bytes(), None)?;
        let many = keys.len() > 1;
        keys.into_iter()
            .map(|(line, key)| BitnamiKey {
                name: if many {
                    format!("{source}:{line}")
                } else {
                    source.to_owned()
                },
                key,
            })
            .collect()
    } else {
        let mut keys = Vec::new();
        for doc in split_documents(text) {
            let secret: KeySecret = parse_document(&doc)?;
            keys_from_secret(secret, &doc, doc.content_line, &mut keys)?;
        }
        keys
    };
    if keys.is_empty() {
        return Err(KeyBackupError::NoKeys);
    }
    Ok(keys)
}

/// The keys of `secret`, which starts at `line` of the stream; the lines of a List's items
/// count from the first line of `doc` (its `---` included), as the parser's spans do.
fn keys_from_secret(
    secret: KeySecret,
    doc: &Document<'_>,
    line: usize,
    out: &mut Vec<BitnamiKey>,
) -> Result<(), KeyBackupError> {
    let kind = secret.kind.unwrap_or_default();
    if kind.ends_with("List") {
        for item in secret.items {
            let item_line = doc.first_line + item.referenced.line() as usize - 1;
            keys_from_secret(item.value, doc, item_line, out)?;
        }
        return Ok(());
    }
    if kind != "Secret" {
        return Err(KeyBackupError::NotASecret {
            line,
            kind: if kind.is_empty() {
                "document without a kind".into()
            } else {
                kind
            },
        });
    }
    let name = secret.metadata.name.unwrap_or_default();
    let Some(encoded) = secret.data.get("tls.key") else {
        return Err(KeyBackupError::NoTlsKey { line, name });
    };
    let pem = Zeroizing::new(BASE64.decode(encoded.expose_secret().trim()).map_err(|_| {
        KeyBackupError::NotBase64 {
            line,
            name: name.clone(),
        }
    })?);
    let keys = keys_from_pem(&pem, Some((line, &name)))?;
    if keys.is_empty() {
        return Err(KeyBackupError::BadPem {
            line,
            what: format!("Secret '{name}': data.tls.key "),
        });
    }
    let many = keys.len() > 1;
    for (i, (_, key)) in keys.into_iter().enumerate() {
        out.push(BitnamiKey {
            name: if many {
                format!("{name}#{}", i + 1)
            } else {
                name.clone()
            },
            key,
        });
    }
    Ok(())
}

/// Every private-key PEM block of `pem`, with its line; other blocks (certificates) are
/// skipped. `secret` is the line and name of the key Secret the PEM came from, if any.
fn keys_from_pem(
    pem: &[u8],
    secret: Option<(usize, &str)>,
) -> Result<Vec<(usize, PKey<Private>)>, KeyBackupError> {
    let text = String::from_utf8_lossy(pem);
    let mut keys = Vec::new();
    for (offset, label, block) in pem_blocks(&text) {
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let (line, what) = match secret {
            Some((line, name)) => (line, format!("Secret '{name}': data.tls.key ")),
            None => (text[..offset].matches('\n').count() + 1, String::new()),
        };
        if label.contains("ENCRYPTED") {
            return Err(KeyBackupError::Encrypted { line, what });
        }
        // A callback that refuses: OpenSSL must never prompt for a passphrase on a terminal.
        let key = PKey::private_key_from_pem_callback(block.as_bytes(), |_| {
            Err(openssl::error::ErrorStack::get())
        })
        .map_err(|_| KeyBackupError::BadPem {
            line,
            what: what.clone(),
        })?;
        if key.id() != Id::RSA {
            return Err(KeyBackupError::NotRsa { line, what });
        }
        keys.push((line, key));
    }
    Ok(keys)
}

/// `(offset, label, whole block text)` for each `-----BEGIN label-----` … `-----END label-----`.
fn pem_blocks(text: &str) -> Vec<(usize, String, &str)> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("-----BEGIN ") {
        let start = from + found;
        let after = &text[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = text[start..].find(&end_marker) else {
            break;
        };
        let block_end = start + end + end_marker.len();
        blocks.push((start, label.to_owned(), &text[start..block_end]));
        from = block_end;
    }
    blocks
}

/// Bitnami keys held for opening; remembers which key opened the last value and tries it first.
#[derive(Debug, Default)]
pub struct BitnamiKeyRing {
    keys: Vec<BitnamiKey>,
    last_opened: AtomicUsize,
}

impl BitnamiKeyRing {
    pub fn new(keys: Vec<BitnamiKey>) -> Self {
        BitnamiKeyRing {
            keys,
            last_opened: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[BitnamiKey] {
        &self.keys
    }

    /// Indexes in the order to try: the key that opened the last value first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self
            .last_opened
            .load(Ordering::Relaxed)
            .min(self.keys.len());
        (first..self.keys.len()).chain(0..first)
    }

    /// As [`Self::order`], but the key named `preferred` (the one that opened this object
    /// last time, say) before all others.
    fn order_preferring<'a>(&'a self, preferred: Option<&str>) -> impl Iterator<Item = usize> + 'a {
        let first = preferred.and_then(|name| self.keys.iter().position(|k| k.name == name));
        first
            .into_iter()
            .chain(self.order().filter(move |i| Some(*i) != first))
    }
}

/// A value opened by [`open_value`]: the plaintext (zeroized on drop) and the key that opened it.
pub struct OpenedBitnami {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub opened_with: String,
}

impl fmt::Debug for OpenedBitnami {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::value::debug_opened(f, "OpenedBitnami", &self.plaintext, &self.opened_with)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitnamiOpenError {
    #[error("is not valid base64")]
    NotBase64,
    #[error(
        "is {0} bytes: too short for a Bitnami sealed value (length, RSA ciphertext, AES-GCM tag)"
    )]
    TooShort(usize),
    #[error(
        "declares a {declared}-byte RSA ciphertext but {available} bytes follow: the value is truncated or damaged"
    )]
    BadLength { declared: usize, available: usize },
    #[error("no Bitnami key to open it with: pass --bitnami-keys BACKUP")]
    NoKeys,
    #[error(
        "opens with none of the {tried} Bitnami key(s) for {sealed_for}: it was sealed with another key, for another place or scope, or it is damaged"
    )]
    NoKeyOpens { tried: usize, sealed_for: String },
    #[error(
        "its RSA part opens with Bitnami key '{0}' but its AES-GCM part fails authentication: the value is damaged or tampered with"
    )]
    Tampered(String),
    #[error(
        "its RSA part opens with Bitnami key '{key}' but holds {len} bytes, not a {SESSION_KEY_BYTES}-byte AES key: it was not sealed by kubeseal"
    )]
    BadSessionKey { key: String, len: usize },
}

/// Where a value must have been sealed for, in words, for [`BitnamiOpenError::NoKeyOpens`].
fn sealed_for(scope: Scope, target: &Target) -> String {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    match scope {
        Scope::Strict => format!("{namespace}/{} (strict scope)", target.name),
        Scope::NamespaceWide => format!("namespace {namespace} (namespace-wide scope)"),
        Scope::ClusterWide => "any place (cluster-wide scope)".into(),
    }
}

/// Opens one Bitnami value (base64 of `spec.encryptedData.<item>`) of a SealedSecret at
/// `target` with `scope`, trying each held key, the last one that worked first.
pub fn open_value(
    ciphertext: &str,
    scope: Scope,
    target: &Target,
    ring: &BitnamiKeyRing,
) -> Result<OpenedBitnami, BitnamiOpenError> {
    open_value_preferring(ciphertext, scope, target, ring, None)
}

/// As [`open_value`], trying the key named `preferred` first (Bitnami values record no key
/// id: a controller remembers per object which key opened it, so each value costs one RSA
/// decryption rather than one per key held).
pub fn open_value_preferring(
    ciphertext: &str,
    scope: Scope,
    target: &Target,
    ring: &BitnamiKeyRing,
    preferred: Option<&str>,
) -> Result<OpenedBitnami, BitnamiOpenError> {
    let blob = BASE64
        .decode(ciphertext.trim())
        .map_err(|_| BitnamiOpenError::NotBase64)?;
    if blob.len() < LENGTH_PREFIX_BYTES + GCM_TAG_BYTES {
        return Err(BitnamiOpenError::TooShort(blob.len()));
    }
    let declared = usize::from(u16::from_be_bytes([blob[0], blob[1]]));
    let rest = &blob[LENGTH_PREFIX_BYTES..];
    if rest.len() < declared + GCM_TAG_BYTES {
        return Err(BitnamiOpenError::BadLength {
            declared,
            available: rest.len(),
        });
    }
    let (wrapped, sealed) = rest.split_at(declared);
    if ring.is_empty() {
        return Err(BitnamiOpenError::NoKeys);
    }
    let label = oaep_label(scope, target);
    for index in ring.order_preferring(preferred) {
        let key = &ring.keys[index];
        let Some(session_key) = rsa_oaep_decrypt(&key.key, wrapped, &label) else {
            continue;
        };
        ring.last_opened.store(index, Ordering::Relaxed);
        if session_key.len() != SESSION_KEY_BYTES {
            return Err(BitnamiOpenError::BadSessionKey {
                key: key.name.clone(),
                len: session_key.len(),
            });
        }
        let (body, tag) = sealed.split_at(sealed.len() - GCM_TAG_BYTES);
        let plaintext = decrypt_aead(
            Cipher::aes_256_gcm(),
            &session_key,
            Some(&NONCE),
            &[],
            body,
            tag,
        )
        .map(Zeroizing::new)
        .map_err(|_| BitnamiOpenError::Tampered(key.name.clone()))?;
        return Ok(OpenedBitnami {
            plaintext,
            opened_with: key.name.clone(),
        });
    }
    Err(BitnamiOpenError::NoKeyOpens {
        tried: ring.len(),
        sealed_for: sealed_for(scope, target),
    })
}

/// RSA-OAEP(SHA-256, MGF1-SHA-256, `label`) decryption; None when it does not open (wrong
/// key, wrong label or damaged: OpenSSL does not say which, by design).
fn rsa_oaep_decrypt(
    key: &PKey<Private>,
    wrapped: &[u8],
    label: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let mut ctx = PkeyCtx::new(key).ok()?;
    ctx.decrypt_init().ok()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
    ctx.set_rsa_oaep_md(Md::sha256()).ok()?;
    ctx.set_rsa_mgf1_md(Md::sha256()).ok()?;
    if !label.is_empty() {
        ctx.set_rsa_oaep_label(label).ok()?;
    }
    let mut out = Zeroizing::new(vec![0u8; key.size()]);
    let len = ctx.decrypt(wrapped, Some(&mut out)).ok()?;
    out.truncate(len);
    Some(out)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigrateError {
    #[error("has no metadata.name")]
    NoName,
    #[error("has no spec.encryptedData items")]
    Empty,
    #[error(
        "uses spec.template.data (Go templates over the opened items: {0}), which Sealant cannot carry yet: render those items into plain ones with kubeseal, or keep this object on Bitnami"
    )]
    TemplateData(String),
    #[error(
        "uses the pre-v0.7 spec.data format (the whole Secret as one blob): re-seal it with a current kubeseal first"
    )]
    LegacyData,
    #[error("item '{item}' {reason}")]
    Open {
        item: String,
        reason: BitnamiOpenError,
    },
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(transparent)]
    Seal(#[from] ConvertError),
}

/// A Bitnami SealedSecret carried over: the Sealant SealedSecret and the Bitnami keys that
/// opened its values (sorted, once each).
#[derive(Debug)]
pub struct Migrated {
    pub sealed: SealedSecret,
    pub opened_with: Vec<String>,
}

/// Opens every value of `bitnami` with `ring` and seals it again for Sealant, to `recipients`,
/// keeping name, namespace, scope, labels and annotations, and the template's metadata, type
/// and immutability. Nothing is returned unless every value opened.
pub fn migrate(
    bitnami: &BitnamiSealedSecret,
    ring: &BitnamiKeyRing,
    recipients: &[Recipient],
) -> Result<Migrated, MigrateError> {
    let OpenedItems {
        name,
        scope,
        items,
        opened_with,
    } = open_items(bitnami, ring, None)?;
    // The cluster would make an empty Secret of it; a migrated file would be empty.
    if items.is_empty() {
        return Err(MigrateError::Empty);
    }
    let template = &bitnami.spec.template;
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut sealed = SealedSecret::new(
        &name,
        SealedSecretSpec {
            scope,
            template: SecretTemplate {
                metadata: TemplateMetadata {
                    labels: template_meta.labels.unwrap_or_default(),
                    annotations: kept_annotations(template_meta.annotations),
                },
                type_: template.type_.clone().filter(|t| !t.is_empty()),
                immutable: template.immutable,
            },
            ..Default::default()
        },
    );
    sealed.metadata.namespace = bitnami.metadata.namespace.clone();
    let labels = bitnami.metadata.labels.clone().unwrap_or_default();
    sealed.metadata.labels = (!labels.is_empty()).then_some(labels);
    let annotations = kept_annotations(bitnami.metadata.annotations.clone());
    sealed.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    seal_items(&mut sealed, items, recipients)?;
    Ok(Migrated {
        sealed,
        opened_with,
    })
}

/// Every value of a Bitnami SealedSecret, opened: what its Secret's data is.
/// Debug shows item names and sizes only.
pub struct OpenedItems {
    pub name: String,
    pub scope: Scope,
    pub items: Items,
    /// The Bitnami keys that opened its values (sorted, once each).
    pub opened_with: Vec<String>,
}

impl fmt::Debug for OpenedItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: BTreeMap<&str, usize> = self
            .items
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect();
        f.debug_struct("OpenedItems")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("item_bytes", &sizes)
            .field("opened_with", &self.opened_with)
            .finish()
    }
}

/// Opens every value of `bitnami` for its own place and scope, `preferred` key first; all
/// or nothing. Refuses what Sealant cannot reproduce (template data, the pre-v0.7 format).
pub fn open_items(
    bitnami: &BitnamiSealedSecret,
    ring: &BitnamiKeyRing,
    preferred: Option<&str>,
) -> Result<OpenedItems, MigrateError> {
    let name = non_empty(&bitnami.metadata.name)
        .ok_or(MigrateError::NoName)?
        .to_owned();
    if bitnami.spec.data.as_ref().is_some_and(|d| !d.is_null()) {
        return Err(MigrateError::LegacyData);
    }
    if let Some(data) = bitnami
        .spec
        .template
        .data
        .as_ref()
        .filter(|d| !d.is_empty())
    {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(MigrateError::TemplateData(keys.join(", ")));
    }
    let scope = bitnami.scope();
    let target = bitnami.target();
    Binding::new(scope, &target)?;
    let mut items = Items::new();
    let mut opened_with = Vec::new();
    let mut preferred = preferred.map(str::to_owned);
    for (item, ciphertext) in &bitnami.spec.encrypted_data {
        let opened = open_value_preferring(ciphertext, scope, &target, ring, preferred.as_deref())
            .map_err(|reason| MigrateError::Open {
                item: item.clone(),
                reason,
            })?;
        if !opened_with.contains(&opened.opened_with) {
            opened_with.push(opened.opened_with.clone());
        }
        preferred = Some(opened.opened_with);
        items.insert(item.clone(), opened.plaintext);
    }
    opened_with.sort();
    Ok(OpenedItems {
        name,
        scope,
        items,
        opened_with,
    })
}

fn kept_annotations(annotations: Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut annotations = annotations.unwrap_or_default();
    annotations.retain(|k, _| !DROPPED_ANNOTATIONS.contains(&k.as_str()));
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::encrypt::Encrypter;
    use openssl::rsa::Rsa;
    use openssl::symm::encrypt_aead;

    use crate::keys::{KeyRing, generate_key};

    /// A test key; 2048 bits keeps the tests quick (Bitnami uses 4096).
    fn key(name: &str) -> BitnamiKey {
        let rsa = Rsa::generate(2048).expect("generates");
        BitnamiKey {
            name: name.into(),
            key: PKey::from_rsa(rsa).expect("wraps"),
        }
    }

    /// Seals as kubeseal does, to `public_key_pem`: an independent producer is used in the CLI
    /// tests (kubesealpy).
    fn seal(key: &BitnamiKey, label: &[u8], value: &[u8]) -> String {
        let public = PKey::public_key_from_pem(&key.public_key_pem()).unwrap();
        let session = [7u8; SESSION_KEY_BYTES];
        let mut enc = Encrypter::new(&public).unwrap();
        enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        enc.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
        enc.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
        if !label.is_empty() {
            enc.set_rsa_oaep_label(label).unwrap();
        }
        let mut wrapped = vec![0; enc.encrypt_len(&session).unwrap()];
        let n = enc.encrypt(&session, &mut wrapped).unwrap();
        wrapped.truncate(n);
        let mut tag = [0u8; GCM_TAG_BYTES];
        let body = encrypt_aead(
            Cipher::aes_256_gcm(),
            &session,
            Some(&NONCE),
            &[],
            value,
            &mut tag,
        )
        .unwrap();
        let mut blob = (wrapped.len() as u16).to_be_bytes().to_vec();
        blob.extend(wrapped);
        blob.extend(body);
        blob.extend(tag);
        BASE64.encode(blob)
    }

    #[test]
    fn labels_follow_the_scope() {
        let t = Target::new("prod", "db");
        assert_eq!(oaep_label(Scope::Strict, &t), b"prod/db");
        assert_eq!(oaep_label(Scope::NamespaceWide, &t), b"prod");
        assert_eq!(oaep_label(Scope::ClusterWide, &t), b"");
    }

    #[test]
    fn cluster_wide_annotation_wins_and_only_true_counts() {
        let mut a = BTreeMap::new();
        assert_eq!(scope_from_annotations(&a), None);
        a.insert(NAMESPACE_WIDE_ANNOTATION.to_owned(), "yes".to_owned());
        assert_eq!(scope_from_annotations(&a), None);
        a.insert(NAMESPACE_WIDE_ANNOTATION.to_owned(), "true".to_owned());
        assert_eq!(scope_from_annotations(&a), Some(Scope::NamespaceWide));
        a.insert(CLUSTER_WIDE_ANNOTATION.to_owned(), "true".to_owned());
        assert_eq!(scope_from_annotations(&a), Some(Scope::ClusterWide));
    }

    #[test]
    fn an_explicit_scope_must_agree_with_the_annotation() {
        let mut a = BTreeMap::new();
        a.insert(NAMESPACE_WIDE_ANNOTATION.to_owned(), "true".to_owned());
        assert_eq!(resolve_scope(None, None), Ok(Scope::Strict));
        assert_eq!(resolve_scope(None, Some(&a)), Ok(Scope::NamespaceWide));
        assert_eq!(
            resolve_scope(Some(Scope::NamespaceWide), Some(&a)),
            Ok(Scope::NamespaceWide)
        );
        assert_eq!(
            resolve_scope(Some(Scope::ClusterWide), Some(&a))
                .unwrap_err()
                .to_string(),
            "--scope cluster-wide, but its annotation sealedsecrets.bitnami.com/namespace-wide says namespace-wide: drop one"
        );
        let mut c = BTreeMap::new();
        c.insert(CLUSTER_WIDE_ANNOTATION.to_owned(), "true".to_owned());
        assert_eq!(
            resolve_scope(Some(Scope::Strict), Some(&c))
                .unwrap_err()
                .to_string(),
            "--scope strict, but its annotation sealedsecrets.bitnami.com/cluster-wide says cluster-wide: drop one"
        );
    }

    #[test]
    fn only_sealed_secrets_of_the_bitnami_group_are_bitnamis() {
        assert!(is_bitnami_sealed_secret(
            Some("bitnami.com/v1alpha1"),
            "SealedSecret"
        ));
        // Another version of the group is still Bitnami's; a look-alike group is not.
        assert!(is_bitnami_sealed_secret(
            Some("bitnami.com/v1"),
            "SealedSecret"
        ));
        for (api_version, kind) in [
            (Some("sealant.dev/v1alpha1"), "SealedSecret"),
            (Some("bitnami.com.evil/v1alpha1"), "SealedSecret"),
            (Some("bitnami.com/v1alpha1"), "Secret"),
            (Some("v1"), "Secret"),
            (None, "SealedSecret"),
        ] {
            assert!(
                !is_bitnami_sealed_secret(api_version, kind),
                "{api_version:?} {kind}"
            );
        }
    }

    #[test]
    fn opens_with_the_right_key_and_tries_it_first_next_time() {
        let (old, new) = (key("old"), key("new"));
        let t = Target::new("prod", "db");
        let ct = seal(&new, b"prod/db", b"s3cr3t\0\xff");
        let ring = BitnamiKeyRing::new(vec![old, new]);
        assert_eq!((ring.len(), ring.is_empty()), (2, false));
        assert!(BitnamiKeyRing::new(Vec::new()).is_empty());
        let opened = open_value(&ct, Scope::Strict, &t, &ring).unwrap();
        assert_eq!(&opened.plaintext[..], b"s3cr3t\0\xff");
        assert_eq!(opened.opened_with, "new");
        assert_eq!(ring.order().collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(
            format!("{opened:?}"),
            r#"OpenedBitnami { plaintext: <8 bytes>, opened_with: "new" }"#
        );
    }

    #[test]
    fn a_preferred_key_is_tried_first_and_an_unknown_one_changes_nothing() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let ring = BitnamiKeyRing::new(vec![a, b, c]);
        let order = |p: Option<&str>| ring.order_preferring(p).collect::<Vec<_>>();
        assert_eq!(order(None), [0, 1, 2]);
        assert_eq!(order(Some("c")), [2, 0, 1]);
        assert_eq!(order(Some("gone")), [0, 1, 2]);
        ring.last_opened.store(1, Ordering::Relaxed);
        assert_eq!(order(Some("c")), [2, 1, 0]);
        let t = Target::new("prod", "db");
        let ct = seal(&ring.keys()[2], b"prod/db", b"v");
        let opened = open_value_preferring(&ct, Scope::Strict, &t, &ring, Some("c")).unwrap();
        assert_eq!(opened.opened_with, "c");
    }

    #[test]
    fn a_value_moved_to_another_place_or_scope_does_not_open() {
        let k = key("k");
        let ct = seal(&k, b"prod/db", b"v");
        let ring = BitnamiKeyRing::new(vec![k]);
        let err = open_value(&ct, Scope::Strict, &Target::new("dev", "db"), &ring).unwrap_err();
        assert_eq!(
            err.to_string(),
            "opens with none of the 1 Bitnami key(s) for dev/db (strict scope): it was sealed with another key, for another place or scope, or it is damaged"
        );
        assert!(open_value(&ct, Scope::ClusterWide, &Target::new("prod", "db"), &ring).is_err());
    }

    #[test]
    fn damage_is_named() {
        let k = key("k");
        let ct = seal(&k, b"", b"value");
        let ring = BitnamiKeyRing::new(vec![k]);
        let t = Target::new("a", "b");
        let mut blob = BASE64.decode(&ct).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(
            open_value(&BASE64.encode(&blob), Scope::ClusterWide, &t, &ring).unwrap_err(),
            BitnamiOpenError::Tampered("k".into())
        );
        blob[0] = 0xff;
        assert!(matches!(
            open_value(&BASE64.encode(&blob), Scope::ClusterWide, &t, &ring),
            Err(BitnamiOpenError::BadLength {
                declared: 0xff00,
                ..
            })
        ));
        assert_eq!(
            open_value("!!", Scope::ClusterWide, &t, &ring).unwrap_err(),
            BitnamiOpenError::NotBase64
        );
        assert_eq!(
            open_value("AAE=", Scope::ClusterWide, &t, &ring).unwrap_err(),
            BitnamiOpenError::TooShort(2)
        );
        // At exactly the sizes the format allows, the length checks pass and the keys are tried.
        let no_key_opens = BitnamiOpenError::NoKeyOpens {
            tried: 1,
            sealed_for: "any place (cluster-wide scope)".into(),
        };
        for blob in [
            vec![0u8; 2 + GCM_TAG_BYTES],
            [&[0u8, 2][..], &[0; 2 + GCM_TAG_BYTES]].concat(),
        ] {
            assert_eq!(
                open_value(&BASE64.encode(&blob), Scope::ClusterWide, &t, &ring).unwrap_err(),
                no_key_opens,
                "{} bytes",
                blob.len()
            );
        }
    }

    #[test]
    fn key_backups_in_every_shape() {
        let k = key("k");
        let pkcs1 = String::from_utf8(k.key.rsa().unwrap().private_key_to_pem().unwrap()).unwrap();
        let pkcs8 = String::from_utf8(k.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert!(pkcs1.contains("RSA PRIVATE KEY") && !pkcs8.contains("RSA PRIVATE KEY"));
        let keys = parse_key_backup(&format!("{pkcs1}{pkcs8}"), "k.pem").unwrap();
        let names: Vec<&str> = keys.iter().map(BitnamiKey::name).collect();
        let lines = pkcs1.lines().count() + 1;
        assert_eq!(names, ["k.pem:1".to_owned(), format!("k.pem:{lines}")]);
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  metadata:\n    name: sealed-secrets-keyabcde\n    labels: {{{KEY_LABEL}: active}}\n  data:\n    tls.crt: \"\"\n    tls.key: {}\n",
            BASE64.encode(&pkcs1)
        );
        let keys = parse_key_backup(&list, "backup.yaml").unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name(), "sealed-secrets-keyabcde");
        assert!(!format!("{keys:?}").contains("PRIVATE"));
        // A Secret whose tls.key holds two keys: each is named by its place in it.
        let two = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: both}}\ndata: {{tls.key: {}}}\n",
            BASE64.encode(format!("{pkcs1}{pkcs8}"))
        );
        let names: Vec<String> = parse_key_backup(&two, "f")
            .unwrap()
            .iter()
            .map(|k| k.name().to_owned())
            .collect();
        assert_eq!(names, ["both#1", "both#2"]);
        assert_eq!(
            parse_key_backup("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", "f")
                .unwrap_err(),
            KeyBackupError::NoTlsKey {
                line: 1,
                name: "x".into()
            }
        );
        assert_eq!(
            parse_key_backup("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n", "f.pem").unwrap_err(),
            KeyBackupError::Encrypted {
                line: 1,
                what: String::new()
            }
        );
        assert_eq!(
            parse_key_backup("kind: ConfigMap\n", "f").unwrap_err(),
            KeyBackupError::NotASecret {
                line: 1,
                kind: "ConfigMap".into()
            }
        );
        assert_eq!(
            parse_key_backup("apiVersion: v1\nkind: List\nitems: []\n", "f").unwrap_err(),
            KeyBackupError::NoKeys
        );
        // An item of a List is named by its own line, here in the second document.
        let second = "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: List\n\
            items:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n";
        assert_eq!(
            parse_key_backup(second, "f").unwrap_err(),
            KeyBackupError::NotASecret {
                line: 8,
                kind: "ConfigMap".into()
            }
        );
    }

    #[test]
    fn lists_are_read_item_by_item_with_each_items_own_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
            apiVersion: v1\nkind: List\nitems:\n\
            - apiVersion: bitnami.com/v1alpha1\n  kind: SealedSecret\n  metadata: {name: db, namespace: prod}\n  spec: {encryptedData: {}}\n\
            - apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n---\n\
            apiVersion: example.com/v1\nkind: WidgetList\nitems: []\n";
        let read: Vec<(usize, String)> = read_objects(text)
            .unwrap()
            .into_iter()
            .map(|o| match o.value {
                BitnamiObject::SealedSecret(b) => (o.line, format!("Bitnami {}", b.target())),
                BitnamiObject::Other(kind) => (o.line, kind),
            })
            .collect();
        // Only a v1 List is unpacked; another group's *List is one object of its kind.
        assert_eq!(
            read,
            [
                (1, "ConfigMap".to_owned()),
                (8, "Bitnami prod/db".to_owned()),
                (12, "Secret".to_owned()),
                (16, "WidgetList".to_owned()),
            ]
        );
    }

    #[test]
    fn a_keys_size_is_its_modulus_in_bits_and_its_debug_shows_only_that_and_its_name() {
        let k = key("k");
        assert_eq!(k.bits(), 2048);
        assert_eq!(
            format!("{k:?}"),
            r#"BitnamiKey { name: "k", bits: 2048, .. }"#
        );
    }

    #[test]
    fn pre_v07_spec_data_is_refused_by_name() {
        let yaml = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec: {data: AAAA}\n";
        let BitnamiObject::SealedSecret(b) = &read_objects(yaml).unwrap()[0].value else {
            panic!("not read as Bitnami")
        };
        let ring = BitnamiKeyRing::new(vec![key("k")]);
        assert!(matches!(
            open_items(b, &ring, None),
            Err(MigrateError::LegacyData)
        ));
    }

    #[test]
    fn migrates_keeping_place_scope_and_template() {
        let k = key("k");
        let yaml = format!(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: prod\n  annotations:\n    {NAMESPACE_WIDE_ANNOTATION}: \"true\"\n    team: a\nspec:\n  encryptedData:\n    pw: {}\n  template:\n    type: kubernetes.io/basic-auth\n    immutable: true\n    metadata:\n      name: db\n      labels: {{app: db}}\n",
            seal(&k, b"prod", b"pw!")
        );
        let objects = read_objects(&yaml).unwrap();
        let BitnamiObject::SealedSecret(b) = &objects[0].value else {
            panic!("not read as Bitnami")
        };
        let ring = BitnamiKeyRing::new(vec![k]);
        let age = generate_key("t");
        let opened = open_items(b, &ring, None).unwrap();
        assert_eq!(
            format!("{opened:?}"),
            r#"OpenedItems { name: "db", scope: NamespaceWide, item_bytes: {"pw": 3}, opened_with: ["k"] }"#,
            "sizes, never values"
        );
        let m = migrate(b, &ring, std::slice::from_ref(&age.recipient)).unwrap();
        assert_eq!(m.opened_with, ["k"]);
        let s = &m.sealed;
        assert_eq!(s.spec.scope, Scope::NamespaceWide);
        assert_eq!(s.metadata.labels, None, "no labels in, none out");
        assert_eq!(s.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(
            s.metadata
                .annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["team"]
        );
        assert_eq!(
            s.spec.template.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(s.spec.template.immutable, Some(true));
        assert_eq!(s.spec.template.metadata.labels["app"], "db");
        let mut keys = KeyRing::new();
        keys.insert(age.identity);
        let opened = crate::value::open_value(
            &s.spec.encrypted_data["pw"],
            &s.spec.recipients["pw"],
            Scope::NamespaceWide,
            &Target::new("prod", "other"),
            &keys,
        )
        .unwrap();
        assert_eq!(&opened.plaintext[..], b"pw!");
    }

    #[test]
    fn template_data_is_refused_by_name() {
        let b: BitnamiSealedSecret = serde_json::from_str(
            r#"{"metadata":{"name":"db","namespace":"p"},"spec":{"encryptedData":{"a":"AA=="},"template":{"data":{"url":"{{ .a }}"}}}}"#,
        )
        .unwrap();
        let err = migrate(&b, &BitnamiKeyRing::new(vec![]), &[]).unwrap_err();
        assert_eq!(err, MigrateError::TemplateData("url".into()));
    }

    /// OpenSSL releases before 3.0.8 leak timing in RSA decryption (CVE-2022-4304, all paddings):
    /// the build must link a fixed one (Debian 12 ships 3.0.x with the fix).
    #[test]
    fn linked_openssl_has_the_rsa_timing_fix() {
        let v = openssl::version::number();
        assert!(v >= 0x3000_0080, "OpenSSL {:#x} predates 3.0.8", v);
    }
}
