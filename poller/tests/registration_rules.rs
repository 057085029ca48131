//! A source is registered once, and the wake-up's token is reserved.
#![cfg(unix)]

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use coronet_poller::{Events, Poller, Token};

/// epoll refuses a second registration. (kqueue's `EV_ADD` on a registered descriptor
/// silently replaces its token: registering twice is a caller error the backend may not
/// catch, so this is checked where the OS does.)
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn registering_twice_fails() {
    let poller = Poller::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    poller.register(a.as_raw_fd(), Token(1)).unwrap();
    let error = poller.register(a.as_raw_fd(), Token(2)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AlreadyExists);
}

#[test]
fn the_wake_token_is_reserved() {
    let poller = Poller::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let error = poller
        .register(a.as_raw_fd(), Token(usize::MAX))
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    poller
        .register(a.as_raw_fd(), Token(usize::MAX - 1))
        .unwrap();
}

#[test]
fn events_capacity_is_at_least_one() {
    assert_eq!(Events::new().capacity(), Events::DEFAULT_CAPACITY);
    assert_eq!(Events::DEFAULT_CAPACITY, 128);
    assert_eq!(Events::with_capacity(0).capacity(), 1);
    assert_eq!(Events::with_capacity(7).capacity(), 7);
    assert!(Events::default().is_empty());
}

#[test]
fn the_poller_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Poller>();
    fn assert_send<T: Send>() {}
    assert_send::<Events>();
}
