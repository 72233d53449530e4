//! The `ctrmon` command: run a command under a memory limit and report its
//! exit and OOMs; watch processes and cgroups; remove what a killed ctrmon
//! left behind; locate a memory cgroup.

mod args;
mod cgroup_dir;
mod json;
mod output;
mod placement;
mod procfd;
mod report;
mod run;
mod signals;
mod watch;

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use args::Command;
pub use output::say;

/// A failure that ends the command with status 2 and a `ctrmon: ` line.
#[derive(Debug)]
pub struct Failure(String);

impl<E: fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

/// Fails with a message built from `what` and the error.
pub fn fail<T>(what: impl fmt::Display, e: impl fmt::Display) -> Result<T, Failure> {
    Err(Failure(format!("{what}: {e}")))
}

fn main() -> ExitCode {
    let cmd = match args::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            say(e.0);
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Command::Help(text) => print(text),
        Command::Version => print(&format!("ctrmon {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Locate(pid) => locate(pid),
        Command::Gc(g) => gc(g),
        Command::Run(r) => run::run(r),
        Command::Watch(w) => watch::watch(w),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            say(msg);
            ExitCode::from(2)
        }
    }
}

/// Writes `text` to standard output; a closed one is a failure, not a panic.
fn print(text: &str) -> Result<u8, Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .or_else(|e| fail("write to standard output", e))?;
    Ok(0)
}

fn locate(pid: Option<i32>) -> Result<u8, Failure> {
    let cg = ctrmon::cgroup::memory_cgroup_of(pid)?;
    print(&format!("{}\n", cg.path.display()))
}

fn gc(opts: args::Gc) -> Result<u8, Failure> {
    let parent = match opts.cgroup_parent {
        Some(p) => p,
        None => cgroup_dir::default_parent()?,
    };
    for p in cgroup_dir::gc(&parent)? {
        say(format_args!("removed stale cgroup {}", p.display()));
    }
    Ok(0)
}
