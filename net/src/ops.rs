//! The socket operations shared by every socket type: each is one syscall wrapper from `sys`
//! run through [`Socket::do_io`] (or [`Socket::with_fd`] when it never waits).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use coronet_runtime::io::Interest;

use crate::socket::Socket;
use crate::sys::{self, SockAddr};

/// First pause before retrying a Unix `connect` refused with `EAGAIN` (backlog full).
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(1);
/// Longest such pause.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// What `connect` does when the kernel answers `EAGAIN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnAgain {
    /// Return the error (TCP: no local port free).
    Fail,
    /// Sleep and retry (Unix stream: the listener's backlog is full; a blocking connect
    /// would sleep in the kernel, and the socket reports no readiness for it to wait on).
    Retry,
}

impl Socket {
    /// Reads into `buf` (`recv`).
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.do_io(Interest::Read, |fd| sys::recv(fd, buf, false))
    }

    /// Reads into `buf` from a TCP stream (`recv`); see [`Socket::do_stream_read`].
    pub(crate) fn read_stream(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.do_stream_read(buf.len(), |fd| sys::recv(fd, buf, false))
    }

    /// Reads into `buf` without consuming (`recv` with `MSG_PEEK`).
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.do_io(Interest::Read, |fd| sys::recv(fd, buf, true))
    }

    /// Scatter read (`readv`).
    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.do_io(Interest::Read, |fd| sys::read_vectored(fd, bufs))
    }

    /// Writes from `buf` (`send`, no `SIGPIPE`).
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.do_io(Interest::Write, |fd| sys::send(fd, buf))
    }

    /// Gather write (`sendmsg`, no `SIGPIPE`).
    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.do_io(Interest::Write, |fd| sys::write_vectored(fd, bufs))
    }

    /// Receives a datagram and its source (`recvfrom`).
    pub(crate) fn recv_from(&self, buf: &mut [u8], peek: bool) -> io::Result<(usize, SockAddr)> {
        self.do_io(Interest::Read, |fd| sys::recv_from(fd, buf, peek))
    }

    /// Sends a datagram to `addr` (`sendto`).
    pub(crate) fn send_to(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        self.do_io(Interest::Write, |fd| sys::send_to(fd, buf, addr))
    }

    /// Accepts a connection and registers it. `ECONNABORTED` (a connection reset while it
    /// waited in the queue) is skipped, as Go does; `EMFILE`/`ENFILE` are returned: the
    /// pending connection stays queued and the next `accept` retries it.
    pub(crate) fn accept(&self) -> io::Result<(Socket, SockAddr)> {
        let (fd, addr) = self.do_io(Interest::Read, |fd| loop {
            match sys::accept(fd) {
                Err(e) if sys::accept_retry(&e) => continue,
                other => return other,
            }
        })?;
        Ok((Socket::from_fd(fd)?, addr))
    }

    /// [`Socket::accept`] without the peer address.
    pub(crate) fn accept_socket(&self) -> io::Result<Socket> {
        let fd = self.do_io(Interest::Read, |fd| loop {
            match sys::accept_fd(fd) {
                Err(e) if sys::accept_retry(&e) => continue,
                other => return other,
            }
        })?;
        Socket::from_fd(fd)
    }

    /// Connects (Go's `netFD.connect`): `connect`; on `EINPROGRESS` wait for writability,
    /// then read `SO_ERROR`, and wait again if the wake-up came from an older event.
    /// `deadline` bounds the whole connect (`TimedOut` after it).
    pub(crate) fn connect(
        &self,
        addr: &SockAddr,
        deadline: Option<Instant>,
        on_again: OnAgain,
    ) -> io::Result<()> {
        let mut started = false;
        let mut backoff = CONNECT_BACKOFF_MIN;
        self.do_io_until(Interest::Write, deadline, |fd| {
            if started {
                return match sys::connect_result(fd)? {
                    true => Ok(()),
                    false => Err(io::ErrorKind::WouldBlock.into()),
                };
            }
            loop {
                match sys::connect(fd, addr) {
                    Ok(()) => return Ok(()),
                    Err(e) if sys::connect_pending(&e) => {
                        started = true;
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock && on_again == OnAgain::Retry =>
                    {
                        if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "connection timed out",
                            ));
                        }
                        coronet_runtime::sleep(backoff);
                        backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Not "try again later" in the `do_io` sense: report it.
                        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, e));
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// `shutdown(2)`; then the waiters of the shut halves retry their syscall (a read gets 0,
    /// a write an error), whether or not the OS reports the change as an event: Linux does,
    /// Winsock does not for a local `SD_RECEIVE`.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.with_registration(|fd, registration| {
            sys::shutdown(fd, how)?;
            if matches!(how, Shutdown::Read | Shutdown::Both) {
                registration.notify(Interest::Read);
            }
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                registration.notify(Interest::Write);
            }
            Ok(())
        })
    }

    /// `SO_ERROR`.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.with_fd(sys::take_error)
    }

    /// Sets an integer option.
    pub(crate) fn set_opt(&self, opt: sys::Opt, value: u32) -> io::Result<()> {
        self.with_fd(|fd| sys::set_opt(fd, opt, value))
    }

    /// Reads an integer option.
    pub(crate) fn opt(&self, opt: sys::Opt) -> io::Result<u32> {
        self.with_fd(|fd| sys::get_opt(fd, opt))
    }

    /// The local IP address (`getsockname`).
    pub(crate) fn local_inet(&self) -> io::Result<std::net::SocketAddr> {
        self.with_fd(|fd| sys::local_addr(fd)?.inet_addr())
    }

    /// The peer's IP address (`getpeername`).
    pub(crate) fn peer_inet(&self) -> io::Result<std::net::SocketAddr> {
        self.with_fd(|fd| sys::peer_addr(fd)?.inet_addr())
    }
}
