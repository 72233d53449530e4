//! cgroup v2 `cgroup.events` and PSI on `memory.pressure` in the v2-only
//! test guest (tests/guest/run.sh), where the memory controller is enabled.
//! On a host without it every test here skips.

mod common;

use ctrmon::watch::{CgroupOom, Populated, Psi};
use std::time::Duration;

use common::{memory_v2, wait_until, TestCgroup};
use ctrmon::{EventKind, Monitor, PsiTrigger};

const LONG: Duration = Duration::from_secs(120);

#[test]
fn populated_transitions_then_removal_ends_the_watch() {
    let Some(root) = memory_v2() else { return };
    let mut cg = TestCgroup::new(&root, "v2-populated");
    let m = Monitor::new().unwrap();
    let id = m.watch(Populated::dir(&cg.path), "cg").unwrap();
    assert_eq!(
        m.wait(Some(Duration::from_millis(50)), |e| panic!("{e:?}"))
            .unwrap(),
        0,
        "an empty cgroup reports nothing when armed"
    );
    for _ in 0..2 {
        let kid = cg.sh("sleep 0.3");
        let got = wait_until(&m, LONG, |g| g.len() >= 2);
        let seen: Vec<bool> = got
            .iter()
            .map(|e| match e.kind {
                EventKind::Populated(p) if e.id == id => p,
                ref k => panic!("unexpected {k:?}"),
            })
            .collect();
        assert_eq!(seen, [true, false]);
        drop(kid);
    }
    cg.remove();
    let got = wait_until(&m, LONG, |g| !g.is_empty());
    assert!(
        got.len() == 1 && got[0].id == id && matches!(got[0].kind, EventKind::Removed),
        "{got:?}"
    );
    assert!(m.is_empty());
}

// memory.high throttles an allocator that cannot swap: the throttling is a
// memory stall, which the trigger reports.
#[test]
fn psi_trigger_on_memory_pressure_fires_under_memory_high() {
    let Some(root) = memory_v2() else { return };
    let mut cg = TestCgroup::new(&root, "v2-psi");
    cg.set("memory.high", "8388608");
    cg.set("memory.max", "67108864");
    cg.set("memory.swap.max", "0");
    let m = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 150000 2000000".parse().unwrap();
    let id = m
        .watch(Psi::new(cg.path.join("memory.pressure"), trigger), ())
        .unwrap();
    let hog = cg.memory_hog();
    let got = wait_until(&m, LONG, |g| !g.is_empty());
    assert!(
        got.iter()
            .all(|e| e.id == id && matches!(e.kind, EventKind::Psi)),
        "{got:?}"
    );
    drop(hog);
    cg.remove();
    // Removal ends the PSI watch too.
    let got = wait_until(&m, LONG, |g| g.iter().any(|e| e.is_final()));
    assert!(
        matches!(got.last().unwrap().kind, EventKind::Removed),
        "{got:?}"
    );
}

// The kill that empties a cgroup is reported before `populated:false`: an
// OOM watch holds its report of a kill back for a moment (for the retries
// that trail it) while cgroup.events tells at once, so the emptiness used
// to come first (issue 24).
#[test]
fn populated_false_comes_after_the_oom_of_the_kill_that_emptied_the_cgroup() {
    let Some(root) = memory_v2() else { return };
    let mut cg = TestCgroup::new(&root, "v2-emptied-by-oom");
    cg.set("memory.max", "32M");
    let m = Monitor::builder().kernel_log(false).build().unwrap();
    let oom = m.watch(CgroupOom::dir(&cg.path), "oom").unwrap().id();
    let pop = m.watch(Populated::dir(&cg.path), "populated").unwrap();
    for round in 0..3 {
        let kid = cg.sh("exec tail /dev/zero");
        let emptied = |e: &ctrmon::Event<'static, &str>| {
            e.id == pop && matches!(e.kind, EventKind::Populated(false))
        };
        let got = wait_until(&m, LONG, |g| g.iter().any(emptied));
        drop(kid);
        let kill = got
            .iter()
            .position(|e| e.id == oom && matches!(&e.kind, EventKind::Memory(c) if c.oom_kill > 0));
        let empty = got.iter().position(emptied);
        assert!(
            kill.is_some() && kill < empty,
            "round {round}: the kill must come before populated:false: {got:?}"
        );
    }
    cg.remove();
    let _ = wait_until(&m, LONG, |g| g.len() >= 2);
    assert!(m.is_empty());
}
