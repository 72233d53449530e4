//! What the shim examples share: a memory cgroup of their own, removed on
//! every way out (an error, a panic, the normal end).
//!
//! A real runtime places its cgroups with more care (a systemd host owns
//! the v2 root and delegates a subtree; see the README on `ctrmon run`).
//! The examples take the v1 memory hierarchy when there is one, else the
//! cgroup2 root when it enables `memory` for its children, as a test
//! machine or a container's own namespace has it. They need root.

#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// A `ctrmon-example-*` memory cgroup with a limit; its processes killed
/// and the directory removed when it is dropped.
pub struct ExampleCgroup {
    pub path: PathBuf,
}

/// Where memory cgroups can be made here, and whether it is cgroup v2.
pub fn memory_hierarchy() -> io::Result<(PathBuf, bool)> {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.oom_control").exists() {
        return Ok((v1.to_path_buf(), false));
    }
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let controllers = std::fs::read_to_string(Path::new(root).join("cgroup.subtree_control"))
            .unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Ok((PathBuf::from(root), true));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no memory cgroup hierarchy: neither /sys/fs/cgroup/memory (v1) nor a cgroup2 \
         root with memory in cgroup.subtree_control",
    ))
}

impl ExampleCgroup {
    /// Creates `<hierarchy>/ctrmon-example-<our pid>-<name>` limited to
    /// `bytes` of memory, without swap.
    pub fn create(name: &str, bytes: u64) -> io::Result<ExampleCgroup> {
        let (root, v2) = memory_hierarchy()?;
        let path = root.join(format!("ctrmon-example-{}-{name}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", path.display())))?;
        // From here on, Drop removes it.
        let cg = ExampleCgroup { path };
        if v2 {
            cg.write("memory.max", &bytes.to_string())?;
            if cg.path.join("memory.swap.max").exists() {
                cg.write("memory.swap.max", "0")?;
            }
        } else {
            cg.write("memory.limit_in_bytes", &bytes.to_string())?;
        }
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        let p = self.path.join(file);
        std::fs::write(&p, value)
            .map_err(|e| io::Error::new(e.kind(), format!("write {value} to {}: {e}", p.display())))
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for ExampleCgroup {
    fn drop(&mut self) {
        // Kill what is left (through pidfds: a pid read from cgroup.procs
        // may be reaped and reused before the kill), then remove the
        // directory once the kernel has let the processes go.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for pid in self.pids() {
                let Some(p) = Pid::from_raw(pid) else {
                    continue;
                };
                let fd = match pidfd_open(p, PidfdFlags::empty()) {
                    Ok(fd) => fd,
                    // Refused (seccomp, SELinux, before 5.3): its /proc
                    // directory names it for good too, and
                    // pidfd_send_signal takes it; it must still be in the
                    // cgroup once opened.
                    Err(Errno::PERM | Errno::ACCESS | Errno::NOSYS) => {
                        match std::fs::File::open(format!("/proc/{pid}")) {
                            Ok(dir) if self.pids().contains(&pid) => dir.into(),
                            _ => continue,
                        }
                    }
                    Err(_) => continue,
                };
                let _ = pidfd_send_signal(&fd, Signal::KILL);
            }
            match std::fs::remove_dir(&self.path) {
                Ok(()) => {
                    println!("removed {}", self.path.display());
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    eprintln!("could not remove {}: {e}", self.path.display());
                    return;
                }
            }
        }
    }
}
