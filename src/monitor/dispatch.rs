//! Waiting and dispatch: events resolved under the lock a batch at a time,
//! then delivered to the caller's handler with the lock released.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use rustix::event::epoll::EventFlags;
use rustix::io::Errno;

use super::epoll::{key_and_flags, EventBuf, BATCH};
use super::table::Key;
use super::{Event, EventKind, Inner, Monitor, WatchId, TIMER_KEY, WAKER_KEY};
use crate::source::{Clock, Outcome, Source};
use crate::{Error, Result, Subject};

/// When a `wait` gives up.
#[derive(Clone, Copy)]
enum Deadline {
    Never,
    /// Look once, do not sleep.
    Poll,
    At(Instant),
}

/// An event resolved under the table lock, waiting to be delivered after it.
pub(super) struct Pending<T> {
    key: Key,
    kind: EventKind,
    receiver: T,
    /// The watch's final event follows in the same batch: this one was
    /// resolved while the watch was live, and must not be taken for the
    /// event of a watch removed since.
    watch_ends_in_batch: bool,
}

/// The most events one readiness can produce: a process's exit, preceded by
/// its linked cgroup's OOM and, if the cgroup went away meanwhile, that
/// cgroup's removal. A batch is delivered before it could overflow.
pub(super) const MAX_PER_READY: usize = 3;

impl<T: Clone> Monitor<T> {
    /// Waits for events and calls `handler` once for each, in the order the
    /// kernel reported them. Returns the number of events delivered: at least
    /// one, or 0 when the timeout passed, [`wake`](Self::wake) was called, or
    /// the monitor was shut down.
    ///
    /// `timeout` of `None` waits forever; otherwise it is rounded up to whole
    /// milliseconds (a 0.3 ms timeout waits 1 ms rather than spinning), and a
    /// signal interrupting the wait (`EINTR`) neither ends it early nor
    /// extends it.
    ///
    /// The handler runs with no lock held: it may call `watch_*`, `unwatch`,
    /// and even `wait` on this monitor. An event whose watch the handler
    /// removes before it is delivered is dropped. If the handler panics, the
    /// events of that batch not yet delivered are lost (their final receivers
    /// are dropped).
    ///
    /// # Errors
    ///
    /// Only `epoll_wait` failing (other than `EINTR`) returns an error, and
    /// nothing is lost when it does. A source that fails is reported as an
    /// [`EventKind::Failed`](crate::EventKind::Failed) event instead.
    pub fn wait<F>(&self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<T>),
    {
        // A zero timeout, the common polling case, needs no clock at all.
        let deadline = match timeout {
            None => Deadline::Never,
            Some(t) if t.is_zero() => Deadline::Poll,
            Some(t) => Instant::now()
                .checked_add(t)
                .map_or(Deadline::Never, Deadline::At),
        };
        let mut buf: EventBuf = [MaybeUninit::uninit(); BATCH];
        loop {
            if self.is_shut_down() {
                self.pass_on_shutdown();
                return Ok(0);
            }
            let sleep = match deadline {
                Deadline::Poll => Some(Duration::ZERO),
                Deadline::Never => None,
                Deadline::At(d) => Some(d.saturating_duration_since(Instant::now())),
            };
            let events = match self.epoll.wait_once(&mut buf, sleep) {
                Ok(events) => events,
                // Retried with the same absolute deadline.
                Err(Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::os(
                        "epoll_wait on",
                        Subject::Fd(self.epoll.as_fd().as_raw_fd()),
                        e,
                    ))
                }
            };
            let (delivered, woken) = self.dispatch(events, &mut handler);
            if delivered > 0 || woken {
                if woken && self.is_shut_down() {
                    self.pass_on_shutdown();
                }
                return Ok(delivered);
            }
            // Nothing to deliver (a timeout, stale or empty readiness, or a
            // re-check that is still waiting): wait out the rest of the time.
            match deadline {
                Deadline::Poll => return Ok(0),
                Deadline::At(d) if Instant::now() >= d => return Ok(0),
                _ => {}
            }
        }
    }

    /// Resolves due re-checks and ready events under the lock, a batch at a
    /// time, and delivers each batch after releasing it.
    fn dispatch<F>(&self, events: &[rustix::event::epoll::Event], handler: &mut F) -> (usize, bool)
    where
        F: FnMut(Event<T>),
    {
        let mut batch: ArrayVec<Pending<T>, BATCH> = ArrayVec::new();
        let mut woken = false;
        let mut delivered = 0;
        let mut next = 0;
        let mut housekeeping = false;
        let mut clock = Clock::default();
        while next < events.len() || housekeeping {
            let epoch = {
                let mut inner = self.lock();
                if housekeeping {
                    housekeeping = false;
                    let now = clock.now();
                    inner.timer.acknowledge();
                    self.recheck_due(&mut inner, now, &mut batch);
                    self.rearm_kernfs_due(&mut inner, now);
                    inner.reschedule();
                }
                while next < events.len() && batch.remaining_capacity() >= MAX_PER_READY {
                    let (data, flags) = key_and_flags(&events[next]);
                    next += 1;
                    if data == WAKER_KEY {
                        self.waker.reset();
                        woken = true;
                        continue;
                    }
                    if data == TIMER_KEY {
                        // Done once the batch's events are resolved, on the
                        // next pass of this loop.
                        housekeeping = true;
                        continue;
                    }
                    let key = Key::from_u64(data);
                    self.resolve(&mut inner, key, flags, &mut clock, &mut batch);
                }
                if inner.schedule_changed {
                    inner.reschedule();
                }
                self.removals.load(Ordering::Acquire)
            };
            for p in batch.drain(..) {
                // A handler earlier in this batch (or another thread) may have
                // removed this watch; a final event already owns its receiver,
                // and so does an event followed by its watch's final one.
                if !p.kind.is_final()
                    && !p.watch_ends_in_batch
                    && self.removals.load(Ordering::Acquire) != epoch
                    && !self.lock().table.contains(p.key)
                {
                    continue;
                }
                delivered += 1;
                handler(Event {
                    id: WatchId(p.key),
                    kind: p.kind,
                    receiver: p.receiver,
                });
            }
        }
        (delivered, woken)
    }

    /// Turns one readiness into pending events. Runs with the lock held: it
    /// does the reads and reaping (so that no fd can be closed and reused
    /// under it) but calls no caller code except `T::clone`.
    #[inline(always)]
    fn resolve(
        &self,
        inner: &mut Inner<T>,
        key: Key,
        flags: EventFlags,
        clock: &mut Clock,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        // Stale: the watch ended after the kernel queued this event.
        let Some(watch) = inner.table.get_mut(key) else {
            return;
        };
        let link = watch.oom_link;
        let outcome = watch.source.on_ready(flags, clock);
        // The hot path (an eventfd count, a populated change): one event
        // that does not end the watch, for the watch already in hand.
        match outcome {
            Outcome::One(kind) if !kind.is_final() => {
                let receiver = watch.receiver.clone();
                batch.push(Pending {
                    key,
                    kind,
                    receiver,
                    watch_ends_in_batch: false,
                });
            }
            Outcome::One(kind) => self.resolve_final(inner, key, link, kind, clock, batch),
            other => self.push_outcome(inner, key, other, batch),
        }
    }

    /// The end of a watch; for a process linked to its cgroup's OOM watch,
    /// the cgroup's unreported OOM goes out first.
    #[cold]
    fn resolve_final(
        &self,
        inner: &mut Inner<T>,
        key: Key,
        link: Option<Key>,
        kind: EventKind,
        clock: &mut Clock,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        if let (Some(link), EventKind::Exited(mut exit)) = (link, &kind) {
            // OOM before exit: whatever the cgroup has not reported yet goes
            // out first, then the exit, marked if a recent kill is its own.
            // Both from one look, before a removal found by that look can
            // take the cgroup's watch (and its count of kills) away.
            let now = clock.now();
            if let Some(w) = inner.table.get_mut(link) {
                let outcome = w.source.recheck(now, true);
                exit.oom_killed = w
                    .source
                    .oom_book()
                    .is_some_and(|b| b.claim_kill_for(exit.status, now));
                self.push_outcome(inner, link, outcome, batch);
            }
            self.push(inner, key, EventKind::Exited(exit), batch);
            return;
        }
        self.push(inner, key, kind, batch);
    }

    /// Runs `look` on the source under `key` (if live) and queues what it
    /// produced.
    pub(super) fn apply(
        &self,
        inner: &mut Inner<T>,
        key: Key,
        look: impl FnOnce(&mut Source) -> Outcome,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        if let Some(w) = inner.table.get_mut(key) {
            let outcome = look(&mut w.source);
            self.push_outcome(inner, key, outcome, batch);
        }
    }

    fn push_outcome(
        &self,
        inner: &mut Inner<T>,
        key: Key,
        outcome: Outcome,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        match outcome {
            Outcome::Nothing => {}
            Outcome::One(kind) => self.push(inner, key, kind, batch),
            Outcome::OomThenRemoved(oom) => {
                self.push(inner, key, EventKind::Memory(oom), batch);
                self.push(inner, key, EventKind::Removed, batch);
            }
            Outcome::RecheckLater => {
                if !inner.settling.contains(&key) {
                    inner.settling.push(key);
                }
                inner.schedule_changed = true;
            }
        }
    }

    /// Queues one event; a final one takes the watch out of the table and
    /// epoll, and carries the receiver itself.
    fn push(
        &self,
        inner: &mut Inner<T>,
        key: Key,
        kind: EventKind,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        let receiver = if kind.is_final() {
            let Some(w) = self.remove(&mut inner.table, key) else {
                return;
            };
            // Rare (an exit, a removal): a scan of the batch is fine.
            for p in batch.iter_mut().filter(|p| p.key == key) {
                p.watch_ends_in_batch = true;
            }
            w.receiver
        } else {
            match inner.table.get(key) {
                Some(w) => w.receiver.clone(),
                None => return,
            }
        };
        batch.push(Pending {
            key,
            kind,
            receiver,
            watch_ends_in_batch: false,
        });
    }
}
