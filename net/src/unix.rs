//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], the API of
//! `std::os::unix::net` over registered non-blocking sockets.
//!
//! Addresses are std's [`SocketAddr`] (`std::os::unix::net::SocketAddr`).
//!
//! ```
//! use std::io::{Read, Write};
//! use coronet_net::unix::UnixStream;
//!
//! coronet_runtime::run(|| {
//!     let (mut a, mut b) = UnixStream::pair().unwrap();
//!     let writer = coronet_runtime::spawn(move || a.write_all(b"over the pair").unwrap());
//!     let mut text = String::new();
//!     b.read_to_string(&mut text).unwrap();
//!     assert_eq!(text, "over the pair");
//!     writer.join().unwrap();
//! });
//! ```

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;

pub use std::os::unix::net::SocketAddr;

use crate::ops::OnAgain;
use crate::socket::{is_closed_error, Socket};
use crate::sys::{self, Kind, RawFd, SockAddr};

type StdStream = std::os::unix::net::UnixStream;
type StdDatagram = std::os::unix::net::UnixDatagram;

/// A Unix stream server socket: std's `UnixListener`, where `accept` parks.
pub struct UnixListener {
    pub(crate) socket: Arc<Socket>,
}

/// A Unix stream connection: std's `UnixStream`, where reads and writes park.
/// `Read`/`Write` are implemented for `UnixStream` and `&UnixStream`.
pub struct UnixStream {
    pub(crate) socket: Arc<Socket>,
}

/// A Unix datagram socket: std's `UnixDatagram`, where receives (and sends to a full peer)
/// park.
pub struct UnixDatagram {
    pub(crate) socket: Arc<Socket>,
}

fn new_socket(kind: Kind) -> io::Result<Arc<Socket>> {
    Ok(Arc::new(Socket::from_fd(sys::unix_socket(kind)?)?))
}

fn new_pair(kind: Kind) -> io::Result<(Arc<Socket>, Arc<Socket>)> {
    let (a, b) = sys::unix_pair(kind)?;
    let a = match Socket::from_fd(a) {
        Ok(a) => a,
        Err(e) => {
            sys::close(b);
            return Err(e);
        }
    };
    Ok((Arc::new(a), Arc::new(Socket::from_fd(b)?)))
}

fn local_addr_of(socket: &Socket) -> io::Result<SocketAddr> {
    socket.with_fd(|fd| sys::with_std(fd, StdStream::local_addr))
}

fn peer_addr_of(socket: &Socket) -> io::Result<SocketAddr> {
    socket.with_fd(|fd| sys::with_std(fd, StdStream::peer_addr))
}

fn bind_socket(kind: Kind, addr: &SockAddr) -> io::Result<Arc<Socket>> {
    let socket = new_socket(kind)?;
    socket.with_fd(|fd| sys::bind(fd, addr))?;
    Ok(socket)
}

impl UnixListener {
    /// Creates a listener bound to the filesystem path `path` (which must not exist).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("coronet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("listener.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = coronet_net::unix::UnixListener::bind(&path).unwrap();
    /// assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// # drop(listener);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::listen_on(&SockAddr::unix_path(path.as_ref())?)
    }

    /// Creates a listener bound to `addr` (a path, or on Linux an abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::listen_on(&SockAddr::unix_std(addr)?)
    }

    fn listen_on(addr: &SockAddr) -> io::Result<UnixListener> {
        let socket = bind_socket(Kind::Stream, addr)?;
        socket.with_fd(|fd| sys::listen(fd, sys::listen_backlog()))?;
        Ok(UnixListener { socket })
    }

    /// Accepts a connection, parking until one arrives. Errors as
    /// [`TcpListener::accept`](crate::TcpListener::accept).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let stream = UnixStream {
            socket: Arc::new(self.socket.accept_socket()?),
        };
        let addr = peer_addr_of(&stream.socket)?;
        Ok((stream, addr))
    }

    /// An iterator over incoming connections; it ends once the listener is
    /// [`close`](Self::close)d (std's never ends).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr_of(&self.socket)
    }

    handle_methods!(UnixListener);
    listener_deadline_methods!();
}

/// Connections of a [`UnixListener`]; see [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        match self.listener.socket.accept_socket() {
            Ok(socket) => Some(Ok(UnixStream {
                socket: Arc::new(socket),
            })),
            Err(e) if is_closed_error(&e) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl UnixStream {
    /// Connects to the socket at `path`. If the listener's backlog is full, retries with a
    /// growing pause (1 ms to 100 ms) while the coroutine sleeps, as a blocking `connect`
    /// would wait in the kernel.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_to(&SockAddr::unix_path(path.as_ref())?)
    }

    /// Connects to `addr` (a path, or on Linux an abstract name).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_to(&SockAddr::unix_std(addr)?)
    }

    fn connect_to(addr: &SockAddr) -> io::Result<UnixStream> {
        let socket = new_socket(Kind::Stream)?;
        socket.connect(addr, None, OnAgain::Retry)?;
        Ok(UnixStream { socket })
    }

    /// An unnamed pair of connected sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = new_pair(Kind::Stream)?;
        Ok((UnixStream { socket: a }, UnixStream { socket: b }))
    }

    /// Shuts down the read, write or both halves (a waiting read then returns 0).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr_of(&self.socket)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr_of(&self.socket)
    }

    handle_methods!(UnixStream);
    timeout_methods!();
}

stream_io!(UnixStream, read);

impl UnixDatagram {
    /// Creates a datagram socket bound to the filesystem path `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let socket = bind_socket(Kind::Datagram, &SockAddr::unix_path(path.as_ref())?)?;
        Ok(UnixDatagram { socket })
    }

    /// Creates a datagram socket bound to `addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        let socket = bind_socket(Kind::Datagram, &SockAddr::unix_std(addr)?)?;
        Ok(UnixDatagram { socket })
    }

    /// Creates an unbound datagram socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: new_socket(Kind::Datagram)?,
        })
    }

    /// An unnamed pair of connected datagram sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = new_pair(Kind::Datagram)?;
        Ok((UnixDatagram { socket: a }, UnixDatagram { socket: b }))
    }

    /// Sets the default peer of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let addr = SockAddr::unix_path(path.as_ref())?;
        self.socket.with_fd(|fd| sys::connect(fd, &addr))
    }

    /// [`connect`](Self::connect) to a std address.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        let addr = SockAddr::unix_std(addr)?;
        self.socket.with_fd(|fd| sys::connect(fd, &addr))
    }

    /// Sends to the connected peer, parking while the peer's queue is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    /// Receives from the connected peer, parking until a datagram arrives.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf)
    }

    /// Sends to the socket at `path`.
    ///
    /// If the receiver's queue is full the call parks until this socket reports
    /// writability; an unconnected sender learns of space at the receiver only when its own
    /// queued datagrams are consumed (a kernel limitation Go shares), so prefer
    /// [`connect`](Self::connect) + [`send`](Self::send) for flows that can fill the peer.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = SockAddr::unix_path(path.as_ref())?;
        self.socket.send_to(buf, &addr)
    }

    /// Sends to a std address (see [`send_to`](Self::send_to)).
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        let addr = SockAddr::unix_std(addr)?;
        self.socket.send_to(buf, &addr)
    }

    /// Receives a datagram and its source, parking until one arrives.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket
            .do_io(coronet_runtime::io::Interest::Read, |fd: RawFd| {
                sys::with_std(fd, |s: &StdDatagram| s.recv_from(buf))
            })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .with_fd(|fd| sys::with_std(fd, StdDatagram::local_addr))
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .with_fd(|fd| sys::with_std(fd, StdDatagram::peer_addr))
    }

    /// Shuts down the read, write or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    handle_methods!(UnixDatagram);
    timeout_methods!();
}

macro_rules! unix_debug {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct(stringify!($ty));
                d.field("fd", &self.socket.raw());
                if let Ok(addr) = local_addr_of(&self.socket) {
                    d.field("local", &addr);
                }
                if let Ok(addr) = peer_addr_of(&self.socket) {
                    d.field("peer", &addr);
                }
                d.finish()
            }
        }
    )*};
}

unix_debug!(UnixListener, UnixStream, UnixDatagram);
