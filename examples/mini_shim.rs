//! The life of a container's init, as a shim sees it: spawn a process tree
//! in a fresh memory cgroup, watch init together with its cgroup, report
//! the OOM before the exit, clean up.
//!
//! `sudo cargo run --example mini_shim` (root: it makes a cgroup)
//!
//! The "container" is `sh -c 'sleep 60 & exec tail /dev/zero'` under a
//! 32 MiB limit: init starts a child, then becomes GNU `tail`, which
//! buffers an endless line until the OOM killer stops it. The shim prints
//! the OOM, then init's exit (SIGKILL, marked as an OOM kill), kills what
//! is left of the tree (the orphaned `sleep`) and removes the cgroup, on
//! every way out. It exits 0 only if it saw the OOM before the exit.
//!
//! Not shown: reaping orphans. A shim is a child subreaper (or PID 1), so
//! the tree's orphans become its children and must be reaped without
//! stealing init's status: `examples/shim.rs` adds that
//! (`ctrmon::watch::Orphans`). Here the orphan is re-parented to the
//! system's init and killed with the cgroup.

mod support;

use ctrmon::watch::{CgroupOom, Process};
use std::process::{Command, Stdio};
use std::time::Duration;

use ctrmon::spawn::ChildSetup;
use ctrmon::{EventKind, ExitMode, ExitStatus, Monitor};
use support::ExampleCgroup;

// `pub`: tests/guest_examples.rs runs this same program on cgroup v2.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cgroup = ExampleCgroup::create("mini-shim", 32 << 20)?;
    println!("cgroup {}", cgroup.path.display());

    // Watch the cgroup before anything runs in it: its counters' baseline
    // is read now, so every OOM of the container counts.
    let mut monitor: Monitor<&str> = Monitor::new()?;
    // Where pidfd_open is refused (a container's seccomp filter, an old
    // kernel), our children are watched through SIGCHLD, which must be
    // blocked in every thread: now, before any thread or child exists.
    if let mode @ ExitMode::SigchldFallback { .. } = monitor.exit_mode() {
        println!("{mode}");
        ctrmon::reaper::block_sigchld()?;
    }
    let oom_watch = monitor.watch(CgroupOom::dir(&cgroup.path), "cgroup")?.id();

    // init joins the cgroup between fork and exec: everything it starts is
    // inside from its first instruction. It dies with the shim.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 60 & exec tail /dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    ChildSetup::new()
        .join_cgroup(&cgroup.path)?
        .die_with_parent()
        .apply(&mut cmd);
    let init = cmd.spawn()?;
    let pid = init.id() as i32;
    println!("init: pid {pid}");
    // Right after the spawn: nobody else can reap our child meanwhile. The
    // link makes the monitor re-read the cgroup's counters when init exits
    // and deliver an OOM it has not reported yet first.
    monitor.watch(Process::pid(pid).oom_watch(oom_watch), "init")?;

    let mut oom_seen = false;
    let mut exit = None;
    while exit.is_none() {
        let n = monitor.wait_mut(
            Some(Duration::from_secs(60)),
            |event, _watches| match event.kind {
                EventKind::Memory(delta) if delta.any_oom() => {
                    println!(
                        "{}: OOM (oom +{}, oom_kill +{})",
                        event.receiver, delta.oom, delta.oom_kill
                    );
                    oom_seen = true;
                }
                EventKind::Exited(e) => {
                    println!(
                        "{}: exited, {:?}, OOM kill: {}, reaped: {}",
                        event.receiver, e.status, e.oom_killed, e.reaped
                    );
                    exit = Some(e);
                }
                ref other => println!("{}: {other:?}", event.receiver),
            },
        )?;
        if n == 0 {
            return Err("no exit within 60 s".into());
        }
    }
    let exit = exit.unwrap();
    if !(oom_seen && exit.oom_killed && exit.status == ExitStatus::Signal(9)) {
        return Err(format!("expected an OOM, then an OOM-killed exit; got {exit:?}").into());
    }
    println!("the OOM came before the exit");
    // `cgroup` drops here: the orphaned `sleep` is killed, the cgroup removed.
    Ok(())
}
