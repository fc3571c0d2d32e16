//! seal-controller: unseals SealedSecrets into Secrets, owns them, corrects drift, and keeps
//! the cluster's keys. Kubernetes I/O lives here; the domain logic is in sealant-core.

pub mod backoff;
pub mod bitnami;
pub mod cli;
pub mod conn;
pub mod controllers;
pub mod events;
pub mod fence;
pub mod field_manager;
pub mod http;
pub mod keys;
pub mod labelled_secrets;
pub mod leadership;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod reconcile;
pub mod resync;
pub mod retry;
pub mod run;
pub mod secret_write;
pub mod state;
pub mod triggers;
