//! The monitor: one epoll instance, one receiver table, one dispatch loop.

mod epoll;
mod event;
pub(crate) mod table;
mod waker;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use rustix::event::epoll::EventFlags;
use rustix::io::Errno;

pub use event::{Event, EventKind, Exit, ExitStatus, WatchId};

use crate::source::{self, Source};
use crate::{Error, Result, Subject};
use epoll::{key_and_flags, Epoll, EventBuf, BATCH};
use table::{Key, Table};
use waker::Waker;

/// The epoll data of the waker. Slot index `u32::MAX` is never handed out
/// by the table, so no watch can have this key.
const WAKER_KEY: u64 = u64::MAX;

/// One watch in the table: what is watched, and the caller's value for it.
struct Watch<T> {
    source: Source,
    receiver: T,
}

/// An event resolved under the table lock, waiting to be delivered after it.
struct Pending<T> {
    key: Key,
    kind: EventKind,
    receiver: T,
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
/// is pending, so it nests in another event loop (mio, tokio's `AsyncFd`):
/// register [`as_fd`](AsFd::as_fd) for readability and call `wait` with a zero
/// timeout when it fires.
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
///     monitor.wait(Some(Duration::ZERO), |e| exited = e.is_final())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Monitor<T> {
    epoll: Epoll,
    waker: Waker,
    table: Mutex<Table<Watch<T>>>,
    /// Bumped on every removal; lets delivery skip re-checking the table when
    /// nothing was removed since the batch was resolved.
    removals: AtomicU64,
    live: AtomicUsize,
    shut_down: AtomicBool,
}

/// The most events one readiness can produce.
const MAX_PER_READY: usize = 1;

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
        Ok(Monitor {
            epoll,
            waker,
            table: Mutex::new(Table::new()),
            removals: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Watches process `pid` for exit, reaping it if it is our child.
    ///
    /// The event is [`EventKind::Exited`]: with the exit code or signal for
    /// our child; with [`ExitStatus::Unknown`] for a process that is not (the
    /// kernel tells only its parent how it ended). A process that has already
    /// exited but is not yet reaped (a zombie) is reported on the next wait.
    ///
    /// # Errors
    ///
    /// A process that no longer exists at all fails with an error for which
    /// [`Error::is_process_gone`] is true: its exit happened before the watch
    /// and its status is lost to us. Watch a child right after spawning it,
    /// before anything can reap it, and that cannot happen.
    pub fn watch_pid(&self, pid: i32, receiver: T) -> Result<WatchId> {
        let w = source::pidfd::PidWatch::open(pid, true)?;
        self.add(Source::Pid(w), receiver, Subject::Pid(pid))
    }

    /// Like [`watch_pid`](Self::watch_pid), but leaves our child a zombie for
    /// the caller to reap (its status is read with `WNOWAIT`). Use this when
    /// something else owns reaping, such as `std::process::Child::wait`.
    pub fn watch_pid_without_reaping(&self, pid: i32, receiver: T) -> Result<WatchId> {
        let w = source::pidfd::PidWatch::open(pid, false)?;
        self.add(Source::Pid(w), receiver, Subject::Pid(pid))
    }

    /// Watches `fd` for a hang-up (`EPOLLHUP` or `EPOLLERR`): the read end of
    /// an exit FIFO whose writer is the watched process, as in containerd 0.2,
    /// or any fd whose peer closing means the end. The event is
    /// [`EventKind::HungUp`]. The monitor takes ownership of `fd` and closes
    /// it when the watch ends; it is made close-on-exec.
    ///
    /// # The FIFO race
    ///
    /// A FIFO reader sees a hang-up only when the last writer closes *after*
    /// the reader was opened and a writer had connected. A reader opened after
    /// the writer already exited never sees one, and the watch would wait
    /// forever. Do not rely on the FIFO alone: watch the process with
    /// [`watch_pid`](Self::watch_pid) as well.
    pub fn watch_hangup(&self, fd: OwnedFd, receiver: T) -> Result<WatchId> {
        let raw = fd.as_raw_fd();
        source::adopt_fd(fd.as_fd(), false)
            .map_err(|e| Error::os("set close-on-exec on", Subject::Fd(raw), e))?;
        self.add(
            Source::Hangup(source::hangup::HangupWatch { fd }),
            receiver,
            Subject::Fd(raw),
        )
    }

    /// Watches an eventfd: each time it becomes readable the monitor drains
    /// it and reports [`EventKind::Signaled`] with the count. The watch lasts
    /// until [`unwatch`](Self::unwatch). The monitor takes ownership of `fd`
    /// and makes it close-on-exec and non-blocking.
    pub fn watch_eventfd(&self, fd: OwnedFd, receiver: T) -> Result<WatchId> {
        let raw = fd.as_raw_fd();
        source::adopt_fd(fd.as_fd(), true)
            .map_err(|e| Error::os("set close-on-exec on", Subject::Fd(raw), e))?;
        self.add(
            Source::EventFd(source::eventfd::CounterWatch { fd }),
            receiver,
            Subject::Fd(raw),
        )
    }

    fn add(&self, source: Source, receiver: T, subject: Subject) -> Result<WatchId> {
        let mut table = self.lock();
        let key = table.next_key().ok_or_else(|| {
            Error::new(
                "watch",
                subject.clone(),
                std::io::Error::other("the receiver table is full"),
            )
        })?;
        // Register before inserting: if epoll refuses, nothing was stored.
        self.epoll
            .add(source.as_fd(), key.as_u64(), source.interest())
            .map_err(|e| Error::os("register with epoll", subject, e))?;
        let inserted = table.insert(Watch { source, receiver });
        debug_assert_eq!(inserted.as_ref().ok(), Some(&key));
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(WatchId(key))
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
        let removed = self.remove(&mut self.lock(), id.0);
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
        self.removals.fetch_add(1, Ordering::Release);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(watch)
    }

    /// True while `id` is being watched.
    pub fn contains(&self, id: WatchId) -> bool {
        self.lock().contains(id.0)
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

    fn lock(&self) -> MutexGuard<'_, Table<Watch<T>>> {
        // No caller code runs under this lock, so a poisoned table is still
        // consistent; a panic elsewhere must not take the monitor down.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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
    /// [`EventKind::Failed`] event instead.
    pub fn wait<F>(&self, timeout: Option<Duration>, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<T>),
    {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut buf: EventBuf = [MaybeUninit::uninit(); BATCH];
        loop {
            if self.is_shut_down() {
                return Ok(0);
            }
            let events = match self.epoll.wait_once(&mut buf, deadline) {
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
            if events.is_empty() {
                return Ok(0);
            }
            let (delivered, woken) = self.dispatch(events, &mut handler);
            if delivered > 0 || woken {
                return Ok(delivered);
            }
            // Only stale or empty readiness: keep waiting out the timeout.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
        }
    }

    /// Resolves ready events under the lock, a batch at a time, and delivers
    /// each batch after releasing it.
    fn dispatch<F>(&self, events: &[rustix::event::epoll::Event], handler: &mut F) -> (usize, bool)
    where
        F: FnMut(Event<T>),
    {
        let mut batch: ArrayVec<Pending<T>, BATCH> = ArrayVec::new();
        let mut woken = false;
        let mut delivered = 0;
        let mut next = 0;
        while next < events.len() {
            let epoch = {
                let mut table = self.lock();
                while next < events.len() && batch.remaining_capacity() >= MAX_PER_READY {
                    let (data, flags) = key_and_flags(&events[next]);
                    next += 1;
                    if data == WAKER_KEY {
                        self.waker.reset();
                        woken = true;
                        continue;
                    }
                    self.resolve(&mut table, Key::from_u64(data), flags, &mut batch);
                }
                self.removals.load(Ordering::Acquire)
            };
            for p in batch.drain(..) {
                // A handler earlier in this batch (or another thread) may have
                // removed this watch; a final event already owns its receiver.
                if !p.kind.is_final()
                    && self.removals.load(Ordering::Acquire) != epoch
                    && !self.lock().contains(p.key)
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

    /// Turns one readiness into pending events. Runs with the table locked:
    /// it does the reads and reaping (so that no fd can be closed and reused
    /// under it) but calls no caller code except `T::clone`.
    fn resolve(
        &self,
        table: &mut Table<Watch<T>>,
        key: Key,
        flags: EventFlags,
        batch: &mut ArrayVec<Pending<T>, BATCH>,
    ) {
        // Stale: the watch ended after the kernel queued this event.
        let Some(watch) = table.get_mut(key) else {
            return;
        };
        let Some(kind) = watch.source.on_ready(flags) else {
            return;
        };
        let receiver = if kind.is_final() {
            match self.remove(table, key) {
                Some(w) => w.receiver,
                None => return,
            }
        } else {
            watch.receiver.clone()
        };
        batch.push(Pending {
            key,
            kind,
            receiver,
        });
    }
}

impl<T> AsFd for Monitor<T> {
    /// The epoll fd: readable whenever an event (or a wake-up) is pending.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl<T> Drop for Monitor<T> {
    fn drop(&mut self) {
        let table = self.table.get_mut().unwrap_or_else(PoisonError::into_inner);
        for watch in table.drain() {
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
