//! Writing a shim: the life of a container's init as its supervisor sees it.
//!
//! The shim becomes a subreaper, reaps every orphan below it through the
//! monitor, starts the "container" (a process tree) in a fresh memory cgroup
//! with a 32 MiB limit, and watches its init together with that cgroup. The
//! init leaves two background children behind and then runs out of memory:
//! the shim reports the OOM before the exit it caused, the exit as an OOM
//! kill, and the two orphans as they are reaped; then it removes the cgroup.
//! Without root (or a memory cgroup hierarchy) it runs the same tree with a
//! plain `exit 3` instead of the OOM.
//!
//! `cargo run --example shim` (as root for the OOM part)

use ctrmon::watch::{CgroupOom, Orphans, Process};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ctrmon::cgroup::{memory_cgroup_of, CgroupVersion};
use ctrmon::reaper::{become_subreaper, block_sigchld};
use ctrmon::spawn::ChildSetup;
use ctrmon::{EventKind, Monitor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Before any thread exists: SIGCHLD goes to the monitor's signalfd
    //    only, and orphans below us come to us.
    let sigchld = block_sigchld()?;
    become_subreaper()?;

    let mut monitor: Monitor<&str> = Monitor::new()?;
    let orphans = monitor.watch(Orphans, "orphans")?;

    // 2. The container's cgroup, if we can make one (removed on the way
    //    out, whatever happens).
    let guard = make_cgroup().map(CgroupGuard);
    let cgroup = guard.as_ref().map(|g| g.0.clone());
    if cgroup.is_none() && std::env::var("CTRMON_REQUIRE_CGROUPS").is_ok_and(|v| v == "1") {
        return Err("CTRMON_REQUIRE_CGROUPS=1 but no memory cgroup could be made".into());
    }
    let script = if cgroup.is_some() {
        // The init's own process becomes GNU tail, buffering an endless
        // line until the OOM killer stops it.
        "sleep 0.3 & sleep 0.1 & exec tail /dev/zero"
    } else {
        "sleep 0.3 & sleep 0.1 & exit 3"
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    let mut setup = ChildSetup::new().die_with_parent().unblock(&sigchld);
    if let Some(dir) = &cgroup {
        setup = setup.join_cgroup(dir)?;
    }
    setup.apply(&mut cmd);

    // 3. Spawn and watch under a hold: an init that exits at once is not
    //    taken for an orphan before its watch exists.
    let hold = monitor.hold_orphans();
    let init = cmd.spawn()?;
    let pid = init.id() as i32;
    let cgroup_watch = match &cgroup {
        Some(dir) => Some(monitor.watch(CgroupOom::dir(dir), "cgroup")?.id()),
        None => None,
    };
    match cgroup_watch {
        Some(cg) => monitor.watch(Process::pid(pid).oom_watch(cg), "init")?,
        None => monitor.watch(Process::pid(pid), "init")?,
    };
    drop(hold);
    println!("init started: pid {pid}");

    // 4. The loop: until the init has exited and its two orphans are reaped.
    let mut reaped = 0;
    let mut exit = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while exit.is_none() || reaped < 2 {
        if Instant::now() > deadline {
            return Err("the container did not end within 60 s".into());
        }
        monitor.wait_mut(Some(Duration::from_secs(1)), |event, _| match event.kind {
            EventKind::Memory(delta) if delta.any_oom() => {
                println!("OOM in the container's cgroup: {} killed", delta.oom_kill);
            }
            EventKind::Exited(x) => {
                println!(
                    "init exited: {:?}{}",
                    x.status,
                    if x.oom_killed { " (OOM kill)" } else { "" }
                );
                exit = Some(x);
            }
            EventKind::Orphan(o) => {
                assert_eq!(event.id, orphans);
                println!("orphan reaped: pid {} {:?}", o.pid, o.status);
                reaped += 1;
            }
            _ => {}
        })?;
    }

    // 5. Clean up: the cgroup's watch, then the cgroup (empty now).
    if let Some(cg) = cgroup_watch {
        let _ = monitor.unwatch(cg);
    }
    drop(guard);
    let exit = exit.expect("the loop ends with the exit");
    if exit.oom_killed != cgroup.is_some() || !exit.reaped {
        return Err(format!("unexpected exit {exit:?}").into());
    }
    // No child of ours has exited without being reaped.
    let zombie = rustix::process::waitid(
        rustix::process::WaitId::All,
        rustix::process::WaitIdOptions::EXITED
            | rustix::process::WaitIdOptions::NOHANG
            | rustix::process::WaitIdOptions::NOWAIT,
    );
    if !matches!(zombie, Ok(None) | Err(rustix::io::Errno::CHILD)) {
        return Err("a zombie is left".into());
    }
    println!("done: init and 2 orphans reaped, no zombie left");
    Ok(())
}

/// Removes the cgroup on drop, after killing whatever is still in it.
struct CgroupGuard(PathBuf);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for _ in 0..200 {
            let procs = std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

/// A fresh memory cgroup with a 32 MiB limit, or `None` without root or a
/// memory hierarchy.
fn make_cgroup() -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let ours = memory_cgroup_of(None).ok()?;
    let dir = ours
        .mount_point
        .join(format!("ctrmon-example-shim-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    let limit = match ours.version {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        _ => "memory.max",
    };
    if std::fs::write(dir.join(limit), "33554432").is_err() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    if ours.version != CgroupVersion::V1 && dir.join("memory.swap.max").exists() {
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    }
    Some(dir)
}
