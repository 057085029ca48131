//! TCP, UDP and Unix sockets with the `std::net` API whose blocking calls park the calling
//! coroutine instead of its thread (Go's `net` package over `internal/poll`).
//!
//! ```
//! use std::io::{Read, Write};
//! use coronet_net::{TcpListener, TcpStream};
//!
//! coronet_runtime::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     // One coroutine per connection, written in blocking style.
//!     coronet_runtime::spawn(move || {
//!         for conn in listener.incoming() {
//!             let mut conn = conn.unwrap();
//!             coronet_runtime::spawn(move || {
//!                 let mut buf = [0; 1024];
//!                 loop {
//!                     match conn.read(&mut buf) {
//!                         Ok(0) | Err(_) => break,
//!                         Ok(n) => conn.write_all(&buf[..n]).unwrap(),
//!                     }
//!                 }
//!             });
//!         }
//!     });
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"ping").unwrap();
//!     let mut reply = [0; 4];
//!     client.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"ping");
//! });
//! ```
//!
//! # How it works
//!
//! Each socket is created non-blocking and registered once, edge-triggered, with the
//! runtime's poller (a [`coronet_runtime::io::Registration`], Go's `pollDesc`). Every
//! operation runs one loop: try the syscall; on `EAGAIN` park until the poll thread reports
//! readiness, then retry. Outside a coroutine the same loop blocks the thread, so every type
//! also works from plain threads. See `docs/net.md` for the state machine, close and deadline
//! semantics and the Go mapping.
//!
//! # Differences from std
//!
//! * [`close`](TcpStream::close) closes a socket for all its handles and wakes operations
//!   blocked on it with the closed error ([`is_closed_error`]), as Go's `Close`; `incoming()`
//!   ends after it.
//! * Go-style deadlines ([`set_read_deadline`](TcpStream::set_read_deadline), ...) next to
//!   std's timeouts. Timeouts fail with `WouldBlock` (as std on Unix), deadlines with
//!   `TimedOut`.
//! * `try_clone` shares the socket instead of `dup`ing it.
//! * Address arguments take this crate's [`ToSocketAddrs`] (implemented for the same types
//!   as std's), whose host names resolve on the blocking pool.
//!
//! # Portability
//!
//! Unix (Linux, the BSDs, macOS) and Windows. On Windows there is no [`unix`] module, the
//! raw conversions are `AsRawSocket`/`AsSocket`/`IntoRawSocket`/`FromRawSocket` instead of
//! the `*Fd` traits, and a closed socket keeps its handle (shut down, unusable) until its last
//! handle is dropped. See `docs/net.md` ("Platforms") for what is tested where.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod common;

mod addr;
mod deadline;
// The one platform switch of the raw conversions (`AsRawFd`... or `AsRawSocket`...).
#[cfg_attr(unix, path = "fd.rs")]
#[cfg_attr(windows, path = "raw_socket.rs")]
mod conversions;
mod ops;
mod socket;
mod sys;
mod tcp;
mod udp;
// Unix domain sockets exist on Unix only.
#[cfg(unix)]
pub mod unix;

pub use addr::{Addrs, ToSocketAddrs};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Whether `error` is the error of an operation on a closed socket (after
/// [`TcpStream::close`] and friends): Go's `errors.Is(err, net.ErrClosed)`. Its kind is
/// `ErrorKind::NotConnected` and its message "use of closed network connection".
///
/// ```
/// let listener = coronet_net::TcpListener::bind("127.0.0.1:0").unwrap();
/// listener.close().unwrap();
/// let error = listener.accept().unwrap_err();
/// assert!(coronet_net::is_closed_error(&error));
/// assert_eq!(error.kind(), std::io::ErrorKind::NotConnected);
/// ```
pub fn is_closed_error(error: &std::io::Error) -> bool {
    socket::is_closed_error(error)
}
