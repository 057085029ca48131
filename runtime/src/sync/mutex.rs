//! [`Mutex`]: Go's `sync.Mutex` (normal and starvation modes) with std's guard and poisoning.
//!
//! # The state word (Go's `Mutex.state`)
//!
//! | bits     | name       | meaning                                                        |
//! |----------|------------|----------------------------------------------------------------|
//! | 0        | `LOCKED`   | someone holds the lock                                         |
//! | 1        | `WOKEN`    | a waiter is awake (spinning or woken) and will retry: unlock need not wake another |
//! | 2        | `STARVING` | hand-off mode: unlock passes ownership to the first waiter      |
//! | 3..      | waiters    | coroutines/threads parked (or about to park) on the semaphore  |
//!
//! **Normal mode**: waiters queue FIFO on the semaphore ([`Sema`]), but a woken waiter does
//! not own the lock: it competes with newcomers, which usually win (they already run). A
//! waiter that loses goes back to the *front* of the queue. Uncontended lock and unlock are
//! one atomic instruction each.
//!
//! **Starvation mode**: a waiter that has waited more than [`STARVATION_THRESHOLD`] (1 ms)
//! sets `STARVING`. Then unlock hands the lock directly to the first waiter, newcomers queue
//! at the back without trying, and nobody spins. The last waiter, or one that waited less
//! than the threshold, switches back to normal mode. So a waiter cannot starve, even behind a
//! coroutine that re-locks in a loop.
//!
//! Transitions (all by CAS or `fetch_add` on the state word):
//!
//! | who              | from                          | to                                    |
//! |------------------|-------------------------------|---------------------------------------|
//! | lock, fast       | `0`                           | `LOCKED`                              |
//! | lock, slow       | not `LOCKED`, not `STARVING`  | `+LOCKED` (acquired)                  |
//! | lock, slow       | `LOCKED` or `STARVING`        | `+1 waiter` (then park on the sema), `+STARVING` if it starved |
//! | unlock           | any                           | `-LOCKED`                             |
//! | unlock, normal   | waiters, no `LOCKED`/`WOKEN`  | `-1 waiter +WOKEN`, release one permit |
//! | unlock, starving | `STARVING`                    | release one permit (hand-off)         |
//! | handed-off waiter| `STARVING`                    | `+LOCKED -1 waiter` (`-STARVING` if last or not starved) |
//!
//! Orderings: acquiring CASes are `Acquire`, the unlocking `fetch_sub` is `Release`; they
//! pair with each other. A hand-off is ordered by the semaphore's lock and its notification
//! (`Release` store, `Acquire` load in `waiters.rs`), which follow the unlocker's `fetch_sub`.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use crate::sync::guard::{debug_lock, guard_deref, guard_fmt, lock_from_value};
use crate::sync::sema::Sema;
use crate::sync::waiters::Position;

const LOCKED: u32 = 1;
const WOKEN: u32 = 2;
const STARVING: u32 = 4;
const WAITER_SHIFT: u32 = 3;
const WAITER: u32 = 1 << WAITER_SHIFT;

/// How long a waiter waits before it switches the mutex to hand-off mode (Go: 1 ms).
pub(crate) const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

/// Spin rounds before parking, and pause instructions per round (Go: 4 and 30).
const SPIN_ROUNDS: u32 = 4;
const SPIN_PAUSES: u32 = 30;

/// The lock without data: Go's `sync.Mutex`. Also the writer lock inside `RwLock`.
pub(crate) struct RawMutex {
    state: AtomicU32,
    sema: Sema,
}

impl RawMutex {
    pub(crate) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU32::new(0),
            sema: Sema::new(0),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    pub(crate) fn try_lock(&self) -> bool {
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            if old & (LOCKED | STARVING) != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                old,
                old | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => old = actual,
            }
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut wait_start: Option<Instant> = None;
        let mut starving = false;
        let mut awoke = false;
        let mut spins = 0;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin while the lock is held in normal mode: the holder may release it soon.
            // Never spin in starvation mode: ownership goes to the waiters anyway.
            if old & (LOCKED | STARVING) == LOCKED && can_spin(spins) {
                // Tell unlock not to wake a parked waiter: we are awake and will retry.
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                for _ in 0..SPIN_PAUSES {
                    std::hint::spin_loop();
                }
                spins += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // Newcomers do not take a starving mutex: they queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += WAITER;
            }
            // Switch to starvation mode, but only while the lock is held: unlock expects a
            // starving mutex to have waiters.
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                if new & WOKEN == 0 {
                    inconsistent("woken waiter without WOKEN");
                }
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // acquired by the CAS
                    }
                    // A waiter that was already woken once keeps its place at the front.
                    let position = if wait_start.is_some() {
                        Position::Front
                    } else {
                        Position::Back
                    };
                    let started = *wait_start.get_or_insert_with(Instant::now);
                    self.sema.acquire(position);
                    starving = starving || started.elapsed() > STARVATION_THRESHOLD;
                    old = self.state.load(Ordering::Relaxed);
                    if old & STARVING != 0 {
                        // Handed off: we own the lock, but LOCKED is clear and we are still
                        // counted as a waiter. Fix that, and leave starvation mode if we are
                        // the last waiter or did not starve (two coroutines could otherwise
                        // go lock-step in the slow mode forever).
                        if old & (LOCKED | WOKEN) != 0 || old >> WAITER_SHIFT == 0 {
                            inconsistent("hand-off to a locked mutex");
                        }
                        let mut delta = LOCKED.wrapping_sub(WAITER);
                        if !starving || old >> WAITER_SHIFT == 1 {
                            delta = delta.wrapping_sub(STARVING);
                        }
                        self.state.fetch_add(delta, Ordering::Acquire);
                        return;
                    }
                    awoke = true;
                    spins = 0;
                }
                Err(actual) => old = actual,
            }
        }
    }

    /// Releases the lock.
    ///
    /// The caller must hold it (the guard types guarantee this).
    #[inline]
    pub(crate) fn unlock(&self) {
        let new = self.state.fetch_sub(LOCKED, Ordering::Release);
        if new & LOCKED == 0 {
            inconsistent("unlock of an unlocked mutex");
        }
        let new = new - LOCKED;
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    #[cold]
    fn unlock_slow(&self, new: u32) {
        if new & STARVING != 0 {
            // Hand-off: the first waiter owns the lock when it wakes. LOCKED stays clear
            // until it sets it, but STARVING keeps newcomers out meanwhile.
            self.sema.release(1);
            return;
        }
        let mut old = new;
        loop {
            // Nobody to wake, or someone is already awake or took the lock.
            if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                return;
            }
            match self.state.compare_exchange(
                old,
                (old - WAITER) | WOKEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.sema.release(1);
                    return;
                }
                Err(actual) => old = actual,
            }
        }
    }
}

/// Go's `canSpin`: spinning pays only if the holder may be running on another CPU right
/// now. So: a few rounds, more than one CPU, and on a coroutine, another worker that is
/// awake (the holder may run there) and nothing else waiting to run on this worker (a
/// holder that parked or yielded here can only run once we park).
fn can_spin(spins: u32) -> bool {
    static CPUS: AtomicUsize = AtomicUsize::new(0);
    if spins >= SPIN_ROUNDS {
        return false;
    }
    let mut cpus = CPUS.load(Ordering::Relaxed);
    if cpus == 0 {
        cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        CPUS.store(cpus, Ordering::Relaxed);
    }
    if cpus <= 1 {
        return false;
    }
    // The reference is used here only, never across a park (context.rs's rule).
    match crate::context::worker() {
        Some(worker) => {
            let shared = &worker.shared;
            shared.active_workers() > shared.idle.sleeping() + 1 && !worker.slot().has_work()
        }
        None => true,
    }
}

#[cold]
fn inconsistent(what: &str) -> ! {
    eprintln!("coronet: fatal: inconsistent mutex state: {what}");
    std::process::abort()
}

/// Records a panic while a guard is held (std's poisoning).
pub(crate) struct Poison {
    poisoned: AtomicBool,
}

impl Poison {
    pub(crate) const fn new() -> Poison {
        Poison {
            poisoned: AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.poisoned.store(false, Ordering::Relaxed);
    }

    /// Taken when a guard is created: whether the thread was already panicking.
    ///
    /// `std::thread::panicking` reads a global counter and, only if some thread panics,
    /// a thread-local in a non-inlined function: it reads the slot of the thread running
    /// now, even right after a park (DESIGN.md section 6).
    pub(crate) fn guard(&self) -> PoisonGuard {
        PoisonGuard {
            panicking: std::thread::panicking(),
        }
    }

    /// Called when the guard is dropped: poison if a panic started meanwhile.
    pub(crate) fn done(&self, guard: &PoisonGuard) {
        if !guard.panicking && std::thread::panicking() {
            self.poisoned.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn map<G>(&self, guard: G) -> LockResult<G> {
        if self.get() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }
}

/// Whether the thread was panicking when a guard was taken.
pub(crate) struct PoisonGuard {
    panicking: bool,
}

/// A mutual exclusion lock for coroutines and threads: Go's `sync.Mutex` with the API of
/// `std::sync::Mutex`.
///
/// A coroutine that has to wait parks (its worker runs other coroutines); a plain thread
/// blocks. The guard may be held across parking calls (`sleep`, channel operations, I/O),
/// which a `std::sync::Mutex` must not be. Waiters are served fairly: one that waited more
/// than a millisecond gets the lock handed over directly (Go's starvation mode), so a
/// coroutine that re-locks in a loop cannot starve the others.
///
/// A panic while the guard is held poisons the mutex, as in std.
///
/// ```
/// use std::sync::Arc;
/// use coronet_runtime::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let handles: Vec<_> = (0..10)
///     .map(|_| {
///         let counter = counter.clone();
///         coronet_runtime::spawn(move || {
///             let mut n = counter.lock().unwrap();
///             coronet_runtime::yield_now(); // holding a coronet lock across a switch is fine
///             *n += 1;
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(*counter.lock().unwrap(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    poison: Poison,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one holder at a time, on any thread: `T: Send`
// is needed and enough, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above; `&Mutex<T>` only gives exclusive access through the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The guard of a locked [`Mutex`]; unlocks on drop.
///
/// Unlike std's, it is `Send` (for `T: Send`): a coroutine holding it may resume on another
/// worker thread, and the lock may be released from any thread.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    poison: PoisonGuard,
}

// SAFETY: the guard gives `&mut T` on whatever thread holds it; that is a move of access,
// which `T: Send` allows. The lock itself has no thread affinity.
unsafe impl<T: ?Sized + Send> Send for MutexGuard<'_, T> {}
// SAFETY: `&MutexGuard` only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            poison: Poison::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value (`Err` carries it if poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.poison.map(self.data.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, parking the calling coroutine (or blocking the thread) until it is
    /// available. `Err` if a holder panicked (the guard is inside the error).
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        self.poison.map(self.guard())
    }

    /// Locks the mutex if it is free now.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if !self.raw.try_lock() {
            return Err(TryLockError::WouldBlock);
        }
        self.poison.map(self.guard()).map_err(TryLockError::from)
    }

    /// Whether a holder panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.map(self.data.get_mut())
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            poison: self.poison.guard(),
        }
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (for `Condvar`).
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }
}

guard_deref!(MutexGuard.mutex, mut);

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.poison.done(&self.poison);
        self.mutex.raw.unlock();
    }
}

guard_fmt!(MutexGuard: Debug, Display);

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_lock(f, "Mutex", self.try_lock(), &self.poison)
    }
}

lock_from_value!(Mutex);
