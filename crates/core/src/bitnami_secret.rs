//! What `seal-controller --bitnami` does for a Bitnami SealedSecret (`bitnami.com/v1alpha1`),
//! as pure functions: the Secret it stands for (as Bitnami's controller makes it: the
//! template's metadata, type and immutability, the opened items, a controller ownerReference
//! to the Bitnami object), the status to report on it, and the key Secrets imported Bitnami
//! keys live in. The controller's `bitnami` module performs the I/O these decide; whether an
//! existing Secret may be written is [`crate::reconcile::plan_for`]'s.
//!
//! Imported keys only open. They are labelled [`IMPORTED_KEY_LABEL`], never Sealant's key
//! label, so Sealant's key set (the recipients it seals to and publishes) never sees them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::bitnami::{BitnamiKey, BitnamiSealedSecret, KeyBackupError, OpenedItems};
use crate::conditions::{Health, conditions};
use crate::crd::SealedSecretStatus;
use crate::reconcile::{Claim, is_reserved};

/// The label on a Secret holding an imported Bitnami key (`"true"`).
pub const IMPORTED_KEY_LABEL: &str = "sealant.dev/bitnami-key";
/// Imported key Secrets are named this and the first 16 hex digits of the key's fingerprint,
/// so importing a key twice finds the Secret it made the first time.
pub const IMPORTED_KEY_NAME_PREFIX: &str = "sealant-bitnami-key-";
/// On an imported key Secret: where the key came from (its Bitnami Secret's name, or file).
pub const IMPORTED_FROM_ANNOTATION: &str = "sealant.dev/bitnami-key-source";
/// The PEM private key in an imported key Secret, as in Bitnami's own key Secrets.
pub const KEY_DATA: &str = "tls.key";
/// On a pre-existing Secret: `"true"` lets the Bitnami object take it over (Bitnami's own
/// annotation, so Secrets already marked for Bitnami's controller behave the same).
pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";
/// In the template's annotations: `"true"` leaves the ownerReference off (Bitnami's own).
pub const SKIP_OWNER_ANNOTATION: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
pub const KIND: &str = "SealedSecret";
/// The condition Bitnami's controller writes; kept so tools that read it go on working.
pub const SYNCED: &str = "Synced";

const FINGERPRINT_DIGITS: usize = 16;

/// The name of the Secret an imported key is stored in.
pub fn imported_key_name(key: &BitnamiKey) -> String {
    format!(
        "{IMPORTED_KEY_NAME_PREFIX}{}",
        &key.fingerprint()[..FINGERPRINT_DIGITS]
    )
}

/// The Secret an imported Bitnami key is stored in, in the controller's namespace.
pub fn imported_key_secret(namespace: &str, key: &BitnamiKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(imported_key_name(key)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                IMPORTED_KEY_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                IMPORTED_FROM_ANNOTATION.to_owned(),
                key.name().to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY_DATA.to_owned(),
            ByteString(key.private_key_pem().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Does `existing` hold the same key as `wanted` (so an import has nothing to do)?
pub fn same_imported_key(existing: &Secret, wanted: &Secret) -> bool {
    let key = |s: &Secret| s.data.as_ref().and_then(|d| d.get(KEY_DATA)).cloned();
    let labelled = existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(IMPORTED_KEY_LABEL))
        .is_some_and(|v| v == "true");
    labelled && key(existing).is_some() && key(existing) == key(wanted)
}

/// Why an imported key Secret was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportedKeyError {
    #[error(
        "was generated from a SealedSecret: a sealed object must never plant a key, so it is ignored"
    )]
    Generated,
    #[error("has no data.{KEY_DATA}: import keys with seal-controller import-bitnami-keys")]
    NoKey,
    #[error("{0}")]
    Unreadable(KeyBackupError),
}

/// The Bitnami key a labelled Secret holds, named after the Secret. Secrets a sealed object
/// generated (an ownerReference to a SealedSecret of either kind, or Sealant's managed-by
/// label) are refused: a template must not be able to plant a key.
pub fn imported_key(secret: &Secret) -> Result<BitnamiKey, ImportedKeyError> {
    let generated = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::reconcile::MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == crate::reconcile::MANAGED_BY_LABEL.1)
        || secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.kind == KIND);
    if generated {
        return Err(ImportedKeyError::Generated);
    }
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_DATA))
        .ok_or(ImportedKeyError::NoKey)?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&pem.0).into_owned());
    let name = secret.metadata.name.clone().unwrap_or_default();
    let mut keys =
        crate::bitnami::parse_key_backup(&text, &name).map_err(ImportedKeyError::Unreadable)?;
    // One key per Secret, as the import writes them.
    Ok(keys.swap_remove(0))
}

/// The object a Bitnami Secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

/// What may write a Secret for a Bitnami object: the Secrets it controls and those
/// annotated [`MANAGED_ANNOTATION`].
pub fn claim(owner: &Owner) -> Claim<'_> {
    Claim {
        uid: Some(&owner.uid),
        takeover_annotation: MANAGED_ANNOTATION,
        adopts_kept: false,
    }
}

/// The Secret a Bitnami SealedSecret stands for, as Bitnami's controller makes it
/// (`SealedSecret.Unseal`): the template's labels and annotations, type and immutability,
/// its own name and namespace, the opened items, and a controller ownerReference to it
/// unless the template says [`SKIP_OWNER_ANNOTATION`]. Labels and annotations that would
/// plant a key or claim a Sealant takeover are dropped.
pub fn desired_secret(
    bitnami: &BitnamiSealedSecret,
    owner: &Owner,
    opened: &OpenedItems,
) -> Secret {
    let template = &bitnami.spec.template;
    let meta = template.metadata.clone().unwrap_or_default();
    let kept = |map: Option<BTreeMap<String, String>>| {
        let mut map = map.unwrap_or_default();
        map.retain(|k, _| !is_reserved(k));
        (!map.is_empty()).then_some(map)
    };
    let skip_owner = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_OWNER_ANNOTATION))
        .is_some_and(|v| v == "true");
    let owner_references = (!skip_owner).then(|| {
        vec![OwnerReference {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(opened.name.clone()),
            namespace: bitnami.metadata.namespace.clone(),
            labels: kept(meta.labels),
            annotations: kept(meta.annotations),
            owner_references,
            ..Default::default()
        },
        type_: template.type_.clone().filter(|t| !t.is_empty()),
        immutable: template.immutable,
        data: Some(
            opened
                .items
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The status to write on a Bitnami object for `health`: Bitnami's `Synced` condition (no
/// message when in place, as Bitnami writes it) and the kstatus conditions Sealant
/// objects carry (`Ready`, plus `Reconciling` or `Stalled`), in the fields Bitnami's CRD
/// keeps (its schema prunes anything else). Times move only when a status flips.
pub fn status(
    previous: Option<&Value>,
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Value {
    let previous_conditions: Vec<Value> = previous
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Bitnami's own conditions lack fields a kstatus condition has: only ours are read back.
    let ours = SealedSecretStatus {
        conditions: previous_conditions
            .iter()
            .filter_map(|c| serde_json::from_value(c.clone()).ok())
            .collect(),
        ..Default::default()
    };
    let mut kstatus = conditions(Some(&ours), health, None, now);
    for c in &mut kstatus {
        c.observed_generation = None;
    }
    let (synced, message) = match health {
        Health::Ready { .. } => ("True", ""),
        Health::Failed { message, .. } => ("False", *message),
    };
    let old_synced = previous_conditions
        .iter()
        .find(|c| c["type"] == SYNCED)
        .filter(|c| c["status"] == synced);
    let since = old_synced
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .filter(|t| !t.is_null())
        .unwrap_or_else(|| serde_json::to_value(Time(now)).expect("a time serializes"));
    let mut synced = json!({
        "type": SYNCED,
        "status": synced,
        "lastTransitionTime": since,
        "lastUpdateTime": since,
    });
    // Bitnami's Go type omits an empty message (`omitempty`).
    if !message.is_empty() {
        synced["message"] = json!(message);
    }
    let mut all = vec![synced];
    all.extend(
        kstatus
            .iter()
            .map(|c| serde_json::to_value(c).expect("a condition serializes")),
    );
    let mut status = json!({ "conditions": all });
    if let Some(generation) = generation {
        status["observedGeneration"] = json!(generation);
    }
    status
}

/// Does `new` say anything `old` does not? Times alone are not news.
pub fn status_changed(old: Option<&Value>, new: &Value) -> bool {
    old.map(without_times) != Some(without_times(new))
}

fn without_times(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastTransitionTime");
                c.remove("lastUpdateTime");
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitnami::{BitnamiKeyRing, open_items, parse_key_backup};
    use crate::reason::Reason;
    use crate::reconcile::{Plan, plan_for};
    use openssl::rsa::Rsa;

    fn key(name: &str) -> BitnamiKey {
        let pem = Rsa::generate(2048).unwrap().private_key_to_pem().unwrap();
        parse_key_backup(std::str::from_utf8(&pem).unwrap(), name)
            .unwrap()
            .remove(0)
    }

    fn owner() -> Owner {
        Owner {
            name: "db".into(),
            uid: "uid-b".into(),
        }
    }

    fn bitnami(template: Value) -> BitnamiSealedSecret {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"encryptedData": {}, "template": template}
        }))
        .unwrap()
    }

    fn opened(b: &BitnamiSealedSecret) -> OpenedItems {
        let mut opened = open_items(b, &BitnamiKeyRing::new(vec![]), None).unwrap();
        opened.items.insert(
            "pw".into(),
            zeroize::Zeroizing::new(b"s3cr3t\0\xff".to_vec()),
        );
        opened
    }

    #[test]
    fn the_secret_is_bitnamis_owned_by_the_bitnami_object() {
        let b = bitnami(json!({
            "type": "kubernetes.io/basic-auth", "immutable": true,
            "metadata": {"labels": {"app": "db", "sealant.dev/key": "true",
                                    "sealant.dev/bitnami-key": "true"},
                         "annotations": {"note": "kept", "sealant.dev/managed": "true"}}
        }));
        let secret = desired_secret(&b, &owner(), &opened(&b));
        assert_eq!(secret.metadata.name.as_deref(), Some("db"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.immutable, Some(true));
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["app"], "no key planted");
        let annotations = secret.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["note"]);
        assert_eq!(secret.data.as_ref().unwrap()["pw"].0, b"s3cr3t\0\xff");
        let refs = secret.metadata.owner_references.as_ref().unwrap();
        assert_eq!(
            refs,
            &[OwnerReference {
                api_version: "bitnami.com/v1alpha1".into(),
                kind: "SealedSecret".into(),
                name: "db".into(),
                uid: "uid-b".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]
        );
        assert_eq!(
            plan_for(claim(&owner()), None, secret.clone()),
            Plan::Create(Box::new(secret))
        );
    }

    #[test]
    fn skip_owner_references_leaves_the_secret_unowned() {
        let b = bitnami(json!({"metadata": {"annotations": {SKIP_OWNER_ANNOTATION: "true"}}}));
        let secret = desired_secret(&b, &owner(), &opened(&b));
        assert_eq!(secret.metadata.owner_references, None);
    }

    #[test]
    fn takeover_needs_bitnamis_managed_annotation_and_drift_is_corrected() {
        let b = bitnami(json!({}));
        let desired = desired_secret(&b, &owner(), &opened(&b));
        let mut foreign = Secret::default();
        foreign.metadata.name = Some("db".into());
        // Sealant's own annotation is not Bitnami's, nor is Sealant's label an adoption.
        foreign.metadata.annotations = Some(BTreeMap::from([(
            crate::reconcile::MANAGED_ANNOTATION.into(),
            "true".into(),
        )]));
        foreign.metadata.labels = Some(BTreeMap::from([(
            crate::reconcile::MANAGED_BY_LABEL.0.into(),
            crate::reconcile::MANAGED_BY_LABEL.1.into(),
        )]));
        assert_eq!(
            plan_for(claim(&owner()), Some(&foreign), desired.clone()),
            Plan::NotOwned
        );
        foreign.metadata.annotations =
            Some(BTreeMap::from([(MANAGED_ANNOTATION.into(), "true".into())]));
        let Plan::Update(taken) = plan_for(claim(&owner()), Some(&foreign), desired.clone()) else {
            panic!("not taken over")
        };
        assert_eq!(
            taken.metadata.owner_references,
            desired.metadata.owner_references
        );
        // Owned now: an edited value is put back, an equal Secret is left alone.
        let mut drifted = desired.clone();
        drifted.metadata.resource_version = Some("9".into());
        assert_eq!(
            plan_for(claim(&owner()), Some(&drifted), desired.clone()),
            Plan::UpToDate
        );
        drifted
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), ByteString(b"x".to_vec()));
        let Plan::Update(fixed) = plan_for(claim(&owner()), Some(&drifted), desired.clone()) else {
            panic!("drift not corrected")
        };
        assert_eq!(fixed.data, desired.data);
    }

    #[test]
    fn imported_keys_are_named_by_fingerprint_and_never_sealant_keys() {
        let k = key("sealed-secrets-keyabcde");
        let secret = imported_key_secret("sealant-system", &k);
        let name = secret.metadata.name.clone().unwrap();
        assert!(name.starts_with(IMPORTED_KEY_NAME_PREFIX), "{name}");
        assert_eq!(
            name.len(),
            IMPORTED_KEY_NAME_PREFIX.len() + FINGERPRINT_DIGITS
        );
        assert_eq!(secret.metadata.namespace.as_deref(), Some("sealant-system"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.keys().collect::<Vec<_>>(), [IMPORTED_KEY_LABEL]);
        assert!(!labels.contains_key(crate::keystore::KEY_LABEL));
        assert_eq!(
            secret.metadata.annotations.as_ref().unwrap()[IMPORTED_FROM_ANNOTATION],
            "sealed-secrets-keyabcde"
        );
        // The same key again: same Secret, nothing to write.
        let again = imported_key_secret("sealant-system", &key_copy(&k));
        assert_eq!(again.metadata.name, secret.metadata.name);
        assert!(same_imported_key(&secret, &again));
        assert!(!same_imported_key(
            &secret,
            &imported_key_secret("sealant-system", &key("other"))
        ));
        // Read back, named after its Secret.
        let read = imported_key(&secret).unwrap();
        assert_eq!(read.name(), name);
        assert_eq!(read.fingerprint(), k.fingerprint());
        assert!(!format!("{read:?}").contains("PRIVATE"));
    }

    fn key_copy(k: &BitnamiKey) -> BitnamiKey {
        let pem = k.private_key_pem();
        parse_key_backup(std::str::from_utf8(&pem).unwrap(), "copy.pem")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn a_generated_secret_cannot_be_an_imported_key() {
        let mut secret = imported_key_secret("sealant-system", &key("k"));
        secret.metadata.owner_references = Some(vec![OwnerReference {
            kind: "SealedSecret".into(),
            ..Default::default()
        }]);
        assert_eq!(
            imported_key(&secret).unwrap_err(),
            ImportedKeyError::Generated
        );
        secret.metadata.owner_references = None;
        // Sealant's managed-by label marks a generated Secret; another manager's does not.
        let (label, ours) = crate::reconcile::MANAGED_BY_LABEL;
        let labels = secret.metadata.labels.get_or_insert_default();
        labels.insert(label.to_owned(), ours.to_owned());
        assert_eq!(
            imported_key(&secret).unwrap_err(),
            ImportedKeyError::Generated
        );
        let labels = secret.metadata.labels.get_or_insert_default();
        labels.insert(label.to_owned(), "helm".to_owned());
        assert!(imported_key(&secret).is_ok());
        secret.data = None;
        assert_eq!(imported_key(&secret).unwrap_err(), ImportedKeyError::NoKey);
    }

    #[test]
    fn status_has_synced_and_ready_and_only_moves_on_news() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let ok = Health::Ready {
            message: "Secret db is up to date",
        };
        let first = status(None, &ok, Some(2), t0);
        assert_eq!(
            first,
            json!({
                "observedGeneration": 2,
                "conditions": [
                    {"type": "Synced", "status": "True",
                     "lastTransitionTime": "2026-01-01T00:00:00Z",
                     "lastUpdateTime": "2026-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "True", "reason": "Unsealed",
                     "message": "Secret db is up to date",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ]
            })
        );
        let again = status(Some(&first), &ok, Some(2), t1);
        assert_eq!(again, first, "no flip: the times are kept");
        // Synced's time is Synced's own, wherever it stands among the conditions.
        let mut reordered = first.clone();
        let conditions = reordered["conditions"].as_array_mut().unwrap();
        conditions.reverse();
        conditions[0]["lastTransitionTime"] = json!("2026-01-15T00:00:00Z");
        let kept = status(Some(&reordered), &ok, Some(2), t1);
        assert_eq!(
            kept["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert!(!status_changed(Some(&first), &again));
        let failed = Health::Failed {
            reason: Reason::NoKeyOpens,
            message: "item 'pw' opens with none",
        };
        let stalled = status(Some(&first), &failed, Some(2), t1);
        assert!(status_changed(Some(&first), &stalled));
        let types: Vec<(&str, &str)> = stalled["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [("Synced", "False"), ("Ready", "False"), ("Stalled", "True")]
        );
        assert_eq!(
            stalled["conditions"][0]["message"],
            "item 'pw' opens with none"
        );
        assert_eq!(
            stalled["conditions"][0]["lastTransitionTime"],
            "2026-02-01T00:00:00Z"
        );
    }
}
