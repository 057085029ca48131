//! The epoll backend (Linux, Android): Go's `netpoll_epoll.go`.
//!
//! * `new`: `epoll_create1(EPOLL_CLOEXEC)` and an `eventfd(EFD_CLOEXEC | EFD_NONBLOCK)`
//!   registered level-triggered for `EPOLLIN` under the reserved wake token.
//! * `register`: `EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET` with the token as `data.u64`.
//! * `select`: `epoll_wait` with the timeout rounded *up* to whole milliseconds (so it never
//!   returns before the caller's deadline); the eventfd is drained when it fires.
//! * `wake`: writes 1 to the eventfd (`EAGAIN`, a saturated counter, is a pending wake-up).
//!
//! `epoll_pwait2` would give nanosecond timeouts; milliseconds rounded up meet the contract
//! and keep one code path for every kernel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::flags::epoll::{event_from_epoll, EPOLLIN, INTEREST};
use crate::{Event, Token, WAKE_TOKEN};

/// A file descriptor.
pub type RawSource = RawFd;

/// Urgent (out-of-band) TCP data is reported: `EPOLLPRI` is in the interest set.
pub(crate) const REPORTS_PRIORITY: bool = true;

/// The buffer `epoll_wait` fills.
pub(crate) struct RawEvents {
    buf: Vec<libc::epoll_event>,
}

impl RawEvents {
    pub(crate) fn with_capacity(cap: usize) -> RawEvents {
        RawEvents {
            buf: Vec::with_capacity(cap),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// An epoll instance and its wake-up eventfd.
pub(crate) struct Selector {
    epoll: OwnedFd,
    event_fd: OwnedFd,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epoll` is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let event_fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `event_fd` is a fresh descriptor that nothing else owns.
        let event_fd = unsafe { OwnedFd::from_raw_fd(event_fd) };
        let selector = Selector { epoll, event_fd };
        // Level-triggered, as Go: a wake-up stays visible until `select` drains it.
        selector.ctl(
            libc::EPOLL_CTL_ADD,
            selector.event_fd.as_raw_fd(),
            EPOLLIN,
            WAKE_TOKEN.0 as u64,
        )?;
        Ok(selector)
    }

    pub(crate) fn register(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, INTEREST, token.0 as u64)
    }

    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        // Linux before 2.6.9 wants a non-null event even for DEL; `ctl` always passes one.
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits once; appends the caller's events to `out` and says whether the wake-up fired.
    pub(crate) fn select(
        &self,
        raw: &mut RawEvents,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        raw.buf.clear();
        let max = i32::try_from(raw.buf.capacity()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `max` entries, and `max` is at most the
        // buffer's capacity; the pointer is valid for that many writes.
        let n = cvt(unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                raw.buf.as_mut_ptr(),
                max,
                timeout_ms(timeout),
            )
        })?;
        // SAFETY: epoll_wait initialised the first `n` entries, and `n <= max <= capacity`.
        unsafe { raw.buf.set_len(n as usize) };
        let mut woken = false;
        for ev in &raw.buf {
            // Copy the fields out: `epoll_event` is packed on x86-64, so no references.
            let (flags, data) = (ev.events, ev.u64);
            if data == WAKE_TOKEN.0 as u64 {
                self.drain_wake();
                woken = true;
            } else {
                out.push(event_from_epoll(flags, data));
            }
        }
        Ok(woken)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local; eventfd takes exactly 8.
        let n = unsafe {
            libc::write(
                self.event_fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n >= 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            // A saturated counter already wakes the poller.
            e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            e => Err(e),
        }
    }

    fn drain_wake(&self) {
        let mut counter: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local. The result is ignored: `EAGAIN`
        // means another poll drained it first, and the eventfd cannot fail otherwise.
        unsafe {
            libc::read(
                self.event_fd.as_raw_fd(),
                (&mut counter as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, flags: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: data,
        };
        // SAFETY: `event` is a live local the kernel only reads.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }
}

/// The epoll timeout: -1 for forever, else milliseconds rounded up (a 1 µs timeout must not
/// become a busy 0) and clamped to `i32::MAX` (the caller resumes a clamped wait).
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(timeout) => {
            let ms = timeout.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::epoll as ours;

    #[test]
    fn flag_constants_match_the_kernel() {
        assert_eq!(ours::EPOLLIN, libc::EPOLLIN as u32);
        assert_eq!(ours::EPOLLPRI, libc::EPOLLPRI as u32);
        assert_eq!(ours::EPOLLOUT, libc::EPOLLOUT as u32);
        assert_eq!(ours::EPOLLERR, libc::EPOLLERR as u32);
        assert_eq!(ours::EPOLLHUP, libc::EPOLLHUP as u32);
        assert_eq!(ours::EPOLLRDHUP, libc::EPOLLRDHUP as u32);
        assert_eq!(ours::EPOLLET, libc::EPOLLET as u32);
    }

    #[test]
    fn timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(30))), 30);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }
}
