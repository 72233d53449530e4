//! Reliability under load: an exit storm of 5,000 children, watches up to the
//! open-files limit, and an OOM storm in eight cgroups at once.
//!
//! The tests of this binary are serialized ([`common::serial`]): they fill
//! the process's fd table, count its fds, or spawn thousands of processes.

mod common;

use ctrmon::watch::{CgroupOom, Eventfd, Process, Psi};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::{leftover_cgroups, memory_v1, open_fds, serial, Kid, TestCgroup};
use ctrmon::{EventKind, ExitStatus, Monitor, WatchId};
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;

const STORM: usize = 5_000;

fn new_eventfd() -> rustix::io::Result<OwnedFd> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

#[test]
fn exit_storm_of_5000_children_each_delivered_once_with_its_pid_and_signal() {
    let _serial = serial();
    let fds_before = open_fds();
    let m: Monitor<usize> = Monitor::new().unwrap();

    let t = Instant::now();
    let mut kids = Vec::with_capacity(STORM);
    for i in 0..STORM {
        let kid = Kid::sleeper();
        m.watch(Process::pid(kid.pid()), i).unwrap();
        kids.push(kid);
    }
    let spawned = t.elapsed();
    assert_eq!(m.len(), STORM);

    let t = Instant::now();
    for kid in &kids {
        kid.kill();
    }
    let killed = t.elapsed();

    let t = Instant::now();
    let mut seen = vec![0u32; STORM];
    let mut delivered = 0usize;
    let mut waits = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered < STORM {
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {STORM} exits within 60 s ({} watches live)",
            m.len()
        );
        let n = m
            .wait(Some(Duration::from_secs(1)), |e| {
                let EventKind::Exited(x) = e.kind else {
                    panic!("expected only exits, got {e:?}");
                };
                let kid = &kids[*e.receiver];
                assert_eq!(x.pid, kid.pid(), "exit attributed to the wrong pid");
                assert_eq!(x.status, ExitStatus::Signal(9), "pid {}", x.pid);
                assert!(x.reaped && !x.oom_killed, "{x:?}");
                seen[*e.receiver] += 1;
            })
            .unwrap();
        delivered += n;
        waits += 1;
    }
    let collected = t.elapsed();

    let twice: Vec<usize> = (0..STORM).filter(|&i| seen[i] > 1).collect();
    let never: Vec<usize> = (0..STORM).filter(|&i| seen[i] == 0).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert!(never.is_empty(), "never delivered: {never:?}");
    assert_eq!(delivered, STORM);
    assert_eq!(m.len(), 0);
    // Nothing more is pending, and every child was reaped by the monitor.
    assert_eq!(
        m.wait(Some(Duration::from_millis(50)), |e| panic!("extra {e:?}"))
            .unwrap(),
        0
    );
    for kid in &kids {
        assert_eq!(kid.state(), common::KidState::Reaped, "pid {}", kid.pid());
    }
    drop(kids);
    drop(m);
    assert_eq!(open_fds(), fds_before, "fds left open after the storm");
    eprintln!(
        "exit storm: {STORM} children spawned and watched in {spawned:.2?}, killed in \
         {killed:.2?}, all exits delivered {collected:.2?} after the kills in {waits} waits"
    );
}

/// Opens eventfds and watches them until the fd table is full; returns how
/// many were added. Receivers are numbered from `next`.
fn fill_with_eventfd_watches(m: &Monitor<usize>, ids: &mut Vec<WatchId>) -> usize {
    let mut added = 0;
    loop {
        match new_eventfd() {
            Ok(fd) => {
                ids.push(m.watch(Eventfd::new(fd), ids.len()).unwrap());
                added += 1;
            }
            Err(Errno::MFILE) => return added,
            Err(e) => panic!("eventfd: {e}"),
        }
    }
}

/// Unwatches the last `k` eventfd watches, freeing exactly `k` fds.
fn free_fds(m: &Monitor<usize>, ids: &mut Vec<WatchId>, k: usize) {
    for _ in 0..k {
        let id = ids.pop().unwrap();
        assert_eq!(m.unwatch(id).unwrap(), ids.len());
    }
}

fn assert_fd_limit_error(e: &ctrmon::Error, names: &str) {
    let text = e.to_string();
    assert!(e.is_fd_limit(), "not an fd-limit error: {text}");
    assert_eq!(
        e.raw_os_error(),
        Some(Errno::MFILE.raw_os_error()),
        "{text}"
    );
    assert!(
        text.contains("open-files limit") && text.contains(names),
        "the message must say what happened and to what: {text}"
    );
}

#[test]
fn watches_up_to_the_open_files_limit() {
    let _serial = serial();
    let (soft, hard) = {
        let r = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        (r.current.unwrap_or(u64::MAX), r.maximum.unwrap_or(u64::MAX))
    };
    let fds_before = open_fds();
    let kid = Kid::sleeper();
    let cg = memory_v1().map(|root| TestCgroup::new(&root, "fdlimit"));
    let psi = std::path::Path::new("/proc/pressure/cpu");
    let trigger: ctrmon::PsiTrigger = "some 150000 2000000".parse().unwrap();
    let m: Monitor<usize> = Monitor::new().unwrap();

    // The first two watches keep a writer (a dup) so that they can be
    // signalled once the table is full.
    let mut ids = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..2 {
        let fd = new_eventfd().unwrap();
        writers.push(rustix::io::dup(&fd).unwrap());
        ids.push(m.watch(Eventfd::new(fd), ids.len()).unwrap());
    }
    let t = Instant::now();
    fill_with_eventfd_watches(&m, &mut ids);
    let filled = t.elapsed();
    let total = ids.len();
    assert!(
        total as u64 + 16 >= soft.min(hard) - fds_before.len() as u64,
        "only {total} watches with a limit of {soft}"
    );
    assert_eq!(m.len(), total);

    // At the limit, each kind of watch that opens an fd fails clearly, and
    // nothing is added.
    let e = m.watch(Process::pid(kid.pid()), usize::MAX).unwrap_err();
    assert_fd_limit_error(&e, &format!("pid {}", kid.pid()));
    if let Some(cg) = &cg {
        let e = m.watch(CgroupOom::dir(&cg.path), usize::MAX).unwrap_err();
        assert_fd_limit_error(&e, &cg.path.display().to_string());
    }
    if psi.exists() {
        let e = m.watch(Psi::new(psi, trigger), usize::MAX).unwrap_err();
        assert_fd_limit_error(&e, "/proc/pressure/cpu");
    }
    let e = Monitor::<()>::new().unwrap_err();
    assert!(e.is_fd_limit(), "{e}");
    assert!(e.to_string().contains("open-files limit"), "{e}");
    assert_eq!(m.len(), total);

    // Existing watches keep working.
    rustix::io::write(&writers[0], &1u64.to_ne_bytes()).unwrap();
    rustix::io::write(&writers[1], &7u64.to_ne_bytes()).unwrap();
    let mut got = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "signals lost at the limit: {got:?}"
        );
        m.wait(Some(Duration::from_millis(500)), |e| {
            let EventKind::Signaled { count } = e.kind else {
                panic!("{e:?}")
            };
            assert_eq!(e.id, ids[*e.receiver]);
            assert!(got.insert(*e.receiver, count).is_none(), "twice: {e:?}");
        })
        .unwrap();
    }
    assert_eq!(got, HashMap::from([(0, 1), (1, 7)]));

    // Freeing one fd lets a pid watch (one fd) succeed; it still works.
    free_fds(&m, &mut ids, 1);
    let pid_watch = m.watch(Process::pid(kid.pid()), usize::MAX).unwrap();
    assert_eq!(m.unwatch(pid_watch).unwrap(), usize::MAX);
    // Unwatching closed its pidfd: exactly one fd is free again.
    assert_eq!(fill_with_eventfd_watches(&m, &mut ids), 1);
    // Freeing more lets new eventfd watches in again, exactly as many.
    free_fds(&m, &mut ids, 10);
    assert_eq!(fill_with_eventfd_watches(&m, &mut ids), 10);
    assert_eq!(m.len(), total);

    // A cgroup OOM watch needs a few fds at once. With 0, 1, 2, ... free it
    // fails with EMFILE and leaks nothing (exactly k fds are free again
    // afterwards), until it fits.
    let mut fits_at = None;
    if let Some(cg) = &cg {
        for k in 0..=8 {
            free_fds(&m, &mut ids, k);
            match m.watch(CgroupOom::dir(&cg.path), usize::MAX) {
                Ok(id) => {
                    assert_eq!(m.unwatch(id.id()).unwrap(), usize::MAX);
                    fits_at = Some(k);
                    assert_eq!(
                        fill_with_eventfd_watches(&m, &mut ids),
                        k,
                        "leak on success"
                    );
                    break;
                }
                Err(e) => {
                    assert_fd_limit_error(&e, &cg.path.display().to_string());
                    let free = fill_with_eventfd_watches(&m, &mut ids);
                    assert_eq!(free, k, "a failed watch with {k} fds free leaked fds");
                }
            }
        }
        assert!(fits_at.is_some(), "a cgroup OOM watch never fit in 8 fds");
    }
    assert_eq!(m.len(), total);

    drop(m);
    drop(writers);
    drop(kid);
    drop(cg);
    assert_eq!(open_fds(), fds_before, "fds left open");
    if let Some(root) = memory_v1() {
        assert!(leftover_cgroups(&root).is_empty());
    }
    eprintln!(
        "fd limit: nofile {soft}/{hard}, {total} eventfd watches in {filled:.2?}; a v1 OOM \
         watch fits once {fits_at:?} fds are free"
    );
}

/// One cgroup of the OOM storm.
struct StormCgroup {
    cg: TestCgroup,
    watch: WatchId,
    /// Hogs started at once per round.
    parallel: usize,
    rounds_left: usize,
    live: usize,
    hogs: Vec<Kid>,
    started: u64,
    /// Sum of reported `oom_kill` increases.
    reported_kills: u64,
    exits: u64,
    oom_killed_exits: u64,
    removed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recv {
    Cgroup(usize),
    Hog(usize, i32),
}

const CGROUPS: usize = 8;
const ROUNDS: usize = 5;

fn start_round(m: &Monitor<Recv>, i: usize, c: &mut StormCgroup) {
    c.rounds_left -= 1;
    for _ in 0..c.parallel {
        let hog = c.cg.memory_hog();
        m.watch(
            Process::pid(hog.pid()).oom_watch(c.watch),
            Recv::Hog(i, hog.pid()),
        )
        .unwrap();
        c.hogs.push(hog);
        c.live += 1;
        c.started += 1;
    }
}

#[test]
fn oom_storm_in_8_cgroups_every_kill_accounted_to_its_own_cgroup() {
    let _serial = serial();
    let Some(root) = memory_v1() else { return };
    let m: Monitor<Recv> = Monitor::new().unwrap();
    let mut cgs: Vec<StormCgroup> = (0..CGROUPS)
        .map(|i| {
            let cg = TestCgroup::new(&root, &format!("oomstorm{i}"));
            cg.set("memory.limit_in_bytes", "33554432");
            let watch = m
                .watch(CgroupOom::dir(&cg.path), Recv::Cgroup(i))
                .unwrap()
                .id();
            StormCgroup {
                cg,
                watch,
                // Different numbers of kills per cgroup, so that a kill
                // counted in the wrong cgroup shows up as a mismatch.
                parallel: 1 + i % 3,
                rounds_left: ROUNDS,
                live: 0,
                hogs: Vec::new(),
                started: 0,
                reported_kills: 0,
                exits: 0,
                oom_killed_exits: 0,
                removed: 0,
            }
        })
        .collect();

    let t = Instant::now();
    for (i, c) in cgs.iter_mut().enumerate() {
        start_round(&m, i, c);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut order_violations = Vec::new();
    while cgs.iter().any(|c| c.live > 0 || c.rounds_left > 0) {
        assert!(
            Instant::now() < deadline,
            "OOM storm did not finish in 90 s"
        );
        let mut events = Vec::new();
        m.wait(Some(Duration::from_millis(200)), |e| {
            events.push(e.cloned())
        })
        .unwrap();
        for e in events {
            match (*e.receiver, &e.kind) {
                (Recv::Cgroup(i), EventKind::Memory(d)) => {
                    assert_eq!(e.id, cgs[i].watch, "{e:?}");
                    cgs[i].reported_kills += d.oom_kill;
                }
                (Recv::Hog(i, pid), EventKind::Exited(x)) => {
                    let c = &mut cgs[i];
                    assert_eq!(x.pid, pid, "{e:?}");
                    assert_eq!(x.status, ExitStatus::Signal(9), "{e:?}");
                    c.exits += 1;
                    c.live -= 1;
                    if x.oom_killed {
                        c.oom_killed_exits += 1;
                    }
                    // OOM before exit: every kill of this cgroup so far has
                    // been reported by the time an OOM-killed exit arrives.
                    if c.oom_killed_exits > c.reported_kills {
                        order_violations.push(format!("{e:?}"));
                    }
                    if c.live == 0 && c.rounds_left > 0 {
                        start_round(&m, i, c);
                    }
                }
                _ => panic!("unexpected event {e:?}"),
            }
        }
    }
    let took = t.elapsed();
    assert!(order_violations.is_empty(), "{order_violations:?}");

    let mut table = Vec::new();
    for (i, c) in cgs.iter().enumerate() {
        let kernel = c.cg.counter("memory.oom_control", "oom_kill");
        table.push((i, c.started, kernel, c.reported_kills, c.oom_killed_exits));
        assert_eq!(
            c.reported_kills, kernel,
            "cgroup {i}: reported oom_kill increases != the kernel's counter"
        );
        assert_eq!(
            c.oom_killed_exits, kernel,
            "cgroup {i}: exits marked oom_killed != the kernel's kills"
        );
        assert_eq!(c.exits, c.started);
        // Every hog grows without bound: each one dies by the OOM killer.
        assert_eq!(kernel, c.started, "cgroup {i}: a hog died otherwise");
    }

    // Removing the cgroups ends their watches, each exactly once, with no
    // late kill reported.
    for c in &mut cgs {
        for hog in &c.hogs {
            assert_eq!(hog.state(), common::KidState::Reaped);
        }
        c.cg.remove();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.is_empty() {
        assert!(Instant::now() < deadline, "removals not reported");
        m.wait(Some(Duration::from_millis(200)), |e| {
            match (*e.receiver, e.kind) {
                (Recv::Cgroup(i), EventKind::Removed) => cgs[i].removed += 1,
                (Recv::Cgroup(i), EventKind::Memory(d)) => cgs[i].reported_kills += d.oom_kill,
                (r, k) => panic!("unexpected {r:?} {k:?}"),
            }
        })
        .unwrap();
    }
    for (i, c) in cgs.iter().enumerate() {
        assert_eq!(c.removed, 1, "cgroup {i}");
        assert_eq!(
            c.reported_kills, c.started,
            "cgroup {i}: a false kill on removal"
        );
    }
    drop(cgs);
    assert!(leftover_cgroups(&root).is_empty());
    let total: u64 = table.iter().map(|r| r.2).sum();
    eprintln!(
        "OOM storm: {CGROUPS} cgroups, {total} OOM kills in {took:.2?}; (cgroup, hogs, kernel \
         oom_kill, reported, exits marked) = {table:?}"
    );
}
