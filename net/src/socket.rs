//! `Socket`: one owned descriptor, its [`Registration`], and the one I/O loop every socket
//! operation runs through (Go's `internal/poll.FD`).
//!
//! # The I/O loop ([`Socket::do_io`])
//!
//! 1. Take an operation reference (below); fail with the closed error if the socket is
//!    closed.
//! 2. Fail with `TimedOut` if the direction's Go-style deadline has passed.
//! 3. Snapshot the direction's readiness, then try the syscall. `EINTR`: try again.
//!    `EAGAIN`: wait for a notification newer than the snapshot (park the coroutine, or block
//!    the plain thread) and go to 3; readiness can be spurious, the syscall decides.
//!    Anything else: that is the result.
//! 4. A wait that ends with `Closed` returns the closed error; one that ends with `TimedOut`
//!    returns the deadline's or the timeout's error (`deadline.rs`).
//!
//! # Close and the operation reference count (Go's `fdMutex`)
//!
//! `state` packs a `CLOSED` bit and the number of operations in flight. An operation
//! increments it (refused once `CLOSED` is set) and decrements it when it returns.
//! [`Socket::close`] sets `CLOSED` while holding a reference of its own, closes the
//! registration (every waiter wakes with the closed error, later waits fail at once), and
//! drops its reference. Whoever brings the count to zero with `CLOSED` set (the closer if
//! nothing was in flight, else the last operation to return) deregisters the descriptor and
//! releases the socket. So the kernel socket is released only when no operation can still be
//! inside a syscall on its number: a stale operation never reads or writes a descriptor that
//! was reused for another file.
//!
//! Releasing does not free the number itself: it is `dup2`-replaced by a dead placeholder
//! (`sys::retire`) and closed when the last handle is dropped, so `as_raw_fd`/`as_fd` on a
//! closed handle name nothing else either. If no placeholder can be made, the socket itself
//! stays open (but unusable, the registration closed) until the drop.
//!
//! Handles (`TcpStream`, `try_clone`s of it, ...) share one `Socket` through an `Arc`, so the
//! drop of the last handle is the plain close: no operation can be in flight then (each
//! borrows a handle).

use std::cell::UnsafeCell;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coronet_runtime::io::{Interest, Readiness, Registration, WaitError};

use crate::deadline::{Direction, Expiry, OpDeadline};
use crate::sys::{self, RawFd};

/// `state` bit: the socket was closed with [`Socket::close`].
const CLOSED: usize = 1;
/// `state` increment of one operation in flight.
const REF: usize = 2;

/// The payload of the error returned by operations on a closed socket, so that
/// [`crate::is_closed_error`] can recognise it.
#[derive(Debug)]
struct ClosedError;

impl std::fmt::Display for ClosedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("use of closed network connection")
    }
}

impl std::error::Error for ClosedError {}

/// The error of an operation on (or woken by the close of) a closed socket: Go's
/// `net.ErrClosed` message, kind `NotConnected`.
pub(crate) fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, ClosedError)
}

/// Whether `error` is [`closed_error`].
pub(crate) fn is_closed_error(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<ClosedError>())
}

/// An open socket registered with a runtime's poller.
pub(crate) struct Socket {
    fd: RawFd,
    /// Dropped exactly once, by `release` or by `drop` (see `state`). Shared access happens
    /// only while an operation reference is held, which keeps `release` away.
    registration: UnsafeCell<ManuallyDrop<Registration>>,
    /// `CLOSED | in-flight operations * REF` (Go's `fdMutex`, without its read/write locks:
    /// like std, concurrent reads on one socket are allowed and the kernel orders them).
    state: AtomicUsize,
    /// The user asked for non-blocking mode (`set_nonblocking`): return `WouldBlock` instead
    /// of waiting. The descriptor itself is always non-blocking.
    nonblocking: AtomicBool,
    read: Direction,
    write: Direction,
}

// SAFETY: the `UnsafeCell` holds a `Registration` (Send + Sync) that is only read through `&`
// while an operation reference is held, and mutated (dropped) only by the one party that
// brings the reference count to zero with `CLOSED` set, or by `Drop` (exclusive access).
unsafe impl Sync for Socket {}

/// An operation reference: while it lives the socket is not released.
struct OpRef<'a> {
    socket: &'a Socket,
}

impl Drop for OpRef<'_> {
    fn drop(&mut self) {
        // AcqRel: Release publishes this operation's use of the descriptor to whoever
        // releases it; Acquire, if we are the releaser, sees every other operation's use.
        let previous = self.socket.state.fetch_sub(REF, Ordering::AcqRel);
        if previous == CLOSED | REF {
            // SAFETY: we brought the count to zero with `CLOSED` set: no operation holds a
            // reference and none can take one, so nobody else uses the registration.
            unsafe { self.socket.release() };
        }
    }
}

impl Socket {
    /// Takes ownership of `fd` (open, non-blocking) and registers it. On failure `fd` is
    /// closed.
    pub(crate) fn from_fd(fd: RawFd) -> io::Result<Socket> {
        match Registration::new(fd) {
            Ok(registration) => Ok(Socket {
                fd,
                registration: UnsafeCell::new(ManuallyDrop::new(registration)),
                state: AtomicUsize::new(0),
                nonblocking: AtomicBool::new(false),
                read: Direction::default(),
                write: Direction::default(),
            }),
            Err(error) => {
                sys::close(fd);
                Err(error)
            }
        }
    }

    /// Adopts a descriptor from outside (std socket, `from_raw_fd`): makes it non-blocking
    /// and registers it. On failure `fd` is closed.
    pub(crate) fn adopt(fd: RawFd) -> io::Result<Socket> {
        if let Err(error) = sys::prepare_adopted(fd) {
            sys::close(fd);
            return Err(error);
        }
        Socket::from_fd(fd)
    }

    /// The descriptor number (stays allocated until the socket is dropped).
    pub(crate) fn raw(&self) -> RawFd {
        self.fd
    }

    fn op(&self) -> io::Result<OpRef<'_>> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & CLOSED != 0 {
                return Err(closed_error());
            }
            // Every change of `state` is a read-modify-write, so its modification order
            // decides the race with `close`: if this CAS wins, `CLOSED` is set later and the
            // releaser waits for our decrement. No data is published by taking a reference
            // (Acquire only orders this operation after the state it checked).
            match self.state.compare_exchange_weak(
                state,
                state + REF,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(OpRef { socket: self }),
                Err(current) => state = current,
            }
        }
    }

    fn registration(&self, _op: &OpRef<'_>) -> &Registration {
        // SAFETY: `_op` is an operation reference, so `release` has not run and cannot run
        // until it is dropped; the returned borrow cannot outlive it.
        unsafe { &*self.registration.get() }
    }

    /// Deregisters and releases the socket.
    ///
    /// # Safety
    /// Called once, by the party that brought the reference count to zero with `CLOSED` set
    /// (no operation reference exists and none can be taken).
    unsafe fn release(&self) {
        // SAFETY: the caller guarantees exclusive access to the registration; it is never
        // used again (`CLOSED` refuses new operations, `Drop` skips it when `CLOSED`).
        unsafe { ManuallyDrop::drop(&mut *self.registration.get()) };
        if !sys::retire(self.fd) {
            // No placeholder: keep the descriptor, but end any connection on it now.
            let _ = sys::shutdown(self.fd, std::net::Shutdown::Both);
        }
    }

    /// Closes the socket for every handle (Go's `Close`): wakes every waiting operation with
    /// the closed error, refuses new ones, and releases the socket once the operations in
    /// flight have returned. Fails with the closed error if already closed.
    pub(crate) fn close(&self) -> io::Result<()> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & CLOSED != 0 {
                return Err(closed_error());
            }
            // Set CLOSED and take a reference of our own (Go's `increfAndClose`). AcqRel:
            // if nothing is in flight we may be the releaser, and must see (Acquire) every
            // earlier operation's Release decrement.
            match self.state.compare_exchange_weak(
                state,
                (state | CLOSED) + REF,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        let op = OpRef { socket: self };
        // Go's `pollUnblock`: waiters wake with `WaitError::Closed`.
        self.registration(&op).close();
        drop(op);
        Ok(())
    }

    /// Whether [`Socket::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn direction(&self, interest: Interest) -> &Direction {
        match interest {
            Interest::Read => &self.read,
            Interest::Write => &self.write,
        }
    }

    /// Runs `op` (one syscall on the descriptor) until it stops returning `WouldBlock`,
    /// waiting for `interest` in between. The per-operation timeout of `interest`'s direction
    /// applies.
    pub(crate) fn do_io<R>(
        &self,
        interest: Interest,
        op: impl FnMut(RawFd) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_loop(interest, OpDeadline::from_timeout(), None, op)
    }

    /// [`Socket::do_io`] for a read from a TCP stream: a read that returns fewer bytes than
    /// `len` (but not 0) drained the socket, so the next read waits for an event instead of
    /// making a syscall that would fail with `EAGAIN` (`Registration::note_drained` says
    /// when this holds).
    pub(crate) fn do_stream_read(
        &self,
        len: usize,
        op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let drained = |n: &usize| *n > 0 && *n < len;
        self.io_loop(
            Interest::Read,
            OpDeadline::from_timeout(),
            Some(&drained),
            op,
        )
    }

    /// [`Socket::do_io`] with a fixed operation deadline (connect): `TimedOut` after it.
    pub(crate) fn do_io_until<R>(
        &self,
        interest: Interest,
        deadline: Option<Instant>,
        op: impl FnMut(RawFd) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_loop(
            interest,
            OpDeadline::fixed(deadline, Expiry::Connect),
            None,
            op,
        )
    }

    /// The loop behind every operation that may wait. `drained`, for TCP reads only, says
    /// which results drained the socket (see [`Socket::do_stream_read`]).
    fn io_loop<R>(
        &self,
        interest: Interest,
        mut deadline: OpDeadline,
        drained: Option<&dyn Fn(&R) -> bool>,
        mut op: impl FnMut(RawFd) -> io::Result<R>,
    ) -> io::Result<R> {
        let guard = self.op()?;
        let registration = self.registration(&guard);
        let direction = self.direction(interest);
        direction.check()?;
        let result = loop {
            // Snapshot before the syscall: an event between its EAGAIN and the wait makes
            // the wait return at once (and stays exact with several waiters).
            let since = registration.readiness(interest);
            let skip = drained.is_some()
                && !self.nonblocking.load(Ordering::Relaxed)
                && registration.is_drained(interest, since);
            let attempt = if skip {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                op(self.fd)
            };
            match attempt {
                Ok(value) => {
                    if drained.is_some_and(|drained| drained(&value)) {
                        registration.note_drained(interest, since);
                    }
                    break Ok(value);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.nonblocking.load(Ordering::Relaxed) {
                        break Err(e);
                    }
                    if let Err(e) = self.wait(registration, interest, since, &mut deadline) {
                        break Err(e);
                    }
                }
                other => break other,
            }
        };
        direction.disarm(registration, interest, &mut deadline);
        result
    }

    /// Waits for `interest` after a `WouldBlock` (step 4 of the loop).
    fn wait(
        &self,
        registration: &Registration,
        interest: Interest,
        since: Readiness,
        op: &mut OpDeadline,
    ) -> io::Result<()> {
        let direction = self.direction(interest);
        direction.arm(registration, interest, op);
        match registration.wait_since(interest, since) {
            Ok(()) => Ok(()),
            Err(WaitError::Closed) => Err(closed_error()),
            Err(WaitError::TimedOut) => {
                direction.expired(op)?;
                // Another operation's deadline woke us; it removes it when it returns.
                coronet_runtime::yield_now();
                Ok(())
            }
        }
    }

    /// Runs `f` on the descriptor under an operation reference, without waiting (options,
    /// addresses, `shutdown`).
    pub(crate) fn with_fd<R>(&self, f: impl FnOnce(RawFd) -> io::Result<R>) -> io::Result<R> {
        let _guard = self.op()?;
        f(self.fd)
    }

    /// [`Socket::with_fd`] with the registration too (to notify its waiters).
    pub(crate) fn with_registration<R>(
        &self,
        f: impl FnOnce(RawFd, &Registration) -> io::Result<R>,
    ) -> io::Result<R> {
        let guard = self.op()?;
        f(self.fd, self.registration(&guard))
    }

    /// Sets the std-style timeout of one direction; zero is refused as std does.
    pub(crate) fn set_timeout(
        &self,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let _guard = self.op()?;
        self.direction(interest).set_timeout(timeout);
        Ok(())
    }

    pub(crate) fn timeout(&self, interest: Interest) -> io::Result<Option<Duration>> {
        let _guard = self.op()?;
        Ok(self.direction(interest).timeout())
    }

    /// Sets the Go-style deadline of one direction (takes effect for a waiting operation).
    pub(crate) fn set_deadline(
        &self,
        interest: Interest,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let guard = self.op()?;
        self.direction(interest)
            .set_deadline(self.registration(&guard), interest, deadline);
        Ok(())
    }

    pub(crate) fn deadline(&self, interest: Interest) -> Option<Instant> {
        self.direction(interest).deadline()
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let _guard = self.op()?;
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Gives up the descriptor without closing it (deregistered, still non-blocking).
    pub(crate) fn into_raw(mut self) -> RawFd {
        let fd = self.fd;
        let state = self.state.get_mut();
        if *state & CLOSED == 0 {
            // SAFETY: we own the socket (by value): no operation is in flight, and the
            // registration was not released (`CLOSED` is clear). Setting `CLOSED` below
            // keeps `Drop` from dropping it again.
            unsafe { ManuallyDrop::drop(self.registration.get_mut()) };
            *state |= CLOSED;
        }
        self.fd = sys::INVALID;
        fd
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if *self.state.get_mut() & CLOSED == 0 {
            // Deregister before closing (the registration's contract).
            // SAFETY: `&mut self`: no operation is in flight, and without `CLOSED` the
            // registration was never released.
            unsafe { ManuallyDrop::drop(self.registration.get_mut()) };
        }
        if self.fd != sys::INVALID {
            sys::close(self.fd);
        }
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fd)
            .field("closed", &self.is_closed())
            .finish()
    }
}
