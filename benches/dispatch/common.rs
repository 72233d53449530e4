//! What every variant shares: the workload definitions, eventfds, the
//! signalling side, and the statistics.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};

/// Upper bound on the number of events a variant reads per `epoll_wait`.
pub const BATCH: usize = 128;

/// W1's per-round fan-out: `K = min(N, 64)`.
pub const MAX_K: usize = 64;

/// A fresh non-blocking, close-on-exec eventfd, with `EMFILE` explained.
pub fn new_eventfd() -> io::Result<OwnedFd> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(|e| {
        let e = io::Error::from(e);
        if e.raw_os_error() == Some(libc_emfile()) {
            io::Error::new(
                e.kind(),
                format!(
                    "{e}: out of file descriptors (open-files limit {}); \
                     raise `ulimit -n` or lower the sizes",
                    nofile_limit()
                ),
            )
        } else {
            e
        }
    })
}

fn libc_emfile() -> i32 {
    rustix::io::Errno::MFILE.raw_os_error()
}

/// The soft open-files limit.
pub fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Adds 1 to an eventfd that a variant owns (by number: the variant keeps it
/// open for as long as the workload runs).
#[inline]
pub fn signal(fd: RawFd) {
    // SAFETY: every fd passed here is owned by the live variant being
    // measured (its monitor, Vec or HashMap) and is not closed until the
    // variant is dropped, after the last signal.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::write(fd, &1u64.to_ne_bytes()).expect("write eventfd");
}

/// Blocking read of a plain (blocking) eventfd: W2's "signal back".
pub fn wait_back(fd: &OwnedFd) {
    let mut buf = [0u8; 8];
    rustix::io::read(fd, &mut buf).expect("read back eventfd");
}

/// The W1 selection: `K = min(N, 64)` distinct receivers per round from
/// `x = x * 1664525 + 1013904223 mod 2^32`, index `x mod N`, stepping to the
/// next free index on a repeat. Precomputed so every variant gets the exact
/// same sequence and the selection is outside the timed part.
pub struct Picks {
    pub k: usize,
    pub indices: Vec<u32>,
}

impl Picks {
    pub fn new(n: usize, rounds: usize) -> Picks {
        let k = n.min(MAX_K);
        let mut x: u32 = 1;
        let mut stamp = vec![usize::MAX; n];
        let mut indices = Vec::with_capacity(rounds * k);
        for round in 0..rounds {
            for _ in 0..k {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let mut i = x as usize % n;
                while stamp[i] == round {
                    i = (i + 1) % n;
                }
                stamp[i] = round;
                indices.push(i as u32);
            }
        }
        Picks { k, indices }
    }

    pub fn rounds(&self) -> usize {
        self.indices.len() / self.k
    }

    pub fn round(&self, r: usize) -> &[u32] {
        &self.indices[r * self.k..(r + 1) * self.k]
    }
}

/// One variant of the monitor loop over eventfd receivers: the interface the
/// W1-W3 drivers need. Generic (not `dyn`) so the hot loop is monomorphised.
pub trait Variant: Sized {
    const NAME: &'static str;
    type Handle;

    /// An empty loop.
    fn new() -> io::Result<Self>;

    /// Watches `fd` for receiver `index` (the bench's own numbering).
    fn watch(&mut self, fd: OwnedFd, index: usize) -> io::Result<Self::Handle>;

    /// Ends a watch; its fd is closed.
    fn unwatch(&mut self, handle: Self::Handle) -> io::Result<()>;

    /// One W3 pair: make an eventfd, watch it, unwatch it (closing it). A
    /// variant that makes eventfds itself does that instead.
    fn churn_one(&mut self, index: usize) -> io::Result<()> {
        let fd = new_eventfd()?;
        let h = self.watch(fd, index)?;
        self.unwatch(h)
    }

    /// One wait (`None`: block, `Some(ZERO)`: poll): every ready receiver is
    /// looked up, its eventfd read, the count added to the receiver, and
    /// `seen()` called. Returns the number delivered.
    fn poll<F: FnMut()>(&mut self, timeout: Option<Duration>, seen: F) -> usize;

    /// The sum of the receivers' counts (checks that nothing was lost).
    fn total(&mut self) -> u64;
}

/// N receivers watched, with their eventfd numbers for signalling.
pub struct Watched<V: Variant> {
    pub v: V,
    pub fds: Vec<RawFd>,
}

pub fn watch_n<V: Variant>(n: usize) -> io::Result<Watched<V>> {
    let mut v = V::new()?;
    let mut fds = Vec::with_capacity(n);
    for i in 0..n {
        let fd = new_eventfd()?;
        fds.push(std::os::fd::AsRawFd::as_raw_fd(&fd));
        // The watches end when the variant is dropped.
        v.watch(fd, i)?;
    }
    Ok(Watched { v, fds })
}

/// Runs W1 rounds `first..first + count` (the rounds of `picks`, replayed
/// from the start when there are fewer): signal the round's K receivers, then
/// time from the first wait to the last delivery. The signalling writes are
/// outside the timed part. Returns the timed total.
pub fn w1_rounds<V: Variant>(
    w: &mut Watched<V>,
    picks: &Picks,
    first: usize,
    count: usize,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    for r in first..first + count {
        for &i in picks.round(r % picks.rounds()) {
            signal(w.fds[i as usize]);
        }
        let start = Instant::now();
        flush_round(&mut w.v, picks.k);
        elapsed += start.elapsed();
    }
    elapsed
}

/// W1 on one variant by itself (the callgrind mode): set up N receivers,
/// run `rounds` rounds, check the counts. Returns ns per event.
pub fn w1<V: Variant>(n: usize, picks: &Picks, rounds: usize) -> io::Result<f64> {
    let mut w = watch_n::<V>(n)?;
    let elapsed = w1_rounds(&mut w, picks, 0, rounds);
    assert_eq!(
        w.v.total(),
        (rounds * picks.k) as u64,
        "{}: lost or extra counts",
        V::NAME
    );
    Ok(elapsed.as_nanos() as f64 / (rounds * picks.k) as f64)
}

/// The measured part of a W1 round: zero-timeout waits until all `k`
/// signalled receivers are delivered. Never inlined, so that callgrind can
/// count exactly this (`--toggle-collect='*flush_round*'`).
#[inline(never)]
pub fn flush_round<V: Variant>(v: &mut V, k: usize) {
    let mut got = 0;
    while got < k {
        got += v.poll(Some(Duration::ZERO), || {});
    }
}

/// W2 on one variant: one receiver; a second thread stamps the time and
/// writes its eventfd; the loop thread, blocked in a wait with no timeout,
/// delivers it and records now - sent, then signals back on a plain blocking
/// eventfd. Returns the latencies in ns.
pub fn w2<V: Variant>(rounds: usize, warmup: usize) -> io::Result<Vec<u64>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut w = watch_n::<V>(1)?;
    let fd = w.fds[0];
    let back = eventfd(0, EventfdFlags::CLOEXEC)?;
    let base = Instant::now();
    let sent = AtomicU64::new(0);
    let total = rounds + warmup;
    let mut lat = Vec::with_capacity(total);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..total {
                sent.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                signal(fd);
                wait_back(&back);
            }
        });
        for _ in 0..total {
            let mut got = 0;
            while got == 0 {
                got = w.v.poll(None, || {
                    let now = base.elapsed().as_nanos() as u64;
                    lat.push(now.saturating_sub(sent.load(Ordering::Acquire)));
                });
            }
            rustix::io::write(&back, &1u64.to_ne_bytes()).expect("write back");
        }
    });
    assert_eq!(
        w.v.total(),
        total as u64,
        "{}: lost or extra counts",
        V::NAME
    );
    Ok(lat.split_off(warmup))
}

/// W3 on one variant: `others` receivers watched, then `pairs` times a fresh
/// eventfd is made, watched, unwatched (and so closed). Returns ns per pair.
pub fn w3<V: Variant>(others: usize, pairs: usize, warmup: usize) -> io::Result<f64> {
    let mut w = watch_n::<V>(others)?;
    let churn = |w: &mut Watched<V>, count: usize| -> io::Result<Duration> {
        let start = Instant::now();
        for _ in 0..count {
            w.v.churn_one(others)?;
        }
        Ok(start.elapsed())
    };
    churn(&mut w, warmup)?;
    let elapsed = churn(&mut w, pairs)?;
    Ok(elapsed.as_nanos() as f64 / pairs as f64)
}

/// Spawns `n` children that would sleep for an hour.
pub fn spawn_sleepers(n: usize) -> io::Result<Vec<Child>> {
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        match Command::new("sleep")
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                kill_all(&children);
                for mut c in children {
                    let _ = c.wait();
                }
                return Err(e);
            }
        }
    }
    Ok(children)
}

/// SIGKILLs every child (W4's storm).
pub fn kill_all(children: &[Child]) {
    use rustix::process::{kill_process, Pid, Signal};
    for c in children {
        let pid = Pid::from_raw(c.id() as i32).expect("child pid");
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Sorted-copy percentile (nearest rank), `q` in 0..=1.
pub fn percentile(samples: &[u64], q: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
