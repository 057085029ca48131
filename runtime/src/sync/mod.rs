//! Coroutine-aware locks and synchronisation primitives: Go's `sync` package with std's API.
//!
//! | Go                     | coronet                                   | std counterpart           |
//! |------------------------|-------------------------------------------|---------------------------|
//! | `sync.Mutex`           | [`Mutex`] (guard, poisoning)              | `std::sync::Mutex`        |
//! | `sync.RWMutex`         | [`RwLock`]                                | `std::sync::RwLock`       |
//! | `sync.Cond`            | [`Condvar`] (with coronet's [`Mutex`])    | `std::sync::Condvar`      |
//! | `sync.WaitGroup`       | [`WaitGroup`] (crossbeam's API)           | —                         |
//! | `x/sync/semaphore`     | [`Semaphore`]                             | —                         |
//! | —                      | [`Barrier`]                               | `std::sync::Barrier`      |
//! | `sync.Once`, `OnceValue` | [`OnceLock`]                            | `std::sync::OnceLock`     |
//!
//! Waiting parks the calling coroutine, so its worker thread keeps running other coroutines;
//! on a plain thread the same call blocks the thread. Every wait goes through the runtime's
//! one park-then-commit protocol (`task.rs`): a waiter publishes its waker in the
//! primitive's queue under a short internal lock, releases that lock, then parks, so no
//! wake-up is lost and none is delivered twice.
//!
//! Why not `std::sync::Mutex` in coroutines: a std guard held across a parking call blocks
//! every coroutine that then tries to lock on that worker, and can deadlock it. Guards of
//! this module may be held across `sleep`, channel operations and socket I/O.
//!
//! See `docs/sync.md` for semantics and for when to use a channel instead.

mod barrier;
mod condvar;
mod guard;
pub(crate) mod list;
mod mutex;
mod once;
mod rwlock;
pub(crate) mod sema;
mod semaphore;
pub(crate) mod spin;
pub(crate) mod waiters;
mod waitgroup;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::OnceLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;
