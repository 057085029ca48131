//! `sync::WaitGroup`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coronet_runtime::runtime::Builder;
use coronet_runtime::spawn;
use coronet_runtime::sync::WaitGroup;

#[test]
fn wait_returns_after_ten_thousand_coroutines_finish() {
    const N: usize = 10_000;
    let rt = Builder::new().workers(2).build().unwrap();
    let finished = rt.block_on(|| {
        let finished = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for i in 0..N {
            let (wg, finished) = (wg.clone(), finished.clone());
            spawn(move || {
                if i % 3 == 0 {
                    coronet_runtime::yield_now();
                }
                finished.fetch_add(1, Ordering::Relaxed);
                drop(wg);
            });
        }
        wg.wait();
        finished.load(Ordering::Relaxed)
    });
    assert_eq!(finished, N);
}

#[test]
fn several_waiters_threads_and_coroutines_are_all_released() {
    let wg = WaitGroup::new();
    let gate = WaitGroup::new();
    let mut threads = Vec::new();
    let mut coroutines = Vec::new();
    for i in 0..6 {
        let wg = wg.clone();
        if i % 2 == 0 {
            threads.push(std::thread::spawn(move || wg.wait()));
        } else {
            coroutines.push(spawn(move || wg.wait()));
        }
    }
    // The members still to finish:
    let worker = {
        let wg = wg.clone();
        let gate = gate.clone();
        spawn(move || {
            gate.wait();
            drop(wg);
        })
    };
    drop(gate);
    wg.wait();
    worker.join().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    for c in coroutines {
        c.join().unwrap();
    }
}

#[test]
fn a_lone_wait_group_does_not_wait() {
    let wg = WaitGroup::new();
    assert_eq!(wg.count(), 1);
    wg.wait();
}
