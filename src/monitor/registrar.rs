//! Adding and removing watches, written once for every way to reach the
//! table: the shared monitor's (`&self` methods, under the lock) and a
//! handler's ([`Watches`](super::Watches), with the table in the
//! dispatching thread's hands and one receiver held in place).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::time::Instant;

use super::housekeeping::REARM_EVERY;
use super::table::{Key, Removal, TableView, Watch};
use super::{Core, Inner};
use crate::event::WatchId;
use crate::source::{Cold, Kind, Source};
use crate::{Error, Result, Subject};

/// The table and the bookkeeping that adds and removes touch.
pub(super) struct Registrar<'a, T> {
    pub(super) core: &'a Core,
    pub(super) table: TableView<'a, T>,
    pub(super) watched_pids: &'a mut Option<HashMap<i32, u32>>,
    next_rearm: &'a mut Option<Instant>,
    schedule_changed: &'a mut bool,
}

impl<T> Inner<T> {
    /// A registrar over the whole table. Call [`Inner::settle`] after.
    #[inline]
    pub(super) fn registrar<'a>(&'a mut self, core: &'a Core) -> Registrar<'a, T> {
        let Inner {
            table,
            watched_pids,
            next_rearm,
            schedule_changed,
            ..
        } = self;
        Registrar {
            core,
            table: table.view(),
            watched_pids,
            next_rearm,
            schedule_changed,
        }
    }

    /// [`registrar`](Self::registrar), and the spare cold box beside it.
    #[inline(always)]
    pub(super) fn registrar_and_spare<'a>(
        &'a mut self,
        core: &'a Core,
    ) -> (Registrar<'a, T>, &'a mut Option<Box<Cold>>) {
        let Inner {
            table,
            watched_pids,
            next_rearm,
            schedule_changed,
            spare_cold,
            ..
        } = self;
        let r = Registrar {
            core,
            table: table.view(),
            watched_pids,
            next_rearm,
            schedule_changed,
        };
        (r, spare_cold)
    }

    /// The receiver under `key` in place, and a registrar over the rest.
    #[inline(always)]
    pub(super) fn split_at<'a>(
        &'a mut self,
        core: &'a Core,
        key: Key,
    ) -> Option<(&'a mut T, Registrar<'a, T>)> {
        let Inner {
            table,
            watched_pids,
            next_rearm,
            schedule_changed,
            ..
        } = self;
        let (receiver, table) = table.split_at(key)?;
        Some((
            receiver,
            Registrar {
                core,
                table,
                watched_pids,
                next_rearm,
                schedule_changed,
            },
        ))
    }

    /// After a registrar was used: the table takes in what it spilled.
    #[inline]
    pub(super) fn settle(&mut self) {
        self.table.settle();
    }
}

impl<T> Registrar<'_, T> {
    /// Registers `source` with epoll under the key the table will give it,
    /// arms it, and stores it with `receiver`.
    #[inline]
    pub(super) fn add(
        &mut self,
        mut source: Source,
        receiver: T,
        subject: Subject,
    ) -> Result<WatchId> {
        // The kind decides which of the steps below apply; most adds are of
        // the inline kinds, which need none of them.
        let (Some(kind), Some(fd)) = (source.kind(), source.as_fd()) else {
            return Err(Error::invalid("watch", subject, "a source with no fd"));
        };
        if let Some(link) = source.pid_info().and_then(|info| info.oom_link) {
            self.check_oom_link(link, &subject)?;
        }
        let Some(key) = self.table.next_key(kind) else {
            return Err(table_full(subject));
        };
        // Register before inserting: if epoll refuses, nothing was stored.
        if let Err(e) = self.core.epoll.add(fd, key.as_u64(), source.interest()) {
            return Err(epoll_refused(subject, e));
        }
        if kind == Kind::Cold {
            self.arm_cold(&mut source)?;
        }
        if kind == Kind::Pid {
            index_pid(self.watched_pids, &source, true);
        }
        self.table.insert_at(key, Watch { source, receiver });
        super::add_one(&self.core.live);
        Ok(WatchId(key.as_u64()))
    }

    /// [`add`](Self::add) for our child watched without a pidfd: no fd, so
    /// nothing in epoll; the SIGCHLD scan finds it in the table
    /// (`dispatch/children.rs`).
    #[cold]
    pub(super) fn add_child(
        &mut self,
        source: Source,
        receiver: T,
        subject: Subject,
    ) -> Result<WatchId> {
        if let Some(link) = source.pid_info().and_then(|info| info.oom_link) {
            self.check_oom_link(link, &subject)?;
        }
        let Some(key) = self.table.next_key(Kind::Pid) else {
            return Err(table_full(subject));
        };
        index_pid(self.watched_pids, &source, true);
        self.table.insert_at(key, Watch { source, receiver });
        super::add_one(&self.core.live);
        Ok(WatchId(key.as_u64()))
    }

    /// [`add`](Self::add) for a process watch, noting first when the
    /// process started: what binds a victim that the kernel log names to
    /// this process and not to an earlier one of the same pid. Read for
    /// every process watch (`/proc/<pid>/stat` and the pidfd's fdinfo), with
    /// the log or without: a flag for it in the monitor's shared part
    /// changed rustc's layout of that part and cost the dispatch paths 4 to
    /// 8 instructions (benches/README.md), far more than these two reads
    /// cost a watch of a process.
    #[inline(never)]
    pub(super) fn add_process(
        &mut self,
        mut source: Source,
        receiver: T,
        subject: Subject,
    ) -> Result<WatchId> {
        bind_start(&mut source);
        self.add(source, receiver, subject)
    }

    /// [`add`](Self::add) for an eventfd the monitor made
    /// (`watch_new_eventfd`, watch churn's hot case), inlined there: its
    /// kind, fd and interest are known, and none of the other kinds' steps
    /// (an OOM link, arming, the pid index) apply.
    #[inline(always)]
    pub(super) fn add_made_eventfd(
        &mut self,
        source: Source,
        receiver: T,
        raw: std::os::fd::RawFd,
    ) -> Result<WatchId> {
        let Some(key) = self.table.next_key(Kind::EventFd) else {
            return Err(table_full(Subject::Fd(raw)));
        };
        let Some(Cold::MadeEventFd(fd)) = source.cold.as_deref() else {
            return Err(Error::invalid(
                "watch",
                Subject::Fd(raw),
                "not a made eventfd",
            ));
        };
        // Register before inserting: if epoll refuses, nothing was stored.
        if let Err(e) =
            self.core
                .epoll
                .add(fd.as_fd(), key.as_u64(), crate::source::eventfd::INTEREST)
        {
            return Err(epoll_refused(Subject::Fd(raw), e));
        }
        self.table.insert_at(key, Watch { source, receiver });
        super::add_one(&self.core.live);
        Ok(WatchId(key.as_u64()))
    }

    /// A pid watch linked to an OOM watch (`watch_pid_in`): that must be a
    /// live cgroup OOM watch.
    #[cold]
    fn check_oom_link(&mut self, link: WatchId, subject: &Subject) -> Result<()> {
        let is_oom_watch = self
            .table
            .source(Key::from_u64(link.0))
            .is_some_and(|s| s.oom_book().is_some());
        if is_oom_watch {
            return Ok(());
        }
        Err(Error::invalid(
            "watch",
            subject.clone(),
            format!("{link} is not a live cgroup OOM watch"),
        ))
    }

    /// Arms a cold source once it is registered: baselines of polled files
    /// are read after registration, so that no change falls between the
    /// two; kernfs files join the periodic re-arm.
    #[cold]
    fn arm_cold(&mut self, source: &mut Source) -> Result<()> {
        if let Err(e) = source.arm() {
            if let Some(fd) = source.as_fd() {
                let _ = self.core.epoll.delete(fd);
            }
            // The key was live in epoll: another thread's wait may hold an
            // event for it in its buffer. It must never name a later watch.
            self.table.burn_key();
            return Err(e);
        }
        if source.is_kernfs() {
            super::add_one(&self.core.kernfs);
            if self.next_rearm.is_none() {
                *self.next_rearm = Some(Instant::now() + REARM_EVERY);
                *self.schedule_changed = true;
            }
        }
        Ok(())
    }

    /// Ends the watch under `key`: out of the table and epoll (the fd closes
    /// when the caller drops the watch). A lent watch, or the one whose
    /// receiver a handler holds, is marked to end when it comes back.
    #[inline]
    pub(super) fn remove(&mut self, key: Key) -> Removal<T> {
        let removal = self.table.remove(key);
        match &removal {
            Removal::Removed(w) => {
                self.core.retire(&w.source);
                super::sub_one(&self.core.live);
                if w.source.kind() == Some(Kind::Pid) {
                    index_pid(self.watched_pids, &w.source, false);
                }
            }
            Removal::Lent => super::sub_one(&self.core.live),
            Removal::Missing => {}
        }
        removal
    }
}

#[cold]
#[inline(never)]
fn table_full(subject: Subject) -> Error {
    Error::new(
        "watch",
        subject,
        std::io::Error::other("the receiver table is full"),
    )
}

#[cold]
#[inline(never)]
fn epoll_refused(subject: Subject, e: rustix::io::Errno) -> Error {
    Error::os("register with epoll", subject, e)
}

/// Notes when a watched process started, for the kernel log's victims.
#[cold]
fn bind_start(source: &mut Source) {
    let (Some(fd), Some(pid)) = (source.as_fd(), source.pid_info().map(|i| i.pid)) else {
        return;
    };
    let start = crate::source::pidfd::start_of(pid, fd);
    if let Some(info) = source.pid_info_mut() {
        info.start = start;
    }
}

/// Counts a pid watch in `watched_pids` (with orphan reaping on), or
/// uncounts it when it ends.
#[inline]
pub(super) fn index_pid(watched_pids: &mut Option<HashMap<i32, u32>>, source: &Source, add: bool) {
    // Without orphan reaping there is no map; most sources are not pids.
    let (Some(map), Some(info)) = (watched_pids, source.pid_info()) else {
        return;
    };
    if info.pid <= 0 {
        return;
    }
    if add {
        *map.entry(info.pid).or_default() += 1;
    } else if let Some(n) = map.get_mut(&info.pid) {
        *n -= 1;
        if *n == 0 {
            map.remove(&info.pid);
        }
    }
}

/// What an `unwatch` returns: the receiver, or why not.
#[inline]
pub(super) fn unwatch_result<T>(id: WatchId, removal: Removal<T>) -> Result<T> {
    match removal {
        // The fd closes here, outside the lock.
        Removal::Removed(watch) => Ok(watch.receiver),
        Removal::Lent => Err(unwatch_error(id, true)),
        Removal::Missing => Err(unwatch_error(id, false)),
    }
}

/// The error of an `unwatch` that found the receiver lent, or nothing.
#[cold]
fn unwatch_error(id: WatchId, lent: bool) -> Error {
    let error = if lent {
        std::io::Error::new(
            // `ErrorKind::ResourceBusy` on Rust 1.83 and later.
            std::io::Error::from(rustix::io::Errno::BUSY).kind(),
            "the receiver is lent to a handler; the watch ends and the receiver \
             comes back as its Unwatched event",
        )
    } else {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such watch")
    };
    Error::new("unwatch", Subject::Watch(id), error)
}
