//! The hostile-load attack of the security issue (§5): many clients at once, each sending the
//! heaviest body the controller must work on in full to `/v1/reencrypt`, retrying after
//! `Retry-After`, while `/healthz` is asked every 200 ms. Aimed at a [`Target`]: the
//! controller's own port (tests/hostile_load.rs) or the API server's service proxy behind
//! `kubectl proxy` (tests/node.rs). Plain HTTP/1.1 on loopback, threads, no runtime.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::{ControlPlane, ok, text, wait_for};

/// Clients of one flood.
pub const CLIENTS: usize = 100;
/// Each body: a SealedSecret holding ~1 MB of plaintext, padded with an annotation to this.
pub const BODY_BYTES: usize = 2_000_000;
/// How often one client tries before giving up (it waits `Retry-After` between tries).
const TRIES: usize = 300;
const SECS_60: Duration = Duration::from_secs(60);
/// How long each [`unread_client`] keeps trying and keeps what it got: past the controller's
/// 30 s write deadline, so unread answers are given up on and others take their permits.
pub const UNREAD_FOR: Duration = Duration::from_secs(45);

/// Where a flood's requests go: a plain-HTTP port on loopback and the path the controller's
/// API is under there (empty for the controller itself).
#[derive(Clone, Debug)]
pub struct Target {
    pub port: u16,
    pub prefix: String,
}

impl Target {
    /// The controller's own HTTP port.
    pub fn direct(port: u16) -> Target {
        Target {
            port,
            prefix: String::new(),
        }
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The process's peak resident set, from /proc.
pub fn vm_hwm(pid: u32) -> String {
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
pub fn large_body(cp: &ControlPlane, dir: &Path) -> Vec<u8> {
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
pub fn small_sealed(cp: &ControlPlane, dir: &Path, name: &str, value: &str) -> String {
    let recipient = cluster_recipient(cp, dir);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: flood}}\nstringData: {{token: {value}}}\n"
    );
    ok(cp.seal(&["-r", &recipient], Some(&secret), dir))
}

/// What a flood's clients and the `/healthz` prober saw.
#[derive(Default, Debug)]
pub struct Report {
    /// Bodies answered 200 with the whole re-sealed SealedSecret.
    pub ok: usize,
    /// 429 answers (each followed by a retry).
    pub busy: usize,
    /// Connections closed with no status line: the server refused a body it did not read and
    /// closed while the client was still sending (RFC 9112 §9.6); retried.
    pub closed_unanswered: usize,
    /// Through the API server's service proxy, the same refusal as `closed_unanswered`: the
    /// Pod answered before reading the body and closed, the API server's exchange with it
    /// failed, and it answered 500 "error trying to reach service: …" instead of passing the
    /// Pod's 429 on; retried. The causes it gave ("EOF", "broken pipe", …; or a kept-alive
    /// connection the Pod had closed: "server closed idle connection").
    pub cut_at_proxy: usize,
    pub cut_at_proxy_causes: std::collections::BTreeSet<String>,
    /// Any other answer: none is expected.
    pub answers_not_200_or_429: Vec<String>,
    pub health_ok: usize,
    pub health_failures: usize,
}

impl Report {
    /// Every answer was a 200 or a 429, and `/healthz`, asked all along, never failed
    /// (`during`: when, for the message).
    #[track_caller]
    pub fn assert_answered_while_healthy(&self, during: &str) {
        assert_eq!(self.answers_not_200_or_429, Vec::<String>::new());
        assert_eq!(self.health_failures, 0, "/healthz failed {during}");
        assert!(self.health_ok > 0, "/healthz was never asked");
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered 200, {} answers 429, {} closed unanswered, {} cut at the service proxy \
             {:?}, {} other; /healthz {} ok, {} failed",
            self.ok,
            self.busy,
            self.closed_unanswered,
            self.cut_at_proxy,
            self.cut_at_proxy_causes,
            self.answers_not_200_or_429.len(),
            self.health_ok,
            self.health_failures
        )
    }
}

pub struct Flood {
    clients: Vec<thread::JoinHandle<Report>>,
    prober: thread::JoinHandle<Report>,
    /// Set once every client is done.
    pub done: Arc<AtomicBool>,
}

impl Flood {
    /// `clients` threads released at once, each POSTing `body` until it is answered 200 (at
    /// most [`TRIES`] times; once only unless `retry`), and one thread asking `/healthz` every
    /// 200 ms until they are done.
    pub fn start(target: &Target, body: Arc<Vec<u8>>, clients: usize, retry: bool) -> Flood {
        Flood::start_with(target, body, clients, retry, client)
    }

    /// As [`Flood::start`], each thread running `client(target, body, expected, retry)`.
    pub fn start_with(
        target: &Target,
        body: Arc<Vec<u8>>,
        clients: usize,
        retry: bool,
        client: fn(&Target, &[u8], &serde_json::Value, bool) -> Report,
    ) -> Flood {
        let done = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(clients));
        let start = Arc::new(Barrier::new(clients + 1));
        let expected: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expected = Arc::new(expected);
        let clients = (0..clients)
            .map(|_| {
                let (body, start, expected) = (body.clone(), start.clone(), expected.clone());
                let target = target.clone();
                let (running, done) = (running.clone(), done.clone());
                thread::spawn(move || {
                    start.wait();
                    let report = client(&target, &body, &expected, retry);
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
            let target = target.clone();
            thread::spawn(move || {
                let mut report = Report::default();
                while !done.load(Ordering::SeqCst) {
                    match http(&target, "GET", "/healthz", &[]) {
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

    pub fn finish(self) -> Report {
        let mut total = Report::default();
        for client in self.clients {
            let r = client.join().unwrap();
            total.ok += r.ok;
            total.busy += r.busy;
            total.closed_unanswered += r.closed_unanswered;
            total.cut_at_proxy += r.cut_at_proxy;
            total.cut_at_proxy_causes.extend(r.cut_at_proxy_causes);
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

pub fn client(target: &Target, body: &[u8], expected: &serde_json::Value, retry: bool) -> Report {
    let mut report = Report::default();
    for _ in 0..TRIES {
        match http(target, "POST", "/v1/reencrypt", body) {
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
            Ok((500, answer)) if cut_at_proxy(&answer).is_some() => {
                report.cut_at_proxy += 1;
                report.cut_at_proxy_causes.extend(cut_at_proxy(&answer));
            }
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

/// The cause, if `answer` is the API server's Status for an exchange the Pod closed under it
/// ("error trying to reach service: [readfrom …: write tcp …: ]CAUSE"): the Pod hung up
/// on a body it refused unread. A Pod that is down or unreachable ("connection refused",
/// "i/o timeout") is not this.
fn cut_at_proxy(answer: &str) -> Option<String> {
    const CLOSED_BY_THE_POD: [&str; 5] = [
        "EOF",
        "broken pipe",
        "connection reset by peer",
        "use of closed network connection",
        // "http: server closed idle connection": a kept-alive connection the Pod had closed.
        "server closed idle connection",
    ];
    let status: serde_json::Value = serde_json::from_str(answer).ok()?;
    let rest = status["message"]
        .as_str()?
        .strip_prefix("error trying to reach service: ")?;
    let cause = rest.rsplit(": ").next()?;
    CLOSED_BY_THE_POD.contains(&cause).then(|| cause.to_owned())
}

/// Until [`UNREAD_FOR`] has passed: POSTs `body`, reads the status line and no more; on 200
/// keeps the connection open, its answer unread, to the end; on 429 hangs up and tries again
/// after `Retry-After`.
pub fn unread_client(target: &Target, body: &[u8], _: &serde_json::Value, _: bool) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let mut unread = Vec::new();
    while started.elapsed() < UNREAD_FOR {
        match status_only(target, body) {
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
fn status_only(target: &Target, body: &[u8]) -> std::io::Result<(u16, TcpStream)> {
    let mut stream = TcpStream::connect(("127.0.0.1", target.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = request_head(target, "POST", "/v1/reencrypt", body.len());
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
pub fn http(
    target: &Target,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", target.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = request_head(target, method, path, body.len());
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

/// The request line and headers of one request to `path` of the controller's API at `target`.
fn request_head(target: &Target, method: &str, path: &str, length: usize) -> String {
    format!(
        "{method} {}{path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n",
        target.prefix
    )
}
