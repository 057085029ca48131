//! `sync::Mutex`: exclusion, parking instead of blocking the worker, fairness, poisoning.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::Duration;

use coronet_runtime::chan;
use coronet_runtime::runtime::Builder;
use coronet_runtime::sync::Mutex;
use coronet_runtime::{spawn, yield_now};

#[test]
fn coroutines_and_threads_increment_a_counter_without_losing_updates() {
    const COROUTINES: usize = 64;
    const THREADS: usize = 2;
    const ROUNDS: usize = 2_000;
    let rt = Builder::new().workers(4).build().unwrap();
    let counter = Arc::new(Mutex::new(0usize));
    let coroutines: Vec<_> = (0..COROUTINES)
        .map(|i| {
            let counter = counter.clone();
            rt.spawn(move || {
                for r in 0..ROUNDS {
                    let mut n = counter.lock().unwrap();
                    let seen = *n;
                    if (i + r) % 16 == 0 {
                        yield_now(); // hold the lock across a switch now and then
                    }
                    *n = seen + 1;
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for c in coroutines {
        c.join().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*counter.lock().unwrap(), (COROUTINES + THREADS) * ROUNDS);
}

#[test]
fn a_mutex_held_across_sleep_does_not_block_other_coroutines_on_the_worker() {
    let rt = Builder::new().workers(1).build().unwrap();
    rt.block_on(|| {
        let mutex = Arc::new(Mutex::new(0));
        let guard = mutex.lock().unwrap();
        // A coroutine that waits for the lock: it parks, it must not hold the worker.
        let (trying_tx, trying_rx) = chan::bounded::<()>(0);
        let waiter = {
            let mutex = mutex.clone();
            spawn(move || {
                trying_tx.send(()).unwrap();
                *mutex.lock().unwrap() += 1;
            })
        };
        trying_rx.recv().unwrap();
        // Another coroutine on the same (only) worker makes progress meanwhile.
        let (done_tx, done_rx) = chan::bounded::<u32>(1);
        let other = spawn(move || {
            let mut x = 0u32;
            for i in 0..100 {
                x = x.wrapping_add(i);
                yield_now();
            }
            done_tx.send(x).unwrap();
        });
        // Sleep while holding the lock until the other coroutine is done.
        let mut rounds = 0;
        let result = loop {
            coronet_runtime::sleep(Duration::from_millis(1));
            if let Ok(x) = done_rx.try_recv() {
                break x;
            }
            rounds += 1;
            assert!(rounds < 10_000, "the other coroutine never ran");
        };
        assert_eq!(result, 4950);
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.join().unwrap();
        other.join().unwrap();
        assert_eq!(*mutex.lock().unwrap(), 1);
    });
}

#[test]
fn a_waiter_is_not_starved_by_a_coroutine_that_relocks_in_a_loop() {
    // One worker: the hog holds the lock across a yield, so the waiter always finds it
    // locked and, in a barging lock, would lose every race. Starvation mode (after 1 ms)
    // hands the lock to the waiter: measured, within about 300 hog rounds; without it the
    // hog runs its whole bounded loop (measured: it hits the bound).
    const MAX_HOG_ROUNDS: u64 = 200_000;
    let rt = Builder::new().workers(1).build().unwrap();
    let (hog_rounds, waiter_got_it) = rt.block_on(|| {
        let mutex = Arc::new(Mutex::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let (mutex, stop) = (mutex.clone(), stop.clone());
            spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::SeqCst) && rounds < MAX_HOG_ROUNDS {
                    let guard = mutex.lock().unwrap();
                    yield_now();
                    drop(guard);
                    rounds += 1;
                }
                rounds
            })
        };
        yield_now(); // let the hog take the lock first
        let waiter = {
            let (mutex, stop) = (mutex.clone(), stop.clone());
            spawn(move || {
                let _guard = mutex.lock().unwrap();
                stop.store(true, Ordering::SeqCst);
            })
        };
        waiter.join().unwrap();
        (hog.join().unwrap(), stop.load(Ordering::SeqCst))
    });
    assert!(
        waiter_got_it,
        "the waiter starved ({hog_rounds} hog rounds)"
    );
    assert!(hog_rounds < MAX_HOG_ROUNDS);
}

#[test]
fn waiters_on_two_workers_all_get_the_lock_under_contention() {
    let rt = Builder::new().workers(2).build().unwrap();
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let mutex = Arc::new(Mutex::new(Vec::new()));
    rt.block_on({
        let (mutex, acquisitions) = (mutex.clone(), acquisitions.clone());
        move || {
            let handles: Vec<_> = (0..200)
                .map(|i| {
                    let (mutex, acquisitions) = (mutex.clone(), acquisitions.clone());
                    spawn(move || {
                        for _ in 0..50 {
                            let mut v = mutex.lock().unwrap();
                            v.push(i);
                            acquisitions.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
    });
    assert_eq!(acquisitions.load(Ordering::Relaxed), 200 * 50);
    assert_eq!(mutex.lock().unwrap().len(), 200 * 50);
}

#[test]
fn try_lock_fails_while_locked() {
    let mutex = Mutex::new(1);
    let guard = mutex.lock().unwrap();
    assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldBlock)));
    drop(guard);
    assert_eq!(*mutex.try_lock().unwrap(), 1);
}

#[test]
fn a_panic_while_locked_poisons_the_mutex() {
    let mutex = Arc::new(Mutex::new(5));
    let result = coronet_runtime::spawn({
        let mutex = mutex.clone();
        move || {
            let _guard = mutex.lock().unwrap();
            panic!("poison it");
        }
    })
    .join();
    assert!(result.is_err());
    assert!(mutex.is_poisoned());
    let guard = mutex.lock().unwrap_err().into_inner();
    assert_eq!(*guard, 5);
    drop(guard);
    mutex.clear_poison();
    assert!(mutex.lock().is_ok());
}

#[test]
fn into_inner_and_get_mut_need_no_lock() {
    let mut mutex = Mutex::new(vec![1]);
    mutex.get_mut().unwrap().push(2);
    assert_eq!(mutex.into_inner().unwrap(), [1, 2]);
}

#[test]
fn guards_are_send_so_they_may_be_held_across_parks() {
    fn check<T: Send>() {}
    check::<coronet_runtime::sync::MutexGuard<'static, String>>();
}
