//! End-to-end, Bitnami mode (issue 14 §2): Bitnami's CRD (tests/bitnami/sealedsecret-crd.yaml)
//! and deploy/ with components/bitnami applied on the local control plane; keys made by an
//! independent producer (tests/bitnami/kubesealpy_tool.py: `cryptography` RSA, values sealed
//! by PyPI kubesealpy) imported with `seal-controller import-bitnami-keys`; the real
//! `seal-controller --bitnami` running as the deploy/ ServiceAccount.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sealant_e2e::{
    ControlPlane, Controller, assert_no_plaintext, bin, decode_base64, from_overlay, root, run,
    text, wait_for,
};
use sealant_stub::kubesealpy::{self, seal};
use serde_json::{Value, json};

const SECS_30: Duration = Duration::from_secs(30);
const KEY_SECRETS: &str = "sealant.dev/bitnami-key=true";

fn apply(cp: &ControlPlane, object: &Value) {
    cp.apply(&object.to_string());
}

/// `seal-controller import-bitnami-keys -` as the cluster's admin: (exit code, stdout).
fn import(cp: &ControlPlane, backup: &str) -> (i32, String) {
    let mut cmd = Command::new(bin("seal-controller"));
    cmd.args(["import-bitnami-keys", "-", "--namespace", "sealant-system"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env_remove("POD_NAMESPACE");
    let out = run(cmd, Some(backup));
    (out.status.code().unwrap_or(-1), text(&out))
}

fn bitnami_object(cp: &ControlPlane, ns: &str, name: &str) -> Option<Value> {
    cp.get_json(&["sealedsecrets.bitnami.com", name, "-n", ns])
}

/// A condition of a Bitnami SealedSecret: (status, reason, message).
fn condition(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let obj = bitnami_object(cp, ns, name)?;
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    let s = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

fn wait_refused(cp: &ControlPlane, ns: &str, name: &str, reason: &str) -> String {
    let (_, _, message) = wait_for(
        &format!("{ns}/{name} Ready=False {reason}"),
        SECS_30,
        || condition(cp, ns, name, "Ready").filter(|(s, r, _)| s == "False" && r == reason),
    );
    let synced = condition(cp, ns, name, "Synced").unwrap();
    assert_eq!(synced.0, "False", "Bitnami's Synced condition says it too");
    assert_eq!(synced.2, message);
    assert_eq!(condition(cp, ns, name, "Stalled").unwrap().0, "True");
    message
}

fn secret_data(cp: &ControlPlane, ns: &str, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let s = cp.get_json(&["secret", name, "-n", ns])?;
    Some(
        s["data"]
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), decode_base64(v.as_str().unwrap())))
            .collect(),
    )
}

fn items(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

/// deploy/ (as the 1.20 tests take it) with components/bitnami, from an overlay outside it,
/// as deploy/README.md shows.
fn install_bitnami_component(cp: &ControlPlane) {
    let overlay = cp.dir.path().join("bitnami-overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            from_overlay(&overlay, "tests/k8s-1.20"),
            from_overlay(&overlay, "deploy/components/bitnami"),
        ),
    )
    .unwrap();
    cp.kubectl_ok(&["apply", "-k", overlay.to_str().unwrap()]);
}

#[test]
fn bitnami_mode_opens_kubeseal_objects_as_bitnamis_controller_would() {
    let cp = ControlPlane::start();
    cp.install();
    cp.kubectl_ok(&[
        "apply",
        "-f",
        root()
            .join("tests/bitnami/sealedsecret-crd.yaml")
            .to_str()
            .unwrap(),
    ]);
    wait_for("Bitnami's CRD to be established", SECS_30, || {
        cp.kubectl(&["get", "sealedsecrets.bitnami.com", "-A"])
            .status
            .success()
            .then_some(())
    });
    install_bitnami_component(&cp);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    kubesealpy::keygen(dir, "sealed-secrets-keyold", false);
    kubesealpy::keygen(dir, "sealed-secrets-keynew", true);
    let backup = format!(
        "{}---\n{}",
        std::fs::read_to_string(dir.join("sealed-secrets-keyold.secret.yaml")).unwrap(),
        std::fs::read_to_string(dir.join("sealed-secrets-keynew.secret.yaml")).unwrap()
    );

    // Import: one Secret per key; again, nothing changes.
    let (code, out) = import(&cp, &backup);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("imported sealant-bitnami-key-")),
        "{out}"
    );
    assert!(
        out.contains("from sealed-secrets-keyold") && out.contains("from sealed-secrets-keynew")
    );
    let versions = || {
        cp.get_json(&["secrets", "-n", "sealant-system", "-l", KEY_SECRETS])
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metadata"]["resourceVersion"].clone())
            .collect::<Vec<_>>()
    };
    let before = versions();
    assert_eq!(before.len(), 2);
    let (code, again) = import(&cp, &backup);
    assert_eq!(code, 0, "{again}");
    assert!(
        again.lines().all(|l| l.starts_with("unchanged ")),
        "{again}"
    );
    assert_eq!(versions(), before, "a re-import writes nothing");

    let ctl = Controller::spawn(
        &cp.service_account_kubeconfig(),
        cp.dir.path(),
        "bitnami",
        &["--bitnami"],
    );
    ctl.wait_ready();
    let recipients_before = wait_for("published recipients", SECS_30, || {
        cp.get_json(&["configmap", "sealant-recipients", "-n", "sealant-system"])
    })["data"]
        .clone();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    cp.kubectl_ok(&["create", "namespace", "staging"]);

    // All three scopes, two keys, a binary value; labels, annotations, type, immutability.
    let binary: &[u8] = &[0, 159, 146, 150, 255, b'\n', 0];
    let db_items: &[(&str, &[u8])] = &[("username", b"admin"), ("password", b"hunter2-bitnami")];
    let db = json(&seal(
        dir,
        "sealed-secrets-keyold",
        "strict",
        "prod",
        "db",
        db_items,
        &[
            "--json",
            "--type",
            "kubernetes.io/basic-auth",
            "--label",
            "app=db",
            "--annotation",
            "note=kept",
        ],
    ));
    let cfg_items: &[(&str, &[u8])] = &[("blob", binary)];
    let cfg = json(&seal(
        dir,
        "sealed-secrets-keynew",
        "namespace-wide",
        "prod",
        "cfg",
        cfg_items,
        &["--json", "--immutable"],
    ));
    let shared_items: &[(&str, &[u8])] = &[("token", b"shared-t0ken-bitnami")];
    let shared = json(&seal(
        dir,
        "sealed-secrets-keynew",
        "cluster-wide",
        "staging",
        "shared",
        shared_items,
        &["--json"],
    ));
    for object in [&db, &cfg, &shared] {
        apply(&cp, object);
    }
    for (ns, name, want) in [
        ("prod", "db", items(db_items)),
        ("prod", "cfg", items(cfg_items)),
        ("staging", "shared", items(shared_items)),
    ] {
        let got = wait_for(&format!("Secret {ns}/{name}"), SECS_30, || {
            secret_data(&cp, ns, name)
        });
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{ns}/{name} data");
        let secret = cp.get_json(&["secret", name, "-n", ns]).unwrap();
        let owner = bitnami_object(&cp, ns, name).unwrap();
        assert_eq!(
            secret["metadata"]["ownerReferences"],
            json!([{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": name,
                    "uid": owner["metadata"]["uid"], "controller": true}]),
            "{ns}/{name} owned by its Bitnami object"
        );
        let (status, reason, message) =
            wait_for(&format!("{ns}/{name} Ready=True"), SECS_30, || {
                condition(&cp, ns, name, "Ready").filter(|(s, _, _)| s == "True")
            });
        assert_eq!((status.as_str(), reason.as_str()), ("True", "Unsealed"));
        assert!(
            message.contains("opened with Bitnami key sealant-bitnami-key-"),
            "{message}"
        );
        assert_eq!(condition(&cp, ns, name, "Synced").unwrap().0, "True");
        assert_eq!(
            owner["status"]["observedGeneration"],
            owner["metadata"]["generation"]
        );
    }
    let secret = cp.get_json(&["secret", "db", "-n", "prod"]).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(secret["metadata"]["labels"], json!({"app": "db"}));
    assert_eq!(secret["metadata"]["annotations"], json!({"note": "kept"}));
    let cfg_secret = cp.get_json(&["secret", "cfg", "-n", "prod"]).unwrap();
    assert_eq!(cfg_secret["immutable"], true);
    assert_eq!(cfg_secret["type"], "Opaque");

    // Relocated copies (another namespace, another name) do not open: no Secret, status says why.
    let mut moved = db.clone();
    moved["metadata"]["namespace"] = json!("staging");
    apply(&cp, &moved);
    let mut renamed = db.clone();
    renamed["metadata"]["name"] = json!("db-copy");
    apply(&cp, &renamed);
    for (ns, name) in [("staging", "db"), ("prod", "db-copy")] {
        let message = wait_refused(&cp, ns, name, "NoKeyOpens");
        assert!(
            message.contains(&format!("{ns}/{name} (strict scope)")),
            "{message}"
        );
        assert!(
            cp.get_json(&["secret", name, "-n", ns]).is_none(),
            "no Secret {ns}/{name}"
        );
    }

    // Tampered: one flipped bit in a value's AES-GCM tag. No Secret.
    let mut tampered = json(&seal(
        dir,
        "sealed-secrets-keyold",
        "strict",
        "prod",
        "tampered",
        &[("k", b"v-bitnami")],
        &["--json"],
    ));
    let mut blob = BASE64
        .decode(tampered["spec"]["encryptedData"]["k"].as_str().unwrap())
        .unwrap();
    *blob.last_mut().unwrap() ^= 1;
    tampered["spec"]["encryptedData"]["k"] = json!(BASE64.encode(&blob));
    apply(&cp, &tampered);
    let message = wait_refused(&cp, "prod", "tampered", "Tampered");
    assert!(message.contains("fails authentication"), "{message}");
    assert!(cp.get_json(&["secret", "tampered", "-n", "prod"]).is_none());

    // A Secret that is not its own is left alone until annotated with Bitnami's managed annotation.
    cp.create_generic_secret("prod", "taken", "a=by-hand");
    apply(
        &cp,
        &json(&seal(
            dir,
            "sealed-secrets-keyold",
            "strict",
            "prod",
            "taken",
            &[("a", b"sealed-bitnami")],
            &["--json"],
        )),
    );
    wait_refused(&cp, "prod", "taken", "NotOwned");
    assert_eq!(
        cp.secret_value("prod", "taken", "a").as_deref(),
        Some("by-hand")
    );
    let taken = cp.get_json(&["secret", "taken", "-n", "prod"]).unwrap();
    assert!(taken["metadata"]["ownerReferences"].is_null());
    cp.kubectl_ok(&[
        "annotate",
        "secret",
        "taken",
        "-n",
        "prod",
        "sealedsecrets.bitnami.com/managed=true",
    ]);
    wait_for("the takeover", SECS_30, || {
        (cp.secret_value("prod", "taken", "a")? == "sealed-bitnami").then_some(())
    });
    let uid = bitnami_object(&cp, "prod", "taken").unwrap()["metadata"]["uid"].clone();
    let taken = cp.get_json(&["secret", "taken", "-n", "prod"]).unwrap();
    assert_eq!(taken["metadata"]["ownerReferences"][0]["uid"], uid);

    // Drift: a changed value and an extra item are put back.
    cp.patch_secret("prod", "db", r#"{"data":{"password":"ZWRpdGVk"}}"#);
    wait_for("the edit to be reverted", SECS_30, || {
        (cp.secret_value("prod", "db", "password")? == "hunter2-bitnami").then_some(())
    });
    cp.patch_secret("prod", "db", r#"{"data":{"extra":"ZXh0cmE="}}"#);
    wait_for("the extra item to be removed", SECS_30, || {
        let mut want = items(db_items);
        want.sort();
        (secret_data(&cp, "prod", "db")? == want).then_some(())
    });

    // Deleting the Bitnami object deletes its Secret (the garbage collector, by the owner).
    // The collector learns of a newly installed resource type by its periodic discovery (30 s
    // in 1.20), so on a loaded machine this waits as long as e2e.rs's collection does.
    cp.kubectl_ok(&["delete", "sealedsecrets.bitnami.com", "db", "-n", "prod"]);
    wait_for(
        "Secret prod/db to be collected",
        Duration::from_secs(120),
        || {
            cp.get_json(&["secret", "db", "-n", "prod"])
                .is_none()
                .then_some(())
        },
    );

    // What must not happen: imported RSA keys never become Sealant keys or recipients, and no
    // plaintext or private key reaches the log or a status.
    let recipients_after = cp
        .get_json(&["configmap", "sealant-recipients", "-n", "sealant-system"])
        .unwrap()["data"]
        .clone();
    assert_eq!(
        recipients_after, recipients_before,
        "the published recipients did not change"
    );
    let served = ctl.get("/v1/recipients").unwrap();
    assert!(
        served
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with("age1") || l.starts_with('#')),
        "{served}"
    );
    let sealant_keys = cp
        .get_json(&["secrets", "-n", "sealant-system", "-l", "sealant.dev/key"])
        .unwrap();
    assert_eq!(
        sealant_keys["items"].as_array().unwrap().len(),
        1,
        "only the age key is a Sealant key"
    );
    assert_no_plaintext(
        &cp,
        &ctl,
        &[
            &b"hunter2-bitnami"[..],
            b"shared-t0ken-bitnami",
            b"sealed-bitnami",
            b"v-bitnami",
            binary,
        ],
    );
}

/// kubesealpy's `--json` output, parsed.
fn json(sealed: &str) -> Value {
    serde_json::from_str(sealed).unwrap()
}
