//! Dropping a runtime joins its threads, unwinds parked coroutines and frees their stacks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use coronet_runtime::runtime::{Builder, Runtime};

struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Spawns `count` coroutines that each hold a `CountOnDrop`, say they started, then run
/// `forever` (which never returns); waits until all have started.
fn spawn_started(rt: &Runtime, dropped: &Arc<AtomicUsize>, count: usize, forever: fn()) {
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..count {
        let guard = CountOnDrop(dropped.clone());
        let started_tx = started_tx.clone();
        rt.spawn(move || {
            let _guard = guard;
            started_tx.send(()).unwrap();
            forever();
        });
    }
    for _ in 0..count {
        started_rx.recv().unwrap();
    }
}

#[test]
fn dropping_the_runtime_unwinds_parked_coroutines() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Builder::new().workers(2).build().unwrap();
    spawn_started(&rt, &dropped, 100, || loop {
        coronet_runtime::park(); // nobody unparks: parked forever
    });
    // Never-started coroutines are dropped too.
    for _ in 0..10 {
        let guard = CountOnDrop(dropped.clone());
        rt.spawn(move || {
            let _guard = guard;
            coronet_runtime::sleep(std::time::Duration::from_secs(3600));
        });
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    let alive = rt.stats().alive;
    assert_eq!(alive, 110);
    drop(rt);
    assert_eq!(dropped.load(Ordering::SeqCst), 110);
}

#[test]
fn dropping_the_runtime_stops_coroutines_that_only_yield() {
    let dropped = Arc::new(AtomicUsize::new(0));
    // One worker, two coroutines that never park: the worker goes from one to the other at
    // every yield without passing through its run loop, and must still notice the shutdown.
    let rt = Builder::new().workers(1).build().unwrap();
    spawn_started(&rt, &dropped, 2, || loop {
        coronet_runtime::yield_now();
    });
    // A hang fails the test instead of blocking the suite (the bound is for failure only).
    let (dropped_tx, dropped_rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        dropped_tx.send(()).unwrap();
    });
    dropped_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("dropping the runtime hung while its coroutines yielded");
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn dropping_an_idle_runtime_joins_its_threads() {
    for _ in 0..20 {
        let rt = Builder::new().workers(3).build().unwrap();
        assert_eq!(rt.block_on(|| 5), 5);
        drop(rt);
    }
}

#[test]
fn spawn_after_shutdown_is_an_error_not_a_hang() {
    let rt = Builder::new().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    rt.spawn(move || {
        // Runs on the runtime; after shutdown its spawn attempts fail cleanly.
        tx.send(()).unwrap();
        loop {
            coronet_runtime::park();
        }
    });
    rx.recv().unwrap();
    drop(rt);
}
