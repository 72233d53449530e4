//! [`Monitor::wait`]'s dispatch: the table behind the lock, which is never
//! held while a handler runs.
//!
//! Each event is resolved under the lock; a non-final one's watch is taken
//! out of its slot (which stays reserved, "lent"), the lock released for
//! the handler, and the watch put back under the lock. So only the watch
//! whose receiver a handler holds is out of reach of other threads (and of
//! the handler's own `unwatch`), never a whole batch.

use rustix::event::epoll;

use super::super::epoll::key_and_flags;
use super::super::table::{Key, Ready, Watch};
use super::super::{Core, Inner, Monitor};
use super::{deliver, lend, lend_other, Batch, Sink};
use crate::event::{Event, EventKind};
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
        for ev in events {
            let (data, flags) = key_and_flags(ev);
            let key = Key::from_u64(data);
            let (_, inner) = self.parts();
            let ready = inner
                .table
                .on_ready(key, |source| source.on_ready(flags, &mut batch.clock));
            match ready {
                // Its own call site, so that the compiler sees the hot kind
                // and drops nothing for it.
                Ready::Signaled(count, watch) => {
                    let kind = EventKind::Signaled { count };
                    batch.delivered += lend(self, key, kind, watch);
                }
                Ready::Lent(kind, watch) => {
                    batch.delivered += lend_other(self, key, kind, watch);
                }
                Ready::Other(Outcome::Nothing) => {}
                Ready::Other(outcome) => {
                    let (core, inner) = self.parts();
                    let group = inner.resolve(core, key, outcome, &mut batch.clock);
                    batch.delivered += deliver(self, group);
                }
                Ready::Miss => batch.miss(&self.monitor.core, data),
            }
        }
        batch.finish(self)
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
