//! Sealant's core: the sealed value format, keys, the SealedSecret resource and the
//! Secret ⇄ SealedSecret conversion. Pure functions; no cluster I/O.
//!
//! The format is specified in docs/format.md.

pub mod bitnami;
pub mod bitnami_secret;
pub mod check;
pub mod conditions;
pub mod config;
pub mod convert;
pub mod crd;
pub mod exclude;
mod header;
pub mod keys;
pub mod keystore;
pub mod manifest;
pub mod output;
pub mod payload;
pub mod reason;
pub mod reconcile;
pub mod rewrap;
pub mod rewrite;
pub mod scope;
pub mod value;

pub use crd::{SealedSecret, SealedSecretSpec, SealedSecretStatus};
pub use keys::KeyRing;
pub use scope::{Scope, Target};
