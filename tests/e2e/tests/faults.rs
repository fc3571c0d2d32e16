//! Faults: the controller killed with `kill -9` in the middle of 1,000 creates, the
//! kube-apiserver crashed and restarted, etcd stopped for 30 s, etcd paused for 30 s, and the
//! leader of two replicas killed during bulk work. Each run must end with every Secret right
//! (value, one ownerReference to the right SealedSecret uid), none lost, none extra, every
//! SealedSecret Ready for its current generation, and no plaintext or identity in the logs.
//!
//! The time each took to converge is printed (`--no-capture` shows it) and appended to
//! `$CARGO_TARGET_DIR/fault-times.txt`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealant_e2e::{ControlPlane, Controller, ok, run, target_dir, text, wait_for};

/// Every object of these tests lives here.
const NS: &str = "bulk";
/// The start of every plaintext value: the logs must never contain it.
const PLAIN: &str = "fault-plain-";
const BULK: usize = 1000;
/// The controller (or the leader) dies once this many Secrets are written.
const KILL_AT: usize = 150;
const SECS_30: Duration = Duration::from_secs(30);
/// After a fault, everything must be right within this.
const CONVERGE: Duration = Duration::from_secs(150);

/// name → the plaintext its Secret must hold (item `v`).
type Expected = BTreeMap<String, String>;

fn name(i: usize) -> String {
    format!("s-{i:04}")
}

fn value(i: usize, generation: u32) -> String {
    format!("{PLAIN}{i:04}-g{generation}")
}

/// A control plane with deploy/ applied, namespace NS, and one controller per identity,
/// running as the deploy/ ServiceAccount with default flags (leader election on, 10m resync:
/// convergence below never relies on a resync).
struct Setup {
    cp: ControlPlane,
    sa: PathBuf,
    controllers: Vec<Controller>,
    recipient: String,
    work: tempfile::TempDir,
}

fn setup(identities: &[&str]) -> Setup {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let controllers: Vec<Controller> = identities
        .iter()
        .map(|id| Controller::spawn(&sa, cp.dir.path(), id, &[]))
        .collect();
    for c in &controllers {
        c.wait_ready();
    }
    cp.kubectl_ok(&["create", "namespace", NS]);
    let work = tempfile::tempdir().unwrap();
    let recipient = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, work.path());
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    assert!(recipient.starts_with("age1"), "{recipient}");
    Setup {
        cp,
        sa,
        controllers,
        recipient,
        work,
    }
}

impl Setup {
    /// SealedSecrets (a YAML stream) for these (name, value) pairs, sealed by the real `seal`
    /// (strict scope) to the cluster's recipient.
    fn seal(&self, items: &[(String, String)]) -> String {
        let mut plain = String::new();
        for (n, v) in items {
            plain.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {n}\n  namespace: {NS}\nstringData:\n  v: \"{v}\"\n"
            ));
        }
        ok(self
            .cp
            .seal(&["-r", &self.recipient], Some(&plain), self.work.path()))
    }

    /// Writes `yaml` to a file in the work directory and returns its path.
    fn file(&self, file: &str, yaml: &str) -> String {
        let path = self.work.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `kubectl create -f` of `yaml`, in the background.
    fn create_in_background(&self, file: &str, yaml: &str) -> Child {
        let path = self.file(file, yaml);
        self.cp
            .kubectl_cmd()
            .args(["create", "-f", &path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `kubectl apply -f` of `yaml`, retried until it succeeds: for changes made while the
    /// API is down. Returns when it has succeeded.
    fn apply_until_done(&self, file: &str, yaml: &str) -> std::thread::JoinHandle<u32> {
        let path = self.file(file, yaml);
        let kubeconfig = self.cp.kubeconfig.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let mut cmd = Command::new("kubectl");
                cmd.env("KUBECONFIG", &kubeconfig).args([
                    "apply",
                    "--request-timeout=10s",
                    "-f",
                    &path,
                ]);
                if run(cmd, None).status.success() {
                    return attempts;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(180),
                    "kubectl apply -f {path} still failing after {attempts} attempts"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    }
}

/// The number of Secrets the controller has written in NS.
fn managed_secrets(cp: &ControlPlane) -> Option<usize> {
    let out = cp.kubectl(&[
        "get",
        "secrets",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/managed-by=sealant",
        "-o",
        "name",
        "--request-timeout=10s",
    ]);
    out.status
        .success()
        .then(|| text(&out).lines().filter(|l| !l.is_empty()).count())
}

/// Ok when NS holds exactly the expected objects, all right; else what is wrong.
fn check(cp: &ControlPlane, expected: &Expected) -> Result<(), String> {
    let sealed = cp
        .get_json(&["sealedsecrets", "-n", NS, "--request-timeout=20s"])
        .ok_or("cannot list SealedSecrets")?;
    let secrets = cp
        .get_json(&["secrets", "-n", NS, "--request-timeout=20s"])
        .ok_or("cannot list Secrets")?;
    let sealed = sealed["items"].as_array().ok_or("no items")?;
    let mut uids = BTreeMap::new();
    let mut not_ready = Vec::new();
    for s in sealed {
        let n = s["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ready = s["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if !ready || s["status"]["observedGeneration"] != s["metadata"]["generation"] {
            not_ready.push(n.clone());
        }
        uids.insert(
            n,
            s["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
        );
    }
    if uids.len() != expected.len() || !expected.keys().all(|k| uids.contains_key(k)) {
        return Err(format!(
            "{} SealedSecrets, {} expected",
            uids.len(),
            expected.len()
        ));
    }
    // Every Secret in NS but the ServiceAccount token is the controller's.
    let secrets: Vec<_> = secrets["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter(|s| s["type"] != "kubernetes.io/service-account-token")
        .collect();
    let mut wrong = Vec::new();
    let mut found = BTreeMap::new();
    for s in &secrets {
        let n = s["metadata"]["name"].as_str().unwrap_or_default();
        *found.entry(n).or_insert(0) += 1;
        let Some(want) = expected.get(n) else {
            wrong.push(format!("{n}: not expected"));
            continue;
        };
        let got = s["data"]["v"]
            .as_str()
            .and_then(|v| STANDARD.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        if got.as_deref() != Some(want.as_str()) {
            // Values are test data, but keep them out of failure output anyway.
            wrong.push(format!("{n}: wrong or missing value"));
        }
        let owners = s["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let right_owner = owners.len() == 1
            && owners[0]["kind"] == "SealedSecret"
            && owners[0]["name"] == n
            && owners[0]["uid"].as_str() == uids.get(n).map(String::as_str)
            && owners[0]["controller"] == true;
        if !right_owner {
            wrong.push(format!("{n}: ownerReferences {owners:?}"));
        }
        if s["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "sealant" {
            wrong.push(format!("{n}: no managed-by label"));
        }
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !found.contains_key(k.as_str()))
        .collect();
    if !missing.is_empty() || !wrong.is_empty() || !not_ready.is_empty() {
        return Err(format!(
            "{} Secrets for {} expected; missing {}: {:?}; wrong {}: {:?}; not Ready {}: {:?}",
            secrets.len(),
            expected.len(),
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            wrong.len(),
            wrong.iter().take(5).collect::<Vec<_>>(),
            not_ready.len(),
            not_ready.iter().take(5).collect::<Vec<_>>(),
        ));
    }
    // Names are unique per namespace, so this holds; checked so a miscount cannot hide.
    assert_eq!(secrets.len(), expected.len());
    Ok(())
}

/// Polls `check` until everything is right; returns how long that took from `since`.
#[track_caller]
fn wait_converged(cp: &ControlPlane, expected: &Expected, since: Instant) -> Duration {
    let start = Instant::now();
    loop {
        let result = check(cp, expected);
        match result {
            Ok(()) => return since.elapsed(),
            Err(e) if start.elapsed() > CONVERGE => {
                panic!("not converged {CONVERGE:?} after the fault: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Prints a figure and appends it to target/fault-times.txt.
fn record(test: &str, figures: &str) {
    eprintln!("{test}: {figures}");
    let path = target_dir().join("fault-times.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    writeln!(f, "{when} {test}: {figures}").unwrap();
}

fn assert_logs_clean(logs: &[&Path]) {
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(!text.is_empty(), "{} is empty", log.display());
        assert!(
            !text.contains("AGE-SECRET-KEY-"),
            "a private key in {}",
            log.display()
        );
        assert!(!text.contains(PLAIN), "plaintext in {}", log.display());
    }
}

fn lease_holder(cp: &ControlPlane) -> Option<String> {
    let lease = cp.get_json(&["lease", "sealant-controller", "-n", "sealant-system"])?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// 1,000 SealedSecrets (one `kubectl create -f`) and what their Secrets must hold.
fn bulk(s: &Setup) -> (String, Expected) {
    let items: Vec<(String, String)> = (0..BULK).map(|i| (name(i), value(i, 1))).collect();
    let sealed = s.seal(&items);
    (sealed, items.into_iter().collect())
}

/// Waits for `kubectl create` to finish and checks it created everything.
fn finish(mut creating: Child) {
    let status = creating.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(creating.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "kubectl create failed: {err}");
}

#[test]
fn controller_killed_mid_bulk_restarts_with_every_secret_right() {
    let mut s = setup(&["e2e"]);
    let (sealed, expected) = bulk(&s);
    let mut creating = s.create_in_background("bulk.yaml", &sealed);
    let started = Instant::now();
    let at_kill = wait_for("the first Secrets", Duration::from_secs(120), || {
        managed_secrets(&s.cp).filter(|n| *n >= KILL_AT)
    });
    let mut first = s.controllers.remove(0);
    first.kill();
    let killed = Instant::now();
    let still_creating = creating.try_wait().unwrap().is_none();
    assert!(
        at_kill < BULK,
        "the controller finished before it could be killed"
    );
    // As a container restart in the same Pod: same identity, so it holds the Lease at once.
    let second = Controller::spawn(&s.sa, s.cp.dir.path(), "e2e", &[]);
    finish(creating);
    let created = started.elapsed();
    let took = wait_converged(&s.cp, &expected, killed);
    record(
        "controller kill -9 mid-bulk",
        &format!(
            "{BULK} SealedSecrets; killed at {at_kill} Secrets written, {:.1?} into the creates (kubectl create still running: {still_creating}, all created after {created:.1?}); every Secret right {took:.1?} after the kill",
            killed - started
        ),
    );
    // A second check after a pause: nothing undoes it (no late duplicate or stray write).
    std::thread::sleep(Duration::from_secs(2));
    check(&s.cp, &expected).unwrap();
    assert_logs_clean(&[&first.log, &second.log]);
}

#[test]
fn leader_killed_mid_bulk_the_standby_finishes() {
    let mut s = setup(&["replica-a", "replica-b"]);
    let leader = wait_for("a leader", SECS_30, || lease_holder(&s.cp));
    let (sealed, expected) = bulk(&s);
    let creating = s.create_in_background("bulk.yaml", &sealed);
    let started = Instant::now();
    let at_kill = wait_for("the first Secrets", Duration::from_secs(120), || {
        managed_secrets(&s.cp).filter(|n| *n >= KILL_AT)
    });
    let index = if leader == "replica-a" { 0 } else { 1 };
    let mut dead = s.controllers.remove(index);
    let standby = s.controllers.remove(0);
    dead.kill();
    let killed = Instant::now();
    assert!(
        at_kill < BULK,
        "the leader finished before it could be killed"
    );
    finish(creating);
    let took = wait_converged(&s.cp, &expected, killed);
    let holder = lease_holder(&s.cp);
    record(
        "leader kill -9 mid-bulk",
        &format!(
            "{BULK} SealedSecrets, 2 replicas; leader killed at {at_kill} Secrets written, {:.1?} into the creates; standby finished: every Secret right {took:.1?} after the kill (lease 15 s)",
            killed - started
        ),
    );
    assert_ne!(holder.as_deref(), Some(leader.as_str()));
    assert!(holder.is_some());
    assert!(
        standby
            .get("/metrics")
            .unwrap()
            .lines()
            .any(|l| l == "sealant_is_leader 1")
    );
    assert_logs_clean(&[&dead.log, &standby.log]);
}

/// How an outage is made and ended; `end` returns once the API answers again.
struct Outage {
    name: &'static str,
    begin: fn(&ControlPlane),
    /// How long the component stays down (beyond what `begin` and `end` take).
    down: Duration,
    /// Secrets deleted in etcd while the API server is down (empty when etcd is the one
    /// down): no watch event ever reports them, only the re-list after the restart.
    deleted_behind: std::ops::Range<usize>,
    end: fn(&ControlPlane),
}

/// The controller runs through an outage with changes before, during and after it, and
/// converges without a restart (same process).
fn survive(outage: Outage) {
    let mut s = setup(&["e2e"]);
    let mut expected = Expected::new();
    // 100 objects, converged.
    let items: Vec<_> = (0..100).map(|i| (name(i), value(i, 1))).collect();
    expected.extend(items.iter().cloned());
    s.cp.apply(&s.seal(&items));
    wait_converged(&s.cp, &expected, Instant::now());
    let pid = s.controllers[0].pid();

    // Just before: 20 changed values, still in flight when the outage begins.
    let before: Vec<_> = (0..20).map(|i| (name(i), value(i, 2))).collect();
    expected.extend(before.iter().cloned());
    s.cp.apply(&s.seal(&before));

    // During: 20 changed values and 20 new objects, applied as soon as the API takes them.
    let during: Vec<_> = (20..40)
        .map(|i| (name(i), value(i, 3)))
        .chain((100..120).map(|i| (name(i), value(i, 1))))
        .collect();
    expected.extend(during.iter().cloned());
    let during_yaml = s.seal(&during);
    let fault = Instant::now();
    (outage.begin)(&s.cp);
    let applying = s.apply_until_done("during.yaml", &during_yaml);
    for i in outage.deleted_behind.clone() {
        s.cp.etcd_delete(&format!("/registry/secrets/{NS}/{}", name(i)));
    }
    std::thread::sleep(outage.down);
    // Any request the controller is blocked in must not take the process down.
    assert!(
        s.controllers[0].alive(),
        "the controller exited during the outage"
    );
    (outage.end)(&s.cp);
    wait_for("the API", Duration::from_secs(60), || {
        s.cp.kubectl(&["get", "--raw", "/readyz"])
            .status
            .success()
            .then_some(())
    });
    let back = Instant::now();
    let down_for = back - fault;

    // After: drift (10 Secrets deleted), 10 changed values, 20 new objects.
    let deleted: Vec<String> = (40..50).map(name).collect();
    let mut args = vec!["delete", "secret", "-n", NS, "--wait=false"];
    args.extend(deleted.iter().map(String::as_str));
    s.cp.kubectl_ok(&args);
    let after: Vec<_> = (50..60)
        .map(|i| (name(i), value(i, 4)))
        .chain((120..140).map(|i| (name(i), value(i, 1))))
        .collect();
    expected.extend(after.iter().cloned());
    s.cp.apply(&s.seal(&after));
    let attempts = applying.join().unwrap();

    let took = wait_converged(&s.cp, &expected, back);
    let ctl = &mut s.controllers[0];
    assert!(ctl.alive(), "the controller exited");
    assert_eq!(ctl.pid(), pid);
    record(
        outage.name,
        &format!(
            "{} SealedSecrets (100 before; 20 changed just before, 20 changed + 20 new during (kubectl apply succeeded on attempt {attempts}), {} Secrets deleted in etcd during, 10 Secrets deleted + 10 changed + 20 new after); API unavailable {down_for:.1?}; every Secret right {took:.1?} after the API was back ({:.1?} after the fault began); same controller process",
            expected.len(),
            outage.deleted_behind.len(),
            took + down_for
        ),
    );
    // Watches are retried at most 5 s apart, and resuming one on a restarted API server costs
    // one more retry (410 Expired, then a relist): about 10 s, plus the work. kube's default
    // backoff (up to 60 s per retry) took 60-70 s here.
    assert!(
        took < Duration::from_secs(30),
        "{took:?} to converge after the API was back"
    );
    assert_logs_clean(&[&ctl.log]);
}

#[test]
fn apiserver_restart_the_controller_reconnects_and_converges() {
    survive(Outage {
        name: "kube-apiserver kill -9 + restart",
        begin: ControlPlane::kill_apiserver,
        down: Duration::from_secs(5),
        deleted_behind: 60..70,
        end: ControlPlane::start_apiserver,
    });
}

#[test]
fn etcd_stopped_30s_the_controller_converges() {
    survive(Outage {
        name: "etcd stopped 30 s (SIGTERM, restart)",
        begin: ControlPlane::stop_etcd,
        down: SECS_30,
        deleted_behind: 0..0,
        end: ControlPlane::start_etcd,
    });
}

#[test]
fn etcd_paused_30s_the_controller_converges() {
    survive(Outage {
        name: "etcd paused 30 s (SIGSTOP, SIGCONT)",
        begin: ControlPlane::pause_etcd,
        down: SECS_30,
        deleted_behind: 0..0,
        end: ControlPlane::resume_etcd,
    });
}
