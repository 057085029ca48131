//! Where a finished coroutine leaves its result for its [`crate::JoinHandle`]: one word of
//! state and two words of value inside the task's control block.
//!
//! A spawn used to allocate a separate result packet (a mutex and the result) beside the
//! control block. Keeping the result in the control block saves that allocation, its
//! reference counting and two lock round trips per spawn and join, and a quarter of the
//! memory a finished but not yet joined coroutine holds (docs/performance.md, "Spawn and
//! join"). Results of up to two words (`()`, integers, `Box`, `Result<usize, io::Error>`)
//! and the panic payload live inline; larger results are boxed.
//!
//! # State word
//!
//! | from                 | to                     | by                  | when                      |
//! |----------------------|------------------------|---------------------|---------------------------|
//! | `RUNNING`            | a waker word           | the joiner          | it parks (CAS)            |
//! | a waker word         | `RETURNED`/`PANICKED`  | the body            | it finishes: wakes it     |
//! | `RUNNING`            | `RETURNED`/`PANICKED`  | the body            | it finishes (swap)        |
//! | `RETURNED`/`PANICKED`| `TAKEN`                | the joiner          | it took the value         |
//! | `RUNNING`            | `DETACHED`             | the handle's drop   | detach (swap)             |
//! | `RETURNED`/`PANICKED`| `DETACHED`             | the handle's drop   | it drops the value        |
//! | `DETACHED`           | `RETURNED`/`PANICKED`  | the body            | it drops its own value    |
//!
//! A waker word is a [`Waker::into_raw`] word: the address of a heap allocation (with the
//! thread tag in bit 0), so it is never one of the small constants below.
//!
//! The value is written only by the body, before its swap publishes it (release), and moved
//! out exactly once: by whichever of the body and the handle makes the *second* of the two
//! transitions "body finished" and "handle gone or joining" (acquire). Only the body and the
//! handle know the result's type, so only they touch the value; a handle leaked with
//! `mem::forget` leaks the result, as it would with std.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::dump::WaitReason;
use crate::runtime::drop_without_unwinding;
use crate::task::{Parking, Waker};

/// The body is running, its handle is alive, nobody waits.
const RUNNING: usize = 0;
/// The value holds the body's result.
const RETURNED: usize = 2;
/// The value holds the body's panic payload.
const PANICKED: usize = 3;
/// The handle was dropped; whoever finishes second drops the value.
const DETACHED: usize = 4;
/// The joiner took the value.
const TAKEN: usize = 5;

/// Room for a result inline: two words.
type Value = MaybeUninit<[usize; 2]>;

/// The join state of one task; see the module table.
pub(crate) struct JoinSlot {
    state: AtomicUsize,
    value: UnsafeCell<Value>,
}

// SAFETY: `value` is written by the body before the release swap that publishes it and read
// once by the party the state word hands it to (module docs); `state` is atomic.
unsafe impl Sync for JoinSlot {}

impl JoinSlot {
    pub(crate) fn new() -> JoinSlot {
        JoinSlot {
            state: AtomicUsize::new(RUNNING),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Whether the body has finished (returned or panicked).
    pub(crate) fn is_complete(&self) -> bool {
        matches!(
            self.state.load(Ordering::Acquire),
            RETURNED | PANICKED | TAKEN
        )
    }

    /// Stores the body's result and wakes the joiner, if one waits.
    ///
    /// # Safety
    /// Called once, by the task's body, with the `T` the task was spawned with.
    pub(crate) unsafe fn complete<T>(&self, result: thread::Result<T>) {
        let finished = match result {
            // SAFETY: the slot is empty and only the body writes it, before the swap below.
            Ok(value) => unsafe {
                write_value(self.value.get(), value);
                RETURNED
            },
            // SAFETY: as above.
            Err(payload) => unsafe {
                write_value(self.value.get(), payload);
                PANICKED
            },
        };
        match self.state.swap(finished, Ordering::AcqRel) {
            RUNNING => {}
            // The body runs this after its own `catch_unwind`.
            DETACHED => drop_without_unwinding(|| {
                // SAFETY: the handle is gone and saw the body running, so it did not touch
                // the value; the body is the second party and moves it out.
                unsafe { self.drop_value::<T>(finished) }
            }),
            RETURNED | PANICKED | TAKEN => unreachable!("coronet: a coroutine finishes once"),
            // SAFETY: the word is the joiner's waker, put there by `join` with `into_raw`; the
            // swap took it out of the slot, so it is rebuilt exactly once, while the joiner
            // is still in the park it was made for (it leaves only when woken).
            waker => unsafe { Waker::from_raw(waker) }.wake(),
        }
    }

    /// Waits for the body to finish and takes its result: parks the calling coroutine, or
    /// blocks the calling thread.
    ///
    /// # Safety
    /// Called at most once, by the task's handle, with the `T` the task was spawned with.
    pub(crate) unsafe fn join<T>(&self, target: u64) -> thread::Result<T> {
        let mut current = self.state.load(Ordering::Acquire);
        if current == RUNNING {
            let parking = Parking::prepare().reason(WaitReason::Join { coroutine: target });
            let waker = parking.waker().into_raw();
            match self
                .state
                .compare_exchange(RUNNING, waker, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // Only the body takes the waker out, as it finishes: the park returns
                    // once the value is there.
                    parking.park();
                    current = self.state.load(Ordering::Acquire);
                }
                Err(actual) => {
                    // The body finished meanwhile: the waker never reached the slot.
                    // SAFETY: `waker` came from `into_raw` above and was not published.
                    drop(unsafe { Waker::from_raw(waker) });
                    parking.cancel();
                    current = actual;
                }
            }
        }
        match current {
            RETURNED | PANICKED => {}
            DETACHED | TAKEN => unreachable!("coronet: a JoinHandle joins once"),
            _ => unreachable!("coronet: a join's park returned before the coroutine finished"),
        }
        // The value is ours: the body finished, the handle (our caller) is still alive.
        self.state.store(TAKEN, Ordering::Relaxed);
        // SAFETY: the acquire load that saw RETURNED/PANICKED makes the body's write visible;
        // the caller's promise gives the type; TAKEN keeps anyone else from reading it.
        unsafe {
            if current == RETURNED {
                Ok(read_value::<T>(self.value.get()))
            } else {
                Err(read_value(self.value.get()))
            }
        }
    }

    /// The handle is dropped without joining: drop the result if the body finished, else
    /// leave it to the body.
    ///
    /// # Safety
    /// Called once, by the task's handle, with the `T` the task was spawned with.
    pub(crate) unsafe fn detach<T>(&self) {
        match self.state.swap(DETACHED, Ordering::AcqRel) {
            // SAFETY: the body finished first, so the handle moves the value out (module
            // docs); the caller's promise gives the type.
            finished @ (RETURNED | PANICKED) => unsafe { self.drop_value::<T>(finished) },
            RUNNING | TAKEN => {}
            // A joiner unwound out of its park (runtime shutdown) and left its waker.
            // SAFETY: the word came from `into_raw` in `join`; the swap took it out.
            waker => drop(unsafe { Waker::from_raw(waker) }),
        }
    }

    /// # Safety
    /// The value holds what `finished` says, of type `T` for `RETURNED`, and is read once.
    unsafe fn drop_value<T>(&self, finished: usize) {
        // SAFETY: the caller's promise.
        unsafe {
            if finished == RETURNED {
                drop(read_value::<T>(self.value.get()));
            } else {
                drop(read_value::<Box<dyn std::any::Any + Send>>(
                    self.value.get(),
                ));
            }
        }
    }
}

impl Drop for JoinSlot {
    fn drop(&mut self) {
        // Only a joiner's waker can be left here (its handle keeps the task alive while it
        // waits, so this is defensive); the value, if any, is the handle's to drop.
        let word = *self.state.get_mut();
        if !matches!(word, RUNNING | RETURNED | PANICKED | DETACHED | TAKEN) {
            // SAFETY: a waker word from `into_raw`, never taken out of the slot.
            drop(unsafe { Waker::from_raw(word) });
        }
    }
}

/// Whether a `V` is stored in place (else it is boxed and the box is stored).
const fn fits_inline<V>() -> bool {
    size_of::<V>() <= size_of::<Value>() && align_of::<V>() <= align_of::<Value>()
}

/// Moves `value` into the slot, in place or boxed.
///
/// # Safety
/// `slot` is valid for writes and holds no value.
unsafe fn write_value<V>(slot: *mut Value, value: V) {
    // SAFETY: `slot` is writable (caller); a `V` that fits has the slot's size and alignment
    // at most, and a `Box<V>` (one word) always fits.
    unsafe {
        if fits_inline::<V>() {
            slot.cast::<V>().write(value);
        } else {
            slot.cast::<Box<V>>().write(Box::new(value));
        }
    }
}

/// Moves the `V` that `write_value::<V>` stored out of the slot.
///
/// # Safety
/// `slot` holds a `V` written by `write_value::<V>` and not read since.
unsafe fn read_value<V>(slot: *mut Value) -> V {
    // SAFETY: the caller's promise; the same `fits_inline` choice as the write.
    unsafe {
        if fits_inline::<V>() {
            slot.cast::<V>().read()
        } else {
            *slot.cast::<Box<V>>().read()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Counts drops, to check each stored value is dropped exactly once.
    struct Counted<const N: usize>(Arc<AtomicUsize>, [u64; N]);

    impl<const N: usize> Drop for Counted<N> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted<const N: usize>() -> (Counted<N>, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        (Counted(drops.clone(), [7; N]), drops)
    }

    #[test]
    fn small_values_live_inline_and_large_ones_boxed() {
        assert!(fits_inline::<()>());
        assert!(fits_inline::<u64>());
        assert!(fits_inline::<Box<dyn std::any::Any + Send>>());
        assert!(fits_inline::<Result<usize, std::io::Error>>());
        assert!(!fits_inline::<String>());
        assert!(!fits_inline::<[u64; 3]>());
    }

    #[test]
    fn a_result_completed_first_is_joined_once() {
        // Boxed (four words).
        let slot = JoinSlot::new();
        let (value, drops) = counted::<4>();
        // SAFETY: one complete, one join and the handle's detach, all with `Counted<4>`.
        let joined = unsafe {
            slot.complete(Ok(value));
            assert!(slot.is_complete());
            let joined = slot.join::<Counted<4>>(1).unwrap();
            slot.detach::<Counted<4>>();
            joined
        };
        assert_eq!(joined.1, [7; 4]);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the joined value was dropped"
        );
        drop(joined);
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // In place (one word).
        let slot = JoinSlot::new();
        let (value, drops) = counted::<0>();
        // SAFETY: as above, with `Counted<0>`.
        let joined = unsafe {
            slot.complete(Ok(value));
            let joined = slot.join::<Counted<0>>(1).unwrap();
            slot.detach::<Counted<0>>();
            joined
        };
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the joined value was dropped"
        );
        drop(joined);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panic_payload_comes_back_as_err() {
        let slot = JoinSlot::new();
        // SAFETY: one complete and one join, both with `u64`.
        let payload = unsafe {
            slot.complete::<u64>(Err(Box::new("boom")));
            slot.join::<u64>(1).unwrap_err()
        };
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }

    #[test]
    fn whoever_finishes_second_drops_the_value() {
        // The handle goes first: the body drops its own result.
        let slot = JoinSlot::new();
        let (value, drops) = counted::<4>();
        // SAFETY: one detach and one complete, both with `Counted<4>`.
        unsafe {
            slot.detach::<Counted<4>>();
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            slot.complete(Ok(value));
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // The body goes first: the handle drops the stored result (in place this time).
        let slot = JoinSlot::new();
        let (value, drops) = counted::<1>();
        // SAFETY: one complete and one detach, both with `Counted<1>`.
        unsafe {
            slot.complete(Ok(value));
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            slot.detach::<Counted<1>>();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_thread_joiner_parks_until_the_body_completes() {
        let slot = Arc::new(JoinSlot::new());
        let (value, drops) = counted::<3>();
        let joiner = {
            let slot = slot.clone();
            thread::spawn(move || {
                // SAFETY: one join with `Counted<3>`, matching the complete below.
                let joined = unsafe { slot.join::<Counted<3>>(1) };
                joined.map(|v| v.1)
            })
        };
        // Complete only once the joiner has published its waker, so the park path runs.
        while slot.state.load(Ordering::Acquire) == RUNNING {
            thread::yield_now();
        }
        // SAFETY: one complete with `Counted<3>`.
        unsafe { slot.complete(Ok(value)) };
        assert_eq!(joiner.join().unwrap().unwrap(), [7; 3]);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
