//! The HTTP endpoints, driven through the Router without a socket, and on a real socket where
//! connections matter (answers a client does not read).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use futures::channel::mpsc;
use http_body_util::BodyExt;
use sealant_controller::http::{HttpState, router};
use sealant_controller::metrics::Metrics;
use sealant_controller::state::{KeysView, Readiness, SharedKeys};
use sealant_core::convert::unseal;
use sealant_core::keys::{generate_key, parse_recipient};
use sealant_core::keystore::{KeySet, KeyState, StoredKey};
use sealant_core::{KeyRing, SealedSecret};
use serde_json::Value;
use tower::ServiceExt;

const DB: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: hunter2\n";
const PLAINTEXT: &str = "hunter2";

fn key(name: &str, created: &str, state: KeyState) -> StoredKey {
    support::stored_key(name, created, state)
}

fn active_key() -> StoredKey {
    key("sealant-key-new", "2026-02-01T00:00:00Z", KeyState::Active)
}

fn seal_to(yaml: &str, recipient: &str) -> SealedSecret {
    support::seal_strict(yaml, &[parse_recipient(recipient).unwrap()])
}

struct Server {
    router: Router,
    ready: Arc<Readiness>,
}

fn server(keys: Vec<StoredKey>, verify_per_second: u32) -> Server {
    let shared = SharedKeys::new(KeysView::new(KeySet::new(keys)));
    let ready = Arc::new(Readiness::default());
    let metrics = Arc::new(Metrics::new());
    let state = HttpState::new(shared, metrics, ready.clone(), verify_per_second);
    Server {
        router: router(state),
        ready,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    reply(router.clone().oneshot(request).await.unwrap()).await
}

async fn reply(response: axum::response::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, path: &str) -> Reply {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post(router: &Router, path: &str, body: impl Into<Body>) -> Reply {
    send(router, Request::post(path).body(body.into()).unwrap()).await
}

async fn post_json(router: &Router, path: &str, sealed: &SealedSecret) -> Reply {
    post(router, path, serde_json::to_vec(sealed).unwrap()).await
}

#[tokio::test]
async fn healthz_is_ok() {
    let s = server(vec![], 10);
    let r = get(&s.router, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn readyz_says_what_is_missing() {
    let s = server(vec![], 10);
    let r = get(&s.router, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("keys not loaded") && r.body.contains("caches not synced"));

    s.ready.set_keys_loaded();
    let r = get(&s.router, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "caches not synced");

    s.ready.set_caches_synced(true);
    let r = get(&s.router, "/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn metrics_are_openmetrics() {
    let s = server(vec![], 10);
    let r = get(&s.router, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // The families with samples from the start; per-namespace, per-object and per-key series
    // appear with what they count (metrics::tests, e2e monitoring).
    for declared in [
        "# TYPE sealant_unseal_requests counter",
        "# TYPE sealant_reconcile_duration_seconds histogram",
        "# TYPE sealant_keys gauge",
        "# TYPE sealant_is_leader gauge",
        "# TYPE sealant_build info",
    ] {
        assert!(
            r.body.lines().any(|l| l == declared),
            "no {declared:?} in\n{}",
            r.body
        );
    }
    assert!(r.body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn recipients_lists_active_keys_only() {
    let active = active_key();
    let retired = key("sealant-key-old", "2026-01-01T00:00:00Z", KeyState::Retired);
    let s = server(vec![retired.clone(), active.clone()], 10);
    let r = get(&s.router, "/v1/recipients").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(r.body.starts_with('#'));
    let lines: Vec<&str> = r.body.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, [active.recipient.as_str()]);
    assert!(!r.body.contains(&retired.recipient));

    let none = server(vec![retired], 10);
    let r = get(&none.router, "/v1/recipients").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn verify_opens_a_good_object() {
    let active = active_key();
    let s = server(vec![active.clone()], 10);
    let r = post_json(&s.router, "/v1/verify", &seal_to(DB, &active.recipient)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let json = r.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["openedWith"], serde_json::json!([active.recipient]));
    assert!(!r.body.contains(PLAINTEXT));
}

#[tokio::test]
async fn verify_accepts_yaml() {
    let active = active_key();
    let s = server(vec![active.clone()], 10);
    let yaml = sealant_core::output::to_yaml(&seal_to(DB, &active.recipient)).unwrap();
    let r = post(&s.router, "/v1/verify", yaml).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["ok"], true);
}

#[tokio::test]
async fn verify_refuses_an_object_for_another_key() {
    let s = server(vec![active_key()], 10);
    let other = generate_key("t").recipient.to_string();
    let r = post_json(&s.router, "/v1/verify", &seal_to(DB, &other)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let json = r.json();
    assert_eq!(json["ok"], false);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("none of those keys is held")
    );
}

#[tokio::test]
async fn verify_names_a_compromised_key() {
    let bad = key(
        "sealant-key-bad",
        "2026-01-01T00:00:00Z",
        KeyState::Compromised,
    );
    let s = server(vec![bad.clone(), active_key()], 10);
    let r = post_json(&s.router, "/v1/verify", &seal_to(DB, &bad.recipient)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["ok"], false);
    assert!(
        r.json()["error"].as_str().unwrap().contains("compromised"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("AGE-SECRET-KEY"));
}

#[tokio::test]
async fn verify_refuses_a_relocated_strict_object() {
    let active = active_key();
    let s = server(vec![active.clone()], 10);
    let mut sealed = seal_to(DB, &active.recipient);
    sealed.metadata.namespace = Some("staging".into());
    let r = post_json(&s.router, "/v1/verify", &sealed).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.json()["ok"], false);
}

#[tokio::test]
async fn verify_and_reencrypt_refuse_an_item_renamed_to_an_invalid_key() {
    // Found by fuzzing: verify said 200 where reencrypt said 409 and the API server would
    // refuse the Secret.
    let active = active_key();
    let s = server(vec![active.clone()], 10);
    let mut sealed = seal_to(DB, &active.recipient);
    let spec = &mut sealed.spec;
    let (item, value) = spec.encrypted_data.pop_first().unwrap();
    spec.encrypted_data.insert("pass word".into(), value);
    let recorded = spec.recipients.remove(&item).unwrap();
    spec.recipients.insert("pass word".into(), recorded);
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let r = post_json(&s.router, path, &sealed).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        assert!(
            r.body.contains("item key 'pass word' is not valid"),
            "{path}: {}",
            r.body
        );
        assert!(!r.body.contains(PLAINTEXT));
    }
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let s = server(vec![active_key()], 100);
    let sealed = serde_json::to_string(&seal_to(DB, &active_key().recipient)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x80]),
        ("not YAML", b"kind: [unclosed\n  : :".to_vec()),
        ("empty", Vec::new()),
        ("a Secret", DB.as_bytes().to_vec()),
        (
            "a ConfigMap",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
        ),
        (
            "two objects",
            format!("{sealed}\n---\n{sealed}\n").into_bytes(),
        ),
    ];
    for path in ["/v1/verify", "/v1/reencrypt"] {
        for (what, body) in &cases {
            let r = post(&s.router, path, body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{path} {what}: {}",
                r.body
            );
            let error = r.error();
            assert!(
                !error.is_empty() && !error.contains('\n'),
                "{what}: {error}"
            );
            assert!(!error.contains(PLAINTEXT), "{what}: {error}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let s = server(vec![active_key()], 10);
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let r = post(&s.router, path, vec![b'a'; 3 * 1024 * 1024]).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(!r.error().is_empty());
    }
}

#[tokio::test]
async fn verify_is_rate_limited() {
    let s = server(vec![active_key()], 2);
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(post(&s.router, "/v1/verify", "garbage").await);
    }
    // The burst of 2 is let through (and found malformed); the rest arrive within
    // milliseconds, long before the next token at 500 ms.
    assert_eq!(replies[0].status, StatusCode::BAD_REQUEST);
    let limited = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("some request is rate limited");
    assert_eq!(
        limited.json(),
        serde_json::json!({"error": "rate limited: retry later"})
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);

    // Other endpoints are not limited.
    for _ in 0..4 {
        assert_eq!(get(&s.router, "/healthz").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn reencrypt_moves_to_the_active_key() {
    let old = key("sealant-key-old", "2026-01-01T00:00:00Z", KeyState::Retired);
    let new = active_key();
    let s = server(vec![old.clone(), new.clone()], 10);
    let r = post_json(&s.router, "/v1/reencrypt", &seal_to(DB, &old.recipient)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains(PLAINTEXT));
    assert!(!r.body.contains("aHVudGVyMg"), "no base64 plaintext either");

    let moved: SealedSecret = serde_json::from_str(&r.body).unwrap();
    assert_eq!(moved.metadata.name.as_deref(), Some("db"));
    assert_eq!(moved.metadata.namespace.as_deref(), Some("prod"));
    assert!(!moved.spec.recipients.is_empty());
    for recipients in moved.spec.recipients.values() {
        assert_eq!(recipients, &vec![new.recipient.clone()]);
    }
    let only_new = KeyRing::from_identities([new.identity.clone()]);
    let opened = unseal(&moved, &only_new).unwrap();
    assert_eq!(
        opened.secret.data.as_ref().unwrap()["password"].0,
        PLAINTEXT.as_bytes()
    );
}

#[tokio::test]
async fn reencrypt_accepts_yaml() {
    let new = active_key();
    let s = server(vec![new.clone()], 10);
    let yaml = sealant_core::output::to_yaml(&seal_to(DB, &new.recipient)).unwrap();
    let r = post(&s.router, "/v1/reencrypt", yaml).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let _: SealedSecret = serde_json::from_str(&r.body).unwrap();
}

#[tokio::test]
async fn reencrypt_refusals() {
    let bad = key(
        "sealant-key-bad",
        "2026-01-01T00:00:00Z",
        KeyState::Compromised,
    );
    let retired = key("sealant-key-old", "2026-01-15T00:00:00Z", KeyState::Retired);
    let s = server(vec![bad.clone(), active_key()], 10);

    let other = generate_key("t").recipient.to_string();
    let r = post_json(&s.router, "/v1/reencrypt", &seal_to(DB, &other)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(!r.error().is_empty());

    let r = post_json(&s.router, "/v1/reencrypt", &seal_to(DB, &bad.recipient)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.error().contains("compromised"), "{}", r.body);

    // Without an active key there is nothing to re-seal to.
    let no_active = server(vec![retired.clone()], 10);
    let r = post_json(
        &no_active.router,
        "/v1/reencrypt",
        &seal_to(DB, &retired.recipient),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!r.error().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let s = server(vec![], 10);
    assert_eq!(get(&s.router, "/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&s.router, "/v1/verify").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn serves_on_a_socket_until_shutdown() {
    use std::io::{Read, Write};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let server = tokio::spawn(sealant_controller::http::serve(
        listener,
        server(vec![], 10).router,
        shutdown,
    ));
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn reencrypt_is_rate_limited_separately() {
    let shared = SharedKeys::new(KeysView::new(KeySet::new(vec![active_key()])));
    let state = HttpState::new(
        shared,
        Arc::new(Metrics::new()),
        Arc::new(Readiness::default()),
        100,
    )
    .with_reencrypt_rate(2);
    let router = router(state);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&router, "/v1/reencrypt", "garbage").await.status);
    }
    // The burst of 2 gets through (and is found malformed); the rest are refused.
    assert_eq!(statuses[0], StatusCode::BAD_REQUEST);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Verify has its own budget, untouched by reencrypt's.
    assert_eq!(
        post(&router, "/v1/verify", "garbage").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn hostile_yaml_bodies_are_refused_quickly() {
    let s = server(vec![active_key()], 100);
    let mut laughs = String::from(
        "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: x, namespace: y}\nspec:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for name in 'b'..='i' {
        laughs.push_str(&format!("  {name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    let deep = format!(
        "kind: SealedSecret\nx: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let started = std::time::Instant::now();
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let reply = post(&s.router, path, laughs.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        assert!(
            reply
                .error()
                .contains("refused: the document exceeds the limits"),
            "{}",
            reply.error()
        );
        let reply = post(&s.router, path, deep.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(
            reply.error().contains("refused: nested deeper than 64"),
            "{}",
            reply.error()
        );
    }
    // A guard against expansion (a billion laughs would take hours), not a speed target.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

fn bounded_server(keys: Vec<StoredKey>, max_bodies: u16) -> Router {
    let shared = SharedKeys::new(KeysView::new(KeySet::new(keys)));
    let state = HttpState::new(
        shared,
        Arc::new(Metrics::new()),
        Arc::new(Readiness::default()),
        1000,
    )
    .with_reencrypt_rate(1000)
    .with_max_bodies_in_flight(max_bodies);
    router(state)
}

type Chunk = Result<Bytes, std::io::Error>;

/// A request body that arrives only as the test sends it, and says whether the server ever
/// asked for a byte of it.
fn held_body() -> (Body, mpsc::UnboundedSender<Chunk>, Arc<AtomicBool>) {
    let (tx, mut rx) = mpsc::unbounded::<Chunk>();
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let stream = futures::stream::poll_fn(move |cx| {
        flag.store(true, Ordering::SeqCst);
        rx.poll_next_unpin(cx)
    });
    (Body::from_stream(stream), tx, read)
}

/// Waits until the server has started reading a held body (it then holds a permit).
async fn until_read(read: &AtomicBool) {
    for _ in 0..2000 {
        if read.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the server never started reading the body");
}

fn sealed_json(recipient: &str) -> Vec<u8> {
    serde_json::to_vec(&seal_to(DB, recipient)).unwrap()
}

#[tokio::test]
async fn a_body_past_the_bound_is_refused_unread() {
    let active = active_key();
    let router = bounded_server(vec![active.clone()], 2);
    let sealed = sealed_json(&active.recipient);
    // Two bodies still arriving hold both permits, one on each endpoint.
    let mut held = Vec::new();
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let (body, tx, read) = held_body();
        let request = Request::post(path).body(body).unwrap();
        let task = tokio::spawn(router.clone().oneshot(request));
        until_read(&read).await;
        held.push((path, task, tx));
    }
    // A third body, complete and valid, is refused on either endpoint before a byte of it is
    // read: nothing of it is buffered, parsed or opened.
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let (body, tx, read) = held_body();
        tx.unbounded_send(Ok(Bytes::from(sealed.clone()))).unwrap();
        drop(tx);
        let r = send(&router, Request::post(path).body(body).unwrap()).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            r.body
        );
        assert_eq!(r.headers[header::RETRY_AFTER], "1", "{path}");
        assert_eq!(
            r.error(),
            "busy: 2 request bodies are being worked on already (--max-bodies-in-flight); retry later"
        );
        assert!(
            !read.load(Ordering::SeqCst),
            "{path}: the refused body was read"
        );
    }
    // Probes and metrics need no permit.
    assert_eq!(get(&router, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&router, "/metrics").await.status, StatusCode::OK);
    // The held bodies were not disturbed: each is answered in full once it arrives.
    for (path, task, tx) in held {
        tx.unbounded_send(Ok(Bytes::from(sealed.clone()))).unwrap();
        drop(tx);
        let r = reply(task.await.unwrap().unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    // And their permits came back.
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let r = post(&router, path, sealed.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn every_answer_gives_its_permit_back() {
    let active = active_key();
    // One permit: any answer that kept it would turn every later request into a 429.
    let router = bounded_server(vec![active.clone()], 1);
    let sealed = sealed_json(&active.recipient);
    for round in 0..3 {
        for path in ["/v1/verify", "/v1/reencrypt"] {
            let answers = [
                (post(&router, path, sealed.clone()).await, StatusCode::OK),
                (
                    post(&router, path, "garbage").await,
                    StatusCode::BAD_REQUEST,
                ),
                (
                    post(&router, path, vec![b'a'; 3 * 1024 * 1024]).await,
                    StatusCode::PAYLOAD_TOO_LARGE,
                ),
            ];
            for (r, expected) in answers {
                assert_eq!(r.status, expected, "round {round} {path}: {}", r.body);
            }
        }
    }
    // A client that hangs up while its body is arriving gives its permit back too.
    let (body, _tx, read) = held_body();
    let task = tokio::spawn(
        router
            .clone()
            .oneshot(Request::post("/v1/verify").body(body).unwrap()),
    );
    until_read(&read).await;
    task.abort();
    let _ = task.await;
    let r = post(&router, "/v1/verify", sealed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_comes_too_slowly_is_cut_off() {
    let active = active_key();
    let router = bounded_server(vec![active.clone()], 1);
    // A byte every 10 s (virtual time): quick enough for a timeout on each read, never done.
    let drip = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
    });
    let r = send(
        &router,
        Request::post("/v1/verify")
            .body(Body::from_stream(drip))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{}", r.body);
    assert_eq!(
        r.error(),
        "body not received within 30 s: send it in one go"
    );
    // A body that sends nothing at all, on the other endpoint.
    let (body, _tx, _read) = held_body();
    let r = send(&router, Request::post("/v1/reencrypt").body(body).unwrap()).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{}", r.body);
    // The cut-off bodies gave their permit back.
    let r = post(&router, "/v1/reencrypt", sealed_json(&active.recipient)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Two values of 600 KiB, 1.2 MiB in all, sealed by hand past `seal`'s own check; the body
/// (1.6 MB of JSON) is under the 2 MiB body limit.
fn over_a_secrets_size(recipient: &str) -> SealedSecret {
    let mut sealed = seal_to(DB, recipient);
    support::add_more_than_a_secret_holds(&mut sealed, &parse_recipient(recipient).unwrap());
    sealed
}

#[tokio::test]
async fn more_plaintext_than_a_secret_holds_is_refused() {
    let active = active_key();
    let s = server(vec![active.clone()], 10);
    let sealed = over_a_secrets_size(&active.recipient);
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let r = post_json(&s.router, path, &sealed).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        assert!(
            r.error()
                .contains("Kubernetes limits a Secret to 1 MiB (1048576 bytes)"),
            "{path}: {}",
            r.body
        );
        assert!(!r.body.contains("xxxxxxxx"), "{path}");
    }
}

/// A SealedSecret for `recipient`, padded with an annotation to about 2,000,000 bytes of JSON:
/// its answer from `/v1/reencrypt` is as large, more than the kernel's socket buffers take.
fn large_sealed_json(recipient: &str) -> Vec<u8> {
    let mut object = serde_json::to_value(seal_to(DB, recipient)).unwrap();
    object["metadata"]["annotations"] =
        serde_json::json!({ "example.com/padding": "p".repeat(1_998_000) });
    serde_json::to_vec(&object).unwrap()
}

/// The real server on a loopback socket, with `write_deadline`; stops when the test ends.
async fn on_socket(router: Router, write_deadline: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sealant_controller::http::serve_with_write_deadline(
        listener,
        router,
        std::future::pending(),
        write_deadline,
    ));
    addr
}

/// Sends `body` to `path` and reads the status line only, with a 4 KiB receive buffer: the
/// rest of the answer is left unread on the still open connection.
async fn post_reading_status_only(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut status = [0; 12];
    stream.read_exact(&mut status).await.unwrap();
    let status = String::from_utf8_lossy(&status);
    let code = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status}"));
    (code, stream)
}

/// One small request on its own connection, read in full: (status, body).
async fn post_on_socket(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::AsyncReadExt;

    let (status, mut stream) = post_reading_status_only(addr, path, body).await;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8_lossy(&rest).into_owned();
    let body = rest
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The declared length of an answer and how much of it arrived, from what follows the status
/// line.
fn declared_and_received(rest: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(rest);
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of headers");
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("no Content-Length")
        .parse()
        .unwrap();
    (length, body.len())
}

#[tokio::test]
async fn answers_never_read_hold_their_permits_until_the_write_deadline() {
    use tokio::io::AsyncReadExt;

    let active = active_key();
    let deadline = Duration::from_secs(3);
    let addr = on_socket(bounded_server(vec![active.clone()], 2), deadline).await;
    let large = large_sealed_json(&active.recipient);
    let small = sealed_json(&active.recipient);
    // Two clients whose ~2 MB answers are computed (200) but never read.
    let mut unread = Vec::new();
    for _ in 0..2 {
        let (status, stream) = post_reading_status_only(addr, "/v1/reencrypt", &large).await;
        assert_eq!(status, 200);
        unread.push(stream);
    }
    // Their answers, not sent, still hold both permits: a third body is refused, unread, on
    // either endpoint, instead of adding its answer to theirs.
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let (status, body) = post_on_socket(addr, path, &small).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert!(body.contains("busy: 2 request bodies"), "{path}: {body}");
    }
    // Once the write deadline passes, the server gives up on an unread answer and its permit
    // comes back, while the first two clients still do not read.
    until_admitted(addr, "/v1/verify", &small).await;
    // A third unread answer takes that permit; the other must come back all the same: both
    // first answers have then been given up.
    let (status, _third) = until_admitted_unread(addr, &large).await;
    assert_eq!(status, 200);
    until_admitted(addr, "/v1/verify", &small).await;
    // Cut, not sent: neither of the first two clients ever gets its whole answer.
    for mut stream in unread {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        let (declared, received) = declared_and_received(&rest);
        assert!(
            received < declared,
            "a client that did not read got its whole answer ({received} of {declared} bytes)"
        );
    }
    let (status, body) = post_on_socket(addr, "/v1/reencrypt", &large).await;
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
}

/// Sends `body` every 200 ms until it is answered 200; any answer but 429 fails the test.
async fn until_admitted(addr: std::net::SocketAddr, path: &str, body: &[u8]) {
    for _ in 0..300 {
        let (status, answer) = post_on_socket(addr, path, body).await;
        match status {
            200 => return,
            429 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => panic!("{status}: {answer}"),
        }
    }
    panic!("{path}: no permit came back in 60 s");
}

/// As [`until_admitted`] on `/v1/reencrypt`, the answer admitted left unread.
async fn until_admitted_unread(
    addr: std::net::SocketAddr,
    body: &[u8],
) -> (u16, tokio::net::TcpStream) {
    for _ in 0..300 {
        let (status, stream) = post_reading_status_only(addr, "/v1/reencrypt", body).await;
        if status != 429 {
            return (status, stream);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no permit came back in 60 s");
}

#[tokio::test]
async fn an_answer_read_late_but_in_time_arrives_whole_and_frees_its_permit() {
    use tokio::io::AsyncReadExt;

    let active = active_key();
    let addr = on_socket(
        bounded_server(vec![active.clone()], 1),
        Duration::from_secs(60),
    )
    .await;
    let large = large_sealed_json(&active.recipient);
    let (status, mut stream) = post_reading_status_only(addr, "/v1/reencrypt", &large).await;
    assert_eq!(status, 200);
    let small = sealed_json(&active.recipient);
    let (status, body) = post_on_socket(addr, "/v1/verify", &small).await;
    assert_eq!(status, 429, "the unread answer gave its permit up: {body}");
    // The client reads at last, before the deadline: all of it comes.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let (declared, received) = declared_and_received(&rest);
    assert_eq!(received, declared);
    let text = String::from_utf8_lossy(&rest);
    let answer: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    let sent: Value = serde_json::from_slice(&large).unwrap();
    assert_eq!(answer["metadata"], sent["metadata"]);
    // Sent in full, it gave its permit back at once: no wait for any deadline.
    let (status, body) = post_on_socket(addr, "/v1/verify", &small).await;
    assert_eq!(status, 200, "{body}");
}
