//! The one platform switch of `coronet-net`.
//!
//! Each backend is a flat file of thin syscall wrappers exporting the same items (mio's
//! `sys` layout): the socket types' logic (`socket.rs`, `tcp.rs`, `udp.rs`, `unix.rs`) calls
//! only these and contains no `cfg`. Policy that holds everywhere (EINTR retry, parking on
//! `WouldBlock`, deadlines, close) lives once in `socket.rs`, not here.
//!
//! Only the Unix backend exists. A Windows backend (IOCP-registered `SOCKET`s, `WSARecv` /
//! `WSASend`) would be `windows.rs` beside it, exporting the same functions.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use self::unix::*;

#[cfg(not(unix))]
compile_error!(
    "coronet-net supports Unix targets only for now: the Windows backend (net/src/sys/windows.rs) \
     is not written yet; see docs/net.md"
);
