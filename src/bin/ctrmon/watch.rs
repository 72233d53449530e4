//! `ctrmon watch`: existing processes, cgroups and PSI triggers.

use std::sync::Arc;

use ctrmon::cgroup::{cgroup_version, CgroupVersion};
use ctrmon::Monitor;

use crate::args::Watch;
use crate::report::{self, Target};
use crate::{events_out, fail, signals, Failure};

pub fn watch(opts: Watch) -> Result<u8, Failure> {
    let sigfd = signals::block_and_open().or_else(|e| fail("block SIGINT/SIGTERM", e))?;
    let mut out = events_out(opts.events.as_deref(), Box::new(std::io::stdout()))?;
    let monitor: Arc<Monitor<u32>> = Arc::new(Monitor::new()?);

    // Set everything up before reporting anything: a bad argument fails the
    // whole command, and dropping the monitor releases what was armed.
    let mut targets = Vec::new();
    let mut live_pids = 0usize;
    let mut live_cgroups = 0usize;
    for &pid in &opts.pids {
        let id = targets.len() as u32;
        targets.push(Target::Pid(pid));
        // A pid that is not there (never was, or already exited and was
        // reaped) is a usage error: its exit cannot be reported.
        monitor.watch_pid(pid, id)?;
        live_pids += 1;
    }
    for dir in &opts.cgroups {
        let id = targets.len() as u32;
        targets.push(Target::Cgroup(dir.display().to_string()));
        monitor.watch_cgroup_oom(dir, id)?;
        if cgroup_version(dir)? == CgroupVersion::V2 {
            let pid = targets.len() as u32;
            targets.push(Target::Populated(dir.display().to_string()));
            monitor.watch_populated(dir, pid)?;
        }
        live_cgroups += 1;
    }
    for (file, trigger) in &opts.psi {
        let id = targets.len() as u32;
        targets.push(Target::Psi(file.display().to_string()));
        monitor.watch_psi(file, trigger, id)?;
    }

    let m = monitor.clone();
    std::thread::spawn(move || {
        // Any SIGINT or SIGTERM ends the watch, wherever it came from.
        if signals::next(&sigfd).is_ok() {
            let _ = m.shutdown();
        }
    });

    // With only PSI triggers there is nothing to end on but a signal.
    let ends = live_pids + live_cgroups > 0;
    let all_gone = |pids: usize, cgroups: usize| ends && pids == 0 && cgroups == 0;
    while !monitor.is_shut_down() && !all_gone(live_pids, live_cgroups) {
        let mut write_err = None;
        monitor.wait(None, |event| {
            if let Err(e) = report::write(&mut out, &targets, &event) {
                write_err.get_or_insert(e);
            }
            match (&targets[*event.receiver as usize], &event.kind) {
                (Target::Pid(_), k) if k.is_final() => live_pids -= 1,
                // A v2 cgroup has two watches (OOM and populated); its end is
                // counted on the OOM watch's.
                (Target::Cgroup(_), k) if k.is_final() => live_cgroups -= 1,
                _ => {}
            }
        })?;
        if let Some(e) = write_err {
            return fail("write event", e);
        }
    }
    Ok(0)
}
