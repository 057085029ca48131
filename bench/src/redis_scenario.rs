//! RESP through `redis-benchmark`: coronet's redis example (examples/redis) against a real
//! `redis-server` as the reference, with pipelining off (`-P 1`) and on (`-P 16`).
//!
//! Both servers are started fresh per measurement, in the layouts of the other network
//! scenarios (net_scenarios.rs): shared (all cores; coronet with as many workers, Redis as it
//! is: single-threaded) and split (the server pinned to core 0, coronet with one worker).
//! `redis-benchmark` runs pinned to the load core with 50 connections and the tests
//! `ping,set,get,incr,mset`; its CSV gives requests/s and p50/p99 per test, /proc gives the
//! server's CPU time over the run. Any error reply or failed test is a failed measurement.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net_scenarios::{layout_section, Layout, Server};
use crate::util::{free_addr, prepare_child, process_cpu, wait_listening};
use crate::Ctx;

const PEERS: [&str; 2] = ["coronet", "redis"];
const TESTS: [&str; 5] = ["PING_INLINE", "SET", "GET", "INCR", "MSET (10 keys)"];
const CLIENTS: &str = "50";

/// One redis-benchmark run: per test, requests/s and p50/p99 in µs; and the server's CPU
/// time per request over all tests.
struct RespResult {
    per_test: Vec<(String, f64, f64, f64)>,
    cpu_us_per_req: f64,
}

fn tool_works(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The example's binary next to the harness (target/release/examples/redis), built with
/// cargo if it is not there yet.
fn coronet_redis(ctx: &Ctx) -> Result<PathBuf, String> {
    let dir = ctx.exe.parent().ok_or("the harness has no directory")?;
    let bin = dir.join("examples").join("redis");
    if bin.exists() {
        return Ok(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!("redis: building the redis example (cargo build --release --example redis)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--example",
            "redis",
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .map_err(|e| format!("cannot run cargo to build the redis example: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!("building the redis example failed ({status})"));
    }
    Ok(bin)
}

fn start(bin: &Path, peer: &str, layout: Layout) -> Result<Server, String> {
    let addr = free_addr().map_err(|e| e.to_string())?;
    let mut cmd = if peer == "redis" {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"]);
        cmd
    } else {
        let mut cmd = Command::new(bin);
        cmd.args(["--addr", &addr.to_string()])
            .args(["--workers", &layout.server_workers().to_string()]);
        cmd
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    prepare_child(&mut cmd, layout.server_cpus());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {peer}: {e}"))?;
    let server = Server { child, addr };
    wait_listening(addr, Duration::from_secs(10)).map_err(|e| format!("{peer}: {e}"))?;
    Ok(server)
}

/// Parses redis-benchmark's `--csv` output: a header line, then one line per test:
/// `"SET","123456.79","0.250","0.080","0.239","0.351","0.479","1.559"` (rps, avg, min, p50,
/// p95, p99, max; latencies in ms).
fn parse_csv(out: &str) -> Result<Vec<(String, f64, f64, f64)>, String> {
    let mut rows = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if fields.len() < 7 || fields[0] == "test" {
            continue;
        }
        let number = |i: usize| {
            fields[i]
                .parse::<f64>()
                .map_err(|_| format!("bad number {:?} in {line:?}", fields[i]))
        };
        rows.push((
            fields[0].to_string(),
            number(1)?,
            number(4)? * 1e3,
            number(6)? * 1e3,
        ));
    }
    for test in TESTS {
        if !rows.iter().any(|(name, ..)| name == test) {
            return Err(format!("redis-benchmark reported no {test} result"));
        }
    }
    Ok(rows)
}

fn resp_once(
    bin: &Path,
    peer: &str,
    layout: Layout,
    pipeline: usize,
    requests: usize,
) -> Result<RespResult, String> {
    let mut server = start(bin, peer, layout)?;
    let pid = server.child.id();
    let mut bench = Command::new("redis-benchmark");
    bench
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(["-c", CLIENTS, "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string()])
        .args(["-t", "ping,set,get,incr,mset", "--csv"])
        .stdin(Stdio::null());
    prepare_child(&mut bench, Some(vec![Layout::load_cpu()]));
    let before = process_cpu(pid).map_err(|e| e.to_string())?;
    let output = bench
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let cpu = process_cpu(pid)
        .map_err(|e| e.to_string())?
        .saturating_sub(before);
    server.check_alive(peer)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.to_lowercase().contains("error") {
        return Err(format!(
            "{peer}: redis-benchmark failed ({}): {}",
            output.status,
            stderr.trim()
        ));
    }
    let per_test = parse_csv(&String::from_utf8_lossy(&output.stdout))?;
    let total = (requests * TESTS.len()) as f64;
    Ok(RespResult {
        per_test,
        cpu_us_per_req: cpu.as_secs_f64() * 1e6 / total,
    })
}

pub fn run(ctx: &mut Ctx) {
    let heading = "## RESP (redis-benchmark): the redis example against redis-server\n\n";
    let missing: Vec<&str> = ["redis-benchmark", "redis-server"]
        .into_iter()
        .filter(|tool| !tool_works(tool))
        .collect();
    if !missing.is_empty() {
        let what = missing.join(" and ");
        ctx.report.note(format!(
            "RESP: not measured: {what} not installed (Debian: apt-get install redis-tools redis-server)"
        ));
        ctx.report
            .section(format!("{heading}Not measured: {what} not installed.\n"));
        return;
    }
    let bin = match coronet_redis(ctx) {
        Ok(bin) => bin,
        Err(e) => {
            ctx.report.note(format!("RESP: not measured: {e}"));
            ctx.report.section(format!("{heading}Not measured: {e}.\n"));
            return;
        }
    };
    let peers: Vec<&str> = PEERS
        .iter()
        .copied()
        .filter(|p| ctx.opts.wants(p))
        .collect();
    // redis-benchmark is count-based: about `secs` seconds per test at the rates seen here.
    let scale = ctx.opts.secs / 3.0;
    let mut text = format!(
        "{heading}`redis-benchmark -c {CLIENTS} -t ping,set,get,incr,mset -P 1|16 --csv`, pinned to the load core; the server fresh per run. coronet = `examples/redis` (one coroutine per connection); redis = redis-server 7 (`--save \"\" --appendonly no`), single-threaded as Redis is. Median (min–max) of {} runs. Server CPU per request is over all five tests. Any error reply fails the run (none did unless noted below).\n",
        ctx.opts.reps
    );
    for layout in [Layout::Shared, Layout::Split] {
        let mut rows = Vec::new();
        for pipeline in [1usize, 16] {
            let requests = ((if pipeline == 1 { 100_000.0 } else { 500_000.0 }) * scale) as usize;
            let base = format!("resp/{}/P{pipeline}", layout.name());
            let mut rps: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); TESTS.len()]; peers.len()];
            let mut p99: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); TESTS.len()]; peers.len()];
            let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
            for rep in 0..ctx.opts.reps {
                for (i, peer) in peers.iter().enumerate() {
                    eprintln!("resp {} P{pipeline} {peer} rep {}", layout.name(), rep + 1);
                    match resp_once(&bin, peer, layout, pipeline, requests.max(1000)) {
                        Ok(r) => {
                            for (t, test) in TESTS.iter().enumerate() {
                                if let Some((_, s, _, q)) =
                                    r.per_test.iter().find(|(name, ..)| name == test)
                                {
                                    rps[i][t].push(*s);
                                    p99[i][t].push(*q);
                                }
                            }
                            cpu[i].push(r.cpu_us_per_req);
                        }
                        Err(e) => ctx.report.note(format!(
                            "resp {} P{pipeline}: not measured: {e}",
                            layout.name()
                        )),
                    }
                }
            }
            for (i, peer) in peers.iter().enumerate() {
                for (t, test) in TESTS.iter().enumerate() {
                    let key = test.split_whitespace().next().unwrap_or(test);
                    ctx.report
                        .put(format!("{base}/{key}-rps/{peer}"), &rps[i][t]);
                    ctx.report
                        .put(format!("{base}/{key}-p99/{peer}"), &p99[i][t]);
                }
                ctx.report.put(format!("{base}/cpu/{peer}"), &cpu[i]);
            }
            for test in TESTS {
                let key = test.split_whitespace().next().unwrap_or(test);
                rows.push((
                    format!("-P {pipeline} {test}: requests/s"),
                    format!("{base}/{key}-rps"),
                    0,
                ));
            }
            rows.push((
                format!("-P {pipeline} SET: p99 latency (µs)"),
                format!("{base}/SET-p99"),
                0,
            ));
            rows.push((
                format!("-P {pipeline}: server CPU per request (µs)"),
                format!("{base}/cpu"),
                3,
            ));
        }
        text.push_str(&layout_section(&ctx.report, layout, &peers, &rows));
    }
    ctx.report.section(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"PING_INLINE\",\"90909.09\",\"0.300\",\"0.100\",\"0.287\",\"0.447\",\"0.591\",\"1.703\"\n\"SET\",\"80000.00\",\"0.350\",\"0.100\",\"0.311\",\"0.500\",\"0.700\",\"2.000\"\n\"GET\",\"85000.00\",\"0.3\",\"0.1\",\"0.3\",\"0.4\",\"0.6\",\"1.0\"\n\"INCR\",\"86000.00\",\"0.3\",\"0.1\",\"0.3\",\"0.4\",\"0.6\",\"1.0\"\n\"MSET (10 keys)\",\"50000.00\",\"0.9\",\"0.2\",\"0.8\",\"1.2\",\"1.5\",\"3.0\"\n";
        let rows = parse_csv(out).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1].0, "SET");
        assert_eq!(rows[1].1, 80000.0);
        assert!((rows[1].2 - 311.0).abs() < 1e-6);
        assert!((rows[1].3 - 700.0).abs() < 1e-6);
        assert!(parse_csv("\"test\",\"rps\"\n").is_err());
    }
}
