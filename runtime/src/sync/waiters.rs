//! The waiter queue every lock in this module parks on: a [`Waiter`] on the waiting frame's
//! stack, linked into a [`List`] that a `std::sync::Mutex` of the lock protects.
//!
//! # Protocol (the runtime's park-then-commit, see `task.rs`)
//!
//! Waiting side, [`WaitQueue::wait`]:
//! 1. under the queue lock, check the condition; if it must wait, `Parking::prepare`, store
//!    the park's waker in the waiter and link it (`enqueue`);
//! 2. release the queue lock (never held across a park), then park;
//! 3. on wake-up, `notified` (an `Acquire` load) says whether a notifier picked this waiter.
//!    If not (a timeout), take the lock and unlink the waiter; if a notifier picked it in
//!    the meantime, the notification counts (it is never lost).
//!
//! Notifying side, [`notify_one`] (under the queue lock): unlink the first waiter, clone its
//! waker, then set `notified` with `Release` (pairs with the waiter's `Acquire`). After that
//! store the notifier never touches the waiter again (its frame may be gone), and it wakes
//! the clone after releasing the lock.
//!
//! A waiter is woken at most once per notification: it is unlinked by whoever notifies it,
//! so no second notifier can find it, and the waker of a finished park is stale.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::dump::WaitReason;
use crate::sync::list::{Linked, Links, List};
use crate::task::{Parking, Waker};

/// One waiting coroutine or thread, on its own stack.
pub(crate) struct Waiter {
    links: Links<Waiter>,
    /// The waker of the current park; written by the owner and cloned by a notifier, both
    /// under the queue lock.
    waker: Cell<Option<Waker>>,
    /// Set (`Release`) by the notifier as its last access; read (`Acquire`) by the owner.
    notified: AtomicBool,
}

// SAFETY: `links` is a field of the waiter.
unsafe impl Linked for Waiter {
    fn links(&self) -> &Links<Waiter> {
        &self.links
    }
}

impl Waiter {
    /// A waiter that is not queued.
    pub(crate) const fn new() -> Waiter {
        Waiter {
            links: Links::new(),
            waker: Cell::new(None),
            notified: AtomicBool::new(false),
        }
    }

    /// Whether a notifier picked this waiter.
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }
}

/// A queue of waiters behind the lock that also protects the primitive's state `S`.
pub(crate) struct WaitQueue<S> {
    state: Mutex<Guarded<S>>,
}

/// The state and the waiter list, both under the queue lock.
pub(crate) struct Guarded<S> {
    /// The primitive's own state (a permit count, a generation, nothing).
    pub(crate) state: S,
    waiters: List<Waiter>,
}

// SAFETY: the list points to `Waiter`s on other threads' stacks; they are only touched under
// the mutex (list.rs rule 1) and carry only a `Waker` (Send + Sync) and atomics.
unsafe impl<S: Send> Send for Guarded<S> {}

impl<S> Guarded<S> {
    /// The number of waiters.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Unlinks the first waiter and marks it notified; returns its waker, to be woken after
    /// the lock is released.
    pub(crate) fn notify_one(&mut self) -> Option<Waker> {
        notify_one(&mut self.waiters)
    }

    /// Notifies every waiter; returns their wakers.
    pub(crate) fn notify_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.waiters.len());
        while let Some(waker) = notify_one(&mut self.waiters) {
            wakers.push(waker);
        }
        wakers
    }
}

/// Unlinks the first waiter of `list` and marks it notified (see the module protocol).
fn notify_one(list: &mut List<Waiter>) -> Option<Waker> {
    let node = list.pop_front()?;
    // SAFETY: the waiter was linked, so its owner keeps it alive until it sees `notified`
    // or takes the lock we hold (list.rs rule 2).
    let waiter = unsafe { node.as_ref() };
    let waker = waiter.waker.take();
    // Release: pairs with `is_notified`; our last access to the waiter.
    waiter.notified.store(true, Ordering::Release);
    waker
}

/// Where to link a new waiter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Position {
    /// At the back (FIFO).
    Back,
    /// At the front (a waiter that was woken and lost the race keeps its turn).
    Front,
}

impl<S> WaitQueue<S> {
    /// A queue with initial state `state`.
    pub(crate) const fn new(state: S) -> WaitQueue<S> {
        WaitQueue {
            state: Mutex::new(Guarded {
                state,
                waiters: List::new(),
            }),
        }
    }

    /// Locks the state (a poisoned lock is recovered: our critical sections keep the state
    /// consistent even if a waker's wake panicked, which it does not).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Guarded<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until notified, or until `deadline`. `guard` is the queue lock, held by the
    /// caller who found it must wait; it is released before parking. Returns whether the
    /// waiter was notified (false: the deadline passed first).
    pub(crate) fn wait(
        &self,
        guard: MutexGuard<'_, Guarded<S>>,
        position: Position,
        deadline: Option<Instant>,
    ) -> bool {
        self.wait_then(guard, position, deadline, || {})
    }

    /// Like [`WaitQueue::wait`], running `before_park` after the waiter is queued and the
    /// queue lock released, before parking (`Condvar` releases the user's mutex there, so a
    /// notification sent after that unlock finds the waiter queued).
    pub(crate) fn wait_then(
        &self,
        mut guard: MutexGuard<'_, Guarded<S>>,
        position: Position,
        deadline: Option<Instant>,
        before_park: impl FnOnce(),
    ) -> bool {
        let waiter = Waiter::new();
        let parking = Parking::prepare().reason(WaitReason::Lock);
        waiter.waker.set(Some(parking.waker()));
        // SAFETY: `waiter` lives on this frame, does not move, and `Unlink` below unlinks it
        // under the lock before the frame ends unless a notifier already did (list.rs rules).
        unsafe {
            match position {
                Position::Back => guard.waiters.push_back(&waiter),
                Position::Front => guard.waiters.push_front(&waiter),
            }
        }
        drop(guard);
        let unlink = Unlink {
            queue: self,
            waiter: &waiter,
        };
        before_park();
        let mut parking = parking;
        loop {
            match deadline {
                Some(deadline) => {
                    parking.park_until(deadline);
                }
                None => parking.park(),
            }
            if waiter.is_notified() {
                std::mem::forget(unlink);
                return true;
            }
            let mut guard = self.lock();
            // Under the lock, `notified` is settled: a notifier sets it under this lock.
            if waiter.is_notified() {
                std::mem::forget(unlink);
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // SAFETY: the waiter can only be linked in this queue's list.
                unsafe { guard.waiters.remove(&waiter) };
                std::mem::forget(unlink);
                return false;
            }
            // Woken without a notification or a timeout (a timer raced a re-armed park):
            // park again with a fresh waker, published under the lock.
            parking = Parking::prepare().reason(WaitReason::Lock);
            waiter.waker.set(Some(parking.waker()));
        }
    }
}

/// Unlinks a waiter whose frame unwinds while it waits (a coroutine force-unwound at runtime
/// shutdown), so that the list never points to a dead frame.
struct Unlink<'a, S> {
    queue: &'a WaitQueue<S>,
    waiter: &'a Waiter,
}

impl<S> Drop for Unlink<'_, S> {
    fn drop(&mut self) {
        if self.waiter.is_notified() {
            return;
        }
        let mut guard = self.queue.lock();
        // SAFETY: the waiter can only be linked in this queue's list.
        unsafe { guard.waiters.remove(self.waiter) };
    }
}

/// Wakes every waker of `wakers` (after the lock that produced them was released).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
