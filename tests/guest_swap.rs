//! `memory.swap.events` on cgroup v2 with a real swap device: the test
//! guest (tests/guest/run.sh) attaches a virtio disk and prepares it as swap
//! (tests/guest/setup.d/swap.sh); these tests turn it on for their own run.
//! On a host without the v2 memory controller they skip.

mod common;

use ctrmon::watch::{CgroupOom, CgroupSwap, Process};
use std::process::Command;
use std::time::Duration;

use common::{memory_v2, v2_memory_required, wait_until, TestCgroup};
use ctrmon::{Event, EventKind, Monitor, SwapEvents};

const LONG: Duration = Duration::from_secs(180);

/// Where the multi-generational LRU is switched (Linux 6.1+, when built).
const LRU_GEN: &str = "/sys/kernel/mm/lru_gen/enabled";

/// Swap on the guest's device while alive, with the classic LRU: under the
/// multi-generational LRU (Debian's 6.12 enables it) a small `swap.max`
/// was never reached in these runs, the hog being killed after swapping a
/// little, so the set-up turns it off for the test and back on after.
struct SwapOn {
    dev: String,
    /// What `LRU_GEN` held before, if this kernel has it.
    lru_gen: Option<String>,
}

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
        let lru_gen = std::fs::read_to_string(LRU_GEN).ok();
        if let Some(was) = &lru_gen {
            std::fs::write(LRU_GEN, "n").unwrap_or_else(|e| panic!("write n to {LRU_GEN}: {e}"));
            eprintln!("{LRU_GEN} was {}, now off for this test", was.trim());
        }
        let guard = SwapOn { dev, lru_gen };
        let ok = Command::new("swapon").arg(&guard.dev).status().unwrap();
        assert!(ok.success(), "swapon {}: {ok}", guard.dev);
        Some(guard)
    }
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.dev).status();
        if let Some(was) = &self.lru_gen {
            // The file prints a mask ("0x0007") and takes one back.
            let _ = std::fs::write(LRU_GEN, was.trim());
        }
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
    let _lock = common::serial();
    let Some(_swap) = SwapOn::new() else { return };
    // As in the CLI test below: a run where the kernel killed the hog
    // before it reached swap.max (seen under TCG on 6.1 and 6.12) still
    // checks the sums, and another is made.
    let hit = (0..5).any(|attempt| swap_run(&root, attempt));
    assert!(hit, "swap.max was not hit in 5 runs");
}

/// One run of the test above. Returns whether it hit `swap.max`.
fn swap_run(root: &std::path::Path, attempt: u32) -> bool {
    let mut cg = TestCgroup::new(root, &format!("v2-swap-{attempt}"));
    cg.set("memory.max", "16777216");
    cg.set("memory.swap.max", "4194304");
    let m = Monitor::new().unwrap();
    let sw = m.watch(CgroupSwap::dir(&cg.path), "swap").unwrap();
    let ow = m.watch(CgroupOom::dir(&cg.path), "oom").unwrap().id();
    let hog = cg.memory_hog();
    let hw = m
        .watch(Process::pid(hog.pid()).oom_watch(ow), "hog")
        .unwrap();
    let mut got = wait_until(&m, LONG, |g| g.iter().any(|e| e.id == hw));
    let EventKind::Exited(x) = got.iter().find(|e| e.id == hw).unwrap().kind else {
        panic!()
    };
    assert!(x.oom_killed, "{got:?}");
    let kernel = kernel_swap_events(&cg);
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
    eprintln!("run {attempt}: memory.swap.events at the end: {kernel:?}");
    kernel.max > 0 && kernel.fail > 0
}

#[test]
fn swap_watch_on_a_cgroup_that_never_swaps_reports_nothing() {
    let Some(root) = memory_v2() else { return };
    let cg = TestCgroup::new(&root, "v2-noswap");
    let m = Monitor::new().unwrap();
    m.watch(CgroupSwap::dir(&cg.path), ()).unwrap();
    let kid = cg.sh("exec sleep 0.2");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.wait(Some(Duration::from_millis(100)), |e| panic!("{e:?}"))
            .unwrap(),
        0
    );
    drop(kid);
}

/// The sum of `"key":N` over the `swap` lines of `out`.
fn swap_field_sum(out: &str, key: &str) -> u64 {
    out.lines()
        .filter(|l| l.contains("\"event\":\"swap\""))
        .filter_map(|l| {
            let rest = &l[l.find(&format!("\"{key}\":"))? + key.len() + 3..];
            rest[..rest.find([',', '}'])?].parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn ctrmon_watch_prints_swap_lines_that_add_up_to_the_kernels_counters() {
    let Some(root) = memory_v2() else { return };
    let _lock = common::serial();
    let Some(_swap) = SwapOn::new() else { return };
    // Under TCG the kernel now and then fails a swap-out (`fail`), or
    // kills the hog before it swaps at all, before the cgroup reaches
    // `swap.max`: that run still checks the sums, and another is made, so
    // that `max` is exercised too.
    let hit = (0..5).any(|attempt| cli_swap_run(&root, attempt));
    assert!(hit, "swap.max was not hit in 5 runs");
}

/// One run of the test above: the swap lines of `ctrmon watch` add up to
/// the kernel's counters. Returns whether the run hit `swap.max`.
fn cli_swap_run(root: &std::path::Path, attempt: u32) -> bool {
    let mut cg = TestCgroup::new(root, &format!("v2-swap-cli-{attempt}"));
    cg.set("memory.max", "16777216");
    cg.set("memory.swap.max", "4194304");
    let mut watcher = common::Kid::spawn(
        Command::new(env!("CARGO_BIN_EXE_ctrmon"))
            .args(["watch", "--cgroup"])
            .arg(&cg.path)
            .stdout(std::process::Stdio::piped()),
    );
    // Lines as they come, from a thread, so that waiting for one is bounded.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = watcher.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let hog = cg.memory_hog();
    hog.reap();
    drop(hog);
    // The OOM is reported before the cgroup goes: ctrmon is not told about
    // the hog's exit, so removing the cgroup at once could race the report.
    let mut out = String::new();
    while !out.contains("\"event\":\"oom\"") {
        let line = rx
            .recv_timeout(LONG)
            .unwrap_or_else(|e| panic!("no oom line ({e}): {out}"));
        out.push_str(&line);
        out.push('\n');
    }
    let kernel = kernel_swap_events(&cg);
    // The cgroup is empty: its counters are final. The lines add up to them
    // (a late one is waited for, a wrong sum fails after LONG).
    while swap_field_sum(&out, "max") != kernel.max || swap_field_sum(&out, "fail") != kernel.fail {
        let line = rx
            .recv_timeout(LONG)
            .unwrap_or_else(|e| panic!("swap lines do not add up to {kernel:?} ({e}): {out}"));
        out.push_str(&line);
        out.push('\n');
    }
    cg.remove();
    common::wait_for(LONG, || watcher.state() != common::KidState::Running);
    assert_eq!(watcher.child.wait().unwrap().code(), Some(0), "{out}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        out.push_str(&line);
        out.push('\n');
    }
    assert!(out.contains("\"event\":\"removed\""), "{out}");
    assert_eq!(swap_field_sum(&out, "max"), kernel.max, "{out}");
    assert_eq!(swap_field_sum(&out, "fail"), kernel.fail, "{out}");
    if kernel.max == 0 {
        eprintln!("run {attempt}: swap.max not reached ({kernel:?}); again");
    }
    kernel.max > 0
}
