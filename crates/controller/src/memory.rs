//! What the reconciler remembers so that it does not ask the API server what it already
//! knows: the resourceVersion of every Secret (from the metadata watch: [`SecretVersions`]),
//! and what it last wrote or confirmed for each SealedSecret, under which key epoch
//! ([`LastWrites`]). They save requests, and spare re-reading and re-opening a SealedSecret
//! whose Secret is untouched: whenever they are missing, disagree or are old, the reconciler
//! reads and opens everything as before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use sealant_core::crd::SealedSecret;

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What the metadata watch last said about a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It exists at this resourceVersion.
    At(String),
    /// The watch has listed everything and it is not there.
    Absent,
    /// The watch has not finished its first list yet.
    Unknown,
}

/// name → resourceVersion of every Secret the watch sees: a few dozen bytes each, where a
/// reflector store would keep the whole ObjectMeta.
#[derive(Debug, Default)]
pub struct SecretVersions {
    inner: Mutex<Versions>,
}

#[derive(Debug, Default)]
struct Versions {
    current: HashMap<String, String>,
    /// A re-list in progress; replaces `current` when it is done.
    relist: Option<HashMap<String, String>>,
    listed: bool,
}

impl SecretVersions {
    /// Follows one watch event. After a re-list, returns the Secrets (namespace, name) that
    /// were known before and are gone now: deleted while the watch was down, which no
    /// event will ever report.
    pub fn observe(&self, event: &Event<PartialObjectMeta<Secret>>) -> Vec<(String, String)> {
        let mut v = self.inner.lock().expect("versions lock");
        let entry = |s: &PartialObjectMeta<Secret>| {
            let ns = s.namespace().unwrap_or_default();
            let rv = s.resource_version().unwrap_or_default();
            (key(&ns, &s.name_any()), rv)
        };
        match event {
            Event::Init => v.relist = Some(HashMap::new()),
            Event::InitApply(s) => {
                let (k, rv) = entry(s);
                v.relist.get_or_insert_with(HashMap::new).insert(k, rv);
            }
            Event::InitDone => {
                let mut fresh = v.relist.take().unwrap_or_default();
                fresh.shrink_to_fit();
                let old = std::mem::replace(&mut v.current, fresh);
                v.listed = true;
                return old
                    .into_keys()
                    .filter(|k| !v.current.contains_key(k))
                    .filter_map(|k| {
                        k.split_once('/')
                            .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
                    })
                    .collect();
            }
            Event::Apply(s) => {
                let (k, rv) = entry(s);
                v.current.insert(k, rv);
            }
            Event::Delete(s) => {
                v.current.remove(&entry(s).0);
            }
        }
        Vec::new()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Seen {
        let v = self.inner.lock().expect("versions lock");
        let k = key(namespace, name);
        // A re-list in progress already knows the newer version of what it has listed so far
        // (reconciles run between its pages); what it has not reached yet is as before.
        if let Some(rv) = v.relist.as_ref().and_then(|r| r.get(&k)) {
            return Seen::At(rv.clone());
        }
        match v.current.get(&k) {
            Some(rv) => Seen::At(rv.clone()),
            None if v.listed => Seen::Absent,
            None => Seen::Unknown,
        }
    }
}

/// Per SealedSecret (by namespace/name): the Secret version it last wrote or read back as
/// up to date, the status it last wrote, and whether its last reconcile ended with both in
/// place, for one uid and generation.
#[derive(Debug, Default)]
pub struct LastWrites {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    uid: String,
    generation: Option<i64>,
    secret: Option<(String, Instant)>,
    status: Option<u64>,
    /// The key epoch of a reconcile that left the Secret and the status as they should be.
    reconciled: Option<u64>,
}

/// A reconcile in progress (see `LastWrites::begin`).
#[must_use = "a pass records how the reconcile ended when finished"]
pub struct Pass<'a> {
    last_writes: &'a LastWrites,
    sealed: &'a SealedSecret,
}

impl Pass<'_> {
    /// Records how the reconcile ended: `Some(epoch)` when the Secret and the status are as
    /// they should be under that key epoch, `None` when not.
    pub fn finish(self, epoch: Option<u64>) {
        self.last_writes
            .with_entry(self.sealed, |e| e.reconciled = epoch);
    }
}

impl LastWrites {
    /// The entry for this exact object (uid and generation), started afresh if it was for
    /// an older generation or a deleted namesake.
    fn with_entry<T>(&self, sealed: &SealedSecret, f: impl FnOnce(&mut Entry) -> T) -> T {
        let uid = sealed.metadata.uid.clone().unwrap_or_default();
        let generation = sealed.metadata.generation;
        let mut entries = self.entries.lock().expect("last writes lock");
        let entry = entries
            .entry(key(
                &sealed.namespace().unwrap_or_default(),
                &sealed.name_any(),
            ))
            .or_insert_with(|| Entry {
                uid: uid.clone(),
                generation,
                secret: None,
                status: None,
                reconciled: None,
            });
        if entry.uid != uid || entry.generation != generation {
            *entry = Entry {
                uid,
                generation,
                secret: None,
                status: None,
                reconciled: None,
            };
        }
        f(entry)
    }

    fn find<T>(&self, sealed: &SealedSecret, f: impl FnOnce(&Entry) -> Option<T>) -> Option<T> {
        let entries = self.entries.lock().expect("last writes lock");
        let entry = entries.get(&key(
            &sealed.namespace().unwrap_or_default(),
            &sealed.name_any(),
        ))?;
        let same = Some(entry.uid.as_str()) == sealed.metadata.uid.as_deref()
            && entry.generation == sealed.metadata.generation;
        if same { f(entry) } else { None }
    }

    /// The Secret version this generation was written or confirmed at, if within `max_age`:
    /// older confirmations are re-checked against the API, so a missed watch event is
    /// caught at the next resync.
    pub fn secret_version(&self, sealed: &SealedSecret, max_age: Duration) -> Option<String> {
        self.find(sealed, |e| {
            e.secret
                .as_ref()
                .filter(|(_, at)| at.elapsed() < max_age)
                .map(|(rv, _)| rv.clone())
        })
    }

    /// Has a Secret version been recorded for this SealedSecret, of any generation?
    pub fn knows_secret(&self, namespace: &str, name: &str) -> bool {
        let entries = self.entries.lock().expect("last writes lock");
        entries
            .get(&key(namespace, name))
            .is_some_and(|e| e.secret.is_some())
    }

    pub fn record_secret(&self, sealed: &SealedSecret, version: String) {
        self.with_entry(sealed, |e| e.secret = Some((version, Instant::now())));
    }

    /// Is `version` of Secret namespace/name one this controller wrote itself? Its watch
    /// event is then only the echo of that write.
    pub fn is_echo(&self, namespace: &str, name: &str, version: &str) -> bool {
        let entries = self.entries.lock().expect("last writes lock");
        entries
            .get(&key(namespace, name))
            .and_then(|e| e.secret.as_ref())
            .is_some_and(|(rv, _)| rv == version)
    }

    pub fn status_written(&self, sealed: &SealedSecret, digest: u64) -> bool {
        self.find(sealed, |e| e.status.filter(|d| *d == digest))
            .is_some()
    }

    pub fn record_status(&self, sealed: &SealedSecret, digest: u64) {
        self.with_entry(sealed, |e| e.status = Some(digest));
    }

    /// Starts a reconcile of this generation: until the pass is finished with an epoch,
    /// nothing about the object is taken as in place (a pass dropped unfinished, by an early
    /// return or a `?`, leaves it so).
    pub fn begin<'a>(&'a self, sealed: &'a SealedSecret) -> Pass<'a> {
        self.with_entry(sealed, |e| e.reconciled = None);
        Pass {
            last_writes: self,
            sealed,
        }
    }

    /// Did the last reconcile of this generation leave everything in place?
    pub fn is_reconciled(&self, sealed: &SealedSecret) -> bool {
        self.find(sealed, |e| e.reconciled).is_some()
    }

    /// If this generation was reconciled under key epoch `epoch`: the Secret version it left,
    /// and whether that was confirmed within `max_age`.
    pub fn reconciled_secret(
        &self,
        sealed: &SealedSecret,
        epoch: u64,
        max_age: Duration,
    ) -> Option<(String, bool)> {
        self.find(sealed, |e| {
            let (rv, at) = e.secret.as_ref().filter(|_| e.reconciled == Some(epoch))?;
            Some((rv.clone(), at.elapsed() < max_age))
        })
    }

    pub fn forget(&self, sealed: &SealedSecret) {
        let mut entries = self.entries.lock().expect("last writes lock");
        entries.remove(&key(
            &sealed.namespace().unwrap_or_default(),
            &sealed.name_any(),
        ));
    }

    /// Secrets this controller wrote (or confirmed) that the watch has listed everything
    /// without: a Secret written and then deleted while the watch was down was never in the
    /// watch's view, so the re-list cannot report it as gone; only this memory knows it.
    pub fn missing_from(&self, versions: &SecretVersions) -> Vec<(String, String)> {
        let entries = self.entries.lock().expect("last writes lock");
        entries
            .iter()
            .filter(|(_, e)| e.secret.is_some())
            .filter_map(|(k, _)| k.split_once('/'))
            .filter(|(ns, name)| versions.get(ns, name) == Seen::Absent)
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
            .collect()
    }

    /// Drops entries for objects no longer present (after a re-list, when deletions may have
    /// been missed).
    pub fn retain(&self, mut present: impl FnMut(&str, &str) -> bool) {
        let mut entries = self.entries.lock().expect("last writes lock");
        entries.retain(|k, _| {
            let (ns, name) = k.split_once('/').unwrap_or(("", k));
            present(ns, name)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(uid: &str, generation: i64) -> SealedSecret {
        let mut s = SealedSecret::new("db", Default::default());
        s.metadata.namespace = Some("prod".into());
        s.metadata.uid = Some(uid.into());
        s.metadata.generation = Some(generation);
        s
    }

    fn meta(name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("prod".into());
        m.metadata.resource_version = Some(rv.into());
        m
    }

    #[test]
    fn versions_follow_the_watch_and_its_relists() {
        let v = SecretVersions::default();
        assert_eq!(v.get("prod", "db"), Seen::Unknown);
        v.observe(&Event::Init);
        v.observe(&Event::InitApply(meta("db", "1")));
        assert_eq!(
            v.get("prod", "db"),
            Seen::At("1".into()),
            "on a page listed"
        );
        assert_eq!(
            v.get("prod", "other"),
            Seen::Unknown,
            "the first list is not done"
        );
        v.observe(&Event::InitDone);
        assert_eq!(v.get("prod", "db"), Seen::At("1".into()));
        assert_eq!(v.get("prod", "other"), Seen::Absent);
        v.observe(&Event::Apply(meta("db", "2")));
        assert_eq!(v.get("prod", "db"), Seen::At("2".into()));
        v.observe(&Event::Delete(meta("db", "3")));
        assert_eq!(v.get("prod", "db"), Seen::Absent);
        // A re-list replaces everything: what it does not list is gone.
        v.observe(&Event::Apply(meta("old", "4")));
        v.observe(&Event::Init);
        v.observe(&Event::InitApply(meta("new", "5")));
        v.observe(&Event::InitApply(meta("db-edited", "6")));
        assert_eq!(
            v.get("prod", "db-edited"),
            Seen::At("6".into()),
            "listed before the re-list is done"
        );
        assert_eq!(v.get("prod", "old"), Seen::At("4".into()), "not listed yet");
        let vanished = v.observe(&Event::InitDone);
        assert_eq!(
            vanished,
            vec![("prod".to_owned(), "old".to_owned())],
            "deleted while the watch was down"
        );
        assert_eq!(v.get("prod", "old"), Seen::Absent);
        assert_eq!(v.get("prod", "new"), Seen::At("5".into()));
    }

    #[test]
    fn a_secret_written_and_deleted_while_the_watch_was_down_is_missing() {
        let v = SecretVersions::default();
        let w = LastWrites::default();
        v.observe(&Event::Init);
        v.observe(&Event::InitDone);
        // LastWrites during the gap: the watch never saw it, so its re-list cannot report it
        // as vanished.
        w.record_secret(&sealed("u1", 1), "7".into());
        v.observe(&Event::Init);
        let vanished = v.observe(&Event::InitDone);
        assert!(vanished.is_empty());
        assert_eq!(
            w.missing_from(&v),
            vec![("prod".to_owned(), "db".to_owned())]
        );
        // Once the watch sees it, it is not missing.
        v.observe(&Event::Apply(meta("db", "7")));
        assert!(w.missing_from(&v).is_empty());
        // Before the first list is done, nothing can be said missing.
        let fresh = SecretVersions::default();
        assert!(w.missing_from(&fresh).is_empty());
    }

    #[test]
    fn last_writes_are_per_uid_and_generation_and_ages() {
        let w = LastWrites::default();
        let s = sealed("u1", 1);
        w.record_secret(&s, "10".into());
        w.record_status(&s, 7);
        assert_eq!(
            w.secret_version(&s, Duration::from_secs(60)).as_deref(),
            Some("10")
        );
        assert_eq!(w.secret_version(&s, Duration::ZERO), None, "too old");
        assert!(w.is_echo("prod", "db", "10"));
        assert!(!w.is_echo("prod", "db", "11"));
        assert!(w.status_written(&s, 7));
        assert!(!w.status_written(&s, 8));
        // A new generation or a recreated namesake remembers nothing of the old one.
        for other in [sealed("u1", 2), sealed("u2", 1)] {
            assert_eq!(w.secret_version(&other, Duration::from_secs(60)), None);
            assert!(!w.status_written(&other, 7));
        }
        assert!(!w.is_reconciled(&s));
        w.begin(&s).finish(Some(3));
        assert!(w.is_reconciled(&s));
        let minute = Duration::from_secs(60);
        assert_eq!(
            w.reconciled_secret(&s, 3, minute),
            Some(("10".into(), true))
        );
        assert_eq!(
            w.reconciled_secret(&s, 3, Duration::ZERO),
            Some(("10".into(), false))
        );
        assert_eq!(
            w.reconciled_secret(&s, 4, minute),
            None,
            "keys withdrawn since"
        );
        assert!(!w.is_reconciled(&sealed("u1", 2)));
        drop(w.begin(&s));
        assert_eq!(
            w.reconciled_secret(&s, 3, minute),
            None,
            "the last reconcile failed"
        );
        w.record_status(&sealed("u1", 2), 9);
        assert!(
            !w.knows_secret("prod", "db"),
            "generation 2 wrote no Secret yet"
        );
        w.forget(&s);
        assert!(!w.is_echo("prod", "db", "10"));
    }
}
