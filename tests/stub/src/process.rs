//! Running a binary under test against the stubs.

use std::path::Path;
use std::process::{Child, Command};

/// `bin` with an environment that neither a developer's shell nor a Pod can leak into:
/// `kubeconfig` as KUBECONFIG, no in-cluster variables, no variable starting with
/// `env_prefix` (the binary's own, e.g. `SEALANT_`), no RUST_LOG, and NO_COLOR.
pub fn isolated(bin: &str, kubeconfig: &Path, env_prefix: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME");
    for (k, _) in std::env::vars() {
        if k.starts_with(env_prefix) {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A child process killed when dropped, so a failed assertion leaves nothing running.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
