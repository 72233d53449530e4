//! The monitor on tokio: [`AsyncMonitor`] (with the `tokio` feature).
//!
//! An [`AsyncMonitor`] is a [`Monitor`] whose epoll fd sits in the current
//! runtime's reactor. Its waits are futures; the monitor itself (watch,
//! unwatch, shutdown) is reached with [`AsyncMonitor::monitor`], from any
//! task or thread.
//!
//! ```no_run
//! use ctrmon::tokio::AsyncMonitor;
//! use ctrmon::EventKind;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor: AsyncMonitor<String> = AsyncMonitor::new()?;
//! let child = std::process::Command::new("my-container-init").spawn()?;
//! let pid = child.id() as i32;
//! let cgroup = monitor.monitor().watch(ctrmon::watch::CgroupOom::of(pid), format!("{pid} cgroup"))?.id();
//! monitor.monitor().watch(ctrmon::watch::Process::pid(pid).oom_watch(cgroup), format!("{pid}"))?;
//!
//! while let Some(event) = monitor.next().await? {
//!     match event.kind {
//!         EventKind::Memory(delta) if delta.any_oom() => {
//!             println!("{}: OOM, {} killed", event.receiver, delta.oom_kill)
//!         }
//!         EventKind::Exited(exit) => {
//!             println!("{} exited: {:?}", event.receiver, exit.status);
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Which wait
//!
//! | method | receives | needs |
//! | --- | --- | --- |
//! | [`next`](AsyncMonitor::next) (`&self`) | one owned event per call, `Ok(None)` once shut down | `T: Clone` (a lent receiver is cloned) |
//! | [`events`](AsyncMonitor::events) (`&self`) | the same as a [`Stream`](futures_core::Stream) | `T: Clone` |
//! | [`wait`](AsyncMonitor::wait) (`&self`) | a handler called for each event of a batch, receivers lent | nothing |
//! | [`wait_mut`](AsyncMonitor::wait_mut) (`&mut self`) | the same, on [`Monitor::wait_mut`]'s lock-free path, with [`Watches`](crate::Watches), receivers lent in place | one owner |
//!
//! # Cancel safety
//!
//! Every wait is cancel safe: a future dropped before it completes (in
//! `tokio::select!`, under a timeout) loses no event. The futures suspend
//! only while nothing has been taken from the monitor: waiting for the
//! reactor to report the epoll fd readable, or yielding to other tasks
//! after a look that delivered nothing. Once a wait takes events from the
//! kernel it hands them over in the same poll, without suspending: `wait`
//! and `wait_mut` call the handler and complete; `next` and the stream keep
//! the rest of the batch in a queue that the next call (any of the four)
//! delivers first. A handler therefore runs inside the future's `poll`:
//! keep it short, and do not block in it.
//!
//! # Readiness
//!
//! tokio's reactor is edge-triggered: it reports the epoll fd once when it
//! turns readable, and not again until something new arrives. So a wait
//! keeps looking (zero-timeout waits on the monitor, up to 128 events each)
//! until the kernel says the epoll fd is empty, and only then clears the
//! readiness; see `readiness.rs` for why "a look delivered nothing" is not
//! proof of that, and why an event arriving meanwhile is not missed. The
//! monitor's timed work (an OOM report held back to wait for its kill, the
//! re-arming of v2 watches) runs on a timerfd inside its own epoll set, so
//! it turns the epoll fd readable when it is due, and an idle task is
//! woken for it like for any event.
//!
//! [`Monitor::wake`] interrupts blocking waits only: an async wait ends
//! with an event, with [`Monitor::shutdown`] (which ends every current and
//! future wait of every task), or by being dropped.
//!
//! # Runtime
//!
//! [`AsyncMonitor::new`] registers with the runtime it is called in (either
//! flavour; the I/O driver must be enabled, or tokio panics), and the
//! waits must run on that runtime. `AsyncMonitor<T>` is `Send + Sync` and
//! its futures are `Send` when `T: Send` (and the handler is `Send`). It
//! holds one more fd than the monitor (the registered duplicate of the
//! epoll fd), close-on-exec.
//!
//! Do not use tokio's process driver (`tokio::process`) for the children
//! the monitor watches: it reaps children on `SIGCHLD` with its own
//! `waitpid`, which can take a status the monitor's pidfd was going to
//! report. Spawn with `std::process::Command` and let the monitor reap.

mod readiness;
mod stream;

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::{Event, EventKind, Monitor, Receiver, Result, WatchId};
use readiness::{drive, Drain, Readiness};
pub use stream::Events;

/// A [`Monitor`] on tokio: its waits are cancel-safe futures. See the
/// [module docs](self).
pub struct AsyncMonitor<T> {
    monitor: Monitor<T>,
    ready: Readiness,
    /// Events taken from the monitor by `next` or the stream beyond the one
    /// they returned, oldest first; every wait delivers these first.
    queue: Mutex<VecDeque<Queued<T>>>,
}

/// An event taken from the monitor and not yet delivered; its receiver
/// owned (a clone, if the monitor lent it).
struct Queued<T> {
    id: WatchId,
    kind: EventKind,
    receiver: T,
}

impl<T> Queued<T> {
    fn into_event<'a>(self) -> Event<'a, T> {
        Event {
            id: self.id,
            kind: self.kind,
            receiver: Receiver::Owned(self.receiver),
        }
    }
}

impl<T> AsyncMonitor<T> {
    /// A new monitor, registered with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the monitor cannot be created, or when called outside a tokio
    /// runtime.
    ///
    /// # Panics
    ///
    /// In tokio, when the runtime's I/O driver is not enabled
    /// (`Builder::enable_io`).
    pub fn new() -> Result<Self> {
        Self::from_monitor(Monitor::new()?)
    }

    /// Registers `monitor` (and whatever it already watches) with the
    /// current tokio runtime.
    ///
    /// # Errors and panics
    ///
    /// As [`new`](Self::new).
    pub fn from_monitor(monitor: Monitor<T>) -> Result<Self> {
        use std::os::fd::AsFd;
        let ready = Readiness::new(monitor.as_fd())?;
        Ok(AsyncMonitor {
            monitor,
            ready,
            queue: Mutex::new(VecDeque::new()),
        })
    }

    /// The monitor: add and remove watches, shut down. Its `&self` methods
    /// may be called from any task or thread, also during a wait.
    pub fn monitor(&self) -> &Monitor<T> {
        &self.monitor
    }

    /// Waits for events and calls `handler` for each, as [`Monitor::wait`]
    /// does, with receivers lent (non-final events) or handed back (final
    /// ones). Returns the number delivered: at least 1, or 0 once the
    /// monitor is shut down. Several tasks may wait at once. Events that
    /// [`next`](Self::next) or a stream took from the monitor and queued
    /// come first, with owned (cloned) receivers even when not final: tell
    /// a final event by [`Event::is_final`].
    ///
    /// Cancel safe: if the future is dropped before it completes, no event
    /// has been delivered, and none is lost.
    pub async fn wait<F>(&self, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>),
    {
        let mut n = 0;
        {
            // Handlers of queued events are `wait` handlers too: their
            // `unwatch` must not wait for a lent receiver.
            let _inside = crate::monitor::InsideWait::enter();
            while let Some(e) = self.pop() {
                handler(e);
                n += 1;
            }
        }
        if n > 0 {
            return Ok(n);
        }
        let mut drain = Shared {
            monitor: &self.monitor,
            handler,
        };
        drive(&self.ready, &mut drain).await
    }

    /// [`wait`](Self::wait) on [`Monitor::wait_mut`]'s path: no lock and no
    /// atomic read-modify-write per event, because `&mut self` proves that
    /// no other task can use the monitor meanwhile. The handler gets
    /// [`Watches`](crate::Watches) to add and remove watches, and a
    /// non-final event's receiver lent in place, as with
    /// [`Monitor::wait_mut`].
    ///
    /// Cancel safe, as `wait`.
    pub async fn wait_mut<F>(&mut self, mut handler: F) -> Result<usize>
    where
        F: FnMut(Event<'_, T>, &crate::Watches<'_, T>),
    {
        let queue = self.queue.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        while let Some(e) = queue.pop_front() {
            self.monitor.with_watches(|w| handler(e.into_event(), w));
            n += 1;
        }
        if n > 0 {
            return Ok(n);
        }
        let mut drain = Owned {
            monitor: &mut self.monitor,
            handler,
        };
        drive(&self.ready, &mut drain).await
    }

    /// The next event, owned: `Ok(None)` once the monitor is shut down (and
    /// the events already taken from it are delivered). A non-final event's
    /// receiver is a clone (the original stays in the monitor): use a cheap
    /// `T` (an id, an `Arc`) or, for a receiver that cannot be cloned,
    /// [`wait`](Self::wait). Every receiver `next` returns is
    /// [`Receiver::Owned`]: tell the event that ends a watch by
    /// [`Event::is_final`].
    ///
    /// Cancel safe: a future dropped before it completes takes nothing; the
    /// events of a batch beyond the first wait in a queue for the next call.
    /// Several tasks may call it at once; each event goes to one of them.
    pub async fn next(&self) -> Result<Option<Event<'static, T>>>
    where
        T: Clone + 'static,
    {
        loop {
            if let Some(e) = self.pop() {
                return Ok(Some(e));
            }
            let mut drain = Shared {
                monitor: &self.monitor,
                handler: |e: Event<'_, T>| self.push(e),
            };
            if drive(&self.ready, &mut drain).await? == 0 {
                return Ok(self.pop());
            }
        }
    }

    /// The events as a [`Stream`](futures_core::Stream) of
    /// [`next`](Self::next)'s items, ending once the monitor is shut down.
    /// Cancel safe, as `next`; any number of streams and `next` callers may
    /// share the monitor.
    pub fn events(&self) -> Events<'_, T>
    where
        T: Clone + 'static,
    {
        Events::new(self)
    }

    fn pop<'a>(&self) -> Option<Event<'a, T>> {
        let q = self.lock().pop_front();
        q.map(Queued::into_event)
    }

    /// Queues an event; its receiver cloned if lent. The clone runs before
    /// the lock is taken: no caller code under a lock.
    fn push(&self, e: Event<'_, T>)
    where
        T: Clone,
    {
        let q = Queued {
            id: e.id,
            kind: e.kind,
            receiver: match e.receiver {
                Receiver::Lent(r) => r.clone(),
                Receiver::Owned(r) => r,
            },
        };
        self.lock().push_back(q);
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued<T>>> {
        // Only push and pop run under it: never poisoned in a harmful way.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> std::fmt::Debug for AsyncMonitor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncMonitor")
            .field("monitor", &self.monitor)
            .field("queued", &self.lock().len())
            .finish()
    }
}

/// The shared path: [`Monitor::wait`].
struct Shared<'m, T, F> {
    monitor: &'m Monitor<T>,
    handler: F,
}

impl<T, F: FnMut(Event<'_, T>)> Drain for Shared<'_, T, F> {
    fn shut_down(&self) -> bool {
        self.monitor.is_shut_down()
    }

    fn once(&mut self) -> Result<usize> {
        self.monitor.wait(Some(Duration::ZERO), &mut self.handler)
    }
}

/// The owner's path: [`Monitor::wait_mut`].
struct Owned<'m, T, F> {
    monitor: &'m mut Monitor<T>,
    handler: F,
}

impl<T, F: FnMut(Event<'_, T>, &crate::Watches<'_, T>)> Drain for Owned<'_, T, F> {
    fn shut_down(&self) -> bool {
        self.monitor.is_shut_down()
    }

    fn once(&mut self) -> Result<usize> {
        self.monitor
            .wait_mut(Some(Duration::ZERO), &mut self.handler)
    }
}
