//! The one platform switch of `coronet-net`.
//!
//! Each backend is a flat set of thin syscall wrappers exporting the same items (mio's `sys`
//! layout): the socket types' logic (`socket.rs`, `tcp.rs`, `udp.rs`, `unix.rs`) calls only
//! these and contains no `cfg`. Policy that holds everywhere (EINTR retry, parking on
//! `WouldBlock`, deadlines, close) lives once in `socket.rs`, not here.
//!
//! * `unix/`: the BSD socket calls on descriptors (`RawFd`).
//! * `windows/`: Winsock 2 on socket handles (`RawSocket`, exported under the same name
//!   `RawFd`), readiness from the poller's AFD requests. No Unix domain sockets there
//!   (`unix.rs` is compiled on Unix only).

#[cfg_attr(unix, path = "unix/mod.rs")]
#[cfg_attr(windows, path = "windows/mod.rs")]
mod imp;

pub(crate) use self::imp::*;
