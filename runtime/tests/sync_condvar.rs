//! `sync::Condvar` with coronet's `Mutex`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coronet_runtime::runtime::Builder;
use coronet_runtime::spawn;
use coronet_runtime::sync::{Condvar, Mutex};

#[test]
fn a_condvar_queue_moves_every_item_across_workers() {
    const ITEMS: u64 = 20_000;
    let rt = Builder::new().workers(2).build().unwrap();
    let total = rt.block_on(|| {
        let shared = Arc::new((Mutex::new((VecDeque::new(), false)), Condvar::new()));
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let shared = shared.clone();
                spawn(move || {
                    let (lock, cv) = &*shared;
                    let mut sum = 0u64;
                    loop {
                        let mut state = cv
                            .wait_while(lock.lock().unwrap(), |(q, done)| q.is_empty() && !*done)
                            .unwrap();
                        match state.0.pop_front() {
                            Some(v) => sum += v,
                            None => return sum, // done and drained
                        }
                    }
                })
            })
            .collect();
        let (lock, cv) = &*shared;
        for i in 0..ITEMS {
            lock.lock().unwrap().0.push_back(i);
            cv.notify_one();
        }
        lock.lock().unwrap().1 = true;
        cv.notify_all();
        consumers
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum::<u64>()
    });
    assert_eq!(total, (0..ITEMS).sum::<u64>());
}

#[test]
fn notify_all_wakes_every_waiter_including_threads() {
    let shared = Arc::new((Mutex::new(false), Condvar::new()));
    let mut coroutines = Vec::new();
    let mut threads = Vec::new();
    for i in 0..8 {
        let shared = shared.clone();
        let wait = move || {
            let (lock, cv) = &*shared;
            let _g = cv.wait_while(lock.lock().unwrap(), |go| !*go).unwrap();
        };
        if i % 2 == 0 {
            threads.push(std::thread::spawn(wait));
        } else {
            coroutines.push(spawn(wait));
        }
    }
    let (lock, cv) = &*shared;
    *lock.lock().unwrap() = true;
    cv.notify_all();
    for c in coroutines {
        c.join().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn wait_timeout_times_out_without_notification() {
    coronet_runtime::run(|| {
        let lock = Mutex::new(());
        let cv = Condvar::new();
        let start = Instant::now();
        let (guard, result) = cv
            .wait_timeout(lock.lock().unwrap(), Duration::from_millis(20))
            .unwrap();
        assert!(result.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(20));
        drop(guard);
        // The mutex was re-locked and released: it is free again.
        assert!(lock.try_lock().is_ok());
    });
}

#[test]
fn wait_timeout_while_returns_early_when_the_condition_clears() {
    coronet_runtime::run(|| {
        let shared = Arc::new((Mutex::new(0), Condvar::new()));
        let setter = {
            let shared = shared.clone();
            spawn(move || {
                let (lock, cv) = &*shared;
                *lock.lock().unwrap() = 3;
                cv.notify_one();
            })
        };
        let (lock, cv) = &*shared;
        let (guard, result) = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(60), |v| *v == 0)
            .unwrap();
        assert!(!result.timed_out());
        assert_eq!(*guard, 3);
        drop(guard);
        setter.join().unwrap();
    });
}
