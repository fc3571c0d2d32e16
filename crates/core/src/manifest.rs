//! Reading Kubernetes manifests: a YAML stream (`---`-separated), JSON, or a v1 List, each
//! object with the line it starts on so every error can point at it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use crate::crd::SealedSecret;

/// A Secret as `kubectl create secret … --dry-run=client -o yaml` prints it.
/// Values stay in zeroizing, redacting containers.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SecretManifest {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Item key → base64 text, as in the Secret API.
    #[serde(default)]
    pub data: Option<BTreeMap<String, SecretString>>,
    /// Item key → plain text; wins over `data` for the same key, as in the Secret API.
    #[serde(default)]
    pub string_data: Option<BTreeMap<String, SecretString>>,
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub immutable: Option<bool>,
}

/// One object read from a file.
#[derive(Debug)]
pub enum Manifest {
    Secret(Box<SecretManifest>),
    SealedSecret(Box<SealedSecret>),
    /// Any other kind, named by its `kind` (empty when it has none).
    Other(String),
}

/// A metadata field that is set to something: an empty name or namespace counts as none.
pub(crate) fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.is_empty())
}

/// A value and the 1-based line it starts on.
#[derive(Debug)]
pub struct Located<T> {
    pub line: usize,
    pub value: T,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            column: 1,
            message: message.into(),
        }
    }
}

pub const SECRET_KINDS: (&str, &str) = ("v1", "Secret");
pub const SEALED_API_GROUP: &str = "sealant.dev";

/// What every object says first: its apiVersion and kind (also read by `bitnami`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Head {
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
}

/// The items of a v1 List, each with its position.
#[derive(Deserialize)]
pub(crate) struct ListItems {
    #[serde(default)]
    pub(crate) items: Vec<Spanned<serde_json::Value>>,
}

/// Whether a manifest file (or one document of a stream) is JSON rather than YAML, as its
/// first non-blank character shows: files are rewritten in the format they were read in.
pub fn is_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

/// Reads every object in `text` (YAML stream or JSON); Lists are flattened into their items.
pub fn read_manifests(text: &str) -> Result<Vec<Located<Manifest>>, ParseError> {
    let mut out = Vec::new();
    for doc in split_documents(text) {
        out.extend(read_document(&doc)?);
    }
    Ok(out)
}

/// The objects of one document of a stream (several for a List), lines in the whole stream.
pub fn read_document(doc: &Document<'_>) -> Result<Vec<Located<Manifest>>, ParseError> {
    let head: Head = parse_document(doc)?;
    let kind = head.kind.unwrap_or_default();
    if head.api_version.as_deref() == Some("v1") && (kind == "List" || kind.ends_with("List")) {
        let list: ListItems = parse_document(doc)?;
        let mut out = Vec::new();
        for item in list.items {
            let line = doc.first_line + item.referenced.line() as usize - 1;
            out.push(Located {
                line,
                value: manifest_from_value(item.value).map_err(|e| ParseError::at(line, e))?,
            });
        }
        return Ok(out);
    }
    let value = if is_secret(head.api_version.as_deref(), &kind) {
        Manifest::Secret(Box::new(parse_document(doc)?))
    } else if is_sealed_secret(head.api_version.as_deref(), &kind) {
        Manifest::SealedSecret(Box::new(parse_document(doc)?))
    } else {
        Manifest::Other(kind)
    };
    Ok(vec![Located {
        line: doc.content_line,
        value,
    }])
}

fn is_secret(api_version: Option<&str>, kind: &str) -> bool {
    kind == SECRET_KINDS.1 && api_version.is_none_or(|v| v == SECRET_KINDS.0)
}

fn is_sealed_secret(api_version: Option<&str>, kind: &str) -> bool {
    kind == "SealedSecret"
        && api_version.is_some_and(|v| v.split('/').next() == Some(SEALED_API_GROUP))
}

fn manifest_from_value(value: serde_json::Value) -> Result<Manifest, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok(if is_secret(api_version.as_deref(), &kind) {
        Manifest::Secret(Box::new(
            serde_json::from_value(value).map_err(|e| e.to_string())?,
        ))
    } else if is_sealed_secret(api_version.as_deref(), &kind) {
        Manifest::SealedSecret(Box::new(
            serde_json::from_value(value).map_err(|e| e.to_string())?,
        ))
    } else {
        Manifest::Other(kind)
    })
}

/// One document of a YAML stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document<'a> {
    /// 1-based line of the document's first line in the stream.
    pub first_line: usize,
    /// 1-based line of its first line that is not blank or a comment.
    pub content_line: usize,
    pub text: &'a str,
}

/// Splits a YAML stream at `---` and `...` lines, as kubectl does. A document marker cannot
/// occur inside a scalar at column 0, so this agrees with the YAML spec. Documents holding
/// only blanks and comments are dropped.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut first_line = 1usize;
    let mut offset = 0usize;
    let mut push = |start: usize, end: usize, first_line: usize| {
        let text = &text[start..end];
        let content = text.lines().position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        });
        if let Some(skip) = content {
            docs.push(Document {
                first_line,
                content_line: first_line + skip,
                text,
            });
        }
    };
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if marker {
            push(start, offset, first_line);
            // Content after "--- " on the marker line belongs to the next document.
            let rest = if bare.starts_with("---") {
                3
            } else {
                line.len()
            };
            start = offset + rest.min(line.len());
            first_line = line_no;
            if bare == "..." {
                start = offset + line.len();
                first_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    push(start, text.len(), first_line);
    docs
}

/// Limits on what one document may cost to parse. Kubernetes manifests need none of YAML's
/// expansion tricks, so anchors and aliases are capped low: a "billion laughs" document is
/// refused long before it grows. Nesting and total size keep serde-saphyr's defaults.
pub const MAX_ALIASES: usize = 1_000;
pub const MAX_DEPTH: usize = 64;
pub const MAX_NODES: usize = 250_000;

fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Says what a budget refusal means for the user.
fn explain_refusal(message: String) -> String {
    if let Some(detail) = message.strip_prefix("budget breached: ") {
        format!(
            "refused: the document exceeds the limits for a manifest ({detail}); anchors and aliases that multiply content are not accepted (at most {MAX_ALIASES} aliases, {MAX_NODES} nodes)"
        )
    } else if message.contains("recursion limit exceeded") || message.contains("depth") {
        format!("refused: nested deeper than {MAX_DEPTH} levels ({message})")
    } else {
        message
    }
}

/// Parses one document into `T`, with error positions in the whole stream.
pub fn parse_document<T: DeserializeOwned>(doc: &Document<'_>) -> Result<T, ParseError> {
    serde_saphyr::from_str_with_options(doc.text, parse_options()).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        let mut message = e.without_snippet().to_string();
        // The message ends with the document-relative position; ours replaces it.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        if let Some(rest) = message.strip_prefix("error: ")
            && let Some((_, msg)) = rest.split_once(": ")
        {
            message = msg.to_owned();
        }
        ParseError {
            line: doc.first_line + line.max(1) - 1,
            column: column.max(1),
            message: explain_refusal(message),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn splits_streams_with_lines() {
        let text = "# lead\n---\na: 1\n---\n\n# only a comment\n--- \nb: 2\n...\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].content_line, 3);
        assert_eq!(docs[1].content_line, 8);
        assert_eq!(docs[1].text.trim(), "b: 2");
    }

    #[test]
    fn document_ends_and_content_on_the_marker_line() {
        // After `...` the next document starts on the following line; content after `--- `
        // belongs to the document it opens.
        let text = "a: 1\n...\nb: 2\n--- {c: 3}\n";
        let docs = split_documents(text);
        let found: Vec<(usize, usize, &str)> = docs
            .iter()
            .map(|d| (d.first_line, d.content_line, d.text.trim()))
            .collect();
        assert_eq!(found, [(1, 1, "a: 1"), (3, 3, "b: 2"), (4, 4, "{c: 3}")]);
    }

    #[test]
    fn only_sealant_sealed_secrets_and_v1_lists_are_read_as_such() {
        let bitnami = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: a}\n";
        let read = read_manifests(bitnami).unwrap();
        assert!(matches!(&read[0].value, Manifest::Other(k) if k == "SealedSecret"));
        let other_kind =
            "apiVersion: sealant.dev/v1alpha1\nkind: SealedThing\nmetadata: {name: a}\n";
        let read = read_manifests(other_kind).unwrap();
        assert!(matches!(&read[0].value, Manifest::Other(k) if k == "SealedThing"));
        // The API's typed lists (`kubectl get --raw`) are flattened like `kind: List`.
        let typed =
            "apiVersion: v1\nkind: SecretList\nitems:\n- kind: Secret\n  metadata: {name: a}\n";
        let read = read_manifests(typed).unwrap();
        assert_eq!(read.len(), 1);
        assert!(matches!(read[0].value, Manifest::Secret(_)));
        assert_eq!(read[0].line, 4);
    }

    /// The first object of `text`, which must be a Secret.
    fn first_secret(text: &str) -> SecretManifest {
        match read_manifests(text).unwrap().remove(0).value {
            Manifest::Secret(s) => *s,
            _ => panic!("not a secret"),
        }
    }

    #[test]
    fn reads_kubectl_output_yaml_and_json() {
        let yaml = "apiVersion: v1\ndata:\n  password: czNjcjN0\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: db\n  namespace: prod\n";
        let s = first_secret(yaml);
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        assert_eq!(
            s.data.as_ref().unwrap()["password"].expose_secret(),
            "czNjcjN0"
        );
        let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"a":"yes"}}"#;
        let s = first_secret(json);
        assert_eq!(s.string_data.as_ref().unwrap()["a"].expose_secret(), "yes");
    }

    #[test]
    fn yaml_scalars_stay_strings() {
        let yaml = "kind: Secret\nstringData:\n  enabled: yes\n  port: 0123\n";
        let s = first_secret(yaml);
        let sd = s.string_data.as_ref().unwrap();
        assert_eq!(sd["enabled"].expose_secret(), "yes");
        assert_eq!(sd["port"].expose_secret(), "0123");
    }

    #[test]
    fn flattens_lists_with_item_lines() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n";
        let m = read_manifests(yaml).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].line, 4);
        assert!(matches!(m[0].value, Manifest::Secret(_)));
        assert_eq!(m[1].line, 7);
        assert!(matches!(&m[1].value, Manifest::Other(k) if k == "ConfigMap"));
    }

    #[test]
    fn errors_point_into_the_stream() {
        let yaml = "kind: ConfigMap\n---\nkind: Secret\ndata: [\n";
        let err = read_manifests(yaml).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(!err.message.contains("line"), "{err}");
        let err = read_manifests("kind: Secret\ndata: 5\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
    }

    /// Nine levels of nine aliases: 9^9 nodes if expanded.
    pub(crate) fn billion_laughs() -> String {
        let mut doc = String::from(
            "kind: Secret\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let mut prev = 'a';
        for name in 'b'..='i' {
            doc.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = name;
        }
        doc
    }

    #[test]
    fn aliases_are_capped_at_max_aliases() {
        let doc = |n: usize| {
            // One anchor per alias: no content is multiplied, only counted.
            let pairs: String = (0..n)
                .map(|i| format!("  v{i}: &v{i} x\n  r{i}: *v{i}\n"))
                .collect();
            format!("kind: ConfigMap\ndata:\n{pairs}")
        };
        if let Err(e) = read_manifests(&doc(MAX_ALIASES)) {
            panic!("{e}");
        }
        let err = read_manifests(&doc(MAX_ALIASES + 1)).unwrap_err();
        assert!(
            err.message
                .starts_with("refused: the document exceeds the limits"),
            "{err}"
        );
    }

    #[test]
    fn hostile_yaml_is_refused_quickly_and_clearly() {
        let started = std::time::Instant::now();
        let err = read_manifests(&billion_laughs()).unwrap_err();
        assert!(
            err.message
                .starts_with("refused: the document exceeds the limits"),
            "{err}"
        );
        let deep = format!(
            "kind: Secret\nx: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let err = read_manifests(&deep).unwrap_err();
        assert!(
            err.message.starts_with("refused: nested deeper than 64"),
            "{err}"
        );
        assert_eq!(err.line, 2);
        let nested_maps: String = (0..200)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect();
        assert!(
            read_manifests(&nested_maps)
                .unwrap_err()
                .message
                .starts_with("refused")
        );
        // A guard against expansion (a billion laughs would take hours), not a speed target.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn ordinary_anchors_still_work() {
        let yaml = "kind: Secret\nmetadata:\n  labels: &l {app: db}\n  annotations: *l\n";
        let s = first_secret(yaml);
        assert_eq!(s.metadata.annotations.as_ref().unwrap()["app"], "db");
    }

    #[test]
    fn debug_redacts_values() {
        let m = read_manifests("kind: Secret\nstringData:\n  pw: hunter2\n").unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
