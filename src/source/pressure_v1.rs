//! Memory pressure on cgroup v1: an eventfd on `memory.pressure_level`.
//!
//! The kernel signals under reclaim only (file writes that force page-cache
//! eviction, OOM), and many times per episode: this is a rate, not a state.
//! It also prints a once-per-boot deprecation warning on registration.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::cgroupfs::CgroupDir;
use super::{eventfd::drain, v1_notify, Outcome};
use crate::event::EventKind;
use crate::{Error, Result, Subject};

/// A v1 memory pressure level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressureLevel {
    /// Reclaiming memory for new allocations.
    Low,
    /// Swapping, or reclaiming hard.
    Medium,
    /// About to OOM.
    Critical,
}

impl PressureLevel {
    /// The word the kernel uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Low => "low",
            PressureLevel::Medium => "medium",
            PressureLevel::Critical => "critical",
        }
    }
}

/// Which cgroups' pressure a v1 pressure watch hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PressureMode {
    /// The kernel's default: this cgroup's and, if no one listens there, its
    /// descendants' events.
    #[default]
    Default,
    /// Every event in this cgroup and its descendants.
    Hierarchy,
    /// Only events of this cgroup itself.
    Local,
}

pub(crate) struct PressureV1Watch {
    pub(crate) efd: OwnedFd,
    identity: v1_notify::Identity,
    probe: PathBuf,
    level: PressureLevel,
}

impl PressureV1Watch {
    pub(crate) fn arm(dir: &CgroupDir, level: PressureLevel, mode: PressureMode) -> Result<Self> {
        let args = match mode {
            PressureMode::Default => level.as_str().to_string(),
            PressureMode::Hierarchy => format!("{},hierarchy", level.as_str()),
            PressureMode::Local => format!("{},local", level.as_str()),
        };
        let efd = v1_notify::register(dir, "memory.pressure_level", &args)?;
        Ok(PressureV1Watch {
            efd,
            identity: v1_notify::Identity::of(dir)?,
            probe: dir.path().join("memory.usage_in_bytes"),
            level,
        })
    }

    pub(crate) fn on_ready(&mut self) -> Outcome {
        on_v1_ready(&self.efd, &self.identity, &self.probe, |_, _| {
            EventKind::Pressure(self.level)
        })
    }
}

/// The shared shape of a non-OOM v1 notification: existence first (the
/// eventfd also fires on rmdir), then drain, then report with `probe`'s
/// contents read after.
pub(crate) fn on_v1_ready(
    efd: &OwnedFd,
    identity: &v1_notify::Identity,
    probe: &std::path::Path,
    report: impl FnOnce(&[u8], u64) -> EventKind,
) -> Outcome {
    let present = match identity.is_present() {
        Ok(p) => p,
        Err(e) => return Outcome::One(EventKind::Failed(e)),
    };
    let drained = match drain(efd) {
        Ok(n) => n,
        Err(e) => {
            return Outcome::One(EventKind::Failed(Error::os(
                "read eventfd of",
                Subject::Path(identity.dir.clone()),
                e,
            )))
        }
    };
    let Some(count) = drained.filter(|_| present) else {
        return if present {
            Outcome::Nothing
        } else {
            Outcome::One(EventKind::Removed)
        };
    };
    let mut buf = [0u8; 64];
    match v1_notify::read_if_present(probe, &mut buf) {
        Ok(Some(text)) => Outcome::One(report(text, count)),
        Ok(None) => Outcome::One(EventKind::Removed),
        Err(e) => Outcome::One(EventKind::Failed(Error::path("read", probe, e.into()))),
    }
}
