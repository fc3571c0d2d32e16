//! The monitoring package (deploy/monitoring/): the alerts pass Prometheus's own checks and a
//! unit test each (promtool, Debian's `prometheus` package), and every metric they and the
//! dashboard name is exported by a real controller.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use sealant_e2e::{ControlPlane, Controller, ok, root, run, text, wait_for};

/// A YAML file of the repository as JSON.
fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `promtool check rules` accepts the PrometheusRule's groups, and `promtool test rules`
/// passes tests/monitoring/alerts_test.yaml, which must hold, for every alert, a case where
/// it fires and a case where it must NOT.
#[test]
fn every_alert_passes_promtool_and_has_a_unit_test() {
    let rule = yaml("deploy/monitoring/alerts/prometheusrule.yaml");
    let dir = tempfile::tempdir().unwrap();
    // spec.groups is a Prometheus rule file; JSON is YAML.
    std::fs::write(dir.path().join("rules.yaml"), rule["spec"].to_string()).unwrap();
    std::fs::copy(
        root().join("tests/monitoring/alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .unwrap();
    let promtool = |args: &[&str]| {
        let mut cmd = Command::new("promtool");
        cmd.args(args).current_dir(dir.path());
        ok(run(cmd, None))
    };
    let checked = promtool(&["check", "rules", "rules.yaml"]);
    let alerts: Vec<String> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{checked}"
    );
    promtool(&["test", "rules", "alerts_test.yaml"]);

    let tests = yaml("tests/monitoring/alerts_test.yaml");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in &alerts {
        let of_it = cases.iter().filter(|c| c["alertname"] == alert.as_str());
        let fires = |c: &&&Value| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        let (fires, silent): (Vec<&&Value>, Vec<&&Value>) = of_it.partition(fires);
        assert!(!fires.is_empty(), "{alert}: no case where it fires");
        assert!(
            !silent.is_empty(),
            "{alert}: no case where it must not fire"
        );
    }
}

/// Every `sealant_*` metric the alerts and the dashboard name is one a real controller
/// exports: scraped from `/metrics` once it has opened one SealedSecret (also sealed to a key
/// since marked compromised, so exposed) and refused another.
#[test]
fn every_metric_named_is_exported() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let ctl = Controller::spawn(&sa, cp.dir.path(), "monitoring", &[]);
    ctl.wait_ready();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    let work = tempfile::tempdir().unwrap();
    let secs_30 = Duration::from_secs(30);
    let old = wait_for("published recipients", secs_30, || {
        let out = cp.seal(&["fetch-keys"], None, work.path());
        out.status.success().then(|| text(&out).trim().to_owned())
    });
    let new = cp.rotate();
    ctl.wait_for_key(&new);
    let plain = "apiVersion: v1\nkind: Secret\nmetadata: {name: ok, namespace: prod}\nstringData: {v: monitoring-value}\n";
    let sealed = ok(cp.seal(&["-r", &new, "-r", &old], Some(plain), work.path()));
    cp.apply(&sealed);
    // Sealed for another name: refused (ScopeMismatch).
    cp.apply(&sealed.replace("name: ok", "name: moved"));
    wait_for("both reconciled", secs_30, || {
        (cp.ready("prod", "ok")?.0 == "True" && cp.ready("prod", "moved")?.0 == "False")
            .then_some(())
    });
    cp.mark_compromised(&cp.key_in_state("retired").name);
    wait_for("ok to be exposed", secs_30, || {
        ctl.get("/metrics")?
            .contains("sealant_sealed_secret_exposed{")
            .then_some(())
    });
    let scraped = ctl.get("/metrics").unwrap();
    let exported: std::collections::BTreeSet<&str> = scraped
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let rule = yaml("deploy/monitoring/alerts/prometheusrule.yaml");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/monitoring/dashboard/sealant.json")).unwrap(),
    )
    .unwrap();
    let mut queries: Vec<String> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut named = std::collections::BTreeSet::new();
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("sealant_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            named.insert(name);
        }
    }
    assert!(named.len() >= 8, "{named:?}");
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\n{scraped}"
    );
    assert!(!scraped.contains("monitoring-value"));
}
