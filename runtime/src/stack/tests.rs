//! Tests of the stack pool. Tests that count stacks or mappings hold `serial()`, since the
//! pool is process-wide; each uses its own size class so leftovers of one cannot satisfy
//! another. Overflow and map-limit behaviour is checked in child processes (the test binary
//! re-executes itself with `CHILD_ENV` naming the scenario).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, PoisonError};

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};

use super::*;

const CHILD_ENV: &str = "CORONET_STACK_OVERFLOW_CHILD";

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether one byte at `addr` can be read, asked of the kernel (write(2) from an
/// inaccessible address fails with EFAULT instead of raising SIGSEGV).
fn readable(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the kernel validates the source address; a bad one yields EFAULT, not a fault.
    let n = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the pipe we just opened.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    if n != 1 {
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EFAULT),
            "unexpected write error"
        );
    }
    n == 1
}

/// The /proc/self/maps line of the mapping containing `addr`.
fn maps_line(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .find(|line| {
            let range = line.split(' ').next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            (lo..hi).contains(&addr)
        })
        .unwrap_or_else(|| panic!("no mapping contains {addr:#x}"))
        .to_string()
}

fn guard_range(stack: &PooledStack) -> (usize, usize) {
    (stack.limit().get(), stack.base().get() - stack.size())
}

#[test]
fn stacks_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<PooledStack>();
    send::<LocalCache>();
}

#[test]
fn mapping_errors_name_the_limit_only_near_it() {
    let near = sys::map_limit_error(Some(65_500), Some(65_530), 0).to_string();
    assert!(
        near.contains("reached vm.max_map_count (65530 mappings"),
        "{near}"
    );
    assert!(near.contains("sysctl -w vm.max_map_count="), "{near}");
    let far = sys::map_limit_error(Some(100), Some(65_530), 0);
    assert_eq!(far.kind(), io::ErrorKind::OutOfMemory);
    assert!(
        far.to_string().contains("out of memory or address space"),
        "{far}"
    );
    let other = sys::mapping_error(io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(other.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn sizes_round_up_to_whole_pages() {
    let page = sys::page_size();
    assert_eq!(class_size(0).unwrap(), MIN_STACK_SIZE);
    assert_eq!(
        class_size(MIN_STACK_SIZE + 1).unwrap(),
        MIN_STACK_SIZE + page
    );
    assert_eq!(class_size(DEFAULT_STACK_SIZE).unwrap(), DEFAULT_STACK_SIZE);
    assert_eq!(
        class_size(usize::MAX).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn released_stacks_are_reused_without_new_mappings() {
    let _serial = serial();
    let size = 20 * 1024;
    let first = allocate(size).unwrap();
    assert_eq!(first.size(), size);
    let top = first.base();
    let allocated = stacks_allocated();
    release(first);
    let pooled = stacks_pooled();
    let again = allocate(size).unwrap();
    assert_eq!(
        again.base(),
        top,
        "the pool hands back the stack just released"
    );
    assert_eq!(stacks_allocated(), allocated);
    assert_eq!(stacks_pooled(), pooled - 1);

    let mut cache = LocalCache::new();
    cache.release(again);
    assert_eq!(stacks_pooled(), pooled - 1, "the local cache keeps it");
    let from_cache = cache.allocate(size - 100).unwrap();
    assert_eq!(from_cache.base(), top);
    assert_eq!(stacks_allocated(), allocated);
    cache.release(from_cache);
    drop(cache);
    assert_eq!(
        stacks_pooled(),
        pooled,
        "dropping the cache returns its stacks"
    );
}

#[test]
fn every_stack_has_an_inaccessible_guard_page() {
    let _serial = serial();
    let stacks: Vec<_> = (0..3).map(|_| allocate(24 * 1024).unwrap()).collect();
    for stack in &stacks {
        let (guard, usable) = guard_range(stack);
        assert_eq!(usable - guard, sys::page_size());
        assert!(!readable(guard), "guard page at {guard:#x} is accessible");
        assert!(!readable(usable - 1), "last guard byte is accessible");
        assert!(readable(usable), "lowest usable byte is not accessible");
        assert!(
            readable(stack.base().get() - 1),
            "highest usable byte is not accessible"
        );
        let line = maps_line(guard);
        match guard_kind() {
            GuardKind::Mprotect => assert!(line.contains(" ---p "), "{line}"),
            // The guard lives in the page tables; the mapping stays one read-write VMA that
            // also holds the usable part of the stack.
            GuardKind::Madvise => {
                assert!(line.contains(" rw-p "), "{line}");
                assert_eq!(maps_line(usable), line);
            }
        }
    }
}

#[test]
fn a_coroutine_runs_on_a_pooled_stack() {
    let _serial = serial();
    let mut cache = LocalCache::new();
    let stack = cache.allocate(32 * 1024).unwrap();
    let top = stack.base();
    let allocated = stacks_allocated();
    let mut coroutine = Coroutine::with_stack(stack, |yielder, input: u32| {
        let local = [input as u8; 8 * 1024]; // commits a few more pages
        let got = yielder.suspend(std::hint::black_box(&local)[100] as u32 + 1);
        got * 2
    });
    assert!(matches!(coroutine.resume(5), CoroutineResult::Yield(6)));
    assert!(matches!(coroutine.resume(21), CoroutineResult::Return(42)));
    assert!(coroutine.done());
    cache.release(coroutine.into_stack());

    let stack = cache.allocate(32 * 1024).unwrap();
    assert_eq!(stack.base(), top);
    let mut coroutine: Coroutine<u32, (), u32, _> =
        Coroutine::with_stack(stack, |_, input: u32| input + 1);
    assert!(matches!(coroutine.resume(1), CoroutineResult::Return(2)));
    cache.release(coroutine.into_stack());
    assert_eq!(stacks_allocated(), allocated);
}

#[test]
fn idle_stacks_beyond_the_warm_limit_are_decommitted() {
    let _serial = serial();
    let size = 36 * 1024;
    let extra = 50;
    let stacks: Vec<_> = (0..WARM_PER_CLASS + extra)
        .map(|_| allocate(size).unwrap())
        .collect();
    for stack in &stacks {
        let top_word = (stack.base().get() - 8) as *mut u64;
        // SAFETY: the highest word of a stack we own and nothing runs on.
        unsafe { top_word.write(0xC0FFEE) };
    }
    let pooled = stacks_pooled();
    // Released first, so least recently used: the ones a trim gives back.
    let cold: Vec<usize> = stacks[..extra].iter().map(|s| s.base().get()).collect();
    drop(stacks); // releasing makes no syscall: all of them stay warm for now
    assert_eq!(stacks_pooled(), pooled + WARM_PER_CLASS + extra);
    // A trim decommits only stacks idle for a whole window: the first call opens it.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut trimmed = 0;
    while trimmed < extra && std::time::Instant::now() < give_up {
        trimmed += trim(usize::MAX);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(trimmed >= extra, "trimmed {trimmed}");
    let mut zeroed = 0;
    for top in &cold {
        // SAFETY: an idle stack of the pool, which nothing runs on (this test holds the only
        // handles to its class, and `serial()`); decommitted pages read back as zeros.
        if unsafe { ((top - 8) as *const u64).read() } == 0 {
            zeroed += 1;
        }
        assert!(!readable(top - size - 1), "decommit removed a guard page");
    }
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(zeroed, extra);
    }
    // Warm stacks are handed out before cold ones.
    let again = allocate(size).unwrap();
    assert!(!cold.contains(&again.base().get()));
}

/// Checks the guard and the edges of the usable range of `stack`, as
/// `every_stack_has_an_inaccessible_guard_page` does.
fn assert_guarded(stack: &PooledStack) {
    let (guard, usable) = guard_range(stack);
    assert!(!readable(guard), "guard page at {guard:#x} is accessible");
    assert!(!readable(usable - 1), "last guard byte is accessible");
    assert!(readable(usable), "lowest usable byte is not accessible");
}

#[test]
fn a_worker_cache_carves_guarded_stacks_in_a_batch() {
    let _serial = serial();
    // Sizes no other test uses, so the pool holds no idle stack of these classes.
    for (size, batched) in [(72 * 1024, true), (76 * 1024, false)] {
        let was = pool::BATCH_GUARDS.swap(batched, std::sync::atomic::Ordering::Relaxed);
        let mut cache = LocalCache::new();
        let allocated = stacks_allocated();
        let stacks: Vec<_> = (0..LOCAL_PER_CLASS / 2 + 1)
            .map(|_| cache.allocate(size).unwrap())
            .collect();
        pool::BATCH_GUARDS.store(was, std::sync::atomic::Ordering::Relaxed);
        // With madvise guards, two carves of half a cache each, whether the kernel took the
        // batched call or the pool fell back to one guard call per slot; otherwise (batching
        // off, or mprotect guards) one stack per carve.
        let carved = stacks_allocated() - allocated;
        let expected = if batched && guard_kind() == GuardKind::Madvise {
            LOCAL_PER_CLASS
        } else {
            LOCAL_PER_CLASS / 2 + 1
        };
        assert!(carved >= expected, "carved {carved} stacks of {size} bytes");
        for stack in &stacks {
            assert_guarded(stack);
        }
    }
}

/// Whether the page holding `addr` is resident, asked of the kernel with mincore(2).
#[cfg(target_os = "linux")]
fn resident(addr: usize) -> bool {
    let page = page_size();
    let mut vec = 0u8;
    // SAFETY: the kernel reads nothing from us and writes one byte for the one page asked.
    let ret = unsafe { libc::mincore((addr / page * page) as *mut libc::c_void, page, &mut vec) };
    assert_eq!(ret, 0, "mincore: {}", std::io::Error::last_os_error());
    vec & 1 == 1
}

#[test]
#[cfg(target_os = "linux")]
fn a_batch_of_fresh_stacks_has_only_its_top_pages_committed() {
    let _serial = serial();
    // A size no other test uses, so every stack below is freshly carved.
    let size = 84 * 1024;
    let mut cache = LocalCache::new();
    let stacks: Vec<_> = (0..LOCAL_PER_CLASS / 2)
        .map(|_| cache.allocate(size).unwrap())
        .collect();
    let batched = guard_kind() == GuardKind::Madvise
        && pool::BATCH_GUARDS.load(std::sync::atomic::Ordering::Relaxed);
    let page = page_size();
    for stack in &stacks {
        let top = stack.base().get();
        let (_, usable) = guard_range(stack);
        // Without the batched call (older kernels, mprotect guards) the pages fault in on
        // first write instead.
        assert_eq!(resident(top - 1), batched, "top page of {top:#x}");
        assert!(
            !resident(top - page - 1),
            "second page of {top:#x} committed"
        );
        assert!(!resident(usable), "bottom page of {top:#x} committed");
    }
}

#[test]
fn the_local_cache_moves_stacks_in_batches() {
    let _serial = serial();
    let size = 40 * 1024;
    let stacks: Vec<_> = (0..LOCAL_PER_CLASS + 1)
        .map(|_| allocate(size).unwrap())
        .collect();
    let pooled = stacks_pooled();
    let mut cache = LocalCache::new();
    for (i, stack) in stacks.into_iter().enumerate() {
        cache.release(stack);
        let flushed = if i < LOCAL_PER_CLASS {
            0
        } else {
            LOCAL_PER_CLASS / 2 + 1
        };
        assert_eq!(stacks_pooled(), pooled + flushed);
    }
    drop(cache);
    assert_eq!(stacks_pooled(), pooled + LOCAL_PER_CLASS + 1);

    let mut cache = LocalCache::new();
    let _one = cache.allocate(size).unwrap();
    assert_eq!(
        stacks_pooled(),
        pooled + LOCAL_PER_CLASS + 1 - LOCAL_PER_CLASS / 2,
        "an empty class is refilled with a batch"
    );
}

#[test]
fn threads_never_share_a_stack() {
    let _serial = serial();
    let size = 44 * 1024;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut cache = LocalCache::new();
                let mut held = Vec::new();
                for i in 0..20_000u64 {
                    let tag = (t << 32) | i;
                    if i % 3 != 2 {
                        let stack = if i % 5 == 0 {
                            allocate(size).unwrap()
                        } else {
                            cache.allocate(size).unwrap()
                        };
                        let word = (stack.base().get() - 8) as *mut u64;
                        // SAFETY: the top word of a stack this thread owns.
                        unsafe { word.write(tag) };
                        held.push((stack, tag));
                    }
                    if held.len() > 100 || i % 3 == 2 {
                        let Some((stack, tag)) = held.pop() else {
                            continue;
                        };
                        let word = (stack.base().get() - 8) as *const u64;
                        // SAFETY: as above.
                        assert_eq!(unsafe { word.read() }, tag, "another thread wrote here");
                        if i % 2 == 0 {
                            cache.release(stack);
                        } else {
                            release(stack);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn a_hundred_thousand_stacks_fit_in_the_default_map_count() {
    if guard_kind() != GuardKind::Madvise {
        eprintln!("skipped: mprotect guards cost two mappings per stack");
        return;
    }
    let _serial = serial();
    let count = 100_000;
    let maps_before = sys::mapping_count().unwrap();
    let allocated = stacks_allocated();
    let stacks: Vec<_> = (0..count)
        .map(|_| allocate(MIN_STACK_SIZE).unwrap())
        .collect();
    let maps_after = sys::mapping_count().unwrap();
    assert_eq!(stacks_allocated() - allocated, count);
    eprintln!(
        "{count} guarded stacks: {} -> {maps_after} mappings",
        maps_before
    );
    assert!(
        maps_after - maps_before < 200,
        "{maps_before} -> {maps_after}"
    );
    for stack in stacks.iter().step_by(997) {
        assert!(!readable(stack.limit().get()));
    }
    drop(stacks);
}

#[test]
fn owner_names_are_truncated_at_a_character_boundary() {
    let owner = overflow::Owner::new();
    let mut buf = [0u8; 48];
    assert!(owner.get(&mut buf).is_none());
    owner.set(7, None);
    assert_eq!(owner.get(&mut buf), Some((7, None)));
    let name = "ü".repeat(30); // 60 bytes
    owner.set(9, Some(&name));
    let (id, len) = owner.get(&mut buf).unwrap();
    assert_eq!((id, len), (9, Some(48)));
    assert_eq!(std::str::from_utf8(&buf[..48]).unwrap(), "ü".repeat(24));
    let name = format!("a{}", "ü".repeat(30)); // a boundary falls at 47
    owner.set(10, Some(&name));
    assert_eq!(owner.get(&mut buf), Some((10, Some(47))));
    owner.set(11, Some("short"));
    assert_eq!(owner.get(&mut buf), Some((11, Some(5))));
    assert_eq!(&buf[..5], b"short");
}

// ---- child-process scenarios -------------------------------------------------------------

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    std::hint::black_box(&buf);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(std::hint::black_box(buf[0]))
}

/// Runs test `name` of this module in a child process with `CHILD_ENV=scenario`.
fn run_child(name: &str, scenario: &str, guard: Option<&str>) -> Output {
    let module = module_path!().split_once("::").map_or("", |(_, path)| path);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            &format!("{module}::{name}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario);
    match guard {
        Some(kind) => command.env("CORONET_STACK_GUARD", kind),
        None => command.env_remove("CORONET_STACK_GUARD"),
    };
    command.output().unwrap()
}

/// The child side of the overflow tests; `None` in the parent.
fn child_scenario() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// A coroutine on a thread without an alternate signal stack (until `ensure_altstack`)
/// recurses forever.
fn overflow_a_coroutine() -> ! {
    install_overflow_handler();
    std::thread::spawn(|| {
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: drops std's alternate stack for this thread (std unmaps it at thread exit).
        let ret = unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
        assert_eq!(ret, 0);
        ensure_altstack();
        let stack = allocate(64 * 1024).unwrap();
        set_owner_name(&stack, 42, Some("deep-recursion"));
        let mut coroutine: Coroutine<(), (), u64, _> =
            Coroutine::with_stack(stack, |_, ()| recurse(0));
        coroutine.resume(());
    })
    .join()
    .unwrap();
    unreachable!("the overflow must abort the process");
}

#[test]
fn a_coroutine_overflow_names_the_coroutine_and_aborts() {
    match child_scenario().as_deref() {
        Some("overflow") => overflow_a_coroutine(),
        Some(_) => return,
        None => {}
    }
    for guard in [None, Some("mprotect")] {
        let output = run_child(
            "a_coroutine_overflow_names_the_coroutine_and_aborts",
            "overflow",
            guard,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGABRT),
            "{guard:?}: {stderr}"
        );
        assert!(
            stderr.contains(
                "\ncoroutine 'deep-recursion' (id 42) has overflowed its stack \
                 (stack size 65536 bytes)\nfatal runtime error: stack overflow"
            ),
            "{guard:?}: {stderr}"
        );
    }
}

#[test]
fn faults_that_are_not_ours_reach_the_previous_handler() {
    match child_scenario().as_deref() {
        Some("thread-overflow") => {
            install_overflow_handler();
            let thread = std::thread::Builder::new().name("plain-thread".into());
            let _ = thread.spawn(|| recurse(0)).unwrap().join();
            unreachable!("the overflow must abort the process");
        }
        Some("null") => {
            install_overflow_handler();
            // SAFETY: not safe at all: the point is to fault on an unmapped address.
            let value =
                unsafe { std::ptr::read_volatile(std::hint::black_box(8usize) as *const u8) };
            unreachable!("read {value} from address 8");
        }
        Some(_) => return,
        None => {}
    }
    let name = "faults_that_are_not_ours_reach_the_previous_handler";
    // std's handler (SA_SIGINFO) still names an overflowing thread.
    let output = run_child(name, "thread-overflow", None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(stderr.contains("thread 'plain-thread'"), "{stderr}");
    assert!(!stderr.contains("coroutine"), "{stderr}");
    // A plain bad access ends with SIGSEGV, as without our handler.
    let output = run_child(name, "null", None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGSEGV), "{stderr}");
    assert!(!stderr.contains("coroutine"), "{stderr}");
}

#[test]
fn reaching_the_map_limit_is_an_error_naming_the_sysctl() {
    match child_scenario().as_deref() {
        Some("map-limit") => {
            assert_eq!(guard_kind(), GuardKind::Mprotect);
            let mut stacks = Vec::with_capacity(40_000);
            let err = loop {
                match allocate(MIN_STACK_SIZE) {
                    Ok(stack) => stacks.push(stack),
                    Err(err) => break err,
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
            // The headroom leaves malloc room for large (mmap'd) allocations.
            let big = vec![1u8; 4 << 20];
            eprintln!("stacks: {} err: {err} big: {}", stacks.len(), big.len());
            drop(stacks);
            // Released stacks are reusable at the limit.
            let again: Vec<_> = (0..1000)
                .map(|_| allocate(MIN_STACK_SIZE).unwrap())
                .collect();
            drop(again);
            return;
        }
        Some(_) => return,
        None => {}
    }
    if sys::max_map_count().is_none() {
        return;
    }
    let output = run_child(
        "reaching_the_map_limit_is_an_error_naming_the_sysctl",
        "map-limit",
        Some("mprotect"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("vm.max_map_count"), "{stderr}");
    assert!(stderr.contains("sysctl -w vm.max_map_count="), "{stderr}");
}
