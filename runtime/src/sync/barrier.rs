//! [`Barrier`]: std's `Barrier` for coroutines and threads.
//!
//! Arrivals count up under a lock; the n-th arrival (the leader) starts a new generation and
//! wakes everyone parked in the old one. A waiter re-checks the generation under the lock
//! after every wake-up, so only the leader's broadcast releases it.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::dump::WaitReason;
use crate::task::{Parking, Waker};

/// Lets `n` coroutines (or threads) wait for each other, repeatedly.
///
/// ```
/// use std::sync::Arc;
/// use coronet_runtime::sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(10));
/// let handles: Vec<_> = (0..10)
///     .map(|_| {
///         let barrier = barrier.clone();
///         coronet_runtime::spawn(move || barrier.wait().is_leader())
///     })
///     .collect();
/// let leaders = handles
///     .into_iter()
///     .filter_map(|h| h.join().unwrap().then_some(()))
///     .count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: Mutex<State>,
}

struct State {
    arrived: usize,
    generation: u64,
    waiters: Vec<Waker>,
}

/// What [`Barrier::wait`] returns: exactly one waiter per generation is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this waiter was the leader (the last to arrive).
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` parties (0 and 1 let every caller through as the leader).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: Mutex::new(State {
                arrived: 0,
                generation: 0,
                waiters: Vec::new(),
            }),
        }
    }

    /// Waits until `n` parties have called `wait` in this generation.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut state = self.lock();
        state.arrived += 1;
        if state.arrived >= self.n {
            state.arrived = 0;
            state.generation = state.generation.wrapping_add(1);
            let wakers = std::mem::take(&mut state.waiters);
            drop(state);
            for waker in wakers {
                waker.wake();
            }
            return BarrierWaitResult(true);
        }
        let generation = state.generation;
        loop {
            let parking = Parking::prepare().reason(WaitReason::Lock);
            state.waiters.push(parking.waker());
            drop(state);
            parking.park();
            state = self.lock();
            if state.generation != generation {
                return BarrierWaitResult(false);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("n", &self.n).finish()
    }
}
