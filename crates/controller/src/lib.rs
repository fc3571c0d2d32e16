//! seal-controller: unseals SealedSecrets into Secrets, owns them, corrects drift, and keeps
//! the cluster's keys. Kubernetes I/O lives here; the domain logic is in sealant-core.

pub mod backoff;
pub mod bitnami;
pub mod cache;
pub mod cli;
pub mod conn;
pub mod fence;
pub mod http;
pub mod keys;
pub mod leadership;
pub mod lease;
pub mod metrics;
pub mod reconcile;
pub mod resync;
pub mod retry;
pub mod run;
pub mod sealed_cache;
pub mod state;
