//! 10,000 registered socket pairs: after a write to each, the poller delivers exactly the
//! 10,000 expected tokens, each once, over many polls of 128 events.
#![cfg(unix)]

mod util;

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use coronet_poller::{Events, Poller, Token};
use util::{send, PATIENCE, QUIET};

const PAIRS: usize = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (or, if the hard limit is below
/// `needed` and we are privileged, both to `needed`). Returns whether `needed` fits.
fn raise_fd_limit(needed: u64) -> bool {
    // SAFETY: rlimit is plain integers.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return false;
    }
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    if soft >= needed {
        return true;
    }
    let attempts = if hard >= needed {
        // macOS refuses an infinite soft limit: fall back to just what is needed.
        vec![(hard, hard), (needed, hard)]
    } else {
        // Only a privileged process may raise the hard limit.
        vec![(needed, needed)]
    };
    attempts.into_iter().any(|(cur, max)| {
        let wanted = libc::rlimit {
            rlim_cur: cur as libc::rlim_t,
            rlim_max: max as libc::rlim_t,
        };
        // SAFETY: `wanted` is a live local.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 }
    })
}

#[test]
fn ten_thousand_pairs_deliver_exactly_their_tokens() {
    // Both ends of every pair open at once, or (where the hard limit is too low for that,
    // as in this project's CI container) each writer closed right after its write, which
    // adds a hang-up to the same single readable event.
    let keep_writers = raise_fd_limit((2 * PAIRS + 256) as u64);
    if !keep_writers && !raise_fd_limit((PAIRS + 256) as u64) {
        println!(
            "skipped: RLIMIT_NOFILE cannot be raised to {} ({})",
            PAIRS + 256,
            io::Error::last_os_error()
        );
        return;
    }
    if !keep_writers {
        println!(
            "RLIMIT_NOFILE too low for {PAIRS} open pairs: closing each writer after it wrote"
        );
    }

    let poller = Poller::new().unwrap();
    let mut readers = Vec::with_capacity(PAIRS);
    let mut writers = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        poller.register(a.as_raw_fd(), Token(i)).unwrap();
        readers.push(a);
        if keep_writers {
            writers.push(b);
        } else {
            send(&mut b, b"!");
        }
    }
    for b in &mut writers {
        send(b, b"!");
    }

    let mut events = Events::new();
    let mut readable = vec![0u32; PAIRS];
    let mut missing = PAIRS;
    while missing > 0 {
        let n = poller.poll(&mut events, Some(PATIENCE)).unwrap();
        assert!(n > 0, "{missing} tokens never reported");
        assert!(n <= events.capacity());
        for event in events.iter() {
            let Token(i) = event.token();
            assert!(i < PAIRS, "unknown token {i}");
            if keep_writers {
                assert!(!event.is_read_closed(), "{event:?}");
            }
            if event.is_readable() {
                readable[i] += 1;
                if readable[i] == 1 {
                    missing -= 1;
                }
            }
        }
    }
    // Edge-triggered: nothing new happened, so nothing more is reported.
    poller.poll(&mut events, Some(QUIET)).unwrap();
    let late: Vec<_> = events.iter().filter(|e| e.is_readable()).collect();
    assert!(late.is_empty(), "late readable events: {late:?}");
    // Exactly once each. With a closed writer kqueue may report the read kevent and the
    // write kevent's hang-up (readable too) as two events, so there it is "at least once".
    let exact = keep_writers || cfg!(any(target_os = "linux", target_os = "android"));
    if exact {
        let twice: Vec<_> = (0..PAIRS).filter(|&i| readable[i] != 1).collect();
        assert!(
            twice.is_empty(),
            "tokens reported readable more than once: {twice:?}"
        );
    }
    drop(readers);
}
