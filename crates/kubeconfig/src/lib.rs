//! How both binaries (`seal` and `seal-controller`) find their cluster, the way kubectl does:
//! `--kubeconfig FILE` over `$KUBECONFIG` over `~/.kube/config` (and, with none of them, the
//! Pod's service account), `--context NAME` over the current context, the context's
//! namespace as the default namespace, and the cluster's `proxy-url` (http:// through a CONNECT
//! tunnel, socks5://). It also holds the one wording of what is wrong with a kubeconfig, so the
//! two binaries say the same thing.
//!
//! Only configuration is read here; nothing is sent to a cluster.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Which kubeconfig and which of its contexts: the `--kubeconfig` and `--context` flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--kubeconfig`: this one file, whatever `$KUBECONFIG` says.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: this context, not the current one.
    pub context: Option<String>,
}

/// Why no client configuration could be loaded: each message names the kubeconfig and what to
/// fix, on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientConfigError {
    /// No `$KUBECONFIG`, no home directory to find `~/.kube/config` in, and not in a Pod.
    #[error(
        "no kubeconfig (pass --kubeconfig, set KUBECONFIG or create ~/.kube/config), {NOT_IN_A_POD}"
    )]
    Nowhere,
    /// The kubeconfig file does not exist. `pod_hint`: the Pod's service account would have
    /// been used instead, had the process run in one.
    #[error("no kubeconfig at {}{}", path.display(), if *pod_hint { NOT_IN_A_POD_SUFFIX } else { "" })]
    Missing { path: PathBuf, pod_hint: bool },
    #[error("kubeconfig {}: cannot read: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `--context NAME` (or the current-context) names a context the kubeconfig lacks.
    #[error("kubeconfig {place}: no context '{name}' (see kubectl config get-contexts)")]
    NoContext { place: String, name: String },
    #[error("kubeconfig {place}: no current-context is set: pass --context NAME")]
    NoCurrentContext { place: String },
    #[error("kubeconfig {place}: context names cluster '{name}', which the kubeconfig lacks")]
    NoCluster { place: String, name: String },
    /// Not YAML, or not a kubeconfig; `detail` is the parser's first line.
    #[error("kubeconfig {place}: not a valid kubeconfig: {detail}")]
    Invalid { place: String, detail: String },
    /// Any other fault (a bad certificate, a malformed server or proxy URL, …): kube's message.
    #[error("kubeconfig {place}: {detail}")]
    Unusable { place: String, detail: String },
    /// In a Pod, with no kubeconfig, but its service account cannot be used.
    #[error("no kubeconfig, and the Pod's service account cannot be used: {detail}")]
    InCluster { detail: String },
}

const NOT_IN_A_POD: &str = "and not in a Pod (KUBERNETES_SERVICE_HOST is not set)";
const NOT_IN_A_POD_SUFFIX: &str = ", and not in a Pod (KUBERNETES_SERVICE_HOST is not set)";

/// The client configuration kubectl would use for `selection`: the cluster's URL, credentials
/// and `proxy_url`, and in `default_namespace` the context's namespace (else `default`; in a
/// Pod, the Pod's).
pub async fn load(selection: &Selection) -> Result<Config, ClientConfigError> {
    let options = KubeConfigOptions {
        context: selection.context.clone(),
        ..Default::default()
    };
    let loaded = match &selection.kubeconfig {
        Some(path) => match Kubeconfig::read_from(path) {
            Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await,
            Err(e) => Err(e),
        },
        None => Config::from_kubeconfig(&options).await,
    };
    // As kubectl: with no kubeconfig flag, file or context asked for, a Pod uses its own.
    let pod_may_help = *selection == Selection::default();
    match loaded {
        Ok(config) => Ok(config),
        Err(e) if pod_may_help && is_missing(&e) && in_a_pod() => {
            Config::incluster().map_err(|e| ClientConfigError::InCluster { detail: chain(&e) })
        }
        Err(e) => Err(describe(e, selection.kubeconfig.as_deref(), pod_may_help)),
    }
}

/// The namespace kubectl would use without `-n`: the selected context's, else `default`.
/// `Ok(None)` when there is no kubeconfig at all: a Pod's service account does not count, so
/// that sealing in a CI Pod never binds a Secret to the CI runner's namespace unasked.
/// Reads the kubeconfig only (no certificates, nothing sent).
pub fn context_namespace(selection: &Selection) -> Result<Option<String>, ClientConfigError> {
    let read = match &selection.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    let kubeconfig = match read {
        Ok(kubeconfig) => kubeconfig,
        Err(e) if selection.kubeconfig.is_none() && is_missing(&e) => return Ok(None),
        Err(e) => return Err(describe(e, selection.kubeconfig.as_deref(), false)),
    };
    let place = || place(selection.kubeconfig.as_deref());
    let name = match (&selection.context, &kubeconfig.current_context) {
        (Some(name), _) => name,
        (None, Some(name)) if !name.is_empty() => name,
        (None, _) => return Err(ClientConfigError::NoCurrentContext { place: place() }),
    };
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| &c.name == name)
        .ok_or_else(|| ClientConfigError::NoContext {
            place: place(),
            name: name.clone(),
        })?;
    let namespace = context.context.as_ref().and_then(|c| c.namespace.clone());
    Ok(Some(
        namespace
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
    ))
}

fn in_a_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty())
}

fn is_missing(e: &KubeconfigError) -> bool {
    match e {
        KubeconfigError::FindPath => true,
        KubeconfigError::ReadConfig(io, _) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

fn describe(e: KubeconfigError, flag: Option<&Path>, pod_hint: bool) -> ClientConfigError {
    let place = place(flag);
    match e {
        KubeconfigError::FindPath => ClientConfigError::Nowhere,
        KubeconfigError::ReadConfig(io, path) if io.kind() == std::io::ErrorKind::NotFound => {
            ClientConfigError::Missing { path, pod_hint }
        }
        KubeconfigError::ReadConfig(error, path) => ClientConfigError::Unreadable { path, error },
        KubeconfigError::LoadContext(name) => ClientConfigError::NoContext { place, name },
        KubeconfigError::CurrentContextNotSet => ClientConfigError::NoCurrentContext { place },
        KubeconfigError::LoadClusterOfContext(name) => ClientConfigError::NoCluster { place, name },
        KubeconfigError::Parse(parse) => ClientConfigError::Invalid {
            place,
            // The parser draws the source below its first line.
            detail: first_line(&parse.to_string())
                .trim_start_matches("error: ")
                .to_owned(),
        },
        other => ClientConfigError::Unusable {
            place,
            detail: first_line(&chain(&other)).to_owned(),
        },
    }
}

/// Where the kubeconfig is read from, for messages: `--kubeconfig`, else `$KUBECONFIG` (a
/// list, as given), else `~/.kube/config`.
fn place(flag: Option<&Path>) -> String {
    if let Some(path) = flag {
        return path.display().to_string();
    }
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(value) => value.to_string_lossy().into_owned(),
        None => "~/.kube/config".into(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim_end()
}

/// Why a request got no answer, when no connection was made: the root cause alone (e.g.
/// "Connection refused (os error 111)"), which both binaries put after "cannot reach …".
/// `None` for any other client error, which [`chain`] says.
pub fn connection_failure(e: &kube::Error) -> Option<String> {
    if !matches!(e, kube::Error::Service(_) | kube::Error::HyperError(_)) {
        return None;
    }
    let mut cause: &dyn StdError = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string())
}

/// An error and its causes, each said once (kube's errors repeat their cause in their own
/// message; both binaries print client errors through this).
pub fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}
