//! The reconciler against a mocked API server: each test answers requests like the API server
//! and asserts exactly which requests (above all, which writes) were made.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use sealant_controller::fence::Fence;
use sealant_controller::metrics::Metrics;
use sealant_controller::reconcile::{Context, Error, error_policy, reconcile};
use sealant_controller::state::{KeysView, SharedKeys};
use sealant_core::convert::{SealOptions, seal_secret, unseal};
use sealant_core::crd::SealedSecret;
use sealant_core::keys::KeyRing;
use sealant_core::keystore::{KeySet, new_key_secret, parse_key_secret};
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::reconcile::{MANAGED_ANNOTATION, desired_secret};
use sealant_core::scope::Scope;
use serde_json::{Value, json};

type Recorded = Arc<Mutex<Vec<(Method, String, Value)>>>;

/// Answers requests with `handler` and records them.
fn mock_client(
    handler: impl Fn(&Method, &str, &Value) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (Client, Recorded) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let recorded: Recorded = Arc::default();
    let log = recorded.clone();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (status, answer) = handler(&method, &path, &body);
            log.lock().unwrap().push((method, path, body));
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
    });
    (Client::new(service, "default"), recorded)
}

/// [`mock_client`] that also answers the status patch and event posts every reconcile makes
/// (they are still recorded, so tests assert them).
fn mock_api(
    sealed: &SealedSecret,
    handler: impl Fn(&Method, &str, &Value) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (Client, Recorded) {
    let status = serde_json::to_value(sealed).unwrap();
    mock_client(move |method, path, body| match (method.as_str(), path) {
        ("PATCH", STATUS) => (StatusCode::OK, status.clone()),
        ("POST", EVENTS) => (StatusCode::CREATED, body.clone()),
        _ => handler(method, path, body),
    })
}

fn not_found(what: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{what} not found")}),
    )
}

struct Fixture {
    sealed: SealedSecret,
    keys: SharedKeys,
    /// The Secret the SealedSecret stands for, as the controller would write it.
    desired: Secret,
}

fn fixture() -> Fixture {
    let (mut key_secret, recipient) =
        new_key_secret("sealant-system", "2026-01-01T00:00:00Z".parse().unwrap());
    key_secret.metadata.name = Some("sealant-key-1".into());
    let key = parse_key_secret(&key_secret).unwrap();
    let yaml = "kind: Secret\nmetadata: {name: db, namespace: prod, labels: {app: db}}\nstringData: {password: hunter2}\n";
    let Manifest::Secret(secret) = read_manifests(yaml).unwrap().remove(0).value else {
        unreachable!()
    };
    let recipients = [sealant_core::keys::parse_recipient(&recipient).unwrap()];
    let opts = SealOptions {
        scope: Scope::Strict,
        recipients: &recipients,
        namespace: None,
        allow_empty: false,
    };
    let mut sealed = seal_secret(&secret, &opts).unwrap();
    sealed.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
    sealed.metadata.generation = Some(1);
    sealed.metadata.resource_version = Some("100".into());
    let ring = KeyRing::from_identities([key.identity.clone()]);
    let desired = desired_secret(&sealed, &unseal(&sealed, &ring).unwrap());
    Fixture {
        keys: SharedKeys::new(KeysView::new(KeySet::new(vec![key]))),
        sealed,
        desired,
    }
}

fn context(client: Client, keys: SharedKeys) -> Arc<Context> {
    context_with_resync(client, keys, Duration::from_secs(600))
}

fn context_with_resync(client: Client, keys: SharedKeys, resync: Duration) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        keys,
        Arc::new(Metrics::new()),
        Reporter {
            controller: "sealant-test".into(),
            instance: None,
        },
        resync,
    ))
}

const SECRET: &str = "/api/v1/namespaces/prod/secrets/db";
const SECRETS: &str = "/api/v1/namespaces/prod/secrets";
const STATUS: &str = "/apis/sealant.dev/v1alpha1/namespaces/prod/sealedsecrets/db/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";

fn calls(recorded: &Recorded) -> Vec<(Method, String)> {
    recorded
        .lock()
        .unwrap()
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect()
}

fn echo(body: &Value) -> (StatusCode, Value) {
    (StatusCode::OK, body.clone())
}

#[tokio::test]
async fn creates_the_secret_reports_ready_and_emits_a_normal_event() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (StatusCode::CREATED, body.clone()),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let action = reconcile(Arc::new(f.sealed.clone()), context(client, f.keys))
        .await
        .unwrap();
    // No requeue of its own: the periodic re-check is one timer for all objects (resync.rs).
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(
        calls(&recorded),
        [
            (Method::GET, SECRET.into()),
            (Method::POST, SECRETS.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    let log = recorded.lock().unwrap();
    let created = &log[1].2;
    assert_eq!(created["data"]["password"], "aHVudGVyMg==");
    assert_eq!(created["metadata"]["labels"]["app"], "db");
    assert_eq!(
        created["metadata"]["ownerReferences"][0]["kind"],
        "SealedSecret"
    );
    assert_eq!(
        created["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    let condition = &log[2].2["status"]["conditions"][0];
    assert_eq!(
        (condition["type"].as_str(), condition["status"].as_str()),
        (Some("Ready"), Some("True"))
    );
    assert_eq!(log[2].2["status"]["observedGeneration"], 1);
    assert_eq!(log[3].2["type"], "Normal");
}

#[tokio::test]
async fn an_up_to_date_secret_and_status_mean_no_writes() {
    let f = fixture();
    let mut existing = f.desired.clone();
    existing.metadata.resource_version = Some("5".into());
    let mut sealed = f.sealed.clone();
    // The status a previous reconcile wrote.
    let now = "2026-01-01T00:00:00Z";
    sealed.status = Some(sealant_core::crd::SealedSecretStatus {
        observed_generation: Some(1),
        conditions: vec![sealant_core::reconcile::ready_condition(
            None,
            true,
            "Unsealed",
            "Secret db is up to date",
            Some(1),
            now,
        )],
        opened_with: f.keys.get().set.active_recipients(),
    });
    let (client, recorded) = mock_client(move |method, path, _| match (method.as_str(), path) {
        ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&existing).unwrap()),
        other => panic!("a write on an unchanged object: {other:?}"),
    });
    reconcile(Arc::new(sealed), context(client, f.keys))
        .await
        .unwrap();
    assert_eq!(calls(&recorded), [(Method::GET, SECRET.into())]);
}

#[tokio::test]
async fn an_edited_secret_is_restored() {
    let f = fixture();
    let mut edited = f.desired.clone();
    edited.metadata.resource_version = Some("6".into());
    edited.data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"changed".to_vec()),
    );
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&edited).unwrap()),
            ("PUT", SECRET) => echo(body),
            other => panic!("unexpected request {other:?}"),
        }
    });
    reconcile(Arc::new(f.sealed.clone()), context(client, f.keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    let put = log
        .iter()
        .find(|(m, _, _)| m == Method::PUT)
        .expect("a replace");
    assert_eq!(put.2["data"]["password"], "aHVudGVyMg==");
    assert_eq!(
        put.2["metadata"]["resourceVersion"], "6",
        "optimistic concurrency"
    );
}

#[tokio::test]
async fn a_foreign_secret_is_left_alone_with_a_clear_condition() {
    let f = fixture();
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod", "resourceVersion": "3"}, "data": {"password": "b3RoZXI="}});
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, foreign.clone()),
            other => panic!("the foreign Secret must not be written: {other:?}"),
        }
    });
    reconcile(Arc::new(f.sealed.clone()), context(client, f.keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    let status =
        &log.iter().find(|(m, _, _)| m == Method::PATCH).unwrap().2["status"]["conditions"][0];
    assert_eq!(status["status"], "False");
    assert_eq!(status["reason"], "NotOwned");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains(MANAGED_ANNOTATION)
    );
    let event = &log.iter().find(|(_, p, _)| p == EVENTS).unwrap().2;
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn a_managed_annotation_allows_takeover() {
    let f = fixture();
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod", "resourceVersion": "3", "annotations": {MANAGED_ANNOTATION: "true"}}, "data": {"password": "b3RoZXI="}});
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, foreign.clone()),
            ("PUT", SECRET) => echo(body),
            other => panic!("unexpected request {other:?}"),
        }
    });
    reconcile(Arc::new(f.sealed.clone()), context(client, f.keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    let put = &log
        .iter()
        .find(|(m, _, _)| m == Method::PUT)
        .expect("taken over")
        .2;
    assert_eq!(
        put["metadata"]["ownerReferences"][0]["uid"],
        f.sealed.metadata.uid.clone().unwrap()
    );
    assert_eq!(put["data"]["password"], "aHVudGVyMg==");
}

#[tokio::test]
async fn a_value_it_cannot_open_leaves_the_existing_secret_untouched() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        panic!("no Secret may be read or written: {method} {path}")
    });
    // The cluster lost its key: nothing opens.
    reconcile(
        Arc::new(f.sealed.clone()),
        context(client, SharedKeys::default()),
    )
    .await
    .unwrap();
    let log = recorded.lock().unwrap();
    assert_eq!(log.len(), 2);
    let condition = &log[0].2["status"]["conditions"][0];
    assert_eq!(condition["reason"], "NoKey");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("none of those keys is held here")
    );
    assert_eq!(log[1].2["type"], "Warning");
}

#[tokio::test]
async fn a_compromised_key_is_reported() {
    let f = fixture();
    let mut key = f.keys.get().set.keys()[0].clone();
    key.state = sealant_core::keystore::KeyState::Compromised;
    let keys = SharedKeys::new(KeysView::new(KeySet::new(vec![key])));
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        panic!("unexpected request {method} {path}")
    });
    reconcile(Arc::new(f.sealed.clone()), context(client, keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    assert_eq!(
        log[0].2["status"]["conditions"][0]["reason"],
        "KeyCompromised"
    );
}

#[tokio::test]
async fn api_errors_surface_for_a_retry() {
    let f = fixture();
    let (client, _) = mock_client(|_, _, _| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500, "message": "etcd unavailable", "reason": "InternalError"}),
        )
    });
    let sealed = Arc::new(f.sealed.clone());
    let err = reconcile(sealed.clone(), context(client, f.keys))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("etcd unavailable"), "{err}");
    assert_eq!(sealed.object_ref(&()).name.as_deref(), Some("db"));
}

#[tokio::test]
async fn a_secret_the_api_server_refuses_is_reported_not_retried_silently() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 422, "reason": "Invalid", "message": "Secret \"db\" is invalid: data[username]: Required value"}),
            ),
            other => panic!("unexpected request {other:?}"),
        }
    });
    reconcile(Arc::new(f.sealed.clone()), context(client, f.keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    let condition =
        &log.iter().find(|(m, _, _)| m == Method::PATCH).unwrap().2["status"]["conditions"][0];
    assert_eq!(condition["reason"], "SecretRejected");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("Required value")
    );
}

#[tokio::test]
async fn a_forbidden_secret_write_is_reported_and_retried_with_backoff() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (
                StatusCode::FORBIDDEN,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403, "reason": "Forbidden", "message": "secrets is forbidden: User \"system:serviceaccount:sealant-system:seal-controller\" cannot create resource \"secrets\""}),
            ),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, f.keys);
    let sealed = Arc::new(f.sealed.clone());
    // A 403 is not the final word (an RBAC fix ends it): an error, so the controller retries
    // it, not a status that waits for the resync.
    let err = reconcile(sealed.clone(), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("cannot create resource"), "{err}");
    {
        let log = recorded.lock().unwrap();
        let condition =
            &log.iter().find(|(m, _, _)| m == Method::PATCH).unwrap().2["status"]["conditions"][0];
        assert_eq!(condition["reason"], "SecretForbidden");
        assert_eq!(condition["status"], "False");
    }
    // Retried sooner the first times, then backing off.
    assert_eq!(
        error_policy(sealed.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        error_policy(sealed.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(2))
    );
}

#[tokio::test]
async fn a_replica_whose_leadership_lapsed_writes_nothing() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            other => panic!("a write from a fenced replica: {other:?}"),
        }
    });
    // Elected but never renewed (or lapsed): the fence is closed.
    let ctx = Arc::new(
        Arc::into_inner(context(client, f.keys))
            .unwrap()
            .writing_as(
                "sealant-controller/old".into(),
                Fence::elected(Duration::from_secs(10)),
            ),
    );
    let err = reconcile(Arc::new(f.sealed.clone()), ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced(_)), "{err}");
    let log = recorded.lock().unwrap();
    let writes: Vec<_> = log
        .iter()
        .filter(|(m, _, _)| m != Method::GET)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert!(
        writes.is_empty(),
        "writes from a fenced replica: {writes:?}"
    );
}

fn secret_meta(rv: &str) -> kube::core::PartialObjectMeta<Secret> {
    let mut m = kube::core::PartialObjectMeta::<Secret>::default();
    m.metadata.name = Some("db".into());
    m.metadata.namespace = Some("prod".into());
    m.metadata.resource_version = Some(rv.into());
    m
}

#[tokio::test]
async fn the_echo_of_its_own_writes_costs_no_request() {
    use kube::runtime::watcher::Event;
    let f = fixture();
    let mut edited = f.desired.clone();
    edited.metadata.resource_version = Some("8".into());
    edited.data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"changed".to_vec()),
    );
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("POST", SECRETS) => {
                let mut created = body.clone();
                created["metadata"]["resourceVersion"] = json!("7");
                (StatusCode::CREATED, created)
            }
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&edited).unwrap()),
            ("PUT", SECRET) => (StatusCode::OK, body.clone()),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, f.keys);
    ctx.versions.observe(&Event::Init);
    ctx.versions.observe(&Event::InitDone);
    let sealed = Arc::new(f.sealed.clone());

    // A new object: created without a read first.
    reconcile(sealed.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        calls(&recorded),
        [
            (Method::POST, SECRETS.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    // The watch reports the Secret it wrote, and the cached SealedSecret still lacks the
    // status it wrote: a reconcile now (the trigger, or a stale cache) makes no request.
    assert!(ctx.written.is_echo("prod", "db", "7"));
    ctx.versions.observe(&Event::Apply(secret_meta("7")));
    reconcile(sealed.clone(), ctx.clone()).await.unwrap();
    assert_eq!(calls(&recorded).len(), 3, "{:?}", calls(&recorded));

    // Someone else changed the Secret: it is read and put right.
    assert!(!ctx.written.is_echo("prod", "db", "8"));
    ctx.versions.observe(&Event::Apply(secret_meta("8")));
    reconcile(sealed, ctx.clone()).await.unwrap();
    assert_eq!(
        calls(&recorded)[3..],
        [
            (Method::GET, SECRET.into()),
            (Method::PUT, SECRET.into()),
            (Method::POST, EVENTS.into())
        ]
    );
}

#[tokio::test]
async fn a_create_that_finds_the_secret_there_reads_it_and_writes_nothing_more() {
    use kube::runtime::watcher::Event;
    let f = fixture();
    let mut existing = f.desired.clone();
    existing.metadata.resource_version = Some("5".into());
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            // The watch lagged: the Secret exists already.
            ("POST", SECRETS) => (
                StatusCode::CONFLICT,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "secrets \"db\" already exists"}),
            ),
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&existing).unwrap()),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, f.keys);
    ctx.versions.observe(&Event::Init);
    ctx.versions.observe(&Event::InitDone);
    reconcile(Arc::new(f.sealed.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        calls(&recorded),
        [
            (Method::POST, SECRETS.into()),
            (Method::GET, SECRET.into()),
            (Method::PATCH, STATUS.into()),
        ]
    );
    assert!(ctx.written.is_echo("prod", "db", "5"));
}

const SEALED: &str = "/apis/sealant.dev/v1alpha1/namespaces/prod/sealedsecrets/db";

#[tokio::test]
async fn a_hollow_copy_is_read_whole_only_when_it_must_be_opened() {
    use kube::runtime::watcher::Event;
    use sealant_controller::sealed_cache::hollow;
    let f = fixture();
    let full = serde_json::to_value(&f.sealed).unwrap();
    let secret_at = Arc::new(Mutex::new(f.desired.clone()));
    let current = secret_at.clone();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("POST", SECRETS) => {
                let mut created: Secret = serde_json::from_value(body.clone()).unwrap();
                created.metadata.resource_version = Some("7".into());
                *current.lock().unwrap() = created.clone();
                (StatusCode::CREATED, serde_json::to_value(created).unwrap())
            }
            ("GET", SEALED) => (StatusCode::OK, full.clone()),
            ("GET", SECRET) => (
                StatusCode::OK,
                serde_json::to_value(&*current.lock().unwrap()).unwrap(),
            ),
            ("PUT", SECRET) => echo(body),
            other => panic!("unexpected request {other:?}"),
        }
    });
    // A resync of 2 ns: every memory of a confirmation is already old, so it is checked.
    let ctx = context_with_resync(client, f.keys.clone(), Duration::from_nanos(2));
    ctx.versions.observe(&Event::Init);
    ctx.versions.observe(&Event::InitDone);
    // New: the cache holds a hollow copy, so the whole object is read before opening it.
    let cached = Arc::new(hollow(&f.sealed));
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        calls(&recorded),
        [
            (Method::GET, SEALED.into()),
            (Method::POST, SECRETS.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    ctx.versions.observe(&Event::Apply(secret_meta("7")));

    // Untouched: one read of the Secret's metadata confirms it, nothing is opened or written.
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    assert_eq!(calls(&recorded)[4..], [(Method::GET, SECRET.into())]);

    // Edited by someone: the whole SealedSecret is read back, and the Secret put right.
    secret_at.lock().unwrap().metadata.resource_version = Some("8".into());
    secret_at.lock().unwrap().data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"changed".to_vec()),
    );
    ctx.versions.observe(&Event::Apply(secret_meta("8")));
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        calls(&recorded)[5..],
        [
            (Method::GET, SEALED.into()),
            (Method::GET, SECRET.into()),
            (Method::PUT, SECRET.into()),
            (Method::POST, EVENTS.into())
        ]
    );

    // Its key withdrawn: read back and opened again, so the status says it no longer opens.
    f.keys.set(KeysView::new(KeySet::new(Vec::new())));
    reconcile(cached, ctx.clone()).await.unwrap();
    let after = calls(&recorded);
    assert_eq!(
        after[9..],
        [
            (Method::GET, SEALED.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    let status = &recorded.lock().unwrap()[10].2;
    assert_eq!(status["status"]["conditions"][0]["reason"], "NoKey");
}

#[tokio::test]
async fn an_object_in_place_costs_no_request_until_a_key_is_compromised() {
    use kube::runtime::watcher::Event;
    use sealant_controller::sealed_cache::hollow;
    use sealant_core::keystore::KeyState;
    let f = fixture();
    let full = serde_json::to_value(&f.sealed).unwrap();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SEALED) => (StatusCode::OK, full.clone()),
            ("POST", SECRETS) => {
                let mut created = body.clone();
                created["metadata"]["resourceVersion"] = json!("7");
                (StatusCode::CREATED, created)
            }
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, f.keys.clone());
    ctx.versions.observe(&Event::Init);
    ctx.versions.observe(&Event::InitDone);
    let cached = Arc::new(hollow(&f.sealed));
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    assert_eq!(calls(&recorded).len(), 4, "read, create, status, event");
    ctx.versions.observe(&Event::Apply(secret_meta("7")));

    // A re-check within half a resync (600 s here): answered from memory and the watch.
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    // A new key, the old one retired: what opened still opens, so nothing is asked either.
    let key = f.keys.get().set.keys()[0].clone();
    let (mut other, _) = new_key_secret("sealant-system", "2026-02-01T00:00:00Z".parse().unwrap());
    other.metadata.name = Some("sealant-key-2".into());
    let retired = sealant_core::keystore::StoredKey {
        state: KeyState::Retired,
        ..key.clone()
    };
    f.keys.set(KeysView::new(KeySet::new(vec![
        retired,
        parse_key_secret(&other).unwrap(),
    ])));
    reconcile(cached.clone(), ctx.clone()).await.unwrap();
    assert_eq!(calls(&recorded).len(), 4, "{:?}", calls(&recorded));

    // Its key compromised: read whole and opened again, and the status says so.
    let compromised = sealant_core::keystore::StoredKey {
        state: KeyState::Compromised,
        ..key
    };
    f.keys.set(KeysView::new(KeySet::new(vec![compromised])));
    reconcile(cached, ctx.clone()).await.unwrap();
    assert_eq!(
        calls(&recorded)[4..],
        [
            (Method::GET, SEALED.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    let status = &recorded.lock().unwrap()[5].2;
    assert_eq!(
        status["status"]["conditions"][0]["reason"],
        "KeyCompromised"
    );
}
