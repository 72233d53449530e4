//! Being a subreaper or PID 1: reaping every orphan without ever taking a
//! watched child's exit status.
//!
//! A process that is PID 1 of a container, or a shim that sets
//! [`become_subreaper`], inherits every orphan below it: processes whose
//! parent exited before them. Each must be reaped or it stays a zombie. The
//! usual `waitpid(-1, WNOHANG)` loop does that, but it reaps *any* exited
//! child, also one whose status the program is waiting for elsewhere (a
//! pidfd watch, `Child::wait`): that watcher then gets `ECHILD` and the real
//! status is lost. That race is how PikoCI gave up on in-process reaping
//! (PikoCI #681), how zombies pile up under conmon-rs (crun #1482), and how
//! containerd's shim reaper drops exits (containerd #8557, #13544).
//!
//! [`OrphanReaper`] reaps by pid, and only pids nobody owns. Use it on its
//! own beside any loop, or let the monitor run it
//! ([`Orphans`](crate::watch::Orphans), which counts
//! its watched pids for `keep` and reports each orphan as an event):
//!
//! 1. **SIGCHLD as an fd.** The signal is blocked in every thread and read
//!    from a signalfd in the same loop as everything else. Signals coalesce,
//!    so one SIGCHLD may stand for many exits: each one starts a full scan.
//!    A zombie that is re-parented to us also raises SIGCHLD here.
//! 2. **Which children exist**, from `/proc/self/task/*/children` (every
//!    thread's: a child belongs to the thread that forked it). Not from
//!    `waitid(P_ALL, …, WNOWAIT)`: that returns the *same* first exited
//!    child every time, so one watched zombie would hide every orphan behind
//!    it. (`P_ALL` is still asked once, to skip the scan when no child has
//!    exited at all.)
//! 3. **Whose they are.** A child for which the caller's `keep(pid)` says so
//!    (a watched child, one the caller waits for itself) is left alone: its
//!    watch reaps it through its pidfd and reports the real status. Every
//!    other child is reaped with `waitid(P_PID, pid, WEXITED | WNOHANG)`,
//!    which does nothing to a child still running. A pid in the list is our
//!    child until *we* reap it, so the number cannot be reused under us.
//! 4. **The window between spawn and watch.** `spawn` has returned, the
//!    child has already exited, `watch` has not been called: its pid is in
//!    the list and in no table. Here the reaper cannot know better, so the
//!    caller tells it: spawn and watch under a [`Hold`]. While any hold is
//!    alive a scan reaps nothing; the scan reads the holds *after* reading
//!    the children list, so a child in that list that was spawned under a
//!    hold is either still held, or was watched before its hold ended (and
//!    `keep` says so). Dropping the last hold after a scan was put off
//!    raises SIGCHLD, so what the scan left is looked at again. Holds are
//!    short (a fork and a `pidfd_open`); a rule keyed on pids instead (a
//!    reservation per pid) cannot work, because the pid is unknown until
//!    the fork has happened, and neither can "reap only children we did not
//!    fork": the kernel does not say who forked a child.
//! 5. **One reaper at a time.** The scan assumes no other thread reaps a
//!    child while it runs (the kernel's children list can skip an entry when
//!    one is reaped mid-read). The monitor reaps its watched children in the
//!    same loop, never during a scan.
//!
//! # What the caller must do
//!
//! - Call [`block_sigchld`] in the main thread **before any other thread
//!   starts** (threads inherit the mask). A thread with SIGCHLD unblocked
//!   takes the signal instead of the signalfd, with the default action
//!   (discard): orphans then stay zombies until some later SIGCHLD happens
//!   to be read. [`OrphanReaper::new`] refuses to start if a thread has it
//!   unblocked; a thread started later that unblocks it is not noticed.
//!   Children inherit the mask too: unblock it in them before `exec`
//!   ([`ChildSetup::unblock`](crate::spawn::ChildSetup::unblock)).
//! - Spawn and watch each child under a [`Hold`], and have `keep` say yes
//!   for it until its watch has reaped it. A child nobody watches (or one
//!   whose watch was dropped) is an orphan like any other: reaped, and its
//!   status reported as an [`Orphan`].
//! - Run a command that someone waits for itself (`Command::output`, a
//!   library that forks) under a [`Hold`] as well, or its `wait` fails with
//!   `ECHILD`.
//! - Do not mix this with a runtime that reaps children through its own
//!   SIGCHLD handler, such as tokio's process driver: with SIGCHLD blocked
//!   its handler never runs (its `Child::wait` hangs), and the two reapers
//!   would take each other's children. conmon-rs hit this (conmon-rs #80).
//!   Use one reaper per process.

mod orphans;
pub mod proc;

pub use orphans::{Hold, Holder, Orphan, OrphanReaper};

use rustix::process::{getpid, set_child_subreaper, Signal};

use crate::signal::{block, SignalSet};
use crate::{Error, Result, Subject};

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans
/// among its descendants are re-parented to it instead of to PID 1, and so
/// must be reaped by it ([`OrphanReaper`]). The setting is not inherited by
/// children.
pub fn become_subreaper() -> Result<()> {
    set_child_subreaper(Some(getpid()))
        .map_err(|e| Error::os("become a subreaper", Subject::None, e))
}

/// Blocks SIGCHLD in the calling thread, and so in every thread it starts
/// from now on. Call it in the main thread before any other thread starts
/// (see the [module docs](self) for why and what happens otherwise).
/// Returns the set, for children to unblock before `exec`
/// ([`ChildSetup::unblock`](crate::spawn::ChildSetup::unblock)).
pub fn block_sigchld() -> Result<SignalSet> {
    let set = SignalSet::new(&[Signal::CHILD])?;
    block(&set)?;
    Ok(set)
}
