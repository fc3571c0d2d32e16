//! Writing manifests: YAML (one document or a `---` stream) and JSON, with stable formatting
//! so re-sealing one item changes only that item's lines.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot serialize: {0}")]
pub struct OutputError(String);

/// Plain scalars, never folded: base64 values stay on one line each.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, OutputError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options).map_err(|e| OutputError(e.to_string()))
}

/// A YAML stream: documents separated by `---`.
pub fn to_yaml_stream<T: Serialize>(values: &[T]) -> Result<String, OutputError> {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(value)?);
    }
    Ok(out)
}

/// Pretty JSON; several objects become a v1 List, as kubectl prints them.
pub fn to_json<T: Serialize>(values: &[T]) -> Result<String, OutputError> {
    let rendered = match values {
        [one] => serde_json::to_string_pretty(one),
        many => serde_json::to_string_pretty(&serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": many,
        })),
    };
    rendered
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| OutputError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_separates_documents_and_starts_with_the_first() {
        let values = [
            serde_json::json!({"kind": "A"}),
            serde_json::json!({"kind": "B"}),
        ];
        assert_eq!(to_yaml_stream(&values).unwrap(), "kind: A\n---\nkind: B\n");
        assert_eq!(to_yaml_stream(&values[..1]).unwrap(), "kind: A\n");
    }
}
