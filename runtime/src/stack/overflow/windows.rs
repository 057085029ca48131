//! The Windows overflow handler: a vectored exception handler.
//!
//! Windows dispatches an exception on the faulting thread's own stack. For a coroutine that is
//! the coroutine's stack, whose Thread Environment Block fields corosensei installed (see
//! `stack/sys/windows.rs`), so the kernel (or Wine) grows it through its `PAGE_GUARD` pages and,
//! when it is exhausted, raises `STATUS_STACK_OVERFLOW` with the guarantee (20 KiB) turned into
//! ordinary pages for the dispatcher and this handler. No alternate stack is needed:
//! [`ensure_altstack`] does nothing.
//!
//! [`on_exception`] is installed first in the vectored handler list (std's own, which prints
//! "thread '...' has overflowed its stack", was installed at startup and runs after ours). For
//! `STATUS_STACK_OVERFLOW` or an access violation whose address lies in a coroutine stack's
//! guard region ([`find_guard`]) it writes the overflow message and aborts; every other
//! exception continues its search, so std's handler and structured exception handling see it
//! exactly as without us.

use std::sync::Once;

use windows_sys::Win32::Foundation::{EXCEPTION_ACCESS_VIOLATION, STATUS_STACK_OVERFLOW};
use windows_sys::Win32::System::Diagnostics::Debug::{
    AddVectoredExceptionHandler, EXCEPTION_CONTINUE_SEARCH, EXCEPTION_POINTERS,
};

use super::report_overflow;
use crate::stack::find_guard;

/// Installs the overflow handler (once per process; later calls do nothing).
pub(crate) fn install_overflow_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: `on_exception` has the handler signature, lives for the whole program and
        // only reads the exception record it is given (see its docs). 1: call it first.
        unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) };
    });
}

/// Nothing to do on Windows: the exception is dispatched on the overflowing stack itself, in
/// the room the stack guarantee keeps (see the module documentation).
pub(crate) fn ensure_altstack() {}

/// The vectored exception handler.
///
/// Both an overflow and a direct hit of the never-committed hard guard page carry the faulting
/// data address in `ExceptionInformation[1]` (as access violations do). Allocation-free and
/// lock-free: it may run with only the stack guarantee left.
///
/// # Safety
///
/// Only for the system to call, with valid exception pointers.
unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
    // SAFETY: the system passes valid pointers to a live exception record.
    let record = unsafe { &*(*info).ExceptionRecord };
    let code = record.ExceptionCode;
    if (code == STATUS_STACK_OVERFLOW || code == EXCEPTION_ACCESS_VIOLATION)
        && record.NumberParameters >= 2
    {
        if let Some((chunk, slot)) = find_guard(record.ExceptionInformation[1]) {
            report_overflow(chunk, slot);
        }
    }
    EXCEPTION_CONTINUE_SEARCH
}
