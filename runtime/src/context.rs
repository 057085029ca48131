//! The one thread-local of the runtime: "which worker is this OS thread".
//!
//! A coroutine may be suspended on one worker thread and resumed on another, and LLVM treats
//! the thread pointer as constant within a function: a thread-local address computed before a
//! suspend can be reused after it and name the *old* thread's slot (DESIGN.md section 6). The
//! runtime therefore keeps exactly one thread-local, a `Cell` holding a raw pointer (no lazy
//! initialisation, no destructor), and reads it only through [`worker`], which is
//! `#[inline(never)]` and returns through `black_box`, so every call re-reads the slot of the
//! thread that is running *now*. Callers must never keep the returned reference across a park:
//! they call [`worker`] again after every suspend. `tests/migration.rs` checks this in release
//! builds by resuming coroutines on many threads.

use std::cell::Cell;
use std::hint::black_box;
use std::ptr;

use crate::task::Task;
use crate::worker::WorkerContext;

thread_local! {
    /// The worker running on this OS thread, or null on a plain thread.
    static CURRENT_WORKER: Cell<*const WorkerContext> = const { Cell::new(ptr::null()) };
}

/// The worker context of the calling OS thread, if it is a worker thread.
///
/// The reference is valid until the caller next parks, yields or returns to the worker: the
/// context lives as long as its worker thread, and a coroutine can only leave this thread by
/// suspending.
#[inline(never)]
pub(crate) fn worker<'a>() -> Option<&'a WorkerContext> {
    let ptr = black_box(CURRENT_WORKER.with(|slot| slot.get()));
    // SAFETY: the pointer is set by `enter_worker` to a context that outlives the worker loop
    // and cleared before the context is dropped; it is only ever read on its own thread.
    unsafe { ptr.as_ref() }
}

/// The coroutine running on the calling thread, if any (see [`worker`] for the lifetime rule).
#[inline]
pub(crate) fn task<'a>() -> Option<&'a Task> {
    // SAFETY: a worker's current task is kept alive by the worker's reference for exactly
    // the duration of its resume, which is when code on the coroutine can call this.
    worker().and_then(|worker| unsafe { worker.current_task_ptr().as_ref() })
}

/// The coroutine running on the calling thread as its cell's pointer (`TaskRef::as_ptr`), for
/// code that makes a counted reference of it or hands it to a waker; same lifetime rule.
#[inline]
pub(crate) fn task_ptr() -> Option<*const Task> {
    worker()
        .map(|worker| worker.current_task_ptr())
        .filter(|task| !task.is_null())
}

/// Marks the calling thread as running `worker` until the guard is dropped.
pub(crate) fn enter_worker(worker: &WorkerContext) -> WorkerGuard {
    CURRENT_WORKER.with(|slot| slot.set(worker));
    WorkerGuard(())
}

/// Clears the thread's worker slot on drop (also on unwind).
pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        CURRENT_WORKER.with(|slot| slot.set(ptr::null()));
    }
}
