//! `sync::RwLock`: shared readers, exclusive writers, no writer starvation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, TryLockError};

use coronet_runtime::runtime::Builder;
use coronet_runtime::sync::RwLock;
use coronet_runtime::{spawn, yield_now};

#[test]
fn readers_share_and_writers_exclude() {
    let rt = Builder::new().workers(2).build().unwrap();
    let lock = Arc::new(RwLock::new(0u64));
    let readers_inside = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    rt.block_on({
        let (lock, readers_inside, max_readers) =
            (lock.clone(), readers_inside.clone(), max_readers.clone());
        move || {
            let mut handles = Vec::new();
            for i in 0..40 {
                let (lock, readers_inside, max_readers) =
                    (lock.clone(), readers_inside.clone(), max_readers.clone());
                handles.push(spawn(move || {
                    for _ in 0..200 {
                        if i % 4 == 0 {
                            let mut w = lock.write().unwrap();
                            assert_eq!(readers_inside.load(Ordering::SeqCst), 0);
                            let before = *w;
                            yield_now();
                            *w = before + 1;
                        } else {
                            let r = lock.read().unwrap();
                            let inside = readers_inside.fetch_add(1, Ordering::SeqCst) + 1;
                            max_readers.fetch_max(inside, Ordering::SeqCst);
                            let seen = *r;
                            yield_now();
                            assert_eq!(*r, seen, "a writer got in while reading");
                            readers_inside.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                }));
            }
            for h in handles {
                h.join().unwrap();
            }
        }
    });
    assert_eq!(*lock.read().unwrap(), 10 * 200);
    assert!(
        max_readers.load(Ordering::SeqCst) >= 2,
        "readers never overlapped"
    );
}

#[test]
fn a_writer_is_not_starved_by_a_stream_of_readers() {
    // Readers overlap forever on one worker (each yields while holding the read lock, so
    // one is always inside). A pending writer must stop new readers and get in; with a
    // reader-preferring lock the readers would run their whole bounded loops first.
    const MAX_READER_ROUNDS: u64 = 100_000;
    let rt = Builder::new().workers(1).build().unwrap();
    let reader_rounds = rt.block_on(|| {
        let lock = Arc::new(RwLock::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (lock, stop) = (lock.clone(), stop.clone());
                spawn(move || {
                    let mut rounds = 0;
                    while !stop.load(Ordering::SeqCst) && rounds < MAX_READER_ROUNDS {
                        let _r = lock.read().unwrap();
                        yield_now();
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        yield_now();
        let writer = {
            let (lock, stop) = (lock.clone(), stop.clone());
            spawn(move || {
                let _w = lock.write().unwrap();
                stop.store(true, Ordering::SeqCst);
            })
        };
        writer.join().unwrap();
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .max()
            .unwrap()
    });
    assert!(reader_rounds < MAX_READER_ROUNDS, "the writer starved");
}

#[test]
fn try_read_and_try_write_respect_holders() {
    let lock = RwLock::new(1);
    let r = lock.read().unwrap();
    assert!(lock.try_read().is_ok());
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    drop(r);
    let w = lock.try_write().unwrap();
    assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
    drop(w);
    assert_eq!(lock.into_inner().unwrap(), 1);
}

#[test]
fn a_panicking_writer_poisons_the_lock() {
    let lock = Arc::new(RwLock::new(0));
    let result = std::thread::spawn({
        let lock = lock.clone();
        move || {
            let _w = lock.write().unwrap();
            panic!("poison");
        }
    })
    .join();
    assert!(result.is_err());
    assert!(lock.is_poisoned());
    assert!(lock.read().is_err());
}
