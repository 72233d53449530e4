//! Inherited fds are kept from a child on kernels without
//! `CLOSE_RANGE_CLOEXEC` (5.10: `EINVAL`; before 5.9: `ENOSYS`).
//!
//! The library's fallback is asked for by name; the CLI's `run` is started
//! under a seccomp filter that answers `close_range` as those kernels do
//! (installed by a python helper with ctypes, in a process of its own), so
//! the kernel-refusal path itself runs here. Each child lists the fds it
//! got at `exec`, which must be 0, 1, 2 (and the kept ones).

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use ctrmon::spawn::{ChildSetup, CloexecMethod};

/// The fds a process has, read from outside it.
fn fds_of(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// `n` duplicates of stdin-like `/dev/null`, none close-on-exec (`dup`).
fn leaky_fds(n: usize) -> Vec<OwnedFd> {
    let null = std::fs::File::open("/dev/null").unwrap();
    (0..n)
        .map(|_| rustix::io::dup(null.as_fd()).unwrap())
        .collect()
}

fn spawn_sleep(setup: Option<ChildSetup>) -> common::Kid {
    let mut cmd = Command::new("sleep");
    cmd.arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(setup) = setup {
        setup.apply(&mut cmd);
    }
    // `spawn` returns once the exec has happened (std waits for its
    // close-on-exec error pipe), but `sleep` then opens files of its own
    // for a moment (the locale archive, as fd 3): its table is read once it
    // sleeps.
    let kid = common::Kid::spawn(&mut cmd);
    wait_until_sleeping(kid.child.id());
    kid
}

/// Waits until `pid` is in `clock_nanosleep` or `nanosleep` (x86-64's 230
/// and 35, the first field of `/proc/<pid>/syscall`).
fn wait_until_sleeping(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if matches!(text.split(' ').next(), Some("230" | "35")) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sleep (pid {pid}) never reached its sleep: /proc/{pid}/syscall says {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn the_proc_walk_leaves_the_child_only_its_standard_streams() {
    // 200 fds: more records than the walk's stack buffer holds at once.
    let leaks = leaky_fds(200);
    let setup = ChildSetup::new().close_inherited_fds_via(CloexecMethod::ProcSelfFd);
    assert_eq!(setup.cloexec_method(), Some(CloexecMethod::ProcSelfFd));
    let kid = spawn_sleep(Some(setup));
    assert_eq!(fds_of(kid.child.id()), [0, 1, 2]);

    // Without the setup the same fds do reach the child: the check above
    // can see a leak.
    let kid = spawn_sleep(None);
    let fds = fds_of(kid.child.id());
    assert!(fds.len() >= 203, "{} fds: {fds:?}", fds.len());
    drop(leaks);
}

#[test]
fn the_default_method_is_close_range_where_the_kernel_has_the_flag() {
    // This host runs 6.18; the guest's 5.10 takes the other branch.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    let expected = if (major, minor) >= (5, 11) {
        CloexecMethod::CloseRange
    } else {
        CloexecMethod::ProcSelfFd
    };
    assert_eq!(CloexecMethod::detect().unwrap(), expected);
    let _leaks = leaky_fds(3);
    let kid = spawn_sleep(Some(ChildSetup::new().close_inherited_fds()));
    assert_eq!(fds_of(kid.child.id()), [0, 1, 2]);
}

/// A python helper that installs a seccomp filter answering `close_range`
/// with `errno` (only when the call carries `CLOSE_RANGE_CLOEXEC`, as 5.10
/// does, if `flag_only`), checks that it took, and execs the rest of its
/// arguments.
const SECCOMP_EXEC: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
errno, flag_only = int(sys.argv[1]), sys.argv[2] == "flag"
NR_CLOSE_RANGE, CLOEXEC = 436, 4
prog = [
    (0x20, 0, 0, 4),                 # ld arch
    (0x15, 0, 5, 0xc000003e),        # x86-64, else allow
    (0x20, 0, 0, 0),                 # ld nr
    (0x15, 0, 3, NR_CLOSE_RANGE),    # close_range, else allow
    (0x20, 0, 0, 32),                # ld low word of args[2] (flags)
    (0x45, 0, 1, CLOEXEC) if flag_only else (0x05, 0, 0, 0),
    (0x06, 0, 0, 0x00050000 | errno),  # SECCOMP_RET_ERRNO
    (0x06, 0, 0, 0x7fff0000),        # SECCOMP_RET_ALLOW
]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog), ctypes.addressof(code))
assert libc.prctl(38, 1, 0, 0, 0) == 0            # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP
u = ctypes.c_uint
rc = libc.syscall(NR_CLOSE_RANGE, u(0xffffffff), u(0xffffffff), u(CLOEXEC))
assert rc == -1 and ctypes.get_errno() == errno, (rc, ctypes.get_errno())
if flag_only:
    assert libc.syscall(NR_CLOSE_RANGE, u(0xffffffff), u(0xffffffff), u(0)) == 0
os.execv(sys.argv[3], sys.argv[3:])
"#;

/// `ctrmon run [extra] -- sh -c 'ls /proc/$$/fd'` (the command's own table,
/// listed by its child `ls`), started with fd 7 open and not close-on-exec,
/// under a filter that answers `close_range` with `errno`.
fn run_under_filter(errno: i32, flag_only: bool, extra: &[&str]) -> (Option<i32>, String, String) {
    let script = format!(
        "exec 7</dev/null; exec python3 -c \"$0\" {errno} {} '{}' run {} -- sh -c 'ls /proc/$$/fd'",
        if flag_only { "flag" } else { "call" },
        env!("CARGO_BIN_EXE_ctrmon"),
        extra.join(" ")
    );
    let out = Command::new("sh")
        .args(["-c", &script, SECCOMP_EXEC])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn numbers(text: &str) -> Vec<u32> {
    let mut v: Vec<u32> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn run_prerequisites() -> bool {
    if common::memory_v1().is_none() && common::memory_hierarchy().is_none() {
        assert!(!common::cgroups_required(), "no memory cgroup for run");
        return false;
    }
    let python = Command::new("python3")
        .args(["-c", "import ctypes"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(python, "the seccomp helper needs python3 with ctypes");
    true
}

#[test]
fn run_on_a_kernel_that_refuses_the_flag_still_keeps_inherited_fds() {
    if !run_prerequisites() {
        return;
    }
    // 5.10 (EINVAL for the flag) and before 5.9 (ENOSYS for the call).
    for (errno, flag_only) in [(libc::EINVAL, true), (libc::ENOSYS, false)] {
        let (code, out, err) = run_under_filter(errno, flag_only, &[]);
        assert_eq!(code, Some(0), "errno {errno}: {err}");
        assert_eq!(numbers(&out), [0, 1, 2], "errno {errno}: {out} {err}");
        // The same set-up with --keep-fds passes fd 7 on (and whatever the
        // helpers leaked: pyenv's shim is a bash script): the listing sees
        // an inherited fd when there is one.
        let (code, out, err) = run_under_filter(errno, flag_only, &["--keep-fds"]);
        assert_eq!(code, Some(0), "errno {errno}: {err}");
        let fds = numbers(&out);
        assert!(
            fds.starts_with(&[0, 1, 2]) && fds.contains(&7),
            "errno {errno}: {fds:?} {err}"
        );
    }
}
