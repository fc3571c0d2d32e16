//! Running kube-runtime controllers, the same way for Sealant's and Bitnami's SealedSecrets:
//! one per watched namespace (`--namespace`, repeatable; none: one for all), until a stop.

use std::future::Future;
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use kube::Resource;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::{Notify, watch};
use tracing::warn;

/// Runs `controller` for each watched namespace (`None`: all of them), until all have ended.
pub async fn per_namespace<F, Fut>(namespaces: &[String], controller: F)
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = ()>,
{
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    futures::future::join_all(scopes.into_iter().map(controller)).await;
}

/// Drives a controller's reconciles to the end, logging the errors the error policy did not
/// take (`what` names the controller).
pub async fn drain<K, E>(
    results: impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>>,
    what: &'static str,
) where
    K: Resource,
    E: std::error::Error + 'static,
{
    results
        .for_each(|result| async move {
            match result {
                // A Secret with no SealedSecret of its name: nothing to do.
                Ok(_) | Err(controller::Error::ObjectNotFound(_)) => {}
                Err(e) => warn!(error = %e, "{what}"),
            }
        })
        .await;
}

/// A unit each time `notify` fires (for `reconcile_all_on`).
pub fn notifications(notify: Arc<Notify>) -> impl Stream<Item = ()> + Send {
    stream::unfold(notify, |n| async move {
        n.notified().await;
        Some(((), n))
    })
}

/// Resolves once `stop` says so.
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
