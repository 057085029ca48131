//! The operating-system layer of the stack pool: reserving chunks, preparing a slot's guard,
//! decommitting idle stacks, and explaining a failed mapping.
//!
//! The one platform switch of the stack pool: `unix.rs` (mmap, mprotect/madvise guards) or
//! `windows.rs` (VirtualAlloc, `PAGE_GUARD` stack growth). Both export the same items:
//!
//! | item | what it does |
//! |------|--------------|
//! | `page_size()` | the system page size |
//! | `guard_len()` | bytes at the bottom of each slot that are never usable stack |
//! | `reserve(len)` | address space for a chunk (Unix also `unreserve`, for probes and signal stacks) |
//! | `install_guard(bottom, guard, top, kind)` | makes a fresh slot a runnable stack with its guard |
//! | `install_guards(regions)` | madvise guards for a batch of slots in one call, where the kernel can |
//! | `prefault_all(regions)` | commits a batch's top pages in one call, where the kernel can (a hint) |
//! | `decommit(addr, len)` | gives back the pages of an idle stack; the slot stays runnable |
//! | `madvise_guards_supported()` | whether `GuardKind::Madvise` works (never on Windows) |
//! | `is_out_of_address_space(&err)` | a reservation failed for lack of room: try a smaller chunk |
//! | `mapping_error(err)` / `mapping_count()` / `max_map_count()` | the map-limit diagnostics |
//! | `write_stderr_raw(bytes)` | writes from a fault handler: no lock, no allocation |
//! | `teb_fields(..)` (Windows) | the Thread Environment Block fields corosensei switches |
//!
//! The policy (which guard mechanism, when to decommit, how much headroom to keep) lives in
//! `mod.rs` and `pool.rs`; the portable message builder [`map_limit_error`] lives here.

use std::io;

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(windows, path = "windows.rs")]
mod imp;

pub(super) use imp::*;

/// The error for "no more mappings": `in_use` and `limit` when known, `headroom` mappings that
/// the pool refuses to take because malloc and the rest of the program need them.
///
/// Builds the message with small allocations only: when this runs, large ones may fail.
pub(super) fn map_limit_error(
    in_use: Option<usize>,
    limit: Option<usize>,
    headroom: usize,
) -> io::Error {
    let near_limit = match (in_use, limit) {
        (Some(n), Some(max)) => n + headroom + 64 >= max,
        _ => true,
    };
    let limit_text = limit.map_or_else(|| "?".to_string(), |max| max.to_string());
    let msg = if near_limit {
        let in_use = in_use.map_or_else(String::new, |n| format!("; {n} in use"));
        let kept = if headroom > 0 {
            format!(", {headroom} kept free for the allocator")
        } else {
            String::new()
        };
        format!(
            "coronet: cannot map a coroutine stack: the process reached vm.max_map_count \
             ({limit_text} mappings{in_use}{kept}); raise it with `sysctl -w vm.max_map_count=...` \
             or use smaller/fewer coroutines"
        )
    } else {
        let in_use = in_use.map_or_else(|| "?".to_string(), |n| n.to_string());
        format!(
            "coronet: cannot map a coroutine stack: out of memory or address space \
             ({in_use} of vm.max_map_count={limit_text} mappings in use)"
        )
    };
    io::Error::new(io::ErrorKind::OutOfMemory, msg)
}
