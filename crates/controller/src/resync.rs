//! The periodic re-check of every SealedSecret, which catches anything a watch missed. It is
//! spread over the resync period by a timer over the cache, with no scheduler entry per object
//! (why: docs/benchmarks.md, cause 4).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use sealant_core::crd::SealedSecret;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

/// The period is cut into this many slots; each object comes up in one of them.
const SLOTS: u32 = 60;

/// The slot an object comes up in: the same for its whole life, and spread evenly.
fn slot(namespace: &str, name: &str) -> u32 {
    let mut hasher = DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    (hasher.finish() % u64::from(SLOTS)) as u32
}

/// Every cached object, once per `period`, one slot at a time; nothing if `period` is 0.
pub fn due(
    cache: Store<SealedSecret>,
    period: Duration,
) -> impl Stream<Item = ObjectRef<SealedSecret>> + Send + 'static {
    if period.is_zero() {
        return stream::pending().left_stream();
    }
    // A period under 60 ms would make a zero tick, which the timer refuses.
    let tick = (period / SLOTS).max(Duration::from_millis(1));
    let mut timer = interval_at(Instant::now() + tick, tick);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stream::unfold((timer, 0u32), move |(mut timer, n)| {
        let cache = cache.clone();
        async move {
            timer.tick().await;
            let due: Vec<ObjectRef<SealedSecret>> = cache
                .state()
                .iter()
                .filter(|s| slot(&s.namespace().unwrap_or_default(), &s.name_any()) == n)
                .map(|s| ObjectRef::from_obj(&**s))
                .collect();
            Some((stream::iter(due), (timer, (n + 1) % SLOTS)))
        }
    })
    .flatten()
    .right_stream()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    #[test]
    fn slots_are_spread_evenly() {
        let mut counts = [0u32; SLOTS as usize];
        for i in 0..6000 {
            counts[slot("prod", &format!("app-{i}")) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (50..=150).contains(&c)),
            "{counts:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_object_comes_up_once_per_period() {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for i in 0..300 {
            let mut sealed = SealedSecret::new(&format!("app-{i}"), Default::default());
            sealed.metadata.namespace = Some("prod".into());
            writer.apply_watcher_event(&Event::InitApply(sealed));
        }
        writer.apply_watcher_event(&Event::InitDone);
        let period = Duration::from_secs(600);
        let started = Instant::now();
        let mut due = std::pin::pin!(due(reader, period));
        let mut seen = std::collections::HashMap::new();
        while seen.len() < 300 {
            let object = due.next().await.expect("a stream that never ends");
            assert!(
                seen.insert(object.name, Instant::now()).is_none(),
                "once per period"
            );
        }
        assert!(started.elapsed() <= period);
        let first = seen.values().min().unwrap();
        assert!(
            *first >= started + period / SLOTS,
            "none before the first slot"
        );
    }

    #[tokio::test]
    async fn a_zero_period_turns_it_off() {
        let (reader, _writer) = reflector::store::<SealedSecret>();
        let mut due = std::pin::pin!(due(reader, Duration::ZERO));
        let next = tokio::time::timeout(Duration::from_millis(50), due.next()).await;
        assert!(next.is_err());
    }
}
