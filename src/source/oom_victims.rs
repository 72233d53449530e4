//! The victims the kernel log named, matched to exits by pid.
//!
//! The counter rule (`oom_book`) can only say that *some* process of a
//! cgroup was killed; the log says which: `Killed process <pid>`. With it an
//! exit is an OOM kill exactly when its pid was logged as a victim, with no
//! time window, and a SIGKILL from elsewhere is not mistaken for one. The
//! `oom-kill:` context line that precedes a kill (when the kernel's rate
//! limit lets it through) adds which cgroup's limit fired and where the
//! victim lived. A `memory.oom.group` kill logs the chosen victim, then the
//! group's path, then the group's other tasks; the kernel's `oom_lock`
//! keeps one OOM's lines together, so the victim logged just before the
//! group line is the chosen one.
//!
//! Pure bookkeeping, no I/O: it is fed parsed records and asked about pids.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::cgroup::parse::kmsg_oom::{oom_line, Escaped, KillScope, OomLine, Record};

/// How many victims are remembered until their exit is seen; the oldest go
/// first. A victim's exit follows its kill within seconds, so only victims
/// nobody watched stay long.
const KEEP: usize = 1024;
/// How long a victim waits for its exit at most. The kill's `SIGKILL` ends
/// the victim as soon as it runs (the OOM reaper frees its memory even when
/// it cannot), and a watch learns of the exit of a process that is not its
/// child within 2 s of it; a victim not claimed by then was nobody's.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Context lines waiting for their `Killed process` line.
const KEEP_CONTEXTS: usize = 64;

/// A process the OOM killer killed, as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    /// The victim's pid.
    pub pid: i32,
    /// Its name (`comm`), unescaped.
    pub comm: crate::Comm,
    /// Memory cgroup OOM or global OOM.
    pub scope: KillScope,
    /// The cgroup whose limit fired, relative to its hierarchy's root, when
    /// the context line was logged.
    pub oom_memcg: Option<Vec<u8>>,
    /// The cgroup the victim lived in, when the context line was logged.
    pub task_memcg: Option<Vec<u8>>,
    /// Killed with its whole cgroup (`memory.oom.group`): that cgroup.
    pub group: Option<Vec<u8>>,
    /// The sequence number of its `Killed process` record.
    pub seq: u64,
    /// When the kernel logged it, in nanoseconds since boot on the log's
    /// clock (see [`Clocks`]).
    pub logged_ns: u64,
    /// When it was read, on `CLOCK_BOOTTIME`, in nanoseconds.
    pub read_boot_ns: u64,
    /// When it was read, for [`MAX_AGE`].
    pub read_at: Instant,
}

/// The clocks a victim is bound to its process by, read when its record
/// is read and when an exit asks for it.
///
/// A process's start time (`/proc/<pid>/stat`, field 22) counts clock
/// ticks on `CLOCK_BOOTTIME`; so does [`boot_ns`](Self::boot_ns): a process
/// that started after the record was read cannot be its victim, and that
/// comparison is exact to a tick. The record's own timestamp is the
/// printk clock (`local_clock()`), which runs with `CLOCK_MONOTONIC`: both
/// count from boot and stop in suspend (journald converts the log's
/// timestamps on that premise), and they differ only by the clock's
/// frequency error, which NTP keeps under 500 ppm. `CLOCK_BOOTTIME` is
/// `CLOCK_MONOTONIC` plus the time spent suspended
/// ([`suspended_ns`](Self::suspended_ns)), so a start time less that is
/// never later than the start on the monotonic clock. That second check
/// catches a reader that fell behind the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// `CLOCK_BOOTTIME` now, in nanoseconds.
    pub boot_ns: u64,
    /// `CLOCK_BOOTTIME` less `CLOCK_MONOTONIC` now: the time spent
    /// suspended since boot.
    pub suspended_ns: u64,
    /// The monitor's clock now, for ages.
    pub at: Instant,
    /// Whether start times in `/proc` are on the log's clock: not in a
    /// time namespace of its own, which shifts them.
    pub compare_log_clock: bool,
}

impl Clocks {
    /// The clocks now.
    pub fn now() -> Clocks {
        use rustix::time::{clock_gettime, ClockId};
        let ns = |t: rustix::time::Timespec| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
        let mono = ns(clock_gettime(ClockId::Monotonic));
        let boot = ns(clock_gettime(ClockId::Boottime));
        Clocks {
            boot_ns: boot,
            suspended_ns: boot.saturating_sub(mono),
            at: Instant::now(),
            compare_log_clock: true,
        }
    }
}

/// When a process started: `/proc/<pid>/stat` field 22, converted to
/// nanoseconds on `CLOCK_BOOTTIME` (rounded down to its clock tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartTime {
    /// Nanoseconds since boot on `CLOCK_BOOTTIME`, at most one tick early.
    pub boot_ns: u64,
}

impl StartTime {
    /// When process `pid` started, from `/proc/<pid>/stat`; `None` once it
    /// is reaped. By pid: the answer is of whatever process has the pid
    /// now (the monitor reads it for a pidfd, and checks that the pidfd's
    /// process was still there after the read).
    pub fn of(pid: i32) -> Option<StartTime> {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        crate::reaper::proc::start_time(&stat).map(StartTime::from_ticks)
    }

    /// From the field's clock ticks.
    pub fn from_ticks(ticks: u64) -> StartTime {
        let hz = rustix::param::clock_ticks_per_second().max(1);
        StartTime {
            boot_ns: ticks.saturating_mul(1_000_000_000 / hz),
        }
    }
}

impl Victim {
    /// Whether a process that started at `start` can be this victim: it
    /// must have started before the record was read, and, on the log's
    /// clock, before it was logged (less the log clock's possible drift:
    /// 1 s and 0.1% of the time since boot). Without
    /// [`Clocks::compare_log_clock`] only the first holds.
    pub fn could_be(&self, start: StartTime, clocks: &Clocks) -> bool {
        if start.boot_ns > self.read_boot_ns {
            return false;
        }
        if !clocks.compare_log_clock {
            return true;
        }
        let suspended_ns = clocks.suspended_ns;
        let drift = 1_000_000_000 + self.logged_ns / 1000;
        start.boot_ns.saturating_sub(suspended_ns) <= self.logged_ns.saturating_add(drift)
    }
}

/// A context line waiting for its `Killed process` line: its escaped text,
/// split once the victim's name is known.
#[derive(Debug)]
struct Context {
    pid: i32,
    message: Vec<u8>,
}

/// Logged victims by pid, until their exit claims them or they are
/// [`MAX_AGE`] old.
#[derive(Debug, Default)]
pub struct VictimBook {
    victims: VecDeque<Victim>,
    contexts: VecDeque<Context>,
    group: Option<Vec<u8>>,
    /// The victim logged since the last context line, outside any group:
    /// the chosen one, if a group line follows.
    chosen: Option<i32>,
}

fn owned(e: Option<Escaped<'_>>) -> Option<Vec<u8>> {
    e.map(|e| e.to_vec())
}

impl VictimBook {
    /// An empty book.
    pub fn new() -> VictimBook {
        VictimBook::default()
    }

    /// Takes in one record, read at `clocks`; returns the victim it
    /// completed, if it was a `Killed process` line. Records that user
    /// space wrote are ignored ([`Record::is_kernel`]).
    pub fn add(&mut self, record: &Record<'_>, clocks: Clocks) -> Option<&Victim> {
        self.expire(clocks.at);
        match record.oom()? {
            OomLine::Context(c) => {
                // A new OOM: the last one's group kill is over.
                self.group = None;
                self.chosen = None;
                if self.contexts.len() == KEEP_CONTEXTS {
                    self.contexts.pop_front();
                }
                self.contexts.push_back(Context {
                    pid: c.pid,
                    message: record.message.raw().to_vec(),
                });
                None
            }
            OomLine::GroupKill { memcg } => {
                let memcg = memcg.to_vec();
                if let Some(pid) = self.chosen.take() {
                    if let Some(v) = self.victims.iter_mut().rev().find(|v| v.pid == pid) {
                        v.group = Some(memcg.clone());
                    }
                }
                self.group = Some(memcg);
                None
            }
            OomLine::Killed(k) => {
                let context = self
                    .contexts
                    .iter()
                    .rposition(|c| c.pid == k.pid)
                    .and_then(|i| self.contexts.remove(i));
                // The context's names are split by the victim's name, which
                // this line gives exactly; a split still in doubt is unknown.
                let reading = context.as_ref().and_then(|c| match oom_line(&c.message) {
                    Some(OomLine::Context(c)) => c.reading_with_comm(k.comm),
                    _ => None,
                });
                let (oom_memcg, task_memcg) =
                    reading.map_or((None, None), |r| (owned(r.oom_memcg), owned(r.task_memcg)));
                // Re-logged (it cannot be killed twice): keep the newest.
                self.victims.retain(|v| v.pid != k.pid);
                if self.victims.len() == KEEP {
                    self.victims.pop_front();
                }
                self.chosen = self.group.is_none().then_some(k.pid);
                self.victims.push_back(Victim {
                    pid: k.pid,
                    comm: k.comm.to_vec().into(),
                    scope: k.scope,
                    oom_memcg,
                    task_memcg,
                    group: self.group.clone(),
                    seq: record.seq,
                    logged_ns: record.timestamp_us.saturating_mul(1000),
                    read_boot_ns: clocks.boot_ns,
                    read_at: clocks.at,
                });
                self.victims.back()
            }
        }
    }

    /// Forgets the victims older than [`MAX_AGE`].
    fn expire(&mut self, now: Instant) {
        while self
            .victims
            .front()
            .is_some_and(|v| now.saturating_duration_since(v.read_at) > MAX_AGE)
        {
            self.victims.pop_front();
        }
    }

    /// Whether `pid` was logged as a victim and has not been taken yet.
    pub fn is_victim(&self, pid: i32) -> bool {
        self.victims.iter().any(|v| v.pid == pid)
    }

    /// The victim with this pid, taken out of the book: called when the
    /// process `pid`, which started at `start`, exits, whose exit is an OOM
    /// kill exactly when this returns one. A victim that the process cannot
    /// be ([`Victim::could_be`]: it started after the kill) stays for its
    /// own exit; with `start` unknown, none is taken.
    pub fn take(&mut self, pid: i32, start: Option<StartTime>, clocks: Clocks) -> Option<Victim> {
        self.expire(clocks.at);
        let start = start?;
        let i = self
            .victims
            .iter()
            .position(|v| v.pid == pid && v.could_be(start, &clocks))?;
        self.victims.remove(i)
    }

    /// Victims waiting for their exit.
    pub fn len(&self) -> usize {
        self.victims.len()
    }

    /// True when no victim is waiting for its exit.
    pub fn is_empty(&self) -> bool {
        self.victims.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::parse::kmsg_oom::parse;

    /// The clocks now, as when the records are read.
    fn clocks() -> Clocks {
        Clocks::now()
    }

    /// A process that started at boot: it could be any victim.
    fn early() -> Option<StartTime> {
        Some(StartTime { boot_ns: 0 })
    }

    macro_rules! corpus {
        ($name:literal) => {
            parse(include_bytes!(concat!(
                "../../fuzz/corpus/kmsg_oom/",
                $name
            )))
            .unwrap()
        };
    }

    #[test]
    fn a_logged_victim_is_matched_by_pid_once() {
        let mut book = VictimBook::new();
        assert_eq!(
            book.add(&corpus!("real-context-parent-limit"), clocks()),
            None
        );
        let v = book
            .add(&corpus!("real-killed-comm-with-space"), clocks())
            .unwrap()
            .clone();
        assert_eq!((v.pid, v.comm.as_bytes()), (15356, &b"leaf hog"[..]));
        assert_eq!(
            v.oom_memcg.as_deref(),
            Some(&b"/ctrmon-test-rec-parent-15258"[..])
        );
        assert_eq!(
            v.task_memcg.as_deref(),
            Some(&b"/ctrmon-test-rec-parent-15258/ctrmon-test-leaf"[..])
        );
        // Another process in the cgroup (the watched parent of the victim,
        // say) is no victim; the victim's own exit is, once.
        assert!(book.take(15355, early(), clocks()).is_none());
        assert_eq!(book.take(15356, early(), clocks()), Some(v));
        assert!(book.take(15356, early(), clocks()).is_none());
        assert!(book.is_empty());
    }

    #[test]
    fn interleaved_reports_keep_their_own_context() {
        // Records as they came here: two cgroups' reports, one of another
        // test's kill in between, one kill without its (rate-limited)
        // context line.
        let mut book = VictimBook::new();
        for r in [
            corpus!("real-context-escaped-comm"),
            corpus!("real-killed-interleaved-other-cgroup"),
            corpus!("real-killed-escaped-comm"),
            corpus!("real-invoked-oom-killer"),
            corpus!("real-killed-memcg"),
        ] {
            book.add(&r, clocks());
        }
        assert_eq!(book.len(), 3);
        let other = book.take(15389, early(), clocks()).unwrap();
        assert_eq!(
            (other.oom_memcg, other.comm.as_bytes()),
            (None, &b"tail"[..])
        );
        let odd = book.take(15354, early(), clocks()).unwrap();
        assert_eq!(odd.comm, b"a b) (c\\d\x01\xe9\n");
        assert_eq!(
            odd.task_memcg.as_deref(),
            Some(&b"/ctrmon-test-rec-comm-15258"[..])
        );
        assert!(book.take(15353, early(), clocks()).is_some());
    }

    #[test]
    fn group_kills_carry_their_group_the_chosen_victim_too() {
        // Debian's 6.1 in the v2 guest: the chosen victim, then the group
        // line, then the group's other tasks.
        let mut book = VictimBook::new();
        for r in [
            corpus!("real-6.1-group-context"),
            corpus!("real-6.1-group-killed-chosen"),
            corpus!("real-6.1-group-tasks-in"),
            corpus!("real-6.1-group-killed-member-1"),
            corpus!("real-6.1-group-killed-member-2"),
        ] {
            book.add(&r, clocks());
        }
        let group = &b"/ctrmon-test-kmsg-group-147"[..];
        for pid in [153, 151, 152] {
            let v = book.take(pid, early(), clocks()).unwrap();
            assert_eq!(v.group.as_deref(), Some(group), "{v:?}");
        }
        // The next OOM's context ends the group.
        book.add(&corpus!("real-context-memcg"), clocks());
        assert_eq!(
            book.add(&corpus!("real-killed-memcg"), clocks())
                .unwrap()
                .group,
            None
        );
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = VictimBook::new();
        for pid in 1..=(KEEP as i32 + 10) {
            let text = format!(
                "3,{pid},1,-;Memory cgroup out of memory: Killed process {pid} (x) total-vm:1kB, UID:0 pgtables:1kB oom_score_adj:0\n"
            );
            book.add(&parse(text.as_bytes()).unwrap(), clocks());
        }
        assert_eq!(book.len(), KEEP);
        assert!(!book.is_victim(10) && book.is_victim(11));
    }
}
