//! [`Monitor::wait_mut`]'s dispatch: the table owned, receivers lent in
//! place.
//!
//! The hot case, a non-final event (an eventfd's count above all), costs
//! one generation-checked lookup, the source's read, and the handler call:
//! the handler gets `&mut T` into the receiver's own slot and a
//! [`Watches`] built from the slices on either side of it, so nothing is
//! moved, locked or staged, and a handler that ignores its `Watches` pays
//! nothing for it (the compiler drops the unused view). Only when the
//! handler added or removed something is the table settled after it.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use rustix::event::epoll;

use super::super::epoll::key_and_flags;
use super::super::registrar::Registrar;
use super::super::table::{Key, Watch};
use super::super::{Core, Inner, Watches};
use super::{deliver, on_ready_other, Batch, Sink};
use crate::event::{Event, EventKind, Receiver, WatchId};
use crate::source::{eventfd, Clock, Kind, Outcome};

pub(super) struct Owned<'m, T, F> {
    pub(super) core: &'m Core,
    pub(super) inner: &'m mut Inner<T>,
    pub(super) handler: &'m mut F,
}

impl<T, F> Sink<T> for Owned<'_, T, F>
where
    F: FnMut(Event<'_, T>, &Watches<'_, T>),
{
    const EXCLUSIVE: bool = true;

    #[inline(always)]
    fn core(&self) -> &Core {
        self.core
    }

    #[inline(always)]
    fn parts(&mut self) -> (&Core, &mut Inner<T>) {
        (self.core, self.inner)
    }

    #[inline(always)]
    fn unlock(&mut self) {}

    fn call(&mut self, event: Event<'_, T>) {
        let Owned {
            core,
            inner,
            handler,
        } = self;
        let watches = Watches::new(inner.registrar(core));
        // The caller's code: not asked to be unwind-safe, and on a panic
        // nothing of it is touched again. What it added is appended to
        // the table either way.
        let returned = catch_unwind(AssertUnwindSafe(|| handler(event, &watches)));
        if watches.into_registrar().table.dirty || returned.is_err() {
            inner.settle();
        }
        if let Err(panic) = returned {
            resume_unwind(panic);
        }
    }

    #[inline(always)]
    fn dispatch(&mut self, events: &[epoll::Event]) -> (usize, bool) {
        let mut batch = Batch::default();
        // In a register, not in `batch`, whose address the cold paths take.
        let mut delivered = 0;
        for ev in events {
            let data = key_and_flags(ev).0;
            let key = Key::from_u64(data);
            let Owned {
                core,
                inner,
                handler,
            } = &mut *self;
            match inner.ready_in_place(core, key, ev, &mut batch.clock) {
                // Its own call site, so that the compiler sees the hot kind
                // and drops nothing for it.
                InPlace::Signaled(count, receiver, registrar) => {
                    let kind = EventKind::Signaled { count };
                    delivered += match lend_in_place(&mut **handler, key, kind, receiver, registrar)
                    {
                        Lend::Done => 1,
                        Lend::After(after) => after_in_place(self, key, after),
                    };
                }
                InPlace::Lent(kind, receiver, registrar) => {
                    delivered +=
                        match lend_other_in_place(&mut **handler, key, kind, receiver, registrar) {
                            Lend::Done => 1,
                            Lend::After(after) => after_in_place(self, key, after),
                        };
                }
                InPlace::Other(Outcome::Nothing) => {}
                InPlace::Other(outcome) => {
                    let group = inner.resolve(core, key, outcome, &mut batch.clock);
                    delivered += deliver(self, group);
                }
                InPlace::Miss => batch.miss(core, data),
            }
        }
        batch.delivered = delivered;
        batch.finish(self)
    }

    #[cold]
    fn put_back_after_panic(&mut self, key: Key, watch: Watch<T>) {
        let (core, inner) = self.parts();
        if let Err(watch) = inner.table.restore(key, watch) {
            core.retire(&watch.source);
        }
    }
}

/// What a readiness gave on the owned path.
enum InPlace<'a, T> {
    /// An eventfd's count, its receiver in place.
    Signaled(u64, &'a mut T, Registrar<'a, T>),
    /// Another non-final event, its receiver in place.
    Lent(EventKind, &'a mut T, Registrar<'a, T>),
    /// Anything else, for the common path.
    Other(Outcome),
    /// Not a live watch's key.
    Miss,
}

impl<T> Inner<T> {
    #[inline(always)]
    fn ready_in_place<'a>(
        &'a mut self,
        core: &'a Core,
        key: Key,
        // Its flags are read only for the sources that need them.
        ev: &epoll::Event,
        clock: &mut Clock,
    ) -> InPlace<'a, T> {
        let Some((receiver, mut registrar)) = self.split_at(core, key) else {
            return InPlace::Miss;
        };
        let Some(source) = registrar.table.hole_source() else {
            return InPlace::Miss;
        };
        // The kind is in the key, which is the stamp's: no outcome to build
        // and take apart.
        if key.kind_bits() == Kind::EventFd as u32 {
            if let Some(fd) = &source.fd {
                return match eventfd::read_count(fd) {
                    Some(count) => InPlace::Signaled(count, receiver, registrar),
                    None => InPlace::Other(eventfd::drain_slowly(fd).into()),
                };
            }
        }
        match on_ready_other(source, ev, clock) {
            // An emptied cgroup waits for its OOM watch (`resolve.rs`).
            Outcome::One(kind) if !kind.is_final() && !kind.is_emptied() => {
                InPlace::Lent(kind, receiver, registrar)
            }
            other => InPlace::Other(other),
        }
    }
}

/// What a handler that held its receiver in place left to do.
enum Lend {
    /// Nothing: it neither added nor removed, and returned.
    Done,
    /// It added or removed watches, or panicked.
    After(After),
}

struct After {
    /// It unwatched the watch whose receiver it held.
    unwatched: bool,
    returned: std::thread::Result<()>,
}

/// Calls the handler with `receiver` lent in place. If the handler asked
/// for anything (added, removed) or panicked, [`after_in_place`] settles
/// the table.
#[inline(always)]
fn lend_in_place<T, F>(
    handler: &mut F,
    key: Key,
    kind: EventKind,
    receiver: &mut T,
    registrar: Registrar<'_, T>,
) -> Lend
where
    F: FnMut(Event<'_, T>, &Watches<'_, T>),
{
    let watches = Watches::new(registrar);
    let event = Event {
        id: WatchId(key.as_u64()),
        kind,
        receiver: Receiver::Lent(receiver),
    };
    // The handler is the caller's code: it is not asked to be unwind-safe,
    // and on a panic nothing of it is touched again.
    let returned = catch_unwind(AssertUnwindSafe(|| handler(event, &watches)));
    let table = watches.into_registrar().table;
    if !table.dirty && returned.is_ok() {
        return Lend::Done;
    }
    Lend::After(After {
        unwatched: table.hole_unwatched(),
        returned,
    })
}

/// [`lend_in_place`] for the kinds other than an eventfd's count: out of
/// line, so that the hot path is compiled on its own, with the kind known.
#[inline(never)]
fn lend_other_in_place<T, F>(
    handler: &mut F,
    key: Key,
    kind: EventKind,
    receiver: &mut T,
    registrar: Registrar<'_, T>,
) -> Lend
where
    F: FnMut(Event<'_, T>, &Watches<'_, T>),
{
    lend_in_place(handler, key, kind, receiver, registrar)
}

/// After a handler that held its receiver in place added or removed
/// watches: the table takes in what it spilled, and if the handler
/// unwatched the watch it was called for, that watch ends now and its
/// receiver comes back as `Unwatched`. A panicking handler leaves the table
/// consistent (the watch it unwatched ends, its receiver dropped) before
/// the panic goes on.
#[cold]
#[inline(never)]
fn after_in_place<T, F>(
    sink: &mut Owned<'_, T, F>,
    key: Key,
    After {
        unwatched,
        returned,
    }: After,
) -> usize
where
    F: FnMut(Event<'_, T>, &Watches<'_, T>),
{
    let (core, inner) = sink.parts();
    inner.settle();
    // Ended by the handler: its live count went with the `unwatch`.
    let ended = if unwatched {
        match inner.table.remove(key) {
            super::super::table::Removal::Removed(w) => {
                core.retire(&w.source);
                super::super::registrar::index_pid(&mut inner.watched_pids, &w.source, false);
                Some(w)
            }
            _ => None,
        }
    } else {
        None
    };
    if let Err(panic) = returned {
        resume_unwind(panic);
    }
    let Some(Watch { source, receiver }) = ended else {
        return 1;
    };
    sink.call(Event {
        id: WatchId(key.as_u64()),
        kind: EventKind::Unwatched,
        receiver: Receiver::Owned(receiver),
    });
    drop(source);
    2
}
