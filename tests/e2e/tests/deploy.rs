//! deploy/ on a real Kubernetes 1.20 API server (tests/cluster/control-plane.sh): what the
//! rotation CronJob's ServiceAccount may do, and what the opt-in NetworkPolicy component
//! admits. Each test asserts what must NOT be allowed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use sealant_e2e::{ControlPlane, from_overlay, ok, root, run, text};

const NS: &str = "sealant-system";
const ROTATE_SA: &str = "sealant-rotate-key";

/// `seal-controller rotate`, as the CronJob runs it, with `kubeconfig`'s identity.
fn rotate(kubeconfig: &Path) -> Output {
    let mut cmd = Command::new(sealant_e2e::bin("seal-controller"));
    cmd.args(["rotate", "--namespace", NS])
        .env("KUBECONFIG", kubeconfig);
    run(cmd, None)
}

/// `kubectl` with another kubeconfig than the admin's.
fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.args(args).env("KUBECONFIG", kubeconfig);
    run(cmd, None)
}

/// One access check: (namespace, verb, group, resource, subresource, name); "" for none.
type Check<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

/// What `kubectl auth can-i` asks, for many checks in one kubectl run: a
/// SelfSubjectAccessReview per check, sent with `kubeconfig`'s own token, so the API server
/// answers for that identity with every group it really has (system:authenticated, …).
fn can_i(kubeconfig: &Path, checks: &[Check<'_>]) -> Vec<bool> {
    let items: Vec<Value> = checks
        .iter()
        .map(|(namespace, verb, group, resource, subresource, name)| {
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {
                    "namespace": namespace, "verb": verb, "group": group,
                    "resource": resource, "subresource": subresource, "name": name,
                }},
            })
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut cmd = Command::new("kubectl");
    cmd.args(["create", "-f", "-", "-o", "json"])
        .env("KUBECONFIG", kubeconfig);
    // One JSON object per review, in the order sent.
    let out = ok(run(cmd, Some(&list.to_string())));
    let reviews: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(reviews.len(), checks.len(), "{out}");
    checks
        .iter()
        .zip(&reviews)
        .map(|(check, review)| {
            // Each answer is for the question it is paired with (empty fields are omitted).
            let asked = &review["spec"]["resourceAttributes"];
            let field = |name: &str| asked[name].as_str().unwrap_or("").to_owned();
            let (namespace, verb, group, resource, subresource, name) = *check;
            assert_eq!(
                [namespace, verb, group, resource, subresource, name].map(str::to_owned),
                [
                    "namespace",
                    "verb",
                    "group",
                    "resource",
                    "subresource",
                    "name"
                ]
                .map(field),
                "{review}"
            );
            review["status"]["allowed"].as_bool().unwrap()
        })
        .collect()
}

/// Panics listing every check whose answer is not `expected`.
#[track_caller]
fn assert_can_i(who: &str, kubeconfig: &Path, checks: &[Check<'_>], expected: bool) {
    let wrong: Vec<String> = checks
        .iter()
        .zip(can_i(kubeconfig, checks))
        .filter(|(_, allowed)| *allowed != expected)
        .map(|((ns, verb, group, resource, sub, name), _)| {
            format!("{verb} {group}/{resource}/{sub} {name:?} in {ns:?}")
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{who} {} allowed:\n  {}",
        if expected {
            "should be but is not"
        } else {
            "must not be but is"
        },
        wrong.join("\n  ")
    );
}

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Namespaced (group, resource, subresource) a Sealant identity might be tempted to use.
const NAMESPACED: [(&str, &str, &str); 19] = [
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("sealant.dev", "sealedsecrets", ""),
    ("sealant.dev", "sealedsecrets", "status"),
    ("coordination.k8s.io", "leases", ""),
    ("", "pods", ""),
    ("", "pods", "exec"),
    ("", "serviceaccounts", ""),
    ("", "serviceaccounts", "token"),
    ("", "services", ""),
    ("", "events", ""),
    ("events.k8s.io", "events", ""),
    ("apps", "deployments", ""),
    ("batch", "jobs", ""),
    ("batch", "cronjobs", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
    ("networking.k8s.io", "networkpolicies", ""),
    ("policy", "poddisruptionbudgets", ""),
];

/// The rotation CronJob runs as its own ServiceAccount, whose only rights are Role
/// sealant-rotate-key in sealant-system. The real `seal-controller rotate` succeeds with
/// that ServiceAccount's token (twice: the second run retires the first key and patches
/// the ConfigMap, so every call rotate makes is exercised). Must NOT: anything on Secrets,
/// ConfigMaps or SealedSecrets in other namespaces or cluster-wide; Pods, the Lease, RBAC,
/// tokens, workloads anywhere; get/update/delete of Secrets even in sealant-system; any
/// ConfigMap other than sealant-recipients beyond create.
#[test]
fn the_rotation_service_account_can_rotate_and_nothing_more() {
    let cp = ControlPlane::start();
    cp.install();
    cp.kubectl_ok(&["create", "namespace", "prod"]);
    cp.create_generic_secret("prod", "db", "password=not-for-rotation");

    // The manifests: the CronJob uses the account; nothing outside sealant-system binds it.
    let cronjob = cp.get_json(&["cronjob", ROTATE_SA, "-n", NS]).unwrap();
    assert_eq!(
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"],
        ROTATE_SA
    );
    let names_rotate_sa = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == ROTATE_SA)
        })
    };
    let cluster_bindings = cp.get_json(&["clusterrolebindings"]).unwrap();
    let cluster_wide: Vec<&Value> = cluster_bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| names_rotate_sa(b))
        .map(|b| &b["metadata"]["name"])
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "ClusterRoleBindings name the rotation account: {cluster_wide:?}"
    );
    let bindings = cp.get_json(&["rolebindings", "-A"]).unwrap();
    let bound: Vec<(String, String, String)> = bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| names_rotate_sa(b))
        .map(|b| {
            (
                b["metadata"]["namespace"].as_str().unwrap().to_owned(),
                b["roleRef"]["kind"].as_str().unwrap().to_owned(),
                b["roleRef"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(bound, [(NS.into(), "Role".into(), ROTATE_SA.into())]);

    // The real rotate, as the account: a first key, then a second that retires it.
    let sa = cp.kubeconfig_for_service_account(NS, ROTATE_SA);
    let mut made = Vec::new();
    for _ in 0..2 {
        let out = rotate(&sa);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "rotate failed: {stderr}");
        assert!(!stderr.to_lowercase().contains("forbidden"), "{stderr}");
        made.push(text(&out).trim().to_owned());
    }
    assert!(made.iter().all(|r| r.starts_with("age1")), "{made:?}");
    assert_ne!(made[0], made[1]);
    let keys = cp
        .get_json(&["secrets", "-n", NS, "-l", "sealant.dev/key=true"])
        .unwrap();
    let mut states: Vec<(String, String)> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let file = sealant_e2e::decode_base64(k["data"]["key.txt"].as_str().unwrap());
            let file = String::from_utf8(file).unwrap();
            let recipient = file
                .lines()
                .find_map(|l| l.strip_prefix("# public key: "))
                .unwrap()
                .to_owned();
            let state = k["metadata"]["labels"]["sealant.dev/key-state"]
                .as_str()
                .unwrap()
                .to_owned();
            (recipient, state)
        })
        .collect();
    states.sort_by_key(|(r, _)| made.iter().position(|m| m == r));
    assert_eq!(
        states,
        [
            (made[0].clone(), "retired".to_owned()),
            (made[1].clone(), "active".to_owned())
        ]
    );
    let published = cp
        .get_json(&["configmap", "sealant-recipients", "-n", NS])
        .unwrap();
    let published = published["data"]["recipients.txt"].as_str().unwrap();
    assert!(published.contains(&made[1]), "{published}");
    assert!(!published.contains(&made[0]), "{published}");

    // Exactly what rotate calls, answered by the API server for this token.
    let recipients = "sealant-recipients";
    let granted: Vec<Check<'_>> = vec![
        (NS, "list", "", "secrets", "", ""),
        (NS, "create", "", "secrets", "", ""),
        (NS, "patch", "", "secrets", "", ""),
        (NS, "get", "", "configmaps", "", recipients),
        (NS, "patch", "", "configmaps", "", recipients),
        (NS, "create", "", "configmaps", "", ""),
    ];
    assert_can_i("the rotation account", &sa, &granted, true);

    // Everything else. In sealant-system: every verb on every resource above, except the
    // granted ones (checked without a name, so a resourceNames grant does not count).
    let mut denied: Vec<Check<'_>> = Vec::new();
    for (group, resource, sub) in NAMESPACED {
        for verb in VERBS {
            let is_granted = granted.iter().any(|g| {
                g.1 == verb && g.2 == group && g.3 == resource && sub.is_empty() && g.5.is_empty()
            });
            if !is_granted {
                denied.push((NS, verb, group, resource, sub, ""));
            }
        }
    }
    // Named, in sealant-system: no other ConfigMap, no more on sealant-recipients, and no
    // get/update/delete of a key Secret or the controller's token Secret.
    let key_name = keys["items"][0]["metadata"]["name"].as_str().unwrap();
    for verb in ["get", "update", "patch", "delete"] {
        denied.push((NS, verb, "", "configmaps", "", "kube-root-ca.crt"));
    }
    for verb in ["update", "delete"] {
        denied.push((NS, verb, "", "configmaps", "", recipients));
    }
    for verb in ["get", "update", "delete"] {
        denied.push((NS, verb, "", "secrets", "", key_name));
    }
    denied.push((
        NS,
        "get",
        "coordination.k8s.io",
        "leases",
        "",
        "sealant-controller",
    ));
    for verb in ["patch", "update"] {
        denied.push((
            NS,
            verb,
            "coordination.k8s.io",
            "leases",
            "",
            "sealant-controller",
        ));
    }
    denied.push((
        NS,
        "create",
        "",
        "serviceaccounts",
        "token",
        "seal-controller",
    ));
    // Every other namespace: nothing at all on these resources.
    for ns in ["prod", "default", "kube-system"] {
        for (group, resource, sub) in NAMESPACED {
            for verb in VERBS {
                denied.push((ns, verb, group, resource, sub, ""));
            }
        }
        denied.push((ns, "get", "", "secrets", "", "db"));
    }
    // Cluster-wide: all namespaces at once, and cluster-scoped resources.
    for (group, resource, sub) in [
        ("", "secrets", ""),
        ("", "configmaps", ""),
        ("sealant.dev", "sealedsecrets", ""),
        ("sealant.dev", "sealedsecrets", "status"),
        ("", "pods", ""),
        ("", "namespaces", ""),
        ("", "nodes", ""),
        ("rbac.authorization.k8s.io", "clusterroles", ""),
        ("rbac.authorization.k8s.io", "clusterrolebindings", ""),
        ("apiextensions.k8s.io", "customresourcedefinitions", ""),
        ("certificates.k8s.io", "certificatesigningrequests", ""),
    ] {
        for verb in VERBS {
            denied.push(("", verb, group, resource, sub, ""));
        }
    }
    for (verb, group, resource) in [
        ("impersonate", "", "users"),
        ("impersonate", "", "groups"),
        ("impersonate", "", "serviceaccounts"),
        ("bind", "rbac.authorization.k8s.io", "clusterroles"),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        ("bind", "rbac.authorization.k8s.io", "roles"),
        ("escalate", "rbac.authorization.k8s.io", "roles"),
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
    ] {
        denied.push(("", verb, group, resource, "", ""));
        denied.push((NS, verb, group, resource, "", ""));
    }
    assert_can_i("the rotation account", &sa, &denied, false);

    // The checks name real resources: the controller's account is allowed some of them (a
    // misspelt resource or group would be denied to everyone and prove nothing).
    let controller = cp.service_account_kubeconfig();
    assert_can_i(
        "the controller's account",
        &controller,
        &[
            ("", "list", "sealant.dev", "sealedsecrets", "", ""),
            (
                "prod",
                "patch",
                "sealant.dev",
                "sealedsecrets",
                "status",
                "",
            ),
            ("prod", "get", "", "secrets", "", "db"),
            ("prod", "create", "events.k8s.io", "events", "", ""),
            (
                NS,
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "sealant-controller",
            ),
        ],
        true,
    );

    // And real requests with the rotation token are refused by the API server.
    let forbidden = |args: &[&str]| {
        let out = kubectl_as(&sa, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && stderr.to_lowercase().contains("forbidden"),
            "kubectl {args:?} as the rotation account: {}{stderr}",
            text(&out)
        );
        assert!(!text(&out).contains("not-for-rotation"));
    };
    forbidden(&["get", "secret", "db", "-n", "prod", "-o", "yaml"]);
    forbidden(&["get", "secrets", "-A"]);
    forbidden(&["get", "sealedsecrets", "-A"]);
    forbidden(&["delete", "secret", key_name, "-n", NS]);
    forbidden(&[
        "-n",
        NS,
        "run",
        "escape",
        "--image=busybox",
        "--restart=Never",
    ]);
    forbidden(&[
        "-n",
        "prod",
        "create",
        "secret",
        "generic",
        "planted",
        "--from-literal=a=b",
    ]);
    // Nothing it was refused happened.
    assert!(
        cp.get_json(&["secret", key_name, "-n", NS]).is_some(),
        "key deleted"
    );
    assert!(cp.get_json(&["pod", "escape", "-n", NS]).is_none());
    assert!(cp.get_json(&["secret", "planted", "-n", "prod"]).is_none());
}

/// The peer admitting the API server in the rendered policy: ipBlocks only, each one
/// address, no `except`, nothing like 0.0.0.0/0.
fn ip_blocks(rule: &Value) -> Vec<String> {
    rule["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|peer| {
            let keys: Vec<&String> = peer.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["ipBlock"], "API server peer: {peer}");
            let block = peer["ipBlock"].as_object().unwrap();
            assert_eq!(block.len(), 1, "an except or more: {peer}");
            let cidr = block["cidr"].as_str().unwrap().to_owned();
            assert!(cidr.ends_with("/32"), "more than one address: {cidr}");
            cidr
        })
        .collect()
}

/// Checks the NetworkPolicy as the API server stored it against the Deployment, Service and
/// CronJob it was applied with; `api_server` are the addresses it must admit.
fn assert_policy(cp: &ControlPlane, api_server: &[&str]) {
    let all = cp.get_json(&["networkpolicies", "-A"]).unwrap();
    let all = all["items"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let policy = &all[0];
    assert_eq!(policy["metadata"]["namespace"], NS);
    assert_eq!(policy["metadata"]["name"], "seal-controller");
    let spec = &policy["spec"];

    // Selects exactly the controller Pods: the Service's selector, which the Deployment's
    // Pod template carries and the rotation Job's does not.
    let selector = &spec["podSelector"];
    assert!(selector.get("matchExpressions").is_none(), "{selector}");
    let labels = selector["matchLabels"].as_object().unwrap();
    assert!(!labels.is_empty(), "an empty podSelector selects every Pod");
    let deployment = cp
        .get_json(&["deployment", "seal-controller", "-n", NS])
        .unwrap();
    let template = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    assert!(
        labels.iter().all(|(k, v)| template.get(k) == Some(v)),
        "{labels:?} does not select the Deployment's Pods {template:?}"
    );
    let service = cp
        .get_json(&["service", "seal-controller", "-n", NS])
        .unwrap();
    assert_eq!(
        &service["spec"]["selector"], &selector["matchLabels"],
        "the policy selects other Pods than the Service routes to"
    );
    let cronjob = cp.get_json(&["cronjob", ROTATE_SA, "-n", NS]).unwrap();
    let job_pods = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    assert!(
        !labels.iter().all(|(k, v)| job_pods.get(k) == Some(v)),
        "it selects the rotation Job's Pods too"
    );

    // Ingress only; two rules, each TCP 8080 only and with a non-empty `from`.
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    assert!(spec.get("egress").is_none(), "{spec}");
    let rules = spec["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{spec}");
    for rule in rules {
        assert_eq!(
            rule["ports"],
            json!([{"port": 8080, "protocol": "TCP"}]),
            "a rule without ports admits every port: {rule}"
        );
        let from = rule["from"].as_array();
        assert!(
            from.is_some_and(|f| !f.is_empty()),
            "a rule without `from` admits every source: {rule}"
        );
    }

    // 1. The API server, by address.
    assert_eq!(ip_blocks(&rules[0]), api_server);
    // 2. Prometheus: both selectors in one peer (a Pod must match both), neither empty.
    assert_eq!(
        rules[1]["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }])
    );
}

/// API versions served by some Kubernetes release and removed since (the Kubernetes
/// deprecation guide): (apiVersion, kind or "*" for all its kinds, the release that removed it).
const REMOVED_APIS: &[(&str, &str, &str)] = &[
    ("extensions/v1beta1", "*", "1.16 (Ingress: 1.22)"),
    ("apps/v1beta1", "*", "1.16"),
    ("apps/v1beta2", "*", "1.16"),
    ("rbac.authorization.k8s.io/v1beta1", "*", "1.22"),
    ("apiextensions.k8s.io/v1beta1", "*", "1.22"),
    ("admissionregistration.k8s.io/v1beta1", "*", "1.22"),
    ("apiregistration.k8s.io/v1beta1", "*", "1.22"),
    ("authentication.k8s.io/v1beta1", "*", "1.22"),
    ("authorization.k8s.io/v1beta1", "*", "1.22"),
    ("certificates.k8s.io/v1beta1", "*", "1.22"),
    ("coordination.k8s.io/v1beta1", "*", "1.22"),
    ("networking.k8s.io/v1beta1", "*", "1.22"),
    ("scheduling.k8s.io/v1beta1", "*", "1.22"),
    ("storage.k8s.io/v1beta1", "CSIDriver", "1.22"),
    ("storage.k8s.io/v1beta1", "CSINode", "1.22"),
    ("storage.k8s.io/v1beta1", "StorageClass", "1.22"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment", "1.22"),
    ("storage.k8s.io/v1beta1", "CSIStorageCapacity", "1.27"),
    ("batch/v1beta1", "*", "1.25"),
    ("policy/v1beta1", "*", "1.25"),
    ("discovery.k8s.io/v1beta1", "*", "1.25"),
    ("events.k8s.io/v1beta1", "*", "1.25"),
    ("node.k8s.io/v1beta1", "*", "1.25"),
    ("autoscaling/v2beta1", "*", "1.25"),
    ("autoscaling/v2beta2", "*", "1.26"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "*", "1.26"),
    ("flowcontrol.apiserver.k8s.io/v1beta2", "*", "1.29"),
    ("resource.k8s.io/v1alpha2", "*", "1.31"),
];

/// The release that removed `api_version`'s `kind`, if one did.
fn removed_in(api_version: &str, kind: &str) -> Option<&'static str> {
    REMOVED_APIS
        .iter()
        .find(|(v, k, _)| *v == api_version && (*k == "*" || *k == kind))
        .map(|(_, _, release)| *release)
}

/// Every object's (apiVersion, kind) in a rendered YAML stream.
fn api_kinds(rendered: &str) -> Vec<(String, String)> {
    rendered
        .split("\n---\n")
        .filter_map(|doc| {
            let field = |name: &str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            Some((field("apiVersion: ")?, field("kind: ")?))
        })
        .collect()
}

/// `kubectl apply -k deploy/` works unchanged on current Kubernetes: deploy/, and deploy/ with
/// each of its components, uses no API a release has removed (Argo CD and Flux cannot run a
/// `sed`). No cluster is needed: the rendered objects are checked against the table above.
#[test]
fn deploy_uses_no_removed_api() {
    // The table is read as intended: what deploy/ used before 1.25 would be refused.
    assert_eq!(removed_in("batch/v1beta1", "CronJob"), Some("1.25"));
    assert_eq!(
        removed_in("storage.k8s.io/v1beta1", "CSINode"),
        Some("1.22")
    );
    assert_eq!(removed_in("storage.k8s.io/v1", "CSINode"), None);

    let render = |dir: &Path| {
        let mut cmd = Command::new("kubectl");
        cmd.args(["kustomize", dir.to_str().unwrap()]);
        ok(run(cmd, None))
    };
    let mut rendered = vec![("deploy/".to_owned(), render(&root().join("deploy")))];
    let mut components = Vec::new();
    for dir in ["components", "monitoring"] {
        for entry in std::fs::read_dir(root().join("deploy").join(dir)).unwrap() {
            let entry = entry.unwrap().file_name().to_string_lossy().into_owned();
            components.push(format!("{dir}/{entry}"));
        }
    }
    assert!(components.len() >= 4, "{components:?}");
    for name in components {
        let overlay = tempfile::tempdir().unwrap();
        std::fs::write(
            overlay.path().join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
                from_overlay(overlay.path(), "deploy"),
                from_overlay(overlay.path(), &format!("deploy/{name}")),
            ),
        )
        .unwrap();
        rendered.push((format!("deploy/ + {name}"), render(overlay.path())));
    }
    let mut removed = Vec::new();
    for (what, yaml) in &rendered {
        let objects = api_kinds(yaml);
        assert!(objects.len() >= 10, "{what}: {objects:?}");
        for (api_version, kind) in objects {
            if let Some(release) = removed_in(&api_version, &kind) {
                removed.push(format!(
                    "{what}: {api_version} {kind} (removed in {release})"
                ));
            }
        }
    }
    assert!(removed.is_empty(), "{removed:#?}");
}

/// `kubectl kustomize DIR`, with a hint when kubectl's kustomize predates Components.
fn kustomize(cp: &ControlPlane, dir: &Path) -> String {
    let out = cp.kubectl(&["kustomize", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed (a Component needs kustomize 3.7+, i.e. kubectl 1.21+, and \
         deploy/ uses `labels:`, which Debian's kubectl 1.20 does not know either): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
}

/// There is no network plugin here to enforce a NetworkPolicy, so this checks what the
/// component says: rendered through an overlay as deploy/README.md shows (as shipped, then
/// with README's patch for the API server's addresses), applied to the real 1.20 API server
/// (which validates it), and read back. Must NOT: select other Pods than the controller's
/// (none of the rotation Job's), admit any port but 8080, have a rule without `from` or an
/// empty selector (which admit everyone), admit any peer but the API server's addresses and
/// Prometheus's Pods, or restrict egress.
#[test]
fn the_network_policy_component_admits_only_the_api_server_and_prometheus_on_8080() {
    let cp = ControlPlane::start();
    let overlay = tempfile::tempdir().unwrap();
    let deploy = from_overlay(overlay.path(), "deploy");
    // deploy/ through the 1.20 overlay (tests/k8s-1.20/): this API server predates batch/v1
    // CronJob and policy/v1 PodDisruptionBudget.
    let base = from_overlay(overlay.path(), "tests/k8s-1.20");
    let (deploy, base) = (deploy.as_str(), base.as_str());

    // As shipped: the placeholder address.
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {base}\ncomponents:\n  - {deploy}/components/network-policy\n"
        ),
    )
    .unwrap();
    let rendered = kustomize(&cp, overlay.path());
    cp.apply(&rendered);
    assert_policy(&cp, &["192.0.2.1/32"]);
    // The rest of deploy/ is there, unchanged by the component.
    let plain = ok(cp.kubectl(&["kustomize", root().join("tests/k8s-1.20").to_str().unwrap()]));
    assert_eq!(
        rendered.matches("\nkind: ").count(),
        plain.matches("\nkind: ").count() + 1
    );

    // deploy/README.md's overlay, which sets two API server addresses.
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    let example = readme
        .split("```yaml\n# my-overlay/kustomization.yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("deploy/README.md has the my-overlay example");
    assert!(example.contains("../sealant/deploy"), "{example}");
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        example
            .replace("  - ../sealant/deploy\n", &format!("  - {base}\n"))
            .replace("../sealant/deploy", deploy),
    )
    .unwrap();
    cp.apply(&kustomize(&cp, overlay.path()));
    assert_policy(&cp, &["10.0.0.11/32", "10.0.0.12/32"]);
}
