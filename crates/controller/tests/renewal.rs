//! The key renewal schedule under paused tokio time, with an in-memory key store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sealant_controller::keys::{KeyStore, renew_keys};
use sealant_core::keystore::{KeySet, KeyState, StoredKey, new_key_secret, parse_key_secret};
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
