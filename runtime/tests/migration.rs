//! Coroutines migrate between worker threads; the runtime's thread-local accessor must
//! always name the thread running *now*. Run in release mode (CI does): this is where
//! LLVM would reuse a stale thread-local address across a suspend.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use coronet_runtime::runtime::Builder;

#[test]
fn current_stays_right_across_migrations() {
    let rt = Builder::new().workers(4).build().unwrap();
    let threads_seen = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let threads_seen = threads_seen.clone();
            rt.spawn(move || {
                let me = coronet_runtime::current().id();
                let mut threads = HashSet::new();
                for _ in 0..2_000 {
                    coronet_runtime::yield_now();
                    // After every suspend: the accessor re-reads this thread's slot.
                    assert_eq!(coronet_runtime::current().id(), me);
                    assert!(coronet_runtime::in_coroutine());
                    threads.insert(std::thread::current().id());
                }
                threads_seen.lock().unwrap().extend(threads);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(!threads_seen.lock().unwrap().is_empty());
}

/// The same after blocking channel calls, whose wait and stack switch are inlined into the
/// caller (`chan::select::wait_one`): a ring of coroutines passes tokens on 4 workers, so a
/// receiver is often woken, and resumed, by another worker than the one it parked on.
#[test]
fn current_stays_right_across_channel_waits() {
    const RING: usize = 64;
    const LAPS: usize = 500;
    let rt = Builder::new().workers(4).build().unwrap();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..RING)
        .map(|_| coronet_runtime::chan::bounded::<usize>(1))
        .unzip();
    let mut receivers: Vec<_> = receivers.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..RING)
        .map(|i| {
            let rx = receivers[i].take().expect("each receiver once");
            let next = senders[(i + 1) % RING].clone();
            // Four coroutines put a token in the ring first and skip their last send, so
            // every coroutine receives and sends LAPS tokens: the ring never blocks on a
            // finished coroutine.
            let starts = i % (RING / 4) == 0;
            rt.spawn(move || {
                let me = coronet_runtime::current().id();
                let mut threads = HashSet::new();
                if starts {
                    next.send(0).expect("the ring stays connected");
                }
                for lap in 0..LAPS {
                    let token = rx.recv().expect("the ring stays connected");
                    assert_eq!(coronet_runtime::current().id(), me);
                    assert!(coronet_runtime::in_coroutine());
                    threads.insert(std::thread::current().id());
                    if !(starts && lap == LAPS - 1) {
                        next.send(token + 1).expect("the ring stays connected");
                        assert_eq!(coronet_runtime::current().id(), me);
                    }
                }
                threads.len()
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        assert!(h.join().unwrap() >= 1);
    }
}

coronet_runtime::coroutine_local! {
    static VALUE: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

#[test]
fn coroutine_locals_follow_their_coroutine() {
    let rt = Builder::new().workers(4).build().unwrap();
    let handles: Vec<_> = (1..=64u64)
        .map(|i| {
            rt.spawn(move || {
                VALUE.with(|v| v.set(i));
                for _ in 0..1_000 {
                    coronet_runtime::yield_now();
                    assert_eq!(VALUE.with(|v| v.get()), i);
                }
                i
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64 + 1);
    }
    // On a plain thread the key falls back to per-thread storage.
    VALUE.with(|v| v.set(99));
    assert_eq!(VALUE.with(|v| v.get()), 99);
}
