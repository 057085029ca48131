//! Spawning and joining: results, nesting, panics, names and builders.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coronet_runtime::{coroutine, run, spawn};

#[test]
fn hundred_thousand_coroutines_return_their_results() {
    let total = run(|| {
        let handles: Vec<_> = (0..100_000u64).map(|i| spawn(move || i * 3)).collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let value = h.join().unwrap();
                assert_eq!(value, i as u64 * 3);
                value
            })
            .sum::<u64>()
    });
    assert_eq!(total, 3 * (100_000u64 * 99_999 / 2));
}

#[test]
fn join_from_a_plain_thread() {
    let handle = spawn(|| "from a coroutine".to_string());
    assert_eq!(handle.join().unwrap(), "from a coroutine");
}

#[test]
fn nested_spawns_form_a_tree() {
    fn tree(depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let left = spawn(move || tree(depth - 1));
        let right = spawn(move || tree(depth - 1));
        left.join().unwrap() + right.join().unwrap()
    }
    assert_eq!(run(|| tree(12)), 4096);
}

#[test]
fn a_panic_comes_back_as_err_and_the_runtime_keeps_serving() {
    let result = spawn(|| -> u32 { panic!("boom in a coroutine") }).join();
    let payload = result.expect_err("the panic must reach join");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a coroutine"));
    // The worker that ran it is still alive and serving.
    let ok: Vec<_> = (0..100).map(|i| spawn(move || i)).collect();
    let sum: i32 = ok.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 4950);
}

#[test]
#[should_panic(expected = "propagated")]
fn run_propagates_a_panic() {
    run(|| panic!("propagated"));
}

#[test]
fn builder_sets_name_and_stack_size() {
    let handle = coroutine::Builder::new()
        .name("named-one".into())
        .stack_size(512 * 1024)
        .spawn(|| {
            // Use a good part of the larger stack.
            let big = [7u8; 300 * 1024];
            let sum: u64 = std::hint::black_box(&big)
                .iter()
                .map(|&b| u64::from(b))
                .sum();
            (coronet_runtime::current().name().map(str::to_owned), sum)
        })
        .unwrap();
    assert_eq!(handle.coroutine().name(), Some("named-one"));
    let (name, sum) = handle.join().unwrap();
    assert_eq!(name.as_deref(), Some("named-one"));
    assert_eq!(sum, 7 * 300 * 1024);
}

#[test]
fn ids_are_unique_and_current_matches_the_handle() {
    let handles: Vec<_> = (0..1000)
        .map(|_| spawn(|| coronet_runtime::current().id()))
        .collect();
    let mut ids = std::collections::HashSet::new();
    for handle in handles {
        let expected = handle.coroutine().id();
        assert_eq!(handle.join().unwrap(), expected);
        assert!(ids.insert(expected));
    }
}

#[test]
fn dropping_a_join_handle_detaches() {
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..100 {
        let done = done.clone();
        let tx = tx.clone();
        drop(spawn(move || {
            coronet_runtime::yield_now();
            done.fetch_add(1, Ordering::SeqCst);
            tx.send(()).unwrap();
        }));
    }
    for _ in 0..100 {
        rx.recv().unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 100);
}

#[test]
fn coroutines_keep_running_after_run_returns() {
    let (tx, rx) = std::sync::mpsc::channel();
    run(move || {
        spawn(move || {
            coronet_runtime::sleep(std::time::Duration::from_millis(5));
            tx.send("still running").unwrap();
        });
    });
    assert_eq!(rx.recv().unwrap(), "still running");
}

#[test]
fn many_threads_call_run_at_once() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                run(move || {
                    let hs: Vec<_> = (0..1000).map(|i| spawn(move || i + t)).collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
                })
            })
        })
        .collect();
    for (t, thread) in threads.into_iter().enumerate() {
        assert_eq!(thread.join().unwrap(), 499_500 + 1000 * t);
    }
}

/// A result that reports its drop; `Reported<0>` is two words (kept in place in the task),
/// `Reported<8>` ten (boxed).
struct Reported<const N: usize>(std::sync::mpsc::Sender<usize>, [u64; N]);

impl<const N: usize> Drop for Reported<N> {
    fn drop(&mut self) {
        let _ = self.0.send(N);
    }
}

/// The next drop reported on `rx`: `None` once every sender is gone; a leaked result (its
/// sender never dropped) fails after a bound instead of hanging.
fn next_drop(rx: &std::sync::mpsc::Receiver<usize>) -> Option<usize> {
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(n) => Some(n),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("a result was never dropped"),
    }
}

/// The result of a coroutine whose handle is dropped is dropped exactly once, by whichever
/// of the two lets go last, for results kept in place and boxed.
#[test]
fn an_unjoined_result_is_dropped_once_whoever_lets_go_last() {
    fn check<const N: usize>() {
        // The handle goes first: the finishing coroutine drops its own result.
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = coronet_runtime::chan::bounded::<()>(1);
        let handle = spawn(move || {
            go_rx.recv().unwrap();
            Reported(dropped_tx, [7; N])
        });
        drop(handle);
        go_tx.send(()).unwrap();
        assert_eq!(next_drop(&dropped_rx), Some(N));
        assert_eq!(next_drop(&dropped_rx), None, "dropped twice");

        // The coroutine finishes first: dropping the handle drops the stored result.
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
        let handle = spawn(move || Reported(dropped_tx, [7; N]));
        while !handle.is_finished() {
            std::thread::yield_now();
        }
        assert!(dropped_rx.try_recv().is_err(), "dropped before the handle");
        drop(handle);
        assert_eq!(next_drop(&dropped_rx), Some(N));
        assert_eq!(next_drop(&dropped_rx), None, "dropped twice");
    }
    check::<0>();
    check::<8>();
}

/// Joining hands the result over without dropping it, in place or boxed.
#[test]
fn a_joined_result_is_moved_out_not_dropped() {
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    let small = spawn({
        let tx = dropped_tx.clone();
        move || Reported(tx, [])
    });
    let large = spawn(move || Reported(dropped_tx, [2; 8]));
    let small = small.join().unwrap();
    let large = large.join().unwrap();
    assert!(
        dropped_rx.try_recv().is_err(),
        "a joined result was dropped"
    );
    assert_eq!(large.1, [2; 8]);
    drop((small, large));
    let mut seen: Vec<usize> = dropped_rx.iter().collect();
    seen.sort_unstable();
    assert_eq!(seen, [0, 8]);
}

/// A result whose destructor panics, dropped by its finishing coroutine because nobody holds
/// the handle any more: the panic is reported and the same worker thread keeps serving (a
/// worker killed by the panic would be replaced by a spare thread, which the thread ids tell
/// apart).
#[test]
fn a_detached_result_that_panics_on_drop_leaves_the_worker_serving() {
    struct PanicsOnDrop(std::sync::mpsc::Sender<std::thread::ThreadId>);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
            panic!("a result that panics on drop");
        }
    }
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(1)
        .build()
        .unwrap();
    let (thread_tx, thread_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = coronet_runtime::chan::bounded::<()>(1);
    let result_tx = thread_tx.clone();
    drop(rt.spawn(move || {
        go_rx.recv().unwrap();
        PanicsOnDrop(result_tx)
    }));
    go_tx.send(()).unwrap();
    let bound = std::time::Duration::from_secs(60);
    let dropped_on = thread_rx.recv_timeout(bound).unwrap();
    drop(thread_tx);
    assert!(
        runs_again_on(&rt, dropped_on),
        "the worker thread that dropped the result no longer runs coroutines"
    );
}

/// Whether worker thread `worker` still runs coroutines of `rt`. The monitor may have
/// started a spare meanwhile (a panic hook printing a backtrace can hold a worker for a
/// while), so coroutines are spawned until one runs on `worker`; a dead worker never runs
/// one, and the search gives up after a bound.
fn runs_again_on(rt: &coronet_runtime::Runtime, worker: std::thread::ThreadId) -> bool {
    (0..100_000).any(|_| rt.spawn(|| std::thread::current().id()).join().unwrap() == worker)
}

/// A coroutine-local value whose destructor panics as its coroutine finishes: the panic is
/// reported, the joiner still gets the body's result, the other values are dropped, and the
/// same worker thread keeps serving.
#[test]
fn a_local_that_panics_on_drop_leaves_the_worker_serving() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a coroutine-local that panics on drop");
        }
    }
    struct Reports(Option<std::sync::mpsc::Sender<&'static str>>);
    impl Drop for Reports {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send("dropped");
            }
        }
    }
    coronet_runtime::coroutine_local! {
        static FIRST: std::cell::RefCell<Option<PanicsOnDrop>> = std::cell::RefCell::new(None);
        static SECOND: std::cell::RefCell<Reports> = std::cell::RefCell::new(Reports(None));
    }
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(1)
        .build()
        .unwrap();
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    let first = rt.spawn(move || {
        FIRST.with(|v| *v.borrow_mut() = Some(PanicsOnDrop));
        SECOND.with(|v| v.borrow_mut().0 = Some(dropped_tx));
        std::thread::current().id()
    });
    // Joined from a plain thread, so that a body that never completes fails the test.
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || joined_tx.send(first.join().ok()));
    let bound = std::time::Duration::from_secs(60);
    let ran_on = joined_rx
        .recv_timeout(bound)
        .expect("the coroutine completes")
        .expect("the body's result, not the local's panic");
    assert_eq!(dropped_rx.recv_timeout(bound), Ok("dropped"));
    assert!(
        runs_again_on(&rt, ran_on),
        "the worker thread that dropped the local no longer runs coroutines"
    );
}

/// Joiners publishing their waker race the coroutine finishing on another worker, from
/// coroutines and from plain threads, with results kept in place and boxed.
#[test]
fn joins_racing_completion_get_every_result() {
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(2)
        .build()
        .unwrap();
    let rt = Arc::new(rt);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    // A plain-thread joiner, with a one-word result.
                    assert_eq!(rt.spawn(move || t * i).join().unwrap(), t * i);
                }
                // A coroutine joiner, with a boxed result.
                rt.block_on(move || {
                    for i in 0..10_000u64 {
                        let child = spawn(move || [t, i, t + i, 7]);
                        assert_eq!(child.join().unwrap(), [t, i, t + i, 7]);
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// A coroutine that joins its own handle panics (as a thread joining itself does in std)
/// instead of waiting for itself forever.
#[test]
fn a_coroutine_joining_itself_panics_instead_of_hanging() {
    let (handle_tx, handle_rx) = coronet_runtime::chan::bounded::<coroutine::JoinHandle<()>>(1);
    let (outcome_tx, outcome_rx) = std::sync::mpsc::channel();
    let handle = spawn(move || {
        let own = handle_rx.recv().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| own.join()));
        let message = match outcome {
            Ok(_) => "returned".to_string(),
            Err(payload) => payload
                .downcast_ref::<&str>()
                .map_or("another panic", |m| m)
                .to_string(),
        };
        outcome_tx.send(message).unwrap();
    });
    handle_tx.send(handle).unwrap();
    let message = outcome_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the self-join neither panicked nor returned");
    assert_eq!(
        message,
        "coronet: a coroutine cannot join itself (it would wait forever)"
    );
}

/// As std's, a join handle can be sent and shared whatever its result type (a `Cell` is
/// `Send` but not `Sync`): only `spawn`, which requires a `Send` result, makes one.
#[test]
fn join_handles_are_send_and_sync() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<coroutine::JoinHandle<std::cell::Cell<u8>>>();
    send_and_sync::<coroutine::JoinHandle<()>>();
    let handle = spawn(|| std::cell::Cell::new(7u8));
    let value = std::thread::spawn(move || handle.join().unwrap().get())
        .join()
        .unwrap();
    assert_eq!(value, 7);
}

#[test]
fn a_closure_too_large_for_the_control_block_runs_and_drops_its_captures() {
    // 64 words of captures: more than the control block keeps inline, so the body is boxed
    // until the first run.
    let words: [u64; 64] = std::array::from_fn(|i| i as u64);
    let witness = Arc::new(());
    let held = witness.clone();
    let sum = spawn(move || {
        let _held = held;
        words.iter().sum::<u64>()
    })
    .join()
    .unwrap();
    assert_eq!(sum, 63 * 64 / 2);
    assert_eq!(
        Arc::strong_count(&witness),
        1,
        "the captures were not dropped"
    );
}

#[test]
fn a_stack_size_no_stack_can_have_is_the_spawners_error() {
    let error = coroutine::Builder::new()
        .stack_size(usize::MAX)
        .spawn(|| ())
        .expect_err("a stack of usize::MAX bytes cannot exist");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_stack_that_cannot_be_mapped_fails_the_coroutine_not_the_spawner_or_the_worker() {
    // A valid size that no address space has room for: the stack is taken at the first run,
    // so the spawn succeeds and the coroutine ends unrun, its join reporting why.
    let witness = Arc::new(());
    let held = witness.clone();
    let handle = coroutine::Builder::new()
        .name("too-big".into())
        .stack_size(usize::MAX / 2)
        .spawn(move || {
            let _held = held;
            unreachable!("a coroutine without a stack ran")
        })
        .expect("spawn takes no stack");
    let payload = handle.join().expect_err("the coroutine cannot have run");
    let message = payload
        .downcast_ref::<String>()
        .expect("the error is a message");
    assert!(message.contains("could not start"), "{message}");
    assert!(message.contains("'too-big'"), "{message}");
    assert_eq!(
        Arc::strong_count(&witness),
        1,
        "the captures were not dropped"
    );
    // The worker that failed to start it goes on serving.
    let ok: Vec<_> = (0..100).map(|i| spawn(move || i)).collect();
    assert_eq!(ok.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 4950);
}
