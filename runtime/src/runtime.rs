//! A runtime: its shared state, its threads, spawning, scheduling and shutdown.
//!
//! One [`Runtime`] owns N worker threads (worker.rs; an idle one polls the OS, poll.rs), one
//! monitor thread (monitor.rs), optionally a dedicated poll thread, and an elastic blocking
//! pool (blocking.rs). Everything they share is in
//! `Shared`, reached through an `Arc` that every task holds, never through a global: the
//! only process-wide entry point is the lazily started default runtime.

use std::io;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use coronet_poller::Poller;
use crossbeam_deque::Injector;
use once_cell::sync::OnceCell;

use crate::blocking::BlockingPool;
use crate::context;
use crate::coroutine::JoinHandle;
use crate::idle::Idle;
use crate::io::IoRegistry;
use crate::stack;
use crate::stats::Stats;
use crate::task::{CoroState, Resume, Suspend, Task};
use crate::task_ref::TaskRef;
use crate::timer::{TimerAction, TimerKey, Timers};
use crate::unstarted::{CoroutineBody, Unstarted};
use crate::worker::{bump, worker_main, WorkerSlot};

/// How many spare worker slots the monitor may start beyond the configured workers.
const MAX_SPARE_WORKERS: usize = 64;

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// Configuration fixed at build time.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) stack_size: usize,
    pub(crate) name: String,
    /// Print a dump to stderr on SIGQUIT.
    pub(crate) dump_signal: bool,
    /// Print a schedtrace line to stderr at this interval.
    pub(crate) schedtrace: Option<Duration>,
    /// A dedicated thread polls instead of idle workers (poll.rs).
    pub(crate) poll_thread: bool,
}

/// State shared by every thread and task of one runtime.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) injector: Injector<TaskRef>,
    pub(crate) slots: Box<[WorkerSlot]>,
    pub(crate) idle: Idle,
    pub(crate) poller: Poller,
    timers: Mutex<Timers>,
    /// When the blocking poller will wake by itself: nanoseconds since `epoch`, `u64::MAX` for
    /// never, 0 while it is awake. Written under the `timers` lock (see `arm_timer`).
    poll_wakes_at: AtomicU64,
    /// The poll token: held by the one thread blocked in (or about to call, or just back
    /// from) `Poller::poll`. The dedicated poll thread holds it for good (poll.rs).
    poll_token: AtomicBool,
    /// Coarse milliseconds (`coarse_now_ms`) of the last return from `Poller::poll`.
    last_poll_ms: AtomicU64,
    pub(crate) epoch: Instant,
    pub(crate) io: IoRegistry,
    pub(crate) blocking: BlockingPool,
    shutdown: AtomicBool,
    /// Spawns from outside any worker of this runtime.
    pub(crate) foreign_spawns: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) handoffs: AtomicU64,
    /// Monitor ticks during which a worker was busy in one coroutine (summed over workers).
    pub(crate) long_runners: AtomicU64,
    pub(crate) spare_running: AtomicUsize,
    /// Slots that ever had a worker thread: `slots[..slots_started]` (the configured workers,
    /// and spare slots up to the highest one the monitor ever started). Only those can hold
    /// queued work, so the searches of idle workers stop there instead of visiting all
    /// `MAX_SPARE_WORKERS` spare slots, each with a SeqCst fence in `Stealer::is_empty`.
    slots_started: AtomicUsize,
    /// Workers that the monitor found stuck in one coroutine.
    pub(crate) stuck_workers: AtomicUsize,
    /// Milliseconds since `epoch`, advanced by the monitor every tick (park timestamps).
    coarse_ms: AtomicU64,
}

impl Shared {
    /// The coarse clock: milliseconds since the runtime started, to the monitor's tick.
    pub(crate) fn coarse_now_ms(&self) -> u64 {
        self.coarse_ms.load(Ordering::Relaxed)
    }

    /// Advances the coarse clock (monitor).
    pub(crate) fn tick_coarse_clock(&self) {
        self.coarse_ms
            .store(self.ms_since_epoch(Instant::now()), Ordering::Relaxed);
    }

    /// `at` in milliseconds since the runtime started.
    pub(crate) fn ms_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Active worker threads (configured plus running spares).
    pub(crate) fn active_workers(&self) -> usize {
        self.config.workers + self.spare_running.load(Ordering::Relaxed)
    }

    /// The slots that ever had a worker thread (see `slots_started`).
    pub(crate) fn started_slots(&self) -> &[WorkerSlot] {
        // SeqCst: a sleeper's final look (`any_work_visible`, after its SeqCst registration)
        // must not miss a spare slot started before the spare's first wake-up check.
        &self.slots[..self.slots_started.load(Ordering::SeqCst)]
    }

    /// Counts spare slot `index` as started, before its thread runs.
    pub(crate) fn note_slot_started(&self, index: usize) {
        self.slots_started.fetch_max(index + 1, Ordering::SeqCst);
    }

    /// A spare worker may retire once no worker is stuck.
    pub(crate) fn may_retire_spare(&self) -> bool {
        self.stuck_workers.load(Ordering::Relaxed) == 0
    }

    /// Wakes a sleeping worker if work was published and nobody spins (idle.rs step 1).
    pub(crate) fn notify_work(&self) {
        if let Some(index) = self.idle.notify_work() {
            self.unpark_worker(index);
        }
    }

    /// Wakes worker `index` wherever it sleeps: on its parker, or blocked in the poller
    /// (poll.rs, "Waking the poller": the token is set before `in_poll` is read, and the
    /// worker sets `in_poll` before it reads the token, both with SeqCst fences between).
    pub(crate) fn unpark_worker(&self, index: usize) {
        let slot = &self.slots[index];
        slot.parker.unpark();
        fence(Ordering::SeqCst);
        if slot.in_poll.load(Ordering::SeqCst) {
            // A failed wake leaves the worker asleep until the next event or timer; the
            // eventfd/pipe write cannot fail while the poller lives.
            let _ = self.poller.wake();
        }
    }

    /// Whether idle workers poll (no dedicated poll thread).
    pub(crate) fn workers_poll(&self) -> bool {
        !self.config.poll_thread
    }

    /// Takes the poll token if nobody holds it.
    pub(crate) fn try_take_poll_token(&self) -> bool {
        !self.poll_token.load(Ordering::Relaxed)
            && self
                .poll_token
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives the poll token back.
    pub(crate) fn release_poll_token(&self) {
        self.poll_token.store(false, Ordering::Release);
    }

    /// Records a return from `Poller::poll` (for the monitor's fallback poll).
    pub(crate) fn note_poll(&self) {
        self.last_poll_ms
            .store(self.coarse_now_ms(), Ordering::Relaxed);
    }

    /// Coarse milliseconds since the last poll returned.
    pub(crate) fn ms_since_last_poll(&self) -> u64 {
        self.coarse_now_ms()
            .saturating_sub(self.last_poll_ms.load(Ordering::Relaxed))
    }

    /// Makes a woken task runnable: on the current worker's runnext when called from a
    /// worker of this runtime, else through the injector.
    pub(crate) fn schedule(task: TaskRef) {
        if let Some(worker) = context::worker() {
            if Arc::ptr_eq(&worker.shared, &task.shared) {
                worker.push_next(task);
                return;
            }
        }
        // Not one of its workers: the poll thread, the monitor's fallback poll, or a plain
        // thread. The queue gets its own reference, and ours keeps the task (and with it the
        // runtime) alive until the wake-up is done, as it may be run and dropped before that.
        // (A clone of the runtime's `Arc` would do the same with a count every thread shares.)
        let shared = &task.shared;
        if shared.is_shutdown() {
            // Nobody will run it; shutdown finds it (`live_tasks`) and unwinds it.
            return;
        }
        shared.injector.push(task.clone());
        shared.notify_work();
    }

    /// Arms a timer; breaks the blocking poll if it would sleep past `deadline`.
    pub(crate) fn arm_timer(&self, deadline: Instant, action: TimerAction) -> TimerKey {
        let (key, wakes_at) = {
            let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
            let key = timers.insert(deadline, action);
            (key, self.poll_wakes_at.load(Ordering::Relaxed))
        };
        if wakes_at != 0 && self.nanos_since_epoch(deadline) < wakes_at {
            // A failed wake only delays a timer until the next event; nothing to report.
            let _ = self.poller.wake();
        }
        key
    }

    /// Cancels a timer; true if it had not fired.
    pub(crate) fn cancel_timer(&self, key: TimerKey) -> bool {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel(key)
    }

    pub(crate) fn pending_timers(&self) -> usize {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending()
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    /// For the blocking poller: the time until the next timer, recording when it will wake.
    pub(crate) fn poll_timeout(&self) -> Option<Duration> {
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        match timers.next_deadline() {
            Some(deadline) => {
                self.poll_wakes_at
                    .store(self.nanos_since_epoch(deadline), Ordering::Relaxed);
                Some(deadline.saturating_duration_since(Instant::now()))
            }
            None => {
                self.poll_wakes_at.store(u64::MAX, Ordering::Relaxed);
                None
            }
        }
    }

    /// For the blocking poller: it is awake again (arming a timer need not wake it).
    pub(crate) fn poll_awake(&self) {
        self.poll_wakes_at.store(0, Ordering::Relaxed);
    }

    /// For the poller: moves the actions of due timers into `out`.
    pub(crate) fn expire_timers(&self, out: &mut Vec<TimerAction>) {
        let now = Instant::now();
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now, out);
    }

    /// Spawns `f` as a new coroutine of this runtime.
    pub(crate) fn spawn<F, T>(
        self: &Arc<Self>,
        f: F,
        name: Option<String>,
        stack_size: Option<usize>,
        spawned_at: &'static Location<'static>,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_shutdown() {
            return Err(io::Error::other("coronet: the runtime is shut down"));
        }
        // A size no stack can have is the spawner's error, found now, not at the first run.
        let size = stack::class_size(stack_size.unwrap_or(self.config.stack_size))?;
        let worker = context::worker().filter(|w| Arc::ptr_eq(&w.shared, self));
        let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
        let [task, own, joined] = TaskRef::new(Task::new(
            self.clone(),
            id,
            name.map(String::into_boxed_str),
            spawned_at,
        ))?;
        let body = TaskBody {
            f,
            unreported: Unreported {
                task: TaskRef::as_ptr(&task),
                result: PhantomData,
            },
            own,
        };
        // The stack comes at the first run, from the cache of the worker that runs it
        // (unstarted.rs says why).
        // SAFETY: the task is not queued or shared with any other thread yet.
        unsafe { task.set_unstarted(Unstarted::new(body, size)) };
        let handle = JoinHandle::new(joined);
        match worker {
            Some(worker) => {
                let counter = &worker.slot().counters.spawned;
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                worker.push_next(task);
            }
            None => {
                self.foreign_spawns.fetch_add(1, Ordering::Relaxed);
                self.injector.push(task);
                self.notify_work();
            }
        }
        Ok(handle)
    }

    /// This runtime's tasks that are alive (finished ones included while something still
    /// holds them), found by scanning the pool of control blocks (`task_ref::live_tasks`).
    pub(crate) fn live_tasks(self: &Arc<Self>) -> Vec<TaskRef> {
        let mut tasks = crate::task_ref::live_tasks();
        tasks.retain(|task| Arc::ptr_eq(&task.shared, self));
        tasks
    }

    /// Coroutines waiting in run queues now.
    pub(crate) fn runnable(&self) -> usize {
        self.injector.len()
            + self
                .slots
                .iter()
                .map(|slot| slot.stealer.len() + usize::from(slot.has_runnext()))
                .sum::<usize>()
    }

    /// One line of Go-style schedtrace.
    pub(crate) fn schedtrace_line(&self) -> String {
        let stats = self.stats();
        let runnable = self.runnable() as u64;
        let running = self.slots.iter().filter(|s| s.running_id() != 0).count() as u64;
        let parked = stats.alive.saturating_sub(runnable + running);
        format!(
            "coronet {}: schedtrace {}ms: workers={} idle={} spinning={} running={} runnable={} parked={} alive={} spawned={} steals={} polls={} timers={} blocking={} handoffs={}",
            self.config.name,
            self.coarse_now_ms(),
            stats.workers,
            stats.idle_workers,
            stats.spinning_workers,
            running,
            runnable,
            parked,
            stats.alive,
            stats.spawned,
            stats.steals,
            stats.polls,
            stats.timers,
            stats.blocking_threads,
            stats.handoffs,
        )
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats {
            workers: self.active_workers(),
            timers: self.pending_timers(),
            polls: self.polls.load(Ordering::Relaxed),
            handoffs: self.handoffs.load(Ordering::Relaxed),
            long_runner_ticks: self.long_runners.load(Ordering::Relaxed),
            blocking_threads: self.blocking.threads(),
            spawned: self.foreign_spawns.load(Ordering::Relaxed),
            stacks_mapped: stack::stacks_allocated(),
            registered_fds: self.io.registered(),
            ..Stats::default()
        };
        let mut completed = 0;
        for slot in self.slots.iter() {
            let c = &slot.counters;
            stats.switches += c.switches.load(Ordering::Relaxed);
            stats.steals += c.steals.load(Ordering::Relaxed);
            stats.parks += c.parks.load(Ordering::Relaxed);
            stats.spawned += c.spawned.load(Ordering::Relaxed);
            completed += c.completed.load(Ordering::Relaxed);
        }
        // Exact once a join returned: the completion counter is bumped before the result is
        // published. (Coroutines unwound at shutdown are never counted as completed.)
        stats.alive = stats.spawned.saturating_sub(completed);
        stats.completed = completed;
        stats.idle_workers = self.idle.sleeping();
        stats.spinning_workers = self.idle.spinning();
        stats
    }
}

/// The panic payload `JoinHandle::join` returns for a coroutine that the runtime's shutdown
/// unwound before it finished.
const SHUT_DOWN_BEFORE_FINISHING: &str =
    "coronet: the runtime was shut down before the coroutine finished";

/// The closure a task runs, with what it needs to report its result.
struct TaskBody<F, T> {
    f: F,
    /// Completes the join slot if the body never does (`f` returns a `T`); holds the body's
    /// pointer to its task.
    unreported: Unreported<T>,
    /// The coroutine's own reference to its task: a coroutine keeps its control block alive
    /// until it returns or is unwound, whoever else lets go (a parked coroutine that nobody
    /// will wake, a detached one). Shutdown finds such tasks through `live_tasks`. Never
    /// the last reference: the worker resuming the coroutine (or the shutdown unwinding
    /// it) holds one too.
    own: TaskRef,
}

// SAFETY: `f` is `Send` by the `spawn` bounds (and `T`, which the body sends to the joiner
// through the task); `unreported.task` points to the task that owns this body's coroutine,
// which outlives the body (`own` holds it until the coroutine returns or is unwound) and is
// `Sync`.
unsafe impl<F: Send, T: Send> Send for TaskBody<F, T> {}

impl<F, T> CoroutineBody for TaskBody<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self, yielder: &corosensei::Yielder<Resume, Suspend>) {
        // `own` first, so that it drops last: `unreported` reports through the task as it
        // drops (on the unwinding path).
        let own = self.own;
        let unreported = self.unreported;
        let task: &Task = &own;
        task.set_yielder(yielder);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(self.f));
        crate::local::drop_locals(task);
        if task.unwinding.load(Ordering::Acquire) {
            // Forced unwind at shutdown, on the thread dropping the runtime: `unreported`
            // reports it as it drops (the unwind's own payload is corosensei's).
            return;
        }
        // The worker still holds the task until the body returns.
        unreported.report(result);
    }

    /// On the worker that could not give the coroutine a stack: the coroutine ends without
    /// running, and its joiner gets the error, as it would get a panic's message; the error
    /// is printed too, as a panic's message would be.
    fn fail(self, error: io::Error) {
        let TaskBody { f, unreported, own } = self;
        let task: &Task = &own;
        let cause = error.to_string();
        let cause = cause.strip_prefix("coronet: ").unwrap_or(&cause);
        let message = format!(
            "coronet: coroutine {}{} could not start: {cause}",
            task.id,
            task.name
                .as_deref()
                .map(|name| format!(" '{name}'"))
                .unwrap_or_default()
        );
        eprintln!("{message}");
        // The closure's captures are dropped here, on the worker thread: a destructor
        // that panics must not unwind into the run loop.
        drop_without_unwinding(|| drop(f));
        unreported.report(Err(Box::new(message)));
    }
}

/// Runs `f`, which drops values after a coroutine's body returned (outside the body's own
/// `catch_unwind`), so that a destructor that panics does not unwind into the worker thread
/// and kill it. The panic hook has already reported the panic.
pub(crate) fn drop_without_unwinding(f: impl FnOnce()) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    drop(caught);
}

/// Part of a task's body that reports, when dropped, that the coroutine will not finish: the
/// runtime's shutdown unwound it, or dropped it before it first ran. A joiner on a plain
/// thread or on another runtime is still waiting then, and gets an error instead of waiting
/// forever (a joiner on this runtime is being unwound as well, or dropped its handle). A
/// body that finishes disarms it with `mem::forget` and completes with its result. (Were a
/// panic ever to escape the body's own `catch_unwind`, the joiner would learn that too.)
struct Unreported<T> {
    task: *const Task,
    result: PhantomData<fn() -> T>,
}

impl<T> Unreported<T> {
    /// The body's one completion, on its worker: accounts for the task before its joiner can
    /// observe `result` (so that stats read after `join` are exact), then disarms the report
    /// of the drop and publishes `result`.
    fn report(self, result: thread::Result<T>) {
        // SAFETY: the task outlives its coroutine's body, which owns this (see `TaskBody`).
        let task = unsafe { &*self.task };
        task.finished.store(true, Ordering::Release);
        if let Some(worker) = context::worker() {
            bump(&worker.slot().counters.completed);
        }
        std::mem::forget(self);
        // SAFETY: `self` is disarmed, so this is the body's one completion, with the `T` its
        // `JoinHandle` was made for.
        unsafe { task.join.complete::<T>(result) };
    }
}

impl<T> Drop for Unreported<T> {
    fn drop(&mut self) {
        // SAFETY: the task outlives its coroutine's body, which owns this (see `TaskBody`).
        let task = unsafe { &*self.task };
        let payload: Box<dyn std::any::Any + Send> = if task.unwinding.load(Ordering::Acquire) {
            Box::new(SHUT_DOWN_BEFORE_FINISHING)
        } else {
            Box::new("coronet: the coroutine ended without a result (a panic left its body)")
        };
        // SAFETY: the body never completed (it disarms this when it does), so this is the
        // one completion, with the `T` the task's `JoinHandle` was made for.
        unsafe { task.join.complete::<T>(Err(payload)) };
    }
}

/// A coronet runtime: worker threads (which also poll the OS when idle), a monitor and a
/// blocking pool.
///
/// Most programs use the default runtime through [`crate::run`] and [`crate::spawn`]; build
/// one explicitly to choose the worker count or stack size, or to shut it down.
///
/// ```
/// let rt = coronet_runtime::runtime::Builder::new().workers(2).build().unwrap();
/// let answer = rt.block_on(|| {
///     let child = coronet_runtime::spawn(|| 6 * 7);
///     child.join().unwrap()
/// });
/// assert_eq!(answer, 42);
/// // Dropping `rt` joins its threads and frees its stacks.
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.shared.config.name)
            .field("workers", &self.shared.config.workers)
            .finish()
    }
}

/// Builds a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    name: String,
    dump_signal: bool,
    schedtrace: Option<Duration>,
    poll_thread: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: one worker per available core, [`crate::DEFAULT_STACK_SIZE`] stacks; the
    /// signal dump on if `CORONET_DUMP_SIGNAL=1`, schedtrace every `MS` milliseconds if
    /// `CORONET_SCHEDTRACE=MS` (see `docs/debugging.md`).
    pub fn new() -> Builder {
        let env = |name: &str| std::env::var(name).ok();
        Builder {
            workers: None,
            stack_size: stack::DEFAULT_STACK_SIZE,
            name: "coronet".to_owned(),
            dump_signal: env("CORONET_DUMP_SIGNAL").is_some_and(|v| v == "1"),
            schedtrace: env("CORONET_SCHEDTRACE")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            poll_thread: env("CORONET_POLL_THREAD").is_some_and(|v| v == "1"),
        }
    }

    /// Polls the OS from a dedicated thread instead of from idle workers
    /// (`CORONET_POLL_THREAD=1` sets it too).
    ///
    /// By default a worker with nothing to run blocks in the poller itself and runs the
    /// coroutines its events wake on the same thread, as Go does; when every worker is busy,
    /// the monitor polls every 5 ms. A dedicated poll thread instead hands every woken
    /// coroutine to a worker: a thread switch per event batch, in exchange for events never
    /// waiting behind busy workers. docs/performance.md has both measured.
    pub fn poll_thread(mut self, enabled: bool) -> Builder {
        self.poll_thread = enabled;
        self
    }

    /// Prints a dump of every coroutine (with backtraces) to stderr when the process
    /// receives SIGQUIT, and keeps running (`CORONET_DUMP_SIGNAL=1` sets it too).
    pub fn dump_signal(mut self, enabled: bool) -> Builder {
        self.dump_signal = enabled;
        self
    }

    /// Prints one line of scheduler counters to stderr at every `interval`, like Go's
    /// `GODEBUG=schedtrace` (`CORONET_SCHEDTRACE=MS` sets it too).
    pub fn schedtrace(mut self, interval: Option<Duration>) -> Builder {
        self.schedtrace = interval;
        self
    }

    /// Number of worker threads (at least 1).
    pub fn workers(mut self, workers: usize) -> Builder {
        self.workers = Some(workers.max(1));
        self
    }

    /// Default usable stack size of coroutines spawned on this runtime, in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes.max(stack::MIN_STACK_SIZE);
        self
    }

    /// Prefix of the runtime's thread names.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// Starts the runtime's threads.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = self
            .workers
            .or_else(|| thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        stack::install_overflow_handler();
        if self.dump_signal {
            crate::sys::install_dump_signal();
        }
        let slots = (0..workers + MAX_SPARE_WORKERS)
            .map(|index| WorkerSlot::new(index >= workers))
            .collect();
        let shared = Arc::new(Shared {
            config: Config {
                workers,
                stack_size: self.stack_size,
                name: self.name,
                dump_signal: self.dump_signal,
                schedtrace: self.schedtrace,
                poll_thread: self.poll_thread,
            },
            injector: Injector::new(),
            slots,
            idle: Idle::new(workers + MAX_SPARE_WORKERS),
            poller: Poller::new()?,
            timers: Mutex::new(Timers::default()),
            poll_wakes_at: AtomicU64::new(0),
            poll_token: AtomicBool::new(self.poll_thread),
            last_poll_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            io: IoRegistry::new(),
            blocking: BlockingPool::new(),
            shutdown: AtomicBool::new(false),
            foreign_spawns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
            long_runners: AtomicU64::new(0),
            spare_running: AtomicUsize::new(0),
            slots_started: AtomicUsize::new(workers),
            stuck_workers: AtomicUsize::new(0),
            coarse_ms: AtomicU64::new(0),
        });
        let runtime = Runtime {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
        };
        for index in 0..workers {
            runtime.start_thread(format!("{}-worker-{index}", shared.config.name), {
                let shared = shared.clone();
                move || worker_main(shared, index)
            })?;
            shared.slots[index].active.store(true, Ordering::Release);
        }
        if shared.config.poll_thread {
            runtime.start_thread(format!("{}-poll", shared.config.name), {
                let shared = shared.clone();
                move || crate::poll::poll_thread_main(shared)
            })?;
        }
        runtime.start_thread(format!("{}-monitor", shared.config.name), {
            let shared = shared.clone();
            move || crate::monitor::monitor_main(shared)
        })?;
        Ok(runtime)
    }
}

impl Runtime {
    /// A runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    fn start_thread(&self, name: String, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name).spawn(body)?;
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Spawns a coroutine on this runtime. Panics if the runtime is shut down (use
    /// [`crate::coroutine::Builder::spawn_on`] to get the error); a coroutine whose stack
    /// cannot be mapped at its first run ends unrun, with an error for its joiner (see
    /// [`crate::coroutine::Builder::spawn`]).
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .spawn(f, None, None, Location::caller())
            .unwrap_or_else(|e| panic!("coronet: failed to spawn a coroutine: {e}"))
    }

    /// Runs `f` as a coroutine of this runtime and blocks the calling thread (or parks the
    /// calling coroutine) until it returns. A panic in `f` propagates.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Counters of this runtime.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Every live coroutine of this runtime ([`crate::runtime::dump`]).
    pub fn dump(&self) -> Vec<crate::runtime::CoroutineInfo> {
        crate::dump::collect(&self.shared, false)
    }

    /// Every live coroutine, with backtraces of the parked ones.
    pub fn dump_with_backtraces(&self) -> Vec<crate::runtime::CoroutineInfo> {
        crate::dump::collect(&self.shared, true)
    }

    /// Stops every thread, unwinds the coroutines still alive (their destructors run) and
    /// frees their stacks. Called by `Drop`.
    fn shutdown(&mut self) {
        let shared = &self.shared;
        shared.shutdown.store(true, Ordering::Release);
        for index in shared.idle.take_all_sleepers() {
            shared.unpark_worker(index);
        }
        for slot in shared.slots.iter() {
            slot.parker.unpark();
        }
        let _ = shared.poller.wake();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let current = thread::current().id();
        for handle in threads {
            if handle.thread().id() != current {
                let _ = handle.join();
            }
        }
        // Spares started by the monitor are joined by it (monitor_main) before it returns.
        // Blocking jobs may borrow from parked coroutines' stacks: wait for them first.
        shared.blocking.shutdown();
        // Drop queued references, then unwind every live coroutine.
        while let crossbeam_deque::Steal::Success(_) | crossbeam_deque::Steal::Retry =
            shared.injector.steal()
        {}
        for slot in shared.slots.iter() {
            drop(slot.drain());
        }
        for task in shared.live_tasks() {
            task.unwinding.store(true, Ordering::Release);
            Task::release_park(&task);
            // SAFETY: every worker thread has stopped, so nothing else holds the run right.
            let coro = std::mem::replace(unsafe { task.coro_mut() }, CoroState::Finished);
            match coro {
                CoroState::Started(mut coro) => {
                    coro.0.force_unwind();
                    stack::release(coro.0.into_stack());
                }
                // Dropped unrun: its `Unreported` tells a joiner that the runtime shut down.
                unstarted @ CoroState::Unstarted(_) => drop(unstarted),
                CoroState::Finished => {}
            }
        }
        let actions = self
            .shared
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        drop(actions);
        shared.io.clear_waiters();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let inside = context::worker().is_some_and(|w| Arc::ptr_eq(&w.shared, &self.shared));
        if inside {
            // Joining our own worker would deadlock: finish the shutdown on another thread.
            let mut runtime = Runtime {
                shared: self.shared.clone(),
                threads: Mutex::new(std::mem::take(
                    &mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()),
                )),
            };
            self.shared.shutdown.store(true, Ordering::Release);
            let _ = thread::Builder::new()
                .name("coronet-shutdown".into())
                .spawn(move || runtime.shutdown());
            return;
        }
        self.shutdown();
    }
}

static DEFAULT: OnceCell<Runtime> = OnceCell::new();

/// The default runtime, started on first use; it lives for the rest of the process.
pub(crate) fn default_shared() -> &'static Arc<Shared> {
    DEFAULT
        .get_or_init(|| {
            Builder::new()
                .name("coronet")
                .build()
                .unwrap_or_else(|e| panic!("coronet: cannot start the default runtime: {e}"))
        })
        .shared()
}

/// The runtime of the calling coroutine, or the default runtime on a plain thread.
pub(crate) fn current_shared() -> Arc<Shared> {
    match context::worker() {
        Some(worker) => worker.shared.clone(),
        None => default_shared().clone(),
    }
}

/// Counters of the calling coroutine's runtime (the default runtime on a plain thread).
///
/// ```
/// let before = coronet_runtime::runtime::stats().spawned;
/// coronet_runtime::spawn(|| ()).join().unwrap();
/// assert!(coronet_runtime::runtime::stats().spawned > before);
/// ```
pub fn stats() -> Stats {
    current_shared().stats()
}

pub use crate::dump::{
    dump, dump_with_backtraces, wait_until_parked, CoroutineInfo, CoroutineState, DumpDisplay,
    WaitKind, WaitReason,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_dropped_runtime_frees_every_control_block_and_its_shared_state() {
        // Every control block holds the runtime's shared state: if one leaked (a parked
        // coroutine's own reference not dropped when the shutdown unwinds it, a finished
        // one's never released), the shared state would outlive the runtime.
        let rt = Builder::new().workers(1).build().unwrap();
        let weak = Arc::downgrade(&rt.shared);
        let (parked_tx, parked_rx) = mpsc::channel();
        for _ in 0..10 {
            let parked_tx = parked_tx.clone();
            drop(rt.spawn(move || {
                parked_tx.send(()).unwrap();
                loop {
                    crate::park();
                }
            }));
        }
        for _ in 0..10 {
            parked_rx.recv().unwrap();
        }
        assert_eq!(rt.spawn(|| 7).join().unwrap(), 7);
        // Coroutines woken by coroutines, through a channel (the uncounted waker of a waiting
        // frame) and a join (a counted waker): each park's reference goes to the run queue.
        let (tx, rx) = crate::chan::bounded::<u32>(0);
        let receiver = rt.spawn(move || rx.recv().unwrap());
        let joiner = rt.spawn(move || receiver.join().unwrap());
        rt.spawn(move || tx.send(5).unwrap()).join().unwrap();
        assert_eq!(joiner.join().unwrap(), 5);
        let detached = rt.spawn(|| ());
        drop(detached);
        let sleeper = rt.spawn(|| crate::sleep(Duration::from_secs(3600)));
        drop(sleeper);
        drop(rt);
        assert!(
            weak.upgrade().is_none(),
            "something still holds the runtime's shared state after the drop"
        );
    }

    #[test]
    fn a_wake_during_a_backtrace_capture_is_delivered_once_with_the_parks_reference() {
        // A parked coroutine holds its park's reference; a dump that captures its backtrace
        // and finds a wake-up arrived meanwhile (CAPTURE_NOTIFIED) must queue it with that
        // reference: queueing a new one would leak a count (the shared state would outlive
        // the runtime), taking it twice would free the control block under the coroutine.
        let rt = Builder::new().workers(1).build().unwrap();
        let weak = Arc::downgrade(&rt.shared);
        let (current_tx, current_rx) = mpsc::channel();
        let parked = rt.spawn(move || {
            current_tx.send(crate::current()).unwrap();
            crate::park();
            42
        });
        let coroutine = current_rx.recv().unwrap();
        assert!(crate::runtime::wait_until_parked(
            &coroutine,
            crate::runtime::WaitKind::Park,
            Duration::from_secs(60)
        ));
        let woken = Arc::new(AtomicUsize::new(0));
        crate::task::capture_hook::set({
            let woken = woken.clone();
            move || {
                coroutine.unpark();
                woken.fetch_add(1, Ordering::SeqCst);
            }
        });
        let dump = rt.dump_with_backtraces();
        crate::task::capture_hook::clear();
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "one capture, one wake-up during it"
        );
        assert!(
            dump.iter()
                .any(|info| info.id == parked.coroutine().id() && info.backtrace.is_some()),
            "the dump captured the parked coroutine"
        );
        assert_eq!(parked.join().unwrap(), 42);
        drop(rt);
        assert!(
            weak.upgrade().is_none(),
            "a reference leaked on the capture's wake-up path"
        );
    }
}
