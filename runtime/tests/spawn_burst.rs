//! A burst of spawns holds no stacks for the coroutines still queued: a coroutine takes its
//! stack when it first runs. Alone in its own test binary, because the count of mapped
//! stacks is the whole process's.

use coronet_runtime::runtime::{stats, Builder};

#[test]
fn coroutines_spawned_but_not_yet_run_hold_no_stacks() {
    const BURST: u64 = 20_000;
    let rt = Builder::new().workers(1).build().unwrap();
    let (mapped_before, mapped_queued, sum) = rt.block_on(|| {
        let mapped_before = stats().stacks_mapped;
        // One worker, and this coroutine does not park or yield until it joins: none of
        // the burst can run before the count below.
        let handles: Vec<_> = (0..BURST)
            .map(|i| coronet_runtime::spawn(move || i))
            .collect();
        let mapped_queued = stats().stacks_mapped;
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (mapped_before, mapped_queued, sum)
    });
    assert_eq!(sum, BURST * (BURST - 1) / 2);
    // Taken at spawn, the burst would have mapped a stack per queued coroutine.
    assert_eq!(
        mapped_queued, mapped_before,
        "stacks were mapped for coroutines that had not run"
    );
}
