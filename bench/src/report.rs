//! The run's options, the figures every scenario records, and the markdown they become:
//! tables with coronet's ratio to each peer, the goals with PASS/MISS, the machine, the
//! command.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::util::Measure;

/// Options of one harness run.
#[derive(Clone, Debug)]
pub struct Opts {
    pub reps: usize,
    pub secs: f64,
    pub quick: bool,
    /// Only these peers, when given.
    pub peers: Option<Vec<String>>,
    /// The command line, as reported.
    pub command: String,
}

impl Opts {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }

    pub fn wants(&self, peer: &str) -> bool {
        match &self.peers {
            None => true,
            Some(p) => peer == "coronet" || p.iter().any(|x| x == peer),
        }
    }
}

/// Everything measured so far.
#[derive(Default)]
pub struct Report {
    /// Markdown sections in the order they were produced.
    pub sections: Vec<String>,
    /// Figures by key, e.g. `echo/shared/64B x100/coronet/rps`.
    pub figures: BTreeMap<String, Measure>,
    /// Notes: dropped peers, failures, limits met.
    pub notes: Vec<String>,
}

impl Report {
    pub fn put(&mut self, key: String, samples: &[f64]) {
        if let Some(m) = Measure::of(samples) {
            self.figures.insert(key, m);
        }
    }

    pub fn get(&self, key: &str) -> Option<Measure> {
        self.figures.get(key).copied()
    }

    pub fn note(&mut self, note: String) {
        eprintln!("note: {note}");
        self.notes.push(note);
    }

    pub fn section(&mut self, text: String) {
        println!("{text}");
        self.sections.push(text);
    }
}

/// coronet's median divided by the peer's, as "0.52x".
pub fn ratio(coronet: Option<Measure>, peer: Option<Measure>) -> String {
    match (coronet, peer) {
        (Some(c), Some(p)) if p.median > 0.0 => format!("{:.2}x", c.median / p.median),
        _ => "–".to_string(),
    }
}

/// A table of one figure per row and peer, with coronet's ratio to each peer.
/// `rows` are (label, key prefix, digits); the key of a cell is `{prefix}/{peer}`.
pub fn peer_table(report: &Report, peers: &[&str], rows: &[(String, String, usize)]) -> String {
    let others: Vec<&str> = peers.iter().copied().filter(|p| *p != "coronet").collect();
    let mut s = String::from("| measurement |");
    for p in peers {
        let _ = write!(s, " {p} |");
    }
    for p in &others {
        let _ = write!(s, " coronet / {p} |");
    }
    s.push_str("\n|---|");
    for _ in 0..peers.len() + others.len() {
        s.push_str("---|");
    }
    s.push('\n');
    for (label, prefix, digits) in rows {
        let _ = write!(s, "| {label} |");
        for p in peers {
            let cell = report
                .get(&format!("{prefix}/{p}"))
                .map_or("–".to_string(), |m| m.cell(*digits));
            let _ = write!(s, " {cell} |");
        }
        let c = report.get(&format!("{prefix}/coronet"));
        for p in &others {
            // Context rows (other processes' CPU) are not compared.
            let cell = if prefix.ends_with("/other") {
                String::new()
            } else {
                ratio(c, report.get(&format!("{prefix}/{p}")))
            };
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    s
}

/// One goal: a ratio (or a value) against its limit.
struct Goal {
    what: String,
    value: Option<f64>,
    limit: f64,
    /// true: PASS when value >= limit; false: PASS when value <= limit.
    at_least: bool,
    unit: &'static str,
    /// The ratio's inputs whose median a disturbed machine moved ([`disturbed`]), as
    /// "who min–max", printed beside the verdict.
    disturbed: Vec<String>,
}

impl Goal {
    /// coronet's median at `coronet_key` over the peer's at `peer_key`. Higher is better
    /// exactly when the goal is a floor (`at_least`): throughput; times and CPU are ceilings.
    fn ratio(
        report: &Report,
        what: String,
        (coronet_key, peer_key, peer): (&str, &str, &str),
        limit: f64,
        at_least: bool,
    ) -> Goal {
        let disturbed = [("coronet", coronet_key), (peer, peer_key)]
            .into_iter()
            .filter_map(|(who, key)| {
                let m = report.get(key)?;
                disturbed(m, at_least).then(|| format!("{who} {}–{}", figure(m.min), figure(m.max)))
            })
            .collect();
        Goal {
            what,
            value: ratio_of(report, coronet_key, peer_key),
            limit,
            at_least,
            unit: "x",
            disturbed,
        }
    }
}

fn ratio_of(report: &Report, a: &str, b: &str) -> Option<f64> {
    let (a, b) = (report.get(a)?, report.get(b)?);
    (b.median > 0.0).then(|| a.median / b.median)
}

/// A figure as the tables print it: whole numbers from 100 up (throughput, nanoseconds),
/// two decimals below (microseconds, ratios).
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Whether most repetitions of a measurement lie more than 20 % from its best one (the
/// lowest time, or the highest throughput when `higher_is_better`): then the median measures
/// a slow stretch of the machine, not the code. One slow repetition does not count; the
/// median is robust to it.
fn disturbed(m: Measure, higher_is_better: bool) -> bool {
    const SPREAD: f64 = 1.2;
    if higher_is_better {
        m.median > 0.0 && m.max / m.median > SPREAD
    } else {
        m.min > 0.0 && m.median / m.min > SPREAD
    }
}

/// The echo throughput goals: coronet's round trips/s at least this many times each peer's.
const THROUGHPUT_GOALS: [(&str, f64); 3] = [("go", 1.3), ("may", 1.2), ("tokio", 1.1)];

/// The goals, each with its measured value and PASS/MISS. Never asserted.
pub fn goals(report: &Report) -> String {
    let mut goals = Vec::new();
    for layout in ["shared", "split"] {
        for conns in [100, 1000] {
            let base = format!("echo/{layout}/64 B x{conns}");
            for (peer, limit) in THROUGHPUT_GOALS {
                goals.push(Goal::ratio(
                    report,
                    format!("echo 64 B x{conns} ({layout}): throughput coronet / {peer}"),
                    (
                        &format!("{base}/rps/coronet"),
                        &format!("{base}/rps/{peer}"),
                        peer,
                    ),
                    limit,
                    true,
                ));
            }
            goals.push(Goal::ratio(
                report,
                format!("echo 64 B x{conns} ({layout}): server CPU per round trip coronet / epoll"),
                (
                    &format!("{base}/cpu/coronet"),
                    &format!("{base}/cpu/epoll"),
                    "epoll",
                ),
                1.05,
                false,
            ));
        }
    }
    goals.push(Goal {
        what: "echo 64 B x1000, one worker (split): coronet p99".into(),
        value: report
            .get("echo/split/64 B x1000/p99/coronet")
            .map(|m| m.median / 1000.0),
        limit: 15.0,
        at_least: false,
        unit: " ms",
        disturbed: Vec::new(),
    });
    for layout in ["shared", "split"] {
        goals.push(Goal::ratio(
            report,
            format!("HTTP hello x100 ({layout}): server CPU per request coronet / tokio"),
            (
                &format!("http/{layout}/cpu/coronet"),
                &format!("http/{layout}/cpu/tokio"),
                "tokio",
            ),
            1.0,
            false,
        ));
    }
    for (key, what) in [
        ("rt/spawn", "spawn+join time per coroutine coronet / Go"),
        ("rt/yield", "yield time coronet / Go"),
        (
            "rt/pingpong-same",
            "channel ping-pong, same worker, coronet / Go",
        ),
        (
            "rt/pingpong-cross",
            "channel ping-pong, 2 workers, coronet / Go",
        ),
    ] {
        goals.push(Goal::ratio(
            report,
            what.into(),
            (&format!("{key}/coronet"), &format!("{key}/go"), "go"),
            0.5,
            false,
        ));
    }
    for n in ["100000", "1000000"] {
        goals.push(Goal {
            what: format!("resident memory per parked coroutine x{n}"),
            value: report
                .get(&format!("rt/park{n}/coronet"))
                .map(|m| m.median / 1024.0),
            limit: 4.5,
            at_least: false,
            unit: " KiB",
            disturbed: Vec::new(),
        });
    }
    goals.push(Goal {
        what: "time to spawn 1,000,000 parked coroutines".into(),
        value: report
            .get("rt/park1000000-spawn/coronet")
            .map(|m| m.median / 1000.0),
        limit: 2.0,
        at_least: false,
        unit: " s",
        disturbed: Vec::new(),
    });

    let mut s = String::from("| goal | limit | measured | verdict |\n|---|---|---|---|\n");
    for g in goals {
        let limit = format!(
            "{} {:.2}{}",
            if g.at_least { "≥" } else { "≤" },
            g.limit,
            g.unit
        );
        let (value, verdict) = match g.value {
            None => ("not measured".to_string(), "–".to_string()),
            Some(v) => {
                let pass = if g.at_least {
                    v >= g.limit
                } else {
                    v <= g.limit
                };
                let verdict = if pass {
                    "PASS".to_string()
                } else {
                    let by = if g.at_least {
                        (1.0 - v / g.limit) * 100.0
                    } else {
                        (v / g.limit - 1.0) * 100.0
                    };
                    // A miss under 1 % keeps a decimal: "by 0%" would read as a pass.
                    let decimals = if by < 1.0 { 1 } else { 0 };
                    format!("MISS (by {by:.decimals$}%)")
                };
                (format!("{v:.2}{}", g.unit), verdict)
            }
        };
        let verdict = if g.disturbed.is_empty() || g.value.is_none() {
            verdict
        } else {
            format!("{verdict}, disturbed: {}", g.disturbed.join("; "))
        };
        let _ = writeln!(s, "| {} | {limit} | {value} | {verdict} |", g.what);
    }
    s
}

/// What the split layout's echo figures say about the throughput goals: the server's one core
/// is saturated there, so throughput is the inverse of CPU per round trip, and coronet's
/// throughput over a peer's can reach at most the peer's CPU per round trip over coronet's
/// kernel time per round trip (the ratio with no user-space time at all). Empty when the
/// split layout was not measured.
pub fn throughput_bounds(report: &Report) -> String {
    const CONNS: [u32; 2] = [100, 1000];
    let median = |key: String| report.get(&key).map(|m| m.median);
    let base = |conns: u32| format!("echo/split/64 B x{conns}");
    let mut busy = Vec::new();
    for conns in CONNS {
        let (Some(cpu), Some(rps)) = (
            median(format!("{}/cpu/coronet", base(conns))),
            median(format!("{}/rps/coronet", base(conns))),
        ) else {
            return String::new();
        };
        busy.push(format!("{:.2} of the core at x{conns}", cpu * rps / 1e6));
    }
    let mut s = format!(
        "**The echo throughput goals against the kernel's share.** In the split layout the \
         server has one core, and coronet keeps it busy (CPU per round trip times round trips \
         per second: {}), so throughput there is the inverse of CPU per round \
         trip. Most of that CPU is the kernel's loopback TCP work (\"of which in the kernel\" in \
         the split table below), which no server's own code can avoid. So coronet's throughput \
         over a peer's can reach at most the peer's CPU per round trip over coronet's kernel \
         time per round trip, the ratio it would have with no user-space time at all:\n\n\
         | peer (goal) | x100 | x1000 |\n|---|---|---|\n",
        busy.join(", ")
    );
    for (peer, goal) in THROUGHPUT_GOALS {
        let _ = write!(s, "| {peer} (≥ {goal:.2}x) |");
        for conns in CONNS {
            let bound = median(format!("{}/cpu/{peer}", base(conns)))
                .zip(median(format!("{}/sys/coronet", base(conns))))
                .filter(|&(_, sys)| sys > 0.0)
                .map(|(cpu, sys)| cpu / sys);
            let cell = match bound {
                Some(b) if b < goal => format!(" {b:.2}x: out of reach |"),
                Some(b) => format!(" {b:.2}x |"),
                None => " – |".to_string(),
            };
            s.push_str(&cell);
        }
        s.push('\n');
    }
    s.push_str(
        "\nA bound below its goal means that no saving in coronet's own code can meet that goal \
         in this run while a round trip costs one `recv` and one `send`, as it does for every \
         readiness-based server here: it would take less kernel work per round trip than \
         those two system calls cost.\n",
    );
    s
}

/// The machine: CPU model, cores, kernel.
pub fn machine() -> (String, usize, String) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_string(), |k| k.trim().to_string());
    (model, crate::util::cpu_count(), kernel)
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails with the whole text, so that a changed wording shows at once.
    fn assert_contains(text: &str, needle: &str) {
        assert!(text.contains(needle), "{needle:?} is not in:\n{text}");
    }

    #[test]
    fn throughput_bounds_divide_peer_cpu_by_coronet_kernel_time() {
        let mut report = Report::default();
        assert_eq!(
            throughput_bounds(&report),
            "",
            "nothing measured, nothing said"
        );
        for conns in [100, 1000] {
            let base = format!("echo/split/64 B x{conns}");
            report.put(format!("{base}/cpu/coronet"), &[5.0]);
            report.put(format!("{base}/rps/coronet"), &[200_000.0]);
            report.put(format!("{base}/sys/coronet"), &[4.0]);
            report.put(format!("{base}/cpu/go"), &[6.0]);
            report.put(format!("{base}/cpu/tokio"), &[4.2]);
        }
        let text = throughput_bounds(&report);
        assert_contains(&text, "1.00 of the core at x100, 1.00 of the core at x1000");
        // go: 6.0 / 4.0 = 1.5 >= 1.3, reachable; tokio: 4.2 / 4.0 = 1.05 < 1.1.
        assert_contains(&text, "| go (≥ 1.30x) | 1.50x | 1.50x |");
        assert_contains(
            &text,
            "| tokio (≥ 1.10x) | 1.05x: out of reach | 1.05x: out of reach |",
        );
        assert_contains(&text, "| may (≥ 1.20x) | – | – |");
    }

    #[test]
    fn a_miss_under_one_percent_keeps_a_decimal() {
        let mut report = Report::default();
        report.put("http/split/cpu/coronet".into(), &[5.12]);
        report.put("http/split/cpu/tokio".into(), &[5.11]);
        report.put("http/shared/cpu/coronet".into(), &[6.0]);
        report.put("http/shared/cpu/tokio".into(), &[5.0]);
        let table = goals(&report);
        assert_contains(&table, "| 1.00x | MISS (by 0.2%) |");
        assert_contains(&table, "| 1.20x | MISS (by 20%) |");
    }

    #[test]
    fn a_verdict_says_when_a_disturbed_machine_moved_a_median() {
        let mut report = Report::default();
        // Run 29's spawn+join: Go's median four times its best repetition.
        report.put("rt/spawn/coronet".into(), &[133.4, 147.9, 161.8]);
        report.put("rt/spawn/go".into(), &[131.0, 550.7, 573.2]);
        // One slow repetition of five leaves the median alone: not flagged.
        report.put("rt/yield/coronet".into(), &[9.2, 9.4, 9.4, 9.6, 30.0]);
        report.put("rt/yield/go".into(), &[71.2, 72.6, 72.6, 73.7, 200.0]);
        // Throughput: higher is better, so a slow stretch shows as a median under the best.
        report.put(
            "echo/split/64 B x100/rps/coronet".into(),
            &[200.0, 210.0, 212.0],
        );
        report.put(
            "echo/split/64 B x100/rps/tokio".into(),
            &[150.0, 160.0, 207.0],
        );
        let table = goals(&report);
        assert_contains(&table, "| 0.27x | PASS, disturbed: go 131–573 |");
        assert_contains(&table, "| 0.13x | PASS |");
        assert_contains(&table, "| 1.31x | PASS, disturbed: tokio 150–207 |");
    }

    #[test]
    fn ratio_divides_medians() {
        let c = Measure::of(&[1.0, 2.0, 3.0]);
        let p = Measure::of(&[4.0]);
        assert_eq!(ratio(c, p), "0.50x");
        assert_eq!(ratio(c, None), "–");
    }

    #[test]
    fn date_is_plausible() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}
