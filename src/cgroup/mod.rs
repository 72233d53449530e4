//! Finding a process's memory cgroup, and parsing the files found there.
//!
//! The monitor needs a directory to watch for OOM: `memory.oom_control` on
//! cgroup v1, `memory.events` on v2. Getting there means reading
//! `/proc/<pid>/cgroup` and `/proc/self/mountinfo` and joining the two, and
//! that join is where container tools have broken before (inside nested
//! containers, with escaped mount points, with string-prefix path checks).
//! So the parsing lives in [`parse`], as pure functions that are unit-tested
//! and fuzzed, and the joining logic is a pure function too
//! ([`locate_in`]); only [`memory_cgroup_of`] and [`cgroup_version`] touch
//! the filesystem.

pub mod parse;

mod containing;
mod discover;
mod locate;

pub use containing::{nearest_containing, nearest_containing_in};
pub use discover::{
    cgroup_version, memory_cgroup_of, memory_cgroup_of_in, CgroupVersion, MemoryCgroup,
};
pub use locate::{locate_in, memory_cgroup_dir_in, LocateError, Location};
