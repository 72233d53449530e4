//! OOM on cgroup v2: real `memory.events` in the v2-only test guest
//! (tests/guest/run.sh). On a host without the v2 memory controller every
//! test here skips, even under `CTRMON_REQUIRE_CGROUPS=1`; in the guest a
//! skip is a failure.
//!
//! Each test makes its own `ctrmon-test-*` cgroups and removes them on drop,
//! after killing the processes it started there.

mod common;

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
    let cgw = m.watch_cgroup_oom(&cg.path, "cgroup").unwrap();
    let hog = cg.memory_hog();
    let pw = m.watch_pid_in(hog.pid(), cgw, "hog").unwrap();

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
