//! What the controller should do for one SealedSecret, as pure functions: the Secret it
//! wants, whether an existing Secret may be written, and whether anything needs writing at all
//! (the status to report is [`crate::conditions`]'s). The controller performs the I/O these decide.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::convert::UnsealedSecret;
use crate::crd::SealedSecret;

/// On a pre-existing Secret: `"true"` lets Sealant take it over.
pub const MANAGED_ANNOTATION: &str = "sealant.dev/managed";
/// In `spec.template.metadata.annotations`: `"true"` keeps the Secret when the SealedSecret
/// is deleted (no ownerReference, so the garbage collector leaves it).
pub const KEEP_ANNOTATION: &str = "sealant.dev/keep-on-delete";
/// Marks Secrets Sealant writes.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "sealant");

/// What to do about the Secret. Debug names the action only: the Secrets hold plaintext.
#[derive(Clone, PartialEq)]
pub enum Plan {
    Create(Box<Secret>),
    /// Replace the existing Secret (its resourceVersion is carried over).
    Update(Box<Secret>),
    /// The existing Secret is immutable, or of another type, and must change: delete, then create.
    Recreate(Box<Secret>),
    /// Already right: write nothing.
    UpToDate,
    /// A Secret of that name exists and is not ours to write.
    NotOwned,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Plan::Create(_) => "Create",
            Plan::Update(_) => "Update",
            Plan::Recreate(_) => "Recreate",
            Plan::UpToDate => "UpToDate",
            Plan::NotOwned => "NotOwned",
        })
    }
}

/// Secret types the cluster's own controllers act on. A template choosing one makes the cluster
/// mint or honour a credential: kube-controller-manager fills a `service-account-token` Secret
/// with a token for whichever ServiceAccount its annotation names, and a `bootstrap.kubernetes.io/token`
/// in kube-system is a node-join credential with the value the sealer chose. Refused unless an
/// admin allows the type (`seal-controller --allow-secret-type`).
pub const RESTRICTED_SECRET_TYPES: &[&str] = &[
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
];

/// Why a SealedSecret's template type may not be written, if it may not.
pub fn type_refusal(sealed: &SealedSecret, allowed: &[String]) -> Option<String> {
    refused_type(sealed.spec.template.type_.as_deref(), allowed)
}

/// Why a template's Secret type may not be written, if it may not (for any kind of sealed
/// object: Sealant's or Bitnami's).
pub fn refused_type(type_: Option<&str>, allowed: &[String]) -> Option<String> {
    let type_ = type_?;
    (RESTRICTED_SECRET_TYPES.contains(&type_) && !allowed.iter().any(|a| a == type_)).then(|| {
        format!(
            "template type '{type_}' makes the cluster mint or honour credentials: refused unless seal-controller runs with --allow-secret-type {type_}"
        )
    })
}

/// Labels and annotations a template may not set: they would make the generated Secret look
/// like one of the controller's keys (and so plant a sealing key, or an imported Bitnami
/// key), or claim a takeover.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(crate::keystore::KEY_LABEL)
        || key == crate::keystore::CREATED_ANNOTATION
        || key == MANAGED_ANNOTATION
        || key == crate::bitnami_secret::IMPORTED_KEY_LABEL
}

/// The Secret a SealedSecret stands for: its opened data and template, owned by it.
pub fn desired_secret(sealed: &SealedSecret, unsealed: &UnsealedSecret) -> Secret {
    let mut secret = unsealed.secret.clone();
    for map in [
        &mut secret.metadata.labels,
        &mut secret.metadata.annotations,
    ]
    .into_iter()
    .flatten()
    {
        map.retain(|k, _| !is_reserved(k));
    }
    let labels = secret.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(MANAGED_BY_LABEL.0.into(), MANAGED_BY_LABEL.1.into());
    let keep = sealed
        .spec
        .template
        .metadata
        .annotations
        .get(KEEP_ANNOTATION)
        .is_some_and(|v| v == "true");
    if !keep && let Some(owner) = sealed.controller_owner_ref(&()) {
        secret.metadata.owner_references = Some(vec![OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        }]);
    }
    secret
}

/// Is `secret` controlled by the object with `uid` (an ownerReference with controller=true)?
pub fn is_controlled_by(secret: &Secret, uid: Option<&str>) -> bool {
    let Some(uid) = uid else {
        return false;
    };
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

/// Which Secrets a sealed object may write: those it controls, and any other one annotated
/// `takeover_annotation: "true"`.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The sealed object's uid.
    pub uid: Option<&'a str>,
    pub takeover_annotation: &'a str,
    /// Also a Secret with Sealant's managed-by label and no controller (a kept Secret).
    pub adopts_kept: bool,
}

/// Decides the write for `desired` given what exists.
pub fn plan(sealed: &SealedSecret, existing: Option<&Secret>, desired: Secret) -> Plan {
    let claim = Claim {
        uid: sealed.metadata.uid.as_deref(),
        takeover_annotation: MANAGED_ANNOTATION,
        adopts_kept: true,
    };
    plan_for(claim, existing, desired)
}

/// Decides the write for `desired`, made for the object `claim` describes, given what exists.
pub fn plan_for(claim: Claim, existing: Option<&Secret>, desired: Secret) -> Plan {
    let Some(existing) = existing else {
        return Plan::Create(Box::new(desired));
    };
    let managed = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(claim.takeover_annotation))
        .is_some_and(|v| v == "true");
    if !is_controlled_by(existing, claim.uid) && !managed {
        // A kept Secret (keep-on-delete) carries our label and no controller: still ours.
        let labelled = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL.0))
            .is_some_and(|v| v == MANAGED_BY_LABEL.1);
        let controlled = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true));
        if !claim.adopts_kept || !labelled || controlled {
            return Plan::NotOwned;
        }
    }
    let mut desired = desired;
    // A takeover keeps the annotation that allowed it, so the next reconcile agrees.
    if managed {
        desired
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(claim.takeover_annotation.into(), "true".into());
    }
    if same_content(existing, &desired) {
        return Plan::UpToDate;
    }
    desired.metadata.resource_version = existing.metadata.resource_version.clone();
    let type_of = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
    // Kubernetes forbids changing any Secret's type, and an immutable Secret's data or
    // immutability; its metadata may still be updated in place.
    let frozen = existing.immutable == Some(true)
        && (existing.data != desired.data || desired.immutable != Some(true));
    if frozen || type_of(existing) != type_of(&desired) {
        desired.metadata.resource_version = None;
        return Plan::Recreate(Box::new(desired));
    }
    Plan::Update(Box::new(desired))
}

/// Everything Sealant decides about a Secret, compared exactly.
fn same_content(existing: &Secret, desired: &Secret) -> bool {
    let empty_data = BTreeMap::new();
    let data = |s: &Secret| {
        let d = s.data.as_ref().unwrap_or(&empty_data);
        d.iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let map = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    let type_of = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
    data(existing) == data(desired)
        && type_of(existing) == type_of(desired)
        && existing.immutable.unwrap_or(false) == desired.immutable.unwrap_or(false)
        && map(&existing.metadata.labels) == map(&desired.metadata.labels)
        && map(&existing.metadata.annotations) == map(&desired.metadata.annotations)
        && existing.metadata.owner_references == desired.metadata.owner_references
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{SealOptions, seal_secret, unseal};
    use crate::keys::{KeyRing, generate_key};
    use crate::manifest::{Manifest, read_manifests};
    use crate::scope::Scope;

    fn fixture(template_annotations: &str) -> (SealedSecret, Secret) {
        fixture_with_labels(template_annotations, "")
    }

    fn fixture_with_labels(
        template_annotations: &str,
        extra_labels: &str,
    ) -> (SealedSecret, Secret) {
        let key = generate_key("t");
        let yaml = format!(
            "kind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  labels: {{app: db{extra_labels}}}\n  annotations: {{{template_annotations}}}\nstringData: {{pw: x}}\n"
        );
        let Manifest::Secret(s) = read_manifests(&yaml).unwrap().remove(0).value else {
            unreachable!()
        };
        let r = [key.recipient.clone()];
        let opts = SealOptions {
            scope: Scope::Strict,
            recipients: &r,
            namespace: None,
            allow_empty: false,
        };
        let mut sealed = seal_secret(&s, &opts).unwrap();
        sealed.metadata.uid = Some("uid-1".into());
        let unsealed = unseal(&sealed, &KeyRing::from_identities([key.identity])).unwrap();
        let desired = desired_secret(&sealed, &unsealed);
        (sealed, desired)
    }

    #[test]
    fn desired_secret_is_owned_and_labelled() {
        let (sealed, desired) = fixture("");
        assert!(is_controlled_by(&desired, Some("uid-1")));
        let owner = &desired.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "SealedSecret");
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(desired.metadata.labels.as_ref().unwrap()["app"], "db");
        assert_eq!(
            plan(&sealed, None, desired.clone()),
            Plan::Create(Box::new(desired))
        );
    }

    #[test]
    fn an_up_to_date_secret_needs_no_write_and_drift_is_corrected() {
        let (sealed, desired) = fixture("");
        let mut existing = desired.clone();
        existing.metadata.resource_version = Some("7".into());
        existing.metadata.uid = Some("secret-uid".into());
        assert_eq!(
            plan(&sealed, Some(&existing), desired.clone()),
            Plan::UpToDate
        );
        existing
            .data
            .as_mut()
            .unwrap()
            .insert("pw".into(), k8s_openapi::ByteString(b"edited".to_vec()));
        let Plan::Update(fixed) = plan(&sealed, Some(&existing), desired.clone()) else {
            panic!()
        };
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(fixed.data, desired.data);
        existing.immutable = Some(true);
        assert!(matches!(
            plan(&sealed, Some(&existing), desired),
            Plan::Recreate(_)
        ));
    }

    #[test]
    fn an_immutable_secret_is_recreated_only_when_its_data_or_immutability_changes() {
        let (sealed, mut desired) = fixture("");
        desired.immutable = Some(true);
        let mut existing = desired.clone();
        existing.metadata.resource_version = Some("7".into());
        let recreates = |existing: &Secret, desired: &Secret| {
            matches!(
                plan(&sealed, Some(existing), desired.clone()),
                Plan::Recreate(_)
            )
        };
        // Metadata only: updated in place, data and immutability kept.
        let mut relabelled = existing.clone();
        relabelled.metadata.labels = None;
        let Plan::Update(fixed) = plan(&sealed, Some(&relabelled), desired.clone()) else {
            panic!("a label change on an immutable Secret is an update")
        };
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("7"));
        // New data, still immutable: only a new Secret can hold it.
        let mut edited = existing.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("pw".into(), k8s_openapi::ByteString(b"edited".to_vec()));
        assert!(recreates(&edited, &desired));
        // Same data, no longer immutable: Kubernetes cannot unfreeze it in place either.
        let mut thawed = desired.clone();
        thawed.immutable = None;
        assert!(recreates(&existing, &thawed));
    }

    #[test]
    fn foreign_secrets_are_left_alone_unless_marked_managed() {
        let (sealed, desired) = fixture("");
        let mut foreign = Secret::default();
        foreign.metadata.name = Some("db".into());
        assert!(!is_controlled_by(&foreign, Some("uid-1")));
        assert_eq!(
            plan(&sealed, Some(&foreign), desired.clone()),
            Plan::NotOwned
        );
        foreign.metadata.annotations =
            Some(BTreeMap::from([(MANAGED_ANNOTATION.into(), "true".into())]));
        let Plan::Update(taken) = plan(&sealed, Some(&foreign), desired) else {
            panic!()
        };
        assert!(is_controlled_by(&taken, Some("uid-1")));
        assert_eq!(
            taken.metadata.annotations.as_ref().unwrap()[MANAGED_ANNOTATION],
            "true"
        );
    }

    #[test]
    fn credential_minting_types_are_refused_unless_allowed() {
        let (mut sealed, _) = fixture("");
        assert_eq!(type_refusal(&sealed, &[]), None);
        for type_ in [
            "Opaque",
            "kubernetes.io/tls",
            "kubernetes.io/dockerconfigjson",
        ] {
            sealed.spec.template.type_ = Some(type_.into());
            assert_eq!(type_refusal(&sealed, &[]), None, "{type_}");
        }
        for type_ in RESTRICTED_SECRET_TYPES {
            sealed.spec.template.type_ = Some(type_.to_string());
            let refusal = type_refusal(&sealed, &[]).expect("refused");
            assert!(
                refusal.contains(&format!("--allow-secret-type {type_}")),
                "{refusal}"
            );
            assert_eq!(type_refusal(&sealed, &[type_.to_string()]), None);
            let other = RESTRICTED_SECRET_TYPES
                .iter()
                .find(|t| *t != type_)
                .unwrap();
            assert!(type_refusal(&sealed, &[other.to_string()]).is_some());
        }
    }

    #[test]
    fn templates_cannot_plant_keys_or_claim_takeovers() {
        let (_, desired) = fixture_with_labels(
            "sealant.dev/created-at: '2999-01-01T00:00:00Z', sealant.dev/managed: 'true', note: kept",
            ", sealant.dev/key: 'true', sealant.dev/key-state: active",
        );
        let annotations = desired.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["note"]);
        let labels = desired.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            ["app", MANAGED_BY_LABEL.0]
        );
        assert_eq!(
            format!("{:?}", Plan::Create(Box::new(desired))),
            "Create",
            "Debug shows no data"
        );
    }

    #[test]
    fn another_controllers_secret_is_not_ours_even_with_our_label() {
        let (sealed, desired) = fixture("sealant.dev/keep-on-delete: 'true'");
        let mut existing = desired.clone();
        existing.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "other".into(),
            uid: "other-uid".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(plan(&sealed, Some(&existing), desired), Plan::NotOwned);
    }

    #[test]
    fn keep_on_delete_drops_the_owner_reference() {
        let (sealed, desired) = fixture("sealant.dev/keep-on-delete: 'true'");
        assert!(desired.metadata.owner_references.is_none());
        let mut existing = desired.clone();
        existing.metadata.resource_version = Some("1".into());
        assert_eq!(plan(&sealed, Some(&existing), desired), Plan::UpToDate);
    }
}
