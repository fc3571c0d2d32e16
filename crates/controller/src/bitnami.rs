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
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{Predicate, predicates};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use sealant_core::bitnami::{
    BitnamiKey, BitnamiKeyRing, BitnamiOpenError, BitnamiSealedSecret, KeyBackupError,
    MigrateError, open_items, parse_key_backup,
};
use sealant_core::bitnami_secret::{
    IMPORTED_KEY_LABEL, Owner, claim, desired_secret, imported_key, imported_key_secret,
    same_imported_key, status, status_changed,
};
use sealant_core::conditions::Health;
use sealant_core::reason::Reason;
use sealant_core::reconcile::{Plan, plan_for, refused_type};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::backoff::watch_backoff;
use crate::fence::{Fence, Fenced};
use crate::retry::Retries;

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
        field_manager: Some(crate::reconcile::field_manager("import-bitnami-keys")),
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
}

struct Context {
    settings: Settings,
    keys: SharedBitnamiKeys,
    /// namespace/name → the key that opened the object last time.
    opened_with: Mutex<HashMap<String, String>>,
    retries: Retries,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Bitnami SealedSecret has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Fenced(#[from] Fenced),
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
    let ctx = Arc::new(Context {
        settings: settings.clone(),
        keys,
        opened_with: Mutex::default(),
        retries: Retries::default(),
    });
    let namespaces: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let ar = api_resource();
    let mut controllers = Vec::new();
    for ns in namespaces {
        let client = settings.client.clone();
        let (objects, secrets): (Api<DynamicObject>, Api<PartialObjectMeta<Secret>>) = match &ns {
            Some(ns) => (
                Api::namespaced_with(client.clone(), ns, &ar),
                Api::namespaced(client, ns),
            ),
            None => (Api::all_with(client.clone(), &ar), Api::all(client)),
        };
        let writer = Writer::<DynamicObject>::new(ar.clone());
        let reader = writer.as_reader();
        // Spec (generation) and annotation (scope) changes; not the echo of status writes.
        let changes = watcher(objects, watcher::Config::default())
            .backoff(watch_backoff())
            .reflect(writer)
            .applied_objects()
            .predicate_filter(
                predicates::generation.combine(predicates::annotations),
                Default::default(),
            );
        // Api<PartialObjectMeta<Secret>>: a metadata-only watch.
        let secret_changes = watcher(secrets, watcher::Config::default())
            .backoff(watch_backoff())
            .touched_objects();
        let key_changes = futures::stream::unfold(keys_changed.clone(), |n| async move {
            n.notified().await;
            Some(((), n))
        });
        let mapped = ar.clone();
        let controller = Controller::for_stream_with(changes, reader, ar.clone())
            .with_config(controller::Config::default().concurrency(settings.workers))
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
            .reconcile_all_on(key_changes)
            .graceful_shutdown_on(wait_for(stop.clone()));
        controllers.push(
            controller
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|result| async move {
                    match result {
                        Ok(_) | Err(controller::Error::ObjectNotFound(_)) => {}
                        Err(e) => warn!(error = %e, "Bitnami controller"),
                    }
                }),
        );
    }
    info!("Bitnami mode: reconciling bitnami.com/v1alpha1 SealedSecrets");
    futures::future::join_all(controllers).await;
    key_watch.abort();
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Keeps `shared` equal to the imported key Secrets in `namespace`.
async fn watch_imported_keys(
    client: Client,
    namespace: String,
    shared: SharedBitnamiKeys,
    changed: Arc<Notify>,
    listed: watch::Sender<bool>,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().labels(&format!("{IMPORTED_KEY_LABEL}=true"));
    let mut stream =
        std::pin::pin!(reflector(writer, watcher(api, config)).backoff(watch_backoff()));
    let mut is_listed = false;
    let mut last: Option<Vec<String>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => {
                warn!(error = %e, "Bitnami key watch error; retrying");
                continue;
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(watcher::Event::InitDone) => is_listed = true,
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {}
        }
        if !is_listed {
            continue;
        }
        let mut secrets = store.state();
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

/// What a reconcile came to.
enum Outcome {
    Written(&'static str),
    Unchanged,
    Failed { reason: Reason, message: String },
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = obj.name_any();
    let key = format!("{namespace}/{name}");
    let (outcome, opened_with) = match open(&obj, &ctx, &key) {
        Err(failed) => (failed, Vec::new()),
        Ok((bitnami, opened)) => {
            let owner = Owner {
                name: name.clone(),
                uid: obj.uid().unwrap_or_default(),
            };
            let desired = desired_secret(&bitnami, &owner, &opened);
            let secrets: Api<Secret> = Api::namespaced(ctx.settings.client.clone(), &namespace);
            let existing = secrets.get_opt(&name).await?;
            let outcome = write(&ctx, &secrets, &owner, existing.as_ref(), desired).await?;
            (outcome, opened.opened_with.clone())
        }
    };
    let up_to_date = format!(
        "Secret {name} is up to date; opened with Bitnami key {}",
        opened_with.join(", ")
    );
    let health = match &outcome {
        Outcome::Written(_) | Outcome::Unchanged => Health::Ready {
            message: &up_to_date,
        },
        Outcome::Failed { reason, message } => Health::Failed {
            reason: *reason,
            message,
        },
    };
    report(&ctx, &obj, &health).await?;
    match &outcome {
        Outcome::Written(action) => {
            info!(%namespace, %name, action, opened_with = %opened_with.join(","), "Secret written for a Bitnami SealedSecret");
        }
        Outcome::Failed { reason, message } => {
            warn!(%namespace, %name, %reason, %message, "cannot unseal a Bitnami SealedSecret");
        }
        Outcome::Unchanged => {}
    }
    ctx.retries.succeeded(&namespace, &name);
    Ok(Action::await_change())
}

/// Reads and opens the object with the imported keys, the one that opened it last first.
fn open(
    obj: &DynamicObject,
    ctx: &Context,
    key: &str,
) -> Result<(BitnamiSealedSecret, sealant_core::bitnami::OpenedItems), Outcome> {
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

/// Writes what `plan_for` decides.
async fn write(
    ctx: &Context,
    secrets: &Api<Secret>,
    owner: &Owner,
    existing: Option<&Secret>,
    desired: Secret,
) -> Result<Outcome, Error> {
    let name = &owner.name;
    let params = PostParams {
        field_manager: Some(ctx.settings.field_manager.clone()),
        ..Default::default()
    };
    let planned = plan_for(claim(owner), existing, desired);
    if matches!(
        planned,
        Plan::Create(_) | Plan::Update(_) | Plan::Recreate(_)
    ) {
        ctx.settings.fence.check()?;
    }
    let written = match planned {
        Plan::UpToDate => return Ok(Outcome::Unchanged),
        Plan::NotOwned => {
            return Ok(Outcome::Failed {
                reason: Reason::NotOwned,
                message: format!(
                    "Secret {name} exists and is not managed by this SealedSecret: annotate it sealedsecrets.bitnami.com/managed=true to let it be taken over"
                ),
            });
        }
        Plan::Create(secret) => secrets.create(&params, &secret).await.map(|_| "created"),
        Plan::Update(secret) => secrets
            .replace(name, &params, &secret)
            .await
            .map(|_| "updated"),
        Plan::Recreate(secret) => recreate(ctx, secrets, existing, &secret, &params).await?,
    };
    match written {
        Ok(action) => Ok(Outcome::Written(action)),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => Ok(Outcome::Failed {
            reason: Reason::SecretRejected,
            message: format!("the API server refused Secret {name}: {}", status.message),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Deletes and creates a Secret that cannot change in place (type, immutable data), after a
/// dry run of the create, and only the exact version that was planned against.
async fn recreate(
    ctx: &Context,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    secret: &Secret,
    params: &PostParams,
) -> Result<Result<&'static str, kube::Error>, Fenced> {
    let name = secret.name_any();
    let mut probe = secret.clone();
    probe.metadata.name = None;
    probe.metadata.generate_name = Some(format!("{name}-"));
    let dry_run = PostParams {
        dry_run: true,
        ..params.clone()
    };
    if let Err(e) = secrets.create(&dry_run, &probe).await {
        return Ok(Err(e));
    }
    let delete = DeleteParams {
        preconditions: existing.map(|e| Preconditions {
            uid: e.metadata.uid.clone(),
            resource_version: e.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    ctx.settings.fence.check()?;
    if let Err(e) = secrets.delete(&name, &delete).await {
        return Ok(Err(e));
    }
    ctx.settings.fence.check()?;
    Ok(secrets.create(params, secret).await.map(|_| "recreated"))
}

/// Writes the status `health` calls for, unless the object already says it.
async fn report(ctx: &Context, obj: &DynamicObject, health: &Health<'_>) -> Result<(), Error> {
    let previous = obj.data.get("status");
    let new = status(previous, health, obj.metadata.generation, Timestamp::now());
    if !status_changed(previous, &new) {
        return Ok(());
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
    Ok(())
}

fn error_policy(obj: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let delay: Duration = ctx.retries.failed(&namespace, &name);
    warn!(%namespace, %name, %error, retry_in = ?delay, "Bitnami reconcile failed; retrying");
    Action::requeue(delay)
}
