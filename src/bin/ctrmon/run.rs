//! `ctrmon run`: a command in a fresh memory cgroup, watched for OOM and exit.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ctrmon::cgroup::CgroupVersion;
use ctrmon::signal::SignalFd;
use ctrmon::spawn::ChildSetup;
use ctrmon::{EventKind, Monitor};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::args::Run;
use crate::report::{self, Target};
use crate::{events_out, fail, signals, Failure};

pub fn run(opts: Run) -> Result<u8, Failure> {
    // Before any thread exists, so that every thread inherits the block.
    let (sigset, sigfd) = signals::block(&signals::FORWARDED)?;
    let mut out = events_out(&opts.events, Box::new(std::io::stderr()))?;

    let placement = crate::placement::place(opts.cgroup_parent.as_deref())?;
    let version = placement.version;
    let cg = CreatedCgroup::new(&placement.parent)?;
    if let Some(bytes) = opts.memory {
        let file = match version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        cg.write(file, &bytes.to_string())?;
    }

    let monitor: Monitor<u32> = Monitor::new()?;
    let cg_watch = monitor.watch_cgroup_oom(&cg.path, 0)?;

    let mut cmd = Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..]);
    let mut setup = ChildSetup::new()
        .join_cgroup(&cg.path)?
        .die_with_parent()
        .unblock(&sigset);
    if !opts.keep_fds {
        setup = setup.close_inherited_fds();
    }
    setup.apply(&mut cmd);
    let child = cmd.spawn().or_else(|e| {
        fail(
            format_args!("start {:?} in {}", opts.command[0], cg.path.display()),
            e,
        )
    })?;
    let pid = child.id() as i32;
    // Our own handle on the child for forwarding signals: unlike its pid, it
    // can never name another process, even after the child is reaped.
    let pidfd: Arc<OwnedFd> = Arc::new(
        pidfd_open(Pid::from_child(&child), PidfdFlags::empty())
            .or_else(|e| fail(format_args!("open pidfd for pid {pid}"), e))?,
    );
    let targets = [
        Target::Cgroup(cg.path.display().to_string()),
        Target::Pid(pid),
    ];
    monitor.watch_pid_in(pid, cg_watch, 1)?;
    forward_signals(sigfd, pidfd);

    crate::json::Line::new("start")
        .num("pid", pid)
        .str("cgroup", &cg.path.display().to_string())
        .emit(&mut out)
        .or_else(|e| fail("write event", e))?;

    let mut status = None;
    while status.is_none() {
        let mut write_err = None;
        monitor.wait(None, |event| {
            if let Err(e) = report::write(&mut out, &targets, &event) {
                write_err.get_or_insert(e);
            }
            // The command's watch ends with its exit, or, if reaping it
            // failed, with an error: either way the run is over.
            if event.receiver == 1 && event.is_final() {
                status = Some(match event.kind {
                    EventKind::Exited(x) => x.status.shell_code().unwrap_or(1),
                    _ => 1,
                });
            }
        })?;
        if let Some(e) = write_err {
            return fail("write event", e);
        }
    }
    drop(monitor);
    out.flush().ok();
    cg.remove()?;
    // Exit statuses are 0..=255; a shell code beyond that cannot happen.
    Ok(status.unwrap_or(1).clamp(0, 255) as u8)
}

/// Forwards the signals of `signals::FORWARDED` to the child, from a
/// thread of its own.
fn forward_signals(sigfd: SignalFd, child: Arc<OwnedFd>) {
    std::thread::spawn(move || {
        while let Ok(Some(received)) = sigfd.read() {
            // A terminal's signal reached the child already (same process
            // group); forwarding it would deliver it twice.
            if received.from_kernel() {
                continue;
            }
            if let Some(sig) = received.signal() {
                // ESRCH once the child is gone: nothing to forward to.
                let _ = pidfd_send_signal(&*child, sig);
            }
        }
    });
}

/// A cgroup made by `run`: `ctrmon-<pid>-<n>`, removed when done, after
/// whatever the command left running in it is killed.
struct CreatedCgroup {
    path: PathBuf,
    removed: bool,
}

impl CreatedCgroup {
    fn new(parent: &Path) -> Result<CreatedCgroup, Failure> {
        let me = std::process::id();
        for n in 0..1000 {
            let path = parent.join(format!("ctrmon-{me}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(CreatedCgroup {
                        path,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return fail(format_args!("create cgroup {}", path.display()), e),
            }
        }
        fail(
            format_args!("create cgroup in {}", parent.display()),
            "1000 names taken",
        )
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.join(file);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        written.or_else(|e| fail(format_args!("write {value} to {}", path.display()), e))
    }

    fn remove(mut self) -> Result<(), Failure> {
        self.removed = true;
        remove(&self.path)
            .or_else(|e| fail(format_args!("remove cgroup {}", self.path.display()), e))
    }
}

impl Drop for CreatedCgroup {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = remove(&self.path) {
                eprintln!("ctrmon: remove cgroup {}: {e}", self.path.display());
            }
        }
    }
}

/// Kills what is left in the cgroup (the command's own descendants) and
/// removes it, retrying while the dying processes leave.
fn remove(path: &Path) -> std::io::Result<()> {
    let mut result = Ok(());
    let me = std::process::id() as i32;
    for _ in 0..500 {
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        let pids = procs.lines().filter_map(|l| l.trim().parse::<i32>().ok());
        // ctrmon itself never joins the cgroup; never kill it all the same.
        for pid in pids.filter(|&p| p != me) {
            if let Some(fd) =
                Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
            {
                let _ = pidfd_send_signal(&fd, Signal::KILL);
            }
        }
        result = std::fs::remove_dir(path);
        match &result {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => break,
        }
    }
    result
}
