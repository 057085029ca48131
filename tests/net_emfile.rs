//! `accept` when the process is out of descriptors: it returns an error (it neither hangs nor
//! spins inside), the connection stays queued, and the server, backing off as Go's
//! `http.Server` does, serves it once descriptors are free again.
//!
//! The descriptor table is filled in a child process (this test binary re-executed), so the
//! lowered `RLIMIT_NOFILE` cannot disturb other tests.

// Unix only: fills the descriptor table under a lowered RLIMIT_NOFILE, which Windows lacks.
#![cfg(unix)]

mod util;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coronet::net::{TcpListener, TcpStream};

const CHILD: &str = "CORONET_NET_EMFILE_CHILD";

#[test]
fn accept_survives_emfile() {
    if util::is_child(CHILD) {
        return;
    }
    let output = util::run_child("emfile_child", CHILD);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("EMFILE-CHILD-OK"),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// Runs only in the child.
#[test]
fn emfile_child() {
    if !util::is_child(CHILD) {
        return;
    }
    let _watchdog = util::watchdog("emfile_child", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        // Queued before the table fills (the connect needs a descriptor of its own).
        let mut first = TcpStream::connect(addr).unwrap();
        let mut second = TcpStream::connect(addr).unwrap();

        // Fill the table: lower the soft limit to just above what is open, then open
        // /dev/null until the kernel refuses.
        let mut highest = 0;
        for fd in 0..4096 {
            // SAFETY: F_GETFD only reads descriptor flags.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
                highest = fd;
            }
        }
        let limit = libc::rlimit {
            rlim_cur: (highest + 32) as libc::rlim_t,
            rlim_max: util_hard_limit(),
        };
        // SAFETY: setrlimit reads the struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut filler = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(file) => filler.push(file),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("unexpected error filling the table: {e}"),
            }
            assert!(filler.len() < 10_000, "the descriptor limit did not apply");
        }

        let emfiles = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let server = {
            let (emfiles, served) = (emfiles.clone(), served.clone());
            coronet::spawn(move || {
                // The server loop of examples/echo.rs: back off 5 ms, doubling to 1 s.
                let mut backoff = Duration::ZERO;
                while served.load(Ordering::SeqCst) < 2 {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            backoff = Duration::ZERO;
                            let mut buf = [0u8; 4];
                            conn.read_exact(&mut buf).unwrap();
                            conn.write_all(&buf).unwrap();
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e:?}");
                            emfiles.fetch_add(1, Ordering::SeqCst);
                            backoff = (backoff * 2)
                                .clamp(Duration::from_millis(5), Duration::from_secs(1));
                            coronet::sleep(backoff);
                        }
                    }
                }
            })
        };
        // Wait until accept has failed at least twice (the error is returned, and the
        // loop came back and failed again rather than hanging).
        let mut waited = 0;
        while emfiles.load(Ordering::SeqCst) < 2 {
            coronet::sleep(Duration::from_millis(1));
            waited += 1;
            assert!(waited < 30_000, "accept never reported EMFILE");
        }
        assert_eq!(served.load(Ordering::SeqCst), 0);
        // Free the table: the server catches up with both queued connections.
        drop(filler);
        for (conn, word) in [(&mut first, b"one!"), (&mut second, b"two!")] {
            conn.write_all(word).unwrap();
            let mut echo = [0u8; 4];
            conn.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, word);
        }
        server.join().unwrap();
        println!(
            "EMFILE-CHILD-OK after {} EMFILE errors",
            emfiles.load(Ordering::SeqCst)
        );
    });
}

fn util_hard_limit() -> libc::rlim_t {
    // SAFETY: getrlimit writes the struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_max
    }
}
