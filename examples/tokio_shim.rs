//! A shim on tokio: several containers at once, each in its own memory
//! cgroup, watched by one `AsyncMonitor`; a graceful shutdown on SIGTERM.
//!
//! `sudo cargo run --features tokio --example tokio_shim` (root: cgroups)
//!
//! Three containers under 32 MiB each: `oom` exceeds its limit and is
//! OOM-killed, `ok` exits 0, `server` runs until told to stop. Once the
//! first two have ended, the example sends itself SIGTERM (pass `--wait`
//! to wait for one from outside instead): the shim forwards SIGTERM to the
//! containers still running, waits for their exits (SIGKILL after 5 s),
//! shuts the monitor down, and removes every cgroup (also on an error or a
//! panic). It exits 0 only if each container ended as described.
//!
//! The event loop `select!`s between the monitor and the signal: the
//! losing branch's future is dropped, which `AsyncMonitor::next` allows
//! (it is cancel safe: no event is lost). Children are spawned with
//! `std::process::Command`, not `tokio::process`, whose SIGCHLD reaper
//! could take a status the monitor's pidfd was going to report.

mod support;

use ctrmon::watch::{CgroupOom, Process};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use ctrmon::spawn::ChildSetup;
use ctrmon::tokio::AsyncMonitor;
use ctrmon::{EventKind, Exit, ExitStatus};
use rustix::process::{getpid, kill_process, Pid, Signal};
use support::ExampleCgroup;
use tokio::signal::unix::{signal, SignalKind};

/// A container: its name, command, and cgroup.
struct Container {
    name: &'static str,
    pid: i32,
    exit: Option<Exit>,
    oom_kills: u64,
    _cgroup: ExampleCgroup,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wait_for_outside_sigterm = std::env::args().any(|a| a == "--wait");
    // Before anything could send it: SIGTERM is ours from here on.
    let mut sigterm = signal(SignalKind::terminate())?;

    // The receiver is the container's name; `next` hands out a clone of it
    // for the events that do not end a watch, so it should be cheap.
    let monitor: AsyncMonitor<&'static str> = AsyncMonitor::new()?;
    let mut containers = BTreeMap::new();
    for (name, script) in [
        ("oom", "exec tail /dev/zero"),
        ("ok", "sleep 0.2; exit 0"),
        ("server", "exec sleep 600"),
    ] {
        let cgroup = ExampleCgroup::create(name, 32 << 20)?;
        let oom_watch = monitor
            .monitor()
            .watch(CgroupOom::dir(&cgroup.path), name)?
            .id();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // `die_with_parent` is tied to the spawning thread: this is the
        // main thread, which lives as long as the shim.
        ChildSetup::new()
            .join_cgroup(&cgroup.path)?
            .die_with_parent()
            .apply(&mut cmd);
        let pid = cmd.spawn()?.id() as i32;
        monitor
            .monitor()
            .watch(Process::pid(pid).oom_watch(oom_watch), name)?;
        println!(
            "{name}: started, pid {pid}, cgroup {}",
            cgroup.path.display()
        );
        containers.insert(
            name,
            Container {
                name,
                pid,
                exit: None,
                oom_kills: 0,
                _cgroup: cgroup,
            },
        );
    }

    let mut stopping = false;
    let mut sent_sigterm = false;
    let grace = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(grace);
    while containers.values().any(|c| c.exit.is_none()) {
        tokio::select! {
            event = monitor.next() => {
                let Some(event) = event? else { break };
                let c = containers.get_mut(*event.receiver).expect("a container's watch");
                match event.kind {
                    EventKind::Memory(delta) if delta.any_oom() => {
                        println!("{}: OOM, {} killed", c.name, delta.oom_kill);
                        c.oom_kills += delta.oom_kill;
                    }
                    EventKind::Exited(exit) => {
                        println!("{}: exited, {:?}, OOM kill: {}", c.name, exit.status, exit.oom_killed);
                        c.exit = Some(exit);
                    }
                    // The cgroup watches end with the monitor.
                    _ => {}
                }
                let others_done = containers["oom"].exit.is_some() && containers["ok"].exit.is_some();
                if others_done && !sent_sigterm && !wait_for_outside_sigterm {
                    sent_sigterm = true;
                    println!("sending ourselves SIGTERM");
                    kill_process(getpid(), Signal::TERM)?;
                }
            }
            _ = sigterm.recv(), if !stopping => {
                stopping = true;
                println!("SIGTERM: stopping the containers still running");
                for c in containers.values().filter(|c| c.exit.is_none()) {
                    // Still our unreaped child: the pid cannot have been reused.
                    let _ = kill_process(Pid::from_raw(c.pid).expect("a pid"), Signal::TERM);
                }
                grace.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(5));
            }
            _ = &mut grace, if stopping => {
                println!("grace period over: SIGKILL");
                for c in containers.values().filter(|c| c.exit.is_none()) {
                    let _ = kill_process(Pid::from_raw(c.pid).expect("a pid"), Signal::KILL);
                }
                grace.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    }
    monitor.monitor().shutdown()?;
    // Every wait ends at once after a shutdown.
    assert!(monitor.next().await?.is_none());

    let status = |name: &str| containers[name].exit.map(|e| (e.status, e.oom_killed));
    let as_promised = containers["oom"].oom_kills >= 1
        && status("oom") == Some((ExitStatus::Signal(9), true))
        && status("ok") == Some((ExitStatus::Code(0), false))
        && status("server") == Some((ExitStatus::Signal(15), false));
    drop(containers); // removes the cgroups
    if !as_promised {
        return Err("the containers did not end as described".into());
    }
    println!("shut down cleanly");
    Ok(())
}
