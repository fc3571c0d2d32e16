//! The status conditions a SealedSecret reports, decided from what its reconcile came to.
//!
//! They follow kstatus (what Flux, `kubectl wait` users and cli-utils read) and the Kubernetes
//! API conventions:
//! - `Ready` is always there: `True` once the Secret is in place, `False` with the reason.
//! - `Reconciling=True` while a failure the controller retries on its own lasts (an API error,
//!   a conflict, a refused write): kstatus says InProgress.
//! - `Stalled=True` for a failure only a person ends (no key, wrong scope, a compromised key, a
//!   Secret that is not ours, a refused type, a malformed or tampered value): kstatus says
//!   Failed, so `flux` and `kstatus` stop waiting at once.
//!
//! `Reconciling` and `Stalled` are "abnormal-true" conditions: kstatus reads an absent one as
//! False, so they are removed rather than set False. A generation the controller has not yet
//! seen shows as `metadata.generation > status.observedGeneration`, which kstatus and the
//! Argo CD check read as in progress: the controller writes its verdict on the new generation
//! in the same reconcile that sees it, so it never writes `Reconciling` for that.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::SealedSecretStatus;
use crate::reason::Reason;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
/// The reason of `Ready=True`.
pub const UNSEALED: &str = "Unsealed";

/// What a reconcile came to, as the conditions say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health<'a> {
    /// The Secret is in place.
    Ready { message: &'a str },
    /// Not in place: `Stalled` until someone changes the SealedSecret, the keys or the
    /// cluster when `reason` is permanent, else `Reconciling` (the controller retries with
    /// backoff and may yet succeed).
    Failed { reason: Reason, message: &'a str },
}

/// The conditions for `health`: `Ready` first, then `Reconciling` or `Stalled` when True.
/// A condition whose status is what `previous` had keeps its `lastTransitionTime`.
pub fn conditions(
    previous: Option<&SealedSecretStatus>,
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let old = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
        let since = match old {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Time(now),
        };
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: since,
            observed_generation: generation,
        }
    };
    match *health {
        Health::Ready { message } => vec![condition(READY, "True", UNSEALED, message)],
        Health::Failed { reason, message } => {
            let abnormal = if reason.is_permanent() {
                STALLED
            } else {
                RECONCILING
            };
            vec![
                condition(READY, "False", reason.as_str(), message),
                condition(abnormal, "True", reason.as_str(), message),
            ]
        }
    }
}

/// Does `new` say anything `old` does not? Transition times alone are not news, so a
/// reconcile that changes nothing writes no status.
pub fn status_changed(old: Option<&SealedSecretStatus>, new: &SealedSecretStatus) -> bool {
    old.map(without_times) != Some(without_times(new))
}

/// A fingerprint of what a status says (transition times excluded, as in [`status_changed`]),
/// so a controller can remember the status it wrote without keeping a copy of it.
pub fn status_digest(status: &SealedSecretStatus) -> u64 {
    use std::hash::{Hash, Hasher};
    let json = serde_json::to_vec(&without_times(status)).expect("a status serializes");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut hasher);
    hasher.finish()
}

fn without_times(status: &SealedSecretStatus) -> SealedSecretStatus {
    let mut status = status.clone();
    for c in &mut status.conditions {
        c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn status(conditions: Vec<Condition>) -> SealedSecretStatus {
        SealedSecretStatus {
            conditions,
            observed_generation: Some(1),
            ..Default::default()
        }
    }

    fn summary(conditions: &[Condition]) -> Vec<(&str, &str, &str, Option<i64>)> {
        conditions
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_str(),
                    c.observed_generation,
                )
            })
            .collect()
    }

    #[test]
    fn each_health_has_ready_and_at_most_one_abnormal_condition() {
        let now = at("2026-01-01T00:00:00Z");
        let ready = conditions(None, &Health::Ready { message: "ok" }, Some(3), now);
        assert_eq!(summary(&ready), [("Ready", "True", "Unsealed", Some(3))]);
        let retrying = Health::Failed {
            reason: Reason::ApiError,
            message: "etcd down",
        };
        assert_eq!(
            summary(&conditions(None, &retrying, Some(3), now)),
            [
                ("Ready", "False", "ApiError", Some(3)),
                ("Reconciling", "True", "ApiError", Some(3))
            ]
        );
        let stalled = Health::Failed {
            reason: Reason::NoKey,
            message: "no key",
        };
        let stalled = conditions(None, &stalled, Some(3), now);
        assert_eq!(
            summary(&stalled),
            [
                ("Ready", "False", "NoKey", Some(3)),
                ("Stalled", "True", "NoKey", Some(3))
            ]
        );
        assert!(stalled.iter().all(|c| c.message == "no key"));
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let first = at("2026-01-01T00:00:00Z");
        let later = at("2026-02-02T00:00:00Z");
        let stalled = Health::Failed {
            reason: Reason::NoKey,
            message: "no key",
        };
        let old = status(conditions(None, &stalled, Some(1), first));
        // The same failure with another reason: Ready stays False, Stalled stays True.
        let scope = Health::Failed {
            reason: Reason::ScopeMismatch,
            message: "moved",
        };
        let again = conditions(Some(&old), &scope, Some(1), later);
        assert!(again.iter().all(|c| c.last_transition_time == Time(first)));
        // Opened: Ready flips (a new time) and Stalled is gone.
        let opened = conditions(Some(&old), &Health::Ready { message: "ok" }, Some(1), later);
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].last_transition_time, Time(later));
        // Retrying after Stalled: Ready is still False (kept), Reconciling is new.
        let retrying = Health::Failed {
            reason: Reason::ApiError,
            message: "x",
        };
        let retried = conditions(Some(&old), &retrying, Some(1), later);
        assert_eq!(retried[0].last_transition_time, Time(first));
        assert_eq!(retried[1].last_transition_time, Time(later));
    }

    #[test]
    fn status_comparison_ignores_transition_times() {
        let ok = Health::Ready { message: "ok" };
        let old = status(conditions(None, &ok, Some(1), at("2026-01-01T00:00:00Z")));
        let mut same = status(conditions(None, &ok, Some(1), at("2026-02-02T00:00:00Z")));
        assert_ne!(old, same, "the times differ");
        assert!(!status_changed(Some(&old), &same));
        assert_eq!(status_digest(&old), status_digest(&same));
        same.observed_generation = Some(2);
        assert!(status_changed(Some(&old), &same));
        let failed = Health::Failed {
            reason: Reason::NoKey,
            message: "x",
        };
        let flipped = status(conditions(
            Some(&old),
            &failed,
            Some(1),
            at("2026-02-02T00:00:00Z"),
        ));
        assert!(status_changed(Some(&old), &flipped));
        assert!(status_changed(None, &flipped));
        assert_ne!(status_digest(&old), status_digest(&flipped));
    }

    #[test]
    fn conditions_serialize_in_the_kubernetes_shape() {
        let now = at("2026-01-01T00:00:00.123Z");
        let stalled = Health::Failed {
            reason: Reason::NoKey,
            message: "no key",
        };
        let json = serde_json::to_value(conditions(None, &stalled, Some(2), now)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"type": "Ready", "status": "False", "reason": "NoKey", "message": "no key",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2},
                {"type": "Stalled", "status": "True", "reason": "NoKey", "message": "no key",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}
            ])
        );
    }
}
