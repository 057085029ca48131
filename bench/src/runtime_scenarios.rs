//! Runtime scenarios: spawn+join, yield, channel ping-pong, resident memory per parked
//! coroutine (10,000, 100,000, and 1,000,000 as the stretch case), for coronet, Go, may and
//! tokio where each applies.
//!
//! Every measurement runs in a fresh child process (rt_children.rs, or the Go binary), peers
//! alternating within each repetition. Parked-coroutine memory runs once per count (it
//! barely varies) and may meet `vm.max_map_count`: a peer whose stacks are separate guarded
//! mappings needs two mappings per coroutine, so the harness first runs at the machine's
//! limit, reports how far it got, and, as root, raises the limit for a second run and
//! restores it afterwards.

use std::path::Path;
use std::process::Command;

use crate::report::peer_table;
use crate::util::{is_root, prepare_child, restore_map_count_on_signal};
use crate::Ctx;

const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";
const KERNEL_DEFAULT_MAP_COUNT: u64 = 65_530;

/// A raised `vm.max_map_count`, put back to its original value when dropped (or, through a
/// signal handler, when the harness is interrupted).
struct MapLimit {
    original: Option<u64>,
    raised: bool,
}

impl MapLimit {
    fn raise(&mut self, to: u64) -> bool {
        let Some(original) = self.original else {
            return false;
        };
        restore_map_count_on_signal(original);
        let ok = std::fs::write(MAX_MAP_COUNT, to.to_string()).is_ok();
        self.raised |= ok;
        ok
    }
}

impl Drop for MapLimit {
    fn drop(&mut self) {
        if let (true, Some(original)) = (self.raised, self.original) {
            let _ = std::fs::write(MAX_MAP_COUNT, original.to_string());
        }
    }
}

/// Runs a runtime child and parses its RESULT line; on failure, the last PROGRESS count
/// and the error.
fn child(
    ctx: &Ctx,
    peer: &str,
    test: &str,
    n: u64,
    workers: usize,
) -> Result<Vec<f64>, (u64, String)> {
    let mut cmd = match (peer, &ctx.go) {
        ("go", Some(go)) => {
            let mut cmd = Command::new(go);
            cmd.args(["rt", test, &n.to_string()])
                .env("GOMAXPROCS", workers.to_string());
            cmd
        }
        ("go", None) => return Err((0, "Go is not installed".into())),
        _ => {
            let mut cmd = Command::new(&ctx.exe);
            cmd.args(["rt", peer, test, &n.to_string(), &workers.to_string()]);
            cmd
        }
    };
    cmd.env("RUST_BACKTRACE", "0");
    prepare_child(&mut cmd, None);
    let output = cmd.output().map_err(|e| (0, e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let progress = stdout
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("PROGRESS "))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
    match result {
        Some(values) if output.status.success() => Ok(values
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("note:"))
                .unwrap_or("");
            Err((progress, format!("{} {}", output.status, last.trim())))
        }
    }
}

/// Repetitions of each timed runtime measurement (spawn, yield, ping-pong, the switch floor)
/// in a full run. They take a second or less each, and one disturbed repetition in three
/// moved a median (run 15's spawn+join); five cost about 40 s more per run.
const TIMED_REPS: usize = 5;

pub fn run(ctx: &mut Ctx) {
    let quick = ctx.opts.quick;
    let reps = if quick {
        ctx.opts.reps
    } else {
        ctx.opts.reps.max(TIMED_REPS)
    };
    let scale = |n: u64| if quick { n / 10 } else { n };
    let default_limit = read_max_map_count();
    let mut map_limit = MapLimit {
        original: default_limit,
        raised: false,
    };
    if let Some(l) = default_limit.filter(|&l| l != KERNEL_DEFAULT_MAP_COUNT) {
        ctx.report.note(format!(
            "vm.max_map_count was {l} when the run started, not the kernel's default {KERNEL_DEFAULT_MAP_COUNT}: the parked-coroutine counts ran at {l}, so how far the default limit goes was not probed (a peer with one guarded mapping per stack needs two mappings per coroutine: about 32,000 coroutines at the default)"
        ));
    }
    let counts: &[(u64, &[&str])] = &[
        (10_000, &["coronet", "go", "may"]),
        (100_000, &["coronet", "go", "may"]),
        (1_000_000, &["coronet", "go"]),
    ];
    let n_big = if quick { 100_000 } else { 1_000_000 };
    for &(n, peers) in counts {
        let n = if quick && n == 1_000_000 { 100_000 } else { n };
        for &peer in peers {
            if !ctx.opts.wants(peer) {
                continue;
            }
            if n == n_big && (peer == "coronet" || peer == "go") {
                // The floor under this start: the same number of fresh pages written by a
                // plain loop right before, so it sees the machine's memory as the peer's run
                // does (this VM's page-fault cost moves by 2-3x within minutes).
                eprintln!("runtime park floor before {peer} n={n}");
                match child(ctx, "floor", "touch", n, 1) {
                    Ok(v) => ctx
                        .report
                        .put(format!("rt/park{n}-floor/{peer}"), &v[..1.min(v.len())]),
                    Err((_, e)) => ctx
                        .report
                        .note(format!("park floor x{n}: not measured: {e}")),
                }
            }
            eprintln!("runtime park {peer} n={n}");
            match child(ctx, peer, "park", n, 2) {
                Ok(v) => record_park(ctx, n, peer, &v),
                Err((progress, e)) => {
                    let limit = read_max_map_count();
                    let needed = 2 * n + 100_000;
                    if is_root() && limit.is_some_and(|l| l < needed) && !(quick && n > 100_000) {
                        ctx.report.note(format!(
                            "park {peer} x{n}: failed at vm.max_map_count={} after about {progress} coroutines ({e}); retried with the limit raised to {needed}",
                            limit.unwrap_or(0)
                        ));
                        if map_limit.raise(needed) {
                            ctx.report
                                .put(format!("rt/park{n}-limit/{peer}"), &[progress as f64]);
                            match child(ctx, peer, "park", n, 2) {
                                Ok(v) => record_park(ctx, n, peer, &v),
                                Err((p, e)) => ctx.report.note(format!(
                                    "park {peer} x{n}: failed again after about {p} coroutines: {e}"
                                )),
                            }
                        }
                    } else {
                        ctx.report.note(format!(
                            "park {peer} x{n}: not measured: failed after about {progress} coroutines: {e}"
                        ));
                    }
                }
            }
        }
    }
    // may's spawn+join keeps every stack of the count alive at once (all are spawned before
    // any runs) and needs two mappings per stack: raise the limit for it, as root.
    let needed = 2 * scale(1_000_000) + 100_000;
    if is_root()
        && read_max_map_count().is_some_and(|l| l < needed)
        && ctx.opts.wants("may")
        && map_limit.raise(needed)
    {
        ctx.report.note(format!(
            "runtime: vm.max_map_count raised to {needed} for the timed tests: may's spawn+join of {} coroutines holds them all at once and fails at the default limit",
            scale(1_000_000)
        ));
    }
    // (key, test, n, workers, peers)
    let timed: [(&str, &str, u64, usize, &[&str]); 5] = [
        (
            "spawn",
            "spawn",
            scale(1_000_000),
            2,
            &["coronet", "go", "may", "tokio"],
        ),
        (
            "spawn-wg",
            "spawn-wg",
            scale(1_000_000),
            2,
            &["coronet", "go"],
        ),
        (
            "yield",
            "yield",
            scale(1_000_000),
            1,
            &["coronet", "go", "may", "tokio"],
        ),
        (
            "pingpong-same",
            "pingpong",
            scale(500_000),
            1,
            &["coronet", "go", "may", "tokio"],
        ),
        (
            "pingpong-cross",
            "pingpong",
            scale(200_000),
            2,
            &["coronet", "go", "may", "tokio"],
        ),
    ];
    for (key, test, n, workers, peers) in timed {
        let mut samples: Vec<(&str, Vec<f64>)> = peers.iter().map(|p| (*p, Vec::new())).collect();
        let mut failures: Vec<String> = Vec::new();
        for _ in 0..reps {
            for (peer, s) in samples.iter_mut() {
                if !ctx.opts.wants(peer) {
                    continue;
                }
                eprintln!("runtime {key} {peer} n={n} workers={workers}");
                match child(ctx, peer, test, n, workers) {
                    Ok(v) => s.extend(v.first()),
                    Err((_, e)) => failures.push(format!("{key} {peer}: {e}")),
                }
            }
        }
        for (peer, s) in samples {
            ctx.report.put(format!("rt/{key}/{peer}"), &s);
        }
        failures.dedup();
        for f in failures {
            ctx.report.note(format!("runtime: not measured: {f}"));
        }
    }

    // The floor under yield and ping-pong: the bare stack switches, no scheduler.
    if ctx.opts.wants("coronet") {
        let n = scale(10_000_000);
        let mut samples = Vec::new();
        for _ in 0..reps {
            eprintln!("runtime switch floor n={n}");
            match child(ctx, "floor", "switch", n, 1) {
                Ok(v) => samples.extend(v.first()),
                Err((_, e)) => ctx.report.note(format!("switch floor: not measured: {e}")),
            }
        }
        ctx.report
            .put("rt/switch-floor/floor".to_string(), &samples);
    }

    drop(map_limit);

    let peers = ["coronet", "go", "may", "tokio"];
    let rows = |items: &[(&str, &str)], digits| -> Vec<(String, String, usize)> {
        items
            .iter()
            .map(|(label, key)| (label.to_string(), format!("rt/{key}"), digits))
            .collect()
    };
    let mut text = format!(
        "## Runtime\n\nMedian (min–max) of {reps} runs, each in a fresh process; lower is better, so a ratio below 1 favours coronet.\n\n"
    );
    text.push_str(&peer_table(
        &ctx.report,
        &peers,
        &rows(
            &[
                (
                    "spawn+join of 1,000,000 trivial coroutines, 2 workers (ns per coroutine)",
                    "spawn",
                ),
                (
                    "the same joined by a WaitGroup, handles dropped (Go's program), 2 workers (ns per coroutine)",
                    "spawn-wg",
                ),
                ("yield, 2 coroutines on 1 worker (ns per yield)", "yield"),
                (
                    "channel ping-pong, 1 worker (ns per round trip)",
                    "pingpong-same",
                ),
                (
                    "channel ping-pong, 2 workers (ns per round trip)",
                    "pingpong-cross",
                ),
            ],
            1,
        ),
    ));
    text.push_str(
        "\nGo joins with a `sync.WaitGroup`; the others join every handle, so they hold a million handles (and coronet a million control blocks) at once, where Go's program holds none; the WaitGroup row runs Go's program in coronet (the go column is the same Go program as the row above, measured again). Channels: coronet `chan::bounded(1)`, Go `make(chan int, 1)`, may `sync::mpsc` (unbounded, may's only mpsc), tokio `mpsc::channel(1)`. One worker is GOMAXPROCS=1, may with 1 worker, tokio's current-thread runtime; two workers let each scheduler place the pair as it does (none can pin a coroutine to a worker).\n\n",
    );
    if let Some(floor) = ctx.report.get("rt/switch-floor/floor") {
        let over = |key: &str, pairs: f64| {
            ctx.report
                .get(&format!("rt/{key}/coronet"))
                .map_or("–".to_string(), |m| {
                    format!("{:.1}x", m.median / (pairs * floor.median))
                })
        };
        text.push_str(&format!(
            "The floor under yield and ping-pong: two bare corosensei coroutines resumed in turn, each suspending at once (`coronet-bench rt floor switch {} 1`, no runtime), took {:.1} ns ({:.1}–{:.1}) per resume and suspend, the two stack switches of a yield; a ping-pong round trip has two such pairs. coronet over that floor: yield {}, ping-pong on one worker {}.\n\n",
            scale(10_000_000),
            floor.median,
            floor.min,
            floor.max,
            over("yield", 1.0),
            over("pingpong-same", 2.0),
        ));
    }
    let park_n = if quick {
        [10_000, 100_000, 100_000]
    } else {
        [10_000, 100_000, 1_000_000]
    };
    let mut park_rows: Vec<(String, String, usize)> = Vec::new();
    for n in park_n {
        park_rows.push((
            format!("resident memory per parked coroutine x{n} (bytes)"),
            format!("rt/park{n}"),
            0,
        ));
    }
    park_rows.dedup();
    let n_big = park_n[2];
    park_rows.push((
        format!("time to start {n_big} parked coroutines (ms)"),
        format!("rt/park{n_big}-spawn"),
        0,
    ));
    park_rows.push((
        "coroutines reached at the machine's vm.max_map_count before failing".into(),
        "rt/park100000-limit".into(),
        0,
    ));
    text.push_str(&peer_table(
        &ctx.report,
        &["coronet", "go", "may"],
        &park_rows,
    ));
    let over_floor = |peer: &str| {
        let floor = ctx.report.get(&format!("rt/park{n_big}-floor/{peer}"))?;
        let start = ctx.report.get(&format!("rt/park{n_big}-spawn/{peer}"))?;
        Some(format!(
            "{peer} {:.0} ms over a floor of {:.0} ms ({:.2}x)",
            start.median,
            floor.median,
            start.median / floor.median
        ))
    };
    let floors: Vec<String> = ["coronet", "go"]
        .iter()
        .filter_map(|peer| over_floor(peer))
        .collect();
    if !floors.is_empty() {
        text.push_str(&format!(
            "\nThe machine's floor for the start time, measured right before each peer's run: a plain loop (`coronet-bench rt floor touch {n_big} 1`) writing once to {n_big} fresh pages, one per 128 KiB as coronet's stacks lie. Start time: {} (Go touches about 0.7 page per goroutine, coronet about 1.1).\n",
            floors.join("; "),
        ));
    }
    text.push_str(&format!(
        "\nParked: coronet and may coroutines call `park()`, goroutines wait on one channel. RSS growth over the count, one run each, 2 workers. vm.max_map_count when the run started: {} (kernel default {KERNEL_DEFAULT_MAP_COUNT}); the harness raises it, as root, only for a peer that fails below it, and puts it back.\n",
        default_limit.map_or("unknown".to_string(), |l| l.to_string())
    ));
    ctx.report.section(text);
}

fn record_park(ctx: &mut Ctx, n: u64, peer: &str, values: &[f64]) {
    if let Some(&bytes) = values.first() {
        ctx.report.put(format!("rt/park{n}/{peer}"), &[bytes]);
    }
    if let Some(&ms) = values.get(1) {
        ctx.report.put(format!("rt/park{n}-spawn/{peer}"), &[ms]);
    }
}

fn read_max_map_count() -> Option<u64> {
    std::fs::read_to_string(Path::new(MAX_MAP_COUNT))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
