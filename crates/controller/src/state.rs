//! State shared between the key manager (writer), the reconciler and the HTTP server (readers).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sealant_core::KeyRing;
use sealant_core::keystore::{KeySet, KeyState};

/// An immutable view of the keys, swapped whole when a key Secret changes, so readers never
/// see a half-updated ring.
#[derive(Debug, Default)]
pub struct KeysView {
    pub set: KeySet,
    /// Identities that may open (active and retired).
    pub ring: KeyRing,
    /// Recipients of compromised keys.
    pub compromised: BTreeSet<String>,
    /// Every identity held, compromised ones included: re-wrapping removes their stanzas.
    pub held: KeyRing,
    /// The compromised identities: a value they open is reported as exposed.
    pub exposing: KeyRing,
    /// Moves on when a key stops opening (removed, or marked compromised): what was opened
    /// under an older epoch must be opened again to know it still opens. Adding or retiring
    /// a key changes nothing that opened before, so it keeps the epoch.
    pub epoch: u64,
}

impl KeysView {
    pub fn new(set: KeySet) -> KeysView {
        KeysView {
            ring: set.ring(),
            compromised: set.compromised(),
            held: KeyRing::from_identities(set.keys().iter().map(|k| k.identity.clone())),
            exposing: KeyRing::from_identities(
                set.keys()
                    .iter()
                    .filter(|k| k.state == KeyState::Compromised)
                    .map(|k| k.identity.clone()),
            ),
            set,
            epoch: 0,
        }
    }

    /// Does `next` take away a key that could open under `self`?
    fn withdraws_from(&self, next: &KeysView) -> bool {
        let kept = next.ring.recipients();
        self.ring.recipients().iter().any(|r| !kept.contains(r))
            || !next.compromised.is_subset(&self.compromised)
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

    pub fn set(&self, mut view: KeysView) {
        let mut current = self.0.write().expect("keys lock");
        view.epoch = current.epoch + u64::from(current.withdraws_from(&view));
        *current = Arc::new(view);
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

#[cfg(test)]
mod tests {
    use super::*;
    use sealant_core::keystore::{KeyState, StoredKey, new_key_secret, parse_key_secret};

    fn view(keys: &[(&StoredKey, KeyState)]) -> KeysView {
        let keys = keys
            .iter()
            .map(|(k, state)| StoredKey {
                state: *state,
                ..(*k).clone()
            })
            .collect();
        KeysView::new(KeySet::new(keys))
    }

    #[test]
    fn the_epoch_moves_only_when_a_key_stops_opening() {
        let key =
            || parse_key_secret(&new_key_secret("ns", "2026-01-01T00:00:00Z".parse().unwrap()).0);
        let (a, b) = (key().unwrap(), key().unwrap());
        let shared = SharedKeys::default();
        shared.set(view(&[(&a, KeyState::Active)]));
        let start = shared.get().epoch;
        // A new key, and the old one retired: everything that opened still opens.
        shared.set(view(&[(&a, KeyState::Retired), (&b, KeyState::Active)]));
        assert_eq!(shared.get().epoch, start);
        shared.set(view(&[(&a, KeyState::Compromised), (&b, KeyState::Active)]));
        assert_eq!(shared.get().epoch, start + 1, "a key compromised");
        shared.set(view(&[(&b, KeyState::Active)]));
        assert_eq!(
            shared.get().epoch,
            start + 1,
            "a compromised key removed opened nothing"
        );
        shared.set(view(&[]));
        assert_eq!(shared.get().epoch, start + 2, "a key removed");
    }
}
