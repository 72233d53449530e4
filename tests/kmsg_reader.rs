//! The `/dev/kmsg` reader and the victim book against the real kernel log:
//! records written into it, and real OOM kills in `ctrmon-test-*` v1
//! cgroups. Other processes on the machine log too (other tests' OOM kills
//! among them), so every test looks only for its own records.

mod common;

use std::time::{Duration, Instant};

use common::{cgroups_required, memory_v1, TestCgroup, TmpDir};
use ctrmon::kmsg::{Clocks, KmsgReader, StartTime, Victim, VictimBook};

const LIMIT: &str = "33554432"; // 32 MiB

/// A reader, or skip (fail under `CTRMON_REQUIRE_CGROUPS=1`) when this
/// process may not read the kernel log.
fn reader() -> Option<KmsgReader> {
    match KmsgReader::open() {
        Ok(r) => Some(r),
        Err(e) if cgroups_required() => panic!("CTRMON_REQUIRE_CGROUPS=1 but {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// Writes a line into the kernel log (root may), as facility `user`.
fn log_line(text: &str) {
    std::fs::write("/dev/kmsg", format!("<14>{text}\n")).expect("write /dev/kmsg");
}

/// Reads the log into `book` until it names `pid` as a victim, and takes
/// that victim out; panics after 20 s.
/// `start` is when the process started, read while it was there.
fn victim(r: &mut KmsgReader, book: &mut VictimBook, pid: i32, start: Option<StartTime>) -> Victim {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !book.is_victim(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} not logged as a victim"
        );
        match r.next_record().unwrap() {
            None => std::thread::sleep(Duration::from_millis(5)),
            Some(next) => {
                if let Ok(rec) = next.record {
                    book.add(&rec, Clocks::now());
                }
            }
        }
    }
    book.take(pid, start, Clocks::now()).unwrap()
}

/// The hierarchy-relative path the kernel logs for a v1 cgroup.
fn logged_path(cg: &TestCgroup, root: &std::path::Path) -> Vec<u8> {
    let rel = cg.path.strip_prefix(root).unwrap();
    format!("/{}", rel.display()).into_bytes()
}

#[test]
fn the_reader_starts_at_the_end_one_record_per_read() {
    let Some(_) = reader() else { return };
    let tag = format!("ctrmon-test-kmsg-{}", std::process::id());
    log_line(&format!("{tag} before"));
    let mut r = KmsgReader::open().unwrap();
    // Close-on-exec and non-blocking: an empty log reads as None at once.
    let fl = rustix::fs::fcntl_getfl(&r).unwrap();
    assert!(fl.contains(rustix::fs::OFlags::NONBLOCK));
    assert!(rustix::io::fcntl_getfd(&r)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC));
    log_line(&format!("{tag} first"));
    log_line(&format!("{tag} second"));
    let mut mine = Vec::new();
    let mut seqs = Vec::new();
    let mut book = VictimBook::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mine.len() < 2 {
        assert!(Instant::now() < deadline, "{mine:?}");
        let Some(next) = r.next_record().unwrap() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let rec = next.record.unwrap();
        seqs.push(rec.seq);
        if rec.message.raw().starts_with(tag.as_bytes()) {
            assert_eq!((rec.facility, rec.level), (1, 6), "{rec:?}");
            mine.push(String::from_utf8(rec.message.to_vec()).unwrap());
            // Only our own lines: an OOM kill elsewhere on the machine
            // meanwhile is a real victim.
            book.add(&rec, Clocks::now());
        }
    }
    assert_eq!(mine, [format!("{tag} first"), format!("{tag} second")]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(book.is_empty());
}

#[test]
fn the_reader_is_pollable() {
    let Some(mut r) = reader() else { return };
    while r.next_record().unwrap().is_some() {}
    let mut fds = [rustix::event::PollFd::new(&r, rustix::event::PollFlags::IN)];
    log_line(&format!("ctrmon-test-kmsg-poll-{}", std::process::id()));
    let timeout = rustix::event::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    assert_eq!(rustix::event::poll(&mut fds, Some(&timeout)).unwrap(), 1);
    assert!(r.next_record().unwrap().is_some());
}

#[test]
fn a_parent_limit_kill_names_the_victim_and_both_cgroups() {
    let Some(root) = memory_v1() else { return };
    let Some(mut r) = reader() else { return };
    let parent = TestCgroup::new(&root, "kmsg-parent");
    parent.set("memory.limit_in_bytes", LIMIT);
    let leaf = parent.child("leaf");
    // `exec tail`: the shell's pid is the allocating process's.
    let hog = leaf.memory_hog();
    let mut book = VictimBook::new();
    let v = victim(&mut r, &mut book, hog.pid(), StartTime::of(hog.pid()));
    assert_eq!(v.comm, b"tail");
    assert!(v.group.is_none());
    // The context line is rate-limited with the rest of the OOM report:
    // when it was logged, it names the parent's limit and the leaf.
    match (&v.oom_memcg, &v.task_memcg) {
        (Some(oom), Some(task)) => {
            assert_eq!(*oom, logged_path(&parent, &root));
            assert_eq!(*task, logged_path(&leaf, &root));
        }
        other => eprintln!("context line rate-limited away: {other:?}"),
    }
    hog.reap();
}

#[test]
fn a_grandchild_victim_does_not_make_its_parent_a_victim() {
    let Some(root) = memory_v1() else { return };
    let Some(mut r) = reader() else { return };
    let cg = TestCgroup::new(&root, "kmsg-grandchild");
    cg.set("memory.limit_in_bytes", LIMIT);
    // The shell stays small; its child `tail` grows until it is killed.
    let kid = cg.sh("tail /dev/zero; sleep 600");
    let deadline = Instant::now() + Duration::from_secs(20);
    let tail = loop {
        assert!(Instant::now() < deadline, "tail never started");
        let procs = cg.read("cgroup.procs");
        if let Some(p) = procs
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .find(|&p| p != kid.pid())
        {
            break p;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let tail_start = StartTime::of(tail);
    let mut book = VictimBook::new();
    let v = victim(&mut r, &mut book, tail, tail_start);
    assert_eq!(v.comm, b"tail");
    let victim_pid = v.pid;
    assert_ne!(victim_pid, kid.pid());
    // The watched shell, killed now by someone else, was no victim.
    let kid_start = StartTime::of(kid.pid());
    kid.kill();
    kid.reap();
    assert!(book.take(kid.pid(), kid_start, Clocks::now()).is_none());
    assert!(
        book.take(victim_pid, tail_start, Clocks::now()).is_none(),
        "taken once"
    );
}

#[test]
fn without_the_privilege_the_log_is_unavailable_not_an_error() {
    if std::env::var_os("CTRMON_TEST_KMSG_UNPRIVILEGED").is_some() {
        // The child: running as nobody, with dmesg_restrict.
        let e = KmsgReader::open()
            .err()
            .expect("nobody must not read the kernel log");
        assert!(
            e.errno == rustix::io::Errno::PERM || e.errno == rustix::io::Errno::ACCESS,
            "{e}"
        );
        assert!(e.to_string().contains("/dev/kmsg"), "{e}");
        return;
    }
    let Some(_) = reader() else { return };
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|v| v.trim() == "1");
    if !restricted {
        eprintln!("skipping: dmesg_restrict is 0, anyone may read the log");
        return;
    }
    // A copy nobody may run, wherever the checkout lives.
    let dir = TmpDir::new("kmsg-nobody");
    let exe = dir.path.join("kmsg_reader");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(&dir.path, 0o755), (&exe, 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args([
            "--exact",
            "without_the_privilege_the_log_is_unavailable_not_an_error",
            "--test-threads=1",
        ])
        .env("CTRMON_TEST_KMSG_UNPRIVILEGED", "1")
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) => assert!(s.success(), "the unprivileged run failed: {s}"),
        Err(e) if !cgroups_required() => eprintln!("skipping: setpriv: {e}"),
        Err(e) => panic!("setpriv: {e}"),
    }
}
