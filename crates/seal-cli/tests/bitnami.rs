//! Bitnami Sealed Secrets through the real `seal` binary: `seal migrate` on objects made by an
//! independent producer (PyPI kubesealpy, kubeseal's format in Python `cryptography`; see
//! tests/bitnami/kubesealpy_tool.py), and `seal` reading Bitnami's scope annotations.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sealant_stub::kubesealpy::{keygen as bitnami_key, seal as bitnami_sealed};
use support::{Sandbox, secret_yaml};

const BINARY: &[u8] = b"\x00\xffbin\nary\x80";

/// `seal migrate --bitnami-keys keys -r recipient rest…` exits 1 and says `needle` on stderr.
#[track_caller]
fn migrate_refused(
    sb: &Sandbox,
    keys: &str,
    recipient: &str,
    rest: &[&str],
    needle: &str,
) -> support::Run {
    let mut args = vec!["migrate", "--bitnami-keys", keys, "-r", recipient];
    args.extend_from_slice(rest);
    let out = sb.seal(&args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{:?} lacks {needle:?}",
        out.stderr
    );
    out
}

/// What the stock `age -d` prints for item `item` of the SealedSecret in `file`, header line
/// dropped: the plaintext anyone holding `identity` can read.
fn age_open(sb: &Sandbox, file: &str, item: &str, identity: &str) -> Vec<u8> {
    let out = sb.age_decrypt(file, item, identity);
    assert!(out.status.success(), "age -d failed");
    let newline = out.stdout.iter().position(|b| *b == b'\n').unwrap();
    out.stdout[newline + 1..].to_vec()
}

#[test]
fn a_repo_of_mixed_scopes_and_keys_migrates_in_place_and_opens_with_age() {
    let sb = Sandbox::new();
    bitnami_key(&sb, "sealed-secrets-key1", false);
    bitnami_key(&sb, "sealed-secrets-key2", true);
    let strict = bitnami_sealed(
        &sb,
        "sealed-secrets-key1",
        "strict",
        "prod",
        "db",
        &[("password", b"s3cr3t"), ("blob", BINARY)],
        &[
            "--type",
            "kubernetes.io/basic-auth",
            "--immutable",
            "--label",
            "app=db",
            "--annotation",
            "team=payments",
        ],
    );
    let ns_wide = bitnami_sealed(
        &sb,
        "sealed-secrets-key2",
        "namespace-wide",
        "prod",
        "api",
        &[("token", b"t0k3n")],
        &["--json"],
    );
    let cluster_wide = bitnami_sealed(
        &sb,
        "sealed-secrets-key1",
        "cluster-wide",
        "dev",
        "ca",
        &[("ca.crt", b"-----BEGIN CERTIFICATE-----")],
        &[],
    );
    sb.write("repo/prod/db.yaml", &strict);
    sb.write("repo/prod/api.json", &ns_wide);
    // Two objects in one stream.
    let dev = format!("{cluster_wide}---\n{}", {
        bitnami_sealed(
            &sb,
            "sealed-secrets-key2",
            "strict",
            "dev",
            "cache",
            &[("url", b"redis://x")],
            &[],
        )
    });
    sb.write("repo/dev/secrets.yaml", &dev);
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
    sb.write("repo/app.yaml", deployment);
    let recipient = sb.keygen("sealant.key");

    let out = sb
        .seal(&[
            "migrate",
            "--bitnami-keys",
            "sealed-secrets-key1.secret.yaml",
            "--bitnami-keys",
            "sealed-secrets-key2.key",
            "-r",
            &recipient,
            "-w",
            "repo",
        ])
        .ok();
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains(
            "repo/prod/db.yaml:1: Bitnami SealedSecret 'prod/db': opened with sealed-secrets-key1"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Bitnami SealedSecret 'prod/api': opened with sealed-secrets-key2.key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("migrated 4 SealedSecrets from 3 files, in place"),
        "{}",
        out.stderr
    );
    assert_eq!(
        sb.read("repo/app.yaml"),
        deployment,
        "other files untouched"
    );

    // The values open with the stock age CLI and the Sealant key, byte for byte.
    assert_eq!(
        age_open(&sb, "repo/prod/db.yaml", "password", "sealant.key"),
        b"s3cr3t"
    );
    assert_eq!(
        age_open(&sb, "repo/prod/db.yaml", "blob", "sealant.key"),
        BINARY
    );
    assert_eq!(
        age_open(&sb, "repo/prod/api.json", "token", "sealant.key"),
        b"t0k3n"
    );
    assert_eq!(
        age_open(&sb, "repo/dev/secrets.yaml", "url", "sealant.key"),
        b"redis://x"
    );

    // Place, scope and template kept; JSON stays JSON.
    let db = sb.read("repo/prod/db.yaml");
    assert!(db.contains("apiVersion: sealant.dev/v1alpha1"), "{db}");
    assert!(!db.contains("bitnami.com"), "{db}");
    let api: serde_json::Value =
        serde_json::from_str(&sb.read("repo/prod/api.json")).expect("api.json is still JSON");
    assert_eq!(api["spec"]["scope"], "namespace-wide", "{api}");
    assert!(
        api["metadata"]["annotations"].is_null(),
        "the Bitnami scope annotation is not carried: {api}"
    );
    let unsealed = sb
        .seal(&[
            "unseal",
            "-i",
            "sealant.key",
            "-o",
            "json",
            "repo/prod/db.yaml",
        ])
        .ok();
    let secret: serde_json::Value = serde_json::from_str(&unsealed.stdout).unwrap();
    let secret = if secret.is_array() {
        secret[0].clone()
    } else {
        secret
    };
    assert_eq!(secret["metadata"]["namespace"], "prod");
    assert_eq!(secret["metadata"]["name"], "db");
    assert_eq!(secret["metadata"]["labels"]["app"], "db");
    assert_eq!(secret["metadata"]["annotations"]["team"], "payments");
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(secret["immutable"], true);
    assert_eq!(secret["data"]["blob"], BASE64.encode(BINARY));
    let dev = sb.read("repo/dev/secrets.yaml");
    assert!(dev.contains("scope: cluster-wide"), "{dev}");
    assert!(dev.contains("name: cache"), "{dev}");
}

#[test]
fn to_stdout_from_stdin_and_a_v1_list() {
    let sb = Sandbox::new();
    bitnami_key(&sb, "k", false);
    let a = bitnami_sealed(&sb, "k", "strict", "prod", "a", &[("x", b"1")], &["--json"]);
    let b = bitnami_sealed(
        &sb,
        "k",
        "cluster-wide",
        "prod",
        "b",
        &[("y", b"2")],
        &["--json"],
    );
    let list = format!("{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{a}, {b}]}}");
    let recipient = sb.keygen("id.key");
    let out = sb
        .seal_with(
            &["migrate", "--bitnami-keys", "k.key", "-r", &recipient],
            Some(list.as_bytes()),
            &[],
        )
        .ok();
    assert_eq!(out.stdout.matches("kind: SealedSecret").count(), 2);
    assert!(out.stderr.contains("<stdin>:"), "{}", out.stderr);
    sb.write("out.yaml", &out.stdout);
    let opened = sb.seal(&["unseal", "-i", "id.key", "out.yaml"]).ok();
    assert!(
        opened.stdout.contains(&BASE64.encode("1")),
        "{}",
        opened.stdout
    );
    assert!(
        opened.stdout.contains(&BASE64.encode("2")),
        "{}",
        opened.stdout
    );
}

/// Runs `seal migrate -w` on `file` holding `text`; asserts it fails with `needle` and leaves
/// the file as it was.
fn refused(sb: &Sandbox, text: &str, needle: &str) {
    sb.write("in.yaml", text);
    if !sb.path("id.key").exists() {
        sb.keygen("id.key");
    }
    let recipient = sb
        .seal(&["recipient", "id.key"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let out = migrate_refused(sb, "k.secret.yaml", &recipient, &["-w", "in.yaml"], needle);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(sb.read("in.yaml"), text, "the file is unchanged");
}

#[test]
fn tampered_or_relocated_values_are_refused_and_nothing_is_written() {
    let sb = Sandbox::new();
    bitnami_key(&sb, "k", false);
    let good = bitnami_sealed(&sb, "k", "strict", "prod", "db", &[("pw", b"secret")], &[]);

    // A flipped byte in the AES-GCM part.
    let value = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("pw: "))
        .unwrap()
        .to_owned();
    let mut blob = BASE64.decode(&value).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    refused(
        &sb,
        &good.replace(&value, &BASE64.encode(&blob)),
        "in.yaml:1: Bitnami SealedSecret 'prod/db': item 'pw' its RSA part opens with Bitnami key 'k' but its AES-GCM part fails authentication: the value is damaged or tampered with",
    );
    // A flipped byte in the RSA part.
    blob[last] ^= 0x01;
    blob[10] ^= 0x01;
    refused(
        &sb,
        &good.replace(&value, &BASE64.encode(&blob)),
        "item 'pw' opens with none of the 1 Bitnami key(s) for prod/db (strict scope)",
    );
    // Sealed (strict) for another name, then renamed.
    let other = bitnami_sealed(&sb, "k", "strict", "prod", "other", &[("pw", b"x")], &[]);
    refused(
        &sb,
        &other.replace("name: other", "name: db"),
        "in.yaml:1: Bitnami SealedSecret 'prod/db': item 'pw' opens with none of the 1 Bitnami key(s) for prod/db (strict scope): it was sealed with another key, for another place or scope, or it is damaged",
    );
    // Moved to another namespace.
    refused(
        &sb,
        &good.replace("namespace: prod", "namespace: dev"),
        "item 'pw' opens with none of the 1 Bitnami key(s) for dev/db (strict scope)",
    );
    // Namespace-wide in Git, strict when sealed: the label differs.
    let widened = good.replace(
        "  namespace: prod\nspec",
        "  namespace: prod\n  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: 'true'\nspec",
    );
    assert_ne!(widened, good);
    refused(&sb, &widened, "for namespace prod (namespace-wide scope)");
}

#[test]
fn template_data_is_refused_by_name_and_no_file_is_written() {
    let sb = Sandbox::new();
    bitnami_key(&sb, "k", false);
    let good = bitnami_sealed(&sb, "k", "strict", "prod", "ok", &[("a", b"1")], &[]);
    let templated = bitnami_sealed(&sb, "k", "strict", "prod", "tpl", &[("pw", b"x")], &[])
        .replace(
            "  template:\n",
            "  template:\n    data:\n      url: 'postgres://u:{{ .pw }}@db'\n",
        );
    assert!(templated.contains("{{ .pw }}"));
    sb.write("repo/ok.yaml", &good);
    sb.write("repo/tpl.yaml", &templated);
    let recipient = sb.keygen("id.key");
    let out = migrate_refused(
        &sb,
        "k.secret.yaml",
        &recipient,
        &["-w", "repo"],
        "seal: repo/tpl.yaml:1: Bitnami SealedSecret 'prod/tpl': uses spec.template.data (Go templates over the opened items: url), which Sealant cannot carry yet",
    );
    assert!(
        out.stderr
            .ends_with("seal: 1 problem above; nothing was written\n"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.read("repo/ok.yaml"), good, "not even the good file");
    assert_eq!(sb.read("repo/tpl.yaml"), templated);
}

#[test]
fn bad_key_backups_are_named() {
    let (sb, recipient) = Sandbox::with_key("id.key");
    sb.write(
        "keys.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: nope\ndata:\n  tls.crt: AA==\n",
    );
    sb.seal(&[
        "migrate",
        "--bitnami-keys",
        "keys.yaml",
        "-r",
        &recipient,
        "x.yaml",
    ])
    .fails(
        1,
        "seal: keys.yaml:1: Secret 'nope' has no data.tls.key: is it a Sealed Secrets key Secret?",
    );
    sb.write("empty.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
    sb.seal(&[
        "migrate",
        "--bitnami-keys",
        "empty.yaml",
        "-r",
        &recipient,
        "x.yaml",
    ])
    .fails(
        1,
        "seal: empty.yaml: holds no Sealed Secrets key: expected the YAML of",
    );
}

#[test]
fn seal_reads_bitnami_scope_annotations_on_input_secrets() {
    let (sb, recipient) = Sandbox::with_key("id.key");
    let annotated = secret_yaml("db", "prod", &[("pw", "x")]).replace(
        "  namespace: prod\n",
        "  namespace: prod\n  annotations:\n    sealedsecrets.bitnami.com/cluster-wide: \"true\"\n",
    );
    let out = sb.seal_stdin(&["-r", &recipient], &annotated).ok();
    assert!(out.stdout.contains("scope: cluster-wide"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("sealedsecrets.bitnami.com"),
        "the annotation is consumed, not copied: {}",
        out.stdout
    );
    // The same scope given explicitly is fine; a different one is refused.
    sb.seal_stdin(&["-r", &recipient, "--scope", "cluster-wide"], &annotated)
        .ok();
    sb.seal_stdin(&["-r", &recipient, "--scope", "strict"], &annotated)
        .fails(
            1,
            "<stdin>:1: Secret 'db': --scope strict, but its annotation sealedsecrets.bitnami.com/cluster-wide says cluster-wide: drop one",
        );
}

#[test]
fn files_that_cannot_be_migrated_whole_are_refused() {
    let sb = Sandbox::new();
    bitnami_key(&sb, "k", false);
    let recipient = sb.keygen("id.key");
    let sealed = bitnami_sealed(&sb, "k", "strict", "prod", "db", &[("a", b"1")], &[]);
    let mixed = format!("{sealed}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n");
    sb.write("mixed.yaml", &mixed);
    let line = sealed.lines().count() + 2;
    migrate_refused(
        &sb,
        "k.key",
        &recipient,
        &["-w", "mixed.yaml"],
        &format!(
            "seal: mixed.yaml:{line}: is a ConfigMap in a file of Bitnami SealedSecrets: move it to its own file, then migrate"
        ),
    );
    assert_eq!(sb.read("mixed.yaml"), mixed);

    sb.write("plain.yaml", &secret_yaml("db", "prod", &[("a", "1")]));
    migrate_refused(
        &sb,
        "k.key",
        &recipient,
        &["plain.yaml"],
        "seal: plain.yaml: holds no Bitnami SealedSecret (apiVersion bitnami.com/v1alpha1)",
    );

    sb.seal_stdin(&["migrate", "--bitnami-keys", "k.key", "-w"], &sealed)
        .fails(
            2,
            "seal: <stdin>: -w rewrites files in place: name the files or folders",
        );
}
