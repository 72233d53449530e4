//! What can be watched: one type per kind of source, each given to
//! [`Monitor::watch`](crate::Monitor::watch) (or, from a handler of
//! `wait_mut`, [`Watches::watch`](crate::Watches::watch)) with its receiver.
//!
//! | kind | events | returns |
//! | --- | --- | --- |
//! | [`Process`]: a pid or a pidfd, linked to a cgroup's OOM watch or not | [`Exited`](crate::EventKind::Exited) | [`WatchId`](crate::WatchId) |
//! | [`ExitFifo`]: the read end of a process's exit FIFO | [`HungUp`](crate::EventKind::HungUp) | [`WatchId`](crate::WatchId) |
//! | [`Hangup`]: any fd whose peer closing means the end | [`HungUp`](crate::EventKind::HungUp) | [`WatchId`](crate::WatchId) |
//! | [`CgroupOom`]: a memory cgroup, given or a process's, its counters hierarchical or local | [`Memory`](crate::EventKind::Memory), [`Removed`](crate::EventKind::Removed) | [`CgroupWatch`] |
//! | [`CgroupSwap`]: v2 `memory.swap.events` | [`Swap`](crate::EventKind::Swap), [`Removed`](crate::EventKind::Removed) | [`WatchId`](crate::WatchId) |
//! | [`Populated`]: v2 `cgroup.events` | [`Populated`](crate::EventKind::Populated), [`Removed`](crate::EventKind::Removed) | [`WatchId`](crate::WatchId) |
//! | [`MemoryPressure`]: v1 `memory.pressure_level` | [`Pressure`](crate::EventKind::Pressure) | [`WatchId`](crate::WatchId) |
//! | [`UsageThreshold`]: v1 usage crossing a size | [`Threshold`](crate::EventKind::Threshold) | [`WatchId`](crate::WatchId) |
//! | [`Psi`]: a PSI trigger | [`Psi`](crate::EventKind::Psi), [`Removed`](crate::EventKind::Removed) | [`WatchId`](crate::WatchId) |
//! | [`Eventfd`]: a caller's eventfd | [`Signaled`](crate::EventKind::Signaled) | [`WatchId`](crate::WatchId) |
//! | [`NewEventfd`]: an eventfd the monitor makes | [`Signaled`](crate::EventKind::Signaled) | [`WatchId`](crate::WatchId) and an [`EventfdWriter`](crate::EventfdWriter) |
//! | [`Orphans`]: every child nobody watches, reaped | [`Orphan`](crate::EventKind::Orphan) | [`WatchId`](crate::WatchId) |
//!
//! A kind's options are builder methods on its type; a kind that needs
//! nothing is a unit struct. The trait they share, [`Watchable`], is
//! sealed: the kinds are this crate's, each wrapping one kernel mechanism.
//!
//! ```
//! use ctrmon::watch::{NewEventfd, Process};
//! use ctrmon::Monitor;
//!
//! let monitor: Monitor<&str> = Monitor::new()?;
//! let child = std::process::Command::new("true").spawn()?;
//! let exit = monitor.watch(Process::pid(child.id() as i32), "child")?;
//! let (jobs, writer) = monitor.watch(NewEventfd, "jobs")?;
//! assert!(monitor.contains(exit) && monitor.contains(jobs));
//! # drop(writer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cgroup;
mod eventfd;
mod process;

pub use cgroup::{
    CgroupOom, CgroupSwap, CgroupWatch, MemoryPressure, Populated, Psi, UsageThreshold,
};
pub use eventfd::{Eventfd, NewEventfd};
pub use process::{ExitFifo, Hangup, Orphans, Process};

use crate::Result;

/// A kind of source that [`Monitor::watch`](crate::Monitor::watch) and
/// [`Watches::watch`](crate::Watches::watch) accept: the types of this
/// module. Sealed.
pub trait Watchable: sealed::Sealed + Sized {
    /// What `watch` returns: the watch's [`WatchId`](crate::WatchId), and
    /// for some kinds more (see each).
    type Output;

    #[doc(hidden)]
    fn add_to<T>(self, on: sealed::On<'_, '_, T>, receiver: T) -> Result<Self::Output>;
}

pub(crate) mod sealed {
    use crate::{Monitor, Watches};

    pub trait Sealed {}

    /// Where a watch is added: the two have the same internal adds
    /// (`monitor/watch.rs`).
    pub enum On<'m, 'w, T> {
        Monitor(&'m Monitor<T>),
        Watches(&'m Watches<'w, T>),
    }
}

/// `$body` for either side of an [`On`](sealed::On), with `$m` bound to it:
/// both have the same internal methods.
macro_rules! on {
    ($on:expr, |$m:ident| $body:expr) => {
        match $on {
            $crate::watch::sealed::On::Monitor($m) => $body,
            $crate::watch::sealed::On::Watches($m) => $body,
        }
    };
}
use on;

/// The [`Watchable`] impl of a kind whose add is one internal call:
/// `$body`, with the kind as `$s`, the monitor or handler as `$m` and the
/// receiver as `$r`.
macro_rules! watchable {
    ($ty:ty => $out:ty, |$s:ident, $m:ident, $r:ident| $body:expr) => {
        impl $crate::watch::sealed::Sealed for $ty {}
        impl $crate::watch::Watchable for $ty {
            type Output = $out;
            #[inline(always)]
            fn add_to<T>(
                self,
                on: $crate::watch::sealed::On<'_, '_, T>,
                $r: T,
            ) -> $crate::Result<$out> {
                #[allow(unused_variables)]
                let $s = self;
                $crate::watch::on!(on, |$m| $body)
            }
        }
    };
}
use watchable;
