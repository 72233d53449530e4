//! Several v1 memory cgroups OOM at once, repeatedly, with more allocating
//! processes than cores: the case where a victim can take two seconds to die
//! while its cgroup's eventfd is signalled thousands of times.
//!
//! Checked per cgroup and round, against the kernel: every watched process
//! that died of SIGKILL is marked `oom_killed` (nothing else kills them);
//! the reported `oom_kill` increases sum to the kernel's `oom_kill`; the
//! reported `oom` increases sum to the notifications the kernel sent (counted
//! on an eventfd of the test's own, registered on the same file before the
//! monitor's); and the events stay few: each carries a kill, or is a linked
//! exit's forced look, or is the one kill-less event allowed per second of
//! the OOM episode.
//!
//! Run twice: with the kernel log (exits marked by the victim's logged pid;
//! the events name the victims) and without it (the counter rule alone).

mod common;

use ctrmon::watch::{CgroupOom, Process};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{cgroups_required, memory_v1, serial, Kid, TestCgroup};
use ctrmon::{EventKind, ExitStatus, KmsgMode, Monitor};

const LIMIT: &str = "33554432"; // 32 MiB
const CGROUPS: usize = 3;
/// Allocating processes per cgroup; each also runs `head` and `tr`, so
/// there are far more busy processes than the machine's cores.
const PER_CGROUP: usize = 2;
const ROUNDS: usize = 3;

/// The user's recipe: the shell itself grows a string from a pipe, fed by
/// two more processes, until the OOM killer stops one of them.
const ALLOCATE: &str = r#"a=$(head -c 200000000 /dev/zero | tr "\0" a)"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Cgroup(usize),
    Proc(usize, usize),
}

/// An eventfd registered on the cgroup's `memory.oom_control`: the kernel
/// signals it at each OOM notification, like the monitor's own.
fn kernel_notification_counter(cg: &TestCgroup) -> OwnedFd {
    use rustix::event::{eventfd, EventfdFlags};
    let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap();
    let control = std::fs::File::open(cg.path.join("memory.oom_control")).unwrap();
    cg.set(
        "cgroup.event_control",
        &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
    );
    efd
}

fn read_counter(efd: &OwnedFd) -> u64 {
    let mut buf = [0u8; 8];
    match rustix::io::read(efd.as_fd(), &mut buf) {
        Ok(8) => u64::from_ne_bytes(buf),
        Err(rustix::io::Errno::AGAIN) => 0,
        other => panic!("eventfd read: {other:?}"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    oom: u64,
    oom_kill: u64,
    kill_events: usize,
    kill_less_events: usize,
    first: Option<Instant>,
    last: Option<Instant>,
    sigkilled: usize,
    marked: usize,
    /// Victims named in the events (kernel log only).
    victims: usize,
}

#[test]
fn concurrent_ooms_are_exact_marked_and_few_with_kmsg() {
    contention(true);
}

#[test]
fn concurrent_ooms_are_exact_marked_and_few_without_kmsg() {
    contention(false);
}

fn contention(kmsg: bool) {
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let mut totals = Tally::default();
    for round in 0..ROUNDS {
        let cgs: Vec<TestCgroup> = (0..CGROUPS)
            .map(|c| {
                let cg = TestCgroup::new(&root, &format!("contend-{round}-{c}"));
                cg.set("memory.limit_in_bytes", LIMIT);
                cg
            })
            .collect();
        let counters: Vec<OwnedFd> = cgs.iter().map(kernel_notification_counter).collect();
        let m: Monitor<Who> = if kmsg {
            Monitor::new().unwrap()
        } else {
            Monitor::builder().kernel_log(false).build().unwrap()
        };
        match m.kmsg_mode() {
            KmsgMode::On => assert!(kmsg),
            KmsgMode::Off => assert!(!kmsg),
            KmsgMode::Unavailable(u) if !cgroups_required() => {
                eprintln!("skipped: {u}");
                return;
            }
            other => panic!("kmsg {other:?}, expected to read the log as root"),
        }
        let cgws: Vec<_> = cgs
            .iter()
            .enumerate()
            .map(|(c, cg)| {
                m.watch(CgroupOom::dir(&cg.path), Who::Cgroup(c))
                    .unwrap()
                    .id()
            })
            .collect();
        let mut kids: Vec<Kid> = Vec::new();
        for p in 0..PER_CGROUP {
            for (c, cg) in cgs.iter().enumerate() {
                let kid = cg.sh(ALLOCATE);
                m.watch(Process::pid(kid.pid()).oom_watch(cgws[c]), Who::Proc(c, p))
                    .unwrap();
                kids.push(kid);
            }
        }

        let mut tally: HashMap<usize, Tally> = HashMap::new();
        let mut exited = 0;
        let record = |e: ctrmon::Event<Who>, tally: &mut HashMap<usize, Tally>, n: &mut usize| {
            let now = Instant::now();
            match (*e.receiver, e.kind) {
                (Who::Cgroup(c), EventKind::Memory(d)) => {
                    let t = tally.entry(c).or_default();
                    t.oom += d.oom;
                    t.oom_kill += d.oom_kill;
                    t.victims += d.victims().len();
                    assert!(kmsg || d.victims().is_empty(), "{d:?}");
                    if d.oom_kill > 0 {
                        t.kill_events += 1;
                    } else {
                        t.kill_less_events += 1;
                    }
                    t.first.get_or_insert(now);
                    t.last = Some(now);
                }
                (Who::Proc(c, _), EventKind::Exited(x)) => {
                    *n += 1;
                    let t = tally.entry(c).or_default();
                    if x.status == ExitStatus::Signal(9) {
                        t.sigkilled += 1;
                        t.marked += usize::from(x.oom_killed);
                    } else {
                        assert!(!x.oom_killed, "{x:?}");
                    }
                }
                (who, kind) => panic!("unexpected {kind:?} for {who:?}"),
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while exited < CGROUPS * PER_CGROUP {
            assert!(Instant::now() < deadline, "round {round}: {tally:?}");
            m.wait(Some(Duration::from_millis(200)), |e| {
                record(e, &mut tally, &mut exited)
            })
            .unwrap();
        }
        for kid in &kids {
            kid.reap();
        }
        // The pipelines' other processes leave once their pipe is gone.
        for cg in &cgs {
            let t0 = Instant::now();
            while !cg.read("cgroup.procs").trim().is_empty() {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "{} stays busy",
                    cg.path.display()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // What the kernel counted, now that nothing in the cgroups runs.
        let kernel: Vec<(u64, u64)> = cgs
            .iter()
            .zip(&counters)
            .map(|(cg, efd)| {
                (
                    read_counter(efd),
                    cg.counter("memory.oom_control", "oom_kill"),
                )
            })
            .collect();
        // Increases still held back (at most one coalescing period) come out.
        let settled = |tally: &HashMap<usize, Tally>| {
            kernel.iter().enumerate().all(|(c, k)| {
                let t = tally.get(&c);
                (t.map_or(0, |t| t.oom), t.map_or(0, |t| t.oom_kill)) == *k
            })
        };
        let t0 = Instant::now();
        while !settled(&tally) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "round {round}: reported {tally:?}, kernel (notifications, oom_kill) {kernel:?}"
            );
            m.wait(Some(Duration::from_millis(100)), |e| {
                record(e, &mut tally, &mut exited)
            })
            .unwrap();
        }

        for (c, (notifications, kills)) in kernel.iter().enumerate() {
            let t = tally.remove(&c).unwrap_or_default();
            let episode = match (t.first, t.last) {
                (Some(a), Some(b)) => b - a,
                _ => Duration::ZERO,
            };
            eprintln!(
                "kmsg {kmsg} round {round} cgroup {c}: {kills} kills ({} victims named), \
                 {notifications} notifications, {} events ({} with a kill) over {:.2} s, \
                 {}/{} SIGKILLed exits marked",
                t.victims,
                t.kill_events + t.kill_less_events,
                t.kill_events,
                episode.as_secs_f64(),
                t.marked,
                t.sigkilled
            );
            // A victim is named once, in its own cgroup's events.
            assert!(
                t.victims as u64 <= *kills,
                "round {round} cgroup {c}: {t:?}"
            );
            assert!(*kills >= 1, "round {round} cgroup {c}: no OOM kill at all");
            assert_eq!(t.marked, t.sigkilled, "round {round} cgroup {c}: {t:?}");
            assert!(t.kill_events as u64 <= *kills);
            // Kill-less events: one per linked exit (its forced look), one
            // per started second of the episode, and the first.
            let bound = PER_CGROUP + episode.as_secs() as usize + 2;
            assert!(
                t.kill_less_events <= bound,
                "round {round} cgroup {c}: {} kill-less events, bound {bound}: {t:?}",
                t.kill_less_events
            );
            totals.oom += notifications;
            totals.oom_kill += kills;
            totals.kill_events += t.kill_events;
            totals.kill_less_events += t.kill_less_events;
            totals.sigkilled += t.sigkilled;
            totals.marked += t.marked;
            totals.victims += t.victims;
        }
        drop(m);
        drop(kids);
    }
    eprintln!(
        "kmsg {kmsg}: {ROUNDS} rounds x {CGROUPS} cgroups: {} kills ({} victims named), \
         {} notifications, {} events ({:.2} per kill), {}/{} SIGKILLed exits marked",
        totals.oom_kill,
        totals.victims,
        totals.oom,
        totals.kill_events + totals.kill_less_events,
        (totals.kill_events + totals.kill_less_events) as f64 / totals.oom_kill as f64,
        totals.marked,
        totals.sigkilled
    );
}
