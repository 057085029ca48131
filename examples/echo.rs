//! A goroutine-per-connection echo server, and a self-contained load demo.
//!
//! ```text
//! cargo run --release --example echo -- --demo                      # server + 100 clients, 5 s
//! cargo run --release --example echo -- --demo --clients 1000 --seconds 10 --size 1024
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 --workers 4   # serve until killed
//! ```
//!
//! Every connection is served by its own coroutine written in plain blocking style; a read
//! that would block parks the coroutine on the socket, not the worker thread.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use coronet::net::{is_closed_error, TcpListener, TcpStream};

const USAGE: &str = "\
echo: a coroutine-per-connection TCP echo server on coronet

USAGE:
    echo [--addr HOST:PORT] [--workers N]
    echo --demo [--clients N] [--seconds S] [--size BYTES] [--workers N]

OPTIONS:
    --addr HOST:PORT   address to serve on (default 127.0.0.1:7000)
    --workers N        worker threads (default: one per core)
    --demo             start the server on 127.0.0.1 (ephemeral port) and N clients that
                       echo messages for S seconds, verify every byte, and print round trips
                       per second
    --clients N        demo clients (default 100)
    --seconds S        demo duration in seconds (default 5)
    --size BYTES       demo message size (default 64)
    -h, --help         print this help
";

struct Options {
    addr: String,
    workers: Option<usize>,
    demo: bool,
    clients: usize,
    seconds: f64,
    size: usize,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: "127.0.0.1:7000".to_owned(),
        workers: None,
        demo: false,
        clients: 100,
        seconds: 5.0,
        size: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--demo" => options.demo = true,
            "--addr" => options.addr = value("--addr")?,
            "--workers" => options.workers = Some(number(&value("--workers")?, "--workers")?),
            "--clients" => options.clients = number(&value("--clients")?, "--clients")?,
            "--size" => options.size = number(&value("--size")?, "--size")?,
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--seconds: not a positive number: {text}"))?;
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Some(options))
}

fn number(text: &str, name: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name}: not a positive integer: {text}"))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("echo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = coronet::runtime::Builder::new();
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let workers = options
        .workers
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if options.demo {
        runtime.block_on(move || demo(&options, workers))
    } else {
        runtime.block_on(move || serve_forever(&options.addr, workers))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves on `addr` until the process is killed.
fn serve_forever(addr: &str, workers: usize) -> io::Result<()> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!(
        "echo: listening on {} with {workers} worker(s); Ctrl-C to stop",
        listener.local_addr()?
    );
    serve(&listener);
    Ok(())
}

/// The accept loop: a coroutine per connection. Temporary accept errors (out of file
/// descriptors, ...) back off as Go's `http.Server` does: 5 ms, doubling up to 1 s, so the
/// loop neither spins nor dies. Returns when the listener is closed.
fn serve(listener: &TcpListener) {
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                backoff = Duration::ZERO;
                coronet::spawn(move || handle(conn));
            }
            Err(e) if is_closed_error(&e) => return,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                eprintln!("echo: accept: {e}; retrying in {backoff:?}");
                coronet::sleep(backoff);
            }
        }
    }
}

/// Echoes until the peer closes.
fn handle(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// The message client `id` sends in round `round`: every byte depends on both, so an echo
/// of another client's or another round's bytes is caught.
fn message(id: usize, round: u64, buf: &mut [u8]) {
    let mut x =
        (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ round.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for byte in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
}

fn demo(options: &Options, workers: usize) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    println!(
        "echo demo: server on {addr}, {workers} worker(s), {} clients, {} B messages, {} s",
        options.clients, options.size, options.seconds
    );
    let server_listener = listener.try_clone()?;
    let server = coronet::spawn(move || serve(&server_listener));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(options.seconds);
    let size = options.size;
    let clients: Vec<_> = (0..options.clients)
        .map(|id| coronet::spawn(move || client(id, addr, size, end)))
        .collect();
    let mut total = 0u64;
    let mut failures = 0usize;
    for client in clients {
        match client.join() {
            Ok(Ok(rounds)) => total += rounds,
            Ok(Err(e)) => {
                failures += 1;
                eprintln!("echo demo: client error: {e}");
            }
            Err(_) => failures += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    listener.close()?;
    let _ = server.join();
    println!(
        "echo demo: {total} round trips in {elapsed:.2} s = {:.0} round trips/s ({:.1} MB/s each way), every byte verified",
        total as f64 / elapsed,
        total as f64 * size as f64 / elapsed / 1e6
    );
    if failures > 0 {
        return Err(io::Error::other(format!("{failures} client(s) failed")));
    }
    Ok(())
}

/// One demo client: sends a message, reads the echo, checks it, until `end`.
fn client(id: usize, addr: SocketAddr, size: usize, end: Instant) -> io::Result<u64> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    let mut sent = vec![0u8; size];
    let mut echoed = vec![0u8; size];
    let mut rounds = 0u64;
    while Instant::now() < end {
        message(id, rounds, &mut sent);
        conn.write_all(&sent)?;
        conn.read_exact(&mut echoed)?;
        if echoed != sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client {id}: round {rounds}: echoed bytes differ"),
            ));
        }
        rounds += 1;
    }
    Ok(rounds)
}
