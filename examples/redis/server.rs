//! The Redis server proper: the accept loop, one coroutine per connection (read, decode
//! every complete request, run it, flush the replies once), and the expiry sweeper.
//!
//! Included by `main.rs` and, with `#[path]`, by the integration tests, which run it
//! in-process on their own runtime. It expects `crate::{common, commands, db, resp}`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coronet::chan::{self, Receiver};
use coronet::net::{TcpListener, TcpStream};

use crate::commands::{execute, Flow, Server};
use crate::common::{self, ServerOptions};
use crate::db::now_ms;
use crate::resp::{reply, Decoder, Limits, ProtocolError};

/// How often the sweeper looks for expired keys (Redis's active expire runs at 10 Hz).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// The most expired keys one sweep removes from one shard while holding its lock; a shard
/// with more due is swept again at once, after yielding to the connections.
const SWEEP_BUDGET: usize = 256;

/// How much a connection reads at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are flushed once this much is waiting, even in the middle of a batch of
/// pipelined requests. While flushing, the connection does not read: a client that sends
/// requests without reading replies is held back by TCP flow control instead of making the
/// server queue replies without bound.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// After a protocol error or `QUIT`, how much of the client's further input is read and dropped
/// before closing, and for how long at most. Closing a socket with unread input makes the
/// kernel send a reset, which can destroy the error reply before the client reads it.
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The whole server as `main` runs it (and the shutdown test, in a child process): binds
/// `options.addr`, closes the listener on SIGINT/SIGTERM, logs the address and worker
/// count, serves until the listener is closed. Must run on a coroutine.
pub fn run(options: ServerOptions, limits: Limits) -> io::Result<()> {
    let listener = common::bind(&options.addr)?;
    let local = listener.local_addr()?;
    let closer = listener.try_clone()?;
    common::on_shutdown_signal(move |signal| {
        eprintln!("redis: got signal {signal}, closing the listener");
        let _ = closer.close();
    })?;
    println!(
        "redis: listening on {local} with {} worker(s)",
        options.worker_count()
    );
    let server = Arc::new(Server::new(limits));
    serve(listener, Arc::clone(&server))?;
    println!(
        "redis: stopped ({} connection(s) were open)",
        server.open_connections.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Serves Redis clients on `listener` until it is closed (by the shutdown signal or a
/// test), then stops the sweeper and returns. Connections still open are left to finish on
/// their own. Must run on a coroutine.
pub fn serve(listener: TcpListener, server: Arc<Server>) -> io::Result<()> {
    // Nothing is ever sent: dropping the sender is the stop signal.
    let (stop_sweeper, stopped) = chan::bounded::<()>(1);
    let sweeper = {
        let server = Arc::clone(&server);
        coronet::spawn(move || sweep_expired(&server, &stopped))
    };
    let handler_server = Arc::clone(&server);
    common::accept_loop("redis", &listener, move |conn, peer| {
        connection(&handler_server, conn, peer)
    });
    drop(stop_sweeper);
    sweeper
        .join()
        .map_err(|_| io::Error::other("the expiry sweeper panicked"))?;
    Ok(())
}

/// The active half of expiry (the lazy half is in every key lookup): every
/// [`SWEEP_INTERVAL`], removes the keys whose time has passed, so keys nobody reads again do
/// not stay in memory. Returns when `stop` is disconnected.
fn sweep_expired(server: &Server, stop: &Receiver<()>) {
    loop {
        let (_, more_due) = server.db.sweep(now_ms(), SWEEP_BUDGET);
        if more_due {
            // A burst of expiries: let the connections run, then go on at once.
            coronet::yield_now();
            if stop.try_recv().is_err_and(|e| e.is_disconnected()) {
                return;
            }
            continue;
        }
        match stop.recv_timeout(SWEEP_INTERVAL) {
            Err(e) if e.is_timeout() => {}
            _ => return,
        }
    }
}

/// How a connection ended.
enum End {
    /// The client closed its side (or went away).
    PeerClosed,
    /// After `QUIT`, or a protocol error whose reply has been queued.
    CloseAfterReply,
}

/// One client connection, on its own coroutine.
fn connection(server: &Server, conn: TcpStream, _peer: SocketAddr) {
    // Replies are flushed once per batch, so Nagle would only add latency.
    let _ = conn.set_nodelay(true);
    server.open_connections.fetch_add(1, Ordering::Relaxed);
    let mut out = Vec::with_capacity(READ_CHUNK);
    match serve_requests(server, &conn, &mut out) {
        Ok(End::CloseAfterReply) => {
            if (&conn).write_all(&out).is_ok() {
                linger_and_close(&conn);
            }
        }
        Ok(End::PeerClosed) | Err(_) => {}
    }
    server.open_connections.fetch_sub(1, Ordering::Relaxed);
}

/// The request loop: read, decode and run every complete request received, flush the
/// replies, repeat. Returns with the replies still to send in `out` when the connection
/// must close after them.
fn serve_requests(server: &Server, mut conn: &TcpStream, out: &mut Vec<u8>) -> io::Result<End> {
    let mut session = server.new_session();
    let mut decoder = Decoder::new(server.limits);
    // Received bytes the decoder has not taken yet. Invariant at the top of the loop: at
    // most `max_unconsumed` of them (the decoder refuses more), so with one more read the
    // buffer is bounded.
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        let filled = input.len();
        input.resize(filled + READ_CHUNK, 0);
        let read = conn.read(&mut input[filled..]);
        input.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            // End of stream: a partial request is dropped, as Redis does.
            Ok(0) => return Ok(End::PeerClosed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut taken = 0;
        loop {
            let step = match decoder.decode(&input[taken..]) {
                Ok(step) => step,
                Err(error) => {
                    protocol_error(out, &error);
                    return Ok(End::CloseAfterReply);
                }
            };
            if step.needs_more_input() {
                break;
            }
            taken += step.consumed;
            let Some(args) = step.command else { continue };
            if execute(server, &mut session, &args, out) == Flow::Close {
                return Ok(End::CloseAfterReply);
            }
            if out.len() >= OUTPUT_HIGH_WATER {
                conn.write_all(out)?;
                clear_buffer(out);
            }
        }
        input.drain(..taken);
        if input.capacity() > 4 * READ_CHUNK && input.len() < READ_CHUNK {
            // A large request has been served: give its buffer back.
            input.shrink_to(READ_CHUNK);
        }
        debug_assert!(input.len() <= decoder.limits().max_unconsumed());
        debug_assert!(decoder.buffered_bytes() <= decoder.limits().max_request);
        if !out.is_empty() {
            conn.write_all(out)?;
            clear_buffer(out);
        }
    }
}

/// Empties a reply buffer, giving back the memory of an unusually large reply.
fn clear_buffer(buffer: &mut Vec<u8>) {
    buffer.clear();
    if buffer.capacity() > 4 * OUTPUT_HIGH_WATER {
        buffer.shrink_to(OUTPUT_HIGH_WATER);
    }
}

/// Queues the error reply for a protocol error (none for an over-limit request, as Redis),
/// and logs the ones Redis logs as warnings.
fn protocol_error(out: &mut Vec<u8>, error: &ProtocolError) {
    match error.reply() {
        Some(text) => reply::error(out, &text),
        None => eprintln!("redis: closing a client: {error}"),
    }
}

/// Half-closes `conn` and reads (and drops) what the client still sends, within
/// [`LINGER_BYTES`] and [`LINGER_TIME`], so the replies already written are delivered
/// rather than destroyed by a reset; then the connection is dropped by the caller.
fn linger_and_close(conn: &TcpStream) {
    if conn.shutdown(Shutdown::Write).is_err() {
        return;
    }
    if conn
        .set_read_deadline(Some(Instant::now() + LINGER_TIME))
        .is_err()
    {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let mut conn = conn;
    while drained < LINGER_BYTES {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}
