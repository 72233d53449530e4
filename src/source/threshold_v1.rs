//! Memory usage thresholds on cgroup v1: an eventfd on
//! `memory.usage_in_bytes` (or `memory.memsw.usage_in_bytes`).
//!
//! The kernel signals once per crossing, in either direction, and the
//! crossings alternate: it keeps, per threshold, which side of it usage was
//! at the last check (starting from registration). So the side is tracked
//! here by the parity of the count drained, not guessed from a usage read
//! afterwards, which near the threshold can already be back on the other
//! side.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::cgroupfs::CgroupDir;
use super::kernfs::parse_error as kernfs_parse_error;
use super::pressure_v1::on_v1_ready;
use super::{v1_notify, Outcome};
use crate::cgroup::parse::number::parse_u64_file;
use crate::event::EventKind;
use crate::Result;

pub(crate) struct ThresholdWatch {
    pub(crate) efd: OwnedFd,
    identity: v1_notify::Identity,
    file: PathBuf,
    /// Which side of the threshold usage is on, as the kernel counts it.
    above: bool,
}

impl ThresholdWatch {
    pub(crate) fn arm(dir: &CgroupDir, bytes: u64, with_swap: bool) -> Result<Self> {
        let name = usage_file(with_swap);
        let efd = v1_notify::register(dir, name, &bytes.to_string())?;
        // The kernel takes the starting side at registration, just before.
        let mut buf = [0u8; 64];
        let usage = dir.read_file(name, &mut buf).and_then(|t| {
            parse_u64_file(name, t).map_err(|e| kernfs_parse_error(dir.path(), name, e))
        })?;
        Ok(ThresholdWatch {
            efd,
            identity: v1_notify::Identity::of(dir)?,
            file: dir.path().join(name),
            above: usage >= bytes,
        })
    }

    pub(crate) fn on_ready(&mut self) -> Outcome {
        let above = &mut self.above;
        on_v1_ready(&self.efd, &self.identity, &self.file, |text, crossings| {
            if crossings % 2 == 1 {
                *above = !*above;
            }
            let usage = parse_u64_file("memory.usage_in_bytes", text).unwrap_or(0);
            EventKind::Threshold {
                usage,
                above: *above,
            }
        })
    }
}

fn usage_file(with_swap: bool) -> &'static str {
    if with_swap {
        "memory.memsw.usage_in_bytes"
    } else {
        "memory.usage_in_bytes"
    }
}
