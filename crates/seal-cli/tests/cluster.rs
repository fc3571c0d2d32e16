//! The commands that talk to a cluster, against a stub HTTP server on 127.0.0.1 that plays the
//! Kubernetes API server (through a kubeconfig) and the controller (directly, with
//! --controller-url, or behind the API server's service proxy path).

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sealant_core::SealedSecret;
use sealant_core::convert::{reencrypt, unseal};
use sealant_core::keys::{KeyRing, parse_identity_file, parse_recipient};
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::rewrap::ClusterKeys;
use sealant_core::scope::Scope;
use sealant_stub::{
    Answer, ConnectProxy, Context, Seen, Stub, answer, api_status, closed_port, kubeconfig,
};
use serde_json::{Value, json};
use support::{Run, Sandbox, assert_same_lines, changed_lines, require_tool, secret_yaml};

/// A kubeconfig with two contexts: `stub` (at `url`, with a bearer token) and `nowhere`
/// (a closed port); `current` is the current one.
fn write_kubeconfig(sb: &Sandbox, url: &str, current: &str) -> PathBuf {
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    sb.write(
        "kubeconfig",
        &kubeconfig(
            current,
            &[Context::new("stub", url), Context::new("nowhere", &nowhere)],
        ),
    )
}

fn with_kubeconfig(sb: &Sandbox, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    sb.seal_with(args, None, &[("KUBECONFIG", kubeconfig.to_str().unwrap())])
}

const CONFIGMAP_PATH: &str = "/api/v1/namespaces/sealant-system/configmaps/sealant-recipients";
const PROXY: &str = "/api/v1/namespaces/sealant-system/services/http:seal-controller:http/proxy";

/// The API server's answer for the recipients ConfigMap.
fn configmap(namespace: &str, recipients_txt: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "sealant-recipients", "namespace": namespace},
        "data": {"recipients.txt": recipients_txt},
    })
    .to_string()
}

fn not_found(what: &str) -> Answer {
    answer(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("{what} not found"), "reason": "NotFound", "code": 404})
        .to_string(),
    )
}

/// A controller holding the identities in `key_files`, re-sealing to `reseal_to`: it really
/// opens and re-seals, as the controller does, and also publishes its ConfigMap.
fn controller(
    sb: &Sandbox,
    key_files: &[&str],
    reseal_to: &str,
) -> impl Fn(&Seen) -> Answer + Send + 'static {
    let mut ring = KeyRing::new();
    for file in key_files {
        for identity in parse_identity_file(&sb.read(file)).unwrap() {
            ring.insert(identity);
        }
    }
    let to = parse_recipient(reseal_to).unwrap();
    let published = format!("# this cluster's recipients\n{reseal_to}\n");
    move |req: &Seen| {
        let endpoint = req.path.strip_prefix(PROXY).unwrap_or(&req.path);
        match (req.method.as_str(), endpoint) {
            ("GET", CONFIGMAP_PATH) => answer(200, configmap("sealant-system", &published)),
            ("GET", "/v1/recipients") => answer(200, published.clone()),
            ("POST", "/v1/verify") => {
                let sealed: SealedSecret = serde_json::from_str(&req.body).unwrap();
                match unseal(&sealed, &ring) {
                    Ok(opened) => answer(
                        200,
                        json!({"ok": true, "openedWith": opened.opened_with}).to_string(),
                    ),
                    Err(e) => answer(
                        409,
                        json!({"ok": false, "error": e.to_string()}).to_string(),
                    ),
                }
            }
            ("POST", "/v1/reencrypt") => {
                let sealed: SealedSecret = serde_json::from_str(&req.body).unwrap();
                let keys = ClusterKeys {
                    usable: &ring,
                    held: &ring,
                    active: std::slice::from_ref(&to),
                };
                match reencrypt(&sealed, &keys, &Default::default()) {
                    Ok(resealed) => answer(200, serde_json::to_string(&resealed).unwrap()),
                    Err(e) => answer(409, json!({"error": e.to_string()}).to_string()),
                }
            }
            _ => not_found(&req.path),
        }
    }
}

fn sealed_objects(text: &str) -> Vec<SealedSecret> {
    read_manifests(text)
        .unwrap()
        .into_iter()
        .map(|m| match m.value {
            Manifest::SealedSecret(s) => *s,
            other => panic!("not a SealedSecret: {other:?}"),
        })
        .collect()
}

/// The SealedSecrets the stub answered /v1/reencrypt with, in order.
fn resealed_answers(handler_bodies: &Mutex<Vec<String>>) -> Vec<SealedSecret> {
    handler_bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// fetch-keys and default recipients

#[test]
fn fetch_keys_reads_the_recipients_configmap() {
    let (sb, a) = Sandbox::with_key("a.txt");
    let b = sb.keygen("b.txt");
    let text = format!(
        "# age recipients of this cluster\n\n{a}\n  {b}  \n# retired keys are not listed\n"
    );
    let stub = Stub::start(move |req| {
        match req.path.as_str() {
        CONFIGMAP_PATH => answer(200, configmap("sealant-system", &text)),
        "/api/v1/namespaces/empty/configmaps/sealant-recipients" => {
            answer(200, configmap("empty", "# nothing yet\n"))
        }
        "/api/v1/namespaces/denied/configmaps/sealant-recipients" => answer(
            403,
            json!({"kind": "Status", "message": "configmaps \"sealant-recipients\" is forbidden: User \"dev\" cannot get resource", "code": 403}).to_string(),
        ),
        other => not_found(other),
    }
    });
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "stub");

    let out = with_kubeconfig(&sb, &kubeconfig, &["fetch-keys"]).ok();
    assert_eq!(out.stdout, format!("{a}\n{b}\n"));
    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, CONFIGMAP_PATH);
    assert_eq!(seen[0].header("authorization"), Some("Bearer t0ken"));

    // The output is a recipients file for -R.
    sb.write("cluster.recipients", &out.stdout);
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.seal(&["-R", "cluster.recipients", "s.yaml"]).ok();

    // Errors: not installed, nothing published, forbidden.
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["fetch-keys", "--controller-namespace", "elsewhere"],
    )
    .fails(
        1,
        "ConfigMap elsewhere/sealant-recipients not found at http://127.0.0.1:",
    );
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["fetch-keys", "--controller-namespace", "empty"],
    )
    .fails(
        1,
        "ConfigMap empty/sealant-recipients: data.recipients.txt: holds no age1… recipient",
    );
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["fetch-keys", "--controller-namespace", "denied"],
    )
    .fails(
        1,
        "answered 403 Forbidden: configmaps \"sealant-recipients\" is forbidden",
    );
    // The environment names the namespace too.
    sb.seal_with(
        &["fetch-keys"],
        None,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("SEAL_CONTROLLER_NAMESPACE", "empty"),
        ],
    )
    .fails(1, "empty/sealant-recipients");
}

#[test]
fn fetch_keys_follows_the_context_and_the_controller_url() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let stub = Stub::start(controller(&sb, &["k.txt"], &r));
    // The current context is unreachable; --context picks the stub.
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "nowhere");
    with_kubeconfig(&sb, &kubeconfig, &["fetch-keys"]).fails(1, "cannot reach http://127.0.0.1:");
    let out = with_kubeconfig(&sb, &kubeconfig, &["fetch-keys", "--context", "stub"]).ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    let out = sb
        .seal_with(
            &["fetch-keys"],
            None,
            &[
                ("KUBECONFIG", kubeconfig.to_str().unwrap()),
                ("SEAL_CONTEXT", "stub"),
            ],
        )
        .ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    with_kubeconfig(&sb, &kubeconfig, &["fetch-keys", "--context", "ghost"]).fails(1, "ghost");

    // --controller-url needs no kubeconfig at all.
    let out = sb
        .seal(&["fetch-keys", "--controller-url", &stub.url()])
        .ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    assert_eq!(stub.paths().last().unwrap(), "/v1/recipients");

    // Without any kubeconfig, say so.
    sb.seal(&["fetch-keys"]).fails(1, "no kubeconfig at");
    // Bad flag values are usage errors.
    let out = sb.seal(&["fetch-keys", "--controller-url", "localhost:8080"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = sb.seal(&["fetch-keys", "--controller-name", "Not_A_Name"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn sealing_without_recipients_uses_the_clusters() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let stub = Stub::start(controller(&sb, &["k.txt"], &r));
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "stub");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "hunter2")]));

    let sealed = with_kubeconfig(&sb, &kubeconfig, &["s.yaml", "-w", "db.sealed.yaml"]).ok();
    assert_eq!(sealed.stdout, "");
    let objects = sealed_objects(&sb.read("db.sealed.yaml"));
    assert_eq!(objects[0].spec.recipients["pw"], vec![r.clone()]);
    let opened = sb
        .seal(&["unseal", "-i", "k.txt", "db.sealed.yaml"])
        .ok()
        .stdout;
    assert!(opened.contains("aHVudGVyMg=="), "{opened}");
    assert_eq!(stub.paths(), vec![CONFIGMAP_PATH.to_owned()]);

    // seal create and seal raw too.
    let out = with_kubeconfig(
        &sb,
        &kubeconfig,
        &["create", "api", "-n", "prod", "--from-literal", "token=abc"],
    )
    .ok();
    assert!(out.stdout.contains(&r), "{}", out.stdout);
    let out = sb
        .seal_with(
            &["raw", "--name", "api", "-n", "prod"],
            Some(b"abc"),
            &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        )
        .ok();
    assert!(out.stdout.trim().len() > 100, "{}", out.stdout);
    // Several Secrets, one request.
    sb.write(
        "two.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("a", "prod", &[("k", "v")]),
            secret_yaml("b", "prod", &[("k", "v")])
        ),
    );
    let before = stub.seen().len();
    with_kubeconfig(&sb, &kubeconfig, &["two.yaml"]).ok();
    assert_eq!(stub.seen().len(), before + 1);

    // merge seals new items to the cluster's recipients too, never to the file's records.
    let before = stub.seen().len();
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["merge", "db.sealed.yaml", "--from-literal", "user=admin"],
    )
    .ok();
    assert_eq!(stub.seen().len(), before + 1, "{:?}", stub.paths());
    let merged = sealed_objects(&sb.read("db.sealed.yaml")).remove(0);
    assert_eq!(merged.spec.recipients["user"], std::slice::from_ref(&r));

    // -r and a repo config never ask the cluster.
    let before = stub.seen().len();
    let other = sb.keygen("other.txt");
    with_kubeconfig(&sb, &kubeconfig, &["s.yaml", "-r", &other]).ok();
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &[
            "merge",
            "db.sealed.yaml",
            "--from-literal",
            "user=admin",
            "-r",
            &other,
        ],
    )
    .ok();
    sb.write(
        ".sealant.yaml",
        &format!("recipients:\n  main: {other}\nrules:\n  - recipients: [main]\n"),
    );
    let out = with_kubeconfig(&sb, &kubeconfig, &["s.yaml"]).ok();
    assert!(out.stdout.contains(&other) && !out.stdout.contains(&r));
    assert_eq!(stub.seen().len(), before, "{:?}", stub.paths());
}

#[test]
fn an_unreachable_cluster_means_no_recipients() {
    let sb = Sandbox::new();
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let kubeconfig = write_kubeconfig(&sb, "http://127.0.0.1:1", "nowhere");
    let out = with_kubeconfig(&sb, &kubeconfig, &["s.yaml", "-w", "out.yaml"])
        .fails(1, "s.yaml:1: no recipients: pass -r age1…, -R FILE, add a .sealant.yaml, or make the cluster reachable (cannot reach http://127.0.0.1:");
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert!(!sb.path("out.yaml").exists());
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["create", "x", "-n", "y", "--from-literal", "a=b"],
    )
    .fails(1, "no recipients: pass -r");
    let out = sb.seal_with(
        &["raw", "--name", "x", "-n", "y"],
        Some(b"v"),
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    out.fails(1, "no recipients: pass -r");
    // No kubeconfig at all.
    sb.seal(&["s.yaml"])
        .fails(1, "make the cluster reachable (no kubeconfig at");
    // A bad input is reported before the cluster is asked anything.
    sb.write("bad.yaml", "kind: Pod\n");
    with_kubeconfig(&sb, &kubeconfig, &["bad.yaml"]).fails(1, "bad.yaml:1: is a Pod, not a Secret");
}

// ---------------------------------------------------------------------------------------------
// validate

#[test]
fn validate_asks_the_controller() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let foreign = sb.keygen("foreign.txt");
    let stub = Stub::start(controller(&sb, &["k.txt"], &r));
    let url = stub.url();
    sb.seal_db(&r, &[("pw", "x")], "ok.yaml");
    sb.seal(&["-r", &foreign, "s.yaml", "-w", "foreign.yaml"])
        .ok();
    sb.seal(&["-r", &r, "s.yaml", "-o", "json", "-w", "ok.json"])
        .ok();

    let out = sb
        .seal(&["validate", "--controller-url", &url, "ok.yaml", "ok.json"])
        .ok();
    assert_eq!(
        out.stdout,
        format!(
            "ok.yaml: SealedSecret 'db' opens in this cluster (key {r})\nok.json: SealedSecret 'db' opens in this cluster (key {r})\n"
        )
    );
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/verify")
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let posted: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(posted["kind"], "SealedSecret");
    assert_eq!(posted["metadata"]["name"], "db");
    assert_eq!(posted["spec"]["recipients"]["pw"][0], r.as_str());

    // stdin.
    let out = sb
        .seal_with(
            &["validate", "--controller-url", &url],
            Some(sb.read("ok.yaml").as_bytes()),
            &[],
        )
        .ok();
    assert!(
        out.stdout.starts_with("<stdin>: SealedSecret 'db' opens"),
        "{}",
        out.stdout
    );

    // 409: the controller's reason, with the file and line; nothing on stdout.
    sb.write(
        "both.yaml",
        &format!("{}---\n{}", sb.read("ok.yaml"), sb.read("foreign.yaml")),
    );
    let line = sb.read("ok.yaml").lines().count() + 2;
    sb.seal(&["validate", "--controller-url", &url, "both.yaml"])
        .fails(
            1,
            &format!("both.yaml:{line}: SealedSecret 'db': item 'pw'"),
        );

    // Not a SealedSecret: refused before anything is sent.
    let before = stub.seen().len();
    sb.seal(&["validate", "--controller-url", &url, "ok.yaml", "s.yaml"])
        .fails(1, "s.yaml:1: is a Secret, not a SealedSecret");
    assert_eq!(stub.seen().len(), before);

    // Through the API server's service proxy, with the kubeconfig's credentials.
    let kubeconfig = write_kubeconfig(&sb, &url, "stub");
    let out = with_kubeconfig(&sb, &kubeconfig, &["validate", "ok.yaml"]).ok();
    assert!(
        out.stdout.contains("opens in this cluster"),
        "{}",
        out.stdout
    );
    let last = stub.seen().pop().unwrap();
    assert_eq!(last.path, format!("{PROXY}/v1/verify"));
    assert_eq!(last.header("authorization"), Some("Bearer t0ken"));
    // Another controller namespace and Service name; it is not there.
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &[
            "validate",
            "ok.yaml",
            "--controller-namespace",
            "ops",
            "--controller-name",
            "sealer",
        ],
    )
    .fails(
        1,
        "ok.yaml:1: SealedSecret 'db': the controller (service ops/sealer via http://127.0.0.1:",
    );
    assert_eq!(
        stub.seen().pop().unwrap().path,
        "/api/v1/namespaces/ops/services/http:sealer:http/proxy/v1/verify"
    );

    // An unreachable controller.
    sb.seal(&[
        "validate",
        "--controller-url",
        &format!("http://127.0.0.1:{}", closed_port()),
        "ok.yaml",
    ])
    .fails(
        1,
        "ok.yaml:1: SealedSecret 'db': cannot reach the controller at http://127.0.0.1:",
    );
}

#[test]
fn validate_reports_the_controllers_status() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.seal_db(&r, &[("pw", "x")], "ok.yaml");
    let status = Arc::new(AtomicUsize::new(429));
    let stub = {
        let status = status.clone();
        Stub::start(move |_| {
            let code = status.load(Ordering::SeqCst) as u16;
            let mut a = answer(code, json!({"error": "slow down"}).to_string());
            if code == 429 {
                a.headers.push(("Retry-After", "7".into()));
            }
            if code == 200 {
                a.body = "not json".into();
            }
            a
        })
    };
    let validate = || sb.seal(&["validate", "--controller-url", &stub.url(), "ok.yaml"]);
    validate().fails(
        1,
        "ok.yaml:1: SealedSecret 'db': the controller at http://127.0.0.1:",
    );
    let out = validate().fails(1, "answered 429 Too Many Requests: slow down");
    assert!(out.stderr.contains("try again in 7s"), "{}", out.stderr);
    assert_eq!(stub.seen().len(), 2, "validate does not retry");
    status.store(413, Ordering::SeqCst);
    validate().fails(1, "answered 413 Payload Too Large");
    status.store(400, Ordering::SeqCst);
    validate().fails(1, "answered 400 Bad Request: slow down");
    status.store(500, Ordering::SeqCst);
    validate().fails(1, "answered 500 Internal Server Error: slow down");
    status.store(200, Ordering::SeqCst);
    validate().fails(1, "answered 200 OK: not json");
}

// ---------------------------------------------------------------------------------------------
// reencrypt

/// Seals `secret` to `r` into `file` in `format`.
fn seal_to(sb: &Sandbox, r: &str, secret: &str, file: &str, format: &str) {
    sb.write("in.yaml", secret);
    sb.seal(&["-r", r, "in.yaml", "-o", format, "-w", file])
        .ok();
}

#[test]
fn reencrypt_rewrites_files_in_their_own_format() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    let foreign = sb.keygen("foreign.txt");
    // The controller holds the old and the new key and re-seals to the new one; it records
    // what it answered so that the files can be compared with it.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let stub = {
        let inner = controller(&sb, &["old.txt", "new.txt"], &new);
        let answered = answered.clone();
        Stub::start(move |req| {
            let a = inner(req);
            if a.status == 200 && req.path.ends_with("/v1/reencrypt") {
                answered.lock().unwrap().push(a.body.clone());
            }
            a
        })
    };
    let db = secret_yaml("db", "prod", &[("pw", "hunter2")]);
    let api = secret_yaml("api", "prod", &[("token", "abc")]);
    seal_to(&sb, &old, &db, "db.yaml", "yaml");
    seal_to(&sb, &old, &api, "api.json", "json");
    // A YAML stream of two, and a JSON List of two.
    sb.write("in.yaml", &format!("{db}---\n{api}"));
    sb.seal(&["-r", &old, "in.yaml", "-w", "both.yaml"]).ok();
    sb.seal(&["-r", &old, "in.yaml", "-o", "json", "-w", "list.json"])
        .ok();
    // The second object of this file opens nowhere: the whole file stays as it was.
    seal_to(&sb, &foreign, &api, "foreign-part.yaml", "yaml");
    sb.write(
        "mixed.yaml",
        &format!(
            "{}---\n{}",
            sb.read("db.yaml"),
            sb.read("foreign-part.yaml")
        ),
    );
    let mixed_before = sb.read("mixed.yaml");
    let list_before = sb.read("list.json");
    let mixed_line = sb.read("db.yaml").lines().count() + 2;

    let out = sb.seal(&[
        "reencrypt",
        "--controller-url",
        &stub.url(),
        "db.yaml",
        "mixed.yaml",
        "api.json",
        "both.yaml",
        "list.json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!(
            "seal: mixed.yaml:{mixed_line}: SealedSecret 'api': item 'token'"
        )),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "seal: 1 of 5 files left as it was; reencrypted 4");
    assert_eq!(sb.read("mixed.yaml"), mixed_before, "untouched");
    // The published recipients are asked once, after the first answer, to check answers with.
    let paths = stub.paths();
    assert_eq!(
        paths.iter().filter(|p| *p == "/v1/recipients").count(),
        1,
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .all(|p| p == "/v1/reencrypt" || p == "/v1/recipients"),
        "{paths:?}"
    );

    // What was written is exactly what the controller answered, in each file's format.
    let answers = resealed_answers(&answered);
    // Requests: db.yaml, mixed.yaml (db ok, api refused), api.json, both.yaml ×2, list.json ×2.
    assert_eq!(answers.len(), 7);
    assert_eq!(
        sealed_objects(&sb.read("db.yaml")),
        vec![answers[0].clone()]
    );
    let api_json = sb.read("api.json");
    assert!(api_json.starts_with('{'), "JSON stays JSON");
    let api_value: Value = serde_json::from_str(&api_json).unwrap();
    let served: Value = serde_json::from_str(&answered.lock().unwrap()[2]).unwrap();
    assert_eq!(api_value, served);
    let both = sb.read("both.yaml");
    assert!(
        !both.trim_start().starts_with('{') && both.contains("\n---\n"),
        "YAML stays YAML"
    );
    assert_eq!(sealed_objects(&both), answers[3..5].to_vec());
    let list: Value = serde_json::from_str(&sb.read("list.json")).unwrap();
    assert_eq!(list["kind"], "List");
    // In the List too, only the lines of values and recipients changed, one for one.
    let (removed, added) = changed_lines(&list_before, &sb.read("list.json"));
    assert_eq!(
        (removed.len(), added.len()),
        (4, 4),
        "{removed:?} {added:?}"
    );
    for line in removed.iter().chain(&added) {
        let value = line.trim_start().trim_end_matches(',');
        assert!(
            value.contains(": \"YWdl")
                || value == format!("\"{old}\"")
                || value == format!("\"{new}\""),
            "{line}"
        );
    }
    assert_eq!(
        sealed_objects(&sb.read("list.json")),
        answers[5..7].to_vec()
    );

    // They are now sealed to the new key only.
    for file in ["db.yaml", "api.json", "both.yaml", "list.json"] {
        let text = sb.read(file);
        assert!(
            text.contains(&new) && !text.contains(&old),
            "{file}: {text}"
        );
        sb.seal(&["unseal", "-i", "new.txt", file]).ok();
        sb.seal(&["unseal", "-i", "old.txt", file])
            .fails(1, "none of those keys is held here");
    }
    // The key slots, not the record, say who reads: the stock age CLI agrees.
    assert!(sb.age_opens("db.yaml", "pw", "new.txt"));
    assert!(!sb.age_opens("db.yaml", "pw", "old.txt"));
    let opened = sb.seal(&["unseal", "-i", "new.txt", "db.yaml"]).ok().stdout;
    assert!(opened.contains("aHVudGVyMg=="), "{opened}");

    // All good: nothing on stdout, a summary on stderr, exit 0.
    let out = sb
        .seal(&[
            "reencrypt",
            "--controller-url",
            &stub.url(),
            "db.yaml",
            "api.json",
        ])
        .ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "seal reencrypt: reencrypted 2 files\n");
}

/// The value of item `key` in a SealedSecret file, as written (`key: YWdl…` or `"key": "YWdl…"`).
fn value_line(text: &str, key: &str) -> String {
    text.lines()
        .find(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{key}: YWdl")) || l.starts_with(&format!("\"{key}\": \"YWdl"))
        })
        .unwrap_or_else(|| panic!("no value for {key} in {text}"))
        .to_owned()
}

#[test]
fn reencrypt_rewrites_only_the_items_and_walks_folders() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    let stub = Stub::start(controller(&sb, &["old.txt", "new.txt"], &new));
    let url = stub.url();
    let db_secret = secret_yaml("db", "prod", &[("pw", "hunter2"), ("user", "app")]);
    seal_to(&sb, &old, &db_secret, "db.sealed", "yaml");
    let sealed = sb.read("db.sealed");
    // A repo: a commented YAML stream (a ConfigMap, then the SealedSecret), a JSON file, a
    // Deployment, a gitignored folder and an excluded one.
    let db = format!(
        "# The db of prod.\napiVersion: v1\nkind: ConfigMap  # settings\nmetadata: {{name: db-config}}\n---\n# Rotated with seal reencrypt.\n{}",
        sealed
            .replace("  name: db\n", "  name: db  # owned by the db team\n")
            .replace(
                "  recipients:\n",
                "  # who reads each item\n  recipients:\n"
            )
    );
    sb.write("repo/apps/db.yaml", &db);
    seal_to(
        &sb,
        &old,
        &secret_yaml("api", "prod", &[("token", "abc")]),
        "api.sealed",
        "json",
    );
    let api = sb.read("api.sealed");
    sb.write("repo/apps/api.json", &api);
    sb.write(
        "repo/apps/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db}\n",
    );
    sb.write("repo/.gitignore", "rendered/\n");
    sb.write("repo/rendered/db.yaml", &sealed);
    sb.write("repo/legacy/db.yaml", &sealed);
    let mut git = std::process::Command::new(require_tool("git", "git"));
    git.args(["init", "-q"]).current_dir(sb.path("repo"));
    assert!(git.status().unwrap().success());
    let untouched = [
        "repo/apps/deploy.yaml",
        "repo/rendered/db.yaml",
        "repo/legacy/db.yaml",
    ];
    let snapshot = |files: &[&str]| files.iter().map(|f| sb.read(f)).collect::<Vec<_>>();
    let before = snapshot(&untouched);
    let reencrypt = |extra: &[&str]| {
        let mut args = vec![
            "reencrypt",
            "--controller-url",
            &url,
            "--exclude",
            "repo/legacy",
        ];
        args.extend_from_slice(extra);
        args.push("repo");
        sb.seal(&args)
    };

    // --dry-run lists the items that would be re-sealed, writes nothing, and exits 1.
    let db_line = db
        .lines()
        .position(|l| l.starts_with("apiVersion: sealant.dev"))
        .unwrap()
        + 1;
    let dry = reencrypt(&["--dry-run"]);
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    assert_eq!(
        dry.stdout,
        format!(
            "repo/apps/api.json:1: SealedSecret 'api': item token\nrepo/apps/db.yaml:{db_line}: SealedSecret 'db': items pw, user\n"
        )
    );
    assert_eq!(
        dry.stderr,
        "seal reencrypt: 2 of 2 files would change (dry run: nothing written)\n"
    );
    assert_eq!(sb.read("repo/apps/db.yaml"), db);
    assert_eq!(sb.read("repo/apps/api.json"), api);

    let out = reencrypt(&[]).ok();
    assert_eq!(out.stderr, "seal reencrypt: reencrypted 2 files\n");
    assert_eq!(out.stdout, "");
    // Only the items' values and their record lines changed: comments, the ConfigMap and the
    // rest of the SealedSecret keep their bytes.
    let after = sb.read("repo/apps/db.yaml");
    let (removed, added) = changed_lines(&db, &after);
    let old_line = format!("    - {old}");
    let new_line = format!("    - {new}");
    assert_same_lines(
        removed,
        vec![
            value_line(&db, "pw"),
            value_line(&db, "user"),
            old_line.clone(),
            old_line,
        ],
        &after,
    );
    assert_same_lines(
        added,
        vec![
            value_line(&after, "pw"),
            value_line(&after, "user"),
            new_line.clone(),
            new_line,
        ],
        &after,
    );
    let api_after = sb.read("repo/apps/api.json");
    let (removed, added) = changed_lines(&api, &api_after);
    assert_same_lines(
        removed,
        vec![value_line(&api, "token"), format!("        \"{old}\"")],
        &api_after,
    );
    assert_same_lines(
        added,
        vec![
            value_line(&api_after, "token"),
            format!("        \"{new}\""),
        ],
        &api_after,
    );
    // The gitignored and the excluded SealedSecrets, and the Deployment, were not touched.
    assert_eq!(snapshot(&untouched), before);

    // All on the new key: nothing would change, exit 0.
    let dry = reencrypt(&["--dry-run"]);
    assert_eq!((dry.code, dry.stdout.as_str()), (0, ""), "{}", dry.stderr);
    assert_eq!(
        dry.stderr,
        "seal reencrypt: 0 of 2 files would change (dry run: nothing written)\n"
    );
    assert_eq!(sb.read("repo/apps/db.yaml"), after);
    // An error in a dry run is exit 2, not "would change".
    sb.seal(&[
        "reencrypt",
        "--dry-run",
        "--controller-url",
        &url,
        "missing",
    ])
    .fails(2, "seal: missing: no such file\n");
}

/// A wrong `--controller-url`, or anything between `seal` and the controller, must not get a
/// file rewritten with other names, another scope or template, another value, or a reader the
/// cluster does not publish: each answer is checked against the file before anything is written.
#[test]
fn reencrypt_refuses_an_answer_that_is_not_the_file_rewrapped() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    let attacker = sb.keygen("attacker.txt");
    let db = secret_yaml("db", "prod", &[("pw", "hunter2")]);
    seal_to(&sb, &old, &db, "db.yaml", "yaml");
    let before = sb.read("db.yaml");
    // A fresh value sealed to the new key and the attacker's: what a forger can make.
    sb.seal_stdin(&["-r", &new, "-r", &attacker, "-w", "forged.yaml"], &db)
        .ok();
    let forged = sealed_objects(&sb.read("forged.yaml")).remove(0);
    type Edit = Box<dyn Fn(&mut SealedSecret) + Send + Sync>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s.metadata.namespace = Some("dev".into())),
            "the controller answered for dev/db, not for this SealedSecret",
        ),
        (
            Box::new(|s| s.spec.scope = Scope::ClusterWide),
            "the controller changed spec.scope to cluster-wide",
        ),
        (
            Box::new(|s| {
                s.spec.template.type_ = Some("kubernetes.io/service-account-token".into())
            }),
            "the controller changed spec.template",
        ),
        (
            {
                let forged = forged.clone();
                Box::new(move |s| s.spec = forged.spec.clone())
            },
            "item 'pw' has another payload: it is not this value re-wrapped but another value",
        ),
        (
            {
                let attacker = attacker.clone();
                Box::new(move |s| {
                    for record in s.spec.recipients.values_mut() {
                        record[0] = attacker.clone();
                    }
                })
            },
            "which is not one of the cluster's published recipients",
        ),
    ];
    for (edit, message) in cases {
        let stub = {
            let inner = controller(&sb, &["old.txt", "new.txt"], &new);
            Stub::start(move |req| {
                let mut a = inner(req);
                if a.status == 200 && req.path.ends_with("/v1/reencrypt") {
                    let mut reply: SealedSecret = serde_json::from_str(&a.body).unwrap();
                    edit(&mut reply);
                    a.body = serde_json::to_string(&reply).unwrap();
                }
                a
            })
        };
        let out = sb.seal(&["reencrypt", "--controller-url", &stub.url(), "db.yaml"]);
        assert_eq!(out.code, 1, "{message}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{message}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("seal: db.yaml:1: SealedSecret 'db': ")
        );
        assert_eq!(sb.read("db.yaml"), before, "{message}: file unchanged");
    }
    assert!(!sb.age_opens("db.yaml", "pw", "attacker.txt"));
}

#[test]
fn reencrypt_through_the_service_proxy_and_its_failures() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    let db = secret_yaml("db", "prod", &[("pw", "hunter2")]);
    seal_to(&sb, &old, &db, "db.yaml", "yaml");
    // The first request is rate limited; the second gets the API server's 500 for a busy
    // controller that hung up before reading the body; the next ones are answered.
    let calls = Arc::new(AtomicUsize::new(0));
    let stub = {
        let inner = controller(&sb, &["old.txt", "new.txt"], &new);
        let calls = calls.clone();
        Stub::start(move |req| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => {
                let mut a = answer(429, json!({"error": "rate limited"}).to_string());
                a.headers.push(("Retry-After", "0".into()));
                a
            }
            1 => api_status(
                500,
                "InternalError",
                "error trying to reach service: write tcp 10.0.0.1:4431->10.0.0.2:8080: write: broken pipe",
            ),
            _ => inner(req),
        })
    };
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "stub");
    let out = with_kubeconfig(&sb, &kubeconfig, &["reencrypt", "db.yaml"]).ok();
    assert_eq!(out.stderr, "seal reencrypt: reencrypted 1 file\n");
    assert_eq!(
        stub.paths(),
        vec![
            format!("{PROXY}/v1/reencrypt"),
            format!("{PROXY}/v1/reencrypt"),
            format!("{PROXY}/v1/reencrypt"),
            CONFIGMAP_PATH.to_owned(),
        ],
        "a 429 and the proxy's 'error trying to reach service' are tried again; the answer \
         is checked against the published recipients"
    );
    assert!(sb.read("db.yaml").contains(&new));

    // Not a SealedSecret; a missing file: those files fail, the others are done.
    seal_to(&sb, &old, &db, "again.yaml", "yaml");
    sb.write("plain.yaml", &db);
    let out = with_kubeconfig(
        &sb,
        &kubeconfig,
        &["reencrypt", "plain.yaml", "missing.yaml", "again.yaml"],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "seal: plain.yaml:1: is a Secret, not a SealedSecret\nseal: missing.yaml: no such file\nseal: 2 of 3 files left as they were; reencrypted 1\n"
    );
    assert_eq!(sb.read("plain.yaml"), db);
    assert!(sb.read("again.yaml").contains(&new));

    // An unreachable controller stops at once, one line, nothing rewritten.
    seal_to(&sb, &old, &db, "third.yaml", "yaml");
    sb.fails_leaving(
        "third.yaml",
        &[
            "reencrypt",
            "--controller-url",
            &format!("http://127.0.0.1:{}", closed_port()),
            "third.yaml",
            "db.yaml",
        ],
        1,
        "third.yaml:1: SealedSecret 'db': cannot reach the controller",
    );

    // Files must be named: they are rewritten in place.
    let out = sb.seal(&["reencrypt"]);
    assert_eq!(out.code, 2);
    sb.seal(&["reencrypt", "-", "--controller-url", &stub.url()])
        .fails(2, "<stdin>: reencrypt rewrites files in place");

    // Any other 500 is the answer: reported at once, the file left as it was.
    seal_to(&sb, &old, &db, "timeout.yaml", "yaml");
    let before = sb.read("timeout.yaml");
    let failing =
        Stub::start(|_| api_status(500, "InternalError", "etcdserver: request timed out"));
    let failing_config = write_kubeconfig(&sb, &failing.url(), "stub");
    let out = with_kubeconfig(&sb, &failing_config, &["reencrypt", "timeout.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "seal: timeout.yaml:1: SealedSecret 'db': the controller (service sealant-system/seal-controller via {}/) answered 500 Internal Server Error: etcdserver: request timed out\nseal: 1 of 1 file left as it was; reencrypted 0\n",
            failing.url()
        )
    );
    assert_eq!(failing.seen().len(), 1, "not tried again");
    assert_eq!(sb.read("timeout.yaml"), before);
}

// ---------------------------------------------------------------------------------------------
// What the error catalog lists for cluster access (docs/errors.md)

#[test]
fn kubeconfig_problems_name_the_kubeconfig() {
    let sb = Sandbox::new();
    sb.keygen("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let r = sb.read("k.txt");
    let r = parse_identity_file(&r).unwrap()[0].to_public().to_string();
    sb.seal(&["-r", &r, "s.yaml", "-w", "db.yaml"]).ok();
    let bad = sb.write("bad-kubeconfig", "garbage: [\n");
    let out = with_kubeconfig(&sb, &bad, &["fetch-keys"]).fails(
        1,
        &format!(
            "seal: kubeconfig {}: not a valid kubeconfig: line 1 column 10: unclosed bracket '['",
            bad.display()
        ),
    );
    assert!(
        !out.stderr.contains("-->"),
        "no source excerpt: {}",
        out.stderr
    );
    let no_current = sb.write(
        "no-current",
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    );
    with_kubeconfig(&sb, &no_current, &["validate", "db.yaml"]).fails(
        1,
        &format!(
            "seal: kubeconfig {}: no current-context is set: pass --context NAME",
            no_current.display()
        ),
    );
    let kubeconfig = write_kubeconfig(&sb, "http://127.0.0.1:1", "stub");
    with_kubeconfig(&sb, &kubeconfig, &["fetch-keys", "--context", "ghost"]).fails(
        1,
        &format!(
            "seal: kubeconfig {}: no context 'ghost' (see kubectl config get-contexts)",
            kubeconfig.display()
        ),
    );
    // No kubeconfig: validate and reencrypt say so too, and reencrypt rewrites nothing.
    let before = sb.read("db.yaml");
    let missing = sb.path("no-kubeconfig");
    sb.seal(&["validate", "db.yaml"])
        .fails(1, &format!("seal: no kubeconfig at {}", missing.display()));
    sb.seal(&["reencrypt", "db.yaml"])
        .fails(1, "seal: no kubeconfig at");
    assert_eq!(sb.read("db.yaml"), before);
}

#[test]
fn fetch_keys_reports_unusable_answers() {
    let sb = Sandbox::new();
    let stub = Stub::start(|req| match req.path.as_str() {
        "/api/v1/namespaces/nodata/configmaps/sealant-recipients" => answer(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "sealant-recipients"}, "data": {"other": "x"}})
            .to_string(),
        ),
        "/api/v1/namespaces/html/configmaps/sealant-recipients" => {
            answer(200, "<html>login</html>")
        }
        "/v1/recipients" => answer(
            503,
            "no active key yet: the controller has not loaded or created one\n",
        ),
        other => not_found(other),
    });
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "stub");
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["fetch-keys", "--controller-namespace", "nodata"],
    )
    .fails(
        1,
        "seal: ConfigMap nodata/sealant-recipients has no data.recipients.txt",
    );
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["fetch-keys", "--controller-namespace", "html"],
    )
    .fails(
        1,
        &format!(
            "seal: ConfigMap html/sealant-recipients: {}/ did not answer with a ConfigMap: ",
            stub.url()
        ),
    );
    sb.seal(&["fetch-keys", "--controller-url", &stub.url()])
        .fails(
            1,
            &format!(
                "seal: the controller at {}/ answered 503 Service Unavailable: no active key yet: the controller has not loaded or created one",
                stub.url()
            ),
        );
    let elsewhere = format!("{}/not-the-controller", stub.url());
    sb.seal(&["fetch-keys", "--controller-url", &elsewhere])
        .fails(
            1,
            "answered 404 Not Found: /not-the-controller/v1/recipients not found (is --controller-url the controller's HTTP API?)",
        );
    let closed = format!("http://127.0.0.1:{}", closed_port());
    sb.seal(&["fetch-keys", "--controller-url", &closed]).fails(
        1,
        &format!("seal: cannot reach the controller at {closed}/: Connection refused"),
    );
}

#[test]
fn the_service_proxy_explains_403_and_503() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.seal_db(&r, &[("pw", "x")], "db.yaml");
    let stub = Stub::start(|req| {
        if req.path.starts_with("/api/v1/namespaces/locked/") {
            answer(
                403,
                json!({"kind": "Status", "code": 403,
                       "message": "services \"seal-controller\" is forbidden: User \"dev\" cannot get resource \"services/proxy\""})
                .to_string(),
            )
        } else {
            answer(
                503,
                json!({"kind": "Status", "code": 503,
                       "message": "no endpoints available for service \"seal-controller\""})
                .to_string(),
            )
        }
    });
    let kubeconfig = write_kubeconfig(&sb, &stub.url(), "stub");
    with_kubeconfig(
        &sb,
        &kubeconfig,
        &["validate", "db.yaml", "--controller-namespace", "locked"],
    )
    .fails(
        1,
        "seal: db.yaml:1: SealedSecret 'db': the controller (service locked/seal-controller via",
    )
    .fails(
        1,
        "answered 403 Forbidden: services \"seal-controller\" is forbidden: User \"dev\" cannot get resource \"services/proxy\" (the service proxy needs permission for services/proxy there; or use --controller-url with kubectl port-forward)",
    );
    with_kubeconfig(&sb, &kubeconfig, &["validate", "db.yaml"]).fails(
        1,
        "answered 503 Service Unavailable: no endpoints available for service \"seal-controller\" (is the controller running? see --controller-namespace and --controller-name)",
    );
    let before = sb.read("db.yaml");
    with_kubeconfig(&sb, &kubeconfig, &["reencrypt", "db.yaml"]);
    assert_eq!(sb.read("db.yaml"), before);
}

#[test]
fn reencrypt_reports_rate_limits_no_key_and_write_failures() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    let db = secret_yaml("db", "prod", &[("pw", "hunter2")]);
    seal_to(&sb, &old, &db, "db.yaml", "yaml");
    let before = sb.read("db.yaml");
    // Always rate limited: tried 5 times, then reported for that file.
    let limited = Stub::start(|_| {
        let mut a = answer(
            429,
            json!({"error": "rate limited: retry later"}).to_string(),
        );
        a.headers.push(("Retry-After", "0".into()));
        a
    });
    let out = sb.seal(&["reencrypt", "--controller-url", &limited.url(), "db.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "seal: db.yaml:1: SealedSecret 'db': the controller at {}/ answered 429 Too Many Requests: rate limited: retry later (rate limited: try again in 0s)\nseal: 1 of 1 file left as it was; reencrypted 0\n",
            limited.url()
        )
    );
    assert_eq!(limited.seen().len(), 5, "the first try and 4 retries");
    assert_eq!(sb.read("db.yaml"), before);
    // No active key yet.
    let keyless = Stub::start(|_| {
        answer(
            503,
            json!({"error": "no active key yet: the controller has not loaded or created one"})
                .to_string(),
        )
    });
    let out = sb.seal(&["reencrypt", "--controller-url", &keyless.url(), "db.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "seal: db.yaml:1: SealedSecret 'db': the controller at {}/ answered 503 Service Unavailable: no active key yet: the controller has not loaded or created one\nseal: 1 of 1 file left as it was; reencrypted 0\n",
            keyless.url()
        )
    );
    assert_eq!(sb.read("db.yaml"), before);

    // A directory that cannot be written to: the file is reported and left as it was.
    let stub = Stub::start(controller(&sb, &["old.txt", "new.txt"], &new));
    std::fs::create_dir(sb.path("ro")).unwrap();
    std::fs::write(sb.path("ro/db.yaml"), &before).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sb.path("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    // root writes anyway; then there is nothing to test.
    let privileged = std::fs::write(sb.path("ro/probe"), "").is_ok();
    if !privileged {
        // The cause, then the summary line.
        let out = sb.seal(&["reencrypt", "--controller-url", &stub.url(), "ro/db.yaml"]);
        let cause = out.stderr.lines().next().unwrap_or_default();
        assert!(
            out.code == 1 && cause.starts_with("seal: ro/db.yaml: cannot write: Permission denied"),
            "{}",
            out.stderr
        );
        assert_eq!(sb.read("ro/db.yaml"), before);
        sb.seal(&["merge", "ro/db.yaml", "--from-literal", "a=b", "-r", &new])
            .fails(1, "seal: ro/db.yaml: cannot write: Permission denied");
    }
    std::fs::set_permissions(sb.path("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// kubectl's client conventions: --kubeconfig, --context, the context's namespace, proxy-url

/// A kubeconfig with one context per (name, server, namespace, proxy-url); the first is
/// current.
fn kubeconfig_of(
    sb: &Sandbox,
    file: &str,
    contexts: &[(&str, &str, Option<&str>, Option<&str>)],
) -> PathBuf {
    let contexts: Vec<Context<'_>> = contexts.iter().map(|&c| c.into()).collect();
    sb.write(file, &kubeconfig(contexts[0].name, &contexts))
}

/// `--kubeconfig FILE` (or SEAL_KUBECONFIG) is read instead of $KUBECONFIG, as kubectl's flag
/// is; a missing one is named (exit 1).
#[test]
fn the_kubeconfig_flag_wins_over_the_environment() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let stub = Stub::start(controller(&sb, &["k.txt"], &r));
    let env_config = kubeconfig_of(
        &sb,
        "env-kubeconfig",
        &[(
            "elsewhere",
            &format!("http://127.0.0.1:{}", closed_port()),
            None,
            None,
        )],
    );
    let flag_config = kubeconfig_of(&sb, "flag-kubeconfig", &[("stub", &stub.url(), None, None)]);
    with_kubeconfig(&sb, &env_config, &["fetch-keys"]).fails(1, "cannot reach http://127.0.0.1:");
    let flag = flag_config.to_str().unwrap();
    let out = with_kubeconfig(&sb, &env_config, &["fetch-keys", "--kubeconfig", flag]).ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    let out = sb
        .seal_with(
            &["fetch-keys"],
            None,
            &[
                ("KUBECONFIG", env_config.to_str().unwrap()),
                ("SEAL_KUBECONFIG", flag),
            ],
        )
        .ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    assert_eq!(stub.paths(), [CONFIGMAP_PATH, CONFIGMAP_PATH]);

    // A missing --kubeconfig is not replaced by $KUBECONFIG or a Pod's service account.
    let missing = sb.path("missing-kubeconfig");
    let out = with_kubeconfig(
        &sb,
        &env_config,
        &["fetch-keys", "--kubeconfig", missing.to_str().unwrap()],
    );
    assert_eq!(
        out.fails(1, "").stderr,
        format!("seal: no kubeconfig at {}\n", missing.display())
    );
}

/// `--context NAME` picks the context (and so the server) of the --kubeconfig file; a context
/// the file lacks is one line naming it and the file, exit 1, and nothing is sent.
#[test]
fn the_context_flag_selects_the_server() {
    let sb = Sandbox::new();
    let (r_a, r_b) = (sb.keygen("a.txt"), sb.keygen("b.txt"));
    let (a, b) = (
        Stub::start(controller(&sb, &["a.txt"], &r_a)),
        Stub::start(controller(&sb, &["b.txt"], &r_b)),
    );
    let config = kubeconfig_of(
        &sb,
        "kubeconfig",
        &[("a", &a.url(), None, None), ("b", &b.url(), None, None)],
    );
    let config = config.to_str().unwrap();
    let out = sb.seal(&["fetch-keys", "--kubeconfig", config]).ok();
    assert_eq!(out.stdout, format!("{r_a}\n"), "the current context");
    let out = sb
        .seal(&["fetch-keys", "--kubeconfig", config, "--context", "b"])
        .ok();
    assert_eq!(out.stdout, format!("{r_b}\n"));
    assert_eq!((a.paths().len(), b.paths().len()), (1, 1));

    let out = sb.seal(&["fetch-keys", "--kubeconfig", config, "--context", "ghost"]);
    assert_eq!(
        out.fails(1, "").stderr,
        format!(
            "seal: kubeconfig {config}: no context 'ghost' (see kubectl config get-contexts)\n"
        )
    );
    // Sealing with the cluster's recipients says the same, and writes nothing.
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.seal(&["s.yaml", "--kubeconfig", config, "--context", "ghost"])
        .fails(1, &format!("kubeconfig {config}: no context 'ghost'"));
    assert_eq!((a.paths().len(), b.paths().len()), (1, 1));
}

/// A Secret that names no namespace, sealed without -n, gets the kubeconfig context's
/// namespace (else `default`), as `kubectl apply` would place it; the Secret's own namespace
/// and -n still win; a cluster-wide value stays free of one; without a kubeconfig nothing is
/// guessed (strict scope then needs -n, as before). Recipients come from -r: no request.
#[test]
fn the_contexts_namespace_is_the_default_for_n() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let config = kubeconfig_of(
        &sb,
        "kubeconfig",
        &[
            ("team", &nowhere, Some("team-a"), None),
            ("bare", &nowhere, None, None),
        ],
    );
    let config = config.to_str().unwrap();
    sb.write(
        "plain.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  pw: x\n",
    );
    sb.write("own.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let namespace_of = |args: &[&str]| -> Option<String> {
        let mut all = vec!["-r", &r, "--kubeconfig", config];
        all.extend(args);
        let out = sb.seal(&all).ok();
        sealed_objects(&out.stdout)[0].metadata.namespace.clone()
    };
    assert_eq!(namespace_of(&["plain.yaml"]).as_deref(), Some("team-a"));
    assert_eq!(
        namespace_of(&["plain.yaml", "--context", "bare"]).as_deref(),
        Some("default")
    );
    assert_eq!(
        namespace_of(&["plain.yaml", "-n", "ops"]).as_deref(),
        Some("ops")
    );
    assert_eq!(namespace_of(&["own.yaml"]).as_deref(), Some("prod"));
    assert_eq!(
        namespace_of(&["plain.yaml", "--scope", "cluster-wide"]),
        None
    );
    // The value is bound to that namespace: it opens there and nowhere else.
    let out = sb.seal(&[
        "-r",
        &r,
        "--kubeconfig",
        config,
        "plain.yaml",
        "-w",
        "db.yaml",
    ]);
    out.ok();
    let opened = sb.seal(&["unseal", "-i", "k.txt", "db.yaml"]).ok().stdout;
    assert!(opened.contains("namespace: team-a"), "{opened}");

    // seal create and seal raw too.
    let out = sb
        .seal(&[
            "create",
            "db",
            "--from-literal",
            "pw=x",
            "-r",
            &r,
            "--kubeconfig",
            config,
        ])
        .ok();
    assert_eq!(
        sealed_objects(&out.stdout)[0].metadata.namespace.as_deref(),
        Some("team-a")
    );
    let raw = sb
        .seal_with(
            &["raw", "--name", "db", "-r", &r, "--kubeconfig", config],
            Some(b"x"),
            &[],
        )
        .ok()
        .stdout;
    sb.write(
        "raw.yaml",
        &format!(
            "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: team-a\nspec:\n  encryptedData:\n    pw: {}\n  recipients:\n    pw: [{r}]\n",
            raw.trim()
        ),
    );
    sb.seal(&["unseal", "-i", "k.txt", "raw.yaml"]).ok();

    // No kubeconfig: nothing guessed.
    sb.seal(&["-r", &r, "plain.yaml"]).fails(1, "namespace");
}

/// A cluster's `proxy-url` in the kubeconfig is used: the request reaches the API server
/// through an HTTP CONNECT tunnel of that proxy, as kubectl's would.
#[test]
fn a_proxy_url_in_the_kubeconfig_is_used() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let stub = Stub::start(controller(&sb, &["k.txt"], &r));
    let proxy = ConnectProxy::start();
    let config = kubeconfig_of(
        &sb,
        "kubeconfig",
        &[("proxied", &stub.url(), None, Some(&proxy.url()))],
    );
    let out = with_kubeconfig(&sb, &config, &["fetch-keys"]).ok();
    assert_eq!(out.stdout, format!("{r}\n"));
    let target = stub.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        proxy.requests(),
        [format!("CONNECT {target} HTTP/1.1")],
        "one tunnel, to the API server"
    );
    assert_eq!(stub.paths(), [CONFIGMAP_PATH]);
}
