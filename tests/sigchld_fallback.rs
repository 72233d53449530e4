//! Where `pidfd_open` is refused: children watched through SIGCHLD.
//!
//! Every scenario runs its subject under `tests/helpers/seccomp_errno.py`,
//! which installs a seccomp filter answering `pidfd_open` with `EPERM` (as
//! a container's allow-list does; `ENOSYS` in one case) in a process of its
//! own and then execs: the CLI, or this binary again as a helper role
//! (`CTRMON_TEST_HELPER`), whose `main` blocks SIGCHLD before anything else
//! and first checks that `pidfd_open` really fails (so nothing here can
//! pass with pidfds working). This binary runs its own `main` (no libtest
//! harness) for that reason.

mod common;

use ctrmon::watch::{Orphans, Process};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use common::json::{event, field, lines};
use common::{helper_role, memory_v1, run_scenarios};
use ctrmon::reaper::{become_subreaper, block_sigchld};
use ctrmon::{EventKind, ExitMode, ExitStatus, Monitor, WatchId};
use rustix::io::Errno;
use rustix::process::{
    getpid, kill_process, pidfd_open, pidfd_send_signal, waitid, Pid, PidfdFlags, Signal, WaitId,
    WaitIdOptions,
};

const HELPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/helpers/seccomp_errno.py"
);
const REFUSED: &str = "pidfd_open is refused here (EPERM";

fn main() -> ExitCode {
    if let Some(role) = helper_role() {
        // Before any thread (and before the monitor is made).
        block_sigchld().expect("block SIGCHLD");
        assert_eq!(
            pidfd_open(getpid(), PidfdFlags::empty()).map(drop),
            Err(Errno::PERM),
            "the seccomp helper did not refuse pidfd_open"
        );
        match role.as_str() {
            "children" => inner_children(),
            "not_children" => inner_not_children(),
            "orphans" => inner_orphans(),
            "ignored" => inner_ignored(),
            _ => panic!("unknown helper role {role}"),
        }
        println!("inner {role}: ok");
        std::process::exit(0);
    }
    run_scenarios(&[
        ("cli_run_passes_exit_7_through", cli_exit_code),
        ("cli_run_under_enosys_passes_exit_7_through", cli_enosys),
        ("cli_run_reports_oom_kill_as_137", cli_oom),
        ("cli_run_reports_a_signal_and_forwards_sigterm", cli_signal),
        ("cli_run_kills_what_the_command_left", cli_kills_leftovers),
        ("cli_says_nothing_when_pidfds_work", cli_silent_with_pidfds),
        ("library_watches_children_to_their_statuses", || {
            outer("children")
        }),
        ("library_refuses_non_children_clearly", || {
            outer("not_children")
        }),
        ("library_reaps_orphans_beside_watched_children", || {
            outer("orphans")
        }),
        ("library_refuses_children_when_sigchld_is_ignored", || {
            outer_with("ignored", &["--ignore-sigchld"])
        }),
    ])
}

// ---------------------------------------------------------------------------
// The CLI, under the filter.

fn ctrmon_refused(errno: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args([HELPER, "--errno", errno, env!("CARGO_BIN_EXE_ctrmon")])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// The lines on stderr that are not events: what ctrmon said.
fn said(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

fn check_said_once(out: &Output, needle: &str) {
    let said = said(&out.stderr);
    let hits = said.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(hits, 1, "expected one {needle:?} line, got {said:?}");
}

fn cli_exit_code() {
    if memory_v1().is_none() {
        return;
    }
    let out = ctrmon_refused("EPERM", &["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    let ev = lines(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{ev:?} {:?}", said(&out.stderr));
    check_said_once(&out, REFUSED);
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["start", "exit"], "{ev:?}");
    assert_eq!(field(&ev[1], "code"), Some("7"));
    let cg = field(&ev[0], "cgroup").unwrap();
    assert!(!std::path::Path::new(cg).exists(), "{cg} left behind");
}

fn cli_enosys() {
    if memory_v1().is_none() {
        return;
    }
    // As a kernel before 5.3 answers.
    let out = ctrmon_refused("ENOSYS", &["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{:?}", said(&out.stderr));
    check_said_once(&out, "pidfd_open is refused here (ENOSYS");
}

fn cli_oom() {
    if memory_v1().is_none() {
        return;
    }
    let out = ctrmon_refused(
        "EPERM",
        &["run", "--memory", "32M", "--", "tail", "/dev/zero"],
    )
    .output()
    .unwrap();
    let ev = lines(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{ev:?} {:?}",
        said(&out.stderr)
    );
    check_said_once(&out, REFUSED);
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    // The cgroup's OOM before the exit, as with pidfds.
    assert_eq!(names, ["start", "oom", "exit"], "{ev:?}");
    assert_eq!(field(&ev[1], "oom_kill"), Some("1"), "{ev:?}");
    assert_eq!(field(&ev[2], "signal"), Some("9"), "{ev:?}");
    assert_eq!(field(&ev[2], "oom_killed"), Some("true"), "{ev:?}");
}

/// A ctrmon started by this test, SIGKILLed and reaped on drop; signalled
/// through a pidfd (this process is not under the filter).
struct Ctrmon {
    child: Child,
    pidfd: OwnedFd,
}

impl Drop for Ctrmon {
    fn drop(&mut self) {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
        let _ = self.child.wait();
    }
}

fn cli_signal() {
    if memory_v1().is_none() {
        return;
    }
    // The command's own signal.
    let out = ctrmon_refused("EPERM", &["run", "--", "sh", "-c", "kill -TERM $$"])
        .output()
        .unwrap();
    let ev = lines(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{ev:?} {:?}",
        said(&out.stderr)
    );
    assert_eq!(field(&ev[1], "signal"), Some("15"), "{ev:?}");
    // A signal sent to ctrmon, forwarded to the command by its pid (there
    // is no pidfd for it).
    let child = ctrmon_refused("EPERM", &["run", "--", "sleep", "600"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).unwrap();
    let mut c = Ctrmon { child, pidfd };
    let mut stderr = c.child.stderr.take().unwrap();
    // The start line comes once the command is watched.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"event\":\"start\"") {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(
            n > 0,
            "ctrmon ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    pidfd_send_signal(&c.pidfd, Signal::TERM).unwrap();
    std::io::Read::read_to_end(&mut stderr, &mut seen).unwrap();
    let status = c.child.wait().unwrap();
    let ev = lines(&seen);
    assert_eq!(status.code(), Some(143), "{ev:?}");
    let exit = ev
        .iter()
        .find(|l| event(l) == "exit")
        .expect("an exit line");
    assert_eq!(field(exit, "signal"), Some("15"), "{ev:?}");
}

/// A process the test's command left behind in its cgroup: SIGKILLed on
/// drop if it is still in that cgroup (a failed assertion must not leave it
/// running; never anything else that has its pid).
struct Leftover {
    pid: i32,
    cgroup: String,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        let Some(p) = Pid::from_raw(self.pid) else {
            return;
        };
        let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
            return;
        };
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid)).unwrap_or_default();
        let name = self.cgroup.rsplit('/').next().unwrap_or("-");
        if cg.lines().any(|l| l.ends_with(&format!("/{name}"))) {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
        }
    }
}

fn cli_kills_leftovers() {
    if memory_v1().is_none() {
        return;
    }
    // The command leaves a sleeper behind: ctrmon must kill it (there is no
    // pidfd for it, and it is not ctrmon's child) to remove the cgroup.
    let dir = common::TmpDir::new("sigchld-leftover");
    let file = dir.path.join("pid");
    let script = format!("sleep 600 & echo $! > {}; exit 0", file.display());
    let out = ctrmon_refused("EPERM", &["run", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    let ev = lines(&out.stderr);
    let pid: i32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cg = field(&ev[0], "cgroup").unwrap().to_owned();
    let _guard = Leftover {
        pid,
        cgroup: cg.clone(),
    };
    assert_eq!(out.status.code(), Some(0), "{ev:?} {:?}", said(&out.stderr));
    assert!(!std::path::Path::new(&cg).exists(), "{cg} left behind");
    // Killed: gone, or a zombie its new parent has not reaped yet.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    assert!(
        matches!(state, None | Some("Z" | "X")),
        "sleeper {pid} alive: {stat}"
    );
}

fn cli_silent_with_pidfds() {
    if memory_v1().is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ctrmon"))
        .args(["run", "--", "sh", "-c", "exit 7"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(said(&out.stderr), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// The library: this binary again, under the filter.

fn outer(role: &str) {
    outer_with(role, &[]);
}

/// [`outer`], with options for the seccomp helper.
fn outer_with(role: &str, helper_opts: &[&str]) {
    let out = Command::new("python3")
        .arg(HELPER)
        .args(helper_opts)
        .arg(std::env::current_exe().unwrap())
        .env("CTRMON_TEST_HELPER", role)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner {role} failed: {text}");
    assert!(text.contains(&format!("inner {role}: ok")), "{text}");
}

/// Children of the inner process, killed and reaped on drop. Only we reap
/// them, so while `waitid(WNOWAIT)` finds one it is still that process and
/// its pid can be signalled.
#[derive(Default)]
struct Kids(Vec<i32>);

impl Kids {
    fn spawn(&mut self, cmd: &mut Command) -> i32 {
        let pid = cmd.spawn().expect("spawn").id() as i32;
        self.0.push(pid);
        pid
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let id = Pid::from_raw(pid).unwrap();
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
            if waitid(WaitId::Pid(id), opts).is_ok() {
                let _ = kill_process(id, Signal::KILL);
                let _ = waitid(WaitId::Pid(id), WaitIdOptions::EXITED);
            }
        }
    }
}

fn new_monitor() -> Monitor<i32> {
    let m = Monitor::builder().kernel_log(false).build().unwrap();
    assert_eq!(
        m.exit_mode(),
        ExitMode::SigchldFallback { errno: libc::EPERM }
    );
    m
}

/// Waits (30 s at most, a hang guard) until `want` exits are delivered.
fn collect_exits(m: &mut Monitor<i32>, want: usize) -> HashMap<i32, ctrmon::Exit> {
    let mut got = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want && Instant::now() < deadline {
        m.wait_mut(Some(Duration::from_millis(200)), |e, _| match e.kind {
            EventKind::Exited(x) => {
                assert!(got.insert(x.pid, x).is_none(), "two exits for {}", x.pid);
            }
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
    }
    got
}

fn inner_children() {
    let mut m = new_monitor();
    let mut kids = Kids::default();
    // One that has exited (a zombie) before it is watched, and whose
    // SIGCHLD a wait has already taken: only the look right after the
    // watch is armed can find it.
    let early = kids.spawn(Command::new("sh").args(["-c", "exit 42"]));
    waitid(
        WaitId::Pid(Pid::from_raw(early).unwrap()),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .unwrap();
    assert_eq!(m.wait_mut(Some(Duration::ZERO), |_, _| {}).unwrap(), 0);
    m.watch(Process::pid(early), 100).unwrap();
    let got = collect_exits(&mut m, 1);
    assert_eq!(
        got.get(&early).map(|x| x.status),
        Some(ExitStatus::Code(42))
    );
    let mut want: HashMap<i32, ExitStatus> = HashMap::new();
    // A burst: every one blocks on the same pipe and exits when it closes,
    // so the SIGCHLDs coalesce (one pending signal for many exits).
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let scripts = [
        ("read x; exit 0", ExitStatus::Code(0)),
        ("read x; exit 3", ExitStatus::Code(3)),
        ("read x; exit 255", ExitStatus::Code(255)),
        ("read x; kill -TERM $$", ExitStatus::Signal(15)),
        ("read x; kill -KILL $$", ExitStatus::Signal(9)),
        ("read x; kill -USR1 $$", ExitStatus::Signal(10)),
    ];
    for round in 0..4 {
        for (script, status) in scripts {
            let stdin = Stdio::from(r.try_clone().unwrap());
            let pid = kids.spawn(Command::new("sh").args(["-c", script]).stdin(stdin));
            m.watch(Process::pid(pid), round).unwrap();
            want.insert(pid, status);
        }
    }
    // One left a zombie for us to reap, in the same burst.
    let stdin = Stdio::from(r.try_clone().unwrap());
    let unreaped = kids.spawn(
        Command::new("sh")
            .args(["-c", "read x; exit 9"])
            .stdin(stdin),
    );
    m.watch(Process::pid(unreaped).without_reaping(), 101)
        .unwrap();
    want.insert(unreaped, ExitStatus::Code(9));
    drop(r);
    // The burst.
    drop(w);

    let got = collect_exits(&mut m, want.len());
    assert_eq!(got.len(), want.len(), "exits: {got:?}");
    for (pid, status) in &want {
        let exit = &got[pid];
        assert_eq!(exit.status, *status, "pid {pid}");
        assert_eq!(exit.reaped, *pid != unreaped, "pid {pid}");
        assert_eq!(exit.unknown, None, "pid {pid}");
    }
    assert!(m.is_empty());
    // Reaped by the monitor: gone. The unreaped one is still a zombie.
    for pid in want.keys().filter(|&&p| p != unreaped) {
        let gone = waitid(
            WaitId::Pid(Pid::from_raw(*pid).unwrap()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
        assert_eq!(gone.map(|_| ()), Err(Errno::CHILD), "pid {pid} not reaped");
    }
    let st = waitid(
        WaitId::Pid(Pid::from_raw(unreaped).unwrap()),
        WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_status(), Some(9));
}

fn inner_not_children() {
    let m = new_monitor();
    // PID 1 is nobody's child here: refused, naming the pid, the call and
    // the errno.
    let err = m.watch(Process::pid(1), 0).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.pid(), Some(1), "{msg}");
    for needle in ["pid 1", "not our child", "pidfd_open", "EPERM"] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert!(!err.is_process_gone(), "{msg}");
    // A child reaped already is gone, as `pidfd_open`'s ESRCH says.
    let mut kids = Kids::default();
    let pid = kids.spawn(&mut Command::new("true"));
    waitid(
        WaitId::Pid(Pid::from_raw(pid).unwrap()),
        WaitIdOptions::EXITED,
    )
    .unwrap();
    let err = m.watch(Process::pid(pid), 0).unwrap_err();
    assert!(err.is_process_gone(), "{err}");
    // A pidfd the caller holds would still be watched through epoll; none
    // can be made here, and nothing was added.
    assert!(m.is_empty());
}

fn inner_orphans() {
    become_subreaper().unwrap();
    let mut m = new_monitor();
    let reaper: WatchId = m.watch(Orphans, -1).unwrap();
    let mut kids = Kids::default();
    // A watched child that leaves an orphan behind (re-parented to us),
    // which exits a moment later with a code of its own.
    let hold = m.hold_orphans();
    let pid = kids.spawn(Command::new("sh").args(["-c", "(sleep 0.2; exit 4) & exit 6"]));
    m.watch(Process::pid(pid), 1).unwrap();
    drop(hold);
    let mut exit = None;
    let mut orphans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (exit.is_none() || orphans.is_empty()) && Instant::now() < deadline {
        m.wait_mut(Some(Duration::from_millis(200)), |e, _| match e.kind {
            EventKind::Exited(x) => exit = Some(x),
            EventKind::Orphan(o) => {
                assert_eq!(e.id, reaper);
                orphans.push(o);
            }
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
    }
    let exit = exit.expect("the child's exit");
    assert_eq!(
        (exit.pid, exit.status, exit.reaped),
        (pid, ExitStatus::Code(6), true)
    );
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!(orphans[0].status, ExitStatus::Code(4));
    assert_ne!(orphans[0].pid, pid);
}

fn inner_ignored() {
    // SIGCHLD ignored (inherited through exec): the kernel would reap the
    // children itself and their statuses would be lost. Refused, saying so.
    let m = new_monitor();
    let mut kids = Kids::default();
    let pid = kids.spawn(Command::new("sleep").arg("600").stdin(Stdio::null()));
    let err = m.watch(Process::pid(pid), 0).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.pid(), Some(pid), "{msg}");
    assert!(msg.contains("SIGCHLD is ignored"), "{msg}");
    assert!(m.is_empty());
}
