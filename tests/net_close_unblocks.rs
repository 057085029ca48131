//! Closing a socket another coroutine (or thread) is blocked on wakes it with an error, never
//! a hang; `shutdown` makes a blocked read return 0.
//!
//! Each test is written so that its outcome does not depend on whether the other side had
//! already blocked when the close happened: a close before the call fails the call with the
//! same error.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
#[cfg(unix)]
use std::os::fd::AsRawFd;
use std::time::Duration;

use coronet::net::{is_closed_error, TcpListener, TcpStream, UdpSocket};
use coronet::runtime::WaitKind;

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn assert_closed(error: &std::io::Error) {
    assert!(
        is_closed_error(error),
        "expected the closed error, got {error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::NotConnected);
    assert_eq!(error.to_string(), "use of closed network connection");
}

#[test]
fn close_unblocks_read() {
    let _watchdog = util::watchdog("close_unblocks_read", Duration::from_secs(60));
    coronet::run(|| {
        let (_client, server) = pair();
        let reader_handle = server.try_clone().unwrap();
        let reader = coronet::spawn(move || {
            let mut buf = [0u8; 16];
            (&reader_handle).read(&mut buf)
        });
        util::parked_on(&reader, WaitKind::Readable);
        server.close().unwrap();
        assert_closed(&reader.join().unwrap().unwrap_err());
        // Later operations fail the same way; a second close too.
        let mut buf = [0u8; 1];
        assert_closed(&(&server).read(&mut buf).unwrap_err());
        assert_closed(&(&server).write(b"x").unwrap_err());
        assert_closed(&server.close().unwrap_err());
        assert!(server.is_closed());
    });
}

#[test]
fn close_unblocks_accept_and_ends_incoming() {
    let _watchdog = util::watchdog("close_unblocks_accept", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = listener.try_clone().unwrap();
        let accepting = coronet::spawn(move || acceptor.accept().map(drop));
        let incoming = {
            let listener = listener.try_clone().unwrap();
            coronet::spawn(move || listener.incoming().count())
        };
        util::parked_on(&accepting, WaitKind::Readable);
        util::parked_on(&incoming, WaitKind::Readable);
        listener.close().unwrap();
        assert_closed(&accepting.join().unwrap().unwrap_err());
        assert_eq!(incoming.join().unwrap(), 0, "incoming() ends after close");
        // The port is released once nothing is in flight: a new connect is refused. (Unix
        // only: on Windows the closed listener keeps its handle, and so its port, until the
        // last handle is dropped; see `sys::retire` in coronet-net.)
        #[cfg(unix)]
        {
            let error = TcpStream::connect(addr).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        }
        let _ = addr;
    });
}

#[test]
fn close_unblocks_a_write_to_a_full_buffer() {
    let _watchdog = util::watchdog("close_unblocks_write", Duration::from_secs(60));
    coronet::run(|| {
        let (client, _server) = pair();
        let writer_handle = client.try_clone().unwrap();
        let writer = coronet::spawn(move || {
            // Nobody reads: the buffers fill and this parks.
            let chunk = vec![0u8; 1 << 20];
            loop {
                if let Err(e) = (&writer_handle).write(&chunk) {
                    return e;
                }
            }
        });
        util::parked_on(&writer, WaitKind::Writable);
        client.close().unwrap();
        assert_closed(&writer.join().unwrap());
    });
}

/// On Windows `shutdown(SD_RECEIVE)` produces no AFD readiness event: `shutdown` itself
/// notifies the read waiters, which retry and get 0.
#[test]
fn shutdown_makes_a_blocked_read_return_zero() {
    let _watchdog = util::watchdog("shutdown_blocked_read", Duration::from_secs(60));
    coronet::run(|| {
        let (_client, server) = pair();
        let reader_handle = server.try_clone().unwrap();
        let reader = coronet::spawn(move || {
            let mut buf = [0u8; 16];
            (&reader_handle).read(&mut buf)
        });
        util::parked_on(&reader, WaitKind::Readable);
        server.shutdown(Shutdown::Both).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), 0);
    });
}

#[test]
fn close_from_a_plain_thread_unblocks_a_coroutine() {
    let _watchdog = util::watchdog("close_from_thread", Duration::from_secs(60));
    let (client, server) = coronet::run(pair);
    let socket = UdpSocket::bind(util::LOCAL).unwrap();
    let udp_handle = socket.try_clone().unwrap();
    let reader_handle = server.try_clone().unwrap();
    let (tcp_reader, udp_reader) = (
        coronet::spawn(move || (&reader_handle).read(&mut [0u8; 8])),
        coronet::spawn(move || udp_handle.recv_from(&mut [0u8; 8]).map(|(n, _)| n)),
    );
    // From this plain thread.
    util::parked_on(&tcp_reader, WaitKind::Readable);
    util::parked_on(&udp_reader, WaitKind::Readable);
    server.close().unwrap();
    socket.close().unwrap();
    assert_closed(&tcp_reader.join().unwrap().unwrap_err());
    assert_closed(&udp_reader.join().unwrap().unwrap_err());
    drop(client);
}

#[test]
fn close_from_a_coroutine_unblocks_a_plain_thread() {
    let _watchdog = util::watchdog("close_unblocks_thread", Duration::from_secs(60));
    let (client, server) = coronet::run(pair);
    let reader_handle = server.try_clone().unwrap();
    let thread = std::thread::spawn(move || (&reader_handle).read(&mut [0u8; 8]));
    coronet::run(move || {
        util::settle();
        server.close().unwrap();
    });
    assert_closed(&thread.join().unwrap().unwrap_err());
    drop(client);
}

#[cfg(unix)] // the placeholder descriptor is dup2: Windows sockets keep their handle instead
#[test]
fn closed_handle_keeps_its_descriptor_number_reserved() {
    coronet::run(|| {
        let (client, server) = pair();
        let fd = server.as_raw_fd();
        server.close().unwrap();
        // The number still names an open (placeholder) descriptor until the drop.
        // SAFETY: fcntl(F_GETFD) on a number we own reads only flags.
        assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        // The peer sees the connection end.
        let mut buf = [0u8; 4];
        assert_eq!((&client).read(&mut buf).unwrap(), 0);
        drop(server);
    });
}

#[test]
fn close_under_load_never_hangs() {
    // Many connections, each with a reader blocked (or about to block) while another
    // coroutine closes it: every reader returns the closed error or 0, none hangs.
    let _watchdog = util::watchdog("close_under_load", Duration::from_secs(120));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let start = std::time::Instant::now();
        for round in 0..300 {
            if start.elapsed() > util::LOAD_BUDGET {
                break;
            }
            let client = TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().unwrap();
            let handle = server.try_clone().unwrap();
            let reader = coronet::spawn(move || (&handle).read(&mut [0u8; 4]));
            if round % 2 == 0 {
                coronet::yield_now();
            }
            server.close().unwrap();
            match reader.join().unwrap() {
                Err(e) => assert_closed(&e),
                Ok(n) => panic!("read {n} bytes from a closed socket"),
            }
            drop(client);
        }
    });
}
