//! ctrmon: `Monitor<u64>`, the receiver being the watch's count, as raw's
//! and mio's receivers hold theirs. The monitor reads (drains) each eventfd
//! itself and reports `Signaled { count }`; the handler adds the count to
//! the receiver, lent to it in the monitor's table (`total` reads them back
//! with `receiver_mut`). Two variants: `ctrmon` waits
//! with `wait` (`&self`, the shared path: the table behind a mutex),
//! `ctrmon_owned` with `wait_mut` (`&mut self`: no lock).

use ctrmon::watch::{Eventfd, NewEventfd, Process};
use std::io;
use std::os::fd::OwnedFd;
use std::process::Child;
use std::time::{Duration, Instant};

use ctrmon::{EventKind, Monitor, WatchId};

use crate::common::{kill_all, Variant};

pub struct Ctrmon<const OWNED: bool> {
    monitor: Monitor<u64>,
    /// The live watches, for `total`.
    ids: Vec<WatchId>,
    /// Counts of watches that were unwatched, so `total` stays exact.
    retired: u64,
}

impl<const OWNED: bool> Variant for Ctrmon<OWNED> {
    const NAME: &'static str = if OWNED { "ctrmon_owned" } else { "ctrmon" };
    type Handle = WatchId;

    fn new() -> io::Result<Self> {
        Ok(Ctrmon {
            // Without the kernel log: its reader wakes for every kernel
            // message on the machine, which raw and mio do not read, and
            // which is not dispatch.
            monitor: Monitor::builder().kernel_log(false).build()?,
            ids: Vec::new(),
            retired: 0,
        })
    }

    fn watch(&mut self, fd: OwnedFd, _index: usize) -> io::Result<WatchId> {
        let id = self.monitor.watch(Eventfd::new(fd), 0)?;
        self.ids.push(id);
        Ok(id)
    }

    fn unwatch(&mut self, id: WatchId) -> io::Result<()> {
        self.retired += self.monitor.unwatch(id)?;
        if let Some(i) = self.ids.iter().rposition(|x| *x == id) {
            self.ids.swap_remove(i);
        }
        Ok(())
    }

    /// W3 with an eventfd ctrmon makes itself: created close-on-exec and
    /// non-blocking, so no `fcntl` check; it closes once the watch has
    /// ended and its writer is dropped.
    fn churn_one(&mut self, _index: usize) -> io::Result<()> {
        let (id, _writer) = self.monitor.watch(NewEventfd, 0)?;
        self.monitor.unwatch(id)?;
        Ok(())
    }

    #[inline]
    fn poll<F: FnMut()>(&mut self, timeout: Option<Duration>, mut seen: F) -> usize {
        let result = if OWNED {
            self.monitor.wait_mut(timeout, |ev, _| {
                if let EventKind::Signaled { count } = ev.kind {
                    let mut receiver = ev.receiver;
                    *receiver += count;
                    seen();
                }
            })
        } else {
            self.monitor.wait(timeout, |ev| {
                if let EventKind::Signaled { count } = ev.kind {
                    let mut receiver = ev.receiver;
                    *receiver += count;
                    seen();
                }
            })
        };
        result.expect("ctrmon wait")
    }

    fn total(&mut self) -> u64 {
        let Ctrmon {
            monitor,
            ids,
            retired,
        } = self;
        *retired
            + ids
                .iter()
                .filter_map(|id| monitor.receiver_mut(*id).map(|c| *c))
                .sum::<u64>()
    }
}

/// W4: watch every child by pidfd (reaping on), kill them all, wait until
/// every exit is delivered. Returns first kill to last exit.
pub fn w4<const OWNED: bool>(children: &[Child]) -> io::Result<Duration> {
    let mut monitor: Monitor<u32> = Monitor::builder().kernel_log(false).build()?;
    for c in children {
        monitor.watch(Process::pid(c.id() as i32), c.id())?;
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
