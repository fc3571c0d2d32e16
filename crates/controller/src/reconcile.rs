//! The reconciler: one SealedSecret in, its Secret written only when something differs, and
//! a status (and event) that says what happened. The decisions are sealant_core::reconcile's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use sealant_core::convert::{ConvertError, unseal_in_cluster};
use sealant_core::crd::{SealedSecret, SealedSecretStatus};
use sealant_core::reconcile::{Plan, desired_secret, plan, ready_condition, status_changed};
use sealant_core::value::OpenError;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::state::SharedKeys;

/// The field manager for everything the controller writes.
pub const MANAGER: &str = "sealant-controller";

pub struct Context {
    pub client: Client,
    pub keys: SharedKeys,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Requeue after success: the periodic resync that catches anything a watch missed.
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SealedSecret has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What happened to the Secret.
enum Outcome {
    Written(&'static str),
    Unchanged,
    Failed {
        reason: &'static str,
        message: String,
    },
}

pub async fn reconcile(sealed: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = sealed.namespace().ok_or(Error::NoNamespace)?;
    let name = sealed.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let view = ctx.keys.get();

    let (outcome, opened_with) = match unseal_in_cluster(&sealed, &view.ring, &view.compromised) {
        Err(error) => {
            let reason = failure_reason(&error);
            ctx.metrics.unseal_error(reason.1);
            (
                Outcome::Failed {
                    reason: reason.0,
                    message: error.to_string(),
                },
                Vec::new(),
            )
        }
        Ok(unsealed) => {
            ctx.metrics.unseal_ok();
            let opened_with = unsealed.opened_with.iter().cloned().collect();
            let existing = secrets.get_opt(&name).await?;
            let outcome = write(
                &secrets,
                &sealed,
                existing.as_ref(),
                desired_secret(&sealed, &unsealed),
            )
            .await?;
            (outcome, opened_with)
        }
    };

    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let generation = sealed.metadata.generation;
    let condition = match &outcome {
        Outcome::Written(_) | Outcome::Unchanged => ready_condition(
            sealed.status.as_ref(),
            true,
            "Unsealed",
            &format!("Secret {name} is up to date"),
            generation,
            &now,
        ),
        Outcome::Failed { reason, message } => ready_condition(
            sealed.status.as_ref(),
            false,
            reason,
            message,
            generation,
            &now,
        ),
    };
    let status = SealedSecretStatus {
        observed_generation: generation,
        conditions: vec![condition],
        opened_with,
    };
    let changed = status_changed(sealed.status.as_ref(), &status);
    if changed {
        let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &PatchParams::apply(MANAGER), &Patch::Merge(&patch))
            .await?;
    }

    match &outcome {
        Outcome::Written(action) => {
            info!(%namespace, %name, action, "Secret written");
            publish(
                &ctx,
                &sealed,
                EventType::Normal,
                "Unsealed",
                action,
                format!("Secret {name} {action}"),
            )
            .await;
        }
        Outcome::Failed { reason, message } => {
            warn!(%namespace, %name, reason, %message, "cannot unseal");
            // One event per change of state, not one per resync.
            if changed {
                publish(
                    &ctx,
                    &sealed,
                    EventType::Warning,
                    reason,
                    "Unseal",
                    message.clone(),
                )
                .await;
            }
        }
        Outcome::Unchanged => {}
    }
    ctx.metrics
        .observe_reconcile(started.elapsed().as_secs_f64());
    Ok(Action::requeue(ctx.resync))
}

async fn write(
    secrets: &Api<Secret>,
    sealed: &SealedSecret,
    existing: Option<&Secret>,
    desired: Secret,
) -> Result<Outcome, Error> {
    let name = sealed.name_any();
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let written = match plan(sealed, existing, desired) {
        Plan::UpToDate => return Ok(Outcome::Unchanged),
        Plan::NotOwned => {
            return Ok(Outcome::Failed {
                reason: "NotOwned",
                message: format!(
                    "Secret {name} exists and is not managed by this SealedSecret: annotate it sealant.dev/managed=true to let Sealant take it over"
                ),
            });
        }
        Plan::Create(secret) => secrets.create(&params, &secret).await.map(|_| "created"),
        Plan::Update(secret) => secrets
            .replace(&name, &params, &secret)
            .await
            .map(|_| "updated"),
        Plan::Recreate(secret) => recreate(secrets, existing, &secret, &params).await,
    };
    match written {
        Ok(action) => Ok(Outcome::Written(action)),
        // The API server refused the Secret itself (invalid for its type, say): retrying will
        // not help, so say so in the status; other errors are retried.
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            Ok(Outcome::Failed {
                reason: "SecretRejected",
                message: format!("the API server refused Secret {name}: {}", status.message),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Replaces a Secret that cannot be changed in place (its type, or immutable data). The new
/// Secret is validated with a dry run first, so a working Secret is never deleted for one the
/// API server would refuse; the delete is conditional on the exact object that was checked.
async fn recreate(
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    secret: &Secret,
    params: &PostParams,
) -> Result<&'static str, kube::Error> {
    let name = secret.name_any();
    let mut probe = secret.clone();
    probe.metadata.name = None;
    probe.metadata.generate_name = Some(format!("{name}-"));
    let dry_run = PostParams {
        dry_run: true,
        ..params.clone()
    };
    secrets.create(&dry_run, &probe).await?;
    let preconditions = existing.map(|e| Preconditions {
        uid: e.metadata.uid.clone(),
        resource_version: e.metadata.resource_version.clone(),
    });
    let delete = DeleteParams {
        preconditions,
        ..Default::default()
    };
    secrets.delete(&name, &delete).await?;
    secrets.create(params, secret).await?;
    Ok("recreated (its type or immutability required it)")
}

/// (condition reason, metric reason) for an opening failure.
fn failure_reason(error: &ConvertError) -> (&'static str, &'static str) {
    match error {
        ConvertError::Compromised { .. } => ("KeyCompromised", "compromised"),
        ConvertError::Open { error, .. } => match error {
            OpenError::NoKeyHeld(_) => ("NoKey", "no_key"),
            OpenError::Binding(_) => ("ScopeMismatch", "relocated"),
            OpenError::HeaderTampered | OpenError::PayloadTampered | OpenError::KeyMismatch(_) => {
                ("Tampered", "tampered")
            }
            _ => ("Malformed", "malformed"),
        },
        _ => ("Malformed", "malformed"),
    }
}

/// Events are grouped into series by reason and action, so each outcome gets its own action
/// (a "created" series must not go on to count later updates).
async fn publish(
    ctx: &Context,
    sealed: &SealedSecret,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &sealed.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Kubernetes API errors: try again soon; the next reconcile starts from scratch.
pub fn error_policy(sealed: Arc<SealedSecret>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = sealed.namespace().unwrap_or_default(), name = sealed.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
