//! A shim for a real runtime: ctrmon driving `runc` (Debian 12's 1.1.5)
//! through `create`, `start`, `kill` and `delete`, with a busybox rootfs.
//!
//! `sudo cargo run --example runc_shim` (root, with `apt-get install runc
//! busybox-static`; CI runs it so)
//!
//! The shim is a subreaper that reaps orphans through the monitor, and runs
//! every `runc` under a hold with `status()` (the container inherits runc's
//! stdio). After `runc create` the container's init is re-parented to the
//! shim, so it is our child: it is watched by the pid in runc's
//! `--pid-file`, linked to the OOM watch of its memory cgroup (the one
//! runc made from `linux.cgroupsPath`, 32 MiB), which puts an OOM before
//! the exit it caused and marks that exit as an OOM kill. Five containers,
//! one per case, each checked:
//!
//! 1. `exit-code`: init `exit 3`: code 3, no OOM;
//! 2. `oom-init`: init is a memory hog: an OOM before the exit, SIGKILL,
//!    OOM-killed, as many kills as the kernel's counter says;
//! 3. `oom-child`: init waits for a hog child, then `exit 5`: an OOM, code
//!    5, init not OOM-killed;
//! 4. `kill`: `runc kill <id> KILL` on a sleeping init: SIGKILL, no OOM;
//! 5. `orphan`: `runc exec -d` a process that exits 7. Its parent is
//!    `runc exec` itself (runc's `init` stages fork with `CLONE_PARENT`),
//!    which exits without waiting for it and is no subreaper: the process
//!    (or its zombie) comes to us and is reaped as an orphan with code 7.
//!    runc leaves no other orphan: `runc create` is a subreaper and reaps
//!    its stages, and the init it leaves is the one we watch. So any other
//!    orphan fails the case.
//!
//! After each case `runc delete` and a check that no cgroup, no process
//! and no child of ours is left. A case that fails still deletes its
//! container (`runc delete -f` on drop). One line per event, a summary,
//! exit 0 only if every check passed. Without root, `runc` or a static
//! busybox it fails, saying what is missing; without a memory cgroup
//! hierarchy it skips the OOM cases, unless `CTRMON_REQUIRE_CGROUPS=1`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ctrmon::cgroup::{memory_cgroup_of, CgroupVersion};
use ctrmon::reaper::{become_subreaper, block_sigchld, Orphan};
use ctrmon::signal::SignalSet;
use ctrmon::spawn::ChildSetup;
use ctrmon::watch::{CgroupOom, CgroupWatch, Orphans, Process};
use ctrmon::{EventKind, Exit, ExitStatus, Monitor, WatchId};

type Res<T> = Result<T, Box<dyn Error>>;

/// The container's memory limit (`linux.resources.memory.limit`).
const LIMIT: u64 = 32 << 20;
/// Busybox has no GNU `tail /dev/zero`: a string that doubles until the
/// OOM killer stops the shell (32 MiB in a few hundred milliseconds).
const HOG: &str = "x=a; while :; do x=$x$x; done";
/// How long a case may wait for what it expects.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("runc_shim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res<bool> {
    // Before any thread exists (threads inherit the mask): SIGCHLD goes to
    // the monitor's signalfd only, and orphans below us come to us.
    let sigchld = block_sigchld()?;
    become_subreaper()?;
    let pre = prerequisites()?;
    let monitor: Monitor<Tag> = Monitor::new()?;
    monitor.watch(Orphans, Tag::Orphans)?;
    println!(
        "runc_shim: pid {}, {}, kernel log: {:?}",
        std::process::id(),
        monitor.exit_mode(),
        monitor.kmsg_mode()
    );

    let work = WorkDir::new()?;
    let shim = Shim {
        monitor,
        sigchld,
        runc: pre.runc,
        work: work.0.clone(),
        memory: pre.memory,
        swap: pre.swap,
    };
    shim.make_rootfs(&pre.busybox)?;

    type CaseFn = fn(&Shim) -> Res<String>;
    let cases: [(&str, bool, CaseFn); 5] = [
        ("exit-code", false, case_exit_code),
        ("oom-init", true, case_oom_init),
        ("oom-child", true, case_oom_child),
        ("kill", false, case_kill),
        ("orphan", false, case_orphan),
    ];
    let mut results = Vec::new();
    for (name, needs_memory, case) in cases {
        println!("== {name}");
        let result = if needs_memory && shim.memory.is_none() {
            Ok("SKIPPED: no memory cgroup hierarchy".to_string())
        } else {
            case(&shim).map(|s| format!("ok: {s}"))
        };
        match &result {
            Ok(s) => println!("[{name}] {s}"),
            Err(e) => println!("[{name}] FAILED: {e}"),
        }
        results.push((name, result));
    }
    drop(shim);
    drop(work);

    println!("== summary");
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(s) => println!("  {name:<10} {s}"),
            Err(e) => {
                failed += 1;
                println!("  {name:<10} FAILED: {e}");
            }
        }
    }
    let skipped = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(s) if s.starts_with("SKIPPED")))
        .count();
    println!(
        "runc_shim: {} of {} cases passed{}",
        results.len() - failed - skipped,
        results.len(),
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        }
    );
    Ok(failed == 0)
}

// ---- the cases ----

fn case_exit_code(shim: &Shim) -> Res<String> {
    let mut c = shim.create("exit-code", &["sh", "-c", "exit 3"])?;
    shim.runc(&["start", &c.id], false)?;
    let exit = c.wait_exit()?;
    check(exit.status == ExitStatus::Code(3), || {
        format!("expected exit code 3, got {}", status_text(exit.status))
    })?;
    check(!exit.oom_killed, || {
        "an `exit 3` marked as OOM-killed".into()
    })?;
    let kills = c.finish()?;
    check(kills == 0, || {
        format!("{kills} OOM kills in a container that only exits")
    })?;
    Ok("code 3, not OOM-killed, no OOM".into())
}

fn case_oom_init(shim: &Shim) -> Res<String> {
    let mut c = shim.create("oom-init", &["sh", "-c", HOG])?;
    shim.runc(&["start", &c.id], false)?;
    let exit = c.wait_exit()?;
    c.check_oom_before_exit()?;
    check(exit.status == ExitStatus::Signal(9), || {
        format!("expected SIGKILL, got {}", status_text(exit.status))
    })?;
    check(exit.oom_killed, || {
        "the hog's SIGKILL is not marked as an OOM kill".into()
    })?;
    let kills = c.finish()?;
    check(kills >= 1, || "the kernel counted no OOM kill".into())?;
    Ok(format!(
        "OOM before exit, SIGKILL, OOM-killed, {kills} kill(s) = the kernel's count"
    ))
}

fn case_oom_child(shim: &Shim) -> Res<String> {
    let script = format!("sh -c '{HOG}'; exit 5");
    let mut c = shim.create("oom-child", &["sh", "-c", &script])?;
    shim.runc(&["start", &c.id], false)?;
    let exit = c.wait_exit()?;
    c.check_oom_before_exit()?;
    check(exit.status == ExitStatus::Code(5), || {
        format!("expected exit code 5, got {}", status_text(exit.status))
    })?;
    check(!exit.oom_killed, || {
        "init marked as OOM-killed, but its child was the victim".into()
    })?;
    // With the kernel log, the victims are named: init is not one.
    let victims: Vec<i32> = c.seen.iter().flat_map(|s| s.victims().to_vec()).collect();
    check(!victims.contains(&c.pid), || {
        format!("init {} is among the victims {victims:?}", c.pid)
    })?;
    let kills = c.finish()?;
    check(kills >= 1, || "the kernel counted no OOM kill".into())?;
    Ok(format!(
        "OOM before exit, code 5, init not OOM-killed, {kills} kill(s) = the kernel's count"
    ))
}

fn case_kill(shim: &Shim) -> Res<String> {
    let mut c = shim.create("kill", &["sleep", "600"])?;
    shim.runc(&["start", &c.id], false)?;
    shim.runc(&["kill", &c.id, "KILL"], false)?;
    let exit = c.wait_exit()?;
    check(exit.status == ExitStatus::Signal(9), || {
        format!("expected SIGKILL, got {}", status_text(exit.status))
    })?;
    check(!exit.oom_killed, || {
        "runc kill's SIGKILL marked as an OOM kill".into()
    })?;
    let kills = c.finish()?;
    check(kills == 0, || {
        format!("{kills} OOM kills in a container that sleeps")
    })?;
    Ok("SIGKILL, not OOM-killed, no OOM".into())
}

fn case_orphan(shim: &Shim) -> Res<String> {
    let mut c = shim.create("orphan", &["sleep", "600"])?;
    shim.runc(&["start", &c.id], false)?;
    let pid_file = c.dir.join("exec.pid");
    let pid_arg = pid_file.to_str().ok_or("non-UTF-8 path")?;
    shim.runc(
        &[
            "exec",
            "-d",
            "--pid-file",
            pid_arg,
            &c.id,
            "sh",
            "-c",
            "exit 7",
        ],
        false,
    )?;
    let pid = read_pid(&pid_file)?;
    println!("[orphan] runc exec -d: process {pid}");
    shim.wait_for(&mut c, "the exec'd process as an orphan", |seen| {
        seen.iter()
            .any(|s| matches!(s, Seen::Orphan(o) if o.pid == pid))
    })?;
    let orphan = c.seen.iter().find_map(|s| match s {
        Seen::Orphan(o) if o.pid == pid => Some(*o),
        _ => None,
    });
    let orphan = orphan.expect("wait_for returned");
    check(orphan.status == ExitStatus::Code(7), || {
        format!(
            "expected the orphan's code 7, got {}",
            status_text(orphan.status)
        )
    })?;
    shim.runc(&["kill", &c.id, "KILL"], false)?;
    let exit = c.wait_exit()?;
    check(
        exit.status == ExitStatus::Signal(9) && !exit.oom_killed,
        || format!("expected init's SIGKILL without OOM, got {exit:?}"),
    )?;
    c.expected_orphan = Some(pid);
    let kills = c.finish()?;
    check(kills == 0, || {
        format!("{kills} OOM kills in a container that sleeps")
    })?;
    Ok(format!(
        "exec'd process {pid} reaped as an orphan with code 7, init SIGKILL"
    ))
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(msg().into())
    }
}

// ---- the shim: every ctrmon call is here ----

/// Each watch's receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Orphans,
    Cgroup,
    Init,
}

/// What a container's events said, in order.
#[derive(Debug)]
enum Seen {
    Oom { kills: u64, victims: Vec<i32> },
    Exit(Exit),
    Orphan(Orphan),
    Removed,
    Failed(String),
}

impl Seen {
    fn victims(&self) -> &[i32] {
        match self {
            Seen::Oom { victims, .. } => victims,
            _ => &[],
        }
    }
}

struct Shim {
    monitor: Monitor<Tag>,
    sigchld: SignalSet,
    runc: PathBuf,
    work: PathBuf,
    /// The memory cgroup hierarchy's version, if there is one.
    memory: Option<CgroupVersion>,
    /// Whether the limit can cover swap too (v1 `memsw`, v2 `swap.max`).
    swap: bool,
}

impl Shim {
    /// Runs `runc <args>` under a hold and waits for it with `status()`:
    /// with its output (and the container's, which inherits it) on ours.
    fn runc(&self, args: &[&str], quiet: bool) -> Res<()> {
        let mut cmd = Command::new(&self.runc);
        cmd.arg("--root")
            .arg(self.work.join("state"))
            .args(args)
            .stdin(Stdio::null());
        if quiet {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        // Our blocked SIGCHLD is not the container's.
        ChildSetup::new().unblock(&self.sigchld).apply(&mut cmd);
        // Else the monitor could reap runc before `status()` does.
        let hold = self.monitor.hold_orphans();
        let status = cmd.status();
        drop(hold);
        let status = status.map_err(|e| format!("run {}: {e}", self.runc.display()))?;
        check(status.success(), || {
            format!("runc {}: {status}", args.join(" "))
        })
    }

    /// `runc create` of a fresh container running `args`, its init watched
    /// (linked to its memory cgroup's OOM watch), not yet started.
    fn create(&self, name: &'static str, args: &[&str]) -> Res<Container<'_>> {
        let id = format!("ctrmon-test-{}-{name}", std::process::id());
        let dir = self.work.join(name);
        std::fs::create_dir(&dir)?;
        let mut c = Container {
            shim: self,
            name,
            id,
            dir,
            pid: 0,
            cgroup: None,
            cgroup_watch: None,
            init_watch: None,
            baseline: 0,
            seen: Vec::new(),
            expected_orphan: None,
            deleted: false,
        };
        self.write_config(&c, args)?;
        let bundle = c.dir.to_str().ok_or("non-UTF-8 path")?.to_string();
        let pid_file = c.dir.join("init.pid");
        let pid_arg = pid_file.to_str().ok_or("non-UTF-8 path")?;

        // Create and watch under one hold: an init that is already gone
        // when `runc create` returns is not reaped as an orphan first.
        let hold = self.monitor.hold_orphans();
        self.runc(
            &["create", "--bundle", &bundle, "--pid-file", pid_arg, &c.id],
            false,
        )?;
        c.pid = read_pid(&pid_file)?;
        let parent = parent_of(c.pid)?;
        check(parent == std::process::id() as i32, || {
            format!("init {} has parent {parent}, not the shim", c.pid)
        })?;
        if self.memory.is_some() {
            // The init's memory cgroup, from /proc/<pid>/cgroup and
            // mountinfo; the watch says where it is and reads its counters.
            let cg = self.monitor.watch(CgroupOom::of(c.pid), Tag::Cgroup)?;
            // The init waits for `runc start`, so no kill can come between
            // the watch's baseline and ours.
            c.baseline = cg.counters()?.oom_kill;
            let init = Process::pid(c.pid).oom_watch(&cg);
            c.init_watch = Some(self.monitor.watch(init, Tag::Init)?);
            c.cgroup_watch = Some(cg.id());
            c.cgroup = Some(cg);
        } else {
            c.init_watch = Some(self.monitor.watch(Process::pid(c.pid), Tag::Init)?);
        }
        drop(hold);
        println!(
            "[{name}] created {}: init pid {} (our child), memory cgroup {}",
            c.id,
            c.pid,
            c.cgroup
                .as_ref()
                .map_or("none".into(), |cg| cg.dir().display().to_string())
        );
        Ok(c)
    }

    /// Waits for events until `done` says the container's list is complete,
    /// printing each.
    fn wait_for(
        &self,
        c: &mut Container<'_>,
        what: &str,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Res<()> {
        let deadline = Instant::now() + PATIENCE;
        while !done(&c.seen) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(format!("{what}: not within {PATIENCE:?} (saw {:?})", c.seen).into());
            };
            self.monitor.wait(Some(left), |event| {
                let tag = *event.receiver;
                let (line, seen) = match event.kind {
                    EventKind::Memory(d) if d.any_oom() => {
                        let victims: Vec<i32> = d.victims().iter().map(|v| v.pid).collect();
                        let names: Vec<String> = d
                            .victims()
                            .iter()
                            .map(|v| format!("{} ({})", v.pid, v.comm))
                            .collect();
                        (
                            format!(
                                "OOM in the container's cgroup: oom +{}, oom_kill +{}, victims: {}",
                                d.oom,
                                d.oom_kill,
                                if names.is_empty() {
                                    "not logged".into()
                                } else {
                                    names.join(", ")
                                }
                            ),
                            Some(Seen::Oom {
                                kills: d.oom_kill,
                                victims,
                            }),
                        )
                    }
                    EventKind::Exited(x) => (
                        format!(
                            "init {} exited: {}, {}",
                            x.pid,
                            status_text(x.status),
                            if x.oom_killed {
                                "OOM-killed"
                            } else {
                                "not OOM-killed"
                            }
                        ),
                        Some(Seen::Exit(x)),
                    ),
                    EventKind::Orphan(o) => (
                        format!("orphan reaped: pid {}, {}", o.pid, status_text(o.status)),
                        Some(Seen::Orphan(o)),
                    ),
                    EventKind::Removed => ("cgroup removed".into(), Some(Seen::Removed)),
                    EventKind::Failed(e) => (
                        format!("{tag:?} watch failed: {e}"),
                        Some(Seen::Failed(e.to_string())),
                    ),
                    other => (format!("{tag:?}: {other:?}"), None),
                };
                println!("[{}] {line}", c.name);
                c.seen.extend(seen);
            })?;
        }
        Ok(())
    }

    /// Ends the watches a failed case left.
    fn unwatch(&self, id: Option<WatchId>) {
        if let Some(id) = id.filter(|&id| self.monitor.contains(id)) {
            let _ = self.monitor.unwatch(id);
        }
    }

    /// `rootfs/bin/busybox` and a link for each of its applets.
    fn make_rootfs(&self, busybox: &Path) -> Res<()> {
        let bin = self.work.join("rootfs/bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy(busybox, bin.join("busybox"))?;
        let hold = self.monitor.hold_orphans();
        let list = Command::new(busybox)
            .arg("--list")
            .stdin(Stdio::null())
            .output();
        drop(hold);
        let list = list?;
        check(list.status.success(), || {
            format!("{} --list: {}", busybox.display(), list.status)
        })?;
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet))?;
            }
        }
        Ok(())
    }

    /// `runc spec`, edited: no terminal, `args`, the rootfs, a
    /// `ctrmon-test-*` cgroup with the memory limit.
    fn write_config(&self, c: &Container<'_>, args: &[&str]) -> Res<()> {
        let dir = c.dir.to_str().ok_or("non-UTF-8 path")?;
        self.runc(&["spec", "--bundle", dir], false)?;
        let path = c.dir.join("config.json");
        let spec = std::fs::read_to_string(&path)?;
        let args = args.iter().map(|a| json_string(a)).collect::<Vec<_>>();
        let rootfs = self.work.join("rootfs");
        let mut memory = String::new();
        if self.memory.is_some() {
            memory = format!("\"memory\": {{\"limit\": {LIMIT}");
            if self.swap {
                memory += &format!(", \"swap\": {LIMIT}");
            }
            memory += "},\n\t\t\t";
        }
        // The spec `runc spec` writes is fixed; each edit must hit once.
        let edits = [
            ("\"terminal\": true", "\"terminal\": false".to_string()),
            (
                "\"args\": [\n\t\t\t\"sh\"\n\t\t]",
                format!("\"args\": [{}]", args.join(", ")),
            ),
            (
                "\"path\": \"rootfs\"",
                format!(
                    "\"path\": {}",
                    json_string(rootfs.to_str().ok_or("non-UTF-8 path")?)
                ),
            ),
            (
                "\"resources\": {\n\t\t\t",
                format!(
                    "\"cgroupsPath\": {},\n\t\t\"resources\": {{\n\t\t\t{memory}",
                    json_string(&format!("/{}", c.id))
                ),
            ),
        ];
        let mut spec = spec;
        for (from, to) in edits {
            check(spec.matches(from).count() == 1, || {
                format!(
                    "{}: `runc spec` wrote something else than {from:?}",
                    path.display()
                )
            })?;
            spec = spec.replacen(from, &to, 1);
        }
        std::fs::write(&path, spec)?;
        Ok(())
    }
}

/// A container of one case: `runc delete -f` on drop unless deleted.
struct Container<'s> {
    shim: &'s Shim,
    name: &'static str,
    id: String,
    dir: PathBuf,
    pid: i32,
    cgroup: Option<CgroupWatch>,
    cgroup_watch: Option<WatchId>,
    init_watch: Option<WatchId>,
    /// The kernel's `oom_kill` when the cgroup was watched.
    baseline: u64,
    seen: Vec<Seen>,
    /// The pid of the one orphan the case expects (`runc exec -d`).
    expected_orphan: Option<i32>,
    deleted: bool,
}

impl Container<'_> {
    fn wait_exit(&mut self) -> Res<Exit> {
        let shim = self.shim;
        shim.wait_for(self, "init's exit", |seen| {
            seen.iter().any(|s| matches!(s, Seen::Exit(_)))
        })?;
        if let Some(e) = self.seen.iter().find_map(|s| match s {
            Seen::Failed(e) => Some(e),
            _ => None,
        }) {
            return Err(format!("a watch failed: {e}").into());
        }
        let exit = self.seen.iter().find_map(|s| match s {
            Seen::Exit(x) => Some(*x),
            _ => None,
        });
        let exit = exit.expect("wait_for returned");
        check(exit.pid == self.pid && exit.reaped, || {
            format!(
                "expected init {} reaped by its watch, got {exit:?}",
                self.pid
            )
        })?;
        Ok(exit)
    }

    fn check_oom_before_exit(&self) -> Res<()> {
        let oom = self.seen.iter().position(|s| matches!(s, Seen::Oom { .. }));
        let exit = self.seen.iter().position(|s| matches!(s, Seen::Exit(_)));
        match (oom, exit) {
            (Some(o), Some(x)) if o < x => Ok(()),
            (Some(_), Some(_)) => Err("the OOM came after the exit".into()),
            _ => Err(format!("expected an OOM, then the exit; saw {:?}", self.seen).into()),
        }
    }

    /// The kernel's OOM kills checked against the events', then `runc
    /// delete` and nothing left: returns the kills. runc itself leaves no
    /// orphan (`create` is a subreaper and waits for its `init` stages;
    /// the container's init is its direct child), so any orphan but the
    /// expected one is a failure.
    fn finish(&mut self) -> Res<u64> {
        let stray: Vec<Orphan> = self
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Orphan(o) if Some(o.pid) != self.expected_orphan => Some(*o),
                _ => None,
            })
            .collect();
        check(stray.is_empty(), || {
            format!("unexpected orphans: {stray:?}")
        })?;
        let mut kills = 0;
        if let Some(cg) = &self.cgroup {
            // The kernel's count: v1 `oom_kill` of this cgroup's own, v2
            // with descendants.
            kills = cg.counters()?.oom_kill - self.baseline;
            let reported: u64 = self
                .seen
                .iter()
                .map(|s| match s {
                    Seen::Oom { kills, .. } => *kills,
                    _ => 0,
                })
                .sum();
            check(reported == kills, || {
                format!("the events reported {reported} OOM kills, the kernel counted {kills}")
            })?;
        }
        let shim = self.shim;
        shim.runc(&["delete", &self.id], false)?;
        self.deleted = true;
        if self.cgroup_watch.is_some() {
            shim.wait_for(self, "the cgroup's removal", |seen| {
                seen.iter().any(|s| matches!(s, Seen::Removed))
            })?;
        }
        self.check_nothing_left()?;
        Ok(kills)
    }

    /// No cgroup of the container in any hierarchy, no process in one, no
    /// child of ours, and runc does not know the container.
    fn check_nothing_left(&self) -> Res<()> {
        let mut left = Vec::new();
        let root = Path::new("/sys/fs/cgroup");
        let mut dirs = vec![root.join(&self.id)];
        for entry in std::fs::read_dir(root)? {
            dirs.push(entry?.path().join(&self.id));
        }
        left.extend(
            dirs.iter()
                .filter(|d| d.exists())
                .map(|d| d.display().to_string()),
        );
        let suffix = format!(":/{}", self.id);
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
            if cgroups
                .lines()
                .any(|l| l.ends_with(&suffix) || l.contains(&format!("{suffix}/")))
            {
                left.push(format!("process {pid}"));
            }
        }
        for task in std::fs::read_dir("/proc/self/task")? {
            let children =
                std::fs::read_to_string(task?.path().join("children")).unwrap_or_default();
            left.extend(children.split_whitespace().map(|p| format!("child {p}")));
        }
        if self.shim.runc(&["state", &self.id], true).is_ok() {
            left.push("runc's state".into());
        }
        check(left.is_empty(), || {
            format!("left after runc delete: {}", left.join(", "))
        })?;
        println!("[{}] deleted; no cgroup, process or child left", self.name);
        Ok(())
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let shim = self.shim;
        if !self.deleted {
            println!("[{}] cleanup: runc delete -f {}", self.name, self.id);
            if let Err(e) = shim.runc(&["delete", "-f", &self.id], true) {
                eprintln!("[{}] {e}", self.name);
            }
            // Take the exit and removal it caused, so that they do not
            // show up in the next case.
            let init_left = self.init_watch.is_some_and(|w| shim.monitor.contains(w));
            let cgroup_left = self.cgroup_watch.is_some_and(|w| shim.monitor.contains(w));
            let _ = shim.wait_for(self, "cleanup", |seen| {
                (!init_left || seen.iter().any(|s| matches!(s, Seen::Exit(_))))
                    && (!cgroup_left || seen.iter().any(|s| matches!(s, Seen::Removed)))
            });
            if let Err(e) = self.check_nothing_left() {
                eprintln!("[{}] cleanup: {e}", self.name);
            }
        }
        shim.unwatch(self.init_watch);
        shim.unwatch(self.cgroup_watch);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- what the library does not do for us ----

fn read_pid(file: &Path) -> Res<i32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("read the pid file {}: {e}", file.display()))?;
    Ok(text
        .trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", file.display()))?)
}

/// `ppid` from `/proc/<pid>/stat` (after the `)` that ends `comm`).
fn parent_of(pid: i32) -> Res<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let ppid = fields
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok());
    Ok(ppid.ok_or_else(|| format!("/proc/{pid}/stat: no ppid in {stat:?}"))?)
}

fn status_text(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit code {c}"),
        ExitStatus::Signal(9) => "signal 9 (SIGKILL)".into(),
        ExitStatus::Signal(15) => "signal 15 (SIGTERM)".into(),
        ExitStatus::Signal(s) => format!("signal {s}"),
        ExitStatus::Unknown => "unknown status".into(),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- prerequisites and the work directory ----

struct Prerequisites {
    runc: PathBuf,
    busybox: PathBuf,
    memory: Option<CgroupVersion>,
    swap: bool,
}

fn prerequisites() -> Res<Prerequisites> {
    const INSTALL: &str = "apt-get install -y runc busybox-static";
    if !rustix::process::geteuid().is_root() {
        return Err("needs root: runc makes namespaces and cgroups (run it with sudo)".into());
    }
    let runc = in_path("runc").ok_or(format!("no `runc` in PATH ({INSTALL})"))?;
    let busybox = in_path("busybox").ok_or(format!("no `busybox` in PATH ({INSTALL})"))?;
    // The rootfs holds nothing else: a dynamic busybox cannot run there.
    let mut head = vec![0; 4096];
    let n = std::io::Read::read(&mut std::fs::File::open(&busybox)?, &mut head)?;
    if head[..n].windows(8).any(|w| w == b"ld-linux") {
        return Err(format!(
            "{} is dynamically linked, the container needs a static one ({INSTALL})",
            busybox.display()
        )
        .into());
    }
    let (memory, swap) = match memory_cgroup_of(None) {
        Ok(cg) => {
            let swap = match cg.version {
                CgroupVersion::V1 => cg.mount_point.join("memory.memsw.limit_in_bytes").exists(),
                CgroupVersion::V2 => cg.path.join("memory.swap.max").exists(),
            };
            (Some(cg.version), swap)
        }
        Err(e) if std::env::var("CTRMON_REQUIRE_CGROUPS").is_ok_and(|v| v == "1") => {
            return Err(format!("CTRMON_REQUIRE_CGROUPS=1, but no memory cgroup: {e}").into());
        }
        Err(e) => {
            println!("runc_shim: no memory cgroup ({e}): the OOM cases are skipped");
            (None, false)
        }
    };
    Ok(Prerequisites {
        runc,
        busybox,
        memory,
        swap,
    })
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `$TMPDIR/ctrmon-runc-shim-<pid>`: the rootfs, the bundles, runc's state
/// (`--root`); removed on the way out.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Res<WorkDir> {
        let dir = std::env::temp_dir().join(format!("ctrmon-runc-shim-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("runc_shim: remove {}: {e}", self.0.display());
        }
    }
}
