//! Test support: children that are always killed and reaped, even when an
//! assertion fails, without ever signalling a pid that might have been
//! reused (everything goes through a pidfd opened right after spawn).
#![allow(dead_code)]

pub mod json;

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use rustix::process::{
    pidfd_open, pidfd_send_signal, waitid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions,
};

/// A child process that is killed and reaped when dropped.
pub struct Kid {
    pub child: Child,
    pidfd: OwnedFd,
}

impl Kid {
    pub fn spawn(cmd: &mut Command) -> Kid {
        let child = cmd.spawn().expect("spawn test child");
        // The child cannot have been reaped yet: only we can reap it.
        let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).expect("pidfd_open");
        Kid { child, pidfd }
    }

    pub fn sh(script: &str) -> Kid {
        Kid::spawn(Command::new("sh").args(["-c", script]))
    }

    pub fn sh_piped(script: &str) -> Kid {
        Kid::spawn(
            Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped()),
        )
    }

    pub fn sleeper() -> Kid {
        Kid::spawn(Command::new("sleep").arg("600"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill(&self) {
        // ESRCH once it has been reaped: the pidfd never names another process.
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
    }

    /// Blocks until the child has exited, without reaping it.
    pub fn wait_exited_no_reap(&self) {
        waitid(
            WaitId::PidFd(self.pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .expect("waitid NOWAIT");
    }

    /// Reaps the child (blocking); returns false if someone else already did.
    pub fn reap(&self) -> bool {
        waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED).is_ok()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
        self.reap();
    }
}

/// Waits until process `watcher` (a `ctrmon` under test) has an fd that
/// `wanted(fd, fdinfo, link target)` picks registered in one of its epoll
/// sets: what it watches is armed. An epoll fd's fdinfo has a line
/// `tfd: <fd> events: …` per registered fd. Panics, with `watcher`'s stderr
/// if it was piped, when it exits first or after 20 s.
#[allow(dead_code)]
pub fn wait_in_epoll(watcher: &mut Kid, what: &str, wanted: impl Fn(&str, &str, &str) -> bool) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let proc = format!("/proc/{}", watcher.pid());
    let fdinfo =
        |fd: &str| std::fs::read_to_string(format!("{proc}/fdinfo/{fd}")).unwrap_or_default();
    loop {
        let fds: Vec<(String, String)> = std::fs::read_dir(format!("{proc}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let target = std::fs::read_link(e.path()).ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    target.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let picked: Vec<&str> = fds
            .iter()
            .filter(|(fd, target)| wanted(fd, &fdinfo(fd), target))
            .map(|(fd, _)| fd.as_str())
            .collect();
        let armed = fds
            .iter()
            .filter(|(_, t)| t.contains("eventpoll"))
            .any(|(fd, _)| {
                fdinfo(fd).lines().any(|l| {
                    l.strip_prefix("tfd:")
                        .and_then(|rest| rest.split_whitespace().next())
                        .is_some_and(|n| picked.contains(&n))
                })
            });
        if armed {
            return;
        }
        if let Ok(Some(status)) = watcher.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = watcher.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("ctrmon ended before {what} was armed ({status}): {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never armed in pid {}",
            watcher.pid()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Open fds of this process, by number.
///
/// The listing's own directory fd is in the listing, and its number depends
/// on which fds happen to be free (another thread's short-lived fd moves it:
/// CI once saw `[0, 1, 2, 4]` before and `[0, 1, 2, 3]` after). So an entry
/// counts only if it is still open once the directory is closed.
pub fn open_fds() -> Vec<i32> {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut v: Vec<i32> = listed
        .into_iter()
        .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    v.sort_unstable();
    v
}

/// True when `CTRMON_REQUIRE_CGROUPS=1`: a missing prerequisite then fails
/// the test instead of skipping it.
pub fn cgroups_required() -> bool {
    std::env::var("CTRMON_REQUIRE_CGROUPS").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) or fails, per [`cgroups_required`], when `root`
/// is not a writable cgroup hierarchy we can use.
pub fn cgroup_root(root: &str, needs_file: &str) -> Option<std::path::PathBuf> {
    let root = std::path::PathBuf::from(root);
    let ok = rustix::process::geteuid().is_root() && root.join(needs_file).exists();
    if ok {
        return Some(root);
    }
    let msg = format!(
        "{} with {needs_file} is not usable (need root and that hierarchy)",
        root.display()
    );
    if cgroups_required() {
        panic!("CTRMON_REQUIRE_CGROUPS=1 but {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// The v1 memory hierarchy, or skip.
pub fn memory_v1() -> Option<std::path::PathBuf> {
    cgroup_root("/sys/fs/cgroup/memory", "memory.oom_control")
}

/// The v2 hierarchy (without the memory controller on this machine), or skip.
pub fn unified_v2() -> Option<std::path::PathBuf> {
    cgroup_root("/sys/fs/cgroup/unified", "cgroup.procs")
}

/// A `ctrmon-test-*` cgroup that is removed on drop, after every process in
/// it (all of them started by the test) is killed.
pub struct TestCgroup {
    pub path: std::path::PathBuf,
    removed: bool,
}

impl TestCgroup {
    /// Creates `parent/ctrmon-test-<name>-<pid>`.
    pub fn new(parent: &std::path::Path, name: &str) -> TestCgroup {
        let path = parent.join(format!("ctrmon-test-{name}-{}", std::process::id()));
        if path.exists() {
            // Left over from a crashed run of this same test and pid.
            let _ = TestCgroup {
                path: path.clone(),
                removed: false,
            };
        }
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup {
            path,
            removed: false,
        }
    }

    /// A child cgroup inside this one.
    pub fn child(&self, name: &str) -> TestCgroup {
        let path = self.path.join(format!("ctrmon-test-{name}"));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup {
            path,
            removed: false,
        }
    }

    pub fn set(&self, file: &str, value: &str) {
        std::fs::write(self.path.join(file), value)
            .unwrap_or_else(|e| panic!("write {value} to {}/{file}: {e}", self.path.display()));
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path.join(file))
            .unwrap_or_else(|e| panic!("read {}/{file}: {e}", self.path.display()))
    }

    /// A counter line `key N` from a flat-keyed file.
    pub fn counter(&self, file: &str, key: &str) -> u64 {
        self.read(file)
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {}/{file}", self.path.display()))
    }

    /// Runs `script` in `sh` that first moves itself into this cgroup, so
    /// everything it execs starts inside.
    pub fn sh(&self, script: &str) -> Kid {
        self.sh_with_stdin(script, Stdio::null())
    }

    pub fn sh_with_stdin(&self, script: &str, stdin: Stdio) -> Kid {
        let full = format!(
            "echo $$ > '{}/cgroup.procs' && {script}",
            self.path.display()
        );
        Kid::spawn(
            Command::new("sh")
                .args(["-c", &full])
                .stdin(stdin)
                .stdout(Stdio::null()),
        )
    }

    /// A process that allocates without bound (GNU `tail` buffering an
    /// endless line from /dev/zero) until the OOM killer stops it.
    pub fn memory_hog(&self) -> Kid {
        let zero = std::fs::File::open("/dev/zero").expect("open /dev/zero");
        self.sh_with_stdin("exec tail", Stdio::from(zero))
    }

    /// Removes the cgroup now (it must be empty); panics on failure.
    pub fn remove(&mut self) {
        remove_cgroup(&self.path).unwrap_or_else(|e| panic!("rmdir {}: {e}", self.path.display()));
        self.removed = true;
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

fn remove_cgroup(path: &std::path::Path) -> std::io::Result<()> {
    // Processes killed a moment ago may still be leaving: retry briefly.
    let mut last = Ok(());
    for _ in 0..200 {
        last = std::fs::remove_dir(path);
        match &last {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => break,
        }
    }
    last
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if self.removed || !self.path.exists() {
            return;
        }
        // Child cgroups first (the tests make at most one level).
        if let Ok(rd) = std::fs::read_dir(&self.path) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() && e.file_name().to_string_lossy().starts_with("ctrmon-test-") {
                    drop(TestCgroup {
                        path: p,
                        removed: false,
                    });
                }
            }
        }
        // Only processes our tests put here: each was started by a `Kid`
        // which kills and reaps it too; this catches their descendants.
        for pid in self.pids() {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                if let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) {
                    let _ = pidfd_send_signal(&fd, Signal::KILL);
                }
            }
        }
        if let Err(e) = remove_cgroup(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers added for the reliability suite (tests/reliability_*.rs, soak.rs).

/// Serializes the tests of one binary that count fds, fill the fd table or
/// spawn thousands of processes: the fd table is process-wide and the tests
/// of a binary run on parallel threads. Poison-tolerant, so one failing test
/// does not fail the others.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a [`Kid`] is in its life, as its pidfd tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KidState {
    Running,
    /// Exited, not reaped yet.
    Zombie,
    /// Reaped (by us, or by the monitor).
    Reaped,
}

impl Kid {
    /// This child's pidfd (it names this process only, never a reused pid).
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Running, zombie or reaped, without changing anything.
    pub fn state(&self) -> KidState {
        match waitid(
            WaitId::PidFd(self.pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ) {
            Ok(None) => KidState::Running,
            Ok(Some(_)) => KidState::Zombie,
            Err(rustix::io::Errno::CHILD) => KidState::Reaped,
            Err(e) => panic!("waitid on the pidfd of {}: {e}", self.pid()),
        }
    }
}

/// A `/tmp/ctrmon-test-<name>-<pid>` directory, removed with its contents
/// on drop (it never contains anything but what the test put there).
pub struct TmpDir {
    pub path: std::path::PathBuf,
}

impl TmpDir {
    pub fn new(name: &str) -> TmpDir {
        let path = std::env::temp_dir().join(format!("ctrmon-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TmpDir { path }
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The names in a directory, sorted.
pub fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Collects events until `done` says so; panics after `limit`.
pub fn wait_until<T: Clone + std::fmt::Debug>(
    m: &ctrmon::Monitor<T>,
    limit: std::time::Duration,
    mut done: impl FnMut(&[ctrmon::Event<'static, T>]) -> bool,
) -> Vec<ctrmon::Event<'static, T>> {
    let deadline = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    while !done(&got) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?}; events so far: {got:?}"
        );
        m.wait(Some(std::time::Duration::from_millis(100)), |e| {
            got.push(e.cloned())
        })
        .unwrap();
    }
    got
}

/// Leftover `ctrmon-test-*` cgroups of this process under `root` (for
/// assertions that a test cleaned up after itself).
pub fn leftover_cgroups(root: &std::path::Path) -> Vec<String> {
    let me = format!("-{}", std::process::id());
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ctrmon-test-") && n.contains(&me))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The hierarchy with the memory controller, whichever version has it.

/// Where OOM tests make their cgroups: the v1 memory hierarchy, or on a
/// v2-only kernel the cgroup2 root, when it has `memory` and enables it for
/// its children. Skips (`None`) or fails, per [`cgroups_required`].
pub fn memory_hierarchy() -> Option<std::path::PathBuf> {
    let words = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let has_memory = |s: String| s.split_whitespace().any(|w| w == "memory");
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    let found = if v1.join("memory.oom_control").exists() {
        Some(v1.to_path_buf())
    } else {
        ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|r| has_memory(words(r.join("cgroup.subtree_control"))))
    };
    match found {
        Some(root) if rustix::process::geteuid().is_root() => Some(root),
        _ => {
            let msg = "no memory hierarchy usable (need root, and cgroup v1 memory or a \
                       cgroup2 root with memory in cgroup.subtree_control)";
            if cgroups_required() {
                panic!("CTRMON_REQUIRE_CGROUPS=1 but {msg}");
            }
            eprintln!("skipping: {msg}");
            None
        }
    }
}

impl TestCgroup {
    /// Limits memory to `bytes`, without swap: `memory.max` (v2) or
    /// `memory.limit_in_bytes` (v1).
    pub fn limit_memory(&self, bytes: u64) {
        if self.path.join("memory.max").exists() {
            self.set("memory.max", &bytes.to_string());
            if self.path.join("memory.swap.max").exists() {
                self.set("memory.swap.max", "0");
            }
        } else {
            self.set("memory.limit_in_bytes", &bytes.to_string());
        }
    }

    /// The kernel's count of OOM kills in this cgroup (v1 `memory.oom_control`
    /// or v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        if self.path.join("memory.events").exists() {
            self.counter("memory.events", "oom_kill")
        } else {
            self.counter("memory.oom_control", "oom_kill")
        }
    }

    /// Waits (up to 10 s) until `pid` is in this cgroup.
    pub fn wait_holds(&self, pid: i32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.pids().contains(&pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} never joined {}",
                self.path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

// ---------------------------------------------------------------------------
// cgroup v2 with the memory controller: the guest tests (tests/guest_*.rs).

/// True inside the test guest (tests/guest/run.sh), whose /init sets
/// `CTRMON_REQUIRE_V2_MEMORY=1`: there the v2 memory controller must be
/// usable, and a test that cannot use it fails.
pub fn v2_memory_required() -> bool {
    std::env::var("CTRMON_REQUIRE_V2_MEMORY").is_ok_and(|v| v == "1")
}

/// The cgroup v2 hierarchy whose root enables the memory controller for its
/// children (the guest's `/sys/fs/cgroup`), or skip.
///
/// Unlike [`cgroup_root`], this skips even under `CTRMON_REQUIRE_CGROUPS=1`:
/// the hybrid host binds memory to v1, so these tests can only run in the
/// guest, where `CTRMON_REQUIRE_V2_MEMORY=1` turns a skip into a failure.
pub fn memory_v2() -> Option<std::path::PathBuf> {
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let root = std::path::PathBuf::from(root);
        let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == "memory"));
        if enabled && rustix::process::geteuid().is_root() {
            return Some(root);
        }
    }
    let msg = "no cgroup v2 hierarchy with the memory controller enabled \
               (the guest tests run in tests/guest/run.sh)";
    if v2_memory_required() {
        panic!("CTRMON_REQUIRE_V2_MEMORY=1 but {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Polls `cond` every 10 ms; panics after `limit`.
pub fn wait_for(limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// For test binaries without the libtest harness (`harness = false`): those
// whose process must be set up before any thread starts (SIGCHLD blocked, a
// subreaper), and which re-run themselves as helper processes.

/// Runs each scenario whose name matches the command line's filters (none:
/// all), in order, on the main thread; prints libtest-like lines and exits
/// non-zero if any failed.
pub fn run_scenarios(scenarios: &[(&str, fn())]) -> std::process::ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in scenarios {
            println!("{name}: test");
        }
        return std::process::ExitCode::SUCCESS;
    }
    let chosen: Vec<_> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, run) in &chosen {
        let started = std::time::Instant::now();
        let ok = std::panic::catch_unwind(run).is_ok();
        println!(
            "test {name} ... {} ({:.2} s)",
            if ok { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        scenarios.len() - chosen.len()
    );
    if failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        println!("failures: {failed:?}");
        std::process::ExitCode::FAILURE
    }
}

/// The helper role this process was started for (`CTRMON_TEST_HELPER`), if
/// any: the test binary re-runs itself as the processes it needs.
pub fn helper_role() -> Option<String> {
    std::env::var("CTRMON_TEST_HELPER").ok()
}

/// A command that runs this test binary as helper `role` with `args`.
pub fn helper(role: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.env("CTRMON_TEST_HELPER", role).args(args);
    cmd
}

/// Pids of zombies whose parent is this process (`/proc/*/stat`: state `Z`,
/// ppid = ours).
pub fn my_zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if state == Some("Z") && ppid == Some(me) {
            found.push(pid);
        }
    }
    found
}

/// True when this kernel keeps exit statuses for pidfds (`PIDFD_INFO_EXIT`,
/// Linux 6.15+): then the exit of a process that is not ours comes with its
/// real status once its parent has reaped it. The v2 test guest runs 6.1.
pub fn kernel_has_exit_info() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 15)
}
