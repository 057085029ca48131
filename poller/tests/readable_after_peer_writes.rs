//! A registered stream becomes readable when its peer writes; a listener when a client
//! connects.
#![cfg(unix)]

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use coronet_poller::{Event, Events, Poller, Token};
use util::{expect_event, listener, register_quiet, send, tcp_pair};

#[test]
fn unix_stream_is_readable_after_the_peer_writes() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(1));

    send(&mut b, b"hello");
    let event = expect_event(&poller, &mut events, Token(1), Event::is_readable);
    assert!(!event.is_read_closed() && !event.is_write_closed() && !event.is_error());

    let mut buf = [0u8; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn tcp_stream_is_readable_after_the_peer_writes() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut client, mut server) = tcp_pair();
    register_quiet(&poller, &mut events, &client, Token(2));

    send(&mut server, b"ping");
    let event = expect_event(&poller, &mut events, Token(2), Event::is_readable);
    assert!(!event.is_read_closed() && !event.is_error());

    let mut buf = [0u8; 16];
    assert_eq!(client.read(&mut buf).unwrap(), 4);
}

#[test]
fn listener_is_readable_when_a_client_connects() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (listener, addr) = listener();
    listener.set_nonblocking(true).unwrap();
    poller.register(listener.as_raw_fd(), Token(3)).unwrap();

    let _client = TcpStream::connect(addr).unwrap();
    expect_event(&poller, &mut events, Token(3), Event::is_readable);
    listener.accept().expect("a connection is waiting");
}
