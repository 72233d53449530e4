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

use crate::cgroup::parse::kmsg_oom::{Escaped, KillScope, OomLine, Record};

/// How many victims are remembered until their exit is seen; the oldest go
/// first. A victim's exit follows its kill within seconds, so only victims
/// nobody watched stay long.
const KEEP: usize = 1024;
/// Context lines waiting for their `Killed process` line.
const KEEP_CONTEXTS: usize = 64;

/// A process the OOM killer killed, as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    /// The victim's pid.
    pub pid: i32,
    /// Its name (`comm`), unescaped.
    pub comm: Vec<u8>,
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
}

#[derive(Debug)]
struct Context {
    pid: i32,
    oom_memcg: Option<Vec<u8>>,
    task_memcg: Option<Vec<u8>>,
}

/// Logged victims by pid, until their exit claims them.
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

    /// Takes in one record; returns the victim it completed, if it was a
    /// `Killed process` line.
    pub fn add(&mut self, record: &Record<'_>) -> Option<&Victim> {
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
                    oom_memcg: owned(c.oom_memcg),
                    task_memcg: owned(c.task_memcg),
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
                let (oom_memcg, task_memcg) =
                    context.map_or((None, None), |c| (c.oom_memcg, c.task_memcg));
                // Re-logged (it cannot be killed twice): keep the newest.
                self.victims.retain(|v| v.pid != k.pid);
                if self.victims.len() == KEEP {
                    self.victims.pop_front();
                }
                self.chosen = self.group.is_none().then_some(k.pid);
                self.victims.push_back(Victim {
                    pid: k.pid,
                    comm: k.comm.to_vec(),
                    scope: k.scope,
                    oom_memcg,
                    task_memcg,
                    group: self.group.clone(),
                    seq: record.seq,
                });
                self.victims.back()
            }
        }
    }

    /// Whether `pid` was logged as a victim and has not been taken yet.
    pub fn is_victim(&self, pid: i32) -> bool {
        self.victims.iter().any(|v| v.pid == pid)
    }

    /// The victim with this pid, taken out of the book: called when `pid`
    /// exits, whose exit is an OOM kill exactly when this returns one.
    pub fn take(&mut self, pid: i32) -> Option<Victim> {
        let i = self.victims.iter().position(|v| v.pid == pid)?;
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
        assert_eq!(book.add(&corpus!("real-context-parent-limit")), None);
        let v = book
            .add(&corpus!("real-killed-comm-with-space"))
            .unwrap()
            .clone();
        assert_eq!((v.pid, v.comm.as_slice()), (15356, &b"leaf hog"[..]));
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
        assert!(book.take(15355).is_none());
        assert_eq!(book.take(15356), Some(v));
        assert!(book.take(15356).is_none());
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
            book.add(&r);
        }
        assert_eq!(book.len(), 3);
        let other = book.take(15389).unwrap();
        assert_eq!((other.oom_memcg, other.comm), (None, b"tail".to_vec()));
        let odd = book.take(15354).unwrap();
        assert_eq!(odd.comm, b"a b) (c\\d\x01\xe9\n");
        assert_eq!(
            odd.task_memcg.as_deref(),
            Some(&b"/ctrmon-test-rec-comm-15258"[..])
        );
        assert!(book.take(15353).is_some());
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
            book.add(&r);
        }
        let group = &b"/ctrmon-test-kmsg-group-147"[..];
        for pid in [153, 151, 152] {
            let v = book.take(pid).unwrap();
            assert_eq!(v.group.as_deref(), Some(group), "{v:?}");
        }
        // The next OOM's context ends the group.
        book.add(&corpus!("real-context-memcg"));
        assert_eq!(book.add(&corpus!("real-killed-memcg")).unwrap().group, None);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = VictimBook::new();
        for pid in 1..=(KEEP as i32 + 10) {
            let text = format!(
                "3,{pid},1,-;Memory cgroup out of memory: Killed process {pid} (x) total-vm:1kB, UID:0 pgtables:1kB oom_score_adj:0\n"
            );
            book.add(&parse(text.as_bytes()).unwrap());
        }
        assert_eq!(book.len(), KEEP);
        assert!(!book.is_victim(10) && book.is_victim(11));
    }
}
