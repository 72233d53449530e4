//! The monitor core against real processes, FIFOs and eventfds.
//!
//! Every test that one thread can run runs twice, on both ways to wait:
//! `wait` (`&self`, the table behind the lock) and `wait_mut` (`&mut self`,
//! no lock); `on_both_paths!` makes a `shared` and an `owned` test of each.
//! The tests of other threads acting during a wait are for `wait` only: the
//! borrow checker rules them out for `wait_mut`.

mod common;

use ctrmon::watch::{Eventfd, ExitFifo, Hangup, NewEventfd, Process};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::Kid;
use ctrmon::{Event, EventKind, ExitStatus, Monitor, Receiver, WatchId, Watches};
use rustix::event::{eventfd, EventfdFlags};

const LONG: Option<Duration> = Some(Duration::from_secs(20));

/// The two ways to wait.
#[derive(Clone, Copy, Debug)]
enum Path {
    Shared,
    Owned,
}

/// What a handler adds and removes watches with: the monitor itself on
/// `wait`, its [`Watches`] on `wait_mut`.
trait Handle<T> {
    fn watch_pid(&self, pid: i32, receiver: T) -> ctrmon::Result<WatchId>;
    fn watch_eventfd(&self, fd: OwnedFd, receiver: T) -> ctrmon::Result<WatchId>;
    fn unwatch(&self, id: WatchId) -> ctrmon::Result<T>;
    fn contains(&self, id: WatchId) -> bool;
    /// A wait from inside a handler: only the shared path has one.
    fn nested_wait(&self) -> Option<usize>;
}

macro_rules! handle_impl {
    ($ty:ty, $nested:expr) => {
        impl<T> Handle<T> for $ty {
            fn watch_pid(&self, pid: i32, receiver: T) -> ctrmon::Result<WatchId> {
                self.watch(Process::pid(pid), receiver)
            }
            fn watch_eventfd(&self, fd: OwnedFd, receiver: T) -> ctrmon::Result<WatchId> {
                self.watch(Eventfd::new(fd), receiver)
            }
            fn unwatch(&self, id: WatchId) -> ctrmon::Result<T> {
                Self::unwatch(self, id)
            }
            fn contains(&self, id: WatchId) -> bool {
                Self::contains(self, id)
            }
            fn nested_wait(&self) -> Option<usize> {
                #[allow(clippy::redundant_closure_call)]
                ($nested)(self)
            }
        }
    };
}

handle_impl!(Monitor<T>, |m: &Monitor<T>| Some(
    m.wait(Some(Duration::ZERO), |e| panic!(
        "nested wait saw {:?}",
        e.kind
    ))
    .unwrap()
));
handle_impl!(Watches<'_, T>, |_| None);

/// One wait on `path`; the handler gets what to act on, either way.
fn wait<T>(
    path: Path,
    m: &mut Monitor<T>,
    timeout: Option<Duration>,
    mut handler: impl FnMut(Event<'_, T>, &dyn Handle<T>),
) -> usize {
    match path {
        Path::Shared => {
            let m: &Monitor<T> = m;
            m.wait(timeout, |e| handler(e, m))
        }
        Path::Owned => m.wait_mut(timeout, |e, w| handler(e, w)),
    }
    .unwrap()
}

/// Makes a `shared` and an `owned` test of each `fn name(path: Path)`.
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn shared() {
                super::$name(super::Path::Shared)
            }
            #[test]
            fn owned() {
                super::$name(super::Path::Owned)
            }
        }
    )*};
}

on_both_paths!(
    child_exit_code_is_reported_and_child_reaped,
    killed_child_reports_the_signal,
    zombie_is_reported_on_the_next_wait,
    without_reaping_leaves_the_zombie_to_the_caller,
    grandchild_exit_is_reported_with_the_kernels_status,
    exit_fifo_hangs_up_when_the_writer_exits,
    exit_fifo_race_a_late_reader_never_sees_the_hangup,
    a_linked_exit_fifo_opened_too_late_ends_with_its_process,
    a_linked_exit_fifo_that_hangs_up_first_is_reported_once,
    eventfd_counts_are_drained_and_the_watch_goes_on,
    stale_event_for_a_reused_slot_never_reaches_the_new_receiver,
    handler_can_add_and_remove_watches_without_deadlock,
    more_than_a_batch_of_ready_sources_are_all_delivered_once,
    many_exits_are_each_delivered_exactly_once,
    timeouts_are_kept,
    receivers_are_lent_and_handed_back_never_cloned,
    unwatching_a_lent_watch_hands_the_receiver_back_as_unwatched,
    made_eventfds_need_no_checks_and_outlive_their_watch,
    a_made_eventfds_reused_cold_box_holds_only_the_new_eventfd,
    a_wake_with_nobody_waiting_ends_the_next_wait,
    a_panicking_handler_leaves_its_lent_watch_in_place,
);

/// The error kind of `EBUSY` (`ResourceBusy`, stable since Rust 1.83).
fn busy() -> std::io::ErrorKind {
    std::io::Error::from(rustix::io::Errno::BUSY).kind()
}

/// A final event, detached from the wait that delivered it.
#[derive(Debug)]
struct Final<T> {
    id: WatchId,
    kind: EventKind,
    receiver: T,
}

/// Waits until one final event arrives and returns it; panics on timeout.
fn next_final<T: std::fmt::Debug>(path: Path, m: &mut Monitor<T>) -> Final<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() {
        assert!(Instant::now() < deadline, "no final event within 20 s");
        wait(path, m, Some(Duration::from_millis(200)), |e, _| {
            if e.is_final() {
                assert!(got.is_none(), "two final events in one wait: {e:?}");
                let (id, kind) = (e.id, e.kind);
                let receiver = e
                    .receiver
                    .into_owned()
                    .expect("a final event hands it back");
                got = Some(Final { id, kind, receiver });
            }
        });
    }
    got.unwrap()
}

fn exit_of(kind: &EventKind) -> ctrmon::Exit {
    match kind {
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

fn child_exit_code_is_reported_and_child_reaped(path: Path) {
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 7");
    let id = m.watch(Process::pid(kid.pid()), "seven").unwrap();
    assert_eq!(m.len(), 1);
    let e = next_final(path, &mut m);
    assert_eq!(e.id, id);
    assert_eq!(e.receiver, "seven");
    let x = exit_of(&e.kind);
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

fn killed_child_reports_the_signal(path: Path) {
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sleeper();
    m.watch(Process::pid(kid.pid()), ()).unwrap();
    // Nothing happens while it sleeps.
    let n = wait(path, &mut m, Some(Duration::from_millis(50)), |_, _| {
        panic!("no event")
    });
    assert_eq!(n, 0);
    kid.kill();
    let x = exit_of(&next_final(path, &mut m).kind);
    assert_eq!(x.status, ExitStatus::Signal(9));
    assert_eq!(x.status.shell_code(), Some(137));
}

fn zombie_is_reported_on_the_next_wait(path: Path) {
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 3");
    kid.wait_exited_no_reap();
    m.watch(Process::pid(kid.pid()), ()).unwrap();
    let mut got = Vec::new();
    let n = wait(path, &mut m, Some(Duration::ZERO), |e, _| {
        got.push(exit_of(&e.kind).status)
    });
    assert_eq!(n, 1);
    assert_eq!(got, [ExitStatus::Code(3)]);
}

#[test]
fn watching_a_reaped_child_is_a_clear_error() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let kid = Kid::sh("exit 0");
    assert!(kid.reap());
    let err = m.watch(Process::pid(kid.pid()), ()).unwrap_err();
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
        let err = m.watch(Process::pid(pid), ()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&pid.to_string()), "{err}");
    }
}

fn without_reaping_leaves_the_zombie_to_the_caller(path: Path) {
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 5");
    m.watch(Process::pid(kid.pid()).without_reaping(), ())
        .unwrap();
    let x = exit_of(&next_final(path, &mut m).kind);
    assert_eq!((x.status, x.reaped), (ExitStatus::Code(5), false));
    assert!(kid.reap(), "the zombie must still be ours to reap");
}

fn grandchild_exit_is_reported_with_the_kernels_status(path: Path) {
    let mut m = Monitor::new().unwrap();
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
    m.watch(Process::pid(grandchild), ()).unwrap();
    rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).unwrap();
    let x = exit_of(&next_final(path, &mut m).kind);
    // Its parent (`sh`, in `wait`) reaps it at once: the status comes from
    // its zombie if the monitor read it first, else from the kernel
    // (6.15+), or, before 6.15, there is none.
    let expected = if common::kernel_has_exit_info() || x.unknown.is_none() {
        (ExitStatus::Signal(9), None)
    } else {
        (ExitStatus::Unknown, Some(ctrmon::WhyUnknown::NoExitInfo))
    };
    assert_eq!(
        (x.pid, x.status, x.unknown, x.reaped),
        (grandchild, expected.0, expected.1, false)
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

fn exit_fifo_hangs_up_when_the_writer_exits(path: Path) {
    let dir = TempDir::new(&format!("fifo-{path:?}"));
    let fifo = mkfifo(&dir.0);
    let mut m = Monitor::new().unwrap();
    // The reader opens first (as the seed's monitor did) ...
    let id = m
        .watch(Hangup::new(open_fifo_reader(&fifo)), "shim")
        .unwrap();
    // ... then the writer connects, leaves unread data (so the hang-up comes
    // as EPOLLIN|EPOLLHUP at the kernel level) and exits.
    let _kid = Kid::sh(&format!(
        "exec 3>'{}'; echo data >&3; sleep 0.1",
        fifo.display()
    ));
    let e = next_final(path, &mut m);
    assert!(matches!(e.kind, EventKind::HungUp), "{e:?}");
    assert_eq!((e.id, e.receiver), (id, "shim"));
    assert!(m.is_empty());
}

fn exit_fifo_race_a_late_reader_never_sees_the_hangup(path: Path) {
    // Documented limitation, asserted so that it stays documented truthfully:
    // a writer that came and went before the reader opened leaves no HUP.
    let dir = TempDir::new(&format!("fifo-late-{path:?}"));
    let fifo = mkfifo(&dir.0);
    let holder = open_fifo_reader(&fifo); // lets the writer open without blocking
    let kid = Kid::sh(&format!("exec 3>'{}'; exit 0", fifo.display()));
    kid.wait_exited_no_reap();
    drop(holder);
    let mut m = Monitor::new().unwrap();
    m.watch(Hangup::new(open_fifo_reader(&fifo)), ()).unwrap();
    let n = wait(path, &mut m, Some(Duration::from_millis(100)), |_, _| {});
    assert_eq!(
        n, 0,
        "a reader opened after the writer left sees no hang-up"
    );
    // The remedy: pair the FIFO with a pidfd watch, which reports at once.
    m.watch(Process::pid(kid.pid()), ()).unwrap();
    assert!(matches!(
        next_final(path, &mut m).kind,
        EventKind::Exited(_)
    ));
}

/// Every event of `m` until both `a` and `b` have ended, in order.
fn until_both_end<T: std::fmt::Debug + Clone>(
    path: Path,
    m: &mut Monitor<T>,
    a: WatchId,
    b: WatchId,
) -> Vec<(WatchId, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: Vec<(WatchId, String)> = Vec::new();
    let ended = |got: &[(WatchId, String)], id| got.iter().any(|(g, _)| *g == id);
    while !(ended(&got, a) && ended(&got, b)) {
        assert!(Instant::now() < deadline, "not both ended: {got:?}");
        wait(path, m, Some(Duration::from_millis(200)), |e, _| {
            assert!(e.is_final(), "{e:?}");
            got.push((e.id, format!("{:?}", e.kind)));
        });
    }
    got
}

fn a_linked_exit_fifo_opened_too_late_ends_with_its_process(path: Path) {
    // The writer came and went before the reader opened (the FIFO race):
    // linked to its process, the FIFO's watch still ends, right after the
    // process's exit.
    let dir = TempDir::new(&format!("fifo-linked-late-{path:?}"));
    let fifo = mkfifo(&dir.0);
    let holder = open_fifo_reader(&fifo);
    // The writer opens the FIFO, closes it, and runs on as `sleep`.
    let kid = Kid::sh(&format!(
        "exec 3>'{}'; exec 3>&-; exec sleep 600",
        fifo.display()
    ));
    let mut m = Monitor::new().unwrap();
    let pid = m.watch(Process::pid(kid.pid()), "init").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/comm", kid.pid())).unwrap_or_default()
        != "sleep\n"
    {
        assert!(Instant::now() < deadline, "the writer never got to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(holder);
    let late = open_fifo_reader(&fifo);
    let exit_fifo = m.watch(ExitFifo::new(late, pid), "fifo").unwrap();
    // Nothing while it runs.
    assert_eq!(
        wait(path, &mut m, Some(Duration::from_millis(100)), |_, _| {}),
        0
    );
    kid.kill();
    let got = until_both_end(path, &mut m, pid, exit_fifo);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, pid, "the exit first: {got:?}");
    assert!(got[0].1.starts_with("Exited"), "{got:?}");
    assert_eq!((got[1].0, got[1].1.as_str()), (exit_fifo, "HungUp"));
    assert!(m.is_empty());
}

fn a_linked_exit_fifo_that_hangs_up_first_is_reported_once(path: Path) {
    let dir = TempDir::new(&format!("fifo-linked-{path:?}"));
    let fifo = mkfifo(&dir.0);
    let mut m = Monitor::new().unwrap();
    let reader = open_fifo_reader(&fifo);
    // The writer closes the FIFO, then lives on a little.
    let kid = Kid::sh(&format!(
        "exec 3>'{}'; exec 3>&-; sleep 0.3",
        fifo.display()
    ));
    let pid = m.watch(Process::pid(kid.pid()), "init").unwrap();
    let exit_fifo = m.watch(ExitFifo::new(reader, pid), "fifo").unwrap();
    let got = until_both_end(path, &mut m, pid, exit_fifo);
    assert_eq!(got.len(), 2, "each ends once: {got:?}");
    assert_eq!((got[0].0, got[0].1.as_str()), (exit_fifo, "HungUp"));
    assert_eq!(got[1].0, pid);
    // A FIFO linked to a watch that has ended is refused.
    let err = m
        .watch(ExitFifo::new(open_fifo_reader(&fifo), pid), "again")
        .unwrap_err();
    assert!(
        err.to_string().contains("not a live process watch"),
        "{err}"
    );
    assert!(m.is_empty());
}

fn eventfd_counts_are_drained_and_the_watch_goes_on(path: Path) {
    let mut m = Monitor::new().unwrap();
    let fd = new_eventfd();
    let writer = rustix::io::dup(&fd).unwrap();
    let id = m.watch(Eventfd::new(fd), 42u32).unwrap();
    signal(&writer, 2);
    signal(&writer, 3);
    let mut got = Vec::new();
    wait(path, &mut m, LONG, |e, _| {
        got.push((e.id, *e.receiver, e.is_final(), format!("{:?}", e.kind)))
    });
    assert_eq!(got, [(id, 42, false, "Signaled { count: 5 }".to_string())]);
    // Drained: nothing more until the next write.
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(wait(path, &mut m, quiet, |_, _| panic!()), 0);
    signal(&writer, 1);
    assert_eq!(wait(path, &mut m, LONG, |_, _| {}), 1);
    assert_eq!(m.unwatch(id).unwrap(), 42);
    // Unwatched: a dup'ed writer firing must not reach the loop.
    signal(&writer, 1);
    assert_eq!(wait(path, &mut m, quiet, |_, _| panic!()), 0);
    assert!(m.unwatch(id).is_err(), "a second unwatch must fail");
}

fn stale_event_for_a_reused_slot_never_reaches_the_new_receiver(path: Path) {
    let mut m = Monitor::new().unwrap();
    let (a, b) = (new_eventfd(), new_eventfd());
    let (wa, wb) = (rustix::io::dup(&a).unwrap(), rustix::io::dup(&b).unwrap());
    let ida = m.watch(Eventfd::new(a), "a").unwrap();
    let idb = m.watch(Eventfd::new(b), "b").unwrap();
    signal(&wa, 1);
    signal(&wb, 1);
    // Both are ready in one batch. Whichever comes first removes the other and
    // adds a new watch, which reuses the freed slot (LIFO).
    let mut delivered = Vec::new();
    let mut replacement: Option<WatchId> = None;
    let c = new_eventfd();
    let mut c = Some(c);
    wait(path, &mut m, LONG, |e, m| {
        delivered.push(*e.receiver);
        if replacement.is_none() {
            let other = if e.id == ida { idb } else { ida };
            m.unwatch(other).unwrap();
            replacement = Some(m.watch_eventfd(c.take().unwrap(), "c").unwrap());
        }
    });
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
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(wait(path, &mut m, quiet, |e, _| panic!("{e:?}")), 0);
}

fn handler_can_add_and_remove_watches_without_deadlock(path: Path) {
    let mut m = Monitor::new().unwrap();
    let first = Kid::sh("exit 1");
    let second = Kid::sleeper();
    m.watch(Process::pid(first.pid()), 1).unwrap();
    let mut second_id = None;
    let mut exits = Vec::new();
    let e = next_final(path, &mut m);
    wait(path, &mut m, Some(Duration::ZERO), |_, _| {});
    exits.push(e.receiver);
    let mut handled = false;
    let third = Kid::sh("exit 3");
    m.watch(Process::pid(third.pid()), 3).unwrap();
    // From inside a handler: watch, unwatch, rewatch, even wait (on the
    // shared path).
    while !handled {
        wait(path, &mut m, LONG, |e, m| {
            exits.push(*e.receiver);
            let id = m.watch_pid(second.pid(), 2).unwrap();
            assert_eq!(m.unwatch(id).unwrap(), 2);
            second_id = Some(m.watch_pid(second.pid(), 2).unwrap());
            if let Some(n) = m.nested_wait() {
                assert_eq!(n, 0);
            }
            handled = true;
        });
    }
    assert_eq!(exits, [1, 3]);
    assert!(m.contains(second_id.unwrap()));
    second.kill();
    assert_eq!(next_final(path, &mut m).receiver, 2);
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
    m.watch(Process::pid(kid.pid()), ()).unwrap();
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
                assert!(e.is_final());
                *seen.entry(*e.receiver).or_default() += 1;
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
        let id = m.watch(Process::pid(k.pid()), i as u32).unwrap();
        // Every third one is taken back before it can exit.
        if i % 3 == 0 && m.unwatch(id).is_ok() {
            unwatched += 1;
        }
        let e = new_eventfd();
        let tmp = m.watch(Eventfd::new(e), 1000 + i as u32).unwrap();
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

fn more_than_a_batch_of_ready_sources_are_all_delivered_once(path: Path) {
    let mut m = Monitor::new().unwrap();
    let mut writers = Vec::new();
    for i in 0..300u32 {
        let fd = new_eventfd();
        writers.push(rustix::io::dup(&fd).unwrap());
        m.watch(Eventfd::new(fd), i).unwrap();
    }
    for w in &writers {
        signal(w, 1);
    }
    let mut counts = vec![0u32; 300];
    let mut waits = 0;
    let mut total = 0;
    while total < 300 {
        let n = wait(path, &mut m, Some(Duration::from_secs(5)), |e, _| {
            counts[*e.receiver as usize] += 1
        });
        assert!(n > 0 && n <= 128, "one wait delivered {n}");
        total += n;
        waits += 1;
    }
    assert!(waits >= 3);
    assert!(counts.iter().all(|&c| c == 1), "{counts:?}");
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(wait(path, &mut m, quiet, |_, _| {}), 0);
}

fn many_exits_are_each_delivered_exactly_once(path: Path) {
    let mut m = Monitor::new().unwrap();
    let kids: Vec<Kid> = (0..200).map(|_| Kid::sleeper()).collect();
    for (i, k) in kids.iter().enumerate() {
        m.watch(Process::pid(k.pid()), i).unwrap();
    }
    for k in &kids {
        k.kill();
    }
    let mut seen = vec![0; kids.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !m.is_empty() {
        assert!(Instant::now() < deadline);
        wait(path, &mut m, Some(Duration::from_secs(1)), |e, _| {
            let x = exit_of(&e.kind);
            let i = e.into_receiver().expect("an exit hands the receiver back");
            assert_eq!(x.pid, kids[i].pid());
            assert_eq!(x.status, ExitStatus::Signal(9));
            seen[i] += 1;
        });
    }
    assert!(seen.iter().all(|&n| n == 1));
}

fn timeouts_are_kept(path: Path) {
    let mut m: Monitor<()> = Monitor::new().unwrap();
    let t = Instant::now();
    assert_eq!(
        wait(path, &mut m, Some(Duration::from_millis(30)), |_, _| {}),
        0
    );
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    // A sub-millisecond timeout still sleeps (rounded up), rather than spinning.
    let t = Instant::now();
    for _ in 0..5 {
        wait(path, &mut m, Some(Duration::from_micros(300)), |_, _| {});
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

/// A receiver that cannot be cloned: what a shim would keep per container.
#[derive(Debug, PartialEq)]
struct Counter {
    name: &'static str,
    signals: u64,
}

fn receivers_are_lent_and_handed_back_never_cloned(path: Path) {
    let mut m = Monitor::new().unwrap();
    let fd = new_eventfd();
    let writer = rustix::io::dup(&fd).unwrap();
    let id = m
        .watch(
            Eventfd::new(fd),
            Counter {
                name: "jobs",
                signals: 0,
            },
        )
        .unwrap();
    for n in 1..=3 {
        signal(&writer, n);
        wait(path, &mut m, LONG, |e, _| {
            let Receiver::Lent(counter) = e.receiver else {
                panic!("a non-final event lends the receiver")
            };
            if let EventKind::Signaled { count } = e.kind {
                counter.signals += count;
            }
        });
    }
    // The changes made through the lent receiver stayed in the monitor.
    let back = m.unwatch(id).unwrap();
    assert_eq!(
        back,
        Counter {
            name: "jobs",
            signals: 6
        }
    );
    // A final event moves it out.
    let kid = Kid::sh("exit 0");
    m.watch(
        Process::pid(kid.pid()),
        Counter {
            name: "kid",
            signals: 0,
        },
    )
    .unwrap();
    let e = next_final(path, &mut m);
    assert_eq!(e.receiver.name, "kid");
}

fn unwatching_a_lent_watch_hands_the_receiver_back_as_unwatched(path: Path) {
    let mut m = Monitor::new().unwrap();
    let (id, writer) = m.watch(NewEventfd, String::from("self")).unwrap();
    let (other, other_writer) = m.watch(NewEventfd, String::from("other")).unwrap();
    writer.signal(1).unwrap();
    let mut seen = Vec::new();
    wait(path, &mut m, LONG, |e, m| {
        let is_final = e.is_final();
        seen.push((e.id, format!("{:?}", e.kind), e.receiver.clone(), is_final));
        if e.id == id && !is_final {
            // Our own watch, whose receiver we hold: it ends now, and the
            // receiver comes back right after this handler.
            let err = m.unwatch(id).unwrap_err();
            assert_eq!(err.kind(), busy(), "{err}");
            assert!(!m.contains(id));
            assert!(m.unwatch(id).is_err(), "ended once");
            // Another watch is not lent: it comes back at once.
            assert_eq!(m.unwatch(other).unwrap(), "other");
        }
    });
    assert_eq!(
        seen,
        [
            (id, "Signaled { count: 1 }".into(), "self".into(), false),
            (id, "Unwatched".into(), "self".into(), true),
        ]
    );
    assert!(m.is_empty());
    // Nothing more for either: their fds are out of epoll.
    writer.signal(1).unwrap();
    other_writer.signal(1).unwrap();
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(wait(path, &mut m, quiet, |e, _| panic!("{e:?}")), 0);
}

fn made_eventfds_need_no_checks_and_outlive_their_watch(path: Path) {
    use rustix::fs::{fcntl_getfl, OFlags};
    use rustix::io::{fcntl_getfd, FdFlags};
    use std::os::fd::AsFd;
    let mut m = Monitor::new().unwrap();
    let (id, writer) = m.watch(NewEventfd, 7u8).unwrap();
    assert!(fcntl_getfd(writer.as_fd())
        .unwrap()
        .contains(FdFlags::CLOEXEC));
    assert!(fcntl_getfl(writer.as_fd())
        .unwrap()
        .contains(OFlags::NONBLOCK));
    // From another thread, through a clone.
    let w2 = writer.clone();
    thread::spawn(move || w2.signal(40).unwrap())
        .join()
        .unwrap();
    writer.signal(2).unwrap();
    let mut got = 0;
    while got < 42 {
        wait(path, &mut m, LONG, |e, _| {
            assert_eq!((e.id, *e.receiver), (id, 7));
            if let EventKind::Signaled { count } = e.kind {
                got += count;
            }
        });
    }
    assert_eq!(got, 42);
    assert_eq!(m.unwatch(id).unwrap(), 7);
    // The writer still holds the eventfd: signalling reaches nobody, and
    // fails nothing.
    writer.signal(1).unwrap();
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(wait(path, &mut m, quiet, |e, _| panic!("{e:?}")), 0);
}

/// `unwatch` keeps a made eventfd's emptied cold box and the next
/// `watch_new_eventfd` reuses it: the new watch reads its own eventfd, and
/// the old writer, still alive, reaches nobody.
fn a_made_eventfds_reused_cold_box_holds_only_the_new_eventfd(path: Path) {
    let mut m = Monitor::new().unwrap();
    let (old, old_writer) = m.watch(NewEventfd, 1u32).unwrap();
    assert_eq!(m.unwatch(old).unwrap(), 1);
    for round in 2..5u32 {
        let (id, writer) = m.watch(NewEventfd, round).unwrap();
        old_writer.signal(100).unwrap();
        writer.signal(u64::from(round)).unwrap();
        let mut got = 0;
        while got < u64::from(round) {
            wait(path, &mut m, LONG, |e, _| {
                assert_eq!((e.id, *e.receiver), (id, round));
                if let EventKind::Signaled { count } = e.kind {
                    got += count;
                }
            });
        }
        assert_eq!(got, u64::from(round));
        assert_eq!(m.unwatch(id).unwrap(), round);
        writer.signal(1).unwrap();
        let quiet = Some(Duration::from_millis(20));
        assert_eq!(wait(path, &mut m, quiet, |e, _| panic!("{e:?}")), 0);
    }
}

fn a_wake_with_nobody_waiting_ends_the_next_wait(path: Path) {
    let mut m: Monitor<()> = Monitor::new().unwrap();
    m.wake().unwrap();
    let t = Instant::now();
    assert_eq!(wait(path, &mut m, None, |_, _| panic!("no events")), 0);
    assert!(t.elapsed() < Duration::from_secs(10));
    m.shutdown().unwrap();
    assert_eq!(wait(path, &mut m, None, |_, _| panic!("shut down")), 0);
    assert_eq!(wait(path, &mut m, None, |_, _| panic!("shut down")), 0);
}

#[test]
fn another_thread_unwatching_during_a_delivery_waits_for_the_receiver() {
    let m = Arc::new(Monitor::new().unwrap());
    let (id, writer) = m.watch(NewEventfd, 5u32).unwrap();
    writer.signal(1).unwrap();
    let in_handler = Arc::new(Barrier::new(2));
    let (m2, in2) = (m.clone(), in_handler.clone());
    let other = thread::spawn(move || {
        in2.wait();
        let t = Instant::now();
        let r = m2.unwatch(id);
        (r, t.elapsed())
    });
    let mut seen = Vec::new();
    m.wait(LONG, |e| {
        if !e.is_final() {
            in_handler.wait();
            // The other thread is in `unwatch` now, waiting for us.
            thread::sleep(Duration::from_millis(100));
        }
        seen.push((format!("{:?}", e.kind), *e.receiver));
    })
    .unwrap();
    let (r, waited) = other.join().unwrap();
    assert_eq!(r.unwrap(), 5, "unwatch from a free thread hands it back");
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert_eq!(seen, [("Signaled { count: 1 }".to_string(), 5)]);
    assert!(m.is_empty());
    let quiet = Some(Duration::from_millis(20));
    assert_eq!(m.wait(quiet, |e| panic!("{e:?}")).unwrap(), 0);
}

#[test]
fn two_handlers_unwatching_each_others_lent_watches_do_not_deadlock() {
    let m = Arc::new(Monitor::new().unwrap());
    let (x, wx) = m.watch(NewEventfd, "x").unwrap();
    let (y, wy) = m.watch(NewEventfd, "y").unwrap();
    let both_in = Arc::new(Barrier::new(2));
    let both_tried = Arc::new(Barrier::new(2));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (m, both_in, both_tried) = (m.clone(), both_in.clone(), both_tried.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() < 2 {
                    m.wait(Some(Duration::from_secs(20)), |e| {
                        if !e.is_final() {
                            both_in.wait();
                            let other = if e.id == x { y } else { x };
                            let err = m.unwatch(other).unwrap_err();
                            assert_eq!(err.kind(), busy(), "{err}");
                            both_tried.wait();
                        }
                        seen.push((*e.receiver, format!("{:?}", e.kind)));
                    })
                    .unwrap();
                }
                seen
            })
        })
        .collect();
    wx.signal(1).unwrap();
    // Let one thread take x and sit in its handler; y then goes to the other.
    thread::sleep(Duration::from_millis(100));
    wy.signal(1).unwrap();
    let mut all: Vec<_> = waiters
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            ("x", "Signaled { count: 1 }".to_string()),
            ("x", "Unwatched".to_string()),
            ("y", "Signaled { count: 1 }".to_string()),
            ("y", "Unwatched".to_string()),
        ]
    );
    assert!(m.is_empty());
}

/// Any handler of a shared wait, not only one that holds a lent receiver,
/// fails `unwatch` of another thread's lent watch with `ResourceBusy`
/// rather than waiting: here a final event's handler, while the other
/// thread's handler waits for it.
#[test]
fn a_final_event_handler_does_not_wait_for_another_threads_lend() {
    let m = Arc::new(Monitor::new().unwrap());
    let (x, wx) = m.watch(NewEventfd, "x").unwrap();
    let (in_b, b_in) = std::sync::mpsc::channel();
    let (a_done, a_tried) = std::sync::mpsc::channel::<()>();
    let b = {
        let m = m.clone();
        thread::spawn(move || {
            let mut seen = Vec::new();
            while seen.len() < 2 {
                m.wait(LONG, |e| {
                    if !e.is_final() {
                        in_b.send(()).unwrap();
                        // Until the other thread's handler has tried.
                        a_tried.recv_timeout(Duration::from_secs(20)).unwrap();
                    }
                    seen.push((*e.receiver, format!("{:?}", e.kind)));
                })
                .unwrap();
            }
            seen
        })
    };
    wx.signal(1).unwrap();
    b_in.recv_timeout(Duration::from_secs(20)).unwrap();
    let kid = Kid::sh("exit 0");
    m.watch(Process::pid(kid.pid()), "kid").unwrap();
    let mut tried = None;
    while tried.is_none() {
        m.wait(LONG, |e| {
            assert!(e.is_final(), "{e:?}");
            let t = Instant::now();
            let r = m.unwatch(x);
            tried = Some((r.map_err(|e| e.kind()), t.elapsed()));
            a_done.send(()).unwrap();
        })
        .unwrap();
    }
    let (r, took) = tried.unwrap();
    assert_eq!(r, Err(busy()));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        b.join().unwrap(),
        [
            ("x", "Signaled { count: 1 }".to_string()),
            ("x", "Unwatched".to_string()),
        ]
    );
    assert!(m.is_empty());
}

#[test]
fn receivers_need_not_be_clone_or_sync() {
    // A oneshot-like sender: neither Clone nor Sync; the monitor is still
    // Send + Sync, and waits on both paths.
    fn check<T: Send + Sync>() {}
    check::<Monitor<std::sync::mpsc::SyncSender<()>>>();
    check::<Monitor<std::cell::Cell<u8>>>();
    check::<ctrmon::EventfdWriter>();
    let (tx, rx) = std::sync::mpsc::sync_channel::<i32>(1);
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 4");
    m.watch(Process::pid(kid.pid()), tx).unwrap();
    let mut left = 1;
    while left > 0 {
        m.wait_mut(LONG, |e, _| {
            if let (EventKind::Exited(x), Receiver::Owned(tx)) = (&e.kind, e.receiver) {
                tx.send(x.status.shell_code().unwrap()).unwrap();
                left -= 1;
            }
        })
        .unwrap();
    }
    assert_eq!(rx.recv().unwrap(), 4);
}

fn a_panicking_handler_leaves_its_lent_watch_in_place(path: Path) {
    let mut m = Monitor::new().unwrap();
    let (id, writer) = m.watch(NewEventfd, vec![1u8, 2, 3]).unwrap();
    writer.signal(1).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait(path, &mut m, LONG, |e, _| {
            assert!(e.receiver.into_owned().is_none(), "a signal lends it");
            panic!("handler failed");
        })
    }));
    assert!(caught.is_err());
    // The watch is as it was: live, reporting, and its receiver intact.
    assert!(m.contains(id));
    assert_eq!(m.len(), 1);
    writer.signal(2).unwrap();
    let mut got = Vec::new();
    wait(path, &mut m, LONG, |e, _| {
        got.push((format!("{:?}", e.kind), e.receiver.clone()))
    });
    assert_eq!(got, [("Signaled { count: 2 }".to_string(), vec![1, 2, 3])]);
    assert_eq!(m.unwatch(id).unwrap(), [1, 2, 3]);
}

/// `wait_mut` lends the receiver in place: what the handler writes through
/// it stays in the monitor, and what it adds while holding it (more watches
/// than the table has free slots, so they are stored aside until it
/// returns) are live and get their events from the next wait on.
#[test]
fn owned_in_place_receivers_keep_changes_and_handler_adds_are_live() {
    let mut m: Monitor<u64> = Monitor::new().unwrap();
    let a = new_eventfd();
    let wa = rustix::io::dup(&a).unwrap();
    let ida = m.watch(Eventfd::new(a), 0).unwrap();
    signal(&wa, 5);
    let mut added = Vec::new();
    let mut writers = Vec::new();
    let n = m
        .wait_mut(LONG, |e, w| {
            let mut r = e.receiver;
            *r += 100;
            // No free slot: these go past the end of the table.
            for i in 0..5 {
                let (id, writer) = w.watch(NewEventfd, 1000 + i).unwrap();
                assert!(w.contains(id));
                added.push(id);
                writers.push(writer);
            }
            // One of them ends at once, from the same handler.
            assert_eq!(w.unwatch(added[4]).unwrap(), 1004);
            assert_eq!(w.len(), 5);
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(m.len(), 5);
    for (w, id) in writers.iter().zip(&added).take(4) {
        assert!(m.contains(*id));
        w.signal(1).unwrap();
    }
    assert!(!m.contains(added[4]));
    let mut seen = Vec::new();
    while seen.len() < 4 {
        m.wait_mut(LONG, |e, _| seen.push(*e.receiver)).unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, [1000, 1001, 1002, 1003]);
    // The first receiver kept the handler's change.
    assert_eq!(m.unwatch(ida).unwrap(), 100);
}

/// A handler of `wait_mut` that unwatches the watch whose receiver it holds
/// in place and then panics leaves the monitor consistent: the watch is
/// gone, the count is right, and the monitor goes on.
#[test]
fn owned_handler_panicking_after_unwatching_its_own_watch() {
    let mut m: Monitor<&str> = Monitor::new().unwrap();
    let (a, b) = (new_eventfd(), new_eventfd());
    let (wa, wb) = (rustix::io::dup(&a).unwrap(), rustix::io::dup(&b).unwrap());
    let ida = m.watch(Eventfd::new(a), "a").unwrap();
    let idb = m.watch(Eventfd::new(b), "b").unwrap();
    signal(&wa, 1);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.wait_mut(LONG, |e, w| {
            assert!(w.unwatch(e.id).is_err(), "its receiver is in hand");
            panic!("handler gives up");
        })
    }));
    assert!(panicked.is_err());
    assert!(!m.contains(ida));
    assert_eq!(m.len(), 1);
    signal(&wa, 1);
    signal(&wb, 1);
    let mut seen = Vec::new();
    m.wait_mut(LONG, |e, _| seen.push((e.id, *e.receiver)))
        .unwrap();
    assert_eq!(seen, [(idb, "b")]);
    assert!(m.unwatch(ida).is_err());
}

/// A handler of `wait_mut` for a final event (its receiver handed over, not
/// held in place) that adds a watch when the table has no free slot (so it
/// is stored aside), then removes most of the table and panics: the watch
/// it added is still reachable by its id and gets its events, even though
/// the table gave memory back after the removals.
#[test]
fn owned_handler_panicking_after_adding_to_a_full_table() {
    let mut m: Monitor<u32> = Monitor::new().unwrap();
    let mut fds = Vec::new();
    let mut ids = Vec::new();
    for i in 0..100 {
        let fd = new_eventfd();
        fds.push(rustix::io::dup(&fd).unwrap());
        ids.push(m.watch(Eventfd::new(fd), i).unwrap());
    }
    let (r, w) = rustix::pipe::pipe().unwrap();
    m.watch(Hangup::new(r), 1000).unwrap();
    drop(w);
    let mut added = Vec::new();
    let mut writers = Vec::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.wait_mut(LONG, |e, w| {
            assert!(e.is_final(), "{:?}", e.kind);
            // The first takes the hang-up's freed slot, the rest go past
            // the end of the table.
            for i in 0..3 {
                let (id, wr) = w.watch(NewEventfd, 2000 + i).unwrap();
                added.push(id);
                writers.push(wr);
            }
            for id in &ids[10..] {
                w.unwatch(*id).unwrap();
            }
            panic!("handler gives up");
        })
    }));
    assert!(panicked.is_err());
    for id in &added {
        assert!(m.contains(*id), "an added watch is lost");
    }
    assert_eq!(m.len(), 13);
    // A final event on the shared path frees a slot, and the table may
    // give memory back: the added watches keep their ids.
    let (r, w) = rustix::pipe::pipe().unwrap();
    m.watch(Hangup::new(r), 3000).unwrap();
    drop(w);
    assert_eq!(m.wait(LONG, |e| assert!(e.is_final())).unwrap(), 1);
    for wr in &writers {
        wr.signal(3).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        m.wait_mut(LONG, |e, _| got.push((e.id, *e.receiver)))
            .unwrap();
    }
    got.sort_unstable_by_key(|g| g.1);
    let want: Vec<(WatchId, u32)> = added.iter().copied().zip(2000..).collect();
    assert_eq!(got, want);
    for (id, r) in want {
        assert_eq!(m.unwatch(id).unwrap(), r);
    }
    for id in &ids[..10] {
        assert!(m.contains(*id));
    }
}

/// `watch_eventfd` refuses what is not an eventfd before changing it: a
/// pipe (its file description stays blocking) and a timerfd, each named.
#[test]
fn watch_eventfd_refuses_other_fds_untouched() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let dup = rustix::io::dup(&r).unwrap();
    let err = m.watch(Eventfd::new(r), ()).unwrap_err().to_string();
    assert!(err.contains("not an eventfd (pipe:["), "{err}");
    let flags = rustix::fs::fcntl_getfl(&dup).unwrap();
    assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK), "{flags:?}");
    let tfd = rustix::time::timerfd_create(
        rustix::time::TimerfdClockId::Monotonic,
        rustix::time::TimerfdFlags::CLOEXEC,
    )
    .unwrap();
    let err = m.watch(Eventfd::new(tfd), ()).unwrap_err().to_string();
    assert!(err.contains("anon_inode:[timerfd]"), "{err}");
    assert!(m.is_empty());
}
