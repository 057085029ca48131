//! [`Condvar`]: Go's `sync.Cond` with the API of `std::sync::Condvar`, over coronet's
//! [`Mutex`](crate::sync::Mutex).
//!
//! A waiter links itself into the condvar's queue *before* it releases the mutex (Go's
//! `notifyListAdd` before `Unlock`), so a notification sent by anyone who locked the mutex
//! after that release finds it: no lost wake-ups. `notify_one` unlinks exactly one waiter
//! and marks it notified, so two notifications never go to the same waiter, and a waiter
//! whose timeout races a notification keeps the notification (it reports "not timed out").

use std::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use crate::sync::mutex::MutexGuard;
use crate::sync::waiters::{wake_all, Position, WaitQueue};

/// A condition variable for coroutines and threads, used with [`crate::sync::Mutex`].
///
/// Waiting releases the mutex and parks the coroutine (or blocks the thread) until a
/// notification, then re-locks. As with std, wake-ups are only hints: re-check the condition
/// (or use [`Condvar::wait_while`]).
///
/// ```
/// use std::sync::Arc;
/// use coronet_runtime::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// coronet_runtime::spawn(move || {
///     let (ready, cv) = &*pair2;
///     *ready.lock().unwrap() = true;
///     cv.notify_one();
/// });
/// let (ready, cv) = &*pair;
/// let guard = cv.wait_while(ready.lock().unwrap(), |ready| !*ready).unwrap();
/// assert!(*guard);
/// ```
pub struct Condvar {
    queue: WaitQueue<()>,
}

/// Whether a timed wait on a [`Condvar`] returned because the time ran out.
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed (not by a notification).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with no waiters.
    pub const fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(()),
        }
    }

    /// Releases the guard's mutex, waits for a notification, and locks the mutex again.
    /// `Err` (holding the guard) if the mutex is poisoned when re-locked.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None).0
    }

    /// Waits while `condition` holds (checked under the lock before each wait).
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`Condvar::wait`], giving up after `timeout`.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let deadline = Instant::now().checked_add(timeout);
        let (result, notified) = self.wait_until(guard, deadline);
        let timed_out = WaitTimeoutResult(!notified);
        match result {
            Ok(guard) => Ok((guard, timed_out)),
            Err(err) => Err(std::sync::PoisonError::new((err.into_inner(), timed_out))),
        }
    }

    /// Waits while `condition` holds, for at most `timeout` in total. The result says
    /// whether the time ran out with the condition still holding.
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let (result, _) = self.wait_until(guard, deadline);
            match result {
                Ok(next) => guard = next,
                Err(err) => {
                    let mut guard = err.into_inner();
                    let timed_out = WaitTimeoutResult(condition(&mut *guard));
                    return Err(std::sync::PoisonError::new((guard, timed_out)));
                }
            }
        }
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        let waker = self.queue.lock().notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let wakers = self.queue.lock().notify_all();
        wake_all(wakers);
    }

    /// Returns the re-locked guard and whether a notification (not the deadline) ended the
    /// wait.
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let mutex = guard.mutex();
        let queue = self.queue.lock();
        // Queue first, then unlock the mutex (in `before_park`): see the module docs.
        let notified = self
            .queue
            .wait_then(queue, Position::Back, deadline, move || drop(guard));
        (mutex.lock(), notified)
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.queue.lock().waiters())
            .finish()
    }
}
