//! What a reconcile came to, for Sealant's and Bitnami's SealedSecrets alike, and what it
//! calls for: the health the status says, the count, the event; and the errors that end a
//! reconcile for the error policy to retry.

use kube::runtime::events::{Event, EventType};
use sealant_core::conditions::Health;
use sealant_core::reason::Reason;

use crate::fence::Fenced;
use crate::metrics::Metrics;

/// Why a reconcile ended early: retried with backoff by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SealedSecret has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Fenced(#[from] Fenced),
    #[error(
        "the API server refused to write Secret {name}: {message} (check the controller's RBAC); \
         retrying with backoff"
    )]
    Forbidden { name: String, message: String },
}

/// What happened to the Secret.
pub enum Outcome {
    Written(&'static str),
    Unchanged,
    /// Retried soon when `reason` is not permanent (a 403 that an RBAC fix ends), else
    /// only at the next resync.
    Failed {
        reason: Reason,
        message: String,
    },
}

impl Outcome {
    /// The health the status says; `up_to_date` is the message when it is ready.
    pub fn health<'a>(&'a self, up_to_date: &'a str) -> Health<'a> {
        match self {
            Outcome::Written(_) | Outcome::Unchanged => Health::Ready {
                message: up_to_date,
            },
            Outcome::Failed { reason, message } => Health::Failed {
                reason: *reason,
                message,
            },
        }
    }

    /// Counts it: `sealant_unseal_requests_total`, and `sealant_unseal_errors_total` by
    /// reason for a failure.
    pub fn count(&self, metrics: &Metrics, namespace: &str) {
        match self {
            Outcome::Failed { reason, .. } => metrics.unseal_error(namespace, *reason),
            Outcome::Written(_) | Outcome::Unchanged => metrics.unseal_ok(namespace),
        }
    }

    /// The event about the object whose Secret is `name`: one per write, and for a failure
    /// one per change of state (`changed`). Events are grouped into series by reason and
    /// action, so each outcome gets its own action (a "created" series must not go on to
    /// count later updates).
    pub fn event(&self, name: &str, changed: bool) -> Option<Event> {
        let (type_, reason, action, note) = match self {
            Outcome::Written(action) => (
                EventType::Normal,
                "Unsealed",
                *action,
                format!("Secret {name} {action}"),
            ),
            Outcome::Failed { reason, message } if changed => (
                EventType::Warning,
                reason.as_str(),
                "Unseal",
                message.clone(),
            ),
            Outcome::Failed { .. } | Outcome::Unchanged => return None,
        };
        Some(Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        })
    }

    /// A failure the controller retries with backoff rather than leaving it to the next
    /// resync (one that is not permanent) as the error, for the Secret `name`.
    pub fn retried(&self, name: &str) -> Result<(), Error> {
        match self {
            Outcome::Failed { reason, message } if !reason.is_permanent() => {
                Err(Error::Forbidden {
                    name: name.to_owned(),
                    message: message.clone(),
                })
            }
            Outcome::Failed { .. } | Outcome::Written(_) | Outcome::Unchanged => Ok(()),
        }
    }
}
