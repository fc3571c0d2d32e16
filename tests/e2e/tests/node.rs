//! deploy/ as a user's cluster runs it: the controller image as two Pods on a real node
//! (tests/cluster/node.sh: containerd, kubelet and kube-proxy in a network namespace with no
//! route out; the image built locally and never pulled). Each test ends by proving no packet
//! left that namespace (NodeCluster's drop).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sealant_e2e::flood::{CLIENTS, Flood, Target, large_body, mib, small_sealed};
use sealant_e2e::{MemoryCgroup, NodeCluster, ok, text, wait_for};

const NS: &str = "sealant-system";
/// First start of a node, Pods included: image unpack, sandbox, probes.
const POD_START: Duration = Duration::from_secs(240);
const SECS_60: Duration = Duration::from_secs(60);

fn secret_yaml(name: &str, ns: &str, items: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n"
    );
    for (k, v) in items {
        s.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    s
}

/// Seals `name` in `ns` with the cluster's published recipients and applies it with kubectl.
fn seal_and_apply(cluster: &NodeCluster, dir: &Path, name: &str, ns: &str, value: &str) {
    wait_for("published recipients", SECS_60, || {
        let out = cluster.seal(&["fetch-keys"], None, dir);
        (out.status.success() && text(&out).starts_with("age1")).then_some(())
    });
    let file = format!("{name}.yaml");
    let plain = secret_yaml(name, ns, &[("password", value)]);
    ok(cluster.seal(&["-w", &file], Some(&plain), dir));
    cluster.kubectl_ok(&["apply", "-f", dir.join(&file).to_str().unwrap()]);
}

/// The field managers that applied to a Secret.
fn managers(cluster: &NodeCluster, ns: &str, name: &str) -> Vec<String> {
    // kubectl hides managedFields unless asked.
    let out = cluster.kubectl_ok(&[
        "get",
        "secret",
        name,
        "-n",
        ns,
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let secret: serde_json::Value = serde_json::from_str(&out).unwrap();
    secret["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str().map(str::to_owned))
        .collect()
}

/// The real container process, seen from the host: its user ids and whether `/` is
/// mounted read-only for it.
fn process_identity(pid: u32) -> (String, bool) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    // Fields: id parent major:minor root mountpoint options …; the last "/" mount is the
    // one the process sees.
    let root_ro = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .map(|l| l.split(' ').nth(5).unwrap().split(',').any(|o| o == "ro"))
        .unwrap();
    (uids, root_ro)
}

/// `seal` failed with exit code 1 and said exactly `stderr`.
#[track_caller]
fn assert_refused(out: &Output, stderr: String) {
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (Some(1), stderr),
        "{}",
        text(out)
    );
}

#[test]
fn deploy_runs_as_two_pods_that_unseal_hand_over_and_roll_without_losing_a_secret() {
    let cluster = NodeCluster::start();
    cluster.install();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // Both replicas pass their readiness probe (and stay up: liveness), as uid 65532 with a
    // read-only root filesystem: the real processes, not just the spec.
    let pods = cluster.wait_controller_pods(2, POD_START);
    for pod in &pods {
        let (uids, root_ro) = process_identity(cluster.container_pid(NS, pod));
        assert_eq!(uids, "65532 65532 65532 65532", "uids of {pod}");
        assert!(root_ro, "{pod}'s root filesystem is writable");
    }
    let leader = wait_for("a leader among the Pods", SECS_60, || {
        cluster.leader().filter(|l| pods.contains(l))
    });

    // A SealedSecret applied with kubectl becomes a Secret, written by the leading Pod.
    cluster.kubectl_ok(&["create", "namespace", "prod"]);
    seal_and_apply(&cluster, dir, "db", "prod", "hunter2-node");
    wait_for("Secret prod/db", SECS_60, || {
        cluster.secret_value("prod", "db", "password")
    });
    assert_eq!(
        cluster.secret_value("prod", "db", "password").as_deref(),
        Some("hunter2-node")
    );
    let written_by = format!("sealant-controller/{leader}");
    assert!(
        managers(&cluster, "prod", "db").contains(&written_by),
        "prod/db not written by {written_by}: {:?}",
        managers(&cluster, "prod", "db")
    );

    // Deleting the leader Pod hands the Lease to another replica (the standby, or the Pod
    // that replaces the deleted one, whichever asks first); no Secret is lost, and the new
    // leader unseals what comes next.
    cluster.kubectl_ok(&["delete", "pod", &leader, "-n", NS, "--wait=false"]);
    let new_leader = wait_for("another Pod to take the Lease", SECS_60, || {
        cluster.leader().filter(|l| *l != leader)
    });
    assert!(
        new_leader.starts_with("seal-controller-"),
        "the Lease went to {new_leader}"
    );
    assert_eq!(
        cluster.secret_value("prod", "db", "password").as_deref(),
        Some("hunter2-node"),
        "prod/db lost in the hand-over"
    );
    seal_and_apply(&cluster, dir, "api", "prod", "after-hand-over");
    wait_for("Secret prod/api", SECS_60, || {
        cluster.secret_value("prod", "api", "password")
    });
    let written_by = format!("sealant-controller/{new_leader}");
    assert!(
        managers(&cluster, "prod", "api").contains(&written_by),
        "prod/api not written by {written_by}: {:?}",
        managers(&cluster, "prod", "api")
    );
    // The Deployment replaces the deleted Pod.
    let after = cluster.wait_controller_pods(2, POD_START);
    assert!(
        !after.contains(&leader) && after.contains(&new_leader),
        "{after:?}"
    );
    assert_eq!(
        cluster.secret_value("prod", "db", "password").as_deref(),
        Some("hunter2-node")
    );

    // A rolling update (an env value changed) replaces both Pods; the Secrets stay, and the
    // new Pods write nothing: each Secret keeps its resourceVersion.
    let version = |name: &str| {
        cluster.get_json(&["secret", name, "-n", "prod"]).unwrap()["metadata"]["resourceVersion"]
            .clone()
    };
    let before = [version("db"), version("api")];
    cluster.kubectl_ok(&[
        "set",
        "env",
        "deployment/seal-controller",
        "-n",
        NS,
        "SEALANT_E2E_ROLLOUT=1",
    ]);
    cluster.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/seal-controller",
        "-n",
        NS,
        "--timeout=240s",
    ]);
    let rolled = wait_for("two Ready Pods of the new revision", POD_START, || {
        let pods = cluster.ready_controller_pods();
        (pods.len() == 2 && pods.iter().all(|p| !after.contains(p))).then_some(pods)
    });
    wait_for("a new Pod to lead", SECS_60, || {
        cluster.leader().filter(|l| rolled.contains(l))
    });
    assert_eq!(
        cluster.secret_value("prod", "api", "password").as_deref(),
        Some("after-hand-over")
    );
    assert_eq!(
        [version("db"), version("api")],
        before,
        "the rolling update rewrote a Secret"
    );
}

/// A kubeconfig for `cluster`'s API server with no credentials at all.
fn anonymous_kubeconfig(cluster: &NodeCluster) -> std::path::PathBuf {
    let path = cluster.dir.path().join("anonymous.kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: nobody\n  context: {{cluster: local, user: nobody}}\ncurrent-context: nobody\n",
        cluster.server,
        cluster.ca_file.display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// `seal` with another kubeconfig than the admin's.
fn seal_as(kubeconfig: &Path, args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(sealant_e2e::bin("seal"));
    cmd.args(args)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig);
    sealant_e2e::run(cmd, None)
}

/// The controller's Service, through the API server's service proxy (the path `seal`
/// takes without --controller-url).
const SERVICE_PROXY: &str =
    "/api/v1/namespaces/sealant-system/services/http:seal-controller:http/proxy";

/// `kubectl` with another kubeconfig than the admin's.
fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("kubectl");
    cmd.args(args).env("KUBECONFIG", kubeconfig);
    sealant_e2e::run(cmd, None)
}

/// The age recipients in a recipients file's text (comments and blank lines left out).
fn recipient_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The recipients of the cluster's active key Secrets, as `seal recipient` derives them
/// from the identities (read as the admin).
fn active_recipients(cluster: &NodeCluster, dir: &Path) -> Vec<String> {
    let keys = tempfile::tempdir().unwrap();
    let states = sealant_e2e::export_keys(cluster, keys.path());
    assert_eq!(
        states.iter().filter(|s| *s == "active").count(),
        1,
        "{states:?}"
    );
    let key = keys.path().join("active.txt");
    recipient_lines(&ok(cluster.seal(
        &["recipient", key.to_str().unwrap()],
        None,
        dir,
    )))
}

/// What one controller Pod serves at `/v1/recipients`, through the API server's Pod proxy.
fn pod_recipients(cluster: &NodeCluster, pod: &str) -> Option<String> {
    let out = cluster.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/v1/recipients"),
    ]);
    out.status.success().then(|| text(&out))
}

#[test]
fn rotation_job_and_the_service_proxy_work_as_a_user_would_use_them() {
    let cluster = NodeCluster::start();
    cluster.install();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let pods = cluster.wait_controller_pods(2, POD_START);
    cluster.kubectl_ok(&["create", "namespace", "prod"]);
    seal_and_apply(&cluster, dir, "db", "prod", "proxy-path");
    let first = text(&cluster.seal(&["fetch-keys"], None, dir))
        .trim()
        .to_owned();

    // An ordinary authenticated user: a ServiceAccount with no role of its own.
    let user = cluster.kubeconfig_for_service_account("default", "default");
    let anonymous = anonymous_kubeconfig(&cluster);

    // `seal fetch-keys` (no --controller-url: the recipients ConfigMap, through the API
    // server) prints exactly the recipient of the cluster's one active key Secret, and the
    // controller Pods serve the same at /v1/recipients through the service proxy.
    let active = active_recipients(&cluster, dir);
    assert_eq!(active, vec![first.clone()]);
    let fetched = seal_as(&user, &["fetch-keys"], dir);
    assert_eq!(
        (fetched.status.code(), text(&fetched)),
        (Some(0), format!("{first}\n")),
        "fetch-keys as an ordinary user: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let served = kubectl_as(
        &user,
        &["get", "--raw", &format!("{SERVICE_PROXY}/v1/recipients")],
    );
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert_eq!(recipient_lines(&text(&served)), active);

    // `seal validate` through the service proxy as that user.
    let valid = seal_as(&user, &["validate", "db.yaml"], dir);
    assert!(
        valid.status.success(),
        "validate as an ordinary user: {}",
        String::from_utf8_lossy(&valid.stderr)
    );

    // With no credentials, each is refused by the API server, with its answer quoted.
    let server = format!("{}/", cluster.server);
    let refused = seal_as(&anonymous, &["fetch-keys"], dir);
    assert_refused(
        &refused,
        format!(
            "seal: ConfigMap {NS}/sealant-recipients: {server} answered 403 Forbidden: configmaps \"sealant-recipients\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"{NS}\"\n"
        ),
    );
    let refused = seal_as(&anonymous, &["validate", "db.yaml"], dir);
    assert_refused(
        &refused,
        format!(
            "seal: db.yaml:1: SealedSecret 'db': the controller (service {NS}/seal-controller via {server}) answered 403 Forbidden: services \"http:seal-controller:http\" is forbidden: User \"system:anonymous\" cannot create resource \"services/proxy\" in API group \"\" in the namespace \"{NS}\" (the service proxy needs permission for services/proxy there; or use --controller-url with kubectl port-forward)\n"
        ),
    );

    // The rotation CronJob, triggered: a Job from its jobTemplate (kubectl 1.32 cannot
    // `create job --from` a batch/v1beta1 CronJob), run as a Pod under its own ServiceAccount.
    let cronjob = cluster
        .get_json(&["cronjob", "sealant-rotate-key", "-n", NS])
        .unwrap();
    let job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "rotate-now", "namespace": NS},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    });
    cluster.apply(&job.to_string());
    wait_for("Job rotate-now to succeed", POD_START, || {
        let job = cluster.get_json(&["job", "rotate-now", "-n", NS])?;
        assert!(
            job["status"]["failed"].as_u64().unwrap_or(0) == 0,
            "the rotation Job failed: {job}"
        );
        (job["status"]["succeeded"] == 1).then_some(())
    });
    let job_pods = cluster
        .get_json(&["pods", "-n", NS, "-l", "job-name=rotate-now"])
        .unwrap();
    assert_eq!(
        job_pods["items"][0]["spec"]["serviceAccountName"],
        "sealant-rotate-key"
    );
    let second = wait_for("a new published recipient", SECS_60, || {
        let now = text(&cluster.seal(&["fetch-keys"], None, dir))
            .trim()
            .to_owned();
        (!now.is_empty() && now != first).then_some(now)
    });
    // Both replicas serve the new key, without a restart.
    for pod in &pods {
        wait_for(&format!("{pod} to serve the new key"), SECS_60, || {
            pod_recipients(&cluster, pod)?
                .contains(&second)
                .then_some(())
        });
        let obj = cluster.get_json(&["pod", pod, "-n", NS]).unwrap();
        assert_eq!(obj["status"]["containerStatuses"][0]["restartCount"], 0);
    }
    // `seal reencrypt` through the service proxy: refused with no credentials (the file
    // left as it was), then, as the ordinary user, db.yaml moves to the new key: it opens
    // with the new active key and no longer with the retired one.
    let sealed_to_first = std::fs::read_to_string(dir.join("db.yaml")).unwrap();
    let refused = seal_as(&anonymous, &["reencrypt", "db.yaml"], dir);
    assert_refused(
        &refused,
        format!(
            "seal: db.yaml:1: SealedSecret 'db': the controller (service {NS}/seal-controller via {server}) answered 403 Forbidden: services \"http:seal-controller:http\" is forbidden: User \"system:anonymous\" cannot create resource \"services/proxy\" in API group \"\" in the namespace \"{NS}\" (the service proxy needs permission for services/proxy there; or use --controller-url with kubectl port-forward)\nseal: 1 of 1 file left as it was; reencrypted 0\n"
        ),
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("db.yaml")).unwrap(),
        sealed_to_first
    );
    let dry = seal_as(&user, &["reencrypt", "--dry-run", "db.yaml"], dir);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let moved = seal_as(&user, &["reencrypt", "db.yaml"], dir);
    assert_eq!(
        (
            moved.status.code(),
            String::from_utf8_lossy(&moved.stderr).into_owned()
        ),
        (Some(0), "seal reencrypt: reencrypted 1 file\n".to_owned())
    );
    let keys = tempfile::tempdir().unwrap();
    let mut states = sealant_e2e::export_keys(&cluster, keys.path());
    states.sort();
    assert_eq!(states, ["active", "retired"]);
    assert_eq!(active_recipients(&cluster, dir), vec![second.clone()]);
    let unseal = |identity: &str| {
        let key = keys.path().join(identity);
        seal_as(
            &user,
            &[
                "unseal",
                "-i",
                key.to_str().unwrap(),
                "db.yaml",
                "-o",
                "json",
            ],
            dir,
        )
    };
    let opened = unseal("active.txt");
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let secret: serde_json::Value = serde_json::from_slice(&opened.stdout).unwrap();
    assert_eq!(
        sealant_e2e::decode_base64(secret["data"]["password"].as_str().unwrap()),
        b"proxy-path"
    );
    let old = unseal("retired.txt");
    assert_eq!(
        (
            old.status.code(),
            String::from_utf8_lossy(&old.stderr).into_owned()
        ),
        (
            Some(1),
            format!(
                "seal: db.yaml:1: SealedSecret 'db': item 'password' was sealed to {second}; none of those keys is held here (wrong identity or cluster?)\n"
            )
        ),
        "the retired key still opens db.yaml after reencrypt"
    );
    let dry = seal_as(&user, &["reencrypt", "--dry-run", "db.yaml"], dir);
    assert_eq!(
        (
            dry.status.code(),
            String::from_utf8_lossy(&dry.stderr).into_owned()
        ),
        (
            Some(0),
            "seal reencrypt: 0 of 1 file would change (dry run: nothing written)\n".to_owned()
        )
    );
    // The cluster still opens the re-encrypted file.
    cluster.kubectl_ok(&["apply", "-f", dir.join("db.yaml").to_str().unwrap()]);
    wait_for("db re-encrypted to be Ready", SECS_60, || {
        let obj = cluster.get_json(&["sealedsecret", "db", "-n", "prod"])?;
        let generation = &obj["metadata"]["generation"];
        obj["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && &c["observedGeneration"] == generation
            })
            .then_some(())
    });
    assert_eq!(
        cluster.secret_value("prod", "db", "password").as_deref(),
        Some("proxy-path")
    );

    // What is sealed to the new key is unsealed.
    seal_and_apply(&cluster, dir, "after-rotation", "prod", "new-key");
    wait_for("Secret prod/after-rotation", SECS_60, || {
        cluster.secret_value("prod", "after-rotation", "password")
    });

    flood_through_the_service_proxy(&cluster, &user, &pods, dir);
}

/// The Deployment's memory limit (deploy/deployment.yaml).
const LIMIT: u64 = 128 * 1024 * 1024;

/// The hostile-load attack of tests/hostile_load.rs (sealant_e2e::flood: 100 clients at once,
/// each sending a ~2 MB SealedSecret to /v1/reencrypt, retrying after Retry-After) against
/// the Pods as deployed (default limits), through the API server's service proxy as the
/// ordinary user `user` (behind `kubectl proxy`, which adds the user's token: the flood speaks
/// plain HTTP). The Pods' memory limit holds: no OOM kill, no restart, the cgroup never at its
/// limit; they stay Ready, and a SealedSecret made during the flood and one after it become
/// Secrets.
///
/// What the service proxy does to the attack: a Pod refuses a body past its bound with 429
/// before reading it and closes; the API server, still sending the ~2 MB body, then fails
/// (its write: "broken pipe", or its read of the answer: "EOF") and answers 500 "error trying
/// to reach service: …" (counted as `cut_at_proxy`, retried) unless it read the 429 first.
/// Everything else reaches the Pods: every client ends with its full answer.
fn flood_through_the_service_proxy(
    cluster: &NodeCluster,
    user: &Path,
    pods: &[String],
    dir: &Path,
) {
    // The kubelet put each container in a memory cgroup with the Deployment's limit.
    let cgroups: Vec<MemoryCgroup> = pods
        .iter()
        .map(|pod| MemoryCgroup::of_process(cluster.container_pid(NS, pod)))
        .collect();
    for (pod, cgroup) in pods.iter().zip(&cgroups) {
        assert_eq!(cgroup.read("memory.limit_in_bytes"), LIMIT, "{pod}");
    }
    cluster.kubectl_ok(&["create", "namespace", "flood"]);
    let body = Arc::new(large_body(cluster, dir));
    let proxy = KubectlProxy::start(user);
    let target = Target {
        port: proxy.port,
        prefix: SERVICE_PROXY.to_owned(),
    };

    let flood = Flood::start(&target, body, CLIENTS, true);
    std::thread::sleep(Duration::from_secs(1));
    let created_during = !flood.done.load(Ordering::SeqCst);
    cluster.apply(&small_sealed(
        cluster,
        dir,
        "during",
        "created-during-the-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created during the flood",
        SECS_60,
        || {
            (cluster.secret_value("flood", "during", "token")? == "created-during-the-flood")
                .then_some(())
        },
    );
    let report = flood.finish();
    let peaks: Vec<String> = cgroups
        .iter()
        .map(|c| format!("{:.1} MiB", mib(c.read("memory.max_usage_in_bytes"))))
        .collect();
    eprintln!(
        "flood through the service proxy: peaks {peaks:?} of {} MiB; {report}; created during \
         the flood: {created_during}",
        LIMIT >> 20
    );
    drop(proxy);

    assert!(
        created_during,
        "the flood ended before the SealedSecret was created"
    );
    report.assert_answered_while_healthy("during the flood");
    assert_eq!(report.ok, CLIENTS, "{report}");
    assert!(
        report.busy + report.cut_at_proxy > 0,
        "the bound never refused a body: {report}"
    );
    for (pod, cgroup) in pods.iter().zip(&cgroups) {
        let peak = cgroup.read("memory.max_usage_in_bytes");
        assert_eq!(cgroup.oom_kills(), 0, "the OOM killer struck in {pod}");
        assert_eq!(
            cgroup.read("memory.failcnt"),
            0,
            "{pod} reached its limit (peak {peak} bytes)"
        );
        assert!(
            peak < LIMIT,
            "{pod}: peak {peak} bytes is not below {LIMIT}"
        );
        let obj = cluster.get_json(&["pod", pod, "-n", NS]).unwrap();
        let status = &obj["status"]["containerStatuses"][0];
        assert_eq!(status["restartCount"], 0, "{pod} restarted: {status}");
        assert_eq!(
            status["lastState"],
            serde_json::json!({}),
            "{pod}: {status}"
        );
        assert_eq!(status["ready"], true, "{pod} is not Ready: {status}");
    }
    cluster.apply(&small_sealed(
        cluster,
        dir,
        "after",
        "created-after-the-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created after the flood",
        SECS_60,
        || {
            (cluster.secret_value("flood", "after", "token")? == "created-after-the-flood")
                .then_some(())
        },
    );
}

/// `kubectl proxy` on a free loopback port as `kubeconfig`'s user: plain HTTP on the host,
/// each request sent on to the API server with that user's credentials. Stopped when dropped.
struct KubectlProxy {
    child: Child,
    port: u16,
}

impl KubectlProxy {
    fn start(kubeconfig: &Path) -> KubectlProxy {
        let port = sealant_e2e::free_port();
        let child = Command::new("kubectl")
            .args([
                "proxy",
                "--address",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run kubectl proxy");
        let proxy = KubectlProxy { child, port };
        wait_for("kubectl proxy to listen", SECS_60, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        });
        proxy
    }
}

impl Drop for KubectlProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
