//! Conversions between coronet sockets, std sockets and raw socket handles (Windows).
//!
//! A socket coming in (`From<std::net::TcpStream>`, `from_std`, `FromRawSocket`) is made
//! non-blocking and registered with the calling coroutine's runtime (the default runtime on
//! a plain thread). `from_std` reports a registration failure; `From` and `FromRawSocket`
//! cannot, so they panic with the error (the socket is closed first).
//!
//! A socket going out (`IntoRawSocket`) is deregistered and left non-blocking. If other
//! handles ([`try_clone`](crate::TcpStream::try_clone)) still share the socket, a duplicate
//! (`WSADuplicateSocketW`) is returned instead and the shared socket lives on; that
//! duplication panics if it fails.

use std::io;
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, FromRawSocket};
use std::os::windows::io::{IntoRawSocket, RawSocket};
use std::sync::Arc;

use crate::socket::Socket;
use crate::sys;
use crate::{TcpListener, TcpStream, UdpSocket};

macro_rules! socket_conversions {
    ($($ty:ident <=> $std:ty),* $(,)?) => {$(
        impl $ty {
            /// Adopts a std socket: makes it non-blocking and registers it with the calling
            /// coroutine's runtime (the default runtime on a plain thread).
            pub fn from_std(socket: $std) -> io::Result<$ty> {
                Ok($ty {
                    socket: Arc::new(Socket::adopt(socket.into_raw_socket())?),
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

        impl AsRawSocket for $ty {
            fn as_raw_socket(&self) -> RawSocket {
                self.socket.raw()
            }
        }

        impl AsSocket for $ty {
            fn as_socket(&self) -> BorrowedSocket<'_> {
                // SAFETY: the handle stays open until the `Socket` is dropped (after `close`
                // it is only shut down, `sys::retire`), and `self` keeps the `Socket` alive
                // for the borrow.
                unsafe { BorrowedSocket::borrow_raw(self.socket.raw()) }
            }
        }

        impl IntoRawSocket for $ty {
            /// The socket, deregistered and still non-blocking.
            ///
            /// # Panics
            /// If other handles share the socket and duplicating it fails.
            fn into_raw_socket(self) -> RawSocket {
                match Arc::try_unwrap(self.socket) {
                    Ok(socket) => socket.into_raw(),
                    Err(shared) => sys::duplicate(shared.raw()).unwrap_or_else(|e| {
                        panic!("coronet: cannot duplicate a shared socket: {e}")
                    }),
                }
            }
        }

        impl FromRawSocket for $ty {
            /// Adopts `socket` as [`from_std`]($ty::from_std) does.
            ///
            /// # Safety
            /// `socket` must be an open socket of the right kind, owned by the caller, who
            /// gives up that ownership.
            ///
            /// # Panics
            /// If the socket cannot be registered (it is closed first).
            unsafe fn from_raw_socket(socket: RawSocket) -> $ty {
                // SAFETY: the caller hands over an owned open socket of this kind.
                $ty::from(unsafe { <$std>::from_raw_socket(socket) })
            }
        }
    )*};
}

socket_conversions!(
    TcpListener <=> std::net::TcpListener,
    TcpStream <=> std::net::TcpStream,
    UdpSocket <=> std::net::UdpSocket,
);
