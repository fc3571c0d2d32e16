//! Memory under hostile load (security issue §5): the real `seal-controller`, as the deploy/
//! ServiceAccount on a local Kubernetes 1.20 control plane, held to the Deployment's 128 MiB
//! memory limit in a cgroup v1 memory cgroup, while 100 clients at once each send a ~2 MB
//! SealedSecret to `/v1/reencrypt` (retrying after `Retry-After` when refused). It must not be
//! OOM-killed or even touch its limit, must keep answering `/healthz`, and must keep
//! reconciling. Needs root (it makes the cgroup). The figures go to docs/benchmarks.md, not
//! into assertions: see `figures_with_and_without_the_bound`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use sealant_e2e::flood::{
    CLIENTS, Flood, Target, UNREAD_FOR, large_body, mib, small_sealed, unread_client, vm_hwm,
};
use sealant_e2e::{ControlPlane, Controller, MemoryCgroup, wait_for};

/// The Deployment's memory limit (deploy/deployment.yaml).
const LIMIT: u64 = 128 * 1024 * 1024;
const SECS_60: Duration = Duration::from_secs(60);
/// Clients that leave their answers unread.
const UNREAD_CLIENTS: usize = 200;

/// A control plane with deploy/ and the namespace `flood`; the controller, as the deploy/
/// ServiceAccount, in the memory cgroup `cgroup` of [`LIMIT`], its rate limit raised out of
/// the way (the body bound alone must hold the memory); and a ~2 MB body sealed to its key.
/// Fields drop in this order: the controller leaves its cgroup before the cgroup goes, and
/// the control plane goes last.
struct UnderLoad {
    ctl: Controller,
    body: Arc<Vec<u8>>,
    work: tempfile::TempDir,
    cgroup: MemoryCgroup,
    cp: ControlPlane,
}

fn under_load(cgroup: &str, identity: &str) -> UnderLoad {
    let cp = ControlPlane::start();
    cp.install();
    let sa = cp.service_account_kubeconfig();
    let cgroup = MemoryCgroup::create(cgroup, LIMIT);
    let ctl = Controller::spawn_in_cgroup(
        &cgroup,
        &sa,
        cp.dir.path(),
        identity,
        &["--reencrypt-rate", "10000"],
    );
    ctl.wait_ready();
    let work = tempfile::tempdir().unwrap();
    let body = Arc::new(large_body(&cp, work.path()));
    cp.kubectl_ok(&["create", "namespace", "flood"]);
    UnderLoad {
        ctl,
        body,
        work,
        cgroup,
        cp,
    }
}

/// Applies the SealedSecret `flood/name` holding `value` and waits (`what`) for its Secret.
fn secret_appears(cp: &ControlPlane, work: &Path, name: &str, value: &str, what: &str) {
    cp.apply(&small_sealed(cp, work, name, value));
    wait_for(what, SECS_60, || {
        (cp.secret_value("flood", name, "token")? == value).then_some(())
    });
}

/// The controller lived through the flood without touching its memory limit (peak `peak`).
#[track_caller]
fn assert_inside_the_limit(ctl: &mut Controller, cgroup: &MemoryCgroup, peak: u64) {
    assert!(ctl.alive(), "the controller died:\n{}", ctl.logs());
    assert_eq!(cgroup.oom_kills(), 0, "the OOM killer struck");
    assert_eq!(
        cgroup.read("memory.failcnt"),
        0,
        "the controller reached its limit (peak {peak} bytes)"
    );
    assert!(peak < LIMIT, "peak {peak} bytes is not below {LIMIT}");
}

/// After the flood the controller is still healthy and still reconciling (the SealedSecret
/// `flood/after` holding `after` becomes a Secret), and its log holds no key and not the
/// plaintext `during`.
#[track_caller]
fn assert_working_after(load: &mut UnderLoad, after: &str, what: &str, during: &str) {
    let UnderLoad {
        cp,
        cgroup,
        ctl,
        work,
        ..
    } = load;
    assert_eq!(ctl.get("/healthz").as_deref(), Some("ok"));
    secret_appears(cp, work.path(), "after", after, what);
    assert!(ctl.alive());
    assert_eq!(cgroup.oom_kills(), 0);
    let logs = ctl.logs();
    assert!(!logs.contains("AGE-SECRET-KEY"), "key material in the log");
    assert!(!logs.contains(during), "plaintext in the log");
}

#[test]
fn a_flood_of_large_bodies_stays_inside_128_mib_and_the_controller_keeps_working() {
    let mut load = under_load("sealant-hostile-load", "flood");

    let flood = Flood::start(
        &Target::direct(load.ctl.port),
        load.body.clone(),
        CLIENTS,
        true,
    );
    // Created while the flood is on: it must still become a Secret.
    thread::sleep(Duration::from_secs(1));
    let created_during = !flood.done.load(Ordering::SeqCst);
    secret_appears(
        &load.cp,
        load.work.path(),
        "during",
        "created-during-the-flood",
        "the Secret of a SealedSecret created during the flood",
    );
    let reconciled_while_flooding = !flood.done.load(Ordering::SeqCst);
    let report = flood.finish();
    let peak = load.cgroup.read("memory.max_usage_in_bytes");
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
    assert_inside_the_limit(&mut load.ctl, &load.cgroup, peak);
    report.assert_answered_while_healthy("during the flood");
    // Refused bodies were sent again and every one was answered in full in the end.
    assert_eq!(report.ok, CLIENTS, "{report}");
    assert!(report.busy > 0, "the bound never refused a body: {report}");

    assert_working_after(
        &mut load,
        "created-after-the-flood",
        "the Secret of a SealedSecret created after the flood",
        "created-during-the-flood",
    );
}

/// Clients that send the same ~2 MB bodies and never read the answers (only their status
/// line): each unread answer is a body's worth of memory the client controls. The permits
/// stay with the unread answers until the write deadline cuts them, so however many clients
/// come, at most `--max-bodies-in-flight` answers wait unread.
#[test]
fn answers_never_read_stay_inside_128_mib_and_the_controller_keeps_working() {
    let mut load = under_load("sealant-unread-answers", "unread");
    let idle = load.cgroup.read("memory.usage_in_bytes");

    let flood = Flood::start_with(
        &Target::direct(load.ctl.port),
        load.body.clone(),
        UNREAD_CLIENTS,
        true,
        unread_client,
    );
    thread::sleep(Duration::from_secs(1));
    secret_appears(
        &load.cp,
        load.work.path(),
        "during",
        "created-during-the-unread-flood",
        "the Secret of a SealedSecret created while answers go unread",
    );
    let reconciled_while_flooding = !flood.done.load(Ordering::SeqCst);
    let report = flood.finish();
    let peak = load.cgroup.read("memory.max_usage_in_bytes");
    eprintln!(
        "unread answers ({UNREAD_CLIENTS} clients for {UNREAD_FOR:?}): idle {:.1} MiB, peak \
         {:.1} MiB of {} MiB, VmHWM {}; {report} (200 = an answer computed and left unread); \
         Secret there before the flood ended: {reconciled_while_flooding}",
        mib(idle),
        mib(peak),
        LIMIT >> 20,
        vm_hwm(load.ctl.pid()),
    );

    assert_inside_the_limit(&mut load.ctl, &load.cgroup, peak);
    report.assert_answered_while_healthy("while answers went unread");
    assert!(report.ok > 0, "no answer was ever computed: {report}");
    assert!(
        report.busy > 0,
        "unread answers never held the permits: {report}"
    );

    assert_working_after(
        &mut load,
        "created-after-the-unread-flood",
        "the Secret of a SealedSecret created after the unread flood",
        "created-during-the-unread-flood",
    );
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
        let report = Flood::start(&Target::direct(ctl.port), body, CLIENTS, retry).finish();
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
