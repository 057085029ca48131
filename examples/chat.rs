//! A TCP chat server in Go style: one coroutine per client, a hub coroutine fed by a channel.
//!
//! ```text
//! cargo run --release --example chat                              # 127.0.0.1:7001
//! cargo run --release --example chat -- --addr 0.0.0.0:7001 --workers 4
//! nc 127.0.0.1 7001                                               # in a few terminals
//! ```
//!
//! ```text
//!  client conn ──► reader coroutine ──Line/Join/Leave──► events ──► hub coroutine
//!  client conn ◄── writer coroutine ◄── outbox (bounded) ◄─────────────┘ broadcast
//! ```
//!
//! The hub owns the set of clients, so it needs no lock: it is the only coroutine that
//! touches it (Go's "share memory by communicating"). It never blocks on a client: a client
//! whose outbox is full is too slow and gets disconnected, so one stuck peer cannot stall
//! the room. Closing is by ownership: when the hub drops a client's outbox sender, that
//! client's writer ends and shuts the connection down, which ends its reader.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use coronet::chan::{self, Receiver, Sender, TrySendError};
use coronet::net::{is_closed_error, TcpListener, TcpStream};

const USAGE: &str = "\
chat: a TCP chat server on coronet (one coroutine per client, a hub fed by a channel)

USAGE:
    chat [--addr HOST:PORT] [--workers N]

OPTIONS:
    --addr HOST:PORT   address to serve on (default 127.0.0.1:7001)
    --workers N        worker threads (default: one per core)
    -h, --help         print this help

Every line a client sends is broadcast to the other clients as `user-N: line`.
";

/// Lines a client may have queued before it counts as too slow.
const OUTBOX: usize = 256;
/// The longest line a client may send (longer ones are cut).
const MAX_LINE: u64 = 4096;

/// What client coroutines tell the hub.
enum Event {
    /// A client connected; the hub sends it lines through `outbox`.
    Join { id: u64, outbox: Sender<Arc<str>> },
    /// A client sent a line.
    Line { id: u64, text: String },
    /// A client's connection ended.
    Leave { id: u64 },
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chat: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the arguments and serves until the process is killed (or `--help`).
pub fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut addr = "127.0.0.1:7001".to_owned();
    let mut workers = None;
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--addr" => addr = value("--addr")?,
            "--workers" => {
                let text = value("--workers")?;
                let n = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--workers: not a positive integer: {text}"))?;
                workers = Some(n);
            }
            other => return Err(format!("unknown argument: {other}\n\n{USAGE}")),
        }
    }
    let mut builder = coronet::runtime::Builder::new().name("chat");
    if let Some(n) = workers {
        builder = builder.workers(n);
    }
    let workers = workers
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let runtime = builder
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(move || {
        let listener =
            TcpListener::bind(&*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("chat: listening on {local} with {workers} worker(s)");
        serve(listener).map_err(|e| e.to_string())
    })
}

/// Serves chat clients on `listener` until it is closed and every client has left. Must run
/// on a coroutine.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    let (events_tx, events_rx) = chan::bounded::<Event>(1024);
    let hub = coronet::spawn(move || hub(events_rx));
    let mut next_id = 1u64;
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept() {
            Ok((conn, _peer)) => {
                backoff = Duration::ZERO;
                let (id, events) = (next_id, events_tx.clone());
                next_id += 1;
                coronet::spawn(move || client(id, conn, events));
            }
            Err(e) if is_closed_error(&e) => break,
            Err(e) => {
                // Out of file descriptors and friends: back off, as Go's http.Server does.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                eprintln!("chat: accept: {e}; retrying in {backoff:?}");
                coronet::sleep(backoff);
            }
        }
    }
    drop(events_tx);
    hub.join()
        .map_err(|_| io::Error::other("the chat hub panicked"))
}

fn name(id: u64) -> String {
    format!("user-{id}")
}

/// The hub: owns the room, broadcasts every event.
fn hub(events: Receiver<Event>) {
    let mut clients: BTreeMap<u64, Sender<Arc<str>>> = BTreeMap::new();
    for event in events {
        match event {
            Event::Join { id, outbox } => {
                let welcome = format!("* welcome, you are {}\n", name(id));
                if outbox.try_send(welcome.into()).is_ok() {
                    broadcast(&mut clients, id, format!("* {} joined\n", name(id)));
                    clients.insert(id, outbox);
                }
            }
            Event::Line { id, text } => {
                broadcast(&mut clients, id, format!("{}: {text}\n", name(id)));
            }
            Event::Leave { id } => {
                if clients.remove(&id).is_some() {
                    broadcast(&mut clients, id, format!("* {} left\n", name(id)));
                }
            }
        }
    }
}

/// Sends `line` to every client but `from`, dropping the clients that cannot keep up.
fn broadcast(clients: &mut BTreeMap<u64, Sender<Arc<str>>>, from: u64, line: String) {
    let line: Arc<str> = line.into();
    clients.retain(|&id, outbox| {
        if id == from {
            return true;
        }
        match outbox.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                eprintln!("chat: {} is too slow, disconnecting it", name(id));
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    });
}

/// One client: this coroutine reads lines, a second one writes the outbox.
fn client(id: u64, conn: TcpStream, events: Sender<Event>) {
    let _ = conn.set_nodelay(true);
    let (outbox_tx, outbox_rx) = chan::bounded::<Arc<str>>(OUTBOX);
    let writer = match conn.try_clone() {
        Ok(conn) => coronet::spawn(move || write_outbox(conn, outbox_rx)),
        Err(e) => {
            eprintln!("chat: {}: {e}", name(id));
            return;
        }
    };
    if events
        .send(Event::Join {
            id,
            outbox: outbox_tx,
        })
        .is_ok()
    {
        let mut reader = BufReader::new(&conn);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    if events.send(Event::Line { id, text }).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = events.send(Event::Leave { id });
    }
    let _ = conn.shutdown(Shutdown::Both);
    let _ = writer.join();
}

/// Writes queued lines until the hub drops the client (or the peer goes away), then shuts
/// the connection down, which also ends the client's reader.
fn write_outbox(mut conn: TcpStream, outbox: Receiver<Arc<str>>) {
    for line in outbox {
        if conn.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}
