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

/// The error a join returns for a coroutine that the shutdown unwound.
fn is_shutdown_error(result: std::thread::Result<()>) -> bool {
    match result {
        Ok(()) => false,
        Err(payload) => {
            payload.downcast_ref::<&str>()
                == Some(&"coronet: the runtime was shut down before the coroutine finished")
        }
    }
}

/// Joins each of the next `count` handles from `handles` on a thread of its own and asserts
/// that every join returns the shutdown error (the bound is for a failure only).
fn assert_joins_get_the_shutdown_error(
    handles: &mpsc::Receiver<coronet_runtime::JoinHandle<()>>,
    count: usize,
) {
    let (results_tx, results_rx) = mpsc::channel();
    for handle in handles.iter().take(count) {
        let results_tx = results_tx.clone();
        std::thread::spawn(move || results_tx.send(is_shutdown_error(handle.join())).unwrap());
    }
    for _ in 0..count {
        let result = results_rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(result, Ok(true), "a joiner got no error, or none in time");
    }
}

#[test]
fn joiners_outside_the_runtime_get_an_error_when_it_shuts_down() {
    let rt = Builder::new().workers(1).build().unwrap();
    let (results_tx, results_rx) = mpsc::channel();
    let mut joiners = Vec::new();
    // A parked coroutine (it said so), joined by a plain thread.
    let (started_tx, started_rx) = mpsc::channel();
    let parked = rt.spawn(move || {
        started_tx.send(()).unwrap();
        loop {
            coronet_runtime::park();
        }
    });
    started_rx.recv().unwrap();
    {
        let results_tx = results_tx.clone();
        joiners.push(std::thread::spawn(move || {
            results_tx.send(is_shutdown_error(parked.join())).unwrap()
        }));
    }
    // Coroutines that may or may not have run by the time the runtime goes (parked forever,
    // or dropped before their first run), joined by plain threads and by a coroutine of
    // another runtime.
    let other = Builder::new().workers(1).build().unwrap();
    for i in 0..50 {
        let handle = rt.spawn(|| loop {
            coronet_runtime::park();
        });
        let results_tx = results_tx.clone();
        if i == 0 {
            other.spawn(move || results_tx.send(is_shutdown_error(handle.join())).unwrap());
        } else {
            joiners.push(std::thread::spawn(move || {
                results_tx.send(is_shutdown_error(handle.join())).unwrap()
            }));
        }
    }
    drop(results_tx);
    drop(rt);
    // A joiner still waiting fails the test after the bound instead of hanging the suite.
    for _ in 0..51 {
        let result = results_rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(result, Ok(true), "a joiner got no error, or none in time");
    }
    for joiner in joiners {
        joiner.join().unwrap();
    }
}

#[test]
fn joiners_of_coroutines_that_never_ran_get_an_error_at_shutdown() {
    // One worker, busy with a coroutine that spawns children (queued behind it on the same
    // worker) and then drops the runtime itself: the children never run.
    let holder = Arc::new(std::sync::Mutex::new(Some(
        Builder::new().workers(1).build().unwrap(),
    )));
    let (handles_tx, handles_rx) = mpsc::channel();
    let spawner = {
        let holder = holder.clone();
        move || {
            for _ in 0..10 {
                handles_tx
                    .send(coronet_runtime::spawn(|| loop {
                        coronet_runtime::park();
                    }))
                    .unwrap();
            }
            // Dropped on its own coroutine, the runtime finishes shutting down on another
            // thread once this coroutine returns its worker.
            drop(holder.lock().unwrap().take());
        }
    };
    holder.lock().unwrap().as_ref().unwrap().spawn(spawner);
    assert_joins_get_the_shutdown_error(&handles_rx, 10);
}

#[test]
fn captures_of_coroutines_that_never_ran_are_dropped_at_shutdown() {
    // As above, with captures to count: small ones (kept in the control block until the
    // first run) and large ones (boxed), none of which may run.
    let holder = Arc::new(std::sync::Mutex::new(Some(
        Builder::new().workers(1).build().unwrap(),
    )));
    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (handles_tx, handles_rx) = mpsc::channel();
    let spawner = {
        let (holder, dropped, ran) = (holder.clone(), dropped.clone(), ran.clone());
        move || {
            for i in 0..20 {
                let guard = CountOnDrop(dropped.clone());
                let ran = ran.clone();
                let handle = if i % 2 == 0 {
                    coronet_runtime::spawn(move || {
                        let _guard = guard;
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                } else {
                    let ballast = [i as u64; 64];
                    coronet_runtime::spawn(move || {
                        let _guard = guard;
                        ran.fetch_add(std::hint::black_box(ballast)[0] as usize, Ordering::SeqCst);
                    })
                };
                handles_tx.send(handle).unwrap();
            }
            drop(holder.lock().unwrap().take());
        }
    };
    holder.lock().unwrap().as_ref().unwrap().spawn(spawner);
    // A body's captures drop before it reports to its joiner.
    assert_joins_get_the_shutdown_error(&handles_rx, 20);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued coroutine ran");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        20,
        "captures were not dropped"
    );
}
