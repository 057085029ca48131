//! A WebSocket echo server: `tungstenite::accept` on coronet's `TcpStream`, one coroutine per
//! client, in plain blocking style.
//!
//! ```text
//! cargo run --release --example websocket                             # ws://127.0.0.1:7002/
//! cargo run --release --example websocket -- --addr 0.0.0.0:7002 --workers 4
//! websocat ws://127.0.0.1:7002/                                       # type lines, get them back
//! ```
//!
//! Or from a browser's JavaScript console:
//! `ws = new WebSocket("ws://127.0.0.1:7002/"); ws.onmessage = e => console.log(e.data);
//! ws.onopen = () => ws.send("hello")`.
//!
//! tungstenite is a blocking WebSocket implementation over any `Read + Write`; over a coronet
//! `TcpStream` its blocking reads park the coroutine instead of the thread, so the
//! one-coroutine-per-client loop below serves thousands of clients on a few threads.
//!
//! What the server does:
//! - text and binary messages are sent back as they came (text as text, binary as binary);
//! - pings are answered with pongs by tungstenite itself, on the next read;
//! - a close frame from the client is answered with the same close code, after which the
//!   server closes the TCP connection (the server closes first, as RFC 6455 asks);
//! - a request that is not a WebSocket upgrade gets an HTTP error and is closed: 405 for a
//!   method other than GET, 426 Upgrade Required (with `Upgrade: websocket` and
//!   `Sec-WebSocket-Version: 13`) for a GET without the upgrade headers or with another
//!   protocol version, 431 for headers over tungstenite's 64 KiB / 124-header limits, 400 for
//!   anything else malformed;
//! - a protocol violation after the handshake ends the connection with a close frame naming
//!   it: 1009 (message too big), 1007 (text that is not UTF-8), 1002 (any other violation,
//!   e.g. an unmasked client frame), 1001 (idle timeout).
//!
//! Limits ([`Limits::default`]), so no client can pin memory or a coroutine for good:
//! - a message, and so a single frame, may carry at most 4 MiB ([`MAX_MESSAGE`]). A
//!   connection therefore buffers at most about 4 MiB of input and, because every echo is
//!   flushed before the next read, one message of output;
//! - the HTTP upgrade must complete within 10 s of connecting;
//! - after the upgrade, a read or write that waits more than 5 minutes ends the connection
//!   (clients that want to stay connected while quiet send pings).
//!
//! SIGINT/SIGTERM close the listener, which ends the accept loop; the process then exits 0
//! (connections still open end with it).

#[path = "common/mod.rs"]
pub mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use coronet::net::{TcpListener, TcpStream};
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Error, Message, WebSocket};

const USAGE: &str = "\
websocket: a WebSocket echo server on coronet (tungstenite, one coroutine per client)

USAGE:
    websocket [--addr HOST:PORT] [--workers N]

OPTIONS:
    --addr HOST:PORT   address to serve on (default 127.0.0.1:7002)
    --workers N        worker threads (default: one per core)
    -h, --help         print this help

Every text or binary message a client sends is sent back; pings get pongs. Messages over
4 MiB are refused with close code 1009. Try: websocat ws://127.0.0.1:7002/
";

/// The largest message (and so the largest frame) a client may send.
pub const MAX_MESSAGE: usize = 4 << 20;

/// How long a closing connection waits for the peer to take our last words (see
/// [`linger_close`]).
const LINGER_TIME: Duration = Duration::from_secs(5);

/// What a client may use up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message, and frame, a client may send.
    pub max_message: usize,
    /// The HTTP upgrade must complete within this of accepting the connection.
    pub handshake: Duration,
    /// After the upgrade, a single read or write may wait this long.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: MAX_MESSAGE,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// The tungstenite configuration enforcing these limits.
    pub fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig {
            max_message_size: Some(self.max_message),
            // A frame cannot carry more than a message, so one limit serves both.
            max_frame_size: Some(self.max_message),
            ..WebSocketConfig::default()
        }
    }
}

fn main() -> ExitCode {
    common::main_with(
        "websocket",
        USAGE,
        "127.0.0.1:7002",
        (),
        |_, _, _| Ok(false),
        |options, ()| run(options, Limits::default(), |_| {}),
    )
}

/// Binds (a taken port is a clean "cannot listen on ADDR" error), arranges for SIGINT/SIGTERM
/// to close the listener, logs, calls `ready` with the bound address, and serves until the
/// signal. Runs on a coroutine (inside `block_on`).
pub fn run(
    options: common::ServerOptions,
    limits: Limits,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let listener = common::bind(&options.addr)?;
    let local = listener.local_addr()?;
    let closer = listener.try_clone()?;
    common::on_shutdown_signal(move |signal| {
        eprintln!("websocket: got signal {signal}, closing the listener");
        let _ = closer.close();
    })?;
    println!(
        "websocket: listening on ws://{local}/ with {} worker(s)",
        options.worker_count()
    );
    ready(local);
    serve(listener, limits);
    println!("websocket: stopped");
    Ok(())
}

/// Serves WebSocket echo on `listener`, a coroutine per connection, until the listener is
/// closed. Must run on a coroutine.
pub fn serve(listener: TcpListener, limits: Limits) {
    common::accept_loop("websocket", &listener, move |conn, peer| {
        if let Err(e) = echo(conn, limits) {
            eprintln!("websocket: {peer}: {e}");
        }
    });
}

/// Why a connection ended badly; its `Display` is the log line.
#[derive(Debug)]
pub enum ConnError {
    /// The HTTP upgrade failed (with the status sent back, if any).
    Handshake(Box<Error>, Option<u16>),
    /// The WebSocket session failed after the upgrade.
    Session(Box<Error>),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Handshake(e, Some(status)) => {
                write!(f, "bad WebSocket handshake ({e}): answered {status}")
            }
            ConnError::Handshake(e, None) => write!(f, "WebSocket handshake failed: {e}"),
            ConnError::Session(e) => write!(f, "{e}"),
        }
    }
}

/// One connection: the upgrade, then echo until the close handshake.
pub fn echo(conn: TcpStream, limits: Limits) -> Result<(), ConnError> {
    let _ = conn.set_nodelay(true);
    // A second handle on the socket: tungstenite consumes the stream and drops it on a failed
    // handshake, and we still want to answer with an HTTP error.
    let replier = conn
        .try_clone()
        .map_err(|e| ConnError::Handshake(Box::new(e.into()), None))?;
    // One deadline for the whole upgrade, so trickling bytes cannot stretch it.
    conn.set_deadline(Some(Instant::now() + limits.handshake))
        .map_err(|e| ConnError::Handshake(Box::new(e.into()), None))?;
    let mut ws = match tungstenite::accept_with_config(conn, Some(limits.websocket_config())) {
        Ok(ws) => ws,
        Err(HandshakeError::Failure(e)) => {
            let status = http_error_for(&e).map(|(status, reason, headers)| {
                let _ = write_http_error(&replier, status, reason, headers, &e);
                linger_close(&replier, &limits);
                status
            });
            return Err(ConnError::Handshake(Box::new(e), status));
        }
        // Only a non-blocking stream interrupts a handshake, and this one blocks (a deadline
        // fails with `TimedOut`, which is a `Failure`).
        Err(HandshakeError::Interrupted(_)) => {
            let e = io::Error::other("handshake interrupted");
            return Err(ConnError::Handshake(Box::new(e.into()), None));
        }
    };
    drop(replier);

    let session = ws.get_ref();
    let set_idle = session
        .set_deadline(None)
        .and_then(|()| session.set_read_timeout(Some(limits.idle)))
        .and_then(|()| session.set_write_timeout(Some(limits.idle)));
    set_idle.map_err(|e| ConnError::Session(Box::new(e.into())))?;

    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(e) = ws.send(message) {
                    // Most likely the client stopped reading (a write timeout): a close
                    // frame would not get through either.
                    let say_why = !matches!(e, Error::Io(_));
                    return Err(fail(&mut ws, e, &limits, say_why));
                }
            }
            // Pings: tungstenite has queued the pong and sends it on the next read. Close:
            // it has queued the reply, and the next read sends it and ends the session with
            // `ConnectionClosed`. Pongs need nothing; `Frame` is never returned by `read`.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {}
            Err(Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(fail(&mut ws, e, &limits, true)),
        }
    }
}

/// Ends a session that failed with `error`: if `say_why`, tells the client why in a close
/// frame when the connection can still carry one; then closes. Returns the error for the log.
///
/// The close frame gets [`LINGER_TIME`] to be written: a client that does not read must not
/// cost another idle timeout.
fn fail(ws: &mut WebSocket<TcpStream>, error: Error, limits: &Limits, say_why: bool) -> ConnError {
    let close = match &error {
        _ if !say_why => None,
        Error::Capacity(_) => Some((CloseCode::Size, "message too big")),
        Error::Utf8 => Some((CloseCode::Invalid, "text message is not UTF-8")),
        // The peer went away without a close frame: nobody to tell.
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some((CloseCode::Protocol, "protocol violation")),
        Error::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Some((CloseCode::Away, "idle timeout"))
        }
        _ => None,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let give_up = Instant::now() + LINGER_TIME;
        let _ = ws.get_ref().set_write_deadline(Some(give_up));
        if ws.close(Some(frame)).is_ok() {
            linger_close(ws.get_ref(), limits);
        }
    }
    ConnError::Session(Box::new(error))
}

/// The HTTP answer to a failed upgrade: status, reason phrase, extra headers. `None` when
/// there is nobody to answer (the peer hung up, the deadline passed, I/O failed).
fn http_error_for(error: &Error) -> Option<(u16, &'static str, &'static str)> {
    const UPGRADE: &str = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    match error {
        Error::Protocol(ProtocolError::WrongHttpMethod) => {
            Some((405, "Method Not Allowed", "Allow: GET\r\n"))
        }
        Error::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader
            | ProtocolError::MissingUpgradeWebSocketHeader
            | ProtocolError::MissingSecWebSocketVersionHeader,
        ) => Some((426, "Upgrade Required", UPGRADE)),
        Error::Capacity(CapacityError::TooManyHeaders) | Error::AttackAttempt => {
            Some((431, "Request Header Fields Too Large", ""))
        }
        Error::Protocol(ProtocolError::HandshakeIncomplete) | Error::Io(_) => None,
        Error::Protocol(_) | Error::HttpFormat(_) | Error::Capacity(_) | Error::Utf8 => {
            Some((400, "Bad Request", ""))
        }
        _ => None,
    }
}

/// Writes a small `text/plain` HTTP error response naming `error`.
fn write_http_error(
    mut conn: &TcpStream,
    status: u16,
    reason: &str,
    headers: &str,
    error: &Error,
) -> io::Result<()> {
    let body = format!("{status} {reason}: {error}\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         {headers}\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         \r\n\
         {body}",
        body.len()
    );
    conn.write_all(response.as_bytes())
}

/// Closes a connection we are giving up on without losing our last words (an HTTP error, a
/// close frame). Closing a socket with unread input makes the kernel send a reset, which can
/// destroy data the peer has not read yet; so we first send FIN (shutdown write) and read
/// what the peer is still sending until it closes too. That is bounded by [`LINGER_TIME`] and
/// by the largest message plus 1 MiB, enough for a client to finish sending a message that
/// was refused as too big while it was still sending it. The caller drops the socket
/// afterwards.
fn linger_close(conn: &TcpStream, limits: &Limits) {
    if conn.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    if conn.set_read_deadline(Some(deadline)).is_err() {
        return;
    }
    let most = limits.max_message as u64 + (1 << 20);
    let _ = io::copy(&mut conn.take(most), &mut io::sink());
}
