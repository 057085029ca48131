//! Coroutine-local storage: `coroutine_local!`, the coroutine counterpart of `thread_local!`.
//!
//! `thread_local!` is the wrong tool inside a coroutine: a coroutine may resume on another
//! worker thread, where the thread-local is a different value (and a reference held across a
//! park would name the old thread's slot, DESIGN.md section 6). A [`LocalKey`] instead stores
//! its value in the coroutine's control block, so it follows the coroutine. On a plain thread
//! it falls back to per-thread storage, so code using it works everywhere.
//!
//! Values are created lazily on first access and dropped when the coroutine finishes (on the
//! coroutine, so destructors may use the runtime) or when the thread exits.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::context;
use crate::task::Task;

static NEXT_INDEX: AtomicUsize = AtomicUsize::new(1);

pub(crate) type Slots = Vec<Option<Box<dyn Any>>>;

thread_local! {
    /// Values of plain threads (not coroutines).
    static THREAD_SLOTS: UnsafeCell<Slots> = const { UnsafeCell::new(Vec::new()) };
}

/// Declares coroutine-local statics, with `thread_local!`'s syntax.
///
/// ```
/// use std::cell::Cell;
/// coronet_runtime::coroutine_local! {
///     static REQUESTS: Cell<u32> = Cell::new(0);
/// }
/// let a = coronet_runtime::spawn(|| {
///     REQUESTS.with(|n| n.set(n.get() + 1));
///     coronet_runtime::yield_now();
///     REQUESTS.with(|n| n.get())
/// });
/// let b = coronet_runtime::spawn(|| REQUESTS.with(|n| n.get()));
/// assert_eq!(a.join().unwrap(), 1);
/// assert_eq!(b.join().unwrap(), 0); // each coroutine has its own value
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::local::LocalKey<$t> = {
            fn __coronet_init() -> $t {
                $init
            }
            $crate::local::LocalKey::new(__coronet_init)
        };
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::coroutine_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}

/// A key for coroutine-local values; create it with [`coroutine_local!`](crate::coroutine_local).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    /// Index into the slots, plus one; 0 until first use.
    index: AtomicUsize,
}

impl<T: 'static> std::fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey {
            init,
            index: AtomicUsize::new(0),
        }
    }

    fn index(&self) -> usize {
        let index = self.index.load(Ordering::Acquire);
        if index != 0 {
            return index - 1;
        }
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
        match self
            .index
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh - 1,
            Err(winner) => winner - 1,
        }
    }

    /// Runs `f` with a reference to this coroutine's (or thread's) value, creating it first if
    /// needed. Do not park inside `f` while holding references into other coroutines' data;
    /// parking inside `f` is otherwise allowed (the value lives with the coroutine).
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let index = self.index();
        let value: *const T = match context::task() {
            // SAFETY: `locals` is only touched by code running on this coroutine; the
            // borrow of the slot ends before `get_or_init` runs.
            Some(task) => unsafe {
                let slots: *mut Slots =
                    &mut **(*task.locals.get()).get_or_insert_with(Box::default);
                self.get_or_init(slots, index)
            },
            // SAFETY: `THREAD_SLOTS` is only touched by this thread.
            None => THREAD_SLOTS.with(|slots| unsafe { self.get_or_init(slots.get(), index) }),
        };
        // SAFETY: values are boxed, so their address is stable while the vector grows, and
        // they are dropped only when the coroutine finishes or the thread exits, after `f`.
        f(unsafe { &*value })
    }

    /// # Safety
    /// `slots` must be accessible only by the calling coroutine or thread; no reference into
    /// the vector itself may be live (references to the boxed values are fine).
    unsafe fn get_or_init(&self, slots: *mut Slots, index: usize) -> *const T {
        // SAFETY: exclusive per the contract; the borrow ends before `init` runs.
        let existing = unsafe { (&*slots).get(index).and_then(|v| v.as_deref()) };
        if let Some(value) = existing {
            return value.downcast_ref::<T>().expect("coroutine_local type") as *const T;
        }
        // `init` may itself use other keys: no borrow of `slots` is held while it runs.
        let boxed: Box<dyn Any> = Box::new((self.init)());
        let value = boxed.downcast_ref::<T>().expect("coroutine_local type") as *const T;
        // SAFETY: as above; this is a fresh, short exclusive borrow.
        let slots = unsafe { &mut *slots };
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        slots[index] = Some(boxed);
        value
    }
}

/// Drops a finishing coroutine's values, on the coroutine itself.
///
/// A destructor that panics must not unwind into the worker (the body's own `catch_unwind`
/// is behind it): the other values are still dropped (a vector's drop goes on past a
/// panicking element), and so is anything the destructors created, so no value outlives its
/// coroutine.
pub(crate) fn drop_locals(task: &Task) {
    loop {
        // SAFETY: called by the coroutine's own body as it finishes; the borrow ends before
        // the values' destructors run (they may create new values, hence the loop).
        let Some(values) = (unsafe { &mut *task.locals.get() }).take() else {
            return;
        };
        crate::runtime::drop_without_unwinding(|| drop(values));
    }
}
