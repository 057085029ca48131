//! A signal delivered while `poll` blocks (`EINTR`, no `SA_RESTART`) does not surface as an
//! error: the wait resumes with the time that remains.
#![cfg(unix)]

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use coronet_poller::{Events, Poller};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

fn install_handler_without_restart() {
    // SAFETY: sigaction is plain data (an integer handler, a mask, flags): zero is valid.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = 0; // no SA_RESTART: blocked syscalls fail with EINTR
                         // SAFETY: the mask is a live field; the handler only touches an atomic, which is
                         // async-signal-safe.
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn a_signal_during_poll_is_not_an_error() {
    install_handler_without_restart();
    let timeout = Duration::from_millis(300);
    let poller = Arc::new(Poller::new().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();

    let polling = {
        let poller = Arc::clone(&poller);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut events = Events::new();
            let start = Instant::now();
            started_tx.send(()).unwrap();
            let result = poller.poll(&mut events, Some(timeout));
            let waited = start.elapsed();
            done.store(true, Ordering::Release);
            (result.map_err(|e| e.to_string()), waited)
        })
    };
    started_rx.recv().unwrap();

    // Interrupt the thread again and again while it waits, one signal at a time: send one,
    // wait until its handler ran, repeat until the poll is over.
    let thread = polling.as_pthread_t();
    while !done.load(Ordering::Acquire) {
        let before = SIGNALS.load(Ordering::Relaxed);
        // SAFETY: the thread is alive until it sets `done`, which is checked above, and
        // joined only below.
        let r = unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
        assert_eq!(r, 0, "pthread_kill");
        while SIGNALS.load(Ordering::Relaxed) == before && !done.load(Ordering::Acquire) {
            thread::yield_now();
        }
    }

    let (result, waited) = polling.join().unwrap();
    assert_eq!(result, Ok(0));
    assert!(
        waited >= timeout,
        "returned after {waited:?}, asked {timeout:?}"
    );
    assert!(
        SIGNALS.load(Ordering::Relaxed) > 0,
        "no signal was delivered"
    );
}
