//! Kubernetes Events about sealed objects (Sealant's and Bitnami's): one per write, and a
//! Warning per change of state.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use tracing::warn;

use crate::fence::Fence;

/// Publishes `event` about `regarding`, unless `fence` is closed. Events are grouped into
/// series by reason and action, so each outcome gets its own action (a "created" series must
/// not go on to count later updates).
pub async fn publish(
    client: &Client,
    reporter: &Reporter,
    fence: &Fence,
    event: Event,
    regarding: &ObjectReference,
) {
    if fence.check().is_err() {
        return;
    }
    // A Recorder per event: a long-lived one keeps every event it sent for six minutes (to
    // aggregate repeats into series), so a bulk apply of 20,000 objects holds 20,000 events.
    // Sealant sends one event per write or change of state: there is little to aggregate.
    let recorder = Recorder::new(client.clone(), reporter.clone());
    if let Err(e) = recorder.publish(&event, regarding).await {
        warn!(error = %e, "cannot publish event");
    }
}
