//! Memory under hostile load (security issue §5): the real `seal-controller`, as the deploy/
//! ServiceAccount on a local Kubernetes 1.20 control plane, held to the Deployment's 128 MiB
//! memory limit in a cgroup v1 memory cgroup, while 100 clients at once each send a ~2 MB
//! SealedSecret to `/v1/reencrypt` (retrying after `Retry-After` when refused). It must not be
//! OOM-killed or even touch its limit, must keep answering `/healthz`, and must keep
//! reconciling. Needs root (it makes the cgroup). The figures go to docs/benchmarks.md, not
//! into assertions: see `figures_with_and_without_the_bound`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealant_e2e::{ControlPlane, Controller, MemoryCgroup, ok, text, wait_for};

/// The Deployment's memory limit (deploy/deployment.yaml).
const LIMIT: u64 = 128 * 1024 * 1024;
const CLIENTS: usize = 100;
/// Each body: a SealedSecret holding ~1 MB of plaintext, padded with an annotation to this.
const BODY_BYTES: usize = 2_000_000;
/// How often one client tries before giving up (it waits `Retry-After` between tries).
const TRIES: usize = 300;
const SECS_60: Duration = Duration::from_secs(60);
/// Clients that leave their answers unread.
const UNREAD_CLIENTS: usize = 200;
/// How long each of them keeps trying and keeps what it got: past the controller's 30 s write
/// deadline, so unread answers are given up on and others take their permits.
const UNREAD_FOR: Duration = Duration::from_secs(45);

#[test]
fn a_flood_of_large_bodies_stays_inside_128_mib_and_the_controller_keeps_working() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let cgroup = MemoryCgroup::create("sealant-hostile-load", LIMIT);
    // The rate limit is raised out of the way: the body bound alone must hold the memory.
    let mut ctl = Controller::spawn_in_cgroup(
        &cgroup,
        &sa,
        cp.dir.path(),
        "flood",
        &["--reencrypt-rate", "10000"],
    );
    ctl.wait_ready();
    let work = tempfile::tempdir().unwrap();
    let body = Arc::new(large_body(&cp, work.path()));
    cp.kubectl_ok(&["create", "namespace", "flood"]);

    let flood = Flood::start(&ctl, body.clone(), CLIENTS, true);
    // Created while the flood is on: it must still become a Secret.
    thread::sleep(Duration::from_secs(1));
    let created_during = !flood.done.load(Ordering::SeqCst);
    cp.apply(&small_sealed(
        &cp,
        work.path(),
        "during",
        "created-during-the-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created during the flood",
        SECS_60,
        || {
            (cp.secret_value("flood", "during", "token")? == "created-during-the-flood")
                .then_some(())
        },
    );
    let reconciled_while_flooding = !flood.done.load(Ordering::SeqCst);
    let report = flood.finish();
    let peak = cgroup.read("memory.max_usage_in_bytes");
    eprintln!(
        "bounded (default --max-bodies-in-flight): peak {:.1} MiB of {} MiB; {report}; \
         created during the flood: {created_during}, its Secret there before the flood ended: \
         {reconciled_while_flooding}",
        mib(peak),
        LIMIT >> 20
    );

    assert!(
        created_during,
        "the flood ended before the SealedSecret was created"
    );
    assert!(ctl.alive(), "the controller died:\n{}", ctl.logs());
    assert_eq!(cgroup.oom_kills(), 0, "the OOM killer struck");
    assert_eq!(
        cgroup.read("memory.failcnt"),
        0,
        "the controller reached its limit (peak {peak} bytes)"
    );
    assert!(peak < LIMIT, "peak {peak} bytes is not below {LIMIT}");
    assert_eq!(report.answers_not_200_or_429, Vec::<String>::new());
    assert_eq!(
        report.health_failures, 0,
        "/healthz failed during the flood"
    );
    assert!(report.health_ok > 0, "/healthz was never asked");
    // Refused bodies were sent again and every one was answered in full in the end.
    assert_eq!(report.ok, CLIENTS, "{report}");
    assert!(report.busy > 0, "the bound never refused a body: {report}");

    // After the flood: still healthy, still reconciling.
    assert_eq!(ctl.get("/healthz").as_deref(), Some("ok"));
    cp.apply(&small_sealed(
        &cp,
        work.path(),
        "after",
        "created-after-the-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created after the flood",
        SECS_60,
        || (cp.secret_value("flood", "after", "token")? == "created-after-the-flood").then_some(()),
    );
    assert!(ctl.alive());
    assert_eq!(cgroup.oom_kills(), 0);
    let logs = ctl.logs();
    assert!(!logs.contains("AGE-SECRET-KEY"), "key material in the log");
    assert!(
        !logs.contains("created-during-the-flood"),
        "plaintext in the log"
    );
    drop(ctl);
}

/// Clients that send the same ~2 MB bodies and never read the answers (only their status
/// line): each unread answer is a body's worth of memory the client controls. The permits
/// stay with the unread answers until the write deadline cuts them, so however many clients
/// come, at most `--max-bodies-in-flight` answers wait unread.
#[test]
fn answers_never_read_stay_inside_128_mib_and_the_controller_keeps_working() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let cgroup = MemoryCgroup::create("sealant-unread-answers", LIMIT);
    let mut ctl = Controller::spawn_in_cgroup(
        &cgroup,
        &sa,
        cp.dir.path(),
        "unread",
        &["--reencrypt-rate", "10000"],
    );
    ctl.wait_ready();
    let work = tempfile::tempdir().unwrap();
    let body = Arc::new(large_body(&cp, work.path()));
    cp.kubectl_ok(&["create", "namespace", "flood"]);
    let idle = cgroup.read("memory.usage_in_bytes");

    let flood = Flood::start_with(&ctl, body, UNREAD_CLIENTS, true, unread_client);
    thread::sleep(Duration::from_secs(1));
    cp.apply(&small_sealed(
        &cp,
        work.path(),
        "during",
        "created-during-the-unread-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created while answers go unread",
        SECS_60,
        || {
            (cp.secret_value("flood", "during", "token")? == "created-during-the-unread-flood")
                .then_some(())
        },
    );
    let reconciled_while_flooding = !flood.done.load(Ordering::SeqCst);
    let report = flood.finish();
    let peak = cgroup.read("memory.max_usage_in_bytes");
    eprintln!(
        "unread answers ({UNREAD_CLIENTS} clients for {UNREAD_FOR:?}): idle {:.1} MiB, peak \
         {:.1} MiB of {} MiB, VmHWM {}; {report} (200 = an answer computed and left unread); \
         Secret there before the flood ended: {reconciled_while_flooding}",
        mib(idle),
        mib(peak),
        LIMIT >> 20,
        vm_hwm(ctl.pid()),
    );

    assert!(ctl.alive(), "the controller died:\n{}", ctl.logs());
    assert_eq!(cgroup.oom_kills(), 0, "the OOM killer struck");
    assert_eq!(
        cgroup.read("memory.failcnt"),
        0,
        "the controller reached its limit (peak {peak} bytes)"
    );
    assert!(peak < LIMIT, "peak {peak} bytes is not below {LIMIT}");
    assert_eq!(report.answers_not_200_or_429, Vec::<String>::new());
    assert_eq!(
        report.health_failures, 0,
        "/healthz failed while answers went unread"
    );
    assert!(report.health_ok > 0, "/healthz was never asked");
    assert!(report.ok > 0, "no answer was ever computed: {report}");
    assert!(
        report.busy > 0,
        "unread answers never held the permits: {report}"
    );

    assert_eq!(ctl.get("/healthz").as_deref(), Some("ok"));
    cp.apply(&small_sealed(
        &cp,
        work.path(),
        "after",
        "created-after-the-unread-flood",
    ));
    wait_for(
        "the Secret of a SealedSecret created after the unread flood",
        SECS_60,
        || {
            (cp.secret_value("flood", "after", "token")? == "created-after-the-unread-flood")
                .then_some(())
        },
    );
    assert!(ctl.alive());
    assert_eq!(cgroup.oom_kills(), 0);
    let logs = ctl.logs();
    assert!(!logs.contains("AGE-SECRET-KEY"), "key material in the log");
    assert!(
        !logs.contains("created-during-the-unread-flood"),
        "plaintext in the log"
    );
    drop(ctl);
}

/// The figures of docs/benchmarks.md, one run: the peak with the default bound in a 128 MiB
/// cgroup; without the bound (`--max-bodies-in-flight 1000`) in a 1 GiB cgroup, where it can
/// show its real peak; and without the bound at 128 MiB, to see what the limit does to it.
/// Asserts nothing about the unbounded runs: it measures.
#[test]
#[ignore = "measurement for docs/benchmarks.md: cargo test -p sealant-e2e --test hostile_load -- --ignored --nocapture"]
fn figures_with_and_without_the_bound() {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let work = tempfile::tempdir().unwrap();
    let runs: [(&str, u64, &[&str], bool); 3] = [
        ("bounded (default 4), 128 MiB", LIMIT, &[], true),
        (
            "unbounded (1000), 1 GiB",
            1 << 30,
            &["--max-bodies-in-flight", "1000"],
            false,
        ),
        (
            "unbounded (1000), 128 MiB",
            LIMIT,
            &["--max-bodies-in-flight", "1000"],
            false,
        ),
    ];
    let mut body = None;
    for (i, (what, limit, extra, retry)) in runs.into_iter().enumerate() {
        let cgroup = MemoryCgroup::create(&format!("sealant-figures-{i}"), limit);
        let mut args = vec!["--reencrypt-rate", "10000"];
        args.extend_from_slice(extra);
        let mut ctl =
            Controller::spawn_in_cgroup(&cgroup, &sa, cp.dir.path(), &format!("m{i}"), &args);
        ctl.wait_ready();
        let body = body
            .get_or_insert_with(|| Arc::new(large_body(&cp, work.path())))
            .clone();
        let idle = cgroup.read("memory.usage_in_bytes");
        let started = Instant::now();
        let report = Flood::start(&ctl, body, CLIENTS, retry).finish();
        let took = started.elapsed();
        let hwm = if ctl.alive() {
            vm_hwm(ctl.pid())
        } else {
            "gone".into()
        };
        eprintln!(
            "FIGURES {what}: idle {:.1} MiB, peak (memory.max_usage_in_bytes) {:.1} MiB, \
             VmHWM {hwm}, failcnt {}, oom_kill {}, alive {}, {took:.1?}; {report}",
            mib(idle),
            mib(cgroup.read("memory.max_usage_in_bytes")),
            cgroup.read("memory.failcnt"),
            cgroup.oom_kills(),
            ctl.alive(),
        );
        drop(ctl);
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The process's peak resident set, from /proc.
fn vm_hwm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map_or_else(|| "?".into(), |v| v.trim().to_owned())
}

fn cluster_recipient(cp: &ControlPlane, dir: &Path) -> String {
    wait_for("published recipients", SECS_60, || {
        let out = cp.seal(&["fetch-keys"], None, dir);
        out.status.success().then(|| text(&out).trim().to_owned())
    })
}

/// The heaviest body a client can send that the controller must work on in full: a valid
/// SealedSecret for this cluster holding 1,000,000 bytes of incompressible plaintext (under a
/// Secret's 1 MiB), padded with an annotation to [`BODY_BYTES`] of JSON (under the 2 MiB body
/// limit). Anyone can make one: sealing needs only the public key.
fn large_body(cp: &ControlPlane, dir: &Path) -> Vec<u8> {
    let recipient = cluster_recipient(cp, dir);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let plaintext: Vec<u8> = (0..1_000_000)
        .map(|_| {
            // xorshift64: the payload must not be a run of one byte.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: big, namespace: flood}}\ndata:\n  blob: {}\n",
        base64::engine::general_purpose::STANDARD.encode(&plaintext)
    );
    let sealed = ok(cp.seal(&["-r", &recipient, "-o", "json"], Some(&secret), dir));
    let mut object: serde_json::Value = serde_json::from_str(&sealed).unwrap();
    let unpadded = serde_json::to_vec(&object).unwrap().len();
    // The annotation's key, quotes and comma cost a few bytes more than its value.
    let key = "example.com/padding";
    let pad = BODY_BYTES - unpadded - key.len() - 40;
    object["metadata"]["annotations"] = serde_json::json!({ key: "p".repeat(pad) });
    let body = serde_json::to_vec(&object).unwrap();
    assert!(
        (1_900_000..=2 * 1024 * 1024).contains(&body.len()),
        "body is {} bytes",
        body.len()
    );
    body
}

/// A small SealedSecret in namespace `flood`, as YAML to apply.
fn small_sealed(cp: &ControlPlane, dir: &Path, name: &str, value: &str) -> String {
    let recipient = cluster_recipient(cp, dir);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: flood}}\nstringData: {{token: {value}}}\n"
    );
    ok(cp.seal(&["-r", &recipient], Some(&secret), dir))
}

/// What a flood's clients and the `/healthz` prober saw.
#[derive(Default, Debug)]
struct Report {
    /// Bodies answered 200 with the whole re-sealed SealedSecret.
    ok: usize,
    /// 429 answers (each followed by a retry).
    busy: usize,
    /// Connections closed with no status line: the server refused a body it did not read and
    /// closed while the client was still sending (RFC 9112 §9.6); retried.
    closed_unanswered: usize,
    /// Any other answer: none is expected.
    answers_not_200_or_429: Vec<String>,
    health_ok: usize,
    health_failures: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered 200, {} answers 429, {} closed unanswered, {} other; /healthz {} ok, {} failed",
            self.ok,
            self.busy,
            self.closed_unanswered,
            self.answers_not_200_or_429.len(),
            self.health_ok,
            self.health_failures
        )
    }
}

struct Flood {
    clients: Vec<thread::JoinHandle<Report>>,
    prober: thread::JoinHandle<Report>,
    done: Arc<AtomicBool>,
}

impl Flood {
    /// `clients` threads released at once, each POSTing `body` until it is answered 200 (at
    /// most [`TRIES`] times; once only unless `retry`), and one thread asking `/healthz` every
    /// 200 ms until they are done.
    fn start(ctl: &Controller, body: Arc<Vec<u8>>, clients: usize, retry: bool) -> Flood {
        Flood::start_with(ctl, body, clients, retry, client)
    }

    /// As [`Flood::start`], each thread running `client(port, body, expected, retry)`.
    fn start_with(
        ctl: &Controller,
        body: Arc<Vec<u8>>,
        clients: usize,
        retry: bool,
        client: fn(u16, &[u8], &serde_json::Value, bool) -> Report,
    ) -> Flood {
        let port = ctl.port;
        let done = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(clients));
        let start = Arc::new(Barrier::new(clients + 1));
        let expected: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expected = Arc::new(expected);
        let clients = (0..clients)
            .map(|_| {
                let (body, start, expected) = (body.clone(), start.clone(), expected.clone());
                let (running, done) = (running.clone(), done.clone());
                thread::spawn(move || {
                    start.wait();
                    let report = client(port, &body, &expected, retry);
                    if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                        done.store(true, Ordering::SeqCst);
                    }
                    report
                })
            })
            .collect();
        start.wait();
        let prober = {
            let done = done.clone();
            thread::spawn(move || {
                let mut report = Report::default();
                while !done.load(Ordering::SeqCst) {
                    match http(port, "GET /healthz", &[]) {
                        Ok((200, body)) if body == "ok" => report.health_ok += 1,
                        _ => report.health_failures += 1,
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                report
            })
        };
        Flood {
            clients,
            prober,
            done,
        }
    }

    fn finish(self) -> Report {
        let mut total = Report::default();
        for client in self.clients {
            let r = client.join().unwrap();
            total.ok += r.ok;
            total.busy += r.busy;
            total.closed_unanswered += r.closed_unanswered;
            total
                .answers_not_200_or_429
                .extend(r.answers_not_200_or_429);
        }
        let probes = self.prober.join().unwrap();
        total.health_ok = probes.health_ok;
        total.health_failures = probes.health_failures;
        total
    }
}

fn client(port: u16, body: &[u8], expected: &serde_json::Value, retry: bool) -> Report {
    let mut report = Report::default();
    for _ in 0..TRIES {
        match http(port, "POST /v1/reencrypt", body) {
            Ok((200, answer)) => {
                // Answered in full: the same object back (already sealed to the active key).
                let got: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                if got["spec"] == expected["spec"] && got["metadata"] == expected["metadata"] {
                    report.ok += 1;
                } else {
                    let head: String = answer.chars().take(200).collect();
                    report.answers_not_200_or_429.push(format!("200 {head}"));
                }
                return report;
            }
            Ok((429, _)) => report.busy += 1,
            Ok((status, answer)) => {
                let head: String = answer.chars().take(200).collect();
                report
                    .answers_not_200_or_429
                    .push(format!("{status} {head}"));
                return report;
            }
            Err(_) => report.closed_unanswered += 1,
        }
        if !retry {
            return report;
        }
        // Retry-After is 1 s; a little spread keeps the clients from moving in lockstep.
        thread::sleep(Duration::from_millis(1000 + jitter_ms()));
    }
    report
}

/// Until [`UNREAD_FOR`] has passed: POSTs `body`, reads the status line and no more; on 200
/// keeps the connection open, its answer unread, to the end; on 429 hangs up and tries again
/// after `Retry-After`.
fn unread_client(port: u16, body: &[u8], _: &serde_json::Value, _: bool) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let mut unread = Vec::new();
    while started.elapsed() < UNREAD_FOR {
        match status_only(port, body) {
            Ok((200, stream)) => {
                report.ok += 1;
                unread.push(stream);
                break;
            }
            Ok((429, _)) => report.busy += 1,
            Ok((status, _)) => report.answers_not_200_or_429.push(status.to_string()),
            Err(_) => report.closed_unanswered += 1,
        }
        thread::sleep(Duration::from_millis(1000 + jitter_ms()));
    }
    thread::sleep(UNREAD_FOR.saturating_sub(started.elapsed()));
    drop(unread);
    report
}

/// POSTs `body` to `/v1/reencrypt` and reads the status line only: (status, the connection).
fn status_only(port: u16, body: &[u8]) -> std::io::Result<(u16, TcpStream)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "POST /v1/reencrypt HTTP/1.1\r\nHost: controller\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone()?;
    let body = body.to_vec();
    let sender = thread::spawn(move || {
        // A refused body is never read: the write then fails, which is the refusal.
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut status = [0; 12];
    stream.read_exact(&mut status)?;
    let _ = sender.join();
    let status = String::from_utf8_lossy(&status);
    let code = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not a status line: {status}")))?;
    Ok((code, stream))
}

/// 0–499 ms, from the clock: no need for a random number crate.
fn jitter_ms() -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 500,
    )
}

/// One HTTP/1.1 request on its own connection, the body sent at once without waiting for the
/// server (as a hostile client would), while the answer is read: (status, body).
fn http(port: u16, request_line: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: controller\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone()?;
    let body = body.to_vec();
    let sender = thread::spawn(move || {
        // A refused body is never read: the write then fails, which is the refusal.
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = sender.join();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    match (status, read) {
        (Some(status), _) => {
            let body = answer
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .to_owned();
            Ok((status, body))
        }
        (None, Err(e)) => Err(e),
        (None, Ok(_)) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed with no status line",
        )),
    }
}
