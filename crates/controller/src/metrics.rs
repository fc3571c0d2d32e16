//! The controller's Prometheus metrics, served as OpenMetrics text on `/metrics`.
//!
//! Counters here count what the reconciler does; the HTTP endpoints are left out so that a
//! client probing `/v1/verify` cannot skew the unseal error rate that alerts watch.

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets_range};
use prometheus_client::registry::{Registry, Unit};

/// The reasons the reconciler reports; others are accepted, but appear only once they occur.
const KNOWN_REASONS: &[&str] = &[
    "no_key",
    "compromised",
    "tampered",
    "relocated",
    "malformed",
    "not_owned",
    "api_error",
    "type_not_allowed",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ObjectLabel {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Every metric the controller exports, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    unseal_requests: Counter,
    unseal_errors: Family<ReasonLabel, Counter>,
    reconcile_duration: Histogram,
    keys: Family<StateLabel, Gauge>,
    is_leader: Gauge,
    exposed: Family<ObjectLabel, Gauge>,
    /// The series of `exposed`, which a Family cannot list: to drop those of deleted objects.
    exposed_objects: Mutex<BTreeSet<ObjectLabel>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sealant");
        let unseal_requests = Counter::default();
        let unseal_errors = Family::<ReasonLabel, Counter>::default();
        // 1 ms … 10 s: an unseal is milliseconds, a reconcile waiting on a slow API server is seconds.
        let reconcile_duration = Histogram::new(exponential_buckets_range(0.001, 10.0, 14));
        let keys = Family::<StateLabel, Gauge>::default();
        let is_leader = Gauge::default();
        let exposed = Family::<ObjectLabel, Gauge>::default();

        // Counter names get their `_total` suffix, and the unit its `_seconds`, when encoded.
        registry.register(
            "unseal_requests",
            "SealedSecrets the reconciler tried to unseal",
            unseal_requests.clone(),
        );
        registry.register(
            "unseal_errors",
            "SealedSecrets the reconciler could not unseal, by reason",
            unseal_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time taken by one reconcile of a SealedSecret",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register("keys", "Keys held, by state", keys.clone());
        registry.register(
            "is_leader",
            "1 when this replica holds the leader lease and reconciles",
            is_leader.clone(),
        );
        registry.register(
            "sealed_secret_exposed",
            "1 for each SealedSecret that opens and that a compromised key can also open: \
             its values must be treated as leaked (status.exposedTo names the keys)",
            exposed.clone(),
        );
        let metrics = Metrics {
            registry,
            unseal_requests,
            unseal_errors,
            reconcile_duration,
            keys,
            is_leader,
            exposed,
            exposed_objects: Mutex::default(),
        };
        // Known series are exported from the start, at 0, so that dashboards show 0 rather
        // than no data and `increase()` sees the first error.
        metrics.set_keys(0, 0, 0);
        for reason in KNOWN_REASONS {
            // Creating the series is enough; the guard returned is not needed.
            let _ = metrics.unseal_errors.get_or_create(&ReasonLabel {
                reason: (*reason).to_owned(),
            });
        }
        metrics
    }

    /// A SealedSecret unsealed.
    pub fn unseal_ok(&self) {
        self.unseal_requests.inc();
    }

    /// A SealedSecret that could not be unsealed; `reason` is a short machine word such as
    /// `no_key`, `compromised`, `tampered`, `relocated`, `not_owned` or `api_error`.
    pub fn unseal_error(&self, reason: &str) {
        self.unseal_requests.inc();
        self.unseal_errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn observe_reconcile(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    pub fn set_keys(&self, active: usize, retired: usize, compromised: usize) {
        for (state, count) in [
            ("active", active),
            ("retired", retired),
            ("compromised", compromised),
        ] {
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            self.keys.get_or_create(&StateLabel { state }).set(count);
        }
    }

    /// Whether a compromised key can open this SealedSecret (see `exposed_to`).
    pub fn set_exposed(&self, namespace: &str, name: &str, exposed: bool) {
        let label = ObjectLabel {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let mut objects = self.exposed_objects.lock().expect("not poisoned");
        if exposed {
            self.exposed.get_or_create(&label).set(1);
            objects.insert(label);
        } else if objects.remove(&label) {
            self.exposed.remove(&label);
        }
    }

    /// Drops the series of objects that no longer exist.
    pub fn retain_exposed(&self, exists: impl Fn(&str, &str) -> bool) {
        let mut objects = self.exposed_objects.lock().expect("not poisoned");
        objects.retain(|label| {
            let keep = exists(&label.namespace, &label.name);
            if !keep {
                self.exposed.remove(label);
            }
            keep
        });
    }

    pub fn set_leader(&self, leader: bool) {
        self.is_leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_shareable() {
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn encodes_every_metric() {
        let m = Metrics::new();
        m.unseal_ok();
        m.unseal_error("no_key");
        m.unseal_error("no_key");
        m.unseal_error("tampered");
        m.observe_reconcile(0.02);
        m.set_keys(1, 2, 3);
        m.set_leader(true);
        let text = m.encode();
        for line in [
            "sealant_unseal_requests_total 4",
            "sealant_unseal_errors_total{reason=\"no_key\"} 2",
            "sealant_unseal_errors_total{reason=\"tampered\"} 1",
            "sealant_reconcile_duration_seconds_count 1",
            "sealant_reconcile_duration_seconds_bucket{le=\"0.001\"} 0",
            "sealant_reconcile_duration_seconds_bucket{le=\"10.0\"} 1",
            "sealant_keys{state=\"active\"} 1",
            "sealant_keys{state=\"retired\"} 2",
            "sealant_keys{state=\"compromised\"} 3",
            "sealant_is_leader 1",
            "sealant_unseal_errors_total{reason=\"api_error\"} 0",
            "# UNIT sealant_reconcile_duration_seconds seconds",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        m.set_leader(false);
        assert!(m.encode().lines().any(|l| l == "sealant_is_leader 0"));
    }

    #[test]
    fn an_exposed_object_has_a_series_until_it_is_fixed_or_deleted() {
        let m = Metrics::new();
        let series = |ns: &str, name: &str| {
            format!("sealant_sealed_secret_exposed{{namespace=\"{ns}\",name=\"{name}\"}} 1")
        };
        m.set_exposed("prod", "db", true);
        m.set_exposed("prod", "api", true);
        m.set_exposed("dev", "ok", false);
        let text = m.encode();
        assert!(text.contains(&series("prod", "db")), "{text}");
        assert!(text.contains(&series("prod", "api")), "{text}");
        assert!(!text.contains("name=\"ok\""), "{text}");

        m.set_exposed("prod", "db", false);
        m.retain_exposed(|_, name| name != "api");
        let text = m.encode();
        assert!(!text.contains("sealant_sealed_secret_exposed{"), "{text}");
    }
}
