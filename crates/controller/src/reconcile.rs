//! The reconciler: one SealedSecret in, its Secret written only when something differs, and
//! a status (and event) that says what happened. The decisions are sealant_core::reconcile's.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{GetParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use sealant_core::conditions::{Health, conditions, status_changed, status_digest};
use sealant_core::convert::{ConvertError, exposed_to, unseal_in_cluster};
use sealant_core::crd::{SealedSecret, SealedSecretStatus};
use sealant_core::reason::Reason;
use sealant_core::reconcile::{desired_secret, plan, type_refusal};
use tracing::{info, warn};

use crate::events;
use crate::fence::Fence;
use crate::field_manager::MANAGER;
use crate::memory::{LastWrites, SecretVersions, Seen};
use crate::metrics::Metrics;
use crate::outcome::{Error, Outcome};
use crate::retry::Retries;
use crate::secret_write::SecretWriter;
use crate::state::{KeysView, SharedKeys};
use crate::triggers::is_hollow;

pub struct Context {
    pub client: Client,
    pub keys: SharedKeys,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// Every object is re-checked this often (see resync); 0 when that is off.
    pub resync: Duration,
    /// Fed by the Secret metadata watch.
    pub versions: Arc<SecretVersions>,
    pub last_writes: Arc<LastWrites>,
    /// Restricted Secret types an admin allows templates to use (`--allow-secret-type`).
    pub allowed_types: Vec<String>,
    /// The field manager of every write (see `field_manager`).
    pub field_manager: String,
    /// Checked before every write: a replica whose leadership lapsed writes nothing.
    pub fence: Fence,
    /// Failed reconciles in a row, per SealedSecret, for the retry backoff.
    pub retries: Retries,
}

impl Context {
    /// How long the memory of a write or confirmation is trusted without asking the API:
    /// half a resync, so each re-check asks; 5 minutes when resyncs are off.
    fn trust_memory_for(&self) -> Duration {
        if self.resync.is_zero() {
            Duration::from_secs(300)
        } else {
            self.resync / 2
        }
    }

    pub fn new(
        client: Client,
        keys: SharedKeys,
        metrics: Arc<Metrics>,
        reporter: Reporter,
        resync: Duration,
    ) -> Context {
        Context {
            client,
            keys,
            metrics,
            reporter,
            resync,
            versions: Arc::default(),
            last_writes: Arc::default(),
            allowed_types: Vec::new(),
            field_manager: MANAGER.into(),
            fence: Fence::unfenced(),
            retries: Retries::default(),
        }
    }

    /// Writes as `field_manager`, only while `fence` allows.
    pub fn writing_as(mut self, field_manager: String, fence: Fence) -> Context {
        self.field_manager = field_manager;
        self.fence = fence;
        self
    }

    /// Lets templates use these restricted Secret types (see `RESTRICTED_SECRET_TYPES`).
    pub fn allowing_types(mut self, types: Vec<String>) -> Context {
        self.allowed_types = types;
        self
    }
}

/// Why a SealedSecret is not turned into a Secret.
enum Refused {
    Type(String),
    Open(ConvertError),
}

pub async fn reconcile(cached: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.time_reconcile();
    let namespace = cached.namespace().ok_or(Error::NoNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let view = ctx.keys.get();
    let Some(sealed) = load_whole(&ctx, &secrets, cached, view.epoch).await? else {
        return Ok(Action::await_change());
    };
    // Until this reconcile is through, nothing may be taken as in place.
    let pass = ctx.last_writes.begin(&sealed);
    let opened = open_and_sync(&ctx, &secrets, &sealed, &view).await?;
    let exposed_keys = (!opened.exposed.is_empty()).then(|| opened.exposed.join(", "));
    let changed = report_outcome(&ctx, &sealed, &opened).await?;
    // In place: the next reconcile of this generation needs neither the object nor its keys.
    let in_place = !matches!(opened.outcome, Outcome::Failed { .. });
    pass.finish(in_place.then_some(view.epoch));
    announce(&ctx, &sealed, &opened.outcome, changed).await?;
    if changed && let Some(keys) = exposed_keys {
        announce_exposed(&ctx, &sealed, &keys).await;
    }
    ctx.retries.succeeded(&namespace, &sealed.name_any());
    Ok(Action::await_change())
}

/// The whole object to reconcile: the cached copy, or for a hollow one (see `is_hollow`) the
/// object read from the API. None when there is nothing to do: the Secret is still in place,
/// or the object is gone (its watch event is on its way).
async fn load_whole(
    ctx: &Context,
    secrets: &Api<Secret>,
    cached: Arc<SealedSecret>,
    epoch: u64,
) -> Result<Option<Arc<SealedSecret>>, Error> {
    if !is_hollow(&cached) {
        return Ok(Some(cached));
    }
    if still_in_place(ctx, secrets, &cached, epoch).await? {
        return Ok(None);
    }
    Ok(read_whole(ctx, &cached).await?.map(Arc::new))
}

/// What opening the SealedSecret and syncing its Secret came to.
struct Opened {
    outcome: Outcome,
    /// The keys that opened it (empty when it was not opened).
    opened_with: Vec<String>,
    /// Compromised keys that open it too.
    exposed: Vec<String>,
}

/// Opens the SealedSecret (unless its type is refused) and brings its Secret in line. A
/// failed request about the Secret is reported (see `retrying`) and returned as the error.
async fn open_and_sync(
    ctx: &Context,
    secrets: &Api<Secret>,
    sealed: &SealedSecret,
    view: &KeysView,
) -> Result<Opened, Error> {
    let opening = match type_refusal(sealed, &ctx.allowed_types) {
        // Refused before anything is opened: the plaintext never leaves the ciphertext.
        Some(message) => Err(Refused::Type(message)),
        None => unseal_in_cluster(sealed, &view.ring, &view.compromised).map_err(Refused::Open),
    };
    let unsealed = match opening {
        Ok(unsealed) => unsealed,
        Err(refused) => {
            let (reason, message) = match refused {
                Refused::Type(message) => (Reason::TypeNotAllowed, message),
                Refused::Open(error) => (Reason::of_opening(&error), error.to_string()),
            };
            return Ok(Opened {
                outcome: Outcome::Failed { reason, message },
                opened_with: Vec::new(),
                exposed: Vec::new(),
            });
        }
    };
    let opened_with = unsealed.opened_with.iter().cloned().collect();
    // Still opened (the cluster needs it), but reported: the plaintext is leaked.
    let exposed = if view.exposing.is_empty() {
        Vec::new()
    } else {
        exposed_to(sealed, &view.exposing).into_iter().collect()
    };
    match sync_secret(ctx, secrets, sealed, desired_secret(sealed, &unsealed)).await {
        Ok(outcome) => Ok(Opened {
            outcome,
            opened_with,
            exposed,
        }),
        Err(error) => Err(retrying(ctx, sealed, error, opened_with, exposed).await),
    }
}

/// Counts the outcome and says it in the status (see `report`). True when a status was
/// written, i.e. the state changed.
async fn report_outcome(
    ctx: &Context,
    sealed: &SealedSecret,
    opened: &Opened,
) -> Result<bool, Error> {
    let up_to_date = format!("Secret {} is up to date", sealed.name_any());
    let health = opened.outcome.health(&up_to_date);
    let namespace = sealed.namespace().unwrap_or_default();
    opened.outcome.count(&ctx.metrics, &namespace);
    let (opened_with, exposed) = (opened.opened_with.clone(), opened.exposed.clone());
    report(ctx, sealed, &health, opened_with, exposed).await
}

/// Logs the outcome and publishes its event (see `Outcome::event`). A failure that is not
/// permanent becomes the error, so the error policy retries it with backoff rather than
/// leaving it to the resync.
async fn announce(
    ctx: &Context,
    sealed: &SealedSecret,
    outcome: &Outcome,
    changed: bool,
) -> Result<(), Error> {
    let namespace = sealed.namespace().unwrap_or_default();
    let name = sealed.name_any();
    match outcome {
        Outcome::Written(action) => info!(%namespace, %name, action, "Secret written"),
        Outcome::Failed { reason, message } => {
            warn!(%namespace, %name, %reason, %message, "cannot unseal");
        }
        Outcome::Unchanged => {}
    }
    if let Some(event) = outcome.event(&name, changed) {
        publish(ctx, sealed, event).await;
    }
    outcome.retried(&name)
}

/// Opened, but compromised keys open it too: said once per change of state.
async fn announce_exposed(ctx: &Context, sealed: &SealedSecret, keys: &str) {
    let namespace = sealed.namespace().unwrap_or_default();
    let name = sealed.name_any();
    warn!(%namespace, %name, %keys, "opened, but a compromised key opens it too");
    let note = format!(
        "compromised key(s) {keys} can also open this SealedSecret: treat its values as \
         leaked, change them and seal again"
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "Exposed".into(),
        note: Some(note),
        action: "Unseal".into(),
        secondary: None,
    };
    publish(ctx, sealed, event).await;
}

/// Writes the status `health` calls for, unless the object (or this controller's memory of
/// its last write) already says it, and sets the object's condition metrics to match. True
/// when a status was written.
async fn report(
    ctx: &Context,
    sealed: &SealedSecret,
    health: &Health<'_>,
    opened_with: Vec<String>,
    exposed_to: Vec<String>,
) -> Result<bool, Error> {
    let namespace = sealed.namespace().unwrap_or_default();
    let name = sealed.name_any();
    let generation = sealed.metadata.generation;
    let status = SealedSecretStatus {
        observed_generation: generation,
        conditions: conditions(sealed.status.as_ref(), health, generation, Timestamp::now()),
        opened_with,
        exposed_to,
    };
    ctx.metrics.set_object(
        &namespace,
        &name,
        &status.conditions,
        !status.exposed_to.is_empty(),
    );
    // The cached object can predate the status this controller just wrote (its watch event
    // is still on its way): what was written is remembered, so it is not written twice.
    let digest = status_digest(&status);
    if !status_changed(sealed.status.as_ref(), &status)
        || ctx.last_writes.status_written(sealed, digest)
    {
        return Ok(false);
    }
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({ "status": status });
    let params = PatchParams {
        field_manager: Some(ctx.field_manager.clone()),
        ..Default::default()
    };
    ctx.fence.check()?;
    api.patch_status(&name, &params, &Patch::Merge(&patch))
        .await?;
    ctx.last_writes.record_status(sealed, digest);
    Ok(true)
}

/// A request about the Secret failed: counted, and said in the status (`Reconciling`, so
/// kstatus waits rather than calling it done or failed) when the API server takes that
/// write. The error goes on to the error policy, which retries with backoff.
async fn retrying(
    ctx: &Context,
    sealed: &SealedSecret,
    error: Error,
    opened_with: Vec<String>,
    exposed_to: Vec<String>,
) -> Error {
    if !matches!(error, Error::Kube(_)) {
        return error;
    }
    let namespace = sealed.namespace().unwrap_or_default();
    ctx.metrics.unseal_error(&namespace, Reason::ApiError);
    let message = match &error {
        Error::Kube(kube::Error::Api(status)) => format!(
            "the API server answered {} to a request for Secret {}: {}; retrying with backoff",
            status.code,
            sealed.name_any(),
            status.message
        ),
        other => format!("{other}; retrying with backoff"),
    };
    let health = Health::Failed {
        reason: Reason::ApiError,
        message: &message,
    };
    if let Err(e) = report(ctx, sealed, &health, opened_with, exposed_to).await {
        warn!(%namespace, name = %sealed.name_any(), error = %e, "cannot report the retry in the status");
    }
    error
}

/// The whole SealedSecret behind a hollow cached copy: at least as new as the version the
/// watch delivered (`resourceVersion` on a GET), which the API server answers from its watch
/// cache without reading etcd. An API server whose cache is behind that version (another
/// replica behind a load balancer) answers 504 after a wait: then a plain GET. None if gone.
async fn read_whole(ctx: &Context, cached: &SealedSecret) -> Result<Option<SealedSecret>, Error> {
    let api: Api<SealedSecret> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let name = cached.name_any();
    let at = match &cached.metadata.resource_version {
        Some(version) => api.get_with(&name, &GetParams::at(version)).await,
        None => api.get(&name).await,
    };
    let read = match at {
        Err(kube::Error::Api(status)) if status.code == 504 => api.get(&name).await,
        other => other,
    };
    match read {
        Ok(sealed) => Ok(Some(sealed)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Is the Secret still the version the last reconcile of this generation left, under keys
/// that still open it? Answered from the watch and memory; when that memory is old (see
/// `trust_memory_for`), with one read of the Secret's metadata (its version says whether
/// anything touched it, without opening a thing).
async fn still_in_place(
    ctx: &Context,
    secrets: &Api<Secret>,
    sealed: &SealedSecret,
    epoch: u64,
) -> Result<bool, Error> {
    let Some((version, fresh)) =
        ctx.last_writes
            .reconciled_secret(sealed, epoch, ctx.trust_memory_for())
    else {
        return Ok(false);
    };
    let name = sealed.name_any();
    match ctx
        .versions
        .get(&sealed.namespace().unwrap_or_default(), &name)
    {
        Seen::At(seen) if seen != version => return Ok(false),
        Seen::At(_) if fresh => return Ok(true),
        Seen::Absent => return Ok(false),
        Seen::At(_) | Seen::Unknown => {}
    }
    let current = secrets.get_metadata_opt(&name).await?;
    if current.and_then(|s| s.metadata.resource_version).as_ref() != Some(&version) {
        return Ok(false);
    }
    ctx.last_writes.record_secret(sealed, version);
    Ok(true)
}

/// Brings the Secret to `desired`, reading it from the API only when the watch and the
/// controller's memory of its own writes cannot say it is already there.
async fn sync_secret(
    ctx: &Context,
    secrets: &Api<Secret>,
    sealed: &SealedSecret,
    desired: Secret,
) -> Result<Outcome, Error> {
    let namespace = sealed.namespace().unwrap_or_default();
    let name = sealed.name_any();
    let seen = ctx.versions.get(&namespace, &name);
    if let Seen::At(version) = &seen
        && ctx
            .last_writes
            .secret_version(sealed, ctx.trust_memory_for())
            .as_ref()
            == Some(version)
    {
        // Nothing touched it since this generation was written or confirmed.
        return Ok(Outcome::Unchanged);
    }
    if seen == Seen::Absent && !ctx.last_writes.knows_secret(&namespace, &name) {
        // New: create it without reading first. If it exists after all (the watch lags),
        // the create fails with 409 and the usual read-then-plan follows.
        match write(ctx, secrets, sealed, None, desired.clone()).await {
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => {}
            other => return other,
        }
    }
    let existing = secrets.get_opt(&name).await?;
    write(ctx, secrets, sealed, existing.as_ref(), desired).await
}

/// Writes what `plan` decides, and remembers the Secret's resourceVersion afterwards when it
/// is ours (see `LastWrites`).
/// The API server refusing the Secret (400/422: retrying will not help) or the write (403:
/// an RBAC fix or a webhook coming back ends it; `announce` has it retried with backoff) is
/// said in the status; other errors are retried.
async fn write(
    ctx: &Context,
    secrets: &Api<Secret>,
    sealed: &SealedSecret,
    existing: Option<&Secret>,
    desired: Secret,
) -> Result<Outcome, Error> {
    let writer = SecretWriter::new(secrets, &ctx.field_manager, &ctx.fence);
    let written = writer
        .write(plan(sealed, existing, desired), existing)
        .await?;
    let (outcome, version) = written.outcome(existing, || {
        format!(
            "Secret {} exists and is not managed by this SealedSecret: annotate it sealant.dev/managed=true to let Sealant take it over",
            sealed.name_any()
        )
    });
    if let Some(version) = version {
        ctx.last_writes.record_secret(sealed, version);
    }
    Ok(outcome)
}

/// Publishes `event` about `sealed` (see `events::publish`).
async fn publish(ctx: &Context, sealed: &SealedSecret, event: Event) {
    let regarding = sealed.object_ref(&());
    events::publish(&ctx.client, &ctx.reporter, &ctx.fence, event, &regarding).await;
}

/// Kubernetes API errors: try again, sooner the first times (see retry.rs); the next
/// reconcile starts from scratch.
pub fn error_policy(sealed: Arc<SealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = sealed.namespace().unwrap_or_default();
    let name = sealed.name_any();
    let delay = ctx.retries.failed(&namespace, &name);
    warn!(%namespace, %name, %error, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}
