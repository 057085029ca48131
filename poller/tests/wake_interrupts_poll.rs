//! `wake()` from another thread makes a blocked `poll(None)` return (Go's `netpollBreak`),
//! and the internal wake-up is never reported as an event.

mod util;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use coronet_poller::{Event, Events, Poller, Token};
use util::{expect_event, register_quiet, send, tcp_pair};

#[test]
fn wake_returns_a_blocked_poll() {
    let poller = Arc::new(Poller::new().unwrap());
    let (about_to_poll, ready) = mpsc::channel();
    let polling = {
        let poller = Arc::clone(&poller);
        thread::spawn(move || {
            let mut events = Events::new();
            about_to_poll.send(()).unwrap();
            let n = poller.poll(&mut events, None).unwrap();
            (n, events.len())
        })
    };
    ready.recv().unwrap();
    // Whether the thread already blocks or is still on its way, the wake-up is kept
    // until a poll observes it, so this one call is enough.
    poller.wake().unwrap();
    assert_eq!(polling.join().unwrap(), (0, 0));
}

#[test]
fn no_wake_up_is_lost_over_many_rounds() {
    let poller = Arc::new(Poller::new().unwrap());
    let barrier = Arc::new(Barrier::new(2));
    let rounds = 200;
    let polling = {
        let poller = Arc::clone(&poller);
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            let mut events = Events::new();
            for _ in 0..rounds {
                barrier.wait();
                assert_eq!(poller.poll(&mut events, None).unwrap(), 0);
            }
        })
    };
    for _ in 0..rounds {
        barrier.wait();
        poller.wake().unwrap();
    }
    polling.join().unwrap();
}

#[test]
fn a_wake_before_poll_makes_the_next_poll_return() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    poller.wake().unwrap();
    assert_eq!(poller.poll(&mut events, None).unwrap(), 0);
    assert!(events.is_empty());
}

#[test]
fn the_wake_up_is_not_reported_beside_real_events() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (client, mut server) = tcp_pair();
    register_quiet(&poller, &mut events, &client, Token(5));

    send(&mut server, b"x");
    poller.wake().unwrap();
    // The data's event comes with the wake-up or after it; nothing else ever shows.
    expect_event(&poller, &mut events, Token(5), Event::is_readable);
    assert!(events.iter().all(|e| e.token() == Token(5)), "{events:?}");
    poller.poll(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.iter().all(|e| e.token() == Token(5)), "{events:?}");
}
