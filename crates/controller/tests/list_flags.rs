//! `seal-controller`'s one list flag, `--namespaces`, through the real binary: repeated,
//! comma-separated and from SEALANT_WATCH_NAMESPACES it watches exactly the namespaces named
//! (a namespace never holds a comma, so the comma form stays). The API server is a stub on
//! 127.0.0.1 that records what the controller asks for.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_seal-controller");
const SEALED: &str = "/apis/sealant.dev/v1alpha1";

/// An API server that serves one key Secret, no SealedSecrets and no Secrets, holds watches
/// open without events, and records every path asked for.
struct ApiServer {
    port: u16,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mut key, _) =
            sealant_core::keystore::new_key_secret("sealant-system", Timestamp::now());
        key.metadata.name = Some("sealant-key-1".into());
        key.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let key = serde_json::to_value(key).unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (paths, stop) = (paths.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (paths, stop, key) = (paths.clone(), stop.clone(), key.clone());
                    std::thread::spawn(move || answer(stream, &paths, &stop, &key));
                }
            })
        };
        ApiServer {
            port,
            paths,
            stop,
            thread: Some(thread),
        }
    }

    /// The namespaces whose SealedSecrets were listed or watched; "*" for all namespaces.
    fn sealed_namespaces(&self) -> BTreeSet<String> {
        let paths = self.paths.lock().unwrap();
        paths
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
        let paths = self.paths.lock().unwrap();
        paths
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
}

impl ApiServer {
    /// The query strings of every SealedSecret list and watch.
    fn sealed_queries(&self) -> Vec<String> {
        let paths = self.paths.lock().unwrap();
        paths
            .iter()
            .filter_map(|t| t.split_once('?'))
            .filter(|(p, _)| p.starts_with(SEALED) && p.ends_with("/sealedsecrets"))
            .map(|(_, q)| q.to_owned())
            .collect()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(stream: TcpStream, paths: &Mutex<Vec<String>>, stop: &AtomicBool, key: &Value) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    paths.lock().unwrap().push(target.clone());
    let mut stream = stream;
    if query.split('&').any(|q| q == "watch=true") {
        // A watch with nothing to report: keep it open until the test ends.
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    let list = |kind: &str, items: Vec<Value>| json!({"kind": kind, "metadata": {"resourceVersion": "1"}, "items": items});
    let (status, reply) = match (method.as_str(), path) {
        ("GET", "/api/v1/namespaces/sealant-system/secrets") => {
            (200, list("SecretList", vec![key.clone()]))
        }
        ("GET", p) if p.ends_with("/sealedsecrets") => (200, list("SealedSecretList", vec![])),
        ("GET", p) if p.ends_with("/secrets") => (200, list("PartialObjectMetadataList", vec![])),
        ("POST", _) => (201, serde_json::from_slice(&body).unwrap_or(json!({}))),
        _ => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "not found", "reason": "NotFound", "code": 404}),
        ),
    };
    let reply = reply.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn write_kubeconfig(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
current-context: c
clusters:
- name: c
  cluster:
    server: http://127.0.0.1:{port}
contexts:
- name: c
  context:
    cluster: c
    user: u
users:
- name: u
  user:
    token: t0ken
"
        ),
    )
    .unwrap();
    path
}

/// An environment variable and its value.
type Env<'a> = (&'a str, &'a str);

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the controller (no leader election, no key renewal) with `args` and `env` against a
/// fresh stub until it has watched at least `expected` namespaces' SealedSecrets and Secrets;
/// returns the stub.
fn watched_with(args: &[&str], env: &[Env], expected: &[&str]) -> ApiServer {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--leader-elect=false",
        "--key-renew-period=0",
        "--listen-addr=127.0.0.1:0",
    ])
    .args(args)
    .env("KUBECONFIG", write_kubeconfig(dir.path(), api.port))
    .env("NO_COLOR", "1")
    .env_remove("RUST_LOG")
    .env_remove("KUBERNETES_SERVICE_HOST")
    .env_remove("KUBERNETES_SERVICE_PORT")
    .env_remove("POD_NAMESPACE")
    .env_remove("POD_NAME");
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALANT_") {
            cmd.env_remove(k);
        }
    }
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
