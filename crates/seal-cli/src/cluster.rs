//! Talking to a cluster: the API server through the kubeconfig, and the controller's HTTP API
//! through the API server's service proxy, or directly at `--controller-url`. Only the commands
//! that need a cluster make a (current-thread) runtime.

use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::client::Body;
use kube::{Client, Config};
use sealant_core::keys::{Recipient, parse_recipients_file};
use sealant_core::keystore::{RECIPIENTS_CONFIGMAP, RECIPIENTS_DATA};
use sealant_kubeconfig::{Selection, chain, connection_failure, context_namespace};
use tokio::runtime::Runtime;

use crate::cli::ClusterArgs;
use crate::failure::{Failure, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries after the first while the controller is busy (see [`Cluster::post_patiently`]).
const BUSY_RETRIES: u32 = 4;
/// The longest wait between two tries, whatever `Retry-After` asks.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// Longest part of a response body quoted in an error.
const DETAIL_CHARS: usize = 200;

/// A client for one cluster (or one controller URL) and the runtime it runs on.
pub struct Cluster {
    runtime: Runtime,
    client: Client,
    /// The API server's (or the controller's) URL, for messages.
    server: String,
    /// `--controller-url` was given: no API server in between.
    direct: bool,
    namespace: String,
    /// Prepended to the controller's API paths: the service proxy path, or empty.
    controller_prefix: String,
    /// "the controller at …", for messages.
    controller: String,
}

/// An HTTP answer, whatever its status.
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    retry_after: Option<String>,
}

impl Reply {
    /// What the body says went wrong: a controller's `error`, an API server Status's
    /// `message`, or the first line of a text body.
    pub fn detail(&self) -> Option<String> {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            for key in ["error", "message"] {
                if let Some(text) = value.get(key).and_then(|v| v.as_str())
                    && !text.trim().is_empty()
                {
                    return Some(clip(text));
                }
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            // An HTML error page says nothing the status does not.
            .filter(|l| !l.starts_with('<'))
            .map(clip)
    }

    /// Seconds to wait before trying again, from a 429's `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after.as_deref()?.trim().parse().ok()
    }
}

impl Cluster {
    /// A client for the controller URL when given, else for the kubeconfig's cluster.
    /// Loads configuration only: nothing is sent yet.
    pub fn connect(args: &ClusterArgs) -> Result<Cluster> {
        // kube builds its TLS config from rustls' process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))?;
        let direct = args.controller_url.is_some();
        let mut config = match &args.controller_url {
            Some(url) => Config::new(url.clone()),
            None => runtime
                .block_on(sealant_kubeconfig::load(&args.selection()))
                .map_err(|e| Failure::new(e.to_string()))?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        // One clear answer per request: a 429 or 503 is reported, not retried for minutes.
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        // The client spawns its request buffer, so it is made inside the runtime.
        let client = runtime
            .block_on(async { Client::try_from(config) })
            .map_err(|e| Failure::new(format!("{server}: {}", chain(&e))))?;
        let namespace = args.controller_namespace.clone();
        let (controller_prefix, controller) = if direct {
            (String::new(), format!("the controller at {server}"))
        } else {
            let name = &args.controller_name;
            (
                format!("/api/v1/namespaces/{namespace}/services/http:{name}:http/proxy"),
                format!("the controller (service {namespace}/{name} via {server})"),
            )
        };
        Ok(Cluster {
            runtime,
            client,
            server,
            direct,
            namespace,
            controller_prefix,
            controller,
        })
    }

    /// The recipients the cluster seals to: the `sealant-recipients` ConfigMap through the
    /// API server, or the controller's `/v1/recipients` with `--controller-url`.
    pub fn recipients(&self) -> Result<Vec<Recipient>> {
        if self.direct {
            let reply = self.send(Method::GET, "/v1/recipients", None)?;
            if !reply.status.is_success() {
                return Err(Failure::new(self.controller_failure(&reply)));
            }
            let text = recipients_text(&reply.body);
            return parse_recipients_file(&text)
                .map_err(|e| Failure::new(format!("{} /v1/recipients: {e}", self.controller)));
        }
        let ns = &self.namespace;
        let what = format!("ConfigMap {ns}/{RECIPIENTS_CONFIGMAP}");
        let reply = self.send(
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps/{RECIPIENTS_CONFIGMAP}"),
            None,
        )?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Failure::new(format!(
                    "{what} not found at {}: is the Sealant controller installed in namespace \
                     {ns}? (see --controller-namespace)",
                    self.server
                )));
            }
            _ => {
                return Err(Failure::new(format!(
                    "{what}: {} answered {}",
                    self.server,
                    with_detail(&reply)
                )));
            }
        }
        let map: ConfigMap = serde_json::from_slice(&reply.body).map_err(|e| {
            Failure::new(format!(
                "{what}: {} did not answer with a ConfigMap: {e}",
                self.server
            ))
        })?;
        let text = map
            .data
            .and_then(|mut d| d.remove(RECIPIENTS_DATA))
            .ok_or_else(|| Failure::new(format!("{what} has no data.{RECIPIENTS_DATA}")))?;
        parse_recipients_file(&text)
            .map_err(|e| Failure::new(format!("{what}: data.{RECIPIENTS_DATA}: {e}")))
    }

    /// POSTs a JSON body to one of the controller's endpoints (`/v1/…`).
    /// `Err` only when no answer came (the cluster or controller is unreachable).
    pub fn post_to_controller(&self, endpoint: &str, json: Vec<u8>) -> Result<Reply> {
        let path = format!("{}{endpoint}", self.controller_prefix);
        self.send(Method::POST, &path, Some(json))
    }

    /// POSTs like [`Cluster::post_to_controller`], and tries again, a few times, while the
    /// controller is busy: a 429 (after its `Retry-After`, else doubling from one second),
    /// or, through the service proxy, the API server's 500 "error trying to reach service"
    /// when a busy controller refused the request before reading it and hung up while the API
    /// server was still sending the body (node e2e
    /// `node::rotation_job_and_the_service_proxy_work_as_a_user_would_use_them`).
    pub fn post_patiently(&self, endpoint: &str, json: Vec<u8>) -> Result<Reply> {
        let mut wait = Duration::from_secs(1);
        let mut retries = 0;
        loop {
            let reply = self.post_to_controller(endpoint, json.clone())?;
            if !self.busy(&reply) || retries == BUSY_RETRIES {
                return Ok(reply);
            }
            let asked = reply.retry_after().map(Duration::from_secs).unwrap_or(wait);
            std::thread::sleep(asked.min(MAX_RETRY_WAIT));
            wait *= 2;
            retries += 1;
        }
    }

    fn busy(&self, reply: &Reply) -> bool {
        reply.status == StatusCode::TOO_MANY_REQUESTS
            || (!self.direct
                && reply.status == StatusCode::INTERNAL_SERVER_ERROR
                && reply
                    .detail()
                    .is_some_and(|d| d.starts_with("error trying to reach service")))
    }

    /// One line for an answer that is not the one hoped for: who answered, the status, what
    /// the body says, and a hint for the usual causes.
    pub fn controller_failure(&self, reply: &Reply) -> String {
        let mut message = format!("{} answered {}", self.controller, with_detail(reply));
        match reply.status {
            StatusCode::TOO_MANY_REQUESTS => match reply.retry_after() {
                Some(secs) => message.push_str(&format!(" (rate limited: try again in {secs}s)")),
                None => message.push_str(" (rate limited: try again later)"),
            },
            StatusCode::PAYLOAD_TOO_LARGE => {
                message.push_str(" (the SealedSecret is larger than the controller accepts)")
            }
            StatusCode::FORBIDDEN if !self.direct => message.push_str(
                " (the service proxy needs permission for services/proxy there; \
                 or use --controller-url with kubectl port-forward)",
            ),
            StatusCode::NOT_FOUND if self.direct => {
                message.push_str(" (is --controller-url the controller's HTTP API?)")
            }
            StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE if !self.direct => message
                .push_str(
                    " (is the controller running? see --controller-namespace and --controller-name)",
                ),
            _ => {}
        }
        message
    }

    fn send(&self, method: Method, path: &str, json: Option<Vec<u8>>) -> Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json, */*");
        let body = match json {
            Some(bytes) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|e| Failure::new(format!("{}{path}: {e}", self.server)))?;
        let client = self.client.clone();
        let answer = self.runtime.block_on(async move {
            let response = client.send(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.into_body().collect_bytes().await?;
            Ok::<_, kube::Error>(Reply {
                status,
                body: body.to_vec(),
                retry_after,
            })
        });
        let whom = if self.direct {
            &self.controller
        } else {
            &self.server
        };
        answer.map_err(|e| {
            Failure::new(match connection_failure(&e) {
                Some(cause) => format!("cannot reach {whom}: {cause}"),
                None => format!("{whom}: {}", chain(&e)),
            })
        })
    }
}

/// The recipients the cluster publishes, as [`Cluster::recipients`] reads them.
pub fn fetch_recipients(args: &ClusterArgs) -> Result<Vec<Recipient>> {
    Cluster::connect(args)?.recipients()
}

impl ClusterArgs {
    /// `--kubeconfig` and `--context`.
    pub fn selection(&self) -> Selection {
        Selection {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    /// The namespace kubectl would use without `-n`: the context's, else `default`; `None`
    /// without a kubeconfig (see [`context_namespace`]).
    pub fn default_namespace(&self) -> Result<Option<String>> {
        context_namespace(&self.selection()).map_err(|e| Failure::new(e.to_string()))
    }
}

/// `/v1/recipients` answers with text (one per line) or JSON (a list, or `{"recipients": […]}`).
fn recipients_text(body: &[u8]) -> String {
    let list = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(list)) => Some(list),
        Ok(serde_json::Value::Object(mut object)) => match object.remove("recipients") {
            Some(serde_json::Value::Array(list)) => Some(list),
            _ => None,
        },
        _ => None,
    };
    match list {
        Some(list) => list
            .iter()
            .filter_map(|v| v.as_str())
            .map(|r| format!("{r}\n"))
            .collect(),
        None => String::from_utf8_lossy(body).into_owned(),
    }
}

/// `429 Too Many Requests: what the body says`.
fn with_detail(reply: &Reply) -> String {
    let status = reply.status;
    let mut text = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_owned();
    if let Some(detail) = reply.detail() {
        text.push_str(": ");
        text.push_str(&detail);
    }
    text
}

fn clip(text: &str) -> String {
    let text = text.trim();
    let mut clipped: String = text.chars().take(DETAIL_CHARS).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}
