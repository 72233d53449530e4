//! The SIGCHLD scan, where pidfds are refused (`source/sigchld.rs`): our
//! children watched without pidfds, each asked with `waitid(P_PID)`.
//!
//! The signalfd is registered under the timer's key, so this runs from the
//! housekeeping: the dispatch loop tests nothing new for it, and the pidfd
//! and eventfd paths are as they were.

use super::super::table::Key;
use super::{deliver, Sink};
use crate::source::sigchld;
use crate::source::{Clock, Outcome};

/// Drains SIGCHLD, runs the orphan reaper if there is one (it shares this
/// signalfd), then asks every child watched without a pidfd whether it has
/// exited, and delivers each exit as a pidfd's would be (its cgroup's OOM
/// first). Returns the number of events delivered.
#[cold]
#[inline(never)]
pub(super) fn scan<T, S: Sink<T>>(sink: &mut S, clock: &mut Clock) -> usize {
    let (core, inner) = sink.parts();
    let Some(children) = core.child_exits.as_deref() else {
        return 0;
    };
    // Drained before anything is asked: an exit after this raises a new
    // SIGCHLD, and with it another scan.
    children.drain();
    let mut delivered = 0;
    // The orphan reaper first: it drains its own signalfd of the same
    // signal, so the children must be asked after it has (an exit between
    // the two drains is then still found below). It leaves every watched
    // pid alone (`keep`).
    let reaper = inner
        .table
        .iter()
        .find(|(_, w)| w.source.is_orphan_reaper())
        .map(|(key, _)| key);
    if let Some(key) = reaper {
        let (core, inner) = sink.parts();
        let group = inner.resolve(core, key, Outcome::ReapOrphans, clock);
        delivered += deliver(sink, group);
    }
    let (core, inner) = sink.parts();
    let Some(children) = core.child_exits.as_deref() else {
        return delivered;
    };
    let mut found = children.take_found();
    for (key, watch) in inner.table.iter() {
        let source = &watch.source;
        // A pidfd watch (from `watch_pidfd`) is epoll's.
        if source.fd.is_some() {
            continue;
        }
        if let Some(info) = source.pid_info() {
            if let Some(kind) = sigchld::poll(info.pid, info.reap) {
                found.push((key.as_u64(), kind));
            }
        }
    }
    // All asked before any handler runs: a handler's new child cannot take
    // a pid that a later watch in this scan still names.
    for (key, kind) in found.drain(..) {
        let (core, inner) = sink.parts();
        let group = inner.resolve(core, Key::from_u64(key), Outcome::One(kind), clock);
        delivered += deliver(sink, group);
    }
    if let Some(children) = sink.core().child_exits.as_deref() {
        children.put_back(found);
    }
    delivered
}
