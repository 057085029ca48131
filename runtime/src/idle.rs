//! Idle workers: bounded spinning, sleeping, and waking without losing a wake-up.
//!
//! Go's protocol (proc.go, "Worker thread parking/unparking"), in four steps:
//!
//! 1. Whoever makes work runnable (spawn, wake, a poll) calls [`Idle::notify_work`]
//!    *after* publishing it: if some worker is spinning, that worker will find the work;
//!    otherwise one sleeping worker is woken and counted as spinning.
//! 2. A worker that finds no work may spin (look for work to steal) if fewer than half of the
//!    active workers already spin ([`Idle::try_spin`]).
//! 3. A spinning worker that finds work stops spinning; if it was the last spinner it wakes
//!    another ([`Idle::found_work`]), because the work it found may have come in a batch.
//! 4. A worker that gives up first registers as a sleeper and stops spinning
//!    ([`Idle::prepare_sleep`]), *then* looks at every queue once more; only if all are empty
//!    does it sleep. If it found work, [`Idle::cancel_sleep`] tells it whether a notifier
//!    already took it off the sleeper list (then it counts as spinning).
//!
//! Why no wake-up is lost: the notifier does (publish work; SeqCst fence; read the counters)
//! and the sleeper does (update the counters; SeqCst fence; read the queues). By the total
//! order of the two fences, either the notifier sees the sleeper registered (and wakes it or
//! relies on a spinner that will look at the queues), or the sleeper's final look sees the
//! work.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// The shared idle state of one runtime.
pub(crate) struct Idle {
    num_spinning: AtomicUsize,
    num_sleeping: AtomicUsize,
    /// Indices of sleeping workers; the lock orders registrations against wake-ups.
    sleepers: Mutex<Vec<usize>>,
    /// Per worker: `notify_work` took it off the sleeper list and counted it as spinning.
    /// Set under the `sleepers` lock, consumed by the worker ([`Idle::take_woken`]); the
    /// parker's token alone cannot say this, because a wake-up that raced with the worker's
    /// final look leaves a stale token behind.
    woken: Box<[AtomicBool]>,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            num_spinning: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::new()),
            woken: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Whether `notify_work` woke worker `index` (and counted it as spinning) since the last
    /// call; the worker then counts itself as spinning. A `false` after a park means the
    /// park returned on a stale token: the worker is not counted and must not count itself.
    pub(crate) fn take_woken(&self, index: usize) -> bool {
        self.woken[index].swap(false, Ordering::SeqCst)
    }

    /// Step 1. Returns the index of a worker to unpark, if one must be woken.
    pub(crate) fn notify_work(&self) -> Option<usize> {
        // Pairs with the fence in `prepare_sleep`.
        fence(Ordering::SeqCst);
        if self.num_spinning.load(Ordering::SeqCst) != 0
            || self.num_sleeping.load(Ordering::SeqCst) == 0
        {
            return None;
        }
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if self.num_spinning.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let index = sleepers.pop()?;
        self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        // The woken worker starts out spinning, so concurrent notifiers do not wake more.
        self.num_spinning.fetch_add(1, Ordering::SeqCst);
        self.woken[index].store(true, Ordering::SeqCst);
        Some(index)
    }

    /// Step 2: may this worker spin? At most half of the `active` workers spin at once.
    pub(crate) fn try_spin(&self, active: usize) -> bool {
        let spinning = self.num_spinning.load(Ordering::SeqCst);
        if 2 * spinning >= active.max(2) {
            return false;
        }
        self.num_spinning.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Step 3: a spinning worker found work. Returns true if it was the last spinner (the
    /// caller then notifies, so another worker looks for the rest of a batch).
    pub(crate) fn found_work(&self) -> bool {
        self.unspin() == 1
    }

    /// A spinning worker stops spinning without having found work.
    pub(crate) fn stop_spinning(&self) {
        self.unspin();
    }

    /// Decrements the spinner count; returns the previous value. A spinner that was never
    /// counted would wrap the count and silence `notify_work` forever: stop loudly instead.
    fn unspin(&self) -> usize {
        let previous = self.num_spinning.fetch_sub(1, Ordering::SeqCst);
        if previous == 0 {
            eprintln!("coronet: fatal: idle protocol: a worker stopped spinning twice");
            std::process::abort();
        }
        previous
    }

    /// Step 4: registers `index` as a sleeper (and ends its spinning). The caller must then
    /// look at every queue and either sleep or call `cancel_sleep`.
    pub(crate) fn prepare_sleep(&self, index: usize, spinning: bool) {
        {
            let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            sleepers.push(index);
            self.num_sleeping.fetch_add(1, Ordering::SeqCst);
        }
        if spinning {
            self.unspin();
        }
        // Pairs with the fence in `notify_work`.
        fence(Ordering::SeqCst);
    }

    /// Sleeper `index` is about to block in the poller: it goes to the back of the wake
    /// order, so `notify_work` wakes a parked worker first and the poller keeps polling
    /// (Go: the thread in netpoll is not an idle P's; `wakep` starts another).
    pub(crate) fn poll_sleeper(&self, index: usize) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(position) = sleepers.iter().position(|&i| i == index) {
            sleepers.remove(position);
            sleepers.insert(0, index);
        }
    }

    /// The final look found work. Returns true if `index` was still registered (it is now a
    /// normal running worker); false if a notifier already took it off the list (then
    /// [`Idle::take_woken`] is true: it counts as spinning; its parker will hold a token,
    /// possibly delivered later, which makes a later park return once, harmlessly).
    pub(crate) fn cancel_sleep(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        match sleepers.iter().position(|&i| i == index) {
            Some(position) => {
                sleepers.swap_remove(position);
                self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Every sleeping worker, for shutdown.
    pub(crate) fn take_all_sleepers(&self) -> Vec<usize> {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        self.num_sleeping.store(0, Ordering::SeqCst);
        std::mem::take(&mut *sleepers)
    }

    pub(crate) fn sleeping(&self) -> usize {
        self.num_sleeping.load(Ordering::Relaxed)
    }

    pub(crate) fn spinning(&self) -> usize {
        self.num_spinning.load(Ordering::Relaxed)
    }
}

/// Blocks one worker thread; a token-based `park`/`unpark` pair.
pub(crate) struct Parker {
    state: Mutex<ParkerState>,
    condvar: Condvar,
}

#[derive(Default)]
struct ParkerState {
    /// An `unpark` is pending.
    notified: bool,
    /// The owner is blocked on the condvar. `unpark` signals it only then: a worker asleep
    /// in the poller instead (poll.rs) or not asleep at all needs no futex wake.
    waiting: bool,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            state: Mutex::new(ParkerState::default()),
            condvar: Condvar::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ParkerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until `unpark` is or was called; consumes the token.
    pub(crate) fn park(&self) {
        let mut state = self.state();
        while !state.notified {
            state.waiting = true;
            state = self.condvar.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting = false;
        }
        state.notified = false;
    }

    pub(crate) fn unpark(&self) {
        let waiting = {
            let mut state = self.state();
            state.notified = true;
            state.waiting
        };
        // The waiter re-checks `notified` under the lock, so signalling after releasing it
        // cannot be missed.
        if waiting {
            self.condvar.notify_one();
        }
    }

    /// Whether an `unpark` is pending (a worker about to block in the poller looks).
    pub(crate) fn has_token(&self) -> bool {
        self.state().notified
    }

    /// Consumes a pending `unpark`, if any (after sleeping in the poller instead of here).
    pub(crate) fn clear(&self) {
        self.state().notified = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// The lost-wake-up race, many times: a sleeper's last look and a notifier's publish
    /// interleave on two threads; the sleeper must always either see the work or be woken.
    #[test]
    fn no_lost_wakeup_between_last_look_and_notify() {
        for _ in 0..20_000 {
            let idle = Arc::new(Idle::new(1));
            let parker = Arc::new(Parker::new());
            let work = Arc::new(AtomicBool::new(false));
            let sleeper = {
                let (idle, parker, work) = (idle.clone(), parker.clone(), work.clone());
                std::thread::spawn(move || {
                    idle.prepare_sleep(0, false);
                    if work.load(Ordering::SeqCst) {
                        if !idle.cancel_sleep(0) {
                            assert!(idle.take_woken(0), "popped but not marked woken");
                        }
                        return;
                    }
                    parker.park();
                    assert!(idle.take_woken(0), "woken by a token nobody counted");
                })
            };
            work.store(true, Ordering::SeqCst);
            if let Some(index) = idle.notify_work() {
                assert_eq!(index, 0);
                parker.unpark();
            }
            sleeper.join().unwrap();
        }
    }
}
