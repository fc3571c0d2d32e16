//! Wiring: the HTTP server and key watch on every replica; the reconciler, key renewal and
//! recipient publishing only on the leader. SIGTERM stops everything and releases the Lease.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use sealant_core::crd::SealedSecret;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::backoff::watch_backoff;
use crate::cli::RunArgs;
use crate::fence::Fence;
use crate::http::{HttpState, router, serve};
use crate::keys::{ClusterKeys, renew_keys, watch_keys};
use crate::leadership::{Led, lead_when_elected};
use crate::lease::{Elector, LeaseTiming};
use crate::metrics::Metrics;
use crate::reconcile::{Context, error_policy, field_manager, reconcile};
use crate::resync;
use crate::sealed_cache;
use crate::state::{Readiness, SharedKeys};

pub async fn run(
    client: Client,
    args: RunArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let namespace = args.common.namespace.clone();
    // Checked before anything starts: a bad combination must not half-run.
    let timing = LeaseTiming::new(
        args.lease_duration,
        args.lease_renew_deadline,
        args.lease_retry_period,
    )?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let manager = field_manager(&identity);
    let fence = if args.leader_elect {
        Fence::elected(timing.renew_deadline)
    } else {
        Fence::unfenced()
    };
    let keys = SharedKeys::default();
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(Readiness::default());
    let keys_changed = Arc::new(Notify::new());

    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    info!(addr = %args.listen_addr, "HTTP server listening");
    let http = HttpState::new(
        keys.clone(),
        metrics.clone(),
        ready.clone(),
        args.verify_rate,
    )
    .with_reencrypt_rate(args.reencrypt_rate)
    .with_max_bodies_in_flight(args.max_bodies_in_flight);
    let http_task = tokio::spawn(serve(listener, router(http), wait_for(shutdown.clone())));

    let key_watch = tokio::spawn(watch_keys(
        client.clone(),
        namespace.clone(),
        keys.clone(),
        metrics.clone(),
        ready.clone(),
        keys_changed.clone(),
    ));

    let leading = Leading {
        client: client.clone(),
        args: args.clone(),
        keys: keys.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        keys_changed: keys_changed.clone(),
        identity: identity.clone(),
        field_manager: manager.clone(),
        fence: fence.clone(),
    };
    let led = if args.leader_elect {
        let elector = Elector::new(
            client.clone(),
            &namespace,
            &args.lease_name,
            &identity,
            &manager,
            timing,
            fence.clone(),
        );
        elector.probe().await?;
        info!(%identity, lease = args.lease_name, "waiting for leadership");
        lead_when_elected(elector, leading, metrics, ready, shutdown.clone()).await
    } else {
        metrics.set_leader(true);
        leading.lead(shutdown.clone()).await
    };
    key_watch.abort();
    if led == Led::EndedOnItsOwn {
        anyhow::bail!("the reconciler stopped unexpectedly");
    }
    http_task.await??;
    Ok(())
}

/// How long a stop waits for reconciles in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the leader runs, until `stop`.
#[derive(Clone)]
pub struct Leading {
    client: Client,
    args: RunArgs,
    keys: SharedKeys,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    keys_changed: Arc<Notify>,
    pub identity: String,
    /// `sealant-controller/<identity>`, on every write.
    field_manager: String,
    /// Closed once leadership lapses: every write checks it.
    fence: Fence,
}

impl Leading {
    /// Runs the leader's work until `stop`, or until the reconciler ends by itself.
    pub async fn lead(self, stop: watch::Receiver<bool>) -> Led {
        let cluster_keys = Arc::new(ClusterKeys {
            client: self.client.clone(),
            namespace: self.args.common.namespace.clone(),
            field_manager: self.field_manager.clone(),
            fence: self.fence.clone(),
        });
        let renewal = self.spawn_renewal(cluster_keys.clone());
        let publisher = self.spawn_publisher(cluster_keys);
        // Keys first: reconciling against an empty ring would flip every status to NoKey.
        self.wait_for_keys(stop.clone()).await;
        let mut reconciling = tokio::spawn({
            let this = self.clone();
            let stop = stop.clone();
            async move { this.reconcile_until(stop).await }
        });
        let bitnami = self.args.bitnami.then(|| {
            tokio::spawn(crate::bitnami::reconcile_until(
                self.bitnami_settings(),
                stop.clone(),
            ))
        });
        // Renewal and publishing stop the moment leadership ends, before in-flight reconciles
        // drain: a former leader must not rotate keys alongside the new one.
        let mut stop = stop;
        let led = tokio::select! {
            _ = stop.wait_for(|s| *s) => Led::Stopped,
            result = &mut reconciling => {
                warn!(?result, "the reconciler ended on its own");
                Led::EndedOnItsOwn
            }
        };
        renewal.abort();
        publisher.abort();
        if let Some(bitnami) = bitnami {
            bitnami.abort();
        }
        if led == Led::Stopped {
            // In-flight reconciles may finish, briefly: with the API server unreachable, the
            // runtime would hold a stop forever (its store never becomes ready).
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut reconciling)
                .await
                .is_err()
            {
                warn!("reconciles still running at shutdown; abandoning them");
                reconciling.abort();
            }
        }
        led
    }

    fn spawn_renewal(&self, store: Arc<ClusterKeys>) -> tokio::task::JoinHandle<()> {
        let wake = self.keys_changed.clone();
        let period = self.args.key_renew_period;
        // A cutoff in the future would make every new key "too old": treat it as now.
        let start = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(1);
        let cutoff = self.args.key_cutoff_time.map(|c| c.min(start));
        tokio::spawn(
            async move { renew_keys(&*store, period, cutoff, Timestamp::now, &wake).await },
        )
    }

    /// Publishes the recipients, again whenever the keys change.
    fn spawn_publisher(&self, store: Arc<ClusterKeys>) -> tokio::task::JoinHandle<()> {
        let keys = self.keys.clone();
        let wake = self.keys_changed.clone();
        tokio::spawn(async move {
            loop {
                let notified = wake.notified();
                if let Err(e) = store.publish(&keys.get().set).await {
                    warn!(error = %e, "cannot publish recipients; retrying in 10s");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    continue;
                }
                notified.await;
            }
        })
    }

    /// Until the keys are loaded or `stop`.
    async fn wait_for_keys(&self, mut stop: watch::Receiver<bool>) {
        while !self.ready.keys_loaded() && !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn bitnami_settings(&self) -> crate::bitnami::Settings {
        crate::bitnami::Settings {
            client: self.client.clone(),
            namespace: self.args.common.namespace.clone(),
            namespaces: self.args.namespaces.clone(),
            workers: self.args.workers,
            allowed_types: self.args.allow_secret_types.clone(),
            field_manager: self.field_manager.clone(),
            fence: self.fence.clone(),
        }
    }

    async fn reconcile_until(&self, stop: watch::Receiver<bool>) {
        self.ready.set_caches_synced(false);
        let reporter = Reporter {
            controller: "sealant-controller".into(),
            instance: Some(self.identity.clone()),
        };
        let namespaces: Vec<Option<String>> = if self.args.namespaces.is_empty() {
            vec![None]
        } else {
            self.args.namespaces.iter().cloned().map(Some).collect()
        };
        let mut controllers = Vec::new();
        for ns in namespaces {
            let (sealed_api, secret_api): (Api<SealedSecret>, Api<PartialObjectMeta<Secret>>) =
                match &ns {
                    Some(ns) => (
                        Api::namespaced(self.client.clone(), ns),
                        Api::namespaced(self.client.clone(), ns),
                    ),
                    None => (Api::all(self.client.clone()), Api::all(self.client.clone())),
                };
            let ctx = Arc::new(
                Context::new(
                    self.client.clone(),
                    self.keys.clone(),
                    self.metrics.clone(),
                    reporter.clone(),
                    self.args.resync_period,
                )
                .allowing_types(self.args.allow_secret_types.clone())
                .writing_as(self.field_manager.clone(), self.fence.clone()),
            );
            let mut config = watcher::Config::default();
            if let Some(selector) = &self.args.label_selector {
                config = config.labels(selector);
            }
            // SealedSecrets are reconciled when their generation changes (spec edits), not on
            // the echo of this controller's own status writes; the cache is hollow (see
            // sealed_cache).
            let (reader, writer) = reflector::store();
            let sealed_changes = sealed_cache::follow(
                watcher(sealed_api, config),
                writer,
                ctx.written.clone(),
                ctx.metrics.clone(),
            );
            // No backoff of its own: the controller's trigger backoff covers both watches.
            // Api<PartialObjectMeta<Secret>>: only metadata is watched, so memory does not
            // grow with Secret sizes.
            let secret_changes = sealed_cache::secret_triggers(
                watcher(secret_api, watcher::Config::default()),
                ctx.versions.clone(),
                ctx.written.clone(),
            );
            let keys_changed = self.keys_changed.clone();
            let key_changes = stream::unfold(keys_changed, |n| async move {
                n.notified().await;
                Some(((), n))
            });
            // Unbounded, a bulk apply started one reconcile per object at once, and each opened
            // its own TLS connection: 9,500 connections after 1,000 creates, most of the API
            // server's CPU and of the controller's memory.
            let resync = resync::due(reader.clone(), self.args.resync_period);
            let controller = Controller::for_stream(sealed_changes, reader)
                .with_config(controller::Config::default().concurrency(self.args.workers))
                .watches_stream(secret_changes, |secret| {
                    let name = secret.name_any();
                    secret
                        .namespace()
                        .map(|ns| ObjectRef::<SealedSecret>::new(&name).within(&ns))
                })
                .reconcile_all_on(key_changes)
                .reconcile_on(resync)
                .trigger_backoff(watch_backoff())
                .graceful_shutdown_on(wait_for(stop.clone()));
            tokio::spawn(mark_ready_when_synced(
                controller.store(),
                self.ready.clone(),
            ));
            controllers.push(
                controller
                    .run(reconcile, error_policy, ctx.clone())
                    .for_each(|result| async move {
                        match result {
                            Ok(_) => {}
                            // A Secret with no SealedSecret of its name: nothing to do.
                            Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                            Err(e) => warn!(error = %e, "controller"),
                        }
                    }),
            );
        }
        futures::future::join_all(controllers).await;
    }
}

/// Sets the readiness once the SealedSecret cache has synced. Re-checks on a timer: the
/// store's ready notification was seen to be lost (kube-runtime 5.0), leaving /readyz false
/// until something else polled it.
async fn mark_ready_when_synced(store: Store<SealedSecret>, ready: Arc<Readiness>) {
    loop {
        match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                info!(objects = store.state().len(), "SealedSecret cache synced");
                ready.set_caches_synced(true);
                break;
            }
            Ok(Err(e)) => {
                warn!(error = %e, "SealedSecret cache never synced");
                break;
            }
            Err(_) => {}
        }
    }
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "seal-controller".into());
    format!("{}-{}", host.trim(), std::process::id())
}
