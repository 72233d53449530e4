//! Timed work: OOM re-checks that wait for a kill to be counted, and the
//! periodic re-arming of kernfs watches, scheduled on the monitor's timerfd.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;

use super::dispatch::{Pending, MAX_PER_READY};
use super::epoll::BATCH;
use super::{Inner, Monitor};

impl<T> Inner<T> {
    /// Sets the timer for the earliest re-check or re-arm.
    pub(super) fn reschedule(&mut self) {
        self.schedule_changed = false;
        let Inner {
            table,
            settling,
            next_rearm,
            timer,
            ..
        } = self;
        let due = settling
            .iter()
            .filter_map(|k| table.get_mut(*k)?.source.oom_book()?.recheck_at())
            .chain(*next_rearm)
            .min();
        timer.set(due);
    }
}

/// How often kernfs watches are re-armed; also the longest a removal that
/// kernfs failed to signal goes unreported.
pub(super) const REARM_EVERY: Duration = Duration::from_secs(1);

impl<T: Clone> Monitor<T> {
    /// Re-registers every kernfs watch with `EPOLL_CTL_MOD`, which makes
    /// epoll look at the file again. kernfs can drop a wake-up: when a
    /// cgroup is removed while its "changed" notification is still queued
    /// (the usual case: its last process exits, then it is removed at once),
    /// the file turns ready (`EPOLLERR`, reads `ENODEV`) without waking
    /// anyone, and the watch would wait forever. Once a second, while such
    /// watches exist, costs one syscall per watch.
    pub(super) fn rearm_kernfs_due(&self, inner: &mut Inner<T>, now: Instant) {
        if self.kernfs.load(Ordering::Acquire) == 0 {
            inner.next_rearm = None;
            return;
        }
        match inner.next_rearm {
            Some(t) if t <= now => {}
            _ => return,
        }
        inner.next_rearm = Some(now + REARM_EVERY);
        for (key, watch) in inner.table.iter() {
            if watch.source.is_kernfs() {
                let _ =
                    self.epoll
                        .modify(watch.source.as_fd(), key.as_u64(), watch.source.interest());
            }
        }
    }

    /// Re-checks the OOM watches whose re-check time has come. At most a
    /// batch's worth per pass; the rest wait for the next pass.
    pub(super) fn recheck_due(
        &self,
        inner: &mut Inner<T>,
        now: Instant,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        let mut i = 0;
        while i < inner.settling.len() && batch.remaining_capacity() >= MAX_PER_READY {
            let key = inner.settling[i];
            let due = match inner.table.get_mut(key) {
                Some(w) => w.source.oom_book().and_then(|b| b.recheck_at()),
                None => None,
            };
            match due {
                Some(t) if t > now => i += 1,
                Some(_) => {
                    inner.settling.swap_remove(i);
                    self.apply(inner, key, |s| s.recheck(now, false), batch);
                }
                // Unwatched, removed, or no longer settling.
                None => {
                    inner.settling.swap_remove(i);
                }
            }
        }
    }
}
