//! The Unix overflow handler: a SIGSEGV/SIGBUS handler on an alternate signal stack.
//!
//! [`install_overflow_handler`] saves the previous SIGSEGV and SIGBUS actions and installs
//! [`on_fault`] (`SA_SIGINFO | SA_ONSTACK`). std installs its own handler at startup only if
//! SIGSEGV is still default then; ours must come later and chain to it. The handler runs on
//! the alternate signal stack (the faulting stack has no room left): std gives its threads one
//! when its own handler is installed, and [`ensure_altstack`] gives 64 KiB to a thread without.
//!
//! On a fault, `si_addr` is looked up with [`find_guard`]; anything that is not a guard hit is
//! chained to the previous action (SIG_DFL/SIG_IGN: reinstall it and return, so the fault
//! repeats under it; otherwise call it). The handler does not filter on `si_code`: guard
//! faults from `MADV_GUARD_INSTALL` arrive as `SEGV_MAPERR`, mprotect ones as `SEGV_ACCERR`.

use std::cell::Cell;
use std::mem;
use std::ptr;
use std::sync::{Once, OnceLock};

use libc::{c_int, c_void, siginfo_t};

use super::report_overflow;
use crate::stack::{find_guard, sys};

// ---- the handler --------------------------------------------------------------------------

/// The signals a guard-page hit can raise.
const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The actions that were installed before ours, per entry of [`SIGNALS`]. Set once before our
/// handler is installed; read by the handler (`OnceLock::get` is a single Acquire load).
static PREVIOUS: [OnceLock<libc::sigaction>; 2] = [OnceLock::new(), OnceLock::new()];

/// Installs the overflow handler for SIGSEGV and SIGBUS (once per process; later calls do
/// nothing), saving the previous actions to chain to.
pub(crate) fn install_overflow_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for (&sig, previous) in SIGNALS.iter().zip(&PREVIOUS) {
            // SAFETY: sigaction is plain data; all-zero is a valid (default) action.
            let mut old: libc::sigaction = unsafe { mem::zeroed() };
            // SAFETY: querying the current action (null new action) changes nothing.
            if unsafe { libc::sigaction(sig, ptr::null(), &mut old) } != 0 {
                continue;
            }
            let _ = previous.set(old);
            let handler: unsafe extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = on_fault;
            // SAFETY: as above.
            let mut action: libc::sigaction = unsafe { mem::zeroed() };
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            // SAFETY: `on_fault` is async-signal-safe (see its docs) and its previous action is
            // saved above, before it can run.
            unsafe { libc::sigaction(sig, &action, ptr::null_mut()) };
        }
    });
}

/// The SIGSEGV/SIGBUS handler.
///
/// # Safety
///
/// Only for the kernel to call, as an `SA_SIGINFO` handler: `info` and `ctx` must be the
/// signal's.
unsafe extern "C" fn on_fault(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { fault_address(info) };
    if let Some((chunk, slot)) = find_guard(addr) {
        report_overflow(chunk, slot);
    }
    // SAFETY: forwarded from our caller, the kernel.
    unsafe { chain(sig, info, ctx) };
}

/// Passes a fault that is not ours to the action installed before ours.
///
/// # Safety
///
/// Only from [`on_fault`], with the kernel's arguments.
unsafe fn chain(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let index = SIGNALS.iter().position(|&s| s == sig);
    let Some(previous) = index.and_then(|i| PREVIOUS[i].get()) else {
        // Cannot happen (our handler is installed only after saving); fall back to default.
        // SAFETY: restoring the default action is always valid.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
        return;
    };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Returning re-executes the faulting instruction, which faults again under this action.
        // SAFETY: `previous` is an action the kernel returned to us.
        unsafe { libc::sigaction(sig, previous, ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO, sa_sigaction holds a handler of this signature, installed by
        // someone for this signal; we call it as the kernel would have.
        let f: unsafe extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { mem::transmute(handler) };
        // SAFETY: as above.
        unsafe { f(sig, info, ctx) };
    } else {
        // SAFETY: without SA_SIGINFO, sa_sigaction holds a one-argument handler.
        let f: unsafe extern "C" fn(c_int) = unsafe { mem::transmute(handler) };
        // SAFETY: as above.
        unsafe { f(sig) };
    }
}

/// The faulting address of a SIGSEGV/SIGBUS.
///
/// # Safety
///
/// `info` must point to the siginfo_t of such a signal.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn fault_address(info: *const siginfo_t) -> usize {
    // SAFETY: guaranteed by the caller; si_addr is the union member for these signals.
    unsafe { (*info).si_addr() as usize }
}

/// The faulting address of a SIGSEGV/SIGBUS.
///
/// # Safety
///
/// `info` must point to the siginfo_t of such a signal.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn fault_address(info: *const siginfo_t) -> usize {
    // SAFETY: guaranteed by the caller.
    unsafe { (*info).si_addr as usize }
}

// ---- alternate signal stacks --------------------------------------------------------------

/// Usable size of an alternate signal stack we allocate.
const ALTSTACK_SIZE: usize = 64 * 1024;

/// An alternate signal stack mapped by [`ensure_altstack`], unmapped at thread exit.
struct AltStack {
    /// The mapping: a guard page, then `ALTSTACK_SIZE` bytes.
    mapping: usize,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let sp = self.mapping + sys::page_size();
        // SAFETY: stack_t is plain data; all-zero is valid.
        let mut current: libc::stack_t = unsafe { mem::zeroed() };
        // SAFETY: queries the current alternate stack (null new stack).
        let ret = unsafe { libc::sigaltstack(ptr::null(), &mut current) };
        if ret != 0 || current.ss_flags & libc::SS_ONSTACK != 0 {
            return; // leak it rather than guess
        }
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_sp as usize == sp {
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disables the alternate stack of this thread, which is not running on it.
            if unsafe { libc::sigaltstack(&disable, ptr::null_mut()) } != 0 {
                return;
            }
        }
        // SAFETY: the mapping is ours and no longer this thread's alternate stack (disabled
        // above, or replaced by someone else), so no signal can run on it.
        unsafe { sys::unreserve(self.mapping, self.len) };
    }
}

thread_local! {
    /// The alternate stack `ensure_altstack` gave this thread, freed when the thread exits.
    static THREAD_ALTSTACK: Cell<Option<AltStack>> = const { Cell::new(None) };
}

/// Makes sure the calling thread has an alternate signal stack, so the overflow handler can
/// run after a coroutine on this thread exhausted its stack. Allocates one of 64 KiB (with a
/// guard page), freed at thread exit, if the thread has none (std threads usually do).
///
/// Call at the start of each worker thread, not from a coroutine (it uses a thread-local).
pub(crate) fn ensure_altstack() {
    // SAFETY: stack_t is plain data; all-zero is valid.
    let mut current: libc::stack_t = unsafe { mem::zeroed() };
    // SAFETY: queries the current alternate stack (null new stack).
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
        return;
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let page = sys::page_size();
    let len = page + ALTSTACK_SIZE;
    let Ok(mapping) = sys::reserve(len) else {
        return;
    };
    // SAFETY: the first page of a fresh mapping of ours, holding nothing.
    if unsafe { sys::guard_mprotect(mapping, page) }.is_err() {
        // SAFETY: the fresh mapping is unused.
        unsafe { sys::unreserve(mapping, len) };
        return;
    }
    let stack = AltStack { mapping, len };
    let new = libc::stack_t {
        ss_sp: (mapping + page) as *mut c_void,
        ss_flags: 0,
        ss_size: ALTSTACK_SIZE,
    };
    // SAFETY: `new` describes ALTSTACK_SIZE writable bytes that live until `stack` is dropped,
    // which disables the alternate stack first.
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        return; // `stack` unmaps the mapping: it was never installed
    }
    // If the thread-local is already gone (the thread is exiting), the closure is dropped
    // with `stack`, which disables and unmaps it again.
    let _ = THREAD_ALTSTACK.try_with(|slot| slot.set(Some(stack)));
}
