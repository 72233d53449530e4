//! Fd hygiene: nothing leaks, everything is close-on-exec.
//!
//! One test per file: the fd table is process-wide, and tests in one binary
//! run on parallel threads.

mod common;

use ctrmon::watch::{Eventfd, NewEventfd, Process};
use std::time::Duration;

use common::{open_fds, Kid};
use ctrmon::Monitor;
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::{fcntl_getfd, FdFlags};

/// `None` for an fd that is gone (the directory handle `open_fds` used).
fn is_cloexec(fd: i32) -> Option<bool> {
    // Without `unsafe` there is no fcntl on a raw fd number, so read the
    // flags line of fdinfo (octal; O_CLOEXEC is 0o2000000).
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    Some(flags & 0o2000000 != 0)
}

#[test]
fn no_fd_leaks_and_every_fd_is_cloexec() {
    let before = open_fds();
    let m = Monitor::new().unwrap();
    let kids: Vec<Kid> = (0..3).map(|_| Kid::sleeper()).collect();
    for k in &kids {
        m.watch(Process::pid(k.pid()), 0usize).unwrap();
    }
    // A caller-supplied fd without CLOEXEC is made close-on-exec.
    let plain = eventfd(0, EventfdFlags::empty()).unwrap();
    assert!(!fcntl_getfd(&plain).unwrap().contains(FdFlags::CLOEXEC));
    m.watch(Eventfd::new(plain), 1).unwrap();

    let during = open_fds();
    let new: Vec<i32> = during
        .iter()
        .copied()
        .filter(|f| !before.contains(f))
        .collect();
    // epoll + waker + 3 pidfds + the eventfd (+ the kids' pidfds held by the
    // test guards, which are CLOEXEC too).
    assert!(new.len() >= 6, "{new:?}");
    let mut checked = 0;
    for fd in &new {
        if let Some(cloexec) = is_cloexec(*fd) {
            assert!(cloexec, "fd {fd} is not close-on-exec");
            checked += 1;
        }
    }
    assert!(checked >= 6, "checked only {checked} of {new:?}");

    // 10,000 watch/unwatch cycles of each kind.
    for i in 0..10_000usize {
        let efd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let id = m.watch(Eventfd::new(efd), i).unwrap();
        assert_eq!(m.unwatch(id).unwrap(), i);
        let id = m.watch(Process::pid(kids[i % 3].pid()), i).unwrap();
        assert_eq!(m.unwatch(id).unwrap(), i);
        // A made eventfd: `unwatch` keeps its emptied cold box for the next
        // one, but never the eventfd, which closes with the writer.
        let (id, writer) = m.watch(NewEventfd, i).unwrap();
        assert_eq!(m.unwatch(id).unwrap(), i);
        drop(writer);
    }
    assert_eq!(open_fds(), during, "fds leaked over 10,000 cycles");
    assert_eq!(m.len(), 4);

    // Exits close their pidfds.
    for k in &kids {
        k.kill();
    }
    let mut exits = 0;
    while exits < 3 {
        m.wait(Some(Duration::from_secs(10)), |e| {
            exits += usize::from(e.is_final())
        })
        .unwrap();
    }
    drop(m);
    drop(kids);
    assert_eq!(
        open_fds(),
        before,
        "fds left open after the monitor was dropped"
    );
}
