//! The Argo CD health check shipped in deploy/argocd (issue 12 §3), run by a real Lua 5.1
//! interpreter on every case of its health_test.yaml, and the argocd-cm component checked to
//! carry it unchanged. No control plane: statuses the controller really wrote are fed to the
//! same check in tests/e2e/tests/gitops_health.rs.

use std::path::{Component, Path};
use std::process::Command;

use sealant_e2e::argocd::{check_dir, health, health_lua};
use sealant_e2e::{ok, root, run};
use serde_json::{Value, json};

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Argo CD's own layout: `tests:` with `healthStatus: {status, message}` and `inputPath`.
#[test]
fn every_case_in_health_test_yaml_passes_in_lua_5_1() {
    let dir = check_dir();
    let cases = yaml(&dir.join("health_test.yaml"));
    let cases = cases["tests"].as_array().expect("tests: a list");
    let mut statuses = std::collections::BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().expect("inputPath");
        let expected = &case["healthStatus"];
        let (status, message) = health(&yaml(&dir.join(input)));
        assert_eq!(status, expected["status"].as_str().unwrap(), "{input}");
        assert_eq!(message, expected["message"].as_str().unwrap(), "{input}");
        statuses.insert(status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing"],
        "a case for each health"
    );
    // Every testdata file has its case.
    for file in std::fs::read_dir(dir.join("testdata")).unwrap() {
        let name = format!("testdata/{}", file.unwrap().file_name().to_string_lossy());
        assert!(
            cases.iter().any(|c| c["inputPath"] == name.as_str()),
            "{name} has no case in health_test.yaml"
        );
    }
}

/// Messages reach Argo CD as written: quotes, backslashes, newlines and non-ASCII survive the
/// way into the Lua table (so the runner's verdicts can be trusted).
#[test]
fn messages_pass_through_the_lua_check_unchanged() {
    let message = "Secret \"db\" \\ line\nnext — é";
    let obj = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Unsealed", "message": message}]}});
    assert_eq!(health(&obj), ("Healthy".to_owned(), message.to_owned()));
}

/// The component merges health.lua, byte for byte, into argocd-cm under the key Argo CD
/// reads (`resource.customizations.health.<group>_<kind>`), keeping argocd-cm's other keys.
#[test]
fn the_argocd_cm_component_carries_health_lua_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("argocd-cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n  url: https://argocd.example.com\n",
    )
    .unwrap();
    // kustomize takes components by relative path only.
    let up = dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let component = format!(
        "{}{}",
        "../".repeat(up),
        root()
            .join("deploy/argocd")
            .strip_prefix("/")
            .unwrap()
            .display()
    );
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!("resources: [argocd-cm.yaml]\ncomponents: [{component}]\n"),
    )
    .unwrap();
    let mut kustomize = Command::new("kubectl");
    kustomize.arg("kustomize").arg(dir);
    let rendered: Value = serde_saphyr::from_str(&ok(run(kustomize, None))).unwrap();
    assert_eq!(rendered["metadata"]["name"], "argocd-cm");
    assert_eq!(rendered["metadata"]["namespace"], "argocd");
    assert_eq!(rendered["data"]["url"], "https://argocd.example.com");
    assert_eq!(
        rendered["data"]["resource.customizations.health.sealant.dev_SealedSecret"]
            .as_str()
            .unwrap(),
        health_lua()
    );
}
