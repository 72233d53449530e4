//! Waiting and dispatch, one event at a time, for both ways to wait.
//!
//! Each ready event is resolved with the table in hand (read, reaped,
//! looked up), and delivered at once with the table released: a non-final
//! event's watch is taken out of its slot (the slot stays reserved, "lent")
//! so that the handler can be lent the receiver while it adds and removes
//! watches, and put back when the handler returns; a final event's watch is
//! removed for good and its receiver handed over.
//!
//! The same code serves [`Monitor::wait`] (the table behind the mutex, locked
//! around each resolution and released around each handler call) and
//! [`Monitor::wait_mut`] (the table reached with `Mutex::get_mut`: no lock,
//! no atomic read-modify-write). Nothing is staged: there is no batch of
//! resolved events to copy and drain, and the only per-event state is the
//! lent watch on the stack.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventFlags};
use rustix::event::Timespec;
use rustix::io::Errno;

use super::epoll::{key_and_flags, millis_timespec, EventBuf, BATCH};
use super::table::{Key, Ready, Removal, Watch};
use super::{Core, Inner, Monitor, KMSG_KEY, TIMER_KEY, WAKER_KEY};
use crate::event::{Event, EventKind, Exit, Receiver, WatchId};
use crate::source::{Clock, Outcome};
use crate::{Error, Result, Subject};

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
    /// # Errors
    ///
    /// Only `epoll_wait` failing (other than `EINTR`) returns an error, and
    /// nothing is lost when it does. A source that fails is reported as an
    /// [`EventKind::Failed`](crate::EventKind::Failed) event instead.
    pub fn wait<F>(&self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>),
    {
        let mut access = Locked {
            monitor: self,
            guard: None,
        };
        wait_in(&mut access, timeout, &mut |e, _| handler(e))
    }

    /// [`wait`](Self::wait) for the thread that owns the monitor: the same
    /// events and guarantees, with no lock, no staging and no atomic
    /// read-modify-write per event, because `&mut self` proves that no other
    /// thread can touch the table meanwhile.
    ///
    /// The handler gets each event and `&Monitor`, to add and remove watches
    /// (or even wait, on the shared path) while it runs; those calls lock,
    /// uncontended, for their own duration.
    ///
    /// ```
    /// use ctrmon::{EventKind, Monitor};
    ///
    /// let mut monitor = Monitor::new()?;
    /// let (id, writer) = monitor.watch_new_eventfd(0u64)?;
    /// writer.signal(3)?;
    /// monitor.wait_mut(None, |event, monitor| {
    ///     if let EventKind::Signaled { count } = event.kind {
    ///         let mut total = event.receiver;
    ///         *total += count; // lent: the sum stays in the monitor
    ///         if *total >= 3 {
    ///             // Our own watch: it ends, and the receiver comes back
    ///             // as an `Unwatched` event once this handler returns.
    ///             assert!(monitor.unwatch(event.id).is_err());
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
    pub fn wait_mut<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>, &Monitor<T>),
    {
        wait_in(&mut Owned(self), timeout, &mut handler)
    }
}

/// How dispatch reaches the table: locked per event, or owned.
trait Access<T> {
    /// No other thread can see the monitor while dispatch runs.
    const EXCLUSIVE: bool;
    fn monitor(&self) -> &Monitor<T>;
    /// The lock-free parts and the table (locking it if need be).
    fn parts(&mut self) -> (&Core, &mut Inner<T>);
    /// Releases the table before a handler runs.
    fn unlock(&mut self);
}

struct Locked<'m, T> {
    monitor: &'m Monitor<T>,
    guard: Option<MutexGuard<'m, Inner<T>>>,
}

impl<T> Access<T> for Locked<'_, T> {
    const EXCLUSIVE: bool = false;

    #[inline(always)]
    fn monitor(&self) -> &Monitor<T> {
        self.monitor
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
}

struct Owned<'m, T>(&'m mut Monitor<T>);

impl<T> Access<T> for Owned<'_, T> {
    const EXCLUSIVE: bool = true;

    #[inline(always)]
    fn monitor(&self) -> &Monitor<T> {
        self.0
    }

    #[inline(always)]
    fn parts(&mut self) -> (&Core, &mut Inner<T>) {
        let Monitor { core, inner } = &mut *self.0;
        (
            core,
            // No caller code runs while the table is being changed, so a
            // poisoned table is still consistent.
            inner.get_mut().unwrap_or_else(PoisonError::into_inner),
        )
    }

    #[inline(always)]
    fn unlock(&mut self) {}
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

fn wait_in<T, A, F>(access: &mut A, timeout: Option<Duration>, handler: &mut F) -> Result<usize>
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let timeout = Timeout::new(timeout);
    let mut sleep = timeout.first;
    let mut buf: EventBuf = [MaybeUninit::uninit(); BATCH];
    loop {
        let core = &access.monitor().core;
        if core.is_shut_down() {
            core.pass_on_shutdown();
            return Ok(0);
        }
        match core.epoll.wait_once(&mut buf, sleep.as_ref()) {
            Ok(events) => {
                let (delivered, woken) = dispatch(access, events, handler);
                if delivered > 0 || woken {
                    let core = &access.monitor().core;
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
            Some(t) => sleep = t,
            None => return Ok(0),
        }
    }
}

/// Resolves and delivers one `epoll_wait`'s events. Returns the number
/// delivered, and whether the waker fired.
#[inline(always)]
fn dispatch<T, A, F>(access: &mut A, events: &[epoll::Event], handler: &mut F) -> (usize, bool)
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let mut delivered = 0;
    let mut woken = false;
    let mut housekeeping = false;
    let mut kmsg_ready = false;
    let mut clock = Clock::default();
    for ev in events {
        let (data, flags) = key_and_flags(ev);
        let key = Key::from_u64(data);
        let (core, inner) = access.parts();
        // The waker, timer and kernel log keys are tested only on a miss:
        // their slot indices are never handed out.
        let ready = inner.table.on_ready(key, !A::EXCLUSIVE, |source| {
            source.on_ready(flags, &mut clock)
        });
        match ready {
            Ready::Lent(kind, watch) => {
                access.unlock();
                let watch = lend_out::<T, A, F>(handler, key, kind, watch, access.monitor());
                delivered += 1;
                if let Some(watch) = watch {
                    delivered += give_back(access, key, watch, handler);
                }
            }
            Ready::Other(Outcome::Nothing) => {}
            Ready::Other(outcome) => {
                let group = inner.resolve(core, key, outcome, &mut clock, A::EXCLUSIVE);
                delivered += deliver(access, group, handler);
            }
            Ready::Miss if data == WAKER_KEY => {
                core.waker.reset();
                woken = true;
            }
            // Done once the batch's events are delivered.
            Ready::Miss if data == TIMER_KEY => housekeeping = true,
            Ready::Miss if data == KMSG_KEY => kmsg_ready = true,
            // Stale: the watch ended after the kernel queued this event.
            Ready::Miss => {}
        }
    }
    if kmsg_ready {
        let (_, inner) = access.parts();
        inner.on_kmsg_ready(&mut clock);
    }
    if housekeeping {
        delivered += housekeep(access, &mut clock, handler);
    }
    let (_, inner) = access.parts();
    if inner.schedule_changed {
        inner.reschedule();
    }
    access.unlock();
    (delivered, woken)
}

/// Calls the handler with the receiver of `watch` lent, and hands the watch
/// back to be put in its slot. On the shared path the thread counts its
/// lends, so that its own `unwatch` calls know not to wait for a lend to end
/// (see `Monitor::unwatch`). If the handler panics, the watch goes back into
/// its slot (or, if it was unwatched meanwhile, out of epoll) before the
/// panic goes on, so that its slot is not lost and its id stays true.
#[inline(always)]
fn lend_out<T, A, F>(
    handler: &mut F,
    key: Key,
    kind: EventKind,
    mut watch: Watch<T>,
    monitor: &Monitor<T>,
) -> Option<Watch<T>>
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let event = Event {
        id: WatchId(key.as_u64()),
        kind,
        receiver: Receiver::Lent(&mut watch.receiver),
    };
    if !A::EXCLUSIVE {
        super::LENDS.with(|n| n.set(n.get() + 1));
    }
    // The handler is the caller's code: it is not asked to be unwind-safe,
    // and on a panic nothing of it is touched again.
    let returned = catch_unwind(AssertUnwindSafe(|| handler(event, monitor)));
    if !A::EXCLUSIVE {
        super::LENDS.with(|n| n.set(n.get() - 1));
    }
    if let Err(panic) = returned {
        put_back_after_panic(monitor, key, watch);
        resume_unwind(panic);
    }
    Some(watch)
}

#[cold]
#[inline(never)]
fn put_back_after_panic<T>(monitor: &Monitor<T>, key: Key, watch: Watch<T>) {
    let mut inner = monitor.lock();
    if let Err(watch) = inner.table.restore(key, watch) {
        monitor.core.retire(&watch.source, false);
    }
    if inner.unwatch_waiters > 0 {
        monitor.core.returned.notify_all();
    }
}

/// Puts a lent watch back, wakes any thread waiting to unwatch it, and
/// delivers `Unwatched` if it was ended meanwhile.
#[inline(always)]
fn give_back<T, A, F>(access: &mut A, key: Key, watch: Watch<T>, handler: &mut F) -> usize
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let (core, inner) = access.parts();
    let restored = inner.table.restore(key, watch);
    if !A::EXCLUSIVE && inner.unwatch_waiters > 0 {
        core.returned.notify_all();
    }
    match restored {
        Ok(()) => 0,
        Err(watch) => give_back_unwatched(access, key, watch, handler),
    }
}

/// A watch ended by `unwatch` while it was lent: out of epoll, and its
/// receiver handed back in an `Unwatched` event.
#[cold]
#[inline(never)]
fn give_back_unwatched<T, A, F>(access: &mut A, key: Key, watch: Watch<T>, handler: &mut F) -> usize
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let (core, _) = access.parts();
    core.retire(&watch.source, A::EXCLUSIVE);
    access.unlock();
    let Watch { source, receiver } = watch;
    handler(
        Event {
            id: WatchId(key.as_u64()),
            kind: EventKind::Unwatched,
            receiver: Receiver::Owned(receiver),
        },
        access.monitor(),
    );
    drop(source);
    1
}

/// Up to [`Group::CAP`] events from one readiness (or one re-check), in
/// delivery order. A final event carries its watch, already out of the
/// table.
pub(super) struct Group<T> {
    items: [Option<Pending<T>>; Group::<()>::CAP],
}

pub(super) struct Pending<T> {
    pub(super) key: Key,
    pub(super) kind: EventKind,
    pub(super) watch: Option<Watch<T>>,
}

impl<T> Group<T> {
    /// The most events one readiness can produce: a process's exit,
    /// preceded by its linked cgroup's OOM and, if the cgroup went away
    /// meanwhile, that cgroup's removal, and followed by the end of its
    /// exit FIFO's watch.
    pub(super) const CAP: usize = 4;

    pub(super) fn new() -> Group<T> {
        Group {
            items: [None, None, None, None],
        }
    }

    fn is_empty(&self) -> bool {
        self.items.iter().all(Option::is_none)
    }

    pub(super) fn push(&mut self, p: Pending<T>) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some(p);
        }
    }
}

impl<T> Inner<T> {
    /// Everything but the hot case: a final event, an OOM with its removal,
    /// a re-check to schedule.
    #[inline(never)]
    fn resolve(
        &mut self,
        core: &Core,
        key: Key,
        outcome: Outcome,
        clock: &mut Clock,
        exclusive: bool,
    ) -> Group<T> {
        let mut group = Group::new();
        match outcome {
            Outcome::One(EventKind::Exited(exit)) => {
                self.push_exit(core, key, exit, clock, &mut group, exclusive)
            }
            other => self.push_outcome(core, key, other, &mut group, exclusive),
        }
        group
    }

    /// The end of a process; for one linked to its cgroup's OOM watch, the
    /// cgroup's unreported OOM goes out first.
    fn push_exit(
        &mut self,
        core: &Core,
        key: Key,
        mut exit: Exit,
        clock: &mut Clock,
        group: &mut Group<T>,
        exclusive: bool,
    ) {
        let link = self
            .table
            .get(key)
            .and_then(|w| w.source.pid_info())
            .and_then(|info| info.oom_link);
        let link = link
            .map(|id| Key::from_u64(id.0))
            .filter(|&k| self.table.get(k).is_some());
        if let Some(link) = link {
            // OOM before exit: whatever the cgroup has not reported yet goes
            // out first, then the exit, marked if the kill is its own. Both
            // from one look, before a removal found by that look can take
            // the cgroup's watch (and its count of kills) away.
            let now = clock.now();
            if let Some(w) = self.table.get_mut(link) {
                let outcome = w.source.recheck(now, true);
                let judged = self.judge_exit(exit.pid, exit.status, Some(link), now, false);
                self.push_outcome(core, link, outcome, group, exclusive);
                match judged {
                    Some(marked) => exit.oom_killed = marked,
                    // The log may name it in a moment (see `kmsg.rs`).
                    None => return self.defer_exit(core, key, exit, Some(link), now, exclusive),
                }
            }
        } else if !matches!(self.kmsg, super::kmsg::KmsgState::Off) {
            // No linked cgroup (or its watch is gone): only the log can tell.
            let now = clock.now();
            exit.oom_killed = self
                .judge_exit(exit.pid, exit.status, None, now, true)
                .unwrap_or(false);
        }
        let fifo = self
            .table
            .get(key)
            .and_then(|w| w.source.pid_info())
            .and_then(|info| info.exit_fifo);
        self.push(core, key, EventKind::Exited(exit), group, exclusive);
        // The process's exit FIFO ends with it, hung up or not.
        if let Some(fifo) = fifo.map(|id| Key::from_u64(id.0)) {
            if self.table.get(fifo).is_some() {
                self.push(core, fifo, EventKind::HungUp, group, exclusive);
            }
        }
    }

    pub(super) fn push_outcome(
        &mut self,
        core: &Core,
        key: Key,
        outcome: Outcome,
        group: &mut Group<T>,
        exclusive: bool,
    ) {
        let outcome = match (&self.kmsg, outcome) {
            (
                super::kmsg::KmsgState::On(_),
                o @ (Outcome::Kills(_)
                | Outcome::One(EventKind::Memory(_) | EventKind::Removed)
                | Outcome::OomThenRemoved(_)),
            ) => self.name_victims(key, o),
            (_, o) => o,
        };
        match outcome {
            Outcome::Nothing => {}
            Outcome::One(kind) => self.push(core, key, kind, group, exclusive),
            Outcome::Kills(m) => self.push(core, key, EventKind::Memory(m), group, exclusive),
            Outcome::OomThenRemoved(oom) => {
                self.push(core, key, EventKind::Memory(oom), group, exclusive);
                self.push(core, key, EventKind::Removed, group, exclusive);
            }
            Outcome::ReapOrphans => self.reap_orphans(core, key, group, exclusive),
            Outcome::RecheckLater => {
                if !self.settling.contains(&key) {
                    self.settling.push(key);
                    // A non-child's pidfd stays readable while it waits for
                    // its parent: stop listening (the timer looks again).
                    if let Some(w) = self.table.get(key) {
                        if let (Some(_), Some(fd)) = (w.source.pid_info(), w.source.as_fd()) {
                            let _ = core.epoll.modify(fd, key.as_u64(), EventFlags::empty());
                        }
                    }
                }
                self.schedule_changed = true;
            }
        }
    }

    /// SIGCHLD: reaps up to a group's worth of orphans, leaving every
    /// watched pid to its watch. More than that: the reaper raises SIGCHLD
    /// again, and the rest come with the next readiness.
    #[cold]
    fn reap_orphans(&mut self, core: &Core, key: Key, group: &mut Group<T>, exclusive: bool) {
        let Inner {
            table,
            watched_pids,
            ..
        } = self;
        let Some(reaper) = table.get_mut(key).and_then(|w| w.source.orphan_reaper()) else {
            return;
        };
        // One place left for a failure.
        const MAX: usize = Group::<()>::CAP - 1;
        let mut found = [None; MAX];
        let mut n = 0;
        let reaped = reaper.reap_at_most(
            MAX,
            |pid| watched_pids.as_ref().is_some_and(|m| m.contains_key(&pid)),
            |orphan| {
                found[n] = Some(orphan);
                n += 1;
            },
        );
        for orphan in found.into_iter().flatten() {
            self.push(core, key, EventKind::Orphan(orphan), group, exclusive);
        }
        if let Err(e) = reaped {
            self.push(core, key, EventKind::Failed(e), group, exclusive);
        }
    }

    /// Queues one event; a final one takes the watch out of the table and
    /// epoll, and carries it. A non-final one is lent at delivery.
    fn push(
        &mut self,
        core: &Core,
        key: Key,
        kind: EventKind,
        group: &mut Group<T>,
        exclusive: bool,
    ) {
        let watch = if kind.is_final() {
            match core.remove(&mut self.table, key, exclusive) {
                Removal::Removed(w) => {
                    self.index_pid(&w.source, false);
                    Some(w)
                }
                // Lent (to a handler that is running a nested wait), or gone.
                Removal::Lent | Removal::Missing => return,
            }
        } else {
            None
        };
        group.push(Pending { key, kind, watch });
    }
}

/// Delivers a group: a final event hands its receiver over; a non-final one
/// lends it, from the watch of a final event later in the group (an OOM,
/// then the removal of the same cgroup) or from the table.
#[inline(never)]
fn deliver<T, A, F>(access: &mut A, mut group: Group<T>, handler: &mut F) -> usize
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let mut delivered = 0;
    for i in 0..group.items.len() {
        let Some(Pending { key, kind, watch }) = group.items[i].take() else {
            continue;
        };
        let id = WatchId(key.as_u64());
        if let Some(Watch { source, receiver }) = watch {
            access.unlock();
            let receiver = Receiver::Owned(receiver);
            handler(Event { id, kind, receiver }, access.monitor());
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
            access.unlock();
            let receiver = Receiver::Lent(&mut w.receiver);
            handler(Event { id, kind, receiver }, access.monitor());
            delivered += 1;
            continue;
        }
        let (_, inner) = access.parts();
        // Gone since it was resolved: dropped.
        let Some(w) = inner.table.lend(key, !A::EXCLUSIVE) else {
            continue;
        };
        access.unlock();
        let w = lend_out::<T, A, F>(handler, key, kind, w, access.monitor());
        delivered += 1;
        if let Some(w) = w {
            delivered += give_back(access, key, w, handler);
        }
    }
    delivered
}

/// The timer fired: re-checks that are due, kernfs re-arms.
#[cold]
#[inline(never)]
fn housekeep<T, A, F>(access: &mut A, clock: &mut Clock, handler: &mut F) -> usize
where
    A: Access<T>,
    F: FnMut(Event<'_, T>, &Monitor<T>),
{
    let now = clock.now();
    let (core, inner) = access.parts();
    inner.timer.acknowledge();
    inner.rearm_kernfs_due(core, now);
    // Each settling watch is looked at once per pass, even if its re-check
    // asks for another straight away.
    let mut delivered = 0;
    for _ in 0..inner.settling.len() {
        let (core, inner) = access.parts();
        let Some(key) = inner.next_due(now) else {
            break;
        };
        let Some(w) = inner.table.get_mut(key) else {
            continue;
        };
        let outcome = w.source.recheck(now, false);
        // An exit (a non-child's, whose parent has now reaped it) takes the
        // same path as from a readiness: its cgroup's OOM first.
        let group = inner.resolve(core, key, outcome, clock, A::EXCLUSIVE);
        delivered += deliver(access, group, handler);
    }
    loop {
        let (_, inner) = access.parts();
        if inner.late_exits.is_empty() {
            break;
        }
        let group = inner.late_exits_due(now);
        if group.is_empty() {
            break;
        }
        delivered += deliver(access, group, handler);
    }
    let (_, inner) = access.parts();
    inner.reschedule();
    delivered
}
