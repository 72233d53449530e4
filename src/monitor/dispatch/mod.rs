//! Waiting and dispatch, one event at a time, for both ways to wait.
//!
//! Each ready event is resolved with the table in hand (read, reaped,
//! looked up) and delivered at once, in the order the kernel reported it.
//! The two ways to wait differ in how a non-final event lends its
//! receiver, the hot case:
//!
//! - [`Monitor::wait_mut`] (`owned.rs`) owns the table (`Lock::get_mut`):
//!   the receiver stays in its slot and the handler gets `&mut T` into it,
//!   with [`Watches`] over the rest of the table. Nothing is copied, locked
//!   or staged.
//! - [`Monitor::wait`] (`shared.rs`) shares it: the watch is taken out of
//!   its slot (which stays reserved, "lent") under the lock, the lock is
//!   released for the handler, and the watch put back under the lock.
//!
//! Everything else (final events, an OOM and its removal, re-checks, the
//! timer's work) takes the common path below, generic over a [`Sink`]:
//! a final event's watch is removed for good and its receiver handed over;
//! a non-final one's watch is taken out of its slot for the call.

mod children;
mod owned;
mod resolve;
pub(super) use resolve::GoneKills;
mod shared;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::event::Timespec;
use rustix::io::Errno;

use super::epoll::{key_and_flags, millis_timespec, EventBuf, BATCH};
use super::table::{Key, Watch};
use super::{Core, Inner, Monitor, Watches, KMSG_KEY, TIMER_KEY, WAKER_KEY};
use crate::event::{Event, EventKind, Receiver, WatchId};
use crate::source::{Clock, Outcome, Source};
use crate::{Error, Result, Subject};
pub(super) use resolve::{Group, Pending};

impl<T> Monitor<T> {
    /// Waits for events and calls `handler` once for each, in the order the
    /// kernel reported them, with the table shared: any thread may add or
    /// remove watches meanwhile, and several may wait at once. Returns the
    /// number of events delivered: at least one, or 0 when the timeout
    /// passed, [`wake`](Self::wake) was called, or the monitor was shut
    /// down.
    ///
    /// `timeout` of `None` waits forever; otherwise it is rounded up to whole
    /// milliseconds (a 0.3 ms timeout waits 1 ms rather than spinning), and a
    /// signal interrupting the wait (`EINTR`) neither ends it early nor
    /// extends it.
    ///
    /// The handler runs with no lock held: it may call `watch_*`, `unwatch`,
    /// and even `wait` on this monitor. An event whose watch was removed
    /// before it is delivered is dropped. A non-final event lends the
    /// receiver ([`Receiver::Lent`](crate::Receiver::Lent)); while it is
    /// lent, `unwatch` of that watch ends it and the receiver comes back as
    /// an [`EventKind::Unwatched`](crate::EventKind::Unwatched) event. If the
    /// handler panics, the panic propagates: the watch whose receiver it held
    /// goes back into the table as it was, the other events of that
    /// readiness not yet delivered are lost (a final one's receiver is
    /// dropped), and readiness not yet looked at is reported by the next
    /// wait.
    ///
    /// With several threads waiting at once, a readiness for a watch whose
    /// receiver another thread's handler holds is left for later: it is
    /// delivered once that handler returns (a level-triggered source keeps
    /// the waiting thread's `epoll_wait` returning meanwhile, so keep
    /// handlers short when several threads wait).
    ///
    /// Prefer [`wait_mut`](Self::wait_mut) when one thread owns the monitor.
    ///
    /// Like `wait_mut`, this loop is inlined into the caller (about 2 KiB of
    /// code at each call site), so that a constant timeout is worked out at
    /// compile time.
    ///
    /// # Errors
    ///
    /// Only `epoll_wait` failing (other than `EINTR`) returns an error, and
    /// nothing is lost when it does. A source that fails is reported as an
    /// [`EventKind::Failed`](crate::EventKind::Failed) event instead.
    #[inline(always)]
    pub fn wait<F>(&self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>),
    {
        // Its handlers' `unwatch` calls must not wait for lent receivers.
        let _inside = super::InsideWait::enter();
        wait_shared(
            &mut shared::Shared {
                monitor: self,
                guard: None,
                handler: &mut handler,
            },
            timeout,
        )
    }

    /// [`wait`](Self::wait) for the thread that owns the monitor: the same
    /// events and guarantees, with no lock, no staging and no atomic
    /// read-modify-write per event, because `&mut self` proves that no other
    /// thread can touch the table meanwhile.
    ///
    /// A non-final event's receiver is lent in place: the handler gets
    /// `&mut T` straight into the monitor's table, and [`Watches`] to add
    /// and remove watches with (every `watch_*` method, `unwatch`,
    /// `contains`), without a lock, while it holds it. What a handler
    /// cannot do here that a [`wait`](Self::wait) handler can: wait again,
    /// or reach the monitor itself (the `&mut self` is taken).
    ///
    /// This loop is inlined into the caller (about 2 KiB of code at each
    /// call site), so that a constant timeout is worked out at compile
    /// time.
    ///
    /// ```
    /// use ctrmon::{EventKind, Monitor};
    ///
    /// let mut monitor = Monitor::new()?;
    /// let (id, writer) = monitor.watch(ctrmon::watch::NewEventfd, 0u64)?;
    /// writer.signal(3)?;
    /// monitor.wait_mut(None, |event, watches| {
    ///     if let EventKind::Signaled { count } = event.kind {
    ///         let mut total = event.receiver;
    ///         *total += count; // lent: the sum stays in the monitor
    ///         if *total >= 3 {
    ///             // Our own watch: it ends, and the receiver comes back
    ///             // as an `Unwatched` event once this handler returns.
    ///             assert!(watches.unwatch(event.id).is_err());
    ///         }
    ///     }
    /// })?;
    /// assert!(!monitor.contains(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    #[inline(always)]
    pub fn wait_mut<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>, &Watches<'_, T>),
    {
        let Monitor { core, inner } = self;
        // No caller code runs while the table is being changed, so a
        // poisoned table is still consistent.
        let inner = inner.get_mut();
        // A handler that panicked in place may have left watches it added
        // in the spill vector.
        inner.table.settle_spill();
        wait_in(
            &mut owned::Owned {
                core,
                inner,
                handler: &mut handler,
            },
            timeout,
        )
    }
}

impl<T> Monitor<T> {
    /// Runs `f` with [`Watches`] over the whole table, outside of a wait
    /// (the tokio adapter hands queued events to a `wait_mut` handler this
    /// way), and settles the table after.
    #[cfg(feature = "tokio")]
    pub(crate) fn with_watches<R>(&mut self, f: impl FnOnce(&Watches<'_, T>) -> R) -> R {
        let Monitor { core, inner } = self;
        let inner = inner.get_mut();
        let watches = Watches::new(inner.registrar(core));
        let result = catch_unwind(AssertUnwindSafe(|| f(&watches)));
        if watches.into_registrar().table.dirty || result.is_err() {
            inner.settle();
        }
        if inner.schedule_changed {
            inner.reschedule();
        }
        result.unwrap_or_else(|panic| resume_unwind(panic))
    }
}

/// How dispatch reaches the table and the handler: locked per event
/// ([`Monitor::wait`]), or owned ([`Monitor::wait_mut`]).
trait Sink<T> {
    /// No other thread can see the monitor while dispatch runs.
    const EXCLUSIVE: bool;
    fn core(&self) -> &Core;
    /// The lock-free parts and the table (locking it if need be).
    fn parts(&mut self) -> (&Core, &mut Inner<T>);
    /// Releases the table before a handler runs.
    fn unlock(&mut self);
    /// Calls the handler with an event whose receiver is not in the table
    /// (owned, or lent from a watch on the stack). Unlocks first.
    fn call(&mut self, event: Event<'_, T>);
    /// Resolves and delivers one `epoll_wait`'s events. Returns the number
    /// delivered, and whether the waker fired.
    fn dispatch(&mut self, events: &[epoll::Event]) -> (usize, bool);
    /// Puts a lent watch back after its handler panicked.
    fn put_back_after_panic(&mut self, key: Key, watch: Watch<T>);
}

/// The `epoll_wait` timeouts of one `wait`, worked out once.
struct Timeout {
    /// The first wait's timeout (`None`: forever).
    first: Option<Timespec>,
    /// When the caller's timeout ends; only read for a retry.
    deadline: Deadline,
}

#[derive(Clone, Copy)]
enum Deadline {
    Never,
    /// Look once, do not sleep.
    Poll,
    At(Instant),
}

impl Timeout {
    #[inline(always)]
    fn new(timeout: Option<Duration>) -> Timeout {
        match timeout {
            None => Timeout {
                first: None,
                deadline: Deadline::Never,
            },
            // The common polling case needs no clock and no division.
            Some(t) if t.is_zero() => Timeout {
                first: Some(Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }),
                deadline: Deadline::Poll,
            },
            Some(t) => Timeout {
                first: Some(millis_timespec(t)),
                deadline: Instant::now()
                    .checked_add(t)
                    .map_or(Deadline::Never, Deadline::At),
            },
        }
    }

    /// The timeout of a further `epoll_wait` (after `EINTR`, or a wake-up
    /// that delivered nothing); `None` when the time is up.
    fn again(&self) -> Option<Option<Timespec>> {
        match self.deadline {
            Deadline::Never => Some(None),
            Deadline::Poll => None,
            Deadline::At(d) => {
                let now = Instant::now();
                (now < d).then(|| Some(millis_timespec(d - now)))
            }
        }
    }
}

/// The shared path's wait, inlined into the caller as `wait_mut`'s is: a
/// constant timeout then folds (the `Timespec`'s conversion to
/// milliseconds alone was 22 instructions per wait), and a one-event wait
/// pays no call (276 -> 245 instructions per one-event wait, N = 1;
/// benches/README.md).
#[inline(always)]
fn wait_shared<T, S: Sink<T>>(sink: &mut S, timeout: Option<Duration>) -> Result<usize> {
    wait_in(sink, timeout)
}

/// The wait loop. Inlined (into `wait_mut`, itself inlined into its
/// caller), so that a constant timeout, the common zero of a nested loop
/// or none at all, is worked out at compile time, and the one-event wait
/// pays no call: about 2 KiB of code at each call site of `wait_mut`.
#[inline(always)]
fn wait_in<T, S: Sink<T>>(sink: &mut S, timeout: Option<Duration>) -> Result<usize> {
    let timeout = Timeout::new(timeout);
    // `None` until the first wait is done. The first wait takes its
    // timeout straight from `timeout.first`, on a call site of its own, so
    // that a constant timeout folds there even on the out-of-loop paths
    // (a loop-carried `Timespec` was kept on the stack and converted at
    // run time: about 15 instructions per wait).
    let mut retry: Option<Option<Timespec>> = None;
    let mut buf: EventBuf = [MaybeUninit::uninit(); BATCH];
    loop {
        let core = sink.core();
        if core.is_shut_down() {
            core.pass_on_shutdown();
            return Ok(0);
        }
        let ready = match &retry {
            None => core.epoll.wait_once(&mut buf, timeout.first.as_ref()),
            Some(sleep) => core.epoll.wait_again(&mut buf, sleep.as_ref()),
        };
        match ready {
            Ok(events) => {
                let (delivered, woken) = sink.dispatch(events);
                if delivered > 0 || woken {
                    let core = sink.core();
                    if woken && core.is_shut_down() {
                        core.pass_on_shutdown();
                    }
                    return Ok(delivered);
                }
            }
            // Retried with the same absolute deadline.
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(Error::os(
                    "epoll_wait on",
                    Subject::Fd(core.epoll.as_fd().as_raw_fd()),
                    e,
                ))
            }
        }
        // Nothing to deliver (a timeout, stale or empty readiness, or a
        // re-check that is still waiting): wait out the rest of the time.
        match timeout.again() {
            Some(t) => retry = Some(t),
            None => return Ok(0),
        }
    }
}

/// A readiness of any source but a caller's eventfd (which the owned path
/// reads inline), out of line: the flags are read, and the source's address
/// worked out, only here, which keeps the eventfd's path short.
#[inline(never)]
fn on_ready_other(source: &mut Source, ev: &epoll::Event, clock: &mut Clock) -> Outcome {
    source.on_ready(key_and_flags(ev).1, clock)
}

/// What one batch found besides events to deliver.
#[derive(Default)]
struct Batch {
    delivered: usize,
    woken: bool,
    housekeeping: bool,
    kmsg_ready: bool,
    /// Either of the two above: one test at the batch's end.
    timed: bool,
    clock: Clock,
}

impl Batch {
    /// A key the table does not know: the monitor's own fds, or stale (the
    /// watch ended after the kernel queued this event). Their indices are
    /// never handed out, so they are tested only on a miss.
    #[inline(always)]
    fn miss(&mut self, core: &Core, data: u64) {
        match data {
            WAKER_KEY => {
                core.waker.reset();
                self.woken = true;
            }
            // Done once the batch's events are delivered.
            TIMER_KEY => {
                self.housekeeping = true;
                self.timed = true;
            }
            KMSG_KEY => {
                self.kmsg_ready = true;
                self.timed = true;
            }
            _ => {}
        }
    }

    /// The work left for the end of the batch: the kernel log, the timer.
    #[inline(always)]
    fn finish<T, S: Sink<T>>(&mut self, sink: &mut S) -> (usize, bool) {
        if self.timed {
            self.timed_work(sink);
        }
        let (_, inner) = sink.parts();
        if inner.schedule_changed {
            inner.reschedule();
        }
        sink.unlock();
        (self.delivered, self.woken)
    }

    #[cold]
    #[inline(never)]
    fn timed_work<T, S: Sink<T>>(&mut self, sink: &mut S) {
        if self.kmsg_ready {
            let (_, inner) = sink.parts();
            inner.on_kmsg_ready(&mut self.clock);
        }
        if self.housekeeping {
            self.delivered += housekeep(sink, &mut self.clock);
        }
    }
}

/// Calls the handler with the receiver of `watch` lent, then puts the
/// watch back in its slot, wakes any thread waiting to unwatch it, and
/// delivers `Unwatched` if it was ended meanwhile. Returns the number of
/// events delivered. The watch stays in this one frame throughout, so it is
/// copied out of its slot and back in, and nowhere else.
///
/// If the handler panics, the watch goes back into its slot (or, if it was
/// unwatched meanwhile, out of epoll) before the panic goes on, so that its
/// slot is not lost and its id stays true.
#[inline(always)]
fn lend<T, S: Sink<T>>(sink: &mut S, key: Key, kind: EventKind, mut watch: Watch<T>) -> usize {
    let event = Event {
        id: WatchId(key.as_u64()),
        kind,
        receiver: Receiver::Lent(&mut watch.receiver),
    };
    // The handler is the caller's code: it is not asked to be unwind-safe,
    // and on a panic nothing of it is touched again.
    let returned = catch_unwind(AssertUnwindSafe(|| sink.call(event)));
    if let Err(panic) = returned {
        sink.put_back_after_panic(key, watch);
        resume_unwind(panic);
    }
    let (core, inner) = sink.parts();
    let restored = inner.table.restore(key, watch);
    if !S::EXCLUSIVE && inner.unwatch_waiters > 0 {
        core.returned.notify_all();
    }
    match restored {
        Ok(()) => 1,
        Err(watch) => 1 + give_back_unwatched(sink, key, watch),
    }
}

/// [`lend`] for the kinds other than an eventfd's count, out of line: the
/// hot kind's path then carries no [`EventKind`] to test or drop.
#[inline(never)]
fn lend_other<T, S: Sink<T>>(sink: &mut S, key: Key, kind: EventKind, watch: Watch<T>) -> usize {
    lend(sink, key, kind, watch)
}

/// A watch ended by `unwatch` while it was lent: out of epoll, and its
/// receiver handed back in an `Unwatched` event.
#[cold]
#[inline(never)]
fn give_back_unwatched<T, S: Sink<T>>(sink: &mut S, key: Key, watch: Watch<T>) -> usize {
    sink.core().retire(&watch.source);
    let Watch { source, receiver } = watch;
    sink.call(Event {
        id: WatchId(key.as_u64()),
        kind: EventKind::Unwatched,
        receiver: Receiver::Owned(receiver),
    });
    drop(source);
    1
}

/// Delivers a group: a final event hands its receiver over; a non-final one
/// lends it, from the watch of a final event later in the group (an OOM,
/// then the removal of the same cgroup) or from the table.
#[inline(never)]
fn deliver<T, S: Sink<T>>(sink: &mut S, mut group: Group<T>) -> usize {
    let mut delivered = 0;
    for i in 0..group.items.len() {
        let Some(Pending { key, kind, watch }) = group.items[i].take() else {
            continue;
        };
        let id = WatchId(key.as_u64());
        if let Some(Watch { source, receiver }) = watch {
            let receiver = Receiver::Owned(receiver);
            sink.call(Event { id, kind, receiver });
            drop(source);
            delivered += 1;
            continue;
        }
        let later = group.items[i + 1..]
            .iter_mut()
            .flatten()
            .filter(|p| p.key == key)
            .find_map(|p| p.watch.as_mut());
        if let Some(w) = later {
            // Already out of the table: nobody can wait for it.
            let receiver = Receiver::Lent(&mut w.receiver);
            sink.call(Event { id, kind, receiver });
            delivered += 1;
            continue;
        }
        let (_, inner) = sink.parts();
        // Gone since it was resolved: dropped.
        let Some(w) = inner.table.lend(key, !S::EXCLUSIVE) else {
            continue;
        };
        delivered += lend(sink, key, kind, w);
    }
    delivered
}

/// The timer fired: re-checks that are due, kernfs re-arms.
#[cold]
#[inline(never)]
fn housekeep<T, S: Sink<T>>(sink: &mut S, clock: &mut Clock) -> usize {
    let now = clock.now();
    let (core, inner) = sink.parts();
    inner.timer.acknowledge();
    inner.rearm_kernfs_due(core, now);
    // Each settling watch is looked at once per pass, even if its re-check
    // asks for another straight away.
    let mut delivered = 0;
    for _ in 0..inner.settling.len() {
        let (core, inner) = sink.parts();
        let Some(key) = inner.next_due(now) else {
            break;
        };
        let Some(w) = inner.table.get_mut(key) else {
            continue;
        };
        let outcome = w.source.recheck(now, false);
        // An exit (a non-child's, whose parent has now reaped it) takes the
        // same path as from a readiness: its cgroup's OOM first.
        let group = inner.resolve(core, key, outcome, clock);
        delivered += deliver(sink, group);
    }
    loop {
        let (_, inner) = sink.parts();
        if inner.late_exits.is_empty() {
            break;
        }
        let group = inner.late_exits_due(now);
        if group.is_empty() {
            break;
        }
        delivered += deliver(sink, group);
    }
    // Where pidfds are refused, SIGCHLD's signalfd shares the timer's key.
    delivered += children::scan(sink, clock);
    let (_, inner) = sink.parts();
    inner.reschedule();
    delivered
}
