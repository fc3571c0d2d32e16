//! The reconciler against a mocked API server: each test answers requests like the API server
//! and asserts exactly which requests (above all, which writes) were made.

mod support;

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
use sealant_controller::outcome::Error;
use sealant_controller::reconcile::{Context, error_policy, reconcile};
use sealant_controller::state::{KeysView, SharedKeys};
use sealant_core::convert::unseal;
use sealant_core::crd::SealedSecret;
use sealant_core::keys::KeyRing;
use sealant_core::keystore::{KeySet, new_key_secret, parse_key_secret};
use sealant_core::reconcile::{MANAGED_ANNOTATION, desired_secret};
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

/// The API server's answer to a request that failed.
fn failure(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code.as_u16(), "message": message}),
    )
}

/// Answers requests about Secret db: it does not exist, and creating it fails with `code`.
fn create_fails(
    code: StatusCode,
    reason: &'static str,
    message: &'static str,
) -> impl Fn(&Method, &str) -> (StatusCode, Value) + Send + Sync + 'static {
    move |method, path| match (method.as_str(), path) {
        ("GET", SECRET) => not_found("secrets \"db\""),
        ("POST", SECRETS) => failure(code, reason, message),
        other => panic!("unexpected request {other:?}"),
    }
}

fn not_found(what: &str) -> (StatusCode, Value) {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} not found"),
    )
}

struct Fixture {
    sealed: SealedSecret,
    keys: SharedKeys,
    /// The Secret the SealedSecret stands for, as the controller would write it.
    desired: Secret,
}

/// The fixture's Secret `db` in `prod` (password `hunter2`).
const DB_IN_PROD: &str = "kind: Secret\nmetadata: {name: db, namespace: prod, labels: {app: db}}\nstringData: {password: hunter2}\n";

/// The one Secret in `yaml`, sealed (strict scope) to `recipients`.
fn seal_to(yaml: &str, recipients: &[&str]) -> SealedSecret {
    let recipients: Vec<_> = recipients
        .iter()
        .map(|r| sealant_core::keys::parse_recipient(r).unwrap())
        .collect();
    support::seal_strict(yaml, &recipients)
}

fn fixture() -> Fixture {
    let (mut key_secret, recipient) =
        new_key_secret("sealant-system", "2026-01-01T00:00:00Z".parse().unwrap());
    key_secret.metadata.name = Some("sealant-key-1".into());
    let key = parse_key_secret(&key_secret).unwrap();
    let mut sealed = seal_to(DB_IN_PROD, &[&recipient]);
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

/// The fixture's key set with its one key marked compromised.
fn compromised(keys: &SharedKeys) -> SharedKeys {
    let mut key = keys.get().set.keys()[0].clone();
    key.state = sealant_core::keystore::KeyState::Compromised;
    SharedKeys::new(KeysView::new(KeySet::new(vec![key])))
}

/// The fixture's Secret as someone else left it: `password` changed, at resourceVersion `rv`.
fn edited(f: &Fixture, rv: &str) -> Secret {
    let mut edited = f.desired.clone();
    edited.metadata.resource_version = Some(rv.into());
    edited.data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"changed".to_vec()),
    );
    edited
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

/// A Secret created, then the status (at `status`) and an Event written: a first sync.
fn created_and_reported(status: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, SECRET.into()),
        (Method::POST, SECRETS.into()),
        (Method::PATCH, status.into()),
        (Method::POST, EVENTS.into()),
    ]
}

fn calls(recorded: &Recorded) -> Vec<(Method, String)> {
    recorded
        .lock()
        .unwrap()
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect()
}

/// Reconciles `sealed` once against [`mock_api`] answering with `handler`; what was asked.
async fn reconcile_ok(
    sealed: &SealedSecret,
    keys: SharedKeys,
    handler: impl Fn(&Method, &str, &Value) -> (StatusCode, Value) + Send + Sync + 'static,
) -> Recorded {
    let (client, recorded) = mock_api(sealed, handler);
    reconcile(Arc::new(sealed.clone()), context(client, keys))
        .await
        .unwrap();
    recorded
}

/// The status of the first status patch in `log`.
fn patched_status(log: &[(Method, String, Value)]) -> &Value {
    &log.iter().find(|(m, _, _)| m == Method::PATCH).unwrap().2["status"]
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
    assert_eq!(calls(&recorded), created_and_reported(STATUS));
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
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    sealed.status = Some(sealant_core::crd::SealedSecretStatus {
        observed_generation: Some(1),
        conditions: sealant_core::conditions::conditions(
            None,
            &sealant_core::conditions::Health::Ready {
                message: "Secret db is up to date",
            },
            Some(1),
            now,
        ),
        opened_with: f.keys.get().set.active_recipients(),
        exposed_to: Vec::new(),
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
    let edited = edited(&f, "6");
    let recorded = reconcile_ok(&f.sealed, f.keys, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&edited).unwrap()),
            ("PUT", SECRET) => echo(body),
            other => panic!("unexpected request {other:?}"),
        }
    })
    .await;
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
    let recorded = reconcile_ok(&f.sealed, f.keys, move |method, path, _| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, foreign.clone()),
            other => panic!("the foreign Secret must not be written: {other:?}"),
        }
    })
    .await;
    let log = recorded.lock().unwrap();
    let status = &patched_status(&log)["conditions"][0];
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
    let recorded = reconcile_ok(&f.sealed, f.keys, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, foreign.clone()),
            ("PUT", SECRET) => echo(body),
            other => panic!("unexpected request {other:?}"),
        }
    })
    .await;
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
    let keys = compromised(&f.keys);
    let recorded = reconcile_ok(&f.sealed, keys, move |method, path, _| {
        panic!("unexpected request {method} {path}")
    })
    .await;
    let log = recorded.lock().unwrap();
    assert_eq!(
        log[0].2["status"]["conditions"][0]["reason"],
        "KeyCompromised"
    );
}

/// Sealed to the active key and to a key since marked compromised: the cluster still needs the
/// Secret, but whoever holds the compromised key can read it, and that must not go unnoticed.
#[tokio::test]
async fn a_value_a_compromised_key_also_opens_is_opened_and_reported_exposed() {
    let f = fixture();
    let good = f.keys.get().set.keys()[0].clone();
    let (bad_secret, _) = new_key_secret("sealant-system", "2025-01-01T00:00:00Z".parse().unwrap());
    let mut bad = parse_key_secret(&bad_secret).unwrap();
    bad.state = sealant_core::keystore::KeyState::Compromised;
    let mut sealed = seal_to(DB_IN_PROD, &[&good.recipient, &bad.recipient]);
    sealed.metadata = f.sealed.metadata.clone();
    let keys = SharedKeys::new(KeysView::new(KeySet::new(vec![good, bad.clone()])));
    let (client, recorded) = mock_api(&sealed, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (StatusCode::CREATED, body.clone()),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, keys);
    let metrics = ctx.metrics.clone();
    reconcile(Arc::new(sealed), ctx).await.unwrap();

    let log = recorded.lock().unwrap();
    assert_eq!(log[1].2["data"]["password"], "aHVudGVyMg==", "still opened");
    let status = &log[2].2["status"];
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["exposedTo"], json!([bad.recipient]));
    let warnings: Vec<&Value> = log
        .iter()
        .filter(|(m, p, b)| m == Method::POST && p == EVENTS && b["type"] == "Warning")
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["reason"], "Exposed");
    assert!(
        warnings[0]["note"]
            .as_str()
            .unwrap()
            .contains(&bad.recipient)
    );
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l == "sealant_sealed_secret_exposed{namespace=\"prod\",name=\"db\"} 1"),
        "{text}"
    );
    for (method, path, body) in log.iter().filter(|(_, p, _)| p != SECRETS) {
        let body = body.to_string();
        assert!(
            !body.contains("hunter2") && !body.contains("aHVudGVyMg=="),
            "plaintext in {method} {path}"
        );
    }
}

/// A value whose ciphertext was changed in Git: reason `Tampered`, metric label `tampered`, a
/// Warning event, and no request for the Secret at all.
#[tokio::test]
async fn a_tampered_value_is_reported_as_tampered() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    let f = fixture();
    let mut sealed = f.sealed.clone();
    let value = sealed.spec.encrypted_data.get_mut("password").unwrap();
    let mut bytes = BASE64.decode(&*value).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    *value = BASE64.encode(&bytes);
    let (client, recorded) = mock_api(&sealed, move |method, path, _| {
        panic!("unexpected request {method} {path}")
    });
    let ctx = context(client, f.keys);
    let metrics = ctx.metrics.clone();
    reconcile(Arc::new(sealed), ctx).await.unwrap();
    assert_eq!(
        calls(&recorded),
        [
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    let log = recorded.lock().unwrap();
    let condition = &log[0].2["status"]["conditions"][0];
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Tampered");
    assert_eq!(
        condition["message"],
        "item 'password' failed authentication: the ciphertext is damaged, truncated or tampered with"
    );
    assert_eq!(log[1].2["type"], "Warning");
    assert_eq!(log[1].2["reason"], "Tampered");
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l == "sealant_unseal_errors_total{namespace=\"prod\",reason=\"Tampered\"} 1"),
        "{text}"
    );
}

/// An immutable Secret whose data must change: the replacement is validated by a dry run,
/// then the exact object that was read is deleted (uid and resourceVersion preconditions), then
/// the new one is created.
#[tokio::test]
async fn an_immutable_secret_is_validated_then_deleted_and_recreated() {
    let f = fixture();
    let mut existing = f.desired.clone();
    existing.immutable = Some(true);
    existing.metadata.uid = Some("old-uid".into());
    existing.metadata.resource_version = Some("7".into());
    existing
        .data
        .as_mut()
        .unwrap()
        .insert("password".into(), k8s_openapi::ByteString(b"old".to_vec()));
    let recorded = reconcile_ok(&f.sealed, f.keys, move |method, path, body| {
        match (method.as_str(), path) {
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&existing).unwrap()),
            ("POST", SECRETS) => (StatusCode::CREATED, body.clone()),
            ("DELETE", SECRET) => (
                StatusCode::OK,
                json!({"kind": "Status", "status": "Success"}),
            ),
            other => panic!("unexpected request {other:?}"),
        }
    })
    .await;
    assert_eq!(
        calls(&recorded),
        [
            (Method::GET, SECRET.into()),
            (Method::POST, SECRETS.into()),
            (Method::DELETE, SECRET.into()),
            (Method::POST, SECRETS.into()),
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into()),
        ]
    );
    let log = recorded.lock().unwrap();
    assert_eq!(log[1].2["metadata"]["generateName"], "db-", "the dry run");
    assert_eq!(
        log[2].2["preconditions"],
        json!({"uid": "old-uid", "resourceVersion": "7"})
    );
    assert_eq!(log[3].2["metadata"]["name"], "db");
    assert_eq!(log[3].2["data"]["password"], "aHVudGVyMg==");
    assert!(
        log[5].2["note"].as_str().unwrap().contains("recreated"),
        "{}",
        log[5].2
    );
}

/// A failure that persists is reported once: the status and a Warning event when it starts,
/// nothing on the next reconciles of the same state, and again when the state changes.
#[tokio::test]
async fn one_warning_event_per_change_of_state() {
    let f = fixture();
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        panic!("no Secret may be read or written: {method} {path}")
    });
    let ctx = context(client.clone(), SharedKeys::default());
    reconcile(Arc::new(f.sealed.clone()), ctx.clone())
        .await
        .unwrap();
    let first = recorded.lock().unwrap().clone();
    assert_eq!(
        calls(&recorded),
        [
            (Method::PATCH, STATUS.into()),
            (Method::POST, EVENTS.into())
        ]
    );
    assert_eq!(first[1].2["reason"], "NoKey");

    // The next resync: the object now carries that status. Nothing is written.
    let mut reported = f.sealed.clone();
    reported.status = Some(serde_json::from_value(first[0].2["status"].clone()).unwrap());
    reconcile(Arc::new(reported.clone()), ctx).await.unwrap();
    reconcile(
        Arc::new(reported.clone()),
        context(client.clone(), SharedKeys::default()),
    )
    .await
    .unwrap();
    assert_eq!(recorded.lock().unwrap().len(), 2, "same state: no event");

    // Another failure: reported again.
    let keys = compromised(&f.keys);
    reconcile(Arc::new(reported), context(client, keys))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].2["type"], "Warning");
    assert_eq!(log[3].2["reason"], "KeyCompromised");
}

#[tokio::test]
async fn api_errors_surface_for_a_retry() {
    let f = fixture();
    let (client, _) = mock_client(|_, _, _| {
        failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcd unavailable",
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
    let refuse = create_fails(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        "Secret \"db\" is invalid: data[username]: Required value",
    );
    let recorded = reconcile_ok(&f.sealed, f.keys, move |method, path, _| {
        refuse(method, path)
    })
    .await;
    let log = recorded.lock().unwrap();
    let condition = &patched_status(&log)["conditions"][0];
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
    let forbid = create_fails(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "secrets is forbidden: User \"system:serviceaccount:sealant-system:seal-controller\" cannot create resource \"secrets\"",
    );
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| forbid(method, path));
    let ctx = context(client, f.keys);
    let sealed = Arc::new(f.sealed.clone());
    // A 403 is not the final word (an RBAC fix ends it): an error, so the controller retries
    // it, not a status that waits for the resync.
    let err = reconcile(sealed.clone(), ctx.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("cannot create resource"), "{err}");
    {
        let log = recorded.lock().unwrap();
        let condition = &patched_status(&log)["conditions"][0];
        assert_eq!(condition["reason"], "SecretForbidden");
        assert_eq!(condition["status"], "False");
        let status = patched_status(&log);
        assert_eq!(
            status["conditions"][1]["type"], "Reconciling",
            "retried: {status}"
        );
        assert_eq!(status["conditions"][1]["status"], "True");
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

/// The Secret metadata watch has listed: no Secret is there yet.
fn watch_listed(ctx: &Context) {
    use kube::runtime::watcher::Event;
    ctx.versions.observe(&Event::Init);
    ctx.versions.observe(&Event::InitDone);
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
    let edited = edited(&f, "8");
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
    watch_listed(&ctx);
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
    assert!(ctx.last_writes.is_echo("prod", "db", "7"));
    ctx.versions.observe(&Event::Apply(secret_meta("7")));
    reconcile(sealed.clone(), ctx.clone()).await.unwrap();
    assert_eq!(calls(&recorded).len(), 3, "{:?}", calls(&recorded));

    // Someone else changed the Secret: it is read and put right.
    assert!(!ctx.last_writes.is_echo("prod", "db", "8"));
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
    let f = fixture();
    let mut existing = f.desired.clone();
    existing.metadata.resource_version = Some("5".into());
    let (client, recorded) = mock_api(&f.sealed, move |method, path, _| {
        match (method.as_str(), path) {
            // The watch lagged: the Secret exists already.
            ("POST", SECRETS) => failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                "secrets \"db\" already exists",
            ),
            ("GET", SECRET) => (StatusCode::OK, serde_json::to_value(&existing).unwrap()),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let ctx = context(client, f.keys);
    watch_listed(&ctx);
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
    assert!(ctx.last_writes.is_echo("prod", "db", "5"));
}

const SEALED: &str = "/apis/sealant.dev/v1alpha1/namespaces/prod/sealedsecrets/db";

#[tokio::test]
async fn a_hollow_copy_is_read_whole_only_when_it_must_be_opened() {
    use kube::runtime::watcher::Event;
    use sealant_controller::triggers::hollow;
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
    watch_listed(&ctx);
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
    use sealant_controller::triggers::hollow;
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
    watch_listed(&ctx);
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

#[tokio::test]
async fn more_plaintext_than_a_secret_holds_is_refused_before_any_secret_is_touched() {
    // Sealed by hand past `seal`'s own check (anyone can seal to the public key): two values of
    // 600 KiB each, 1.2 MiB in all, where a Secret holds at most 1 MiB.
    let f = fixture();
    let key = f.keys.get().set.keys()[0].clone();
    let recipient = sealant_core::keys::parse_recipient(&key.recipient).unwrap();
    let mut sealed = f.sealed.clone();
    support::add_more_than_a_secret_holds(&mut sealed, &recipient);
    let (client, recorded) = mock_api(&sealed, move |method, path, _| {
        panic!("no Secret may be read or written: {method} {path}")
    });
    reconcile(Arc::new(sealed), context(client, f.keys.clone()))
        .await
        .unwrap();
    let log = recorded.lock().unwrap();
    assert_eq!(log.len(), 2, "only the status and the event are written");
    let condition = &log[0].2["status"]["conditions"][0];
    assert_eq!(condition["reason"], "Malformed");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("Kubernetes limits a Secret to 1 MiB (1048576 bytes)"),
        "{message}"
    );
    assert!(!message.contains("xxxxxxxx"), "{message}");
    assert_eq!(log[1].2["type"], "Warning");
}

/// What kstatus (Flux, cli-utils) makes of the status each outcome writes, by kstatus's
/// documented rules implemented apart from the controller (sealant_e2e::kstatus): opened is
/// Current, a failure a person must fix is Failed at once, a failure the controller retries is
/// InProgress. Each status body is asserted whole (bar its transition times, checked to be
/// timestamps), and so is the Argo CD check's verdict on it (a real Lua 5.1, sealant_e2e::argocd).
mod kstatus_reads_the_status {
    use super::*;
    use sealant_e2e::argocd;
    use sealant_e2e::kstatus::{self, Status};

    /// Reconciles `sealed` once: its result, and the status it wrote with each
    /// `lastTransitionTime` checked and taken out.
    async fn reconcile_once(
        sealed: &SealedSecret,
        keys: SharedKeys,
        secrets: impl Fn(&Method, &str) -> (StatusCode, Value) + Send + Sync + 'static,
    ) -> (Result<Action, Error>, Value) {
        let echo = serde_json::to_value(sealed).unwrap();
        let (client, recorded) = mock_client(move |method, path, body| {
            if method == Method::PATCH && path.ends_with("/status") {
                (StatusCode::OK, echo.clone())
            } else if path == EVENTS {
                (StatusCode::CREATED, body.clone())
            } else {
                secrets(method, path)
            }
        });
        let result = reconcile(Arc::new(sealed.clone()), context(client, keys)).await;
        let log = recorded.lock().unwrap();
        let patches: Vec<&Value> = log
            .iter()
            .filter(|(m, p, _)| m == Method::PATCH && p.ends_with("/status"))
            .map(|(_, _, b)| b)
            .collect();
        assert_eq!(patches.len(), 1, "one status write: {:?}", calls(&recorded));
        let mut status = patches[0]["status"].clone();
        for c in status["conditions"].as_array_mut().unwrap() {
            let time = c["lastTransitionTime"].as_str().expect("a transition time");
            assert!(
                time.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && time.ends_with('Z'),
                "{time}"
            );
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
        (result, status)
    }

    /// The object as the API server would then return it.
    fn with_status(sealed: &SealedSecret, status: &Value) -> Value {
        let mut obj = serde_json::to_value(sealed).unwrap();
        obj["status"] = status.clone();
        obj
    }

    fn failed_status(abnormal: &str, reason: &str, message: &str, generation: i64) -> Value {
        let condition = |type_: &str, status: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "observedGeneration": generation})
        };
        json!({"observedGeneration": generation,
               "conditions": [condition("Ready", "False"), condition(abnormal, "True")]})
    }

    /// [`failed_status`] of a SealedSecret that opened (with `keys`) before the Secret failed.
    fn failed_after_opening(
        abnormal: &str,
        reason: &str,
        message: &str,
        keys: &SharedKeys,
    ) -> Value {
        let mut status = failed_status(abnormal, reason, message, 1);
        status["openedWith"] = json!(keys.get().set.active_recipients());
        status
    }

    fn message_of(status: &Value) -> String {
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// kstatus's and Argo CD's verdicts on `sealed` carrying `status`.
    fn verdicts(sealed: &SealedSecret, status: &Value) -> ((Status, String), (String, String)) {
        let obj = with_status(sealed, status);
        (kstatus::compute(&obj), argocd::health(&obj))
    }

    /// How the mocked API server answers requests about the Secret.
    type Answer = Box<dyn Fn(&Method, &str) -> (StatusCode, Value) + Send + Sync>;

    fn no_secret_request(method: &Method, path: &str) -> (StatusCode, Value) {
        panic!("no Secret request expected: {method} {path}")
    }

    fn creates(method: &Method, path: &str) -> (StatusCode, Value) {
        match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (
                StatusCode::CREATED,
                json!({"metadata": {"resourceVersion": "7"}}),
            ),
            other => panic!("unexpected request {other:?}"),
        }
    }

    #[tokio::test]
    async fn opened_is_current_and_healthy() {
        let f = fixture();
        let (result, status) = reconcile_once(&f.sealed, f.keys.clone(), creates).await;
        result.unwrap();
        let opened_with = f.keys.get().set.active_recipients();
        assert_eq!(
            status,
            json!({"observedGeneration": 1, "openedWith": opened_with,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Unsealed",
                                   "message": "Secret db is up to date", "observedGeneration": 1}]})
        );
        let (kstatus, argo) = verdicts(&f.sealed, &status);
        assert_eq!(kstatus.0, Status::Current);
        assert_eq!(
            argo,
            ("Healthy".to_owned(), "Secret db is up to date".to_owned())
        );
        // Edited since (generation 2) and not yet reconciled: in progress for both.
        let mut edited = f.sealed.clone();
        edited.metadata.generation = Some(2);
        let (kstatus, argo) = verdicts(&edited, &status);
        assert_eq!(kstatus.0, Status::InProgress, "{}", kstatus.1);
        assert_eq!(argo.0, "Progressing", "{}", argo.1);
    }

    /// Every failure a person must end: `Stalled=True` with the reason, kstatus Failed, Argo CD
    /// Degraded with the condition's message.
    #[tokio::test]
    async fn failures_that_need_a_person_are_failed_and_degraded() {
        let f = fixture();
        let compromised = compromised(&f.keys);
        // Sealed for prod/db, applied as staging/db... here: sealed for staging, applied in prod.
        let recipient = f.keys.get().set.keys()[0].recipient.clone();
        let yaml = "kind: Secret\nmetadata: {name: db, namespace: staging}\nstringData: {password: hunter2}\n";
        let mut moved = seal_to(yaml, &[&recipient]);
        moved.metadata = f.sealed.metadata.clone();
        let mut minting = f.sealed.clone();
        minting.spec.template.type_ = Some("kubernetes.io/service-account-token".into());
        let foreign = |method: &Method, path: &str| match (method.as_str(), path) {
            ("GET", SECRET) => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod", "resourceVersion": "3"}}),
            ),
            other => panic!("the foreign Secret must not be written: {other:?}"),
        };
        let rejected = create_fails(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "Secret \"db\" is invalid",
        );
        let cases: Vec<(&str, SealedSecret, SharedKeys, Answer, &str)> = vec![
            (
                "NoKey",
                f.sealed.clone(),
                SharedKeys::default(),
                Box::new(no_secret_request),
                "none of those keys is held here",
            ),
            (
                "ScopeMismatch",
                moved,
                f.keys.clone(),
                Box::new(no_secret_request),
                "staging",
            ),
            (
                "KeyCompromised",
                f.sealed.clone(),
                compromised,
                Box::new(no_secret_request),
                "compromised",
            ),
            (
                "NotOwned",
                f.sealed.clone(),
                f.keys.clone(),
                Box::new(foreign),
                MANAGED_ANNOTATION,
            ),
            (
                "TypeNotAllowed",
                minting.clone(),
                f.keys.clone(),
                Box::new(no_secret_request),
                "--allow-secret-type",
            ),
            (
                "SecretRejected",
                f.sealed.clone(),
                f.keys.clone(),
                Box::new(rejected),
                "is invalid",
            ),
        ];
        for (reason, sealed, keys, secrets, says) in cases {
            let (result, status) = reconcile_once(&sealed, keys, secrets).await;
            result.unwrap_or_else(|e| panic!("{reason}: not retried, yet {e}"));
            let message = message_of(&status);
            assert!(message.contains(says), "{reason}: {message}");
            let expected = if ["NotOwned", "SecretRejected"].contains(&reason) {
                failed_after_opening("Stalled", reason, &message, &f.keys)
            } else {
                failed_status("Stalled", reason, &message, 1)
            };
            assert_eq!(status, expected, "{reason}");
            let (kstatus, argo) = verdicts(&sealed, &status);
            assert_eq!(kstatus, (Status::Failed, message.clone()), "{reason}");
            assert_eq!(argo, ("Degraded".to_owned(), message), "{reason}");
        }
    }

    /// Failures the controller retries (an API error, a conflict, a 403): `Reconciling=True`,
    /// kstatus InProgress, Argo CD Progressing; once through, Ready alone: Current, Healthy.
    #[tokio::test]
    async fn failures_being_retried_are_in_progress_until_they_pass() {
        let f = fixture();
        let failing = |code: u16, reason, message| {
            create_fails(StatusCode::from_u16(code).unwrap(), reason, message)
        };
        let cases = [
            (
                "ApiError",
                failing(500, "InternalError", "etcd unavailable"),
                "the API server answered 500 to a request for Secret db: etcd unavailable; retrying with backoff",
            ),
            (
                "ApiError",
                failing(409, "Conflict", "the object has been modified"),
                "the API server answered 409 to a request for Secret db: the object has been modified; retrying with backoff",
            ),
            (
                "SecretForbidden",
                failing(403, "Forbidden", "secrets is forbidden"),
                "secrets is forbidden",
            ),
        ];
        for (reason, secrets, says) in cases {
            let (result, status) = reconcile_once(&f.sealed, f.keys.clone(), secrets).await;
            assert!(
                result.is_err(),
                "{reason}: handed to the error policy for a retry"
            );
            let message = message_of(&status);
            assert!(message.contains(says), "{reason}: {message}");
            assert_eq!(
                status,
                failed_after_opening("Reconciling", reason, &message, &f.keys),
                "{reason}"
            );
            let (kstatus, argo) = verdicts(&f.sealed, &status);
            assert_eq!(kstatus, (Status::InProgress, message.clone()), "{reason}");
            assert_eq!(argo, ("Progressing".to_owned(), message), "{reason}");

            // The retry goes through: Reconciling is removed (kstatus reads an absent
            // abnormal-true condition as False), Ready keeps its False→True transition.
            let mut retried = f.sealed.clone();
            let mut written = status.clone();
            for c in written["conditions"].as_array_mut().unwrap() {
                c["lastTransitionTime"] = json!("2026-01-01T00:00:00Z");
            }
            retried.status = Some(serde_json::from_value(written).unwrap());
            let (result, status) = reconcile_once(&retried, f.keys.clone(), creates).await;
            result.unwrap();
            assert_eq!(
                status["conditions"],
                json!([{"type": "Ready", "status": "True", "reason": "Unsealed",
                        "message": "Secret db is up to date", "observedGeneration": 1}])
            );
            assert_eq!(
                kstatus::compute(&with_status(&f.sealed, &status)).0,
                Status::Current
            );
        }
    }
}

/// The Bitnami mode's reconciler (`--bitnami`) against the same mocked API server: its
/// failures are said as a Sealant object's are, in the status, one Warning event per change
/// of state, and `sealant_unseal_errors_total`.
mod bitnami_mode {
    use super::*;
    use kube::api::DynamicObject;
    use sealant_controller::bitnami::{self, Settings, SharedBitnamiKeys, error_policy, reconcile};

    const STATUS: &str = "/apis/bitnami.com/v1alpha1/namespaces/prod/sealedsecrets/db/status";

    /// A Bitnami SealedSecret `prod/db` with these sealed items.
    fn object(encrypted_data: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "db", "namespace": "prod", "uid": "b-uid", "generation": 1},
            "spec": {"encryptedData": encrypted_data, "template": {"metadata": {"name": "db"}}},
        }))
        .unwrap()
    }

    /// Answers the status patch and event posts; `handler` the rest.
    fn mock_api(
        handler: impl Fn(&Method, &str) -> (StatusCode, Value) + Send + Sync + 'static,
    ) -> (Client, Recorded) {
        mock_client(move |method, path, body| match (method.as_str(), path) {
            ("PATCH", STATUS) | ("POST", EVENTS) => echo(body),
            _ => handler(method, path),
        })
    }

    fn context(client: Client, metrics: Arc<Metrics>) -> Arc<bitnami::Context> {
        let settings = Settings {
            client,
            namespace: "sealant-system".into(),
            namespaces: Vec::new(),
            workers: 1,
            allowed_types: Vec::new(),
            field_manager: "sealant-controller/test".into(),
            fence: Fence::unfenced(),
            metrics,
            reporter: Reporter {
                controller: "sealant-test".into(),
                instance: None,
            },
        };
        Arc::new(bitnami::Context::new(
            settings,
            SharedBitnamiKeys::default(),
        ))
    }

    fn ready_condition(status: &Value) -> &Value {
        let conditions = status["conditions"].as_array().unwrap();
        conditions.iter().find(|c| c["type"] == "Ready").unwrap()
    }

    fn counted(metrics: &Metrics, reason: &str, count: u32) {
        let line = format!(
            "sealant_unseal_errors_total{{namespace=\"prod\",reason=\"{reason}\"}} {count}"
        );
        let text = metrics.encode();
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }

    #[tokio::test]
    async fn a_failure_is_said_with_one_warning_event_per_change_of_state_and_counted() {
        // No Bitnami key imported: nothing opens, and no Secret is read or written.
        let (client, recorded) = mock_api(|method, path| panic!("unexpected {method} {path}"));
        let metrics = Arc::new(Metrics::new());
        let ctx = context(client, metrics.clone());
        // A 2-byte RSA part and a 16-byte tag: well formed, but no key to try.
        let obj = object(json!({"password": "AAIBAgMEBQYHCAkKCwwNDg8QERITFA=="}));
        reconcile(Arc::new(obj.clone()), ctx.clone()).await.unwrap();
        assert_eq!(
            calls(&recorded),
            [
                (Method::PATCH, STATUS.into()),
                (Method::POST, EVENTS.into())
            ]
        );
        let first = recorded.lock().unwrap().clone();
        let status = first[0].2["status"].clone();
        assert_eq!(ready_condition(&status)["reason"], "NoKey");
        let event = &first[1].2;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "NoKey");
        assert_eq!(event["regarding"]["kind"], "SealedSecret");
        assert_eq!(event["regarding"]["apiVersion"], "bitnami.com/v1alpha1");
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("no Bitnami key imported"),
            "{event}"
        );
        counted(&metrics, "NoKey", 1);

        // The next trigger: the object carries that status. Still counted; nothing written.
        let mut reported = obj;
        reported.data["status"] = status;
        reconcile(Arc::new(reported), ctx).await.unwrap();
        assert_eq!(recorded.lock().unwrap().len(), 2, "same state: no event");
        counted(&metrics, "NoKey", 2);
    }

    #[tokio::test]
    async fn a_forbidden_secret_write_is_said_counted_and_retried_with_backoff() {
        let (client, recorded) = mock_api(|method, path| match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (
                StatusCode::FORBIDDEN,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403, "reason": "Forbidden", "message": "secrets is forbidden: cannot create resource \"secrets\""}),
            ),
            other => panic!("unexpected request {other:?}"),
        });
        let metrics = Arc::new(Metrics::new());
        let ctx = context(client, metrics.clone());
        // No items: it opens with no key, so the write is tried.
        let obj = Arc::new(object(json!({})));
        let err = reconcile(obj.clone(), ctx.clone()).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err}");
        assert_eq!(calls(&recorded), created_and_reported(STATUS));
        let log = recorded.lock().unwrap().clone();
        let ready = ready_condition(&log[2].2["status"]).clone();
        assert_eq!(ready["reason"], "SecretForbidden");
        assert!(
            ready["message"]
                .as_str()
                .unwrap()
                .starts_with("the API server forbade writing Secret db: secrets is forbidden"),
            "{ready}"
        );
        let conditions = log[2].2["status"]["conditions"].as_array().unwrap();
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == "Reconciling" && c["status"] == "True"),
            "retried, not stalled: {conditions:?}"
        );
        assert_eq!(log[3].2["type"], "Warning");
        assert_eq!(log[3].2["reason"], "SecretForbidden");
        counted(&metrics, "SecretForbidden", 1);
        // Retried sooner the first times, then backing off.
        assert_eq!(
            error_policy(obj.clone(), &err, ctx.clone()),
            Action::requeue(Duration::from_secs(1))
        );
        assert_eq!(
            error_policy(obj, &err, ctx),
            Action::requeue(Duration::from_secs(2))
        );
    }

    #[tokio::test]
    async fn an_api_error_about_the_secret_is_counted_and_retried() {
        let (client, recorded) = mock_api(|_, _| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500, "message": "etcd unavailable", "reason": "InternalError"}),
            )
        });
        let metrics = Arc::new(Metrics::new());
        let ctx = context(client, metrics.clone());
        let err = reconcile(Arc::new(object(json!({}))), ctx)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("etcd unavailable"), "{err}");
        assert_eq!(calls(&recorded), [(Method::GET, SECRET.into())]);
        counted(&metrics, "ApiError", 1);
    }

    #[tokio::test]
    async fn a_written_secret_gets_a_normal_event() {
        let (client, recorded) = mock_api(|method, path| match (method.as_str(), path) {
            ("GET", SECRET) => not_found("secrets \"db\""),
            ("POST", SECRETS) => (StatusCode::CREATED, json!({"metadata": {"name": "db"}})),
            other => panic!("unexpected request {other:?}"),
        });
        let metrics = Arc::new(Metrics::new());
        let ctx = context(client, metrics.clone());
        reconcile(Arc::new(object(json!({}))), ctx).await.unwrap();
        assert_eq!(calls(&recorded), created_and_reported(STATUS));
        let log = recorded.lock().unwrap();
        assert_eq!(ready_condition(&log[2].2["status"])["status"], "True");
        assert_eq!(log[3].2["type"], "Normal");
        assert_eq!(log[3].2["note"], "Secret db created");
        let text = metrics.encode();
        assert!(
            text.lines().any(|l| l == "sealant_unseal_requests_total 1"),
            "{text}"
        );
    }
}
