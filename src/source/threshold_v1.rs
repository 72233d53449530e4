//! Memory usage thresholds on cgroup v1: an eventfd on
//! `memory.usage_in_bytes` (or `memory.memsw.usage_in_bytes`).
//!
//! The kernel signals when usage crosses the threshold in either direction;
//! the event carries the usage read right after, which says which way.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::cgroupfs::CgroupDir;
use super::pressure_v1::on_v1_ready;
use super::{v1_notify, Outcome};
use crate::cgroup::parse::number::parse_u64_file;
use crate::monitor::EventKind;
use crate::Result;

pub(crate) struct ThresholdWatch {
    pub(crate) efd: OwnedFd,
    pub(crate) dir: PathBuf,
    file: PathBuf,
    bytes: u64,
}

impl ThresholdWatch {
    pub(crate) fn arm(dir: &CgroupDir, bytes: u64, with_swap: bool) -> Result<Self> {
        let name = if with_swap {
            "memory.memsw.usage_in_bytes"
        } else {
            "memory.usage_in_bytes"
        };
        let efd = v1_notify::register(dir, name, &bytes.to_string())?;
        Ok(ThresholdWatch {
            efd,
            dir: dir.path().to_path_buf(),
            file: dir.path().join(name),
            bytes,
        })
    }

    pub(crate) fn on_ready(&mut self) -> Outcome {
        let threshold = self.bytes;
        on_v1_ready(&self.efd, &self.dir, &self.file, |text| {
            let usage = parse_u64_file("memory.usage_in_bytes", text).unwrap_or(0);
            EventKind::Threshold {
                usage,
                above: usage >= threshold,
            }
        })
    }
}
