//! The key renewal schedule under paused tokio time, with an in-memory key store; and the
//! real key writes (`ClusterKeys`: renewal and `seal-controller rotate`) against a mocked API
//! server, request by request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::client::Body;
use sealant_controller::fence::Fence;
use sealant_controller::field_manager::field_manager;
use sealant_controller::keys::{ClusterKeys, KeyError, KeyStore, key_set, renew_keys};
use sealant_core::keystore::{
    KEY_LABEL, KeySet, KeyState, STATE_LABEL, StoredKey, new_key_secret, parse_key_secret,
    successor_name,
};
use tokio::sync::Notify;
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(86_400);

/// Keys in memory; time is tokio's (paused) clock mapped onto a fixed wall date.
struct MemoryKeys {
    keys: Mutex<Vec<StoredKey>>,
    epoch: Timestamp,
    start: Instant,
}

impl MemoryKeys {
    fn new(keys: Vec<StoredKey>) -> Arc<MemoryKeys> {
        Arc::new(MemoryKeys {
            keys: Mutex::new(keys),
            epoch: "2026-01-01T00:00:00Z".parse().unwrap(),
            start: Instant::now(),
        })
    }

    fn now(&self) -> Timestamp {
        self.epoch + SignedDuration::try_from(self.start.elapsed()).unwrap()
    }

    fn states(&self) -> Vec<KeyState> {
        KeySet::new(self.keys.lock().unwrap().clone())
            .keys()
            .iter()
            .map(|k| k.state)
            .collect()
    }
}

fn key_made_at(when: Timestamp, name: &str) -> StoredKey {
    let (mut secret, _) = new_key_secret("ns", when);
    secret.metadata.name = Some(name.into());
    parse_key_secret(&secret).unwrap()
}

impl KeyStore for MemoryKeys {
    async fn current(&self) -> anyhow::Result<KeySet> {
        Ok(KeySet::new(self.keys.lock().unwrap().clone()))
    }

    async fn rotate(&self, _from: &KeySet) -> anyhow::Result<String> {
        let mut keys = self.keys.lock().unwrap();
        for k in keys.iter_mut().filter(|k| k.state == KeyState::Active) {
            k.state = KeyState::Retired;
        }
        let key = key_made_at(self.now(), &format!("k{}", keys.len()));
        let recipient = key.recipient.clone();
        keys.push(key);
        Ok(recipient)
    }
}

fn start(
    store: Arc<MemoryKeys>,
    period: Duration,
    cutoff: Option<Timestamp>,
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let clock = store.clone();
        renew_keys(&*store, period, cutoff, move || clock.now(), &wake).await
    })
}

/// Lets the renewal task run until it sleeps again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn makes_a_key_at_once_then_every_period() {
    let store = MemoryKeys::new(vec![]);
    let task = start(store.clone(), DAY * 30, None, Arc::default());
    settle().await;
    assert_eq!(store.states(), [KeyState::Active], "a first key at start");
    tokio::time::advance(DAY * 29).await;
    settle().await;
    assert_eq!(store.states().len(), 1, "not due before 30 days");
    tokio::time::advance(DAY * 2).await;
    settle().await;
    assert_eq!(
        store.states(),
        [KeyState::Active, KeyState::Retired],
        "renewed; the old key keeps opening"
    );
    tokio::time::advance(DAY * 30).await;
    settle().await;
    assert_eq!(
        store.states(),
        [KeyState::Active, KeyState::Retired, KeyState::Retired]
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn zero_period_turns_renewal_off() {
    let store = MemoryKeys::new(vec![]);
    let task = start(store.clone(), Duration::ZERO, None, Arc::default());
    settle().await;
    tokio::time::advance(DAY * 3650).await;
    settle().await;
    assert_eq!(store.states(), [KeyState::Active], "only the first key");
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_key_older_than_the_cutoff_is_replaced_at_start() {
    let old = key_made_at("2025-06-01T00:00:00Z".parse().unwrap(), "old");
    let store = MemoryKeys::new(vec![old]);
    let task = start(
        store.clone(),
        Duration::ZERO,
        Some("2025-12-01T00:00:00Z".parse().unwrap()),
        Arc::default(),
    );
    settle().await;
    assert_eq!(store.states(), [KeyState::Active, KeyState::Retired]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_key_added_by_hand_moves_the_schedule() {
    let store = MemoryKeys::new(vec![]);
    let wake = Arc::new(Notify::new());
    let task = start(store.clone(), DAY * 30, None, wake.clone());
    settle().await;
    tokio::time::advance(DAY * 20).await;
    settle().await;
    // Someone adds a newer active key (bring-your-own): the next renewal is 30 days after it.
    let byo = key_made_at(store.now(), "byo");
    store.keys.lock().unwrap().push(byo);
    wake.notify_waiters();
    settle().await;
    tokio::time::advance(DAY * 15).await;
    settle().await;
    assert_eq!(
        store.states().len(),
        2,
        "day 35: the hand-added key from day 20 is not due"
    );
    tokio::time::advance(DAY * 16).await;
    settle().await;
    assert_eq!(
        store.states().len(),
        3,
        "day 51: renewed 30 days after the hand-added key"
    );
    task.abort();
}

/// Keys as the API server keeps them: a create of a name that exists fails (409), as
/// ClusterKeys' create of the successor's deterministic name does. Each rotate waits at
/// `race`, so two renewals have both decided from the same keys before either creates; the
/// second creates after the first's key exists: the race the key's name must settle.
struct RacingKeys {
    inner: Arc<MemoryKeys>,
    race: tokio::sync::Barrier,
}

impl KeyStore for RacingKeys {
    async fn current(&self) -> anyhow::Result<KeySet> {
        self.inner.current().await
    }

    async fn rotate(&self, from: &KeySet) -> anyhow::Result<String> {
        self.race.wait().await;
        let name = sealant_core::keystore::successor_name(from);
        let mut keys = self.inner.keys.lock().unwrap();
        if keys.iter().any(|k| k.name == name) {
            return Err(sealant_controller::keys::KeyError::RaceLost { name }.into());
        }
        for k in keys.iter_mut().filter(|k| k.state == KeyState::Active) {
            k.state = KeyState::Retired;
        }
        let key = key_made_at(self.inner.now(), &name);
        let recipient = key.recipient.clone();
        keys.push(key);
        Ok(recipient)
    }
}

#[tokio::test(start_paused = true)]
async fn two_racing_renewals_make_one_active_key() {
    let old = key_made_at("2025-06-01T00:00:00Z".parse().unwrap(), "old");
    let memory = MemoryKeys::new(vec![old]);
    let store = Arc::new(RacingKeys {
        inner: memory.clone(),
        race: tokio::sync::Barrier::new(2),
    });
    let cutoff = Some("2025-12-01T00:00:00Z".parse().unwrap());
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            let clock = memory.clone();
            tokio::spawn(async move {
                renew_keys(
                    &*store,
                    DAY * 30,
                    cutoff,
                    move || clock.now(),
                    &Notify::new(),
                )
                .await
            })
        })
        .collect();
    settle().await;
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(
        memory.states(),
        [KeyState::Active, KeyState::Retired],
        "both renewals read the same keys; exactly one new key, never two active"
    );
    for t in tasks {
        t.abort();
    }
}

// ---- The real key writes: `ClusterKeys` (what the leader's renewal and `seal-controller
// rotate` run) against a mocked API server that keeps the Secrets it is sent.

const KEYS_NS: &str = "sealant-system";
const SECRETS: &str = "/api/v1/namespaces/sealant-system/secrets";

/// A request as the API server saw it: method, path with query, content type, JSON body.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    uri: String,
    content_type: String,
    body: serde_json::Value,
}

/// The key Secrets of `KEYS_NS`, kept as the API server would: a list filtered by the key
/// label, a create that fails with 409 when the name exists, a JSON merge patch of labels.
/// Every request is recorded; anything else panics the test.
struct KeyApi {
    secrets: Mutex<Vec<Secret>>,
    sent: Mutex<Vec<Sent>>,
}

impl KeyApi {
    fn client(secrets: Vec<Secret>) -> (kube::Client, Arc<KeyApi>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Arc::new(KeyApi {
            secrets: Mutex::new(secrets),
            sent: Mutex::default(),
        });
        let state = api.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().to_string();
                let uri = request.uri().to_string();
                let content_type = request
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                let sent = Sent {
                    method,
                    uri,
                    content_type,
                    body,
                };
                let (status, answer) = state.answer(&sent);
                state.sent.lock().unwrap().push(sent);
                respond.send_response(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                );
            }
        });
        (kube::Client::new(service, "default"), api)
    }

    fn answer(&self, sent: &Sent) -> (u16, serde_json::Value) {
        let mut secrets = self.secrets.lock().unwrap();
        let path = sent.uri.split('?').next().unwrap();
        match (sent.method.as_str(), path) {
            ("GET", SECRETS) => {
                let items: Vec<_> = secrets
                    .iter()
                    .filter(|s| s.labels().get(KEY_LABEL).is_some_and(|v| v == "true"))
                    .cloned()
                    .collect();
                (
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "SecretList",
                        "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("POST", SECRETS) => {
                let mut secret: Secret = serde_json::from_value(sent.body.clone()).unwrap();
                if secrets
                    .iter()
                    .any(|s| s.metadata.name == secret.metadata.name)
                {
                    return (
                        409,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "AlreadyExists", "code": 409,
                            "message": "secrets already exists"}),
                    );
                }
                secret.metadata.creation_timestamp = Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
                );
                secrets.push(secret.clone());
                (201, serde_json::to_value(secret).unwrap())
            }
            ("PATCH", _) if path.starts_with(SECRETS) => {
                let name = path.rsplit('/').next().unwrap();
                let secret = secrets
                    .iter_mut()
                    .find(|s| s.metadata.name.as_deref() == Some(name))
                    .unwrap_or_else(|| panic!("PATCH of a Secret that does not exist: {name}"));
                let labels = sent.body["metadata"]["labels"].as_object().unwrap();
                for (k, v) in labels {
                    secret
                        .labels_mut()
                        .insert(k.clone(), v.as_str().unwrap().to_owned());
                }
                (200, serde_json::to_value(&*secret).unwrap())
            }
            _ => panic!("unexpected request {} {}", sent.method, sent.uri),
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// (name, state) of every key the API server holds, through the controller's own reader.
    fn states(&self) -> Vec<(String, KeyState)> {
        let secrets = self.secrets.lock().unwrap().clone();
        let mut states: Vec<_> = key_set(secrets.into_iter().map(Arc::new))
            .keys()
            .iter()
            .map(|k| (k.name.clone(), k.state))
            .collect();
        states.sort();
        states
    }
}

fn key_secret(name: &str, made: &str, state: KeyState) -> Secret {
    let (mut secret, _) = new_key_secret(KEYS_NS, made.parse().unwrap());
    secret.metadata.name = Some(name.into());
    secret.metadata.generate_name = None;
    secret
        .labels_mut()
        .insert(STATE_LABEL.into(), state.as_str().into());
    secret
}

fn cluster_keys(client: kube::Client) -> ClusterKeys {
    ClusterKeys {
        client,
        namespace: KEYS_NS.into(),
        field_manager: field_manager("rotate"),
        fence: Fence::unfenced(),
    }
}

const LIST_KEYS: &str =
    "/api/v1/namespaces/sealant-system/secrets?&labelSelector=sealant.dev%2Fkey%3Dtrue";

/// What `seal-controller rotate` does (`load`, then `rotate`), request by request: one list,
/// one create of the successor (named from the keys read, as an active key), then one merge
/// patch per old active key setting only its state label to `retired`; the retired key is not
/// touched. The old keys end retired because the real code patched them.
#[tokio::test]
async fn rotate_creates_the_successor_then_retires_each_old_active_key() {
    let (client, api) = KeyApi::client(vec![
        key_secret("sealant-key-a", "2025-01-01T00:00:00Z", KeyState::Active),
        key_secret("sealant-key-b", "2025-02-01T00:00:00Z", KeyState::Active),
        key_secret("sealant-key-old", "2024-01-01T00:00:00Z", KeyState::Retired),
    ]);
    let keys = cluster_keys(client);
    let read = keys.load().await.unwrap();
    let successor = successor_name(&read);
    let recipient = keys.rotate(&read).await.unwrap();

    let sent = api.sent();
    let calls: Vec<(&str, &str)> = sent
        .iter()
        .map(|s| (s.method.as_str(), s.uri.as_str()))
        .collect();
    let patch_uri =
        |name: &str| format!("{SECRETS}/{name}?&fieldManager=sealant-controller%2Frotate");
    assert_eq!(
        calls,
        [
            ("GET", LIST_KEYS),
            (
                "POST",
                &*format!("{SECRETS}?&fieldManager=sealant-controller%2Frotate")
            ),
            // Newest first, as the key set is ordered.
            ("PATCH", &*patch_uri("sealant-key-b")),
            ("PATCH", &*patch_uri("sealant-key-a")),
        ]
    );
    let created = &sent[1].body;
    assert_eq!(created["metadata"]["name"], successor.as_str());
    assert_eq!(
        created["metadata"]["labels"],
        serde_json::json!({KEY_LABEL: "true", STATE_LABEL: "active"})
    );
    for patch in &sent[2..] {
        assert_eq!(patch.content_type, "application/merge-patch+json");
        assert_eq!(
            patch.body,
            serde_json::json!({"metadata": {"labels": {STATE_LABEL: "retired"}}}),
            "the patch changes the state label and nothing else"
        );
    }
    let mut want = vec![
        ("sealant-key-a".to_owned(), KeyState::Retired),
        ("sealant-key-b".to_owned(), KeyState::Retired),
        ("sealant-key-old".to_owned(), KeyState::Retired),
        (successor.clone(), KeyState::Active),
    ];
    want.sort();
    assert_eq!(api.states(), want);
    let new_key = key_set(
        api.secrets
            .lock()
            .unwrap()
            .clone()
            .into_iter()
            .map(Arc::new),
    );
    assert_eq!(new_key.active_recipients(), [recipient]);
}

/// Renewal on schedule (the leader's `renew_keys`) through the real `ClusterKeys`: a key older
/// than the cutoff is replaced at start, and the renewal's next read finds exactly one active
/// key, the new one.
#[tokio::test]
async fn renewal_through_the_api_leaves_exactly_one_active_key() {
    let (client, api) = KeyApi::client(vec![key_secret(
        "sealant-key-a",
        "2025-06-01T00:00:00Z",
        KeyState::Active,
    )]);
    let keys = Arc::new(cluster_keys(client));
    let task = {
        let keys = keys.clone();
        tokio::spawn(async move {
            renew_keys(
                &*keys,
                DAY * 30,
                Some("2025-12-01T00:00:00Z".parse().unwrap()),
                Timestamp::now,
                &Notify::new(),
            )
            .await
        })
    };
    // Done when it has read the keys again after renewing (then it sleeps for 30 days).
    tokio::time::timeout(Duration::from_secs(30), async {
        while api.sent().len() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("renewal made no key");
    task.abort();
    let methods: Vec<String> = api.sent().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["GET", "POST", "PATCH", "GET"]);
    let states: Vec<KeyState> = api.states().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        states.iter().filter(|s| **s == KeyState::Active).count(),
        1,
        "{:?}",
        api.states()
    );
    assert!(
        api.states()
            .contains(&("sealant-key-a".into(), KeyState::Retired)),
        "the old key was retired by the real patch: {:?}",
        api.states()
    );
}

/// Two renewals decided from the same keys: the loser's create gets 409, and it then retires
/// nothing (the winner does): no PATCH follows a lost race.
#[tokio::test]
async fn a_lost_race_retires_nothing() {
    let (client, api) = KeyApi::client(vec![key_secret(
        "sealant-key-a",
        "2025-06-01T00:00:00Z",
        KeyState::Active,
    )]);
    let keys = cluster_keys(client);
    let read = keys.load().await.unwrap();
    keys.rotate(&read).await.unwrap();
    let error = keys.rotate(&read).await.unwrap_err();
    assert!(
        matches!(error.downcast_ref(), Some(KeyError::RaceLost { .. })),
        "{error}"
    );
    let methods: Vec<String> = api.sent().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["GET", "POST", "PATCH", "POST"]);
}
