//! The repo config `.sealant.yaml`: named recipients (clusters, break-glass keys) and ordered
//! rules mapping path globs and/or namespaces to them. The first matching rule wins, as in
//! `.sops.yaml`.
//!
//! ```yaml
//! recipients:
//!   prod: age1…                 # one recipient, or a list
//!   staging: [age1…, age1…]
//!   break-glass: age1…
//! rules:
//!   - path: clusters/prod/**    # glob on the sealed file's path, relative to this file
//!     recipients: [prod, break-glass]
//!   - namespace: "team-*"       # glob on the Secret's namespace
//!     recipients: [staging, break-glass]
//! check:
//!   exclude: [legacy/, "**/*.example.yaml"]   # not read by `seal check` (gitignore syntax)
//! ```

use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::keys::{KeyError, Recipient, parse_recipient};
use crate::manifest::{Document, ParseError, parse_document};

pub const CONFIG_FILE_NAME: &str = ".sealant.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    recipients: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    rules: Vec<RuleFile>,
    #[serde(default)]
    check: CheckFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    recipients: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("recipient '{name}': {error}")]
    BadRecipient { name: String, error: KeyError },
    #[error("rule {rule}: unknown recipient name '{name}' (define it under recipients:)")]
    UnknownName { rule: usize, name: String },
    #[error("rule {rule}: bad glob '{glob}': {error}")]
    BadGlob {
        rule: usize,
        glob: String,
        error: globset::ErrorKind,
    },
    #[error("rule {0} lists no recipients")]
    EmptyRule(usize),
    #[error("check.exclude entry {entry}: {error}")]
    BadExclude {
        entry: usize,
        error: crate::exclude::BadExclude,
    },
}

/// One rule, with its recipients resolved.
#[derive(Debug)]
pub struct Rule {
    /// 1-based position in the file, for messages.
    pub number: usize,
    path: Option<GlobMatcher>,
    namespace: Option<GlobMatcher>,
    /// The names as written, for messages.
    pub names: Vec<String>,
    pub recipients: Vec<Recipient>,
}

#[derive(Debug)]
pub struct RepoConfig {
    pub rules: Vec<Rule>,
    /// `check.exclude`: gitignore-style patterns relative to the config's directory.
    pub check_exclude: Vec<String>,
}

impl RepoConfig {
    pub fn parse(text: &str) -> Result<RepoConfig, ConfigError> {
        let doc = Document {
            first_line: 1,
            content_line: 1,
            text,
        };
        let file: ConfigFile = parse_document(&doc)?;
        let named = named_recipients(file.recipients)?;
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| Rule::resolve(i + 1, rule, &named))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, pattern) in file.check.exclude.iter().enumerate() {
            crate::exclude::Excludes::new(std::path::Path::new(""), std::slice::from_ref(pattern))
                .map_err(|error| ConfigError::BadExclude {
                    entry: i + 1,
                    error,
                })?;
        }
        Ok(RepoConfig {
            rules,
            check_exclude: file.check.exclude,
        })
    }

    /// The first rule that matches a sealed file at `path` (relative to the config's
    /// directory, `/`-separated; `None` for stdout) holding a Secret in `namespace`.
    pub fn rule_for(&self, path: Option<&str>, namespace: Option<&str>) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            let path_ok = match (&rule.path, path) {
                (None, _) => true,
                (Some(g), Some(p)) => g.is_match(p),
                (Some(_), None) => false,
            };
            let ns_ok = match (&rule.namespace, namespace) {
                (None, _) => true,
                (Some(g), Some(ns)) => g.is_match(ns),
                (Some(_), None) => false,
            };
            path_ok && ns_ok
        })
    }
}

/// The `recipients:` map, each name's recipients parsed.
fn named_recipients(
    file: BTreeMap<String, OneOrMany>,
) -> Result<BTreeMap<String, Vec<Recipient>>, ConfigError> {
    let mut named = BTreeMap::new();
    for (name, value) in file {
        let list = match value {
            OneOrMany::One(r) => vec![r],
            OneOrMany::Many(rs) => rs,
        };
        let parsed = list
            .iter()
            .map(|r| parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ConfigError::BadRecipient {
                name: name.clone(),
                error,
            })?;
        named.insert(name, parsed);
    }
    Ok(named)
}

impl Rule {
    /// Rule `number` (1-based) as written, its names resolved against `named`.
    fn resolve(
        number: usize,
        rule: RuleFile,
        named: &BTreeMap<String, Vec<Recipient>>,
    ) -> Result<Rule, ConfigError> {
        if rule.recipients.is_empty() {
            return Err(ConfigError::EmptyRule(number));
        }
        let mut recipients = Vec::new();
        for name in &rule.recipients {
            let found = named.get(name).ok_or_else(|| ConfigError::UnknownName {
                rule: number,
                name: name.clone(),
            })?;
            recipients.extend(found.iter().cloned());
        }
        Ok(Rule {
            number,
            path: rule
                .path
                .as_deref()
                .map(|g| glob(number, g, true))
                .transpose()?,
            namespace: rule
                .namespace
                .as_deref()
                .map(|g| glob(number, g, false))
                .transpose()?,
            names: rule.recipients,
            recipients,
        })
    }
}

fn glob(rule: usize, pattern: &str, path: bool) -> Result<GlobMatcher, ConfigError> {
    let built = if path {
        // `*` stays within one directory; `**` crosses them.
        GlobBuilder::new(pattern.trim_start_matches("./"))
            .literal_separator(true)
            .build()
    } else {
        Glob::new(pattern)
    };
    built
        .map(|g| g.compile_matcher())
        .map_err(|e| ConfigError::BadGlob {
            rule,
            glob: pattern.to_owned(),
            error: e.kind().clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;

    fn config(rules: &str) -> (RepoConfig, [String; 3]) {
        let keys = [0, 1, 2].map(|_| generate_key("t").recipient.to_string());
        let text = format!(
            "recipients:\n  prod: {}\n  staging: [{}]\n  glass: {}\nrules:\n{rules}",
            keys[0], keys[1], keys[2]
        );
        (RepoConfig::parse(&text).unwrap(), keys)
    }

    #[test]
    fn first_matching_rule_wins() {
        let (c, keys) = config(
            "  - path: clusters/prod/**\n    recipients: [prod, glass]\n  - namespace: 'team-*'\n    recipients: [staging]\n  - recipients: [glass]\n",
        );
        let prod = c
            .rule_for(Some("clusters/prod/app/db.yaml"), Some("team-a"))
            .unwrap();
        assert_eq!(prod.names, ["prod", "glass"]);
        assert_eq!(prod.recipients[1].to_string(), keys[2]);
        assert_eq!(
            c.rule_for(Some("clusters/dev/db.yaml"), Some("team-a"))
                .unwrap()
                .number,
            2
        );
        assert_eq!(c.rule_for(None, Some("other")).unwrap().number, 3);
        assert_eq!(c.rule_for(None, None).unwrap().number, 3);
    }

    #[test]
    fn single_star_stays_in_one_directory() {
        let (c, _) = config("  - path: 'apps/*.yaml'\n    recipients: [prod]\n");
        assert!(c.rule_for(Some("apps/db.yaml"), None).is_some());
        assert!(c.rule_for(Some("apps/x/db.yaml"), None).is_none());
    }

    #[test]
    fn config_errors_are_specific() {
        let err = RepoConfig::parse("rules:\n  - recipients: [nope]\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownName {
                rule: 1,
                name: "nope".into()
            }
        );
        let err = RepoConfig::parse("recipients:\n  a: age1bad\n").unwrap_err();
        assert!(matches!(err, ConfigError::BadRecipient { .. }), "{err}");
        let err = RepoConfig::parse("recipient: {}\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        // check: takes only exclude:, and each entry must be a valid glob.
        let err = RepoConfig::parse("check:\n  exclud: [a]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        let err = RepoConfig::parse("check:\n  exclude: [ok/, '[z-a]']\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("check.exclude entry 2: bad glob '[z-a]': "),
            "{err}"
        );
        let c = RepoConfig::parse("check:\n  exclude: [legacy/]\n").unwrap();
        assert_eq!(c.check_exclude, ["legacy/"]);
    }
}
