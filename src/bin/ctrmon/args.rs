//! Command-line parsing with `lexopt`: `--opt value` and `--opt=value`,
//! `--` to end the options, `-` as a value, and `--help` on every command.
//! Pure functions from arguments to a command, so they are easy to test.

use std::ffi::OsString;
use std::path::PathBuf;

use ctrmon::PsiTrigger;
use lexopt::prelude::*;

pub const USAGE: &str = "\
ctrmon: watch container processes for exit and cgroups for OOM from one epoll loop

Usage:
  ctrmon run [OPTIONS] [--] COMMAND [ARG...]
      Run COMMAND in a fresh memory cgroup and report its OOMs and exit.
  ctrmon watch [--pid PID]... [--cgroup DIR]... [--psi FILE=TRIGGER]...
               [--pidfd-socket PATH [--pidfd-allow-uid UID]...] [--events FILE]
      Watch processes for exit, cgroups for OOM and removal, and PSI triggers.
  ctrmon gc [--cgroup-parent DIR]
      Remove the cgroups of ctrmon runs that were killed before they could.
  ctrmon locate [PID]
      Print the memory cgroup directory of PID (default: ctrmon itself).
  ctrmon --help | --version
  ctrmon COMMAND --help

Exit status: as each command's --help says; 2 for a usage error.
";

pub const RUN_HELP: &str = "\
Usage: ctrmon run [OPTIONS] [--] COMMAND [ARG...]

Run COMMAND in a fresh memory cgroup (ctrmon-<pid>-<n>), report its OOMs and
its exit as JSON lines, kill whatever it left in the cgroup, remove the
cgroup (with any sub-cgroups), and exit with COMMAND's status. SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH and SIGCONT are passed on
to COMMAND. If ctrmon itself is killed, COMMAND is killed too (parent-death
signal), and the next `ctrmon run` or `ctrmon gc` removes the cgroup.

Options:
  --memory SIZE         limit the cgroup's memory to SIZE (bytes, or with K, M, G;
                        at least one page)
  --cgroup-parent DIR   create the cgroup in DIR (default: the root of the
                        memory hierarchy; on cgroup v2 under systemd, beside
                        ctrmon in its delegated cgroup). On v2, memory is
                        enabled in DIR's cgroup.subtree_control if needed,
                        which fails if DIR has processes of its own
  --oom-group           on cgroup v2, set memory.oom.group: an OOM kills
                        the whole command, not one of its processes
  --events FILE         write the JSON lines to FILE (`-`: standard output)
                        instead of standard error
  --keep-fds            pass ctrmon's inherited file descriptors above 2 on to
                        COMMAND (by default they are closed at its exec)
  --no-kmsg             do not read the kernel log (/dev/kmsg): OOM-killed exits
                        are then recognized by the cgroup's kill counter alone
                        (see the README); without root or CAP_SYSLOG the log
                        is not read anyway
  -h, --help            show this help

Exit status:
  COMMAND's exit code, or 128 + N if it was killed by signal N (137 after an
  OOM kill); 2 if ctrmon could not start it. Events that could not be written
  do not change the status: ctrmon keeps supervising and says on standard error
  how many were lost.
";

pub const WATCH_HELP: &str = "\
Usage: ctrmon watch [--pid PID]... [--cgroup DIR]... [--psi FILE=TRIGGER]...
                    [--pidfd-socket PATH [--pidfd-allow-uid UID]...
                    [--pidfd-allow-gid GID]...] [--events FILE] [--no-kmsg]

Watch processes for exit, cgroups for OOM and removal (and, on v2, emptiness),
and PSI triggers (FILE=\"some|full <stall us> <window us>\"), and print JSON
lines on standard output. Ends when every pid has exited and every cgroup (of
--cgroup, or of a --psi file in a cgroup) is gone, or on SIGINT or SIGTERM.

A PID in a --cgroup DIR (or below one; the nearest such DIR) has DIR's OOM
reported before its exit, and its exit marked oom_killed. Which cgroup holds a
PID is read once, at start: a process that moves to another cgroup later is not
followed.

Options:
  --pid PID             a process (any process, not only ctrmon's children)
  --cgroup DIR          a memory cgroup directory (v1 or v2); on v2 its swap
                        events (memory.swap.events) are reported too
  --local-events        on v2, read each DIR's memory.events.local (its own
                        counters) instead of memory.events (which counts its
                        descendants' too): `oom` then rises only where the limit
                        that was hit sits, `oom_kill` only where the victim was
  --populated-only      watch each v2 DIR for populated and removal alone (for
                        a cgroup without the memory controller)
  --psi FILE=TRIGGER    a PSI trigger on a pressure file
  --pidfd-socket PATH   listen at PATH (a new unix socket, removed at the end)
                        for pidfds, as `runc run --pidfd-socket PATH` and
                        crun's run.oci.pidfd_receiver=PATH send them, and
                        watch each process received (a \"pidfd\" line, then
                        its exit); the watch then ends only on a signal.
                        The socket is mode 0600; only root and ctrmon's own
                        uid may send (checked by SO_PEERCRED), others are
                        refused and named on standard error. A socket left
                        at PATH by a killed ctrmon is replaced; one a
                        listener is live on is refused. A thread's pidfd is
                        refused. A line's pid is 0 if the process was reaped
                        before its pidfd arrived
  --pidfd-allow-uid UID also let processes of uid UID send (a rootless runtime
                        running as another user; it must also be able to open
                        the socket file, e.g. after chown or chmod)
  --pidfd-allow-gid GID also let processes whose effective gid is GID send
  --events FILE         write the JSON lines to FILE (`-`: standard output)
  --no-kmsg             do not read the kernel log (/dev/kmsg): OOM-killed exits
                        are then recognized by the cgroup's kill counter alone
                        (see the README); without root or CAP_SYSLOG the log
                        is not read anyway
  -h, --help            show this help

Exit status:
  0   everything watched has ended, or SIGINT/SIGTERM
  2   a bad argument, or a failure (named on standard error)
  141 the output was closed (its reader went away) or could not be written:
      128 + SIGPIPE, as a shell pipeline reports it
";

pub const GC_HELP: &str = "\
Usage: ctrmon gc [--cgroup-parent DIR]

Remove the cgroups named ctrmon-<pid>-<n> in DIR (default: where `ctrmon run`
creates its cgroup when not given --cgroup-parent) of runs that have ended,
after killing whatever is left in them. `ctrmon run` does this itself before it
starts. A run holds a lock (flock) on its cgroup for as long as it lives: a
cgroup whose lock is held is never touched, whatever the run's binary is
called. DIR must be on a cgroup filesystem.

Options:
  --cgroup-parent DIR   where to look (as given to `ctrmon run`)
  -h, --help            show this help

Exit status:
  0   every stale cgroup was removed (or there was none)
  2   one could not be removed, or DIR is not on cgroupfs (named on standard
      error)
";

pub const LOCATE_HELP: &str = "\
Usage: ctrmon locate [PID]

Print the memory cgroup directory of PID (default: ctrmon itself).

Exit status:
  0   printed
  2   PID does not exist, or has no memory cgroup
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Run),
    Watch(Watch),
    Gc(Gc),
    Locate(Option<i32>),
    /// Print this text on standard output and exit 0.
    Help(&'static str),
    Version,
}

/// Where the JSON lines go.
#[derive(Debug, PartialEq, Clone)]
pub enum Events {
    /// The command's default stream (stderr for `run`, stdout for `watch`).
    Default,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, PartialEq)]
pub struct Run {
    pub memory: Option<u64>,
    pub cgroup_parent: Option<PathBuf>,
    pub events: Events,
    pub keep_fds: bool,
    pub oom_group: bool,
    pub no_kmsg: bool,
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub struct Watch {
    pub pids: Vec<i32>,
    pub cgroups: Vec<PathBuf>,
    pub psi: Vec<(PathBuf, PsiTrigger)>,
    pub pidfd_socket: Option<PathBuf>,
    /// `--pidfd-allow-uid`: uids besides root and ctrmon's own that may
    /// send pidfds.
    pub pidfd_allow_uids: Vec<u32>,
    /// `--pidfd-allow-gid`: gids that may send pidfds.
    pub pidfd_allow_gids: Vec<u32>,
    pub events: Events,
    /// `--local-events`: v2 OOM watches read `memory.events.local`.
    pub local_events: bool,
    /// `--populated-only`: v2 cgroups watched for populated and removal
    /// alone.
    pub populated_only: bool,
    pub no_kmsg: bool,
}

#[derive(Debug, PartialEq, Default)]
pub struct Gc {
    pub cgroup_parent: Option<PathBuf>,
}

/// A usage error: what was wrong, naming the offending value.
#[derive(Debug, PartialEq)]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> UsageError {
        UsageError(e.to_string())
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let sub = match p.next()? {
        None => return err("missing command (run, watch, gc or locate); see --help"),
        Some(Short('h') | Long("help")) => return Ok(Command::Help(USAGE)),
        Some(Short('V') | Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v,
        Some(other) => return Err(other.unexpected().into()),
    };
    match sub.to_str() {
        Some("run") => parse_run(&mut p),
        Some("watch") => parse_watch(&mut p),
        Some("gc") => parse_gc(&mut p),
        Some("locate") => parse_locate(&mut p),
        Some("help") => Ok(Command::Help(USAGE)),
        _ => err(format!("unknown command {sub:?}; see --help")),
    }
}

fn events(v: OsString) -> Events {
    if v == "-" {
        Events::Stdout
    } else {
        Events::File(v.into())
    }
}

fn parse_run(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut run = Run {
        memory: None,
        cgroup_parent: None,
        events: Events::Default,
        keep_fds: false,
        oom_group: false,
        no_kmsg: false,
        command: Vec::new(),
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("memory") => {
                let v = p.value()?;
                run.memory = Some(parse_memory(&text("--memory", &v)?)?);
            }
            Long("cgroup-parent") => run.cgroup_parent = Some(p.value()?.into()),
            Long("events") => run.events = events(p.value()?),
            Long("keep-fds") => run.keep_fds = true,
            Long("oom-group") => run.oom_group = true,
            Long("no-kmsg") => run.no_kmsg = true,
            Short('h') | Long("help") => return Ok(Command::Help(RUN_HELP)),
            // The command, after `--` or not: everything from here is its own.
            Value(first) => {
                run.command.push(first);
                run.command.extend(p.raw_args()?);
                break;
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if run.command.is_empty() {
        return err("run needs a command: ctrmon run [OPTIONS] -- COMMAND [ARG...]");
    }
    Ok(Command::Run(run))
}

fn parse_watch(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut w = Watch {
        pids: Vec::new(),
        cgroups: Vec::new(),
        psi: Vec::new(),
        pidfd_socket: None,
        pidfd_allow_uids: Vec::new(),
        pidfd_allow_gids: Vec::new(),
        events: Events::Default,
        local_events: false,
        populated_only: false,
        no_kmsg: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("pid") => {
                let v = p.value()?;
                w.pids.push(parse_pid(&text("--pid", &v)?)?);
            }
            Long("cgroup") => w.cgroups.push(p.value()?.into()),
            Long("local-events") => w.local_events = true,
            Long("populated-only") => w.populated_only = true,
            Long("psi") => {
                let v = text("--psi", &p.value()?)?;
                let Some((file, trigger)) = v.split_once('=') else {
                    return err(format!("--psi {v:?} must be FILE=TRIGGER"));
                };
                let trigger: PsiTrigger = trigger
                    .parse()
                    .map_err(|e| UsageError(format!("--psi trigger {trigger:?}: {e}")))?;
                w.psi.push((file.into(), trigger));
            }
            Long("pidfd-socket") => w.pidfd_socket = Some(p.value()?.into()),
            Long("pidfd-allow-uid") => {
                let v = p.value()?;
                w.pidfd_allow_uids.push(parse_id(
                    "--pidfd-allow-uid",
                    &text("--pidfd-allow-uid", &v)?,
                )?);
            }
            Long("pidfd-allow-gid") => {
                let v = p.value()?;
                w.pidfd_allow_gids.push(parse_id(
                    "--pidfd-allow-gid",
                    &text("--pidfd-allow-gid", &v)?,
                )?);
            }
            Long("events") => w.events = events(p.value()?),
            Long("no-kmsg") => w.no_kmsg = true,
            Short('h') | Long("help") => return Ok(Command::Help(WATCH_HELP)),
            other => return Err(other.unexpected().into()),
        }
    }
    let allows = !w.pidfd_allow_uids.is_empty() || !w.pidfd_allow_gids.is_empty();
    if allows && w.pidfd_socket.is_none() {
        return err("--pidfd-allow-uid and --pidfd-allow-gid need --pidfd-socket");
    }
    if w.pids.is_empty() && w.cgroups.is_empty() && w.psi.is_empty() && w.pidfd_socket.is_none() {
        return err("watch needs at least one --pid, --cgroup, --psi or --pidfd-socket");
    }
    Ok(Command::Watch(w))
}

fn parse_gc(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut gc = Gc::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("cgroup-parent") => gc.cgroup_parent = Some(p.value()?.into()),
            Short('h') | Long("help") => return Ok(Command::Help(GC_HELP)),
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Gc(gc))
}

fn parse_locate(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut pid = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(LOCATE_HELP)),
            Value(v) if pid.is_none() => pid = Some(parse_pid(&text("locate", &v)?)?),
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Locate(pid))
}

fn text(name: &str, v: &OsString) -> Result<String, UsageError> {
    v.to_str()
        .map(str::to_owned)
        .ok_or_else(|| UsageError(format!("{name} value {v:?} is not valid UTF-8")))
}

/// A numeric uid or gid (names are not looked up: no NSS in ctrmon).
fn parse_id(name: &str, s: &str) -> Result<u32, UsageError> {
    match s.parse::<u32>() {
        // (uid_t)-1 means "no change" to the kernel, never a user.
        Ok(id) if id != u32::MAX => Ok(id),
        _ => err(format!("{name} {s:?}: expected a numeric id")),
    }
}

pub fn parse_pid(s: &str) -> Result<i32, UsageError> {
    match s.parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => err(format!("invalid pid {s:?}: expected a positive number")),
    }
}

/// A memory limit: a size of at least one page. `0` would have the kernel
/// kill the command at its first allocation, which nobody means.
pub fn parse_memory(s: &str) -> Result<u64, UsageError> {
    let bytes = parse_size(s)?;
    if bytes < 4096 {
        return err(format!(
            "--memory {s:?} is too small: the limit must be at least 4096 bytes (one page)"
        ));
    }
    Ok(bytes)
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

    fn run(args: &[&str]) -> Run {
        match p(args) {
            Ok(Command::Run(r)) => r,
            other => panic!("{other:?}"),
        }
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
        assert!(parse_memory("0").unwrap_err().0.contains("too small"));
        assert!(parse_memory("4095").is_err());
        assert_eq!(parse_memory("4K"), Ok(4096));
    }

    #[test]
    fn run_parses_options_and_command() {
        let r = run(&["run", "--memory", "32M", "--", "sh", "-c", "exit 7"]);
        assert_eq!(r.memory, Some(32 << 20));
        assert_eq!(r.command, ["sh", "-c", "exit 7"].map(OsString::from));
        assert_eq!(r.events, Events::Default);
        assert!(!r.keep_fds);
        // `--opt=value`, `-` meaning standard output.
        let r = run(&["run", "--memory=32M", "--events=-", "--keep-fds", "true"]);
        assert_eq!(r.memory, Some(32 << 20));
        assert_eq!(r.events, Events::Stdout);
        assert!(r.keep_fds && !r.no_kmsg);
        assert!(run(&["run", "--no-kmsg", "true"]).no_kmsg);
        assert!(RUN_HELP.contains("--no-kmsg") && WATCH_HELP.contains("--no-kmsg"));
        match p(&["watch", "--no-kmsg", "--pid", "1"]) {
            Ok(Command::Watch(w)) => assert!(w.no_kmsg),
            other => panic!("{other:?}"),
        }
        let r = run(&["run", "--events", "/tmp/e", "true"]);
        assert_eq!(r.events, Events::File("/tmp/e".into()));
        // Options after `--`, or after the command's name, are the command's.
        let r = run(&["run", "--", "ls", "--memory"]);
        assert_eq!(r.command, ["ls", "--memory"].map(OsString::from));
        let r = run(&["run", "ls", "--help", "--", "-x"]);
        assert_eq!(r.command, ["ls", "--help", "--", "-x"].map(OsString::from));
        let r = run(&["run", "--", "--weird-name"]);
        assert_eq!(r.command, ["--weird-name"].map(OsString::from));
        assert!(p(&["run", "--memory", "32M"])
            .unwrap_err()
            .0
            .contains("needs a command"));
        assert!(p(&["run", "--memory", "12Q", "--", "true"])
            .unwrap_err()
            .0
            .contains("12Q"));
        assert!(p(&["run", "--memory=0", "true"]).is_err());
        assert!(p(&["run", "--memory"]).unwrap_err().0.contains("--memory"));
        assert!(p(&["run", "--bogus", "true"])
            .unwrap_err()
            .0
            .contains("--bogus"));
    }

    #[test]
    fn v2_options() {
        assert!(run(&["run", "--oom-group", "--", "true"]).oom_group);
        assert!(!run(&["run", "--", "true"]).oom_group);
        match p(&[
            "watch",
            "--cgroup",
            "/c",
            "--local-events",
            "--populated-only",
        ]) {
            Ok(Command::Watch(w)) => assert!(w.local_events && w.populated_only),
            other => panic!("{other:?}"),
        }
        match p(&["watch", "--cgroup", "/c"]) {
            Ok(Command::Watch(w)) => assert!(!w.local_events && !w.populated_only),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_command_has_help() {
        assert_eq!(p(&["run", "--help"]).unwrap(), Command::Help(RUN_HELP));
        assert_eq!(p(&["run", "-h"]).unwrap(), Command::Help(RUN_HELP));
        assert_eq!(p(&["watch", "--help"]).unwrap(), Command::Help(WATCH_HELP));
        assert_eq!(p(&["gc", "--help"]).unwrap(), Command::Help(GC_HELP));
        assert_eq!(
            p(&["locate", "--help"]).unwrap(),
            Command::Help(LOCATE_HELP)
        );
        assert_eq!(p(&["--help"]).unwrap(), Command::Help(USAGE));
        for help in [RUN_HELP, WATCH_HELP, GC_HELP, LOCATE_HELP] {
            assert!(help.contains("Exit status"), "{help}");
        }
    }

    #[test]
    fn watch_gc_and_locate() {
        let Command::Watch(w) = p(&[
            "watch",
            "--pid",
            "1",
            "--pid=22",
            "--cgroup",
            "/sys/fs/cgroup/x",
            "--psi",
            "/proc/pressure/cpu=some 150000 2000000",
            "--events",
            "-",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(w.pids, [1, 22]);
        assert_eq!(w.cgroups, [PathBuf::from("/sys/fs/cgroup/x")]);
        assert_eq!(w.psi[0].1.to_kernel_string(), "some 150000 2000000");
        assert_eq!(w.events, Events::Stdout);
        assert!(p(&["watch", "--pid", "0"]).unwrap_err().0.contains("\"0\""));
        assert!(p(&["watch", "--pid", "abc"]).unwrap_err().0.contains("abc"));
        assert!(p(&["watch"]).is_err());
        assert!(p(&["watch", "--psi", "/proc/pressure/cpu"]).is_err());
        assert!(p(&["watch", "--psi", "f=some 0 1"]).is_err());
        assert!(p(&["watch", "--pid", "1", "stray"]).is_err());
        let Command::Watch(w) = p(&["watch", "--pidfd-socket", "/run/x.sock"]).unwrap() else {
            panic!()
        };
        assert_eq!(w.pidfd_socket, Some(PathBuf::from("/run/x.sock")));
        assert!(w.pidfd_allow_uids.is_empty() && w.pidfd_allow_gids.is_empty());
        let Command::Watch(w) = p(&[
            "watch",
            "--pidfd-socket=/s",
            "--pidfd-allow-uid",
            "1000",
            "--pidfd-allow-uid=1001",
            "--pidfd-allow-gid",
            "100",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (w.pidfd_allow_uids, w.pidfd_allow_gids),
            (vec![1000, 1001], vec![100])
        );
        assert!(
            p(&["watch", "--pidfd-socket=/s", "--pidfd-allow-uid", "bob"])
                .unwrap_err()
                .0
                .contains("bob")
        );
        assert!(p(&["watch", "--pid", "1", "--pidfd-allow-gid", "5"])
            .unwrap_err()
            .0
            .contains("need --pidfd-socket"));
        assert_eq!(p(&["gc"]).unwrap(), Command::Gc(Gc::default()));
        assert_eq!(
            p(&["gc", "--cgroup-parent=/x"]).unwrap(),
            Command::Gc(Gc {
                cgroup_parent: Some("/x".into())
            })
        );
        assert_eq!(p(&["locate"]).unwrap(), Command::Locate(None));
        assert_eq!(p(&["locate", "42"]).unwrap(), Command::Locate(Some(42)));
        assert!(p(&["locate", "-3"]).is_err());
        assert!(p(&["locate", "1", "2"]).is_err());
        assert_eq!(p(&["--version"]).unwrap(), Command::Version);
        assert!(p(&[]).is_err());
        assert!(p(&["frobnicate"]).unwrap_err().0.contains("frobnicate"));
    }
}
