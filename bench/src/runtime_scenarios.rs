//! Runtime scenarios: spawn+join, yield round trip, resident memory per parked coroutine.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coronet::runtime::Builder;

use crate::util::{per_op, repeat, rss_bytes, summary, time};

const REPS: usize = 3;

pub fn run(_args: &[String]) {
    println!("| scenario | median | min | max |");
    println!("|---|---|---|---|");
    spawn_join(1_000_000);
    yield_round_trip(1_000_000);
    for n in [10_000usize, 100_000] {
        parked_rss(n);
    }
}

fn row(name: &str, sorted: &[Duration], ops: u64, unit: &str) {
    let (median, min, max) = summary(sorted);
    println!(
        "| {name} | {:.1} {unit} | {:.1} {unit} | {:.1} {unit} |",
        per_op(median, ops),
        per_op(min, ops),
        per_op(max, ops)
    );
}

/// Spawn `n` trivial coroutines from one coroutine and join them all, per coroutine.
fn spawn_join(n: u64) {
    let rt = Builder::new().build().unwrap();
    let samples = repeat(REPS, || {
        rt.block_on(move || {
            time(|| {
                let handles: Vec<_> = (0..n).map(|i| coronet::spawn(move || i)).collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.join().unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
            })
        })
    });
    row(&format!("spawn+join x{n} (ns/coroutine)"), &samples, n, "ns");
}

/// Two coroutines on one worker yield to each other; time per `yield_now`.
fn yield_round_trip(n: u64) {
    let rt = Builder::new().workers(1).build().unwrap();
    let samples = repeat(REPS, || {
        rt.block_on(move || {
            time(|| {
                let other = coronet::spawn(move || {
                    for _ in 0..n {
                        coronet::yield_now();
                    }
                });
                for _ in 0..n {
                    coronet::yield_now();
                }
                other.join().unwrap();
            })
        })
    });
    row("yield_now, 2 coroutines on 1 worker (ns/yield)", &samples, 2 * n, "ns");
}

/// Resident memory per parked coroutine, measured in a child process so each count starts
/// from a fresh heap and stack pool.
fn parked_rss(n: usize) {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["park-rss", &n.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.trim().parse::<f64>() {
        Ok(bytes) => println!(
            "| resident memory per parked coroutine x{n} | {:.2} KiB | | |",
            bytes / 1024.0
        ),
        Err(_) => println!(
            "| resident memory per parked coroutine x{n} | failed: {} | | |",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// Child: park `n` coroutines and print the RSS growth per coroutine in bytes.
pub fn park_rss_child(args: &[String]) {
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rt = Builder::new().workers(2).build().unwrap();
    // Warm up the runtime's threads and allocator.
    rt.block_on(|| coronet::spawn(|| ()).join().unwrap());
    let before = rss_bytes();
    let parked = Arc::new(AtomicUsize::new(0));
    let result = rt.block_on({
        let parked = parked.clone();
        move || {
            for _ in 0..n {
                let parked = parked.clone();
                coronet::coroutine::Builder::new().spawn(move || {
                    parked.fetch_add(1, Ordering::Relaxed);
                    loop {
                        coronet::park();
                    }
                })?;
            }
            Ok::<_, std::io::Error>(())
        }
    });
    if let Err(e) = result {
        eprintln!("spawn failed after {} coroutines: {e}", parked.load(Ordering::Relaxed));
        std::process::exit(1);
    }
    while parked.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = rss_bytes();
    println!("{}", (after.saturating_sub(before)) as f64 / n as f64);
    std::process::exit(0);
}
