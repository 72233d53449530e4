//! Whether systemd's *user* manager delegated a cgroup, told without D-Bus.
//!
//! A user manager (`user@UID.service`) marks nothing: systemd's
//! `cgroup_xattr_apply` returns before writing `trusted.delegate` for any
//! manager but the system's (checked with systemd 252, and so in current
//! systemd), and a delegated `systemd-run --user --scope -p Delegate=yes`
//! scope looks, in cgroupfs, exactly like a plain one: both are made by the
//! user manager, which runs as the user, so both and all their files belong
//! to the user. Ownership tells who *may* write there, not whether the
//! manager keeps out (a manager realizes controllers in every cgroup it
//! was not told to leave alone). Only `user@UID.service` itself is marked,
//! by the system manager: `trusted.delegate`, and `user.delegate` too, the
//! one its user can read (`trusted.*` reads as absent without
//! `CAP_SYS_ADMIN`; rootless placement in the systemd guest relies on it).
//!
//! What is left is what the manager itself reads: the unit's settings. It
//! writes a transient unit (`systemd-run --user`, also `--scope`) to
//! `/run/user/UID/systemd/transient/NAME` with a `Delegate=yes` line, and
//! reads a persistent unit from its unit search path with its drop-ins. The
//! rule, all of it required:
//!
//! 1. the cgroup is `…/user@UID.service/[*.slice/…]NAME`, NAME a `.scope`
//!    or `.service`, with only slices between: a unit of that manager,
//!    not a cgroup someone made inside one;
//! 2. `user@UID.service` carries `trusted.delegate` or `user.delegate`
//!    (the system manager gave that subtree to UID);
//! 3. the cgroup and its `cgroup.procs` belong to UID, and ctrmon runs as
//!    UID (or root);
//! 4. NAME's settings, as the manager reads them (the first unit file on
//!    the user search path, then its drop-ins by file name), end with a
//!    `Delegate=` that is not `no`/empty; each file read belongs to UID or
//!    root and is writable by nobody else.
//!
//! What this cannot see is refused (with `systemd-run --user --scope -p
//! Delegate=yes …` as the hint): a unit file edited but not yet reloaded
//! (the files then say more than the manager knows; this only misleads the
//! user's own processes about the user's own cgroups, which the kernel
//! lets them write anyway), `systemctl --user set-property` runtime
//! changes outside the files read here, generators' output, and per-type
//! drop-ins (`service.d/`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a cgroup below a user manager is not taken as delegated.
#[derive(Debug, PartialEq, Eq)]
pub enum NotDelegated {
    /// Not a unit cgroup of a user manager (rule 1, or no user manager).
    NotUserUnit,
    /// `user@UID.service` lacks the delegation attribute, or the owners
    /// differ.
    Ownership(String),
    /// The unit's files do not say `Delegate=yes`; what was read.
    NoDelegateSetting { unit: String, read: Vec<PathBuf> },
}

/// The uid of the user manager whose unit `dir` is, and the unit's name,
/// by rule 1: `dir` relative to the cgroup mount is
/// `…/user@UID.service/(X.slice/)*NAME.(scope|service)`.
pub fn user_unit(dir: &Path, mount_point: &Path) -> Option<(u32, String)> {
    let rel = dir.strip_prefix(mount_point).ok()?;
    let parts: Vec<&OsStr> = rel.iter().collect();
    let at = parts.iter().rposition(|p| manager_uid(p).is_some())?;
    let uid = manager_uid(parts[at])?;
    let (unit, between) = parts[at + 1..].split_last()?;
    let unit = unit.to_str()?;
    let is_unit = (unit.ends_with(".scope") || unit.ends_with(".service"))
        && !unit.contains('/')
        && !unit.starts_with('.');
    let slices = between.iter().all(|s| s.as_bytes().ends_with(b".slice"));
    (is_unit && slices).then(|| (uid, unit.to_string()))
}

/// `UID` of a `user@UID.service` component.
fn manager_uid(part: &OsStr) -> Option<u32> {
    let s = part.to_str()?;
    let digits = s.strip_prefix("user@")?.strip_suffix(".service")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Applies rules 2–4 to `dir`, the cgroup of `unit` of user `uid`'s
/// manager; `manager` is the `user@UID.service` cgroup and `delegated`
/// tells whether a cgroup carries a delegation attribute.
pub fn check(
    dir: &Path,
    uid: u32,
    unit: &str,
    delegated: impl Fn(&Path) -> bool,
) -> Result<(), NotDelegated> {
    let manager = dir
        .ancestors()
        .find(|a| a.file_name().and_then(manager_uid) == Some(uid))
        .ok_or(NotDelegated::NotUserUnit)?;
    if !delegated(manager) {
        return Err(NotDelegated::Ownership(format!(
            "{} has no trusted.delegate or user.delegate attribute",
            manager.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if me != uid && me != 0 {
        return Err(NotDelegated::Ownership(format!(
            "it belongs to the manager of uid {uid}, and ctrmon runs as uid {me}"
        )));
    }
    for p in [dir.to_path_buf(), dir.join("cgroup.procs")] {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.uid() == uid => {}
            Ok(m) => {
                return Err(NotDelegated::Ownership(format!(
                    "{} belongs to uid {}, not {uid}",
                    p.display(),
                    m.uid()
                )))
            }
            Err(e) => return Err(NotDelegated::Ownership(format!("{}: {e}", p.display()))),
        }
    }
    let home = home_of(uid);
    let files = unit_files(uid, home.as_deref(), unit);
    let mut on = false;
    let mut read = Vec::new();
    for f in &files {
        let Ok(m) = std::fs::metadata(f) else {
            continue;
        };
        // Only what the user (or root) wrote and nobody else could.
        if !m.is_file() || (m.uid() != uid && m.uid() != 0) || m.mode() & 0o022 != 0 {
            continue;
        }
        let Ok(text) = std::fs::read(f) else { continue };
        read.push(f.clone());
        if let Some(v) = last_delegate(&text) {
            on = v;
        }
    }
    if on {
        Ok(())
    } else {
        Err(NotDelegated::NoDelegateSetting {
            unit: unit.to_string(),
            read,
        })
    }
}

/// The user's home directory: `$HOME` when ctrmon runs as that user (what
/// the manager, started by the same login, uses too), else none.
fn home_of(uid: u32) -> Option<PathBuf> {
    if rustix::process::geteuid().as_raw() != uid {
        return None;
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
}

/// The files the user manager reads for `unit`, in the order it applies
/// them: the first fragment found on the search path (for an instance
/// `a@b.service` without its own file, the template `a@.service`), then
/// the drop-ins `*.conf` of `unit.d/` (and the template's) sorted by file
/// name, a name in a higher directory hiding the same name in lower ones.
pub fn unit_files(uid: u32, home: Option<&Path>, unit: &str) -> Vec<PathBuf> {
    let dirs = search_path(uid, home);
    let mut names = vec![unit.to_string()];
    if let Some(t) = template_of(unit) {
        names.push(t);
    }
    let mut out = Vec::new();
    'fragment: for name in &names {
        for d in &dirs {
            let f = d.join(name);
            if f.is_file() {
                out.push(f);
                break 'fragment;
            }
        }
    }
    let mut drop_ins: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
    // Template drop-ins first: an instance's own override them.
    for name in names.iter().rev() {
        for d in &dirs {
            let Ok(entries) = std::fs::read_dir(d.join(format!("{name}.d"))) else {
                continue;
            };
            let mut here: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| (e.file_name(), e.path()))
                .filter(|(n, _)| n.as_bytes().ends_with(b".conf"))
                .collect();
            here.sort();
            for (n, p) in here {
                if !drop_ins.iter().any(|(m, _)| *m == n) {
                    drop_ins.push((n, p));
                }
            }
        }
    }
    drop_ins.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(drop_ins.into_iter().map(|(_, p)| p));
    out
}

/// `a@.service` for `a@b.service`.
fn template_of(unit: &str) -> Option<String> {
    let (prefix, rest) = unit.split_once('@')?;
    let dot = rest.rfind('.')?;
    (!rest[..dot].is_empty()).then(|| format!("{prefix}@{}", &rest[dot..]))
}

/// The user manager's unit search path, highest priority first
/// (`systemd.unit(5)`, "User Unit Search Path"; generators left out).
fn search_path(uid: u32, home: Option<&Path>) -> Vec<PathBuf> {
    let run = PathBuf::from(format!("/run/user/{uid}/systemd"));
    let mut dirs = Vec::new();
    if let Some(h) = home {
        dirs.push(h.join(".config/systemd/user.control"));
    }
    dirs.push(run.join("user.control"));
    dirs.push(run.join("transient"));
    if let Some(h) = home {
        dirs.push(h.join(".config/systemd/user"));
    }
    dirs.push(PathBuf::from("/etc/systemd/user"));
    dirs.push(run.join("user"));
    dirs.push(PathBuf::from("/run/systemd/user"));
    if let Some(h) = home {
        dirs.push(h.join(".local/share/systemd/user"));
    }
    dirs.push(PathBuf::from("/usr/local/lib/systemd/user"));
    dirs.push(PathBuf::from("/usr/lib/systemd/user"));
    dirs.push(PathBuf::from("/lib/systemd/user"));
    dirs
}

/// The value of the last `Delegate=` in a unit file's `[Service]` or
/// `[Scope]` section: `true` for yes/true/on/1 or a controller list,
/// `false` for no/false/off/0 or empty (a reset); `None` without one.
pub fn last_delegate(text: &[u8]) -> Option<bool> {
    let mut in_section = false;
    let mut value = None;
    for line in text.split(|&b| b == b'\n') {
        let line = trim(line);
        if line.starts_with(b"[") {
            in_section = line == b"[Service]" || line == b"[Scope]";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(pos) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        if trim(&line[..pos]) != b"Delegate" {
            continue;
        }
        let v = trim(&line[pos + 1..]).to_ascii_lowercase();
        value = Some(!matches!(
            v.as_slice(),
            b"" | b"no" | b"false" | b"off" | b"0"
        ));
    }
    value
}

/// `bytes` without ASCII white space at either end (`trim_ascii` needs
/// Rust 1.80; the crate builds with 1.75).
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_a_user_manager() {
        let m = Path::new("/sys/fs/cgroup");
        let u = |p: &str| user_unit(&m.join(p), m);
        assert_eq!(
            u("user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"),
            Some((1000, "run-r1.scope".into()))
        );
        assert_eq!(
            u("user.slice/user-1000.slice/user@1000.service/run-u2.service"),
            Some((1000, "run-u2.service".into()))
        );
        // A cgroup made inside a unit, a slice, the manager itself, a
        // system unit: none is a unit of a user manager.
        assert_eq!(
            u("user.slice/user-1000.slice/user@1000.service/app.slice/a.scope/x"),
            None
        );
        assert_eq!(
            u("user.slice/user-1000.slice/user@1000.service/app.slice"),
            None
        );
        assert_eq!(u("user.slice/user-1000.slice/user@1000.service"), None);
        assert_eq!(u("system.slice/run-r1.scope"), None);
        assert_eq!(u("user.slice/user@x.service/a.scope"), None);
        assert_eq!(u("user.slice/user@.service/a.scope"), None);
    }

    #[test]
    fn delegate_settings() {
        let d = |t: &str| last_delegate(t.as_bytes());
        assert_eq!(d("[Scope]\nDelegate=yes\n"), Some(true));
        assert_eq!(d("[Service]\nDelegate = memory pids\n"), Some(true));
        assert_eq!(d("[Service]\nDelegate=yes\nDelegate=\n"), Some(false));
        assert_eq!(d("[Service]\nDelegate=no\n"), Some(false));
        // Only the unit type's own section counts.
        assert_eq!(d("[Unit]\nDelegate=yes\n[Service]\nExecStart=x\n"), None);
        assert_eq!(d("[Service]\nDelegateSubgroup=x\n"), None);
        assert_eq!(d(""), None);
    }

    #[test]
    fn templates() {
        assert_eq!(template_of("a@b.service").as_deref(), Some("a@.service"));
        assert_eq!(template_of("a@.service"), None);
        assert_eq!(template_of("run-r1.scope"), None);
    }

    #[test]
    fn files_in_search_order() {
        let base =
            std::env::temp_dir().join(format!("ctrmon-test-unitfiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let cfg = base.join(".config/systemd/user");
        let ctl = base.join(".config/systemd/user.control");
        std::fs::create_dir_all(cfg.join("a@.service.d")).unwrap();
        std::fs::create_dir_all(ctl.join("a@b.service.d")).unwrap();
        std::fs::write(cfg.join("a@.service"), "[Service]\n").unwrap();
        std::fs::write(cfg.join("a@.service.d/20-x.conf"), "").unwrap();
        std::fs::write(ctl.join("a@b.service.d/10-y.conf"), "").unwrap();
        let files = unit_files(4_000_000_000, Some(&base), "a@b.service");
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(
            files,
            vec![
                cfg.join("a@.service"),
                ctl.join("a@b.service.d/10-y.conf"),
                cfg.join("a@.service.d/20-x.conf"),
            ]
        );
    }
}
