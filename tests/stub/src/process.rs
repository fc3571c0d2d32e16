//! Running a binary under test against the stubs.

use std::marker::PhantomData;
use std::path::Path;
use std::process::{Child, Command, Output};

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

/// What a binary under test prints on stderr when it fails with exit code 1, beyond what every
/// failure shows (see [`Run::fails`]).
pub trait FailureShape {
    #[track_caller]
    fn check(stderr: &str);
}

/// A finished run of the binary `B`: its exit code and its output as text.
pub struct Run<B: FailureShape> {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    binary: PhantomData<B>,
}

impl<B: FailureShape> From<Output> for Run<B> {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            binary: PhantomData,
        }
    }
}

impl<B: FailureShape> Run<B> {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success, stderr: {}", self.stderr);
        self
    }

    /// A failure: exit `code`, nothing on stdout (no partial output), `needle` on stderr; with
    /// exit code 1, stderr also has the binary's [`FailureShape`].
    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(
            self.code, code,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "no partial output on failure");
        assert!(
            self.stderr.contains(needle),
            "stderr {:?} lacks {:?}",
            self.stderr,
            needle
        );
        if code == 1 {
            B::check(&self.stderr);
        }
        self
    }
}
