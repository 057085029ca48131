//! M:N stackful coroutines on a work-stealing scheduler, with Go's netpoll: idle workers block
//! in the OS poller and run what it wakes.
//!
//! This is Go's scheduler and netpoll loop in Rust (see `docs/runtime.md`):
//!
//! | Go                                   | coronet                                         |
//! |--------------------------------------|-------------------------------------------------|
//! | `go f()`                             | [`spawn`]                                       |
//! | G (goroutine), its stack             | a coroutine ([`Coroutine`]) on a pooled, guarded stack |
//! | M + P (thread + run queue)           | a worker thread with a deque and a `runnext` slot |
//! | global run queue                     | the injector                                    |
//! | `findrunnable`, work stealing        | `worker.rs` search order                        |
//! | `gopark` / `goready`                 | the park-then-commit protocol (`task.rs`)       |
//! | netpoll + timers                     | idle workers / monitor (`poll.rs`, `timer.rs`)  |
//! | `pollDesc`                           | [`io::Registration`]                            |
//! | sysmon                               | the monitor thread (`monitor.rs`)               |
//! | `chan`, `close`, `select`            | [`chan`], [`select!`]                           |
//! | `sync.Mutex`, `RWMutex`, `WaitGroup` | [`sync`]                                        |
//! | goroutine dump, `GODEBUG=schedtrace` | [`runtime::dump`], `CORONET_SCHEDTRACE`         |
//!
//! ```
//! let total = coronet_runtime::run(|| {
//!     let children: Vec<_> = (1..=100u64)
//!         .map(|i| coronet_runtime::spawn(move || {
//!             coronet_runtime::yield_now();
//!             i
//!         }))
//!         .collect();
//!     children.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 5050);
//! ```
//!
//! # Rules for code running on coroutines
//!
//! * A coroutine may resume on a different worker thread after any parking call (`sleep`,
//!   `join`, socket I/O, channel operations). Do not hold `thread_local!` references or
//!   `!Send` values (a `std::sync::MutexGuard`, an `Rc` shared with other coroutines) across
//!   such a call; use [`coroutine_local!`] for per-coroutine state.
//! * Do not hold a `std::sync::Mutex` across a parking call: another coroutine on the same
//!   worker may need it. Use coronet's locks.
//! * There is no preemption: a coroutine that loops or blocks its thread keeps its worker.
//!   Use [`blocking()`] for blocking calls; the monitor starts spare workers meanwhile so other
//!   coroutines keep running.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod blocking;
pub mod chan;
mod context;
pub mod coroutine;
mod dump;
mod idle;
pub mod io;
mod join;
pub mod local;
mod monitor;
mod poll;
pub mod runtime;
mod stack;
mod stats;
pub mod sync;
mod sys;
mod task;
mod task_ref;
mod timer;
mod unstarted;
mod worker;

pub use blocking::blocking;
pub use coroutine::{
    current, in_coroutine, park, park_timeout, run, sleep, sleep_until, spawn, try_current,
    yield_now, Coroutine, CoroutineId, JoinHandle,
};
pub use runtime::Runtime;
pub use stats::Stats;
pub use task::{Parking, Waker};

/// Default usable stack size of a coroutine, in bytes (lazily committed; see docs/runtime.md
/// for how it was chosen). Change it per runtime with [`runtime::Builder::stack_size`] or per
/// coroutine with [`coroutine::Builder::stack_size`].
pub const DEFAULT_STACK_SIZE: usize = stack::DEFAULT_STACK_SIZE;
