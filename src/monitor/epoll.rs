//! The epoll instance: create, add, delete, and a wait that keeps its deadline.
//!
//! A thin layer over `rustix::event::epoll`. The thing it adds is one that is easy to
//! get wrong: a timeout is rounded *up* to whole milliseconds, because `epoll_wait` counts
//! in milliseconds and a 0.3 ms timeout truncated to 0 turns a caller's
//! polling loop into a busy spin.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::Timespec;
use rustix::io::Errno;

/// How many events one `epoll_wait` can return; the buffer lives on the stack.
pub(crate) const BATCH: usize = 128;

/// The stack buffer `epoll_wait` fills.
pub(crate) type EventBuf = [MaybeUninit<epoll::Event>; BATCH];

/// The key and flags of one ready event, copied out of the kernel's packed
/// layout (`Event` is `repr(packed)` on x86-64, so no references into it).
#[inline(always)]
pub(crate) fn key_and_flags(ev: &epoll::Event) -> (u64, EventFlags) {
    let flags = ev.flags;
    let data = ev.data;
    (data.u64(), flags)
}

pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> Result<Epoll, Errno> {
        Ok(Epoll {
            fd: epoll::create(CreateFlags::CLOEXEC)?,
        })
    }

    #[inline]
    pub(crate) fn add(
        &self,
        source: BorrowedFd<'_>,
        data: u64,
        flags: EventFlags,
    ) -> Result<(), Errno> {
        epoll::add(&self.fd, source, EventData::new_u64(data), flags)
    }

    /// Changes `source`'s registration; also makes epoll poll it again.
    pub(crate) fn modify(
        &self,
        source: BorrowedFd<'_>,
        data: u64,
        flags: EventFlags,
    ) -> Result<(), Errno> {
        epoll::modify(&self.fd, source, EventData::new_u64(data), flags)
    }

    /// Removes `source`. Must come before the source fd is closed: epoll
    /// registrations belong to the open file, not the fd number, so if the
    /// caller holds a dup of the fd the registration would outlive our close
    /// and keep firing with a key that no longer means anything.
    #[inline]
    pub(crate) fn delete(&self, source: BorrowedFd<'_>) -> Result<(), Errno> {
        epoll::delete(&self.fd, source)
    }

    /// One `epoll_wait` of at most `timeout` (`None`: forever; whole
    /// milliseconds, from [`millis_timespec`]). Returns the ready events at the front of `buf`;
    /// none means the time passed.
    ///
    /// `EINTR` comes back as an error: the caller retries in its own loop
    /// with the same deadline (returning a borrow of `buf` from inside a retry
    /// loop here is something the borrow checker cannot yet accept).
    #[inline(always)]
    pub(crate) fn wait_once<'b>(
        &self,
        buf: &'b mut EventBuf,
        timeout: Option<&Timespec>,
    ) -> Result<&'b [epoll::Event], Errno> {
        let (events, _) = match timeout {
            // A poll (zero timeout) is the hot case: on a call site of its
            // own, rustix's conversion of the `Timespec` to milliseconds
            // (about 20 instructions) folds away. (When the timeout is a
            // constant, as in an inlined `wait_mut`, this test folds too.)
            Some(t) if t.tv_sec == 0 && t.tv_nsec == 0 => epoll::wait(
                &self.fd,
                buf,
                Some(&Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }),
            )?,
            other => epoll::wait(&self.fd, buf, other)?,
        };
        Ok(events)
    }

    /// [`wait_once`](Self::wait_once) for a retry, without its test for a
    /// zero timeout (a retry's is never zero: a poll is not retried).
    #[inline(always)]
    pub(crate) fn wait_again<'b>(
        &self,
        buf: &'b mut EventBuf,
        timeout: Option<&Timespec>,
    ) -> Result<&'b [epoll::Event], Errno> {
        let (events, _) = epoll::wait(&self.fd, buf, timeout)?;
        Ok(events)
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The longest single `epoll_wait` timeout; longer waits loop.
const MAX_WAIT_MS: u64 = i32::MAX as u64;

/// `d` rounded up to whole milliseconds, capped to what `epoll_wait` takes.
#[inline]
pub(crate) fn millis_timespec(d: Duration) -> Timespec {
    if d.is_zero() {
        // Polling is the hot case: skip the 128-bit division.
        return Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
    }
    let nanos = d.as_nanos();
    let ms = nanos.div_ceil(1_000_000).min(u128::from(MAX_WAIT_MS)) as u64;
    Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: Timespec) -> i64 {
        t.tv_sec * 1000 + t.tv_nsec / 1_000_000
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(ms(millis_timespec(Duration::ZERO)), 0);
        assert_eq!(ms(millis_timespec(Duration::from_nanos(1))), 1);
        assert_eq!(ms(millis_timespec(Duration::from_micros(300))), 1);
        assert_eq!(ms(millis_timespec(Duration::from_millis(1))), 1);
        assert_eq!(ms(millis_timespec(Duration::from_micros(1001))), 2);
        assert_eq!(ms(millis_timespec(Duration::from_millis(2500))), 2500);
        assert_eq!(
            ms(millis_timespec(Duration::from_secs(u64::MAX))),
            i32::MAX as i64
        );
    }
}
