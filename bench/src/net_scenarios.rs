//! Network scenarios: TCP echo ping-pong (our load generator) and HTTP/1.1 keep-alive hello
//! (wrk), each in two layouts.
//!
//! * shared: every server gets all cores and as many workers; the load generator is pinned
//!   to the last core.
//! * split: the server is pinned alone to core 0 with one worker; the load generator to the
//!   last core.
//!
//! Each measurement starts a fresh server process (`serve ...` of this binary, or the Go
//! binary), waits until it listens, runs the load, reads the server's CPU time from
//! /proc/PID/stat around the measured window, and kills the server. Peers alternate within
//! every repetition, so a slow drift of the machine spreads over all of them.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::loadgen::{self, EchoLoad};
use crate::report::{peer_table, Report};
use crate::util::{
    children_cpu, cpu_count, foreign_share, free_addr, machine_busy, pin_current_thread,
    prepare_child, process_cpu, process_times, wait_listening, CpuTimes,
};
use crate::Ctx;

/// Where the server and the load generator run (see the module doc).
#[derive(Clone, Copy, PartialEq)]
pub enum Layout {
    Shared,
    Split,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Shared => "shared",
            Layout::Split => "split",
        }
    }

    pub fn server_workers(self) -> usize {
        match self {
            Layout::Shared => cpu_count(),
            Layout::Split => 1,
        }
    }

    /// The server's cores; `None` means all (inherited).
    pub fn server_cpus(self) -> Option<Vec<usize>> {
        match self {
            Layout::Shared => None,
            Layout::Split => Some(vec![0]),
        }
    }

    pub fn load_cpu() -> usize {
        cpu_count().saturating_sub(1)
    }
}

/// The figures of every network measurement, in the order of the samples.
const METRICS: [&str; 6] = ["rps", "p50", "p99", "cpu", "sys", "other"];

/// `coronet-pt` is coronet with the dedicated poll thread (`CORONET_POLL_THREAD=1`) instead
/// of idle workers polling: both sides of that design choice in the same run.
const ECHO_PEERS: [&str; 7] = [
    "coronet",
    "coronet-pt",
    "go",
    "may",
    "tokio",
    "threads",
    "epoll",
];
const HTTP_PEERS: [&str; 8] = [
    "coronet",
    "coronet-pt",
    "go",
    "go-raw",
    "may",
    "tokio",
    "threads",
    "epoll",
];

/// A server process under test, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(ctx: &Ctx, peer: &str, http: bool, layout: Layout) -> Result<Server, String> {
    let addr = free_addr().map_err(|e| e.to_string())?;
    let workers = layout.server_workers();
    let mut cmd = if let Some(go_peer) = peer.strip_prefix("go") {
        let go = ctx.go.as_ref().ok_or("Go is not installed")?;
        let sub = match (http, go_peer) {
            (false, "") => "echo",
            (true, "") => "http",
            (true, "-raw") => "httpraw",
            _ => return Err(format!("no Go peer {peer}")),
        };
        let mut cmd = Command::new(go);
        cmd.args([sub, &addr.to_string()])
            .env("GOMAXPROCS", workers.to_string());
        cmd
    } else {
        let mut cmd = Command::new(&ctx.exe);
        let kind = if http { "http" } else { "echo" };
        let served = if peer == "coronet-pt" {
            cmd.env("CORONET_POLL_THREAD", "1");
            "coronet"
        } else {
            cmd.env_remove("CORONET_POLL_THREAD");
            peer
        };
        cmd.args([
            "serve",
            served,
            kind,
            &addr.to_string(),
            &workers.to_string(),
        ]);
        cmd
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    prepare_child(&mut cmd, layout.server_cpus());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {peer}: {e}"))?;
    let mut server = Server { child, addr };
    if let Err(e) = wait_listening(addr, Duration::from_secs(10)) {
        let status = server.child.try_wait().ok().flatten();
        return Err(format!(
            "{peer} did not listen ({e}; exit status {status:?})"
        ));
    }
    Ok(server)
}

impl Server {
    /// Fails when the server died during the run (a crash must not pass as a figure).
    pub fn check_alive(&mut self, peer: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{peer} server exited during the run: {status}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One echo run on a thread pinned to the load core.
fn echo_once(
    ctx: &Ctx,
    peer: &str,
    layout: Layout,
    conns: usize,
    size: usize,
) -> Result<loadgen::EchoResult, String> {
    let mut server = start_server(ctx, peer, false, layout)?;
    let load = EchoLoad {
        addr: server.addr,
        conns,
        size,
        warmup: Duration::from_millis(300),
        duration: ctx.opts.duration(),
        server_pid: server.child.id(),
    };
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            pin_current_thread(&[Layout::load_cpu()]).map_err(|e| e.to_string())?;
            loadgen::run(&load).map_err(|e| e.to_string())
        })
        .join()
        .map_err(|_| "load generator panicked".to_string())?
    });
    server.check_alive(peer)?;
    result.map_err(|e| format!("{peer}: {e}"))
}

pub fn echo(ctx: &mut Ctx) {
    let configs: [(usize, usize); 4] = [(64, 1), (64, 100), (64, 1000), (4096, 100)];
    let peers: Vec<&str> = ECHO_PEERS
        .iter()
        .copied()
        .filter(|p| ctx.opts.wants(p))
        .collect();
    let mut text = format!(
        "## TCP echo ping-pong\n\nEach connection sends a message, waits for the whole echo (every byte checked) and sends the next. Median (min–max) of {} runs of {:.0} s per peer, after a warm-up in which every connection completes a round trip. Throughput: higher is better; latency and server CPU per round trip: lower is better. Server CPU is user+system time from /proc/PID/stat over the window, divided by the round trips; \"of which in the kernel\" is its system time alone. \"Other processes' CPU\" is the machine's busy time (/proc/stat) minus the server's and the harness's over the window, in percent of all cores: where it is high, other work disturbed that figure (it also counts kernel threads such as ksoftirqd doing loopback work for the benchmark, so a few percent is normal).\n",
        ctx.opts.reps, ctx.opts.secs
    );
    for layout in [Layout::Shared, Layout::Split] {
        let mut rows = Vec::new();
        for (size, conns) in configs {
            let label = format!("{} x{conns}", if size == 64 { "64 B" } else { "4 KiB" });
            let base = format!("echo/{}/{label}", layout.name());
            let mut samples: Vec<[Vec<f64>; 6]> = vec![Default::default(); peers.len()];
            for rep in 0..ctx.opts.reps {
                for (i, peer) in peers.iter().enumerate() {
                    eprintln!("echo {} {label} {peer} rep {}", layout.name(), rep + 1);
                    match echo_once(ctx, peer, layout, conns, size) {
                        Ok(r) => {
                            samples[i][0].push(r.per_sec());
                            samples[i][1].push(r.p50.as_secs_f64() * 1e6);
                            samples[i][2].push(r.p99.as_secs_f64() * 1e6);
                            samples[i][3].push(r.cpu_us_per_op());
                            samples[i][4].push(r.system_us_per_op());
                            samples[i][5].push(r.foreign);
                        }
                        Err(e) => ctx
                            .report
                            .note(format!("echo {} {label}: not measured: {e}", layout.name())),
                    }
                }
            }
            for (i, peer) in peers.iter().enumerate() {
                for (m, metric) in METRICS.iter().enumerate() {
                    ctx.report
                        .put(format!("{base}/{metric}/{peer}"), &samples[i][m]);
                }
            }
            rows.push((format!("{label}: round trips/s"), format!("{base}/rps"), 0));
            rows.push((
                format!("{label}: p50 latency (µs)"),
                format!("{base}/p50"),
                0,
            ));
            rows.push((
                format!("{label}: p99 latency (µs)"),
                format!("{base}/p99"),
                0,
            ));
            rows.push((
                format!("{label}: server CPU per round trip (µs)"),
                format!("{base}/cpu"),
                2,
            ));
            rows.push((
                format!("{label}: of which in the kernel (µs)"),
                format!("{base}/sys"),
                2,
            ));
            rows.push((
                format!("{label}: other processes' CPU (% of the machine)"),
                format!("{base}/other"),
                0,
            ));
        }
        text.push_str(&layout_section(&ctx.report, layout, &peers, &rows));
    }
    text.push_str("\nthreads: a thread per connection, so the worker count does not apply to it (the split layout still pins all its threads to one core).\n");
    ctx.report.section(text);
}

/// One layout's part of a scenario's section: its heading and the peers' table.
pub fn layout_section(
    report: &Report,
    layout: Layout,
    peers: &[&str],
    rows: &[(String, String, usize)],
) -> String {
    format!(
        "\n### {} layout ({})\n\n{}",
        layout.name(),
        layout_text(layout),
        peer_table(report, peers, rows)
    )
}

fn layout_text(layout: Layout) -> String {
    match layout {
        Layout::Shared => format!(
            "servers on all {} cores with {} workers, load generator pinned to core {}",
            cpu_count(),
            cpu_count(),
            Layout::load_cpu()
        ),
        Layout::Split => format!(
            "server pinned to core 0 with 1 worker, load generator pinned to core {}",
            Layout::load_cpu()
        ),
    }
}

/// What one wrk run measured.
struct WrkResult {
    requests: u64,
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    /// The part of `cpu_us_per_req` in the kernel (system time).
    sys_us_per_req: f64,
    foreign: f64,
}

/// Parses "1.23ms", "456.00us", "2.00s" into microseconds.
fn parse_wrk_time(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix("m") {
        (v, 60e6)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale)
}

fn parse_wrk(out: &str) -> Result<(u64, f64, f64, f64), String> {
    let mut requests = None;
    let mut per_sec = None;
    let mut p50 = None;
    let mut p99 = None;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Requests/sec:", v] => per_sec = v.parse().ok(),
            ["50%", v] => p50 = parse_wrk_time(v),
            ["99%", v] => p99 = parse_wrk_time(v),
            _ => {}
        }
        if line.contains("Non-2xx") || line.contains("Socket errors") {
            return Err(format!("wrk reported errors: {}", line.trim()));
        }
    }
    match (requests, per_sec, p50, p99) {
        (Some(r), Some(s), Some(a), Some(b)) => Ok((r, s, a, b)),
        _ => Err(format!("cannot parse wrk output: {}", out.trim())),
    }
}

fn http_once(ctx: &Ctx, peer: &str, layout: Layout) -> Result<WrkResult, String> {
    let mut server = start_server(ctx, peer, true, layout)?;
    let pid = server.child.id();
    let secs = ctx.opts.secs.ceil().max(1.0) as u64;
    let mut wrk = Command::new("wrk");
    wrk.args(["-t1", "-c100", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://{}/", server.addr))
        .stdin(Stdio::null());
    prepare_child(&mut wrk, Some(vec![Layout::load_cpu()]));
    let readings = || -> Result<(CpuTimes, [Duration; 3]), String> {
        Ok((
            process_times(pid).map_err(|e| e.to_string())?,
            [
                machine_busy().map_err(|e| e.to_string())?,
                process_cpu(std::process::id()).map_err(|e| e.to_string())?,
                children_cpu(),
            ],
        ))
    };
    let before = readings()?;
    let started = Instant::now();
    // wrk is the only child waited for in between, so the children's CPU delta is wrk's.
    let output = wrk.output().map_err(|e| format!("wrk: {e}"))?;
    let elapsed = started.elapsed();
    let after = readings()?;
    let server_times = after.0.since(before.0);
    let delta = |i: usize| after.1[i].saturating_sub(before.1[i]);
    let ours = server_times.total() + delta(1) + delta(2);
    let foreign = foreign_share(delta(0), ours, elapsed);
    server.check_alive(peer)?;
    if elapsed > Duration::from_secs(secs + 30) {
        return Err("wrk ran far longer than asked".into());
    }
    let out = String::from_utf8_lossy(&output.stdout);
    let (requests, per_sec, p50_us, p99_us) =
        parse_wrk(&out).map_err(|e| format!("{peer}: {e}"))?;
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
    Ok(WrkResult {
        requests,
        per_sec,
        p50_us,
        p99_us,
        cpu_us_per_req: per_request(server_times.total()),
        sys_us_per_req: per_request(server_times.system),
        foreign,
    })
}

pub fn http(ctx: &mut Ctx) {
    let wrk_ok = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !wrk_ok {
        ctx.report
            .note("HTTP: not measured: wrk is not installed".into());
        ctx.report.section(
            "## HTTP/1.1 hello, keep-alive\n\nNot measured: `wrk` is not installed.\n".into(),
        );
        return;
    }
    let peers: Vec<&str> = HTTP_PEERS
        .iter()
        .copied()
        .filter(|p| ctx.opts.wants(p))
        .collect();
    let secs = ctx.opts.secs.ceil().max(1.0);
    let mut text = format!(
        "## HTTP/1.1 \"Hello, World!\", keep-alive, 100 connections\n\n`wrk -t1 -c100 -d{secs:.0}s --latency`, pinned to the load core. Median (min–max) of {} runs. go = Go net/http; go-raw = Go with the same hand loop as the Rust servers; may = may_minihttp; coronet, tokio, threads and epoll answer each request found by its \"\\r\\n\\r\\n\" with one fixed response.\n",
        ctx.opts.reps
    );
    for layout in [Layout::Shared, Layout::Split] {
        let base = format!("http/{}", layout.name());
        let mut samples: Vec<[Vec<f64>; 6]> = vec![Default::default(); peers.len()];
        for rep in 0..ctx.opts.reps {
            for (i, peer) in peers.iter().enumerate() {
                eprintln!("http {} {peer} rep {}", layout.name(), rep + 1);
                match http_once(ctx, peer, layout) {
                    Ok(r) if r.requests > 0 => {
                        samples[i][0].push(r.per_sec);
                        samples[i][1].push(r.p50_us);
                        samples[i][2].push(r.p99_us);
                        samples[i][3].push(r.cpu_us_per_req);
                        samples[i][4].push(r.sys_us_per_req);
                        samples[i][5].push(r.foreign);
                    }
                    Ok(_) => ctx.report.note(format!(
                        "http {}: {peer} answered no request",
                        layout.name()
                    )),
                    Err(e) => ctx
                        .report
                        .note(format!("http {}: not measured: {e}", layout.name())),
                }
            }
        }
        for (i, peer) in peers.iter().enumerate() {
            for (m, metric) in METRICS.iter().enumerate() {
                ctx.report
                    .put(format!("{base}/{metric}/{peer}"), &samples[i][m]);
            }
        }
        let rows = vec![
            ("requests/s".to_string(), format!("{base}/rps"), 0),
            ("p50 latency (µs)".to_string(), format!("{base}/p50"), 0),
            ("p99 latency (µs)".to_string(), format!("{base}/p99"), 0),
            (
                "server CPU per request (µs)".to_string(),
                format!("{base}/cpu"),
                2,
            ),
            (
                "of which in the kernel (µs)".to_string(),
                format!("{base}/sys"),
                2,
            ),
            (
                "other processes' CPU (% of the machine)".to_string(),
                format!("{base}/other"),
                0,
            ),
        ];
        text.push_str(&layout_section(&ctx.report, layout, &peers, &rows));
    }
    ctx.report.section(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 100 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.00ms  200.00us   5.00ms   90.00%\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    2.50ms\n  95000 requests in 1.00s, 10.00MB read\nRequests/sec:  95000.00\nTransfer/sec:     10.00MB\n";
        let (r, s, p50, p99) = parse_wrk(out).unwrap();
        assert_eq!(r, 95000);
        assert_eq!(s, 95000.0);
        assert!((p50 - 812.0).abs() < 1e-9);
        assert!((p99 - 2500.0).abs() < 1e-9);
    }
}
