//! `seal-controller`'s one list flag, `--namespaces`, through the real binary: repeated,
//! comma-separated and from SEALANT_WATCH_NAMESPACES it watches exactly the namespaces named
//! (a namespace never holds a comma, so the comma form stays). The API server is a stub on
//! 127.0.0.1 that records what the controller asks for.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use sealant_stub::{
    Context, Running, Seen, Stub, answer, api_status, isolated, kubeconfig, quiet_watch,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_seal-controller");
const SEALED: &str = "/apis/sealant.dev/v1alpha1";

/// An API server that serves one key Secret, no SealedSecrets and no Secrets, holds watches
/// open without events, and records every path asked for.
struct ApiServer {
    stub: Stub,
}

impl ApiServer {
    fn start() -> ApiServer {
        let (mut key, _) =
            sealant_core::keystore::new_key_secret("sealant-system", Timestamp::now());
        key.metadata.name = Some("sealant-key-1".into());
        key.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let key = serde_json::to_value(key).unwrap();
        ApiServer {
            stub: Stub::start(move |req| api_answer(req, &key)),
        }
    }

    /// The namespaces whose SealedSecrets were listed or watched; "*" for all namespaces.
    fn sealed_namespaces(&self) -> BTreeSet<String> {
        self.stub
            .paths()
            .iter()
            .map(|t| t.split('?').next().unwrap_or_default())
            .filter_map(|p| p.strip_prefix(SEALED))
            .filter(|p| p.ends_with("/sealedsecrets"))
            .map(|p| match p.strip_prefix("/namespaces/") {
                Some(rest) => rest.trim_end_matches("/sealedsecrets").to_owned(),
                None => "*".to_owned(),
            })
            .collect()
    }

    /// The namespaces whose Secrets were listed or watched, but for the controller's own.
    fn secret_namespaces(&self) -> BTreeSet<String> {
        self.stub
            .paths()
            .iter()
            .map(|t| t.split('?').next().unwrap_or_default())
            .filter(|p| p.ends_with("/secrets"))
            .filter_map(|p| p.strip_prefix("/api/v1"))
            .map(|p| match p.strip_prefix("/namespaces/") {
                Some(rest) => rest.trim_end_matches("/secrets").to_owned(),
                None => "*".to_owned(),
            })
            .filter(|ns| ns != "sealant-system")
            .collect()
    }

    /// The query strings of every SealedSecret list and watch.
    fn sealed_queries(&self) -> Vec<String> {
        self.stub
            .paths()
            .iter()
            .filter_map(|t| t.split_once('?'))
            .filter(|(p, _)| p.starts_with(SEALED) && p.ends_with("/sealedsecrets"))
            .map(|(_, q)| q.to_owned())
            .collect()
    }
}

fn api_answer(req: &Seen, key: &Value) -> sealant_stub::Answer {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if query.split('&').any(|q| q == "watch=true") {
        return quiet_watch();
    }
    let list = |kind: &str, items: Vec<Value>| {
        let list = json!({"kind": kind, "metadata": {"resourceVersion": "1"}, "items": items});
        answer(200, list.to_string())
    };
    match (req.method.as_str(), path) {
        ("GET", "/api/v1/namespaces/sealant-system/secrets") => {
            list("SecretList", vec![key.clone()])
        }
        ("GET", p) if p.ends_with("/sealedsecrets") => list("SealedSecretList", vec![]),
        ("GET", p) if p.ends_with("/secrets") => list("PartialObjectMetadataList", vec![]),
        ("POST", _) => {
            let created: Value = serde_json::from_str(&req.body).unwrap_or(json!({}));
            answer(201, created.to_string())
        }
        _ => api_status(404, "NotFound", "not found"),
    }
}

fn write_kubeconfig(dir: &Path, stub: &Stub) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig("c", &[Context::new("c", &stub.url())])).unwrap();
    path
}

/// An environment variable and its value.
type Env<'a> = (&'a str, &'a str);

/// Runs the controller (no leader election, no key renewal) with `args` and `env` against a
/// fresh stub until it has watched at least `expected` namespaces' SealedSecrets and Secrets;
/// returns the stub.
fn watched_with(args: &[&str], env: &[Env], expected: &[&str]) -> ApiServer {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start();
    let mut cmd = isolated(BIN, &write_kubeconfig(dir.path(), &api.stub), "SEALANT_");
    cmd.args([
        "--leader-elect=false",
        "--key-renew-period=0",
        "--listen-addr=127.0.0.1:0",
    ])
    .args(args);
    cmd.envs(env.iter().copied());
    let log = dir.path().join("stderr");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(expected.is_subset(&api.sealed_namespaces())
        && expected.is_subset(&api.secret_namespaces()))
    {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "{args:?} {env:?}: the controller exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(
            Instant::now() < deadline,
            "{args:?} {env:?}: watched {:?} and {:?}: {}",
            api.sealed_namespaces(),
            api.secret_namespaces(),
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A moment more for anything else it would have asked for.
    std::thread::sleep(Duration::from_millis(300));
    drop(child);
    api
}

#[test]
fn namespaces_may_be_repeated_or_comma_separated() {
    let forms: &[(&[&str], &[Env])] = &[
        (&["--namespaces", "team-a", "--namespaces", "team-b"], &[]),
        (&["--namespaces", "team-a,team-b"], &[]),
        (&["--namespaces=team-a,team-b"], &[]),
        (&[], &[("SEALANT_WATCH_NAMESPACES", "team-a,team-b")]),
    ];
    let both = BTreeSet::from(["team-a".to_owned(), "team-b".to_owned()]);
    for (args, env) in forms {
        let api = watched_with(args, env, &["team-a", "team-b"]);
        assert_eq!(api.sealed_namespaces(), both, "{args:?} {env:?}");
        assert_eq!(api.secret_namespaces(), both, "{args:?} {env:?}");
    }
    // Without the flag: every namespace, through the cluster-wide paths.
    let all = watched_with(&[], &[], &["*"]);
    assert_eq!(all.sealed_namespaces(), BTreeSet::from(["*".to_owned()]));
}

#[test]
fn help_says_namespaces_may_be_comma_separated() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "Repeat the flag or separate them with commas (as in SEALANT_WATCH_NAMESPACES): a namespace never holds one"
        ),
        "{help}"
    );
}

/// `--label-selector` reaches the API server on every SealedSecret list and watch.
#[test]
fn the_label_selector_is_asked_of_the_api_server() {
    let api = watched_with(&["--label-selector", "team=a"], &[], &["*"]);
    let queries = api.sealed_queries();
    assert!(!queries.is_empty());
    for q in &queries {
        assert!(
            q.split('&').any(|p| p == "labelSelector=team%3Da"),
            "{queries:?}"
        );
    }
    // Without it, no selector.
    let api = watched_with(&[], &[], &["*"]);
    assert!(
        api.sealed_queries()
            .iter()
            .all(|q| !q.contains("labelSelector")),
        "{:?}",
        api.sealed_queries()
    );
}
