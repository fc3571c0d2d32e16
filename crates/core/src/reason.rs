//! Why a SealedSecret is not in place: the one list of failure reasons. Each is the reason of
//! its `Ready=False` condition and Warning event, the `reason` label of
//! `sealant_unseal_errors_total`, and a row of docs/errors.md; whether a person must act
//! (`Stalled`) or the controller retries (`Reconciling`) goes with it.

use crate::bitnami::{BitnamiOpenError, MigrateError};
use crate::convert::ConvertError;
use crate::value::OpenError;

/// A reason a reconcile did not put the Secret in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No key held here was a recipient.
    NoKey,
    /// Only a compromised key could open it.
    KeyCompromised,
    /// Moved to another namespace or name, or its `spec.scope` changed.
    ScopeMismatch,
    /// Authentication failed, or the recipients record was altered.
    Tampered,
    /// Not a value this controller can read (not base64, not age, no recipients record, …).
    Malformed,
    /// A Secret of that name exists and is not this SealedSecret's.
    NotOwned,
    /// The API server refused the Secret itself (400 or 422).
    SecretRejected,
    /// The template's type makes the cluster mint or honour credentials, and is not allowed.
    TypeNotAllowed,
    /// Bitnami mode: no imported RSA key opens it. Bitnami's format cannot tell a key not
    /// imported from a move, a scope change or a damaged RSA part: all fail the OAEP label.
    NoKeyOpens,
    /// Bitnami mode: a Bitnami feature Sealant does not carry (`spec.template.data`, the
    /// pre-v0.7 `spec.data`).
    Unsupported,
    /// The API server forbade writing the Secret (403): an RBAC fix or a webhook ends it.
    SecretForbidden,
    /// Another request about the Secret failed (a 5xx, a conflict, a timeout).
    ApiError,
}

impl Reason {
    /// Every reason, in the order docs/errors.md lists them.
    pub const ALL: [Reason; 12] = [
        Reason::NoKey,
        Reason::KeyCompromised,
        Reason::ScopeMismatch,
        Reason::Tampered,
        Reason::Malformed,
        Reason::NotOwned,
        Reason::SecretRejected,
        Reason::TypeNotAllowed,
        Reason::NoKeyOpens,
        Reason::Unsupported,
        Reason::SecretForbidden,
        Reason::ApiError,
    ];

    /// The condition's and event's reason, and the metric's `reason` label: one string, so
    /// a dashboard can join the error count to the objects' conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoKey => "NoKey",
            Reason::KeyCompromised => "KeyCompromised",
            Reason::ScopeMismatch => "ScopeMismatch",
            Reason::Tampered => "Tampered",
            Reason::Malformed => "Malformed",
            Reason::NotOwned => "NotOwned",
            Reason::SecretRejected => "SecretRejected",
            Reason::TypeNotAllowed => "TypeNotAllowed",
            Reason::NoKeyOpens => "NoKeyOpens",
            Reason::Unsupported => "Unsupported",
            Reason::SecretForbidden => "SecretForbidden",
            Reason::ApiError => "ApiError",
        }
    }

    /// Only a person ends it (the condition is `Stalled`); otherwise the controller retries
    /// with backoff and may yet succeed (`Reconciling`).
    pub fn is_permanent(self) -> bool {
        match self {
            Reason::SecretForbidden | Reason::ApiError => false,
            Reason::NoKey
            | Reason::KeyCompromised
            | Reason::ScopeMismatch
            | Reason::Tampered
            | Reason::Malformed
            | Reason::NotOwned
            | Reason::SecretRejected
            | Reason::TypeNotAllowed
            | Reason::NoKeyOpens
            | Reason::Unsupported => true,
        }
    }

    /// Why a SealedSecret did not open ([`crate::convert::unseal_in_cluster`]). Sealing
    /// errors cannot come from opening; they are `Malformed` should one ever do.
    pub fn of_opening(error: &ConvertError) -> Reason {
        match error {
            ConvertError::Compromised { .. } => Reason::KeyCompromised,
            ConvertError::Open { error, .. } => Reason::of_value(error),
            ConvertError::NotASecret(_)
            | ConvertError::WrongApiVersion(_)
            | ConvertError::NoName
            | ConvertError::NamespaceConflict { .. }
            | ConvertError::BadBase64(_)
            | ConvertError::BadItemKey(_)
            | ConvertError::Empty
            | ConvertError::TooLarge(_)
            | ConvertError::Binding(_)
            | ConvertError::Seal(_)
            | ConvertError::NoSuchItem(_) => Reason::Malformed,
        }
    }

    /// Why a Bitnami SealedSecret did not open ([`crate::bitnami::open_items`]).
    pub fn of_bitnami(error: &MigrateError) -> Reason {
        match error {
            MigrateError::Open { reason, .. } => match reason {
                BitnamiOpenError::NoKeys => Reason::NoKey,
                BitnamiOpenError::NoKeyOpens { .. } => Reason::NoKeyOpens,
                BitnamiOpenError::Tampered(_) | BitnamiOpenError::BadSessionKey { .. } => {
                    Reason::Tampered
                }
                BitnamiOpenError::NotBase64
                | BitnamiOpenError::TooShort(_)
                | BitnamiOpenError::BadLength { .. } => Reason::Malformed,
            },
            MigrateError::TemplateData(_) | MigrateError::LegacyData => Reason::Unsupported,
            MigrateError::NoName
            | MigrateError::Empty
            | MigrateError::Binding(_)
            | MigrateError::Seal(_) => Reason::Malformed,
        }
    }

    /// Why one value did not open.
    fn of_value(error: &OpenError) -> Reason {
        match error {
            OpenError::NoKeyHeld(_) => Reason::NoKey,
            OpenError::Binding(_) => Reason::ScopeMismatch,
            OpenError::HeaderTampered | OpenError::PayloadTampered | OpenError::KeyMismatch(_) => {
                Reason::Tampered
            }
            OpenError::NotBase64
            | OpenError::NotAgeFile
            | OpenError::NoRecordedRecipients
            | OpenError::TooLarge(_)
            | OpenError::RecordMismatch { .. }
            | OpenError::TooManyStanzas(_)
            | OpenError::Payload(_) => Reason::Malformed,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadError;
    use crate::scope::{BindingError, Scope};

    /// The rows of docs/errors.md's table of `Ready=False` reasons: (reason, condition).
    fn documented() -> Vec<(String, String)> {
        let doc = include_str!("../../../docs/errors.md");
        let table = doc
            .split("## The controller: `Ready=False` reasons")
            .nth(1)
            .expect("docs/errors.md has the Ready=False section");
        let table = table.split("\n## ").next().unwrap_or_default();
        table
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                let unquote = |s: &str| s.trim_matches('`').to_owned();
                (unquote(cells[0]), unquote(cells[cells.len() - 1]))
            })
            .collect()
    }

    #[test]
    fn every_reason_has_exactly_one_docs_row_with_its_condition() {
        let rows = documented();
        let expected: Vec<(String, String)> = Reason::ALL
            .iter()
            .map(|r| {
                let condition = if r.is_permanent() {
                    "Stalled"
                } else {
                    "Reconciling"
                };
                (r.as_str().to_owned(), condition.to_owned())
            })
            .collect();
        assert_eq!(
            rows, expected,
            "docs/errors.md: one row per Reason, in order"
        );
    }

    #[test]
    fn reasons_are_distinct_names() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(format!("{r:?}"), r.as_str());
            assert_eq!(r.to_string(), r.as_str());
        }
    }

    #[test]
    fn opening_failures_map_to_the_reasons_the_status_gives() {
        let open = |error| ConvertError::Open {
            item: "k".into(),
            error,
        };
        let moved = || BindingError::ScopeMismatch {
            sealed: Scope::Strict,
            declared: Scope::ClusterWide,
        };
        for (error, reason) in [
            (
                open(OpenError::NoKeyHeld(vec!["age1x".into()])),
                Reason::NoKey,
            ),
            (
                ConvertError::Compromised {
                    item: "k".into(),
                    recipient: "age1x".into(),
                },
                Reason::KeyCompromised,
            ),
            (open(OpenError::Binding(moved())), Reason::ScopeMismatch),
            (open(OpenError::HeaderTampered), Reason::Tampered),
            (open(OpenError::PayloadTampered), Reason::Tampered),
            (
                open(OpenError::KeyMismatch("age1x".into())),
                Reason::Tampered,
            ),
            (open(OpenError::NotBase64), Reason::Malformed),
            (open(OpenError::NotAgeFile), Reason::Malformed),
            (open(OpenError::NoRecordedRecipients), Reason::Malformed),
            (
                open(OpenError::Payload(PayloadError::BadHeader)),
                Reason::Malformed,
            ),
            (ConvertError::BadItemKey("a b".into()), Reason::Malformed),
            (ConvertError::TooLarge(2 << 20), Reason::Malformed),
            // Where the object lives is invalid: not a value that moved.
            (ConvertError::Binding(moved()), Reason::Malformed),
        ] {
            assert_eq!(Reason::of_opening(&error), reason, "{error}");
        }
    }

    #[test]
    fn bitnami_failures_map_to_their_reasons() {
        let open = |reason| MigrateError::Open {
            item: "k".into(),
            reason,
        };
        for (error, reason) in [
            (open(BitnamiOpenError::NoKeys), Reason::NoKey),
            (
                open(BitnamiOpenError::NoKeyOpens {
                    tried: 2,
                    sealed_for: "prod/db".into(),
                }),
                Reason::NoKeyOpens,
            ),
            (
                open(BitnamiOpenError::Tampered("k1".into())),
                Reason::Tampered,
            ),
            (
                open(BitnamiOpenError::BadSessionKey {
                    key: "k1".into(),
                    len: 31,
                }),
                Reason::Tampered,
            ),
            (open(BitnamiOpenError::NotBase64), Reason::Malformed),
            (open(BitnamiOpenError::TooShort(3)), Reason::Malformed),
            (
                MigrateError::TemplateData("url".into()),
                Reason::Unsupported,
            ),
            (MigrateError::LegacyData, Reason::Unsupported),
            (MigrateError::NoName, Reason::Malformed),
            (MigrateError::Empty, Reason::Malformed),
        ] {
            assert_eq!(Reason::of_bitnami(&error), reason, "{error}");
        }
    }
}
