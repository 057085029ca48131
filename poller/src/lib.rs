//! One small contract over epoll, kqueue and IOCP: Go's netpoll, edge-triggered, woken from
//! any thread.
//!
//! The poller moves [`Token`]s, nothing else: it knows no coroutines and no sockets. The
//! runtime registers each file descriptor (or Windows socket) once, with a token naming its
//! poll descriptor, and one thread blocks in [`Poller::poll`] to learn which of them became
//! ready. This file holds the contract every backend meets and the policy that holds on every
//! platform; the backends (`epoll.rs`, `kqueue.rs`, `iocp.rs`) only translate it into
//! syscalls, as Go's `runtime/netpoll.go` does for its `netpoll_*.go` files.
//!
//! # The contract
//!
//! | call | Go | what it does |
//! |------|----|--------------|
//! | [`Poller::new`] | `netpollinit` | creates the OS poller and the object [`Poller::wake`] signals |
//! | [`Poller::register`] | `netpollopen` | watches `source` for read, write and hang-up, **edge-triggered**, reporting `token`; once per source |
//! | [`Poller::deregister`] | `netpollclose` | stops watching `source`; call it before closing the source |
//! | [`Poller::poll`] | `netpoll(delay)` | waits for events (`None`: forever, `Some(ZERO)`: not at all) and fills [`Events`] |
//! | [`Poller::wake`] | `netpollBreak` | makes a blocked (or the next) `poll` return, from any thread |
//!
//! 1. **Edge-triggered.** An event means "something changed, retry your syscall"; it is
//!    reported once per change, not while the condition lasts. A waiter must therefore read
//!    (or write, or accept) until the call returns `WouldBlock` before it waits again: data
//!    left unread produces no second event. Spurious events are allowed; lost ones are not.
//! 2. **Hang-ups and errors wake everybody.** An error or a hang-up is reported as readable
//!    *and* writable as well, so both waiters retry their syscall and receive the real
//!    error (or end of stream) from it, as Go does. [`Event::is_error`] and the `*_closed`
//!    flags are hints; the syscall's result is the truth.
//! 3. **One poller thread.** `poll` is called by one thread at a time (the runtime's poll
//!    thread); `register`, `deregister` and `wake` may run concurrently from any thread. All
//!    methods take `&self` and [`Poller`] is `Send + Sync`.
//! 4. **Time.** `poll` never returns before its timeout unless an event or a wake-up arrived:
//!    timeouts are rounded *up* to the OS's granularity (milliseconds for `epoll_wait` and
//!    `GetQueuedCompletionStatusEx`), and an interrupted wait (`EINTR`) or one that the OS
//!    ended early is resumed with the time that remains. A signal never surfaces as an error.
//! 5. **Wake-ups coalesce.** Like Go's `netpollWakeSig`, an atomic flag records that a wake-up
//!    is pending; [`Poller::wake`] issues a syscall only when it sets that flag, so a burst
//!    of wakes costs one syscall and produces one early return. The poll that observes the
//!    wake-up clears the flag and returns, possibly with no events; the internal wake event
//!    is never shown to the caller.
//! 6. **Tokens.** [`Token`]`(usize::MAX)` is reserved for the wake-up (epoll has only the
//!    token to tell events apart, as Go uses the address of its eventfd); `register`
//!    rejects it with `InvalidInput`.
//!
//! # Backends
//!
//! | OS | backend | wake-up |
//! |----|---------|---------|
//! | Linux, Android | `epoll` (`EPOLLIN \| EPOLLOUT \| EPOLLRDHUP \| EPOLLET`) | an `eventfd` |
//! | macOS, iOS, FreeBSD, NetBSD, DragonFly | `kqueue` (`EVFILT_READ` + `EVFILT_WRITE`, `EV_CLEAR`) | `EVFILT_USER` |
//! | OpenBSD | `kqueue` | a non-blocking pipe |
//! | Windows | IOCP + `\Device\Afd` poll requests (as wepoll and `polling`) | `PostQueuedCompletionStatus` |
//!
//! Each backend converts OS flags into an [`Event`] in one pure function (`flags/*.rs`),
//! unit-tested on every platform. See `docs/poller.md` for how each backend meets the
//! contract and for its limits.
//!
//! # Example
//!
//! ```
//! # #[cfg(unix)] fn main() -> std::io::Result<()> {
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//!
//! use coronet_poller::{Events, Poller, Token};
//!
//! let poller = Poller::new()?;
//! let (a, mut b) = UnixStream::pair()?;
//! a.set_nonblocking(true)?;
//! poller.register(a.as_raw_fd(), Token(7))?;
//! b.write_all(b"ping")?;
//!
//! let mut events = Events::new();
//! loop {
//!     poller.poll(&mut events, Some(Duration::from_secs(5)))?;
//!     if events.iter().any(|e| e.token() == Token(7) && e.is_readable()) {
//!         break;
//!     }
//! }
//! poller.deregister(a.as_raw_fd())?;
//! # Ok(()) }
//! # #[cfg(not(unix))] fn main() {}
//! ```

#![warn(missing_debug_implementations, rust_2018_idioms)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod flags;

// The one platform switch: it picks the backend and names it `sys`. Every backend exports
// the same items in the same order: `RawSource`, `RawEvents`, `Selector` with `new`,
// `register`, `deregister`, `select` and `wake`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "epoll.rs"]
mod sys;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
))]
#[path = "kqueue.rs"]
mod sys;
#[cfg(windows)]
#[path = "iocp.rs"]
mod sys;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    windows,
)))]
compile_error!(
    "coronet-poller supports Linux and Android (epoll), macOS, iOS and the BSDs (kqueue) and \
     Windows (IOCP) only"
);

/// What [`Poller::register`] watches: a file descriptor on Unix
/// (`std::os::fd::RawFd`), a socket on Windows (`std::os::windows::io::RawSocket`).
pub use sys::RawSource;

/// Whether this backend reports urgent (out-of-band) TCP data with [`Event::is_priority`].
/// Where it does, a TCP read that returned fewer bytes than asked, with no event since and
/// no priority, end-of-stream or error event ever, drained the socket: the next read can
/// wait for an event instead of trying a syscall that would fail with `EAGAIN` (see
/// `coronet_runtime::io::Registration::note_drained`). Linux only (epoll).
pub const REPORTS_PRIORITY: bool = sys::REPORTS_PRIORITY;

/// The caller's name for a registered source, handed back in every [`Event`] for it.
///
/// `Token(usize::MAX)` is reserved for the poller's own wake-up and cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// The token the backends use for their wake-up object.
const WAKE_TOKEN: Token = Token(usize::MAX);

/// The OS poller: Go's netpoll for one process (or one runtime).
///
/// See the [crate documentation](crate) for the contract.
pub struct Poller {
    selector: sys::Selector,
    /// Go's `netpollWakeSig`: `true` while a wake-up is signalled and not yet observed by a
    /// poll. Set by [`Poller::wake`] (only the caller that flips it issues the syscall),
    /// cleared by the poll that observes the wake-up, *after* the backend drained its
    /// wake-up object, so a wake that finds the flag set is covered by the return in
    /// progress. Both sides use read-modify-write swaps with `AcqRel`: a waker that finds
    /// the flag already set releases its earlier writes to the poller's clearing swap, which
    /// reads (acquires) them; the caller of `poll` then sees whatever the waker published
    /// before it called `wake`.
    wake_pending: AtomicBool,
}

impl Poller {
    /// Creates a poller (Go's `netpollinit`): the OS poller, close-on-exec, and the object
    /// [`wake`](Poller::wake) signals.
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            selector: sys::Selector::new()?,
            wake_pending: AtomicBool::new(false),
        })
    }

    /// Starts watching `source` (Go's `netpollopen`) for readability, writability and
    /// hang-up, edge-triggered, reporting `token` in its events.
    ///
    /// Register a source once; registering it again fails (`AlreadyExists` on epoll). The
    /// source should be in non-blocking mode: after an event the caller retries its syscall
    /// until it returns `WouldBlock`.
    ///
    /// # Errors
    ///
    /// The OS's error, or `InvalidInput` for the reserved `Token(usize::MAX)`.
    pub fn register(&self, source: RawSource, token: Token) -> io::Result<()> {
        if token == WAKE_TOKEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Token(usize::MAX) is reserved for the poller's wake-up",
            ));
        }
        self.selector.register(source, token)
    }

    /// Stops watching `source` (Go's `netpollclose`). Call it before closing the source: an
    /// event already collected by a concurrent [`poll`](Poller::poll) may still name its
    /// token, which is why the runtime's tokens carry a generation.
    pub fn deregister(&self, source: RawSource) -> io::Result<()> {
        self.selector.deregister(source)
    }

    /// Waits for events (Go's `netpoll(delay)`), clears `events` and fills it, returning how
    /// many it holds.
    ///
    /// `None` blocks until an event or a wake-up; `Some(Duration::ZERO)` only collects what
    /// is ready now. Otherwise the call returns when events arrive, on a wake-up (possibly
    /// with no events), or when the timeout has passed, never earlier: `EINTR` and early
    /// returns are retried with the remaining time.
    pub fn poll(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.list.clear();
        // A timeout too large to represent as an instant is treated as forever.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        loop {
            let remaining = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            match self
                .selector
                .select(&mut events.raw, &mut events.list, remaining)
            {
                Ok(woken) => {
                    if woken {
                        // Pairs with the swap in `wake` (see `wake_pending`).
                        self.wake_pending.swap(false, Ordering::AcqRel);
                    }
                    if woken || !events.list.is_empty() || remaining == Some(Duration::ZERO) {
                        return Ok(events.list.len());
                    }
                    // Nothing for the caller: the timeout passed, or the OS returned early
                    // (a clamped timeout, or only internal completions on IOCP).
                    if deadline.is_some_and(|at| Instant::now() >= at) {
                        return Ok(0);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Makes a blocked [`poll`](Poller::poll) return, or the next one if none is blocked
    /// (Go's `netpollBreak`). Callable from any thread; wakes coalesce: while one is pending,
    /// further calls return at once without a syscall.
    pub fn wake(&self) -> io::Result<()> {
        // Pairs with the clearing swap in `poll` (see `wake_pending`).
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.selector.wake();
        if result.is_err() {
            // Nothing was signalled: let the next call try again.
            self.wake_pending.store(false, Ordering::Release);
        }
        result
    }
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("wake_pending", &self.wake_pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A buffer of [`Event`]s filled by [`Poller::poll`], reused from call to call.
pub struct Events {
    /// The portable events of the last poll.
    list: Vec<Event>,
    /// The backend's buffer the OS writes into; its capacity bounds one poll.
    raw: sys::RawEvents,
}

impl Events {
    /// How many events one poll collects by default: 128, as Go's `netpoll`.
    pub const DEFAULT_CAPACITY: usize = 128;

    /// An event buffer of [`DEFAULT_CAPACITY`](Events::DEFAULT_CAPACITY).
    pub fn new() -> Events {
        Events::with_capacity(Events::DEFAULT_CAPACITY)
    }

    /// An event buffer that collects at most `cap` OS events per poll (at least one).
    pub fn with_capacity(cap: usize) -> Events {
        let cap = cap.max(1);
        Events {
            list: Vec::with_capacity(cap),
            raw: sys::RawEvents::with_capacity(cap),
        }
    }

    /// The most OS events one poll collects.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// How many events the last poll returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last poll returned no event.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forgets the events (`poll` does this itself before filling the buffer).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// The events of the last poll, in the order the OS reported them.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list.iter().copied()
    }
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list.iter()).finish()
    }
}

/// One readiness report for one registered source.
///
/// Readable and writable mean "retry the syscall": with an error or a hang-up both are set,
/// so the syscall reports the real outcome. Built only by the backends' flag translators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    token: Token,
    bits: u8,
}

impl Event {
    pub(crate) const READABLE: u8 = 1 << 0;
    pub(crate) const WRITABLE: u8 = 1 << 1;
    pub(crate) const READ_CLOSED: u8 = 1 << 2;
    pub(crate) const WRITE_CLOSED: u8 = 1 << 3;
    pub(crate) const ERROR: u8 = 1 << 4;
    pub(crate) const PRIORITY: u8 = 1 << 5;

    pub(crate) const fn new(token: Token, bits: u8) -> Event {
        Event { token, bits }
    }

    /// The token the source was registered with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// A read (or accept) may make progress: data, a connection, end of stream or an error.
    pub fn is_readable(&self) -> bool {
        self.bits & Event::READABLE != 0
    }

    /// A write (or a pending connect) may make progress, or will report an error.
    pub fn is_writable(&self) -> bool {
        self.bits & Event::WRITABLE != 0
    }

    /// The peer will send nothing more (it shut down its writing half, closed or reset).
    pub fn is_read_closed(&self) -> bool {
        self.bits & Event::READ_CLOSED != 0
    }

    /// Writing can no longer succeed (hang-up, reset or error).
    pub fn is_write_closed(&self) -> bool {
        self.bits & Event::WRITE_CLOSED != 0
    }

    /// The source has a pending error (the next syscall, or `SO_ERROR`, reports it).
    pub fn is_error(&self) -> bool {
        self.bits & Event::ERROR != 0
    }

    /// Urgent (out-of-band) TCP data arrived; a read stops short at its mark. Only where
    /// [`REPORTS_PRIORITY`] is true; always false elsewhere.
    pub fn is_priority(&self) -> bool {
        self.bits & Event::PRIORITY != 0
    }
}
