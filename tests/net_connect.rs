//! Connecting: refused, timing out against a full backlog, names resolved on the blocking
//! pool, several candidate addresses, and connections reset by the peer.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::AsRawFd;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use coronet::net::{TcpListener, TcpStream};
#[cfg(unix)]
use coronet::runtime::WaitKind;

/// An address on 127.0.0.1 where nothing listens (a port just released).
fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn connect_refused() {
    coronet::run(|| {
        let addr = dead_addr();
        let error = TcpStream::connect(addr).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error:?}");
        let error = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error:?}");
    });
    // And from a plain thread.
    let error = TcpStream::connect(dead_addr()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}

#[cfg(unix)] // shrinks the backlog with a second listen(), which only Linux/BSD honour
#[test]
fn connect_timeout_against_a_full_backlog() {
    let _watchdog = util::watchdog("connect_timeout_full_backlog", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        // Shrink the backlog of the listening socket (Linux applies a second listen()).
        // SAFETY: listen() on a descriptor the listener owns.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(300);
        // Never accept; connect until the queue is full and a SYN goes unanswered. The first
        // few succeed (queued); how many depends on the kernel, so retry the fill.
        let mut queued = Vec::new();
        let mut timed_out = None;
        for _ in 0..32 {
            let start = Instant::now();
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(conn) => queued.push(conn),
                Err(e) => {
                    timed_out = Some((e, start.elapsed()));
                    break;
                }
            }
        }
        let (error, waited) = timed_out.expect("the backlog never filled");
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
        assert!(waited >= timeout, "{waited:?}");
        assert!(!queued.is_empty(), "the listener accepted nothing at all");
    });
}

#[test]
fn connect_by_name_resolves_on_the_blocking_pool() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let port = listener.local_addr().unwrap().port();
        // "localhost" may resolve to ::1 first (refused here); the next address is tried.
        let client = TcpStream::connect(format!("localhost:{port}")).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let client = TcpStream::connect(("localhost", port)).unwrap();
        drop(client);
        let _ = listener.accept().unwrap();
        let error = TcpStream::connect("no port here").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error:?}");
    });
}

#[test]
fn connect_tries_each_address_in_turn() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addrs = [dead_addr(), listener.local_addr().unwrap()];
        let client = TcpStream::connect(&addrs[..]).unwrap();
        assert_eq!(client.peer_addr().unwrap(), addrs[1]);
        let error = TcpStream::connect(&addrs[..1]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        let none: &[SocketAddr] = &[];
        assert_eq!(
            TcpStream::connect(none).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    });
}

#[cfg(unix)]
/// Closes `conn` with `SO_LINGER {on, 0}`: the kernel sends RST instead of FIN.
fn reset(conn: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `linger` for the given size; the descriptor is open.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(conn);
}

#[cfg(unix)] // resets with SO_LINGER through libc
#[test]
fn reset_by_peer_on_read_and_write() {
    let _watchdog = util::watchdog("reset_by_peer", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = coronet::spawn(move || {
            let result = client.read(&mut [0u8; 16]);
            (client, result)
        });
        util::parked_on(&reader, WaitKind::Readable);
        reset(server);
        let (mut client, result) = reader.join().unwrap();
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error:?}");
        // Writing to the reset connection fails too (EPIPE once the reset is consumed);
        // the process does not die of SIGPIPE.
        let error = loop {
            if let Err(e) = client.write_all(b"anyone?") {
                break e;
            }
        };
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );
    });
}

#[cfg(unix)] // resets with SO_LINGER through libc
#[test]
fn reset_by_peer_while_writing() {
    let _watchdog = util::watchdog("reset_while_writing", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let writer = coronet::spawn(move || {
            let chunk = vec![0u8; 1 << 20];
            let start = Instant::now();
            loop {
                if let Err(e) = client.write(&chunk) {
                    return e;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "writes never failed"
                );
            }
        });
        util::parked_on(&writer, WaitKind::Writable);
        reset(server);
        let error = writer.join().unwrap();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );
    });
}

#[test]
fn stream_created_in_one_coroutine_used_in_another() {
    let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
    runtime.block_on(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        // Created here, used by two other coroutines (which may run on either worker).
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let writer = coronet::spawn(move || {
            let mut client = client;
            for i in 0..100u32 {
                client.write_all(&i.to_le_bytes()).unwrap();
                coronet::yield_now();
            }
        });
        let reader = coronet::spawn(move || {
            let mut server = server;
            for i in 0..100u32 {
                let mut buf = [0u8; 4];
                server.read_exact(&mut buf).unwrap();
                assert_eq!(u32::from_le_bytes(buf), i);
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
}
