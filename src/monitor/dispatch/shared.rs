//! [`Monitor::wait`]'s dispatch: the table behind the lock, which is never
//! held while a handler runs.
//!
//! Each event is resolved under the lock; a non-final one's watch is taken
//! out of its slot (which stays reserved, "lent"), the lock released for
//! the handler, and the watch put back under the lock. So only the watch
//! whose receiver a handler holds is out of reach of other threads (and of
//! the handler's own `unwatch`), never a whole batch.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use rustix::event::epoll;

use super::super::epoll::key_and_flags;
use super::super::table::{Key, Ready, Watch};
use super::super::{Core, Inner, Monitor};
use super::{deliver, give_back_unwatched, lend_other, Batch, Sink};

use crate::event::{Event, EventKind, Receiver, WatchId};
use crate::source::Outcome;
use crate::sys::lock::LockGuard;

pub(super) struct Shared<'m, T, F> {
    pub(super) monitor: &'m Monitor<T>,
    pub(super) guard: Option<LockGuard<'m, Inner<T>>>,
    pub(super) handler: &'m mut F,
}

impl<'m, T, F> Sink<T> for Shared<'m, T, F>
where
    F: FnMut(Event<'_, T>),
{
    const EXCLUSIVE: bool = false;

    #[inline(always)]
    fn core(&self) -> &Core {
        &self.monitor.core
    }

    #[inline(always)]
    fn parts(&mut self) -> (&Core, &mut Inner<T>) {
        let monitor = self.monitor;
        let guard = self.guard.get_or_insert_with(|| monitor.lock());
        (&monitor.core, guard)
    }

    #[inline(always)]
    fn unlock(&mut self) {
        self.guard = None;
    }

    #[inline(always)]
    fn call(&mut self, event: Event<'_, T>) {
        self.guard = None;
        (self.handler)(event);
    }

    #[inline(always)]
    fn dispatch(&mut self, events: &[epoll::Event]) -> (usize, bool) {
        let mut batch = Batch::default();
        let monitor = self.monitor;
        // The lock is held in a local between events, not in `self.guard`:
        // the compiler then knows it is held, and neither tests an
        // `Option` nor reloads it after each atomic (the guard's slot in
        // `self` escapes, so every atomic might have changed it).
        // Never held on entry: every path below leaves `self.guard` empty.
        debug_assert!(self.guard.is_none());
        let mut guard = monitor.lock();
        for ev in events {
            let (data, flags) = key_and_flags(ev);
            let key = Key::from_u64(data);
            let ready = guard
                .table
                .on_ready(key, |source| source.on_ready(flags, &mut batch.clock));
            match ready {
                // Its own call site, so that the compiler sees the hot kind
                // and drops nothing for it.
                Ready::Signaled(count, watch) => {
                    let (g, n) = lend_signaled(self, guard, key, count, watch);
                    guard = g;
                    batch.delivered += n;
                }
                Ready::Lent(kind, watch) => {
                    self.guard = Some(guard);
                    batch.delivered += lend_other(self, key, kind, watch);
                    guard = self.relock();
                }
                Ready::Other(Outcome::Nothing) => {}
                Ready::Other(outcome) => {
                    let group = guard.resolve(&monitor.core, key, outcome, &mut batch.clock);
                    self.guard = Some(guard);
                    batch.delivered += deliver(self, group);
                    guard = self.relock();
                }
                Ready::Miss => batch.miss(&monitor.core, data),
            }
        }
        // `Batch::finish`, with the lock in the local.
        if batch.timed {
            self.guard = Some(guard);
            batch.timed_work(self);
            guard = self.relock();
        }
        if guard.schedule_changed {
            guard.reschedule();
        }
        drop(guard);
        (batch.delivered, batch.woken)
    }

    #[cold]
    fn put_back_after_panic(&mut self, key: Key, watch: Watch<T>) {
        let (core, inner) = self.parts();
        if let Err(watch) = inner.table.restore(key, watch) {
            core.retire(&watch.source);
        }
        if inner.unwatch_waiters > 0 {
            core.returned.notify_all();
        }
        self.guard = None;
    }
}

impl<'m, T, F> Shared<'m, T, F> {
    /// The lock, as a local: the one `self.guard` holds, or a new one.
    #[inline(always)]
    fn relock(&mut self) -> LockGuard<'m, Inner<T>> {
        match self.guard.take() {
            Some(guard) => guard,
            None => self.monitor.lock(),
        }
    }
}

/// The hot case of the shared path, [`lend`](super::lend) with the lock in
/// a local: releases it, calls the handler with the receiver of `watch`
/// lent, takes it again and puts the watch back (waking any thread waiting
/// to unwatch it, delivering `Unwatched` if it was ended meanwhile).
/// Returns the lock and the number of events delivered. The watch stays in
/// this one frame, so it is copied out of its slot and back, and nowhere
/// else; on a panic it goes back (or out of epoll) before the panic goes
/// on, as in `lend`.
#[inline(always)]
fn lend_signaled<'m, T, F>(
    sink: &mut Shared<'m, T, F>,
    guard: LockGuard<'m, Inner<T>>,
    key: Key,
    count: u64,
    mut watch: Watch<T>,
) -> (LockGuard<'m, Inner<T>>, usize)
where
    F: FnMut(Event<'_, T>),
{
    drop(guard);
    let event = Event {
        id: WatchId(key.as_u64()),
        kind: EventKind::Signaled { count },
        receiver: Receiver::Lent(&mut watch.receiver),
    };
    let handler = &mut *sink.handler;
    // The handler is the caller's code: it is not asked to be unwind-safe,
    // and on a panic nothing of it is touched again.
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| handler(event))) {
        sink.put_back_after_panic(key, watch);
        resume_unwind(panic);
    }
    let monitor = sink.monitor;
    let mut guard = monitor.lock();
    let restored = guard.table.restore(key, watch);
    if guard.unwatch_waiters > 0 {
        monitor.core.returned.notify_all();
    }
    match restored {
        Ok(()) => (guard, 1),
        Err(watch) => {
            sink.guard = Some(guard);
            let n = give_back_unwatched(sink, key, watch);
            (sink.relock(), 1 + n)
        }
    }
}
