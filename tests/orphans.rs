//! The orphan reaper under a subreaper, with real processes.
//!
//! This binary runs its own `main` (no libtest harness): SIGCHLD must be
//! blocked before any thread starts, and the process becomes a subreaper,
//! which no other test binary should be. It re-runs itself as the helper
//! processes: `parent` (starts orphans, exits with a given code without
//! reaping them) and `orphan` (sleeps, then exits with a code or kills
//! itself).

mod common;

use ctrmon::watch::{Orphans, Process};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{helper, helper_role, my_zombies, run_scenarios};
use ctrmon::reaper::{become_subreaper, block_sigchld, Orphan, OrphanReaper};
use ctrmon::{EventKind, ExitStatus, Monitor};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{
    getpid, kill_process, pidfd_open, waitid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions,
};

fn main() -> ExitCode {
    if let Some(role) = helper_role() {
        run_helper(&role);
    }
    // Before any thread: every thread started from here on inherits it.
    block_sigchld().expect("block SIGCHLD");
    become_subreaper().expect("become a subreaper");
    let code = run_scenarios(&[
        (
            "a_thread_with_sigchld_unblocked_is_refused",
            unblocked_thread_refused,
        ),
        (
            "a_hold_keeps_a_child_spawned_but_not_yet_watched",
            hold_keeps_child,
        ),
        ("a_bounded_reap_goes_on_at_the_next_call", bounded_reap),
        ("one_orphan_reaper_per_monitor_until_unwatched", one_reaper),
        ("storm_orphans_spread_over_300ms", || storm(200, 300, 1)),
        ("storm_orphans_within_10ms", || storm(200, 10, 2)),
        ("monitor_storm_shared_wait", || {
            storm_in_monitor(200, 300, 3, false)
        }),
        ("monitor_storm_owned_wait", || {
            storm_in_monitor(200, 300, 4, true)
        }),
        ("monitor_storm_shared_wait_within_10ms", || {
            storm_in_monitor(200, 10, 5, false)
        }),
    ]);
    // Whatever a failed scenario left: reap it, so no zombie outlives us
    // (they would be re-parented and reaped anyway; be tidy).
    while let Ok(Some(_)) = waitid(WaitId::All, WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {}
    code
}

// ---------------------------------------------------------------------------
// Helper processes.

fn run_helper(role: &str) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ms = |s: &str| Duration::from_millis(s.parse().expect("milliseconds"));
    match role {
        // orphan <delay ms> <code | "kill">
        "orphan" => {
            std::thread::sleep(ms(&args[0]));
            if args[1] == "kill" {
                let _ = kill_process(getpid(), Signal::KILL);
            }
            std::process::exit(args[1].parse().expect("code"))
        }
        // parent <delay ms> <code> [<orphan delay ms>:<orphan status>]...
        // Prints "<pid> <status> <zombie|running>" for each orphan (its
        // state when the parent exits), then exits without reaping them.
        "parent" => {
            let mut orphans = Vec::new();
            // Never waited for, on purpose: they are the orphans.
            #[allow(clippy::zombie_processes)]
            for spec in &args[2..] {
                let (delay, status) = spec.split_once(':').expect("delay:status");
                let child = helper("orphan", &[delay.into(), status.into()])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn orphan");
                orphans.push((child.id() as i32, status.to_string()));
                // Dropping a `Child` neither waits nor kills.
            }
            std::thread::sleep(ms(&args[0]));
            let mut out = String::new();
            for (pid, status) in &orphans {
                let state = match waitid(
                    WaitId::Pid(Pid::from_raw(*pid).unwrap()),
                    WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
                ) {
                    Ok(Some(_)) => "zombie",
                    _ => "running",
                };
                out.push_str(&format!("{pid} {status} {state}\n"));
            }
            print!("{out}");
            std::process::exit(args[1].parse().expect("code"))
        }
        other => panic!("unknown helper role {other}"),
    }
}

// ---------------------------------------------------------------------------

/// A small deterministic generator (xorshift), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn status_arg(s: ExitStatus) -> String {
    match s {
        ExitStatus::Code(c) => c.to_string(),
        ExitStatus::Signal(9) => "kill".into(),
        other => panic!("no helper for {other:?}"),
    }
}

fn parse_status(s: &str) -> ExitStatus {
    if s == "kill" {
        ExitStatus::Signal(9)
    } else {
        ExitStatus::Code(s.parse().unwrap())
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, ms: i64) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let t = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&t)).unwrap() == 1
}

fn unblocked_thread_refused() {
    let set = ctrmon::signal::SignalSet::new(&[Signal::CHILD]).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        ctrmon::signal::unblock(&set).unwrap();
        // "/proc/thread-self" links to "<pid>/task/<tid>".
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        ready_tx
            .send(link.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap();
        let _ = done_rx.recv();
    });
    let tid = ready_rx.recv().unwrap();
    let err = OrphanReaper::new().unwrap_err();
    done_tx.send(()).unwrap();
    t.join().unwrap();
    let text = err.to_string();
    assert!(text.contains(&format!("thread {tid}")), "{text}");
    assert!(text.contains("SIGCHLD is not blocked"), "{text}");
    // With that thread gone, every thread blocks it.
    OrphanReaper::new().unwrap();
}

fn hold_keeps_child() {
    let mut reaper = OrphanReaper::new().unwrap();
    let mut owned: Vec<i32> = Vec::new();
    let mut orphans: Vec<Orphan> = Vec::new();

    // Spawned under a hold; it exits before anyone watches it.
    let hold = reaper.hold();
    let child = helper("orphan", &["0".into(), "3".into()]).spawn().unwrap();
    let pid = child.id() as i32;
    let pidfd = pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).unwrap();
    assert!(wait_readable(rustix::fd::AsFd::as_fd(&pidfd), 10_000));
    assert!(
        wait_readable(rustix::fd::AsFd::as_fd(&reaper), 10_000),
        "SIGCHLD pending"
    );
    // Held: a scan reaps nothing, the child stays a zombie.
    let n = reaper
        .reap(|p| owned.contains(&p), |o| orphans.push(o))
        .unwrap();
    assert_eq!((n, orphans.len()), (0, 0));
    assert!(my_zombies().contains(&pid));
    // Now "watched", then released: the release makes the reaper look
    // again, and the scan leaves the watched child alone.
    owned.push(pid);
    drop(hold);
    assert!(
        wait_readable(rustix::fd::AsFd::as_fd(&reaper), 1_000),
        "SIGCHLD raised by the release"
    );
    let n = reaper
        .reap(|p| owned.contains(&p), |o| orphans.push(o))
        .unwrap();
    assert_eq!((n, orphans.len()), (0, 0));
    // Its owner reaps it with its real status.
    let st = waitid(
        WaitId::PidFd(rustix::fd::AsFd::as_fd(&pidfd)),
        WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_status(), Some(3));

    // A child nobody owns, no hold: an orphan, reaped with its status.
    let stray = helper("orphan", &["0".into(), "kill".into()])
        .spawn()
        .unwrap();
    let stray_pid = stray.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while orphans.is_empty() {
        assert!(Instant::now() < deadline, "the stray child was not reaped");
        wait_readable(rustix::fd::AsFd::as_fd(&reaper), 100);
        reaper
            .reap(|p| owned.contains(&p), |o| orphans.push(o))
            .unwrap();
    }
    assert_eq!(
        orphans,
        [Orphan {
            pid: stray_pid,
            status: ExitStatus::Signal(9)
        }]
    );
    drop((child, stray));
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

fn bounded_reap() {
    let mut reaper = OrphanReaper::new().unwrap();
    let kids: Vec<Child> = (0..5)
        .map(|_| helper("orphan", &["0".into(), "4".into()]).spawn().unwrap())
        .collect();
    let pids: Vec<i32> = kids.iter().map(|k| k.id() as i32).collect();
    // All five exited (zombies) before the first look.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| !my_zombies().contains(p)) {
        assert!(Instant::now() < deadline, "children did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::new();
    let mut calls = 0;
    while got.len() < 5 {
        assert!(
            wait_readable(rustix::fd::AsFd::as_fd(&reaper), 1_000),
            "readable while orphans remain"
        );
        let n = reaper.reap_at_most(2, |_| false, |o| got.push(o)).unwrap();
        assert!(n <= 2);
        calls += 1;
    }
    assert_eq!(calls, 3);
    let mut reaped: Vec<i32> = got.iter().map(|o| o.pid).collect();
    reaped.sort();
    let mut want = pids.clone();
    want.sort();
    assert_eq!(reaped, want);
    assert!(got.iter().all(|o| o.status == ExitStatus::Code(4)));
    drop(kids);
}

fn one_reaper() {
    let mut m: Monitor<&str> = Monitor::new().unwrap();
    let first = m.watch(Orphans, "first").unwrap();
    let err = m.watch(Orphans, "second").unwrap_err();
    assert!(err.to_string().contains("already reaps orphans"), "{err}");
    assert_eq!(m.unwatch(first).unwrap(), "first");
    let second = m.watch(Orphans, "second").unwrap();
    // It works: a stray child is reaped and reported on the new watch.
    let stray = helper("orphan", &["0".into(), "6".into()]).spawn().unwrap();
    let pid = stray.id() as i32;
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.is_none() {
        assert!(Instant::now() < deadline, "the stray child was not reaped");
        m.wait_mut(Some(Duration::from_millis(100)), |e, _| {
            if let EventKind::Orphan(o) = e.kind {
                got = Some((e.id, o));
            }
        })
        .unwrap();
    }
    assert_eq!(
        got,
        Some((
            second,
            Orphan {
                pid,
                status: ExitStatus::Code(6)
            }
        ))
    );
    drop(stray);
}

/// What the spawner learned about each parent it started.
struct Spawned {
    pid: i32,
    code: i32,
    child: Child,
}

/// Parents: (lifetime ms, exit code, orphans as (lifetime ms, status)).
type Plan = Vec<(u64, i32, Vec<(u64, ExitStatus)>)>;

/// `parents` parents, each leaving 1–3 orphans that exit before, at about
/// the same time as, or after it (parent lifetimes spread over
/// `spread_ms`; every tenth parent exits at once).
fn plan(parents: usize, spread_ms: u64, seed: u64) -> Plan {
    let seed = seed ^ (std::process::id() as u64) << 20 ^ 0x9e37_79b9;
    println!("storm: {parents} parents, spread {spread_ms} ms, seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut plan: Plan = Vec::new();
    for i in 0..parents {
        let delay = if i % 10 == 0 {
            0
        } else {
            rng.below(spread_ms + 1)
        };
        let code = 1 + (i % 40) as i32;
        let n = 1 + rng.below(3) as usize;
        let orphans: Vec<(u64, ExitStatus)> = (0..n)
            .map(|j| {
                let od = match rng.below(3) {
                    0 => delay.saturating_sub(5 + rng.below(60)),
                    1 => delay,
                    _ => delay + 5 + rng.below(200),
                };
                let st = if rng.below(5) == 0 {
                    ExitStatus::Signal(9)
                } else {
                    ExitStatus::Code(50 + j as i32)
                };
                (od, st)
            })
            .collect();
        plan.push((delay, code, orphans));
    }
    plan
}

/// Starts parent `i` of `plan` and watches it, under a hold: every tenth
/// waits 30 ms between spawn and watch (it exits at once, so its zombie
/// sits unwatched meanwhile). `watch` records the pid as owned, then
/// watches it.
fn spawn_parent(
    plan: &Plan,
    i: usize,
    hold: impl FnOnce() -> ctrmon::reaper::Hold,
    watch: impl FnOnce(i32) -> ctrmon::Result<ctrmon::WatchId>,
) -> Spawned {
    let (delay, code, orphans) = &plan[i];
    let mut args = vec![delay.to_string(), code.to_string()];
    args.extend(
        orphans
            .iter()
            .map(|(d, st)| format!("{d}:{}", status_arg(*st))),
    );
    let hold = hold();
    let child = helper("parent", &args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn parent");
    let pid = child.id() as i32;
    if i % 10 == 0 {
        std::thread::sleep(Duration::from_millis(30));
    }
    if let Err(e) = watch(pid) {
        panic!("watch parent {i} (pid {pid}): {e}");
    }
    drop(hold);
    Spawned {
        pid,
        code: *code,
        child,
    }
}

/// The standalone reaper beside a monitor: a second thread spawns and
/// watches the parents under holds, while this thread runs the loop (the
/// monitor for the watched children, then the reaper for the rest).
fn storm(parents: usize, spread_ms: u64, seed: u64) {
    let plan = plan(parents, spread_ms, seed);
    let monitor: Monitor<usize> = Monitor::new().unwrap();
    let mut reaper = OrphanReaper::new().unwrap();
    let holder = reaper.holder();
    // Pids whose status is someone else's: watched, not yet reaped by the
    // monitor. A count, because a pid reaped a moment ago may be reused.
    let owned: Mutex<HashMap<i32, u32>> = Mutex::new(HashMap::new());
    let spawned_all = AtomicBool::new(false);
    let mut exits: HashMap<usize, ExitStatus> = HashMap::new();
    let mut orphans: Vec<Orphan> = Vec::new();
    let mut passes = 0u32;

    let spawned: Vec<Spawned> = std::thread::scope(|s| {
        let spawner = s.spawn(|| {
            let out = (0..plan.len())
                .map(|i| {
                    spawn_parent(
                        &plan,
                        i,
                        || holder.hold(),
                        |pid| {
                            *owned.lock().unwrap().entry(pid).or_default() += 1;
                            monitor.watch(Process::pid(pid), i)
                        },
                    )
                })
                .collect();
            spawned_all.store(true, Ordering::SeqCst);
            out
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let expected_orphans: usize = plan.iter().map(|p| p.2.len()).sum();
        while !(spawned_all.load(Ordering::SeqCst)
            && exits.len() == parents
            && orphans.len() >= expected_orphans)
        {
            if spawner.is_finished() && !spawned_all.load(Ordering::SeqCst) {
                break; // It panicked: `join` below says why.
            }
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {parents} exits, {} of {expected_orphans} orphans",
                exits.len(),
                orphans.len()
            );
            let mut fds = [
                PollFd::new(&monitor, PollFlags::IN),
                PollFd::new(&reaper, PollFlags::IN),
            ];
            let t = Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            poll(&mut fds, Some(&t)).unwrap();
            // Watched children first (reaped through their pidfds), then
            // the rest: in one thread, so the two never reap at once.
            monitor
                .wait(Some(Duration::ZERO), |e| {
                    let EventKind::Exited(x) = e.kind else {
                        panic!("unexpected event {e:?}");
                    };
                    assert!(x.reaped, "{x:?}");
                    assert!(
                        exits.insert(*e.receiver, x.status).is_none(),
                        "twice: {x:?}"
                    );
                    let mut owned = owned.lock().unwrap();
                    let n = owned.get_mut(&x.pid).expect("an owned pid");
                    *n -= 1;
                    if *n == 0 {
                        owned.remove(&x.pid);
                    }
                })
                .unwrap();
            passes += 1;
            reaper
                .reap(
                    |pid| owned.lock().unwrap().contains_key(&pid),
                    |o| orphans.push(o),
                )
                .unwrap();
        }
        spawner.join().unwrap()
    });
    // A last look, a little later: nothing more may turn up.
    std::thread::sleep(Duration::from_millis(100));
    reaper.reap(|_| false, |o| orphans.push(o)).unwrap();
    verify(spawned, &exits, &orphans, passes);
}

/// The monitor reaping orphans itself (`Monitor::reap_orphans`), on the
/// shared path (a spawner thread watches while this one waits) or the
/// single-owner one (this thread spawns, then waits with `wait_mut`).
fn storm_in_monitor(parents: usize, spread_ms: u64, seed: u64, owner: bool) {
    const ORPHANS: usize = usize::MAX;
    let plan = plan(parents, spread_ms, seed);
    let mut monitor: Monitor<usize> = Monitor::new().unwrap();
    let orphan_watch = monitor.watch(Orphans, ORPHANS).unwrap();
    let exits: RefCell<HashMap<usize, ExitStatus>> = RefCell::default();
    let orphans: RefCell<Vec<Orphan>> = RefCell::default();
    let mut passes = 0u32;
    let expected_orphans: usize = plan.iter().map(|p| p.2.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut on_event = |e: ctrmon::Event<'_, usize>| match e.kind {
        EventKind::Exited(x) => {
            assert!(x.reaped, "{x:?}");
            assert!(
                exits.borrow_mut().insert(*e.receiver, x.status).is_none(),
                "twice: {x:?}"
            );
        }
        EventKind::Orphan(o) => {
            assert_eq!((*e.receiver, e.id), (ORPHANS, orphan_watch));
            orphans.borrow_mut().push(o);
        }
        _ => panic!("unexpected event {e:?}"),
    };
    let spawned: Vec<Spawned> = if owner {
        let spawned: Vec<Spawned> = (0..plan.len())
            .map(|i| {
                spawn_parent(
                    &plan,
                    i,
                    || monitor.hold_orphans(),
                    |pid| monitor.watch(Process::pid(pid), i),
                )
            })
            .collect();
        while exits.borrow().len() < parents || orphans.borrow().len() < expected_orphans {
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {parents} exits, {} of {expected_orphans} orphans",
                exits.borrow().len(),
                orphans.borrow().len()
            );
            passes += 1;
            monitor
                .wait_mut(Some(Duration::from_millis(100)), |e, _| on_event(e))
                .unwrap();
        }
        spawned
    } else {
        let spawned_all = AtomicBool::new(false);
        let m = &monitor;
        std::thread::scope(|s| {
            let spawner = s.spawn(|| {
                let out = (0..plan.len())
                    .map(|i| {
                        spawn_parent(
                            &plan,
                            i,
                            || m.hold_orphans(),
                            |pid| m.watch(Process::pid(pid), i),
                        )
                    })
                    .collect();
                spawned_all.store(true, Ordering::SeqCst);
                out
            });
            while !(spawned_all.load(Ordering::SeqCst)
                && exits.borrow().len() == parents
                && orphans.borrow().len() >= expected_orphans)
            {
                if spawner.is_finished() && !spawned_all.load(Ordering::SeqCst) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out: {} of {parents} exits, {} of {expected_orphans} orphans",
                    exits.borrow().len(),
                    orphans.borrow().len()
                );
                passes += 1;
                m.wait(Some(Duration::from_millis(100)), &mut on_event)
                    .unwrap();
            }
            spawner.join().unwrap()
        })
    };
    // A last look, a little later: nothing more may turn up.
    monitor
        .wait_mut(Some(Duration::from_millis(200)), |e, _| on_event(e))
        .unwrap();
    verify(spawned, &exits.borrow(), &orphans.borrow(), passes);
}

/// Every watched child's real status, each once; every orphan reaped once
/// with its status, nothing else reaped; no zombie left.
fn verify(
    spawned: Vec<Spawned>,
    exits: &HashMap<usize, ExitStatus>,
    orphans: &[Orphan],
    passes: u32,
) {
    assert_eq!(my_zombies(), Vec::<i32>::new(), "zombies left");
    let parents = spawned.len();
    for (i, sp) in spawned.iter().enumerate() {
        assert_eq!(
            exits.get(&i),
            Some(&ExitStatus::Code(sp.code)),
            "parent {i} (pid {})",
            sp.pid
        );
    }
    let mut expected: Vec<(i32, ExitStatus)> = Vec::new();
    let (mut before, mut after) = (0, 0);
    for mut sp in spawned {
        let mut text = String::new();
        sp.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            expected.push((f[0].parse().unwrap(), parse_status(f[1])));
            match f[2] {
                "zombie" => before += 1,
                _ => after += 1,
            }
        }
    }
    let mut got: Vec<(i32, ExitStatus)> = orphans.iter().map(|o| (o.pid, o.status)).collect();
    expected.sort_by_key(|e| (e.0, format!("{:?}", e.1)));
    got.sort_by_key(|e| (e.0, format!("{:?}", e.1)));
    assert_eq!(got.len(), expected.len(), "orphans reaped vs started");
    assert_eq!(got, expected);
    println!(
        "storm: {} orphans reaped ({before} exited before their parent, {after} after or with it), \
         {parents} exits, {passes} loop passes",
        got.len()
    );
    assert!(
        before > 0 && after > 0,
        "orphans on both sides of their parent's exit"
    );
}
