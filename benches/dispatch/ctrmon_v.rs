//! ctrmon: `Monitor<usize>`, the receiver being an index into the bench's
//! counters. The monitor reads (drains) each eventfd itself and reports
//! `Signaled { count }`; the handler adds the count to the receiver.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Child;
use std::time::{Duration, Instant};

use ctrmon::{EventKind, Monitor, WatchId};

use crate::common::{kill_all, Variant};

pub struct Ctrmon {
    monitor: Monitor<usize>,
    counts: Vec<u64>,
}

impl Variant for Ctrmon {
    const NAME: &'static str = "ctrmon";
    type Handle = WatchId;

    fn new() -> io::Result<Self> {
        Ok(Ctrmon {
            monitor: Monitor::new()?,
            counts: Vec::new(),
        })
    }

    fn watch(&mut self, fd: OwnedFd, index: usize) -> io::Result<WatchId> {
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        Ok(self.monitor.watch_eventfd(fd, index)?)
    }

    fn unwatch(&mut self, id: WatchId) -> io::Result<()> {
        self.monitor.unwatch(id)?;
        Ok(())
    }

    #[inline]
    fn poll<F: FnMut(usize)>(&mut self, timeout: Option<Duration>, mut seen: F) -> usize {
        let counts = &mut self.counts;
        self.monitor
            .wait(timeout, |ev| {
                if let EventKind::Signaled { count } = ev.kind {
                    counts[ev.receiver] += count;
                    seen(ev.receiver);
                }
            })
            .expect("ctrmon wait")
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// W4: watch every child by pidfd (reaping on), kill them all, wait until
/// every exit is delivered. Returns first kill to last exit.
pub fn w4(children: &[Child]) -> io::Result<Duration> {
    let monitor: Monitor<u32> = Monitor::new()?;
    for c in children {
        monitor.watch_pid(c.id() as i32, c.id())?;
    }
    let start = Instant::now();
    kill_all(children);
    let mut exits = 0;
    while exits < children.len() {
        monitor.wait(None, |ev| {
            if let EventKind::Exited(e) = ev.kind {
                debug_assert!(e.reaped);
                exits += 1;
            }
        })?;
    }
    Ok(start.elapsed())
}
