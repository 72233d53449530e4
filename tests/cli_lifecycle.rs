//! The `ctrmon` binary's life cycle, black box: argument parsing, what happens
//! when ctrmon is killed or its output fails, and the smaller things a user
//! hits. Real commands, real cgroups; nothing is left behind.

mod common;

use std::process::{Command, Output, Stdio};

use common::{memory_v1, TmpDir};

fn ctrmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctrmon"))
}

fn run(args: &[&str]) -> Output {
    ctrmon().args(args).stdin(Stdio::null()).output().unwrap()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// The value of `"key":` in a JSON line (numbers, booleans and strings
/// without escapes).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next();
    }
    Some(&rest[..rest.find([',', '}']).unwrap_or(rest.len())])
}

fn event(line: &str) -> &str {
    field(line, "event").unwrap()
}

#[test]
fn every_command_has_help_with_its_options_and_exit_statuses() {
    for (cmd, option) in [
        ("run", "--memory"),
        ("watch", "--pid"),
        ("gc", "--cgroup-parent"),
        ("locate", "PID"),
    ] {
        let out = run(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{cmd} --help: {text}");
        assert!(text.contains(option), "{cmd} --help: {text}");
        assert!(text.contains("Exit status"), "{cmd} --help: {text}");
    }
}

#[test]
fn option_equals_value_and_events_dash_mean_what_users_expect() {
    if memory_v1().is_none() {
        return;
    }
    let dir = TmpDir::new("cli-dash");
    // `--events -` writes to standard output, never to a file named `-`.
    let out = ctrmon()
        .current_dir(&dir.path)
        .args([
            "run",
            "--memory=32M",
            "--events",
            "-",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = lines(&out.stdout);
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["start", "exit"], "{ev:?}");
    assert!(!dir.path.join("-").exists(), "a file named - was created");
    // `--` ends ctrmon's options: what follows is the command's.
    let out = run(&["run", "--", "sh", "-c", "exit 4", "--memory"]);
    assert_eq!(out.status.code(), Some(4));
    // A limit of 0 would kill the command at once: refused.
    let out = run(&["run", "--memory=0", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));
}

/// `ls /proc/self/fd` of a command run by ctrmon, which was started with fd
/// 7 open and not close-on-exec (as a shell's `exec 7>FILE` leaves it).
fn fds_of_command(extra: &[&str]) -> (Option<i32>, Vec<u32>) {
    let dir = TmpDir::new(&format!("cli-fds{}", extra.len()));
    let script = format!(
        "exec 7>'{}/x'; exec '{}' run {} -- ls /proc/self/fd",
        dir.path.display(),
        env!("CARGO_BIN_EXE_ctrmon"),
        extra.join(" ")
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let fds = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (out.status.code(), fds)
}

#[test]
fn inherited_fds_are_closed_at_the_commands_exec_unless_kept() {
    if memory_v1().is_none() {
        return;
    }
    let (code, fds) = fds_of_command(&[]);
    assert_eq!(code, Some(0));
    // 0, 1, 2, and the directory `ls` itself opened.
    assert!(
        !fds.contains(&7),
        "inherited fd 7 reached the command: {fds:?}"
    );
    assert!(
        fds.contains(&0) && fds.contains(&1) && fds.contains(&2),
        "{fds:?}"
    );
    let (code, fds) = fds_of_command(&["--keep-fds"]);
    assert_eq!(code, Some(0));
    assert!(fds.contains(&7), "--keep-fds did not pass fd 7 on: {fds:?}");
}
