//! Methods every socket type has, written once: each type is a handle `{ socket:
//! Arc<Socket> }` and these delegate to [`crate::socket::Socket`].

/// `try_clone`, `take_error`, `set_nonblocking`, `close`, `is_closed`.
macro_rules! handle_methods {
    ($ty:ident) => {
        /// Another handle to the same socket, like std's `try_clone`.
        ///
        /// The handles share one descriptor, registration, timeouts and deadlines (std's
        /// clones share timeouts too: they are socket options). Reads and writes through
        /// either handle may run concurrently from different coroutines. The socket is
        /// closed when the last handle is dropped, or for all handles at once by
        /// [`close`](Self::close). Never fails (the `Result` is std's signature).
        pub fn try_clone(&self) -> ::std::io::Result<$ty> {
            Ok($ty {
                socket: ::std::sync::Arc::clone(&self.socket),
            })
        }

        /// Takes the pending socket error (`SO_ERROR`), clearing it.
        pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
            self.socket.take_error()
        }

        /// Moves the handle into or out of non-blocking mode, as std: in non-blocking mode
        /// an operation that would wait returns `ErrorKind::WouldBlock` instead. Applies to
        /// every handle of the socket. (The descriptor itself is always non-blocking; this
        /// only decides whether coronet parks.)
        pub fn set_nonblocking(&self, nonblocking: bool) -> ::std::io::Result<()> {
            self.socket.set_nonblocking(nonblocking)
        }

        /// Closes the socket for every handle now, as Go's `Close`: operations waiting on
        /// it (in other coroutines or threads) wake with the closed error
        /// ([`is_closed_error`](crate::is_closed_error), kind `NotConnected`), later ones
        /// fail with it at once, and the kernel socket is released as soon as the
        /// operations in flight have returned. The descriptor number stays reserved until
        /// the last handle is dropped, so `as_raw_fd()` never names another file.
        ///
        /// Fails with the closed error if the socket was already closed. Dropping every
        /// handle closes the socket too; `close` is for closing it under a handle another
        /// coroutine is blocked on.
        pub fn close(&self) -> ::std::io::Result<()> {
            self.socket.close()
        }

        /// Whether [`close`](Self::close) was called on any handle of this socket.
        pub fn is_closed(&self) -> bool {
            self.socket.is_closed()
        }
    };
}

/// Go's `SetDeadline` for listeners: `accept` waits on the read direction, so the listener's
/// deadline is its read deadline.
macro_rules! listener_deadline_methods {
    () => {
        /// Sets the accept deadline, as Go's `TCPListener.SetDeadline`: once `deadline` has
        /// passed, `accept` fails with `ErrorKind::TimedOut` ("i/o timeout"), even if a
        /// connection is queued. An `accept` already waiting sees the change at once: an
        /// extended deadline keeps it waiting, a past one wakes it. `None` clears it.
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        /// let listener = coronet_net::TcpListener::bind("127.0.0.1:0").unwrap();
        /// listener
        ///     .set_deadline(Some(Instant::now() + Duration::from_millis(10)))
        ///     .unwrap();
        /// let error = listener.accept().unwrap_err();
        /// assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        /// ```
        pub fn set_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.socket
                .set_deadline(::coronet_runtime::io::Interest::Read, deadline)
        }

        /// The accept deadline.
        pub fn deadline(&self) -> Option<::std::time::Instant> {
            self.socket.deadline(::coronet_runtime::io::Interest::Read)
        }
    };
}

/// std's timeouts and Go's deadlines, for types that read and write.
macro_rules! timeout_methods {
    () => {
        /// Sets the read timeout, as std: each read (or receive) that has to wait longer
        /// than `timeout` fails with `ErrorKind::WouldBlock` (std's `EAGAIN` on Unix).
        /// `None` waits forever; `Some(Duration::ZERO)` is an `InvalidInput` error.
        ///
        /// The timeout applies per operation and is combined with the read deadline
        /// ([`set_read_deadline`](Self::set_read_deadline)): the earlier wins.
        pub fn set_read_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.socket
                .set_timeout(::coronet_runtime::io::Interest::Read, timeout)
        }

        /// Sets the write timeout, as std (see [`set_read_timeout`](Self::set_read_timeout)).
        pub fn set_write_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.socket
                .set_timeout(::coronet_runtime::io::Interest::Write, timeout)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.socket.timeout(::coronet_runtime::io::Interest::Read)
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.socket.timeout(::coronet_runtime::io::Interest::Write)
        }

        /// Sets the read deadline, as Go's `SetReadDeadline`: once `deadline` has passed,
        /// reads fail with `ErrorKind::TimedOut` ("i/o timeout"), even if data is ready. A
        /// read already waiting sees the change at once: an extended deadline keeps it
        /// waiting, a past one wakes it. `None` clears the deadline.
        pub fn set_read_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.socket
                .set_deadline(::coronet_runtime::io::Interest::Read, deadline)
        }

        /// Sets the write deadline, as Go's `SetWriteDeadline` (see
        /// [`set_read_deadline`](Self::set_read_deadline)).
        pub fn set_write_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.socket
                .set_deadline(::coronet_runtime::io::Interest::Write, deadline)
        }

        /// Sets both deadlines, as Go's `SetDeadline`.
        pub fn set_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.set_read_deadline(deadline)?;
            self.set_write_deadline(deadline)
        }

        /// The read deadline.
        pub fn read_deadline(&self) -> Option<::std::time::Instant> {
            self.socket.deadline(::coronet_runtime::io::Interest::Read)
        }

        /// The write deadline.
        pub fn write_deadline(&self) -> Option<::std::time::Instant> {
            self.socket.deadline(::coronet_runtime::io::Interest::Write)
        }
    };
}

/// `Read` and `Write` for a stream type and for a shared reference to it (as std), so one
/// coroutine can read while another writes through the same handle.
///
/// `$read` is the socket's read method: `read_stream` for TCP (short reads drain the socket),
/// `read` for others (a Unix stream read stops short at passed descriptors, with data left).
macro_rules! stream_io {
    ($ty:ident, $read:ident) => {
        impl ::std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.socket.$read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.socket.read_vectored(bufs)
            }
        }

        impl ::std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.socket.$read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.socket.read_vectored(bufs)
            }
        }

        impl ::std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.socket.write(buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.socket.write_vectored(bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.socket.write(buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.socket.write_vectored(bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}
