//! The `seal-check` pre-commit hook (issue 13 §3), run for real by `pre-commit try-repo` in a
//! temporary Git repo: a staged plaintext Secret fails the commit check, SealedSecrets pass.
//! try-repo uses this repo's HEAD (plus uncommitted changes to tracked files). The hook builds
//! `seal` with cargo on first use, into target/pre-commit-hook/ (CARGO_TARGET_DIR), so only the
//! first run of a machine pays for the build; it prints how long the run took.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{Run, Sandbox, require_tool, run, secret_yaml};

fn git(sb: &Sandbox, args: &[&str]) {
    let mut cmd = Command::new(require_tool("git", "git"));
    cmd.args(args)
        .current_dir(sb.dir.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
    let out = run(cmd, None);
    assert_eq!(out.code, 0, "git {args:?}: {}", out.stderr);
}

fn try_repo(sb: &Sandbox, files: &[&str]) -> Run {
    let this_repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let this_repo = this_repo.canonicalize().unwrap();
    let mut cmd = Command::new(require_tool("pre-commit", "pre-commit (pip)"));
    cmd.arg("try-repo")
        .arg(&this_repo)
        .arg("seal-check")
        .arg("--files")
        .args(files)
        .current_dir(sb.dir.path())
        .env("PRE_COMMIT_HOME", this_repo.join("target/pre-commit-home"))
        .env("CARGO_TARGET_DIR", this_repo.join("target/pre-commit-hook"))
        .env_remove("SEAL_CONFIG");
    run(cmd, None)
}

#[test]
fn pre_commit_hook_fails_on_a_staged_plaintext_secret_and_passes_sealed_ones() {
    let sb = Sandbox::new();
    git(&sb, &["init", "-q"]);
    let r = sb.keygen("key.txt");
    sb.write("s.in", &secret_yaml("db", "prod", &[("pw", "x")]));
    sb.seal(&["-r", &r, "s.in", "-w", "db.sealed.yaml"]).ok();
    sb.write(
        "leak.yaml",
        &secret_yaml("leak", "prod", &[("pw", "hunter2")]),
    );
    git(&sb, &["add", "db.sealed.yaml", "leak.yaml"]);

    let started = Instant::now();
    let out = try_repo(&sb, &["leak.yaml", "db.sealed.yaml"]);
    eprintln!(
        "pre-commit try-repo (first run builds the hook): {:?}",
        started.elapsed()
    );
    assert_eq!(
        out.code, 1,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("seal check"), "{}", out.stdout);
    assert!(out.stdout.contains("Failed"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("leak.yaml:1: plaintext Secret 'prod/leak'"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("db.sealed.yaml:"), "{}", out.stdout);

    let started = Instant::now();
    let out = try_repo(&sb, &["db.sealed.yaml"]);
    eprintln!("pre-commit try-repo (built): {:?}", started.elapsed());
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("Passed"), "{}", out.stdout);

    // Files that are not YAML or JSON are not passed: the hook is skipped, not run on the tree.
    sb.write("notes.txt", "kind: Secret\nstringData: {a: b}\n");
    let out = try_repo(&sb, &["notes.txt"]);
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("(no files to check)Skipped"),
        "{}",
        out.stdout
    );
}
