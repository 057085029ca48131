//! Per-direction deadlines and timeouts: Go's `SetReadDeadline` next to std's
//! `set_read_timeout`, folded into the one deadline a [`Registration`] has per direction.
//!
//! A direction of a socket has
//!
//! * a **deadline** (Go style, absolute): every operation after it fails with
//!   `ErrorKind::TimedOut`, even if data is ready (Go checks it before the syscall too), and a
//!   waiting operation is woken when it passes. Changing it while an operation waits takes
//!   effect at once (Go's `SetDeadline` contract);
//! * a **timeout** (std style, relative): each operation that has to wait gets `now + timeout`
//!   as its own deadline, and fails with `ErrorKind::WouldBlock` (std's `EAGAIN` on Unix) when
//!   it passes;
//! * the per-operation deadlines of operations waiting right now (an operation's timeout, or
//!   `connect_timeout`'s).
//!
//! The registration's deadline is the earliest of all of them, recomputed under this
//! direction's lock whenever one changes, so only one timer is armed per direction. A waiter
//! woken by an expiry that is not its own (another operation's timeout) retries.
//!
//! Fast path: with no deadline and no timeout set, an operation never takes the lock, never
//! reads the clock and never arms a timer; `flags` tells it so with one relaxed load.
//!
//! Rejected alternative: arming the registration with `now + timeout` per operation without
//! the shared list. Two operations waiting in one direction (two coroutines reading one
//! socket) would overwrite each other's deadlines and one could wait forever.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coronet_runtime::io::{Interest, Registration};

use crate::sys;

/// A deadline is set.
const HAS_DEADLINE: u8 = 1;
/// A timeout is set.
const HAS_TIMEOUT: u8 = 2;

/// One direction (read or write) of a socket.
#[derive(Default)]
pub(crate) struct Direction {
    /// `HAS_DEADLINE | HAS_TIMEOUT`, a hint for the fast path. Written under `state`'s lock;
    /// read relaxed: a racing setter affects operations that start after it returns, and an
    /// operation that misses a brand-new deadline is woken by the registration anyway.
    flags: AtomicU8,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    /// Deadlines of operations waiting now (a multiset: equal instants may repeat).
    waiting: Vec<Instant>,
    /// What the registration holds for this direction.
    applied: Option<Instant>,
}

impl State {
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.deadline.is_some() {
            flags |= HAS_DEADLINE;
        }
        if self.timeout.is_some() {
            flags |= HAS_TIMEOUT;
        }
        flags
    }

    /// Pushes the earliest deadline into the registration if it changed.
    fn apply(&mut self, registration: &Registration, interest: Interest) {
        let earliest = self.waiting.iter().copied().chain(self.deadline).min();
        if earliest != self.applied {
            registration.set_deadline(interest, earliest);
            self.applied = earliest;
        }
    }
}

/// What an operation reports when its own deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A std-style timeout: `WouldBlock`, as std on Unix.
    Timeout,
    /// `connect_timeout`: `TimedOut`, "connection timed out", as std.
    Connect,
}

/// One operation's own deadline, registered in `waiting` while the operation waits.
#[derive(Debug)]
pub(crate) struct OpDeadline {
    at: Option<Instant>,
    expiry: Expiry,
    registered: bool,
}

impl OpDeadline {
    /// The operation's deadline comes from the direction's timeout, if one is set when it
    /// first has to wait.
    pub(crate) fn from_timeout() -> OpDeadline {
        OpDeadline {
            at: None,
            expiry: Expiry::Timeout,
            registered: false,
        }
    }

    /// A fixed deadline (`connect_timeout`).
    pub(crate) fn fixed(at: Option<Instant>, expiry: Expiry) -> OpDeadline {
        OpDeadline {
            at,
            expiry,
            registered: false,
        }
    }

    fn error(&self) -> io::Error {
        match self.expiry {
            Expiry::Timeout => sys::timeout_error(),
            Expiry::Connect => io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
        }
    }
}

/// The error of an operation after its direction's deadline: Go's `ErrDeadlineExceeded`
/// ("i/o timeout") with std's `TimedOut` kind.
pub(crate) fn deadline_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

impl Direction {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a single assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the std-style timeout (already validated: not zero).
    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) {
        let mut state = self.lock();
        state.timeout = timeout;
        self.flags.store(state.flags(), Ordering::Relaxed);
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.lock().timeout
    }

    /// Sets the Go-style deadline; a waiting operation sees the change at once.
    pub(crate) fn set_deadline(
        &self,
        registration: &Registration,
        interest: Interest,
        deadline: Option<Instant>,
    ) {
        let mut state = self.lock();
        state.deadline = deadline;
        self.flags.store(state.flags(), Ordering::Relaxed);
        state.apply(registration, interest);
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// Before an operation's first syscall: fails if the deadline has passed.
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.flags.load(Ordering::Relaxed) & HAS_DEADLINE == 0 {
            return Ok(());
        }
        match self.lock().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(deadline_error()),
            _ => Ok(()),
        }
    }

    /// Before an operation's first wait: registers its own deadline (from the timeout, or
    /// the fixed one) so the registration wakes it in time.
    pub(crate) fn arm(&self, registration: &Registration, interest: Interest, op: &mut OpDeadline) {
        if op.registered {
            return;
        }
        if op.at.is_none() {
            if op.expiry != Expiry::Timeout || self.flags.load(Ordering::Relaxed) & HAS_TIMEOUT == 0
            {
                return;
            }
            let mut state = self.lock();
            // `None` on overflow: a timeout too long to represent never expires.
            op.at = state.timeout.and_then(|t| Instant::now().checked_add(t));
            if let Some(at) = op.at {
                state.waiting.push(at);
                op.registered = true;
                state.apply(registration, interest);
            }
            return;
        }
        let mut state = self.lock();
        state.waiting.extend(op.at);
        op.registered = true;
        state.apply(registration, interest);
    }

    /// After the registration reported `TimedOut`: the error to return, or `Ok` if the
    /// expiry belonged to another operation (retry).
    pub(crate) fn expired(&self, op: &OpDeadline) -> io::Result<()> {
        let now = Instant::now();
        let state = self.lock();
        if state.deadline.is_some_and(|d| now >= d) {
            return Err(deadline_error());
        }
        if op.at.is_some_and(|at| now >= at) {
            return Err(op.error());
        }
        Ok(())
    }

    /// After the operation: removes its deadline from the waiting set.
    pub(crate) fn disarm(
        &self,
        registration: &Registration,
        interest: Interest,
        op: &mut OpDeadline,
    ) {
        if !op.registered {
            return;
        }
        op.registered = false;
        let mut state = self.lock();
        if let Some(at) = op.at {
            if let Some(i) = state.waiting.iter().position(|&w| w == at) {
                state.waiting.swap_remove(i);
            }
        }
        state.apply(registration, interest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{self, Kind, RawFd};

    /// A socket for the tests to register, closed on drop. The tests bind it before the
    /// registration (`let (_socket, registration)`), so the registration is dropped first, as
    /// its contract asks.
    struct TestSocket(RawFd);

    impl Drop for TestSocket {
        fn drop(&mut self) {
            sys::close(self.0);
        }
    }

    /// A registered (non-blocking, unbound) UDP socket on the default runtime.
    fn registered() -> (TestSocket, Registration) {
        let fd = sys::inet_socket(&"127.0.0.1:0".parse().unwrap(), Kind::Datagram).unwrap();
        let socket = TestSocket(fd);
        (socket, Registration::new(fd).unwrap())
    }

    #[test]
    fn the_earliest_deadline_is_applied_and_restored() {
        let (_socket, registration) = registered();
        let direction = Direction::default();
        let far = Instant::now() + Duration::from_secs(3600);
        direction.set_deadline(&registration, Interest::Read, Some(far));
        assert_eq!(registration.deadline(Interest::Read), Some(far));
        assert_eq!(registration.deadline(Interest::Write), None);

        direction.set_timeout(Some(Duration::from_secs(60)));
        let mut op = OpDeadline::from_timeout();
        direction.arm(&registration, Interest::Read, &mut op);
        let op_at = op.at.expect("the timeout gave the operation a deadline");
        assert!(op_at < far);
        assert_eq!(registration.deadline(Interest::Read), Some(op_at));
        // Not expired yet: a wake-up now is someone else's.
        assert!(direction.expired(&op).is_ok());

        direction.disarm(&registration, Interest::Read, &mut op);
        assert_eq!(registration.deadline(Interest::Read), Some(far));
        direction.set_deadline(&registration, Interest::Read, None);
        assert_eq!(registration.deadline(Interest::Read), None);
    }

    #[test]
    fn without_timeout_or_deadline_nothing_is_armed() {
        let (_socket, registration) = registered();
        let direction = Direction::default();
        let mut op = OpDeadline::from_timeout();
        direction.arm(&registration, Interest::Write, &mut op);
        assert!(!op.registered && op.at.is_none());
        assert_eq!(registration.deadline(Interest::Write), None);
        assert!(direction.check().is_ok());
    }

    #[test]
    fn expiry_kinds() {
        let (_socket, registration) = registered();
        let direction = Direction::default();
        let past = Instant::now() - Duration::from_millis(1);
        let op = OpDeadline::fixed(Some(past), Expiry::Timeout);
        assert_eq!(
            direction.expired(&op).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let op = OpDeadline::fixed(Some(past), Expiry::Connect);
        assert_eq!(
            direction.expired(&op).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        direction.set_deadline(&registration, Interest::Read, Some(past));
        let error = direction.check().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), "i/o timeout");
    }
}
