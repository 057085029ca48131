//! kqueue's `struct kevent` fields (`<sys/event.h>`) into an [`Event`].
//!
//! kqueue reports the read and write filters of one descriptor as separate kevents; each is
//! translated on its own and the backend merges neighbours with the same token.

use crate::{Event, Token};

// NetBSD numbers its filters from zero; the other BSDs and Apple count down from -1.
#[cfg(not(target_os = "netbsd"))]
pub(crate) const EVFILT_READ: i32 = -1;
#[cfg(not(target_os = "netbsd"))]
pub(crate) const EVFILT_WRITE: i32 = -2;
#[cfg(target_os = "netbsd")]
pub(crate) const EVFILT_READ: i32 = 0;
#[cfg(target_os = "netbsd")]
pub(crate) const EVFILT_WRITE: i32 = 1;

/// The filter hit end of file; `fflags` then holds the socket error, if any.
pub(crate) const EV_EOF: u32 = 0x8000;
/// The event reports an error; `data` holds the errno.
pub(crate) const EV_ERROR: u32 = 0x4000;

/// Translates one kevent's `filter`, `flags` and `fflags`; `token` is its `udata`.
///
/// * `EVFILT_READ`: readable; with `EV_EOF` also read-closed (the peer shut down its
///   writing half), and with `EV_EOF` and `fflags != 0` (a socket error) an error that
///   wakes the writer too.
/// * `EVFILT_WRITE`: writable; with `EV_EOF` write-closed and readable (a hang-up), and
///   with `fflags != 0` an error.
/// * `EV_ERROR` on any filter: an error, readable and writable.
pub(crate) fn event_from_kevent(filter: i32, flags: u32, fflags: u32, token: usize) -> Event {
    let eof = flags & EV_EOF != 0;
    let mut bits = 0;
    if filter == EVFILT_READ {
        bits |= Event::READABLE;
        if eof {
            bits |= Event::READ_CLOSED;
            if fflags != 0 {
                bits |= Event::WRITABLE | Event::ERROR;
            }
        }
    } else if filter == EVFILT_WRITE {
        bits |= Event::WRITABLE;
        if eof {
            bits |= Event::WRITE_CLOSED | Event::READABLE;
            if fflags != 0 {
                bits |= Event::ERROR;
            }
        }
    }
    if flags & EV_ERROR != 0 {
        bits |= Event::READABLE | Event::WRITABLE | Event::ERROR;
    }
    Event::new(Token(token), bits)
}

/// Appends `event` to `out`, merged into the last event if that one has the same token:
/// kqueue usually returns a descriptor's read and write kevents side by side. Events for one
/// token that are not neighbours stay separate (the contract allows it).
pub(crate) fn push_merged(out: &mut Vec<Event>, event: Event) {
    match out.last_mut() {
        Some(last) if last.token == event.token => last.bits |= event.bits,
        _ => out.push(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECONNRESET: u32 = 54;

    fn flags(e: Event) -> [bool; 5] {
        [
            e.is_readable(),
            e.is_writable(),
            e.is_read_closed(),
            e.is_write_closed(),
            e.is_error(),
        ]
    }

    #[test]
    fn token_is_udata() {
        assert_eq!(event_from_kevent(EVFILT_READ, 0, 0, 9).token(), Token(9));
    }

    #[test]
    fn read_filter_is_readable() {
        let e = event_from_kevent(EVFILT_READ, 0, 0, 1);
        assert_eq!(flags(e), [true, false, false, false, false]);
    }

    #[test]
    fn write_filter_is_writable() {
        let e = event_from_kevent(EVFILT_WRITE, 0, 0, 1);
        assert_eq!(flags(e), [false, true, false, false, false]);
    }

    #[test]
    fn read_eof_is_read_closed() {
        let e = event_from_kevent(EVFILT_READ, EV_EOF, 0, 1);
        assert_eq!(flags(e), [true, false, true, false, false]);
    }

    #[test]
    fn read_eof_with_socket_error_is_an_error() {
        let e = event_from_kevent(EVFILT_READ, EV_EOF, ECONNRESET, 1);
        assert_eq!(flags(e), [true, true, true, false, true]);
    }

    #[test]
    fn write_eof_is_a_hang_up() {
        let e = event_from_kevent(EVFILT_WRITE, EV_EOF, 0, 1);
        assert_eq!(flags(e), [true, true, false, true, false]);
        let e = event_from_kevent(EVFILT_WRITE, EV_EOF, ECONNRESET, 1);
        assert_eq!(flags(e), [true, true, false, true, true]);
    }

    #[test]
    fn ev_error_wakes_both_sides() {
        let e = event_from_kevent(EVFILT_READ, EV_ERROR, 0, 1);
        assert_eq!(flags(e), [true, true, false, false, true]);
    }

    #[test]
    fn merged_read_and_write_eof_is_a_full_hang_up() {
        let mut out = Vec::new();
        push_merged(&mut out, event_from_kevent(EVFILT_READ, EV_EOF, 0, 3));
        push_merged(&mut out, event_from_kevent(EVFILT_WRITE, EV_EOF, 0, 3));
        assert_eq!(out.len(), 1);
        assert_eq!(flags(out[0]), [true, true, true, true, false]);
    }

    #[test]
    fn only_neighbours_merge() {
        let mut out = Vec::new();
        push_merged(&mut out, event_from_kevent(EVFILT_READ, 0, 0, 1));
        push_merged(&mut out, event_from_kevent(EVFILT_READ, 0, 0, 2));
        push_merged(&mut out, event_from_kevent(EVFILT_WRITE, 0, 0, 1));
        let tokens: Vec<_> = out.iter().map(|e| e.token().0).collect();
        assert_eq!(tokens, [1, 2, 1]);
    }

    #[test]
    fn unknown_filter_reports_nothing() {
        let e = event_from_kevent(-10, 0, 0, 1);
        assert_eq!(flags(e), [false; 5]);
    }
}
