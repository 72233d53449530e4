//! OOM on cgroup v2: `memory.events` polled with `EPOLLPRI` in the same epoll
//! (no inotify, no thread per cgroup).
//!
//! Each notification is answered by re-reading the file and reporting the
//! increase of each counter since the last report (see `oom_book`).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use super::cgroupfs::CgroupDir;
use super::kernfs;
use super::oom_book::{Observation, OomBook};
use super::Outcome;
use crate::cgroup::parse::memory_events::{self, MemoryEvents};
use crate::event::EventKind;
use crate::{Error, Result};

const FILE: &str = "memory.events";

pub(crate) struct MemoryEventsWatch {
    pub(crate) fd: OwnedFd,
    pub(crate) dir: PathBuf,
    book: OomBook,
}

impl MemoryEventsWatch {
    pub(crate) fn open(dir: &CgroupDir) -> Result<MemoryEventsWatch> {
        let fd = kernfs::open(dir, FILE)?;
        Ok(MemoryEventsWatch {
            fd,
            dir: dir.path().to_path_buf(),
            book: OomBook::default(),
        })
    }

    /// Takes the baseline. Called once the fd is registered with epoll, so a
    /// change after this read is signalled, and one before it is in it.
    pub(crate) fn arm(&mut self) -> Result<()> {
        let base = self.read()?.ok_or_else(|| {
            Error::path(
                "watch",
                &self.dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "the cgroup was removed"),
            )
        })?;
        self.book = OomBook::with_baseline(base);
        Ok(())
    }

    fn read(&self) -> Result<Option<MemoryEvents>> {
        let mut buf = [0u8; 512];
        let text = kernfs::reread(&self.fd, &mut buf)
            .map_err(|e| Error::path("read", &self.dir.join(FILE), e.into()))?;
        match text {
            None => Ok(None),
            Some(t) => memory_events::parse(t)
                .map(Some)
                .map_err(|e| kernfs::parse_error(&self.dir, FILE, e)),
        }
    }

    pub(crate) fn check(&mut self, now: Instant, force: bool) -> Outcome {
        let read = self.read();
        outcome(&mut self.book, read, now, force)
    }

    pub(crate) fn book(&mut self) -> &mut OomBook {
        &mut self.book
    }
}

/// What a read of `memory.events` (or its failure) means for the watch.
fn outcome(
    book: &mut OomBook,
    read: Result<Option<MemoryEvents>>,
    now: Instant,
    force: bool,
) -> Outcome {
    match read {
        Err(e) => Outcome::One(EventKind::Failed(e)),
        // Gone: an OOM held back for its kill goes out first.
        Ok(None) => {
            let last = book.last_seen();
            let unreported = book.unreported(last, now);
            if unreported.is_zero() {
                Outcome::One(EventKind::Removed)
            } else {
                Outcome::OomThenRemoved(Box::new(unreported))
            }
        }
        Ok(Some(c)) => match book.observe(c, force, now) {
            Observation::Nothing => Outcome::Nothing,
            Observation::Report(d) => Outcome::One(EventKind::Memory(Box::new(d))),
            Observation::RecheckAt(_) => Outcome::RecheckLater,
        },
    }
}

#[cfg(test)]
mod tests {
    //! The v2 logic against recorded `memory.events` contents: this machine's
    //! v2 hierarchy has no memory controller, so real v2 events cannot be
    //! produced here.
    use super::*;

    fn parsed(text: &str) -> Result<Option<MemoryEvents>> {
        Ok(Some(memory_events::parse(text.as_bytes()).unwrap()))
    }

    fn delta(o: Outcome) -> Option<MemoryEvents> {
        match o {
            Outcome::One(EventKind::Memory(d)) => Some(*d),
            Outcome::Nothing => None,
            Outcome::RecheckLater => panic!("unexpected re-check"),
            Outcome::One(k) => panic!("unexpected {k:?}"),
            Outcome::OomThenRemoved(d) => panic!("unexpected removal after {d:?}"),
        }
    }

    // A container whose limit sits on its parent: `oom` stays 0 in the
    // child, and only `oom_kill` rises (containerd #6323).
    const ARMED: &str = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n";
    const PARENT_LIMIT_KILL: &str = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\noom_group_kill 0\n";
    const OWN_LIMIT: &str = "low 0\nhigh 4\nmax 37\noom 2\noom_kill 3\noom_group_kill 0\n";
    const NEWER_KERNEL: &str =
        "low 0\nhigh 4\nmax 37\noom 2\noom_kill 3\noom_group_kill 1\nsock_throttled 9\n";

    #[test]
    fn recorded_sequence_reports_increases_only() {
        let t = Instant::now();
        let first = memory_events::parse(ARMED.as_bytes()).unwrap();
        let mut book = OomBook::with_baseline(first);
        // The fresh fd's first readiness: nothing new.
        assert_eq!(delta(outcome(&mut book, parsed(ARMED), t, false)), None);
        let d = delta(outcome(&mut book, parsed(PARENT_LIMIT_KILL), t, false)).unwrap();
        assert_eq!((d.oom, d.oom_kill), (0, 1));
        assert!(d.any_oom());
        // A duplicate notification (moby #27247): no event.
        assert_eq!(
            delta(outcome(&mut book, parsed(PARENT_LIMIT_KILL), t, false)),
            None
        );
        let d = delta(outcome(&mut book, parsed(OWN_LIMIT), t, false)).unwrap();
        assert_eq!((d.high, d.max, d.oom, d.oom_kill), (4, 37, 2, 2));
        // Unknown keys are ignored; a new counter's rise is reported.
        let d = delta(outcome(&mut book, parsed(NEWER_KERNEL), t, false)).unwrap();
        assert_eq!(d.oom_group_kill, 1);
        assert_eq!(d.oom_kill, 0);
        assert!(book.claim_kill(t));
    }

    #[test]
    fn max_and_high_alone_are_reported_without_being_an_oom() {
        let t = Instant::now();
        let mut book = OomBook::with_baseline(memory_events::parse(ARMED.as_bytes()).unwrap());
        let d = delta(outcome(
            &mut book,
            parsed("low 0\nhigh 2\nmax 5\noom 0\noom_kill 0\n"),
            t,
            false,
        ))
        .unwrap();
        assert_eq!((d.high, d.max), (2, 5));
        assert!(!d.any_oom());
        assert!(!book.claim_kill(t));
    }

    #[test]
    fn an_oom_waits_for_its_kill_unless_forced() {
        let t = Instant::now();
        let mut book = OomBook::with_baseline(memory_events::parse(ARMED.as_bytes()).unwrap());
        let oom_only = "low 0\nhigh 0\nmax 1\noom 1\noom_kill 0\n";
        assert!(matches!(
            outcome(&mut book, parsed(oom_only), t, false),
            Outcome::RecheckLater
        ));
        let d = delta(outcome(&mut book, parsed(oom_only), t, true)).unwrap();
        assert_eq!((d.oom, d.oom_kill), (1, 0));
    }

    #[test]
    fn removal_ends_the_watch() {
        let t = Instant::now();
        let mut book = OomBook::default();
        assert!(matches!(
            outcome(&mut book, Ok(None), t, false),
            Outcome::One(EventKind::Removed)
        ));
    }
}
