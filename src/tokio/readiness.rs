//! The monitor's epoll fd in tokio's reactor, and the drain-until-empty rule.
//!
//! Why not `AsyncFd`: tokio 1.51.6, 1.53.3 and 1.54 deprecate
//! `AsyncFd::{new, with_interest, try_new, try_with_interest}` as unsound
//! (tokio#8587: an `AsRawFd` does not prove the fd stays open), and their
//! replacements, `AsyncFd::register` and `register_with_interest`, are
//! `unsafe`. Tokio's safe, I/O-safe way to put an owned fd in its reactor
//! for read readiness is `net::unix::pipe::Receiver::from_owned_fd_unchecked`:
//! it takes an `OwnedFd` and registers it for `READABLE` (edge-triggered, as
//! everything in tokio), nothing more. We hand it a duplicate of the
//! monitor's epoll fd (the same epoll instance) and use only its readiness:
//! `readable`, `try_io` and `as_fd`. We never call its reads: an epoll fd
//! is not a pipe, and `read` on it fails with `EINVAL`.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use ::tokio::net::unix::pipe;
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::{Error, Result, Subject};

/// A duplicate of the monitor's epoll fd, registered with the current
/// runtime's reactor.
pub(super) struct Readiness {
    rx: pipe::Receiver,
}

/// One zero-timeout wait on the monitor, as the shared or the owning path
/// does it.
pub(super) trait Drain {
    fn shut_down(&self) -> bool;
    fn once(&mut self) -> Result<usize>;
}

/// What one [`Readiness::step`] did.
pub(super) enum Step {
    /// Events were delivered; readiness stays set (more may be queued).
    Delivered(usize),
    /// The monitor is shut down.
    ShutDown,
    /// Nothing delivered, yet the epoll fd is still readable (a batch of
    /// stale events, or a source another thread is delivering): look again
    /// after letting other tasks run.
    Busy,
    /// Drained: readiness was cleared (unless the reactor saw a new edge
    /// meanwhile), or it was not set to begin with.
    Empty,
    Failed(Error),
}

impl Readiness {
    /// Registers a duplicate of `epoll` with the current runtime.
    ///
    /// Fails outside a tokio runtime; panics (in tokio) inside one whose I/O
    /// driver is disabled.
    pub(super) fn new(epoll: std::os::fd::BorrowedFd<'_>) -> Result<Readiness> {
        let raw = epoll.as_raw_fd();
        if let Err(e) = ::tokio::runtime::Handle::try_current() {
            return Err(Error::new(
                "register with the tokio reactor the epoll fd",
                Subject::Fd(raw),
                io::Error::other(e),
            ));
        }
        let dup = rustix::io::fcntl_dupfd_cloexec(epoll, 0)
            .map_err(|e| Error::new("duplicate the epoll fd", Subject::Fd(raw), e.into()))?;
        let rx = pipe::Receiver::from_owned_fd_unchecked(dup).map_err(|e| {
            Error::new(
                "register with the tokio reactor the epoll fd",
                Subject::Fd(raw),
                e,
            )
        })?;
        Ok(Readiness { rx })
    }

    /// Waits until the reactor has seen the epoll fd turn readable. Cancel
    /// safe: nothing has been taken from the monitor yet.
    pub(super) async fn readable(&self) -> Result<()> {
        self.rx.readable().await.map_err(|e| {
            Error::new(
                "wait for readiness of the epoll fd",
                Subject::Fd(self.rx.as_fd().as_raw_fd()),
                e,
            )
        })
    }

    /// One zero-timeout wait, if the reactor says the fd is ready.
    ///
    /// The rule for an edge-triggered reactor: readiness may be cleared only
    /// once the epoll fd is empty, or the next edge never comes. A wait that
    /// delivers nothing does not prove it (a batch of 128 stale events
    /// delivers nothing and may leave more queued), so emptiness is asked of
    /// the kernel: `poll` on the epoll fd, which re-checks every queued
    /// source. `try_io` clears readiness only if no new edge arrived since
    /// the reactor reported the one we are handling, so an event that comes
    /// after the `poll` is not lost.
    pub(super) fn step(&self, drain: &mut impl Drain) -> Step {
        let r = self.rx.try_io(|| match drain.once() {
            Err(e) => Ok(Step::Failed(e)),
            Ok(n) if n > 0 => Ok(Step::Delivered(n)),
            Ok(_) if drain.shut_down() => Ok(Step::ShutDown),
            Ok(_) if self.still_readable() => Ok(Step::Busy),
            Ok(_) => Err(io::ErrorKind::WouldBlock.into()),
        });
        // `WouldBlock`: cleared, or not ready; `try_io` has no other error.
        r.unwrap_or(Step::Empty)
    }

    fn still_readable(&self) -> bool {
        let mut fds = [PollFd::new(&self.rx, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // On an error (EINTR, ENOMEM) say yes: looking again costs a turn,
        // clearing wrongly could cost every later event.
        rustix::event::poll(&mut fds, Some(&zero)).map_or(true, |n| n > 0)
    }
}

/// Waits for readiness and drains until something is delivered or the
/// monitor is shut down (0). Cancel safe: its only `.await`s come before a
/// wait on the monitor or after one that delivered nothing.
pub(super) async fn drive(ready: &Readiness, drain: &mut impl Drain) -> Result<usize> {
    loop {
        if drain.shut_down() {
            return Ok(0);
        }
        ready.readable().await?;
        match ready.step(drain) {
            Step::Delivered(n) => return Ok(n),
            Step::ShutDown => return Ok(0),
            Step::Failed(e) => return Err(e),
            Step::Busy => ::tokio::task::yield_now().await,
            Step::Empty => {}
        }
    }
}
