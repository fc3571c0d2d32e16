//! Bitnami mode (`--bitnami`, issue 14 §2): the leader also reconciles Bitnami SealedSecrets
//! (`bitnami.com/v1alpha1`) into the Secrets Bitnami's controller would write, with the RSA
//! keys `import-bitnami-keys` stored, so Bitnami's controller can be removed before the
//! repository is migrated. The decisions are sealant_core::bitnami_secret's; this is the I/O.
//!
//! Every trigger opens the object again (as Bitnami's controller does): the SealedSecret
//! watch passes only spec and annotation changes (not the echo of status writes), a change to
//! a Secret re-runs the object of its name (drift), and a change to the imported keys re-runs
//! everything. Each object's values are tried with the key that opened it last time first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{Predicate, predicates};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sealant_core::bitnami::{
    BitnamiKey, BitnamiKeyRing, BitnamiOpenError, BitnamiSealedSecret, KeyBackupError,
    MigrateError, OpenedItems, open_items, parse_key_backup,
};
use sealant_core::bitnami_secret::{
    IMPORTED_KEY_LABEL, Owner, claim, desired_secret, imported_key, imported_key_secret,
    same_imported_key, status, status_changed,
};
use sealant_core::conditions::Health;
use sealant_core::reason::Reason;
use sealant_core::reconcile::{plan_for, refused_type};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::backoff::watch_backoff;
use crate::controllers;
use crate::events;
use crate::fence::Fence;
use crate::labelled_secrets::watch_labelled;
use crate::metrics::Metrics;
use crate::outcome::{Error, Outcome};
use crate::retry::Retries;
use crate::secret_write::SecretWriter;

/// Bitnami's SealedSecret resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "bitnami.com",
        "v1alpha1",
        sealant_core::bitnami_secret::KIND,
    ))
}

/// Reads a key backup (`-` is stdin). One line naming the file on error.
pub fn read_key_backup(path: &Path) -> anyhow::Result<Vec<BitnamiKey>> {
    let stdin = path == Path::new("-");
    let shown = if stdin {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let text = Zeroizing::new(
        if stdin {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|e| anyhow::anyhow!("{shown}: cannot read the key backup: {e}"))?,
    );
    parse_key_backup(&text, &shown).map_err(|e| match e {
        KeyBackupError::NoKeys => anyhow::anyhow!("{shown}: {e}"),
        // The others start with the line.
        e => anyhow::anyhow!("{shown}:{e}"),
    })
}

/// Writes each key as a Secret in `namespace` unless one holding it is there already.
/// Returns one line per key: what was done.
pub async fn import_keys(
    client: Client,
    namespace: &str,
    keys: &[BitnamiKey],
) -> anyhow::Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let params = PostParams {
        field_manager: Some(crate::field_manager::field_manager("import-bitnami-keys")),
        ..Default::default()
    };
    let mut lines = Vec::new();
    for key in keys {
        let wanted = imported_key_secret(namespace, key);
        let name = wanted.name_any();
        let what = format!("{name} (from {}, {} bits)", key.name(), key.bits());
        let existing = api
            .get_opt(&name)
            .await
            .with_context(|| format!("cannot read Secret {namespace}/{name}"))?;
        match existing {
            Some(existing) if same_imported_key(&existing, &wanted) => {
                lines.push(format!("unchanged {what}"));
            }
            Some(_) => anyhow::bail!(
                "Secret {namespace}/{name} exists but does not hold this key with label {IMPORTED_KEY_LABEL}=true: delete it and import again"
            ),
            None => {
                api.create(&params, &wanted)
                    .await
                    .with_context(|| format!("cannot create Secret {namespace}/{name}"))?;
                lines.push(format!("imported {what}"));
            }
        }
    }
    Ok(lines)
}

/// The imported keys, swapped whole when a key Secret changes.
#[derive(Clone, Default)]
pub struct SharedBitnamiKeys(Arc<RwLock<Arc<BitnamiKeyRing>>>);

impl SharedBitnamiKeys {
    pub fn get(&self) -> Arc<BitnamiKeyRing> {
        self.0.read().expect("bitnami keys lock").clone()
    }

    fn set(&self, ring: BitnamiKeyRing) {
        *self.0.write().expect("bitnami keys lock") = Arc::new(ring);
    }
}

/// What the Bitnami reconciler needs from the controller's settings.
#[derive(Clone)]
pub struct Settings {
    pub client: Client,
    /// The controller's namespace: where the imported keys are.
    pub namespace: String,
    /// Watched namespaces; empty: all.
    pub namespaces: Vec<String>,
    pub workers: u16,
    pub allowed_types: Vec<String>,
    pub field_manager: String,
    pub fence: Fence,
    /// Failures are counted as for Sealant objects (`sealant_unseal_errors_total`).
    pub metrics: Arc<Metrics>,
    /// Who publishes the events.
    pub reporter: Reporter,
}

/// What every reconcile shares.
pub struct Context {
    settings: Settings,
    keys: SharedBitnamiKeys,
    /// namespace/name → the key that opened the object last time.
    opened_with: Mutex<HashMap<String, String>>,
    retries: Retries,
}

impl Context {
    pub fn new(settings: Settings, keys: SharedBitnamiKeys) -> Context {
        Context {
            settings,
            keys,
            opened_with: Mutex::default(),
            retries: Retries::default(),
        }
    }

    /// Forgets which key opened the objects that are gone: deleted, or missing when a re-list
    /// is done (deleted while the watch was down), so the memory holds only objects that
    /// exist. `store` already holds what `event` did to it.
    fn forget_gone(&self, event: &watcher::Event<DynamicObject>, store: &Store<DynamicObject>) {
        let mut opened_with = self.opened_with.lock().expect("opened_with lock");
        match event {
            watcher::Event::Delete(obj) => {
                opened_with.remove(&object_key(obj));
            }
            watcher::Event::InitDone => {
                let ar = api_resource();
                opened_with.retain(|key, _| {
                    key.split_once('/').is_some_and(|(ns, name)| {
                        let object = ObjectRef::new_with(name, ar.clone()).within(ns);
                        store.get(&object).is_some()
                    })
                });
            }
            _ => {}
        }
    }
}

/// How `opened_with` names an object: `namespace/name`.
fn object_key(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Runs until `stop`: the imported-key watch and one controller per watched namespace.
pub async fn reconcile_until(settings: Settings, stop: watch::Receiver<bool>) {
    let keys = SharedBitnamiKeys::default();
    let keys_changed = Arc::new(Notify::new());
    let (listed_tx, mut listed) = watch::channel(false);
    let key_watch = tokio::spawn(watch_imported_keys(
        settings.client.clone(),
        settings.namespace.clone(),
        keys.clone(),
        keys_changed.clone(),
        listed_tx,
    ));
    // Keys first: reconciling with none would flip every status to NoKey.
    let mut waiting = stop.clone();
    tokio::select! {
        _ = listed.wait_for(|l| *l) => {}
        _ = waiting.wait_for(|s| *s) => { key_watch.abort(); return; }
    }
    let ctx = Arc::new(Context::new(settings.clone(), keys));
    info!("Bitnami mode: reconciling bitnami.com/v1alpha1 SealedSecrets");
    controllers::per_namespace(&settings.namespaces, |ns| {
        reconcile_in(ns, ctx.clone(), keys_changed.clone(), stop.clone())
    })
    .await;
    key_watch.abort();
}

/// One controller: the Bitnami SealedSecrets of `namespace` (None: all), until `stop`.
async fn reconcile_in(
    namespace: Option<String>,
    ctx: Arc<Context>,
    keys_changed: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    let ar = api_resource();
    let client = ctx.settings.client.clone();
    let (objects, secrets): (Api<DynamicObject>, Api<PartialObjectMeta<Secret>>) = match &namespace
    {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &ar),
            Api::namespaced(client, ns),
        ),
        None => (Api::all_with(client.clone(), &ar), Api::all(client)),
    };
    let writer = Writer::<DynamicObject>::new(ar.clone());
    let reader = writer.as_reader();
    let (forgetful, store) = (ctx.clone(), reader.clone());
    // Spec (generation) and annotation (scope) changes; not the echo of status writes.
    let changes = watcher(objects, watcher::Config::default())
        .backoff(watch_backoff())
        .reflect(writer)
        .inspect_ok(move |event| forgetful.forget_gone(event, &store))
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    // Api<PartialObjectMeta<Secret>>: a metadata-only watch.
    let secret_changes = watcher(secrets, watcher::Config::default())
        .backoff(watch_backoff())
        .touched_objects();
    let mapped = ar.clone();
    let controller = Controller::for_stream_with(changes, reader, ar)
        .with_config(controller::Config::default().concurrency(ctx.settings.workers))
        .watches_stream_with(
            secret_changes,
            move |secret| {
                let name = secret.name_any();
                secret.namespace().map(|ns| {
                    ObjectRef::<DynamicObject>::new_with(&name, mapped.clone()).within(&ns)
                })
            },
            (),
        )
        .reconcile_all_on(controllers::notifications(keys_changed))
        .graceful_shutdown_on(controllers::stopped(stop));
    let results = controller.run(reconcile, error_policy, ctx);
    controllers::drain(results, "Bitnami controller").await;
}

/// Keeps `shared` equal to the imported key Secrets in `namespace`.
async fn watch_imported_keys(
    client: Client,
    namespace: String,
    shared: SharedBitnamiKeys,
    changed: Arc<Notify>,
    listed: watch::Sender<bool>,
) {
    let selector = format!("{IMPORTED_KEY_LABEL}=true");
    let mut watched = std::pin::pin!(watch_labelled(client, &namespace, &selector));
    let mut last: Option<Vec<String>> = None;
    while let Some(secrets) = watched.next().await {
        let mut secrets = match secrets {
            Ok(secrets) => secrets,
            Err(e) => {
                warn!(error = %e, "Bitnami key watch error; retrying");
                continue;
            }
        };
        secrets.sort_by_key(|s| s.name_any());
        let keys: Vec<BitnamiKey> = secrets
            .iter()
            .filter_map(|s| match imported_key(s) {
                Ok(key) => Some(key),
                Err(e) => {
                    warn!(secret = s.name_any(), error = %e, "ignoring Bitnami key Secret");
                    None
                }
            })
            .collect();
        let names: Vec<String> = keys.iter().map(|k| k.name().to_owned()).collect();
        if last.as_ref() != Some(&names) {
            info!(keys = names.len(), "Bitnami keys loaded");
            shared.set(BitnamiKeyRing::new(keys));
            last = Some(names);
            changed.notify_waiters();
        }
        let _ = listed.send(true);
    }
}

/// Opens the object, brings its Secret in line, and says how that went: in the status, the
/// log, an event (one per write, and a Warning per change of state) and the metrics.
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = obj.name_any();
    let (outcome, opened_with) = match open(&obj, &ctx, &object_key(&obj)) {
        Err(failed) => (failed, Vec::new()),
        Ok((bitnami, opened)) => match sync(&ctx, &obj, &bitnami, &opened).await {
            Ok(outcome) => (outcome, opened.opened_with.clone()),
            Err(e) => {
                if matches!(e, Error::Kube(_)) {
                    ctx.settings
                        .metrics
                        .unseal_error(&namespace, Reason::ApiError);
                }
                return Err(e);
            }
        },
    };
    outcome.count(&ctx.settings.metrics, &namespace);
    let changed = report_outcome(&ctx, &obj, &outcome, &opened_with).await?;
    announce(&ctx, &obj, &outcome, changed, &opened_with).await?;
    ctx.retries.succeeded(&namespace, &name);
    Ok(Action::await_change())
}

/// Brings the object's Secret in line with what opened.
async fn sync(
    ctx: &Context,
    obj: &DynamicObject,
    bitnami: &BitnamiSealedSecret,
    opened: &OpenedItems,
) -> Result<Outcome, Error> {
    let owner = Owner {
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
    };
    let desired = desired_secret(bitnami, &owner, opened);
    let namespace = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.settings.client.clone(), &namespace);
    let existing = secrets.get_opt(&owner.name).await?;
    let settings = &ctx.settings;
    let writer = SecretWriter::new(&secrets, &settings.field_manager, &settings.fence);
    let planned = plan_for(claim(&owner), existing.as_ref(), desired);
    let written = writer.write(planned, existing.as_ref()).await?;
    let (outcome, _) = written.outcome(existing.as_ref(), || {
        format!(
            "Secret {} exists and is not managed by this SealedSecret: annotate it sealedsecrets.bitnami.com/managed=true to let it be taken over",
            owner.name
        )
    });
    Ok(outcome)
}

/// Says the outcome in the status (see `report`). True when the state changed.
async fn report_outcome(
    ctx: &Context,
    obj: &DynamicObject,
    outcome: &Outcome,
    opened_with: &[String],
) -> Result<bool, Error> {
    let up_to_date = format!(
        "Secret {} is up to date; opened with Bitnami key {}",
        obj.name_any(),
        opened_with.join(", ")
    );
    report(ctx, obj, &outcome.health(&up_to_date)).await
}

/// Logs the outcome and publishes its event (see `Outcome::event`). A failure that is not
/// permanent becomes the error, so the error policy retries it with backoff.
async fn announce(
    ctx: &Context,
    obj: &DynamicObject,
    outcome: &Outcome,
    changed: bool,
    opened_with: &[String],
) -> Result<(), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    match outcome {
        Outcome::Written(action) => {
            let opened_with = opened_with.join(",");
            info!(%namespace, %name, action, %opened_with, "Secret written for a Bitnami SealedSecret");
        }
        Outcome::Failed { reason, message } => {
            warn!(%namespace, %name, %reason, %message, "cannot unseal a Bitnami SealedSecret");
        }
        Outcome::Unchanged => {}
    }
    if let Some(event) = outcome.event(&name, changed) {
        let regarding = obj.object_ref(&api_resource());
        let settings = &ctx.settings;
        let (client, reporter, fence) = (&settings.client, &settings.reporter, &settings.fence);
        events::publish(client, reporter, fence, event, &regarding).await;
    }
    outcome.retried(&name)
}

/// Reads and opens the object with the imported keys, the one that opened it last first.
fn open(
    obj: &DynamicObject,
    ctx: &Context,
    key: &str,
) -> Result<(BitnamiSealedSecret, OpenedItems), Outcome> {
    let value = serde_json::to_value(obj).expect("an object serializes");
    let bitnami: BitnamiSealedSecret =
        serde_json::from_value(value).map_err(|e| Outcome::Failed {
            reason: Reason::Malformed,
            message: format!("not a Bitnami SealedSecret: {e}"),
        })?;
    // Refused before anything is opened: the plaintext never leaves the ciphertext.
    if let Some(message) = refused_type(
        bitnami.spec.template.type_.as_deref(),
        &ctx.settings.allowed_types,
    ) {
        return Err(Outcome::Failed {
            reason: Reason::TypeNotAllowed,
            message,
        });
    }
    let ring = ctx.keys.get();
    let preferred = ctx
        .opened_with
        .lock()
        .expect("opened_with lock")
        .get(key)
        .cloned();
    match open_items(&bitnami, &ring, preferred.as_deref()) {
        Ok(opened) => {
            if let Some(first) = opened.opened_with.first() {
                ctx.opened_with
                    .lock()
                    .expect("opened_with lock")
                    .insert(key.to_owned(), first.clone());
            }
            Ok((bitnami, opened))
        }
        Err(e) => Err(Outcome::Failed {
            reason: Reason::of_bitnami(&e),
            message: match e {
                MigrateError::Open {
                    item,
                    reason: BitnamiOpenError::NoKeys,
                } => format!(
                    "item '{item}': no Bitnami key imported: run seal-controller import-bitnami-keys with a backup of Bitnami's keys"
                ),
                e => e.to_string(),
            },
        }),
    }
}

/// Writes the status `health` calls for, unless the object already says it. True when a
/// status was written, i.e. the state changed.
async fn report(ctx: &Context, obj: &DynamicObject, health: &Health<'_>) -> Result<bool, Error> {
    let previous = obj.data.get("status");
    let new = status(previous, health, obj.metadata.generation, Timestamp::now());
    if !status_changed(previous, &new) {
        return Ok(false);
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.settings.client.clone(),
        &obj.namespace().unwrap_or_default(),
        &api_resource(),
    );
    let params = PatchParams {
        field_manager: Some(ctx.settings.field_manager.clone()),
        ..Default::default()
    };
    ctx.settings.fence.check()?;
    api.patch_status(
        &obj.name_any(),
        &params,
        &Patch::Merge(serde_json::json!({ "status": new })),
    )
    .await?;
    Ok(true)
}

pub fn error_policy(obj: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let delay: Duration = ctx.retries.failed(&namespace, &name);
    warn!(%namespace, %name, %error, retry_in = ?delay, "Bitnami reconcile failed; retrying");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn object(namespace: &str, name: &str) -> DynamicObject {
        DynamicObject::new(name, &api_resource()).within(namespace)
    }

    #[tokio::test]
    async fn the_memory_of_keys_forgets_objects_deleted_or_gone_in_a_relist() {
        let (service, _) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let settings = Settings {
            client: Client::new(service, "default"),
            namespace: "sealant-system".into(),
            namespaces: Vec::new(),
            workers: 1,
            allowed_types: Vec::new(),
            field_manager: "test".into(),
            fence: Fence::unfenced(),
            metrics: Arc::default(),
            reporter: Reporter {
                controller: "test".into(),
                instance: None,
            },
        };
        let ctx = Context::new(settings, SharedBitnamiKeys::default());
        let remember = |key: &str| {
            let mut opened_with = ctx.opened_with.lock().unwrap();
            opened_with.insert(key.into(), "sealed-secrets-key1".into());
        };
        let remembered = || {
            let mut keys: Vec<String> = ctx.opened_with.lock().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let mut writer = Writer::<DynamicObject>::new(api_resource());
        let store = writer.as_reader();
        for (ns, name) in [("prod", "db"), ("prod", "api"), ("dev", "db")] {
            remember(&format!("{ns}/{name}"));
        }

        // Deleted: forgotten, the others kept; an update changes nothing.
        let deleted = watcher::Event::Delete(object("prod", "api"));
        writer.apply_watcher_event(&deleted);
        ctx.forget_gone(&deleted, &store);
        ctx.forget_gone(&watcher::Event::Apply(object("prod", "db")), &store);
        assert_eq!(remembered(), ["dev/db", "prod/db"]);

        // A re-list that no longer has dev/db (deleted while the watch was down).
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(object("prod", "db")),
            watcher::Event::InitDone,
        ] {
            writer.apply_watcher_event(&event);
            ctx.forget_gone(&event, &store);
        }
        assert_eq!(remembered(), ["prod/db"]);
    }
}
