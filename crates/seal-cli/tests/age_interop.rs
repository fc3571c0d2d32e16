//! Interop with the stock `age` CLI (Debian package `age`), both ways: break-glass recovery
//! must not depend on Sealant.

mod support;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use support::{Sandbox, require_tool, run, secret_yaml};

#[test]
fn age_opens_our_values() {
    let age = require_tool("age", "age");
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "hunter2")]));
    let sealed = sb.seal(&["-r", &r, "s.yaml"]).ok().stdout;
    let value = sealed
        .lines()
        .find_map(|l| l.trim().strip_prefix("pw: "))
        .unwrap();
    std::fs::write(sb.path("pw.age"), BASE64.decode(value).unwrap()).unwrap();
    let mut cmd = Command::new(age);
    cmd.args(["-d", "-i", "k.txt", "pw.age"])
        .current_dir(sb.dir.path());
    let out = run(cmd, None).ok();
    assert_eq!(out.stdout, "sealant/v1 strict prod/db\nhunter2");
}

#[test]
fn seal_unseal_opens_framed_payloads_encrypted_by_age() {
    let age = require_tool("age", "age");
    let keygen = require_tool("age-keygen", "age");
    let sb = Sandbox::new();
    let mut cmd = Command::new(keygen);
    cmd.args(["-o", "stock.txt"]).current_dir(sb.dir.path());
    run(cmd, None).ok();
    let r = sb
        .seal(&["recipient", "stock.txt"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    let mut cmd = Command::new(&age);
    cmd.args(["-r", &r]).current_dir(sb.dir.path());
    let framed = "sealant/v1 namespace-wide prod\nfrom age\n";
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(framed.as_bytes())
        .unwrap();
    let encrypted = child.wait_with_output().unwrap().stdout;
    let doc = format!(
        "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: any, namespace: prod}}\nspec:\n  scope: namespace-wide\n  encryptedData:\n    note: {}\n  recipients:\n    note: [{r}]\n",
        BASE64.encode(encrypted)
    );
    sb.write("from-age.yaml", &doc);
    let secret = sb.unseal_json("stock.txt", "from-age.yaml");
    assert_eq!(secret["data"]["note"], BASE64.encode("from age\n"));
    // Our keys work with age too: a file sealed with `age -r` to a `seal keygen` recipient.
    let ours = sb.keygen("ours.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let sealed = sb.seal(&["-r", &ours, "-r", &r, "s.yaml"]).ok().stdout;
    sb.write("both.yaml", &sealed);
    sb.seal(&["unseal", "-i", "stock.txt", "both.yaml"]).ok();
    sb.seal(&["unseal", "-i", "ours.txt", "both.yaml"]).ok();
}

#[test]
fn identities_from_age_keygen_give_the_same_recipient() {
    let keygen = require_tool("age-keygen", "age");
    let sb = Sandbox::new();
    let mut cmd = Command::new(&keygen);
    cmd.args(["-o", "stock.txt"]).current_dir(sb.dir.path());
    run(cmd, None).ok();
    let mut cmd = Command::new(&keygen);
    cmd.args(["-y", "stock.txt"]).current_dir(sb.dir.path());
    let theirs = run(cmd, None).ok().stdout;
    assert_eq!(sb.seal(&["recipient", "stock.txt"]).ok().stdout, theirs);
    // And age-keygen reads ours.
    let ours = sb.keygen("ours.txt");
    let mut cmd = Command::new(&keygen);
    cmd.args(["-y", "ours.txt"]).current_dir(sb.dir.path());
    assert_eq!(run(cmd, None).ok().stdout.trim(), ours);
}
