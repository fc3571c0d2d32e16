//! State shared between the key manager (writer), the reconciler and the HTTP server (readers).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sealant_core::KeyRing;
use sealant_core::keystore::KeySet;

/// An immutable view of the keys, swapped whole when a key Secret changes, so readers never
/// see a half-updated ring.
#[derive(Debug, Default)]
pub struct KeysView {
    pub set: KeySet,
    /// Identities that may open (active and retired).
    pub ring: KeyRing,
    /// Recipients of compromised keys.
    pub compromised: BTreeSet<String>,
}

impl KeysView {
    pub fn new(set: KeySet) -> KeysView {
        KeysView {
            ring: set.ring(),
            compromised: set.compromised(),
            set,
        }
    }
}

#[derive(Clone, Default, Debug)]
pub struct SharedKeys(Arc<RwLock<Arc<KeysView>>>);

impl SharedKeys {
    pub fn new(view: KeysView) -> SharedKeys {
        SharedKeys(Arc::new(RwLock::new(Arc::new(view))))
    }

    /// The current view; cheap (an Arc clone).
    pub fn get(&self) -> Arc<KeysView> {
        self.0.read().expect("keys lock").clone()
    }

    pub fn set(&self, view: KeysView) {
        *self.0.write().expect("keys lock") = Arc::new(view);
    }
}

/// What `/readyz` reports.
#[derive(Default, Debug)]
pub struct Readiness {
    keys_loaded: AtomicBool,
    caches_synced: AtomicBool,
}

impl Readiness {
    pub fn set_keys_loaded(&self) {
        self.keys_loaded.store(true, Ordering::Release);
    }

    pub fn set_caches_synced(&self, synced: bool) {
        self.caches_synced.store(synced, Ordering::Release);
    }

    pub fn keys_loaded(&self) -> bool {
        self.keys_loaded.load(Ordering::Acquire)
    }

    pub fn caches_synced(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
    }

    pub fn is_ready(&self) -> bool {
        self.keys_loaded() && self.caches_synced()
    }
}
