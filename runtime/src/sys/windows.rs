//! The runtime's Windows platform code.
//!
//! * Per-thread CPU clocks: `GetThreadTimes` (kernel + user time, in 100 ns units). The clock
//!   holds the thread *id*, not a handle, so it stays `Copy` and owns nothing: each reading
//!   opens the thread (`THREAD_QUERY_LIMITED_INFORMATION`), reads and closes it.
//! * The dump's peer address: not available (the dump names sockets by their Unix fd), so
//!   always `None`.
//! * The opt-in dump is triggered by Ctrl-Break (`CTRL_BREAK_EVENT`), the console's
//!   counterpart of SIGQUIT (which a terminal sends with Ctrl-\): a console control handler
//!   sets the flag and reports the event handled, so the process is not terminated.
//! * No prefaulting of fresh allocations: pages fault in on first write.

use std::sync::atomic::Ordering;
use std::sync::Once;

use windows_sys::Win32::Foundation::{CloseHandle, BOOL, FALSE, FILETIME, TRUE};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT};
use windows_sys::Win32::System::Threading::{
    GetCurrentThreadId, GetThreadTimes, OpenThread, THREAD_QUERY_LIMITED_INFORMATION,
};

/// The CPU-time clock of one thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuClock {
    thread_id: u32,
}

impl CpuClock {
    /// The calling thread's clock.
    pub(crate) fn current_thread() -> Option<CpuClock> {
        // SAFETY: no preconditions.
        let thread_id = unsafe { GetCurrentThreadId() };
        Some(CpuClock { thread_id })
    }

    /// CPU time (kernel + user) consumed by the thread, in nanoseconds. The thread must still
    /// be running (the runtime reads worker clocks only while the worker's slot is active):
    /// the id of an exited thread may name another one.
    pub(crate) fn nanos(&self) -> Option<u64> {
        // SAFETY: opening a thread by id has no memory-safety preconditions; failure (the
        // thread is gone) returns null, reported as `None`.
        let thread = unsafe { OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, self.thread_id) };
        if thread.is_null() {
            return None;
        }
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut creation, mut exit, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: `thread` is a live handle with query access; the four out-pointers are live
        // locals.
        let ok =
            unsafe { GetThreadTimes(thread, &mut creation, &mut exit, &mut kernel, &mut user) };
        // SAFETY: the handle was opened above and is closed once.
        unsafe { CloseHandle(thread) };
        (ok != 0).then(|| (ticks(kernel) + ticks(user)) * 100)
    }

    /// Whether the thread is running or waiting for a CPU: not known here (the monitor then
    /// goes by the CPU clock alone).
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        None
    }
}

/// A FILETIME duration in 100 ns ticks.
fn ticks(time: FILETIME) -> u64 {
    (u64::from(time.dwHighDateTime) << 32) | u64::from(time.dwLowDateTime)
}

/// The peer address of a socket: not available on Windows (the dump passes Unix fds).
pub(crate) fn peer_addr(_fd: i32) -> Option<std::net::SocketAddr> {
    None
}

/// The console control handler of the dump: Ctrl-Break requests a dump; every other event
/// (Ctrl-C, close, logoff, shutdown) goes on to the next handler, by default the one that
/// ends the process.
unsafe extern "system" fn on_console_event(event: u32) -> BOOL {
    if event == CTRL_BREAK_EVENT {
        super::DUMP_REQUESTED.store(true, Ordering::SeqCst);
        TRUE
    } else {
        FALSE
    }
}

/// Installs the Ctrl-Break handler of the dump (once per process). Without a console there
/// are no console events, and the call fails harmlessly.
pub(crate) fn install_dump_signal() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: `on_console_event` has the handler signature, lives for the whole program
        // and only stores to an atomic.
        unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) };
    });
}

/// Backs a fresh allocation with memory now: not done on Windows (pages fault in on first
/// write).
pub(crate) fn prefault(_start: *mut u8, _len: usize) {}
