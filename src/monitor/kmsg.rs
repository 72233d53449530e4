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
use crate::event::{EventKind, Exit, ExitStatus, KmsgMode, OomLog, OomVictim, WatchId};
use crate::source::kmsg::{KmsgReader, Unavailable};
use crate::source::namespaces::Namespaces;
use crate::source::oom_victims::{Clocks, StartTime, Victim, VictimBook, MAX_AGE};
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
    /// Not the initial pid namespace: the log's pids are not ours.
    OtherPidNamespace,
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
    /// Which of the log's numbers are ours.
    ns: Namespaces,
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
    /// The record, to bind the victim to its process.
    logged: Victim,
    /// The cgroup whose limit fired, when logged.
    oom_memcg: Option<PathBuf>,
    /// Where its cgroup's directory is in this mount namespace, when that
    /// can be known (see [`where_it_lived`]).
    dir: Option<PathBuf>,
    /// The OOM watch the victim's exit was linked to: its cgroup, whatever
    /// the log or `/proc` said.
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
        let ns = Namespaces::of_self();
        if !ns.pid {
            return KmsgState::OtherPidNamespace;
        }
        match KmsgReader::open() {
            Ok(reader) => KmsgState::On(Box::new(KmsgOn {
                reader,
                book: VictimBook::new(),
                fresh: VecDeque::new(),
                named: RecentlyNamed::default(),
                last_gap: None,
                ns,
            })),
            Err(u) => KmsgState::Unavailable(u),
        }
    }

    pub(super) fn mode(&self) -> KmsgMode {
        match self {
            KmsgState::Off => KmsgMode::Off,
            KmsgState::Unavailable(u) => KmsgMode::Unavailable(*u),
            KmsgState::OtherPidNamespace => KmsgMode::OtherPidNamespace,
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
            let clocks = Clocks {
                compare_log_clock: on.ns.time,
                ..Clocks::now()
            };
            let Some(v) = on.book.add(&record, clocks) else {
                continue;
            };
            let (cgroup, dir) = where_it_lived(v, on.ns, &clocks);
            let victim = OomVictim {
                pid: v.pid,
                comm: v.comm.clone(),
                cgroup,
            };
            let logged = v.clone();
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
            on.expire_fresh(clocks.at);
            if on.fresh.len() == KEEP_FRESH {
                on.fresh.pop_front();
            }
            on.fresh.push_back(Fresh {
                victim,
                logged,
                oom_memcg,
                dir,
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
        start: Option<StartTime>,
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
        if let Some(v) = on.book.take(pid, start, on.clocks()) {
            if let Some(f) = on.fresh.iter_mut().rev().find(|f| f.logged.seq == v.seq) {
                f.linked = f.linked.or(link);
            }
            Verdict::Victim
        } else if start.is_none() && on.book.is_victim(pid) {
            // Logged, but which process exited cannot be told: the counter
            // rule decides, as for a record lost.
            Verdict::Lost
        } else if on.gap_near(at) {
            Verdict::Lost
        } else {
            Verdict::NotLogged
        }
    }

    /// Whether logged victims wait to be named: when none do, an OOM
    /// watch's report needs nothing from the log (but the log is not read).
    pub(super) fn has_fresh(&self) -> bool {
        matches!(self, KmsgState::On(on) if !on.fresh.is_empty())
    }

    /// The logged victims that lived in the cgroup at `dir` (or below it,
    /// when `hierarchical`), or whose exit was linked to its watch `key`,
    /// or that are the processes `linked` (pid and start time of the pid
    /// watches linked to `key`), not yet named in an event; the log is read
    /// first. `None` without the log.
    pub(super) fn victims_in(
        &mut self,
        key: Key,
        dir: &Path,
        hierarchical: bool,
        linked: &[(i32, Option<StartTime>)],
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
        let clocks = on.clocks();
        on.expire_fresh(clocks.at);
        let mut i = 0;
        while i < on.fresh.len() {
            let f = &on.fresh[i];
            let is_linked = f.linked == Some(key)
                || linked.iter().any(|&(pid, start)| {
                    pid == f.logged.pid && start.is_some_and(|s| f.logged.could_be(s, &clocks))
                });
            let lives_here = is_linked
                || f.dir
                    .as_deref()
                    .is_some_and(|d| in_cgroup(dir, d, hierarchical));
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
    /// The clocks now, compared as this process's namespaces allow.
    fn clocks(&self) -> Clocks {
        Clocks {
            compare_log_clock: self.ns.time,
            ..Clocks::now()
        }
    }

    /// Forgets the fresh victims older than the book's [`MAX_AGE`]: a
    /// cgroup of the same name made later is another cgroup.
    fn expire_fresh(&mut self, now: Instant) {
        self.fresh
            .retain(|f| now.saturating_duration_since(f.logged.read_at) <= MAX_AGE);
    }

    fn gap_near(&self, at: Instant) -> bool {
        self.last_gap
            .is_some_and(|g| at.saturating_duration_since(g) <= GAP_WINDOW)
    }
}

/// Whether a victim whose cgroup's directory is `victim_dir` belongs to
/// the watch on `dir`: the same directory, or one below it for a
/// hierarchical watch, compared by whole components (so `/a/b` is not in
/// `/x/ab`, nor `/web` in `/pod/web`). A watch given as a relative path or
/// through `..` cannot be compared by its path, and matches nothing here
/// (its linked victims are still named).
fn in_cgroup(dir: &Path, victim_dir: &Path, hierarchical: bool) -> bool {
    use std::path::Component;
    if !dir.is_absolute() || dir.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    if hierarchical {
        victim_dir.starts_with(dir)
    } else {
        victim_dir == dir
    }
}

/// The victim's cgroup as the kernel names it (relative to its hierarchy's
/// root), and its directory in this mount namespace, each when it can be
/// known:
///
/// - from the context line, when the kernel's rate limit let it through.
///   Its path is from the hierarchy's root, which is ours to map only in
///   the initial cgroup namespace;
/// - else from `/proc/<pid>/cgroup`, read now, through a directory fd that
///   holds on to the process (a reaped one's reads fail, a reused pid's
///   process is another directory), and only if that process can be the
///   victim by its start time. An exiting task shows the root (`/`) on
///   v1, which is no answer: unknown.
///
/// Either path is mapped to a directory with the mounts, as `locate` does.
fn where_it_lived(
    v: &Victim,
    ns: Namespaces,
    clocks: &Clocks,
) -> (Option<PathBuf>, Option<PathBuf>) {
    if let Some(p) = &v.task_memcg {
        let dir = if ns.cgroup { dir_of(p) } else { None };
        return (Some(PathBuf::from(OsStr::from_bytes(p))), dir);
    }
    match proc_cgroup_of(v, clocks) {
        Some(p) => {
            let dir = dir_of(&p);
            (ns.cgroup.then(|| PathBuf::from(OsStr::from_bytes(&p))), dir)
        }
        None => (None, None),
    }
}

/// The memory cgroup path of the victim `v` from `/proc`, if the process
/// there is the victim and shows more than the root.
fn proc_cgroup_of(v: &Victim, clocks: &Clocks) -> Option<Vec<u8>> {
    use rustix::fs::{openat, Mode, OFlags};
    let proc_dir = rustix::fs::open(
        format!("/proc/{}", v.pid).as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let read = |name: &str| -> Option<Vec<u8>> {
        let fd = openat(
            &proc_dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut file = std::fs::File::from(fd);
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut text).ok()?;
        Some(text)
    };
    let ticks = crate::reaper::proc::start_time(&read("stat")?)?;
    if !v.could_be(StartTime::from_ticks(ticks), clocks) {
        return None;
    }
    let text = read("cgroup")?;
    let parsed = proc_cgroup::parse(&text).ok()?;
    let entry = parsed.memory_v1().or_else(|| parsed.unified())?;
    (entry.path != b"/").then(|| entry.path.to_vec())
}

/// Where the memory cgroup at `path` (relative to our cgroup namespace's
/// root) is in this mount namespace.
fn dir_of(path: &[u8]) -> Option<PathBuf> {
    let me = std::fs::read("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read("/proc/self/mountinfo").ok()?;
    crate::cgroup::memory_cgroup_dir_in(path, &me, &mountinfo).ok()
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
        start: Option<StartTime>,
        status: ExitStatus,
        link: Option<Key>,
        at: Instant,
        last_look: bool,
    ) -> Option<bool> {
        let verdict = self.kmsg.exit_verdict(pid, start, status, link, at);
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
        // The processes linked to this watch, to name them whatever the log
        // or `/proc` said of their cgroup: a scan, but only of an OOM report
        // or removal with victims waiting.
        let linked: Vec<(i32, Option<StartTime>)> = if self.kmsg.has_fresh() {
            let id = Some(WatchId(key.as_u64()));
            self.table
                .iter()
                .filter_map(|(_, w)| w.source.pid_info())
                .filter(|info| info.oom_link == id)
                .map(|info| (info.pid, info.start))
                .collect()
        } else {
            Vec::new()
        };
        let Some(named) = self
            .kmsg
            .victims_in(key, &dir, hierarchical, &linked, Instant::now())
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
            let (pid, start, status, link) = {
                let l = &self.late_exits[i];
                let start = l.watch.source.pid_info().and_then(|info| info.start);
                (l.exit.pid, start, l.exit.status, l.link)
            };
            let last_look = at >= self.late_exits[i].until;
            match self.judge_exit(pid, start, status, link, at, last_look) {
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
    fn cgroups_match_by_whole_directories() {
        let dir = Path::new("/sys/fs/cgroup/memory/pod/web");
        let at = |p: &str| Path::new("/sys/fs/cgroup/memory").join(p);
        assert!(in_cgroup(dir, &at("pod/web"), false));
        assert!(in_cgroup(
            dir,
            Path::new("/sys/fs/cgroup/memory//pod/./web/"),
            false
        ));
        assert!(!in_cgroup(dir, &at("pod/web/c"), false));
        assert!(in_cgroup(dir, &at("pod/web/c"), true));
        // The suffix of another cgroup's path is another cgroup.
        assert!(!in_cgroup(dir, &at("web"), true));
        assert!(!in_cgroup(dir, &at("x/pod/web"), true));
        assert!(!in_cgroup(dir, &at("pod/webx"), true));
        assert!(!in_cgroup(dir, &at(""), true));
        // A watch path that cannot be compared matches nothing.
        assert!(!in_cgroup(
            Path::new("pod/web"),
            Path::new("pod/web"),
            false
        ));
        assert!(!in_cgroup(
            Path::new("/sys/fs/cgroup/memory/x/../pod/web"),
            &at("pod/web"),
            false
        ));
    }
}
