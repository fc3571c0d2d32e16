//! `seal`, `seal create`, `seal raw` and `seal merge` through the real binary.

mod support;

use support::{Sandbox, assert_same_lines, changed_lines, secret_yaml};

const KUBECTL_OUTPUT: &str = "\
apiVersion: v1
data:
  password: aHVudGVyMg==
  username: YWRtaW4=
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{\"big\":\"blob\"}'
    team: payments
  creationTimestamp: null
  labels:
    app: db
  name: db
  namespace: prod
  resourceVersion: \"123\"
  uid: 5f0c1f7e-0000-0000-0000-000000000000
stringData:
  extra: from-string-data
immutable: true
type: kubernetes.io/basic-auth
";

#[test]
fn seals_kubectl_output_from_stdin_and_unseal_restores_it() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let out = sb.seal_stdin(&["-r", &r], KUBECTL_OUTPUT).ok();
    let sealed = out.stdout;
    assert!(
        sealed.starts_with("apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\n"),
        "{sealed}"
    );
    assert!(
        !sealed.contains("hunter2") && !sealed.contains("aHVudGVyMg"),
        "no plaintext"
    );
    for dropped in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "last-applied-configuration",
    ] {
        assert!(
            !sealed.contains(dropped),
            "{dropped} must be dropped:\n{sealed}"
        );
    }
    for kept in [
        "team: payments",
        "app: db",
        "type: kubernetes.io/basic-auth",
        "immutable: true",
        "scope: strict",
    ] {
        assert!(sealed.contains(kept), "{kept} must be kept:\n{sealed}");
    }
    sb.write("db.sealed.yaml", &sealed);
    let secret = sb
        .seal(&["unseal", "-i", "k.txt", "db.sealed.yaml"])
        .ok()
        .stdout;
    assert!(secret.contains("password: aHVudGVyMg=="), "{secret}");
    assert!(secret.contains("username: YWRtaW4="), "{secret}");
    assert!(
        secret.contains("extra: ZnJvbS1zdHJpbmctZGF0YQ=="),
        "{secret}"
    );
    assert!(
        secret.contains("type: kubernetes.io/basic-auth"),
        "{secret}"
    );
    assert!(secret.contains("namespace: prod"), "{secret}");
}

#[test]
fn seals_several_files_json_and_lists() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("a", "ns", &[("k", "1")]),
            secret_yaml("b", "ns", &[("k", "2")])
        ),
    );
    sb.write(
        "c.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c","namespace":"ns"},"data":{"k":"Mw=="}}"#,
    );
    sb.write(
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: d, namespace: ns}\n  stringData: {k: '4'}\n",
    );
    let out = sb
        .seal(&["-r", &r, "a.yaml", "c.json", "list.yaml"])
        .ok()
        .stdout;
    assert_eq!(out.matches("kind: SealedSecret").count(), 4);
    assert_eq!(out.matches("\n---\n").count(), 3);
    sb.write("all.yaml", &out);
    let list = sb.unseal_json("k.txt", "all.yaml");
    let values: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["data"]["k"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["MQ==", "Mg==", "Mw==", "NA=="]);

    let json = sb.seal(&["-r", &r, "c.json", "-o", "json"]).ok().stdout;
    let one: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(one["kind"], "SealedSecret");
    assert_eq!(one["spec"]["recipients"]["k"][0], r.as_str());
}

#[test]
fn write_flag_writes_atomically_and_namespace_flag_fills_in() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  pw: x\n";
    sb.write("s.yaml", secret);
    let out = sb.seal(&[
        "-r",
        &r,
        "-n",
        "team-a",
        "s.yaml",
        "-w",
        "out/../s.sealed.yaml",
    ]);
    // The directory out/ does not exist: nothing is written, and the error names the file.
    out.fails(1, "s.sealed.yaml");
    let out = sb
        .seal(&["-r", &r, "-n", "team-a", "s.yaml", "-w", "s.sealed.yaml"])
        .ok();
    assert_eq!(out.stdout, "");
    assert!(sb.read("s.sealed.yaml").contains("namespace: team-a"));
    let perms = std::fs::metadata(sb.path("s.sealed.yaml"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(perms.mode() & 0o777, 0o644);

    // The target exists and the second document is bad: the target keeps its bytes, and no
    // temporary file is left beside it.
    let before = sb.read("s.sealed.yaml");
    sb.write(
        "two.yaml",
        &format!(
            "{secret}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\ndata: {{pw: '!!'}}\n"
        ),
    );
    sb.seal(&["-r", &r, "-n", "team-a", "two.yaml", "-w", "s.sealed.yaml"])
        .fails(1, "two.yaml:");
    assert_eq!(sb.read("s.sealed.yaml"), before);
    let mut left: Vec<String> = std::fs::read_dir(sb.path("."))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["k.txt", "s.sealed.yaml", "s.yaml", "two.yaml"]);
}

#[test]
fn scopes_bind_as_documented() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    for (scope, other_name_opens, other_ns_opens) in [
        ("strict", false, false),
        ("namespace-wide", true, false),
        ("cluster-wide", true, true),
    ] {
        let sealed = sb.seal(&["-r", &r, "--scope", scope, "s.yaml"]).ok().stdout;
        assert!(sealed.contains(&format!("scope: {scope}")));
        sb.write("renamed.yaml", &sealed.replace("name: db", "name: other"));
        sb.write(
            "moved.yaml",
            &sealed.replace("namespace: prod", "namespace: dev"),
        );
        let renamed = sb.seal(&["unseal", "-i", "k.txt", "renamed.yaml"]);
        assert_eq!(
            renamed.code == 0,
            other_name_opens,
            "{scope}: {}",
            renamed.stderr
        );
        let moved = sb.seal(&["unseal", "-i", "k.txt", "moved.yaml"]);
        assert_eq!(moved.code == 0, other_ns_opens, "{scope}: {}", moved.stderr);
        if !other_ns_opens {
            moved.fails(1, "cannot be moved");
        }
        // Changing the declared scope after sealing is refused.
        let widened = sealed.replace(&format!("scope: {scope}"), "scope: cluster-wide");
        if scope != "cluster-wide" {
            sb.write("widened.yaml", &widened);
            sb.seal(&["unseal", "-i", "k.txt", "widened.yaml"])
                .fails(1, "scope cannot be changed");
        }
    }
}

#[test]
fn item_keys_may_be_renamed_freely() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("password", "x")]));
    let sealed = sb.seal(&["-r", &r, "s.yaml"]).ok().stdout;
    sb.write("renamed.yaml", &sealed.replace("password:", "pw:"));
    let out = sb
        .seal(&["unseal", "-i", "k.txt", "renamed.yaml"])
        .ok()
        .stdout;
    assert!(out.contains("pw: eA=="), "{out}");
    // …but only to keys a Secret can have.
    sb.write("bad.yaml", &sealed.replace("password:", "'pass word':"));
    let out = sb.seal(&["unseal", "-i", "k.txt", "bad.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "partial output: {}", out.stdout);
    assert!(
        out.stderr
            .contains("bad.yaml:1: SealedSecret 'db': item key 'pass word' is not valid"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_recipient_alone_opens_and_env_vars_work() {
    let (sb, a) = Sandbox::with_key("a.txt");
    let b = sb.keygen("b.txt");
    let c = sb.keygen("c.txt");
    sb.write(
        "keys.txt",
        &format!("# cluster b\n{b}\n\n# break-glass\n{c}\n"),
    );
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let sealed = sb
        .seal_with(
            &["s.yaml"],
            None,
            &[
                ("SEAL_RECIPIENTS", &a),
                ("SEAL_RECIPIENTS_FILE", "keys.txt"),
            ],
        )
        .ok()
        .stdout;
    sb.write("sealed.yaml", &sealed);
    for key in ["a.txt", "b.txt", "c.txt"] {
        sb.seal(&["unseal", "-i", key, "sealed.yaml"]).ok();
    }
    let namespaced = sb
        .seal_with(
            &["s.yaml"],
            None,
            &[("SEAL_RECIPIENTS", &a), ("SEAL_SCOPE", "namespace-wide")],
        )
        .ok();
    assert!(namespaced.stdout.contains("scope: namespace-wide"));
}

#[test]
fn create_seals_literals_and_files_without_a_plaintext_manifest() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("cert.pem", "-----BEGIN CERTIFICATE-----\nabc\n");
    std::fs::write(sb.path("blob.bin"), [0u8, 159, 146, 150, 255]).unwrap();
    let args = [
        "create",
        "tls",
        "-n",
        "web",
        "--type",
        "kubernetes.io/tls",
        "--from-literal",
        "user=admin=root",
        "--from-file",
        "tls.crt=cert.pem",
        "--from-file",
        "blob.bin",
        "-r",
        &r,
        "-w",
        "tls.sealed.yaml",
    ];
    sb.seal(&args).ok();
    let sealed = sb.read("tls.sealed.yaml");
    assert!(sealed.contains("type: kubernetes.io/tls"));
    let secret = sb.unseal_json("k.txt", "tls.sealed.yaml");
    assert_eq!(secret["data"]["user"], "YWRtaW49cm9vdA==");
    assert_eq!(
        secret["data"]["tls.crt"],
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmFiYwo="
    );
    assert_eq!(secret["data"]["blob.bin"], "AJ+Slv8=");
    assert_eq!(secret["metadata"]["namespace"], "web");

    sb.create_x_in_web(&["--from-literal", "novalue"], &r)
        .fails(2, "KEY=VALUE");
    sb.create_x_in_web(&["--from-literal", "a=1", "--from-literal", "a=2"], &r)
        .fails(2, "given twice");
    sb.create_x_in_web(&["--from-file", "missing.txt"], &r)
        .fails(1, "missing.txt: no such file");
    sb.create_x_in_web(&[], &r).fails(1, "--allow-empty");
    sb.seal(&["create", "x", "-n", "web", "-r", &r, "--allow-empty"])
        .ok();
}

#[test]
fn raw_seals_one_value_from_stdin() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let value = sb
        .seal_stdin(&["raw", "--name", "api", "-n", "prod", "-r", &r], "t0ken")
        .ok()
        .stdout;
    assert_eq!(value.trim().lines().count(), 1);
    assert!(
        value.starts_with("YWdlLWVuY3J5cHRpb24ub3JnL3Yx"),
        "an age file: {value}"
    );
    // Pasted into a SealedSecret with its recipients, it opens.
    let doc = format!(
        "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: api, namespace: prod}}\nspec:\n  encryptedData:\n    token: {}\n  recipients:\n    token: [{r}]\n",
        value.trim()
    );
    sb.write("api.yaml", &doc);
    assert!(
        sb.seal(&["unseal", "-i", "k.txt", "api.yaml"])
            .ok()
            .stdout
            .contains("token: dDBrZW4=")
    );
    sb.seal_stdin(&["raw", "-n", "prod", "-r", &r], "x")
        .fails(2, "--name is needed");
    sb.seal_stdin(&["raw", "--scope", "cluster-wide", "-r", &r], "")
        .fails(1, "empty");
    sb.seal_stdin(&["raw", "--scope", "cluster-wide", "-r", &r], "x")
        .ok();
}

#[test]
fn merge_changes_only_what_changed() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let before = sb.seal_db(&r, &[("a", "1"), ("b", "2"), ("c", "3")], "db.yaml");

    // A Secret on stdin replaces b and adds d; a and c keep their exact lines.
    sb.seal_stdin(
        &["merge", "db.yaml", "-r", &r],
        &secret_yaml("db", "prod", &[("b", "22"), ("d", "4")]),
    )
    .ok();
    let after = sb.read("db.yaml");
    let line = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}: YWdl")))
            .unwrap()
            .to_owned()
    };
    assert_eq!(line(&before, "a"), line(&after, "a"));
    assert_eq!(line(&before, "c"), line(&after, "c"));
    assert_ne!(line(&before, "b"), line(&after, "b"));
    // As a diff: one line removed (b's), three added (b's new value, d's value, d's recipients key).
    let removed: Vec<_> = before
        .lines()
        .filter(|l| !after.lines().any(|a| a == *l))
        .collect();
    let added: Vec<_> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(removed, [line(&before, "b")]);
    assert_eq!(added.len(), 3, "{added:?}");

    sb.seal(&[
        "merge",
        "db.yaml",
        "--from-literal",
        "e=5",
        "--remove",
        "a",
        "-r",
        &r,
    ])
    .ok();
    let secret = sb.unseal_json("k.txt", "db.yaml");
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "c", "d", "e"]);
    assert_eq!(secret["data"]["b"], "MjI=");

    sb.seal(&["merge", "db.yaml", "--remove", "zzz"])
        .fails(1, "no item 'zzz'");
    sb.seal(&["merge", "db.yaml", "--remove", "b", "--from-literal", "b=1"])
        .fails(2, "both removed and added");
    sb.seal_stdin(&["merge", "db.yaml"], "kind: ConfigMap\n")
        .fails(1, "not a Secret");
    sb.seal(&["merge", "s.yaml", "--from-literal", "x=1"])
        .fails(1, "not a SealedSecret");
    assert_eq!(sb.read("db.yaml").matches("kind: SealedSecret").count(), 1);
}

/// The value of item `key` in a SealedSecret written as YAML (`key: YWdl…`, quoted or not).
fn sealed_value(text: &str, key: &str) -> String {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .map(|v| {
            v.split_whitespace()
                .next()
                .unwrap()
                .trim_matches(['\'', '"'])
        })
        .find(|v| v.starts_with("YWdl"))
        .unwrap_or_else(|| panic!("no value for {key} in {text}"))
        .to_owned()
}

#[test]
fn merge_keeps_comments_order_and_quoting() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let sealed = sb.seal_db(&r, &[("a", "1"), ("b", "2"), ("c", "3")], "sealed.yaml");
    let a = sealed_value(&sealed, "a");
    // A stream as people keep it: a ConfigMap first, comments everywhere, a value re-quoted.
    let before = format!(
        "# Config and credentials of the db.\napiVersion: v1\nkind: ConfigMap   # plain settings\nmetadata: {{name: db-config}}\ndata:\n  mode: \"strict\"\n---\n# Sealed for prod: see the runbook.\n{}",
        sealed
            .replace("  name: db\n", "  name: db  # owned by the db team\n")
            .replace(
                &format!("a: {a}\n"),
                &format!("a: '{a}'  # the first item\n")
            )
            .replace(
                "  recipients:\n",
                "  # who reads each item\n  recipients:\n"
            )
    );
    sb.write("db.yaml", &before);
    sb.seal(&[
        "merge",
        "db.yaml",
        "--from-literal",
        "b=22",
        "--from-literal",
        "d=4",
        "--remove",
        "c",
        "-r",
        &r,
    ])
    .ok();
    let after = sb.read("db.yaml");
    // Only the lines of b (new value), c (removed) and d (added) differ; b and d are read by
    // the same recipient as before, so their records are the lines already there.
    let (removed, added) = changed_lines(&before, &after);
    let entry = |text: &str, key: &str| format!("    {key}: {}", sealed_value(text, key));
    assert_same_lines(
        removed,
        vec![entry(&before, "b"), entry(&before, "c"), "    c:".into()],
        &after,
    );
    assert_same_lines(
        added,
        vec![entry(&after, "b"), entry(&after, "d"), "    d:".into()],
        &after,
    );
    assert!(after.contains(&format!("a: '{a}'  # the first item\n")));
    sb.write("only.yaml", after.split_once("---\n").unwrap().1);
    let secret = sb.unseal_json("k.txt", "only.yaml");
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b", "d"]);
    assert_eq!(secret["data"]["b"], "MjI=");
}

#[test]
fn merge_keeps_the_layout_of_json() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write(
        "s.yaml",
        &secret_yaml("db", "prod", &[("a", "1"), ("c", "3")]),
    );
    sb.seal(&["-r", &r, "s.yaml", "-o", "json", "-w", "db.json"])
        .ok();
    let before = sb.read("db.json");
    sb.seal(&["merge", "db.json", "--from-literal", "b=2", "-r", &r])
        .ok();
    let after = sb.read("db.json");
    let v: serde_json::Value = serde_json::from_str(&after).unwrap();
    let b = v["spec"]["encryptedData"]["b"].as_str().unwrap();
    // b goes between a and c, as its siblings are written: no other line changes.
    let (removed, added) = changed_lines(&before, &after);
    assert_eq!(removed, Vec::<String>::new(), "{after}");
    assert_same_lines(
        added,
        vec![
            format!("      \"b\": \"{b}\","),
            "      \"b\": [".into(),
            format!("        \"{r}\""),
            "      ],".into(),
        ],
        &after,
    );
}

#[test]
fn merge_refuses_a_file_it_cannot_edit_in_place() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.seal_db(&r, &[("a", "1")], "sealed.yaml");
    let sealed = sb.read("sealed.yaml");
    let a = sealed_value(&sealed, "a");
    // A literal block scalar: valid YAML, but not a value seal rewrites by splicing.
    let block = sealed.replace(&format!("a: {a}\n"), &format!("a: |-\n      {a}\n"));
    sb.write("db.yaml", &block);
    let line = block.lines().position(|l| l.ends_with("a: |-")).unwrap() + 1;
    sb.seal(&["merge", "db.yaml", "--from-literal", "a=2", "-r", &r])
        .fails(
            1,
            &format!(
                "seal: db.yaml:{line}: SealedSecret 'db': the value of 'a': cannot be changed in place (write the items as a mapping of plain or quoted values, without anchors or block scalars)\n"
            ),
        );
    assert_eq!(sb.read("db.yaml"), block);
}

#[test]
fn merge_uses_explicit_recipients_for_new_items() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    sb.seal_db(&old, &[("a", "1")], "db.yaml");
    sb.seal(&["merge", "db.yaml", "--from-literal", "b=2", "-r", &new])
        .ok();
    let text = sb.read("db.yaml");
    assert!(text.contains(&old) && text.contains(&new));
    // Who really reads each item, asked of the stock age CLI.
    assert!(sb.age_opens("db.yaml", "a", "old.txt") && !sb.age_opens("db.yaml", "a", "new.txt"));
    assert!(sb.age_opens("db.yaml", "b", "new.txt") && !sb.age_opens("db.yaml", "b", "old.txt"));
    // Nothing names recipients (no -r, no config, no cluster): the file's records are not
    // used, the merge is refused and the file is left as it was.
    sb.fails_leaving(
        "db.yaml",
        &["merge", "db.yaml", "--from-literal", "c=3"],
        1,
        "no recipients: pass -r age1…",
    );
}

#[test]
fn json_files_stay_json_on_merge() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("a", "1")]));
    sb.seal(&["-r", &r, "s.yaml", "-o", "json", "-w", "db.json"])
        .ok();
    sb.seal(&["merge", "db.json", "--from-literal", "b=2", "-r", &r])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&sb.read("db.json")).unwrap();
    assert!(v["spec"]["encryptedData"]["b"].is_string());
}

#[test]
fn merge_refuses_what_it_cannot_merge() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.seal_db(&r, &[("pw", "x")], "db.yaml");
    let sealed = sb.read("db.yaml");
    sb.write("two.yaml", &format!("{sealed}---\n{sealed}"));
    sb.seal(&["merge", "two.yaml", "--from-literal", "a=b"])
        .fails(
            1,
            "seal: two.yaml: holds 2 SealedSecrets; merge works on a file with one",
        );
    sb.seal(&["merge", "s.yaml", "--from-literal", "a=b"])
        .fails(1, "seal: s.yaml:1: is a Secret, not a SealedSecret");
    sb.seal(&["merge", "missing.yaml", "--from-literal", "a=b"])
        .fails(1, "seal: missing.yaml: no such file");
    sb.seal(&["merge", "db.yaml", "--from-file", "missing.txt"])
        .fails(1, "seal: missing.txt: no such file");
    sb.seal(&["merge", "db.yaml", "--from-literal", "a b=c"])
        .fails(
            1,
            "seal: db.yaml:1: SealedSecret 'db': item key 'a b' is not valid: use letters, digits, '-', '_' and '.', not '.' alone or a leading '..'",
        );
    // The file to change cannot be stdin: it is rewritten in place.
    sb.seal_stdin(&["merge", "-", "--from-literal", "a=b"], &sealed)
        .fails(
            2,
            "seal: <stdin>: merge rewrites the SealedSecret file in place: name it",
        );
    assert!(!sb.path("-").exists());
    // What comes on stdin must be one Secret.
    sb.seal_stdin(&["merge", "db.yaml"], "kind: ConfigMap\n")
        .fails(1, "seal: <stdin>:1: is a ConfigMap, not a Secret");
    let two = format!(
        "{}---\n{}",
        secret_yaml("a", "prod", &[("k", "v")]),
        secret_yaml("b", "prod", &[("k", "v")])
    );
    sb.seal_stdin(&["merge", "db.yaml"], &two).fails(
        1,
        "seal: <stdin>: expected one Secret to merge (or pass --from-literal/--from-file/--remove)",
    );
    sb.seal_stdin(
        &["merge", "db.yaml"],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {a: '!!'}\n",
    )
    .fails(
        1,
        "seal: <stdin>:1: Secret: data.a is not valid base64 (put plain text under stringData instead)",
    );
    assert_eq!(sb.read("db.yaml"), sealed, "unchanged after every failure");
}
