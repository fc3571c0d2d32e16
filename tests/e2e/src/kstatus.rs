//! kstatus's verdict on a custom resource, written here from its documentation and not from
//! Sealant's code, so tests can check what Flux, `kubectl wait` users and cli-utils make of
//! the statuses seal-controller writes.
//!
//! The rules (kubernetes-sigs/cli-utils, pkg/kstatus: README "Conditions" and "The Ready
//! Condition"; status/status.go `Compute` and status/generic.go `checkGenericProperties`),
//! for a kind with no built-in rules, first match wins:
//! 1. `metadata.deletionTimestamp` set: Terminating.
//! 2. `metadata.generation` and `status.observedGeneration` both set and different: InProgress.
//! 3. A condition `Reconciling` with status True: InProgress; `Stalled` True: Failed (in the
//!    order the conditions are listed; both are "abnormal-true", so absent means False).
//! 4. A `Ready` condition (the README's fallback for kinds without the two above): True is
//!    Current, False is InProgress.
//! 5. Anything else: Current (kstatus assumes a kind with no known conditions is reconciled).

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Current,
    InProgress,
    Failed,
    Terminating,
}

/// kstatus's status for `obj` (a whole object as the API server returns it), and its message.
pub fn compute(obj: &Value) -> (Status, String) {
    if obj["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return (
            Status::Terminating,
            "Resource scheduled for deletion".into(),
        );
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return (
            Status::InProgress,
            format!("generation is {generation}, but latest observed generation is {observed}"),
        );
    }
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let message = |c: &Value| c["message"].as_str().unwrap_or("").to_owned();
    for c in &conditions {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return (Status::InProgress, message(c)),
            (Some("Stalled"), Some("True")) => return (Status::Failed, message(c)),
            _ => {}
        }
    }
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => (Status::Current, message(c)),
        Some(c) if c["status"] == "False" => (Status::InProgress, message(c)),
        _ => (Status::Current, "Resource is current".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_rules_in_order() {
        let cond = |t: &str, s: &str| json!({"type": t, "status": s, "message": t});
        let obj = |generation: i64, observed: i64, conditions: Value| {
            json!({"metadata": {"generation": generation},
                   "status": {"observedGeneration": observed, "conditions": conditions}})
        };
        let status = |o: &Value| compute(o).0;
        assert_eq!(status(&json!({"metadata": {}})), Status::Current);
        let mut deleting = obj(1, 1, json!([cond("Ready", "True")]));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(status(&deleting), Status::Terminating);
        assert_eq!(
            status(&obj(2, 1, json!([cond("Ready", "True")]))),
            Status::InProgress
        );
        assert_eq!(
            status(&obj(1, 1, json!([cond("Ready", "True")]))),
            Status::Current
        );
        assert_eq!(
            status(&obj(1, 1, json!([cond("Ready", "False")]))),
            Status::InProgress
        );
        assert_eq!(
            compute(&obj(
                1,
                1,
                json!([cond("Ready", "False"), cond("Stalled", "True")])
            )),
            (Status::Failed, "Stalled".into())
        );
        assert_eq!(
            status(&obj(
                1,
                1,
                json!([cond("Ready", "False"), cond("Reconciling", "True")])
            )),
            Status::InProgress
        );
        assert_eq!(
            status(&obj(
                1,
                1,
                json!([cond("Ready", "True"), cond("Stalled", "False")])
            )),
            Status::Current
        );
    }
}
