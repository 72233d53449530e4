//! Hostile input: ctrmon writes only to cgroup (and PSI) control files, and
//! refuses bad pids, paths and trigger strings with clear errors.
//!
//! Extends `cgroup_v1.rs::bad_inputs_are_clear_errors_naming_the_path`
//! (which covers `watch_cgroup_oom` on a missing path, `/tmp`, a symlink out
//! and in, an empty path and a NUL byte) to every watch that writes, and
//! checks that nothing was written.

mod common;

use ctrmon::watch::{CgroupOom, Eventfd, MemoryPressure, Populated, Process, Psi, UsageThreshold};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{dir_names, memory_v1, unified_v2, Kid, TestCgroup, TmpDir};
use ctrmon::{Monitor, PressureLevel, PressureMode, PsiTrigger, Subject};

type Watch<'a> = (
    &'a str,
    Box<dyn Fn(&Monitor<()>, &Path) -> ctrmon::Result<ctrmon::WatchId>>,
);

/// The three v1 watches that write `cgroup.event_control` in a directory.
fn writing_watches<'a>() -> Vec<Watch<'a>> {
    vec![
        (
            "watch_cgroup_oom",
            Box::new(|m: &Monitor<()>, p: &Path| m.watch(CgroupOom::dir(p), ()).map(|w| w.id())),
        ),
        (
            "watch_pressure_level",
            Box::new(|m: &Monitor<()>, p: &Path| {
                m.watch(MemoryPressure::new(p, PressureLevel::Low), ())
            }),
        ),
        (
            "watch_usage_threshold",
            Box::new(|m: &Monitor<()>, p: &Path| m.watch(UsageThreshold::new(p, 1 << 20), ())),
        ),
    ]
}

/// Content and modification time, to show a file was not written.
fn snapshot(p: &Path) -> (Vec<u8>, SystemTime) {
    let meta = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (fs::read(p).unwrap(), meta.modified().unwrap())
}

const FAKE_FILES: [(&str, &str); 5] = [
    ("cgroup.event_control", "untouched\n"),
    (
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    ),
    ("memory.pressure_level", ""),
    ("memory.usage_in_bytes", "0\n"),
    ("cgroup.procs", ""),
];

#[test]
fn v1_watches_refuse_symlinks_and_plain_directories_and_write_nothing() {
    let tmp = TmpDir::new("sec-dirs");
    // A plain directory dressed up as a memory cgroup.
    let fake = tmp.path.join("fake");
    fs::create_dir(&fake).unwrap();
    for (name, text) in FAKE_FILES {
        fs::write(fake.join(name), text).unwrap();
    }
    // A plain directory whose control files are symlinks to a victim file.
    let victim = tmp.path.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let trap = tmp.path.join("trap");
    fs::create_dir(&trap).unwrap();
    for (name, _) in FAKE_FILES {
        std::os::unix::fs::symlink(&victim, trap.join(name)).unwrap();
    }
    let empty = tmp.path.join("empty");
    fs::create_dir(&empty).unwrap();
    // A symlink that leads out of any cgroup tree, to the fake cgroup.
    let out = tmp.path.join("link-out");
    std::os::unix::fs::symlink(&fake, &out).unwrap();

    let v1 = memory_v1().map(|root| TestCgroup::new(&root, "sec-into"));
    let into = tmp.path.join("link-into");
    if let Some(cg) = &v1 {
        std::os::unix::fs::symlink(&cg.path, &into).unwrap();
    }

    let before_fake: Vec<_> = FAKE_FILES
        .iter()
        .map(|(n, _)| snapshot(&fake.join(n)))
        .collect();
    let before_victim = snapshot(&victim);
    let before_names = (dir_names(&fake), dir_names(&trap), dir_names(&empty));

    let m: Monitor<()> = Monitor::new().unwrap();
    let mut targets: Vec<(PathBuf, &str)> = vec![
        (out.clone(), "symbolic link"),
        (fake.clone(), "not on a cgroup filesystem"),
        (trap.clone(), "not on a cgroup filesystem"),
        (empty.clone(), "not on a cgroup filesystem"),
        (PathBuf::from("/proc/sys/vm"), "not on a cgroup filesystem"),
        (victim.clone(), "not a directory"),
    ];
    if v1.is_some() {
        targets.push((into.clone(), "symbolic link"));
    }
    for (name, watch) in writing_watches() {
        for (target, why) in &targets {
            let e = watch(&m, target).expect_err(&format!("{name} accepted {}", target.display()));
            let text = e.to_string();
            assert!(
                text.contains(&target.display().to_string()) && text.contains(why),
                "{name} on {}: the error must name the path and say {why:?}: {text}",
                target.display()
            );
            assert_eq!(e.path_involved(), Some(target.as_path()), "{text}");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{text}");
        }
        // The real cgroup, reached without a symlink, is accepted: the
        // refusals above are not blanket ones.
        if let Some(cg) = &v1 {
            let id = watch(&m, &cg.path).unwrap_or_else(|e| panic!("{name}: {e}"));
            m.unwatch(id).unwrap();
        }
    }
    assert!(m.is_empty());

    // Nothing was written or created anywhere.
    let after_fake: Vec<_> = FAKE_FILES
        .iter()
        .map(|(n, _)| snapshot(&fake.join(n)))
        .collect();
    assert_eq!(after_fake, before_fake, "a fake control file was written");
    assert_eq!(
        snapshot(&victim),
        before_victim,
        "the symlink target was written"
    );
    assert_eq!(
        (dir_names(&fake), dir_names(&trap), dir_names(&empty)),
        before_names,
        "files appeared in a plain directory"
    );
}

#[test]
fn psi_triggers_are_written_only_to_pressure_files() {
    let tmp = TmpDir::new("sec-psi");
    let m: Monitor<()> = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 150000 2000000".parse().unwrap();

    // Plain files, one named like a pressure file, and a device.
    let plain = tmp.path.join("file");
    fs::write(&plain, "keep me\n").unwrap();
    let named = tmp.path.join("cpu.pressure");
    fs::write(&named, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
    let before = (snapshot(&plain), snapshot(&named));
    for file in [&plain, &named] {
        let e = m.watch(Psi::new(file, trigger), ()).unwrap_err();
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        assert_eq!(e.path_involved(), Some(file.as_path()), "{e}");
    }
    let e = m.watch(Psi::new("/dev/null", trigger), ()).unwrap_err();
    assert!(e.to_string().contains("/dev/null"), "{e}");
    assert_eq!((snapshot(&plain), snapshot(&named)), before);

    // Symlinks to real pressure files are refused, naming the link.
    let mut links = Vec::new();
    // Named like pressure files, so that the refusal is the O_NOFOLLOW one.
    if Path::new("/proc/pressure/cpu").exists() {
        std::fs::create_dir(tmp.path.join("link-proc")).unwrap();
        let l = tmp.path.join("link-proc/cpu.pressure");
        std::os::unix::fs::symlink("/proc/pressure/cpu", &l).unwrap();
        links.push(l);
    }
    let v2 = unified_v2().map(|root| TestCgroup::new(&root, "sec-psi"));
    if let Some(cg) = &v2 {
        std::fs::create_dir(tmp.path.join("link-cg")).unwrap();
        let l = tmp.path.join("link-cg/cpu.pressure");
        std::os::unix::fs::symlink(cg.path.join("cpu.pressure"), &l).unwrap();
        links.push(l);
    }
    for l in &links {
        let e = m.watch(Psi::new(l, trigger), ()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&l.display().to_string()) && text.contains("symbolic link"),
            "{text}"
        );
    }
    assert!(m.is_empty());

    // The real file is accepted (so the refusals are not blanket ones; for
    // /proc/pressure see `psi_trigger_reaches_proc_pressure_whole`).
    if let Some(cg) = &v2 {
        let id = m
            .watch(Psi::new(cg.path.join("cpu.pressure"), trigger), ())
            .unwrap();
        m.unwatch(id).unwrap();
    }
}

/// A writable procfs file that is not a pressure file: this thread's own
/// `comm`, which the kernel lets a thread rename itself through. A trigger
/// written there renames the thread "some 150000 200"; the same path check
/// would let a caller's path reach /proc/sys/kernel/core_pattern or
/// /proc/sysrq-trigger.
#[test]
fn psi_refuses_procfs_files_other_than_proc_pressure() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 150000 2000000".parse().unwrap();
    let comm = Path::new("/proc/thread-self/comm");
    let name_before = fs::read_to_string(comm).unwrap();
    let result = m.watch(Psi::new(comm, trigger), ());
    let name_after = fs::read_to_string(comm).unwrap();
    if name_after != name_before {
        // Put the thread's name back before failing.
        let _ = fs::write(comm, name_before.trim_end());
    }
    assert_eq!(
        name_after,
        name_before,
        "watch_psi wrote a PSI trigger into {} (result: {result:?})",
        comm.display()
    );
    let e = result.expect_err("watch_psi accepted a procfs file that is not a pressure file");
    assert!(e.to_string().contains("/proc/thread-self/comm"), "{e}");
}

/// A cgroupfs file that is not a pressure file and that the kernel resets on
/// any write: v1 `memory.max_usage_in_bytes` of our own test cgroup.
#[test]
fn psi_refuses_cgroup_files_other_than_pressure_files() {
    let Some(root) = memory_v1() else { return };
    let m: Monitor<()> = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 150000 2000000".parse().unwrap();
    let cg = TestCgroup::new(&root, "sec-psi-v1");
    // Leave a high-water mark of ~8 MiB behind.
    let kid = cg.sh("head -c 8388608 /dev/zero | tail");
    kid.wait_exited_no_reap();
    drop(kid);
    let file = cg.path.join("memory.max_usage_in_bytes");
    let max_before = cg.read("memory.max_usage_in_bytes");
    assert!(max_before.trim().parse::<u64>().unwrap() >= 8 << 20);
    let result = m.watch(Psi::new(&file, trigger), ());
    let max_after = cg.read("memory.max_usage_in_bytes");
    assert_eq!(
        max_after,
        max_before,
        "watch_psi wrote into {} and reset it (result: {result:?})",
        file.display()
    );
    let e = result.expect_err("watch_psi accepted a cgroup file that is not a pressure file");
    assert!(e.to_string().contains("memory.max_usage_in_bytes"), "{e}");
}

#[test]
fn invalid_pids_are_refused_by_every_entry_point() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    let not_oom = m.watch(Eventfd::new(efd), ()).unwrap();
    for pid in [0, -1, -4242, i32::MIN] {
        let errors = [
            (
                "watch_pid_in",
                m.watch(Process::pid(pid).oom_watch(not_oom), ())
                    .unwrap_err(),
            ),
            (
                "watch_pid_without_reaping",
                m.watch(Process::pid(pid).without_reaping(), ())
                    .unwrap_err(),
            ),
            (
                "watch_cgroup_oom_of",
                m.watch(CgroupOom::of(pid), ()).unwrap_err(),
            ),
            (
                "memory_cgroup_of",
                ctrmon::cgroup::memory_cgroup_of(Some(pid)).unwrap_err(),
            ),
        ];
        for (what, e) in errors {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::InvalidInput,
                "{what}({pid}): {e}"
            );
            assert_eq!(e.pid(), Some(pid), "{what}({pid}): {e}");
            assert!(e.to_string().contains(&pid.to_string()), "{what}: {e}");
            assert!(
                !e.is_process_gone(),
                "{what}({pid}) is invalid, not gone: {e}"
            );
        }
    }

    // watch_pid_in needs a live OOM watch: an eventfd watch, or a dead id,
    // is refused naming it, and no pidfd is left behind.
    let kid = Kid::sleeper();
    let e = m
        .watch(Process::pid(kid.pid()).oom_watch(not_oom), ())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("not a live cgroup OOM watch"), "{e}");
    m.unwatch(not_oom).unwrap();
    let e = m
        .watch(Process::pid(kid.pid()).oom_watch(not_oom), ())
        .unwrap_err();
    assert!(e.to_string().contains(&not_oom.to_string()), "{e}");
    // And a dead id cannot be unwatched twice.
    let e = m.unwatch(not_oom).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert_eq!(e.subject(), &Subject::Watch(not_oom));
    assert!(m.is_empty());
}

#[test]
fn empty_nul_and_over_long_paths_are_refused_by_every_path_entry_point() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let trigger: PsiTrigger = "some 150000 2000000".parse().unwrap();
    type PathWatch<'a> = Box<dyn Fn(&Path) -> ctrmon::Result<ctrmon::WatchId> + 'a>;
    let m = &m;
    let trigger = &trigger;
    let entry_points: Vec<(&str, PathWatch<'_>)> = vec![
        (
            "watch_cgroup_oom",
            Box::new(move |p| m.watch(CgroupOom::dir(p), ()).map(|w| w.id())),
        ),
        (
            "watch_pressure_level",
            Box::new(move |p| {
                m.watch(
                    MemoryPressure::new(p, PressureLevel::Critical).mode(PressureMode::Local),
                    (),
                )
            }),
        ),
        (
            "watch_usage_threshold",
            Box::new(move |p| m.watch(UsageThreshold::new(p, 4096).with_swap(), ())),
        ),
        (
            "watch_populated",
            Box::new(move |p| m.watch(Populated::dir(p), ())),
        ),
        (
            "watch_psi",
            Box::new(move |p| m.watch(Psi::new(p, *trigger), ())),
        ),
    ];
    let long_name = format!("/sys/fs/cgroup/memory/ctrmon-test-{}", "x".repeat(300));
    let long_path = format!("/sys/fs/cgroup/{}", "ctrmon-test-deep/".repeat(300));
    for (what, watch) in &entry_points {
        for (bad, says) in [
            ("", "empty"),
            ("/sys/fs/cgroup/memory/a\0b", "NUL"),
            ("/sys/fs/cgroup/unified/\0", "NUL"),
        ] {
            let e = watch(Path::new(bad)).unwrap_err();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::InvalidInput,
                "{what}({bad:?}): {e}"
            );
            assert!(e.to_string().contains(says), "{what}({bad:?}): {e}");
        }
        // A component longer than NAME_MAX (kernfs answers ENOENT), and a
        // path longer than PATH_MAX (ENAMETOOLONG): errors naming the path.
        let e = watch(Path::new(&long_name)).unwrap_err();
        assert_eq!(
            e.path_involved(),
            Some(Path::new(&long_name)),
            "{what}: {e}"
        );
        // watch_psi refuses any name but a pressure file's before opening.
        let long_path = if *what == "watch_psi" {
            format!("{long_path}cpu.pressure")
        } else {
            long_path.clone()
        };
        let e = watch(Path::new(&long_path)).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()),
            "{what}: {e}"
        );
        assert_eq!(
            e.path_involved(),
            Some(Path::new(&long_path)),
            "{what}: {e}"
        );
    }
    drop(entry_points);
    assert!(m.is_empty());
}

#[test]
fn malformed_and_over_long_psi_triggers_are_clear_errors() {
    let huge_number = format!("some {} 2000000", "9".repeat(10_000));
    let many_words = format!("some 150000 2000000{}", " 1".repeat(100_000));
    let long_garbage = "x".repeat(1 << 20);
    let bad: Vec<(&str, &str)> = vec![
        ("", "`some` or `full`"),
        ("   \n", "`some` or `full`"),
        ("some", "expected"),
        ("some 150000", "expected"),
        ("SOME 150000 2000000", "`some` or `full`"),
        ("sometimes 150000 2000000", "`some` or `full`"),
        ("some 150000 2000000 extra", "trailing"),
        (&many_words, "trailing"),
        ("some 4294967296 2000000", "below 2^32"),
        (&huge_number, "below 2^32"),
        ("some -1 2000000", "whole microseconds"),
        ("some +150000 2000000", "whole microseconds"),
        ("some 1e5 2000000", "whole microseconds"),
        ("some 0x10 2000000", "whole microseconds"),
        ("some 150000.5 2000000", "whole microseconds"),
        ("some 150000\0 2000000", "whole microseconds"),
        ("some\u{a0}150000 2000000", "`some` or `full`"),
        ("some 0 2000000", "more than 0"),
        ("some 150000 499999", "between 500 ms and 10 s"),
        ("some 150000 10000001", "between 500 ms and 10 s"),
        ("full 3000000 2000000", "not exceed the window"),
        ("some 150000 2000000\n\n", "whole microseconds"),
        (&long_garbage, "`some` or `full`"),
    ];
    for (input, says) in bad {
        let shown: String = input.chars().take(40).collect();
        let e = input
            .parse::<PsiTrigger>()
            .expect_err(&format!("accepted {shown:?}"));
        let text = e.to_string();
        assert!(
            text.starts_with("malformed PSI trigger") && text.contains(says),
            "{shown:?}: {text}"
        );
        // The message stays short whatever the input.
        assert!(text.len() < 200, "{shown:?}: {} bytes", text.len());
    }

    // What is accepted always reaches the kernel in full: it reads at most
    // 31 bytes of a trigger (psi_write's buffer), so the normalized string
    // must fit, however the input was padded.
    let padded = format!("some {}150000 {}2000000", "0".repeat(500), "0".repeat(500));
    for ok in [
        "some 150000 2000000",
        "full\t100000\t1000000\n",
        "  some   1   500000  ",
        "some 10000000 10000000",
        &padded,
    ] {
        let t: PsiTrigger = ok.parse().unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        let s = t.to_kernel_string();
        assert!(s.len() <= 31, "{s:?}");
        assert_eq!(s.parse::<PsiTrigger>().unwrap(), t);
    }
    assert_eq!(
        padded.parse::<PsiTrigger>().unwrap().to_kernel_string(),
        "some 150000 2000000"
    );
}

/// `psi_write` (the /proc/pressure/* handler, unlike the cgroup one) reads at
/// most 32 bytes and overwrites the *last byte written* with a NUL: a trigger
/// written without its terminator loses its last digit. Written as
/// "some 150000 2000000" it reaches the kernel as "some 150000 200000" (a
/// 200 ms window, EINVAL); "some 50000 5000000" would silently become a
/// 500 ms window for a privileged caller.
#[test]
fn psi_trigger_reaches_proc_pressure_whole() {
    let file = Path::new("/proc/pressure/cpu");
    if !file.exists() {
        eprintln!("skipping: no /proc/pressure");
        return;
    }
    let m: Monitor<()> = Monitor::new().unwrap();
    for text in [
        "some 150000 2000000",
        "full 500000 2000000",
        "some 1000000 4000000",
    ] {
        let trigger: PsiTrigger = text.parse().unwrap();
        let id = m
            .watch(Psi::new(file, trigger), ())
            .unwrap_or_else(|e| panic!("{text:?} on {}: {e}", file.display()));
        m.unwatch(id).unwrap();
    }
}
