//! Dispatch benchmarks: ctrmon (both ways to wait: `wait`, shared, and
//! `wait_mut`, owned) side by side with a raw rustix epoll loop (the floor)
//! and mio + `HashMap<Token, _>` (what a Rust user writes by default).
//! Issue 6 defines the workloads; `benches/README.md` has the method and a
//! real result.
//!
//! ```sh
//! cargo bench --bench dispatch              # W1-W3, about 2 minutes
//! CTRMON_BENCH_W4=1 cargo bench --bench dispatch   # also the exit storm
//! CTRMON_BENCH_QUICK=1 cargo bench --bench dispatch  # smoke run, seconds
//! cargo bench --bench dispatch -- W1 W3     # only some workloads
//! ```
//!
//! Environment:
//! - `CTRMON_BENCH_QUICK=1`: few rounds and repetitions (CI smoke run). Also
//!   the default when the binary is run without `--bench` (`cargo test`).
//! - `CTRMON_BENCH_REPS=n`: interleaved repetitions (default 15, quick 3).
//! - `CTRMON_BENCH_W4=1`: run W4 (2,000 `sleep` children per variant and
//!   repetition); `CTRMON_BENCH_W4_CHILDREN=n` changes the 2,000 and
//!   `CTRMON_BENCH_W4_REPS=n` the three repetitions.
//! - `CTRMON_BENCH_ONLY=ctrmon|ctrmon_owned|raw|mio CTRMON_BENCH_ROUNDS=r [CTRMON_BENCH_N=n]`:
//!   run only W1 at N (default 4096) on one variant for exactly r rounds,
//!   no warm-up: the mode for counting instructions with callgrind
//!   (`benches/callgrind.sh`).
//! - `CTRMON_BENCH_ONLY_W3=ctrmon|ctrmon_owned|raw|raw_arc|mio CTRMON_BENCH_ROUNDS=r`:
//!   the same for W3, r churns with no others (`benches/callgrind.sh w3`).

mod common;
mod ctrmon_v;
mod mio_v;
mod raw;

use std::io;
use std::time::Duration;

use common::{median, percentile, Picks, Variant};
use mio_v::Mio;
use raw::{Raw, RawArc};

type Ctrmon = ctrmon_v::Ctrmon<false>;
type CtrmonOwned = ctrmon_v::Ctrmon<true>;

/// Every variant, in table order. `RAW` is the floor the ratios divide by;
/// `CTRMONS` are the variants that get a ratio and a `summary:` line.
const VARIANTS: [&str; NV] = ["ctrmon", "ctrmon_owned", "raw", "mio"];
const NV: usize = 4;
const RAW: usize = 2;
const MIO: usize = 3;
const CTRMONS: [usize; 2] = [0, 1];

struct Config {
    quick: bool,
    reps: usize,
    /// W1: events per timed measurement.
    w1_events: usize,
    w1_sizes: Vec<usize>,
    w2_rounds: usize,
    w3_pairs: usize,
    w3_others: Vec<usize>,
    w4_children: Option<usize>,
    workloads: Vec<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_num(name: &str) -> Option<usize> {
    env(name).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

impl Config {
    fn from_env() -> Config {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; without it we are a smoke test.
        let quick = env("CTRMON_BENCH_QUICK").is_some_and(|v| v != "0")
            || !args.iter().any(|a| a == "--bench");
        let workloads = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .map(|a| a.to_uppercase())
            .collect();
        let w4 = env("CTRMON_BENCH_W4").is_some_and(|v| v != "0");
        Config {
            quick,
            reps: env_num("CTRMON_BENCH_REPS").unwrap_or(if quick { 3 } else { 15 }),
            w1_events: if quick { 4_000 } else { 50_000 },
            w1_sizes: vec![1, 128, 4096, 16384],
            w2_rounds: if quick { 200 } else { 3_000 },
            w3_pairs: if quick { 1_000 } else { 10_000 },
            w3_others: vec![0, 16384],
            w4_children: w4.then(|| env_num("CTRMON_BENCH_W4_CHILDREN").unwrap_or(2000)),
            workloads,
        }
    }

    fn runs(&self, w: &str) -> bool {
        self.workloads.is_empty() || self.workloads.iter().any(|x| x == w)
    }
}

/// The variants in a rotated order for repetition `rep` (A B C D, B C D A,
/// ...), so no variant always runs first or last.
fn order(rep: usize) -> [&'static str; NV] {
    let mut o = VARIANTS;
    o.rotate_left(rep % NV);
    o
}

fn fmt_ns(x: f64) -> String {
    format!("{x:.1}")
}

/// Per-variant medians over repetitions, and each ctrmon variant's ratio
/// to raw.
struct Row {
    med: [f64; NV],
    /// Per ctrmon variant: min and max of the per-repetition ratios to raw.
    paired: [(f64, f64); 2],
}

impl Row {
    /// The ratio of the medians of variant `v` and raw.
    fn ratio(&self, v: usize) -> f64 {
        self.med[v] / self.med[RAW]
    }
}

fn row(samples: &[Vec<f64>; NV]) -> Row {
    let med = std::array::from_fn(|i| median(&samples[i]));
    let paired = CTRMONS.map(|v| {
        let ratios: Vec<f64> = samples[v]
            .iter()
            .zip(&samples[RAW])
            .map(|(c, r)| c / r)
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    });
    Row { med, paired }
}

/// `summary:` lines: today's (ctrmon, the shared path) and one for
/// `ctrmon_owned`, each with raw and mio beside it and its ratio to raw.
fn summaries(w: &str, n: usize, r: &Row) -> Vec<String> {
    CTRMONS
        .iter()
        .map(|&v| {
            format!(
                "summary: {w} N={n} {}={} raw={} mio={} ratio={:.3}",
                VARIANTS[v],
                fmt_ns(r.med[v]),
                fmt_ns(r.med[RAW]),
                fmt_ns(r.med[MIO]),
                r.ratio(v)
            )
        })
        .collect()
}

/// The ratio columns of a table row: each ctrmon variant's ratio and range.
fn ratio_cols(r: &Row) -> String {
    CTRMONS
        .iter()
        .map(|&v| {
            format!(
                " {:>7.3} {:>6.3}..{:<6.3}",
                r.ratio(v),
                r.paired[v].0,
                r.paired[v].1
            )
        })
        .collect()
}

fn ratio_header() -> String {
    format!(
        " {:>7} {:>14} {:>7} {:>14}",
        "ratio", "per-rep", "ratio_o", "per-rep_o"
    )
}

fn idx(name: &str) -> usize {
    VARIANTS.iter().position(|v| *v == name).expect("variant")
}

/// How many fds a workload of `n` watches needs, with room for std's own.
fn fits(n: usize) -> bool {
    let need = n as u64 + 64;
    let limit = common::nofile_limit();
    if need > limit {
        println!(
            "  skipped N={n}: needs about {need} fds, the open-files limit is {limit} \
             (raise `ulimit -n`)"
        );
        false
    } else {
        true
    }
}

/// One variant's W1 receivers, kept alive across repetitions when the
/// open-files limit allows all three at once.
enum Live {
    Ctrmon(common::Watched<Ctrmon>),
    CtrmonOwned(common::Watched<CtrmonOwned>),
    Raw(common::Watched<Raw>),
    Mio(common::Watched<Mio>),
}

impl Live {
    fn new(name: &str, n: usize) -> io::Result<Live> {
        Ok(match name {
            "ctrmon" => Live::Ctrmon(common::watch_n(n)?),
            "ctrmon_owned" => Live::CtrmonOwned(common::watch_n(n)?),
            "raw" => Live::Raw(common::watch_n(n)?),
            "mio" => Live::Mio(common::watch_n(n)?),
            _ => unreachable!(),
        })
    }

    fn rounds(&mut self, picks: &Picks, first: usize, count: usize) -> Duration {
        match self {
            Live::Ctrmon(w) => common::w1_rounds(w, picks, first, count),
            Live::CtrmonOwned(w) => common::w1_rounds(w, picks, first, count),
            Live::Raw(w) => common::w1_rounds(w, picks, first, count),
            Live::Mio(w) => common::w1_rounds(w, picks, first, count),
        }
    }

    fn total(&mut self) -> u64 {
        match self {
            Live::Ctrmon(w) => w.v.total(),
            Live::CtrmonOwned(w) => w.v.total(),
            Live::Raw(w) => w.v.total(),
            Live::Mio(w) => w.v.total(),
        }
    }
}

fn run_w1(cfg: &Config) -> io::Result<()> {
    println!(
        "\nW1 flush dispatch: ns per event (median of {} interleaved repetitions; \
         timed from the first wait to the last delivery, signalling writes excluded)",
        cfg.reps
    );
    println!(
        "{:>7} {:>6} {:>10} {:>12} {:>10} {:>10}{}",
        "N",
        "K",
        "ctrmon",
        "ctrmon_owned",
        "raw",
        "mio",
        ratio_header()
    );
    let mut lines = Vec::new();
    for &n in &cfg.w1_sizes {
        if !fits(n) {
            continue;
        }
        let k = n.min(common::MAX_K);
        let rounds = (cfg.w1_events / k).max(1);
        let picks = Picks::new(n, rounds);
        let warmup = (rounds / 5).max(1);
        // All at once when they fit: then the repetitions are short blocks,
        // A B C D rotated, on receivers set up once. Otherwise each variant
        // is set up and torn down in its turn.
        let together = (NV * n) as u64 + 64 <= common::nofile_limit();
        let mut live: Vec<Option<(Live, u64)>> = (0..NV).map(|_| None).collect();
        let mut samples: [Vec<f64>; NV] = Default::default();
        for rep in 0..cfg.reps {
            for name in order(rep) {
                let i = idx(name);
                if live[i].is_none() {
                    let mut l = Live::new(name, n)?;
                    l.rounds(&picks, 0, warmup);
                    live[i] = Some((l, (warmup * k) as u64));
                }
                let (l, expected) = live[i].as_mut().expect("set up");
                let t = l.rounds(&picks, rep * rounds, rounds);
                *expected += (rounds * k) as u64;
                assert_eq!(l.total(), *expected, "{name}: lost or extra counts");
                samples[i].push(t.as_nanos() as f64 / (rounds * k) as f64);
                if !together {
                    live[i] = None;
                }
            }
        }
        drop(live);
        let r = row(&samples);
        println!(
            "{n:>7} {k:>6} {:>10} {:>12} {:>10} {:>10}{}",
            fmt_ns(r.med[0]),
            fmt_ns(r.med[1]),
            fmt_ns(r.med[RAW]),
            fmt_ns(r.med[MIO]),
            ratio_cols(&r)
        );
        lines.extend(summaries("W1", n, &r));
    }
    for s in lines {
        println!("{s}");
    }
    Ok(())
}

fn w2_one(name: &str, rounds: usize, warmup: usize) -> io::Result<Vec<u64>> {
    match name {
        "ctrmon" => common::w2::<Ctrmon>(rounds, warmup),
        "ctrmon_owned" => common::w2::<CtrmonOwned>(rounds, warmup),
        "raw" => common::w2::<Raw>(rounds, warmup),
        "mio" => common::w2::<Mio>(rounds, warmup),
        _ => unreachable!(),
    }
}

fn run_w2(cfg: &Config) -> io::Result<()> {
    println!(
        "\nW2 wake latency: ns from the other thread's write to delivery \
         (one receiver; {} rounds per repetition; median over {} interleaved repetitions \
         of each repetition's p50 and p99)",
        cfg.w2_rounds, cfg.reps
    );
    let warmup = (cfg.w2_rounds / 10).max(1);
    let mut p50: [Vec<f64>; NV] = Default::default();
    let mut p99: [Vec<f64>; NV] = Default::default();
    for rep in 0..cfg.reps {
        for name in order(rep) {
            let lat = w2_one(name, cfg.w2_rounds, warmup)?;
            p50[idx(name)].push(percentile(&lat, 0.50));
            p99[idx(name)].push(percentile(&lat, 0.99));
        }
    }
    let a = row(&p50);
    let b = row(&p99);
    println!(
        "{:>7} {:>10} {:>12} {:>10} {:>10}{}",
        "",
        "ctrmon",
        "ctrmon_owned",
        "raw",
        "mio",
        ratio_header()
    );
    for (label, r) in [("p50", &a), ("p99", &b)] {
        println!(
            "{label:>7} {:>10} {:>12} {:>10} {:>10}{}",
            fmt_ns(r.med[0]),
            fmt_ns(r.med[1]),
            fmt_ns(r.med[RAW]),
            fmt_ns(r.med[MIO]),
            ratio_cols(r)
        );
    }
    for v in CTRMONS {
        let name = VARIANTS[v];
        println!(
            "summary: W2 N=1 {name}_p50={} raw_p50={} mio_p50={} ratio={:.3} \
             {name}_p99={} raw_p99={} mio_p99={} ratio_p99={:.3}",
            fmt_ns(a.med[v]),
            fmt_ns(a.med[RAW]),
            fmt_ns(a.med[MIO]),
            a.ratio(v),
            fmt_ns(b.med[v]),
            fmt_ns(b.med[RAW]),
            fmt_ns(b.med[MIO]),
            b.ratio(v),
        );
    }
    Ok(())
}

/// W3 on the variant `name` (or `raw_arc`), after `warmup` unmeasured
/// pairs; `None` for a name that is neither.
fn w3_one(name: &str, others: usize, pairs: usize, warmup: usize) -> Option<io::Result<f64>> {
    Some(match name {
        "ctrmon" => common::w3::<Ctrmon>(others, pairs, warmup),
        "ctrmon_owned" => common::w3::<CtrmonOwned>(others, pairs, warmup),
        "raw" => common::w3::<Raw>(others, pairs, warmup),
        "raw_arc" => common::w3::<RawArc>(others, pairs, warmup),
        "mio" => common::w3::<Mio>(others, pairs, warmup),
        _ => return None,
    })
}

fn run_w3(cfg: &Config) -> io::Result<()> {
    println!(
        "\nW3 churn: ns per (eventfd + watch + unwatch + close), {} pairs, \
         median of {} interleaved repetitions (ctrmon makes its eventfds: \
         `watch_new_eventfd`)",
        cfg.w3_pairs, cfg.reps
    );
    println!(
        "{:>7} {:>10} {:>12} {:>10} {:>10} {:>8} {:>8}",
        "others", "ctrmon", "ctrmon_owned", "raw", "mio", "ratio", "ratio_o"
    );
    let mut meds = Vec::new();
    let mut lines = Vec::new();
    for &others in &cfg.w3_others {
        if !fits(others) {
            continue;
        }
        let mut samples: [Vec<f64>; NV] = Default::default();
        let mut raw_arc = Vec::new();
        let warmup = (cfg.w3_pairs / 10).max(1);
        let run = |name| w3_one(name, others, cfg.w3_pairs, warmup).expect("a W3 variant");
        for rep in 0..cfg.reps {
            for name in order(rep) {
                samples[idx(name)].push(run(name)?);
                if name == "raw" {
                    raw_arc.push(run("raw_arc")?);
                }
            }
        }
        let r = row(&samples);
        let raw_arc = median(&raw_arc);
        println!(
            "{others:>7} {:>10} {:>12} {:>10} {:>10} {:>8.3} {:>8.3}",
            fmt_ns(r.med[0]),
            fmt_ns(r.med[1]),
            fmt_ns(r.med[RAW]),
            fmt_ns(r.med[MIO]),
            r.ratio(0),
            r.ratio(1),
        );
        println!(
            "{:>7} raw_arc (raw, its eventfd shared with a writer through an Arc, \
             as a made eventfd is) {}: {:.3} x raw",
            "",
            fmt_ns(raw_arc),
            raw_arc / r.med[RAW]
        );
        lines.extend(summaries("W3", others, &r));
        // What sharing the eventfd with a writer costs with nothing else.
        lines.push(format!(
            "summary: W3 N={others} raw_arc={raw_arc:.1} raw={:.1} ratio={:.3}",
            r.med[RAW],
            raw_arc / r.med[RAW]
        ));
        meds.push(r.med);
    }
    if meds.len() == 2 {
        println!(
            "  with {} others / with 0: ctrmon {:.3}, ctrmon_owned {:.3}, raw {:.3}, mio {:.3}",
            cfg.w3_others[1],
            meds[1][0] / meds[0][0],
            meds[1][1] / meds[0][1],
            meds[1][RAW] / meds[0][RAW],
            meds[1][MIO] / meds[0][MIO]
        );
    }
    for s in lines {
        println!("{s}");
    }
    Ok(())
}

fn run_w4(cfg: &Config, children: usize) -> io::Result<()> {
    // Each repetition spawns and kills `children` processes per variant:
    // three by default, more on request.
    let reps = env_num("CTRMON_BENCH_W4_REPS").unwrap_or(cfg.reps.min(3));
    println!(
        "\nW4 exit storm: {children} `sleep` children watched by pidfd, all SIGKILLed; \
         ns from the first kill to the last exit delivered (reaped), median of {reps} \
         interleaved repetitions"
    );
    if !fits(children * 2) {
        return Ok(());
    }
    let mut samples: [Vec<f64>; NV] = Default::default();
    for rep in 0..reps {
        for name in order(rep) {
            let kids = common::spawn_sleepers(children)?;
            let result = match name {
                "ctrmon" => ctrmon_v::w4::<false>(&kids),
                "ctrmon_owned" => ctrmon_v::w4::<true>(&kids),
                "raw" => raw::w4(&kids),
                "mio" => mio_v::w4(&kids),
                _ => unreachable!(),
            };
            // Whatever happened, leave no children behind.
            common::kill_all(&kids);
            for mut c in kids {
                let _ = c.try_wait();
            }
            samples[idx(name)].push(result?.as_nanos() as f64);
        }
    }
    let r = row(&samples);
    println!(
        "{:>7} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "", "ctrmon", "ctrmon_owned", "raw", "mio", "ratio", "ratio_o"
    );
    println!(
        "{:>7} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>8.3} {:>8.3}",
        "total",
        r.med[0],
        r.med[1],
        r.med[RAW],
        r.med[MIO],
        r.ratio(0),
        r.ratio(1)
    );
    for v in CTRMONS {
        println!(
            "summary: W4 N={children} {}={:.0} raw={:.0} mio={:.0} ratio={:.3}",
            VARIANTS[v],
            r.med[v],
            r.med[RAW],
            r.med[MIO],
            r.ratio(v)
        );
    }
    Ok(())
}

/// Callgrind mode: one variant, W1 at `n`, exactly `rounds` rounds. The
/// selection is precomputed for a fixed 1,000 rounds and replayed, so its
/// cost does not grow with `rounds` and cancels in a two-length difference.
fn only(name: &str, rounds: usize, n: usize) -> io::Result<()> {
    let picks = Picks::new(n, 1000);
    let ns = match name {
        "ctrmon" => common::w1::<Ctrmon>(n, &picks, rounds)?,
        "ctrmon_owned" => common::w1::<CtrmonOwned>(n, &picks, rounds)?,
        "raw" => common::w1::<Raw>(n, &picks, rounds)?,
        "mio" => common::w1::<Mio>(n, &picks, rounds)?,
        _ => unreachable!(),
    };
    println!(
        "only: W1 N={n} variant={name} rounds={rounds} events={} ns_per_event={ns:.1}",
        rounds * picks.k
    );
    Ok(())
}

fn sizes() {
    use std::mem::size_of;
    println!(
        "\nsizes (bytes): Monitor<usize>={} table slot (T=usize)={} (T=())={} (T=u32)={} \
         Event<usize>={} EventKind={} WatchId={}",
        size_of::<ctrmon::Monitor<usize>>(),
        ctrmon::table_slot_size::<usize>(),
        ctrmon::table_slot_size::<()>(),
        ctrmon::table_slot_size::<u32>(),
        size_of::<ctrmon::Event<usize>>(),
        size_of::<ctrmon::EventKind>(),
        size_of::<ctrmon::WatchId>(),
    );
}

/// `CTRMON_BENCH_ONLY_W3`: W3 alone on one variant, `rounds` churns, no
/// others and no warm-up (for callgrind: `benches/callgrind.sh w3`).
fn only_w3(name: &str, rounds: usize) -> io::Result<()> {
    let Some(ns) = w3_one(name, 0, rounds, 0) else {
        panic!("CTRMON_BENCH_ONLY_W3 must be raw_arc or one of {VARIANTS:?}");
    };
    let ns = ns?;
    println!("only: W3 variant={name} rounds={rounds} ns_per_pair={ns:.1}");
    Ok(())
}

fn main() -> io::Result<()> {
    if let Some(name) = env("CTRMON_BENCH_ONLY_W3") {
        return only_w3(&name, env_num("CTRMON_BENCH_ROUNDS").unwrap_or(1000));
    }
    if let Some(name) = env("CTRMON_BENCH_ONLY") {
        assert!(
            VARIANTS.contains(&name.as_str()),
            "CTRMON_BENCH_ONLY must be one of {VARIANTS:?}"
        );
        let rounds = env_num("CTRMON_BENCH_ROUNDS").unwrap_or(1000);
        let n = env_num("CTRMON_BENCH_N").unwrap_or(4096);
        return only(&name, rounds, n);
    }
    let cfg = Config::from_env();
    println!(
        "ctrmon dispatch benchmarks{}: variants {VARIANTS:?}, run interleaved \
         (order rotated each repetition); {} cpus; open-files limit {}",
        if cfg.quick { " (quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        common::nofile_limit()
    );
    sizes();
    if cfg.runs("W1") {
        run_w1(&cfg)?;
    }
    if cfg.runs("W2") {
        run_w2(&cfg)?;
    }
    if cfg.runs("W3") {
        run_w3(&cfg)?;
    }
    match cfg.w4_children {
        Some(children) if cfg.runs("W4") => run_w4(&cfg, children)?,
        _ => println!("\nW4 exit storm: skipped (set CTRMON_BENCH_W4=1 to run it)"),
    }
    Ok(())
}
