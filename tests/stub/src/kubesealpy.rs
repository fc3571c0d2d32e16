//! Bitnami objects from an independent producer: tests/bitnami/kubesealpy_tool.py (Python's
//! `cryptography` for the RSA keys, values sealed by PyPI kubesealpy), shared by the `seal`
//! tests and the end-to-end tests so that both read what the same outside tool wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bitnami/kubesealpy_tool.py")
}

/// Runs the producer with `args` in `dir`: what it printed. Panics with the install hint
/// when kubesealpy is missing, and with its stderr when it fails.
pub fn run(dir: impl AsRef<Path>, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(tool())
        .args(args)
        .current_dir(dir.as_ref())
        .output()
        .expect("python3 is not installed: apt-get install python3 (tests/run-all.sh does this)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kubesealpy'"),
        "kubesealpy is not installed: pip install kubesealpy (tests/run-all.sh does this)"
    );
    assert!(out.status.success(), "kubesealpy_tool {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// A Bitnami key pair `name` in `dir`: `name.key`, `name.pub` and `name.secret.yaml` (the
/// key backup `kubectl get secret -o yaml` gives), in PKCS#8 when `pkcs8`, else PKCS#1.
pub fn keygen(dir: impl AsRef<Path>, name: &str, pkcs8: bool) {
    let mut args = vec!["keygen", ".", name];
    if pkcs8 {
        args.push("--pkcs8");
    }
    run(dir, &args);
}

/// A Bitnami SealedSecret `ns/name` in `scope`, its `items` sealed to the key `key` (the
/// public key `key.pub` in `dir`), as YAML; `flags` go before the items (`--json` first for JSON).
pub fn seal(
    dir: impl AsRef<Path>,
    key: &str,
    scope: &str,
    ns: &str,
    name: &str,
    items: &[(&str, &[u8])],
    flags: &[&str],
) -> String {
    let public = format!("{key}.pub");
    let items: Vec<String> = items
        .iter()
        .map(|(k, v)| format!("{k}={}", BASE64.encode(v)))
        .collect();
    let mut args = vec!["seal", &public, scope, ns, name];
    args.extend_from_slice(flags);
    args.extend(items.iter().map(String::as_str));
    run(dir, &args)
}
