//! Wiring: the HTTP server and key watch on every replica; the reconciler, key renewal and
//! recipient publishing only on the leader. SIGTERM stops everything and releases the Lease.

use std::sync::Arc;
use std::time::Duration;

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
use crate::controllers;
use crate::fence::Fence;
use crate::field_manager::field_manager;
use crate::http::{HttpState, router, serve};
use crate::keys::{ClusterKeys, renew_keys, watch_keys};
use crate::leadership::{Led, lead_when_elected};
use crate::lease::{Elector, LeaseTiming};
use crate::metrics::Metrics;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::resync;
use crate::state::{Readiness, SharedKeys};
use crate::triggers;

pub async fn run(
    client: Client,
    args: RunArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Checked before anything starts: a bad combination must not half-run.
    let timing = LeaseTiming::new(
        args.lease_duration,
        args.lease_renew_deadline,
        args.lease_retry_period,
    )?;
    let leading = Leading::new(client, args, &timing);
    let http = HttpState::new(
        leading.keys.clone(),
        leading.metrics.clone(),
        leading.ready.clone(),
        leading.args.verify_rate,
    )
    .with_reencrypt_rate(leading.args.reencrypt_rate)
    .with_max_bodies_in_flight(leading.args.max_bodies_in_flight);
    let http_task = spawn_http(&leading.args, http, shutdown.clone()).await?;

    let key_watch = tokio::spawn(watch_keys(
        leading.client.clone(),
        leading.args.common.namespace.clone(),
        leading.keys.clone(),
        leading.metrics.clone(),
        leading.ready.clone(),
        leading.keys_changed.clone(),
    ));
    let led = leading.elect_and_lead(timing, shutdown).await?;
    key_watch.abort();
    if led == Led::EndedOnItsOwn {
        anyhow::bail!("the reconciler stopped unexpectedly");
    }
    http_task.await??;
    Ok(())
}

/// Serves the HTTP endpoints on `--listen-addr` until `shutdown`. Binding fails before anything
/// else starts.
async fn spawn_http(
    args: &RunArgs,
    http: HttpState,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    info!(addr = %args.listen_addr, "HTTP server listening");
    let stopped = controllers::stopped(shutdown);
    Ok(tokio::spawn(serve(listener, router(http), stopped)))
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
    /// Nothing started yet: the keys, metrics and readiness every replica shares, and who it is.
    fn new(client: Client, args: RunArgs, timing: &LeaseTiming) -> Leading {
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let fence = if args.leader_elect {
            Fence::elected(timing.renew_deadline)
        } else {
            Fence::unfenced()
        };
        Leading {
            client,
            keys: SharedKeys::default(),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(Readiness::default()),
            keys_changed: Arc::new(Notify::new()),
            field_manager: field_manager(&identity),
            identity,
            fence,
            args,
        }
    }

    /// With `--leader-elect`, leads while this replica holds the Lease, until `shutdown`;
    /// otherwise leads at once.
    async fn elect_and_lead(
        self,
        timing: LeaseTiming,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Led> {
        if !self.args.leader_elect {
            self.metrics.set_leader(true);
            return Ok(self.lead(shutdown).await);
        }
        let elector = Elector::new(
            self.client.clone(),
            &self.args.common.namespace,
            &self.args.lease_name,
            &self.identity,
            &self.field_manager,
            timing,
            self.fence.clone(),
        );
        elector.probe().await?;
        info!(identity = %self.identity, lease = self.args.lease_name, "waiting for leadership");
        let (metrics, ready) = (self.metrics.clone(), self.ready.clone());
        Ok(lead_when_elected(elector, self, metrics, ready, shutdown).await)
    }

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
            metrics: self.metrics.clone(),
            reporter: self.reporter(),
        }
    }

    /// Who publishes the events: this replica.
    fn reporter(&self) -> Reporter {
        Reporter {
            controller: "sealant-controller".into(),
            instance: Some(self.identity.clone()),
        }
    }

    async fn reconcile_until(&self, stop: watch::Receiver<bool>) {
        self.ready.set_caches_synced(false);
        let this = self;
        controllers::per_namespace(&self.args.namespaces, |ns| {
            this.reconcile_in(ns, stop.clone())
        })
        .await;
    }

    /// One controller: the SealedSecrets of `namespace` (None: all), until `stop`.
    async fn reconcile_in(&self, namespace: Option<String>, stop: watch::Receiver<bool>) {
        let (sealed_api, secret_api): (Api<SealedSecret>, Api<PartialObjectMeta<Secret>>) =
            match &namespace {
                Some(ns) => (
                    Api::namespaced(self.client.clone(), ns),
                    Api::namespaced(self.client.clone(), ns),
                ),
                None => (Api::all(self.client.clone()), Api::all(self.client.clone())),
            };
        let ctx = Arc::new(self.context());
        let mut config = watcher::Config::default();
        if let Some(selector) = &self.args.label_selector {
            config = config.labels(selector);
        }
        // SealedSecrets are reconciled when their generation changes (spec edits), not on
        // the echo of this controller's own status writes; the store is hollow (see
        // triggers).
        let (reader, writer) = reflector::store();
        let sealed_changes = triggers::follow(
            watcher(sealed_api, config),
            writer,
            ctx.last_writes.clone(),
            ctx.metrics.clone(),
        );
        // No backoff of its own: the controller's trigger backoff covers both watches.
        // Api<PartialObjectMeta<Secret>>: only metadata is watched, so memory does not
        // grow with Secret sizes.
        let secret_changes = triggers::secret_triggers(
            watcher(secret_api, watcher::Config::default()),
            ctx.versions.clone(),
            ctx.last_writes.clone(),
        );
        let resync = resync::due(reader.clone(), self.args.resync_period);
        // Unbounded, a bulk apply started one reconcile per object at once, and each opened
        // its own TLS connection: 9,500 connections after 1,000 creates, most of the API
        // server's CPU and of the controller's memory.
        let controller = Controller::for_stream(sealed_changes, reader)
            .with_config(controller::Config::default().concurrency(self.args.workers))
            .watches_stream(secret_changes, |secret| {
                let name = secret.name_any();
                secret
                    .namespace()
                    .map(|ns| ObjectRef::<SealedSecret>::new(&name).within(&ns))
            })
            .reconcile_all_on(controllers::notifications(self.keys_changed.clone()))
            .reconcile_on(resync)
            .trigger_backoff(watch_backoff())
            .graceful_shutdown_on(controllers::stopped(stop));
        tokio::spawn(mark_ready_when_synced(
            controller.store(),
            self.ready.clone(),
        ));
        let results = controller.run(reconcile, error_policy, ctx);
        controllers::drain(results, "controller").await;
    }

    /// What every reconcile of the SealedSecrets of one namespace shares.
    fn context(&self) -> Context {
        Context::new(
            self.client.clone(),
            self.keys.clone(),
            self.metrics.clone(),
            self.reporter(),
            self.args.resync_period,
        )
        .allowing_types(self.args.allow_secret_types.clone())
        .writing_as(self.field_manager.clone(), self.fence.clone())
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

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "seal-controller".into());
    format!("{}-{}", host.trim(), std::process::id())
}
