//! The kqueue backend (macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly): Go's
//! `netpoll_kqueue.go`.
//!
//! * `new`: `kqueue()` marked close-on-exec with `fcntl` (macOS has no `kqueue1`), plus
//!   the wake-up: an `EVFILT_USER` event (`EV_ADD | EV_CLEAR`) where the OS has one, a
//!   non-blocking pipe whose read end is watched level-triggered on OpenBSD.
//! * `register`: `EVFILT_READ` and `EVFILT_WRITE` with `EV_ADD | EV_CLEAR` (edge-triggered)
//!   and the token as `udata`, applied with `EV_RECEIPT` so each filter's error is seen.
//! * `select`: `kevent` with a `timespec` (nanosecond precision, no rounding needed). Each
//!   kevent is translated on its own; a read and a write kevent for the same descriptor that
//!   arrive side by side are merged into one [`Event`], others stay separate.
//! * `wake`: `NOTE_TRIGGER` on the user event, or one byte into the pipe.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use crate::flags::kqueue::{event_from_kevent, push_merged};
use crate::{Event, Token};

/// A file descriptor.
pub type RawSource = RawFd;

/// kqueue's read filter does not say whether urgent data arrived.
pub(crate) const REPORTS_PRIORITY: bool = false;

/// The buffer `kevent` fills.
pub(crate) struct RawEvents {
    buf: Vec<libc::kevent>,
}

// SAFETY: a kevent is plain data; its `udata` pointer only carries a token and is never
// dereferenced, so the buffer may move to another thread.
unsafe impl Send for RawEvents {}
// SAFETY: as for `Send`; shared references only read integers.
unsafe impl Sync for RawEvents {}

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

/// A kqueue and its wake-up.
pub(crate) struct Selector {
    kq: OwnedFd,
    waker: Waker,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: kqueue takes no arguments; the result is checked before use.
        let kq = cvt(unsafe { libc::kqueue() })?;
        // SAFETY: `kq` is a fresh descriptor that nothing else owns.
        let kq = unsafe { OwnedFd::from_raw_fd(kq) };
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        cvt(unsafe { libc::fcntl(kq.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        let waker = Waker::new(&kq)?;
        Ok(Selector { kq, waker })
    }

    pub(crate) fn register(&self, fd: RawFd, token: Token) -> io::Result<()> {
        let flags = (libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT) as u32;
        let mut changes = [
            kevent(fd, libc::EVFILT_READ as i32, flags, 0, token.0),
            kevent(fd, libc::EVFILT_WRITE as i32, flags, 0, token.0),
        ];
        // EPIPE: the write filter of a pipe whose reader is gone (macOS). The read filter
        // still reports the end of stream, so the registration stands (as in mio).
        apply(&self.kq, &mut changes, &[libc::EPIPE as i64]).map(drop)
    }

    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        let flags = (libc::EV_DELETE | libc::EV_RECEIPT) as u32;
        let mut changes = [
            kevent(fd, libc::EVFILT_READ as i32, flags, 0, 0),
            kevent(fd, libc::EVFILT_WRITE as i32, flags, 0, 0),
        ];
        // ENOENT for one filter: it was never added (the EPIPE case above). For both: the
        // descriptor was not registered, an error as with epoll.
        let missing = apply(&self.kq, &mut changes, &[libc::ENOENT as i64])?;
        if missing == changes.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(())
    }

    /// Waits once; appends the caller's events to `out` and says whether the wake-up fired.
    pub(crate) fn select(
        &self,
        raw: &mut RawEvents,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        raw.buf.clear();
        let timespec = timeout.map(|timeout| {
            // SAFETY: timespec is plain integers (and padding on some targets): all-zero
            // is a valid value.
            let mut ts: libc::timespec = unsafe { mem::zeroed() };
            ts.tv_sec = timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t;
            ts.tv_nsec = timeout.subsec_nanos() as _;
            ts
        });
        let timespec_ptr = timespec
            .as_ref()
            .map_or(ptr::null(), |ts| ts as *const libc::timespec);
        let max = raw.buf.capacity().min(libc::c_int::MAX as usize);
        // SAFETY: no changes are passed; the kernel writes at most `max` kevents into the
        // buffer, whose capacity is at least `max`; `timespec_ptr` is null or points to a
        // live local.
        let n = cvt(unsafe {
            libc::kevent(
                self.kq.as_raw_fd(),
                ptr::null(),
                0,
                raw.buf.as_mut_ptr(),
                max as _,
                timespec_ptr,
            )
        })?;
        // SAFETY: kevent initialised the first `n` entries, and `n <= max <= capacity`.
        unsafe { raw.buf.set_len(n as usize) };
        let mut woken = false;
        for ev in &raw.buf {
            if self.waker.is_wake(ev) {
                self.waker.reset();
                woken = true;
                continue;
            }
            let event = event_from_kevent(
                ev.filter as i32,
                ev.flags as u32,
                ev.fflags,
                ev.udata as usize,
            );
            push_merged(out, event);
        }
        Ok(woken)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        self.waker.wake(&self.kq)
    }
}

/// The wake-up where kqueue has `EVFILT_USER`: one user event, identifier 0, auto-reset on
/// delivery (`EV_CLEAR`).
#[cfg(not(target_os = "openbsd"))]
struct Waker;

#[cfg(not(target_os = "openbsd"))]
impl Waker {
    const IDENT: RawFd = 0;

    fn new(kq: &OwnedFd) -> io::Result<Waker> {
        let flags = (libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT) as u32;
        let mut change = [kevent(Waker::IDENT, libc::EVFILT_USER as i32, flags, 0, 0)];
        apply(kq, &mut change, &[])?;
        Ok(Waker)
    }

    fn wake(&self, kq: &OwnedFd) -> io::Result<()> {
        let flags = libc::EV_RECEIPT as u32;
        let mut change = [kevent(
            Waker::IDENT,
            libc::EVFILT_USER as i32,
            flags,
            libc::NOTE_TRIGGER,
            0,
        )];
        apply(kq, &mut change, &[]).map(drop)
    }

    fn is_wake(&self, ev: &libc::kevent) -> bool {
        ev.filter == libc::EVFILT_USER && ev.ident == Waker::IDENT as libc::uintptr_t
    }

    fn reset(&self) {
        // `EV_CLEAR` reset the event when it was delivered.
    }
}

/// The wake-up on OpenBSD, whose older releases lack `EVFILT_USER`: a non-blocking pipe;
/// its read end is watched level-triggered, so a byte stays visible until drained.
#[cfg(target_os = "openbsd")]
struct Waker {
    read: OwnedFd,
    write: OwnedFd,
}

#[cfg(target_os = "openbsd")]
impl Waker {
    fn new(kq: &OwnedFd) -> io::Result<Waker> {
        let mut fds = [-1 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the live array.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let flags = (libc::EV_ADD | libc::EV_RECEIPT) as u32;
        let mut change = [kevent(
            read.as_raw_fd(),
            libc::EVFILT_READ as i32,
            flags,
            0,
            0,
        )];
        apply(kq, &mut change, &[])?;
        Ok(Waker { read, write })
    }

    fn wake(&self, _kq: &OwnedFd) -> io::Result<()> {
        let byte = 1u8;
        // SAFETY: writes one byte from a live local.
        let n = unsafe { libc::write(self.write.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        if n >= 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            // A full pipe already wakes the poller.
            e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            e => Err(e),
        }
    }

    fn is_wake(&self, ev: &libc::kevent) -> bool {
        ev.filter == libc::EVFILT_READ && ev.ident == self.read.as_raw_fd() as libc::uintptr_t
    }

    fn reset(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into the live array.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // Empty (EAGAIN) or, impossibly, closed: either way nothing is left.
                return;
            }
        }
    }
}

/// A kevent for a change list. Takes plain integers because the field types differ between
/// the BSDs (NetBSD's `filter` and `flags` are `u32`).
fn kevent(ident: RawFd, filter: i32, flags: u32, fflags: u32, udata: usize) -> libc::kevent {
    // SAFETY: a kevent is integers and a pointer (plus reserved fields on some BSDs): the
    // all-zero value is valid.
    let mut ev: libc::kevent = unsafe { mem::zeroed() };
    ev.ident = ident as libc::uintptr_t;
    ev.filter = filter as _;
    ev.flags = flags as _;
    ev.fflags = fflags;
    ev.udata = udata as *mut libc::c_void;
    ev
}

/// Applies `changes` (each with `EV_RECEIPT`): fails with the first error not in `ignored`,
/// else returns how many changes failed with an ignored error.
fn apply(kq: &OwnedFd, changes: &mut [libc::kevent], ignored: &[i64]) -> io::Result<usize> {
    let n = changes.len();
    let list = changes.as_mut_ptr();
    // SAFETY: the change list and the event list are the same live slice of `n` kevents:
    // with `EV_RECEIPT` the kernel answers each change with one receipt, in place, and
    // never writes more than `n` entries.
    cvt(unsafe { libc::kevent(kq.as_raw_fd(), list, n as _, list, n as _, ptr::null()) })?;
    let mut skipped = 0;
    for receipt in changes.iter() {
        let errno = receipt.data as i64;
        if receipt.flags as u32 & libc::EV_ERROR as u32 == 0 || errno == 0 {
            continue;
        }
        if !ignored.contains(&errno) {
            return Err(io::Error::from_raw_os_error(errno as i32));
        }
        skipped += 1;
    }
    Ok(skipped)
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
    use crate::flags::kqueue as ours;

    #[test]
    fn flag_constants_match_the_os() {
        assert_eq!(ours::EVFILT_READ, libc::EVFILT_READ as i32);
        assert_eq!(ours::EVFILT_WRITE, libc::EVFILT_WRITE as i32);
        assert_eq!(ours::EV_EOF, libc::EV_EOF as u32);
        assert_eq!(ours::EV_ERROR, libc::EV_ERROR as u32);
    }
}
