#!/usr/bin/env python3
"""Sealant controller benchmarks, on a local Kubernetes 1.20.2 control plane (tests/cluster).

Starts its own control plane in a temp dir, applies deploy/, runs the real `seal-controller`
as the deploy/ ServiceAccount (--leader-elect=false), and measures, each figure beside a
reference measured in the same run:
  1. latency, API create of a SealedSecret -> its Secret seen on a watch (p50/p99, one at a
     time); reference: API create of a plain Secret -> seen on the same kind of watch;
  2. throughput, N SealedSecrets created by 16 client threads -> all N Secrets exist;
     reference (ceiling): the same client creating N plain Secrets, same concurrency;
  3. controller RSS (VmRSS) idle, at 5,000 and at 20,000 reconciled SealedSecrets;
  4. restart over 5,000 unchanged objects: start -> /readyz ok, start -> last reconcile,
     and writes (resourceVersion changes of Secrets and SealedSecrets);
  5. controller CPU seconds (utime+stime) per 1,000 unseals during the throughput run.

Values are sealed ONCE with `seal --scope cluster-wide -r <cluster recipient>`; every object
reuses that sealed spec with its own metadata.name (cluster-wide values open under any name
and namespace), so the bench does not run 20,000 `seal` processes.

Python 3.11, stdlib only; talks to the API server over REST (http.client, admin token).
Usage: tests/bench/controller.py [--quick] [--out FILE] [--debug]
  --quick  20 latency objects, 200 throughput objects, no 20k step (a smoke run)
  --out    where to write the markdown (default /tmp/controller-bench.md)
  --debug  use target/debug binaries even if target/release ones exist
"""
import argparse
import http.client
import json
import os
import queue
import shlex
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
CP = ROOT / "tests/cluster/control-plane.sh"
THREADS = 16
REFERENCE_LABEL = "bench.sealant.dev/reference"
REENCRYPT_FILES = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------- REST client

class Api:
    """A tiny Kubernetes REST client: one keep-alive HTTPS connection per thread."""

    def __init__(self, server, token, ca_file):
        u = urlparse(server)
        self.host, self.port = u.hostname, u.port or 443
        self.token = token
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self.local, "conn", None)
        if c is None or fresh:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self.local.conn = c
        return c

    def request(self, method, path, body=None, ok=(200, 201), ctype="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(5):
            try:
                c = self._conn(fresh=attempt > 0)
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
            except (http.client.HTTPException, OSError):
                if attempt == 4:
                    raise
                time.sleep(0.05)
                continue
            if r.status == 429 or r.status >= 500:  # throttled (max-requests-inflight) or busy
                Api.retries += 1
                time.sleep(float(r.getheader("Retry-After") or 0.1))
                continue
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
            return json.loads(raw) if raw else None
        raise RuntimeError(f"{method} {path}: gave up after retries")

    retries = 0

    def get(self, path, ok=(200,)):
        return self.request("GET", path, ok=ok)

    def post(self, path, body):
        return self.request("POST", path, body, ok=(200, 201, 409))

    def list_all(self, path):
        """A full list, paged; returns (items, resourceVersion)."""
        items, cont = [], ""
        while True:
            sep = "&" if "?" in path else "?"
            page = self.get(f"{path}{sep}limit=2000" + (f"&continue={cont}" if cont else ""))
            items += page["items"]
            cont = page["metadata"].get("continue")
            if not cont:
                return items, page["metadata"]["resourceVersion"]

    def watch(self, path, rv, on_event, stop):
        """Streams watch events to on_event(type, obj, t_received) until stop is set."""
        sock = socket.create_connection((self.host, self.port))
        s = self.ctx.wrap_socket(sock, server_hostname=self.host)
        sep = "&" if "?" in path else "?"
        req = (f"GET {path}{sep}watch=1&resourceVersion={rv}&allowWatchBookmarks=false HTTP/1.1\r\n"
               f"Host: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
               f"Accept: application/json\r\nConnection: close\r\n\r\n")
        s.sendall(req.encode())
        s.settimeout(0.2)
        buf = b""
        header_done = False
        chunked = False
        body = b""
        while not stop.is_set():
            try:
                data = s.recv(1 << 16)
            except (socket.timeout, TimeoutError):
                continue
            if not data:
                break
            now = time.perf_counter()
            buf += data
            if not header_done:
                if b"\r\n\r\n" not in buf:
                    continue
                head, buf = buf.split(b"\r\n\r\n", 1)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"watch {path}: {head[:200]!r}")
                chunked = b"transfer-encoding: chunked" in head.lower()
                header_done = True
            # De-chunk what we have.
            if chunked:
                while True:
                    i = buf.find(b"\r\n")
                    if i < 0:
                        break
                    size = int(buf[:i].split(b";")[0], 16)
                    if len(buf) < i + 2 + size + 2:
                        break
                    body += buf[i + 2:i + 2 + size]
                    buf = buf[i + 2 + size + 2:]
                    if size == 0:
                        stop.set()
                        break
            else:
                body += buf
                buf = b""
            while b"\n" in body:
                line, body = body.split(b"\n", 1)
                if line.strip():
                    ev = json.loads(line)
                    on_event(ev["type"], ev["object"], now)
        s.close()


class SecretWatch:
    """Watches Secrets in one namespace; records when each name was first seen (ADDED)."""

    def __init__(self, api, ns):
        self.seen = {}
        self.cond = threading.Condition()
        self.stop = threading.Event()
        _, rv = api.list_all(f"/api/v1/namespaces/{ns}/secrets")
        self.thread = threading.Thread(
            target=api.watch, args=(f"/api/v1/namespaces/{ns}/secrets", rv, self._on, self.stop),
            daemon=True)
        self.thread.start()

    def _on(self, typ, obj, t):
        if typ == "ADDED":
            with self.cond:
                self.seen.setdefault(obj["metadata"]["name"], t)
                self.cond.notify_all()
        elif typ == "ERROR":
            log("watch error:", obj)

    def wait_name(self, name, timeout=30):
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.seen, timeout):
                raise RuntimeError(f"Secret {name} not seen within {timeout}s")
            return self.seen[name]

    def wait_count(self, n, timeout=600):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.seen) >= n, timeout):
                raise RuntimeError(f"only {len(self.seen)}/{n} Secrets seen within {timeout}s")
            return max(self.seen.values())

    def close(self):
        self.stop.set()


# ---------------------------------------------------------------- helpers

def proc_stat(pid):
    """(RSS MiB, CPU seconds utime+stime) of a process."""
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return rss, cpu


def http_get(url, timeout=1):
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except Exception as e:  # noqa: BLE001 - any failure means "not yet"
        return None, str(e)


def metric(port, name):
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def apiserver_requests(api):
    """apiserver_request_total summed by (verb, resource): what the API server was asked."""
    c = api._conn()
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {api.token}"})
    r = c.getresponse()
    text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(","))
            key = (labels.get("verb", "").strip('"'), labels.get("resource", "").strip('"'),
                   labels.get("subresource", "").strip('"'))
            out[key] = out.get(key, 0) + float(line.split()[-1])
    return out


def requests_delta(before, after):
    d = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
    keep = ("secrets", "sealedsecrets", "events")
    return ", ".join(f"{v:.0f} {k[0]} {k[1]}{'/' + k[2] if k[2] else ''}"
                     for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if k[1] in keep)


def pct(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def parallel_create(api, paths_bodies, threads=THREADS, method="POST", ctype="application/json"):
    """Sends every (path, body) from `threads` threads (POST unless told); returns
    (start, elapsed seconds)."""
    q = queue.Queue()
    for pb in paths_bodies:
        q.put(pb)
    errors = []

    def worker():
        while True:
            try:
                path, body = q.get_nowait()
            except queue.Empty:
                return
            try:
                if method == "POST":
                    api.post(path, body)
                else:
                    api.request(method, path, body, ctype=ctype)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    return t0, time.perf_counter() - t0


class Controller:
    def __init__(self, binary, kubeconfig, work):
        self.binary, self.kubeconfig, self.work = binary, kubeconfig, work
        self.proc = None
        self.port = None
        self.n = 0

    def start(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.n += 1
        self.log = open(self.work / f"controller-{self.n}.log", "w")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary, "--namespace", "sealant-system", "--leader-elect=false",
             "--listen-addr", f"127.0.0.1:{self.port}",
             # The no-controller reference objects carry this label; everything else is default.
             "--label-selector", f"!{REFERENCE_LABEL}"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        return self.t_start

    def wait_ready(self, timeout=60, interval=0.01):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited {self.proc.returncode}; see {self.log.name}")
            status, _ = http_get(f"http://127.0.0.1:{self.port}/readyz", timeout=0.5)
            if status == 200:
                return time.perf_counter()
            time.sleep(interval)
        raise RuntimeError("controller not ready")

    def reconciles(self):
        return metric(self.port, "sealant_reconcile_duration_seconds_count") or 0

    def settle(self, quiet=3.0, timeout=600):
        """Waits until the reconcile count has not moved for `quiet` seconds."""
        last, since = -1, time.perf_counter()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            n = self.reconciles()
            if n != last:
                last, since = n, time.perf_counter()
            elif time.perf_counter() - since >= quiet:
                return n
            time.sleep(0.2)
        return last

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="/tmp/controller-bench.md")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--throughput", type=int, help="objects in the throughput run (default 5000, quick 200)")
    args = ap.parse_args()
    n_lat = 20 if args.quick else 200
    n_tp = args.throughput or (200 if args.quick else 5000)
    n_big = 0 if args.quick else 20000

    profile = "debug" if args.debug or not (ROOT / "target/release/seal-controller").exists() else "release"
    controller_bin = ROOT / "target" / profile / "seal-controller"
    seal_bin = ROOT / "target" / profile / "seal"
    for b in (controller_bin, seal_bin):
        if not b.exists():
            sys.exit(f"{b} missing: cargo build --release -p sealant-controller -p seal-cli")
    log(f"binaries: target/{profile}")

    t_begin = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sealant-ctl-bench-"))
    cluster = work / "cluster"
    cluster.mkdir()
    ctl = None
    try:
        log("starting a control plane in", cluster)
        subprocess.run([CP, "start", cluster], check=True, stdout=subprocess.DEVNULL)
        env = {}
        for line in (cluster / "env").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = shlex.split(v)[0] if v else ""
        api = Api(env["SEALANT_APISERVER"], env["SEALANT_ADMIN_TOKEN"], env["SEALANT_CA_FILE"])
        kenv = dict(os.environ, KUBECONFIG=env["KUBECONFIG"])

        # deploy/ through the overlay that makes it servable by 1.20 (batch/v1beta1 CronJob,
        # policy/v1beta1 PDB), as the end-to-end tests apply it.
        log("kubectl apply -k tests/k8s-1.20 (deploy/ for Kubernetes 1.20)")
        subprocess.run(["kubectl", "apply", "-k", ROOT / "tests/k8s-1.20"], check=True, env=kenv,
                       stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                api.get("/apis/sealant.dev/v1alpha1/sealedsecrets?limit=1")
                break
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        token = None
        while token is None:
            for s in api.get("/api/v1/namespaces/sealant-system/secrets")["items"]:
                ann = s["metadata"].get("annotations", {})
                if (s.get("type") == "kubernetes.io/service-account-token"
                        and ann.get("kubernetes.io/service-account.name") == "seal-controller"):
                    import base64
                    token = base64.b64decode(s["data"]["token"]).decode()
            if token is None:
                if time.time() > deadline:
                    raise RuntimeError("no ServiceAccount token")
                time.sleep(0.2)
        sa_kubeconfig = work / "seal-controller.kubeconfig"
        sa_kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n"
            f"    server: {env['SEALANT_APISERVER']}\n    certificate-authority: {env['SEALANT_CA_FILE']}\n"
            f"users:\n- name: seal-controller\n  user:\n    token: {token}\n"
            "contexts:\n- name: sa\n  context: {cluster: local, user: seal-controller}\n"
            "current-context: sa\n")

        ctl = Controller(str(controller_bin), sa_kubeconfig, work)
        ctl.start()
        ctl.wait_ready()
        recipient = None
        while not recipient:
            r = subprocess.run([seal_bin, "fetch-keys"], env=kenv, capture_output=True, text=True)
            recipient = r.stdout.split()[0] if r.returncode == 0 and r.stdout.strip() else None
            if not recipient:
                time.sleep(0.2)
        log("cluster recipient", recipient)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "x"},
                  "type": "Opaque", "stringData": {"username": "admin", "password": "hunter2-" + "p" * 24}}
        r = subprocess.run([seal_bin, "--scope", "cluster-wide", "-r", recipient, "-o", "json"],
                           input=json.dumps(secret), capture_output=True, text=True, check=True)
        sealed_spec = json.loads(r.stdout)["spec"]
        plain_data = {"username": "YWRtaW4=", "password": "aHVudGVyMi1wcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw"}

        def sealed(ns, name, labels=None):
            return (f"/apis/sealant.dev/v1alpha1/namespaces/{ns}/sealedsecrets",
                    {"apiVersion": "sealant.dev/v1alpha1", "kind": "SealedSecret",
                     "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
                     "spec": sealed_spec})

        def plain(ns, name):
            return (f"/api/v1/namespaces/{ns}/secrets",
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                     "type": "Opaque", "data": plain_data})

        for ns in ("bench-lat", "bench-lat-ref", "bench-tp", "bench-tp-ref", "bench-cr-ref", "bench-big", "bench-re"):
            api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

        # ---- 3a. idle RSS
        ctl.settle(quiet=2)
        time.sleep(2)
        rss_idle, _ = proc_stat(ctl.proc.pid)
        log(f"idle RSS {rss_idle:.1f} MiB")

        # ---- 1. latency, one at a time
        res = {}
        for label, ns, make in (("sealed", "bench-lat", sealed), ("plain", "bench-lat-ref", plain)):
            w = SecretWatch(api, ns)
            time.sleep(0.3)
            lat = []
            for i in range(n_lat):
                path, body = make(ns, f"lat-{i}")
                t0 = time.perf_counter()
                api.post(path, body)
                lat.append((w.wait_name(f"lat-{i}") - t0) * 1000)
            w.close()
            res[label] = lat
            log(f"latency {label}: p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms")
        ctl.settle(quiet=2)

        # ---- 2. throughput, and 5. CPU
        w = SecretWatch(api, "bench-tp-ref")
        t0, _ = parallel_create(api, [plain("bench-tp-ref", f"s-{i}") for i in range(n_tp)])
        ceiling_s = w.wait_count(n_tp) - t0
        w.close()
        log(f"ceiling: {n_tp} plain Secrets in {ceiling_s:.2f} s")
        # The API server's own cost of the custom resource: the same creates of SealedSecrets
        # the controller ignores (by label), so nothing but the creates runs.
        _, cr_ref_s = parallel_create(
            api, [sealed("bench-cr-ref", f"s-{i}", {REFERENCE_LABEL: "1"}) for i in range(n_tp)])
        log(f"reference: {n_tp} SealedSecret creates alone in {cr_ref_s:.2f} s")
        # What the controller's other two writes per object cost the API server alone, same
        # client and concurrency: a status patch of each reference object (what the controller
        # sends), and an events.k8s.io/v1 Event create.
        status_patch = {"status": {
            "observedGeneration": 1, "openedWith": [recipient],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Unsealed",
                            "message": "Secret s is up to date", "observedGeneration": 1,
                            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}}
        _, status_ref_s = parallel_create(
            api, [(f"/apis/sealant.dev/v1alpha1/namespaces/bench-cr-ref/sealedsecrets/s-{i}/status",
                   status_patch) for i in range(n_tp)],
            method="PATCH", ctype="application/merge-patch+json")
        now_micro = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())

        def event(i):
            return ("/apis/events.k8s.io/v1/namespaces/bench-cr-ref/events",
                    {"apiVersion": "events.k8s.io/v1", "kind": "Event",
                     "metadata": {"name": f"s-{i}.bench", "namespace": "bench-cr-ref"},
                     "eventTime": now_micro, "reportingController": "bench", "reportingInstance": "bench",
                     "action": "created", "reason": "Unsealed", "type": "Normal", "note": f"Secret s-{i} created",
                     "regarding": {"apiVersion": "sealant.dev/v1alpha1", "kind": "SealedSecret",
                                   "namespace": "bench-cr-ref", "name": f"s-{i}"}})
        _, event_ref_s = parallel_create(api, [event(i) for i in range(n_tp)])
        log(f"reference: {n_tp} status patches alone in {status_ref_s:.2f} s, {n_tp} Event creates in {event_ref_s:.2f} s")
        ctl.settle(quiet=2)

        w = SecretWatch(api, "bench-tp")
        _, cpu0 = proc_stat(ctl.proc.pid)
        unseals0 = metric(ctl.port, "sealant_unseal_requests_total") or 0
        retries0 = Api.retries
        req0 = apiserver_requests(api)
        t0, create_s = parallel_create(api, [sealed("bench-tp", f"s-{i}") for i in range(n_tp)])
        tp_s = w.wait_count(n_tp) - t0
        w.close()
        _, cpu1 = proc_stat(ctl.proc.pid)
        unseals1 = metric(ctl.port, "sealant_unseal_requests_total") or 0
        settled = ctl.settle(quiet=3)
        _, cpu2 = proc_stat(ctl.proc.pid)
        unseals2 = metric(ctl.port, "sealant_unseal_requests_total") or 0
        log(f"sealed: {n_tp} Secrets in {tp_s:.2f} s (creates took {create_s:.2f} s); "
            f"cpu {cpu1 - cpu0:.2f} s for {unseals1 - unseals0:.0f} unseals; "
            f"to settled: cpu {cpu2 - cpu0:.2f} s, {unseals2 - unseals0:.0f} unseals; 429/5xx retries {Api.retries - retries0}")
        tp_requests = requests_delta(req0, apiserver_requests(api))
        log("API requests during the throughput run (client's POSTs included):", tp_requests)
        rss_tp, _ = proc_stat(ctl.proc.pid)
        n_sealed_total = n_lat + n_tp
        log(f"RSS at {n_sealed_total} SealedSecrets: {rss_tp:.1f} MiB (reconciles so far {settled:.0f})")

        # ---- 4. restart over unchanged objects
        def versions():
            out = {}
            for kind, path in (("secret", "/api/v1/secrets"),
                               ("sealed", "/apis/sealant.dev/v1alpha1/sealedsecrets")):
                items, _ = api.list_all(path)
                for o in items:
                    m = o["metadata"]
                    if m["namespace"].startswith("bench-"):
                        out[(kind, m["namespace"], m["name"])] = m["resourceVersion"]
            return out

        ctl.stop()
        before = versions()
        req0 = apiserver_requests(api)
        t_start = ctl.start()
        t_ready = ctl.wait_ready(interval=0.005)
        # The last reconcile: the last time the reconcile count moved (polled every 20 ms),
        # once it has reached the number of SealedSecrets and then stayed still for 3 s.
        t_last, last_n = None, -1
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            n = ctl.reconciles()
            now = time.perf_counter()
            if n != last_n:
                t_last, last_n = now, n
            elif n >= n_sealed_total and now - t_last >= 3:
                break
            time.sleep(0.02)
        if last_n < n_sealed_total:
            t_last = None
        restart_reconciles = last_n
        restart_requests = requests_delta(req0, apiserver_requests(api))
        log("API requests during the restart (bench lists included):", restart_requests)
        after = versions()
        changed = [k for k, v in after.items() if before.get(k) != v]
        writes_secret = sum(1 for k in changed if k[0] == "secret")
        writes_sealed = sum(1 for k in changed if k[0] == "sealed")
        ready_s = t_ready - t_start
        last_s = (t_last - t_start) if t_last else None
        log(f"restart: ready {ready_s:.2f} s, last reconcile {last_s} s, "
            f"{restart_reconciles:.0f} reconciles, writes: {writes_secret} Secrets, {writes_sealed} SealedSecrets (of {len(before)} objects)")

        # ---- 6. seal reencrypt of 1,000 files, through the controller's HTTP endpoint
        n_re = 100 if args.quick else REENCRYPT_FILES
        re_dir = work / "reencrypt"
        re_dir.mkdir()
        files = []
        for i in range(n_re):
            _, body = sealed("bench-re", f"r-{i}")
            f = re_dir / f"r-{i}.json"
            f.write_text(json.dumps(body))
            files.append(f)
        originals = {f: f.read_text() for f in files}
        t0 = time.perf_counter()
        r = subprocess.run([seal_bin, "reencrypt", "--controller-url", f"http://127.0.0.1:{ctl.port}", *files],
                           capture_output=True, text=True)
        reencrypt_s = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"seal reencrypt failed: {r.stderr.strip()}")
        rewritten = sum(1 for f in files if f.read_text() != originals[f])
        # Reference: the same Secrets sealed from plaintext locally, one `seal` run per file.
        plain_files = []
        for i in range(n_re):
            f = re_dir / f"plain-{i}.json"
            f.write_text(json.dumps(dict(secret, metadata={"name": f"r-{i}", "namespace": "bench-re"})))
            plain_files.append(f)
        t0 = time.perf_counter()
        for f in plain_files:
            subprocess.run([seal_bin, "--scope", "cluster-wide", "-r", recipient, f],
                           check=True, stdout=subprocess.DEVNULL)
        seal_each_s = time.perf_counter() - t0
        log(f"seal reencrypt of {n_re} files: {reencrypt_s:.2f} s ({rewritten} rewritten); "
            f"seal of each from plaintext: {seal_each_s:.2f} s")

        # ---- 3c. RSS at 20,000
        rss_big = None
        if n_big:
            extra = n_big - n_sealed_total
            w = SecretWatch(api, "bench-big")
            t0, _ = parallel_create(api, [sealed("bench-big", f"s-{i}") for i in range(extra)])
            big_s = w.wait_count(extra, timeout=1200) - t0
            w.close()
            ctl.settle(quiet=3)
            time.sleep(2)
            rss_big, _ = proc_stat(ctl.proc.pid)
            log(f"{extra} more SealedSecrets reconciled in {big_s:.1f} s; RSS at {n_big}: {rss_big:.1f} MiB")

        # ---- report
        sys.path.insert(0, str(Path(__file__).parent))
        from run import rsa4096_private_op_us
        rsa_us = rsa4096_private_op_us()
        lat_s, lat_p = res["sealed"], res["plain"]
        ratio = ceiling_s / tp_s
        write_sum_s = cr_ref_s + ceiling_s + status_ref_s + event_ref_s
        cpu_per_k = (cpu2 - cpu0) / max(unseals2 - unseals0, 1) * 1000
        total_secrets = len(api.list_all("/api/v1/secrets")[0])

        def yes(b):
            return "yes" if b else "**no**"

        rows = [
            (f"latency create SealedSecret → Secret, p50 ({n_lat}, one at a time)",
             f"{pct(lat_s, 50):.1f} ms", f"{pct(lat_p, 50):.1f} ms (plain Secret create → watch event)", "—"),
            (f"latency create SealedSecret → Secret, p99",
             f"{pct(lat_s, 99):.1f} ms", f"{pct(lat_p, 99):.1f} ms", yes(pct(lat_s, 99) < 100) + " (< 100 ms)"),
            (f"throughput, {n_tp} SealedSecrets → Secrets ({THREADS} client threads)",
             f"{tp_s:.2f} s = {n_tp / tp_s:.0f}/s ({ratio:.2f} of ceiling)",
             f"{ceiling_s:.2f} s = {n_tp / ceiling_s:.0f}/s ({n_tp} plain Secrets, same client)",
             yes(ratio >= 0.8) + " (≥ 0.8)"),
            (f"… the API server's bound: {n_tp} SealedSecret creates with no controller acting",
             f"{cr_ref_s:.2f} s = {n_tp / cr_ref_s:.0f}/s ({ceiling_s / cr_ref_s:.2f} of the ceiling)",
             "same client; objects the controller ignores (label)", "—"),
            (f"… each write alone, {n_tp} of them, same client: SealedSecret create + Secret create "
             "+ status patch + Event create",
             f"{cr_ref_s:.2f} + {ceiling_s:.2f} + {status_ref_s:.2f} + {event_ref_s:.2f} = {write_sum_s:.2f} s",
             f"the writes one SealedSecret needs, done by a perfect controller: "
             f"{ceiling_s / write_sum_s:.2f} of the ceiling at best", "—"),
            ("controller CPU per 1,000 unseals (utime+stime, throughput run until settled)",
             f"{cpu_per_k:.2f} s",
             f"{unseals2 - unseals0:.0f} unseals for {n_tp} SealedSecrets, {cpu2 - cpu0:.2f} s CPU "
             f"= {(cpu2 - cpu0) / n_tp * 1000:.2f} s per 1,000 SealedSecrets", "—"),
            ("… per unseal (2 values, whole reconcile: API I/O, status, event)",
             f"{cpu_per_k:.2f} ms",
             f"{rsa_us / 1000:.2f} ms: one RSA-4096 private op (`openssl speed rsa4096`, same run), "
             f"Bitnami's floor per value; ×2 values = {2 * rsa_us / 1000 / cpu_per_k:.0f}× our whole reconcile",
             "—"),
            ("controller RSS idle", f"{rss_idle:.1f} MiB", "—", yes(rss_idle <= 20) + " (20 MB)"),
            (f"controller RSS at {n_sealed_total} SealedSecrets", f"{rss_tp:.1f} MiB", "—", "—"),
        ]
        if rss_big is not None:
            rows.append((f"controller RSS at {n_big} SealedSecrets", f"{rss_big:.1f} MiB",
                         f"{total_secrets} Secrets in the cluster", yes(rss_big <= 64) + " (64 MB)"))
        rows += [
            (f"`seal reencrypt` of {n_re} files (one SealedSecret each, `--controller-url`)",
             f"{reencrypt_s:.2f} s ({rewritten} files rewritten)",
             f"floor at the default `--reencrypt-rate` 50/s (burst 50): {(n_re - 50) / 50:.1f} s; "
             f"`seal` from plaintext, one run per file: {seal_each_s:.2f} s", "—"),
            (f"restart over {n_sealed_total} unchanged: start → /readyz ok", f"{ready_s:.2f} s", "—",
             yes(ready_s < 10) + " (< 10 s)"),
            (f"restart: start → last reconcile", f"{last_s:.2f} s" if last_s else "not reached in 300 s",
             f"{restart_reconciles:.0f} reconciles for {n_sealed_total} SealedSecrets", "—"),
            ("restart: writes (resourceVersion changes)",
             f"{writes_secret + writes_sealed} ({writes_secret} Secrets, {writes_sealed} SealedSecrets)",
             f"{len(before)} objects compared", yes(writes_secret + writes_sealed == 0) + " (0)"),
        ]
        elapsed = time.perf_counter() - t_begin
        uname = os.uname()
        md = ["| measurement | result | reference | target met? |", "|---|---|---|---|"]
        md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        md += ["", f"Run: `tests/bench/controller.py{' --quick' if args.quick else ''}`, "
               f"target/{profile} binaries, {os.cpu_count()} CPUs ({uname.machine}, {uname.release}), "
               f"{time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min. 429/5xx retries by the client: {Api.retries}.",
               "",
               "Method. A local Kubernetes 1.20.2 control plane (etcd, kube-apiserver, "
               "kube-controller-manager as processes, tests/cluster; default --max-requests-inflight 400 "
               "/ --max-mutating-requests-inflight 200) with deploy/ applied; the real `seal-controller` runs "
               "as the deploy/ ServiceAccount with `--leader-elect=false`; control plane, controller and client "
               "share the same CPUs. The client is Python over the REST API (one keep-alive HTTPS connection "
               "per thread, admin token). Values were sealed once with "
               "`seal --scope cluster-wide -r <cluster recipient>` (2 items); every SealedSecret reuses that "
               "sealed spec under its own metadata.name (cluster-wide values open under any name), so each "
               "object still costs the controller a full unseal. Latency: a SealedSecret is POSTed, then the "
               "next waits until its Secret's ADDED event arrives on a Secret watch (`?watch=1`) opened "
               "before; the reference is the same loop POSTing plain Secrets, i.e. the floor of this "
               "measurement path. Throughput: the same client POSTs N objects from 16 threads; time from the "
               "first POST to the last Secret's ADDED event; reference: N plain Secrets POSTed the same way "
               "(other namespace). Second reference: N SealedSecrets POSTed the same way but labelled so the "
               "controller (started with `--label-selector !bench.sealant.dev/reference`; nothing else differs "
               "from its defaults) ignores them: what the API server alone needs to store this custom resource. "
               "Then the same client PATCHes a status (what the controller writes) onto each of those "
               "objects, and POSTs one events.k8s.io/v1 Event per object: with the Secret creates, each of "
               "the four writes a SealedSecret needs, timed alone. "
               "Reencrypt: N files, one SealedSecret each, rewritten in place by one `seal reencrypt "
               "--controller-url` run (one POST /v1/reencrypt per SealedSecret, sequential, "
               "429s retried after the wait the controller names); reference: one `seal` run per file sealing "
               "the same Secret from plaintext. CPU: utime+stime of the controller from /proc/PID/stat, from the start of "
               "the throughput run until its reconcile count stops moving (includes status writes and the "
               "re-reconciles its own Secret watch triggers), divided by the unseals counted in "
               "`sealant_unseal_requests_total`. RSS: VmRSS from /proc/PID/status after the reconcile count "
               "has been still for 3 s. Restart: SIGTERM, snapshot of every bench Secret's and "
               "SealedSecret's resourceVersion, start; /readyz polled every 5 ms; last reconcile = "
               "the last time `sealant_reconcile_duration_seconds_count` moved (polled every 20 ms), once it "
               "has reached the number of SealedSecrets and then stayed still for 3 s; then the resourceVersions are compared again."]
        md += ["", f"API server requests (apiserver_request_total deltas) during the throughput run: "
               f"{tp_requests}. During the restart: {restart_requests}."]
        text = "\n".join(md) + "\n"
        print()
        print(text)
        Path(args.out).write_text(text)
        log("written to", args.out)
    finally:
        if ctl:
            ctl.stop()
        subprocess.run([CP, "stop", cluster], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"stopped; work dir kept for logs: {work}")


if __name__ == "__main__":
    main()
