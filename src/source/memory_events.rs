//! OOM on cgroup v2: `memory.events` polled with `EPOLLPRI` in the same epoll
//! (no inotify, no thread per cgroup).
//!
//! Each notification is answered by re-reading the file and reporting the
//! increase of each counter since the last report (see `oom_book`). The
//! kernel rate-limits the notifications (~20 ms), but `oom` and `max` still
//! rise at every charge retry while a victim dies; increases without a kill
//! are coalesced to at most one event per second, as on v1.
//!
//! `memory.events` is hierarchical: a cgroup counts its descendants' events
//! too. `memory.events.local` (5.2+) counts the cgroup's own alone, so its
//! `oom` rises only where the limit that was hit sits, and its `oom_kill`
//! only where the victim was; a watch picks one of the two files.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use super::cgroupfs::CgroupDir;
use super::kernfs;
use super::oom_book::{Observation, OomBook};
use super::Outcome;
use crate::cgroup::parse::memory_events::{self, MemoryEvents};
use crate::event::{EventKind, MemoryReport};
use crate::{Error, Result};

/// The hierarchical counters.
pub(crate) const FILE: &str = "memory.events";
/// The cgroup's own counters, without its descendants' (5.2+).
pub(crate) const FILE_LOCAL: &str = "memory.events.local";

pub(crate) struct MemoryEventsWatch {
    pub(crate) fd: OwnedFd,
    pub(crate) dir: PathBuf,
    /// [`FILE`] or [`FILE_LOCAL`].
    file: &'static str,
    /// The baseline is zero, not the counters at arming.
    from_zero: bool,
    book: OomBook,
}

impl MemoryEventsWatch {
    /// Opens `file` ([`FILE`] or [`FILE_LOCAL`]) in `dir`.
    /// With `from_zero`, the baseline is zero: what the cgroup counted
    /// before the watch is reported at the first look.
    pub(crate) fn open(
        dir: &CgroupDir,
        file: &'static str,
        from_zero: bool,
    ) -> Result<MemoryEventsWatch> {
        let fd = kernfs::open(dir, file).map_err(|e| explain_missing(dir, file, e))?;
        Ok(MemoryEventsWatch {
            fd,
            dir: dir.path().to_path_buf(),
            file,
            from_zero,
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
        self.book = OomBook::with_baseline(if self.from_zero {
            MemoryEvents::default()
        } else {
            base
        });
        Ok(())
    }

    /// Whether the counters include the descendants' ([`FILE`]).
    pub(crate) fn is_hierarchical(&self) -> bool {
        self.file == FILE
    }

    fn read(&self) -> Result<Option<MemoryEvents>> {
        let mut buf = [0u8; 512];
        let text = kernfs::reread(&self.fd, &mut buf)
            .map_err(|e| Error::path("read", &self.dir.join(self.file), e.into()))?;
        match text {
            None => Ok(None),
            Some(t) => memory_events::parse(t)
                .map(Some)
                .map_err(|e| kernfs::parse_error(&self.dir, self.file, e)),
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

/// A v2 cgroup without the memory files has no memory controller: its
/// parent does not enable `memory` for its children (a hybrid machine binds
/// memory to v1 altogether). Say so, instead of a bare ENOENT.
fn explain_missing(dir: &CgroupDir, file: &str, e: Error) -> Error {
    if e.kind() != std::io::ErrorKind::NotFound || !dir.path().is_dir() {
        return e;
    }
    let why = match dir.path().parent() {
        Some(parent) if parent.join("cgroup.controllers").exists() => format!(
            "no {file}: the memory controller is not enabled for this cgroup \
             (memory is not in {})",
            parent.join("cgroup.subtree_control").display()
        ),
        // The kernel gives a hierarchy's root cgroup no memory files.
        _ => format!("no {file}: the root cgroup of a hierarchy has none; watch a child cgroup"),
    };
    Error::path(
        "watch",
        dir.path(),
        std::io::Error::new(std::io::ErrorKind::NotFound, why),
    )
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
                Outcome::OomThenRemoved(Box::new(MemoryReport::new(unreported)))
            }
        }
        Ok(Some(c)) => match book.observe(c, force, now) {
            Observation::Nothing => Outcome::Nothing,
            Observation::Report(d) => {
                Outcome::One(EventKind::Memory(Box::new(MemoryReport::new(d))))
            }
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

    /// The outcome of `read` once the book's re-checks (a kill lingers for
    /// the notifications that trail it) have run, at their due times.
    fn settled(book: &mut OomBook, read: Result<Option<MemoryEvents>>, t: &mut Instant) -> Outcome {
        let Ok(Some(counters)) = read else {
            return outcome(book, read, *t, false);
        };
        loop {
            match outcome(book, Ok(Some(counters)), *t, false) {
                Outcome::RecheckLater => *t = book.recheck_at().expect("a re-check time"),
                other => return other,
            }
        }
    }

    fn delta(o: Outcome) -> Option<MemoryEvents> {
        match o {
            Outcome::One(EventKind::Memory(d)) => Some(d.counters),
            Outcome::Nothing => None,
            Outcome::RecheckLater => panic!("unexpected re-check"),
            Outcome::ReapOrphans => panic!("unexpected orphan scan"),
            Outcome::One(k) => panic!("unexpected {k:?}"),
            Outcome::OomThenRemoved(d) => panic!("unexpected removal after {d:?}"),
            Outcome::Kills(d) => panic!("unexpected kills {d:?}"),
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
        let mut t = Instant::now();
        let first = memory_events::parse(ARMED.as_bytes()).unwrap();
        let mut book = OomBook::with_baseline(first);
        // The fresh fd's first readiness: nothing new.
        assert_eq!(delta(settled(&mut book, parsed(ARMED), &mut t)), None);
        let d = delta(settled(&mut book, parsed(PARENT_LIMIT_KILL), &mut t)).unwrap();
        assert_eq!((d.oom, d.oom_kill), (0, 1));
        assert!(d.any_oom());
        // A duplicate notification (moby #27247): no event.
        assert_eq!(
            delta(settled(&mut book, parsed(PARENT_LIMIT_KILL), &mut t)),
            None
        );
        let d = delta(settled(&mut book, parsed(OWN_LIMIT), &mut t)).unwrap();
        assert_eq!((d.high, d.max, d.oom, d.oom_kill), (4, 37, 2, 2));
        // Unknown keys are ignored; a new counter's rise is reported.
        let d = delta(settled(&mut book, parsed(NEWER_KERNEL), &mut t)).unwrap();
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
