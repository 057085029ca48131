//! `sync::Semaphore`, `sync::Barrier` and `sync::OnceLock`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coronet_runtime::runtime::Builder;
use coronet_runtime::sync::{Barrier, OnceLock, Semaphore};
use coronet_runtime::{spawn, yield_now};

#[test]
fn a_semaphore_bounds_concurrency_across_workers() {
    let rt = Builder::new().workers(2).build().unwrap();
    let (max_inside, permits) = rt.block_on(|| {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (sem, inside, max_inside) = (sem.clone(), inside.clone(), max_inside.clone());
                spawn(move || {
                    for _ in 0..20 {
                        let _permit = sem.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_inside.fetch_max(now, Ordering::SeqCst);
                        yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        (max_inside.load(Ordering::SeqCst), sem.available_permits())
    });
    assert!(max_inside <= 3, "{max_inside} holders at once");
    assert_eq!(permits, 3);
}

#[test]
fn semaphore_try_acquire_timeout_and_add_permits() {
    let sem = Semaphore::new(1);
    let permit = sem.try_acquire().unwrap();
    assert!(sem.try_acquire().is_none());
    assert!(sem.acquire_timeout(Duration::from_millis(10)).is_none());
    drop(permit);
    sem.acquire().forget();
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(2);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn released_permits_go_to_parked_waiters_first() {
    let rt = Builder::new().workers(1).build().unwrap();
    rt.block_on(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiter = {
            let sem = sem.clone();
            spawn(move || sem.acquire().forget())
        };
        for _ in 0..10 {
            yield_now(); // the waiter parks
        }
        sem.add_permits(1);
        // The permit went to the parked waiter, not to this newcomer.
        assert!(sem.try_acquire().is_none());
        waiter.join().unwrap();
    });
}

#[test]
fn a_barrier_releases_each_generation_with_one_leader() {
    const PARTIES: usize = 16;
    const GENERATIONS: usize = 50;
    let rt = Builder::new().workers(2).build().unwrap();
    let leaders = rt.block_on(|| {
        let barrier = Arc::new(Barrier::new(PARTIES));
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..PARTIES)
            .map(|_| {
                let (barrier, arrived) = (barrier.clone(), arrived.clone());
                spawn(move || {
                    let mut leaders = 0;
                    for generation in 0..GENERATIONS {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if barrier.wait().is_leader() {
                            leaders += 1;
                        }
                        // Everyone of this generation arrived before anyone left.
                        assert!(arrived.load(Ordering::SeqCst) >= (generation + 1) * PARTIES);
                    }
                    leaders
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(leaders, GENERATIONS);
}

#[test]
fn once_lock_runs_one_initialiser_while_the_others_park() {
    let rt = Builder::new().workers(2).build().unwrap();
    let (runs, values) = rt.block_on(|| {
        let cell = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (cell, runs) = (cell.clone(), runs.clone());
                spawn(move || {
                    *cell.get_or_init(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        for _ in 0..20 {
                            yield_now(); // a slow initialiser: others must wait for it
                        }
                        i
                    })
                })
            })
            .collect();
        let values: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (runs.load(Ordering::SeqCst), values)
    });
    assert_eq!(runs, 1);
    assert!(values.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn once_lock_retries_after_a_panicking_initialiser() {
    let cell = Arc::new(OnceLock::<u32>::new());
    let result = spawn({
        let cell = cell.clone();
        move || {
            cell.get_or_init(|| panic!("first attempt fails"));
        }
    })
    .join();
    assert!(result.is_err());
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 7), 7);
    assert_eq!(cell.set(8), Err(8));
}

#[test]
fn once_lock_set_take_and_into_inner() {
    let mut cell = OnceLock::new();
    assert_eq!(cell.set(String::from("a")), Ok(()));
    assert_eq!(cell.get().map(String::as_str), Some("a"));
    assert_eq!(cell.take().as_deref(), Some("a"));
    assert_eq!(cell.get(), None);
    cell.set("b".into()).unwrap();
    assert_eq!(cell.into_inner().as_deref(), Some("b"));
}
