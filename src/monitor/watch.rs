//! Adding watches: one method per kind of source. They are written once
//! and given to both [`Monitor`] (any thread, under the lock) and a
//! handler's [`Watches`] (the dispatching thread, no lock); the common path
//! that registers a source with epoll and stores it is in `registrar.rs`.

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
    /// Watches process `pid` for exit, reaping it if it is our child.
    ///
    /// The event is [`EventKind::Exited`](crate::EventKind::Exited): with the exit code or signal for
    /// our child, and, for a process that is not, as soon as it exits, with
    /// the status read from its zombie (`/proc/<pid>/stat`, which needs
    /// ptrace read access; confirmed through its pidfd), or, if its parent
    /// reaped it first, the one the kernel keeps (Linux 6.15+); otherwise
    /// with [`ExitStatus::Unknown`](crate::ExitStatus::Unknown) and
    /// [`Exit::unknown`](crate::Exit::unknown) saying why. A process that has already
    /// exited but is not yet reaped (a zombie) is reported on the next wait.
    ///
    /// # Errors
    ///
    /// A process that no longer exists at all fails with an error for which
    /// [`Error::is_process_gone`](crate::Error::is_process_gone) is true: its exit happened before the watch
    /// and its status is lost to us. Watch a child right after spawning it,
    /// before anything can reap it, and that cannot happen.
    ///
    /// # Where pidfds are refused
    ///
    /// When [`exit_mode`](crate::Monitor::exit_mode) is
    /// [`SigchldFallback`](crate::ExitMode::SigchldFallback) (a seccomp
    /// filter, an old SELinux policy or a kernel before 5.3 refused
    /// `pidfd_open`), only our own children can be watched: through SIGCHLD
    /// and `waitid(P_PID)`, with the same events, the same OOM-first order
    /// and the same "already gone" error. Another's process is refused with
    /// an error naming the pid, `pidfd_open` and the errno. SIGCHLD must then
    /// be blocked in every thread
    /// ([`block_sigchld`](crate::reaper::block_sigchld), in the main thread
    /// before any other starts; the first such watch fails, naming the
    /// thread, if one has it unblocked), and nothing else in the process
    /// may reap a watched child (its watch then reports
    /// [`WhyUnknown::ReapedElsewhere`](crate::WhyUnknown::ReapedElsewhere)).
    /// Each SIGCHLD costs one `waitid` per child watched this way.
    ///
    /// # Against a cgroup watch
    ///
    /// A process watched here is not tied to any OOM watch, even one on its
    /// own cgroup: its exit and that cgroup's OOM are delivered in whatever
    /// order the kernel signals them, and an OOM-killed process's exit often
    /// comes first (on cgroup v2 nearly always). OOM-before-exit, and
    /// [`Exit::oom_killed`](crate::Exit::oom_killed), are guaranteed only
    /// through [`watch_pid_in`](Self::watch_pid_in);
    /// [`nearest_containing`](crate::cgroup::nearest_containing) finds which
    /// of your watched cgroups holds a process.
    pub fn watch_pid(&self, pid: i32, receiver: T) -> Result<WatchId> {
        self.add_pid(pid, true, None, receiver)
    }

    /// Like [`watch_pid`](Self::watch_pid), and when the process exits, the
    /// OOM watch `cgroup` (from [`watch_cgroup_oom`](Self::watch_cgroup_oom)
    /// on the process's memory cgroup) is read first: an OOM it has not yet
    /// reported is delivered *before* the exit, and the exit says whether
    /// the process was OOM-killed ([`Exit::oom_killed`](crate::Exit::oom_killed)). The exit of an
    /// OOM-killed process often reaches user space before the OOM does
    /// (containerd #8180); this is the ordering that fixes it.
    ///
    /// `cgroup` may also be an OOM watch on an ancestor of the process's
    /// cgroup. On v2 an ancestor's `memory.events` counts its descendants'
    /// kills, so the exit is marked as for the process's own cgroup; on v1
    /// `oom_kill` counts only the cgroup's own victims, so the ancestor's
    /// OOM (when its own limit was hit) still comes first, but the exit is
    /// not marked. The link is made now: a process that moves to another
    /// cgroup later stays linked to `cgroup`. A cgroup removed before its
    /// process's exit is handled here takes its counters along, and the exit
    /// is then not marked.
    ///
    /// # Errors
    ///
    /// As [`watch_pid`](Self::watch_pid), and `cgroup` must be a live OOM
    /// watch.
    pub fn watch_pid_in(&self, pid: i32, cgroup: WatchId, receiver: T) -> Result<WatchId> {
        self.add_pid(pid, true, Some(cgroup), receiver)
    }

    /// Like [`watch_pid`](Self::watch_pid), but leaves our child a zombie for
    /// the caller to reap (its status is read with `WNOWAIT`). Use this when
    /// something else owns reaping, such as `std::process::Child::wait`.
    pub fn watch_pid_without_reaping(&self, pid: i32, receiver: T) -> Result<WatchId> {
        self.add_pid(pid, false, None, receiver)
    }

    /// Watches the process that `pidfd` names, as
    /// [`watch_pid`](Self::watch_pid) does, taking ownership of the pidfd.
    ///
    /// A pidfd names one process for good, so there is no window in which
    /// the pid could be reused by another process between a spawn (or a
    /// runtime's pid file) and the watch: use this with a pidfd from
    /// `pidfd_open` right after `fork`, or one a runtime sent
    /// ([`PidfdListener`](crate::pidfd::PidfdListener), `runc
    /// --pidfd-socket`). The exit's [`pid`](crate::Exit::pid) is the pid the
    /// pidfd named when it was watched, or 0 if the process had already
    /// been reaped (its exit is then reported at once, with the status the
    /// kernel kept, if any).
    ///
    /// # Errors
    ///
    /// `pidfd` must be a pidfd ([`is_pidfd`](crate::pidfd::is_pidfd)) of a
    /// process: a thread's pidfd (`PIDFD_THREAD`), or one naming a thread
    /// that is not its thread group's leader, is refused with an error that
    /// says so, since its exit would come while the process runs on. The
    /// error names the fd; a refused fd is closed.
    pub fn watch_pidfd(&self, pidfd: OwnedFd, receiver: T) -> Result<WatchId> {
        self.add_pidfd(pidfd, None, receiver)
    }

    /// [`watch_pidfd`](Self::watch_pidfd) linked to the OOM watch of the
    /// process's cgroup, as [`watch_pid_in`](Self::watch_pid_in).
    pub fn watch_pidfd_in(&self, pidfd: OwnedFd, cgroup: WatchId, receiver: T) -> Result<WatchId> {
        self.add_pidfd(pidfd, Some(cgroup), receiver)
    }

    fn add_pidfd(&self, fd: OwnedFd, oom_link: Option<WatchId>, receiver: T) -> Result<WatchId> {
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
        self.add_pid_with(fd, pid, true, oom_link, receiver)
    }

    fn add_pid(
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

    /// Watches `fd` for a hang-up (`EPOLLHUP` or `EPOLLERR`): the read end of
    /// an exit FIFO whose writer is the watched process, as in containerd 0.2,
    /// or any fd whose peer closing means the end. The event is
    /// [`EventKind::HungUp`](crate::EventKind::HungUp). The monitor takes ownership of `fd` and closes
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
        self.add(Source::inline(Kind::Hangup, fd), receiver, Subject::Fd(raw))
    }

    /// Watches `fd`, the read end of `process`'s exit FIFO, for a hang-up
    /// as [`watch_hangup`](Self::watch_hangup) does, linked to the pid
    /// watch `process` (from [`watch_pid`](Self::watch_pid) and the like):
    /// the FIFO's watch ends with the process. When the process's exit is
    /// delivered and the FIFO has not hung up, its
    /// [`HungUp`](crate::EventKind::HungUp) follows the exit at once. So a
    /// FIFO opened after its writer had already gone — which never hangs up
    /// (see the FIFO race above) — is still reported, at the process's exit,
    /// instead of never.
    ///
    /// # Errors
    ///
    /// `process` must be a live pid watch; if its process's exit is
    /// delivered while this call runs, the FIFO is not watched and the
    /// error says so.
    pub fn watch_exit_fifo(&self, fd: OwnedFd, process: WatchId, receiver: T) -> Result<WatchId> {
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

    /// Watches an eventfd: each time it becomes readable the monitor drains
    /// it and reports [`EventKind::Signaled`](crate::EventKind::Signaled) with the count. The watch lasts
    /// until [`unwatch`](Self::unwatch). The monitor takes ownership of `fd`
    /// and makes it close-on-exec and non-blocking (two `fcntl` calls to
    /// look, more if it was not), after checking that it is an eventfd (its
    /// `/proc/self/fd` link); an eventfd it makes itself needs none of it:
    /// [`watch_new_eventfd`](Self::watch_new_eventfd).
    ///
    /// # Errors
    ///
    /// An fd that is not an eventfd is refused, naming it and what it is: a
    /// pipe, socket or file would be read as a counter. (Without procfs the
    /// check is weaker: any file of the kernel's anonymous inode passes,
    /// which is what eventfds, timerfds, signalfds and epoll fds are.) A
    /// failed read is reported as [`EventKind::Failed`](crate::EventKind::Failed).
    pub fn watch_eventfd(&self, fd: OwnedFd, receiver: T) -> Result<WatchId> {
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

    /// Makes an eventfd (close-on-exec and non-blocking from the start, so
    /// nothing needs checking) and watches it as
    /// [`watch_eventfd`](Self::watch_eventfd) does. Returns the watch and
    /// the writer to signal it with, from any thread; the eventfd closes
    /// when the watch has ended and the writer (with its clones) is gone.
    ///
    /// ```
    /// let mut monitor = ctrmon::Monitor::new()?;
    /// let (id, writer) = monitor.watch_new_eventfd("jobs")?;
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
    pub fn watch_new_eventfd(&self, receiver: T) -> Result<(WatchId, EventfdWriter)> {
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
    /// Events: [`EventKind::Memory`](crate::EventKind::Memory), then [`EventKind::Removed`](crate::EventKind::Removed) when the
    /// cgroup is removed (which ends the watch).
    ///
    /// # Errors
    ///
    /// A path that does not exist, has a symlink in it (anywhere: every
    /// component is resolved without following links), is not a cgroup directory,
    /// or lacks the memory controller; a kernel that refuses v1
    /// notifications (`EOPNOTSUPP`). Each names the path.
    pub fn watch_cgroup_oom(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            Ok(Source::cold(match dir.version() {
                CgroupVersion::V1 => Cold::OomV1(Box::new(source::oom_v1::OomV1Watch::arm(dir)?)),
                CgroupVersion::V2 => {
                    Cold::MemoryEvents(Box::new(source::memory_events::MemoryEventsWatch::open(
                        dir,
                        source::memory_events::FILE,
                    )?))
                }
            }))
        })
    }

    /// Like [`watch_cgroup_oom`](Self::watch_cgroup_oom) on a v2 cgroup, but
    /// from `memory.events.local` (Linux 5.2+): the cgroup's own counters,
    /// without its descendants'. `oom` then rises only in the cgroup whose
    /// limit was hit, and `oom_kill` only in the cgroup the victim was in,
    /// which tells a kill caused by the cgroup's own limit (`oom` and
    /// `oom_kill` both rise) from one caused by an ancestor's limit (only
    /// `oom_kill` rises here, and only `oom` in that ancestor's file).
    ///
    /// Events: [`EventKind::Memory`](crate::EventKind::Memory), then
    /// [`EventKind::Removed`](crate::EventKind::Removed). Usable with
    /// [`watch_pid_in`](Self::watch_pid_in) like the hierarchical watch.
    ///
    /// # Errors
    ///
    /// As [`watch_cgroup_oom`](Self::watch_cgroup_oom); a v1 cgroup, or a
    /// kernel without the file, is refused with an error naming the path.
    pub fn watch_cgroup_oom_local(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            only_on_v2(dir, "memory.events.local")?;
            Ok(Source::cold(Cold::MemoryEvents(Box::new(
                source::memory_events::MemoryEventsWatch::open(
                    dir,
                    source::memory_events::FILE_LOCAL,
                )?,
            ))))
        })
    }

    /// Watches a v2 memory cgroup's swap counters (`memory.swap.events`:
    /// `high`, `max`, `fail`), polled in the same epoll as `memory.events`:
    /// [`EventKind::Swap`](crate::EventKind::Swap) with the increase of each
    /// counter since the last report, then
    /// [`EventKind::Removed`](crate::EventKind::Removed) when the cgroup is
    /// removed.
    ///
    /// # Errors
    ///
    /// As [`watch_cgroup_oom`](Self::watch_cgroup_oom); a v1 cgroup, or a
    /// kernel without swap accounting, is refused with an error naming the
    /// path.
    pub fn watch_cgroup_swap(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            only_on_v2(dir, "memory.swap.events")?;
            let w = source::swap_events::SwapEventsWatch::open(dir)?;
            Ok(Source::cold(Cold::Swap(w)))
        })
    }

    /// [`watch_cgroup_oom`](Self::watch_cgroup_oom) on the memory cgroup of
    /// process `pid`, found with
    /// [`cgroup::memory_cgroup_of`](crate::cgroup::memory_cgroup_of).
    pub fn watch_cgroup_oom_of(&self, pid: i32, receiver: T) -> Result<WatchId> {
        let cg = crate::cgroup::memory_cgroup_of(Some(pid))?;
        self.watch_cgroup_oom(&cg.path, receiver)
    }

    /// Watches a cgroup v2 directory's `populated` flag (`cgroup.events`):
    /// [`EventKind::Populated`](crate::EventKind::Populated) on each change, [`EventKind::Removed`](crate::EventKind::Removed) when
    /// it is removed.
    pub fn watch_populated(&self, dir: impl AsRef<Path>, receiver: T) -> Result<WatchId> {
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            let w = source::populated::PopulatedWatch::open(dir)?;
            Ok(Source::cold(Cold::Populated(w)))
        })
    }

    /// Watches a cgroup v1 memory directory for pressure at `level`
    /// (`memory.pressure_level`): [`EventKind::Pressure`](crate::EventKind::Pressure), many per episode.
    pub fn watch_pressure_level(
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

    /// Watches a cgroup v1 memory directory's usage crossing `bytes`, up or
    /// down (`memory.usage_in_bytes`, or `memory.memsw.usage_in_bytes` with
    /// `with_swap`): [`EventKind::Threshold`](crate::EventKind::Threshold). The side is tracked from the
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
        self.add_in_cgroup(dir.as_ref(), receiver, |dir| {
            let w = source::threshold_v1::ThresholdWatch::arm(dir, bytes, with_swap)?;
            Ok(Source::cold(Cold::Threshold(w)))
        })
    }

    /// Arms a PSI trigger on `file` (a cgroup's `cpu|memory|io.pressure`, or
    /// `/proc/pressure/*`): [`EventKind::Psi`](crate::EventKind::Psi) each time it fires,
    /// [`EventKind::Removed`](crate::EventKind::Removed) if its cgroup is removed. Without
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
            Source::cold(Cold::Psi(w)),
            receiver,
            Subject::Path(file.to_path_buf()),
        )
    }

    /// Reaps every child of this process that nobody watches — orphans
    /// re-parented to it as a subreaper
    /// ([`become_subreaper`](crate::reaper::become_subreaper)) or PID 1 —
    /// and reports each as an [`EventKind::Orphan`](crate::EventKind::Orphan)
    /// (pid, code or signal) on the watch this returns, which lasts until
    /// `unwatch`. A watched child is never taken: its watch reaps it and
    /// reports its real status. See [`crate::reaper`] for how, and for what
    /// the caller must do:
    ///
    /// - block SIGCHLD in the main thread before any other thread starts
    ///   ([`block_sigchld`](crate::reaper::block_sigchld)); this fails,
    ///   naming the thread, if one has it unblocked;
    /// - spawn and watch each child under a [`hold_orphans`](Self::hold_orphans)
    ///   (else a child that exits before it is watched is reaped as an
    ///   orphan, and `watch_pid` fails: the process is gone);
    /// - not mix this with another reaper of children in the process, such
    ///   as tokio's process driver (conmon-rs #80).
    ///
    /// A child watched with
    /// [`watch_pid_without_reaping`](Self::watch_pid_without_reaping) is
    /// left alone only until its exit is delivered; reap it under a hold.
    ///
    /// # Errors
    ///
    /// A thread with SIGCHLD unblocked; orphan reaping already on.
    pub fn reap_orphans(&self, receiver: T) -> Result<WatchId> {
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

    /// Holds orphan reaping off until the [`Hold`](crate::reaper::Hold) is
    /// dropped: spawn a child and watch it under one, so that a child that
    /// exits at once is not reaped as an orphan before its watch exists.
    /// Cheap (an atomic count); harmless when orphan reaping is off.
    ///
    /// ```no_run
    /// # let monitor = ctrmon::Monitor::new()?;
    /// let hold = monitor.hold_orphans();
    /// let child = std::process::Command::new("my-init").spawn()?;
    /// monitor.watch_pid(child.id() as i32, "init")?;
    /// drop(hold);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hold_orphans(&self) -> crate::reaper::Hold {
        self.core.holds.hold()
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
