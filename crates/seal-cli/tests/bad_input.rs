//! Every bad input gets one line naming the file, exit 1 (2 for usage), and no output.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use support::{Sandbox, secret_yaml};

#[test]
fn bad_secrets_are_refused_with_the_file_and_line() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let big = "x".repeat(1024 * 1024 + 1);
    let cases: Vec<(&str, String, &str)> = vec![
        ("invalid.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: [db\n".into(), "invalid.yaml:4:"),
        ("kind.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".into(), "kind.yaml:1: is a ConfigMap, not a Secret"),
        ("second.yaml", format!("{}---\nkind: Deployment\n", secret_yaml("a", "b", &[("k", "v")])), "second.yaml:9: is a Deployment, not a Secret"),
        ("noname.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\nstringData: {a: b}\n".into(), "has no metadata.name"),
        ("nons.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {a: b}\n".into(), "strict scope needs a namespace"),
        ("b64.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}\ndata: {pw: 'not base64!'}\n".into(), "data.pw is not valid base64"),
        ("empty.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}\n".into(), "--allow-empty"),
        ("big.yaml", format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: x, namespace: y}}\nstringData: {{a: {big}}}\n"), "1 MiB"),
        ("badns.yaml", secret_yaml("x", "Bad_NS", &[("a", "b")]), "not a valid namespace"),
        ("nothing.yaml", "# just a comment\n".into(), "holds no Kubernetes object"),
        ("sealed.yaml", "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: x}\nspec: {}\n".into(), "is a SealedSecret, not a Secret"),
    ];
    for (file, text, needle) in cases {
        sb.write(file, &text);
        let out = sb
            .seal(&["-r", &r, file, "-w", "out.yaml"])
            .fails(1, needle);
        assert!(
            out.stderr.contains(file),
            "{file}: names the file: {}",
            out.stderr
        );
        assert!(!sb.path("out.yaml").exists(), "{file}: nothing written");
    }
    // An empty Secret is fine when asked for.
    sb.seal(&["-r", &r, "empty.yaml", "--allow-empty"]).ok();
    // Through stdin the file is named <stdin>.
    sb.seal_stdin(&["-r", &r], "kind: Pod\n")
        .fails(1, "<stdin>:1: is a Pod");
    // A missing input file.
    sb.seal(&["-r", &r, "missing.yaml"])
        .fails(1, "missing.yaml: no such file");
}

#[test]
fn bad_recipients_and_identities_are_refused() {
    let sb = Sandbox::new();
    sb.keygen("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("a", "b")]));
    sb.seal(&["-r", "age1notakey", "s.yaml"])
        .fails(1, "'age1notakey' is not an age X25519 recipient");
    sb.write("keys.txt", "# ok\nage1broken\n");
    sb.seal(&["-R", "keys.txt", "s.yaml"])
        .fails(1, "keys.txt: 'age1broken' is not an age X25519 recipient");
    sb.write("nokeys.txt", "# nothing\n");
    sb.seal(&["-R", "nokeys.txt", "s.yaml"])
        .fails(1, "nokeys.txt: holds no age1");
    sb.seal(&["s.yaml"]).fails(1, "no recipients: pass -r");

    sb.write(
        "bad-id.txt",
        "# created: now\nAGE-SECRET-KEY-1SECRETSTUFF\n",
    );
    sb.write("sealed.yaml", "apiVersion: sealant.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: x, namespace: y}\nspec: {}\n");
    let out = sb
        .seal(&["unseal", "-i", "bad-id.txt", "sealed.yaml"])
        .fails(1, "bad-id.txt: line 2: not an age X25519 identity");
    assert!(
        !out.stderr.contains("SECRETSTUFF"),
        "never echo key material"
    );
    sb.seal(&["recipient", "bad-id.txt"])
        .fails(1, "bad-id.txt: line 2");
    sb.seal(&["recipient", "nokeys.txt"])
        .fails(1, "holds no AGE-SECRET-KEY");
}

#[test]
fn tampered_truncated_and_foreign_values_fail_to_open() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.keygen("other.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "hunter2")]));
    let sealed = sb.seal(&["-r", &r, "s.yaml"]).ok().stdout;
    let value = sealed
        .lines()
        .find_map(|l| l.trim().strip_prefix("pw: "))
        .unwrap()
        .to_owned();
    let mut bytes = BASE64.decode(&value).unwrap();

    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    sb.write(
        "tampered.yaml",
        &sealed.replace(&value, &BASE64.encode(&bytes)),
    );
    sb.seal(&["unseal", "-i", "k.txt", "tampered.yaml"]).fails(
        1,
        "tampered.yaml:1: SealedSecret 'db': item 'pw' failed authentication",
    );

    bytes[last] ^= 1;
    bytes.truncate(bytes.len() - 20);
    sb.write(
        "truncated.yaml",
        &sealed.replace(&value, &BASE64.encode(&bytes)),
    );
    sb.seal(&["unseal", "-i", "k.txt", "truncated.yaml"])
        .fails(1, "item 'pw' failed authentication");

    sb.write(
        "header.yaml",
        &sealed.replace(&value, &BASE64.encode(&bytes[..30])),
    );
    sb.seal(&["unseal", "-i", "k.txt", "header.yaml"])
        .fails(1, "is not an age v1 file");

    sb.write("notb64.yaml", &sealed.replace(&value, "'@@@@'"));
    sb.seal(&["unseal", "-i", "k.txt", "notb64.yaml"])
        .fails(1, "is not valid base64");

    sb.write("sealed.yaml", &sealed);
    sb.seal(&["unseal", "-i", "other.txt", "sealed.yaml"])
        .fails(1, "none of those keys is held here");

    sb.write(
        "norecord.yaml",
        &sealed
            .replace(&format!("    - {r}\n"), "")
            .replace("  recipients:\n    pw:\n", ""),
    );
    sb.seal(&["unseal", "-i", "k.txt", "norecord.yaml"])
        .fails(1, "records no recipients");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        vec!["--scope", "global"],
        vec!["-o", "xml"],
        vec!["unseal"],
        vec!["keygen"],
        vec!["frobnicate", "--nope"],
        vec!["completions", "cmd.exe"],
    ] {
        let out = sb.seal(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}

/// Nine levels of nine aliases: 9^9 nodes if expanded.
fn billion_laughs() -> String {
    let mut doc = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}\nstringData:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for name in 'b'..='i' {
        doc.push_str(&format!("  {name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    doc
}

#[test]
fn hostile_yaml_is_refused_by_the_parser_budgets() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.write("laughs.yaml", &billion_laughs());
    let deep = format!(
        "apiVersion: v1\nkind: Secret\nx: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    sb.write("deep.yaml", &deep);
    // The parser's budgets refuse them (how fast: core manifest::tests, in-process).
    sb.seal(&["-r", &r, "laughs.yaml"]).fails(1, "laughs.yaml:");
    sb.seal(&["-r", &r, "laughs.yaml"])
        .fails(1, "refused: the document exceeds the limits for a manifest");
    sb.seal(&["-r", &r, "deep.yaml"]).fails(1, "deep.yaml:3:");
    sb.seal(&["-r", &r, "deep.yaml"])
        .fails(1, "refused: nested deeper than 64 levels");
    // seal check reports them rather than skipping them.
    let out = sb.seal(&["check", "laughs.yaml", "deep.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout.matches("cannot parse (refused").count(),
        2,
        "{}",
        out.stdout
    );
}

/// Runs `seal ARGS` with a terminal as stdin (through `script`, which gives it a pty);
/// `script` merges stdout and stderr.
fn seal_on_a_terminal(sb: &Sandbox, args: &str) -> support::Run {
    let script = support::require_tool("script", "bsdutils");
    let mut cmd = std::process::Command::new(script);
    cmd.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_seal")),
        "/dev/null",
    ])
    .current_dir(sb.dir.path())
    .env("KUBECONFIG", sb.path("no-kubeconfig"));
    support::run(cmd, None)
}

#[test]
fn stdin_that_is_a_terminal_is_refused() {
    let (sb, r) = Sandbox::with_key("k.txt");
    sb.seal_db(&r, &[("pw", "x")], "sealed.yaml");
    let expected = "seal: <stdin>: expected input on stdin (pipe a manifest in, or name a FILE)";
    for args in [
        format!("-r {r}"),
        "merge sealed.yaml".to_owned(),
        "unseal -i k.txt".to_owned(),
        "validate --controller-url http://127.0.0.1:1".to_owned(),
    ] {
        let out = seal_on_a_terminal(&sb, &args);
        assert_eq!(out.code, 1, "{args}: {}", out.stdout);
        assert_eq!(out.stdout.trim_end(), expected, "{args}");
    }
    let out = seal_on_a_terminal(&sb, &format!("raw --name x -n y -r {r}"));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(
        out.stdout.trim_end(),
        "seal: <stdin>: pipe the value to seal on stdin"
    );
}

#[test]
fn unseal_refuses_what_is_not_a_sealed_secret() {
    let sb = Sandbox::new();
    sb.keygen("k.txt");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.seal(&["unseal", "-i", "k.txt", "s.yaml"])
        .fails(1, "s.yaml:1: is a Secret, not a SealedSecret");
    sb.seal(&["unseal", "-i", "missing.txt", "s.yaml"])
        .fails(1, "missing.txt: no such file");
}

#[test]
fn check_keygen_and_recipient_name_the_file() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("bin.yaml"), b"\xff\xfe kind: Secret\n").unwrap();
    let out = sb.seal(&["check", "bin.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "bin.yaml:1: is not UTF-8 text, so it cannot be checked\n"
    );
    sb.seal(&["check", "missing-dir"])
        .fails(2, "seal: missing-dir: no such file or directory");
    sb.write(".sealant.yaml", "rules: [\n");
    sb.seal(&["check", "bin.yaml"]).fails(2, ".sealant.yaml: ");
    let r = sb.keygen("k.txt");
    sb.seal(&["-r", &r, "bin.yaml"])
        .fails(1, "seal: bin.yaml: is not UTF-8 text");
    sb.seal(&["keygen", "-o", "no-dir/k.txt"]).fails(
        1,
        "seal: no-dir/k.txt: cannot create: No such file or directory (os error 2)",
    );
    assert!(!sb.path("no-dir").exists());
    sb.seal(&["recipient", "missing.txt"])
        .fails(1, "seal: missing.txt: no such file");
    sb.seal(&["recipient", "."])
        .fails(1, "seal: .: is a directory, not a file");
}

#[test]
fn usage_errors_say_what_is_expected() {
    let sb = Sandbox::new();
    for (args, needle) in [
        (
            &["completions", "cmd.exe"][..],
            "error: invalid value 'cmd.exe' for '<SHELL>'\n  [possible values: bash, elvish, fish, powershell, zsh]",
        ),
        (
            &["fetch-keys", "--controller-url", "localhost:8080"][..],
            "error: invalid value 'localhost:8080' for '--controller-url <URL>': expected http://HOST[:PORT][/PATH] or https://…, got 'localhost:8080'",
        ),
        (
            &["validate", "--controller-namespace", "Bad"][..],
            "error: invalid value 'Bad' for '--controller-namespace <NAMESPACE>': expected lowercase letters, digits and '-', at most 63",
        ),
        (
            &["reencrypt", "--controller-name", "Not_A_Name", "x.yaml"][..],
            "for '--controller-name <NAME>': expected lowercase letters",
        ),
    ] {
        sb.seal(args).fails(2, needle);
    }
}
