//! The monitor: one epoll instance, one receiver table, one dispatch loop.

mod dispatch;
mod epoll;
mod event;
mod housekeeping;
pub(crate) mod table;
mod timer;
mod waker;
mod watch;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rustix::event::epoll::EventFlags;

pub use event::{Event, EventKind, Exit, ExitStatus, WatchId};

use crate::source::Source;
use crate::{Error, Result, Subject};
use epoll::Epoll;
use table::{Key, Table};
use timer::Timer;
use waker::Waker;

/// The epoll data of the waker and of the timer. Slot indices `u32::MAX` and
/// `u32::MAX - 1` are never handed out by the table, so no watch can have
/// these keys.
const WAKER_KEY: u64 = u64::MAX;
const TIMER_KEY: u64 = u64::MAX - 1;

/// One watch in the table: what is watched, and the caller's value for it.
struct Watch<T> {
    source: Source,
    receiver: T,
    /// For a process: the OOM watch of its cgroup, re-read before its exit
    /// is reported so that the OOM comes first.
    oom_link: Option<Key>,
}

/// Everything behind the monitor's one lock.
struct Inner<T> {
    table: Table<Watch<T>>,
    /// OOM watches waiting to see the kill of an OOM they were told of; each
    /// has a re-check time (`OomBook::recheck_at`). Rarely more than a few.
    settling: Vec<Key>,
    /// When the kernfs watches are next re-armed (`rearm_kernfs_due`); set
    /// while there are any.
    next_rearm: Option<Instant>,
    /// Fires when the earliest of the above is due.
    timer: Timer,
    /// Something above changed since the timer was last set.
    schedule_changed: bool,
}

/// Watches processes and file descriptors from one epoll loop, and hands each
/// event to the caller together with the receiver value registered for it.
///
/// This is the `Monitor` of containerd 0.2's supervisor done right: a
/// receiver table indexed by slot and generation instead of a map keyed by
/// fd number; pidfds instead of (or beside) exit FIFOs; every fd
/// close-on-exec; errors returned, never fatal; and no caller code run while
/// a lock is held, so a handler may add and remove watches freely.
///
/// `Monitor<T>` is `Send + Sync` when `T: Send`. Any thread may add or remove
/// watches while another is blocked in [`wait`](Self::wait); share it with an
/// `Arc`.
///
/// # Examples
///
/// Watch a child process and learn how it ended:
///
/// ```
/// use std::process::Command;
/// use ctrmon::{EventKind, ExitStatus, Monitor};
///
/// let monitor = Monitor::new()?;
/// let child = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
/// monitor.watch_pid(child.id() as i32, "my-container")?;
///
/// let mut exit = None;
/// while exit.is_none() {
///     monitor.wait(None, |event| {
///         if let EventKind::Exited(e) = event.kind {
///             exit = Some((event.receiver, e.status));
///         }
///     })?;
/// }
/// assert_eq!(exit, Some(("my-container", ExitStatus::Code(7))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The monitor is itself a file descriptor that is readable whenever an event
/// is pending (or timed work is due: its own timerfd is in the set), so it
/// nests in another event loop (mio, tokio's `AsyncFd`): register
/// [`as_fd`](AsFd::as_fd) for readability and, each time it fires, call
/// `wait` with a zero timeout until it returns 0 (those loops are
/// edge-triggered, and one `wait` delivers at most a batch of 128).
///
/// ```
/// use std::os::fd::{AsFd, AsRawFd};
/// use std::time::Duration;
/// use mio::{unix::SourceFd, Events, Interest, Poll, Token};
///
/// let monitor = ctrmon::Monitor::new()?;
/// let mut poll = Poll::new()?;
/// let raw = monitor.as_fd().as_raw_fd();
/// poll.registry().register(&mut SourceFd(&raw), Token(0), Interest::READABLE)?;
///
/// let child = std::process::Command::new("true").spawn()?;
/// monitor.watch_pid(child.id() as i32, ())?;
///
/// let mut events = Events::with_capacity(8);
/// let mut exited = false;
/// while !exited {
///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
///     while monitor.wait(Some(Duration::ZERO), |e| exited |= e.is_final())? > 0 {}
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Monitor<T> {
    epoll: Epoll,
    waker: Waker,
    inner: Mutex<Inner<T>>,
    /// Bumped on every removal; lets delivery skip re-checking the table when
    /// nothing was removed since the batch was resolved.
    removals: AtomicU64,
    live: AtomicUsize,
    /// Live watches on kernfs files (`Source::is_kernfs`).
    kernfs: AtomicUsize,
    shut_down: AtomicBool,
}

impl<T> Monitor<T> {
    /// Creates a monitor with its epoll instance and waker (two fds, both
    /// close-on-exec).
    pub fn new() -> Result<Self> {
        let epoll =
            Epoll::new().map_err(|e| Error::os("create epoll instance", Subject::None, e))?;
        let waker =
            Waker::new().map_err(|e| Error::os("create waker eventfd", Subject::None, e))?;
        epoll
            .add(waker.fd.as_fd(), WAKER_KEY, EventFlags::IN | EventFlags::ET)
            .map_err(|e| Error::os("register waker eventfd", Subject::None, e))?;
        let timer = Timer::new().map_err(|e| Error::os("create timerfd", Subject::None, e))?;
        epoll
            .add(timer.fd.as_fd(), TIMER_KEY, EventFlags::IN)
            .map_err(|e| Error::os("register timerfd", Subject::None, e))?;
        Ok(Monitor {
            epoll,
            waker,
            inner: Mutex::new(Inner {
                table: Table::new(),
                settling: Vec::new(),
                next_rearm: None,
                timer,
                schedule_changed: false,
            }),
            removals: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            kernfs: AtomicUsize::new(0),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Ends a watch and returns its receiver. The source's fd is removed from
    /// epoll and closed; a watched child is *not* reaped (it is the caller's
    /// again). No event for `id` is delivered once this has returned, except
    /// one that a concurrent [`wait`](Self::wait) in another thread had
    /// already begun to deliver.
    ///
    /// # Errors
    ///
    /// Fails when `id` is not live: it was unwatched already, or its final
    /// event has been (or is being) delivered with the receiver.
    pub fn unwatch(&self, id: WatchId) -> Result<T> {
        let removed = self.remove(&mut self.lock().table, id.0);
        let watch = removed.ok_or_else(|| {
            Error::new(
                "unwatch",
                Subject::Watch(id),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such watch"),
            )
        })?;
        // The fd closes here, outside the lock.
        Ok(watch.receiver)
    }

    /// Removes `key` from the table and from epoll. Epoll first, then the fd
    /// closes when the caller drops the watch.
    fn remove(&self, table: &mut Table<Watch<T>>, key: Key) -> Option<Watch<T>> {
        let watch = table.remove(key)?;
        // Cannot fail for an fd we registered and still hold open.
        let _ = self.epoll.delete(watch.source.as_fd());
        if watch.source.is_kernfs() {
            self.kernfs.fetch_sub(1, Ordering::AcqRel);
        }
        self.removals.fetch_add(1, Ordering::Release);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(watch)
    }

    /// True while `id` is being watched.
    pub fn contains(&self, id: WatchId) -> bool {
        self.lock().table.contains(id.0)
    }

    /// The number of live watches (containerd's `EpollFdCounter`).
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// True when nothing is being watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Interrupts a [`wait`](Self::wait) blocked in another thread, which
    /// then returns. If no thread is waiting, the next `wait` returns at once.
    pub fn wake(&self) -> Result<()> {
        self.waker
            .wake()
            .map_err(|e| Error::os("write waker eventfd", Subject::None, e))
    }

    /// Makes every current and future [`wait`](Self::wait) return at once
    /// with no events. Watches stay registered until the monitor is dropped.
    pub fn shutdown(&self) -> Result<()> {
        self.shut_down.store(true, Ordering::SeqCst);
        self.wake()
    }

    /// True once [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// The waker wakes one waiting thread at a time: each that leaves
    /// because of a shutdown wakes the next, so that all of them see it.
    fn pass_on_shutdown(&self) {
        let _ = self.waker.wake();
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // No caller code runs under this lock, so a poisoned table is still
        // consistent; a panic elsewhere must not take the monitor down.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The size of one receiver-table slot for receiver type `T`, for the
/// benchmarks' size report. Not part of the API.
#[doc(hidden)]
pub fn table_slot_size<T>() -> usize {
    table::Table::<Watch<T>>::slot_size()
}

impl<T> AsFd for Monitor<T> {
    /// The epoll fd: readable whenever an event (or a wake-up) is pending.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl<T> Drop for Monitor<T> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        for watch in inner.table.drain() {
            watch.source.on_monitor_drop();
        }
    }
}

impl<T> std::fmt::Debug for Monitor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("epoll_fd", &self.epoll.as_fd().as_raw_fd())
            .field("watches", &self.len())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
