//! Eventfd counters: a caller's eventfd, or one the monitor made, drained
//! on every wake-up.
//!
//! This is the same mechanism the cgroup v1 OOM notification uses, offered
//! on its own so that any producer (another thread, a child that inherited
//! the fd) can signal a receiver through the monitor's one loop.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::event::epoll::EventFlags;
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::{read, write, Errno};

use crate::event::EventKind;
use crate::{Error, Subject};

pub(crate) const INTEREST: EventFlags = EventFlags::IN;

/// Reads an eventfd's counter, resetting it. `None` when it was already zero
/// (another waiter drained it first).
#[inline]
pub(crate) fn drain(fd: &OwnedFd) -> Result<Option<u64>, Errno> {
    let mut buf = [0u8; 8];
    match read(fd, &mut buf) {
        Ok(8) => Ok(Some(u64::from_ne_bytes(buf))),
        Ok(_) => Err(Errno::INVAL),
        Err(Errno::AGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The hot path's read: the count when the read returns all eight bytes,
/// else `None` (nothing there, or a failure: both rare, for
/// [`drain_slowly`]). Testing for the one good outcome alone lets the
/// compiler reduce it to one compare of the syscall's return value, with
/// no errno decode.
#[inline(always)]
pub(crate) fn read_count(fd: &OwnedFd) -> Option<u64> {
    let mut buf = [0u8; 8];
    match read(fd, &mut buf) {
        Ok(8) => Some(u64::from_ne_bytes(buf)),
        _ => None,
    }
}

/// After [`read_count`] gave nothing: reads again, and tells a drained
/// counter (another waiter got there first) from a failure. Reading twice
/// is sound because a watched fd is an eventfd (see [`check_is_eventfd`]):
/// its 8-byte read gives eight bytes, `EAGAIN`, or an error that comes
/// back the same, and consumes nothing when it fails. A count that arrived
/// in between is reported like any other.
#[cold]
#[inline(never)]
pub(crate) fn drain_slowly(fd: &OwnedFd) -> Option<EventKind> {
    on_ready(fd)
}

/// The kernel's one anonymous inode, which every eventfd (and timerfd,
/// signalfd, epoll fd) is a file of; learned from an eventfd the monitor
/// made. The check of a caller's fd when procfs cannot name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnonInode {
    dev: u64,
    ino: u64,
}

impl AnonInode {
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Result<AnonInode, Errno> {
        let st = rustix::fs::fstat(fd)?;
        Ok(AnonInode {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }
}

/// The link name of an eventfd in `/proc/self/fd`.
const EVENTFD_LINK: &str = "anon_inode:[eventfd]";

/// Refuses a caller's fd that is not an eventfd, before anything about it
/// is changed: a pipe, socket or file would be read as a counter, and
/// another anonymous file's read may consume state that a failed read
/// should have reported (a timerfd's `ECANCELED`). procfs names the kind;
/// without it, the fd must at least be a file of the anonymous inode.
pub(crate) fn check_is_eventfd(fd: BorrowedFd<'_>, anon: AnonInode) -> crate::Result<()> {
    let raw = fd.as_raw_fd();
    let what = match crate::pidfd::check::link_name(fd) {
        Some(link) if link == EVENTFD_LINK => return Ok(()),
        Some(link) => link,
        None => match AnonInode::of(fd) {
            Ok(inode) if inode == anon => return Ok(()),
            Ok(_) => "not an anonymous-inode file".to_string(),
            Err(e) => return Err(Error::os("fstat", Subject::Fd(raw), e)),
        },
    };
    Err(Error::invalid(
        "watch eventfd",
        Subject::Fd(raw),
        format!("not an eventfd ({what}): it would be read as a counter"),
    ))
}

/// Drains a readable eventfd into an event: the count, nothing (another
/// waiter got there first), or the failure.
#[inline(always)]
pub(crate) fn on_ready(fd: &OwnedFd) -> Option<EventKind> {
    match drain(fd) {
        Ok(Some(count)) => Some(EventKind::Signaled { count }),
        Ok(None) => None,
        Err(e) => Some(failed(fd, e)),
    }
}

#[cold]
pub(crate) fn failed(fd: &OwnedFd, e: Errno) -> EventKind {
    EventKind::Failed(Error::os("read eventfd", Subject::Fd(fd.as_raw_fd()), e))
}

/// Makes an eventfd that is close-on-exec and non-blocking by
/// construction, so that watching it needs no `fcntl` check.
#[inline]
pub(crate) fn create() -> Result<OwnedFd, Errno> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// The writing side of an eventfd that the monitor made
/// ([`NewEventfd`](crate::watch::NewEventfd)):
/// each [`signal`](Self::signal) adds to its counter, and the watch reports
/// the sum as [`EventKind::Signaled`](crate::EventKind::Signaled).
///
/// It shares the one open eventfd with the watch (no `dup`), so it stays
/// valid after the watch ends: the fd closes when both are gone, and a
/// signal after the end reaches nobody. `Clone` it to give it to several
/// producers; it is `Send + Sync`.
#[derive(Clone, Debug)]
pub struct EventfdWriter {
    fd: Arc<OwnedFd>,
}

impl EventfdWriter {
    /// The open eventfd `fd` for a watch, and its writer, which shares it.
    #[inline]
    pub(crate) fn new(fd: OwnedFd) -> (Arc<OwnedFd>, EventfdWriter) {
        let fd = Arc::new(fd);
        (fd.clone(), EventfdWriter { fd })
    }

    /// Adds `n` to the counter (`n` of 0 is allowed and wakes nobody). Fails
    /// only when the counter would overflow (`EAGAIN`: 2^64 - 2 unread).
    pub fn signal(&self, n: u64) -> crate::Result<()> {
        loop {
            match write(&*self.fd, &n.to_ne_bytes()) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(Error::os(
                        "write eventfd",
                        Subject::Fd(self.fd.as_raw_fd()),
                        e,
                    ))
                }
            }
        }
    }
}

impl AsFd for EventfdWriter {
    /// The eventfd, to pass to whatever else should signal it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
