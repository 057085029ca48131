//! Conversions between coronet sockets, std sockets and raw descriptors (Unix).
//!
//! A descriptor coming in (`From<std::net::TcpStream>`, `from_std`, `FromRawFd`) is made
//! non-blocking and registered with the calling coroutine's runtime (the default runtime on
//! a plain thread). `from_std` reports a registration failure; `From` and `FromRawFd` cannot,
//! so they panic with the error (the descriptor is closed first).
//!
//! A descriptor going out (`IntoRawFd`) is deregistered and left non-blocking. If other
//! handles ([`try_clone`](crate::TcpStream::try_clone)) still share the socket, a duplicate
//! (`F_DUPFD_CLOEXEC`) is returned instead and the shared socket lives on; that `dup` panics
//! if the process is out of descriptors.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::Arc;

use crate::socket::Socket;
use crate::sys;
use crate::unix::{UnixDatagram, UnixListener, UnixStream};
use crate::{TcpListener, TcpStream, UdpSocket};

macro_rules! fd_conversions {
    ($($ty:ident <=> $std:ty),* $(,)?) => {$(
        impl $ty {
            /// Adopts a std socket: makes it non-blocking and registers it with the calling
            /// coroutine's runtime (the default runtime on a plain thread).
            pub fn from_std(socket: $std) -> io::Result<$ty> {
                Ok($ty {
                    socket: Arc::new(Socket::adopt(socket.into_raw_fd())?),
                })
            }
        }

        impl From<$std> for $ty {
            /// As [`from_std`]($ty::from_std).
            ///
            /// # Panics
            /// If the socket cannot be registered with the runtime's poller (the socket is
            /// closed first); use `from_std` to get that error instead.
            fn from(socket: $std) -> $ty {
                $ty::from_std(socket).unwrap_or_else(|e| {
                    panic!(concat!("coronet: cannot adopt a ", stringify!($std), ": {}"), e)
                })
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.socket.raw()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the descriptor number stays open until the `Socket` is dropped
                // (after `close` it names a placeholder, `sys::retire`), and `self` keeps the
                // `Socket` alive for the borrow.
                unsafe { BorrowedFd::borrow_raw(self.socket.raw()) }
            }
        }

        impl IntoRawFd for $ty {
            /// The descriptor, deregistered and still non-blocking.
            ///
            /// # Panics
            /// If other handles share the socket and duplicating the descriptor fails.
            fn into_raw_fd(self) -> RawFd {
                match Arc::try_unwrap(self.socket) {
                    Ok(socket) => socket.into_raw(),
                    Err(shared) => sys::duplicate(shared.raw()).unwrap_or_else(|e| {
                        panic!("coronet: cannot duplicate a shared socket's descriptor: {e}")
                    }),
                }
            }
        }

        impl FromRawFd for $ty {
            /// Adopts `fd` as [`from_std`]($ty::from_std) does.
            ///
            /// # Safety
            /// `fd` must be an open socket of the right kind, owned by the caller, who
            /// gives up that ownership.
            ///
            /// # Panics
            /// If the socket cannot be registered (it is closed first).
            unsafe fn from_raw_fd(fd: RawFd) -> $ty {
                // SAFETY: the caller hands over an owned open socket of this kind.
                $ty::from(unsafe { <$std>::from_raw_fd(fd) })
            }
        }
    )*};
}

fd_conversions!(
    TcpListener <=> std::net::TcpListener,
    TcpStream <=> std::net::TcpStream,
    UdpSocket <=> std::net::UdpSocket,
    UnixListener <=> std::os::unix::net::UnixListener,
    UnixStream <=> std::os::unix::net::UnixStream,
    UnixDatagram <=> std::os::unix::net::UnixDatagram,
);
