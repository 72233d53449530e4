//! The kernel log as one of the monitor's own sources: who the OOM killer
//! killed, by pid.
//!
//! `/dev/kmsg` sits in the epoll set under a reserved key, like the waker
//! and the timer, so it costs the hot path nothing: dispatch only tests for
//! its key when a key misses the table. On readiness every waiting record
//! is read and the OOM ones go into a [`VictimBook`]. The rest of the
//! monitor asks three things of it, each only on a cold path:
//!
//! - an exit by `SIGKILL` (or with an unknown status): was this pid a
//!   logged victim? ([`KmsgState::exit_verdict`]) The log is read first:
//!   the kernel logs `Killed process` right after it sends the `SIGKILL`,
//!   and the victim still has its memory to free before its pidfd turns
//!   readable, so the record is there by then;
//! - an OOM report with kills, or a removal: which logged victims lived in
//!   this cgroup? ([`KmsgState::victims_in`])
//! - were records lost around now? (`EPIPE`: the ring buffer wrapped before
//!   we read it) Then a missing victim may just be unlogged, and the counter
//!   rule decides.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::dispatch::{Group, Pending};
use super::table::{Key, Removal, Watch};
use super::{Core, Inner};
use crate::cgroup::parse::proc_cgroup;
use crate::event::{EventKind, Exit, ExitStatus, KmsgMode, OomLog, OomVictim};
use crate::source::kmsg::{KmsgReader, Unavailable};
use crate::source::oom_victims::VictimBook;
use crate::source::{Clock, Outcome};

/// How long after a gap in the log a missing victim is put down to the
/// gap: the counter rule's own window.
const GAP_WINDOW: std::time::Duration = crate::source::oom_book::CLAIM_WINDOW;
/// Logged victims not yet reported in an OOM event; the oldest go first.
const KEEP_FRESH: usize = 1024;
/// A record for a pid named in an event this recently is the same kill
/// logged again, not a new one: a `memory.oom.group` kill logs its chosen
/// victim twice, and the second record can come after the first was
/// already named. (Pids are not reused that fast.)
const RELOG_WINDOW: Duration = Duration::from_secs(1);
/// Named victims remembered for [`RELOG_WINDOW`].
const KEEP_NAMED: usize = 256;

pub(super) enum KmsgState {
    Off,
    Unavailable(Unavailable),
    On(Box<KmsgOn>),
}

pub(super) struct KmsgOn {
    pub(super) reader: KmsgReader,
    /// Victims waiting for their exit.
    book: VictimBook,
    /// Victims waiting to be named in their cgroup's OOM event.
    fresh: VecDeque<Fresh>,
    /// Victims named lately, so that a second record of one is not taken
    /// for a new kill.
    named: RecentlyNamed,
    /// When records were last lost.
    last_gap: Option<Instant>,
}

/// How long a `SIGKILL` exit waits for the log to name it, when its cgroup
/// counted a kill that no exit claimed. Normally the record is there before
/// the exit is (tests/kmsg_monitor.rs checks it); this covers a killer
/// preempted between the signal and the log.
pub(super) const LATE_WAIT: Duration = Duration::from_millis(100);
/// The first look again; each later one doubles.
const LATE_FIRST: Duration = Duration::from_millis(2);

/// An exit held back until the log names it or [`LATE_WAIT`] has passed:
/// out of the table and epoll already, delivered from the timer.
pub(super) struct LateExit<T> {
    pub(super) key: Key,
    pub(super) exit: Exit,
    pub(super) watch: Watch<T>,
    pub(super) link: Option<Key>,
    pub(super) next: Instant,
    step: Duration,
    pub(super) until: Instant,
}

impl<T> LateExit<T> {
    pub(super) fn new(
        key: Key,
        exit: Exit,
        watch: Watch<T>,
        link: Option<Key>,
        at: Instant,
    ) -> Self {
        LateExit {
            key,
            exit,
            watch,
            link,
            next: at + LATE_FIRST,
            step: LATE_FIRST,
            until: at + LATE_WAIT,
        }
    }
}

/// A logged victim not yet named in an event.
struct Fresh {
    victim: OomVictim,
    /// The cgroup whose limit fired, when logged.
    oom_memcg: Option<PathBuf>,
    /// The OOM watch the victim's exit was linked to: its cgroup, when the
    /// log did not say and the victim was gone before `/proc` could.
    linked: Option<Key>,
}

/// What the log says about an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No log: the counter rule decides.
    NoLog,
    /// Logged as a victim.
    Victim,
    /// Not logged, and no record was lost: not an OOM kill.
    NotLogged,
    /// Not logged, but records were lost lately: the counter rule decides.
    Lost,
}

/// The victims of one cgroup, taken out of the fresh list.
#[derive(Default)]
pub(super) struct Named {
    pub(super) victims: Vec<OomVictim>,
    pub(super) oom_memcg: Option<PathBuf>,
    pub(super) records_lost: bool,
}

impl KmsgState {
    pub(super) fn open(enabled: bool) -> KmsgState {
        if !enabled {
            return KmsgState::Off;
        }
        match KmsgReader::open() {
            Ok(reader) => KmsgState::On(Box::new(KmsgOn {
                reader,
                book: VictimBook::new(),
                fresh: VecDeque::new(),
                named: RecentlyNamed::default(),
                last_gap: None,
            })),
            Err(u) => KmsgState::Unavailable(u),
        }
    }

    pub(super) fn mode(&self) -> KmsgMode {
        match self {
            KmsgState::Off => KmsgMode::Off,
            KmsgState::Unavailable(u) => KmsgMode::Unavailable(*u),
            KmsgState::On(_) => KmsgMode::On,
        }
    }

    pub(super) fn reader_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            KmsgState::On(on) => Some(on.reader.as_fd()),
            _ => None,
        }
    }

    /// Reads every record waiting. A read that fails (it should not) turns
    /// the log off for good, as if it could not be opened: the monitor goes
    /// on with the counter rule. Returns the fd to take out of epoll then.
    pub(super) fn read_all(&mut self, now: &mut dyn FnMut() -> Instant) -> Option<KmsgReader> {
        let KmsgState::On(on) = self else {
            return None;
        };
        loop {
            let next = match on.reader.next_record() {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => {
                    let errno = e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error);
                    let KmsgState::On(on) =
                        std::mem::replace(self, KmsgState::Unavailable(Unavailable { errno }))
                    else {
                        return None;
                    };
                    return Some(on.reader);
                }
            };
            if next.lost_before > 0 {
                on.last_gap = Some(now());
            }
            let Ok(record) = next.record else { continue };
            let Some(v) = on.book.add(&record) else {
                continue;
            };
            let cgroup = match &v.task_memcg {
                Some(p) => Some(PathBuf::from(OsStr::from_bytes(p))),
                None => cgroup_of(v.pid),
            };
            let victim = OomVictim {
                pid: v.pid,
                comm: v.comm.clone(),
                cgroup,
            };
            let oom_memcg = v
                .oom_memcg
                .as_deref()
                .map(|p| PathBuf::from(OsStr::from_bytes(p)));
            // A `memory.oom.group` kill logs its chosen victim twice (first
            // alone, then with the group; the kernel counts it twice too):
            // one process, named once, whether or not the first record was
            // named already.
            if on.named.contains(victim.pid, now()) {
                continue;
            }
            on.fresh.retain(|f| f.victim.pid != victim.pid);
            if on.fresh.len() == KEEP_FRESH {
                on.fresh.pop_front();
            }
            on.fresh.push_back(Fresh {
                victim,
                oom_memcg,
                linked: None,
            });
        }
    }

    /// What the log says of `pid`, which exited with `status`. Only a
    /// `SIGKILL` (or an unknown status: not our child) can be an OOM kill,
    /// so other exits cost nothing here.
    pub(super) fn exit_verdict(
        &mut self,
        pid: i32,
        status: ExitStatus,
        link: Option<Key>,
        at: Instant,
    ) -> Verdict {
        if !matches!(status, ExitStatus::Signal(9) | ExitStatus::Unknown) {
            return match self {
                KmsgState::On(_) => Verdict::NotLogged,
                _ => Verdict::NoLog,
            };
        }
        if let Some(reader) = self.read_all(&mut || at) {
            drop(reader);
        }
        let KmsgState::On(on) = self else {
            return Verdict::NoLog;
        };
        if on.book.take(pid).is_some() {
            if let Some(f) = on.fresh.iter_mut().rev().find(|f| f.victim.pid == pid) {
                f.linked = f.linked.or(link);
            }
            Verdict::Victim
        } else if on.gap_near(at) {
            Verdict::Lost
        } else {
            Verdict::NotLogged
        }
    }

    /// The logged victims that lived in the cgroup at `dir` (or below it,
    /// when `hierarchical`), or whose exit was linked to its watch `key`,
    /// not yet named in an event; the log is read first. `None` without
    /// the log.
    pub(super) fn victims_in(
        &mut self,
        key: Key,
        dir: &Path,
        hierarchical: bool,
        at: Instant,
    ) -> Option<Named> {
        // The caller takes the reader out of epoll when it fails: here it
        // just closes, which epoll notices by itself.
        drop(self.read_all(&mut || at));
        let KmsgState::On(on) = self else {
            return None;
        };
        let mut named = Named {
            records_lost: on.gap_near(at),
            ..Named::default()
        };
        let mut i = 0;
        while i < on.fresh.len() {
            let f = &on.fresh[i];
            let lives_here = match f.victim.cgroup.as_deref() {
                Some(c) => in_cgroup(dir, c, hierarchical),
                None => f.linked == Some(key),
            };
            if !lives_here {
                i += 1;
                continue;
            }
            if let Some(f) = on.fresh.remove(i) {
                if named.oom_memcg.is_none() {
                    named.oom_memcg = f.oom_memcg;
                }
                on.named.note(f.victim.pid, at);
                named.victims.push(f.victim);
            }
        }
        Some(named)
    }
}

/// The pids named in events within the last [`RELOG_WINDOW`], at most
/// [`KEEP_NAMED`] of them.
#[derive(Default)]
struct RecentlyNamed {
    named: VecDeque<(i32, Instant)>,
}

impl RecentlyNamed {
    fn note(&mut self, pid: i32, at: Instant) {
        if self.named.len() == KEEP_NAMED {
            self.named.pop_front();
        }
        self.named.push_back((pid, at));
    }

    fn contains(&mut self, pid: i32, now: Instant) -> bool {
        while let Some(&(_, at)) = self.named.front() {
            if now.saturating_duration_since(at) <= RELOG_WINDOW {
                break;
            }
            self.named.pop_front();
        }
        self.named.iter().any(|&(p, _)| p == pid)
    }
}

impl KmsgOn {
    fn gap_near(&self, at: Instant) -> bool {
        self.last_gap
            .is_some_and(|g| at.saturating_duration_since(g) <= GAP_WINDOW)
    }
}

/// Whether a victim in `cgroup` (a path relative to its hierarchy's root, as
/// the kernel logs it) belongs to the watch on `dir` (an absolute path
/// under the hierarchy's mount): `dir` ends with the cgroup's path, or with
/// one of its ancestors' for a hierarchical watch. By whole components, so
/// that `/a/b` is not in `/x/ab`.
fn in_cgroup(dir: &Path, cgroup: &Path, hierarchical: bool) -> bool {
    let mut c = cgroup;
    loop {
        let rel = c.strip_prefix("/").unwrap_or(c);
        if rel.as_os_str().is_empty() {
            return false;
        }
        if dir.ends_with(rel) {
            return true;
        }
        if !hierarchical {
            return false;
        }
        match c.parent() {
            Some(p) => c = p,
            None => return false,
        }
    }
}

/// The memory cgroup of `pid`, from `/proc/<pid>/cgroup`, while the victim
/// is still there to ask (a kill whose context line the kernel's rate
/// limit dropped): the v1 memory line, else the v2 one.
fn cgroup_of(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read(format!("/proc/{pid}/cgroup")).ok()?;
    let parsed = proc_cgroup::parse(&text).ok()?;
    let entry = parsed.memory_v1().or_else(|| parsed.unified())?;
    Some(PathBuf::from(OsStr::from_bytes(entry.path)))
}

impl<T> Inner<T> {
    /// Whether an exit of `pid` with `status` was an OOM kill: by the log
    /// when it is read, else (or for a kill whose record was lost) by the
    /// counter rule on the linked cgroup's watch `link`. Either way a kill
    /// the exit takes is no longer claimable by another exit.
    ///
    /// `None`: not yet known. The log does not name the pid, but it is a
    /// `SIGKILL` and the linked cgroup has a kill that no exit claimed: the
    /// record may not be written yet (the kernel sends the signal first).
    /// The caller looks again later ([`LateExit`]), until `last_look`.
    pub(super) fn judge_exit(
        &mut self,
        pid: i32,
        status: ExitStatus,
        link: Option<Key>,
        at: Instant,
        last_look: bool,
    ) -> Option<bool> {
        let verdict = self.kmsg.exit_verdict(pid, status, link, at);
        let book = link
            .and_then(|k| self.table.get_mut(k))
            .and_then(|w| w.source.oom_book());
        Some(match verdict {
            Verdict::NoLog | Verdict::Lost => book.is_some_and(|b| b.claim_kill_for(status, at)),
            Verdict::Victim => {
                if let Some(b) = book {
                    b.claim_kill_for(status, at);
                }
                true
            }
            Verdict::NotLogged
                if !last_look
                    && status == ExitStatus::Signal(9)
                    && book.is_some_and(|b| b.has_claimable_kill(at)) =>
            {
                return None
            }
            Verdict::NotLogged => false,
        })
    }

    /// Names the logged victims in an OOM watch's report of kills, and in
    /// its removal: a v1 cgroup removed right after its victim was reaped
    /// may never have shown the kill in its counters (the watch read them
    /// before the kill, and cannot after the removal), but the log did. A
    /// no-op without the log, and for any other outcome.
    #[cold]
    pub(super) fn name_victims(&mut self, key: Key, outcome: Outcome) -> Outcome {
        let removal = match &outcome {
            Outcome::Kills(_) => false,
            Outcome::One(EventKind::Memory(m)) if m.oom_kill > 0 || m.oom_group_kill > 0 => false,
            Outcome::One(EventKind::Removed) | Outcome::OomThenRemoved(_) => true,
            _ => return outcome,
        };
        let Some(w) = self.table.get_mut(key) else {
            return outcome;
        };
        let Some((dir, hierarchical)) = w.source.oom_dir() else {
            return outcome;
        };
        let dir = dir.to_path_buf();
        let Some(named) = self
            .kmsg
            .victims_in(key, &dir, hierarchical, Instant::now())
        else {
            return outcome;
        };
        let Some(book) = self.table.get_mut(key).and_then(|w| w.source.oom_book()) else {
            return outcome;
        };
        let found = named.victims.len() as u64;
        let mut report = match outcome {
            Outcome::Kills(m) | Outcome::One(EventKind::Memory(m)) | Outcome::OomThenRemoved(m) => {
                m
            }
            _ if found == 0 => return Outcome::One(EventKind::Removed),
            _ => Box::default(),
        };
        let counted = report.oom_kill;
        if found >= counted {
            // Victims of kills reported earlier without names are named now;
            // at a removal, the rest are kills the counters never showed.
            let late = (found - counted).min(book.unnamed_kills);
            book.unnamed_kills -= late;
            if removal {
                report.counters.oom_kill += found - counted - late;
            }
        } else {
            book.unnamed_kills += counted - found;
        }
        report.set_log(OomLog {
            victims: named.victims,
            oom_memcg: named.oom_memcg,
            records_lost: named.records_lost,
        });
        if removal {
            Outcome::OomThenRemoved(report)
        } else {
            Outcome::One(EventKind::Memory(report))
        }
    }

    /// Holds back the exit of the watch `key` (see [`judge_exit`]): the
    /// watch leaves the table and epoll now, as for a delivered exit.
    ///
    /// [`judge_exit`]: Self::judge_exit
    pub(super) fn defer_exit(
        &mut self,
        core: &Core,
        key: Key,
        exit: Exit,
        link: Option<Key>,
        at: Instant,
    ) {
        if let Removal::Removed(watch) = core.remove(&mut self.table, key) {
            super::registrar::index_pid(&mut self.watched_pids, &watch.source, false);
            self.late_exits
                .push(LateExit::new(key, exit, watch, link, at));
            self.schedule_changed = true;
        }
    }

    /// The held-back exits whose time has come: each is delivered once the
    /// log names it (marked) or its wait is over (not marked); the others
    /// wait for their next look. At most [`Group::CAP`] per call.
    pub(super) fn late_exits_due(&mut self, at: Instant) -> Group<T> {
        let mut group = Group::new();
        let mut taken = 0;
        let mut i = 0;
        while i < self.late_exits.len() && taken < Group::<T>::CAP {
            if self.late_exits[i].next > at {
                i += 1;
                continue;
            }
            let (pid, status, link) = {
                let l = &self.late_exits[i];
                (l.exit.pid, l.exit.status, l.link)
            };
            let last_look = at >= self.late_exits[i].until;
            match self.judge_exit(pid, status, link, at, last_look) {
                Some(marked) => {
                    let mut late = self.late_exits.swap_remove(i);
                    late.exit.oom_killed = marked;
                    group.push(Pending {
                        key: late.key,
                        kind: EventKind::Exited(late.exit),
                        watch: Some(late.watch),
                    });
                    taken += 1;
                }
                None => {
                    let l = &mut self.late_exits[i];
                    l.step *= 2;
                    l.next = (at + l.step).min(l.until);
                    i += 1;
                }
            }
        }
        group
    }

    /// The earliest look again at a held-back exit.
    pub(super) fn next_late_exit(&self) -> Option<Instant> {
        self.late_exits.iter().map(|l| l.next).min()
    }

    /// The log is readable: read it all.
    #[cold]
    #[inline(never)]
    pub(super) fn on_kmsg_ready(&mut self, clock: &mut Clock) {
        // A reader that failed closes here, which takes it out of epoll.
        drop(self.kmsg.read_all(&mut || clock.now()));
    }
}

#[cfg(test)]
mod tests {
    use super::{in_cgroup, RecentlyNamed, KEEP_NAMED, RELOG_WINDOW};
    use std::path::Path;
    use std::time::{Duration, Instant};

    #[test]
    fn a_pid_named_lately_is_a_relog_and_then_forgotten() {
        let t = Instant::now();
        let mut named = RecentlyNamed::default();
        assert!(!named.contains(212, t));
        named.note(212, t);
        assert!(named.contains(212, t + Duration::from_millis(500)));
        assert!(!named.contains(211, t + Duration::from_millis(500)));
        // Past the window the pid may name a new process.
        assert!(!named.contains(212, t + RELOG_WINDOW + Duration::from_millis(1)));
        assert!(named.named.is_empty());
        // Bounded: the oldest go first.
        for pid in 0..(KEEP_NAMED as i32 + 10) {
            named.note(pid, t);
        }
        assert_eq!(named.named.len(), KEEP_NAMED);
        assert!(!named.contains(0, t));
        assert!(named.contains(KEEP_NAMED as i32 + 9, t));
    }

    #[test]
    fn cgroups_match_by_whole_components() {
        let dir = Path::new("/sys/fs/cgroup/memory/a/b");
        assert!(in_cgroup(dir, Path::new("/a/b"), false));
        assert!(!in_cgroup(dir, Path::new("/a/b/c"), false));
        assert!(in_cgroup(dir, Path::new("/a/b/c"), true));
        assert!(!in_cgroup(dir, Path::new("/x/ab"), true));
        assert!(!in_cgroup(dir, Path::new("/"), true));
    }
}
