//! Helpers shared by the poller's integration tests (mio's `tests/util`).
//!
//! Waiting for an event that must come uses a long guard (`PATIENCE`) so that a broken
//! poller fails instead of hanging; no test asserts an upper bound on time. Checking that an
//! event does *not* come waits `QUIET`: absence is what is asserted, so a short wait is sound.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use coronet_poller::{Event, Events, Poller, RawSource, Token};

/// Something the poller can watch: its descriptor (Unix) or socket handle (Windows).
pub trait Source {
    fn raw_source(&self) -> RawSource;
}

#[cfg(unix)]
impl<T: std::os::fd::AsRawFd> Source for T {
    fn raw_source(&self) -> RawSource {
        self.as_raw_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsRawSocket> Source for T {
    fn raw_source(&self) -> RawSource {
        self.as_raw_socket()
    }
}

/// The guard against a hang while waiting for an event that must arrive.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long to watch for an event that must not arrive.
pub const QUIET: Duration = Duration::from_millis(50);

/// A loopback listener on an ephemeral port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

/// A connected loopback TCP pair `(client, server)`, both non-blocking.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listener();
    let client = TcpStream::connect(addr).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nonblocking(true).expect("non-blocking client");
    server.set_nonblocking(true).expect("non-blocking server");
    (client, server)
}

/// Polls until an event for `token` satisfying `want` arrives and returns it (with every
/// readiness reported for `token` on the way merged in). Panics after `PATIENCE`.
pub fn expect_event(
    poller: &Poller,
    events: &mut Events,
    token: Token,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no matching event for {token:?} within {PATIENCE:?}"
        );
        poller.poll(events, Some(left)).expect("poll");
        if let Some(event) = events.iter().find(|e| e.token() == token && want(e)) {
            return event;
        }
    }
}

/// Asserts that no event for `token` arrives: first with a non-blocking poll, then for
/// `QUIET`.
pub fn expect_no_event(poller: &Poller, events: &mut Events, token: Token) {
    poller.poll(events, Some(Duration::ZERO)).expect("poll(0)");
    assert_no_token(events, token);
    let deadline = Instant::now() + QUIET;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        poller.poll(events, Some(left)).expect("poll");
        assert_no_token(events, token);
    }
}

fn assert_no_token(events: &Events, token: Token) {
    let unexpected: Vec<Event> = events.iter().filter(|e| e.token() == token).collect();
    assert!(unexpected.is_empty(), "unexpected events: {unexpected:?}");
}

/// Reads until `WouldBlock`; returns how many bytes were read. Panics on end of stream or
/// on another error.
pub fn drain(stream: &mut impl Read) -> usize {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("unexpected end of stream"),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Writes `bytes` completely to a (possibly non-blocking) stream with room for them.
pub fn send(stream: &mut impl Write, bytes: &[u8]) {
    stream.write_all(bytes).expect("write");
}

/// Registers `source` and consumes the readiness the OS reports at registration (a fresh
/// socket is writable), so that a test starts from "no change pending".
pub fn register_quiet(poller: &Poller, events: &mut Events, source: &impl Source, token: Token) {
    poller
        .register(source.raw_source(), token)
        .expect("register");
    expect_event(poller, events, token, Event::is_writable);
}
