//! The `SealedSecret` custom resource (group `sealant.dev`, version `v1alpha1`).
//! `crds/sealedsecret.yaml` is generated from these types: see [`crd_yaml`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// A Secret whose values are sealed to one or more clusters' public keys: safe to commit.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "sealant.dev",
    version = "v1alpha1",
    kind = "SealedSecret",
    namespaced,
    status = "SealedSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "sealed",
    category = "sealant",
    doc = "A Kubernetes Secret sealed with age to one or more clusters' keys; safe to commit to Git.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Scope","type":"string","jsonPath":".spec.scope","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// What each value is bound to: strict (namespace and name), namespace-wide, or cluster-wide.
    #[serde(default)]
    pub scope: Scope,
    /// Item key → base64 of an age v1 file holding the framed value (docs/format.md).
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, String>,
    /// Item key → the age recipients that item was sealed to, in stanza order.
    #[serde(default)]
    pub recipients: BTreeMap<String, Vec<String>>,
    /// Metadata, type and immutability of the Secret to create.
    #[serde(default, skip_serializing_if = "SecretTemplate::is_empty")]
    pub template: SecretTemplate,
}

/// The parts of the generated Secret that are not sealed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default, skip_serializing_if = "TemplateMetadata::is_empty")]
    pub metadata: TemplateMetadata,
    /// The Secret's type, e.g. Opaque or kubernetes.io/tls (default Opaque).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Whether the Secret is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl SecretTemplate {
    pub fn is_empty(&self) -> bool {
        self.metadata.is_empty() && self.type_.is_none() && self.immutable.is_none()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMetadata {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// Written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, plus Reconciling or Stalled while True (kstatus conventions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Recipients of the keys that opened this object's values, sorted: lists objects still on an old key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opened_with: Vec<String>,
    /// Recipients of compromised keys that can also open this object's values, sorted: its
    /// plaintext must be treated as leaked. Change the values and seal them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_to: Vec<String>,
}

/// The CRD manifest as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    let crd = SealedSecret::crd();
    let body = crate::output::to_yaml(&crd).expect("the CRD serializes");
    format!(
        "# Generated from crates/core/src/crd.rs by `cargo run -p sealant-core --example crdgen`; do not edit.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the generated CRD is checked in: crds/, and a copy in deploy/ (kustomize cannot
    /// reach outside its directory).
    pub const CHECKED_IN: [&str; 2] = ["crds/sealedsecret.yaml", "deploy/sealedsecret-crd.yaml"];

    #[test]
    fn checked_in_crds_are_current() {
        for file in CHECKED_IN {
            let path = format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"));
            let on_disk = std::fs::read_to_string(path).unwrap_or_default();
            assert!(
                on_disk == crd_yaml(),
                "{file} is stale: run `cargo run -p sealant-core --example crdgen`"
            );
        }
    }

    #[test]
    fn crd_loads_on_kubernetes_1_20() {
        let yaml = crd_yaml();
        assert!(yaml.contains("apiVersion: apiextensions.k8s.io/v1"));
        assert!(!yaml.contains("x-kubernetes-validations"), "no CEL on 1.20");
        assert!(yaml.contains("subresources:"));
        let crd = SealedSecret::crd();
        assert_eq!(crd.spec.group, "sealant.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
    }

    #[test]
    fn spec_defaults_to_strict_scope() {
        let spec: SealedSecretSpec =
            serde_json::from_str(r#"{"encryptedData":{"a":"b"}}"#).unwrap();
        assert_eq!(spec.scope, Scope::Strict);
    }
}
