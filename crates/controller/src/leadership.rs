//! Leadership: the leader's work runs while this replica holds the Lease, and stops the
//! moment it lapses, is lost, or the process is told to stop.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::lease::Elector;
use crate::metrics::Metrics;
use crate::run::Leading;
use crate::state::Readiness;

/// How the leader's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Led {
    /// Stopped because it was told to (shutdown, or leadership ended).
    Stopped,
    /// The reconciler ended by itself: the process must exit so another replica leads.
    EndedOnItsOwn,
}

/// Runs `leading` each time `elector` wins the Lease, until `shutdown`. A leader whose work
/// ends by itself gives the Lease up at once and returns `Led::EndedOnItsOwn`. The elector
/// releases the Lease as it stops, so a standby takes over without waiting for it to expire.
pub async fn lead_when_elected(
    elector: Elector,
    leading: Leading,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) -> Led {
    let (leading_tx, mut is_leader) = watch::channel(false);
    let (stop_elector, elector_stop) = watch::channel(false);
    let lease_task = tokio::spawn(elector.run(leading_tx, elector_stop));
    metrics.set_leader(false);
    ready.set_caches_synced(true); // a standby has nothing to sync
    let mut led = Led::Stopped;
    loop {
        if *is_leader.borrow_and_update() {
            info!(identity = %leading.identity, "became leader");
            metrics.set_leader(true);
            led = lead_while_leader(&leading, &mut is_leader, &mut shutdown).await;
            metrics.set_leader(false);
            ready.set_caches_synced(true);
            if led == Led::EndedOnItsOwn {
                break;
            }
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            changed = is_leader.changed() => if changed.is_err() { break },
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    let _ = stop_elector.send(true);
    if let Err(e) = lease_task.await {
        warn!(error = %e, "lease task failed");
    }
    led
}

/// One term of leadership: the leader's work, until it ends by itself, leadership lapses or
/// the process is told to stop.
async fn lead_while_leader(
    leading: &Leading,
    is_leader: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
) -> Led {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut work = tokio::spawn(leading.clone().lead(stop_rx));
    let ended = tokio::select! {
        _ = is_leader.wait_for(|l| !*l) => {
            warn!("leadership lapsed or lost: stopping all leader work");
            None
        }
        _ = shutdown.wait_for(|s| *s) => None,
        result = &mut work => Some(result),
    };
    let _ = stop_tx.send(true);
    if ended.is_none() {
        let _ = work.await;
    }
    match ended {
        None | Some(Ok(Led::Stopped)) => Led::Stopped,
        // A leader whose work stopped must not keep the Lease: give it up and exit, so a
        // standby (or a restarted process) takes over.
        Some(result) => {
            warn!(
                ?result,
                "the leader's work ended unexpectedly; releasing the lease"
            );
            Led::EndedOnItsOwn
        }
    }
}
