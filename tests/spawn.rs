//! `ctrmon::spawn::ChildSetup` on real processes and cgroups.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use common::{memory_v1, TestCgroup};
use ctrmon::spawn::ChildSetup;

fn output_of(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_child_starts_in_its_cgroup() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "spawn");
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/cgroup");
    ChildSetup::new()
        .join_cgroup(&cg.path)
        .unwrap()
        .die_with_parent()
        .apply(&mut cmd);
    let shown = output_of(&mut cmd);
    let rel = cg.path.strip_prefix(&root).unwrap();
    assert!(
        shown.contains(&format!(":memory:/{}\n", rel.display())),
        "{shown}"
    );
}

#[test]
fn a_cgroup_that_cannot_be_joined_fails_the_spawn() {
    let mut cmd = Command::new("true");
    ChildSetup::new()
        .join_cgroup("/sys/fs/cgroup/memory/ctrmon-test-does-not-exist")
        .unwrap()
        .apply(&mut cmd);
    let e = cmd.spawn().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
}

#[test]
fn inherited_fds_are_closed_at_exec_only_when_asked() {
    // `dup` gives an fd without close-on-exec, as a caller's shell would.
    let file = std::fs::File::open("/dev/null").unwrap();
    let inherited = rustix::io::dup(&file).unwrap();
    let n = inherited.as_raw_fd().to_string();
    let ls = || {
        let mut cmd = Command::new("ls");
        cmd.arg("/proc/self/fd");
        cmd
    };
    let mut plain = ls();
    let listed = output_of(&mut plain);
    assert!(listed.split_whitespace().any(|f| f == n), "{listed}");
    let mut closed = ls();
    ChildSetup::new().close_inherited_fds().apply(&mut closed);
    let listed = output_of(&mut closed);
    assert!(!listed.split_whitespace().any(|f| f == n), "{listed}");
}
