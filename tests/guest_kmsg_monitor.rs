//! The monitor with the kernel log on, in the cgroup v2-only test guest
//! (tests/guest/run.sh, Debian's kernel): `memory.events` watches whose OOM
//! events name the victims, and exits marked by the victims' logged pids.
//! On a host without the v2 memory controller the tests skip; in the guest
//! a skip is a failure.

mod common;

use ctrmon::watch::{CgroupOom, Process};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{memory_v2, TestCgroup};
use ctrmon::{EventKind, KmsgMode, MemoryReport, Monitor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Cgroup,
    Proc(i32),
}

fn logged_path(root: &Path, cg: &TestCgroup) -> std::path::PathBuf {
    Path::new("/").join(cg.path.strip_prefix(root).unwrap())
}

/// Collects OOM reports and exits until `exits` watched processes ended.
fn collect(m: &Monitor<Who>, exits: usize) -> (Vec<MemoryReport>, Vec<(i32, bool)>) {
    let mut ooms = Vec::new();
    let mut exited = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while exited.len() < exits {
        assert!(Instant::now() < deadline, "{ooms:?} {exited:?}");
        m.wait(Some(Duration::from_millis(100)), |e| {
            match (*e.receiver, e.kind) {
                (Who::Cgroup, EventKind::Memory(d)) => ooms.push(*d),
                (Who::Proc(pid), EventKind::Exited(x)) => exited.push((pid, x.oom_killed)),
                (who, kind) => panic!("unexpected {kind:?} for {who:?}"),
            }
        })
        .unwrap();
    }
    // A kill's report may trail the last exit by its linger.
    let _ = m.wait(Some(Duration::from_millis(200)), |e| {
        if let EventKind::Memory(d) = e.kind {
            ooms.push(*d);
        }
    });
    (ooms, exited)
}

#[test]
fn an_oom_group_kill_marks_and_names_every_victim() {
    let Some(root) = memory_v2() else { return };
    let m: Monitor<Who> = Monitor::new().unwrap();
    assert_eq!(m.kmsg_mode(), KmsgMode::On);
    let cg = TestCgroup::new(&root, "kmsgmon-group");
    cg.set("memory.max", "33554432");
    cg.set("memory.swap.max", "0");
    cg.set("memory.oom.group", "1");
    let cgw = m.watch(CgroupOom::dir(&cg.path), Who::Cgroup).unwrap().id();
    let mut kids = Vec::new();
    for _ in 0..2 {
        kids.push(cg.sh("exec sleep 600"));
    }
    common::wait_for(Duration::from_secs(60), || {
        cg.read("cgroup.procs").lines().count() == 2
    });
    kids.push(cg.memory_hog());
    for k in &kids {
        m.watch(Process::pid(k.pid()).oom_watch(cgw), Who::Proc(k.pid()))
            .unwrap();
    }
    let (ooms, exited) = collect(&m, kids.len());
    // Every process of the group was killed, and each exit is marked.
    assert!(exited.iter().all(|&(_, marked)| marked), "{exited:?}");
    let mut named: Vec<i32> = ooms
        .iter()
        .flat_map(|o| o.victims().iter().map(|v| v.pid))
        .collect();
    named.sort_unstable();
    let mut pids: Vec<i32> = kids.iter().map(|k| k.pid()).collect();
    pids.sort_unstable();
    // Each process once (the kernel logs the chosen victim twice, and
    // counts it twice in `oom_kill`).
    assert_eq!(named, pids, "{ooms:?}");
    println!("group kill: {} events, victims {named:?}", ooms.len());
}

#[test]
fn a_parent_limit_kill_names_the_parent_on_v2() {
    let Some(root) = memory_v2() else { return };
    let m: Monitor<Who> = Monitor::new().unwrap();
    let parent = TestCgroup::new(&root, "kmsgmon-parent");
    parent.set("memory.max", "33554432");
    parent.set("memory.swap.max", "0");
    parent.set("cgroup.subtree_control", "+memory");
    let child = parent.child("leaf");
    // The child's own counters: only `oom_kill` rises there.
    let cgw = m
        .watch(CgroupOom::dir(&child.path).local(), Who::Cgroup)
        .unwrap()
        .id();
    let hog = child.memory_hog();
    m.watch(Process::pid(hog.pid()).oom_watch(cgw), Who::Proc(hog.pid()))
        .unwrap();
    let (ooms, exited) = collect(&m, 1);
    assert_eq!(exited, [(hog.pid(), true)]);
    let kill = ooms
        .iter()
        .find(|o| o.oom_kill > 0)
        .expect("the kill is reported");
    assert_eq!(kill.victims().len(), 1, "{kill:?}");
    assert_eq!(kill.victims()[0].pid, hog.pid());
    // The guest runs nothing else: the context line is not rate-limited.
    assert_eq!(
        kill.oom_memcg(),
        Some(logged_path(&root, &parent).as_path()),
        "{kill:?}"
    );
}
