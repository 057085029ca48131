//! Per-thread CPU clocks, for the monitor to tell a worker *blocked* in a syscall (its CPU
//! time stands still: start a spare worker) from one *busy* in a long computation (its CPU
//! time advances: a spare thread would only oversubscribe the cores).
//!
//! Platform code lives here only: `pthread_getcpuclockid` where POSIX offers it; elsewhere
//! (macOS, Windows) the clock is unavailable and the monitor treats a stuck worker as
//! blocked, which is the conservative choice (ready coroutines keep running).

/// The CPU-time clock of one thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuClock {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    id: libc::clockid_t,
}

impl CpuClock {
    /// The calling thread's clock, if the platform has one.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    pub(crate) fn current_thread() -> Option<CpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is the calling thread, alive; `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(CpuClock { id })
    }

    /// The calling thread's clock, if the platform has one.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    pub(crate) fn current_thread() -> Option<CpuClock> {
        None
    }

    /// CPU time consumed by the thread, in nanoseconds. The thread must still be running
    /// (the runtime reads worker clocks only while the worker's slot is active).
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    pub(crate) fn nanos(&self) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; a clock id of an exited thread makes the call
        // fail with EINVAL, which we report as `None`.
        let rc = unsafe { libc::clock_gettime(self.id, &mut ts) };
        (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    /// CPU time consumed by the thread, in nanoseconds.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    pub(crate) fn nanos(&self) -> Option<u64> {
        None
    }
}
