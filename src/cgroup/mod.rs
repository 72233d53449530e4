//! Cgroup discovery and the parsers for cgroup files (being built; see issue 3).
