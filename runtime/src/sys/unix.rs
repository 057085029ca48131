//! The runtime's Unix platform code.
//!
//! * Per-thread CPU clocks: `pthread_getcpuclockid` where POSIX offers it (Linux, Android,
//!   FreeBSD); elsewhere (macOS, the other BSDs) the clock is unavailable and the monitor
//!   treats a stuck worker as blocked, the conservative choice.
//! * The peer address of a socket fd (`getpeername`), for the dump.
//! * The SIGQUIT handler of the opt-in signal dump: it only sets a flag.
//! * Prefaulting a fresh allocation (Linux only).

/// The CPU-time clock of one thread.
#[derive(Debug)]
pub(crate) struct CpuClock {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    id: libc::clockid_t,
    /// /proc/self/task/TID/stat of the thread, opened once when the thread starts (before
    /// any user code), so that reading its scheduler state never takes a descriptor the
    /// program may need (a process at its descriptor limit must not lose one to us).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    stat: Option<std::fs::File>,
}

impl CpuClock {
    /// The calling thread's clock, if the platform has one.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    pub(crate) fn current_thread() -> Option<CpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is the calling thread, alive; `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(CpuClock {
            id,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            // SAFETY: gettid has no preconditions.
            stat: std::fs::File::open(format!("/proc/self/task/{}/stat", unsafe {
                libc::gettid()
            }))
            .ok(),
        })
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

    /// Whether the thread is running or waiting for a CPU (scheduler state `R`), as opposed
    /// to sleeping in the kernel: its CPU clock may stand still for a whole tick on a
    /// machine with more runnable threads than cores, and then it is not blocked. Linux:
    /// field 3 of /proc/self/task/TID/stat; `None` where unknown.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 512];
        let n = self.stat.as_ref()?.read_at(&mut buf, 0).ok()?;
        let stat = std::str::from_utf8(&buf[..n]).ok()?;
        // "TID (comm) S ...": the comm may hold spaces and parentheses; the state follows
        // the last ')'.
        let state = stat
            .get(stat.rfind(')')? + 1..)?
            .trim_start()
            .chars()
            .next()?;
        Some(state == 'R')
    }

    /// Whether the thread is running or waiting for a CPU: unknown here.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        None
    }
}

/// The peer address of socket `fd`, if it is a connected IPv4/IPv6 socket.
pub(crate) fn peer_addr(fd: i32) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    // SAFETY: an all-zero sockaddr_storage is a valid (empty) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are valid out-pointers of the advertised size; a stale or
    // non-socket fd makes the call fail, which we report as `None`.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let addr: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(addr.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let addr: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

extern "C" fn on_sigquit(_signal: libc::c_int) {
    // Async-signal-safe: one atomic store. The dump itself runs on the monitor thread.
    super::DUMP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Installs the SIGQUIT handler of the signal dump (once per process).
pub(crate) fn install_dump_signal() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: an all-zero sigaction is a valid starting value; we set the handler and an
        // empty mask, and `on_sigquit` only performs an atomic store (async-signal-safe).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigquit as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGQUIT, &action, std::ptr::null_mut());
        }
    });
}

/// Backs the whole pages inside `len` bytes at `start` with memory now, in one system call,
/// instead of one page fault per page at the first write (`MADV_POPULATE_WRITE`, Linux 5.14).
/// Only a hint: on an older kernel the call fails and the pages fault in on first write, as
/// without it. The contents are unchanged.
#[cfg(target_os = "linux")]
pub(crate) fn prefault(start: *mut u8, len: usize) {
    let page = crate::stack::page_size();
    let first = (start as usize).next_multiple_of(page);
    let end = (start as usize + len) / page * page;
    if end > first {
        // SAFETY: [first, end) is the caller's allocation rounded inwards to whole pages, so
        // it is mapped and no other mapping is touched; populating writes nothing.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                end - first,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }
}

/// Backs a fresh allocation with memory now: no such call here; pages fault in on first
/// write.
#[cfg(not(target_os = "linux"))]
pub(crate) fn prefault(_start: *mut u8, _len: usize) {}
