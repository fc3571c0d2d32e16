//! Writing a generated Secret: what `sealant_core::reconcile::plan_for` decided, the same for
//! Sealant's and Bitnami's SealedSecrets (reconcile.rs, bitnami.rs). Every write is behind the
//! fence, and the API server's refusals that say something about the Secret or the
//! controller's rights come back as a [`Reason`], not as an error.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use sealant_core::reason::Reason;
use sealant_core::reconcile::Plan;

use crate::fence::{Fence, Fenced};
use crate::outcome::{Error, Outcome};

/// Where and as whom Secrets are written.
pub struct SecretWriter<'a> {
    pub secrets: &'a Api<Secret>,
    /// The field manager of every write.
    pub field_manager: &'a str,
    /// Checked before every write: a replica whose leadership lapsed writes nothing.
    pub fence: &'a Fence,
}

/// What a planned write came to.
pub enum Written {
    /// Created, updated or recreated (the action, for logs and events), and the Secret's
    /// resourceVersion afterwards.
    Done {
        action: &'static str,
        version: Option<String>,
    },
    /// Already as desired: nothing written.
    UpToDate,
    /// A Secret of that name exists and is not the object's: nothing written.
    NotOwned,
    /// The API server refused the write: `SecretRejected` (400/422: the Secret itself is
    /// invalid, retrying will not help) or `SecretForbidden` (403: the controller's rights,
    /// a quota or a webhook, which an admin can fix), with the message to show.
    Refused { reason: Reason, message: String },
}

impl Written {
    /// What the write means for the object, and the Secret's resourceVersion afterwards when
    /// it is the object's (`existing`'s when nothing was written). `not_owned` says what to do
    /// when a Secret of that name is someone else's.
    pub fn outcome(
        self,
        existing: Option<&Secret>,
        not_owned: impl FnOnce() -> String,
    ) -> (Outcome, Option<String>) {
        match self {
            Written::Done { action, version } => (Outcome::Written(action), version),
            Written::UpToDate => (
                Outcome::Unchanged,
                existing.and_then(|e| e.metadata.resource_version.clone()),
            ),
            Written::NotOwned => {
                let failed = Outcome::Failed {
                    reason: Reason::NotOwned,
                    message: not_owned(),
                };
                (failed, None)
            }
            Written::Refused { reason, message } => (Outcome::Failed { reason, message }, None),
        }
    }
}

impl<'a> SecretWriter<'a> {
    pub fn new(secrets: &'a Api<Secret>, field_manager: &'a str, fence: &'a Fence) -> Self {
        SecretWriter {
            secrets,
            field_manager,
            fence,
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.to_owned()),
            ..Default::default()
        }
    }

    /// Writes what `planned` says, made against `existing`. Other API errors (a 5xx, a
    /// conflict, a timeout) and a closed fence are the error.
    pub async fn write(&self, planned: Plan, existing: Option<&Secret>) -> Result<Written, Error> {
        let params = self.post_params();
        let (secret, written) = match planned {
            Plan::UpToDate => return Ok(Written::UpToDate),
            Plan::NotOwned => return Ok(Written::NotOwned),
            Plan::Create(secret) => {
                self.fence.check()?;
                let created = self.secrets.create(&params, &secret).await;
                (secret, created.map(|s| ("created", s)))
            }
            Plan::Update(secret) => {
                self.fence.check()?;
                let name = secret.name_any();
                let replaced = self.secrets.replace(&name, &params, &secret).await;
                (secret, replaced.map(|s| ("updated", s)))
            }
            Plan::Recreate(secret) => {
                self.fence.check()?;
                let recreated = self.recreate(existing, &secret, &params).await?;
                (secret, recreated)
            }
        };
        match written {
            Ok((action, secret)) => Ok(Written::Done {
                action,
                version: secret.metadata.resource_version,
            }),
            Err(e) => Ok(refusal(&secret.name_any(), e)?),
        }
    }

    /// Replaces a Secret that cannot be changed in place (its type, or immutable data). The
    /// new Secret is validated with a dry run first, so a working Secret is never deleted for
    /// one the API server would refuse; the delete is conditional on the exact object that was
    /// checked.
    async fn recreate(
        &self,
        existing: Option<&Secret>,
        secret: &Secret,
        params: &PostParams,
    ) -> Result<Result<(&'static str, Secret), kube::Error>, Fenced> {
        let name = secret.name_any();
        let mut probe = secret.clone();
        probe.metadata.name = None;
        probe.metadata.generate_name = Some(format!("{name}-"));
        let dry_run = PostParams {
            dry_run: true,
            ..params.clone()
        };
        if let Err(e) = self.secrets.create(&dry_run, &probe).await {
            return Ok(Err(e));
        }
        let delete = DeleteParams {
            preconditions: existing.map(|e| Preconditions {
                uid: e.metadata.uid.clone(),
                resource_version: e.metadata.resource_version.clone(),
            }),
            ..Default::default()
        };
        self.fence.check()?;
        if let Err(e) = self.secrets.delete(&name, &delete).await {
            return Ok(Err(e));
        }
        self.fence.check()?;
        let created = self.secrets.create(params, secret).await;
        Ok(created.map(|s| ("recreated (its type or immutability required it)", s)))
    }
}

/// A refusal the status should say (see [`Written::Refused`]), or the error to retry.
fn refusal(name: &str, error: kube::Error) -> Result<Written, kube::Error> {
    let kube::Error::Api(status) = &error else {
        return Err(error);
    };
    let (reason, message) = match status.code {
        400 | 422 => (
            Reason::SecretRejected,
            format!("the API server refused Secret {name}: {}", status.message),
        ),
        403 => (
            Reason::SecretForbidden,
            format!(
                "the API server forbade writing Secret {name}: {}",
                status.message
            ),
        ),
        _ => return Err(error),
    };
    Ok(Written::Refused { reason, message })
}
