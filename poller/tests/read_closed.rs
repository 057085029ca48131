//! The peer's shutdown of its writing half, or its close, is reported as readable and
//! read-closed; the read then returns end of stream.
#![cfg(unix)]

mod util;

use std::io::Read;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use coronet_poller::{Event, Events, Poller, Token};
use util::{expect_event, register_quiet, tcp_pair};

fn assert_end_of_stream(stream: &mut impl Read) {
    let mut buf = [0u8; 8];
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
}

#[test]
fn tcp_peer_shutdown_write_is_read_closed() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut client, server) = tcp_pair();
    register_quiet(&poller, &mut events, &client, Token(1));

    server.shutdown(Shutdown::Write).unwrap();
    let event = expect_event(&poller, &mut events, Token(1), Event::is_read_closed);
    assert!(event.is_readable(), "{event:?}");
    assert!(!event.is_error(), "{event:?}");
    assert_end_of_stream(&mut client);
}

#[test]
fn tcp_peer_close_is_read_closed() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut client, server) = tcp_pair();
    register_quiet(&poller, &mut events, &client, Token(2));

    drop(server);
    let event = expect_event(&poller, &mut events, Token(2), Event::is_read_closed);
    assert!(event.is_readable(), "{event:?}");
    assert_end_of_stream(&mut client);
}

#[test]
fn unix_peer_shutdown_write_is_read_closed() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(3));

    b.shutdown(Shutdown::Write).unwrap();
    let event = expect_event(&poller, &mut events, Token(3), Event::is_read_closed);
    assert!(event.is_readable(), "{event:?}");
    assert_end_of_stream(&mut a);
}

#[test]
fn unix_peer_close_is_read_closed() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(4));

    drop(b);
    let event = expect_event(&poller, &mut events, Token(4), Event::is_read_closed);
    assert!(event.is_readable(), "{event:?}");
    assert_end_of_stream(&mut a);
}
