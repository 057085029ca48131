//! The blocking pool: an elastic set of OS threads for calls that would block a worker (DNS,
//! files, CPU-heavy or legacy blocking code).
//!
//! [`blocking`] hands the closure to the pool and parks the coroutine until a pool thread has
//! run it. A thread is started when a job arrives and no pool thread is idle (up to
//! [`MAX_THREADS`]); idle threads exit after [`KEEP_ALIVE`]. The closure may borrow from the
//! coroutine's stack: the coroutine stays parked, so the borrow outlives the job, and runtime
//! shutdown waits for running jobs before it unwinds parked coroutines.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crate::context;
use crate::dump::WaitReason;
use crate::task::Parking;

/// Upper bound on pool threads per runtime.
pub const MAX_THREADS: usize = 512;
/// How long an idle pool thread waits for a job before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    running: usize,
    shutdown: bool,
}

/// One runtime's blocking pool.
pub(crate) struct BlockingPool {
    state: Arc<(Mutex<PoolState>, Condvar)>,
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool {
            state: Arc::new((Mutex::new(PoolState::default()), Condvar::new())),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.state
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .threads
    }

    fn submit(&self, job: Job) -> std::io::Result<()> {
        let (lock, condvar) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.shutdown {
            return Err(std::io::Error::other("coronet: the runtime is shut down"));
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            condvar.notify_one();
            return Ok(());
        }
        if state.threads < MAX_THREADS {
            state.threads += 1;
            let pool = self.state.clone();
            let spawned = thread::Builder::new()
                .name("coronet-blocking".into())
                .spawn(move || pool_thread(pool));
            if let Err(error) = spawned {
                state.threads -= 1;
                if state.threads == 0 {
                    // Nobody could ever run the job: hand it back as an error.
                    state.queue.pop_back();
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Stops accepting jobs and waits until every queued and running job has finished.
    pub(crate) fn shutdown(&self) {
        let (lock, condvar) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        state.shutdown = true;
        condvar.notify_all();
        while state.threads > 0 {
            state = condvar.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn pool_thread(pool: Arc<(Mutex<PoolState>, Condvar)>) {
    let (lock, condvar) = &*pool;
    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.running += 1;
            drop(state);
            job();
            state = lock.lock().unwrap_or_else(|e| e.into_inner());
            state.running -= 1;
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let (next, timeout) = condvar
            .wait_timeout(state, KEEP_ALIVE)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
    condvar.notify_all();
}

/// Where a job leaves its result.
struct Slot<T> {
    result: Mutex<Option<thread::Result<T>>>,
}

/// Runs `f` on the runtime's blocking pool while the calling coroutine is parked, and returns
/// its result; a panic in `f` propagates to the caller. On a plain thread, `f` simply runs.
///
/// Use it for calls that block their thread (file I/O, DNS, `std::thread::sleep`, CPU-heavy
/// work), so the worker keeps running other coroutines.
///
/// ```
/// let len = coronet_runtime::run(|| {
///     coronet_runtime::blocking(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len()))
/// });
/// assert!(len.unwrap() > 0);
/// ```
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let Some(task) = context::task() else {
        return f();
    };
    let shared = task.shared.clone();
    let slot = Arc::new(Slot {
        result: Mutex::new(None),
    });
    let parking = Parking::prepare().reason(WaitReason::Blocking);
    let waker = parking.waker();
    let job_slot = slot.clone();
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        *job_slot.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        waker.wake();
    });
    // The job may borrow from this coroutine's stack (`F` is not `'static`).
    // SAFETY: our frame outlives the job: we park until the slot is filled (after `f` ran
    // and was dropped), and shutdown, the only thing that could unwind a parked coroutine,
    // first waits for every pool job (`BlockingPool::shutdown`).
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    if let Err(error) = shared.blocking.submit(job) {
        parking.cancel();
        panic!("coronet::blocking: cannot start a pool thread: {error}");
    }
    parking.park();
    loop {
        if let Some(result) = slot.result.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return match result {
                Ok(value) => value,
                Err(payload) => panic::resume_unwind(payload),
            };
        }
        // Unreachable in practice (only the job holds this park's waker); stay safe anyway.
        let parking = Parking::prepare();
        parking.cancel();
        crate::coroutine::yield_now();
    }
}
