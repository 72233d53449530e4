//! OOM, removal, pressure and thresholds on real cgroup v1 memory cgroups.
//!
//! Each test makes its own `ctrmon-test-*` cgroups and removes them on drop,
//! after killing the processes it started there.

mod common;

use ctrmon::watch::{CgroupOom, Eventfd, MemoryPressure, Process, UsageThreshold};
use std::time::{Duration, Instant};

use common::{memory_v1, wait_until, TestCgroup};
use ctrmon::{Event, EventKind, ExitStatus, Monitor, PressureLevel};

const LIMIT: &str = "33554432"; // 32 MiB
const LONG: Duration = Duration::from_secs(30);

fn oom_kills<T>(e: &Event<T>) -> Option<u64> {
    match &e.kind {
        EventKind::Memory(d) if d.any_oom() => Some(d.oom_kill),
        _ => None,
    }
}

#[test]
fn oom_kill_is_reported_once_then_the_exit_marked_oom_killed() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "oom");
    cg.set("memory.limit_in_bytes", LIMIT);
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
    assert_eq!(oom_kills(ooms[0]), Some(1), "{got:?}");
    let oom_at = got.iter().position(|e| oom_kills(e).is_some()).unwrap();
    let exit_at = got.iter().position(|e| e.id == pw).unwrap();
    assert!(
        oom_at < exit_at,
        "the OOM must come before the exit: {got:?}"
    );
    let EventKind::Exited(x) = got[exit_at].kind else {
        panic!()
    };
    assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), true));
    assert_eq!(cg.counter("memory.oom_control", "oom_kill"), 1);
    assert!(m.contains(cgw));
}

#[test]
fn exit_without_oom_is_not_marked() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "nooom");
    let m = Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), 0).unwrap().id();
    let kid = cg.sh("kill -9 $$");
    let pw = m.watch(Process::pid(kid.pid()).oom_watch(cgw), 1).unwrap();
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == pw));
    assert_eq!(got.len(), 1, "{got:?}");
    let EventKind::Exited(x) = got[0].kind else {
        panic!()
    };
    assert_eq!((x.status, x.oom_killed), (ExitStatus::Signal(9), false));
}

#[test]
fn removal_of_an_empty_cgroup_is_a_removal_not_an_oom() {
    let Some(root) = memory_v1() else { return };
    let mut cg = TestCgroup::new(&root, "rmdir");
    let m = Monitor::new().unwrap();
    let id = m.watch(CgroupOom::dir(&cg.path), ()).unwrap().id();
    cg.remove();
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.is_final()));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0].kind, EventKind::Removed), "{got:?}");
    assert_eq!(got[0].id, id);
    assert!(m.is_empty());
    // The kernel's own late removal signal must not turn into anything.
    assert_eq!(
        m.wait(Some(Duration::from_millis(100)), |e| panic!("{e:?}"))
            .unwrap(),
        0
    );
}

#[test]
fn limit_on_parent_fires_parent_and_child_kill_counted_in_child() {
    let Some(root) = memory_v1() else { return };
    let parent = TestCgroup::new(&root, "nest-parent");
    parent.set("memory.use_hierarchy", "1");
    parent.set("memory.limit_in_bytes", LIMIT);
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
    let got = wait_until(&m, LONG, |g| {
        g.iter().any(|e| e.id == hw) && g.iter().any(|e| e.id == pw)
    });
    let parent_ooms: Vec<_> = got.iter().filter(|e| e.id == pw).collect();
    assert!(
        !parent_ooms.is_empty(),
        "the parent's watch must fire: {got:?}"
    );
    // oom_kill rises only in the victim's own cgroup.
    assert!(
        parent_ooms.iter().all(|e| oom_kills(e) == Some(0)),
        "{got:?}"
    );
    let child_kills: u64 = got
        .iter()
        .filter(|e| e.id == cw)
        .filter_map(oom_kills)
        .sum();
    assert_eq!(child_kills, 1, "{got:?}");
    let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
        panic!()
    };
    assert!(x.oom_killed);
}

#[test]
fn limit_on_child_fires_only_the_child() {
    let Some(root) = memory_v1() else { return };
    let parent = TestCgroup::new(&root, "nest2-parent");
    parent.set("memory.use_hierarchy", "1");
    let child = parent.child("leaf");
    child.set("memory.limit_in_bytes", LIMIT);
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
    let mut got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == hw));
    // Give a late parent notification time to show up, if there were one.
    m.wait(Some(Duration::from_millis(100)), |e| got.push(e.cloned()))
        .unwrap();
    assert!(
        got.iter().all(|e| e.id != pw),
        "the parent must stay quiet: {got:?}"
    );
    assert_eq!(
        got.iter()
            .filter(|e| e.id == cw)
            .filter_map(oom_kills)
            .sum::<u64>(),
        1
    );
}

#[test]
fn pressure_level_fires_under_reclaim() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "pressure");
    cg.set("memory.limit_in_bytes", LIMIT);
    let m = Monitor::new().unwrap();
    let id = m
        .watch(MemoryPressure::new(&cg.path, PressureLevel::Low), ())
        .unwrap();
    // Writing 128 MiB through a 32 MiB page cache forces reclaim.
    let file = std::env::temp_dir().join(format!("ctrmon-test-pressure-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(file.clone());
    let _writer = cg.sh(&format!(
        "dd if=/dev/zero of='{}' bs=1M count=128 2>/dev/null",
        file.display()
    ));
    let got = wait_until(&m, LONG, |g| !g.is_empty());
    assert!(
        got.iter()
            .all(|e| e.id == id && matches!(e.kind, EventKind::Pressure(PressureLevel::Low))),
        "{got:?}"
    );
}

#[test]
fn usage_threshold_fires_up_and_down() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "threshold");
    let m = Monitor::new().unwrap();
    let threshold = 16 << 20;
    m.watch(UsageThreshold::new(&cg.path, threshold), ())
        .unwrap();
    // Hold 24 MiB of anonymous memory for a moment, then exit (freeing it).
    let _kid = cg.sh("head -c 25165824 /dev/zero | tail; sleep 0.3");
    let got = wait_until(&m, LONG, |g| {
        g.iter()
            .any(|e| matches!(e.kind, EventKind::Threshold { above: true, .. }))
            && g.iter()
                .any(|e| matches!(e.kind, EventKind::Threshold { above: false, .. }))
    });
    // Crossings alternate, starting upward from an empty cgroup.
    let sides: Vec<bool> = got
        .iter()
        .map(|e| match e.kind {
            EventKind::Threshold { above, .. } => above,
            ref k => panic!("unexpected {k:?}"),
        })
        .collect();
    assert!(sides[0], "{got:?}");
    assert!(sides.windows(2).all(|w| w[0] != w[1]), "{got:?}");
}

#[test]
fn bad_inputs_are_clear_errors_naming_the_path() {
    let Some(root) = memory_v1() else { return };
    let m: Monitor<()> = Monitor::new().unwrap();
    let missing = root.join("ctrmon-test-does-not-exist");
    let e = m.watch(CgroupOom::dir(&missing), ()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("ctrmon-test-does-not-exist"), "{e}");

    let e = m.watch(CgroupOom::dir("/tmp"), ()).unwrap_err();
    assert!(
        e.to_string().contains("/tmp") && e.to_string().contains("not on a cgroup"),
        "{e}"
    );

    // A cgroup without the memory controller (the pids hierarchy).
    let pids = std::path::Path::new("/sys/fs/cgroup/pids");
    if pids.join("cgroup.procs").exists() {
        let e = m.watch(CgroupOom::dir(pids), ()).unwrap_err();
        assert!(e.to_string().contains("memory.oom_control"), "{e}");
    }

    // A symlink leading out of the cgroup tree, and one leading into it.
    let dir = std::env::temp_dir().join(format!("ctrmon-test-links-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    std::os::unix::fs::symlink("/tmp", &out).unwrap();
    let e = m.watch(CgroupOom::dir(&out), ()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let into = dir.join("into");
    std::os::unix::fs::symlink(&root, &into).unwrap();
    let e = m.watch(CgroupOom::dir(&into), ()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");

    for bad in ["", "/sys/fs/cgroup/memory/a\0b"] {
        let e = m.watch(CgroupOom::dir(bad), ()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
    assert!(m.is_empty());
}

#[test]
fn oom_watch_of_a_pid_finds_its_cgroup() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "of-pid");
    cg.set("memory.limit_in_bytes", LIMIT);
    let m = Monitor::new().unwrap();
    let kid = cg.sh("exec sleep 600");
    // Wait until the shell has moved itself in.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cg.read("cgroup.procs").contains(&kid.pid().to_string()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let watch = m.watch(CgroupOom::of(kid.pid()), ()).unwrap();
    // The directory it resolved is the cgroup's (mountinfo's v1 memory
    // mount plus /proc/<pid>/cgroup's path).
    assert_eq!(watch.dir(), cg.path, "{watch:?}");
    let hog = cg.memory_hog();
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| oom_kills(e) == Some(1)));
    assert_eq!(got.iter().filter_map(oom_kills).sum::<u64>(), 1);
    drop(hog);
}

/// A watch made after the container's init was OOM-killed (a shim that
/// adopted it late): counted from zero, the kill is reported before the
/// exit, which is marked; counted from the watch, the baseline already holds
/// the kill and no OOM comes before the exit. `counters()` reads the
/// kernel's count either way.
#[test]
fn a_late_watch_counted_from_zero_still_puts_the_oom_before_the_exit() {
    let Some(root) = memory_v1() else { return };
    for from_zero in [true, false] {
        let cg = TestCgroup::new(&root, "late");
        cg.set("memory.limit_in_bytes", LIMIT);
        let m = Monitor::builder().kernel_log(false).build().unwrap();
        // Killed before anything watches it; a zombie until its watch reaps
        // it.
        let hog = cg.memory_hog();
        let deadline = Instant::now() + LONG;
        while cg.counter("memory.oom_control", "oom_kill") == 0 {
            assert!(Instant::now() < deadline, "the hog was never OOM-killed");
            std::thread::sleep(Duration::from_millis(10));
        }
        let oom = if from_zero {
            CgroupOom::dir(&cg.path).from_zero()
        } else {
            CgroupOom::dir(&cg.path)
        };
        let cgw = m.watch(oom, "cgroup").unwrap();
        assert_eq!(cgw.dir(), cg.path);
        let counted = cgw.counters().unwrap();
        assert_eq!(
            counted.oom_kill,
            cg.counter("memory.oom_control", "oom_kill"),
            "{counted:?}"
        );
        let pw = m
            .watch(Process::pid(hog.pid()).oom_watch(&cgw), "init")
            .unwrap();
        let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == pw));
        let exit_at = got.iter().position(|e| e.id == pw).unwrap();
        let EventKind::Exited(x) = got[exit_at].kind else {
            panic!("{got:?}")
        };
        assert_eq!(x.status, ExitStatus::Signal(9), "{got:?}");
        let ooms_before: u64 = got[..exit_at].iter().filter_map(oom_kills).sum();
        if from_zero {
            assert_eq!(ooms_before, counted.oom_kill, "from zero: {got:?}");
            assert!(x.oom_killed, "from zero, the exit is marked: {got:?}");
        } else {
            assert_eq!(ooms_before, 0, "from the watch: {got:?}");
            assert!(!x.oom_killed, "no kill seen, no mark: {got:?}");
        }
        drop(hog);
    }
}

/// `counters()` of a removed cgroup fails naming its directory.
#[test]
fn counters_of_a_removed_cgroup_name_it() {
    let Some(root) = memory_v1() else { return };
    let mut cg = TestCgroup::new(&root, "gone-counters");
    let m: Monitor<()> = Monitor::builder().kernel_log(false).build().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), ()).unwrap();
    assert_eq!(cgw.counters().unwrap(), ctrmon::MemoryEvents::default());
    cg.remove();
    let e = cgw.counters().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&*cg.path.to_string_lossy()), "{e}");
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn an_oom_and_removal_in_one_batch_survive_an_unwatch_by_an_earlier_handler() {
    let Some(root) = memory_v1() else { return };
    let mut cg = TestCgroup::new(&root, "batch-oom-rm");
    cg.set("memory.limit_in_bytes", LIMIT);
    let m = Monitor::new().unwrap();
    let (e, other) = (new_eventfd(), new_eventfd());
    let writer = rustix::io::dup(&e).unwrap();
    let eid = m.watch(Eventfd::new(e), "signal").unwrap();
    let other_id = m.watch(Eventfd::new(other), "other").unwrap();
    // The kernel's own count of notifications, on an eventfd of ours: an
    // OOM can signal more than once (the victim's last charge retries).
    let kernel = new_eventfd();
    {
        use std::os::fd::AsRawFd;
        let control = std::fs::File::open(cg.path.join("memory.oom_control")).unwrap();
        cg.set(
            "cgroup.event_control",
            &format!("{} {}", kernel.as_raw_fd(), control.as_raw_fd()),
        );
    }
    let cgw = m.watch(CgroupOom::dir(&cg.path), "cgroup").unwrap().id();
    // Ready in this order: the eventfd, then the cgroup (OOM and removal).
    rustix::io::write(&writer, &1u64.to_ne_bytes()).unwrap();
    let hog = cg.memory_hog();
    assert!(hog.reap());
    drop(hog);
    cg.remove();
    std::thread::sleep(Duration::from_millis(150)); // the removal's notification
    let mut got = Vec::new();
    m.wait(LONG_OPT, |ev| {
        if ev.id == eid {
            // What a runtime does on an event: drop some other watch.
            m.unwatch(other_id).unwrap();
        }
        got.push((ev.id, format!("{:?}", ev.kind)));
    })
    .unwrap();
    let cg_events: Vec<&String> = got
        .iter()
        .filter(|(id, _)| *id == cgw)
        .map(|(_, k)| k)
        .collect();
    assert_eq!(cg_events.len(), 2, "{got:?}");
    // Every notification but the removal's own was an OOM.
    let mut count = [0u8; 8];
    assert_eq!(rustix::io::read(&kernel, &mut count), Ok(8));
    let ooms = u64::from_ne_bytes(count) - 1;
    assert!(ooms >= 1);
    assert!(
        cg_events[0].starts_with("Memory") && cg_events[0].contains(&format!(" oom: {ooms},")),
        "kernel: {ooms} OOM notifications; {got:?}"
    );
    assert_eq!(cg_events[1], "Removed", "{got:?}");
}

#[test]
fn a_cgroup_recreated_under_the_same_name_still_ends_the_watch() {
    let Some(root) = memory_v1() else { return };
    let mut cg = TestCgroup::new(&root, "recreated");
    let m = Monitor::new().unwrap();
    let id = m.watch(CgroupOom::dir(&cg.path), ()).unwrap().id();
    cg.remove();
    // A restarted container: same name, new cgroup, before the monitor looks.
    let again = TestCgroup::new(&root, "recreated");
    assert_eq!(again.path, cg.path);
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.is_final()));
    assert!(
        matches!(
            got[..],
            [Event {
                kind: EventKind::Removed,
                ..
            }]
        ),
        "{got:?}"
    );
    assert_eq!(got[0].id, id);
    assert!(m.is_empty());
}

#[test]
fn nested_in_another_loop_an_oom_still_gets_its_kill() {
    // Only zero-timeout waits when the monitor's fd is readable, as under
    // mio or tokio: the re-check that waits for the kill must make the fd
    // readable by itself (the monitor's timerfd).
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "nested-loop");
    cg.set("memory.limit_in_bytes", LIMIT);
    let m = Monitor::new().unwrap();
    m.watch(CgroupOom::dir(&cg.path), ()).unwrap().id();
    let _hog = cg.memory_hog();
    let deadline = Instant::now() + LONG;
    let mut kills = 0;
    while kills == 0 {
        assert!(Instant::now() < deadline, "no OOM with its kill");
        let mut fds = [rustix::event::PollFd::new(&m, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
        assert_eq!(ready, 1, "the monitor's fd never became readable again");
        m.wait(Some(Duration::ZERO), |e| {
            if let EventKind::Memory(d) = &e.kind {
                kills += d.oom_kill;
            }
        })
        .unwrap();
    }
    assert_eq!(kills, 1);
}

const LONG_OPT: Option<Duration> = Some(Duration::from_secs(30));

fn new_eventfd() -> std::os::fd::OwnedFd {
    use rustix::event::{eventfd, EventfdFlags};
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
}
