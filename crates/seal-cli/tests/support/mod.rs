//! Running the real `seal` binary in a scratch directory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A finished run of `seal`.
pub type Run = sealant_stub::Run<Seal>;

/// `seal` fails with exit code 1 in one line that starts with `seal: `.
pub struct Seal;

impl sealant_stub::FailureShape for Seal {
    fn check(stderr: &str) {
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line: {:?}",
            stderr
        );
        assert!(stderr.starts_with("seal: "), "{:?}", stderr);
    }
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// The sandbox's directory, for the tools that work in one.
impl AsRef<Path> for Sandbox {
    fn as_ref(&self) -> &Path {
        self.dir.path()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sandbox with a new identity file `name`; and its recipient.
    pub fn with_key(name: &str) -> (Self, String) {
        let sb = Self::new();
        let recipient = sb.keygen(name);
        (sb, recipient)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub fn seal(&self, args: &[&str]) -> Run {
        self.seal_with(args, None, &[])
    }

    pub fn seal_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.seal_with(args, Some(stdin.as_bytes()), &[])
    }

    pub fn seal_with(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seal"));
        cmd.args(args).current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("SEAL_") {
                cmd.env_remove(k);
            }
        }
        // No real cluster is ever contacted: no kubeconfig, and not "in a pod" either.
        // Tests that want a cluster pass their own KUBECONFIG.
        cmd.env("KUBECONFIG", self.path("no-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT");
        cmd.envs(env.iter().copied());
        run(cmd, stdin)
    }

    /// Whether the stock `age` CLI opens item `item` of the (first) SealedSecret in
    /// `sealed_file` with the identity file `identity`: who can really read a value, whatever
    /// its `spec.recipients` record says.
    pub fn age_opens(&self, sealed_file: &str, item: &str, identity: &str) -> bool {
        self.age_decrypt(sealed_file, item, identity)
            .status
            .success()
    }

    /// The stock `age -d` run on item `item` of the (first) SealedSecret in `sealed_file`,
    /// with the identity file `identity`.
    pub fn age_decrypt(&self, sealed_file: &str, item: &str, identity: &str) -> Output {
        use base64::Engine;
        let text = self.read(sealed_file);
        let objects = sealant_core::manifest::read_manifests(&text).unwrap();
        let value = objects
            .iter()
            .find_map(|m| match &m.value {
                sealant_core::manifest::Manifest::SealedSecret(s) => {
                    s.spec.encrypted_data.get(item).cloned()
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{sealed_file} has no Sealant item {item}: {text}"));
        let file = self.path(&format!("{item}.age"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        std::fs::write(&file, bytes).unwrap();
        Command::new(require_tool("age", "age"))
            .arg("-d")
            .arg("-i")
            .arg(self.path(identity))
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `seal create x -n web items… -r recipient`: the Secret `x` in `web`, from the item
    /// flags `items`.
    pub fn create_x_in_web(&self, items: &[&str], recipient: &str) -> Run {
        let mut args = vec!["create", "x", "-n", "web"];
        args.extend_from_slice(items);
        args.extend(["-r", recipient]);
        self.seal(&args)
    }

    /// `seal args` fails (exit `code`, `needle` on stderr) and leaves `file` as it was.
    #[track_caller]
    pub fn fails_leaving(&self, file: &str, args: &[&str], code: i32, needle: &str) {
        let before = self.read(file);
        self.seal(args).fails(code, needle);
        assert_eq!(self.read(file), before, "{file} changed");
    }

    /// `seal unseal -i identity file -o json`: the Secret (or List) it prints, parsed.
    pub fn unseal_json(&self, identity: &str, file: &str) -> serde_json::Value {
        let out = self
            .seal(&["unseal", "-i", identity, file, "-o", "json"])
            .ok()
            .stdout;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Writes `s.yaml`, the Secret `db` in `prod` with `items`, and seals it to `recipient`
    /// into `out`; returns what was written there.
    pub fn seal_db(&self, recipient: &str, items: &[(&str, &str)], out: &str) -> String {
        self.write("s.yaml", &secret_yaml("db", "prod", items));
        self.seal(&["-r", recipient, "s.yaml", "-w", out]).ok();
        self.read(out)
    }

    /// A new identity file `name`; returns its recipient.
    pub fn keygen(&self, name: &str) -> String {
        let out = self.seal(&["keygen", "-o", name]).ok();
        out.stdout.trim().to_owned()
    }
}

pub fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        // The program may refuse before reading its input: a closed pipe is fine.
        match child.stdin.take().unwrap().write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
            _ => {}
        }
    }
    Run::from(child.wait_with_output().unwrap())
}

/// A program the interop tests need, with the Debian package that provides it.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: apt-get install {package} (tests/run-all.sh does this)")
    })
}

pub fn secret_yaml(name: &str, ns: &str, items: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData:\n"
    );
    for (k, v) in items {
        s.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    s
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// `actual` holds the lines of `expected`, in any order.
#[track_caller]
pub fn assert_same_lines(mut actual: Vec<String>, mut expected: Vec<String>, context: &str) {
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected, "{context}");
}

/// A line diff (longest common subsequence): the lines only in `before` and the lines only in
/// `after`, each in order. Every other line is the same, in the same order.
pub fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j].to_owned());
            j += 1;
        } else {
            removed.push(a[i].to_owned());
            i += 1;
        }
    }
    (removed, added)
}
