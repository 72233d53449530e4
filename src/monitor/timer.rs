//! The monitor's own clock in the epoll set: a timerfd.
//!
//! Some work is due at a time rather than on a readiness: an OOM whose kill
//! is not counted yet is looked at again a few milliseconds later, and kernfs
//! watches are re-armed once a second. Keeping that schedule in a timerfd
//! (rather than in `wait`'s sleep) means the epoll fd turns readable when the
//! work is due, so a monitor nested in another event loop, which only ever
//! polls with a zero timeout, gets it done too.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::Timespec;
use rustix::io::Errno;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};

pub(crate) struct Timer {
    pub(crate) fd: OwnedFd,
    armed_for: Option<Instant>,
}

const ZERO: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

impl Timer {
    pub(crate) fn new() -> Result<Timer, Errno> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )?;
        Ok(Timer {
            fd,
            armed_for: None,
        })
    }

    /// Makes the timer fire at `at` (`None`: never). A no-op when already so.
    pub(crate) fn set(&mut self, at: Option<Instant>) {
        if at == self.armed_for {
            return;
        }
        let it_value = match at {
            None => ZERO,
            Some(t) => {
                // A relative time of zero would disarm: one nanosecond is "now".
                let d = t
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1));
                Timespec {
                    tv_sec: d.as_secs() as i64,
                    tv_nsec: i64::from(d.subsec_nanos()),
                }
            }
        };
        let spec = Itimerspec {
            it_interval: ZERO,
            it_value,
        };
        // Cannot fail for a valid timerfd and a normalized time; if it did,
        // the next `set` would try again.
        if timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec).is_ok() {
            self.armed_for = at;
        }
    }

    /// Acknowledges an expiry (drains the count), so the fd stops being
    /// readable until the next one.
    pub(crate) fn acknowledge(&mut self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
        self.armed_for = None;
    }
}
