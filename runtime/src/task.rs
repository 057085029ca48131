//! The coroutine control block and the one park-then-commit protocol.
//!
//! Every parking primitive (join, sleep, park, sockets, channels, locks) parks through
//! [`Parking`] and wakes through [`Waker`]; there is no second mechanism.
//!
//! # The protocol
//!
//! 1. The coroutine calls [`Parking::prepare`]: its state goes `RUNNING(e)` → `PARKING(e+1)`.
//!    From now on wakers for epoch `e+1` may exist.
//! 2. It publishes [`Waker`]s (in a socket's PollDesc, a timer, a channel's wait list) and
//!    re-checks its condition; if it no longer needs to wait it calls [`Parking::cancel`].
//! 3. It suspends ([`Parking::park`]). The coroutine is now off its stack.
//! 4. The worker *commits*: CAS `PARKING(e)` → `PARKED(e)`. If the CAS fails, a waker came in
//!    between steps 1 and 4 (`NOTIFIED(e)`): the worker sets `RUNNING(e)` and resumes the
//!    coroutine at once.
//! 5. A waker for epoch `e` moves `PARKED(e)` → `RUNNING(e)` and schedules the coroutine. It
//!    is the only party that can do so, so a coroutine is queued at most once per park.
//!
//! The rule that makes it sound (DESIGN.md section 3): **a coroutine never becomes runnable
//! while it still runs on its stack**. A waker may *see* it before step 4, but then it only
//! records the notification; only the worker, after the switch, turns that into a resume.
//!
//! # State table (one `AtomicU64`: epoch in the high 32 bits, state in the low 2)
//!
//! | from          | to            | by                         | when                         |
//! |---------------|---------------|----------------------------|------------------------------|
//! | `RUNNING(e)`  | `PARKING(e+1)`| the coroutine              | `prepare` (step 1)           |
//! | `PARKING(e)`  | `RUNNING(e)`  | the coroutine              | `cancel` (did not suspend)   |
//! | `NOTIFIED(e)` | `RUNNING(e)`  | the coroutine              | `cancel` after a wake        |
//! | `PARKING(e)`  | `NOTIFIED(e)` | a waker of epoch `e`       | wake before the commit       |
//! | `PARKING(e)`  | `PARKED(e)`   | the worker, off the stack  | commit (step 4)              |
//! | `NOTIFIED(e)` | `RUNNING(e)`  | the worker, off the stack  | commit failed: resume now    |
//! | `PARKED(e)`   | `RUNNING(e)`  | a waker of epoch `e`       | wake: it queues the task with the park's reference |
//! | `PARKED(e)`   | `CAPTURING(e)`| a dump                     | backtrace of a parked task   |
//! | `CAPTURING(e)`| `CAPTURE_NOTIFIED(e)` | a waker of epoch `e` | wake during the capture   |
//! | `CAPTURING(e)`| `PARKED(e)`   | the dump                   | capture done, no wake        |
//! | `CAPTURE_NOTIFIED(e)` | `RUNNING(e)` | the dump            | capture done: it queues the task, as a waker |
//! | `PARKED(e)`   | `RUNNING(e)`  | the shutdown               | workers stopped: drops the park's reference |
//!
//! A waker whose epoch differs from the current one, or that finds `RUNNING` or `NOTIFIED`,
//! does nothing: it is stale (the coroutine was woken by another source, e.g. a timeout) or
//! redundant. This makes waits on several sources (a channel *and* a timer, `select!`) safe
//! without any per-wait allocation.
//!
//! Orderings: every transition is a CAS with `AcqRel` (or a `Release` store by the owner), so
//! what a waker wrote before waking (a channel value, a readiness flag) is visible to the
//! coroutine after it resumes: the waker's release pairs with the worker's acquire at commit
//! (NOTIFIED path) or with the run queue's push/pop (PARKED path).
//!
//! # The parked reference
//!
//! A worker holds a counted [`TaskRef`] to the task it runs. When the commit succeeds, that
//! reference is not dropped: it becomes the *park's* (given up with `TaskRef::into_raw`),
//! and whoever moves the task out of `PARKED` (a waker, the dump after a capture that saw a
//! wake, or the shutdown) takes it back and hands it to the run queue (or drops it). So a
//! park and its wake-up cost no reference-count change of their own, as in Go, where a
//! parked `g` is simply owned by whatever it waits on. A waker needs a count only while it
//! may outlive the park it wakes (a socket's, a timer's, a join's waker: counted
//! [`Waker`]s); a channel's waiter lives on the parked frame and wakes it under the
//! channel lock, uncounted ([`FrameWaker`]).
//!
//! Plain threads use the same API: `prepare` outside a coroutine makes a fresh
//! [`ThreadSignal`], and `park` blocks the thread until its waker fires.

use std::backtrace::Backtrace;
use std::cell::{Cell, UnsafeCell};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Instant;

use corosensei::{Coroutine as RawCoroutine, Yielder};

use crate::context;
use crate::dump::WaitReason;
use crate::join::JoinSlot;
use crate::local::Slots;
use crate::runtime::Shared;
use crate::stack::PooledStack;
use crate::task_ref::TaskRef;
use crate::timer::TimerAction;
use crate::unstarted::Unstarted;

const RUNNING: u64 = 0;
const PARKING: u64 = 1;
const NOTIFIED: u64 = 2;
const PARKED: u64 = 3;
/// A dump holds the run right to resume the parked coroutine for a backtrace.
const CAPTURING: u64 = 4;
/// A waker fired while the dump held the run right: the dump schedules the task after.
const CAPTURE_NOTIFIED: u64 = 5;
const STATE_MASK: u64 = 7;

#[inline]
fn pack(epoch: u32, state: u64) -> u64 {
    (u64::from(epoch) << 32) | state
}

#[inline]
fn epoch_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// What a coroutine asks of its worker when it suspends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Requeue me behind the other runnable coroutines.
    Yield,
    /// Commit my park (step 4 of the protocol).
    Park,
}

/// What a worker (or a dump) passes when it resumes a coroutine.
#[derive(Clone, Copy)]
pub(crate) enum Resume {
    /// Continue running.
    Run,
    /// A dump asks the parked coroutine to write its backtrace here and park again.
    Capture(*mut Option<Backtrace>),
}

/// The corosensei coroutine type every task runs.
pub(crate) type Coro = RawCoroutine<Resume, Suspend, (), PooledStack>;

/// A `Coro` that may move between worker threads.
pub(crate) struct SendCoro(pub(crate) Coro);

// SAFETY: `corosensei::Coroutine` is `!Send` because code on its stack may hold thread-affine
// state across a suspend (thread-local addresses, `!Send` values). The runtime upholds the
// first part itself: its coroutine-side code reads its one thread-local only through
// `context::worker`, never across a suspend (see context.rs, checked by tests/migration.rs).
// Spawned closures must be `Send + 'static`, so what a coroutine starts with may cross
// threads; what user code creates on the stack and holds across a park (a std `MutexGuard`,
// a `thread_local!` reference) is the documented user rule in docs/runtime.md. At any time
// at most one thread touches the coroutine: the worker that dequeued the task (queues hand
// over ownership with acquire/release), or the runtime's shutdown after all workers stopped.
unsafe impl Send for SendCoro {}

/// Where a task's coroutine is in its life.
pub(crate) enum CoroState {
    /// Spawned and not yet run: the body, without a stack (`unstarted.rs`).
    Unstarted(Unstarted),
    /// Run at least once: the coroutine on its stack.
    Started(SendCoro),
    /// Returned (its stack released), unwound at shutdown, or never started because no
    /// stack could be had.
    Finished,
}

/// The control block of one coroutine. Shared (through [`TaskRef`]s: a pool cell with a
/// reference count) by the run queues, wakers, its [`crate::Coroutine`] handles and its own
/// coroutine body, which keeps it alive until it returns.
pub(crate) struct Task {
    /// Epoch and park state, see the module table.
    state: AtomicU64,
    /// The coroutine itself: its body until the first run, then the running coroutine.
    /// Accessed only by the thread that holds the run right (a worker that dequeued the
    /// task) or by shutdown after the workers stopped.
    coro: UnsafeCell<CoroState>,
    /// The yielder on the coroutine's own stack, set when the body starts; only read by code
    /// running on this coroutine.
    yielder: Cell<*const Yielder<Resume, Suspend>>,
    /// The runtime the task belongs to.
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    /// `park()`/`unpark()` token (std semantics).
    park_token: AtomicBool,
    /// The epoch of an ongoing `park()` call, 0 when not in one.
    park_epoch: AtomicU64,
    /// Set while the runtime force-unwinds the coroutine at shutdown.
    pub(crate) unwinding: AtomicBool,
    /// Coroutine-local values, touched only by code running on this coroutine; boxed on
    /// first use, so that a coroutine without locals carries one word for them.
    pub(crate) locals: UnsafeCell<Option<Box<Slots>>>,
    /// What the coroutine waits on, a packed [`WaitReason`], written at park time.
    pub(crate) wait: AtomicU64,
    /// When it parked, in the runtime's coarse milliseconds (`Shared::coarse_now_ms`).
    pub(crate) parked_at: AtomicU64,
    /// Where it was spawned (`#[track_caller]`).
    pub(crate) spawned_at: &'static Location<'static>,
    /// Set when the body returned.
    pub(crate) finished: AtomicBool,
    /// The body's result, for its `JoinHandle`.
    pub(crate) join: JoinSlot,
}

// SAFETY: the `Cell`/`UnsafeCell` fields are only accessed by the thread that currently runs
// the coroutine (yielder, locals) or holds its run right (coro); the run
// right moves between threads through the run queues, whose push/pop are release/acquire.
unsafe impl Sync for Task {}
// SAFETY: as above; `SendCoro` is `Send` by its own argument, `locals` hold values created
// on this coroutine and only dropped by it (or by shutdown after every worker stopped).
unsafe impl Send for Task {}

impl Task {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u64,
        name: Option<Box<str>>,
        spawned_at: &'static Location<'static>,
    ) -> Task {
        Task {
            state: AtomicU64::new(pack(0, RUNNING)),
            coro: UnsafeCell::new(CoroState::Finished),
            yielder: Cell::new(std::ptr::null()),
            shared,
            id,
            name,
            park_token: AtomicBool::new(false),
            park_epoch: AtomicU64::new(0),
            unwinding: AtomicBool::new(false),
            locals: UnsafeCell::new(None),
            wait: AtomicU64::new(0),
            parked_at: AtomicU64::new(0),
            spawned_at,
            finished: AtomicBool::new(false),
            join: JoinSlot::new(),
        }
    }

    /// Installs the body before the task is first scheduled.
    ///
    /// # Safety
    /// The caller must hold the run right (the task is not yet queued anywhere).
    pub(crate) unsafe fn set_unstarted(&self, body: Unstarted) {
        // SAFETY: exclusive access is the caller's promise.
        unsafe { *self.coro.get() = CoroState::Unstarted(body) };
    }

    /// The coroutine, for the worker that runs it.
    ///
    /// # Safety
    /// The caller must hold the run right, and must not keep the reference past the time it
    /// hands the task to a queue or a waker.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn coro_mut(&self) -> &mut CoroState {
        // SAFETY: exclusive access is the caller's promise.
        unsafe { &mut *self.coro.get() }
    }

    pub(crate) fn set_yielder(&self, yielder: &Yielder<Resume, Suspend>) {
        self.yielder.set(yielder);
    }

    /// Suspends the running coroutine with `what` for its worker.
    ///
    /// Must be called by code running on this task's coroutine.
    ///
    /// Out of line, for waits that are not inlined into their callers: inlining the switch
    /// into such a wait (`select::wait`, a function of its own) made channel ping-pong 2-3 %
    /// slower (measured), because its frames still return mispredicted after the resume. A
    /// wait that is inlined all the way into user code switches in place instead
    /// (`Parking::park_in_caller`).
    #[inline(never)]
    pub(crate) fn suspend(&self, what: Suspend) {
        self.suspend_in_caller(what);
    }

    /// [`suspend`](Self::suspend), always inlined, so that the stack switch sits in the
    /// caller's own frame. For `yield_now`, which is inlined into user code in turn: a
    /// coroutine resumed there has no return to make before its next switch, and each return
    /// it made was mispredicted (the CPU's return-address predictor was filled on the
    /// worker's stack), as was the switch's own return to the worker unless it comes before
    /// any other call (docs/performance.md, "Returns after a switch").
    #[inline(always)]
    pub(crate) fn suspend_in_caller(&self, what: Suspend) {
        let yielder = self.yielder.get();
        assert!(
            !yielder.is_null(),
            "coronet: suspend outside the coroutine body"
        );
        // SAFETY: the yielder lives in the coroutine body's frame at the base of this
        // coroutine's stack, which stays in place until the body returns; we are running
        // on that coroutine (caller's contract), so the body has not returned.
        if let Resume::Capture(slot) = unsafe { (*yielder).suspend(what) } {
            self.capture_and_suspend(slot, what);
        }
    }

    /// The rare way out of [`suspend_in_caller`](Self::suspend_in_caller): a dump resumed us
    /// only to capture our backtrace into `slot`; do so and suspend again with `what`, as
    /// often as asked.
    #[cold]
    #[inline(never)]
    fn capture_and_suspend(&self, mut slot: *mut Option<Backtrace>, what: Suspend) {
        let yielder = self.yielder.get();
        loop {
            // SAFETY: the dump passes a pointer to a live slot on its own stack and waits for
            // us to suspend again before it reads it.
            unsafe { *slot = Some(Backtrace::force_capture()) };
            // SAFETY: as in `suspend`: our own coroutine's yielder, set (checked there).
            match unsafe { (*yielder).suspend(what) } {
                Resume::Run => return,
                Resume::Capture(next) => slot = next,
            }
        }
    }

    /// Resumes this *parked* coroutine on the calling thread just long enough to capture its
    /// backtrace, without waking it. Returns `None` if it is not parked (running, runnable or
    /// finished). A wake that arrives meanwhile is honoured afterwards.
    pub(crate) fn capture_backtrace(this: &TaskRef) -> Option<Backtrace> {
        let current = this.state.load(Ordering::Acquire);
        if current & STATE_MASK != PARKED {
            return None;
        }
        let epoch = epoch_of(current);
        this.state
            .compare_exchange(
                current,
                pack(epoch, CAPTURING),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()?;
        let mut slot: Option<Backtrace> = None;
        // SAFETY: moving PARKED -> CAPTURING gave us the run right: no waker can schedule the
        // task until we give it back below, and no worker holds it (it is parked).
        let coro = unsafe { this.coro_mut() };
        if let CoroState::Started(coro) = coro {
            // The coroutine answers inside `suspend` and suspends again with `Park`.
            let _ = coro.0.resume(Resume::Capture(&mut slot));
        }
        #[cfg(test)]
        capture_hook::run();
        if this
            .state
            .compare_exchange(
                pack(epoch, CAPTURING),
                pack(epoch, PARKED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // A waker fired during the capture (CAPTURE_NOTIFIED): we schedule it.
            this.state.store(pack(epoch, RUNNING), Ordering::Release);
            // SAFETY: the task was parked when we took it (PARKED -> CAPTURING), and we moved
            // it out of CAPTURE_NOTIFIED: its park's reference is ours; `as_ptr` is its cell's
            // pointer.
            Shared::schedule(unsafe { Task::take_parked_reference(TaskRef::as_ptr(this)) });
        }
        slot
    }

    /// Step 4, on the worker after the coroutine suspended with `Suspend::Park`, with the
    /// worker's reference. `None`: the task is parked, and that reference is now the park's
    /// (see "The parked reference" in the module docs). `Some`: a waker came first; resume
    /// the task at once.
    pub(crate) fn commit_park(this: TaskRef) -> Option<TaskRef> {
        let current = this.state.load(Ordering::Acquire);
        let epoch = epoch_of(current);
        match current & STATE_MASK {
            PARKING => {
                match this.state.compare_exchange(
                    current,
                    pack(epoch, PARKED),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // Taken back, once, by whoever moves the task out of PARKED.
                        let _ = TaskRef::into_raw(this);
                        None
                    }
                    Err(_) => {
                        // Only a waker can have moved it, to NOTIFIED.
                        this.state.store(pack(epoch, RUNNING), Ordering::Release);
                        Some(this)
                    }
                }
            }
            NOTIFIED => {
                this.state.store(pack(epoch, RUNNING), Ordering::Release);
                Some(this)
            }
            state => abort_invalid("commit_park", state),
        }
    }

    /// Wakes the task if it is in park epoch `epoch` (see the module table). Returns the
    /// parked reference if the task was parked: the caller now owns it and must schedule it.
    ///
    /// Needs no reference of its own: the caller keeps the task alive, by a counted waker or
    /// by the waiting frame it found under a lock ([`FrameWaker::wake_locked`]).
    ///
    /// # Safety
    /// `task` is a cell's task pointer (`TaskRef::as_ptr`, or the running coroutine's from
    /// `context::task_ptr`), and the task stays alive while this runs.
    #[inline]
    unsafe fn wake_in_place(task: *const Task, epoch: u32) -> Option<TaskRef> {
        // SAFETY: the caller's promise.
        let this = unsafe { &*task };
        let mut current = this.state.load(Ordering::Acquire);
        loop {
            if epoch_of(current) != epoch {
                return None;
            }
            let next = match current & STATE_MASK {
                PARKING => pack(epoch, NOTIFIED),
                PARKED => pack(epoch, RUNNING),
                CAPTURING => pack(epoch, CAPTURE_NOTIFIED),
                _ => return None,
            };
            match this.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if current & STATE_MASK == PARKED => {
                    // SAFETY: the task was PARKED, so `commit_park` gave up a reference to it
                    // with `into_raw`; our CAS out of PARKED makes us its one taker; `task` is
                    // its cell's pointer (caller's promise).
                    return Some(unsafe { Task::take_parked_reference(task) });
                }
                Ok(_) => return None,
                Err(actual) => current = actual,
            }
        }
    }

    /// The reference a park holds (given up by `commit_park`).
    ///
    /// # Safety
    /// The caller moved the task out of `PARKED` (or `CAPTURE_NOTIFIED`, which a parked task
    /// enters), which makes it the one taker of that reference, and `task` is the task's cell
    /// pointer (`TaskRef::as_ptr`).
    #[inline]
    unsafe fn take_parked_reference(task: *const Task) -> TaskRef {
        // SAFETY: the caller's promise.
        unsafe { TaskRef::from_raw(task) }
    }

    /// Wakes the task if it is in park epoch `epoch`, with a waker's counted reference (which
    /// is dropped: the run queue gets the parked reference).
    fn wake_epoch(this: TaskRef, epoch: u32) {
        // SAFETY: `this` keeps the task alive; `as_ptr` is its cell's pointer.
        if let Some(parked) = unsafe { Task::wake_in_place(TaskRef::as_ptr(&this), epoch) } {
            Shared::schedule(parked);
        }
    }

    /// At shutdown, after the workers stopped: drops the reference of a parked task's park.
    pub(crate) fn release_park(this: &TaskRef) {
        // SAFETY: as in `wake_epoch`.
        drop(unsafe { Task::wake_in_place(TaskRef::as_ptr(this), this.current_epoch()) });
    }

    /// The epoch of the current (or last) park.
    fn current_epoch(&self) -> u32 {
        epoch_of(self.state.load(Ordering::Acquire))
    }

    /// Returns the `park()` token, `Coroutine::unpark` semantics.
    pub(crate) fn unpark(this: &TaskRef) {
        this.park_token.store(true, Ordering::SeqCst);
        let epoch = this.park_epoch.load(Ordering::SeqCst);
        if epoch != 0 {
            Task::wake_epoch(this.clone(), (epoch - 1) as u32);
        }
    }

    /// `park()` on the running coroutine `this` (its cell pointer, `context::task_ptr`):
    /// consume the token or wait for `unpark`, or for `deadline` if given.
    pub(crate) fn park_token(this: *const Task, deadline: Option<Instant>) {
        // SAFETY: `this` is the running coroutine's task, alive while its code runs.
        let task = unsafe { &*this };
        if task.park_token.swap(false, Ordering::SeqCst) {
            return;
        }
        let parking = Parking::prepare_task(this);
        // Publish our epoch for `unpark`; the SeqCst store and load pair with unpark's
        // SeqCst store of the token and load of the epoch (Dekker): one of us sees the other.
        task.park_epoch
            .store(u64::from(task.current_epoch()) + 1, Ordering::SeqCst);
        if task.park_token.swap(false, Ordering::SeqCst) {
            task.park_epoch.store(0, Ordering::SeqCst);
            parking.cancel();
            return;
        }
        match deadline {
            Some(deadline) => {
                parking.park_until(deadline);
            }
            None => parking.park(),
        }
        task.park_epoch.store(0, Ordering::SeqCst);
        task.park_token.store(false, Ordering::SeqCst);
    }
}

/// A coarse view of a task's state word, for dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Running or in a run queue.
    Active,
    /// Between `prepare` and the commit (still on its worker).
    Parking,
    /// Parked (also while a dump captures its backtrace).
    Parked,
}

impl Task {
    pub(crate) fn state(&self) -> TaskState {
        match self.state.load(Ordering::Acquire) & STATE_MASK {
            RUNNING => TaskState::Active,
            PARKING | NOTIFIED => TaskState::Parking,
            _ => TaskState::Parked,
        }
    }

    /// Whether the coroutine has returned (its coroutine was taken by its worker).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

#[cold]
fn abort_invalid(what: &str, state: u64) -> ! {
    eprintln!("coronet: fatal: invalid coroutine state {state} in {what}");
    std::process::abort()
}

/// A signal for a plain OS thread blocked in [`Parking::park`].
pub(crate) struct ThreadSignal {
    thread: Thread,
    notified: AtomicBool,
}

thread_local! {
    /// The calling plain thread's signal, kept for its next park. Only read on threads that
    /// are not running a coroutine (`Parking::prepare` on a thread), so the thread-local
    /// hazard of DESIGN.md section 6 does not apply.
    static THREAD_SIGNAL: Cell<Option<Arc<ThreadSignal>>> = const { Cell::new(None) };
}

impl ThreadSignal {
    /// A fresh signal for a park of the calling thread. The thread's previous signal is
    /// reused when nobody else holds it any more (every waker of its parks is gone), so a
    /// thread that blocks on a channel or a join again and again allocates once.
    fn for_current_thread() -> Arc<ThreadSignal> {
        // `try_with`: a destructor of another thread-local may park after ours is gone.
        THREAD_SIGNAL
            .try_with(|kept| {
                let signal = kept
                    .take()
                    .and_then(|mut signal| {
                        // Unique: no waker of an earlier park can fire into this one.
                        *Arc::get_mut(&mut signal)?.notified.get_mut() = false;
                        Some(signal)
                    })
                    .unwrap_or_else(ThreadSignal::new);
                kept.set(Some(signal.clone()));
                signal
            })
            .unwrap_or_else(|_| ThreadSignal::new())
    }

    fn new() -> Arc<ThreadSignal> {
        Arc::new(ThreadSignal {
            thread: thread::current(),
            notified: AtomicBool::new(false),
        })
    }

    fn notify(&self) {
        // Release pairs with the acquire load in `wait`.
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }
}

/// Wakes one park of one coroutine or thread. Cheap to clone (one reference-count
/// increment); waking a stale or already-woken park does nothing.
#[derive(Clone)]
pub struct Waker {
    kind: WakerKind,
}

#[derive(Clone)]
enum WakerKind {
    Coroutine { task: TaskRef, epoch: u32 },
    Thread(Arc<ThreadSignal>),
}

impl Waker {
    /// Wakes the parked coroutine or thread (at most once per park, whoever calls first).
    pub fn wake(self) {
        match self.kind {
            WakerKind::Coroutine { task, epoch } => Task::wake_epoch(task, epoch),
            WakerKind::Thread(signal) => signal.notify(),
        }
    }

    /// Like [`Waker::wake`] without consuming the waker.
    pub fn wake_by_ref(&self) {
        self.clone().wake()
    }

    /// Whether two wakers wake the same park.
    pub fn will_wake(&self, other: &Waker) -> bool {
        match (&self.kind, &other.kind) {
            (
                WakerKind::Coroutine { task: a, epoch: x },
                WakerKind::Coroutine { task: b, epoch: y },
            ) => TaskRef::ptr_eq(a, b) && x == y,
            (WakerKind::Thread(a), WakerKind::Thread(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Packs the waker into one word for an atomic slot (a PollDesc's reader or writer, a
    /// task's join slot). The word is the address of a heap allocation (aligned, with a tag
    /// in bit 0), never a small number: words below 8 are free for the slots' own states.
    pub(crate) fn into_raw(self) -> usize {
        match self.kind {
            // The epoch is not stored: a waker held in a single slot is that park's only
            // waker, so the task's current epoch is its epoch when the slot is taken.
            WakerKind::Coroutine { task, .. } => TaskRef::into_raw(task) as usize,
            WakerKind::Thread(signal) => Arc::into_raw(signal) as usize | 1,
        }
    }

    /// Rebuilds a waker packed by [`Waker::into_raw`].
    ///
    /// # Safety
    /// `raw` must come from `into_raw` and be taken out of its slot exactly once, while the
    /// park it was made for is still the task's current park (single-slot waits only).
    pub(crate) unsafe fn from_raw(raw: usize) -> Waker {
        if raw & 1 == 1 {
            // SAFETY: the tagged word is an `Arc<ThreadSignal>` leaked by `into_raw`.
            let signal = unsafe { Arc::from_raw((raw & !1) as *const ThreadSignal) };
            Waker {
                kind: WakerKind::Thread(signal),
            }
        } else {
            // SAFETY: the word is a `TaskRef` given up by `into_raw` (Task is 8-aligned, so
            // the low bit is free).
            let task = unsafe { TaskRef::from_raw(raw as *const Task) };
            let epoch = task.current_epoch();
            Waker {
                kind: WakerKind::Coroutine { task, epoch },
            }
        }
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            WakerKind::Coroutine { task, epoch } => f
                .debug_struct("Waker")
                .field("coroutine", &task.id)
                .field("epoch", epoch)
                .finish(),
            WakerKind::Thread(signal) => f
                .debug_struct("Waker")
                .field("thread", &signal.thread.id())
                .finish(),
        }
    }
}

/// The waker of one park, kept by a waiter that lives on the parked frame itself (a channel
/// wait's [`crate::chan::__private::Selector`]), without a reference count on the coroutine.
///
/// A waiter linked into a queue under a lock cannot outlive its coroutine: the owner unlinks
/// it (or sees it completed) under that lock before its frame ends. So whoever finds it
/// linked, under the lock, may wake the park on the spot ([`FrameWaker::wake_locked`]) and
/// needs no reference of its own: making, keeping and using a `FrameWaker` costs no
/// reference-count operation at all (a [`Parking::waker`] costs an increment when it is made
/// and a decrement when it is used or dropped).
pub(crate) struct FrameWaker {
    /// The park's own kind, copied from its `Parking`.
    kind: ParkingKind,
}

// SAFETY: a counterpart on another thread reads a `FrameWaker` by reference, only through
// `wake_locked`: it CASes a live task's state (`Task` is `Send + Sync`) or clones an
// `Arc<ThreadSignal>`, both thread-safe. The borrowed task pointer is what makes it `!Sync`
// by default.
unsafe impl Sync for FrameWaker {}

impl FrameWaker {
    /// Wakes the park now, while the caller still holds its lock, and returns what is left
    /// to do once the lock is released: queue the coroutine (if it had parked) or notify the
    /// thread.
    ///
    /// Waking under the lock is what lets this go without a reference count: the frame
    /// cannot end before the caller lets go of its waiter, so the task is alive for the state
    /// change; after it, a coroutine that was parked is kept by its park's reference, which
    /// the returned [`Wakeup`] carries to the run queue.
    ///
    /// # Safety
    /// The frame that holds this `FrameWaker` must still be waiting: the caller found its
    /// waiter linked under the lock that the owner takes to unlink it, holds that lock, and
    /// has not yet let the owner see the waiter completed.
    #[inline]
    pub(crate) unsafe fn wake_locked(&self) -> Wakeup {
        match &self.kind {
            ParkingKind::Coroutine { task, epoch } => {
                // SAFETY: the frame still waits (caller's promise), so its coroutine has not
                // returned and its task is alive; `task.0` is the cell pointer that
                // `Parking::prepare` took from `context::task_ptr`.
                match unsafe { Task::wake_in_place(task.0, *epoch) } {
                    Some(parked) => Wakeup::Schedule(parked),
                    None => Wakeup::Done,
                }
            }
            ParkingKind::Thread(signal) => Wakeup::Notify(signal.clone()),
        }
    }
}

/// The rest of a wake-up begun under a lock ([`FrameWaker::wake_locked`]), delivered after
/// the lock is released so that no lock is held across a run-queue push or a thread wake-up.
#[must_use = "a wake-up must be delivered"]
pub(crate) enum Wakeup {
    /// The coroutine was parked and is now runnable: queue it (with its park's reference).
    Schedule(TaskRef),
    /// A plain thread waits: notify it.
    Notify(Arc<ThreadSignal>),
    /// Nothing left: the coroutine had not suspended yet (it resumes when it does), or the
    /// park was already woken.
    Done,
}

impl Wakeup {
    /// Finishes the wake-up.
    #[inline]
    pub(crate) fn deliver(self) {
        match self {
            Wakeup::Schedule(task) => Shared::schedule(task),
            Wakeup::Notify(signal) => signal.notify(),
            Wakeup::Done => {}
        }
    }
}

/// One park of the current coroutine (or plain thread), steps 1 to 3 of the protocol.
///
/// ```text
/// let parking = Parking::prepare();
/// queue.push(parking.waker());      // publish
/// if condition_already_met { parking.cancel() } else { parking.park() }
/// ```
///
/// A `Parking` belongs to the coroutine (or thread) that prepared it: it is neither `Send`
/// nor `Sync`. It holds no reference count on the coroutine (the running coroutine's task is
/// alive while its code runs, and a parked one is kept by its own body), so preparing
/// and dropping it costs no atomic read-modify-write; each [`Parking::waker`] takes one.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(coronet_runtime::Parking::prepare()); // a park cannot move to another thread
/// ```
#[must_use = "a prepared park must be parked or cancelled"]
pub struct Parking {
    kind: ParkingKind,
    reason: WaitReason,
}

enum ParkingKind {
    Coroutine { task: BorrowedTask, epoch: u32 },
    Thread(Arc<ThreadSignal>),
}

impl ParkingKind {
    /// A counted waker for this park.
    #[inline]
    fn waker(&self) -> Waker {
        let kind = match self {
            ParkingKind::Coroutine { task, epoch } => WakerKind::Coroutine {
                // SAFETY: `task.0` is the running coroutine's cell pointer (`prepare`), alive
                // while its `Parking` exists (`BorrowedTask::get`).
                task: unsafe { TaskRef::from_task(task.0) },
                epoch: *epoch,
            },
            ParkingKind::Thread(signal) => WakerKind::Thread(signal.clone()),
        };
        Waker { kind }
    }
}

/// The running coroutine's task, borrowed without a reference count by its `Parking`
/// (which is neither `Send` nor `Sync`) and by a [`FrameWaker`] on the same frame.
struct BorrowedTask(*const Task);

impl BorrowedTask {
    /// The pointer stays valid while the coroutine that made it has not returned: it was
    /// made by `Parking::prepare` on the running coroutine, and is used by that coroutine's
    /// code (through its `Parking`) or, under a lock, for a waiter still linked on its frame
    /// (`FrameWaker::wake_locked`). The worker running the coroutine holds a reference, and a
    /// parked task is kept by its park's reference and by its coroutine body's own reference
    /// until the body returned or was unwound (on itself).
    fn get(&self) -> &Task {
        // SAFETY: the task outlives the coroutine's frames that hold this pointer (above).
        unsafe { &*self.0 }
    }
}

impl Parking {
    /// Step 1: announces that the current coroutine (or thread) is about to park.
    #[inline]
    pub fn prepare() -> Parking {
        match context::task_ptr() {
            Some(task) => Parking::prepare_task(task),
            None => Parking {
                kind: ParkingKind::Thread(ThreadSignal::for_current_thread()),
                reason: WaitReason::Park,
            },
        }
    }

    /// Step 1 for the running coroutine `this`, given as its cell pointer
    /// (`context::task_ptr`), which wakers turn back into counted references.
    #[inline]
    fn prepare_task(this: *const Task) -> Parking {
        // SAFETY: `this` is the running coroutine's task, alive while its code runs.
        let task = unsafe { &*this };
        let current = task.state.load(Ordering::Relaxed);
        debug_assert_eq!(current & STATE_MASK, RUNNING, "coronet: double park");
        let epoch = epoch_of(current).wrapping_add(1);
        // Release: wakers that read this epoch (from a waker we publish afterwards) see it.
        task.state.store(pack(epoch, PARKING), Ordering::Release);
        Parking {
            kind: ParkingKind::Coroutine {
                task: BorrowedTask(this),
                epoch,
            },
            reason: WaitReason::Park,
        }
    }

    /// Says what this park waits on, for [`crate::runtime::dump`] (default: a plain park).
    #[inline]
    pub fn reason(mut self, reason: WaitReason) -> Parking {
        self.reason = reason;
        self
    }

    /// A waker for this park (step 2: publish it where the event will find it).
    pub fn waker(&self) -> Waker {
        self.kind.waker()
    }

    /// An uncounted waker for this park, for a waiter on the parking frame (see
    /// [`FrameWaker`]).
    #[inline]
    pub(crate) fn frame_waker(&self) -> FrameWaker {
        let kind = match &self.kind {
            ParkingKind::Coroutine { task, epoch } => ParkingKind::Coroutine {
                task: BorrowedTask(task.0),
                epoch: *epoch,
            },
            ParkingKind::Thread(signal) => ParkingKind::Thread(signal.clone()),
        };
        FrameWaker { kind }
    }

    /// Whether this park runs on a coroutine (false: a plain thread).
    pub fn is_coroutine(&self) -> bool {
        matches!(self.kind, ParkingKind::Coroutine { .. })
    }

    /// Gives up the park (the condition was met after publishing). Wakers already published
    /// become stale and do nothing.
    #[inline]
    pub fn cancel(self) {
        if let ParkingKind::Coroutine { task, epoch } = &self.kind {
            task.get()
                .state
                .store(pack(*epoch, RUNNING), Ordering::Release);
        }
    }

    /// Step 3: blocks until a waker of this park fires.
    #[inline]
    pub fn park(self) {
        self.park_switching::<false>();
    }

    /// [`Parking::park`] with the stack switch in the caller's frame
    /// ([`Task::suspend_in_caller`]), for a wait that is itself inlined into user code
    /// (`chan::select::wait_one`, which says why).
    #[inline(always)]
    pub(crate) fn park_in_caller(self) {
        self.park_switching::<true>();
    }

    /// Step 3, switching through [`Task::suspend`] or, if `IN_CALLER`,
    /// [`Task::suspend_in_caller`].
    #[inline(always)]
    fn park_switching<const IN_CALLER: bool>(self) {
        match &self.kind {
            ParkingKind::Coroutine { task, .. } => {
                let task = task.get();
                // The whole cost of the dump's bookkeeping: two stores per park.
                task.wait.store(self.reason.pack(), Ordering::Relaxed);
                task.parked_at
                    .store(task.shared.coarse_now_ms(), Ordering::Relaxed);
                if IN_CALLER {
                    task.suspend_in_caller(Suspend::Park);
                } else {
                    task.suspend(Suspend::Park);
                }
            }
            ParkingKind::Thread(signal) => {
                while !signal.is_notified() {
                    thread::park();
                }
            }
        }
    }

    /// Like [`Parking::park`] but also wakes at `deadline`. Returns true if a waker fired
    /// before the deadline (the timeout may still win a race: callers re-check their
    /// condition either way).
    pub fn park_until(mut self, deadline: Instant) -> bool {
        let shared = match &self.kind {
            ParkingKind::Coroutine { task, .. } => task.get().shared.clone(),
            ParkingKind::Thread(signal) => {
                let signal = signal.clone();
                while !signal.is_notified() {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    thread::park_timeout(deadline - now);
                }
                return true;
            }
        };
        if self.reason == WaitReason::Park {
            self.reason = WaitReason::Sleep {
                until_ms: shared.ms_since_epoch(deadline),
            };
        }
        let key = shared.arm_timer(deadline, TimerAction::Wake(self.waker()));
        self.park();
        // If the timer is still pending, something else woke us.
        shared.cancel_timer(key)
    }
}

/// A test's way into the middle of a capture: a closure the dump's thread runs after it
/// captured a backtrace and before it gives the run right back, so that a wake-up can be made
/// to arrive during a capture (the `CAPTURE_NOTIFIED` row of the module table).
#[cfg(test)]
pub(crate) mod capture_hook {
    use std::cell::RefCell;

    thread_local! {
        static AFTER_CAPTURE: RefCell<Option<Box<dyn FnMut()>>> = RefCell::new(None);
    }

    /// Runs `hook` after every capture that the calling thread makes, until `clear`.
    pub(crate) fn set(hook: impl FnMut() + 'static) {
        AFTER_CAPTURE.with(|slot| *slot.borrow_mut() = Some(Box::new(hook)));
    }

    pub(crate) fn clear() {
        AFTER_CAPTURE.with(|slot| *slot.borrow_mut() = None);
    }

    pub(super) fn run() {
        AFTER_CAPTURE.with(|slot| {
            if let Some(hook) = slot.borrow_mut().as_mut() {
                hook();
            }
        });
    }
}
