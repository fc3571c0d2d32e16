//! The controller's Prometheus metrics, served as OpenMetrics text on `/metrics`.
//!
//! Counters here count what the reconciler does; the HTTP endpoints are left out so that a
//! client probing `/v1/verify` cannot skew the unseal error rate that alerts watch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets_range};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use sealant_core::conditions::{READY, RECONCILING, STALLED, UNSEALED};
use sealant_core::reason::Reason;

/// See `Metrics::time_reconcile`.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .observe_reconcile(self.started.elapsed().as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    namespace: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabel {
    recipient: String,
    state: String,
}

/// The per-object series (each SealedSecret's conditions, and whether a compromised key opens
/// it), kept once here and written out at each scrape. As `Family`s they cost three owned
/// copies of every label, about 0.9 KB per object: a fifth of the controller's memory at
/// 20,000 objects (docs/benchmarks.md).
#[derive(Debug, Default)]
struct ObjectSeries {
    /// By (namespace, name).
    objects: Mutex<BTreeMap<(String, String), ObjectState>>,
}

#[derive(Debug)]
struct ObjectState {
    exposed: bool,
    conditions: Box<[ConditionState]>,
}

#[derive(Debug, PartialEq)]
struct ConditionState {
    condition: Cow<'static, str>,
    status: Cow<'static, str>,
    reason: Cow<'static, str>,
}

const EXPOSED: &str = "sealed_secret_exposed";
const EXPOSED_HELP: &str = "1 for each SealedSecret that opens and that a compromised key can \
                            also open: its values must be treated as leaked (status.exposedTo \
                            names the keys)";
const CONDITION: &str = "sealed_secret_condition_info";
const CONDITION_HELP: &str = "1 for each SealedSecret's condition, with its status and reason";

/// `value` borrowed when it is one of the words conditions are made of (every object repeats
/// them), owned otherwise.
fn word(value: &str) -> Cow<'static, str> {
    const WORDS: [&str; 7] = [
        READY,
        RECONCILING,
        STALLED,
        UNSEALED,
        "True",
        "False",
        "Unknown",
    ];
    let reasons = Reason::ALL.iter().map(|r| r.as_str());
    match WORDS.into_iter().chain(reasons).find(|w| *w == value) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(value.to_owned()),
    }
}

impl Collector for ObjectSeries {
    /// Like a `Family`, a metric with no series is left out, help text and all.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let objects = self.objects.lock().expect("not poisoned");
        let one = ConstGauge::new(1i64);
        if objects.values().any(|o| o.exposed) {
            let mut family =
                encoder.encode_descriptor(EXPOSED, EXPOSED_HELP, None, MetricType::Gauge)?;
            for ((namespace, name), _) in objects.iter().filter(|(_, o)| o.exposed) {
                let labels = [("namespace", namespace.as_str()), ("name", name.as_str())];
                one.encode(family.encode_family(&labels)?)?;
            }
        }
        if objects.values().any(|o| !o.conditions.is_empty()) {
            let mut family =
                encoder.encode_descriptor(CONDITION, CONDITION_HELP, None, MetricType::Gauge)?;
            for ((namespace, name), object) in objects.iter() {
                for c in &object.conditions {
                    let labels = [
                        ("namespace", namespace.as_str()),
                        ("name", name.as_str()),
                        ("condition", &c.condition),
                        ("status", &c.status),
                        ("reason", &c.reason),
                    ];
                    one.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Every metric the controller exports, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    unseal_requests: Counter,
    unseal_errors: Family<ErrorLabel, Counter>,
    reconcile_duration: Histogram,
    keys: Family<StateLabel, Gauge>,
    key_created: Family<KeyLabel, Gauge>,
    is_leader: Gauge,
    objects: Arc<ObjectSeries>,
    /// Namespaces whose error series exist.
    namespaces: Mutex<BTreeSet<String>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("sealant"),
            unseal_requests: Counter::default(),
            unseal_errors: Family::default(),
            // 1 ms … 10 s: an unseal is milliseconds, a reconcile waiting on a slow API server
            // is seconds.
            reconcile_duration: Histogram::new(exponential_buckets_range(0.001, 10.0, 14)),
            keys: Family::default(),
            key_created: Family::default(),
            is_leader: Gauge::default(),
            objects: Arc::default(),
            namespaces: Mutex::default(),
        };
        metrics.register();
        // Known series are exported from the start, at 0, so that dashboards show 0 rather
        // than no data.
        metrics.set_keys(0, 0, 0);
        metrics
    }

    /// Puts every metric, with its help text, in the registry.
    fn register(&mut self) {
        let registry = &mut self.registry;
        // Counter names get their `_total` suffix, and the unit its `_seconds`, when encoded.
        registry.register(
            "unseal_requests",
            "SealedSecrets the reconciler tried to unseal",
            self.unseal_requests.clone(),
        );
        registry.register(
            "unseal_errors",
            "SealedSecrets the reconciler could not turn into their Secret, by namespace and \
             reason (the Ready condition's reason, or ApiError)",
            self.unseal_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time taken by one reconcile of a SealedSecret",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        registry.register("keys", "Keys held, by state", self.keys.clone());
        registry.register_with_unit(
            "key_created_timestamp",
            "When each key held was created (Unix time), by recipient and state",
            Unit::Seconds,
            self.key_created.clone(),
        );
        registry.register(
            "is_leader",
            "1 when this replica holds the leader lease and reconciles",
            self.is_leader.clone(),
        );
        registry.register(
            "build",
            "The controller's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(self.objects.clone()));
    }

    /// The error series of `namespace`, one per [`Reason`], at 0 until they count: each
    /// namespace's series start the first time the controller reconciles there, so
    /// `increase()` sees the first error.
    fn know_namespace(&self, namespace: &str) {
        let mut known = self.namespaces.lock().expect("not poisoned");
        if known.insert(namespace.to_owned()) {
            for reason in Reason::ALL {
                // Creating the series is enough; the guard returned is not needed.
                let _ = self.unseal_errors.get_or_create(&ErrorLabel {
                    namespace: namespace.to_owned(),
                    reason: reason.as_str().to_owned(),
                });
            }
        }
    }

    /// A SealedSecret turned into its Secret (or found in place).
    pub fn unseal_ok(&self, namespace: &str) {
        self.know_namespace(namespace);
        self.unseal_requests.inc();
    }

    /// A SealedSecret that could not be turned into its Secret, and why (its Ready
    /// condition's reason).
    pub fn unseal_error(&self, namespace: &str, reason: Reason) {
        self.know_namespace(namespace);
        self.unseal_requests.inc();
        self.unseal_errors
            .get_or_create(&ErrorLabel {
                namespace: namespace.to_owned(),
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    pub fn observe_reconcile(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    /// Times a reconcile: its duration is recorded when the guard drops, so every way out
    /// (an early return, a `?`) is counted.
    pub fn time_reconcile(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
        }
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

    /// Every key held: (recipient, state, created as Unix seconds). Replaces the previous set.
    pub fn set_key_ages(&self, keys: &[(String, String, i64)]) {
        self.key_created.clear();
        for (recipient, state, created) in keys {
            self.key_created
                .get_or_create(&KeyLabel {
                    recipient: recipient.clone(),
                    state: state.clone(),
                })
                .set(*created);
        }
    }

    /// What the last reconcile of a SealedSecret found: its conditions (one series each, as
    /// written in its status: `Ready`, and `Reconciling` or `Stalled` while True) and whether a
    /// compromised key can open it (see `exposed_to`).
    pub fn set_object(&self, namespace: &str, name: &str, conditions: &[Condition], exposed: bool) {
        let conditions = conditions
            .iter()
            .map(|c| ConditionState {
                condition: word(&c.type_),
                status: word(&c.status),
                reason: word(&c.reason),
            })
            .collect();
        let state = ObjectState {
            exposed,
            conditions,
        };
        let key = (namespace.to_owned(), name.to_owned());
        self.objects
            .objects
            .lock()
            .expect("not poisoned")
            .insert(key, state);
    }

    /// Drops the per-object series of objects that no longer exist.
    pub fn retain_objects(&self, exists: impl Fn(&str, &str) -> bool) {
        let mut objects = self.objects.objects.lock().expect("not poisoned");
        objects.retain(|(namespace, name), _| exists(namespace, name));
    }

    /// Drops the per-object series of a deleted SealedSecret.
    pub fn forget_object(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.objects
            .objects
            .lock()
            .expect("not poisoned")
            .remove(&key);
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_shareable() {
        assert_send_sync::<Metrics>();
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn encodes_every_metric() {
        let m = Metrics::new();
        m.unseal_ok("prod");
        m.unseal_error("prod", Reason::NoKey);
        m.unseal_error("prod", Reason::NoKey);
        m.unseal_error("dev", Reason::Tampered);
        m.observe_reconcile(0.02);
        m.set_keys(1, 2, 3);
        m.set_key_ages(&[("age1a".into(), "active".into(), 1_700_000_000)]);
        m.set_leader(true);
        let text = m.encode();
        for line in [
            "sealant_unseal_requests_total 4",
            "sealant_unseal_errors_total{namespace=\"prod\",reason=\"NoKey\"} 2",
            "sealant_unseal_errors_total{namespace=\"dev\",reason=\"Tampered\"} 1",
            // Every reason of a namespace seen is there from the start, at 0.
            "sealant_unseal_errors_total{namespace=\"prod\",reason=\"ApiError\"} 0",
            "sealant_unseal_errors_total{namespace=\"dev\",reason=\"NotOwned\"} 0",
            "sealant_reconcile_duration_seconds_count 1",
            "sealant_reconcile_duration_seconds_bucket{le=\"0.001\"} 0",
            "sealant_reconcile_duration_seconds_bucket{le=\"10.0\"} 1",
            "sealant_keys{state=\"active\"} 1",
            "sealant_keys{state=\"retired\"} 2",
            "sealant_keys{state=\"compromised\"} 3",
            "sealant_key_created_timestamp_seconds{recipient=\"age1a\",state=\"active\"} 1700000000",
            "sealant_is_leader 1",
            "# UNIT sealant_reconcile_duration_seconds seconds",
            "# EOF",
        ] {
            assert!(has(&text, line), "no {line:?} in\n{text}");
        }
        assert!(
            text.contains(&format!(
                "sealant_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        m.set_leader(false);
        assert!(has(&m.encode(), "sealant_is_leader 0"));
        m.set_key_ages(&[]);
        assert!(
            !m.encode()
                .contains("sealant_key_created_timestamp_seconds{")
        );
    }

    #[test]
    fn a_namespace_has_one_error_series_per_reason_and_no_other() {
        let m = Metrics::new();
        m.unseal_ok("prod");
        let text = m.encode();
        let mut labels: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("sealant_unseal_errors_total{namespace=\"prod\",reason=\"")
            })
            .filter_map(|rest| rest.strip_suffix("\"} 0"))
            .collect();
        labels.sort_unstable();
        let mut reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        reasons.sort_unstable();
        assert_eq!(labels, reasons, "{text}");
    }

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }
    }

    /// `Ready=False` for `reason`, and `abnormal` (`Stalled` or `Reconciling`) True with it.
    fn failing(abnormal: &str, reason: &str) -> [Condition; 2] {
        [
            condition("Ready", "False", reason),
            condition(abnormal, "True", reason),
        ]
    }

    fn condition_series(name: &str, condition: &str, status: &str, reason: &str) -> String {
        format!(
            "sealant_sealed_secret_condition_info{{namespace=\"prod\",name=\"{name}\",condition=\"{condition}\",status=\"{status}\",reason=\"{reason}\"}} 1"
        )
    }

    #[test]
    fn an_object_has_a_series_per_condition_and_its_exposure_until_it_is_deleted() {
        let m = Metrics::new();
        let ready = [condition("Ready", "True", "Unsealed")];
        m.set_object("prod", "db", &failing("Stalled", "NoKey"), false);
        m.set_object("prod", "api", &ready, true);
        let text = m.encode();
        for line in [
            condition_series("db", "Ready", "False", "NoKey"),
            condition_series("db", "Stalled", "True", "NoKey"),
            condition_series("api", "Ready", "True", "Unsealed"),
            "sealant_sealed_secret_exposed{namespace=\"prod\",name=\"api\"} 1".into(),
        ] {
            assert!(has(&text, &line), "no {line} in {text}");
        }
        assert!(!text.contains("name=\"db\"}"), "db is not exposed: {text}");
        for line in [
            "# TYPE sealant_sealed_secret_condition_info gauge",
            "# HELP sealant_sealed_secret_condition_info 1 for each SealedSecret's condition, with its status and reason",
            "# TYPE sealant_sealed_secret_exposed gauge",
        ] {
            assert!(has(&text, line), "no {line} in {text}");
        }

        // A new state replaces the old series (Stalled goes with it); exposure fixed, its
        // series goes.
        m.set_object("prod", "db", &failing("Reconciling", "ApiError"), false);
        m.set_object("prod", "api", &ready, false);
        let text = m.encode();
        let retrying = condition_series("db", "Reconciling", "True", "ApiError");
        assert!(has(&text, &retrying), "{text}");
        assert!(!text.contains("reason=\"NoKey\"}"), "{text}");
        assert!(!text.contains("sealant_sealed_secret_exposed{"), "{text}");
        m.set_object("prod", "db", &ready, false);
        let text = m.encode();
        let up = condition_series("db", "Ready", "True", "Unsealed");
        assert!(has(&text, &up), "{text}");
        assert!(!text.contains("condition=\"Reconciling\""), "{text}");

        // Deleted (one by one, or missed while the watch was down): no series left.
        m.set_object("prod", "api", &ready, true);
        m.forget_object("prod", "api");
        m.retain_objects(|_, name| name != "db");
        let text = m.encode();
        // As a metric with no series, left out whole.
        assert!(
            !text.contains("sealant_sealed_secret_condition_info"),
            "{text}"
        );
        assert!(!text.contains("sealant_sealed_secret_exposed"), "{text}");
    }
}
