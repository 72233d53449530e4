//! Resolving what a readiness (or a re-check) produced into events, in
//! delivery order: a process's exit after its cgroup's OOM, a FIFO's
//! hang-up after its process's exit, final events taking their watch out
//! of the table.

use rustix::event::epoll::EventFlags;

use std::time::Instant;

use super::super::table::{Key, Removal, Watch};
use super::super::{Core, Inner};
use crate::event::{EventKind, Exit, ExitStatus};
use crate::source::{Clock, Outcome};

/// The kills an OOM watch had reported, unclaimed, when its cgroup was
/// removed: its linked exits may still claim them until `until`.
pub(in crate::monitor) struct GoneKills {
    /// The removed watch (index and generation: a reused slot is another).
    watch: Key,
    kills: u64,
    until: Instant,
}

/// Up to [`Group::CAP`] events from one readiness (or one re-check), in
/// delivery order. A final event carries its watch, already out of the
/// table.
pub(in crate::monitor) struct Group<T> {
    pub(in crate::monitor) items: [Option<Pending<T>>; Group::<()>::CAP],
}

pub(in crate::monitor) struct Pending<T> {
    pub(in crate::monitor) key: Key,
    pub(in crate::monitor) kind: EventKind,
    pub(in crate::monitor) watch: Option<Watch<T>>,
}

impl<T> Group<T> {
    /// The most events one readiness can produce: a process's exit,
    /// preceded by its linked cgroup's OOM and, if the cgroup went away
    /// meanwhile, that cgroup's removal, and followed by the end of its
    /// exit FIFO's watch.
    pub(in crate::monitor) const CAP: usize = 4;

    pub(in crate::monitor) fn new() -> Group<T> {
        Group {
            items: [None, None, None, None],
        }
    }

    pub(in crate::monitor) fn is_empty(&self) -> bool {
        self.items.iter().all(Option::is_none)
    }

    pub(in crate::monitor) fn push(&mut self, p: Pending<T>) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some(p);
        }
    }
}

impl<T> Inner<T> {
    /// Everything but the hot case: a final event, an OOM with its removal,
    /// a re-check to schedule.
    #[inline(never)]
    pub(in crate::monitor) fn resolve(
        &mut self,
        core: &Core,
        key: Key,
        outcome: Outcome,
        clock: &mut Clock,
    ) -> Group<T> {
        let mut group = Group::new();
        match outcome {
            Outcome::One(EventKind::Exited(exit)) => {
                self.push_exit(core, key, exit, clock, &mut group)
            }
            Outcome::One(EventKind::Populated(false)) => {
                self.push_emptied(core, key, clock, &mut group)
            }
            other => self.push_outcome(core, key, other, &mut group),
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
    ) {
        let (link, start) = self
            .table
            .get(key)
            .and_then(|w| w.source.pid_info())
            .map_or((None, None), |info| (info.oom_link, info.start));
        let linked = link.map(|id| Key::from_u64(id.0));
        let link = linked.filter(|&k| self.table.get(k).is_some());
        if let Some(link) = link {
            // OOM before exit: whatever the cgroup has not reported yet goes
            // out first, then the exit, marked if the kill is its own. Both
            // from one look, before a removal found by that look can take
            // the cgroup's watch (and its count of kills) away.
            let now = clock.now();
            if let Some(w) = self.table.get_mut(link) {
                let outcome = w.source.recheck(now, true);
                let judged = self.judge_exit(exit.pid, start, exit.status, Some(link), now, false);
                self.push_outcome(core, link, outcome, group);
                match judged {
                    Some(marked) => exit.oom_killed = marked,
                    // The log may name it in a moment (see `kmsg.rs`).
                    None => return self.defer_exit(core, key, exit, Some(link), now),
                }
            }
        } else if let (Some(gone), super::super::kmsg::KmsgState::Off) = (linked, &self.kmsg) {
            // The cgroup went first (systemd removes a scope as soon as its
            // last process died): the kills its watch reported still count.
            exit.oom_killed = self.claim_gone_kill(gone, exit.status, clock.now());
        } else if !matches!(self.kmsg, super::super::kmsg::KmsgState::Off) {
            // No linked cgroup (or its watch is gone): only the log can tell.
            let now = clock.now();
            exit.oom_killed = self
                .judge_exit(exit.pid, start, exit.status, None, now, true)
                .unwrap_or(false);
        }
        let fifo = self
            .table
            .get(key)
            .and_then(|w| w.source.pid_info())
            .and_then(|info| info.exit_fifo);
        self.push(core, key, EventKind::Exited(exit), group);
        // The process's exit FIFO ends with it, hung up or not.
        if let Some(fifo) = fifo.map(|id| Key::from_u64(id.0)) {
            if self.table.get(fifo).is_some() {
                self.push(core, fifo, EventKind::HungUp, group);
            }
        }
    }

    /// A cgroup became empty: the OOM watch of the same cgroup, if any,
    /// reports what it holds first. The kill that emptied it is held back
    /// for [`KILL_LINGER`](crate::source::oom_book::KILL_LINGER) after it
    /// was counted, while `cgroup.events` tells at once, so without this
    /// `populated:false` came before the OOM that caused it.
    #[cold]
    fn push_emptied(&mut self, core: &Core, key: Key, clock: &mut Clock, group: &mut Group<T>) {
        let oom = self
            .table
            .get(key)
            .and_then(|w| w.source.populated_dir())
            .and_then(|dir| {
                // A scan, but only on an emptied cgroup.
                self.table
                    .iter()
                    .find(|(_, w)| w.source.oom_dir().is_some_and(|(d, _)| d == dir))
                    .map(|(k, _)| k)
            });
        if let Some(oom) = oom {
            let now = clock.now();
            if let Some(w) = self.table.get_mut(oom) {
                let outcome = w.source.recheck(now, true);
                self.push_outcome(core, oom, outcome, group);
            }
        }
        self.push(core, key, EventKind::Populated(false), group);
    }

    pub(in crate::monitor) fn push_outcome(
        &mut self,
        core: &Core,
        key: Key,
        outcome: Outcome,
        group: &mut Group<T>,
    ) {
        let outcome = match (&self.kmsg, outcome) {
            (
                super::super::kmsg::KmsgState::On(_),
                o @ (Outcome::Kills(_)
                | Outcome::One(EventKind::Memory(_) | EventKind::Removed)
                | Outcome::OomThenRemoved(_)),
            ) => self.name_victims(key, o),
            (_, o) => o,
        };
        match outcome {
            Outcome::Nothing => {}
            Outcome::One(kind) => self.push(core, key, kind, group),
            Outcome::Kills(m) => self.push(core, key, EventKind::Memory(m), group),
            Outcome::OomThenRemoved(oom) => {
                self.push(core, key, EventKind::Memory(oom), group);
                self.push(core, key, EventKind::Removed, group);
            }
            Outcome::ReapOrphans => self.reap_orphans(core, key, group),
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
    fn reap_orphans(&mut self, core: &Core, key: Key, group: &mut Group<T>) {
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
            self.push(core, key, EventKind::Orphan(orphan), group);
        }
        if let Err(e) = reaped {
            self.push(core, key, EventKind::Failed(e), group);
        }
    }

    /// One kill of the removed OOM watch `gone` for an exit with `status`,
    /// by the rule of `OomBook::claim_kill_for` (a `SIGKILL`, or a
    /// non-child's unknown status), if one is left and still claimable.
    #[cold]
    fn claim_gone_kill(&mut self, gone: Key, status: ExitStatus, at: Instant) -> bool {
        self.gone_kills.retain(|g| at <= g.until && g.kills > 0);
        if !matches!(status, ExitStatus::Signal(9) | ExitStatus::Unknown) {
            return false;
        }
        match self.gone_kills.iter_mut().find(|g| g.watch == gone) {
            Some(g) => {
                g.kills -= 1;
                true
            }
            None => false,
        }
    }

    /// Keeps the unclaimed kills of an OOM watch that ends with its
    /// cgroup's removal, for the exits linked to it that come later.
    #[cold]
    fn keep_gone_kills(&mut self, key: Key, watch: &mut Watch<T>) {
        let now = Instant::now();
        self.gone_kills.retain(|g| now <= g.until && g.kills > 0);
        if let Some((kills, until)) = watch.source.oom_book().and_then(|b| b.take_claimable(now)) {
            self.gone_kills.push(GoneKills {
                watch: key,
                kills,
                until,
            });
        }
    }

    /// Queues one event; a final one takes the watch out of the table and
    /// epoll, and carries it. A non-final one is lent at delivery.
    fn push(&mut self, core: &Core, key: Key, kind: EventKind, group: &mut Group<T>) {
        let watch = if kind.is_final() {
            match core.remove(&mut self.table, key) {
                Removal::Removed(mut w) => {
                    super::super::registrar::index_pid(&mut self.watched_pids, &w.source, false);
                    if matches!(kind, EventKind::Removed) {
                        self.keep_gone_kills(key, &mut w);
                    }
                    Some(w)
                }
                // Lent (to another thread's handler, or to one running a
                // nested wait), or gone.
                Removal::Lent | Removal::Missing => return,
            }
        } else {
            None
        };
        group.push(Pending { key, kind, watch });
    }
}
