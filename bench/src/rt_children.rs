//! The runtime measurements of the Rust peers, each run in a child process of its own
//! (`coronet-bench rt <peer> <test> <n> <workers>`) so that runtimes, heaps and stack pools
//! never meet. A child prints `RESULT <value> [<value>]`:
//!
//! * `spawn`, `spawn-wg`, `yield`, `pingpong`: nanoseconds per operation (spawn+join of one
//!   coroutine, joined by its handle or by a `WaitGroup`; one yield; one channel round trip),
//!   measured after a warm-up of a tenth of `n`;
//! * `park`: resident bytes per parked coroutine and the milliseconds taken to start them;
//!   `PROGRESS <count>` lines come first, so a child killed by a limit shows how far it got;
//! * `floor touch <n>`: the machine's floor under `park`, milliseconds for a plain loop to
//!   write once to each of `n` fresh pages (no runtime involved);
//! * `floor switch <n>`: the floor under `yield` and `pingpong`, nanoseconds for one bare
//!   corosensei resume and suspend (the two stack switches of a yield; a ping-pong round
//!   trip needs two such pairs), no runtime involved.
//!
//! The Go peer's twin of this file is bench/go/runtime.go.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{per_op, rss_bytes, time};

pub fn run(args: &[String]) {
    let usage =
        "usage: coronet-bench rt <coronet|may|tokio> <spawn|spawn-wg|yield|pingpong|park> <n> <workers>\n       coronet-bench rt floor <touch|switch> <n> 1";
    let [peer, test, n, workers] = args else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(n), Ok(workers)) = (n.parse::<u64>(), workers.parse::<usize>()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let workers = workers.max(1);
    let result = match (peer.as_str(), test.as_str()) {
        ("coronet", "spawn") => Ok(vec![coronet_spawn(n, workers)]),
        ("coronet", "spawn-wg") => Ok(vec![coronet_spawn_waitgroup(n, workers)]),
        ("coronet", "yield") => Ok(vec![coronet_yield(n, workers)]),
        ("coronet", "pingpong") => Ok(vec![coronet_pingpong(n, workers)]),
        ("coronet", "park") => coronet_park(n as usize, workers),
        ("floor", "touch") => floor_touch(n as usize),
        ("floor", "switch") => Ok(vec![floor_switch(n)]),
        ("may", "spawn") => Ok(vec![may_spawn(n, workers)]),
        ("may", "yield") => Ok(vec![may_yield(n, workers)]),
        ("may", "pingpong") => Ok(vec![may_pingpong(n, workers)]),
        ("may", "park") => may_park(n as usize, workers),
        ("tokio", "spawn") => tokio_spawn(n, workers).map(|v| vec![v]),
        ("tokio", "yield") => tokio_yield(n, workers).map(|v| vec![v]),
        ("tokio", "pingpong") => tokio_pingpong(n, workers).map(|v| vec![v]),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(values) => {
            let values: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
            println!("RESULT {}", values.join(" "));
            let _ = io::stdout().flush();
            // Parked coroutines never finish: leave without tearing the runtime down.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("rt {peer} {test}: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs `f(n / 10)` as a warm-up, then `f(n)`, and returns nanoseconds per operation.
fn warm(n: u64, ops_per_n: u64, mut f: impl FnMut(u64) -> Duration) -> f64 {
    f((n / 10).max(1));
    per_op(f(n), n * ops_per_n)
}

fn progress(count: usize) {
    if count % 1024 == 0 {
        println!("PROGRESS {count}");
        let _ = io::stdout().flush();
    }
}

/// Waits (bounded) until `counter` reaches `n`.
fn wait_for(counter: &AtomicUsize, n: usize) -> io::Result<()> {
    wait_for_unless(counter, n, || None)
}

/// [`wait_for`], giving up with the error `failed` returns.
fn wait_for_unless(
    counter: &AtomicUsize,
    n: usize,
    failed: impl Fn() -> Option<io::Error>,
) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::Relaxed) < n {
        if let Some(error) = failed() {
            return Err(error);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(
                "coroutines did not all start within 120 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

// --- coronet -------------------------------------------------------------------------

fn coronet_rt(workers: usize) -> coronet::Runtime {
    coronet::runtime::Builder::new()
        .workers(workers)
        .build()
        .expect("coronet runtime")
}

/// Spawns `n` trivial coroutines from one coroutine and joins them all.
fn coronet_spawn(n: u64, workers: usize) -> f64 {
    let rt = coronet_rt(workers);
    warm(n, 1, |n| {
        rt.block_on(move || {
            time(|| {
                let handles: Vec<_> = (0..n).map(|i| coronet::spawn(move || i)).collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.join().unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
            })
        })
    })
}

/// Spawns `n` trivial coroutines from one coroutine and waits for them with a `WaitGroup`,
/// dropping every join handle: Go's `spawnJoin` (bench/go/runtime.go) in coronet.
fn coronet_spawn_waitgroup(n: u64, workers: usize) -> f64 {
    let rt = coronet_rt(workers);
    warm(n, 1, |n| {
        rt.block_on(move || {
            time(|| {
                // Go's goroutines capture `&sum`, a pointer without a count: a `'static`
                // reference here (one leaked word per run), not an `Arc` cloned per spawn.
                let sum: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
                let group = coronet::sync::WaitGroup::new();
                for i in 0..n {
                    let member = group.clone();
                    drop(coronet::spawn(move || {
                        sum.fetch_add(i, Ordering::Relaxed);
                        drop(member);
                    }));
                }
                group.wait();
                assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
            })
        })
    })
}

/// Two coroutines yield to each other `n` times each; time per `yield_now`.
fn coronet_yield(n: u64, workers: usize) -> f64 {
    let rt = coronet_rt(workers);
    warm(n, 2, |n| {
        rt.block_on(move || {
            time(|| {
                let other = coronet::spawn(move || {
                    for _ in 0..n {
                        coronet::yield_now();
                    }
                });
                for _ in 0..n {
                    coronet::yield_now();
                }
                other.join().unwrap();
            })
        })
    })
}

/// A value goes to a second coroutine and back over two channels of capacity 1.
fn coronet_pingpong(n: u64, workers: usize) -> f64 {
    let rt = coronet_rt(workers);
    warm(n, 1, |n| {
        rt.block_on(move || {
            let (ping_tx, ping_rx) = coronet::chan::bounded::<u64>(1);
            let (pong_tx, pong_rx) = coronet::chan::bounded::<u64>(1);
            let echo = coronet::spawn(move || {
                for v in ping_rx.iter() {
                    if pong_tx.send(v + 1).is_err() {
                        break;
                    }
                }
            });
            let elapsed = time(|| {
                for i in 0..n {
                    ping_tx.send(i).unwrap();
                    assert_eq!(pong_rx.recv().unwrap(), i + 1);
                }
            });
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        })
    })
}

/// Parks `n` coroutines; resident bytes per coroutine and milliseconds to start them all.
fn coronet_park(n: usize, workers: usize) -> io::Result<Vec<f64>> {
    let rt = coronet_rt(workers);
    // Warm up the runtime's threads and allocator.
    rt.block_on(|| coronet::spawn(|| ()).join().unwrap());
    // The parked coroutines never finish: one that does could not start (no stack at its
    // first run; coronet takes stacks then, and says why on stderr). The spawning
    // coroutine below finishes too, before `block_on` returns.
    let completed_before = rt.stats().completed + 1;
    let before = rss_bytes();
    let started = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    rt.block_on({
        let started = started.clone();
        move || {
            for i in 0..n {
                let started = started.clone();
                coronet::coroutine::Builder::new().spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    loop {
                        coronet::park();
                    }
                })?;
                progress(i + 1);
            }
            Ok::<_, io::Error>(())
        }
    })
    .map_err(|e| io::Error::other(format!("spawn failed: {e}")))?;
    wait_for_unless(&started, n, || {
        let failed = rt.stats().completed - completed_before;
        (failed > 0).then(|| {
            io::Error::other(format!(
                "{failed} coroutines could not start after about {} had (see the messages above)",
                started.load(Ordering::Relaxed)
            ))
        })
    })?;
    let spawn_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = rss_bytes();
    // The process exits next (see `run`): dropping the runtime here would first unwind every
    // parked coroutine, seconds of work at a million that nobody measures.
    std::mem::forget(rt);
    Ok(vec![
        after.saturating_sub(before) as f64 / n as f64,
        spawn_ms,
    ])
}

/// Writes once to each of `n` fresh pages spaced like coronet's stacks (one 128 KiB stack
/// each, the first frame at the top), as a plain loop: what starting `n` parked coroutines
/// costs in page faults alone, whatever the runtime. Milliseconds.
fn floor_touch(n: usize) -> io::Result<Vec<f64>> {
    const STRIDE: usize = 128 * 1024;
    let len = n
        .checked_mul(STRIDE)
        .ok_or_else(|| io::Error::other("page count too large"))?;
    // SAFETY: a new private anonymous mapping at an address of the kernel's choice; nothing
    // else refers to that range. The result is checked before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = base.cast::<u8>();
    let start = Instant::now();
    for i in 0..n {
        // SAFETY: `i * STRIDE + STRIDE - 64` < `n * STRIDE` = `len`: inside the mapping,
        // which stays mapped until the process exits.
        unsafe { base.add(i * STRIDE + STRIDE - 64).write_volatile(1) };
    }
    Ok(vec![start.elapsed().as_secs_f64() * 1e3])
}

/// One resume of a bare corosensei coroutine that suspends at once, `n` times: the two
/// stack switches every yield and every hand-off between coroutines pays, with nothing of a
/// scheduler around them. Nanoseconds per resume+suspend pair.
fn floor_switch(n: u64) -> f64 {
    let make = || -> corosensei::Coroutine<(), (), ()> {
        corosensei::Coroutine::new(|yielder, ()| loop {
            yielder.suspend(());
        })
    };
    let mut pair = [make(), make()];
    warm(n, 1, |n| {
        time(|| {
            for i in 0..n {
                std::hint::black_box(pair[(i & 1) as usize].resume(()));
            }
        })
    })
}

// --- may -----------------------------------------------------------------------------

/// Runs `f` on a may coroutine and waits for it.
fn may_block_on<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: may requires that a coroutine not rely on thread-locals across its switches;
    // the closures of this file use none.
    let handle = unsafe { may::coroutine::spawn(f) };
    handle.join().expect("may coroutine panicked")
}

fn may_spawn(n: u64, workers: usize) -> f64 {
    crate::servers::may_configure(workers);
    warm(n, 1, |n| {
        may_block_on(move || {
            time(|| {
                let handles: Vec<_> = (0..n)
                    // SAFETY: the coroutine returns its argument and touches no thread-local.
                    .map(|i| unsafe { may::coroutine::spawn(move || i) })
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.join().unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
            })
        })
    })
}

fn may_yield(n: u64, workers: usize) -> f64 {
    crate::servers::may_configure(workers);
    warm(n, 2, |n| {
        may_block_on(move || {
            time(|| {
                // SAFETY: the coroutine only yields; no thread-locals.
                let other = unsafe {
                    may::coroutine::spawn(move || {
                        for _ in 0..n {
                            may::coroutine::yield_now();
                        }
                    })
                };
                for _ in 0..n {
                    may::coroutine::yield_now();
                }
                other.join().unwrap();
            })
        })
    })
}

fn may_pingpong(n: u64, workers: usize) -> f64 {
    crate::servers::may_configure(workers);
    warm(n, 1, |n| {
        may_block_on(move || {
            let (ping_tx, ping_rx) = may::sync::mpsc::channel::<u64>();
            let (pong_tx, pong_rx) = may::sync::mpsc::channel::<u64>();
            // SAFETY: the coroutine only uses may's channels; no thread-locals.
            let echo = unsafe {
                may::coroutine::spawn(move || {
                    while let Ok(v) = ping_rx.recv() {
                        if pong_tx.send(v + 1).is_err() {
                            break;
                        }
                    }
                })
            };
            let elapsed = time(|| {
                for i in 0..n {
                    ping_tx.send(i).unwrap();
                    assert_eq!(pong_rx.recv().unwrap(), i + 1);
                }
            });
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        })
    })
}

fn may_park(n: usize, workers: usize) -> io::Result<Vec<f64>> {
    crate::servers::may_configure(workers);
    may_block_on(|| ());
    let before = rss_bytes();
    let started = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    {
        let started = started.clone();
        may_block_on(move || {
            for i in 0..n {
                let started = started.clone();
                // SAFETY: the coroutine counts itself and parks; no thread-locals.
                let spawned = unsafe {
                    may::coroutine::Builder::new().spawn(move || {
                        started.fetch_add(1, Ordering::Relaxed);
                        loop {
                            may::coroutine::park();
                        }
                    })
                };
                if let Err(e) = spawned {
                    return Err(io::Error::other(format!("spawn failed after {i}: {e}")));
                }
                progress(i + 1);
            }
            Ok(())
        })?;
    }
    wait_for(&started, n)?;
    let spawn_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = rss_bytes();
    Ok(vec![
        after.saturating_sub(before) as f64 / n as f64,
        spawn_ms,
    ])
}

// --- tokio ---------------------------------------------------------------------------

/// One worker: the current-thread runtime (both tasks on one thread); more: multi-thread.
fn tokio_rt(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    if workers == 1 {
        tokio::runtime::Builder::new_current_thread().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
    }
}

fn tokio_spawn(n: u64, workers: usize) -> io::Result<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()?;
    Ok(warm(n, 1, |n| {
        // Spawned from a task, as the coroutines of the other peers are.
        rt.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                assert_eq!(sum, n * (n - 1) / 2);
                start.elapsed()
            })
            .await
            .unwrap()
        })
    }))
}

fn tokio_yield(n: u64, workers: usize) -> io::Result<f64> {
    let rt = tokio_rt(workers)?;
    Ok(warm(n, 2, |n| {
        rt.block_on(async move {
            let start = Instant::now();
            let other = tokio::spawn(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            });
            let me = tokio::spawn(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            });
            me.await.unwrap();
            other.await.unwrap();
            start.elapsed()
        })
    }))
}

fn tokio_pingpong(n: u64, workers: usize) -> io::Result<f64> {
    let rt = tokio_rt(workers)?;
    Ok(warm(n, 1, |n| {
        rt.block_on(async move {
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let echo = tokio::spawn(async move {
                while let Some(v) = ping_rx.recv().await {
                    if pong_tx.send(v + 1).await.is_err() {
                        break;
                    }
                }
            });
            let driver = tokio::spawn(async move {
                let start = Instant::now();
                for i in 0..n {
                    ping_tx.send(i).await.unwrap();
                    assert_eq!(pong_rx.recv().await.unwrap(), i + 1);
                }
                start.elapsed()
            });
            let elapsed = driver.await.unwrap();
            echo.await.unwrap();
            elapsed
        })
    }))
}
