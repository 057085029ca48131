//! The stack pool's Windows layer: `VirtualAlloc`'d chunks whose stacks grow the way Windows
//! thread stacks do, through a `PAGE_GUARD` region that the kernel moves down page by page.
//!
//! Windows does not overcommit: memory must be *committed* (charged against RAM + page file)
//! before it is touched, and merely *reserved* memory faults. The Unix backend's
//! `MAP_NORESERVE` is therefore replaced by the scheme Windows uses for thread stacks, which
//! corosensei's `DefaultStack` follows too:
//!
//! ```text
//!  slot bottom (TEB.DeallocationStack = Stack::limit())                         slot top
//!  |<------------------ guard_len() ------------------>|<------- usable size ------->|
//!  +-----------+----------------------------------------+-------------------+--------+
//!  | hard page |         reserved: room the soft guard moves into ...      | soft   | committed |
//!  +-----------+----------------------------------------+-------------------+--------+
//! ```
//!
//! * A fresh slot ([`install_guard`]) commits its top [`INITIAL_COMMIT`] bytes read-write and,
//!   below them, [`SOFT_GUARD`] + [`GUARANTEE`] bytes with `PAGE_GUARD`. Everything below stays
//!   reserved; the lowest page (the *hard* guard) is never committed.
//! * Touching a `PAGE_GUARD` page inside the current thread's stack range (the TEB's
//!   `DeallocationStack..StackBase`, which corosensei sets to this slot while a coroutine
//!   runs, from [`teb_fields`]) makes the kernel (and Wine) commit it and move the guard one
//!   page down: the stack grows on demand, like `MAP_NORESERVE`.
//! * When the guard cannot move further without reaching the hard page, the kernel turns the
//!   remaining `GUARANTEE` bytes into ordinary pages and raises `STATUS_STACK_OVERFLOW` on
//!   them: the exception is dispatched on the overflowing stack, and the guarantee is what
//!   the overflow handler (`stack/overflow/windows.rs`) runs on. `guard_len()` covers the
//!   hard page, the soft guard and the guarantee, so the whole usable size is available
//!   before an overflow, as on Unix.
//! * [`decommit`] gives an idle stack's pages back and puts it into the fresh state again.
//! * The TEB's `StackLimit` must match the committed part exactly (see [`teb_fields`]):
//!   [`StackLimit`] remembers it per handed-out stack, and a fresh handle asks `VirtualQuery`
//!   (a few calls, once per coroutine: a reused slot keeps the pages its previous coroutine
//!   committed).
//!
//! There is no mapping limit like Linux's `vm.max_map_count`: the map-count diagnostics
//! report "unknown" and the pool's mprotect-mode budget never applies.

use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use corosensei::stack::StackTebFields;
use windows_sys::Win32::Foundation::{
    ERROR_COMMITMENT_LIMIT, ERROR_NOT_ENOUGH_MEMORY, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::WriteFile;
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE};
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT, MEM_DECOMMIT,
    MEM_RESERVE, PAGE_GUARD, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use crate::stack::GuardKind;

/// Bytes committed read-write at the top of a fresh stack (the first frames of a coroutine).
const INITIAL_COMMIT: usize = 8 * 1024;
/// The soft guard: `PAGE_GUARD` pages just below the committed part, two pages on 64-bit
/// Windows as for thread stacks (a fault may land up to a page into the guard).
const SOFT_GUARD: usize = 2 * 4096;
/// The stack guarantee (the TEB's `GuaranteedStackBytes`): what the kernel leaves for the
/// exception dispatcher and the overflow handler after an overflow. 20 KiB, the value std
/// sets for its own threads with `SetThreadStackGuarantee(0x5000)`.
const GUARANTEE: usize = 0x5000;

/// Returns the system page size (cached after the first call).
pub(crate) fn page_size() -> usize {
    // Relaxed: the value is the same whichever thread computes it; a race only repeats the call.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: SYSTEM_INFO is plain data: all-zero is valid.
    let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live out-parameter of the right type.
    unsafe { GetSystemInfo(&mut info) };
    let page = usize::try_from(info.dwPageSize)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Bytes at the bottom of each slot that are never usable stack: the hard guard page, and the
/// room the soft guard and the guarantee occupy when the stack is fully grown.
pub(crate) fn guard_len() -> usize {
    let page = page_size();
    page + round_up(SOFT_GUARD, page) + round_up(GUARANTEE, page)
}

/// Reserves `len` bytes (a page multiple) of address space and returns its lowest address.
/// Nothing is committed: [`install_guard`] commits each slot's top when it is carved.
pub(crate) fn reserve(len: usize) -> io::Result<usize> {
    // SAFETY: a reservation at a system-chosen address touches no existing memory.
    // Chunks are never released (see `stack/mod.rs`), so there is no `unreserve` here.
    let addr = unsafe { VirtualAlloc(ptr::null(), len, MEM_RESERVE, PAGE_READWRITE) };
    if addr.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(addr as usize)
}

/// Makes the fresh slot `bottom..top` a runnable stack: commits its top [`INITIAL_COMMIT`]
/// bytes and the `PAGE_GUARD` region below them. The lowest `guard` bytes (see
/// [`guard_len`]) are left reserved except where the soft guard starts inside them; the hard
/// page at `bottom` is never committed. `kind` is always `Mprotect` here (there is no madvise
/// guard on Windows) and means nothing more.
///
/// # Safety
///
/// `bottom..top` must be a slot of a chunk made by [`reserve`] that was never handed out, at
/// least `guard + INITIAL_COMMIT` bytes long.
pub(crate) unsafe fn install_guard(
    bottom: usize,
    guard: usize,
    top: usize,
    _kind: GuardKind,
) -> io::Result<()> {
    debug_assert!(top - bottom >= guard + INITIAL_COMMIT);
    let committed = top - INITIAL_COMMIT;
    let soft = soft_guard_len();
    // SAFETY: commits pages of a reserved, unused slot of ours.
    if unsafe {
        VirtualAlloc(
            committed as *const _,
            INITIAL_COMMIT,
            MEM_COMMIT,
            PAGE_READWRITE,
        )
    }
    .is_null()
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; `committed - soft` lies above the hard page because the usable size
    // (at least MIN_STACK_SIZE) exceeds INITIAL_COMMIT and `guard` exceeds `soft`.
    let guarded = unsafe {
        VirtualAlloc(
            (committed - soft) as *const _,
            soft,
            MEM_COMMIT,
            PAGE_READWRITE | PAGE_GUARD,
        )
    };
    if guarded.is_null() {
        let error = io::Error::last_os_error();
        // SAFETY: back to reserved: the slot is retried later from scratch.
        unsafe { VirtualFree(committed as *mut _, INITIAL_COMMIT, MEM_DECOMMIT) };
        return Err(error);
    }
    Ok(())
}

/// Gives back the pages of the idle stack `addr..addr + len` (its usable part) and puts the
/// slot back into its fresh state (as after [`install_guard`]), so it runs again as it is.
///
/// The order makes every step infallible for lack of memory: the fresh soft-guard region is
/// always committed already (the stack grows down contiguously from its initial commit, so
/// those pages are either still guard pages or have become ordinary committed pages), so
/// re-protecting them charges nothing; only then is everything below decommitted. The top
/// [`INITIAL_COMMIT`] bytes stay committed.
///
/// # Safety
///
/// The range must be the usable part of a slot prepared by [`install_guard`] that holds no
/// live data.
pub(crate) unsafe fn decommit(addr: usize, len: usize) {
    let top = addr + len;
    let soft = soft_guard_len();
    let soft_start = top - INITIAL_COMMIT - soft;
    // SAFETY: committed pages of an idle slot of ours (see above); changing their protection
    // back to guard pages affects nothing that runs.
    let regarded = unsafe {
        VirtualAlloc(
            soft_start as *const _,
            soft,
            MEM_COMMIT,
            PAGE_READWRITE | PAGE_GUARD,
        )
    };
    if regarded.is_null() {
        // The stack stays as it is: committed, still growable. Only the memory is not given back.
        return;
    }
    // Everything from the hard page up to the soft guard: decommitting pages that are only
    // reserved is allowed, and the hard page stays reserved.
    let low = top - len - guard_len() + page_size();
    if soft_start > low {
        // SAFETY: pages of an idle slot of ours below its fresh soft guard; nothing lives there.
        unsafe { VirtualFree(low as *mut _, soft_start - low, MEM_DECOMMIT) };
    }
}

/// Batched madvise guards (see the Unix backend): never used here, as the guard kind is
/// never `Madvise` on Windows; fails so that a caller would guard each slot on its own.
///
/// # Safety
///
/// Nothing to uphold: it touches no memory.
pub(crate) unsafe fn install_guards(_regions: &[(usize, usize)]) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Commits several regions at once: no such call here; pages commit on first touch.
///
/// # Safety
///
/// Nothing to uphold: it touches no memory.
pub(crate) unsafe fn prefault_all(_regions: &[(usize, usize)]) {}

/// Whether `MADV_GUARD_INSTALL`-style guards work: not on Windows.
pub(crate) fn madvise_guards_supported() -> bool {
    false
}

/// Whether a failed [`reserve`] ran out of address space or commit, so that a smaller
/// reservation may still succeed.
pub(crate) fn is_out_of_address_space(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(|code| code as u32),
        Some(ERROR_NOT_ENOUGH_MEMORY | ERROR_COMMITMENT_LIMIT)
    )
}

/// Turns a failed `VirtualAlloc` into an error a user can act on.
pub(crate) fn mapping_error(err: io::Error) -> io::Error {
    if !is_out_of_address_space(&err) {
        return err;
    }
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "coronet: cannot allocate a coroutine stack: out of address space or of commit \
             (RAM + page file): {err}; use smaller/fewer coroutines or a larger page file"
        ),
    )
}

/// Number of memory mappings of this process: not a limited resource on Windows.
pub(crate) fn mapping_count() -> Option<usize> {
    None
}

/// The per-process mapping limit: none on Windows.
pub(crate) fn max_map_count() -> Option<usize> {
    None
}

/// Writes `bytes` to stderr with `WriteFile`: no lock, no allocation, usable from the
/// overflow handler. Gives up silently on an error (there is nowhere to report it).
pub(crate) fn write_stderr_raw(bytes: &[u8]) {
    // SAFETY: GetStdHandle has no preconditions.
    let handle = unsafe { GetStdHandle(STD_ERROR_HANDLE) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let chunk = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let mut written = 0u32;
        // SAFETY: writes from a live buffer of at least `chunk` bytes into a live counter; no
        // overlapped I/O.
        let ok = unsafe { WriteFile(handle, rest.as_ptr(), chunk, &mut written, ptr::null_mut()) };
        if ok == 0 || written == 0 {
            return;
        }
        rest = &rest[written as usize..];
    }
}

/// The Thread Environment Block fields of the stack `bottom..top` whose committed part ends at
/// `limit` (corosensei installs them on every switch in, and restores the thread's on the way
/// out).
///
/// `StackLimit` must be exact: the unwinder rejects frames below it ("frame not in stack
/// limits", so a panic could not unwind), and MSVC's `__chkstk` skips probing above it (a
/// limit below the committed part would let a large frame jump over the guard).
pub(crate) fn teb_fields(bottom: usize, top: usize, limit: usize) -> StackTebFields {
    StackTebFields {
        StackBase: top,
        StackLimit: limit,
        DeallocationStack: bottom,
        GuaranteedStackBytes: round_up(GUARANTEE, page_size()),
    }
}

/// The TEB `StackLimit` of one handed-out stack: unknown (0) until a coroutine first runs on
/// it, then what corosensei reports each time the coroutine is switched out (the kernel moves
/// it down as the stack grows). A slot keeps its committed pages from one coroutine to the
/// next (until [`decommit`]), so a fresh handle asks the memory manager where they end.
#[derive(Default)]
pub(crate) struct StackLimit(Cell<usize>);

impl StackLimit {
    /// The limit of the stack `bottom..top`, looked up on first use.
    pub(crate) fn get(&self, bottom: usize, top: usize) -> usize {
        let known = self.0.get();
        if known != 0 {
            return known;
        }
        let limit = committed_limit(bottom, top);
        self.0.set(limit);
        limit
    }

    /// Records the limit the TEB held when the coroutine was switched out.
    pub(crate) fn set(&self, limit: usize) {
        self.0.set(limit);
    }
}

/// The lowest address of the read-write committed part of the slot `bottom..top`: walks the
/// regions `VirtualQuery` reports from the bottom up (reserved, then `PAGE_GUARD`, then
/// read-write up to `top`). Falls back to the fresh limit if the walk finds no such region,
/// which cannot happen for a slot prepared by [`install_guard`].
fn committed_limit(bottom: usize, top: usize) -> usize {
    let mut addr = bottom;
    while addr < top {
        // SAFETY: MEMORY_BASIC_INFORMATION is plain data: all-zero is valid.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: queries an address of our own reservation into a live buffer of the size
        // passed; the call reads no memory at `addr`.
        let n = unsafe {
            VirtualQuery(
                addr as *const _,
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        if n == 0 {
            break;
        }
        if info.State == MEM_COMMIT && info.Protect == PAGE_READWRITE {
            return addr;
        }
        addr = info.BaseAddress as usize + info.RegionSize;
    }
    top - INITIAL_COMMIT
}

/// The soft guard and the guarantee: the `PAGE_GUARD` region below a fresh stack's commit.
fn soft_guard_len() -> usize {
    let page = page_size();
    round_up(SOFT_GUARD, page) + round_up(GUARANTEE, page)
}

fn round_up(value: usize, page: usize) -> usize {
    (value + page - 1) & !(page - 1)
}
