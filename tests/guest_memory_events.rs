//! OOM on cgroup v2: real `memory.events` in the v2-only test guest
//! (tests/guest/run.sh). On a host without the v2 memory controller every
//! test here skips, even under `CTRMON_REQUIRE_CGROUPS=1`; in the guest a
//! skip is a failure.
//!
//! Each test makes its own `ctrmon-test-*` cgroups and removes them on drop,
//! after killing the processes it started there.

mod common;

use ctrmon::watch::{CgroupOom, Process};
use std::time::Duration;

use common::{memory_v2, wait_until, TestCgroup};
use ctrmon::{Event, EventKind, ExitStatus, Monitor};

const LIMIT: &str = "33554432"; // 32 MiB
const LONG: Duration = Duration::from_secs(120);

/// The `oom_kill` increase of an event that reports an OOM.
fn oom_kills<T>(e: &Event<T>) -> Option<u64> {
    match &e.kind {
        EventKind::Memory(d) if d.any_oom() => Some(d.oom_kill),
        _ => None,
    }
}

/// True when `file` of `cg` has a line for `key` (a counter this kernel
/// keeps).
fn has_counter(cg: &TestCgroup, file: &str, key: &str) -> bool {
    cg.read(file)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(key))
}

/// A cgroup with a 32 MiB limit and no swap.
fn limited(root: &std::path::Path, name: &str) -> TestCgroup {
    let cg = TestCgroup::new(root, name);
    cg.set("memory.max", LIMIT);
    cg.set("memory.swap.max", "0");
    cg
}

#[test]
fn oom_on_own_limit_one_event_then_the_exit_marked_then_removal() {
    let Some(root) = memory_v2() else { return };
    let mut cg = limited(&root, "v2-oom");
    let m = Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), "cgroup").unwrap().id();
    let hog = cg.memory_hog();
    let pw = m
        .watch(Process::pid(hog.pid()).oom_watch(cgw), "hog")
        .unwrap();

    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == pw));
    let ooms: Vec<&Event<&str>> = got.iter().filter(|e| oom_kills(e).is_some()).collect();
    assert_eq!(ooms.len(), 1, "exactly one OOM event: {got:?}");
    assert_eq!(ooms[0].id, cgw);
    let kernel = cg.counter("memory.events", "oom_kill");
    assert_eq!(kernel, 1, "{}", cg.read("memory.events"));
    assert_eq!(oom_kills(ooms[0]), Some(kernel), "{got:?}");
    let oom_at = got.iter().position(|e| oom_kills(e).is_some()).unwrap();
    let exit_at = got.iter().position(|e| e.id == pw).unwrap();
    assert!(
        oom_at < exit_at,
        "the OOM must come before the exit: {got:?}"
    );
    let EventKind::Exited(x) = got[exit_at].kind else {
        panic!("{got:?}")
    };
    assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));

    drop(hog);
    cg.remove();
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.is_final()));
    let last = got.last().unwrap();
    assert!(
        last.id == cgw && matches!(last.kind, EventKind::Removed),
        "{got:?}"
    );
    assert!(
        got.iter().all(|e| oom_kills(e).is_none()),
        "no OOM after the one reported: {got:?}"
    );
    assert!(m.is_empty());
}

/// The sum of the `oom_kill` increases reported for watch `id`.
fn reported_kills<T>(got: &[Event<T>], id: ctrmon::WatchId) -> u64 {
    got.iter()
        .filter(|e| e.id == id)
        .filter_map(|e| match &e.kind {
            EventKind::Memory(d) => Some(d.oom_kill),
            _ => None,
        })
        .sum()
}

/// The sum of the `oom` increases reported for watch `id`.
fn reported_ooms<T>(got: &[Event<T>], id: ctrmon::WatchId) -> u64 {
    got.iter()
        .filter(|e| e.id == id)
        .filter_map(|e| match &e.kind {
            EventKind::Memory(d) => Some(d.oom),
            _ => None,
        })
        .sum()
}

// containerd #6323: the limit sits on the parent and the victim in the
// child, whose `oom` never rises; counting `oom` alone misses the kill.
#[test]
fn limit_on_parent_kill_reported_in_the_child_whose_oom_never_rises() {
    let Some(root) = memory_v2() else { return };
    let parent = limited(&root, "v2-parent");
    parent.set("cgroup.subtree_control", "+memory");
    let child = parent.child("leaf");
    let m = Monitor::new().unwrap();
    let pw = m
        .watch(CgroupOom::dir(&parent.path), "parent")
        .unwrap()
        .id();
    let cw = m.watch(CgroupOom::dir(&child.path), "child").unwrap().id();
    let hog = child.memory_hog();
    let hw = m
        .watch(Process::pid(hog.pid()).oom_watch(cw), "hog")
        .unwrap();
    // The parent's notification may trail the child's exit; once the hog
    // is gone the kernel's counters are final, and the reports catch up
    // with them.
    let got = wait_until(&m, LONG, |g| {
        g.iter().any(|e| e.id == hw)
            && reported_ooms(g, pw) == parent.counter("memory.events", "oom")
            && reported_kills(g, pw) == parent.counter("memory.events", "oom_kill")
            && reported_kills(g, cw) == child.counter("memory.events", "oom_kill")
    });

    assert_eq!(child.counter("memory.events", "oom"), 0);
    assert_eq!(child.counter("memory.events", "oom_kill"), 1);
    assert_eq!(reported_kills(&got, cw), 1, "{got:?}");
    assert_eq!(reported_ooms(&got, cw), 0, "{got:?}");
    let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
        panic!()
    };
    assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));
    // memory.events is hierarchical: the parent counts its own OOMs and its
    // child's kill. How many OOMs one kill takes is the kernel's to say
    // (mostly 1 on 6.1, 2 on 6.12): the report matches the kernel's count.
    let parent_ooms = parent.counter("memory.events", "oom");
    assert!(parent_ooms >= 1, "{}", parent.read("memory.events"));
    assert_eq!(parent.counter("memory.events", "oom_kill"), 1);
    assert_eq!(reported_ooms(&got, pw), parent_ooms, "{got:?}");
    assert_eq!(reported_kills(&got, pw), 1, "{got:?}");
}

#[test]
fn oom_group_kills_every_process_and_every_kill_is_accounted() {
    let Some(root) = memory_v2() else { return };
    let cg = limited(&root, "v2-group");
    cg.set("memory.oom.group", "1");
    let m = Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), 0).unwrap().id();
    let mut kids = Vec::new();
    let mut watches = Vec::new();
    for i in 1..=3 {
        let kid = cg.sh("exec sleep 600");
        watches.push(m.watch(Process::pid(kid.pid()).oom_watch(cgw), i).unwrap());
        kids.push(kid);
    }
    // Every sleeper is in the cgroup before the hog starts.
    common::wait_for(LONG, || cg.read("cgroup.procs").lines().count() == 3);
    let hog = cg.memory_hog();
    watches.push(m.watch(Process::pid(hog.pid()).oom_watch(cgw), 4).unwrap());
    kids.push(hog);

    let got = wait_until(&m, LONG, |g| {
        watches.iter().all(|w| g.iter().any(|e| e.id == *w))
    });
    let kernel_kills = cg.counter("memory.events", "oom_kill");
    // Each of the four processes is counted; 6.1 counts the victim chosen
    // first a second time when it kills the rest of the group.
    assert!(
        (4..=5).contains(&kernel_kills),
        "{}",
        cg.read("memory.events")
    );
    assert_eq!(reported_kills(&got, cgw), kernel_kills, "{got:?}");
    let group: u64 = got
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Memory(d) => Some(d.oom_group_kill),
            _ => None,
        })
        .sum();
    // `oom_group_kill` came in 5.17 (the group kill itself in 4.19): where
    // the kernel lacks the counter, ctrmon reports none.
    if has_counter(&cg, "memory.events", "oom_group_kill") {
        assert_eq!(cg.counter("memory.events", "oom_group_kill"), 1);
        assert_eq!(group, 1, "{got:?}");
    } else {
        eprintln!("this kernel has no oom_group_kill counter (5.17+)");
        assert_eq!(group, 0, "{got:?}");
    }
    for w in &watches {
        let at = got.iter().position(|e| e.id == *w).unwrap();
        let EventKind::Exited(x) = got[at].kind else {
            panic!("{got:?}")
        };
        assert_eq!(
            (x.status, x.oom_killed),
            (ExitStatus::Signal(9), true),
            "{got:?}"
        );
        let first_oom = got.iter().position(|e| oom_kills(e).is_some()).unwrap();
        assert!(
            first_oom < at,
            "the OOM must come before each exit: {got:?}"
        );
    }
}

#[test]
fn several_kills_over_time_reported_sum_equals_the_kernels_every_time() {
    let Some(root) = memory_v2() else { return };
    let cg = limited(&root, "v2-several");
    let m = Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), 0).unwrap().id();
    let mut all = Vec::new();
    for round in 1..=4u64 {
        let hog = cg.memory_hog();
        let hw = m
            .watch(Process::pid(hog.pid()).oom_watch(cgw), round as i32)
            .unwrap();
        let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == hw));
        let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
            panic!()
        };
        assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));
        all.extend(got);
        let kernel = cg.counter("memory.events", "oom_kill");
        assert_eq!(kernel, round, "{}", cg.read("memory.events"));
        assert_eq!(reported_kills(&all, cgw), kernel, "round {round}: {all:?}");
    }
}

/// The sums of the (`oom`, `oom_kill`) increases reported for watch `id`.
fn reported<T>(got: &[Event<T>], id: ctrmon::WatchId) -> (u64, u64) {
    (reported_ooms(got, id), reported_kills(got, id))
}

/// Parent and child, the limit on one of them, the hog in the child; both
/// watched through `memory.events.local` and the parent also through
/// `memory.events`; checks what each watch reports against the kernel.
fn local_case(root: &std::path::Path, name: &str, limit_on_parent: bool) {
    let parent = TestCgroup::new(root, name);
    parent.set("cgroup.subtree_control", "+memory");
    let child = parent.child("leaf");
    let limited = if limit_on_parent { &parent } else { &child };
    limited.set("memory.max", LIMIT);
    limited.set("memory.swap.max", "0");
    let m = Monitor::new().unwrap();
    let pl = m
        .watch(CgroupOom::dir(&parent.path).local(), "parent local")
        .unwrap()
        .id();
    let cl = m
        .watch(CgroupOom::dir(&child.path).local(), "child local")
        .unwrap()
        .id();
    let ph = m
        .watch(CgroupOom::dir(&parent.path), "parent")
        .unwrap()
        .id();
    let hog = child.memory_hog();
    let hw = m
        .watch(Process::pid(hog.pid()).oom_watch(cl), "hog")
        .unwrap();
    let counted =
        |cg: &TestCgroup, file: &str| (cg.counter(file, "oom"), cg.counter(file, "oom_kill"));
    let local = |cg: &TestCgroup| counted(cg, "memory.events.local");
    // Once the hog is gone the kernel's counters are final; the reports
    // catch up with them (how many OOMs one kill takes at the parent's
    // limit is the kernel's to say: mostly 1 on 6.1, 2 on 6.12).
    let got = wait_until(&m, LONG, |g| {
        g.iter().any(|e| e.id == hw)
            && reported(g, cl) == local(&child)
            && reported(g, pl) == local(&parent)
            && reported(g, ph) == counted(&parent, "memory.events")
    });
    // A late report for the parent's local file would show here.
    let mut got = got;
    m.wait(Some(Duration::from_millis(300)), |e| got.push(e.cloned()))
        .unwrap();

    let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
        panic!()
    };
    assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));
    let (parent_local, child_local) = (local(&parent), local(&child));
    if limit_on_parent {
        // The ancestor's limit: the OOMs are the parent's own, the kill the
        // child's own.
        assert!(
            parent_local.0 >= 1 && parent_local.1 == 0,
            "{parent_local:?}"
        );
        assert_eq!(child_local, (0, 1));
        assert!(got.iter().any(|e| e.id == pl), "{got:?}");
    } else {
        // The child's own limit: OOM and kill are both the child's.
        assert_eq!(parent_local, (0, 0));
        assert!(child_local.0 >= 1 && child_local.1 == 1, "{child_local:?}");
        assert!(got.iter().all(|e| e.id != pl), "{got:?}");
    }
    assert_eq!(reported(&got, pl), parent_local, "{got:?}");
    assert_eq!(reported(&got, cl), child_local, "{got:?}");
    // The hierarchical file cannot tell the two apart: the OOMs wherever
    // the limit sat, and the one kill.
    let parent_all = counted(&parent, "memory.events");
    assert_eq!(parent_all, (parent_local.0 + child_local.0, 1));
    assert_eq!(reported(&got, ph), parent_all, "{got:?}");
}

#[test]
fn local_events_own_limit_oom_and_kill_in_the_child_nothing_in_the_parent() {
    let Some(root) = memory_v2() else { return };
    local_case(&root, "v2-local-own", false);
}

#[test]
fn local_events_ancestors_limit_oom_in_the_parent_kill_in_the_child() {
    let Some(root) = memory_v2() else { return };
    local_case(&root, "v2-local-parent", true);
}

// The OOM-before-exit rule for a process that is not our child (a runtime
// watching a container's init that a shim started): the victim's exit is
// only a pidfd readiness, and the cgroup's counters are re-read before it
// is delivered. Five rounds, each a fresh victim.
#[test]
fn oom_comes_before_the_exit_of_a_process_that_is_not_our_child() {
    use std::io::{BufRead, BufReader, Write};
    let Some(root) = memory_v2() else { return };
    let cg = limited(&root, "v2-nonchild");
    let m = Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), 0).unwrap().id();
    for round in 1..=5u64 {
        // sh forks the victim, which waits for "go" on sh's stdin (fd 3: a
        // background job's own stdin is /dev/null), so it is watched before
        // it allocates; sh (our child) reaps it.
        let script = format!(
            "echo $$ > '{}/cgroup.procs' || exit 1; exec 3<&0; \
             (read go <&3; exec tail </dev/zero) & echo $!; wait",
            cg.path.display()
        );
        let mut sh = common::Kid::spawn(
            std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped()),
        );
        let mut line = String::new();
        BufReader::new(sh.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let victim: i32 = line.trim().parse().unwrap();
        let vw = m.watch(Process::pid(victim).oom_watch(cgw), 1).unwrap();
        writeln!(sh.child.stdin.as_mut().unwrap(), "go").unwrap();
        let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == vw));
        let exit_at = got.iter().position(|e| e.id == vw).unwrap();
        let oom_at = got.iter().position(|e| oom_kills(e).is_some());
        assert!(
            oom_at.is_some_and(|o| o < exit_at),
            "round {round}: the OOM must come before the exit: {got:?}\n{}\nsh: {:?}",
            cg.read("memory.events"),
            sh.state()
        );
        let EventKind::Exited(x) = got[exit_at].kind else {
            panic!()
        };
        // Not our child: its status is read from its zombie, unless sh
        // reaped it first (then, before 6.15, there is none).
        assert!(
            x.status == ExitStatus::Signal(9)
                || (x.status, x.unknown)
                    == (ExitStatus::Unknown, Some(ctrmon::WhyUnknown::NoExitInfo)),
            "not our child: {got:?}"
        );
        assert_eq!(cg.counter("memory.events", "oom_kill"), round);
    }
}
