//! Measurement helpers shared by the scenarios: timing, statistics, /proc readings, CPU
//! affinity, child processes.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
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

/// Median, min and max of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measure {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Measure {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Measure> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Measure {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }

    /// "median (min-max)" with `digits` decimals, or just the median for a single sample.
    pub fn cell(&self, digits: usize) -> String {
        if self.min == self.max {
            format!("{:.*}", digits, self.median)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                digits, self.median, digits, self.min, digits, self.max
            )
        }
    }
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Clock ticks per second of /proc/PID/stat's CPU times.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// CPU time (user + system) consumed so far by process `pid`, all threads included, from
/// /proc/PID/stat fields 14 and 15.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let times = process_times(pid)?;
    Ok(times.user + times.system)
}

/// A process's CPU time so far, in user space and in the kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    /// The time spent between `earlier` and `self`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

/// [`process_cpu`], split into user time (field 14) and system time (field 15).
pub fn process_times(pid: u32) -> io::Result<CpuTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| -> io::Result<Duration> {
        fields
            .get(i - 3)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|t| Duration::from_secs_f64(t as f64 / clock_ticks_per_sec()))
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    Ok(CpuTimes {
        user: ticks(14)?,
        system: ticks(15)?,
    })
}

/// Pins the calling thread (and the threads it creates afterwards) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `cmd` start pinned to `cpus` (if given) and die with the harness (PR_SET_PDEATHSIG).
pub fn prepare_child(cmd: &mut Command, cpus: Option<Vec<usize>>) {
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // syscalls (prctl, sched_setaffinity) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(cpus) = &cpus {
                pin_current_thread(cpus)?;
            }
            Ok(())
        });
    }
}

/// How long [`wait_for_quiet_machine`] waited, and whether the machine got quiet.
pub struct QuietWait {
    pub waited: Duration,
    pub quiet: bool,
    /// Busy share of all cores in the last window, in percent.
    pub last_busy_percent: f64,
}

/// Waits, at most `limit`, until the rest of the machine is quiet: `windows` consecutive
/// one-second windows in which all cores together were busy less than `max_busy_percent` of
/// the time (/proc/stat; the harness itself only sleeps meanwhile). A run started right
/// after a build or a test suite measured the machine's aftermath, not the code
/// (docs/performance.md, the goal table's million-coroutine row).
pub fn wait_for_quiet_machine(limit: Duration, windows: u32, max_busy_percent: f64) -> QuietWait {
    let started = Instant::now();
    let cores = cpu_count() as f64;
    let mut quiet_windows = 0;
    let mut last_busy_percent = f64::NAN;
    while started.elapsed() < limit {
        let (Ok(before), t0) = (machine_busy(), Instant::now()) else {
            break;
        };
        std::thread::sleep(Duration::from_secs(1));
        let Ok(after) = machine_busy() else { break };
        let window = t0.elapsed().as_secs_f64();
        last_busy_percent = 100.0 * (after - before).as_secs_f64() / (window * cores);
        if last_busy_percent < max_busy_percent {
            quiet_windows += 1;
            if quiet_windows >= windows {
                return QuietWait {
                    waited: started.elapsed(),
                    quiet: true,
                    last_busy_percent,
                };
            }
        } else {
            quiet_windows = 0;
        }
    }
    QuietWait {
        waited: started.elapsed(),
        quiet: false,
        last_busy_percent,
    }
}

/// Number of online CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// Waits until something accepts connections at `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Raises the soft limit of open files to the hard limit (1,000 connections need more than
/// the usual 1,024 descriptors across client and server). Children inherit it.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill and then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Exits the process after `lifetime`: servers never outlive a lost harness for long.
pub fn exit_after(lifetime: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(lifetime);
        eprintln!("server lifetime over, exiting");
        std::process::exit(3);
    });
}

/// What a signal handler writes back to /proc/sys/vm/max_map_count before the harness dies.
static RESTORE_MAP_COUNT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

extern "C" fn restore_and_die(sig: libc::c_int) {
    if let Some(value) = RESTORE_MAP_COUNT.get() {
        // SAFETY: open, write, close, signal and raise are async-signal-safe; the path is a
        // NUL-terminated literal and `value` is immutable once set.
        unsafe {
            let fd = libc::open(c"/proc/sys/vm/max_map_count".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, value.as_ptr().cast(), value.len());
                libc::close(fd);
            }
        }
    }
    // SAFETY: as above; the default action then ends the process with this signal.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP put `vm.max_map_count` back to `original` before the
/// harness dies (a `timeout` or Ctrl-C must not leave the machine's limit raised).
pub fn restore_map_count_on_signal(original: u64) {
    if RESTORE_MAP_COUNT
        .set(original.to_string().into_bytes())
        .is_err()
    {
        return; // already installed, with the first original value
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `restore_and_die` only makes async-signal-safe calls.
        unsafe {
            libc::signal(sig, restore_and_die as *const () as libc::sighandler_t);
        }
    }
}

/// CPU time the whole machine spent busy so far (every state of /proc/stat's "cpu" line but
/// idle and iowait; steal counts as busy: another guest took the core).
pub fn machine_busy() -> io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("malformed /proc/stat"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Ok(Duration::from_secs_f64(busy as f64 / clock_ticks_per_sec()))
}

/// CPU time of this process's children that have been waited for.
pub fn children_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to fill.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The share of the machine (percent of all cores) that processes other than ours used over
/// a window: the machine's busy time minus what the harness, the server and the load tool
/// used. High values flag figures disturbed by other work.
pub fn foreign_share(machine: Duration, ours: Duration, elapsed: Duration) -> f64 {
    let capacity = elapsed.as_secs_f64() * cpu_count() as f64;
    if capacity <= 0.0 {
        return 0.0;
    }
    (machine.saturating_sub(ours).as_secs_f64() / capacity * 100.0).max(0.0)
}
