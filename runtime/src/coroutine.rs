//! The user-facing coroutine API: spawning, joining, and the free functions a coroutine
//! calls on itself (`yield_now`, `sleep`, `park`), mirroring `std::thread`.
//!
//! Each free function acts on the calling coroutine's own runtime; called from a plain
//! thread it behaves like its `std::thread` counterpart (and `spawn` starts the default
//! runtime lazily).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::panic::Location;
use std::thread;
use std::time::{Duration, Instant};

use crate::context;
use crate::runtime::{current_shared, Runtime};
use crate::task::{Parking, Suspend, Task};
use crate::task_ref::TaskRef;

/// A handle to a coroutine, as [`std::thread::Thread`] is to a thread.
#[derive(Clone)]
pub struct Coroutine {
    task: TaskRef,
}

impl Coroutine {
    pub(crate) fn from_task(task: TaskRef) -> Coroutine {
        Coroutine { task }
    }

    pub(crate) fn task(&self) -> &TaskRef {
        &self.task
    }

    /// The coroutine's unique id (never 0, never reused within the process).
    pub fn id(&self) -> CoroutineId {
        CoroutineId(NonZeroU64::new(self.task.id).expect("coroutine ids start at 1"))
    }

    /// The name given with [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.task.name.as_deref()
    }

    /// Makes the coroutine's park token available, waking it if it is blocked in
    /// [`park`] or [`park_timeout`] (std semantics).
    pub fn unpark(&self) {
        Task::unpark(&self.task);
    }
}

impl fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine")
            .field("id", &self.task.id)
            .field("name", &self.name())
            .finish()
    }
}

/// A coroutine's unique identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoroutineId(NonZeroU64);

impl CoroutineId {
    /// The id as a number.
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

/// An owned permission to join a coroutine (wait for it to finish and take its result).
/// Dropping it detaches the coroutine, which keeps running.
pub struct JoinHandle<T> {
    coroutine: Coroutine,
    /// The result's type; the result itself waits in the task (`Task::join`). Like std's
    /// handle, this one is `Send` and `Sync` whatever `T` is: only `spawn`, which requires
    /// `T: Send`, makes one.
    result: PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    /// The handle of `task`, spawned with a body that returns `T`.
    pub(crate) fn new(task: TaskRef) -> JoinHandle<T> {
        JoinHandle {
            coroutine: Coroutine::from_task(task),
            result: PhantomData,
        }
    }

    /// Waits for the coroutine to finish: parks the calling coroutine, or blocks the calling
    /// thread. A panic inside the coroutine comes back as `Err` with the panic payload. A
    /// coroutine that its runtime's shutdown unwound before it finished comes back as `Err`
    /// with the `&'static str` payload "coronet: the runtime was shut down before the
    /// coroutine finished".
    ///
    /// # Panics
    /// If called by the coroutine itself (it would wait for itself forever), as std's
    /// `JoinHandle::join` panics when a thread joins itself.
    pub fn join(self) -> thread::Result<T> {
        let task = &self.coroutine.task;
        // Only a join that would wait can be a self-join (the caller is still running).
        if !task.join.is_complete()
            && context::task().is_some_and(|current| std::ptr::eq(current, &**task))
        {
            panic!("coronet: a coroutine cannot join itself (it would wait forever)");
        }
        // SAFETY: `new`'s caller spawned the task with a `T` body; `join` consumes the
        // handle, so it runs once (the drop that follows sees the value taken).
        unsafe { task.join.join::<T>(task.id) }
    }

    /// The coroutine's handle.
    pub fn coroutine(&self) -> &Coroutine {
        &self.coroutine
    }

    /// Whether the coroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.coroutine.task.join.is_complete()
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: the task was spawned with a `T` body (see `new`); a handle drops once.
        unsafe { self.coroutine.task.join.detach::<T>() };
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("coroutine", &self.coroutine)
            .finish()
    }
}

/// Configures a coroutine before spawning it, as [`std::thread::Builder`].
///
/// ```
/// let handle = coronet_runtime::coroutine::Builder::new()
///     .name("worker".into())
///     .stack_size(256 * 1024)
///     .spawn(|| coronet_runtime::current().name().map(str::to_owned))
///     .unwrap();
/// assert_eq!(handle.join().unwrap().as_deref(), Some("worker"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the runtime's defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine (shown in panics of stack overflow and in stats/dumps).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Usable stack size in bytes (rounded up to pages; at least 16 KiB).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns on the calling coroutine's runtime, or the default runtime from a plain thread.
    /// Fails if the runtime is shut down, if the stack size is one no stack can have, or if
    /// no control block can be allocated.
    ///
    /// The stack is taken when the coroutine first runs, from the cache of the worker that
    /// runs it, so a burst of spawns commits no memory for coroutines still queued. If no
    /// stack can be mapped then (out of memory, `vm.max_map_count`), the coroutine does not
    /// run: [`JoinHandle::join`] returns an error whose message names the cause, which is
    /// also printed to stderr.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        current_shared().spawn(f, self.name, self.stack_size, Location::caller())
    }

    /// Spawns on `runtime`.
    #[track_caller]
    pub fn spawn_on<F, T>(self, runtime: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        runtime
            .shared()
            .spawn(f, self.name, self.stack_size, Location::caller())
    }
}

/// Spawns a coroutine on the calling coroutine's runtime (the default runtime from a plain
/// thread) and returns its join handle.
///
/// Panics if the runtime is shut down; use [`Builder::spawn`] to handle that error. A
/// coroutine whose stack cannot be mapped when it first runs ends unrun, with an error for
/// its joiner (see [`Builder::spawn`]).
///
/// ```
/// let handles: Vec<_> = (0..10).map(|i| coronet_runtime::spawn(move || i * 2)).collect();
/// let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 90);
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("coronet: failed to spawn a coroutine: {e}"))
}

/// Runs `f` as a coroutine on the default runtime and blocks the calling thread until it
/// returns; a panic in `f` propagates. The canonical entry point:
///
/// ```
/// let n = coronet_runtime::run(|| {
///     let child = coronet_runtime::spawn(|| 21);
///     child.join().unwrap() * 2
/// });
/// assert_eq!(n, 42);
/// ```
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The calling coroutine's handle.
///
/// # Panics
/// Outside a coroutine (use [`try_current`] there).
pub fn current() -> Coroutine {
    try_current().expect("coronet::current() called outside a coroutine")
}

/// The calling coroutine's handle, or `None` on a plain thread.
pub fn try_current() -> Option<Coroutine> {
    // SAFETY: the running coroutine's cell pointer, kept alive by its worker's reference.
    context::task_ptr().map(|task| Coroutine::from_task(unsafe { TaskRef::from_task(task) }))
}

/// Whether the caller runs on a coroutine.
pub fn in_coroutine() -> bool {
    context::task().is_some()
}

/// Lets other runnable coroutines on this worker run, then continues. On a plain thread,
/// `std::thread::yield_now`.
#[inline]
pub fn yield_now() {
    match context::task() {
        Some(task) => task.suspend_in_caller(Suspend::Yield),
        None => thread::yield_now(),
    }
}

/// Parks the calling coroutine for at least `duration` (other coroutines run meanwhile). On
/// a plain thread, `std::thread::sleep`.
pub fn sleep(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline),
        None => loop {
            park();
        },
    }
}

/// Parks the calling coroutine until `deadline`.
pub fn sleep_until(deadline: Instant) {
    if context::task().is_none() {
        let now = Instant::now();
        if deadline > now {
            thread::sleep(deadline - now);
        }
        return;
    }
    while Instant::now() < deadline {
        let parking = Parking::prepare();
        // Only the timer holds this park's waker, so the wake-up is the deadline.
        parking.park_until(deadline);
    }
}

/// Blocks until the calling coroutine's token is made available by [`Coroutine::unpark`]
/// (std's `thread::park` semantics: it may also return spuriously). On a plain thread,
/// `std::thread::park`.
pub fn park() {
    match context::task_ptr() {
        Some(task) => Task::park_token(task, None),
        None => thread::park(),
    }
}

/// Like [`park`], returning after at most about `timeout`.
pub fn park_timeout(timeout: Duration) {
    match context::task_ptr() {
        Some(task) => {
            let deadline = Instant::now().checked_add(timeout);
            Task::park_token(task, deadline);
        }
        None => thread::park_timeout(timeout),
    }
}
