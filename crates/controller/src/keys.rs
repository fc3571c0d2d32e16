//! The key manager: watches the key Secrets (so keys added, relabelled or removed take effect
//! without a restart), publishes the active recipients, and makes new keys on schedule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use sealant_core::keystore::{
    KEY_LABEL, KeySet, KeyState, STATE_LABEL, StoredKey, new_key_secret, parse_key_secret,
    recipients_configmap, successor_name,
};
use sealant_core::reconcile::MANAGED_BY_LABEL;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::fence::{Fence, Fenced};
use crate::labelled_secrets::watch_labelled;
use crate::metrics::Metrics;
use crate::state::{KeysView, Readiness, SharedKeys};

pub fn key_selector() -> String {
    format!("{KEY_LABEL}=true")
}

/// Reads every labelled key Secret. Unreadable ones are skipped with a warning naming them,
/// and so is any Secret a SealedSecret generated: a SealedSecret must never be able to plant
/// a key (its template's key labels are also stripped when it is written).
pub fn key_set(secrets: impl IntoIterator<Item = Arc<Secret>>) -> KeySet {
    let keys: Vec<StoredKey> = secrets
        .into_iter()
        .filter(|s| {
            let generated = s
                .labels()
                .get(MANAGED_BY_LABEL.0)
                .is_some_and(|v| v == MANAGED_BY_LABEL.1)
                || s.owner_references()
                    .iter()
                    .any(|r| r.kind == "SealedSecret");
            if generated {
                warn!(
                    secret = s.name_any(),
                    "ignoring a key label on a Secret generated from a SealedSecret"
                );
            }
            !generated
        })
        .filter_map(|s| match parse_key_secret(&s) {
            Ok(key) => Some(key),
            Err(e) => {
                warn!(secret = s.name_any(), error = %e, "ignoring key Secret");
                None
            }
        })
        .collect();
    KeySet::new(keys)
}

/// Keeps `shared` equal to the key Secrets in `namespace`, until the watch ends.
/// `changed` is notified after every change (the reconciler re-runs everything on it).
pub async fn watch_keys(
    client: Client,
    namespace: String,
    shared: SharedKeys,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    changed: Arc<Notify>,
) {
    let mut secrets = std::pin::pin!(watch_labelled(client, &namespace, &key_selector()));
    let mut last: Option<Vec<(String, KeyState)>> = None;
    while let Some(listed) = secrets.next().await {
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                warn!(error = %e, "key watch error; retrying");
                continue;
            }
        };
        let set = key_set(listed);
        count_keys(&metrics, &set);
        let summary: Vec<(String, KeyState)> = set
            .keys()
            .iter()
            .map(|k| (k.recipient.clone(), k.state))
            .collect();
        if last.as_ref() != Some(&summary) {
            info!(
                active = set.count(KeyState::Active),
                retired = set.count(KeyState::Retired),
                compromised = set.count(KeyState::Compromised),
                "keys loaded"
            );
            let any = !set.is_empty();
            last = Some(summary);
            shared.set(KeysView::new(set));
            if any {
                ready.set_keys_loaded();
            }
            changed.notify_waiters();
        }
    }
}

/// The key gauges: keys held by state, and when each was created.
fn count_keys(metrics: &Metrics, set: &KeySet) {
    metrics.set_keys(
        set.count(KeyState::Active),
        set.count(KeyState::Retired),
        set.count(KeyState::Compromised),
    );
    let ages: Vec<(String, String, i64)> = set
        .keys()
        .iter()
        .map(|k| {
            (
                k.recipient.clone(),
                k.state.to_string(),
                k.created.as_second(),
            )
        })
        .collect();
    metrics.set_key_ages(&ages);
}

/// Why no key was made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "another replica (or seal-controller rotate) made key Secret {name} from the same keys at \
         the same time; it is the new active key"
    )]
    RaceLost { name: String },
    #[error(transparent)]
    Fenced(#[from] Fenced),
}

/// What key renewal reads and writes, so the schedule can be tested without a cluster.
pub trait KeyStore: Send + Sync {
    /// The keys as they are now. Read from the source, never a cache: a key is only ever made
    /// from a fresh view, so a stale or broken watch cannot mint keys.
    fn current(&self) -> impl Future<Output = anyhow::Result<KeySet>> + Send;
    /// Makes a new active key and retires the other active ones of `from`: the keys the
    /// decision to rotate was made from. The new key is named after them, so of two
    /// rotations decided from the same keys only one can be made.
    fn rotate(&self, from: &KeySet) -> impl Future<Output = anyhow::Result<String>> + Send;
}

/// Makes a key whenever one is due (none at all, the newest older than `cutoff`, or
/// `period` after the newest), until cancelled. `now` is the wall clock; `wake` fires when the
/// keys change, so a key added by hand moves the schedule.
pub async fn renew_keys<S: KeyStore>(
    store: &S,
    period: Duration,
    cutoff: Option<Timestamp>,
    now: impl Fn() -> Timestamp,
    wake: &Notify,
) {
    loop {
        let keys = match store.current().await {
            Ok(keys) => keys,
            Err(e) => {
                warn!(error = %e, "cannot read the keys; retrying in 10s");
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        let due = keys.renewal_due(now(), period, cutoff);
        let wait = match due {
            None => None,
            Some(at) => {
                let left = at.duration_since(now());
                if left.is_zero() || left.is_negative() {
                    match store.rotate(&keys).await {
                        Ok(recipient) => info!(%recipient, "new active key"),
                        // Someone else renewed from the same keys: read them again.
                        Err(e) if matches!(e.downcast_ref(), Some(KeyError::RaceLost { .. })) => {
                            info!(error = %e, "key renewal raced; the other one won");
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot make a new key; retrying in 30s");
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                    continue;
                } else {
                    Some(
                        Duration::try_from(left)
                            .unwrap_or(Duration::MAX)
                            .min(Duration::from_secs(86_400 * 365)),
                    )
                }
            }
        };
        match wait {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// The key Secrets and the recipients ConfigMap through the API.
pub struct ClusterKeys {
    pub client: Client,
    pub namespace: String,
    /// `sealant-controller/<identity>`: who wrote shows in `metadata.managedFields`.
    pub field_manager: String,
    /// Checked before every write: only the leader writes keys and recipients.
    pub fence: Fence,
}

impl ClusterKeys {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// The keys as they are in the API now (for one-shot commands, which have no watch).
    pub async fn load(&self) -> anyhow::Result<KeySet> {
        let list = self
            .secrets()
            .list(&ListParams::default().labels(&key_selector()))
            .await?;
        Ok(key_set(list.items.into_iter().map(Arc::new)))
    }

    /// Writes the recipients ConfigMap if it differs from the active recipients.
    pub async fn publish(&self, set: &KeySet) -> anyhow::Result<()> {
        let recipients = set.active_recipients();
        if recipients.is_empty() {
            return Ok(());
        }
        let desired = recipients_configmap(&self.namespace, &recipients);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = desired.name_any();
        match api.get_opt(&name).await? {
            Some(existing) if existing.data == desired.data => {}
            Some(_) => {
                self.fence.check()?;
                let patch = serde_json::json!({ "data": desired.data });
                api.patch(&name, &self.patch_params(), &Patch::Merge(&patch))
                    .await?;
                info!(configmap = name, "published recipients");
            }
            None => {
                self.fence.check()?;
                api.create(&self.post_params(), &desired).await?;
                info!(configmap = name, "published recipients");
            }
        }
        Ok(())
    }
}

impl KeyStore for ClusterKeys {
    async fn current(&self) -> anyhow::Result<KeySet> {
        self.load().await
    }

    async fn rotate(&self, previous: &KeySet) -> anyhow::Result<String> {
        let (mut secret, recipient) = new_key_secret(&self.namespace, Timestamp::now());
        // Named after the keys the decision was made from, not a fresh read: a renewal that
        // decided from the same keys as another gets 409, even if it gets here after the
        // other's key exists.
        let name = successor_name(previous);
        secret.metadata.name = Some(name.clone());
        secret.metadata.generate_name = None;
        let api = self.secrets();
        self.fence.check().map_err(KeyError::from)?;
        match api.create(&self.post_params(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(KeyError::RaceLost { name }.into());
            }
            Err(e) => return Err(e.into()),
        }
        // Older active keys keep opening, but no longer seal.
        for old in previous
            .keys()
            .iter()
            .filter(|k| k.state == KeyState::Active)
        {
            self.fence.check().map_err(KeyError::from)?;
            let patch = serde_json::json!({ "metadata": { "labels": BTreeMap::from([(STATE_LABEL, KeyState::Retired.as_str())]) } });
            api.patch(&old.name, &self.patch_params(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(recipient)
    }
}
