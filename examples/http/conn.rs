//! One HTTP connection's byte plumbing: a bounded read buffer that requests are parsed from
//! in place, an output buffer that responses are written into, and the lingering close.
//!
//! Invariant that makes pipelining both fast and deadlock-free: the output buffer is flushed
//! before every read from the socket ([`Conn::fill`]). So responses to requests that were
//! already buffered go out together in one write, and the server never waits for the
//! client's bytes while the client waits for a response the server has not sent.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use coronet::net::TcpStream;

/// The output buffer is flushed once it holds this much, even if more pipelined requests
/// are buffered: a client that pipelines without reading cannot make the server buffer
/// without bound (it blocks in the write instead, and the write deadline drops it).
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, and how much it reads at most. Closing a socket whose receive queue is not empty
/// makes the kernel send a reset, which can destroy the response before the client read it
/// (Go's `closeWriteAndWait` lingers for the same reason).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// A connection with its read and write buffers.
pub struct Conn {
    stream: TcpStream,
    /// Read buffer; `buf[start..end]` is received and not yet consumed.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Responses not yet written to the socket.
    out: Vec<u8>,
    /// Each flush must complete within this (Go's `WriteTimeout`), so a client that stops
    /// reading cannot hold the connection, or a graceful shutdown, forever.
    write_timeout: Duration,
}

impl Conn {
    /// Wraps `stream` with a read buffer of `read_buffer_size` bytes (which bounds what
    /// [`fill`](Self::fill) can hold unconsumed).
    pub fn new(stream: TcpStream, read_buffer_size: usize, write_timeout: Duration) -> Conn {
        Conn {
            stream,
            buf: vec![0; read_buffer_size].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::new(),
            write_timeout,
        }
    }

    /// The socket, for deadlines.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The received bytes not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks the first `n` buffered bytes consumed.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than buffered");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves up to `n` buffered bytes to the end of `dst`; returns how many it moved.
    pub fn take_into(&mut self, dst: &mut Vec<u8>, n: usize) -> usize {
        let n = n.min(self.end - self.start);
        dst.extend_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Flushes the output, then reads more bytes into the buffer; returns how many (0 at end
    /// of stream). Fails if the buffer is full of unconsumed bytes: callers bound what they
    /// leave unconsumed (a request head, a chunk-size line) below the buffer size.
    pub fn fill(&mut self) -> io::Result<usize> {
        self.flush()?;
        if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(io::Error::other("read buffer full"));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The output buffer: responses are appended here and written by the next flush.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes the output buffer to the socket, within the write timeout.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.stream
            .set_write_deadline(Some(Instant::now() + self.write_timeout))?;
        let result = (&self.stream).write_all(&self.out);
        self.out.clear();
        result
    }

    /// Flushes if the output buffer has grown past the threshold.
    pub fn flush_if_large(&mut self) -> io::Result<()> {
        if self.out.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// Closes after the last response: flushes it, sends FIN, and reads what the client
    /// still sends (bounded in time and bytes) so that closing does not reset the
    /// connection under the client's feet before it has read the response.
    pub fn close_gracefully(mut self) {
        if self.flush().is_err() || self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        if self
            .stream
            .set_read_deadline(Some(Instant::now() + LINGER_TIME))
            .is_err()
        {
            return;
        }
        let mut discarded = 0;
        let mut scratch = [0u8; 4096];
        while discarded < LINGER_BYTES {
            match self.stream.read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}
