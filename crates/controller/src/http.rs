//! The controller's HTTP server: probes, metrics, the public recipients, and two endpoints
//! that work on a SealedSecret without ever returning its plaintext (`/v1/verify`,
//! `/v1/reencrypt`).

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sealant_core::SealedSecret;
use sealant_core::convert::{reencrypt, unseal_in_cluster};
use sealant_core::keys::{Recipient, parse_recipient};
use sealant_core::keystore::recipients_text;
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::rewrap::ClusterKeys;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::conn::{ANSWER_WRITE_DEADLINE, AnswerPermit, DeadlineListener, SentAnswers};
use crate::metrics::Metrics;
use crate::state::{KeysView, Readiness, SharedKeys};

/// Request bodies above this are refused (413): a SealedSecret holds at most a 1 MiB Secret,
/// which base64 and age framing grow by about a third.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest error message a response carries; a parse error can quote the body.
const MAX_ERROR_CHARS: usize = 300;

/// Default for `--max-bodies-in-flight`. Each body admitted costs up to 2 MiB plus the copies
/// parsing, opening and re-sealing make: 40 bodies of 1.9 MB at once took a controller to
/// 114 MiB of the Deployment's 128 MiB limit; 4 keep a flood well inside it
/// (docs/benchmarks.md).
pub const DEFAULT_MAX_BODIES_IN_FLIGHT: u16 = 4;

/// A body not received in full by then is cut off (408). A deadline on the whole body, not on
/// each read: a client sending a byte every few seconds would pass a per-read timeout while
/// holding a permit forever.
pub const BODY_READ_DEADLINE: Duration = Duration::from_secs(30);

/// What the handlers read.
pub struct HttpState {
    pub keys: SharedKeys,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
    /// Guards `/v1/verify`: each call costs an X25519 operation and a decryption per item.
    pub verify_limiter: DefaultDirectRateLimiter,
    /// Guards `/v1/reencrypt`, which costs the same plus sealing; higher, for bulk re-sealing.
    pub reencrypt_limiter: DefaultDirectRateLimiter,
    /// One permit per request body being read or worked on, across both endpoints: the rate
    /// limits bound requests per second, this bounds the memory they hold at once.
    bodies: Arc<Semaphore>,
    max_bodies: usize,
}

/// Default for `/v1/reencrypt`: `seal reencrypt` of a large repo retries on 429.
pub const DEFAULT_REENCRYPT_PER_SECOND: u32 = 50;

fn per_second(rate: u32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN),
    ))
}

impl HttpState {
    /// `verify_per_second` is both the sustained rate and the burst; 0 is taken as 1, so the
    /// limit can be made tight but never switched off by accident.
    pub fn new(
        keys: SharedKeys,
        metrics: Arc<Metrics>,
        ready: Arc<Readiness>,
        verify_per_second: u32,
    ) -> HttpState {
        HttpState {
            keys,
            metrics,
            ready,
            verify_limiter: per_second(verify_per_second),
            reencrypt_limiter: per_second(DEFAULT_REENCRYPT_PER_SECOND),
            bodies: Arc::new(Semaphore::new(DEFAULT_MAX_BODIES_IN_FLIGHT.into())),
            max_bodies: DEFAULT_MAX_BODIES_IN_FLIGHT.into(),
        }
    }

    /// Sets how many request bodies are read or worked on at once; 0 is taken as 1.
    pub fn with_max_bodies_in_flight(mut self, max: u16) -> HttpState {
        self.max_bodies = usize::from(max.max(1));
        self.bodies = Arc::new(Semaphore::new(self.max_bodies));
        self
    }

    /// Sets `/v1/reencrypt`'s rate (and burst); 0 is taken as 1.
    pub fn with_reencrypt_rate(mut self, per_second_rate: u32) -> HttpState {
        self.reencrypt_limiter = per_second(per_second_rate);
        self
    }
}

type Shared = Arc<HttpState>;

pub fn router(state: HttpState) -> Router {
    let state: Shared = Arc::new(state);
    // The limit is checked before the body is read, so a flood costs no buffering.
    let verify = post(verify).route_layer(from_fn_with_state(state.clone(), limit_verify));
    let reencrypt =
        post(reencrypt_handler).route_layer(from_fn_with_state(state.clone(), limit_reencrypt));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/recipients", get(recipients))
        .route("/v1/verify", verify)
        .route("/v1/reencrypt", reencrypt)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router` until `shutdown` completes, then lets in-flight requests finish; output a
/// client leaves unread for [`ANSWER_WRITE_DEADLINE`] fails its connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_write_deadline(listener, router, shutdown, ANSWER_WRITE_DEADLINE).await
}

/// [`serve`] with another write deadline (tests use a short one).
pub async fn serve_with_write_deadline(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    write_deadline: std::time::Duration,
) -> std::io::Result<()> {
    let listener = DeadlineListener::new(listener, write_deadline);
    // Each request learns its connection, to which its answer's permit passes once hyper has
    // taken the answer's body (crate::conn).
    let service = router.into_make_service_with_connect_info::<SentAnswers>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Shared>) -> Response {
    let ready = &state.ready;
    if ready.is_ready() {
        return "ok".into_response();
    }
    let missing: Vec<&str> = [
        (!ready.keys_loaded()).then_some("keys not loaded"),
        (!ready.caches_synced()).then_some("caches not synced"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (StatusCode::SERVICE_UNAVAILABLE, missing.join("; ")).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn recipients(State(state): State<Shared>) -> Response {
    let active = state.keys.get().set.active_recipients();
    if active.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no active key yet: the controller has not loaded or created one\n",
        )
            .into_response();
    }
    recipients_text(&active).into_response()
}

async fn limit_verify(State(state): State<Shared>, request: Request, next: Next) -> Response {
    limited(&state.verify_limiter, request, next).await
}

async fn limit_reencrypt(State(state): State<Shared>, request: Request, next: Next) -> Response {
    limited(&state.reencrypt_limiter, request, next).await
}

async fn limited(limiter: &DefaultDirectRateLimiter, request: Request, next: Next) -> Response {
    match limiter.check() {
        Ok(()) => next.run(request).await,
        Err(not_until) => rate_limited(not_until.wait_time_from(limiter.clock().now())),
    }
}

fn rate_limited(wait: Duration) -> Response {
    // Whole seconds, rounded up: a client retrying at once would only be refused again.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limited: retry later");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

async fn verify(State(state): State<Shared>, request: Request) -> Response {
    answer_body(&state, request, verify_body).await
}

async fn reencrypt_handler(State(state): State<Shared>, request: Request) -> Response {
    answer_body(&state, request, reencrypt_body).await
}

/// Admits the request's body (see `admit`), then answers it with `answer` under the keys
/// held now, off the async runtime.
async fn answer_body(
    state: &HttpState,
    request: Request,
    answer: fn(&[u8], &KeysView) -> Response,
) -> Response {
    let (body, permit) = match admit(state, request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let view = state.keys.get();
    off_runtime(permit, move || answer(&body, &view)).await
}

/// A permit for one body, then the whole body within [`BODY_READ_DEADLINE`]; or the answer
/// that refuses it: 429 when all permits are held, 408 when it comes too slowly, 413/400 as
/// axum's own body reading says.
///
/// tokio's semaphore and timeout rather than tower's `ConcurrencyLimit` + `LoadShed` and
/// tower-http's `RequestBodyTimeout`: the former's permit ends with the request's future,
/// which a client's hang-up drops while the blocking work still holds the body; the latter's
/// timer restarts with every chunk, so a trickle never trips it.
///
/// The permit lasts until the answer is written out or its connection is gone
/// ([`AnswerPermit`]): an answer its client does not read holds as much as a body.
async fn admit(state: &HttpState, request: Request) -> Result<(Bytes, AnswerPermit), Response> {
    // Refused before a byte of the body is read: a flood costs no buffering. No queue
    // either: a waiting request would hold its connection and buffers all the same.
    let Ok(permit) = state.bodies.clone().try_acquire_owned() else {
        return Err(busy(state.max_bodies));
    };
    let connection = request.extensions().get::<ConnectInfo<SentAnswers>>();
    let permit = AnswerPermit::new(permit, connection.map(|c| &c.0));
    // `Bytes` honours DefaultBodyLimit (413) and reads the body only while the permit is held.
    match tokio::time::timeout(BODY_READ_DEADLINE, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => Ok((body, permit)),
        Ok(Err(rejection)) => Err(body_rejected(&rejection)),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "body not received within {} s: send it in one go",
                BODY_READ_DEADLINE.as_secs()
            ),
        )),
    }
}

fn busy(max_bodies: usize) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "busy: {max_bodies} request bodies are being worked on already \
             (--max-bodies-in-flight); retry later"
        ),
    );
    // The shortest wait the header can say: a permit frees as soon as one body is answered.
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

/// The body of `/v1/verify`: 200 with the recipient that opened it, 400 for a body that is
/// not one SealedSecret, 409 for one that does not open here.
///
/// Public for the fuzz targets (`fuzz/`) and property tests; the router is the real entry point.
pub fn verify_body(body: &[u8], view: &KeysView) -> Response {
    let sealed = match parse_sealed(body) {
        Ok(sealed) => sealed,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    match unseal_in_cluster(&sealed, &view.ring, &view.compromised) {
        // `opened` holds the plaintext; only the recipients leave, and it is zeroized on drop.
        Ok(opened) => Json(json!({"ok": true, "openedWith": opened.opened_with})).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(json!({"ok": false, "error": one_line(&e.to_string())})),
        )
            .into_response(),
    }
}

/// The body of `/v1/reencrypt`: 200 with the SealedSecret re-wrapped for the active keys
/// (its other readers kept exactly, the recipients it lists never trusted),
/// 400 for a body that is not one SealedSecret, 409 for one that does not open or re-seal,
/// 503 while there is no active key.
///
/// Public for the fuzz targets (`fuzz/`) and property tests; the router is the real entry point.
pub fn reencrypt_body(body: &[u8], view: &KeysView) -> Response {
    let recipients = match active_recipients(view) {
        Ok(recipients) => recipients,
        Err((status, reason)) => return error(status, reason),
    };
    let sealed = match parse_sealed(body) {
        Ok(sealed) => sealed,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let keys = ClusterKeys {
        usable: &view.ring,
        held: &view.held,
        active: &recipients,
    };
    match reencrypt(&sealed, &keys, &view.compromised) {
        Ok(resealed) => Json(resealed).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// The recipients to re-seal to, or 503 while there is no active key.
fn active_recipients(view: &KeysView) -> Result<Vec<Recipient>, (StatusCode, String)> {
    let active = view.set.active_recipients();
    if active.is_empty() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "no active key yet: the controller has not loaded or created one".to_owned(),
        ));
    }
    // They were printed from identities held here, so they parse; a failure is our bug.
    active
        .iter()
        .map(|r| parse_recipient(r))
        .collect::<Result<_, _>>()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The one SealedSecret a request body must hold (YAML or JSON), or why it does not.
///
/// Public for the fuzz targets (`fuzz/`) and property tests.
pub fn parse_sealed(body: &[u8]) -> Result<SealedSecret, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8 text".to_owned())?;
    let mut objects =
        read_manifests(text).map_err(|e| format!("body is not a YAML or JSON manifest: {e}"))?;
    if objects.len() != 1 {
        return Err(format!(
            "body holds {} objects; send exactly one SealedSecret",
            objects.len()
        ));
    }
    match objects.remove(0).value {
        Manifest::SealedSecret(sealed) => Ok(*sealed),
        Manifest::Secret(_) => {
            Err("body is a Secret, not a SealedSecret: seal it with `seal` first".to_owned())
        }
        Manifest::Other(kind) if kind.is_empty() => {
            Err("body has no kind; send one SealedSecret".to_owned())
        }
        Manifest::Other(kind) if kind == "SealedSecret" => Err(
            "body is a SealedSecret of another API group; expected apiVersion sealant.dev/v1alpha1"
                .to_owned(),
        ),
        Manifest::Other(kind) => Err(format!("body is a {kind}, not a SealedSecret")),
    }
}

/// Runs CPU-bound work (parsing up to 2 MiB, age decryption) where it cannot stall the
/// reconciler's tasks. The permit goes with the work, not with the request: a client that
/// hangs up does not stop the work, so it must not free the permit while the body's copies
/// are still alive. Then it goes with the answer, which can be as large as the body.
async fn off_runtime(
    permit: AnswerPermit,
    work: impl FnOnce() -> Response + Send + 'static,
) -> Response {
    let work = move || holding(work(), permit);
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "HTTP request handler failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// `response` with `permit` owned by its body.
fn holding(response: Response, permit: AnswerPermit) -> Response {
    let (parts, body) = response.into_parts();
    let body = Holding {
        body,
        _permit: permit,
    };
    Response::from_parts(parts, Body::new(body))
}

/// A body that owns a permit until it is dropped. Hand-written rather than http-body-util's
/// `map_frame`, which forgets the size hint and so turns Content-Length into chunked encoding.
struct Holding {
    body: Body,
    /// Held, never read: its drop is what counts.
    _permit: AnswerPermit,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

fn body_rejected(rejection: &BytesRejection) -> Response {
    let status = rejection.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("body is larger than {MAX_BODY_BYTES} bytes")
    } else {
        rejection.body_text()
    };
    error(status, reason)
}

/// `{"error": "..."}` with the message on one bounded line.
fn error(status: StatusCode, message: impl AsRef<str>) -> Response {
    (status, Json(json!({"error": one_line(message.as_ref())}))).into_response()
}

fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    if message.chars().nth(MAX_ERROR_CHARS).is_some() {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_single_and_bounded() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
        let long = one_line(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = rate_limited(Duration::from_millis(1500));
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = rate_limited(Duration::ZERO);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
