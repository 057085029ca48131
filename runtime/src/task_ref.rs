//! Counted references to coroutine control blocks, and the pool the blocks live in.
//!
//! A [`TaskRef`] is what an `Arc<Task>` would be: a pointer to a [`Task`] with a reference
//! count beside it, dropped when the last reference goes. It exists for the memory under it.
//! `malloc` gave every spawn a fresh block from the spawning thread's arena, which glibc grows
//! one page and one `mprotect` at a time, and a block freed by another worker went back
//! through that arena's lock. Here control blocks are *cells* of one size, carved from large
//! chunks and recycled through per-thread free lists, as Go recycles its `g`s (`gfget` /
//! `gfput`). Measured in docs/performance.md ("Control blocks").
//!
//! # The pool
//!
//! * **Chunks**: 16 KiB, each next one twice as large up to 1 MiB, from the global allocator,
//!   never freed. A peak of N live coroutines keeps N cells (200 bytes each) for reuse, as Go
//!   keeps every `g` it ever made.
//! * **Per thread** (any thread that spawns or drops a reference, not only workers), two
//!   *magazines* of up to [`BATCH`] free cells, and a *range* of never-used cells carved for
//!   it. Allocation pops the current magazine, then swaps in the spare, then bumps the range,
//!   then goes to the global pool. A release pushes on the current magazine; a full one
//!   becomes the spare, and a full spare goes to the global pool. Every step is O(1), and a
//!   thread that both allocates and frees around a boundary does not ping-pong batches
//!   (Bonwick's magazines). A thread's cells go to the global pool when it exits.
//! * **Global**: a mutex over full magazines handed back and the chunk being carved; a thread
//!   takes one whole magazine, or a range of [`BATCH`] fresh cells, per lock.
//!
//! Ordering: a cell moves between threads only through the global mutex (a freeing thread
//! hands its magazine in, an allocating one takes it out), so the writes of the task's last
//! owner happen before the next owner's.
//!
//! # The registry of live tasks
//!
//! The pool is also how dumps and shutdown find a runtime's coroutines ([`live_tasks`], Go's
//! `allgs`): they scan every cell. That needs one invariant of every cell, free or not: **its
//! count is 0 exactly when no task lives in it, and is only ever written atomically** (chunks
//! are zeroed; a free-list link overlays the task, never the count; [`TaskRef::new`]
//! publishes the task by storing its count last). A scan takes a reference only from a
//! non-zero count, with a compare-exchange. So every reference, even a spawner's very first
//! ones, must be counted with read-modify-writes or published at once: a spawner that
//! counted its second reference up with a plain load and store lost the reference that a
//! scan took in between (the test `dumps_taken_while_coroutines_come_and_go_...` catches it).

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::task::Task;

/// A task with its reference count. `task` comes first (`repr(C)`), so a pointer to the cell
/// is a pointer to its task and back: the raw forms ([`TaskRef::into_raw`]) are task pointers.
#[repr(C)]
struct TaskCell {
    task: Task,
    refs: AtomicUsize,
}

// The free list's link overlays a free cell's first word, which must not be the count:
// `live_tasks` reads the count of free cells too.
const _: () = assert!(std::mem::offset_of!(TaskCell, refs) >= std::mem::size_of::<usize>());

/// Above this count a reference count is assumed to be leaking in a loop; as `Arc`, abort
/// before it can wrap.
const MAX_REFS: usize = isize::MAX as usize;

/// A counted reference to a coroutine's control block (see the module docs).
pub(crate) struct TaskRef {
    cell: NonNull<TaskCell>,
    /// Owns a `TaskCell` for drop-check purposes.
    _owns: PhantomData<TaskCell>,
}

// SAFETY: a `TaskRef` is shared ownership of a `Task`, which is `Send + Sync`; the count is
// atomic, as `Arc<Task>`'s, which is `Send + Sync` on the same grounds.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// The reference that one count of `cell` stands for (the caller has counted it).
    #[inline]
    fn counted(cell: NonNull<TaskCell>) -> TaskRef {
        TaskRef {
            cell,
            _owns: PhantomData,
        }
    }

    /// Moves `task` into a cell from the pool: `N` references to it, counted at once.
    ///
    /// The spawner needs several (the coroutine body's own, the join handle's, the run
    /// queue's): made here, they cost no read-modify-write each. They cannot be made by
    /// counting up later without one, even before the task is shared: [`live_tasks`] may
    /// take a reference to any task the moment its count is published.
    ///
    /// Fails only when the allocator cannot give the pool a new chunk.
    pub(crate) fn new<const N: usize>(task: Task) -> io::Result<[TaskRef; N]> {
        const { assert!(N > 0) };
        let cell = pool::allocate()?.cast::<TaskCell>();
        // SAFETY: `allocate` returned an unused cell, sized and aligned for a `TaskCell`,
        // that this thread owns until it publishes the count. Its count is a valid 0 (pool
        // invariant); the task is written first and the count last, by an atomic store,
        // because `live_tasks` may read the count of any cell at any time.
        unsafe {
            ptr::addr_of_mut!((*cell.as_ptr()).task).write(task);
            let refs = &(*cell.as_ptr()).refs;
            debug_assert_eq!(refs.load(Ordering::Relaxed), 0, "a free cell's count is 0");
            // Release: a `live_tasks` scan that reads this count sees the task written.
            refs.store(N, Ordering::Release);
        }
        Ok([(); N].map(|()| TaskRef::counted(cell)))
    }

    #[inline]
    fn cell(&self) -> &TaskCell {
        // SAFETY: the cell is live while this reference counts in it.
        unsafe { self.cell.as_ref() }
    }

    /// The task's address; the reference stays with `self`.
    #[inline]
    pub(crate) fn as_ptr(this: &TaskRef) -> *const Task {
        this.cell.as_ptr().cast::<Task>()
    }

    /// Gives the reference up as a task pointer (aligned to 8, so bit 0 is free for tags), to
    /// be taken back exactly once by [`TaskRef::from_raw`].
    #[inline]
    pub(crate) fn into_raw(this: TaskRef) -> *const Task {
        let ptr = TaskRef::as_ptr(&this);
        std::mem::forget(this);
        ptr
    }

    /// Takes back a reference given up by [`TaskRef::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw`, and each such pointer may be taken back only once.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: *const Task) -> TaskRef {
        // SAFETY: `into_raw` gave a non-null cell pointer (the task is the cell's first
        // field); the caller passes it back unchanged.
        TaskRef::counted(unsafe { NonNull::new_unchecked(ptr.cast::<TaskCell>().cast_mut()) })
    }

    /// A new reference to the task behind `task`.
    ///
    /// # Safety
    /// `task` must be a cell's task pointer as [`TaskRef::as_ptr`] or [`TaskRef::into_raw`]
    /// gave it (with the whole cell's provenance: the count lies beyond the `Task`, out of
    /// reach of a pointer made from a `&Task`), to a task with at least one reference that
    /// lasts while this runs.
    #[inline]
    pub(crate) unsafe fn from_task(task: *const Task) -> TaskRef {
        // SAFETY: the caller's promise: the task is a cell's first field, kept live by a
        // reference of its own while we add ours.
        let this = unsafe { TaskRef::from_raw(task) };
        this.increment();
        this
    }

    /// Whether both refer to the same task.
    #[inline]
    pub(crate) fn ptr_eq(a: &TaskRef, b: &TaskRef) -> bool {
        a.cell == b.cell
    }

    #[inline]
    fn increment(&self) {
        // Relaxed as in `Arc::clone`: a new reference is made from an existing one, which
        // already orders everything the new owner may read.
        if self.cell().refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
            std::process::abort();
        }
    }
}

impl Clone for TaskRef {
    #[inline]
    fn clone(&self) -> TaskRef {
        self.increment();
        TaskRef::counted(self.cell)
    }
}

impl Deref for TaskRef {
    type Target = Task;

    #[inline]
    fn deref(&self) -> &Task {
        &self.cell().task
    }
}

impl Drop for TaskRef {
    #[inline]
    fn drop(&mut self) {
        // Release, and Acquire by the last owner before it destroys the task, as in `Arc`:
        // every other owner's use of the task happens before the drop.
        if self.cell().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference, so nobody else can reach the cell.
        unsafe { destroy(self.cell) }
    }
}

/// Drops the task in `cell` and gives the cell back to the pool: the cold end of a drop.
///
/// # Safety
/// The caller dropped the last reference to the cell, whose task is initialised (by `new`);
/// it is dropped exactly once, here, before the cell goes back to the pool.
#[inline(never)]
unsafe fn destroy(cell: NonNull<TaskCell>) {
    // SAFETY: the caller's promise.
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!((*cell.as_ptr()).task));
        pool::release(cell.cast::<u8>());
    }
}

impl std::fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRef").field("id", &self.id).finish()
    }
}

/// Every task alive in the process (of any runtime), each with a new reference: the
/// registry of live tasks, for dumps and shutdown.
///
/// Scans every cell ever carved; a cell whose count is not 0 holds a live task, and a
/// reference is taken only while the count is not 0 (a compare-exchange, as
/// `Weak::upgrade`), so a task being destroyed or a cell being reused is never resurrected:
/// a cell reused meanwhile is found as the new task, fully written (the count's Release
/// store in `new`). Costs a pass over the cells, proportional to the most coroutines the
/// process ever had alive at once.
pub(crate) fn live_tasks() -> Vec<TaskRef> {
    let mut live = Vec::new();
    for (base, cells) in pool::chunks() {
        for index in 0..cells {
            let cell = (base + index * pool::cell_layout().size()) as *mut TaskCell;
            // SAFETY: the cell lies in a chunk the pool carved and never frees; its count is
            // 0 or a live count, and is only ever written atomically (pool invariant), so an
            // atomic view of it is sound whatever the rest of the cell holds. No reference
            // to the task is made before the count says it is live.
            let refs = unsafe { &*ptr::addr_of!((*cell).refs) };
            let mut count = refs.load(Ordering::Relaxed);
            while count != 0 {
                // Acquire: pairs with the Release store of the count in `new` (and the
                // release sequence of increments after it): the task is initialised.
                match refs.compare_exchange_weak(
                    count,
                    count + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: `cell` is inside a chunk, so not null.
                        live.push(TaskRef::counted(unsafe { NonNull::new_unchecked(cell) }));
                        break;
                    }
                    Err(actual) => count = actual,
                }
            }
        }
    }
    live
}

/// Free cells per magazine, and fresh cells per carved range.
const BATCH: usize = 32;

/// The cell pool: raw cells of [`TaskCell`]'s layout, not knowing what lives in them.
mod pool {
    use std::thread::LocalKey;

    use super::*;

    /// The process's pool of control-block cells.
    static POOL: Pool = Pool {
        global: &GLOBAL,
        local: &LOCAL,
    };
    static GLOBAL: Mutex<Global> = Mutex::new(Global::new());
    thread_local! {
        static LOCAL: Local = const { Local::new(&GLOBAL) };
    }

    /// An unused cell from the process's pool, owned by the caller until it hands it to
    /// [`release`].
    pub(super) fn allocate() -> io::Result<NonNull<u8>> {
        POOL.allocate()
    }

    /// Gives back a cell from [`allocate`].
    ///
    /// # Safety
    /// `cell` came from `allocate`, is not in use (its content was dropped) and is released
    /// once.
    pub(super) unsafe fn release(cell: NonNull<u8>) {
        // SAFETY: the caller's promise.
        unsafe { POOL.release(cell) }
    }

    /// The layout of one cell.
    pub(super) const fn cell_layout() -> Layout {
        Layout::new::<TaskCell>()
    }

    /// A free cell's first word links it to the next free one.
    struct FreeCell {
        next: *mut FreeCell,
    }

    /// A list of up to [`BATCH`] free cells.
    #[derive(Clone, Copy)]
    struct Magazine {
        head: *mut FreeCell,
        len: usize,
    }

    const EMPTY: Magazine = Magazine {
        head: ptr::null_mut(),
        len: 0,
    };

    impl Magazine {
        /// # Safety
        /// `cell` is a free cell that the caller owns.
        unsafe fn push(&mut self, cell: NonNull<u8>) {
            let cell = cell.cast::<FreeCell>().as_ptr();
            // SAFETY: the cell is free and ours; cells are aligned for a pointer.
            unsafe { cell.write(FreeCell { next: self.head }) };
            self.head = cell;
            self.len += 1;
        }

        fn pop(&mut self) -> Option<NonNull<u8>> {
            let cell = NonNull::new(self.head)?;
            // SAFETY: a non-null head is a free cell this magazine owns, its link written by
            // `push`.
            self.head = unsafe { cell.as_ref().next };
            self.len -= 1;
            Some(cell.cast())
        }
    }

    /// Cells never handed out yet, `[next, end)`, one cell apart.
    #[derive(Clone, Copy)]
    struct Range {
        next: usize,
        end: usize,
    }

    impl Range {
        const EMPTY: Range = Range { next: 0, end: 0 };

        fn take(&mut self) -> Option<NonNull<u8>> {
            if self.next == self.end {
                return None;
            }
            let cell = self.next;
            self.next += cell_layout().size();
            NonNull::new(cell as *mut u8)
        }

        fn len(&self) -> usize {
            (self.end - self.next) / cell_layout().size()
        }
    }

    const FIRST_CHUNK_BYTES: usize = 16 * 1024;
    const MAX_CHUNK_BYTES: usize = 1024 * 1024;

    /// The process pool's chunks, as (base address, cells).
    pub(super) fn chunks() -> Vec<(usize, usize)> {
        lock(&GLOBAL).chunks.clone()
    }

    pub(super) struct Global {
        /// Full (or, from exiting threads, partial) magazines handed back.
        magazines: Vec<Magazine>,
        /// The rest of the newest chunk.
        chunk: Range,
        /// Bytes of the next chunk.
        next_chunk_bytes: usize,
        /// Cells carved so far.
        carved: usize,
        /// Every chunk (base address, cells), for `live_tasks`. Append-only: chunks are never
        /// freed.
        chunks: Vec<(usize, usize)>,
    }

    // SAFETY: the raw pointers name free cells, owned by whoever holds the lock.
    unsafe impl Send for Global {}

    impl Global {
        pub(super) const fn new() -> Global {
            Global {
                magazines: Vec::new(),
                chunk: Range::EMPTY,
                next_chunk_bytes: FIRST_CHUNK_BYTES,
                carved: 0,
                chunks: Vec::new(),
            }
        }

        /// A range of up to `want` fresh cells, allocating a new chunk when this one is used
        /// up.
        fn carve(&mut self, want: usize) -> io::Result<Range> {
            if self.chunk.next == self.chunk.end {
                let bytes = self.next_chunk_bytes;
                let layout =
                    Layout::from_size_align(bytes, cell_layout().align()).expect("chunk layout");
                // Zeroed: every cell's count starts at 0, "free" (see `live_tasks`); the
                // allocator maps chunks this large fresh, already zero.
                // SAFETY: the layout has a non-zero size.
                let base = unsafe { alloc::alloc_zeroed(layout) };
                if base.is_null() {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!(
                            "coronet: cannot allocate {bytes} bytes for coroutine control blocks"
                        ),
                    ));
                }
                // Every cell of the chunk is carved, in order, before the next chunk: back
                // it with memory in one call rather than a page fault every 24 cells (a
                // million spawn+joins holding their handles: 46,408 faults -> 3,421).
                crate::sys::prefault(base, bytes);
                let cells = bytes / cell_layout().size();
                self.chunks.push((base as usize, cells));
                self.chunk = Range {
                    next: base as usize,
                    end: base as usize + cells * cell_layout().size(),
                };
                self.next_chunk_bytes = (bytes * 2).min(MAX_CHUNK_BYTES);
            }
            let take = want.min(self.chunk.len());
            let range = Range {
                next: self.chunk.next,
                end: self.chunk.next + take * cell_layout().size(),
            };
            self.chunk.next = range.end;
            self.carved += take;
            Ok(range)
        }

        /// One cell, for a thread whose own lists are gone (it is exiting).
        fn allocate_one(&mut self) -> io::Result<NonNull<u8>> {
            if let Some(mut magazine) = self.magazines.pop() {
                let cell = magazine.pop().expect("magazines in the pool are not empty");
                if magazine.len > 0 {
                    self.magazines.push(magazine);
                }
                return Ok(cell);
            }
            let mut range = self.carve(1)?;
            Ok(range.take().expect("a carved range of one cell"))
        }
    }

    /// One thread's cells.
    pub(super) struct Local {
        /// Where the cells go when the thread exits.
        global: &'static Mutex<Global>,
        current: Cell<Magazine>,
        spare: Cell<Magazine>,
        fresh: Cell<Range>,
    }

    impl Local {
        pub(super) const fn new(global: &'static Mutex<Global>) -> Local {
            Local {
                global,
                current: Cell::new(EMPTY),
                spare: Cell::new(EMPTY),
                fresh: Cell::new(Range::EMPTY),
            }
        }
    }

    impl Drop for Local {
        fn drop(&mut self) {
            // Fresh cells go back as a magazine too (linking them touches their memory once,
            // at thread exit).
            let mut fresh = self.fresh.get();
            let mut from_fresh = EMPTY;
            while let Some(cell) = fresh.take() {
                // SAFETY: a fresh cell is free and this thread's.
                unsafe { from_fresh.push(cell) };
            }
            let mut global = lock(self.global);
            for magazine in [self.current.get(), self.spare.get(), from_fresh] {
                if magazine.len > 0 {
                    global.magazines.push(magazine);
                }
            }
        }
    }

    fn lock(global: &'static Mutex<Global>) -> std::sync::MutexGuard<'static, Global> {
        // Nothing panics while holding the lock but a failed `Vec` growth, which leaves the
        // pool consistent (the push did not happen): a poisoned lock is still usable.
        global
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A pool: its global part and the thread-local part of every thread that uses it.
    pub(super) struct Pool {
        pub(super) global: &'static Mutex<Global>,
        pub(super) local: &'static LocalKey<Local>,
    }

    impl Pool {
        pub(super) fn allocate(&self) -> io::Result<NonNull<u8>> {
            match self.local.try_with(|local| self.allocate_local(local)) {
                Ok(result) => result,
                // The thread is exiting and its lists are gone: one cell through the lock.
                Err(_) => lock(self.global).allocate_one(),
            }
        }

        fn allocate_local(&self, local: &Local) -> io::Result<NonNull<u8>> {
            let mut current = local.current.get();
            if let Some(cell) = current.pop() {
                local.current.set(current);
                return Ok(cell);
            }
            let mut spare = local.spare.replace(EMPTY);
            if let Some(cell) = spare.pop() {
                local.current.set(spare);
                return Ok(cell);
            }
            let mut fresh = local.fresh.get();
            if let Some(cell) = fresh.take() {
                local.fresh.set(fresh);
                return Ok(cell);
            }
            // Both magazines and the range are empty: one lock for a batch.
            let mut global = lock(self.global);
            if let Some(mut magazine) = global.magazines.pop() {
                drop(global);
                let cell = magazine.pop().expect("magazines in the pool are not empty");
                local.current.set(magazine);
                return Ok(cell);
            }
            let mut range = global.carve(BATCH)?;
            drop(global);
            let cell = range.take().expect("a carved range is not empty");
            local.fresh.set(range);
            Ok(cell)
        }

        /// # Safety
        /// As [`release`], for a cell of this pool.
        pub(super) unsafe fn release(&self, cell: NonNull<u8>) {
            let released = self.local.try_with(|local| {
                let mut current = local.current.get();
                if current.len == BATCH {
                    // The spare is empty or full (it only ever receives a full magazine).
                    let full = local.spare.replace(current);
                    if full.len > 0 {
                        lock(self.global).magazines.push(full);
                    }
                    current = EMPTY;
                }
                // SAFETY: the caller gives us the cell.
                unsafe { current.push(cell) };
                local.current.set(current);
            });
            if released.is_err() {
                // The thread is exiting: a magazine of one.
                let mut magazine = EMPTY;
                // SAFETY: as above.
                unsafe { magazine.push(cell) };
                lock(self.global).magazines.push(magazine);
            }
        }

        /// Cells carved from chunks so far, by every thread.
        #[cfg(test)]
        pub(super) fn carved(&self) -> usize {
            lock(self.global).carved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pool::{cell_layout, Global, Local, Pool};
    use super::*;
    use std::collections::HashSet;

    /// A pool of the test's own, so that tests running in parallel (and spawning coroutines
    /// through the process's pool) do not see each other's cells.
    macro_rules! test_pool {
        () => {{
            static GLOBAL: Mutex<Global> = Mutex::new(Global::new());
            thread_local! {
                static LOCAL: Local = const { Local::new(&GLOBAL) };
            }
            static POOL: Pool = Pool {
                global: &GLOBAL,
                local: &LOCAL,
            };
            &POOL
        }};
    }

    fn cells(pool: &Pool, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| pool.allocate().expect("cell").as_ptr() as usize)
            .collect()
    }

    fn release_all(pool: &Pool, cells: &[usize]) {
        for &cell in cells {
            // SAFETY: each came from this pool's `allocate`, is unused and released once.
            unsafe { pool.release(NonNull::new(cell as *mut u8).unwrap()) };
        }
    }

    #[test]
    fn cells_are_distinct_aligned_and_writable() {
        let pool = test_pool!();
        let layout = cell_layout();
        // More than the first chunk holds (16 KiB), so a second chunk is carved too.
        let got = cells(pool, 200);
        // Carved in ranges of up to a batch: the last range's rest waits in this thread.
        assert!((200..200 + BATCH).contains(&pool.carved()));
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
        let mut sorted = got.clone();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            assert!(pair[1] - pair[0] >= layout.size(), "cells overlap");
        }
        for &cell in &got {
            assert_eq!(cell % layout.align(), 0);
            // SAFETY: the cell is ours and `layout.size()` bytes long.
            unsafe { ptr::write_bytes(cell as *mut u8, 0xA5, layout.size()) };
        }
        release_all(pool, &got);
    }

    #[test]
    fn released_cells_are_reused_before_carving() {
        let pool = test_pool!();
        let first = cells(pool, 3 * BATCH);
        release_all(pool, &first);
        let carved = pool.carved();
        // Two magazines stay with this thread, the third went to the global pool; the
        // thread's fresh range (the rest of its last carve) comes before the lock.
        let leftover_fresh = carved - first.len();
        let again = cells(pool, leftover_fresh + first.len());
        assert_eq!(pool.carved(), carved, "reuse must not carve");
        let again: HashSet<_> = again.into_iter().collect();
        assert!(first.iter().all(|cell| again.contains(cell)));
        release_all(pool, &again.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn cells_freed_on_other_threads_come_back_through_the_pool() {
        let pool = test_pool!();
        // Allocated here, released by threads that then exit: their magazines, full or
        // not, go to the global pool, and this thread's refills take them.
        let n = 5 * BATCH + 3;
        let mine = cells(pool, n);
        let carved = pool.carved();
        let leftover_fresh = carved - n;
        for part in mine.chunks(n / 2) {
            let part = part.to_vec();
            std::thread::spawn(move || release_all(pool, &part))
                .join()
                .expect("releasing thread");
        }
        let again = cells(pool, leftover_fresh + n);
        assert_eq!(pool.carved(), carved, "the freed cells were enough");
        let mine: HashSet<usize> = mine.into_iter().collect();
        let reused = again.iter().filter(|cell| mine.contains(cell)).count();
        assert_eq!(reused, n, "every freed cell came back");
        release_all(pool, &again);
    }

    #[test]
    fn threads_that_pass_cells_to_each_other_never_share_one() {
        // Four threads allocate, hand cells to the next thread over a channel, and release
        // what they receive: cells cross threads through every path (magazines filling and
        // spilling to the global pool, refills, fresh ranges). A cell handed out while in
        // use, or one lost, fails the test.
        let pool: &'static Pool = test_pool!();
        const THREADS: usize = 4;
        const ROUNDS: usize = 2_000;
        let in_use = std::sync::Arc::new(Mutex::new(HashSet::new()));
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
            .map(|_| std::sync::mpsc::channel::<Vec<usize>>())
            .unzip();
        let threads: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(index, inbox)| {
                let next = senders[(index + 1) % THREADS].clone();
                let in_use = in_use.clone();
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        // Batches of 1 to 70 cells: below, at and above a magazine.
                        let got = cells(pool, 1 + (round * 7 + index * 13) % 70);
                        {
                            let mut in_use = in_use.lock().unwrap();
                            for &cell in &got {
                                assert!(in_use.insert(cell), "a cell handed out twice");
                            }
                        }
                        next.send(got).unwrap();
                        let received = inbox.recv().unwrap();
                        {
                            let mut in_use = in_use.lock().unwrap();
                            for cell in &received {
                                assert!(in_use.remove(cell), "a cell released twice");
                            }
                        }
                        release_all(pool, &received);
                    }
                })
            })
            .collect();
        drop(senders);
        for thread in threads {
            thread.join().expect("a pool thread failed");
        }
        assert!(in_use.lock().unwrap().is_empty());
        // Every carved cell is free again: all of them can be taken without carving.
        let carved = pool.carved();
        let all = cells(pool, carved);
        assert_eq!(pool.carved(), carved, "cells were lost");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), carved);
        release_all(pool, &all);
    }

    #[test]
    fn cells_move_in_thread_exit_destructors_either_side_of_the_pools_own() {
        // A coroutine's last reference may drop in another thread-local's destructor, before
        // or after the pool's own thread-local is gone: both must work (the latter through
        // the lock, one cell at a time).
        let pool: &'static Pool = test_pool!();
        struct UseAtExit(&'static Pool);
        impl Drop for UseAtExit {
            fn drop(&mut self) {
                let cells = cells(self.0, 3);
                release_all(self.0, &cells);
            }
        }
        thread_local! {
            static AT_EXIT: std::cell::RefCell<Option<UseAtExit>> =
                const { std::cell::RefCell::new(None) };
        }
        for pool_first in [true, false] {
            std::thread::spawn(move || {
                if pool_first {
                    release_all(pool, &cells(pool, 1));
                }
                AT_EXIT.with(|slot| *slot.borrow_mut() = Some(UseAtExit(pool)));
                if !pool_first {
                    release_all(pool, &cells(pool, 1));
                }
            })
            .join()
            .expect("thread");
        }
        // Every cell came back: the carved ones are all in the pool again.
        let carved = pool.carved();
        let all = cells(pool, carved);
        assert_eq!(pool.carved(), carved);
        release_all(pool, &all);
    }
}
