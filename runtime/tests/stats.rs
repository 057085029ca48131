//! The counters of `runtime::stats()` count what they claim.

use std::time::Duration;

use coronet_runtime::runtime::Builder;

#[test]
fn stats_count_spawns_switches_parks_and_timers() {
    let rt = Builder::new().workers(2).build().unwrap();
    let before = rt.stats();
    assert_eq!(before.workers, 2);
    assert_eq!(before.alive, 0);
    rt.block_on(|| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                coronet_runtime::spawn(|| {
                    coronet_runtime::yield_now();
                    coronet_runtime::sleep(Duration::from_millis(1));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let after = rt.stats();
    // block_on's own coroutine plus the 100 children.
    assert_eq!(after.spawned - before.spawned, 101);
    assert_eq!(after.completed, 101);
    assert_eq!(after.alive, 0);
    // Each child: start, yield, sleep = at least 3 resumes, 1 park.
    assert!(after.switches >= 300, "{after:?}");
    assert!(after.parks >= 100, "{after:?}");
    assert!(after.polls >= 1, "{after:?}");
    assert_eq!(after.timers, 0);
    assert!(after.stacks_mapped >= 1);
}

#[test]
fn pending_timers_are_counted() {
    let rt = Builder::new().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sleeper = rt.spawn(move || {
        tx.send(()).unwrap();
        coronet_runtime::sleep(Duration::from_millis(200));
    });
    rx.recv().unwrap();
    // The sleeper arms its timer right after sending; wait for the park to be committed.
    let mut seen = 0;
    for _ in 0..10_000 {
        seen = rt.stats().timers;
        if seen == 1 {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(seen, 1);
    sleeper.join().unwrap();
    assert_eq!(rt.stats().timers, 0);
}

/// A finished coroutine leaves `alive` and the dump as soon as it is joined, although its
/// worker removes finished coroutines from the registry in batches.
#[test]
fn finished_coroutines_leave_the_count_and_the_dump_at_once() {
    let rt = Builder::new().workers(2).build().unwrap();
    let dumped_finished = rt.block_on(|| {
        let alive_before = coronet_runtime::runtime::stats().alive;
        // Fewer than a removal batch, so their entries may still be in the registry.
        let handles: Vec<_> = (0..10u64)
            .map(|i| coronet_runtime::spawn(move || i))
            .collect();
        let ids: Vec<_> = handles.iter().map(|h| h.coroutine().id()).collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64);
        }
        assert_eq!(coronet_runtime::runtime::stats().alive, alive_before);
        coronet_runtime::runtime::dump()
            .iter()
            .filter(|c| ids.contains(&c.id))
            .count()
    });
    assert_eq!(dumped_finished, 0, "joined coroutines listed in the dump");
    assert_eq!(rt.stats().alive, 0);
}
