//! Spawns three children that end in different ways and reports each exit.
//!
//! `cargo run --example watch_children`

use ctrmon::watch::Process;
use std::process::Command;
use std::time::Duration;

use ctrmon::{EventKind, ExitMode, Monitor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One thread owns the loop: `wait_mut` dispatches without a lock.
    let mut monitor: Monitor<&str> = Monitor::new()?;
    // Where pidfd_open is refused (a container's seccomp filter, an old
    // kernel), our children are watched through SIGCHLD, which must be
    // blocked in every thread: now, before any thread or child exists.
    if let mode @ ExitMode::SigchldFallback { .. } = monitor.exit_mode() {
        println!("{mode}");
        ctrmon::reaper::block_sigchld()?;
    }
    let children = [
        ("exits-0", Command::new("true").spawn()?),
        (
            "exits-7",
            Command::new("sh").args(["-c", "exit 7"]).spawn()?,
        ),
        (
            "killed",
            Command::new("sh").args(["-c", "kill -9 $$"]).spawn()?,
        ),
    ];
    for (name, child) in &children {
        monitor.watch(Process::pid(child.id() as i32), *name)?;
        println!("watching {name} (pid {})", child.id());
    }
    while !monitor.is_empty() {
        monitor.wait_mut(Some(Duration::from_secs(10)), |event, _watches| {
            if let EventKind::Exited(exit) = event.kind {
                println!(
                    "{}: pid {} ended: {:?}",
                    event.receiver, exit.pid, exit.status
                );
            }
        })?;
    }
    Ok(())
}
