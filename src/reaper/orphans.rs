//! The orphan reaper: SIGCHLD through a signalfd, and a scan of this
//! process's children that reaps only those nobody else owns. See the
//! [module docs](super) for why it is race-free.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use arrayvec::ArrayVec;
use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;
use rustix::process::{getpid, kill_process, waitid, Pid, Signal, WaitId, WaitIdOptions};

use super::proc::{parse_children, signal_blocked};
use crate::signal::{SignalFd, SignalSet};
use crate::{Error, ExitStatus, Result, Subject};

const TASKS: &str = "/proc/self/task";

/// A child that was reaped because nobody else owned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Orphan {
    /// Its pid (free for reuse from now on).
    pub pid: i32,
    /// How it ended.
    pub status: ExitStatus,
}

/// Reaps the children of this process that no one else will: orphans
/// re-parented to a subreaper or PID 1, and children nobody watches.
///
/// Readable ([`AsFd`]: a non-blocking signalfd) when a SIGCHLD is pending;
/// then call [`reap`](Self::reap). SIGCHLD must be blocked in every thread
/// ([`block_sigchld`](super::block_sigchld) before any thread starts);
/// [`new`](Self::new) checks the threads there are.
#[derive(Debug)]
pub struct OrphanReaper {
    sigchld: SignalFd,
    /// `/proc/self/task`, read again (from offset 0) on every scan.
    tasks: OwnedFd,
    // Buffers kept from scan to scan: no allocation once they have grown.
    dirents: Vec<MaybeUninit<u8>>,
    text: Vec<u8>,
    pids: Vec<i32>,
    holds: Holder,
}

impl OrphanReaper {
    /// A reaper for this process. Fails, naming the thread, if a thread of
    /// this process has SIGCHLD unblocked: the kernel would hand the signal
    /// to that thread, whose default action discards it, and orphans would
    /// stay zombies.
    pub fn new() -> Result<OrphanReaper> {
        Self::with_holder(Holder::new())
    }

    /// A reaper whose holds are taken through `holds` (made before the
    /// reaper, so that holds can be handed out before it exists).
    pub(crate) fn with_holder(holds: Holder) -> Result<OrphanReaper> {
        let set = SignalSet::new(&[Signal::CHILD])?;
        let tasks = rustix::fs::open(
            TASKS,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::os("open", Subject::Path(TASKS.into()), e))?;
        let mut reaper = OrphanReaper {
            sigchld: SignalFd::new_nonblocking(&set)?,
            tasks,
            dirents: vec![MaybeUninit::uninit(); 4096],
            text: Vec::new(),
            pids: Vec::new(),
            holds,
        };
        reaper.check_every_thread_blocks_sigchld()?;
        Ok(reaper)
    }

    /// Holds the reaper off while you spawn a child and watch it (or wait
    /// for it yourself): until every hold is dropped, [`reap`](Self::reap)
    /// reaps nothing. Dropping the last hold raises SIGCHLD at this process,
    /// so that the reaper looks again at what it left.
    pub fn hold(&self) -> Hold {
        self.holds.hold()
    }

    /// A handle that takes holds from other threads.
    pub fn holder(&self) -> Holder {
        self.holds.clone()
    }

    /// Drains the pending SIGCHLDs and reaps every exited child for which
    /// `keep(pid)` is false, calling `on_orphan` for each; returns how many.
    ///
    /// `keep` must be true for every child whose status belongs to someone
    /// else: each watched child (its watch reaps it and reports its status),
    /// each child the caller waits for itself. It must not reap children
    /// itself, and no other thread may reap a child while `reap` runs (the
    /// monitor reaps its watched children in the same loop, never during a
    /// scan). While a [`Hold`] is alive nothing is reaped.
    pub fn reap(
        &mut self,
        keep: impl FnMut(i32) -> bool,
        on_orphan: impl FnMut(Orphan),
    ) -> Result<usize> {
        self.reap_at_most(usize::MAX, keep, on_orphan)
    }

    /// Like [`reap`](Self::reap), but stops after `max` orphans (for a loop
    /// that delivers events in bounded batches). When it stops early it
    /// raises SIGCHLD again, so the reaper's fd stays readable and the next
    /// call goes on.
    pub fn reap_at_most(
        &mut self,
        max: usize,
        mut keep: impl FnMut(i32) -> bool,
        mut on_orphan: impl FnMut(Orphan),
    ) -> Result<usize> {
        // Drain first: a SIGCHLD that arrives during the scan below stays
        // pending and makes the fd readable again.
        while self.sigchld.read()?.is_some() {}
        // No exited child at all (the usual case after a watched child was
        // reaped through its pidfd): nothing to scan.
        match waitid(
            WaitId::All,
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ) {
            Ok(Some(_)) => {}
            Ok(None) | Err(Errno::CHILD) => return Ok(0),
            Err(e) => return Err(Error::os("look for exited children", Subject::None, e)),
        }
        self.read_children()?;
        // After the list was read: any child in it that was spawned under a
        // hold is either still held (then wait) or was watched before the
        // hold ended (then `keep` says so). `deferred` goes up before the
        // count is read, so a hold dropped meanwhile sees it and raises
        // SIGCHLD (the two SeqCst pairs cannot both miss each other).
        let holds = &self.holds.0;
        holds.deferred.store(true, SeqCst);
        if holds.count.load(SeqCst) > 0 {
            return Ok(0);
        }
        holds.deferred.store(false, SeqCst);
        let mut reaped = 0;
        for &pid in &self.pids {
            if reaped == max {
                let _ = kill_process(getpid(), Signal::CHILD);
                break;
            }
            if keep(pid) {
                continue;
            }
            let Some(id) = Pid::from_raw(pid) else {
                continue;
            };
            match waitid(
                WaitId::Pid(id),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(st)) => {
                    reaped += 1;
                    on_orphan(Orphan {
                        pid,
                        status: ExitStatus::from_waitid(&st),
                    });
                }
                // Still running.
                Ok(None) => {}
                // Reaped by someone else after all (a caller that broke the
                // contract above): nothing for us to report.
                Err(Errno::CHILD) => {}
                Err(e) => return Err(Error::os("reap orphan", Subject::Pid(pid), e)),
            }
        }
        Ok(reaped)
    }

    /// Fills `self.pids` with the children of every thread of this process.
    fn read_children(&mut self) -> Result<()> {
        self.pids.clear();
        let fail = |e| Error::os("read", Subject::Path(TASKS.into()), e);
        rustix::fs::seek(&self.tasks, SeekFrom::Start(0)).map_err(fail)?;
        let mut dir = RawDir::new(&self.tasks, &mut self.dirents);
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(fail)?;
            let Some(path) = children_path(entry.file_name()) else {
                continue; // "." and ".."
            };
            let Ok(path) = CStr::from_bytes_with_nul(&path) else {
                continue;
            };
            let file = match rustix::fs::openat(
                &self.tasks,
                path,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(file) => file,
                // The thread has ended since the directory was read.
                Err(Errno::NOENT | Errno::SRCH) => continue,
                Err(e) => return Err(fail(e)),
            };
            read_all(&file, &mut self.text).map_err(fail)?;
            self.pids.extend(parse_children(&self.text));
        }
        Ok(())
    }

    fn check_every_thread_blocks_sigchld(&mut self) -> Result<()> {
        let fail = |e| Error::os("read", Subject::Path(TASKS.into()), e);
        let mut dir = RawDir::new(&self.tasks, &mut self.dirents);
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name().to_bytes();
            if !name.iter().all(u8::is_ascii_digit) {
                continue;
            }
            let tid = String::from_utf8_lossy(name).into_owned();
            let status = match std::fs::read(format!("{TASKS}/{tid}/status")) {
                Ok(status) => status,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::new(
                        "read",
                        Subject::Path(format!("{TASKS}/{tid}/status").into()),
                        e,
                    ))
                }
            };
            if signal_blocked(&status, Signal::CHILD.as_raw()) == Some(false) {
                return Err(Error::new(
                    "start the orphan reaper",
                    Subject::Value(format!("thread {tid}")),
                    std::io::Error::other(
                        "SIGCHLD is not blocked in this thread, which would take the signal \
                         and discard it; block it (ctrmon::reaper::block_sigchld) in the \
                         main thread before any other thread starts",
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl AsFd for OrphanReaper {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sigchld.as_fd()
    }
}

/// `<tid>/children` as a C string on the stack, or `None` for a name that
/// is not a thread id.
fn children_path(tid: &CStr) -> Option<ArrayVec<u8, 32>> {
    let tid = tid.to_bytes();
    if tid.is_empty() || tid.len() > 16 || !tid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut path = ArrayVec::new();
    path.try_extend_from_slice(tid).ok()?;
    path.try_extend_from_slice(b"/children\0").ok()?;
    Some(path)
}

/// Reads `file` from its start into `buf`, growing it as needed (a
/// `children` file has no size to ask for).
fn read_all(file: &OwnedFd, buf: &mut Vec<u8>) -> rustix::io::Result<()> {
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        match rustix::io::read(file, &mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(());
            }
            Ok(n) => buf.truncate(len + n),
            Err(Errno::INTR) => buf.truncate(len),
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Holds {
    count: AtomicUsize,
    /// A scan saw holds and left children for later.
    deferred: AtomicBool,
}

/// Takes [`Hold`]s on an [`OrphanReaper`] from any thread.
#[derive(Debug, Clone)]
pub struct Holder(Arc<Holds>);

impl Holder {
    pub(crate) fn new() -> Holder {
        Holder(Arc::new(Holds::default()))
    }

    /// See [`OrphanReaper::hold`].
    pub fn hold(&self) -> Hold {
        self.0.count.fetch_add(1, SeqCst);
        Hold(self.0.clone())
    }
}

/// While alive, the [`OrphanReaper`] reaps nothing: spawn and watch under
/// one, so that a child that exits before it is watched is not taken for
/// an orphan. It may move to another thread.
#[derive(Debug)]
#[must_use = "the reaper is held off only while the Hold is alive"]
pub struct Hold(Arc<Holds>);

impl Drop for Hold {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, SeqCst) == 1 && self.0.deferred.swap(false, SeqCst) {
            // A scan left children for later: make the reaper look again.
            // SIGCHLD is what it waits for; its only effect is a scan.
            let _ = kill_process(getpid(), Signal::CHILD);
        }
    }
}
