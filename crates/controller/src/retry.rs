//! How soon a failed reconcile is retried: 1 s, doubling up to 30 s, per SealedSecret, back to
//! 1 s after it succeeds. A fixed delay either hammered an API server that keeps refusing (a
//! missing RBAC right, an admission webhook that is down) or, as "permanent" failures did,
//! waited for the resync (10 minutes) after the cause was already fixed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(30);

/// The delay before retry number `failures` (1 for the first failure).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST * 2u32.pow(doublings)).min(MAX)
}

/// Failures in a row per SealedSecret (namespace/name).
#[derive(Debug, Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    /// Counts a failure; returns how long to wait before the next attempt.
    pub fn failed(&self, namespace: &str, name: &str) -> Duration {
        let mut failures = self.failures.lock().expect("retries lock");
        let n = failures.entry(format!("{namespace}/{name}")).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// A success: the next failure starts from the first delay again.
    pub fn succeeded(&self, namespace: &str, name: &str) {
        let mut failures = self.failures.lock().expect("retries lock");
        if !failures.is_empty() {
            failures.remove(&format!("{namespace}/{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=8).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(delay(u32::MAX), MAX);
        assert_eq!(delay(0), FIRST);
    }

    #[test]
    fn counted_per_object_and_reset_by_a_success() {
        let r = Retries::default();
        assert_eq!(r.failed("ns", "a"), Duration::from_secs(1));
        assert_eq!(r.failed("ns", "a"), Duration::from_secs(2));
        assert_eq!(r.failed("ns", "b"), Duration::from_secs(1));
        r.succeeded("ns", "a");
        assert_eq!(r.failed("ns", "a"), Duration::from_secs(1));
        assert_eq!(r.failed("ns", "b"), Duration::from_secs(2));
    }
}
