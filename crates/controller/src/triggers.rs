//! What triggers a reconcile: the SealedSecret watch, kept as a store of hollow copies
//! (`HollowStore`: namespace, name, uid, generation and resourceVersion, no ciphertexts,
//! template or status), and the Secret metadata watch ([`secret_triggers`]). The
//! reconciler confirms an object it has put in place from its own memory and the Secret watch,
//! and reads the whole object from the API server's watch cache (at the version the watch
//! delivered) only when it must open it, so a burst of creates or a restart queues nothing big
//! (the measurements: docs/benchmarks.md, cause 4).

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use sealant_core::crd::SealedSecret;

use crate::memory::{LastWrites, SecretVersions};
use crate::metrics::Metrics;

/// A cached object has no ciphertexts: the reconciler reads the whole object before opening
/// anything. (An object handed over whole, as in tests, is used as it is.)
pub fn is_hollow(sealed: &SealedSecret) -> bool {
    sealed.spec.encrypted_data.is_empty()
}

/// What the reconciler needs to find an object again, and nothing else.
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

/// Follows the SealedSecret watch into `writer` (hollow copies), and yields the objects whose
/// generation is new to the cache: new objects and spec edits, not the echo of this
/// controller's status writes.
pub fn follow(
    watch: impl Stream<Item = Result<Event<SealedSecret>, watcher::Error>> + Send + 'static,
    writer: Writer<SealedSecret>,
    last_writes: Arc<LastWrites>,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<SealedSecret, watcher::Error>> + Send + 'static {
    let mut store = HollowStore {
        reader: writer.as_reader(),
        writer,
        last_writes,
        metrics,
        listed: false,
        relisted: Vec::new(),
    };
    watch.flat_map(move |item| {
        stream::iter(match item {
            Ok(event) => store.apply(event).into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })
    })
}

struct HollowStore {
    writer: Writer<SealedSecret>,
    reader: Store<SealedSecret>,
    last_writes: Arc<LastWrites>,
    /// Its per-object series go with the object.
    metrics: Arc<Metrics>,
    /// The first list is done: the store is ready and reconciles run.
    listed: bool,
    /// New generations seen by a re-list, yielded once it is in the store: a reconcile reads
    /// the store, which keeps what was cached before until the re-list is done.
    relisted: Vec<SealedSecret>,
}

impl HollowStore {
    /// Applies one watch event; returns the objects whose generation is new to the cache.
    fn apply(&mut self, event: Event<SealedSecret>) -> Vec<SealedSecret> {
        let (sealed, listing) = match event {
            Event::Apply(sealed) => (sealed, false),
            Event::InitApply(sealed) => (sealed, true),
            Event::Delete(sealed) => {
                self.last_writes.forget(&sealed);
                self.metrics.forget_object(
                    sealed.metadata.namespace.as_deref().unwrap_or_default(),
                    sealed.metadata.name.as_deref().unwrap_or_default(),
                );
                self.writer
                    .apply_watcher_event(&Event::Delete(hollow(&sealed)));
                return Vec::new();
            }
            Event::Init => {
                self.writer.apply_watcher_event(&Event::Init);
                self.relisted.clear();
                return Vec::new();
            }
            Event::InitDone => {
                self.writer.apply_watcher_event(&Event::InitDone);
                self.listed = true;
                // Deletions missed while the watch was down are only seen here.
                let reader = &self.reader;
                self.last_writes
                    .retain(|ns, name| reader.get(&ObjectRef::new(name).within(ns)).is_some());
                self.metrics.retain_objects(|ns, name| {
                    reader.get(&ObjectRef::new(name).within(ns)).is_some()
                });
                return std::mem::take(&mut self.relisted);
            }
        };
        // During a re-list the store still holds what was cached before it: the same test.
        let new_generation = self
            .reader
            .get(&ObjectRef::from_obj(&sealed))
            .is_none_or(|known| {
                known.metadata.uid != sealed.metadata.uid
                    || known.metadata.generation != sealed.metadata.generation
            });
        let cached = hollow(&sealed);
        let new = new_generation.then(|| cached.clone());
        self.writer.apply_watcher_event(&if listing {
            Event::InitApply(cached)
        } else {
            Event::Apply(cached)
        });
        match new {
            // A re-list: yielded once it is in the store (see `relisted`).
            Some(new) if listing && self.listed => {
                self.relisted.push(new);
                Vec::new()
            }
            // Live events, and the first list: reconciles wait for the store to be ready.
            new => new.into_iter().collect(),
        }
    }
}

/// Follows the Secret metadata watch into `versions`, and yields the Secrets whose change
/// should re-run the SealedSecret of the same name: any edit, delete or managed annotation
/// (drift is corrected within seconds), and Secrets gone while the watch was down. The echo
/// of this controller's own writes is recognised by its resourceVersion and left out.
pub fn secret_triggers(
    watch: impl Stream<Item = Result<Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send + 'static,
    versions: Arc<SecretVersions>,
    last_writes: Arc<LastWrites>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    let remembered = last_writes.clone();
    watch
        .map_ok(move |event| {
            // A Secret deleted while the watch was down (an API server restart) shows up only
            // as missing from the re-list: re-run its SealedSecret too.
            let mut vanished = versions.observe(&event);
            if matches!(event, Event::InitDone) {
                // Written and deleted within one watch gap: the watch never saw it.
                for missing in remembered.missing_from(&versions) {
                    if !vanished.contains(&missing) {
                        vanished.push(missing);
                    }
                }
            }
            let vanished = vanished.into_iter().map(gone);
            let touched = match event {
                Event::Apply(s) | Event::InitApply(s) | Event::Delete(s) => Some(s),
                Event::Init | Event::InitDone => None,
            };
            stream::iter(touched.into_iter().chain(vanished).map(Ok))
        })
        .try_flatten()
        .try_filter(move |secret| {
            // A stand-in for a vanished Secret has no version: never an echo.
            let echo = secret.resource_version().is_some_and(|rv| {
                last_writes.is_echo(
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                    &rv,
                )
            });
            std::future::ready(!echo)
        })
}

/// Stands in for a Secret that is gone: only its namespace and name.
fn gone((namespace, name): (String, String)) -> PartialObjectMeta<Secret> {
    let mut meta = PartialObjectMeta::<Secret>::default();
    meta.metadata.namespace = Some(namespace);
    meta.metadata.name = Some(name);
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    fn object(uid: &str, generation: i64, version: &str) -> SealedSecret {
        let mut sealed: SealedSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "sealant.dev/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {
                "name": "db", "namespace": "prod", "uid": uid, "generation": generation,
                "resourceVersion": version, "labels": {"team": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {"scope": "strict", "encryptedData": {"a": "x"}, "recipients": {"a": ["age1r"]}},
            "status": {"observedGeneration": 1, "openedWith": ["age1r"],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Unsealed",
                                       "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        sealed.metadata.namespace = Some("prod".into());
        sealed
    }

    /// An empty store, its reader, and the memory it forgets deleted objects in.
    fn empty() -> (HollowStore, Store<SealedSecret>, Arc<LastWrites>) {
        let (reader, writer) = reflector::store();
        let last_writes = Arc::new(LastWrites::default());
        let store = HollowStore {
            writer,
            reader: reader.clone(),
            last_writes: last_writes.clone(),
            metrics: Arc::default(),
            listed: false,
            relisted: Vec::new(),
        };
        (store, reader, last_writes)
    }

    fn cached(reader: &Store<SealedSecret>) -> Arc<SealedSecret> {
        reader
            .get(&ObjectRef::new("db").within("prod"))
            .expect("cached")
    }

    #[test]
    fn the_store_is_hollow_and_only_new_generations_trigger() {
        let (mut store, reader, _) = empty();
        store.apply(Event::Init);
        let new = store.apply(Event::InitApply(object("u1", 1, "1")));
        assert_eq!(
            new,
            [hollow(&object("u1", 1, "1"))],
            "the first list triggers"
        );
        assert!(store.apply(Event::InitDone).is_empty());
        assert_eq!(*cached(&reader), hollow(&object("u1", 1, "1")));
        assert!(is_hollow(&cached(&reader)));
        assert_eq!(cached(&reader).metadata.uid.as_deref(), Some("u1"));
        assert_eq!(cached(&reader).metadata.generation, Some(1));
        assert_eq!(
            cached(&reader).metadata.resource_version.as_deref(),
            Some("1")
        );
        assert_eq!(cached(&reader).metadata.labels, None);
        assert_eq!(cached(&reader).status, None);

        // The echo of a status write: the same generation triggers nothing.
        assert!(store.apply(Event::Apply(object("u1", 1, "2"))).is_empty());
        assert_eq!(
            cached(&reader).metadata.resource_version.as_deref(),
            Some("2")
        );

        // A spec edit triggers.
        assert_eq!(store.apply(Event::Apply(object("u1", 2, "3"))).len(), 1);

        // A namesake recreated under a new uid is new.
        assert_eq!(store.apply(Event::Apply(object("u2", 1, "5"))).len(), 1);

        store.apply(Event::Delete(object("u2", 1, "6")));
        assert!(reader.get(&ObjectRef::new("db").within("prod")).is_none());
    }

    #[test]
    fn a_relist_triggers_only_what_changed_and_once_it_is_in_the_store() {
        let (mut store, reader, last_writes) = empty();
        store.apply(Event::Init);
        store.apply(Event::InitApply(object("u1", 2, "3")));
        store.apply(Event::InitDone);

        // A re-list after a watch gap: what did not change triggers nothing.
        let reconciled = object("u1", 2, "3");
        last_writes.begin(&reconciled).finish(Some(0));
        store.apply(Event::Init);
        let unchanged = store.apply(Event::InitApply(object("u1", 2, "4")));
        assert!(unchanged.is_empty());
        assert!(store.apply(Event::InitDone).is_empty());
        let still = object("u1", 2, "4");
        assert!(last_writes.is_reconciled(&still), "still listed");

        // What changed in the gap triggers once the re-list is in the store, not before:
        // until then the store still holds generation 2, and a reconcile would read that.
        store.apply(Event::Init);
        let edited = store.apply(Event::InitApply(object("u1", 3, "7")));
        assert!(edited.is_empty());
        assert_eq!(cached(&reader).metadata.generation, Some(2));
        let relisted = store.apply(Event::InitDone);
        assert_eq!(relisted, [hollow(&object("u1", 3, "7"))]);
        assert_eq!(cached(&reader).metadata.generation, Some(3));
    }
}
