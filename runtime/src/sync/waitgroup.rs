//! [`WaitGroup`]: crossbeam's API (clone to add, drop to finish) over Go's `sync.WaitGroup`.
//!
//! The count is an atomic, so `clone` and `drop` cost one atomic instruction. The waiters'
//! wakers sit in a list behind a lock; a waiter checks the count *under that lock* before it
//! parks, and the handle that brings the count to zero takes the lock after its decrement.
//! So either the waiter sees zero, or the last handle finds the waiter's waker: the lock's
//! release/acquire pairs with the count's `AcqRel` decrement. Zero is final: every handle is
//! gone, so nobody can clone one again.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::dump::WaitReason;
use crate::task::{Parking, Waker};

/// Waits for a group of coroutines (or threads) to finish.
///
/// Every clone is one member; dropping a member marks it finished; [`WaitGroup::wait`] drops
/// the caller's own member and waits until every member is gone.
///
/// ```
/// use coronet_runtime::sync::WaitGroup;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let done = Arc::new(AtomicUsize::new(0));
/// let wg = WaitGroup::new();
/// for _ in 0..100 {
///     let (wg, done) = (wg.clone(), done.clone());
///     coronet_runtime::spawn(move || {
///         done.fetch_add(1, Ordering::Relaxed);
///         drop(wg);
///     });
/// }
/// wg.wait();
/// assert_eq!(done.load(Ordering::Relaxed), 100);
/// ```
pub struct WaitGroup {
    inner: Arc<Inner>,
}

struct Inner {
    /// Live members.
    count: AtomicUsize,
    /// Wakers of the waiters; taken by the member that brings `count` to zero.
    waiters: Mutex<Vec<Waker>>,
}

impl WaitGroup {
    /// A group with one member (the returned handle).
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                count: AtomicUsize::new(1),
                waiters: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Finishes this member and waits until every other member has finished too.
    pub fn wait(self) {
        let inner = self.inner.clone();
        drop(self);
        loop {
            let mut waiters = inner.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.count.load(Ordering::Acquire) == 0 {
                return;
            }
            let parking = Parking::prepare().reason(WaitReason::Lock);
            waiters.push(parking.waker());
            drop(waiters);
            parking.park();
        }
    }

    /// The number of live members (a snapshot).
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> WaitGroup {
        // Relaxed: the new member is created from a live one, so the count cannot be zero.
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        WaitGroup {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        // AcqRel: the last member's decrement acquires every earlier member's work (their
        // releases), and its release is what a waiter's acquire load pairs with.
        if self.inner.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let wakers = std::mem::take(
                &mut *self
                    .inner
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for waker in wakers {
                waker.wake();
            }
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
