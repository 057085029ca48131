//! Scheduling: yield, sleep order, blocked workers and the monitor.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use coronet_runtime::runtime::Builder;
use coronet_runtime::{sleep, spawn, yield_now};

#[test]
fn yield_now_lets_another_coroutine_on_the_same_worker_run() {
    let rt = Builder::new().workers(1).build().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let observed = rt.block_on({
        let flag = flag.clone();
        move || {
            let setter = {
                let flag = flag.clone();
                spawn(move || flag.store(true, Ordering::SeqCst))
            };
            // One worker: the setter can only run if we yield.
            let mut yields = 0;
            while !flag.load(Ordering::SeqCst) {
                yield_now();
                yields += 1;
                assert!(yields < 1000, "yield_now never let the other coroutine run");
            }
            setter.join().unwrap();
            yields
        }
    });
    assert!(observed >= 1);
}

#[test]
fn a_shorter_sleep_wakes_first() {
    let order = coronet_runtime::run(|| {
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::new();
        for (label, ms) in [("c", 60u64), ("a", 5), ("b", 30)] {
            let tx = tx.clone();
            handles.push(spawn(move || {
                sleep(Duration::from_millis(ms));
                tx.send(label).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        drop(tx);
        rx.iter().collect::<Vec<_>>()
    });
    assert_eq!(order, vec!["a", "b", "c"]);
}

#[test]
fn sleep_lasts_at_least_the_duration() {
    let elapsed = coronet_runtime::run(|| {
        let start = Instant::now();
        sleep(Duration::from_millis(20));
        start.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
}

#[test]
fn ten_thousand_concurrent_sleepers_all_wake() {
    let woke = coronet_runtime::run(|| {
        let count = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let count = count.clone();
                spawn(move || {
                    sleep(Duration::from_micros(i % 2000));
                    count.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        count.load(Ordering::Relaxed)
    });
    assert_eq!(woke, 10_000);
}

/// Two coroutines block both workers' threads in `std::thread::sleep` until a third one
/// runs; only the monitor's spare worker can run it.
#[test]
fn blocked_workers_do_not_stop_a_third_coroutine() {
    let rt = Builder::new().workers(2).build().unwrap();
    let progressed = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let progressed = progressed.clone();
            let started_tx = started_tx.clone();
            rt.spawn(move || {
                started_tx.send(()).unwrap();
                let give_up = Instant::now() + Duration::from_secs(60);
                while !progressed.load(Ordering::SeqCst) && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    // Both blockers are running (each holds a worker) before the third is spawned.
    started_rx.recv().unwrap();
    started_rx.recv().unwrap();
    let third = {
        let progressed = progressed.clone();
        rt.spawn(move || progressed.store(true, Ordering::SeqCst))
    };
    third.join().unwrap();
    assert!(progressed.load(Ordering::SeqCst));
    for b in blockers {
        b.join().unwrap();
    }
    assert!(rt.stats().handoffs >= 1 || rt.stats().steals >= 1);
}

/// A coroutine that spins without yielding holds its worker; a second one spawned beside it
/// must be picked up by another worker thread (stealing or the injector).
#[test]
fn an_idle_worker_takes_work_from_a_busy_one() {
    let rt = Builder::new().workers(2).build().unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let arrived = arrived.clone();
            rt.spawn(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                let give_up = Instant::now() + Duration::from_secs(60);
                while arrived.load(Ordering::SeqCst) < 2 && Instant::now() < give_up {
                    std::hint::spin_loop();
                }
                std::thread::current().id()
            })
        })
        .collect();
    let ids: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(arrived.load(Ordering::SeqCst), 2);
    assert_ne!(ids[0], ids[1], "both coroutines ran on one thread");
}
