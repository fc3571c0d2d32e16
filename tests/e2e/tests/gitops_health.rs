//! What Flux (kstatus), `kubectl wait` and Argo CD make of the statuses the real controller
//! writes on a real control plane (issue 12 §2, §3): for each outcome (opened, no key, wrong
//! scope, not owned, compromised key, a write being retried), kstatus's documented rules
//! (sealant_e2e::kstatus) and Argo CD's health check under Lua 5.1 (sealant_e2e::argocd) are
//! run on the object as the API server returns it.

use std::process::Command;
use std::time::Duration;

use sealant_e2e::kstatus::{self, Status};
use sealant_e2e::{ControlPlane, Controller, argocd, ok, run, text, wait_for};
use serde_json::Value;

const SECS_30: Duration = Duration::from_secs(30);
const NS: &str = "prod";

fn plain(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\nstringData: {{v: {value}}}\n"
    )
}

/// A recipient whose identity no cluster holds.
fn foreign_recipient() -> String {
    let out = ok(run(Command::new("age-keygen"), None));
    out.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen prints the public key")
        .to_owned()
}

/// The object once the controller reported on its current generation with Ready `ready`.
fn reported(cp: &ControlPlane, name: &str, ready: &str, reason: &str) -> Value {
    wait_for(&format!("{name}: Ready={ready} {reason}"), SECS_30, || {
        let obj = cp.get_json(&["sealedsecret", name, "-n", NS])?;
        let observed = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
        let matches = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == ready && c["reason"] == reason);
        (observed && matches).then_some(obj)
    })
}

fn ready_message(obj: &Value) -> String {
    obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap()
        .to_owned()
}

/// kstatus's and Argo CD's verdicts on `obj`, with the messages.
#[track_caller]
fn assert_verdicts(obj: &Value, kstatus: Status, argo: &str) {
    let name = obj["metadata"]["name"].as_str().unwrap();
    let (status, message) = kstatus::compute(obj);
    assert_eq!(status, kstatus, "{name}: kstatus says {message}: {obj}");
    let (health, argo_message) = argocd::health(obj);
    assert_eq!(health, argo, "{name}: Argo CD says {argo_message}: {obj}");
    if argo != "Progressing" || obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    {
        assert_eq!(argo_message, ready_message(obj), "{name}");
        assert_eq!(message, ready_message(obj), "{name}");
    }
}

/// `kubectl wait --for=condition=Ready sealedsecrets.sealant.dev/NAME`: its exit status and
/// what it printed.
fn kubectl_wait(cp: &ControlPlane, name: &str, timeout: &str) -> (bool, String) {
    let resource = format!("sealedsecrets.sealant.dev/{name}");
    let timeout = format!("--timeout={timeout}");
    let out = cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &resource,
        "-n",
        NS,
        &timeout,
    ]);
    (
        out.status.success(),
        format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Takes "create" out of the controller's ClusterRole rule on Secrets, or puts it back.
fn may_create_secrets(cp: &ControlPlane, allowed: bool) {
    let mut role = cp.get_json(&["clusterrole", "sealant-controller"]).unwrap();
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["resources"] == serde_json::json!(["secrets"]) {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            verbs.retain(|v| v != "create");
            if allowed {
                verbs.push("create".into());
            }
        }
    }
    let path = cp.dir.path().join("clusterrole.json");
    std::fs::write(&path, role.to_string()).unwrap();
    cp.kubectl_ok(&["replace", "-f", path.to_str().unwrap()]);
}

#[test]
fn flux_kubectl_wait_and_argo_cd_read_the_status_the_controller_writes() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let ctl = Controller::spawn(&sa, cp.dir.path(), "health", &[]);
    ctl.wait_ready();
    cp.kubectl_ok(&["create", "namespace", NS]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let old = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, dir);
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    let new = cp.rotate();
    ctl.wait_for_key(&new);
    let seal = |name: &str, recipient: &str| {
        ok(cp.seal(&["-r", recipient], Some(&plain(name, "health-value")), dir))
    };

    // Opened: Current, Healthy; `kubectl wait` returns at once.
    cp.apply(&seal("good", &new));
    let good = reported(&cp, "good", "True", "Unsealed");
    assert_verdicts(&good, Status::Current, "Healthy");
    let conditions = good["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "Ready alone: {good}");
    assert_eq!(
        conditions[0]["observedGeneration"],
        good["metadata"]["generation"]
    );
    let (waited, said) = kubectl_wait(&cp, "good", "60s");
    assert!(waited, "kubectl wait on a good object: {said}");
    assert!(said.contains("condition met"), "{said}");

    // Failures only a person ends: Stalled, so kstatus says Failed and Argo CD Degraded.
    cp.apply(&seal("nokey", &foreign_recipient()));
    cp.apply(&seal("moved", &new).replace("name: moved", "name: elsewhere"));
    cp.create_generic_secret(NS, "taken", "v=hand-made");
    cp.apply(&seal("taken", &new));
    cp.apply(&seal("leaked", &old));
    for (name, reason) in [
        ("nokey", "NoKey"),
        ("elsewhere", "ScopeMismatch"),
        ("taken", "NotOwned"),
    ] {
        let obj = reported(&cp, name, "False", reason);
        assert_verdicts(&obj, Status::Failed, "Degraded");
        let stalled = obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Stalled")
            .unwrap_or_else(|| panic!("{name}: no Stalled condition: {obj}"));
        assert_eq!(stalled["status"], "True");
        assert_eq!(stalled["reason"], reason);
    }
    // `kubectl wait` on an object that cannot be opened times out (non-zero exit).
    let (waited, said) = kubectl_wait(&cp, "nokey", "3s");
    assert!(
        !waited,
        "kubectl wait returned for a SealedSecret with no key: {said}"
    );
    assert!(said.contains("timed out"), "{said}");

    // A key marked compromised: what only it opens is no longer written.
    reported(&cp, "leaked", "True", "Unsealed");
    cp.mark_compromised(&cp.key_in_state("retired").name);
    let leaked = reported(&cp, "leaked", "False", "KeyCompromised");
    assert_verdicts(&leaked, Status::Failed, "Degraded");

    // A Secret write the API server refuses for now (the controller lost the right to create
    // Secrets): retried with backoff, so Reconciling: InProgress, Progressing. Once the right
    // is back, Current.
    may_create_secrets(&cp, false);
    cp.apply(&seal("forbidden", &new));
    let retrying = reported(&cp, "forbidden", "False", "SecretForbidden");
    assert_verdicts(&retrying, Status::InProgress, "Progressing");
    assert!(ready_message(&retrying).contains("forbidden"), "{retrying}");
    may_create_secrets(&cp, true);
    let through = wait_for(
        "forbidden: opened after the retry",
        Duration::from_secs(90),
        || {
            let obj = cp.get_json(&["sealedsecret", "forbidden", "-n", NS])?;
            (kstatus::compute(&obj).0 == Status::Current).then_some(obj)
        },
    );
    assert_verdicts(&through, Status::Current, "Healthy");
    assert_eq!(
        through["status"]["conditions"].as_array().unwrap().len(),
        1,
        "no Reconciling left: {through}"
    );

    // Edited while the controller is frozen: the new generation is not yet observed, so
    // InProgress and Progressing, then Current once it runs again.
    ctl.pause();
    cp.kubectl_ok(&[
        "patch",
        "sealedsecret",
        "good",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"labels":{"edited":"yes"}}}}}"#,
    ]);
    let edited = cp.get_json(&["sealedsecret", "good", "-n", NS]).unwrap();
    assert_ne!(
        edited["metadata"]["generation"], edited["status"]["observedGeneration"],
        "{edited}"
    );
    assert_eq!(kstatus::compute(&edited).0, Status::InProgress);
    let (health, message) = argocd::health(&edited);
    assert_eq!(health, "Progressing", "{message}");
    ctl.resume();
    let good = reported(&cp, "good", "True", "Unsealed");
    assert_verdicts(&good, Status::Current, "Healthy");
}
