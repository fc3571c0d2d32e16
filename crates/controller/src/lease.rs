//! Leader election on a `coordination.k8s.io/v1` Lease, fenced by time (see fence.rs).
//!
//! This replaces kube-lease-manager, which reports the loss of leadership only once another
//! holder shows up in the Lease and does not expose when it last renewed: a leader cut off
//! from the API server (or paused) kept believing it led, and nothing could fence it by time.
//! What this does is client-go's algorithm:
//! - every retry period, GET the Lease, decide, and create or update it; updates carry the
//!   resourceVersion that was read, so of two replicas racing for it, one gets 409 Conflict;
//! - a standby trusts no one's wall clock: the Lease is free once it has been seen unchanged
//!   for its whole duration on this replica's monotonic clock;
//! - the leader stops (the fence closes, the leader's work is told to stop) once a renew
//!   deadline, shorter than the lease duration, has passed since its last successful renewal
//!   was sent; then it competes again like any standby.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::fence::Fence;

/// The three durations of leader election, checked against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a Lease lasts without renewal before a standby may take it.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops leading.
    pub renew_deadline: Duration,
    /// How often every replica tries to acquire or renew.
    pub retry_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error(
        "--lease-renew-deadline ({deadline:?}) must be shorter than --lease-duration ({duration:?}): \
         otherwise a standby may take the Lease while the old leader still writes"
    )]
    DeadlineNotBelowDuration {
        deadline: Duration,
        duration: Duration,
    },
    #[error(
        "--lease-retry-period ({retry:?}) must be shorter than --lease-renew-deadline ({deadline:?}): \
         the leader needs more than one attempt to renew before it must stop"
    )]
    RetryNotBelowDeadline { retry: Duration, deadline: Duration },
    #[error("--lease-duration must be a whole number of seconds, at least 1s (got {0:?})")]
    BadDuration(Duration),
    #[error("--lease-retry-period must be more than 0")]
    ZeroRetry,
}

impl LeaseTiming {
    pub fn new(
        duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<LeaseTiming, TimingError> {
        // The Lease stores whole seconds: a fraction would be rounded where others read it.
        if duration.as_secs() == 0 || duration.subsec_nanos() != 0 {
            return Err(TimingError::BadDuration(duration));
        }
        if retry_period.is_zero() {
            return Err(TimingError::ZeroRetry);
        }
        if renew_deadline >= duration {
            return Err(TimingError::DeadlineNotBelowDuration {
                deadline: renew_deadline,
                duration,
            });
        }
        if retry_period >= renew_deadline {
            return Err(TimingError::RetryNotBelowDeadline {
                retry: retry_period,
                deadline: renew_deadline,
            });
        }
        Ok(LeaseTiming {
            duration,
            renew_deadline,
            retry_period,
        })
    }
}

/// The Lease as last read, and when (on this replica's monotonic clock) it was first seen in
/// this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    pub duration: Duration,
    pub version: String,
    pub seen_at: Instant,
}

impl Observed {
    /// The next observation after reading `lease` at `now`: a version already seen keeps the
    /// time it was first seen (the Lease has not moved since), a new one starts afresh.
    pub fn next(previous: Option<&Observed>, lease: &Lease, now: Instant) -> Observed {
        let spec = lease.spec.clone().unwrap_or_default();
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let seen_at = match previous {
            Some(p) if p.version == version => p.seen_at,
            _ => now,
        };
        Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            // A Lease without a duration (or a bad one) is treated as lasting 15 s, the default.
            duration: Duration::from_secs(
                spec.lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .unwrap_or(15),
            ),
            version,
            seen_at,
        }
    }
}

/// What to do with the Lease on this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// Nobody holds it, or its holder stopped renewing it a whole duration ago: take it over.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renews it: wait.
    StandBy { holder: String },
}

/// The elector's decision, from the Lease as observed, our identity and the time now.
pub fn decide(observed: Option<&Observed>, me: &str, now: Instant) -> Decision {
    let Some(lease) = observed else {
        return Decision::Create;
    };
    match &lease.holder {
        None => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            // Expired by our own clock: seen unchanged for a whole lease duration.
            if now.saturating_duration_since(lease.seen_at) >= lease.duration {
                Decision::Acquire
            } else {
                Decision::StandBy {
                    holder: holder.clone(),
                }
            }
        }
    }
}

/// The Lease to write for a decision to hold it (None: nothing to write).
pub fn claim(
    current: Option<&Lease>,
    decision: &Decision,
    me: &str,
    timing: &LeaseTiming,
    now: Timestamp,
) -> Option<Lease> {
    let previous_spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let transitions = previous_spec.lease_transitions.unwrap_or(0);
    let (acquire_time, transitions) = match decision {
        Decision::StandBy { .. } => return None,
        Decision::Renew => (previous_spec.acquire_time.clone(), transitions),
        Decision::Create => (Some(MicroTime(now)), 0),
        Decision::Acquire => (Some(MicroTime(now)), transitions.saturating_add(1)),
    };
    let metadata = match current {
        // The resourceVersion read makes the update conditional: 409 if anyone wrote since.
        // managedFields are left to the API server (sent, they would replace its record).
        Some(l) => ObjectMeta {
            managed_fields: None,
            ..l.metadata.clone()
        },
        None => ObjectMeta::default(),
    };
    Some(Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(i32::try_from(timing.duration.as_secs()).unwrap_or(15)),
            acquire_time,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..previous_spec
        }),
    })
}

/// A running election. `leading` turns true while this replica leads.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    field_manager: String,
    timing: LeaseTiming,
    fence: Fence,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        field_manager: &str,
        timing: LeaseTiming,
        fence: Fence,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            field_manager: field_manager.to_owned(),
            timing,
            fence,
        }
    }

    /// One read of the Lease: at start, so an API server that cannot be reached (or a
    /// missing right) is reported at once rather than retried in the background forever.
    pub async fn probe(&self) -> Result<(), kube::Error> {
        self.api.get_opt(&self.name).await.map(|_| ())
    }

    /// Runs until `shutdown`, publishing leadership on `leading`; on shutdown, a leader
    /// releases the Lease so a standby takes over at once.
    pub async fn run(self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut observed: Option<Observed> = None;
        let mut last: Option<Lease> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let read = self.attempt(&mut observed, &mut last).await;
            self.publish(&leading);
            if let Err(e) = read {
                warn!(error = %e, lease = self.name, "leader election: cannot reach the Lease; retrying");
            }
            // Wake for the next attempt, or when the fence closes by itself, so the leader's
            // work is told to stop on time even if the API server never answers.
            let mut wake = tokio::time::Instant::now() + self.timing.retry_period;
            if let Some(closes) = self.fence.closes_at() {
                wake = wake.min(tokio::time::Instant::from_std(closes));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
            self.publish(&leading);
        }
        let was_leading = self.fence.check().is_ok();
        self.fence.close();
        let _ = leading.send(false);
        if was_leading && let Some(lease) = last {
            self.release(lease).await;
        }
    }

    fn publish(&self, leading: &watch::Sender<bool>) {
        let now = self.fence.check().is_ok();
        leading.send_if_modified(|l| {
            let changed = *l != now;
            *l = now;
            changed
        });
    }

    /// One GET, one decision, at most one write; each bounded by the retry period so a
    /// silent API server cannot hold the loop past the fence.
    async fn attempt(
        &self,
        observed: &mut Option<Observed>,
        last: &mut Option<Lease>,
    ) -> Result<(), kube::Error> {
        let bound = self.timing.retry_period;
        let current = match tokio::time::timeout(bound, self.api.get_opt(&self.name)).await {
            Ok(read) => read?,
            Err(_) => return Ok(()),
        };
        *observed = current
            .as_ref()
            .map(|l| Observed::next(observed.as_ref(), l, Instant::now()));
        let decision = decide(observed.as_ref(), &self.identity, Instant::now());
        if let Decision::StandBy { holder } = &decision {
            if self.fence.check().is_ok() {
                warn!(%holder, "another replica holds the Lease: no longer leading");
            }
            // Someone else holds it: stop at once, whatever the deadline says.
            self.fence.close();
            *last = current;
            return Ok(());
        }
        let Some(lease) = claim(
            current.as_ref(),
            &decision,
            &self.identity,
            &self.timing,
            Timestamp::now(),
        ) else {
            return Ok(());
        };
        self.write(decision, lease, current, observed, last).await
    }

    /// Creates or updates the Lease as claimed, bounded by the retry period. The fence is
    /// renewed only by a write the API server took; a 409 (someone wrote the Lease since our
    /// read) is no error: the next attempt reads again.
    async fn write(
        &self,
        decision: Decision,
        lease: Lease,
        current: Option<Lease>,
        observed: &mut Option<Observed>,
        last: &mut Option<Lease>,
    ) -> Result<(), kube::Error> {
        let params = self.post_params();
        // The deadline counts from when the renewal was sent: the API server may have
        // applied it any time after that, and a standby's lease duration starts from then.
        let sent = Instant::now();
        let write = async {
            match decision {
                Decision::Create => {
                    let mut lease = lease;
                    lease.metadata.name = Some(self.name.clone());
                    self.api.create(&params, &lease).await
                }
                _ => self.api.replace(&self.name, &params, &lease).await,
            }
        };
        match tokio::time::timeout(self.timing.retry_period, write).await {
            Ok(Ok(written)) => {
                if self.fence.check().is_err() {
                    info!(identity = self.identity, ?decision, "leading: Lease held");
                }
                self.fence.renewed(sent);
                *observed = Some(Observed::next(None, &written, Instant::now()));
                *last = Some(written);
            }
            // Someone wrote the Lease since our read (took it, or renewed it): read again.
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                *last = current;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
        Ok(())
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// Gives the Lease up (no holder, 1 s), conditionally on the version we last wrote.
    async fn release(&self, mut lease: Lease) {
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        let params = self.post_params();
        let released = tokio::time::timeout(
            self.timing.retry_period,
            self.api.replace(&self.name, &params, &lease),
        )
        .await;
        match released {
            Ok(Ok(_)) => info!("lease released"),
            Ok(Err(e)) => warn!(error = %e, "cannot release the lease"),
            Err(_) => warn!("cannot release the lease: the API server did not answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S15: Duration = Duration::from_secs(15);

    fn observed(holder: Option<&str>, seen_at: Instant) -> Observed {
        Observed {
            holder: holder.map(str::to_owned),
            duration: S15,
            version: "1".into(),
            seen_at,
        }
    }

    fn lease(holder: Option<&str>, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("sealant-controller".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                lease_transitions: Some(3),
                ..Default::default()
            }),
        }
    }

    fn timing() -> LeaseTiming {
        LeaseTiming::new(S15, Duration::from_secs(10), Duration::from_secs(2)).unwrap()
    }

    #[test]
    fn no_lease_is_created_and_a_free_one_acquired() {
        let t0 = Instant::now();
        assert_eq!(decide(None, "a", t0), Decision::Create);
        assert_eq!(
            decide(Some(&observed(None, t0)), "a", t0),
            Decision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let t0 = Instant::now();
        assert_eq!(
            decide(Some(&observed(Some("a"), t0)), "a", t0),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_waited_for_a_whole_duration_of_our_clock() {
        let t0 = Instant::now();
        let other = observed(Some("b"), t0);
        let stand_by = Decision::StandBy { holder: "b".into() };
        assert_eq!(decide(Some(&other), "a", t0), stand_by);
        assert_eq!(
            decide(Some(&other), "a", t0 + S15 - Duration::from_millis(1)),
            stand_by
        );
        assert_eq!(decide(Some(&other), "a", t0 + S15), Decision::Acquire);
    }

    #[test]
    fn a_renewed_lease_restarts_the_wait_and_an_unchanged_one_does_not() {
        let t0 = Instant::now();
        let first = Observed::next(None, &lease(Some("b"), "1"), t0);
        assert_eq!(first.seen_at, t0);
        // Read again 10 s later, same version: seen since t0.
        let same = Observed::next(Some(&first), &lease(Some("b"), "1"), t0 + S15 / 2);
        assert_eq!(same.seen_at, t0);
        assert_eq!(decide(Some(&same), "a", t0 + S15), Decision::Acquire);
        // Renewed (new version): the wait starts again from when we saw it.
        let renewed = Observed::next(Some(&same), &lease(Some("b"), "2"), t0 + S15);
        assert_eq!(
            decide(Some(&renewed), "a", t0 + S15),
            Decision::StandBy { holder: "b".into() }
        );
    }

    #[test]
    fn a_resumed_leader_that_lost_the_lease_stands_by() {
        // The old leader "a" wakes up after a pause and reads a Lease "b" took meanwhile: it
        // waits, however long ago it last saw the Lease.
        let t0 = Instant::now();
        let before = Observed::next(None, &lease(Some("a"), "1"), t0);
        let after = Observed::next(Some(&before), &lease(Some("b"), "7"), t0 + S15 * 2);
        assert_eq!(
            decide(Some(&after), "a", t0 + S15 * 2),
            Decision::StandBy { holder: "b".into() }
        );
    }

    #[test]
    fn an_empty_holder_is_no_holder() {
        let t0 = Instant::now();
        let o = Observed::next(None, &lease(Some(""), "1"), t0);
        assert_eq!(o.holder, None);
        assert_eq!(decide(Some(&o), "a", t0), Decision::Acquire);
    }

    #[test]
    fn claims_are_conditional_and_count_transitions() {
        let now = Timestamp::now();
        let current = lease(Some("b"), "42");
        let taken = claim(Some(&current), &Decision::Acquire, "a", &timing(), now).unwrap();
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("42"));
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));

        let ours = lease(Some("a"), "43");
        let renewed = claim(Some(&ours), &Decision::Renew, "a", &timing(), now).unwrap();
        assert_eq!(renewed.spec.unwrap().lease_transitions, Some(3));

        let created = claim(None, &Decision::Create, "a", &timing(), now).unwrap();
        assert_eq!(created.metadata.resource_version, None);
        assert_eq!(created.spec.unwrap().lease_transitions, Some(0));

        let stand_by = Decision::StandBy { holder: "b".into() };
        assert!(claim(Some(&current), &stand_by, "a", &timing(), now).is_none());
    }

    #[test]
    fn timings_are_checked_against_each_other() {
        let s = Duration::from_secs;
        assert!(LeaseTiming::new(s(15), s(10), s(2)).is_ok());
        assert_eq!(
            LeaseTiming::new(s(15), s(15), s(2)),
            Err(TimingError::DeadlineNotBelowDuration {
                deadline: s(15),
                duration: s(15)
            })
        );
        assert_eq!(
            LeaseTiming::new(s(15), s(10), s(10)),
            Err(TimingError::RetryNotBelowDeadline {
                retry: s(10),
                deadline: s(10)
            })
        );
        assert_eq!(
            LeaseTiming::new(s(0), s(0), s(0)),
            Err(TimingError::BadDuration(s(0)))
        );
        assert_eq!(
            LeaseTiming::new(Duration::from_millis(1500), s(1), s(1)),
            Err(TimingError::BadDuration(Duration::from_millis(1500)))
        );
        assert_eq!(
            LeaseTiming::new(s(15), s(10), s(0)),
            Err(TimingError::ZeroRetry)
        );
    }
}
