//! What every example server shares: the `--addr/--workers/--help` command line, starting the
//! runtime, binding with a clean error, the accept loop with Go's back-off, and graceful
//! shutdown on SIGINT/SIGTERM.
//!
//! Included by each example (and by the integration tests that drive them) with
//! `#[path = "../common/mod.rs"] mod common;`. Not every user uses every item.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use coronet::net::{is_closed_error, TcpListener, TcpStream};

/// The options every example server takes.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `--addr HOST:PORT`.
    pub addr: String,
    /// `--workers N`; `None` means one per core.
    pub workers: Option<usize>,
}

impl ServerOptions {
    /// The worker count the runtime will use.
    pub fn worker_count(&self) -> usize {
        self.workers
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }
}

/// What the command line asked for.
pub enum Command<T> {
    /// Serve with these options (and the example's own, `T`).
    Serve(ServerOptions, T),
    /// `--help` was given: the usage has been printed.
    Help,
}

/// Parses `--addr`, `--workers` and `--help`; every other argument goes to `extra` together
/// with a way to take its value (`extra` returns `Ok(false)` for an argument it does not
/// know). Errors are messages for the user.
pub fn parse_args<T>(
    args: impl IntoIterator<Item = String>,
    usage: &str,
    default_addr: &str,
    mut own: T,
    mut extra: impl FnMut(
        &mut T,
        &str,
        &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String>,
) -> Result<Command<T>, String> {
    let mut options = ServerOptions {
        addr: default_addr.to_owned(),
        workers: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let name = arg.clone();
        let mut value = || args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{usage}");
                return Ok(Command::Help);
            }
            "--addr" => options.addr = value()?,
            "--workers" => options.workers = Some(positive(&value()?, "--workers")?),
            other => {
                if !extra(&mut own, other, &mut value)? {
                    return Err(format!("unknown argument: {other}"));
                }
            }
        }
    }
    Ok(Command::Serve(options, own))
}

/// Parses a positive integer option value.
pub fn positive(text: &str, name: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name}: not a positive integer: {text}"))
}

/// The usual `main`: parses the arguments, starts a runtime with the requested workers and
/// runs `serve` on it. Exit codes: 0 after `--help` or a clean return, 2 for a bad command
/// line, 1 for a runtime error.
pub fn main_with<T: Send + 'static>(
    name: &str,
    usage: &str,
    default_addr: &str,
    own: T,
    extra: impl FnMut(&mut T, &str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
    serve: impl FnOnce(ServerOptions, T) -> io::Result<()> + Send + 'static,
) -> ExitCode {
    let (options, own) = match parse_args(std::env::args().skip(1), usage, default_addr, own, extra)
    {
        Ok(Command::Serve(options, own)) => (options, own),
        Ok(Command::Help) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    let mut builder = coronet::runtime::Builder::new();
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(move || serve(options, own)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr`; the error names the address (a taken port reads "cannot listen on
/// 127.0.0.1:6379: Address already in use").
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// The accept loop: a coroutine per connection running `handle`. Temporary accept errors
/// (out of file descriptors, ...) back off as Go's `http.Server` does, 5 ms doubling up to
/// 1 s, so the loop neither spins nor dies. Returns when the listener is closed.
pub fn accept_loop<H>(name: &str, listener: &TcpListener, handle: H)
where
    H: Fn(TcpStream, SocketAddr) + Clone + Send + 'static,
{
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept() {
            Ok((conn, peer)) => {
                backoff = Duration::ZERO;
                let handle = handle.clone();
                coronet::spawn(move || handle(conn, peer));
            }
            Err(e) if is_closed_error(&e) => return,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                eprintln!("{name}: accept: {e}; retrying in {backoff:?}");
                coronet::sleep(backoff);
            }
        }
    }
}

/// Runs `on_signal` once, on a plain thread, when the process gets SIGINT or SIGTERM.
///
/// The signal handler itself only writes the signal number into a pipe (`write` is
/// async-signal-safe); a thread blocked reading the pipe runs `on_signal`, where it may take
/// locks, close listeners or send on channels, none of which a signal handler may do. This
/// works whatever the signal masks of the other threads are.
pub fn on_shutdown_signal(on_signal: impl FnOnce(i32) + Send + 'static) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    if SIGNAL_PIPE
        .compare_exchange(-1, write_fd, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: both fds were just created here and are owned by nobody else.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return Err(io::Error::other("on_shutdown_signal: already installed"));
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler address and an empty mask is valid; the
        // handler only calls async-signal-safe functions.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    std::thread::Builder::new()
        .name("signal".into())
        .spawn(move || {
            let mut byte = 0u8;
            loop {
                // SAFETY: `read_fd` is the pipe's read end, owned by this thread; `byte` is a
                // valid one-byte buffer.
                let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
                if n == 1 {
                    on_signal(i32::from(byte));
                    return;
                }
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
        })?;
    Ok(())
}

/// The write end of the shutdown pipe, or -1 before `on_shutdown_signal`.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let byte = signal as u8;
    // SAFETY: `write` is async-signal-safe and `byte` lives for the call; errno is saved and
    // restored so the interrupted code does not see it change.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}
