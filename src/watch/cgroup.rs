//! Cgroup sources: OOM counters (v1 and v2), v2 swap and `populated`, v1
//! pressure levels and usage thresholds, PSI triggers.

use std::path::{Path, PathBuf};

use super::{on, sealed, watchable, Watchable};
use crate::cgroup::parse::{memory_events, oom_control};
use crate::cgroup::CgroupVersion;
use crate::source::cgroupfs::CgroupDir;
use crate::{Error, MemoryEvents, PressureLevel, PressureMode, PsiTrigger, Result, WatchId};

/// A memory cgroup, watched for OOM, whatever its version: the directory's
/// filesystem type (`fstatfs`) decides, and anything that is not a cgroup
/// filesystem is refused before anything is written.
///
/// - v1: an eventfd registered on `memory.oom_control` through
///   `cgroup.event_control` (one fd per watch). A notification is believed
///   only if the cgroup still exists; the event reports the rise of
///   `oom_kill`, waiting a few milliseconds for the kill to be counted (the
///   notification precedes it).
/// - v2: `memory.events` (or, [`local`](Self::local), `memory.events.local`),
///   polled in the same epoll; the event reports the increase of each
///   counter (`oom`, `oom_kill`, `oom_group_kill`, `max`, `high`, `low`)
///   since the last report.
///
/// Events: [`EventKind::Memory`](crate::EventKind::Memory), then
/// [`EventKind::Removed`](crate::EventKind::Removed) when the cgroup is
/// removed (which ends the watch). `watch` returns a [`CgroupWatch`]: the
/// watch's id, the directory, and its counters on demand. Link the
/// cgroup's processes to it ([`Process::oom_watch`](super::Process::oom_watch))
/// so that their OOM comes before their exit.
///
/// ```no_run
/// use ctrmon::watch::{CgroupOom, Process};
///
/// let monitor = ctrmon::Monitor::new()?;
/// # let init = 1;
/// // A runtime's init, adopted by this subreaper: its memory cgroup, from
/// // /proc/<pid>/cgroup and mountinfo, counted from the cgroup's creation.
/// let cgroup = monitor.watch(CgroupOom::of(init).from_zero(), "cgroup")?;
/// monitor.watch(Process::pid(init).oom_watch(&cgroup), "init")?;
/// println!("{}: {:?}", cgroup.dir().display(), cgroup.counters()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A path that does not exist, has a symlink in it (anywhere: every
/// component is resolved without following links), is not a cgroup
/// directory, or lacks the memory controller; a kernel that refuses v1
/// notifications (`EOPNOTSUPP`); with [`local`](Self::local), a v1 cgroup or
/// a kernel without the file. Each names the path. With [`of`](Self::of),
/// what [`memory_cgroup_of`](crate::cgroup::memory_cgroup_of) fails with
/// (on v1 an exiting process shows the root cgroup, so a zombie's cgroup
/// cannot be told: watch the directory the runtime made, such as the
/// bundle's `cgroupsPath`, with [`dir`](Self::dir)).
#[derive(Debug, Clone)]
pub struct CgroupOom {
    at: At,
    local: bool,
    from_zero: bool,
}

#[derive(Debug, Clone)]
enum At {
    Dir(PathBuf),
    Pid(i32),
}

impl CgroupOom {
    /// The cgroup directory `dir` (under the memory controller's mount on
    /// v1, e.g. `/sys/fs/cgroup/memory/…`; under the unified mount on v2).
    pub fn dir(dir: impl AsRef<Path>) -> Self {
        CgroupOom {
            at: At::Dir(dir.as_ref().to_path_buf()),
            local: false,
            from_zero: false,
        }
    }

    /// The memory cgroup of process `pid` now, found with
    /// [`memory_cgroup_of`](crate::cgroup::memory_cgroup_of).
    pub fn of(pid: i32) -> Self {
        CgroupOom {
            at: At::Pid(pid),
            local: false,
            from_zero: false,
        }
    }

    /// v2 only: `memory.events.local` (Linux 5.2+), the cgroup's own
    /// counters, without its descendants'. `oom` then rises only in the
    /// cgroup whose limit was hit, and `oom_kill` only in the cgroup the
    /// victim was in, which tells a kill caused by the cgroup's own limit
    /// (`oom` and `oom_kill` both rise) from one caused by an ancestor's
    /// (only `oom_kill` rises here, and only `oom` in that ancestor's file).
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Counts from zero, not from the counters when the watch is made: what
    /// the cgroup counted since it was created is reported at the first
    /// look (its next notification, or the exit of a process linked to it,
    /// which comes after that report). For a watch made after the container
    /// started, so that an OOM that happened before the watch still comes
    /// before the exit and marks it. Not for a cgroup that outlives the
    /// containers it held, whose old kills would be reported again.
    pub fn from_zero(mut self) -> Self {
        self.from_zero = true;
        self
    }
}

impl sealed::Sealed for CgroupOom {}
impl Watchable for CgroupOom {
    type Output = CgroupWatch;
    fn add_to<T>(self, on: sealed::On<'_, '_, T>, receiver: T) -> Result<CgroupWatch> {
        let dir = match self.at {
            At::Dir(dir) => dir,
            At::Pid(pid) => crate::cgroup::memory_cgroup_of(Some(pid))?.path,
        };
        let id = on!(on, |m| m.add_cgroup_oom(
            &dir,
            self.local,
            self.from_zero,
            receiver
        ))?;
        Ok(CgroupWatch {
            id,
            dir,
            local: self.local,
        })
    }
}

/// A [`CgroupOom`] watch: its id, the directory it watches (as given, or as
/// found from the process), and the cgroup's counters on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupWatch {
    id: WatchId,
    dir: PathBuf,
    local: bool,
}

impl CgroupWatch {
    /// The watch, for [`unwatch`](crate::Monitor::unwatch),
    /// [`Process::oom_watch`](super::Process::oom_watch) and to tell its
    /// events.
    pub fn id(&self) -> WatchId {
        self.id
    }

    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup's counters now, read from the directory (not from the
    /// watch: what it reports is the rise since its baseline). On v2, all
    /// of `memory.events` (or `memory.events.local`); on v1, `oom_kill` from
    /// `memory.oom_control` (Linux 4.13+), the other fields 0: v1 counts no
    /// OOM situations.
    ///
    /// # Errors
    ///
    /// The cgroup was removed (`NotFound`, naming the directory), or a file
    /// could not be read or parsed, naming it.
    pub fn counters(&self) -> Result<MemoryEvents> {
        let dir = CgroupDir::open(&self.dir)?;
        let mut buf = [0u8; 512];
        match dir.version() {
            CgroupVersion::V2 => {
                let file = if self.local {
                    "memory.events.local"
                } else {
                    "memory.events"
                };
                let text = dir.read_file(file, &mut buf)?;
                memory_events::parse(text).map_err(|e| invalid(&self.dir, file, e))
            }
            CgroupVersion::V1 => {
                let file = "memory.oom_control";
                let text = dir.read_file(file, &mut buf)?;
                let parsed = oom_control::parse(text).map_err(|e| invalid(&self.dir, file, e))?;
                Ok(MemoryEvents {
                    oom_kill: parsed.oom_kill.unwrap_or(0),
                    ..MemoryEvents::default()
                })
            }
        }
    }
}

impl From<CgroupWatch> for WatchId {
    fn from(w: CgroupWatch) -> WatchId {
        w.id
    }
}

impl From<&CgroupWatch> for WatchId {
    fn from(w: &CgroupWatch) -> WatchId {
        w.id
    }
}

impl PartialEq<WatchId> for CgroupWatch {
    fn eq(&self, id: &WatchId) -> bool {
        self.id == *id
    }
}

impl PartialEq<CgroupWatch> for WatchId {
    fn eq(&self, w: &CgroupWatch) -> bool {
        *self == w.id
    }
}

#[cold]
fn invalid(dir: &Path, file: &str, e: impl std::fmt::Display) -> Error {
    Error::path(
        "parse",
        &dir.join(file),
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    )
}

/// A v2 memory cgroup's swap counters (`memory.swap.events`: `high`, `max`,
/// `fail`), polled in the same epoll as `memory.events`:
/// [`EventKind::Swap`](crate::EventKind::Swap) with the increase of each
/// counter since the last report, then
/// [`EventKind::Removed`](crate::EventKind::Removed) when the cgroup is
/// removed.
///
/// # Errors
///
/// As [`CgroupOom`]; a v1 cgroup, or a kernel without swap accounting, is
/// refused with an error naming the path.
#[derive(Debug, Clone)]
pub struct CgroupSwap(PathBuf);

impl CgroupSwap {
    /// The v2 cgroup directory `dir`.
    pub fn dir(dir: impl AsRef<Path>) -> Self {
        CgroupSwap(dir.as_ref().to_path_buf())
    }
}

watchable!(CgroupSwap => WatchId, |k, m, receiver| m.watch_cgroup_swap(&k.0, receiver));

/// A cgroup v2 directory's `populated` flag (`cgroup.events`):
/// [`EventKind::Populated`](crate::EventKind::Populated) on each change,
/// [`EventKind::Removed`](crate::EventKind::Removed) when it is removed. A
/// `populated: false` that the OOM kill of a watched cgroup's last process
/// caused comes after that OOM's report.
#[derive(Debug, Clone)]
pub struct Populated(PathBuf);

impl Populated {
    /// The v2 cgroup directory `dir`.
    pub fn dir(dir: impl AsRef<Path>) -> Self {
        Populated(dir.as_ref().to_path_buf())
    }
}

watchable!(Populated => WatchId, |k, m, receiver| m.watch_populated(&k.0, receiver));

/// A cgroup v1 memory directory's pressure at a level
/// (`memory.pressure_level`): [`EventKind::Pressure`](crate::EventKind::Pressure),
/// many per episode.
#[derive(Debug, Clone)]
pub struct MemoryPressure {
    dir: PathBuf,
    level: PressureLevel,
    mode: PressureMode,
}

impl MemoryPressure {
    /// Pressure at `level` in the v1 memory cgroup `dir`, in the kernel's
    /// default mode.
    pub fn new(dir: impl AsRef<Path>, level: PressureLevel) -> Self {
        MemoryPressure {
            dir: dir.as_ref().to_path_buf(),
            level,
            mode: PressureMode::Default,
        }
    }

    /// Whose events: see [`PressureMode`].
    pub fn mode(mut self, mode: PressureMode) -> Self {
        self.mode = mode;
        self
    }
}

watchable!(MemoryPressure => WatchId, |k, m, receiver| m.watch_pressure_level(
    &k.dir, k.level, k.mode, receiver
));

/// A cgroup v1 memory directory's usage crossing a size, up or down
/// (`memory.usage_in_bytes`, or with [`with_swap`](Self::with_swap)
/// `memory.memsw.usage_in_bytes`):
/// [`EventKind::Threshold`](crate::EventKind::Threshold). The side is
/// tracked from the kernel's count of crossings, which alternate, starting
/// from the usage read right after registering; a crossing in that instant
/// would invert every side reported after it.
#[derive(Debug, Clone)]
pub struct UsageThreshold {
    dir: PathBuf,
    bytes: u64,
    with_swap: bool,
}

impl UsageThreshold {
    /// Usage of the v1 memory cgroup `dir` crossing `bytes`.
    pub fn new(dir: impl AsRef<Path>, bytes: u64) -> Self {
        UsageThreshold {
            dir: dir.as_ref().to_path_buf(),
            bytes,
            with_swap: false,
        }
    }

    /// Memory and swap together (`memory.memsw.usage_in_bytes`).
    pub fn with_swap(mut self) -> Self {
        self.with_swap = true;
        self
    }
}

watchable!(UsageThreshold => WatchId, |k, m, receiver| m.watch_usage_threshold(
    &k.dir,
    k.bytes,
    k.with_swap,
    receiver
));

/// A PSI trigger on a pressure file (a cgroup's `cpu|memory|io.pressure`,
/// or `/proc/pressure/*`): [`EventKind::Psi`](crate::EventKind::Psi) each
/// time it fires, [`EventKind::Removed`](crate::EventKind::Removed) if its
/// cgroup is removed. Without `CAP_SYS_RESOURCE` the kernel wants a window
/// that is a multiple of 2 s; its refusal is an error that says so.
#[derive(Debug, Clone)]
pub struct Psi {
    file: PathBuf,
    trigger: PsiTrigger,
}

impl Psi {
    /// `trigger` on `file`.
    pub fn new(file: impl AsRef<Path>, trigger: PsiTrigger) -> Self {
        Psi {
            file: file.as_ref().to_path_buf(),
            trigger,
        }
    }
}

watchable!(Psi => WatchId, |k, m, receiver| m.watch_psi(&k.file, &k.trigger, receiver));
