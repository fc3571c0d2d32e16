//! Attacks on a real cluster, one test each, as docs/security.md's threat table lists them:
//! the real `seal-controller` as the deploy/ ServiceAccount on a local Kubernetes 1.20 control
//! plane (kube-controller-manager's token controller running), the real `seal`, `kubectl` and
//! the stock `age` CLI. Each asserts what must NOT happen.

use std::time::Duration;

use sealant_e2e::{ControlPlane, Controller, age_opens, export_keys, ok, text, wait_for};

const SECS_30: Duration = Duration::from_secs(30);

fn cluster_with_controller() -> (ControlPlane, Controller) {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let ctl = Controller::spawn(&sa, cp.dir.path(), "attacks", &[]);
    ctl.wait_ready();
    (cp, ctl)
}

/// Issue 11 §1 through the real controller: after a rotation, the SealedSecret from Git has
/// the attacker's recipient in its record (appended, or in place of the break-glass entry),
/// and `seal reencrypt` sends it to the controller. Appended: refused, file unchanged.
/// Swapped: the reply opens for the new key and the break-glass key, and not for the
/// attacker or the retired key.
#[test]
fn reencrypt_through_the_controller_never_adds_a_reader() {
    let (cp, ctl) = cluster_with_controller();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    let cluster = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, dir);
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    let glass = text(&cp.seal(&["keygen", "-o", "glass.txt"], None, dir))
        .trim()
        .to_owned();
    let attacker = text(&cp.seal(&["keygen", "-o", "attacker.txt"], None, dir))
        .trim()
        .to_owned();
    let plain = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {password: oracle-secret}\n";
    let sealed = ok(cp.seal(&["-r", &cluster, "-r", &glass], Some(plain), dir));
    let record = format!("    - {cluster}\n    - {glass}\n");
    assert!(sealed.contains(&record), "{sealed}");
    let appended = sealed.replace(&record, &format!("{record}    - {attacker}\n"));
    let swapped = sealed.replace(&record, &format!("    - {cluster}\n    - {attacker}\n"));
    std::fs::write(dir.join("appended.yaml"), &appended).unwrap();
    std::fs::write(dir.join("swapped.yaml"), &swapped).unwrap();

    let new = cp.rotate();
    ctl.wait_for_key(&new);
    let mut states = export_keys(&cp, dir);
    states.sort();
    assert_eq!(states, ["active", "retired"]);

    let url = ctl.url();
    let refused = cp.seal(
        &["reencrypt", "--controller-url", &url, "appended.yaml"],
        None,
        dir,
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the record was altered"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("appended.yaml")).unwrap(),
        appended
    );

    ok(cp.seal(
        &["reencrypt", "--controller-url", &url, "swapped.yaml"],
        None,
        dir,
    ));
    let reply = std::fs::read_to_string(dir.join("swapped.yaml")).unwrap();
    assert_ne!(reply, swapped, "re-encrypted");
    assert!(!reply.contains("oracle-secret") && !reply.contains("b3JhY2xlLXNlY3JldA"));
    assert!(age_opens(dir, "swapped.yaml", "password", "active.txt"));
    assert!(age_opens(dir, "swapped.yaml", "password", "glass.txt"));
    assert!(!age_opens(dir, "swapped.yaml", "password", "attacker.txt"));
    assert!(!age_opens(dir, "swapped.yaml", "password", "retired.txt"));
    // The reply works in the cluster.
    cp.apply(&reply);
    let value = wait_for("the Secret from the reply", SECS_30, || {
        cp.secret_value("prod", "db", "password")
    });
    assert_eq!(value, "oracle-secret");
    assert!(!ctl.logs().contains("oracle-secret"));
}

/// Issue 11 §4: a template of type `kubernetes.io/service-account-token` naming a
/// ServiceAccount would have kube-controller-manager mint that account's token into the
/// Secret; a `bootstrap.kubernetes.io/token` in kube-system is a node-join credential. Both
/// are refused: Ready=False TypeNotAllowed, a Warning event, the metric; no Secret, no token.
#[test]
fn a_template_cannot_mint_a_service_account_token() {
    let (cp, ctl) = cluster_with_controller();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    // The token controller runs here: it gave prod's default ServiceAccount a token Secret.
    wait_for("the token controller to act in prod", SECS_30, || {
        let sa = cp.get_json(&["serviceaccount", "default", "-n", "prod"])?;
        sa["secrets"][0]["name"].as_str().map(str::to_owned)
    });
    let minting = [
        (
            "prod",
            "tok",
            "kubernetes.io/service-account-token",
            "  annotations: {kubernetes.io/service-account.name: default}\n",
        ),
        (
            "kube-system",
            "bootstrap-token-abcdef",
            "bootstrap.kubernetes.io/token",
            "",
        ),
    ];
    for (ns, name, type_, annotations) in minting {
        let plain = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}type: {type_}\nstringData: {{token-id: abcdef, token-secret: 0123456789abcdef, usage-bootstrap-authentication: 'true'}}\n"
        );
        let sealed = wait_for("published recipients", SECS_30, || {
            let out = cp.seal(&[], Some(&plain), dir);
            out.status.success().then(|| text(&out))
        });
        cp.apply(&sealed);
        wait_for("Ready=False TypeNotAllowed", SECS_30, || {
            (cp.ready(ns, name)? == ("False".into(), "TypeNotAllowed".into())).then_some(())
        });
        let events = cp
            .get_json(&[
                "events",
                "-n",
                ns,
                "--field-selector",
                &format!("involvedObject.name={name}"),
            ])
            .unwrap();
        assert!(
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "Warning" && e["reason"] == "TypeNotAllowed"),
            "{events}"
        );
    }
    // Given the token controller time to act on a Secret, had one been written: none was.
    std::thread::sleep(Duration::from_secs(3));
    for (ns, name, _, _) in minting {
        assert!(
            cp.get_json(&["secret", name, "-n", ns]).is_none(),
            "{ns}/{name} written"
        );
    }
    let metrics = ctl.get("/metrics").unwrap();
    // One per namespace, labelled with the condition's reason.
    let refused: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("sealant_unseal_errors_total{") && l.contains("reason=\"TypeNotAllowed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(refused >= 2, "{metrics}");
    assert!(!ctl.logs().contains("0123456789abcdef"));
}

/// Issue 11 §6: a value sealed to the current key and to a key since marked compromised still
/// opens (the cluster needs it), but is reported: `status.exposedTo` names the compromised key,
/// a Warning event says to change the values, and `sealant_sealed_secret_exposed` is 1 for it.
/// Offline, `seal check --compromised` lists the same file.
#[test]
fn a_value_a_compromised_key_also_opens_is_reported_exposed() {
    let (cp, ctl) = cluster_with_controller();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    let old = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, dir);
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    let new = cp.rotate();
    ctl.wait_for_key(&new);
    let plain = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {password: exposed-secret}\n";
    let sealed = ok(cp.seal(&["-r", &new, "-r", &old], Some(plain), dir));
    std::fs::write(dir.join("db.sealed.yaml"), &sealed).unwrap();
    cp.apply(&sealed);
    wait_for("the Secret", SECS_30, || {
        cp.secret_value("prod", "db", "password")
    });
    let status = cp.get_json(&["sealedsecret", "db", "-n", "prod"]).unwrap()["status"].clone();
    assert!(
        status.get("exposedTo").is_none(),
        "no compromised key yet: {status}"
    );

    // The old key leaked: an admin marks it compromised.
    cp.mark_compromised(&cp.key_in_state("retired").name);
    let status = wait_for("status.exposedTo", SECS_30, || {
        let status = cp.get_json(&["sealedsecret", "db", "-n", "prod"])?["status"].clone();
        (status["exposedTo"] == serde_json::json!([old])).then_some(status)
    });
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");
    assert_eq!(
        cp.secret_value("prod", "db", "password").as_deref(),
        Some("exposed-secret")
    );
    let events = cp
        .get_json(&[
            "events",
            "-n",
            "prod",
            "--field-selector",
            "involvedObject.name=db",
        ])
        .unwrap();
    let exposed: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Warning" && e["reason"] == "Exposed")
        .collect();
    assert_eq!(exposed.len(), 1, "{events}");
    // kubectl shows events.k8s.io events as core/v1 ones: the note is the message.
    let message = exposed[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&old), "{events}");
    let metrics = ctl.get("/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "sealant_sealed_secret_exposed{namespace=\"prod\",name=\"db\"} 1"),
        "{metrics}"
    );
    for place in [status.to_string(), events.to_string(), metrics, ctl.logs()] {
        assert!(!place.contains("exposed-secret") && !place.contains("ZXhwb3NlZC1zZWNyZXQ"));
    }

    // Offline, from the repository: the same file is listed.
    let check = cp.seal(
        &["check", "--compromised", &old, "db.sealed.yaml"],
        None,
        dir,
    );
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains("db.sealed.yaml"), "{}", text(&check));

    // Deleted, it is no longer reported.
    cp.kubectl_ok(&["delete", "sealedsecret", "db", "-n", "prod"]);
    wait_for("the series to go", SECS_30, || {
        (!ctl
            .get("/metrics")?
            .contains("sealant_sealed_secret_exposed{"))
        .then_some(())
    });
}
