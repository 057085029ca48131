//! Unix backend: thin wrappers over the BSD socket calls (`addr.rs`: socket addresses in
//! their C form; `opt.rs`: socket options).
//!
//! Every function is one syscall (or a fixed short sequence of them) with errno turned into
//! `io::Error`. None retries `EINTR` and none waits: `socket.rs` owns that policy. Every
//! descriptor this file creates is close-on-exec and non-blocking from birth
//! (`SOCK_NONBLOCK | SOCK_CLOEXEC`, `accept4`, `F_DUPFD_CLOEXEC`); where the platform lacks the
//! atomic flags (Apple) they are set with `fcntl` right after, and `SO_NOSIGPIPE` stands in for
//! `MSG_NOSIGNAL`, so that no write ever raises `SIGPIPE`.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::{self, ManuallyDrop};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::OnceLock;

use libc::{c_int, c_void, socklen_t};

pub(crate) use std::os::fd::RawFd;

mod addr;
mod opt;

pub(crate) use self::addr::SockAddr;
pub(crate) use self::opt::{get_opt, multicast_v4, multicast_v6, set_opt, take_error, Opt};

/// Declares items for platforms with `SOCK_NONBLOCK`/`SOCK_CLOEXEC` and `accept4`.
macro_rules! with_atomic_flags {
    ($($item:item)*) => {$(
        #[cfg(any(
            target_os = "linux", target_os = "android", target_os = "freebsd",
            target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd",
            target_os = "illumos",
        ))]
        $item
    )*};
}

/// Declares items for platforms without them (Apple): `fcntl` after the fact.
macro_rules! without_atomic_flags {
    ($($item:item)*) => {$(
        #[cfg(not(any(
            target_os = "linux", target_os = "android", target_os = "freebsd",
            target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd",
            target_os = "illumos",
        )))]
        $item
    )*};
}

/// Whether a TCP listener sets `SO_REUSEADDR` before `bind`: yes on Unix, as std and Go do, so
/// a restarted server can bind while old connections sit in TIME_WAIT.
pub(crate) const LISTENER_REUSE_ADDR: bool = true;

/// The descriptor value of "no descriptor".
pub(crate) const INVALID: RawFd = -1;

/// Flags of every `send`/`sendto`/`sendmsg`: never raise `SIGPIPE` on a dead peer.
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;
/// Apple has no `MSG_NOSIGNAL`; its sockets get `SO_NOSIGPIPE` at creation instead.
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: c_int = 0;

/// Largest iovec count passed to one `readv`/`sendmsg` (POSIX `IOV_MAX` is at least 1024 on
/// every supported system; extra buffers are simply not filled, as std does).
const MAX_IOV: usize = 1024;

trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}
impl MinusOne for c_int {
    const MINUS_ONE: Self = -1;
}
impl MinusOne for isize {
    const MINUS_ONE: Self = -1;
}

/// Turns a `-1` return into the thread's `errno`.
fn cvt<T: MinusOne>(ret: T) -> io::Result<T> {
    if ret == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
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

fn sock_type(kind: Kind) -> c_int {
    match kind {
        Kind::Stream => libc::SOCK_STREAM,
        Kind::Datagram => libc::SOCK_DGRAM,
    }
}

// ---- creating descriptors ------------------------------------------------------------

/// A new non-blocking, close-on-exec IP socket of `addr`'s family.
pub(crate) fn inet_socket(addr: &SocketAddr, kind: Kind) -> io::Result<RawFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    new_socket(domain, sock_type(kind))
}

/// A new non-blocking, close-on-exec Unix domain socket.
pub(crate) fn unix_socket(kind: Kind) -> io::Result<RawFd> {
    new_socket(libc::AF_UNIX, sock_type(kind))
}

with_atomic_flags! {
    fn new_socket(domain: c_int, ty: c_int) -> io::Result<RawFd> {
        // SAFETY: `socket` takes no pointers.
        cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })
    }

    /// A connected pair of non-blocking, close-on-exec Unix sockets.
    pub(crate) fn unix_pair(kind: Kind) -> io::Result<(RawFd, RawFd)> {
        let mut fds = [-1 as c_int; 2];
        let ty = sock_type(kind) | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
        cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) })?;
        Ok((fds[0], fds[1]))
    }

    fn accept_raw(fd: RawFd, addr: *mut libc::sockaddr, len: *mut socklen_t) -> io::Result<RawFd> {
        // SAFETY: `addr`/`len` are null or point to a buffer and its length (callers).
        cvt(unsafe { libc::accept4(fd, addr, len, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) })
    }
}

without_atomic_flags! {
    fn new_socket(domain: c_int, ty: c_int) -> io::Result<RawFd> {
        // SAFETY: `socket` takes no pointers.
        let fd = cvt(unsafe { libc::socket(domain, ty, 0) })?;
        prepare_new(fd)
    }

    /// A connected pair of non-blocking, close-on-exec Unix sockets.
    pub(crate) fn unix_pair(kind: Kind) -> io::Result<(RawFd, RawFd)> {
        let mut fds = [-1 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
        cvt(unsafe { libc::socketpair(libc::AF_UNIX, sock_type(kind), 0, fds.as_mut_ptr()) })?;
        match prepare_new(fds[0]) {
            Ok(_) => Ok((fds[0], prepare_new(fds[1]).inspect_err(|_| close(fds[0]))?)),
            Err(e) => {
                close(fds[1]);
                Err(e)
            }
        }
    }

    fn accept_raw(fd: RawFd, addr: *mut libc::sockaddr, len: *mut socklen_t) -> io::Result<RawFd> {
        // SAFETY: `addr`/`len` are null or point to a buffer and its length (callers).
        let fd = cvt(unsafe { libc::accept(fd, addr, len) })?;
        prepare_new(fd)
    }

    /// Close-on-exec, non-blocking, no `SIGPIPE`; closes `fd` on failure.
    fn prepare_new(fd: RawFd) -> io::Result<RawFd> {
        let result = set_cloexec(fd).and_then(|()| prepare_adopted(fd));
        match result {
            Ok(()) => Ok(fd),
            Err(e) => {
                close(fd);
                Err(e)
            }
        }
    }

    fn set_cloexec(fd: RawFd) -> io::Result<()> {
        // SAFETY: `fcntl` with `F_GETFD`/`F_SETFD` takes no pointers.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }).map(drop)
    }
}

/// Prepares a descriptor handed in from outside (a std socket, `from_raw_fd`): non-blocking
/// and, where `MSG_NOSIGNAL` does not exist, `SO_NOSIGPIPE`.
pub(crate) fn prepare_adopted(fd: RawFd) -> io::Result<()> {
    set_nonblocking(fd, true)?;
    set_nosigpipe(fd)
}

#[cfg(target_vendor = "apple")]
fn set_nosigpipe(fd: RawFd) -> io::Result<()> {
    opt::setsockopt(fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1 as c_int)
}
#[cfg(not(target_vendor = "apple"))]
fn set_nosigpipe(_fd: RawFd) -> io::Result<()> {
    Ok(())
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    // SAFETY: `fcntl` with `F_GETFL`/`F_SETFL` takes no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// A close-on-exec duplicate of `fd`.
pub(crate) fn duplicate(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: `fcntl` with `F_DUPFD_CLOEXEC` takes no pointers.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

/// Closes `fd`, ignoring errors (after `close` the descriptor is gone whatever it returns,
/// and retrying on `EINTR` could close a reused number).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: `close` takes no pointers; callers own `fd` and never use it again.
    unsafe { libc::close(fd) };
}

/// Releases the socket behind `fd` while keeping the number `fd` allocated: a placeholder
/// (an unconnected Unix socket shared by all retired descriptors) is `dup2`ed over it, which
/// closes the socket's open file description atomically. Returns false (and leaves `fd` as
/// it was) if no placeholder could be made.
///
/// Used by `Socket::close`: handles may still hand out `as_fd()`/`as_raw_fd()` until they are
/// dropped, and those must never name a descriptor someone else has opened since.
pub(crate) fn retire(fd: RawFd) -> bool {
    static PLACEHOLDER: OnceLock<Option<RawFd>> = OnceLock::new();
    let Some(placeholder) = *PLACEHOLDER.get_or_init(|| unix_socket(Kind::Stream).ok()) else {
        return false;
    };
    loop {
        // SAFETY: `dup2` takes no pointers; `placeholder` stays open for the process's life
        // and the caller owns `fd`.
        match cvt(unsafe { libc::dup2(placeholder, fd) }) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    // `dup2` cleared close-on-exec on `fd`; restore it (a racing exec leaks only the
    // placeholder, never the socket).
    // SAFETY: `fcntl` with `F_SETFD` takes no pointers.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    true
}

// ---- connection setup ------------------------------------------------------------------

/// `bind(2)`.
pub(crate) fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to an initialised address of `addr.len` bytes.
    cvt(unsafe { libc::bind(fd, addr.as_ptr(), addr.len) }).map(drop)
}

/// `listen(2)`.
pub(crate) fn listen(fd: RawFd, backlog: c_int) -> io::Result<()> {
    // SAFETY: `listen` takes no pointers.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// The backlog `listen` gets: the system's maximum, as Go's `maxListenerBacklog` (std uses
/// 128, which a burst of 1,000 connects overflows: the kernel then drops SYNs and clients
/// stall for a retransmit second). Linux: `/proc/sys/net/core/somaxconn` read once, capped
/// at 65535 as Go does (older kernels keep it in 16 bits); elsewhere `SOMAXCONN`.
pub(crate) fn listen_backlog() -> c_int {
    static BACKLOG: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    *BACKLOG.get_or_init(|| {
        system_max_backlog()
            .unwrap_or(libc::SOMAXCONN)
            .clamp(1, 65535)
    })
}

#[cfg(target_os = "linux")]
fn system_max_backlog() -> Option<c_int> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn system_max_backlog() -> Option<c_int> {
    None
}

/// `connect(2)`; non-blocking, so it may fail with `EINPROGRESS` ([`connect_pending`]).
pub(crate) fn connect(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to an initialised address of `addr.len` bytes.
    cvt(unsafe { libc::connect(fd, addr.as_ptr(), addr.len) }).map(drop)
}

/// Whether a `connect` error means "still connecting: wait for writability and look again".
pub(crate) fn connect_pending(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINPROGRESS | libc::EALREADY | libc::EINTR)
    )
}

/// Whether an `accept` error is a connection that died in the queue (retried, as Go does).
pub(crate) fn accept_retry(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ECONNABORTED))
}

/// Where a non-blocking connect stands after a writability wake-up: `Ok(true)` connected,
/// `Ok(false)` still in progress (a wake-up from an earlier event), `Err` its failure.
pub(crate) fn connect_result(fd: RawFd) -> io::Result<bool> {
    match take_error(fd)? {
        Some(error) if connect_pending(&error) => Ok(false),
        Some(error) => Err(error),
        // No error yet: connected only if the kernel knows the peer (Go does the same).
        None => match peer_addr(fd) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// `accept(2)` returning the new (non-blocking, close-on-exec) descriptor and the peer.
pub(crate) fn accept(fd: RawFd) -> io::Result<(RawFd, SockAddr)> {
    let mut addr = SockAddr::empty();
    let new = accept_raw(fd, addr.as_mut_ptr(), &mut addr.len)?;
    Ok((new, addr))
}

/// `accept(2)` without the peer address.
pub(crate) fn accept_fd(fd: RawFd) -> io::Result<RawFd> {
    accept_raw(fd, std::ptr::null_mut(), std::ptr::null_mut())
}

/// `shutdown(2)`.
pub(crate) fn shutdown(fd: RawFd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: `shutdown` takes no pointers.
    cvt(unsafe { libc::shutdown(fd, how) }).map(drop)
}

/// `getsockname(2)`.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: `addr` is a writable buffer of `addr.len` bytes.
    cvt(unsafe { libc::getsockname(fd, addr.as_mut_ptr(), &mut addr.len) })?;
    Ok(addr)
}

/// `getpeername(2)`.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: `addr` is a writable buffer of `addr.len` bytes.
    cvt(unsafe { libc::getpeername(fd, addr.as_mut_ptr(), &mut addr.len) })?;
    Ok(addr)
}

// ---- data transfer -------------------------------------------------------------------

/// `recv(2)`, optionally with `MSG_PEEK`.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let flags = if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let n = cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast::<c_void>(), buf.len(), flags) })?;
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for `buf.len()` bytes.
    let n = cvt(unsafe { libc::send(fd, buf.as_ptr().cast::<c_void>(), buf.len(), SEND_FLAGS) })?;
    Ok(n as usize)
}

/// `recvfrom(2)`, optionally with `MSG_PEEK`.
pub(crate) fn recv_from(fd: RawFd, buf: &mut [u8], peek: bool) -> io::Result<(usize, SockAddr)> {
    let flags = if peek { libc::MSG_PEEK } else { 0 };
    let mut addr = SockAddr::empty();
    // SAFETY: `buf` is writable for `buf.len()` bytes, `addr` for `addr.len` bytes.
    let n = cvt(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
            flags,
            addr.as_mut_ptr(),
            &mut addr.len,
        )
    })?;
    Ok((n as usize, addr))
}

/// `sendto(2)` with `MSG_NOSIGNAL`.
pub(crate) fn send_to(fd: RawFd, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
    // SAFETY: `buf` is readable for `buf.len()` bytes, `addr` holds `addr.len` bytes.
    let n = cvt(unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast::<c_void>(),
            buf.len(),
            SEND_FLAGS,
            addr.as_ptr(),
            addr.len,
        )
    })?;
    Ok(n as usize)
}

/// `readv(2)`.
pub(crate) fn read_vectored(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(MAX_IOV) as c_int;
    // SAFETY: `IoSliceMut` is ABI-compatible with `iovec` on Unix (std guarantees it), and
    // each one describes a writable buffer.
    let n = cvt(unsafe { libc::readv(fd, bufs.as_mut_ptr().cast::<libc::iovec>(), count) })?;
    Ok(n as usize)
}

/// `sendmsg(2)` with `MSG_NOSIGNAL` (`writev` could raise `SIGPIPE`).
pub(crate) fn write_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero bytes are a valid, empty `msghdr`.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `sendmsg` never writes through `msg_iov`; the cast to `*mut` is only the C signature.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len().min(MAX_IOV) as _;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` (std guarantees it); `msg` points only
    // at `bufs`, which outlive the call.
    let n = cvt(unsafe { libc::sendmsg(fd, &msg, SEND_FLAGS) })?;
    Ok(n as usize)
}

// ---- errors ------------------------------------------------------------------------------

/// The error of an operation whose std-style timeout expired: on Unix std reports the
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` expiry as `EAGAIN` (`ErrorKind::WouldBlock`), and so do we.
pub(crate) fn timeout_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

// ---- std views -----------------------------------------------------------------------------

/// Calls `f` with a std socket of type `T` that views `fd` without owning it (it is never
/// dropped, so `fd` is not closed). Used where std can build a value we cannot, such as
/// `std::os::unix::net::SocketAddr`.
///
/// The caller keeps `fd` open for the call (it holds an operation reference on the socket).
pub(crate) fn with_std<T: FromRawFd + IntoRawFd, R>(fd: RawFd, f: impl FnOnce(&T) -> R) -> R {
    // SAFETY: `fd` is an open socket of the kind `T` expects, kept open by the caller for the
    // whole call; `ManuallyDrop` guarantees the view never closes it, even if `f` panics.
    let view = ManuallyDrop::new(unsafe { T::from_raw_fd(fd) });
    f(&view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(fd: RawFd) -> (c_int, c_int) {
        // SAFETY: fcntl with F_GETFL/F_GETFD reads flags of a descriptor the test owns.
        unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        }
    }

    #[test]
    fn new_descriptors_are_nonblocking_and_cloexec() {
        let fd = unix_socket(Kind::Stream).unwrap();
        let (status, descriptor) = flags(fd);
        assert_ne!(status & libc::O_NONBLOCK, 0);
        assert_ne!(descriptor & libc::FD_CLOEXEC, 0);
        assert!(retire(fd), "a placeholder can be made");
        assert_ne!(flags(fd).1 & libc::FD_CLOEXEC, 0);
        close(fd);
    }
}
