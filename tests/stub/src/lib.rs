//! Test doubles on 127.0.0.1 for the tests of the `seal` and `seal-controller` binaries
//! (crates/seal-cli/tests, crates/controller/tests): a stub API server, an HTTP CONNECT proxy
//! and kubeconfigs naming them, the binaries run in an environment of their own, and Bitnami
//! objects from an independent producer (which tests/e2e uses too). A crate of its own, not a
//! `#[path]` include, so that each test binary compiles it once and uses what it needs without
//! dead-code allowances; not the e2e crate, which is about a real control plane.

pub mod connect_proxy;
pub mod http;
pub mod kubeconfig;
pub mod kubesealpy;
pub mod process;

pub use connect_proxy::ConnectProxy;
pub use http::{Answer, Seen, Stub, answer, api_status, closed_port, quiet_watch};
pub use kubeconfig::{Context, kubeconfig};
pub use process::{FailureShape, Run, Running, isolated};
