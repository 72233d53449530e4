//! `memory.swap.events` on cgroup v2 with a real swap device: the test
//! guest (tests/guest/run.sh) attaches a virtio disk and prepares it as swap
//! (tests/guest/setup.d/swap.sh); these tests turn it on for their own run.
//! On a host without the v2 memory controller they skip.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{memory_v2, v2_memory_required, wait_until, TestCgroup};
use ctrmon::{Event, EventKind, Monitor, SwapEvents};

const LONG: Duration = Duration::from_secs(180);

/// Swap on the guest's device while alive.
struct SwapOn(String);

impl SwapOn {
    fn new() -> Option<SwapOn> {
        let Ok(dev) = std::env::var("CTRMON_GUEST_SWAP_DEVICE") else {
            assert!(
                !v2_memory_required(),
                "the guest prepared no swap device (tests/guest/setup.d/swap.sh)"
            );
            eprintln!("skipping: no swap device prepared for tests");
            return None;
        };
        let ok = Command::new("swapon").arg(&dev).status().unwrap();
        assert!(ok.success(), "swapon {dev}: {ok}");
        Some(SwapOn(dev))
    }
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
    }
}

fn swap_sum<T>(got: &[Event<T>]) -> SwapEvents {
    let mut sum = SwapEvents::default();
    for e in got {
        if let EventKind::Swap(d) = &e.kind {
            sum.high += d.high;
            sum.max += d.max;
            sum.fail += d.fail;
        }
    }
    sum
}

fn kernel_swap_events(cg: &TestCgroup) -> SwapEvents {
    ctrmon::cgroup::parse::swap_events::parse(cg.read("memory.swap.events").as_bytes()).unwrap()
}

// A hog limited to 16 MiB of memory and 4 MiB of swap: swap-outs past
// swap.max are refused (`max` and `fail`), then the OOM killer ends it.
// (swap.high is left alone: its throttling makes the run last a minute
// under emulation; `high` is checked on recorded contents.)
#[test]
fn swap_max_reported_as_the_kernel_counts_it() {
    let Some(root) = memory_v2() else { return };
    let Some(_swap) = SwapOn::new() else { return };
    let mut cg = TestCgroup::new(&root, "v2-swap");
    cg.set("memory.max", "16777216");
    cg.set("memory.swap.max", "4194304");
    let m = Monitor::new().unwrap();
    let sw = m.watch_cgroup_swap(&cg.path, "swap").unwrap();
    let ow = m.watch_cgroup_oom(&cg.path, "oom").unwrap();
    let hog = cg.memory_hog();
    let hw = m.watch_pid_in(hog.pid(), ow, "hog").unwrap();
    let mut got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == hw));
    let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
        panic!()
    };
    assert!(x.oom_killed, "{got:?}");
    let kernel = kernel_swap_events(&cg);
    assert!(
        kernel.max > 0 && kernel.fail > 0,
        "swap.max was not hit: {kernel:?}"
    );
    drop(hog);
    cg.remove();
    // Removal ends both watches; everything counted before it is reported.
    got.extend(wait_until(&m, LONG, |g| {
        g.iter().filter(|e| e.is_final()).count() == 2
    }));
    assert!(
        got.iter()
            .any(|e| e.id == sw && matches!(e.kind, EventKind::Removed)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .filter(|e| matches!(e.kind, EventKind::Swap(_)))
            .all(|e| e.id == sw),
        "{got:?}"
    );
    assert_eq!(swap_sum(&got), kernel, "{got:?}");
    eprintln!("memory.swap.events at the end: {kernel:?}");
}

#[test]
fn swap_watch_on_a_cgroup_that_never_swaps_reports_nothing() {
    let Some(root) = memory_v2() else { return };
    let cg = TestCgroup::new(&root, "v2-noswap");
    let m = Monitor::new().unwrap();
    m.watch_cgroup_swap(&cg.path, ()).unwrap();
    let kid = cg.sh("exec sleep 0.2");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.wait(Some(Duration::from_millis(100)), |e| panic!("{e:?}"))
            .unwrap(),
        0
    );
    drop(kid);
}
