//! The monitor: one epoll instance, one receiver table, one dispatch loop.

mod builder;
mod dispatch;
mod epoll;
mod housekeeping;
mod kmsg;
mod registrar;
pub(crate) mod table;
mod timer;
mod waker;
mod watch;
mod watches;

pub use builder::Builder;
pub use watches::Watches;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rustix::event::epoll::EventFlags;

use crate::event::WatchId;
use crate::source::Source;
use crate::sys::lock::{Lock, LockGuard, Signal};
use crate::{Error, Result, Subject};
use epoll::Epoll;
use table::{Key, Removal, Table};
use timer::Timer;
use waker::Waker;

/// The epoll data of the waker, the timer and the kernel log. Slot indices
/// `u32::MAX`, `u32::MAX - 1` and `u32::MAX - 2` are never handed out by the
/// table (it refuses to grow that far), so no watch can have these keys.
const WAKER_KEY: u64 = u64::MAX;
const TIMER_KEY: u64 = u64::MAX - 1;
const KMSG_KEY: u64 = u64::MAX - 2;

/// Everything behind the monitor's one lock (or owned outright by a
/// [`wait_mut`](Monitor::wait_mut)).
struct Inner<T> {
    table: Table<T>,
    /// OOM watches waiting to see the kill of an OOM they were told of; each
    /// has a re-check time (`OomBook::recheck_at`); and non-children's exits
    /// waiting for their parent to reap them. Rarely more than a few.
    settling: Vec<Key>,
    /// When the kernfs watches are next re-armed (`rearm_kernfs_due`); set
    /// while there are any.
    next_rearm: Option<Instant>,
    /// Fires when the earliest of the above is due.
    timer: Timer,
    /// Something above changed since the timer was last set.
    schedule_changed: bool,
    /// Threads in `unwatch` waiting for a lent receiver to come back.
    unwatch_waiters: usize,
    /// With orphan reaping on: how many live pid watches name each pid
    /// (a count: a pid reaped a moment ago may already name a new child).
    /// The orphan reaper leaves these pids to their watches.
    watched_pids: Option<HashMap<i32, u32>>,
    /// The kernel log, when it is read: the OOM killer's victims by pid.
    kmsg: kmsg::KmsgState,
    /// Exits waiting a moment for the log to name them (`kmsg.rs`).
    late_exits: Vec<kmsg::LateExit<T>>,
    /// Kills that OOM watches removed with their cgroup had reported and no
    /// exit had claimed yet, by the removed watch: systemd removes a scope
    /// as soon as its last process died, often before that process's exit
    /// is read, and the exit must still be marked (`resolve.rs`). Pruned
    /// by their claim deadline; rarely more than a few.
    gone_kills: Vec<dispatch::GoneKills>,
    /// The cold box of the last made eventfd that `unwatch` ended, emptied,
    /// for the next `watch_new_eventfd`: watch churn then makes one
    /// allocation (the eventfd shared with its writer), not two.
    spare_cold: Option<Box<crate::source::Cold>>,
}

thread_local! {
    /// Shared waits (`Monitor::wait`) this thread is inside; a nested wait
    /// counts again. A thread inside one runs only its handlers, and a
    /// handler never waits in `unwatch` for a lent receiver to come back:
    /// two handlers unwatching each other's watches would wait for ever.
    /// Counted once per wait, not once per lend, so that a delivery pays
    /// nothing for it.
    static IN_WAIT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread is inside a shared wait while one of these lives (a panic
/// included).
pub(crate) struct InsideWait;

impl InsideWait {
    #[inline]
    pub(crate) fn enter() -> InsideWait {
        IN_WAIT.with(|n| n.set(n.get() + 1));
        InsideWait
    }
}

impl Drop for InsideWait {
    #[inline]
    fn drop(&mut self) {
        IN_WAIT.with(|n| n.set(n.get() - 1));
    }
}

/// Watches processes and file descriptors from one epoll loop, and hands each
/// event to the caller together with the receiver value registered for it.
///
/// This is the `Monitor` of containerd 0.2's supervisor done right: a
/// receiver table indexed by slot and generation instead of a map keyed by
/// fd number; pidfds instead of (or beside) exit FIFOs; every fd
/// close-on-exec; errors returned, never fatal; no caller code run while a
/// lock is held, so a handler may add and remove watches freely; and
/// receivers lent to the handler, never cloned.
///
/// # Two ways to wait
///
/// - [`wait_mut`](Self::wait_mut) (`&mut self`): for the common case of one
///   thread that owns the loop. It reaches the table through
///   `get_mut` on its lock, so dispatch takes no lock, stages nothing and does
///   no atomic read-modify-write per event, and a receiver is lent in place
///   (`&mut T` into its slot): about twice a hand-written epoll loop's
///   instructions per event, and close to its time ([the
///   README](https://crates.io/crates/ctrmon) states the figure, from the
///   runs in
///   [`benches/README.md`](https://docs.rs/crate/ctrmon/latest/source/benches/README.md)).
///   The handler gets the event and [`Watches`], the rest of the table, to
///   add and remove watches with.
/// - [`wait`](Self::wait) (`&self`): when several threads share the monitor
///   (in an `Arc`): any thread may add or remove watches while another is
///   blocked in `wait`, and several threads may wait at once. Each event
///   costs one lock round trip, and its watch is moved out of its slot for
///   the handler and back.
///
/// Both deliver the same events with the same guarantees. Why not an owned
/// loop with a separate thread-safe handle, as mio's `Poll` and `Registry`?
/// Because the table holds the receivers: a handle in another thread could
/// not hand back a receiver from `unwatch` without the table, so it would
/// need the same lock. One type whose `&self` methods lock and whose
/// `&mut self` wait does not keeps every method available on both paths,
/// and the borrow checker proves that no other thread can be adding a watch
/// while `wait_mut` runs lock-free. Within a `wait_mut` handler, the same
/// borrow checker proves that [`Watches`] cannot reach the receiver the
/// handler holds, which is what lets it stay in its slot.
///
/// `Monitor<T>` is `Send + Sync` when `T: Send`; `T` needs nothing else (not
/// `Clone`, not `Sync`).
///
/// # Examples
///
/// Watch a child process and learn how it ended:
///
/// ```
/// use std::process::Command;
/// use ctrmon::{EventKind, ExitStatus, Monitor};
///
/// let mut monitor = Monitor::new()?;
/// let child = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
/// monitor.watch(ctrmon::watch::Process::pid(child.id() as i32), "my-container")?;
///
/// let mut exit = None;
/// while exit.is_none() {
///     monitor.wait_mut(None, |event, _watches| {
///         if let EventKind::Exited(e) = event.kind {
///             exit = Some((*event.receiver, e.status));
///         }
///     })?;
/// }
/// assert_eq!(exit, Some(("my-container", ExitStatus::Code(7))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The monitor is itself a file descriptor that is readable whenever an event
/// is pending (or timed work is due: its own timerfd is in the set), so it
/// nests in another event loop (mio; on tokio, use `ctrmon::tokio`): register
/// [`as_fd`](AsFd::as_fd) for readability and, each time it fires, call
/// `wait_mut` (or `wait`) with a zero timeout until it returns 0 (those
/// loops are edge-triggered, and one wait delivers at most a batch of 128).
///
/// ```
/// use std::os::fd::{AsFd, AsRawFd};
/// use std::time::Duration;
/// use mio::{unix::SourceFd, Events, Interest, Poll, Token};
///
/// let mut monitor = ctrmon::Monitor::new()?;
/// let mut poll = Poll::new()?;
/// let raw = monitor.as_fd().as_raw_fd();
/// poll.registry().register(&mut SourceFd(&raw), Token(0), Interest::READABLE)?;
///
/// let child = std::process::Command::new("true").spawn()?;
/// monitor.watch(ctrmon::watch::Process::pid(child.id() as i32), ())?;
///
/// let mut events = Events::with_capacity(8);
/// let mut exited = false;
/// while !exited {
///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
///     while monitor.wait_mut(Some(Duration::ZERO), |e, _| exited |= e.is_final())? > 0 {}
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Monitor<T> {
    core: Core,
    inner: Lock<Inner<T>>,
}

/// The monitor's parts that need no lock.
struct Core {
    epoll: Epoll,
    waker: Waker,
    live: AtomicUsize,
    /// Live watches on kernfs files (`Source::is_kernfs`).
    kernfs: AtomicUsize,
    shut_down: AtomicBool,
    /// Signalled when a receiver lent by `wait` comes back and a thread
    /// waits in `unwatch` for it.
    returned: Signal,
    /// Holds on the orphan reaper ([`Monitor::hold_orphans`]), handed out
    /// whether or not it runs.
    holds: crate::reaper::Holder,
    /// The anonymous inode of the waker eventfd: a caller's fd watched as
    /// an eventfd must be a file of it too.
    anon_inode: crate::source::eventfd::AnonInode,
    /// Where `pidfd_open` is refused: the SIGCHLD signalfd that children
    /// are watched through instead (`source/sigchld.rs`). Decided once, in
    /// `create`.
    child_exits: Option<Box<crate::source::sigchld::ChildExits>>,
}

impl<T> Monitor<T> {
    /// Creates a monitor with its epoll instance, waker and timer, and, where
    /// it can be read (root or `CAP_SYSLOG`, and a `/dev/kmsg`), the kernel
    /// log, from which an OOM-killed process is known by its pid (see
    /// [`Exit::oom_killed`](crate::Exit::oom_killed)). Every fd is
    /// close-on-exec. A log that cannot be opened is no error:
    /// [`kmsg_mode`](Self::kmsg_mode) says so, and OOM kills are attributed
    /// by the counter rule. [`builder`](Self::builder) has the options.
    pub fn new() -> Result<Self> {
        Self::create(true)
    }

    /// A monitor with options: [`Builder`].
    ///
    /// ```
    /// let monitor = ctrmon::Monitor::<()>::builder().kernel_log(false).build()?;
    /// assert_eq!(monitor.kmsg_mode(), ctrmon::KmsgMode::Off);
    /// # Ok::<(), ctrmon::Error>(())
    /// ```
    pub fn builder() -> Builder<T> {
        Builder {
            kernel_log: true,
            receivers: std::marker::PhantomData,
        }
    }

    /// Adds a watch of `source`, one of the kinds in [`crate::watch`], with
    /// `receiver` as the value its events carry; returns its
    /// [`WatchId`] (and, for some kinds, more: see
    /// [`Watchable::Output`](crate::watch::Watchable::Output)). From any
    /// thread, also during a [`wait`](Self::wait); a handler of
    /// [`wait_mut`](Self::wait_mut) adds through its
    /// [`Watches::watch`](crate::Watches::watch).
    ///
    /// ```
    /// use ctrmon::watch::{NewEventfd, Process};
    ///
    /// let monitor = ctrmon::Monitor::new()?;
    /// let child = std::process::Command::new("true").spawn()?;
    /// let exit = monitor.watch(Process::pid(child.id() as i32), "child")?;
    /// let (jobs, writer) = monitor.watch(NewEventfd, "jobs")?;
    /// assert_eq!(monitor.len(), 2);
    /// # drop((exit, jobs, writer));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Each kind's own (see its type), all naming the pid, fd or path; and,
    /// for every kind, an open-files limit reached
    /// ([`Error::is_fd_limit`]), with nothing added.
    #[inline(always)]
    pub fn watch<S: crate::watch::Watchable>(&self, source: S, receiver: T) -> Result<S::Output> {
        source.add_to(crate::watch::sealed::On::Monitor(self), receiver)
    }

    /// Holds orphan reaping off until the [`Hold`](crate::reaper::Hold) is
    /// dropped: spawn a child and watch it under one, so that a child that
    /// exits at once is not reaped as an orphan before its watch exists; and
    /// run a command that you wait for yourself (`runc create`) under one,
    /// so that its status is yours. Cheap (an atomic count); harmless when
    /// orphan reaping ([`Orphans`](crate::watch::Orphans)) is off.
    ///
    /// ```no_run
    /// # let monitor = ctrmon::Monitor::new()?;
    /// let hold = monitor.hold_orphans();
    /// let child = std::process::Command::new("my-init").spawn()?;
    /// monitor.watch(ctrmon::watch::Process::pid(child.id() as i32), "init")?;
    /// drop(hold);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hold_orphans(&self) -> crate::reaper::Hold {
        self.core.holds.hold()
    }

    /// Whether the kernel log is read, and if not, why.
    pub fn kmsg_mode(&self) -> crate::KmsgMode {
        self.lock().kmsg.mode()
    }

    /// How process exits are learnt: through pidfds, or, where
    /// `pidfd_open` is refused, through SIGCHLD for our own children only
    /// ([`ExitMode`](crate::ExitMode), which says what that means).
    ///
    /// Decided once, in [`new`](Self::new), by opening a pidfd of this
    /// process: the caller learns it before it spawns anything or starts a
    /// thread, which is when SIGCHLD must be blocked for the fallback
    /// ([`block_sigchld`](crate::reaper::block_sigchld)), and every watch
    /// of the monitor's life works the same way. (A seccomp filter the
    /// process installs on itself *after* making the monitor is not seen:
    /// its `watch_pid` then fails, naming `pidfd_open` and the errno.)
    pub fn exit_mode(&self) -> crate::ExitMode {
        match &self.core.child_exits {
            None => crate::ExitMode::Pidfd,
            Some(c) => crate::ExitMode::SigchldFallback { errno: c.errno },
        }
    }

    pub(crate) fn create(with_kmsg: bool) -> Result<Self> {
        let epoll =
            Epoll::new().map_err(|e| Error::os("create epoll instance", Subject::None, e))?;
        let waker =
            Waker::new().map_err(|e| Error::os("create waker eventfd", Subject::None, e))?;
        epoll
            .add(waker.fd.as_fd(), WAKER_KEY, EventFlags::IN | EventFlags::ET)
            .map_err(|e| Error::os("register waker eventfd", Subject::None, e))?;
        let anon_inode = crate::source::eventfd::AnonInode::of(waker.fd.as_fd())
            .map_err(|e| Error::os("fstat waker eventfd", Subject::None, e))?;
        let timer = Timer::new().map_err(|e| Error::os("create timerfd", Subject::None, e))?;
        epoll
            .add(timer.fd.as_fd(), TIMER_KEY, EventFlags::IN)
            .map_err(|e| Error::os("register timerfd", Subject::None, e))?;
        let kmsg = kmsg::KmsgState::open(with_kmsg);
        if let Some(fd) = kmsg.reader_fd() {
            epoll
                .add(fd, KMSG_KEY, EventFlags::IN)
                .map_err(|e| Error::os("register", Subject::Path(crate::kmsg::PATH.into()), e))?;
        }
        let child_exits = match crate::source::sigchld::probe() {
            None => None,
            Some(errno) => {
                let c = crate::source::sigchld::ChildExits::new(errno)?;
                // Under the timer's key: its readiness runs the housekeeping,
                // which scans the children (`dispatch/children.rs`).
                epoll
                    .add(c.as_fd(), TIMER_KEY, EventFlags::IN)
                    .map_err(|e| Error::os("register SIGCHLD signalfd", Subject::None, e))?;
                Some(Box::new(c))
            }
        };
        Ok(Monitor {
            core: Core {
                epoll,
                waker,
                live: AtomicUsize::new(0),
                kernfs: AtomicUsize::new(0),
                shut_down: AtomicBool::new(false),
                returned: Signal::new(),
                holds: crate::reaper::Holder::new(),
                anon_inode,
                child_exits,
            },
            inner: Lock::new(Inner {
                table: Table::new(),
                settling: Vec::new(),
                gone_kills: Vec::new(),
                next_rearm: None,
                timer,
                schedule_changed: false,
                unwatch_waiters: 0,
                watched_pids: None,
                kmsg,
                late_exits: Vec::new(),
                spare_cold: None,
            }),
        })
    }

    /// Ends a watch and returns its receiver. The source's fd is removed from
    /// epoll and closed; a watched child is *not* reaped (it is the caller's
    /// again). No event for `id` is delivered once this has returned, except
    /// one that a concurrent wait in another thread had already begun to
    /// deliver.
    ///
    /// # Errors
    ///
    /// Fails when `id` is not live: it was unwatched already, or its final
    /// event has been (or is being) delivered with the receiver.
    ///
    /// # A receiver lent to a handler
    ///
    /// While a handler holds the watch's receiver (a non-final event of it
    /// is being delivered), `unwatch` cannot take the receiver at once:
    ///
    /// - Called from outside any [`wait`](Self::wait) handler, while another
    ///   thread's wait delivers: it waits for that handler to return, then
    ///   ends the watch and returns the receiver, as it always does. (So do
    ///   not call `unwatch` while holding something that the handler waits
    ///   for.)
    /// - From inside a `wait` handler (of this monitor or another; for its
    ///   own watch or any other that is lent), waiting could deadlock, so it
    ///   ends the watch (nothing more is reported for it) and fails with the
    ///   error kind of `EBUSY` (`ResourceBusy`); the receiver comes back as
    ///   the watch's final event,
    ///   [`EventKind::Unwatched`](crate::EventKind::Unwatched), right after
    ///   the handler that holds it returns.
    pub fn unwatch(&self, id: WatchId) -> Result<T> {
        let key = Key::from_u64(id.0);
        let mut inner = self.lock();
        while inner.table.is_lent_waitable(key) && IN_WAIT.with(|n| n.get()) == 0 {
            inner.unwatch_waiters += 1;
            inner = self.core.returned.wait(inner);
            inner.unwatch_waiters -= 1;
        }
        let mut removal = inner.registrar(&self.core).remove(key);
        inner.settle();
        // A made eventfd's cold box is kept for the next one; the eventfd
        // it held is dropped below, outside the lock.
        let mut shared_fd = None;
        if let (Removal::Removed(w), None) = (&mut removal, &inner.spare_cold) {
            if let Some((spare, fd)) = w.source.take_spare() {
                inner.spare_cold = Some(spare);
                shared_fd = Some(fd);
            }
        }
        drop(inner);
        drop(shared_fd);
        // The fd closes in here, outside the lock.
        registrar::unwatch_result(id, removal)
    }

    /// The receiver of a live watch, to read or change between waits (a
    /// container's state, a counter), with no lock: `&mut self` proves that
    /// no wait is delivering meanwhile. `None` when `id` is not live.
    ///
    /// ```
    /// let mut monitor = ctrmon::Monitor::new()?;
    /// let (id, _writer) = monitor.watch(ctrmon::watch::NewEventfd, 0u64)?;
    /// *monitor.receiver_mut(id).unwrap() += 7;
    /// assert_eq!(monitor.unwatch(id)?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receiver_mut(&mut self, id: WatchId) -> Option<&mut T> {
        let inner = self.inner.get_mut();
        inner
            .table
            .get_mut(Key::from_u64(id.0))
            .map(|w| &mut w.receiver)
    }

    /// True while `id` is being watched.
    pub fn contains(&self, id: WatchId) -> bool {
        self.lock().table.contains(Key::from_u64(id.0))
    }

    /// The number of live watches (containerd's `EpollFdCounter`).
    pub fn len(&self) -> usize {
        self.core.live()
    }

    /// True when nothing is being watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Interrupts a [`wait`](Self::wait) blocked in another thread, which
    /// then returns. If no thread is waiting, the next `wait` returns at once.
    pub fn wake(&self) -> Result<()> {
        self.core.wake()
    }

    /// Makes every current and future [`wait`](Self::wait) return at once
    /// with no events. Watches stay registered until the monitor is dropped.
    pub fn shutdown(&self) -> Result<()> {
        self.core.shutdown()
    }

    /// True once [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.core.is_shut_down()
    }

    /// Runs `f` with a registrar over the whole table, under the lock, and
    /// settles the table after.
    fn with_registrar<R>(&self, f: impl FnOnce(&mut registrar::Registrar<'_, T>) -> R) -> R {
        self.with_inner_registrar(|_, r| f(r))
    }

    /// [`with_registrar`](Self::with_registrar), with the spare cold box
    /// (`Inner::spare_cold`) too.
    #[inline(always)]
    fn with_inner_registrar<R>(
        &self,
        f: impl FnOnce(&mut Option<Box<crate::source::Cold>>, &mut registrar::Registrar<'_, T>) -> R,
    ) -> R {
        let mut inner = self.lock();
        let (result, dirty) = {
            let (mut r, spare) = inner.registrar_and_spare(&self.core);
            let result = f(spare, &mut r);
            (result, r.table.dirty)
        };
        if dirty {
            inner.settle();
        }
        if inner.schedule_changed {
            inner.reschedule();
        }
        result
    }

    /// The table, locked. No caller code runs under this lock (see
    /// `sys::lock` for why it has no poisoning).
    #[inline(always)]
    fn lock(&self) -> LockGuard<'_, Inner<T>> {
        self.inner.lock()
    }
}

/// The size of one receiver-table slot for receiver type `T`, for the
/// benchmarks' size report. Not part of the API.
#[doc(hidden)]
pub fn table_slot_size<T>() -> usize {
    table::Table::<T>::slot_size()
}

impl Core {
    #[inline]
    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn shutdown(&self) -> Result<()> {
        self.shut_down.store(true, Ordering::SeqCst);
        self.wake()
    }

    fn wake(&self) -> Result<()> {
        self.waker
            .wake()
            .map_err(|e| Error::os("write waker eventfd", Subject::None, e))
    }

    /// The waker wakes one waiting thread at a time: each that leaves
    /// because of a shutdown wakes the next, so that all of them see it.
    fn pass_on_shutdown(&self) {
        let _ = self.waker.wake();
    }

    /// Removes `key` from the table and from epoll (epoll first; the fd
    /// closes when the caller drops the watch). A lent watch is marked to
    /// end, and leaves epoll when it comes back (`retire`).
    fn remove<T>(&self, table: &mut Table<T>, key: Key) -> Removal<T> {
        let removal = table.remove(key);
        match &removal {
            Removal::Removed(w) => {
                self.retire(&w.source);
                sub_one(&self.live);
            }
            Removal::Lent => sub_one(&self.live),
            Removal::Missing => {}
        }
        removal
    }

    /// Takes an ended watch's source out of epoll and the counts.
    #[inline]
    fn retire(&self, source: &Source) {
        if let Some(fd) = source.as_fd() {
            // Cannot fail for an fd we registered and still hold open.
            let _ = self.epoll.delete(fd);
        }
        if source.is_kernfs() {
            sub_one(&self.kernfs);
        }
    }
}

/// `a += 1` on one of the monitor's counts (`live`, `kernfs`). Every change
/// to them is made with the table in hand (under its lock, or by the one
/// thread that owns the monitor), so changes never race and need no atomic
/// read-modify-write; other threads only read them.
#[inline]
fn add_one(a: &AtomicUsize) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// `a -= 1`, as [`add_one`].
#[inline]
fn sub_one(a: &AtomicUsize) {
    a.store(a.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Relaxed);
}

impl<T> AsFd for Monitor<T> {
    /// The epoll fd: readable whenever an event (or a wake-up) is pending.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.epoll.as_fd()
    }
}

impl<T> Drop for Monitor<T> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        for watch in inner.table.drain() {
            watch.source.on_monitor_drop();
        }
    }
}

impl<T> std::fmt::Debug for Monitor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("epoll_fd", &self.core.epoll.as_fd().as_raw_fd())
            .field("watches", &self.len())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
