//! Events are edge-triggered: a condition that persists is reported once; the next event
//! comes only after a new change (new data after the old was drained).
#![cfg(unix)]

mod util;

use std::io::Read;
use std::os::unix::net::UnixStream;

use coronet_poller::{Event, Events, Poller, Token};
use util::{drain, expect_event, expect_no_event, register_quiet, send, tcp_pair};

#[test]
fn unread_data_is_reported_once() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(1));

    send(&mut b, b"one two");
    expect_event(&poller, &mut events, Token(1), Event::is_readable);
    // The data is still there, but nothing changed: no second event.
    expect_no_event(&poller, &mut events, Token(1));

    // Reading part of it is no change either.
    let mut byte = [0u8; 1];
    a.read_exact(&mut byte).unwrap();
    expect_no_event(&poller, &mut events, Token(1));

    // Drained, then new data: a new edge.
    assert_eq!(drain(&mut a), 6);
    expect_no_event(&poller, &mut events, Token(1));
    send(&mut b, b"three");
    expect_event(&poller, &mut events, Token(1), Event::is_readable);
    assert_eq!(drain(&mut a), 5);
    expect_no_event(&poller, &mut events, Token(1));
}

#[test]
fn lasting_writability_is_reported_once() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (client, _server) = tcp_pair();
    // `register_quiet` consumes the writable edge reported at registration.
    register_quiet(&poller, &mut events, &client, Token(2));
    expect_no_event(&poller, &mut events, Token(2));
}

#[test]
fn a_full_buffer_that_drains_reports_writable_again() {
    use std::io::{ErrorKind, Write};

    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(3));

    let chunk = [7u8; 4096];
    let mut written = 0;
    loop {
        match a.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(written > 0);
    expect_no_event(&poller, &mut events, Token(3));

    assert_eq!(drain(&mut b), written);
    expect_event(&poller, &mut events, Token(3), Event::is_writable);
}
