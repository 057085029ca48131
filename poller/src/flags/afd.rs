//! The AFD driver's poll flags (`AFD_POLL_*`, from wepoll's and ReactOS's `afd.h`) and the
//! status of a completed `IOCTL_AFD_POLL` into an [`Event`].

use crate::{Event, Token};

pub(crate) const AFD_POLL_RECEIVE: u32 = 0x0001;
pub(crate) const AFD_POLL_RECEIVE_EXPEDITED: u32 = 0x0002;
pub(crate) const AFD_POLL_SEND: u32 = 0x0004;
pub(crate) const AFD_POLL_DISCONNECT: u32 = 0x0008;
pub(crate) const AFD_POLL_ABORT: u32 = 0x0010;
pub(crate) const AFD_POLL_LOCAL_CLOSE: u32 = 0x0020;
pub(crate) const AFD_POLL_ACCEPT: u32 = 0x0080;
pub(crate) const AFD_POLL_CONNECT_FAIL: u32 = 0x0100;

/// What every poll request asks for: both directions, hang-ups, and `LOCAL_CLOSE` so a
/// socket closed without being deregistered completes its request. (`AFD_POLL_CONNECT`,
/// 0x40, is left out: it is set on every event of a connected socket, not once.)
pub(crate) const INTEREST: u32 = AFD_POLL_RECEIVE
    | AFD_POLL_RECEIVE_EXPEDITED
    | AFD_POLL_SEND
    | AFD_POLL_DISCONNECT
    | AFD_POLL_ABORT
    | AFD_POLL_LOCAL_CLOSE
    | AFD_POLL_ACCEPT
    | AFD_POLL_CONNECT_FAIL;

/// Translates a completed poll request: its `NTSTATUS` (as `i32`; negative is an error,
/// `STATUS_CANCELLED` is handled by the backend before this) and the events AFD reported.
///
/// * `RECEIVE`, `RECEIVE_EXPEDITED`, `ACCEPT`: readable; `SEND`: writable.
/// * `DISCONNECT` (the peer shut down its writing half): readable and read-closed.
/// * `ABORT` (reset): readable, writable, read-closed and write-closed.
/// * `CONNECT_FAIL`: an error, readable, writable and both closed.
/// * A failed request: an error, readable and writable, so both waiters retry their call.
pub(crate) fn event_from_afd(status: i32, events: u32, token: usize) -> Event {
    let mut bits = 0;
    if status < 0 {
        bits |= Event::READABLE | Event::WRITABLE | Event::ERROR;
    }
    if events
        & (AFD_POLL_RECEIVE
            | AFD_POLL_RECEIVE_EXPEDITED
            | AFD_POLL_ACCEPT
            | AFD_POLL_DISCONNECT
            | AFD_POLL_ABORT
            | AFD_POLL_CONNECT_FAIL)
        != 0
    {
        bits |= Event::READABLE;
    }
    if events & (AFD_POLL_SEND | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL) != 0 {
        bits |= Event::WRITABLE;
    }
    if events & (AFD_POLL_DISCONNECT | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL) != 0 {
        bits |= Event::READ_CLOSED;
    }
    if events & (AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL) != 0 {
        bits |= Event::WRITE_CLOSED;
    }
    if events & AFD_POLL_CONNECT_FAIL != 0 {
        bits |= Event::ERROR;
    }
    Event::new(Token(token), bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `STATUS_INVALID_HANDLE` (0xC0000008).
    const STATUS_INVALID_HANDLE: i32 = 0xC000_0008_u32 as i32;

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
    fn token_is_kept() {
        assert_eq!(event_from_afd(0, AFD_POLL_SEND, 77).token(), Token(77));
    }

    #[test]
    fn receive_and_accept_are_readable() {
        for events in [
            AFD_POLL_RECEIVE,
            AFD_POLL_RECEIVE_EXPEDITED,
            AFD_POLL_ACCEPT,
        ] {
            assert_eq!(
                flags(event_from_afd(0, events, 1)),
                [true, false, false, false, false]
            );
        }
    }

    #[test]
    fn send_is_writable() {
        let e = event_from_afd(0, AFD_POLL_SEND, 1);
        assert_eq!(flags(e), [false, true, false, false, false]);
    }

    #[test]
    fn disconnect_is_read_closed() {
        let e = event_from_afd(0, AFD_POLL_DISCONNECT | AFD_POLL_SEND, 1);
        assert_eq!(flags(e), [true, true, true, false, false]);
    }

    #[test]
    fn abort_closes_both_directions() {
        let e = event_from_afd(0, AFD_POLL_ABORT, 1);
        assert_eq!(flags(e), [true, true, true, true, false]);
    }

    #[test]
    fn connect_fail_is_an_error() {
        let e = event_from_afd(0, AFD_POLL_CONNECT_FAIL, 1);
        assert_eq!(flags(e), [true, true, true, true, true]);
    }

    #[test]
    fn failed_request_is_an_error() {
        let e = event_from_afd(STATUS_INVALID_HANDLE, 0, 1);
        assert_eq!(flags(e), [true, true, false, false, true]);
    }

    #[test]
    fn local_close_alone_reports_nothing() {
        let e = event_from_afd(0, AFD_POLL_LOCAL_CLOSE, 1);
        assert_eq!(flags(e), [false; 5]);
    }

    #[test]
    fn interest_covers_every_known_flag() {
        assert_eq!(INTEREST, 0x1bf);
    }
}
