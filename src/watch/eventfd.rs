//! Eventfd counters: a caller's, or one the monitor makes.

use std::os::fd::OwnedFd;

use super::watchable;
use crate::{EventfdWriter, WatchId};

/// An eventfd of the caller's: each time it becomes readable the monitor
/// drains it and reports [`EventKind::Signaled`](crate::EventKind::Signaled)
/// with the count, until [`unwatch`](crate::Monitor::unwatch). The monitor
/// takes ownership of the fd and makes it close-on-exec and non-blocking
/// (two `fcntl` calls to look, more if it was not), after checking that it
/// is an eventfd (its `/proc/self/fd` link); an eventfd it makes itself
/// needs none of it: [`NewEventfd`].
///
/// # Errors
///
/// An fd that is not an eventfd is refused, naming it and what it is: a
/// pipe, socket or file would be read as a counter. (Without procfs the
/// check is weaker: any file of the kernel's anonymous inode passes,
/// which is what eventfds, timerfds, signalfds and epoll fds are.) A
/// failed read is reported as [`EventKind::Failed`](crate::EventKind::Failed).
#[derive(Debug)]
pub struct Eventfd(OwnedFd);

impl Eventfd {
    /// The eventfd `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Eventfd(fd)
    }
}

watchable!(Eventfd => WatchId, |k, m, receiver| m.watch_eventfd(k.0, receiver));

/// An eventfd the monitor makes (close-on-exec and non-blocking from the
/// start, so nothing needs checking), watched as an [`Eventfd`] is. `watch`
/// returns the watch and the writer to signal it with, from any thread;
/// the eventfd closes when the watch has ended and the writer (with its
/// clones) is gone.
///
/// ```
/// use ctrmon::watch::NewEventfd;
///
/// let mut monitor = ctrmon::Monitor::new()?;
/// let (id, writer) = monitor.watch(NewEventfd, "jobs")?;
/// std::thread::spawn(move || writer.signal(2)).join().unwrap()?;
/// let mut got = 0;
/// monitor.wait_mut(None, |event, _| {
///     if let ctrmon::EventKind::Signaled { count } = event.kind {
///         assert_eq!((event.id, *event.receiver), (id, "jobs"));
///         got += count;
///     }
/// })?;
/// assert_eq!(got, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NewEventfd;

watchable!(NewEventfd => (WatchId, EventfdWriter), |k, m, receiver| m.watch_new_eventfd(receiver));
