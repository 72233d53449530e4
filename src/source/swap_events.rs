//! Swap events on cgroup v2: `memory.swap.events` polled with `EPOLLPRI`,
//! like `memory.events`, reporting the increase of each counter (`high`,
//! `max`, `fail`) since the last report.
//!
//! No settling here: a refused swap-out is not followed by a counter that
//! arrives later, so each change is reported as read.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::cgroupfs::CgroupDir;
use super::kernfs;
use super::Outcome;
use crate::cgroup::parse::swap_events::{self, SwapEvents};
use crate::event::EventKind;
use crate::{Error, Result};

const FILE: &str = "memory.swap.events";

pub(crate) struct SwapEventsWatch {
    pub(crate) fd: OwnedFd,
    pub(crate) dir: PathBuf,
    reported: SwapEvents,
}

impl SwapEventsWatch {
    pub(crate) fn open(dir: &CgroupDir) -> Result<SwapEventsWatch> {
        Ok(SwapEventsWatch {
            fd: kernfs::open(dir, FILE)?,
            dir: dir.path().to_path_buf(),
            reported: SwapEvents::default(),
        })
    }

    /// Takes the baseline, once the fd is registered with epoll.
    pub(crate) fn arm(&mut self) -> Result<()> {
        self.reported = self.read()?.ok_or_else(|| {
            Error::path(
                "watch",
                &self.dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "the cgroup was removed"),
            )
        })?;
        Ok(())
    }

    fn read(&self) -> Result<Option<SwapEvents>> {
        let mut buf = [0u8; 256];
        let text = kernfs::reread(&self.fd, &mut buf)
            .map_err(|e| Error::path("read", &self.dir.join(FILE), e.into()))?;
        match text {
            None => Ok(None),
            Some(t) => swap_events::parse(t)
                .map(Some)
                .map_err(|e| kernfs::parse_error(&self.dir, FILE, e)),
        }
    }

    pub(crate) fn on_ready(&mut self) -> Outcome {
        let read = self.read();
        outcome(&mut self.reported, read)
    }
}

/// What a read of `memory.swap.events` (or its failure) means for the watch.
fn outcome(reported: &mut SwapEvents, read: Result<Option<SwapEvents>>) -> Outcome {
    match read {
        Err(e) => Outcome::One(EventKind::Failed(e)),
        Ok(None) => Outcome::One(EventKind::Removed),
        Ok(Some(now)) => {
            let delta = now.delta(reported);
            *reported = now;
            if delta.is_zero() {
                Outcome::Nothing
            } else {
                Outcome::One(EventKind::Swap(Box::new(delta)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The delta logic against recorded contents (the real events are
    //! produced in the test guest, tests/guest_swap.rs).
    use super::*;

    fn parsed(text: &str) -> Result<Option<SwapEvents>> {
        Ok(Some(swap_events::parse(text.as_bytes()).unwrap()))
    }

    fn delta(o: Outcome) -> Option<SwapEvents> {
        match o {
            Outcome::One(EventKind::Swap(d)) => Some(*d),
            Outcome::Nothing => None,
            Outcome::One(k) => panic!("unexpected {k:?}"),
            _ => panic!("unexpected outcome"),
        }
    }

    #[test]
    fn increases_only_then_removal() {
        let mut book = swap_events::parse(b"high 0\nmax 0\nfail 0\n").unwrap();
        assert_eq!(
            delta(outcome(&mut book, parsed("high 0\nmax 0\nfail 0\n"))),
            None
        );
        let d = delta(outcome(&mut book, parsed("high 0\nmax 12\nfail 12\n"))).unwrap();
        assert_eq!((d.high, d.max, d.fail), (0, 12, 12));
        // A duplicate notification reports nothing.
        assert_eq!(
            delta(outcome(&mut book, parsed("high 0\nmax 12\nfail 12\n"))),
            None
        );
        let d = delta(outcome(&mut book, parsed("high 3\nmax 13\nfail 12\n"))).unwrap();
        assert_eq!((d.high, d.max, d.fail), (3, 1, 0));
        assert!(matches!(
            outcome(&mut book, Ok(None)),
            Outcome::One(EventKind::Removed)
        ));
    }
}
