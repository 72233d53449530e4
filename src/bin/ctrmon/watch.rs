//! `ctrmon watch`: existing processes, cgroups and PSI triggers.
//!
//! It ends when everything that can end has ended, on SIGINT/SIGTERM, or at
//! once when its output goes away: the output fd (a duplicate) is watched
//! for a hang-up in the same loop, so `ctrmon watch … | head -1` ends when
//! `head` does, not at the next event.

use ctrmon::watch::{CgroupOom, CgroupSwap, Hangup, Populated, Process, Psi};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use ctrmon::cgroup::{cgroup_version, memory_cgroup_of, CgroupVersion};
use ctrmon::Monitor;

use crate::args::Watch;
use crate::output::{EventSink, Stream};
use crate::report::{self, Target};
use crate::{fail, say, signals, Failure};

mod link;
mod pidfds;
use link::OomWatches;

/// The status when the output was closed: 128 + SIGPIPE, what a shell
/// reports for a pipeline stage killed by a closed pipe.
pub const OUTPUT_CLOSED: u8 = 141;

pub fn watch(opts: Watch) -> Result<u8, Failure> {
    // Opened first, non-blocking: a FIFO without a reader is an error now.
    let mut out = EventSink::open(&opts.events, Stream::Stdout)?;
    let (_, sigfd) = signals::block(&signals::ENDING)?;
    let monitor: Arc<Monitor<u32>> = Arc::new(if opts.no_kmsg {
        Monitor::builder().kernel_log(false).build()?
    } else {
        Monitor::new()?
    });
    // Said once: `--pid` of a process that is not ours then fails, naming
    // the pid, the refused call and its errno.
    if let mode @ ctrmon::ExitMode::SigchldFallback { .. } = monitor.exit_mode() {
        crate::say(mode);
    }

    // Set everything up before reporting anything: a bad argument fails the
    // whole command, and dropping the monitor releases what was armed.
    let mut targets = Vec::new();
    // Watches whose end is awaited: pids, cgroups, PSI files in cgroups.
    let mut live = 0usize;
    // The cgroups first: a pid inside one is linked to its OOM watch.
    let mut oom_watches = OomWatches::default();
    for dir in &opts.cgroups {
        let version = cgroup_version(dir)?;
        let id = targets.len() as u32;
        if opts.populated_only {
            if version != CgroupVersion::V2 {
                return fail(
                    format_args!("watch cgroup {}", dir.display()),
                    "--populated-only needs a cgroup v2 directory (cgroup.events)",
                );
            }
            targets.push(Target::PopulatedAlone(dir.clone()));
            monitor.watch(Populated::dir(dir), id)?;
            live += 1;
            continue;
        }
        targets.push(Target::Cgroup(dir.clone()));
        let oom = if opts.local_events {
            CgroupOom::dir(dir).local()
        } else {
            CgroupOom::dir(dir)
        };
        let watch = monitor.watch(oom, id).map_err(|e| explain_cgroup(dir, e))?;
        oom_watches.push(dir.clone(), watch.id());
        if version == CgroupVersion::V2 {
            let pid = targets.len() as u32;
            targets.push(Target::Populated(dir.clone()));
            monitor.watch(Populated::dir(dir), pid)?;
            // Swap accounting may be off (no swap, or swapaccount=0).
            if dir.join("memory.swap.events").exists() {
                let sid = targets.len() as u32;
                targets.push(Target::Swap(dir.clone()));
                monitor.watch(CgroupSwap::dir(dir), sid)?;
            }
        }
        live += 1;
    }
    for &pid in &opts.pids {
        let id = targets.len() as u32;
        targets.push(Target::Pid(pid));
        // A pid that is not there (never was, or already exited and was
        // reaped) is a usage error: its exit cannot be reported.
        let linked = oom_watches.for_pid(pid).map_err(|e| explain_pid(pid, e))?;
        let watched = match linked {
            Some(cgroup) => monitor.watch(Process::pid(pid).oom_watch(cgroup), id),
            None => monitor.watch(Process::pid(pid), id),
        };
        watched.map_err(|e| explain_pid(pid, e))?;
        live += 1;
    }
    for (file, trigger) in &opts.psi {
        let id = targets.len() as u32;
        targets.push(Target::Psi(file.clone()));
        monitor.watch(Psi::new(file, *trigger), id)?;
        // A cgroup's pressure file ends with its cgroup; /proc/pressure never.
        if !file.starts_with("/proc") {
            live += 1;
        }
    }
    // The output's reader going away ends the watch. A regular file cannot
    // hang up, and epoll refuses it (EPERM): nothing to watch then.
    let output = targets.len() as u32;
    targets.push(Target::Output);
    let dup = rustix::io::fcntl_dupfd_cloexec(out.fd(), 3)
        .or_else(|e| fail(format_args!("duplicate {}", out.name()), e))?;
    if let Err(e) = monitor.watch(Hangup::new(dup), output) {
        if e.raw_os_error() != Some(libc::EPERM) {
            return fail(format_args!("watch {} for hang-up", out.name()), e);
        }
    }

    // Pidfds from a runtime: watched as they come, each with a `pidfd` line.
    // Last of the set-up: the listener accepts at once, and connections
    // that fill the fd table (`ulimit -n`) must not fail what comes after.
    let received = pidfds::Pending::default();
    let _socket = match &opts.pidfd_socket {
        Some(path) => {
            let id = targets.len() as u32;
            targets.push(Target::Received);
            let allowed = pidfds::Allowed {
                uids: opts.pidfd_allow_uids.clone(),
                gids: opts.pidfd_allow_gids.clone(),
            };
            Some(pidfds::listen(
                path,
                &allowed,
                monitor.clone(),
                id,
                received.clone(),
            )?)
        }
        None => None,
    };

    let m = monitor.clone();
    std::thread::spawn(move || {
        // Any SIGINT or SIGTERM ends the watch, wherever it came from.
        if sigfd.read().is_ok() {
            let _ = m.shutdown();
        }
    });

    // With only /proc/pressure triggers, or a socket that may always bring
    // more, there is nothing to end on but a signal.
    let ends = live > 0 && opts.pidfd_socket.is_none();
    let finished = |live: usize| ends && live == 0;
    let mut output_closed = false;
    let mut write_error = None;
    while !monitor.is_shut_down() && !finished(live) {
        pidfds::drain(&received, |line| {
            if let Err(e) = out.write_line(line.as_bytes()) {
                write_error = Some(e);
            }
        });
        if write_error.is_some() {
            return Ok(OUTPUT_CLOSED);
        }
        monitor.wait(None, |event| {
            if output_closed || write_error.is_some() {
                return;
            }
            if event.receiver == output {
                output_closed = true;
                return;
            }
            // A received process's `pidfd` line was queued before it was
            // watched: written here, it precedes the exit (see pidfds.rs).
            if matches!(targets[*event.receiver as usize], Target::Received) {
                pidfds::drain(&received, |line| {
                    if write_error.is_none() {
                        if let Err(e) = out.write_line(line.as_bytes()) {
                            write_error = Some(e);
                        }
                    }
                });
                if write_error.is_some() {
                    return;
                }
            }
            if let Some(line) = report::line(&targets, &event) {
                if let Err(e) = out.write_line(line.as_bytes()) {
                    write_error = Some(e);
                    return;
                }
            }
            match (&targets[*event.receiver as usize], &event.kind) {
                // A v2 cgroup has two watches (OOM and populated); its end is
                // counted on the OOM watch's.
                (
                    Target::Pid(_) | Target::Cgroup(_) | Target::PopulatedAlone(_) | Target::Psi(_),
                    k,
                ) if k.is_final() => live = live.saturating_sub(1),
                _ => {}
            }
        })?;
        if output_closed {
            return Ok(OUTPUT_CLOSED);
        }
        if let Some(e) = write_error {
            // A reader that went away needs no message; a full disk does.
            if e.raw_os_error() != Some(libc::EPIPE) {
                say(format_args!(
                    "write events to {}: {e}; stopping, since later events would be lost",
                    out.name()
                ));
            }
            return Ok(OUTPUT_CLOSED);
        }
    }
    Ok(0)
}

/// The kernel's answer for a pid that cannot be watched is often unclear
/// (`ENOENT` for a thread, `ESRCH` for a pid of another pid namespace):
/// say what is wrong when it can be told.
fn explain_pid(pid: i32, e: ctrmon::Error) -> Failure {
    // /proc/<tid> exists for every thread, though it is not listed.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let tgid = status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse::<i32>().ok());
        if let Some(tgid) = tgid.filter(|&t| t != pid) {
            return Failure(format!(
                "watch pid {pid}: {pid} is a thread of process {tgid}, not a process (watch --pid {tgid})"
            ));
        }
    }
    if e.is_process_gone() && in_nested_pid_namespace() {
        return Failure(format!(
            "watch pid {pid}: not visible in this pid namespace (ctrmon runs in a nested one, \
             which cannot see the host's or other containers' processes), or it has exited"
        ));
    }
    e.into()
}

/// The initial pid namespace has a fixed inode number (`PROC_PID_INIT_INO`).
fn in_nested_pid_namespace() -> bool {
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() != 0xEFFF_FFFC)
}

/// A v1 directory without `memory.oom_control` is on another controller's
/// hierarchy: say so, instead of "no such file". A v2 one without
/// `memory.events` lacks the memory controller (the library says why):
/// point at `--populated-only`.
fn explain_cgroup(dir: &Path, e: ctrmon::Error) -> Failure {
    let version = cgroup_version(dir);
    if matches!(version, Ok(CgroupVersion::V2))
        && dir.is_dir()
        && !dir.join("memory.events").exists()
    {
        return Failure(format!(
            "{e}; --populated-only watches it for populated and removal alone"
        ));
    }
    let v1 = matches!(version, Ok(CgroupVersion::V1));
    if v1 && dir.is_dir() && !dir.join("memory.oom_control").exists() {
        let memory = memory_cgroup_of(None)
            .map(|c| format!(" (the memory hierarchy is {})", c.mount_point.display()))
            .unwrap_or_default();
        return Failure(format!(
            "watch cgroup {}: the memory controller is not there: this v1 hierarchy has no \
             memory.oom_control{memory}",
            dir.display()
        ));
    }
    e.into()
}
