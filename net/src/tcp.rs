//! TCP: [`TcpListener`] and [`TcpStream`], std's API over a registered non-blocking socket
//! (Go's `TCPListener` / `TCPConn` over a `netFD`).

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::addr::{each_addr, ToSocketAddrs};
use crate::ops::OnAgain;
use crate::socket::{is_closed_error, Socket};
use crate::sys::{self, Kind, Opt, SockAddr};

/// A TCP server socket: std's `TcpListener`, where `accept` parks the coroutine (or blocks
/// the plain thread) until a connection arrives.
///
/// ```
/// use std::io::{Read, Write};
/// use coronet_net::{TcpListener, TcpStream};
///
/// coronet_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = coronet_runtime::spawn(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = TcpStream::connect(addr).unwrap();
///     client.write_all(b"hello").unwrap();
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo).unwrap();
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    pub(crate) socket: Arc<Socket>,
}

/// A TCP connection: std's `TcpStream`, where a read or write that would block parks the
/// coroutine (or blocks the plain thread) until the socket is ready.
///
/// `Read` and `Write` are implemented for `TcpStream` and `&TcpStream`, so one coroutine can
/// read while another writes the same connection (or use [`TcpStream::try_clone`]).
pub struct TcpStream {
    pub(crate) socket: Arc<Socket>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (each resolved address in turn, as std), with
    /// `SO_REUSEADDR` and the system's largest backlog (Go's choice; std uses 128).
    ///
    /// ```
    /// let listener = coronet_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(listener.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |addr| {
            let socket = Socket::from_fd(sys::inet_socket(addr, Kind::Stream)?)?;
            if sys::LISTENER_REUSE_ADDR {
                socket.set_opt(Opt::ReuseAddr, 1)?;
            }
            socket.with_fd(|fd| {
                sys::bind(fd, &SockAddr::inet(addr))?;
                sys::listen(fd, sys::listen_backlog())
            })?;
            Ok(TcpListener {
                socket: Arc::new(socket),
            })
        })
    }

    /// Accepts a connection: parks until one arrives. The new stream is registered with the
    /// calling coroutine's runtime.
    ///
    /// Errors: the closed error after [`close`](Self::close); resource exhaustion
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`) is returned as is, with the connection left queued, so
    /// a server loop can back off (sleep) and accept it later instead of spinning. Connections
    /// aborted while queued are skipped.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (socket, addr) = self.socket.accept()?;
        Ok((
            TcpStream {
                socket: Arc::new(socket),
            },
            addr.inet_addr()?,
        ))
    }

    /// An iterator over incoming connections, each [`accept`](Self::accept)ed in turn.
    ///
    /// Unlike std's (which never ends), it ends once the listener is
    /// [`close`](Self::close)d, so `for conn in listener.incoming()` stops cleanly.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_inet()
    }

    /// Sets `IP_TTL` for accepted connections.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_opt(Opt::Ttl, ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.opt(Opt::Ttl)
    }

    handle_methods!(TcpListener);
    listener_deadline_methods!();
}

/// Connections of a [`TcpListener`]; see [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        match self.listener.socket.accept_socket() {
            Ok(socket) => Some(Ok(TcpStream {
                socket: Arc::new(socket),
            })),
            Err(e) if is_closed_error(&e) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl TcpStream {
    /// Connects to `addr`, trying each resolved address in turn (as std). Host names are
    /// resolved on the blocking pool; the connect itself parks the coroutine.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |addr| TcpStream::connect_until(addr, None))
    }

    /// Connects with a timeout, as std: `ErrorKind::TimedOut` if the connection is not
    /// established within `timeout`; a zero timeout is an `InvalidInput` error.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_until(addr, Instant::now().checked_add(timeout))
    }

    fn connect_until(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let socket = Socket::from_fd(sys::inet_socket(addr, Kind::Stream)?)?;
        socket.connect(&SockAddr::inet(addr), deadline, OnAgain::Fail)?;
        Ok(TcpStream {
            socket: Arc::new(socket),
        })
    }

    /// Reads without consuming (`MSG_PEEK`), parking until data arrives.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.peek(buf)
    }

    /// Shuts down the read, write or both halves. `Shutdown::Read`/`Both` make a read that
    /// is waiting in another coroutine return 0 (the kernel reports the end of stream).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_inet()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_inet()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.set_opt(Opt::NoDelay, nodelay.into())
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.opt(Opt::NoDelay).map(|v| v != 0)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_opt(Opt::Ttl, ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.opt(Opt::Ttl)
    }

    handle_methods!(TcpStream);
    timeout_methods!();
}

stream_io!(TcpStream, read_stream);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.socket.raw()).finish()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.socket.raw()).finish()
    }
}
