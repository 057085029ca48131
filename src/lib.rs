//! coronet: Go's network poller and M:N stackful coroutines for Rust.
//!
//! Write servers in plain blocking style, one coroutine per connection, and get event-loop
//! scalability: a read that would block parks the coroutine on its socket's poll descriptor,
//! and the poll thread wakes it when the socket is ready.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use coronet::net::TcpListener;
//!
//! fn main() -> std::io::Result<()> {
//!     coronet::run(|| {
//!         let listener = TcpListener::bind("127.0.0.1:7000")?;
//!         for stream in listener.incoming() {
//!             let mut stream = stream?;
//!             coronet::spawn(move || {
//!                 let mut buf = [0u8; 4096];
//!                 loop {
//!                     let n = stream.read(&mut buf)?;
//!                     if n == 0 {
//!                         return Ok::<_, std::io::Error>(());
//!                     }
//!                     stream.write_all(&buf[..n])?;
//!                 }
//!             });
//!         }
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The layers, each its own crate and re-exported here:
//!
//! * [`poller`] (`coronet-poller`): one contract over epoll, kqueue and IOCP (Go's netpoll);
//! * the runtime (`coronet-runtime`, re-exported at the root and as [`runtime`],
//!   [`coroutine`], [`io`]): coroutines, the scheduler, the poll thread, timers;
//! * [`net`] (`coronet-net`): TCP, UDP and Unix sockets with the `std::net` API.
//!
//! See `docs/` for the design and the Go-to-coronet mapping.

#![warn(missing_docs)]

pub use coronet_net as net;
pub use coronet_poller as poller;
pub use coronet_runtime::*;
