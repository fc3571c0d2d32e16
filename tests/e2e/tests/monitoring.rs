//! The monitoring package (deploy/monitoring/): the alerts pass Prometheus's own checks and a
//! unit test each (promtool, Debian's `prometheus` package).

use std::process::Command;

use serde_json::Value;

use sealant_e2e::{ok, root, run};

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
