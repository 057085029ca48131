//! Poll descriptors: the runtime half of a socket (Go's `pollDesc`, runtime/netpoll.go).
//!
//! `coronet-net` owns file descriptors and their syscalls; for each one it holds a
//! [`Registration`], which names a `PollDesc` in this registry and registers the fd with
//! the runtime's poller once, edge-triggered, for its whole life. An operation tries its
//! syscall; on `WouldBlock` it calls [`Registration::wait`], which parks the coroutine (or
//! blocks the plain thread) until the poller reports readiness, the deadline passes or
//! the registration is closed.
//!
//! # The reader / writer word (one per direction)
//!
//! | value            | meaning                                     |
//! |------------------|---------------------------------------------|
//! | `EMPTY` (0)      | no readiness recorded, nobody waiting       |
//! | `READY` (1)      | an event arrived since the last wait        |
//! | a waker word     | a coroutine or thread waits (`Waker::into_raw`) |
//!
//! | transition              | by          | when                                          |
//! |-------------------------|-------------|-----------------------------------------------|
//! | `READY` → `EMPTY`        | waiter      | consumes the readiness, retries its syscall   |
//! | `EMPTY` → waker          | waiter      | after `Parking::prepare`, before suspending   |
//! | waker → `EMPTY`          | waiter      | it gives up (closed/deadline seen after publishing) |
//! | any → `READY`            | poller      | an event: the old waker (if any) is woken     |
//! | any → `EMPTY`            | close / deadline | the old waker is woken and sees the error |
//!
//! The waiter publishes its waker *before* it suspends; the park-then-commit protocol
//! (task.rs) guarantees it is not resumed until it is off its stack, so the poller may
//! take the waker at any time. Whoever swaps the waker word out owns it and wakes it exactly
//! once. A second waiter in the same direction (two coroutines reading one socket) waits in a
//! small overflow list that every notification drains.
//!
//! # Stale events
//!
//! Tokens carry `(generation << 32) | index`. PollDesc memory is type-stable (chunks are never
//! freed while the runtime lives), and a descriptor's generation is bumped when it is
//! released, so an event or a deadline timer for a closed fd whose slot was reused is
//! recognised and dropped. A notification racing with the release can at worst mark the new
//! owner `READY`, which costs one extra syscall returning `EAGAIN`, never a wrong wake-up
//! of a parked coroutine's data path.

use std::io;
use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use coronet_poller::{Event, RawSource, Token};

use crate::dump::WaitReason;
use crate::runtime::{current_shared, Shared};
use crate::task::{Parking, Waker};
use crate::timer::{TimerAction, TimerKey};

const EMPTY: usize = 0;
const READY: usize = 1;

/// Which side of a socket an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Waiting to read (or accept, or receive).
    Read,
    /// Waiting to write (or connect, or send).
    Write,
}

/// Why [`Registration::wait`] returned without readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitError {
    /// The registration was closed ([`Registration::close`]), before or during the wait.
    Closed,
    /// The direction's deadline has passed.
    TimedOut,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Closed => f.write_str("use of closed network connection"),
            WaitError::TimedOut => f.write_str("i/o deadline reached"),
        }
    }
}

impl std::error::Error for WaitError {}

/// A snapshot of one direction's notifications ([`Registration::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness(u64);

/// One direction's deadline: the time, and the timer armed for it.
#[derive(Default)]
struct Deadline {
    /// Nanoseconds since the runtime's epoch, plus one; 0 means none.
    at: AtomicU64,
    timer: Mutex<DeadlineTimer>,
}

#[derive(Default)]
struct DeadlineTimer {
    key: Option<TimerKey>,
    /// Bumped at every change, so a timer armed for an older deadline does nothing.
    seq: u64,
}

/// One direction's waiters.
#[derive(Default)]
struct Waiters {
    /// Notifications so far (events, closes, deadlines); see [`Registration::readiness`].
    seq: AtomicU64,
    /// `seq + 1` of the snapshot after which a syscall found the source drained
    /// ([`Registration::note_drained`]); 0 for none.
    drained: AtomicU64,
    /// An event said end of stream, error or urgent data: drained-hints are ignored from
    /// then on (a short read no longer proves the source empty).
    no_hints: AtomicBool,
    word: AtomicUsize,
    has_overflow: AtomicBool,
    overflow: Mutex<Vec<Waker>>,
}

impl Waiters {
    /// Swaps in `new` and wakes whoever waited.
    fn notify(&self, new: usize) {
        // SeqCst pairs with the waiter's publish-then-load in `wait_since`.
        self.seq.fetch_add(1, Ordering::SeqCst);
        let old = self.word.swap(new, Ordering::SeqCst);
        if old > READY {
            // SAFETY: a word above READY is a waker published by `wait` with `into_raw`; the
            // swap took it out of the slot, so we own it, and its park is still pending
            // (the waiter cannot resume before this wake).
            unsafe { Waker::from_raw(old) }.wake();
        }
        // SeqCst pairs with the waiter's store of `has_overflow` and load of `word`.
        if self.has_overflow.load(Ordering::SeqCst) {
            let waiters = {
                let mut overflow = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
                self.has_overflow.store(false, Ordering::SeqCst);
                std::mem::take(&mut *overflow)
            };
            waiters.into_iter().for_each(Waker::wake);
        }
    }

    /// Drops a leftover waker without waking it (shutdown).
    fn clear(&self) {
        let old = self.word.swap(EMPTY, Ordering::AcqRel);
        if old > READY {
            // SAFETY: as in `notify`.
            drop(unsafe { Waker::from_raw(old) });
        }
        self.overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The readiness state of one registered file descriptor or socket.
#[derive(Default)]
pub(crate) struct PollDesc {
    generation: AtomicU32,
    closing: AtomicBool,
    reader: Waiters,
    writer: Waiters,
    read_deadline: Deadline,
    write_deadline: Deadline,
}

impl PollDesc {
    fn waiters(&self, interest: Interest) -> &Waiters {
        match interest {
            Interest::Read => &self.reader,
            Interest::Write => &self.writer,
        }
    }

    fn deadline(&self, interest: Interest) -> &Deadline {
        match interest {
            Interest::Read => &self.read_deadline,
            Interest::Write => &self.write_deadline,
        }
    }
}

const FIRST_CHUNK: usize = 64;
const CHUNKS: usize = 26;

/// Type-stable storage of PollDescs: chunk `k` holds `64 << k` descriptors and is never
/// freed before the registry, so a reference handed out stays valid for the runtime's life.
pub(crate) struct IoRegistry {
    chunks: [AtomicPtr<PollDesc>; CHUNKS],
    /// Free indices, and the next never-used index.
    free: Mutex<(Vec<u32>, u32)>,
    registered: AtomicUsize,
}

fn locate(index: u32) -> (usize, usize) {
    let n = index as usize / FIRST_CHUNK + 1;
    let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize;
    let offset = index as usize - FIRST_CHUNK * ((1 << chunk) - 1);
    (chunk, offset)
}

fn chunk_len(chunk: usize) -> usize {
    FIRST_CHUNK << chunk
}

impl IoRegistry {
    pub(crate) fn new() -> IoRegistry {
        IoRegistry {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            free: Mutex::new((Vec::new(), 0)),
            registered: AtomicUsize::new(0),
        }
    }

    /// The descriptor at `index`, if its chunk exists.
    fn get(&self, index: u32) -> Option<&PollDesc> {
        let (chunk, offset) = locate(index);
        let base = self.chunks.get(chunk)?.load(Ordering::Acquire);
        // SAFETY: a non-null chunk pointer is a leaked boxed slice of `chunk_len(chunk)`
        // descriptors (see `allocate`), never freed before `self` is dropped, and `locate`
        // keeps `offset` below that length.
        (!base.is_null()).then(|| unsafe { &*base.add(offset) })
    }

    fn allocate(&self) -> io::Result<u32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = free.0.pop() {
            return Ok(index);
        }
        let index = free.1;
        let (chunk, offset) = locate(index);
        if chunk >= CHUNKS {
            return Err(io::Error::other("coronet: too many registered descriptors"));
        }
        if offset == 0 {
            let descs: Box<[PollDesc]> =
                (0..chunk_len(chunk)).map(|_| PollDesc::default()).collect();
            // Release pairs with the acquire load in `get`.
            self.chunks[chunk].store(Box::into_raw(descs) as *mut PollDesc, Ordering::Release);
        }
        free.1 += 1;
        Ok(index)
    }

    fn release(&self, index: u32) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push(index);
    }

    /// The poller's handling of one event (whoever holds the poll token).
    pub(crate) fn dispatch(&self, event: &Event) {
        let token = event.token().0 as u64;
        let (index, generation) = (token as u32, (token >> 32) as u32);
        let Some(desc) = self.get(index) else { return };
        if desc.generation.load(Ordering::Acquire) != generation {
            return; // a stale event for a released descriptor
        }
        let error = event.is_error();
        if event.is_read_closed() || error || event.is_priority() {
            // Before the notification, so a reader woken by it sees the flag.
            desc.reader.no_hints.store(true, Ordering::SeqCst);
        }
        if event.is_readable() || event.is_read_closed() || error {
            desc.reader.notify(READY);
        }
        if event.is_writable() || event.is_write_closed() || error {
            desc.writer.notify(READY);
        }
    }

    /// A deadline timer fired.
    pub(crate) fn deadline_fired(&self, index: u32, generation: u32, write: bool, seq: u64) {
        let Some(desc) = self.get(index) else { return };
        if desc.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let interest = if write {
            Interest::Write
        } else {
            Interest::Read
        };
        {
            let mut timer = desc
                .deadline(interest)
                .timer
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if timer.seq != seq {
                return; // the deadline changed since this timer was armed
            }
            timer.key = None;
        }
        desc.waiters(interest).notify(EMPTY);
    }

    /// Shutdown: drop every parked waiter's reference without waking it.
    pub(crate) fn clear_waiters(&self) {
        let used = self.free.lock().unwrap_or_else(|e| e.into_inner()).1;
        for index in 0..used {
            if let Some(desc) = self.get(index) {
                desc.reader.clear();
                desc.writer.clear();
            }
        }
    }

    pub(crate) fn registered(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }
}

impl Drop for IoRegistry {
    fn drop(&mut self) {
        for (chunk, slot) in self.chunks.iter().enumerate() {
            let base = slot.load(Ordering::Acquire);
            if !base.is_null() {
                let slice = std::ptr::slice_from_raw_parts_mut(base, chunk_len(chunk));
                // SAFETY: `base` came from `Box::into_raw` of a slice of exactly this length,
                // and no reference into it outlives the registry (we have `&mut self`).
                drop(unsafe { Box::from_raw(slice) });
            }
        }
    }
}

/// A file descriptor (or socket) registered with a runtime's poller, and its poll descriptor.
///
/// Created once per fd, right after the fd is made non-blocking; dropped *before* the fd is
/// closed (the drop deregisters it). The owner must make sure no `wait` is in flight when it
/// drops the registration: call [`Registration::close`] first to wake waiters, and wait for
/// them to return (Go's fdMutex reference count; `coronet-net` does this).
///
/// ```no_run
/// # #[cfg(unix)] fn main() {
/// use std::io::Read;
/// use std::os::fd::AsRawFd;
/// use coronet_runtime::io::{Interest, Registration};
///
/// let (mut a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// let registration = Registration::new(a.as_raw_fd()).unwrap();
/// let mut buf = [0u8; 64];
/// let n = loop {
///     match a.read(&mut buf) {
///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///             registration.wait(Interest::Read).unwrap();
///         }
///         other => break other.unwrap(),
///     }
/// };
/// # let _ = n;
/// # }
/// # #[cfg(not(unix))] fn main() {}
/// ```
pub struct Registration {
    shared: Arc<Shared>,
    index: u32,
    generation: u32,
    source: RawSource,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("source", &self.source)
            .field("index", &self.index)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Registration {
    /// Registers `source` (already non-blocking) with the calling coroutine's runtime, or
    /// with the default runtime on a plain thread.
    pub fn new(source: RawSource) -> io::Result<Registration> {
        let shared = current_shared();
        let registry = &shared.io;
        let index = registry.allocate()?;
        let desc = registry.get(index).expect("allocated descriptor");
        let generation = desc.generation.load(Ordering::Acquire);
        desc.closing.store(false, Ordering::Release);
        for waiters in [&desc.reader, &desc.writer] {
            waiters.word.store(EMPTY, Ordering::Release);
            waiters.drained.store(0, Ordering::Relaxed);
            waiters.no_hints.store(false, Ordering::Release);
        }
        desc.read_deadline.at.store(0, Ordering::Release);
        desc.write_deadline.at.store(0, Ordering::Release);
        let token = Token(((u64::from(generation) << 32) | u64::from(index)) as usize);
        if let Err(error) = shared.poller.register(source, token) {
            registry.release(index);
            return Err(error);
        }
        registry.registered.fetch_add(1, Ordering::Relaxed);
        Ok(Registration {
            shared,
            index,
            generation,
            source,
        })
    }

    fn desc(&self) -> &PollDesc {
        self.shared
            .io
            .get(self.index)
            .expect("registered descriptor")
    }

    /// The registered fd or socket.
    pub fn source(&self) -> RawSource {
        self.source
    }

    /// Waits until the poller reports `interest` ready (then retry the syscall), the
    /// direction's deadline passes, or the registration is closed.
    ///
    /// Readiness may be spurious (an old event): callers loop on their syscall until it
    /// stops returning `WouldBlock`. An event between the syscall and this call is not lost
    /// (it left the direction READY), but with several waiters in one direction prefer
    /// [`Registration::readiness`] + [`Registration::wait_since`], which `coronet-net` uses.
    pub fn wait(&self, interest: Interest) -> Result<(), WaitError> {
        let desc = self.desc();
        self.check(desc, desc.deadline(interest))?;
        if desc
            .waiters(interest)
            .word
            .compare_exchange(READY, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
        self.wait_since(interest, self.readiness(interest))
    }

    /// A snapshot of `interest`'s notifications, taken *before* a syscall; pass it to
    /// [`Registration::wait_since`] when the syscall returns `WouldBlock`.
    ///
    /// This closes the window between the syscall and the wait: a notification in between
    /// makes `wait_since` return at once. Unlike the single READY token of
    /// [`Registration::wait`], it stays exact when several coroutines wait in the same
    /// direction (clones of one UDP socket): every waiter whose snapshot predates an event
    /// retries its syscall, so one edge that brings data for all of them wakes them all.
    pub fn readiness(&self, interest: Interest) -> Readiness {
        Readiness(self.desc().waiters(interest).seq.load(Ordering::SeqCst))
    }

    /// Records that a syscall for `interest`, made after the snapshot `since`, drained the
    /// source: a TCP read that returned fewer bytes than asked (tokio does the same). Until
    /// the next notification, [`Registration::is_drained`] says so, and the caller can wait
    /// right away instead of making a syscall that fails with `EAGAIN`: that saves one of
    /// the three syscalls of a request/response exchange.
    ///
    /// Only a hint, and only where the poller reports urgent data
    /// ([`coronet_poller::REPORTS_PRIORITY`]): an event with end of stream, an error or urgent
    /// data (the cases where a short read leaves bytes behind, or the next read must return
    /// 0 or fail) turns hints off for the registration's life. Data that arrives after the
    /// snapshot bumps the notification count, which ends the hint.
    pub fn note_drained(&self, interest: Interest, since: Readiness) {
        if coronet_poller::REPORTS_PRIORITY {
            // Relaxed: a hint compared with the sequence number, which carries the ordering.
            self.desc()
                .waiters(interest)
                .drained
                .store(since.0 + 1, Ordering::Relaxed);
        }
    }

    /// Whether a syscall made after the snapshot `since` drained the source, with no
    /// notification since ([`Registration::note_drained`]).
    pub fn is_drained(&self, interest: Interest, since: Readiness) -> bool {
        let waiters = self.desc().waiters(interest);
        coronet_poller::REPORTS_PRIORITY
            && waiters.drained.load(Ordering::Relaxed) == since.0 + 1
            // SeqCst: the dispatcher sets `no_hints` before the notification that `since`
            // may already count.
            && !waiters.no_hints.load(Ordering::SeqCst)
    }

    /// Waits until a notification newer than `since` arrives for `interest` (then retry the
    /// syscall), the direction's deadline passes, or the registration is closed.
    pub fn wait_since(&self, interest: Interest, since: Readiness) -> Result<(), WaitError> {
        let desc = self.desc();
        let waiters = desc.waiters(interest);
        let deadline = desc.deadline(interest);
        let consume_ready = || {
            let _ =
                waiters
                    .word
                    .compare_exchange(READY, EMPTY, Ordering::AcqRel, Ordering::Acquire);
        };
        self.check(desc, deadline)?;
        if waiters.seq.load(Ordering::SeqCst) != since.0 {
            consume_ready();
            return Ok(());
        }
        let parking = Parking::prepare().reason(self.wait_reason(interest));
        let raw = parking.waker().into_raw();
        let in_word =
            match waiters
                .word
                .compare_exchange(EMPTY, raw, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => true,
                Err(READY) => {
                    // An event arrived (maybe before `since`: then this is one spurious retry).
                    // SAFETY: `raw` was never published; we still own it.
                    drop(unsafe { Waker::from_raw(raw) });
                    parking.cancel();
                    consume_ready();
                    return Ok(());
                }
                Err(_) => {
                    // Another coroutine waits in this direction: wait beside it in the list.
                    // SAFETY: as above, `raw` was never published.
                    drop(unsafe { Waker::from_raw(raw) });
                    let mut overflow = waiters.overflow.lock().unwrap_or_else(|e| e.into_inner());
                    overflow.push(parking.waker());
                    waiters.has_overflow.store(true, Ordering::SeqCst);
                    false
                }
            };
        // Pairs with `notify`'s SeqCst increment: either it sees our waker, or we see its
        // new sequence number (or the close/deadline flag set before it).
        fence(Ordering::SeqCst);
        if waiters.seq.load(Ordering::SeqCst) != since.0 || self.check(desc, deadline).is_err() {
            if !in_word {
                // Our entry in the list is stale now; waking it later does nothing.
                parking.cancel();
            } else if waiters
                .word
                .compare_exchange(raw, EMPTY, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: the CAS took our own published waker back out of the slot.
                drop(unsafe { Waker::from_raw(raw) });
                parking.cancel();
            } else {
                // A notifier took the waker and is about to wake this very park: it reads
                // the park's epoch when it wakes, so let it find this park, not a later one.
                parking.park();
            }
        } else {
            parking.park();
        }
        self.check(desc, deadline)?;
        consume_ready();
        Ok(())
    }

    fn wait_reason(&self, interest: Interest) -> WaitReason {
        // Windows sockets are wider than an fd; the dump shows the low bits.
        #[allow(clippy::unnecessary_cast)]
        let fd = self.source as i32;
        match interest {
            Interest::Read => WaitReason::Readable { fd },
            Interest::Write => WaitReason::Writable { fd },
        }
    }

    fn check(&self, desc: &PollDesc, deadline: &Deadline) -> Result<(), WaitError> {
        if desc.closing.load(Ordering::Acquire) {
            return Err(WaitError::Closed);
        }
        let at = deadline.at.load(Ordering::Acquire);
        if at != 0 && self.now_nanos() >= at {
            return Err(WaitError::TimedOut);
        }
        Ok(())
    }

    fn now_nanos(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.shared.epoch)
            .as_nanos() as u64
            + 1
    }

    /// Whether `interest`'s deadline has passed (operations check it before their syscall).
    pub fn check_deadline(&self, interest: Interest) -> Result<(), WaitError> {
        let desc = self.desc();
        self.check(desc, desc.deadline(interest))
    }

    /// Sets (or clears) the deadline of one direction. A waiter already parked sees the new
    /// deadline: extending it keeps the waiter parked, a past deadline wakes it with
    /// [`WaitError::TimedOut`].
    pub fn set_deadline(&self, interest: Interest, deadline: Option<Instant>) {
        let desc = self.desc();
        let slot = desc.deadline(interest);
        let mut timer = slot.timer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = timer.key.take() {
            self.shared.cancel_timer(key);
        }
        timer.seq += 1;
        let at = deadline.map_or(0, |d| {
            d.saturating_duration_since(self.shared.epoch).as_nanos() as u64 + 1
        });
        slot.at.store(at, Ordering::Release);
        match deadline {
            None => {}
            Some(d) if at <= self.now_nanos() => {
                let _ = d;
                drop(timer);
                desc.waiters(interest).notify(EMPTY);
            }
            Some(d) => {
                timer.key = Some(self.shared.arm_timer(
                    d,
                    TimerAction::PollDeadline {
                        index: self.index,
                        generation: self.generation,
                        write: interest == Interest::Write,
                        seq: timer.seq,
                    },
                ));
            }
        }
    }

    /// The deadline of one direction.
    pub fn deadline(&self, interest: Interest) -> Option<Instant> {
        let at = self.desc().deadline(interest).at.load(Ordering::Acquire);
        (at != 0).then(|| self.shared.epoch + std::time::Duration::from_nanos(at - 1))
    }

    /// Delivers a readiness notification for `interest` as if the poller had reported an
    /// event: its waiters wake and retry their syscall. For state changes that some OS does
    /// not report as an event, such as a local `shutdown` of the read half on Winsock; a
    /// notification that finds the syscall still `WouldBlock` only costs a retry.
    pub fn notify(&self, interest: Interest) {
        self.desc().waiters(interest).notify(READY);
    }

    /// Closes the registration for waiting (Go's `pollUnblock`): every current and future
    /// `wait` returns [`WaitError::Closed`]. The fd stays registered until drop.
    pub fn close(&self) {
        let desc = self.desc();
        desc.closing.store(true, Ordering::SeqCst);
        desc.reader.notify(EMPTY);
        desc.writer.notify(EMPTY);
    }

    /// Whether [`Registration::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.desc().closing.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let desc = self.desc();
        desc.closing.store(true, Ordering::SeqCst);
        for interest in [Interest::Read, Interest::Write] {
            let mut timer = desc
                .deadline(interest)
                .timer
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(key) = timer.key.take() {
                self.shared.cancel_timer(key);
            }
            timer.seq += 1;
        }
        // Deregistration failing (the fd was closed behind our back) changes nothing: the
        // generation bump below makes any later event for this token stale.
        let _ = self.shared.poller.deregister(self.source);
        desc.generation.fetch_add(1, Ordering::AcqRel);
        desc.reader.notify(EMPTY);
        desc.writer.notify(EMPTY);
        self.shared.io.registered.fetch_sub(1, Ordering::Relaxed);
        self.shared.io.release(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_chunks_without_gaps() {
        let mut expected = (0usize, 0usize);
        for index in 0..100_000u32 {
            let (chunk, offset) = locate(index);
            assert_eq!((chunk, offset), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == chunk_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
    }
}
