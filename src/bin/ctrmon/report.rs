//! Turning monitor events into JSON lines.

use std::path::PathBuf;

use ctrmon::{Event, EventKind, ExitStatus, MemoryEvents, MemoryReport, SwapEvents};

use crate::json::Line;

/// What a watch is about; the monitor's receiver is an index into a list of
/// these, which is cheap to clone on every event.
pub enum Target {
    Pid(i32),
    /// A process whose pidfd came over `--pidfd-socket` (one target for
    /// all of them: the exit line names the pid).
    Received,
    /// A cgroup's OOM watch.
    Cgroup(PathBuf),
    /// A v2 cgroup's `populated` watch (its removal is reported once, by the
    /// OOM watch).
    Populated(PathBuf),
    /// A v2 cgroup watched with `--populated-only`: it reports the removal.
    PopulatedAlone(PathBuf),
    /// A v2 cgroup's swap watch (its removal is reported by the OOM watch).
    Swap(PathBuf),
    Psi(PathBuf),
    /// ctrmon's own output, watched for its reader going away: no line.
    Output,
}

impl Target {
    fn tag(&self, line: Line) -> Line {
        match self {
            Target::Pid(p) => line.num("pid", p),
            Target::Received => line,
            Target::Cgroup(d)
            | Target::Populated(d)
            | Target::PopulatedAlone(d)
            | Target::Swap(d) => line.path("cgroup", d),
            Target::Psi(f) => line.path("file", f),
            Target::Output => line,
        }
    }
}

/// The line for `event`, if it has one.
pub fn line(targets: &[Target], event: &Event<'_, u32>) -> Option<String> {
    let target = &targets[*event.receiver as usize];
    if matches!(target, Target::Output) {
        return None;
    }
    let line = match &event.kind {
        EventKind::Exited(x) => {
            let mut l = Line::new("exit").num("pid", x.pid);
            l = match x.status {
                ExitStatus::Code(c) => l.num("code", c),
                ExitStatus::Signal(s) => l.num("signal", s),
                ExitStatus::Unknown => match x.unknown {
                    Some(why) => l.str("unknown", why.as_str()),
                    None => l,
                },
            };
            if x.oom_killed {
                l = l.bool("oom_killed", true);
            }
            l
        }
        EventKind::Memory(d) => {
            let name = if d.any_oom() { "oom" } else { "memory" };
            victims(counters(target.tag(Line::new(name)), d), d)
        }
        EventKind::Swap(d) => swap_counters(target.tag(Line::new("swap")), d),
        EventKind::Removed if matches!(target, Target::Populated(_) | Target::Swap(_)) => {
            return None
        }
        EventKind::Removed => target.tag(Line::new("removed")),
        EventKind::Populated(p) => target.tag(Line::new("populated")).bool("populated", *p),
        EventKind::Pressure(level) => target
            .tag(Line::new("pressure"))
            .str("level", level.as_str()),
        EventKind::Psi => target.tag(Line::new("psi")),
        EventKind::Failed(e) => target
            .tag(Line::new("error"))
            .str("message", &e.to_string()),
        _ => return None,
    };
    Some(line.finish())
}

/// The counters that rose, each as its own field.
fn counters(mut l: Line, d: &MemoryEvents) -> Line {
    for (name, v) in [
        ("oom", d.oom),
        ("oom_kill", d.oom_kill),
        ("oom_group_kill", d.oom_group_kill),
        ("max", d.max),
        ("high", d.high),
        ("low", d.low),
    ] {
        if v > 0 {
            l = l.num(name, v);
        }
    }
    l
}

/// What the kernel log said of the OOM: `"victims":[{"pid":…,"comm":"…"}]`,
/// `"oom_memcg":"…"` (the cgroup whose limit fired), `"records_lost":true`.
fn victims(mut l: Line, d: &MemoryReport) -> Line {
    if !d.victims().is_empty() {
        l = l.list("victims", d.victims().iter(), |l, v| {
            l.num("pid", v.pid)
                .str("comm", &String::from_utf8_lossy(v.comm.as_bytes()))
        });
    }
    if let Some(memcg) = d.oom_memcg() {
        l = l.path("oom_memcg", memcg);
    }
    if d.records_lost() {
        l = l.bool("records_lost", true);
    }
    l
}

/// The swap counters that rose.
fn swap_counters(mut l: Line, d: &SwapEvents) -> Line {
    for (name, v) in [("max", d.max), ("fail", d.fail), ("high", d.high)] {
        if v > 0 {
            l = l.num(name, v);
        }
    }
    l
}
