//! Where `ctrmon run` creates the command's cgroup, by the kernel's rules and
//! systemd's.
//!
//! - cgroup v1: under `--cgroup-parent`, or at the root of the memory
//!   hierarchy.
//! - cgroup v2, `--cgroup-parent DIR`: `memory` must be in DIR's
//!   `cgroup.subtree_control` for the new cgroup to have a memory
//!   controller. It is enabled if it is not; the kernel refuses that
//!   (`EBUSY`) while DIR has processes of its own (the "no internal
//!   processes" rule), which is an error naming DIR.
//! - cgroup v2, no parent, no systemd (an init, a VM's PID 1, a container
//!   with its own cgroup namespace): the root of the cgroup2 mount whose
//!   root lists `memory` in `cgroup.controllers`. ctrmon's own cgroup needs
//!   no memory files (the root cgroup has none).
//! - cgroup v2, no parent, systemd (`/run/systemd/system` exists): systemd
//!   owns the root and every cgroup it has not delegated
//!   (`docs/CGROUP_DELEGATION.md`), so ctrmon never creates there. If its
//!   own cgroup is delegated, ctrmon moves itself into a leaf child
//!   `supervisor`, enables `memory` in its own cgroup (which now holds no
//!   process) and creates the command's cgroup beside the leaf, as crun
//!   does; a `supervisor` leaf it already sits in (its own earlier run, or
//!   a caller that moved itself there) is used the same way, `memory`
//!   enabled as for a new one. Otherwise it refuses with the command that
//!   works for its user: `systemd-run --scope -p Delegate=yes …` for root,
//!   `systemd-run --user --scope -p Delegate=yes …` for anyone else (the
//!   system manager answers a user's `systemd-run --scope` with "Access
//!   denied").
//!
//! Delegated means: the system manager marked the cgroup with the
//! `trusted.delegate` xattr (or `user.delegate`, which systemd sets beside
//! it and which a reader without `CAP_SYS_ADMIN` can see), or it is a unit
//! of a user manager that the user manager's own unit files delegate, by
//! the rule argued in [`user_manager`]: a user manager writes no attribute
//! at all.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ctrmon::cgroup::parse::controllers;
use ctrmon::cgroup::{cgroup_version, locate_in, CgroupVersion};

use crate::{fail, Failure};

mod user_manager;
use user_manager::NotDelegated;

/// Present on every host that systemd manages (`sd_booted(3)`).
const SYSTEMD_MARKER: &str = "/run/systemd/system";
/// The leaf ctrmon moves itself into inside a delegated cgroup.
pub const SUPERVISOR: &str = "supervisor";

/// Where the command's cgroup goes.
#[derive(Debug)]
pub struct Placement {
    /// The directory the command's cgroup is created in.
    pub parent: PathBuf,
    /// Its hierarchy's version.
    pub version: CgroupVersion,
}

/// Decides (and prepares) where the command's cgroup is created.
pub fn place(cgroup_parent: Option<&Path>) -> Result<Placement, Failure> {
    if let Some(dir) = cgroup_parent {
        let version = cgroup_version(dir)?;
        if version == CgroupVersion::V2 {
            enable_memory_for_children(dir)?;
        }
        return Ok(Placement {
            parent: dir.to_path_buf(),
            version,
        });
    }
    let own = own_cgroup()?;
    match own.version {
        CgroupVersion::V1 => Ok(Placement {
            parent: own.mount_point,
            version: CgroupVersion::V1,
        }),
        CgroupVersion::V2 if !Path::new(SYSTEMD_MARKER).exists() => {
            enable_memory_for_children(&own.mount_point)?;
            Ok(Placement {
                parent: own.mount_point,
                version: CgroupVersion::V2,
            })
        }
        CgroupVersion::V2 => delegated(&own.dir, &own.mount_point),
    }
}

/// Where [`place`] puts the command's cgroup when not told, without
/// preparing it (no controller enabled, nothing moved): for `gc`, which
/// looks there for what killed runs left.
pub fn default_parent() -> Result<PathBuf, Failure> {
    let own = own_cgroup()?;
    let systemd = Path::new(SYSTEMD_MARKER).exists();
    Ok(match own.version {
        CgroupVersion::V2 if systemd && own.dir.file_name() == Some(OsStr::new(SUPERVISOR)) => {
            own.dir.parent().unwrap_or(&own.dir).to_path_buf()
        }
        CgroupVersion::V2 if systemd => own.dir,
        _ => own.mount_point,
    })
}

struct OwnCgroup {
    version: CgroupVersion,
    mount_point: PathBuf,
    /// ctrmon's own cgroup (the directory, which may lack memory files).
    dir: PathBuf,
}

/// ctrmon's own cgroup on the hierarchy that has the memory controller:
/// v1's memory hierarchy, or the cgroup2 mount whose root lists `memory`.
fn own_cgroup() -> Result<OwnCgroup, Failure> {
    let read = |p: &str| std::fs::read(p).or_else(|e| fail(format_args!("read {p}"), e));
    let cgroup = read("/proc/self/cgroup")?;
    let mountinfo = read("/proc/self/mountinfo")?;
    let loc = locate_in(&cgroup, &mountinfo, |mount_point| {
        std::fs::read(mount_point.join("cgroup.controllers"))
            .is_ok_and(|c| controllers::contains(&c, b"memory"))
    });
    match loc {
        Ok(l) => Ok(OwnCgroup {
            version: l.version,
            mount_point: l.mount_point,
            dir: l.dir,
        }),
        Err(e) => fail("find the memory cgroup hierarchy", e),
    }
}

/// Makes sure cgroups created in `dir` get a memory controller.
fn enable_memory_for_children(dir: &Path) -> Result<(), Failure> {
    let control = dir.join("cgroup.subtree_control");
    let enabled =
        std::fs::read(&control).or_else(|e| fail(format_args!("read {}", control.display()), e))?;
    if controllers::contains(&enabled, b"memory") {
        return Ok(());
    }
    let available = std::fs::read(dir.join("cgroup.controllers")).unwrap_or_default();
    if !controllers::contains(&available, b"memory") {
        return fail(
            format_args!("enable memory in {}", control.display()),
            format_args!(
                "the memory controller is not available in {} (it is not in its \
                 cgroup.controllers: enable it in the parent's cgroup.subtree_control)",
                dir.display()
            ),
        );
    }
    match write_control(&control, b"+memory") {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => fail(
            format_args!("enable memory in {}", control.display()),
            format_args!(
                "{} has processes of its own, and cgroup v2 lets only a cgroup without \
                 processes enable controllers for its children (the \"no internal \
                 processes\" rule); use a --cgroup-parent without processes, or move its \
                 processes into a child cgroup first",
                dir.display()
            ),
        ),
        Err(e) => fail(format_args!("enable memory in {}", control.display()), e),
    }
}

/// On a systemd host: place the command beside ctrmon in its own cgroup,
/// if that cgroup was delegated to it.
fn delegated(own: &Path, mount_point: &Path) -> Result<Placement, Failure> {
    // A second run from the same scope finds itself in the leaf already, and
    // so does a caller that moved itself there: either way the scope still
    // needs `memory` for its children.
    let in_leaf = own.file_name() == Some(OsStr::new(SUPERVISOR))
        && own
            .parent()
            .is_some_and(|p| p != mount_point && delegation(p, mount_point).is_ok());
    if in_leaf {
        let scope = own.parent().unwrap_or(own);
        enable_memory_for_children(scope)?;
        return Ok(Placement {
            parent: scope.to_path_buf(),
            version: CgroupVersion::V2,
        });
    }
    let verdict = if own == mount_point {
        Err("ctrmon runs in the root cgroup".to_string())
    } else {
        delegation(own, mount_point).map_err(|why| {
            format!(
                "ctrmon's cgroup {} is not delegated to it ({why})",
                own.display()
            )
        })
    };
    if let Err(whose) = verdict {
        let run = if rustix::process::geteuid().is_root() {
            "systemd-run --scope -p Delegate=yes"
        } else {
            "systemd-run --user --scope -p Delegate=yes"
        };
        return Err(Failure(format!(
            "this host is managed by systemd ({SYSTEMD_MARKER} exists), which owns the \
             root cgroup and every cgroup it has not delegated, and {whose}; run ctrmon in \
             a delegated scope: {run} {}, or pass --cgroup-parent with a cgroup \
             delegated to you",
            command_line()
        )));
    }
    let leaf = own.join(SUPERVISOR);
    {
        let created = match std::fs::create_dir(&leaf) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return fail(format_args!("create cgroup {}", leaf.display()), e),
        };
        let me = std::process::id().to_string();
        let procs = leaf.join("cgroup.procs");
        if let Err(e) = write_control(&procs, me.as_bytes()) {
            if created {
                let _ = std::fs::remove_dir(&leaf);
            }
            return fail(format_args!("move ctrmon into {}", leaf.display()), e);
        }
        if let Err(f) = enable_memory_for_children(own) {
            // Back where it was, leaving nothing behind: `own` enables no
            // controller yet, so it may take a process again.
            let _ = write_control(&own.join("cgroup.procs"), me.as_bytes());
            if created {
                let _ = std::fs::remove_dir(&leaf);
            }
            return Err(f);
        }
    }
    Ok(Placement {
        parent: own.to_path_buf(),
        version: CgroupVersion::V2,
    })
}

/// Whether `dir` was delegated: by the system manager's attribute, or, for
/// a unit of a user manager, by that unit's settings ([`user_manager`]).
/// The error says what was found instead.
fn delegation(dir: &Path, mount_point: &Path) -> Result<(), String> {
    if has_delegate_xattr(dir) {
        return Ok(());
    }
    let Some((uid, unit)) = user_manager::user_unit(dir, mount_point) else {
        return Err("no trusted.delegate or user.delegate attribute".to_string());
    };
    match user_manager::check(dir, uid, &unit, has_delegate_xattr) {
        Ok(()) => Ok(()),
        Err(NotDelegated::NotUserUnit) => {
            Err("no trusted.delegate or user.delegate attribute".to_string())
        }
        Err(NotDelegated::Ownership(why)) => {
            Err(format!("a unit of user {uid}'s systemd manager, but {why}"))
        }
        Err(NotDelegated::NoDelegateSetting { unit, read }) => {
            let read: Vec<String> = read.iter().map(|p| p.display().to_string()).collect();
            Err(format!(
                "a user manager marks no cgroup, and the unit files of {unit} \
                 say no Delegate=yes ({})",
                if read.is_empty() {
                    "none found".to_string()
                } else {
                    format!("read {}", read.join(", "))
                }
            ))
        }
    }
}

/// Whether the system manager marked `dir` as delegated: `trusted.delegate`
/// (or `user.delegate`, set beside it, the one a user can read: `trusted.*`
/// reads as absent without `CAP_SYS_ADMIN`), value `1`. systemd's user
/// managers write neither.
fn has_delegate_xattr(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let mut buf = [0u8; 8];
        rustix::fs::getxattr(dir, *name, &mut buf[..]).is_ok_and(|n| buf[..n] != *b"0")
    })
}

/// Writes a cgroup control file in one `write`, without following links.
fn write_control(path: &Path, value: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(value)
}

/// This invocation, quoted for a POSIX shell, for the hint to copy.
fn command_line() -> String {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut out = String::from("ctrmon");
    for a in args.iter().skip(1) {
        out.push(' ');
        out.push_str(&shell_quote(a));
    }
    out
}

fn shell_quote(arg: &OsStr) -> String {
    let text = String::from_utf8_lossy(arg.as_bytes());
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("--memory=32M")), "--memory=32M");
        assert_eq!(shell_quote(OsStr::new("exit 7")), "'exit 7'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }
}
