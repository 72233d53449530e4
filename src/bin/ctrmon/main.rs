//! The `ctrmon` command: run a command under a memory limit and report its
//! exit and OOMs; watch processes and cgroups; locate a memory cgroup.

mod args;
mod json;
mod placement;
mod report;
mod run;
mod signals;
mod watch;

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;

use args::{Command, Events};

/// A failure that ends the command with status 2 and a `ctrmon: ` line.
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

/// Where JSON lines go: `--events FILE`, `--events -` (standard output), or
/// the command's default stream.
pub fn events_out(events: &Events, default: Box<dyn Write>) -> Result<Box<dyn Write>, Failure> {
    match events {
        Events::Default => Ok(default),
        Events::Stdout => Ok(Box::new(std::io::stdout())),
        Events::File(p) => match File::create(p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) => fail(format_args!("open events file {}", p.display()), e),
        },
    }
}

fn main() -> ExitCode {
    let cmd = match args::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctrmon: {}", e.0);
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Command::Help(text) => {
            print!("{text}");
            Ok(0)
        }
        Command::Version => {
            println!("ctrmon {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Locate(pid) => locate(pid),
        Command::Run(r) => run::run(r),
        Command::Watch(w) => watch::watch(w),
        Command::Gc(_) => Err(Failure("gc is not built yet".into())),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            eprintln!("ctrmon: {msg}");
            ExitCode::from(2)
        }
    }
}

fn locate(pid: Option<i32>) -> Result<u8, Failure> {
    let cg = ctrmon::cgroup::memory_cgroup_of(pid)?;
    println!("{}", cg.path.display());
    Ok(0)
}
