//! `poll` never returns before its timeout when nothing happens (rounded up, never down),
//! and `Some(ZERO)` does not wait. No upper bound is asserted.
#![cfg(unix)]

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use coronet_poller::{Events, Poller, Token};

fn assert_waits_at_least(poller: &Poller, timeout: Duration) {
    let mut events = Events::new();
    let start = Instant::now();
    assert_eq!(poller.poll(&mut events, Some(timeout)).unwrap(), 0);
    let waited = start.elapsed();
    assert!(
        waited >= timeout,
        "asked {timeout:?}, returned after {waited:?}"
    );
}

#[test]
fn thirty_milliseconds_are_waited() {
    let poller = Poller::new().unwrap();
    assert_waits_at_least(&poller, Duration::from_millis(30));
}

#[test]
fn sub_millisecond_timeouts_are_rounded_up() {
    let poller = Poller::new().unwrap();
    for timeout in [
        Duration::from_nanos(1),
        Duration::from_micros(100),
        Duration::from_micros(1500),
    ] {
        assert_waits_at_least(&poller, timeout);
    }
}

#[test]
fn idle_registered_sources_do_not_end_the_wait_early() {
    let poller = Poller::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    poller.register(a.as_raw_fd(), Token(1)).unwrap();
    let mut events = Events::new();
    // The writable edge reported at registration.
    poller
        .poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert_waits_at_least(&poller, Duration::from_millis(30));
}

#[test]
fn zero_does_not_wait() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    assert_eq!(poller.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
    assert!(events.is_empty());
}
