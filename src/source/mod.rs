//! Sources of events: one kernel mechanism per file.
//!
//! Each source owns its fd, says what epoll interest it needs, and turns a
//! readiness into at most one [`EventKind`]. The monitor calls `on_ready`
//! with its table locked, so a source never runs caller code and never
//! blocks: every fd here is non-blocking, and a spurious wake-up (another
//! thread got there first) yields nothing.

pub(crate) mod eventfd;
pub(crate) mod hangup;
pub(crate) mod pidfd;

use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::epoll::EventFlags;

use crate::monitor::EventKind;

/// Everything the monitor can watch.
pub(crate) enum Source {
    Pid(pidfd::PidWatch),
    Hangup(hangup::HangupWatch),
    EventFd(eventfd::CounterWatch),
}

impl Source {
    pub(crate) fn interest(&self) -> EventFlags {
        match self {
            Source::Pid(_) => pidfd::INTEREST,
            Source::Hangup(_) => hangup::INTEREST,
            Source::EventFd(_) => eventfd::INTEREST,
        }
    }

    /// Turns a readiness into an event, if there is one to report.
    pub(crate) fn on_ready(&mut self, flags: EventFlags) -> Option<EventKind> {
        match self {
            Source::Pid(w) => w.on_ready(),
            Source::Hangup(_) => hangup::on_ready(flags),
            Source::EventFd(w) => w.on_ready(),
        }
    }

    /// Work owed when the monitor is dropped with the watch still live.
    pub(crate) fn on_monitor_drop(&self) {
        if let Source::Pid(w) = self {
            w.reap_if_exited();
        }
    }
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Pid(w) => w.fd.as_fd(),
            Source::Hangup(w) => w.fd.as_fd(),
            Source::EventFd(w) => w.fd.as_fd(),
        }
    }
}

/// Makes a caller-supplied fd safe to own: close-on-exec (so it cannot leak
/// into a container's process) and, where we read it, non-blocking (so a
/// wake-up another thread already consumed cannot block the loop).
pub(crate) fn adopt_fd(fd: BorrowedFd<'_>, nonblocking: bool) -> rustix::io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
    let fdflags = fcntl_getfd(fd)?;
    if !fdflags.contains(FdFlags::CLOEXEC) {
        fcntl_setfd(fd, fdflags | FdFlags::CLOEXEC)?;
    }
    if nonblocking {
        let fl = fcntl_getfl(fd)?;
        if !fl.contains(OFlags::NONBLOCK) {
            fcntl_setfl(fd, fl | OFlags::NONBLOCK)?;
        }
    }
    Ok(())
}
