//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/*`)
//! through the same calls the fuzz targets make, so that every input that
//! once mattered (real files from a development machine, crafted edge
//! cases, inputs that crashed a fuzzer) keeps being checked by a plain
//! `cargo test`, without nightly or cargo-fuzz.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ctrmon::cgroup::parse::escape::{escape, unescape};
use ctrmon::cgroup::parse::kmsg_oom::{self, OomLine};
use ctrmon::cgroup::parse::psi::PsiTrigger;
use ctrmon::cgroup::parse::{
    cgroup_events, controllers, memory_events, mountinfo, number, oom_control, proc_cgroup, psi,
    swap_events,
};
use ctrmon::cgroup::{locate_in, nearest_containing_in};
use ctrmon::reaper::proc::{parse_children, signal_blocked, start_time, zombie_exit_code};

#[path = "kmsg_format/mod.rs"]
mod kmsg_format;

/// Runs one input through target `name`, as `fuzz/fuzz_targets/<name>.rs`
/// does; false for an unknown target.
fn replay(name: &str, data: &[u8]) -> bool {
    match name {
        "proc_cgroup" => {
            if let Ok(f) = proc_cgroup::parse(data) {
                let _ = (f.entries().count(), f.memory_v1(), f.unified());
            }
        }
        "mountinfo" => {
            if let Ok(info) = mountinfo::parse(data) {
                for m in info.entries() {
                    let _ = (m.root(), m.mount_point(), m.fs_type(), m.source());
                    let _ = m.optional_fields().count();
                }
            }
        }
        "escape_roundtrip" => assert_eq!(&*unescape(&escape(data)), data),
        "oom_control" => drop(oom_control::parse(data)),
        "memory_events" => {
            if let Ok(ev) = memory_events::parse(data) {
                assert!(ev.delta(&ev).is_zero());
            }
        }
        "swap_events" => {
            if let Ok(ev) = swap_events::parse(data) {
                assert!(ev.delta(&ev).is_zero());
            }
        }
        "cgroup_events" => drop(cgroup_events::parse(data)),
        "psi" => drop(psi::parse(data)),
        "psi_trigger" => {
            if let Ok(t) = PsiTrigger::parse(data) {
                assert_eq!(PsiTrigger::parse(t.to_kernel_string().as_bytes()), Ok(t));
            }
        }
        "number" => {
            let _ = number::parse_u64_file("memory.usage_in_bytes", data);
            let _ = number::parse_limit_file("memory.max", data);
        }
        "controllers" => drop(controllers::names(data).count()),
        "kmsg_oom" => {
            if let Ok(rec) = kmsg_oom::parse(data) {
                for (k, v) in rec.properties() {
                    assert!(k.bytes().count() <= k.raw().len());
                    assert!(v.bytes().count() <= v.raw().len());
                }
                let names = match rec.oom() {
                    Some(OomLine::Killed(k)) => [Some(k.comm), None, None],
                    Some(OomLine::Context(c)) => [c.comm, c.oom_memcg, c.task_memcg],
                    Some(OomLine::GroupKill { memcg }) => [Some(memcg), None, None],
                    None => [None; 3],
                };
                for n in names.into_iter().flatten() {
                    assert!(n.bytes().count() <= n.raw().len());
                }
            }
        }
        "locate" => {
            let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            let (cgroup, rest) = data.split_at(split);
            let mountinfo = rest.get(1..).unwrap_or_default();
            let _ = locate_in(cgroup, mountinfo, |p| p.as_os_str().len() % 2 == 0);
            let nl = cgroup
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(cgroup.len());
            let (path, me) = cgroup.split_at(nl);
            let _ = ctrmon::cgroup::memory_cgroup_dir_in(path, me, mountinfo);
        }
        "containing" => {
            let mut parts = data.splitn(3, |&b| b == 0);
            let cgroup = parts.next().unwrap_or_default();
            let mountinfo = parts.next().unwrap_or_default();
            let dirs: Vec<&Path> = parts
                .next()
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .map(|d| Path::new(OsStr::from_bytes(d)))
                .collect();
            if let Ok(Some(i)) = nearest_containing_in(cgroup, mountinfo, &dirs) {
                assert!(i < dirs.len());
            }
        }
        "proc_task" => {
            assert!(parse_children(data).all(|pid| pid > 0));
            let _ = (
                signal_blocked(data, 17),
                signal_blocked(data, 64),
                start_time(data),
            );
            assert!(zombie_exit_code(data).map_or(true, |s| s >= 0));
        }
        "kmsg_context" => kmsg_format::check(&kmsg_format::Kill::from_bytes(data)),
        _ => return false,
    }
    true
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_committed_corpus_file_replays_without_panic() {
    let mut files = 0;
    for dir in std::fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            assert!(replay(&name, &data), "no replay for corpus dir {name}");
            files += 1;
        }
    }
    assert!(files > 0, "the seed corpus is empty");
}

#[test]
fn every_fuzz_target_has_a_seed_corpus_and_a_replay() {
    for target in std::fs::read_dir(fuzz_dir().join("fuzz_targets")).unwrap() {
        let path = target.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            replay(&name, b""),
            "tests/fuzz_corpus.rs has no replay for {name}"
        );
        let corpus = fuzz_dir().join("corpus").join(&name);
        let n = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
        assert!(n > 0, "{} has no seed inputs", corpus.display());
    }
}

/// Real files of this machine, read now, must parse (not merely not
/// panic). Skipped where a file does not exist.
#[test]
fn live_kernel_files_parse() {
    let check = |path: &str, f: &dyn Fn(&[u8]) -> bool| {
        if let Ok(data) = std::fs::read(path) {
            assert!(
                f(&data),
                "{path} did not parse:\n{}",
                String::from_utf8_lossy(&data)
            );
        }
    };
    check("/proc/self/cgroup", &|d| proc_cgroup::parse(d).is_ok());
    check("/proc/self/mountinfo", &|d| mountinfo::parse(d).is_ok());
    check("/proc/1/mountinfo", &|d| mountinfo::parse(d).is_ok());
    check("/sys/fs/cgroup/memory/memory.oom_control", &|d| {
        oom_control::parse(d).is_ok()
    });
    check("/sys/fs/cgroup/memory/memory.usage_in_bytes", &|d| {
        number::parse_u64_file("f", d).is_ok()
    });
    for r in ["cpu", "memory", "io"] {
        check(&format!("/proc/pressure/{r}"), &|d| psi::parse(d).is_ok());
        check(&format!("/sys/fs/cgroup/unified/{r}.pressure"), &|d| {
            psi::parse(d).is_ok()
        });
        check(&format!("/sys/fs/cgroup/{r}.pressure"), &|d| {
            psi::parse(d).is_ok()
        });
    }
    check("/sys/fs/cgroup/memory.events", &|d| {
        memory_events::parse(d).is_ok()
    });
}
