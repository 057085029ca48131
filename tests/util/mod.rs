//! Helpers shared by the `net_*` integration tests.
//!
//! Every test talks only to 127.0.0.1, ::1, or Unix socket paths under a per-test temporary
//! directory.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// 127.0.0.1 with an ephemeral port.
pub const LOCAL: &str = "127.0.0.1:0";

/// Generous time budget for load loops: a loop stops early (with fewer iterations) after it.
pub const LOAD_BUDGET: Duration = Duration::from_secs(20);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 65536), so tests with many
/// connections do not hit a 1024 default.
#[cfg(unix)]
pub fn raise_fd_limit() {
    // SAFETY: `getrlimit`/`setrlimit` read and write only the local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let want = limit.rlim_max.min(65536);
            if limit.rlim_cur < want {
                limit.rlim_cur = want;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

/// The current soft `RLIMIT_NOFILE`.
#[cfg(unix)]
pub fn fd_limit() -> u64 {
    // SAFETY: as above.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur as u64
    }
}

/// Windows has no per-process limit on sockets like `RLIMIT_NOFILE`: nothing to raise.
#[cfg(windows)]
pub fn raise_fd_limit() {}

/// Windows has no per-process limit on sockets like `RLIMIT_NOFILE`.
#[cfg(windows)]
pub fn fd_limit() -> u64 {
    u64::MAX
}

/// Aborts the process if the guard is not dropped within `limit`: a hang becomes a loud
/// failure instead of a stuck CI job. Not a performance assertion: the limits are minutes.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to the stderr handle: the test harness captures `eprintln!`, and
            // the capture is lost when we abort.
            let dump = coronet::runtime::dump();
            let report = format!(
                "test {name} still running after {limit:?}: aborting (hang)\n\
                 default runtime: {:?}\n{}",
                coronet::runtime::stats(),
                coronet::runtime::DumpDisplay(&dump)
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
            std::process::abort();
        }
    });
    Watchdog { done: Some(tx) }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("coronet-net-{}-{}-{}", std::process::id(), name, n));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic test bytes: `len` bytes of a stream identified by `seed`, starting at
/// stream offset `offset`.
pub fn pattern_at(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| pattern_byte(seed, offset + i))
        .collect()
}

/// Byte `i` of the stream `seed`.
pub fn pattern_byte(seed: u64, i: u64) -> u8 {
    let x = (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (x >> 56) as u8 ^ (i >> 12) as u8
}

/// Re-runs this test binary with only `test` selected and `env_var=1` set: for tests that
/// must change process-wide state (rlimits, signal dispositions) in a child.
pub fn run_child(test: &str, env_var: &str) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env_var, "1")
        .output()
        .expect("spawn child test process")
}

/// Whether this process is the child started by [`run_child`].
pub fn is_child(env_var: &str) -> bool {
    std::env::var_os(env_var).is_some()
}

/// Waits until the coroutine behind `handle` is parked on a socket wait of `kind` (read or
/// write), so a test can close or signal while the operation is certainly blocked. Polls
/// (bounded: a minute); it orders events, the tests' outcomes do not depend on it.
pub fn parked_on<T>(handle: &coronet::JoinHandle<T>, kind: coronet::runtime::WaitKind) {
    assert!(
        coronet::runtime::wait_until_parked(handle.coroutine(), kind, Duration::from_secs(60)),
        "the coroutine never parked on {kind:?}"
    );
}

/// Yields a few hundred times: gives a coroutine that was just told to block the chance to
/// get there. Tests never depend on it for correctness, only to exercise the blocked path
/// more often.
pub fn settle() {
    for _ in 0..200 {
        coronet::yield_now();
    }
}

/// An IPv6 loopback address with an ephemeral port, if this host has IPv6 loopback.
pub fn local_v6() -> Option<SocketAddr> {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    std::net::UdpSocket::bind(addr).ok().map(|_| addr)
}

/// The server of an example (its accept loop, `serve`) on its own 2-worker runtime, listening
/// on 127.0.0.1 with an ephemeral port: for the tests that drive the examples in-process.
pub struct ExampleServer {
    pub runtime: coronet::Runtime,
    pub addr: SocketAddr,
    /// A clone of the listener, to close it from the test.
    pub closer: coronet::net::TcpListener,
    pub serving: coronet::JoinHandle<()>,
}

impl ExampleServer {
    /// Binds the listener and runs `serve` with it on a coroutine of a new runtime.
    pub fn start(serve: impl FnOnce(coronet::net::TcpListener) + Send + 'static) -> ExampleServer {
        let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
        let listener = coronet::net::TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = listener.try_clone().unwrap();
        let serving = runtime.spawn(move || serve(listener));
        ExampleServer {
            runtime,
            addr,
            closer,
            serving,
        }
    }

    /// Closes the listener and waits for the accept loop to return.
    pub fn stop(self) {
        self.closer.close().unwrap();
        self.serving.join().unwrap();
        drop(self.runtime);
    }
}

/// A std client socket connected to `addr`, whose reads and writes fail after `hang_guard`
/// instead of hanging (a guard, not a timing assertion).
pub fn std_client(addr: SocketAddr, hang_guard: Duration) -> std::net::TcpStream {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(hang_guard)).unwrap();
    tcp.set_write_timeout(Some(hang_guard)).unwrap();
    tcp
}

/// As [`std_client`], over a coronet socket (parks when called on a coroutine).
pub fn coronet_client(addr: SocketAddr, hang_guard: Duration) -> coronet::net::TcpStream {
    let tcp = coronet::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(hang_guard)).unwrap();
    tcp.set_write_timeout(Some(hang_guard)).unwrap();
    tcp
}

/// Runs [`run_child`] and fails, showing the child's output, unless the child succeeded;
/// returns its stdout and stderr for further checks.
pub fn run_child_ok(test: &str, env_var: &str) -> (String, String) {
    let output = run_child(test, env_var);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Connects until the connection is refused: the listener's socket is released. Not at
/// once: `close()` wakes the accept loop (so a server's `run` can return) before the thread
/// that called it drops its own reference to the socket and releases it (Go's `Close` does
/// the same). Fails if connections are still accepted after `give_up_after`.
pub fn assert_eventually_refused(addr: SocketAddr, give_up_after: Duration) {
    let give_up = std::time::Instant::now() + give_up_after;
    loop {
        match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connect after shutdown: {e}"),
            Ok(_) => {
                assert!(
                    std::time::Instant::now() < give_up,
                    "the listener still accepts connections after shutdown"
                );
                std::thread::yield_now();
            }
        }
    }
}

/// The child's side of a test that an example's `run` stops cleanly on SIGTERM. Runs
/// `run(ready)` on a coroutine of a new 2-worker runtime (`run` must call `ready` with the
/// bound address once its signal handler is installed), waits for that address, lets
/// `exercise` use the server, then sends this process SIGTERM and expects `run` to return
/// `Ok` and the listener to be released. `hang_guard` bounds each wait.
#[cfg(unix)]
pub fn serve_until_sigterm(
    run: impl FnOnce(Box<dyn FnOnce(SocketAddr) + Send>) -> std::io::Result<()> + Send + 'static,
    hang_guard: Duration,
    exercise: impl FnOnce(SocketAddr),
) {
    let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = runtime.spawn(move || run(Box::new(move |addr| ready_tx.send(addr).unwrap())));
    let addr = ready_rx.recv_timeout(hang_guard).unwrap();
    exercise(addr);

    // SAFETY: sends SIGTERM to this process; `run` has installed its handler (it called
    // `ready` after installing it), so the signal does not kill the process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    server.join().unwrap().unwrap();
    assert_eventually_refused(addr, hang_guard);
}
