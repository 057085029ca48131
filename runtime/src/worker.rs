//! Worker threads: the run loop, the search for work, and running one coroutine.
//!
//! Each worker owns a FIFO deque (crossbeam `Worker`) and a `runnext` slot (Go's runnext: a
//! coroutine woken or spawned by the running one runs next, keeping producer/consumer pairs
//! on one cache). The search order ([`WorkerContext::find_local`] for steps 1 to 4,
//! [`WorkerContext::steal`] for step 5):
//!
//! 1. every 61st schedule, the injector first, so it cannot starve (Go: `schedtick % 61`);
//! 2. `runnext` (at most [`RUNNEXT_STREAK`] times in a row, so a ping-pong pair cannot starve
//!    the local queue);
//! 3. the local deque;
//! 4. the injector (a batch moves to the local deque);
//! 5. stealing: half of another worker's deque, then its `runnext` (random start).
//!
//! A worker that finds nothing spins (if allowed by [`crate::idle::Idle`]): one to
//! [`MAX_SPIN_PASSES`] stealing passes over the other workers, as many as recent spins
//! earned, then it sleeps: in the poller if it can take the poll token (poll.rs), otherwise
//! on its parker. Coroutines woken by its own poll go into its own
//! deque in event order and run on this thread.
//!
//! Worker *slots* are allocated up front: the configured workers plus spares the monitor
//! starts when a worker is stuck (see monitor.rs). A slot's deque is created once; the thread
//! that runs the slot takes the `Worker` end out of it and puts it back when it retires.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use crossbeam_deque::{Steal, Stealer, Worker};

use crate::context;
use crate::idle::Parker;
use crate::poll::{self, PollBuffers, PollWait};
use crate::runtime::Shared;
use crate::stack::{self, LocalCache};
use crate::sys::CpuClock;
use crate::task::{CoroState, Resume, SendCoro, Suspend, Task};
use crate::task_ref::TaskRef;

/// How many times in a row `runnext` may win over the local deque.
const RUNNEXT_STREAK: u32 = 8;
/// The longest spin of an idle worker, in stealing passes, and the time between two
/// passes (so at most 4 µs; see `WorkerContext::spin`). Spacing the passes keeps the spinner
/// off the victims' deque indices, cache lines their owners write on every push and pop.
const MAX_SPIN_PASSES: u32 = 16;
const SPIN_INTERVAL: Duration = Duration::from_nanos(250);

/// Per-worker counters, written only by the owning worker (plain load+store, no RMW),
/// read by anyone for stats.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) switches: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) spawned: AtomicU64,
    pub(crate) completed: AtomicU64,
}

#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    // Only the owning worker writes: a load and a store are enough and avoid a locked RMW.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The shared half of a worker: what other threads may touch.
pub(crate) struct WorkerSlot {
    pub(crate) stealer: Stealer<TaskRef>,
    /// The owner end of the deque while no thread runs this slot.
    deque: Mutex<Option<Worker<TaskRef>>>,
    /// Go's runnext; a `TaskRef` given up with `into_raw`, or null. Any thread may take it.
    runnext: AtomicPtr<Task>,
    /// A thread is running this slot.
    pub(crate) active: AtomicBool,
    pub(crate) parker: Parker,
    pub(crate) counters: WorkerCounters,
    /// Bumped each time the worker starts running a coroutine (the monitor watches it).
    pub(crate) ticks: AtomicU64,
    /// The id of the coroutine this worker runs right now, 0 between coroutines.
    running: AtomicU64,
    /// The worker is blocked in `blocking`-style work the monitor already replaced.
    pub(crate) replaced: AtomicBool,
    /// Spare slots are started by the monitor and retire when idle.
    pub(crate) spare: bool,
    /// The CPU clock of the thread running this slot (for the monitor).
    pub(crate) cpu_clock: Mutex<Option<CpuClock>>,
    /// The worker sleeps in the poller rather than on its parker (poll.rs).
    pub(crate) in_poll: AtomicBool,
}

impl WorkerSlot {
    pub(crate) fn new(spare: bool) -> WorkerSlot {
        let deque = Worker::new_fifo();
        WorkerSlot {
            stealer: deque.stealer(),
            deque: Mutex::new(Some(deque)),
            runnext: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicBool::new(false),
            parker: Parker::new(),
            counters: WorkerCounters::default(),
            ticks: AtomicU64::new(0),
            running: AtomicU64::new(0),
            replaced: AtomicBool::new(false),
            spare,
            cpu_clock: Mutex::new(None),
            in_poll: AtomicBool::new(false),
        }
    }

    /// The id of the coroutine running on this worker, 0 if none.
    pub(crate) fn running_id(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Takes the runnext coroutine, from any thread.
    pub(crate) fn take_runnext(&self) -> Option<TaskRef> {
        if self.runnext.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let ptr = self.runnext.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a non-null runnext is a `TaskRef` given up by `put_runnext`; the swap
        // gives this thread sole ownership of that reference.
        (!ptr.is_null()).then(|| unsafe { TaskRef::from_raw(ptr) })
    }

    /// Puts `task` in runnext; returns the coroutine it displaced.
    fn put_runnext(&self, task: TaskRef) -> Option<TaskRef> {
        let old = self
            .runnext
            .swap(TaskRef::into_raw(task).cast_mut(), Ordering::AcqRel);
        // SAFETY: as in `take_runnext`: the swap made us the owner of the old reference.
        (!old.is_null()).then(|| unsafe { TaskRef::from_raw(old) })
    }

    /// Whether this slot has queued work (deque or runnext).
    pub(crate) fn has_work(&self) -> bool {
        !self.stealer.is_empty() || !self.runnext.load(Ordering::Acquire).is_null()
    }

    pub(crate) fn has_runnext(&self) -> bool {
        !self.runnext.load(Ordering::Relaxed).is_null()
    }

    /// Whether another worker may take this slot's runnext (see `WorkerContext::steal`).
    fn runnext_stealable(&self) -> bool {
        self.replaced.load(Ordering::Relaxed) || !self.active.load(Ordering::Acquire)
    }

    /// Whether this slot has work another worker could take now.
    fn has_stealable_work(&self) -> bool {
        !self.stealer.is_empty()
            || (!self.runnext.load(Ordering::Acquire).is_null() && self.runnext_stealable())
    }

    /// Drops whatever is queued (shutdown, after the owner stopped).
    pub(crate) fn drain(&self) -> Vec<TaskRef> {
        let mut tasks: Vec<_> = self.take_runnext().into_iter().collect();
        loop {
            match self.stealer.steal() {
                Steal::Success(task) => tasks.push(task),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        tasks
    }
}

/// The thread-owned half of a worker. Lives on its thread's stack for the thread's life.
pub(crate) struct WorkerContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// `&shared.slots[index]`, kept because every schedule reads it (see `slot`).
    slot: *const WorkerSlot,
    deque: Worker<TaskRef>,
    current: Cell<*const Task>,
    pub(crate) stacks: RefCell<LocalCache>,
    tick: Cell<u32>,
    runnext_streak: Cell<u32>,
    /// The length of this worker's next spin, in stealing passes (see `spin`).
    spin_passes: Cell<u32>,
    rng: Cell<u64>,
    /// Dispatching this worker's own poll: woken coroutines are queued in order, without a
    /// wake-up each (one `notify_work` for the batch afterwards).
    batching: Cell<bool>,
    batched: Cell<usize>,
    poll_buffers: RefCell<PollBuffers>,
}

impl WorkerContext {
    pub(crate) fn slot(&self) -> &WorkerSlot {
        // SAFETY: `slot` points into `shared.slots`, a boxed slice that is never resized or
        // freed while `shared` lives, and this context holds `shared` for its whole life.
        unsafe { &*self.slot }
    }

    /// The coroutine this worker is running as its cell's pointer, null if none. `current`
    /// is set to a task kept alive by the caller of `resume` (it holds a `TaskRef`) for
    /// exactly the duration of the resume, and cleared after.
    pub(crate) fn current_task_ptr(&self) -> *const Task {
        self.current.get()
    }

    /// Makes `task` runnable on this worker, ahead of the queue (Go's `runqput(next=true)`).
    ///
    /// Unlike Go's `ready`, this wakes an idle worker only when it displaces an older
    /// coroutine into the (stealable) deque: a coroutine in `runnext` runs as soon as the
    /// current one parks, which in a request/response exchange is immediately, and waking
    /// a sibling thread that would only find `runnext` costs a futex wake per message. If the
    /// current coroutine instead runs on for long, the monitor notices within a tick and lets
    /// an idle worker take `runnext` (see `steal`).
    pub(crate) fn push_next(&self, task: TaskRef) {
        if self.batching.get() {
            self.deque.push(task);
            self.batched.set(self.batched.get() + 1);
            return;
        }
        if let Some(displaced) = self.slot().put_runnext(task) {
            self.deque.push(displaced);
            self.shared.notify_work();
        }
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: only spreads steal start points.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Steps 1 to 4 of the search order: work this worker can take without stealing.
    fn find_local(&self) -> Option<TaskRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % 61 == 0 {
            if let Some(task) = self.steal_injector() {
                return Some(task);
            }
        }
        let slot = self.slot();
        if self.runnext_streak.get() < RUNNEXT_STREAK {
            if let Some(task) = slot.take_runnext() {
                self.runnext_streak.set(self.runnext_streak.get() + 1);
                return Some(task);
            }
        }
        self.runnext_streak.set(0);
        self.deque
            .pop()
            .or_else(|| slot.take_runnext())
            .or_else(|| self.steal_injector())
    }

    fn steal_injector(&self) -> Option<TaskRef> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Step 5: steal from the other active workers.
    fn steal(&self) -> Option<TaskRef> {
        let slots = self.shared.started_slots();
        let start = (self.next_random() as usize) % slots.len();
        for offset in 0..slots.len() {
            let index = (start + offset) % slots.len();
            if index == self.index {
                continue;
            }
            let victim = &slots[index];
            if !victim.active.load(Ordering::Acquire) && !victim.has_work() {
                continue;
            }
            let stolen = loop {
                match victim.stealer.steal_batch_and_pop(&self.deque) {
                    Steal::Success(task) => break Some(task),
                    Steal::Empty => break None,
                    Steal::Retry => continue,
                }
            };
            // A running worker picks its own runnext as soon as its coroutine parks; take it
            // only from a worker the monitor found stuck, or one that stopped.
            let stolen = stolen.or_else(|| {
                victim
                    .runnext_stealable()
                    .then(|| victim.take_runnext())
                    .flatten()
            });
            if stolen.is_some() {
                bump(&self.slot().counters.steals);
                return stolen;
            }
        }
        self.steal_injector()
    }

    /// Looks for work to steal before sleeping: up to `spin_passes` passes over the other
    /// workers, [`SPIN_INTERVAL`] apart. The length adapts, as an adaptive mutex's spin
    /// does: a spin that found work doubles it (up to [`MAX_SPIN_PASSES`]), one that found
    /// nothing halves it (down to one pass). Where work keeps arriving from other workers (a
    /// coroutine spawning many), spinning saves the producer a wake-up syscall per item;
    /// where it mostly arrives through the poller (a server), spins fail, and a failed spin
    /// only burns CPU that counts in every request (docs/performance.md, "Spinning").
    fn spin(&self) -> Option<TaskRef> {
        let passes = self.spin_passes.get();
        // Read the clock only for a spin that paces (most are one pass on a server).
        let started = (passes > 1).then(Instant::now);
        for pass in 1..=passes {
            if let Some(task) = self.steal() {
                self.spin_passes.set(next_spin_passes(passes, true));
                return Some(task);
            }
            if let Some(started) = started.filter(|_| pass < passes) {
                let next_pass = started + SPIN_INTERVAL * pass;
                while Instant::now() < next_pass {
                    std::hint::spin_loop();
                }
            }
        }
        self.spin_passes.set(next_spin_passes(passes, false));
        None
    }

    /// Whether any queue of the runtime holds work (the sleeper's final look).
    fn any_work_visible(&self) -> bool {
        !self.shared.injector.is_empty()
            || self
                .shared
                .started_slots()
                .iter()
                .enumerate()
                .any(|(index, slot)| index != self.index && slot.has_stealable_work())
    }

    /// Runs `task` until it parks, yields or finishes, then goes on with the next local
    /// coroutine without going back through the run loop; returns when there is none.
    fn run_task(&self, mut task: TaskRef) {
        let slot = self.slot();
        loop {
            self.current.set(TaskRef::as_ptr(&task));
            bump(&slot.ticks);
            slot.running.store(task.id, Ordering::Release);
            // SAFETY: this worker dequeued the task, so it holds the run right until it
            // hands the task on below; nothing else touches the coroutine meanwhile.
            let result = match unsafe { task.coro_mut() } {
                CoroState::Started(coro) => coro.0.resume(Resume::Run),
                state @ CoroState::Unstarted(_) => match self.start(state, &task) {
                    Some(coro) => coro.0.resume(Resume::Run),
                    // No stack: the coroutine ended unrun, its joiner has the error.
                    None => CoroutineResult::Return(()),
                },
                CoroState::Finished => abort_finished(task.id),
            };
            slot.running.store(0, Ordering::Release);
            self.current.set(std::ptr::null());
            bump(&slot.counters.switches);
            match result {
                CoroutineResult::Yield(Suspend::Yield) => self.deque.push(task),
                CoroutineResult::Yield(Suspend::Park) => {
                    bump(&slot.counters.parks);
                    match Task::commit_park(task) {
                        // Parked: our reference is the park's now, for its waker to queue.
                        None => {}
                        // Notified before the commit: resume it at once.
                        Some(notified) => {
                            task = notified;
                            continue;
                        }
                    }
                }
                CoroutineResult::Return(()) => self.finish(task),
            }
            if self.shared.is_shutdown() {
                return;
            }
            // The run loop's search without its other steps (none applies: this worker is
            // not spinning, and it just ran a coroutine).
            match self.find_local() {
                Some(next) => task = next,
                None => return,
            }
        }
    }

    /// A coroutine's first run: gives its body a stack from this worker's cache (a stack
    /// that the last coroutine to finish here left warm) and builds the coroutine on it. If
    /// no stack can be had, the body fails (`CoroutineBody::fail`) and `None` is returned.
    #[inline(never)]
    fn start<'a>(&self, state: &'a mut CoroState, task: &Task) -> Option<&'a mut SendCoro> {
        let CoroState::Unstarted(body) = std::mem::replace(state, CoroState::Finished) else {
            unreachable!("start of a coroutine that has started");
        };
        // The cache's borrow ends here, before a failed body runs its captures' destructors.
        let allocated = self.stacks.borrow_mut().allocate(body.stack_size());
        let stack = match allocated {
            Ok(stack) => stack,
            Err(error) => {
                // The body's captures are dropped on this worker's own stack, not on a
                // coroutine: code they run must not take this task for the running one.
                self.current.set(std::ptr::null());
                body.fail(error);
                return None;
            }
        };
        stack::set_owner_name(&stack, task.id, task.name.as_deref());
        *state = CoroState::Started(SendCoro(body.start(stack)));
        match state {
            CoroState::Started(coro) => Some(coro),
            _ => unreachable!("a coroutine was just stored"),
        }
    }

    #[inline(never)]
    fn finish(&self, task: TaskRef) {
        // SAFETY: the coroutine returned (or failed to start) on this worker, which still
        // holds the run right.
        let coro = std::mem::replace(unsafe { task.coro_mut() }, CoroState::Finished);
        if let CoroState::Started(coro) = coro {
            self.stacks.borrow_mut().release(coro.0.into_stack());
        }
    }

    /// The worker loop. Returns on shutdown, or when a spare worker retires.
    fn run(&self) {
        let mut spinning = false;
        while !self.shared.is_shutdown() {
            if let Some(task) = self.find_local() {
                self.found(&mut spinning);
                self.run_task(task);
                continue;
            }
            // Spinning looks for work to steal; a lone worker has nobody to steal from, and the
            // final look before sleeping covers the injector.
            let active = self.shared.active_workers();
            if !spinning && active > 1 {
                spinning = self.shared.idle.try_spin(active);
            }
            if spinning {
                if let Some(task) = self.spin() {
                    self.found(&mut spinning);
                    self.run_task(task);
                    continue;
                }
            }
            if self.slot().spare && self.shared.may_retire_spare() {
                if spinning {
                    self.shared.idle.stop_spinning();
                }
                return;
            }
            // Step 4 of the idle protocol: register, take a last look, then sleep.
            self.shared.idle.prepare_sleep(self.index, spinning);
            spinning = false;
            if self.any_work_visible() || self.shared.is_shutdown() {
                if !self.shared.idle.cancel_sleep(self.index) {
                    // A notifier took us off the list already and counted us as spinning.
                    spinning = self.shared.idle.take_woken(self.index);
                }
                continue;
            }
            if self.shared.workers_poll() && self.shared.try_take_poll_token() {
                spinning = self.sleep_in_poll();
                continue;
            }
            self.slot().parker.park();
            // The park may also return on a token left by a wake-up that raced with an
            // earlier final look (or at shutdown), with this worker still on the sleeper
            // list: take it off, or a later `notify_work` would pop a running worker and
            // count it as a spinner nobody uncounts. If a notifier already popped us, it
            // counted us as spinning (both under the sleepers lock, so exactly one holds).
            spinning = if self.shared.idle.cancel_sleep(self.index) {
                false
            } else {
                self.shared.idle.take_woken(self.index)
            };
        }
        if spinning {
            self.shared.idle.stop_spinning();
        }
    }

    /// Sleeps in the poller (this worker holds the poll token and is registered as a
    /// sleeper): blocks until an event, a timer or `unpark_worker`, runs the poll's wake-ups
    /// into the local deque, and gives the token back. Returns whether the worker now counts
    /// as spinning (a notifier woke it), as after a park.
    fn sleep_in_poll(&self) -> bool {
        let slot = self.slot();
        self.shared.idle.poll_sleeper(self.index);
        slot.in_poll.store(true, Ordering::SeqCst);
        // Pairs with the fence in `Shared::unpark_worker`: either it sees `in_poll` and
        // breaks the poll, or we see its token here and do not block.
        fence(Ordering::SeqCst);
        let wait = if slot.parker.has_token() || self.shared.is_shutdown() {
            PollWait::NoWait
        } else {
            PollWait::UntilTimer
        };
        self.batching.set(true);
        poll::poll_once(&self.shared, &mut self.poll_buffers.borrow_mut(), wait);
        self.batching.set(false);
        slot.in_poll.store(false, Ordering::SeqCst);
        self.shared.release_poll_token();
        // A wake-up delivered while we were in the poller is consumed here; one that comes
        // later leaves a stale token, which the next park handles as after any park.
        slot.parker.clear();
        let spinning = if self.shared.idle.cancel_sleep(self.index) {
            false
        } else {
            self.shared.idle.take_woken(self.index)
        };
        // We run the first woken coroutine; if there are more, let an idle worker steal.
        if self.batched.replace(0) > 1 {
            self.shared.notify_work();
        }
        spinning
    }

    fn found(&self, spinning: &mut bool) {
        if *spinning {
            *spinning = false;
            if self.shared.idle.found_work() {
                self.shared.notify_work();
            }
        }
    }
}

/// The length of the next spin after one of `passes` passes that did (`found`) or did not
/// find work: doubled or halved, within 1 to [`MAX_SPIN_PASSES`].
fn next_spin_passes(passes: u32, found: bool) -> u32 {
    if found {
        (passes * 2).min(MAX_SPIN_PASSES)
    } else {
        (passes / 2).max(1)
    }
}

#[cold]
fn abort_finished(id: u64) -> ! {
    eprintln!("coronet: fatal: finished coroutine {id} was scheduled");
    std::process::abort()
}

/// Body of a worker thread for slot `index`.
pub(crate) fn worker_main(shared: Arc<Shared>, index: usize) {
    stack::ensure_altstack();
    *shared.slots[index]
        .cpu_clock
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = CpuClock::current_thread();
    let deque = shared.slots[index]
        .deque
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("coronet: worker slot started twice");
    let seed = (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ Instant::now().elapsed().as_nanos() as u64;
    let ctx = WorkerContext {
        shared: shared.clone(),
        index,
        slot: &shared.slots[index],
        deque,
        current: Cell::new(std::ptr::null()),
        stacks: RefCell::new(LocalCache::new()),
        tick: Cell::new(0),
        runnext_streak: Cell::new(0),
        spin_passes: Cell::new(1),
        rng: Cell::new(seed | 1),
        batching: Cell::new(false),
        batched: Cell::new(0),
        poll_buffers: RefCell::new(PollBuffers::new()),
    };
    {
        let _guard = context::enter_worker(&ctx);
        ctx.run();
    }
    // Hand the deque back (a spare slot may be reused); move leftovers to the injector.
    while let Some(task) = ctx.deque.pop() {
        shared.injector.push(task);
    }
    if let Some(task) = ctx.slot().take_runnext() {
        shared.injector.push(task);
    }
    let slot = &shared.slots[index];
    *slot.cpu_clock.lock().unwrap_or_else(|e| e.into_inner()) = None;
    *slot.deque.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.deque);
    slot.active.store(false, Ordering::Release);
    if !shared.injector.is_empty() {
        shared.notify_work();
    }
}

#[cfg(test)]
mod tests {
    use super::{next_spin_passes, MAX_SPIN_PASSES};

    #[test]
    fn spins_grow_while_they_find_work_and_shrink_while_they_do_not() {
        let mut passes = 1;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            passes = next_spin_passes(passes, true);
            lengths.push(passes);
        }
        assert_eq!(lengths, [2, 4, 8, 16, 16, 16]);
        assert_eq!(passes, MAX_SPIN_PASSES);
        lengths.clear();
        for _ in 0..6 {
            passes = next_spin_passes(passes, false);
            lengths.push(passes);
        }
        assert_eq!(lengths, [8, 4, 2, 1, 1, 1]);
    }
}
