//! `seal validate`: asks the controller whether SealedSecrets would open in its cluster.

use http::StatusCode;
use sealant_core::manifest::Located;
use serde::Deserialize;

use super::{inputs_or_stdin, read_objects, sealed_label, sealed_secrets};
use crate::cli::ValidateArgs;
use crate::cluster::Cluster;
use crate::failure::{Failure, Result, display_path};
use crate::files::emit;

/// The controller's `/v1/verify` answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    opened_with: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

pub fn run(args: &ValidateArgs) -> Result<()> {
    let inputs = inputs_or_stdin(&args.files);
    // Every input is read first: a bad file fails before the cluster is asked anything.
    let mut objects = Vec::new();
    for input in &inputs {
        for sealed in sealed_secrets(input, read_objects(input)?)? {
            objects.push((input, sealed));
        }
    }
    let cluster = Cluster::connect(&args.cluster)?;
    let mut out = String::new();
    for (
        input,
        Located {
            line,
            value: sealed,
        },
    ) in &objects
    {
        let label = sealed_label(sealed);
        let fail = |message: String| Failure::at_line(input, *line, format!("{label}: {message}"));
        let body = serde_json::to_vec(sealed).map_err(|e| fail(e.to_string()))?;
        let reply = cluster
            .post_to_controller("/v1/verify", body)
            .map_err(|e| fail(e.to_string()))?;
        if !matches!(reply.status, StatusCode::OK | StatusCode::CONFLICT) {
            return Err(fail(cluster.controller_failure(&reply)));
        }
        let verdict: Verdict = serde_json::from_slice(&reply.body)
            .map_err(|_| fail(cluster.controller_failure(&reply)))?;
        if reply.status != StatusCode::OK || !verdict.ok {
            return Err(fail(verdict.error.unwrap_or_else(|| {
                "does not open in this cluster (the controller gave no reason)".into()
            })));
        }
        let keys = match verdict.opened_with.as_slice() {
            [] => String::new(),
            [one] => format!(" (key {one})"),
            many => format!(" (keys {})", many.join(", ")),
        };
        out.push_str(&format!(
            "{}: {label} opens in this cluster{keys}\n",
            display_path(input)
        ));
    }
    emit(&out, None)
}
