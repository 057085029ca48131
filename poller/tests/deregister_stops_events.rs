//! After `deregister` a source reports nothing more; it can be registered again.
#![cfg(unix)]

mod util;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use coronet_poller::{Event, Events, Poller, Token};
use util::{drain, expect_event, expect_no_event, register_quiet, send};

#[test]
fn deregistered_source_reports_nothing() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(1));

    poller.deregister(a.as_raw_fd()).unwrap();
    send(&mut b, b"ignored");
    expect_no_event(&poller, &mut events, Token(1));
    drop(b);
    expect_no_event(&poller, &mut events, Token(1));
}

#[test]
fn a_source_can_be_registered_again_with_a_new_token() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    register_quiet(&poller, &mut events, &a, Token(1));
    poller.deregister(a.as_raw_fd()).unwrap();

    register_quiet(&poller, &mut events, &a, Token(2));
    send(&mut b, b"again");
    expect_event(&poller, &mut events, Token(2), Event::is_readable);
    assert_eq!(drain(&mut a), 5);
    expect_no_event(&poller, &mut events, Token(1));
}

#[test]
fn deregistering_an_unknown_source_fails() {
    let poller = Poller::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(poller.deregister(a.as_raw_fd()).is_err());
}
