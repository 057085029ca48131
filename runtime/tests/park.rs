//! `park` / `unpark` with std's token semantics, and `park_timeout`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use coronet_runtime::{park, park_timeout, spawn};

#[test]
fn unpark_before_park_makes_park_return_at_once() {
    coronet_runtime::run(|| {
        coronet_runtime::current().unpark();
        park(); // consumes the token
    });
}

#[test]
fn unpark_after_park_wakes_the_parked_coroutine() {
    let flag = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let parked = {
        let flag = flag.clone();
        spawn(move || {
            ready_tx.send(coronet_runtime::current()).unwrap();
            while !flag.load(Ordering::SeqCst) {
                park();
            }
        })
    };
    let coroutine = ready_rx.recv().unwrap();
    flag.store(true, Ordering::SeqCst);
    coroutine.unpark();
    parked.join().unwrap();
}

#[test]
fn park_timeout_returns_without_unpark() {
    let elapsed = coronet_runtime::run(|| {
        let start = Instant::now();
        park_timeout(Duration::from_millis(10));
        start.elapsed()
    });
    // Nobody unparks this coroutine, so only the timeout can end the park.
    assert!(elapsed >= Duration::from_millis(10), "{elapsed:?}");
}

/// The park-then-commit protocol under stress: two coroutines hand a counter back and forth
/// with unpark/park many times across workers. A lost wake-up hangs; a double wake-up
/// trips the state machine's checks.
#[test]
fn park_unpark_ping_pong_many_times() {
    // A million parks in all (two per round), across workers.
    const ROUNDS: u64 = 500_000;
    let turn = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let ping = {
        let turn = turn.clone();
        spawn(move || {
            let pong: coronet_runtime::Coroutine = rx.recv().unwrap();
            for i in 0..ROUNDS {
                while turn.load(Ordering::Acquire) != 2 * i {
                    park();
                }
                turn.store(2 * i + 1, Ordering::Release);
                pong.unpark();
            }
        })
    };
    let pong = {
        let turn = turn.clone();
        let ping_handle = ping.coroutine().clone();
        spawn(move || {
            tx.send(coronet_runtime::current()).unwrap();
            for i in 0..ROUNDS {
                while turn.load(Ordering::Acquire) != 2 * i + 1 {
                    park();
                }
                turn.store(2 * i + 2, Ordering::Release);
                ping_handle.unpark();
            }
        })
    };
    ping.join().unwrap();
    pong.join().unwrap();
    assert_eq!(turn.load(Ordering::SeqCst), 2 * ROUNDS);
}

/// Many coroutines race `park_timeout` against `unpark` from a plain thread: every
/// combination of timer-first and unpark-first must leave the coroutine runnable.
#[test]
fn park_timeout_racing_unpark() {
    let handles: Vec<_> = (0..200)
        .map(|_| {
            spawn(|| {
                for _ in 0..200 {
                    park_timeout(Duration::from_micros(50));
                }
            })
        })
        .collect();
    let coroutines: Vec<_> = handles.iter().map(|h| h.coroutine().clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let unparker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for c in &coroutines {
                    c.unpark();
                }
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    unparker.join().unwrap();
}

/// A plain thread keeps its park signal for the next park; an old park's waker that still
/// exists must not reach a later park, and a fired signal is reset before it is reused.
#[test]
fn a_plain_threads_later_park_ignores_the_wakers_of_earlier_parks() {
    use coronet_runtime::Parking;
    std::thread::spawn(|| {
        let short = || Instant::now() + Duration::from_millis(20);

        // A waker fired and dropped: the next park reuses the signal, reset.
        let parking = Parking::prepare();
        parking.waker().wake();
        assert!(
            parking.park_until(short()),
            "the waker fired before the park"
        );
        let parking = Parking::prepare();
        assert!(
            !parking.park_until(short()),
            "a reused signal came back notified"
        );

        // A waker of a cancelled park that is still held, fired during the next park.
        let parking = Parking::prepare();
        let stale = parking.waker();
        parking.cancel();
        let parking = Parking::prepare();
        stale.wake();
        assert!(
            !parking.park_until(short()),
            "a stale waker woke a later park"
        );
    })
    .join()
    .unwrap();
}
