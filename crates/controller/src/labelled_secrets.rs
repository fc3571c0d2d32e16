//! A labelled set of Secrets in one namespace, as the watch sees it: the controller's keys
//! (keys.rs) and the imported Bitnami keys (bitnami.rs) are both read this way.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};

use crate::backoff::watch_backoff;

/// Every Secret in `namespace` matching `selector`, whole: once the first list is in, and
/// again after every change. Watch errors pass through (the watch retries by itself, with
/// [`watch_backoff`]), for the caller to log.
pub fn watch_labelled(
    client: Client,
    namespace: &str,
    selector: &str,
) -> impl Stream<Item = Result<Vec<Arc<Secret>>, watcher::Error>> + Send + use<> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().labels(selector);
    let mut listed = false;
    reflector(writer, watcher(api, config))
        .backoff(watch_backoff())
        .filter_map(move |event| {
            let secrets = match event {
                Err(e) => Some(Err(e)),
                // Until the first full list is in, the store holds only part of the set.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Ok(watcher::Event::InitDone) => {
                    listed = true;
                    Some(Ok(store.state()))
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    listed.then(|| Ok(store.state()))
                }
            };
            std::future::ready(secrets)
        })
}
