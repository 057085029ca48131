//! Many wakes before a poll observes them coalesce into one wake-up (Go's
//! `netpollWakeSig`): one poll returns early, the next one waits its full timeout.

mod util;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use coronet_poller::{Events, Poller};
use util::{PATIENCE, QUIET};

fn assert_one_wake_up(poller: &Poller) {
    let mut events = Events::new();
    // Returns because of the wake-up, long before the guard.
    assert_eq!(poller.poll(&mut events, Some(PATIENCE)).unwrap(), 0);
    // Nothing is left: this one times out.
    let start = Instant::now();
    assert_eq!(poller.poll(&mut events, Some(QUIET)).unwrap(), 0);
    assert!(
        start.elapsed() >= QUIET,
        "a second wake-up was left pending"
    );
}

#[test]
fn a_burst_of_wakes_is_one_wake_up() {
    let poller = Poller::new().unwrap();
    for _ in 0..1000 {
        poller.wake().unwrap();
    }
    assert_one_wake_up(&poller);
}

#[test]
fn wakes_from_many_threads_are_one_wake_up() {
    let poller = Arc::new(Poller::new().unwrap());
    let threads = 4;
    let start = Arc::new(Barrier::new(threads));
    let wakers: Vec<_> = (0..threads)
        .map(|_| {
            let poller = Arc::clone(&poller);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for _ in 0..250 {
                    poller.wake().unwrap();
                }
            })
        })
        .collect();
    for waker in wakers {
        waker.join().unwrap();
    }
    assert_one_wake_up(&poller);
}

#[test]
fn a_wake_after_the_wake_up_was_observed_counts_again() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    poller.wake().unwrap();
    poller.poll(&mut events, Some(PATIENCE)).unwrap();
    poller.wake().unwrap();
    assert_one_wake_up(&poller);
}
