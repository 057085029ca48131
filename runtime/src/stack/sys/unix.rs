//! The stack pool's Unix layer: mmap'd chunks, guard pages by `madvise(MADV_GUARD_INSTALL)` or
//! `mprotect(PROT_NONE)`, `madvise` to decommit, `/proc` for the map-limit diagnostics.
//!
//! Every function here is a thin wrapper over one syscall (or one file read). The policy (which
//! guard mechanism, when to decommit, how much headroom to keep) lives in `mod.rs`. Linux-only
//! pieces are the `#[cfg(target_os = "linux")]` helpers at the bottom; other Unix systems get
//! the portable fallback of each (mprotect guards, `MADV_FREE`, no map-count diagnostics).

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::map_limit_error;
use crate::stack::GuardKind;

/// Returns the system page size (cached after the first call).
pub(crate) fn page_size() -> usize {
    // Relaxed: the value is the same whichever thread computes it; a race only repeats sysconf.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(raw)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// What Windows remembers per stack (its TEB `StackLimit`); nothing on Unix. (Not a unit
/// struct, so that `PooledStack::new` builds both backends' with `default()`.)
#[derive(Default)]
pub(crate) struct StackLimit(());

/// Bytes at the bottom of each slot that are never usable stack: one guard page.
pub(crate) fn guard_len() -> usize {
    page_size()
}

/// Reserves `len` bytes (a page multiple) of private, readable and writable, lazily committed
/// memory and returns its lowest address.
pub(crate) fn reserve(len: usize) -> io::Result<usize> {
    // SAFETY: an anonymous mapping at a kernel-chosen address touches no existing memory.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            map_flags(),
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(addr as usize)
}

/// Unmaps a region returned by [`reserve`] that was never handed out.
///
/// # Safety
///
/// `addr..addr + len` must be a whole mapping made by [`reserve`], with no reference to its
/// memory left anywhere.
pub(crate) unsafe fn unreserve(addr: usize, len: usize) {
    // SAFETY: the caller guarantees the range is an unused mapping of ours.
    let ret = unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    debug_assert_eq!(ret, 0, "munmap of an unused chunk failed");
}

/// Makes the fresh slot `bottom..top` a stack: its lowest `guard` bytes become a guard region
/// of `kind`. The rest of the slot is already readable and writable (committed lazily by the
/// kernel). A madvise guard the kernel refuses for this mapping (`EINVAL`: e.g. `mlockall`
/// made it `VM_LOCKED`) falls back to mprotect.
///
/// # Safety
///
/// `bottom..top` must be a slot of a chunk made by [`reserve`] that was never handed out.
pub(crate) unsafe fn install_guard(
    bottom: usize,
    guard: usize,
    _top: usize,
    kind: GuardKind,
) -> io::Result<()> {
    if kind == GuardKind::Madvise {
        // SAFETY: the guard range of a slot that was never handed out: ours, holds no data.
        match unsafe { guard_madvise(bottom, guard) } {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            result => return result,
        }
    }
    // SAFETY: as above.
    unsafe { guard_mprotect(bottom, guard) }
}

/// Installs madvise guards on several regions with one `process_madvise` call per
/// [`VECTORED_MAX`] regions (Linux 6.15+: `PIDFD_SELF_THREAD_GROUP` names the calling
/// process without a descriptor, so it stays right after `fork`, and the kernel accepts any
/// advice for it).
/// Fails as a whole where the kernel refuses (older kernels: `EBADF`/`EINVAL`), or when a
/// call advised only part of its regions; the caller then guards each region on its own
/// (installing a guard twice is harmless).
///
/// # Safety
///
/// Every region must lie in a mapping made by [`reserve`] and hold no live data.
pub(crate) unsafe fn install_guards(regions: &[(usize, usize)]) -> io::Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { advise_all(regions, Advice::GuardInstall) }
}

/// Commits the pages of several regions at once (`MADV_POPULATE_WRITE` through
/// `process_madvise`, where [`install_guards`] works): the page each fresh stack's first
/// frame will be written to, in one call per batch instead of one page fault per stack.
/// Best effort: where the kernel refuses, the first write faults the page in as before.
///
/// # Safety
///
/// Every region must lie in the usable part of a slot of a mapping made by [`reserve`] (not a
/// guard) and hold no live data: populating writes nothing, but a region that belongs to a
/// running stack would be an accounting error, not a data race.
pub(crate) unsafe fn prefault_all(regions: &[(usize, usize)]) {
    // SAFETY: forwarded from the caller. Failure only leaves the pages to fault in.
    let _ = unsafe { advise_all(regions, Advice::PopulateWrite) };
}

/// `process_madvise(self, regions, advice)`, [`VECTORED_MAX`] regions per call; fails unless
/// every byte of every region was advised.
///
/// # Safety
///
/// `advice` must be sound for every region (see the callers).
unsafe fn advise_all(regions: &[(usize, usize)], advice: Advice) -> io::Result<()> {
    for batch in regions.chunks(VECTORED_MAX) {
        let iov: Vec<libc::iovec> = batch
            .iter()
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        let want: usize = batch.iter().map(|&(_, len)| len).sum();
        // SAFETY: forwarded from the caller; `iov` is a live array of `iov.len()` entries.
        let advised = unsafe { process_madvise_self(&iov, advice) }?;
        if advised != want {
            return Err(io::Error::other(
                "process_madvise advised part of the regions",
            ));
        }
    }
    Ok(())
}

/// Regions per `process_madvise` call (the kernel's `UIO_MAXIOV`).
const VECTORED_MAX: usize = 1024;

/// What [`advise_all`] asks of the kernel.
#[derive(Clone, Copy)]
enum Advice {
    /// `MADV_GUARD_INSTALL`: the regions become guards.
    GuardInstall,
    /// `MADV_POPULATE_WRITE`: the regions' pages are committed now.
    PopulateWrite,
}

/// `process_madvise(PIDFD_SELF_THREAD_GROUP, iov, advice)`: bytes advised.
///
/// # Safety
///
/// `advice` must be sound for every region of `iov` (see [`advise_all`]).
#[cfg(target_os = "linux")]
unsafe fn process_madvise_self(iov: &[libc::iovec], advice: Advice) -> io::Result<usize> {
    /// `PIDFD_SELF_THREAD_GROUP` from `<linux/pidfd.h>` (Linux 6.15): the calling process.
    const PIDFD_SELF_THREAD_GROUP: libc::c_int = -10001;
    let advice = match advice {
        Advice::GuardInstall => MADV_GUARD_INSTALL,
        Advice::PopulateWrite => libc::MADV_POPULATE_WRITE,
    };
    loop {
        // SAFETY: the kernel reads `iov.len()` iovecs from a live array; what it does to the
        // regions is the caller's responsibility.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF_THREAD_GROUP,
                iov.as_ptr(),
                iov.len(),
                advice,
                0,
            )
        };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// # Safety
///
/// Nothing to uphold: there is no such call here, so this always fails.
#[cfg(not(target_os = "linux"))]
unsafe fn process_madvise_self(_iov: &[libc::iovec], _advice: Advice) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether a failed [`reserve`] ran out of address space (`ENOMEM`), so that a smaller
/// reservation may still succeed.
pub(crate) fn is_out_of_address_space(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOMEM)
}

/// Writes `bytes` to stderr with write(2): async-signal-safe, no lock, no allocation. Gives
/// up silently on an error other than `EINTR` (there is nowhere to report it).
pub(crate) fn write_stderr_raw(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: writes from a live buffer of `rest.len()` bytes; write(2) is signal-safe.
        let n = unsafe { libc::write(libc::STDERR_FILENO, rest.as_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => rest = &rest[n..],
            _ if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// Makes `addr..addr + len` a guard region with `madvise(MADV_GUARD_INSTALL)`: any access
/// faults with SIGSEGV, the mapping is not split, and the guard survives `MADV_DONTNEED`.
/// Fails with `EINVAL` where the kernel lacks it (before Linux 6.13, other systems).
///
/// # Safety
///
/// The range must lie in a mapping made by [`reserve`] and hold no live data.
pub(crate) unsafe fn guard_madvise(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { madvise_guard_install(addr, len) }
}

/// Makes `addr..addr + len` a guard region with `mprotect(PROT_NONE)`. This splits the
/// mapping: one more VMA per guard (two per stack, as the RW parts on either side never merge).
///
/// # Safety
///
/// The range must lie in a mapping made by [`reserve`] and hold no live data.
pub(crate) unsafe fn guard_mprotect(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is ours and unused; PROT_NONE only removes access.
    if unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Tells the kernel the contents of `addr..addr + len` are no longer needed, so its pages stop
/// counting towards RSS. Guard pages inside the range (of either kind) stay guards.
///
/// # Safety
///
/// The range must lie in a mapping made by [`reserve`] and hold no live data: on Linux it reads
/// back as zeros afterwards.
pub(crate) unsafe fn decommit(addr: usize, len: usize) {
    // SAFETY: forwarded from the caller. Failure only means the pages stay resident.
    let _ = unsafe { libc::madvise(addr as *mut libc::c_void, len, DECOMMIT_ADVICE) };
}

/// Probes whether `madvise(MADV_GUARD_INSTALL)` works, on a throwaway two-page mapping.
///
/// The probe mapping is unmapped afterwards; it guarded nothing, so the hole it leaves is
/// harmless (unlike a stack's guard turned into a hole).
pub(crate) fn madvise_guards_supported() -> bool {
    let page = page_size();
    let Ok(addr) = reserve(2 * page) else {
        return false;
    };
    // SAFETY: the probe mapping was just made and holds nothing.
    let supported = unsafe { guard_madvise(addr, page) }.is_ok();
    // SAFETY: the probe mapping is ours and nothing refers to it.
    unsafe { unreserve(addr, 2 * page) };
    supported
}

/// Turns a failed mmap/mprotect/madvise into the error a user can act on. `ENOMEM` almost
/// always means the process reached `vm.max_map_count`; the message says so, with numbers.
pub(crate) fn mapping_error(err: io::Error) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return err;
    }
    map_limit_error(mapping_count(), max_map_count(), 0)
}

/// Number of memory mappings of this process (lines of `/proc/self/maps`), if known.
/// Reads through a fixed stack buffer: no allocation proportional to the map count.
pub(crate) fn mapping_count() -> Option<usize> {
    count_lines("/proc/self/maps")
}

/// The kernel's per-process mapping limit (`vm.max_map_count`), if known.
pub(crate) fn max_map_count() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    text.trim().parse().ok()
}

fn count_lines(path: &str) -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 8192];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

// ---- platform helpers ---------------------------------------------------------------------

/// mmap flags for a chunk. Linux: `MAP_NORESERVE` (no commit charge for untouched stack) and
/// `MAP_STACK` (since 6.7 it also keeps transparent huge pages off the stacks, which would turn
/// a 4 KiB touch into 2 MiB of RSS).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn map_flags() -> libc::c_int {
    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK
}

/// mmap flags for a chunk on other Unix systems (OpenBSD insists on `MAP_STACK` for stacks).
#[cfg(target_os = "openbsd")]
fn map_flags() -> libc::c_int {
    libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_STACK
}

/// mmap flags for a chunk on other Unix systems.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "openbsd")))]
fn map_flags() -> libc::c_int {
    libc::MAP_PRIVATE | libc::MAP_ANON
}

/// Linux frees the pages at once; elsewhere `MADV_FREE` lets the kernel reclaim them lazily.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DECOMMIT_ADVICE: libc::c_int = libc::MADV_DONTNEED;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DECOMMIT_ADVICE: libc::c_int = libc::MADV_FREE;

/// `MADV_GUARD_INSTALL` from `<linux/mman.h>` (Linux 6.13); not yet in the libc crate.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// # Safety
///
/// See [`guard_madvise`].
#[cfg(target_os = "linux")]
unsafe fn madvise_guard_install(addr: usize, len: usize) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        // SAFETY: the caller guarantees the range is ours and unused; installing a guard only
        // removes access to it (and discards its contents).
        let ret = unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        attempts += 1;
        // EINTR/EAGAIN: interrupted, or raced with a page fault in the range; try again.
        match err.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) if attempts < 100 => continue,
            _ => return Err(err),
        }
    }
}

/// # Safety
///
/// See [`guard_madvise`]; there is no such call here, so this always fails.
#[cfg(not(target_os = "linux"))]
unsafe fn madvise_guard_install(_addr: usize, _len: usize) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}
