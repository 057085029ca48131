//! A counting semaphore with a FIFO of parked waiters: Go's `runtime/sema.go` (`semacquire`,
//! `semrelease`) for coroutines and threads.
//!
//! [`Sema::release`] hands a permit *directly* to the first waiter if there is one (Go's
//! `handoff`), otherwise it adds it to the count; so a permit is never stolen from a parked
//! waiter by a newcomer, and waiters are served in order. [`Sema::acquire`] with
//! `Position::Front` keeps a waiter's turn when it was woken but lost the race for the lock
//! that the semaphore guards (Go's `lifo` flag, used by `Mutex`).

use std::time::Instant;

use crate::sync::waiters::{wake_all, Position, WaitQueue};

/// A counting semaphore; see the module documentation.
pub(crate) struct Sema {
    queue: WaitQueue<usize>,
}

impl Sema {
    /// A semaphore holding `permits` permits.
    pub(crate) const fn new(permits: usize) -> Sema {
        Sema {
            queue: WaitQueue::new(permits),
        }
    }

    /// Takes a permit if one is free.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut guard = self.queue.lock();
        if guard.state > 0 {
            guard.state -= 1;
            true
        } else {
            false
        }
    }

    /// Takes a permit, waiting for one.
    pub(crate) fn acquire(&self, position: Position) {
        self.acquire_until(position, None);
    }

    /// Takes a permit, waiting at most until `deadline`; returns whether it got one.
    pub(crate) fn acquire_until(&self, position: Position, deadline: Option<Instant>) -> bool {
        let mut guard = self.queue.lock();
        if guard.state > 0 {
            guard.state -= 1;
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        // A notification *is* the permit: `release` hands it over without counting it.
        self.queue.wait(guard, position, deadline)
    }

    /// Returns `n` permits: to the first `n` waiters, the rest to the count.
    pub(crate) fn release(&self, n: usize) {
        if n == 1 {
            let waker = {
                let mut guard = self.queue.lock();
                let waker = guard.notify_one();
                if waker.is_none() {
                    guard.state += 1;
                }
                waker
            };
            if let Some(waker) = waker {
                waker.wake();
            }
            return;
        }
        let wakers = {
            let mut guard = self.queue.lock();
            let mut wakers = Vec::new();
            for given in 0..n {
                match guard.notify_one() {
                    Some(waker) => wakers.push(waker),
                    None => {
                        guard.state += n - given;
                        break;
                    }
                }
            }
            wakers
        };
        wake_all(wakers);
    }

    /// Free permits (a snapshot).
    pub(crate) fn available(&self) -> usize {
        self.queue.lock().state
    }

    /// Parked waiters (a snapshot).
    pub(crate) fn waiters(&self) -> usize {
        self.queue.lock().waiters()
    }
}
