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
use sealant_e2e::{ControlPlane, Controller, Proxy, ok, run, target_dir, text, wait_for};

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
/// After convergence, nothing may be written for this long (`ControlPlane::assert_settled`).
const QUIET: Duration = Duration::from_secs(5);

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
    setup_with(identities, &[], false).0
}

/// `setup`, with `extra` flags for every controller; with `proxied`, each controller reaches
/// the API server through its own `Proxy` (returned in the same order), so each can be
/// partitioned alone.
fn setup_with(identities: &[&str], extra: &[&str], proxied: bool) -> (Setup, Vec<Proxy>) {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let mut proxies = Vec::new();
    let controllers: Vec<Controller> = identities
        .iter()
        .map(|id| {
            let kubeconfig = if proxied {
                let target = cp.server.trim_start_matches("https://").to_owned();
                let proxy = Proxy::start(&target);
                let path =
                    cp.service_account_kubeconfig_at(&proxy.url(), &format!("{id}.kubeconfig"));
                proxies.push(proxy);
                path
            } else {
                sa.clone()
            };
            Controller::spawn(&kubeconfig, cp.dir.path(), id, extra)
        })
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
    let setup = Setup {
        cp,
        sa,
        controllers,
        recipient,
        work,
    };
    (setup, proxies)
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
    // Settled: no late duplicate or stray write, one active key; and still all right.
    s.cp.assert_settled(&[NS], QUIET);
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
    s.cp.assert_settled(&[NS], QUIET);
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
    s.cp.assert_settled(&[NS], QUIET);
    assert_logs_clean(&[&s.controllers[0].log]);
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

// ---- High availability: the old leader stays fenced, keys are made once, 403s are retried.

const REPLICAS: [&str; 2] = ["replica-a", "replica-b"];

/// The wall clock as the API server writes it in managedFields (RFC 3339, whole seconds).
fn utc_now() -> String {
    let mut cmd = Command::new("date");
    cmd.args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    ok(run(cmd, None)).trim().to_owned()
}

/// Every write `identity` made at or after `since` that the API server shows: managedFields
/// entries of manager `sealant-controller/<identity>` on Secrets and SealedSecrets in NS, the
/// key Secrets and the recipients ConfigMap, and Events it reported.
fn writes_by(cp: &ControlPlane, identity: &str, since: &str) -> Vec<String> {
    let manager = format!("sealant-controller/{identity}");
    let mut found = Vec::new();
    // kubectl leaves managedFields out unless asked.
    let lists: [&[&str]; 4] = [
        &["secrets", "-n", NS, "--show-managed-fields"],
        &["sealedsecrets", "-n", NS, "--show-managed-fields"],
        &["secrets", "-n", "sealant-system", "--show-managed-fields"],
        &[
            "configmaps",
            "-n",
            "sealant-system",
            "--show-managed-fields",
        ],
    ];
    for args in lists {
        let list = cp
            .get_json(args)
            .unwrap_or_else(|| panic!("cannot list {args:?}"));
        for item in list["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            for entry in item["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let time = entry["time"].as_str().unwrap_or_default();
                if entry["manager"] == manager.as_str() && time >= since {
                    found.push(format!("{} {name} at {time}", args[0]));
                }
            }
        }
    }
    let events = cp
        .get_json(&["events.v1.events.k8s.io", "-n", NS])
        .expect("cannot list events");
    for e in events["items"].as_array().unwrap() {
        let time = e["eventTime"]
            .as_str()
            .or(e["series"]["lastObservedTime"].as_str())
            .unwrap_or_default();
        if e["reportingInstance"] == identity && time >= since {
            found.push(format!("event {} at {time}", e["metadata"]["name"]));
        }
    }
    found
}

/// Whether the Secret `name` in NS has a managedFields entry from `identity`.
fn written_by(cp: &ControlPlane, name: &str, identity: &str) -> bool {
    let manager = format!("sealant-controller/{identity}");
    cp.get_json(&["secret", name, "-n", NS, "--show-managed-fields"])
        .is_some_and(|s| {
            s["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["manager"] == manager.as_str())
        })
}

fn is_leader(c: &Controller, leading: bool) -> bool {
    let want = format!("sealant_is_leader {}", u8::from(leading));
    c.get("/metrics")
        .is_some_and(|m| m.lines().any(|l| l == want))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeaderFault {
    /// SIGSTOP, then SIGCONT: a long GC-like pause.
    Pause,
    /// Its API traffic black-holed by its proxy, then restored.
    Partition,
}

/// The leader of two replicas is paused or partitioned for 25 s (longer than the 15 s lease):
/// the standby takes over and serves changes; once the old leader is back, it makes no write
/// at all (by field manager, Events included) while changes keep arriving for 10 s, and does
/// not take the Lease back.
fn the_old_leader_stays_fenced(fault: LeaderFault, label: &str) {
    let (mut s, proxies) = setup_with(&REPLICAS, &[], fault == LeaderFault::Partition);
    let leader = wait_for("a leader", SECS_30, || lease_holder(&s.cp));
    let li = REPLICAS.iter().position(|r| *r == leader).unwrap();
    let standby = REPLICAS[1 - li];
    let mut expected = Expected::new();
    let items: Vec<_> = (0..10).map(|i| (name(i), value(i, 1))).collect();
    expected.extend(items.iter().cloned());
    s.cp.apply(&s.seal(&items));
    wait_converged(&s.cp, &expected, Instant::now());
    assert!(
        written_by(&s.cp, &name(0), &leader),
        "the leader's writes carry its identity"
    );

    let fault_at = Instant::now();
    match fault {
        LeaderFault::Pause => s.controllers[li].pause(),
        LeaderFault::Partition => proxies[li].cut(),
    }
    // Partitioned, its HTTP server still answers: it must stop leading before the standby
    // may take the Lease (renew deadline 10 s < lease 15 s).
    let stood_down = (fault == LeaderFault::Partition).then(|| {
        let after = wait_for("the partitioned leader to stop leading", SECS_30, || {
            is_leader(&s.controllers[li], false).then(|| fault_at.elapsed())
        });
        let holder = lease_holder(&s.cp);
        assert_ne!(
            holder.as_deref(),
            Some(standby),
            "the standby held the Lease before the old leader had stopped"
        );
        after
    });
    let during: Vec<_> = (10..20).map(|i| (name(i), value(i, 1))).collect();
    expected.extend(during.iter().cloned());
    s.cp.apply(&s.seal(&during));
    let took_over = wait_converged(&s.cp, &expected, fault_at);
    assert_eq!(lease_holder(&s.cp).as_deref(), Some(standby));
    assert!(written_by(&s.cp, &name(10), standby));
    assert!(!written_by(&s.cp, &name(10), &leader));
    std::thread::sleep(Duration::from_secs(25).saturating_sub(fault_at.elapsed()));

    let since = utc_now();
    match fault {
        LeaderFault::Pause => s.controllers[li].resume(),
        LeaderFault::Partition => proxies[li].restore(),
    }
    let back = Instant::now();
    let out_for = back - fault_at;
    let not_leading = wait_for("the old leader to say it is not leading", SECS_30, || {
        is_leader(&s.controllers[li], false).then(|| back.elapsed())
    });
    // Changes keep arriving for 10 s: one new object and one changed value a second.
    let mut next = 20;
    while back.elapsed() < Duration::from_secs(10) {
        let batch = vec![
            (name(next), value(next, 1)),
            (name(next - 20), value(next - 20, 2)),
        ];
        expected.extend(batch.iter().cloned());
        s.cp.apply(&s.seal(&batch));
        next += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let converged = wait_converged(&s.cp, &expected, back);
    assert!(
        is_leader(&s.controllers[li], false),
        "the old leader leads again"
    );
    let writes = writes_by(&s.cp, &leader, &since);
    assert!(
        writes.is_empty(),
        "the old leader wrote after it came back, without the Lease: {writes:?}"
    );
    assert_eq!(
        lease_holder(&s.cp).as_deref(),
        Some(standby),
        "the old leader took the Lease back from a live leader"
    );
    for i in 20..next {
        assert!(
            written_by(&s.cp, &name(i), standby),
            "{} not written by the new leader",
            name(i)
        );
        assert!(!written_by(&s.cp, &name(i), &leader));
    }
    s.cp.assert_settled(&[NS], QUIET);
    assert!(s.controllers[li].alive(), "the old leader exited");
    assert!(
        s.controllers[li]
            .logs()
            .contains("leadership lapsed or lost: stopping all leader work"),
        "the old leader never said it stopped"
    );
    let stood_down = stood_down
        .map(|d| {
            format!("old leader stopped leading {d:.1?} after the cut (Lease still its own); ")
        })
        .unwrap_or_default();
    record(
        label,
        &format!(
            "2 replicas; leader out for {out_for:.1?} (lease 15 s, renew deadline 10 s); {stood_down}standby took over and served 10 new objects {took_over:.1?} after the fault; old leader back: reports not leading {not_leading:.1?} after, no write from it in the 10 s of changes ({} objects), all converged {converged:.1?} after it was back",
            (next - 20) * 2
        ),
    );
    let logs: Vec<&Path> = s.controllers.iter().map(|c| c.log.as_path()).collect();
    assert_logs_clean(&logs);
}

#[test]
fn paused_leader_makes_no_write_after_it_resumes() {
    the_old_leader_stays_fenced(LeaderFault::Pause, "leader SIGSTOP 25 s, SIGCONT");
}

#[test]
fn partitioned_leader_makes_no_write_after_the_partition_heals() {
    the_old_leader_stays_fenced(
        LeaderFault::Partition,
        "leader partitioned 25 s (TCP proxy black hole), healed",
    );
}

/// Two controllers (no leader election, so both renew) start at the same moment with a key
/// cutoff after the only key: both find a key due from the same keys; exactly one new active
/// key results. Then two `seal-controller rotate` at once: never two active keys, and every
/// run either made a key or said it lost the race.
#[test]
fn racing_renewals_make_exactly_one_new_active_key() {
    let mut s = setup(&["first"]);
    let first_keys = s.cp.key_states();
    assert_eq!(first_keys.len(), 1, "{first_keys:?}");
    assert_eq!(s.controllers.remove(0).terminate().code(), Some(0));
    // The cutoff is after the first key: both controllers find renewal due at start.
    std::thread::sleep(Duration::from_secs(1));
    let cutoff = utc_now();
    std::thread::sleep(Duration::from_secs(1));
    let flags = ["--leader-elect=false", "--key-cutoff-time", &cutoff];
    let started = Instant::now();
    let racers: Vec<Controller> = ["racer-a", "racer-b"]
        .iter()
        .map(|id| Controller::spawn(&s.sa, s.cp.dir.path(), id, &flags))
        .collect();
    let renewed = wait_for("a new key", Duration::from_secs(60), || {
        (s.cp.key_states().len() > 1).then(|| started.elapsed())
    });
    for r in &racers {
        r.wait_ready();
    }
    // Both have had every chance to make theirs.
    wait_for("both racers to settle", Duration::from_secs(60), || {
        racers
            .iter()
            .all(|r| r.logs().contains("keys loaded") && is_leader(r, true))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let keys = s.cp.key_states();
    let active: Vec<_> = keys.iter().filter(|(_, st)| st == "active").collect();
    assert_eq!(keys.len(), 2, "one new key, not two: {keys:?}");
    assert_eq!(active.len(), 1, "exactly one active key: {keys:?}");
    assert_ne!(
        active[0].0, first_keys[0].0,
        "the new key is the active one"
    );
    let raced = racers
        .iter()
        .any(|r| r.logs().contains("key renewal raced; the other one won"));
    // The loser's "raced" line quotes the error, which also says "new active key".
    let made: usize = racers
        .iter()
        .map(|r| {
            r.logs()
                .lines()
                .filter(|l| l.contains("new active key") && !l.contains("raced"))
                .count()
        })
        .sum();
    assert_eq!(made, 1, "one racer made the key");
    drop(racers);

    // Two rotations at once, from the same keys or not.
    let rotations: Vec<_> = (0..2)
        .map(|_| {
            Command::new(sealant_e2e::bin("seal-controller"))
                .args(["rotate", "--namespace", "sealant-system"])
                .env("KUBECONFIG", &s.sa)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = rotations
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    for o in outputs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("made key Secret") && err.contains("at the same time"),
            "a failed rotate must have lost the race, not failed otherwise: {err}"
        );
    }
    let after = s.cp.key_states();
    assert_eq!(after.len(), 2 + succeeded, "{after:?}");
    assert_eq!(
        after.iter().filter(|(_, st)| st == "active").count(),
        1,
        "{after:?}"
    );
    record(
        "racing renewals",
        &format!(
            "2 controllers started together, key cutoff in the past: one new active key {renewed:.1?} after start (the two reads raced: {raced}); 2 concurrent `rotate`: {succeeded} made a key, {} lost the race; always exactly 1 active key",
            2 - succeeded
        ),
    );
}

/// The controller's ClusterRole, with `verbs` removed from its rule on Secrets (or, with an
/// empty list, as deploy/ has it).
fn secrets_rule_without(cp: &ControlPlane, verbs: &[&str]) {
    let path = cp.dir.path().join("clusterrole.json");
    let mut role = cp.get_json(&["clusterrole", "sealant-controller"]).unwrap();
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["resources"] == serde_json::json!(["secrets"]) {
            rule["verbs"] = serde_json::json!(
                ["get", "list", "watch", "create", "update", "delete"]
                    .into_iter()
                    .filter(|v| !verbs.contains(v))
                    .collect::<Vec<_>>()
            );
        }
    }
    std::fs::write(&path, role.to_string()).unwrap();
    cp.kubectl_ok(&["replace", "-f", path.to_str().unwrap()]);
}

/// A 403 on a Secret write is retried with backoff: the Secret appears soon after the right
/// is restored, not at the next resync (10 minutes). And a Secret the controller wrote and
/// someone deleted while its Secret watch was down (no list/watch right, API server restarted)
/// is recreated once the watch is back, without waiting for the resync.
#[test]
fn forbidden_writes_are_retried_and_a_watch_gap_loses_nothing() {
    let s = setup(&["e2e"]);
    // 1. No right to create Secrets.
    secrets_rule_without(&s.cp, &["create"]);
    s.cp.apply(&s.seal(&[(name(0), value(0, 1))]));
    wait_for("Ready=False SecretForbidden", SECS_30, || {
        s.cp.ready(NS, &name(0))
            .filter(|(st, reason)| st == "False" && reason == "SecretForbidden")
    });
    // Long enough for the backoff to grow past its first steps.
    std::thread::sleep(Duration::from_secs(10));
    assert!(s.cp.get_json(&["secret", &name(0), "-n", NS]).is_none());
    secrets_rule_without(&s.cp, &[]);
    let restored = Instant::now();
    wait_for(
        "the Secret after the right is restored",
        Duration::from_secs(90),
        || s.cp.secret_value(NS, &name(0), "v"),
    );
    let created_after = restored.elapsed();
    let mut expected = Expected::from([(name(0), value(0, 1))]);
    wait_converged(&s.cp, &expected, restored);

    // 2. A watch gap: no list/watch of Secrets, and the API server restarted so the watch
    // that was running ends and cannot start again.
    secrets_rule_without(&s.cp, &["list", "watch"]);
    s.cp.restart_apiserver();
    s.cp.apply(&s.seal(&[(name(1), value(1, 1))]));
    expected.insert(name(1), value(1, 1));
    wait_for(
        "the Secret written during the gap",
        Duration::from_secs(60),
        || s.cp.secret_value(NS, &name(1), "v"),
    );
    s.cp.kubectl_ok(&["delete", "secret", &name(1), "-n", NS]);
    // The watch is down: nothing notices the delete (with a watch, drift is undone in about
    // a second).
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        s.cp.get_json(&["secret", &name(1), "-n", NS]).is_none(),
        "recreated while the Secret watch was meant to be down: the test made no gap"
    );
    secrets_rule_without(&s.cp, &[]);
    let watch_back = Instant::now();
    // wait_converged gives up long before the 10-minute resync: the re-list recreated it.
    let recreated = wait_converged(&s.cp, &expected, watch_back);
    s.cp.assert_settled(&[NS], QUIET);
    let logs = s.controllers[0].logs();
    assert!(logs.contains("retrying"), "no retry logged");
    record(
        "403 on Secret writes; Secret written and deleted within a watch gap",
        &format!(
            "Secret created {created_after:.1?} after the create right was restored (backoff 1 s doubling to 30 s; resync 10 min); a Secret written and deleted while the Secret watch was down recreated {recreated:.1?} after list/watch were restored"
        ),
    );
    assert_logs_clean(&[&s.controllers[0].log]);
}
