//! epoll's flags (`<sys/epoll.h>`, the same on every Linux architecture) into an [`Event`].

use crate::{Event, Token};

pub(crate) const EPOLLIN: u32 = 0x001;
pub(crate) const EPOLLPRI: u32 = 0x002;
pub(crate) const EPOLLOUT: u32 = 0x004;
pub(crate) const EPOLLERR: u32 = 0x008;
pub(crate) const EPOLLHUP: u32 = 0x010;
pub(crate) const EPOLLRDHUP: u32 = 0x2000;
pub(crate) const EPOLLET: u32 = 1 << 31;

/// What [`Poller::register`](crate::Poller::register) asks for: Go's `netpollopen` set, plus
/// `EPOLLPRI` so that urgent data is reported ([`crate::REPORTS_PRIORITY`]).
pub(crate) const INTEREST: u32 = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;

/// Translates one `epoll_event` (its `events` and `data.u64`).
///
/// `EPOLLHUP` (both directions shut) and `EPOLLERR` wake both sides; `EPOLLRDHUP` (the peer
/// shut down its writing half) is a read-side end of stream.
pub(crate) fn event_from_epoll(flags: u32, data: u64) -> Event {
    let mut bits = 0;
    if flags & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR) != 0 {
        bits |= Event::READABLE;
    }
    if flags & (EPOLLOUT | EPOLLHUP | EPOLLERR) != 0 {
        bits |= Event::WRITABLE;
    }
    if flags & (EPOLLRDHUP | EPOLLHUP) != 0 {
        bits |= Event::READ_CLOSED;
    }
    if flags & (EPOLLHUP | EPOLLERR) != 0 {
        bits |= Event::WRITE_CLOSED;
    }
    if flags & EPOLLERR != 0 {
        bits |= Event::ERROR;
    }
    if flags & EPOLLPRI != 0 {
        bits |= Event::PRIORITY;
    }
    // The data word holds the token the source was registered with, a `usize`.
    Event::new(Token(data as usize), bits)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn token_round_trips() {
        assert_eq!(event_from_epoll(EPOLLIN, 42).token(), Token(42));
        let big = (usize::MAX - 1) as u64;
        assert_eq!(
            event_from_epoll(EPOLLIN, big).token(),
            Token(usize::MAX - 1)
        );
    }

    #[test]
    fn data_is_readable_only() {
        assert_eq!(
            flags(event_from_epoll(EPOLLIN, 1)),
            [true, false, false, false, false]
        );
        assert_eq!(
            flags(event_from_epoll(EPOLLPRI, 1)),
            [true, false, false, false, false]
        );
    }

    #[test]
    fn only_urgent_data_is_priority() {
        assert!(event_from_epoll(EPOLLPRI, 1).is_priority());
        assert!(event_from_epoll(EPOLLIN | EPOLLPRI, 1).is_priority());
        for other in [EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR] {
            assert!(!event_from_epoll(other, 1).is_priority(), "{other:#x}");
        }
    }

    #[test]
    fn space_is_writable_only() {
        assert_eq!(
            flags(event_from_epoll(EPOLLOUT, 1)),
            [false, true, false, false, false]
        );
    }

    #[test]
    fn rdhup_is_read_closed_and_readable() {
        let e = event_from_epoll(EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
        assert_eq!(flags(e), [true, true, true, false, false]);
    }

    #[test]
    fn hup_wakes_both_sides() {
        let e = event_from_epoll(EPOLLHUP, 1);
        assert_eq!(flags(e), [true, true, true, true, false]);
    }

    #[test]
    fn err_is_error_and_wakes_both_sides() {
        let e = event_from_epoll(EPOLLERR, 1);
        assert_eq!(flags(e), [true, true, false, true, true]);
        let reset = event_from_epoll(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP, 1);
        assert_eq!(flags(reset), [true, true, true, true, true]);
    }

    #[test]
    fn interest_is_gos_netpollopen_set_plus_urgent_data() {
        // Go: EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET; we add EPOLLPRI.
        assert_eq!(INTEREST, 0x8000_2005 | 0x002);
    }

    #[test]
    fn edge_flag_alone_means_nothing() {
        assert_eq!(flags(event_from_epoll(EPOLLET, 1)), [false; 5]);
    }
}
