//! Choosing recipients: `-r`/`-R` when given, else the repo config's first matching rule,
//! else (for the sealing commands) the cluster's.

use std::cell::OnceCell;
use std::path::Path;

use sealant_core::keys::{Recipient, parse_recipient, parse_recipients_file};

use crate::cli::{ClusterArgs, SealToArgs};
use crate::cluster::fetch_recipients;
use crate::failure::{Failure, Result};
use crate::files::{FoundConfig, find_config, read_input};

pub enum Recipients {
    Explicit(Vec<Recipient>),
    Config(FoundConfig),
    /// The cluster's, fetched when first needed; the error message says why not.
    Cluster(
        Box<ClusterArgs>,
        OnceCell<std::result::Result<Vec<Recipient>, String>>,
    ),
    Unset,
}

impl Recipients {
    pub fn from_args(args: &SealToArgs) -> Result<Self> {
        let mut explicit = Vec::new();
        for r in &args.recipients {
            explicit.push(parse_recipient(r).map_err(|e| Failure::new(format!("-r: {e}")))?);
        }
        for file in &args.recipients_files {
            let text = read_input(file)?;
            explicit.extend(parse_recipients_file(&text).map_err(|e| Failure::in_file(file, e))?);
        }
        if !explicit.is_empty() {
            return Ok(Recipients::Explicit(explicit));
        }
        Ok(match find_config(args.config.as_deref())? {
            Some(found) => Recipients::Config(found),
            None => Recipients::Unset,
        })
    }

    /// With nothing given, the cluster's recipients (as `seal fetch-keys` prints them), as
    /// kubeseal fetches its certificate. Nothing is sent until they are needed.
    pub fn or_cluster(self, cluster: &ClusterArgs) -> Self {
        match self {
            Recipients::Unset => Recipients::Cluster(Box::new(cluster.clone()), OnceCell::new()),
            other => other,
        }
    }

    /// The recipients for a sealed file at `path` (None: stdout) holding a Secret in `namespace`.
    /// `Ok(None)` when nothing says.
    pub fn lookup(
        &self,
        path: Option<&Path>,
        namespace: Option<&str>,
    ) -> Result<Option<Vec<Recipient>>> {
        match self {
            Recipients::Explicit(list) => Ok(Some(list.clone())),
            Recipients::Unset => Ok(None),
            Recipients::Cluster(args, fetched) => {
                match fetched.get_or_init(|| fetch_recipients(args).map_err(|e| e.to_string())) {
                    Ok(list) => Ok(Some(list.clone())),
                    Err(reason) => Err(Failure::new(format!(
                        "{NO_RECIPIENTS}, or make the cluster reachable ({reason})"
                    ))),
                }
            }
            Recipients::Config(found) => {
                let rel = path.and_then(|p| found.relative(p));
                match found.config.rule_for(rel.as_deref(), namespace) {
                    Some(rule) => Ok(Some(rule.recipients.clone())),
                    None => Err(Failure::new(format!(
                        "no rule in {} matches {} (namespace {}): add a rule or pass -r/-R",
                        found.path.display(),
                        rel.as_deref().unwrap_or("output on stdout"),
                        namespace.unwrap_or("none"),
                    ))),
                }
            }
        }
    }

    /// Like [`lookup`](Self::lookup), but with nothing to say is an error.
    pub fn require(&self, path: Option<&Path>, namespace: Option<&str>) -> Result<Vec<Recipient>> {
        self.lookup(path, namespace)?
            .ok_or_else(|| Failure::new(format!("{NO_RECIPIENTS}, or make the cluster reachable")))
    }
}

const NO_RECIPIENTS: &str = "no recipients: pass -r age1…, -R FILE, add a .sealant.yaml";
