//! A spawned coroutine before its first run: its body waits in the control block, and the
//! worker that first runs it takes a stack from its own cache then.
//!
//! # Why the stack is not taken at spawn (Go takes it in `newproc`)
//!
//! * **A burst of spawns does not commit a page per queued coroutine.** A coroutine that
//!   spawns a million others before it parks queues a million bodies; with a stack each, the
//!   kernel had to clear a million pages before any of them ran (2.1 µs per spawn+join on
//!   one worker, 88 % of it in the kernel). Taken at first run, the stacks of finished
//!   coroutines are reused by the next ones: 0.23 µs (docs/performance.md, "Spawn and
//!   join").
//! * **The stack is prepared where it runs.** The first frame is written by the worker
//!   that resumes the coroutine, on a stack from that worker's cache (just released by a
//!   coroutine it ran), instead of by the spawning worker on a stack that then crosses to
//!   the thief's cache: spawn+join on two workers, 142 -> 117 ns.
//!
//! The cost: a stack that cannot be mapped (out of memory, `vm.max_map_count`) is found at
//! the first run, not at spawn. The coroutine then does not run: its join handle returns an
//! error naming the cause, which is also printed (see [`CoroutineBody::fail`]).
//!
//! # Storage
//!
//! The body is stored in the control block itself when it fits in [`INLINE_WORDS`] words
//! (the usual closure: a few handles and numbers), boxed otherwise, behind one `Vtable` per
//! body type and storage, so that a pool cell has one size whatever was spawned.

use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};

use corosensei::Yielder;

use crate::stack::PooledStack;
use crate::task::{Coro, Resume, Suspend};

/// Words of body kept in the control block; a larger (or more aligned) body is boxed.
pub(crate) const INLINE_WORDS: usize = 6;

/// What a spawned coroutine runs, and what becomes of it when it cannot run.
pub(crate) trait CoroutineBody: Send + 'static {
    /// Runs the body on its coroutine, whose `yielder` suspends it.
    fn run(self, yielder: &Yielder<Resume, Suspend>);

    /// No stack could be had for the first run: ends the coroutine without running it,
    /// reporting `error` to its joiner.
    fn fail(self, error: io::Error);
}

/// The functions that take a stored body out again, for one body type and storage.
struct Vtable {
    /// Builds the coroutine on `stack`.
    start: unsafe fn(*mut u8, PooledStack) -> Coro,
    fail: unsafe fn(*mut u8, io::Error),
    /// Drops the body unrun (runtime shutdown).
    discard: unsafe fn(*mut u8),
}

/// A coroutine body waiting for its first run, with the stack size it asked for.
pub(crate) struct Unstarted {
    vtable: &'static Vtable,
    stack_size: usize,
    /// The body itself (inline) or a `Box` of it, as `vtable` says.
    storage: MaybeUninit<[usize; INLINE_WORDS]>,
}

// SAFETY: the storage holds a `CoroutineBody`, which is `Send`, or a `Box` of one.
unsafe impl Send for Unstarted {}

impl Unstarted {
    /// Stores `body` until the first run, which will give it a stack of `stack_size` bytes.
    pub(crate) fn new<B: CoroutineBody>(body: B, stack_size: usize) -> Unstarted {
        let mut storage = MaybeUninit::<[usize; INLINE_WORDS]>::uninit();
        let place = storage.as_mut_ptr().cast::<u8>();
        let vtable = if fits_inline::<B>() {
            // SAFETY: `B` fits the storage in size and alignment (checked just above).
            unsafe { place.cast::<B>().write(body) };
            &VtableOf::<B, true>::VTABLE
        } else {
            // SAFETY: a `Box` is one word, aligned as the storage is.
            unsafe { place.cast::<Box<B>>().write(Box::new(body)) };
            &VtableOf::<B, false>::VTABLE
        };
        Unstarted {
            vtable,
            stack_size,
            storage,
        }
    }

    /// The stack size to give the coroutine.
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// The coroutine, on `stack`, ready for its first resume.
    pub(crate) fn start(self, stack: PooledStack) -> Coro {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the storage holds the body `vtable` was made for; `ManuallyDrop` makes
        // this its one use.
        unsafe { (this.vtable.start)(this.storage.as_mut_ptr().cast(), stack) }
    }

    /// Ends the coroutine unrun, reporting `error` (see [`CoroutineBody::fail`]).
    pub(crate) fn fail(self, error: io::Error) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: as in `start`.
        unsafe { (this.vtable.fail)(this.storage.as_mut_ptr().cast(), error) }
    }
}

impl Drop for Unstarted {
    /// The runtime shut down before the first run: the body is dropped unrun (its joiner
    /// learns that from the body's own drop).
    fn drop(&mut self) {
        // SAFETY: as in `start`; `drop` runs once, and not after `start` or `fail`.
        unsafe { (self.vtable.discard)(self.storage.as_mut_ptr().cast()) }
    }
}

const fn fits_inline<B>() -> bool {
    mem::size_of::<B>() <= mem::size_of::<[usize; INLINE_WORDS]>()
        && mem::align_of::<B>() <= mem::align_of::<usize>()
}

/// The vtable for bodies of type `B`, stored inline (`INLINE`) or boxed.
struct VtableOf<B, const INLINE: bool>(PhantomData<B>);

impl<B: CoroutineBody, const INLINE: bool> VtableOf<B, INLINE> {
    const VTABLE: Vtable = Vtable {
        start: start::<B, INLINE>,
        fail: fail::<B, INLINE>,
        discard: discard::<B, INLINE>,
    };
}

/// Moves the body out of its storage.
///
/// # Safety
/// `storage` holds a `B` (`INLINE`) or a `Box<B>`, which is not used again.
unsafe fn take<B, const INLINE: bool>(storage: *mut u8) -> B {
    if INLINE {
        // SAFETY: the caller's promise.
        unsafe { storage.cast::<B>().read() }
    } else {
        // SAFETY: the caller's promise.
        *unsafe { storage.cast::<Box<B>>().read() }
    }
}

/// # Safety
/// As for [`take`].
unsafe fn start<B: CoroutineBody, const INLINE: bool>(
    storage: *mut u8,
    stack: PooledStack,
) -> Coro {
    // SAFETY: forwarded.
    let body = unsafe { take::<B, INLINE>(storage) };
    Coro::with_stack(stack, move |yielder, _first: Resume| body.run(yielder))
}

/// # Safety
/// As for [`take`].
unsafe fn fail<B: CoroutineBody, const INLINE: bool>(storage: *mut u8, error: io::Error) {
    // SAFETY: forwarded.
    unsafe { take::<B, INLINE>(storage) }.fail(error);
}

/// # Safety
/// As for [`take`].
unsafe fn discard<B: CoroutineBody, const INLINE: bool>(storage: *mut u8) {
    // SAFETY: forwarded.
    drop(unsafe { take::<B, INLINE>(storage) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A body of `WORDS` words that records what became of it.
    struct Probe<const WORDS: usize> {
        ballast: [u64; WORDS],
        events: Arc<Mutex<Vec<String>>>,
    }

    impl<const WORDS: usize> Probe<WORDS> {
        fn new(events: &Arc<Mutex<Vec<String>>>) -> Probe<WORDS> {
            Probe {
                ballast: [7; WORDS],
                events: events.clone(),
            }
        }

        fn record(&self, event: String) {
            self.events.lock().unwrap().push(event);
        }
    }

    impl<const WORDS: usize> CoroutineBody for Probe<WORDS> {
        fn run(self, _yielder: &Yielder<Resume, Suspend>) {
            self.record("run".into());
        }

        fn fail(self, error: io::Error) {
            self.record(format!("fail {error} {}", self.ballast[WORDS - 1]));
        }
    }

    impl<const WORDS: usize> Drop for Probe<WORDS> {
        fn drop(&mut self) {
            self.record("drop".into());
        }
    }

    fn events_of(make: impl FnOnce(&Arc<Mutex<Vec<String>>>)) -> Vec<String> {
        let events = Arc::new(Mutex::new(Vec::new()));
        make(&events);
        let events = events.lock().unwrap().clone();
        events
    }

    #[test]
    fn small_bodies_are_kept_inline_and_large_ones_boxed() {
        assert!(fits_inline::<Probe<1>>());
        assert!(!fits_inline::<Probe<INLINE_WORDS>>());
        assert!(!fits_inline::<Probe<64>>());
    }

    #[test]
    fn a_failed_start_hands_the_body_its_error_then_drops_it() {
        for events in [
            events_of(|e| Unstarted::new(Probe::<1>::new(e), 0).fail(io::Error::other("x"))),
            events_of(|e| Unstarted::new(Probe::<64>::new(e), 0).fail(io::Error::other("x"))),
        ] {
            assert_eq!(events, ["fail x 7", "drop"]);
        }
    }

    #[test]
    fn an_unstarted_body_dropped_unrun_is_dropped_once() {
        for events in [
            events_of(|e| drop(Unstarted::new(Probe::<1>::new(e), 0))),
            events_of(|e| drop(Unstarted::new(Probe::<64>::new(e), 0))),
        ] {
            assert_eq!(events, ["drop"]);
        }
    }

    #[test]
    fn the_stack_size_is_kept_for_the_first_run() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let unstarted = Unstarted::new(Probe::<1>::new(&events), 256 * 1024);
        assert_eq!(unstarted.stack_size(), 256 * 1024);
    }
}
