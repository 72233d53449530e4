//! The monitor: one epoll instance, one receiver table, one dispatch loop.

mod epoll;
mod event;
pub(crate) mod table;
mod timer;
mod waker;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use rustix::event::epoll::EventFlags;
use rustix::io::Errno;

pub use event::{Event, EventKind, Exit, ExitStatus, WatchId};

use crate::cgroup::parse::psi::PsiTrigger;
use crate::cgroup::CgroupVersion;
use crate::source::cgroupfs::CgroupDir;
use crate::source::{self, Clock, Outcome, Source};
use crate::{Error, Result, Subject};
use crate::{PressureLevel, PressureMode};
use epoll::{key_and_flags, Epoll, EventBuf, BATCH};
use table::{Key, Table};
use timer::Timer;
use waker::Waker;

/// The epoll data of the waker and of the timer. Slot indices `u32::MAX` and
/// `u32::MAX - 1` are never handed out by the table, so no watch can have
/// these keys.
const WAKER_KEY: u64 = u64::MAX;
const TIMER_KEY: u64 = u64::MAX - 1;

/// When a `wait` gives up.
#[derive(Clone, Copy)]
enum Deadline {
    Never,
    /// Look once, do not sleep.
    Poll,
    At(Instant),
}

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

impl<T> Inner<T> {
    /// Sets the timer for the earliest re-check or re-arm.
    fn reschedule(&mut self) {
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
const REARM_EVERY: Duration = Duration::from_secs(1);

/// An event resolved under the table lock, waiting to be delivered after it.
struct Pending<T> {
    key: Key,
    kind: EventKind,
    receiver: T,
    /// The watch's final event follows in the same batch: this one was
    /// resolved while the watch was live, and must not be taken for the
    /// event of a watch removed since.
    watch_ends_in_batch: bool,
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

/// The most events one readiness can produce: a process's exit, preceded by
/// its linked cgroup's OOM and, if the cgroup went away meanwhile, that
/// cgroup's removal. A batch is delivered before it could overflow.
const MAX_PER_READY: usize = 3;

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
        self.add(Source::Pid(w), receiver, Subject::Pid(pid), None)
    }

    /// Like [`watch_pid`](Self::watch_pid), and when the process exits, the
    /// OOM watch `cgroup` (from [`watch_cgroup_oom`](Self::watch_cgroup_oom)
    /// on the process's memory cgroup) is read first: an OOM it has not yet
    /// reported is delivered *before* the exit, and the exit says whether
    /// the process was OOM-killed ([`Exit::oom_killed`]). The exit of an
    /// OOM-killed process often reaches user space before the OOM does
    /// (containerd #8180); this is the ordering that fixes it.
    ///
    /// # Errors
    ///
    /// As [`watch_pid`](Self::watch_pid), and `cgroup` must be a live OOM
    /// watch.
    pub fn watch_pid_in(&self, pid: i32, cgroup: WatchId, receiver: T) -> Result<WatchId> {
        let w = source::pidfd::PidWatch::open(pid, true)?;
        self.add(Source::Pid(w), receiver, Subject::Pid(pid), Some(cgroup.0))
    }

    /// Like [`watch_pid`](Self::watch_pid), but leaves our child a zombie for
    /// the caller to reap (its status is read with `WNOWAIT`). Use this when
    /// something else owns reaping, such as `std::process::Child::wait`.
    pub fn watch_pid_without_reaping(&self, pid: i32, receiver: T) -> Result<WatchId> {
        let w = source::pidfd::PidWatch::open(pid, false)?;
        self.add(Source::Pid(w), receiver, Subject::Pid(pid), None)
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
            None,
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
            None,
        )
    }

    /// Watches a memory cgroup for OOM, whatever its version: the directory's
    /// filesystem type (`fstatfs`) decides, and anything that is not a
    /// cgroup filesystem is refused before anything is written.
    ///
    /// - v1: an eventfd registered on `memory.oom_control` through
    ///   `cgroup.event_control` (one fd per watch). A notification is
    ///   believed only if the cgroup still exists; the event reports the
    ///   rise of `oom_kill`, waiting a few milliseconds for the kill to be
    ///   counted (the notification precedes it).
    /// - v2: `memory.events`, polled in the same epoll; the event reports
    ///   the increase of each counter (`oom`, `oom_kill`, `oom_group_kill`,
    ///   `max`, `high`, `low`) since the last report.
    ///
    /// Events: [`EventKind::Memory`], then [`EventKind::Removed`] when the
    /// cgroup is removed (which ends the watch).
    ///
    /// # Errors
    ///
    /// A path that does not exist, is a symlink, is not a cgroup directory,
    /// or lacks the memory controller; a kernel that refuses v1
    /// notifications (`EOPNOTSUPP`). Each names the path.
    pub fn watch_cgroup_oom(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        let dir = CgroupDir::open(dir.as_ref())?;
        let source = match dir.version() {
            CgroupVersion::V1 => Source::OomV1(Box::new(source::oom_v1::OomV1Watch::arm(&dir)?)),
            CgroupVersion::V2 => Source::MemoryEvents(Box::new(
                source::memory_events::MemoryEventsWatch::open(&dir)?,
            )),
        };
        self.add(
            source,
            receiver,
            Subject::Path(dir.path().to_path_buf()),
            None,
        )
    }

    /// [`watch_cgroup_oom`](Self::watch_cgroup_oom) on the memory cgroup of
    /// process `pid`, found with
    /// [`cgroup::memory_cgroup_of`](crate::cgroup::memory_cgroup_of).
    pub fn watch_cgroup_oom_of(&self, pid: i32, receiver: T) -> Result<WatchId> {
        let cg = crate::cgroup::memory_cgroup_of(Some(pid))?;
        self.watch_cgroup_oom(&cg.path, receiver)
    }

    /// Watches a cgroup v2 directory's `populated` flag (`cgroup.events`):
    /// [`EventKind::Populated`] on each change, [`EventKind::Removed`] when
    /// it is removed.
    pub fn watch_populated(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        let dir = CgroupDir::open(dir.as_ref())?;
        let w = source::populated::PopulatedWatch::open(&dir)?;
        let subject = Subject::Path(dir.path().to_path_buf());
        self.add(Source::Populated(Box::new(w)), receiver, subject, None)
    }

    /// Watches a cgroup v1 memory directory for pressure at `level`
    /// (`memory.pressure_level`): [`EventKind::Pressure`], many per episode.
    pub fn watch_pressure_level(
        &self,
        dir: impl AsRef<Path>,
        level: PressureLevel,
        mode: PressureMode,
        receiver: T,
    ) -> Result<WatchId> {
        let dir = CgroupDir::open(dir.as_ref())?;
        let w = source::pressure_v1::PressureV1Watch::arm(&dir, level, mode)?;
        let subject = Subject::Path(dir.path().to_path_buf());
        self.add(Source::PressureV1(Box::new(w)), receiver, subject, None)
    }

    /// Watches a cgroup v1 memory directory's usage crossing `bytes`, up or
    /// down (`memory.usage_in_bytes`, or `memory.memsw.usage_in_bytes` with
    /// `with_swap`): [`EventKind::Threshold`]. The side is tracked from the
    /// kernel's count of crossings, which alternate, starting from the usage
    /// read right after registering; a crossing in that instant would
    /// invert every side reported after it.
    pub fn watch_usage_threshold(
        &self,
        dir: impl AsRef<Path>,
        bytes: u64,
        with_swap: bool,
        receiver: T,
    ) -> Result<WatchId> {
        let dir = CgroupDir::open(dir.as_ref())?;
        let w = source::threshold_v1::ThresholdWatch::arm(&dir, bytes, with_swap)?;
        let subject = Subject::Path(dir.path().to_path_buf());
        self.add(Source::Threshold(Box::new(w)), receiver, subject, None)
    }

    /// Arms a PSI trigger on `file` (a cgroup's `cpu|memory|io.pressure`, or
    /// `/proc/pressure/*`): [`EventKind::Psi`] each time it fires,
    /// [`EventKind::Removed`] if its cgroup is removed. Without
    /// `CAP_SYS_RESOURCE` the kernel wants a window that is a multiple of 2 s;
    /// its refusal is an error that says so.
    pub fn watch_psi(
        &self,
        file: impl AsRef<Path>,
        trigger: &PsiTrigger,
        receiver: T,
    ) -> Result<WatchId> {
        let file = file.as_ref();
        let w = source::psi::PsiWatch::arm(file, trigger)?;
        self.add(
            Source::Psi(Box::new(w)),
            receiver,
            Subject::Path(file.to_path_buf()),
            None,
        )
    }

    fn add(
        &self,
        mut source: Source,
        receiver: T,
        subject: Subject,
        oom_link: Option<Key>,
    ) -> Result<WatchId> {
        let mut inner = self.lock();
        if let Some(link) = oom_link {
            let is_oom_watch = inner
                .table
                .get_mut(link)
                .is_some_and(|w| w.source.oom_book().is_some());
            if !is_oom_watch {
                return Err(Error::invalid(
                    "watch",
                    subject,
                    format!("{} is not a live cgroup OOM watch", WatchId(link)),
                ));
            }
        }
        let key = inner.table.next_key().ok_or_else(|| {
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
        // Baselines of polled files are read after registration, so that no
        // change falls between the two.
        if let Err(e) = source.arm() {
            let _ = self.epoll.delete(source.as_fd());
            return Err(e);
        }
        let kernfs = source.is_kernfs();
        let inserted = inner.table.insert(Watch {
            source,
            receiver,
            oom_link,
        });
        if kernfs {
            self.kernfs.fetch_add(1, Ordering::AcqRel);
            if inner.next_rearm.is_none() {
                inner.next_rearm = Some(Instant::now() + REARM_EVERY);
                inner.reschedule();
            }
        }
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

    /// Re-registers every kernfs watch with `EPOLL_CTL_MOD`, which makes
    /// epoll look at the file again. kernfs can drop a wake-up: when a
    /// cgroup is removed while its "changed" notification is still queued
    /// (the usual case: its last process exits, then it is removed at once),
    /// the file turns ready (`EPOLLERR`, reads `ENODEV`) without waking
    /// anyone, and the watch would wait forever. Once a second, while such
    /// watches exist, costs one syscall per watch.
    fn rearm_kernfs_due(&self, inner: &mut Inner<T>, now: Instant) {
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

    /// Re-checks the OOM watches whose re-check time has come. At most a
    /// batch's worth per pass; the rest wait for the next pass.
    fn recheck_due(
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
                if exit.status == ExitStatus::Signal(9) {
                    exit.oom_killed = w.source.oom_book().is_some_and(|b| b.claim_kill(now));
                }
                self.push_outcome(inner, link, outcome, batch);
            }
            self.push(inner, key, EventKind::Exited(exit), batch);
            return;
        }
        self.push(inner, key, kind, batch);
    }

    /// Runs `look` on the source under `key` (if live) and queues what it
    /// produced.
    fn apply(
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
