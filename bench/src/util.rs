//! Measurement helpers shared by the scenarios.

use std::time::{Duration, Instant};

/// Resident set size of this process in bytes (from /proc/self/statm).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Runs `f` `reps` times and returns every duration, sorted.
pub fn repeat(reps: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    let mut all: Vec<Duration> = (0..reps).map(|_| f()).collect();
    all.sort();
    all
}

/// Median, min and max of sorted durations.
pub fn summary(sorted: &[Duration]) -> (Duration, Duration, Duration) {
    (sorted[sorted.len() / 2], sorted[0], sorted[sorted.len() - 1])
}

/// Times one call.
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Nanoseconds per operation.
pub fn per_op(total: Duration, ops: u64) -> f64 {
    total.as_nanos() as f64 / ops as f64
}
