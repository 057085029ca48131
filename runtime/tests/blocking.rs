//! `blocking`: runs on the pool, returns the value, propagates panics, may borrow.

use coronet_runtime::{blocking, run, spawn};

#[test]
fn blocking_returns_the_value() {
    let value = run(|| blocking(|| 6 * 7));
    assert_eq!(value, 42);
}

#[test]
fn blocking_runs_on_another_thread_and_may_borrow_the_stack() {
    run(|| {
        let data = [1u32, 2, 3];
        let worker = std::thread::current().id();
        let (sum, pool_thread) =
            blocking(|| (data.iter().sum::<u32>(), std::thread::current().id()));
        assert_eq!(sum, 6);
        assert_ne!(worker, pool_thread);
    });
}

#[test]
fn blocking_propagates_a_panic() {
    let result = spawn(|| blocking(|| -> u32 { panic!("inside the pool") })).join();
    let payload = result.expect_err("panic must propagate");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside the pool"));
    // The pool keeps working.
    assert_eq!(run(|| blocking(|| 1)), 1);
}

#[test]
fn many_coroutines_block_at_once() {
    let total = run(|| {
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                spawn(move || {
                    blocking(move || {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        i
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, 63 * 64 / 2);
}

#[test]
fn blocking_on_a_plain_thread_runs_inline() {
    let here = std::thread::current().id();
    assert_eq!(blocking(|| std::thread::current().id()), here);
}
