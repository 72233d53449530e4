//! Preparing a child process: what it does between `fork` and `exec`.
//!
//! A supervisor wants its command inside the command's cgroup from its
//! first instruction (not moved there after it has started threads or
//! children), killed if the supervisor dies, with the signals the supervisor
//! blocks for its signalfd unblocked again, and without the supervisor's
//! inherited file descriptors. The standard library's only hook for this is
//! `pre_exec`, which is unsafe; [`ChildSetup`] is a safe way to use it.
//!
//! ```no_run
//! use std::process::Command;
//! use ctrmon::signal::{Signal, SignalSet};
//! use ctrmon::spawn::ChildSetup;
//!
//! let set = SignalSet::new(&[Signal::INT, Signal::TERM])?;
//! let mut cmd = Command::new("sleep");
//! cmd.arg("1");
//! ChildSetup::new()
//!     .join_cgroup("/sys/fs/cgroup/memory/mine")?
//!     .die_with_parent()
//!     .unblock(&set)
//!     .close_inherited_fds()
//!     .apply(&mut cmd);
//! let child = cmd.spawn()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::process::{getpid, getppid, set_parent_process_death_signal, Pid, Signal};

use crate::signal::SignalSet;
use crate::sys::{self, SigSet};
use crate::{Error, Result, Subject};

mod cloexec;
pub use cloexec::CloexecMethod;

/// What a child does between `fork` and `exec`, in this order: join a
/// cgroup, arrange to die with its parent, unblock signals, mark inherited
/// fds close-on-exec. Any step that fails fails the spawn with its errno.
#[derive(Default)]
pub struct ChildSetup {
    cgroup_procs: Option<CString>,
    parent: Option<Pid>,
    unblock: Option<SigSet>,
    cloexec: Option<CloexecMethod>,
}

impl ChildSetup {
    /// A setup that does nothing yet.
    pub fn new() -> ChildSetup {
        ChildSetup::default()
    }

    /// The child writes its pid to `dir/cgroup.procs` (v1 or v2): it and
    /// everything it starts run in that cgroup from the first instruction,
    /// and the parent never joins it.
    pub fn join_cgroup(mut self, dir: impl AsRef<Path>) -> Result<ChildSetup> {
        let procs = dir.as_ref().join("cgroup.procs");
        // Built before the fork: the child may not allocate.
        let c = CString::new(procs.as_os_str().as_bytes()).map_err(|_| {
            Error::invalid(
                "join cgroup",
                Subject::Path(procs.clone()),
                "a NUL byte in the path",
            )
        })?;
        self.cgroup_procs = Some(c);
        Ok(self)
    }

    /// The child gets SIGKILL when the thread that spawns it ends
    /// (`PR_SET_PDEATHSIG`), so that it cannot outlive a supervisor that was
    /// killed. The kernel ties this to the spawning *thread*: spawn from a
    /// thread that lives as long as the supervisor (its main thread). If the
    /// parent died between `fork` and the `prctl`, the child sees another
    /// parent and fails the spawn instead of running unsupervised.
    pub fn die_with_parent(mut self) -> ChildSetup {
        self.parent = Some(getpid());
        self
    }

    /// The child unblocks `set` (blocked in the parent for its signalfd and
    /// inherited through `fork`), so the command gets default signal
    /// handling.
    pub fn unblock(mut self, set: &SignalSet) -> ChildSetup {
        self.unblock = Some(set.0);
        self
    }

    /// Every fd above 2 that the child inherited is made close-on-exec, so
    /// the command gets only its standard streams and what `Command` itself
    /// sets up, as `sudo` does, whatever the caller of the supervisor left
    /// open. Nothing is closed before the `exec`.
    ///
    /// `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` where the kernel takes the
    /// flag (Linux 5.11+); elsewhere (5.10, before 5.9, or a seccomp filter
    /// that refuses it) the child walks its `/proc/self/fd` instead
    /// ([`CloexecMethod`], chosen here with [`CloexecMethod::detect`]). If
    /// neither works (no `/proc` either), the spawn fails with the errno of
    /// opening `/proc/self/fd`: call [`CloexecMethod::detect`] first for an
    /// error that says why.
    pub fn close_inherited_fds(self) -> ChildSetup {
        let method = CloexecMethod::detect().unwrap_or(CloexecMethod::ProcSelfFd);
        self.close_inherited_fds_via(method)
    }

    /// [`close_inherited_fds`](Self::close_inherited_fds) with the given
    /// method: [`CloexecMethod::ProcSelfFd`] works on every kernel with
    /// `/proc`; [`CloexecMethod::CloseRange`] still falls back to it if the
    /// child finds the flag refused.
    pub fn close_inherited_fds_via(mut self, method: CloexecMethod) -> ChildSetup {
        self.cloexec = Some(method);
        self
    }

    /// How inherited fds will be made close-on-exec (`None`: they are
    /// left alone): what a caller names when the spawn fails.
    pub fn cloexec_method(&self) -> Option<CloexecMethod> {
        self.cloexec
    }

    /// Installs the setup on `cmd` (as a `pre_exec` hook).
    pub fn apply(self, cmd: &mut std::process::Command) {
        sys::before_exec(cmd, self);
    }

    /// Runs in the forked child: async-signal-safe only. Raw syscalls, stack
    /// buffers, no lock, no allocation (errors come from raw errnos).
    pub(crate) fn in_child(&self) -> io::Result<()> {
        if let Some(procs) = &self.cgroup_procs {
            let mut digits = [0u8; 12];
            let mut n = getpid().as_raw_nonzero().get() as u32;
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let fd = rustix::fs::open(
                procs.as_c_str(),
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let written = rustix::io::write(&fd, &digits[at..])?;
            if written != digits.len() - at {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        if let Some(parent) = self.parent {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the prctl: then nothing will
            // ever send the signal, and we were re-parented.
            if getppid() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        if let Some(set) = &self.unblock {
            sys::sigmask(libc::SIG_UNBLOCK, set)?;
        }
        if let Some(method) = self.cloexec {
            cloexec::in_child(method, 3)?;
        }
        Ok(())
    }
}
