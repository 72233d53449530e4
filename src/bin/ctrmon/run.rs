//! `ctrmon run`: a command in a fresh memory cgroup, watched for OOM and exit.
//!
//! The command must not outlive ctrmon, and a failing log must not cost the
//! command anything:
//! - it gets SIGKILL if ctrmon dies (`PR_SET_PDEATHSIG`), and on every way
//!   out of ctrmon that runs code the whole cgroup is killed and removed
//!   ([`CreatedCgroup`]'s drop); what a SIGKILLed ctrmon leaves, the next
//!   `run` (or `gc`) removes;
//! - the signals a terminal, `timeout` or an init send are passed on to it;
//! - an event that cannot be written is counted and reported once at the
//!   end; ctrmon keeps supervising and exits with the command's status.

use ctrmon::watch::{CgroupOom, CgroupSwap, Process};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ctrmon::cgroup::CgroupVersion;
use ctrmon::reaper::block_sigchld;
use ctrmon::signal::{Signal, SignalFd, SignalSet};
use ctrmon::spawn::{ChildSetup, CloexecMethod};
use ctrmon::{EventKind, ExitMode, Monitor};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags};

use crate::args::Run;
use crate::cgroup_dir::{self, CreatedCgroup};
use crate::json::Line;
use crate::output::{EventSink, Stream};
use crate::procfd::ProcFd;
use crate::report::{self, Target};
use crate::{fail, say, signals, Failure};

pub fn run(opts: Run) -> Result<u8, Failure> {
    // Opened first, non-blocking: a FIFO without a reader is an error now,
    // not a hang with the signals already blocked.
    let mut out = EventSink::open(&opts.events, Stream::Stderr)?;
    // Before any thread exists, so that every thread inherits the block.
    let (sigset, sigfd) = signals::block(&signals::FORWARDED)?;

    let placement = crate::placement::place(opts.cgroup_parent.as_deref())?;
    let version = placement.version;
    if opts.oom_group && version != CgroupVersion::V2 {
        return fail(
            format_args!("--oom-group in {}", placement.parent.display()),
            "memory.oom.group exists only on cgroup v2",
        );
    }
    // What ctrmons killed before they could clean up left behind.
    if let Err(Failure(msg)) = cgroup_dir::gc(&placement.parent) {
        say(msg);
    }
    let cg = CreatedCgroup::new(&placement.parent)?;
    if let Some(bytes) = opts.memory {
        let file = match version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        cg.write(file, &bytes.to_string())?;
    }
    if opts.oom_group {
        cg.write("memory.oom.group", "1")?;
        note_missing_group_counter(&cg.path);
    }

    let monitor: Monitor<u32> = if opts.no_kmsg {
        Monitor::builder().kernel_log(false).build()?
    } else {
        Monitor::new()?
    };
    // Where pidfd_open is refused, the command is watched through SIGCHLD,
    // which must be blocked before any thread starts (the forwarder below).
    let fallback = matches!(monitor.exit_mode(), ExitMode::SigchldFallback { .. });
    let mut unblock = sigset;
    if fallback {
        say(monitor.exit_mode());
        block_sigchld()?;
        let mut both = signals::FORWARDED.to_vec();
        both.push(Signal::CHILD);
        unblock = SignalSet::new(&both)?;
    }
    let cg_watch = monitor.watch(CgroupOom::dir(&cg.path), 0)?.id();
    // Swap events on v2, where swap is accounted (receiver 2).
    if version == CgroupVersion::V2 && cg.path.join("memory.swap.events").exists() {
        monitor.watch(CgroupSwap::dir(&cg.path), 2)?;
    }

    let mut cmd = Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..]);
    let mut setup = ChildSetup::new()
        .join_cgroup(&cg.path)?
        .die_with_parent()
        .unblock(&unblock);
    if !opts.keep_fds {
        // Asked here, so that a kernel (or seccomp filter) that allows
        // neither way is named before the start, not by an errno after it.
        let method = CloexecMethod::detect()
            .or_else(|e| fail(e, "pass --keep-fds to leave inherited fds alone"))?;
        setup = setup.close_inherited_fds_via(method);
    }
    let walk = setup.cloexec_method() == Some(CloexecMethod::ProcSelfFd);
    setup.apply(&mut cmd);
    let child = cmd.spawn().or_else(|e| {
        // The child reports only an errno: say which of its steps differs
        // from the usual one.
        let note = if walk {
            " (close_range(CLOSE_RANGE_CLOEXEC) needs Linux 5.11, so the child marked \
             inherited fds close-on-exec through /proc/self/fd; --keep-fds skips that)"
        } else {
            ""
        };
        fail(
            format_args!("start {:?} in {}", opts.command[0], cg.path.display()),
            format_args!("{e}{note}"),
        )
    })?;
    let pid = child.id() as i32;
    // Our own handle on the child for forwarding signals: unlike its pid, it
    // can never name another process, even after the child is reaped.
    let target = if fallback {
        match ProcFd::open(Pid::from_child(&child)) {
            Some(proc) => Forward::Child(proc),
            None => return fail(format_args!("open /proc/{pid}"), "the command is gone"),
        }
    } else {
        Forward::Pidfd(Arc::new(
            pidfd_open(Pid::from_child(&child), PidfdFlags::empty())
                .or_else(|e| fail(format_args!("open pidfd for pid {pid}"), e))?,
        ))
    };
    let targets = [
        Target::Cgroup(cg.path.clone()),
        Target::Pid(pid),
        Target::Swap(cg.path.clone()),
    ];
    monitor.watch(Process::pid(pid).oom_watch(cg_watch), 1)?;
    forward_signals(sigfd, target);

    // A line that cannot be written is lost, and counted; never a reason to
    // stop supervising.
    let start = Line::new("start").num("pid", pid).path("cgroup", &cg.path);
    let _ = out.write_line(start.finish().as_bytes());

    let mut status = None;
    while status.is_none() {
        monitor.wait(None, |event| {
            if let Some(line) = report::line(&targets, &event) {
                let _ = out.write_line(line.as_bytes());
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
    }
    drop(monitor);
    out.report_losses();
    cg.remove()?;
    // Exit statuses are 0..=255; a shell code beyond that cannot happen.
    Ok(status.unwrap_or(1).clamp(0, 255) as u8)
}

/// Whom forwarded signals go to.
enum Forward {
    Pidfd(Arc<OwnedFd>),
    /// Where pidfds are refused: the child's `/proc/<pid>` directory,
    /// opened before anything could reap it.
    Child(ProcFd),
}

impl Forward {
    fn send(&self, sig: Signal) {
        // ESRCH once the child is gone: nothing to forward to.
        let _ = match self {
            Forward::Pidfd(fd) => pidfd_send_signal(&**fd, sig),
            Forward::Child(proc) => proc.signal(sig),
        };
    }
}

/// Says so when this kernel's `memory.events` in `dir` has no
/// `oom_group_kill` counter (it came in Linux 5.17; `memory.oom.group` in
/// 4.19): the group kill still happens, but the `oom` line can only count
/// it in `oom_kill`, and a reader looking for `oom_group_kill` must know
/// why it is missing.
fn note_missing_group_counter(dir: &Path) {
    let file = dir.join("memory.events");
    let Ok(text) = std::fs::read(&file) else {
        return;
    };
    if !text
        .split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"oom_group_kill "))
    {
        say(format_args!(
            "{}: this kernel has no oom_group_kill counter (Linux 5.17+); \
             a group kill is reported in oom_kill only",
            file.display()
        ));
    }
}

/// Forwards the signals of [`signals::FORWARDED`] to the child, from a
/// thread of its own.
fn forward_signals(sigfd: SignalFd, child: Forward) {
    std::thread::spawn(move || {
        while let Ok(Some(received)) = sigfd.read() {
            // A terminal's signal reached the child already (same process
            // group); forwarding it would deliver it twice.
            if received.from_kernel() {
                continue;
            }
            if let Some(sig) = received.signal() {
                child.send(sig);
            }
        }
    });
}
