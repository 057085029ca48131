//! Coroutine stacks: guarded, lazily committed, carved from large mappings and pooled.
//!
//! # Layout
//!
//! Stacks of one size class are carved from *chunks*: one anonymous `mmap` each
//! (`MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK`, read-write, committed page by
//! page as the coroutines touch it). Slot `i` of a chunk is a guard page followed by the
//! usable stack:
//!
//! ```text
//!  chunk.base                                                         chunk.base + count * stride
//!  |<------------- stride ------------->|<------------- stride ------------->|
//!  +-------+----------------------------+-------+----------------------------+----
//!  | guard | usable stack of slot 0     | guard | usable stack of slot 1     | ...
//!  +-------+----------------------------+-------+----------------------------+----
//!  ^ limit()                            ^ base() of slot 0 (stacks grow down, towards the guard)
//! ```
//!
//! An overflow runs into the slot's own guard, never into the neighbour below it. Guards are
//! installed when a slot is first handed out, with one of two mechanisms ([`GuardKind`]),
//! chosen once per process by probing:
//!
//! * `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+): the guard lives in the page tables and the
//!   chunk stays **one** mapping, so 100,000+ guarded stacks fit under the default
//!   `vm.max_map_count` of 65530. Guards survive `MADV_DONTNEED`.
//! * `mprotect(PROT_NONE)` elsewhere: every guard splits the mapping, two mappings per stack,
//!   so the default limit stops near 32,000 stacks. The pool keeps [`MAP_HEADROOM`] mappings
//!   free for malloc and reports the limit as an `io::ErrorKind::OutOfMemory` error that
//!   names the sysctl. `CORONET_STACK_GUARD=mprotect` forces this mode (for tests, and for
//!   tools such as valgrind that do not know the madvise call).
//!
//! Chunks grow geometrically per class (16, 32, ... 1024 stacks) so a small program reserves
//! little address space, and are never unmapped: a guard page must never become a hole that a
//! later `mmap` can fill.
//!
//! # Recycling
//!
//! Three tiers, the way Go caches goroutine stacks (`stackcache` per P, a global pool):
//!
//! 1. [`LocalCache`]: owned by one worker thread, no locks, up to [`LOCAL_PER_CLASS`] stacks per
//!    class. Refilled from and flushed to the global pool in batches of half that.
//! 2. The global pool: a mutex-protected free list per class. Released stacks stay resident
//!    as they are ("warm", no syscall to release or reuse). The runtime's monitor calls
//!    [`trim`] every tick, which decommits (`MADV_DONTNEED`) the least recently released idle
//!    stacks beyond [`WARM_PER_CLASS`] and moves them to the "cold" list: that bounds the RSS
//!    of idle stacks a few ticks after a burst, without a syscall on the hot path (measured:
//!    decommitting on release made spawn+join of 1,000,000 fault on most stacks it reused).
//!    Warm stacks are handed out first.
//! 3. Carving a fresh slot from the class's current chunk, or mapping the next chunk. A
//!    worker carves half a [`LocalCache`] at once: with madvise guards, one
//!    `process_madvise` call guards the whole batch (Linux 6.15+; one `madvise` per slot
//!    elsewhere), which saves about a third of the cost of a fresh stack, and a second one
//!    commits each stack's top page, which its coroutine's first frame writes anyway (a page
//!    fault per coroutine start otherwise).
//!
//! Dropping a [`PooledStack`] returns it to the global pool, so a stack is never lost.
//!
//! # Overflow diagnosis
//!
//! `overflow.rs`: a SIGSEGV/SIGBUS handler finds the chunk and slot of the faulting address in
//! the append-only chunk list ([`find_guard`]) and prints which coroutine overflowed.
//!
//! # Windows
//!
//! Chunks are `VirtualAlloc` reservations; a slot's stack grows through a `PAGE_GUARD` region
//! the kernel moves down (as for thread stacks), its lowest page is never committed, and the
//! overflow handler is a vectored exception handler. See `sys/windows.rs`.
//!
//! Rejected: one `mmap` per stack (two mappings per stack like mprotect guards, and 4 µs of
//! syscalls per spawn on a VM); unmapping guard pages into holes (later small mappings land in
//! them, so the guard silently disappears).

mod local;
mod overflow;
mod pool;
mod sys;
// The pool's tests inspect guards with pipes, /proc/self/maps and signals: Unix only. The
// Windows backend has its own (VirtualQuery, exception codes).
#[cfg(all(test, unix))]
mod tests;
#[cfg(all(test, windows))]
mod tests_windows;

use std::io;
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

use corosensei::stack::{Stack, StackPointer};

pub(crate) use local::LocalCache;
pub(crate) use overflow::{ensure_altstack, install_overflow_handler, set_owner_name};
// Coroutines take their stacks from a worker's `LocalCache`; the pool's own `allocate`
// is for the tests here.
#[cfg(test)]
use pool::allocate;
pub(crate) use pool::{release, trim};

/// The system page size.
pub(crate) fn page_size() -> usize {
    sys::page_size()
}

/// Smallest usable stack size we accept (bytes, excluding the guard page).
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;
/// Default usable size (bytes, excluding guard). Lazily committed.
pub(crate) const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// Stacks in a class's first chunk; each further chunk doubles, up to [`MAX_CHUNK_STACKS`].
const FIRST_CHUNK_STACKS: usize = 16;
/// Largest number of stacks per chunk.
const MAX_CHUNK_STACKS: usize = 1024;
/// Largest chunk, in bytes of address space (for classes of big stacks).
const MAX_CHUNK_BYTES: usize = if usize::BITS >= 64 { 1 << 30 } else { 16 << 20 };
/// Idle stacks per class the global pool keeps resident; the rest are decommitted.
const WARM_PER_CLASS: usize = 1024;
/// Idle stacks per class a [`LocalCache`] keeps; refills and flushes move half of this.
const LOCAL_PER_CLASS: usize = 64;
/// Size classes a [`LocalCache`] caches; stacks of further classes go straight to the pool.
const LOCAL_CLASSES: usize = 8;
/// Mappings the pool leaves unused below `vm.max_map_count` in mprotect mode, for malloc
/// and the rest of the program (at the limit, malloc fails too).
const MAP_HEADROOM: usize = 1024;

/// The mechanism that makes guard pages inaccessible, chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)`: a chunk of stacks is one mapping.
    Madvise,
    /// `mprotect(PROT_NONE)`: two mappings per stack.
    Mprotect,
}

/// Which guard mechanism the process uses: probed on first call, `Mprotect` when the
/// environment variable `CORONET_STACK_GUARD` is `mprotect`.
pub(crate) fn guard_kind() -> GuardKind {
    static KIND: OnceLock<GuardKind> = OnceLock::new();
    *KIND.get_or_init(|| {
        let forced = std::env::var_os("CORONET_STACK_GUARD").is_some_and(|v| v == "mprotect");
        if !forced && sys::madvise_guards_supported() {
            GuardKind::Madvise
        } else {
            GuardKind::Mprotect
        }
    })
}

// Stats counters. Relaxed throughout: they are read for reporting only and order nothing.
static STACKS_ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static STACKS_POOLED: AtomicUsize = AtomicUsize::new(0);

/// Total stacks ever carved (mapped and guarded) by the process.
pub(crate) fn stacks_allocated() -> usize {
    STACKS_ALLOCATED.load(Ordering::Relaxed)
}

/// Stacks currently idle in the global pool (not counting those in [`LocalCache`]s).
// Part of the stats API; `Stats` does not report it yet (remove this allow when it does).
#[allow(dead_code)]
pub(crate) fn stacks_pooled() -> usize {
    STACKS_POOLED.load(Ordering::Relaxed)
}

// ---- chunks -------------------------------------------------------------------------------

/// One mapping holding `count` stacks of one class. Immutable once published and never freed:
/// the signal handler reads it without locks.
struct Chunk {
    /// Lowest address of the mapping (the guard of slot 0).
    base: usize,
    /// Bytes per slot: guard + usable stack.
    stride: usize,
    /// Bytes of guard at the bottom of each slot.
    guard: usize,
    /// Slots in the chunk.
    count: usize,
    /// Who runs on each slot, for the overflow message.
    owners: Box<[overflow::Owner]>,
    /// The chunk published before this one.
    older: Option<&'static Chunk>,
}

impl Chunk {
    /// Usable bytes of each stack in this chunk.
    fn stack_size(&self) -> usize {
        self.stride - self.guard
    }

    /// The slot whose guard contains `addr`, if any.
    fn guard_slot(&self, addr: usize) -> Option<usize> {
        let offset = addr.checked_sub(self.base)?;
        let slot = offset / self.stride;
        (slot < self.count && offset % self.stride < self.guard).then_some(slot)
    }
}

/// Newest chunk of the append-only list, as a raw pointer (null when empty).
///
/// Written only under the `pool::POOL` lock (so one writer at a time) with Release, after the
/// chunk is fully built; read with Acquire (pairs with that store) by [`find_guard`], from
/// any thread and from the signal handler.
static CHUNKS: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());

fn newest_chunk() -> Option<&'static Chunk> {
    let newest = CHUNKS.load(Ordering::Acquire);
    // SAFETY: CHUNKS is null or points to a chunk leaked by `publish` (never freed), fully
    // initialised before the Release store that this Acquire load pairs with.
    unsafe { newest.as_ref() }
}

/// Appends `chunk` to the list and returns it. Caller holds the `pool::POOL` lock.
fn publish(mut chunk: Chunk) -> &'static Chunk {
    chunk.older = newest_chunk();
    let chunk: &'static Chunk = Box::leak(Box::new(chunk));
    CHUNKS.store(ptr::from_ref(chunk).cast_mut(), Ordering::Release);
    chunk
}

/// Finds the chunk and slot whose guard page contains `addr`. Lock-free and allocation-free:
/// callable from a signal handler.
///
/// Only the guard page itself counts. Everything below a slot's guard is the usable stack of
/// the previous slot (or, for slot 0, memory that is not ours), and Rust's stack probes make
/// every frame touch each page in turn, so an overflow faults in the guard first.
fn find_guard(addr: usize) -> Option<(&'static Chunk, usize)> {
    let mut next = newest_chunk();
    while let Some(chunk) = next {
        if let Some(slot) = chunk.guard_slot(addr) {
            return Some((chunk, slot));
        }
        next = chunk.older;
    }
    None
}

// ---- stacks -------------------------------------------------------------------------------

/// A slot of a chunk, as stored in free lists. `Copy`, no ownership: [`PooledStack`] owns.
#[derive(Clone, Copy)]
struct RawStack {
    chunk: &'static Chunk,
    slot: usize,
}

impl RawStack {
    /// Lowest address of the slot (the guard).
    fn bottom(self) -> usize {
        self.chunk.base + self.slot * self.chunk.stride
    }

    /// Highest address of the slot: the initial stack pointer.
    fn top(self) -> usize {
        self.bottom() + self.chunk.stride
    }

    fn size(self) -> usize {
        self.chunk.stack_size()
    }

    fn owner(self) -> &'static overflow::Owner {
        &self.chunk.owners[self.slot]
    }

    /// Releases the stack's pages (its guard stays).
    fn decommit(self) {
        // SAFETY: the usable range is in a chunk mapping and holds no live data: the stack is
        // idle (being moved to the cold list by its owner).
        unsafe { sys::decommit(self.top() - self.size(), self.size()) };
    }
}

/// A stack handed out by the pool; implements [`corosensei::stack::Stack`]. Owns its slot
/// exclusively; dropping it returns the slot to the global pool.
pub(crate) struct PooledStack {
    raw: RawStack,
    /// Windows: where the committed part of the stack ends (the TEB's `StackLimit`), learnt
    /// when a coroutine first runs on it and kept up to date by corosensei. Empty on Unix.
    // Read only by corosensei's Windows-only `Stack::teb_fields`.
    #[cfg_attr(not(windows), allow(dead_code))]
    teb_limit: sys::StackLimit,
}

impl PooledStack {
    fn new(raw: RawStack) -> PooledStack {
        PooledStack {
            raw,
            teb_limit: sys::StackLimit::default(),
        }
    }

    /// Usable bytes (excluding the guard page).
    pub(crate) fn size(&self) -> usize {
        self.raw.size()
    }

    fn into_raw(self) -> RawStack {
        ManuallyDrop::new(self).raw
    }

    fn owner(&self) -> &'static overflow::Owner {
        self.raw.owner()
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        pool::give_back_one(self.raw);
    }
}

impl std::fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledStack")
            .field("top", &(self.raw.top() as *const u8))
            .field("size", &self.size())
            .finish()
    }
}

// SAFETY: `limit()..base()` is one slot of a chunk that is never unmapped. Its lowest page is a
// guard, installed (madvise or mprotect) by `pool::carve` before the slot was first handed out and
// never removed (MADV_DONTNEED keeps it). The rest, `size() >= MIN_STACK_SIZE` bytes (above
// corosensei's minimum), is readable and writable and used by nothing else while this
// `PooledStack` exists: a slot is in exactly one place at a time (a free list, a LocalCache, or
// one PooledStack). Both addresses are page-aligned, so aligned to STACK_ALIGNMENT.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.raw.top()).expect("a chunk never ends at address 0")
    }

    /// The lowest address of the slot, guard page included (as corosensei's `DefaultStack`).
    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.raw.bottom()).expect("a chunk never starts at address 0")
    }

    // corosensei's trait has these two methods on Windows only: the stack's Thread Environment
    // Block fields, which it installs while a coroutine runs (see `sys/windows.rs`).
    #[cfg(windows)]
    fn teb_fields(&self) -> corosensei::stack::StackTebFields {
        let (bottom, top) = (self.raw.bottom(), self.raw.top());
        sys::teb_fields(bottom, top, self.teb_limit.get(bottom, top))
    }

    /// Called when a coroutine is switched out: the kernel may have grown the stack.
    #[cfg(windows)]
    fn update_teb_fields(&mut self, stack_limit: usize, _guaranteed_stack_bytes: usize) {
        self.teb_limit.set(stack_limit);
    }
}

/// Rounds a requested size up to the class size: a page multiple, at least [`MIN_STACK_SIZE`].
pub(crate) fn class_size(size: usize) -> io::Result<usize> {
    let page = sys::page_size();
    size.max(MIN_STACK_SIZE)
        .checked_add(page - 1)
        .map(|s| s & !(page - 1))
        .filter(|s| s.checked_add(page).is_some())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "coronet: stack size too large"))
}
