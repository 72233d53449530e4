//! Command-line parsing, by hand: a handful of options do not need a crate.
//! Pure functions from arguments to a command, so they are easy to test.

use std::ffi::OsString;
use std::path::PathBuf;

use ctrmon::PsiTrigger;

pub const USAGE: &str = "\
ctrmon: watch container processes for exit and cgroups for OOM from one epoll loop

Usage:
  ctrmon run [--memory SIZE] [--cgroup-parent DIR] [--events FILE] -- COMMAND [ARG...]
      Run COMMAND in a fresh memory cgroup (limited to SIZE: bytes, or with K, M, G),
      report its OOMs and exit as JSON lines on stderr (or FILE), remove the cgroup,
      and exit with COMMAND's status (128 + signal if it was killed).
  ctrmon watch [--pid PID]... [--cgroup DIR]... [--psi FILE=TRIGGER]... [--events FILE]
      Watch processes for exit, cgroups for OOM and removal (and, on v2, emptiness),
      and PSI triggers (\"some|full <stall us> <window us>\"); JSON lines on stdout.
      Ends when every pid has exited and every cgroup is gone, or on SIGINT/SIGTERM.
      A PID in a --cgroup DIR (or below one; the nearest) has DIR's OOM reported
      before its exit, and the exit marked oom_killed. Which cgroup holds a PID is
      read once, at start: a process that moves to another cgroup is not followed.
  ctrmon locate [PID]
      Print the memory cgroup directory of PID (default: ctrmon itself).
  ctrmon --help | --version
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Run),
    Watch(Watch),
    Locate(Option<i32>),
    Help,
    Version,
}

#[derive(Debug, PartialEq, Default)]
pub struct Run {
    pub memory: Option<u64>,
    pub cgroup_parent: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq, Default)]
pub struct Watch {
    pub pids: Vec<i32>,
    pub cgroups: Vec<PathBuf>,
    pub psi: Vec<(PathBuf, PsiTrigger)>,
    pub events: Option<PathBuf>,
}

/// A usage error: what was wrong, naming the offending value.
#[derive(Debug, PartialEq)]
pub struct UsageError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return err("missing command (run, watch or locate); see --help");
    };
    match sub.to_str() {
        Some("run") => parse_run(args).map(Command::Run),
        Some("watch") => parse_watch(args).map(Command::Watch),
        Some("locate") => parse_locate(args),
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("-V" | "--version") => Ok(Command::Version),
        _ => err(format!("unknown command {sub:?}; see --help")),
    }
}

/// The value of option `name`, which must follow it.
fn value(name: &str, args: &mut impl Iterator<Item = OsString>) -> Result<OsString, UsageError> {
    args.next()
        .ok_or_else(|| UsageError(format!("{name} needs a value")))
}

fn text(name: &str, v: &OsString) -> Result<String, UsageError> {
    v.to_str()
        .map(str::to_owned)
        .ok_or_else(|| UsageError(format!("{name} value {v:?} is not valid UTF-8")))
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<Run, UsageError> {
    let mut run = Run::default();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--memory") => {
                let v = value("--memory", &mut args)?;
                run.memory = Some(parse_size(&text("--memory", &v)?)?);
            }
            Some("--cgroup-parent") => {
                run.cgroup_parent = Some(value("--cgroup-parent", &mut args)?.into())
            }
            Some("--events") => run.events = Some(value("--events", &mut args)?.into()),
            Some("--") => {
                run.command = args.collect();
                break;
            }
            Some(s) if s.starts_with('-') => return err(format!("unknown option {s:?} for run")),
            // The command may also start without `--`.
            _ => {
                run.command = std::iter::once(a).chain(args).collect();
                break;
            }
        }
    }
    if run.command.is_empty() {
        return err("run needs a command: ctrmon run [OPTIONS] -- COMMAND [ARG...]");
    }
    Ok(run)
}

fn parse_watch(mut args: impl Iterator<Item = OsString>) -> Result<Watch, UsageError> {
    let mut w = Watch::default();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--pid") => {
                let v = value("--pid", &mut args)?;
                w.pids.push(parse_pid(&text("--pid", &v)?)?);
            }
            Some("--cgroup") => w.cgroups.push(value("--cgroup", &mut args)?.into()),
            Some("--psi") => {
                let v = text("--psi", &value("--psi", &mut args)?)?;
                let Some((file, trigger)) = v.split_once('=') else {
                    return err(format!("--psi {v:?} must be FILE=TRIGGER"));
                };
                let trigger: PsiTrigger = trigger
                    .parse()
                    .map_err(|e| UsageError(format!("--psi trigger {trigger:?}: {e}")))?;
                w.psi.push((file.into(), trigger));
            }
            Some("--events") => w.events = Some(value("--events", &mut args)?.into()),
            _ => return err(format!("unknown argument {a:?} for watch")),
        }
    }
    if w.pids.is_empty() && w.cgroups.is_empty() && w.psi.is_empty() {
        return err("watch needs at least one --pid, --cgroup or --psi");
    }
    Ok(w)
}

fn parse_locate(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let pid = match args.next() {
        None => None,
        Some(v) => Some(parse_pid(&text("locate", &v)?)?),
    };
    if let Some(extra) = args.next() {
        return err(format!("unexpected argument {extra:?} for locate"));
    }
    Ok(Command::Locate(pid))
}

pub fn parse_pid(s: &str) -> Result<i32, UsageError> {
    match s.parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => err(format!("invalid pid {s:?}: expected a positive number")),
    }
}

/// Bytes, or a number with `K`, `M` or `G` (powers of 1024; `KiB`-style and
/// lower case accepted too).
pub fn parse_size(s: &str) -> Result<u64, UsageError> {
    let bad = || {
        UsageError(format!(
            "invalid size {s:?}: expected bytes, or a number with K, M or G"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| UsageError(format!("size {s:?} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        for bad in ["12Q", "", "M", "-1", "1.5G", "99999999999999999999", "1 M"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.0.contains(&format!("{bad:?}")), "{e:?}");
        }
        assert!(parse_size("18446744073709551615G").is_err());
    }

    #[test]
    fn run_parses_options_and_command() {
        let Command::Run(r) = p(&["run", "--memory", "32M", "--", "sh", "-c", "exit 7"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.memory, Some(32 << 20));
        assert_eq!(r.command, ["sh", "-c", "exit 7"].map(OsString::from));
        // Options after `--` belong to the command.
        let Command::Run(r) = p(&["run", "--", "ls", "--memory"]).unwrap() else {
            panic!()
        };
        assert_eq!(r.command, ["ls", "--memory"].map(OsString::from));
        assert!(p(&["run", "--memory", "32M"])
            .unwrap_err()
            .0
            .contains("needs a command"));
        assert!(p(&["run", "--memory", "12Q", "--", "true"])
            .unwrap_err()
            .0
            .contains("12Q"));
        assert!(p(&["run", "--memory"])
            .unwrap_err()
            .0
            .contains("--memory needs a value"));
    }

    #[test]
    fn watch_and_locate() {
        let Command::Watch(w) = p(&[
            "watch",
            "--pid",
            "1",
            "--pid",
            "22",
            "--cgroup",
            "/sys/fs/cgroup/x",
            "--psi",
            "/proc/pressure/cpu=some 150000 2000000",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(w.pids, [1, 22]);
        assert_eq!(w.cgroups, [PathBuf::from("/sys/fs/cgroup/x")]);
        assert_eq!(w.psi[0].1.to_kernel_string(), "some 150000 2000000");
        assert!(p(&["watch", "--pid", "0"]).unwrap_err().0.contains("\"0\""));
        assert!(p(&["watch", "--pid", "abc"]).unwrap_err().0.contains("abc"));
        assert!(p(&["watch"]).is_err());
        assert!(p(&["watch", "--psi", "/proc/pressure/cpu"]).is_err());
        assert!(p(&["watch", "--psi", "f=some 0 1"]).is_err());
        assert_eq!(p(&["locate"]).unwrap(), Command::Locate(None));
        assert_eq!(p(&["locate", "42"]).unwrap(), Command::Locate(Some(42)));
        assert!(p(&["locate", "-3"]).is_err());
        assert_eq!(p(&["--version"]).unwrap(), Command::Version);
        assert!(p(&[]).is_err());
        assert!(p(&["frobnicate"]).unwrap_err().0.contains("frobnicate"));
    }
}
