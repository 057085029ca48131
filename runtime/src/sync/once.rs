//! [`OnceLock`]: std's `OnceLock` whose concurrent initialisers park instead of blocking
//! their worker thread.
//!
//! # States (one `AtomicU8`)
//!
//! | from         | to           | by                                   |
//! |--------------|--------------|--------------------------------------|
//! | `INCOMPLETE` | `RUNNING`    | the caller that wins the CAS; it runs the initialiser |
//! | `RUNNING`    | `COMPLETE`   | that caller, after writing the value (`Release`)     |
//! | `RUNNING`    | `INCOMPLETE` | that caller, if the initialiser panicked             |
//!
//! The value is written once, before the `Release` store of `COMPLETE`; readers load the
//! state with `Acquire` before touching it. Callers that find `RUNNING` park in a waker list;
//! they re-check the state under the list's lock before parking, and the initialiser changes
//! the state *before* taking that lock to wake them, so a waiter is never left behind.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::dump::WaitReason;
use crate::task::{Parking, Waker};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// A cell written once, for coroutines and threads.
///
/// While one caller of [`OnceLock::get_or_init`] runs the initialiser, the others park (a
/// coroutine's worker keeps running other coroutines) and then return the same value.
///
/// ```
/// use coronet_runtime::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// let handles: Vec<_> = (0..8)
///     .map(|_| coronet_runtime::spawn(|| CONFIG.get_or_init(|| "loaded".to_owned()).len()))
///     .collect();
/// for h in handles {
///     assert_eq!(h.join().unwrap(), 6);
/// }
/// assert_eq!(CONFIG.get().map(String::as_str), Some("loaded"));
/// ```
pub struct OnceLock<T> {
    state: AtomicU8,
    waiters: Mutex<Vec<Waker>>,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once by one thread (the initialiser, exclusive by the state
// CAS) and then only shared (`&T`) across threads: `T: Sync` for sharing, `T: Send` because
// the value may be created on one thread and dropped or taken on another.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the value.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicU8::new(INCOMPLETE),
            waiters: Mutex::new(Vec::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if initialised (never waits).
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == COMPLETE {
            // SAFETY: COMPLETE (acquired) means the value was written and never changes
            // while `&self` exists.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, through exclusive access.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if *self.state.get_mut() == COMPLETE {
            // SAFETY: COMPLETE means initialised; `&mut self` gives exclusive access.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Stores `value` if the cell is empty (waiting for a running initialiser first);
    /// otherwise gives `value` back.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the initialiser runs at most once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialising it with `init` if the cell is empty. If another caller is
    /// initialising it, parks until it is done. If `init` panics, the panic propagates and
    /// the cell stays empty (a waiting caller then runs its own initialiser).
    pub fn get_or_init<F>(&self, init: F) -> &T
    where
        F: FnOnce() -> T,
    {
        if let Some(value) = self.get() {
            return value;
        }
        self.initialize(init);
        self.get().expect("initialised")
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if *self.state.get_mut() == COMPLETE {
            *self.state.get_mut() = INCOMPLETE;
            // SAFETY: it was COMPLETE, so initialised; the state now says it is not, so it
            // will not be read or dropped again.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }

    /// Consumes the cell, returning its value if initialised.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    #[cold]
    fn initialize<F: FnOnce() -> T>(&self, init: F) {
        let mut init = Some(init);
        loop {
            match self.state.compare_exchange(
                INCOMPLETE,
                RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let reset = ResetOnPanic { cell: self };
                    let init = init.take().expect("the initialiser runs at most once");
                    let value = init();
                    // SAFETY: RUNNING (won by our CAS) gives us exclusive access to the slot.
                    unsafe { (*self.value.get()).write(value) };
                    std::mem::forget(reset);
                    self.finish(COMPLETE);
                    return;
                }
                Err(COMPLETE) => return,
                Err(_) => {
                    let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
                    if self.state.load(Ordering::Acquire) != RUNNING {
                        continue;
                    }
                    let parking = Parking::prepare().reason(WaitReason::Lock);
                    waiters.push(parking.waker());
                    drop(waiters);
                    parking.park();
                }
            }
        }
    }

    /// Publishes the final state of a run, then wakes the parked callers.
    fn finish(&self, state: u8) {
        // Release: pairs with `get`'s acquire load (the value write happens before).
        self.state.store(state, Ordering::Release);
        let wakers =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Puts the cell back to `INCOMPLETE` if the initialiser panics.
struct ResetOnPanic<'a, T> {
    cell: &'a OnceLock<T>,
}

impl<T> Drop for ResetOnPanic<'_, T> {
    fn drop(&mut self) {
        self.cell.finish(INCOMPLETE);
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == COMPLETE {
            // SAFETY: COMPLETE means initialised; we are dropping the cell.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        match self.get() {
            Some(value) => OnceLock::from(value.clone()),
            None => OnceLock::new(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
