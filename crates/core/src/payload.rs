//! The plaintext framing inside each age file: a one-line header that carries the format
//! version and the scope binding, then the value's bytes. Because it sits inside the age
//! payload, the header is authenticated along with the value (docs/format.md).

use zeroize::Zeroizing;

use crate::scope::{Binding, BindingError};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: &str = "sealant/v1";
const FORMAT_PREFIX: &str = "sealant/";
/// A header longer than this cannot be ours (names are at most 63 + 253 bytes).
const MAX_HEADER_LEN: usize = 512;

/// Frames `value` for sealing: `sealant/v1 <binding>\n<value>`.
pub fn frame(binding: &Binding, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let header = match binding {
        Binding::Strict { namespace, name } => {
            format!("{FORMAT_VERSION} strict {namespace}/{name}\n")
        }
        Binding::NamespaceWide { namespace } => {
            format!("{FORMAT_VERSION} namespace-wide {namespace}\n")
        }
        Binding::ClusterWide => format!("{FORMAT_VERSION} cluster-wide\n"),
    };
    let mut framed = Zeroizing::new(Vec::with_capacity(header.len() + value.len()));
    framed.extend_from_slice(header.as_bytes());
    framed.extend_from_slice(value);
    framed
}

/// Splits an opened payload into its binding and the value's bytes.
pub fn unframe(payload: &[u8]) -> Result<(Binding, &[u8]), PayloadError> {
    let window = &payload[..payload.len().min(MAX_HEADER_LEN)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        return Err(if payload.starts_with(FORMAT_PREFIX.as_bytes()) {
            PayloadError::BadHeader
        } else {
            PayloadError::NotSealant
        });
    };
    let header = std::str::from_utf8(&payload[..end]).map_err(|_| PayloadError::NotSealant)?;
    let mut fields = header.split(' ');
    let version = fields.next().unwrap_or_default();
    if version != FORMAT_VERSION {
        return Err(match version.strip_prefix(FORMAT_PREFIX) {
            Some(_) => PayloadError::UnsupportedVersion(version.chars().take(32).collect()),
            None => PayloadError::NotSealant,
        });
    }
    let binding = match (fields.next(), fields.next(), fields.next()) {
        (Some("strict"), Some(place), None) => {
            let (namespace, name) = place.split_once('/').ok_or(PayloadError::BadHeader)?;
            Binding::Strict {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        }
        (Some("namespace-wide"), Some(namespace), None) => Binding::NamespaceWide {
            namespace: namespace.to_owned(),
        },
        (Some("cluster-wide"), None, None) => Binding::ClusterWide,
        _ => return Err(PayloadError::BadHeader),
    };
    binding.validate().map_err(PayloadError::BadBinding)?;
    Ok((binding, &payload[end + 1..]))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("opened, but it is not a Sealant value (no 'sealant/v1' header): seal it with `seal`")]
    NotSealant,
    #[error(
        "sealed with format {0}, which this version does not read: upgrade seal and the controller"
    )]
    UnsupportedVersion(String),
    #[error("opened, but its sealant/v1 header is malformed: re-seal the value")]
    BadHeader,
    #[error("opened, but its header names an invalid place: {0}")]
    BadBinding(BindingError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_one_readable_line() {
        let b = Binding::Strict {
            namespace: "prod".into(),
            name: "db".into(),
        };
        assert_eq!(&frame(&b, b"pw")[..], b"sealant/v1 strict prod/db\npw");
        let ns = Binding::NamespaceWide {
            namespace: "prod".into(),
        };
        assert_eq!(&frame(&ns, b"")[..], b"sealant/v1 namespace-wide prod\n");
        assert_eq!(
            &frame(&Binding::ClusterWide, b"x\ny")[..],
            b"sealant/v1 cluster-wide\nx\ny"
        );
    }

    #[test]
    fn frames_round_trip_with_any_bytes() {
        let b = Binding::NamespaceWide {
            namespace: "a-b".into(),
        };
        let value = [0u8, 10, 255, 10, 32];
        let framed = frame(&b, &value);
        assert_eq!(unframe(&framed), Ok((b, &value[..])));
    }

    #[test]
    fn unknown_versions_and_garbage_fail_clearly() {
        assert_eq!(
            unframe(b"sealant/v2 strict a/b\nx"),
            Err(PayloadError::UnsupportedVersion("sealant/v2".into()))
        );
        assert_eq!(unframe(b"hello"), Err(PayloadError::NotSealant));
        assert_eq!(unframe(b"hello\nworld"), Err(PayloadError::NotSealant));
        assert_eq!(
            unframe(b"sealant/v1 strict ab\n"),
            Err(PayloadError::BadHeader)
        );
        assert_eq!(
            unframe(b"sealant/v1 cluster-wide extra\n"),
            Err(PayloadError::BadHeader)
        );
        assert_eq!(unframe(b"sealant/v1 strict"), Err(PayloadError::BadHeader));
        assert!(matches!(
            unframe(b"sealant/v1 namespace-wide Bad_NS\n"),
            Err(PayloadError::BadBinding(_))
        ));
    }
}
