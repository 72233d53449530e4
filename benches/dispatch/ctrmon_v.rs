//! ctrmon: `Monitor<usize>`, the receiver being an index into the bench's
//! counters. The monitor reads (drains) each eventfd itself and reports
//! `Signaled { count }`; the handler adds the count to the receiver's
//! counter. Two variants: `ctrmon` waits with `wait` (`&self`, the shared
//! path: the table behind a mutex), `ctrmon_owned` with `wait_mut`
//! (`&mut self`: no lock).

use std::io;
use std::os::fd::OwnedFd;
use std::process::Child;
use std::time::{Duration, Instant};

use ctrmon::{EventKind, Monitor, WatchId};

use crate::common::{kill_all, Variant};

pub struct Ctrmon<const OWNED: bool> {
    monitor: Monitor<usize>,
    counts: Vec<u64>,
}

impl<const OWNED: bool> Ctrmon<OWNED> {
    fn count(&mut self, index: usize) {
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
    }
}

impl<const OWNED: bool> Variant for Ctrmon<OWNED> {
    const NAME: &'static str = if OWNED { "ctrmon_owned" } else { "ctrmon" };
    type Handle = WatchId;

    fn new() -> io::Result<Self> {
        Ok(Ctrmon {
            monitor: Monitor::new()?,
            counts: Vec::new(),
        })
    }

    fn watch(&mut self, fd: OwnedFd, index: usize) -> io::Result<WatchId> {
        self.count(index);
        Ok(self.monitor.watch_eventfd(fd, index)?)
    }

    fn unwatch(&mut self, id: WatchId) -> io::Result<()> {
        self.monitor.unwatch(id)?;
        Ok(())
    }

    /// W3 with an eventfd ctrmon makes itself: created close-on-exec and
    /// non-blocking, so no `fcntl` check; it closes once the watch has
    /// ended and its writer is dropped.
    fn churn_one(&mut self, index: usize) -> io::Result<()> {
        let (id, _writer) = self.monitor.watch_new_eventfd(index)?;
        self.monitor.unwatch(id)?;
        Ok(())
    }

    #[inline]
    fn poll<F: FnMut(usize)>(&mut self, timeout: Option<Duration>, mut seen: F) -> usize {
        let counts = &mut self.counts;
        let result = if OWNED {
            self.monitor.wait_mut(timeout, |ev, _| {
                if let EventKind::Signaled { count } = ev.kind {
                    let i = *ev.receiver;
                    counts[i] += count;
                    seen(i);
                }
            })
        } else {
            self.monitor.wait(timeout, |ev| {
                if let EventKind::Signaled { count } = ev.kind {
                    let i = *ev.receiver;
                    counts[i] += count;
                    seen(i);
                }
            })
        };
        result.expect("ctrmon wait")
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// W4: watch every child by pidfd (reaping on), kill them all, wait until
/// every exit is delivered. Returns first kill to last exit.
pub fn w4<const OWNED: bool>(children: &[Child]) -> io::Result<Duration> {
    let mut monitor: Monitor<u32> = Monitor::new()?;
    for c in children {
        monitor.watch_pid(c.id() as i32, c.id())?;
    }
    let start = Instant::now();
    kill_all(children);
    let mut exits = 0;
    while exits < children.len() {
        let mut on_event = |kind: EventKind| {
            if let EventKind::Exited(e) = kind {
                debug_assert!(e.reaped);
                exits += 1;
            }
        };
        if OWNED {
            monitor.wait_mut(None, |ev, _| on_event(ev.kind))?;
        } else {
            monitor.wait(None, |ev| on_event(ev.kind))?;
        }
    }
    Ok(start.elapsed())
}
