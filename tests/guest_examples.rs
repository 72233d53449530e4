//! examples/mini_shim.rs on cgroup v2 with the memory controller (in the
//! guest, tests/guest/run.sh); CI runs it on the host's v1 as an example.

mod common;

#[path = "../examples/mini_shim.rs"]
mod mini_shim;

#[test]
fn mini_shim_reports_the_oom_before_the_exit_on_v2() {
    let Some(_root) = common::memory_v2() else {
        return;
    };
    mini_shim::main().expect("examples/mini_shim.rs");
}
