//! OOM on cgroup v1: an eventfd on `memory.oom_control`.
//!
//! The eventfd fires at the OOM (before the kill) and also once when the
//! cgroup is removed. conmon's order of checks is the one that avoids false
//! OOMs (containerd #7102): first see whether the cgroup still exists, *then*
//! drain the eventfd. If it exists, the notification was an OOM: read
//! `oom_kill` and report its increase. If it is gone, the notification was
//! (at least) the removal; a count of 2 or more means an OOM came first.
//!
//! Every notification counts in the reported `oom`, but one notification
//! is not one event: while a victim dies the kernel signals at each charge
//! retry, and `oom_book` coalesces those (see its docs for the rule).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use super::cgroupfs::CgroupDir;
use super::oom_book::{Observation, OomBook};
use super::{eventfd::drain, v1_notify, Outcome};
use crate::cgroup::parse::{memory_events::MemoryEvents, oom_control};
use crate::event::{EventKind, MemoryReport};
use crate::{Error, Result, Subject};

const FILE: &str = "memory.oom_control";

pub(crate) struct OomV1Watch {
    pub(crate) efd: OwnedFd,
    identity: v1_notify::Identity,
    file: PathBuf,
    /// Notifications drained so far: v1's stand-in for v2's `oom` counter.
    notifications: u64,
    book: OomBook,
}

impl OomV1Watch {
    /// Registers the eventfd and takes the baseline: the counters now, or
    /// zero with `from_zero` (then the kills since the cgroup was made are
    /// reported at the first look).
    pub(crate) fn arm(dir: &CgroupDir, from_zero: bool) -> Result<OomV1Watch> {
        let efd = v1_notify::register(dir, FILE, "")?;
        let mut w = OomV1Watch {
            efd,
            identity: v1_notify::Identity::of(dir)?,
            file: dir.path().join(FILE),
            notifications: 0,
            book: OomBook::default(),
        };
        // Baseline after arming: a kill that races the registration is
        // either in the baseline or signalled on the eventfd, never lost.
        let base = w.read_counters()?.ok_or_else(|| {
            Error::path(
                "watch",
                &w.identity.dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "the cgroup was removed"),
            )
        })?;
        w.book = OomBook::with_baseline(if from_zero {
            MemoryEvents::default()
        } else {
            base
        });
        Ok(w)
    }

    /// The counters now, or `None` when the cgroup is gone.
    fn read_counters(&self) -> Result<Option<MemoryEvents>> {
        let mut buf = [0u8; 512];
        let text = v1_notify::read_if_present(&self.file, &mut buf)
            .map_err(|e| Error::path("read", &self.file, e.into()))?;
        let Some(text) = text else { return Ok(None) };
        let parsed = oom_control::parse(text).map_err(|e| {
            Error::path(
                "parse",
                &self.file,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        Ok(Some(MemoryEvents {
            oom: self.notifications,
            oom_kill: parsed.oom_kill.unwrap_or(0),
            ..MemoryEvents::default()
        }))
    }

    /// Looks at the cgroup now: on readiness, on a due re-check, or (with
    /// `force`) because a process in it exited and its OOM must come first.
    pub(crate) fn check(&mut self, now: Instant, force: bool) -> Outcome {
        // Existence first, then the eventfd: see the module docs.
        let present = match self.identity.is_present() {
            Ok(p) => p,
            Err(e) => return Outcome::One(EventKind::Failed(e)),
        };
        let drained = match drain(&self.efd) {
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                return Outcome::One(EventKind::Failed(Error::os(
                    "read eventfd of",
                    Subject::Path(self.identity.dir.clone()),
                    e,
                )))
            }
        };
        if !present {
            // One notification is the removal's own (it may also still be on
            // its way: it comes 12–40 ms after the rmdir); any more were OOMs.
            return self.removed(drained.saturating_sub(1));
        }
        self.notifications += drained;
        match self.read_counters() {
            Ok(Some(c)) => match self.book.observe(c, force, now) {
                Observation::Nothing => Outcome::Nothing,
                Observation::Report(d) => {
                    Outcome::One(EventKind::Memory(Box::new(MemoryReport::new(d))))
                }
                Observation::RecheckAt(_) => Outcome::RecheckLater,
            },
            // Removed just after the check: what was drained came before.
            Ok(None) => self.removed(0),
            Err(e) => Outcome::One(EventKind::Failed(e)),
        }
    }

    /// The end of the watch, preceded by any OOM not yet reported: `ooms`
    /// notifications just drained, and what the book was holding back.
    fn removed(&mut self, ooms: u64) -> Outcome {
        self.notifications += ooms;
        let mut last = self.book.last_seen();
        last.oom = self.notifications;
        let unreported = self.book.unreported(last, Instant::now());
        if unreported.is_zero() {
            Outcome::One(EventKind::Removed)
        } else {
            Outcome::OomThenRemoved(Box::new(MemoryReport::new(unreported)))
        }
    }

    /// The cgroup's directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.identity.dir
    }

    pub(crate) fn book(&mut self) -> &mut OomBook {
        &mut self.book
    }
}
