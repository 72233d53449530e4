//! The kernel log in the cgroup v2-only test guest (tests/guest/run.sh,
//! Debian's kernel): a `memory.oom.group` kill, which only v2 has, read
//! from `/dev/kmsg` and matched to its victims by pid. Every OOM record
//! read is printed (`kmsg-record: …`), so the guest's console keeps this
//! kernel's records. On a host without the v2 memory controller the test
//! skips; in the guest a skip is a failure.

mod common;

use std::time::{Duration, Instant};

use common::{memory_v2, TestCgroup};
use ctrmon::kmsg::{Clocks, KmsgReader, StartTime, VictimBook};

#[test]
fn an_oom_group_kill_names_the_group_and_every_victim() {
    let Some(root) = memory_v2() else { return };
    let mut r = KmsgReader::open().expect("root reads the kernel log");
    let cg = TestCgroup::new(&root, "kmsg-group");
    cg.set("memory.max", "33554432");
    cg.set("memory.swap.max", "0");
    cg.set("memory.oom.group", "1");
    let mut kids = Vec::new();
    for _ in 0..2 {
        kids.push(cg.sh("exec sleep 600"));
    }
    common::wait_for(Duration::from_secs(60), || {
        cg.read("cgroup.procs").lines().count() == 2
    });
    kids.push(cg.memory_hog());
    let pids: Vec<i32> = kids.iter().map(|k| k.pid()).collect();
    // Our children: zombies until reaped, so their start times stay readable.
    let starts: Vec<Option<StartTime>> = pids.iter().map(|&p| StartTime::of(p)).collect();

    let rel = format!("/{}", cg.path.strip_prefix(&root).unwrap().display()).into_bytes();
    let mut book = VictimBook::new();
    let mut group_lines = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pids.iter().all(|&p| book.is_victim(p)) {
        assert!(Instant::now() < deadline, "victims so far: {book:?}");
        let Some(next) = r.next_record().unwrap() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let Ok(rec) = next.record else { continue };
        if rec.oom().is_some() {
            let text = String::from_utf8_lossy(next.raw);
            println!("kmsg-record: {}", text.trim_end_matches('\n'));
        }
        if let Some(ctrmon::cgroup::parse::kmsg_oom::OomLine::GroupKill { memcg }) = rec.oom() {
            group_lines += usize::from(memcg.raw() == rel.as_slice());
        }
        book.add(&rec, Clocks::now());
    }
    assert_eq!(group_lines, 1);
    for (&pid, &start) in pids.iter().zip(&starts) {
        let v = book.take(pid, start, Clocks::now()).unwrap();
        assert_eq!(v.group.as_deref(), Some(rel.as_slice()), "{v:?}");
        if let Some(task) = &v.task_memcg {
            assert_eq!(task, &rel, "{v:?}");
        }
    }
}
