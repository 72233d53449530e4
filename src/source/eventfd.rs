//! Eventfd counters: a caller's eventfd, drained on every wake-up.
//!
//! This is the same mechanism the cgroup v1 OOM notification uses, offered
//! on its own so that any producer (another thread, a child that inherited
//! the fd) can signal a receiver through the monitor's one loop.

use std::os::fd::OwnedFd;

use rustix::event::epoll::EventFlags;
use rustix::io::{read, Errno};

use crate::monitor::EventKind;
use crate::{Error, Subject};

pub(crate) const INTEREST: EventFlags = EventFlags::IN;

pub(crate) struct CounterWatch {
    pub(crate) fd: OwnedFd,
}

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

impl CounterWatch {
    #[inline]
    pub(crate) fn on_ready(&mut self) -> Option<EventKind> {
        match drain(&self.fd) {
            Ok(Some(count)) => Some(EventKind::Signaled { count }),
            Ok(None) => None,
            Err(e) => {
                use std::os::fd::AsRawFd;
                Some(EventKind::Failed(Error::os(
                    "read eventfd",
                    Subject::Fd(self.fd.as_raw_fd()),
                    e,
                )))
            }
        }
    }
}
