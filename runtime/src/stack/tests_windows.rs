//! Tests of the stack pool's Windows backend: the page states of a fresh slot (asked of
//! `VirtualQuery`), growth through the guard region, decommit back to the fresh state, and the
//! overflow message (in a child process: the test binary re-executes itself with `CHILD_ENV`).

use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};
use windows_sys::Win32::System::Memory::{
    VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT, MEM_RESERVE, PAGE_GUARD, PAGE_READWRITE,
};

use super::*;

const CHILD_ENV: &str = "CORONET_STACK_OVERFLOW_CHILD";

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state (`MEM_COMMIT`/`MEM_RESERVE`) and protection of the page holding `addr`.
fn page_state(addr: usize) -> (u32, u32) {
    // SAFETY: MEMORY_BASIC_INFORMATION is plain data: all-zero is valid.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: queries an address of our own process into a live buffer of the size passed.
    let n = unsafe {
        VirtualQuery(
            addr as *const _,
            &mut info,
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    assert_ne!(n, 0, "VirtualQuery({addr:#x}) failed");
    (info.State, info.Protect)
}

fn is_guard_page(addr: usize) -> bool {
    page_state(addr) == (MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD)
}

fn is_read_write(addr: usize) -> bool {
    page_state(addr) == (MEM_COMMIT, PAGE_READWRITE)
}

fn is_reserved_only(addr: usize) -> bool {
    page_state(addr).0 == MEM_RESERVE
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    std::hint::black_box(&buf);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(std::hint::black_box(buf[0]))
}

/// Recurses `depth` frames of about 1 KiB each, then returns.
#[inline(never)]
fn recurse_to(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    std::hint::black_box(&buf);
    if depth == 0 {
        return 1;
    }
    recurse_to(depth - 1) + u64::from(std::hint::black_box(buf[0]) > 0)
}

#[test]
fn a_fresh_stack_is_committed_at_the_top_guarded_below_and_reserved_at_the_bottom() {
    let _serial = serial();
    let stack = allocate(64 * 1024).unwrap();
    let (bottom, top) = (stack.limit().get(), stack.base().get());
    let page = sys::page_size();
    assert_eq!(top - bottom, 64 * 1024 + sys::guard_len());
    assert!(is_read_write(top - 1), "{:?}", page_state(top - 1));
    let fields = sys::teb_fields(bottom, top, sys::StackLimit::default().get(bottom, top));
    assert_eq!(fields.StackBase, top);
    assert_eq!(fields.DeallocationStack, bottom);
    assert!(is_read_write(fields.StackLimit));
    assert!(
        is_guard_page(fields.StackLimit - 1),
        "{:?}",
        page_state(fields.StackLimit - 1)
    );
    assert!(is_reserved_only(bottom), "the hard guard page is committed");
    assert!(
        is_reserved_only(bottom + page),
        "the stack is committed whole"
    );
}

#[test]
fn a_coroutine_grows_its_stack_through_the_guard_pages() {
    let _serial = serial();
    let stack = allocate(256 * 1024).unwrap();
    let (bottom, top) = (stack.limit().get(), stack.base().get());
    let mut coroutine: Coroutine<u64, (), u64, _> =
        Coroutine::with_stack(stack, |_, depth| recurse_to(depth));
    // About 200 KiB of frames: far below the initial commit, within the usable size.
    assert!(matches!(
        coroutine.resume(200),
        CoroutineResult::Return(201)
    ));
    let stack = coroutine.into_stack();
    // A new handle on the grown slot learns its real limit (the unwinder needs it exact).
    let grown = sys::StackLimit::default().get(bottom, top);
    assert!(
        grown <= top - 190 * 1024,
        "limit {:#x}, top {top:#x}",
        grown
    );
    assert!(
        is_read_write(grown) && is_guard_page(grown - 1),
        "{:?}",
        page_state(grown - 1)
    );
    assert!(
        is_read_write(top - 150 * 1024),
        "{:?}",
        page_state(top - 150 * 1024)
    );
    assert!(
        is_reserved_only(bottom),
        "growth committed the hard guard page"
    );

    // Decommitting puts the slot back into its fresh state, and it runs again.
    let size = stack.size();
    // SAFETY: the stack is idle (its coroutine finished) and we own it.
    unsafe { sys::decommit(top - size, size) };
    assert!(
        is_reserved_only(top - 150 * 1024),
        "deep pages stay committed"
    );
    let limit = sys::StackLimit::default().get(bottom, top);
    assert_eq!(limit, top - 8 * 1024, "the initial commit is 8 KiB");
    assert!(is_read_write(limit));
    assert!(is_guard_page(limit - 1), "{:?}", page_state(limit - 1));
    let mut again: Coroutine<u64, (), u64, _> =
        Coroutine::with_stack(stack, |_, depth| recurse_to(depth));
    assert!(matches!(again.resume(200), CoroutineResult::Return(201)));
    release(again.into_stack());
}

#[test]
fn released_stacks_are_reused() {
    let _serial = serial();
    let size = 20 * 1024;
    let first = allocate(size).unwrap();
    let top = first.base();
    let allocated = stacks_allocated();
    release(first);
    let again = allocate(size).unwrap();
    assert_eq!(
        again.base(),
        top,
        "the pool hands back the stack just released"
    );
    assert_eq!(stacks_allocated(), allocated);
    release(again);
}

#[test]
fn a_coroutine_overflow_names_the_coroutine_and_aborts() {
    if std::env::var_os(CHILD_ENV).is_some() {
        install_overflow_handler();
        std::thread::spawn(|| {
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
    let module = module_path!().split_once("::").map_or("", |(_, path)| path);
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("{module}::a_coroutine_overflow_names_the_coroutine_and_aborts"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "\ncoroutine 'deep-recursion' (id 42) has overflowed its stack \
             (stack size 65536 bytes)\nfatal runtime error: stack overflow"
        ),
        "{:?}: {stderr}",
        output.status
    );
}
