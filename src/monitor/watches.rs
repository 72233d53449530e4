//! [`Watches`]: what a handler of [`Monitor::wait_mut`](crate::Monitor::wait_mut) adds and removes
//! watches with.

use std::cell::RefCell;
use std::fmt;

use super::registrar::{unwatch_result, Registrar};
use super::table::Key;
use super::Core;
use crate::event::WatchId;
use crate::Result;

/// The monitor's watches, as a handler of [`Monitor::wait_mut`](crate::Monitor::wait_mut) reaches
/// them: [`watch`](Self::watch), [`unwatch`](Self::unwatch),
/// [`contains`](Self::contains) and [`len`](Self::len), with no lock.
///
/// The handler holds the receiver of the event it was called for straight
/// in the table (nothing is copied or moved to lend it), and this handle
/// reaches every other watch. A watch added here is registered with epoll
/// at once and can have events from the next `epoll_wait` on; a watch
/// removed here gets no further event, also none already read in the same
/// batch.
///
/// ```
/// use ctrmon::watch::NewEventfd;
/// use ctrmon::{EventKind, Monitor};
///
/// let mut monitor = Monitor::new()?;
/// let (first, writer) = monitor.watch(NewEventfd, "first")?;
/// let (old, _old_writer) = monitor.watch(NewEventfd, "old")?;
/// writer.signal(1)?;
/// let mut second = None;
/// monitor.wait_mut(None, |event, watches| {
///     if let EventKind::Signaled { .. } = event.kind {
///         // Chain a second watch from the handler, and end another one:
///         // its receiver comes back at once.
///         second = Some(watches.watch(NewEventfd, "second").unwrap());
///         assert_eq!(watches.unwatch(old).unwrap(), "old");
///         assert!(watches.contains(first));
///     }
/// })?;
/// let (second, _writer) = second.unwrap();
/// assert!(monitor.contains(second));
/// assert!(!monitor.contains(old));
/// assert_eq!(monitor.unwatch(second)?, "second");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # The receiver in hand
///
/// `unwatch` of the watch whose receiver the handler holds cannot return
/// that receiver: it ends the watch, fails with the error kind of `EBUSY`
/// (`ResourceBusy`), and the receiver comes back as the watch's final
/// event, [`EventKind::Unwatched`](crate::EventKind::Unwatched), right after
/// the handler returns. Any other watch's receiver is returned at once.
pub struct Watches<'a, T> {
    pub(super) core: &'a Core,
    registrar: RefCell<Registrar<'a, T>>,
}

impl<'a, T> Watches<'a, T> {
    pub(super) fn new(registrar: Registrar<'a, T>) -> Self {
        Watches {
            core: registrar.core,
            registrar: RefCell::new(registrar),
        }
    }

    pub(super) fn into_registrar(self) -> Registrar<'a, T> {
        self.registrar.into_inner()
    }

    pub(super) fn with_registrar<R>(&self, f: impl FnOnce(&mut Registrar<'_, T>) -> R) -> R {
        // No caller code runs inside: never borrowed twice.
        f(&mut self.registrar.borrow_mut())
    }

    /// [`with_registrar`](Self::with_registrar) with no spare cold box:
    /// the one-slot stash is `Monitor::unwatch`'s (see `Inner::spare_cold`);
    /// a handler's adds make their own.
    #[inline(always)]
    pub(super) fn with_inner_registrar<R>(
        &self,
        f: impl FnOnce(&mut Option<Box<crate::source::Cold>>, &mut Registrar<'_, T>) -> R,
    ) -> R {
        f(&mut None, &mut self.registrar.borrow_mut())
    }

    /// As [`Monitor::watch`](crate::Monitor::watch), from the handler: the
    /// watch is registered with epoll at once.
    #[inline(always)]
    pub fn watch<S: crate::watch::Watchable>(&self, source: S, receiver: T) -> Result<S::Output> {
        source.add_to(crate::watch::sealed::On::Watches(self), receiver)
    }

    /// As [`Monitor::unwatch`](crate::Monitor::unwatch): ends the watch and
    /// returns its receiver, at once. For the watch whose receiver this
    /// handler holds, it ends the watch and fails with `ResourceBusy`, and
    /// the receiver comes back as an
    /// [`Unwatched`](crate::EventKind::Unwatched) event once the handler
    /// returns.
    ///
    /// # Errors
    ///
    /// As [`Monitor::unwatch`](crate::Monitor::unwatch).
    pub fn unwatch(&self, id: WatchId) -> Result<T> {
        let removal = self.with_registrar(|r| r.remove(Key::from_u64(id.0)));
        unwatch_result(id, removal)
    }

    /// True while `id` is being watched (also the watch whose receiver the
    /// handler holds, until it is unwatched).
    pub fn contains(&self, id: WatchId) -> bool {
        self.with_registrar(|r| r.table.contains(Key::from_u64(id.0)))
    }

    /// The number of live watches.
    pub fn len(&self) -> usize {
        self.core.live()
    }

    /// True when nothing is being watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> fmt::Debug for Watches<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("watches", &self.len())
            .finish()
    }
}
