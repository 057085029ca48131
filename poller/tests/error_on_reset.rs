//! A connection reset by the peer (`SO_LINGER` 0, then close: an RST) is reported as an
//! error / read-closed event that wakes both sides; the read then reports the reset.
#![cfg(unix)]

mod util;

use std::io::{self, Read};
use std::mem;
use std::os::fd::AsRawFd;

use coronet_poller::{Events, Poller, Token};
use util::{expect_event, register_quiet, tcp_pair};

#[test]
fn reset_by_peer_is_an_error() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (mut client, server) = tcp_pair();
    register_quiet(&poller, &mut events, &client, Token(1));

    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a live local of the size passed.
    let r = unsafe {
        libc::setsockopt(
            server.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", io::Error::last_os_error());
    drop(server);

    let event = expect_event(&poller, &mut events, Token(1), |e| {
        e.is_error() || e.is_read_closed()
    });
    assert!(event.is_readable(), "{event:?}");
    if cfg!(any(target_os = "linux", target_os = "android")) {
        // EPOLLERR | EPOLLHUP: an error wakes the writer too.
        assert!(event.is_error() && event.is_writable(), "{event:?}");
    }

    let mut buf = [0u8; 8];
    match client.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        Ok(n) => assert_eq!(n, 0, "a reset stream has no data"),
    }
}
