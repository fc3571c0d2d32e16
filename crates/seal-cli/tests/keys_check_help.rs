//! `seal keygen`, `seal recipient`, `seal check`, the repo config, help and completions.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Sandbox, secret_yaml};

#[test]
fn keygen_writes_a_private_file_and_never_overwrites() {
    let (sb, r) = Sandbox::with_key("k.txt");
    assert!(r.starts_with("age1") && r.len() == 62, "{r}");
    let mode = std::fs::metadata(sb.path("k.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = sb.read("k.txt");
    assert!(text.starts_with("# created: 20"));
    assert!(text.contains(&format!("# public key: {r}\n")));
    let out = sb
        .seal(&["keygen", "-o", "k.txt"])
        .fails(1, "k.txt: already exists");
    assert_eq!(out.stdout, "");
    assert_eq!(sb.read("k.txt"), text, "untouched");
    assert_eq!(sb.seal(&["recipient", "k.txt"]).ok().stdout.trim(), r);
    assert_eq!(
        sb.seal_stdin(&["recipient", "-"], &text).ok().stdout.trim(),
        r
    );
}

#[test]
fn check_finds_plaintext_malformed_and_stale() {
    let (sb, old) = Sandbox::with_key("old.txt");
    let new = sb.keygen("new.txt");
    sb.write("s.yaml.in", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.write(
        ".sealant.yaml",
        &format!(
            "recipients:\n  prod: {old}\nrules:\n  - path: 'clusters/**'\n    recipients: [prod]\n"
        ),
    );
    sb.seal(&["s.yaml.in", "-w", "clusters/db.yaml"])
        .fails(1, "cannot write");
    std::fs::create_dir_all(sb.path("clusters")).unwrap();
    sb.seal(&["s.yaml.in", "-w", "clusters/db.yaml"]).ok();
    sb.write(
        "clusters/app.yaml",
        "kind: Deployment\nmetadata: {name: app}\n",
    );
    sb.write("notes.txt", "kind: Secret\nstringData: {a: b}\n");
    sb.write(".git/leak.yaml", &secret_yaml("x", "y", &[("a", "b")]));

    let clean = sb.seal(&["check"]).ok();
    assert_eq!(clean.stdout, "");
    // db.yaml, app.yaml and .sealant.yaml (hidden files are checked; hidden directories are not).
    assert!(
        clean.stderr.contains("3 files checked, 0 problems"),
        "{}",
        clean.stderr
    );

    sb.write(
        "clusters/leak.yaml",
        &format!(
            "kind: ConfigMap\n---\n{}",
            secret_yaml("leak", "prod", &[("pw", "x")])
        ),
    );
    sb.write("clusters/broken.yaml", "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: b, namespace: prod}\nspec:\n  encryptedData: {pw: 'YWdl'}\n  recipients: {pw: [nope]}\n");
    let out = sb.seal(&["check"]);
    assert_eq!(out.code, 1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"./clusters/leak.yaml:3: plaintext Secret 'prod/leak': seal it with `seal` and commit the SealedSecret instead"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "./clusters/broken.yaml:1: SealedSecret 'b': item 'pw' is not an age v1 file"
        )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("'nope', which is not an age recipient")),
        "{lines:?}"
    );
    std::fs::remove_file(sb.path("clusters/leak.yaml")).unwrap();
    std::fs::remove_file(sb.path("clusters/broken.yaml")).unwrap();

    // A file named on the command line is checked whatever its extension.
    let out = sb.seal(&["check", "notes.txt"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.starts_with("notes.txt:1: plaintext Secret"),
        "{}",
        out.stdout
    );

    // Rotation: the config now lists only the new key, so the old seal is stale.
    sb.write(
        ".sealant.yaml",
        &format!(
            "recipients:\n  prod: {new}\nrules:\n  - path: 'clusters/**'\n    recipients: [prod]\n"
        ),
    );
    let out = sb.seal(&["check", "clusters"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("clusters/db.yaml:1: SealedSecret 'db': item 'pw' is sealed to none of the recipients .sealant.yaml rule 1 lists (prod)"), "{}", out.stdout);
    // Re-sealing with the new key makes it clean again.
    sb.seal(&["s.yaml.in", "-w", "clusters/db.yaml"]).ok();
    sb.seal(&["check", "clusters"]).ok();
    sb.seal(&["check", "nowhere"])
        .fails(2, "nowhere: no such file or directory");
}

#[test]
fn repo_config_rules_pick_recipients_first_match_wins() {
    let (sb, prod) = Sandbox::with_key("prod.txt");
    let staging = sb.keygen("staging.txt");
    let glass = sb.keygen("glass.txt");
    sb.write(
        ".sealant.yaml",
        &format!(
            "recipients:\n  prod: {prod}\n  staging: {staging}\n  break-glass: {glass}\nrules:\n  - path: 'prod/**'\n    recipients: [prod, break-glass]\n  - namespace: 'team-*'\n    recipients: [staging, break-glass]\n"
        ),
    );
    std::fs::create_dir_all(sb.path("prod")).unwrap();
    sb.write("s.yaml", &secret_yaml("db", "team-a", &[("pw", "x")]));
    sb.seal(&["s.yaml", "-w", "prod/db.yaml"]).ok();
    let text = sb.read("prod/db.yaml");
    assert!(
        text.contains(&prod) && text.contains(&glass) && !text.contains(&staging),
        "{text}"
    );
    // From stdout, the path rule cannot match; the namespace rule does.
    let out = sb.seal(&["s.yaml"]).ok().stdout;
    assert!(
        out.contains(&staging) && out.contains(&glass) && !out.contains(&prod),
        "{out}"
    );
    // A subdirectory finds the config in its parent.
    std::fs::create_dir_all(sb.path("sub")).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_seal"));
    cmd.args(["../s.yaml"]).current_dir(sb.path("sub"));
    assert!(support::run(cmd, None).ok().stdout.contains(&staging));
    // No rule matches: say so.
    sb.write("other.yaml", &secret_yaml("db", "other", &[("pw", "x")]));
    sb.seal(&["other.yaml"]).fails(
        1,
        ".sealant.yaml matches other.yaml (namespace other): add a rule or pass -r/-R",
    );
    sb.seal_stdin(&[], &secret_yaml("db", "other", &[("pw", "x")]))
        .fails(1, "matches output on stdout (namespace other)");
    // A broken config names itself.
    sb.write(".sealant.yaml", "rules:\n  - recipients: [ghost]\n");
    sb.seal(&["s.yaml"])
        .fails(1, ".sealant.yaml: rule 1: unknown recipient name 'ghost'");
    // Explicit -r wins over a broken config, and over a valid one: exactly that recipient,
    // in the record and in the key slots.
    sb.seal(&["s.yaml", "-r", &prod]).ok();
    sb.write(
        ".sealant.yaml",
        &format!(
            "recipients:\n  staging: {staging}\n  break-glass: {glass}\nrules:\n  - namespace: 'team-*'\n    recipients: [staging, break-glass]\n"
        ),
    );
    sb.seal(&["s.yaml", "-r", &prod, "-w", "explicit.yaml"])
        .ok();
    let text = sb.read("explicit.yaml");
    assert!(text.contains(&format!("    pw:\n    - {prod}\n")), "{text}");
    assert!(!text.contains(&staging) && !text.contains(&glass), "{text}");
    assert!(sb.age_opens("explicit.yaml", "pw", "prod.txt"));
    assert!(!sb.age_opens("explicit.yaml", "pw", "glass.txt"));
    assert!(!sb.age_opens("explicit.yaml", "pw", "staging.txt"));
}

/// A rule with both `path` and `namespace` matches only a file that satisfies both.
#[test]
fn a_rule_with_path_and_namespace_needs_both() {
    let (sb, both) = Sandbox::with_key("both.txt");
    let fallback = sb.keygen("fallback.txt");
    sb.write(
        ".sealant.yaml",
        &format!(
            "recipients:\n  both: {both}\n  fallback: {fallback}\nrules:\n  - path: 'prod/**'\n    namespace: prod\n    recipients: [both]\n  - recipients: [fallback]\n"
        ),
    );
    std::fs::create_dir_all(sb.path("prod")).unwrap();
    std::fs::create_dir_all(sb.path("dev")).unwrap();
    for (file, ns, wanted) in [
        ("prod/ok.yaml", "prod", &both),
        ("prod/wrong-ns.yaml", "dev", &fallback),
        ("dev/wrong-path.yaml", "prod", &fallback),
    ] {
        sb.write("in.yaml", &secret_yaml("db", ns, &[("pw", "x")]));
        sb.seal(&["in.yaml", "-w", file]).ok();
        let text = sb.read(file);
        assert!(
            text.contains(&format!("    pw:\n    - {wanted}\n")),
            "{file}: {text}"
        );
        let other = if wanted == &both { &fallback } else { &both };
        assert!(!text.contains(other.as_str()), "{file}: {text}");
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    let sb = Sandbox::new();
    let top = sb.seal(&["--help"]).ok().stdout;
    assert!(top.contains("Examples:"), "{top}");
    for cmd in [
        "create",
        "raw",
        "merge",
        "unseal",
        "check",
        "keygen",
        "recipient",
        "fetch-keys",
        "validate",
        "reencrypt",
        "completions",
    ] {
        let help = sb.seal(&[cmd, "--help"]).ok().stdout;
        assert!(help.contains("Examples:"), "{cmd}: {help}");
        assert!(
            help.contains("[env: SEAL_"),
            "{cmd}: every flag has an environment variable\n{help}"
        );
    }
    assert!(sb.seal(&["--version"]).ok().stdout.starts_with("seal "));
}

#[test]
fn completions_are_generated() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.seal(&["completions", shell]).ok().stdout;
        assert!(out.contains("unseal") && out.contains("merge"), "{shell}");
    }
}
