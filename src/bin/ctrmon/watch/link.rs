//! `watch --pid P --cgroup C`: each pid linked to the OOM watch of the
//! watched cgroup that holds it, so that an OOM in that cgroup is reported
//! before the pid's exit, and the exit says whether the OOM killer did it.
//!
//! The link is made once, at start: a process that moves to another cgroup
//! afterwards stays linked to the first (or to none).

use std::path::PathBuf;

use ctrmon::cgroup::nearest_containing;
use ctrmon::WatchId;

/// The OOM watches of the `--cgroup` directories, in argument order.
#[derive(Default)]
pub struct OomWatches {
    dirs: Vec<PathBuf>,
    ids: Vec<WatchId>,
}

impl OomWatches {
    pub fn push(&mut self, dir: PathBuf, id: WatchId) {
        self.dirs.push(dir);
        self.ids.push(id);
    }

    /// The OOM watch to link `pid` to: that of the nearest watched cgroup
    /// that is the process's cgroup or an ancestor of it, if any.
    pub fn for_pid(&self, pid: i32) -> Result<Option<WatchId>, ctrmon::Error> {
        if self.dirs.is_empty() {
            return Ok(None);
        }
        match nearest_containing(pid, &self.dirs) {
            Ok(found) => Ok(found.map(|i| self.ids[i])),
            // Left to the pid watch, which says so as it does without any
            // `--cgroup`.
            Err(e) if e.is_process_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
