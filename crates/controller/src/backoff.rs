//! How soon a broken watch is retried: the one retry policy of the controller's watches.

use std::time::Duration;

use backon::ExponentialBuilder;
use kube::runtime::watcher::ExponentialBackoff;

/// The first delay, and the delay again after any event.
pub const MIN: Duration = Duration::from_millis(500);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(5);

/// Watch retry delays: 0.5 s, doubling up to 5 s, no jitter, never giving up; back to 0.5 s
/// after any event (kube's `Backoff::reset`).
///
/// kube's default (0.8 s doubling to 30 s, plus up to 100% jitter: up to 60 s) made the
/// controller blind for a minute or more after a short API server restart: the delay grows
/// during the outage, and resuming a watch on the restarted server then fails once more with
/// 410 Expired (its watch cache starts afresh), which costs another full delay before the
/// relist. The controller's watches also share one delay (the controller's trigger stream), so
/// a failing Secret watch held back SealedSecret events too. One controller retrying a few
/// watches every 5 s is no load for an API server.
pub fn watch_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(MIN)
        .with_max_delay(MAX)
        .with_factor(2.0)
        .without_max_times()
        .into()
}

#[cfg(test)]
mod tests {
    use kube::runtime::utils::Backoff;

    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = watch_backoff();
        let delays: Vec<_> = b.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(MIN));
    }

    #[test]
    fn never_gives_up() {
        assert_eq!(watch_backoff().nth(10_000), Some(MAX));
    }
}
