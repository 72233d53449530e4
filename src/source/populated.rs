//! Cgroup emptiness on v2: `populated` in `cgroup.events`.
//!
//! The way to learn that the last process of a container's cgroup is gone
//! without a pid to watch. Reported on transitions only (1→0 and 0→1), as
//! against the value read right after arming.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::cgroupfs::CgroupDir;
use super::kernfs;
use super::Outcome;
use crate::cgroup::parse::cgroup_events;
use crate::event::EventKind;
use crate::{Error, Result};

const FILE: &str = "cgroup.events";

pub(crate) struct PopulatedWatch {
    pub(crate) fd: OwnedFd,
    pub(crate) dir: PathBuf,
    populated: bool,
}

impl PopulatedWatch {
    pub(crate) fn open(dir: &CgroupDir) -> Result<PopulatedWatch> {
        Ok(PopulatedWatch {
            fd: kernfs::open(dir, FILE)?,
            dir: dir.path().to_path_buf(),
            populated: false,
        })
    }

    /// Reads the starting value, after the fd is registered.
    pub(crate) fn arm(&mut self) -> Result<bool> {
        match self.read()? {
            Some(p) => {
                self.populated = p;
                Ok(p)
            }
            None => Err(Error::path(
                "watch",
                &self.dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "the cgroup was removed"),
            )),
        }
    }

    fn read(&self) -> Result<Option<bool>> {
        let mut buf = [0u8; 256];
        let text = kernfs::reread(&self.fd, &mut buf)
            .map_err(|e| Error::path("read", &self.dir.join(FILE), e.into()))?;
        match text {
            None => Ok(None),
            Some(t) => cgroup_events::parse(t)
                .map(|ev| Some(ev.populated))
                .map_err(|e| kernfs::parse_error(&self.dir, FILE, e)),
        }
    }

    pub(crate) fn on_ready(&mut self) -> Outcome {
        match self.read() {
            Err(e) => Outcome::One(EventKind::Failed(e)),
            Ok(None) => Outcome::One(EventKind::Removed),
            Ok(Some(p)) if p != self.populated => {
                self.populated = p;
                Outcome::One(EventKind::Populated(p))
            }
            Ok(Some(_)) => Outcome::Nothing,
        }
    }
}
