//! Writing to a connection the peer has closed returns an error; the process is not killed
//! by `SIGPIPE`, even with `SIGPIPE` at its default disposition (Rust programs normally
//! ignore it, which would hide the bug, so the child resets it to `SIG_DFL` first).

// Unix only: SIGPIPE and Unix sockets do not exist on Windows (a write there just fails).
#![cfg(unix)]

mod util;

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::time::Duration;

use coronet::net::unix::UnixStream;
use coronet::net::{TcpListener, TcpStream};

const CHILD: &str = "CORONET_NET_SIGPIPE_CHILD";

#[test]
fn write_to_a_closed_peer_is_an_error_not_a_signal() {
    if util::is_child(CHILD) {
        return;
    }
    let output = util::run_child("sigpipe_child", CHILD);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("SIGPIPE-CHILD-OK"),
        "child failed (killed by SIGPIPE?): {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write_until_error(mut conn: impl Write) -> std::io::Error {
    let chunk = [7u8; 4096];
    for i in 0..10_000 {
        let result = if i % 2 == 0 {
            conn.write(&chunk)
        } else {
            conn.write_vectored(&[IoSlice::new(&chunk), IoSlice::new(&chunk)])
        };
        if let Err(e) = result {
            return e;
        }
    }
    panic!("writes to a closed peer kept succeeding");
}

/// Runs only in the child.
#[test]
fn sigpipe_child() {
    if !util::is_child(CHILD) {
        return;
    }
    let _watchdog = util::watchdog("sigpipe_child", Duration::from_secs(60));
    // SAFETY: setting a signal disposition to the default; no handler involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(server);
        let error = write_until_error(&client);
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );

        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let error = write_until_error(&a);
        assert_eq!(error.kind(), ErrorKind::BrokenPipe, "{error:?}");
        let mut buf = [0u8; 1];
        assert_eq!((&a).read(&mut buf).unwrap(), 0);
    });
    println!("SIGPIPE-CHILD-OK");
}
