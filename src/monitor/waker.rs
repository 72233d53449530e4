//! Waking a blocked `wait` from another thread: an edge-triggered eventfd.
//!
//! Edge-triggered so that the loop need not read it to stop it firing; it is
//! still drained when seen, so that the counter never saturates (at 2^64 - 2 a
//! write would fail with `EAGAIN`, which `wake` also handles by draining).

use std::os::fd::OwnedFd;

use rustix::event::{eventfd, EventfdFlags};
use rustix::io::{write, Errno};

use crate::source::eventfd::drain;

pub(crate) struct Waker {
    pub(crate) fd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> Result<Waker, Errno> {
        Ok(Waker {
            fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    pub(crate) fn wake(&self) -> Result<(), Errno> {
        loop {
            match write(&self.fd, &1u64.to_ne_bytes()) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => {
                    drain(&self.fd)?;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn reset(&self) {
        // Nothing to do about a failure here: the next wake still arrives as
        // a fresh edge.
        let _ = drain(&self.fd);
    }
}
