//! coronet's benchmark harness: coronet side by side with Go, may, tokio, std threads and a
//! raw epoll loop, in one run.
//!
//! ```text
//! cargo run --release -p coronet-bench -- all          # everything, writes docs/benchmarks.md
//! cargo run --release -p coronet-bench -- all --quick  # smoke run: 1 repetition of 1 s
//! cargo run --release -p coronet-bench -- runtime|echo|http|redis [options]
//! ```
//!
//! Options: `--quick`, `--reps N`, `--secs S`, `--peers go,may,...` (coronet always runs),
//! `--out FILE`. The harness re-executes itself for every server (`serve <peer> <echo|http>
//! <addr> <workers>`) and runtime measurement (`rt <peer> <test> <n> <workers>`), so each
//! runs in a process of its own whose CPU time /proc can tell.

mod go;
mod loadgen;
mod net_scenarios;
mod redis_scenario;
mod report;
mod rt_children;
mod runtime_scenarios;
mod servers;
mod util;

use std::path::PathBuf;
use std::process::Command;

use report::{Opts, Report};

/// What every scenario needs: the options, the peers' programs, the figures so far.
pub struct Ctx {
    /// The command line's options.
    pub opts: Opts,
    /// This executable, re-run for servers and runtime children.
    pub exe: PathBuf,
    /// The Go peers' binary, when Go is installed and the build worked.
    pub go: Option<PathBuf>,
    /// The figures and notes so far.
    pub report: Report,
}

const USAGE: &str = "usage: coronet-bench <all|runtime|echo|http|redis> [--quick] [--reps N] [--secs S] [--peers a,b] [--out FILE]

scenarios:
  all       everything below; writes docs/benchmarks.md (a --quick run writes next to the binary)
  runtime   spawn+join, yield, channel ping-pong, RSS per parked coroutine
  echo      TCP echo ping-pong: 64 B at 1, 100, 1000 connections; 4 KiB at 100
  http      HTTP/1.1 hello, keep-alive, 100 connections (wrk)
  redis     RESP through redis-benchmark -P 1 and -P 16: examples/redis against redis-server

peers: coronet, coronet-pt (coronet with a dedicated poll thread), go, go-raw (HTTP), may,
       tokio, threads, epoll, redis (RESP)

for profiling one server by hand (docs/performance.md):
  serve <peer> <echo|http> <addr> <workers>        a server until killed
  loadgen <addr> <conns> <size> <secs> [<pid>]      the echo load generator alone";

/// `loadgen <addr> <conns> <size> <secs> [<server pid>]`: the echo load generator on its own,
/// against a server started by hand (for `perf` or `strace` on that server).
fn run_loadgen(args: &[String]) {
    let parsed = (|| -> Result<loadgen::EchoLoad, String> {
        let [addr, conns, size, secs, rest @ ..] = args else {
            return Err("usage: coronet-bench loadgen <addr> <conns> <size> <secs> [<pid>]".into());
        };
        let number = |s: &String, what: &str| s.parse::<u64>().map_err(|e| format!("{what}: {e}"));
        Ok(loadgen::EchoLoad {
            addr: addr.parse().map_err(|e| format!("address {addr}: {e}"))?,
            conns: number(conns, "connections")?.max(1) as usize,
            size: number(size, "message size")?.max(1) as usize,
            warmup: std::time::Duration::from_millis(500),
            duration: std::time::Duration::from_secs(number(secs, "seconds")?.max(1)),
            server_pid: match rest.first() {
                Some(pid) => number(pid, "pid")? as u32,
                None => std::process::id(),
            },
        })
    })();
    let load = parsed.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    match loadgen::run(&load) {
        Ok(r) => println!(
            "{:.0} round trips/s, p50 {:?}, p99 {:?}, server CPU {:.2} us per round trip ({:.2} us in the kernel)",
            r.per_sec(),
            r.p50,
            r.p99,
            r.cpu_us_per_op(),
            r.system_us_per_op()
        ),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("help");
    match scenario {
        "serve" => return servers::serve(&args[1..]),
        "rt" => return rt_children::run(&args[1..]),
        "loadgen" => return run_loadgen(&args[1..]),
        // The first scenario's name for the coronet parked-memory child, kept.
        "park-rss" => {
            let n = args.get(1).cloned().unwrap_or_else(|| "10000".into());
            return rt_children::run(&["coronet".into(), "park".into(), n, "2".into()]);
        }
        "all" | "runtime" | "echo" | "http" | "redis" => {}
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            return;
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
    let (opts, out) = match parse_opts(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    util::raise_nofile_limit();
    let exe = std::env::current_exe().expect("the harness's own path");
    let mut ctx = Ctx {
        opts,
        exe,
        go: None,
        report: Report::default(),
    };
    if ctx.opts.wants("go") || ctx.opts.wants("go-raw") {
        match go::build() {
            Ok(bin) => ctx.go = Some(bin),
            Err(e) => ctx.report.note(format!("Go peers dropped: {e}")),
        }
    }
    let started = std::time::Instant::now();
    let load_before = load_average();
    if matches!(scenario, "all" | "runtime") {
        wait_for_quiet_machine(&mut ctx, "runtime");
        runtime_scenarios::run(&mut ctx);
    }
    if matches!(scenario, "all" | "echo") {
        wait_for_quiet_machine(&mut ctx, "echo");
        net_scenarios::echo(&mut ctx);
    }
    if matches!(scenario, "all" | "http") {
        wait_for_quiet_machine(&mut ctx, "http");
        net_scenarios::http(&mut ctx);
    }
    if matches!(scenario, "all" | "redis") {
        redis_scenario::run(&mut ctx);
    }
    let mut goals = report::goals(&ctx.report);
    let bounds = report::throughput_bounds(&ctx.report);
    if !bounds.is_empty() {
        goals.push('\n');
        goals.push_str(&bounds);
    }
    println!("## Goals\n\n{goals}");
    let out = out.or_else(|| {
        (scenario == "all").then(|| {
            if ctx.opts.quick {
                ctx.exe.with_file_name("benchmarks-quick.md")
            } else {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../docs/benchmarks.md"
                ))
            }
        })
    });
    if let Some(path) = out {
        let load = format!("{load_before} at the start, {} at the end", load_average());
        let doc = document(&ctx, &goals, started.elapsed(), &load);
        match std::fs::write(&path, doc) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        }
    }
}

fn parse_opts(args: &[String]) -> Result<(Opts, Option<PathBuf>), String> {
    let mut opts = Opts {
        reps: 3,
        secs: 3.0,
        quick: false,
        peers: None,
        command: format!("cargo run --release -p coronet-bench -- {}", args.join(" ")),
    };
    let mut out = None;
    let mut it = args[1..].iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                opts.quick = true;
                opts.reps = 1;
                opts.secs = 1.0;
            }
            "--reps" => opts.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--secs" => opts.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--peers" => opts.peers = Some(value()?.split(',').map(str::to_string).collect()),
            "--out" => out = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if opts.reps == 0 || !(0.1..=60.0).contains(&opts.secs) {
        return Err("--reps must be at least 1 and --secs within 0.1..=60".into());
    }
    Ok((opts, out))
}

fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "not installed".into())
}

/// Before a section: waits up to a minute for the machine to be quiet (other work under 10 %
/// of all cores for 3 s in a row) and notes how long that took, or that it did not happen.
fn wait_for_quiet_machine(ctx: &mut Ctx, section: &str) {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
    const WINDOWS: u32 = 3;
    const MAX_BUSY_PERCENT: f64 = 10.0;
    eprintln!("{section}: waiting for a quiet machine");
    let wait = util::wait_for_quiet_machine(LIMIT, WINDOWS, MAX_BUSY_PERCENT);
    let waited = wait.waited.as_secs_f64();
    ctx.report.note(if wait.quiet {
        format!(
            "{section}: started after {waited:.0} s, once other work on the machine had stayed under {MAX_BUSY_PERCENT:.0} % of the cores for {WINDOWS} s in a row"
        )
    } else {
        format!(
            "{section}: started after {waited:.0} s without the machine getting quiet (other work at {:.0} % of the cores in the last second): its figures may be disturbed",
            wait.last_busy_percent
        )
    });
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows in the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The whole of docs/benchmarks.md.
fn document(ctx: &Ctx, goals: &str, took: std::time::Duration, load: &str) -> String {
    let (model, cores, kernel) = report::machine();
    let mut doc = String::new();
    doc.push_str("# Benchmarks: coronet side by side with Go, may, tokio, threads and epoll\n\n");
    doc.push_str("This file is written by the benchmark harness (bench/); do not edit it by hand, rerun it.\n\n");
    doc.push_str(&format!(
        "- date: {} (UTC)\n- command: `{}` ({} repetitions of {:.0} s per measurement; the run took {:.1} min)\n- CPU: {model}, {cores} cores\n- kernel: Linux {kernel}\n- rustc: {}\n- Go: {}\n- wrk: {}\n- load average (1, 5, 15 min): {load}\n\n",
        report::today(),
        ctx.opts.command,
        ctx.opts.reps,
        ctx.opts.secs,
        took.as_secs_f64() / 60.0,
        tool_version("rustc", "--version"),
        go::version().unwrap_or_else(|| "not installed".into()),
        tool_version("wrk", "--version"),
    ));
    doc.push_str(METHOD);
    doc.push_str("\n## Goals\n\nNever asserted, only reported. A ratio is coronet's median over the peer's. A verdict marked \"disturbed\" names an input whose median lies more than 20 % from its best repetition (the lowest time, the highest throughput): most of its repetitions met a slow stretch of the machine, so that verdict is the machine's.\n\n");
    doc.push_str(goals);
    doc.push('\n');
    for section in &ctx.report.sections {
        doc.push_str(section);
        doc.push('\n');
    }
    doc.push_str("## Notes from this run\n\n");
    if ctx.report.notes.is_empty() {
        doc.push_str("None: every measurement ran.\n");
    }
    for note in &ctx.report.notes {
        doc.push_str(&format!("- {note}\n"));
    }
    doc
}

const METHOD: &str = r#"## How to run

```sh
cargo run --release -p coronet-bench -- all            # everything (~15 min on 2 cores), rewrites this file
cargo run --release -p coronet-bench -- all --quick    # smoke run, 1 repetition of 1 s, writes target/release/benchmarks-quick.md
cargo run --release -p coronet-bench -- echo --peers go,epoll --reps 5 --secs 5
```

Needs Linux. Go (`go` on PATH, stdlib only, built offline into target/release/go-bench/), `wrk`
and `taskset`-style affinity (the harness calls sched_setaffinity itself) are used when present;
a missing tool drops its peers or scenario and says so below. Run as root to let the harness
raise `vm.max_map_count` for the parked-coroutine counts that need it (it restores the value).

## Method

- **Servers are processes.** The harness re-executes itself (`coronet-bench serve <peer>
  <echo|http> <addr> <workers>`) or runs the Go binary, so each server's CPU time is read from
  /proc/PID/stat (utime + stime, and stime alone as "of which in the kernel") at both ends of
  the measured window. On a small machine throughput says more about the machine than about
  the server: in the shared layout the load generator and the server share a core, in the
  split layout the server's one core is saturated and most of its time is the kernel's TCP
  work (see the bounds under the goals). So **server CPU per request is the honest figure**;
  throughput and latency are reported too.
- **Same conditions for every peer**: the same worker count (GOMAXPROCS for Go, worker
  threads for tokio and may, epoll threads for the epoll loop; threads has a thread per
  connection), a fresh server per measurement, peers alternating within every repetition,
  medians with min–max. Loopback only (127.0.0.1). The Rust peers (coronet, tokio, may,
  threads, epoll) are one binary built with the workspace's release profile, which has one
  codegen unit (docs/performance.md, "Measuring small differences").
- **Two layouts.** shared: servers on all cores with as many workers, the load generator
  pinned to the last core. split: the server pinned alone to core 0 with one worker, the load
  generator on the last core.
- **Echo load generator** (bench/src/loadgen.rs): one thread, edge-triggered epoll, N
  connections; each sends a message, waits for the whole echo, checks every byte (each
  message differs from the previous one), repeats. Round trips/s, p50 and p99 over the window.
- **HTTP**: wrk, one thread, 100 keep-alive connections.
- **Runtime** figures come from child processes per peer and repetition (bench/src/rt_children.rs,
  bench/go/runtime.go), each after a warm-up of a tenth of its count; the timed ones (spawn,
  yield, ping-pong, the switch floor) take a second or less each and run at least 5
  repetitions, so that one disturbed run does not move a median.

## Reading the figures

- This is a 2-core VM, and the harness may share it with other work. The load averages above
  count the harness's own runnable threads too (the threads peer runs 1,000 of them), so the
  tables carry a better gauge per measurement: other processes' CPU in percent of the machine.
  Differences within the min–max spread of two peers are noise.
- At 1,000 connections every connection waits its turn in the one load-generator thread, so
  p50 ≈ connections / throughput (Little's law): the p99 ≤ 15 ms goal needs well over 70,000
  round trips/s from a load generator on one core. The p99 there mostly measures the load
  generator; server CPU per round trip is the figure to compare.
- With 1 connection, server CPU per round trip includes the cost of going to sleep and being
  woken for every message (futex, epoll_wait), which busy servers amortise.

## Peers

| peer | what runs | source |
|---|---|---|
| coronet | a coroutine per connection, `coronet::net`, the code a user writes | bench/src/servers/coronet_peer.rs |
| go | Go 1.19 stdlib: a goroutine per connection (echo), `net/http` (HTTP) | bench/go/ |
| go-raw | Go with the same hand-written keep-alive loop as the Rust servers (HTTP only) | bench/go/servers.go |
| may | may 0.3 coroutines (echo), may_minihttp 0.1 (HTTP); both build with rustc 1.95 | bench/src/servers/may_peer.rs |
| tokio | tokio 1, multi-thread runtime, a task per connection | bench/src/servers/tokio_peer.rs |
| threads | std, a thread per connection | bench/src/servers/threads_peer.rs |
| epoll | hand-written edge-triggered epoll on libc, a thread per worker with its own SO_REUSEPORT listener: the practical ceiling | bench/src/servers/epoll_peer.rs |

No peer was dropped for failing to build. Peers that could not run in this run are listed in
the notes at the end.
"#;
