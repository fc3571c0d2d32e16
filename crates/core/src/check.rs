//! `seal check`: findings for one file's text: plaintext Secrets, malformed SealedSecrets,
//! SealedSecrets sealed to none of the recipients the repo config lists for them today,
//! records naming recipients the config does not list (an edit that would capture later
//! values), and values sealed to a key known to be compromised.
//!
//! What is not a leak, and is reported as skipped instead:
//! - a SOPS-encrypted document: a top-level `sops:` mapping, and every value of a Secret's
//!   `data`/`stringData` an `ENC[AES256_GCM,…]` value;
//! - a Secret whose every value is only Flux/envsubst placeholders, `${NAME}` (one or more,
//!   nothing else). `${NAME:=default}` and `${NAME:-default}` are real values: the default
//!   is plaintext in Git;
//! - a Helm/Go template: a document holding `{{ … }}` that is not YAML until rendered, a
//!   Secret whose values are only `{{ … }}` actions, or (decided by the caller, who sees the
//!   file system) a file under a chart's `templates/` folder beside a `Chart.yaml`.
//!
//! A Secret that mixes real values with any of these is a leak.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{RepoConfig, Rule};
use crate::convert::target_of_sealed;
use crate::crd::SealedSecret;
use crate::keys::parse_recipient;
use crate::manifest::{
    Located, Manifest, SecretManifest, parse_document, read_document, split_documents,
};
use crate::scope::Binding;
use crate::value::{OpenError, inspect_value};

/// What kind of problem a finding is (the `kind` of `seal check --format json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A Secret with a real value in it.
    PlaintextSecret,
    /// A SealedSecret that is malformed, stale, or sealed to a compromised key.
    SealedSecret,
    /// A document that is not YAML/JSON (and not a template).
    ParseError,
    /// A file that is not UTF-8 text.
    NotText,
}

/// One problem, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub message: String,
    pub kind: FindingKind,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

/// Something that was recognised as not a leak and not checked further, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// What checking one file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Checks one object of a readable document. `sops`: the document has a `sops:` block.
    fn add_object(
        &mut self,
        Located { line, value }: Located<Manifest>,
        sops: bool,
        path: Option<&str>,
        policy: Policy<'_>,
    ) {
        match value {
            Manifest::Secret(secret) => match classify_secret(&secret, sops) {
                SecretVerdict::Empty => {}
                SecretVerdict::Leak(message) => self.findings.push(Finding {
                    line,
                    message,
                    kind: FindingKind::PlaintextSecret,
                }),
                SecretVerdict::Skipped(reason) => self.skipped.push(Skipped { line, reason }),
            },
            Manifest::SealedSecret(sealed) => {
                for message in check_sealed(&sealed, path, policy) {
                    self.findings.push(Finding {
                        line,
                        message,
                        kind: FindingKind::SealedSecret,
                    });
                }
            }
            Manifest::Other(kind) if sops => self.skipped.push(Skipped {
                line,
                reason: format!(
                    "SOPS-encrypted {}",
                    if kind.is_empty() || kind.starts_with("ENC[") {
                        "document".to_owned()
                    } else {
                        kind
                    }
                ),
            }),
            Manifest::Other(_) => {}
        }
    }
}

/// What a file is checked against.
#[derive(Clone, Copy, Default)]
pub struct Policy<'a> {
    /// The repo config, whose rules name the recipients each file may be sealed to.
    pub config: Option<&'a RepoConfig>,
    /// Recipients of keys known to be compromised (`seal check --compromised`).
    pub compromised: &'a [String],
}

/// Checks one file. `path` is relative to the repo config's directory (for its rules).
pub fn check_text(text: &str, path: Option<&str>, policy: Policy<'_>) -> Vec<Finding> {
    check_file(text, path, policy).findings
}

/// Checks one file, and says what was skipped as not a leak.
pub fn check_file(text: &str, path: Option<&str>, policy: Policy<'_>) -> Report {
    let mut report = Report::default();
    for doc in split_documents(text) {
        let templated = has_template(doc.text);
        let objects = match read_document(&doc) {
            Ok(objects) => objects,
            Err(_) if templated => {
                report.skipped.push(Skipped {
                    line: doc.content_line,
                    reason: "Helm/Go template ({{ }}): not YAML until rendered".into(),
                });
                continue;
            }
            // A document we cannot read could hide a plaintext Secret: report it rather than
            // skip it. As for a file no reader opens, that is the file's one finding: fix it,
            // then the rest is checked.
            Err(e) => {
                report.findings = vec![Finding {
                    line: e.line,
                    message: format!(
                        "cannot parse ({}): fix the YAML/JSON so it can be checked",
                        e.message
                    ),
                    kind: FindingKind::ParseError,
                }];
                return report;
            }
        };
        let sops = doc.text.contains("sops") && has_sops_block(&doc);
        for object in objects {
            report.add_object(object, sops, path, policy);
        }
    }
    report
}

/// What a Secret's values make it.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretVerdict {
    /// No values: nothing to leak.
    Empty,
    /// At least one real value: the message says which.
    Leak(String),
    /// Every value is SOPS-encrypted, a placeholder or a template action: why.
    Skipped(String),
}

/// What one Secret value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValueKind {
    /// `ENC[AES256_GCM,…]`, in a document with a `sops:` block.
    Sops,
    /// Only `${NAME}` placeholders.
    Placeholder,
    /// Only `{{ … }}` template actions.
    Template,
    /// Anything else: plaintext.
    Real,
}

impl ValueKind {
    fn describe(self) -> &'static str {
        match self {
            ValueKind::Sops => "SOPS-encrypted",
            ValueKind::Placeholder => "${VAR} placeholders",
            ValueKind::Template => "{{ }} template actions",
            ValueKind::Real => "plaintext",
        }
    }
}

/// Classifies one value. `sops`: the document has a top-level `sops:` block.
pub fn value_kind(value: &str, sops: bool) -> ValueKind {
    if sops && is_sops_value(value) {
        ValueKind::Sops
    } else if is_placeholder_only(value) {
        ValueKind::Placeholder
    } else if is_template_only(value) {
        ValueKind::Template
    } else {
        ValueKind::Real
    }
}

/// Whether a Secret leaks, is empty, or holds only values that are not plaintext.
pub fn classify_secret(secret: &SecretManifest, sops: bool) -> SecretVerdict {
    use secrecy::ExposeSecret;
    let items = secret
        .data
        .iter()
        .chain(secret.string_data.iter())
        .flat_map(|m| m.iter());
    let mut real = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for (key, value) in items {
        match value_kind(value.expose_secret(), sops) {
            ValueKind::Real => real.push(format!("'{key}'")),
            other => {
                covered.insert(other);
            }
        }
    }
    let what: Vec<&str> = covered.iter().map(|k| k.describe()).collect();
    if !real.is_empty() {
        let mut message = format!("plaintext Secret {}", describe(secret));
        if !covered.is_empty() {
            message.push_str(&format!(
                ": item {} holds plaintext beside {} values",
                real.join(", "),
                what.join(" and ")
            ));
        }
        message.push_str(": seal it with `seal` and commit the SealedSecret instead");
        SecretVerdict::Leak(message)
    } else if covered.is_empty() {
        SecretVerdict::Empty
    } else {
        SecretVerdict::Skipped(format!(
            "Secret {}: only {} values",
            describe(secret),
            what.join(" and ")
        ))
    }
}

/// A SOPS-encrypted value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
pub fn is_sops_value(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("ENC[AES256_GCM,data:") && v.ends_with(']')
}

/// One or more `${NAME}` placeholders and nothing else (Flux postBuild, envsubst). A
/// default (`${NAME:=x}`, `${NAME:-x}`) is plaintext in Git, so it is not a placeholder.
pub fn is_placeholder_only(value: &str) -> bool {
    only_delimited(value, "${", "}", |name| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// One or more `{{ … }}` template actions and nothing else.
pub fn is_template_only(value: &str) -> bool {
    only_delimited(value, "{{", "}}", |_| true)
}

/// Whether `value` is one or more `open`…`close` spans (blanks between them), each holding
/// what `inner_ok` accepts, and nothing else.
fn only_delimited(value: &str, open: &str, close: &str, inner_ok: impl Fn(&str) -> bool) -> bool {
    let mut rest = value.trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix(open) else {
            return false;
        };
        let Some(end) = inner.find(close) else {
            return false;
        };
        if !inner_ok(&inner[..end]) {
            return false;
        }
        rest = inner[end + close.len()..].trim_start();
    }
    true
}

/// Whether a document holds a Go template action `{{ … }}`.
pub fn has_template(text: &str) -> bool {
    text.find("{{")
        .is_some_and(|start| text[start + 2..].contains("}}"))
}

/// Whether a document has a top-level `sops:` mapping (SOPS's metadata block).
fn has_sops_block(doc: &crate::manifest::Document<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        sops: Option<serde_json::Value>,
    }
    parse_document::<Probe>(doc)
        .ok()
        .and_then(|p| p.sops)
        .is_some_and(|v| v.is_object())
}

/// The chart folder when `path` lies under a Helm chart's `templates/` folder, that is a
/// `templates` folder beside a `Chart.yaml` (`is_file` asks the file system).
pub fn chart_of_template(path: &Path, is_file: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .filter(|dir| dir.file_name().is_some_and(|n| n == "templates"))
        .filter_map(|dir| dir.parent())
        .find(|chart| is_file(&chart.join("Chart.yaml")))
        .map(Path::to_path_buf)
}

/// A GitHub Actions workflow command's message, escaped as the runner reads it.
pub fn github_escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A GitHub Actions workflow command's property value (`file=…`), escaped.
pub fn github_escape_property(text: &str) -> String {
    github_escape_data(text)
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// `::error file=…,line=…::message`: one annotation for GitHub Actions.
pub fn github_annotation(file: &str, finding: &Finding) -> String {
    format!(
        "::error file={},line={}::{}",
        github_escape_property(file),
        finding.line,
        github_escape_data(&finding.message)
    )
}

fn describe(secret: &SecretManifest) -> String {
    let name = secret.metadata.name.as_deref().unwrap_or("(unnamed)");
    match secret.metadata.namespace.as_deref() {
        Some(ns) => format!("'{ns}/{name}'"),
        None => format!("'{name}'"),
    }
}

/// Every problem `seal`, the controller or `seal unseal` would hit without a key.
pub fn check_sealed(sealed: &SealedSecret, path: Option<&str>, policy: Policy<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let name = sealed.metadata.name.as_deref().unwrap_or("(unnamed)");
    let mut say = |m: String| problems.push(format!("SealedSecret '{name}': {m}"));
    match target_of_sealed(sealed) {
        Ok(target) => {
            if let Err(e) = Binding::new(sealed.spec.scope, &target) {
                say(e.to_string());
            }
        }
        Err(e) => say(e.to_string()),
    }
    if sealed.spec.encrypted_data.is_empty() {
        say("has no encryptedData".into());
    }
    for (item, ciphertext) in &sealed.spec.encrypted_data {
        let recorded = sealed.spec.recipients.get(item).filter(|r| !r.is_empty());
        check_item(item, ciphertext, recorded, policy, &mut say);
    }
    for item in sealed.spec.recipients.keys() {
        if !sealed.spec.encrypted_data.contains_key(item) {
            say(format!(
                "spec.recipients names item '{item}', which has no encryptedData"
            ));
        }
    }
    let rule = policy
        .config
        .and_then(|c| c.rule_for(path, sealed.metadata.namespace.as_deref()));
    if let Some(rule) = rule {
        check_against_rule(sealed, rule, &mut say);
    }
    problems
}

/// One item's problems: its ciphertext, its record, compromised keys it is sealed to.
fn check_item(
    item: &str,
    ciphertext: &str,
    recorded: Option<&Vec<String>>,
    policy: Policy<'_>,
    say: &mut impl FnMut(String),
) {
    let stanzas = inspect_value(ciphertext);
    if let Err(e) = &stanzas {
        say(format!("item '{item}' {e}"));
    }
    let Some(recorded) = recorded else {
        say(format!(
            "item '{item}' records no recipients in spec.recipients: re-seal it"
        ));
        return;
    };
    if let Some(bad) = recorded.iter().find(|r| parse_recipient(r).is_err()) {
        say(format!(
            "item '{item}' lists '{bad}', which is not an age recipient"
        ));
    }
    if let Some(stanzas) = stanzas
        .as_ref()
        .ok()
        .copied()
        .filter(|n| *n != recorded.len())
    {
        say(format!(
            "item '{item}' {}",
            OpenError::RecordMismatch {
                recorded: recorded.len(),
                stanzas
            }
        ));
    }
    for bad in recorded.iter().filter(|r| policy.compromised.contains(*r)) {
        say(format!(
            "item '{item}' is sealed to compromised key {bad}: whoever holds it can read this value; re-seal it from plaintext and change the credential"
        ));
    }
}

/// The records the repo config's rule for this file disagrees with.
fn check_against_rule(sealed: &SealedSecret, rule: &Rule, say: &mut impl FnMut(String)) {
    let wanted: Vec<String> = rule.recipients.iter().map(|r| r.to_string()).collect();
    for (item, recorded) in &sealed.spec.recipients {
        if !recorded.iter().any(|r| wanted.contains(r)) {
            say(format!(
                "item '{item}' is sealed to none of the recipients .sealant.yaml rule {} lists ({}): stale after a rotation? re-seal it",
                rule.number,
                rule.names.join(", ")
            ));
            continue;
        }
        // A recipient only the file names: added by hand or by a pull request that
        // looked like metadata. Tools that trusted records would seal later values to it.
        for extra in recorded.iter().filter(|r| !wanted.contains(r)) {
            say(format!(
                "item '{item}' records {extra}, which .sealant.yaml rule {} does not list: remove it from spec.recipients (and re-seal) or add it to the rule",
                rule.number
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{SealOptions, seal_secret};
    use crate::keys::generate_key;
    use crate::manifest::read_manifests;
    use crate::output::to_yaml;
    use crate::scope::Scope;

    fn sealed_yaml(recipient: &crate::keys::Recipient) -> String {
        let m = read_manifests(
            "kind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {pw: x}\n",
        )
        .unwrap();
        let Manifest::Secret(s) = &m[0].value else {
            unreachable!()
        };
        let r = [recipient.clone()];
        let opts = SealOptions {
            scope: Scope::Strict,
            recipients: &r,
            namespace: None,
            allow_empty: false,
        };
        to_yaml(&seal_secret(s, &opts).unwrap()).unwrap()
    }

    #[test]
    fn finds_plaintext_secrets_but_not_empty_ones_or_other_kinds() {
        let text = "kind: ConfigMap\ndata: {a: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {}\n---\nkind: Secret\nmetadata: {name: t, namespace: n}\nstringData: {a: b}\n";
        let findings = check_text(text, None, Policy::default());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].line, 9);
        assert!(findings[0].message.contains("plaintext Secret 'n/t'"));
    }

    fn with(config: &RepoConfig) -> Policy<'_> {
        Policy {
            config: Some(config),
            compromised: &[],
        }
    }

    #[test]
    fn sealed_secrets_are_checked_against_the_config() {
        let old = generate_key("t").recipient;
        let new = generate_key("t").recipient;
        let text = sealed_yaml(&old);
        assert_eq!(check_text(&text, Some("a.yaml"), Policy::default()), vec![]);
        let config = RepoConfig::parse(&format!(
            "recipients:\n  prod: {new}\nrules:\n  - recipients: [prod]\n"
        ))
        .unwrap();
        let findings = check_text(&text, Some("a.yaml"), with(&config));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("sealed to none of the recipients"),
            "{:?}",
            findings
        );
        let config = RepoConfig::parse(&format!(
            "recipients:\n  prod: [{new}, {old}]\nrules:\n  - recipients: [prod]\n"
        ))
        .unwrap();
        assert_eq!(check_text(&text, Some("a.yaml"), with(&config)), vec![]);
    }

    #[test]
    fn records_naming_unlisted_recipients_are_reported() {
        // A pull request that only appends a recipient to a record looks like metadata.
        let prod = generate_key("t").recipient;
        let attacker = generate_key("t").recipient.to_string();
        let config = RepoConfig::parse(&format!(
            "recipients:\n  prod: {prod}\nrules:\n  - recipients: [prod]\n"
        ))
        .unwrap();
        let clean = sealed_yaml(&prod);
        assert_eq!(check_text(&clean, Some("a.yaml"), with(&config)), vec![]);
        let edited = clean.replace(
            &format!("    - {prod}\n"),
            &format!("    - {prod}\n    - {attacker}\n"),
        );
        let findings = check_text(&edited, Some("a.yaml"), with(&config));
        let all: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            all,
            [
                "SealedSecret 'db': item 'pw' records 2 recipients in spec.recipients but its header holds 1 X25519 stanzas: the record was altered; re-seal it with `seal`".to_owned(),
                format!("SealedSecret 'db': item 'pw' records {attacker}, which .sealant.yaml rule 1 does not list: remove it from spec.recipients (and re-seal) or add it to the rule"),
            ]
        );
        // Without a config, the count still gives the edit away.
        assert_eq!(
            check_text(&edited, Some("a.yaml"), Policy::default()).len(),
            1
        );
    }

    #[test]
    fn values_sealed_to_a_compromised_key_are_listed() {
        let bad = generate_key("t").recipient;
        let text = sealed_yaml(&bad);
        let compromised = [bad.to_string()];
        let policy = Policy {
            config: None,
            compromised: &compromised,
        };
        let findings = check_text(&text, Some("a.yaml"), policy);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0]
                .message
                .contains(&format!("is sealed to compromised key {bad}")),
            "{findings:?}"
        );
        assert_eq!(check_text(&text, Some("a.yaml"), Policy::default()), vec![]);
    }

    #[test]
    fn malformed_sealed_secrets_are_reported() {
        let text = "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db}\nspec:\n  encryptedData: {pw: '!!!'}\n";
        let findings = check_text(text, None, Policy::default());
        let all: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            all.iter().any(|m| m.contains("needs a namespace")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|m| m.contains("not valid base64")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|m| m.contains("records no recipients")),
            "{all:?}"
        );
        let broken = check_text("kind: Secret\n  bad: [\n", None, Policy::default());
        assert!(broken[0].message.starts_with("cannot parse"));
    }

    const SOPS_VALUE: &str = "ENC[AES256_GCM,data:3q2+7w==,iv:AAAA,tag:BBBB,type:str]";

    fn sops_secret(values: &[(&str, &str)], block: bool) -> String {
        let mut s =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n"
                .to_owned();
        for (k, v) in values {
            s.push_str(&format!("  {k}: \"{v}\"\n"));
        }
        if block {
            s.push_str("sops:\n  age:\n    - recipient: age1x\n  encrypted_regex: ^(data|stringData)$\n  version: 3.9.0\n");
        }
        s
    }

    #[test]
    fn sops_encrypted_secrets_are_skipped_not_leaks() {
        let report = check_file(
            &sops_secret(&[("pw", SOPS_VALUE)], true),
            None,
            Policy::default(),
        );
        assert_eq!(report.findings, vec![]);
        assert_eq!(
            report.skipped,
            vec![Skipped {
                line: 1,
                reason: "Secret 'prod/db': only SOPS-encrypted values".into()
            }]
        );
        // ENC[…] without a sops: block is not SOPS: a leak.
        let report = check_file(
            &sops_secret(&[("pw", SOPS_VALUE)], false),
            None,
            Policy::default(),
        );
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.skipped, vec![]);
        // A plaintext value beside encrypted ones is a leak, and names the item.
        let report = check_file(
            &sops_secret(&[("pw", SOPS_VALUE), ("user", "admin")], true),
            None,
            Policy::default(),
        );
        assert_eq!(report.skipped, vec![]);
        assert_eq!(
            report.findings,
            vec![Finding {
                line: 1,
                message: "plaintext Secret 'prod/db': item 'user' holds plaintext beside SOPS-encrypted values: seal it with `seal` and commit the SealedSecret instead".into(),
                kind: FindingKind::PlaintextSecret,
            }]
        );
        // A wholly encrypted document (kind too) is skipped as SOPS.
        let whole =
            "kind: ENC[AES256_GCM,data:abc=,iv:a,tag:b,type:str]\nsops:\n  version: 3.9.0\n";
        let report = check_file(whole, None, Policy::default());
        assert_eq!(report.findings, vec![]);
        assert_eq!(report.skipped[0].reason, "SOPS-encrypted document");
    }

    #[test]
    fn a_document_that_only_mentions_sops_is_not_sops() {
        // "sops" in a name is no `sops:` block: ENC[…] values there are plaintext.
        let named = sops_secret(&[("pw", SOPS_VALUE)], false).replace("name: db", "name: sops-db");
        let report = check_file(&named, None, Policy::default());
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.skipped, vec![]);
        // Other kinds outside a SOPS document are neither findings nor skipped.
        let config_map = "kind: ConfigMap\nmetadata: {name: sops}\ndata: {a: b}\n";
        assert_eq!(
            check_file(config_map, None, Policy::default()),
            Report::default()
        );
    }

    #[test]
    fn sops_values_need_both_the_prefix_and_the_closing_bracket() {
        assert!(is_sops_value(SOPS_VALUE));
        assert!(is_sops_value(&format!("  {SOPS_VALUE}\n")));
        for no in [
            "ENC[AES256_GCM,data:abc",
            "hunter2]",
            "ENC[AES256_GCM,abc]",
            "",
        ] {
            assert!(!is_sops_value(no), "{no}");
        }
    }

    #[test]
    fn a_finding_displays_as_line_and_message() {
        let finding = Finding {
            line: 3,
            message: "plaintext Secret 'n/t'".into(),
            kind: FindingKind::PlaintextSecret,
        };
        assert_eq!(finding.to_string(), "3: plaintext Secret 'n/t'");
    }

    #[test]
    fn placeholders_are_only_bare_names() {
        for yes in ["${DB_PASSWORD}", " ${a}${B_2} ", "${x} ${y}"] {
            assert!(is_placeholder_only(yes), "{yes}");
        }
        for no in [
            "",
            "hunter2",
            "${PW:=hunter2}",
            "${PW:-hunter2}",
            "pre${PW}",
            "${PW}post",
            "${1X}",
            "${}",
            "${PW",
            "$PW",
        ] {
            assert!(!is_placeholder_only(no), "{no}");
        }
        assert_eq!(value_kind("${PW}", false), ValueKind::Placeholder);
        assert_eq!(value_kind(SOPS_VALUE, false), ValueKind::Real);
        assert_eq!(value_kind(SOPS_VALUE, true), ValueKind::Sops);
        assert_eq!(
            value_kind("{{ .Values.pw | b64enc }}", false),
            ValueKind::Template
        );
        assert_eq!(value_kind("x{{ .pw }}", false), ValueKind::Real);
    }

    #[test]
    fn flux_placeholder_secrets_are_skipped_mixed_ones_leak() {
        let only = sops_secret(&[("pw", "${DB_PW}"), ("user", "${DB_USER}")], false);
        let report = check_file(&only, None, Policy::default());
        assert_eq!(report.findings, vec![]);
        assert_eq!(
            report.skipped[0].reason,
            "Secret 'prod/db': only ${VAR} placeholders values"
        );
        let mixed = sops_secret(&[("pw", "hunter2"), ("user", "${DB_USER}")], false);
        let report = check_file(&mixed, None, Policy::default());
        assert_eq!(report.skipped, vec![]);
        assert_eq!(report.findings.len(), 1);
        assert!(
            report.findings[0]
                .message
                .contains("item 'pw' holds plaintext beside ${VAR} placeholders values"),
            "{report:?}"
        );
        let defaulted = sops_secret(&[("pw", "${DB_PW:=hunter2}")], false);
        assert_eq!(check_text(&defaulted, None, Policy::default()).len(), 1);
    }

    #[test]
    fn templates_are_skipped_not_parse_errors() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\n{{- with .Values.pw }}\nstringData:\n  pw: {{ . }}\n{{- end }}\n---\nkind: Secret\nmetadata: {name: real}\nstringData: {pw: hunter2}\n";
        let report = check_file(text, None, Policy::default());
        assert_eq!(
            report.skipped,
            vec![Skipped {
                line: 1,
                reason: "Helm/Go template ({{ }}): not YAML until rendered".into()
            }]
        );
        // The document after the template is still checked.
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].line, 10);
        // A document without {{ }} that does not parse is still a parse error: the file's
        // one finding.
        let broken = check_file("kind: Secret\n  bad: [\n", None, Policy::default());
        assert_eq!(broken.findings[0].kind, FindingKind::ParseError);
        assert_eq!(broken.skipped, vec![]);
        let two = format!("{text}---\nkind: Secret\n  bad: [\n---\na: [\n");
        let report = check_file(&two, None, Policy::default());
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].line, 15);
        assert_eq!(report.findings[0].kind, FindingKind::ParseError);
        // A Secret that parses, with quoted template values only, is skipped; with a real
        // value beside them it leaks.
        let quoted = sops_secret(&[("pw", "{{ .Values.pw }}")], false);
        assert_eq!(
            check_file(&quoted, None, Policy::default()).findings,
            vec![]
        );
        let mixed = sops_secret(&[("pw", "{{ .Values.pw }}"), ("u", "root")], false);
        assert_eq!(check_text(&mixed, None, Policy::default()).len(), 1);
    }

    #[test]
    fn chart_templates_need_a_chart_yaml_beside_them() {
        let charts = ["charts/app/Chart.yaml"];
        let is_file = |p: &Path| charts.iter().any(|c| Path::new(c) == p);
        assert_eq!(
            chart_of_template(Path::new("charts/app/templates/secret.yaml"), is_file),
            Some(PathBuf::from("charts/app"))
        );
        assert_eq!(
            chart_of_template(Path::new("charts/app/templates/sub/x.yaml"), is_file),
            Some(PathBuf::from("charts/app"))
        );
        assert_eq!(
            chart_of_template(Path::new("charts/app/values.yaml"), is_file),
            None
        );
        assert_eq!(
            chart_of_template(Path::new("other/templates/x.yaml"), is_file),
            None
        );
    }

    #[test]
    fn github_annotations_are_escaped() {
        let finding = Finding {
            line: 3,
            message: "100% bad\r\nsecond: line, yes".into(),
            kind: FindingKind::PlaintextSecret,
        };
        assert_eq!(
            github_annotation("dir,a/b:c%.yaml", &finding),
            "::error file=dir%2Ca/b%3Ac%25.yaml,line=3::100%25 bad%0D%0Asecond: line, yes"
        );
    }
}
