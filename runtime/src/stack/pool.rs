//! The process-wide stack pool: per size class, the idle stacks (warm, then cold) and the
//! chunk being carved. One mutex; critical sections are short and make no syscalls except
//! `mmap` for a new chunk (rare: chunks grow geometrically) and, at the map limit in mprotect
//! mode, reading `/proc/self/maps`. Decommitting (by [`trim`], from the monitor) and guard
//! installation happen outside it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{
    class_size, guard_kind, overflow, publish, sys, Chunk, GuardKind, PooledStack, RawStack,
    FIRST_CHUNK_STACKS, MAP_HEADROOM, MAX_CHUNK_BYTES, MAX_CHUNK_STACKS, STACKS_ALLOCATED,
    STACKS_POOLED, WARM_PER_CLASS,
};

/// Idle and not-yet-carved stacks of one size.
struct Class {
    /// Usable bytes per stack.
    size: usize,
    /// Idle stacks whose pages may still be resident; reused first.
    warm: Vec<RawStack>,
    /// The fewest warm stacks seen since the last trim window: stacks below this mark were
    /// never reused during the window.
    low_water: usize,
    /// Idle stacks decommitted on release (beyond `WARM_PER_CLASS`).
    cold: Vec<RawStack>,
    /// Carved slots whose guard could not be installed yet (the syscall failed); retried first.
    unguarded: Vec<RawStack>,
    /// The chunk being carved and its next free slot.
    carving: Option<(&'static Chunk, usize)>,
    /// Slots in the next chunk mapped for this class.
    next_chunk_stacks: usize,
}

impl Class {
    fn new(size: usize) -> Class {
        Class {
            size,
            warm: Vec::new(),
            low_water: 0,
            cold: Vec::new(),
            unguarded: Vec::new(),
            carving: None,
            next_chunk_stacks: FIRST_CHUNK_STACKS,
        }
    }

    fn pop_idle(&mut self) -> Option<RawStack> {
        let raw = self.warm.pop().or_else(|| self.cold.pop())?;
        self.low_water = self.low_water.min(self.warm.len());
        STACKS_POOLED.fetch_sub(1, Ordering::Relaxed);
        Some(raw)
    }

    /// Takes the next uncarved slot, mapping a new chunk if the current one is used up.
    fn next_slot(&mut self) -> io::Result<RawStack> {
        let (chunk, slot) = match self.carving {
            Some((chunk, slot)) if slot < chunk.count => (chunk, slot),
            _ => (self.map_chunk()?, 0),
        };
        self.carving = Some((chunk, slot + 1));
        Ok(RawStack { chunk, slot })
    }

    fn map_chunk(&mut self) -> io::Result<&'static Chunk> {
        let guard = sys::guard_len();
        let stride = self.size + guard;
        let mut count = self.next_chunk_stacks.min(MAX_CHUNK_BYTES / stride).max(1);
        let base = loop {
            match sys::reserve(count * stride) {
                Ok(base) => break base,
                // Out of address space rather than mappings: a smaller chunk may still fit.
                Err(e) if count > 1 && sys::is_out_of_address_space(&e) => count /= 2,
                Err(e) => return Err(sys::mapping_error(e)),
            }
        };
        self.next_chunk_stacks = (count * 2).min(MAX_CHUNK_STACKS);
        let owners = (0..count).map(|_| overflow::Owner::new()).collect();
        Ok(publish(Chunk {
            base,
            stride,
            guard,
            count,
            owners,
            older: None,
        }))
    }
}

/// Estimates the process's mapping count in mprotect mode, where every stack costs two.
struct MapBudget {
    /// `vm.max_map_count`, if known (`None` until first use, then `Some(None)` if unknown).
    limit: Option<Option<usize>>,
    /// Mappings counted in `/proc/self/maps` at the last measurement.
    measured: usize,
    /// Mappings our carving added since (an over-estimate: adjacent mappings may merge).
    added: usize,
}

impl MapBudget {
    /// Accounts for one more guarded stack, or fails if that would leave fewer than
    /// `MAP_HEADROOM` mappings below the limit. Re-measures only when the estimate says full.
    fn take(&mut self) -> io::Result<()> {
        const PER_STACK: usize = 2;
        let Some(limit) = *self.limit.get_or_insert_with(|| {
            self.measured = sys::mapping_count().unwrap_or(0);
            sys::max_map_count()
        }) else {
            return Ok(());
        };
        if self.measured + self.added + PER_STACK + MAP_HEADROOM > limit {
            if let Some(now) = sys::mapping_count() {
                self.measured = now;
                self.added = 0;
            }
            if self.measured + PER_STACK + MAP_HEADROOM > limit {
                return Err(sys::map_limit_error(
                    Some(self.measured),
                    Some(limit),
                    MAP_HEADROOM,
                ));
            }
        }
        self.added += PER_STACK;
        Ok(())
    }
}

struct Pool {
    classes: Vec<Class>,
    budget: MapBudget,
}

impl Pool {
    fn class(&mut self, size: usize) -> &mut Class {
        let index = match self.classes.iter().position(|c| c.size == size) {
            Some(index) => index,
            None => {
                self.classes.push(Class::new(size));
                self.classes.len() - 1
            }
        };
        &mut self.classes[index]
    }

    fn classes_mut(&mut self) -> impl Iterator<Item = &mut Class> {
        self.classes.iter_mut()
    }
}

/// The process-wide pool, shared by every runtime (see the module docs for what its lock
/// covers).
static POOL: Mutex<Pool> = Mutex::new(Pool {
    classes: Vec::new(),
    budget: MapBudget {
        limit: None,
        measured: 0,
        added: 0,
    },
});

fn pool() -> MutexGuard<'static, Pool> {
    // Nothing panics while holding the lock but allocation failure, which aborts; a poisoned
    // pool is still consistent.
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Allocates a stack of at least `size` usable bytes (rounded up to whole pages, at least
/// [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE)) from the global pool, carving a new one if none
/// is idle.
pub(crate) fn allocate(size: usize) -> io::Result<PooledStack> {
    let size = class_size(size)?;
    let idle = pool().class(size).pop_idle();
    match idle {
        Some(raw) => Ok(PooledStack::new(raw)),
        None => carve(size),
    }
}

/// Returns a stack to the global pool for reuse (the same as dropping it).
pub(crate) fn release(stack: PooledStack) {
    drop(stack);
}

/// Carves a new stack: reserves a slot under the lock, installs its guard outside it.
pub(super) fn carve(size: usize) -> io::Result<PooledStack> {
    let kind = guard_kind();
    let raw = {
        let mut pool = pool();
        if kind == GuardKind::Mprotect {
            pool.budget.take()?;
        }
        let class = pool.class(size);
        match class.unguarded.pop() {
            Some(raw) => raw,
            None => class.next_slot()?,
        }
    };
    if let Err(e) = install_guard(raw, kind) {
        pool().class(size).unguarded.push(raw);
        return Err(sys::mapping_error(e));
    }
    STACKS_ALLOCATED.fetch_add(1, Ordering::Relaxed);
    Ok(PooledStack::new(raw))
}

/// Carves up to `count` new stacks into `into` (madvise guards only; otherwise one, as
/// [`carve`]): the slots are reserved under one lock acquisition and guarded with one
/// syscall per batch outside it, instead of a syscall per stack (measured in
/// docs/performance.md). Where the batched call is refused, each slot is guarded on its own.
/// Fails only if no stack at all could be carved.
pub(super) fn carve_batch(size: usize, count: usize, into: &mut Vec<RawStack>) -> io::Result<()> {
    if guard_kind() != GuardKind::Madvise || count <= 1 || !BATCH_GUARDS.load(Ordering::Relaxed) {
        into.push(carve(size)?.into_raw());
        return Ok(());
    }
    let slots: Vec<RawStack> = {
        let mut pool = pool();
        let class = pool.class(size);
        let mut slots = Vec::with_capacity(count);
        while slots.len() < count {
            match class
                .unguarded
                .pop()
                .map(Ok)
                .unwrap_or_else(|| class.next_slot())
            {
                Ok(raw) => slots.push(raw),
                Err(e) if slots.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        slots
    };
    let regions: Vec<(usize, usize)> = slots
        .iter()
        .map(|raw| (raw.bottom(), raw.chunk.guard))
        .collect();
    // SAFETY: slots that were never handed out (taken under the lock above): ours, no data.
    if unsafe { sys::install_guards(&regions) }.is_ok() {
        // Every stack handed out gets its first frame written at its top: commit that page
        // of the whole batch in one call rather than in a page fault per coroutine start
        // (docs/performance.md, "Stack pages committed in batches").
        let page = super::page_size();
        let tops: Vec<(usize, usize)> = slots.iter().map(|raw| (raw.top() - page, page)).collect();
        // SAFETY: the top page of each slot is usable stack (the guard is at the bottom) of
        // a slot that is still ours and holds no data.
        unsafe { sys::prefault_all(&tops) };
        STACKS_ALLOCATED.fetch_add(slots.len(), Ordering::Relaxed);
        into.extend(slots);
        return Ok(());
    }
    // Not supported by this kernel (remember that), or a partial batch: guard one by one.
    BATCH_GUARDS.store(false, Ordering::Relaxed);
    let mut failed = None;
    for raw in slots {
        match install_guard(raw, GuardKind::Madvise) {
            Ok(()) => {
                STACKS_ALLOCATED.fetch_add(1, Ordering::Relaxed);
                into.push(raw);
            }
            Err(e) => {
                pool().class(size).unguarded.push(raw);
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) if into.is_empty() => Err(sys::mapping_error(e)),
        _ => Ok(()),
    }
}

/// Whether [`carve_batch`] still tries the batched guard call (cleared the first time the
/// kernel refuses it, so an older kernel costs one failed syscall per process, not per batch).
pub(super) static BATCH_GUARDS: AtomicBool = AtomicBool::new(true);

fn install_guard(raw: RawStack, kind: GuardKind) -> io::Result<()> {
    // SAFETY: a slot that was never handed out: ours, holds no data.
    unsafe { sys::install_guard(raw.bottom(), raw.chunk.guard, raw.top(), kind) }
}

/// Returns one stack to the global pool (warm: no syscall; [`trim`] decommits the excess
/// later, off the hot path).
pub(super) fn give_back_one(raw: RawStack) {
    pool().class(raw.size()).warm.push(raw);
    STACKS_POOLED.fetch_add(1, Ordering::Relaxed);
}

/// Moves `stacks[keep..]` (all of one class) to the global pool's warm list.
pub(super) fn give_back(stacks: &mut Vec<RawStack>, keep: usize) {
    let Some(first) = stacks.get(keep) else {
        return;
    };
    let size = first.size();
    let total = stacks.len() - keep;
    pool().class(size).warm.extend(stacks.drain(keep..));
    STACKS_POOLED.fetch_add(total, Ordering::Relaxed);
}

/// How long a stack must stay idle in the warm list before [`trim`] may decommit it.
const TRIM_WINDOW: Duration = Duration::from_millis(200);

/// Decommits (`MADV_DONTNEED`) up to `budget` idle stacks beyond [`WARM_PER_CLASS`] that
/// stayed unused for a whole [`TRIM_WINDOW`] (the warm list's low-water mark), the least
/// recently released first, and moves them to the cold list. The runtime's monitor calls it
/// every tick; it acts once per window. So releasing a stack never makes a syscall, a burst
/// of coroutines reuses warm stacks without page faults, and memory goes back to the kernel
/// shortly after the burst. Returns how many stacks it decommitted.
pub(crate) fn trim(budget: usize) -> usize {
    static LAST_WINDOW: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST_WINDOW.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < TRIM_WINDOW => return 0,
            _ => *last = Some(now),
        }
    }
    let excess: Vec<RawStack> = {
        let mut pool = pool();
        let mut excess = Vec::new();
        for class in pool.classes_mut() {
            let idle_all_window = class.low_water.saturating_sub(WARM_PER_CLASS);
            let take = idle_all_window.min(budget - excess.len());
            // The bottom of the warm stack is the least recently released.
            excess.extend(class.warm.drain(..take));
            class.low_water = class.warm.len();
        }
        excess
    };
    for raw in &excess {
        raw.decommit();
    }
    let trimmed = excess.len();
    let mut pool = pool();
    for raw in excess {
        pool.class(raw.size()).cold.push(raw);
    }
    trimmed
}

/// Moves up to `max` idle stacks of class `size` from the global pool into `into`.
pub(super) fn take_idle(size: usize, into: &mut Vec<RawStack>, max: usize) {
    let mut pool = pool();
    let class = pool.class(size);
    let before = into.len();
    let from_warm = max.min(class.warm.len());
    into.extend(class.warm.drain(class.warm.len() - from_warm..));
    class.low_water = class.low_water.min(class.warm.len());
    let from_cold = (max - from_warm).min(class.cold.len());
    into.extend(class.cold.drain(class.cold.len() - from_cold..));
    STACKS_POOLED.fetch_sub(into.len() - before, Ordering::Relaxed);
}
