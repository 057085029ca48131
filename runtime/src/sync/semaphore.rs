//! [`Semaphore`]: a counting semaphore with RAII permits (Go's `x/sync/semaphore`, tokio's
//! API), fair: released permits go to parked waiters in arrival order before anyone else.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::sema::Sema;
use crate::sync::waiters::Position;

/// A counting semaphore for coroutines and threads.
///
/// [`Semaphore::acquire`] takes a permit, parking the coroutine (or blocking the thread)
/// while none is free, and returns a [`SemaphorePermit`] that gives it back on drop. Waiters
/// are served first come, first served: a freed permit goes straight to the longest waiter.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use coronet_runtime::sync::Semaphore;
///
/// let limit = Arc::new(Semaphore::new(3));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let handles: Vec<_> = (0..20)
///     .map(|_| {
///         let (limit, inside) = (limit.clone(), inside.clone());
///         coronet_runtime::spawn(move || {
///             let _permit = limit.acquire();
///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 3);
///             coronet_runtime::yield_now();
///             inside.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(limit.available_permits(), 3);
/// ```
pub struct Semaphore {
    sema: Sema,
}

/// One permit of a [`Semaphore`]; returned to it on drop.
#[must_use = "the permit is returned as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            sema: Sema::new(permits),
        }
    }

    /// Takes a permit, waiting until one is free.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.sema.acquire(Position::Back);
        SemaphorePermit { semaphore: self }
    }

    /// Takes a permit if one is free now (never jumps ahead of a parked waiter: a free
    /// permit exists only when nobody waits).
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.sema
            .try_acquire()
            .then(|| SemaphorePermit { semaphore: self })
    }

    /// Takes a permit, waiting at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        let deadline = Instant::now().checked_add(timeout);
        self.sema
            .acquire_until(Position::Back, deadline)
            .then(|| SemaphorePermit { semaphore: self })
    }

    /// Adds `n` permits (handed to waiters first).
    pub fn add_permits(&self, n: usize) {
        if n > 0 {
            self.sema.release(n);
        }
    }

    /// The number of free permits (a snapshot).
    pub fn available_permits(&self) -> usize {
        self.sema.available()
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken forever (the semaphore has one permit less).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.semaphore.sema.release(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.sema.available())
            .field("waiters", &self.sema.waiters())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
