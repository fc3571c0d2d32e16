//! The `seal-controller` binary's bad inputs (docs/errors.md): usage errors exit 2 with clap's
//! message; startup errors exit 1 with one ERROR line naming what to fix. The API server is a
//! closed port or a stub on 127.0.0.1; no cluster is needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealant_stub::{
    ConnectProxy, Context, FailureShape, Running, Stub, answer, api_status, closed_port, isolated,
    kubeconfig,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_seal-controller");

/// A finished run of `seal-controller`.
type Run = sealant_stub::Run<Controller>;

/// `seal-controller` fails with exit code 1 with one ERROR line, and nothing else that says
/// ERROR.
struct Controller;

impl FailureShape for Controller {
    fn check(stderr: &str) {
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "one ERROR line: {stderr}");
    }
}

/// The binary with a controlled environment: no Pod, `kubeconfig` as KUBECONFIG.
fn command(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = isolated(BIN, kubeconfig, "SEALANT_");
    cmd.args(args);
    cmd
}

fn run(kubeconfig: &Path, args: &[&str]) -> Run {
    let out = command(kubeconfig, args)
        .stdin(Stdio::null())
        .output()
        .expect("run seal-controller");
    Run::from(out)
}

fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig("c", &[Context::new("c", server)])).unwrap();
    path
}

#[test]
fn usage_errors_exit_2_with_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none");
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unexpected argument '--bogus' found"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["--key-renew-period", "soon"],
            "invalid value 'soon' for '--key-renew-period <KEY_RENEW_PERIOD>': 'soon' is not a duration (e.g. 720h, 10m, 15s)",
        ),
        (&["--key-renew-period=-5m"], "'-5m' must not be negative"),
        (&["--resync-period", "10x"], "'10x' is not a duration"),
        (&["--lease-duration", "abc"], "'abc' is not a duration"),
        (
            &["--key-cutoff-time", "yesterday"],
            "invalid value 'yesterday' for '--key-cutoff-time <KEY_CUTOFF_TIME>': 'yesterday' is not an RFC 3339 time with a zone (e.g. 2026-01-31T00:00:00Z)",
        ),
        (
            &["--key-cutoff-time", "2026-01-31"],
            "is not an RFC 3339 time",
        ),
        (
            &["--listen-addr", "nowhere"],
            "invalid value 'nowhere' for '--listen-addr <LISTEN_ADDR>': invalid socket address syntax",
        ),
        (
            &["--leader-elect", "maybe"],
            "invalid value 'maybe' for '--leader-elect <LEADER_ELECT>'",
        ),
        (&["--log-format", "xml"], "[possible values: text, json]"),
        (&["--verify-rate=-1"], "-1 is not in 0..=4294967295"),
        (
            &["--reencrypt-rate", "lots"],
            "invalid digit found in string",
        ),
        // 0 would refuse every body: the bound can be tightened, never shut.
        (
            &["--max-bodies-in-flight", "0"],
            "invalid value '0' for '--max-bodies-in-flight <MAX_BODIES_IN_FLIGHT>': 0 is not in 1..=65535",
        ),
        (
            &["--namespace", "Bad_NS"],
            "invalid value 'Bad_NS' for '--namespace <NAMESPACE>': 'Bad_NS' is not a namespace (lowercase letters, digits and '-', at most 63)",
        ),
        (&["--namespaces", "a,B"], "'B' is not a namespace"),
        (
            &["--allow-secret-type", "Opaque"],
            "'Opaque' needs no allowing: only kubernetes.io/service-account-token and bootstrap.kubernetes.io/token are restricted",
        ),
        (
            &["rotate", "--namespace", "Bad"],
            "'Bad' is not a namespace",
        ),
        (
            &["rotate", "--bogus"],
            "unexpected argument '--bogus' found",
        ),
        (&["crd", "--x"], "unexpected argument '--x' found"),
    ];
    for (args, needle) in cases {
        let out = run(&none, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(needle),
            "{args:?}: {:?} lacks {needle:?}",
            out.stderr
        );
    }
    // The environment is checked the same way.
    let out = {
        let mut cmd = command(&none, &[]);
        cmd.env("SEALANT_KEY_RENEW_PERIOD", "soon");
        cmd.output().unwrap()
    };
    assert_eq!(out.status.code(), Some(2));
    // crd needs no cluster.
    let crd = run(&none, &["crd"]);
    assert_eq!(crd.code, 0, "{}", crd.stderr);
    assert!(crd.stdout.contains("kind: CustomResourceDefinition"));
}

#[test]
fn no_usable_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for args in [&["rotate"][..], &["--leader-elect=false"][..]] {
        run(&missing, args).fails(
            1,
            &format!(
                "ERROR seal_controller: no kubeconfig at {}, and not in a Pod (KUBERNETES_SERVICE_HOST is not set)",
                missing.display()
            ),
        );
    }
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "garbage: [\n").unwrap();
    let out = run(&bad, &["rotate"]).fails(
        1,
        &format!(
            "kubeconfig {}: not a valid kubeconfig: line 1 column 10: unclosed bracket '['",
            bad.display()
        ),
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // A kubeconfig that cannot be read (a folder): the cause is said once.
    let out = run(dir.path(), &["rotate"]).fails(
        1,
        &format!(
            "ERROR seal_controller: kubeconfig {}: cannot read: Is a directory (os error 21)\n",
            dir.path().display()
        ),
    );
    assert_eq!(
        out.stderr.matches("Is a directory").count(),
        1,
        "{}",
        out.stderr
    );
    let no_context = dir.path().join("no-context");
    std::fs::write(
        &no_context,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    run(&no_context, &["rotate"]).fails(
        1,
        &format!(
            "kubeconfig {}: no current-context is set",
            no_context.display()
        ),
    );
}

#[test]
fn an_unreachable_api_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{}", closed_port());
    let kubeconfig = write_kubeconfig(dir.path(), &server);
    let out = run(&kubeconfig, &["rotate"]).fails(
        1,
        &format!(
            "cannot make a new key in namespace sealant-system: cannot reach the API server at {server}/: Connection refused"
        ),
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // The controller: taking part in leader election is the first thing that needs the API.
    run(&kubeconfig, &["--listen-addr", "127.0.0.1:0"]).fails(
        1,
        &format!("cannot reach the API server at {server}/: Connection refused"),
    );
}

#[test]
fn lease_timings_that_would_allow_two_leaders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{}", closed_port()));
    let listen = ["--listen-addr", "127.0.0.1:0"];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--lease-renew-deadline", "15s"],
            "--lease-renew-deadline (15s) must be shorter than --lease-duration (15s): otherwise a standby may take the Lease while the old leader still writes",
        ),
        (
            &["--lease-duration", "8s"],
            "--lease-renew-deadline (10s) must be shorter than --lease-duration (8s)",
        ),
        (
            &["--lease-retry-period", "10s"],
            "--lease-retry-period (10s) must be shorter than --lease-renew-deadline (10s)",
        ),
        (
            &["--lease-retry-period", "0"],
            "--lease-retry-period must be more than 0",
        ),
    ];
    for (args, needle) in cases {
        let mut all = listen.to_vec();
        all.extend_from_slice(args);
        run(&kubeconfig, &all).fails(1, needle);
    }
}

#[test]
fn a_listen_address_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{}", closed_port()));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    run(
        &kubeconfig,
        &["--listen-addr", &addr, "--leader-elect=false"],
    )
    .fails(
        1,
        &format!("cannot listen on {addr} (--listen-addr): Address already in use"),
    );
}

/// A child process killed when dropped.
/// `GET path` on 127.0.0.1:`port`: the status code and body, or None if nothing listens yet.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls until `/readyz` answers.
fn readyz(port: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(answer) = http_get(port, "/readyz") {
            return answer;
        }
        assert!(Instant::now() < deadline, "the HTTP server never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The controller (no leader election) against an API server at a closed port, its HTTP
/// server on the port returned, its stderr to `stderr`.
fn without_api_server(dir: &Path, stderr: impl Into<Stdio>) -> (Running, u16) {
    let kubeconfig = write_kubeconfig(dir, &format!("http://127.0.0.1:{}", closed_port()));
    let port = closed_port();
    let listen = format!("127.0.0.1:{port}");
    let child = command(
        &kubeconfig,
        &["--leader-elect=false", "--listen-addr", &listen],
    )
    .stdout(Stdio::null())
    .stderr(stderr)
    .spawn()
    .unwrap();
    (Running(child), port)
}

#[test]
fn without_the_api_server_the_controller_stays_unready_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let (child, port) = without_api_server(dir.path(), std::fs::File::create(&log).unwrap());
    assert_eq!(
        readyz(port),
        (503, "keys not loaded; caches not synced".to_owned())
    );
    // It keeps retrying, and says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("WARN sealant_controller::keys: key watch error; retrying") {
            break;
        }
        assert!(Instant::now() < deadline, "no warning: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
}

/// With the cluster unreachable, kube-runtime holds its applier until its store is ready: a
/// stop must not wait for it forever.
#[test]
fn sigterm_stops_the_controller_even_without_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = without_api_server(dir.path(), Stdio::null());
    readyz(port);
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// A stub API server for `rotate`

const SECRETS: &str = "/api/v1/namespaces/sealant-system/secrets";
const CONFIGMAPS: &str = "/api/v1/namespaces/sealant-system/configmaps";

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn key_secret(name: &str, data: Value, state: Option<&str>) -> Value {
    let mut labels = json!({"sealant.dev/key": "true"});
    if let Some(state) = state {
        labels["sealant.dev/key-state"] = json!(state);
    }
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "sealant-system", "labels": labels,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": data,
    })
}

#[test]
fn rotate_reports_what_the_api_server_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stub = Stub::start(|req| {
        if req.path.starts_with(SECRETS) {
            api_status(
                403,
                "Forbidden",
                "secrets is forbidden: User \"dev\" cannot list resource \"secrets\" in API group \"\" in the namespace \"sealant-system\"",
            )
        } else {
            api_status(404, "NotFound", "not found")
        }
    });
    let kubeconfig = write_kubeconfig(dir.path(), &stub.url());
    run(&kubeconfig, &["rotate"]).fails(
        1,
        &format!(
            "cannot make a new key in namespace sealant-system: the API server at {}/ answered 403 Forbidden: secrets is forbidden: User \"dev\" cannot list resource",
            stub.url()
        ),
    );
}

#[test]
fn malformed_key_secrets_are_skipped_with_a_warning_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    // A valid identity, under a state label that is not one of the three.
    let identity = sealant_core::keys::generate_key("2026-01-01T00:00:00Z").file_text;
    let listed = vec![
        key_secret(
            "byo-garbage",
            json!({"key.txt": b64("# mine\nAGE-SECRET-KEY-1NOTAREALKEY\n")}),
            None,
        ),
        key_secret("byo-empty", json!({"other.txt": b64("x")}), None),
        key_secret(
            "byo-state",
            json!({"key.txt": b64(identity.as_str())}),
            Some("revoked"),
        ),
    ];
    let created = Arc::new(Mutex::new(Vec::<Value>::new()));
    let stub = {
        let created = created.clone();
        Stub::start(move |req| {
            let bare = req.path.split('?').next().unwrap_or_default();
            match (req.method.as_str(), bare) {
                ("GET", SECRETS) => {
                    let mut items = listed.clone();
                    items.extend(created.lock().unwrap().iter().cloned());
                    let list = json!({"apiVersion": "v1", "kind": "SecretList",
                                      "metadata": {"resourceVersion": "1"}, "items": items});
                    answer(200, list.to_string())
                }
                ("POST", SECRETS) => {
                    let mut secret: Value = serde_json::from_str(&req.body).unwrap();
                    secret["metadata"]["name"] = json!("sealant-key-new");
                    created.lock().unwrap().push(secret.clone());
                    answer(201, secret.to_string())
                }
                ("GET", p) if p.starts_with(CONFIGMAPS) => api_status(404, "NotFound", "not found"),
                ("POST", CONFIGMAPS) => answer(201, req.body.clone()),
                _ => api_status(404, "NotFound", "not found"),
            }
        })
    };
    let kubeconfig = write_kubeconfig(dir.path(), &stub.url());
    let out = run(&kubeconfig, &["rotate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.trim().starts_with("age1"), "{}", out.stdout);
    for warning in [
        "ignoring key Secret secret=\"byo-garbage\" error=data.key.txt is not an age identity file: line 2: not an age X25519 identity",
        "ignoring key Secret secret=\"byo-empty\" error=has no data.key.txt holding an age identity",
        "ignoring key Secret secret=\"byo-state\" error=label sealant.dev/key-state='revoked' is not active, retired or compromised",
    ] {
        let plain = warning.replace('"', "");
        assert!(
            out.stderr.contains(warning) || out.stderr.contains(&plain),
            "{warning}: {}",
            out.stderr
        );
    }
    let secret_line = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    assert!(
        !out.stderr.contains(secret_line) && !out.stderr.contains("NOTAREALKEY"),
        "never echo key material: {}",
        out.stderr
    );
    assert_eq!(created.lock().unwrap().len(), 1, "one new key");
}

// ---- kubectl's client conventions: --kubeconfig, --context, proxy-url; the namespace.

/// A kubeconfig with one context per (name, server, namespace, proxy-url); the first is current.
fn kubeconfig_of(path: &Path, contexts: &[(&str, &str, Option<&str>, Option<&str>)]) -> PathBuf {
    let contexts: Vec<Context<'_>> = contexts.iter().map(|&c| c.into()).collect();
    std::fs::write(path, kubeconfig(contexts[0].name, &contexts)).unwrap();
    path.to_owned()
}

/// An API server that refuses every key list with 403 (the stub records the paths asked):
/// `rotate`'s error then names the server that answered.
fn refusing_api() -> Stub {
    Stub::start(|_| api_status(403, "Forbidden", "secrets is forbidden"))
}

/// `--kubeconfig` wins over $KUBECONFIG, `--context` picks the server, both also from
/// SEALANT_KUBECONFIG and SEALANT_CONTEXT; a missing context or file is one ERROR line naming
/// it (exit 1). The controller's namespace stays `--namespace` (default sealant-system), not
/// the context's: its keys must not follow whatever namespace a kubeconfig points at.
#[test]
fn kubeconfig_and_context_flags_select_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let stub = refusing_api();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let env_config = write_kubeconfig(dir.path(), &closed);
    let flag_config = kubeconfig_of(
        &dir.path().join("flag-kubeconfig"),
        &[
            ("nowhere", &closed, None, None),
            ("stub", &stub.url(), Some("team-a"), None),
        ],
    );
    let flag = flag_config.to_str().unwrap();
    let refused = format!(
        "cannot make a new key in namespace sealant-system: the API server at {}/ answered 403 Forbidden",
        stub.url()
    );
    run(&env_config, &["rotate", "--kubeconfig", flag])
        .fails(1, &format!("cannot reach the API server at {closed}/"));
    run(
        &env_config,
        &["rotate", "--kubeconfig", flag, "--context", "stub"],
    )
    .fails(1, &refused);
    let out = command(&env_config, &["rotate"])
        .env("SEALANT_KUBECONFIG", flag)
        .env("SEALANT_CONTEXT", "stub")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&refused),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The controller itself, too (leader election is its first request).
    run(
        &env_config,
        &[
            "--kubeconfig",
            flag,
            "--context",
            "stub",
            "--listen-addr",
            "127.0.0.1:0",
        ],
    )
    .fails(
        1,
        &format!("the API server at {}/ answered 403", stub.url()),
    );
    // Keys are looked for in sealant-system, not in the context's team-a.
    let asked = stub.paths();
    assert!(asked.iter().any(|p| p.starts_with(SECRETS)), "{asked:?}");
    assert!(!asked.iter().any(|p| p.contains("team-a")), "{asked:?}");

    let out = run(&env_config, &["rotate", "--kubeconfig", flag, "--context", "ghost"]).fails(
        1,
        &format!("ERROR seal_controller: kubeconfig {flag}: no context 'ghost' (see kubectl config get-contexts)"),
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let missing = dir.path().join("missing");
    let out = run(
        &env_config,
        &["rotate", "--kubeconfig", missing.to_str().unwrap()],
    )
    .fails(1, &format!("no kubeconfig at {}", missing.display()));
    assert!(
        out.stderr
            .trim_end()
            .ends_with(&format!("no kubeconfig at {}", missing.display())),
        "no Pod hint: an explicit --kubeconfig is never replaced by the Pod's: {}",
        out.stderr
    );
}

/// A cluster's `proxy-url` is used: `rotate` reaches the API server through an HTTP CONNECT
/// tunnel of that proxy.
#[test]
fn a_proxy_url_in_the_kubeconfig_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let stub = refusing_api();
    let proxy = ConnectProxy::start();
    let config = kubeconfig_of(
        &dir.path().join("kubeconfig"),
        &[("proxied", &stub.url(), None, Some(&proxy.url()))],
    );
    run(&config, &["rotate"]).fails(
        1,
        &format!("the API server at {}/ answered 403 Forbidden", stub.url()),
    );
    let target = stub.url().trim_start_matches("http://").to_owned();
    assert_eq!(proxy.requests(), [format!("CONNECT {target} HTTP/1.1")]);
    assert!(!stub.paths().is_empty());
}

/// `import-bitnami-keys` reads the whole backup before it talks to the API server: a bad file
/// is named with its line and nothing is written (the API server here is a closed port, so
/// any attempt to reach it would say so instead).
#[test]
fn import_bitnami_keys_names_a_bad_backup_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{}", closed_port()));
    // (file, what it holds or None when missing, the error after the file's name)
    let backups: [(&str, Option<&str>, &str); 4] = [
        (
            "missing.yaml",
            None,
            ": cannot read the key backup: No such file or directory",
        ),
        (
            "cm.yaml",
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
            ":1: is a ConfigMap, not a key Secret or a List of them",
        ),
        (
            "empty.yaml",
            Some("apiVersion: v1\nkind: List\nitems: []\n"),
            ": holds no Sealed Secrets key",
        ),
        (
            "nokey.yaml",
            Some(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: sealed-secrets-keyx}\ndata: {tls.crt: ''}\n",
            ),
            ":1: Secret 'sealed-secrets-keyx' has no data.tls.key",
        ),
    ];
    for (name, text, says) in backups {
        let file = dir.path().join(name);
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
        }
        run(
            &kubeconfig,
            &["import-bitnami-keys", file.to_str().unwrap()],
        )
        .fails(1, &format!("{}{says}", file.display()));
    }
    run(&kubeconfig, &["import-bitnami-keys"]).fails(2, "<FILE>");
}

/// A good key, but the API server refuses: the Secret and the server are named.
#[test]
fn import_bitnami_keys_reports_what_the_api_server_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    let stub = Stub::start(|_| {
        api_status(
            403,
            "Forbidden",
            "secrets is forbidden: User \"dev\" cannot get resource \"secrets\"",
        )
    });
    let kubeconfig = write_kubeconfig(dir.path(), &stub.url());
    let out = run(&kubeconfig, &["import-bitnami-keys", key.to_str().unwrap()])
        .fails(1, "cannot read Secret sealant-system/sealant-bitnami-key-");
    assert!(
        out.stderr.contains(&format!(
            "the API server at {}/ answered 403 Forbidden: secrets is forbidden",
            stub.url()
        )),
        "{}",
        out.stderr
    );
}
