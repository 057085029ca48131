//! A stack overflow in a coroutine prints which coroutine overflowed and aborts, as Rust
//! does for threads. Checked in a child process (the test re-executes itself).

use std::process::Command;

const CHILD_ENV: &str = "CORONET_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    std::hint::black_box(&buf);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(std::hint::black_box(buf[0]))
}

#[test]
fn overflow_names_the_coroutine_and_aborts() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let handle = coronet_runtime::coroutine::Builder::new()
            .name("deep-recursion".into())
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = handle.join();
        unreachable!("the overflow must abort the process");
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "overflow_names_the_coroutine_and_aborts",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
    }
    assert!(
        stderr.contains("coroutine 'deep-recursion'")
            && stderr.contains("has overflowed its stack"),
        "unexpected stderr: {stderr}"
    );
    assert!(stderr.contains("65536"), "stack size missing: {stderr}");
}
