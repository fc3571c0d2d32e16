//! Harness for the end-to-end tests: local control planes (tests/cluster/control-plane.sh),
//! the deploy/ manifests, the real `seal-controller` running as the deploy/ ServiceAccount,
//! and the real `seal` and `kubectl`.

pub mod argocd;
pub mod flood;
pub mod kstatus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Cargo's target directory (CARGO_TARGET_DIR, else ./target).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A binary of this workspace (tests/run-all.sh builds them first).
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The repository's `path` as seen from `overlay`: kustomize takes only relative paths to a
/// base or a component.
pub fn from_overlay(overlay: &Path, path: &str) -> String {
    let mut up = PathBuf::new();
    for _ in overlay.canonicalize().unwrap().components().skip(1) {
        up.push("..");
    }
    let root = root().canonicalize().unwrap();
    up.join(root.join(path).strip_prefix("/").unwrap())
        .to_str()
        .unwrap()
        .to_owned()
}

/// Polls `check` until it returns Some, or panics after `timeout` saying what it waited for.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
}

pub fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// One local control plane, stopped when dropped.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub server: String,
    pub ca_file: PathBuf,
}

impl ControlPlane {
    pub fn start() -> ControlPlane {
        let dir = tempfile::Builder::new()
            .prefix("sealant-e2e-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(root().join("tests/cluster/control-plane.sh"));
        cmd.arg("start").arg(dir.path());
        ok(run(cmd, None));
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} missing from env"))
                .to_owned()
        };
        ControlPlane {
            kubeconfig: PathBuf::from(var("KUBECONFIG")),
            server: var("SEALANT_APISERVER"),
            ca_file: PathBuf::from(var("SEALANT_CA_FILE")),
            dir,
        }
    }

    /// A fault subcommand of control-plane.sh on this control plane (`restart-apiserver`,
    /// `stop-etcd`, `start-etcd`, `pause-etcd`, `resume-etcd`, …); returns once it is done
    /// (for a start, once the component is up again).
    pub fn fault(&self, subcommand: &str) {
        let mut cmd = Command::new(root().join("tests/cluster/control-plane.sh"));
        cmd.arg(subcommand).arg(self.dir.path());
        ok(run(cmd, None));
    }

    /// SIGKILL the kube-apiserver, start it again (same flags, ports, certificates) and wait
    /// until it is ready.
    pub fn restart_apiserver(&self) {
        self.fault("restart-apiserver");
    }

    /// SIGKILL the kube-apiserver (a crash); `start_apiserver` brings it back.
    pub fn kill_apiserver(&self) {
        self.fault("kill-apiserver");
    }

    /// Start the kube-apiserver again (same flags, ports, certificates); returns once ready.
    pub fn start_apiserver(&self) {
        self.fault("start-apiserver");
    }

    /// Stop etcd (SIGTERM; its data is kept).
    pub fn stop_etcd(&self) {
        self.fault("stop-etcd");
    }

    /// Start etcd again after `stop_etcd`, on the same ports and data.
    pub fn start_etcd(&self) {
        self.fault("start-etcd");
    }

    /// SIGSTOP etcd: it holds its connections but answers nothing.
    pub fn pause_etcd(&self) {
        self.fault("pause-etcd");
    }

    /// SIGCONT etcd after `pause_etcd`.
    pub fn resume_etcd(&self) {
        self.fault("resume-etcd");
    }

    /// Deletes one key straight from etcd (through its v3 JSON gateway), behind the API
    /// server's back: for a change no watch can report, made while the API server is down.
    pub fn etcd_delete(&self, key: &str) {
        use base64::Engine as _;
        let ports = std::fs::read_to_string(self.dir.path().join("run/ports")).unwrap();
        let port = ports
            .lines()
            .find_map(|l| l.strip_prefix("etcd_client="))
            .expect("etcd_client port");
        let body = serde_json::json!({
            "key": base64::engine::general_purpose::STANDARD.encode(key),
        });
        let mut cmd = Command::new("curl");
        cmd.args(["-fsS", "--max-time", "10", "-X", "POST", "-d"])
            .arg(body.to_string())
            .arg(format!("http://127.0.0.1:{port}/v3/kv/deleterange"));
        let out = ok(run(cmd, None));
        let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            reply["deleted"], "1",
            "etcd deleted nothing at {key}: {out}"
        );
    }

    pub fn kubectl_cmd(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig);
        // Its own discovery cache: control planes reuse ports, and kubectl keeps what a
        // server served (before a CRD existed, say) per host and port for hours.
        if let Some(dir) = self.kubeconfig.parent() {
            cmd.env("KUBECACHEDIR", dir.join("kubectl-cache"));
        }
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = self.kubectl_cmd();
        cmd.args(args);
        run(cmd, None)
    }

    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        ok(self.kubectl(args))
    }

    /// Edits Secret `ns/name` as a person with kubectl would: the merge patch `patch`.
    pub fn patch_secret(&self, ns: &str, name: &str, patch: &str) -> String {
        self.kubectl_ok(&["patch", "secret", name, "-n", ns, "-p", patch])
    }

    /// A Secret made by hand, not by the controller: `kubectl create secret generic name -n
    /// ns --from-literal=literal`.
    pub fn create_generic_secret(&self, ns: &str, name: &str, literal: &str) -> String {
        let literal = format!("--from-literal={literal}");
        self.kubectl_ok(&["create", "secret", "generic", name, "-n", ns, &literal])
    }

    pub fn apply(&self, yaml: &str) -> String {
        let mut cmd = self.kubectl_cmd();
        cmd.args(["apply", "-f", "-"]);
        ok(run(cmd, Some(yaml)))
    }

    /// `kubectl get … -o json`, or None when it does not exist.
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Applies deploy/ (namespace, CRD, RBAC, …) and waits for the ServiceAccount's token.
    pub fn install(&self) {
        // deploy/ as shipped, but for the two apiVersions 1.20 predates (tests/k8s-1.20/).
        self.kubectl_ok(&[
            "apply",
            "-k",
            root().join("tests/k8s-1.20").to_str().unwrap(),
        ]);
        wait_for_the_crd(|args| self.kubectl(args));
    }

    /// `seal-controller rotate` as the deploy/ ServiceAccount; the new active recipient.
    pub fn rotate(&self) -> String {
        let mut rotate = Command::new(bin("seal-controller"));
        rotate
            .args(["rotate", "--namespace", "sealant-system"])
            .env("KUBECONFIG", self.service_account_kubeconfig());
        ok(run(rotate, None)).trim().to_owned()
    }

    /// `KIND NS/NAME RESOURCEVERSION` of every object of each (kind, namespace), sorted: equal
    /// before and after a wait means nothing was written in between.
    pub fn resource_versions(&self, lists: &[(&str, &str)]) -> Vec<String> {
        let mut all = Vec::new();
        for (kind, ns) in lists {
            let list = self
                .get_json(&[kind, "-n", ns, "--request-timeout=20s"])
                .unwrap_or_else(|| panic!("cannot list {kind} in {ns}"));
            for item in list["items"].as_array().unwrap() {
                let m = &item["metadata"];
                all.push(format!(
                    "{kind} {ns}/{} {}",
                    m["name"].as_str().unwrap_or_default(),
                    m["resourceVersion"].as_str().unwrap_or_default()
                ));
            }
        }
        all.sort();
        all
    }

    /// Every key Secret in sealant-system (label `sealant.dev/key=true`), in the order listed.
    pub fn key_secrets(&self) -> Vec<KeySecret> {
        let list = self
            .get_json(&[
                "secrets",
                "-n",
                "sealant-system",
                "-l",
                "sealant.dev/key=true",
            ])
            .expect("cannot list keys");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| KeySecret {
                name: s["metadata"]["name"].as_str().unwrap().to_owned(),
                state: s["metadata"]["labels"]["sealant.dev/key-state"]
                    .as_str()
                    .unwrap_or("active")
                    .to_owned(),
                key_txt: s["data"]["key.txt"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The first listed key Secret in `state`.
    pub fn key_in_state(&self, state: &str) -> KeySecret {
        let keys = self.key_secrets();
        let states: Vec<_> = keys.iter().map(|k| (&k.name, &k.state)).collect();
        let found = keys.iter().find(|k| k.state == state).cloned();
        found.unwrap_or_else(|| panic!("no {state} key among {states:?}"))
    }

    /// Labels key Secret `name` compromised, as an admin does when a key leaks.
    pub fn mark_compromised(&self, name: &str) {
        self.kubectl_ok(&[
            "label",
            "secret",
            name,
            "-n",
            "sealant-system",
            "--overwrite",
            "sealant.dev/key-state=compromised",
        ]);
    }

    /// (name, state) of every key Secret in sealant-system.
    pub fn key_states(&self) -> Vec<(String, String)> {
        self.key_secrets()
            .into_iter()
            .map(|k| (k.name, k.state))
            .collect()
    }

    pub fn active_keys(&self) -> usize {
        self.key_states()
            .iter()
            .filter(|(_, s)| s == "active")
            .count()
    }

    /// Converged means settled: for `quiet`, nothing is written (every SealedSecret and
    /// Secret in `namespaces`, and every Secret and ConfigMap in sealant-system, keeps its
    /// resourceVersion: no late duplicate, stray status or key write), and there is exactly
    /// one active key.
    #[track_caller]
    pub fn assert_settled(&self, namespaces: &[&str], quiet: Duration) {
        let mut lists: Vec<(&str, &str)> = namespaces
            .iter()
            .flat_map(|ns| [("sealedsecrets", *ns), ("secrets", *ns)])
            .collect();
        lists.extend([
            ("secrets", "sealant-system"),
            ("configmaps", "sealant-system"),
        ]);
        let settled = self.resource_versions(&lists);
        std::thread::sleep(quiet);
        let now = self.resource_versions(&lists);
        let changed: Vec<&String> = now.iter().filter(|v| !settled.contains(v)).collect();
        assert!(changed.is_empty(), "written after convergence: {changed:?}");
        assert_eq!(now.len(), settled.len(), "objects gone after convergence");
        assert_eq!(self.active_keys(), 1, "{:?}", self.key_states());
    }

    /// A kubeconfig that authenticates as the deploy/ ServiceAccount (its token Secret).
    pub fn service_account_kubeconfig(&self) -> PathBuf {
        self.service_account_kubeconfig_at(&self.server, "seal-controller.kubeconfig")
    }

    /// As `service_account_kubeconfig`, for the API server at `server` (e.g. a `Proxy`'s
    /// URL), written to `file` in the control plane's directory.
    pub fn service_account_kubeconfig_at(&self, server: &str, file: &str) -> PathBuf {
        self.kubeconfig_as(server, "sealant-system", "seal-controller", file)
    }

    /// A kubeconfig that authenticates as ServiceAccount `ns/name`, written to
    /// `<dir>/<name>.kubeconfig`.
    pub fn kubeconfig_for_service_account(&self, ns: &str, name: &str) -> PathBuf {
        self.kubeconfig_as(&self.server, ns, name, &format!("{name}.kubeconfig"))
    }

    /// A kubeconfig for the API server at `server` that authenticates as ServiceAccount
    /// `ns/name`, with the token the 1.20 token controller puts in a
    /// `kubernetes.io/service-account-token` Secret (waits for it).
    fn kubeconfig_as(&self, server: &str, ns: &str, name: &str, file: &str) -> PathBuf {
        let token = wait_for(
            &format!("a token for ServiceAccount {ns}/{name}"),
            Duration::from_secs(60),
            || {
                let list = self.get_json(&["secrets", "-n", ns])?;
                list["items"].as_array()?.iter().find_map(|s| {
                    let sa = s["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                        .as_str()?;
                    (sa == name && s["type"] == "kubernetes.io/service-account-token")
                        .then(|| s["data"]["token"].as_str().map(str::to_owned))
                        .flatten()
                })
            },
        );
        let token = String::from_utf8(decode_base64(&token)).unwrap();
        let path = self.dir.path().join(file);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: local, user: {name}}}\ncurrent-context: sa\n",
            server,
            self.ca_file.display()
        );
        std::fs::write(&path, config).unwrap();
        path
    }

    /// `seal` with this cluster's admin kubeconfig.
    pub fn seal(&self, args: &[&str], stdin: Option<&str>, cwd: &Path) -> Output {
        let mut cmd = Command::new(bin("seal"));
        cmd.args(args)
            .current_dir(cwd)
            .env("KUBECONFIG", &self.kubeconfig);
        run(cmd, stdin)
    }

    /// The Ready condition of a SealedSecret: (status, reason).
    pub fn ready(&self, ns: &str, name: &str) -> Option<(String, String)> {
        let obj = self.get_json(&["sealedsecret", name, "-n", ns])?;
        let c = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        Some((
            c["status"].as_str()?.to_owned(),
            c["reason"].as_str().unwrap_or("").to_owned(),
        ))
    }

    /// A Secret's decoded item, if the Secret exists.
    pub fn secret_value(&self, ns: &str, name: &str, item: &str) -> Option<String> {
        let s = self.get_json(&["secret", name, "-n", ns])?;
        let v = s["data"][item].as_str()?;
        Some(String::from_utf8(decode_base64(v)).unwrap())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let mut cmd = Command::new(root().join("tests/cluster/control-plane.sh"));
        cmd.arg("stop").arg(self.dir.path());
        let _ = run(cmd, None);
    }
}

/// A running `seal-controller`, killed when dropped. Its log is kept for assertions.
pub struct Controller {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Controller {
    pub fn spawn(kubeconfig: &Path, log_dir: &Path, identity: &str, extra: &[&str]) -> Controller {
        Controller::spawn_with(
            Command::new(bin("seal-controller")),
            kubeconfig,
            log_dir,
            identity,
            extra,
        )
    }

    /// [`Controller::spawn`] inside `cgroup`: the process joins it before it execs the
    /// controller, so every page the controller ever touches is charged there.
    pub fn spawn_in_cgroup(
        cgroup: &MemoryCgroup,
        kubeconfig: &Path,
        log_dir: &Path,
        identity: &str,
        extra: &[&str],
    ) -> Controller {
        // The shell moves itself (same pid) into the cgroup, then becomes the controller.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(cgroup.path.join("cgroup.procs"))
            .arg(bin("seal-controller"));
        let ctl = Controller::spawn_with(cmd, kubeconfig, log_dir, identity, extra);
        let pid = ctl.pid().to_string();
        wait_for(
            "the controller to join its cgroup",
            Duration::from_secs(10),
            || cgroup.pids().contains(&pid).then_some(()),
        );
        ctl
    }

    fn spawn_with(
        mut cmd: Command,
        kubeconfig: &Path,
        log_dir: &Path,
        identity: &str,
        extra: &[&str],
    ) -> Controller {
        let port = free_port();
        let log = log_dir.join(format!("controller-{identity}-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .args(["--namespace", "sealant-system", "--identity", identity])
            .args(["--listen-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn seal-controller");
        Controller {
            child: Some(child),
            port,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}{path}", self.url())])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn wait_ready(&self) {
        wait_for("the controller's /readyz", Duration::from_secs(60), || {
            self.get("/readyz")
        });
    }

    /// Waits until the controller serves `recipient` as an active key.
    pub fn wait_for_key(&self, recipient: &str) {
        wait_for(
            "the controller to hold the new key",
            Duration::from_secs(30),
            || {
                self.get("/v1/recipients")?
                    .contains(recipient)
                    .then_some(())
            },
        );
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Whether the process is still running (it has not exited, for whatever reason).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGSTOP: the process is frozen (a long GC-like pause), its sockets stay open.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().unwrap()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cgroup v1 memory cgroup (`/sys/fs/cgroup/memory/<name>`) with a hard limit, removed when
/// dropped if [`MemoryCgroup::create`] made it; drop the processes in it first.
pub struct MemoryCgroup {
    pub path: PathBuf,
    owned: bool,
}

impl MemoryCgroup {
    /// Needs root and the cgroup v1 memory controller mounted at /sys/fs/cgroup/memory.
    pub fn create(name: &str, limit_bytes: u64) -> MemoryCgroup {
        let root = Path::new("/sys/fs/cgroup/memory");
        assert!(
            root.join("memory.limit_in_bytes").is_file(),
            "no cgroup v1 memory controller at {}",
            root.display()
        );
        // Unique per process: other test runs may make theirs at the same time.
        let path = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let cgroup = MemoryCgroup { path, owned: true };
        cgroup.write("memory.limit_in_bytes", limit_bytes);
        // With swap, the limit would only move pages out instead of holding the process to it.
        if cgroup.path.join("memory.memsw.limit_in_bytes").is_file() {
            cgroup.write("memory.memsw.limit_in_bytes", limit_bytes);
        }
        cgroup
    }

    /// The memory cgroup process `pid` is in (e.g. a container's, made by the kubelet), read
    /// only: left alone when dropped.
    pub fn of_process(pid: u32) -> MemoryCgroup {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let relative = cgroups
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once(':')?;
                let (controllers, path) = rest.split_once(':')?;
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then_some(path)
            })
            .unwrap_or_else(|| panic!("process {pid} is in no memory cgroup: {cgroups}"));
        MemoryCgroup {
            path: Path::new("/sys/fs/cgroup/memory").join(relative.trim_start_matches('/')),
            owned: false,
        }
    }

    fn write(&self, file: &str, value: u64) {
        let path = self.path.join(file);
        std::fs::write(&path, value.to_string())
            .unwrap_or_else(|e| panic!("cannot write {value} to {}: {e}", path.display()));
    }

    /// A counter file of the cgroup, e.g. `memory.max_usage_in_bytes`, `memory.failcnt`.
    pub fn read(&self, file: &str) -> u64 {
        let path = self.path.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
    }

    /// The OOM killer's kills in this cgroup (`oom_kill` in memory.oom_control).
    pub fn oom_kills(&self) -> u64 {
        let text = std::fs::read_to_string(self.path.join("memory.oom_control")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<String> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // A killed process leaves its cgroup a moment after wait() returns.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.path.display());
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn decode_base64(s: &str) -> Vec<u8> {
    let mut cmd = Command::new("base64");
    cmd.arg("-d");
    run(cmd, Some(s)).stdout
}

/// The cluster's key Secrets, written to `dir` as `<state>.txt` identity files (the newest
/// of each state wins); returns the states written.
pub fn export_keys(cp: &ControlPlane, dir: &Path) -> Vec<String> {
    let mut states = Vec::new();
    for key in cp.key_secrets() {
        std::fs::write(dir.join(format!("{}.txt", key.state)), key.identity_file()).unwrap();
        states.push(key.state);
    }
    states
}

/// A key Secret as the tests read it (no Debug: it holds a private key).
#[derive(Clone)]
pub struct KeySecret {
    pub name: String,
    /// `sealant.dev/key-state`; a key without the label is active (keystore.rs).
    pub state: String,
    /// `data.key.txt`, base64 as the API server returns it.
    key_txt: String,
}

impl KeySecret {
    /// The age identity file the Secret holds.
    pub fn identity_file(&self) -> Vec<u8> {
        decode_base64(&self.key_txt)
    }
}

/// Does the stock `age` CLI open item `item` of the SealedSecret file with `identity`?
pub fn age_opens(dir: &Path, file: &str, item: &str, identity: &str) -> bool {
    let sealed = std::fs::read_to_string(dir.join(file)).unwrap();
    let prefix = format!("{item}: ");
    let value = sealed
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{file} has no item {item}"));
    std::fs::write(dir.join("value.age"), decode_base64(value)).unwrap();
    let mut age = Command::new("age");
    age.args(["-d", "-i", identity, "value.age"])
        .current_dir(dir);
    run(age, None).status.success()
}

/// A TCP forwarder on loopback that a test can cut and restore: one process's traffic to the
/// API server goes through it, so that process alone is partitioned. Threads, no runtime.
///
/// While cut, connections stay open but carry nothing either way (bytes are read and
/// dropped), and new connections are accepted but get nothing: a black hole, as a network
/// partition looks to the client (requests hang until their timeouts). On restore, every
/// connection that lived through a cut is closed, since its byte stream lost data; new
/// connections forward normally.
pub struct Proxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    /// Bumped at each cut: a connection from an older generation is closed once restored.
    generation: std::sync::atomic::AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target` (host:port).
    pub fn start(target: &str) -> Proxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        let target = target.to_owned();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let born = shared.generation.load(SeqCst);
                let doomed = shared.cut.load(SeqCst);
                let state = shared.clone();
                let target = target.clone();
                std::thread::spawn(move || {
                    // Accepted during a cut: it belongs to the cut's generation.
                    let born = if doomed { born.wrapping_sub(1) } else { born };
                    let Ok(server) = std::net::TcpStream::connect(&target) else {
                        return;
                    };
                    let pairs = [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ];
                    let pumps: Vec<_> = pairs
                        .into_iter()
                        .map(|(from, to)| {
                            let state = state.clone();
                            std::thread::spawn(move || pump(from, to, born, &state))
                        })
                        .collect();
                    for p in pumps {
                        let _ = p.join();
                    }
                });
            }
        });
        Proxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Partition: nothing passes from now on, until `restore`.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.generation.fetch_add(1, SeqCst);
        self.state.cut.store(true, SeqCst);
    }

    /// Heal: connections from before are closed, new ones forward.
    pub fn restore(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.stopped.store(true, SeqCst);
        self.restore();
        self.state.generation.fetch_add(1, SeqCst);
        // Wake the accept loop so it sees `stopped`.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either closes; drops what arrives during a cut, and closes
/// both once a cut this connection lived through is over.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, born: u64, state: &ProxyState) {
    use std::io::Read;
    use std::sync::atomic::Ordering::SeqCst;
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        let cut = state.cut.load(SeqCst);
        let stale = state.generation.load(SeqCst) != born;
        if (stale && !cut) || state.stopped.load(SeqCst) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Checked again after the read: bytes read during a cut never pass.
                if state.cut.load(SeqCst) || state.generation.load(SeqCst) != born {
                    continue;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The image tests/k8s-1.20-node/ runs: `seal-controller` built statically and written as
/// an OCI archive by `node.sh controller-image` (cargo keeps it current; built once per
/// test binary).
pub fn controller_image() -> PathBuf {
    static ARCHIVE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let archive = target_dir().join("image/seal-controller.oci.tar");
            std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
            let mut cmd = Command::new(root().join("tests/cluster/node.sh"));
            cmd.arg("controller-image").arg(&archive);
            ok(run(cmd, None));
            archive
        })
        .clone()
}

/// A one-node cluster (tests/cluster/node.sh): the control plane, containerd, kubelet,
/// kube-proxy and every Pod in a network namespace with no route out. Everything it made
/// (processes, containers, mounts, the namespace, the host's iptables rules) is removed
/// when dropped; before that, the drop checks that no packet left the namespace, and fails
/// the test if one did.
pub struct NodeCluster {
    cluster: ControlPlane,
}

/// The Deployment's Pods (its selector in deploy/deployment.yaml).
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/name=seal-controller";

impl NodeCluster {
    /// Starts the cluster with the controller image imported; returns once the node is Ready.
    pub fn start() -> NodeCluster {
        let image = controller_image();
        let dir = tempfile::Builder::new()
            .prefix("sealant-node-")
            .tempdir()
            .unwrap();
        let node_sh = root().join("tests/cluster/node.sh");
        let mut start = Command::new(&node_sh);
        // A test killed on timeout runs no drop: node.sh's watchdog then stops the node.
        start
            .arg("start")
            .arg(dir.path())
            .env("SEALANT_NODE_OWNER_PID", std::process::id().to_string());
        let started = run(start, None);
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap_or_default();
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        // From here on, the drop stops whatever start made.
        let cluster = NodeCluster {
            cluster: ControlPlane {
                kubeconfig: PathBuf::from(var("KUBECONFIG").unwrap_or_default()),
                server: var("SEALANT_APISERVER").unwrap_or_default(),
                ca_file: PathBuf::from(var("SEALANT_CA_FILE").unwrap_or_default()),
                dir,
            },
        };
        ok(started);
        let mut import = Command::new(&node_sh);
        import.arg("import").arg(cluster.dir.path()).arg(&image);
        ok(run(import, None));
        cluster
    }

    /// `kubectl apply -k tests/k8s-1.20-node` (deploy/ with the local image, never pulled);
    /// waits for the CRD.
    pub fn install(&self) {
        self.kubectl_ok(&[
            "apply",
            "-k",
            root().join("tests/k8s-1.20-node").to_str().unwrap(),
        ]);
        wait_for_the_crd(|args| self.kubectl(args));
    }

    /// The names of the controller Pods that are Ready (not being deleted), sorted.
    pub fn ready_controller_pods(&self) -> Vec<String> {
        let Some(list) =
            self.get_json(&["pods", "-n", "sealant-system", "-l", CONTROLLER_SELECTOR])
        else {
            return Vec::new();
        };
        let mut names: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// Waits until `count` controller Pods are Ready; their names.
    pub fn wait_controller_pods(&self, count: usize, timeout: Duration) -> Vec<String> {
        wait_for(&format!("{count} Ready controller Pods"), timeout, || {
            let pods = self.ready_controller_pods();
            (pods.len() == count).then_some(pods)
        })
    }

    /// The holder of the controller's Lease, if any.
    pub fn leader(&self) -> Option<String> {
        let lease = self.get_json(&["lease", "sealant-controller", "-n", "sealant-system"])?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    }

    /// The host pid of a Pod's (first) container process, found through the container id
    /// in its cgroup path.
    pub fn container_pid(&self, ns: &str, pod: &str) -> u32 {
        let obj = self.get_json(&["pod", pod, "-n", ns]).unwrap();
        let id = obj["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .and_then(|id| id.strip_prefix("containerd://"))
            .unwrap_or_else(|| panic!("no container id for {ns}/{pod}: {obj}"))
            .to_owned();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|c| c.contains(&id))
                    && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| !c.starts_with("/pause"))
            })
            .unwrap_or_else(|| panic!("no process in container {id} of {ns}/{pod}"))
    }

    /// `node.sh check-isolation`: no default route in the namespace and no packet from it
    /// forwarded by (or started towards) the host. Its report, or Err with it.
    pub fn check_isolation(&self) -> Result<String, String> {
        let mut cmd = Command::new(root().join("tests/cluster/node.sh"));
        cmd.arg("check-isolation").arg(self.dir.path());
        let out = run(cmd, None);
        let report = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(report)
        } else {
            Err(report)
        }
    }
}

impl std::ops::Deref for NodeCluster {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.cluster
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        let isolation = self.check_isolation();
        let mut stop = Command::new(root().join("tests/cluster/node.sh"));
        stop.arg("stop").arg(self.dir.path());
        let stopped = run(stop, None);
        if !std::thread::panicking() {
            if let Err(report) = isolation {
                panic!("traffic left the node namespace:\n{report}");
            }
            assert!(
                stopped.status.success(),
                "node.sh stop failed: {}",
                String::from_utf8_lossy(&stopped.stderr)
            );
        }
    }
}

/// Waits until the API server serves SealedSecrets, through `kubectl`. A hang guard: a loaded
/// CI machine once took over 30 s here.
fn wait_for_the_crd(kubectl: impl Fn(&[&str]) -> Output) {
    wait_for(
        "the CRD to be established",
        Duration::from_secs(120),
        || {
            kubectl(&["get", "sealedsecrets", "-A"])
                .status
                .success()
                .then_some(())
        },
    );
}

/// No plaintext anywhere a user or an operator can look without reading Secrets: the
/// controller's log, its `/metrics`, every Event (both APIs), and every SealedSecret (both
/// kinds) with its status. Each value is searched raw and in base64; no private key (age or
/// RSA) is in the log either.
pub fn assert_no_plaintext(cp: &ControlPlane, ctl: &Controller, values: &[impl AsRef<[u8]>]) {
    use base64::Engine;
    let logs = ctl.logs();
    for key in ["AGE-SECRET-KEY", "PRIVATE KEY"] {
        assert!(!logs.contains(key), "a private key in the controller's log");
    }
    assert!(
        !logs.contains("forbidden"),
        "the ServiceAccount lacked a permission:\n{logs}"
    );
    // A log file gets plain text: no ANSI colour codes when stderr is not a terminal.
    assert!(!logs.contains('\x1b'), "ANSI escape codes in the log file");
    let everywhere = |what: &str| {
        cp.get_json(&[what, "-A"])
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    let places = [
        ("the controller's log", logs.clone()),
        ("/metrics", ctl.get("/metrics").unwrap_or_default()),
        ("core/v1 Events", everywhere("events")),
        ("events.k8s.io Events", everywhere("events.events.k8s.io")),
        ("SealedSecrets", everywhere("sealedsecrets.sealant.dev")),
        (
            "Bitnami SealedSecrets",
            everywhere("sealedsecrets.bitnami.com"),
        ),
    ];
    for value in values {
        let value = value.as_ref();
        let raw = String::from_utf8_lossy(value);
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for (place, text) in &places {
            assert!(!text.contains(&*raw), "plaintext {raw:?} in {place}");
            assert!(
                !text.contains(&encoded),
                "plaintext {raw:?} (base64) in {place}"
            );
        }
    }
}
