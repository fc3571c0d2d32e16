//! Writes the seed corpora under fuzz/seeds/<target>/ (run once; the output is committed, since
//! sealing is randomized). `cargo run --example gen_seeds` in fuzz/.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sealant_core::convert::{SealOptions, seal_secret};
use sealant_core::keys::Recipient;
use sealant_core::manifest::{Manifest, read_manifests};
use sealant_core::output::{to_json, to_yaml};
use sealant_core::payload::frame;
use sealant_core::scope::{Binding, Scope, Target};
use sealant_core::value::seal_value;
use sealant_core::{SealedSecret, SealedSecretSpec};
use sealant_fuzz::{active_recipient, compromised_recipient, parse, retired_recipient};

/// docs/format.md's test vector: `hunter2`, strict prod/db, to the active fixture key.
const DOCS_VECTOR: &str = "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBNeHh2R25LQjk0YUFkeHhPTGh4dGJ5Q0FjVHpiR0FYb08yVkNkMWNWbkVjCk1uMGxxQjh4c21KYzRUNWhCZkg0am04Yjl4NDNvN1I0Tk5EY0F6dHhRTjgKLT4gYi1ncmVhc2UKK3N1OE5oZ3oKLS0tIGtDWnZqZGhaTEljZ3RmT0U1cEhaQllGemw1TnNITnNCMXJiOWpqYkY1dG8KmVD4kaG04wn2DXszFiyp37LIMuuDsiZWz7CHxEmHROaKezcjjSspYWYm+nYT4Iz+IlvGgr2pvkSzc68K0vAcJS4=";

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn sealed_secret(yaml: &str, scope: Scope, recipients: &[Recipient]) -> SealedSecret {
    let Manifest::Secret(secret) = read_manifests(yaml).unwrap().remove(0).value else {
        panic!("fixture is not a Secret")
    };
    let opts = SealOptions {
        scope,
        recipients,
        namespace: None,
        allow_empty: false,
    };
    seal_secret(&secret, &opts).unwrap()
}

fn secret(name: &str, plaintext: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: prod\n  labels:\n    app: {name}\ntype: Opaque\nstringData:\n  password: {plaintext}\n"
    )
}

fn main() {
    let active = parse(&active_recipient());
    let retired = parse(&retired_recipient());
    let compromised = parse(&compromised_recipient());
    let prod_db = Target::new("prod", "db");

    // open_value: flags byte, then the value (see the target's doc).
    let vector = BASE64.decode(DOCS_VECTOR).unwrap();
    write(
        "open_value",
        "docs-vector-raw",
        [&[0x01][..], &vector].concat(),
    );
    write(
        "open_value",
        "docs-vector-text",
        [&[0x00][..], DOCS_VECTOR.as_bytes()].concat(),
    );
    let ns_wide = seal_value(
        b"fuzz-plaintext-Qx7vZ2kP",
        &Binding::new(Scope::NamespaceWide, &prod_db).unwrap(),
        &[active.clone(), retired.clone()],
    )
    .unwrap();
    // Namespace-wide (scope 1), recorded [active, retired] (3).
    write(
        "open_value",
        "ns-wide-two-recipients",
        [
            &[0x01 | (1 << 1) | (3 << 4)][..],
            &BASE64.decode(&ns_wide.ciphertext).unwrap(),
        ]
        .concat(),
    );
    let cluster = seal_value(
        b"",
        &Binding::new(Scope::ClusterWide, &prod_db).unwrap(),
        &[compromised.clone(), active.clone()],
    )
    .unwrap();
    // Cluster-wide (scope 2), opened as staging/db, recorded [unheld, active] (2).
    write(
        "open_value",
        "cluster-wide-empty-staging",
        [
            &[0x01 | (2 << 1) | 8 | (2 << 4)][..],
            &BASE64.decode(&cluster.ciphertext).unwrap(),
        ]
        .concat(),
    );
    let framed = frame(&Binding::new(Scope::Strict, &prod_db).unwrap(), b"hunter2");
    write(
        "open_value",
        "payload-strict",
        [&[0x80][..], &framed].concat(),
    );
    let framed = frame(&Binding::ClusterWide, b"x\ny");
    write(
        "open_value",
        "payload-cluster",
        [&[0x80][..], &framed].concat(),
    );

    // mutate_sealed: 4-byte operations (see the target's doc).
    write("mutate_sealed", "unchanged", b"");
    write("mutate_sealed", "flip-first-byte", [0, 0, 0, 1]);
    write("mutate_sealed", "swap-records", [5, 0, 0, 1]);
    write(
        "mutate_sealed",
        "swap-records-back",
        [5, 0, 0, 1, 5, 1, 0, 0],
    );
    write(
        "mutate_sealed",
        "truncate-and-recorded-reverse",
        [1, 200, 0, 0, 9, 0, 0, 0],
    );
    write("mutate_sealed", "splice-record", [8, 0, 0, 1]);
    write("mutate_sealed", "text-newline-end", [13, 255, 255, 1]);
    write("mutate_sealed", "moved", [12, 1, 0, 0]);

    // read_manifest and http_body share objects.
    let db = sealed_secret(
        &secret("db", "fuzz-plaintext-Qx7vZ2kP"),
        Scope::Strict,
        std::slice::from_ref(&active),
    );
    let old = sealed_secret(
        &secret("old", "fuzz-retired-Wm3nB8sT"),
        Scope::NamespaceWide,
        std::slice::from_ref(&retired),
    );
    let bad = sealed_secret(
        &secret("bad", "fuzz-compromised-Lr4cY9dH"),
        Scope::Strict,
        std::slice::from_ref(&compromised),
    );
    let shared = sealed_secret(
        &secret("shared", "fuzz-plaintext-Qx7vZ2kP"),
        Scope::ClusterWide,
        &[active.clone(), compromised.clone()],
    );
    let mut vector_ss = SealedSecret::new(
        "db",
        SealedSecretSpec {
            scope: Scope::Strict,
            ..Default::default()
        },
    );
    vector_ss.metadata.namespace = Some("prod".into());
    vector_ss
        .spec
        .encrypted_data
        .insert("password".into(), DOCS_VECTOR.into());
    vector_ss
        .spec
        .recipients
        .insert("password".into(), vec![active_recipient()]);
    let mut moved = db.clone();
    moved.metadata.namespace = Some("staging".into());

    let y = |s: &SealedSecret| to_yaml(s).unwrap();
    let j = |s: &SealedSecret| to_json(std::slice::from_ref(s)).unwrap();

    write("read_manifest", "secret.yaml", secret("db", "hunter2"));
    write(
        "read_manifest",
        "secret.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","namespace":"prod"},"data":{"a":"aHVudGVyMg=="},"stringData":{"b":"yes"}}"#,
    );
    write("read_manifest", "sealed.yaml", y(&db));
    write("read_manifest", "sealed.json", j(&shared));
    write(
        "read_manifest",
        "list.json",
        to_json(&[db.clone(), old.clone()]).unwrap(),
    );
    write(
        "read_manifest",
        "stream.yaml",
        format!(
            "# a stream\n---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n...\n--- {}",
            y(&old),
            "{kind: Secret, metadata: {name: s}, stringData: {k: v}}\n"
        ),
    );
    write(
        "read_manifest",
        "anchors.yaml",
        "kind: Secret\nmetadata:\n  name: a\n  labels: &l {app: db}\n  annotations: *l\nstringData: {k: 'v'}\n",
    );

    write("http_body", "active.yaml", y(&db));
    write("http_body", "active.json", j(&db));
    write("http_body", "docs-vector.yaml", y(&vector_ss));
    write("http_body", "retired.yaml", y(&old));
    write("http_body", "compromised.json", j(&bad));
    write("http_body", "active-and-external.yaml", y(&shared));
    write("http_body", "moved.yaml", y(&moved));
    write("http_body", "secret.yaml", secret("db", "hunter2"));
    write(
        "http_body",
        "two-objects.yaml",
        format!("{}---\n{}", y(&db), y(&old)),
    );
}
