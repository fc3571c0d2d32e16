//! Attacks through the `seal` CLI, one test each, as docs/security.md's threat table lists
//! them. Readers are asked of the stock `age` CLI, never read from `spec.recipients`, which is
//! clear text a pull request can edit.

mod support;

use support::{Sandbox, secret_yaml};

/// A SealedSecret sealed to `prod`, whose records then gain the attacker's recipient (a pull
/// request that looks like metadata). Returns (prod recipient, attacker recipient).
fn file_with_an_appended_record(sb: &Sandbox) -> (String, String) {
    let prod = sb.keygen("prod.txt");
    let attacker = sb.keygen("attacker.txt");
    sb.seal_db(&prod, &[("password", "hunter2")], "db.yaml");
    let edited = sb.read("db.yaml").replace(
        &format!("    - {prod}\n"),
        &format!("    - {prod}\n    - {attacker}\n"),
    );
    assert!(edited.contains(&attacker));
    sb.write("db.yaml", &edited);
    (prod, attacker)
}

/// Issue 11 §2: `seal merge` used the file's records when nothing else named recipients, so
/// the appended attacker captured every later value. New values go only to recipients the
/// user, the repo config or the cluster names.
#[test]
fn merge_never_seals_to_a_recipient_only_the_file_records() {
    let sb = Sandbox::new();
    let (prod, _) = file_with_an_appended_record(&sb);
    // Nothing names recipients: refused, file unchanged (the records are not a source).
    sb.fails_leaving(
        "db.yaml",
        &["merge", "db.yaml", "--from-literal", "api=s3cret"],
        1,
        "no recipients: pass -r age1…",
    );
    // Named by the repo config: the new value opens for prod only.
    sb.write(
        ".sealant.yaml",
        &format!("recipients:\n  prod: {prod}\nrules:\n  - recipients: [prod]\n"),
    );
    sb.seal(&["merge", "db.yaml", "--from-literal", "api=s3cret"])
        .ok();
    assert!(sb.age_opens("db.yaml", "api", "prod.txt"));
    assert!(!sb.age_opens("db.yaml", "api", "attacker.txt"));
    assert!(!sb.age_opens("db.yaml", "password", "attacker.txt"));
}

/// The same edit is what `seal check` must catch in CI: the record lists a recipient the
/// repo config does not, and more recipients than the value has stanzas.
#[test]
fn check_reports_a_recipient_appended_to_a_record() {
    let sb = Sandbox::new();
    let (prod, attacker) = file_with_an_appended_record(&sb);
    sb.write(
        ".sealant.yaml",
        &format!("recipients:\n  prod: {prod}\nrules:\n  - recipients: [prod]\n"),
    );
    let out = sb.seal(&["check", "db.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "db.yaml:1: SealedSecret 'db': item 'password' records 2 recipients in spec.recipients but its header holds 1 X25519 stanzas: the record was altered; re-seal it with `seal`".to_owned(),
            format!("db.yaml:1: SealedSecret 'db': item 'password' records {attacker}, which .sealant.yaml rule 1 does not list: remove it from spec.recipients (and re-seal) or add it to the rule"),
        ]
    );
}

/// Issue 11 §6, offline: given a compromised recipient, `seal check` lists every value sealed
/// to it, even one that another key still opens.
#[test]
fn check_lists_values_sealed_to_a_compromised_key() {
    let (sb, bad) = Sandbox::with_key("bad.txt");
    let good = sb.keygen("good.txt");
    sb.write(
        "s.yaml",
        &secret_yaml("db", "prod", &[("password", "hunter2")]),
    );
    sb.seal(&["-r", &bad, "-r", &good, "s.yaml", "-w", "exposed.yaml"])
        .ok();
    sb.seal(&["-r", &good, "s.yaml", "-w", "safe.yaml"]).ok();
    let out = sb.seal(&["check", "--compromised", &bad, "exposed.yaml", "safe.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "exposed.yaml:1: SealedSecret 'db': item 'password' is sealed to compromised key {bad}: whoever holds it can read this value; re-seal it from plaintext and change the credential\n"
        )
    );
    sb.seal(&["check", "--compromised", "age1nope", "safe.yaml"])
        .fails(
            2,
            "--compromised: 'age1nope' is not an age X25519 recipient",
        );
}
