//! Wiring: the HTTP server and key watch on every replica; the reconciler, key renewal and
//! recipient publishing only on the leader. SIGTERM stops everything and releases the Lease.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
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
    if args.leader_elect {
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
        let (leading_tx, mut is_leader) = watch::channel(false);
        let (stop_elector, elector_stop) = watch::channel(false);
        let lease_task = tokio::spawn(elector.run(leading_tx, elector_stop));
        let mut shutdown = shutdown.clone();
        info!(%identity, lease = args.lease_name, "waiting for leadership");
        metrics.set_leader(false);
        ready.set_caches_synced(true); // a standby has nothing to sync
        loop {
            if *is_leader.borrow_and_update() {
                info!(%identity, "became leader");
                metrics.set_leader(true);
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
                // `lead` returning true means it stopped because it was told to.
                let ended = ended.filter(|r| !matches!(r, Ok(true)));
                metrics.set_leader(false);
                ready.set_caches_synced(true);
                // A leader whose work stopped must not keep the Lease: give it up and exit,
                // so a standby (or a restarted process) takes over.
                if let Some(result) = ended {
                    warn!(
                        ?result,
                        "the leader's work ended unexpectedly; releasing the lease"
                    );
                    let _ = stop_elector.send(true);
                    let _ = lease_task.await;
                    key_watch.abort();
                    anyhow::bail!("the reconciler stopped unexpectedly");
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
        // The elector releases the Lease as it stops, so a standby takes over without
        // waiting for it to expire.
        let _ = stop_elector.send(true);
        if let Err(e) = lease_task.await {
            warn!(error = %e, "lease task failed");
        }
    } else {
        metrics.set_leader(true);
        if !leading.lead(shutdown.clone()).await {
            key_watch.abort();
            anyhow::bail!("the reconciler stopped unexpectedly");
        }
    }
    key_watch.abort();
    http_task.await??;
    Ok(())
}

/// How long a stop waits for reconciles in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the leader runs, until `stop`.
#[derive(Clone)]
struct Leading {
    client: Client,
    args: RunArgs,
    keys: SharedKeys,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    keys_changed: Arc<Notify>,
    identity: String,
    /// `sealant-controller/<identity>`, on every write.
    field_manager: String,
    /// Closed once leadership lapses: every write checks it.
    fence: Fence,
}

impl Leading {
    /// Returns false if the reconciler ended by itself rather than on `stop`.
    async fn lead(self, stop: watch::Receiver<bool>) -> bool {
        let namespace = self.args.common.namespace.clone();
        let cluster_keys = Arc::new(ClusterKeys {
            client: self.client.clone(),
            namespace: namespace.clone(),
            field_manager: self.field_manager.clone(),
            fence: self.fence.clone(),
        });
        let renewal = {
            let store = cluster_keys.clone();
            let wake = self.keys_changed.clone();
            let period = self.args.key_renew_period;
            // A cutoff in the future would make every new key "too old": treat it as now.
            let start = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(1);
            let cutoff = self.args.key_cutoff_time.map(|c| c.min(start));
            tokio::spawn(
                async move { renew_keys(&*store, period, cutoff, Timestamp::now, &wake).await },
            )
        };
        let publisher = {
            let store = cluster_keys.clone();
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
        };
        // Keys first: reconciling against an empty ring would flip every status to NoKey.
        let mut waiting = stop.clone();
        while !self.ready.keys_loaded() && !*waiting.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = waiting.changed() => {}
            }
        }
        let reconciling = tokio::spawn({
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
        let mut reconciling = reconciling;
        let ended_early = tokio::select! {
            _ = stop.wait_for(|s| *s) => false,
            result = &mut reconciling => { warn!(?result, "the reconciler ended on its own"); true }
        };
        renewal.abort();
        publisher.abort();
        if let Some(bitnami) = bitnami {
            bitnami.abort();
        }
        if !ended_early {
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
        !ended_early
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
            // Any change to a Secret (edit, delete, a managed annotation) re-runs the
            // SealedSecret of the same name: drift is corrected within seconds. Only metadata
            // is watched, so memory does not grow with Secret sizes; the echo of the
            // controller's own writes is recognised by its resourceVersion and ignored.
            let versions = ctx.versions.clone();
            let written = ctx.written.clone();
            let remembered = ctx.written.clone();
            // No backoff of its own: the controller's trigger backoff covers both watches.
            let secret_changes = watcher(secret_api, watcher::Config::default())
                .map_ok(move |event| {
                    // A Secret deleted while the watch was down (an API server restart)
                    // shows up only as missing from the re-list: re-run its SealedSecret too.
                    let mut vanished = versions.observe(&event);
                    if matches!(event, watcher::Event::InitDone) {
                        // Written and deleted within one watch gap: the watch never saw it.
                        for missing in remembered.missing_from(&versions) {
                            if !vanished.contains(&missing) {
                                vanished.push(missing);
                            }
                        }
                    }
                    let vanished = vanished.into_iter().map(gone);
                    let touched = match event {
                        watcher::Event::Apply(s)
                        | watcher::Event::InitApply(s)
                        | watcher::Event::Delete(s) => Some(s),
                        watcher::Event::Init | watcher::Event::InitDone => None,
                    };
                    stream::iter(touched.into_iter().chain(vanished).map(Ok))
                })
                .try_flatten()
                .try_filter(move |secret| {
                    // A stand-in for a vanished Secret has no version: never an echo.
                    let echo = secret.resource_version().is_some_and(|rv| {
                        written.is_echo(
                            &secret.namespace().unwrap_or_default(),
                            &secret.name_any(),
                            &rv,
                        )
                    });
                    std::future::ready(!echo)
                });
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
            let store = controller.store();
            let ready = self.ready.clone();
            tokio::spawn(async move {
                // Re-check on a timer: the store's ready notification was seen to be lost
                // (kube-runtime 5.0), leaving /readyz false until something else polled it.
                loop {
                    match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready())
                        .await
                    {
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
            });
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

/// Stands in for a Secret that is gone: only its namespace and name.
fn gone((namespace, name): (String, String)) -> PartialObjectMeta<Secret> {
    let mut meta = PartialObjectMeta::<Secret>::default();
    meta.metadata.namespace = Some(namespace);
    meta.metadata.name = Some(name);
    meta
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "seal-controller".into());
    format!("{}-{}", host.trim(), std::process::id())
}
