//! cgroup v2 on this machine: `cgroup.events` and PSI triggers on real
//! `ctrmon-test-*` cgroups under the unified hierarchy (which has no memory
//! controller here, so `memory.events` is absent).

mod common;

use ctrmon::watch::{CgroupOom, Populated, Psi};
use std::time::Duration;

use common::{unified_v2, wait_until, TestCgroup};
use ctrmon::{Event, EventKind, Monitor, PsiTrigger};

#[test]
fn populated_goes_up_and_down_and_removal_ends_the_watch() {
    let Some(root) = unified_v2() else { return };
    let mut cg = TestCgroup::new(&root, "populated");
    let m = Monitor::new().unwrap();
    let id = m.watch(Populated::dir(&cg.path), "cg").unwrap();
    // Armed on an empty cgroup: the fresh fd's readiness reports nothing.
    assert_eq!(
        m.wait(Some(Duration::from_millis(50)), |e| panic!("{e:?}"))
            .unwrap(),
        0
    );
    let kid = cg.sh("sleep 0.3");
    let got = wait_until(&m, Duration::from_secs(20), |g| g.len() >= 2);
    let seen: Vec<bool> = got
        .iter()
        .map(|e| match e.kind {
            EventKind::Populated(p) => p,
            ref k => panic!("unexpected {k:?}"),
        })
        .collect();
    assert_eq!(seen, [true, false]);
    assert!(got.iter().all(|e| e.id == id));
    drop(kid);
    cg.remove();
    let got = wait_until(&m, Duration::from_secs(20), |g| !g.is_empty());
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
    assert!(m.is_empty());
}

#[test]
fn psi_trigger_fires_under_cpu_contention() {
    let Some(root) = unified_v2() else { return };
    let cg = TestCgroup::new(&root, "psi");
    let file = cg.path.join("cpu.pressure");
    let m = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 100000 2000000".parse().unwrap();
    let id = m.watch(Psi::new(&file, trigger), ()).unwrap();
    // Four busy loops on two cores: tasks in the cgroup wait for CPU.
    let busy: Vec<_> = (0..4).map(|_| cg.sh("while :; do :; done")).collect();
    let got = wait_until(&m, Duration::from_secs(20), |g| !g.is_empty());
    assert!(
        got.iter()
            .all(|e| e.id == id && matches!(e.kind, EventKind::Psi)),
        "{got:?}"
    );
    drop(busy);
}

#[test]
fn psi_window_refused_by_the_kernel_is_a_clear_error() {
    let Some(root) = unified_v2() else { return };
    let cg = TestCgroup::new(&root, "psi-bad");
    let file = cg.path.join("cpu.pressure");
    let m: Monitor<()> = Monitor::new().unwrap();
    // Valid for the kernel's range, but not a multiple of 2 s: refused
    // without CAP_SYS_RESOURCE (as root here too, unless privileged).
    let odd: PsiTrigger = "some 100000 1000000".parse().unwrap();
    let result = m.watch(Psi::new(&file, odd), ());
    if has_cap_sys_resource() {
        result.expect("a privileged process may use any window");
    } else {
        let text = result.unwrap_err().to_string();
        assert!(
            text.contains("cpu.pressure") && text.contains("2 s"),
            "{text}"
        );
    }
    // A trigger string that is malformed never reaches the kernel.
    assert!("some 0 2000000".parse::<PsiTrigger>().is_err());
    assert!("sometimes 1 2".parse::<PsiTrigger>().is_err());
    // A regular file outside cgroupfs/procfs is refused.
    let e = m
        .watch(
            Psi::new("/etc/hostname", "some 100000 2000000".parse().unwrap()),
            (),
        )
        .unwrap_err();
    assert!(e.to_string().contains("/etc/hostname"), "{e}");
}

#[test]
fn oom_watch_on_v2_without_memory_controller_names_the_missing_file() {
    let Some(root) = unified_v2() else { return };
    let cg = TestCgroup::new(&root, "v2-nomem");
    let m: Monitor<()> = Monitor::new().unwrap();
    if cg.path.join("memory.events").exists() {
        // A machine with memory on v2: the watch must arm.
        m.watch(CgroupOom::dir(&cg.path), ()).unwrap().id();
        return;
    }
    let e = m.watch(CgroupOom::dir(&cg.path), ()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("memory.events") && text.contains("ctrmon-test-v2-nomem"),
        "{text}"
    );
    // It says why: the parent does not enable memory for its children.
    let parent_control = root.join("cgroup.subtree_control");
    assert!(
        text.contains("memory controller is not enabled")
            && text.contains(&*parent_control.to_string_lossy()),
        "{text}"
    );
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

/// CAP_SYS_RESOURCE (bit 24) in this process's effective set.
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 24) != 0
}
