//! How soon a broken watch is retried.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Watch retry delays: 0.5 s, doubling up to 5 s, back to 0.5 s after any event.
///
/// kube's default (0.8 s doubling to 30 s, plus up to 100% jitter: up to 60 s) made the
/// controller blind for a minute or more after a short API server restart: the delay grows
/// during the outage, and resuming a watch on the restarted server then fails once more with
/// 410 Expired (its watch cache starts afresh), which costs another full delay before the
/// relist. The controller's watches also share one delay (the controller's trigger stream), so
/// a failing Secret watch held back SealedSecret events too. One controller retrying a few
/// watches every 5 s is no load for an API server.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    pub const MIN: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let delays: Vec<_> = b.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(WatchBackoff::MIN));
    }
}
