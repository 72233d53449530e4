//! A randomized soak: threads add and remove watches (short-lived children,
//! eventfds, v1 memory cgroups with OOM watches), children exit, get killed
//! or OOM-killed, cgroups are created and removed, while one thread waits.
//!
//! Fixed seed (a small LCG), bounded in time: about 10 s by default,
//! `CTRMON_SOAK_SECS=600` for a longer run, `CTRMON_SOAK_SEED=<n>` for
//! another sequence of operations. The thread interleaving is the kernel's,
//! so a run is repeatable in its operations, not in its timing.
//!
//! Invariants, checked after the run from what each side recorded:
//! - every watched pid's exit is delivered exactly once, with its own pid
//!   and status, unless `unwatch` returned `Ok` first, in which case nothing
//!   is ever delivered for it (`unwatch` failing means its exit was, or was
//!   being, delivered);
//! - no event for an id after `unwatch` returned `Ok`: each eventfd is
//!   written a huge value through a dup right after its unwatch, and no
//!   count that includes it may come out; every event's id and receiver
//!   belong to one registered watch;
//! - a cgroup watch ends exactly once with `Removed` (last) unless unwatched,
//!   and its reported `oom_kill` increases equal the kernel's counter;
//! - `len()` returns to zero and the process's open fds to what they were.

mod common;

use ctrmon::watch::{CgroupOom, Eventfd, Process};
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{leftover_cgroups, memory_v1, open_fds, Kid, TestCgroup};
use ctrmon::{EventKind, Exit, ExitStatus, Monitor, WatchId};
use rustix::event::{eventfd, EventfdFlags};

/// Written to an eventfd after its watch is gone: must never be reported.
const POISON: u64 = 1 << 40;
/// Live children per pid worker, to stay far from pid_max.
const MAX_LIVE_KIDS: usize = 48;
const MAX_LIVE_EVENTFDS: usize = 32;

/// Knuth's MMIX LCG; the high bits are good enough to pick operations.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Code(i32),
    /// Grows until the OOM killer stops it.
    OomKilled,
}

#[derive(Debug)]
enum Kind {
    Pid {
        pid: i32,
        expect: Expect,
        /// SIGKILLed by the test (so Signal(9) is a right answer too).
        killed: bool,
    },
    EventFd {
        /// Sum written before the unwatch.
        written: u64,
    },
    Cgroup {
        /// The kernel's `oom_kill` just before the rmdir.
        kernel_kills: u64,
    },
}

#[derive(Debug)]
struct Reg {
    id: WatchId,
    kind: Kind,
    /// `Some(true)`: unwatch returned Ok; `Some(false)`: it failed.
    unwatched: Option<bool>,
}

#[derive(Debug)]
enum What {
    Exit(Exit),
    Signaled(u64),
    MemoryKills(u64),
    Removed,
    Other(String),
}

#[derive(Debug)]
struct Delivered {
    seq: u64,
    tag: u64,
    id: WatchId,
    what: What,
}

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    children: AtomicU64,
    kills: AtomicU64,
    unwatch_ok: AtomicU64,
    unwatch_err: AtomicU64,
    eventfds: AtomicU64,
    signals: AtomicU64,
    cgroups: AtomicU64,
    hogs: AtomicU64,
}

struct Shared {
    m: Monitor<u64>,
    next_tag: AtomicU64,
    seq: AtomicU64,
    regs: Mutex<HashMap<u64, Reg>>,
    log: Mutex<Vec<Delivered>>,
    /// Tags whose final event has been delivered.
    finals: Mutex<HashSet<u64>>,
    stop: AtomicBool,
    counts: Counts,
}

impl Shared {
    fn tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, tag: u64, id: WatchId, kind: Kind) {
        let reg = Reg {
            id,
            kind,
            unwatched: None,
        };
        assert!(self.regs.lock().unwrap().insert(tag, reg).is_none());
    }

    fn with_reg(&self, tag: u64, f: impl FnOnce(&mut Reg)) {
        f(self.regs.lock().unwrap().get_mut(&tag).unwrap());
    }

    fn is_final(&self, tag: u64) -> bool {
        self.finals.lock().unwrap().contains(&tag)
    }

    fn op(&self) {
        self.counts.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Stops the waiter however the main thread leaves the scope.
struct StopOnDrop<'a>(&'a Shared);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
        let _ = self.0.m.wake();
    }
}

fn waiter(sh: &Shared) {
    while !sh.stop.load(Ordering::SeqCst) {
        sh.m.wait(Some(Duration::from_millis(100)), |e| {
            let seq = sh.seq.fetch_add(1, Ordering::SeqCst);
            let is_final = e.is_final();
            let what = match e.kind {
                EventKind::Exited(x) => What::Exit(x),
                EventKind::Signaled { count } => What::Signaled(count),
                EventKind::Memory(d) => What::MemoryKills(d.oom_kill),
                EventKind::Removed => What::Removed,
                other => What::Other(format!("{other:?}")),
            };
            sh.log.lock().unwrap().push(Delivered {
                seq,
                tag: *e.receiver,
                id: e.id,
                what,
            });
            if is_final {
                sh.finals.lock().unwrap().insert(*e.receiver);
            }
        })
        .unwrap();
    }
}

/// Spawns, watches, unwatches and kills short-lived children.
fn pid_worker(sh: &Shared, seed: u64, until: Instant) {
    let mut rng = Lcg(seed);
    let mut live: Vec<(u64, WatchId, Kid)> = Vec::new();
    let prune = |live: &mut Vec<(u64, WatchId, Kid)>| {
        let finals = sh.finals.lock().unwrap();
        // A delivered exit was reaped by the monitor: dropping the guard
        // then signals and reaps nothing (its pidfd says ESRCH / ECHILD).
        live.retain(|(tag, _, _)| !finals.contains(tag));
    };
    while Instant::now() < until {
        prune(&mut live);
        if live.len() >= MAX_LIVE_KIDS {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        match rng.below(10) {
            0..=5 => {
                let (mut cmd, expect) = match rng.below(4) {
                    0 => (Command::new("true"), Expect::Code(0)),
                    1 => (Command::new("false"), Expect::Code(1)),
                    _ => {
                        let mut c = Command::new("sleep");
                        c.arg(format!("0.{:03}", 1 + rng.below(60)));
                        (c, Expect::Code(0))
                    }
                };
                let kid = Kid::spawn(&mut cmd);
                let tag = sh.tag();
                // Our unreaped child: the watch cannot fail.
                let id = sh.m.watch(Process::pid(kid.pid()), tag).unwrap();
                let pid = kid.pid();
                let killed = false;
                sh.register(
                    tag,
                    id,
                    Kind::Pid {
                        pid,
                        expect,
                        killed,
                    },
                );
                live.push((tag, id, kid));
                sh.counts.children.fetch_add(1, Ordering::Relaxed);
            }
            6 | 7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (tag, id) = (live[i].0, live[i].1);
                match sh.m.unwatch(id) {
                    Ok(r) => {
                        assert_eq!(r, tag, "unwatch handed back another receiver");
                        sh.with_reg(tag, |reg| reg.unwatched = Some(true));
                        sh.counts.unwatch_ok.fetch_add(1, Ordering::Relaxed);
                        // Ours again: the guard kills and reaps it.
                        drop(live.swap_remove(i));
                    }
                    Err(_) => {
                        // Its exit was or is being delivered: keep the
                        // child until then.
                        sh.with_reg(tag, |reg| {
                            reg.unwatched.get_or_insert(false);
                        });
                        sh.counts.unwatch_err.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            8 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                sh.with_reg(live[i].0, |reg| {
                    if let Kind::Pid { killed, .. } = &mut reg.kind {
                        *killed = true;
                    }
                });
                live[i].2.kill();
                sh.counts.kills.fetch_add(1, Ordering::Relaxed);
            }
            _ => thread::yield_now(),
        }
        sh.op();
    }
    // Wind down: every child still watched exits on its own (or was
    // killed); wait for the deliveries before the guards reap anything.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !live.is_empty() {
        assert!(
            Instant::now() < deadline,
            "exits never delivered for tags {:?}",
            live.iter().map(|l| l.0).collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(5));
        prune(&mut live);
    }
}

fn new_eventfd() -> OwnedFd {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
}

/// Watches, signals and unwatches eventfds; poisons each after its unwatch.
fn eventfd_worker(sh: &Shared, seed: u64, until: Instant) {
    let mut rng = Lcg(seed);
    let mut live: Vec<(u64, WatchId, OwnedFd, u64)> = Vec::new();
    let unwatch = |(tag, id, writer, written): (u64, WatchId, OwnedFd, u64)| {
        // An eventfd watch only ends by unwatch: this must succeed.
        let r = sh.m.unwatch(id);
        assert_eq!(
            r.as_ref().ok(),
            Some(&tag),
            "unwatch of eventfd watch: {r:?}"
        );
        sh.with_reg(tag, |reg| {
            reg.unwatched = Some(true);
            reg.kind = Kind::EventFd { written };
        });
        sh.counts.unwatch_ok.fetch_add(1, Ordering::Relaxed);
        // The eventfd lives on through our dup; the monitor must no longer
        // be reading it.
        rustix::io::write(&writer, &POISON.to_ne_bytes()).unwrap();
    };
    while Instant::now() < until {
        match rng.below(10) {
            0..=3 if live.len() < MAX_LIVE_EVENTFDS => {
                let fd = new_eventfd();
                let writer = rustix::io::dup(&fd).unwrap();
                let tag = sh.tag();
                let id = sh.m.watch(Eventfd::new(fd), tag).unwrap();
                sh.register(tag, id, Kind::EventFd { written: 0 });
                live.push((tag, id, writer, 0));
                sh.counts.eventfds.fetch_add(1, Ordering::Relaxed);
            }
            4..=6 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let v = 1 + rng.below(5);
                rustix::io::write(&live[i].2, &v.to_ne_bytes()).unwrap();
                live[i].3 += v;
                sh.counts.signals.fetch_add(1, Ordering::Relaxed);
            }
            7..=9 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                unwatch(live.swap_remove(i));
            }
            _ => thread::sleep(Duration::from_micros(200)),
        }
        sh.op();
    }
    for l in live.drain(..) {
        unwatch(l);
    }
}

/// Creates v1 memory cgroups with OOM watches, sometimes OOM-kills a hog in
/// one, sometimes unwatches, and removes each.
fn cgroup_worker(sh: &Shared, seed: u64, until: Instant) {
    let Some(root) = memory_v1() else { return };
    let mut rng = Lcg(seed);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let mut cg = TestCgroup::new(&root, &format!("soak{n}"));
        cg.set("memory.limit_in_bytes", "33554432");
        let tag = sh.tag();
        let id = sh.m.watch(CgroupOom::dir(&cg.path), tag).unwrap().id();
        sh.register(tag, id, Kind::Cgroup { kernel_kills: 0 });
        sh.counts.cgroups.fetch_add(1, Ordering::Relaxed);
        let child = match rng.below(3) {
            0 => Some((cg.memory_hog(), Expect::OomKilled)),
            1 => Some((cg.sh("exit 7"), Expect::Code(7))),
            _ => None,
        };
        if let Some((kid, expect)) = child {
            let ktag = sh.tag();
            let kid_id =
                sh.m.watch(Process::pid(kid.pid()).oom_watch(id), ktag)
                    .unwrap();
            let (pid, killed) = (kid.pid(), false);
            sh.register(
                ktag,
                kid_id,
                Kind::Pid {
                    pid,
                    expect,
                    killed,
                },
            );
            if expect == Expect::OomKilled {
                sh.counts.hogs.fetch_add(1, Ordering::Relaxed);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while !sh.is_final(ktag) {
                assert!(Instant::now() < deadline, "exit of {pid} never delivered");
                thread::sleep(Duration::from_millis(2));
            }
            drop(kid);
        }
        let kernel_kills = cg.counter("memory.oom_control", "oom_kill");
        sh.with_reg(tag, |reg| reg.kind = Kind::Cgroup { kernel_kills });
        if rng.below(4) == 0 {
            // Live until its removal, so this must succeed.
            assert_eq!(sh.m.unwatch(id).unwrap(), tag);
            sh.with_reg(tag, |reg| reg.unwatched = Some(true));
            sh.counts.unwatch_ok.fetch_add(1, Ordering::Relaxed);
        }
        cg.remove();
        sh.op();
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_watches_exits_and_cgroups_nothing_lost_nothing_leaked() {
    let secs = env_u64("CTRMON_SOAK_SECS", 10);
    let seed = env_u64("CTRMON_SOAK_SEED", 0x5eed_c7a0);
    let fds_before = open_fds();
    let sh = Shared {
        m: Monitor::new().unwrap(),
        next_tag: AtomicU64::new(1),
        seq: AtomicU64::new(0),
        regs: Mutex::new(HashMap::new()),
        log: Mutex::new(Vec::new()),
        finals: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
        counts: Counts::default(),
    };
    let t = Instant::now();
    let until = t + Duration::from_secs(secs);
    thread::scope(|s| {
        let stop = StopOnDrop(&sh);
        let w = s.spawn(|| waiter(&sh));
        let workers = vec![
            s.spawn(|| pid_worker(&sh, seed, until)),
            s.spawn(|| pid_worker(&sh, seed ^ 0x1111, until)),
            s.spawn(|| eventfd_worker(&sh, seed ^ 0x2222, until)),
            s.spawn(|| cgroup_worker(&sh, seed ^ 0x3333, until)),
        ];
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sh.m.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} watches still live",
                sh.m.len()
            );
            thread::sleep(Duration::from_millis(10));
        }
        drop(stop);
        w.join().unwrap();
    });
    let took = t.elapsed();
    assert_eq!(sh.m.len(), 0);

    let Shared {
        m,
        regs,
        log,
        counts,
        ..
    } = sh;
    let regs = regs.into_inner().unwrap();
    let log = log.into_inner().unwrap();
    let mut by_tag: HashMap<u64, Vec<&Delivered>> = HashMap::new();
    for d in &log {
        let reg = regs
            .get(&d.tag)
            .unwrap_or_else(|| panic!("an event for a receiver never registered: {d:?}"));
        assert_eq!(
            d.id, reg.id,
            "event delivered under another watch's id: {d:?}"
        );
        if let What::Other(o) = &d.what {
            panic!("unexpected event {o} for {reg:?}");
        }
        by_tag.entry(d.tag).or_default().push(d);
    }

    let (mut exits, mut oom_kills) = (0u64, 0u64);
    for (tag, reg) in &regs {
        let evs: &[&Delivered] = by_tag.get(tag).map_or(&[], |v| v);
        match reg.kind {
            Kind::Pid {
                pid,
                expect,
                killed,
            } => {
                if reg.unwatched == Some(true) {
                    assert!(evs.is_empty(), "unwatched, yet delivered: {reg:?} {evs:?}");
                    continue;
                }
                assert_eq!(evs.len(), 1, "not exactly once: {reg:?} {evs:?}");
                let What::Exit(x) = evs[0].what else {
                    panic!("{reg:?} {evs:?}")
                };
                exits += 1;
                assert_eq!(x.pid, pid, "{reg:?} {x:?}");
                assert!(x.reaped, "{reg:?} {x:?}");
                match expect {
                    Expect::Code(c) => {
                        assert!(
                            x.status == ExitStatus::Code(c)
                                || (killed && x.status == ExitStatus::Signal(9)),
                            "{reg:?} {x:?}"
                        );
                        assert!(!x.oom_killed, "{reg:?} {x:?}");
                    }
                    Expect::OomKilled => {
                        assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));
                    }
                }
            }
            Kind::EventFd { written } => {
                assert_eq!(reg.unwatched, Some(true), "{reg:?}");
                let mut sum = 0;
                for d in evs {
                    let What::Signaled(c) = d.what else {
                        panic!("{reg:?} {d:?}")
                    };
                    assert!(c > 0 && c < POISON, "read after its unwatch: {reg:?} {d:?}");
                    sum += c;
                }
                assert!(sum <= written, "{sum} > {written} written: {reg:?}");
            }
            Kind::Cgroup { kernel_kills } => {
                let mut reported = 0;
                for d in evs {
                    if let What::MemoryKills(k) = d.what {
                        reported += k;
                    }
                }
                assert_eq!(reported, kernel_kills, "{reg:?} {evs:?}");
                oom_kills += kernel_kills;
                let removed: Vec<_> = evs
                    .iter()
                    .filter(|d| matches!(d.what, What::Removed))
                    .collect();
                if reg.unwatched == Some(true) {
                    assert!(
                        removed.is_empty(),
                        "unwatched, yet removed: {reg:?} {evs:?}"
                    );
                } else {
                    assert_eq!(removed.len(), 1, "{reg:?} {evs:?}");
                    let last = evs.iter().map(|d| d.seq).max().unwrap();
                    assert_eq!(removed[0].seq, last, "events after Removed: {evs:?}");
                }
            }
        }
    }

    drop(m);
    assert_eq!(open_fds(), fds_before, "fds left open after the soak");
    if let Some(root) = memory_v1() {
        assert!(leftover_cgroups(&root).is_empty());
    }
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "soak: seed {seed:#x}, {:.1} s: {} ops, {} watches; {} children ({} killed), {} exits \
         delivered; unwatch ok {} / err {}; {} eventfds, {} signals; {} cgroups, {} hogs, {} \
         OOM kills; {} events",
        took.as_secs_f64(),
        c(&counts.ops),
        regs.len(),
        c(&counts.children),
        c(&counts.kills),
        exits,
        c(&counts.unwatch_ok),
        c(&counts.unwatch_err),
        c(&counts.eventfds),
        c(&counts.signals),
        c(&counts.cgroups),
        c(&counts.hogs),
        oom_kills,
        log.len(),
    );
}
