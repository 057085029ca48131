//! The runtime's internal lock for short critical sections: a test-and-test-and-set spin
//! lock whose unlock is a plain `Release` store.
//!
//! # Why not `std::sync::Mutex`
//!
//! An uncontended `std::sync::Mutex` costs two atomic read-modify-writes: a compare-and-swap
//! to lock and a swap to unlock (the swap tells it whether a sleeping thread must be woken).
//! On x86 each is a `lock`-prefixed instruction that drains the store buffer. A channel's
//! hand-off takes the channel lock twice per message (the sender's send and the receiver's
//! registration), so on the ping-pong path the unlocks were 4 of the 18 locked instructions
//! of a round trip. A spin lock unlocks with a plain store, as Go's `runtime.lock` cannot
//! (it sleeps on a futex, so its unlock must swap), and as crossbeam's channels do for their
//! waker lists.
//!
//! # When it is sound to spin
//!
//! The holder never parks, yields, blocks in a system call or runs user code under this lock
//! (no destructors of messages; waking a park is an atomic state change, the queueing comes
//! after the unlock; each user states this at its lock), so the holder is always running on
//! some thread and releases the lock after a bounded amount of its own work. A waiter only waits for the holder's *thread*, which the OS may have
//! preempted: after a short exponential spin it yields its thread (`sched_yield`) so the
//! holder gets the core, as crossbeam's `Backoff::snooze` does.
//!
//! The trade, measured (docs/performance.md, "Decisions measured"): coroutines contending a
//! channel on two workers move a message in about a third of the time they took with
//! `std::sync::Mutex`, while sixteen plain threads contending one channel on two cores pay
//! 15-45 % more (a waiter spins while the OS has preempted the holder; `std` puts it to
//! sleep). Yielding at once instead of spinning made that case three times worse.

use std::cell::UnsafeCell;
use std::hint;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spin rounds (each twice as long as the one before, up to 2^`SPIN_ROUNDS` pause
/// instructions) before a waiter starts yielding its thread.
const SPIN_ROUNDS: u32 = 6;

/// A spin lock around a `T`. See the module docs for when it may be used.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one thread at a time (the `locked` flag, taken with
// `Acquire` and released with `Release`, orders the accesses), so sharing the lock shares
// only the right to send `T` between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks, spinning (then yielding the thread) while another thread holds the lock.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut round = 0;
        loop {
            // Test before test-and-set: waiters spin on a shared copy of the line and do
            // not take it from the holder until it looks free.
            while self.locked.load(Ordering::Relaxed) {
                if round < SPIN_ROUNDS {
                    for _ in 0..1u32 << round {
                        hint::spin_loop();
                    }
                    round += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// Holds a [`SpinLock`]; unlocks when dropped (also on unwind).
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread accesses the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only access
        // through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: everything written under the lock happens before the next holder's
        // `Acquire` that takes it.
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::SpinLock;
    use std::sync::Arc;

    #[test]
    fn threads_incrementing_under_the_lock_lose_no_update() {
        const THREADS: usize = 4;
        const ROUNDS: usize = 20_000;
        let counter = Arc::new(SpinLock::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        // A read and a write apart: a lock that let two holders in at once
                        // would lose increments.
                        let mut guard = counter.lock();
                        let seen = *guard;
                        std::hint::black_box(&seen);
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*counter.lock(), THREADS * ROUNDS);
    }

    #[test]
    fn a_panic_under_the_lock_unlocks_it() {
        let lock = SpinLock::new(1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = lock.lock();
            panic!("inside the critical section");
        }));
        assert!(caught.is_err());
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 2);
    }
}
