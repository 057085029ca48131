//! The servers under test, one module per peer, each with an echo and an HTTP variant.
//!
//! The harness runs every server as its own process (`coronet-bench serve <peer> <kind>
//! <addr> <workers>`) so that /proc/PID/stat gives the server's CPU time alone. All of them
//! do the same work: echo every byte back; or answer every request (a request ends with
//! "\r\n\r\n", no body: enough for wrk) with the same fixed "Hello, World!" response on a
//! keep-alive connection. Each server exits by itself after [`LIFETIME`].

use std::io::{self, Read, Write};
use std::time::Duration;

mod coronet_peer;
mod epoll_peer;
mod may_peer;
mod threads_peer;
mod tokio_peer;

pub use may_peer::configure as may_configure;

/// How long a server lives at most, whatever happens to the harness.
pub const LIFETIME: Duration = Duration::from_secs(300);

/// The one response of every hand-written HTTP server (Go's raw loop sends the same bytes).
pub const HELLO_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// Read buffer size of every server.
pub const BUF: usize = 8192;

/// Counts the complete requests at the start of `data` (each ends with "\r\n\r\n") and
/// returns how many bytes they span and how many there are.
pub fn complete_requests(data: &[u8]) -> (usize, usize) {
    let mut consumed = 0;
    let mut count = 0;
    let mut i = 0;
    while i + 4 <= data.len() {
        if data[i] == b'\r' && &data[i..i + 4] == b"\r\n\r\n" {
            consumed = i + 4;
            count += 1;
            i += 4;
        } else {
            i += 1;
        }
    }
    (consumed, count)
}

/// The state of one keep-alive HTTP connection in a hand loop: bytes read but not yet
/// answered.
pub struct HttpConn {
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
}

impl HttpConn {
    pub fn new() -> HttpConn {
        HttpConn {
            buf: vec![0; BUF],
            filled: 0,
            out: Vec::with_capacity(BUF),
        }
    }

    /// Where the next read goes; `None` when a request is larger than the buffer.
    pub fn spare(&mut self) -> Option<&mut [u8]> {
        if self.filled == self.buf.len() {
            None
        } else {
            Some(&mut self.buf[self.filled..])
        }
    }

    /// Accounts `n` bytes read and returns the responses to write (possibly empty).
    pub fn advance(&mut self, n: usize) -> &[u8] {
        self.filled += n;
        let (consumed, count) = complete_requests(&self.buf[..self.filled]);
        self.buf.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
        self.out.clear();
        for _ in 0..count {
            self.out.extend_from_slice(HELLO_RESPONSE);
        }
        &self.out
    }
}

/// The echo loop of the blocking-style peers (a coroutine or thread per connection):
/// writes back every byte read until the peer closes. Generic so each peer runs the same
/// code over its own socket type.
pub fn echo<S: Read + Write>(mut stream: S) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// The keep-alive HTTP loop of the blocking-style peers, over [`HttpConn`]: answers every
/// complete request until the peer closes or sends a request larger than the buffer.
pub fn http_conn<S: Read + Write>(mut stream: S) -> io::Result<()> {
    let mut conn = HttpConn::new();
    loop {
        let Some(spare) = conn.spare() else {
            return Ok(());
        };
        let n = stream.read(spare)?;
        if n == 0 {
            return Ok(());
        }
        let out = conn.advance(n);
        if !out.is_empty() {
            stream.write_all(out)?;
        }
    }
}

/// `serve <peer> <echo|http> <addr> <workers>`: runs a server until killed or [`LIFETIME`].
pub fn serve(args: &[String]) {
    let usage =
        "usage: coronet-bench serve <coronet|tokio|may|threads|epoll> <echo|http> <addr> <workers>";
    let [peer, kind, addr, workers] = args else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let http = match kind.as_str() {
        "echo" => false,
        "http" => true,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let workers: usize = workers.parse().unwrap_or(1).max(1);
    crate::util::exit_after(LIFETIME);
    let result = match peer.as_str() {
        "coronet" => coronet_peer::serve(addr, workers, http),
        "tokio" => tokio_peer::serve(addr, workers, http),
        "may" => may_peer::serve(addr, workers, http),
        "threads" => threads_peer::serve(addr, http),
        "epoll" => epoll_peer::serve(addr, workers, http),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("serve {peer} {kind}: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_complete_requests() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut two = req.to_vec();
        two.extend_from_slice(req);
        two.extend_from_slice(b"GET / HT");
        assert_eq!(complete_requests(&two), (2 * req.len(), 2));
        assert_eq!(complete_requests(b"GET / HTTP/1.1\r\n\r"), (0, 0));
    }

    #[test]
    fn keeps_a_partial_request() {
        let mut conn = HttpConn::new();
        let part = b"GET / HTTP/1.1\r\n";
        conn.spare().unwrap()[..part.len()].copy_from_slice(part);
        assert!(conn.advance(part.len()).is_empty());
        conn.spare().unwrap()[..2].copy_from_slice(b"\r\n");
        assert_eq!(conn.advance(2), HELLO_RESPONSE);
    }
}
