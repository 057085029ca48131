//! Windows backend: thin wrappers over Winsock 2 (`addr.rs`: socket addresses in their
//! Winsock form; `opt.rs`: socket options). Same items as the Unix backend, with a socket
//! handle (`RawSocket`, a `u64`) where Unix has a descriptor.
//!
//! Every function is one call (or a fixed short sequence of them) with `WSAGetLastError`
//! turned into `io::Error`. None retries and none waits: `socket.rs` owns that policy.
//! Readiness comes from the poller's AFD poll requests (see `poller/src/iocp.rs`), so the
//! sockets use the same readiness model as on Unix: non-blocking calls (`FIONBIO`) that fail
//! with `WSAEWOULDBLOCK` (`ErrorKind::WouldBlock`), then a wait, then a retry. Every socket
//! this file creates is overlapped (AFD requires nothing more, and std creates them the same
//! way), not inheritable by child processes, and non-blocking from birth.
//!
//! Differences from Unix that callers see:
//!
//! * [`retire`] cannot keep a handle value allocated with a placeholder as `dup2` does on
//!   Unix, so it returns false: a closed socket is shut down at once but its handle stays open
//!   (unusable, deregistered) until the last coronet handle is dropped.
//! * A listener does not get `SO_REUSEADDR` ([`LISTENER_REUSE_ADDR`]): on Windows it would let
//!   another socket bind the same port (std does not set it either).
//! * Winsock is started once (`WSAStartup`), before the first socket is created.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr};
use std::os::windows::io::{FromRawSocket, IntoRawSocket};
use std::ptr;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{SetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT};
use windows_sys::Win32::Networking::WinSock::{self as ws, SOCKET, SOCKET_ERROR, WSABUF, WSADATA};

pub(crate) use std::os::windows::io::RawSocket as RawFd;

mod addr;
mod opt;

pub(crate) use self::addr::SockAddr;
pub(crate) use self::opt::{get_opt, multicast_v4, multicast_v6, set_opt, take_error, Opt};

/// Whether a TCP listener sets `SO_REUSEADDR` before `bind`: not on Windows, where the option
/// means "share this port with any other socket" instead of "rebind despite TIME_WAIT".
pub(crate) const LISTENER_REUSE_ADDR: bool = false;

/// The handle value of "no socket" (`INVALID_SOCKET`).
pub(crate) const INVALID: RawFd = ws::INVALID_SOCKET as RawFd;

/// Largest buffer count passed to one `WSARecv`/`WSASend` (extra buffers are simply not
/// filled, as std does).
const MAX_BUFS: usize = 1024;

/// Largest byte count of one `send`/`recv` (their length is an `i32`; the rest is the next
/// call's, as std does).
const MAX_LEN: usize = i32::MAX as usize;

/// Turns a `SOCKET_ERROR` return into the thread's `WSAGetLastError`.
fn cvt(ret: i32) -> io::Result<i32> {
    if ret == SOCKET_ERROR {
        Err(last_error())
    } else {
        Ok(ret)
    }
}

fn last_error() -> io::Error {
    // SAFETY: no preconditions.
    io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() })
}

/// Turns an `INVALID_SOCKET` return into the thread's `WSAGetLastError`.
fn cvt_socket(socket: SOCKET) -> io::Result<RawFd> {
    if socket == ws::INVALID_SOCKET {
        Err(last_error())
    } else {
        Ok(socket as RawFd)
    }
}

/// The kind of socket to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Datagram,
}

/// Starts Winsock 2.2 once per process. Winsock counts starts, so this coexists with std's
/// own; it is never balanced with `WSACleanup`, as sockets may live until the process exits.
fn start_winsock() -> io::Result<()> {
    static RESULT: OnceLock<i32> = OnceLock::new();
    let code = *RESULT.get_or_init(|| {
        // SAFETY: WSADATA is plain data: all-zero is valid.
        let mut data: WSADATA = unsafe { std::mem::zeroed() };
        // SAFETY: `data` is a live out-parameter.
        unsafe { ws::WSAStartup(0x0202, &mut data) }
    });
    match code {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

// ---- creating sockets ------------------------------------------------------------------

/// A new non-blocking, overlapped, non-inheritable IP socket of `addr`'s family.
pub(crate) fn inet_socket(addr: &SocketAddr, kind: Kind) -> io::Result<RawFd> {
    start_winsock()?;
    let family = match addr {
        SocketAddr::V4(_) => ws::AF_INET,
        SocketAddr::V6(_) => ws::AF_INET6,
    };
    let ty = match kind {
        Kind::Stream => ws::SOCK_STREAM,
        Kind::Datagram => ws::SOCK_DGRAM,
    };
    // SAFETY: no protocol info pointer; plain integer arguments.
    let socket = cvt_socket(unsafe {
        ws::WSASocketW(
            i32::from(family),
            ty,
            0,
            ptr::null(),
            0,
            ws::WSA_FLAG_OVERLAPPED | ws::WSA_FLAG_NO_HANDLE_INHERIT,
        )
    })?;
    if let Err(error) = set_nonblocking(socket, true) {
        close(socket);
        return Err(error);
    }
    Ok(socket)
}

/// Prepares a socket handed in from outside (a std socket, `from_raw_socket`): non-blocking.
pub(crate) fn prepare_adopted(fd: RawFd) -> io::Result<()> {
    set_nonblocking(fd, true)
}

/// Sets or clears non-blocking mode (`FIONBIO`).
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    let mut value = u32::from(nonblocking);
    // SAFETY: `value` is a live u32, the argument FIONBIO takes.
    cvt(unsafe { ws::ioctlsocket(fd as SOCKET, ws::FIONBIO, &mut value) }).map(drop)
}

/// A duplicate of `fd` (`WSADuplicateSocketW`, through std's `try_clone`), non-blocking and
/// non-inheritable.
pub(crate) fn duplicate(fd: RawFd) -> io::Result<RawFd> {
    let copy = with_std(fd, |s: &std::net::UdpSocket| s.try_clone())?.into_raw_socket();
    if let Err(error) = set_nonblocking(copy, true) {
        close(copy);
        return Err(error);
    }
    Ok(copy)
}

/// Closes `fd`, ignoring errors (the handle is gone whatever `closesocket` returns).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: `closesocket` takes no pointers; callers own `fd` and never use it again.
    unsafe { ws::closesocket(fd as SOCKET) };
}

/// Keeping the handle value allocated while releasing the socket needs a `dup2`, which
/// Windows lacks: always false (see the module documentation).
pub(crate) fn retire(_fd: RawFd) -> bool {
    false
}

// ---- connection setup ------------------------------------------------------------------

/// `bind`.
pub(crate) fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to an initialised address of `addr.len` bytes.
    cvt(unsafe { ws::bind(fd as SOCKET, addr.as_ptr(), addr.len) }).map(drop)
}

/// `listen`.
pub(crate) fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: `listen` takes no pointers.
    cvt(unsafe { ws::listen(fd as SOCKET, backlog) }).map(drop)
}

/// The backlog `listen` gets: Winsock 2's `SOMAXCONN`, "the provider's maximum" (as Go's
/// `maxListenerBacklog` on Windows; windows-sys exports Winsock 1's value, 5).
pub(crate) fn listen_backlog() -> i32 {
    0x7fff_ffff
}

/// `connect`; non-blocking, so it fails with `WSAEWOULDBLOCK` while the handshake runs
/// ([`connect_pending`]).
pub(crate) fn connect(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to an initialised address of `addr.len` bytes.
    cvt(unsafe { ws::connect(fd as SOCKET, addr.as_ptr(), addr.len) }).map(drop)
}

/// Whether a `connect` error means "still connecting: wait for writability and look again".
pub(crate) fn connect_pending(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(ws::WSAEWOULDBLOCK | ws::WSAEINPROGRESS | ws::WSAEALREADY | ws::WSAEINTR)
    )
}

/// Whether an `accept` error is a connection that died in the queue (retried, as Go does).
pub(crate) fn accept_retry(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(ws::WSAECONNABORTED | ws::WSAECONNRESET)
    )
}

/// Where a non-blocking connect stands after a writability wake-up: `Ok(true)` connected,
/// `Ok(false)` still in progress (a wake-up from an earlier event), `Err` its failure.
pub(crate) fn connect_result(fd: RawFd) -> io::Result<bool> {
    match take_error(fd)? {
        Some(error) if connect_pending(&error) => Ok(false),
        Some(error) => Err(error),
        // No error yet: connected only if the stack knows the peer (Go does the same).
        None => match peer_addr(fd) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(ws::WSAENOTCONN) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// `accept` returning the new (non-blocking, non-inheritable) socket and the peer.
pub(crate) fn accept(fd: RawFd) -> io::Result<(RawFd, SockAddr)> {
    let mut addr = SockAddr::empty();
    let new = accept_raw(fd, addr.as_mut_ptr(), &mut addr.len)?;
    Ok((new, addr))
}

/// `accept` without the peer address.
pub(crate) fn accept_fd(fd: RawFd) -> io::Result<RawFd> {
    accept_raw(fd, ptr::null_mut(), ptr::null_mut())
}

fn accept_raw(fd: RawFd, addr: *mut ws::SOCKADDR, len: *mut i32) -> io::Result<RawFd> {
    // SAFETY: `addr`/`len` are null or point to a buffer and its length (callers).
    let new = cvt_socket(unsafe { ws::accept(fd as SOCKET, addr, len) })?;
    // The accepted socket inherits the listener's attributes, but neither flag is documented
    // to carry over reliably: set both, as std does for inheritance.
    // SAFETY: `new` is a socket handle we own; clearing a flag takes no pointers.
    let not_inherited = unsafe { SetHandleInformation(new as HANDLE, HANDLE_FLAG_INHERIT, 0) };
    let result = if not_inherited == 0 {
        Err(io::Error::last_os_error())
    } else {
        set_nonblocking(new, true)
    };
    match result {
        Ok(()) => Ok(new),
        Err(error) => {
            close(new);
            Err(error)
        }
    }
}

/// `shutdown`.
pub(crate) fn shutdown(fd: RawFd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => ws::SD_RECEIVE,
        Shutdown::Write => ws::SD_SEND,
        Shutdown::Both => ws::SD_BOTH,
    };
    // SAFETY: `shutdown` takes no pointers.
    cvt(unsafe { ws::shutdown(fd as SOCKET, how) }).map(drop)
}

/// `getsockname`.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: `addr` is a writable buffer of `addr.len` bytes.
    cvt(unsafe { ws::getsockname(fd as SOCKET, addr.as_mut_ptr(), &mut addr.len) })?;
    Ok(addr)
}

/// `getpeername`.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: `addr` is a writable buffer of `addr.len` bytes.
    cvt(unsafe { ws::getpeername(fd as SOCKET, addr.as_mut_ptr(), &mut addr.len) })?;
    Ok(addr)
}

// ---- data transfer -------------------------------------------------------------------

/// A read after the local `shutdown(Read)` fails with `WSAESHUTDOWN` on Windows; std (and
/// Unix) report end of stream instead.
fn end_of_stream_on_shutdown(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Err(e) if e.raw_os_error() == Some(ws::WSAESHUTDOWN) => Ok(0),
        other => other,
    }
}

/// `recv`, optionally with `MSG_PEEK`.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let flags = if peek { ws::MSG_PEEK } else { 0 };
    let len = buf.len().min(MAX_LEN) as i32;
    // SAFETY: `buf` is writable for `len` bytes.
    let n = cvt(unsafe { ws::recv(fd as SOCKET, buf.as_mut_ptr(), len, flags) });
    end_of_stream_on_shutdown(n.map(|n| n as usize))
}

/// `send` (Windows has no `SIGPIPE`: no flag needed).
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let len = buf.len().min(MAX_LEN) as i32;
    // SAFETY: `buf` is readable for `len` bytes.
    let n = cvt(unsafe { ws::send(fd as SOCKET, buf.as_ptr(), len, 0) })?;
    Ok(n as usize)
}

/// `recvfrom`, optionally with `MSG_PEEK`.
pub(crate) fn recv_from(fd: RawFd, buf: &mut [u8], peek: bool) -> io::Result<(usize, SockAddr)> {
    let flags = if peek { ws::MSG_PEEK } else { 0 };
    let len = buf.len().min(MAX_LEN) as i32;
    let mut addr = SockAddr::empty();
    // SAFETY: `buf` is writable for `len` bytes, `addr` for `addr.len` bytes.
    let n = cvt(unsafe {
        ws::recvfrom(
            fd as SOCKET,
            buf.as_mut_ptr(),
            len,
            flags,
            addr.as_mut_ptr(),
            &mut addr.len,
        )
    })?;
    Ok((n as usize, addr))
}

/// `sendto`.
pub(crate) fn send_to(fd: RawFd, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
    let len = buf.len().min(MAX_LEN) as i32;
    // SAFETY: `buf` is readable for `len` bytes, `addr` holds `addr.len` bytes.
    let n =
        cvt(unsafe { ws::sendto(fd as SOCKET, buf.as_ptr(), len, 0, addr.as_ptr(), addr.len) })?;
    Ok(n as usize)
}

/// `WSARecv` into several buffers, without overlapped I/O (the socket is non-blocking, so the
/// call returns at once).
pub(crate) fn read_vectored(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(MAX_BUFS) as u32;
    let mut received = 0u32;
    let mut flags = 0u32;
    // SAFETY: `IoSliceMut` is ABI-compatible with `WSABUF` on Windows (std guarantees it),
    // and each one describes a writable buffer; the counters are live locals; no overlapped.
    let result = cvt(unsafe {
        ws::WSARecv(
            fd as SOCKET,
            bufs.as_mut_ptr().cast::<WSABUF>(),
            count,
            &mut received,
            &mut flags,
            ptr::null_mut(),
            None,
        )
    });
    end_of_stream_on_shutdown(result.map(|_| received as usize))
}

/// `WSASend` from several buffers, without overlapped I/O.
pub(crate) fn write_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(MAX_BUFS) as u32;
    let mut sent = 0u32;
    // SAFETY: `IoSlice` is ABI-compatible with `WSABUF` (std guarantees it); `WSASend` only
    // reads the buffers; the counter is a live local; no overlapped.
    cvt(unsafe {
        ws::WSASend(
            fd as SOCKET,
            bufs.as_ptr().cast::<WSABUF>(),
            count,
            &mut sent,
            0,
            ptr::null_mut(),
            None,
        )
    })?;
    Ok(sent as usize)
}

// ---- errors ------------------------------------------------------------------------------

/// The error of an operation whose std-style timeout expired: `WouldBlock`, as on Unix, so a
/// timeout (`WouldBlock`) and a Go-style deadline (`TimedOut`) stay distinguishable on every
/// platform. (std on Windows reports its own timeouts as `WSAETIMEDOUT`.)
pub(crate) fn timeout_error() -> io::Error {
    io::Error::from_raw_os_error(ws::WSAEWOULDBLOCK)
}

// ---- std views -----------------------------------------------------------------------------

/// Calls `f` with a std socket of type `T` that views `fd` without owning it (it is never
/// dropped, so `fd` is not closed).
///
/// The caller keeps `fd` open for the call (it holds an operation reference on the socket).
pub(crate) fn with_std<T: FromRawSocket + IntoRawSocket, R>(
    fd: RawFd,
    f: impl FnOnce(&T) -> R,
) -> R {
    // SAFETY: `fd` is an open socket, kept open by the caller for the whole call;
    // `ManuallyDrop` guarantees the view never closes it, even if `f` panics.
    let view = ManuallyDrop::new(unsafe { T::from_raw_socket(fd) });
    f(&view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sockets_are_nonblocking() {
        let fd = inet_socket(&"127.0.0.1:0".parse().unwrap(), Kind::Stream).unwrap();
        bind(fd, &SockAddr::inet(&"127.0.0.1:0".parse().unwrap())).unwrap();
        listen(fd, listen_backlog()).unwrap();
        // Nobody connects: a blocking socket would wait here forever.
        let error = accept_fd(fd).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(!retire(fd), "Windows has no placeholder");
        close(fd);
    }
}
