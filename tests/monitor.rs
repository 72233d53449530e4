//! The monitor core against real processes, FIFOs and eventfds.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::Kid;
use ctrmon::{Event, EventKind, ExitStatus, Monitor, WatchId};
use rustix::event::{eventfd, EventfdFlags};

const LONG: Option<Duration> = Some(Duration::from_secs(20));

/// Waits until one final event arrives and returns it; panics on timeout.
fn next_final<T: Clone + std::fmt::Debug>(m: &Monitor<T>) -> Event<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() {
        assert!(Instant::now() < deadline, "no final event within 20 s");
        m.wait(Some(Duration::from_millis(200)), |e| {
            if e.is_final() {
                assert!(got.is_none(), "two final events in one wait: {e:?}");
                got = Some(e);
            }
        })
        .unwrap();
    }
    got.unwrap()
}

fn exit_of<T>(e: &Event<T>) -> ctrmon::Exit {
    match &e.kind {
        EventKind::Exited(x) => *x,
        other => panic!("expected an exit, got {other:?}"),
    }
}

fn new_eventfd() -> OwnedFd {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
}

fn signal(fd: &OwnedFd, n: u64) {
    rustix::io::write(fd, &n.to_ne_bytes()).unwrap();
}

#[test]
fn child_exit_code_is_reported_and_child_reaped() {
    let m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 7");
    let id = m.watch_pid(kid.pid(), "seven").unwrap();
    assert_eq!(m.len(), 1);
    let e = next_final(&m);
    assert_eq!(e.id, id);
    assert_eq!(e.receiver, "seven");
    let x = exit_of(&e);
    assert_eq!(
        (x.pid, x.status, x.reaped),
        (kid.pid(), ExitStatus::Code(7), true)
    );
    assert_eq!(m.len(), 0);
    assert!(!m.contains(id));
    assert!(
        !kid.reap(),
        "the monitor should already have reaped the child"
    );
}

#[test]
fn killed_child_reports_the_signal() {
    let m = Monitor::new().unwrap();
    let kid = Kid::sleeper();
    m.watch_pid(kid.pid(), ()).unwrap();
    // Nothing happens while it sleeps.
    assert_eq!(
        m.wait(Some(Duration::from_millis(50)), |_| panic!("no event"))
            .unwrap(),
        0
    );
    kid.kill();
    let x = exit_of(&next_final(&m));
    assert_eq!(x.status, ExitStatus::Signal(9));
    assert_eq!(x.status.shell_code(), Some(137));
}

#[test]
fn zombie_is_reported_on_the_next_wait() {
    let m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 3");
    kid.wait_exited_no_reap();
    m.watch_pid(kid.pid(), ()).unwrap();
    let mut got = Vec::new();
    let n = m
        .wait(Some(Duration::ZERO), |e| got.push(exit_of(&e).status))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(got, [ExitStatus::Code(3)]);
}

#[test]
fn watching_a_reaped_child_is_a_clear_error() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let kid = Kid::sh("exit 0");
    assert!(kid.reap());
    let err = m.watch_pid(kid.pid(), ()).unwrap_err();
    assert!(err.is_process_gone(), "{err}");
    assert_eq!(err.pid(), Some(kid.pid()));
    let text = err.to_string();
    assert!(text.contains(&format!("pid {}", kid.pid())), "{text}");
    assert!(text.contains("already exited and was reaped"), "{text}");
    assert_eq!(m.len(), 0);
}

#[test]
fn invalid_pids_are_refused_by_name() {
    let m: Monitor<()> = Monitor::new().unwrap();
    for pid in [0, -1, i32::MIN] {
        let err = m.watch_pid(pid, ()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&pid.to_string()), "{err}");
    }
}

#[test]
fn without_reaping_leaves_the_zombie_to_the_caller() {
    let m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 5");
    m.watch_pid_without_reaping(kid.pid(), ()).unwrap();
    let x = exit_of(&next_final(&m));
    assert_eq!((x.status, x.reaped), (ExitStatus::Code(5), false));
    assert!(kid.reap(), "the zombie must still be ours to reap");
}

#[test]
fn grandchild_exit_is_reported_without_status() {
    let m = Monitor::new().unwrap();
    // sh starts a sleep in the background and waits for a line on stdin-less
    // `read`; we learn the grandchild's pid from its stdout.
    let mut kid = Kid::sh_piped("sleep 600 & echo $!; wait");
    let mut line = String::new();
    BufReader::new(kid.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grandchild: i32 = line.trim().parse().unwrap();
    // Open our own pidfd before signalling, so the kill cannot hit a reused pid.
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(grandchild).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    m.watch_pid(grandchild, ()).unwrap();
    rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).unwrap();
    let x = exit_of(&next_final(&m));
    assert_eq!(
        (x.pid, x.status, x.reaped),
        (grandchild, ExitStatus::Unknown, false)
    );
}

fn mkfifo(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("exit");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    path
}

fn open_fifo_reader(path: &std::path::Path) -> OwnedFd {
    use rustix::fs::{open, Mode, OFlags};
    open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ctrmon-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn exit_fifo_hangs_up_when_the_writer_exits() {
    let dir = TempDir::new("fifo");
    let fifo = mkfifo(&dir.0);
    let m = Monitor::new().unwrap();
    // The reader opens first (as the seed's monitor did) ...
    let id = m.watch_hangup(open_fifo_reader(&fifo), "shim").unwrap();
    // ... then the writer connects, leaves unread data (so the hang-up comes
    // as EPOLLIN|EPOLLHUP at the kernel level) and exits.
    let _kid = Kid::sh(&format!(
        "exec 3>'{}'; echo data >&3; sleep 0.1",
        fifo.display()
    ));
    let e = next_final(&m);
    assert!(matches!(e.kind, EventKind::HungUp), "{e:?}");
    assert_eq!((e.id, e.receiver), (id, "shim"));
    assert!(m.is_empty());
}

#[test]
fn exit_fifo_race_a_late_reader_never_sees_the_hangup() {
    // Documented limitation, asserted so that it stays documented truthfully:
    // a writer that came and went before the reader opened leaves no HUP.
    let dir = TempDir::new("fifo-late");
    let fifo = mkfifo(&dir.0);
    let holder = open_fifo_reader(&fifo); // lets the writer open without blocking
    let kid = Kid::sh(&format!("exec 3>'{}'; exit 0", fifo.display()));
    kid.wait_exited_no_reap();
    drop(holder);
    let m = Monitor::new().unwrap();
    m.watch_hangup(open_fifo_reader(&fifo), ()).unwrap();
    let n = m.wait(Some(Duration::from_millis(100)), |_| {}).unwrap();
    assert_eq!(
        n, 0,
        "a reader opened after the writer left sees no hang-up"
    );
    // The remedy: pair the FIFO with a pidfd watch, which reports at once.
    m.watch_pid(kid.pid(), ()).unwrap();
    assert!(matches!(next_final(&m).kind, EventKind::Exited(_)));
}

#[test]
fn eventfd_counts_are_drained_and_the_watch_goes_on() {
    let m = Monitor::new().unwrap();
    let fd = new_eventfd();
    let writer = rustix::io::dup(&fd).unwrap();
    let id = m.watch_eventfd(fd, 42u32).unwrap();
    signal(&writer, 2);
    signal(&writer, 3);
    let mut got = Vec::new();
    m.wait(LONG, |e| {
        got.push((e.id, e.receiver, e.is_final(), format!("{:?}", e.kind)))
    })
    .unwrap();
    assert_eq!(got, [(id, 42, false, "Signaled { count: 5 }".to_string())]);
    // Drained: nothing more until the next write.
    assert_eq!(
        m.wait(Some(Duration::from_millis(20)), |_| panic!())
            .unwrap(),
        0
    );
    signal(&writer, 1);
    assert_eq!(m.wait(LONG, |_| {}).unwrap(), 1);
    assert_eq!(m.unwatch(id).unwrap(), 42);
    // Unwatched: a dup'ed writer firing must not reach the loop.
    signal(&writer, 1);
    assert_eq!(
        m.wait(Some(Duration::from_millis(20)), |_| panic!())
            .unwrap(),
        0
    );
    assert!(m.unwatch(id).is_err(), "a second unwatch must fail");
}

#[test]
fn stale_event_for_a_reused_slot_never_reaches_the_new_receiver() {
    let m = Monitor::new().unwrap();
    let (a, b) = (new_eventfd(), new_eventfd());
    let (wa, wb) = (rustix::io::dup(&a).unwrap(), rustix::io::dup(&b).unwrap());
    let ida = m.watch_eventfd(a, "a").unwrap();
    let idb = m.watch_eventfd(b, "b").unwrap();
    signal(&wa, 1);
    signal(&wb, 1);
    // Both are ready in one batch. Whichever comes first removes the other and
    // adds a new watch, which reuses the freed slot (LIFO).
    let mut delivered = Vec::new();
    let mut replacement: Option<WatchId> = None;
    let c = new_eventfd();
    let mut c = Some(c);
    m.wait(LONG, |e| {
        delivered.push(e.receiver);
        if replacement.is_none() {
            let other = if e.id == ida { idb } else { ida };
            m.unwatch(other).unwrap();
            replacement = Some(m.watch_eventfd(c.take().unwrap(), "c").unwrap());
        }
    })
    .unwrap();
    let replacement = replacement.unwrap();
    assert_eq!(
        delivered.len(),
        1,
        "the removed watch's event was delivered: {delivered:?}"
    );
    assert!(!delivered.contains(&"c"));
    assert_eq!(
        replacement.as_u64() & 0xffff_ffff,
        if delivered[0] == "a" { idb } else { ida }.as_u64() & 0xffff_ffff,
        "the new watch should reuse the freed slot"
    );
    assert_ne!(replacement, idb);
    assert_ne!(replacement, ida);
    // And nothing further arrives for the new receiver, which was never signalled.
    assert_eq!(
        m.wait(Some(Duration::from_millis(20)), |e| panic!("{e:?}"))
            .unwrap(),
        0
    );
}

#[test]
fn handler_can_add_and_remove_watches_without_deadlock() {
    let m = Monitor::new().unwrap();
    let first = Kid::sh("exit 1");
    let second = Kid::sleeper();
    m.watch_pid(first.pid(), 1).unwrap();
    let mut second_id = None;
    let mut exits = Vec::new();
    let e = next_final(&m);
    // From inside a handler: watch, unwatch, rewatch, even wait.
    m.wait(Some(Duration::ZERO), |_| {}).unwrap();
    exits.push(e.receiver);
    let mut handled = false;
    let third = Kid::sh("exit 3");
    m.watch_pid(third.pid(), 3).unwrap();
    while !handled {
        m.wait(LONG, |e| {
            exits.push(e.receiver);
            let id = m.watch_pid(second.pid(), 2).unwrap();
            assert_eq!(m.unwatch(id).unwrap(), 2);
            second_id = Some(m.watch_pid(second.pid(), 2).unwrap());
            m.wait(Some(Duration::ZERO), |e| panic!("nested wait saw {e:?}"))
                .unwrap();
            handled = true;
        })
        .unwrap();
    }
    assert_eq!(exits, [1, 3]);
    assert!(m.contains(second_id.unwrap()));
    second.kill();
    assert_eq!(next_final(&m).receiver, 2);
}

#[test]
fn waker_interrupts_a_blocking_wait() {
    let m = Arc::new(Monitor::<()>::new().unwrap());
    let m2 = m.clone();
    let started = Instant::now();
    let t = thread::spawn(move || m2.wait(None, |_| panic!("no events")).unwrap());
    thread::sleep(Duration::from_millis(50));
    m.wake().unwrap();
    assert_eq!(t.join().unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    // A wake with nobody waiting makes the next wait return at once.
    m.wake().unwrap();
    assert_eq!(m.wait(None, |_| {}).unwrap(), 0);
}

#[test]
fn shutdown_ends_current_and_future_waits() {
    let m = Arc::new(Monitor::<()>::new().unwrap());
    let kid = Kid::sleeper();
    m.watch_pid(kid.pid(), ()).unwrap();
    let m2 = m.clone();
    let t = thread::spawn(move || m2.wait(None, |_| {}).unwrap());
    thread::sleep(Duration::from_millis(20));
    m.shutdown().unwrap();
    assert_eq!(t.join().unwrap(), 0);
    assert!(m.is_shut_down());
    kid.kill();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(m.wait(None, |_| panic!("shut down")).unwrap(), 0);
}

#[test]
fn other_threads_add_and_remove_during_a_blocking_wait() {
    let m = Arc::new(Monitor::new().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(2));
    let (m2, done2, barrier2) = (m.clone(), done.clone(), barrier.clone());
    let waiter = thread::spawn(move || {
        let mut seen: HashMap<u32, u32> = HashMap::new();
        barrier2.wait();
        while !done2.load(Ordering::SeqCst) {
            m2.wait(None, |e| {
                *seen.entry(e.receiver).or_default() += 1;
                assert!(e.is_final());
            })
            .unwrap();
        }
        seen
    });
    barrier.wait();
    // Children exit while other watches are added and removed concurrently.
    let kids: Vec<Kid> = (0..20).map(|_| Kid::sh("sleep 0.05")).collect();
    let mut unwatched = 0;
    for (i, k) in kids.iter().enumerate() {
        let id = m.watch_pid(k.pid(), i as u32).unwrap();
        // Every third one is taken back before it can exit.
        if i % 3 == 0 && m.unwatch(id).is_ok() {
            unwatched += 1;
        }
        let e = new_eventfd();
        let tmp = m.watch_eventfd(e, 1000 + i as u32).unwrap();
        assert_eq!(m.unwatch(tmp).unwrap(), 1000 + i as u32);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m.is_empty() {
        assert!(Instant::now() < deadline, "{} watches still live", m.len());
        thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::SeqCst);
    m.wake().unwrap();
    let seen = waiter.join().unwrap();
    assert_eq!(seen.len() + unwatched, 20, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 1),
        "an exit delivered twice: {seen:?}"
    );
    assert!(seen.keys().all(|&k| k < 1000), "an unwatched eventfd fired");
}

#[test]
fn more_than_a_batch_of_ready_sources_are_all_delivered_once() {
    let m = Monitor::new().unwrap();
    let mut writers = Vec::new();
    for i in 0..300u32 {
        let fd = new_eventfd();
        writers.push(rustix::io::dup(&fd).unwrap());
        m.watch_eventfd(fd, i).unwrap();
    }
    for w in &writers {
        signal(w, 1);
    }
    let mut counts = vec![0u32; 300];
    let mut waits = 0;
    let mut total = 0;
    while total < 300 {
        let n = m
            .wait(Some(Duration::from_secs(5)), |e| {
                counts[e.receiver as usize] += 1
            })
            .unwrap();
        assert!(n > 0 && n <= 128, "one wait delivered {n}");
        total += n;
        waits += 1;
    }
    assert!(waits >= 3);
    assert!(counts.iter().all(|&c| c == 1), "{counts:?}");
    assert_eq!(m.wait(Some(Duration::from_millis(20)), |_| {}).unwrap(), 0);
}

#[test]
fn many_exits_are_each_delivered_exactly_once() {
    let m = Monitor::new().unwrap();
    let kids: Vec<Kid> = (0..200).map(|_| Kid::sleeper()).collect();
    for (i, k) in kids.iter().enumerate() {
        m.watch_pid(k.pid(), i).unwrap();
    }
    for k in &kids {
        k.kill();
    }
    let mut seen = vec![0; kids.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !m.is_empty() {
        assert!(Instant::now() < deadline);
        m.wait(Some(Duration::from_secs(1)), |e| {
            let x = exit_of(&e);
            assert_eq!(x.pid, kids[e.receiver].pid());
            assert_eq!(x.status, ExitStatus::Signal(9));
            seen[e.receiver] += 1;
        })
        .unwrap();
    }
    assert!(seen.iter().all(|&n| n == 1));
}

#[test]
fn timeouts_are_kept() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let t = Instant::now();
    assert_eq!(m.wait(Some(Duration::from_millis(30)), |_| {}).unwrap(), 0);
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    // A sub-millisecond timeout still sleeps (rounded up), rather than spinning.
    let t = Instant::now();
    for _ in 0..5 {
        m.wait(Some(Duration::from_micros(300)), |_| {}).unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(5), "{:?}", t.elapsed());
}

#[test]
fn monitor_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Monitor<String>>();
    check::<Monitor<Arc<str>>>();
}

#[test]
fn shutdown_reaches_every_waiting_thread() {
    let m = Arc::new(Monitor::<()>::new().unwrap());
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || m.wait(None, |_| {}).unwrap())
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    m.shutdown().unwrap();
    for w in waiters {
        assert_eq!(w.join().unwrap(), 0);
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}
