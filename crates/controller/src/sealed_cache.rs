//! The SealedSecret cache the reconciler reads from. Once a generation is reconciled, its
//! cached copy is hollowed: only namespace, name, uid and generation stay, and the
//! reconciler reads the whole object from the API again only when the Secret must be written.
//! Ciphertexts, templates and statuses of objects that are already in place are what filled
//! most of the controller's memory (3.2 KB of 5.7 KB per object at 20,000).

use std::sync::Arc;

use futures::future::Either;
use futures::{Stream, StreamExt, stream};
use kube::api::ObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use sealant_core::crd::SealedSecret;
use tokio::sync::mpsc;

use crate::cache::Written;

/// Asks the cache to hollow an object the reconciler has just put in place: that reconcile
/// may not cause any watch event (nothing to write), so the cache cannot wait for one.
pub type HollowRequests = mpsc::UnboundedSender<ObjectRef<SealedSecret>>;

/// A cached object without ciphertexts may be a hollow copy: the reconciler reads it again
/// before opening anything. (A real SealedSecret with no items costs one extra read.)
pub fn may_be_hollow(sealed: &SealedSecret) -> bool {
    sealed.spec.encrypted_data.is_empty()
}

/// What the reconciler needs to find a reconciled object again, and nothing else.
pub fn hollow(sealed: &SealedSecret) -> SealedSecret {
    let meta = &sealed.metadata;
    SealedSecret {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            generation: meta.generation,
            resource_version: meta.resource_version.clone(),
            ..ObjectMeta::default()
        },
        spec: Default::default(),
        status: None,
    }
}

/// Follows the SealedSecret watch into `writer`, and yields the objects whose generation is
/// new to the cache: new objects and spec edits, not the echo of this controller's status
/// writes. What `written` says is reconciled is cached hollow, whether it comes from the
/// watch or from a request after a reconcile.
pub fn follow(
    watch: impl Stream<Item = Result<Event<SealedSecret>, watcher::Error>> + Send + 'static,
    writer: Writer<SealedSecret>,
    requests: mpsc::UnboundedReceiver<ObjectRef<SealedSecret>>,
    written: Arc<Written>,
) -> impl Stream<Item = Result<SealedSecret, watcher::Error>> + Send + 'static {
    let mut cache = Cache {
        reader: writer.as_reader(),
        writer,
        written,
    };
    let requests = stream::unfold(requests, |mut rx| async move {
        rx.recv().await.map(|r| (r, rx))
    });
    stream::select(watch.map(Either::Left), requests.map(Either::Right)).filter_map(move |item| {
        let out = match item {
            Either::Left(Ok(event)) => cache.apply(event).map(Ok),
            Either::Left(Err(e)) => Some(Err(e)),
            Either::Right(request) => {
                cache.hollow_if_reconciled(&request);
                None
            }
        };
        std::future::ready(out)
    })
}

struct Cache {
    writer: Writer<SealedSecret>,
    reader: Store<SealedSecret>,
    written: Arc<Written>,
}

impl Cache {
    /// Applies one watch event; returns the object if its generation is new to the cache.
    fn apply(&mut self, event: Event<SealedSecret>) -> Option<SealedSecret> {
        let (mut sealed, listing) = match event {
            Event::Apply(sealed) => (sealed, false),
            Event::InitApply(sealed) => (sealed, true),
            Event::Delete(sealed) => {
                self.written.forget(&sealed);
                self.writer.apply_watcher_event(&Event::Delete(sealed));
                return None;
            }
            Event::Init => {
                self.writer.apply_watcher_event(&Event::Init);
                return None;
            }
            Event::InitDone => {
                self.writer.apply_watcher_event(&Event::InitDone);
                // Deletions missed while the watch was down are only seen here.
                let reader = &self.reader;
                self.written
                    .retain(|ns, name| reader.get(&ObjectRef::new(name).within(ns)).is_some());
                return None;
            }
        };
        strip_for_cache(&mut sealed);
        // During a re-list the store still holds what was cached before it: the same test.
        let new_generation = self
            .reader
            .get(&ObjectRef::from_obj(&sealed))
            .is_none_or(|known| {
                known.metadata.uid != sealed.metadata.uid
                    || known.metadata.generation != sealed.metadata.generation
            });
        let cached = if self.written.is_reconciled(&sealed) {
            hollow(&sealed)
        } else {
            sealed.clone()
        };
        self.writer.apply_watcher_event(&if listing {
            Event::InitApply(cached)
        } else {
            Event::Apply(cached)
        });
        new_generation.then_some(sealed)
    }

    fn hollow_if_reconciled(&mut self, request: &ObjectRef<SealedSecret>) {
        if let Some(cached) = self.reader.get(request)
            && !may_be_hollow(&cached)
            && self.written.is_reconciled(&cached)
        {
            self.writer
                .apply_watcher_event(&Event::Apply(hollow(&cached)));
        }
    }
}

/// Drops what the reconciler never reads from a cached SealedSecret, and the spare capacity
/// deserializing left in its vectors: 4.5 KB → 3.2 KB per cached object (a 2-item
/// SealedSecret with a status), measured with a counting allocator. Emptying managedFields
/// with `clear()` kept its buffer, a third of that.
fn strip_for_cache(sealed: &mut SealedSecret) {
    let meta = &mut sealed.metadata;
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    for recipients in sealed.spec.recipients.values_mut() {
        recipients.shrink_to_fit();
    }
    if let Some(status) = &mut sealed.status {
        status.conditions.shrink_to_fit();
        status.opened_with.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use kube::runtime::reflector;

    fn object(uid: &str, generation: i64, version: &str) -> SealedSecret {
        let mut sealed = SealedSecret::new("db", Default::default());
        sealed.spec.encrypted_data.insert("a".into(), "x".into());
        sealed.metadata.namespace = Some("prod".into());
        sealed.metadata.uid = Some(uid.into());
        sealed.metadata.generation = Some(generation);
        sealed.metadata.resource_version = Some(version.into());
        sealed
    }

    #[test]
    fn reconciled_generations_are_cached_hollow_and_only_new_ones_trigger() {
        let (reader, writer) = reflector::store();
        let written = Arc::new(Written::default());
        let mut cache = Cache {
            writer,
            reader: reader.clone(),
            written: written.clone(),
        };
        let key = ObjectRef::new("db").within("prod");
        let cached = || reader.get(&key).expect("cached");
        cache.apply(Event::Init);
        assert!(
            cache
                .apply(Event::InitApply(object("u1", 1, "1")))
                .is_some()
        );
        cache.apply(Event::InitDone);
        assert!(!may_be_hollow(&cached()));

        // Reconciled, with nothing written (so no watch event): the request hollows it.
        written.record_reconciled(&object("u1", 1, "1"), Some(0));
        cache.hollow_if_reconciled(&key);
        assert!(may_be_hollow(&cached()));
        assert_eq!(cached().metadata.uid.as_deref(), Some("u1"));

        // The echo of a status write: the same generation triggers nothing and stays hollow.
        assert!(cache.apply(Event::Apply(object("u1", 1, "2"))).is_none());
        assert!(may_be_hollow(&cached()));
        assert_eq!(cached().metadata.resource_version.as_deref(), Some("2"));

        // A spec edit triggers and is cached whole until it is reconciled.
        assert!(cache.apply(Event::Apply(object("u1", 2, "3"))).is_some());
        cache.hollow_if_reconciled(&key);
        assert!(!may_be_hollow(&cached()), "generation 2 is not reconciled");

        // A re-list after a watch gap: what did not change triggers nothing.
        written.record_reconciled(&object("u1", 2, "3"), Some(0));
        cache.apply(Event::Init);
        assert!(
            cache
                .apply(Event::InitApply(object("u1", 2, "4")))
                .is_none()
        );
        cache.apply(Event::InitDone);
        assert!(may_be_hollow(&cached()));

        // A namesake recreated under a new uid is new.
        assert!(cache.apply(Event::Apply(object("u2", 1, "5"))).is_some());
        assert!(!may_be_hollow(&cached()));

        cache.apply(Event::Delete(object("u2", 1, "6")));
        assert!(reader.get(&key).is_none());
    }

    #[test]
    fn the_cache_keeps_what_the_reconciler_reads_and_nothing_else() {
        // From text, as the watch reads it: serde then has no length hint for vectors.
        let mut sealed: SealedSecret = serde_json::from_str(
            &serde_json::json!({
            "apiVersion": "sealant.dev/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {
                "name": "db", "namespace": "prod", "uid": "u1", "generation": 2,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {"scope": "strict", "encryptedData": {"a": "x"}, "recipients": {"a": ["age1r"]}},
            "status": {"observedGeneration": 2, "openedWith": ["age1r"],
                       "conditions": [{"type": "Ready", "status": "True"}]},
            })
            .to_string(),
        )
        .unwrap();
        let spec = sealed.spec.clone();
        let status = sealed.status.clone();
        strip_for_cache(&mut sealed);
        assert_eq!(sealed.metadata.managed_fields, None);
        assert_eq!(sealed.metadata.annotations, None);
        assert_eq!(sealed.spec, spec);
        assert_eq!(sealed.status, status);
        assert_eq!(sealed.status.unwrap().conditions.capacity(), 1);

        // Other annotations stay.
        let mut other = SealedSecret::new("db", spec);
        other.metadata = ObjectMeta {
            annotations: Some([("team".to_owned(), "x".to_owned())].into()),
            ..ObjectMeta::default()
        };
        strip_for_cache(&mut other);
        assert_eq!(
            other.annotations().get("team").map(String::as_str),
            Some("x")
        );
    }
}
