//! Scopes: what a sealed value is bound to, and the check that a value may open where it is.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How tightly a sealed value is bound to the SealedSecret that carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Opens only in the namespace and under the name it was sealed for.
    #[default]
    Strict,
    /// Opens under any name, but only in the namespace it was sealed for.
    NamespaceWide,
    /// Opens anywhere.
    ClusterWide,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.chars().take(40).collect()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope '{0}': use strict, namespace-wide or cluster-wide")]
pub struct UnknownScope(String);

/// Where a SealedSecret lives: the place a value is sealed for, or asked to open in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub namespace: Option<String>,
    pub name: String,
}

impl Target {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Target {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => write!(f, "{} (no namespace)", self.name),
        }
    }
}

/// What a sealed value is bound to, as recorded inside its authenticated payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    Strict { namespace: String, name: String },
    NamespaceWide { namespace: String },
    ClusterWide,
}

impl Binding {
    /// The binding a value sealed with `scope` for `target` carries.
    pub fn new(scope: Scope, target: &Target) -> Result<Binding, BindingError> {
        let namespace = || {
            target
                .namespace
                .clone()
                .filter(|ns| !ns.is_empty())
                .ok_or(BindingError::NamespaceRequired { scope })
        };
        let binding = match scope {
            Scope::Strict => Binding::Strict {
                namespace: namespace()?,
                name: target.name.clone(),
            },
            Scope::NamespaceWide => Binding::NamespaceWide {
                namespace: namespace()?,
            },
            Scope::ClusterWide => Binding::ClusterWide,
        };
        binding.validate()?;
        Ok(binding)
    }

    pub fn scope(&self) -> Scope {
        match self {
            Binding::Strict { .. } => Scope::Strict,
            Binding::NamespaceWide { .. } => Scope::NamespaceWide,
            Binding::ClusterWide => Scope::ClusterWide,
        }
    }

    /// Names must be valid Kubernetes names: that also keeps the payload header unambiguous
    /// (no spaces, slashes or newlines).
    pub(crate) fn validate(&self) -> Result<(), BindingError> {
        match self {
            Binding::Strict { namespace, name } => {
                check_namespace(namespace)?;
                check_name(name)
            }
            Binding::NamespaceWide { namespace } => check_namespace(namespace),
            Binding::ClusterWide => Ok(()),
        }
    }

    /// May a value with this binding open in a SealedSecret declared with `declared` scope at `target`?
    pub fn check(&self, declared: Scope, target: &Target) -> Result<(), BindingError> {
        if self.scope() != declared {
            return Err(BindingError::ScopeMismatch {
                sealed: self.scope(),
                declared,
            });
        }
        let here_ns = target.namespace.as_deref().unwrap_or("");
        match self {
            Binding::Strict { namespace, name } if namespace != here_ns || *name != target.name => {
                Err(BindingError::Relocated {
                    sealed_for: format!("{namespace}/{name}"),
                    scope: Scope::Strict,
                    here: target.to_string(),
                })
            }
            Binding::NamespaceWide { namespace } if namespace != here_ns => {
                Err(BindingError::Relocated {
                    sealed_for: format!("namespace {namespace}"),
                    scope: Scope::NamespaceWide,
                    here: target.to_string(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    #[error("{scope} scope needs a namespace: set metadata.namespace or pass -n NAMESPACE")]
    NamespaceRequired { scope: Scope },
    #[error("'{0}' is not a valid namespace (lowercase letters, digits and '-', at most 63)")]
    InvalidNamespace(String),
    #[error("'{0}' is not a valid name (lowercase letters, digits, '-' and '.', at most 253)")]
    InvalidName(String),
    #[error(
        "sealed with {sealed} scope but spec.scope says {declared}: the scope cannot be changed after sealing; re-seal the value"
    )]
    ScopeMismatch { sealed: Scope, declared: Scope },
    #[error(
        "sealed for {sealed_for} ({scope} scope) but this SealedSecret is {here}: a {scope} value cannot be moved; re-seal it for its new place"
    )]
    Relocated {
        sealed_for: String,
        scope: Scope,
        here: String,
    },
}

/// An RFC 1123 label, as Kubernetes requires of namespaces and Service names: 1–63 lowercase
/// letters, digits and '-', starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 subdomain, as Kubernetes requires of Secret names: at most 253 characters of
/// '.'-separated parts, each made like a label (but for the 63-character cap of a label).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn check_namespace(ns: &str) -> Result<(), BindingError> {
    is_dns_label(ns)
        .then_some(())
        .ok_or_else(|| BindingError::InvalidNamespace(printable(ns)))
}

fn check_name(name: &str) -> Result<(), BindingError> {
    is_dns_subdomain(name)
        .then_some(())
        .ok_or_else(|| BindingError::InvalidName(printable(name)))
}

/// A name from the input as an error quotes it: its first 80 characters, escaped, so a
/// control character or a megabyte of junk cannot garble the one line it is on.
pub(crate) fn printable(s: &str) -> String {
    s.chars().take(80).flat_map(char::escape_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            assert_eq!(scope.to_string(), scope.as_str());
        }
        assert_eq!(Scope::NamespaceWide.to_string(), "namespace-wide");
        assert!("global".parse::<Scope>().is_err());
    }

    #[test]
    fn dns_labels_are_rfc_1123() {
        for ok in ["a", "sealant-system", "0x", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_name_is_quoted_escaped_and_cut_short() {
        let long = format!("Bad\n{}", "x".repeat(200));
        let err = Binding::new(Scope::Strict, &Target::new("prod", long)).unwrap_err();
        assert_eq!(
            err,
            BindingError::InvalidName(format!("Bad\\n{}", "x".repeat(76)))
        );
        let err = Binding::new(Scope::Strict, &Target::new("Prod", "db")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'Prod' is not a valid namespace (lowercase letters, digits and '-', at most 63)"
        );
    }

    /// Whether a value sealed with `b` may open as `namespace/name` with `scope`.
    fn opens(b: &Binding, scope: Scope, namespace: &str, name: &str) -> bool {
        b.check(scope, &Target::new(namespace, name)).is_ok()
    }

    #[test]
    fn strict_binds_namespace_and_name() {
        let b = Binding::new(Scope::Strict, &Target::new("prod", "db")).unwrap();
        assert!(opens(&b, Scope::Strict, "prod", "db"));
        let moved = b
            .check(Scope::Strict, &Target::new("dev", "db"))
            .unwrap_err();
        assert!(moved.to_string().contains("sealed for prod/db"), "{moved}");
        assert!(!opens(&b, Scope::Strict, "prod", "other"));
    }

    #[test]
    fn namespace_wide_binds_only_the_namespace() {
        let b = Binding::new(Scope::NamespaceWide, &Target::new("prod", "db")).unwrap();
        assert!(opens(&b, Scope::NamespaceWide, "prod", "x"));
        assert!(!opens(&b, Scope::NamespaceWide, "dev", "db"));
    }

    #[test]
    fn cluster_wide_binds_nothing_but_the_scope_is_fixed() {
        let b = Binding::new(Scope::ClusterWide, &Target::new("prod", "db")).unwrap();
        assert!(opens(&b, Scope::ClusterWide, "dev", "x"));
        assert_eq!(
            b.check(Scope::Strict, &Target::new("prod", "db")),
            Err(BindingError::ScopeMismatch {
                sealed: Scope::ClusterWide,
                declared: Scope::Strict
            })
        );
    }

    #[test]
    fn names_are_validated() {
        let no_ns = Target {
            namespace: None,
            name: "db".into(),
        };
        assert!(matches!(
            Binding::new(Scope::Strict, &no_ns),
            Err(BindingError::NamespaceRequired { .. })
        ));
        assert!(Binding::new(Scope::ClusterWide, &no_ns).is_ok());
        assert!(Binding::new(Scope::Strict, &Target::new("Prod", "db")).is_err());
        assert!(Binding::new(Scope::Strict, &Target::new("prod", "a/b")).is_err());
        assert!(Binding::new(Scope::Strict, &Target::new("prod", "a b")).is_err());
        assert!(Binding::new(Scope::Strict, &Target::new("prod", "db.v2")).is_ok());
    }
}
