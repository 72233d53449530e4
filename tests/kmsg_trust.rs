//! What the kernel log makes ctrmon believe, tried as a neighbour on the
//! host would: records that user space wrote, a victim's pid given to a new
//! process, an OOM in a cgroup whose path only ends like the watched one's,
//! and many OOMs at once, when the kernel's rate limit drops the context
//! lines. Each needs root (to read and to write `/dev/kmsg`) and cgroup v1
//! memory; with `CTRMON_REQUIRE_CGROUPS=1` a missing one fails the test.

mod common;

use ctrmon::watch::{CgroupOom, Process};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{cgroups_required, memory_v1, serial, Kid, TestCgroup};
use ctrmon::{EventKind, ExitStatus, KmsgMode, MemoryReport, Monitor, WatchId};

const LIMIT: &str = "33554432"; // 32 MiB

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Cgroup(usize),
    Proc(usize),
}

/// A monitor that reads the log, or `None` (skipped) where it cannot and
/// cgroups are not required.
fn monitor() -> Option<Monitor<Who>> {
    let m = Monitor::new().unwrap();
    match m.kmsg_mode() {
        KmsgMode::On => Some(m),
        other if !cgroups_required() => {
            eprintln!("skipped: the log is not read: {other:?}");
            None
        }
        other => panic!("the log is not read: {other:?}"),
    }
}

/// Writes `line` into the kernel log as root may: with whatever priority
/// prefix it carries, which the kernel turns into a user facility.
fn forge(line: &str) {
    std::fs::write("/dev/kmsg", format!("{line}\n")).expect("write /dev/kmsg");
}

/// Lets the monitor read the log for `ms`, with every event to `seen`.
fn pump_for(m: &Monitor<Who>, ms: u64, seen: &mut Vec<(Who, String)>) {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        m.wait(Some(Duration::from_millis(20)), |e| {
            seen.push((*e.receiver, format!("{:?}", e.kind)));
        })
        .unwrap();
    }
}

/// Pumps until `done` says so, for at most 60 s.
fn pump(m: &Monitor<Who>, mut done: impl FnMut(Who, EventKind) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut over = false;
    while !over {
        assert!(Instant::now() < deadline, "timed out");
        m.wait(Some(Duration::from_millis(100)), |e| {
            over |= done(*e.receiver, e.kind);
        })
        .unwrap();
    }
}

/// The exit of the one process watched as `Who::Proc(0)`, with nothing
/// else reported meanwhile.
fn exit_of(m: &Monitor<Who>) -> ctrmon::Exit {
    let mut exit = None;
    pump(m, |who, kind| match (who, kind) {
        (Who::Proc(0), EventKind::Exited(x)) => {
            exit = Some(x);
            true
        }
        (who, kind) => panic!("{who:?}: {kind:?}"),
    });
    exit.unwrap()
}

fn killed_line(pid: i32, comm: &str) -> String {
    format!(
        "Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:1kB, \
         anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0"
    )
}

fn logged_path(root: &Path, cg: &TestCgroup) -> String {
    format!("/{}", cg.path.strip_prefix(root).unwrap().display())
}

#[test]
fn a_forged_killed_line_does_not_mark_a_sigkill() {
    let Some(_root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    let kid = Kid::sleeper();
    m.watch(Process::pid(kid.pid()), Who::Proc(0)).unwrap();
    // Every priority a writer can give: KERN_ERR as the kernel logs it, a
    // bare level 0, and no prefix at all.
    for prefix in ["<3>", "<0>", ""] {
        forge(&format!("{prefix}{}", killed_line(kid.pid(), "sleep")));
    }
    let mut seen = Vec::new();
    pump_for(&m, 300, &mut seen);
    assert!(seen.is_empty(), "{seen:?}");
    kid.kill();
    let exit = exit_of(&m);
    assert_eq!(exit.status, ExitStatus::Signal(9));
    assert!(!exit.oom_killed, "a forged record marked {exit:?}");
}

#[test]
fn forged_reports_of_every_kind_change_nothing_a_watch_reports() {
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    let mut cg = TestCgroup::new(&root, "trust-forged");
    cg.set("memory.limit_in_bytes", LIMIT);
    let sleeper = cg.sh("exec sleep 600");
    let cgw = m
        .watch(CgroupOom::dir(&cg.path), Who::Cgroup(0))
        .unwrap()
        .id();
    m.watch(Process::pid(sleeper.pid()).oom_watch(cgw), Who::Proc(0))
        .unwrap();
    let rel = logged_path(&root, &cg);
    for prio in ["<6>", "<0>"] {
        forge(&format!(
            "{prio}oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,\
             oom_memcg={rel},task_memcg={rel},task=init,pid=1,uid=0"
        ));
        forge(&format!("<3>{}", killed_line(1, "init")));
        forge(&format!(
            "{prio}Tasks in {rel} are going to be killed due to memory.oom.group set"
        ));
        forge(&format!("<3>{}", killed_line(sleeper.pid(), "sleep")));
    }
    let mut seen = Vec::new();
    pump_for(&m, 300, &mut seen);
    assert!(seen.is_empty(), "{seen:?}");
    // Its linked process ends by SIGKILL, its cgroup goes: neither was an
    // OOM, whatever the forged lines said.
    sleeper.kill();
    assert!(!exit_of(&m).oom_killed);
    cg.remove();
    pump(&m, |who, kind| match (who, kind) {
        (Who::Cgroup(0), EventKind::Removed) => true,
        (who, kind) => panic!("{who:?}: {kind:?}"),
    });
}

/// Gives the next process forked the pid `pid`, as CRIU does: the kernel
/// hands out `ns_last_pid + 1` when it is free. Returns a `sleep` with that
/// pid, or `None` when another fork on the machine took it 20 times.
fn sleeper_with_pid(pid: i32) -> Option<Kid> {
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid (needs root)");
        let kid = Kid::sleeper();
        if kid.pid() == pid {
            return Some(kid);
        }
    }
    None
}

#[test]
fn a_stale_victims_pid_does_not_mark_the_process_that_reuses_it() {
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    // A victim in a cgroup nobody watches: it stays in the monitor's book.
    let cg = TestCgroup::new(&root, "trust-stale");
    cg.set("memory.limit_in_bytes", LIMIT);
    let hog = cg.memory_hog();
    hog.wait_exited_no_reap();
    let victim = hog.pid();
    let mut seen = Vec::new();
    pump_for(&m, 200, &mut seen);
    assert!(hog.reap());
    drop(hog);
    // A new process with the victim's pid, killed by an operator.
    let Some(kid) = sleeper_with_pid(victim) else {
        panic!("could not get pid {victim} again");
    };
    m.watch(Process::pid(kid.pid()), Who::Proc(0)).unwrap();
    kid.kill();
    let exit = exit_of(&m);
    assert_eq!((exit.pid, exit.status), (victim, ExitStatus::Signal(9)));
    assert!(
        !exit.oom_killed,
        "the old victim marked its pid's new process"
    );
}

#[test]
fn an_oom_in_a_cgroup_whose_path_ends_like_the_watched_one_is_not_its() {
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    // Watched: /ctrmon-test-sfx-pod-P/ctrmon-test-sfx-web-P. OOM in
    // /ctrmon-test-sfx-web-P, whose path is a suffix of the watched one's.
    let pod = TestCgroup::new(&root, "sfx-pod");
    let mut watched = TestCgroup::new(&pod.path, "sfx-web");
    let other = TestCgroup::new(&root, "sfx-web");
    assert!(watched
        .path
        .ends_with(other.path.strip_prefix(&root).unwrap()));
    m.watch(CgroupOom::dir(&watched.path), Who::Cgroup(0))
        .unwrap()
        .id();
    other.set("memory.limit_in_bytes", LIMIT);
    let hog = other.memory_hog();
    hog.wait_exited_no_reap();
    let mut seen = Vec::new();
    pump_for(&m, 300, &mut seen);
    assert!(seen.is_empty(), "{seen:?}");
    watched.remove();
    let mut removal = Vec::new();
    pump(&m, |who, kind| {
        let end = matches!(kind, EventKind::Removed);
        removal.push((who, format!("{kind:?}")));
        end
    });
    assert_eq!(
        removal,
        [(Who::Cgroup(0), "Removed".to_string())],
        "another cgroup's OOM was reported (victim pid {})",
        hog.pid()
    );
}

/// Many containers OOM at once: the kernel's rate limit (10 reports per
/// 5 s) drops most context lines, and a dying victim's `/proc/<pid>/cgroup`
/// shows the root on v1. Every cgroup's report still names its own victim:
/// the process linked to its watch.
#[test]
fn concurrent_ooms_each_name_their_own_victim() {
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    const N: usize = 30;
    let mut cgs: Vec<TestCgroup> = (0..N)
        .map(|i| {
            let cg = TestCgroup::new(&root, &format!("trust-many-{i}"));
            cg.set("memory.limit_in_bytes", LIMIT);
            cg
        })
        .collect();
    let watches: Vec<WatchId> = cgs
        .iter()
        .enumerate()
        .map(|(i, cg)| {
            m.watch(CgroupOom::dir(&cg.path), Who::Cgroup(i))
                .unwrap()
                .id()
        })
        .collect();
    let hogs: Vec<Kid> = cgs.iter().map(TestCgroup::memory_hog).collect();
    for (i, hog) in hogs.iter().enumerate() {
        m.watch(Process::pid(hog.pid()).oom_watch(watches[i]), Who::Proc(i))
            .unwrap();
    }
    let mut named: Vec<Vec<i32>> = vec![Vec::new(); N];
    let mut exits = 0;
    let mut note = |i: usize, d: &MemoryReport| {
        named[i].extend(d.victims().iter().map(|v| v.pid));
    };
    pump(&m, |who, kind| {
        match (who, kind) {
            (Who::Cgroup(i), EventKind::Memory(d)) => note(i, &d),
            (Who::Proc(i), EventKind::Exited(x)) => {
                assert!(x.oom_killed, "run {i}: {x:?}");
                exits += 1;
            }
            (who, kind) => panic!("{who:?}: {kind:?}"),
        }
        exits == N
    });
    // What was not named in a report of kills is named at the removal.
    for cg in &mut cgs {
        cg.remove();
    }
    let mut removed = 0;
    pump(&m, |who, kind| {
        match (who, kind) {
            (Who::Cgroup(i), EventKind::Memory(d)) => note(i, &d),
            (Who::Cgroup(_), EventKind::Removed) => removed += 1,
            (who, kind) => panic!("{who:?}: {kind:?}"),
        }
        removed == N
    });
    for (i, hog) in hogs.iter().enumerate() {
        assert_eq!(named[i], [hog.pid()], "run {i}: {named:?}");
    }
}

/// A victim that named itself like the context line's fields
/// (`a,task=/b`): the line's names are split by the kernel's format and
/// the victim's `Killed process` line, so its cgroup is still known.
#[test]
fn a_victim_named_like_a_context_field_is_named_in_its_cgroup() {
    use ctrmon::cgroup::parse::kmsg_oom::OomLine;
    use ctrmon::kmsg::KmsgReader;
    let Some(root) = memory_v1() else { return };
    let _serial = serial();
    let Some(m) = monitor() else { return };
    let mut reader = KmsgReader::open().unwrap();
    let mut cg = TestCgroup::new(&root, "trust-comm");
    cg.set("memory.limit_in_bytes", LIMIT);
    m.watch(CgroupOom::dir(&cg.path), Who::Cgroup(0))
        .unwrap()
        .id();
    // dash keeps a command substitution's output in its own memory: it
    // grows until the kernel kills it, the highest oom_score_adj of the
    // cgroup, by the name it gave itself.
    let kid = cg.sh(
        "echo 1000 > /proc/$$/oom_score_adj; printf 'a,task=/b' > /proc/$$/comm; \
         x=$(head -c 400000000 /dev/zero | tr '\\0' a)",
    );
    kid.wait_exited_no_reap();
    let mut victims = Vec::new();
    let mut note = |d: &MemoryReport| {
        victims.extend(
            d.victims()
                .iter()
                .map(|v| (v.pid, v.comm.as_bytes().to_vec())),
        );
    };
    pump(&m, |_, kind| match kind {
        EventKind::Memory(d) => {
            note(&d);
            d.oom_kill > 0
        }
        other => panic!("{other:?}"),
    });
    assert!(kid.reap());
    cg.remove();
    pump(&m, |_, kind| match kind {
        EventKind::Memory(d) => {
            note(&d);
            false
        }
        EventKind::Removed => true,
        other => panic!("{other:?}"),
    });
    // What the kernel logged for it: a context line, unless its rate limit
    // (10 reports per 5 s) dropped it.
    let mut context_logged = false;
    while let Some(next) = reader.next_record().unwrap() {
        if let Ok(rec) = next.record {
            if let Some(OomLine::Context(c)) = rec.oom() {
                context_logged |= c.pid == kid.pid();
            }
        }
    }
    if context_logged {
        assert_eq!(victims, [(kid.pid(), b"a,task=/b".to_vec())]);
    } else {
        eprintln!("the kernel's rate limit dropped the context line: only checked that no other process was named");
        assert!(victims.iter().all(|(p, _)| *p == kid.pid()), "{victims:?}");
    }
}

/// In a pid namespace of its own the log's pids are not the monitor's: it
/// does not read the log, and says so. Run again inside `unshare --pid
/// --fork --mount-proc` (its own `/proc`, where `NSpid` shows one field).
#[test]
fn a_monitor_in_another_pid_namespace_does_not_read_the_log() {
    if std::env::var_os("CTRMON_TEST_IN_PID_NS").is_some() {
        let m: Monitor<Who> = Monitor::new().unwrap();
        assert_eq!(m.kmsg_mode(), KmsgMode::OtherPidNamespace);
        return;
    }
    let Some(_root) = memory_v1() else { return };
    if !Path::new("/usr/bin/unshare").exists() && !cgroups_required() {
        return eprintln!("skipped: no unshare");
    }
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_monitor_in_another_pid_namespace_does_not_read_the_log",
            "--nocapture",
        ])
        .env("CTRMON_TEST_IN_PID_NS", "1")
        .output()
        .expect("run unshare");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}
