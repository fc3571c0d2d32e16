//! `seal check`: findings for one file's text: plaintext Secrets, malformed SealedSecrets,
//! SealedSecrets sealed to none of the recipients the repo config lists for them today,
//! records naming recipients the config does not list (an edit that would capture later
//! values), and values sealed to a key known to be compromised.

use std::fmt;

use crate::config::RepoConfig;
use crate::convert::target_of_sealed;
use crate::crd::SealedSecret;
use crate::keys::parse_recipient;
use crate::manifest::{Located, Manifest, SecretManifest, read_manifests};
use crate::scope::Binding;
use crate::value::{OpenError, inspect_value};

/// One problem, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
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
    let manifests = match read_manifests(text) {
        Ok(m) => m,
        // A file we cannot read could hide a plaintext Secret: report it rather than skip it.
        Err(e) => {
            return vec![Finding {
                line: e.line,
                message: format!(
                    "cannot parse ({}): fix the YAML/JSON so it can be checked",
                    e.message
                ),
            }];
        }
    };
    let mut findings = Vec::new();
    for Located { line, value } in manifests {
        let mut report = |message: String| findings.push(Finding { line, message });
        match value {
            Manifest::Secret(secret) => {
                if secret.has_values() {
                    report(format!(
                        "plaintext Secret {}: seal it with `seal` and commit the SealedSecret instead",
                        describe(&secret)
                    ));
                }
            }
            Manifest::SealedSecret(sealed) => {
                for message in check_sealed(&sealed, path, policy) {
                    report(message);
                }
            }
            Manifest::Other(_) => {}
        }
    }
    findings
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
        let stanzas = inspect_value(ciphertext);
        if let Err(e) = &stanzas {
            say(format!("item '{item}' {e}"));
        }
        match sealed.spec.recipients.get(item).filter(|r| !r.is_empty()) {
            None => say(format!(
                "item '{item}' records no recipients in spec.recipients: re-seal it"
            )),
            Some(recorded) => {
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
        }
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
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{SealOptions, seal_secret};
    use crate::keys::generate_key;
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
}
