//! Adding watches: the internal add of each kind of source, written once
//! and given to both [`Monitor`] (any thread, under the lock) and a
//! handler's [`Watches`] (the dispatching thread, no lock). The public way
//! in is [`Monitor::watch`] with a kind from [`crate::watch`], whose types
//! document each kind; the common path that registers a source with epoll
//! and stores it is in `registrar.rs`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use super::registrar::Registrar;
use super::table::Key;
use super::{Monitor, Watches};
use crate::cgroup::parse::psi::PsiTrigger;
use crate::cgroup::CgroupVersion;
use crate::event::WatchId;
use crate::source::cgroupfs::CgroupDir;
use crate::source::eventfd::EventfdWriter;
use crate::source::pidfd::PidInfo;
use crate::source::{self, Cold, Kind, Source};
use crate::{Error, PressureLevel, PressureMode, Result, Subject};

/// Emits the methods for both types: their bodies reach the table only
/// through `add` and `with_registrar`, which each type has.
macro_rules! watch_methods {
    ($($body:tt)*) => {
        impl<T> Monitor<T> {
            $($body)*
        }
        impl<T> Watches<'_, T> {
            $($body)*
        }
    };
}

watch_methods! {
    /// A process by pid ([`crate::watch::Process::pid`]).
    #[inline]
    pub(crate) fn add_pid(
        &self,
        pid: i32,
        reap: bool,
        oom_link: Option<WatchId>,
        receiver: T,
    ) -> Result<WatchId> {
        if let Some(children) = self.core.child_exits.as_deref() {
            return self.add_child(children, pid, reap, oom_link, receiver);
        }
        let fd = source::pidfd::open(pid)?;
        self.add_pid_with(fd, pid, reap, oom_link, receiver)
    }

    /// A process by pidfd ([`crate::watch::Process::pidfd`]).
    pub(crate) fn add_pidfd(
        &self,
        fd: OwnedFd,
        reap: bool,
        oom_link: Option<WatchId>,
        receiver: T,
    ) -> Result<WatchId> {
        let raw = fd.as_raw_fd();
        if !crate::pidfd::is_pidfd(fd.as_fd()) {
            return Err(Error::invalid("watch", Subject::Fd(raw), "not a pidfd"));
        }
        // A thread's pidfd becomes readable when that thread ends, and the
        // watch would report an exit while its process runs on. Refused
        // (the fd is closed with `fd`'s drop).
        if let Some(why) = crate::pidfd::check::not_a_process(fd.as_fd())? {
            return Err(Error::invalid("watch", Subject::Fd(raw), why));
        }
        source::adopt_fd(fd.as_fd(), false)
            .map_err(|e| Error::os("set close-on-exec on", Subject::Fd(raw), e))?;
        let pid = crate::pidfd::pid_of(fd.as_fd())?.unwrap_or(0);
        self.add_pid_with(fd, pid, reap, oom_link, receiver)
    }
    /// [`add_pid`](Self::add_pid) where pidfds are refused: our child only,
    /// watched through SIGCHLD (`source/sigchld.rs`).
    #[cold]
    fn add_child(
        &self,
        children: &source::sigchld::ChildExits,
        pid: i32,
        reap: bool,
        oom_link: Option<WatchId>,
        receiver: T,
    ) -> Result<WatchId> {
        children.check_child(pid)?;
        let info = PidInfo {
            pid,
            reap,
            oom_link,
            retry: None,
            exit_fifo: None,
            start: source::sigchld::start_of_child(pid),
        };
        let id = self.with_registrar(|r| r.add_child(Source::child(info), receiver, Subject::Pid(pid)))?;
        // It may have exited already: the next wait looks.
        source::sigchld::poke();
        Ok(id)
    }

    fn add_pid_with(
        &self,
        fd: OwnedFd,
        pid: i32,
        reap: bool,
        oom_link: Option<WatchId>,
        receiver: T,
    ) -> Result<WatchId> {
        let info = PidInfo {
            pid,
            reap,
            oom_link,
            retry: None,
            exit_fifo: None,
            start: None,
        };
        self.add_process(Source::pid(fd, info), receiver, Subject::Pid(pid))
    }

    /// An fd's hang-up ([`crate::watch::Hangup`]).
    pub(crate) fn watch_hangup(&self, fd: OwnedFd, receiver: T) -> Result<WatchId> {
        let raw = fd.as_raw_fd();
        source::adopt_fd(fd.as_fd(), false)
            .map_err(|e| Error::os("set close-on-exec on", Subject::Fd(raw), e))?;
        self.add(Source::inline(Kind::Hangup, fd), receiver, Subject::Fd(raw))
    }

    /// An exit FIFO linked to its process ([`crate::watch::ExitFifo`]).
    pub(crate) fn watch_exit_fifo(&self, fd: OwnedFd, process: WatchId, receiver: T) -> Result<WatchId> {
        let pid_key = Key::from_u64(process.0);
        let not_live = || {
            Error::invalid(
                "watch exit FIFO of",
                Subject::Watch(process),
                "not a live process watch (its exit may have been delivered already)",
            )
        };
        let live = |r: &mut Registrar<'_, T>| {
            r.table
                .source(pid_key)
                .is_some_and(|s| s.pid_info().is_some())
        };
        if !self.with_registrar(live) {
            return Err(not_live());
        }
        let fifo = self.watch_hangup(fd, receiver)?;
        let linked = self.with_registrar(|r| {
            match r.table.source(pid_key).and_then(|s| s.pid_info_mut()) {
                Some(info) => {
                    info.exit_fifo = Some(fifo);
                    true
                }
                None => false,
            }
        });
        if linked {
            Ok(fifo)
        } else {
            let _ = self.unwatch(fifo);
            Err(not_live())
        }
    }

    /// A caller's eventfd ([`crate::watch::Eventfd`]).
    pub(crate) fn watch_eventfd(&self, fd: OwnedFd, receiver: T) -> Result<WatchId> {
        let raw = fd.as_raw_fd();
        source::eventfd::check_is_eventfd(fd.as_fd(), self.core.anon_inode)?;
        source::adopt_fd(fd.as_fd(), true)
            .map_err(|e| Error::os("set close-on-exec on", Subject::Fd(raw), e))?;
        self.add(
            Source::inline(Kind::EventFd, fd),
            receiver,
            Subject::Fd(raw),
        )
    }

    /// An eventfd the monitor makes ([`crate::watch::NewEventfd`]).
    pub(crate) fn watch_new_eventfd(&self, receiver: T) -> Result<(WatchId, EventfdWriter)> {
        let fd =
            source::eventfd::create().map_err(|e| Error::os("create eventfd", Subject::None, e))?;
        let raw = fd.as_raw_fd();
        let (shared, writer) = EventfdWriter::new(fd);
        let id = self.with_inner_registrar(|inner_spare, r| {
            // A cold box that `unwatch` kept, if there is one.
            let source = Source::made_eventfd(shared, inner_spare.take());
            r.add_made_eventfd(source, receiver, raw)
        })?;
        Ok((id, writer))
    }

    /// A cgroup's OOM counters ([`crate::watch::CgroupOom`]): v1's
    /// `memory.oom_control` through `cgroup.event_control`, or v2's
    /// `memory.events` (`local`: `memory.events.local`).
    pub(crate) fn add_cgroup_oom(
        &self,
        dir: &Path,
        local: bool,
        from_zero: bool,
        receiver: T,
    ) -> Result<WatchId> {
        self.add_in_cgroup(dir, receiver, |dir| {
            let file = if local {
                only_on_v2(dir, "memory.events.local")?;
                source::memory_events::FILE_LOCAL
            } else {
                source::memory_events::FILE
            };
            Ok(Source::cold(match dir.version() {
                CgroupVersion::V1 => {
                    Cold::OomV1(Box::new(source::oom_v1::OomV1Watch::arm(dir, from_zero)?))
                }
                CgroupVersion::V2 => Cold::MemoryEvents(Box::new(
                    source::memory_events::MemoryEventsWatch::open(dir, file, from_zero)?,
                )),
            }))
        })
    }

    /// v2 swap counters ([`crate::watch::CgroupSwap`]).
    pub(crate) fn watch_cgroup_swap(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            only_on_v2(dir, "memory.swap.events")?;
            let w = source::swap_events::SwapEventsWatch::open(dir)?;
            Ok(Source::cold(Cold::Swap(w)))
        })
    }

    /// v2 `populated` ([`crate::watch::Populated`]).
    pub(crate) fn watch_populated(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            let w = source::populated::PopulatedWatch::open(dir)?;
            Ok(Source::cold(Cold::Populated(w)))
        })
    }

    /// v1 pressure levels ([`crate::watch::MemoryPressure`]).
    pub(crate) fn watch_pressure_level(
        &self,
        dir: impl AsRef<Path>,
        level: PressureLevel,
        mode: PressureMode,
        receiver: T,
    ) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            let w = source::pressure_v1::PressureV1Watch::arm(dir, level, mode)?;
            Ok(Source::cold(Cold::PressureV1(w)))
        })
    }

    /// v1 usage thresholds ([`crate::watch::UsageThreshold`]).
    pub(crate) fn watch_usage_threshold(
        &self,
        dir: impl AsRef<Path>,
        bytes: u64,
        with_swap: bool,
        receiver: T,
    ) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            let w = source::threshold_v1::ThresholdWatch::arm(dir, bytes, with_swap)?;
            Ok(Source::cold(Cold::Threshold(w)))
        })
    }

    /// A PSI trigger ([`crate::watch::Psi`]).
    pub(crate) fn watch_psi(
        &self,
        file: impl AsRef<Path>,
        trigger: &PsiTrigger,
        receiver: T,
    ) -> Result<WatchId> {
        let file = file.as_ref();
        let w = source::psi::PsiWatch::arm(file, trigger)?;
        self.add(
            Source::cold(Cold::Psi(w)),
            receiver,
            Subject::Path(file.to_path_buf()),
        )
    }

    /// Orphan reaping ([`crate::watch::Orphans`]).
    pub(crate) fn reap_orphans(&self, receiver: T) -> Result<WatchId> {
        let reaper = crate::reaper::OrphanReaper::with_holder(self.core.holds.clone())?;
        self.with_registrar(|r| {
            // Another reaper's watch still live (one ended by `unwatch`
            // or a failure may be replaced).
            if r.table.sources().any(|(_, s)| s.is_orphan_reaper()) {
                return Err(Error::invalid(
                    "reap orphans",
                    Subject::None,
                    "this monitor already reaps orphans",
                ));
            }
            // The pid watches made so far.
            let mut map = std::collections::HashMap::new();
            for (_, s) in r.table.sources() {
                if let Some(info) = s.pid_info().filter(|i| i.pid > 0) {
                    *map.entry(info.pid).or_default() += 1;
                }
            }
            *r.watched_pids = Some(map);
            Ok(())
        })?;
        let added = self.add(Source::cold(Cold::Orphans(reaper)), receiver, Subject::None);
        match &added {
            Err(_) => self.with_registrar(|r| *r.watched_pids = None),
            // Where children are watched through SIGCHLD, one signalfd takes
            // the signal: the monitor's, whose scan runs the reaper too. Two
            // would each drain what the other waits for.
            Ok(id) if self.core.child_exits.is_some() => self.with_registrar(|r| {
                if let Some(fd) = r.table.source(Key::from_u64(id.0)).and_then(|s| s.as_fd()) {
                    let _ = r.core.epoll.modify(fd, id.0, rustix::event::epoll::EventFlags::empty());
                }
            }),
            Ok(_) => {}
        }
        added
    }

    fn add(&self, source: Source, receiver: T, subject: Subject) -> Result<WatchId> {
        self.with_registrar(|r| r.add(source, receiver, subject))
    }

    /// [`add`](Self::add) for a process: with the kernel log read, when
    /// the process started is noted first (what binds a logged victim to
    /// it). Apart from `add`, whose other kinds need none of it.
    fn add_process(&self, source: Source, receiver: T, subject: Subject) -> Result<WatchId> {
        self.with_registrar(|r| r.add_process(source, receiver, subject))
    }

    /// Opens `dir` as a verified cgroup directory (before anything is
    /// written there), arms a source in it, and adds the watch.
    fn add_in_cgroup(
        &self,
        dir: &Path,
        receiver: T,
        arm: impl FnOnce(&CgroupDir) -> Result<Source>,
    ) -> Result<WatchId> {
        let dir = CgroupDir::open(dir)?;
        let source = arm(&dir)?;
        self.add(source, receiver, Subject::Path(dir.path().to_path_buf()))
    }
}

/// Refuses a v1 directory for a file that exists only on cgroup v2.
fn only_on_v2(dir: &CgroupDir, file: &str) -> Result<()> {
    if dir.version() == CgroupVersion::V2 {
        return Ok(());
    }
    Err(Error::path(
        "watch",
        dir.path(),
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{file} exists only on cgroup v2"),
        ),
    ))
}
