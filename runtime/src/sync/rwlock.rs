//! [`RwLock`]: Go's `sync.RWMutex` (writer-preferring, starvation-free) with std's API.
//!
//! # The algorithm (Go's `rwmutex.go`)
//!
//! * `readers` counts active readers; a writer subtracts [`MAX_READERS`] from it, so a
//!   negative count means "a writer is pending or active" and new readers park on
//!   `reader_sema` instead of entering.
//! * `departing` counts the readers the pending writer still waits for; the last of them
//!   releases `writer_sema`.
//! * Writers exclude each other with a [`RawMutex`] (fair, see mutex.rs).
//! * A writer's unlock adds [`MAX_READERS`] back and releases one `reader_sema` permit per
//!   reader that arrived meanwhile, so readers cannot starve either.
//!
//! | who                 | `readers`                      | then                                  |
//! |---------------------|--------------------------------|---------------------------------------|
//! | read lock           | `+1`; result < 0               | park on `reader_sema`                 |
//! | read unlock         | `-1`; result < 0               | `departing -= 1`; 0: release `writer_sema` |
//! | write lock          | (after `writer.lock()`) `-MAX` | `r` readers active: `departing += r`; non-zero: park on `writer_sema` |
//! | write unlock        | `+MAX` → `r` readers waited    | release `r` reader permits, `writer.unlock()` |
//!
//! Orderings: every update of the counters is an `AcqRel` read-modify-write; a reader that
//! parks is ordered after the writer by the semaphore (its lock and notification).

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use crate::sync::guard::{debug_lock, guard_deref, guard_fmt, lock_from_value};
use crate::sync::mutex::{Poison, PoisonGuard, RawMutex};
use crate::sync::sema::Sema;
use crate::sync::waiters::Position;

/// The most readers at once (Go: `rwmutexMaxReaders`).
const MAX_READERS: i32 = 1 << 30;

/// A reader-writer lock for coroutines and threads: Go's `sync.RWMutex` with the API of
/// `std::sync::RwLock`.
///
/// Any number of readers, or one writer. A writer that asks for the lock stops new readers
/// from entering (so writers do not starve), and the readers that arrived while it held the
/// lock all enter when it leaves (so readers do not starve). Waiting parks the coroutine or
/// blocks the thread. A writer that panics poisons the lock.
///
/// ```
/// use coronet_runtime::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let a = lock.read().unwrap();
///     let b = lock.read().unwrap();
///     assert_eq!(*a + *b, 10);
/// }
/// *lock.write().unwrap() += 1;
/// assert_eq!(*lock.read().unwrap(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    writer: RawMutex,
    writer_sema: Sema,
    reader_sema: Sema,
    readers: AtomicI32,
    departing: AtomicI32,
    poison: Poison,
    data: UnsafeCell<T>,
}

// SAFETY: like `std::sync::RwLock`: a writer gets `&mut T` on any thread (`T: Send`), readers
// share `&T` across threads (`T: Sync`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s value; releases the read lock on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

// SAFETY: the guard only gives `&T`, which may be used on any thread if `T: Sync`; the lock
// has no thread affinity (a coroutine may resume on another worker while holding it).
unsafe impl<T: ?Sized + Sync> Send for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// Exclusive access to an [`RwLock`]'s value; releases the write lock on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    poison: PoisonGuard,
}

// SAFETY: the guard gives `&mut T` on the thread that holds it: a move of access (`T: Send`).
unsafe impl<T: ?Sized + Send> Send for RwLockWriteGuard<'_, T> {}
// SAFETY: `&RwLockWriteGuard` only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            writer: RawMutex::new(),
            writer_sema: Sema::new(0),
            reader_sema: Sema::new(0),
            readers: AtomicI32::new(0),
            departing: AtomicI32::new(0),
            poison: Poison::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value (`Err` carries it if poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.poison.map(self.data.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds or waits for the lock.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        if self.readers.fetch_add(1, Ordering::AcqRel) + 1 < 0 {
            // A writer is pending: it releases one permit per waiting reader on unlock.
            self.reader_sema.acquire(Position::Back);
        }
        self.poison.map(RwLockReadGuard { lock: self })
    }

    /// Locks for reading if no writer holds or waits for the lock.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let mut count = self.readers.load(Ordering::Relaxed);
        loop {
            if count < 0 {
                return Err(TryLockError::WouldBlock);
            }
            match self.readers.compare_exchange_weak(
                count,
                count + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => count = actual,
            }
        }
        self.poison
            .map(RwLockReadGuard { lock: self })
            .map_err(TryLockError::from)
    }

    /// Locks for writing, waiting for other writers and for the active readers to leave.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.writer.lock();
        // Announce the writer: new readers now park.
        let active = self.readers.fetch_sub(MAX_READERS, Ordering::AcqRel);
        if active != 0 && self.departing.fetch_add(active, Ordering::AcqRel) + active != 0 {
            self.writer_sema.acquire(Position::Back);
        }
        self.poison.map(self.write_guard())
    }

    /// Locks for writing if nobody holds the lock.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if !self.writer.try_lock() {
            return Err(TryLockError::WouldBlock);
        }
        if self
            .readers
            .compare_exchange(0, -MAX_READERS, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.writer.unlock();
            return Err(TryLockError::WouldBlock);
        }
        self.poison
            .map(self.write_guard())
            .map_err(TryLockError::from)
    }

    /// Whether a writer panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.map(self.data.get_mut())
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            poison: self.poison.guard(),
        }
    }

    fn read_unlock(&self) {
        let remaining = self.readers.fetch_sub(1, Ordering::AcqRel) - 1;
        if remaining < 0 {
            if remaining + 1 == 0 || remaining + 1 == -MAX_READERS {
                unbalanced("read unlock of an unlocked RwLock");
            }
            // A writer is pending; the last departing reader lets it in.
            if self.departing.fetch_sub(1, Ordering::AcqRel) - 1 == 0 {
                self.writer_sema.release(1);
            }
        }
    }

    fn write_unlock(&self) {
        let waiting = self.readers.fetch_add(MAX_READERS, Ordering::AcqRel) + MAX_READERS;
        if waiting >= MAX_READERS {
            unbalanced("write unlock of an unlocked RwLock");
        }
        if waiting > 0 {
            self.reader_sema.release(waiting as usize);
        }
        self.writer.unlock();
    }
}

#[cold]
fn unbalanced(what: &str) -> ! {
    eprintln!("coronet: fatal: {what}");
    std::process::abort()
}

guard_deref!(RwLockReadGuard.lock);

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

guard_deref!(RwLockWriteGuard.lock, mut);

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        self.lock.write_unlock();
    }
}

guard_fmt!(RwLockReadGuard: Debug);
guard_fmt!(RwLockWriteGuard: Debug);

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_lock(f, "RwLock", self.try_read(), &self.poison)
    }
}

lock_from_value!(RwLock);
