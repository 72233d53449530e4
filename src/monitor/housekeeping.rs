//! Timed work: OOM re-checks that wait for a kill to be counted, exits of
//! non-children that wait for their parent to reap them, and the periodic
//! re-arming of kernfs watches, scheduled on the monitor's timerfd.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::table::Key;
use super::{Core, Inner};

/// How often kernfs watches are re-armed; also the longest a removal that
/// kernfs failed to signal goes unreported.
pub(super) const REARM_EVERY: Duration = Duration::from_secs(1);

impl<T> Inner<T> {
    /// Sets the timer for the earliest re-check or re-arm.
    pub(super) fn reschedule(&mut self) {
        self.schedule_changed = false;
        let late = self.next_late_exit();
        let Inner {
            table,
            settling,
            next_rearm,
            timer,
            ..
        } = self;
        let due = settling
            .iter()
            .filter_map(|k| table.get_mut(*k)?.source.recheck_at())
            .chain(*next_rearm)
            .chain(late)
            .min();
        timer.set(due);
    }

    /// Re-registers every kernfs watch with `EPOLL_CTL_MOD`, which makes
    /// epoll look at the file again. kernfs can drop a wake-up: when a
    /// cgroup is removed while its "changed" notification is still queued
    /// (the usual case: its last process exits, then it is removed at once),
    /// the file turns ready (`EPOLLERR`, reads `ENODEV`) without waking
    /// anyone, and the watch would wait forever. Once a second, while such
    /// watches exist, costs one syscall per watch.
    pub(super) fn rearm_kernfs_due(&mut self, core: &Core, now: Instant) {
        if core.kernfs.load(Ordering::Relaxed) == 0 {
            self.next_rearm = None;
            return;
        }
        match self.next_rearm {
            Some(t) if t <= now => {}
            _ => return,
        }
        self.next_rearm = Some(now + REARM_EVERY);
        for (key, watch) in self.table.iter() {
            if let (true, Some(fd)) = (watch.source.is_kernfs(), watch.source.as_fd()) {
                let _ = core.epoll.modify(fd, key.as_u64(), watch.source.interest());
            }
        }
    }

    /// Takes the next watch whose re-check time has come off the
    /// settling list. Watches that were unwatched, removed, or are no longer
    /// settling leave the list on the way.
    pub(super) fn next_due(&mut self, now: Instant) -> Option<Key> {
        let mut i = 0;
        while i < self.settling.len() {
            let key = self.settling[i];
            // Lent to a handler (another thread's, or one running a nested
            // wait): looked at next time.
            if self.table.get(key).is_none() && self.table.contains(key) {
                i += 1;
                continue;
            }
            let due = self.table.get_mut(key).and_then(|w| w.source.recheck_at());
            match due {
                Some(t) if t > now => i += 1,
                Some(_) => {
                    self.settling.swap_remove(i);
                    return Some(key);
                }
                None => {
                    self.settling.swap_remove(i);
                }
            }
        }
        None
    }
}
