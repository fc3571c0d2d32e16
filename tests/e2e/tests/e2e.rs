//! End-to-end: the real `seal-controller` runs as the deploy/ ServiceAccount on a local
//! Kubernetes 1.20 control plane; the real `seal` and `kubectl` drive it.

use std::path::Path;
use std::time::{Duration, Instant};

use sealant_e2e::{ControlPlane, Controller, assert_no_plaintext, ok, run, text, wait_for};

const SECS_30: Duration = Duration::from_secs(30);

fn secret_yaml(name: &str, ns: &str, items: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\ntype: kubernetes.io/basic-auth\nstringData:\n"
    );
    for (k, v) in items {
        s.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    s
}

/// A cluster with deploy/ applied and the controller running as its ServiceAccount.
fn cluster_with_controller(extra: &[&str]) -> (ControlPlane, Controller) {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let ctl = Controller::spawn(&sa, cp.dir.path(), "e2e", extra);
    ctl.wait_ready();
    (cp, ctl)
}

#[test]
fn the_whole_loop_drift_scope_gc_and_takeover() {
    let (cp, ctl) = cluster_with_controller(&["--resync-period", "30s"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    cp.kubectl_ok(&["create", "namespace", "staging"]);

    // 1. fetch-keys → seal (recipients from the cluster) → kubectl apply → the Secret.
    let recipients = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, dir);
        out.status.success().then(|| text(&out))
    });
    assert!(recipients.starts_with("age1"), "{recipients}");
    let plain = secret_yaml(
        "db",
        "prod",
        &[("username", "admin"), ("password", "hunter2-e2e")],
    );
    ok(cp.seal(&["-w", "db.yaml"], Some(&plain), dir));
    let sealed = std::fs::read_to_string(dir.join("db.yaml")).unwrap();
    assert!(sealed.contains(recipients.trim()) && !sealed.contains("hunter2-e2e"));
    let applied = Instant::now();
    cp.kubectl_ok(&["apply", "-f", dir.join("db.yaml").to_str().unwrap()]);
    wait_for("Secret prod/db", SECS_30, || {
        cp.secret_value("prod", "db", "password")
    });
    eprintln!("apply → Secret: {:?}", applied.elapsed());
    let secret = cp.get_json(&["secret", "db", "-n", "prod"]).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(secret["metadata"]["labels"]["app"], "db");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "SealedSecret"
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        cp.secret_value("prod", "db", "username").as_deref(),
        Some("admin")
    );
    wait_for("Ready=True", SECS_30, || {
        (cp.ready("prod", "db")? == ("True".into(), "Unsealed".into())).then_some(())
    });

    // 2. seal merge a changed value → the Secret follows.
    ok(cp.seal(
        &[
            "merge",
            "db.yaml",
            "--from-literal",
            "password=n3w-e2e-pass",
        ],
        None,
        dir,
    ));
    cp.kubectl_ok(&["apply", "-f", dir.join("db.yaml").to_str().unwrap()]);
    wait_for("the merged value", SECS_30, || {
        (cp.secret_value("prod", "db", "password")? == "n3w-e2e-pass").then_some(())
    });

    // 3. A strict SealedSecret copied into another namespace: no Secret, Ready=False, a Warning.
    let moved = std::fs::read_to_string(dir.join("db.yaml"))
        .unwrap()
        .replace("namespace: prod", "namespace: staging");
    cp.apply(&moved);
    wait_for("Ready=False in staging", SECS_30, || {
        (cp.ready("staging", "db")? == ("False".into(), "ScopeMismatch".into())).then_some(())
    });
    assert!(cp.get_json(&["secret", "db", "-n", "staging"]).is_none());
    wait_for("a Warning event", SECS_30, || {
        let events = cp.get_json(&["events.events.k8s.io", "-n", "staging"])?;
        events["items"]
            .as_array()?
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "ScopeMismatch")
            .then_some(())
    });

    // 4. Drift: an edited Secret is restored; a deleted one is recreated.
    cp.patch_secret("prod", "db", r#"{"data":{"password":"ZWRpdGVk"}}"#);
    let edited = Instant::now();
    wait_for("the edit to be reverted", SECS_30, || {
        (cp.secret_value("prod", "db", "password")? == "n3w-e2e-pass").then_some(())
    });
    eprintln!("edit reverted in {:?}", edited.elapsed());
    cp.kubectl_ok(&["delete", "secret", "db", "-n", "prod"]);
    wait_for("the Secret to be recreated", SECS_30, || {
        cp.secret_value("prod", "db", "password")
    });
    // Drift is more than a changed value: an extra item, extra labels and annotations, and a
    // removed owner reference are each put back to exactly the desired Secret.
    let shape = || {
        let s = cp.get_json(&["secret", "db", "-n", "prod"])?;
        let m = &s["metadata"];
        let owners: Vec<_> = m["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| (o["uid"].clone(), o["controller"].clone()))
            .collect();
        Some((
            s["data"].clone(),
            m["labels"].clone(),
            m["annotations"].clone(),
            owners,
        ))
    };
    let desired = shape().unwrap();
    assert_eq!(desired.3.len(), 1, "one owner: {desired:?}");
    let drifts: [&[&str]; 4] = [
        &[
            "patch",
            "secret",
            "db",
            "-n",
            "prod",
            "-p",
            r#"{"data":{"extra":"ZXh0cmE="}}"#,
        ],
        &["label", "secret", "db", "-n", "prod", "injected=yes"],
        &["annotate", "secret", "db", "-n", "prod", "injected=yes"],
        &[
            "patch",
            "secret",
            "db",
            "-n",
            "prod",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
        ],
    ];
    for drift in drifts {
        cp.kubectl_ok(drift);
        wait_for(&format!("{drift:?} to be undone"), SECS_30, || {
            (shape()? == desired).then_some(())
        });
    }

    // 6. A pre-existing unmanaged Secret is left alone, then taken over once annotated.
    cp.create_generic_secret("prod", "legacy", "token=old-token");
    let legacy = secret_yaml("legacy", "prod", &[("token", "sealed-token-e2e")])
        .replace("type: kubernetes.io/basic-auth\n", "");
    ok(cp.seal(&["-w", "legacy.yaml"], Some(&legacy), dir));
    cp.kubectl_ok(&["apply", "-f", dir.join("legacy.yaml").to_str().unwrap()]);
    wait_for("Ready=False NotOwned", SECS_30, || {
        (cp.ready("prod", "legacy")? == ("False".into(), "NotOwned".into())).then_some(())
    });
    assert_eq!(
        cp.secret_value("prod", "legacy", "token").as_deref(),
        Some("old-token"),
        "untouched"
    );
    cp.kubectl_ok(&[
        "annotate",
        "secret",
        "legacy",
        "-n",
        "prod",
        "sealant.dev/managed=true",
    ]);
    wait_for("the takeover", SECS_30, || {
        (cp.secret_value("prod", "legacy", "token")? == "sealed-token-e2e").then_some(())
    });
    wait_for("Ready=True after takeover", SECS_30, || {
        (cp.ready("prod", "legacy")?.0 == "True").then_some(())
    });
    // Taken over exactly: its items, one owner (the SealedSecret), the annotation kept.
    let legacy_secret = cp.get_json(&["secret", "legacy", "-n", "prod"]).unwrap();
    let items: Vec<_> = legacy_secret["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(items, ["token"], "{legacy_secret}");
    let owners = legacy_secret["metadata"]["ownerReferences"]
        .as_array()
        .unwrap();
    let sealed_uid = cp
        .get_json(&["sealedsecret", "legacy", "-n", "prod"])
        .unwrap()["metadata"]["uid"]
        .clone();
    assert_eq!(owners.len(), 1, "{legacy_secret}");
    assert_eq!(owners[0]["uid"], sealed_uid);
    assert_eq!(
        legacy_secret["metadata"]["annotations"]["sealant.dev/managed"],
        "true"
    );

    // 5. Deleting the SealedSecret deletes the Secret through the garbage collector, unless
    // its template says keep-on-delete.
    let kept = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kept\n  namespace: prod\n  annotations: {sealant.dev/keep-on-delete: 'true'}\nstringData: {token: kept-token-e2e}\n";
    ok(cp.seal(&["-w", "kept.yaml"], Some(kept), dir));
    cp.kubectl_ok(&["apply", "-f", dir.join("kept.yaml").to_str().unwrap()]);
    wait_for("Secret prod/kept", SECS_30, || {
        cp.secret_value("prod", "kept", "token")
    });
    let kept_secret = cp.get_json(&["secret", "kept", "-n", "prod"]).unwrap();
    assert!(
        kept_secret["metadata"]["ownerReferences"].is_null(),
        "{kept_secret}"
    );
    cp.kubectl_ok(&["delete", "sealedsecret", "db", "kept", "-n", "prod"]);
    wait_for("garbage collection", Duration::from_secs(120), || {
        cp.get_json(&["secret", "db", "-n", "prod"])
            .is_none()
            .then_some(())
    });
    // The collector has acted on db; kept is still there, with its value.
    assert_eq!(
        cp.secret_value("prod", "kept", "token").as_deref(),
        Some("kept-token-e2e")
    );

    // 12. Nothing secret in the controller's log.
    assert_no_plaintext(
        &cp,
        &ctl,
        &[
            "hunter2-e2e",
            "n3w-e2e-pass",
            "sealed-token-e2e",
            "kept-token-e2e",
        ],
    );
}

#[test]
fn rotation_reencrypt_restart_and_break_glass() {
    let (cp, mut ctl) = cluster_with_controller(&[]);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    let old = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&["fetch-keys"], None, repo);
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    let config = |r: &str| {
        format!(
            "recipients:\n  cluster: {r}\nrules:\n  - path: 'apps/**'\n    recipients: [cluster]\n"
        )
    };
    std::fs::write(repo.join(".sealant.yaml"), config(&old)).unwrap();
    std::fs::create_dir_all(repo.join("apps")).unwrap();
    for i in 0..3 {
        let plain = secret_yaml(
            &format!("app{i}"),
            "prod",
            &[("password", &format!("rotate-secret-{i}"))],
        );
        ok(cp.seal(&["-w", &format!("apps/app{i}.yaml")], Some(&plain), repo));
    }
    cp.kubectl_ok(&["apply", "-f", repo.join("apps").to_str().unwrap()]);
    for i in 0..3 {
        wait_for("the first Secrets", SECS_30, || {
            cp.secret_value("prod", &format!("app{i}"), "password")
        });
    }

    // 7. Rotation: new seals use the new key; old objects still open.
    let new = cp.rotate();
    assert!(new.starts_with("age1") && new != old);
    wait_for("the new recipient to be published", SECS_30, || {
        (text(&cp.seal(&["fetch-keys"], None, repo)).trim() == new).then_some(())
    });
    let fresh = secret_yaml("fresh", "prod", &[("password", "fresh-secret")]);
    // Outside the repo (no .sealant.yaml): `seal` takes the cluster's published recipients.
    let elsewhere = tempfile::tempdir().unwrap();
    let fresh_sealed = ok(cp.seal(&[], Some(&fresh), elsewhere.path()));
    assert!(
        fresh_sealed.contains(&new) && !fresh_sealed.contains(&old),
        "new seals use the new key"
    );
    cp.apply(&fresh_sealed);
    wait_for("the fresh Secret", SECS_30, || {
        cp.secret_value("prod", "fresh", "password")
    });
    wait_for("old objects still Ready", SECS_30, || {
        (cp.ready("prod", "app0")?.0 == "True").then_some(())
    });
    // Ready from before the rotation proves nothing: the Secret is deleted and must come back,
    // opened after the rotation with the old (now retired) key.
    let before = cp.get_json(&["secret", "app0", "-n", "prod"]).unwrap()["metadata"]["uid"].clone();
    cp.kubectl_ok(&["delete", "secret", "app0", "-n", "prod"]);
    wait_for("app0 recreated with the retired key", SECS_30, || {
        let secret = cp.get_json(&["secret", "app0", "-n", "prod"])?;
        (secret["metadata"]["uid"] != before).then_some(())
    });
    assert_eq!(
        cp.secret_value("prod", "app0", "password").as_deref(),
        Some("rotate-secret-0")
    );
    let status = cp
        .get_json(&["sealedsecret", "app0", "-n", "prod"])
        .unwrap()["status"]
        .clone();
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");
    assert_eq!(status["openedWith"], serde_json::json!([old]), "{status}");

    // seal check reports the old seals as stale once the repo config moves to the new key.
    std::fs::write(repo.join(".sealant.yaml"), config(&new)).unwrap();
    let check = cp.seal(&["check", "apps"], None, repo);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        text(&check)
            .matches("sealed to none of the recipients")
            .count(),
        3,
        "{}",
        text(&check)
    );

    // seal reencrypt moves them (through the controller's HTTP API); check is then clean.
    let files: Vec<String> = (0..3).map(|i| format!("apps/app{i}.yaml")).collect();
    let mut args = vec!["reencrypt", "--controller-url"];
    let url = ctl.url();
    args.push(&url);
    args.extend(files.iter().map(String::as_str));
    ok(cp.seal(&args, None, repo));
    ok(cp.seal(&["check", "apps"], None, repo));
    cp.kubectl_ok(&["apply", "-f", repo.join("apps").to_str().unwrap()]);
    wait_for("objects opened with the new key", SECS_30, || {
        let s = cp.get_json(&["sealedsecret", "app0", "-n", "prod"])?;
        (s["status"]["openedWith"][0] == new.as_str()).then_some(())
    });

    // 8. Restart with nothing changed: zero writes (no Secret or status changes).
    std::thread::sleep(Duration::from_secs(2));
    let versions = || cp.resource_versions(&[("secrets", "prod"), ("sealedsecrets", "prod")]);
    let before = versions();
    assert!(ctl.terminate().success(), "graceful exit on SIGTERM");
    let restarted = Controller::spawn(
        &cp.service_account_kubeconfig(),
        cp.dir.path(),
        "e2e-restarted",
        &[],
    );
    restarted.wait_ready();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(versions(), before, "a restart wrote something");
    assert!(
        !restarted.logs().contains("Secret written"),
        "{}",
        restarted.logs()
    );

    // 11. Break-glass: the key exported from the cluster opens a value with Debian's age, and
    // seal unseal rebuilds the Secret.
    let key = cp.key_in_state("active").identity_file();
    std::fs::write(repo.join("key.txt"), key).unwrap();
    let sealed = std::fs::read_to_string(repo.join("apps/app1.yaml")).unwrap();
    let value = sealed
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap();
    std::fs::write(repo.join("value.age"), sealant_e2e::decode_base64(value)).unwrap();
    let mut age = std::process::Command::new("age");
    age.args(["-d", "-i", "key.txt", "value.age"])
        .current_dir(repo);
    assert_eq!(
        ok(run(age, None)),
        "sealant/v1 strict prod/app1\nrotate-secret-1"
    );
    let unsealed = ok(cp.seal(
        &["unseal", "-i", "key.txt", "apps/app1.yaml", "-o", "json"],
        None,
        repo,
    ));
    let secret: serde_json::Value = serde_json::from_str(&unsealed).unwrap();
    assert_eq!(secret["data"]["password"], "cm90YXRlLXNlY3JldC0x");

    // 12. Nothing secret in either controller's log.
    for c in [&ctl, &restarted] {
        assert_no_plaintext(
            &cp,
            c,
            &["rotate-secret-0", "rotate-secret-1", "fresh-secret"],
        );
    }
}

#[test]
fn a_standby_takes_over_when_the_leader_dies() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let mut a = Controller::spawn(&sa, cp.dir.path(), "replica-a", &[]);
    let mut b = Controller::spawn(&sa, cp.dir.path(), "replica-b", &[]);
    a.wait_ready();
    b.wait_ready();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    let work = tempfile::tempdir().unwrap();
    let leader = wait_for("a leader", SECS_30, || {
        let lease = cp.get_json(&["lease", "sealant-controller", "-n", "sealant-system"])?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    });
    let plain = secret_yaml("ha", "prod", &[("password", "ha-secret")]);
    let sealed = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&[], Some(&plain), work.path());
        out.status.success().then(|| text(&out))
    });
    cp.apply(&sealed);
    wait_for("the Secret", SECS_30, || {
        cp.secret_value("prod", "ha", "password")
    });
    // 9. Kill the leader: the other reconciles within about the lease duration (15 s).
    let (dead, standby) = if leader == "replica-a" {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    dead.kill();
    let killed = Instant::now();
    cp.kubectl_ok(&["delete", "secret", "ha", "-n", "prod"]);
    wait_for(
        "the standby to restore the Secret",
        Duration::from_secs(40),
        || cp.secret_value("prod", "ha", "password"),
    );
    // A figure, not a target (the wait above allows 40 s): docs/security.md's faults table.
    eprintln!(
        "standby took over and restored the Secret in {:?}",
        killed.elapsed()
    );
    let holder = cp
        .get_json(&["lease", "sealant-controller", "-n", "sealant-system"])
        .unwrap();
    assert_ne!(
        holder["spec"]["holderIdentity"].as_str(),
        Some(leader.as_str())
    );
    assert!(
        standby
            .get("/metrics")
            .unwrap()
            .contains("sealant_is_leader 1")
    );
    // Converged means settled: nothing is written any more (every object keeps its
    // resourceVersion), and there is exactly one active key.
    wait_for("Ready=True", SECS_30, || {
        (cp.ready("prod", "ha")?.0 == "True").then_some(())
    });
    cp.assert_settled(&["prod"], Duration::from_secs(5));
    assert_no_plaintext(&cp, standby, &["ha-secret"]);
}

#[test]
fn one_sealed_secret_for_two_clusters() {
    let (east, east_ctl) = cluster_with_controller(&[]);
    let (west, west_ctl) = cluster_with_controller(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let fetch = |cp: &ControlPlane| {
        wait_for("published recipients", SECS_30, || {
            let out = cp.seal(&["fetch-keys"], None, dir);
            out.status.success().then(|| text(&out).trim().to_owned())
        })
    };
    let (r_east, r_west) = (fetch(&east), fetch(&west));
    for cp in [&east, &west] {
        cp.kubectl_ok(&["create", "namespace", "prod"]);
    }
    // 10. Sealed to both: opens in both.
    let both = ok(east.seal(
        &["-r", &r_east, "-r", &r_west],
        Some(&secret_yaml(
            "shared",
            "prod",
            &[("password", "two-clusters")],
        )),
        dir,
    ));
    for cp in [&east, &west] {
        cp.apply(&both);
        wait_for("the shared Secret", SECS_30, || {
            (cp.secret_value("prod", "shared", "password")? == "two-clusters").then_some(())
        });
    }
    // Sealed to east only: fails cleanly in west.
    let east_only = ok(east.seal(
        &["-r", &r_east],
        Some(&secret_yaml("east-only", "prod", &[("password", "east")])),
        dir,
    ));
    east.apply(&east_only);
    west.apply(&east_only);
    wait_for("east opens it", SECS_30, || {
        east.secret_value("prod", "east-only", "password")
    });
    wait_for("west reports NoKey", SECS_30, || {
        (west.ready("prod", "east-only")? == ("False".into(), "NoKey".into())).then_some(())
    });
    assert!(
        west.get_json(&["secret", "east-only", "-n", "prod"])
            .is_none()
    );
    assert_no_plaintext(&east, &east_ctl, &["two-clusters"]);
    assert_no_plaintext(&west, &west_ctl, &["two-clusters"]);
    let _ = Path::new(".");
}

/// A user who may create SealedSecrets (and read Secrets) in namespace `team-a` only cannot
/// obtain `team-b`'s plaintext through Sealant: not by copying or renaming B's SealedSecret,
/// nor through the controller's HTTP API.
#[test]
fn a_tenant_cannot_reach_another_namespaces_plaintext() {
    let (cp, ctl) = cluster_with_controller(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for ns in ["team-a", "team-b"] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }
    // User A: a ServiceAccount with SealedSecret and Secret rights in team-a only.
    cp.apply(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: user-a, namespace: team-a}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: tenant, namespace: team-a}\n\
         rules:\n- apiGroups: [sealant.dev]\n  resources: [sealedsecrets]\n  verbs: [get, list, create, update, patch, delete]\n\
         - apiGroups: ['']\n  resources: [secrets]\n  verbs: [get, list]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: tenant, namespace: team-a}\n\
         subjects: [{kind: ServiceAccount, name: user-a, namespace: team-a}]\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant}\n",
    );
    let token = wait_for("user A's token", SECS_30, || {
        let sa = cp.get_json(&["serviceaccount", "user-a", "-n", "team-a"])?;
        let name = sa["secrets"][0]["name"].as_str()?.to_owned();
        let secret = cp.get_json(&["secret", &name, "-n", "team-a"])?;
        Some(
            String::from_utf8(sealant_e2e::decode_base64(
                secret["data"]["token"].as_str()?,
            ))
            .unwrap(),
        )
    });
    let as_a = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = cp.kubectl_cmd();
        cmd.args(["--token", &token]).args(args);
        run(cmd, stdin)
    };

    // B's secret, sealed strict for team-b/db by its owner.
    let plain_b = secret_yaml("db", "team-b", &[("password", "team-b-only-secret")]);
    let sealed_b = wait_for("published recipients", SECS_30, || {
        let out = cp.seal(&[], Some(&plain_b), dir);
        out.status.success().then(|| text(&out))
    });
    cp.apply(&sealed_b);
    wait_for("B's Secret", SECS_30, || {
        cp.secret_value("team-b", "db", "password")
    });

    // A cannot read B's Secret directly (the premise).
    assert!(
        !as_a(&["get", "secret", "db", "-n", "team-b"], None)
            .status
            .success()
    );
    // Path 1: copy B's SealedSecret into team-a, same name and under another name.
    let copied = sealed_b.replace("namespace: team-b", "namespace: team-a");
    ok(as_a(&["apply", "-f", "-"], Some(&copied)));
    ok(as_a(
        &["apply", "-f", "-"],
        Some(&copied.replace("name: db", "name: stolen")),
    ));
    for name in ["db", "stolen"] {
        wait_for("Ready=False ScopeMismatch in team-a", SECS_30, || {
            (cp.ready("team-a", name)? == ("False".into(), "ScopeMismatch".into())).then_some(())
        });
        let out = as_a(&["get", "secret", name, "-n", "team-a", "-o", "json"], None);
        assert!(!out.status.success(), "a Secret {name} appeared in team-a");
    }
    // Path 2: the controller's HTTP API answers with ciphertext or a verdict, never plaintext.
    std::fs::write(dir.join("copied.yaml"), &copied).unwrap();
    let url = ctl.url();
    let validate = cp.seal(
        &["validate", "--controller-url", &url, "copied.yaml"],
        None,
        dir,
    );
    assert!(!validate.status.success());
    assert!(String::from_utf8_lossy(&validate.stderr).contains("cannot be moved"));
    std::fs::write(dir.join("b.yaml"), &sealed_b).unwrap();
    ok(cp.seal(
        &["reencrypt", "--controller-url", &url, "b.yaml"],
        None,
        dir,
    ));
    let reencrypted = std::fs::read_to_string(dir.join("b.yaml")).unwrap();
    assert!(
        !reencrypted.contains("team-b-only-secret")
            && !reencrypted.contains("dGVhbS1iLW9ubHktc2VjcmV0")
    );
    // Who reads the answer is asked of the key slots (stock age), not of spec.recipients:
    // the cluster's key, and not a key of the tenant's own.
    ok(cp.seal(&["keygen", "-o", "tenant.txt"], None, dir));
    assert_eq!(sealant_e2e::export_keys(&cp, dir), ["active"]);
    assert!(sealant_e2e::age_opens(
        dir,
        "b.yaml",
        "password",
        "active.txt"
    ));
    assert!(!sealant_e2e::age_opens(
        dir,
        "b.yaml",
        "password",
        "tenant.txt"
    ));
    // The re-sealed copy is still bound to team-b/db: moved into team-a it still fails.
    ok(as_a(
        &["apply", "-f", "-"],
        Some(
            &reencrypted
                .replace("namespace: team-b", "namespace: team-a")
                .replace("name: db", "name: again"),
        ),
    ));
    wait_for("the re-sealed copy refused too", SECS_30, || {
        (cp.ready("team-a", "again")? == ("False".into(), "ScopeMismatch".into())).then_some(())
    });
    assert!(
        !as_a(&["get", "secret", "again", "-n", "team-a"], None)
            .status
            .success()
    );
    assert_no_plaintext(&cp, &ctl, &["team-b-only-secret"]);
}
